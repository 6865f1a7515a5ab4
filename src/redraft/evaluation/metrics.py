"""Pure metric functions."""

from __future__ import annotations

import math


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
