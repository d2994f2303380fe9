"""Exploration panels with a tiny model trained for a few dozen steps on the 8×8 digits (pytest-qt, offscreen)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from engine import explore
from engine.data import load_dataset
from engine.imaging import to_uint8
from engine.models import create_model
from gui.model_source import ModelSource


def _train(family: str, steps: int = 40, **hp):
    torch.manual_seed(0)
    ds = load_dataset("digits")
    model = create_model(family, ds.shape, ds.num_classes, latent_dim=4, hidden=32, depth=1, **hp)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = ds.images.float() / 255.0, ds.labels
    for step in range(steps):
        sl = slice((step * 128) % 1600, (step * 128) % 1600 + 128)
        out = model.loss(x[sl], y[sl] if model.is_conditional else None, step)
        opt.zero_grad()
        out.total.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def vae():
    return _train("vae")


@pytest.fixture
def make_panel(qtbot):
    panels = []

    def make(cls, model, dataset):
        source = ModelSource()
        panel = cls(source)
        qtbot.addWidget(panel)
        panel.resize(900, 600)
        panel.show()
        _, test = dataset.split(0.2, seed=0)
        source.set_static(model, dataset, test, {"step": 40})
        panels.append((panel, source))
        return panel

    yield make
    for panel, _ in panels:
        panel.shutdown()
        assert panel.runner.is_shut_down


def test_traversal_grid_sorted_by_kl_and_slider_moves_one_dim(qtbot, make_panel, vae, digits, tmp_path):
    from gui.panels.traversal import TraversalPanel

    panel = make_panel(TraversalPanel, vae, digits)
    qtbot.waitUntil(lambda: panel.grid is not None and panel.single is not None, timeout=10000)
    kl = panel.stats.kl_per_dim
    assert list(panel.shown_dims) == list(np.argsort(-kl, kind="stable"))
    assert np.all(np.diff(kl[panel.shown_dims]) <= 0)
    rows = len(panel.shown_dims)
    assert panel.grid.shape == (rows * 9 + 1, 10 * 9 + 1)

    before_z, before_img = panel.current_z.copy(), panel.single.copy()
    dim = int(panel.stats.order[0])
    panel.set_slider(dim, 2.5)
    qtbot.waitUntil(lambda: not np.array_equal(panel.single, before_img), timeout=5000)
    changed = np.flatnonzero(panel.current_z != before_z)
    assert list(changed) == [dim] and abs(panel.current_z[dim] - 2.5) < 0.05
    expected = explore.decode_codes(vae, panel.current_z)
    assert np.array_equal(panel.single, to_uint8(expected)[0, 0])

    panel.reset_to_base()
    assert np.array_equal(panel.current_z, panel.base_z)

    png, gif, csv = panel.export_png(tmp_path / "t.png"), panel.export_gif(tmp_path / "t.gif"), \
        panel.export_csv(tmp_path / "t.csv")
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] >= 512
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames > 10
    assert csv.read_text().splitlines()[0].startswith("dim,kl_nats")
