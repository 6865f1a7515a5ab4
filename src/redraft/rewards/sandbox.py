"""Run untrusted, model-written Python and decide pass/fail from a signal it cannot easily forge.

Why: code rewards execute whatever the policy writes. RL finds reward hacks quickly (exiting
early with status 0, printing "passed", objects that equal everything), and a careless harness
lets a program loop forever, fork-bomb, fill the disk or reach the network.

Isolation layers (``isolation()`` reports which level is in effect):

"namespaces" (we are root and util-linux ``unshare``/``setpriv`` work; probed once):
  - new network namespace: only a loopback device that is down, so every connect fails;
  - new PID namespace whose init is a root ``sh`` the program cannot signal: when it exits or
    is killed, the kernel kills every process left in the namespace, including daemons that
    double-forked and called setsid. ``setpriv --pdeathsig`` and ``unshare --kill-child`` tie
    that namespace to the calling thread, so it dies with the caller too;
  - new mount and IPC namespaces: a fresh, size-capped tmpfs at /tmp is the working directory
    and is gone when the namespace is; /var/tmp, /dev/shm and /run/lock (the world-writable
    places) are private 1 MB tmpfs mounts; /proc shows only the sandbox's processes;
  - the program runs as a dedicated unprivileged uid/gid (65000 + slot, no supplementary
    groups, no capabilities, no_new_privs so setuid binaries do not help). Each concurrent run
    holds its own uid (an flock'ed slot file, so separate processes of ours never share one),
    which makes RLIMIT_NPROC a per-run cap and lets us sweep up anything left under that uid.

Both levels:
  - a separate process in a new session/process group, SIGKILLed as a group on the wall-clock
    timeout, then a sweep that kills whatever remains (by uid, or by session id in "basic");
  - resource limits set by the harness before the program is compiled: RLIMIT_CPU, RLIMIT_AS
    (memory), RLIMIT_FSIZE (largest file), RLIMIT_NPROC, RLIMIT_NOFILE, RLIMIT_CORE=0;
  - a minimal environment (PATH, LANG, HOME, TMPDIR): nothing is inherited, so no secrets;
  - stdout/stderr are read continuously and only the first ``max_output`` bytes kept.

"basic" (not root, or the probe failed; the reason is logged once): no network, uid or
filesystem isolation; a fresh host temp directory is the working directory and is removed
afterwards; a daemon that calls setsid escapes the sweep (RLIMIT_CPU still ends a busy one).

Pass signal: the harness (trusted bootstrap code in the child) reads a per-run random nonce
from a memfd and closes it before the program is compiled; only after the program *and* the
tests returned without raising (and, with ``entry_point``, after it called ``check`` itself)
does it write the nonce to a private pipe and ``os._exit(0)``. A pass needs exactly that nonce
on that pipe and exit status 0. So ``sys.exit(0)``/``os._exit(0)`` before the tests, a raised
SystemExit, printed "passed" lines, atexit tricks or writing junk to the pipe all fail.

With ``entry_point`` (HumanEval style), the candidate handed to ``check`` is wrapped so every
value it returns must be built from exact built-in types (int, float, str, list, dict, ...):
an object whose ``__eq__`` always returns True is a failure. Turn that off with
``plain_results=False`` for tasks whose answers are other types.

Not contained (in-process limits of any harness that runs tests in the program's interpreter):
a program that deliberately introspects the harness (frames, memory) to find the nonce, or that
patches what the tests rely on (builtins, sys.settrace, helper functions defined before it);
plain ``assert f(x) == y`` tests without ``entry_point`` still accept always-equal objects.
The program can read world-readable host files (there is no private root filesystem).
"""

from __future__ import annotations

import fcntl
import inspect
import json
import logging
import math
import os
import pwd
import re
import secrets
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Literal

from redraft.errors import ConfigError, DataError, RedraftError
from redraft.rewards.base import RewardFn, require_field

log = logging.getLogger(__name__)

Status = Literal["passed", "failed", "timeout", "error"]

# Debian policy leaves 65000-65533 unallocated; nobody (65534) may be used by services, so it is
# left alone, and any uid here that has a passwd entry is skipped.
SANDBOX_UID_BASE = 65_000
SANDBOX_UID_SLOTS = 256
_SLOT_LOCK_DIR = "/run/redraft-sandbox"
_COMPILE_ERROR_EXIT = 3  # bootstrap: the program did not compile
_SETUP_ERROR_EXIT = 97  # namespace setup (mount/cd) failed
_SWEEP_SECONDS = 2.0
_DRAIN_SECONDS = 0.5
_SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class SandboxError(RedraftError):
    """The sandbox cannot run at all (as opposed to a program that fails inside it)."""


