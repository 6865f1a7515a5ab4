"""Advantage estimators against hand-computed numbers."""

from __future__ import annotations

import pytest
import torch

from redraft.algorithms import (
    broadcast_to_tokens,
    discounted_returns,
    gae,
    group_advantages,
    reinforce_pp_advantages,
    rloo_advantages,
    uniform_group_share,
)
from tests.algorithms.sharding import run_sharded


def test_gae_contiguous_hand_computed():
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.5, 0.5, 0.5]])
    mask = torch.ones(1, 3)
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=0.5)
    # t=2: δ = 1 + 0 − 0.5 = 0.5                     A = 0.5
    # t=1: δ = 0 + 0.5 − 0.5 = 0                     A = 0 + 0.5 · 0.5 = 0.25
    # t=0: δ = 0                                     A = 0.5 · 0.25 = 0.125
    torch.testing.assert_close(advantages, torch.tensor([[0.125, 0.25, 0.5]]))
    torch.testing.assert_close(returns, torch.tensor([[0.625, 0.75, 1.0]]))  # A + V


def test_gae_skips_observation_tokens_and_padding_per_row():
    # Row 0, multi-turn: actions at 0, 1 (turn 1) and 4 (turn 2); 2, 3 are an observation whose
    # rewards/values must be ignored, so the numbers equal the contiguous case above.
    # Row 1: actions at 1 and 3 only, the rest padding with garbage.
    rewards = torch.tensor([[0.0, 0.0, 9.0, 9.0, 1.0], [5.0, 2.0, 5.0, 4.0, 5.0]])
    values = torch.tensor([[0.5, 0.5, 7.0, 7.0, 0.5], [3.0, 1.0, 3.0, 2.0, 3.0]])
    mask = torch.tensor([[1, 1, 0, 0, 1], [0, 1, 0, 1, 0]], dtype=torch.bool)
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=0.5)
    # Row 1 over its actions (r = [2, 4], V = [1, 2]):
    #   t=3: δ = 4 + 0 − 2 = 2                       A = 2
    #   t=1: δ = 2 + 2 − 1 = 3 (next V is t=3's)     A = 3 + 0.5 · 2 = 4
    torch.testing.assert_close(advantages, torch.tensor([[0.125, 0.25, 0.0, 0.0, 0.5], [0.0, 4.0, 0.0, 2.0, 0.0]]))
    torch.testing.assert_close(returns, torch.tensor([[0.625, 0.75, 0.0, 0.0, 1.0], [0.0, 5.0, 0.0, 4.0, 0.0]]))


def test_gae_with_discount_and_detached_inputs():
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.zeros(1, 3, requires_grad=True)
    advantages, returns = gae(rewards, values, torch.ones(1, 3), gamma=0.5, lam=1.0)
    # V = 0 so A_t = r_t + 0.5 · A_{t+1}: A2 = 1, A1 = 0.5, A0 = 0.25
    torch.testing.assert_close(advantages, torch.tensor([[0.25, 0.5, 1.0]]))
    assert not advantages.requires_grad and not returns.requires_grad


def test_gae_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        gae(torch.zeros(2, 3), torch.zeros(2, 4), torch.ones(2, 3))


def test_discounted_returns_contiguous_and_multi_turn():
    mask = torch.ones(1, 3)
    # G2 = 3; G1 = 2 + 0.5 · 3 = 3.5; G0 = 1 + 0.5 · 3.5 = 2.75
    torch.testing.assert_close(
        discounted_returns(torch.tensor([[1.0, 2.0, 3.0]]), mask, gamma=0.5), torch.tensor([[2.75, 3.5, 3.0]])
    )
    # The same actions with an observation token (reward 100, ignored) between each, then padding.
    rewards = torch.tensor([[1.0, 100.0, 2.0, 100.0, 3.0, 100.0]])
    gapped = torch.tensor([[1.0, 0.0, 1.0, 0.0, 1.0, 0.0]])
    torch.testing.assert_close(
        discounted_returns(rewards, gapped, gamma=0.5), torch.tensor([[2.75, 0.0, 3.5, 0.0, 3.0, 0.0]])
    )


