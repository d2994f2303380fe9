"""Labelled traversal figures (row labels: latent, matched factor, KL; the value axis) and `traverse --cell-size`."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from engine import explore
from engine.config import TrainConfig
from engine.imaging import labelled_grid
from engine.training import TrainingSession
from tests.engine.test_cli import ENV, ROOT

POSITION_ONLY = "dsprites?shape=square&scale=5&orientation=0"


def _cells(rows: int = 3, cols: int = 4, size: int = 8) -> np.ndarray:
    return np.full((rows, cols, size, size), 255, dtype=np.uint8)  # white sprites, so labels are what is dark


def test_figure_grows_with_the_cell_size_and_carries_labels():
    labels = ["z0 · posX 0.81 · 2.10 nats", "z1 · posY 0.64 · 1.00 nats", "z2 · 0.00 nats"]
    small = labelled_grid(_cells(), labels, ["-2", "-1", "+1", "+2"], "z_j in prior standard deviations", 16)
    large = labelled_grid(_cells(), labels, ["-2", "-1", "+1", "+2"], "z_j in prior standard deviations", 64)
    assert small.dtype == np.uint8 and small.ndim == 3 and small.shape[2] == 3
    assert large.shape[0] > small.shape[0] + 3 * 40 and large.shape[1] > small.shape[1] + 4 * 40
    # text left of the first cell (the row labels) and below the grid (the value axis)
    label_band = large[8:8 + 64, :]
    dark = np.flatnonzero((label_band.min(axis=2) < 100).any(axis=0))
    assert dark.size and dark.min() < 40, "the row label is drawn at the left"
    axis_rows = large[8 + 3 * 66:]
    assert (axis_rows.min(axis=2) < 100).any(), "the value axis and its title are drawn below the grid"
    without = labelled_grid(_cells(), ["", "", ""], ["", "", "", ""], "", 64)
    assert without.shape[1] < large.shape[1], "labels take room"


def test_dimmed_rows_are_greyed_and_bad_input_is_refused():
    figure = labelled_grid(_cells(2, 2), ["z0", "z1"], ["a", "b"], "", 32, dimmed=[False, True])
    bright = figure[8:40].max()
    dim_row = figure[8 + 34:8 + 66, 40:].reshape(-1, 3)
    assert bright == 255 and dim_row.min() > 100 and (dim_row < 255).any()
    with pytest.raises(ValueError, match="row labels"):
        labelled_grid(_cells(2, 2), ["z0"], ["a", "b"])
    with pytest.raises(ValueError, match="cell size"):
        labelled_grid(_cells(2, 2), ["z0", "z1"], ["a", "b"], cell_size=4)
    with pytest.raises(ValueError, match="uint8"):
        labelled_grid(_cells(2, 2).astype(np.float32), ["z0", "z1"], ["a", "b"])


def test_latent_labels_and_axis():
    stats = explore.LatentStats(np.array([1.234, 0.001]), np.array([0, 1]), np.array([-3.0, -3.0]),
                                np.array([3.0, 3.0]), np.zeros((2, 2)), np.arange(2), np.ones(2))
    assert explore.latent_label(stats, 0, "posX 0.62") == "z0 · posX 0.62 · 1.23 nats"
    assert explore.latent_label(stats, 1) == "z1 · 0.00 nats"
    labels, title = explore.traversal_axis(stats, explore.traversal_values(stats, [0, 1], 3))
    assert labels == ["-3.0", "+0.0", "+3.0"] and "prior standard deviations" in title


@pytest.fixture(scope="module")
def squares_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("squares")
    config = TrainConfig(dataset=POSITION_ONLY, family="beta-vae", max_steps=20, batch_size=32,
                         hparams={"latent_dim": 3, "hidden": 32, "depth": 1, "backbone": "mlp"})
    session = TrainingSession(config)
    list(session.run())
    return session.save_checkpoint(out / "squares.safetensors")


def traverse(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), "traverse", *args], capture_output=True,
                          text=True, cwd=ROOT, env=ENV, timeout=300)


def test_traverse_cell_size_via_the_cli(squares_checkpoint, tmp_path):
    sizes = {}
    for cell in (16, 48):
        result = traverse(str(squares_checkpoint), "--out", str(tmp_path / f"t{cell}.png"), "--steps", "5",
                          "--cell-size", str(cell))
        assert result.returncode == 0, result.stderr
        sizes[cell] = Image.open(tmp_path / f"t{cell}.png").size
    assert sizes[48][0] > sizes[16][0] + 100 and sizes[48][1] > sizes[16][1] + 3 * 30  # 5 columns × 3 rows
    figure = np.asarray(Image.open(tmp_path / "t48.png").convert("RGB"))
    assert (figure[:, :20].min(axis=2) < 100).any(), "row labels at the left"
    gif = traverse(str(squares_checkpoint), "--out", str(tmp_path / "t.gif"), "--steps", "4", "--cell-size", "32")
    assert gif.returncode == 0, gif.stderr
    frames = Image.open(tmp_path / "t.gif")
    assert frames.n_frames == 6 and frames.size[1] > 3 * 32
    bad = traverse(str(squares_checkpoint), "--out", str(tmp_path / "x.png"), "--cell-size", "2")
    assert bad.returncode == 2 and "--cell-size must be in 8…1024" in bad.stderr


def test_cli_row_labels_name_the_matched_factor(squares_checkpoint):
    from engine.checkpoint import load_checkpoint
    from engine.cli import _factor_labels
    from engine.data import load_dataset

    loaded = load_checkpoint(squares_checkpoint)
    labels = _factor_labels(loaded.model, load_dataset(POSITION_ONLY), 0, loaded.step, [0, 1, 2])
    assert all(label.split()[0] in ("posX", "posY") and 0.0 <= float(label.split()[1]) <= 1.0 for label in labels)
    assert _factor_labels(loaded.model, load_dataset("digits"), 0, 0, [0, 1]) == ["", ""]
