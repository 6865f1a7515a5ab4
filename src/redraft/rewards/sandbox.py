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
"""

from __future__ import annotations

import fcntl
import functools
import inspect
import json
import logging
import math
import os
import pwd
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from redraft.errors import ConfigError, DataError, RedraftError
from redraft.rewards.base import RewardFn, require_field
from redraft.rewards.sandbox_cgroup import MemoryCgroups, RunCgroup, find_memory_cgroups
from redraft.rewards.sandbox_inside import COMPILE_ERROR_EXIT, SETUP_ERROR_EXIT, SYSCALL_TABLES

log = logging.getLogger(__name__)

Status = Literal["passed", "failed", "timeout", "error"]

# Debian policy leaves 65000-65533 unallocated; nobody (65534) may be used by services, so it is
# left alone, and any uid here that has a passwd entry is skipped. A slot's candidate runs as
# SANDBOX_UID_BASE + slot, its checker as that + SANDBOX_UID_SLOTS.
SANDBOX_UID_BASE = 65_000
SANDBOX_UID_SLOTS = 256
SANDBOX_UIDS = range(SANDBOX_UID_BASE, SANDBOX_UID_BASE + 2 * SANDBOX_UID_SLOTS)
CGROUP_PREFIX = "redraft-sandbox-"
_HARNESS_MB = 64  # the checker's and the supervisor's share of a run's memory cgroup
_SLOT_LOCK_DIR = "/run/redraft-sandbox"
_MAX_MESSAGE = 16 * 2**20  # one argument list or result between checker and candidate
_SWEEP_SECONDS = 2.0
_DRAIN_SECONDS = 0.5
_SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_INSIDE_SOURCE = Path(__file__).with_name("sandbox_inside.py").read_text()
_SUPERVISOR_FLAGS = ("-I", "-S")  # isolated, and no site-packages: it needs only the stdlib, and starts faster

# The private root: system directories the interpreter and its libraries need (a top-level one
# that is a symlink, as with a merged /usr, is recreated as that symlink), and a few devices.
_SYSTEM_PATHS = ("/usr/bin", "/usr/lib", "/usr/lib32", "/usr/lib64", "/usr/libx32",
                 "/bin", "/lib", "/lib32", "/lib64", "/libx32", "/etc/ld.so.cache")  # fmt: skip
_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
_DEVICE_LINKS = {"/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0", "/dev/stdout": "/proc/self/fd/1",
                 "/dev/stderr": "/proc/self/fd/2"}  # fmt: skip
# Asked of the interpreter itself: its own directories, not what .pth files add (an editable
# install would otherwise bring a source checkout into the sandbox).
_INTERPRETER_DIRS_QUERY = """
import json, os, site, sys, sysconfig
paths = sysconfig.get_paths()
dirs = [paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")] + site.getsitepackages()
dirs += [sysconfig.get_config_var("LIBDIR") or "/", os.path.dirname(sys.executable), \
os.path.dirname(os.path.realpath(sys.executable))]
if sys.prefix != sys.base_prefix:
    dirs.append(sys.prefix)  # a virtual environment: its pyvenv.cfg and bin/
print(json.dumps(dirs))
"""


class SandboxError(RedraftError):
    """The sandbox cannot run at all (as opposed to a program that fails inside it)."""


@dataclass(frozen=True)
class SandboxResult:
    """What happened to one program.

    status: "passed" (the program ran to the end and the tests passed), "failed" (an exception,
    a failed test, an early exit, a value that is not plain data, the run's memory cap), "timeout"
    (wall-clock or CPU limit), "error" (the program or the tests did not compile, the program was
    killed by another signal, or the sandbox set-up failed). returncode is the program's exit
    status (negative for a signal; None when it was still running when the run ended).
    """

    status: Status
    stdout: str
    stderr: str
    duration: float
    returncode: int | None

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass(frozen=True)
class Isolation:
    level: Literal["namespaces", "basic"]
    reason: str


# ---------------------------------------------------------------------------------------------
# Isolation level and memory cgroups: probed once per process.

_isolation_lock = threading.Lock()
_isolation: Isolation | None = None


def _tool(name: str) -> str | None:
    return shutil.which(name, path=_SAFE_PATH)


@functools.cache
def _memory_cgroups() -> MemoryCgroups | str:
    found = find_memory_cgroups()
    if isinstance(found, str):
        log.warning("code sandbox: no memory cgroup per run (%s); lower process and file-size caps instead", found)
    return found


def _probe_namespaces() -> Isolation:
    if os.geteuid() != 0:
        return Isolation("basic", "not running as root, so no uid drop or namespaces")
    missing = [name for name in ("setpriv", "unshare") if _tool(name) is None]
    if missing:
        return Isolation("basic", f"util-linux tools not found: {', '.join(missing)}")
    probe_limits = _limits(
        timeout=30.0, memory_mb=512, cpu_seconds=None, max_file_mb=16, max_processes=32, max_open_files=64
    )
    try:
        probe = _run(
            "import socket\nsocket.socket().connect(('127.0.0.1', 9))", tests=None, entry_point=None,
            level="namespaces", timeout=30.0, limits=probe_limits, memory_cap_mb=512 + 64 + _HARNESS_MB,
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
# The private root filesystem.


@functools.cache
def _interpreter_dirs(python: str) -> tuple[str, ...]:
    try:
        answer = subprocess.run(
            [python, "-I", "-c", _INTERPRETER_DIRS_QUERY], capture_output=True, text=True, timeout=60, check=True
        )
        return tuple(json.loads(answer.stdout))
    except (OSError, subprocess.SubprocessError, ValueError) as error:
        raise SandboxError(f"cannot ask the interpreter {python} where it lives: {error}") from error


@functools.cache
def _root_layout(python: str) -> dict[str, Any]:
    """What the supervisor mounts in the private root for this interpreter."""
    binds, symlinks = set(), dict(_DEVICE_LINKS)
    for path in (*_SYSTEM_PATHS, *_interpreter_dirs(python)):
        path = os.path.abspath(path)
        if os.path.dirname(path) == "/" and os.path.islink(path):
            symlinks[path] = os.readlink(path)
        elif os.path.exists(path):
            binds.add(path)
    if "/" in binds:
        raise SandboxError(f"the interpreter {python} lives directly in /, which cannot be mounted alone")
    outermost = sorted(path for path in binds if not any(path.startswith(other + "/") for other in binds))
    return {
        "binds": outermost,
        "symlinks": symlinks,
        "devices": [device for device in _DEVICES if os.path.exists(device)],
    }


# ---------------------------------------------------------------------------------------------
# Per-run uid slots and sweeping up leftovers.


@contextmanager
def _uid_slot() -> Iterator[int]:
    """Hold a slot no other run (in this or another of our processes) is using; yields the
    candidate's uid (the checker's is that + SANDBOX_UID_SLOTS)."""
    os.makedirs(_SLOT_LOCK_DIR, mode=0o700, exist_ok=True)
    while True:
        for uid in range(SANDBOX_UID_BASE, SANDBOX_UID_BASE + SANDBOX_UID_SLOTS):
            if _has_account(uid) or _has_account(uid + SANDBOX_UID_SLOTS):
                continue  # a real account: never run code as it
            fd = os.open(os.path.join(_SLOT_LOCK_DIR, f"uid-{uid}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                yield uid
            finally:
                os.close(fd)
            return
        time.sleep(0.05)


def _has_account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        return False


def _live_processes(uids: Sequence[int] = (), in_session: int | None = None) -> list[int]:
    """Pids (not zombies) whose real uid is in ``uids``, or that are in session ``in_session``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if uids:
                with open(f"/proc/{entry}/status") as status_file:
                    status = status_file.read()
                uid_line = re.search(r"^Uid:\s+(\d+)", status, re.MULTILINE)
                state = re.search(r"^State:\s+(\S)", status, re.MULTILINE)
                if uid_line and int(uid_line.group(1)) in uids and not (state and state.group(1) in "ZX"):
                    found.append(int(entry))
            else:
                with open(f"/proc/{entry}/stat") as stat_file:
                    fields = stat_file.read().rsplit(")", 1)[1].split()
                # after the command name: state, ppid, pgrp, session
                if int(fields[3]) == in_session and fields[0] not in "ZX":
                    found.append(int(entry))
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
    return found


def _sweep(**which: Any) -> None:
    """SIGKILL every live process matching ``which`` until none is left (or give up loudly)."""
    deadline = time.monotonic() + _SWEEP_SECONDS
    while True:
        pids = _live_processes(**which)
        if not pids:
            return
        if time.monotonic() > deadline:
            log.warning("sandbox: %d processes (%s) survived SIGKILL: %s", len(pids), which, pids[:10])
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)


