"""The one "nothing here yet" hint of the plots: grey text centred in a plot's view and wrapped to its width, so a
long hint never runs past a narrow plot (the window fits 1366×768)."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QTextOption

HINT_COLOUR = "#9a9a9a"
MARGIN_PX = 8
MIN_WIDTH_PX = 60


class EmptyHint(pg.TextItem):
    """Added to `plot` (a PlotItem) at once; follows the view's range and size while it is shown."""

    def __init__(self, plot: pg.PlotItem, text: str = "") -> None:
        super().__init__(text, color=HINT_COLOUR, anchor=(0.5, 0.5))
        self.plot = plot
        self.textItem.document().setDefaultTextOption(QTextOption(Qt.AlignmentFlag.AlignHCenter))
        self.setZValue(20)
        self.attach()
        plot.vb.sigRangeChanged.connect(self._view_changed)
        plot.vb.sigResized.connect(self._view_changed)

    def attach(self) -> None:
        """(Re-)add the hint to its plot, e.g. after `PlotItem.clear()` removed it."""
        if self.scene() is None:
            self.plot.addItem(self, ignoreBounds=True)
        self.place()

    def set_text(self, text: str) -> None:
        self.setText(text)
        self.place()

    def place(self) -> None:
        """Centre in the view; wrap to the view's width in pixels."""
        (x0, x1), (y0, y1) = self.plot.vb.viewRange()
        self.setPos((x0 + x1) / 2, (y0 + y1) / 2)
        width = self.plot.vb.width()
        self.setTextWidth(max(width - 2 * MARGIN_PX, MIN_WIDTH_PX) if width > 0 else -1)

    def _view_changed(self, *_args) -> None:
        if self.isVisible():
            self.place()

    def setVisible(self, visible: bool) -> None:  # noqa: N802 (Qt override)
        if visible and not self.isVisible():
            self.place()
        super().setVisible(visible)

    def show(self) -> None:
        self.setVisible(True)

    def hide(self) -> None:
        self.setVisible(False)

    def fits(self) -> bool:
        """Whether the hint lies inside its view (what a test at 1366×768 checks)."""
        view = self.plot.vb.sceneBoundingRect()
        return view.contains(self.sceneBoundingRect())
