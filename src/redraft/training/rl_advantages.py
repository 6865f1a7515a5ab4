"""Which advantages an RL iteration trains on: the algorithm's estimator (GRPO, RLOO, REINFORCE++, PPO's
GAE) with the KL penalty where that algorithm puts it, or SCoRe's per-attempt credit."""

from __future__ import annotations

from collections.abc import Callable

import torch

from redraft.algorithms import (
    TurnCredit,
    broadcast_to_tokens,
    gae,
    group_advantages,
    masked_whiten,
    per_turn_advantages,
    reinforce_pp_advantages,
    rloo_advantages,
    turns_to_tokens,
)
from redraft.config import RLSection
from redraft.rollout.batch import RolloutBatch


def compute_advantages(
    cfg: RLSection,
    batch: RolloutBatch,
    kl_tokens: torch.Tensor,
    kl_coef: float,
    values: torch.Tensor | None,
    credit: TurnCredit | None = None,
    all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(advantages per token, returns per token for the critic or None).

    Group advantages (GRPO, RLOO, per-turn credit) need only their group, which sits on one
    process; batch-wide whitening (REINFORCE++, PPO) sums over every process with ``all_reduce``.
    """
    mask, group = batch.action_mask, cfg.samples_per_prompt
    if credit is not None:
        per_turn = per_turn_advantages(batch.turn_rewards, group, credit.reward_weights, credit.shaping_alpha)
        return turns_to_tokens(per_turn, batch.turn_ids, mask), None
    if cfg.algorithm == "grpo":
        return broadcast_to_tokens(
            group_advantages(batch.scores, group, cfg.scale_rewards, all_reduce=all_reduce), mask
        ), None
    if cfg.algorithm == "rloo":
        penalised = batch.scores - kl_coef * (kl_tokens * mask).sum(dim=1)
        return broadcast_to_tokens(rloo_advantages(penalised, group), mask), None
    token_rewards = batch.token_rewards - kl_coef * kl_tokens * mask
    if cfg.algorithm == "reinforce_pp":
        return reinforce_pp_advantages(token_rewards, mask, cfg.gamma, all_reduce=all_reduce), None
    advantages, returns = gae(token_rewards, values, mask, cfg.gamma, cfg.lam)
    return masked_whiten(advantages, mask, all_reduce=all_reduce), returns
