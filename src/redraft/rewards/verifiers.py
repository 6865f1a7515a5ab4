"""Built-in rule-based rewards: answer checkers, format, length and truncation shaping.

Every public reward here is a *factory*: call it (with its options, or with none) to get a
RewardFn, e.g. ``combine((math_match(), 1.0), (truncation_penalty(0.5), 1.0))``. One shape for
all of them keeps configs uniform: a name plus keyword options always builds a reward.

Answer checkers read the field ``answer`` (one reference answer per completion) and return
1.0 or 0.0. Shaping rewards return 0.0 or a negative penalty.
"""

from __future__ import annotations

import logging
import multiprocessing
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from redraft.errors import ConfigError
from redraft.rewards.base import RewardFn, require_field
from redraft.tasks.base import answers_match, extract_answer

log = logging.getLogger(__name__)

# math-verify's regexes and sympy work grow with the text; the final answer sits at the end of
# a completion, so only its tail is parsed.
MATH_MAX_CHARS = 4000
# One example costs at most about this many math-verify timeouts: two parses of the reference
# (plain, then wrapped in $...$), one of the completion, and up to four comparisons.
_TIMEOUTS_PER_EXAMPLE = 8
_CHILD_STARTUP_SECONDS = 60.0


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
    also tried wrapped in them. Never raises on garbage and never hangs: each math-verify parse
    or comparison is cut off after ``timeout_seconds`` (an integer: math-verify uses
    ``signal.alarm``). Signals only work in the main thread, so when called from another thread
    the batch is scored in a fresh child process instead (about a second of start-up), which is
    killed if it overruns; unscored examples then get 0.0.
    """
    if not (isinstance(timeout_seconds, int) and timeout_seconds >= 1):
        raise ConfigError(f"math_match timeout_seconds must be a whole number of seconds >= 1, got {timeout_seconds!r}")

    def math_match_reward(prompts: list[str], completions: list[str], **fields: Any) -> list[float]:
        answers = require_field(fields, "answer", len(completions))
        pairs = [(str(a), str(c)[-max_chars:]) for a, c in zip(answers, completions)]
        if threading.current_thread() is threading.main_thread():
            return [_math_score(gold, pred, timeout_seconds) for gold, pred in pairs]
        return _math_scores_in_child(pairs, timeout_seconds)

    return math_match_reward


def _math_score(gold: str, completion: str, timeout_seconds: int) -> float:
    from math_verify import parse, verify
    from math_verify.errors import TimeoutException

    try:
        reference = parse(gold, parsing_timeout=timeout_seconds) or parse(f"${gold}$", parsing_timeout=timeout_seconds)
        predicted = parse(completion, parsing_timeout=timeout_seconds)
        if not reference or not predicted:
            return 0.0
        return float(verify(reference, predicted, timeout_seconds=timeout_seconds))
    except (Exception, TimeoutException):
        # math-verify already turns its own failures into "no match"; this catches what it
        # lets through (e.g. errors while formatting a pathological expression).
        log.debug("math-verify failed on %r", completion[:200], exc_info=True)
        return 0.0


def _math_worker(sender, pairs: list[tuple[str, str]], timeout_seconds: int) -> None:
    for index, (gold, completion) in enumerate(pairs):
        sender.send((index, _math_score(gold, completion, timeout_seconds)))
    sender.close()


def _math_scores_in_child(pairs: list[tuple[str, str]], timeout_seconds: int) -> list[float]:
    # "spawn", not fork: forking a process that runs other threads (torch, thread pools) can
    # deadlock the child on a lock some other thread held.
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    worker = context.Process(target=_math_worker, args=(sender, pairs, timeout_seconds), daemon=True)
    worker.start()
    sender.close()
    scores = [0.0] * len(pairs)
    deadline = time.monotonic() + _CHILD_STARTUP_SECONDS + len(pairs) * _TIMEOUTS_PER_EXAMPLE * timeout_seconds
    received = 0
    try:
        while received < len(pairs):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not receiver.poll(remaining):
                break
            index, score = receiver.recv()
            scores[index] = score
            received += 1
    except EOFError:
        pass
    finally:
        worker.kill()
        worker.join()
        receiver.close()
    if received < len(pairs):
        log.warning("math_match: child process scored %d of %d examples; the rest get 0.0", received, len(pairs))
    return scores


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
