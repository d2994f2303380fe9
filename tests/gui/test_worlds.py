"""Every factor world in the real window: the Data dock's factor strips, a live MIG probe and MI heatmap with the
world's factor names, a colour preview, labelled traversal rows and GIF, and all five scores in the Evaluation tab
(small subsets of each world; pytest-qt, offscreen)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton

from engine.data import load_dataset
from engine.metrics import MetricSizes
from engine.models import create_model
from gui.model_source import ModelSource
from gui.panels.evaluation import EvaluationPanel

WORLDS = {
    "color-dsprites": ("shape", "scale", "orientation", "posX", "posY"),
    "noisy-dsprites": ("shape", "scale", "orientation", "posX", "posY"),
    "xyobject": ("x", "y", "scale", "color"),
    "shapes3d": ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation"),
}
SIZES = MetricSizes(train_points=200, test_points=100, batch_size=8, variance_points=200)


def is_colour(image: np.ndarray) -> bool:
    """An H×W×3 image whose channels differ somewhere (not grey)."""
    return image.ndim == 3 and image.shape[2] == 3 and bool((image[..., 0] != image[..., 1]).any())


@pytest.mark.parametrize("world", list(WORLDS))
def test_world_in_the_window(main_window, qtbot, monkeypatch, tmp_path, world):
    import gui.main_window as mw

    monkeypatch.setattr(mw, "APP_PROBE_EVERY_S", 0.3)
    window = main_window
    names = WORLDS[world]
    assert window.open_dataset(f"{world}?subset=600"), window.messages
    dock = window.data_settings
    assert dock.factor_strip_names == names and dock.factor_strips.isVisibleTo(window)
    assert [label for _, label in dock.factor_strips.row_ticks] == list(names)
    strips = dock.factor_strips.image
    assert strips.shape[0] == 1 + len(names) * 65 and is_colour(strips)
    assert is_colour(dock.thumbnails.image())

    window.model_settings.select_family("beta-vae")
    window.model_settings.hparam_form.set_values({"latent_dim": 4, "hidden": 32, "depth": 1, "backbone": "mlp",
                                                  "beta": 4.0, "beta_start": 4.0, "warmup_steps": 0})
    window.training_settings.batch_spin.setValue(32)
    window.training_settings.epochs_spin.setValue(1000)
    window.training_settings.max_steps_spin.setValue(0)
    window.training_settings.threads_spin.setValue(1)
    qtbot.mouseClick(window.findChild(QPushButton, "startButton"), Qt.MouseButton.LeftButton)
    assert window.is_training, window.messages
    view = window.training_panel.disentanglement
    qtbot.waitUntil(lambda: len(view.steps) >= 1, timeout=30_000)
    assert view.factor_axis.names == list(names) and view.matrix.shape == (4, len(names))
    qtbot.waitUntil(lambda: window.training_panel.recon_grid.image() is not None, timeout=30_000)
    assert is_colour(window.training_panel.recon_grid.image())
    window.stop_training()
    qtbot.waitUntil(lambda: not window.is_training, timeout=10_000)

    window.tabs.setCurrentWidget(window.panels["traversalPanel"])
    panel = window.panels["traversalPanel"]
    qtbot.waitUntil(lambda: panel.match is not None and panel.grid is not None, timeout=20_000)
    qtbot.waitUntil(lambda: len(panel.grid_view.row_ticks) == 4, timeout=10_000)
    labels = [label for _, label in panel.grid_view.row_ticks]
    assert all(any(f" · {name} " in label for name in names) for label in labels), labels
    assert is_colour(panel.grid)
    with Image.open(panel.export_gif(tmp_path / "t.gif")) as gif:
        assert gif.n_frames > 2 and is_colour(np.asarray(gif.convert("RGB")))
    with Image.open(panel.export_png(tmp_path / "t.png")) as png:
        assert png.mode == "RGB" and is_colour(np.asarray(png))


@pytest.mark.parametrize("world", list(WORLDS))
def test_all_five_scores_on_every_world(qtbot, world):
    dataset = load_dataset(f"{world}?subset=1000")
    torch.manual_seed(0)
    model = create_model("beta-vae", dataset.shape, 0, latent_dim=3, backbone="mlp", hidden=16, depth=1)
    _, test = dataset.split(0.1, 0)
    source = ModelSource()
    panel = EvaluationPanel(source)
    qtbot.addWidget(panel)
    panel.resize(1200, 800)
    panel.show()
    try:
        source.set_static(model, dataset, test, {"step": 1})
        panel.metrics_combo.setCurrentIndex(2)  # all five, DCI by the fast estimator
        panel.set_metric_sizes(SIZES)
        panel.iwae_spin.setValue(0)
        panel.compute_button.click()
        qtbot.waitUntil(lambda: not panel.computing, timeout=120_000)
        result = panel.result
        assert result is not None, panel.status.text()
        for key in ("beta_vae", "factor_vae", "mig", "sap", "dci_disentanglement"):
            assert 0.0 <= result[key] <= 1.0, key
        assert np.asarray(result["mi_matrix"]).shape == (3, len(WORLDS[world]))
        assert panel.factor_axis.names == list(WORLDS[world])
        assert is_colour(panel.traversal_view.image)
    finally:
        panel.shutdown()
