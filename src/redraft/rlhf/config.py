"""Configs for `redraft rm train`, `redraft dpo train` and the RLHF loop.

The reward-model and DPO sections, which the trainers in :mod:`redraft.training` read, are in
:mod:`redraft.config` with the other trainers' sections.

Loaded like every stage config: pydantic defaults <- the user's YAML <- ``--set`` overrides, with
unknown keys and wrong types reported as one-line ConfigErrors.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_serializer, model_validator

from redraft.config import (
    RUN,
    DPOSection,
    ModelSection,
    OptimSection,
    RewardModelSection,
    RLSection,
    RunSection,
    Section,
    StageConfig,
    TaskSection,
)
from redraft.config.base import share_keys, without_keys
from redraft.config.rl import SHARED_SAMPLING_KEYS

# The subsections that sample: rlhf.max_new_tokens and rlhf.stop are theirs (they have no keys of their own).
SAMPLING_SECTIONS = ("simulated", "ppo", "dpo")
PAIRS = "the preference data: training pairs, ratings, held-out pairs"


class PairsSection(Section):
    """Where preference data comes from (the feedback export's files)."""

    train_path: str | None = Field(
        None, description="preference pairs, pairs.jsonl: {prompt, chosen, rejected} per line (--pairs sets it)"
    )
    ratings_path: str | None = Field(
        None,
        description="ratings.jsonl: {prompt, completion, rating}; completions of a prompt with different ratings "
        "become pairs",
    )
    val_path: str | None = Field(
        None,
        description="held-out pairs; without them, val_fraction of the prompts (with all their pairs) are held out",
    )
    val_fraction: float = Field(0.1, ge=0, lt=1, description="share of the prompts held out when there is no val_path")


class SimulatedSection(Section):
    """The in-process simulated annotator: sample K completions per prompt, label them."""

    noise: float = Field(0.1, ge=0, le=0.5, description="probability of flipping a judgement (training prompts only)")
    prompts: int = Field(
        20000,
        ge=1,
        description="training prompts labelled per round (the reward model needs tens of thousands of pairs)",
    )
    val_prompts: int = Field(256, ge=0, description="validation prompts labelled without noise (the held-out pairs)")
    samples_per_prompt: int = Field(
        8, ge=2, description="completions sampled per prompt; the annotator ranks them (identical ones give no pair)"
    )
    temperature: float = Field(1.0, gt=0, description="sampling temperature of those completions")
    max_new_tokens: int = Field(6, ge=1, description="most tokens per completion (set by rlhf.max_new_tokens)")
    stop: list[str] = Field([], description="strings that end a completion (set by rlhf.stop)")


class AppCollectSection(Section):
    """`rlhf.collect: app`: each round's completions go through the feedback store and its HTTP API."""

    store_url: str | None = Field(
        None, description="the feedback store's SQLAlchemy URL (None: a SQLite file feedback.db in the round's folder)"
    )
    kinds: list[Literal["compare", "rank", "rate", "correct"]] = Field(
        default_factory=lambda: ["rank"],
        min_length=1,
        description="item kinds queued per prompt (a ranking of K completions gives K(K−1)/2 pairs)",
    )
    labels_per_item: int = Field(1, ge=1, le=50, description="distinct annotators per item")
    annotators: int = Field(8, ge=1, description="simulated annotators labelling at once over HTTP")
    wait: bool = Field(
        False,
        description="people label in the browser (`redraft feedback serve`): queue the items and wait until every "
        "one is labelled, instead of simulated annotators (--wait)",
    )
    poll_seconds: float = Field(10.0, gt=0, description="wait: how often the store is checked for finished labels")


def _default_ppo() -> RLSection:
    return RLSection(
        # lr 1e-5 / 60 iterations / 1 epoch: the same validation accuracy as lr 3e-5 / 100 / 2 epochs at a
        # tenth of the KL; lr 1e-4 and β 0.05 hacked a weaker reward model (experiments/rlhf.md).
        algorithm="ppo",
        iterations=60,
        prompts_per_iteration=64,
        samples_per_prompt=4,
        kl_coef=0.1,
        kl_estimator="k1",
        epochs=1,
        minibatch_size=128,
        eval_every=10,
        optim=OptimSection(lr=1e-5, warmup_steps=5, weight_decay=0.0, min_lr_ratio=1.0),
    )


class RLHFSection(Section):
    """Rounds of sample -> collect preferences -> reward model + PPO, or DPO -> evaluate."""

    method: Literal["ppo", "dpo"] = Field(
        "ppo", description="ppo: a reward model on the round's pairs, then PPO against it; dpo: DPO on the pairs"
    )
    collect: Literal["simulated", "app"] = Field(
        "simulated",
        description="simulated: the in-process labeller; app: the feedback web app (simulated annotators over "
        "HTTP, or people) (--collect)",
    )
    app: AppCollectSection = Field(
        AppCollectSection(), description="collect=app: the store, the items and who labels them"
    )
    rounds: int = Field(1, ge=1, description="rounds; each starts from the previous round's policy")
    test_problems: int | None = Field(
        None, ge=1, description="greedy test accuracy after each round on this many problems (None: the whole split)"
    )
    max_new_tokens: int = Field(
        6,
        ge=1,
        description="answer length wherever the rounds sample: collection, PPO, DPO's checks and the evaluation (one "
        "length, so the KLs of every method compare)",
    )
    stop: list[str] = Field(
        [],
        description="strings that end a completion wherever the rounds sample: collection, PPO, DPO's checks and "
        "the evaluation (special tokens such as <|im_end|> too)",
    )
    simulated: SimulatedSection = Field(
        SimulatedSection(), description="what each round samples, and the simulated annotator's noise"
    )
    reward_model: RewardModelSection = Field(RewardModelSection(), description="method=ppo: the reward model")
    dpo: DPOSection = Field(DPOSection(), description="method=dpo: DPO of the policy")
    ppo: RLSection = Field(
        default_factory=_default_ppo,
        description="method=ppo: the RL run against the reward model (any rl.algorithm works)",
    )

    @model_validator(mode="before")
    @classmethod
    def _one_answer_length_and_stop_list(cls, data: Any) -> Any:
        return share_keys(cls, data, "rlhf", SAMPLING_SECTIONS, SHARED_SAMPLING_KEYS)

    @field_serializer(*SAMPLING_SECTIONS, mode="wrap")
    def _without_shared_keys(self, section: Section, handler) -> dict[str, Any]:
        return without_keys(handler(section), SHARED_SAMPLING_KEYS)

    @model_validator(mode="after")
    def _check(self) -> RLHFSection:
        if self.app.wait and self.collect != "app":
            raise ValueError("rlhf.app.wait (--wait) needs rlhf.collect=app (--collect app)")
        return self


class RewardModelConfig(StageConfig):
    """`redraft rm train`: a reward model from preference pairs."""

    run: RunSection = Field(RunSection(name="reward_model"), description=RUN)
    model: ModelSection = Field(
        ModelSection(), description="the model the reward model starts from (--model sets model.path)"
    )
    pairs: PairsSection = Field(PairsSection(), description=PAIRS)
    reward_model: RewardModelSection = Field(RewardModelSection(), description="the reward model and its training")


class DPOConfig(StageConfig):
    """`redraft dpo train`: DPO of model.path on preference pairs."""

    run: RunSection = Field(RunSection(name="dpo"), description=RUN)
    task: TaskSection | None = Field(
        None,
        description="optional: a task (the keys of `redraft sft`'s task section) whose validation problems add greedy "
        "accuracy to each validation, and choose the kept policy (dpo.select_by auto or accuracy); None: the pairs "
        "alone judge the policy (held-out implicit-reward accuracy)",
    )
    model: ModelSection = Field(
        ModelSection(), description="the policy, also the frozen reference (--model sets model.path)"
    )
    pairs: PairsSection = Field(PairsSection(), description=PAIRS)
    dpo: DPOSection = Field(DPOSection(), description="DPO and its training")

    @model_validator(mode="after")
    def _check(self) -> DPOConfig:
        if self.dpo.select_by == "accuracy" and self.task is None:
            raise ValueError(
                "dpo.select_by=accuracy needs a task: section whose validation problems it is measured on "
                "(or use select_by=reward_accuracy, which needs only the held-out pairs)"
            )
        return self


class RLHFConfig(StageConfig):
    """`redraft rlhf`: rounds of sample -> collect preferences -> reward model + PPO, or DPO -> evaluate."""

    run: RunSection = Field(RunSection(name="rlhf"), description=RUN)
    task: TaskSection = Field(
        TaskSection(), description="the task whose prompts are sampled and whose checker evaluates"
    )
    model: ModelSection = Field(
        ModelSection(), description="the starting policy, usually an SFT model (--model sets model.path)"
    )
    rlhf: RLHFSection = Field(RLHFSection(), description="the loop: collection, reward model, PPO or DPO")
