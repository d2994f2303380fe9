"""What the exploration panels look at: the latest weights of a live run, or a loaded checkpoint, with its data.

The main window owns one `ModelSource` and hands it to every panel. Panels never touch the training session:
they ask for `snapshot()` — a model copy that is theirs to use off the GUI thread — and listen to two signals.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal


class ModelSource(QObject):
    """Lives on the GUI thread. `changed`: a different model/dataset; `weights_updated(step)`: newer live weights."""

    changed = Signal()
    weights_updated = Signal(int)
    probe_updated = Signal()  # a newer live disentanglement probe (`latest_probe`)
    settled = Signal()  # the live weights stopped changing for now (training paused): panels may re-sort

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._snapshotter: Callable[[], Any] | None = None
        self._model: Any = None
        self._dataset: Any = None
        self._test_indices: Any = None
        self._info: dict[str, Any] = {}
        self._step = 0
        self._probe: Any = None
        self._generation = 0  # counts model changes: what a panel measured belongs to one generation

    # --- written by the main window -------------------------------------------------------------
    def set_static(self, model: Any, dataset: Any, test_indices: Any = None, info: dict | None = None) -> None:
        """A loaded checkpoint (or a finished run): the model is fixed; panels may copy it freely."""
        if model is not None:
            model.eval()
        with self._lock:
            self._snapshotter = None
            self._model, self._dataset, self._test_indices = model, dataset, test_indices
            self._info = dict(info or {})
            self._step = int(self._info.get("step", 0))
            self._probe = None
            self._generation += 1
        self.changed.emit()

    def set_live(self, snapshotter: Callable[[], Any], dataset: Any, test_indices: Any = None,
                 info: dict | None = None) -> None:
        """A running session: `snapshotter()` returns a fresh eval-mode copy of the latest weights (thread-safe)."""
        with self._lock:
            self._snapshotter = snapshotter
            self._model = None
            self._dataset, self._test_indices = dataset, test_indices
            self._info = dict(info or {})
            self._step = 0
            self._probe = None
            self._generation += 1
        self.changed.emit()

    def notify_step(self, step: int) -> None:
        """Called (throttled) by the main window while training: newer weights exist."""
        self._step = int(step)
        self.weights_updated.emit(self._step)

    def set_probe(self, probe: Any) -> None:
        """The newest DisentanglementProbe of the live run (which factor each latent has become)."""
        self._probe = probe
        self.probe_updated.emit()

    def notify_settled(self) -> None:
        """Training paused: the weights hold still until it resumes."""
        self.settled.emit()

    def clear(self) -> None:
        with self._lock:
            self._snapshotter = None
            self._model = self._dataset = self._test_indices = None
            self._info = {}
            self._generation += 1
        self.changed.emit()

    # --- read by panels (any thread) -------------------------------------------------------------
    def snapshot(self) -> Any:
        """An eval-mode model the caller may use off the GUI thread, or None when there is no model yet."""
        with self._lock:
            snapshotter, model = self._snapshotter, self._model
        if snapshotter is not None:
            return snapshotter()
        return model

    @property
    def dataset(self) -> Any:
        return self._dataset

    @property
    def test_indices(self) -> Any:
        return self._test_indices

    @property
    def info(self) -> dict[str, Any]:
        return dict(self._info)

    @property
    def generation(self) -> int:
        """Changes whenever a different model (or a run's final weights) is set: cached results are then stale."""
        return self._generation

    @property
    def step(self) -> int:
        return self._step

    @property
    def latest_probe(self) -> Any:
        return self._probe

    @property
    def is_live(self) -> bool:
        return self._snapshotter is not None

    @property
    def has_model(self) -> bool:
        return self._snapshotter is not None or self._model is not None
