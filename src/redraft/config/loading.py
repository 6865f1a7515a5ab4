"""Configuration: one pydantic model per stage, loaded from YAML with ``--set a.b=c`` overrides.

Every stage config is built the same way: the packaged defaults (``redraft/configs/<stage>.yaml``)
are the base, the user's YAML file is merged over them, then the ``--set`` overrides. Unknown
keys and wrong types fail with a one-line :class:`~redraft.errors.ConfigError` naming the key.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from redraft.config.stages import STAGES, StageConfig
from redraft.errors import ConfigError
from redraft.fsutil import read_utf8

C = TypeVar("C", bound=BaseModel)


def packaged_defaults(stage: str) -> dict[str, Any]:
    """The built-in YAML defaults of a stage (may be empty: pydantic defaults then apply)."""
    path = resources.files("redraft") / "configs" / f"{stage}.yaml"
    if not path.is_file():
        return {}
    return yaml.safe_load(path.read_text()) or {}


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(read_utf8(path, ConfigError))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return data


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def apply_override(data: dict[str, Any], assignment: str) -> dict[str, Any]:
    """Apply one ``a.b.c=value`` override; the value is parsed as YAML (``3``, ``true``, ``[1,2]``)."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {assignment!r} must look like section.key=value")
    parts = key.strip().split(".")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    nested: dict[str, Any] = value
    for part in reversed(parts):
        nested = {part: nested}
    return deep_merge(data, nested)


def _describe(error: dict[str, Any], hints: dict[str, str] | None = None) -> str:
    location = ".".join(str(p) for p in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"unknown key '{location}'"
    got = error.get("input")
    shown = "" if isinstance(got, dict) else f" (got {got!r})"
    hint = None
    if error["type"] == "string_type":  # text was expected: was it YAML that made something else of it?
        hint = next((h for key, h in (hints or {}).items() if location == key or location.startswith(key + ".")), None)
        if hint is None and isinstance(got, (dict, list)):
            hint = (
                "YAML read the value as a "
                + ("mapping" if isinstance(got, dict) else "list")
                + ": quote it to mean text"
            )
    return f"'{location}': {error['msg']}{shown}" + (f"; {hint}" if hint else "")


def quoting_hint(assignment: str) -> tuple[str, str] | None:
    """``(key, hint)`` when YAML reads an override's value as something other than text
    (``task.template={question}`` is the mapping ``{question: null}``): the same override quoted so
    that YAML reads text, for a message to suggest; None when the value already reads as text."""
    import json
    import shlex

    key, _, raw = assignment.partition("=")
    raw = raw.strip()
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        return None  # apply_override keeps such a value as text
    if isinstance(value, str):
        return None
    kind = {dict: "a mapping", list: "a list"}.get(type(value), f"{type(value).__name__} {value!r}")
    quoted = shlex.quote(f"{key.strip()}={json.dumps(raw, ensure_ascii=False)}")
    return (
        key.strip(),
        f"YAML read {raw!r} as {kind}; if you meant the text, quote it for YAML inside the shell's quotes: "
        f"--set {quoted}",
    )


def build_config(cls: type[C], data: dict[str, Any], source: str = "config", hints: dict[str, str] | None = None) -> C:
    """``cls`` validated from ``data``; the first error as one ConfigError line (``hints``: dotted key ->
    advice appended when the error is at or below that key)."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"{source}: {_describe(errors[0], hints)}{more}") from None


def layered_config(
    cls: type[C], layers: list[tuple[str, dict[str, Any]]], overrides: list[str] | None, source: str
) -> C:
    """``cls``'s defaults <- each ``(name, data)`` layer <- ``--set`` overrides, validated.

    The base is the full dump of the defaults, not an empty dict: a section whose default differs
    from its class's (``score.star``, ``rl.optim``, ...) then keeps its other values when one key of
    it is set, instead of silently falling back to the class's generic defaults. Errors name the
    last layer given (``source`` when there is none).
    """
    data = cls().model_dump(mode="json")
    for name, layer in layers:
        data, source = deep_merge(data, layer), name
    for assignment in overrides or []:
        data = apply_override(data, assignment)
    hints = dict(hint for assignment in overrides or [] if (hint := quoting_hint(assignment)))
    return build_config(cls, data, source + (" with --set overrides" if overrides else ""), hints)


def load_config(
    stage: str | type[C], path: str | Path | None = None, overrides: list[str] | None = None
) -> StageConfig | C:
    """The one loader of every command's config: defaults <- the built-in YAML <- YAML file <- ``--set``
    overrides, validated.

    ``stage`` is a training stage's name (``STAGES``: its packaged ``configs/<stage>.yaml`` is the
    built-in layer) or a config class of a higher layer (``RLHFConfig``, ``FeedbackConfig``: its
    field defaults are the built-in layer).
    """
    if isinstance(stage, type):
        cls, source, layers = stage, stage.__name__, []
    elif stage in STAGES:
        cls, source = STAGES[stage], f"built-in {stage} config"
        layers = [(source, packaged_defaults(stage))]
    else:
        raise ConfigError(f"unknown stage {stage!r}; expected one of {sorted(STAGES)}")
    if path is not None:
        layers.append((str(path), read_yaml(path)))
    return layered_config(cls, layers, overrides, source)


def dump_config(config: BaseModel, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))


def config_changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Each dotted key whose value differs between two config dumps, as ``key: old -> new``."""
    changes = []
    for key in sorted(set(old) | set(new), key=str):
        before, after = old.get(key), new.get(key)
        if isinstance(before, dict) and isinstance(after, dict):
            changes += config_changes(before, after, f"{prefix}{key}.")
        elif before != after:
            changes.append(f"{prefix}{key}: {before!r} -> {after!r}")
    return changes
