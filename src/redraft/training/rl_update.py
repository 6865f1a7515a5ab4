"""The update phase of an RL iteration: ``rl.epochs`` passes over the rollouts in minibatches, each one
optimizer step of the clipped policy loss (+ the KL term), its gradient accumulated over chunks of
``rl.micro_batch_size`` rows and spent only on rows whose loss has a gradient; PPO's critic after every policy
step."""

from __future__ import annotations

from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import torch

from redraft.algorithms import (
    aggregate_loss,
    aggregation_units,
    entropy_from_logits,
    kl_penalty,
    masked_mean,
    ppo_policy_loss,
    value_loss,
)
from redraft.rollout.batch import RolloutBatch, sequence_logprobs

if TYPE_CHECKING:  # the trainer's state, passed in by train_rl
    from redraft.training.rl import Learner


def _micro_batches(idx: torch.Tensor, trained: torch.Tensor, batch: RolloutBatch, mode: str, rows: int):
    """``trained`` (rows of the minibatch ``idx``) in chunks of ``rows``: ``(chunk, is_last, unit_weight,
    token_weight)``. ``unit_weight`` is the chunk's share of the whole minibatch's loss units (as ``loss_agg``
    counts them), so the weighted chunk losses add up to the minibatch's loss; ``token_weight`` its share of the
    trained rows' action tokens, which averages the chunks' stats. Rows go into chunks shortest first: each
    chunk is cut to its longest row, so sequences of like length share one and little is spent on padding."""
    mask = batch.action_mask
    trained = trained[batch.attention_mask[trained].sum(dim=1).argsort(stable=True)]
    chunks = trained.split(rows)
    units, tokens = aggregation_units(mask[idx], mode).clamp(min=1), mask[trained].sum().clamp(min=1)
    whole = len(chunks) == 1 and len(trained) == len(idx)
    for n, chunk in enumerate(chunks):
        unit_weight = 1.0 if whole else float(aggregation_units(mask[chunk], mode) / units)
        token_weight = 1.0 if len(chunks) == 1 else float(mask[chunk].sum() / tokens)
        yield chunk, n == len(chunks) - 1, unit_weight, token_weight


def _rows_with_gradient(learner: Learner, advantages: torch.Tensor, mask: torch.Tensor, kl_coefs) -> torch.Tensor:
    """Per row: can its loss move the policy? A row whose advantage is 0 on every action token (in GRPO or
    RLOO, a group whose samples all scored the same) has a loss of exactly 0 and a zero gradient unless a KL
    term is in the loss, so the update spends no forward or backward on it."""
    acting = mask.bool()
    learns = ((advantages != 0) & acting).any(dim=1)
    if kl_coefs is not None:
        learns |= ((kl_coefs != 0) & acting).any(dim=1)
    elif learner.cfg.algorithm == "grpo" and learner.controller.value > 0:
        learns[:] = True
    return learns


def _accumulate(sums: dict[str, float], values: dict[str, Any], weight: float) -> None:
    """Add each of ``values`` times ``weight`` to ``sums`` (a minibatch's stats over its chunks)."""
    for key, value in values.items():
        sums[key] = sums.get(key, 0.0) + weight * float(value.detach() if torch.is_tensor(value) else value)


def _trimmed(batch: RolloutBatch, rows: torch.Tensor, *per_token: torch.Tensor | None):
    """The rows' ids, attention and action masks and ``per_token`` tensors, cut to the rows' longest sequence."""
    width = int(batch.attention_mask[rows].sum(dim=1).max())
    tensors = (batch.input_ids, batch.attention_mask, batch.action_mask, *per_token)
    return [None if t is None else t[rows, :width] for t in tensors]


def _policy_loss(learner: Learner, batch: RolloutBatch, advantages, scored, rows: torch.Tensor):
    """The clipped policy loss (+ the KL term) of ``rows``, its stats and the entropy of their action tokens."""
    cfg = learner.cfg
    ids, attn, mask, old_logp, adv, ref_logp, kl_coefs = _trimmed(
        batch, rows, batch.old_logp, advantages, scored["ref_logp"], scored["token_kl_coefs"]
    )
    logp, logits = sequence_logprobs(learner.policy, ids, attn, cfg.temperature, mask)
    loss, stats = ppo_policy_loss(
        logp, old_logp, adv, mask, cfg.clip_eps, cfg.clip_eps_high, cfg.loss_agg, learner.max_action_tokens
    )
    if kl_coefs is not None:
        kl_terms = kl_coefs * kl_penalty(logp, ref_logp, cfg.kl_estimator)
        loss = loss + aggregate_loss(kl_terms, mask, cfg.loss_agg, learner.max_action_tokens)
    elif cfg.algorithm == "grpo" and learner.controller.value > 0:
        kl_loss = aggregate_loss(
            kl_penalty(logp, ref_logp, cfg.kl_estimator), mask, cfg.loss_agg, learner.max_action_tokens
        )
        loss = loss + learner.controller.value * kl_loss
    with torch.no_grad():
        entropy = masked_mean(entropy_from_logits(logits / cfg.temperature), mask[:, mask.shape[1] - logits.shape[1] :])
    return loss, stats, entropy


