"""Sampling in fixed-size shards with per-shard seeds, so results do not depend on who samples them.

``generate_ids`` draws every row of a batch from one random stream, so its samples change with the
batch composition. Here the prompts are cut into shards of ``shard_size`` and shard ``i`` is sampled
with a seed derived only from ``(seed, i)``: any number of workers, in any order, produce exactly
what :func:`generate_sharded` produces in-process (see ``rollout.ray_workers``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from transformers import PreTrainedModel

from redraft.config import SamplingConfig
from redraft.errors import ConfigError
from redraft.rollout.sampler import Generation, generate_ids

# One turn of a rollout: (prompt token ids, sampling settings, the rollout's random stream) -> one completion per prompt.
TurnGenerator = Callable[[list[list[int]], SamplingConfig, torch.Generator | None], Generation]
# A sharded sampler bound to its model: (prompt token ids, sampling settings, seed) -> one completion per prompt.
SeededGenerator = Callable[[list[list[int]], SamplingConfig, int], Generation]


def shard_seed(seed: int, index: int) -> int:
    """The seed of shard ``index``: a function of ``(seed, index)`` alone, whoever samples the shard."""
    return seed * 1_000_003 + index


def shards(prompt_ids: list[list[int]], shard_size: int) -> list[list[list[int]]]:
    """Consecutive slices of ``shard_size`` prompts (the last may be shorter)."""
    if shard_size < 1:
        raise ConfigError(f"shard_size must be >= 1 (got {shard_size})")
    return [prompt_ids[start : start + shard_size] for start in range(0, len(prompt_ids), shard_size)]


def generate_sharded(
    model: PreTrainedModel,
    tokenizer,
    prompt_ids: list[list[int]],
    params: SamplingConfig,
    seed: int,
    shard_size: int,
) -> Generation:
    """One completion per prompt, in prompt order; the in-process reference for the Ray generation pool."""
    result = Generation()
    for index, shard in enumerate(shards(prompt_ids, shard_size)):
        result.extend(generate_ids(model, tokenizer, shard, params, seed=shard_seed(seed, index)))
    return result


def draw_seed(generator: torch.Generator | None) -> int:
    """A turn's seed from the rollout's random stream (torch's global stream when ``generator`` is None)."""
    return int(torch.randint(2**31 - 1, (), generator=generator))


def seeded_turns(generate: SeededGenerator) -> TurnGenerator:
    """Adapt a sharded sampler to ``run_episodes``: every turn draws its seed from the rollout's generator,
    so a run seeded once stays reproducible turn after turn."""

    def turn(prompt_ids: list[list[int]], params: SamplingConfig, generator: torch.Generator | None) -> Generation:
        return generate(prompt_ids, params, draw_seed(generator))

    return turn


def sharded_turns(model: PreTrainedModel, tokenizer, shard_size: int) -> TurnGenerator:
    """In-process sharded turns: what ``RayGenerationPool.turns`` returns, computed without Ray."""
    return seeded_turns(partial(generate_sharded, model, tokenizer, shard_size=shard_size))
