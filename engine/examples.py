"""Shipped example models: `resources/examples/NAME.safetensors` (float16 checkpoints) listed in `manifest.json`.

`example:NAME` works wherever a checkpoint path does (CLI, window, resume): `resolve_checkpoint_path` is called by
the checkpoint reader. The manifest records how each model was made (command, seed, steps, wall time, machine) and
the scores `eval` reported for it; `scripts/make_examples.py` (`make examples`) regenerates models and manifest.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CheckpointError

EXAMPLE_PREFIX = "example:"
MANIFEST_NAME = "manifest.json"
DEFAULT_EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "resources" / "examples"
MAX_EXAMPLE_BYTES = 5 * 1024 * 1024


def examples_dir() -> Path:
    """The examples folder: $LATENT_EXPLORER_EXAMPLES when set, else resources/examples."""
    override = os.environ.get("LATENT_EXPLORER_EXAMPLES")
    return Path(override) if override else DEFAULT_EXAMPLES_DIR


@dataclass(frozen=True)
class Example:
    """One manifest entry."""

    name: str
    description: str
    file: str
    command: str
    eval_command: str
    seed: int
    steps: int
    wall_s: float
    machine: str
    scores: dict[str, float] = field(default_factory=dict)
    dataset: str = ""
    family: str = ""
    folder: Path = DEFAULT_EXAMPLES_DIR

    @property
    def path(self) -> Path:
        return self.folder / self.file

    @property
    def reference(self) -> str:
        """How the CLI and the window name it: `example:NAME`."""
        return EXAMPLE_PREFIX + self.name


_REQUIRED = {"name": str, "description": str, "file": str, "command": str, "eval_command": str, "seed": int,
             "steps": int, "wall_s": (int, float), "machine": str, "scores": dict}


def read_manifest(folder: Path | None = None) -> list[dict[str, Any]]:
    """The manifest's raw entries ([] when there is no manifest yet); a malformed manifest → CheckpointError."""
    path = (folder or examples_dir()) / MANIFEST_NAME
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: the examples manifest is unreadable ({exc})") from None
    entries = data.get("examples") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise CheckpointError(f"{path}: the examples manifest must be a table with a list 'examples'")
    return entries


def list_examples(folder: Path | None = None) -> list[Example]:
    """Every example the manifest lists, in its order (files are not opened here)."""
    folder = folder or examples_dir()
    out = []
    for entry in read_manifest(folder):
        for key, kind in _REQUIRED.items():
            if not isinstance(entry.get(key), kind) or isinstance(entry.get(key), bool):
                raise CheckpointError(f"{folder / MANIFEST_NAME}: example {entry.get('name', '?')!r} has no valid "
                                      f"{key!r}")
        name, file = entry["name"], entry["file"]
        if not name or "/" in file or "\\" in file or file.startswith("."):
            raise CheckpointError(f"{folder / MANIFEST_NAME}: example {name!r} names a file outside the folder")
        out.append(Example(**{k: entry[k] for k in _REQUIRED}, dataset=str(entry.get("dataset", "")),
                           family=str(entry.get("family", "")), folder=folder))
    return out


def find_example(name: str, folder: Path | None = None) -> Example:
    for example in list_examples(folder):
        if example.name == name:
            return example
    known = ", ".join(e.name for e in list_examples(folder)) or "none are installed"
    raise CheckpointError(f"{EXAMPLE_PREFIX}{name}: no such example model; shipped: {known}")


def resolve_checkpoint_path(path: str | Path) -> Path:
    """`example:NAME` → the example's file; any other path unchanged."""
    text = str(path)
    if text.startswith(EXAMPLE_PREFIX):
        return find_example(text[len(EXAMPLE_PREFIX):]).path
    return Path(path)
