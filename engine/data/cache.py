"""A small on-disk cache of derived arrays in the user cache directory, rebuilt when missing or corrupt."""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .base import DatasetError


def cache_dir() -> Path:
    """`$XDG_CACHE_HOME/latent-explorer`, or `~/.cache/latent-explorer`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "latent-explorer"


def cached_arrays(name: str, key: str, build: Callable[[], dict[str, np.ndarray]],
                  check: Callable[[dict[str, np.ndarray]], bool]) -> dict[str, np.ndarray]:
    """Arrays stored as `<cache>/<name>.npz` under `key`; built (and written atomically) when the file is
    missing, unreadable, from another key, or fails `check`. A cache that cannot be written is skipped."""
    path = cache_dir() / f"{name}.npz"
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
        if str(arrays.pop("_key", np.array(""))) == key and check(arrays):
            return arrays
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, DatasetError):
        pass
    arrays = build()
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{name}.", suffix=".npz")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, _key=np.array(key), **arrays)
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return arrays
