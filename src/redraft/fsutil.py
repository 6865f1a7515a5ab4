"""Atomic file-system writes: a crash never leaves a half-written checkpoint behind."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _fsync_tree(root: Path) -> None:
    """Flush every file and folder under ``root`` to disk, so the rename never publishes a folder
    whose contents a power loss could still truncate."""
    for path in [*root.rglob("*"), root]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``target`` in one rename."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _fsync_tree(staging)
    retired = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        os.replace(target, retired)
    os.replace(staging, target)
    shutil.rmtree(retired, ignore_errors=True)


def read_utf8(path: str | Path, error: type[Exception]) -> str:
    """The file's text; bytes that are not UTF-8 raise ``error`` naming file and line, not a traceback."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(f"{path}:{line}: not valid UTF-8 (byte 0x{data[exc.start]:02x}); save the file as UTF-8") from None


def write_json_atomic(path: str | Path, data: Any) -> None:
    path = Path(path)
    staging = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with staging.open("w") as handle:
        handle.write(json.dumps(data, indent=2))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(staging, path)
