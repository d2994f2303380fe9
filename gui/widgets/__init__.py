"""Reusable widgets: image grid (pyqtgraph ImageItem), loss curves, labelled sliders, KL bar chart."""

from .curves import LossCurves
from .image_grid import GridView, ImageGrid
from .kl_bars import KLBarChart
from .sliders import LabeledSlider

__all__ = ["GridView", "ImageGrid", "KLBarChart", "LabeledSlider", "LossCurves"]
