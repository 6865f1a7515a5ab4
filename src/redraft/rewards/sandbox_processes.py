"""Which host processes belong to a code-sandbox run: per-run uid slots, and sweeping up leftovers.

Why: a run's processes may fork, daemonize or outlive the run's timeout. At the "namespaces"
level each concurrent run holds a slot, a pair of dedicated uids no other run (in this or another
of our processes) uses at the same time, which makes RLIMIT_NPROC a per-run cap and lets us find
and kill anything left under those uids. At the "basic" level leftovers are found by session id.
"""

from __future__ import annotations

import fcntl
import logging
import os
import pwd
import re
import signal
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

# Debian policy leaves 65000-65533 unallocated; nobody (65534) may be used by services, so it is
# left alone, and any uid here that has a passwd entry is skipped. A slot's candidate runs as
# SANDBOX_UID_BASE + slot, its checker as that + SANDBOX_UID_SLOTS.
SANDBOX_UID_BASE = 65_000
SANDBOX_UID_SLOTS = 256
SANDBOX_UIDS = range(SANDBOX_UID_BASE, SANDBOX_UID_BASE + 2 * SANDBOX_UID_SLOTS)
_SLOT_LOCK_DIR = "/run/redraft-sandbox"
_SWEEP_SECONDS = 2.0


@contextmanager
def uid_slot() -> Iterator[int]:
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


def sweep(**which: Any) -> None:
    """SIGKILL every live process matching ``which`` (``uids=`` or ``in_session=``) until none is
    left (or give up loudly)."""
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


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