@dataclass(frozen=True)
class SandboxResult:
    """What happened to one program.

    status: "passed" (program and tests ran to the end), "failed" (an exception, a failed test
    or an early exit), "timeout" (wall-clock or CPU limit), "error" (did not compile, was killed
    by another signal, or the sandbox set-up failed; exit statuses 3 and 97 are reserved for
    those two). returncode is negative for a signal.
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


# Runs in the child before any untrusted code; see the module docstring for the pass signal.
# Everything the verdict path calls is bound to locals first so the program cannot patch it.
_BOOTSTRAP = r"""
def _harness():
    import builtins, json, linecache, os, resource, sys, traceback
    write, exit_now, kind_of = os.write, os._exit, type
    job_fd, result_fd = int(sys.argv[1]), int(sys.argv[2])
    with os.fdopen(job_fd, "rb") as job_file:
        job = json.loads(job_file.read())
    for name, (soft, hard) in job["limits"].items():
        resource.setrlimit(getattr(resource, name), (soft, hard))
    nonce, source, entry_point, plain_results = job["nonce"].encode(), job["program"], job["entry_point"], job["plain_results"]
    del job
    sys.argv = ["<program>"]
    linecache.cache["<program>"] = (len(source), None, source.splitlines(True), "<program>")
    try:
        code = compile(source, "<program>", "exec")
    except Exception:  # SyntaxError, null bytes, nesting too deep for the parser
        traceback.print_exc()
        exit_now(%(compile_error)d)

    plain_types = (int, float, complex, bool, str, bytes, type(None), list, tuple, dict, set, frozenset)
    containers = (list, tuple, set, frozenset)
    broken = []

    def is_plain(value):
        value_type = kind_of(value)
        for plain in plain_types:
            if value_type is plain:
                break
        else:
            return False
        for container in containers:
            if value_type is container:
                for item in value:
                    if not is_plain(item):
                        return False
        if value_type is dict:
            for key, item in value.items():
                if not is_plain(key) or not is_plain(item):
                    return False
        return True

    def guard(candidate):
        def guarded(*args, **kwargs):
            result = candidate(*args, **kwargs)
            try:
                plain = is_plain(result)
            except BaseException:  # e.g. a list that contains itself
                plain = False
            if not plain:
                broken.append(kind_of(result))
                raise TypeError("candidate returned a value that is not made of built-in types")
            return result
        return guarded

    passed = False
    try:
        namespace = {"__name__": "__main__", "__builtins__": builtins}
        exec(code, namespace)
        if entry_point is not None:
            candidate = namespace[entry_point]
            namespace["check"](guard(candidate) if plain_results else candidate)
        passed = not broken
    except BaseException:
        traceback.print_exc()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    if passed:
        write(result_fd, nonce)
        exit_now(0)
    exit_now(1)

_harness()
""" % {"compile_error": _COMPILE_ERROR_EXIT}

# pid 1 of the new namespaces: private tmpfs mounts, then run the program as a child (not exec:
# pid 1 ignores signals it has no handler for, and its exit takes the namespace down).
_NAMESPACE_SETUP = r"""
uid=$1; size=$2; shift 2
mount -t tmpfs -o "size=${size}m,mode=0700,uid=$uid,gid=$uid,nosuid,nodev" sandbox /tmp || exit %(setup_error)d
for dir in /var/tmp /dev/shm /run/lock; do
    [ -d "$dir" ] || continue
    mount -t tmpfs -o size=1m,mode=1777,nosuid,nodev sandbox "$dir" || exit %(setup_error)d
