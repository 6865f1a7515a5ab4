"""Sections of the trainers that learn from preference pairs: reward models and DPO."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_serializer, model_validator

from redraft.config.base import Section, refuse_keys, share_keys, without_keys
from redraft.config.rl import SHARED_SAMPLING_KEYS
from redraft.config.training import OptimSection, TrainSection

# The training section's greedy-answer checks, which reward models (they score, never generate) do not run.
UNUSED_BY_REWARD_MODELS = ("eval_accuracy_problems", "max_new_tokens", "stop")


class RewardModelSection(Section):
    """A scalar head on a causal LM trained with the Bradley–Terry loss."""

    init: Literal["model", "fresh"] = Field(
        "model", description="start from model.path's weights, or a fresh model.preset with model.path's tokenizer"
    )
    path: str | None = Field(
        None,
        description="`redraft rlhf` only: start the reward model from this checkpoint instead of the policy (a "
        "stronger model judges better: docs/rlhf.md); None = the round's policy",
    )
    head: Literal["classifier", "likelihood"] = Field(
        "likelihood",
        description="classifier: a scalar head on the last token; likelihood: the LM's summed log-prob of the "
        "completion",
    )
    select_by: Literal["accuracy", "loss"] = Field(
        "accuracy",
        description="the kept checkpoint: best held-out pairwise accuracy (what a reward model is for) or lowest "
        "held-out loss",
    )
    use_margins: bool = Field(False, description="subtract each pair's margin (its rating gap) inside the sigmoid")
    center_coef: float = Field(
        0.0, ge=0, description="adds c·mean((r_w + r_l)²) to the loss, keeping rewards near zero"
    )
    sft_coef: float = Field(
        0.0,
        ge=0,
        description="likelihood head only: adds sft_coef × the per-token NLL of the chosen completions, i.e. keeps "
        "training the LM on the preferred answers while it learns to rank them",
    )
    score_batch_size: int = Field(
        256, ge=1, description="completions scored per forward pass (reward statistics, PPO rewards)"
    )
    # lr 1e-4: better held-out accuracy than 3e-4 for the likelihood head (experiments/rlhf.md).
    train: TrainSection = Field(
        TrainSection(
            max_steps=1200,
            batch_size=64,
            eval_every=200,
            save_every=200,
            log_every=20,
            optim=OptimSection(lr=1e-4, warmup_steps=30, weight_decay=0.0),
        ),
        description="training on the preference pairs (batch_size in pairs; validation = held-out pairs)",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_answer_checks(cls, data: Any) -> Any:
        return refuse_keys(data, "reward_model", "train", UNUSED_BY_REWARD_MODELS, "a reward model does not generate")

    @field_serializer("train", mode="wrap")
    def _without_answer_checks(self, section: Section, handler) -> dict[str, Any]:
        return without_keys(handler(section), UNUSED_BY_REWARD_MODELS)

    @model_validator(mode="after")
    def _check(self) -> RewardModelSection:
        if self.sft_coef and self.head != "likelihood":
            raise ValueError("reward_model.sft_coef needs reward_model.head=likelihood (the score is then a log-prob)")
        return self


class DPOSection(Section):
    """Direct preference optimisation of the policy against a frozen copy of itself."""

    beta: float = Field(0.3, gt=0, description="β: strength of the implicit KL to the reference (larger = stay closer)")
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
    sft_coef: float = Field(
        1.0,
        ge=0,
        description="RPO: adds sft_coef × the per-token NLL of the chosen completions, which keeps DPO from "
        "lowering the chosen log-probs along with the rejected ones (0 = plain DPO)",
    )
    select_by: Literal["auto", "accuracy", "reward_accuracy", "loss"] = Field(
        "auto",
        description="the kept checkpoint: accuracy = best greedy validation accuracy on the task's problems; "
        "reward_accuracy = best share of held-out pairs whose implicit reward ranks chosen above rejected (needs only "
        "the pairs); loss = lowest held-out DPO loss (which keeps falling while a policy drifts off both completions, "
        "so it is a poor criterion on its own); auto = accuracy when there is a task with eval_problems > 0 (`redraft "
        "rlhf`; `redraft dpo train` with a task: section), else reward_accuracy",
    )
    kl_prompts: int = Field(128, ge=0, description="validation prompts sampled at T = 1 to estimate KL(π ‖ π_ref)")
    eval_problems: int = Field(256, ge=0, description="greedy validation accuracy on this many task problems (0 = off)")
    max_new_tokens: int = Field(16, ge=1, description="most tokens per answer in those checks")
    stop: list[str] = Field(
        [], description="strings that end an answer in those checks (special tokens such as <|im_end|> too)"
    )
    # lr 1e-4 collapses the policy (both log-probs fall); experiments/rlhf.md has the runs behind these values.
    train: TrainSection = Field(
        TrainSection(
            max_steps=600,
            batch_size=64,
            eval_every=50,
            save_every=100,
            log_every=10,
            optim=OptimSection(lr=3e-5, warmup_steps=10, weight_decay=0.0, min_lr_ratio=1.0),
        ),
        description="training on the preference pairs (batch_size in pairs)",
    )

    @model_validator(mode="before")
    @classmethod
    def _one_answer_length(cls, data: Any) -> Any:
        data = share_keys(cls, data, "dpo", ("train",), SHARED_SAMPLING_KEYS)
        return refuse_keys(data, "dpo", "train", ("eval_accuracy_problems",), "dpo.eval_problems sets the checks")

    @field_serializer("train", mode="wrap")
    def _without_shared_keys(self, section: Section, handler) -> dict[str, Any]:
        return without_keys(handler(section), (*SHARED_SAMPLING_KEYS, "eval_accuracy_problems"))

    @model_validator(mode="after")
    def _check(self) -> DPOSection:
        if self.select_by == "accuracy" and self.eval_problems == 0:
            raise ValueError(
                "dpo.select_by=accuracy needs dpo.eval_problems > 0 (or use select_by=reward_accuracy or loss)"
            )
        if self.loss in ("cdpo", "robust") and not 0 < self.label_smoothing < 0.5:
            raise ValueError(
                f"dpo.loss={self.loss} needs 0 < dpo.label_smoothing < 0.5 (at 0 it is plain DPO: loss=sigmoid)"
            )
        if self.loss in ("hinge", "ipo", "ipo_mean") and self.label_smoothing:
            raise ValueError(f"dpo.label_smoothing is not used by dpo.loss={self.loss}; set it to 0")
        return self
