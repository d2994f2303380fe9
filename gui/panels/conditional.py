"""Conditional generation: a class × sample grid where each column shares one z, and analogies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSpinBox, QSplitter, QVBoxLayout

from engine import explore
from engine.imaging import tile, to_uint8
from gui.panels.common import PanelBase, button, grid_ticks
from gui.widgets import GridView, ToolRow

NOT_CONDITIONAL = ("{family} is not conditional: its decoder p(x|z) takes no class label, so the class cannot be "
                   "changed while the style is held. Train a CVAE (q(z|x,y), p(x|z,y) with one-hot y) on a labelled "
                   "dataset such as digits or MNIST to use this panel.")


class ConditionalPanel(PanelBase):
    """Rows = classes, columns = one z each (style held, content changed); analogies below."""

    def __init__(self, source, parent=None) -> None:
        super().__init__(source, parent)
        self.grid: np.ndarray | None = None
        self.analogy: np.ndarray | None = None
        self.seed = 0
        root = QVBoxLayout(self.content)
        root.setContentsMargins(0, 0, 0, 0)
        self.explain = QLabel("")
        self.explain.setWordWrap(True)
        root.addWidget(self.explain)
        controls = ToolRow()
        self.samples_spin = QSpinBox()
        self.samples_spin.setRange(1, 16)
        self.samples_spin.setValue(8)
        self.samples_spin.valueChanged.connect(self.request_grid)
        self.image_spin = QSpinBox()
        self.image_spin.setToolTip("Test-set image to encode with its own label and decode as every class")
        self.image_spin.valueChanged.connect(self.request_analogy)
        for label, w in (("Samples", self.samples_spin), ("Analogy image #", self.image_spin)):
            controls.add_labeled(label, w)
        self.resample_button = button("Resample", self.resample, "Draw new z ~ N(0, I) for every column")
        self.export_button = button("Export PNG…", self._export_dialog)
        controls.add(self.resample_button)
        controls.add(self.export_button)
        self.conditional_controls = (self.samples_spin, self.image_spin, self.resample_button, self.export_button)
        self._tooltips = {widget: widget.toolTip() for widget in self.conditional_controls}
        root.addWidget(controls)
        split = QSplitter(Qt.Orientation.Vertical)
        self.grid_view = GridView()
        self.analogy_view = GridView()
        split.addWidget(self.grid_view)
        split.addWidget(self.analogy_view)
        split.setSizes([420, 140])
        self.views = split
        root.addWidget(split, 1)

    def rebuild(self) -> None:
        self.image_spin.blockSignals(True)
        self.image_spin.setRange(0, max(0, len(self.test_indices()) - 1))
        self.image_spin.blockSignals(False)
        self.submit("kind", lambda model: (model.family, model.is_conditional), self._kind)

    def refresh(self) -> None:
        self.rebuild()

    def _kind(self, result) -> None:
        family, conditional = result
        self.views.setVisible(conditional)
        for widget in self.conditional_controls:  # offered only where they apply, saying why not otherwise
            widget.setEnabled(conditional)
            widget.setToolTip(self._tooltips[widget] if conditional
                              else f"{family} is not conditional: train a CVAE to sample by class")
        self.explain.setText("" if conditional else NOT_CONDITIONAL.format(family=family))
        self.grid = None if not conditional else self.grid
        if conditional:
            self.explain.setText("Each column decodes one z ~ N(0, I) under every class: the style stays, the "
                                 "class changes. Below: a test image encoded with its label, decoded as every class.")
            self.request_grid()
            self.request_analogy()

    def class_names(self, k: int) -> list[str]:
        names = self.source.dataset.class_names or ()
        return [names[i] if i < len(names) else str(i) for i in range(k)]

    def resample(self) -> None:
        self.seed += 1
        self.request_grid()

    def request_grid(self, *_args) -> None:
        n, seed = self.samples_spin.value(), self.seed

        def job(model):
            if not model.is_conditional:
                return None
            return explore.conditional_grid(model, n, seed=seed), model.num_classes, model.data_shape

        self.submit("grid", job, self._show_grid)

    def _show_grid(self, result) -> None:
        if result is None:
            return
        grid, k, (_, h, w) = result
        self.grid = grid
        self.grid_view.set_grid(grid, grid_ticks(k, h, 1, [f"class {c}" for c in self.class_names(k)]),
                                grid_ticks(self.samples_spin.value(), w, 1,
                                           [str(j + 1) for j in range(self.samples_spin.value())]))
        self.grid_view.getPlotItem().setLabel("bottom", "sample: one z ~ N(0, I) per column")

    def request_analogy(self, *_args) -> None:
        dataset, test = self.source.dataset, self.test_indices()
        if dataset is None or dataset.labels is None or not len(test):
            return
        index = test[self.image_spin.value()].reshape(1)

        def job(model):
            if not model.is_conditional:
                return None
            x, y = dataset.images_at(index), dataset.labels_at(index)
            row = to_uint8(explore.analogies(model, x, y))
            return tile(np.concatenate([to_uint8(x), row]), row.shape[0] + 1), int(y), model.data_shape

        self.submit("analogy", job, self._show_analogy)

    def _show_analogy(self, result) -> None:
        if result is None:
            return
        grid, label, (_, h, w) = result
        self.analogy = grid
        k = (grid.shape[1] - 1) // (w + 1) - 1
        names = ["input (" + self.class_names(k)[label] + ")"] + [f"as {c}" for c in self.class_names(k)]
        self.analogy_view.set_grid(grid, None, grid_ticks(k + 1, w, 1, names))

    def export_png(self, path: str | Path) -> Path:
        return self.save_grid_png(self.grid, path)

    def export_figure(self, path: str | Path) -> Path:
        return self.export_png(path)

    def _export_dialog(self) -> None:
        self.export_dialog("Export class × sample grid", "png", "PNG image (*.png)", self.export_png)


