"""Bradley–Terry preference loss for reward models, and pairwise accuracy.

For a pair with chosen reward r_w and rejected reward r_l (scalars from the reward model):

    loss = mean( −log σ(r_w − r_l − m) ) + c · mean( (r_w + r_l)² )

m is an optional per-pair margin (Llama 2: larger for pairs whose ratings are further apart); c is
the optional centring term (reference notes: c ≈ 0.01) that keeps rewards near zero, since the
Bradley–Terry likelihood only sees differences and leaves the offset free to drift.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pairwise_accuracy(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> torch.Tensor:
    """Fraction of pairs ranked the labelled way; a tie counts half (the model did not choose).

    TRL's ``RewardTrainer`` accuracy is ``mean(r_w > r_l)``: a tie counts 0 there, so with ties
    this reads higher by ½ · (share of tied pairs).
    """
    wins = (chosen_rewards > rejected_rewards).float() + 0.5 * (chosen_rewards == rejected_rewards).float()
    return wins.mean()


def bradley_terry_loss(
    chosen_rewards: torch.Tensor,
    rejected_rewards: torch.Tensor,
    margin: torch.Tensor | float | None = None,
    center_coef: float = 0.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Mean negative log-likelihood that each chosen response beats its rejected one.

    Stats (detached): ``accuracy`` (pairwise, ties half; TRL counts them 0), ``reward_margin`` (mean r_w − r_l),
    ``chosen_reward`` and ``rejected_reward`` (means).
    """
    if chosen_rewards.shape != rejected_rewards.shape:
        raise ValueError(f"chosen {tuple(chosen_rewards.shape)} and rejected {tuple(rejected_rewards.shape)} differ")
    if center_coef < 0:
        raise ValueError(f"center_coef must be >= 0, got {center_coef}")
    difference = chosen_rewards - rejected_rewards
    logits = difference if margin is None else difference - margin
    loss = -F.logsigmoid(logits).mean()
    if center_coef:
        loss = loss + center_coef * ((chosen_rewards + rejected_rewards) ** 2).mean()
    with torch.no_grad():
        stats = {
            "accuracy": pairwise_accuracy(chosen_rewards, rejected_rewards),
            "reward_margin": difference.mean(),
            "chosen_reward": chosen_rewards.mean(),
            "rejected_reward": rejected_rewards.mean(),
        }
    return loss, stats
