"""The Data dock: choose a dataset (a name with options, a file, a folder of images) and see what Start will train.

Reads from AppState: `dataset_changed` (the thumbnails, the summary, skipped files, the note when a fallback
stands in, and for a factor world one strip per factor rendered from the dataset: that factor varied, the
others fixed), `busy_changed` ("loading …" while the job thread loads; when a load ends without a new
dataset — it failed — the dock shows the current dataset again), `dataset`, `dataset_spec`.
Changes in AppState: `load_dataset` (off the GUI thread; a newer choice supersedes a pending one) and the
remembered "data" folder of the file dialogs. The test split it shows is what `test_split()` gives Start.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.data import available_datasets
from engine.data.base import TEST_FLOOR_IMAGES, held_out_size
from engine.data.files import skipped_files_details, skipped_files_text
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
        split_row = QHBoxLayout()
        split_row.addWidget(QLabel("Test split"))
        self.test_split_value = QSpinBox()
        self.test_split_value.setObjectName("testSplitValue")
        self.test_split_value.setRange(0, 1_000_000)
        self.test_split_value.setValue(10)
        self.test_split_unit = QComboBox()
        self.test_split_unit.setObjectName("testSplitUnit")
        self.test_split_unit.addItem("% of images", "percent")
        self.test_split_unit.addItem("images", "count")
        tip = (f"Images held out for test scores, the latent map and galleries: a percentage or a count (0 = none). "
               f"A non-empty split is raised to min({TEST_FLOOR_IMAGES}, a fifth of the images): fewer make test "
               "scores noise.")
        for widget in (self.test_split_value, self.test_split_unit):
            widget.setToolTip(tip)
            split_row.addWidget(widget)
        self.test_split_note = QLabel("")
        self.test_split_note.setObjectName("testSplitNote")
        self.test_split_note.setWordWrap(True)  # its own line: beside the editors it was cut at 1366 px
        split_row.addStretch(1)
        self.test_split_value.valueChanged.connect(self._show_split)
        self.test_split_unit.currentIndexChanged.connect(self._split_unit_changed)
        layout.addLayout(split_row)
        layout.addWidget(self.test_split_note)
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
        self.skipped_button = QPushButton("Skipped files…")
        self.skipped_button.setObjectName("skippedDetailsButton")
        self.skipped_button.setCheckable(True)
        self.skipped_button.setToolTip("Every file that could not be read as an image, and why")
        self.skipped_details = QPlainTextEdit()
        self.skipped_details.setObjectName("skippedDetails")
        self.skipped_details.setReadOnly(True)
        self.skipped_details.setMaximumHeight(110)
        self.skipped_button.toggled.connect(self.skipped_details.setVisible)
        self.skipped_button.hide()
        self.skipped_details.hide()
        layout.addWidget(self.skipped_button)
        layout.addWidget(self.skipped_details)
        layout.addStretch(1)
        self._view: DatasetView | None = None
        self._loading = False
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

    # --- the test split -----------------------------------------------------------------------------------
    def test_split(self) -> tuple[float, int]:
        """(test_fraction, test_count) for the run's TrainConfig."""
        value = self.test_split_value.value()
        if self.test_split_unit.currentData() == "count":
            return 0.0, value
        return value / 100.0, 0

    def set_test_split(self, fraction: float, count: int = 0) -> None:
        """Show a config's split (a preset's fraction, or a count)."""
        self.test_split_unit.blockSignals(True)
        self.test_split_unit.setCurrentIndex(1 if count else 0)
        self.test_split_unit.blockSignals(False)
        self.test_split_value.setRange(0, 1_000_000 if count else 90)
        self.test_split_value.setValue(int(count) if count else int(round(fraction * 100)))
        self._show_split()

    def _split_unit_changed(self) -> None:
        """Switching unit keeps the split's size: a percentage becomes the count it gave, a count becomes 10 %."""
        counting = self.test_split_unit.currentData() == "count"
        n = len(self.state.dataset) if self.state.dataset is not None else 0
        value = held_out_size(n, self.test_split_value.value() / 100.0) if counting and n else (100 if counting else 10)
        self.test_split_value.setRange(0, 1_000_000 if counting else 90)
        self.test_split_value.setValue(value)
        self._show_split()

    def _show_split(self) -> None:
        """"→ 32 of 200 images" — what the split gives on the current dataset (the floor included)."""
        dataset = self.state.dataset
        if dataset is None:
            self.test_split_note.setText("")
            return
        fraction, count = self.test_split()
        n = len(dataset)
        held = held_out_size(n, fraction, count)
        asked = count or int(round(n * fraction))
        raised = " (raised to the floor)" if held > asked else ""
        self.test_split_note.setText(f"→ {held:,} of {n:,}{raised}")

    # --- showing -----------------------------------------------------------------------------------------
    def _show(self, view: DatasetView) -> None:
        """A new current dataset: its name in the combo, thumbnails, summary, skipped files, the fallback note."""
        self._view = view
        self.set_spec(view.spec)
        self.thumbnails.set_image(view.thumbnails)
        note = f"<br><i>{view.note}</i>" if view.note else ""
        skipped = skipped_files_text(view.dataset, first=3)
        if skipped:
            note += f"<br><span style='color:#e0b050'>{skipped}</span>"
        self.dataset_summary.setText(view.summary_html + note)
        self.skipped_details.setPlainText(skipped_files_details(view.dataset))
        self.skipped_button.setVisible(bool(skipped))
        if not skipped:
            self.skipped_button.setChecked(False)
        self._show_split()
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
            self._loading = True
            self.dataset_summary.setText(f"<i>{self.state.busy['dataset']}</i>")
            return
        if not self._loading:
            return
        self._loading = False  # the load ended; when it failed, the current dataset is shown (and chosen) again
        if self._view is not None:
            self._show(self._view)
        else:
            self.set_spec(self.state.dataset_spec)
            self.dataset_summary.setText("no dataset loaded")
