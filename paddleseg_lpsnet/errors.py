"""Errors a user can act on. The `lpsnet` command prints them as one line and exits 2."""

__all__ = ["LPSNetError", "ConfigError", "DataError", "CheckpointError", "TrainingError"]


class LPSNetError(Exception):
    """Base class: the message names the culprit (file, key, value) and what was expected."""


class ConfigError(LPSNetError, ValueError):
    """A config file or command-line option is wrong."""


class DataError(LPSNetError, ValueError):
    """A dataset root, file list, image or label is missing or invalid."""


class CheckpointError(LPSNetError, ValueError):
    """A checkpoint is missing, unreadable, foreign or of another architecture."""


class TrainingError(LPSNetError, RuntimeError):
    """Training cannot go on: the loss or the weights became NaN or Inf."""
