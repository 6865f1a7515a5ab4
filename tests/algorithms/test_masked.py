"""Masked reductions against hand-computed numbers."""

from __future__ import annotations

import math

import pytest
import torch

from redraft.algorithms import masked_mean, masked_sum, masked_var, masked_whiten
from tests.algorithms.sharding import run_sharded

# Masked-in entries are 1, 2 (row 0) and 5 (row 1); 3, 4 and 6 are padding.
X = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
MASK = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
# mean = (1 + 2 + 5) / 3 = 8/3; deviations −5/3, −2/3, 7/3; squares sum (25 + 4 + 49) / 9 = 78/9
MEAN = 8 / 3
SQUARED_DEVIATION = 78 / 9


def test_masked_sum_all_and_per_dim():
    assert masked_sum(X, MASK).item() == pytest.approx(8.0)  # 1 + 2 + 5
    torch.testing.assert_close(masked_sum(X, MASK, dim=1), torch.tensor([3.0, 5.0]))  # 1+2, 5
    torch.testing.assert_close(masked_sum(X, MASK, dim=0), torch.tensor([1.0, 7.0, 0.0]))  # 1, 2+5, –


def test_masked_mean_all_per_dim_and_empty():
    assert masked_mean(X, MASK).item() == pytest.approx(MEAN)
    torch.testing.assert_close(masked_mean(X, MASK, dim=1), torch.tensor([1.5, 5.0]))  # 3/2, 5/1
    # Column 2 has no masked-in entry: 0 rather than 0/0.
    torch.testing.assert_close(masked_mean(X, MASK, dim=0), torch.tensor([1.0, 3.5, 0.0]))
    assert masked_mean(X, torch.zeros_like(MASK)).item() == 0.0


def test_bool_mask_equals_float_mask_and_padding_nan_is_ignored():
    poisoned = X.clone()
    poisoned[0, 2] = float("nan")
    poisoned[1, 0] = float("inf")
    assert masked_mean(poisoned, MASK.bool()).item() == pytest.approx(MEAN)
    assert masked_var(poisoned, MASK.bool()).item() == pytest.approx(SQUARED_DEVIATION / 2)
    assert torch.isfinite(masked_whiten(poisoned, MASK)).all()


def test_masked_var_unbiased_and_biased():
    assert masked_var(X, MASK).item() == pytest.approx(SQUARED_DEVIATION / 2)  # 78/18 = 4.3333
    assert masked_var(X, MASK, unbiased=False).item() == pytest.approx(SQUARED_DEVIATION / 3)  # 2.8889


def test_masked_var_with_too_few_entries_is_zero():
    one_entry = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    assert masked_var(X, one_entry).item() == 0.0
    assert masked_var(X, torch.zeros_like(MASK)).item() == 0.0


def test_masked_whiten_hand_computed():
    std = math.sqrt(SQUARED_DEVIATION / 2)  # sqrt(13/3) = 2.081666
    expected = torch.tensor(
        [
            [(1 - MEAN) / std, (2 - MEAN) / std, 0.0],  # −0.800641, −0.320256, padding → 0
            [0.0, (5 - MEAN) / std, 0.0],  # 1.120897
        ]
    )
    torch.testing.assert_close(masked_whiten(X, MASK), expected)
    # Without the shift the mean 8/3 is added back: 1.866026, 2.346411, 3.787564; padding still 0.
    torch.testing.assert_close(masked_whiten(X, MASK, shift_mean=False), expected + MEAN * MASK)


def test_masked_whiten_of_empty_or_constant_is_zero():
    assert masked_whiten(X, torch.zeros_like(MASK)).abs().sum().item() == 0.0
    torch.testing.assert_close(masked_whiten(torch.full((2, 3), 7.0), MASK), torch.zeros(2, 3))


def test_whitening_shards_with_an_all_reduce_equals_whitening_the_whole_batch():
    x = torch.randn(6, 5, generator=torch.Generator().manual_seed(0))
    mask = torch.rand(6, 5, generator=torch.Generator().manual_seed(1)) > 0.3
    shards = run_sharded(masked_whiten, [(x[:2], mask[:2]), (x[2:], mask[2:])])
    torch.testing.assert_close(torch.cat(shards), masked_whiten(x, mask))
