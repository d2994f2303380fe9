"""Axes drawn from a pixmap cache: a grid-carrying axis covers the whole plot, so without a cache every curve
update replayed its full picture (pyqtgraph AxisItem.paint was the largest share of the GUI thread while training)."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QGraphicsItem


def cache_axes(plot: pg.PlotItem) -> None:
    """Render each axis of `plot` once into a device-pixel cache; it is redrawn only when its ticks change."""
    for name in ("left", "right", "top", "bottom"):
        axis = plot.getAxis(name)
        if axis is not None:
            axis.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)


def show_values(axis: pg.AxisItem, show: bool) -> None:
    """Show or hide an axis's tick values — only on a change: setStyle re-renders the axis, which at every redraw
    cost the GUI thread most of its time while training."""
    if axis.style["showValues"] != show:
        axis.setStyle(showValues=show)
