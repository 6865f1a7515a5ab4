"""Policy, value and preference losses, and the log-prob/entropy helpers they need.

Token-level inputs are (B, T) with ``mask`` marking action tokens; only those carry loss.
Quantities that are targets or constants of a surrogate (old log-probs, advantages, old values,
returns, reference log-probs) are detached, so gradients reach only the current policy's
log-probs and the current values. Stats are detached scalars for logging.

- ``aggregate_loss``: per-token loss → scalar
    token_mean               Σ_tokens ℓ / #tokens                      (DAPO)
    seq_mean_token_mean      mean_seq( Σ_t ℓ / #tokens of the sequence ) (original GRPO)
    seq_mean_token_sum_norm  mean_seq( Σ_t ℓ / max_len ), max_len constant (Dr. GRPO)
  (max_len: TRL's max_completion_length for dr_grpo; the RL trainer passes
  max_new_tokens × the environment's max_turns)
- ``ppo_policy_loss``: ℓ_t = max(−A·ρ, −A·clip(ρ, 1 − ε, 1 + ε_high)), ρ = exp(logp − old_logp)
- ``value_loss``: ℓ_t = ½·max((V − R)², (clip(V, V_old − ε, V_old + ε) − R)²)
- ``entropy_from_logits``: H = −Σ_v p_v log p_v of softmax(logits)
- ``logprobs_from_logits``: log softmax(logits / temperature) at the given tokens
- ``dpo_loss``: with h = (log π(y_w) − log π_ref(y_w)) − (log π(y_l) − log π_ref(y_l)) and
  s = label smoothing (the assumed probability that a label is flipped),
    sigmoid   −log σ(β·h)                              DPO; with s > 0 it is cdpo (as OpenRLHF's)
    cdpo      −(1 − s)·log σ(β·h) − s·log σ(−β·h)      conservative DPO (Mitchell); OpenRLHF's smoothing
    robust    (−(1 − s)·log σ(β·h) + s·log σ(−β·h)) / (1 − 2s)
                                                       robust DPO (Chowdhury et al.), TRL's robust
    hinge     max(0, 1 − β·h)                          RSO / SLiC, TRL's hinge
    ipo       (h − 1/(2β))², h from summed log-probs   IPO's Eq. 17 as written, OpenRLHF's --ipo
    ipo_mean  (h − 1/(2β))², h from log-probs averaged over each completion's tokens:
              TRL's ipo, the form the IPO authors confirmed
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from redraft.algorithms.kl import kl_penalty
from redraft.algorithms.masked import masked_mean, masked_sum

LossAggregation = Literal["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"]
DPOLossKind = Literal["sigmoid", "cdpo", "robust", "hinge", "ipo", "ipo_mean"]


def aggregation_units(mask: torch.Tensor, mode: LossAggregation) -> torch.Tensor:
    """How many units ``aggregate_loss`` averages over: action tokens, sequences with any, or sequences.

    A batch split over processes gets the whole batch's loss when each shard's loss is weighted by
    its share of these units (DDP then averages the gradients).
    """
    if mode == "token_mean":
        return mask.bool().sum().to(torch.float32)
    if mode == "seq_mean_token_mean":
        return mask.bool().any(dim=-1).sum().to(torch.float32)
    return torch.tensor(float(mask.shape[0]), device=mask.device)


def aggregate_loss(
    per_token: torch.Tensor, mask: torch.Tensor, mode: LossAggregation, max_len: int | None = None
) -> torch.Tensor:
    """Reduce a (B, T) per-token loss over the action tokens as ``mode`` says.

    ``seq_mean_token_mean`` averages over the sequences that have at least one action token (an
    empty one has no token mean). ``seq_mean_token_sum_norm`` divides every sequence's token sum
    by the same ``max_len`` (default T) and averages over all B sequences, so the normaliser
    never depends on lengths. ``max_len`` is used by that mode only.
    """
    if mode == "token_mean":
        return masked_mean(per_token, mask)
    if mode == "seq_mean_token_mean":
        has_tokens = mask.bool().any(dim=-1)
        return masked_mean(masked_mean(per_token, mask, dim=-1), has_tokens)
    if mode == "seq_mean_token_sum_norm":
        normaliser = per_token.shape[-1] if max_len is None else max_len
        if normaliser <= 0:
            raise ValueError(f"max_len must be positive, got {normaliser}")
        return (masked_sum(per_token, mask, dim=-1) / normaliser).mean()
    raise ValueError(
        f"unknown loss aggregation {mode!r}; expected 'token_mean', 'seq_mean_token_mean' or 'seq_mean_token_sum_norm'"
    )


def ppo_policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float = 0.2,
    clip_eps_high: float | None = None,
    loss_agg: LossAggregation = "token_mean",
    max_len: int | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO clipped surrogate; ``clip_eps_high`` (default ``clip_eps``) is DAPO's clip-higher.

    Stats: ``clipfrac``, the fraction of action tokens where the clipped term is the larger one
    (so the token gives no gradient); ``approx_kl``, the mean k3 estimate of KL(π_old ‖ π_θ)
    (samples come from π_old: (ρ − 1) − log ρ, clamped to ≤ 10 per token like every
    ``kl_penalty``); ``ratio_mean``, the mean of ρ.
    """
    old_logp, advantages = old_logp.detach(), advantages.detach()
    acting = mask.bool()
    # Padding may hold arbitrary log-probs; a 0 log-ratio there keeps exp() and its gradient
    # finite (torch.where would otherwise back-propagate 0·inf = NaN).
    log_ratio = torch.where(acting, logp - old_logp, 0.0)
    ratio = torch.exp(log_ratio)
    high = clip_eps if clip_eps_high is None else clip_eps_high
    unclipped_loss = -advantages * ratio
    clipped_loss = -advantages * ratio.clamp(1.0 - clip_eps, 1.0 + high)
    per_token = torch.maximum(unclipped_loss, clipped_loss)
    loss = aggregate_loss(per_token, acting, loss_agg, max_len)
    with torch.no_grad():
        stats = {
            "clipfrac": masked_mean((clipped_loss > unclipped_loss).to(ratio.dtype), acting),
            # Samples come from π_old, so k3's log r is log ρ: kl_penalty(0, log ρ) gives it.
            "approx_kl": masked_mean(kl_penalty(torch.zeros_like(log_ratio), log_ratio, "k3"), acting),
            "ratio_mean": masked_mean(ratio, acting),
        }
    return loss, stats


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float | None = 0.2,
    loss_agg: LossAggregation = "token_mean",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped value regression (unclipped when ``clip_eps`` is None).

    Stats: ``value_clipfrac``, the fraction of action tokens where the clipped error is the
    larger one; ``value_error``, the mean of (V − R)².
    """
    old_values, returns = old_values.detach(), returns.detach()
    squared_error = (values - returns) ** 2
    if clip_eps is None:
        per_token = squared_error
        clipped_taken = torch.zeros_like(squared_error, dtype=torch.bool)
    else:
        clipped_values = old_values + (values - old_values).clamp(-clip_eps, clip_eps)
        clipped_error = (clipped_values - returns) ** 2
        per_token = torch.maximum(squared_error, clipped_error)
        clipped_taken = clipped_error > squared_error
    loss = 0.5 * aggregate_loss(per_token, mask, loss_agg)
    with torch.no_grad():
        stats = {
            "value_clipfrac": masked_mean(clipped_taken.to(squared_error.dtype), mask),
            "value_error": masked_mean(squared_error, mask),
        }
    return loss, stats


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """(B, T, V) → (B, T) entropy of softmax(logits), computed in float32 one row at a time."""
    rows = []
    for row_logits in logits:
        log_probs = torch.log_softmax(row_logits.float(), dim=-1)
        probs = log_probs.exp()
        # Logits of −inf have p = 0 and contribute 0; 0·(−inf) would be NaN.
        rows.append(-torch.where(probs > 0, probs * log_probs, 0.0).sum(dim=-1))
    return torch.stack(rows)


def logprobs_from_logits(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """(B, T, V) logits and (B, T) tokens → (B, T) float32 log softmax(logits / temperature)[token].

    Computed one row at a time, so the full (B, T, V) log-softmax is never materialised and bf16
    logits are upcast one (T, V) slice at a time. log_softmax subtracts the row max before
    anything else, which keeps large logits exact (logit − logsumexp would lose float32 digits).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if logits.shape[:-1] != tokens.shape:
        raise ValueError(f"logits {tuple(logits.shape)} do not match tokens {tuple(tokens.shape)}")
    rows = []
    for row_logits, row_tokens in zip(logits, tokens):
        log_probs = torch.log_softmax(row_logits.float() / temperature, dim=-1)
        rows.append(log_probs.gather(-1, row_tokens.long().unsqueeze(-1)).squeeze(-1))
    return torch.stack(rows)


