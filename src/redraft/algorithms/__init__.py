"""RL math as pure tensor functions: masked reductions, KL, advantages and losses."""

from redraft.algorithms.advantages import (
    broadcast_to_tokens,
    discounted_returns,
    gae,
    group_advantages,
    per_turn_advantages,
    reinforce_pp_advantages,
    rloo_advantages,
    turns_to_tokens,
    uniform_group_share,
)
from redraft.algorithms.bradley_terry import bradley_terry_loss, pairwise_accuracy
from redraft.algorithms.kl import AdaptiveKLController, FixedKLController, kl_penalty
from redraft.algorithms.losses import (
    aggregate_loss,
    aggregation_units,
    dpo_loss,
    entropy_from_logits,
    logprobs_from_logits,
    ppo_policy_loss,
    value_loss,
)
from redraft.algorithms.masked import masked_mean, masked_sum, masked_var, masked_whiten
from redraft.algorithms.self_correction import TurnCredit, per_turn_metrics, stage_credit

__all__ = [
    "AdaptiveKLController",
    "FixedKLController",
    "TurnCredit",
    "aggregate_loss",
    "aggregation_units",
    "bradley_terry_loss",
    "broadcast_to_tokens",
    "discounted_returns",
    "dpo_loss",
    "entropy_from_logits",
    "gae",
    "group_advantages",
    "kl_penalty",
    "logprobs_from_logits",
    "masked_mean",
    "masked_sum",
    "masked_var",
    "masked_whiten",
    "pairwise_accuracy",
    "per_turn_advantages",
    "per_turn_metrics",
    "ppo_policy_loss",
    "reinforce_pp_advantages",
    "rloo_advantages",
    "stage_credit",
    "turns_to_tokens",
    "uniform_group_share",
    "value_loss",
]
