"""Run-folder bookkeeping shared by every job: create or reuse ``runs/<name>``, lock it, and record
each stage's ``result.json`` so a resumed run skips what is done.

A resume must continue the run that was started, so it is refused when the config differs from the
one the folder records (a changed learning rate would otherwise be ignored while ``config.yaml``
claimed it). One process at a time may use a folder: two resumes of the same run would both train
and both append metrics.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel

from redraft.config import config_changes, dump_config, read_yaml
from redraft.distributed import on_main_process
from redraft.errors import RedraftError
from redraft.fsutil import write_json_atomic

RESULT = "result.json"
CONFIG = "config.yaml"
TIMING = "timing.json"
_held_locks: dict[Path, IO[str]] = {}  # open for the life of the process: closing would release the lock


def stage_result(stage_dir: Path) -> dict[str, Any] | None:
    path = stage_dir / RESULT
    return json.loads(path.read_text()) if path.is_file() else None


def _save_stage(stage_dir: Path, result: dict[str, Any]) -> dict[str, Any]:
    stage_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(stage_dir / RESULT, result)
    return result


def finish_stage(stage_dir: Path, result: dict[str, Any]) -> dict[str, Any]:
    """Record a stage every process ran (training): the main process writes its result."""
    on_main_process(lambda: _save_stage(stage_dir, result))
    return result


def main_process_stage(stage_dir: Path, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A stage one process does (evaluation): the main process computes and records it, unless it
    already is; every process returns the recorded result."""
    on_main_process(lambda: stage_result(stage_dir) or _save_stage(stage_dir, compute()))
    return stage_result(stage_dir)


def start_job_clock(run_dir: Path) -> None:
    """Open a timing segment in ``timing.json``. A segment a kill left open is first counted up to the
    run's last write, so a killed and resumed job still reports the time it really took."""
    path = run_dir / TIMING
    timings = json.loads(path.read_text()) if path.is_file() else {}
    killed_at = timings.pop("segment_started_at", None)
    if killed_at is not None:
        last_write = max((p.stat().st_mtime for p in run_dir.rglob("*") if p.is_file()), default=killed_at)
        timings["main_job_seconds"] = timings.get("main_job_seconds", 0.0) + max(0.0, last_write - killed_at)
    write_json_atomic(path, {**timings, "segment_started_at": time.time()})


def stop_job_clock(run_dir: Path) -> dict[str, float]:
    """Close the open segment, add it to ``main_job_seconds`` and return the timings."""
    path = run_dir / TIMING
    timings = json.loads(path.read_text())
    started = timings.pop("segment_started_at")
    timings["main_job_seconds"] = timings.get("main_job_seconds", 0.0) + time.time() - started
    write_json_atomic(path, timings)
    return timings


def lock_run_dir(run_dir: Path) -> None:
    """Hold an exclusive lock on ``run_dir`` until this process exits; refuse if another process holds it.

    The lock file sits beside the folder, not in it, so ``--overwrite`` (which deletes the folder)
    cannot drop it from under a running job.
    """
    run_dir = run_dir.resolve()
    if run_dir in _held_locks:
        return
    handle = (run_dir.parent / f".{run_dir.name}.lock").open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise RedraftError(f"{run_dir} is in use by another redraft process; wait for it to finish") from None
    _held_locks[run_dir] = handle


def _started(run_dir: Path) -> bool:
    """Whether a run wrote anything beyond its config: a start that failed before any stage (a bad
    path, a missing model) leaves only config.yaml, and the corrected command should just work."""
    return run_dir.is_dir() and any(path.name != CONFIG for path in run_dir.iterdir())


def _refuse_changed_config(run_dir: Path, cfg: BaseModel) -> None:
    recorded = run_dir / CONFIG
    if not recorded.is_file():
        return
    changes = config_changes(read_yaml(recorded), cfg.model_dump(mode="json"))
    if changes:
        shown = "; ".join(changes[:5]) + (f" (+{len(changes) - 5} more)" if len(changes) > 5 else "")
        raise RedraftError(
            f"{run_dir} was started with a different config ({shown}); --resume continues a run as it was "
            "started: drop the changes, or start a new run (--name) or over (--overwrite)"
        )


def start_run_dir(run_dir: Path, cfg: BaseModel, resume: bool, overwrite: bool) -> None:
    """Create the run folder (or check that it may be reused), lock it, and write the run's config into it."""

    def prepare() -> None:
        if run_dir.exists() and not run_dir.is_dir():
            raise RedraftError(f"run folder {run_dir} is a file; choose another run.output_dir or --name")
        try:
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            lock_run_dir(run_dir)
            if _started(run_dir):
                if overwrite:
                    shutil.rmtree(run_dir)
                elif not resume:
                    raise RedraftError(
                        f"{run_dir} already exists: pass --resume to continue it or --overwrite to start over"
                    )
                else:
                    _refuse_changed_config(run_dir, cfg)
            run_dir.mkdir(parents=True, exist_ok=True)
            dump_config(cfg, run_dir / CONFIG)
        except OSError as exc:
            raise RedraftError(f"cannot write the run folder {run_dir}: {exc.strerror or exc}") from None

    on_main_process(prepare)
