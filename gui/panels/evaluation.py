"""The Evaluation tab: how good and how disentangled the current model (live or loaded) is, and β sweeps.

"This model": −ELBO, recon, KL, active units and the IWAE-k NLL (engine/evaluate.py); the five disentanglement
scores (engine/metrics, datasets with ground-truth factors only) as a table and a bar chart; the mutual-information
heatmap (latent × factor) with its rows in the traversal's order (KL, largest first) beside those traversal rows.
Everything runs on the panel's worker thread with a progress bar and cancel; each score shows as soon as its metric
finishes (the rest read "pending…"). "Sweep": gui/panels/sweep.py.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engine import explore
from engine.evaluate import EvaluationCancelled, evaluate
from engine.metrics import MetricsCancelled, MetricSizes, compute_metrics
from engine.scoring import SCORE_KEYS, model_representation
from gui.model_source import ModelSource
from gui.panels.common import PanelBase, button, grid_ticks, write_csv
from gui.panels.sweep import COLUMN_TITLES, SCORE_CHOICES, SweepPanel
from gui.widgets import GridView, ToolRow
from gui.widgets.empty_hint import EmptyHint
from gui.widgets.factor_axis import FactorAxis

EVAL_IMAGES = 5000
HEATMAP_HINT = "Press Compute: the latent × factor mutual information appears here (datasets with ground-truth factors)"
SCORES_HINT = "Press Compute: the disentanglement scores appear here (datasets with ground-truth factors)"
TRAVERSAL_HINT = "Press Compute: one traversal row per latent appears here, largest KL first"
NO_FACTORS_HINT = "This dataset has no ground-truth factors: no latent × factor mutual information to show"
TRAVERSAL_STEPS = 9
SCORE_TITLES = {"beta_vae": "BetaVAE score", "factor_vae": "FactorVAE score", "mig": "MIG",
                "dci_disentanglement": "DCI disentanglement", "dci_completeness": "DCI completeness",
                "dci_informativeness": "DCI informativeness", "sap": "SAP (continuous)"}
ELBO_TITLES = {"neg_elbo": "−ELBO (nats)", "recon": "recon NLL (nats)", "kl": "KL (nats)",
               "active_units": "active units", "iwae_nll": "IWAE-k NLL (nats)"}
NO_FACTORS_TEXT = ("{name} has no ground-truth factors, so the disentanglement scores (BetaVAE, FactorVAE, MIG, DCI, "
                   "SAP) cannot be computed: they need dSprites or another dataset with factors. −ELBO, KL and "
                   "active units are still computed.")
SIZE_CHOICES = {"Quick (1,000 / 500 points, batches of 32)": MetricSizes.quick(),
                "Standard (10,000 / 5,000 points, batches of 64)": MetricSizes()}
METRIC_SCORE_KEYS = {"dci": ("dci_disentanglement", "dci_completeness", "dci_informativeness")}  # others: own name
PENDING_TEXT = "pending…"


def score_keys_of(names: tuple[str, ...]) -> list[str]:
    """The table's score rows that the metrics `names` produce, in the table's order."""
    produced = {key for name in names for key in METRIC_SCORE_KEYS.get(name, (name,))}
    return [key for key in SCORE_KEYS if key in produced]


class EvaluationCancelledByUser(Exception):
    """The user pressed Cancel (or the panel closed) while the evaluation ran."""


class EvaluationPanel(PanelBase):
    """Compute on demand (metrics are expensive): nothing recomputes by itself when live weights change."""

    progress_changed = Signal(float, str)  # emitted from the worker thread; slot is a bound method (GUI thread)
    metric_finished = Signal(int, str, object)  # (scores token, metric name, its values): worker → GUI thread

    def __init__(self, source: ModelSource, parent: QWidget | None = None) -> None:
        super().__init__(source, parent)
        self._cancel = threading.Event()
        self.result: dict[str, Any] | None = None
        self.computing = False
        self.computed_step: int | None = None
        self.custom_sizes: MetricSizes | None = None
        # Scores shown while the suite runs: a token per computation, so a late metric of an older one is ignored.
        self._scores_token = 0
        self._partial_scores: dict[str, float] = {}
        self._pending_keys: list[str] = []
        self._build()
        self._show_model_page()
        self.progress_changed.connect(self._on_progress)
        self.metric_finished.connect(self._on_metric_finished)

    # --- widgets -------------------------------------------------------------------------------------
    def _build(self) -> None:
        root = QVBoxLayout(self.content)
        root.setContentsMargins(0, 0, 0, 0)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        root.addWidget(self.tabs)
        page = QWidget()
        # Without a model only "This model" is empty: a sweep trains its own runs, so its tab always works.
        self.model_empty = QLabel(self.empty_text + "\n\nA β sweep (the Sweep tab) trains its own runs.")
        self.model_empty.setObjectName("evaluationEmptyState")
        self.model_empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.model_empty.setWordWrap(True)
        self.model_stack = QStackedWidget()
        self.model_stack.addWidget(self.model_empty)
        self.model_stack.addWidget(page)
        self.model_page = page
        self.tabs.addTab(self.model_stack, "This model")
        self._sweep_panel: SweepPanel | None = None  # built when first shown (it costs ~50 ms of GUI time)
        self.tabs.addTab(QWidget(), "Sweep")
        self.tabs.currentChanged.connect(self._sub_tab_shown)
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)

        controls = ToolRow()
        self.metrics_combo = QComboBox()
        for text, choice in SCORE_CHOICES.items():
            if choice[0]:  # "None" is for sweeps; here at least ELBO numbers are always computed
                self.metrics_combo.addItem(text, choice)
        self.metrics_combo.setToolTip("DCI trains one gradient-boosted classifier per factor: the reference "
                                      "GradientBoostingClassifier, one factor per core (minutes on dSprites), or the "
                                      "fast approximate histogram trees")
        self.sizes_combo = QComboBox()
        self.sizes_combo.addItems(list(SIZE_CHOICES))
        self.sizes_combo.setToolTip("Sample sizes of the scores (the common ones are 10,000 / 5,000 and batches of 64)")
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setToolTip("Seed of the metric sampling: the same seed gives the same scores")
        self.iwae_spin = QSpinBox()
        self.iwae_spin.setRange(0, 5000)
        self.iwae_spin.setValue(100)
        self.iwae_spin.setToolTip("k of the IWAE bound −log (1/k) Σ p(x,z_i)/q(z_i|x) on 500 test images (0 = skip)")
        for label, widget in (("Scores", self.metrics_combo), ("Sizes", self.sizes_combo), ("Seed", self.seed_spin),
                              ("IWAE k", self.iwae_spin)):
            controls.add_labeled(label, widget)
        self.compute_button = button("Compute", self.compute, "Evaluate the current weights (live or loaded)")
        self.cancel_button = button("Cancel", self.cancel, "Stop the computation")
        self.cancel_button.setEnabled(False)
        controls.add(self.compute_button, self.cancel_button)
        controls.add(button("Export PNG…", self._export_png_dialog, "The whole results view"),
                     button("Export CSV…", self._export_csv_dialog, "Scores, ELBO numbers, MI matrix"),
                     button("Export JSON…", self._export_json_dialog, "Everything computed, with sizes"))
        layout.addWidget(controls)

        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setFormat("%p%")
        layout.addWidget(self.progress_bar)
        self.factor_note = QLabel("")
        self.factor_note.setObjectName("evaluationFactorNote")
        self.factor_note.setWordWrap(True)
        self.factor_note.setStyleSheet("color: #e0b050;")
        self.factor_note.hide()
        layout.addWidget(self.factor_note)

        self.results = QWidget()
        results_layout = QVBoxLayout(self.results)
        results_layout.setContentsMargins(0, 0, 0, 0)
        top = QSplitter(Qt.Orientation.Horizontal)
        numbers = QWidget()
        numbers_layout = QGridLayout(numbers)
        numbers_layout.setContentsMargins(4, 4, 4, 4)
        self.elbo_labels: dict[str, QLabel] = {}
        for row, (key, title) in enumerate(ELBO_TITLES.items()):
            numbers_layout.addWidget(QLabel(title), row, 0)
            value = QLabel("–")
            value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            numbers_layout.addWidget(value, row, 1)
            self.elbo_labels[key] = value
        numbers_layout.setRowStretch(len(ELBO_TITLES), 1)
        top.addWidget(numbers)
        self.score_table = QTableWidget(0, 2)
        self.score_table.setHorizontalHeaderLabels(["score", "value"])
        self.score_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.score_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.score_table.verticalHeader().setVisible(False)
        top.addWidget(self.score_table)
        self.score_axis = FactorAxis("bottom")  # names that fit their bars, never "BetaVAEFactorVAE"
        self.bar_chart = pg.PlotWidget(background="#1e1e1e", axisItems={"bottom": self.score_axis})
        self.bar_chart.getPlotItem().setTitle("Disentanglement scores (0…1)", size="9pt")
        self.bar_chart.setMouseEnabled(x=False, y=False)
        self.bar_chart.setMenuEnabled(False)
        self.bar_chart.setYRange(0, 1, padding=0.02)
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.7, brush="#4fa3e0")
        self.bar_chart.addItem(self.bars)
        self.bar_hint = EmptyHint(self.bar_chart.getPlotItem(), SCORES_HINT)
        top.addWidget(self.bar_chart)
        top.setSizes([220, 260, 420])
        results_layout.addWidget(top, 2)

        bottom = QSplitter(Qt.Orientation.Horizontal)
        self.factor_axis = FactorAxis("bottom")  # full factor names when they fit, abbreviations otherwise
        self.heatmap = pg.PlotWidget(background="#1e1e1e", axisItems={"bottom": self.factor_axis})
        heat_item = self.heatmap.getPlotItem()
        heat_item.setTitle("Normalised mutual information I(z_j; v_k) / H(v_k)", size="9pt")
        heat_item.invertY(True)
        heat_item.setMouseEnabled(False, False)
        heat_item.setMenuEnabled(False)
        heat_item.hideButtons()
        self.heat_image = pg.ImageItem(axisOrder="row-major")
        self.heatmap.addItem(self.heat_image)
        # A fixed 0–1 scale (the normalised MI's own range), so two models' heatmaps compare at a glance.
        self.heat_bar = pg.ColorBarItem(values=(0.0, 1.0), colorMap=pg.colormap.get("viridis"), interactive=False,
                                        width=12, label="I(z; v) / H(v)")
        self.heat_bar.setImageItem(self.heat_image, insert_in=heat_item)
        self.heat_texts: list[pg.TextItem] = []
        self.heat_hint = EmptyHint(heat_item, HEATMAP_HINT)
        heat_item.getAxis("left").setTicks([[]])
        bottom.addWidget(self.heatmap)
        self.traversal_view = GridView()
        self.traversal_view.setToolTip("Traversal rows in the heatmap's order: latents by KL, largest first")
        self.traversal_view.set_empty_hint(TRAVERSAL_HINT)
        bottom.addWidget(self.traversal_view)
        bottom.setSizes([420, 480])
        results_layout.addWidget(bottom, 3)
        layout.addWidget(self.results, 1)

    @property
    def sweep_panel(self) -> SweepPanel:
        """The Sweep sub-tab, built on first use."""
        if self._sweep_panel is None:
            panel = SweepPanel(self.source, config_provider=self._app_config_provider())
            panel.setObjectName("sweepPanel")
            current = self.tabs.currentIndex()
            self.tabs.blockSignals(True)
            placeholder = self.tabs.widget(1)
            self.tabs.removeTab(1)
            self.tabs.insertTab(1, panel, "Sweep")
            self.tabs.setCurrentIndex(current)
            self.tabs.blockSignals(False)
            placeholder.deleteLater()
            self._sweep_panel = panel
        return self._sweep_panel

    @property
    def is_sweeping(self) -> bool:
        return self._sweep_panel is not None and self._sweep_panel.is_running

    def _sub_tab_shown(self, index: int) -> None:
        if index == 1:
            self.sweep_panel.show()

    def _app_config_provider(self):
        def provide():
            window = self.window()
            build = getattr(window, "build_config", None)
            if build is None:
                raise ValueError("the app's settings are not available here; choose a preset or a config file")
            return build()

        return provide

    # --- model changes -------------------------------------------------------------------------------
    def _on_source_changed(self) -> None:
        super()._on_source_changed()
        self._show_model_page()

    def _show_model_page(self) -> None:
        """The sub-tabs always show; "This model" says what to do while there is no model."""
        has_model = self.source.has_model and self.source.dataset is not None
        self.stack.setCurrentWidget(self.content)
        self.model_stack.setCurrentWidget(self.model_page if has_model else self.model_empty)

    def rebuild(self) -> None:
        """A different model or dataset: clear the results (they belong to the old one) and say what is possible."""
        self._cancel.set()
        self._clear_results()
        dataset = self.source.dataset
        has_factors = bool(getattr(dataset, "has_factors", False))
        self.factor_note.setText("" if has_factors else NO_FACTORS_TEXT.format(name=getattr(dataset, "name", "?")))
        self.factor_note.setVisible(not has_factors)
        self.metrics_combo.setEnabled(has_factors)
        self.sizes_combo.setEnabled(has_factors)
        self.status.setText("Press Compute to evaluate the " + ("live weights." if self.source.is_live else "model."))

    def refresh(self) -> None:
        """Newer live weights: keep the shown scores (they are expensive) but say they are from an older step."""
        if self.computed_step is not None and not self.computing:
            self.status.setText(f"Scores are from step {self.computed_step:,}; the weights are now at step "
                                f"{self.source.step:,}. Press Compute to update.")

    def _clear_results(self) -> None:
        self.result = None
        self.computed_step = None
        self._forget_partial_scores()
        for label in self.elbo_labels.values():
            label.setText("–")
        self._show_scores([], [])
        self._show_heatmap({})
        self.traversal_view.set_grid(None)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("%p%")

    # --- computing --------------------------------------------------------------------------------------
    def set_metric_sizes(self, sizes: MetricSizes) -> None:
        """Use custom metric sample sizes (shown as "Custom" in the sizes box)."""
        self.custom_sizes = sizes
        if self.sizes_combo.findText("Custom") < 0:
            self.sizes_combo.addItem("Custom")
        self.sizes_combo.setCurrentText("Custom")

    def metric_sizes(self) -> MetricSizes:
        text = self.sizes_combo.currentText()
        if text == "Custom" and self.custom_sizes is not None:
            sizes = self.custom_sizes
        else:
            sizes = SIZE_CHOICES.get(text, MetricSizes.quick())
        return replace(sizes, dci_estimator=self.metrics_combo.currentData()[1])

    def metric_names(self) -> tuple[str, ...]:
        return self.metrics_combo.currentData()[0]

    def compute(self) -> None:
        if self.computing or not self.source.has_model or self.source.dataset is None:
            return
        self._cancel = threading.Event()
        cancel = self._cancel
        dataset = self.source.dataset
        indices = self.test_indices()[:EVAL_IMAGES]
        names = self.metric_names() if dataset.has_factors else ()
        sizes, seed, iwae_k = self.metric_sizes(), self.seed_spin.value(), self.iwae_spin.value()
        step = self.source.step
        report = self.progress_changed.emit
        self._forget_partial_scores()
        token = self._scores_token
        self._pending_keys = score_keys_of(names)

        def on_metric(name: str, values: dict[str, Any]) -> None:  # worker thread: only emits
            self.metric_finished.emit(token, name, values)

        def job(model):
            return run_evaluation(model, dataset, indices, names, sizes, seed, iwae_k, report, cancel.is_set,
                                  on_metric) | {"step": step}

        self.computing = True
        self.compute_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self._show_scores([], self._pending_keys)
        self.progress_bar.setValue(0)
        self.status.setText("Computing…")
        self.submit("evaluate", job, self._show_result)
        self.runner.busy_changed.connect(self._on_busy)

    def cancel(self) -> None:
        if self.computing:
            self._cancel.set()
            self.status.setText("Cancelling…")

    def _on_busy(self, busy: bool) -> None:
        if busy:
            return
        self.runner.busy_changed.disconnect(self._on_busy)
        self.computing = False
        self.compute_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if self.result is None and self._cancel.is_set():
            self.status.setText("Cancelled.")
            self.progress_bar.setFormat("cancelled")
        if self.result is None and self._pending_keys:  # the finished scores stay; the others never will be
            self._show_scores(self._shown_partial(), self._pending_keys,
                              pending_text="cancelled" if self._cancel.is_set() else "not computed")
            self._forget_partial_scores()

    def show_error(self, text: str) -> None:
        if "EvaluationCancelledByUser" in text:
            self.status.setText("Cancelled.")
            return
        super().show_error(text)

    def _on_progress(self, fraction: float, message: str) -> None:
        if self.computing:
            self.progress_bar.setValue(int(round(min(max(fraction, 0.0), 1.0) * 1000)))
            self.progress_bar.setFormat(f"%p%  — {message}")

    def _forget_partial_scores(self) -> None:
        """A new computation, a final result or a different model: no metric still on its way may show."""
        self._scores_token += 1
        self._partial_scores = {}
        self._pending_keys = []

    def _on_metric_finished(self, token: int, name: str, values: dict[str, Any]) -> None:
        """One metric of the running suite is done: show its scores now, the others stay pending."""
        if token != self._scores_token or not self.computing:
            return
        for key in METRIC_SCORE_KEYS.get(name, (name,)):
            value = values.get(key)
            if isinstance(value, float) and math.isfinite(value):
                self._partial_scores[key] = value
            if key in self._pending_keys:
                self._pending_keys.remove(key)
        self._show_scores(self._shown_partial(), self._pending_keys)

    def _shown_partial(self) -> list[tuple[str, float]]:
        return [(k, self._partial_scores[k]) for k in SCORE_KEYS if k in self._partial_scores]

    # --- showing -----------------------------------------------------------------------------------------
    def _show_scores(self, scores: list[tuple[str, float]], pending: list[str],
                     unavailable: dict[str, str] | None = None, pending_text: str = PENDING_TEXT) -> None:
        """Table rows for the finished scores (with their bars), then the pending ones, then those that cannot run."""
        rows = [(key, f"{value:.3f}", "") for key, value in scores]
        rows += [(key, pending_text, "") for key in pending]
        rows += [(key, "needs a full factor grid", reason) for key, reason in (unavailable or {}).items()]
        self.score_table.setRowCount(len(rows))
        for row, (key, text, tip) in enumerate(rows):
            self.score_table.setItem(row, 0, QTableWidgetItem(SCORE_TITLES.get(key, key)))
            item = QTableWidgetItem(text)
            if row < len(scores):
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if tip:
                item.setToolTip(tip)
            self.score_table.setItem(row, 1, item)
        self.bars.setOpts(x=np.arange(len(scores)) + 0.5, height=[v for _, v in scores], width=0.7)
        self.bar_chart.setXRange(0, max(len(scores), 1), padding=0)
        self.score_axis.set_names([COLUMN_TITLES[k] for k, _ in scores])
        self.bar_hint.setVisible(not scores)

    def _show_result(self, result: dict[str, Any]) -> None:
        self._forget_partial_scores()
        self.result = result
        self.computed_step = int(result.get("step", 0))
        for key, label in self.elbo_labels.items():
            value = result.get(key)
            label.setText("–" if value is None else (f"{value:.0f}" if key == "active_units" else f"{value:.3f}"))
        if result.get("metrics_note"):
            self.factor_note.setText(result["metrics_note"])
            self.factor_note.show()
        if result.get("iwae_nll") is None and result.get("iwae_note"):
            self.elbo_labels["iwae_nll"].setToolTip(result["iwae_note"])
        scores = [(k, result[k]) for k in SCORE_KEYS if isinstance(result.get(k), float)]
        self._show_scores(scores, [], result.get("unavailable"))  # BetaVAE/FactorVAE without a full grid
        self._show_heatmap(result)
        grid = result.get("traversal")
        if grid is not None:
            _, h, w = result["data_shape"]
            order = result["order"]
            kl = result.get("kl_per_dim")
            labels = [f"z{d}" + (f"  {kl[d]:.2f}" if kl else "") for d in order]
            self.traversal_view.set_grid(grid, grid_ticks(len(order), h, 1, labels))
        self.progress_bar.setValue(1000)
        self.progress_bar.setFormat("%p%  — done")
        seconds = sum(result.get("seconds", {}).values()) if result.get("seconds") else None
        sizes = result.get("sizes")
        detail = (f"; scores on {sizes['train_points']:,} / {sizes['test_points']:,} points, batches of "
                  f"{sizes['batch_size']}, seed {result['seed']}" if sizes else "")
        if result.get("dci_estimator"):
            detail += ", DCI with " + {"exact": "trees equal to the reference GradientBoostingClassifier's",
                                       "sklearn": "the reference GradientBoostingClassifier"}.get(
                result["dci_estimator"], "histogram gradient-boosted trees")
        self.status.setText(f"Evaluated step {self.computed_step:,} on {result['images']:,} test images{detail}"
                            + (f" ({seconds:.0f} s for the scores)" if seconds else "") + ".")

    def _show_heatmap(self, result: dict[str, Any]) -> None:
        for text in self.heat_texts:
            self.heatmap.removeItem(text)
        self.heat_texts = []
        mi = result.get("mi_matrix_ordered")
        item = self.heatmap.getPlotItem()
        if mi is None:
            self.heat_image.clear()
            item.getAxis("left").setTicks([[]])
            self.factor_axis.set_names([])
            item.setRange(xRange=(0, 1), yRange=(0, 1), padding=0.0)
            self.heat_hint.set_text(NO_FACTORS_HINT if result else HEATMAP_HINT)
            self.heat_hint.show()
            return
        self.heat_hint.hide()
        matrix = np.asarray(mi, dtype=np.float32)
        self.heat_image.setImage(matrix, autoLevels=False, levels=(0.0, 1.0))
        item.getAxis("left").setTicks([[(i + 0.5, f"z{d}") for i, d in enumerate(result["order"])]])
        item.setRange(xRange=(0, matrix.shape[1]), yRange=(0, matrix.shape[0]), padding=0.01)
        self.factor_axis.set_names(result["factor_names"])
        for (i, k), value in np.ndenumerate(matrix):
            colour = "#000000" if value > 0.6 else "#f0f0f0"  # dark text on viridis' bright end
            text = pg.TextItem(f"{value:.2f}", color=colour, anchor=(0.5, 0.5))
            text.setPos(k + 0.5, i + 0.5)
            self.heatmap.addItem(text)
            self.heat_texts.append(text)

    # --- exports -------------------------------------------------------------------------------------------
    def _require_result(self) -> dict[str, Any]:
        if self.result is None:
            raise ValueError("nothing computed yet: press Compute first")
        return self.result

    def export_png(self, path: str | Path) -> Path:
        """The whole results view (numbers, scores, bar chart, MI heatmap and traversal rows) as shown."""
        self._require_result()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.results.grab().save(str(path)):
            raise OSError(f"could not write {path}")
        self.exported(path)
        return path

    def export_csv(self, path: str | Path) -> Path:
        """quantity,value rows (ELBO numbers and scores), then the MI matrix rows (latent, one column per factor)."""
        result = self._require_result()
        rows: list[list[Any]] = [[key, result[key]] for key in (*ELBO_TITLES, *SCORE_KEYS)
                                 if result.get(key) is not None]
        if result.get("mi_matrix") is not None:
            rows.append([])
            rows.append(["mutual_information", *result["factor_names"]])
            for d in result["order"]:
                rows.append([f"z{d}", *[round(float(v), 6) for v in result["mi_matrix"][d]]])
        out = write_csv(path, ["quantity", "value"], rows)
        self.exported(out)
        return out

    def export_json(self, path: str | Path) -> Path:
        result = self._require_result()
        doc = {k: v for k, v in result.items() if k not in ("traversal", "mi_matrix_ordered")}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=2, allow_nan=False, default=_json_default), encoding="utf-8")
        self.exported(path)
        return path

    def _export_png_dialog(self) -> None:
        self.export_dialog("Export evaluation figure", "png", "PNG image (*.png)", self.export_png)

    def _export_csv_dialog(self) -> None:
        self.export_dialog("Export evaluation numbers", "csv", "CSV (*.csv)", self.export_csv)

    def _export_json_dialog(self) -> None:
        self.export_dialog("Export evaluation JSON", "json", "JSON (*.json)", self.export_json)

    def shutdown(self) -> None:
        self._cancel.set()
        if self._sweep_panel is not None:
            self._sweep_panel.shutdown()
        super().shutdown()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def run_evaluation(model, dataset, indices: torch.Tensor, names: tuple[str, ...], sizes: MetricSizes, seed: int,
                   iwae_k: int, report, cancelled, on_metric=None) -> dict[str, Any]:
    """Everything the tab shows, computed off the GUI thread: evaluate (0–25 %), latent order and traversal rows,
    then the scores (25–100 %). `report(fraction, message)`; `on_metric(name, values)` as each score's metric
    finishes (compute_metrics); raises EvaluationCancelledByUser when `cancelled()`."""
    share = 0.25 if names else 0.9
    n_images = int(indices.numel())

    def on_images(done: int, total: int) -> None:
        report(share * done / max(total, 1), f"−ELBO and KL: {done:,}/{total:,} images")

    try:
        result: dict[str, Any] = dict(evaluate(model, dataset, indices, iwae_k=iwae_k, progress=on_images,
                                               cancel=cancelled, seed=seed))
    except EvaluationCancelled:
        raise EvaluationCancelledByUser() from None
    result["images"] = n_images
    result["data_shape"] = tuple(model.data_shape)
    if model.latent_kind == "continuous":
        stats = explore.latent_stats(model, dataset, indices, n=1000)
        order = [int(d) for d in stats.order]
        values = explore.traversal_values(stats, order, TRAVERSAL_STEPS)
        result["order"] = order
        result["traversal"] = explore.traversal_grid(model, stats.means[0], order, values)
        if result.get("kl_per_dim") is None and stats.kl_per_dim is not None:
            result["kl_per_dim"] = stats.kl_per_dim.tolist()
    if cancelled():
        raise EvaluationCancelledByUser()
    if names and "order" in result:
        report(share, "disentanglement scores")

        def on_metrics(fraction: float, message: str) -> None:
            report(share + (1.0 - share) * fraction, message)

        try:
            represent = model_representation(model, dataset)
        except ValueError as exc:
            result["metrics_note"] = str(exc)
            names = ()
    if names and "order" in result:
        try:
            scores = compute_metrics(represent, dataset, names, seed, sizes, on_metrics, cancelled, on_metric)
        except MetricsCancelled:
            raise EvaluationCancelledByUser() from None
        result.update({k: v for k, v in scores.items() if k != "seconds"})
        result["seconds"] = scores["seconds"]
        mi = np.asarray(scores["mi_matrix"], dtype=np.float32)
        result["mi_matrix_ordered"] = mi[result["order"]]
    result["metrics_computed"] = list(names) if "order" in result else []
    for key, value in list(result.items()):
        if isinstance(value, float) and not math.isfinite(value):
            result[key] = None
    return result
