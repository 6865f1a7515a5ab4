"""The supervisor of one run inside the code sandbox: trusted, and never runs untrusted code.

Stdlib only, like every ``sandbox_inside*`` module. At the "namespaces" level it is root and pid 1
of the run's namespaces (when it exits, the kernel kills every process left in them): it joins the
run's memory cgroup, builds the private root filesystem, starts the candidate and the checker,
each with its own identity, limits and syscall filter, and reports to the host how they ended.
"""

import json
import os
import signal
import stat
import time
import traceback

from redraft.rewards.sandbox_inside_kernel import (
    MS_BIND,
    MS_MOVE,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    become,
    mount,
)
from redraft.rewards.sandbox_inside_protocol import PASSED, SETUP_ERROR_EXIT, flush_and_exit

_CHILD_GRACE_SECONDS = 1.0  # how long the candidate gets to exit once the checker is done


def _spawn(job: dict, role: str, payload: dict, kept_fds: tuple[int, ...]) -> int:
    """Start ``role`` in a fresh interpreter; it inherits only ``kept_fds`` (and stdout/stderr)."""
    payload_fd = os.memfd_create(f"redraft-{role}")
    os.write(payload_fd, json.dumps({**payload, "max_message": job["max_message"]}).encode())
    os.lseek(payload_fd, 0, os.SEEK_SET)
    pid = os.fork()
    if pid == 0:
        try:
            become(job["identities"][role], job["limits"], job["filter_syscalls"])
            for fd in (payload_fd, *kept_fds):
                os.set_inheritable(fd, True)
            os.execv(job["python"], [job["python"], "-I", "-c", job["source"], role, str(payload_fd)])
        except BaseException:
            traceback.print_exc()
        finally:
            flush_and_exit(SETUP_ERROR_EXIT)
    os.close(payload_fd)
    return pid


def _build_private_root(root: dict) -> None:
    """Replace "/" (in our mount namespace) by a read-only tmpfs holding only what the interpreter
    needs: ``binds`` (read-only), ``devices``, ``symlinks``, a fresh /proc that shows each uid
    only its own processes, a size-capped /tmp for the candidate and a small /dev/shm."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount propagates to the host
    if root["cgroup"] is not None:  # before any process of the run exists, so all of them are counted
        with open(os.path.join(root["cgroup"], "cgroup.procs"), "w") as procs:
            procs.write("0")
    # Opened before the new root hides them (a source might live under the staging mount point).
    sources = {path: os.open(path, os.O_PATH | os.O_CLOEXEC) for path in (*root["binds"], *root["devices"])}
    staging = "/tmp"
    mount("sandbox-root", staging, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for path, fd in sources.items():
        target = staging + path
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            os.mkdir(target, 0o755)
        else:
            open(target, "w").close()
        mount(f"/proc/self/fd/{fd}", target, None, MS_BIND)
        if path in root["binds"]:
            mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
        os.close(fd)
    for path, points_to in root["symlinks"].items():
        os.makedirs(os.path.dirname(staging + path), mode=0o755, exist_ok=True)
        os.symlink(points_to, staging + path)
    for path in ("/proc", "/tmp", "/dev/shm"):
        os.makedirs(staging + path, mode=0o755, exist_ok=True)
    mount("proc", staging + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2")
    owner = root["tmp_owner"]
    mount(
        "sandbox-tmp",
        staging + "/tmp",
        "tmpfs",
        MS_NOSUID | MS_NODEV,
        f"size={root['tmp_mb']}m,mode=0700,uid={owner},gid={owner}",
    )
    mount("sandbox-shm", staging + "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=1777")
    mount(None, staging, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chdir(staging)  # switch_root: the staging mount becomes "/", the host's tree is unreachable under it
    mount(staging, "/", None, MS_MOVE)
    os.chroot(".")
    os.chdir("/")


def _wait_or_stop(pid: int, grace: float) -> int | None:
    """The exit code of ``pid`` if it ends within ``grace`` seconds; otherwise SIGKILL it and None."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.002)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def supervise(job: dict) -> None:
    os.set_inheritable(job["report_fd"], False)
    try:
        if job["root"] is not None:
            _build_private_root(job["root"])
        requests, replies, verdict = os.pipe(), os.pipe(), os.pipe()
        candidate = _spawn(job, "candidate",
                           {"program": job["program"], "requests_fd": requests[0], "replies_fd": replies[1]},
                           (requests[0], replies[1]))  # fmt: skip
        checker = _spawn(job, "checker",
                         {"tests": job["tests"], "entry_point": job["entry_point"], "requests_fd": requests[1],
                          "replies_fd": replies[0], "verdict_fd": verdict[1]},
                         (requests[1], replies[0], verdict[1]))  # fmt: skip
    except Exception:
        traceback.print_exc()
        flush_and_exit(SETUP_ERROR_EXIT)
    for fd in (*requests, *replies, verdict[1]):
        os.close(fd)
    said = b""
    while chunk := os.read(verdict[0], 64):  # until the checker exits
        said += chunk
    checker_code = os.waitstatus_to_exitcode(os.waitpid(checker, 0)[1])
    candidate_code = _wait_or_stop(candidate, _CHILD_GRACE_SECONDS)
    report = {"passed": said == PASSED and checker_code == 0, "candidate": candidate_code, "checker": checker_code}
    os.write(job["report_fd"], json.dumps(report).encode())
    flush_and_exit(0)
