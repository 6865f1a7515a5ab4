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
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from accelerate.utils import broadcast_object_list

from redraft.fsutil import atomic_directory

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
