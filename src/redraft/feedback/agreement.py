"""Inter-annotator agreement on categorical labels (pure functions).

Input: for each item, the categories its annotators chose (items with fewer than two labels
carry no agreement information and are ignored).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from itertools import combinations


def percent_agreement(items: Sequence[Sequence[Hashable]]) -> float | None:
    """Fraction of annotator pairs, over all items, that chose the same category."""
    agree = total = 0
    for labels in items:
        for x, y in combinations(labels, 2):
            agree += x == y
            total += 1
    return agree / total if total else None


def fleiss_kappa(items: Sequence[Sequence[Hashable]]) -> float | None:
    """Fleiss' kappa; items may have different numbers of annotators (each needs at least two).

    Observed agreement is the mean per-item pairwise agreement; chance agreement uses the
    pooled category proportions.
    """
    rated = [labels for labels in items if len(labels) >= 2]
    if not rated:
        return None
    observed = 0.0
    pooled: Counter = Counter()
    for labels in rated:
        n = len(labels)
        counts = Counter(labels)
        observed += (sum(c * c for c in counts.values()) - n) / (n * (n - 1))
        pooled.update(counts)
    observed /= len(rated)
    total = sum(pooled.values())
    chance = sum((c / total) ** 2 for c in pooled.values())
    if chance == 1.0:
        return None  # one category only: kappa is undefined
    return (observed - chance) / (1.0 - chance)


def cohen_kappa(pairs: Sequence[tuple[Hashable, Hashable]]) -> float | None:
    """Cohen's kappa of two annotators over the items they both labelled."""
    if not pairs:
        return None
    n = len(pairs)
    observed = sum(x == y for x, y in pairs) / n
    first = Counter(x for x, _ in pairs)
    second = Counter(y for _, y in pairs)
    chance = sum(first[c] * second[c] for c in first) / (n * n)
    if chance == 1.0:
        return None
    return (observed - chance) / (1.0 - chance)


def mean_pairwise_cohen_kappa(
    labels_by_item: dict[Hashable, dict[Hashable, Hashable]], min_shared: int = 2
) -> float | None:
    """Mean Cohen's kappa over annotator pairs that share at least ``min_shared`` items.

    ``labels_by_item``: item -> {annotator: category}.
    """
    shared: dict[tuple, list[tuple]] = {}
    for by_annotator in labels_by_item.values():
        for a, b in combinations(sorted(by_annotator), 2):
            shared.setdefault((a, b), []).append((by_annotator[a], by_annotator[b]))
    kappas = [k for pairs in shared.values() if len(pairs) >= min_shared and (k := cohen_kappa(pairs)) is not None]
    return sum(kappas) / len(kappas) if kappas else None


def summarize(labels_by_item: dict[Hashable, dict[Hashable, Hashable]]) -> dict[str, float | int | None]:
    """Agreement figures over the items labelled by at least two annotators."""
    multi = [list(by_annotator.values()) for by_annotator in labels_by_item.values() if len(by_annotator) >= 2]
    return {
        "items": len(multi),
        "percent_agreement": percent_agreement(multi),
        "fleiss_kappa": fleiss_kappa(multi),
        "mean_cohen_kappa": mean_pairwise_cohen_kappa(labels_by_item),
    }
