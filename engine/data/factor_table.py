"""Your own ground-truth factors: a `factors.csv` beside your images, or a `factors` array in an `.npz`.

CSV: a header row (first cell: anything, e.g. ``file``; then one name per factor), then one row per image: its file
name relative to the folder (``cats/a.png`` with class sub-folders), then its factor values. A column is *ordinal*
when its values are numbers (classes in increasing order of value) and *categorical* when none is a number (classes
in sorted order of the labels). Every image needs exactly one row; every row must name an image. Errors name the
row and the column.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .base import DatasetError, FactorSpec

FACTORS_FILE = "factors.csv"
MAX_FACTORS = 64
MAX_FACTOR_VALUES = 100_000
MAX_CSV_BYTES = 256 << 20


@dataclass(frozen=True)
class FactorTable:
    """Per-image factor classes (n×K int64, rows in image order) and the spec: names, sizes, values per class."""

    classes: torch.Tensor
    spec: FactorSpec
    labels: tuple[tuple[str, ...] | None, ...]  # per factor: the label of each class (categorical), else None


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _column(cells: list[str], name: str, rows: list[int], source: str) -> tuple[np.ndarray, tuple, tuple | None]:
    """Class indices, class values and (categorical columns) class labels of one factor column."""
    numbers = [_number(c) for c in cells]
    numeric = [v is not None for v in numbers]
    if any(numeric) and not all(numeric):
        bad = numeric.index(False)
        first_number = numeric.index(True)
        raise DatasetError(f"{source}: row {rows[bad]}, column {name!r}: {cells[bad]!r} is not a number, but the "
                           f"column is numeric (row {rows[first_number]} holds {cells[first_number]!r}); use numbers "
                           "throughout or labels throughout")
    if all(numeric):
        distinct, classes = np.unique(np.asarray(numbers, dtype=np.float64), return_inverse=True)
        values, labels = tuple(float(v) for v in distinct), None
    else:
        distinct, classes = np.unique(np.asarray(cells, dtype=object).astype(str), return_inverse=True)
        values, labels = tuple(float(i) for i in range(len(distinct))), tuple(str(v) for v in distinct)
    if len(distinct) < 2:
        raise DatasetError(f"{source}: column {name!r} has the same value ({cells[0]!r}) in every row; a factor "
                           "must take at least two values (remove the column)")
    if len(distinct) > MAX_FACTOR_VALUES:
        raise DatasetError(f"{source}: column {name!r} has {len(distinct):,} distinct values, more than the "
                           f"{MAX_FACTOR_VALUES:,} allowed (bin a continuous factor first)")
    return classes.astype(np.int64).reshape(-1), values, labels


def read_factors_csv(path: Path, image_names: list[str], skipped: set[str] | frozenset = frozenset()) -> FactorTable:
    """The factor rows of `image_names` (names relative to the folder, in the dataset's order) from a CSV file; rows
    naming a `skipped` (unreadable) file are left out."""
    source = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_CSV_BYTES:
            raise DatasetError(f"{source}: {size:,} bytes is more than the {MAX_CSV_BYTES >> 20} MiB allowed")
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise DatasetError(f"{source}: cannot read ({exc.strerror or exc})") from None
    try:
        table = [(number, row) for number, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1)
                 if any(cell.strip() for cell in row)]
    except csv.Error as exc:
        raise DatasetError(f"{source}: not a valid CSV file ({exc})") from None
    if not table:
        raise DatasetError(f"{source}: the file is empty (expected a header row: file,factor1,factor2,…)")
    _, header = table[0]
    header = [cell.strip() for cell in header]
    names = header[1:]
    if not names:
        raise DatasetError(f"{source}: row 1 names no factor columns (expected file,factor1,factor2,…)")
    if len(names) > MAX_FACTORS:
        raise DatasetError(f"{source}: {len(names)} factor columns is more than the {MAX_FACTORS} allowed")
    for column, name in enumerate(names, start=2):
        if not name:
            raise DatasetError(f"{source}: row 1, column {column}: the factor name is empty")
        if names.index(name) != column - 2:
            raise DatasetError(f"{source}: row 1, column {column}: the factor name {name!r} is used twice")
    wanted = {name: i for i, name in enumerate(image_names)}
    seen: dict[str, int] = {}
    order = np.full(len(image_names), -1, dtype=np.int64)
    cells: list[list[str]] = [[] for _ in names]
    row_numbers: list[int] = []
    for number, row in table[1:]:
        if len(row) != len(header):
            raise DatasetError(f"{source}: row {number} has {len(row)} cells; the header has {len(header)}")
        file_name = row[0].strip().replace("\\", "/")
        if file_name in seen:
            raise DatasetError(f"{source}: row {number}, column {header[0] or 1!r}: {file_name!r} is listed twice "
                               f"(first in row {seen[file_name]})")
        seen[file_name] = number
        if file_name in skipped:
            continue
        if file_name not in wanted:
            raise DatasetError(f"{source}: row {number}, column {header[0] or 1!r}: no readable image named "
                               f"{file_name!r} in the folder")
        for k, cell in enumerate(row[1:]):
            if not cell.strip():
                raise DatasetError(f"{source}: row {number}, column {names[k]!r}: the value is empty")
            cells[k].append(cell.strip())
        order[wanted[file_name]] = len(row_numbers)
        row_numbers.append(number)
    missing = [image_names[i] for i in np.flatnonzero(order < 0)]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise DatasetError(f"{source}: no row for {', '.join(missing[:3])}{more}; every image needs one")
    columns = [_column(c, name, row_numbers, source) for c, name in zip(cells, names, strict=True)]
    classes = np.stack([c for c, _, _ in columns], axis=1)[order]
    spec = FactorSpec(names=tuple(names), sizes=tuple(len(v) for _, v, _ in columns),
                      values=tuple(v for _, v, _ in columns))
    return FactorTable(torch.from_numpy(np.ascontiguousarray(classes)), spec, tuple(lb for _, _, lb in columns))


def factors_from_array(arr: np.ndarray, n: int, source: str, names: list[str] | None = None) -> FactorTable:
    """An `.npz`'s `factors` array (n×K numbers, or n for one factor): each column's distinct values are its
    classes, in increasing order."""
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "iubf":
        raise DatasetError(f"{source}: factors must be a numeric array, got "
                           f"{getattr(arr, 'dtype', type(arr).__name__)}")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] != n:
        raise DatasetError(f"{source}: factors must have shape ({n}, K) for {n} images, got {arr.shape}")
    if not 1 <= arr.shape[1] <= MAX_FACTORS:
        raise DatasetError(f"{source}: {arr.shape[1]} factor columns; 1…{MAX_FACTORS} are allowed")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise DatasetError(f"{source}: the factors contain NaN or Inf")
    names = names or [f"factor{k}" for k in range(arr.shape[1])]
    classes, values = [], []
    for k in range(arr.shape[1]):
        distinct, inverse = np.unique(arr[:, k], return_inverse=True)
        if len(distinct) < 2:
            raise DatasetError(f"{source}: factor column {k} ({names[k]!r}) has the same value in every row; a "
                               "factor must take at least two values")
        if len(distinct) > MAX_FACTOR_VALUES:
            raise DatasetError(f"{source}: factor column {k} has {len(distinct):,} distinct values, more than the "
                               f"{MAX_FACTOR_VALUES:,} allowed (bin a continuous factor first)")
        classes.append(inverse.reshape(-1).astype(np.int64))
        values.append(tuple(float(v) for v in distinct))
    spec = FactorSpec(names=tuple(names), sizes=tuple(len(v) for v in values), values=tuple(values))
    return FactorTable(torch.from_numpy(np.ascontiguousarray(np.stack(classes, axis=1))), spec,
                       tuple(None for _ in names))
