"""A pool of restartable Ray actors, one CPU each: the base of the sandbox and generation pools.

Optional (``pip install 'redraft[ray]'``). Kept apart from :mod:`redraft.distributed` so that an
actor process that only runs sandboxed programs does not import torch.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from redraft.errors import ConfigError


def import_ray():
    """The ``ray`` module, or a ConfigError saying how to install it."""
    if importlib.util.find_spec("ray") is None:
        raise ConfigError("the Ray backend needs the ray package: pip install 'redraft[ray]'")
    import ray

    return ray


class RayActor:
    """Base of redraft's Ray actors: besides its work, an actor reports its process id."""

    def pid(self) -> int:
        return os.getpid()


class RayActorPool:
    """``workers`` restartable actors of ``actor_class`` (one CPU each; default: one per CPU of the cluster).

    Ray restarts an actor whose process died and retries its calls (``max_retries`` times).
    """

    def __init__(self, actor_class: type[RayActor], workers: int | None, max_retries: int, *args: Any):
        ray = import_ray()
        if not ray.is_initialized():
            ray.init()
        count = workers or int(ray.cluster_resources().get("CPU", 1))
        actor = ray.remote(num_cpus=1, max_restarts=max_retries, max_task_retries=max_retries)(actor_class)
        self.actors = [actor.remote(*args) for _ in range(max(1, count))]

    def worker_pids(self) -> list[int]:
        return import_ray().get([actor.pid.remote() for actor in self.actors])

    def shutdown(self) -> None:
        ray = import_ray()
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []
