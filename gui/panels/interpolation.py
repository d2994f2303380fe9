"""Interpolation: decoded latent paths between pairs of images (lerp or slerp) above the pixel cross-fade."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QSpinBox, QVBoxLayout

from engine import explore
from engine.imaging import save_gif, tile, to_uint8
from gui.panels.common import PanelBase, button, grid_ticks, upscale
from gui.widgets import GridView, ToolRow


class InterpolationPanel(PanelBase):
    """Rows come in twos per pair: the decoded latent path A→B, then the pixel-space cross-fade."""

    def __init__(self, source, parent=None) -> None:
        super().__init__(source, parent)
        self.grid: np.ndarray | None = None
        self.path_images: np.ndarray | None = None  # uint8 pairs×steps×C×H×W
        self.pairs: list[tuple[int, int]] = []
        self._rng = np.random.default_rng(0)
        root = QVBoxLayout(self.content)
        root.setContentsMargins(0, 0, 0, 0)
        controls = ToolRow()
        self.a_spin, self.b_spin, self.pairs_spin, self.steps_spin = QSpinBox(), QSpinBox(), QSpinBox(), QSpinBox()
        self.a_spin.setToolTip("A: position in the test set")
        self.b_spin.setToolTip("B: position in the test set")
        self.pairs_spin.setRange(1, 8)
        self.pairs_spin.setValue(3)
        self.steps_spin.setRange(2, 20)
        self.steps_spin.setValue(10)
        self.mode_combo = QComboBox()
        self.mode_combo.addItems(["lerp", "slerp"])
        self.mode_combo.setToolTip("lerp: (1−t)a + tb;  slerp: sin((1−t)Ω)/sinΩ·a + sin(tΩ)/sinΩ·b, cosΩ = â·b̂ "
                                   "(stays at the typical radius of a Gaussian prior)")
        for label, w in (("A", self.a_spin), ("B", self.b_spin), ("Pairs", self.pairs_spin),
                         ("Steps", self.steps_spin), ("Path", self.mode_combo)):
            controls.add_labeled(label, w)
        self.a_spin.valueChanged.connect(self._first_pair_changed)
        self.b_spin.valueChanged.connect(self._first_pair_changed)
        self.pairs_spin.valueChanged.connect(self._pairs_count_changed)
        self.steps_spin.valueChanged.connect(self.request)
        self.mode_combo.currentIndexChanged.connect(self.request)
        self.blend_check = QCheckBox("Blend labels")
        self.blend_check.setToolTip("Conditional models: decode the path with y = (1−t)·onehot(y_A) + t·onehot(y_B) "
                                    "instead of holding A's label")
        self.blend_check.toggled.connect(self.request)
        controls.add(self.blend_check)
        controls.add(button("Random pairs", self.random_pairs))
        controls.add(button("Export PNG…", self._export_png_dialog))
        controls.add(button("Export GIF…", self._export_gif_dialog, "The decoded paths, frame by frame"))
        root.addWidget(controls)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        root.addWidget(self.note)
        self.view = GridView()
        root.addWidget(self.view, 1)

    def rebuild(self) -> None:
        n = len(self.test_indices())
        for spin in (self.a_spin, self.b_spin):
            spin.blockSignals(True)
            spin.setRange(0, max(0, n - 1))
            spin.blockSignals(False)
        if not self.pairs:
            self.a_spin.blockSignals(True)
            self.b_spin.blockSignals(True)
            self.a_spin.setValue(0)
            self.b_spin.setValue(min(1, n - 1))
            self.a_spin.blockSignals(False)
            self.b_spin.blockSignals(False)
            self.pairs = [(0, min(1, n - 1))]
            self._pairs_count_changed()
        else:
            self.pairs = [(min(a, n - 1), min(b, n - 1)) for a, b in self.pairs]
            self.request()

    def refresh(self) -> None:
        self.request()

    def _first_pair_changed(self, *_args) -> None:
        if self.pairs:
            self.pairs[0] = (self.a_spin.value(), self.b_spin.value())
        self.request()

    def _pairs_count_changed(self, *_args) -> None:
        n = len(self.test_indices())
        want = self.pairs_spin.value()
        while len(self.pairs) < want:
            self.pairs.append(tuple(int(v) for v in self._rng.choice(n, 2, replace=False)))
        del self.pairs[want:]
        self.request()

    def set_pairs(self, pairs: list[tuple[int, int]]) -> None:
        """Positions in the test set; the first pair also shows in the A/B boxes."""
        self.pairs = [(int(a), int(b)) for a, b in pairs]
        for spin, v in ((self.a_spin, self.pairs[0][0]), (self.b_spin, self.pairs[0][1]),
                        (self.pairs_spin, len(self.pairs))):
            spin.blockSignals(True)
            spin.setValue(v)
            spin.blockSignals(False)
        self.request()

    def random_pairs(self) -> None:
        n = len(self.test_indices())
        self.set_pairs([tuple(self._rng.choice(n, 2, replace=False)) for _ in range(self.pairs_spin.value())])

    def request(self, *_args) -> None:
        if not self.pairs or self.source.dataset is None:
            return
        dataset, test = self.source.dataset, self.test_indices()
        ia = test[torch.tensor([a for a, _ in self.pairs])]
        ib = test[torch.tensor([b for _, b in self.pairs])]
        steps, mode = self.steps_spin.value(), self.mode_combo.currentText()
        blend = self.blend_check.isChecked()

        def job(model):
            xa, xb = dataset.images_at(ia), dataset.images_at(ib)
            if model.latent_kind != "continuous":
                raise ValueError(f"{model.family} has a discrete code: there is no continuous path between two "
                                 "codes (see the Traversal tab for its codebook)")
            ya = dataset.labels_at(ia) if model.is_conditional else None
            yb = dataset.labels_at(ib) if model.is_conditional else None
            blend_ok = blend and getattr(model, "accepts_soft_labels", False)
            path = to_uint8(explore.interpolate(model, xa, xb, steps, mode, ya, yb, blend_labels=blend_ok))
            fade = to_uint8(explore.crossfade(xa, xb, steps))
            shape = path.shape[1:]
            rows = np.stack([path.reshape(-1, steps, *shape), fade.reshape(-1, steps, *shape)], 1)
            held = "blended from A's to B's" if blend_ok else "A's label held"
            return path.reshape(-1, steps, *shape), rows.reshape(-1, *shape), model.is_conditional and held

        self.submit("path", job, self._show)

    def _show(self, result) -> None:
        path, rows, conditional = result
        steps = path.shape[1]
        _, h, w = path.shape[2:]
        self.path_images = path
        self.grid = tile(rows, steps)
        labels = []
        for a, b in self.pairs:
            labels += [f"#{a} → #{b} latent", "pixel cross-fade"]
        t = [f"t={v:.2f}" for v in np.linspace(0, 1, steps)]
        self.view.set_grid(self.grid, grid_ticks(len(labels), h, 1, labels), grid_ticks(steps, w, 1, t))
        self.note.setText(f"Conditional model: A is encoded with its label, B with its own, and the path is decoded "
                          f"with {conditional}." if conditional else "")

    # --- exports -------------------------------------------------------------------------------------
    def export_png(self, path: str | Path) -> Path:
        return self.save_grid_png(self.grid, path)

    def gif_writer(self, path: str | Path, frame_ms: int = 150) -> Callable[[], Path]:
        """What writes the decoded paths as an animated GIF (forth and back); safe off the GUI thread."""
        if self.path_images is None:
            raise ValueError("nothing to export yet")
        images = self.path_images

        def write() -> Path:
            pairs, steps = images.shape[:2]
            frames = [upscale(tile(images[:, s], pairs), 256) for s in range(steps)]
            return save_gif(frames + frames[-2:0:-1], path, frame_ms=frame_ms)

        return write

    def export_gif(self, path: str | Path, frame_ms: int = 150) -> Path:
        """Write the GIF now (scripts and tests; the button writes it off the GUI thread)."""
        out = self.gif_writer(path, frame_ms)()
        self.exported(out)
        return out

    def export_in_background(self, path: str | Path) -> bool:
        """Ctrl+E: a GIF is encoded off the GUI thread (True); other formats are not handled here (False)."""
        if Path(path).suffix.lower() != ".gif":
            return False
        self.write_in_background(self.gif_writer(path))
        return True

    def export_figure(self, path: str | Path) -> Path:
        return self.export_gif(path) if Path(path).suffix.lower() == ".gif" else self.export_png(path)

    def _export_png_dialog(self) -> None:
        self.export_dialog("Export interpolation", "png", "PNG image (*.png)", self.export_png)

    def _export_gif_dialog(self) -> None:
        self.export_dialog("Export interpolation GIF", "gif", "Animated GIF (*.gif)",
                           lambda path: self.write_in_background(self.gif_writer(path)))
