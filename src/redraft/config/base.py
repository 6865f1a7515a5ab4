"""The base of every config section, and the sections every command has: the run and its logging."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class Section(BaseModel):
    """A config section: unknown keys are errors, every field carries a ``description``
    (shown by ``redraft config show --explain`` and in docs/config-reference.md)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RunSection(Section):
    name: str = Field(
        "main",
        description="run name: outputs go to <output_dir>/<name>/ (--name sets it). The default is the command's: "
        "main for `redraft run` (the main job), pretrain, sft, rl, score, eval, generate, reward_model, dpo and rlhf "
        "for the others, so a stage run on its own never writes into the main job's folder",
    )
    output_dir: str = Field("runs", description="folder that holds the run folders")
    seed: int = Field(
        0, description="seed of weight initialisation, data order and sampling; the same seed repeats a run exactly"
    )

    @property
    def directory(self) -> Path:
        return Path(self.output_dir) / self.name


class LoggingSection(Section):
    tensorboard: bool = Field(
        False, description="also log metrics to TensorBoard, in the stage's folder (pip install 'redraft[tensorboard]')"
    )
    wandb: bool = Field(False, description="also log metrics to Weights & Biases (pip install 'redraft[wandb]')")
    progress: bool = Field(True, description="show a progress bar while training")
