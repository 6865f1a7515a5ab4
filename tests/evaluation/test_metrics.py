import math

import pytest

from redraft.evaluation.metrics import mean_ci95, paired_difference_ci95, pass_at_k


def test_pass_at_k_hand_values():
    assert pass_at_k(8, 0, 8) == 0.0
    assert pass_at_k(8, 1, 8) == 1.0
    assert pass_at_k(8, 1, 1) == pytest.approx(1 / 8)
    # 1 - C(2,2)/C(4,2) = 1 - 1/6
    assert pass_at_k(4, 2, 2) == pytest.approx(5 / 6)
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 4)


def test_mean_ci95():
    mean, half = mean_ci95([1.0, 0.0, 1.0, 0.0])
    assert mean == 0.5
    assert half == pytest.approx(1.96 * math.sqrt((1 / 3) / 4))


def test_paired_difference_ci95_on_hand_values():
    after, before = [1.0, 1.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0]
    mean, ci = paired_difference_ci95(after, before)
    # differences 1, 0, 0, 1: mean 0.5, sample sd sqrt(1/3), CI 1.96 * sd / 2
    assert mean == 0.5 and abs(ci - 1.96 * math.sqrt(1 / 3) / 2) < 1e-12
    with pytest.raises(ValueError):
        paired_difference_ci95([1.0], [1.0, 0.0])
