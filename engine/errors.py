"""The engine's error family: each says which input is wrong and what is allowed."""

from __future__ import annotations

from .data.base import DatasetError


class ConfigError(ValueError):
    """A configuration, preset or hyperparameter is invalid (names the key and its allowed range)."""


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, foreign or unsafe (names the file and the problem)."""


__all__ = ["CheckpointError", "ConfigError", "DatasetError"]
