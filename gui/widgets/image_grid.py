"""An image grid drawn by one pyqtgraph ImageItem: uint8, row-major, fixed levels (the fastest path measured)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget


class ImageGrid(QWidget):
    """Shows a C-contiguous uint8 H×W or H×W×3 array; `set_image` costs well under a millisecond for 640×704."""

    def __init__(self, title: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self.title_label = QLabel(title)
        self.title_label.setObjectName("imageGridTitle")
        if title:
            layout.addWidget(self.title_label)
        else:
            self.title_label.hide()
        self.view_widget = pg.GraphicsLayoutWidget()
        self.view_widget.setBackground("#1e1e1e")
        self.view_widget.ci.setContentsMargins(0, 0, 0, 0)
        self.view_box = self.view_widget.addViewBox(lockAspect=True, invertY=True, enableMouse=False)
        self.view_box.setMenuEnabled(False)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.view_box.addItem(self.image_item)
        layout.addWidget(self.view_widget, 1)
        self._image: np.ndarray | None = None
        self.updates = 0

    def set_image(self, grid: np.ndarray | None) -> None:
        """Draw a uint8 grid (None clears it)."""
        if grid is None:
            self.image_item.clear()
            self._image = None
            return
        if grid.dtype != np.uint8 or grid.ndim not in (2, 3):
            raise ValueError(f"image grid needs uint8 H×W or H×W×3, got {grid.dtype} {grid.shape}")
        grid = np.ascontiguousarray(grid)
        reshaped = self._image is None or self._image.shape != grid.shape
        self.image_item.setImage(grid, autoLevels=False, levels=(0, 255))
        if reshaped:
            self.view_box.autoRange(padding=0.0)
        self._image = grid
        self.updates += 1

    def image(self) -> np.ndarray | None:
        return self._image

    def set_title(self, title: str) -> None:
        self.title_label.setText(title)
        self.title_label.setVisible(bool(title))
