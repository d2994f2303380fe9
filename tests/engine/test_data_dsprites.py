"""Procedural dSprites: the grid, the geometry of the rendering, the packed dataset and the official file."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.data import DatasetError, load_dataset
from engine.data import dsprites as D

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def full() -> D.DSpritesDataset:
    return D.load_dsprites()


def centroid(image: torch.Tensor) -> tuple[float, float, int]:
    """(x, y, area) of a 1×H×W binary image."""
    mask = image[0] > 0
    ys, xs = mask.nonzero(as_tuple=True)
    return float(xs.float().mean()), float(ys.float().mean()), int(mask.sum())


def test_count_shape_and_values(full):
    assert len(full) == 737_280 == D.NUM_IMAGES
    assert full.shape == (1, 64, 64)
    assert full.factor_spec.names == ("shape", "scale", "orientation", "posX", "posY")
    assert full.factor_spec.sizes == (3, 6, 40, 32, 32)
    np.testing.assert_allclose(full.factor_spec.values[1], np.linspace(0.5, 1.0, 6))
    np.testing.assert_allclose(full.factor_spec.values[2], np.linspace(0.0, 2 * np.pi, 40))
    np.testing.assert_allclose(full.factor_spec.values[3], np.linspace(0.0, 1.0, 32))
    batch = full.images_at(torch.randint(0, len(full), (300,), generator=torch.Generator().manual_seed(0)))
    assert batch.dtype == torch.uint8 and batch.shape == (300, 1, 64, 64)
    assert set(batch.unique().tolist()) == {0, 255}
    assert bool((batch.flatten(1).amax(1) == 255).all()), "every image shows a sprite"
    assert full.images is None and full.num_classes == 3


def test_index_factor_round_trip():
    rng = np.random.default_rng(1)
    idx = torch.from_numpy(rng.integers(0, D.NUM_IMAGES, 5000))
    f = D.factors_of(idx)
    assert torch.equal(D.index_of(f), idx)
    rows = D.sample_factors(5000, rng)
    assert rows.dtype == np.int64 and rows.shape == (5000, 5)
    assert torch.equal(D.factors_of(D.index_of(rows)), torch.from_numpy(rows))
    assert D.factors_of(0).tolist() == [[0, 0, 0, 0, 0]]
    assert D.factors_of(1).tolist() == [[0, 0, 0, 0, 1]], "posY is the fastest factor"
    assert D.factors_of(D.NUM_IMAGES - 1).tolist() == [[2, 5, 39, 31, 31]]
    assert int(D.index_of([1, 0, 0, 0, 0])) == 6 * 40 * 32 * 32, "shape is the slowest factor"
    with pytest.raises(DatasetError):
        D.factors_of(D.NUM_IMAGES)
    with pytest.raises(DatasetError, match="orientation"):
        D.index_of([0, 0, 40, 0, 0])
    with pytest.raises(DatasetError, match="integer"):
        D.index_of(np.zeros((2, 5)))


@pytest.mark.parametrize("axis", [3, 4])
def test_position_step_moves_centroid_along_its_axis_by_a_31st_of_the_span(axis):
    rng = np.random.default_rng(2)
    base = D.sample_factors(60, rng)
    first, last = base.copy(), base.copy()
    first[:, axis], last[:, axis] = 0, 31
    spans = []
    for a, b in zip(D.render(first), D.render(last), strict=True):
        (xa, ya, _), (xb, yb, _) = centroid(a), centroid(b)
        spans.append((xb - xa) if axis == 3 else (yb - ya))
    span = float(np.mean(spans))
    assert 40 < span < 60, f"positions should cover most of the frame, span {span:.1f} px"
    base = D.sample_factors(300, rng)
    base[:, axis] = rng.integers(0, 31, 300)
    moved = base.copy()
    moved[:, axis] += 1
    steps = []
    for a, b in zip(D.render(base), D.render(moved), strict=True):
        (xa, ya, area_a), (xb, yb, area_b) = centroid(a), centroid(b)
        along, across = (xb - xa, yb - ya) if axis == 3 else (yb - ya, xb - xa)
        steps.append((along, across))
        assert abs(along - span / 31) <= 0.6, "each step moves by about a 31st of the span (pixel-quantised)"
        assert abs(across) < 0.3, "and not along the other axis"
        assert abs(area_a - area_b) <= 3 + 0.1 * area_a, "a move keeps the area (up to sub-pixel phase)"
    along, across = np.mean(steps, axis=0)
    assert along == pytest.approx(span / 31, rel=0.05)
    assert abs(across) < 0.03


def test_scale_changes_area_monotonically():
    for shape in range(3):
        for orientation in (0, 7, 13, 25):
            rows = np.array([[shape, s, orientation, 16, 16] for s in range(6)])
            areas = [centroid(img)[2] for img in D.render(rows)]
            assert all(b > a for a, b in zip(areas, areas[1:], strict=False)), (shape, orientation, areas)


def test_shapes_and_orientation_are_distinguishable():
    rows = np.array([[s, 5, 0, 16, 16] for s in range(3)])
    square, ellipse, heart = (img[0] > 0 for img in D.render(rows))
    assert not torch.equal(square, ellipse) and not torch.equal(square, heart) and not torch.equal(ellipse, heart)
    ys, xs = square.nonzero(as_tuple=True)
    box = (int(ys.max() - ys.min()) + 1) * (int(xs.max() - xs.min()) + 1)
    assert int(square.sum()) == box, "the square at orientation 0 is axis-aligned and fills its bounding box"
    ys, xs = ellipse.nonzero(as_tuple=True)
    assert int(xs.max() - xs.min()) > 1.5 * int(ys.max() - ys.min()), "the ellipse at 0 lies along x"
    ys, xs = heart.nonzero(as_tuple=True)
    cy = float(ys.float().mean())
    upper_width = int(heart[int(cy) - 3].sum())
    lower_width = int(heart[int(cy) + 4].sum())
    assert upper_width > lower_width, "the heart's lobes are up and its tip down at orientation 0"
    turned = D.render(np.array([[2, 5, o, 16, 16] for o in (0, 10, 20, 39)]))
    assert not torch.equal(turned[0], turned[1]) and not torch.equal(turned[0], turned[2])
    assert torch.equal(turned[0], turned[3]), "orientation 2π equals 0, as in the original grid"


def test_sprites_stay_inside_the_frame():
    rows = np.array([[s, 5, o, x, y] for s in range(3) for o in range(0, 40, 3) for x, y in ((0, 0), (31, 31))])
    centre = rows.copy()
    centre[:, 3:] = 16 + rows[:, 3:] % 2
    clipped = [centroid(a)[2] - centroid(b)[2] for a, b in zip(D.render(rows), D.render(centre), strict=True)]
    assert clipped == [0] * len(rows), "a sprite at the edge loses no pixels to the frame"


def test_edges_are_clean_binary_supersampled():
    bank = D.build_sprite_bank()
    assert bank.shape == (720, 2, 2, D.CROP, D.CROP) and set(np.unique(bank)) == {0, 1}
    assert np.array_equal(bank, D.build_sprite_bank())
    border = np.concatenate([bank[..., 0, :], bank[..., -1, :], bank[..., :, 0], bank[..., :, -1]], axis=-1)
    assert border.max() == 0, "crops have room to spare"


def _digest_script() -> str:
    return ("import hashlib, numpy as np; from engine.data import dsprites as D;"
            "f = D.sample_factors(512, np.random.default_rng(7));"
            "print(hashlib.sha256(D.render(f).numpy().tobytes()).hexdigest())")


def test_deterministic_across_runs():
    here = hashlib.sha256(D.render(D.sample_factors(512, np.random.default_rng(7))).numpy().tobytes()).hexdigest()
    other = subprocess.run([sys.executable, "-c", _digest_script()], cwd=REPO, capture_output=True, text=True,
                           check=True, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert other.stdout.strip() == here


def test_dataset_methods_work_on_the_packed_form(full):
    train, test = full.split(0.1, seed=3)
    assert len(train) + len(test) == len(full) and len(test) == 73_728
    idx = test[:64]
    f = full.factors_at(idx)
    assert torch.equal(full.images_at(idx), D.render(f))
    assert torch.equal(full.labels_at(idx), f[:, 0])
    assert torch.equal(full.index_of(f), idx)
    summary = full.summary()
    assert summary["size"] == 737_280 and summary["shape"] == [1, 64, 64] and "storage" in summary
    assert full.to("cpu") is full and full.device.type == "cpu"
    rows = full.sample_factors(32, np.random.default_rng(0))
    assert torch.equal(full.render_factors(rows), full.images_at(full.index_of(rows)))
    assert full.has_factors and full.has_labels and not full.is_sample
    assert torch.equal(full.images_at(torch.tensor([-1])), full.images_at(torch.tensor([len(full) - 1])))
    with pytest.raises(IndexError):
        full.images_at(torch.tensor([len(full)]))


def test_factor_filters_and_subsets_are_sub_grids(full):
    hearts = load_dataset("dsprites?shape=heart&scale=0-1")
    assert len(hearts) == 2 * 40 * 32 * 32 and hearts.factor_spec.sizes == (1, 2, 40, 32, 32)
    assert hearts.factor_spec.values[1] == full.factor_spec.values[1][:2]
    idx = torch.arange(0, len(hearts), 997)
    orig = hearts.original_factors_at(idx)
    assert bool((orig[:, 0] == 2).all()) and bool((orig[:, 1] <= 1).all())
    assert torch.equal(hearts.images_at(idx), full.images_at(D.index_of(orig)))
    assert set(hearts.labels.unique().tolist()) == {2}
    sub = load_dataset("dsprites?subset=5000&seed=4")
    again = load_dataset("dsprites", subset=5000, seed=4)
    other = load_dataset("dsprites?subset=5000&seed=5")
    assert len(sub) == 5000 and sub.is_sample
    assert torch.equal(sub.factors_at(torch.arange(5000)), again.factors_at(torch.arange(5000)))
    assert not torch.equal(sub.factors_at(torch.arange(5000)), other.factors_at(torch.arange(5000)))
    picked = torch.tensor([0, 17, 4999])
    assert torch.equal(sub.images_at(picked), full.images_at(D.index_of(sub.factors_at(picked))))
    assert torch.equal(sub.index_of(sub.factors_at(picked)), picked)
    rows = sub.sample_factors(16, np.random.default_rng(0))
    assert torch.equal(sub.render_factors(rows), D.render(rows)), "metrics may render outside the subset"
    both = load_dataset("dsprites?posX=3,5&posY=0-1&orientation=0&subset=10")
    assert len(both) == 10 and both.factor_spec.sizes == (3, 6, 1, 2, 2)


@pytest.mark.parametrize("spec, message", [
    ("dsprites?shape=star", "shape"),
    ("dsprites?scale=6", "0…5"),
    ("dsprites?posX=5-2", "posX"),
    ("dsprites?colour=1", "unknown option"),
    ("dsprites?subset=0", "subset"),
    ("dsprites?subset=many", "subset"),
    ("dsprites?subset=737281", "subset"),
    ("dsprites?shape=heart&subset=245761", "subset"),
    ("dsprites?seed=x", "seed"),
    ("dsprites?source=web", "source"),
])
def test_bad_options_are_rejected(spec, message):
    with pytest.raises(DatasetError, match=message):
        load_dataset(spec)


# --- the official file (checked on a small grid written in the official layout) ------------------------

SMALL = (3, 1, 2, 2, 2)


def _official_like(path: Path, sizes=SMALL, mutate=None) -> Path:
    n = int(np.prod(sizes))
    local = D._decode(torch.arange(n), sizes).numpy()
    imgs = (D.render(local).numpy()[:, 0] // 255).astype(np.uint8)
    arrays = {
        "imgs": imgs,
        "latents_classes": np.concatenate([np.zeros((n, 1), np.int64), local], axis=1),
        "latents_values": np.zeros((n, 6)),
        "metadata": np.array({"title": "dSprites"}, dtype=object),
    }
    if mutate:
        mutate(arrays)
    np.savez_compressed(path, **arrays)
    return path


def test_official_layout_loads_packed(tmp_path):
    path = _official_like(tmp_path / D.OFFICIAL_NAME)
    ds = D.load_official_npz(path, sizes=SMALL, chunk_rows=5)
    n = int(np.prod(SMALL))
    assert len(ds) == n and ds.shape == (1, 64, 64) and ds.images is None
    idx = torch.arange(n)
    assert torch.equal(ds.images_at(idx), D.render(ds.factors_at(idx)))
    assert ds.labels.tolist() == ds.factors[:, 0].tolist()
    rows = ds.sample_factors(8, np.random.default_rng(0))
    assert torch.equal(ds.render_factors(rows), D.render(rows)), "the generic grid lookup serves the metrics"
    hearts = D.load_official_npz(path, sizes=SMALL, filters={"shape": "heart"})
    assert len(hearts) == n // 3 and hearts.factor_spec.sizes == (1, 1, 2, 2, 2)
    assert torch.equal(hearts.images_at(torch.arange(len(hearts))), ds.images_at(torch.arange(2 * n // 3, n)))
    sub = D.load_official_npz(path, sizes=SMALL, subset=5, seed=1)
    assert len(sub) == 5 and sub.is_sample
    with pytest.raises(DatasetError, match="complete grid"):
        sub.render_factors(rows)


@pytest.mark.parametrize("mutate, message", [
    (lambda a: a.pop("imgs"), "'imgs' is missing"),
    (lambda a: a.update(imgs=a["imgs"][:-1]), r"\[imgs\]: expected"),
    (lambda a: a.update(imgs=a["imgs"].astype(np.float32)), r"\[imgs\]: expected uint8"),
    (lambda a: a.update(imgs=a["imgs"] * 3), "binary"),
    (lambda a: a.update(latents_classes=a["latents_classes"][:, :5]), "latents_classes"),
    (lambda a: a["latents_classes"].__setitem__((0, 3), 7), "orientation"),
])
def test_official_layout_bad_input(tmp_path, mutate, message):
    path = _official_like(tmp_path / "bad.npz", mutate=mutate)
    with pytest.raises(DatasetError, match=message):
        D.load_official_npz(path, sizes=SMALL)


def test_official_file_is_found_and_validated_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_EXPLORER_DATA", str(tmp_path))
    with pytest.raises(DatasetError, match="not found"):
        load_dataset("dsprites-official")
    _official_like(tmp_path / D.OFFICIAL_NAME)
    assert D.find_official_file() == tmp_path / D.OFFICIAL_NAME
    with pytest.raises(DatasetError, match=r"\[imgs\]: expected uint8 of shape \(737280, 64, 64\)"):
        load_dataset("dsprites-official")
    with pytest.raises(DatasetError, match=r"expected uint8 of shape \(737280"):
        load_dataset(str(tmp_path / D.OFFICIAL_NAME))