# ---------------------------------------------------------------------------------------------
# Running one program.


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


class _Capped:
    """Keeps the first ``cap`` bytes of a stream and counts the rest."""

    def __init__(self, cap: int):
        self.cap, self.kept, self.dropped = cap, bytearray(), 0

    def add(self, data: bytes) -> None:
        room = max(0, self.cap - len(self.kept))
        self.kept += data[:room]
        self.dropped += len(data) - min(room, len(data))

    def text(self) -> str:
        text = self.kept.decode("utf-8", errors="replace")
        return text + (f"\n[... {self.dropped} more bytes not kept]" if self.dropped else "")


class _PipeReader:
    """Reads several pipes at once so a chatty program never blocks on a full pipe."""

    def __init__(self, caps: dict[int, int]):
        self.buffers = {fd: _Capped(cap) for fd, cap in caps.items()}
        self.selector = selectors.DefaultSelector()
        for fd in self.buffers:
            os.set_blocking(fd, False)
            self.selector.register(fd, selectors.EVENT_READ)

    def _pump(self, wait: float) -> None:
        for key, _ in self.selector.select(wait):
            if key.fd not in self.buffers:
                continue  # the exit notification; the caller checks it
            try:
                data = os.read(key.fd, 1 << 16)
            except BlockingIOError:
                continue
            if data:
                self.buffers[key.fd].add(data)
            else:
                self.selector.unregister(key.fd)

    def wait_for_exit(self, pid: int, deadline: float) -> bool:
        """Read until process ``pid`` exits (left unreaped) or ``deadline``; True if it timed out."""
        try:
            exit_fd: int | None = os.pidfd_open(pid)
            self.selector.register(exit_fd, selectors.EVENT_READ)
        except (AttributeError, OSError):
            exit_fd = None  # old kernel: poll for the exit every few milliseconds
        try:
            # WNOWAIT: the pid stays reserved, so killing its process group afterwards cannot hit a stranger
            while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return True
                self._pump(remaining if exit_fd is not None else min(remaining, 0.005))
            return False
        finally:
            if exit_fd is not None:
                self.selector.unregister(exit_fd)
                os.close(exit_fd)

    def drain(self, seconds: float) -> None:
        """Read what is left; give up on pipes still held open (by an escaped process) after ``seconds``."""
        deadline = time.monotonic() + seconds
        while self.selector.get_map() and (remaining := deadline - time.monotonic()) > 0:
            self._pump(remaining)

    def close(self) -> None:
        self.selector.close()


