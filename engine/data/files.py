"""Your own data: a folder of images (labels from sub-folder names, factors from a `factors.csv`) or `.npy`/`.npz`
arrays (with an optional `factors` array)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .base import Dataset, DatasetError, images_from_array
from .factor_table import FACTORS_FILE, FactorTable, factors_from_array, read_factors_csv
from .npyio import check_size, npy_header, npz_headers, read_npy, read_npz_member

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
ACCEPTED_FORMATS = {"PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "MPO"}
IMAGE_KEYS = ("images", "imgs", "x", "x_train", "X", "data", "arr_0")
LABEL_KEYS = ("labels", "y", "y_train", "targets", "Y", "arr_1")
MAX_SOURCE_PIXELS = 40_000_000
MAX_IMAGES = 2_000_000
MAX_TOTAL_BYTES = 4 << 30
MAX_CLASSES = 10_000
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F", "P;gray"}


def _parse_size(size: str | int | None) -> int | None:
    if size is None or str(size).strip().lower() in ("", "auto", "native"):
        return None
    try:
        value = int(size)
    except ValueError:
        raise DatasetError(f"size must be a whole number of pixels, got {size!r}") from None
    if not 4 <= value <= 256:
        raise DatasetError(f"size must lie in 4…256 pixels, got {value}")
    return value


def _parse_channels(channels: str | int | None) -> int | None:
    if channels is None or str(channels).lower() in ("", "auto"):
        return None
    if str(channels) not in ("1", "3"):
        raise DatasetError(f"channels must be 1, 3 or auto, got {channels!r}")
    return int(channels)


# --- folders of images ----------------------------------------------------------------------------

def _visible(entries: list[Path]) -> list[Path]:
    """Entries that may be images: not hidden, and not the factors file."""
    return sorted(p for p in entries if not p.name.startswith(".") and p.name != FACTORS_FILE)


def _collect(root: Path) -> tuple[list[Path], list[int], tuple[str, ...] | None]:
    """Image files and labels: sub-folders are classes; files directly in root are unlabelled."""
    entries = _visible(list(root.iterdir()))
    subdirs = [p for p in entries if p.is_dir()]
    files = [p for p in entries if p.is_file()]
    if subdirs and files:
        raise DatasetError(f"{root}: mixes image files ({files[0].name}, …) with class sub-folders "
                           f"({subdirs[0].name}, …); put every image inside a class folder, or none")
    if not subdirs:
        if not files:
            raise DatasetError(f"{root}: the folder is empty (expected PNG/JPEG images or class sub-folders)")
        return files, [], None
    paths: list[Path] = []
    labels: list[int] = []
    for label, sub in enumerate(subdirs):
        inside = _visible(list(sub.iterdir()))
        nested = [p for p in inside if p.is_dir()]
        if nested:
            raise DatasetError(f"{nested[0]}: class folders must hold images, not further folders")
        if not inside:
            raise DatasetError(f"{sub}: the class folder is empty")
        paths += inside
        labels += [label] * len(inside)
    if len(subdirs) > MAX_CLASSES:
        raise DatasetError(f"{root}: {len(subdirs)} class folders is more than the {MAX_CLASSES} allowed")
    return paths, labels, tuple(p.name for p in subdirs)


def _probe(path: Path) -> tuple[tuple[int, int], bool]:
    """(width, height) and whether the image is grayscale, from its header only."""
    from PIL import Image, UnidentifiedImageError

    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise DatasetError(f"{path}: not an image file (expected PNG or JPEG, found {path.suffix or 'no suffix'})")
    try:
        with Image.open(path) as im:
            fmt, size, mode = im.format, im.size, im.mode
            gray = mode in GRAY_MODES or (mode == "P" and _palette_is_gray(im))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DatasetError(f"{path}: not a readable image ({exc})") from exc
    if fmt not in ACCEPTED_FORMATS:
        raise DatasetError(f"{path}: unsupported image format {fmt}")
    if size[0] < 1 or size[1] < 1 or size[0] * size[1] > MAX_SOURCE_PIXELS:
        raise DatasetError(f"{path}: image size {size[0]}×{size[1]} is absurd (limit "
                           f"{MAX_SOURCE_PIXELS:,} pixels)")
    return size, gray


def _palette_is_gray(im) -> bool:
    palette = im.getpalette() or []
    rgb = np.asarray(palette[: 3 * 256], dtype=np.int64).reshape(-1, 3)
    return bool((rgb == rgb[:, :1]).all())


def _to_8bit(im):
    """High bit-depth greyscale scaled to 0–255 by its bit depth (Pillow's convert("L") clips at 255, so a 16-bit
    PNG came out solid white): 16-bit modes ÷ 65535; 32-bit integers ÷ 65535 when they fit 16 bits (how 16-bit
    PNGs open in older Pillow), else ÷ 2³¹−1; floats as 0–1 when their maximum is ≤ 1, else 0–255."""
    from PIL import Image

    if not (im.mode.startswith("I;16") or im.mode in ("I", "F")):
        return im
    values = np.asarray(im, dtype=np.float64)
    top = float(values.max(initial=0.0))
    if im.mode.startswith("I;16"):
        full = 65535.0
    elif im.mode == "I":
        full = 65535.0 if top <= 65535 else float(2**31 - 1)
    else:
        full = 1.0 if top <= 1.0 else 255.0
    scaled = np.clip(np.rint(values * (255.0 / full)), 0, 255).astype(np.uint8)
    return Image.fromarray(scaled, mode="L")


def _decode(path: Path, size: int, channels: int) -> np.ndarray:
    """Pixels as H×W×C uint8: centre-cropped to a square, then resized (area filter) to size×size."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            im = _to_8bit(im).convert("L" if channels == 1 else "RGB")
            if im.size != (size, size):
                im = ImageOps.fit(im, (size, size), method=Image.Resampling.BOX if min(im.size) >= size
                                  else Image.Resampling.BICUBIC)
            arr = np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as exc:
        raise DatasetError(f"{path}: the image data is corrupt ({exc})") from exc
    return arr.reshape(size, size, channels)


