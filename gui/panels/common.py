"""What every exploration panel shares: the panel base (empty state, live refresh, inference runner, shutdown),
a grid view with row/column labels and clicks, thumbnails, and export helpers."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from engine.imaging import save_png
from gui.inference import InferenceRunner
from gui.model_source import ModelSource

LIVE_REFRESH_MS = 700


def upscale(grid: np.ndarray, min_side: int = 512) -> np.ndarray:
    """Nearest-neighbour integer upscaling so exported figures of 8×8 or 28×28 images are not postage stamps."""
    factor = max(1, -(-min_side // max(1, min(grid.shape[:2]))))
    factor = min(factor, 16)
    if factor == 1:
        return grid
    return np.ascontiguousarray(grid.repeat(factor, axis=0).repeat(factor, axis=1))


def write_csv(path: str | Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(list(header))
        writer.writerows(rows)
    return path


def cell_of(pixel_x: float, pixel_y: float, cell_h: int, cell_w: int, pad: int) -> tuple[int, int]:
    """(row, col) of the grid cell under an image pixel (tile's layout: pad, then cells of size+pad)."""
    return int((pixel_y - pad) // (cell_h + pad)), int((pixel_x - pad) // (cell_w + pad))


def ask_save_path(parent: QWidget, title: str, stem: str, suffix: str, filter_text: str) -> str | None:
    """A save dialog proposing `stem.suffix` in the remembered export folder (the one Ctrl+E uses too); the chosen
    path with the suffix added if missing (None: cancelled). The chosen folder is remembered."""
    from gui.settings import export_folder, remember_export_folder

    path, _ = QFileDialog.getSaveFileName(parent, title, str(Path(export_folder()) / f"{stem}.{suffix}"),
                                          filter_text)
    if not path:
        return None
    remember_export_folder(path)
    return path if path.lower().endswith("." + suffix) else f"{path}.{suffix}"


def warn_export_failed(parent: QWidget, exc: Exception) -> None:
    QMessageBox.warning(parent, "Export failed", str(exc))


def write_chosen(path: str | None, write: Callable[[str], Any], failed: Callable[[Exception], Any]) -> None:
    """`write(path)` unless the dialog was cancelled; an OSError/ValueError goes to `failed`, never into Qt."""
    if path:
        try:
            write(path)
        except (OSError, ValueError) as exc:
            failed(exc)


def grid_ticks(count: int, cell: int, pad: int, labels: Sequence[str]) -> list[tuple[float, str]]:
    """Tick positions at the centre of each grid row/column."""
    return [(pad + i * (cell + pad) + cell / 2.0, labels[i]) for i in range(min(count, len(labels)))]


def button(text: str, slot: Callable[[], None], tooltip: str = "") -> QPushButton:
    b = QPushButton(text)
    b.clicked.connect(slot)
    if tooltip:
        b.setToolTip(tooltip)
    return b


class PanelBase(QWidget):
    """A panel: an empty state until a model exists, a content page, a status line, and one inference runner.

    Subclasses build their widgets into `self.content` and implement `rebuild()` (a new model/dataset) and
    `refresh()` (newer live weights). Jobs get the model via `self.model()` on the worker thread.
    """

    empty_text = "No model yet. Train one (press Start) or open a checkpoint to explore it here."

    def __init__(self, source: ModelSource, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.source = source
        self.runner = InferenceRunner(type(self).__name__, self)
        self._model_cache: tuple[tuple[int, int], Any] | None = None
        self._shut = False
        self._stale: str | None = None  # "rebuild" / "refresh" owed to a tab that was hidden when it was due
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        self.stack = QStackedWidget()
        self.empty_label = QLabel(self.empty_text)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.empty_label.setObjectName("panelEmptyState")
        self.content = QWidget()
        self.stack.addWidget(self.empty_label)
        self.stack.addWidget(self.content)
        outer.addWidget(self.stack, 1)
        self.status = QLabel("")
        self.status.setObjectName("panelStatus")
        self.status.setWordWrap(True)
        outer.addWidget(self.status)
        self.runner.failed.connect(self.show_error)
        self._live_timer = QTimer(self)
        self._live_timer.setSingleShot(True)
        self._live_timer.setInterval(LIVE_REFRESH_MS)
        self._live_timer.timeout.connect(self._live_refresh)
        source.changed.connect(self._on_source_changed)
        source.weights_updated.connect(self._on_weights_updated)
        if source.has_model:  # built after a run started (deferred tabs): take the model, once the subclass is built
            QTimer.singleShot(0, self, self._on_source_changed)

    # --- model access (worker thread) ----------------------------------------------------------------
    def model(self) -> Any:
        """The snapshot for the current model and step, reused across jobs until either changes (worker thread only).

        The key is read before the snapshot is taken, so a model swapped in meanwhile only costs one more copy."""
        key = (self.source.generation, self.source.step)
        if self._model_cache is None or self._model_cache[0] != key or not self.source.has_model:
            self._model_cache = (key, self.source.snapshot() if self.source.has_model else None)
        return self._model_cache[1]

    def submit(self, channel: str, job: Callable[[Any], Any], on_result: Callable[[Any], None]) -> None:
        """Run job(model) off the GUI thread; `on_result` runs on the GUI thread (newest request per channel)."""
        if self._shut:
            return

        def run() -> Any:
            model = self.model()
            if model is None:
                raise RuntimeError("no model")
            return job(model)

        self.runner.submit(channel, run, on_result, self.show_error)

    # --- source signals ----------------------------------------------------------------------------
    def _on_source_changed(self) -> None:
        """A different model (or a run's final weights): nothing computed for the old one may still arrive."""
        self.runner.cancel_all()
        if not self.source.has_model or self.source.dataset is None:
            self.stack.setCurrentWidget(self.empty_label)
            self.status.setText("")
            return
        self.stack.setCurrentWidget(self.content)
        self.status.setText("")
        if self.isVisible():
            self._stale = None
            self.rebuild()
        else:  # a hidden tab does no inference (it would compete with training): it rebuilds when shown
            self._stale = "rebuild"

    def showEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        stale, self._stale = self._stale, None
        if stale == "rebuild" and not self._shut:
            self.rebuild()
        elif stale == "refresh" and not self._shut:
            self.refresh()

    def sync_with_source(self) -> None:
        """A panel built after the source already had a model (the window builds panels lazily): show it."""
        if self.source.has_model:
            self._on_source_changed()

    def _on_weights_updated(self, step: int) -> None:
        if self.source.has_model and not self._live_timer.isActive():
            self._live_timer.start()

    def _live_refresh(self) -> None:
        if self._shut:
            return
        if self.isVisible():
            self.refresh()
        elif self._stale is None:
            self._stale = "refresh"

    # --- to implement ------------------------------------------------------------------------------
    def rebuild(self) -> None:
        raise NotImplementedError

    def refresh(self) -> None:
        self.rebuild()

    # --- helpers -----------------------------------------------------------------------------------
    def show_error(self, text: str) -> None:
        if text.endswith("no model"):
            return
        self.status.setText(f"⚠ {text}")

    def test_indices(self) -> torch.Tensor:
        idx = self.source.test_indices
        if idx is None:
            return torch.arange(len(self.source.dataset))
        return torch.as_tensor(idx, dtype=torch.long).reshape(-1)

    def ask_path(self, title: str, suffix: str, filter_text: str) -> str | None:
        return ask_save_path(self, title, type(self).__name__.removesuffix("Panel").lower(), suffix, filter_text)

    def export_dialog(self, title: str, suffix: str, filter_text: str, write: Callable[[str], Any]) -> None:
        """Ask for a file name, write it with `write(path)`; a failure is shown, never raised into Qt."""
        write_chosen(self.ask_path(title, suffix, filter_text), write, self.export_failed)

    def write_in_background(self, write: Callable[[], Any]) -> None:
        """Run `write()` (encode and save an export, e.g. a GIF: ~0.5 s) on the panel's worker thread; the status
        line says "exporting…", then where it was saved or why it failed."""
        self.status.setText("exporting…")
        self.runner.submit("export", write, self.exported, self.show_error)

    def exported(self, path: str | Path) -> None:
        self.status.setText(f"Saved {path}")

    def export_failed(self, exc: Exception) -> None:
        warn_export_failed(self, exc)

    def save_grid_png(self, grid: np.ndarray | None, path: str | Path) -> Path:
        if grid is None:
            raise ValueError("nothing to export yet")
        out = save_png(upscale(grid), path)
        self.exported(out)
        return out

    def shutdown(self) -> None:
        """Stop the inference worker (the main window calls this; closing the panel does too)."""
        if self._shut:
            return
        self._shut = True
        self._live_timer.stop()
        try:
            self.source.changed.disconnect(self._on_source_changed)
            self.source.weights_updated.disconnect(self._on_weights_updated)
        except (RuntimeError, TypeError):
            pass
        self.runner.shutdown()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self.shutdown()
        super().closeEvent(event)


def thumbnails_row(images_uint8: np.ndarray, pad: int = 1) -> np.ndarray:
    """One row of thumbnails as a uint8 grid (what the pickers show)."""
    from engine.imaging import tile

    return tile(images_uint8, len(images_uint8), pad=pad)


def hbox(*widgets: QWidget, stretch_last: bool = False) -> QHBoxLayout:
    layout = QHBoxLayout()
    for w in widgets:
        layout.addWidget(w)
    if stretch_last:
        layout.addStretch(1)
    return layout
