"""Per-token KL estimators and the controllers that set the KL coefficient β.

Tokens are sampled from π_θ (log-prob ``logp``); with log r = log π_ref − log π_θ on each token,
Schulman's estimators of KL(π_θ ‖ π_ref) are

- k1 = −log r               (unbiased, high variance, can be negative per token)
- k2 = (log r)² / 2         (biased, low variance, ≥ 0)
- k3 = (r − 1) − log r      (unbiased, low variance, ≥ 0)

The controllers hold β in ``.value``; the trainer calls ``update(current_kl, n_steps)`` after
each batch. ``FixedKLController`` never changes β. ``AdaptiveKLController`` is Ziegler et al.'s
proportional controller:

    e = clip(current_kl / target − 1, −0.2, 0.2);   β ← β · (1 + e · n_steps / horizon)
"""

from __future__ import annotations

from typing import Literal

import torch

KLKind = Literal["k1", "k2", "k3"]

# exp(20) ≈ 4.9e8 is far beyond any useful penalty yet finite in every float dtype we train in.
_MAX_ABS_LOG_RATIO = 20.0


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, kind: KLKind) -> torch.Tensor:
    """Per-token KL estimate of ``kind`` from the sampling policy's and the reference's log-probs."""
    log_ratio = ref_logp - logp
    if kind == "k1":
        return -log_ratio
    if kind == "k2":
        return 0.5 * log_ratio**2
    if kind == "k3":
        # Clamping both terms alike keeps k3 ≥ 0 (x − 1 − log x ≥ 0 holds for the clamped x too).
        log_ratio = log_ratio.clamp(-_MAX_ABS_LOG_RATIO, _MAX_ABS_LOG_RATIO)
        return torch.expm1(log_ratio) - log_ratio
    raise ValueError(f"unknown KL estimator {kind!r}; expected 'k1', 'k2' or 'k3'")


class FixedKLController:
    """A constant KL coefficient."""

    def __init__(self, coef: float) -> None:
        self.value = float(coef)

    def update(self, current_kl: float, n_steps: int) -> None:
        """Keep β as it is (same interface as the adaptive controller)."""


class AdaptiveKLController:
    """Ziegler et al.'s controller: nudges β so the measured KL moves towards ``target``."""

    def __init__(self, init_coef: float, target: float, horizon: float) -> None:
        if target <= 0 or horizon <= 0:
            raise ValueError(f"target and horizon must be positive, got target={target}, horizon={horizon}")
        self.value = float(init_coef)
        self.target = float(target)
        self.horizon = float(horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        """Scale β by 1 + clip(current_kl / target − 1, ±0.2) · n_steps / horizon."""
        proportional_error = min(max(float(current_kl) / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + proportional_error * n_steps / self.horizon
