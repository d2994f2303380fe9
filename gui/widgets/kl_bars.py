"""Per-dimension KL as bars: which latent dimensions carry information (KL > threshold counts as active)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

from .empty_hint import EmptyHint
from .plot_cache import cache_axes, show_values

ACTIVE_COLOUR = "#4fa3e0"
INACTIVE_COLOUR = "#5a5a5a"


class KLBarChart(pg.PlotWidget):
    """Bars of KL(q(z_j|x) ‖ N(0,1)) per dimension j, in nats; dimensions above `threshold` are highlighted."""

    def __init__(self, threshold: float = 0.1, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.threshold = threshold
        self.setBackground("#1e1e1e")
        self.plotItem.setTitle("KL per latent dimension (nats)", size="9pt")
        self.plotItem.setLabel("bottom", "dimension")
        self.plotItem.getAxis("bottom").enableAutoSIPrefix(False)  # dimensions are integers: never "(×0.001)"
        self.plotItem.showGrid(y=True, alpha=0.2)
        cache_axes(self.plotItem)
        self.setMouseEnabled(x=False, y=False)
        self.setMenuEnabled(False)
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.8)
        self.addItem(self.bars)
        self.empty_hint = EmptyHint(self.plotItem, "KL of each latent dimension appears here while a VAE trains")
        self.values: np.ndarray = np.zeros(0)
        self.set_values([])  # empty until the first KL: the hint, no axis values

    def set_values(self, kl_per_dim: Sequence[float]) -> None:
        """Draw the bars; no values (a new run, a checkpoint without a recorded KL): no ticks, only the hint."""
        values = np.asarray(kl_per_dim, dtype=np.float64)
        if values.ndim != 1:
            raise ValueError(f"KL per dimension must be 1-D, got shape {values.shape}")
        values = np.where(np.isfinite(values), values, 0.0)
        self.empty_hint.setVisible(values.size == 0)
        for side in ("bottom", "left"):
            show_values(self.plotItem.getAxis(side), values.size > 0)
        brushes = [pg.mkBrush(ACTIVE_COLOUR if v > self.threshold else INACTIVE_COLOUR) for v in values]
        self.bars.setOpts(x=np.arange(values.size), height=values, width=0.8, brushes=brushes)
        if values.size == 0:
            self.plotItem.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
        else:
            if values.size != self.values.size:
                self.plotItem.setXRange(-0.6, values.size - 0.4, padding=0)
            self.plotItem.setYRange(0, max(float(values.max(initial=0.0)) * 1.1, 0.5), padding=0)
        self.values = values

    @property
    def active_units(self) -> int:
        return int((self.values > self.threshold).sum())
