"""The composed factor worlds: colour/noisy dSprites, XYObject and the procedural 3-D shapes scene."""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.data import DatasetError, available_datasets, load_dataset
from engine.data import dsprites as D
from engine.data import shapes3d as S
from engine.data import worlds as W

REPO = Path(__file__).resolve().parents[2]
WORLDS = {
    "color-dsprites": ((3, 6, 40, 32, 32), ("shape", "scale", "orientation", "posX", "posY")),
    "noisy-dsprites": ((3, 6, 40, 32, 32), ("shape", "scale", "orientation", "posX", "posY")),
    "xyobject": ((25, 25, 5, 24), ("x", "y", "scale", "color")),
    "shapes3d": ((10, 10, 10, 8, 4, 15), ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")),
}
PROBE_INDICES = [0, 1, 12_345, 74_999]


@pytest.fixture(scope="module")
def loaded() -> dict:
    return {name: load_dataset(name) for name in WORLDS}


def digest(dataset, indices) -> str:
    return hashlib.sha256(dataset.images_at(torch.tensor(indices)).numpy().tobytes()).hexdigest()


@pytest.mark.parametrize("name", list(WORLDS))
def test_grid_shape_and_spec(loaded, name):
    ds = loaded[name]
    sizes, names = WORLDS[name]
    assert ds.factor_spec.sizes == sizes and ds.factor_spec.names == names
    assert len(ds) == math.prod(sizes) and ds.shape == (3, 64, 64)
    assert all(ds.factor_spec.kind(k) in ("categorical", "ordinal", "cyclic") for k in range(len(sizes)))
    batch = ds.images_at(torch.arange(0, len(ds), len(ds) // 50))
    assert batch.dtype == torch.uint8 and batch.shape[1:] == (3, 64, 64)
    assert ds.summary()["shape"] == [3, 64, 64] and ds.parts_nbytes < 300e6


def test_same_index_same_image_in_another_process(loaded):
    here = {name: digest(ds, PROBE_INDICES) for name, ds in loaded.items()}
    code = ("import hashlib, torch\nfrom engine.data import load_dataset\n"
            f"for name in {list(WORLDS)!r}:\n"
            f"    x = load_dataset(name).images_at(torch.tensor({PROBE_INDICES!r}))\n"
            "    print(name, hashlib.sha256(x.numpy().tobytes()).hexdigest())\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin",
                              **{k: os.environ[k] for k in ("HOME", "XDG_CACHE_HOME") if k in os.environ}})
    assert out.returncode == 0, out.stderr
    there = dict(line.split() for line in out.stdout.strip().splitlines())
    assert there == here


@pytest.mark.parametrize("name", list(WORLDS))
def test_image_does_not_depend_on_the_batch_and_render_factors_matches(loaded, name):
    ds = loaded[name]
    rng = np.random.default_rng(3)
    idx = torch.from_numpy(rng.integers(0, len(ds), 64))
    batch = ds.images_at(idx)
    for j in (0, 17, 63):
        assert torch.equal(ds.images_at(idx[j:j + 1])[0], batch[j])
    assert torch.equal(ds.render_factors(ds.factors_at(idx)), batch)
    assert torch.equal(ds.index_of(ds.factors_at(idx)), idx)


@pytest.mark.parametrize("name", list(WORLDS))
def test_every_factor_value_appears_uniformly_and_changes_the_image(loaded, name):
    ds = loaded[name]
    every = ds.factors_at(torch.arange(len(ds)))
    for k, size in enumerate(ds.factor_spec.sizes):
        counts = torch.bincount(every[:, k], minlength=size)
        assert counts.numel() == size and bool((counts == len(ds) // size).all()), ds.factor_spec.names[k]
    rows = ds.sample_factors(20_000, np.random.default_rng(0))
    for k, size in enumerate(ds.factor_spec.sizes):
        share = np.bincount(rows[:, k], minlength=size) / len(rows)
        assert np.abs(share - 1 / size).max() < 4 * math.sqrt((1 / size) / len(rows)) + 1e-3
    base = ds.factors_at(torch.tensor([len(ds) // 3]))[0]
    for k, size in enumerate(ds.factor_spec.sizes):
        strip = base.repeat(size, 1)
        strip[:, k] = torch.arange(size)
        images = ds.render_factors(strip).flatten(1)
        distinct = {hashlib.sha256(row.numpy().tobytes()).hexdigest() for row in images}
        assert len(distinct) == size, f"{name}: every value of {ds.factor_spec.names[k]} is a different image"


def test_color_dsprites_is_the_sprite_in_one_colour(loaded):
    ds = loaded["color-dsprites"]
    idx = torch.arange(5, D.NUM_IMAGES, 7919)
    images = ds.images_at(idx)
    sprite = D.render(ds.factors_at(idx)) > 0
    assert torch.equal(images.amax(dim=1, keepdim=True) > 0, sprite)
    colours = images.flatten(2).amax(dim=2)
    assert int(colours.min()) >= 128 and int(colours.max()) <= 255
    per_pixel = images.permute(0, 2, 3, 1)[sprite[:, 0]]
    owner = sprite[:, 0].flatten(1).sum(1)
    assert torch.equal(per_pixel, colours.repeat_interleave(owner, dim=0)), "one colour per image"
    many = ds.colours(torch.arange(0, D.NUM_IMAGES, 37)).float() / 255  # 19,927 images' colours
    assert bool(((many.mean(0) - 0.75).abs() < 0.005).all()) and bool(((many.std(0) - 0.1443).abs() < 0.005).all())
    assert float(torch.corrcoef(many.T).fill_diagonal_(0).abs().max()) < 0.05, "channels drawn independently"


def test_noisy_dsprites_is_a_white_sprite_on_uniform_noise(loaded):
    ds = loaded["noisy-dsprites"]
    idx = torch.arange(3, D.NUM_IMAGES, 15_013)
    images = ds.images_at(idx)
    sprite = (D.render(ds.factors_at(idx)) > 0).expand(-1, 3, -1, -1)
    assert bool((images[sprite] == 255).all())
    noise = images[~sprite].float()
    assert abs(noise.mean().item() - 127.5) < 1.5 and abs(noise.std().item() - 73.9) < 1.5
    hist = torch.bincount(images[~sprite].long(), minlength=256).float()
    assert hist.min() > 0.8 * hist.mean() and hist.max() < 1.2 * hist.mean()
    assert not torch.equal(images[0, :, :8, :8], images[1, :, :8, :8]), "each image has its own noise"


def test_xyobject_follows_disent_definition(loaded):
    ds = loaded["xyobject"]
    hues = [(255, 0, 0), (255, 255, 0), (0, 255, 0), (0, 255, 255), (0, 0, 255), (255, 0, 255)]
    palette = [[c * level // 4 for c in hue] for level in range(1, 5) for hue in hues]
    for i in np.random.default_rng(5).integers(0, 75_000, 40):
        x, y, s, c = np.unravel_index(i, (25, 25, 5, 24))
        side = [7, 9, 11, 13, 15][s]
        r = (15 - side) // 2
        expected = np.zeros((64, 64, 3), dtype=np.uint8)
        expected[2 * y + r:2 * y + r + side, 2 * x + r:2 * x + r + side] = palette[c]
        assert np.array_equal(ds.images_at(torch.tensor([int(i)]))[0].permute(1, 2, 0).numpy(), expected)


def test_shapes3d_hues_paint_their_surfaces(loaded):
    ds = loaded["shapes3d"]
    row = torch.tensor([[2, 5, 8, 4, 0, 7]])
    image = ds.render_factors(row)[0].permute(1, 2, 0).numpy().astype(int)
    floor, wall, obj = (np.array(S.hue_rgb(S.HUES[h])) for h in (2, 5, 8))
    maps = S.view_maps()[(0 * 8 + 4) * 15 + 7].reshape(3, 64, 64).numpy().astype(int)
    for surface, colour in ((0, floor), (1, wall), (2, obj)):
        pure = maps[surface] == maps.sum(0)
        pure &= maps[surface] > 60
        assert pure.sum() > 20, f"surface {surface} is seen alone in some pixels"
        seen = image[pure]
        expected = np.rint(maps[surface][pure][:, None] * colour / 255)
        assert np.abs(seen - expected).max() <= 1
    ys, xs = np.nonzero(maps[2])
    assert abs(ys.mean() - 32) < 8 and abs(xs.mean() - 32) < 4, "the object stands in the middle of the frame"


def test_subsets_and_options():
    ds = load_dataset("shapes3d?subset=500&seed=4")
    assert len(ds) == 500 and ds.is_sample and ds.spec == "shapes3d?subset=500&seed=4"
    again = load_dataset(ds.spec)
    assert torch.equal(again.images_at(torch.arange(10)), ds.images_at(torch.arange(10)))
    full = load_dataset("shapes3d")
    grid = full.index_of(ds.factors_at(torch.arange(500)))
    assert torch.equal(full.images_at(grid[:20]), ds.images_at(torch.arange(20)))
    assert ds.labels.shape == (500,) and int(ds.labels.max()) <= 3 and ds.class_names == S.SHAPE_NAMES
    train, test = ds.split(0.1, 0)
    assert len(train) + len(test) == 500
    with pytest.raises(IndexError):
        ds.images_at(torch.tensor([500]))
    with pytest.raises(DatasetError, match="random subset"):
        ds.index_of(full.factors_at(torch.tensor([g for g in range(2000) if g not in set(grid.tolist())][:1])))
    for bad in ("xyobject?subset=abc", "xyobject?subset=0", "color-dsprites?seed=x", "shapes3d?source=bogus",
                "noisy-dsprites?colour=red", "shapes3d?path=/nonexistent/3dshapes.h5"):
        with pytest.raises(DatasetError):
            load_dataset(bad)
    with pytest.raises(DatasetError, match="must lie in"):
        full.render_factors(np.array([[0, 0, 0, 8, 0, 0]]))


def test_listed_as_embedded(monkeypatch, tmp_path):
    monkeypatch.setenv("LATENT_EXPLORER_DATA", str(tmp_path))
    rows = {r["name"]: r for r in available_datasets()}
    for name in WORLDS:
        assert rows[name]["status"] == "embedded" and rows[name]["shape"] == [3, 64, 64]
        assert rows[name]["size"] == math.prod(WORLDS[name][0])
    assert rows["shapes3d-official"]["status"] == "missing" and "3dshapes.h5" in rows["shapes3d-official"]["hint"]
    assert "not DeepMind" in rows["shapes3d"]["description"]


def reference_hash32(x: int) -> int:
    x &= 0xFFFFFFFF
    for _ in range(2):
        x = (((x >> 16) ^ x) * 0x45D9F3B) & 0xFFFFFFFF
    return (x >> 16) ^ x


def test_nuisance_hash_is_the_integer_formula():
    """The per-image nuisance seeds: the tensor hash equals the formula in plain Python integers."""
    values = [0, 1, 2, 0xFFFFFFFF, 2**40 + 7, *np.random.default_rng(9).integers(0, 2**62, 200).tolist()]
    assert W.hash32(torch.tensor(values)).tolist() == [reference_hash32(v) for v in values]


# --- the official 3dshapes.h5 (h5py, an optional extra) ---------------------------------------------------

SMALL = (2, 2, 2, 2, 2, 3)


def write_h5(path: Path, shuffle: bool = False) -> np.ndarray:
    h5py = pytest.importorskip("h5py")
    n = math.prod(SMALL)
    classes = np.stack(np.unravel_index(np.arange(n), SMALL), axis=1)
    if shuffle:
        classes = classes[::-1]
    labels = classes * 0.1 + 0.05
    images = np.random.default_rng(0).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
    with h5py.File(path, "w") as f:
        f["images"] = images
        f["labels"] = labels
    return images


def test_official_file_reads_batches_with_factors(tmp_path):
    path = tmp_path / "3dshapes.h5"
    images = write_h5(path)
    ds = S.Shapes3DFile(path, sizes=SMALL)
    assert len(ds) == math.prod(SMALL) and ds.factor_spec.sizes == SMALL
    idx = torch.tensor([5, 0, 5, 47, 12])
    assert torch.equal(ds.images_at(idx), torch.from_numpy(images[idx.numpy()]).permute(0, 3, 1, 2))
    assert torch.equal(ds.render_factors(ds.factors_at(idx)), ds.images_at(idx))
    assert ds.factors_at(torch.tensor([1])).tolist() == [[0, 0, 0, 0, 0, 1]]


def test_official_file_errors_are_clear(tmp_path, monkeypatch):
    bad = tmp_path / "3dshapes.h5"
    write_h5(bad, shuffle=True)
    with pytest.raises(DatasetError, match="not the factor grid in order"):
        S.Shapes3DFile(bad, sizes=SMALL)
    with pytest.raises(DatasetError, match=r"expected uint8 of shape \(480000"):
        load_dataset(f"shapes3d?path={bad}")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(DatasetError, match="not a readable HDF5"):
        load_dataset(f"shapes3d?path={junk}")
    monkeypatch.setenv("LATENT_EXPLORER_DATA", str(tmp_path))
    assert S.find_official_file() == bad
