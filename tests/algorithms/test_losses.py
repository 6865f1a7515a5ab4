"""Losses and log-prob helpers against hand-computed numbers, with gradient checks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from redraft.algorithms import (
    aggregate_loss,
    dpo_loss,
    entropy_from_logits,
    logprobs_from_logits,
    ppo_policy_loss,
    value_loss,
)

# Row 0: three tokens 1, 2, 3; row 1: one token 4 then padding (garbage 9s).
PER_TOKEN = torch.tensor([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0]])
AGG_MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])


def test_aggregate_loss_modes_hand_computed():
    # (1 + 2 + 3 + 4) / 4 tokens
    assert aggregate_loss(PER_TOKEN, AGG_MASK, "token_mean").item() == pytest.approx(2.5)
    # mean(6/3, 4/1) = mean(2, 4)
    assert aggregate_loss(PER_TOKEN, AGG_MASK, "seq_mean_token_mean").item() == pytest.approx(3.0)
    # mean(6/3, 4/3) with max_len = T = 3 → 10/6
    assert aggregate_loss(PER_TOKEN, AGG_MASK, "seq_mean_token_sum_norm").item() == pytest.approx(10 / 6)
    # mean(6/5, 4/5)
    assert aggregate_loss(PER_TOKEN, AGG_MASK, "seq_mean_token_sum_norm", max_len=5).item() == pytest.approx(1.0)


def test_aggregate_loss_with_an_empty_sequence():
    per_token = torch.cat([PER_TOKEN, torch.full((1, 3), 9.0)])
    mask = torch.cat([AGG_MASK, torch.zeros(1, 3)])
    assert aggregate_loss(per_token, mask, "token_mean").item() == pytest.approx(2.5)
    # An empty sequence has no token mean and is left out: still mean(2, 4).
    assert aggregate_loss(per_token, mask, "seq_mean_token_mean").item() == pytest.approx(3.0)
    # Constant normaliser: (6/3 + 4/3 + 0) / 3 sequences = 10/9
    assert aggregate_loss(per_token, mask, "seq_mean_token_sum_norm").item() == pytest.approx(10 / 9)


def test_aggregate_loss_rejects_unknown_mode():
    with pytest.raises(ValueError, match="seq_sum"):
        aggregate_loss(PER_TOKEN, AGG_MASK, "seq_sum")


def _ppo_example():
    # Four action tokens covering each branch, then one padding token with an overflowing ratio.
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.5, 0.5, 1.0]])).requires_grad_()
    old_logp = torch.tensor([[0.0, 0.0, 0.0, 0.0, -1000.0]])
    advantages = torch.tensor([[1.0, 1.0, -1.0, -1.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]])
    return logp, old_logp, advantages, mask


def test_ppo_policy_loss_clipping_branches():
    logp, old_logp, advantages, mask = _ppo_example()
    loss, stats = ppo_policy_loss(logp, old_logp, advantages, mask, clip_eps=0.2)
    # ε = 0.2 → clip range [0.8, 1.2]; per token max(−A·ρ, −A·clip(ρ)):
    #   A=+1, ρ=1.5: max(−1.5, −1.2) = −1.2  clipped branch (ratio above range, no gradient)
    #   A=+1, ρ=0.5: max(−0.5, −0.8) = −0.5  unclipped
    #   A=−1, ρ=1.5: max( 1.5,  1.2) =  1.5  unclipped
    #   A=−1, ρ=0.5: max( 0.5,  0.8) =  0.8  clipped branch (ratio below range, no gradient)
    # token mean: (−1.2 − 0.5 + 1.5 + 0.8) / 4 = 0.15
    assert loss.item() == pytest.approx(0.15)
    assert stats["clipfrac"].item() == pytest.approx(0.5)  # 2 of 4
    assert stats["ratio_mean"].item() == pytest.approx(1.0)  # (1.5 + 0.5 + 1.5 + 0.5) / 4
    # k3 with log r = log ρ: ρ=1.5 → 0.5 − ln 1.5 = 0.094535; ρ=0.5 → −0.5 + ln 2 = 0.193147
    # mean = (2 · 0.094535 + 2 · 0.193147) / 4 = 0.143841
    assert stats["approx_kl"].item() == pytest.approx(0.143841, abs=1e-6)
    assert all(not value.requires_grad and value.dim() == 0 for value in stats.values())

    loss.backward()
    # ∂(−A·ρ)/∂logp = −A·ρ on unclipped tokens, 0 on clipped ones and padding; ÷ 4 tokens:
    #   token 1: −1 · 0.5 / 4 = −0.125;  token 2: +1 · 1.5 / 4 = 0.375
    torch.testing.assert_close(logp.grad, torch.tensor([[0.0, -0.125, 0.375, 0.0, 0.0]]))


def test_ppo_policy_loss_clip_higher():
    logp = torch.log(torch.tensor([[1.25]]))
    old_logp = torch.zeros(1, 1)
    advantages = torch.ones(1, 1)
    mask = torch.ones(1, 1)
    # Symmetric ε = 0.2: ρ = 1.25 clips to 1.2 → loss −1.2, clipped
    loss, stats = ppo_policy_loss(logp, old_logp, advantages, mask, clip_eps=0.2)
    assert loss.item() == pytest.approx(-1.2) and stats["clipfrac"].item() == 1.0
    # ε_high = 0.28: range [0.8, 1.28] contains 1.25 → loss −1.25, unclipped
    loss, stats = ppo_policy_loss(logp, old_logp, advantages, mask, clip_eps=0.2, clip_eps_high=0.28)
    assert loss.item() == pytest.approx(-1.25) and stats["clipfrac"].item() == 0.0


def test_ppo_policy_loss_gradient_reaches_logp_only():
    logp, old_logp, advantages, mask = _ppo_example()
    old_logp.requires_grad_()
    advantages.requires_grad_()
    loss, _ = ppo_policy_loss(logp, old_logp, advantages, mask, loss_agg="seq_mean_token_sum_norm", max_len=8)
    loss.backward()
    assert old_logp.grad is None and advantages.grad is None
    assert torch.isfinite(logp.grad).all()
    # Same per-token losses summed (0.6) over the constant max_len 8, one sequence: 0.075
    assert loss.item() == pytest.approx(0.6 / 8)


def _value_example():
    values = torch.tensor([[1.0, 0.6, 0.0, 5.0]], requires_grad=True)
    old_values = torch.tensor([[0.5, 0.5, 0.5, 0.0]], requires_grad=True)
    returns = torch.tensor([[1.0, 1.0, 1.0, 0.0]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])  # last token is padding
    return values, old_values, returns, mask


def test_value_loss_clipped_hand_computed():
    values, old_values, returns, mask = _value_example()
    loss, stats = value_loss(values, old_values, returns, mask, clip_eps=0.2)
    # Clip range V_old ± 0.2 = [0.3, 0.7]; per token max((V − R)², (V_clip − R)²):
    #   V=1.0: max(0, (0.7 − 1)² = 0.09) = 0.09   clipped branch
    #   V=0.6: max(0.16, 0.16) = 0.16             inside the range, not counted as clipped
    #   V=0.0: max(1, (0.3 − 1)² = 0.49) = 1      unclipped
    # loss = 0.5 · (0.09 + 0.16 + 1) / 3 = 0.208333
    assert loss.item() == pytest.approx(0.625 / 3)
    assert stats["value_clipfrac"].item() == pytest.approx(1 / 3)
    assert stats["value_error"].item() == pytest.approx(1.16 / 3)  # (0 + 0.16 + 1) / 3
    assert all(not value.requires_grad for value in stats.values())

    loss.backward()
    # ∂/∂V of 0.5·(V − R)² / 3 = (V − R) / 3 on the unclipped-branch tokens; the clipped one is
    # flat in V (V − V_old = 0.5 is past the clamp): [0, −0.4/3, −1/3, 0]
    torch.testing.assert_close(values.grad, torch.tensor([[0.0, -0.4 / 3, -1 / 3, 0.0]]))
    assert old_values.grad is None and returns.grad is None


def test_value_loss_unclipped():
    values, old_values, returns, mask = _value_example()
    loss, stats = value_loss(values, old_values, returns, mask, clip_eps=None)
    assert loss.item() == pytest.approx(0.5 * 1.16 / 3)  # 0.5 · (0 + 0.16 + 1) / 3 = 0.193333
    assert stats["value_clipfrac"].item() == 0.0


def test_entropy_from_logits_hand_computed():
    logits = torch.tensor([[[0.0, 0.0], [0.0, math.log(3.0)], [1000.0, 1000.0], [0.0, -math.inf]]])
    # [0, 0]: p = ½, ½ → ln 2 = 0.693147
    # [0, ln 3]: p = ¼, ¾ → −(¼ ln ¼ + ¾ ln ¾) = 0.346574 + 0.215762 = 0.562335
    # [1000, 1000]: no overflow → ln 2;  [0, −inf]: p = 1, 0 → 0 (not NaN)
    expected = torch.tensor([[math.log(2), 0.562335, math.log(2), 0.0]])
    torch.testing.assert_close(entropy_from_logits(logits), expected)


def test_logprobs_from_logits_hand_computed():
    logits = torch.tensor([[[0.0, math.log(3.0)], [0.0, 0.0], [1000.0, 1000.0]]])
    tokens = torch.tensor([[1, 0, 1]])
    # log ¾ = −0.287682, log ½, log ½ (no overflow)
    expected = torch.tensor([[math.log(0.75), -math.log(2), -math.log(2)]])
    torch.testing.assert_close(logprobs_from_logits(logits, tokens), expected)
    # Temperature 2 on [0, 2 ln 3] gives [0, ln 3] → log ¾ again.
    hot = torch.tensor([[[0.0, 2 * math.log(3.0)]]])
    torch.testing.assert_close(logprobs_from_logits(hot, torch.tensor([[1]]), temperature=2.0), expected[:, :1])


def test_logprobs_from_logits_upcasts_bf16_and_matches_log_softmax():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 11, generator=generator)
    tokens = torch.randint(0, 11, (2, 4), generator=generator)
    reference = torch.log_softmax(logits / 0.7, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(logprobs_from_logits(logits, tokens, temperature=0.7), reference)
    assert logprobs_from_logits(logits.bfloat16(), tokens).dtype == torch.float32
    with pytest.raises(ValueError):
        logprobs_from_logits(logits, tokens, temperature=0.0)


def _dpo_pairs():
    # Pair 0: chosen log-ratio −1 − (−1.5) = 0.5, rejected −2 − (−1.5) = −0.5 → h = 1
    # Pair 1: the same with chosen and rejected swapped → h = −1
    policy_chosen = torch.tensor([-1.0, -2.0], requires_grad=True)
    policy_rejected = torch.tensor([-2.0, -1.0], requires_grad=True)
    ref_chosen = torch.tensor([-1.5, -1.5], requires_grad=True)
    ref_rejected = torch.tensor([-1.5, -1.5], requires_grad=True)
    return policy_chosen, policy_rejected, ref_chosen, ref_rejected


def test_dpo_sigmoid_hand_computed():
    loss, stats = dpo_loss(*_dpo_pairs(), beta=0.1)
    # −log σ(0.1) = ln(1 + e^{−0.1}) = 0.644397;  −log σ(−0.1) = ln(1 + e^{0.1}) = 0.744397
    assert loss.item() == pytest.approx((0.644397 + 0.744397) / 2, abs=1e-6)
    # implicit rewards: pair 0 chosen 0.05, rejected −0.05; pair 1 chosen −0.05, rejected 0.05
    assert stats["chosen_reward"].item() == pytest.approx(0.0)
    assert stats["rejected_reward"].item() == pytest.approx(0.0)
    assert stats["reward_margin"].item() == pytest.approx(0.0)  # (0.1 − 0.1) / 2
    assert stats["reward_accuracy"].item() == pytest.approx(0.5)
    single, stats = dpo_loss(*(t[:1] for t in _dpo_pairs()), beta=0.1)
    assert single.item() == pytest.approx(0.644397, abs=1e-6)
    assert stats["chosen_reward"].item() == pytest.approx(0.05)
    assert stats["reward_margin"].item() == pytest.approx(0.1)


def test_dpo_label_smoothing_and_ipo():
    pair = [t[:1] for t in _dpo_pairs()]  # h = 1
    # 0.9 · 0.644397 + 0.1 · 0.744397 = 0.654397
    smoothed, _ = dpo_loss(*pair, beta=0.1, label_smoothing=0.1)
    assert smoothed.item() == pytest.approx(0.654397, abs=1e-6)
    # cdpo is the same loss under its literature name (conservative DPO)
    cdpo, _ = dpo_loss(*pair, beta=0.1, label_smoothing=0.1, kind="cdpo")
    assert cdpo.item() == pytest.approx(0.654397, abs=1e-6)
    # (h − 1/(2β))² = (1 − 5)² = 16
    ipo, _ = dpo_loss(*pair, beta=0.1, kind="ipo")
    assert ipo.item() == pytest.approx(16.0)
    for kind in ("ipo", "ipo_mean", "hinge"):
        with pytest.raises(ValueError, match="label_smoothing"):
            dpo_loss(*pair, beta=0.1, label_smoothing=0.1, kind=kind)


def test_dpo_robust_hand_computed_and_unbiased_under_label_noise():
    pair = [t[:1] for t in _dpo_pairs()]  # h = 1
    # (0.9 · 0.644397 − 0.1 · 0.744397) / (1 − 0.2) = (0.579957 − 0.074440) / 0.8 = 0.631897
    robust, _ = dpo_loss(*pair, beta=0.1, label_smoothing=0.1, kind="robust")
    assert robust.item() == pytest.approx(0.631897, abs=1e-6)
    # Chowdhury et al.: averaged over a label flipped with probability s it is the clean DPO loss.
    flipped = [pair[1], pair[0], pair[3], pair[2]]  # chosen ↔ rejected: h = −1
    robust_flipped, _ = dpo_loss(*flipped, beta=0.1, label_smoothing=0.1, kind="robust")
    clean, _ = dpo_loss(*pair, beta=0.1)
    assert (0.9 * robust + 0.1 * robust_flipped).item() == pytest.approx(clean.item(), abs=1e-6)
    with pytest.raises(ValueError, match="0.5"):
        dpo_loss(*pair, beta=0.1, label_smoothing=0.5, kind="robust")


def test_dpo_losses_match_trl_formulas():
    # TRL 1.16 DPOTrainer's robust, hinge and ipo (length-averaged) lines, on float64 tensors.
    generator = torch.Generator().manual_seed(0)
    policy_chosen, policy_rejected, ref_chosen, ref_rejected = (
        -5 * torch.rand(6, generator=generator, dtype=torch.float64) for _ in range(4)
    )
    chosen_tokens = torch.randint(1, 9, (6,), generator=generator)
    rejected_tokens = torch.randint(1, 9, (6,), generator=generator)
    beta, s = 0.3, 0.2
    chosen_logratios, rejected_logratios = policy_chosen - ref_chosen, policy_rejected - ref_rejected
    delta_score = chosen_logratios - rejected_logratios
    clean_loss_term = -(1 - s) * F.logsigmoid(beta * delta_score)
    flipped_loss_term = -s * F.logsigmoid(-beta * delta_score)
    trl_robust = (clean_loss_term - flipped_loss_term) / (1 - 2 * s)
    trl_hinge = torch.relu(1 - beta * delta_score)
    ipo_delta = chosen_logratios / chosen_tokens.clamp(min=1.0) - rejected_logratios / rejected_tokens.clamp(min=1.0)
    trl_ipo = (ipo_delta - 1 / (2 * beta)) ** 2
    logps = (policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    robust, _ = dpo_loss(*logps, beta=beta, label_smoothing=s, kind="robust")
    hinge, _ = dpo_loss(*logps, beta=beta, kind="hinge")
    ipo_mean, _ = dpo_loss(
        *logps, beta=beta, kind="ipo_mean", chosen_lengths=chosen_tokens, rejected_lengths=rejected_tokens
    )
    torch.testing.assert_close(robust, trl_robust.mean(), rtol=0, atol=1e-12)
    torch.testing.assert_close(hinge, trl_hinge.mean(), rtol=0, atol=1e-12)
    torch.testing.assert_close(ipo_mean, trl_ipo.mean(), rtol=0, atol=1e-12)


def test_dpo_hinge_hand_computed():
    # h = 1 and h = −1: max(0, 1 − 0.1) = 0.9 and max(0, 1 + 0.1) = 1.1 → mean 1.0
    hinge, _ = dpo_loss(*_dpo_pairs(), beta=0.1, kind="hinge")
    assert hinge.item() == pytest.approx(1.0)
    # β·h = 20 · 1 ≥ 1: no loss and no gradient
    pair = [t[:1].detach().requires_grad_() for t in _dpo_pairs()]
    past_margin, _ = dpo_loss(*pair, beta=20.0, kind="hinge")
    past_margin.backward()
    assert past_margin.item() == 0.0 and pair[0].grad.item() == 0.0


def test_dpo_ipo_mean_averages_log_probs_over_completion_tokens():
    pair = [t[:1] for t in _dpo_pairs()]  # chosen log-ratio 0.5 (2 tokens), rejected −0.5 (4 tokens)
    lengths = torch.tensor([2]), torch.tensor([4])
    # h = 0.5 / 2 − (−0.5 / 4) = 0.375;  (0.375 − 1/(2·0.1))² = (0.375 − 5)² = 21.390625
    loss, stats = dpo_loss(*pair, beta=0.1, kind="ipo_mean", chosen_lengths=lengths[0], rejected_lengths=lengths[1])
    assert loss.item() == pytest.approx(21.390625)
    # the implicit rewards stay β·(summed log-ratio), as TRL logs them: 0.1 · 0.5 and 0.1 · (−0.5)
    assert stats["chosen_reward"].item() == pytest.approx(0.05)
    assert stats["rejected_reward"].item() == pytest.approx(-0.05)
    # with one token per completion it is the summed form
    ones = torch.tensor([1])
    assert dpo_loss(*pair, beta=0.1, kind="ipo_mean", chosen_lengths=ones, rejected_lengths=ones)[
        0
    ].item() == pytest.approx(16.0)
    with pytest.raises(ValueError, match="lengths"):
        dpo_loss(*pair, beta=0.1, kind="ipo_mean")


def test_dpo_gradient_reaches_policy_only():
    logps = [torch.tensor([-1.0], requires_grad=True) for _ in range(4)]
    loss, _ = dpo_loss(*logps, beta=0.1)
    loss.backward()
    # h = 0: loss = ln 2, ∂/∂h = −β·σ(0) = −0.05; h = chosen − rejected
    assert loss.item() == pytest.approx(math.log(2))
    assert logps[0].grad.item() == pytest.approx(-0.05)
    assert logps[1].grad.item() == pytest.approx(0.05)
    assert logps[2].grad is None and logps[3].grad is None
