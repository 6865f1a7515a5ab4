"""A memory cgroup per sandbox run: one cap on everything a run holds together.

Why: RLIMIT_AS caps each process on its own, so a run with many processes, or with memfds and
tmpfs files (which no process's address space counts), could take many times its limit. A cgroup
counts all of it: every process of the run, its page cache, its tmpfs and memfd pages, and (v1)
the kernel memory it causes. Swap is capped too, so the limit cannot be dodged by swapping.

cgroup v2 is used when the memory controller can be enabled for our own cgroup's children (not
possible when our cgroup holds processes and is not the root: the "no internal processes" rule);
otherwise a writable v1 memory hierarchy. Each run gets ``<our cgroup>/redraft-sandbox-<uid>``:
the uid slot it holds makes the name unique among our processes.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

log = logging.getLogger(__name__)

_REMOVE_SECONDS = 2.0


@dataclass(frozen=True)
class _Version:
    number: int
    limits: tuple[tuple[str, str], ...]  # (file, value) written in this order; "{limit}" is the byte cap
    events: str  # the file where the kernel counts the run's OOM kills ("oom_kill N")


_V2 = _Version(2, (("memory.max", "{limit}"), ("memory.swap.max", "0")), "memory.events")
_V1 = _Version(
    1, (("memory.limit_in_bytes", "{limit}"), ("memory.memsw.limit_in_bytes", "{limit}")), "memory.oom_control"
)


@dataclass(frozen=True)
class MemoryCgroups:
    """Where this process can make per-run memory cgroups."""

    parent: str
    version: _Version

    @contextmanager
    def run(self, name: str, limit_bytes: int) -> Iterator[RunCgroup]:
        """A fresh cgroup capped at ``limit_bytes``, removed (with anything left in it) afterwards."""
        cgroup = RunCgroup(os.path.join(self.parent, name), self.version)
        cgroup.remove()  # a leftover from a caller that crashed
        os.mkdir(cgroup.path)
        try:
            for file, value in self.version.limits:
                path = os.path.join(cgroup.path, file)
                if os.path.exists(path):  # swap accounting may be off
                    with open(path, "w") as limit:
                        limit.write(value.format(limit=limit_bytes))
            yield cgroup
        finally:
            cgroup.remove()


@dataclass(frozen=True)
class RunCgroup:
    path: str
    version: _Version

    def oom_kills(self) -> int:
        """How many processes the kernel killed because the run reached its cap."""
        try:
            with open(os.path.join(self.path, self.version.events)) as events:
                counts = dict(line.split() for line in events if len(line.split()) == 2)
        except OSError:
            return 0
        return int(counts.get("oom_kill", 0))

    def remove(self) -> None:
        """SIGKILL whatever is still inside (normally nothing: the run's namespaces are gone), then
        remove the cgroup; exiting processes keep it busy for a moment."""
        deadline = time.monotonic() + _REMOVE_SECONDS
        while os.path.isdir(self.path):
            for pid in self._pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                os.rmdir(self.path)
            except OSError as error:
                if error.errno not in (errno.EBUSY, errno.ENOENT):
                    raise
                if time.monotonic() > deadline:
                    log.warning("sandbox: cannot remove the cgroup %s: %s", self.path, error)
                    return
                time.sleep(0.01)

    def _pids(self) -> list[int]:
        try:
            with open(os.path.join(self.path, "cgroup.procs")) as procs:
                return [int(line) for line in procs if line.strip()]
        except OSError:
            return []


def find_memory_cgroups() -> MemoryCgroups | str:
    """Where to make per-run memory cgroups, or why that is impossible here."""
    if os.geteuid() != 0:
        return "not root"
    reasons = []
    for version in (_V2, _V1):
        found = _own_cgroup_dir(version)
        if found is None:
            reasons.append(f"no cgroup v{version.number} memory hierarchy")
            continue
        problem = _memory_controller_problem(found, version)
        if problem is None:
            return MemoryCgroups(found, version)
        reasons.append(problem)
    return "; ".join(reasons)


def _own_cgroup_dir(version: _Version) -> str | None:
    """The directory of our own cgroup in the v2 hierarchy, or in the v1 memory hierarchy."""
    try:
        with open("/proc/self/cgroup") as cgroups:
            membership = [line.rstrip("\n").split(":", 2) for line in cgroups]
        with open("/proc/self/mountinfo") as mounts:
            mount_lines = mounts.read().splitlines()
    except OSError:
        return None
    if version.number == 2:
        paths = [path for hierarchy, controllers, path in membership if hierarchy == "0" and controllers == ""]
    else:
        paths = [path for _, controllers, path in membership if "memory" in controllers.split(",")]
    for line in mount_lines:
        fields, _, filesystem = line.partition(" - ")
        root, mount_point = fields.split()[3:5]
        fstype, _, options = (filesystem.split() + ["", "", ""])[:3]
        matches = fstype == "cgroup2" if version.number == 2 else fstype == "cgroup" and "memory" in options.split(",")
        for path in paths if matches else []:
            if path == root or path.startswith(root.rstrip("/") + "/"):
                return os.path.join(mount_point, os.path.relpath(path, root))
    return None


def _memory_controller_problem(directory: str, version: _Version) -> str | None:
    if not os.access(directory, os.W_OK):
        return f"{directory} is not writable"
    if version.number == 1:
        return None
    try:
        with open(os.path.join(directory, "cgroup.controllers")) as available:
            if "memory" not in available.read().split():
                return f"cgroup v2 at {directory} has no memory controller"
        subtree_control = os.path.join(directory, "cgroup.subtree_control")
        with open(subtree_control) as enabled:
            already = "memory" in enabled.read().split()
        if not already:
            with open(subtree_control, "w") as enable:
                enable.write("+memory")
    except OSError as error:
        return f"cannot enable the v2 memory controller under {directory}: {error.strerror}"
    return None
