"""Latent map: the test set's codes in 2-D (two most active dims, PCA or t-SNE), coloured by label or factor;
click a point → its image and reconstruction; click the plane → the decoded image there; the manifold grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QLabel, QProgressBar, QSpinBox, QSplitter, QVBoxLayout, QWidget

from engine import explore
from engine.data.base import split_indices
from engine.imaging import tile, to_uint8
from gui.inference import InferenceRunner
from gui.panels.common import PanelBase, button, write_csv
from gui.widgets import GridView, ToolRow

METHODS = (("Two most active dims", "dims"), ("PCA", "pca"), ("t-SNE", "tsne"))
PICK_RADIUS_PX = 8
CATEGORICAL_FACTORS = {"shape", "object", "colour", "color", "type"}  # no order: distinct hues and a legend
CYCLIC_FACTORS = {"orientation", "rotation", "angle", "hue"}  # wraps around: a cyclic map (0 and 2π look alike)
SEQUENTIAL_MAP, CYCLIC_MAP = "viridis", "CET-C2"
MAX_LEGEND_ENTRIES = 20


def split_combo(object_name: str) -> QComboBox:
    """Which images a view draws from: the test split (the default), the training split or both."""
    combo = QComboBox()
    combo.setObjectName(object_name)
    for text, key in (("test split", "test"), ("training split", "train"), ("all images", "both")):
        combo.addItem(text, key)
    combo.setToolTip("Which images: the held-out test split, the training split, or all of them")
    return combo


def shown_note(shown: int, asked: int, which: str, noun: str) -> str:
    """"Showing 32 points: the test split has only 32 images" when fewer than asked exist, else ""."""
    if shown >= asked:
        return ""
    where = {"test": "the test split has", "train": "the training split has", "both": "the dataset has"}[which]
    hint = " (choose the training split or all images for more)" if which == "test" else ""
    return f"Showing {shown:,} {noun}: {where} only {shown:,} images{hint}."


def colour_key(name: str, count: int) -> str:
    """How a colouring is keyed: "categorical" (legend), "cyclic" or "sequential" (colour bar)."""
    if name == "label" or name in CATEGORICAL_FACTORS:
        return "categorical" if count <= MAX_LEGEND_ENTRIES else "sequential"
    return "cyclic" if name in CYCLIC_FACTORS else "sequential"


class LatentMapPanel(PanelBase):
    """Scatter of posterior means; linear embeddings map plane points back to codes for decoding."""

    def __init__(self, source, parent=None) -> None:
        super().__init__(source, parent)
        self.embedding: explore.Embedding | None = None
        self.indices = torch.zeros(0, dtype=torch.long)
        self.colors: np.ndarray | None = None
        self.manifold: np.ndarray | None = None
        self.probe: np.ndarray | None = None
        self.probe_code: np.ndarray | None = None
        self.selected_index: int | None = None  # dataset index of the clicked point: every new map re-encodes it
        self.slow_runner = InferenceRunner("tsne", self)
        self.slow_runner.busy_changed.connect(self._slow_busy)
        root = QVBoxLayout(self.content)
        root.setContentsMargins(0, 0, 0, 0)
        controls = ToolRow()
        self.method_combo = QComboBox()
        for text, key in METHODS:
            self.method_combo.addItem(text, key)
        self.method_combo.setCurrentIndex(1)
        self.color_combo = QComboBox()
        self.points_spin = QSpinBox()
        self.points_spin.setRange(50, 5000)
        self.points_spin.setSingleStep(250)
        self.points_spin.setValue(1000)
        self.manifold_spin = QSpinBox()
        self.manifold_spin.setRange(2, 30)
        self.manifold_spin.setValue(12)
        self.manifold_spin.setToolTip("The manifold grid decodes n×n evenly spaced points of the plane")
        self.split_combo = split_combo("latentMapSplit")
        self.split_combo.currentIndexChanged.connect(self.rebuild)
        self.class_combo = QComboBox()
        self.class_combo.setToolTip("Conditional models: the class y the decoded plane and clicks are decoded with")
        self.class_combo.currentIndexChanged.connect(self.request_manifold)
        for label, w in (("Map", self.method_combo), ("Colour", self.color_combo), ("Points", self.points_spin),
                         ("of", self.split_combo), ("Grid", self.manifold_spin)):
            controls.add_labeled(label, w)
        self.class_group = controls.add_labeled("Decode class", self.class_combo)
        self.class_group.hide()
        self.method_combo.currentIndexChanged.connect(self.rebuild)
        self.points_spin.editingFinished.connect(self.rebuild)
        self.color_combo.currentIndexChanged.connect(self._recolor)
        self.manifold_spin.valueChanged.connect(self.request_manifold)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setMaximumWidth(120)
        self.progress.hide()
        self.cancel_button = button("Cancel", self.cancel_tsne, "Stop waiting for t-SNE (its result is dropped)")
        self.cancel_button.hide()
        controls.add(self.progress)
        controls.add(self.cancel_button)
        controls.add(button("Export PNG…", self._export_png_dialog,
                            "The decoded plane (PCA / two dims), or the map itself for t-SNE"))
        controls.add(button("Export map PNG…", self._export_map_dialog, "The scatter map with its colour key"))
        controls.add(button("Export CSV…", self._export_csv_dialog, "2-D coordinates, index, label"))
        root.addWidget(controls)

        split = QSplitter(Qt.Orientation.Horizontal)
        self.plot = pg.PlotWidget(background="#1e1e1e")
        self.plot.setMenuEnabled(False)
        self.scatter = pg.ScatterPlotItem(size=6, pen=None, hoverable=True, tip=self._tip)
        self.plot.addItem(self.scatter)
        self.marker = pg.ScatterPlotItem(size=14, symbol="+", pen=pg.mkPen("w", width=2), brush=None)
        self.plot.addItem(self.marker)
        self.legend = self.plot.getPlotItem().addLegend(offset=(-8, 8), labelTextSize="8pt", brush=(30, 30, 30, 200))
        self.colour_bar: pg.ColorBarItem | None = None
        self.plot.scene().sigMouseClicked.connect(self._scene_clicked)
        split.addWidget(self.plot)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        self.manifold_title = QLabel("Decoded plane")
        right_layout.addWidget(self.manifold_title)
        self.manifold_view = GridView(axes=False)
        right_layout.addWidget(self.manifold_view, 3)
        self.probe_title = QLabel("Click a point (image | reconstruction) or the plane (decoded there)")
        self.probe_title.setWordWrap(True)
        right_layout.addWidget(self.probe_title)
        self.probe_view = GridView(axes=False)
        right_layout.addWidget(self.probe_view, 1)
        split.addWidget(right)
        split.setSizes([560, 400])
        root.addWidget(split, 1)

    # --- embedding -----------------------------------------------------------------------------------
    def rebuild(self, *_args) -> None:
        dataset = self.source.dataset
        if dataset is None:
            return
        self._fill_color_choices()
        which = self.split_combo.currentData()
        available = split_indices(len(dataset), self.source.test_indices, which)
        indices = available[: self.points_spin.value()]
        if self.selected_index is not None and not bool((indices == self.selected_index).any()):
            indices = torch.cat([indices, torch.tensor([self.selected_index])])  # another split: keep it on the map
        method = self.method_combo.currentData()

        def encode(model):
            if model.latent_kind != "continuous":
                raise ValueError(f"{model.family} has a discrete code: the map needs a continuous latent space")
            stats = explore.latent_stats(model, dataset, indices, n=len(indices))
            return stats.means, [int(d) for d in stats.order[:2]]

        def job(model):
            means, dims = encode(model)
            return indices, explore.embed(means, method, dims=dims)

        self.embedding = None
        if method == "tsne":
            self.status.setText("t-SNE running off the GUI thread…")
            self.cancel_button.show()

            def slow():
                model = self.source.snapshot()
                if model is None:
                    raise RuntimeError("no model")
                return job(model)

            self.slow_runner.submit("embed", slow, self._show_embedding, self.show_error)
        else:
            self.slow_runner.cancel("embed")
            self.submit("embed", job, self._show_embedding)

    def refresh(self) -> None:
        if self.method_combo.currentData() != "tsne":
            self.rebuild()

    def _on_source_changed(self) -> None:
        """A different model: the old map, t-SNE and a clicked plane point belong to the old one (a clicked image
        stays selected and is shown again where the new model encodes it)."""
        self.slow_runner.cancel_all()
        self.embedding = None
        if self.selected_index is None:
            self._clear_probe()
        super()._on_source_changed()

    def _clear_probe(self) -> None:
        self.selected_index = None
        self.probe_code = self.probe = None
        self.marker.setData(x=[], y=[])
        self.probe_view.set_grid(None)
        self.probe_title.setText("Click a point (image | reconstruction) or the plane (decoded there)")

    def cancel_tsne(self) -> None:
        self.slow_runner.cancel("embed")
        self.progress.hide()
        self.cancel_button.hide()
        self.status.setText("t-SNE cancelled")

    def _slow_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)

    def _fill_color_choices(self) -> None:
        dataset = self.source.dataset
        items = (["label"] if dataset.labels is not None else []) + (
            list(dataset.factor_spec.names) if dataset.factor_spec is not None else []) + ["none"]
        if [self.color_combo.itemText(i) for i in range(self.color_combo.count())] != items:
            self.color_combo.blockSignals(True)
            self.color_combo.clear()
            self.color_combo.addItems(items)
            self.color_combo.blockSignals(False)
        self.submit("classes", lambda model: (bool(model.is_conditional), int(model.num_classes)), self._fill_classes)

    def _fill_classes(self, result) -> None:
        """A conditional model decodes with a chosen class (offered only then)."""
        conditional, count = result
        names = list(self.source.dataset.class_names or ()) if self.source.dataset is not None else []
        names = (names + [str(i) for i in range(len(names), count)])[:count]
        if conditional and [self.class_combo.itemText(i) for i in range(self.class_combo.count())] != names:
            self.class_combo.blockSignals(True)
            self.class_combo.clear()
            self.class_combo.addItems(names)
            self.class_combo.blockSignals(False)
        self.class_group.setVisible(conditional)

    def decode_label(self) -> int:
        """The class the plane is decoded with (used only by conditional models)."""
        return max(0, self.class_combo.currentIndex())

    def _show_embedding(self, result) -> None:
        indices, embedding = result
        self.indices, self.embedding = indices, embedding
        self.status.setText(shown_note(len(indices), self.points_spin.value(), self.split_combo.currentData(),
                                       "points"))
        self.plot.setLabel("bottom", embedding.label[0])
        self.plot.setLabel("left", embedding.label[1])
        self._recolor()
        self.plot.getPlotItem().autoRange()
        self.request_manifold()
        if self.selected_index is not None:  # the selected image, encoded by this map's model
            positions = (self.indices == self.selected_index).nonzero().flatten().tolist()
            if positions:
                self.show_point(positions[0])
            else:
                self._clear_probe()

    def _color_values(self) -> np.ndarray | None:
        dataset, choice = self.source.dataset, self.color_combo.currentText()
        if choice == "label" and dataset.labels is not None:
            return dataset.labels_at(self.indices).cpu().numpy()
        if dataset.factor_spec is not None and choice in dataset.factor_spec.names:
            return dataset.factors_at(self.indices)[:, dataset.factor_spec.names.index(choice)].cpu().numpy()
        return None

    def _recolor(self, *_args) -> None:
        if self.embedding is None:
            return
        values = self._color_values()
        self.colors = values
        self.legend.clear()
        self._set_colour_bar(None)
        if values is None:
            brushes = [pg.mkBrush(120, 170, 255, 160)] * len(self.indices)
        else:
            name, names, levels = self._colour_levels()
            count = len(levels)
            kind = colour_key(name, count)
            if self._factor_labels(name) and count <= MAX_LEGEND_ENTRIES:  # a labelled factor of your factors.csv
                kind = "categorical"
            if kind == "categorical":
                palette = [pg.intColor(i, hues=max(count, 2), alpha=190) for i in range(count)]
                present = set(int(v) for v in values)
                for i in range(count):
                    if i in present:
                        self.legend.addItem(pg.ScatterPlotItem(size=8, pen=None, brush=palette[i]), names[i])
            else:
                cmap = pg.colormap.get(CYCLIC_MAP if kind == "cyclic" else SEQUENTIAL_MAP)
                table = cmap.getLookupTable(0.0, 1.0, max(count, 2), alpha=False)
                palette = [pg.mkBrush(*table[i], 200) for i in range(max(count, 2))]
                self._set_colour_bar(cmap, name, levels)
            brushes = [palette[int(v)] for v in values]
        coords = self.embedding.coords
        self.scatter.setData(x=coords[:, 0], y=coords[:, 1], brush=brushes, data=np.arange(len(coords)))

    def _colour_levels(self) -> tuple[str, list[str], list[float]]:
        """(name, display names, numeric values) of the chosen colouring's levels."""
        dataset, choice = self.source.dataset, self.color_combo.currentText()
        if choice == "label":
            count = max(dataset.num_classes or 0, int(self.colors.max()) + 1)
            names = list(dataset.class_names or ())
            names = (names + [str(i) for i in range(len(names), count)])[:count]
            return "label", names, [float(i) for i in range(count)]
        spec = dataset.factor_spec
        values = [float(v) for v in spec.values[spec.names.index(choice)]]
        labels = self._factor_labels(choice)
        return choice, list(labels) if labels else [f"{v:.3g}" for v in values], values

    def _factor_labels(self, name: str) -> tuple[str, ...] | None:
        """The class labels of a categorical factor read from a user's factors.csv (None for numeric factors)."""
        dataset = self.source.dataset
        labels = (dataset.extra or {}).get("factor_labels") if dataset is not None else None
        if not labels or dataset.factor_spec is None or name not in dataset.factor_spec.names:
            return None
        return labels[dataset.factor_spec.names.index(name)]

    def _set_colour_bar(self, cmap, name: str = "", levels: list[float] | None = None) -> None:
        """A colour bar beside the map for ordered colourings (None removes it)."""
        layout = self.plot.getPlotItem().layout
        if self.colour_bar is not None:
            layout.removeItem(self.colour_bar)
            self.colour_bar.setParentItem(None)
            self.plot.scene().removeItem(self.colour_bar)
            self.colour_bar = None
        if cmap is None or not levels:
            return
        low, high = min(levels), max(levels)
        self.colour_bar = pg.ColorBarItem(values=(low, high if high > low else low + 1.0), colorMap=cmap,
                                          interactive=False, width=12, label=name)
        layout.addItem(self.colour_bar, 2, 3)

    def _tip(self, x, y, data) -> str:
        i = int(data)
        extra = "" if self.colors is None else f"  {self.color_combo.currentText()} {int(self.colors[i])}"
        return f"image #{int(self.indices[i])}{extra}"

    # --- manifold and clicks -------------------------------------------------------------------------
    def plane_extent(self) -> tuple[float, float, float, float]:
        c = self.embedding.coords
        lo, hi = np.percentile(c, 1, axis=0), np.percentile(c, 99, axis=0)
        return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])

    def request_manifold(self, *_args) -> None:
        emb = self.embedding
        if emb is None:
            return
        if not emb.invertible:
            self.manifold = None
            self.manifold_view.set_grid(None)
            self.manifold_title.setText("t-SNE is not invertible: no decoded plane (use PCA or two dims)")
            return
        x0, x1, y0, y1 = self.plane_extent()
        n = self.manifold_spin.value()
        xs, ys = explore.plane_values(x0, x1, n), explore.plane_values(y0, y1, n)
        label = self.decode_label()

        def job(model):
            return explore.manifold_grid(model, emb, xs, ys, label if model.is_conditional else None)

        self.manifold_title.setText(f"Decoded plane: {emb.label[0]} {x0:.2f}…{x1:.2f} (→), "
                                    f"{emb.label[1]} {y0:.2f}…{y1:.2f} (↑)")
        self.submit("manifold", job, self._show_manifold)

    def _show_manifold(self, grid: np.ndarray) -> None:
        self.manifold = grid
        self.manifold_view.set_grid(grid)

    def _scene_clicked(self, event) -> None:
        if self.embedding is None or event.button() != Qt.MouseButton.LeftButton:
            return
        vb = self.plot.getPlotItem().vb
        if not vb.sceneBoundingRect().contains(event.scenePos()):
            return
        point = vb.mapSceneToView(event.scenePos())
        coords = self.embedding.coords
        sx, sy = vb.viewPixelSize()
        dist = np.hypot((coords[:, 0] - point.x()) / sx, (coords[:, 1] - point.y()) / sy)
        nearest = int(np.argmin(dist))
        if dist[nearest] <= PICK_RADIUS_PX:
            self.show_point(nearest)
        else:
            self.click_plane(point.x(), point.y())

    def show_point(self, position: int) -> None:
        """Image and reconstruction of the position-th point of the map."""
        dataset, index = self.source.dataset, self.indices[position].reshape(1)
        self.selected_index = int(index)
        self.probe_code = None

        def job(model):
            x = dataset.images_at(index)
            y = dataset.labels_at(index) if model.is_conditional else None
            return tile(np.concatenate([to_uint8(x), to_uint8(explore.reconstructions(model, x, y))]), 2)

        self.probe_title.setText(f"test #{int(index)}: image | reconstruction")
        self.marker.setData(x=[self.embedding.coords[position, 0]], y=[self.embedding.coords[position, 1]])
        self.submit("probe", job, self._show_probe)

    def click_plane(self, x: float, y: float) -> None:
        """Decode the code at plane point (x, y) (linear embeddings only)."""
        emb = self.embedding
        if emb is None or not emb.invertible:
            self.probe_title.setText("t-SNE points cannot be decoded: switch to PCA or two dims")
            return
        code = emb.to_code([[x, y]])[0]
        self.probe_code = None
        self.selected_index = None
        label = self.decode_label()

        def job(model):
            return to_uint8(explore.decode_codes(model, code, label if model.is_conditional else None))[0], code

        self.probe_title.setText(f"decoded at ({x:.2f}, {y:.2f})")
        self.marker.setData(x=[x], y=[y])
        self.submit("probe", job, self._show_decoded)

    def _show_decoded(self, result) -> None:
        image, code = result
        self.probe_code = code
        self._show_probe(image[0] if image.shape[0] == 1 else np.ascontiguousarray(image.transpose(1, 2, 0)))

    def _show_probe(self, image: np.ndarray) -> None:
        self.probe = image
        self.probe_view.set_grid(image)

    def shutdown(self) -> None:
        self.slow_runner.shutdown()
        super().shutdown()

    # --- exports -------------------------------------------------------------------------------------
    def export_png(self, path: str | Path) -> Path:
        """The decoded plane; for t-SNE (which has none) the map itself."""
        if self.manifold is None and self.embedding is not None:
            return self.export_map_png(path)
        return self.save_grid_png(self.manifold, path)

    def export_map_png(self, path: str | Path) -> Path:
        """The scatter map as shown, with its legend or colour bar."""
        if self.embedding is None:
            raise ValueError("nothing to export yet")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.plot.grab().save(str(path), "PNG"):
            raise OSError(f"could not write {path}")
        self.exported(path)
        return path

    def export_csv(self, path: str | Path) -> Path:
        if self.embedding is None:
            raise ValueError("nothing to export yet")
        values = self._color_values()
        rows = [[int(self.indices[i]), f"{c[0]:.6g}", f"{c[1]:.6g}", "" if values is None else int(values[i])]
                for i, c in enumerate(self.embedding.coords)]
        out = write_csv(path, ["index", "x", "y", self.color_combo.currentText()], rows)
        self.exported(out)
        return out

    def export_figure(self, path: str | Path) -> Path:
        return self.export_csv(path) if Path(path).suffix.lower() == ".csv" else self.export_png(path)

    def _export_png_dialog(self) -> None:
        self.export_dialog("Export decoded plane", "png", "PNG image (*.png)", self.export_png)

    def _export_map_dialog(self) -> None:
        self.export_dialog("Export latent map", "png", "PNG image (*.png)", self.export_map_png)

    def _export_csv_dialog(self) -> None:
        self.export_dialog("Export map coordinates", "csv", "CSV (*.csv)", self.export_csv)
