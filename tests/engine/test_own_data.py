"""Your own data, first class (issue 21 §2–3): factors.csv / npz factors make a factor world, malformed factor
tables are named by row and column, the test split takes a fraction or a count with a floor, and a small set's
epoch-end work and preview PNGs are paced by wall time (a fake clock: no timed asserts)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from engine.cli import build_parser, train_config
from engine.config import TrainConfig
from engine.data import DatasetError, load_dataset
from engine.data.base import held_out_size, parse_test_split
from engine.events import EpochSummary
from engine.metrics import MetricSizes, compute_metrics
from engine.training import TrainingSession

XS = (4, 8, 12, 16)
RADII = (2.0, 3.0, 4.5)
KINDS = ("disc", "square")


def draw(x: int, radius: float, kind: str) -> np.ndarray:
    image = Image.new("L", (24, 24), 0)
    box = (x - radius, 12 - radius, x + radius, 12 + radius)
    (ImageDraw.Draw(image).ellipse if kind == "disc" else ImageDraw.Draw(image).rectangle)(box, fill=255)
    return np.asarray(image)


def shapes_folder(root: Path, drop: int = 0, csv_rows: list[str] | None = None) -> Path:
    """A complete 4 × 3 × 2 grid of shapes (24 PNGs) with its factors.csv; `drop` leaves the last few out."""
    root.mkdir(parents=True, exist_ok=True)
    rows = ["file,x,radius,kind"]
    for i, (x, r, kind) in enumerate(itertools.product(XS, RADII, KINDS)):
        if i >= 24 - drop:
            break
        name = f"s{i:02d}.png"
        Image.fromarray(draw(x, r, kind)).save(root / name)
        rows.append(f"{name},{x},{r},{kind}")
    (root / "factors.csv").write_text("\n".join(csv_rows if csv_rows is not None else rows) + "\n")
    return root


# --- factor worlds -------------------------------------------------------------------------------------------------
def test_factors_csv_makes_a_complete_grid_factor_world(tmp_path):
    ds = load_dataset(str(shapes_folder(tmp_path / "shapes")))
    assert len(ds) == 24 and ds.has_factors and ds.factor_grid_complete and ds.factor_grid_note() is None
    spec = ds.factor_spec
    assert spec.names == ("x", "radius", "kind") and spec.sizes == (4, 3, 2)
    assert spec.values[0] == (4.0, 8.0, 12.0, 16.0) and spec.values[1] == RADII
    assert ds.extra["factor_labels"] == (None, None, KINDS), "a label column keeps its labels, sorted"
    assert ds.summary()["factors"] == {"x": 4, "radius": 3, "kind": 2} and ds.summary()["factor_grid_complete"]
    # each image is found by its own factor tuple: what BetaVAE/FactorVAE need
    rows = ds.sample_factors(40, np.random.default_rng(0))
    for row, image in zip(rows, ds.render_factors(rows), strict=True):
        x, r, kind = XS[row[0]], RADII[row[1]], KINDS[row[2]]
        assert np.array_equal(image[0].numpy(), draw(x, r, kind))


def test_a_partial_grid_uses_observed_pairs_and_says_what_needs_a_full_grid(tmp_path):
    ds = load_dataset(str(shapes_folder(tmp_path / "partial", drop=5)))
    assert len(ds) == 19 and ds.has_factors and not ds.factor_grid_complete
    assert ds.factor_grid_note().startswith("needs a full factor grid: ")
    rng = np.random.default_rng(1)
    rows = ds.sample_factors(200, rng)
    observed = {tuple(r) for r in ds.factors.tolist()}
    assert {tuple(r) for r in rows.tolist()} <= observed, "only observed (image, factor) pairs are drawn"
    images = ds.render_factors(rows)
    for row, image in zip(rows[:30], images[:30], strict=True):
        assert np.array_equal(image[0].numpy(), draw(XS[row[0]], RADII[row[1]], KINDS[row[2]]))
    with pytest.raises(DatasetError, match="no image has"):
        ds.render_factors(np.array([[3, 2, 1]]))  # the dropped last combination

    def represent(factors: np.ndarray) -> np.ndarray:  # a perfectly disentangled code, plus one nuisance latent
        return np.concatenate([factors.astype(np.float64), np.zeros((len(factors), 1))], axis=1)

    sizes = MetricSizes(train_points=300, test_points=150, batch_size=16, variance_points=300)
    scores = compute_metrics(represent, ds, ("beta_vae", "mig", "dci", "sap"), seed=0, sizes=sizes)
    assert "beta_vae" not in scores and scores["unavailable"]["beta_vae"].startswith("needs a full factor grid")
    assert scores["mig"] > 0.9 and scores["dci_disentanglement"] > 0.9 and scores["sap"] > 0.5
    assert np.asarray(scores["mi_matrix"]).shape == (4, 3) and scores["factor_names"] == ["x", "radius", "kind"]
    with pytest.raises(ValueError, match="needs a full factor grid"):
        compute_metrics(represent, ds, ("factor_vae",), sizes=sizes)
    subset = load_dataset("dsprites?subset=300")
    assert subset.factor_grid_note() is None and subset.summary()["factor_grid_complete"], \
        "dSprites renders any factor row, even as a subset"


def test_npz_factors_with_names(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (30, 8, 8), dtype=np.uint8)
    factors = np.stack([np.arange(30) % 3, np.arange(30) % 5 * 0.5], axis=1)
    np.savez(tmp_path / "own.npz", images=images, factors=factors, factor_names=np.array(["a", "b"]))
    ds = load_dataset(str(tmp_path / "own.npz"))
    assert ds.factor_spec.names == ("a", "b") and ds.factor_spec.sizes == (3, 5)
    assert ds.factor_spec.values[1] == (0.0, 0.5, 1.0, 1.5, 2.0) and ds.factors[7].tolist() == [1, 2]
    np.savez(tmp_path / "bad.npz", images=images, factors=factors[:20])
    with pytest.raises(DatasetError, match=r"bad.npz \[factors\]: expected shape \(30, K\)"):
        load_dataset(str(tmp_path / "bad.npz"))
    np.savez(tmp_path / "flat.npz", images=images, factors=np.ones(30))
    with pytest.raises(DatasetError, match="same value in every row"):
        load_dataset(str(tmp_path / "flat.npz"))


GOOD = ["file,x,size", "a.png,1,small", "b.png,2,large", "c.png,3,small"]


@pytest.mark.parametrize("rows, message", [
    (GOOD[:3] + ["z.png,3,small"], r"row 4, column 'file': no readable image named 'z.png'"),
    (GOOD + ["b.png,1,large"], r"row 5, column 'file': 'b.png' is listed twice \(first in row 3\)"),
    (["file,x,size", "a.png,1,small", "b.png,two,large", "c.png,3,small"],
     r"row 3, column 'x': 'two' is not a number, but the column is numeric"),
    (["file,x,size", "a.png,1,small", "b.png,1,large", "c.png,1,small"], r"column 'x' has the same value \('1'\)"),
    (GOOD[:3], r"no row for c.png"),
    (["file,x,size", "a.png,1,small", "b.png,2", "c.png,3,small"], r"row 3 has 2 cells; the header has 3"),
    (["file,x,size", "a.png,1,small", "b.png, ,large", "c.png,3,small"], r"row 3, column 'x': the value is empty"),
    (["file,x,x", "a.png,1,1"], r"row 1, column 3: the factor name 'x' is used twice"),
    (["file"], r"row 1 names no factor columns"),
    ([], r"the file is empty"),
])
def test_malformed_factor_tables_name_the_row_and_column(tmp_path, rows, message):
    root = tmp_path / "own"
    root.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(draw(8, 3.0, "disc")).save(root / name)
    (root / "factors.csv").write_text("\n".join(rows) + ("\n" if rows else ""))
    with pytest.raises(DatasetError, match=message) as info:
        load_dataset(str(root))
    assert "factors.csv" in str(info.value)


def test_an_unreadable_image_drops_its_factor_row_and_a_separate_csv_works(tmp_path):
    root = shapes_folder(tmp_path / "shapes")
    (root / "s03.png").write_bytes(b"broken")
    ds = load_dataset(str(root))
    assert len(ds) == 23 and ds.extra["skipped"][0][0] == "s03.png" and not ds.factor_grid_complete
    elsewhere = tmp_path / "labels.csv"
    (root / "factors.csv").rename(elsewhere)
    assert not load_dataset(str(root)).has_factors
    assert load_dataset(f"{root}?factors={elsewhere}").factor_spec.sizes == (4, 3, 2)
    with pytest.raises(DatasetError, match="nowhere.csv: no such factors file"):
        load_dataset(f"{root}?factors=nowhere.csv")


# --- the test split ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n, fraction, count, expected", [
    (200, 0.02, 0, 32), (200, 0.25, 0, 50), (200, 0.0, 0, 0), (200, 0.0, 10, 32), (200, 0.0, 60, 60),
    (100_000, 0.02, 0, 2000), (20, 0.1, 0, 4), (3, 0.5, 0, 2), (2, 0.0, 5, 1), (1, 0.5, 0, 0), (200, 0.0, 500, 199),
])
def test_held_out_size_has_a_floor(n, fraction, count, expected):
    assert held_out_size(n, fraction, count) == expected


def test_parse_test_split_and_the_cli_flag(tmp_path):
    assert parse_test_split("0.1") == (0.1, 0) and parse_test_split("25%") == (0.25, 0)
    assert parse_test_split("40") == (0.0, 40) and parse_test_split("0") == (0.0, 0)
    for bad in ("x", "1.5", "-3", "100%"):
        with pytest.raises(DatasetError, match="test"):
            parse_test_split(bad)
    args = build_parser().parse_args(["train", "--model", "vae", "--dataset", "digits", "--test-split", "40",
                                      "--out", str(tmp_path / "r")])
    config = train_config(args)
    assert config.test_count == 40 and "test_count = 40" in config.to_toml()
    assert TrainConfig.from_dict({"data": {"dataset": "digits", "test_count": 40}}).test_count == 40


def test_a_small_split_is_raised_and_said(tmp_path):
    root = tmp_path / "small"
    root.mkdir()
    for i in range(50):
        Image.fromarray(draw(4 + i % 16, 2.0 + i % 3, "disc")).save(root / f"{i:02d}.png")
    config = TrainConfig(dataset=str(root), family="vae", test_fraction=0.02, max_steps=1, device="cpu",
                         hparams={"latent_dim": 2, "hidden": 8, "depth": 1, "backbone": "mlp"})
    session = TrainingSession(config)
    assert session.info()["test_size"] == 10 and session.info()["train_size"] == 40
    assert any("raised from 1 to 10 images" in w for w in session.warnings)


# --- pacing: a small set ends an epoch every step --------------------------------------------------------------------
class FakeClock:
    """Advances `tick` seconds per reading: time passes with the work done, and no test waits on a real clock."""

    def __init__(self, tick: float) -> None:
        self.now, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


def test_epoch_end_work_and_preview_pngs_are_paced_by_wall_time(tmp_path):
    root = tmp_path / "dots"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(200):
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(root / f"{i:03d}.png")
    config = TrainConfig(dataset=str(root), family="vae", max_steps=2000, batch_size=128, test_fraction=0.02,
                         device="cpu", threads=1, preview_every_s=0.5, out_dir=str(tmp_path / "run"),
                         hparams={"latent_dim": 2, "hidden": 8, "depth": 1, "backbone": "mlp"})
    session = TrainingSession(config)
    assert session.steps_per_epoch == 1, "168 training images at batch 128: every step ends an epoch"
    session.clock = clock = FakeClock(0.02)
    summaries = [e for e in session.run() if isinstance(e, EpochSummary)]
    assert session.step == 2000 and session.epoch == 2000
    assert 3 <= len(summaries) <= clock.now / 2.0 + 2, "epoch-end work at most every 2 s of (fake) time"
    assert summaries[-1].step == 2000 and summaries[-1].test, "the last epoch is summarised and scored"
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    pngs = sorted(p.name for p in files if p.suffix == ".png")
    assert len(files) <= 50, f"{len(files)} files after 2,000 steps"
    minutes = clock.now / 60.0
    assert 3 * 3 <= len(pngs) <= 3 * (3 + int(minutes) + 1), "the last 3 sets plus one per minute"
    assert "step_00002000_reconstructions.png" in pngs, "the last preview is kept"
    history_steps = {r["step"] for r in session.history if r.get("kind", "step") == "step"}
    assert len(history_steps) >= 1000, "step metrics are still recorded every step"
    assert torch.isfinite(torch.tensor(summaries[-1].train["total"]))


def test_the_documented_example_folder_loads_as_a_factor_world(tmp_path):
    """docs/datasets.md's example: the full grid has all five scores, a partial one says what it cannot give."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "docs" / "examples" / "make_shapes_folder.py"
    spec = importlib.util.spec_from_file_location("make_shapes_folder", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert example.write_folder(tmp_path / "full") == 225
    full = load_dataset(str(tmp_path / "full"))
    assert full.factor_spec.names == ("shape", "x", "y", "size") and full.factor_grid_complete
    kept = example.write_folder(tmp_path / "partial", keep=0.8)
    partial = load_dataset(str(tmp_path / "partial"))
    assert len(partial) == kept < 225 and partial.factor_grid_note().startswith("needs a full factor grid")


def test_cli_trains_on_own_factors_and_eval_says_what_needs_a_full_grid(tmp_path, capsys):
    """Through the CLI: --test-split, skipped files on stderr, MIG scored, BetaVAE 'n/a: needs a full grid'."""
    from engine.cli import main

    root = shapes_folder(tmp_path / "own", drop=4)
    (root / "junk.png").write_bytes(b"junk")
    out = tmp_path / "run"
    assert main(["train", "--model", "vae", "--dataset", str(root), "--set", "latent_dim=3", "--set", "hidden=16",
                 "--set", "depth=1", "--set", "backbone=mlp", "--max-steps", "4", "--test-split", "8", "--quiet",
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "1 unreadable file(s) skipped: junk.png" in err and "  skipped junk.png: not a readable image" in err
    assert "(12 train / 8 test images" in err
    assert main(["eval", str(out / "checkpoints" / "last.safetensors"), "--metrics", "mig,beta_vae", "--iwae-k", "0",
                 "--metric-sizes", "quick"]) == 0
    printed = capsys.readouterr().out
    assert "\nmig " in printed and "beta_vae      n/a: needs a full factor grid" in printed


def test_observed_rows_are_found_even_when_the_factor_space_overflows_int64(tmp_path):
    """12 factors of 50 values: 50¹² ≈ 2.4e20 combinations, past int64 — rows are matched whole, never by a key."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (50, 8, 8), dtype=np.uint8)
    factors = np.stack([rng.permutation(50) for _ in range(12)], axis=1)
    np.savez(tmp_path / "wide.npz", images=images, factors=factors)
    ds = load_dataset(str(tmp_path / "wide.npz"))
    assert not ds.factor_grid_complete
    assert torch.equal(ds.render_factors(ds.factors.numpy()), ds.images)
