"""The Training tab: start/pause/stop, progress, live curves, KL per dimension, reconstructions and samples.

Export (Ctrl+E, or "Export the Training figure…" in any plot's context menu) writes the plots as one labelled figure
(engine.imaging.labelled_panels) — loss curves, MIG over steps, the MI heatmap, KL per dimension, reconstructions,
prior samples — or, as .csv, every recorded point. Each plot's context menu also exports that plot alone as a PNG.
Both dialogs open in the app's one remembered export folder (gui.panels.common.ask_save_path).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from engine.events import DisentanglementProbe, EpochSummary, Preview, StepMetrics
from engine.imaging import labelled_panels, save_png
from engine.models.base import HyperParam, ModelBase
from engine.probe import probes_in_history
from gui.widgets import ImageGrid, KLBarChart, LabeledSlider, LossCurves
from gui.widgets.disentanglement import DisentanglementView
from gui.widgets.figure import widget_image

PNG_FILTER = "PNG image (*.png)"


def _format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "–"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _slider_range(param: HyperParam) -> tuple[float, float, bool]:
    """(low, high, log) for a live hyperparameter's slider: log when the range spans ≥ 2 decades above zero."""
    default = float(param.default)
    low = float(param.low) if param.low is not None else 0.0
    high = float(param.high) if param.high is not None else max(10.0, 10.0 * abs(default))
    if param.low is not None and not param.low_inclusive and low <= 0:
        low = min(1e-4, default / 100 if default > 0 else 1e-4)
    high = min(high, max(20.0, 5.0 * abs(default)))  # resolution where people actually move β, C_max, λ
    log = low > 0 and high / low >= 100
    return low, high, log


class TrainingPanel(QWidget):
    """Shows one run. The main window wires the buttons to the worker and the worker's signals to `on_*`."""

    start_requested = Signal()
    pause_toggled = Signal()
    stop_requested = Signal()
    live_value_changed = Signal(str, float)  # name, value (β, C_max, lr, …)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("trainingPanel")
        self.state = "idle"
        self.last_metrics: StepMetrics | None = None
        self.last_preview_step: int | None = None
        self.previews_shown = 0
        self._run_total_steps: int | None = None
        root = QVBoxLayout(self)
        root.setContentsMargins(6, 6, 6, 6)

        controls = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.setObjectName("startButton")
        self._start_tooltip = "Start training with the settings in the docks (Ctrl+R)"
        self.start_button.setToolTip(self._start_tooltip)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setObjectName("pauseButton")
        self.pause_button.setToolTip("Pause / resume between steps (Space)")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("stopButton")
        self.stop_button.setToolTip("Stop the run; the weights so far stay explorable and can be saved")
        for button in (self.start_button, self.pause_button, self.stop_button):
            button.setMinimumWidth(80)
            controls.addWidget(button)
        self.progress = QProgressBar()
        self.progress.setObjectName("trainingProgress")
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.progress.setValue(0)  # a bar below its minimum (Qt's initial state) draws no text at all
        self.progress.setFormat("ready — press Start")
        controls.addWidget(self.progress, 1)
        root.addLayout(controls)
        self.start_button.clicked.connect(self.start_requested)
        self.pause_button.clicked.connect(self.pause_toggled)
        self.stop_button.clicked.connect(self.stop_requested)

        self.live_box = QGroupBox("Change while training")
        self.live_box.setObjectName("liveControls")
        self.live_layout = QHBoxLayout(self.live_box)
        self.live_layout.setContentsMargins(6, 2, 6, 2)
        self.live_sliders: dict[str, LabeledSlider] = {}
        self.in_force_label = QLabel("")
        self.in_force_label.setObjectName("inForceLabel")
        root.addWidget(self.live_box)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        self.curves = LossCurves()
        self.disentanglement = DisentanglementView()  # MIG curve + latent × factor MI (live probe)
        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(self.curves)
        left.addWidget(self.disentanglement)
        left.setStretchFactor(0, 3)
        left.setStretchFactor(1, 2)
        splitter.addWidget(left)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        self.recon_grid = ImageGrid("Inputs (odd rows) and reconstructions (even rows)")
        self.recon_grid.setObjectName("reconstructionGrid")
        self.samples_grid = ImageGrid("Samples from the prior")
        self.samples_grid.setObjectName("samplesGrid")
        self.recon_grid.set_empty_hint("Reconstructions appear here while training")
        self.samples_grid.set_empty_hint("Prior samples appear here (generative models)")
        self.kl_bars = KLBarChart()
        self.kl_bars.setObjectName("klBars")
        right_layout.addWidget(self.recon_grid, 3)
        right_layout.addWidget(self.samples_grid, 2)
        right_layout.addWidget(self.kl_bars, 2)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        root.addWidget(splitter, 1)
        self.set_state("idle")
        for widget, title, stem in self.plot_widgets():
            self._install_export_menu(widget, title, stem)

    # --- state --------------------------------------------------------------------------------------
    def set_state(self, state: str, can_start: bool = True) -> None:
        """idle | preparing | running | paused | stopping: enables the buttons that make sense; the progress bar
        says "preparing" while the session is built and "paused" (no speed, no ETA) while paused."""
        self.state = state
        self.start_button.setEnabled(state == "idle" and can_start)
        self.start_button.setToolTip(self._start_tooltip if can_start or state != "idle"
                                     else "Choose a model family in the Model dock first")
        self.pause_button.setEnabled(state in ("running", "paused"))
        self.pause_button.setText("Resume" if state == "paused" else "Pause")
        self.stop_button.setEnabled(state in ("running", "paused"))
        self.live_box.setEnabled(state in ("running", "paused", "idle"))
        if state == "preparing":
            self.progress.setValue(0)
            self.progress.setFormat("preparing the run: loading the data, building the model…")
        elif state == "paused":
            last = self.last_metrics
            where = f"step {last.step:,}  ·  epoch {last.epoch}  ·  " if last is not None else ""
            self.progress.setFormat(f"paused  ·  {where}{100 * last.progress:.0f}%" if last is not None else "paused")
        elif state == "running" and self.last_metrics is not None:
            self._show_progress(self.last_metrics)

    def reset(self, total_steps: int | None = None) -> None:
        """Clear curves and images for a new run."""
        self.curves.clear()
        self.recon_grid.set_image(None)
        self.samples_grid.set_image(None)
        self.kl_bars.set_values([])
        self.disentanglement.clear()
        self.last_metrics = None
        self.in_force_label.setText("")
        self.last_preview_step = None
        self.previews_shown = 0
        self._run_total_steps = total_steps
        self.progress.setValue(0)
        self.progress.setFormat("starting…")

    def configure_live_controls(self, model_cls: type[ModelBase] | None, hparams: Mapping[str, Any],
                                lr: float) -> None:
        """One slider per live hyperparameter of the family, plus the learning rate."""
        for slider in self.live_sliders.values():
            self.live_layout.removeWidget(slider)
            slider.hide()  # gone at once, even before the event loop gets to the deferred delete
            slider.deleteLater()
        self.live_sliders = {}
        self.in_force_label.setText("")  # another family's values (β of a β-VAE) must not linger
        self.live_layout.removeWidget(self.in_force_label)
        params = [p for p in (model_cls.all_hparams() if model_cls else ()) if p.live and p.kind in (int, float)]
        for param in params:
            low, high, log = _slider_range(param)
            value = float(hparams.get(param.name, param.default))
            tooltip = f"{param.help}<br>applies at the next step" + (
                f"<br><i>{model_cls.formula}</i>" if model_cls and model_cls.formula else "")
            self._add_slider(param.name, low, max(high, value), value, log, tooltip)
        self._add_slider("lr", 1e-5, 1e-1, float(lr), True, "Adam learning rate; applies at the next step",
                         decimals=6)
        self.live_layout.addWidget(self.in_force_label)

    def _add_slider(self, name: str, low: float, high: float, value: float, log: bool, tooltip: str,
                    decimals: int = 3) -> None:
        slider = LabeledSlider(name, low, high, min(max(value, low), high), log=log, decimals=decimals,
                               tooltip=tooltip)
        slider.setObjectName(f"live_{name}")
        slider.value_committed.connect(lambda v, n=name: self.live_value_changed.emit(n, v))
        self.live_layout.addWidget(slider, 1)
        self.live_sliders[name] = slider

    # --- events from the worker (GUI thread) ----------------------------------------------------------
    def on_metrics(self, batch: Sequence[StepMetrics]) -> None:
        if not batch:
            return
        steps = np.fromiter((m.step for m in batch), dtype=np.float64, count=len(batch))
        self.curves.add_train(steps, _columns(m.terms for m in batch))
        self.curves.add_live(steps, _columns(m.live for m in batch))
        last = batch[-1]
        self.last_metrics = last
        if self.state != "paused":
            self._show_progress(last)
        if last.live:
            self.in_force_label.setText("in force: " + ", ".join(f"{k}={v:.4g}" for k, v in last.live.items()))

    def _show_progress(self, last: StepMetrics) -> None:
        self.progress.setValue(int(round(1000 * min(max(last.progress, 0.0), 1.0))))
        self.progress.setFormat(f"step {last.step:,}  ·  epoch {last.epoch}  ·  "
                                f"{last.samples_per_s:,.0f} samples/s  ·  ETA {_format_duration(last.eta_s)}  ·  "
                                f"{100 * last.progress:.0f}%")

    def on_epoch(self, summary: EpochSummary) -> None:
        if summary.test:
            self.curves.add_test([summary.step], {k: [v] for k, v in summary.test.items()})
        if summary.kl_per_dim:
            self.kl_bars.set_values(summary.kl_per_dim)

    def on_preview(self, preview: Preview) -> None:
        self.recon_grid.set_image(preview.reconstructions)
        if preview.samples is not None:
            self.samples_grid.set_image(preview.samples)
        if preview.kl_per_dim:
            self.kl_bars.set_values(preview.kl_per_dim)
        self.last_preview_step = preview.step
        self.previews_shown += 1

    def on_probes(self, probes: Sequence[DisentanglementProbe]) -> None:
        self.disentanglement.add_probes(probes)

    def set_probe_note(self, reason: str | None) -> None:
        """None: a live disentanglement probe runs for this model and data; text: why not (one line)."""
        self.disentanglement.set_unavailable(reason)

    def set_finished_text(self, text: str) -> None:
        self.progress.setFormat(text)

    def show_checkpoint(self, loaded: Any, recon_grid: np.ndarray | None, samples_grid: np.ndarray | None,
                        probe_note: str | None, position: str) -> int:
        """An opened checkpoint: its recorded curves and probes, previews and live controls; Start continues it.
        Returns the number of recorded train points drawn."""
        self.reset(loaded.config.max_steps)
        drawn = self.load_history(loaded.history)
        self.set_probe_note(probe_note)
        if probe_note is None and not self.disentanglement.steps:
            self.disentanglement.show_no_recorded_probe()
        self.configure_live_controls(type(loaded.model), loaded.model.hparams, loaded.config.lr)
        self.set_finished_text(f"checkpoint at {position} — Start continues it")
        self.start_button.setText("Continue")
        self.start_button.setToolTip("Train the dock's epochs (or max steps) more from this checkpoint")
        self.recon_grid.set_image(recon_grid)
        self.samples_grid.set_image(samples_grid)
        return drawn

    def show_ready(self) -> None:
        """A new run: empty views, "ready — press Start"."""
        self.reset(None)
        self.progress.setFormat("ready — press Start")
        self.start_button.setText("Start")

    def load_history(self, history: Any) -> int:
        """Draw the curves recorded in a checkpoint or run folder; returns the number of train points drawn."""
        train, test, live = _history_records(history)
        if train:
            steps = [r[0] for r in train]
            self.curves.add_train(steps, _columns(r[1] for r in train))
        if live:
            self.curves.add_live([r[0] for r in live], _columns(r[1] for r in live))
        if test:
            self.curves.add_test([r[0] for r in test], _columns(r[1] for r in test))
        kl = [r.get("kl_per_dim") for r in (history if isinstance(history, list) else [])
              if isinstance(r, Mapping) and r.get("kl_per_dim")]
        if kl:
            self.kl_bars.set_values(kl[-1])
        probes = probes_in_history(history if isinstance(history, list) else [])
        if probes:
            self.disentanglement.add_probes(probes)
        self.curves.mark_dirty()  # drawn at the curves timer's next tick: a separate event-loop turn
        return len(train)

    # --- export ----------------------------------------------------------------------------------------
    def plot_widgets(self) -> list[tuple[QWidget, str, str]]:
        """(widget, title, file stem) of every plot of the tab, in figure order."""
        view = self.disentanglement
        return [(self.curves.graphics, "Loss terms and values in force", "training-curves"),
                (view.curve_plot, "MIG over training steps", "mig-curve"),
                (view.heatmap, "Latent × factor mutual information I(z_j; v_k) / H(v_k)", "mi-heatmap"),
                (self.kl_bars, "KL per latent dimension (nats)", "kl-per-dimension"),
                (self.recon_grid.view, "Inputs (odd rows) and reconstructions (even rows)", "reconstructions"),
                (self.samples_grid.view, "Samples from the prior", "prior-samples")]

    def _install_export_menu(self, widget: QWidget, title: str, stem: str) -> None:
        """Right-click on the plot: export it alone, or the whole figure (the scene's menu replaces pyqtgraph's own
        "Export…" dialog, so every export goes through the app's one dialog and folder)."""
        plot_item = widget.getPlotItem() if hasattr(widget, "getPlotItem") else None
        items = [plot_item] if plot_item is not None else [
            item for item in widget.ci.items if hasattr(item, "setMenuEnabled")]
        for item in items:
            item.setMenuEnabled(True)
        alone = QAction("Export this plot as PNG…", widget)
        alone.triggered.connect(lambda: self._export_plot_dialog(widget, title, stem))
        whole = QAction("Export the Training figure…", widget)
        whole.triggered.connect(self._export_figure_dialog)
        widget.scene().contextMenu = [alone, whole]

    def _export_plot_dialog(self, widget: QWidget, title: str, stem: str) -> None:
        from gui.panels.common import ask_save_path, warn_export_failed, write_chosen  # the one export dialog

        path = ask_save_path(self, f"Export {title}", stem, "png", PNG_FILTER)
        write_chosen(path, lambda p: self.export_plot(widget, p), lambda exc: warn_export_failed(self, exc))

    def _export_figure_dialog(self) -> None:
        from gui.panels.common import ask_save_path, warn_export_failed, write_chosen

        path = ask_save_path(self, "Export the Training figure", "training", "png", PNG_FILTER)
        write_chosen(path, self.export_figure, lambda exc: warn_export_failed(self, exc))

    def export_plot(self, widget: QWidget, path: str | Path) -> Path:
        """One plot as a PNG (an image grid: its images, enlarged; a plot: as drawn)."""
        return save_png(self._plot_pixels(widget), Path(path).with_suffix(".png"))

    def _plot_pixels(self, widget: QWidget) -> np.ndarray:
        from gui.panels.common import upscale

        for grid in (self.recon_grid, self.samples_grid):
            if widget is grid.view and grid.image() is not None:
                return upscale(np.asarray(grid.image()), 256)
        return widget_image(widget)

    def figure(self) -> np.ndarray:
        """The tab's plots as one labelled figure (plots that are hidden or have nothing to show are left out)."""
        panels = []
        for widget, title, _ in self.plot_widgets():
            if not widget.isVisibleTo(self):
                continue
            if widget in (self.recon_grid.view, self.samples_grid.view) and \
                    (self.recon_grid.image() if widget is self.recon_grid.view else self.samples_grid.image()) is None:
                continue
            panels.append((title, self._plot_pixels(widget)))
        last = self.last_metrics
        where = f" at step {last.step:,}" if last is not None else ""
        in_force = self.in_force_label.text().removeprefix("in force: ")
        title = f"Latent Explorer — training{where}" + (f"  ({in_force})" if in_force else "")
        return labelled_panels(panels, columns=2, title=title)

    def export_figure(self, path: str | Path) -> Path:
        """.csv: every recorded train/test point and MIG probe; anything else: the plots as one labelled PNG."""
        path = Path(path)
        if path.suffix.lower() == ".csv":
            with path.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(["split", "term", "step", "value"])
                for split, names, getter in (("train", self.curves.train_terms(), self.curves.train_series),
                                             ("test", self.curves.test_terms(), self.curves.test_series),
                                             ("in_force", self.curves.live_names(), self.curves.live_series)):
                    for name in names:
                        xs, ys = getter(name)
                        writer.writerows((split, name, int(x), repr(float(y))) for x, y in zip(xs, ys, strict=True))
                view = self.disentanglement
                writer.writerows(("probe", "mig", step, repr(mig)) for step, mig in zip(view.steps, view.migs,
                                                                                       strict=True))
            return path
        if path.suffix.lower() != ".png":
            path = path.with_suffix(".png")
        return save_png(self.figure(), path)


