"""Built-in rule-based rewards: answer checkers, format, length and truncation shaping.

Every public reward here is a *factory*: call it (with its options, or with none) to get a
RewardFn, e.g. ``combine((math_match(), 1.0), (truncation_penalty(0.5), 1.0))``. One shape for
all of them keeps configs uniform: a name plus keyword options always builds a reward.

Answer checkers read the field ``answer`` (one reference answer per completion) and return
1.0 or 0.0. Shaping rewards return 0.0 or a negative penalty.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

from redraft.errors import ConfigError
from redraft.rewards.base import RewardFn, require_field
from redraft.tasks.base import answers_match, extract_answer
from redraft.tasks.math_answers import MATH_MAX_CHARS, math_scores


def _answer_match(match: Literal["exact", "numeric"]) -> RewardFn:
    def reward(prompts: list[str], completions: list[str], **fields: Any) -> list[float]:
        answers = require_field(fields, "answer", len(completions))
        return [float(answers_match(extract_answer(c, match), str(a), match)) for c, a in zip(completions, answers)]

    reward.__name__ = f"{match}_match"
    return reward


def exact_match() -> RewardFn:
    """1.0 when the completion's first line equals ``answer`` (whitespace-trimmed)."""
    return _answer_match("exact")


def numeric_match() -> RewardFn:
    """1.0 when the first number in the completion equals ``answer`` as a float."""
    return _answer_match("numeric")


def math_match(timeout_seconds: int = 3, max_chars: int = MATH_MAX_CHARS) -> RewardFn:
    """1.0 when the completion's final answer is mathematically equal to ``answer`` (math-verify).

    ``\\boxed{\\frac{1}{2}}`` matches ``0.5``; a reference written without $...$ delimiters is
    also tried wrapped in them. A completion with a GSM8K ``####`` is judged on the line after it
    (``redraft.tasks.math_answers``, shared with ``task.match: math``). Never raises on garbage
    and never hangs: each math-verify parse or comparison is cut off after ``timeout_seconds``
    (an integer: math-verify uses
    ``signal.alarm``). Signals only work in the main thread, so when called from another thread
    the batch is scored in a fresh child process instead (about a second of start-up), which is
    killed if it overruns; unscored examples then get 0.0.
    """
    if not (isinstance(timeout_seconds, int) and timeout_seconds >= 1):
        raise ConfigError(f"math_match timeout_seconds must be a whole number of seconds >= 1, got {timeout_seconds!r}")

    def math_match_reward(prompts: list[str], completions: list[str], **fields: Any) -> list[float]:
        answers = require_field(fields, "answer", len(completions))
        return math_scores(list(zip(answers, completions)), timeout_seconds, max_chars)

    return math_match_reward


def format_reward(pattern: str, *, fullmatch: bool = False, flags: int = re.DOTALL) -> RewardFn:
    """1.0 when the completion matches ``pattern`` (``re.search``; ``re.fullmatch`` if asked), else 0.0."""
    try:
        regex = re.compile(pattern, flags)
    except re.error as error:
        raise ConfigError(f"format_reward pattern {pattern!r} is not a valid regex: {error}") from error
    check = regex.fullmatch if fullmatch else regex.search

    def format_match(prompts: list[str], completions: list[str], **fields: Any) -> list[float]:
        return [1.0 if check(c) else 0.0 for c in completions]

    return format_match


def length_penalty(target: int, coef: float, *, measure: Callable[[str], int] = len) -> RewardFn:
    """``-coef`` per unit of length over ``target``; ``measure`` counts the units (characters by
    default; pass e.g. ``lambda text: len(tokenizer.encode(text))`` to count tokens)."""
    if target < 0 or coef < 0:
        raise ConfigError(f"length_penalty needs target >= 0 and coef >= 0, got target={target}, coef={coef}")

    def over_length(prompts: list[str], completions: list[str], **fields: Any) -> list[float]:
        return [-coef * max(0, measure(c) - target) for c in completions]

    return over_length


def truncation_penalty(penalty: float = 1.0) -> RewardFn:
    """``-penalty`` for completions cut off by the length limit (field ``finish_reason`` == "length")."""
    if penalty < 0:
        raise ConfigError(f"truncation_penalty takes a penalty >= 0 (it is subtracted), got {penalty}")

    def truncated(prompts: list[str], completions: list[str], **fields: Any) -> list[float]:
        reasons = require_field(fields, "finish_reason", len(completions))
        return [-penalty if reason == "length" else 0.0 for reason in reasons]

    return truncated


def truncated_fraction(finish_reasons: Sequence[str]) -> float:
    """Share of completions cut off by the length limit (for logging); 0.0 for an empty batch."""
    if not finish_reasons:
        return 0.0
    return sum(reason == "length" for reason in finish_reasons) / len(finish_reasons)
