"""Advantage estimators: GAE for PPO, group baselines for GRPO/RLOO, REINFORCE++.

Token-level inputs are (B, T) with ``mask`` marking action (policy-generated) tokens. The action
tokens of a row need not be contiguous: in a multi-turn rollout they are interrupted by
observation tokens (mask 0). Recursions run over the action tokens of each row only, in order,
as if the masked-out positions were not there: the "next" token of an action token is the next
action token of the same row, and there is none after the last one. Rewards and values at
masked-out positions are ignored (put a turn's reward on one of its action tokens), and every
token-level output is 0 there. Outputs are targets, so inputs are detached.

- ``gae``: δ_t = r_t + γ·V_{t+1} − V_t,  A_t = δ_t + γλ·A_{t+1},  returns = A + V
- ``discounted_returns``: G_t = r_t + γ·G_{t+1}  (GAE with V = 0 and λ = 1)
- ``group_advantages`` (GRPO): A_i = (r_i − mean_g) / (std + eps), eps = 1e-4 added to the std,
  as TRL's ``scale_rewards``: ``"group"`` divides by std_g, the unbiased (n − 1) sample std of the
  group (GRPO); ``"batch"`` by the unbiased std of every score of the batch (Lite PPO's group
  mean with batch std); ``"none"`` does not divide (A_i = r_i − mean_g, as Dr. GRPO recommends,
  since the group std weights easy and hard prompts unequally)
- ``rloo_advantages``: A_i = r_i − mean_{j≠i} r_j within the group
- ``uniform_group_share``: the share of groups whose scores are all equal; a group baseline gives
  every sample of such a group advantage 0, so it teaches nothing (TRL's ``frac_reward_zero_std``)
- ``reinforce_pp_advantages`` (REINFORCE++): G_t as above, whitened over all action tokens of
  the batch; the "-baseline" variant subtracts the group's mean score from G_t first
- ``broadcast_to_tokens``: a per-sequence value copied onto each action token of its row
- ``per_turn_advantages`` (SCoRe, discount 0): turn k's reward w_k·r_k, plus α·(r_K − r_1) on the
  last turn, each given its own leave-one-out baseline; ``turns_to_tokens`` puts a per-turn value
  on that turn's action tokens

Groups are ``group_size`` consecutive entries (the samples of one prompt).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

from redraft.algorithms.masked import masked_whiten


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates and value targets over the action tokens of each row."""
    if rewards.dim() != 2 or rewards.shape != values.shape or rewards.shape != mask.shape:
        raise ValueError(
            f"rewards, values and mask must share one (B, T) shape, got "
            f"{tuple(rewards.shape)}, {tuple(values.shape)}, {tuple(mask.shape)}"
        )
    rewards, values = rewards.detach(), values.detach()
    is_action = mask.bool()
    advantages = torch.zeros_like(rewards)
    # Carried from the nearest action token to the right; only action tokens overwrite them,
    # which is what skips observation and padding positions.
    next_value = torch.zeros_like(rewards[:, 0])
    next_advantage = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        advantage = delta + gamma * lam * next_advantage
        acting = is_action[:, t]
        advantages[:, t] = torch.where(acting, advantage, 0.0)
        next_value = torch.where(acting, values[:, t], next_value)
        next_advantage = torch.where(acting, advantage, next_advantage)
    returns = torch.where(is_action, advantages + values, 0.0)
    return advantages, returns


