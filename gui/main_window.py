"""The main window: Data / Model / Training docks on the left, one tab per panel, menus, status bar.

A thin shell over `gui.state.AppState` (the Qt-free state: dataset, presets, checkpoints, sessions, recent runs,
and the job thread that loads and builds them off the GUI thread). The window turns the docks into a config,
asks the state for a session, hands a ready session to a `TrainingWorker`, routes the worker's signals (emitted on
the GUI thread) to the Training tab, and keeps the `ModelSource` the exploration panels read up to date.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from PySide6.QtCore import QEventLoop, QObject, QSettings, QStandardPaths, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engine.config import TrainConfig
from engine.errors import ConfigError
from engine.events import EpochSummary, Failed, Finished, Paused, Preview, Resumed, StepMetrics
from engine.models import families, model_class
from engine.probe import unavailable_reason
from gui.app import APPLICATION, ORGANIZATION, SETTINGS_ENV, app_settings, guard_singleton_refcounts
from gui.docks import add_dock
from gui.docks.data import DataDock
from gui.docks.model import ModelDock, presets_module
from gui.docks.training import TrainingDock
from gui.examples_menu import build_examples_menu
from gui.model_source import ModelSource
from gui.panels.training import TrainingPanel
from gui.state import AppState, DatasetView, Job, OpenedCheckpoint
from gui.widgets.banner import MessageBanner
from gui.widgets.welcome import install_welcome_card
from gui.worker import TrainingWorker

guard_singleton_refcounts()  # before any Qt call is made through this module (see gui/app.py)

DEFAULT_PRESET = "dsprites-disentangle"  # the first-run default (engine.presets.DEFAULT_PRESET)
DEFAULT_DATASET = "dsprites?subset=20000"
RUNS_ENV = "LATENT_EXPLORER_RUNS"  # folder for run folders instead of the user's data folder
# Without the preset: an MLP β-VAE, which shows recognisable dSprites reconstructions within ~40 s on 2 CPU
# cores (a conv backbone at 64×64 managed ~1 step/s there).
FALLBACK_HPARAMS = {"backbone": "mlp", "hidden": 512, "depth": 2, "latent_dim": 10, "beta": 4.0}
FALLBACK_BATCH_SIZE = 64
SOURCE_NOTIFY_INTERVAL_S = 0.5  # panels hear about newer live weights at most 2× a second
APP_PROBE_EVERY_S = 5.0  # the app's live disentanglement probe cadence (seconds of training; engine/probe.py)
PANEL_IMPORT_DELAY_MS = 300
RUN_LABEL_MAX_WIDTH = 260  # px: permanent status widgets leave room for messages
STATUS_MESSAGE_CHARS = 120  # longer messages are in the banner; the status bar shows their start

# (module, class, tab title, objectName) of the exploration panels; a missing module shows a placeholder.
PANEL_TABS: tuple[tuple[str, str, str, str], ...] = (
    ("gui.panels.traversal", "TraversalPanel", "Traversal", "traversalPanel"),
    ("gui.panels.interpolation", "InterpolationPanel", "Interpolation", "interpolationPanel"),
    ("gui.panels.conditional", "ConditionalPanel", "Conditional", "conditionalPanel"),
    ("gui.panels.latent_map", "LatentMapPanel", "Latent map", "latentMapPanel"),
    ("gui.panels.gallery", "GalleryPanel", "Galleries", "galleryPanel"),
    ("gui.panels.evaluation", "EvaluationPanel", "Evaluation", "evaluationPanel"),
)


__all__ = ["APPLICATION", "ORGANIZATION", "SETTINGS_ENV", "MainWindow", "app_settings", "runs_root"]


def runs_root() -> Path:
    """Where new run folders go: $LATENT_EXPLORER_RUNS, else the user's data folder."""
    env = os.environ.get(RUNS_ENV)
    if env:
        return Path(env)
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.GenericDataLocation)
    return Path(base or Path.home()) / "latent-explorer" / "runs"


def completed_epochs(epochs: int) -> str:
    """Finished runs and checkpoints count *completed* epochs; the running bar shows the current one (1-based)."""
    return f"{epochs:,} epoch{'s' if epochs != 1 else ''} completed"


class GuiPoster(QObject):
    """`post(fn)` from any thread runs `fn()` on the GUI thread (a queued signal to a bound method)."""

    _posted = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._posted.connect(self._run)

    def post(self, fn: Any) -> None:
        self._posted.emit(fn)

    def _run(self, fn: Any) -> None:
        fn()


def wait_for(job: Job) -> bool:
    """Keep the event loop turning until the job's result was delivered (the window never freezes meanwhile)."""
    if not job.done.is_set():
        loop = QEventLoop()
        job.add_done_callback(lambda _job: loop.quit())
        if not job.done.is_set():
            loop.exec()
    return job.ok


