"""Hypothesis fuzzing of every dataset reader with headers that lie: IDX (raw and gzip), `.npy`, `.npz`, folders of
images (with a mutated `factors.csv`) and the official dSprites `.npz`. The only allowed outcomes are a valid
Dataset/array or a DatasetError naming the file; never another exception, a hang, or an allocation sized by a lying
header (the readers check every header against the file before they allocate). Derandomised: the same 1,000 cases per
reader every run (500 for factor tables)."""

from __future__ import annotations

import csv
import gzip
import io
import struct
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.data import DatasetError
from engine.data.dsprites import load_official_npz
from engine.data.files import load_path
from engine.data.mnist import read_idx

FUZZ = settings(derandomize=True, max_examples=1000, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
WORKDIR = Path(tempfile.mkdtemp(prefix="fuzz-readers-"))
DIMS = st.one_of(st.integers(0, 9), st.sampled_from([2**31, 2**32 - 1, 10**6, 65_536]))


def expect_dataset_or_error(path: Path, load) -> object | None:
    try:
        return load(path)
    except DatasetError as exc:
        assert str(path.name) in str(exc) or str(path) in str(exc), f"the error does not name the file: {exc}"
        return None


# --- IDX --------------------------------------------------------------------------------------------------------
@FUZZ
@given(st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0xFF]), st.integers(0, 6),
       st.lists(DIMS, min_size=0, max_size=6), st.integers(-8, 8), st.booleans(), st.binary(max_size=2))
def test_idx_headers(code, ndim, dims, slack, compress, magic):
    magic = (magic + b"\0\0")[:2] if len(magic) == 2 else b"\0\0"
    head = magic + bytes([code, ndim]) + b"".join(struct.pack(">I", d) for d in dims)
    promised = int(np.prod(dims[:ndim], dtype=np.float64)) if len(dims) >= ndim else 0
    body = bytes(max(0, min(promised, 4096) + slack))
    data = head + body
    path = WORKDIR / "f-idx"
    path.write_bytes(gzip.compress(data, compresslevel=1) if compress else data)
    arr = expect_dataset_or_error(path, read_idx)
    if arr is not None:
        header_len = 4 + 4 * ndim
        assert arr.shape == struct.unpack(f">{ndim}I", data[4:header_len]) and len(data) == header_len + arr.nbytes


# --- .npy / .npz ------------------------------------------------------------------------------------------------
DESCRS = ["|u1", "<f4", "<f8", "|b1", "<i8", ">i2", "|O", "<U3", "|V4", "<c8", "<M8[s]", "x", "<f2"]
SHAPES = st.lists(DIMS | st.integers(-3, -1), max_size=5).map(tuple) | st.sampled_from(
    ["(3, 8, 8)", "((1,),)", "'a'", "(2**40,)", "(3.5,)", "None", "(1,) * 100"])


def npy_bytes(descr: str, shape, fortran: bool, body_len: int, version: int) -> bytes:
    header = f"{{'descr': {descr!r}, 'fortran_order': {fortran}, 'shape': {shape}, }}"
    header += " " * (-(len(header) + 11) % 64) + "\n"
    if version == 1:
        prefix = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header))
    else:
        prefix = b"\x93NUMPY\x02\x00" + struct.pack("<I", len(header))
    return prefix + header.encode("latin1") + bytes(range(256)) * (body_len // 256) + bytes(body_len % 256)


@st.composite
def npy_files(draw) -> bytes:
    shape = draw(SHAPES)
    body = draw(st.integers(0, 3 * 8 * 8 * 8 + 16))
    return npy_bytes(draw(st.sampled_from(DESCRS)), shape, draw(st.booleans()), body, draw(st.sampled_from([1, 2])))


def check_dataset(ds) -> None:
    assert ds.images.dtype.is_floating_point is False and ds.images.dim() == 4 and len(ds) > 0
    assert ds.shape[0] in (1, 3) and 4 <= ds.shape[1] <= 256 and 4 <= ds.shape[2] <= 256


@FUZZ
@given(npy_files())
def test_npy_files(data):
    path = WORKDIR / "images.npy"
    path.write_bytes(data)
    ds = expect_dataset_or_error(path, load_path)
    if ds is not None:
        check_dataset(ds)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["images", "x", "labels", "y", "imgs", "latents_classes", "other", "factors",
                                           "factor_names"]),
                          npy_files()), min_size=0, max_size=3, unique_by=lambda m: m[0]),
       st.booleans())