def test_group_advantages_uses_unbiased_std():
    scores = torch.tensor([0.0, 4.0, 1.0, 2.0])
    # eps = 1e-4 is added to the std, as in TRL.
    # Group [0, 4]: mean 2, unbiased std sqrt((4 + 4) / 1) = 2.828427 → ±2 / 2.828527 = ±0.707082
    #   (the biased std, 2, would give ±1)
    # Group [1, 2]: mean 1.5, unbiased std sqrt((0.25 + 0.25) / 1) = 0.707107 → ±0.5 / 0.707207 = ±0.707007
    expected = torch.tensor([-0.707082, 0.707082, -0.707007, 0.707007])
    torch.testing.assert_close(group_advantages(scores, group_size=2), expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(group_advantages(scores, group_size=2, scale="group"), expected, rtol=0, atol=1e-6)
    for unscaled in ("none", False):  # the old bool still works: False = "none", True = "group"
        torch.testing.assert_close(
            group_advantages(scores, group_size=2, scale=unscaled), torch.tensor([-2.0, 2.0, -0.5, 0.5])
        )
    torch.testing.assert_close(group_advantages(scores, group_size=2, scale=True), expected, rtol=0, atol=1e-6)


def test_group_advantages_batch_scaling_hand_computed_and_as_trl():
    scores = torch.tensor([0.0, 4.0, 1.0, 2.0])
    # Centred within the group: [−2, 2, −0.5, 0.5]. Batch: mean 1.75, squared deviations
    # 3.0625 + 5.0625 + 0.5625 + 0.0625 = 8.75, unbiased std sqrt(8.75 / 3) = 1.707825;
    # ÷ (1.707825 + 1e-4) → [−1.171012, 1.171012, −0.292753, 0.292753]
    expected = torch.tensor([-1.171012, 1.171012, -0.292753, 0.292753])
    batch = group_advantages(scores, group_size=2, scale="batch")
    torch.testing.assert_close(batch, expected, rtol=0, atol=1e-6)
    # TRL's scale_rewards="batch" (GRPOTrainer._generate_and_score_completions), float64.
    rewards = torch.tensor([3.0, 1.0, 0.0, 0.5, 2.0, 2.0], dtype=torch.float64)
    mean_grouped = rewards.view(-1, 2).mean(dim=1).repeat_interleave(2)
    trl = (rewards - mean_grouped) / (rewards.std().expand_as(rewards) + 1e-4)
    torch.testing.assert_close(group_advantages(rewards, group_size=2, scale="batch"), trl, rtol=0, atol=1e-12)


def test_group_advantages_batch_scaling_over_shards_matches_one_piece():
    scores = torch.tensor([0.0, 4.0, 1.0, 2.0, 5.0, 5.0])
    whole = group_advantages(scores, group_size=2, scale="batch")
    shards = [(scores[:4], 2, "batch"), (scores[4:], 2, "batch")]
    pieces = run_sharded(group_advantages, shards)
    torch.testing.assert_close(torch.cat(pieces), whole)


def test_group_advantages_rejects_unknown_scaling():
    with pytest.raises(ValueError, match="global"):
        group_advantages(torch.zeros(4), group_size=2, scale="global")


def test_group_advantages_of_a_uniform_group_are_zero():
    # Group [1, 2, 3]: mean 2, std sqrt((1 + 0 + 1) / 2) = 1 → −1, 0, 1 (÷ 1 + 1e-4).
    # Group [4, 4, 4]: std 0, so 0 / eps = 0 rather than NaN.
    advantages = group_advantages(torch.tensor([1.0, 2.0, 3.0, 4.0, 4.0, 4.0]), group_size=3)
    scaled = 1 / (1 + 1e-4)
    torch.testing.assert_close(advantages, torch.tensor([-scaled, 0.0, scaled, 0.0, 0.0, 0.0]), rtol=0, atol=1e-6)


def test_group_advantages_rejects_bad_groups():
    with pytest.raises(ValueError):
        group_advantages(torch.zeros(5), group_size=2)
    with pytest.raises(ValueError):
        group_advantages(torch.zeros(4), group_size=1)


def test_rloo_hand_computed():
    # [1, 2, 3]: 1 − (2+3)/2 = −1.5; 2 − (1+3)/2 = 0; 3 − (1+2)/2 = 1.5.  [0, 4]: 0 − 4, 4 − 0.
    torch.testing.assert_close(
        rloo_advantages(torch.tensor([1.0, 2.0, 3.0, 7.0, 7.0, 7.0]), group_size=3),
        torch.tensor([-1.5, 0.0, 1.5, 0.0, 0.0, 0.0]),
    )
    torch.testing.assert_close(rloo_advantages(torch.tensor([0.0, 4.0]), group_size=2), torch.tensor([-4.0, 4.0]))


def test_uniform_group_share_counts_groups_without_signal():
    # Groups [1, 1], [0, 1], [0, 0]: two uniform, and exactly their samples get RLOO advantage 0.
    scores = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 0.0])
    assert uniform_group_share(scores, group_size=2) == pytest.approx(2 / 3)
    silent = rloo_advantages(scores, group_size=2).view(-1, 2).eq(0).all(dim=1)
    assert silent.tolist() == [True, False, True]
    with pytest.raises(ValueError):
        uniform_group_share(scores, group_size=4)


@pytest.mark.parametrize("group_size", [0, 1])
def test_rloo_needs_two_samples_per_group(group_size):
    with pytest.raises(ValueError):
        rloo_advantages(torch.tensor([1.0, 2.0]), group_size=group_size)


