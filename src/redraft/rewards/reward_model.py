"""A learned reward: score completions with a trained reward model (see :mod:`redraft.models.reward`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from redraft.models.reward import load_reward_model, raw_scores, reward_inputs
from redraft.text.tokenizer import load_tokenizer


class RewardModelScorer:
    """A reward callable ``(prompts, completions, **fields) -> list[float]`` backed by a reward model.

    Scores are batched, computed without gradients and, by default, normalised with the stats
    saved with the model (mean 0, std 1 over its training completions), so a KL coefficient means
    the same thing whichever reward model is plugged in. Use it for PPO (or any RL algorithm)::

        scorer = RewardModelScorer("runs/x/reward_model/model")
        train_rl(..., env_factory=lambda: SingleTurnEnv(task, reward_fn=scorer))
    """

    def __init__(
        self,
        path: str | Path,
        batch_size: int = 256,
        normalise: bool = True,
        max_length: int = 256,
        dtype: str | torch.dtype | None = None,
    ):
        self.model, self.stats = load_reward_model(path, dtype)
        self.model.requires_grad_(False)
        self.tokenizer = load_tokenizer(path)
        self.batch_size, self.normalise, self.max_length = batch_size, normalise, max_length
        self.__name__ = f"reward_model({Path(path).name})"

    def __call__(self, prompts: list[str], completions: list[str], **fields: Any) -> list[float]:
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
        if not completions:
            return []
        data = reward_inputs(self.tokenizer, list(prompts), list(completions), self.max_length)
        with torch.no_grad():
            scores = raw_scores(self.model, data, self.batch_size)
        if self.normalise:
            scores = self.stats.normalise(scores)
        return scores.tolist()
