"""β sweeps from the app: the runs of a grid (engine/sweep.py) trained from a worker thread — here one after another,
in parallel local processes, or as tasks on a Ray cluster — with per-run progress, and the comparison: the
rate–distortion plane (KL vs reconstruction, one point per run), a plot of any score against a swept hyperparameter
(mean ± std over seeds, one line per value of the other grid parameters) and the table across runs — its run and grid
columns frozen while the scores scroll, each row with a small traversal thumbnail (the run's traversal.png). Double-
click a run to open it in every tab; "Compare selected" sends the selected runs to the Compare tab.

The sweep thread never touches Qt: it appends events to a lock-protected mailbox that a QTimer of this panel
(GUI thread) drains ten times a second, so every widget update runs on the GUI thread (see DESIGN.md, PySide6).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engine.config import TrainConfig
from engine.control import Control
from engine.errors import ConfigError
from engine.metrics import METRIC_NAMES, MetricSizes
from engine.run_folder import RunFolder
from engine.scoring import ELBO_KEYS, SCORE_KEYS
from engine.sweep import (
    RunDone,
    SweepDone,
    SweepProgress,
    SweepRunner,
    SweepWarning,
    load_summary,
    make_backend,
    parse_grid,
    plan_sweep,
    point_label,
    rate_distortion_points,
    summary_columns,
    write_summary,
)
from gui.inference import InferenceRunner
from gui.model_source import ModelSource
from gui.panels.common import ask_save_path, button, warn_export_failed, write_chosen, write_csv
from gui.widgets import ToolRow
from gui.widgets.empty_hint import EmptyHint
from gui.widgets.frozen_table import FrozenTable

DRAIN_MS = 100
RATE_DISTORTION_HINT = "Start a sweep (or open a summary.json): one point per finished run appears here"
TABLE_HINT = "−ELBO, KL and the scores of each run appear here as runs finish"
THREAD_NAME = "latent-explorer-sweep"
APP_SETTINGS = "Current app settings"
COLUMN_TITLES = {"neg_elbo": "−ELBO", "recon": "recon", "kl": "KL", "active_units": "active", "iwae_nll": "IWAE NLL",
                 "beta_vae": "BetaVAE", "factor_vae": "FactorVAE", "mig": "MIG", "dci_disentanglement": "DCI-D",
                 "dci_completeness": "DCI-C", "dci_informativeness": "DCI-I", "sap": "SAP"}


# Presets made to be swept: choosing one fills the grid, and its finished runs open side by side in the Compare tab.
LESSON_GRIDS = {"dsprites-beta-lesson": "beta=1,2,4,6,10"}

# Score choices of the Sweep and Evaluation tabs: (metric names, DCI estimator).
SCORE_CHOICES = {"All five": (METRIC_NAMES, "exact"),
                 "Without DCI": (tuple(n for n in METRIC_NAMES if n != "dci"), "exact"),
                 "None": ((), "exact"),
                 "All five, fast approximate DCI": (METRIC_NAMES, "hist")}

class SweepWorker(QObject):
    """Runs a SweepRunner in a plain thread; the mailbox is drained on the GUI thread by a timer of this object."""

    progress = Signal(object)  # SweepProgress (the newest of each run)
    run_done = Signal(object)  # RunDone
    warning = Signal(str)
    done = Signal(object)  # SweepDone, or None when the sweep crashed
    failed = Signal(str)

    def __init__(self, runner: SweepRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.control = Control()
        self._lock = threading.Lock()
        self._mailbox: list[Any] = []
        self._latest_progress: dict[int, SweepProgress] = {}
        runner.listener = self._post_progress
        self._timer = QTimer(self)
        self._timer.setInterval(DRAIN_MS)
        self._timer.timeout.connect(self._drain)
        self._thread = threading.Thread(target=self._work, name=THREAD_NAME, daemon=False)
        self.finished = False

    def start(self) -> None:
        self._timer.start()
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Ask the sweep to stop at its next step (or metric stage) and wait for the thread; True if it ended."""
        self.control.stop()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._drain()
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    # --- sweep thread ----------------------------------------------------------------------------------
    def _post_progress(self, event: SweepProgress) -> None:
        with self._lock:
            self._latest_progress[event.run_index] = event

    def _work(self) -> None:
        try:
            for event in self.runner.run(self.control):
                if isinstance(event, SweepProgress):
                    self._post_progress(event)
                else:
                    with self._lock:
                        self._mailbox.append(event)
        except Exception as exc:  # shown in the panel; the app keeps running
            with self._lock:
                self._mailbox.append(RuntimeError(f"{type(exc).__name__}: {exc}"))

    # --- GUI thread -----------------------------------------------------------------------------------
    def _drain(self) -> None:
        with self._lock:
            events, self._mailbox = self._mailbox, []
            latest, self._latest_progress = self._latest_progress, {}
        for event in sorted(latest.values(), key=lambda e: e.fraction):
            self.progress.emit(event)
        for event in events:
            if isinstance(event, RunDone):
                self.run_done.emit(event)
            elif isinstance(event, SweepWarning):
                self.warning.emit(event.message)
            elif isinstance(event, SweepDone):
                self.finished = True
                self._timer.stop()
                self.done.emit(event)
            elif isinstance(event, RuntimeError):
                self.finished = True
                self._timer.stop()
                self.failed.emit(str(event))


