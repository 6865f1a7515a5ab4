"""Math answers checked with math-verify: ``#### 72`` (GSM8K), ``\\boxed{\\frac12}``, LaTeX, plain numbers.

The one implementation behind ``task.match: math`` (the checker of math tasks) and the ``math``
reward (``redraft.rewards.math_match``), so a task's accuracy and its reward always agree.

GSM8K marks the final answer with ``####``: when a completion has one, only the line after the
first ``####`` is judged (a model that keeps writing after its answer is not graded on what it
wrote next). Otherwise math-verify reads the completion's last ``\\boxed{}``, LaTeX expression or
number. Never raises on garbage and never hangs: each math-verify parse or comparison is cut off
after ``timeout_seconds`` (math-verify uses ``signal.alarm``, so it works only in the main thread;
from another thread the batch is scored in a fresh child process, killed if it overruns).
"""

from __future__ import annotations

import logging
import multiprocessing
import re
import threading
import time

log = logging.getLogger(__name__)

# math-verify's regexes and sympy work grow with the text; the final answer sits at the end of
# a completion, so only its tail is parsed.
MATH_MAX_CHARS = 4000
# One example costs at most about this many math-verify timeouts: two parses of the reference
# (plain, then wrapped in $...$), one of the completion, and up to four comparisons.
_TIMEOUTS_PER_EXAMPLE = 8
_CHILD_STARTUP_SECONDS = 60.0
_GSM8K_MARK = "####"
_BOXED = re.compile(r"\\boxed\s*\{")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def judged_text(completion: str, max_chars: int = MATH_MAX_CHARS) -> str:
    """The part of a completion a math check reads: the line after its first ``####``, else its tail."""
    head, mark, rest = completion.partition(_GSM8K_MARK)
    if mark:
        return rest.strip().split("\n", 1)[0][:max_chars]
    return completion[-max_chars:]


def final_answer(completion: str) -> str | None:
    """The answer a completion commits to, as text (for logs and "did the answer change" metrics):
    the line after ``####``, else the last ``\\boxed{...}``, else the last number."""
    if _GSM8K_MARK in completion:
        return judged_text(completion) or None
    boxes = list(_BOXED.finditer(completion))
    if boxes:
        start = boxes[-1].end()
        depth = 1
        for i in range(start, len(completion)):
            depth += {"{": 1, "}": -1}.get(completion[i], 0)
            if depth == 0:
                return completion[start:i].strip()
        return None
    numbers = _NUMBER.findall(completion)
    return numbers[-1].replace(",", "") if numbers else None


def math_score(gold: str, completion: str, timeout_seconds: int = 3, max_chars: int = MATH_MAX_CHARS) -> float:
    """1.0 when ``completion``'s final answer is mathematically equal to ``gold``, else 0.0."""
    return math_scores([(gold, completion)], timeout_seconds, max_chars)[0]


def math_scores(pairs: list[tuple[str, str]], timeout_seconds: int = 3, max_chars: int = MATH_MAX_CHARS) -> list[float]:
    """``math_score`` of each (reference, completion) pair; off the main thread, in a child process."""
    # Only the judged text travels (to a child process) and is parsed.
    pairs = [(str(gold), judged_text(str(completion), max_chars)) for gold, completion in pairs]
    if threading.current_thread() is threading.main_thread():
        return [_score_judged(gold, text, timeout_seconds) for gold, text in pairs]
    return _math_scores_in_child(pairs, timeout_seconds)


def _score_judged(gold: str, text: str, timeout_seconds: int) -> float:
    from math_verify import parse, verify
    from math_verify.errors import TimeoutException

    try:
        reference = parse(gold, parsing_timeout=timeout_seconds) or parse(f"${gold}$", parsing_timeout=timeout_seconds)
        predicted = parse(text, parsing_timeout=timeout_seconds)
        if not reference or not predicted:
            return 0.0
        return float(verify(reference, predicted, timeout_seconds=timeout_seconds))
    except (Exception, TimeoutException):
        # math-verify already turns its own failures into "no match"; this catches what it
        # lets through (e.g. errors while formatting a pathological expression).
        log.debug("math-verify failed on %r", text[:200], exc_info=True)
        return 0.0


def _math_worker(sender, pairs: list[tuple[str, str]], timeout_seconds: int) -> None:
    for index, (gold, text) in enumerate(pairs):
        sender.send((index, _score_judged(gold, text, timeout_seconds)))
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
        log.warning("math check: child process scored %d of %d examples; the rest get 0.0", received, len(pairs))
    return scores
