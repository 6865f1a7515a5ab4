"""What an RL iteration logs: rewards, accuracy, KL, lengths over the whole global batch, per-attempt
numbers for multi-turn episodes, and a warning when nothing can be learned."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from redraft.algorithms import per_turn_metrics, uniform_group_share
from redraft.distributed import gather_all, mean_across_ranks
from redraft.rollout.batch import RolloutBatch

if TYPE_CHECKING:  # the trainer's state, passed in by train_rl
    from redraft.training.rl import Learner

# All-zero rewards give every advantage 0 and the policy never moves: say so rather than train on silently.
ZERO_REWARD_WARNING_ITERATIONS = 5


def iteration_metrics(
    learner: Learner,
    batch: RolloutBatch,
    kl_tokens: torch.Tensor,
    stats: dict[str, list[float]],
    seconds: dict[str, float],
) -> dict[str, float]:
    """The iteration's logged numbers over the whole global batch; steps the adaptive KL controller."""
    cfg, loop, controller = learner.cfg, learner.loop, learner.controller
    group, mask = cfg.samples_per_prompt, batch.action_mask
    measure_kl = learner.reference is not None
    # Per-sequence numbers of the whole global batch (every rank's share, in rank order).
    columns = [batch.scores, batch.correct, batch.truncated.float(), (kl_tokens * mask).sum(dim=1), mask.sum(dim=1)]
    scores, correct, truncated, kl_sums, lengths = gather_all(loop.accelerator, torch.stack(columns, dim=1)).unbind(1)
    kl_per_sequence = float(kl_sums.mean())
    controller.update(kl_per_sequence, cfg.prompts_per_iteration * group)
    learner.zero_reward_iterations = learner.zero_reward_iterations + 1 if not bool(scores.any()) else 0
    if learner.zero_reward_iterations == ZERO_REWARD_WARNING_ITERATIONS:
        loop.accelerator.print(
            f"{loop.stage}: warning: every reward was 0 for {learner.zero_reward_iterations} iterations in a row, so "
            "nothing is learned; check task.reward and that a reply can match the answers "
            "(format, max_new_tokens)"
        )
    return {
        "reward": float(scores.mean()),
        "reward_std": float(scores.std()),
        # Every rank's share is whole groups, so the gathered scores keep each group together.
        **({"frac_reward_zero_std": uniform_group_share(scores, group)} if group > 1 else {}),
        "accuracy": float(correct.mean()),
        **({"kl": kl_per_sequence} if measure_kl else {}),
        "kl_coef": float(controller.value),
        "response_length": float(lengths.mean()),
        "truncated_fraction": float(truncated.mean()),
        **mean_across_ranks(
            loop.accelerator,
            {
                **per_turn_metrics(
                    batch.turn_rewards,
                    batch.turn_correct,
                    batch.turn_ids,
                    mask,
                    kl_tokens if measure_kl else None,
                    group,
                ),
                **{key: sum(values) / len(values) for key, values in stats.items()},
                **seconds,
            },
        ),
    }
