"""Run untrusted, model-written Python and decide pass/fail with tests it cannot reach.

Why: code rewards execute whatever the policy writes, and RL optimises against every hole in the
harness: exiting early with status 0, printing "passed", objects that equal everything, patching
the builtins or the test function, tracing hooks, reading the harness's frames. A careless harness
also lets a program loop forever, fork-bomb, fill memory or the disk, or reach the network.

Candidate and checker (``sandbox_inside`` has the code that runs inside the sandbox): the program
is compiled and run on its own, in its own process (the candidate), so nothing in it can swallow
or rewrite the tests. The tests run in a second, fresh interpreter that never executes candidate
code (the checker, under a uid of its own), and call the program's functions through proxies: the
arguments go over a pipe, and only a plain value comes back (None, bool, int, float, complex, str,
bytes, and lists, tuples, sets, frozensets and dicts of them), which the checker rebuilds and
compares with its own untouched builtins. Only the checker holds the pipe the verdict is written
on. A program that exits early, raises, returns an always-equal object, defines ``abs`` or
installs gc/trace hooks affects only its own process: the tests fail or are unaffected.
The tests may call any function the program defined (not through a builtin's name); with
``entry_point`` they define ``check(candidate)`` and the checker calls it on that function.
Arguments are copied, so tests cannot observe a function mutating its arguments in place.
Without ``tests`` the verdict is only "the program ran to the end", which the program itself
could claim; rewards always pass tests.

Isolation ("namespaces", the only level that runs untrusted code; we must be root and util-linux
``unshare``/``setpriv`` must work; probed once):
  - new network namespace: only a loopback device that is down, so every connect fails;
  - new PID namespace whose init is the supervisor (root, trusted): when it exits or is killed,
    the kernel kills every process left in the namespace, daemons included. ``setpriv
    --pdeathsig`` and ``unshare --kill-child`` tie that namespace to the calling thread;
  - new mount and IPC namespaces and a private root filesystem: a read-only tmpfs holding only
    /usr/bin, /usr/lib*, /lib*, /etc/ld.so.cache, the interpreter's own directories (stdlib,
    site-packages, its library directory), a few devices, /proc showing each uid only its own
    processes, a size-capped private /tmp (the working directory) and a 1 MB /dev/shm. Nothing
    else of the host, /sys included, is there;
  - the candidate and the checker run as two dedicated unprivileged uids (65000 + slot and
    65256 + slot, no groups, no capabilities, no_new_privs). Each concurrent run holds its own
    slot (an flock'ed file, so separate processes of ours never share one), which makes
    RLIMIT_NPROC a per-run cap and lets us sweep up anything left under those uids;
  - a memory cgroup per run (``sandbox_cgroup``; v2, or a v1 memory hierarchy) caps everything
    the run holds together, processes, /tmp and memfds, at memory_mb + tmp_mb + 64 MB (for the
    checker and the supervisor). Without one, only the per-process caps below bound memory, and
    the defaults for processes and file size drop (8 processes, 4 MB files) to shrink the worst
    case, which is then max_processes x (memory_mb + max_open_files x max_file_mb) plus /tmp;
  - a seccomp filter (x86_64, aarch64) refuses the kernel keyring (a uid's keyring outlives the
    run, so it would carry data from one run to a later one under the same uid), ptrace and
    process_vm_*, unshare/setns and clone into new namespaces, bpf, perf_event_open, userfaultfd
    and io_uring. Elsewhere there is no filter (``isolation()`` says so).

Both levels:
  - a wall-clock timeout that SIGKILLs the process group, then a sweep of whatever remains (by
    uid, or by session id in "basic");
  - limits on each of the candidate's and checker's processes: RLIMIT_CPU, RLIMIT_AS (memory),
    RLIMIT_FSIZE (largest file, memfds included), RLIMIT_NPROC, RLIMIT_NOFILE, RLIMIT_CORE=0;
  - a minimal environment (PATH, LANG, HOME, TMPDIR): nothing is inherited, so no secrets;
  - stdout/stderr are read continuously and only the first ``max_output`` bytes kept.

"basic" (only when asked for explicitly, with a warning; for debugging trusted code): candidate
and checker are still separate processes with the syscall filter (the checker is not dumpable, so
the candidate cannot trace or read it), but they run as the caller's user with the host's network
and files; a fresh host temp directory is the working directory and is removed afterwards; a
daemon that calls setsid escapes the sweep (RLIMIT_CPU still ends a busy one); as root there is
no process cap. ``level="auto"`` (the default) refuses to run when namespaces are unavailable.

Where it lives: this module chooses the level and the limits and holds the public API; a run is
set up, started, watched and cleaned up by ``sandbox_launch`` (with ``sandbox_processes`` for uid
slots and sweeps, ``sandbox_rootfs`` for the private root's contents, ``sandbox_pipes`` for the
output and ``sandbox_cgroup`` for the memory cap); ``sandbox_inside*`` is what runs inside.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import os
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from redraft.errors import ConfigError, DataError
from redraft.rewards.base import RewardFn, require_field
from redraft.rewards.sandbox_cgroup import MemoryCgroups, find_memory_cgroups
from redraft.rewards.sandbox_inside_kernel import SYSCALL_TABLES
from redraft.rewards.sandbox_launch import CGROUP_PREFIX, find_tool, run_job
from redraft.rewards.sandbox_processes import SANDBOX_UIDS
from redraft.rewards.sandbox_result import SandboxError, SandboxResult, Status

__all__ = [
    "CGROUP_PREFIX",
    "SANDBOX_UIDS",
    "Isolation",
    "SandboxError",
    "SandboxResult",
    "Status",
    "aligned_with_programs",
    "code_reward",
    "extract_code",
    "isolation",
    "run_many",
    "run_python",
]

log = logging.getLogger(__name__)

_HARNESS_MB = 64  # the checker's and the supervisor's share of a run's memory cgroup


@dataclass(frozen=True)
class Isolation:
    level: Literal["namespaces", "basic"]
    reason: str


# ---------------------------------------------------------------------------------------------
# Isolation level and memory cgroups: probed once per process.

_isolation_lock = threading.Lock()
_isolation: Isolation | None = None


@functools.cache
def _memory_cgroups() -> MemoryCgroups | str:
    found = find_memory_cgroups()
    if isinstance(found, str):
        log.warning("code sandbox: no memory cgroup per run (%s); lower process and file-size caps instead", found)
    return found


def _run_cgroups(level: Literal["namespaces", "basic"]) -> MemoryCgroups | None:
    """Where a run at ``level`` gets its memory cgroup (only "namespaces" runs get one), if anywhere."""
    found = _memory_cgroups() if level == "namespaces" else None
    return found if isinstance(found, MemoryCgroups) else None


def _probe_namespaces() -> Isolation:
    if os.geteuid() != 0:
        return Isolation("basic", "not running as root, so no uid drop or namespaces")
    missing = [name for name in ("setpriv", "unshare") if find_tool(name) is None]
    if missing:
        return Isolation("basic", f"util-linux tools not found: {', '.join(missing)}")
    probe_limits = _limits(
        timeout=30.0, memory_mb=512, cpu_seconds=None, max_file_mb=16, max_processes=32, max_open_files=64
    )
    try:
        probe = run_job(
            "import socket\nsocket.socket().connect(('127.0.0.1', 9))", tests=None, entry_point=None,
            level="namespaces", timeout=30.0, limits=probe_limits, memory_cap_mb=512 + 64 + _HARNESS_MB,
            cgroups=_run_cgroups("namespaces"),
        )  # fmt: skip
    except (SandboxError, OSError) as error:
        return Isolation("basic", f"namespace probe could not start: {error}")
    if probe.status != "failed" or "Network is unreachable" not in probe.stderr:
        return Isolation(
            "basic", f"namespace probe did not behave as expected ({probe.status}): {probe.stderr.strip()[-300:]}"
        )
    memory = _memory_cgroups()
    memory_note = (
        f"memory cgroup v{memory.version.number} per run"
        if isinstance(memory, MemoryCgroups)
        else f"no memory cgroup ({memory})"
    )
    filter_note = (
        "seccomp filter" if os.uname().machine in SYSCALL_TABLES else f"no syscall filter on {os.uname().machine}"
    )
    return Isolation(
        "namespaces",
        f"network, pid, mount and ipc namespaces; private root; dedicated uids; {memory_note}; {filter_note}",
    )


def isolation() -> Isolation:
    """The isolation this process can give untrusted code (probed on first use, then cached)."""
    global _isolation
    with _isolation_lock:
        if _isolation is None:
            _isolation = _probe_namespaces()
            if _isolation.level == "basic":
                log.warning(
                    "code sandbox cannot isolate untrusted code here (%s); it will refuse to run it", _isolation.reason
                )
        return _isolation


@functools.cache
def _warn_unisolated() -> None:
    log.warning(
        "code sandbox level='basic': running programs WITHOUT isolation (your user, network and files). "
        "Never use it for untrusted or model-written code."
    )


def _chosen_level(level: str) -> Literal["namespaces", "basic"]:
    if level == "basic":
        _warn_unisolated()
        return "basic"
    if level not in ("auto", "namespaces"):
        raise ConfigError(f"level must be 'auto', 'namespaces' or 'basic', got {level!r}")
    available = isolation()
    if available.level != "namespaces":
        raise SandboxError(
            f"cannot isolate untrusted code here: {available.reason}. Run as root with util-linux, or pass "
            "level='basic' to run without isolation (only for code you trust)"
        )
    return "namespaces"


# ---------------------------------------------------------------------------------------------
# The limits on each of a run's processes.


def _limits(
    timeout: float, memory_mb: int, cpu_seconds: float | None, max_file_mb: int, max_processes: int, max_open_files: int
) -> dict[str, tuple[int, int]]:
    cpu = math.ceil(cpu_seconds if cpu_seconds is not None else timeout + 1)
    return {
        # the soft limit sends SIGXCPU (reported as a timeout); the hard one SIGKILLs a program that ignores it
        "RLIMIT_CPU": (cpu, cpu + 1),
        "RLIMIT_AS": (memory_mb * 2**20, memory_mb * 2**20),
        "RLIMIT_FSIZE": (max_file_mb * 2**20, max_file_mb * 2**20),
        "RLIMIT_NPROC": (max_processes, max_processes),
        "RLIMIT_NOFILE": (max_open_files, max_open_files),
        "RLIMIT_CORE": (0, 0),
    }


# ---------------------------------------------------------------------------------------------
# Public API.


def run_python(
    program: str,
    timeout: float = 5.0,
    memory_mb: int = 512,
    *,
    tests: str | None = None,
    entry_point: str | None = None,
    cpu_seconds: float | None = None,
    max_file_mb: int | None = None,
    max_processes: int | None = None,
    max_open_files: int = 64,
    tmp_mb: int = 64,
    max_output: int = 64_000,
    python: str | None = None,
    level: Literal["auto", "namespaces", "basic"] = "auto",
) -> SandboxResult:
    """Run ``program`` in the sandbox; it passes when it runs to the end and ``tests`` pass.

    tests: test code, run in the checker (see the module docstring): it may call the functions
        the program defines; they receive and return plain data only.
    entry_point: HumanEval style. ``tests`` define ``check(candidate)``, which the checker calls
        on the program's function of that name.
    timeout: wall-clock seconds, start-up included. cpu_seconds defaults to timeout + 1.
    memory_mb: address-space cap of each process; with a memory cgroup the whole run (all its
        processes, its /tmp and memfds) is capped at memory_mb + tmp_mb + 64 MB.
    max_file_mb: largest file (or memfd) it may write; max_processes: processes and threads of
        the program at once. Defaults 16 MB and 32, or 4 MB and 8 without a memory cgroup.
    tmp_mb: size of its private /tmp. max_output: bytes kept of stdout and of stderr.
    python: interpreter to run (default: ours; its installation is mounted in the sandbox).
    level: "auto" and "namespaces" isolate the program and raise SandboxError when that is
        impossible here; "basic" runs it without isolation (logged loudly; never for untrusted code).
    """
    if timeout <= 0 or memory_mb <= 0 or max_output < 0:
        raise ConfigError(
            f"run_python needs timeout > 0 and memory_mb > 0, got timeout={timeout}, memory_mb={memory_mb}"
        )
    if entry_point is not None and tests is None:
        raise ConfigError(f"entry_point={entry_point!r} needs tests that define check(candidate)")
    chosen = _chosen_level(level)
    cgroups = _run_cgroups(chosen)
    memory_capped = cgroups is not None
    limits = _limits(
        timeout, memory_mb, cpu_seconds,
        max_file_mb if max_file_mb is not None else (16 if memory_capped else 4),
        max_processes if max_processes is not None else (32 if memory_capped else 8),
        max_open_files,
    )  # fmt: skip
    return run_job(
        program, tests=tests, entry_point=entry_point, level=chosen, timeout=timeout, limits=limits,
        memory_cap_mb=memory_mb + tmp_mb + _HARNESS_MB, cgroups=cgroups, tmp_mb=tmp_mb, max_output=max_output,
        python=python,
    )  # fmt: skip


def run_many(
    programs: Sequence[str],
    workers: int | None = None,
    *,
    tests: Sequence[str | None] | None = None,
    entry_points: Sequence[str | None] | None = None,
    **limits: Any,
) -> list[SandboxResult]:
    """``run_python`` over many programs (``tests`` and ``entry_points`` aligned with them),
    ``workers`` at a time (default: one per CPU core).

    Threads suffice: each one only waits on its own child process.
    """
    tests = aligned_with_programs("tests", tests, len(programs))
    entry_points = aligned_with_programs("entry points", entry_points, len(programs))
    if not programs:
        return []
    if limits.get("level", "auto") != "basic":
        isolation()  # probe once up front rather than in a race between the workers
    workers = max(1, min(workers or os.cpu_count() or 1, len(programs)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox") as pool:
        jobs = zip(programs, tests, entry_points)
        return list(pool.map(lambda job: run_python(job[0], tests=job[1], entry_point=job[2], **limits), jobs))


def aligned_with_programs(what: str, values: Sequence[str | None] | None, count: int) -> Sequence[str | None]:
    """``values`` (one per program), or Nones when not given."""
    if values is None:
        return [None] * count
    if len(values) != count:
        raise ConfigError(f"run_many got {len(values)} {what} for {count} programs")
    return values


_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\r?\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)


def extract_code(completion: str) -> str:
    """The code in a completion: the first ```python (or bare ```) fenced block, else the whole
    text. An unclosed fence (a truncated completion) counts up to the end."""
    found = _FENCE.search(completion)
    return found.group(1) if found else completion


def code_reward(
    *,
    prepend_prompt: bool = False,
    workers: int | None = None,
    runner: Callable[..., list[SandboxResult]] | None = None,
    **limits: Any,
) -> RewardFn:
    """A reward that runs each completion against its tests in the sandbox: 1.0 passed, else 0.0.

    Fields: ``tests`` (test code; a list of assert lines is joined), optional ``entry_point``
    (HumanEval: the tests define ``check(candidate)``, which the checker calls on that function),
    optional ``prepend_prompt`` (per example; overrides the flag of the same name).
    The program is the completion's code (fences stripped); with ``prepend_prompt`` it is
    prompt + completion verbatim, for completions that continue a HumanEval-style prompt
    (signature and docstring). The tests run apart from it (see ``run_python``); with
    ``prepend_prompt`` and ``entry_point`` the prompt runs in front of the tests too, so helpers
    it defines (HumanEval/32's ``poly``, /38's ``encode_cyclic``) are the dataset's, not ones
    the completion redefined. ``limits`` go to ``run_python``.
    ``runner`` replaces :func:`run_many` (same signature), e.g. ``RaySandboxPool(...).run_many``.
    """
    try:
        inspect.signature(run_python).bind("", **limits)
    except TypeError as error:
        raise ConfigError(f"code_reward: {error} (options are those of run_python)") from error

    def code_passes(prompts: list[str], completions: list[str], **fields: Any) -> list[float]:
        count = len(completions)
        tests = require_field(fields, "tests", count)
        entry_points = (
            require_field(fields, "entry_point", count) if fields.get("entry_point") is not None else [None] * count
        )
        prepend = (
            require_field(fields, "prepend_prompt", count)
            if fields.get("prepend_prompt") is not None
            else [prepend_prompt] * count
        )
        if any(prepend) and len(prompts) != count:
            raise DataError(f"code_reward got {len(prompts)} prompts for {count} completions")
        programs, test_code = [], []
        for i, completion in enumerate(completions):
            programs.append(prompts[i] + completion if prepend[i] else extract_code(completion))
            test = "\n".join(tests[i]) if isinstance(tests[i], (list, tuple)) else str(tests[i])
            test_code.append(f"{prompts[i]}\n\n{test}" if prepend[i] and entry_points[i] else test)
        results = (runner or run_many)(
            programs, workers, tests=test_code, entry_points=[e or None for e in entry_points], **limits
        )
        return [1.0 if result.passed else 0.0 for result in results]

    return code_passes