def _namespace_argv(python: str, job_fd: int) -> list[str]:
    return [
        _tool("setpriv") or "setpriv", "--pdeathsig", "KILL", "--",
        _tool("unshare") or "unshare", "--net", "--mount", "--pid", "--ipc", "--fork", "--kill-child", "--",
        python, *_SUPERVISOR_FLAGS, "-c", _INSIDE_SOURCE, "supervisor", str(job_fd),
    ]  # fmt: skip


def _run(
    program: str,
    *,
    tests: str | None,
    entry_point: str | None,
    level: Literal["namespaces", "basic"],
    timeout: float,
    limits: dict[str, tuple[int, int]],
    memory_cap_mb: int,
    tmp_mb: int = 64,
    max_output: int = 64_000,
    python: str | None = None,
) -> SandboxResult:
    python = python or sys.executable
    job: dict[str, Any] = {
        "python": python, "source": _INSIDE_SOURCE, "program": program, "tests": tests or "",
        "entry_point": entry_point, "limits": limits, "max_message": _MAX_MESSAGE,
        "filter_syscalls": os.uname().machine in SYSCALL_TABLES,
    }  # fmt: skip
    # An anonymous in-memory file: the job never touches a path anything could open.
    job_fd = os.memfd_create("redraft-sandbox-job")
    report_read, report_write = os.pipe()
    cgroup: RunCgroup | None = None
    try:
        with ExitStack() as stack:
            if level == "namespaces":
                uid = stack.enter_context(_uid_slot())
                uids = (uid, uid + SANDBOX_UID_SLOTS)
                _sweep(uids=uids)  # a leftover from a crashed caller would eat this run's RLIMIT_NPROC
                cgroups = _memory_cgroups()
                if isinstance(cgroups, MemoryCgroups):
                    cgroup = stack.enter_context(cgroups.run(f"{CGROUP_PREFIX}{uid}", memory_cap_mb * 2**20))
                job["identities"] = {
                    "candidate": {"uid": uids[0], "workdir": "/tmp"},
                    "checker": {"uid": uids[1], "workdir": "/"},
                }
                job["root"] = {
                    **_root_layout(python),
                    "tmp_mb": tmp_mb,
                    "tmp_owner": uid,
                    "cgroup": cgroup and cgroup.path,
                }
                argv, cwd, home = _namespace_argv(python, job_fd), "/", "/tmp"
            else:
                cwd = home = stack.enter_context(
                    tempfile.TemporaryDirectory(prefix="redraft-sandbox-", ignore_cleanup_errors=True)
                )
                job["identities"] = {role: {"uid": None, "workdir": cwd} for role in ("candidate", "checker")}
                job["root"] = None
                argv = [python, *_SUPERVISOR_FLAGS, "-c", _INSIDE_SOURCE, "supervisor", str(job_fd)]
            job["report_fd"] = report_write
            os.write(job_fd, json.dumps(job).encode())
            os.lseek(job_fd, 0, os.SEEK_SET)
            env = {"PATH": _SAFE_PATH, "LANG": "C.UTF-8", "HOME": home, "TMPDIR": home}
            started = time.monotonic()
            try:
                proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    pass_fds=(job_fd, report_write), cwd=cwd, env=env, start_new_session=True,
                )  # fmt: skip
            except OSError as error:
                raise SandboxError(f"cannot start the sandbox ({argv[0]}): {error}") from error
            os.close(report_write)
            report_write = -1
            stdout_fd, stderr_fd = proc.stdout.fileno(), proc.stderr.fileno()
            reader = _PipeReader({stdout_fd: max_output, stderr_fd: max_output, report_read: 4096})
            timed_out = True
            try:
                timed_out = reader.wait_for_exit(proc.pid, started + timeout)
            finally:
                _kill_group(proc.pid)  # on timeout: everything; otherwise whatever stayed in the group
                proc.wait()
                if level == "namespaces":
                    _sweep(uids=uids)
                else:
                    _sweep(in_session=proc.pid)
                reader.drain(_DRAIN_SECONDS)
                reader.close()
                proc.stdout.close()
                proc.stderr.close()
            duration = time.monotonic() - started
            out_of_memory = cgroup is not None and cgroup.oom_kills() > 0
    finally:
        for fd in (job_fd, report_read, report_write):
            if fd >= 0:
                os.close(fd)

    report = _parse_report(reader.buffers[report_read])
    status = _status(timed_out, report, proc.returncode, out_of_memory)
    stderr = reader.buffers[stderr_fd].text()
    if out_of_memory:
        stderr += f"\n[the run went over its memory cap of {memory_cap_mb} MB and was killed]"
    returncode = report["candidate"] if report else proc.returncode
    return SandboxResult(status, reader.buffers[stdout_fd].text(), stderr, duration, returncode)


