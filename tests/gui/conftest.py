"""GUI fixtures: isolated settings and run folders, the real main window, and no thread may outlive a test."""

from __future__ import annotations

import gc
import threading
import time

import pytest
from PySide6.QtCore import QCoreApplication, QEvent, QThread, QThreadPool
from PySide6.QtWidgets import QMessageBox

from gui.app import guard_singleton_refcounts

guard_singleton_refcounts()  # PySide6 6.12 on Python 3.11 leaks references to None; see gui/app.py


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path, monkeypatch):
    """QSettings and run folders go to the test's temporary directory, never the user's."""
    monkeypatch.setenv("LATENT_EXPLORER_SETTINGS", str(tmp_path / "settings.ini"))
    monkeypatch.setenv("LATENT_EXPLORER_RUNS", str(tmp_path / "runs"))
    return tmp_path


@pytest.fixture(scope="session", autouse=True)
def gui_thread_gc(qapp):
    """As in the app: the cyclic collector runs on the GUI thread only (see gui/gc_guard.py)."""
    from gui.gc_guard import install_gui_thread_gc

    install_gui_thread_gc(qapp, freeze_after_ms=-1)  # tests must see every leftover collected
    yield
    gc.enable()


@pytest.fixture(autouse=True)
def widgets_are_deleted_by_qt_not_by_the_garbage_collector(qtbot, monkeypatch):
    """qtbot.addWidget holds a widget only weakly, and pytest-qt's deleteLater, posted outside any event loop, is
    never carried out by processEvents: a test's panel (a parentless, Python-owned widget) was left to the cyclic
    collector, which destroyed it from gc.collect and crashed in ~QGraphicsScene (a core dump of such a crash: a
    LatentMapPanel deallocated by the collector, QGraphicsScene::clear() calling through a null pointer). So every
    widget given to qtbot is kept alive until pytest-qt has closed it and asked for its deletion, and that deletion
    is then carried out here, by Qt, parents before their wrappers go."""
    kept = []
    add_widget = qtbot.addWidget

    def keep(widget, *, before_close_func=None):
        kept.append(widget)
        add_widget(widget, before_close_func=before_close_func)

    monkeypatch.setattr(qtbot, "addWidget", keep)
    yield
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    kept.clear()


@pytest.fixture(autouse=True)
def no_leftover_qt_threads(qapp):
    """Fail a test that leaves a Qt pool thread, a QThread child of the app, or a training thread running."""
    yield
    gc.collect()  # a test's Qt garbage is destroyed here, on the GUI thread
    pool = QThreadPool.globalInstance()
    pool.waitForDone(2000)
    assert pool.activeThreadCount() == 0, f"test left {pool.activeThreadCount()} QThreadPool job(s) running"
    running = [t for t in qapp.findChildren(QThread) if t.isRunning()]
    assert not running, f"test left QThread(s) running: {[t.objectName() for t in running]}"
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        training = [t for t in threading.enumerate() if t.name == "latent-explorer-training" and t.is_alive()]
        if not training:
            break
        time.sleep(0.02)
    assert not training, "test left a training thread running"


@pytest.fixture
def main_window(qtbot):
    """The real MainWindow in its default state, shown offscreen; it must not be training when the test ends."""
    from gui.main_window import MainWindow

    window = MainWindow()
    window.ask_save_on_close = lambda: QMessageBox.StandardButton.Discard  # never a modal dialog in a test
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.dataset is not None or bool(window.messages), timeout=10_000)
    yield window
    still_training = window.is_training
    window.shutdown_training(save=False)
    assert not still_training, "the test ended with training still running"


# Tiny run folders shared by the model-switch and Compare tests: (dataset, family, hyperparameters, seed) each,
# trained 30 steps on one thread (a few seconds in all after torch's first use).
TINY_RUNS = {
    "vae-a": ("digits", "beta-vae", {"latent_dim": 4, "hidden": 32, "depth": 1, "backbone": "mlp", "beta": 1.0}, 0),
    "vae-b": ("digits", "beta-vae", {"latent_dim": 4, "hidden": 32, "depth": 1, "backbone": "mlp", "beta": 4.0}, 1),
    "cvae-a": ("digits", "cvae", {"latent_dim": 4, "hidden": 32, "depth": 1}, 0),
    "cvae-b": ("digits", "cvae", {"latent_dim": 4, "hidden": 32, "depth": 1}, 1),
    "vq": ("digits", "vq-vae", {}, 0),
}


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> dict:
    """name → run folder (config.toml, metrics.jsonl, checkpoints/last.safetensors) of each of `TINY_RUNS`."""
    from engine.config import TrainConfig
    from engine.training import TrainingSession

    root = tmp_path_factory.mktemp("tiny-runs")
    folders = {}
    for name, (dataset, family, hparams, seed) in TINY_RUNS.items():
        config = TrainConfig(dataset=dataset, family=family, epochs=1, max_steps=30, batch_size=64, threads=1,
                             seed=seed, hparams=dict(hparams), out_dir=str(root / name))
        session = TrainingSession(config)
        for _ in session.run():
            pass
        folders[name] = root / name
    return folders