done
cd /tmp || exit %(setup_error)d
"$@"
exit $?
""" % {"setup_error": _SETUP_ERROR_EXIT}


# ---------------------------------------------------------------------------------------------
# Isolation level: probed once per process.

_isolation_lock = threading.Lock()
_isolation: Isolation | None = None


def _world_executable(path: str) -> bool:
    """Whether a user with no relation to the owner can execute ``path`` (every directory on the
    way must be searchable by "others")."""
    for candidate in {os.path.abspath(path), os.path.realpath(path)}:
        try:
            if not os.stat(candidate).st_mode & stat.S_IXOTH:
                return False
            directory = os.path.dirname(candidate)
            while True:
                if not os.stat(directory).st_mode & stat.S_IXOTH:
                    return False
                parent = os.path.dirname(directory)
                if parent == directory:
                    break
                directory = parent
        except OSError:
            return False
    return True


def _sandbox_python() -> str | None:
    """An interpreter the unprivileged sandbox uid can run: ours if reachable (it often lives
    under /root, which is 0700), else a system one. The program only needs the standard library."""
    for candidate in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
        if candidate and os.path.exists(candidate) and _world_executable(candidate):
            return candidate
    return None


def _tool(name: str) -> str | None:
    return shutil.which(name, path=_SAFE_PATH)


def _probe_namespaces() -> Isolation:
    if os.geteuid() != 0:
        return Isolation("basic", "not running as root, so no uid drop or namespaces")
    missing = [name for name in ("setpriv", "unshare", "sh", "mount") if _tool(name) is None]
    if missing:
        return Isolation("basic", f"util-linux tools not found: {', '.join(missing)}")
    if _sandbox_python() is None:
        return Isolation("basic", "no Python interpreter that the unprivileged sandbox uid can execute")
    probe_limits = _limits(timeout=30.0, memory_mb=512, cpu_seconds=None, max_file_mb=16, max_processes=32, max_open_files=64)
    try:
        probe = _run("import socket\nsocket.socket().connect(('127.0.0.1', 9))", level="namespaces", timeout=30.0, limits=probe_limits)
    except (SandboxError, OSError) as error:
        return Isolation("basic", f"namespace probe could not start: {error}")
    if probe.status != "failed" or "Network is unreachable" not in probe.stderr:
        return Isolation("basic", f"namespace probe did not behave as expected ({probe.status}): {probe.stderr.strip()[-300:]}")
    return Isolation("namespaces", "network, pid, mount and ipc namespaces; dedicated unprivileged uid")


def isolation() -> Isolation:
    """The isolation level this process gets (probed on first use, then cached)."""
    global _isolation
    with _isolation_lock:
        if _isolation is None:
            _isolation = _probe_namespaces()
            if _isolation.level == "basic":
                log.warning("code sandbox runs with basic isolation only: %s", _isolation.reason)
        return _isolation


# ---------------------------------------------------------------------------------------------
# Per-run uid slots and sweeping up leftovers.


@contextmanager
def _uid_slot() -> Iterator[int]:
    """Hold a sandbox uid no other run (in this or another of our processes) is using."""
    os.makedirs(_SLOT_LOCK_DIR, mode=0o700, exist_ok=True)
    while True:
        for uid in range(SANDBOX_UID_BASE, SANDBOX_UID_BASE + SANDBOX_UID_SLOTS):
            try:
                pwd.getpwuid(uid)
                continue  # a real account: never run code as it
            except KeyError:
                pass
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


def _live_processes(owned_by_uid: int | None = None, in_session: int | None = None) -> list[int]:
    """Pids (not zombies) with that real uid, or in that session."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if owned_by_uid is not None:
                with open(f"/proc/{entry}/status") as status_file:
                    status = status_file.read()
                uid_line = re.search(r"^Uid:\s+(\d+)", status, re.MULTILINE)
                state = re.search(r"^State:\s+(\S)", status, re.MULTILINE)
                if uid_line and int(uid_line.group(1)) == owned_by_uid and not (state and state.group(1) in "ZX"):
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


def _sweep(**which: int | None) -> None:
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


def _namespace_argv(uid: int, tmp_mb: int, python: str, fds: tuple[int, int]) -> list[str]:
    return [
        _tool("setpriv") or "setpriv", "--pdeathsig", "KILL", "--",
        _tool("unshare") or "unshare", "--net", "--mount", "--pid", "--ipc", "--fork", "--kill-child", "--mount-proc", "--",
        _tool("sh") or "sh", "-c", _NAMESPACE_SETUP, "sh", str(uid), str(tmp_mb),
        _tool("setpriv") or "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs",
        "--inh-caps=-all", "--bounding-set=-all", "--",
        python, "-I", "-c", _BOOTSTRAP, str(fds[0]), str(fds[1]),
    ]  # fmt: skip


