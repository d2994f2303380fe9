"""`load_dataset(spec)`: a registered name or a file/folder path, with options.

Spec grammar: ``NAME_OR_PATH[?key=value&key=value]``, e.g. ``digits``, ``dsprites?subset=20000``,
``dsprites?shape=heart``, ``/data/faces?size=32``. Options may also be passed as keyword arguments.
"""

from __future__ import annotations

from collections.abc import Callable

from .base import Dataset, DatasetError
from .digits import load_digits_dataset

Loader = Callable[..., Dataset]

_REGISTRY: dict[str, Loader] = {
    "digits": lambda size="8", **kw: load_digits_dataset(size=int(size), **kw),
}


def register(name: str, loader: Loader) -> None:
    _REGISTRY[name] = loader


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split ``name?k=v&k2=v2`` into (name, {k: v})."""
    if not isinstance(spec, str) or not spec.strip():
        raise DatasetError("empty dataset spec")
    base, _, query = spec.strip().partition("?")
    options: dict[str, str] = {}
    for part in filter(None, query.split("&")):
        key, eq, value = part.partition("=")
        if not eq or not key:
            raise DatasetError(f"{spec}: option {part!r} is not key=value")
        options[key.strip()] = value.strip()
    return base, options


def load_dataset(spec: str, **options) -> Dataset:
    """Load a dataset by registered name or path; raises DatasetError with a clear cause."""
    name, opts = parse_spec(spec)
    opts.update({k: str(v) for k, v in options.items()})
    loader = _REGISTRY.get(name)
    if loader is None:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(sorted(_REGISTRY))} "
                           "or a path to a file or folder")
    try:
        ds = loader(**opts)
    except TypeError as exc:
        raise DatasetError(f"{name}: bad option ({exc})") from exc
    except ValueError as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(f"{name}: {exc}") from exc
    if not ds.spec:
        ds.spec = spec
    return ds


def available_datasets() -> list[dict]:
    """What `datasets` lists: name, status (embedded/found/missing), and how to get it."""
    return [{"name": n, "status": "embedded"} for n in sorted(_REGISTRY)]