def _parse_report(buffer: _Capped) -> dict[str, Any] | None:
    """The supervisor's account of how the candidate and checker ended (None if it wrote none)."""
    try:
        report = json.loads(bytes(buffer.kept))
    except ValueError:
        return None
    return report if isinstance(report, dict) and set(report) == {"passed", "candidate", "checker"} else None


def _status(timed_out: bool, report: dict[str, Any] | None, returncode: int, out_of_memory: bool) -> Status:
    if timed_out:
        return "timeout"
    if report is None:  # the supervisor did not finish: set-up failed, or the memory cap killed it
        return "failed" if out_of_memory else "error"
    ends = (report["candidate"], report["checker"])
    if -signal.SIGXCPU in ends:
        return "timeout"
    if out_of_memory:  # even if the tests passed: what the run needed was more than it was given
        return "failed"
    if report["passed"]:
        return "passed"
    if any(end in (COMPILE_ERROR_EXIT, SETUP_ERROR_EXIT) or (end is not None and end < 0) for end in ends):
        return "error"
    return "failed"


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


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
    memory_capped = chosen == "namespaces" and isinstance(_memory_cgroups(), MemoryCgroups)
    limits = _limits(
        timeout, memory_mb, cpu_seconds,
        max_file_mb if max_file_mb is not None else (16 if memory_capped else 4),
        max_processes if max_processes is not None else (32 if memory_capped else 8),
        max_open_files,
    )  # fmt: skip
    return _run(
        program, tests=tests, entry_point=entry_point, level=chosen, timeout=timeout, limits=limits,
        memory_cap_mb=memory_mb + tmp_mb + _HARNESS_MB, tmp_mb=tmp_mb, max_output=max_output, python=python,
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
