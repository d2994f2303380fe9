"""The real MainWindow, offscreen, on the 8×8 digits with a tiny model: train, pause, change β, resume, stop,
checkpoints (good and corrupt), a bad dataset, closing mid-training."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox, QPushButton

from engine.config import TrainConfig

TAB_NAMES = ["trainingPanel", "traversalPanel", "interpolationPanel", "conditionalPanel", "latentMapPanel",
             "evaluationPanel"]


def use_tiny_setup(window, qtbot, epochs: int = 1000, max_steps: int = 0, save_runs: bool = False) -> None:
    """Digits, a small β-VAE, batch 64: a few ms per step on one core."""
    assert window.open_dataset("digits")
    window.model_settings.select_family("beta-vae")
    window.model_settings.hparam_form.set_values({"latent_dim": 4, "hidden": 32, "depth": 1, "backbone": "mlp",
                                                  "beta": 2.0, "beta_start": 2.0, "warmup_steps": 0})
    window.training_settings.batch_spin.setValue(64)
    window.training_settings.epochs_spin.setValue(epochs)
    window.training_settings.max_steps_spin.setValue(max_steps)
    window.training_settings.save_runs_check.setChecked(save_runs)
    window.training_settings.threads_spin.setValue(1)
    window._configure_idle_live_controls()


def start(window, qtbot) -> None:
    before = window.session
    qtbot.mouseClick(window.findChild(QPushButton, "startButton"), Qt.MouseButton.LeftButton)
    # A run of a few steps may already have ended when the click returns (the click processes events).
    assert window.is_training or (window.session is not None and window.session is not before), window.messages


def test_default_window_is_ready_to_train_dsprites(main_window):
    window = main_window
    names = [window.tabs.widget(i).objectName() for i in range(window.tabs.count())]
    assert all(name in names for name in TAB_NAMES)
    assert window.tabs.tabText(0) == "Training"
    for name in ("startButton", "pauseButton", "stopButton"):
        assert window.findChild(QPushButton, name) is not None
    assert window.findChild(QPushButton, "startButton").isEnabled()
    assert not window.findChild(QPushButton, "pauseButton").isEnabled()
    assert window.dataset is not None and window.dataset.name == "dsprites", window.messages
    assert window.data_settings.thumbnails.image() is not None
    assert window.model_settings.hparam_form.family == "beta-tcvae"  # the dsprites-disentangle preset
    beta_editor = window.model_settings.hparam_form.editors["beta"]
    assert "β" in beta_editor.toolTip() and "range" in beta_editor.toolTip()
    assert "beta" in window.training_panel.live_sliders and "lr" in window.training_panel.live_sliders
    config = window.build_config()
    assert config.family == "beta-tcvae" and config.dataset.startswith("dsprites")


def test_train_pause_change_beta_resume_stop(main_window, qtbot):
    window = main_window
    panel = window.training_panel
    use_tiny_setup(window, qtbot)
    start(window, qtbot)
    qtbot.waitUntil(lambda: panel.curves.point_count() > 20 and panel.recon_grid.image() is not None,
                    timeout=20_000)
    assert {"total", "recon", "kl"} <= set(panel.curves.train_terms())
    assert {"beta", "lr"} <= set(panel.curves.live_names())
    assert panel.last_metrics.live["beta"] == pytest.approx(2.0)
    assert window.source.is_live and window.source.snapshot() is not None

    qtbot.keyClick(window, Qt.Key.Key_Space)  # pause
    qtbot.waitUntil(lambda: window.paused_event is not None, timeout=5_000)
    assert panel.pause_button.text() == "Resume"
    qtbot.wait(100)  # metrics already in flight arrive
    paused_at = panel.last_metrics.step
    points = panel.curves.point_count()
    qtbot.wait(400)
    assert panel.last_metrics.step == paused_at and panel.curves.point_count() == points, "training went on"

    panel.live_sliders["beta"].spin.setValue(6.0)  # commits, as a user's edit does
    qtbot.mouseClick(panel.pause_button, Qt.MouseButton.LeftButton)  # resume
    qtbot.waitUntil(lambda: panel.last_metrics.step > paused_at + 5, timeout=10_000)
    assert panel.last_metrics.live["beta"] == pytest.approx(6.0)
    steps, betas = panel.curves.live_series("beta")
    assert betas[steps <= paused_at].max() == pytest.approx(2.0) and betas[-1] == pytest.approx(6.0)

    qtbot.mouseClick(panel.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.is_training, timeout=5_000)
    assert window.finished_event is not None and window.finished_event.reason == "stopped"
    assert panel.start_button.isEnabled()
    assert not window.source.is_live and window.source.has_model


def test_metrics_reach_the_window_at_most_30_times_a_second(main_window, qtbot):
    window = main_window
    use_tiny_setup(window, qtbot)
    batches = []
    start(window, qtbot)
    window.worker.metrics.connect(batches.append)
    began = time.monotonic()
    qtbot.wait(1000)
    elapsed = time.monotonic() - began
    emits_in_window = len(batches)
    window.stop_training()
    qtbot.waitUntil(lambda: not window.is_training, timeout=5_000)
    steps = sum(len(b) for b in batches)
    assert steps > len(batches), "several steps per emit: batching is active"
    assert emits_in_window <= 30 * elapsed + 1


@pytest.fixture
def tiny_checkpoint(tmp_path) -> tuple[Path, int]:
    from engine.training import TrainingSession

    config = TrainConfig(dataset="digits", family="beta-vae", epochs=1, max_steps=30, batch_size=64, threads=1,
                         hparams={"latent_dim": 4, "hidden": 32, "depth": 1, "backbone": "mlp"})
    session = TrainingSession(config)
    for _ in session.run():
        pass
    path = session.save_checkpoint(tmp_path / "tiny.safetensors")
    return Path(path), session.step


def test_open_checkpoint_shows_its_curves_and_continues(main_window, qtbot, tiny_checkpoint):
    window = main_window
    panel = window.training_panel
    path, step = tiny_checkpoint
    assert window.open_checkpoint(path), window.messages
    assert panel.curves.point_count() > 0 and "total" in panel.curves.train_terms()
    assert panel.curves.test_terms(), "the recorded test curve is drawn"
    assert panel.recon_grid.image() is not None and panel.samples_grid.image() is not None
    assert window.source.has_model and not window.source.is_live and window.source.step == step
    assert str(path.resolve()) in window.recent_runs()
    assert panel.start_button.text() == "Continue"

    window.training_settings.max_steps_spin.setValue(10)  # ten more steps
    start(window, qtbot)
    qtbot.waitUntil(lambda: not window.is_training, timeout=20_000)
    assert window.finished_event is not None, window.messages
    assert window.finished_event.step == step + 10
    first_steps, _ = panel.curves.train_series("total")
    assert first_steps.min() <= step < first_steps.max(), "old curves kept, new points appended"


def test_corrupt_checkpoint_and_bad_dataset_show_errors_and_the_window_keeps_working(main_window, qtbot, tmp_path):
    window = main_window
    corrupt = tmp_path / "broken.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all" + bytes(64))
    assert not window.open_checkpoint(corrupt)
    level, text = window.messages[-1]
    assert level == "error" and "broken.safetensors" in text
    assert window.banner.isVisible()

    bad = tmp_path / "images.npy"
    bad.write_text("this is not an array")
    _drop(window, bad)  # a dropped dataset goes through the same path as Open file…
    level, text = window.messages[-1]
    assert level == "error" and "images.npy" in text

    use_tiny_setup(window, qtbot, max_steps=15)
    start(window, qtbot)
    qtbot.waitUntil(lambda: not window.is_training, timeout=20_000)
    assert window.finished_event is not None and window.finished_event.step == 15


def test_a_dataset_can_be_dropped_onto_the_window(main_window, tmp_path):
    rng = np.random.default_rng(0)
    arrays = tmp_path / "blobs.npy"
    np.save(arrays, rng.integers(0, 256, size=(40, 12, 12), dtype=np.uint8))
    _drop(main_window, arrays)
    assert main_window.dataset is not None and len(main_window.dataset) == 40, main_window.messages
    assert main_window.dataset_spec == str(arrays)


def _drop(window, path: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)  # loads off the GUI thread: wait until the job thread has delivered
    deadline = time.monotonic() + 10
    while window.state.busy and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.01)


def test_closing_mid_training_saves_stops_and_joins(main_window, qtbot, isolated_settings):
    window = main_window
    use_tiny_setup(window, qtbot, save_runs=True)
    start(window, qtbot)
    qtbot.waitUntil(lambda: window.training_panel.curves.point_count() > 5, timeout=20_000)
    asked = []
    window.ask_save_on_close = lambda: asked.append(True) or QMessageBox.StandardButton.Save
    thread = window.worker._thread
    began = time.monotonic()
    window.close()
    assert asked
    assert time.monotonic() - began < 2.5
    assert not thread.is_alive() and not window.is_training
    saved = list((isolated_settings / "runs").rglob("step*.safetensors"))
    assert saved, "the weights were saved on close"


def test_training_tab_exports_png_and_csv(main_window, qtbot, tmp_path, tiny_checkpoint):
    window = main_window
    assert window.open_checkpoint(tiny_checkpoint[0])
    assert window.export_current(tmp_path / "fig.png")
    assert (tmp_path / "fig.png").stat().st_size > 1000
    assert window.export_current(tmp_path / "curves.csv")
    lines = (tmp_path / "curves.csv").read_text().splitlines()
    assert lines[0] == "split,term,step,value" and any(line.startswith("test,") for line in lines)
    window.training_panel.curves.set_log_scale(True)
    assert window.training_panel.curves.loss_plot.getAxis("left").logMode


def test_closing_during_a_sweep_asks_and_cancel_keeps_it_running(main_window, qtbot, tmp_path):
    window = main_window
    qtbot.waitUntil(lambda: hasattr(window.panels.get("evaluationPanel"), "sweep_panel"), timeout=20_000)
    sweep = window.panels["evaluationPanel"].sweep_panel
    config = tmp_path / "base.toml"
    config.write_text(TrainConfig(dataset="digits", family="beta-vae", batch_size=32, preview_every_s=60.0,
                                  hparams={"latent_dim": 3, "backbone": "mlp", "hidden": 16, "depth": 1}).to_toml())
    sweep.set_config_file(config)
    sweep.steps_spin.setValue(100_000)
    sweep.metrics_combo.setCurrentIndex(2)
    sweep.out_edit.setText(str(tmp_path / "sweep"))
    sweep.grid_edit.setText("beta=1,2")
    assert sweep.start()
    answers = [False, True]
    asked = []
    window.ask_stop_sweep_on_close = lambda: asked.append(True) or answers[len(asked) - 1]
    window.close()
    assert asked == [True] and window.isVisible() and sweep.is_running, "Cancel keeps the window and the sweep"
    window.close()
    assert asked == [True, True] and not window.isVisible()
    qtbot.waitUntil(lambda: not sweep.is_running, timeout=20_000)
