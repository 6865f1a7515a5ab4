"""Metrics to JSONL (always) and optionally TensorBoard / W&B through accelerate's trackers."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from redraft.errors import warn


def is_main_launch_process() -> bool:
    """False on every process but rank 0 of a multi-process launch (torchrun / accelerate launch set RANK)."""
    return int(os.environ.get("RANK", "0")) == 0


def print_once(console, message: str) -> None:
    """Print on rank 0 only: a multi-process launch runs the same command in every process."""
    if is_main_launch_process():
        console.print(message)


EPOCHS_WARNING = 10  # a stage passing over its training rows more often than this says so
EPOCHS_SUGGESTED = 3  # what the warning suggests instead (TRL's num_train_epochs default)


def epochs_warning(
    stage: str, rows: int, steps: int, per_step: int, what: str, key: str, generated: bool = False, unit: str = "steps"
) -> str | None:
    """The warning for a stage whose ``steps`` × ``per_step`` rows pass over its ``rows`` training rows
    more than EPOCHS_WARNING times (a small file is memorised long before), naming the key to change; None
    otherwise. ``generated``: the task draws its problems (task.train_size can give more of them);
    ``unit``: what a step is called (RL: iterations)."""
    if rows <= 0 or steps * per_step <= EPOCHS_WARNING * rows:
        return None
    suggested = max(1, round(EPOCHS_SUGGESTED * rows / per_step))
    more = " or raise task.train_size" if generated else ""
    return (
        f"{stage}: {steps} {unit} × {per_step} {what} per {unit.removesuffix('s')} "
        f"is {steps * per_step / rows:.0f} epochs over the {rows} "
        f"training {what}; set {key}={suggested} for about {EPOCHS_SUGGESTED} epochs{more}"
    )


def warn_epochs(*args: Any, **kwargs: Any) -> None:
    """Print :func:`epochs_warning`'s warning, if there is one (rank 0 only)."""
    if message := epochs_warning(*args, **kwargs):
        warn(message)


class MetricsLog:
    """Appends one JSON object per record to ``metrics.jsonl``.

    Under a multi-process launch only rank 0 writes: trainers log metrics already reduced over ranks.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.writes = is_main_launch_process()

    def write(self, stage: str, step: int, **metrics: Any) -> None:
        if not self.writes:
            return
        record = {"stage": stage, "step": step, "time": round(time.time(), 3), **metrics}
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")

    def read(self, stage: str | None = None) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        records = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        return [r for r in records if stage is None or r["stage"] == stage]

    def drop_after(self, stage: str, step: int) -> None:
        """Forget records a crashed run wrote after its last checkpoint (they are redone on resume)."""
        self._drop(lambda r: r["stage"] == stage and r["step"] > step)

    def drop_since(self, stage: str, started: float) -> None:
        """Forget ``stage``'s records written since ``started`` (a crashed attempt with no checkpoint;
        earlier records under the same stage name, e.g. an RLHF round before, stay)."""
        self._drop(lambda r: r["stage"] == stage and r["time"] >= started)

    def _drop(self, dropped: Callable[[dict[str, Any]], bool]) -> None:
        if not self.writes:
            return
        kept = [r for r in self.read() if not dropped(r)]
        staging = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        staging.write_text("".join(json.dumps(r) + "\n" for r in kept))
        os.replace(staging, self.path)  # a kill mid-write leaves the old file whole, never an empty one


def trackers(tensorboard: bool, wandb: bool) -> list[str]:
    """accelerate tracker names, after checking each one's package is installed."""
    import importlib.util

    from redraft.errors import ConfigError

    chosen = []
    for name, wanted, package in (("tensorboard", tensorboard, "tensorboard"), ("wandb", wandb, "wandb")):
        if not wanted:
            continue
        if importlib.util.find_spec(package) is None:
            raise ConfigError(f"logging.{name} needs the {package} package: pip install 'redraft[{name}]'")
        chosen.append(name)
    return chosen


class _NoProgress:
    """Stands in for a rich progress bar when progress display is off."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, *args, **kwargs) -> int:
        return 0

    def update(self, *args, **kwargs) -> None:
        pass


def progress_bar(enabled: bool):
    if not enabled:
        return _NoProgress()
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    )


def flat_hparams(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> {"optim.lr": 0.001, ...}: trackers take only flat scalar hyper-parameters."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_hparams(value, f"{name}."))
        elif isinstance(value, (int, float, str, bool)):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


def make_accelerator(out_dir, logging_cfg, run_name: str, hparams: dict[str, Any]):
    """The Accelerator every trainer uses, with the trackers the logging config asks for."""
    from accelerate import Accelerator

    # Batch sizes in redraft configs are global (split over processes), so the schedule advances
    # once per optimizer step, not once per process as accelerate does by default.
    accelerator = Accelerator(
        log_with=trackers(logging_cfg.tensorboard, logging_cfg.wandb) or None,
        project_dir=str(out_dir),
        step_scheduler_with_optimizer=False,
    )
    if accelerator.log_with:
        accelerator.init_trackers(run_name, config=flat_hparams(hparams))
    return accelerator


def finish_trackers(accelerator) -> None:
    """End a trainer's TensorBoard/W&B runs.

    Not ``accelerator.end_training()``: that also destroys the process group, and under a
    multi-process launch the next stage of the same run (SFT, then RL …) still needs it.
    """
    for tracker in accelerator.trackers:
        tracker.finish()
