"""A plot widget as pixels: what the Training tab's labelled figure and each plot's "Export plot as PNG…" save."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QWidget


def widget_image(widget: QWidget) -> np.ndarray:
    """The widget as rendered now (a plot: its axes, curves and legend; no buttons around it), RGB uint8 H×W×3."""
    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    height, width, stride = image.height(), image.width(), image.bytesPerLine()
    if width == 0 or height == 0:
        raise ValueError("the plot has no size yet (is it shown?)")
    buffer = np.frombuffer(image.constBits(), dtype=np.uint8, count=stride * height).reshape(height, stride)
    return buffer[:, : width * 3].reshape(height, width, 3).copy()  # a copy: the QImage's memory goes with it
