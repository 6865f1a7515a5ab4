"""The skeleton every trainer runs (LM, pairwise, RL): what happens around a training step.

A trainer builds a :class:`TrainingLoop`, resumes it, and hands :meth:`TrainingLoop.run` a function that
makes one step (its algorithm: batch, loss, backward, optimizer step, its metrics). The loop owns the
rest, in this order after every step: finite-weights check, time limit, validation (best model
exported, early stopping), checkpoint cadence, progress bar; after the last step, the export of the
final model when validation kept none. All on `accelerate`, so the same on CPU, one GPU or several.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import broadcast_object_list, convert_outputs_to_fp32

from redraft.config import LoggingSection, OptimSection, RLSection, TrainSection
from redraft.errors import TrainingError
from redraft.models.build import uses_bf16
from redraft.training.checkpoint import latest_checkpoint, require_finite_weights, save_checkpoint, start_or_resume
from redraft.training.logging import MetricsLog, finish_trackers, make_accelerator, progress_bar
from redraft.training.optim import build_optimizer, build_scheduler


@dataclass(frozen=True)
class Monitor:
    """The validation metric that picks the exported model and drives early stopping.

    ``state_key`` names the best value in the checkpointed loop state.
    """

    metric: str = "val_loss"
    maximize: bool = False
    state_key: str = "best_monitored"

    def improves(self, value: float, best: float | None) -> bool:
        return best is None or (value > best if self.maximize else value < best)


@dataclass(frozen=True)
class Validation:
    """Run ``measure`` every ``every`` steps, at the last step and before a time-limit stop; export the
    model whenever ``monitor`` improves; stop after ``patience`` validations without improvement (0: never)."""

    measure: Callable[[], dict[str, float]]
    every: int
    monitor: Monitor
    patience: int = 0


@dataclass(frozen=True)
class Schedule:
    """How many steps, and when to checkpoint and stop on time."""

    total: int
    save_every: int
    keep_checkpoints: int
    max_seconds: float | None = None

    @classmethod
    def of(cls, cfg: Any, total: int | None = None) -> Schedule:
        """A training section's schedule: its max_steps (or ``total``), save_every, keep_checkpoints, max_seconds."""
        return cls(total or cfg.max_steps, cfg.save_every, cfg.keep_checkpoints, cfg.max_seconds)


