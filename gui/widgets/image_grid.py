"""Image grids drawn by one pyqtgraph ImageItem: uint8, row-major, fixed levels (the fastest path measured).

`GridView` is the one implementation (optional row/column tick labels, clicks in pixel coordinates); `ImageGrid`
is a GridView under a title, as the Training tab and the Data dock show previews.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from .empty_hint import EmptyHint
from .plot_cache import cache_axes


class GridView(pg.PlotWidget):
    """A uint8 grid on one ImageItem (row-major, levels fixed at 0–255), optional row/column tick labels,
    and `clicked(x, y)` in image pixel coordinates."""

    clicked = Signal(float, float)

    def __init__(self, parent: QWidget | None = None, axes: bool = True) -> None:
        super().__init__(parent=parent, background="#1e1e1e")
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.addItem(self.image_item)
        item = self.getPlotItem()
        item.invertY(True)
        item.setAspectLocked(True)
        item.setMouseEnabled(False, False)
        item.setMenuEnabled(False)
        item.hideButtons()
        cache_axes(item)
        self._axes = axes
        for side in ("left", "bottom"):
            item.showAxis(side, axes)
        self._shape: tuple[int, ...] | None = None
        self.row_ticks: list[tuple[float, str]] = []
        self.highlight_item = pg.PlotCurveItem(pen=pg.mkPen("#ffcc33", width=2))
        self.highlight_item.setZValue(10)
        self.addItem(self.highlight_item)
        self.highlighted: tuple[float, float, float, float] | None = None
        self.empty_hint = EmptyHint(item)
        self.empty_hint.hide()
        self.image: np.ndarray | None = None
        self.updates = 0
        self.scene().sigMouseClicked.connect(self._on_scene_click)

    def set_grid(self, grid: np.ndarray | None, row_ticks: Sequence[tuple[float, str]] | None = None,
                 col_ticks: Sequence[tuple[float, str]] | None = None) -> None:
        """Draw a uint8 H×W or H×W×3 grid (None clears it), with optional (position, label) ticks."""
        if grid is None:
            self.image_item.clear()
            self.image, self._shape = None, None
            self._place_hint()
            return
        self.empty_hint.hide()
        if grid.dtype != np.uint8 or grid.ndim not in (2, 3):
            raise ValueError(f"image grid needs uint8 H×W or H×W×3, got {grid.dtype} {grid.shape}")
        grid = np.ascontiguousarray(grid)
        self.image_item.setImage(grid, autoLevels=False, levels=(0, 255))
        item = self.getPlotItem()
        if self._axes:
            item.showAxis("left", bool(row_ticks))
            item.showAxis("bottom", bool(col_ticks))
            item.getAxis("left").setTicks([list(row_ticks)] if row_ticks else None)
            self.row_ticks = list(row_ticks or [])
            item.getAxis("bottom").setTicks([list(col_ticks)] if col_ticks else None)
        if self._shape != grid.shape:
            item.setRange(xRange=(0, grid.shape[1]), yRange=(0, grid.shape[0]), padding=0.01)
            self._shape = grid.shape
        self.image = grid
        self.updates += 1

    def set_row_ticks(self, row_ticks: Sequence[tuple[float, str]]) -> None:
        """New row labels for the grid shown (the image stays)."""
        if self._axes and self.image is not None:
            self.getPlotItem().getAxis("left").setTicks([list(row_ticks)] if row_ticks else None)
        self.row_ticks = list(row_ticks)
    def set_empty_hint(self, text: str) -> None:
        """What an empty view says (e.g. "Press Start to train — reconstructions appear here")."""
        self.empty_hint.setText(text)
        if self.image is None:
            self._place_hint()

    def _place_hint(self) -> None:
        self.empty_hint.setVisible(bool(self.empty_hint.toPlainText()))
        self.empty_hint.place()

    def set_highlight(self, cell: tuple[float, float, float, float] | None) -> None:
        """Outline one cell: (x, y, width, height) in image pixels (None removes the outline)."""
        self.highlighted = cell
        if cell is None:
            self.highlight_item.setData([], [])
            return
        x, y, w, h = cell
        self.highlight_item.setData([x, x + w, x + w, x, x], [y, y, y + h, y + h, y])

    def _on_scene_click(self, event) -> None:
        if self.image is None or event.button() != Qt.MouseButton.LeftButton:
            return
        point = self.getPlotItem().vb.mapSceneToView(event.scenePos())
        self.click_pixel(point.x(), point.y())

    def click_pixel(self, x: float, y: float) -> None:
        """Emit `clicked` if (x, y) lies on the image (also the entry point tests use)."""
        if self.image is not None and 0 <= x < self.image.shape[1] and 0 <= y < self.image.shape[0]:
            self.clicked.emit(float(x), float(y))

    def scene_point(self, x: float, y: float) -> QPointF:
        return self.getPlotItem().vb.mapViewToScene(QPointF(x, y))


class ImageGrid(QWidget):
    """A titled GridView without axes; `set_image` costs well under a millisecond for 640×704."""

    def __init__(self, title: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self.title_label = QLabel(title)
        self.title_label.setObjectName("imageGridTitle")
        layout.addWidget(self.title_label)
        self.title_label.setVisible(bool(title))
        self.view = GridView(axes=False)
        layout.addWidget(self.view, 1)

    def set_image(self, grid: np.ndarray | None) -> None:
        """Draw a uint8 grid (None clears it and shows the empty hint, if any)."""
        self.view.set_grid(grid)

    def set_empty_hint(self, text: str) -> None:
        self.view.set_empty_hint(text)

    def image(self) -> np.ndarray | None:
        return self.view.image

    @property
    def updates(self) -> int:
        return self.view.updates

    def set_title(self, title: str) -> None:
        self.title_label.setText(title)
        self.title_label.setVisible(bool(title))
