"""The Data dock: choose a dataset (a name with options, a file, a folder of images) and see what Start will train.

Reads from AppState: `dataset_changed` (the thumbnails, the summary, the note when a fallback stands in, and for a
factor world one strip per factor rendered from the dataset: that factor varied, the others fixed),
`busy_changed` ("loading …" while the job thread loads), `dataset_spec`.
Changes in AppState: `load_dataset` (off the GUI thread; a newer choice supersedes a pending one) and the
remembered "data" folder of the file dialogs.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from engine.data import available_datasets
from engine.data.worlds import factor_strips
from engine.imaging import tile
from gui.state import AppState, DatasetView, Job
from gui.widgets import ImageGrid
from gui.widgets.image_grid import GridView

STRIP_LENGTH = 8
STRIP_ROW_PX = 30


class DataDock(QWidget):
    """The dataset combo (editable), Open file… / Open folder…, a strip of samples and the dataset's summary."""

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        layout = QVBoxLayout(self)
        self.dataset_combo = QComboBox()
        self.dataset_combo.setObjectName("datasetCombo")
        self.dataset_combo.setEditable(True)
        self.dataset_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.dataset_combo.setToolTip("A dataset name with options (e.g. dsprites?subset=20000, digits?size=16) "
                                      "or a path to a file or folder of images")
        for entry in available_datasets():
            name = entry["name"]
            status = entry.get("status", "")
            self.dataset_combo.addItem(name if status != "missing" else f"{name} (missing)", name)
            tip = entry.get("description", "")
            if entry.get("hint"):
                tip += "\n" + entry["hint"]
            self.dataset_combo.setItemData(self.dataset_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.dataset_combo.activated.connect(self._chosen)
        self.dataset_combo.lineEdit().editingFinished.connect(self._edited)
        layout.addWidget(self.dataset_combo)
        buttons = QHBoxLayout()
        open_file = QPushButton("Open file…")
        open_file.setObjectName("openDatasetFileButton")
        open_file.setToolTip(".npy / .npz arrays, IDX files or an image")
        open_file.clicked.connect(self._open_file_dialog)
        open_folder = QPushButton("Open folder…")
        open_folder.setObjectName("openDatasetFolderButton")
        open_folder.setToolTip("A folder of images (subfolders become labels)")
        open_folder.clicked.connect(self._open_folder_dialog)
        buttons.addWidget(open_file)
        buttons.addWidget(open_folder)
        layout.addLayout(buttons)
        self.thumbnails = ImageGrid()
        self.thumbnails.setObjectName("datasetThumbnails")
        self.thumbnails.setMinimumHeight(90)
        self.thumbnails.setMaximumHeight(120)
        layout.addWidget(self.thumbnails)
        self.factor_strips = GridView()
        self.factor_strips.setObjectName("factorStrips")
        self.factor_strips.setToolTip("What each ground-truth factor means: one row per factor, that factor "
                                      "stepped through its values while the others stay fixed")
        self.factor_strips.setMinimumHeight(120)
        self.factor_strips.setVisible(False)
        self.factor_strip_names: tuple[str, ...] = ()
        layout.addWidget(self.factor_strips, 1)
        self.dataset_summary = QLabel("no dataset loaded")
        self.dataset_summary.setObjectName("datasetSummary")
        self.dataset_summary.setWordWrap(True)
        self.dataset_summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.dataset_summary)
        layout.addStretch(1)
        state.dataset_changed.connect(self._show)
        state.busy_changed.connect(self._show_busy)

    @property
    def spec(self) -> str:
        """What the combo names now (what Start will ask for)."""
        return self.dataset_combo.currentText().strip()

    def set_spec(self, spec: str) -> None:
        self.dataset_combo.setEditText(spec)

    def open(self, spec: str) -> Job | None:
        """Load `spec` (with the preset's fallbacks while the dock still names the preset's dataset)."""
        spec = str(spec).strip()
        if not spec:
            return None
        self.set_spec(spec)
        return self.state.load_dataset(spec, self.state.resolved_fallback(spec))

    def _chosen(self, index: int) -> None:
        self.open(self.dataset_combo.itemData(index) or self.dataset_combo.itemText(index))

    def _edited(self) -> None:
        spec = self.spec
        if spec and spec != self.state.dataset_spec and not self.state.is_busy("dataset"):
            self.open(spec)

    def _open_file_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open dataset file", self.state.folder("data"),
                                              "Datasets (*.npy *.npz *.gz *-ubyte *.png *.jpg);;All files (*)")
        if path:
            self.state.remember_folder("data", path)
            self.open(path)

    def _open_folder_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a folder of images", self.state.folder("data"))
        if path:
            self.state.remember_folder("data", path)
            self.open(path)

    def _show(self, view: DatasetView) -> None:
        """A new current dataset: its name in the combo, thumbnails, summary, and the fallback note."""
        self.set_spec(view.spec)
        self.thumbnails.set_image(view.thumbnails)
        note = f"<br><i>{view.note}</i>" if view.note else ""
        self.dataset_summary.setText(view.summary_html + note)
        self._show_factor_strips(view.dataset)

    def _show_factor_strips(self, dataset) -> None:
        """One labelled row per factor (a few ms: K × 8 images composed by the dataset)."""
        strips = factor_strips(dataset, STRIP_LENGTH) if dataset is not None else None
        self.factor_strip_names = strips[1] if strips else ()
        self.factor_strips.setVisible(strips is not None)
        if strips is None:
            self.factor_strips.set_grid(None)
            return
        images, names = strips
        pad = 1
        height = images.shape[2] + pad
        ticks = [(pad + k * height + images.shape[2] / 2, name) for k, name in enumerate(names)]
        self.factor_strips.set_grid(tile(images, ncols=STRIP_LENGTH, pad=pad), row_ticks=ticks)
        self.factor_strips.setMinimumHeight(STRIP_ROW_PX * len(names) + 16)  # every row readable; the dock scrolls

    def _show_busy(self, _text: str) -> None:
        if self.state.is_busy("dataset"):
            self.dataset_summary.setText(f"<i>{self.state.busy['dataset']}</i>")
