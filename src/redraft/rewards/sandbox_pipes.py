"""Reading a sandbox run's stdout, stderr and report pipes on the host while it runs.

Why: a program that writes more than a pipe holds would block, and so look like a timeout, unless
every pipe is read as it fills; and a program that writes gigabytes must not fill the host's
memory, so only the first bytes of each stream are kept.
"""

from __future__ import annotations

import os
import selectors
import time


class CappedBuffer:
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


class PipeReader:
    """Reads several pipes at once so a chatty program never blocks on a full pipe."""

    def __init__(self, caps: dict[int, int]):
        self.buffers = {fd: CappedBuffer(cap) for fd, cap in caps.items()}
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