def dpo_loss(
    policy_chosen_logp: torch.Tensor,
    policy_rejected_logp: torch.Tensor,
    ref_chosen_logp: torch.Tensor,
    ref_rejected_logp: torch.Tensor,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
    kind: DPOLossKind = "sigmoid",
    chosen_lengths: torch.Tensor | None = None,
    rejected_lengths: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A DPO-family loss averaged over pairs, from each response's summed log-prob (N,).

    ``label_smoothing`` is used by ``sigmoid``/``cdpo`` and ``robust`` (< 0.5 there) only.
    ``ipo_mean`` divides each log-ratio by its completion's token count, ``chosen_lengths`` /
    ``rejected_lengths`` (N,), inside the loss; the stats keep the summed log-ratios (as TRL).

    Stats use the implicit rewards β·(log π − log π_ref): ``chosen_reward`` and
    ``rejected_reward`` (means), ``reward_margin`` (mean of chosen − rejected) and
    ``reward_accuracy`` (fraction of pairs where chosen > rejected; a tie counts 0, as in TRL).
    """
    if not 0.0 <= label_smoothing <= 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5], got {label_smoothing}")
    if label_smoothing and kind not in ("sigmoid", "cdpo", "robust"):
        raise ValueError(f"label_smoothing is defined for the sigmoid, cdpo and robust losses only, not {kind!r}")
    chosen_log_ratio = policy_chosen_logp - ref_chosen_logp.detach()
    rejected_log_ratio = policy_rejected_logp - ref_rejected_logp.detach()
    preference = chosen_log_ratio - rejected_log_ratio
    if kind == "ipo_mean":
        if chosen_lengths is None or rejected_lengths is None:
            raise ValueError("the ipo_mean loss needs chosen_lengths and rejected_lengths (completion token counts)")
        chosen_count = chosen_lengths.detach().to(chosen_log_ratio.dtype).clamp(min=1)
        rejected_count = rejected_lengths.detach().to(rejected_log_ratio.dtype).clamp(min=1)
        preference = chosen_log_ratio / chosen_count - rejected_log_ratio / rejected_count
    agree, disagree = F.logsigmoid(beta * preference), F.logsigmoid(-beta * preference)
    if kind in ("sigmoid", "cdpo"):
        losses = -(1.0 - label_smoothing) * agree - label_smoothing * disagree
    elif kind == "robust":
        if label_smoothing >= 0.5:
            raise ValueError("the robust loss needs label_smoothing < 0.5 (it divides by 1 − 2·label_smoothing)")
        losses = (-(1.0 - label_smoothing) * agree + label_smoothing * disagree) / (1.0 - 2.0 * label_smoothing)
    elif kind == "hinge":
        losses = torch.relu(1.0 - beta * preference)
    elif kind in ("ipo", "ipo_mean"):
        losses = (preference - 1.0 / (2.0 * beta)) ** 2
    else:
        raise ValueError(
            f"unknown DPO loss {kind!r}; expected 'sigmoid', 'cdpo', 'robust', 'hinge', 'ipo' or 'ipo_mean'"
        )
    with torch.no_grad():
        chosen_reward = beta * chosen_log_ratio
        rejected_reward = beta * rejected_log_ratio
        stats = {
            "chosen_reward": chosen_reward.mean(),
            "rejected_reward": rejected_reward.mean(),
            "reward_margin": (chosen_reward - rejected_reward).mean(),
            "reward_accuracy": (chosen_reward > rejected_reward).float().mean(),
        }
    return losses.mean(), stats