def load_image_folder(root: Path, size: str | int | None = None, channels: str | int | None = None,
                      factors: str | None = None) -> Dataset:
    """Every readable image under `root` (checked by header first), resized to size×size; sub-folders become labels.

    Files that cannot be read as images are skipped and listed in `extra["skipped"]` (name, reason); only a folder
    with no readable image is refused. A `factors.csv` in the folder (or `factors=PATH`) makes the set a factor
    world (engine/data/factor_table.py).
    Without `size`, images keep their size when they all share one square size in 4…256, else 64.
    Without `channels`, the set is grayscale when every image is, else RGB.
    """
    wanted = _parse_size(size)
    wanted_channels = _parse_channels(channels)
    paths, labels, class_names = _collect(root)
    if len(paths) > MAX_IMAGES:
        raise DatasetError(f"{root}: {len(paths):,} images is more than the {MAX_IMAGES:,} allowed")
    skipped: list[tuple[str, str]] = []
    probes: dict[int, tuple[tuple[int, int], bool]] = {}
    for i, p in enumerate(paths):
        try:
            probes[i] = _probe(p)
        except DatasetError as exc:
            skipped.append((_relative(p, root), _reason(exc, p)))
    if not probes:
        _refuse_unreadable(root, skipped)
    while True:  # twice at most: a file whose data fails to decode no longer decides the size or the channels
        size_now, channels_now = _native_format(probes, wanted, wanted_channels)
        total = len(probes) * size_now * size_now * channels_now
        if total > MAX_TOTAL_BYTES:
            raise DatasetError(f"{root}: {len(probes):,} images at {size_now}×{size_now}×{channels_now} need "
                               f"{total / 2**30:.1f} GiB, over the {MAX_TOTAL_BYTES / 2**30:.0f} GiB limit")
        images = np.empty((len(probes), size_now, size_now, channels_now), dtype=np.uint8)
        kept: list[int] = []
        for i in list(probes):
            try:
                images[len(kept)] = _decode(paths[i], size_now, channels_now)
            except DatasetError as exc:
                skipped.append((_relative(paths[i], root), _reason(exc, paths[i])))
                del probes[i]
                continue
            kept.append(i)
        if not kept:
            _refuse_unreadable(root, skipped)
        if _native_format(probes, wanted, wanted_channels) == (size_now, channels_now):
            break
    wanted, wanted_channels = size_now, channels_now
    images = images[:len(kept)]
    skipped.sort()
    kind = "RGB" if wanted_channels == 3 else "grayscale"
    classes = f", {len(class_names)} classes from sub-folders" if class_names else ", unlabelled"
    skipped_note = f"; {len(skipped):,} unreadable file(s) skipped" if skipped else ""
    table = _folder_factors(root, factors, [_relative(paths[i], root) for i in kept], {name for name, _ in skipped})
    factor_note = f", {table.spec.num_factors} factors from {FACTORS_FILE}" if table is not None else ""
    return Dataset(
        name=root.name or str(root),
        description=f"{len(kept):,} images from {root}, {wanted}×{wanted} {kind}{classes}{factor_note}{skipped_note}",
        images=torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))),
        labels=torch.tensor([labels[i] for i in kept], dtype=torch.int64) if class_names else None,
        class_names=class_names,
        factors=None if table is None else table.classes,
        factor_spec=None if table is None else table.spec,
        extra={"path": str(root), "skipped": skipped,
               **({"factor_labels": table.labels} if table is not None else {})},
    )


