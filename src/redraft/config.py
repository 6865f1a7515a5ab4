"""Configuration: one pydantic model per stage, loaded from YAML with ``--set a.b=c`` overrides.

Every stage config is built the same way: the packaged defaults (``redraft/configs/<stage>.yaml``)
are the base, the user's YAML file is merged over them, then the ``--set`` overrides. Unknown
keys and wrong types fail with a one-line :class:`~redraft.errors.ConfigError` naming the key.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from redraft.errors import ConfigError
from redraft.fsutil import read_utf8


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RunSection(Section):
    name: str = "main"
    output_dir: str = "runs"
    seed: int = 0

    @property
    def directory(self) -> Path:
        return Path(self.output_dir) / self.name


BUILT_IN_REWARDS = ("checker", "math", "code")  # task.reward names besides 'module:function' (rewards/named.py)


class TaskConfig(Section):
    """A task: the built-in arithmetic family or a custom JSONL/Parquet file."""

    kind: Literal["arithmetic", "file"] = "arithmetic"
    seed: int = 1234
    train_size: int = Field(20_000, ge=1)
    demonstrations: int | None = Field(
        None,
        ge=1,
        description="how many training problems come with a worked answer (None: all). SFT, pretraining and "
        "Pair-SFT targets use only these; RL and the other checker-scored stages draw prompts from the whole "
        "training split, as in practice, where demonstrations are scarce and a checker is cheap",
    )
    val_size: int = Field(256, ge=0)
    test_size: int = Field(1_000, ge=1)
    # Arithmetic knobs (difficulty).
    ops: list[Literal["+", "-", "*"]] = ["+"]
    min_digits: int = Field(1, ge=1, le=12)
    max_digits: int = Field(3, ge=1, le=12)
    num_operands: int = Field(2, ge=2, le=6)
    reverse_answer: bool = False
    teacher_slip_rate: float = Field(
        0.0,
        ge=0,
        le=1,
        description="share of the training problems needing a carry whose demonstration is the carry-free sum "
        "(58+67 -> 15), as an imperfect teacher writes it; the checker grades the true sum. SFT imitates the "
        "slips, a verifiable reward does not reward them (addition only)",
    )
    # Custom task files (kind: file).
    train_path: str | None = None
    test_path: str | None = None
    prompt_field: str = "prompt"
    answer_field: str = "answer"
    completion_field: str | None = None
    match: Literal["exact", "numeric"] = "numeric"
    reward: str | dict[str, float] = Field(
        "checker",
        description="what RL rewards: checker (the task's own answer check, 1/0), math (math-verify equivalence "
        "with the answer: '#### 72', '\\boxed{}', LaTeX), code (the completion run against the 'tests' column in the "
        "sandbox), or 'module:function', a callable f(prompts, completions, **columns) -> list[float] as in TRL, "
        "given every dataset column under its own name; a mapping {name: weight} sums several",
    )
    # Prompt template; {question} is the problem text.
    template: str = "{question}="
    few_shot: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> TaskConfig:
        if self.min_digits > self.max_digits:
            raise ValueError("min_digits must be <= max_digits")
        if self.kind == "file" and not self.train_path:
            raise ValueError("kind 'file' needs train_path")
        if "{question}" not in self.template:
            raise ValueError("template must contain {question}")
        for name in [self.reward] if isinstance(self.reward, str) else self.reward:
            if name not in BUILT_IN_REWARDS and not re.fullmatch(r"[\w.]+:\w+", name):
                raise ValueError(f"unknown reward {name!r}: use {', '.join(BUILT_IN_REWARDS)} or 'module:function'")
        return self


class TokenizerConfig(Section):
    path: str | None = None  # an existing tokenizer folder; otherwise one is trained
    vocab_size: int = Field(300, ge=8)
    min_frequency: int = Field(2, ge=1)


class ModelConfig(Section):
    path: str | None = None  # any local HF checkpoint folder; otherwise built from a preset
    preset: str = "tiny"
    arch: Literal["llama", "gpt2"] = "llama"
    layers: int | None = Field(None, ge=1)
    hidden: int | None = Field(None, ge=8)
    heads: int | None = Field(None, ge=1)
    max_positions: int = Field(256, ge=16)


class OptimConfig(Section):
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.1, ge=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.95, ge=0, lt=1)
    eps: float = Field(1e-8, gt=0)
    warmup_steps: int = Field(50, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    grad_clip: float = Field(1.0, gt=0)


class FreezeConfig(Section):
    embeddings: bool = False
    layers: int = Field(0, ge=0)  # freeze the first N transformer blocks


class LoraConfig(Section):
    enabled: bool = False
    r: int = Field(8, ge=1)
    alpha: float = 16.0
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj"]


class TrainConfig(Section):
    max_steps: int = Field(500, ge=1)  # optimizer steps
    batch_size: int = Field(64, ge=1)
    grad_accum_steps: int = Field(1, ge=1)
    max_length: int = Field(128, ge=4)
    log_every: int = Field(10, ge=1)
    eval_every: int = Field(100, ge=1)  # validation loss (and accuracy for SFT, two-attempt checks for Pair-SFT)
    eval_accuracy_problems: int = Field(128, ge=0)
    save_every: int = Field(100, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    patience: int = Field(0, ge=0)  # early stopping after N evals without improvement; 0 = off
    max_seconds: float | None = Field(
        None, gt=0, description="wall-clock budget: stop after the step that reaches it (None: max_steps alone)"
    )
    optim: OptimConfig = OptimConfig()
    freeze: FreezeConfig = FreezeConfig()
    lora: LoraConfig = LoraConfig()


class SamplingConfig(Section):
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0)
    max_new_tokens: int = Field(16, ge=1)
    stop: list[str] = []
    batch_size: int = Field(512, ge=1)
    backend: Literal["auto", "fast", "hf"] = "auto"


class EvalSettings(Section):
    split: Literal["val", "test"] = "test"
    num_problems: int | None = Field(None, ge=1)  # None: the whole split
    k: int = Field(8, ge=1)  # pass@k samples per problem
    temperature: float = Field(1.0, gt=0)  # for the pass@k samples (and the inference-scaling samples)
    max_new_tokens: int = Field(16, ge=1)
    batch_size: int = Field(512, ge=1)
    # Self-correction (`redraft eval --self-correct`): attempt 1 at first_temperature, later attempts greedy.
    self_correct: bool = False
    first_temperature: float = Field(0.0, ge=0)
    scaling_budgets: list[int] = []  # generations per problem: B samples + vote vs B/2 self-corrected + vote

    @model_validator(mode="after")
    def _check(self) -> EvalSettings:
        if any(b < 2 or b % 2 for b in self.scaling_budgets):
            raise ValueError(f"scaling_budgets must be even numbers >= 2 (got {self.scaling_budgets})")
        return self


class RLSection(Section):
    """Policy-gradient training against a verifiable reward (GRPO, RLOO, REINFORCE++, PPO)."""

    algorithm: Literal["grpo", "rloo", "reinforce_pp", "ppo"] = "grpo"
    iterations: int = Field(100, ge=0)  # 0 skips the stage
    prompts_per_iteration: int = Field(64, ge=1)
    samples_per_prompt: int = Field(8, ge=1)
    temperature: float = Field(1.0, gt=0)
    max_new_tokens: int = Field(16, ge=1)
    epochs: int = Field(1, ge=1)  # passes over each iteration's rollouts
    minibatch_size: int = Field(512, ge=1)  # sequences per optimizer step
    clip_eps: float = Field(0.2, gt=0)
    clip_eps_high: float | None = Field(None, gt=0)
    loss_agg: Literal["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"] = Field(
        "token_mean",
        description="how per-token losses become one: token_mean = mean over all action tokens (DAPO; TRL "
        "'dapo'/'bnpo'); seq_mean_token_mean = mean over sequences of each one's token mean (original GRPO; TRL "
        "'grpo'); seq_mean_token_sum_norm = each sequence's token sum / the constant max_new_tokens × attempts, "
        "averaged over sequences (Dr. GRPO; TRL 'dr_grpo')",
    )
    scale_rewards: Literal["group", "batch", "none"] = Field(
        "group",
        description="GRPO advantage (r − group mean) / (std + 1e-4) with the std of the group (GRPO), of the "
        "whole batch (Lite PPO) or none (Dr. GRPO), as TRL's scale_rewards; true/false mean group/none",
    )
    kl_coef: float = Field(0.0, ge=0)
    kl_estimator: Literal["k1", "k2", "k3"] = Field(
        "k3",
        description="Schulman's per-token KL(π ‖ π_ref) estimator, each clamped to [-10, 10] as in OpenRLHF: "
        "k1 = log π − log π_ref, k2 = ½(log r)², k3 = r − 1 − log r. Used everywhere the KL goes: the GRPO "
        "loss term, the reward of REINFORCE++/PPO, and the per-sequence sum folded into RLOO's score (TRL's "
        "RLOO always uses k1 there: set k1 for parity)",
    )
    adaptive_kl: bool = False
    log_reference_kl: bool = Field(
        False,
        description="log KL(π ‖ π_ref) even when nothing uses it (kl_coef 0, no adaptive KL): costs one reference "
        "forward pass over the rollouts per iteration; without it the update's KL(π_old ‖ π) is logged as approx_kl",
    )
    kl_target: float = Field(0.05, gt=0)
    kl_horizon: int = Field(10_000, ge=1)
    gamma: float = Field(1.0, ge=0, le=1)
    lam: float = Field(0.95, ge=0, le=1)
    value_clip_eps: float | None = Field(0.2, gt=0)
    critic_lr: float = Field(1e-4, gt=0)
    truncation_penalty: float = Field(0.0, ge=0)  # subtracted from replies cut at max_new_tokens
    max_seconds: float | None = Field(None, gt=0)  # wall-clock budget: stop after the iteration that reaches it
    eval_every: int = Field(10, ge=1)
    eval_problems: int = Field(256, ge=0)
    save_every: int = Field(20, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    log_every: int = Field(1, ge=1)
    # ray: sample rollouts on Ray actors (pip install 'redraft[ray]'), one prompt's group of samples per call;
    # every sample has its own seed, so the rollouts are the same as with local sampling.
    generation_backend: Literal["local", "ray"] = "local"
    ray_workers: int | None = Field(None, ge=1)  # generation actors (None: one per CPU of the Ray cluster)
    optim: OptimConfig = OptimConfig(lr=1e-4, warmup_steps=5, weight_decay=0.0, min_lr_ratio=1.0)

    @field_validator("scale_rewards", mode="before")
    @classmethod
    def _scale_rewards_bool(cls, value: Any) -> Any:
        """The former bool: true = "group", false = "none"."""
        if isinstance(value, bool):
            return "group" if value else "none"
        return value

    @model_validator(mode="after")
    def _check(self) -> RLSection:
        if self.algorithm in ("grpo", "rloo") and self.samples_per_prompt < 2:
            raise ValueError(f"{self.algorithm} needs samples_per_prompt >= 2 (it compares samples of a prompt)")
        return self


DEFAULT_INSTRUCTION = (
    "\nThere might be an error in the answer above. Correct it if needed and give the final answer.\n{prompt}"
)


class SelfCorrectionSection(Section):
    """The multi-attempt protocol shared by SCoRe training, its baselines and evaluation.

    After each attempt the model sees ``instruction`` (``{prompt}`` and ``{question}`` are filled
    in); it is the same whatever the attempt was, so it never says whether the attempt was right.
    """

    attempts: int = Field(2, ge=2, le=8)
    instruction: str = DEFAULT_INSTRUCTION


SCORE_BASELINES = ("prompting", "pair_sft", "star", "single_turn_rl", "multiturn_rl", "control")


class ScoreSection(Section):
    """SCoRe after Pair-SFT on the model's own drafts, and the baselines it is compared with.

    Every RL run here (Stage I, Stage II, the RL baselines) uses the settings of ``rl`` (its
    ``iterations`` is set per run): the single-turn and naive multi-turn RL baselines get
    ``stage1_iterations + stage2_iterations`` iterations, the single-attempt control gets the
    wall-clock time that Pair-SFT + Stage I + Stage II took.
    """

    enabled: bool = True
    protocol: SelfCorrectionSection = SelfCorrectionSection()
    draft_temperature: float = Field(1.0, gt=0)  # Pair-SFT drafts: the model's own samples at this temperature
    # Pair-SFT drafts sampled per training problem: more distinct wrong drafts to learn corrections from
    drafts_per_problem: int = Field(1, ge=1)
    # Pair-SFT training rows rebalanced so this share has a wrong draft (None: the drafts' own mix)
    wrong_draft_share: float | None = Field(None, gt=0, lt=1)
    # Pair-SFT adds this weight times KL(SFT model ‖ model) on every attempt-1 token (0 = off), so
    # learning attempt 2 does not pull attempt 1 away from the SFT model
    pair_sft_anchor: float = Field(0.0, ge=0)
    pair_sft: TrainConfig = TrainConfig(
        max_steps=300, batch_size=128, eval_every=100, save_every=100, eval_accuracy_problems=0,
        optim=OptimConfig(lr=1e-3, warmup_steps=20),
    )
    rl: RLSection = RLSection(algorithm="rloo", max_new_tokens=8, eval_problems=0, save_every=50)
    stage1_iterations: int = Field(60, ge=0)
    stage2_iterations: int = Field(60, ge=0)
    alpha: float = Field(10.0, ge=0)  # Stage II shaping bonus α·(r2 − r1) on attempt 2
    beta1: float = Field(0.01, ge=0)  # KL on attempt 2 (Stage I) and on every attempt (Stage II)
    beta2: float = Field(0.1, ge=0)  # Stage I: strong KL keeping attempt 1 at the base model
    # Stage I samples attempt 1 at this temperature (0 = greedy, as evaluation decodes it); attempt 1
    # gets no reward there, so its samples only set the context attempt 2 learns to correct.
    # None: rl.temperature, as in the paper.
    stage1_first_temperature: float | None = Field(
        None,
        ge=0,
        description="Stage I samples attempt 1 at this temperature (0 = greedy; None = rl.temperature, as in the "
        "paper). Off rl.temperature, attempt 1's tokens no longer come from the policy whose log-probs the "
        "k3 KL estimator (β2 anchor) uses, so its KL is no longer an unbiased estimate of KL(π ‖ π_ref): with "
        "greedy tokens it measures the KL at the argmax path only",
    )
    star_iterations: int = Field(2, ge=1)
    star_problems: int = Field(4096, ge=1)  # problems sampled per STaR iteration
    star: TrainConfig = TrainConfig(
        max_steps=100, batch_size=64, eval_every=50, save_every=50, eval_accuracy_problems=0,
        optim=OptimConfig(lr=5e-4, warmup_steps=10),
    )
    baselines: list[Literal["prompting", "pair_sft", "star", "single_turn_rl", "multiturn_rl", "control"]] = list(
        SCORE_BASELINES
    )
    eval: EvalSettings = EvalSettings(max_new_tokens=8, scaling_budgets=[2, 4, 8, 16])


class RewardModelSection(Section):
    """A scalar head on a causal LM trained with the Bradley–Terry loss."""

    init: Literal["model", "fresh"] = "model"  # model.path's weights, or a fresh model.preset with its tokenizer
    # `redraft rlhf` only: start the reward model from this checkpoint instead of the policy (a
    # stronger model judges better: docs/rlhf.md); None = the round's policy
    path: str | None = None
    # classifier: a scalar head on the last token; likelihood: the LM's summed log-prob of the completion
    head: Literal["classifier", "likelihood"] = "likelihood"
    # The kept checkpoint: best held-out pairwise accuracy (what a reward model is for) or lowest held-out loss.
    select_by: Literal["accuracy", "loss"] = "accuracy"
    use_margins: bool = False  # subtract each pair's margin (its rating gap) inside the sigmoid
    center_coef: float = Field(0.0, ge=0)  # c·mean((r_w + r_l)²) keeps rewards near zero
    # likelihood head only: + sft_coef · per-token NLL of the chosen completions, i.e. keep training
    # the LM on the answers people prefer while it learns to rank them
    sft_coef: float = Field(0.0, ge=0)
    score_batch_size: int = Field(256, ge=1)
    # Chosen on held-out accuracy (docs/rlhf.md): lr 1e-4 beats 3e-4 for the likelihood head.
    train: TrainConfig = TrainConfig(
        max_steps=1200, batch_size=64, eval_every=200, save_every=200, log_every=20,
        optim=OptimConfig(lr=1e-4, warmup_steps=30, weight_decay=0.0),
    )

    @model_validator(mode="after")
    def _check(self) -> RewardModelSection:
        if self.train.lora.enabled:
            raise ValueError("reward_model.train.lora is not supported (use train.freeze to train part of the model)")
        if self.sft_coef and self.head != "likelihood":
            raise ValueError("reward_model.sft_coef needs reward_model.head=likelihood (the score is then a log-prob)")
        return self


class DPOSection(Section):
    """Direct preference optimisation of the policy against a frozen copy of itself."""

    beta: float = Field(0.3, gt=0)
    loss: Literal["sigmoid", "cdpo", "robust", "hinge", "ipo", "ipo_mean"] = Field(
        "sigmoid",
        description="sigmoid: DPO (Rafailov et al.; TRL/OpenRLHF default); cdpo: conservative DPO, the "
        "sigmoid loss with label smoothing (Mitchell; OpenRLHF's --label_smoothing; TRL 1.16 has none); "
        "robust: robust DPO, unbiased under label noise (Chowdhury et al.; TRL 'robust'); "
        "hinge: RSO/SLiC hinge (TRL 'hinge'); ipo: IPO (Azar et al.) on summed log-probs (OpenRLHF --ipo); "
        "ipo_mean: IPO on log-probs averaged over each completion's tokens (TRL 'ipo', the form the IPO "
        "authors confirmed)",
    )
    label_smoothing: float = Field(
        0.0,
        ge=0,
        le=0.5,
        description="the assumed probability ε that a preference label is flipped: cdpo and robust only "
        "(sigmoid with ε > 0 is cdpo)",
    )
    # RPO: + sft_coef · per-token NLL of the chosen completions, which keeps DPO from lowering the
    # chosen log-probs along with the rejected ones.
    sft_coef: float = Field(1.0, ge=0)
    # The kept checkpoint: best greedy validation accuracy, or lowest held-out DPO loss (which keeps
    # falling while a policy drifts off both completions, so it is a poor criterion on its own).
    select_by: Literal["accuracy", "loss"] = "accuracy"
    kl_prompts: int = Field(128, ge=0)  # validation prompts sampled at T = 1 to estimate KL(π ‖ π_ref)
    eval_problems: int = Field(256, ge=0)  # greedy validation accuracy on the task (0 = off)
    max_new_tokens: int = Field(16, ge=1)
    # lr 1e-4 collapses the policy (both log-probs fall); see docs/rlhf.md for the runs behind these.
    train: TrainConfig = TrainConfig(
        max_steps=600, batch_size=64, eval_every=50, save_every=100, log_every=10,
        optim=OptimConfig(lr=3e-5, warmup_steps=10, weight_decay=0.0, min_lr_ratio=1.0),
    )

    @model_validator(mode="after")
    def _check(self) -> DPOSection:
        if self.select_by == "accuracy" and self.eval_problems == 0:
            raise ValueError("dpo.select_by=accuracy needs dpo.eval_problems > 0 (or use select_by=loss)")
        if self.loss in ("cdpo", "robust") and not 0 < self.label_smoothing < 0.5:
            raise ValueError(f"dpo.loss={self.loss} needs 0 < dpo.label_smoothing < 0.5 (at 0 it is plain DPO: loss=sigmoid)")
        if self.loss in ("hinge", "ipo", "ipo_mean") and self.label_smoothing:
            raise ValueError(f"dpo.label_smoothing is not used by dpo.loss={self.loss}; set it to 0")
        return self


class LoggingConfig(Section):
    tensorboard: bool = False
    wandb: bool = False
    progress: bool = True


class StageConfig(Section):
    run: RunSection = RunSection()
    logging: LoggingConfig = LoggingConfig()


class LMStageConfig(StageConfig):
    task: TaskConfig = TaskConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()


class PretrainConfig(LMStageConfig):
    """Tokenizer + causal-LM pretraining on the task corpus (`redraft pretrain`)."""


class SFTConfig(LMStageConfig):
    """Completion-only fine-tuning of ``model.path`` (`redraft sft`)."""


class EvalConfig(StageConfig):
    task: TaskConfig = TaskConfig()
    model: ModelConfig = ModelConfig()
    eval: EvalSettings = EvalSettings()
    self_correction: SelfCorrectionSection = SelfCorrectionSection()


class RLConfig(StageConfig):
    task: TaskConfig = TaskConfig()
    model: ModelConfig = ModelConfig()
    rl: RLSection = RLSection()


class ScoreConfig(StageConfig):
    """``redraft score``: model.path is the single-attempt SFT model to start from."""

    task: TaskConfig = TaskConfig()
    model: ModelConfig = ModelConfig()
    score: ScoreSection = ScoreSection()


class GenerateConfig(StageConfig):
    model: ModelConfig = ModelConfig()
    sampling: SamplingConfig = SamplingConfig()


class PretrainStageConfig(TrainConfig):
    max_steps: int = Field(
        500, ge=0, description="optimizer steps; 0 skips pretraining, so SFT starts from freshly initialised weights"
    )


class PipelineConfig(StageConfig):
    """The main job: tokenizer -> pretraining -> SFT -> RL -> evaluation -> report."""

    task: TaskConfig = TaskConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    model: ModelConfig = ModelConfig()
    pretrain: PretrainStageConfig = PretrainStageConfig()
    sft: TrainConfig = TrainConfig()
    rl: RLSection = RLSection()
    sft_same_time: bool = Field(
        True,
        description="also continue SFT from the SFT model for the RL stage's wall-clock time and evaluate it, "
        "so the report shows what RL adds over more SFT at equal cost",
    )
    eval: EvalSettings = EvalSettings()
    score: ScoreSection = ScoreSection(enabled=False)


STAGES: dict[str, type[StageConfig]] = {
    "run": PipelineConfig,
    "pretrain": PretrainConfig,
    "sft": SFTConfig,
    "rl": RLConfig,
    "eval": EvalConfig,
    "score": ScoreConfig,
    "generate": GenerateConfig,
}

C = TypeVar("C", bound=BaseModel)


def packaged_defaults(stage: str) -> dict[str, Any]:
    """The built-in YAML defaults of a stage (may be empty: pydantic defaults then apply)."""
    path = resources.files("redraft") / "configs" / f"{stage}.yaml"
    if not path.is_file():
        return {}
    return yaml.safe_load(path.read_text()) or {}


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(read_utf8(path, ConfigError))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return data


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def apply_override(data: dict[str, Any], assignment: str) -> dict[str, Any]:
    """Apply one ``a.b.c=value`` override; the value is parsed as YAML (``3``, ``true``, ``[1,2]``)."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {assignment!r} must look like section.key=value")
    parts = key.strip().split(".")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    nested: dict[str, Any] = value
    for part in reversed(parts):
        nested = {part: nested}
    return deep_merge(data, nested)


