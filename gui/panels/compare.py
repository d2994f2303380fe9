"""Compare: up to six models side by side — curves, a table, traversals, reconstructions, KL/MI, rate–distortion.

Reads: an `engine.compare.Comparison` (the Qt-free data model `main.py compare` renders too) and, for "Add the model
on screen", the window's `ModelSource` and session. Changes: nothing outside this tab.
- The running session is compared live: its entry takes the session's newest weights and history (a snapshot on the
  worker thread) when `ModelSource.weights_updated` says there are some, at most every LIVE_REFRESH_MS and only while
  the tab is shown; when the run ends it keeps the last weights under the run's name and follows nothing more.
- Loading (checkpoints, run folders, sweep folders, `example:NAME`) and every view's computation run on this tab's
  worker thread; the comparison's membership changes on the GUI thread only, and each job works on a frozen view of
  it (`_frozen`), so a model added or removed meanwhile never changes a list under a running job.
- One colour per model (the engine's palette) everywhere; labels are editable in the model strip; hovering or
  clicking a model there highlights it in every view.
- A model that cannot take part in a view is named in that view with the reason (`Unavailable`).
- Exports: each view as a labelled PNG, the whole tab as one figure (engine/compare_figure.py renders both, the same
  figure the CLI writes), the traversals as a GIF of all models moving together, the table as CSV.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QProgressBar,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleSlider

from engine.compare import (
    HISTORY_SCORES,
    MAX_MODELS,
    CompareError,
    Comparison,
    Unavailable,
    entry_from_model,
    expand_specs,
    load_entry,
    score_title,
)
from engine.imaging import save_gif, save_png, tile
from gui.inference import InferenceRunner
from gui.panels.common import ask_save_path, button, grid_ticks, warn_export_failed, write_chosen, write_csv
from gui.widgets import GridView, ToolRow
from gui.widgets.frozen_table import FrozenTable

VIEWS = (("curves", "Curves"), ("table", "Table"), ("traversals", "Traversals"), ("recon", "Reconstructions"),
         ("heat", "KL && MI"), ("rd", "Rate–distortion"))
FIGURE_VIEWS = {"curves": ("curves",), "table": ("table",), "traversals": ("traversals",), "recon": ("recon",),
                "heat": ("kl", "mi"), "rd": ("rd",)}
BETA_LESSON = ("example:dsprites-vae", "example:dsprites-disentangle")
HEAT_CELL = 18
BASE_THUMBS = 16
GIF_CELL = 48
SPAN_FOLLOW_MS = 200  # the traversals follow a dragged range slider at most this often
LIVE_REFRESH_MS = 3000  # a live entry takes the session's newer weights at most this often, and only while shown
LIVE_ELBO_IMAGES = 500  # test images behind a session entry's −ELBO / recon / KL (measured again as weights change)


def score_header(name: str) -> tuple[str, str]:
    """A score column's title (`score_title`, what the exported figure's table says too) and header tooltip: final
    scores are the last checkpoint's; `<term> final|best` are the last and the best logged value of a history term."""
    term, _, which = name.rpartition(" ")
    if term in HISTORY_SCORES and which in ("final", "best"):
        if which == "final":
            return score_title(name), f"{term}: the last value logged during training"
        best = HISTORY_SCORES[term]
        better = "lower" if best == "min" else "higher"
        return score_title(name), (f"{term}: the best value logged during training — the {best} over the run "
                                   f"({better} is better)")
    return score_title(name), f"{name}: the final model's score (its last checkpoint)"


def _frozen(comparison: Comparison) -> Comparison:
    """A view of the comparison whose membership, colours and labels are fixed (caches stay shared)."""
    twin = copy.copy(comparison)
    twin.entries = list(comparison.entries)
    twin._colours = dict(comparison._colours)
    twin._labels = dict(comparison._labels)
    return twin


def _short_row(label: str) -> str:
    """'posX · z4 · 3.78 nats' → 'posX'; 'z7 · 0.22 nats' → 'z7' (narrow labels when many models share a row)."""
    return label.split(" · ")[0].replace(": no latent", ": —")


def _hex(colour: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


def _unavailable_text(labels: dict[str, str], reasons: dict[str, Unavailable]) -> str:
    return "\n".join(f"{labels.get(k, k)}: {u.reason}" for k, u in reasons.items())


@dataclass(frozen=True)
class _LiveFollow:
    """The entry that follows a running session, and that session."""

    key: str
    session: Any


def _run_name(session: Any) -> str:
    """What a session's entry is called once it stops following: its run folder's name, else "last run"."""
    out_dir = getattr(session.config, "out_dir", None)
    return Path(out_dir).name if out_dir else "last run"


def _session_entry(key: str, session: Any, tag: str):
    """A job (worker thread): the session's latest weights (`snapshot_model`, what `ModelSource.snapshot()` calls
    while it is live) and its history so far, as a comparison entry tagged `tag`."""
    config, dataset, test = session.config, session.dataset, session.test_indices
    spec = "live session" if tag == "live" else str(config.out_dir or "last run")

    def job() -> Any:
        model = session.snapshot_model()
        history, step = list(session.history), int(session.step)
        entry = entry_from_model(key, spec, model, config, dataset, test, history, step)
        entry.tag = tag
        return entry

    return job


def _entry_tooltip(entry: Any) -> str:
    return f"{entry.spec}\n{entry.family} on {entry.dataset_name}, step {entry.step:,}, seed {entry.seed}"


class ModelChip(QFrame):
    """One model in the strip: its colour, its editable label, a remove button; hover/click highlight it."""

    label_edited = Signal(str, str)
    remove_requested = Signal(str)
    hovered = Signal(str)  # key, or "" when the mouse leaves
    clicked = Signal(str)

    def __init__(self, key: str, colour: tuple[int, int, int], label: str, tooltip: str) -> None:
        super().__init__()
        self.key = key
        self.setObjectName("compareModelChip")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 2, 2)
        layout.setSpacing(3)
        swatch = QLabel()
        swatch.setFixedSize(14, 14)
        swatch.setStyleSheet(f"background: {_hex(colour)}; border-radius: 3px;")
        layout.addWidget(swatch)
        self.edit = QLineEdit(label)
        self.set_info(tooltip)
        self.edit.setMinimumWidth(90)
        self.edit.setMaximumWidth(190)
        self.edit.editingFinished.connect(lambda: self.label_edited.emit(self.key, self.edit.text()))
        layout.addWidget(self.edit)
        remove = QToolButton()
        remove.setText("✕")
        remove.setToolTip("Remove from the comparison")
        remove.clicked.connect(lambda: self.remove_requested.emit(self.key))
        layout.addWidget(remove)
        self.colour = colour

    def set_info(self, tooltip: str) -> None:
        self.edit.setToolTip(f"{tooltip}\nEdit the label (empty: back to the default)")

    def set_highlighted(self, on: bool) -> None:
        self.setStyleSheet(f"#compareModelChip {{ border: 2px solid {_hex(self.colour)}; }}" if on else "")

    def enterEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self.hovered.emit(self.key)
        super().enterEvent(event)

    def leaveEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self.hovered.emit("")
        super().leaveEvent(event)

    def mousePressEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self.clicked.emit(self.key)
        super().mousePressEvent(event)


