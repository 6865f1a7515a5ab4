"""SCoRe's per-attempt credit (Kumar et al., 2024): which attempts are rewarded and how strongly each
is held to the reference. The advantages it feeds are :func:`per_turn_advantages`."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from redraft.algorithms.advantages import uniform_group_share


@dataclass(frozen=True)
class TurnCredit:
    """Per-attempt credit for multi-turn episodes, replacing the algorithm's own advantages.

    Attempt k's tokens get the leave-one-out advantage of ``reward_weights[k]·r_k`` (the last
    attempt also ``shaping_alpha·(r_K − r_1)``) and a k3-style KL term to the reference in the loss
    with coefficient ``kl_coefs[k]``. SCoRe Stage I: weights (0, 1), KL (β2, β1); Stage II:
    weights (1, 1), KL (β1, β1), α > 0.
    """

    reward_weights: tuple[float, ...]
    kl_coefs: tuple[float, ...]
    shaping_alpha: float = 0.0

    def __post_init__(self):
        if len(self.reward_weights) != len(self.kl_coefs):
            raise ValueError("TurnCredit needs one reward weight and one KL coefficient per attempt")


def stage_credit(stage: int, attempts: int, alpha: float, beta1: float, beta2: float) -> TurnCredit:
    """SCoRe's per-attempt credit: Stage I rewards only the last attempt and anchors the first with β2;
    Stage II rewards every attempt, the last with the shaping bonus α·(r_K − r_1), all at β1."""
    if stage == 1:
        return TurnCredit((0.0,) * (attempts - 1) + (1.0,), (beta2,) + (beta1,) * (attempts - 1))
    return TurnCredit((1.0,) * attempts, (beta1,) * attempts, shaping_alpha=alpha)


def per_turn_metrics(
    turn_rewards: torch.Tensor,
    turn_correct: torch.Tensor,
    turn_ids: torch.Tensor,
    action_mask: torch.Tensor,
    kl_tokens: torch.Tensor | None,
    group_size: int,
) -> dict[str, float]:
    """Each attempt's mean reward, checker accuracy, summed KL (when measured) and (with groups) share
    of groups whose rewards for it are all equal; ``delta`` = last − first accuracy. Rewards and
    verdicts are (N, K); token ids, mask and KL (N, T)."""
    turns = turn_rewards.shape[1]
    if turns < 2:
        return {}
    metrics: dict[str, float] = {}
    for k in range(turns):
        on_turn = (turn_ids == k).float() * action_mask
        metrics[f"reward_t{k + 1}"] = float(turn_rewards[:, k].mean())
        metrics[f"accuracy_t{k + 1}"] = float(turn_correct[:, k].mean())
        if kl_tokens is not None:
            metrics[f"kl_t{k + 1}"] = float((kl_tokens * on_turn).sum(dim=1).mean())
        if group_size > 1:
            metrics[f"frac_reward_zero_std_t{k + 1}"] = uniform_group_share(turn_rewards[:, k], group_size)
    metrics["delta"] = metrics[f"accuracy_t{turns}"] - metrics["accuracy_t1"]
    return metrics
