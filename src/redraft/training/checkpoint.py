"""Training checkpoints: accelerate's full state (model, optimizer, scheduler, RNG) + loop position.

Each checkpoint is a folder written under a temporary name and renamed into place, so a crash
mid-write leaves the previous checkpoint intact. Under several processes the state is written once,
by the main process (DDP replicas are identical; accelerate saves only rank 0's RNG state, and
the trainers draw their batches and samples from explicit seeds, so a run may resume with a
different process count).
"""

from __future__ import annotations

import json
import shutil
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import broadcast_object_list

from redraft.errors import TrainingError
from redraft.fsutil import atomic_directory
from redraft.training.logging import MetricsLog

STATE_FILE = "trainer_state.json"


def checkpoint_dirs(root: str | Path) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.glob("step-*") if p.is_dir() and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(root: str | Path) -> Path | None:
    found = checkpoint_dirs(root)
    return found[-1] if found else None


def save_checkpoint(accelerator, root: str | Path, step: int, loop_state: dict[str, Any], keep: int) -> Path:
    """Write one checkpoint; with several processes every rank joins ``save_state`` and the main one renames it."""
    target = Path(root) / f"step-{step:07d}"
    main = accelerator.is_main_process
    with atomic_directory(target) if main else nullcontext() as staging:
        staging = Path(broadcast_object_list([staging])[0]) if accelerator.num_processes > 1 else staging
        accelerator.save_state(str(staging), safe_serialization=True)
        if main:
            (staging / STATE_FILE).write_text(json.dumps({"step": step, **loop_state}, indent=2))
        accelerator.wait_for_everyone()  # every rank's files are in before the rename
    if main:
        for old in checkpoint_dirs(root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return target


def load_checkpoint(accelerator, path: Path) -> dict[str, Any]:
    accelerator.load_state(str(path))
    return json.loads((path / STATE_FILE).read_text())


def _remove_staging_leftovers(root: Path) -> None:
    """Folders a killed save left half-written (``.NAME.tmp-PID``) or not yet removed (``.NAME.old-PID``):
    checkpoints under ``root``, the exported model beside it. The run folder's lock guarantees no
    other process is writing them."""
    for folder in (root, root.parent):
        for leftover in [*folder.glob(".*.tmp-*"), *folder.glob(".*.old-*")]:
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)


def _newest_readable_checkpoint(accelerator, root: Path, stage: str) -> dict[str, Any] | None:
    """Saves are atomic, but a disk that fills or a file damaged after the save can still leave the
    newest checkpoint unreadable: it is reported and the one before it tried."""
    for path in reversed(checkpoint_dirs(root)):
        try:
            state = load_checkpoint(accelerator, path)
        except Exception as exc:  # safetensors, torch and json each raise their own types
            accelerator.print(f"{stage}: checkpoint {path} is unreadable ({type(exc).__name__}); trying the one before")
            continue
        accelerator.print(f"{stage}: resuming from {path}")
        return state
    return None


def start_or_resume(accelerator, root: str | Path, stage: str, log: MetricsLog, resume: bool) -> dict[str, Any] | None:
    """With ``resume``, load the newest readable checkpoint under ``root`` and return its loop state
    (``step`` included); otherwise, or when there is none, return None and train from the start.

    Metrics a crashed attempt logged after what is resumed are dropped, as they are redone: after the
    checkpoint's step, or, with no checkpoint, everything the stage logged since that attempt began
    (a ``.<root>.started`` file beside ``root`` holds when; records of an earlier run of the same
    stage name are kept).
    """
    root = Path(root)
    if accelerator.is_main_process:
        _remove_staging_leftovers(root)
    accelerator.wait_for_everyone()
    state = _newest_readable_checkpoint(accelerator, root, stage) if resume else None
    started = root.with_name(f".{root.name}.started")
    if state is not None:
        log.drop_after(stage, state["step"])
    elif accelerator.is_main_process:
        if resume and started.is_file():
            log.drop_since(stage, float(started.read_text()))
        root.parent.mkdir(parents=True, exist_ok=True)
        started.write_text(repr(time.time()))
    accelerator.wait_for_everyone()
    return state


def require_finite_weights(parameters: list[torch.Tensor], stage: str, step: int, checkpoints: Path) -> None:
    """Stop before non-finite weights are saved: a loss is checked before the update, so a too-large
    learning rate would otherwise end a run "done" with NaN or overflowing weights."""
    with torch.no_grad():
        finite = bool(torch.isfinite(torch.nn.utils.get_total_norm(parameters)))
    if not finite:
        raise TrainingError(
            f"{stage}: the weights are not finite after step {step}; stopped without saving them. Last good "
            f"checkpoint: {latest_checkpoint(checkpoints) or 'none yet'}. Try a lower learning rate."
        )