class TrainingLoop:
    """One training run's accelerator, checkpoints, metrics and step loop.

    ``cfg`` is the stage's training section (its values go to the trackers, its mixed_precision to :meth:`autocast`);
    ``unit`` names a step in messages ("step", "iteration"); ``hint`` ends the message of a non-finite loss (what
    to try).
    """

    def __init__(
        self,
        stage: str,
        out_dir: Path,
        log: MetricsLog,
        logging: LoggingSection,
        cfg: TrainSection | RLSection,
        *,
        hint: str,
        unit: str = "step",
        started: float | None = None,
    ):
        self.stage, self.log, self.hint, self.unit = stage, log, hint, unit
        self.started = time.perf_counter() if started is None else started
        self.progress = logging.progress
        self.accelerator = make_accelerator(out_dir, logging, stage, cfg.model_dump(mode="json"))
        self.bf16 = uses_bf16(cfg.mixed_precision)
        self.rank, self.world = self.accelerator.process_index, self.accelerator.num_processes
        self.checkpoints, self.model_dir = out_dir / "checkpoints", out_dir / "model"
        self.last_step = 0
        self.stopped_early = False

    def prepare(self, model: torch.nn.Module, optim: OptimSection, total_updates: int):
        """``(model, optimizer, scheduler)``: AdamW with its warm-up/decay schedule over ``total_updates``
        optimizer steps, placed (and wrapped under several processes) by accelerate."""
        optimizer = build_optimizer(model, optim)
        scheduler = build_scheduler(optimizer, optim, total_updates)
        model, optimizer, scheduler = self.accelerator.prepare(model, optimizer, scheduler)
        return self.autocast_forward(model), optimizer, scheduler

    def autocast(self):
        """bf16 autocast where the trainer's mixed_precision asks for it; otherwise a context that does nothing."""
        if not self.bf16:
            return nullcontext()
        return torch.autocast(self.accelerator.device.type, dtype=torch.bfloat16)

    def autocast_forward(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` with its forward under :meth:`autocast` and its outputs back in fp32, as accelerate wraps a model
        for its own mixed precision. Accelerate's is one per process, fixed by the first trainer; this is each
        trainer's own."""
        if self.bf16:
            model.forward = convert_outputs_to_fp32(self.autocast()(model.forward))
        return model

    def resume(self, resume: bool, state: dict[str, Any]) -> int:
        """With ``resume``, replace ``state`` by the newest readable checkpoint's loop state; the first step to run."""
        saved = start_or_resume(self.accelerator, self.checkpoints, self.stage, self.log, resume)
        if saved is None:
            return 1
        first = saved.pop("step") + 1
        state.clear()
        state.update(saved)
        self.last_step = first - 1
        return first

    def require_finite(self, value: float, what: str, step: int) -> None:
        """Stop before a non-finite loss reaches the weights, naming the last good checkpoint."""
        if not math.isfinite(value):
            kept = latest_checkpoint(self.checkpoints)
            raise TrainingError(
                f"{self.stage}: {what} is {value} at {self.unit} {step}; stopped. Last good checkpoint: "
                f"{kept or 'none yet'}. {self.hint}"
            )

    def write(self, step: int, metrics: dict[str, Any]) -> None:
        """One record in metrics.jsonl and in the trackers (TensorBoard, W&B)."""
        self.log.write(self.stage, step, **metrics)
        self.accelerator.log({f"{self.stage}/{k}": v for k, v in metrics.items()}, step=step)

    def on_main_process(self, action: Callable[[], None]) -> None:
        if self.accelerator.is_main_process:
            action()
        self.accelerator.wait_for_everyone()

    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def _out_of_time(self, max_seconds: float | None) -> bool:
        out = max_seconds is not None and self.seconds() >= max_seconds
        if self.world > 1 and max_seconds is not None:  # rank 0's clock decides, so all ranks stop together
            out = broadcast_object_list([out])[0]
        return out

    def _validate(self, step: int, validation: Validation, state: dict[str, Any], export: Callable[[], None]) -> bool:
        """Measure, export on improvement; whether patience ran out."""
        metrics = validation.measure()
        self.write(step, metrics)
        monitor = validation.monitor
        if monitor.improves(metrics[monitor.metric], state[monitor.state_key]):
            state[monitor.state_key], state["evals_without_improvement"] = metrics[monitor.metric], 0
            self.on_main_process(export)
        else:
            state["evals_without_improvement"] += 1
        return bool(validation.patience) and state["evals_without_improvement"] >= validation.patience

    def run(
        self,
        first: int,
        step: Callable[[int], str],
        schedule: Schedule,
        state: dict[str, Any],
        parameters: list[torch.Tensor],
        *,
        export: Callable[[], None],
        validation: Validation | None = None,
        label: str | None = None,
    ) -> None:
        """Steps ``first``..``schedule.total``; ``step(n)`` trains step n and returns the progress bar's text.

        ``state`` is the loop state checkpointed with the weights (the trainer may update it in
        ``step``); ``parameters`` are checked finite after every step; ``export`` writes the model
        (called on the main process only).
        """
        with progress_bar(self.progress and self.accelerator.is_main_process) as bar:
            task = bar.add_task(label or self.stage, total=schedule.total, completed=first - 1, info="")
            for n in range(first, schedule.total + 1):
                info = step(n)
                require_finite_weights(parameters, self.stage, n, self.checkpoints)
                self.last_step = n
                out_of_time = self._out_of_time(schedule.max_seconds)
                stop = False
                if validation is not None and (n % validation.every == 0 or n == schedule.total or out_of_time):
                    stop = self._validate(n, validation, state, export)
                    self.stopped_early = stop and n < schedule.total
                stop = stop or out_of_time
                if n % schedule.save_every == 0 or n == schedule.total or stop:
                    save_checkpoint(self.accelerator, self.checkpoints, n, state, schedule.keep_checkpoints)
                bar.update(task, completed=n, info=info)
                if stop:
                    break
        if validation is None or not self.model_dir.exists():
            self.on_main_process(export)
        finish_trackers(self.accelerator)
