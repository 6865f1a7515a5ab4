"""Scale-out costs on this machine, as JSON.

1. Code-sandbox reward throughput (HumanEval-sized programs/s): the in-process thread pool
   (``sandbox.run_many``) vs the Ray backend (``RaySandboxPool``) on a local Ray cluster.
2. Data-parallel step time on CPU: torchrun with 2 gloo processes vs 1 process,
   same global batch (the micro SFT run of ``redraft.testing.smoke``).
3. Sampling throughput (generated tokens/s): in-process ``generate_ids`` in batches of the shard
   size (one process, all cores) vs ``RayGenerationPool`` (one single-threaded actor per core),
   same row seeds, so the same samples.

    python bench/scale.py --programs 64 --steps 12 --gen-prompts 128 --new-tokens 32
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from common import bench_setup

from redraft.config import SamplingSection
from redraft.rewards.sandbox import run_many
from redraft.rollout.sampler import derive_seed, generate_ids
from redraft.testing.smoke import launch_command
from redraft.text.tokenizer import encode_prompts

# A HumanEval-sized task: a ~20-line solution and a check() with several asserts.
PROGRAM = '''
def below_zero_prefix(operations: list[int]) -> int:
    """Index of the first operation after which the balance drops below zero, or -1."""
    balance = 0
    for index, amount in enumerate(operations):
        balance += amount
        if balance < 0:
            return index
    return -1
'''
TESTS = """
def check(candidate):
    assert candidate([]) == -1
    assert candidate([1, 2, -4, 5]) == 2
    assert candidate([1, 2, -3, 1, 2, -3]) == -1
    assert candidate([1, -1, 2, -2, 5, -5, 4, -{seed}]) == 7
    assert candidate([-{seed}]) == 0
"""


def sandbox_throughput(count: int, workers: int) -> dict[str, float]:
    programs = [PROGRAM] * count
    tests = [TESTS.replace("{seed}", str(5 + i)) for i in range(count)]
    entry_points = ["below_zero_prefix"] * count
    run_many(
        programs[:workers], workers, tests=tests[:workers], entry_points=entry_points[:workers]
    )  # warm the isolation probe
    started = time.perf_counter()
    local = run_many(programs, workers, tests=tests, entry_points=entry_points)
    local_s = time.perf_counter() - started

    import ray

    from redraft.rewards.ray_backend import RaySandboxPool

    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        pool = RaySandboxPool(workers=workers)
        pool.run_many(programs[:workers], tests=tests[:workers], entry_points=entry_points[:workers])  # actors started
        started = time.perf_counter()
        remote = pool.run_many(programs, tests=tests, entry_points=entry_points)
        ray_s = time.perf_counter() - started
    finally:
        ray.shutdown()
    assert [r.status for r in remote] == [r.status for r in local], "Ray and in-process results differ"
    return {
        "programs": count,
        "workers": workers,
        "passed": sum(r.passed for r in local),
        "in_process_programs_per_s": count / local_s,
        "ray_programs_per_s": count / ray_s,
        "ray_over_in_process": local_s / ray_s,
    }


def _step_seconds(processes: int, steps: int, out_dir: Path) -> float:
    threads = max(1, (os.cpu_count() or 1) // processes)  # same cores in total
    command, env = launch_command("sft", out_dir, steps, processes, threads=threads)
    subprocess.run(command, env=env, check=True, capture_output=True)
    records = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    logged = {r["step"]: r["time"] for r in records if "loss" in r}
    # The smoke run evaluates and checkpoints after every even step, so the time from an odd step's
    # record to the next even step's is one plain training step (steps 1-2 skipped: warm-up).
    return statistics.median(logged[s] - logged[s - 1] for s in range(4, steps + 1, 2))


def ddp_step_time(steps: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        one = _step_seconds(1, steps, Path(tmp) / "one")
        two = _step_seconds(2, steps, Path(tmp) / "two")
    return {"steps": steps, "one_process_step_s": one, "two_process_step_s": two, "two_over_one": two / one}


def generation_throughput(
    prompts: int, new_tokens: int, shard_size: int, workers: int, preset: str
) -> dict[str, float]:
    task, tokenizer, model = bench_setup(preset)
    prompt_ids = encode_prompts(tokenizer, [task.prompt(example) for example in task.test[:prompts]])
    params = SamplingSection(temperature=1.0, max_new_tokens=new_tokens, batch_size=shard_size)
    seeds = [derive_seed(1, row) for row in range(len(prompt_ids))]
    generate_ids(model, tokenizer, prompt_ids[:shard_size], params, row_seeds=seeds[:shard_size])  # warm-up
    started = time.perf_counter()
    local = generate_ids(model, tokenizer, prompt_ids, params, row_seeds=seeds)
    local_s = time.perf_counter() - started

    import ray

    from redraft.rollout.ray_workers import RayGenerationPool

    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        pool = RayGenerationPool(model, tokenizer, workers=workers)
        warm = shard_size * workers
        pool.generate(prompt_ids[:warm], params, seeds[:warm], shard_size=shard_size)  # started, weights loaded
        started = time.perf_counter()
        remote = pool.generate(prompt_ids, params, seeds, shard_size=shard_size)
        ray_s = time.perf_counter() - started
    finally:
        ray.shutdown()
    assert remote.token_ids == local.token_ids, "Ray and in-process samples differ"
    tokens = sum(len(ids) for ids in local.token_ids)
    return {
        "preset": preset,
        "prompts": prompts,
        "shard_size": shard_size,
        "workers": workers,
        "generated_tokens": tokens,
        "in_process_tokens_per_s": tokens / local_s,
        "ray_tokens_per_s": tokens / ray_s,
        "ray_over_in_process": local_s / ray_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--programs", type=int, default=64)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--gen-prompts", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--shard-size", type=int, default=16)
    parser.add_argument("--preset", default="small")
    args = parser.parse_args()
    result = {
        "cpus": os.cpu_count(),
        "sandbox": sandbox_throughput(args.programs, args.workers),
        "ddp_cpu": ddp_step_time(args.steps),
        "generation": generation_throughput(
            args.gen_prompts, args.new_tokens, args.shard_size, args.workers, args.preset
        ),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
