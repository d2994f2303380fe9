"""Presets: `resources/presets/NAME.toml`, in TrainConfig's TOML format (see engine/config.py)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from .config import TrainConfig
from .errors import ConfigError

PRESET_DIR = Path(__file__).resolve().parent.parent / "resources" / "presets"
DEFAULT_PRESET = "dsprites-disentangle"  # the first-run default: a code that disentangles within minutes


def preset_path(name: str) -> Path:
    path = PRESET_DIR / f"{name}.toml"
    if not name or "/" in name or "\\" in name or not path.is_file():
        known = ", ".join(n for n, _ in list_presets()) or "none"
        raise ConfigError(f"unknown preset {name!r}; known: {known}")
    return path


def list_presets() -> list[tuple[str, str]]:
    """(name, description) of every preset, sorted by name."""
    out = []
    for path in sorted(PRESET_DIR.glob("*.toml")):
        try:
            description = str(tomllib.loads(path.read_text(encoding="utf-8")).get("description", ""))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            description = "(unreadable preset file)"
        out.append((path.stem, description))
    return out


def load_preset(name: str) -> TrainConfig:
    """The preset's TrainConfig (its hyperparameters are checked by the model family when a session starts)."""
    return TrainConfig.load(preset_path(name))