def update(
    learner: Learner,
    batch: RolloutBatch,
    advantages: torch.Tensor,
    returns: torch.Tensor | None,
    scored: dict[str, torch.Tensor | None],
    iteration: int,
) -> dict[str, list[float]]:
    """``rl.epochs`` passes over the rollouts in minibatches: the clipped policy loss (+ per-attempt or
    GRPO KL term), one optimizer step each, its gradient accumulated over chunks of ``rl.micro_batch_size``
    rows; PPO's critic after every policy step. Per-minibatch stats."""
    cfg, loop, accelerator = learner.cfg, learner.loop, learner.loop.accelerator
    local_minibatch = cfg.minibatch_size // loop.world
    local_micro = (cfg.micro_batch_size or cfg.minibatch_size) // loop.world
    stats: dict[str, list[float]] = {}

    def record(values: dict[str, Any]) -> None:
        for key, value in values.items():
            stats.setdefault(key, []).append(float(value.detach() if torch.is_tensor(value) else value))

    learns = _rows_with_gradient(learner, advantages, batch.action_mask, scored["token_kl_coefs"])
    for epoch in range(cfg.epochs):
        seed = learner.seed + 7919 * iteration + epoch + 104_729 * loop.rank  # primes: no two streams collide
        order = torch.randperm(learner.local_rollouts, generator=torch.Generator().manual_seed(seed))
        for start in range(0, learner.local_rollouts, local_minibatch):
            idx = order[start : start + local_minibatch]
            # Weighted by this rank's share, the mean over ranks (gradients and the logged
            # loss alike) is the loss of the whole minibatch.
            share = learner.global_share(batch.action_mask[idx], cfg.loss_agg)
            # At least one row, even one without gradient: every rank runs the backward that syncs DDP.
            trained = idx[learns[idx]] if bool(learns[idx].any()) else idx[:1]
            sums: dict[str, float] = {}
            for rows, last, unit_weight, token_weight in _micro_batches(idx, trained, batch, cfg.loss_agg, local_micro):
                with nullcontext() if last else accelerator.no_sync(learner.policy):
                    loss, policy_stats, entropy = _policy_loss(learner, batch, advantages, scored, rows)
                    loop.require_finite(loss.item(), "policy loss", iteration)
                    loss = loss * share * unit_weight
                    accelerator.backward(loss)
                _accumulate(sums, {"policy_loss": loss}, 1.0)  # already weighted
                _accumulate(sums, {"entropy": entropy, **policy_stats}, token_weight)
            grad_norm = accelerator.clip_grad_norm_(learner.policy.parameters(), cfg.optim.grad_clip)
            learner.optimizer.step()
            learner.scheduler.step()
            learner.optimizer.zero_grad(set_to_none=True)
            record({"policy_loss": sums.pop("policy_loss"), "grad_norm": grad_norm, **sums})
            if learner.critic is not None:
                record(_critic_step(learner, batch, scored["old_values"], returns, idx, local_micro, iteration))
    return stats


def _critic_step(learner: Learner, batch: RolloutBatch, old_values, returns, idx, rows: int, iteration: int):
    """One optimizer step of PPO's critic on the minibatch ``idx`` (the clipped value loss, token mean), its
    gradient accumulated over chunks of ``rows``; its stats."""
    cfg, loop, accelerator = learner.cfg, learner.loop, learner.loop.accelerator
    share = learner.global_share(batch.action_mask[idx], "token_mean")
    sums: dict[str, float] = {}
    for chunk, last, weight, _ in _micro_batches(idx, idx, batch, "token_mean", rows):
        ids, attn, mask, chunk_old, chunk_returns = _trimmed(batch, chunk, old_values, returns)
        with nullcontext() if last else accelerator.no_sync(learner.critic):
            v_loss, v_stats = value_loss(learner.critic(ids, attn), chunk_old, chunk_returns, mask, cfg.value_clip_eps)
            loop.require_finite(v_loss.item(), "value loss", iteration)
            v_loss = v_loss * share * weight
            accelerator.backward(v_loss)
        _accumulate(sums, {"value_loss": v_loss}, 1.0)  # already weighted
        _accumulate(sums, v_stats, weight)
    accelerator.clip_grad_norm_(learner.critic.parameters(), cfg.optim.grad_clip)
    learner.critic_optimizer.step()
    learner.critic_optimizer.zero_grad(set_to_none=True)
    return sums
