"""Configs for reward-model training, DPO and the RLHF loop.

Loaded like every stage config: pydantic defaults <- the user's YAML <- ``--set`` overrides, with
unknown keys and wrong types reported as one-line ConfigErrors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, model_validator

from redraft.config import (
    ModelConfig,
    OptimConfig,
    RLSection,
    RunSection,
    Section,
    StageConfig,
    TaskConfig,
    TrainConfig,
    layered_config,
    read_yaml,
)


class PairsSection(Section):
    """Where preference data comes from (the feedback export's files)."""

    train_path: str | None = None  # pairs.jsonl
    ratings_path: str | None = None  # ratings.jsonl; its ratings become pairs too
    val_path: str | None = None  # held-out pairs; without it, val_fraction of the prompts are held out
    val_fraction: float = Field(0.1, ge=0, lt=1)


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


class SimulatedSection(Section):
    """The in-process simulated annotator: sample K completions per prompt, label them."""

    noise: float = Field(0.1, ge=0, le=0.5)  # probability of flipping a judgement
    prompts: int = Field(20000, ge=1)  # training prompts labelled per round (the reward model needs tens of thousands of pairs)
    val_prompts: int = Field(256, ge=0)  # validation prompts labelled without noise (held-out pairs)
    samples_per_prompt: int = Field(8, ge=2)
    temperature: float = Field(1.0, gt=0)
    max_new_tokens: int = Field(6, ge=1)


class AppCollectSection(Section):
    """`rlhf.collect: app`: each round's completions go through the feedback store and its HTTP API."""

    store_url: str | None = None  # None: a SQLite file in the round's folder (feedback.db)
    kinds: list[Literal["compare", "rank", "rate", "correct"]] = Field(default_factory=lambda: ["rank"], min_length=1)
    labels_per_item: int = Field(1, ge=1, le=50)
    annotators: int = Field(8, ge=1)  # simulated annotators labelling at once over HTTP
    wait: bool = False  # people label in the browser (`redraft feedback serve`); wait until every item is labelled
    poll_seconds: float = Field(10.0, gt=0)


def _default_ppo() -> RLSection:
    return RLSection(
        # lr 1e-5 / 60 iterations / 1 epoch: the same validation accuracy as lr 3e-5 / 100 / 2 epochs at a
        # tenth of the KL; lr 1e-4 and β 0.05 hacked a weaker reward model (docs/rlhf.md).
        algorithm="ppo", iterations=60, prompts_per_iteration=64, samples_per_prompt=4, max_new_tokens=6,
        kl_coef=0.1, kl_estimator="k1", epochs=1, minibatch_size=128, eval_every=10,
        optim=OptimConfig(lr=1e-5, warmup_steps=5, weight_decay=0.0, min_lr_ratio=1.0),
    )


class RLHFSection(Section):
    method: Literal["ppo", "dpo"] = "ppo"
    # simulated: the in-process labeller; app: the feedback web app (simulated annotators over HTTP, or people)
    collect: Literal["simulated", "app"] = "simulated"
    app: AppCollectSection = AppCollectSection()
    rounds: int = Field(1, ge=1)
    test_problems: int | None = Field(None, ge=1)  # greedy test accuracy after each round (None: whole split)
    eval_max_new_tokens: int = Field(16, ge=1)  # for every method's evaluation, so their KLs compare
    simulated: SimulatedSection = SimulatedSection()
    reward_model: RewardModelSection = RewardModelSection()
    dpo: DPOSection = DPOSection()
    ppo: RLSection = Field(default_factory=_default_ppo)  # any rl.algorithm works against the reward model

    @model_validator(mode="after")
    def _check(self) -> RLHFSection:
        if self.app.wait and self.collect != "app":
            raise ValueError("rlhf.app.wait (--wait) needs rlhf.collect=app (--collect app)")
        return self


class RewardModelConfig(StageConfig):
    """`redraft rm train`: a reward model from preference pairs."""

    run: RunSection = RunSection(name="reward_model")
    model: ModelConfig = ModelConfig()
    pairs: PairsSection = PairsSection()
    reward_model: RewardModelSection = RewardModelSection()


class DPOConfig(StageConfig):
    """`redraft dpo train`: DPO of model.path on preference pairs."""

    run: RunSection = RunSection(name="dpo")
    task: TaskConfig = TaskConfig()
    model: ModelConfig = ModelConfig()
    pairs: PairsSection = PairsSection()
    dpo: DPOSection = DPOSection()


class RLHFConfig(StageConfig):
    """`redraft rlhf`: rounds of sample -> collect preferences -> reward model + PPO, or DPO -> evaluate."""

    run: RunSection = RunSection(name="rlhf")
    task: TaskConfig = TaskConfig()
    model: ModelConfig = ModelConfig()
    rlhf: RLHFSection = RLHFSection()


C = TypeVar("C", bound=StageConfig)


def load_rlhf_config(cls: type[C], path: str | Path | None = None, overrides: list[str] | None = None) -> C:
    """The defaults above <- YAML file <- ``--set`` overrides, validated."""
    layers = [(str(path), read_yaml(path))] if path is not None else []
    return layered_config(cls, layers, overrides, cls.__name__)
