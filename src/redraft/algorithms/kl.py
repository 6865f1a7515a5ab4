"""Per-token KL estimators and the controllers that set the KL coefficient β.

Tokens are sampled from π_θ (log-prob ``logp``); with log r = log π_ref − log π_θ on each token,
Schulman's estimators of KL(π_θ ‖ π_ref) are

- k1 = −log r               (unbiased, high variance, can be negative per token)
- k2 = (log r)² / 2         (biased, low variance, ≥ 0)
- k3 = (r − 1) − log r      (unbiased, low variance, ≥ 0)

One clamping rule for all three, as OpenRLHF's ``compute_approx_kl``: every per-token estimate is
clamped to [−10, 10] (``KL_CLAMP``), so one token with an extreme ratio cannot dominate a loss or a
score, and a clamped token passes no gradient. k2 and k3 are ≥ 0, so for them only the upper
bound acts; for k1 both do. Inside k3 the log-ratio is first limited to ±20 so exp() cannot
overflow; that never changes the result, since k3 > 10 at both log r = −20 and log r = +20.
TRL clamps none of them; with |log r| ≤ 10 (and k3 ≤ 10) the estimates are unclamped and equal.

The controllers hold β in ``.value``; the trainer calls ``update(current_kl, n_steps)`` after
each batch. ``FixedKLController`` never changes β. ``AdaptiveKLController`` is Ziegler et al.'s
proportional controller:

    e = clip(current_kl / target − 1, −0.2, 0.2);   β ← β · (1 + e · n_steps / horizon)
"""

from __future__ import annotations

from typing import Literal

import torch

KLKind = Literal["k1", "k2", "k3"]

# Every estimate is clamped to [−KL_CLAMP, KL_CLAMP] (OpenRLHF's rule).
KL_CLAMP = 10.0
# Overflow guard inside k3 only: k3(±20) > KL_CLAMP, so it never changes the clamped estimate,
# while exp(20) ≈ 4.9e8 stays finite in float32 (and so do the gradients of clamped tokens).
_MAX_ABS_LOG_RATIO = 20.0


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, kind: KLKind) -> torch.Tensor:
    """Per-token KL estimate of ``kind`` from the sampling policy's and the reference's log-probs,
    clamped to [−``KL_CLAMP``, ``KL_CLAMP``]."""
    log_ratio = ref_logp - logp
    if kind == "k1":
        estimate = -log_ratio
    elif kind == "k2":
        estimate = 0.5 * log_ratio**2
    elif kind == "k3":
        log_ratio = log_ratio.clamp(-_MAX_ABS_LOG_RATIO, _MAX_ABS_LOG_RATIO)
        estimate = torch.expm1(log_ratio) - log_ratio
    else:
        raise ValueError(f"unknown KL estimator {kind!r}; expected 'k1', 'k2' or 'k3'")
    return estimate.clamp(-KL_CLAMP, KL_CLAMP)


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