def test_broadcast_to_tokens():
    mask = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
    torch.testing.assert_close(
        broadcast_to_tokens(torch.tensor([2.0, -1.0]), mask), torch.tensor([[2.0, 2.0, 0.0], [0.0, -1.0, -1.0]])
    )
    with pytest.raises(ValueError):
        broadcast_to_tokens(torch.tensor([2.0, -1.0, 3.0]), mask)


# Four sequences of two action tokens plus one padding column whose reward (99) is ignored;
# the scores sit on the last action token. Two groups of two: [1, 0] and [3, 1].
TOKEN_REWARDS = torch.tensor([[0.0, 1.0, 99.0], [0.0, 0.0, 99.0], [0.0, 3.0, 99.0], [0.0, 1.0, 99.0]])
MASK = torch.tensor([[1.0, 1.0, 0.0]] * 4)
SCORES = torch.tensor([1.0, 0.0, 3.0, 1.0])


def test_reinforce_pp_whitens_returns_over_the_batch():
    # γ = 1 returns-to-go: rows [1, 1], [0, 0], [3, 3], [1, 1]; mean 10/8 = 1.25
    # deviations −0.25, −1.25, 1.75, −0.25 (each twice); Σ² = 2 · (0.0625 + 1.5625 + 3.0625 + 0.0625) = 9.5
    # unbiased std = sqrt(9.5 / 7) = 1.164965
    std = (9.5 / 7) ** 0.5
    column = torch.tensor([-0.25, -1.25, 1.75, -0.25]) / std  # −0.214599, −1.072994, 1.502191, −0.214599
    expected = torch.stack([column, column, torch.zeros(4)], dim=1)
    torch.testing.assert_close(reinforce_pp_advantages(TOKEN_REWARDS, MASK), expected)


def test_reinforce_pp_baseline_subtracts_group_mean_score_first():
    # Group means 0.5 and 2 → returns − baseline: rows 0.5, −0.5, 1, −1 (each twice); mean 0
    # Σ² = 2 · (0.25 + 0.25 + 1 + 1) = 5; unbiased std = sqrt(5 / 7) = 0.845154
    std = (5 / 7) ** 0.5
    column = torch.tensor([0.5, -0.5, 1.0, -1.0]) / std  # ±0.591608, ±1.183216
    expected = torch.stack([column, column, torch.zeros(4)], dim=1)
    torch.testing.assert_close(reinforce_pp_advantages(TOKEN_REWARDS, MASK, group_size=2, scores=SCORES), expected)


def test_reinforce_pp_baseline_needs_both_arguments():
    with pytest.raises(ValueError):
        reinforce_pp_advantages(TOKEN_REWARDS, MASK, group_size=2)
    with pytest.raises(ValueError):
        reinforce_pp_advantages(TOKEN_REWARDS, MASK, scores=SCORES)


def test_per_turn_advantages_score_stages_by_hand():
    from redraft.algorithms import per_turn_advantages

    # One group of two episodes: (wrong → right) and (right → wrong).
    rewards = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    # Stage I: attempt 1 has no reward term; attempt 2 gets r2 minus the other sample's r2.
    stage1 = per_turn_advantages(rewards, 2, (0.0, 1.0))
    assert torch.equal(stage1, torch.tensor([[0.0, 1.0], [0.0, -1.0]]))
    # Stage II, α = 10: attempt 2 is paid r2 + 10·(r2 − r1) = [11, −10]; leave-one-out → ±21.
    stage2 = per_turn_advantages(rewards, 2, (1.0, 1.0), shaping_alpha=10.0)
    assert torch.equal(stage2, torch.tensor([[-1.0, 21.0], [1.0, -21.0]]))


def test_turns_to_tokens_places_each_turns_value_on_its_action_tokens():
    from redraft.algorithms import turns_to_tokens

    per_turn = torch.tensor([[2.0, -3.0]])
    turn_ids = torch.tensor([[0, 0, 0, 1, 1, 1, 0]])  # trailing padding carries turn id 0
    mask = torch.tensor([[0, 1, 1, 0, 1, 1, 0]])
    assert torch.equal(turns_to_tokens(per_turn, turn_ids, mask), torch.tensor([[0.0, 2.0, 2.0, 0.0, -3.0, -3.0, 0.0]]))


def test_reinforce_pp_over_process_shards_equals_one_batch():
    rewards = torch.randn(8, 4, generator=torch.Generator().manual_seed(2))
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]] * 4 + [[1.0, 1.0, 0.0, 0.0]] * 4)
    shards = run_sharded(reinforce_pp_advantages, [(rewards[:4], mask[:4]), (rewards[4:], mask[4:])])
    torch.testing.assert_close(torch.cat(shards), reinforce_pp_advantages(rewards, mask))
