"""Launching one code-sandbox run on the host: set it up, start its supervisor, watch, clean up.

Why a module of its own: a run's set-up (a uid slot, a memory cgroup, the private root's layout,
or a scratch directory at the "basic" level), its start under ``setpriv``/``unshare`` with a
minimal environment, the wait against a wall-clock deadline and the sweep of whatever it left
are the mechanics behind ``sandbox.run_python``, which only chooses the level and the limits.

The job (program, tests, limits, identities, root layout) goes to the supervisor in an anonymous
memfd; the supervisor's report of how the candidate and checker ended comes back on a pipe.
Everything that runs inside is the ``sandbox_inside*`` modules, sent as one ``python -c`` script.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from redraft.rewards.sandbox_cgroup import MemoryCgroups, RunCgroup
from redraft.rewards.sandbox_inside_kernel import SYSCALL_TABLES
from redraft.rewards.sandbox_inside_protocol import COMPILE_ERROR_EXIT, SETUP_ERROR_EXIT
from redraft.rewards.sandbox_pipes import CappedBuffer, PipeReader
from redraft.rewards.sandbox_processes import SANDBOX_UID_SLOTS, kill_group, sweep, uid_slot
from redraft.rewards.sandbox_result import SandboxError, SandboxResult, Status
from redraft.rewards.sandbox_rootfs import root_layout

CGROUP_PREFIX = "redraft-sandbox-"
_MAX_MESSAGE = 16 * 2**20  # one argument list or result between checker and candidate
_DRAIN_SECONDS = 0.5
_SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_SUPERVISOR_FLAGS = ("-I", "-S")  # isolated, and no site-packages: it needs only the stdlib, and starts faster
# The modules that run inside, each after the ones it imports.
_INSIDE_MODULES = (
    "sandbox_inside_protocol",
    "sandbox_inside_kernel",
    "sandbox_inside_roles",
    "sandbox_inside_supervisor",
    "sandbox_inside",
)


def _inside_script() -> str:
    """The ``python -c`` script every process inside runs: it registers each inside module in
    ``sys.modules`` under its usual name (the private root holds no redraft to import them from),
    then plays the role named by its first argument on the job in the file descriptor of its second."""
    sources = [
        (f"{__package__}.{name}", Path(__file__).with_name(f"{name}.py").read_text()) for name in _INSIDE_MODULES
    ]
    return (
        "import sys, types\n"
        f"for name, source in {sources!r}:\n"
        "    module = sys.modules[name] = types.ModuleType(name)\n"
        "    exec(compile(source, f'<{name}>', 'exec'), module.__dict__)\n"
        f"sys.modules[{__package__ + '.sandbox_inside'!r}].run_role(sys.argv[1], sys.argv[2])\n"
    )


_INSIDE_SCRIPT = _inside_script()


def find_tool(name: str) -> str | None:
    return shutil.which(name, path=_SAFE_PATH)


def _supervisor_argv(python: str, job_fd: int) -> list[str]:
    return [python, *_SUPERVISOR_FLAGS, "-c", _INSIDE_SCRIPT, "supervisor", str(job_fd)]


@dataclass
class _Setup:
    """How a run's supervisor starts, and how to find what the run left behind."""

    argv: list[str]
    cwd: str
    home: str  # HOME and TMPDIR
    uids: tuple[int, int] | None  # candidate's and checker's ("namespaces"); None: sweep by session ("basic")
    cgroup: RunCgroup | None


def _namespaced_setup(
    stack: ExitStack, job: dict[str, Any], job_fd: int, cgroups: MemoryCgroups | None, memory_cap_mb: int, tmp_mb: int
) -> _Setup:
    """Hold a uid slot (and a memory cgroup) for the run, until ``stack`` closes."""
    uid = stack.enter_context(uid_slot())
    uids = (uid, uid + SANDBOX_UID_SLOTS)
    sweep(uids=uids)  # a leftover from a crashed caller would eat this run's RLIMIT_NPROC
    cgroup = stack.enter_context(cgroups.run(f"{CGROUP_PREFIX}{uid}", memory_cap_mb * 2**20)) if cgroups else None
    job["identities"] = {"candidate": {"uid": uids[0], "workdir": "/tmp"}, "checker": {"uid": uids[1], "workdir": "/"}}
    job["root"] = {**root_layout(job["python"]), "tmp_mb": tmp_mb, "tmp_owner": uid, "cgroup": cgroup and cgroup.path}
    argv = [
        find_tool("setpriv") or "setpriv", "--pdeathsig", "KILL", "--",
        find_tool("unshare") or "unshare", "--net", "--mount", "--pid", "--ipc", "--fork", "--kill-child", "--",
        *_supervisor_argv(job["python"], job_fd),
    ]  # fmt: skip
    return _Setup(argv, cwd="/", home="/tmp", uids=uids, cgroup=cgroup)


