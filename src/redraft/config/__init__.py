"""Configuration: one pydantic model per command, built from sections, loaded from YAML with ``--set a.b=c``
overrides.

Every command's config is built the same way (:mod:`redraft.config.loading`): the packaged defaults
(``redraft/configs/<stage>.yaml``) are the base, the user's YAML file is merged over them, then the ``--set``
overrides. Unknown keys and wrong types fail with a one-line :class:`~redraft.errors.ConfigError` naming the key.
Every field carries a ``description`` (``redraft config show --explain``, docs/config-reference.md).

Names: ``<Name>Config`` is what one command reads, a whole YAML file (``SFTConfig``, ``RLConfig``,
``RLHFConfig``, ``FeedbackConfig``); ``<Name>Section`` is one key of it (``TrainSection`` under ``sft:``,
``RLSection`` under ``rl:``). Each key has one default, in its field here; the main job's YAML
(``configs/run.yaml``) holds only its deviations, each with its reason.
"""

from redraft.config.base import LoggingSection, RunSection, Section
from redraft.config.data import BUILT_IN_REWARDS, ModelSection, TaskSection, TokenizerSection
from redraft.config.loading import (
    apply_override,
    build_config,
    config_changes,
    deep_merge,
    dump_config,
    layered_config,
    load_config,
    packaged_defaults,
    quoting_hint,
    read_yaml,
)
from redraft.config.preferences import DPOSection, RewardModelSection
from redraft.config.rl import (
    DEFAULT_INSTRUCTION,
    SCORE_BASELINES,
    RLSection,
    ScoreSection,
    SelfCorrectionSection,
)
from redraft.config.stages import (
    EVAL,
    LOGGING,
    MODEL,
    RL,
    RUN,
    STAGES,
    TASK,
    TOKENIZER,
    TRAIN,
    EvalConfig,
    GenerateConfig,
    LMStageConfig,
    PipelineConfig,
    PretrainConfig,
    PretrainSection,
    RLConfig,
    ScoreConfig,
    SFTConfig,
    StageConfig,
)
from redraft.config.training import EvalSection, FreezeSection, LoraSection, OptimSection, SamplingSection, TrainSection

__all__ = [
    "STAGES",
    "BUILT_IN_REWARDS",
    "DEFAULT_INSTRUCTION",
    "DPOSection",
    "EVAL",
    "EvalConfig",
    "EvalSection",
    "FreezeSection",
    "GenerateConfig",
    "LMStageConfig",
    "LOGGING",
    "LoggingSection",
    "LoraSection",
    "MODEL",
    "ModelSection",
    "OptimSection",
    "PipelineConfig",
    "PretrainConfig",
    "PretrainSection",
    "RL",
    "RLConfig",
    "RLSection",
    "RUN",
    "RewardModelSection",
    "RunSection",
    "SCORE_BASELINES",
    "SFTConfig",
    "SamplingSection",
    "ScoreConfig",
    "ScoreSection",
    "Section",
    "SelfCorrectionSection",
    "StageConfig",
    "TASK",
    "TOKENIZER",
    "TRAIN",
    "TaskSection",
    "TokenizerSection",
    "TrainSection",
    "apply_override",
    "build_config",
    "config_changes",
    "deep_merge",
    "dump_config",
    "layered_config",
    "load_config",
    "packaged_defaults",
    "quoting_hint",
    "read_yaml",
]