def _describe(error: dict[str, Any]) -> str:
    location = ".".join(str(p) for p in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"unknown key '{location}'"
    got = error.get("input")
    shown = "" if isinstance(got, dict) else f" (got {got!r})"
    return f"'{location}': {error['msg']}{shown}"


def build_config(cls: type[C], data: dict[str, Any], source: str = "config") -> C:
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"{source}: {_describe(errors[0])}{more}") from None


def layered_config(
    cls: type[C], layers: list[tuple[str, dict[str, Any]]], overrides: list[str] | None, source: str
) -> C:
    """``cls``'s defaults <- each ``(name, data)`` layer <- ``--set`` overrides, validated.

    The base is the full dump of the defaults, not an empty dict: a section whose default differs
    from its class's (``score.star``, ``rl.optim``, ...) then keeps its other values when one key of
    it is set, instead of silently falling back to the class's generic defaults. Errors name the
    last layer given (``source`` when there is none).
    """
    data = cls().model_dump(mode="json")
    for name, layer in layers:
        data, source = deep_merge(data, layer), name
    for assignment in overrides or []:
        data = apply_override(data, assignment)
    return build_config(cls, data, source + (" with --set overrides" if overrides else ""))


def load_config(stage: str, path: str | Path | None = None, overrides: list[str] | None = None) -> StageConfig:
    """Defaults of ``stage`` <- its built-in YAML <- YAML file <- ``--set`` overrides, validated."""
    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}; expected one of {sorted(STAGES)}")
    layers = [(f"built-in {stage} config", packaged_defaults(stage))]
    if path is not None:
        layers.append((str(path), read_yaml(path)))
    return layered_config(STAGES[stage], layers, overrides, f"built-in {stage} config")


def dump_config(config: BaseModel, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))


def config_changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Each dotted key whose value differs between two config dumps, as ``key: old -> new``."""
    changes = []
    for key in sorted(set(old) | set(new), key=str):
        before, after = old.get(key), new.get(key)
        if isinstance(before, dict) and isinstance(after, dict):
            changes += config_changes(before, after, f"{prefix}{key}.")
        elif before != after:
            changes.append(f"{prefix}{key}: {before!r} -> {after!r}")
    return changes
