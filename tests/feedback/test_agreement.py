from __future__ import annotations

import pytest

from redraft.feedback.agreement import (
    cohen_kappa,
    fleiss_kappa,
    mean_pairwise_cohen_kappa,
    percent_agreement,
    summarize,
)


def test_fleiss_kappa_matches_the_textbook_example():
    # Fleiss (1971) as worked on Wikipedia: 10 subjects, 14 raters, 5 categories -> kappa 0.210.
    table = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    items = [[category for category, n in enumerate(row) for _ in range(n)] for row in table]
    assert fleiss_kappa(items) == pytest.approx(0.210, abs=5e-4)


def test_cohen_kappa_matches_the_textbook_example():
    # Wikipedia: 50 items, both yes 20, A yes/B no 5, A no/B yes 10, both no 15 -> kappa 0.4.
    pairs = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15
    assert cohen_kappa(pairs) == pytest.approx(0.4)


def test_perfect_and_undefined_agreement():
    assert percent_agreement([["a", "a"], ["b", "b", "b"]]) == 1.0
    assert fleiss_kappa([["a", "a"], ["b", "b"]]) == pytest.approx(1.0)
    assert fleiss_kappa([["a", "a"], ["a", "a"]]) is None  # one category: chance agreement is 1
    assert percent_agreement([["a"]]) is None


def test_summary_over_items_with_two_or_more_annotators():
    labels = {1: {"x": "a", "y": "a"}, 2: {"x": "b", "y": "a"}, 3: {"x": "a"}, 4: {"x": "b", "y": "b"}}
    summary = summarize(labels)
    assert summary["items"] == 3
    assert summary["percent_agreement"] == pytest.approx(2 / 3)
    assert summary["mean_cohen_kappa"] == pytest.approx(mean_pairwise_cohen_kappa(labels))
    assert summary["mean_cohen_kappa"] == pytest.approx(cohen_kappa([("a", "a"), ("b", "a"), ("b", "b")]))
