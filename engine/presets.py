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


DERIVED_HPARAMS = frozenset({"dataset_size"})  # filled in from the data when a session starts, not a recipe choice


def matching_preset(config: TrainConfig) -> str | None:
    """The preset a run was made from, recognised by its recipe: the same dataset, family, hyperparameters (the
    family's defaults filled in, derived values ignored), batch size, learning rate and weight decay. Run lengths,
    seeds, devices and folders do not matter; where several presets share the recipe, the one whose description the
    run carries wins, then the default preset. None when no preset matches (or the family is unknown here)."""
    from .models.base import families

    cls = families().get(config.family)
    if cls is None:
        return None

    def recipe(cfg: TrainConfig) -> tuple | None:
        try:
            values = cls.validate_hparams({k: v for k, v in cfg.hparams.items() if k not in DERIVED_HPARAMS})
        except ConfigError:
            return None
        return (cfg.dataset, cfg.family, sorted(values.items()), cfg.batch_size, cfg.lr, cfg.weight_decay)

    wanted = recipe(config)
    if wanted is None:
        return None
    matches = []
    for name, description in list_presets():
        try:
            preset = load_preset(name)
        except ConfigError:
            continue
        if preset.family == config.family and recipe(preset) == wanted:
            matches.append((description != config.description, name != DEFAULT_PRESET, name))
    return min(matches)[2] if matches else None  # same recipe in several presets: the one the run describes