def test_npz_archives(members, compressed):
    path = WORKDIR / "arrays.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED) as archive:
        for key, data in members:
            archive.writestr(key + ".npy", data)
    ds = expect_dataset_or_error(path, load_path)
    if ds is not None:
        check_dataset(ds)


# --- folders of images ------------------------------------------------------------------------------------------
def png_bytes(size: tuple[int, int], mode: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, size, 128 if mode == "L" else (10, 20, 30)).save(buf, format="PNG")
    return buf.getvalue()


PNGS = [png_bytes((8, 8), "L"), png_bytes((9, 5), "RGB"), png_bytes((1, 1), "L"), png_bytes((300, 2), "L")]


@st.composite
def image_files(draw) -> tuple[str, bytes]:
    data = bytearray(draw(st.sampled_from(PNGS)))
    kind = draw(st.sampled_from(["intact", "flip", "cut", "random"]))
    if kind == "flip":
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    elif kind == "cut":
        del data[draw(st.integers(0, len(data))):]
    elif kind == "random":
        data = bytearray(draw(st.binary(max_size=64)))
    return draw(st.sampled_from(["a.png", "b.jpg", "c.txt", ".hidden.png", "d"])), bytes(data)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["", "cats", "dogs"]), image_files()), min_size=0, max_size=3),
       st.sampled_from([{}, {"size": "8"}, {"size": "2"}, {"size": "x"}, {"channels": "3"}, {"channels": "2"},
                        {"bogus": "1"}]))
def test_image_folders(files, options):
    import shutil

    root = WORKDIR / "images"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    for sub, (name, data) in files:
        (root / sub).mkdir(exist_ok=True)
        (root / sub / name).write_bytes(data)
    ds = expect_dataset_or_error(root, lambda p: load_path(p, **options))
    if ds is not None:
        check_dataset(ds)


# --- factors.csv beside a folder of images -----------------------------------------------------------------------
FACTOR_CELLS = st.sampled_from(["0", "1", "2", "2.5", "-1", "1e308", "1e999", "nan", "inf", "", " ", "red", "blue",
                                "a,b", '"q"', "ü", "0x1", "\x00", "\n", "1" * 400])
CSV_IMAGES = ("a.png", "b.png", "c.png", "d.png")


