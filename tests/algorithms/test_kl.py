"""KL estimators and KL-coefficient controllers against hand-computed numbers."""

from __future__ import annotations

import math

import pytest
import torch

from redraft.algorithms import AdaptiveKLController, FixedKLController, kl_penalty


def test_estimators_hand_computed():
    logp = torch.tensor([-1.0, -2.0])
    ref_logp = torch.tensor([-2.0, -1.0])
    # log r = ref_logp − logp = [−1, 1]
    torch.testing.assert_close(kl_penalty(logp, ref_logp, "k1"), torch.tensor([1.0, -1.0]))  # −log r
    torch.testing.assert_close(kl_penalty(logp, ref_logp, "k2"), torch.tensor([0.5, 0.5]))  # (±1)²/2
    # k3 = (e^{log r} − 1) − log r: (e^{−1} − 1) + 1 = e^{−1} = 0.367879; (e − 1) − 1 = e − 2 = 0.718282
    torch.testing.assert_close(kl_penalty(logp, ref_logp, "k3"), torch.tensor([math.exp(-1), math.e - 2]))


@pytest.mark.parametrize("kind", ["k1", "k2", "k3"])
def test_estimators_are_zero_when_policies_agree(kind):
    logp = torch.tensor([-0.3, -1.7, -4.0])
    assert torch.equal(kl_penalty(logp, logp.clone(), kind), torch.zeros(3))


def test_k3_is_nonnegative_and_finite_for_extreme_ratios():
    generator = torch.Generator().manual_seed(0)
    logp = -10 * torch.rand(1000, generator=generator)
    ref_logp = -10 * torch.rand(1000, generator=generator)
    assert (kl_penalty(logp, ref_logp, "k3") >= 0).all()
    extreme = kl_penalty(torch.tensor([0.0, -1000.0]), torch.tensor([-1000.0, 0.0]), "k3")
    assert torch.isfinite(extreme).all() and (extreme >= 0).all()
    # log r = ∓1000: k3 would be ≈ 999 and ≈ e^1000; both are clamped to 10
    torch.testing.assert_close(extreme, torch.tensor([10.0, 10.0]))


def test_every_estimator_is_clamped_to_plus_minus_ten():
    # OpenRLHF's rule (compute_approx_kl): clamp(estimate, −10, 10) for k1, k2 and k3 alike.
    # log r = ref_logp − logp = [−15, −2, 2, 3, 15]
    logp = torch.tensor([0.0, 0.0, -2.0, -3.0, -15.0], requires_grad=True)
    ref_logp = torch.tensor([-15.0, -2.0, 0.0, 0.0, 0.0])
    # k1 = −log r = [15, 2, −2, −3, −15] → [10, 2, −2, −3, −10]
    torch.testing.assert_close(kl_penalty(logp, ref_logp, "k1"), torch.tensor([10.0, 2.0, -2.0, -3.0, -10.0]))
    # k2 = (log r)²/2 = [112.5, 2, 2, 4.5, 112.5] → [10, 2, 2, 4.5, 10]
    torch.testing.assert_close(kl_penalty(logp, ref_logp, "k2"), torch.tensor([10.0, 2.0, 2.0, 4.5, 10.0]))
    # k3 = e^{log r} − 1 − log r = [14 + e^{−15}, 1 + e^{−2}, e² − 3, e³ − 4, e^{15} − 16] → clamp at 10
    expected_k3 = torch.tensor([10.0, 1 + math.exp(-2), math.exp(2) - 3, 10.0, 10.0])
    k3 = kl_penalty(logp, ref_logp, "k3")
    torch.testing.assert_close(k3, expected_k3)
    # A clamped token passes no gradient (and no NaN); unclamped ones do: ∂k3/∂logp = 1 − e^{log r}.
    k3.sum().backward()
    torch.testing.assert_close(logp.grad, torch.tensor([0.0, 1 - math.exp(-2), 1 - math.exp(2), 0.0, 0.0]))


def test_unknown_estimator_raises():
    with pytest.raises(ValueError, match="k4"):
        kl_penalty(torch.zeros(1), torch.zeros(1), "k4")


def test_fixed_controller_never_moves():
    controller = FixedKLController(0.05)
    controller.update(current_kl=100.0, n_steps=1000)
    assert controller.value == 0.05


def test_adaptive_controller_two_updates():
    controller = AdaptiveKLController(init_coef=0.1, target=6.0, horizon=10000)
    # KL 12 → error 12/6 − 1 = 1, clipped to 0.2; β = 0.1 · (1 + 0.2 · 1000/10000) = 0.1 · 1.02 = 0.102
    controller.update(current_kl=12.0, n_steps=1000)
    assert controller.value == pytest.approx(0.102)
    # KL 5.4 → error 5.4/6 − 1 = −0.1; β = 0.102 · (1 − 0.1 · 500/10000) = 0.102 · 0.995 = 0.10149
    controller.update(current_kl=5.4, n_steps=500)
    assert controller.value == pytest.approx(0.10149)


def test_adaptive_controller_rejects_nonpositive_target():
    with pytest.raises(ValueError):
        AdaptiveKLController(init_coef=0.1, target=0.0, horizon=10000)
