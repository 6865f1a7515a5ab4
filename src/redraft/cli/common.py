"""What every command module of the CLI shares: the --config and --set options, and the console."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config file, merged over the built-in defaults.")
]


def set_option(example: str):
    """The --set option, its help showing ``example``, a key of the command's own config (a test
    checks every example against the config of the command that shows it)."""
    return Annotated[
        list[str] | None,
        typer.Option(
            "--set", "-s", help=f"Override one key, e.g. --set {example} (repeatable; values parsed as YAML)."
        ),
    ]


def say(message: str) -> None:
    from redraft.training.logging import print_once

    print_once(console, message)
