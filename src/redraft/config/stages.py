"""One config per command: the sections each command reads, and their registry."""

from __future__ import annotations

from pydantic import Field

from redraft.config.base import LoggingSection, RunSection, Section
from redraft.config.data import ModelSection, TaskSection, TokenizerSection
from redraft.config.rl import RLSection, ScoreSection, SelfCorrectionSection
from redraft.config.training import EvalSection, SamplingSection, TrainSection

# What each stage config's sections hold (one description for the section wherever it appears).
RUN = "the run's name, output folder and seed"
LOGGING = "where metrics go besides metrics.jsonl, and the progress bar"
TASK = "the problems (built-in arithmetic or a file), their splits, prompt template, checker and RL reward"
TOKENIZER = "the tokenizer: an existing one, or one trained on the task corpus"
MODEL = "the model: a local HF checkpoint, or a fresh one built from a preset"
TRAIN = "the training loop: steps, batches, validation, checkpoints, optimizer, freezing, LoRA"
RL = "RL against the task's reward: algorithm, rollouts, KL, PPO critic, validation, checkpoints, optimizer"
EVAL = "evaluation: greedy accuracy and pass@k (or self-correction metrics) on a split"


class StageConfig(Section):
    run: RunSection = Field(RunSection(), description=RUN)
    logging: LoggingSection = Field(LoggingSection(), description=LOGGING)


class LMStageConfig(StageConfig):
    task: TaskSection = Field(TaskSection(), description=TASK)
    tokenizer: TokenizerSection = Field(TokenizerSection(), description=TOKENIZER)
    model: ModelSection = Field(ModelSection(), description=MODEL)
    train: TrainSection = Field(TrainSection(), description=TRAIN)


# A stage run on its own is named after its command, so it never writes into the main job's runs/main.
class PretrainConfig(LMStageConfig):
    """Tokenizer + causal-LM pretraining on the task corpus (`redraft pretrain`)."""

    run: RunSection = Field(RunSection(name="pretrain"), description=RUN)


class SFTConfig(LMStageConfig):
    """Completion-only fine-tuning of ``model.path`` (`redraft sft`)."""

    run: RunSection = Field(RunSection(name="sft"), description=RUN)


class EvalConfig(StageConfig):
    run: RunSection = Field(RunSection(name="eval"), description=RUN)
    task: TaskSection = Field(TaskSection(), description=TASK)
    model: ModelSection = Field(ModelSection(), description="the model evaluated (model.path; --model sets it)")
    eval: EvalSection = Field(EvalSection(), description=EVAL)
    self_correction: SelfCorrectionSection = Field(
        SelfCorrectionSection(), description="the self-correction protocol of --self-correct: attempts and instruction"
    )


class RLConfig(StageConfig):
    run: RunSection = Field(RunSection(name="rl"), description=RUN)
    task: TaskSection = Field(TaskSection(), description=TASK)
    model: ModelSection = Field(ModelSection(), description="the starting policy (model.path; --model sets it)")
    rl: RLSection = Field(RLSection(), description=RL)


class ScoreConfig(StageConfig):
    """``redraft score``: model.path is the single-attempt SFT model to start from."""

    run: RunSection = Field(RunSection(name="score"), description=RUN)
    task: TaskSection = Field(TaskSection(), description=TASK)
    model: ModelSection = Field(
        ModelSection(), description="the single-attempt SFT model to start from (model.path; --model sets it)"
    )
    score: ScoreSection = Field(ScoreSection(), description="SCoRe (Pair-SFT, Stage I, Stage II) and its baselines")


class GenerateConfig(StageConfig):
    run: RunSection = Field(RunSection(name="generate"), description=RUN)
    model: ModelSection = Field(
        ModelSection(), description="model.dtype: the dtype --model's weights load in (the other keys are not used)"
    )
    sampling: SamplingSection = Field(SamplingSection(), description="how completions are sampled")


class PretrainSection(TrainSection):
    max_steps: int = Field(
        500, ge=0, description="optimizer steps; 0 skips pretraining, so SFT starts from freshly initialised weights"
    )


class PipelineConfig(StageConfig):
    """The main job: tokenizer -> pretraining -> SFT -> RL -> evaluation -> report."""

    task: TaskSection = Field(TaskSection(), description=TASK)
    tokenizer: TokenizerSection = Field(TokenizerSection(), description=TOKENIZER)
    model: ModelSection = Field(ModelSection(), description="the model pretraining (or SFT) starts from")
    pretrain: PretrainSection = Field(PretrainSection(), description="causal-LM pretraining on the task corpus")
    sft: TrainSection = Field(TrainSection(), description="SFT on the demonstrations, loss on completions only")
    rl: RLSection = Field(RLSection(), description=RL)
    sft_same_time: bool = Field(
        True,
        description="also continue SFT from the SFT model for the RL stage's wall-clock time and evaluate it, "
        "so the report shows what RL adds over more SFT at equal cost",
    )
    eval: EvalSection = Field(EvalSection(), description="evaluation of the SFT, RL and equal-time SFT models")
    score: ScoreSection = Field(
        ScoreSection(), description="SCoRe self-correction and its baselines, from the SFT model"
    )


STAGES: dict[str, type[StageConfig]] = {
    "run": PipelineConfig,
    "pretrain": PretrainConfig,
    "sft": SFTConfig,
    "rl": RLConfig,
    "eval": EvalConfig,
    "score": ScoreConfig,
    "generate": GenerateConfig,
}
