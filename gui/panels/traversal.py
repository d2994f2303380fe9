"""Latent traversal: the β-VAE disentanglement probe. One row per latent dim (ordered by KL), live sliders,
GIF export; VQ-VAE codes are traversed through the nearest codebook entries at a chosen spatial position."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleSlider

from engine import explore
from engine.imaging import save_gif, tile, to_uint8
from gui.panels.common import PanelBase, button, cell_of, grid_ticks, upscale, write_csv
from gui.widgets import GridView, ToolRow

GRID_FOLLOW_MS = 150
THUMBS = 16
SLIDER_TICKS = 1000


class TraversalPanel(PanelBase):
    """Rows = latent dims sorted by KL (largest first), columns = values across ±R prior std (AE: 1st–99th pct)."""

    def __init__(self, source, parent=None) -> None:
        super().__init__(source, parent)
        self.stats: explore.LatentStats | None = None
        self.base_z: np.ndarray | None = None
        self.current_z: np.ndarray | None = None
        self.grid: np.ndarray | None = None
        self.single: np.ndarray | None = None
        self.shown_dims: list[int] = []
        self.thumb_indices = torch.zeros(0, dtype=torch.long)
        self.base_index = 0
        self.is_conditional = False
        self.discrete = False
        self.sliders: dict[int, QLabeledDoubleSlider] = {}
        self._build()

    # --- widgets -------------------------------------------------------------------------------------
    def _build(self) -> None:
        root = QVBoxLayout(self.content)
        root.setContentsMargins(0, 0, 0, 0)
        controls = ToolRow()
        self.base_combo = QComboBox()
        self.base_combo.addItems(["Data image", "Prior mean", "Random prior draw"])
        self.base_combo.setToolTip("The code z every row starts from; a row changes one coordinate of it.")
        self.base_combo.currentIndexChanged.connect(self._base_mode_changed)
        self.class_combo = QComboBox()
        self.class_combo.setToolTip("Class y the conditional decoder p(x|z,y) is given.")
        self.class_combo.currentIndexChanged.connect(self._class_changed)
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(3, 21)
        self.steps_spin.setValue(10)
        self.steps_spin.setToolTip("Number of values per row")
        self.steps_spin.valueChanged.connect(self.request_grid)
        self.radius_spin = QDoubleSpinBox()
        self.radius_spin.setRange(0.5, 8.0)
        self.radius_spin.setSingleStep(0.5)
        self.radius_spin.setValue(explore.DEFAULT_RADIUS)
        self.radius_spin.setToolTip("R: rows span z_j ∈ [−R, R] prior standard deviations (variational models)")
        self.radius_spin.valueChanged.connect(self.rebuild)
        self.hide_inactive = QCheckBox("Hide inactive")
        self.hide_inactive.setToolTip(f"Hide dims whose KL(q(z_j|x) ‖ N(0,1)) < {explore.INACTIVE_KL_NATS} nats "
                                      "(otherwise they are dimmed)")
        self.hide_inactive.toggled.connect(self.request_grid)
        for label, widget in (("Base", self.base_combo), ("Class", self.class_combo), ("Steps", self.steps_spin),
                              ("±R", self.radius_spin)):
            controls.add_labeled(label, widget)
        controls.add(self.hide_inactive)
        controls.add(button("Reset to base", self.reset_to_base, "Put every slider back to the base code"))
        controls.add(button("Export PNG…", self._export_png_dialog),
                     button("Export GIF…", self._export_gif_dialog, "Animated traversal of all shown dims"),
                     button("Export CSV…", self._export_csv_dialog, "KL, variance and bounds per dim"))
        root.addWidget(controls)

        self.thumbs_view = GridView(axes=False)
        self.thumbs_view.setFixedHeight(56)
        self.thumbs_view.setToolTip("Click an image to use its code as the base")
        self.thumbs_view.clicked.connect(self._thumb_clicked)
        root.addWidget(self.thumbs_view)

        self.pages = QStackedWidget()
        root.addWidget(self.pages, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        self.grid_view = GridView()
        split.addWidget(self.grid_view)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        self.single_view = GridView(axes=False)
        self.single_view.setMinimumSize(180, 180)
        right_layout.addWidget(self.single_view, 2)
        self.slider_box = QWidget()
        self.slider_layout = QGridLayout(self.slider_box)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.slider_box)
        right_layout.addWidget(scroll, 3)
        split.addWidget(right)
        split.setSizes([640, 320])
        self.pages.addWidget(split)

        vq = QWidget()
        vq_layout = QVBoxLayout(vq)
        self.vq_text = QLabel(
            "This model's code is discrete: each spatial position holds one of K codebook vectors, so there is no "
            "continuous axis to slide along. Instead, pick a code position: the row shows the chosen image decoded "
            "with the index there swapped for the nearest codebook entries (the current one first).")
        self.vq_text.setWordWrap(True)
        vq_layout.addWidget(self.vq_text)
        vq_controls = QHBoxLayout()
        self.position_spin, self.k_spin = QSpinBox(), QSpinBox()
        self.k_spin.setRange(2, 32)
        self.k_spin.setValue(10)
        for label, w in (("Position", self.position_spin), ("Entries", self.k_spin)):
            vq_controls.addWidget(QLabel(label))
            vq_controls.addWidget(w)
            w.valueChanged.connect(self.request_grid)
        vq_controls.addStretch(1)
        vq_layout.addLayout(vq_controls)
        self.vq_view = GridView()
        vq_layout.addWidget(self.vq_view, 1)
        self.pages.addWidget(vq)

        self._grid_timer = QTimer(self)
        self._grid_timer.setSingleShot(True)
        self._grid_timer.setInterval(GRID_FOLLOW_MS)
        self._grid_timer.timeout.connect(self.request_grid)

    # --- model changes -------------------------------------------------------------------------------
    def rebuild(self) -> None:
        dataset, indices, radius = self.source.dataset, self.test_indices(), self.radius_spin.value()

        def job(model):
            thumbs = indices[:THUMBS]
            images = to_uint8(dataset.images_at(thumbs))
            if model.latent_kind == "discrete":
                return model, None, thumbs, images, explore.code_positions(model)
            stats = explore.latent_stats(model, dataset, indices, n=1000, radius=radius)
            return model, stats, thumbs, images, None

        self.submit("rebuild", job, self._rebuilt)

    def refresh(self) -> None:
        """Newer live weights: recompute the KL order and bounds, keep the user's base and slider values."""
        self.rebuild()

    def _rebuilt(self, result) -> None:
        model, stats, thumbs, images, positions = result
        self.discrete = stats is None
        conditional = bool(model.is_conditional)
        if conditional != self.is_conditional or self.class_combo.count() != max(0, model.num_classes):
            self.class_combo.blockSignals(True)
            self.class_combo.clear()
            names = self.source.dataset.class_names or tuple(str(i) for i in range(model.num_classes))
            if conditional:
                self.class_combo.addItems(list(names)[: model.num_classes])
            self.class_combo.blockSignals(False)
        self.is_conditional = conditional
        self.class_combo.setEnabled(conditional)
        self.thumb_indices = thumbs
        if len(thumbs) and self.base_index not in thumbs.tolist():
            self.base_index = int(thumbs[0])  # the base is one of the images shown, outlined
        self.thumbs_view.set_grid(tile(images, len(images)))
        self._thumb_cell = images.shape[2:]
        self._highlight_base()
        if self.discrete:
            self.pages.setCurrentIndex(1)
            self.position_spin.setRange(0, positions - 1)
            self.base_combo.setEnabled(False)
            self.request_grid()
            return
        self.pages.setCurrentIndex(0)
        self.base_combo.setEnabled(True)
        keep = self.stats is not None and self.current_z is not None and self.current_z.size == stats.low.size
        self.stats = stats
        self._build_sliders()
        if keep:
            self._sync_sliders()
            self.request_grid()
            self.request_single()
        else:
            self._base_mode_changed()

    def _build_sliders(self) -> None:
        stats = self.stats
        while self.slider_layout.count():
            w = self.slider_layout.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        self.sliders = {}
        active = stats.active()
        for row, d in enumerate(stats.order):
            d = int(d)
            score = (f"{stats.kl_per_dim[d]:.2f} nats" if stats.kl_per_dim is not None
                     else f"var {stats.variance[d]:.2g}")
            label = QLabel(f"z{d}  {score}")
            label.setEnabled(bool(active[d]))
            slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
            slider.setRange(float(min(stats.low[d], -1e-3)), float(max(stats.high[d], 1e-3)))
            span = float(stats.high[d] - stats.low[d])
            slider.setSingleStep(span / 100)
            slider.setDecimals(2)
            slider.setToolTip(f"z{d}: drag to decode a single image live")
            slider.valueChanged.connect(partial(self._slider_moved, d))
            self.slider_layout.addWidget(label, row, 0)
            self.slider_layout.addWidget(slider, row, 1)
            self.sliders[d] = slider

    def _sync_sliders(self) -> None:
        for d, slider in self.sliders.items():
            slider.blockSignals(True)
            low, high = slider.minimum(), slider.maximum()
            slider.setValue(float(np.clip(self.current_z[d], low, high)))
            slider.blockSignals(False)

    # --- base code -----------------------------------------------------------------------------------
    def _base_mode_changed(self, *_args) -> None:
        self._highlight_base()
        if self.stats is None:
            return
        mode = self.base_combo.currentIndex()
        stats = self.stats
        if mode == 0:
            dataset, index = self.source.dataset, int(self.base_index)
            label = self.label_value()

            def job(model):
                images = dataset.images_at(torch.tensor([index]))
                y = dataset.labels_at(torch.tensor([index])) if model.is_conditional else None
                if y is not None and label is not None:
                    y = torch.tensor([label])
                return explore.encode_means(model, images, y)[0]

            self.submit("base", job, self._set_base)
            return
        if mode == 1:
            base = np.zeros_like(stats.low) if self._variational() else stats.means.mean(0)
        else:
            rng = np.random.default_rng()
            if self._variational():
                base = rng.standard_normal(stats.low.size).astype(np.float32)
            else:
                base = stats.means.mean(0) + rng.standard_normal(stats.low.size) * stats.means.std(0)
        self._set_base(base.astype(np.float32))

    def _variational(self) -> bool:
        return bool(self.stats is not None and self.stats.kl_per_dim is not None)

    def _set_base(self, z: np.ndarray) -> None:
        self.base_z = np.asarray(z, dtype=np.float32).copy()
        self.current_z = self.base_z.copy()
        self._sync_sliders()
        self.request_grid()
        self.request_single()

    def reset_to_base(self) -> None:
        if self.base_z is None:
            return
        self.current_z = self.base_z.copy()
        self._sync_sliders()
        self.request_grid()
        self.request_single()

    def pick_image(self, position: int) -> None:
        """Use the code of the position-th thumbnail as the base (what a thumbnail click does)."""
        if not 0 <= position < len(self.thumb_indices):
            return
        self.base_index = int(self.thumb_indices[position])
        self._highlight_base()
        if self.base_combo.currentIndex() != 0:
            self.base_combo.setCurrentIndex(0)
        elif self.discrete:
            self.request_grid()
        else:
            self._base_mode_changed()

    def _highlight_base(self) -> None:
        """Outline the thumbnail whose code is the base (none when the base is the prior mean or a draw)."""
        positions = (self.thumb_indices == self.base_index).nonzero().flatten().tolist() \
            if len(self.thumb_indices) else []
        if self.base_combo.currentIndex() != 0 or not positions or not hasattr(self, "_thumb_cell"):
            self.thumbs_view.set_highlight(None)
            return
        h, w = self._thumb_cell
        self.thumbs_view.set_highlight((positions[0] * (w + 1) + 0.5, 0.5, w + 1, h + 1))

    def _thumb_clicked(self, x: float, y: float) -> None:
        h, w = self._thumb_cell
        _, col = cell_of(x, y, h, w, 1)
        self.pick_image(col)

    def label_value(self) -> int | None:
        return self.class_combo.currentIndex() if self.is_conditional and self.class_combo.count() else None

    def _class_changed(self, *_args) -> None:
        if self.stats is None and not self.discrete:
            return
        self.request_grid()
        self.request_single()

    # --- sliders and decoding ------------------------------------------------------------------------
    def _slider_moved(self, dim: int, value: float) -> None:
        if self.current_z is None:
            return
        self.current_z[dim] = float(value)
        self.request_single()
        if not self._grid_timer.isActive():
            self._grid_timer.start()

    def set_slider(self, dim: int, value: float) -> None:
        """Move one dim's slider (as a drag would)."""
        self.sliders[dim].setValue(float(value))

    def request_single(self) -> None:
        if self.current_z is None or self.discrete:
            return
        z, label = self.current_z.copy(), self.label_value()

        def job(model):
            return to_uint8(explore.decode_codes(model, z, label))[0]

        self.submit("single", job, self._show_single)

    def _show_single(self, image: np.ndarray) -> None:
        self.single = image[0] if image.shape[0] == 1 else np.ascontiguousarray(image.transpose(1, 2, 0))
        self.single_view.set_grid(self.single)

    def visible_dims(self) -> list[int]:
        order = [int(d) for d in self.stats.order]
        if self.hide_inactive.isChecked():
            active = self.stats.active()
            shown = [d for d in order if active[d]]
            return shown or order[:1]
        return order

    def request_grid(self, *_args) -> None:
        if self.discrete:
            self._request_codebook()
            return
        if self.current_z is None or self.stats is None:
            return
        dims = self.visible_dims()
        values = explore.traversal_values(self.stats, dims, self.steps_spin.value())
        z, label = self.current_z.copy(), self.label_value()

        def job(model):
            return explore.traversal_grid(model, z, dims, values, label), dims, values, model.data_shape

        self.submit("grid", job, self._show_grid)

    def _show_grid(self, result) -> None:
        grid, dims, values, shape = result
        stats = self.stats
        active = stats.active()
        _, h, w = shape
        grid = grid.copy()
        for row, d in enumerate(dims):
            if not active[d]:
                top = 1 + row * (h + 1)
                grid[top:top + h] = (grid[top:top + h] * 0.35).astype(np.uint8)
        labels = []
        for d in dims:
            score = (f"{stats.kl_per_dim[d]:.2f} nats" if stats.kl_per_dim is not None
                     else f"var {stats.variance[d]:.2g}")
            labels.append(f"z{d}  {score}" + ("" if active[d] else " (inactive)"))
        cols = values.shape[1]
        col_labels = [f"{v:.1f}" for v in values[0]] if self._variational() else [
            f"{p:.0f}%" for p in np.linspace(1, 99, cols)]
        self.grid = grid
        self.shown_dims = list(dims)
        self.grid_view.set_grid(grid, grid_ticks(len(dims), h, 1, labels), grid_ticks(cols, w, 1, col_labels))
        self.grid_view.setToolTip("Rows: latent dims by KL (largest first); columns: the traversed value "
                                  + ("in prior std" if self._variational() else "as a percentile on the data"))

    def _request_codebook(self) -> None:
        dataset, index = self.source.dataset, int(self.base_index)
        position, k, label = self.position_spin.value(), self.k_spin.value(), self.label_value()

        def job(model):
            image = dataset.images_at(torch.tensor([index]))
            return tile(explore.codebook_traversal(model, image, position, k, label), k)

        self.submit("grid", job, self._show_codebook)

    def _show_codebook(self, grid: np.ndarray) -> None:
        self.grid = grid
        self.vq_view.set_grid(grid)

    # --- exports -------------------------------------------------------------------------------------
    def export_png(self, path: str | Path) -> Path:
        return self.save_grid_png(self.grid, path)

    def gif_writer(self, path: str | Path, frame_ms: int = 120, model: Any = None) -> Callable[[], Path]:
        """What writes the animated traversal (every shown dim side by side, forth and back) from the latest
        weights; the returned function touches no widget, so it may run off the GUI thread."""
        if self.current_z is None or self.stats is None:
            raise ValueError("nothing to export yet")
        z, label, dims = self.current_z.copy(), self.label_value(), self.visible_dims()
        values = explore.traversal_values(self.stats, dims, max(self.steps_spin.value(), 12))

        def write() -> Path:
            frames = explore.traversal_frames(model if model is not None else self.model(), z, dims, values, label)
            return save_gif([upscale(f, 256) for f in frames], path, frame_ms=frame_ms)

        return write

    def export_gif(self, path: str | Path, frame_ms: int = 120) -> Path:
        """Write the animated traversal now (scripts and tests; the buttons write it off the GUI thread)."""
        out = self.gif_writer(path, frame_ms, model=self.source.snapshot())()
        self.exported(out)
        return out

    def export_in_background(self, path: str | Path) -> bool:
        """Ctrl+E: a GIF is encoded off the GUI thread (True); other formats are not handled here (False)."""
        if Path(path).suffix.lower() != ".gif":
            return False
        self.write_in_background(self.gif_writer(path))
        return True

    def export_csv(self, path: str | Path) -> Path:
        if self.stats is None:
            raise ValueError("nothing to export yet")
        s = self.stats
        active = s.active()
        rows = [[int(d), "" if s.kl_per_dim is None else f"{s.kl_per_dim[d]:.6g}", f"{s.variance[d]:.6g}",
                 f"{s.low[d]:.6g}", f"{s.high[d]:.6g}", int(active[d]),
                 "" if self.current_z is None else f"{self.current_z[d]:.6g}"] for d in s.order]
        out = write_csv(path, ["dim", "kl_nats", "code_variance", "low", "high", "active", "value"], rows)
        self.exported(out)
        return out

    def export_figure(self, path: str | Path) -> Path:
        suffix = Path(path).suffix.lower()
        if suffix == ".gif":
            return self.export_gif(path)
        if suffix == ".csv":
            return self.export_csv(path)
        return self.export_png(path)

    def _export_png_dialog(self) -> None:
        self.export_dialog("Export traversal grid", "png", "PNG image (*.png)", self.export_png)

    def _export_gif_dialog(self) -> None:
        self.export_dialog("Export traversal GIF", "gif", "Animated GIF (*.gif)",
                           lambda path: self.write_in_background(self.gif_writer(path)))

    def _export_csv_dialog(self) -> None:
        self.export_dialog("Export latent statistics", "csv", "CSV (*.csv)", self.export_csv)