class TitledGrid(QWidget):
    """A model's grid under its coloured title (or the reason it has none)."""

    def __init__(self, title: str, colour: tuple[int, int, int]) -> None:
        super().__init__()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(2)
        self.title = QLabel(title)
        self.title.setWordWrap(True)
        self.colour = colour
        layout.addWidget(self.title)
        self.view = GridView()
        self.view.setMinimumSize(200, 150)
        layout.addWidget(self.view, 1)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        layout.addWidget(self.note)
        self.set_highlighted(False)

    def set_highlighted(self, on: bool) -> None:
        weight = "bold; text-decoration: underline" if on else "bold"
        self.title.setStyleSheet(f"color: {_hex(self.colour)}; font-weight: {weight};")

    def show_reason(self, reason: str) -> None:
        self.view.set_grid(None)
        self.view.set_empty_hint(reason)
        self.note.setText(reason)


class ComparePanel(QWidget):
    """The Compare tab. `add_specs([...])` and `add_current()` add models; `remove(key)`; views refresh lazily."""

    progress_changed = Signal(float, str)  # from the scores worker, delivered on the GUI thread
    models_changed = Signal()

    def __init__(self, source: Any = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.source = source
        self.comparison = Comparison()
        self.runner = InferenceRunner("compare", self)
        self.score_runner = InferenceRunner("compare-scores", self)
        self.runner.failed.connect(self.show_error)
        self.runner.busy_changed.connect(self._busy)
        self.highlighted: str | None = None
        self._hovered = ""
        self._pinned: str | None = None
        self.pending_loads = 0
        self.results: dict[str, Any] = {}  # view name → the last data drawn
        self._stale: set[str] = {name for name, _ in VIEWS}
        self._cancel_scores = threading.Event()
        self._shut = False
        self.progress_changed.connect(self._score_progress)
        self._draw_queue: list[tuple[QHBoxLayout, Any]] = []
        self._draw_timer = QTimer(self)
        self._draw_timer.setInterval(0)
        self._draw_timer.timeout.connect(self._draw_next)
        self._live: _LiveFollow | None = None
        self._live_due = False  # newer live weights came while the tab was hidden
        self._session_keys: set[str] = set()  # entries made from a session in memory (live or its last weights)
        self.live_timer = QTimer(self)
        self.live_timer.setSingleShot(True)
        self.live_timer.setInterval(LIVE_REFRESH_MS)
        self.live_timer.timeout.connect(self._live_update)
        if source is not None:
            source.weights_updated.connect(self._live_weights_updated)
            source.changed.connect(self._live_source_changed)
        self._build()
        self._show_models()

    # --- widgets ---------------------------------------------------------------------------------------------
    def _build(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(4, 4, 4, 4)
        top = ToolRow()
        top.add(button("Add…", self._add_dialog, "Add checkpoints (.safetensors) to the comparison"))
        top.add(button("Add folder…", self._add_folder_dialog, "Add a run folder, or every run of a sweep folder"))
        top.add(button("Add model on screen", self.add_current,
                       "The model the other tabs show: the open checkpoint, or the running session — followed live "
                       "while it trains (newest weights every few seconds while this tab shows), kept when it stops"))
        self.recent_button = QToolButton()
        self.recent_button.setText("Recent runs")
        self.recent_button.setToolTip("Add a checkpoint from File → Recent runs")
        self.recent_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.recent_menu = QMenu(self.recent_button)
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self.recent_button.setMenu(self.recent_menu)
        top.add(self.recent_button)
        self.example_combo = QComboBox()
        self.example_combo.setToolTip("Add a shipped example model")
        self._fill_examples()
        top.add(self.example_combo, button("Add example", self._add_example))
        top.add(button("β = 1 vs β = 6", lambda: self.compare_specs(list(BETA_LESSON)),
                       "The two dSprites examples: the same network as a plain VAE and as a disentangling β-TCVAE"))
        top.add(button("Clear", self.clear, "Remove every model"))
        top.add(button("Export view PNG…", self._export_view_dialog, "The view shown, as a labelled figure"))
        top.add(button("Export all PNG…", self._export_all_dialog, "Every view as one labelled figure"))
        root.addWidget(top)
        self.strip = QWidget()
        self.strip_layout = QHBoxLayout(self.strip)
        self.strip_layout.setContentsMargins(0, 0, 0, 0)
        self.strip_layout.setSpacing(4)
        strip_scroll = QScrollArea()
        strip_scroll.setWidgetResizable(True)
        strip_scroll.setWidget(self.strip)
        strip_scroll.setFixedHeight(40)
        strip_scroll.setFrameShape(QFrame.Shape.NoFrame)
        root.addWidget(strip_scroll)
        self.chips: dict[str, ModelChip] = {}
        self.empty_label = QLabel("")
        self.empty_label.setObjectName("compareEmpty")
        self.empty_label.setWordWrap(True)
        root.addWidget(self.empty_label)
        self.views = QTabWidget()
        self.views.setObjectName("compareViews")
        self.views.setDocumentMode(True)
        builders = {"curves": self._build_curves, "table": self._build_table, "traversals": self._build_traversals,
                    "recon": self._build_recon, "heat": self._build_heat, "rd": self._build_rd}
        self.view_pages: dict[str, QWidget] = {}
        for name, title in VIEWS:
            page = builders[name]()
            page.setObjectName(f"compare_{name}")
            self.view_pages[name] = page
            self.views.addTab(page, title)
        self.views.currentChanged.connect(lambda _i: self._refresh_current())
        root.addWidget(self.views, 1)
        self.status = QLabel("")
        self.status.setObjectName("panelStatus")
        self.status.setWordWrap(True)
        root.addWidget(self.status)

    def _fill_examples(self) -> None:
        from gui.examples_menu import installed_examples

        examples, problem = installed_examples()
        for example in examples:
            self.example_combo.addItem(example.name, f"example:{example.name}")
            self.example_combo.setItemData(self.example_combo.count() - 1, example.description,
                                           Qt.ItemDataRole.ToolTipRole)
        if not examples:
            self.example_combo.addItem(problem or "(no examples)")
            self.example_combo.setEnabled(False)

    @staticmethod
    def _note(text: str = "") -> QLabel:
        label = QLabel(text)
        label.setWordWrap(True)
        label.setStyleSheet("color: #b0b0b0;")
        return label

    @staticmethod
    def _plot(grid: bool = True, **options: Any) -> pg.PlotWidget:
        """A dark plot without pyqtgraph's context menu (what every plot view of this tab draws on)."""
        plot = pg.PlotWidget(background="#1e1e1e", **options)
        plot.setMenuEnabled(False)
        if grid:
            plot.showGrid(x=True, y=True, alpha=0.2)
        return plot

    @staticmethod
    def _page(body: QWidget, note: QLabel, *above: QWidget) -> QWidget:
        """A view's page, margin-less: `above` (its controls) at the top, then the body (it stretches), its note."""
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in above:
            layout.addWidget(widget)
        layout.addWidget(body, 1)
        layout.addWidget(note)
        return page

    def _build_curves(self) -> QWidget:
        controls = ToolRow()
        self.term_combo = QComboBox()
        self.term_combo.setToolTip("The logged term drawn for every model (test/… are the epochs' test terms, "
                                   "probe/mig the live disentanglement probe)")
        self.term_combo.currentIndexChanged.connect(self._draw_curves)
        self.x_combo = QComboBox()
        for key, text in (("step", "step"), ("images", "images seen"), ("wall", "wall time")):
            self.x_combo.addItem(text, key)
        self.x_combo.currentIndexChanged.connect(self._draw_curves)
        self.log_check = QCheckBox("log y")
        self.log_check.setToolTip("A logarithmic y axis (here and in the exported figure's curves)")
        self.log_check.toggled.connect(self._draw_curves)
        controls.add_labeled("Term", self.term_combo)
        controls.add_labeled("x", self.x_combo)
        controls.add(self.log_check)
        self.curves_plot = self._plot()
        self.curves_legend = self.curves_plot.getPlotItem().addLegend(offset=(-6, 6), labelTextSize="8pt",
                                                                      brush=(30, 30, 30, 200))
        self.curve_items: dict[str, pg.PlotDataItem] = {}
        self.curves_note = self._note()
        return self._page(self.curves_plot, self.curves_note, controls)

    def _build_table(self) -> QWidget:
        controls = ToolRow()
        self.diff_check = QCheckBox("Differences only")
        self.diff_check.setChecked(True)
        self.diff_check.setToolTip("Show only the hyperparameters whose values differ between the models")
        self.diff_check.toggled.connect(self._draw_table)
        self.group_check = QCheckBox("Group seeds")
        self.group_check.setChecked(True)
        self.group_check.setToolTip("Runs of one configuration that differ only in the seed: one row, mean ± std")
        self.group_check.toggled.connect(self._draw_table)
        self.scores_button = button("Compute scores", self.compute_scores,
                                    "−ELBO, recon, KL, active units and (with factors) MIG, DCI, SAP, FactorVAE, "
                                    "BetaVAE for the models that lack them, off the GUI thread")
        self.cancel_scores_button = button("Cancel", self.cancel_scores)
        self.cancel_scores_button.setEnabled(False)
        self.score_progress = QProgressBar()
        self.score_progress.setRange(0, 1000)
        self.score_progress.setMaximumWidth(220)
        self.score_progress.setFormat("")
        controls.add(self.diff_check)
        controls.add(self.group_check)
        controls.add(self.scores_button, self.cancel_scores_button, self.score_progress)
        controls.add(button("Copy", lambda: self.score_table.copy(), "Copy the scores (tab-separated)"),
                     button("Export CSV…", self._export_csv_dialog,
                            "One row per model: hyperparameters, scores and where they came from"))
        split = QSplitter(Qt.Orientation.Vertical)
        self.hparam_table = FrozenTable()
        self.hparam_table.setObjectName("compareHparamTable")
        self.score_table = FrozenTable()
        self.score_table.setObjectName("compareScoreTable")
        split.addWidget(self.hparam_table)
        split.addWidget(self.score_table)
        self.table_note = self._note()
        return self._page(split, self.table_note, controls)

    def _grid_row(self) -> tuple[QScrollArea, QHBoxLayout]:
        holder = QWidget()
        row = QHBoxLayout(holder)
        row.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(holder)
        return scroll, row

    def _build_traversals(self) -> QWidget:
        controls = ToolRow()
        self.base_spin = QSpinBox()
        self.base_spin.setRange(0, 9999)
        self.base_spin.setToolTip("The base image: its position in the first model's test split (models on other "
                                  "data use their own test image at that position)")
        self.base_spin.valueChanged.connect(self._traversal_settings_changed)
        self.span_slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.span_slider.setObjectName("compareSpanSlider")
        self.span_slider.setRange(0.5, 8.0)
        self.span_slider.setSingleStep(0.1)
        self.span_slider.setDecimals(1)
        self.span_slider.setValue(3.0)
        self.span_slider.setMinimumWidth(170)
        self.span_slider.setToolTip("Every model's rows span z_j ∈ [−R, R] prior standard deviations (autoencoders: "
                                    "1st–99th percentile of their codes); dragging re-renders every "
                                    f"{SPAN_FOLLOW_MS} ms at most")
        self.span_slider.valueChanged.connect(self._span_moved)
        self.span_slider.sliderReleased.connect(self._traversal_settings_changed)
        self._span_timer = QTimer(self)
        self._span_timer.setSingleShot(True)
        self._span_timer.setInterval(SPAN_FOLLOW_MS)
        self._span_timer.timeout.connect(self._traversal_settings_changed)
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(3, 15)
        self.steps_spin.setValue(7)
        self.steps_spin.valueChanged.connect(self._traversal_settings_changed)
        controls.add_labeled("Base image #", self.base_spin)
        controls.add_labeled("±R", self.span_slider)
        controls.add_labeled("Steps", self.steps_spin)
        controls.add(button("Export GIF…", self._export_gif_dialog, "Every model's rows moving together"))
        self.base_thumbs = GridView(axes=False)
        self.base_thumbs.setFixedHeight(48)
        self.base_thumbs.setToolTip("The first model's test images: click one to traverse every model from it")
        self.base_thumbs.clicked.connect(self._base_thumb_clicked)
        scroll, self.traversal_row = self._grid_row()
        self.traversal_grids: dict[str, TitledGrid] = {}
        self.traversal_note = self._note("Rows are matched to factors: posX sits beside posX across models; rows a "
                                         "model has no latent for are grey, unmatched latents last and dimmed.")
        return self._page(scroll, self.traversal_note, controls, self.base_thumbs)

    def _build_recon(self) -> QWidget:
        controls = ToolRow()
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 10_000)
        self.seed_spin.setToolTip("The noise seed every model's prior samples are drawn from")
        self.seed_spin.valueChanged.connect(lambda _v: self._invalidate("recon"))
        controls.add_labeled("Noise seed", self.seed_spin)
        scroll, self.recon_row = self._grid_row()
        self.recon_grids: dict[str, TitledGrid] = {}
        note = self._note("Rows: the same test inputs, each model's reconstruction, then prior samples from one "
                          "seed.")
        return self._page(scroll, note, controls)

    def _build_heat(self) -> QWidget:
        split = QSplitter(Qt.Orientation.Vertical)
        self.kl_plot = self._plot(grid=False, title="KL per latent dimension (nats, one axis)")
        self.kl_plot.setLabel("bottom", "latent dimension (sorted by KL within each model)")
        self.kl_plot.setLabel("left", "KL(q(z_j|x) ‖ N(0,1))")
        self.kl_items: dict[str, pg.BarGraphItem] = {}
        split.addWidget(self.kl_plot)
        mi_holder = QWidget()
        mi_layout = QHBoxLayout(mi_holder)
        mi_layout.setContentsMargins(0, 0, 0, 0)
        scroll, self.mi_row = self._grid_row()
        mi_layout.addWidget(scroll, 1)
        self.colour_bar = GridView()
        self.colour_bar.setFixedWidth(70)
        self.colour_bar.setToolTip("One colour scale for every heatmap: normalised MI I(z_j; v_k)/H(v_k)")
        mi_layout.addWidget(self.colour_bar)
        split.addWidget(mi_holder)
        self.mi_grids: dict[str, TitledGrid] = {}
        self.heat_note = self._note()
        return self._page(split, self.heat_note)

    def _build_rd(self) -> QWidget:
        self.rd_plot = self._plot()
        self.rd_plot.setLabel("bottom", "rate: KL(q(z|x) ‖ p(z)) [nats]")
        self.rd_plot.setLabel("left", "distortion: reconstruction [nats]")
        self.rd_items: dict[str, pg.ScatterPlotItem] = {}  # one point per model
        self.rd_lines: list[pg.PlotDataItem] = []  # sweep runs joined in the order of their swept value
        self.rd_note = self._note()
        return self._page(self.rd_plot, self.rd_note)

    # --- membership --------------------------------------------------------------------------------------
    @property
    def keys(self) -> list[str]:
        return self.comparison.keys

    def free_slots(self) -> int:
        return MAX_MODELS - len(self.comparison.entries) - self.pending_loads

    def compare_specs(self, specs: list[str]) -> None:
        """Replace the comparison with these models (what the welcome card and "Compare selected" do)."""
        self.clear()
        self.add_specs(specs)

    def add_specs(self, specs: list[str]) -> bool:
        """Load checkpoints, run folders, sweep folders or `example:NAME` off the GUI thread; False if refused."""
        try:
            expanded = expand_specs(specs)
        except (CompareError, OSError) as exc:
            self.show_error(str(exc))
            return False
        if len(expanded) > self.free_slots():
            self.show_error(f"{len(expanded)} more models do not fit: a comparison holds at most {MAX_MODELS} "
                            f"(it has {len(self.comparison.entries)}); remove some first")
            return False
        datasets = self.comparison.datasets
        taken = set(self.keys)
        for spec in expanded:
            key, n = spec, 2
            while key in taken:
                key, n = f"{spec} #{n}", n + 1
            taken.add(key)
            self.pending_loads += 1
            self.runner.submit(f"load:{key}", lambda spec=spec, key=key: load_entry(spec, "cpu", datasets, key=key),
                               self._loaded, lambda text, spec=spec: self._load_failed(spec, text))
        self.status.setText(f"loading {len(expanded)} model(s)…")
        return True

    def add_current(self) -> bool:
        """The model the other tabs show: the open checkpoint, or the session's weights — followed live while it
        trains (`_live_update`), kept as its run's last weights once it ends."""
        source = self.source
        if source is None or not source.has_model:
            self.show_error("No model on screen: train one or open a checkpoint first.")
            return False
        checkpoint = source.info.get("checkpoint")
        if checkpoint and not source.is_live:
            return self.add_specs([str(checkpoint)])
        session = getattr(self.window(), "session", None)
        if session is None:
            self.show_error("The model on screen has no run to compare (open its checkpoint instead).")
            return False
        if self._live is not None and self._live.session is session and self._live.key in self.keys:
            self.show_error("The running session is already compared (live).")
            return False
        if self.free_slots() < 1:
            self.show_error(f"A comparison holds at most {MAX_MODELS} models; remove one first.")
            return False
        key = "live" if source.is_live else "last run"
        n = 2
        while key in self.keys:
            key, n = f"{key.split(' #')[0]} #{n}", n + 1
        self._session_keys.add(key)
        if source.is_live:
            self._live = _LiveFollow(key, session)
            job = _session_entry(key, session, "live")
        else:
            job = _session_entry(key, session, _run_name(session))
        self.pending_loads += 1
        self.runner.submit(f"load:{key}", job, self._loaded, lambda text: self._load_failed(key, text))
        return True

    # --- the running session, followed live ------------------------------------------------------------------
    def _live_weights_updated(self, _step: int) -> None:
        """Newer live weights exist: take them at most every LIVE_REFRESH_MS (the timer is the throttle)."""
        if self._live is not None and not self.live_timer.isActive():
            self.live_timer.start()

    def _live_update(self) -> None:
        """Snapshot the followed session's weights and history on the worker thread (only while this tab shows)."""
        live = self._live
        if live is None or self._shut or live.key not in self.keys:
            return
        if not self.isVisible():
            self._live_due = True  # hidden: no inference competes with training; done when the tab is shown
            return
        self._live_due = False
        self.runner.submit("live", _session_entry(live.key, live.session, "live"), self._live_updated,
                           self.show_error)

    def _live_source_changed(self) -> None:
        """The run ended (or another model or run came): the entry keeps the run's last weights and stops following,
        so a later run never rewrites it."""
        live = self._live
        if live is None:
            return
        if self.source.is_live and getattr(self.window(), "session", None) is live.session:
            return
        self._live = None
        self.live_timer.stop()
        self._live_due = False
        self.runner.cancel("live")
        if live.key in self.keys:
            self.runner.submit(f"live-end:{live.key}", _session_entry(live.key, live.session, _run_name(live.session)),
                               self._live_updated, self.show_error)

    def _live_updated(self, entry: Any) -> None:
        """Newer weights of a session's entry: same colour and label, every view recomputed (the shown one now)."""
        if entry.key not in self.keys:
            return
        self.comparison.replace(entry)
        chip = self.chips.get(entry.key)
        if chip is not None:
            chip.set_info(_entry_tooltip(entry))
            if not chip.edit.hasFocus():
                chip.edit.setText(self.comparison.label(entry.key))
        self._stale = {name for name, _ in VIEWS}
        self._refresh_current()

    @property
    def live_key(self) -> str | None:
        """The entry that follows the running session (None: none does)."""
        return self._live.key if self._live is not None else None

    def showEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        if self._live_due:
            self._live_update()

    def _loaded(self, entry: Any) -> None:
        self.pending_loads = max(0, self.pending_loads - 1)
        try:
            self.comparison.add(entry)
        except CompareError as exc:
            self.show_error(str(exc))
            return
        if self.pending_loads == 0:
            self.status.setText(f"{len(self.keys)} model(s) compared")
        self._models_changed()

    def _load_failed(self, spec: str, text: str) -> None:
        self.pending_loads = max(0, self.pending_loads - 1)
        self.show_error(f"Could not add {spec}: {text}")

    def remove(self, key: str) -> None:
        self.comparison.remove(key)
        self._forget_session(key)
        if self.highlighted == key:
            self.highlighted = self._pinned = None
        self._models_changed()

    def clear(self) -> None:
        for key in list(self.keys):
            self.comparison.remove(key)
            self._forget_session(key)
        self.runner.cancel_all()
        self.pending_loads = 0
        self.highlighted = self._pinned = None
        self._models_changed()

    def _forget_session(self, key: str) -> None:
        self._session_keys.discard(key)
        if self._live is not None and self._live.key == key:
            self._live = None
            self.live_timer.stop()
            self.runner.cancel("live")

    def set_label(self, key: str, text: str) -> None:
        self.comparison.set_label(key, text)
        self._models_changed(recompute=False)

    def _models_changed(self, recompute: bool = True) -> None:
        self._show_models()
        if recompute:
            self._stale = {name for name, _ in VIEWS}
            for name, _ in VIEWS:
                self.runner.cancel(f"view:{name}")
        else:
            self._stale |= {"curves", "table", "rd"}
        self._refresh_current()
        self.models_changed.emit()

    def _show_models(self) -> None:
        """The model strip (the legend of every view)."""
        while self.strip_layout.count():
            item = self.strip_layout.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.chips = {}
        labels = self.comparison.labels() if self.comparison.entries else {}
        for entry in self.comparison.entries:
            chip = ModelChip(entry.key, self.comparison.colour(entry.key), labels[entry.key], _entry_tooltip(entry))
            chip.label_edited.connect(self.set_label)
            chip.remove_requested.connect(self.remove)
            chip.hovered.connect(self._chip_hovered)
            chip.clicked.connect(self._chip_clicked)
            chip.set_highlighted(entry.key == self.highlighted)
            self.strip_layout.addWidget(chip)
            self.chips[entry.key] = chip
        self.strip_layout.addStretch(1)
        empty = not self.comparison.entries
        self.empty_label.setVisible(empty)
        self.empty_label.setText(
            "Compare up to six models side by side: add checkpoints, run or sweep folders, examples, or the model on "
            "screen (Train one with Start, or open a checkpoint) — or press “β = 1 vs β = 6” for the dSprites "
            "lesson." if empty else "")

    # --- highlight ---------------------------------------------------------------------------------------
    def _chip_hovered(self, key: str) -> None:
        self._hovered = key
        self.highlight(key or self._pinned)

    def _chip_clicked(self, key: str) -> None:
        self._pinned = None if self._pinned == key else key
        self.highlight(self._pinned)

    def highlight(self, key: str | None) -> None:
        """Emphasise one model in every view (None: none)."""
        self.highlighted = key if key in self.keys else None
        for k, chip in self.chips.items():
            chip.set_highlighted(k == self.highlighted)
        for k, item in self.curve_items.items():
            colour = self.comparison.colour(k) if k in self.keys else (128, 128, 128)
            faded = self.highlighted is not None and k != self.highlighted
            item.setPen(pg.mkPen((*colour, 70 if faded else 255), width=3.5 if k == self.highlighted else 1.6))
        for grids in (self.traversal_grids, self.recon_grids, self.mi_grids):
            for k, grid in grids.items():
                grid.set_highlighted(k == self.highlighted)
        for k, item in self.kl_items.items():
            if k in self.keys:
                colour = self.comparison.colour(k)
                faded = self.highlighted is not None and k != self.highlighted
                item.setOpts(brush=pg.mkBrush(*colour, 60 if faded else 230))
        for k, item in self.rd_items.items():
            item.setSize(18 if k == self.highlighted else 11)

    # --- views -------------------------------------------------------------------------------------------
    def current_view(self) -> str:
        return VIEWS[self.views.currentIndex()][0]

    def _invalidate(self, name: str) -> None:
        self._stale.add(name)
        self._refresh_current()

    def _traversal_settings_changed(self, *_args) -> None:
        self._invalidate("traversals")

    def _span_moved(self, _value: float) -> None:
        """While the range slider moves, the traversals follow at most every SPAN_FOLLOW_MS (its release: at once)."""
        if not self._span_timer.isActive():
            self._span_timer.start()

    def _refresh_current(self) -> None:
        """Compute the shown view if its data is stale (a hidden view waits until it is shown)."""
        name = self.current_view()
        if name not in self._stale or self._shut or self.pending_loads:
            return  # (all models loaded first: then each view is computed once)
        self._stale.discard(name)
        if not self.comparison.entries:
            self._draw_empty(name)
            return
        view = _frozen(self.comparison)
        measure = self._measure_sessions(view)

        def table_job():
            measure()
            return view, None

        def rd_job():
            measure()
            return view, view.rate_distortion(compute_missing=True)

        jobs = {"curves": lambda: (view, None), "table": table_job,
                "traversals": self._traversal_job(view), "recon": self._recon_job(view),
                "heat": lambda: (view, (view.kl_per_dim(), view.mi_matrices())), "rd": rd_job}
        draw = {"curves": self._curves_ready, "table": self._table_ready, "traversals": self._traversals_ready,
                "recon": self._recon_ready, "heat": self._heat_ready, "rd": self._rd_ready}[name]
        self.status.setText(f"computing {dict(VIEWS)[name].lower().replace('&&', '&')}…")
        self.runner.submit(f"view:{name}", jobs[name], draw, self.show_error)

    def _measure_sessions(self, view: Comparison):
        """A step of the table and rate–distortion jobs: −ELBO, recon and KL of the entries made from a session in
        memory (their weights change while it trains) on LIVE_ELBO_IMAGES test images, where not measured yet."""
        keys = [e.key for e in view.entries if e.key in self._session_keys and "recon" not in e.scores]

        def measure() -> None:
            if keys:
                view.compute_scores(keys, metrics=(), elbo_images=LIVE_ELBO_IMAGES)

        return measure

    def _traversal_job(self, view: Comparison):
        base, span, steps = self.base_spin.value(), self.span_slider.value(), self.steps_spin.value()
        first = view.entries[0]
        start = (base // BASE_THUMBS) * BASE_THUMBS

        def job():
            cells = view.traversal_cells([base], span, steps)
            thumbs = first.dataset.images_at(first.test_indices[start:start + BASE_THUMBS]).cpu().numpy()
            return view, (cells, start, thumbs)

        return job

    def _base_thumb_clicked(self, x: float, _y: float) -> None:
        start, width = getattr(self, "_thumb_layout", (0, 0))
        if width:
            self.base_spin.setValue(start + int(x // width))

    def _recon_job(self, view: Comparison):
        seed = self.seed_spin.value()
        return lambda: (view, (view.reconstructions(range(8)), view.prior_samples(8, seed)))

    def _done(self, view: Comparison, name: str, result: Any) -> bool:
        """Keep a view's result if it belongs to the current membership (else it is recomputed)."""
        if [e.key for e in view.entries] != self.keys:
            self._stale.add(name)
            self._refresh_current()
            return False
        self.results[name] = result
        self.status.setText(f"{len(self.keys)} model(s) compared")
        return True

    def _draw_empty(self, name: str) -> None:
        self.results.pop(name, None)
        if name == "curves":
            self._clear_plot(self.curves_plot, self.curve_items)
        elif name == "table":
            self.hparam_table.set_rows([], [])
            self.score_table.set_rows([], [])
        elif name == "traversals":
            self._fill_grids(self.traversal_row, self.traversal_grids, {})
        elif name == "recon":
            self._fill_grids(self.recon_row, self.recon_grids, {})
        elif name == "heat":
            self._clear_plot(self.kl_plot, self.kl_items)
            self._fill_grids(self.mi_row, self.mi_grids, {})
        elif name == "rd":
            self._clear_rd()

    def _clear_rd(self) -> None:
        self._clear_plot(self.rd_plot, self.rd_items)
        for line in self.rd_lines:
            self.rd_plot.removeItem(line)
        self.rd_lines.clear()

    @staticmethod
    def _clear_plot(plot: pg.PlotWidget, items: dict) -> None:
        for item in items.values():
            plot.removeItem(item)
        items.clear()

    def _fill_grids(self, row: QHBoxLayout, grids: dict[str, TitledGrid], titles: dict[str, str],
                    draw_one: Any = None) -> None:
        """One TitledGrid per model, in the comparison's order, reused across refreshes. Making and drawing them is
        queued one model per event-loop turn (a plot widget costs ~35 ms to make), so six never stall the window."""
        for key in [k for k in grids if k not in titles]:
            widget = grids.pop(key)
            row.removeWidget(widget)
            widget.deleteLater()
        self._draw_queue = [(r, step) for r, step in self._draw_queue if r is not row]
        for index, (key, title) in enumerate(titles.items()):
            def step(key: str = key, title: str = title, index: int = index) -> None:
                if key not in self.keys:
                    return
                grid = grids.get(key)
                if grid is None:
                    grid = TitledGrid(title, self.comparison.colour(key))
                    row.insertWidget(min(index, row.count()), grid, 1)
                    grids[key] = grid
                grid.title.setText(title)
                grid.set_highlighted(key == self.highlighted)
                if draw_one is not None:
                    draw_one(key, grid)

            self._draw_queue.append((row, step))
        if self._draw_queue:
            self._draw_timer.start()

    def _draw_next(self) -> None:
        if self._draw_queue:
            _, step = self._draw_queue.pop(0)
            step()
        if not self._draw_queue:
            self._draw_timer.stop()

    @property
    def is_idle(self) -> bool:
        """Nothing loading, computing or waiting to be drawn (what tests and scripts wait for)."""
        return not self.runner.is_busy and not self.pending_loads and not self._draw_queue

    # curves
    def _curves_ready(self, result) -> None:
        view, _ = result
        if not self._done(view, "curves", view):
            return
        terms = view.terms()
        current = self.term_combo.currentText()
        self.term_combo.blockSignals(True)
        self.term_combo.clear()
        self.term_combo.addItems(terms)
        if current in terms:
            self.term_combo.setCurrentText(current)
        elif "total" in terms:
            self.term_combo.setCurrentText("total")
        self.term_combo.blockSignals(False)
        self._draw_curves()

    def _draw_curves(self, *_args) -> None:
        view = self.results.get("curves")
        self._clear_plot(self.curves_plot, self.curve_items)
        self.curves_legend.clear()
        if view is None:
            return
        term, x = self.term_combo.currentText(), self.x_combo.currentData()
        log = self.log_check.isChecked()
        self.curves_plot.setLogMode(False, log)
        missing = {}
        labels = view.labels()
        for key in view.keys:
            curve = view.curve(key, term, x) if term else Unavailable("no model has a logged history")
            if isinstance(curve, Unavailable):
                missing[key] = curve
                continue
            y = curve.y
            keep = y > 0 if log else np.ones_like(y, dtype=bool)
            item = self.curves_plot.plot(curve.x[keep], y[keep], name=labels[key],
                                         pen=pg.mkPen(view.colour(key), width=1.6))
            self.curve_items[key] = item
            self.curves_plot.setLabel("bottom", curve.x_title)
        self.curves_plot.setLabel("left", f"{term}{' (log scale)' if log else ''}")
        self.curves_note.setText(_unavailable_text(labels, missing))
        self.highlight(self.highlighted)

    # table
    def _table_ready(self, result) -> None:
        view, _ = result
        if self._done(view, "table", view):
            self._draw_table()

    def _draw_table(self, *_args) -> None:
        view = self.results.get("table")
        if view is None:
            return
        colours = {view.label(k): view.colour(k) for k in view.keys}
        hp = view.hyperparam_table(self.diff_check.isChecked())
        self.hparam_table.set_rows(hp.columns, hp.rows, [view.colour(k[0]) for k in hp.keys],
                                   tooltips=[view.entry(k[0]).spec for k in hp.keys])
        scores = view.score_table(group_seeds=self.group_check.isChecked())
        self.score_table.set_rows(scores.columns, scores.rows,
                                  [colours.get(r[0], view.colour(k[0])) for r, k in zip(scores.rows, scores.keys,
                                                                                          strict=True)],
                                  tooltips=[", ".join(view.entry(k).score_source or "no scores yet" for k in ks)
                                            for ks in scores.keys])
        for column, name in enumerate(scores.columns[2:], start=2):
            title, tip = score_header(name)
            self.score_table.model.setHeaderData(column, Qt.Orientation.Horizontal, title)
            self.score_table.model.setHeaderData(column, Qt.Orientation.Horizontal, tip, Qt.ItemDataRole.ToolTipRole)
        absent = [view.label(k) for k in view.keys if not view.entry(k).scores]
        self.table_note.setText(f"No scores yet for {', '.join(absent)}: press Compute scores." if absent else
                                "Scores from where each model was made (the examples' manifest, a sweep's "
                                "result.json) or computed here; hover a name for its source. “final” is the "
                                "last value logged, “best (min/max)” the best over the run: the min of a loss, the "
                                "max of the MIG probe.")

    def compute_scores(self) -> None:
        """Final scores for the models that lack them, off the GUI thread, with a progress bar and Cancel."""
        if not self.comparison.entries or self.score_runner.is_busy:
            return
        self._cancel_scores = threading.Event()
        cancel, view, report = self._cancel_scores, _frozen(self.comparison), self.progress_changed.emit

        def job():
            view.compute_scores(progress=report, cancel=cancel.is_set)
            return view

        self.scores_button.setEnabled(False)
        self.cancel_scores_button.setEnabled(True)
        self.score_progress.setValue(0)
        self.score_runner.submit("scores", job, self._scores_done, self._scores_failed)

    def cancel_scores(self) -> None:
        self._cancel_scores.set()
        self.score_progress.setFormat("cancelling…")

    @property
    def computing_scores(self) -> bool:
        return self.score_runner.is_busy

    def _score_progress(self, fraction: float, message: str) -> None:
        self.score_progress.setValue(int(1000 * fraction))
        self.score_progress.setFormat(message[:60])

    def _scores_done(self, _view) -> None:
        self.scores_button.setEnabled(True)
        self.cancel_scores_button.setEnabled(False)
        self.score_progress.setValue(1000)
        self.score_progress.setFormat("scores done")
        self._stale |= {"table", "rd"}
        self._refresh_current()

    def _scores_failed(self, text: str) -> None:
        self.scores_button.setEnabled(True)
        self.cancel_scores_button.setEnabled(False)
        cancelled = "Cancelled" in text
        self.score_progress.setFormat("cancelled" if cancelled else "failed")
        if not cancelled:
            self.show_error(text)
        self._stale |= {"table", "rd"}  # scores finished before the cancel are kept
        self._refresh_current()

    # traversals
    def _traversals_ready(self, result) -> None:
        view, (cells, start, thumbs) = result
        if not self._done(view, "traversals", cells):
            return
        strip = tile(thumbs, len(thumbs))
        w = thumbs.shape[-1]
        self._thumb_layout = (start, w + 1)
        self.base_thumbs.set_grid(strip)
        chosen = self.base_spin.value() - start
        self.base_thumbs.set_highlight((chosen * (w + 1) + 0.5, 0.5, w + 1, thumbs.shape[-2] + 1)
                                       if 0 <= chosen < len(thumbs) else None)
        short = len(view.keys) > 2
        most_rows = max((c.cells.shape[0] for c in cells.values() if not isinstance(c, Unavailable)), default=0)

        def draw_one(key: str, grid: TitledGrid) -> None:
            data = cells[key]
            if isinstance(data, Unavailable):
                grid.show_reason(data.reason)
                return
            rows, cols = data.cells.shape[:2]
            flat = data.cells.reshape(rows * cols, *data.cells.shape[2:])
            images = flat[:, None] if flat.ndim == 3 else flat.transpose(0, 3, 1, 2)
            image = tile(images, cols)
            h, w = data.cells.shape[2:4]
            for r, dim in enumerate(data.dimmed):
                if dim:
                    top = 1 + r * (h + 1)
                    image[top:top + h] = (image[top:top + h] * 0.35).astype(np.uint8)
            if rows < most_rows:  # blank rows below: every model's rows have the same height, so they line up
                blank = np.full(((most_rows - rows) * (h + 1), *image.shape[1:]), 30, dtype=np.uint8)
                image = np.concatenate([image, blank])
            names = [_short_row(t) if short else t for t in data.row_labels]
            grid.view.set_grid(image, grid_ticks(rows, h, 1, names), grid_ticks(cols, w, 1, data.col_labels))
            grid.view.setToolTip("\n".join(data.row_labels))
            grid.note.setText(data.note)

        self._fill_grids(self.traversal_row, self.traversal_grids, view.labels(), draw_one)
        self.base_spin.setMaximum(max(0, len(view.entries[0].test_indices) - 1))

    # reconstructions and samples
    def _recon_ready(self, result) -> None:
        view, (pairs, samples) = result
        if not self._done(view, "recon", (pairs, samples)):
            return
        def draw_one(key: str, grid: TitledGrid) -> None:
            pair, drawn = pairs[key], samples[key]
            rows, names, notes = [], [], []
            if isinstance(pair, Unavailable):
                notes.append(pair.reason)
            else:
                rows += [pair.inputs, pair.outputs]
                names += ["inputs", "reconstruction"]
                notes.append(pair.note)
            if isinstance(drawn, Unavailable):
                notes.append(drawn.reason)
            else:
                rows.append(drawn)
                names.append("prior samples")
            if not rows:
                grid.show_reason("; ".join(n for n in notes if n))
                return
            count = max(len(r) for r in rows)
            stacked = np.concatenate([r[:count] for r in rows])
            image = tile(stacked, count)
            h = stacked.shape[2]
            grid.view.set_grid(image, grid_ticks(len(rows), h, 1, names), None)
            grid.note.setText("; ".join(n for n in notes if n))

        self._fill_grids(self.recon_row, self.recon_grids, view.labels(), draw_one)

    # KL and MI
    def _heat_ready(self, result) -> None:
        view, (kl, mi) = result
        if not self._done(view, "heat", (kl, mi)):
            return
        labels = view.labels()
        self._clear_plot(self.kl_plot, self.kl_items)
        shown = [k for k in view.keys if isinstance(kl.values[k], np.ndarray)]
        width = 0.8 / max(1, len(shown))
        for i, key in enumerate(shown):
            values = np.sort(kl.values[key])[::-1]
            x = np.arange(len(values)) - 0.4 + width * (i + 0.5)
            item = pg.BarGraphItem(x=x, height=values, width=width * 0.95, brush=pg.mkBrush(*view.colour(key), 230),
                                   pen=None, name=labels[key])
            self.kl_plot.addItem(item)
            self.kl_items[key] = item
        self.kl_plot.setYRange(0, kl.vmax * 1.05)
        cmap = pg.colormap.get("viridis")

        def draw_one(key: str, grid: TitledGrid) -> None:
            matrix = mi.values[key]
            if isinstance(matrix, Unavailable):
                grid.show_reason(matrix.reason)
                return
            grid.note.setText("")
            names = mi.factor_names.get(key, ())
            rgb = cmap.map(np.clip(matrix / mi.vmax, 0, 1).reshape(-1), mode="byte")[:, :3]
            image = rgb.reshape(*matrix.shape, 3).repeat(HEAT_CELL, 0).repeat(HEAT_CELL, 1)
            grid.view.set_grid(np.ascontiguousarray(image.astype(np.uint8)),
                               [(HEAT_CELL * (j + 0.5), f"z{j}") for j in range(matrix.shape[0])],
                               [(HEAT_CELL * (k + 0.5), str(n)) for k, n in enumerate(names)])

        self._fill_grids(self.mi_row, self.mi_grids, labels, draw_one)
        gradient = cmap.map(np.linspace(1, 0, 200), mode="byte")[:, :3].astype(np.uint8)
        bar = np.ascontiguousarray(np.repeat(gradient[:, None, :], 16, axis=1))
        self.colour_bar.set_grid(bar, [(0, f"{mi.vmax:.2f}"), (100, f"{mi.vmax / 2:.2f}"), (199, "0")], None)
        reasons = {k: v for k, v in kl.values.items() if isinstance(v, Unavailable)}
        self.heat_note.setText(f"One MI colour scale 0…{mi.vmax:.2f} for every model (bar at the right); KL bars "
                               "share one axis." + ("\n" + _unavailable_text(labels, reasons) if reasons else ""))
        self.highlight(self.highlighted)

    # rate–distortion
    def _rd_ready(self, result) -> None:
        view, rd = result
        if not self._done(view, "rd", rd):
            return
        labels = view.labels()
        self._clear_rd()
        by_key = {p.key: p for p in rd.points}
        for line in rd.lines:
            xs = [by_key[k].kl for k in line if k in by_key]
            ys = [by_key[k].recon for k in line if k in by_key]
            self.rd_lines.append(self.rd_plot.plot(xs, ys, pen=pg.mkPen((170, 170, 170), width=1,
                                                                         style=Qt.PenStyle.DashLine)))
        for point in rd.points:
            item = pg.ScatterPlotItem([point.kl], [point.recon], size=11, brush=pg.mkBrush(*view.colour(point.key)),
                                      pen=pg.mkPen("w"), name=labels[point.key])
            item.setToolTip(f"{labels[point.key]}: KL {point.kl:.2f}, recon {point.recon:.2f}")
            self.rd_plot.addItem(item)
            self.rd_items[point.key] = item
        self.rd_note.setText(_unavailable_text(labels, rd.unavailable) or
                             "Each point is one model: lower is better reconstruction, right is more information "
                             "in the code; runs of one sweep are joined in the order of their swept value.")
        self.highlight(self.highlighted)

    # --- exports (the one path: engine/compare_figure.py renders what the CLI writes) ----------------------
    def figure_choices(self) -> dict[str, Any]:
        """What the figure should show, read on the GUI thread: the frozen comparison, the traversal settings and
        the Curves view's term, x axis and log-scale toggle (before that view was shown: recon and KL by step)."""
        if not self.comparison.entries:
            raise ValueError("nothing to export yet: add models to compare")
        term = self.term_combo.currentText()
        return {"comparison": _frozen(self.comparison), "base": self.base_spin.value(),
                "span": self.span_slider.value(), "steps": self.steps_spin.value(),
                "terms": [term] if term else None, "x": self.x_combo.currentData(),
                "log_y": self.log_check.isChecked()}

    def figure(self, views: tuple[str, ...] | None = None, choices: dict[str, Any] | None = None) -> np.ndarray:
        """The labelled figure of these views (all: the whole tab) for the models compared, as the CLI draws it,
        with the choices on screen (`figure_choices()`, read now unless given)."""
        from engine.compare_figure import VIEWS as ALL_VIEWS
        from engine.compare_figure import comparison_figure

        chosen = dict(choices or self.figure_choices())
        return comparison_figure(chosen.pop("comparison"), tuple(views or ALL_VIEWS), **chosen)

    def export_png(self, path: str | Path, views: tuple[str, ...] | None = None,
                   choices: dict[str, Any] | None = None) -> Path:
        out = save_png(self.figure(views, choices), path)
        self.status.setText(f"Saved {out}")
        return out

    def export_csv(self, path: str | Path) -> Path:
        if not self.comparison.entries:
            raise ValueError("nothing to export yet: add models to compare")
        table = _frozen(self.comparison).csv_table()
        out = write_csv(path, table.columns, table.rows)
        self.status.setText(f"Saved {out}")
        return out

    def gif_frames(self) -> list[np.ndarray]:
        """One frame per traversal value: every model's rows at that value side by side, under its label."""
        from engine.imaging import labelled_grid

        cells = self.results.get("traversals")
        if cells is None:
            raise ValueError("nothing to export yet: show the Traversals view first")
        labels = self.comparison.labels()
        shown = {k: c for k, c in cells.items() if not isinstance(c, Unavailable) and k in labels}
        if not shown:
            raise ValueError("no model here has a continuous latent to traverse")
        steps = min(c.cells.shape[1] for c in shown.values())
        frames = []
        for t in list(range(steps)) + list(range(steps - 2, 0, -1)):
            panels = []
            for key, data in shown.items():
                column = data.cells[:, t:t + 1]
                panel = labelled_grid(column, [lbl.rsplit(" · ", 1)[0] for lbl in data.row_labels],
                                      [data.col_labels[t]], cell_size=GIF_CELL, dimmed=data.dimmed)
                panels.append(self._titled(panel, labels[key], self.comparison.colour(key)))
            height = max(p.shape[0] for p in panels)
            frame = np.concatenate([np.pad(p, ((0, height - p.shape[0]), (0, 8), (0, 0)), constant_values=255)
                                    for p in panels], axis=1)
            frames.append(np.ascontiguousarray(frame))
        return frames

    @staticmethod
    def _titled(panel: np.ndarray, title: str, colour: tuple[int, int, int]) -> np.ndarray:
        from PIL import Image, ImageDraw, ImageFont

        font = ImageFont.load_default(size=14)
        image = Image.new("RGB", (panel.shape[1], panel.shape[0] + 22), (255, 255, 255))
        image.paste(Image.fromarray(panel if panel.ndim == 3 else np.stack([panel] * 3, -1)), (0, 22))
        draw = ImageDraw.Draw(image)
        draw.rectangle((0, 4, 12, 16), fill=colour)
        draw.text((16, 2), title, fill=colour, font=font)
        return np.asarray(image)

    def export_gif(self, path: str | Path, frame_ms: int = 160) -> Path:
        out = save_gif(self.gif_frames(), path, frame_ms=frame_ms)
        self.status.setText(f"Saved {out}")
        return out

    def export_figure(self, path: str | Path) -> Path:
        """Ctrl+E: the shown view (PNG), the traversals (GIF) or the table (CSV)."""
        suffix = Path(path).suffix.lower()
        if suffix == ".csv":
            return self.export_csv(path)
        if suffix == ".gif":
            return self.export_gif(path)
        return self.export_png(path, FIGURE_VIEWS[self.current_view()])

    def export_in_background(self, path: str | Path) -> bool:
        """Ctrl+E: a figure is drawn on the worker thread (computing views it needs), never on the GUI thread."""
        suffix = Path(path).suffix.lower()
        if suffix not in (".png", ".gif"):
            return False
        if suffix == ".gif":
            self._write_in_background(lambda: self.export_gif(path))
            return True
        views, choices = FIGURE_VIEWS[self.current_view()], self.figure_choices()
        self._write_in_background(lambda: self.export_png(path, views, choices))
        return True

    def _write_in_background(self, write) -> None:
        self.status.setText("exporting…")
        self.runner.submit("export", write, lambda out: self.status.setText(f"Saved {out}"), self.show_error)

    def _ask(self, title: str, suffix: str, filter_text: str) -> str | None:
        return ask_save_path(self, title, "compare", suffix, filter_text)

    def _export_view_dialog(self) -> None:
        views = FIGURE_VIEWS[self.current_view()]
        write_chosen(self._ask("Export this view", "png", "PNG image (*.png)"),
                     lambda p: self._write_in_background(lambda c=self.figure_choices(): self.export_png(p, views, c)),
                     self._export_failed)

    def _export_all_dialog(self) -> None:
        write_chosen(self._ask("Export the comparison", "png", "PNG image (*.png)"),
                     lambda p: self._write_in_background(lambda c=self.figure_choices(): self.export_png(p, None, c)),
                     self._export_failed)

    def _export_gif_dialog(self) -> None:
        write_chosen(self._ask("Export traversals GIF", "gif", "Animated GIF (*.gif)"),
                     lambda p: self._write_in_background(lambda: self.export_gif(p)), self._export_failed)

    def _export_csv_dialog(self) -> None:
        write_chosen(self._ask("Export comparison table", "csv", "CSV (*.csv)"), self.export_csv,
                     self._export_failed)

    def _export_failed(self, exc: Exception) -> None:
        warn_export_failed(self, exc)

    # --- dialogs -----------------------------------------------------------------------------------------
    def _add_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Add checkpoints to compare", "",
                                                "Checkpoints (*.safetensors);;All files (*)")
        if paths:
            self.add_specs(paths)

    def _add_folder_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Add a run folder or a sweep folder")
        if path:
            self.add_specs([path])

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = getattr(self.window(), "recent_runs", lambda: [])()
        if not recent:
            self.recent_menu.addAction("(none yet)").setEnabled(False)
        for path in recent:
            action = self.recent_menu.addAction(f"{Path(path).name}  —  {Path(path).parent}")
            action.triggered.connect(lambda _checked=False, p=path: self.add_specs([p]))

    def _add_example(self) -> None:
        spec = self.example_combo.currentData()
        if spec:
            self.add_specs([spec])

    # --- status ------------------------------------------------------------------------------------------
    def show_error(self, text: str) -> None:
        self.status.setText(f"⚠ {text}")

    def _busy(self, busy: bool) -> None:
        if not busy and self.status.text().startswith(("computing", "loading")):
            self.status.setText(f"{len(self.keys)} model(s) compared")

    def shutdown(self) -> None:
        if self._shut:
            return
        self._shut = True
        self._draw_timer.stop()
        self._span_timer.stop()
        self.live_timer.stop()
        if self.source is not None:
            try:
                self.source.weights_updated.disconnect(self._live_weights_updated)
                self.source.changed.disconnect(self._live_source_changed)
            except (RuntimeError, TypeError):
                pass
        self._draw_queue.clear()
        self._cancel_scores.set()
        self.runner.shutdown()
        self.score_runner.shutdown()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self.shutdown()
        super().closeEvent(event)


def open_comparison(window: Any, specs: list[str], replace: bool = True) -> bool:
    """Show the Compare tab with these models (File → Compare with…, the welcome card, the Sweep tab)."""
    tabs = window.tabs
    if "comparePanel" in getattr(tabs, "pending", {}):
        tabs._build_panel("comparePanel")
    panel = window.panels.get("comparePanel")
    if not isinstance(panel, ComparePanel):
        window.show_message("The Compare tab is not available in this build.", "error")
        return False
    tabs.setCurrentWidget(panel)
    if replace:
        panel.compare_specs(specs)
        return True
    return panel.add_specs(specs)
