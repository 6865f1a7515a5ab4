"""Run one function on several shards at once, with an all-reduce between them (threads stand in for ranks)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import torch


def run_sharded(fn: Callable[..., torch.Tensor], shards: Sequence[tuple]) -> list[torch.Tensor]:
    """``fn(*shard, all_reduce=…)`` on every shard concurrently; ``all_reduce`` sums a tensor over shards."""
    barrier = threading.Barrier(len(shards))
    slots: list[torch.Tensor | None] = [None] * len(shards)
    results: list[torch.Tensor | None] = [None] * len(shards)

    def worker(index: int) -> None:
        def all_reduce(tensor: torch.Tensor) -> torch.Tensor:
            slots[index] = tensor
            barrier.wait()
            total = torch.stack(slots).sum(dim=0)  # type: ignore[arg-type]
            barrier.wait()  # nobody overwrites a slot before everyone has summed
            return total

        results[index] = fn(*shards[index], all_reduce=all_reduce)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(shards))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results  # type: ignore[return-value]
