"""Sections that say what is learned: the task, the tokenizer and the model."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from redraft.config.base import Section

BUILT_IN_REWARDS = ("checker", "math", "code")  # task.reward names besides 'module:function' (rewards/named.py)


class TaskSection(Section):
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
    def _check(self) -> TaskSection:
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


class TokenizerSection(Section):
    path: str | None = Field(
        None, description="an existing tokenizer folder; otherwise one is trained on the task corpus"
    )
    vocab_size: int = Field(300, ge=8, description="vocabulary size of a trained byte-level BPE tokenizer")
    min_frequency: int = Field(2, ge=1, description="a trained tokenizer merges only pairs seen at least this often")


class ModelSection(Section):
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
