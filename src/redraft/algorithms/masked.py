"""Reductions over the masked-in entries of a tensor (action tokens of a (B, T) batch).

Masks are binary, bool or 0/1 float, with the shape of ``x``: a nonzero entry is included, and
its value is not used as a weight. Masked-out entries never reach the arithmetic (they are
replaced before reducing), so padding may hold any number, NaN and inf included.

- ``masked_sum``:    Σ_{m=1} x
- ``masked_mean``:   Σ_{m=1} x / n, with n = Σ m; 0 when n = 0
- ``masked_var``:    Σ_{m=1} (x − mean)² / (n − 1)  (or / n when ``unbiased=False``); 0 with
  fewer entries than that needs, since there is no spread to measure
- ``masked_whiten``: (x − mean) / sqrt(var + eps) on masked-in entries (mean added back when
  ``shift_mean=False``), 0 elsewhere; ``var`` is the unbiased one, over every process's shard
  when given ``all_reduce``
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Sum of the masked-in entries of ``x``, over everything or along ``dim``."""
    kept = torch.where(mask.bool(), x, 0.0)
    return kept.sum() if dim is None else kept.sum(dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of the masked-in entries of ``x``; 0 where nothing is masked in."""
    keep = mask.bool()
    count = keep.sum() if dim is None else keep.sum(dim)
    # With no entry the sum is 0, so any divisor ≥ 1 gives the documented 0.
    return masked_sum(x, keep, dim) / count.clamp(min=1).to(x.dtype)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of all masked-in entries of ``x`` (Bessel-corrected when ``unbiased``)."""
    keep = mask.bool()
    squared_deviation = masked_sum((x - masked_mean(x, keep)) ** 2, keep)
    count = keep.sum()
    divisor = count - 1 if unbiased else count
    # divisor ≤ 0 only with 0 or 1 entries, where the squared deviation is exactly 0.
    return squared_deviation / divisor.clamp(min=1).to(x.dtype)


def masked_whiten(
    x: torch.Tensor,
    mask: torch.Tensor,
    shift_mean: bool = True,
    eps: float = 1e-8,
    all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Standardise the masked-in entries of ``x`` by their joint mean and std; 0 elsewhere.

    ``x`` may be one shard of a batch split over processes: ``all_reduce`` (a sum over them) then
    makes the mean and std those of the whole batch, as if it were whitened in one piece.
    """
    keep = mask.bool()
    reduce = all_reduce or (lambda t: t)
    total, count = reduce(torch.stack([masked_sum(x, keep), keep.sum().to(x.dtype)])).unbind()
    mean = total / count.clamp(min=1)
    squared_deviation = reduce(masked_sum((x - mean) ** 2, keep))
    var = squared_deviation / (count - 1).clamp(min=1)
    whitened = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return torch.where(keep, whitened, 0.0)