def _native_format(probes: dict[int, tuple[tuple[int, int], bool]], size: int | None,
                   channels: int | None) -> tuple[int, int]:
    """(size, channels) of the set: as asked, else the images' own square size (64 when they differ) and grayscale
    when every image is."""
    if size is None:
        sizes = {s for s, _ in probes.values()}
        only = next(iter(sizes))
        size = only[0] if len(sizes) == 1 and only[0] == only[1] and 4 <= only[0] <= 256 else 64
    if channels is None:
        channels = 1 if all(gray for _, gray in probes.values()) else 3
    return size, channels


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _reason(exc: DatasetError, path: Path) -> str:
    """A skipped file's reason without the path the message starts with."""
    return str(exc).removeprefix(f"{path}: ")


def _refuse_unreadable(root: Path, skipped: list[tuple[str, str]]) -> None:
    first = "; ".join(f"{root / name}: {reason}" for name, reason in skipped[:3])
    more = f" (and {len(skipped) - 3} more)" if len(skipped) > 3 else ""
    raise DatasetError(f"{root}: none of its {len(skipped)} file(s) could be read as an image: {first}{more}")


def _folder_factors(root: Path, factors: str | None, image_names: list[str],
                    skipped: set[str]) -> FactorTable | None:
    """The folder's factor table: `factors=PATH`, else `factors.csv` inside the folder, else None (rows of skipped
    files are left out)."""
    if factors:
        path = Path(factors).expanduser()
        if not path.is_absolute():
            path = root / path
        if not path.is_file():
            raise DatasetError(f"{path}: no such factors file")
    else:
        path = root / FACTORS_FILE
        if not path.is_file():
            return None
    return read_factors_csv(path, image_names, skipped)


def skipped_files_text(dataset: Dataset, first: int = 5) -> str:
    """"N unreadable file(s) skipped: a.png, b.png and 3 more" ("" when none was); `skipped_files_details` has why."""
    skipped = dataset.extra.get("skipped") or []
    if not skipped:
        return ""
    names = ", ".join(name for name, _ in skipped[:first])
    more = f" and {len(skipped) - first:,} more" if len(skipped) > first else ""
    return f"{len(skipped):,} unreadable file(s) skipped: {names}{more}"


