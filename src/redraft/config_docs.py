"""Every config key explains itself: a config as commented YAML, and the Markdown config reference.

Both read the ``description`` of each pydantic field (:mod:`redraft.config` and the sections built
on it), so the help text lives next to the default it explains. ``redraft config show STAGE
--explain`` prints :func:`explain_config`; ``redraft config reference`` prints
:func:`render_reference`, which is docs/config-reference.md (a test keeps the file in sync).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel

WIDTH = 100  # of the comment lines of explain_config


def yaml_value(value: Any) -> str:
    """``value`` as one line of YAML (a JSON string where YAML would fold a multi-line string)."""
    if isinstance(value, str) and any(ch in value for ch in "\n\r\t"):
        return json.dumps(value, ensure_ascii=False)
    text = yaml.safe_dump(value, default_flow_style=True, width=float("inf"), allow_unicode=True)
    return text.removesuffix("\n").removesuffix("\n...")


def explain_config(config: BaseModel, indent: int = 0, values: dict[str, Any] | None = None) -> str:
    """The config as YAML (the values of ``redraft config show``) with each key's description as a
    comment above it. It loads back to the same values. ``values`` is the section as its parent dumps
    it: a key the parent leaves out (one it sets itself) is not shown."""
    lines: list[str] = []
    pad = " " * indent
    values = config.model_dump(mode="json") if values is None else values
    for name, field in type(config).model_fields.items():
        if name not in values:
            continue
        value = getattr(config, name)
        if indent == 0 and isinstance(value, BaseModel) and lines:
            lines.append("")
        for line in textwrap.wrap(field.description or "", WIDTH - indent - 2, break_on_hyphens=False):
            lines.append(f"{pad}# {line}")
        if isinstance(value, BaseModel):
            lines.append(f"{pad}{name}:")
            lines.append(explain_config(value, indent + 2, values[name]).rstrip("\n"))
        else:
            lines.append(f"{pad}{name}: {yaml_value(values[name])}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Table:
    """The plain keys of one section: (dotted key, value, description) rows."""

    key: str  # dotted path of the section ("" for the top level)
    description: str
    rows: tuple[tuple[str, Any, str], ...]


def section_tables(
    config: BaseModel, key: str = "", description: str = "", values: dict[str, Any] | None = None
) -> Iterator[Table]:
    """One table per section, depth first: a section's own keys, then its subsections. ``values`` is the
    section as its parent dumps it: a key the parent leaves out (one it sets itself) gets no row."""
    values = config.model_dump(mode="json") if values is None else values
    fields = {name: field for name, field in type(config).model_fields.items() if name in values}
    prefix = f"{key}." if key else ""
    rows = tuple(
        (prefix + name, values[name], field.description or "")
        for name, field in fields.items()
        if not isinstance(getattr(config, name), BaseModel)
    )
    if rows:
        yield Table(key, description, rows)
    for name, field in fields.items():
        value = getattr(config, name)
        if isinstance(value, BaseModel):
            yield from section_tables(value, prefix + name, field.description or "", values[name])


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _anchor(title: str) -> str:
    """GitHub's anchor of a Markdown heading (backticks dropped, spaces to dashes)."""
    kept = "".join(ch for ch in title.lower() if ch.isalnum() or ch in " -_")
    return kept.replace(" ", "-")


def _same_keys_and_values(a: BaseModel, b: BaseModel) -> bool:
    return list(section_tables(a)) == list(section_tables(b))


def render_reference(commands: list[tuple[str, str, BaseModel]], preamble: str = "") -> str:
    """Markdown: for each ``(command, what it does, its default config)``, every section of the
    config as a table of key, default and description. Commands whose configs have the same keys
    and defaults share one entry."""
    groups: list[tuple[list[tuple[str, str]], BaseModel]] = []
    for command, summary, config in commands:
        same = next((group for group in groups if _same_keys_and_values(group[1], config)), None)
        if same:
            same[0].append((command, summary))
        else:
            groups.append(([(command, summary)], config))
    out = ["# Config reference", ""] + ([preamble.strip(), ""] if preamble else [])
    titles = [" · ".join(f"`{command}`" for command, _ in described) for described, _ in groups]
    out += ["Commands: " + ", ".join(f"[{title}](#{_anchor(title)})" for title in titles), ""]
    for title, (described, config) in zip(titles, groups):
        out += [f"## {title}", ""]
        if len(described) == 1:
            out += [described[0][1], ""]
        else:
            out += [" ".join(f"`{command}`: {summary}" for command, summary in described), ""]
        for table in section_tables(config):
            heading = f"`{table.key}`" if table.key else "top-level keys"
            out += [f"### {heading}", ""]
            if table.description:
                out += [table.description[0].upper() + table.description[1:] + ".", ""]
            out += ["| key | default | description |", "|---|---|---|"]
            out += [f"| `{key}` | `{_cell(yaml_value(value))}` | {_cell(text)} |" for key, value, text in table.rows]
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def undescribed_fields(model: type[BaseModel], seen: set[type] | None = None) -> list[str]:
    """``Class.field`` for every field of ``model`` and its subsections that has no description."""
    seen = set() if seen is None else seen
    if model in seen:
        return []
    seen.add(model)
    missing = []
    for name, field in model.model_fields.items():
        if not field.description:
            missing.append(f"{model.__name__}.{name}")
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            missing += undescribed_fields(annotation, seen)
    return missing
