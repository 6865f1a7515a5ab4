"""The Ray generation pool on a local 2-CPU Ray cluster started by the test: same samples as in-process."""

from __future__ import annotations

import copy
import os
import signal
import threading
import time

import pytest
import torch

from redraft.config import ModelSection, SamplingSection
from redraft.envs import SelfCorrectionEnv
from redraft.models import build_model
from redraft.rollout.episodes import run_episodes
from redraft.rollout.ray_workers import RayGenerationPool
from redraft.rollout.sampler import (
    Generation,
    derive_seed,
    generate_ids,
)
from redraft.text.tokenizer import encode_prompts

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow

SAMPLED = SamplingSection(temperature=1.0, max_new_tokens=8)


def _seeds(seed: int, count: int) -> list[int]:
    return [derive_seed(seed, row) for row in range(count)]


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    return build_model(ModelSection(preset="micro"), tokenizer).eval()


@pytest.fixture(scope="module")
def pool(model, tokenizer):
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    pool = RayGenerationPool(model, tokenizer, workers=2)
    yield pool
    pool.shutdown()
    ray.shutdown()


@pytest.fixture(scope="module")
def prompt_ids(micro_task, tokenizer):
    return encode_prompts(tokenizer, [micro_task.prompt(example) for example in micro_task.test[:12]])


def _assert_same(actual: Generation, expected: Generation) -> None:
    assert actual.prompt_ids == expected.prompt_ids
    assert actual.token_ids == expected.token_ids
    assert actual.texts == expected.texts
    assert actual.finish_reasons == expected.finish_reasons
    for got, want in zip(actual.logprobs, expected.logprobs):
        torch.testing.assert_close(torch.tensor(got), torch.tensor(want), atol=1e-5, rtol=1e-5)


def test_same_samples_as_in_process_whatever_the_shard_size(pool, model, tokenizer, prompt_ids):
    seeds = _seeds(3, len(prompt_ids))
    expected = generate_ids(model, tokenizer, prompt_ids, SAMPLED, row_seeds=seeds)
    # 12 prompts in shards of 2 (six shards on two actors, each actor samples several) or of 5.
    _assert_same(pool.generate(prompt_ids, SAMPLED, seeds, shard_size=2), expected)
    _assert_same(pool.generate(prompt_ids, SAMPLED, seeds, shard_size=5), expected)
    assert expected.prompt_ids == prompt_ids
    # The seeds matter (the comparison above is not between two constant outputs).
    other = generate_ids(model, tokenizer, prompt_ids, SAMPLED, row_seeds=_seeds(4, len(prompt_ids)))
    assert other.token_ids != expected.token_ids


def test_a_worker_killed_mid_batch_is_retried_without_losing_or_repeating_samples(pool, model, tokenizer, micro_task):
    # One prompt per shard and long replies: the batch stays in flight for about a second.
    prompts = encode_prompts(tokenizer, [micro_task.prompt(example) for example in micro_task.test[:24]])
    params = SamplingSection(temperature=1.0, max_new_tokens=64)
    seeds = _seeds(11, len(prompts))
    started = time.perf_counter()
    expected = pool.generate(prompts, params, seeds, shard_size=1)
    duration = time.perf_counter() - started
    victim = pool.worker_pids()[0]
    killed_at = []

    def kill_soon():
        time.sleep(duration / 3)  # both actors are sampling their shards
        os.kill(victim, signal.SIGKILL)
        killed_at.append(time.perf_counter())

    killer = threading.Thread(target=kill_soon)
    killer.start()
    result = pool.generate(prompts, params, seeds, shard_size=1)
    returned_at = time.perf_counter()
    killer.join()
    assert killed_at[0] < returned_at  # the kill landed while the batch was in flight
    assert victim not in pool.worker_pids()  # the actor was restarted in a new process
    _assert_same(result, expected)  # every prompt once, in its place, with the same sample
    assert result.prompt_ids == prompts
    _assert_same(result, generate_ids(model, tokenizer, prompts, params, row_seeds=seeds))


def test_loaded_weights_are_used_by_every_actor(pool, model, tokenizer, prompt_ids):
    changed = copy.deepcopy(model)
    with torch.no_grad():
        for parameter in changed.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=torch.Generator().manual_seed(1)) * 0.5)
    seeds = _seeds(5, len(prompt_ids))
    before = pool.generate(prompt_ids, SAMPLED, seeds, shard_size=3)
    version = pool.version
    pool.load_weights(changed.state_dict())
    try:
        assert pool.version == version + 1
        after = pool.generate(prompt_ids, SAMPLED, seeds, shard_size=3)
        _assert_same(after, generate_ids(changed, tokenizer, prompt_ids, SAMPLED, row_seeds=seeds))
        assert after.token_ids != before.token_ids
    finally:
        pool.load_weights(model.state_dict())


def test_episodes_through_the_pool_match_in_process_episodes(pool, model, tokenizer, micro_task):
    examples = micro_task.test[:6]
    per_turn = [SAMPLED, SAMPLED.model_copy(update={"temperature": 0.7})]  # two sampled attempts

    def episodes(generate_turn):
        envs = [SelfCorrectionEnv(micro_task) for _ in examples]
        return run_episodes(
            model, tokenizer, envs, examples, per_turn, generate_turn=generate_turn, row_seeds=_seeds(2, 6)
        )

    local = episodes(None)
    remote = episodes(pool.turns(shard_size=4))
    assert [len(e.turns) for e in remote] == [len(e.turns) for e in local] == [2] * len(examples)
    assert [e.token_ids() for e in remote] == [e.token_ids() for e in local]
    assert [[t.reward for t in e.turns] for e in remote] == [[t.reward for t in e.turns] for e in local]
    torch.testing.assert_close(
        torch.tensor([lp for e in remote for lp in e.logprobs()]),
        torch.tensor([lp for e in local for lp in e.logprobs()]),
    )
    # Without row seeds the pool derives them from the rollout's generator: still seeded.
    first = run_episodes(
        model,
        tokenizer,
        [SelfCorrectionEnv(micro_task) for _ in examples],
        examples,
        per_turn,
        torch.Generator().manual_seed(9),
        pool.turns(shard_size=4),
    )
    again = run_episodes(
        model,
        tokenizer,
        [SelfCorrectionEnv(micro_task) for _ in examples],
        examples,
        per_turn,
        torch.Generator().manual_seed(9),
        pool.turns(shard_size=3),
    )
    assert [e.token_ids() for e in first] == [e.token_ids() for e in again]