def skipped_files_details(dataset: Dataset) -> str:
    """One line per skipped file: "name: why it could not be read"."""
    return "\n".join(f"{name}: {reason}" for name, reason in dataset.extra.get("skipped") or [])


# --- arrays ---------------------------------------------------------------------------------------

def _check_labels(labels: np.ndarray, n: int, source: str) -> torch.Tensor:
    if labels.ndim != 1:
        raise DatasetError(f"{source}: labels must be one-dimensional, got shape {labels.shape}")
    if labels.shape[0] != n:
        raise DatasetError(f"{source}: {n} images but {labels.shape[0]} labels")
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all() or not (labels == np.round(labels)).all():
            raise DatasetError(f"{source}: labels must be whole numbers (found NaN, Inf or fractions)")
    elif labels.dtype.kind not in "iub":
        raise DatasetError(f"{source}: labels must be integers, got {labels.dtype}")
    out = labels.astype(np.int64)
    if out.size and (out.min() < 0 or out.max() >= MAX_CLASSES):
        raise DatasetError(f"{source}: labels must lie in 0…{MAX_CLASSES - 1}, found {out.min()}…{out.max()}")
    return torch.from_numpy(out)


def _image_header_check(shape: tuple[int, ...], source: str) -> None:
    if len(shape) not in (3, 4):
        raise DatasetError(f"{source}: images must have 3 or 4 dimensions (N×H×W, N×H×W×C or N×C×H×W), "
                           f"got shape {shape}")
    if shape[0] == 0:
        raise DatasetError(f"{source}: the array holds no images")
    if shape[0] > MAX_IMAGES or any(s > 4096 for s in shape[1:]):
        raise DatasetError(f"{source}: shape {shape} is absurd for an image array")


def _from_arrays(images: np.ndarray, labels: np.ndarray | None, source: str, labels_source: str,
                 size: int | None, name: str, path: Path, factors: FactorTable | None = None) -> Dataset:
    tensor = images_from_array(images, source)
    label_tensor = None if labels is None else _check_labels(labels, tensor.shape[0], labels_source)
    if size is not None and tensor.shape[-1] != size or size is not None and tensor.shape[-2] != size:
        tensor = torch.nn.functional.interpolate(tensor.float(), size=(size, size), mode="area"
                                                 if tensor.shape[-1] >= size else "bilinear")
        tensor = tensor.round_().clamp_(0, 255).to(torch.uint8)
    n_classes = "" if label_tensor is None else f", {int(label_tensor.max()) + 1} classes"
    if factors is not None:
        n_classes += f", {factors.spec.num_factors} factors"
    return Dataset(
        name=name,
        description=f"{tensor.shape[0]:,} images from {path}, {tensor.shape[-2]}×{tensor.shape[-1]}"
                    f"×{tensor.shape[1]}{n_classes}",
        images=tensor,
        labels=label_tensor,
        class_names=None if label_tensor is None else tuple(str(i) for i in range(int(label_tensor.max()) + 1)),
        factors=None if factors is None else factors.classes,
        factor_spec=None if factors is None else factors.spec,
        extra={"path": str(path), **({"factor_labels": factors.labels} if factors is not None else {})},
    )


