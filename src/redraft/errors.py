"""Errors meant for the user: the CLI prints them as one line, without a traceback."""


class RedraftError(Exception):
    """A problem with the user's input or environment (bad config, missing file, bad data)."""


class ConfigError(RedraftError):
    """A configuration file or override that cannot be used."""


class DataError(RedraftError):
    """A dataset file that is missing or malformed."""


class TrainingError(RedraftError):
    """Training cannot go on (for example a non-finite loss)."""
