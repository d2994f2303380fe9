"""Live loss curves (every term, train and test) above a step plot of the values in force (β, C, lr).

Each term has one colour and one legend entry: train solid, test dashed with dots (one "test" entry says so), so a
family with many terms keeps a two-row legend and the loss plot its height. The lower plot names its series in its
title (coloured), shows its left axis only while a value other than lr is in force, and lr on its own right axis.

Points are appended into growable numpy buffers of at most CURVE_POINT_LIMIT points per curve, thinned evenly over
the run when full, so a day-long run costs the same memory as a short one. The plots are redrawn by a timer at most
`redraw_hz` times a second with pyqtgraph's peak downsampling, so a fast run never costs the event loop more than a
few ms.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QVBoxLayout, QWidget

from .empty_hint import EmptyHint
from .plot_cache import cache_axes, show_values

PALETTE = ("#4fa3e0", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#edc948", "#76b7b2", "#ff9da7", "#9c755f",
           "#bab0ac")
LIVE_PALETTE = ("#edc948", "#e15759", "#76b7b2", "#b07aa1", "#59a14f")
EMPTY_HINT = "Press Start to train — the loss curves appear here"
TEST_LEGEND = "test (dashed)"
LEGEND_COLUMNS = 7  # a family's terms and the one "test" entry fit one or two rows above the loss plot
LIVE_TITLE = "Values in force"
LR_COLOUR = "#e15759"
AXIS_WIDTH = 56  # px of each plot's left and right axis
CURVE_POINT_LIMIT = 20_000  # points kept per curve: a long run is thinned evenly so memory stays bounded


class _Series:
    """An (x, y) buffer of at most `limit` points, evenly thinned over the whole run.

    Point i of the stream is kept when i % stride == 0; when the buffer is full the stride doubles and every other
    stored point goes, so a run of any length holds a bounded number of points spread evenly from its first step
    to (within one stride of) its last.
    """

    def __init__(self, limit: int = CURVE_POINT_LIMIT) -> None:
        if limit < 2:
            raise ValueError(f"a curve needs a limit of at least 2 points, not {limit}")
        self.limit = limit
        self._x = np.empty(min(256, limit), dtype=np.float64)
        self._y = np.empty(min(256, limit), dtype=np.float64)
        self.n = 0
        self.stride = 1
        self.seen = 0

    def extend(self, xs: np.ndarray, ys: np.ndarray) -> None:
        index = self.seen + np.arange(xs.size)
        self.seen += xs.size
        keep = index % self.stride == 0
        while self.n + int(keep.sum()) > self.limit:
            self.stride *= 2
            kept = (self.n + 1) // 2  # stored points sit at multiples of the old stride: the even ones remain
            self._x[:kept] = self._x[: self.n: 2]
            self._y[:kept] = self._y[: self.n: 2]
            self.n = kept
            keep = index % self.stride == 0
        xs, ys = xs[keep], ys[keep]
        need = self.n + xs.size
        if need > self._x.size:
            size = min(max(need, 2 * self._x.size), self.limit)
            self._x = np.resize(self._x, size)
            self._y = np.resize(self._y, size)
        self._x[self.n:need] = xs
        self._y[self.n:need] = ys
        self.n = need

    @property
    def x(self) -> np.ndarray:
        return self._x[: self.n]

    @property
    def y(self) -> np.ndarray:
        return self._y[: self.n]


class LossCurves(QWidget):
    """Train curves per term (solid), test curves per term (dashed, with dots), live values as a step line."""

    def __init__(self, redraw_hz: float = 5.0, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        options = QHBoxLayout()
        self.log_check = QCheckBox("Log scale")
        self.log_check.setObjectName("logScaleCheck")
        self.log_check.toggled.connect(self.set_log_scale)
        options.addWidget(self.log_check)
        options.addStretch(1)
        layout.addLayout(options)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("#1e1e1e")
        layout.addWidget(self.graphics, 1)
        # The loss legend sits in its own row above the plot, never on the curves (in log scale they fill the top).
        self.loss_legend = pg.LegendItem(labelTextSize="8pt", colCount=LEGEND_COLUMNS, verSpacing=-6)
        self.graphics.addItem(self.loss_legend, row=0, col=0)
        self.loss_plot = self.graphics.addPlot(row=1, col=0)
        self.loss_plot.setTitle("Loss terms (nats / image)", size="9pt")
        self.loss_plot.showGrid(x=True, y=True, alpha=0.2)
        self.loss_plot.legend = self.loss_legend  # PlotItem.plot(name=…) adds its entries here
        self.empty_hint = EmptyHint(self.loss_plot, EMPTY_HINT)
        self.loss_plot.setClipToView(True)
        self.loss_plot.setDownsampling(auto=True, mode="peak")
        # Sticky ranges instead of auto-range: an axis that changes at every redraw re-renders all its tick text,
        # which cost most of the GUI thread while training (pyqtgraph AxisItem.paint). The view grows in jumps.
        self.loss_plot.disableAutoRange()
        self._follow = True
        self._force_range = True
        self.loss_plot.vb.sigRangeChangedManually.connect(self._stop_following)
        self.live_plot = self.graphics.addPlot(row=2, col=0)
        self.live_plot.setTitle(LIVE_TITLE, size="9pt")
        self.live_plot.setLabel("bottom", "step")
        self.live_plot.showGrid(x=True, y=True, alpha=0.2)
        self.live_plot.setXLink(self.loss_plot)
        self.lr_view = pg.ViewBox()  # the learning rate is orders of magnitude below β and C: its own right axis
        self.live_plot.showAxis("right")
        self.live_plot.scene().addItem(self.lr_view)
        self.live_plot.getAxis("right").linkToView(self.lr_view)
        self.live_plot.getAxis("right").setLabel("lr")
        for side in ("left", "right"):  # shown once a value is in force (no empty β axis for a plain VAE)
            show_values(self.live_plot.getAxis(side), False)
        self.lr_view.setXLink(self.live_plot)
        self.live_plot.vb.sigResized.connect(self._sync_lr_view)
        # Both plots share the step axis: equal left and right axis widths keep their x axes exactly aligned (the
        # lower plot's right axis carries the learning rate; the upper one gets an empty axis of the same width).
        self.loss_plot.showAxis("right")
        self.loss_plot.getAxis("right").setStyle(showValues=False)
        for plot in (self.loss_plot, self.live_plot):
            plot.getAxis("left").setWidth(AXIS_WIDTH)
            plot.getAxis("right").setWidth(AXIS_WIDTH)
        for plot in (self.loss_plot, self.live_plot):
            cache_axes(plot)
        self.graphics.ci.layout.setRowStretchFactor(0, 0)
        self.graphics.ci.layout.setRowStretchFactor(1, 3)
        self.graphics.ci.layout.setRowStretchFactor(2, 1)
        self._train: dict[str, _Series] = {}
        self._test: dict[str, _Series] = {}
        self._live: dict[str, _Series] = {}
        self._items: dict[tuple[str, str], pg.PlotDataItem] = {}
        self._colours: dict[str, str] = {}
        self._palette = itertools.cycle(PALETTE)
        self._live_palette = itertools.cycle(LIVE_PALETTE[:1] + LIVE_PALETTE[2:])
        self._live_colours: dict[str, str] = {}
        self._test_entry: pg.PlotDataItem | None = None
        self._dirty = False
        self.redraws = 0
        self._timer = QTimer(self)
        self._timer.setInterval(int(1000 / redraw_hz))
        self._timer.timeout.connect(self.redraw)
        self._timer.start()

    def _sync_lr_view(self) -> None:
        self.lr_view.setGeometry(self.live_plot.vb.sceneBoundingRect())
        self.lr_view.linkedViewChanged(self.live_plot.vb, self.lr_view.XAxis)

    # --- data in ----------------------------------------------------------------------------------
    def add_train(self, steps: Iterable[float], terms: Mapping[str, Iterable[float]]) -> None:
        """Append train points: `terms[name]` aligned with `steps` (NaN where a term is missing)."""
        self._extend(self._train, steps, terms)

    def add_test(self, steps: Iterable[float], terms: Mapping[str, Iterable[float]]) -> None:
        self._extend(self._test, steps, terms)

    def add_live(self, steps: Iterable[float], values: Mapping[str, Iterable[float]]) -> None:
        self._extend(self._live, steps, values)

    def _extend(self, store: dict[str, _Series], steps: Iterable[float],
                terms: Mapping[str, Iterable[float]]) -> None:
        xs = np.asarray(list(steps) if not isinstance(steps, np.ndarray) else steps, dtype=np.float64)
        if xs.size == 0:
            return
        for name, values in terms.items():
            ys = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=np.float64)
            if ys.shape != xs.shape:
                raise ValueError(f"curve {name!r}: {ys.size} values for {xs.size} steps")
            store.setdefault(name, _Series()).extend(xs, ys)
        self._dirty = True

    def mark_dirty(self) -> None:
        """Redraw at the timer's next tick (not now: a big history would hold the event loop)."""
        self._dirty = True

    def clear(self) -> None:
        self.loss_plot.clear()
        self.empty_hint.attach()
        self.loss_plot.vb.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
        self.empty_hint.show()
        self.live_plot.clear()
        self.lr_view.clear()
        self.lr_view.setYRange(0.0, 1.0, padding=0)  # no "lr (x0.001)" left from the last run
        self.live_plot.setYRange(0.0, 1.0, padding=0)
        self.loss_legend.clear()
        self._test_entry = None
        self._live_colours.clear()
        self._live_palette = itertools.cycle(LIVE_PALETTE[:1] + LIVE_PALETTE[2:])
        self.live_plot.setTitle(LIVE_TITLE, size="9pt")
        for side in ("left", "right"):
            show_values(self.live_plot.getAxis(side), False)
        self._train.clear()
        self._test.clear()
        self._live.clear()
        self._items.clear()
        self._dirty = True
        self._follow = True
        self._force_range = True

    # --- queries (tests, export) -------------------------------------------------------------------
    def train_terms(self) -> list[str]:
        return list(self._train)

    def test_terms(self) -> list[str]:
        return list(self._test)

    def live_names(self) -> list[str]:
        return list(self._live)

    def train_series(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        s = self._train[name]
        return s.x.copy(), s.y.copy()

    def test_series(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        s = self._test[name]
        return s.x.copy(), s.y.copy()

    def live_series(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        s = self._live[name]
        return s.x.copy(), s.y.copy()

    def point_count(self) -> int:
        return sum(s.n for s in self._train.values())

    # --- drawing ---------------------------------------------------------------------------------
    def set_log_scale(self, on: bool) -> None:
        self.loss_plot.setLogMode(y=bool(on))
        self._force_range = True
        self._dirty = True
        if self.log_check.isChecked() != bool(on):
            self.log_check.setChecked(bool(on))

    def _colour(self, name: str) -> str:
        if name not in self._colours:
            self._colours[name] = next(self._palette)
        return self._colours[name]

    def _item(self, kind: str, name: str) -> pg.PlotDataItem:
        key = (kind, name)
        item = self._items.get(key)
        if item is None:
            if kind == "train":
                item = self.loss_plot.plot(name=name, pen=pg.mkPen(self._colour(name), width=1.5))
            elif kind == "test":
                colour = self._colour(name)
                if name not in self._train:  # a term recorded only on the test set still gets its legend entry
                    self.loss_legend.addItem(pg.PlotDataItem(pen=pg.mkPen(colour, width=1.5)), name)
                item = self.loss_plot.plot(pen=pg.mkPen(colour, width=1.5, style=pg.QtCore.Qt.PenStyle.DashLine),
                                           symbol="o", symbolSize=5, symbolBrush=colour, symbolPen=None)
                self._add_test_entry()
            elif name == "lr":
                self._live_colours[name] = LR_COLOUR
                item = pg.PlotDataItem(pen=pg.mkPen(LR_COLOUR, width=1.5, style=pg.QtCore.Qt.PenStyle.DotLine))
                self.lr_view.addItem(item)
                self._title_live_plot()
            else:
                colour = self._live_colours.setdefault(name, next(self._live_palette))
                item = self.live_plot.plot(pen=pg.mkPen(colour, width=1.5))
                self._title_live_plot()
            if kind == "train":
                item.setClipToView(True)
                item.setDownsampling(auto=True, method="peak")
            self._items[key] = item
        return item

    def _add_test_entry(self) -> None:
        """One legend entry for every test curve: a grey dashed line with a dot."""
        if self._test_entry is None:
            self._test_entry = pg.PlotDataItem(pen=pg.mkPen("#bbbbbb", width=1.5,
                                                            style=pg.QtCore.Qt.PenStyle.DashLine),
                                               symbol="o", symbolSize=5, symbolBrush="#bbbbbb", symbolPen=None)
            self.loss_legend.addItem(self._test_entry, TEST_LEGEND)

    def _title_live_plot(self) -> None:
        """The lower plot's title names its series in their colours; lr says it reads on the right axis."""
        names = [f"<span style='color:{colour}'>━ {'lr (right axis)' if name == 'lr' else name}</span>"
                 for name, colour in self._live_colours.items()]
        self.live_plot.setTitle(LIVE_TITLE + ": " + "  ".join(names), size="9pt")

    def live_title(self) -> str:
        """The lower plot's title as plain text (tests)."""
        return re.sub(r"<[^>]+>", "", self.live_plot.titleLabel.text)

    def redraw(self) -> None:
        """Push buffered points to the plot items (called by the timer; cheap when nothing changed)."""
        if not self._dirty:
            return
        self._dirty = False
        self.empty_hint.setVisible(not any(s.n for s in self._train.values()))
        with np.errstate(divide="ignore", invalid="ignore"):
            for name, series in self._train.items():
                if name in self._live:  # a weight echoed among the terms (β) belongs to the lower plot
                    continue
                self._item("train", name).setData(series.x, series.y, connect="finite")
            for name, series in self._test.items():
                if name in self._live:
                    continue
                self._item("test", name).setData(series.x, series.y, connect="finite")
            live_top = 0.0
            for name, series in self._live.items():
                self._live_step(self._item("live", name), series)
                if name != "lr" and series.n:
                    live_top = max(live_top, float(np.nanmax(series.y)))
            if live_top > 0:  # weights start at 0 so a β of 4 does not look like a flat line at mid-height
                self.live_plot.setYRange(0.0, live_top * 1.15, padding=0)
            show_values(self.live_plot.getAxis("left"), live_top > 0)
            has_lr = "lr" in self._live and self._live["lr"].n > 0
            if has_lr:
                self.lr_view.setYRange(0.0, float(np.nanmax(self._live["lr"].y)) * 1.15, padding=0)
            show_values(self.live_plot.getAxis("right"), has_lr)
            self._follow_data()
        self.redraws += 1

    def _stop_following(self, *_args) -> None:
        """The user zoomed or panned: leave the view alone (the plot's auto-range button brings it back)."""
        self._follow = False

    def _follow_data(self) -> None:
        """Keep the loss plot's view around the data, changing it only when the data leaves it (or fills
        less than half of it): x grows to a round number 25 % past the last step, y keeps a margin below."""
        vb = self.loss_plot.vb
        if not self._follow or any(vb.autoRangeEnabled()):
            return
        series = [s for n, s in self._train.items() if n not in self._live and s.n]
        series += [s for n, s in self._test.items() if n not in self._live and s.n]
        if not series:
            return
        log = self.log_check.isChecked()
        ys = np.concatenate([s.y if log else robust_part(s.y) for s in series])
        if self.log_check.isChecked():
            ys = np.log10(ys[ys > 0])
        ys = ys[np.isfinite(ys)]
        if ys.size == 0:
            return
        x_last = max(float(s.x[-1]) for s in series)
        (x0, x1), (y0, y1) = vb.viewRange()
        force, self._force_range = self._force_range, False
        if force or x_last > x1 or x1 > 4.0 * max(x_last, 10.0):
            vb.setXRange(0.0, nice_ceiling(1.25 * max(x_last, 1.0)), padding=0)
        lo, hi = float(ys.min()), float(ys.max())
        span = max(hi - lo, 1e-6)
        bottom = lo - 0.2 * span
        if lo >= 0.0 and not self.log_check.isChecked():
            bottom = max(bottom, 0.0)  # non-negative terms: the axis starts at 0, never below
        if force or lo < y0 or hi > y1 or (y1 - y0) > 2.0 * span + (lo - bottom):
            vb.setYRange(bottom, hi + 0.05 * span, padding=0)


    @staticmethod
    def _live_step(item: pg.PlotDataItem, series: _Series) -> None:
        """Values in force change rarely: draw only the change points, each held until the next one."""
        x, y = series.x, series.y
        if x.size == 0:
            return
        keep = np.ones(x.size, dtype=bool)
        keep[1:] = y[1:] != y[:-1]
        keep[-1] = True
        xs, ys = x[keep], y[keep]
        item.setData(np.append(xs, x[-1] + 1.0), ys, stepMode="center")


ROBUST_SKIP_FRACTION = 0.05  # the first 5 % of a curve's points (at least its first) stay out of the y range
ROBUST_MIN_POINTS = 10


def robust_part(ys: np.ndarray) -> np.ndarray:
    """The points that set the linear y range: without the first steps, whose spike (the untrained model's loss,
    often 10× the rest) would flatten every later change into a line at the bottom."""
    if ys.size < ROBUST_MIN_POINTS:
        return ys
    return ys[max(1, int(ROBUST_SKIP_FRACTION * ys.size)):]


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 5 × 10^k that is ≥ value."""
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** np.floor(np.log10(value))
    for factor in (1.0, 2.0, 5.0, 10.0):
        if factor * magnitude >= value * (1 - 1e-12):
            return float(factor * magnitude)
    return float(10.0 * magnitude)