def load_array_file(path: Path, size: str | int | None = None, images_key: str | None = None,
                    labels_key: str | None = None, labels: str | None = None) -> Dataset:
    """`.npy` (images; `labels=other.npy` optional) or `.npz` (keys images/x/x_train… and labels/y…)."""
    wanted = _parse_size(size)
    if path.suffix == ".npy":
        header = npy_header(path)
        _image_header_check(header.shape, str(path))
        check_size(header, str(path))
        label_arr = None
        labels_source = ""
        if labels:
            labels_path = Path(labels).expanduser()
            lh = npy_header(labels_path)
            if len(lh.shape) != 1 or lh.shape[0] != header.shape[0]:
                raise DatasetError(f"{labels_path}: expected {header.shape[0]} labels, got shape {lh.shape}")
            label_arr, labels_source = read_npy(labels_path), str(labels_path)
        return _from_arrays(read_npy(path), label_arr, str(path), labels_source, wanted, path.stem, path)
    headers = npz_headers(path)
    if {"imgs", "latents_classes"} <= headers.keys():
        from .dsprites import load_official_npz

        return load_official_npz(path)
    x_key = images_key or next((k for k in IMAGE_KEYS if k in headers), None)
    if x_key is None or x_key not in headers:
        raise DatasetError(f"{path}: no image array found (looked for {', '.join(IMAGE_KEYS)}; "
                           f"the archive holds {', '.join(sorted(headers))})")
    y_key = labels_key or next((k for k in LABEL_KEYS if k in headers and k != x_key), None)
    if labels_key and labels_key not in headers:
        raise DatasetError(f"{path}: no array named {labels_key!r} (found {', '.join(sorted(headers))})")
    hx = headers[x_key]
    _image_header_check(hx.shape, f"{path} [{x_key}]")
    if y_key is not None:
        hy = headers[y_key]
        if len(hy.shape) != 1 or hy.shape[0] != hx.shape[0]:
            raise DatasetError(f"{path}: {hx.shape[0]} images in {x_key!r} but {y_key!r} has shape {hy.shape}")
    table = _npz_factors(path, headers, hx.shape[0]) if "factors" in headers and x_key != "factors" else None
    images = read_npz_member(path, x_key, headers)
    label_arr = None if y_key is None else read_npz_member(path, y_key, headers)
    return _from_arrays(images, label_arr, f"{path} [{x_key}]", f"{path} [{y_key}]", wanted, path.stem, path,
                        table)


def _npz_factors(path: Path, headers: dict, n: int) -> FactorTable:
    """The archive's `factors` array (n×K), named by an optional `factor_names` array of K strings."""
    header = headers["factors"]
    if len(header.shape) not in (1, 2) or header.shape[0] != n:
        raise DatasetError(f"{path} [factors]: expected shape ({n}, K) for {n} images, got {header.shape}")
    names = None
    if "factor_names" in headers:
        raw = read_npz_member(path, "factor_names", headers)
        k = 1 if len(header.shape) == 1 else header.shape[1]
        if raw.dtype.kind != "U" or raw.shape != (k,):
            raise DatasetError(f"{path} [factor_names]: expected {k} strings, got {raw.dtype} {raw.shape}")
        names = [str(v) for v in raw]
        if len(set(names)) != len(names) or not all(names):
            raise DatasetError(f"{path} [factor_names]: names must be distinct and non-empty, got {names}")
    return factors_from_array(read_npz_member(path, "factors", headers), n, f"{path} [factors]", names)


def load_path(path: str | Path, **options: str) -> Dataset:
    """A folder of images or an `.npy`/`.npz` file; DatasetError names the file and the problem."""
    p = Path(path).expanduser()
    try:
        return _load_path(p, options)
    except DatasetError as exc:
        if str(p) in str(exc):
            raise
        raise DatasetError(f"{p}: {exc}") from None


def _load_path(p: Path, options: dict[str, str]) -> Dataset:
    if not p.exists():
        raise DatasetError(f"{p}: no such file or folder")
    if p.is_dir():
        allowed = {"size", "channels", "factors"}
        unknown = set(options) - allowed
        if unknown:
            raise DatasetError(f"{p}: unknown option(s) {', '.join(sorted(unknown))} for an image folder "
                               f"(allowed: {', '.join(sorted(allowed))})")
        return load_image_folder(p, **options)
    if p.suffix in (".npy", ".npz"):
        allowed = {"size", "images_key", "labels_key", "labels"}
        unknown = set(options) - allowed
        if unknown:
            raise DatasetError(f"{p}: unknown option(s) {', '.join(sorted(unknown))} for an array file "
                               f"(allowed: {', '.join(sorted(allowed))})")
        return load_array_file(p, **options)
    raise DatasetError(f"{p}: unsupported file type {p.suffix or '(none)'}: give a folder of images, "
                       "a .npy or a .npz file")
