"""Rewards: plain callables ``(prompts, completions, **fields) -> list[float]`` and ways to build them.

verifiers: answer checkers (exact, numeric, math-verify) and shaping (format, length, truncation).
sandbox: run model-written Python in an isolated process and reward passing tests.
"""

from redraft.rewards.base import RewardFn, combine, require_field
from redraft.rewards.sandbox import (
    Isolation,
    SandboxError,
    SandboxResult,
    code_reward,
    extract_code,
    isolation,
    run_many,
    run_python,
)
from redraft.rewards.verifiers import (
    exact_match,
    format_reward,
    length_penalty,
    math_match,
    numeric_match,
    truncated_fraction,
    truncation_penalty,
)

__all__ = [
    "Isolation",
    "RewardFn",
    "SandboxError",
    "SandboxResult",
    "code_reward",
    "combine",
    "exact_match",
    "extract_code",
    "format_reward",
    "isolation",
    "length_penalty",
    "math_match",
    "numeric_match",
    "require_field",
    "run_many",
    "run_python",
    "truncated_fraction",
    "truncation_penalty",
]
