"""Training checkpoints: accelerate's full state (model, optimizer, scheduler, RNG) + loop position.

Each checkpoint is a folder written under a temporary name and renamed into place, so a crash
mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

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
    target = Path(root) / f"step-{step:07d}"
    with atomic_directory(target) as staging:
        accelerator.save_state(str(staging), safe_serialization=True)
        (staging / STATE_FILE).write_text(json.dumps({"step": step, **loop_state}, indent=2))
    for old in checkpoint_dirs(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def load_checkpoint(accelerator, path: Path) -> dict[str, Any]:
    accelerator.load_state(str(path))
    return json.loads((path / STATE_FILE).read_text())
