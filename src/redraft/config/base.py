"""The base of every config section, and the sections every command has: the run and its logging."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Section(BaseModel):
    """A config section: unknown keys are errors, every field carries a ``description``
    (shown by ``redraft config show --explain`` and in docs/config-reference.md)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _set_keys(section: Any) -> set[str]:
    """The keys a user gave a section: all of a raw mapping's, or those set on a built section."""
    if isinstance(section, BaseModel):
        return set(section.model_fields_set)
    return set(section) if isinstance(section, dict) else set()


def share_keys(owner: type[BaseModel], data: Any, prefix: str, sections: Sequence[str], keys: Sequence[str]) -> Any:
    """The body of a before-validator of ``owner``: its ``keys`` (e.g. one answer length for a stage) are copied
    into each of its subsections ``sections``, which then have no such keys of their own: setting one there is
    an error that names ``<prefix>.<key>``. Pair it with :func:`without_keys` in a serializer of the sections,
    so a dumped config holds each key once."""
    if not isinstance(data, dict):
        return data
    data = dict(data)

    def default(name: str) -> Any:
        return owner.model_fields[name].get_default(call_default_factory=True)

    shared = {key: data.get(key, default(key)) for key in keys}
    for name in sections:
        section = data.get(name, default(name))
        given = _set_keys(section)
        for key in keys:
            if key in given:
                raise ValueError(f"{prefix}.{name}.{key}: set {prefix}.{key} instead, the one {key} of all {prefix}")
        data[name] = {**section, **shared} if isinstance(section, dict) else section.model_copy(update=shared)
    return data


def refuse_keys(data: Any, prefix: str, section: str, keys: Sequence[str], hint: str) -> Any:
    """The body of a before-validator: ``keys`` of the subsection ``section`` (a shared section class, e.g. the
    training section) mean nothing here, so setting one is an error that says why (``hint``). Pair it with
    :func:`without_keys` in a serializer of the section, so a dumped config and the reference leave them out."""
    given = _set_keys(data.get(section)) if isinstance(data, dict) else set()
    for key in keys:
        if key in given:
            raise ValueError(f"{prefix}.{section}.{key} is not used: {hint}")
    return data


def without_keys(dumped: dict[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    return {key: value for key, value in dumped.items() if key not in keys}


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
