"""Hypothesis fuzzing of the IDX and npz readers: any bytes give a valid array or a DatasetError, never
another exception. Derandomised so the suite is repeatable."""

from __future__ import annotations

import gzip
import io
import struct
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.data import DatasetError
from engine.data.files import load_array_file
from engine.data.mnist import read_idx

FUZZ = settings(derandomize=True, max_examples=120, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


def valid_idx(n: int, h: int, w: int) -> bytes:
    return bytes([0, 0, 0x08, 3]) + struct.pack(">3I", n, h, w) + bytes(range(256)) * (n * h * w // 256) \
        + bytes(n * h * w % 256)


@st.composite
def mutated_idx(draw) -> tuple[bytes, bool]:
    data = bytearray(valid_idx(draw(st.integers(0, 4)), draw(st.integers(1, 6)), draw(st.integers(1, 6))))
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["flip", "cut", "grow"]))
        if kind == "flip" and data:
            data[draw(st.integers(0, min(len(data) - 1, 20)))] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[draw(st.integers(0, len(data))):]
        else:
            data += draw(st.binary(max_size=8))
    return bytes(data), draw(st.booleans())


def _check_idx(data: bytes, compress: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f"
        path.write_bytes(gzip.compress(data) if compress else data)
        try:
            arr = read_idx(path)
        except DatasetError:
            return
        header_len = 4 + 4 * data[3]
        dims = struct.unpack(f">{data[3]}I", data[4:header_len])
        assert arr.shape == dims and len(data) == header_len + arr.nbytes


@FUZZ
@given(mutated_idx())
def test_idx_reader_on_mutated_files(case):
    _check_idx(*case)


@FUZZ
@given(st.binary(max_size=64), st.booleans())
def test_idx_reader_on_arbitrary_bytes(data, compress):
    _check_idx(data, compress)


def valid_npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x=np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8), y=np.array([0, 1]))
    return buf.getvalue()


VALID_NPZ = valid_npz()


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(VALID_NPZ) - 1), st.integers(0, 255)), max_size=4),
       st.one_of(st.none(), st.integers(0, len(VALID_NPZ))))
def test_npz_reader_on_mutated_archives(flips, cut_at):
    data = bytearray(VALID_NPZ)
    for pos, value in flips:
        data[pos] = value
    if cut_at is not None:
        del data[cut_at:]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.npz"
        path.write_bytes(bytes(data))
        try:
            ds = load_array_file(path)
        except DatasetError:
            return
        assert ds.images.dtype.is_floating_point is False and ds.images.dim() == 4
        assert ds.labels is None or len(ds.labels) == len(ds)
