"""Configuration: one pydantic model per command, built from sections, loaded from YAML with ``--set a.b=c``
overrides.

Every command's config is built the same way (:mod:`redraft.config.loading`): the packaged defaults
(``redraft/configs/<stage>.yaml``) are the base, the user's YAML file is merged over them, then the ``--set``
overrides. Unknown keys and wrong types fail with a one-line :class:`~redraft.errors.ConfigError` naming the key.
Every field carries a ``description`` (``redraft config show --explain``, docs/config-reference.md).
"""

from redraft.config.base import LoggingConfig, RunSection, Section
from redraft.config.data import BUILT_IN_REWARDS, ModelConfig, TaskConfig, TokenizerConfig
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
from redraft.config.rl import (
    DEFAULT_INSTRUCTION,
    SCORE_BASELINES,
    DPOSection,
    RewardModelSection,
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
    PretrainStageConfig,
    RLConfig,
    ScoreConfig,
    SFTConfig,
    StageConfig,
)
from redraft.config.training import EvalSettings, FreezeConfig, LoraConfig, OptimConfig, SamplingConfig, TrainConfig

__all__ = [
    "STAGES",
    "BUILT_IN_REWARDS",
    "DEFAULT_INSTRUCTION",
    "DPOSection",
    "EVAL",
    "EvalConfig",
    "EvalSettings",
    "FreezeConfig",
    "GenerateConfig",
    "LMStageConfig",
    "LOGGING",
    "LoggingConfig",
    "LoraConfig",
    "MODEL",
    "ModelConfig",
    "OptimConfig",
    "PipelineConfig",
    "PretrainConfig",
    "PretrainStageConfig",
    "RL",
    "RLConfig",
    "RLSection",
    "RUN",
    "RewardModelSection",
    "RunSection",
    "SCORE_BASELINES",
    "SFTConfig",
    "SamplingConfig",
    "ScoreConfig",
    "ScoreSection",
    "Section",
    "SelfCorrectionSection",
    "StageConfig",
    "TASK",
    "TOKENIZER",
    "TRAIN",
    "TaskConfig",
    "TokenizerConfig",
    "TrainConfig",
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
