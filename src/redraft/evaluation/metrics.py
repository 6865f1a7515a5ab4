"""Pure metric functions."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence


def pass_at_k(num_samples: int, num_correct: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): 1 - C(n-c, k) / C(n, k)."""
    if k > num_samples:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {num_samples}")
    if num_samples - num_correct < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(num_samples - num_correct + 1, num_samples + 1))


def mean_ci95(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its normal-approximation 95% confidence interval."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    if n == 1:
        return mean, math.nan
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, 1.96 * math.sqrt(variance / n)


def paired_difference_ci95(after: list[float], before: list[float]) -> tuple[float, float]:
    """Mean of ``after - before`` over the same items, with its 95% CI half-width: the interval for a
    change in accuracy measured on one set of problems, narrower than the two accuracies' own CIs
    because the problems' difficulty cancels."""
    if len(after) != len(before):
        raise ValueError(f"paired samples differ in length: {len(after)} vs {len(before)}")
    return mean_ci95([a - b for a, b in zip(after, before)])


# What self_correction_metrics measures (see redraft.evaluation.self_correction), in the order it lists them.
SELF_CORRECTION_METRICS = (
    "acc@t1",
    "acc@t2",
    "delta",
    "delta_i2c",
    "delta_c2i",
    "changed",
    "changed_text",
    "edit_ratio",
)


def normalized_edit_distance(a: str, b: str) -> float:
    """Levenshtein distance (insert/delete/substitute, cost 1) divided by the longer length: 0 = same text."""
    if not a and not b:
        return 0.0
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1] / max(len(a), len(b))


def self_correction_metrics(
    correct: Sequence[Sequence[bool]],
    answers: Sequence[Sequence[str | None]],
    texts: Sequence[Sequence[str]],
) -> dict[str, tuple[float, float]]:
    """Metric name → (value, 95% CI half-width) from per-problem, per-attempt verdicts, extracted answers, texts.

    All fractions are of ALL problems. ``changed`` compares extracted answers (no answer counts as
    an answer of its own), ``changed_text`` the raw texts; ``edit_ratio`` is the mean
    :func:`normalized_edit_distance` between the first and last attempt's texts.
    """
    if not correct:
        raise ValueError("no problems to score")
    if any(len(attempts) < 2 for attempts in correct):
        raise ValueError("every problem needs at least two attempts")
    first = [float(c[0]) for c in correct]
    last = [float(c[-1]) for c in correct]
    i2c = [float(not a and b) for a, b in zip(first, last)]
    c2i = [float(a and not b) for a, b in zip(first, last)]
    per_problem = {
        "acc@t1": first,
        "acc@t2": last,
        "delta_i2c": i2c,
        "delta_c2i": c2i,
        "changed": [float(a[0] != a[-1]) for a in answers],
        "changed_text": [float(t[0] != t[-1]) for t in texts],
        "edit_ratio": [normalized_edit_distance(t[0], t[-1]) for t in texts],
    }
    result = {name: mean_ci95(values) for name, values in per_problem.items()}
    _, delta_ci = mean_ci95([b - a for a, b in zip(first, last)])
    # Δ's value is taken as the difference of the two transition shares so that the identity
    # Δ = Δ^{i→c} − Δ^{c→i} holds bit for bit (it equals mean(last − first) up to rounding).
    result["delta"] = (result["delta_i2c"][0] - result["delta_c2i"][0], delta_ci)
    return {name: result[name] for name in SELF_CORRECTION_METRICS}


def majority_vote(answers: Sequence[str | None]) -> int | None:
    """Index of the first sample carrying the most frequent answer; ties go to the answer seen first.

    Samples without an answer do not vote; None when no sample has one.
    """
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    top = max(counts.values())
    return next(i for i, a in enumerate(answers) if a is not None and counts[a] == top)


def vote_accuracy(
    answers: Sequence[Sequence[str | None]], correct: Sequence[Sequence[bool]], votes: int
) -> tuple[float, float]:
    """Accuracy (± CI) of the majority vote over each problem's first ``votes`` samples."""
    scores = []
    for problem_answers, problem_correct in zip(answers, correct):
        if len(problem_answers) < votes:
            raise ValueError(f"a majority vote over {votes} samples needs {votes}, got {len(problem_answers)}")
        winner = majority_vote(problem_answers[:votes])
        scores.append(float(winner is not None and problem_correct[winner]))
    return mean_ci95(scores)