def _unisolated_setup(stack: ExitStack, job: dict[str, Any], job_fd: int) -> _Setup:
    """A fresh host directory as the run's working directory, removed when ``stack`` closes."""
    workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="redraft-sandbox-", ignore_cleanup_errors=True))
    job["identities"] = {role: {"uid": None, "workdir": workdir} for role in ("candidate", "checker")}
    job["root"] = None
    return _Setup(_supervisor_argv(job["python"], job_fd), cwd=workdir, home=workdir, uids=None, cgroup=None)


def _start(setup: _Setup, pass_fds: tuple[int, ...]) -> subprocess.Popen:
    env = {"PATH": _SAFE_PATH, "LANG": "C.UTF-8", "HOME": setup.home, "TMPDIR": setup.home}
    try:
        return subprocess.Popen(
            setup.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            pass_fds=pass_fds, cwd=setup.cwd, env=env, start_new_session=True,
        )  # fmt: skip
    except OSError as error:
        raise SandboxError(f"cannot start the sandbox ({setup.argv[0]}): {error}") from error


@dataclass(frozen=True)
class _Ended:
    """A finished run as the host saw it."""

    timed_out: bool
    stdout: CappedBuffer
    stderr: CappedBuffer
    report: CappedBuffer  # the supervisor's JSON report


def _watch_and_clean_up(
    proc: subprocess.Popen, setup: _Setup, report_fd: int, deadline: float, max_output: int
) -> _Ended:
    """Read the run's pipes until its supervisor exits or ``deadline``, then kill and sweep what is left."""
    stdout_fd, stderr_fd = proc.stdout.fileno(), proc.stderr.fileno()
    reader = PipeReader({stdout_fd: max_output, stderr_fd: max_output, report_fd: 4096})
    timed_out = True
    try:
        timed_out = reader.wait_for_exit(proc.pid, deadline)
    finally:
        kill_group(proc.pid)  # on timeout: everything; otherwise whatever stayed in the group
        proc.wait()
        if setup.uids is not None:
            sweep(uids=setup.uids)
        else:
            sweep(in_session=proc.pid)
        reader.drain(_DRAIN_SECONDS)
        reader.close()
        proc.stdout.close()
        proc.stderr.close()
    return _Ended(timed_out, reader.buffers[stdout_fd], reader.buffers[stderr_fd], reader.buffers[report_fd])


def run_job(
    program: str,
    *,
    tests: str | None,
    entry_point: str | None,
    level: Literal["namespaces", "basic"],
    timeout: float,
    limits: dict[str, tuple[int, int]],
    memory_cap_mb: int,
    cgroups: MemoryCgroups | None,
    tmp_mb: int = 64,
    max_output: int = 64_000,
    python: str | None = None,
) -> SandboxResult:
    """Run ``program`` (and ``tests``) once at ``level``, with a memory cgroup from ``cgroups`` if given."""
    job: dict[str, Any] = {
        "python": python or sys.executable, "source": _INSIDE_SCRIPT, "program": program, "tests": tests or "",
        "entry_point": entry_point, "limits": limits, "max_message": _MAX_MESSAGE,
        "filter_syscalls": os.uname().machine in SYSCALL_TABLES,
    }  # fmt: skip
    # An anonymous in-memory file: the job never touches a path anything could open.
    job_fd = os.memfd_create("redraft-sandbox-job")
    report_read, report_write = os.pipe()
    try:
        with ExitStack() as stack:
            if level == "namespaces":
                setup = _namespaced_setup(stack, job, job_fd, cgroups, memory_cap_mb, tmp_mb)
            else:
                setup = _unisolated_setup(stack, job, job_fd)
            job["report_fd"] = report_write
            os.write(job_fd, json.dumps(job).encode())
            os.lseek(job_fd, 0, os.SEEK_SET)
            started = time.monotonic()
            proc = _start(setup, (job_fd, report_write))
            os.close(report_write)
            report_write = -1
            ended = _watch_and_clean_up(proc, setup, report_read, started + timeout, max_output)
            duration = time.monotonic() - started
            out_of_memory = setup.cgroup is not None and setup.cgroup.oom_kills() > 0
    finally:
        for fd in (job_fd, report_read, report_write):
            if fd >= 0:
                os.close(fd)
    return _result(ended, proc.returncode, out_of_memory, memory_cap_mb, duration)


def _result(ended: _Ended, returncode: int, out_of_memory: bool, memory_cap_mb: int, duration: float) -> SandboxResult:
    report = _parse_report(ended.report)
    status = _status(ended.timed_out, report, out_of_memory)
    stderr = ended.stderr.text()
    if out_of_memory:
        stderr += f"\n[the run went over its memory cap of {memory_cap_mb} MB and was killed]"
    return SandboxResult(status, ended.stdout.text(), stderr, duration, report["candidate"] if report else returncode)


def _parse_report(buffer: CappedBuffer) -> dict[str, Any] | None:
    """The supervisor's account of how the candidate and checker ended (None if it wrote none)."""
    try:
        report = json.loads(bytes(buffer.kept))
    except ValueError:
        return None
    return report if isinstance(report, dict) and set(report) == {"passed", "candidate", "checker"} else None


def _status(timed_out: bool, report: dict[str, Any] | None, out_of_memory: bool) -> Status:
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
