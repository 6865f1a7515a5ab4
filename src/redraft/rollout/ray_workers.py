"""Sample rollouts on Ray actors, so generation spreads over a cluster's cores while the learner trains.

Optional (``pip install 'redraft[ray]'``). Each actor holds its own copy of the policy and samples
whole shards of prompts with :func:`~redraft.rollout.sampler.generate_ids`, every prompt from its
own row seed: the pool returns exactly what ``generate_ids(..., row_seeds=...)`` returns in-process
for the same seeds and weights, whatever the number of actors or the shard size.

Weights travel through Ray's object store: :meth:`RayGenerationPool.load_weights` puts one copy of
the learner's state dict there under a new version, and every call carries ``(version, reference)``.
An actor reloads when the version it holds differs, so it syncs once per update, and an actor that
Ray restarted after its process died (it comes back with no weights) reloads the current ones before
it samples the retried shard. Fault tolerance is Ray's own (``max_restarts``/``max_task_retries``);
every shard is one call whose result lands at its own index, so a retried shard counts exactly once.
Sampling has no side effects, which is what makes running a shard again safe.

    import ray; ray.init()                       # or ray.init(address="auto") on a cluster
    pool = RayGenerationPool(policy, tokenizer, workers=8)
    episodes = run_episodes(policy, tokenizer, envs, examples, params, generate_turn=pool.turns(16), row_seeds=seeds)
    ...                                          # optimizer steps
    pool.load_weights(policy.state_dict())       # the next rollout samples from the updated policy
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers import AutoModelForCausalLM, PretrainedConfig, PreTrainedModel

from redraft.config import SamplingSection
from redraft.errors import ConfigError
from redraft.ray_pool import RayActor, RayActorPool, import_ray
from redraft.rollout.episodes import TurnGenerator
from redraft.rollout.sampler import Generation, derive_seed, generate_ids


@dataclass(frozen=True)
class _Weights:
    """A version of the policy's state dict in the object store.

    The reference sits inside this object rather than being a call's argument, so Ray does not
    fetch the weights for every call: an actor fetches them only when ``version`` is new to it.
    """

    version: int
    ref: Any  # ray.ObjectRef of {name: CPU tensor}


class _GenerationWorker(RayActor):
    """One Ray actor: a copy of the policy that samples shards, one at a time."""

    def __init__(self, config: PretrainedConfig, tokenizer, dtype: torch.dtype):
        torch.set_num_threads(1)  # one actor per CPU; more threads would fight the other actors for cores
        self.model = AutoModelForCausalLM.from_config(config, dtype=dtype).eval()
        self.tokenizer = tokenizer
        self.version: int | None = None  # no weights yet: a fresh or restarted actor loads before sampling

    def generate(
        self, weights: _Weights, prompt_ids: list[list[int]], params: SamplingSection, row_seeds: list[int]
    ) -> Generation:
        if weights.version != self.version:
            self.model.load_state_dict(import_ray().get(weights.ref))
            self.version = weights.version
        return generate_ids(self.model, self.tokenizer, prompt_ids, params, row_seeds=row_seeds)


class RayGenerationPool(RayActorPool):
    """``workers`` restartable Ray actors sampling with copies of ``model`` (its current weights)."""

    def __init__(self, model: PreTrainedModel, tokenizer, workers: int | None = None, max_retries: int = 3):
        super().__init__(_GenerationWorker, workers, max_retries, model.config, tokenizer, model.dtype)
        self._weights: _Weights | None = None
        self.load_weights(model.state_dict())

    @property
    def version(self) -> int:
        """How many times weights were loaded after the first; the actors sample with this version."""
        return self._weights.version

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Make ``state_dict`` (e.g. the learner's after an update) the weights of every later call.

        The copy into the object store happens now, so later in-place updates of the learner do not
        leak into it; each actor loads it lazily, on its next shard.
        """
        tensors = {name: tensor.detach().cpu() for name, tensor in state_dict.items()}
        version = 0 if self._weights is None else self._weights.version + 1
        self._weights = _Weights(version, import_ray().put(tensors))

    def generate(
        self, prompt_ids: list[list[int]], params: SamplingSection, row_seeds: list[int], shard_size: int
    ) -> Generation:
        """Exactly ``generate_ids(model, tokenizer, prompt_ids, params, row_seeds=row_seeds)`` with the loaded weights.

        Shards of ``shard_size`` prompts go to the actors round-robin; equal-sized shards keep the
        actors about equally busy.
        """
        if shard_size < 1:
            raise ConfigError(f"shard_size must be >= 1 (got {shard_size})")
        if len(row_seeds) != len(prompt_ids):
            raise ConfigError(f"{len(row_seeds)} row seeds for {len(prompt_ids)} prompts")
        calls = [
            self.actors[index % len(self.actors)].generate.remote(
                self._weights, prompt_ids[start : start + shard_size], params, row_seeds[start : start + shard_size]
            )
            for index, start in enumerate(range(0, len(prompt_ids), shard_size))
        ]
        result = Generation()
        for part in import_ray().get(calls):
            result.extend(part)
        return result

    def turns(self, shard_size: int) -> TurnGenerator:
        """The turn-level sampler for ``run_episodes``.

        Without row seeds (``run_episodes`` given only a generator) a turn draws one number from the
        rollout's stream and derives its rows' seeds from it, so a run seeded once stays reproducible.
        """

        def turn(prompts, params, generator, row_seeds) -> Generation:  # a TurnGenerator
            if row_seeds is None:
                base = int(torch.randint(2**62, (), generator=generator))
                row_seeds = [derive_seed(base, row) for row in range(len(prompts))]
            return self.generate(prompts, params, row_seeds, shard_size)

        return turn
