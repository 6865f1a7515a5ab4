"""The Ray backend for the code-sandbox reward on a local 2-CPU Ray cluster started by the test."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from redraft.rewards.ray_backend import RaySandboxPool
from redraft.rewards.sandbox import code_reward, run_many

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pool():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    pool = RaySandboxPool(workers=2)
    yield pool
    pool.shutdown()
    ray.shutdown()


def _programs(count: int, sleep: float = 0.0) -> list[str]:
    # Alternate passing and failing programs, so a lost, swapped or repeated result would show.
    return [f"import time\ntime.sleep({sleep})\nassert {i} % 2 == 0\n" for i in range(count)]


def test_same_results_as_the_in_process_pool(pool):
    programs = _programs(8)
    expected = [r.status for r in run_many(programs, workers=2)]
    assert [r.status for r in pool.run_many(programs)] == expected == ["passed", "failed"] * 4

    completions = [
        "```python\ndef add(a, b):\n    return a + b\n```",
        "def add(a, b):\n    return a - b",
        "syntax error(",
    ]
    tests = ["assert add(2, 3) == 5"] * 3
    in_process = code_reward()(["p"] * 3, completions, tests=tests)
    assert code_reward(runner=pool.run_many)(["p"] * 3, completions, tests=tests) == in_process == [1.0, 0.0, 0.0]


def test_a_worker_killed_mid_batch_is_retried_without_losing_or_repeating_samples(pool):
    programs = _programs(6, sleep=1.0)
    victim = pool.worker_pids()[0]

    def kill_soon():
        time.sleep(0.5)  # the first program on each actor is running
        os.kill(victim, signal.SIGKILL)

    killer = threading.Thread(target=kill_soon)
    killer.start()
    results = pool.run_many(programs)
    killer.join()
    assert [r.status for r in results] == ["passed", "failed"] * 3
    assert victim not in pool.worker_pids()  # the actor was restarted in a new process