def _run(
    program: str,
    *,
    level: Literal["namespaces", "basic"],
    timeout: float,
    limits: dict[str, tuple[int, int]],
    entry_point: str | None = None,
    plain_results: bool = True,
    tmp_mb: int = 64,
    max_output: int = 64_000,
    python: str | None = None,
) -> SandboxResult:
    python = python or (_sandbox_python() if level == "namespaces" else None) or sys.executable
    nonce = secrets.token_hex(16).encode()
    job = {"nonce": nonce.decode(), "program": program, "entry_point": entry_point, "plain_results": plain_results, "limits": limits}
    # An anonymous in-memory file: the job (with the nonce) never touches a path the program could open.
    job_fd = os.memfd_create("redraft-sandbox-job")
    result_read, result_write = os.pipe()
    try:
        with open(job_fd, "wb", closefd=False) as job_file:
            job_file.write(json.dumps(job).encode())
        os.lseek(job_fd, 0, os.SEEK_SET)
        with ExitStack() as stack:
            if level == "namespaces":
                uid = stack.enter_context(_uid_slot())
                _sweep(owned_by_uid=uid)  # a leftover from a crashed caller would eat this run's RLIMIT_NPROC
                argv = _namespace_argv(uid, tmp_mb, python, (job_fd, result_write))
                cwd, home = "/", "/tmp"
            else:
                cwd = home = stack.enter_context(tempfile.TemporaryDirectory(prefix="redraft-sandbox-", ignore_cleanup_errors=True))
                argv = [python, "-I", "-c", _BOOTSTRAP, str(job_fd), str(result_write)]
            env = {"PATH": _SAFE_PATH, "LANG": "C.UTF-8", "HOME": home, "TMPDIR": home}
            started = time.monotonic()
            try:
                proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    pass_fds=(job_fd, result_write), cwd=cwd, env=env, start_new_session=True,
                )  # fmt: skip
            except OSError as error:
                raise SandboxError(f"cannot start the sandbox ({argv[0]}): {error}") from error
            os.close(result_write)
            result_write = -1
            stdout_fd, stderr_fd = proc.stdout.fileno(), proc.stderr.fileno()
            reader = _PipeReader({stdout_fd: max_output, stderr_fd: max_output, result_read: 256})
            timed_out = True
            try:
                timed_out = reader.wait_for_exit(proc.pid, started + timeout)
            finally:
                _kill_group(proc.pid)  # on timeout: everything; otherwise whatever stayed in the group
                proc.wait()
                if level == "namespaces":
                    _sweep(owned_by_uid=uid)
                else:
                    _sweep(in_session=proc.pid)
                reader.drain(_DRAIN_SECONDS)
                reader.close()
                proc.stdout.close()
                proc.stderr.close()
            duration = time.monotonic() - started
    finally:
        for fd in (job_fd, result_read, result_write):
            if fd >= 0:
                os.close(fd)

    returncode = proc.returncode
    if returncode < 0:
        signal_number = -returncode
    elif level == "namespaces" and returncode > 128:
        signal_number = returncode - 128  # the namespace's sh reports a signal death as 128 + n
        returncode = -signal_number
    else:
        signal_number = 0
    result = reader.buffers[result_read]
    if timed_out or signal_number == signal.SIGXCPU:
        status: Status = "timeout"
    elif returncode == 0 and bytes(result.kept) == nonce and not result.dropped:
        status = "passed"
    elif signal_number or returncode in (_COMPILE_ERROR_EXIT, _SETUP_ERROR_EXIT):
        status = "error"
    else:
        status = "failed"
    return SandboxResult(status, reader.buffers[stdout_fd].text(), reader.buffers[stderr_fd].text(), duration, returncode)


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
    entry_point: str | None = None,
    plain_results: bool = True,
    cpu_seconds: float | None = None,
    max_file_mb: int = 16,
    max_processes: int = 32,
    max_open_files: int = 64,
    tmp_mb: int = 64,
    max_output: int = 64_000,
    python: str | None = None,
    level: Literal["auto", "namespaces", "basic"] = "auto",
) -> SandboxResult:
    """Run ``program`` in the sandbox; it passes when it (and its tests) run to the end.

    entry_point: HumanEval style. The program must define ``check(candidate)`` and the function
        ``entry_point``; the harness calls ``check`` itself, guarding the candidate's results
        (see ``plain_results`` in the module docstring).
    timeout: wall-clock seconds, start-up included. cpu_seconds defaults to timeout + 1.
    memory_mb: address-space cap. max_file_mb: largest file it may write. tmp_mb: size of its
        private /tmp (namespaces level). max_output: bytes kept of stdout and of stderr.
    python: interpreter to run (default: ours if the sandbox uid can reach it, else the system one).
    level: "auto" uses the best available isolation; "namespaces" raises SandboxError when that
        is unavailable; "basic" forces the weak level (for debugging; as root it does not cap
        processes, so never use it for untrusted code).
    """
    if timeout <= 0 or memory_mb <= 0 or max_output < 0:
        raise ConfigError(f"run_python needs timeout > 0 and memory_mb > 0, got timeout={timeout}, memory_mb={memory_mb}")
    if level == "auto":
        chosen = isolation().level
    elif level == "namespaces":
        available = isolation()
        if available.level != "namespaces":
            raise SandboxError(f"namespace isolation is not available: {available.reason}")
        chosen = "namespaces"
    elif level == "basic":
        chosen = "basic"
    else:
        raise ConfigError(f"level must be 'auto', 'namespaces' or 'basic', got {level!r}")
    limits = _limits(timeout, memory_mb, cpu_seconds, max_file_mb, max_processes, max_open_files)
    return _run(
        program, level=chosen, timeout=timeout, limits=limits, entry_point=entry_point, plain_results=plain_results,
        tmp_mb=tmp_mb, max_output=max_output, python=python,
    )  # fmt: skip


