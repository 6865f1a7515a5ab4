"""Run batches of (multi-turn) episodes with the sampler."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from transformers import PreTrainedModel

from redraft.config import SamplingConfig
from redraft.envs.base import Environment, Episode, Turn
from redraft.rollout.sampler import Generation, encode_prompts, generate_ids
from redraft.rollout.sharded import TurnGenerator
from redraft.tasks.base import Example


def _generate_in_process(
    model: PreTrainedModel, tokenizer, prompts: list[list[int]], params: SamplingConfig, generator: torch.Generator | None
) -> Generation:
    """The default turn: the whole batch from one random stream (samples depend on the batch composition)."""
    return generate_ids(model, tokenizer, prompts, params, generator=generator)


def run_episodes(
    model: PreTrainedModel,
    tokenizer,
    envs: Sequence[Environment],
    examples: Sequence[Example],
    params: SamplingConfig | Sequence[SamplingConfig],
    generator: torch.Generator | None = None,
    generate_turn: TurnGenerator | None = None,
) -> list[Episode]:
    """All episodes advance turn by turn; each turn is one batched generation over the open ones.

    ``params`` may be one sampling setting for every turn or one per turn (e.g. attempt 1 sampled,
    attempt 2 greedy); the last entry serves any further turns.

    The context of a later turn is the exact token sequence so far (never re-tokenized text), so
    the log-probs the sampler returns are those of the sequence the trainer will score.

    ``generate_turn`` samples each turn (default: ``generate_ids`` on ``model``, drawing from
    ``generator``); pass ``RayGenerationPool.turns(...)`` to sample on Ray actors, or
    ``sharded_turns(...)`` for the same samples in-process.
    """
    generate_turn = generate_turn or partial(_generate_in_process, model, tokenizer)
    observations = [env.reset(example) for env, example in zip(envs, examples)]
    pending = encode_prompts(tokenizer, observations)  # observation tokens not yet in a turn
    contexts = [[] for _ in envs]
    episodes = [Episode(example) for example in examples]
    open_rows = list(range(len(envs)))
    env_type = type(envs[0]) if envs else Environment
    per_turn = [params] if isinstance(params, SamplingConfig) else list(params)
    for turn in range(max((env.max_turns for env in envs), default=0)):
        if not open_rows:
            break
        prompts = [contexts[i] + pending[i] for i in open_rows]
        out = generate_turn(prompts, per_turn[min(turn, len(per_turn) - 1)], generator)
        results = env_type.step_batch([envs[i] for i in open_rows], out.texts)
        still_open = []
        for k, i in enumerate(open_rows):
            result = results[k]
            episodes[i].turns.append(
                Turn(pending[i], out.token_ids[k], out.logprobs[k], out.texts[k], out.finish_reasons[k], result.reward, result.info)
            )
            contexts[i] = prompts[k] + out.token_ids[k]
            if not result.done and len(episodes[i].turns) < envs[i].max_turns:
                pending[i] = tokenizer(result.observation or "", add_special_tokens=False)["input_ids"]
                still_open.append(i)
        open_rows = still_open
    return episodes