def discounted_returns(rewards: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """Reward-to-go over the action tokens of each row."""
    # With V ≡ 0 and λ = 1, GAE's recursion is exactly G_t = r_t + γ·G_{t+1}.
    advantages, _ = gae(rewards, torch.zeros_like(rewards), mask, gamma=gamma, lam=1.0)
    return advantages


def _groups(scores: torch.Tensor, group_size: int) -> torch.Tensor:
    """``scores`` (N,) viewed as (N / group_size, group_size)."""
    if scores.dim() != 1:
        raise ValueError(f"scores must be 1-D (N,), got shape {tuple(scores.shape)}")
    if group_size < 2:
        raise ValueError(f"group_size must be at least 2 to have a baseline, got {group_size}")
    if scores.numel() % group_size:
        raise ValueError(f"{scores.numel()} scores do not split into groups of {group_size}")
    return scores.detach().view(-1, group_size)


RewardScaling = Literal["group", "batch", "none"]


def group_advantages(
    scores: torch.Tensor,
    group_size: int,
    scale: RewardScaling | bool = "group",
    eps: float = 1e-4,
    all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """GRPO: each score minus its group's mean, divided by std + eps as ``scale`` says.

    ``scale`` is ``"group"`` (the group's unbiased std), ``"batch"`` (the unbiased std of all
    scores: of every process's shard when given ``all_reduce``, a sum over them, as TRL computes it
    on the gathered batch) or ``"none"``; ``True``/``False`` mean ``"group"``/``"none"``.
    """
    if isinstance(scale, bool):
        scale = "group" if scale else "none"
    grouped = _groups(scores, group_size)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    if scale == "group":
        centred = centred / (grouped.std(dim=1, unbiased=True, keepdim=True) + eps)
    elif scale == "batch":
        reduce = all_reduce or (lambda t: t)
        flat = grouped.reshape(-1)
        total, count = reduce(torch.stack([flat.sum(), flat.new_tensor(float(flat.numel()))])).unbind()
        squared_deviation = reduce(((flat - total / count) ** 2).sum())
        centred = centred / (torch.sqrt(squared_deviation / (count - 1).clamp(min=1)) + eps)
    elif scale != "none":
        raise ValueError(f"unknown reward scaling {scale!r}; expected 'group', 'batch' or 'none'")
    return centred.reshape(-1)


def rloo_advantages(scores: torch.Tensor, group_size: int) -> torch.Tensor:
    """RLOO: each score minus the mean of the other scores of its group."""
    grouped = _groups(scores, group_size)
    leave_one_out_mean = (grouped.sum(dim=1, keepdim=True) - grouped) / (group_size - 1)
    return (grouped - leave_one_out_mean).reshape(-1)


def uniform_group_share(scores: torch.Tensor, group_size: int) -> float:
    """Share of groups whose scores are all equal (zero std): they carry no group-baseline signal."""
    grouped = _groups(scores, group_size)
    return float((grouped == grouped[:, :1]).all(dim=1).float().mean())


def broadcast_to_tokens(per_sequence: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N,) → (N, T): each row's value on its action tokens, 0 elsewhere."""
    if per_sequence.dim() != 1 or mask.dim() != 2 or per_sequence.shape[0] != mask.shape[0]:
        raise ValueError(
            f"expected per_sequence (N,) and mask (N, T), got {tuple(per_sequence.shape)} and {tuple(mask.shape)}"
        )
    return torch.where(mask.bool(), per_sequence.unsqueeze(-1), 0.0)


def per_turn_advantages(
    turn_rewards: torch.Tensor, group_size: int, weights: list[float] | tuple[float, ...], shaping_alpha: float = 0.0
) -> torch.Tensor:
    """(N, K) per-turn rewards → (N, K) per-turn advantages with separate credit per attempt.

    Turn k is paid ``weights[k]·r_k`` (a weight of 0 gives that turn no reward term at all); the
    last turn additionally gets ``shaping_alpha·(r_K − r_1)``. Each turn's payment gets its own
    RLOO baseline over the group, so one attempt's reward never moves another attempt's tokens.
    """
    if turn_rewards.dim() != 2 or turn_rewards.shape[1] != len(weights):
        raise ValueError(f"turn_rewards (N, K) with K = len(weights) = {len(weights)}, got {tuple(turn_rewards.shape)}")
    rewards = turn_rewards.detach()
    paid = rewards * rewards.new_tensor(list(weights))
    paid[:, -1] += shaping_alpha * (rewards[:, -1] - rewards[:, 0])
    return torch.stack([rloo_advantages(paid[:, k], group_size) for k in range(paid.shape[1])], dim=1)


def turns_to_tokens(per_turn: torch.Tensor, turn_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N, K) per-turn values → (N, T): each action token gets its own turn's value, 0 elsewhere."""
    gathered = per_turn.gather(1, turn_ids.clamp(0, per_turn.shape[1] - 1))
    return torch.where(mask.bool(), gathered, 0.0)


def reinforce_pp_advantages(
    token_rewards: torch.Tensor,
    mask: torch.Tensor,
    gamma: float = 1.0,
    group_size: int | None = None,
    scores: torch.Tensor | None = None,
    all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """REINFORCE++ advantages: reward-to-go, optionally minus the group mean score, batch-whitened.

    ``token_rewards`` (N, T) carries everything the policy is paid per token (typically −β·KL on
    each action token plus the sequence score on the last one). Given ``group_size`` and
    ``scores`` (N,), the REINFORCE++-baseline variant subtracts mean(scores of the group) from
    every reward-to-go of each row; ``scores`` serve only as that baseline. Either way the result
    is ``masked_whiten`` over all action tokens of the batch (mean 0, unbiased std 1), of every
    process's shard when given ``all_reduce``.
    """
    if (group_size is None) != (scores is None):
        raise ValueError("the group baseline needs both group_size and scores (or neither)")
    returns = discounted_returns(token_rewards, mask, gamma)
    if scores is not None:
        if scores.shape[0] != token_rewards.shape[0]:
            raise ValueError(f"{scores.shape[0]} scores for {token_rewards.shape[0]} sequences")
        group_mean = _groups(scores, group_size).mean(dim=1).repeat_interleave(group_size)
        returns = returns - broadcast_to_tokens(group_mean, mask)
    return masked_whiten(returns, mask, all_reduce=all_reduce)