def run_many(
    programs: Sequence[str],
    workers: int | None = None,
    *,
    entry_points: Sequence[str | None] | None = None,
    **limits: Any,
) -> list[SandboxResult]:
    """``run_python`` over many programs, ``workers`` at a time (default: one per CPU core).

    Threads suffice: each one only waits on its own child process.
    """
    if entry_points is None:
        entry_points = [None] * len(programs)
    if len(entry_points) != len(programs):
        raise ConfigError(f"run_many got {len(entry_points)} entry points for {len(programs)} programs")
    if not programs:
        return []
    isolation()  # probe once up front rather than in a race between the workers
    workers = max(1, min(workers or os.cpu_count() or 1, len(programs)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox") as pool:
        return list(pool.map(lambda job: run_python(job[0], entry_point=job[1], **limits), zip(programs, entry_points)))


_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\r?\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)


def extract_code(completion: str) -> str:
    """The code in a completion: the first ```python (or bare ```) fenced block, else the whole
    text. An unclosed fence (a truncated completion) counts up to the end."""
    found = _FENCE.search(completion)
    return found.group(1) if found else completion


def code_reward(
    *, prepend_prompt: bool = False, workers: int | None = None, runner: Callable[..., list[SandboxResult]] | None = None,
    **limits: Any,
) -> RewardFn:
    """A reward that runs each completion against its tests in the sandbox: 1.0 passed, else 0.0.

    Fields: ``tests`` (test code; a list of assert lines is joined), optional ``entry_point``
    (HumanEval: the tests define ``check(candidate)``, which the harness calls on that function),
    optional ``prepend_prompt`` (per example; overrides the flag of the same name).
    The program is the completion's code (fences stripped) followed by the tests; with
    ``prepend_prompt`` it is prompt + completion verbatim, for completions that continue a
    HumanEval-style prompt (signature and docstring). ``limits`` go to ``run_python``.
    ``runner`` replaces :func:`run_many` (same signature), e.g. ``RaySandboxPool(...).run_many``.
    """
    try:
        inspect.signature(run_python).bind("", **limits)
    except TypeError as error:
        raise ConfigError(f"code_reward: {error} (options are those of run_python)") from error

    def code_passes(prompts: list[str], completions: list[str], **fields: Any) -> list[float]:
        count = len(completions)
        tests = require_field(fields, "tests", count)
        entry_points = require_field(fields, "entry_point", count) if fields.get("entry_point") is not None else [None] * count
        prepend = require_field(fields, "prepend_prompt", count) if fields.get("prepend_prompt") is not None else [prepend_prompt] * count
        if any(prepend) and len(prompts) != count:
            raise DataError(f"code_reward got {len(prompts)} prompts for {count} completions")
        programs = []
        for i, completion in enumerate(completions):
            code = prompts[i] + completion if prepend[i] else extract_code(completion)
            test = "\n".join(tests[i]) if isinstance(tests[i], (list, tuple)) else str(tests[i])
            programs.append(f"{code}\n\n{test}\n")
        results = (runner or run_many)(programs, workers, entry_points=[e or None for e in entry_points], **limits)
        return [1.0 if result.passed else 0.0 for result in results]

    return code_passes
