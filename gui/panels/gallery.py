"""Galleries: reconstructions next to inputs, prior samples, noisy → denoised → clean, and an anomaly view
(histogram of per-image reconstruction error −log p(x|z=μ) with the worst examples)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QLabel, QSpinBox, QSplitter, QVBoxLayout

from engine import explore
from engine.data.base import split_indices
from engine.imaging import tile, to_uint8
from gui.panels.common import PanelBase, button, grid_ticks, write_csv
from gui.panels.latent_map import shown_note, split_combo
from gui.widgets import GridView, ToolRow

VIEWS = ("Reconstructions", "Prior samples", "Denoising", "Anomalies")
PER_ROW = 12
ANOMALY_ITEMS = 2000


class GalleryPanel(PanelBase):
    def __init__(self, source, parent=None) -> None:
        super().__init__(source, parent)
        self.grid: np.ndarray | None = None
        self.errors: np.ndarray | None = None
        self.error_indices: np.ndarray | None = None
        self.worst: np.ndarray | None = None
        self.seed = 0
        root = QVBoxLayout(self.content)
        root.setContentsMargins(0, 0, 0, 0)
        controls = ToolRow()
        self.view_combo = QComboBox()
        self.view_combo.addItems(VIEWS)
        self.view_combo.currentIndexChanged.connect(self.request)
        self.count_spin = QSpinBox()
        self.count_spin.setRange(PER_ROW, 96)
        self.count_spin.setSingleStep(PER_ROW)
        self.count_spin.setValue(36)
        self.count_spin.valueChanged.connect(self.request)
        self.split_combo = split_combo("gallerySplit")
        self.split_combo.currentIndexChanged.connect(self.request)
        for label, w in (("View", self.view_combo), ("Images", self.count_spin), ("of", self.split_combo)):
            controls.add_labeled(label, w)
        controls.add(button("Resample", self.resample, "Other test images / other prior draws / other noise"))
        controls.add(button("Export PNG…", self._export_png_dialog))
        controls.add(button("Export CSV…", self._export_csv_dialog, "Per-image reconstruction error"))
        root.addWidget(controls)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        root.addWidget(self.note)
        split = QSplitter(Qt.Orientation.Vertical)
        self.hist = pg.PlotWidget(background="#1e1e1e")
        self.hist.setLabel("bottom", "reconstruction error −log p(x|z=μ) (nats)")
        self.hist.setLabel("left", "images")
        self.hist.setMenuEnabled(False)
        self.hist_curve = pg.PlotDataItem(stepMode="center", fillLevel=0, brush=(90, 150, 230, 160),
                                          pen=pg.mkPen(140, 190, 255))
        self.hist.addItem(self.hist_curve)
        self.hist.hide()
        split.addWidget(self.hist)
        self.view = GridView()
        split.addWidget(self.view)
        split.setSizes([200, 400])
        root.addWidget(split, 1)

    def rebuild(self) -> None:
        self.errors = None
        self.submit("offered", lambda model: (model.family, bool(model.can_sample), explore.is_denoising(model)),
                    self._offer_views)
        self.request()

    def _offer_views(self, result) -> None:
        """Views that do not apply to this model are disabled, with the reason as their tooltip."""
        family, can_sample, denoising = result
        reasons = {"Prior samples": None if can_sample else f"{family} has no prior to sample from (not generative)",
                   "Denoising": None if denoising else f"{family} is not a denoising autoencoder: train a DAE to "
                                                       "compare noisy → denoised → clean"}
        model = self.view_combo.model()
        for name, reason in reasons.items():
            item = model.item(VIEWS.index(name))
            item.setEnabled(reason is None)
            item.setToolTip(reason or "")
        if reasons.get(self.view_combo.currentText()):
            self.view_combo.setCurrentIndex(VIEWS.index("Reconstructions"))

    def view_offered(self, name: str) -> bool:
        return self.view_combo.model().item(VIEWS.index(name)).isEnabled()

    def refresh(self) -> None:
        self.errors = None
        self.request()

    def resample(self) -> None:
        self.seed += 1
        self.request()

    def set_view(self, name: str) -> None:
        self.view_combo.setCurrentIndex(VIEWS.index(name))

    def request(self, *_args) -> None:
        dataset = self.source.dataset
        if dataset is None:
            return
        view, count, seed = self.view_combo.currentText(), self.count_spin.value(), self.seed
        which = self.split_combo.currentData()
        test = split_indices(len(dataset), self.source.test_indices, which)
        # a message about the previous view does not outlive it; fewer images than asked are said
        self.status.setText(shown_note(len(test), count, which, "images") if view != "Prior samples" else "")
        rng = np.random.default_rng(seed)
        pick = test[np.sort(rng.choice(len(test), min(count, len(test)), replace=False))] if seed else test[:count]
        self.hist.setVisible(view == "Anomalies")

        def job(model):
            conditional = model.is_conditional
            if view == "Reconstructions":
                x = dataset.images_at(pick)
                y = dataset.labels_at(pick) if conditional else None
                return view, _interleave([to_uint8(x), to_uint8(explore.reconstructions(model, x, y))],
                                         ["input", "reconstruction"]), model.data_shape
            if view == "Prior samples":
                if not model.can_sample:
                    raise ValueError(f"{model.family} has no prior to sample from (it is not generative)")
                y = np.arange(count) % model.num_classes if conditional else None
                return view, (tile(to_uint8(explore.sample_images(model, count, y, seed)), PER_ROW), None), \
                    model.data_shape
            if view == "Denoising":
                if not explore.is_denoising(model):
                    raise ValueError(f"{model.family} is not a denoising autoencoder: train a DAE to compare "
                                     "noisy → denoised → clean")
                x = dataset.images_at(pick)
                y = dataset.labels_at(pick) if conditional else None
                noisy, denoised, clean = explore.denoise_triplets(model, x, y, seed)
                return view, _interleave([to_uint8(noisy), to_uint8(denoised), to_uint8(clean)],
                                         ["noisy", "denoised", "clean"]), model.data_shape
            items = test[:ANOMALY_ITEMS]
            x = dataset.images_at(items)
            y = dataset.labels_at(items) if conditional else None
            errors = explore.reconstruction_errors(model, x, y)
            worst = explore.worst_indices(errors, count)
            wx = x[worst]
            rec = explore.reconstructions(model, wx, None if y is None else y[worst])
            grid = _interleave([to_uint8(wx), to_uint8(rec)], ["worst input", "reconstruction"])
            return view, grid, model.data_shape, errors, items.cpu().numpy(), worst

        self.submit("gallery", job, self._show)

    def _show(self, result) -> None:
        view, (grid, labels), (_, h, _) = result[:3]
        self.grid = grid
        rows = (grid.shape[0] - 1) // (h + 1)
        ticks = grid_ticks(rows, h, 1, [labels[r % len(labels)] for r in range(rows)]) if labels else None
        self.view.set_grid(grid, ticks)
        self.note.setText("")
        if view == "Anomalies":
            errors, items, worst = result[3:]
            self.errors, self.error_indices, self.worst = errors, items, worst
            counts, edges = np.histogram(errors, bins=40)
            self.hist_curve.setData(edges, counts)
            split = {"test": "test images", "train": "training images", "both": "images"}[
                self.split_combo.currentData()]
            self.note.setText(f"{len(errors)} {split}: median error {np.median(errors):.1f} nats, "
                              f"worst {errors[worst[0]]:.1f} nats (shown below, worst first).")

    # --- exports -------------------------------------------------------------------------------------
    def export_png(self, path: str | Path) -> Path:
        return self.save_grid_png(self.grid, path)

    def export_csv(self, path: str | Path) -> Path:
        if self.errors is None:
            raise ValueError("open the Anomalies view first: it computes the per-image errors")
        rows = [[int(i), f"{e:.6g}"] for i, e in zip(self.error_indices, self.errors, strict=True)]
        out = write_csv(path, ["index", "reconstruction_error_nats"], rows)
        self.exported(out)
        return out

    def export_figure(self, path: str | Path) -> Path:
        return self.export_csv(path) if Path(path).suffix.lower() == ".csv" else self.export_png(path)

    def _export_png_dialog(self) -> None:
        self.export_dialog("Export gallery", "png", "PNG image (*.png)", self.export_png)

    def _export_csv_dialog(self) -> None:
        self.export_dialog("Export reconstruction errors", "csv", "CSV (*.csv)", self.export_csv)


def _interleave(groups: list[np.ndarray], names: list[str]) -> tuple[np.ndarray, list[str]]:
    """Rows of PER_ROW images: group 0's row, group 1's row (same items), … then the next items."""
    n = groups[0].shape[0]
    shape = groups[0].shape[1:]
    chunks = -(-n // PER_ROW)
    padded = []
    for g in groups:
        full = np.full((chunks * PER_ROW, *shape), 64, dtype=np.uint8)
        full[:n] = g
        padded.append(full.reshape(chunks, PER_ROW, *shape))
    rows = np.stack(padded, 1).reshape(-1, *shape)
    return tile(rows, PER_ROW), names
