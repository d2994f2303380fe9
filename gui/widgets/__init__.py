"""Reusable widgets: image grid (pyqtgraph ImageItem), loss curves, labelled sliders, KL bars, wrapping tool rows."""

from .curves import LossCurves
from .image_grid import GridView, ImageGrid
from .kl_bars import KLBarChart
from .sliders import LabeledSlider
from .tool_row import ToolRow

__all__ = ["GridView", "ImageGrid", "KLBarChart", "LabeledSlider", "LossCurves", "ToolRow"]
