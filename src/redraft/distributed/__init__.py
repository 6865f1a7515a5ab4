"""Rank-aware helpers for trainers launched with ``accelerate launch`` (DDP/FSDP over N processes).

Every rank must run the same number of collective steps (forward/backward under DDP, reductions),
so work is split into equal shares; metrics computed on a rank's share are reduced so the logged
numbers describe the global batch, exactly as one process would have logged them.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
from accelerate import PartialState
from accelerate.utils import parse_flag_from_env

from redraft.errors import ConfigError

T = TypeVar("T")


def processes() -> PartialState:
    """This launch's processes (just this one without ``torchrun``/``accelerate launch``).

    Several processes on a machine without a GPU use gloo on the CPU even when the launch did not
    set ``ACCELERATE_USE_CPU``: otherwise accelerate would run every process as an unrelated
    single-process job, each writing the same files.
    """
    several = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU") or (several and not torch.cuda.is_available()))


def on_main_process(work: Callable[[], T]) -> T | None:
    """``work()`` on the main process only (writing a file, evaluating); every process waits for it.

    Returns its result on the main process and None elsewhere.
    """
    state = processes()
    result = work() if state.is_main_process else None
    state.wait_for_everyone()
    return result


def end_processes() -> None:
    """After a launch's work succeeded: wait for every process, then close the process group.

    Without it, gloo's worker threads can outlive a process that finished first and abort it at
    exit ("terminate called without an active exception"), failing a run whose work was done.
    Does nothing without a process group (one process).
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def require_divisible(what: str, count: int, world: int) -> None:
    """Raise a clear error when ``count`` cannot be split evenly over ``world`` processes."""
    if count % world:
        raise ConfigError(f"{what} is {count}; with {world} processes it must be a multiple of {world}")


def rank_share(items: Sequence[T], rank: int, world: int) -> list[T]:
    """The contiguous ``rank``-th of ``world`` equal shares of ``items`` (its length must divide by ``world``).

    Splitting a list of prompts (before expanding each into its samples) keeps every prompt's
    group on one rank, so group-relative advantages need no communication.
    """
    share = len(items) // world
    return list(items[rank * share : (rank + 1) * share])


def global_sum(accelerator, value: torch.Tensor | float) -> torch.Tensor:
    """Sum of ``value`` over all processes (the value itself with one process)."""
    tensor = torch.as_tensor(value, dtype=torch.float64, device=accelerator.device).detach().clone()
    return accelerator.reduce(tensor, reduction="sum") if accelerator.num_processes > 1 else tensor


def mean_across_ranks(accelerator, metrics: dict[str, float]) -> dict[str, float]:
    """Average each metric over processes: with equal shares, the mean of rank means is the global mean."""
    if accelerator.num_processes == 1 or not metrics:
        return dict(metrics)
    keys = sorted(metrics)
    stacked = global_sum(accelerator, torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64))
    return {k: float(v) / accelerator.num_processes for k, v in zip(keys, stacked.tolist())}


def gather_all(accelerator, tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate every process's (equal-length) ``tensor`` in rank order."""
    if accelerator.num_processes == 1:
        return tensor
    return accelerator.gather(tensor.to(accelerator.device).contiguous()).cpu()


def launch_argv(args: Sequence[str], processes: int) -> list[str]:
    """``python ARGS`` with ``processes`` CPU processes: torchrun on a free local port when more than one.

    accelerate's own launcher needs MPI for several CPU processes; torchrun is what it runs on GPUs too.
    """
    if processes == 1:
        return [sys.executable, *args]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(processes),
        "--master_port",
        str(port),
        *args,
    ]
