"""Your own data: image folders and .npy/.npz arrays, with every bad-input case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.data import DatasetError, load_dataset
from engine.data import files as F


def save(path: Path, array: np.ndarray, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)
    return path


def gradient(h: int, w: int, rgb: bool = False) -> np.ndarray:
    base = (np.add.outer(np.arange(h), np.arange(w)) * 255 // (h + w - 2)).astype(np.uint8)
    return np.stack([base, 255 - base, base // 2], axis=-1) if rgb else base


# --- folders ------------------------------------------------------------------------------------

def test_class_folders_give_labels_and_resize(tmp_path):
    root = tmp_path / "shapes"
    save(root / "cats" / "a.png", gradient(20, 20))
    save(root / "cats" / "b.png", gradient(30, 40))
    save(root / "dogs" / "c.jpg", gradient(24, 24), "JPEG")
    (root / "dogs" / ".DS_Store").write_bytes(b"\x00junk")
    ds = load_dataset(f"{root}?size=16")
    assert len(ds) == 3 and ds.shape == (1, 16, 16) and ds.images.dtype == torch.uint8
    assert ds.class_names == ("cats", "dogs") and ds.labels.tolist() == [0, 0, 1] and ds.num_classes == 2
    assert ds.images[0, 0, 0, 0] < 40 and ds.images[0, 0, -1, -1] > 215, "the gradient survives resizing"


def test_native_size_and_rgb_detection(tmp_path):
    root = tmp_path / "flat"
    save(root / "1.png", gradient(12, 12, rgb=True))
    save(root / "2.png", gradient(12, 12))
    ds = load_dataset(str(root))
    assert ds.shape == (3, 12, 12) and ds.labels is None
    assert np.array_equal(ds.images[0].permute(1, 2, 0).numpy(), gradient(12, 12, rgb=True))
    gray = load_dataset(str(root), channels="1")
    assert gray.shape == (1, 12, 12)
    save(root / "3.png", gradient(12, 20))
    assert load_dataset(str(root)).shape == (3, 64, 64), "mixed sizes fall back to 64×64"


@pytest.mark.parametrize("build, message", [
    (lambda r: (r.mkdir(),), "empty"),
    (lambda r: (r.mkdir(), (r / "notes.txt").write_text("hi")), "none of its 1 file.*notes.txt: not an image"),
    (lambda r: (r.mkdir(), (r / "b.png").write_bytes(b"not a png"), (r / "c.png").write_bytes(b"")),
     "none of its 2 file.*b.png: not a readable.*c.png"),
    (lambda r: ((r / "k").mkdir(parents=True), save(r / "j" / "a.png", gradient(8, 8))),
     "k: the class folder is empty"),
    (lambda r: (save(r / "a.png", gradient(8, 8)), save(r / "k" / "b.png", gradient(8, 8))), "mixes image files"),
    (lambda r: (save(r / "k" / "deeper" / "b.png", gradient(8, 8)),), "not further folders"),
])
def test_folder_bad_input(tmp_path, build, message):
    root = tmp_path / "data"
    build(root)
    with pytest.raises(DatasetError, match=message):
        load_dataset(str(root))


def test_unreadable_files_are_skipped_and_named(tmp_path):
    root = tmp_path / "mixed"
    for i in range(4):
        save(root / f"ok{i}.png", gradient(8, 8))
    (root / "notes.txt").write_text("hi")
    (root / "broken.png").write_bytes(b"not a png")
    truncated = save(root / "cut.png", np.random.default_rng(0).integers(0, 255, (40, 40), dtype=np.uint8))
    truncated.write_bytes(truncated.read_bytes()[:200])  # a good header, corrupt data: fails at decoding
    ds = load_dataset(str(root))
    assert len(ds) == 4 and ds.shape == (1, 8, 8), "the readable images load (cut.png's header said 40×40)"
    assert [name for name, _ in ds.extra["skipped"]] == ["broken.png", "cut.png", "notes.txt"]
    assert "3 unreadable file(s) skipped" in ds.description
    assert ds.summary()["skipped"][0][0] == "broken.png"
    text = F.skipped_files_text(ds, first=2)
    assert text == "3 unreadable file(s) skipped: broken.png, cut.png and 1 more"
    assert F.skipped_files_details(ds).splitlines()[1] == "cut.png: the image data is corrupt (image file is truncated)"
    assert F.skipped_files_text(load_dataset("digits")) == ""


def test_folder_absurd_sizes_are_rejected_before_decoding(tmp_path, monkeypatch):
    root = tmp_path / "big"
    save(root / "a.png", gradient(30, 30))
    monkeypatch.setattr(F, "MAX_SOURCE_PIXELS", 500)
    with pytest.raises(DatasetError, match=r"a.png: image size 30×30 is absurd"):
        load_dataset(str(root))
    monkeypatch.setattr(F, "MAX_SOURCE_PIXELS", 10**8)
    monkeypatch.setattr(F, "MAX_TOTAL_BYTES", 1000)
    with pytest.raises(DatasetError, match="over the"):
        load_dataset(f"{root}?size=64")
    with pytest.raises(DatasetError, match="size must lie in 4…256"):
        load_dataset(f"{root}?size=1000")
    with pytest.raises(DatasetError, match="unknown option"):
        load_dataset(f"{root}?colour=red")


def test_truncated_image_data(tmp_path):
    root = tmp_path / "trunc"
    path = save(root / "a.png", np.random.default_rng(0).integers(0, 255, (40, 40), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DatasetError, match="a.png"):
        load_dataset(str(root))


# --- arrays -------------------------------------------------------------------------------------

def test_npy_float_unit_range_and_separate_labels(tmp_path):
    images = np.random.default_rng(0).random((6, 10, 10)).astype(np.float32)
    np.save(tmp_path / "x.npy", images)
    np.save(tmp_path / "y.npy", np.array([0, 1, 2, 0, 1, 2]))
    ds = load_dataset(str(tmp_path / "x.npy"), labels=str(tmp_path / "y.npy"))
    assert ds.shape == (1, 10, 10) and ds.num_classes == 3
    assert np.array_equal(ds.images[:, 0].numpy(), np.rint(images * 255).astype(np.uint8))
    resized = load_dataset(f"{tmp_path / 'x.npy'}?size=20")
    assert resized.shape == (1, 20, 20)


@pytest.mark.parametrize("x_key, y_key", [("images", "labels"), ("x", "y"), ("x_train", "y_train")])
def test_npz_keys_and_layouts(tmp_path, x_key, y_key):
    rgb = np.random.default_rng(1).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", **{x_key: rgb, y_key: np.arange(5) % 2})
    ds = load_dataset(str(tmp_path / "d.npz"))
    assert ds.shape == (3, 16, 16) and ds.labels.tolist() == [0, 1, 0, 1, 0]
    assert np.array_equal(ds.images.permute(0, 2, 3, 1).numpy(), rgb)
    np.savez(tmp_path / "c.npz", data=rgb.transpose(0, 3, 1, 2))
    assert torch.equal(load_dataset(str(tmp_path / "c.npz")).images, ds.images), "N×C×H×W is accepted as is"


def _npy_with_header(path: Path, shape: tuple, dtype: str = "|u1", payload: bytes = b"",
                     sparse_bytes: int = 0) -> Path:
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": dtype, "fortran_order": False, "shape": shape})
        f.write(payload)
        if sparse_bytes:
            f.truncate(f.tell() + sparse_bytes)
    return path


@pytest.mark.parametrize("arrays, message", [
    ({"x": np.full((2, 8, 8), np.nan)}, "NaN or Inf"),
    ({"x": np.full((2, 8, 8), np.inf)}, "NaN or Inf"),
    ({"x": np.full((2, 8, 8), 300.0)}, r"\[0, 1\] or \[0, 255\]"),
    ({"x": np.full((2, 8, 8), -1, dtype=np.int16)}, r"\[0, 255\]"),
    ({"x": np.zeros((2, 8, 8)), "y": np.zeros(3, np.int64)}, "2 images in 'x' but 'y' has shape"),
    ({"x": np.zeros((2, 8, 8)), "y": np.array([0.5, 1.0])}, "whole numbers"),
    ({"x": np.zeros((2, 8, 8)), "y": np.array([-1, 0])}, "labels must lie"),
    ({"x": np.zeros((2, 8))}, "3 or 4 dimensions"),
    ({"x": np.zeros((0, 8, 8))}, "no images"),
    ({"x": np.zeros((2, 8, 8, 5))}, "1 or 3 channels"),
    ({"x": np.zeros((2, 2, 2))}, "outside 4…256"),
    ({"x": np.zeros((2, 8, 8), dtype=np.complex64)}, "unsupported pixel dtype"),
    ({"x": np.empty((2, 8, 8), dtype=object)}, "pickled"),
    ({"weights": np.zeros(3)}, "no image array found"),
])
def test_npz_bad_input(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DatasetError, match=message) as info:
        load_dataset(str(path))
    assert "bad.npz" in str(info.value)


def test_npy_bad_input(tmp_path):
    with pytest.raises(DatasetError, match="truncated"):
        load_dataset(str(_npy_with_header(tmp_path / "t.npy", (4, 8, 8), payload=b"\x00" * 100)))
    with pytest.raises(DatasetError, match="a.npy: array of shape .* exceeds the 4 GiB limit"):
        load_dataset(str(_npy_with_header(tmp_path / "a.npy", (10**9, 64, 64))))
    with pytest.raises(DatasetError, match="absurd"):
        load_dataset(str(_npy_with_header(tmp_path / "b.npy", (3, 8000, 8000), sparse_bytes=192_000_000)))
    with pytest.raises(DatasetError, match="pickled"):
        load_dataset(str(_npy_with_header(tmp_path / "o.npy", (2,), dtype="|O")))
    np.save(tmp_path / "x.npy", np.zeros((3, 8, 8), np.uint8))
    np.save(tmp_path / "y.npy", np.zeros(4, np.int64))
    with pytest.raises(DatasetError, match="expected 3 labels"):
        load_dataset(str(tmp_path / "x.npy"), labels=str(tmp_path / "y.npy"))
    (tmp_path / "z.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DatasetError, match="z.npy"):
        load_dataset(str(tmp_path / "z.npy"))
    (tmp_path / "z.npz").write_bytes(b"PK not a zip")
    with pytest.raises(DatasetError, match="z.npz: not a readable"):
        load_dataset(str(tmp_path / "z.npz"))


def test_npz_size_is_checked_before_reading(tmp_path, monkeypatch):
    from engine.data import npyio

    np.savez(tmp_path / "d.npz", x=np.zeros((50, 32, 32), np.uint8))
    monkeypatch.setattr(npyio, "MAX_ARRAY_BYTES", 1000)
    with pytest.raises(DatasetError, match="limit"):
        load_dataset(str(tmp_path / "d.npz"))


def test_paths_that_do_not_exist_or_are_unsupported(tmp_path):
    with pytest.raises(DatasetError, match="no such file or folder"):
        load_dataset(str(tmp_path / "missing.npz"))
    (tmp_path / "a.csv").write_text("1,2")
    with pytest.raises(DatasetError, match="unsupported file type .csv"):
        load_dataset(str(tmp_path / "a.csv"))


def test_a_16_bit_greyscale_png_is_scaled_by_its_bit_depth(tmp_path):
    """Pillow's convert("L") clips 16-bit values at 255: without scaling the image loads solid white."""
    ramp = np.linspace(0, 65535, 16 * 16).reshape(16, 16).astype(np.uint16)
    path = tmp_path / "deep" / "ramp.png"
    path.parent.mkdir()
    Image.fromarray(ramp).save(path)
    with Image.open(path) as im:
        assert im.mode.startswith("I"), im.mode  # really a 16-bit image on disk
    ds = load_dataset(str(path.parent))
    pixels = ds.images[0, 0].numpy().astype(np.int64)
    expected = np.rint(ramp / 65535.0 * 255.0).astype(np.int64)
    assert np.abs(pixels - expected).max() <= 1
    assert pixels.min() == 0 and pixels.max() == 255 and len(np.unique(pixels)) > 200
