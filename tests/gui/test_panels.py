"""Exploration panels with a tiny model trained for a few dozen steps on the 8×8 digits (pytest-qt, offscreen)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from engine import explore
from engine.data import load_dataset
from engine.imaging import to_uint8
from gui.model_source import ModelSource
from tests.helpers import train_digits_model


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def vae():
    return train_digits_model("vae")


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


def test_interpolation_endpoints_decode_to_reconstructions(qtbot, make_panel, vae, digits, tmp_path):
    from gui.panels.interpolation import InterpolationPanel

    panel = make_panel(InterpolationPanel, vae, digits)
    panel.set_pairs([(2, 5), (7, 11)])
    qtbot.waitUntil(lambda: panel.path_images is not None and panel.path_images.shape[0] == 2, timeout=10000)
    test = panel.test_indices()
    for row, (a, b) in enumerate([(2, 5), (7, 11)]):
        rec = to_uint8(explore.reconstructions(vae, digits.images_at(test[torch.tensor([a, b])])))
        assert np.array_equal(panel.path_images[row, 0], rec[0])
        assert np.array_equal(panel.path_images[row, -1], rec[1])
        assert not np.array_equal(panel.path_images[row, 4], rec[0])
    with Image.open(panel.export_gif(tmp_path / "i.gif")) as im:
        assert im.format == "GIF" and im.n_frames == 2 * 10 - 2


def test_interpolation_blends_labels_for_a_conditional_model(qtbot, make_panel, digits):
    from gui.panels.interpolation import InterpolationPanel

    cvae = train_digits_model("cvae", steps=30)
    panel = make_panel(InterpolationPanel, cvae, digits)
    test = panel.test_indices()
    a, b = next((a, b) for a, b in [(0, 1), (0, 2), (0, 3), (0, 4)]
                if int(digits.labels[test[a]]) != int(digits.labels[test[b]]))
    panel.set_pairs([(a, b)])
    qtbot.waitUntil(lambda: panel.path_images is not None and "held" in panel.note.text(), timeout=10000)
    held = panel.path_images.copy()
    panel.blend_check.setChecked(True)
    qtbot.waitUntil(lambda: "blended" in panel.note.text(), timeout=10000)
    idx = test[torch.tensor([a, b])]
    x, y = digits.images_at(idx), digits.labels_at(idx)
    end = to_uint8(explore.reconstructions(cvae, x[1:], y[1:]))[0]
    assert np.array_equal(panel.path_images[0, -1], end)  # t = 1 decodes B with B's own label
    assert not np.array_equal(panel.path_images[0, -1], held[0, -1])


def test_conditional_grid_changes_with_class_and_keeps_style(qtbot, make_panel, digits, vae, tmp_path):
    from gui.panels.conditional import ConditionalPanel

    cvae = train_digits_model("cvae", steps=30)
    panel = make_panel(ConditionalPanel, cvae, digits)
    qtbot.waitUntil(lambda: panel.grid is not None and panel.analogy is not None, timeout=10000)
    n = panel.samples_spin.value()
    cells = panel.grid[1:, 1:].reshape(10, 9, n, 9)[:, :8, :, :8]  # class, h, sample, w
    z = explore.prior_codes(cvae, n, seed=panel.seed)
    for c in (0, 3):
        assert np.array_equal(cells[c].transpose(1, 0, 2), to_uint8(explore.decode_codes(cvae, z, c))[:, 0])
    assert not np.array_equal(cells[0], cells[3])
    first = panel.grid.copy()
    panel.resample()
    qtbot.waitUntil(lambda: not np.array_equal(panel.grid, first), timeout=5000)
    with Image.open(panel.export_png(tmp_path / "c.png")) as im:
        assert im.format == "PNG"

    other = make_panel(ConditionalPanel, vae, digits)
    qtbot.waitUntil(lambda: "not conditional" in other.explain.text(), timeout=5000)
    assert other.grid is None


def test_latent_map_click_decodes_the_plane_point(qtbot, make_panel, vae, digits, tmp_path):
    from gui.panels.latent_map import LatentMapPanel

    panel = make_panel(LatentMapPanel, vae, digits)
    qtbot.waitUntil(lambda: panel.embedding is not None and panel.manifold is not None, timeout=10000)
    emb = panel.embedding
    assert emb.method == "pca" and emb.coords.shape == (len(panel.indices), 2)
    x, y = (float(v) for v in emb.coords[:20].mean(0) + 0.3)
    panel.click_plane(x, y)
    qtbot.waitUntil(lambda: panel.probe_code is not None, timeout=5000)
    expected = to_uint8(explore.decode_codes(vae, emb.to_code([[x, y]])))[0, 0]
    assert np.array_equal(panel.probe, expected)
    panel.show_point(3)
    qtbot.waitUntil(lambda: panel.probe.shape == (10, 19), timeout=5000)
    assert panel.export_csv(tmp_path / "m.csv").read_text().count("\n") == len(panel.indices) + 1
    with Image.open(panel.export_png(tmp_path / "m.png")) as im:
        assert im.format == "PNG"


def test_gallery_anomalies_rank_the_worst_reconstructions(qtbot, make_panel, vae, digits, tmp_path):
    from gui.panels.gallery import GalleryPanel

    panel = make_panel(GalleryPanel, vae, digits)
    qtbot.waitUntil(lambda: panel.grid is not None, timeout=10000)
    assert panel.grid.shape[0] == 6 * 9 + 1  # 36 images: 3 rows of inputs, 3 of reconstructions
    panel.set_view("Anomalies")
    qtbot.waitUntil(lambda: panel.errors is not None, timeout=10000)
    items = panel.test_indices()[: len(panel.errors)]
    expected = explore.reconstruction_errors(vae, digits.images_at(items))
    assert np.allclose(panel.errors, expected)
    assert panel.errors[panel.worst[0]] == expected.max()
    assert panel.export_csv(tmp_path / "e.csv").read_text().startswith("index,reconstruction_error_nats")
    with Image.open(panel.export_png(tmp_path / "g.png")) as im:
        assert im.format == "PNG"


def test_a_hidden_panel_waits_until_it_is_shown(qtbot, vae, digits):
    from gui.panels.traversal import TraversalPanel

    source = ModelSource()
    panel = TraversalPanel(source)
    qtbot.addWidget(panel)
    _, test = digits.split(0.2, seed=0)
    try:
        source.set_static(vae, digits, test, {"step": 40})
        qtbot.wait(300)
        assert panel.grid is None and panel.runner.is_idle(), "a hidden tab must not run inference"
        panel.resize(900, 600)
        panel.show()
        qtbot.waitUntil(lambda: panel.grid is not None, timeout=10000)
    finally:
        panel.shutdown()


def test_export_dialog_writes_the_chosen_file_and_reports_failures(qtbot, tmp_path):
    from gui.panels.gallery import GalleryPanel

    panel = GalleryPanel(ModelSource())
    qtbot.addWidget(panel)
    try:
        written, failed = [], []
        panel.ask_path = lambda *args: str(tmp_path / "out.png")
        panel.export_failed = failed.append
        panel.export_dialog("t", "png", "PNG (*.png)", written.append)
        assert written == [str(tmp_path / "out.png")] and not failed

        def refuse(path):
            raise ValueError("nothing to export yet")

        panel.export_dialog("t", "png", "PNG (*.png)", refuse)
        assert [str(e) for e in failed] == ["nothing to export yet"]
        panel.ask_path = lambda *args: None  # dialog cancelled: nothing is written
        panel.export_dialog("t", "png", "PNG (*.png)", written.append)
        assert len(written) == 1
    finally:
        panel.shutdown()
