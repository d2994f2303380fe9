"""Watching disentanglement form: the Training tab's MIG curve and MI heatmap (live and from a checkpoint), the
traversal rows' matched factors, their stable order, and the labelled exports (pytest-qt, offscreen)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton

from engine.data import load_dataset
from gui.model_source import ModelSource
from tests.helpers import train_digits_model

POSITION_ONLY = "dsprites?shape=square&scale=5&orientation=0"


# --- traversal rows ------------------------------------------------------------------------------------------
def _permuted(model, perm):
    """The same VAE with its latent dims renumbered: KL per dim, hence the KL order, follows `perm`."""
    other = copy.deepcopy(model)
    with torch.no_grad():
        other.to_mu.weight.copy_(model.to_mu.weight[perm])
        other.to_mu.bias.copy_(model.to_mu.bias[perm])
        other.to_logvar.weight.copy_(model.to_logvar.weight[perm])
        other.to_logvar.bias.copy_(model.to_logvar.bias[perm])
        other.decoder.net[0].weight.copy_(model.decoder.net[0].weight[:, perm])
    return other.eval()


@pytest.fixture
def live_traversal(qtbot):
    from gui.panels.traversal import TraversalPanel

    digits = load_dataset("digits")
    first = train_digits_model("vae")
    source = ModelSource()
    panel = TraversalPanel(source)
    qtbot.addWidget(panel)
    panel.resize(900, 600)
    panel.show()
    current = {"model": first}
    _, test = digits.split(0.2, seed=0)
    source.set_live(lambda: copy.deepcopy(current["model"]), digits, test)
    qtbot.waitUntil(lambda: panel.grid is not None and bool(panel.row_order), timeout=10_000)
    yield panel, source, current, first
    panel.shutdown()


def _newer_weights(qtbot, panel, source, step):
    updates = panel.grid_view.updates
    source.notify_step(step)
    qtbot.waitUntil(lambda: panel.grid_view.updates > updates, timeout=10_000)


def test_rows_keep_their_order_under_the_mouse_and_re_sort_on_request(qtbot, live_traversal):
    panel, source, current, first = live_traversal
    order = list(panel.row_order)
    perm = torch.tensor(order[::-1])  # the weakest dim becomes the strongest
    current["model"] = _permuted(first, perm)
    held = panel.sliders[order[0]]
    held.setSliderDown(True)  # the user holds a slider while newer weights arrive
    _newer_weights(qtbot, panel, source, 10)
    new_order = [int(d) for d in panel.stats.order]
    assert new_order != order, "precondition: the newer weights sort differently"
    assert panel.row_order == order and panel.shown_dims == order
    assert panel.sliders[order[0]] is held, "the slider under the mouse was not rebuilt"

    source.notify_settled()  # training paused, but the slider is still held: nothing moves yet
    qtbot.wait(300)
    assert panel.row_order == order
    held.setSliderDown(False)
    held.sliderReleased.emit()
    qtbot.waitUntil(lambda: panel.row_order == new_order, timeout=10_000)

    current["model"] = first
    _newer_weights(qtbot, panel, source, 20)
    assert panel.row_order == new_order, "live refreshes never re-sort"
    qtbot.mouseClick(panel.sort_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.row_order == order, timeout=10_000)

    def tick_latents() -> list[str]:
        return [label.split(" · ")[0] for _, label in panel.grid_view.row_ticks]

    qtbot.waitUntil(lambda: tick_latents() == [f"z{d}" for d in order], timeout=10_000)  # the grid redraws off-thread


def test_rows_name_the_factor_each_latent_has_become(qtbot, tmp_path):
    from engine.config import TrainConfig
    from engine.training import TrainingSession
    from gui.panels.traversal import TraversalPanel

    squares = load_dataset(POSITION_ONLY)
    session = TrainingSession(TrainConfig(dataset=POSITION_ONLY, family="beta-vae", max_steps=20, batch_size=32,
                                          hparams={"latent_dim": 3, "hidden": 32, "depth": 1, "backbone": "mlp"}),
                              squares)
    list(session.run())
    source = ModelSource()
    panel = TraversalPanel(source)
    qtbot.addWidget(panel)
    panel.resize(900, 600)
    panel.show()
    try:
        source.set_static(session.snapshot_model(), squares, session.test_indices, {"step": 20})
        qtbot.waitUntil(lambda: panel.match is not None and panel.grid is not None, timeout=20_000)
        qtbot.waitUntil(lambda: all("pos" in label for _, label in panel.grid_view.row_ticks), timeout=5_000)
        for d, label in panel.slider_labels.items():
            name, value = label.text().split(" · ")[1].split()
            assert label.text().startswith(f"z{d} · ") and name in ("posX", "posY") and 0 <= float(value) <= 1
        inactive = [d for d in panel.row_order if not panel.stats.active()[d]]
        assert all(not panel.slider_labels[d].isEnabled() for d in inactive)

        sizes = {}
        for cell in (24, 72):
            panel.cell_spin.setValue(cell)
            with Image.open(panel.export_png(tmp_path / f"t{cell}.png")) as im:
                sizes[cell] = im.size
                figure = np.asarray(im.convert("RGB"))
        assert sizes[72][1] > sizes[24][1] + 3 * 40, "rows grow with the chosen cell size"
        assert (figure[:, :30].min(axis=2) < 100).any(), "the row labels are in the exported figure"
        with Image.open(panel.export_gif(tmp_path / "t.gif")) as gif:
            assert gif.n_frames > 10 and gif.size[1] > 3 * 72
    finally:
        panel.shutdown()


# --- the Training tab in the real window --------------------------------------------------------------------
def use_squares(window, max_steps: int = 0) -> None:
    assert window.open_dataset(POSITION_ONLY), window.messages
    window.model_settings.select_family("beta-vae")
    window.model_settings.hparam_form.set_values({"latent_dim": 4, "hidden": 32, "depth": 1, "backbone": "mlp",
                                                  "beta": 4.0, "beta_start": 4.0, "warmup_steps": 0})
    window.training_settings.batch_spin.setValue(64)
    window.training_settings.epochs_spin.setValue(1000)
    window.training_settings.max_steps_spin.setValue(max_steps)
    window.training_settings.threads_spin.setValue(1)


def test_training_tab_draws_the_curve_and_heatmap_and_restores_them(main_window, qtbot, monkeypatch, tmp_path):
    import gui.main_window as mw

    monkeypatch.setattr(mw, "APP_PROBE_EVERY_S", 0.3)
    window = main_window
    view = window.training_panel.disentanglement
    use_squares(window)
    qtbot.mouseClick(window.findChild(QPushButton, "startButton"), Qt.MouseButton.LeftButton)
    assert window.is_training, window.messages
    qtbot.waitUntil(lambda: len(view.steps) >= 3, timeout=30_000)
    assert view.plots.isVisible() and view.reason is None
    assert view.steps == sorted(view.steps) and view.steps[0] == 1
    assert view.matrix.shape == (4, 2) and view.heat_image.image is not None
    assert tuple(view.colour_bar.levels()) == (0.0, 1.0)
    assert "MIG" in view.note.text()
    assert window.source.latest_probe is view.latest

    qtbot.keyClick(window, Qt.Key.Key_Space)  # pause: no probe arrives while paused
    qtbot.waitUntil(lambda: window.paused_event is not None, timeout=5_000)
    qtbot.wait(200)
    count = len(view.steps)
    qtbot.wait(800)
    assert len(view.steps) == count
    qtbot.keyClick(window, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: len(view.steps) > count, timeout=15_000)
    window.stop_training()
    qtbot.waitUntil(lambda: not window.is_training, timeout=10_000)
    path = tmp_path / "squares.safetensors"
    assert window.save_checkpoint_to(path), window.messages
    steps, migs = list(view.steps), list(view.migs)

    assert window.open_dataset("digits")  # another dataset, then the checkpoint: its history comes back
    assert window.open_checkpoint(path), window.messages
    assert view.steps[: len(steps)] == steps
    assert np.allclose(view.migs[: len(steps)], migs, atol=1e-6)
    assert view.plots.isVisibleTo(window.training_panel) and view.matrix is not None
    window.training_panel.export_figure(tmp_path / "curves.csv")
    rows = [line.split(",") for line in (tmp_path / "curves.csv").read_text().splitlines()
            if line.startswith("probe,mig,")]
    assert [int(r[2]) for r in rows] == view.steps and float(rows[-1][3]) == pytest.approx(view.migs[-1])


def test_training_tab_says_why_there_is_no_curve(main_window, qtbot):
    window = main_window
    assert window.open_dataset("digits")
    window.model_settings.select_family("vae")
    window.model_settings.hparam_form.set_values({"latent_dim": 2, "hidden": 16, "depth": 1, "backbone": "mlp"})
    window.training_settings.max_steps_spin.setValue(30)
    window.training_settings.threads_spin.setValue(1)
    qtbot.mouseClick(window.findChild(QPushButton, "startButton"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.is_training, timeout=20_000)
    view = window.training_panel.disentanglement
    assert not view.plots.isVisibleTo(window.training_panel)
    assert "no ground-truth factors" in view.note.text() and view.steps == []


def test_a_panel_built_after_training_started_shows_the_live_model(qtbot):
    from gui.panels.traversal import TraversalPanel

    digits = load_dataset("digits")
    model = train_digits_model("vae")
    source = ModelSource()
    _, test = digits.split(0.2, seed=0)
    source.set_live(lambda: copy.deepcopy(model), digits, test)  # the run began before the tab was built
    panel = TraversalPanel(source)
    qtbot.addWidget(panel)
    panel.resize(900, 600)
    panel.show()
    try:
        qtbot.waitUntil(lambda: panel.grid is not None, timeout=10_000)
        assert panel.stack.currentWidget() is panel.content
    finally:
        panel.shutdown()