class RateDistortionPlot(pg.PlotWidget):
    """KL (rate) on x, reconstruction NLL (distortion) on y; one labelled point per run, joined in rate order."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent=parent, background="#1e1e1e")
        item = self.getPlotItem()
        item.setTitle("Rate–distortion plane (one point per run)", size="9pt")
        item.setLabel("bottom", "rate: KL(q(z|x) ‖ p(z)) [nats]")
        item.setLabel("left", "distortion: recon NLL [nats]")
        item.showGrid(x=True, y=True, alpha=0.2)
        self.curve = pg.PlotDataItem(pen=pg.mkPen("#7f8fbf", width=1))
        self.scatter = pg.ScatterPlotItem(size=11, brush=pg.mkBrush("#4fa3e0"), pen=pg.mkPen("w"))
        self.addItem(self.curve)
        self.addItem(self.scatter)
        self.labels: list[pg.TextItem] = []
        self.points: list[tuple[float, float, str]] = []
        self.empty_hint = EmptyHint(item, RATE_DISTORTION_HINT)

    def set_points(self, points: list[tuple[float, float, str]]) -> None:
        for label in self.labels:
            self.removeItem(label)
        self.labels = []
        self.points = list(points)
        self.empty_hint.setVisible(not points)
        if not points:
            self.scatter.setData([], [])
            self.curve.setData([], [])
            return
        xs = np.array([p[0] for p in points])
        ys = np.array([p[1] for p in points])
        self.scatter.setData(xs, ys)
        order = np.argsort(xs, kind="stable")
        self.curve.setData(xs[order], ys[order])
        for x, y, text in points:
            label = pg.TextItem(text, color="#e0e0e0", anchor=(-0.1, 1.1))
            label.setPos(x, y)
            self.addItem(label)
            self.labels.append(label)
        x_span = max(float(xs.max() - xs.min()), 1e-3)
        y_span = max(float(ys.max() - ys.min()), 1e-3)
        self.getPlotItem().setRange(xRange=(xs.min() - 0.08 * x_span, xs.max() + 0.2 * x_span),
                                    yRange=(ys.min() - 0.08 * y_span, ys.max() + 0.12 * y_span), padding=0)


class SweepPanel(QWidget):
    """Set up a sweep (config, grid, seeds, steps, out folder), run it with progress and cancel, compare the runs."""

    def __init__(self, source: ModelSource | None = None, parent: QWidget | None = None,
                 config_provider: Callable[[], TrainConfig] | None = None) -> None:
        super().__init__(parent)
        self.source = source
        self.config_provider = config_provider
        self.worker: SweepWorker | None = None
        self.records: list[dict[str, Any]] = []
        self.sweep_dir: Path | None = None
        self.files: dict[str, str] = {}
        self.thumbnails = InferenceRunner("sweep-thumbnails", self)
        self._build()

    # --- widgets -------------------------------------------------------------------------------------
    def _build(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        row1 = ToolRow()
        self.config_combo = QComboBox()
        self.config_combo.setToolTip("The run every grid point starts from: the app's current settings, a preset, "
                                     "or a config file")
        self._fill_configs()
        self.config_combo.currentIndexChanged.connect(self._config_chosen)
        self.grid_edit = QLineEdit("beta=1,2,4,8")
        self.grid_edit.setToolTip("NAME=V1,V2,… ; several parameters separated by ';' (Cartesian product), e.g. "
                                  "beta=1,2,4,8  — β enters −ELBO_β = recon + β·KL")
        self.seeds_spin = QSpinBox()
        self.seeds_spin.setRange(1, 20)
        self.seeds_spin.setToolTip("Runs per grid point, with seeds s, s+1, …")
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(0, 10_000_000)
        self.steps_spin.setSingleStep(500)
        self.steps_spin.setValue(2000)
        self.steps_spin.setSpecialValueText("config")
        self.steps_spin.setToolTip("Training steps per run (0 = the config's epochs/max steps)")
        for label, widget in (("Base", self.config_combo), ("Grid", self.grid_edit), ("Seeds", self.seeds_spin),
                              ("Steps", self.steps_spin)):
            row1.add_labeled(label, widget)
        self.grid_edit.setMinimumWidth(220)
        root.addWidget(row1)

        row2 = ToolRow()
        self.metrics_combo = QComboBox()
        for text, choice in SCORE_CHOICES.items():
            self.metrics_combo.addItem(text, choice)
        self.metrics_combo.setToolTip("Disentanglement scores per run (datasets with ground-truth factors only)")
        self.sizes_combo = QComboBox()
        self.sizes_combo.addItems(["Quick (1,000 / 500 points)", "Standard (10,000 / 5,000)"])
        self.sizes_combo.setToolTip("Metric sample sizes: train/test points; batches of 32 (quick) or 64 (standard)")
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("sweep folder (one sub-folder per run)")
        self.out_edit.setMinimumWidth(200)
        row2.add_labeled("Scores", self.metrics_combo)
        row2.add_labeled("Sizes", self.sizes_combo)
        row2.add(QLabel("Folder"), self.out_edit, button("…", self._choose_folder, "Choose the sweep folder"))
        self.start_button = button("Start sweep", self.start, "Train the runs one after another")
        self.cancel_button = button("Cancel", self.cancel, "Stop the current run at its next step; skip the rest")
        self.cancel_button.setEnabled(False)
        row2.add(self.start_button, self.cancel_button)
        root.addWidget(row2)

        row_backend = QHBoxLayout()
        self.backend_combo = QComboBox()
        self.backend_combo.addItem("This machine", "local")
        self.backend_combo.addItem("Ray cluster", "ray")
        self.backend_combo.setToolTip("Where the runs train: here (one after another, or several at a time in "
                                      "separate processes), or as tasks on a Ray cluster (pip install -e "
                                      "'.[cluster]'; see docs/scale-out.md)")
        self.parallel_spin = QSpinBox()
        self.parallel_spin.setRange(1, max(1, os.cpu_count() or 1))
        self.parallel_spin.setToolTip("Runs trained at the same time, each in its own process (1 = one after "
                                      "another, in this process)")
        self.address_edit = QLineEdit()
        self.address_edit.setPlaceholderText("empty: $RAY_ADDRESS or a new local Ray instance; auto; HOST:PORT")
        self.address_edit.setToolTip("Address of a running Ray cluster (`ray start --head` prints it)")
        self.gpus_spin = QDoubleSpinBox()
        self.gpus_spin.setRange(0.0, 8.0)
        self.gpus_spin.setSingleStep(0.25)
        self.gpus_spin.setDecimals(2)
        self.gpus_spin.setToolTip("GPUs per run on Ray; fractions share a GPU (0.25 = four runs per GPU)")
        self.backend_combo.currentIndexChanged.connect(self._backend_changed)
        for label, widget in (("Run on", self.backend_combo), ("Parallel", self.parallel_spin),
                              ("Ray address", self.address_edit), ("GPUs/run", self.gpus_spin)):
            row_backend.addWidget(QLabel(label))
            row_backend.addWidget(widget, 1 if widget is self.address_edit else 0)
        root.addLayout(row_backend)
        self._backend_changed()

        row3 = QHBoxLayout()
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setTextVisible(True)
        self.progress_bar.setFormat("%p%")
        row3.addWidget(self.progress_bar, 1)
        row3.addWidget(button("Open sweep…", self._open_dialog, "Show the comparison of a finished sweep folder"))
        row3.addWidget(button("Export PNG…", self._export_png_dialog, "The rate–distortion plot"))
        row3.addWidget(button("Export CSV…", self._export_csv_dialog, "The table across runs"))
        self.compare_button = button("Compare selected", self.compare_selected,
                                     "Open the selected runs (up to six) side by side in the Compare tab")
        self.compare_button.setObjectName("sweepCompareSelected")
        row3.addWidget(self.compare_button)
        root.addLayout(row3)
        self.status = QLabel("")
        self.status.setObjectName("sweepStatus")
        self.status.setWordWrap(True)
        root.addWidget(self.status)

        self.runs_table = QTableWidget(0, 3)
        self.runs_table.setObjectName("sweepRuns")
        self.runs_table.setHorizontalHeaderLabels(["run", "state", "progress"])
        self.runs_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.runs_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.runs_table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.runs_table.verticalHeader().setVisible(False)
        self.runs_table.setToolTip("Progress of each run (several move at once on parallel or Ray backends)")
        self.run_bars: list[QProgressBar] = []

        split = QSplitter(Qt.Orientation.Horizontal)
        self.plots = QTabWidget()
        self.plots.setDocumentMode(True)
        self.plot = RateDistortionPlot()
        self.plots.addTab(self.plot, "Rate–distortion")
        self.plots.addTab(self._build_score_plot(), "Score vs hyperparameter")
        split.addWidget(self.plots)
        self.table = FrozenTable()
        self.table.setObjectName("sweepTable")
        self.table.setToolTip("Double-click a run to open it in every tab; select runs and press Compare selected")
        self.table.left.doubleClicked.connect(self._run_double_clicked)
        self.table.right.doubleClicked.connect(self._run_double_clicked)
        self.table.set_rows([TABLE_HINT], [])  # the header says what will appear until the first run finishes
        split.addWidget(self.table)
        split.setSizes([480, 520])
        rows = QSplitter(Qt.Orientation.Vertical)
        rows.addWidget(self.runs_table)
        rows.addWidget(split)
        rows.setSizes([110, 400])
        root.addWidget(rows, 1)

    def _build_score_plot(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        controls = ToolRow()
        self.score_combo = QComboBox()
        self.score_combo.setToolTip("The score drawn on the y axis")
        self.param_combo = QComboBox()
        self.param_combo.setToolTip("The swept hyperparameter on the x axis; one line per value of the others")
        self.score_combo.currentIndexChanged.connect(self._draw_score_plot)
        self.param_combo.currentIndexChanged.connect(self._draw_score_plot)
        controls.add_labeled("Score", self.score_combo)
        controls.add_labeled("against", self.param_combo)
        layout.addWidget(controls)
        self.score_plot = pg.PlotWidget(background="#1e1e1e")
        self.score_plot.setMenuEnabled(False)
        self.score_plot.showGrid(x=True, y=True, alpha=0.2)
        self.score_legend = self.score_plot.getPlotItem().addLegend(offset=(-6, 6), labelTextSize="8pt",
                                                                    brush=(30, 30, 30, 200))
        self.score_lines: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []  # (label, x, mean, std)
        layout.addWidget(self.score_plot, 1)
        return page

    def _fill_configs(self) -> None:
        self.config_combo.clear()
        if self.config_provider is not None:
            self.config_combo.addItem(APP_SETTINGS, ("app", ""))
        try:
            from engine.presets import list_presets

            for name, _description in list_presets():
                self.config_combo.addItem(f"preset: {name}", ("preset", name))
        except (ImportError, OSError, ConfigError):
            pass
        self.config_combo.addItem("Config file…", ("file", ""))

    def lesson(self) -> str | None:
        """The lesson preset chosen as the base (None: another base)."""
        kind, value = self.config_combo.currentData() or ("", "")
        return value if kind == "preset" and value in LESSON_GRIDS else None

    def _config_chosen(self, *_args) -> None:
        lesson = self.lesson()
        if lesson is not None and hasattr(self, "grid_edit"):
            self.grid_edit.setText(LESSON_GRIDS[lesson])
            self.steps_spin.setValue(0)  # the preset's own length

    def _backend_changed(self) -> None:
        ray = self.backend_combo.currentData() == "ray"
        self.parallel_spin.setEnabled(not ray and not self.is_running)
        self.address_edit.setEnabled(ray and not self.is_running)
        self.gpus_spin.setEnabled(ray and not self.is_running)

    def backend(self):
        """The engine backend the widgets describe (ConfigError for a malformed Ray address)."""
        if self.backend_combo.currentData() == "ray":
            return make_backend("ray", address=self.address_edit.text().strip() or None,
                                gpus_per_run=self.gpus_spin.value())
        return make_backend("local", parallel=self.parallel_spin.value())

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Sweep folder (one sub-folder per run)")
        if folder:
            self.out_edit.setText(folder)

    def set_config_file(self, path: str | Path) -> None:
        """Use a TOML config file as the base (what choosing “Config file…” does)."""
        self.config_combo.addItem(f"file: {Path(path).name}", ("file", str(path)))
        self.config_combo.setCurrentIndex(self.config_combo.count() - 1)

    def base_config(self) -> TrainConfig:
        kind, value = self.config_combo.currentData()
        if kind == "app":
            return self.config_provider()
        if kind == "preset":
            from engine.presets import load_preset

            return load_preset(value)
        if not value:
            path, _ = QFileDialog.getOpenFileName(self, "Base config", "", "Run config (*.toml)")
            if not path:
                raise ConfigError("no config file chosen")
            self.set_config_file(path)
            value = path
        return TrainConfig.load(value)

    # --- running -----------------------------------------------------------------------------------------
    @property
    def is_running(self) -> bool:
        return self.worker is not None and self.worker.running

    def _default_folder(self) -> Path:
        from gui.settings import runs_root

        return runs_root() / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}"

    def start(self) -> bool:
        """Plan the sweep from the widgets and start it in the worker thread; False (with a message) on bad input."""
        if self.is_running:
            return False
        try:
            base = self.base_config()
            grid = parse_grid(self.grid_edit.text())
            folder = Path(self.out_edit.text().strip()) if self.out_edit.text().strip() else self._default_folder()
            steps = self.steps_spin.value() or None
            runs = plan_sweep(base, grid, self.seeds_spin.value(), folder, steps)
            names, estimator = self.metrics_combo.currentData()
            sizes = MetricSizes.named("quick" if self.sizes_combo.currentIndex() == 0 else "standard",
                                      dci_estimator=estimator)
            runner = SweepRunner(runs, out_dir=folder, metrics=names, metric_sizes=sizes, backend=self.backend())
        except (ConfigError, ValueError, OSError) as exc:
            self.status.setText(f"⚠ {exc}")
            return False
        self.out_edit.setText(str(folder))
        self.sweep_dir = folder
        self.records = []
        self.files = {}
        self._show_records()
        self.worker = SweepWorker(runner, self)
        self.worker.progress.connect(self._on_progress)
        self.worker.run_done.connect(self._on_run_done)
        self.worker.warning.connect(self._on_warning)
        self.worker.done.connect(self._on_done)
        self.worker.failed.connect(self._on_failed)
        self.progress_bar.setValue(0)
        self._show_runs([run.name for run in runs])
        self.status.setText(f"{len(runs)} run(s) of {base.family} on {base.dataset} "
                            f"({runner.backend.describe()}) → {folder}")
        self._set_running(True)
        self.worker.start()
        return True

    def cancel(self) -> None:
        if self.worker is not None and self.worker.running:
            self.status.setText("Stopping after the current step…")
            self.worker.control.stop()

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        for widget in (self.config_combo, self.grid_edit, self.seeds_spin, self.steps_spin, self.metrics_combo,
                       self.sizes_combo, self.out_edit, self.backend_combo):
            widget.setEnabled(not running)
        ray = self.backend_combo.currentData() == "ray"
        self.parallel_spin.setEnabled(not running and not ray)
        self.address_edit.setEnabled(not running and ray)
        self.gpus_spin.setEnabled(not running and ray)

    def _on_progress(self, event: SweepProgress) -> None:
        self.progress_bar.setValue(int(round(event.fraction * 1000)))
        self.progress_bar.setFormat(f"%p%  — {event.message}")
        self._set_run_state(event.run_index, event.message, event.run_fraction)

    def _on_run_done(self, event: RunDone) -> None:
        self.records.append(event.record)
        self.records.sort(key=lambda r: self._run_row(r.get("run")))
        self._show_records()
        status = event.record.get("status", "")
        self._set_run_state(event.run_index, status + (f": {event.record['error']}" if event.record.get("error")
                                                       else ""), 1.0 if status == "completed" else None)

    # --- per-run progress ------------------------------------------------------------------------------------
    def _show_runs(self, names: list[str]) -> None:
        self.runs_table.setRowCount(len(names))
        self.run_bars = []
        for row, name in enumerate(names):
            self.runs_table.setItem(row, 0, QTableWidgetItem(name))
            self.runs_table.setItem(row, 1, QTableWidgetItem("waiting"))
            bar = QProgressBar()
            bar.setRange(0, 1000)
            bar.setValue(0)
            self.runs_table.setCellWidget(row, 2, bar)
            self.run_bars.append(bar)

    def _run_row(self, name: Any) -> int:
        for row in range(self.runs_table.rowCount()):
            if self.runs_table.item(row, 0).text() == name:
                return row
        return self.runs_table.rowCount()

    def _set_run_state(self, index: int, message: str, fraction: float | None) -> None:
        if not 0 <= index < len(self.run_bars):
            return
        self.runs_table.item(index, 1).setText(message)
        self.runs_table.item(index, 1).setToolTip(message)
        if fraction is not None:
            self.run_bars[index].setValue(int(round(fraction * 1000)))

    def run_fractions(self) -> list[float]:
        """Each planned run's progress (0…1), as its row shows it."""
        return [bar.value() / 1000 for bar in self.run_bars]

    def _on_warning(self, message: str) -> None:
        self.status.setText(f"⚠ {message}")

    def _on_done(self, event: SweepDone) -> None:
        self.records = list(event.records)
        self.files = dict(event.files)
        self._show_records()
        self._set_running(False)
        if event.reason == "completed":
            self.progress_bar.setValue(1000)
            self.progress_bar.setFormat("%p%  — done")
        failed = sum(r.get("status") == "failed" for r in self.records)
        where = f"; summary in {self.sweep_dir}" if self.files else ""
        self.status.setText(f"Sweep {event.reason}: {len(self.records)} run(s)"
                            + (f", {failed} failed" if failed else "") + where)
        self._join_worker()
        if event.reason == "completed" and self.lesson() is not None:
            self.compare_selected()  # the lesson ends with its models side by side

    def _on_failed(self, text: str) -> None:
        self._set_running(False)
        self.status.setText(f"⚠ the sweep failed: {text}")
        self._join_worker()

    def _join_worker(self) -> None:
        if self.worker is not None:
            self.worker.stop(5.0)

    # --- the comparison ------------------------------------------------------------------------------------
    def show_records(self, records: list[dict[str, Any]], folder: str | Path | None = None) -> None:
        """Show a sweep's records (e.g. loaded from summary.json)."""
        self.records = list(records)
        self.sweep_dir = Path(folder) if folder is not None else None
        self._show_records()

    def load_sweep(self, path: str | Path) -> None:
        path = Path(path)
        self.show_records(load_summary(path), path if path.is_dir() else path.parent)
        self.status.setText(f"Loaded {len(self.records)} run(s) from {path}")

    def _open_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Sweep folder (with summary.json)")
        if folder:
            try:
                self.load_sweep(folder)
            except ConfigError as exc:
                QMessageBox.warning(self, "Not a sweep", str(exc))

    def table_columns(self) -> list[str]:
        columns = summary_columns(self.records) if self.records else []
        return [c for c in columns if c not in ("folder",)]

    def grid_keys(self) -> list[str]:
        """The swept hyperparameters (the record keys that are grid values)."""
        columns = self.table_columns()
        return [c for c in columns[1:] if c not in ("seed", "status", "steps", "seconds", *ELBO_KEYS, *SCORE_KEYS)]

    def _show_records(self) -> None:
        columns = self.table_columns()
        rows = []
        for record in self.records:
            row = []
            for name in columns:
                value = record.get(name, "")
                if name == "active_units" and isinstance(value, float) and math.isfinite(value):
                    value = int(round(value))
                elif isinstance(value, float) and not math.isfinite(value):
                    value = str(value)
                row.append(value)
            rows.append(row)
        self.table.frozen = 1 + len(self.grid_keys())  # run and the swept values stay while the scores scroll
        self.table.set_rows(columns, rows, titles=COLUMN_TITLES,
                            tooltips=[r.get("error") or str(self.run_folder(r) or "") for r in self.records])
        self.plot.set_points(rate_distortion_points(self.records))
        self._fill_score_choices()
        self._request_thumbnails()

    # --- drilling into runs ----------------------------------------------------------------------------------
    def run_folder(self, record: dict[str, Any]) -> Path | None:
        """Where a run's files are (its recorded folder, else the sweep folder's sub-folder of its name)."""
        candidates = []
        if record.get("folder"):
            folder = Path(str(record["folder"]))
            candidates.append(folder)
            if self.sweep_dir is not None:
                candidates.append(self.sweep_dir / folder.name)
        if self.sweep_dir is not None and record.get("run"):
            candidates.append(self.sweep_dir / str(record["run"]))
        return next((c for c in candidates if RunFolder(c).has_checkpoint()), None)

    def _request_thumbnails(self) -> None:
        """Each row's traversal.png (the top rows, shrunk), read off the GUI thread."""
        folders = [(i, self.run_folder(r)) for i, r in enumerate(self.records)]
        records = list(self.records)

        def job():
            from PIL import Image

            out = []
            for i, folder in folders:
                path = folder / "traversal.png" if folder is not None else None
                if path is None or not path.is_file():
                    continue
                with Image.open(path) as image:
                    image = image.convert("L" if image.mode in ("L", "1") else "RGB")
                    cell = image.width // 9 or 1  # engine.sweep: TRAVERSAL_STEPS columns of square cells
                    top = image.crop((0, 0, image.width, min(image.height, 3 * cell)))
                    top.thumbnail((120, 40))
                    out.append((i, np.asarray(top)))
            return records, out

        self.thumbnails.submit("thumbnails", job, self._show_thumbnails)

    def _show_thumbnails(self, result) -> None:
        records, thumbs = result
        if records != self.records:
            return
        for row, image in thumbs:
            self.table.set_thumbnail(row, image, "The run's traversal: its three latents with the most KL")

    def _run_double_clicked(self, index) -> None:
        self.open_run(self.table.proxy.mapToSource(index).row())

    def open_run(self, row: int) -> bool:
        """Open a run's last checkpoint in the window (every tab shows it)."""
        if not 0 <= row < len(self.records):
            return False
        folder = self.run_folder(self.records[row])
        window = self.window()
        if folder is None or not hasattr(window, "open_checkpoint"):
            self.status.setText(f"⚠ run {self.records[row].get('run')} has no checkpoint to open")
            return False
        return window.open_checkpoint(RunFolder(folder).last_checkpoint, wait=False)

    def compare_selected(self) -> bool:
        """Send the selected runs (all, when none is selected and they fit) to the Compare tab."""
        from engine.compare import MAX_MODELS

        rows = self.table.selected_rows() or (list(range(len(self.records)))
                                              if len(self.records) <= MAX_MODELS else [])
        folders = [self.run_folder(self.records[r]) for r in rows]
        folders = [str(f) for f in folders if f is not None]
        if not folders:
            self.status.setText("⚠ select the runs to compare (finished runs with a checkpoint)")
            return False
        if len(folders) > MAX_MODELS:
            self.status.setText(f"⚠ {len(folders)} runs selected: the Compare tab holds at most {MAX_MODELS}")
            return False
        window = self.window()
        if not hasattr(window, "panels"):
            self.status.setText("⚠ the Compare tab is part of the main window")
            return False
        from gui.panels.compare import open_comparison

        return open_comparison(window, folders)

    # --- score against a swept hyperparameter ----------------------------------------------------------------
    def _fill_score_choices(self) -> None:
        numeric = [c for c in (*ELBO_KEYS, *SCORE_KEYS)
                   if any(isinstance(r.get(c), int | float) and not isinstance(r.get(c), bool) for r in self.records)]
        grid = self.grid_keys()
        for combo, items in ((self.score_combo, numeric), (self.param_combo, grid)):
            current = combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            for item in items:
                combo.addItem(COLUMN_TITLES.get(item, item), item)
            if current in items:
                combo.setCurrentIndex(items.index(current))
            elif combo is self.score_combo and "mig" in items:
                combo.setCurrentIndex(items.index("mig"))
            combo.blockSignals(False)
        self._draw_score_plot()

    def score_series(self, score: str, param: str) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
        """(label of the other grid values, x, mean, std over seeds) per line, x sorted."""
        others = [k for k in self.grid_keys() if k != param]
        groups: dict[tuple, dict[Any, list[float]]] = {}
        for record in self.records:
            value, x = record.get(score), record.get(param)
            if not isinstance(value, int | float) or not math.isfinite(float(value)) or \
                    not isinstance(x, int | float):
                continue
            key = tuple((k, record.get(k)) for k in others)
            groups.setdefault(key, {}).setdefault(float(x), []).append(float(value))
        lines = []
        for key, by_x in groups.items():
            xs = np.array(sorted(by_x))
            means = np.array([np.mean(by_x[x]) for x in xs])
            stds = np.array([np.std(by_x[x], ddof=1) if len(by_x[x]) > 1 else 0.0 for x in xs])
            label = ", ".join(f"{'β' if k == 'beta' else k}={v}" for k, v in key) or score
            lines.append((label, xs, means, stds))
        return lines

    def _draw_score_plot(self, *_args) -> None:
        plot = self.score_plot
        plot.clear()
        self.score_legend.clear()
        score, param = self.score_combo.currentData(), self.param_combo.currentData()
        self.score_lines = self.score_series(score, param) if score and param else []
        for i, (label, xs, means, stds) in enumerate(self.score_lines):
            colour = pg.intColor(i, hues=max(3, len(self.score_lines)))
            plot.plot(xs, means, pen=pg.mkPen(colour, width=2), symbol="o", symbolBrush=colour, name=label)
            if np.any(stds > 0):
                plot.addItem(pg.ErrorBarItem(x=xs, y=means, height=2 * stds, beam=0.0, pen=pg.mkPen(colour)))
        title = COLUMN_TITLES.get(score or "", score or "")
        plot.setLabel("left", f"{title} (mean ± std over seeds)")
        plot.setLabel("bottom", "β" if param == "beta" else (param or ""))

    # --- exports ----------------------------------------------------------------------------------------------
    def export_png(self, path: str | Path) -> Path:
        """The rate–distortion plot as shown (a grab of the plot widget)."""
        if not self.plot.points:
            raise ValueError("no finished runs to plot yet")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.plot.grab().save(str(path)):
            raise OSError(f"could not write {path}")
        self.status.setText(f"Saved {path}")
        return path

    def export_csv(self, path: str | Path) -> Path:
        """The table across runs (the same columns as the sweep's summary.csv)."""
        if not self.records:
            raise ValueError("no runs to export yet")
        columns = summary_columns(self.records)
        rows = [[record.get(c, "") for c in columns] for record in self.records]
        out = write_csv(path, columns, rows)
        self.status.setText(f"Saved {out}")
        return out

    def write_summary(self, folder: str | Path) -> dict[str, str]:
        """summary.csv / summary.json / rate_distortion.png of the shown records into `folder`."""
        return write_summary(self.records, folder)

    def _export_dialog(self, title: str, suffix: str, filter_text: str, write: Callable[[str], Any]) -> None:
        write_chosen(ask_save_path(self, title, "sweep", suffix, filter_text), write,
                     lambda exc: warn_export_failed(self, exc))

    def _export_png_dialog(self) -> None:
        self._export_dialog("Export rate–distortion plot", "png", "PNG image (*.png)", self.export_png)

    def _export_csv_dialog(self) -> None:
        self._export_dialog("Export sweep table", "csv", "CSV (*.csv)", self.export_csv)

    def labels(self) -> list[str]:
        return [point_label(r) for r in self.records]

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop a running sweep and join its thread (the panel's owner calls this on close)."""
        if self.worker is not None:
            self.worker.stop(timeout)
        self.thumbnails.shutdown()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self.shutdown()
        super().closeEvent(event)
