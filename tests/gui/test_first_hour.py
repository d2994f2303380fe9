"""What a newcomer meets in the first hour: the window fits a laptop screen, nothing slow runs on the GUI thread,
presets resolve to data this machine has."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication

from engine.config import TrainConfig
from gui.main_window import MainWindow

FIT_WIDTH, FIT_HEIGHT = 1366, 740


@pytest.fixture
def tiny_checkpoint(tmp_path) -> Path:
    from engine.training import TrainingSession

    config = TrainConfig(dataset="digits", family="beta-vae", epochs=1, max_steps=30, batch_size=64, threads=1,
                         hparams={"latent_dim": 4, "hidden": 32, "depth": 1, "backbone": "mlp"})
    session = TrainingSession(config)
    for _ in session.run():
        pass
    return Path(session.save_checkpoint(tmp_path / "tiny.safetensors"))


def visit_every_tab(window, qtbot) -> None:
    for index in range(window.tabs.count()):
        window.tabs.setCurrentIndex(index)
        QApplication.processEvents()
    evaluation = window.panels["evaluationPanel"]
    for index in range(evaluation.tabs.count()):
        evaluation.tabs.setCurrentIndex(index)
        QApplication.processEvents()
    for dock in (window.model_dock, window.training_dock):
        dock.raise_()
        QApplication.processEvents()


def test_every_tab_fits_a_1366x768_screen(main_window, qtbot):
    window = main_window
    visit_every_tab(window, qtbot)
    hint = window.minimumSizeHint()
    assert hint.width() <= FIT_WIDTH and hint.height() <= FIT_HEIGHT, hint
    assert window.minimumSize().width() <= FIT_WIDTH and window.minimumSize().height() <= FIT_HEIGHT
    window.resize(FIT_WIDTH, FIT_HEIGHT)
    QApplication.processEvents()
    assert window.width() <= FIT_WIDTH and window.height() <= FIT_HEIGHT
    for name, panel in window.panels.items():  # every tab's content gets the width it needs
        assert panel.minimumSizeHint().width() <= window.tabs.width(), name


def test_a_restored_geometry_larger_than_the_screen_is_clamped(qtbot, isolated_settings):
    first = MainWindow()
    qtbot.addWidget(first)
    first.setMinimumSize(0, 0)
    first.resize(5000, 4000)
    first.move(3000, 2000)
    first.settings.setValue("window/geometry", first.saveGeometry())
    first.settings.sync()
    second = MainWindow()
    qtbot.addWidget(second)
    available = second.screen().availableGeometry()
    frame = second.frameGeometry()
    assert available.contains(frame), (frame, available)


def test_datasets_checkpoints_and_sessions_load_off_the_gui_thread(main_window, qtbot, monkeypatch,
                                                                   tiny_checkpoint):
    import engine.checkpoint
    import engine.data
    import engine.training

    window = main_window
    threads: dict[str, str] = {}

    def spy(module, name):
        original = getattr(module, name)

        def wrapped(*args, **kwargs):
            threads[name] = threading.current_thread().name
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapped)

    spy(engine.data, "load_dataset")
    spy(engine.checkpoint, "load_checkpoint")
    original_init = engine.training.TrainingSession.__init__

    def session_init(self, *args, **kwargs):
        threads["TrainingSession"] = threading.current_thread().name
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(engine.training.TrainingSession, "__init__", session_init)
    assert window.open_dataset("digits")
    window.model_settings.select_family("ae")
    window.model_settings.hparam_form.set_values({"latent_dim": 2, "hidden": 16, "depth": 1, "backbone": "mlp"})
    window.training_settings.max_steps_spin.setValue(5)
    window.training_settings.save_runs_check.setChecked(False)
    window.training_settings.threads_spin.setValue(1)
    assert window.start_training(), window.messages
    # the session is built on a job thread, then trains 5 steps: wait for the whole run, not a moment before it began
    qtbot.waitUntil(lambda: "TrainingSession" in threads and window.session is not None and window.session.step == 5
                    and not window.is_preparing and not window.is_training, timeout=20_000)
    assert window.open_checkpoint(tiny_checkpoint), window.messages
    main = threading.main_thread().name
    assert set(threads) == {"load_dataset", "load_checkpoint", "TrainingSession"}, threads
    assert all(name != main and name.startswith("latent-explorer-jobs") for name in threads.values()), threads


def test_choosing_a_preset_loads_what_this_machine_has(main_window, qtbot):
    window = main_window
    from engine.data import available_datasets

    status = {row["name"]: row.get("status") for row in available_datasets()}
    assert window.apply_preset("mnist-cvae"), window.messages
    assert not [m for m in window.messages if m[0] == "error"], window.messages
    expected = "mnist" if status.get("mnist") != "missing" else window.preset_config.fallback[0]
    assert window.dataset_spec.split("?")[0] == expected.split("?")[0]
    assert window.data_settings.dataset_combo.currentText() == window.dataset_spec
    assert window.dataset.name in window.data_settings.dataset_summary.text()
    if expected != "mnist":
        assert "will be trained instead" in window.data_settings.dataset_summary.text()
    config = window.build_config()
    assert config.dataset == window.dataset_spec and config.family == "cvae"


def test_an_opened_checkpoint_shows_inputs_above_their_reconstructions(main_window, tiny_checkpoint):
    window = main_window
    assert window.open_checkpoint(tiny_checkpoint), window.messages
    grid = window.training_panel.recon_grid.image()
    side, pad, columns = 8, 1, 8  # digits are 8×8; tile() puts one pixel of padding around every cell
    rows = (grid.shape[0] - pad) // (side + pad)
    assert grid.shape == (pad + rows * (side + pad), pad + columns * (side + pad)), grid.shape
    assert rows % 2 == 0 and rows >= 2
    test_indices = window.source.test_indices
    images = window.dataset.images_at(test_indices[: columns]).cpu().numpy().reshape(columns, side, side)
    for col in range(columns):  # row 0 holds the first test images, in order, at tile()'s cell positions
        y, x = pad, pad + col * (side + pad)
        np.testing.assert_array_equal(grid[y:y + side, x:x + side], images[col])
    reconstruction = grid[pad + side + pad: pad + 2 * side + pad, pad: pad + side]
    assert reconstruction.shape == (side, side) and not np.array_equal(reconstruction, images[0])


def test_a_gif_export_is_encoded_off_the_gui_thread(qtbot, tmp_path, monkeypatch):
    import gui.panels.traversal as traversal
    from engine.data import load_dataset
    from gui.model_source import ModelSource
    from tests.helpers import train_digits_model

    dataset, model = load_dataset("digits"), train_digits_model("vae")
    source = ModelSource()
    panel = traversal.TraversalPanel(source)
    qtbot.addWidget(panel)
    panel.resize(900, 600)
    panel.show()
    source.set_static(model, dataset, dataset.split(0.2, seed=0)[1], {"step": 40})
    qtbot.waitUntil(lambda: panel.grid is not None and panel.stats is not None, timeout=10_000)
    threads = []
    original = traversal.save_gif

    def spy(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(traversal, "save_gif", spy)
    target = tmp_path / "traversal.gif"
    assert panel.export_in_background(target)
    assert panel.status.text() == "exporting…"
    qtbot.waitUntil(lambda: str(target) in panel.status.text(), timeout=20_000)
    assert target.is_file() and threads and threads[0] != threading.main_thread().name
    assert not panel.export_in_background(tmp_path / "grid.png")  # PNGs are written at once by export_figure
    panel.shutdown()


def test_grid_ticks_sit_on_the_cells_tile_draws(qtbot):
    """The one image-grid path: tile() lays cells out, grid_ticks() labels them, GridView draws both."""
    from engine.imaging import tile
    from gui.panels.common import cell_of, grid_ticks
    from gui.widgets import GridView

    rows, cols, h, w = 5, 7, 6, 4
    values = (np.arange(rows * cols, dtype=np.uint8) * 7 + 10).reshape(rows * cols, 1, 1, 1)
    images = np.broadcast_to(values, (rows * cols, 1, h, w)).copy()
    grid = tile(images, cols, pad=1)
    assert grid.shape == (rows * (h + 1) + 1, cols * (w + 1) + 1)
    row_ticks = grid_ticks(rows, h, 1, [f"r{r}" for r in range(rows)])
    col_ticks = grid_ticks(cols, w, 1, [f"c{c}" for c in range(cols)])
    for r, (y, _) in enumerate(row_ticks):
        for c, (x, _) in enumerate(col_ticks):
            assert grid[int(y), int(x)] == values[r * cols + c, 0, 0, 0]
            assert cell_of(x, y, h, w, 1) == (r, c)
    view = GridView()
    qtbot.addWidget(view)
    view.set_grid(grid, row_ticks, col_ticks)
    assert view.image.shape == grid.shape
    assert view.getPlotItem().getAxis("left")._tickLevels[0] == row_ticks


def _shown_panel(qtbot, cls, model, dataset, test_fraction=0.2):
    from gui.model_source import ModelSource

    source = ModelSource()
    panel = cls(source)
    qtbot.addWidget(panel)
    panel.resize(1000, 600)
    panel.show()
    source.set_static(model, dataset, dataset.split(test_fraction, seed=0)[1], {"step": 1})
    return panel


def test_the_latent_map_keys_its_colours(qtbot, tmp_path):
    """Labels and categorical factors get a legend; ordered factors a sequential map and a colour bar."""
    from engine.data import load_dataset
    from engine.models import create_model
    from gui.panels.latent_map import LatentMapPanel, colour_key

    dataset = load_dataset("dsprites?subset=400")
    model = create_model("vae", dataset.shape, dataset.num_classes, latent_dim=4, hidden=16, depth=1,
                         backbone="mlp").eval()
    panel = _shown_panel(qtbot, LatentMapPanel, model, dataset)
    qtbot.waitUntil(lambda: panel.embedding is not None, timeout=20_000)
    choices = [panel.color_combo.itemText(i) for i in range(panel.color_combo.count())]
    assert {"shape", "scale", "posX", "orientation"} <= set(choices), choices
    panel.color_combo.setCurrentText("shape")
    assert len(panel.legend.items) == len(set(panel.colors.tolist())) and panel.colour_bar is None
    shape_values = dataset.factor_spec.values[0]
    present = sorted(set(panel.colors.tolist()))
    assert [label.text for _, label in panel.legend.items] == [f"{shape_values[i]:.3g}" for i in present]
    panel.color_combo.setCurrentText("posX")
    assert panel.colour_bar is not None and not panel.legend.items
    low, high = panel.colour_bar.levels()
    assert low == pytest.approx(min(dataset.factor_spec.values[3])) and high == pytest.approx(1.0)
    brushes = panel.scatter.data["brush"]
    lowest, highest = int(np.argmin(panel.colors)), int(np.argmax(panel.colors))
    assert brushes[lowest].color().name() != brushes[highest].color().name()  # not a cyclic hue map any more
    assert colour_key("orientation", 40) == "cyclic" and colour_key("posX", 32) == "sequential"
    panel.color_combo.setCurrentText("none")
    assert panel.colour_bar is None and not panel.legend.items
    panel.shutdown()


def test_a_t_sne_map_exports(qtbot, tmp_path):
    from PIL import Image

    from engine.data import load_dataset
    from gui.panels.latent_map import METHODS, LatentMapPanel
    from tests.helpers import train_digits_model

    dataset = load_dataset("digits")
    panel = _shown_panel(qtbot, LatentMapPanel, train_digits_model("vae"), dataset)
    panel.points_spin.setValue(120)
    panel.method_combo.setCurrentIndex([key for _, key in METHODS].index("tsne"))
    qtbot.waitUntil(lambda: panel.embedding is not None and panel.embedding.method == "tsne", timeout=60_000)
    assert len(panel.legend.items) == 10  # the digits' classes
    out = panel.export_figure(tmp_path / "tsne.png")
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size[0] > 100
    panel.shutdown()


def test_inapplicable_views_and_controls_are_disabled_with_a_reason(qtbot):
    from engine.data import load_dataset
    from gui.panels.conditional import ConditionalPanel
    from gui.panels.gallery import GalleryPanel
    from tests.helpers import train_digits_model

    dataset = load_dataset("digits")
    vae, dae = train_digits_model("vae"), train_digits_model("dae")
    gallery = _shown_panel(qtbot, GalleryPanel, vae, dataset)
    qtbot.waitUntil(lambda: not gallery.view_offered("Denoising"), timeout=10_000)
    item = gallery.view_combo.model().item(2)
    assert item.text() == "Denoising" and "not a denoising autoencoder" in item.toolTip()
    assert gallery.view_offered("Prior samples")
    gallery.source.set_static(dae, dataset, dataset.split(0.2, seed=0)[1], {"step": 2})
    qtbot.waitUntil(lambda: gallery.view_offered("Denoising"), timeout=10_000)
    assert not gallery.view_offered("Prior samples")  # a DAE has no prior
    gallery.shutdown()

    conditional = _shown_panel(qtbot, ConditionalPanel, vae, dataset)
    qtbot.waitUntil(lambda: not conditional.export_button.isEnabled(), timeout=10_000)
    assert not conditional.samples_spin.isEnabled() and "not conditional" in conditional.export_button.toolTip()
    conditional.source.set_static(train_digits_model("cvae"), dataset, dataset.split(0.2, seed=0)[1], {"step": 3})
    qtbot.waitUntil(lambda: conditional.export_button.isEnabled(), timeout=10_000)
    qtbot.waitUntil(lambda: conditional.grid is not None, timeout=10_000)
    ticks = conditional.grid_view.getPlotItem().getAxis("bottom")._tickLevels[0]
    assert [label for _, label in ticks][:2] == ["1", "2"]
    assert "sample" in conditional.grid_view.getPlotItem().getAxis("bottom").labelText
    conditional.shutdown()


def test_empty_views_say_what_will_appear_and_help_has_a_quick_start(main_window, qtbot):
    window = main_window
    panel = window.training_panel
    assert panel.curves.empty_hint.isVisible() and "Press Start" in panel.curves.empty_hint.toPlainText()
    assert panel.recon_grid.view.empty_hint.isVisible() and panel.kl_bars.empty_hint.isVisible()
    for name, widget in window.panels.items():
        if name != "trainingPanel":
            assert "Press Start" in widget.empty_label.text() or "Train one" in widget.empty_label.text()
    dialog = window.show_quick_start()
    assert dialog.isVisible() and not dialog.isModal()
    from PySide6.QtWidgets import QTextBrowser

    text = dialog.findChild(QTextBrowser).toPlainText()
    assert "Press Start" in text and "β" in text and "Traversal" in text
    dialog.close()


def test_small_truths_while_training(main_window, qtbot):
    """Paused shows no speed or ETA; the Model dock follows a live β change; the traversal base is outlined."""
    window = main_window
    assert window.open_dataset("digits")
    window.model_settings.select_family("beta-vae")
    window.model_settings.hparam_form.set_values({"latent_dim": 4, "hidden": 32, "depth": 1, "backbone": "mlp",
                                                  "beta": 4.0, "beta_start": 4.0, "warmup_steps": 0})
    window.training_settings.epochs_spin.setValue(1000)
    window.training_settings.save_runs_check.setChecked(False)
    window.training_settings.threads_spin.setValue(1)
    assert window.start_training(), window.messages
    panel = window.training_panel
    qtbot.waitUntil(lambda: panel.last_metrics is not None, timeout=20_000)
    qtbot.waitUntil(lambda: not panel.curves.empty_hint.isVisible(), timeout=5_000)  # the curves replace it
    window.set_live_value("beta", 12.0)
    assert window.model_settings.hparam_form.raw_values()["beta"] == pytest.approx(12.0)
    window.toggle_pause()
    qtbot.waitUntil(lambda: window.paused_event is not None, timeout=10_000)
    text = panel.progress.format()
    assert text.startswith("paused") and "samples/s" not in text and "ETA" not in text
    window.toggle_pause()
    window.stop_training()
    qtbot.waitUntil(lambda: not window.is_training, timeout=20_000)
    assert window.source.has_model
    window.model_settings.select_family("cvae")
    window._configure_idle_live_controls()
    assert panel.in_force_label.text() == ""  # no β of the last run under a CVAE
    traversal = window.panels["traversalPanel"]
    window.tabs.setCurrentWidget(traversal)
    qtbot.waitUntil(lambda: traversal.stats is not None and len(traversal.thumb_indices) > 3, timeout=20_000)
    traversal.pick_image(2)
    h, w = traversal._thumb_cell
    assert traversal.thumbs_view.highlighted is not None
    assert traversal.thumbs_view.highlighted[0] == pytest.approx(2 * (w + 1) + 0.5)


def test_a_panel_built_after_a_checkpoint_was_opened_shows_its_model(qtbot, tiny_checkpoint):
    window = MainWindow(defer_panels=True)  # what `python main.py` does: panels are built after the window shows
    qtbot.addWidget(window)
    window.show()
    assert window.open_checkpoint(tiny_checkpoint), window.messages
    qtbot.waitUntil(lambda: not window.tabs.pending, timeout=30_000)
    traversal = window.panels["traversalPanel"]
    assert traversal.stack.currentWidget() is traversal.content
    window.close()


def test_start_up_objects_are_frozen_not_scanned_until_start_up_ends():
    """A collection over the start-up heap stalled the GUI thread ~1 s after launch: during start-up the guard
    freezes what survives instead of scanning it; afterwards it collects as usual."""
    import gc

    from gui.gc_guard import GuiThreadGarbageCollector

    collector = GuiThreadGarbageCollector(freeze_after_ms=60_000)
    try:
        assert collector.starting
        before = gc.get_freeze_count()
        kept = [[i] for i in range(50_000)]  # what imports and widgets leave behind
        assert collector.check() == 0 and gc.get_freeze_count() >= before + 50_000
        assert gc.get_count()[0] < 1_000
        collector.freeze()
        assert not collector.starting
        garbage = [[i] for i in range(2_000)]
        garbage.append(garbage)  # a cycle made after start-up is collected by check()
        del garbage
        assert collector.check() > 0
        del kept
    finally:
        gc.unfreeze()
        collector.timer.stop()
        collector.deleteLater()
        gc.disable()
