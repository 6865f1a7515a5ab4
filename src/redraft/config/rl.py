"""Sections of RL and SCoRe self-correction (reward models and DPO: :mod:`redraft.config.preferences`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_serializer, field_validator, model_validator

from redraft.config.base import Section, share_keys, without_keys
from redraft.config.training import (
    EvalSection,
    LoraSection,
    MixedPrecision,
    OptimSection,
    TrainSection,
    mixed_precision_field,
)


class RLSection(Section):
    """Policy-gradient training against a verifiable reward (GRPO, RLOO, REINFORCE++, PPO)."""

    algorithm: Literal["grpo", "rloo", "reinforce_pp", "ppo"] = Field(
        "grpo",
        description="advantage estimator: grpo (group-normalised reward), rloo (leave-one-out baseline), "
        "reinforce_pp (REINFORCE++: batch-whitened returns), ppo (GAE with a learned critic)",
    )
    iterations: int = Field(100, ge=0, description="RL iterations (sample, score, update); 0 skips the stage")
    prompts_per_iteration: int = Field(
        64, ge=1, description="prompts sampled per iteration, over all processes (a multiple of their number)"
    )
    samples_per_prompt: int = Field(
        8, ge=1, description="completions per prompt (the group that GRPO and RLOO compare; >= 2 for them)"
    )
    temperature: float = Field(1.0, gt=0, description="sampling temperature of the rollouts (the log-probs use it too)")
    max_new_tokens: int = Field(16, ge=1, description="most tokens per reply (and per greedy validation answer)")
    stop: list[str] = Field(
        [],
        description="strings that end a reply, cut from the text the reward sees (special tokens such as <|im_end|> "
        "too); the reply's tokens through the stop string are trained on",
    )
    epochs: int = Field(1, ge=1, description="passes over each iteration's rollouts")
    minibatch_size: int = Field(
        512, ge=1, description="sequences per optimizer step, over all processes (a multiple of their number)"
    )
    # 128 rows: on 2 CPU cores the 512-row GRPO update then peaks at about half the memory and runs about
    # 1.2x faster than in one pass (bench/rl_step.py); on a GPU a larger chunk may use it better.
    micro_batch_size: int | None = Field(
        128,
        ge=1,
        description="sequences per forward/backward pass within a minibatch, over all processes: the minibatch's "
        "gradient is accumulated over chunks of this many, which bounds activation memory without changing the "
        "update beyond floating-point order (None: the whole minibatch in one pass)",
    )
    clip_eps: float = Field(0.2, gt=0, description="PPO ratio clip: the ratio π/π_old is kept within [1 − ε, 1 + ε]")
    clip_eps_high: float | None = Field(
        None, gt=0, description="upper clip ε of the ratio (DAPO's clip-higher; None: clip_eps)"
    )
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
    kl_coef: float = Field(
        0.0, ge=0, description="β of the KL(π ‖ π_ref) penalty to the starting policy (0 = none, as TRL's default)"
    )
    kl_estimator: Literal["k1", "k2", "k3"] = Field(
        "k3",
        description="Schulman's per-token KL(π ‖ π_ref) estimator, each clamped to [-10, 10] as in OpenRLHF: "
        "k1 = log π − log π_ref, k2 = ½(log r)², k3 = r − 1 − log r. Used everywhere the KL goes: the GRPO "
        "loss term, the reward of REINFORCE++/PPO, and the per-sequence sum folded into RLOO's score (TRL's "
        "RLOO always uses k1 there: set k1 for parity)",
    )
    adaptive_kl: bool = Field(
        False, description="adapt β (Ziegler et al.'s controller) so the measured KL moves towards kl_target"
    )
    log_reference_kl: bool = Field(
        False,
        description="log KL(π ‖ π_ref) even when nothing uses it (kl_coef 0, no adaptive KL): costs one reference "
        "forward pass over the rollouts per iteration; without it the update's KL(π_old ‖ π) is logged as approx_kl",
    )
    kl_target: float = Field(0.05, gt=0, description="adaptive_kl: the KL per sequence (nats) the controller aims at")
    kl_horizon: int = Field(
        10_000, ge=1, description="adaptive_kl: the controller's horizon in samples (larger = slower changes of β)"
    )
    gamma: float = Field(1.0, ge=0, le=1, description="discount over tokens for PPO's GAE and REINFORCE++'s returns")
    lam: float = Field(0.95, ge=0, le=1, description="GAE λ (PPO): bias-variance trade-off of the advantages")
    value_clip_eps: float | None = Field(
        0.2,
        gt=0,
        description="PPO critic: clip the new value to within ε of the old one in the loss (None: no clipping)",
    )
    critic_lr: float = Field(1e-4, gt=0, description="PPO critic's learning rate (the policy uses optim.lr)")
    truncation_penalty: float = Field(
        0.0, ge=0, description="subtracted from the reward of replies cut at max_new_tokens"
    )
    max_seconds: float | None = Field(
        None, gt=0, description="wall-clock budget: stop after the iteration that reaches it (None: iterations alone)"
    )
    eval_every: int = Field(10, ge=1, description="greedy validation accuracy every N iterations")
    eval_problems: int = Field(256, ge=0, description="validation problems of that check (0 = off)")
    save_every: int = Field(20, ge=1, description="write a resumable checkpoint every N iterations")
    keep_checkpoints: int = Field(2, ge=1, description="keep only the newest N checkpoints")
    log_every: int = Field(1, ge=1, description="log the iteration's metrics every N iterations")
    generation_backend: Literal["local", "ray"] = Field(
        "local",
        description="ray: sample rollouts on Ray actors (pip install 'redraft[ray]'), one prompt's group per call; "
        "every sample has its own seed, so the rollouts are the same as with local sampling",
    )
    ray_workers: int | None = Field(
        None, ge=1, description="ray: generation actors (None: one per CPU of the Ray cluster)"
    )
    mixed_precision: MixedPrecision = mixed_precision_field()
    optim: OptimSection = Field(
        OptimSection(lr=1e-4, warmup_steps=5, weight_decay=0.0, min_lr_ratio=1.0),
        description="the policy's AdamW and learning-rate schedule (one step per minibatch)",
    )
    lora: LoraSection = Field(
        LoraSection(), description="LoRA adapters (peft) on the policy; the PPO critic trains all its weights"
    )

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
        if self.lora.enabled and self.generation_backend == "ray":
            raise ValueError("rl.lora needs rl.generation_backend=local (Ray workers load full weights)")
        return self


DEFAULT_INSTRUCTION = (
    "\nThere might be an error in the answer above. Correct it if needed and give the final answer.\n{prompt}"
)


class SelfCorrectionSection(Section):
    """The multi-attempt protocol shared by SCoRe training, its baselines and evaluation.

    After each attempt the model sees ``instruction`` (``{prompt}`` and ``{question}`` are filled
    in); it is the same whatever the attempt was, so it never says whether the attempt was right.
    """

    attempts: int = Field(2, ge=2, le=8, description="attempts per problem; metrics compare the first and the last")
    instruction: str = Field(
        DEFAULT_INSTRUCTION,
        description="text shown after each attempt ({prompt} and {question} are filled in); the same whatever the "
        "attempt was, so it never says whether the attempt was right",
    )


SCORE_BASELINES = ("prompting", "pair_sft", "star", "single_turn_rl", "multiturn_rl", "control")
# The score stage's subsections that sample: their answer length and stop strings are the stage's own
# score.max_new_tokens and score.stop (they have no keys of their own).
SAMPLING_SECTIONS = ("pair_sft", "rl", "star", "eval")
SHARED_SAMPLING_KEYS = ("max_new_tokens", "stop")


class ScoreSection(Section):
    """SCoRe after Pair-SFT on the model's own drafts, and the baselines it is compared with.

    Every RL run here (Stage I, Stage II, the RL baselines) uses the settings of ``rl`` (its
    ``iterations`` is set per run): the single-turn and naive multi-turn RL baselines get
    ``stage1_iterations + stage2_iterations`` iterations, the single-attempt control gets the
    wall-clock time that Pair-SFT + Stage I + Stage II took.
    """

    enabled: bool = Field(True, description="run the self-correction stage (in the main job: after evaluation)")
    max_new_tokens: int = Field(
        8,
        ge=1,
        description="most tokens per attempt wherever the stage samples: Pair-SFT's drafts and checks, STaR, every "
        "RL run and the evaluation (one length, so no method is judged on replies longer than it trained on)",
    )
    stop: list[str] = Field(
        [],
        description="strings that end an attempt wherever the stage samples, cut from its text before it is checked "
        "(special tokens such as <|im_end|> too)",
    )
    protocol: SelfCorrectionSection = Field(
        SelfCorrectionSection(),
        description="the attempts and the instruction between them, for training and evaluation",
    )
    draft_temperature: float = Field(
        1.0, gt=0, description="Pair-SFT drafts are the model's own samples at this temperature"
    )
    drafts_per_problem: int = Field(
        1,
        ge=1,
        description="Pair-SFT drafts sampled per training problem: more distinct wrong drafts to learn corrections "
        "from",
    )
    wrong_draft_share: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="rebalance Pair-SFT's rows so this share has a wrong draft (None: the drafts' own mix)",
    )
    pair_sft_anchor: float = Field(
        0.0,
        ge=0,
        description="Pair-SFT adds this weight × KL(SFT model ‖ model) on every attempt-1 token (0 = off), so "
        "learning attempt 2 does not pull attempt 1 away from the SFT model",
    )
    pair_sft: TrainSection = Field(
        TrainSection(
            max_steps=300,
            batch_size=128,
            eval_every=100,
            save_every=100,
            eval_accuracy_problems=0,
            optim=OptimSection(lr=1e-3, warmup_steps=20),
        ),
        description="Pair-SFT: SFT on the model's own drafts followed by the instruction and a right answer (the "
        "demonstration where the checker accepts it, else a right draft)",
    )
    rl: RLSection = Field(
        RLSection(algorithm="rloo", eval_problems=0, save_every=50),
        description="settings of every RL run here (Stage I, Stage II, the RL baselines); iterations is set per run",
    )
    stage1_iterations: int = Field(
        60, ge=0, description="Stage I iterations (attempt 1 held at the base model by beta2)"
    )
    stage2_iterations: int = Field(60, ge=0, description="Stage II iterations (both attempts rewarded, bonus alpha)")
    alpha: float = Field(10.0, ge=0, description="Stage II shaping bonus α·(r2 − r1) on attempt 2")
    beta1: float = Field(
        0.01, ge=0, description="KL coefficient on attempt 2 (Stage I) and on every attempt (Stage II)"
    )
    beta2: float = Field(
        0.1, ge=0, description="Stage I: the strong KL coefficient keeping attempt 1 at the base model"
    )
    # Attempt 1 gets no reward in Stage I, so its samples only set the context attempt 2 learns to correct.
    stage1_first_temperature: float | None = Field(
        None,
        ge=0,
        description="Stage I samples attempt 1 at this temperature (0 = greedy; None = rl.temperature, as in the "
        "paper). Off rl.temperature, attempt 1's tokens no longer come from the policy whose log-probs the "
        "k3 KL estimator (β2 anchor) uses, so its KL is no longer an unbiased estimate of KL(π ‖ π_ref): with "
        "greedy tokens it measures the KL at the argmax path only",
    )
    star_iterations: int = Field(
        2, ge=1, description="STaR baseline: rounds of sample, keep successful corrections, fine-tune"
    )
    star_problems: int = Field(4096, ge=1, description="STaR baseline: problems sampled per round")
    star: TrainSection = Field(
        TrainSection(
            max_steps=100,
            batch_size=64,
            eval_every=50,
            save_every=50,
            eval_accuracy_problems=0,
            optim=OptimSection(lr=5e-4, warmup_steps=10),
        ),
        description="STaR baseline: the fine-tuning of each round",
    )
    baselines: list[Literal["prompting", "pair_sft", "star", "single_turn_rl", "multiturn_rl", "control"]] = Field(
        list(SCORE_BASELINES), description="the baselines trained and evaluated next to SCoRe"
    )
    eval: EvalSection = Field(
        EvalSection(scaling_budgets=[2, 4, 8, 16]),
        description="evaluation of every method (split, problems, answer length, inference-scaling budgets)",
    )

    @model_validator(mode="before")
    @classmethod
    def _one_answer_length(cls, data: Any) -> Any:
        return share_keys(cls, data, "score", SAMPLING_SECTIONS, SHARED_SAMPLING_KEYS)

    @field_serializer(*SAMPLING_SECTIONS, mode="wrap")
    def _without_shared_keys(self, section: Section, handler) -> dict[str, Any]:
        return without_keys(handler(section), SHARED_SAMPLING_KEYS)
