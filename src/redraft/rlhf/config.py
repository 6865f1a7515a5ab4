"""Configs for `redraft rm train`, `redraft dpo train` and the RLHF loop.

The reward-model and DPO sections, which the trainers in :mod:`redraft.training` read, are in
:mod:`redraft.config` with the other trainers' sections.

Loaded like every stage config: pydantic defaults <- the user's YAML <- ``--set`` overrides, with
unknown keys and wrong types reported as one-line ConfigErrors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, model_validator

from redraft.config import (
    DPOSection,
    ModelConfig,
    OptimConfig,
    RewardModelSection,
    RLSection,
    RunSection,
    Section,
    StageConfig,
    TaskConfig,
    layered_config,
    read_yaml,
)


class PairsSection(Section):
    """Where preference data comes from (the feedback export's files)."""

    train_path: str | None = None  # pairs.jsonl
    ratings_path: str | None = None  # ratings.jsonl; its ratings become pairs too
    val_path: str | None = None  # held-out pairs; without it, val_fraction of the prompts are held out
    val_fraction: float = Field(0.1, ge=0, lt=1)


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
