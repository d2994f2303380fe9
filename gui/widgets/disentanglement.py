"""The live disentanglement view: MIG over steps beside the latent × factor MI heatmap (fixed 0–1 colour scale).

Fed by the engine's `DisentanglementProbe` events (engine/probe.py) while training, or by the probe records of a
checkpoint's history. When no probe is possible (no ground-truth factors, a discrete or conditional code) the
plots hide and one line says why.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from engine.events import DisentanglementProbe

from .empty_hint import EmptyHint
from .factor_axis import FactorAxis

MIG_COLOUR = "#59a14f"
COLOUR_MAP = "viridis"
HEATMAP_HINT = "Latent × factor mutual information appears here while a model trains on a dataset with factors"
WAITING_NOTE = "Disentanglement: the first MIG probe comes with the first training steps."
NO_HISTORY_PROBE_NOTE = ("Disentanglement: this checkpoint's history holds no MIG probe (it was trained without the "
                         "live probe). Continue probes as it trains; Evaluation → Compute scores it now.")
NO_HISTORY_PROBE_HINT = "No probe recorded in this checkpoint: Continue, or Evaluation → Compute"
MIG_CURVE_HINT = "MIG over training steps appears here"


class DisentanglementView(QWidget):
    """`add_probes(list)` appends to the curve and shows the newest matrix; `set_unavailable(reason)` hides both."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("disentanglementView")
        self.steps: list[int] = []
        self.migs: list[float] = []
        self.latest: DisentanglementProbe | None = None
        self.reason: str | None = None
        self.waiting_note = WAITING_NOTE  # what the note says while probes are expected but none has come
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self.note = QLabel("")
        self.note.setObjectName("disentanglementNote")
        self.note.setWordWrap(True)  # never widens the tab (the window fits 1366×768)
        layout.addWidget(self.note)
        self.plots = QWidget()
        row = QHBoxLayout(self.plots)
        row.setContentsMargins(0, 0, 0, 0)
        self.curve_plot = pg.PlotWidget(background="#1e1e1e")
        self.curve_plot.setObjectName("migCurve")
        item = self.curve_plot.getPlotItem()
        item.setTitle("Disentanglement: MIG on a fixed factor sample", size="9pt")
        item.setLabel("bottom", "step")
        item.showGrid(x=True, y=True, alpha=0.2)
        item.setYRange(0.0, 1.0, padding=0.02)
        item.setMouseEnabled(x=True, y=False)
        self.curve = item.plot([], [], pen=pg.mkPen(MIG_COLOUR, width=2), symbol="o", symbolSize=4,
                               symbolBrush=MIG_COLOUR, symbolPen=None, name="MIG")
        self.curve_hint = EmptyHint(item, MIG_CURVE_HINT)
        self.curve_plot.setMinimumSize(120, 80)
        row.addWidget(self.curve_plot, 3)
        self.heatmap = pg.GraphicsLayoutWidget()
        self.heatmap.setObjectName("miHeatmap")
        self.heatmap.setBackground("#1e1e1e")
        self.factor_axis = FactorAxis("bottom")  # full factor names when they fit, abbreviations otherwise
        self.heat_plot = self.heatmap.addPlot(row=0, col=0, axisItems={"bottom": self.factor_axis})
        self.heat_plot.setTitle("I(z_j; v_k) / H(v_k)", size="9pt")
        self.heat_plot.invertY(True)
        self.heat_plot.setMouseEnabled(False, False)
        self.heat_plot.setMenuEnabled(False)
        self.heat_plot.hideButtons()
        self.heat_image = pg.ImageItem(axisOrder="row-major")
        self.heat_plot.addItem(self.heat_image)
        self.colour_bar = pg.ColorBarItem(values=(0.0, 1.0), colorMap=pg.colormap.get(COLOUR_MAP), interactive=False,
                                          width=12, label="normalised MI")
        self.colour_bar.setImageItem(self.heat_image, insert_in=self.heat_plot)
        self.heat_hint = EmptyHint(self.heat_plot, HEATMAP_HINT)
        self._show_empty_heatmap()
        self.heatmap.setMinimumSize(120, 80)
        row.addWidget(self.heatmap, 2)
        layout.addWidget(self.plots, 1)
        self.set_unavailable(None)

    # --- state -----------------------------------------------------------------------------------------------
    def set_unavailable(self, reason: str | None) -> None:
        """None: probes are expected (the plots show, a hint until the first one); text: hide the plots, say why."""
        self.reason = reason
        self.plots.setVisible(reason is None)
        if reason is not None:
            self.note.setText(reason)
        elif self.latest is None:
            self.note.setText(self.waiting_note)
        self._update_note()

    def show_no_recorded_probe(self) -> None:
        """An opened checkpoint whose history has no probe: say so (not "comes with the first steps")."""
        if self.latest is not None:
            return
        self.waiting_note = NO_HISTORY_PROBE_NOTE
        self.heat_hint.set_text(NO_HISTORY_PROBE_HINT)
        self.curve_hint.set_text(NO_HISTORY_PROBE_HINT)
        self.set_unavailable(self.reason)

    def clear(self) -> None:
        """A new run: no curve, an empty heatmap and a 0–1 step axis (not the last run's)."""
        self.steps, self.migs, self.latest = [], [], None
        self.curve.setData([], [])
        item = self.curve_plot.getPlotItem()
        item.setXRange(0.0, 1.0, padding=0.0)
        item.enableAutoRange(x=True)  # the next run's first probes set the range again
        self.waiting_note = WAITING_NOTE
        self.heat_hint.set_text(HEATMAP_HINT)
        self.curve_hint.set_text(MIG_CURVE_HINT)
        self.curve_hint.show()
        self.heat_image.clear()
        self._show_empty_heatmap()
        self.set_unavailable(self.reason)

    def _show_empty_heatmap(self) -> None:
        """No probe yet: no ticks, a 0–1 view, and the hint."""
        self.heat_plot.getAxis("left").setTicks([[]])
        self.factor_axis.set_names([])
        self.heat_plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0.0)
        self.heat_hint.show()

    # --- data --------------------------------------------------------------------------------------------------
    def add_probes(self, probes: Sequence[DisentanglementProbe]) -> None:
        """Append probes (oldest first) to the curve and draw the newest one's matrix."""
        if not probes:
            return
        for probe in probes:
            if self.steps and probe.step <= self.steps[-1]:  # a resumed run repeats no steps; keep the curve monotone
                cut = int(np.searchsorted(self.steps, probe.step))
                self.steps, self.migs = self.steps[:cut], self.migs[:cut]
            self.steps.append(int(probe.step))
            self.migs.append(float(probe.mig))
        self.curve.setData(np.asarray(self.steps, dtype=np.float64), np.asarray(self.migs, dtype=np.float64))
        self.curve_hint.hide()
        self._show_matrix(probes[-1])
        if self.reason is not None:
            self.set_unavailable(None)
        self._update_note()

    def _show_matrix(self, probe: DisentanglementProbe) -> None:
        self.latest = probe
        matrix = np.asarray(probe.mi, dtype=np.float32)
        self.heat_image.setImage(matrix, autoLevels=False, levels=(0.0, 1.0))
        self.colour_bar.setLevels((0.0, 1.0))
        self.heat_hint.hide()
        rows = [(j + 0.5, f"z{j}") for j in range(matrix.shape[0])]
        self.heat_plot.getAxis("left").setTicks([rows])
        self.heat_plot.setRange(xRange=(0, matrix.shape[1]), yRange=(0, matrix.shape[0]), padding=0.0)
        self.factor_axis.set_names(probe.factor_names)

    def _update_note(self) -> None:
        if self.reason is not None or self.latest is None:
            return
        p = self.latest
        self.note.setText(f"MIG {p.mig:.3f} at step {p.step:,} ({len(self.steps)} probes, {p.points:,} factor "
                          f"samples, {1000 * p.seconds:.0f} ms each)")

    @property
    def matrix(self) -> np.ndarray | None:
        return None if self.latest is None else np.asarray(self.latest.mi, dtype=np.float32)
