"""Score code-sandbox rewards on Ray actors, so scoring spreads over a cluster's cores.

Optional (``pip install 'redraft[ray]'``). Each actor runs programs with the in-process
``run_python`` on whichever node it lives; the sandbox's isolation applies there unchanged.

Fault tolerance comes from Ray itself: actors are restartable and their calls retried
(``max_restarts``/``max_task_retries``), so when a worker process dies mid-batch its program is
run again on the restarted actor. Every program is one call whose result lands at its own index,
so a retried program counts exactly once. A sandbox run has no side effects outside its
throw-away namespace, which is what makes running it again safe.

    import ray; ray.init()                       # or ray.init(address="auto") on a cluster
    pool = RaySandboxPool(workers=8)
    reward = code_reward(runner=pool.run_many)   # same results as the in-process pool
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redraft.ray_pool import RayActor, RayActorPool, import_ray
from redraft.rewards.sandbox import SandboxResult, aligned_with_programs, run_python


class _SandboxScorer(RayActor):
    """One Ray actor: runs sandboxed programs one at a time."""

    def run(self, program: str, tests: str | None, entry_point: str | None, limits: dict[str, Any]) -> SandboxResult:
        return run_python(program, tests=tests, entry_point=entry_point, **limits)


class RaySandboxPool(RayActorPool):
    """Sandbox actors; :meth:`run_many` has the signature of ``sandbox.run_many``."""

    def __init__(self, workers: int | None = None, max_retries: int = 3):
        super().__init__(_SandboxScorer, workers, max_retries)

    def run_many(
        self,
        programs: Sequence[str],
        workers: int | None = None,
        *,
        tests: Sequence[str | None] | None = None,
        entry_points: Sequence[str | None] | None = None,
        **limits: Any,
    ) -> list[SandboxResult]:
        """Results in the order of ``programs``; ``workers`` is ignored (the pool's size decides)."""
        tests = aligned_with_programs("tests", tests, len(programs))
        entry_points = aligned_with_programs("entry points", entry_points, len(programs))
        calls = [
            self.actors[i % len(self.actors)].run.remote(program, test, entry_point, limits)
            for i, (program, test, entry_point) in enumerate(zip(programs, tests, entry_points))
        ]
        return import_ray().get(calls)
