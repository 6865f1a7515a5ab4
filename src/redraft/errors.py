"""Errors meant for the user: the CLI prints them as one line, without a traceback; and warnings,
printed once per launch to stderr."""

import os
import sys


def warn(message: str) -> None:
    """Print ``warning: message`` to stderr, on rank 0 only (a multi-process launch runs every
    stage in each process)."""
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"warning: {message}", file=sys.stderr, flush=True)


class RedraftError(Exception):
    """A problem with the user's input or environment (bad config, missing file, bad data)."""


class ConfigError(RedraftError):
    """A configuration file or override that cannot be used."""


class DataError(RedraftError):
    """A dataset file that is missing or malformed."""


class TrainingError(RedraftError):
    """Training cannot go on (for example a non-finite loss)."""
