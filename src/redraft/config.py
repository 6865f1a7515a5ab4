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
    """A config section: unknown keys are errors, every field carries a ``description``
    (shown by ``redraft config show --explain`` and in docs/config-reference.md)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RunSection(Section):
    name: str = Field(
        "main",
        description="run name: outputs go to <output_dir>/<name>/ (--name sets it). The default is the command's: "
        "main for `redraft run` (the main job), pretrain, sft, rl, score, eval, generate, reward_model, dpo and rlhf "
        "for the others, so a stage run on its own never writes into the main job's folder",
    )
    output_dir: str = Field("runs", description="folder that holds the run folders")
    seed: int = Field(
        0, description="seed of weight initialisation, data order and sampling; the same seed repeats a run exactly"
    )

    @property
    def directory(self) -> Path:
        return Path(self.output_dir) / self.name


BUILT_IN_REWARDS = ("checker", "math", "code")  # task.reward names besides 'module:function' (rewards/named.py)


class TaskConfig(Section):
    """A task: the built-in arithmetic family or a custom JSONL/Parquet file."""

    kind: Literal["arithmetic", "file", "math", "code"] = Field(
        "arithmetic",
        description="arithmetic: generated problems (the knobs below); file: a JSONL/Parquet file (train_path); "
        "math: generated GSM8K-style word problems, solutions ending '#### n', checked with math-verify; code: "
        "HumanEval (built in) or a HumanEval/MBPP-format file (train_path), checked by running the tests in the "
        "sandbox",
    )
    seed: int = Field(1234, description="seed that draws the arithmetic problems, or shuffles and splits a task file")
    train_size: int = Field(20_000, ge=1, description="training problems (for a file: at most this many)")
    demonstrations: int | None = Field(
        None,
        ge=1,
        description="how many training problems come with a worked answer (None: all). SFT, pretraining and "
        "Pair-SFT targets use only these; RL and the other checker-scored stages draw prompts from the whole "
        "training split, as in practice, where demonstrations are scarce and a checker is cheap",
    )
    val_size: int = Field(
        256,
        ge=0,
        description="validation problems, for choosing checkpoints and hyper-parameters (a file gives at most a "
        "tenth of its remaining rows)",
    )
    test_size: int = Field(
        1_000,
        ge=1,
        description="test problems of the final evaluation (without test_path a file gives at most a fifth of its "
        "rows)",
    )
    # Arithmetic knobs (difficulty).
    ops: list[Literal["+", "-", "*"]] = Field(["+"], description="arithmetic: the operators problems are drawn with")
    min_digits: int = Field(1, ge=1, le=12, description="arithmetic: fewest digits of an operand")
    max_digits: int = Field(3, ge=1, le=12, description="arithmetic: most digits of an operand")
    num_operands: int = Field(2, ge=2, le=6, description="arithmetic: operands per problem")
    reverse_answer: bool = Field(
        False,
        description="arithmetic: write the answer least-significant digit first (the checker then compares the "
        "exact digit string)",
    )
    pad_digits: bool = Field(
        True,
        description="arithmetic: zero-pad every operand to max_digits and the answer to the width of the largest "
        "possible result (058+067=0125), so each digit sits at a fixed position; small models then learn the digit "
        "alignment reliably instead of after a seed-dependent loss plateau (+ and * only)",
    )
    teacher_slip_rate: float = Field(
        0.0,
        ge=0,
        le=1,
        description="share of the training problems needing a carry whose demonstration is the carry-free sum "
        "(58+67 -> 15), as an imperfect teacher writes it; the checker grades the true sum. SFT imitates the "
        "slips, a verifiable reward does not reward them (addition only)",
    )
    # Custom task files (kind: file).
    train_path: str | None = Field(None, description="kind=file: the training file, .jsonl or .parquet")
    test_path: str | None = Field(
        None, description="kind=file: a test file; without it the test and validation problems come from train_path"
    )
    prompt_field: str = Field("prompt", description="kind=file: the column holding the question")
    answer_field: str = Field(
        "answer", description="kind=file: the column holding the answer the checker compares with"
    )
    completion_field: str | None = Field(
        None, description="kind=file: a column with the SFT target text (None: the answer is the target)"
    )
    match: Literal["exact", "numeric", "math", "code"] = Field(
        "numeric",
        description="how the checker reads a completion: numeric = its first number, exact = its first line, "
        "math = math-verify equivalence with the answer ('#### 72', '\\boxed{}', LaTeX; the default of kind math), "
        "code = the program passes the row's tests in the sandbox (kind code)",
    )
    reward: str | dict[str, float] = Field(
        "checker",
        description="what RL rewards: checker (the task's own answer check, 1/0), math (math-verify equivalence "
        "with the answer: '#### 72', '\\boxed{}', LaTeX), code (the completion run against the 'tests' column in the "
        "sandbox), or 'module:function', a callable f(prompts, completions, **columns) -> list[float] as in TRL, "
        "given every dataset column under its own name; a mapping {name: weight} sums several",
    )
    template: str = Field("{question}=", description="prompt template; {question} is replaced by the problem text")
    few_shot: int = Field(0, ge=0, description="prefix every prompt with this many solved training problems")

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
    path: str | None = Field(
        None, description="an existing tokenizer folder; otherwise one is trained on the task corpus"
    )
    vocab_size: int = Field(300, ge=8, description="vocabulary size of a trained byte-level BPE tokenizer")
    min_frequency: int = Field(2, ge=1, description="a trained tokenizer merges only pairs seen at least this often")


class ModelConfig(Section):
    path: str | None = Field(
        None,
        description="a local HF checkpoint folder, or a Hugging Face Hub id (taken from the local HF cache; downloaded "
        "only when online); otherwise a fresh model is built from preset",
    )
    dtype: Literal["fp32", "bf16"] = Field(
        "fp32",
        description="the dtype the weights load (or a fresh model is built) in: fp32, or bf16 to halve the memory",
    )
    preset: str = Field(
        "tiny",
        description="size of a fresh model (layers, hidden size, heads): micro (1, 64, 2), tiny (2, 128, 4), "
        "small (4, 256, 4), base (6, 384, 6)",
    )
    arch: Literal["llama", "gpt2"] = Field("llama", description="architecture of a fresh model")
    layers: int | None = Field(None, ge=1, description="transformer blocks of a fresh model (None: the preset's)")
    hidden: int | None = Field(None, ge=8, description="hidden size of a fresh model (None: the preset's)")
    heads: int | None = Field(
        None, ge=1, description="attention heads of a fresh model; must divide hidden (None: the preset's)"
    )
    max_positions: int = Field(
        256, ge=16, description="longest sequence (prompt + completion, tokens) a fresh model takes"
    )


class OptimConfig(Section):
    lr: float = Field(1e-3, gt=0, description="AdamW peak learning rate")
    weight_decay: float = Field(
        0.1, ge=0, description="AdamW weight decay (not applied to 1-D parameters: norms, biases)"
    )
    beta1: float = Field(0.9, ge=0, lt=1, description="AdamW β1 (first-moment decay)")
    beta2: float = Field(0.95, ge=0, lt=1, description="AdamW β2 (second-moment decay)")
    eps: float = Field(1e-8, gt=0, description="AdamW ε (added to the denominator)")
    warmup_steps: int = Field(50, ge=0, description="optimizer steps of linear warm-up from 0 to lr")
    min_lr_ratio: float = Field(
        0.1, ge=0, le=1, description="after warm-up, cosine decay to lr × this at the last step (1.0 = constant lr)"
    )
    grad_clip: float = Field(1.0, gt=0, description="clip the global gradient norm to this before each step")


class FreezeConfig(Section):
    embeddings: bool = Field(False, description="do not train the input embeddings")
    layers: int = Field(0, ge=0, description="freeze the first N transformer blocks")


class LoraConfig(Section):
    enabled: bool = Field(
        False, description="train LoRA adapters instead of all weights (the exported model has them merged)"
    )
    r: int = Field(8, ge=1, description="LoRA rank")
    alpha: float = Field(16.0, description="LoRA scaling numerator: the update is scaled by alpha / r")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the LoRA input")
    target_modules: list[str] = Field(
        ["q_proj", "k_proj", "v_proj", "o_proj"], description="names of the linear layers that get adapters"
    )


class TrainConfig(Section):
    max_steps: int = Field(500, ge=1, description="optimizer steps")
    batch_size: int = Field(
        64,
        ge=1,
        description="sequences per micro-batch, over all processes (a multiple of their number); a step takes "
        "grad_accum_steps micro-batches",
    )
    grad_accum_steps: int = Field(1, ge=1, description="micro-batches accumulated into one optimizer step")
    max_length: int = Field(
        128, ge=4, description="training sequences (prompt + target, tokens) are cut to this length"
    )
    log_every: int = Field(10, ge=1, description="log the training loss every N steps")
    eval_every: int = Field(
        100,
        ge=1,
        description="validation every N steps: loss (and greedy accuracy for SFT, two-attempt checks for Pair-SFT); "
        "the best model so far is exported",
    )
    eval_accuracy_problems: int = Field(
        128,
        ge=0,
        description="SFT: greedy accuracy on this many validation problems at each validation (Pair-SFT: the "
        "two-attempt checks); 0 = off",
    )
    max_new_tokens: int = Field(
        16,
        ge=1,
        description="SFT: most tokens per greedy answer in that validation-accuracy check (the stage's answer length)",
    )
    save_every: int = Field(100, ge=1, description="write a resumable checkpoint every N steps")
    keep_checkpoints: int = Field(2, ge=1, description="keep only the newest N checkpoints")
    patience: int = Field(0, ge=0, description="early stopping after N validations without improvement; 0 = off")
    max_seconds: float | None = Field(
        None, gt=0, description="wall-clock budget: stop after the step that reaches it (None: max_steps alone)"
    )
    optim: OptimConfig = Field(OptimConfig(), description="AdamW and its warm-up + cosine learning-rate schedule")
    freeze: FreezeConfig = Field(FreezeConfig(), description="parts of the model kept fixed")
    lora: LoraConfig = Field(LoraConfig(), description="LoRA adapters (peft)")


class SamplingConfig(Section):
    temperature: float = Field(0.0, ge=0, description="sampling temperature; 0 = greedy")
    top_p: float = Field(
        1.0,
        gt=0,
        le=1,
        description="nucleus sampling: keep the smallest set of tokens with this much probability (1 = off)",
    )
    top_k: int = Field(0, ge=0, description="keep only the k most likely tokens (0 = off)")
    max_new_tokens: int = Field(16, ge=1, description="most tokens generated per completion")
    stop: list[str] = Field(
        [],
        description="strings that end a completion; the string is cut from the text. Special tokens such as "
        "<|im_end|> work too; the model's EOS tokens (generation_config's list included) always end one",
    )
    batch_size: int = Field(512, ge=1, description="prompts generated together in one batch")
    backend: Literal["auto", "fast", "hf"] = Field(
        "auto",
        description="fast = redraft's fused decode path for plain Llama models, hf = the model's own forward, "
        "auto = fast where it applies; both give the same tokens",
    )


class EvalSettings(Section):
    split: Literal["val", "test"] = Field("test", description="the split evaluated")
    num_problems: int | None = Field(
        None, ge=1, description="evaluate the first N problems of the split (None: the whole split)"
    )
    k: int = Field(8, ge=1, description="samples per problem for pass@k (pass@1, 2, 4, … up to k)")
    temperature: float = Field(
        1.0, gt=0, description="temperature of the pass@k samples (and of the inference-scaling samples)"
    )
    max_new_tokens: int = Field(16, ge=1, description="most tokens generated per answer (per attempt)")
    stop: list[str] = Field(
        [],
        description="strings that end an answer, cut from its text before it is checked (special tokens such as "
        "<|im_end|> too)",
    )
    batch_size: int = Field(512, ge=1, description="prompts generated together in one batch")
    # Self-correction (`redraft eval --self-correct`): attempt 1 at first_temperature, later attempts greedy.
    self_correct: bool = Field(
        False,
        description="measure self-correction (Acc@t1, Acc@t2, Δ, …) instead of accuracy and pass@k (--self-correct)",
    )
    first_temperature: float = Field(
        0.0,
        ge=0,
        description="self-correction: temperature of attempt 1 (0 = greedy, the headline); later attempts are greedy",
    )
    scaling_budgets: list[int] = Field(
        [],
        description="self-correction: inference-scaling budgets B, even numbers (generations per problem: B samples "
        "+ majority vote against B/2 self-corrected samples + vote); [] = off",
    )

    @model_validator(mode="after")
    def _check(self) -> EvalSettings:
        if any(b < 2 or b % 2 for b in self.scaling_budgets):
            raise ValueError(f"scaling_budgets must be even numbers >= 2 (got {self.scaling_budgets})")
        return self


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
    optim: OptimConfig = Field(
        OptimConfig(lr=1e-4, warmup_steps=5, weight_decay=0.0, min_lr_ratio=1.0),
        description="the policy's AdamW and learning-rate schedule (one step per minibatch)",
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


class ScoreSection(Section):
    """SCoRe after Pair-SFT on the model's own drafts, and the baselines it is compared with.

    Every RL run here (Stage I, Stage II, the RL baselines) uses the settings of ``rl`` (its
    ``iterations`` is set per run): the single-turn and naive multi-turn RL baselines get
    ``stage1_iterations + stage2_iterations`` iterations, the single-attempt control gets the
    wall-clock time that Pair-SFT + Stage I + Stage II took.
    """

    enabled: bool = Field(True, description="run the self-correction stage (in the main job: after evaluation)")
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
    pair_sft: TrainConfig = Field(
        TrainConfig(
            max_steps=300,
            batch_size=128,
            eval_every=100,
            save_every=100,
            eval_accuracy_problems=0,
            optim=OptimConfig(lr=1e-3, warmup_steps=20),
        ),
        description="Pair-SFT: SFT on the model's own drafts followed by the instruction and the right answer",
    )
    rl: RLSection = Field(
        RLSection(algorithm="rloo", max_new_tokens=8, eval_problems=0, save_every=50),
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
    star: TrainConfig = Field(
        TrainConfig(
            max_steps=100,
            batch_size=64,
            eval_every=50,
            save_every=50,
            eval_accuracy_problems=0,
            optim=OptimConfig(lr=5e-4, warmup_steps=10),
        ),
        description="STaR baseline: the fine-tuning of each round",
    )
    baselines: list[Literal["prompting", "pair_sft", "star", "single_turn_rl", "multiturn_rl", "control"]] = Field(
        list(SCORE_BASELINES), description="the baselines trained and evaluated next to SCoRe"
    )
    eval: EvalSettings = Field(
        EvalSettings(max_new_tokens=8, scaling_budgets=[2, 4, 8, 16]),
        description="evaluation of every method (split, problems, answer length, inference-scaling budgets)",
    )


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
    train: TrainConfig = Field(
        TrainConfig(
            max_steps=1200,
            batch_size=64,
            eval_every=200,
            save_every=200,
            log_every=20,
            optim=OptimConfig(lr=1e-4, warmup_steps=30, weight_decay=0.0),
        ),
        description="training on the preference pairs (batch_size in pairs; validation = held-out pairs)",
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
    # lr 1e-4 collapses the policy (both log-probs fall); experiments/rlhf.md has the runs behind these values.
    train: TrainConfig = Field(
        TrainConfig(
            max_steps=600,
            batch_size=64,
            eval_every=50,
            save_every=100,
            log_every=10,
            optim=OptimConfig(lr=3e-5, warmup_steps=10, weight_decay=0.0, min_lr_ratio=1.0),
        ),
        description="training on the preference pairs (batch_size in pairs)",
    )

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


class LoggingConfig(Section):
    tensorboard: bool = Field(
        False, description="also log metrics to TensorBoard, in the stage's folder (pip install 'redraft[tensorboard]')"
    )
    wandb: bool = Field(False, description="also log metrics to Weights & Biases (pip install 'redraft[wandb]')")
    progress: bool = Field(True, description="show a progress bar while training")


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
    logging: LoggingConfig = Field(LoggingConfig(), description=LOGGING)


class LMStageConfig(StageConfig):
    task: TaskConfig = Field(TaskConfig(), description=TASK)
    tokenizer: TokenizerConfig = Field(TokenizerConfig(), description=TOKENIZER)
    model: ModelConfig = Field(ModelConfig(), description=MODEL)
    train: TrainConfig = Field(TrainConfig(), description=TRAIN)


# A stage run on its own is named after its command, so it never writes into the main job's runs/main.
class PretrainConfig(LMStageConfig):
    """Tokenizer + causal-LM pretraining on the task corpus (`redraft pretrain`)."""

    run: RunSection = Field(RunSection(name="pretrain"), description=RUN)


class SFTConfig(LMStageConfig):
    """Completion-only fine-tuning of ``model.path`` (`redraft sft`)."""

    run: RunSection = Field(RunSection(name="sft"), description=RUN)


class EvalConfig(StageConfig):
    run: RunSection = Field(RunSection(name="eval"), description=RUN)
    task: TaskConfig = Field(TaskConfig(), description=TASK)
    model: ModelConfig = Field(ModelConfig(), description="the model evaluated (model.path; --model sets it)")
    eval: EvalSettings = Field(EvalSettings(), description=EVAL)
    self_correction: SelfCorrectionSection = Field(
        SelfCorrectionSection(), description="the self-correction protocol of --self-correct: attempts and instruction"
    )


class RLConfig(StageConfig):
    run: RunSection = Field(RunSection(name="rl"), description=RUN)
    task: TaskConfig = Field(TaskConfig(), description=TASK)
    model: ModelConfig = Field(ModelConfig(), description="the starting policy (model.path; --model sets it)")
    rl: RLSection = Field(RLSection(), description=RL)


class ScoreConfig(StageConfig):
    """``redraft score``: model.path is the single-attempt SFT model to start from."""

    run: RunSection = Field(RunSection(name="score"), description=RUN)
    task: TaskConfig = Field(TaskConfig(), description=TASK)
    model: ModelConfig = Field(
        ModelConfig(), description="the single-attempt SFT model to start from (model.path; --model sets it)"
    )
    score: ScoreSection = Field(ScoreSection(), description="SCoRe (Pair-SFT, Stage I, Stage II) and its baselines")


class GenerateConfig(StageConfig):
    run: RunSection = Field(RunSection(name="generate"), description=RUN)
    model: ModelConfig = Field(ModelConfig(), description="not used: the checkpoint is --model")
    sampling: SamplingConfig = Field(SamplingConfig(), description="how completions are sampled")


class PretrainStageConfig(TrainConfig):
    max_steps: int = Field(
        500, ge=0, description="optimizer steps; 0 skips pretraining, so SFT starts from freshly initialised weights"
    )


class PipelineConfig(StageConfig):
    """The main job: tokenizer -> pretraining -> SFT -> RL -> evaluation -> report."""

    task: TaskConfig = Field(TaskConfig(), description=TASK)
    tokenizer: TokenizerConfig = Field(TokenizerConfig(), description=TOKENIZER)
    model: ModelConfig = Field(ModelConfig(), description="the model pretraining (or SFT) starts from")
    pretrain: PretrainStageConfig = Field(PretrainStageConfig(), description="causal-LM pretraining on the task corpus")
    sft: TrainConfig = Field(TrainConfig(), description="SFT on the demonstrations, loss on completions only")
    rl: RLSection = Field(RLSection(), description=RL)
    sft_same_time: bool = Field(
        True,
        description="also continue SFT from the SFT model for the RL stage's wall-clock time and evaluate it, "
        "so the report shows what RL adds over more SFT at equal cost",
    )
    eval: EvalSettings = Field(EvalSettings(), description="evaluation of the SFT, RL and equal-time SFT models")
    score: ScoreSection = Field(
        ScoreSection(enabled=False), description="SCoRe self-correction and its baselines, from the SFT model"
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


def _describe(error: dict[str, Any], hints: dict[str, str] | None = None) -> str:
    location = ".".join(str(p) for p in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"unknown key '{location}'"
    got = error.get("input")
    shown = "" if isinstance(got, dict) else f" (got {got!r})"
    hint = None
    if error["type"] == "string_type":  # text was expected: was it YAML that made something else of it?
        hint = next((h for key, h in (hints or {}).items() if location == key or location.startswith(key + ".")), None)
        if hint is None and isinstance(got, (dict, list)):
            hint = (
                "YAML read the value as a "
                + ("mapping" if isinstance(got, dict) else "list")
                + ": quote it to mean text"
            )
    return f"'{location}': {error['msg']}{shown}" + (f"; {hint}" if hint else "")


def quoting_hint(assignment: str) -> tuple[str, str] | None:
    """``(key, hint)`` when YAML reads an override's value as something other than text
    (``task.template={question}`` is the mapping ``{question: null}``): the same override quoted so
    that YAML reads text, for a message to suggest; None when the value already reads as text."""
    import json
    import shlex

    key, _, raw = assignment.partition("=")
    raw = raw.strip()
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        return None  # apply_override keeps such a value as text
    if isinstance(value, str):
        return None
    kind = {dict: "a mapping", list: "a list"}.get(type(value), f"{type(value).__name__} {value!r}")
    quoted = shlex.quote(f"{key.strip()}={json.dumps(raw, ensure_ascii=False)}")
    return (
        key.strip(),
        f"YAML read {raw!r} as {kind}; if you meant the text, quote it for YAML inside the shell's quotes: "
        f"--set {quoted}",
    )


def build_config(cls: type[C], data: dict[str, Any], source: str = "config", hints: dict[str, str] | None = None) -> C:
    """``cls`` validated from ``data``; the first error as one ConfigError line (``hints``: dotted key ->
    advice appended when the error is at or below that key)."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"{source}: {_describe(errors[0], hints)}{more}") from None


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
    hints = dict(hint for assignment in overrides or [] if (hint := quoting_hint(assignment)))
    return build_config(cls, data, source + (" with --set overrides" if overrides else ""), hints)


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
