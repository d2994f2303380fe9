"""Planning a sweep: `parse_grid("beta=1,2,4,8")` and `plan_sweep(config, grid, seeds, out_dir)` → the runs (the
Cartesian product of the grid × seeds), each with its full config and its own folder."""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..errors import ConfigError
from ..models import model_class

TRAINING_GRID_KEYS = ("lr", "batch_size", "weight_decay", "epochs", "max_steps")


def _parse_value(text: str) -> int | float | str:
    text = text.strip()
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    try:
        value = float(text)
    except ValueError:
        return text
    if not math.isfinite(value):
        raise ConfigError(f"grid value {text!r} is not a finite number")
    return value


def parse_grid(text: str | list[str] | tuple[str, ...]) -> dict[str, list[Any]]:
    """`"beta=1,2,4,8"` → {"beta": [1, 2, 4, 8]}; several parameters: `"beta=1,4;latent_dim=6,10"` or a list."""
    parts = [text] if isinstance(text, str) else list(text)
    grid: dict[str, list[Any]] = {}
    for part in parts:
        for item in str(part).split(";"):
            item = item.strip()
            if not item:
                continue
            name, sep, values = item.partition("=")
            name = name.strip()
            if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ConfigError(f"grid entry {item!r}: expected NAME=V1,V2,… (e.g. beta=1,2,4,8)")
            parsed = [_parse_value(v) for v in values.split(",") if v.strip()]
            if not parsed:
                raise ConfigError(f"grid entry {item!r}: no values after '='")
            if name in grid:
                raise ConfigError(f"grid parameter {name!r} is given twice")
            if len(set(map(repr, parsed))) != len(parsed):
                raise ConfigError(f"grid entry {item!r}: a value is repeated")
            grid[name] = parsed
    if not grid:
        raise ConfigError("the grid is empty; give at least one NAME=V1,V2,… (e.g. beta=1,2,4,8)")
    return grid


def format_value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def run_name(values: dict[str, Any], seed: int) -> str:
    """Folder name of a run: `beta=4_seed0` (file-system safe)."""
    parts = [f"{k}={format_value(v)}" for k, v in values.items()] + [f"seed{seed}"]
    return re.sub(r"[^A-Za-z0-9=._+-]", "-", "_".join(parts))



@dataclass(frozen=True)
class SweepRun:
    """One planned run: the grid values it takes, its seed, its full config (out_dir = its folder, or None)."""

    index: int
    name: str
    values: dict[str, Any]
    seed: int
    config: TrainConfig = field(compare=False)

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={format_value(v)}" for k, v in self.values.items())


def plan_sweep(base: TrainConfig, grid: dict[str, list[Any]], seeds: int = 1, out_dir: str | Path | None = None,
               max_steps: int | None = None) -> list[SweepRun]:
    """The runs of a sweep: every combination of the grid × `seeds` seeds (base.seed, base.seed + 1, …)."""
    if not isinstance(seeds, int) or isinstance(seeds, bool) or not 1 <= seeds <= 100:
        raise ConfigError(f"seeds must be an integer in [1, 100], got {seeds!r}")
    cls = model_class(base.family)
    hparam_names = {h.name for h in cls.all_hparams()}
    unknown = [k for k in grid if k not in hparam_names and k not in TRAINING_GRID_KEYS]
    if unknown:
        raise ConfigError(f"cannot sweep {', '.join(unknown)} for family {base.family!r}; sweepable: "
                          f"{', '.join(sorted(hparam_names) + list(TRAINING_GRID_KEYS))}")
    runs: list[SweepRun] = []
    combos = list(itertools.product(*grid.values()))
    for combo in combos:
        values = dict(zip(grid, combo, strict=True))
        hparams = dict(base.hparams)
        training: dict[str, Any] = {}
        for k, v in values.items():
            if k in TRAINING_GRID_KEYS:
                training[k] = float(v) if k in ("lr", "weight_decay") and isinstance(v, int) else v
            else:
                hparams[k] = v
        cls.validate_hparams(hparams)
        for s in range(seeds):
            seed = base.seed + s
            name = run_name(values, seed)
            folder = str(Path(out_dir) / name) if out_dir is not None else None
            changes: dict[str, Any] = {"hparams": hparams, "seed": seed, "out_dir": folder, **training}
            if max_steps is not None:
                changes["max_steps"] = int(max_steps)
            runs.append(SweepRun(len(runs), name, values, seed, base.replace(**changes)))
    return runs