class MainWindow(QMainWindow):
    """The whole app in its default state: ready to train the default preset with one click."""

    def __init__(self, settings: QSettings | None = None, defer_panels: bool = False) -> None:
        """`defer_panels`: show the window first and build the exploration panels once their modules (numpy,
        scikit-learn …) have been imported off the GUI thread — what `python main.py` does to start fast."""
        super().__init__()
        self._defer_panels = defer_panels
        self.setObjectName("mainWindow")
        self.setWindowTitle(APPLICATION)
        self.setAcceptDrops(True)
        self.resize(1280, 800)
        self.settings = settings if settings is not None else app_settings()
        self.poster = GuiPoster(self)
        self.state = AppState(post=self.poster.post, store=self.settings)
        self.source = ModelSource(self)
        self.worker: TrainingWorker | None = None
        self.paused_event: Paused | None = None
        self.finished_event: Finished | None = None
        self.failed_event: Failed | None = None
        self._last_source_notify = 0.0
        self._closed = False
        self._configuring = False
        self._steps_seen = 0

        self._build_central()
        self._build_docks()
        self._build_menus()
        self._build_status_bar()
        self._restore_settings()
        self._apply_initial_preset()
        self._configure_idle_live_controls()
        self.model_settings.hparam_form.family_changed.connect(self._configure_idle_live_controls)
        self.state.message.connect(self._on_state_message)
        self.state.dataset_changed.connect(self._show_dataset)
        self.state.checkpoint_opened.connect(self._show_opened_checkpoint)
        self.state.session_ready.connect(self._on_session_ready)
        self.state.recent_changed.connect(lambda _recent: self._rebuild_recent_menu())
        self.state.busy_changed.connect(self._on_busy)
        self._update_actions()
        self.welcome_card = install_welcome_card(self)

    # --- the state the window renders (owned by `self.state`) ---------------------------------------------
    @property
    def dataset(self) -> Any:
        """The loaded Dataset shown in the Data dock and used by Start."""
        return self.state.dataset

    @property
    def dataset_spec(self) -> str:
        return self.state.dataset_spec

    @property
    def session(self) -> Any:
        return self.state.session

    @property
    def checkpoint_path(self) -> str | None:
        return self.state.checkpoint_path

    @property
    def preset_config(self) -> TrainConfig | None:
        return self.state.preset_config

    @property
    def run_dir(self) -> str | None:
        return self.state.run_dir

    @property
    def messages(self) -> list[tuple[str, str]]:
        """(level, text) of everything shown, newest last."""
        return self.state.messages

    # ================================================================================================
    # construction
    # ================================================================================================
    def _build_central(self) -> None:
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        self.banner = MessageBanner()
        layout.addWidget(self.banner)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("panelTabs")
        self.tabs.setDocumentMode(True)
        self.training_panel = TrainingPanel()
        self.tabs.addTab(self.training_panel, "Training")
        self.panels: dict[str, QWidget] = {"trainingPanel": self.training_panel}
        self._pending_panels: dict[str, tuple[str, str, str]] = {}
        for module_name, class_name, title, object_name in PANEL_TABS:
            if self._defer_panels:
                widget = self._placeholder(title, "Loading…")
                self._pending_panels[object_name] = (module_name, class_name, title)
            else:
                widget = self._make_panel(module_name, class_name, title)
            widget.setObjectName(object_name)
            self.tabs.addTab(widget, title)
            self.panels[object_name] = widget
        layout.addWidget(self.tabs, 1)
        if self._pending_panels:
            self._panel_imports_done = threading.Event()
            QTimer.singleShot(PANEL_IMPORT_DELAY_MS, self._start_panel_imports)
            self._panel_timer = QTimer(self)
            self._panel_timer.setInterval(50)
            self._panel_timer.timeout.connect(self._build_pending_panels)
            self.tabs.currentChanged.connect(self._tab_shown)
        self.setCentralWidget(central)
        self.training_panel.start_requested.connect(self.start_training)
        self.training_panel.pause_toggled.connect(self.toggle_pause)
        self.training_panel.stop_requested.connect(self.stop_training)
        self.training_panel.live_value_changed.connect(self.set_live_value)

    def _start_panel_imports(self) -> None:
        """After the window has painted: the imports hold the GIL much of the time, so they wait for it."""
        if self._pending_panels:
            threading.Thread(target=self._import_panel_modules, name="panel-imports").start()
            self._panel_timer.start()

    def _import_panel_modules(self) -> None:
        """Background thread: import the panels' modules only (no Qt objects are made here)."""
        for module_name, _, _ in list(self._pending_panels.values()):
            try:
                importlib.import_module(module_name)
            except Exception:  # reported when the panel is built on the GUI thread
                pass
        self._panel_imports_done.set()

    def _build_pending_panels(self) -> None:
        """One panel per timer tick, so the event loop turns between them (each costs tens of ms)."""
        if self._panel_imports_done.is_set():
            if self._pending_panels:
                self._build_panel(next(iter(self._pending_panels)))
            if not self._pending_panels:
                self._panel_timer.stop()
                from gui.gc_guard import startup_finished

                startup_finished()  # start-up objects leave the collector's reach (see gui/gc_guard.py)

    def _tab_shown(self, index: int) -> None:
        object_name = self.tabs.widget(index).objectName() if index >= 0 else ""
        if object_name in self._pending_panels:
            self._build_panel(object_name)

    def _build_panel(self, object_name: str) -> None:
        """Replace a deferred tab's placeholder with its panel (GUI thread)."""
        entry = self._pending_panels.pop(object_name, None)
        if entry is None:
            return
        module_name, class_name, title = entry
        widget = self._make_panel(module_name, class_name, title)
        widget.setObjectName(object_name)
        placeholder = self.panels[object_name]
        index = self.tabs.indexOf(placeholder)
        current = self.tabs.currentIndex()
        self.tabs.blockSignals(True)
        self.tabs.removeTab(index)
        self.tabs.insertTab(index, widget, title)
        self.tabs.setCurrentIndex(current)
        self.tabs.blockSignals(False)
        placeholder.deleteLater()
        self.panels[object_name] = widget

    def _make_panel(self, module_name: str, class_name: str, title: str) -> QWidget:
        """The exploration panel if its module is installed, else a plain placeholder saying why."""
        try:
            module = importlib.import_module(module_name)
            panel = getattr(module, class_name)(self.source)
            sync = getattr(panel, "sync_with_source", None)
            if callable(sync):
                sync()  # the source may have changed before this panel existed
            return panel
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                return self._placeholder(title, f"could not load this panel: {exc}")
            return self._placeholder(title, "This panel is not part of this build yet.")
        except Exception as exc:  # a broken panel must not take the window down
            traceback.print_exc()
            return self._placeholder(title, f"could not load this panel: {type(exc).__name__}: {exc}")

    @staticmethod
    def _placeholder(title: str, text: str) -> QWidget:
        widget = QWidget()
        layout = QVBoxLayout(widget)
        label = QLabel(f"<h3>{title}</h3><p>{text}</p>")
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        label.setWordWrap(True)
        layout.addWidget(label)
        return widget

    def _build_docks(self) -> None:
        self.data_settings = DataDock(self.state)
        self.data_dock = add_dock(self, "Data", "dataDock", self.data_settings)
        self.model_settings = ModelDock(self.state)
        self.model_settings.preset_chosen.connect(self.apply_preset)
        self.model_dock = add_dock(self, "Model", "modelDock", self.model_settings)
        self.training_settings = TrainingDock()
        self.training_dock = add_dock(self, "Training", "trainingDock", self.training_settings)
        self.tabifyDockWidget(self.model_dock, self.training_dock)
        self.model_dock.raise_()
        self.resizeDocks([self.data_dock], [340], Qt.Orientation.Horizontal)

    def _build_menus(self) -> None:
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        self.new_run_action = self._action(file_menu, "&New run", QKeySequence.StandardKey.New, self.new_run)
        self.open_action = self._action(file_menu, "&Open checkpoint…", QKeySequence.StandardKey.Open,
                                        self._open_checkpoint_dialog)
        self.save_action = self._action(file_menu, "&Save checkpoint", QKeySequence.StandardKey.Save,
                                        self._save_checkpoint_dialog)
        self.export_action = self._action(file_menu, "&Export figure…", QKeySequence("Ctrl+E"),
                                          self._export_figure_dialog)
        self.recent_menu = QMenu("&Recent runs", self)
        self.recent_menu.setObjectName("recentMenu")
        file_menu.addMenu(self.recent_menu)
        file_menu.addMenu(build_examples_menu(self))
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", QKeySequence.StandardKey.Quit, self.close)
        train_menu = menu.addMenu("&Training")
        self.start_action = self._action(train_menu, "&Start", QKeySequence("Ctrl+R"), self.start_training)
        self.pause_action = self._action(train_menu, "&Pause / resume", QKeySequence(Qt.Key.Key_Space),
                                         self.toggle_pause)
        self.stop_action = self._action(train_menu, "S&top", QKeySequence("Ctrl+."), self.stop_training)
        view_menu = menu.addMenu("&View")
        for dock in (self.data_dock, self.model_dock, self.training_dock):
            view_menu.addAction(dock.toggleViewAction())
        help_menu = menu.addMenu("&Help")
        self.quick_start_action = self._action(help_menu, "&Quick start", QKeySequence.StandardKey.HelpContents,
                                               self.show_quick_start)
        self._action(help_menu, "&About", None, self._about)
        self._rebuild_recent_menu()

    def _action(self, menu: QMenu, text: str, shortcut: Any, slot: Any) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(shortcut)
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.triggered.connect(slot)
        menu.addAction(action)
        self.addAction(action)
        return action

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.device_label = QLabel(f"device: {self._default_device_name()}")
        self.step_label = QLabel("step: –")
        self.speed_label = QLabel("samples/s: –")
        self.run_label = QLabel("run folder: –")
        self.run_label.setMaximumWidth(RUN_LABEL_MAX_WIDTH)  # the full path is its tooltip
        for label, name in ((self.device_label, "deviceLabel"), (self.step_label, "stepLabel"),
                            (self.speed_label, "speedLabel"), (self.run_label, "runFolderLabel")):
            label.setObjectName(name)
            bar.addPermanentWidget(label)

    @staticmethod
    def _default_device_name() -> str:
        if torch.cuda.is_available():
            return "cuda"
        return f"cpu ({torch.get_num_threads()} threads)"

    # ================================================================================================
    # settings and defaults
    # ================================================================================================
    def _restore_settings(self) -> None:
        geometry = self.settings.value("window/geometry")
        state = self.settings.value("window/state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)
        self.clamp_to_screen()

    def clamp_to_screen(self) -> None:
        """Keep the window inside the screen it is on (a geometry saved on a larger monitor must not run off)."""
        screen = self.screen() or QApplication.primaryScreen()
        if screen is None:
            return
        available = screen.availableGeometry()
        frame = self.frameGeometry()
        extra_w, extra_h = frame.width() - self.width(), frame.height() - self.height()
        width = min(self.width(), available.width() - extra_w)
        height = min(self.height(), available.height() - extra_h)
        if (width, height) != (self.width(), self.height()):
            self.resize(max(width, 200), max(height, 200))
        frame = self.frameGeometry()
        x = min(max(frame.x(), available.x()), available.right() + 1 - frame.width())
        y = min(max(frame.y(), available.y()), available.bottom() + 1 - frame.height())
        if (x, y) != (frame.x(), frame.y()):
            self.move(max(x, available.x()), max(y, available.y()))

    def _save_settings(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.sync()

    def _folder(self, key: str) -> str:
        return self.state.folder(key)

    def _remember_folder(self, key: str, path: str | Path) -> None:
        self.state.remember_folder(key, path)

    def recent_runs(self) -> list[str]:
        return self.state.recent_runs()

    def _add_recent(self, path: str) -> None:
        self.state.add_recent(path)

    def _rebuild_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.recent_runs()
        if not recent:
            action = self.recent_menu.addAction("(none yet)")
            action.setEnabled(False)
            return
        for path in recent:
            action = self.recent_menu.addAction(Path(path).name + f"  —  {Path(path).parent}")
            action.setData(path)
            action.triggered.connect(lambda _checked=False, p=path: self.open_checkpoint(p, wait=False))

    def _apply_initial_preset(self) -> None:
        presets = presets_module()
        if presets is not None and self.model_settings.has_preset(DEFAULT_PRESET):
            self.model_settings.show_preset(DEFAULT_PRESET)
            self.apply_preset(DEFAULT_PRESET, load_data=False, wait=False)
        else:
            family = "beta-vae" if "beta-vae" in families() else self.model_settings.family_combo.currentData()
            self.model_settings.select_family(family)
            form = self.model_settings.hparam_form
            form.set_values({k: v for k, v in FALLBACK_HPARAMS.items() if k in form.editors})
            self.training_settings.batch_spin.setValue(FALLBACK_BATCH_SIZE)
            self.data_settings.set_spec(DEFAULT_DATASET)
        QTimer.singleShot(PANEL_IMPORT_DELAY_MS // 2, self._load_initial_dataset)

    def _load_initial_dataset(self) -> None:
        if self.dataset is None and not self.is_training and not self.state.is_busy("dataset"):
            self.data_settings.open(self.data_settings.spec)

    # ================================================================================================
    # data, model and training docks
    # ================================================================================================
    def _configure_idle_live_controls(self) -> None:
        """Before a run the live sliders edit the docks' values (and show what can change mid-run)."""
        form = self.model_settings.hparam_form
        if self.is_training or form.family is None or self._configuring:
            return
        self._configuring = True
        try:
            self.training_panel.configure_live_controls(model_class(form.family), form.raw_values(),
                                                        self.training_settings.lr)
        finally:
            self._configuring = False

    def open_dataset(self, spec: str, wait: bool = True) -> bool:
        """Load a dataset (name with options, or a path) for the next run, off the GUI thread; errors are shown,
        never raised. `wait`: keep the event loop turning until it is loaded and return whether it did."""
        job = self.data_settings.open(spec)
        if job is None:
            return False
        return wait_for(job) if wait else True

    def _show_dataset(self, view: DatasetView) -> None:
        """A new dataset (the Data dock shows it): a model explored so far belonged to the old one."""
        if not self.is_training and self.checkpoint_path is None:
            self.source.clear()
        self._update_actions()

    def apply_preset(self, name: str, load_data: bool = True, wait: bool = True) -> bool:
        """Fill every dock from a preset (dataset, family, hyperparameters, training settings); its dataset — or
        the first fallback this machine has — loads off the GUI thread, so the Data dock shows what will train."""
        presets = presets_module()
        if presets is None:
            self.show_message("No presets are available in this build.", "warning")
            return False
        try:
            config = presets.load_preset(name)
        except Exception as exc:
            self.show_message(f"Could not load preset {name!r}: {exc}", "error")
            return False
        self.state.preset_config = config
        self.fill_from_config(config)
        self.model_settings.show_preset(name)
        if load_data:
            job = self.state.load_dataset(config.dataset, list(config.fallback))
            if wait:
                return wait_for(job)
        return True

    def fill_from_config(self, config: TrainConfig) -> None:
        self.model_settings.fill(config.family, config.hparams)
        self.training_settings.fill(config)
        self.data_settings.set_spec(config.dataset)

    def build_config(self) -> TrainConfig:
        """The run the docks describe (raises ConfigError with a clear cause)."""
        spec = self.data_settings.spec or self.dataset_spec
        form = self.model_settings.hparam_form
        base = self.preset_config
        fallback = self.state.resolved_fallback(spec)
        extra: dict[str, Any] = {}
        if base is not None:
            extra = {"preview_every_s": base.preview_every_s, "test_fraction": base.test_fraction,
                     "weight_decay": base.weight_decay, "description": base.description}
        out_dir = None
        if self.training_settings.writes_run_folder:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            out_dir = str(runs_root() / f"{stamp}-{form.family}")
        return TrainConfig(
            dataset=spec, family=form.family or "", hparams=form.changed_from_defaults(), out_dir=out_dir,
            fallback=fallback, probe_every_s=APP_PROBE_EVERY_S, **self.training_settings.settings(), **extra)

    # ================================================================================================
    # running
    # ================================================================================================
    @property
    def is_training(self) -> bool:
        return self.worker is not None and self.worker.is_running

    def start_training(self, wait: bool = True) -> bool:
        """Start a new run from the docks, or continue the loaded checkpoint. The session (its dataset, model and
        optimiser) is built off the GUI thread; `wait` keeps the event loop turning until it runs. Errors are
        shown, not raised; returns whether training started (or, without `wait`, is being prepared)."""
        if self.is_training or self.is_preparing:
            return False
        try:
            if self.checkpoint_path is not None:
                job = self.state.prepare_session(continue_overrides=self._continue_overrides())
            else:
                job = self.state.prepare_session(self.build_config())
        except (ConfigError, ValueError) as exc:
            self.show_message(f"Cannot start training: {exc}", "error")
            return False
        self.training_panel.set_state("preparing")
        self._update_actions()
        job.add_done_callback(lambda _job: self._update_actions())
        if not wait:
            return True
        return wait_for(job) and self.is_training

    @property
    def is_preparing(self) -> bool:
        """A session is being built on the job thread."""
        return self.state.is_busy("session")

    def _continue_overrides(self) -> dict[str, Any]:
        """Continuing trains the dock's epochs (or max steps) *more* than the checkpoint already has."""
        step, epoch = self.state.checkpoint_position
        return {**self.training_settings.continue_overrides(step, epoch), "probe_every_s": APP_PROBE_EVERY_S}

    def _on_session_ready(self, session: Any, continuing: bool) -> None:
        if not self._closed:
            self.begin_session(session, continuing)

    def begin_session(self, session: Any, continuing: bool = False) -> None:
        """Run an already built session: wire a worker, reset the dashboard, publish live weights to panels."""
        config = session.config
        session.pause_on_error = True
        self.state.session = session
        self.state.run_dir = config.out_dir
        self.paused_event = self.finished_event = self.failed_event = None
        self._steps_seen = 0
        self.training_panel.reset(getattr(session, "total_steps", config.max_steps))
        if continuing and getattr(session, "history", None):
            self.training_panel.load_history(session.history)
        self.training_panel.set_probe_note(getattr(session, "probe_note", None))
        try:
            model_cls = model_class(config.family)
        except ConfigError:
            model_cls = None
        hparams = dict(getattr(session.model, "hparams", config.hparams))
        self.training_panel.configure_live_controls(model_cls, hparams, config.lr)
        self.run_label.setText(f"run folder: {Path(config.out_dir).name if config.out_dir else '– (not saved)'}")
        self.run_label.setToolTip(config.out_dir or "")
        self.device_label.setText(f"device: {session.device}")
        if session.dataset is not None and session.dataset is not self.dataset:
            self.state.adopt_dataset(session.dataset, getattr(session, "dataset_spec", config.dataset))
        self.source.set_live(session.snapshot_model, session.dataset, session.test_indices,
                             {"family": config.family, "dataset": config.dataset, "run_dir": config.out_dir,
                              "step": getattr(session, "step", 0)})
        worker = TrainingWorker(session, parent=self)
        worker.metrics.connect(self._on_metrics)
        worker.epoch_ended.connect(self._on_epoch)
        worker.preview.connect(self._on_preview)
        worker.probes.connect(self._on_probes)
        worker.checkpoint_written.connect(self._on_checkpoint_written)
        worker.paused.connect(self._on_paused)
        worker.resumed.connect(self._on_resumed)
        worker.warning.connect(self._on_warning)
        worker.failed.connect(self._on_failed)
        worker.finished.connect(self._on_finished)
        worker.stopped.connect(self._on_worker_stopped)
        self.worker = worker
        worker.start()
        self.training_panel.set_state("running")
        self.tabs.setCurrentWidget(self.training_panel)
        self._update_actions()

    def toggle_pause(self) -> None:
        if not self.is_training:
            return
        assert self.worker is not None
        if self.worker.control.paused:
            self.worker.resume()
            self.paused_event = None
            self.training_panel.set_state("running")
        else:
            self.worker.pause()
            self.training_panel.set_state("paused")
        self._update_actions()

    def stop_training(self) -> None:
        """Ask the session to stop at the next step; the dashboard keeps what it showed."""
        if not self.is_training:
            return
        assert self.worker is not None
        self.worker.control.stop()
        self.training_panel.set_state("stopping")
        self._update_actions()

    def set_live_value(self, name: str, value: float) -> None:
        """A live control moved: send it to the running session, or write it into the docks when idle."""
        if self.is_training:
            assert self.worker is not None
            self.worker.set_value(name, value)
            self.statusBar().showMessage(f"{name} → {value:.4g} from the next step", 4000)
        self._configuring = True  # the docks show what is in force (not re-entering the sliders)
        try:
            self._write_dock_value(name, value)
        finally:
            self._configuring = False

    def _write_dock_value(self, name: str, value: float) -> None:
        if name == "lr":
            self.training_settings.lr_spin.setValue(value)
        elif name in self.model_settings.hparam_form.editors:
            self.model_settings.hparam_form.set_values({name: value})

    # --- worker signals (all emitted on the GUI thread) ----------------------------------------------
    def _on_metrics(self, batch: list[StepMetrics]) -> None:
        self.training_panel.on_metrics(batch)
        last = batch[-1]
        self._steps_seen = last.step
        self.step_label.setText(f"step: {last.step:,}  epoch: {last.epoch}")
        self.speed_label.setText(f"samples/s: {last.samples_per_s:,.0f}")
        now = time.monotonic()
        if now - self._last_source_notify >= SOURCE_NOTIFY_INTERVAL_S:
            self._last_source_notify = now
            self.source.notify_step(last.step)

    def _on_epoch(self, summary: EpochSummary) -> None:
        self.training_panel.on_epoch(summary)

    def _on_preview(self, preview: Preview) -> None:
        self.training_panel.on_preview(preview)

    def _on_probes(self, probes: list[Any]) -> None:
        self.training_panel.on_probes(probes)
        self.source.set_probe(probes[-1])

    def _on_checkpoint_written(self, event: Any) -> None:
        self._add_recent(event.path)
        self.statusBar().showMessage(f"checkpoint written: {event.path}", 6000)

    def _on_paused(self, event: Paused) -> None:
        self.paused_event = event
        self.training_panel.set_state("paused")
        self.source.notify_settled()
        if event.reason and event.reason != "paused by user":
            self.show_message(f"Training paused at step {event.step}: {event.reason}", "warning")
        self._update_actions()

    def _on_resumed(self, event: Resumed) -> None:
        self.paused_event = None
        if self.training_panel.state == "paused":
            self.training_panel.set_state("running")
        self._update_actions()

    def _on_warning(self, message: str) -> None:
        self.show_message(message, "warning")

    def _on_failed(self, event: Failed) -> None:
        self.failed_event = event
        if event.recoverable:
            self.show_message(f"Step {event.step}: {event.cause} — training is paused; change a setting "
                              "(e.g. lower the learning rate) and resume, or stop.", "error")
            self.training_panel.set_state("paused")
        else:
            self.show_message(f"Training failed at step {event.step}: {event.cause}", "error")

    def _on_finished(self, event: Finished) -> None:
        self.finished_event = event
        self.training_panel.set_finished_text(f"{event.reason} at step {event.step:,} "
                                              f"({completed_epochs(event.epoch)})")

    def _on_worker_stopped(self) -> None:
        """The thread has ended: the run's weights become the fixed model the panels explore."""
        session, worker = self.session, self.worker
        self.worker = None
        if worker is not None:
            worker.deleteLater()
        self.training_panel.set_state("idle")
        if session is not None:
            try:
                model = session.snapshot_model()
            except Exception as exc:
                model = None
                self.show_message(f"Could not take the final weights: {exc}", "error")
            if model is not None:
                self.source.set_static(model, session.dataset, session.test_indices,
                                       {"family": session.config.family, "dataset": session.config.dataset,
                                        "run_dir": session.config.out_dir, "step": getattr(session, "step", 0)})
        self._update_actions()

    # ================================================================================================
    # checkpoints
    # ================================================================================================
    def _open_checkpoint_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open checkpoint", self._folder("checkpoints"),
                                              "Checkpoints (*.safetensors);;All files (*)")
        if path:
            self._remember_folder("checkpoints", path)
            self.open_checkpoint(path, wait=False)

    def open_checkpoint(self, path: str | Path, wait: bool = True) -> bool:
        """Load a checkpoint off the GUI thread: its model goes to the panels, its curves to the Training tab;
        Start continues it. `wait`: keep the event loop turning until it is shown; returns whether it opened."""
        if self.is_training or self.is_preparing:
            self.show_message("Stop the current run before opening a checkpoint.", "warning")
            return False
        job = self.state.open_checkpoint(path)
        self.statusBar().showMessage(f"opening {path}…")
        return wait_for(job) if wait else True

    def _show_opened_checkpoint(self, opened: OpenedCheckpoint) -> None:
        """The state loaded a checkpoint (job thread): fill the docks, curves, previews; hand the model to panels."""
        loaded, path = opened.loaded, opened.path
        config: TrainConfig = loaded.config
        self.model_settings.show_preset(None)
        self.fill_from_config(config)
        dataset = self.dataset if opened.dataset_view is not None or self.dataset_spec == config.dataset else None
        self.training_panel.reset(config.max_steps)
        drawn = self.training_panel.load_history(loaded.history)
        self.training_panel.set_probe_note(unavailable_reason(dataset, loaded.model))
        self.training_panel.configure_live_controls(type(loaded.model), loaded.model.hparams, config.lr)
        self.training_panel.set_finished_text(f"checkpoint at step {loaded.step:,} "
                                              f"({completed_epochs(loaded.epoch)}) — Start continues it")
        self.training_panel.start_button.setText("Continue")
        self.training_panel.start_button.setToolTip("Train the dock's epochs (or max steps) more from this checkpoint")
        self.training_panel.recon_grid.set_image(opened.recon_grid)
        self.training_panel.samples_grid.set_image(opened.samples_grid)
        self.source.set_static(loaded.model, dataset, opened.test_indices,
                               {"family": config.family, "dataset": config.dataset, "checkpoint": path,
                                "step": loaded.step, "meta": dict(loaded.meta or {})})
        self.step_label.setText(f"step: {loaded.step:,}  ({completed_epochs(loaded.epoch)})")
        self.run_label.setText(f"checkpoint: {Path(path).name}")
        self.run_label.setToolTip(path)
        self.statusBar().showMessage(f"opened {path} ({drawn} recorded steps)", 6000)
        self._update_actions()

    def _save_checkpoint_dialog(self) -> None:
        if self.session is None:
            self.show_message("There is no run to save yet: start training or open a checkpoint.", "info")
            return
        if self.is_training:
            self.request_checkpoint()
            return
        default = str(Path(self.run_dir or self._folder("checkpoints")) / f"step{self.session.step}.safetensors")
        path, _ = QFileDialog.getSaveFileName(self, "Save checkpoint", default, "Checkpoints (*.safetensors)")
        if path:
            self._remember_folder("checkpoints", path)
            self.save_checkpoint_to(path)

    def request_checkpoint(self) -> None:
        """While training: the session writes a checkpoint into its run folder at the next step."""
        if self.worker is not None:
            self.worker.request_checkpoint()
            self.statusBar().showMessage("a checkpoint will be written at the next step", 4000)

    def save_checkpoint_to(self, path: str | Path) -> bool:
        """Save the (stopped) session's weights; errors are shown, not raised."""
        if self.session is None or self.is_training:
            return False
        path = Path(path)
        if path.suffix != ".safetensors":
            path = path.with_suffix(".safetensors")
        try:
            written = self.session.save_checkpoint(path)
        except Exception as exc:
            self.show_message(f"Could not save the checkpoint to {path}: {exc}", "error")
            return False
        self._add_recent(str(written or path))
        self.statusBar().showMessage(f"saved {written or path}", 6000)
        return True

    def new_run(self) -> None:
        """Forget a loaded checkpoint and the last run; the docks keep their settings."""
        if self.is_training:
            self.show_message("Stop the current run first.", "warning")
            return
        self.state.forget_run()
        self.training_panel.reset(None)
        self.training_panel.progress.setFormat("ready — press Start")
        self.training_panel.start_button.setText("Start")
        self.source.clear()
        self.run_label.setText("run folder: –")
        self.step_label.setText("step: –")
        self.banner.hide()
        self._update_actions()

    # ================================================================================================
    # export, messages, drag and drop, closing
    # ================================================================================================
    def _export_figure_dialog(self) -> None:
        panel = self.tabs.currentWidget()
        exporter = getattr(panel, "export_figure", None)
        if exporter is None:
            self.show_message("This tab has nothing to export.", "info")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export figure", self._folder("export"),
                                              "PNG image (*.png);;GIF animation (*.gif);;CSV (*.csv);;JSON (*.json)")
        if path:
            self._remember_folder("export", path)
            self.export_current(path)

    def export_current(self, path: str | Path, background: bool = True) -> bool:
        """Export the current tab's figure; slow formats (GIFs) are encoded off the GUI thread when `background`."""
        panel = self.tabs.currentWidget()
        exporter = getattr(panel, "export_figure", None)
        if exporter is None:
            return False
        try:
            later = getattr(panel, "export_in_background", None)
            if background and later is not None and later(path):
                self.statusBar().showMessage(f"exporting {path}…", 6000)
                return True
            written = exporter(path)
        except Exception as exc:
            self.show_message(f"Could not export to {path}: {exc}", "error")
            return False
        self.statusBar().showMessage(f"exported {written or path}", 6000)
        return True

    def show_message(self, text: str, level: str = "info") -> None:
        """Non-modal: a banner above the tabs and the status bar; the window keeps working."""
        self.state.report(level, text)

    def _on_state_message(self, level: str, text: str) -> None:
        self.banner.show_message(text, level)
        self.statusBar().showMessage(text.splitlines()[0][:STATUS_MESSAGE_CHARS], 8000)

    def _on_busy(self, text: str) -> None:
        """What the job thread is doing, in the status bar."""
        if text:
            self.statusBar().showMessage(text)
        elif self.statusBar().currentMessage().endswith("…"):
            self.statusBar().clearMessage()

    def show_quick_start(self) -> QWidget:
        from gui.quick_start import show_quick_start

        return show_quick_start(self)

    def _about(self) -> None:
        box = QMessageBox(QMessageBox.Icon.Information, APPLICATION,
                          "Train autoencoders and VAEs on your own machine and watch the latent space form.",
                          QMessageBox.StandardButton.Ok, self)
        box.setModal(False)
        box.show()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt override)
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 (Qt override)
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        event.acceptProposedAction()
        for path in paths:
            self.open_path(path, wait=False)

    def open_path(self, path: str | Path, wait: bool = True) -> bool:
        """A dropped or given path: a .safetensors file is a checkpoint, anything else a dataset."""
        path = Path(path)
        if path.suffix.lower() == ".safetensors":
            return self.open_checkpoint(path, wait=wait)
        self._remember_folder("data", path)
        return self.open_dataset(str(path), wait=wait)

    def ask_save_on_close(self) -> QMessageBox.StandardButton:
        """Closing mid-training: Save, Discard or Cancel (tests replace this method)."""
        return QMessageBox.question(
            self, "Training is running",
            "Training is still running. Save a checkpoint of the current weights before closing?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Save)

    def ask_stop_sweep_on_close(self) -> bool:
        """Closing while a sweep runs: True to stop it and close (tests replace this method)."""
        answer = QMessageBox.question(
            self, "A sweep is running",
            "A sweep is still running. Stop it and close? Finished runs stay in the sweep folder.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Yes

    @property
    def is_sweeping(self) -> bool:
        return bool(getattr(self.panels.get("evaluationPanel"), "is_sweeping", False))

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        if self.is_sweeping and not self.ask_stop_sweep_on_close():
            event.ignore()
            return
        if self.is_training:
            answer = self.ask_save_on_close()
            if answer == QMessageBox.StandardButton.Cancel:
                event.ignore()
                return
            self.shutdown_training(save=answer == QMessageBox.StandardButton.Save)
        self._closed = True
        self._save_settings()
        self.shutdown_panels()
        self.state.shutdown()
        super().closeEvent(event)

    def shutdown_panels(self) -> None:
        """Stop the exploration panels' inference threads (each panel may offer `shutdown()`)."""
        if self._pending_panels:
            self._panel_timer.stop()
            self._pending_panels.clear()
        for panel in self.panels.values():
            shutdown = getattr(panel, "shutdown", None)
            if callable(shutdown):
                try:
                    shutdown()
                except Exception:
                    traceback.print_exc()

    def shutdown_training(self, save: bool = False, timeout: float = 2.0) -> bool:
        """Stop the run and join its thread within `timeout`; optionally save the weights. True if joined."""
        worker = self.worker
        if worker is None:
            return True
        joined = worker.stop(timeout)
        if not joined:
            self.show_message("The training thread did not stop in time; it will end at its next step.", "warning")
        if joined and save and self.session is not None:
            folder = Path(self.run_dir) if self.run_dir else runs_root() / time.strftime("%Y%m%d-%H%M%S")
            folder.mkdir(parents=True, exist_ok=True)
            self.save_checkpoint_to(folder / f"step{self.session.step}.safetensors")
        return joined

    def _update_actions(self) -> None:
        training = self.is_training
        busy = training or self.is_preparing
        can_start = not busy and self.model_settings.hparam_form.family is not None
        if not training:
            self.training_panel.set_state("preparing" if self.is_preparing else "idle", can_start=can_start)
        self.start_action.setEnabled(can_start)
        self.pause_action.setEnabled(training)
        self.stop_action.setEnabled(training)
        self.open_action.setEnabled(not busy)
        self.new_run_action.setEnabled(not busy)
        self.save_action.setEnabled(self.session is not None)
        self.save_action.setToolTip("" if self.session is not None
                                    else "Nothing to save yet: start training or open a checkpoint")
        for dock in (self.data_dock, self.model_dock, self.training_dock):
            dock.widget().setEnabled(not busy)
