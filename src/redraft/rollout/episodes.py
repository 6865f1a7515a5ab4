"""Run batches of (multi-turn) episodes with the sampler."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from transformers import PreTrainedModel

from redraft.config import SamplingSection
from redraft.envs.base import Environment, Episode, Turn
from redraft.rollout.sampler import Generation, derive_seed, generate_ids
from redraft.tasks.base import Example
from redraft.text.tokenizer import encode_prompts

# One turn of a rollout: (prompt token ids, sampling settings, the rollout's random stream, one seed
# per prompt or None) -> one completion per prompt. With row seeds, the stream is not used.
TurnGenerator = Callable[[list[list[int]], SamplingSection, torch.Generator | None, list[int] | None], Generation]


def local_turns(model: PreTrainedModel, tokenizer) -> TurnGenerator:
    """Turns sampled in this process with ``generate_ids``."""

    def turn(
        prompts: list[list[int]],
        params: SamplingSection,
        generator: torch.Generator | None,
        row_seeds: list[int] | None,
    ) -> Generation:
        return generate_ids(model, tokenizer, prompts, params, generator=generator, row_seeds=row_seeds)

    return turn


def run_episodes(
    model: PreTrainedModel,
    tokenizer,
    envs: Sequence[Environment],
    examples: Sequence[Example],
    params: SamplingSection | Sequence[SamplingSection],
    generator: torch.Generator | None = None,
    generate_turn: TurnGenerator | None = None,
    row_seeds: Sequence[int] | None = None,
) -> list[Episode]:
    """All episodes advance turn by turn; each turn is one batched generation over the open ones.

    ``params`` may be one sampling setting for every turn or one per turn (e.g. attempt 1 sampled,
    attempt 2 greedy); the last entry serves any further turns.

    The context of a later turn is the exact token sequence so far (never re-tokenized text), so
    the log-probs the sampler returns are those of the sequence the trainer will score.

    Randomness: with ``row_seeds`` (one per episode) episode i's turn t is sampled from its own
    stream ``derive_seed(row_seeds[i], t)``, so an episode is the same whichever batch, process or
    worker samples it; otherwise every turn draws from ``generator`` as one batch.

    ``generate_turn`` samples each turn (default: :func:`local_turns` on ``model``); pass
    ``RayGenerationPool.turns(...)`` to sample on Ray actors.
    """
    if row_seeds is not None and len(row_seeds) != len(envs):
        raise ValueError(f"{len(row_seeds)} row seeds for {len(envs)} episodes")
    generate_turn = generate_turn or local_turns(model, tokenizer)
    observations = [env.reset(example) for env, example in zip(envs, examples)]
    pending = encode_prompts(tokenizer, observations)  # observation tokens not yet in a turn
    contexts = [[] for _ in envs]
    episodes = [Episode(example) for example in examples]
    open_rows = list(range(len(envs)))
    env_type = type(envs[0]) if envs else Environment
    per_turn = [params] if isinstance(params, SamplingSection) else list(params)
    for turn in range(max((env.max_turns for env in envs), default=0)):
        if not open_rows:
            break
        prompts = [contexts[i] + pending[i] for i in open_rows]
        turn_seeds = [derive_seed(row_seeds[i], turn) for i in open_rows] if row_seeds is not None else None
        out = generate_turn(prompts, per_turn[min(turn, len(per_turn) - 1)], generator, turn_seeds)
        results = env_type.step_batch([envs[i] for i in open_rows], out.texts)
        still_open = []
        for k, i in enumerate(open_rows):
            result = results[k]
            episodes[i].turns.append(
                Turn(
                    pending[i],
                    out.token_ids[k],
                    out.logprobs[k],
                    out.texts[k],
                    out.finish_reasons[k],
                    result.reward,
                    result.info,
                )
            )
            contexts[i] = prompts[k] + out.token_ids[k]
            if not result.done and len(episodes[i].turns) < envs[i].max_turns:
                pending[i] = tokenizer(result.observation or "", add_special_tokens=False)["input_ids"]
                still_open.append(i)
        open_rows = still_open
    return episodes