@st.composite
def factor_tables(draw) -> bytes:
    """A valid table (4 images, a numeric and a label column), then row/cell/structure mutations."""
    rows = [["file", "x", "colour"], ["a.png", "0", "red"], ["b.png", "1", "red"], ["c.png", "0", "blue"],
            ["d.png", "1", "blue"]]
    for _ in range(draw(st.integers(0, 4))):
        change = draw(st.sampled_from(["cell", "drop", "duplicate", "column", "width", "name"]))
        r = draw(st.integers(0, len(rows) - 1)) if rows else 0
        if change == "cell" and rows and rows[r]:
            rows[r][draw(st.integers(0, len(rows[r]) - 1))] = draw(FACTOR_CELLS)
        elif change == "drop" and rows:
            rows.pop(r)
        elif change == "duplicate" and rows:
            rows.append(list(rows[r]))
        elif change == "column":
            for row in rows:
                row.append(draw(FACTOR_CELLS))
        elif change == "width" and rows:
            rows[r] = rows[r][: draw(st.integers(0, len(rows[r])))]
        elif change == "name" and rows and rows[r]:
            rows[r][0] = draw(st.sampled_from(["e.png", "A.png", "./a.png", "sub/a.png", "b.png", ""]))
    buf = io.StringIO()
    csv.writer(buf, lineterminator=draw(st.sampled_from(["\n", "\r\n"]))).writerows(rows)
    data = bytearray(buf.getvalue().encode("utf-8"))
    if draw(st.booleans()) and data:
        for _ in range(draw(st.integers(1, 3))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


@settings(derandomize=True, max_examples=500, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(factor_tables())
def test_factor_tables(table):
    root = WORKDIR / "factor-folder"
    if not root.exists():
        root.mkdir()
        for name in CSV_IMAGES:
            (root / name).write_bytes(PNGS[0])
    table_path = root / "factors.csv"
    table_path.write_bytes(table)
    try:
        ds = load_path(root)
    except DatasetError as exc:
        assert str(table_path) in str(exc), f"the error does not name the factors file: {exc}"
        return
    check_dataset(ds)
    spec = ds.factor_spec
    assert ds.factors.shape == (len(ds), spec.num_factors) and ds.factors.dtype == torch.int64
    sizes = torch.tensor(spec.sizes)
    assert (ds.factors >= 0).all() and (ds.factors < sizes).all() and (sizes >= 2).all()
    for k in range(spec.num_factors):  # every class is some image's: sizes count observed values
        assert set(ds.factors[:, k].tolist()) == set(range(spec.sizes[k]))
    rows = ds.sample_factors(8, np.random.default_rng(0))
    assert ds.render_factors(rows).shape[0] == 8


# --- the official dSprites npz (small grid; the reader takes the grid sizes for exactly this) ---------------------
SIZES = (2, 1, 2, 2, 2)
N = int(np.prod(SIZES))


@st.composite
def dsprites_archives(draw) -> bytes:
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in SIZES], indexing="ij"), -1).reshape(N, 5)
    classes = np.concatenate([np.zeros((N, 1), np.int64), grid], 1)
    imgs = np.zeros((N, 8, 8), np.uint8)
    imgs[:, 2:6, 2:6] = 1
    arrays: dict[str, np.ndarray] = {"imgs": imgs, "latents_classes": classes,
                                     "metadata": np.array([{"date": "x"}], dtype=object)}
    for _ in range(draw(st.integers(0, 3))):
        change = draw(st.sampled_from(["drop", "shape", "dtype", "value", "rows", "float"]))
        key = draw(st.sampled_from(["imgs", "latents_classes"]))
        if change == "drop":
            arrays.pop(key, None)
        elif key not in arrays:
            continue
        elif change == "shape":
            arrays[key] = arrays[key].reshape(-1)[: draw(st.integers(0, arrays[key].size))]
        elif change == "dtype":
            arrays[key] = arrays[key].astype(draw(st.sampled_from([np.float32, np.int8, np.uint16, bool])))
        elif change == "value" and arrays[key].size:
            flat = arrays[key].reshape(-1).copy()
            value = draw(st.integers(-2, 300)) % 256 if key == "imgs" else draw(st.integers(-3, 5))
            # through the array's dtype: a negative class in an unsigned array wraps (numpy 2 refuses a bare int)
            flat[draw(st.integers(0, flat.size - 1))] = np.asarray(value).astype(flat.dtype)
            arrays[key] = flat.reshape(arrays[key].shape)
        elif change == "rows":
            arrays[key] = arrays[key][: draw(st.integers(0, N))]
        elif change == "float":
            arrays[key] = arrays[key].astype(np.float64) + 0.5
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    data = bytearray(buf.getvalue())
    if draw(st.booleans()):
        for _ in range(draw(st.integers(1, 3))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


@FUZZ
@given(dsprites_archives(), st.sampled_from([None, "4", "0", "-1", "all", "x", "100"]),
       st.sampled_from([None, {"shape": "square"}, {"posX": "0-1"}, {"posX": "5"}, {"colour": "red"},
                        {"scale": ""}]))
def test_official_dsprites_npz(data, subset, filters):
    path = WORKDIR / "dsprites_ndarray.npz"
    path.write_bytes(data)
    ds = expect_dataset_or_error(path, lambda p: load_official_npz(p, subset=subset, filters=filters, sizes=SIZES,
                                                                   image_size=8, chunk_rows=3))
    if ds is not None:
        assert ds.shape == (1, 8, 8) and 0 < len(ds) <= N and ds.factors.shape == (len(ds), 5)
        assert ds.images_at(ds.factors.new_tensor(range(len(ds)))).max() <= 255


# --- lying sizes: nothing is allocated on a header's word ---------------------------------------------------------
def peak_traced_bytes(load, path: Path) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        expect_dataset_or_error(path, load)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_headers_promising_gigabytes_allocate_nothing_of_the_sort():
    lies = {"lie.npy": npy_bytes("|u1", (1_000_000, 32, 32), False, 64, 1)}
    for name, compressed in (("lie-stored.npz", False), ("lie-deflated.npz", True)):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED) as archive:
            archive.writestr("images.npy", npy_bytes("|u1", (1_000_000, 32, 32), False, 4096, 1))
        lies[name] = buf.getvalue()
    lies["lie-idx"] = bytes([0, 0, 8, 3]) + struct.pack(">3I", 1_000_000, 32, 32) + bytes(4096)
    for name, data in lies.items():
        path = WORKDIR / name
        path.write_bytes(data)
        load = read_idx if name == "lie-idx" else load_path
        assert peak_traced_bytes(load, path) < 64 << 20, f"{name}: a lying header made the reader allocate"