def _columns(rows: Iterable[Mapping[str, float]]) -> dict[str, np.ndarray]:
    """Rows of {name: value} → {name: column}, NaN where a row lacks a name."""
    rows = list(rows)
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    return {name: np.fromiter((float(row.get(name, math.nan)) for row in rows), dtype=np.float64, count=len(rows))
            for name in names}


def _history_records(history: Any) -> tuple[list, list, list]:
    """Normalise a recorded history into (train, test, live) lists of (step, {name: value}).

    Accepts a list of records (``{"step", "terms", "live"}`` step records, ``{"step", "test": {...}}`` epoch
    records, or flat ``{"step": …, "total": …}`` rows) or a dict with "train"/"test" lists of such records.
    """
    train: list = []
    test: list = []
    live: list = []
    if history is None:
        return train, test, live
    if isinstance(history, Mapping):
        for key, target in (("train", train), ("steps", train), ("test", test), ("epochs", test)):
            value = history.get(key)
            if isinstance(value, list):
                sub_train, sub_test, sub_live = _history_records(value)
                target.extend(sub_test if target is test and sub_test else sub_train)
                live.extend(sub_live)
        return train, test, live
    for record in history:
        if not isinstance(record, Mapping) or "step" not in record or record.get("kind") == "probe":
            continue
        step = float(record["step"])
        numbers = {k: float(v) for k, v in record.items()
                   if isinstance(v, int | float) and not isinstance(v, bool) and k not in ("step", "epoch")}
        if isinstance(record.get("test"), Mapping):
            test.append((step, {k: float(v) for k, v in record["test"].items()}))
            if isinstance(record.get("train"), Mapping) and not isinstance(record.get("terms"), Mapping):
                continue
        if isinstance(record.get("terms"), Mapping):
            train.append((step, {k: float(v) for k, v in record["terms"].items()}))
        elif "test" not in record and numbers:
            train.append((step, {k: v for k, v in numbers.items() if k not in ("samples_per_s", "progress",
                                                                              "eta_s", "time", "wall_s")}))
        if isinstance(record.get("live"), Mapping):
            live.append((step, {k: float(v) for k, v in record["live"].items()}))
    return train, test, live
