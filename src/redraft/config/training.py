"""Sections of the training loops, sampling and evaluation."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from redraft.config.base import Section

# YAML reads a bare `no` as false (accelerate's own configs quote it): both mean fp32.
MixedPrecision = Annotated[
    Literal["no", "bf16", "auto"], BeforeValidator(lambda value: "no" if value is False else value)
]


def mixed_precision_field() -> Any:
    """The trainers' ``mixed_precision`` key (one description for the LM, pairwise and RL trainers)."""
    return Field(
        "no",
        description="bf16 = the trainer's forward and backward passes under bfloat16 autocast, with fp32 weights and "
        "optimizer (RL also samples and scores its rollouts under it; evaluation stays in the weights' dtype); auto = "
        "bf16 where the hardware computes it natively (a CUDA GPU with bf16, a CPU with AVX512-BF16 or AMX, where "
        "bf16 matmuls run about 2x faster than fp32), else fp32; no = fp32. Elsewhere bf16 is emulated and many "
        "times slower. `accelerate launch --mixed_precision bf16` adds accelerate's own autocast whatever this says",
    )


class OptimSection(Section):
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
    fused: bool = Field(
        False,
        description="torch's fused AdamW kernel (one kernel per step for all parameters, made for GPUs); on a "
        "2-core CPU it saves about 5 ms a step (under 2% of a training step) and rounds differently in the last "
        "bits, so CPU runs keep the foreach kernel",
    )


class FreezeSection(Section):
    embeddings: bool = Field(False, description="do not train the input embeddings")
    layers: int = Field(0, ge=0, description="freeze the first N transformer blocks")


class LoraSection(Section):
    enabled: bool = Field(
        False,
        description="train LoRA adapters instead of all weights; the exported model has them merged, and the "
        "adapters alone are saved in its adapter/ folder (peft's PeftModel.from_pretrained(base, path))",
    )
    r: int = Field(8, ge=1, description="LoRA rank")
    alpha: float = Field(16.0, description="LoRA scaling numerator: the update is scaled by alpha / r")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the LoRA input")
    target_modules: list[str] | None = Field(
        None,
        description="names of the linear layers that get adapters, or ['all-linear'] for every linear layer but "
        "the output head; None = peft's choice for the architecture (q_proj and v_proj on Llama, Qwen and "
        "Mistral; c_attn on GPT-2)",
    )


class TrainSection(Section):
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
    stop: list[str] = Field(
        [],
        description="SFT: strings that end a greedy answer in that check, cut from its text before it is checked "
        "(special tokens such as <|im_end|> too)",
    )
    save_every: int = Field(100, ge=1, description="write a resumable checkpoint every N steps")
    keep_checkpoints: int = Field(2, ge=1, description="keep only the newest N checkpoints")
    patience: int = Field(0, ge=0, description="early stopping after N validations without improvement; 0 = off")
    max_seconds: float | None = Field(
        None, gt=0, description="wall-clock budget: stop after the step that reaches it (None: max_steps alone)"
    )
    mixed_precision: MixedPrecision = mixed_precision_field()
    optim: OptimSection = Field(OptimSection(), description="AdamW and its warm-up + cosine learning-rate schedule")
    freeze: FreezeSection = Field(FreezeSection(), description="parts of the model kept fixed")
    lora: LoraSection = Field(LoraSection(), description="LoRA adapters (peft)")


class SamplingSection(Section):
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


class EvalSection(Section):
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
    sampled_first_attempt: bool = Field(
        True,
        description="self-correction job (score.eval): also evaluate each two-attempt method with attempt 1 sampled "
        "at T = 1 (the report's 'Attempt 1 sampled' table); off saves one test-split pass per method",
    )
    scaling_budgets: list[int] = Field(
        [],
        description="self-correction: inference-scaling budgets B, even numbers (generations per problem: B samples "
        "+ majority vote against B/2 self-corrected samples + vote); [] = off",
    )

    @model_validator(mode="after")
    def _check(self) -> EvalSection:
        if any(b < 2 or b % 2 for b in self.scaling_budgets):
            raise ValueError(f"scaling_budgets must be even numbers >= 2 (got {self.scaling_budgets})")
        return self
