"""Rollouts as training tensors: episodes right-padded into one batch, and log-probs of a batch's
tokens under a model (the RL update, its reference and DPO score sequences the same way)."""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass

import torch

from redraft.algorithms import logprobs_from_logits
from redraft.envs.base import Episode


@dataclass
class RolloutBatch:
    """Episodes as right-padded tensors, all (N, L) unless noted."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    action_mask: torch.Tensor  # 1.0 on policy-generated tokens
    old_logp: torch.Tensor  # sampler log-probs at action tokens
    token_rewards: torch.Tensor  # each turn's reward on its last action token
    scores: torch.Tensor  # (N,) episode reward
    truncated: torch.Tensor  # (N,) any reply cut at max_new_tokens
    correct: torch.Tensor  # (N,) the last turn's checker verdict
    turn_ids: torch.Tensor  # (N, L) long: the turn of every token (0 on padding)
    turn_rewards: torch.Tensor  # (N, K) each turn's reward (0 for turns an episode did not reach)
    turn_correct: torch.Tensor  # (N, K) each turn's checker verdict

    def to(self, device) -> RolloutBatch:
        return RolloutBatch(**{name: value.to(device) for name, value in vars(self).items()})


def collate_episodes(episodes: list[Episode], pad_id: int, truncation_penalty: float = 0.0) -> RolloutBatch:
    width = max(len(e.token_ids()) for e in episodes)
    turns = max(len(e.turns) for e in episodes)
    n = len(episodes)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    attention = torch.zeros((n, width), dtype=torch.long)
    action = torch.zeros((n, width))
    old_logp = torch.zeros((n, width))
    token_rewards = torch.zeros((n, width))
    scores, truncated, correct = torch.zeros(n), torch.zeros(n, dtype=torch.bool), torch.zeros(n)
    turn_ids = torch.zeros((n, width), dtype=torch.long)
    turn_rewards, turn_correct = torch.zeros((n, turns)), torch.zeros((n, turns))
    for i, episode in enumerate(episodes):
        ids = episode.token_ids()
        input_ids[i, : len(ids)] = torch.tensor(ids)
        attention[i, : len(ids)] = 1
        action[i, : len(ids)] = torch.tensor(episode.action_mask(), dtype=torch.float32)
        old_logp[i, : len(ids)] = torch.tensor(episode.logprobs())
        turn_ids[i, : len(ids)] = torch.tensor(episode.turn_ids())
        position = 0
        for k, turn in enumerate(episode.turns):
            position += len(turn.observation_ids) + len(turn.reply_ids)
            penalty = truncation_penalty if turn.finish_reason == "length" else 0.0
            # An empty reply has no token to carry its reward; it lands on the last context token.
            token_rewards[i, max(position - 1, 0)] += turn.reward - penalty
            scores[i] += turn.reward - penalty
            turn_rewards[i, k] = turn.reward - penalty
            turn_correct[i, k] = float(bool(turn.info.get("correct", turn.reward > 0)))
        truncated[i] = any(t.finish_reason == "length" for t in episode.turns)
        correct[i] = float(bool(episode.turns[-1].info.get("correct", episode.turns[-1].reward > 0)))
    return RolloutBatch(
        input_ids,
        attention,
        action,
        old_logp,
        token_rewards,
        scores,
        truncated,
        correct,
        turn_ids,
        turn_rewards,
        turn_correct,
    )


def sequence_logprobs(
    model, input_ids, attention_mask, temperature: float, action_mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of every token given its prefix (column 0 is 0) and the logits that produced them.

    With ``action_mask``, only the columns from the batch's first action token on are scored: the LM head and
    the log-softmax skip the prompts (for long prompts and large vocabularies, much of the work and of the
    logits' memory). Earlier columns are then 0, and the logits are those of the scored columns, aligned with
    the last columns of the batch."""
    device = next(model.parameters()).device
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    start = 1
    if action_mask is not None and bool(action_mask.any()) and _scores_a_suffix(model):
        start = max(int(action_mask.any(dim=0).nonzero()[0]), 1)
    # logits_to_keep counts positions from the end: start - 1 predicts token start, the last position nothing.
    suffix = {"logits_to_keep": input_ids.shape[1] - start + 1} if start > 1 else {}
    logits = model(input_ids=input_ids, attention_mask=attention_mask, **suffix).logits[:, :-1]
    logp = logprobs_from_logits(logits, input_ids[:, start:], temperature)
    return torch.cat([logp.new_zeros(len(logp), start), logp], dim=1), logits


def _scores_a_suffix(model) -> bool:
    """Whether the model's forward takes ``logits_to_keep`` (transformers' causal LMs; under DDP or peft, the
    model inside)."""
    inner = getattr(model, "module", model)
    inner = inner.get_base_model() if hasattr(inner, "get_base_model") else inner
    return _forward_takes_logits_to_keep(type(inner))


@functools.cache
def _forward_takes_logits_to_keep(model_class: type) -> bool:
    # Read once per class: the update asks for every chunk.
    return "logits_to_keep" in inspect.signature(model_class.forward).parameters
