"""Safe `.npy`/`.npz` access: read headers (shape, dtype) before any data, never unpickle, stream big members."""

from __future__ import annotations

import math
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import DatasetError

MAX_ARRAY_BYTES = 4 << 30
_READ_ERRORS = (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error, RuntimeError)


@dataclass(frozen=True)
class ArrayHeader:
    """What a `.npy` header promises: shape, dtype and memory order."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def _read_header(stream, source: str, allow_object: bool = False) -> ArrayHeader:
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise DatasetError(f"{source}: unsupported .npy format version {version}")
    except DatasetError:
        raise
    except _READ_ERRORS as exc:
        raise DatasetError(f"{source}: not a valid .npy array header ({exc})") from exc
    if dtype.hasobject and not allow_object:
        raise DatasetError(f"{source}: holds Python objects (pickled data), which are never loaded")
    if any(int(s) < 0 for s in shape):
        raise DatasetError(f"{source}: negative dimension in shape {shape}")
    return ArrayHeader(tuple(int(s) for s in shape), dtype, bool(fortran))


def npz_headers(path: Path) -> dict[str, ArrayHeader]:
    """Headers of every array in an `.npz` archive, without reading any array data.

    Object (pickled) members are listed, so an archive such as the official dSprites file with its pickled
    metadata stays usable, but `read_npz_member` refuses to read them."""
    out: dict[str, ArrayHeader] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                key = info.filename[: -len(".npy")]
                with archive.open(info) as member:
                    header = _read_header(member, f"{path} [{key}]", allow_object=True)
                    data_start = member.tell()
                if not header.dtype.hasobject and info.file_size - data_start < header.nbytes:
                    raise DatasetError(f"{path} [{key}]: truncated or lying header: it promises {header.nbytes} "
                                       f"bytes of data, the archive member holds {info.file_size - data_start}")
                out[key] = header
    except DatasetError:
        raise
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: file not found") from exc
    except _READ_ERRORS as exc:
        raise DatasetError(f"{path}: not a readable .npz archive ({exc})") from exc
    if not out:
        raise DatasetError(f"{path}: the .npz archive holds no arrays")
    return out


def npy_header(path: Path) -> ArrayHeader:
    """Header of a `.npy` file, checking its size limit and that the file holds what it promises."""
    try:
        with open(path, "rb") as f:
            header = _read_header(f, str(path))
            data_start = f.tell()
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: file not found") from exc
    check_size(header, str(path))
    available = path.stat().st_size - data_start
    if available < header.nbytes:
        raise DatasetError(f"{path}: truncated: the header promises {header.nbytes} bytes of data, "
                           f"the file holds {available}")
    return header


def check_size(header: ArrayHeader, source: str, max_bytes: int | None = None) -> None:
    """DatasetError if the array would exceed `max_bytes` (default: the module's MAX_ARRAY_BYTES)."""
    max_bytes = MAX_ARRAY_BYTES if max_bytes is None else max_bytes
    if header.nbytes > max_bytes:
        raise DatasetError(f"{source}: array of shape {header.shape} ({header.nbytes / 2**30:.1f} GiB) "
                           f"exceeds the {max_bytes / 2**30:.0f} GiB limit")


def read_npy(path: Path, max_bytes: int | None = None) -> np.ndarray:
    """Load a `.npy` file after validating its header and length (no pickles)."""
    check_size(npy_header(path), str(path), max_bytes)
    try:
        return np.load(path, allow_pickle=False)
    except _READ_ERRORS as exc:
        raise DatasetError(f"{path}: could not read the array ({exc})") from exc


def read_npz_member(path: Path, key: str, headers: dict[str, ArrayHeader],
                    max_bytes: int | None = None) -> np.ndarray:
    """Load one member of an `.npz` whose headers were validated (size limit enforced, no pickles)."""
    source = f"{path} [{key}]"
    if headers[key].dtype.hasobject:
        raise DatasetError(f"{source}: holds Python objects (pickled data), which are never loaded")
    check_size(headers[key], source, max_bytes)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arr = archive[key]
    except _READ_ERRORS as exc:
        raise DatasetError(f"{source}: could not read the array ({exc})") from exc
    if arr.shape != headers[key].shape:
        raise DatasetError(f"{source}: array shape {arr.shape} differs from its header {headers[key].shape}")
    return arr


def stream_npz_member(path: Path, key: str, rows_per_chunk: int) -> Iterator[np.ndarray]:
    """Yield a C-order `.npz` member in chunks of rows, so a multi-GB member never sits in memory at once."""
    source = f"{path} [{key}]"
    try:
        with zipfile.ZipFile(path) as archive, archive.open(key + ".npy") as member:
            header = _read_header(member, source)
            if header.fortran_order:
                raise DatasetError(f"{source}: Fortran-ordered arrays cannot be streamed")
            row_shape = header.shape[1:]
            row_bytes = math.prod(row_shape) * header.dtype.itemsize
            remaining = header.shape[0] if header.shape else 0
            while remaining > 0:
                rows = min(rows_per_chunk, remaining)
                buf = member.read(rows * row_bytes)
                if len(buf) != rows * row_bytes:
                    raise DatasetError(f"{source}: truncated: data ends {remaining - len(buf) // max(row_bytes, 1)}"
                                       " rows early")
                remaining -= rows
                yield np.frombuffer(buf, dtype=header.dtype).reshape((rows, *row_shape))
    except DatasetError:
        raise
    except _READ_ERRORS as exc:
        raise DatasetError(f"{source}: could not read the array ({exc})") from exc
