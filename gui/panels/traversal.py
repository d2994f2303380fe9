"""Latent traversal: the β-VAE disentanglement probe. One row per latent dim (ordered by KL), live sliders,
GIF export; VQ-VAE codes are traversed through the nearest codebook entries at a chosen spatial position.

Rows say which ground-truth factor each latent has become (`z3 · posX 0.62 · 1.23 nats`: best-matching factor and
its normalised MI, from the run's latest live probe, or measured once off the GUI thread for a fixed model). Rows
keep their order while training refreshes them: they re-sort by KL only on "Sort by KL", when training pauses or
stops, or for a new model — and never while a slider is held. Exports are labelled figures at a chosen cell size.
"""

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
from engine import probe as live_probe
from engine.imaging import save_gif, save_png, tile, to_uint8
from gui.panels.common import PanelBase, button, cell_of, grid_ticks, write_csv
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
        self.slider_labels: dict[int, QLabel] = {}
        self.row_order: list[int] = []  # the rows as shown; changes only on an explicit or a settled re-sort
        self.match = None  # DisentanglementProbe: which factor each latent has become (None: unknown / no factors)
        self._resort = True
        self._new_model = True  # the next statistics are a different model's: the base is encoded afresh
        self._match_cache: tuple[int, object] | None = None
        self._cell_h = 0
        self._build()
        source.probe_updated.connect(self._probe_updated)
        source.settled.connect(self.sort_by_kl)

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
        self.sort_button = button("Sort by KL", self.sort_by_kl, "Re-order the rows by KL now (they also re-sort "
                                                               "when training pauses or stops, never on their own)")
        controls.add(self.sort_button)
        self.cell_spin = QSpinBox()
        self.cell_spin.setRange(16, 512)
        self.cell_spin.setValue(64)
        self.cell_spin.setPrefix("cell ")
        self.cell_spin.setSuffix(" px")
        self.cell_spin.setToolTip("Image size in exported PNG/GIF figures (rows labelled with latent, KL and "
                                  "matched factor; the value axis below)")
        controls.add(self.cell_spin)
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
        if not self.source.is_live and live_probe.unavailable_reason(dataset, None) is None:
            self._request_match(dataset)

    def _request_match(self, dataset) -> None:
        """A fixed model (checkpoint, finished run): measure once which factor each latent has become."""
        generation = self.source.generation

        def job(model):
            cached = self._match_cache
            if cached is not None and cached[0] == generation:
                return cached[1]
            if live_probe.unavailable_reason(dataset, model) is not None:
                return None
            measured = live_probe.FactorProbe(dataset).measure(model, self.source.step)
            self._match_cache = (generation, measured)
            return measured

        self.submit("match", job, self._set_match)

    def _set_match(self, probe) -> None:
        self.match = probe
        self._relabel_rows()

    def _probe_updated(self) -> None:
        if self.source.is_live:
            self._set_match(self.source.latest_probe)

    def _on_source_changed(self) -> None:
        """A different model (or the run's final weights): its rows start sorted by KL and the base image is
        encoded by it — the sliders, *Reset to base* and exports never keep the previous model's code."""
        self._resort = True
        self._new_model = True
        self.base_z = self.current_z = None  # until the new model has encoded the base: nothing stale to export
        self.slider_box.setEnabled(False)
        self.match = self.source.latest_probe if self.source.is_live else None
        super()._on_source_changed()

    def sort_by_kl(self) -> None:
        """Re-order the rows by KL (largest first) at the next statistics update, which this requests."""
        self._resort = True
        if self.isVisible():
            self.rebuild()
        elif self._stale is None:
            self._stale = "rebuild"

    def _slider_held(self) -> bool:
        return any(slider.isSliderDown() for slider in self.sliders.values())

    def _slider_released(self) -> None:
        if self._resort and self.stats is not None:
            self.rebuild()

    def shutdown(self) -> None:
        if not self._shut:
            try:
                self.source.probe_updated.disconnect(self._probe_updated)
                self.source.settled.disconnect(self.sort_by_kl)
            except (RuntimeError, TypeError):
                pass
        super().shutdown()

    def refresh(self) -> None:
        """Newer live weights: recompute KL and bounds; the rows, the base and the slider values stay as they are."""
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
            self._new_model = False
            self.base_z = self.current_z = None
            self.pages.setCurrentIndex(1)
            self.position_spin.setRange(0, positions - 1)
            self.base_combo.setEnabled(False)
            self.request_grid()
            return
        self.pages.setCurrentIndex(0)
        self.base_combo.setEnabled(True)
        keep = (not self._new_model and self.stats is not None and self.current_z is not None
                and self.current_z.size == stats.low.size)
        self._new_model = False
        self.stats = stats
        new_dims = len(self.row_order) != stats.low.size
        if new_dims or (self._resort and not self._slider_held()):
            self.row_order = [int(d) for d in stats.order]
            self._resort = False
            self._build_sliders()
        else:  # live weights: same rows in the same order, fresh numbers
            self._relabel_rows()
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
        self.slider_labels = {}
        active = stats.active()
        for row, d in enumerate(self.row_order):
            label = QLabel(self.row_text(d))
            label.setEnabled(bool(active[d]))
            slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
            slider.setRange(float(min(stats.low[d], -1e-3)), float(max(stats.high[d], 1e-3)))
            span = float(stats.high[d] - stats.low[d])
            slider.setSingleStep(span / 100)
            slider.setDecimals(2)
            slider.setToolTip(f"z{d}: drag to decode a single image live")
            slider.valueChanged.connect(partial(self._slider_moved, d))
            slider.sliderReleased.connect(self._slider_released)
            self.slider_layout.addWidget(label, row, 0)
            self.slider_layout.addWidget(slider, row, 1)
            self.sliders[d] = slider
            self.slider_labels[d] = label

    def row_text(self, dim: int) -> str:
        """'z3 · posX 0.62 · 1.23 nats': the latent, the factor it matches best (when known) and its KL."""
        factor = live_probe.factor_labels(self.match, [dim])[0]
        return explore.latent_label(self.stats, dim, factor)

    def _relabel_rows(self) -> None:
        """New numbers (KL, matched factor) on the rows as they stand: nothing moves."""
        if self.stats is None:
            return
        active = self.stats.active()
        for d, label in self.slider_labels.items():
            label.setText(self.row_text(d))
            label.setEnabled(bool(active[d]))
        if self.grid is not None and self.shown_dims and not self.discrete:
            self.grid_view.set_row_ticks(self._grid_row_ticks(self.shown_dims))

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
        self.slider_box.setEnabled(True)
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
        order = list(self.row_order) or [int(d) for d in self.stats.order]
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
        cols = values.shape[1]
        col_labels, axis_title = explore.traversal_axis(stats, values)
        self.grid = grid
        self._cell_h = h
        self.shown_dims = list(dims)
        self.grid_view.set_grid(grid, self._grid_row_ticks(dims), grid_ticks(cols, w, 1, col_labels))
        self.grid_view.setToolTip("Rows: latent dims (sorted by KL, largest first, on Sort by KL or when training "
                                  f"pauses), each with the factor it matches best; columns: {axis_title}")

    def _grid_row_ticks(self, dims: list[int]) -> list[tuple[float, str]]:
        active = self.stats.active()
        labels = [self.row_text(d) + ("" if active[d] else " (inactive)") for d in dims]
        return grid_ticks(len(dims), self._cell_h, 1, labels)

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
    def _figure_labels(self, dims: list[int], values: np.ndarray) -> dict:
        """Row labels (latent · factor · KL), dimmed inactive rows, the value axis and the chosen cell size."""
        active = self.stats.active()
        col_labels, axis_title = explore.traversal_axis(self.stats, values)
        return {"row_labels": [self.row_text(d) for d in dims], "dimmed": [not bool(active[d]) for d in dims],
                "col_labels": col_labels, "axis_title": axis_title, "cell_size": self.cell_spin.value()}

    def export_png(self, path: str | Path) -> Path:
        """The shown rows as a labelled figure, rendered from the latest weights (codebook rows: the grid as is)."""
        if self.discrete:
            return self.save_grid_png(self.grid, path)
        if self.current_z is None or self.stats is None:
            raise ValueError("nothing to export yet")
        dims = self.visible_dims()
        values = explore.traversal_values(self.stats, dims, self.steps_spin.value())
        figure = explore.traversal_figure(self.source.snapshot(), self.current_z, dims, values, self.label_value(),
                                          **self._figure_labels(dims, values))
        out = save_png(figure, path)
        self.exported(out)
        return out

    def gif_writer(self, path: str | Path, frame_ms: int = 120, model: Any = None) -> Callable[[], Path]:
        """What writes the animated traversal (every shown dim, labelled, forth and back) from the latest
        weights; the returned function touches no widget, so it may run off the GUI thread."""
        if self.current_z is None or self.stats is None:
            raise ValueError("nothing to export yet")
        z, label, dims = self.current_z.copy(), self.label_value(), self.visible_dims()
        values = explore.traversal_values(self.stats, dims, max(self.steps_spin.value(), 12))
        labels = self._figure_labels(dims, values)

        def write() -> Path:
            frames = explore.traversal_figure_frames(model if model is not None else self.model(), z, dims, values,
                                                     label, **labels)
            return save_gif(frames, path, frame_ms=frame_ms)

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
                 "" if self.current_z is None else f"{self.current_z[d]:.6g}",
                 live_probe.factor_labels(self.match, [int(d)])[0]] for d in self.visible_dims()]
        out = write_csv(path, ["dim", "kl_nats", "code_variance", "low", "high", "active", "value",
                               "matched_factor"], rows)
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

