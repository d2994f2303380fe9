"""The main window, a thin shell: it creates the app's state, the docks, the tabs, the menus and the status bar,
and wires them together.

- `gui.state.AppState` (no Qt) owns the state — dataset, preset, checkpoint, session, recent runs — and runs the slow
  work (loading, building sessions) on its job thread; `gui.jobs` delivers the results on the GUI thread.
- `gui/docks/` — Data, Model, Training settings; `gui/panel_tabs.py` — the Training tab and the exploration panels
  (which read the `ModelSource` kept here); `gui/menus.py` — menus and their dialogs; `gui/run_control.py` — a
  running session's worker and its signals; `gui/widgets/status_bar.py` — the status bar.
- The window turns the docks into a `TrainConfig`, asks the state for a session, hands the ready session to
  `RunControl`, and renders what the state announces (opened checkpoints, messages, busy jobs). Its public methods
  (`open_dataset`, `apply_preset`, `open_checkpoint`, `start_training` …) are what scripts and tests drive.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QMainWindow, QMessageBox, QVBoxLayout, QWidget

from engine.config import TrainConfig
from engine.errors import ConfigError
from engine.events import Failed, Finished, Paused
from engine.models import families, model_class
from engine.probe import unavailable_reason
from engine.run_folder import RunFolder
from gui.docks import add_dock
from gui.docks.data import DataDock
from gui.docks.model import ModelDock, presets_module
from gui.docks.training import TrainingDock
from gui.jobs import GuiPoster, wait_for
from gui.menus import build_menus, fill_recent_menu
from gui.model_source import ModelFiles, ModelSource
from gui.panel_tabs import PANEL_IMPORT_DELAY_MS, PanelTabs
from gui.panels.training import TrainingPanel
from gui.placement import clamp_to_screen, place_first_window
from gui.refcounts import guard_singleton_refcounts
from gui.run_control import RunControl, completed_epochs
from gui.settings import APPLICATION, app_settings, runs_root
from gui.state import AppState, DatasetView, OpenedCheckpoint
from gui.widgets.banner import MessageBanner
from gui.widgets.status_bar import StatusBar
from gui.widgets.welcome import install_welcome_card
from gui.worker import TrainingWorker

guard_singleton_refcounts()  # before any Qt call is made through this module (see gui/refcounts.py)

DEFAULT_PRESET = "dsprites-disentangle"  # the first-run default (engine.presets.DEFAULT_PRESET)
DEFAULT_DATASET = "dsprites?subset=20000"
# Without the preset: an MLP β-VAE, which shows recognisable dSprites reconstructions within ~40 s on 2 CPU
# cores (a conv backbone at 64×64 managed ~1 step/s there).
FALLBACK_HPARAMS = {"backbone": "mlp", "hidden": 512, "depth": 2, "latent_dim": 10, "beta": 4.0}
FALLBACK_BATCH_SIZE = 64
APP_PROBE_EVERY_S = 5.0  # the app's live disentanglement probe cadence (seconds of training; engine/probe.py)

__all__ = ["MainWindow"]


def preset_description_for(preset: TrainConfig, family: str, dataset_spec: str) -> str:
    """The preset's description while the run keeps its family and dataset; "" once either changed (a β-TCVAE
    preset's words must not describe a VAE on MNIST in the run's config.toml)."""
    def name(spec: str) -> str:
        return spec.partition("?")[0].strip()

    same = family == preset.family and name(dataset_spec) == name(preset.dataset)
    return preset.description if same else ""


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
        self.settings = settings if settings is not None else app_settings()
        self.poster = GuiPoster(self)
        self.state = AppState(post=self.poster.post, store=self.settings)
        self.source = ModelSource(self)
        self._closed = False
        self._configuring = False

        self._build_central()
        self._build_docks()
        self.status = StatusBar()
        self.setStatusBar(self.status)
        self.run = RunControl(self.state, self.training_panel, self.source, self.status, self)
        self.run.changed.connect(self._update_actions)
        self.model_files = ModelFiles(self)
        self.menu_actions = build_menus(self)
        self._rebuild_recent_menu()
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

    # --- construction ----------------------------------------------------------------------------------------
    def _build_central(self) -> None:
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        self.banner = MessageBanner()
        layout.addWidget(self.banner)
        self.training_panel = TrainingPanel()
        self.tabs = PanelTabs(self.training_panel, self.source, defer=self._defer_panels)
        self.panels = self.tabs.panels
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self.training_panel.start_requested.connect(self.start_training)
        self.training_panel.pause_toggled.connect(self.toggle_pause)
        self.training_panel.stop_requested.connect(self.stop_training)
        self.training_panel.live_value_changed.connect(self.set_live_value)

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

    # --- settings and defaults -------------------------------------------------------------------------------
    def _restore_settings(self) -> None:
        geometry = self.settings.value("window/geometry")
        state = self.settings.value("window/state")
        if geometry is None:
            place_first_window(self)
        else:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)
        self.clamp_to_screen()

    def clamp_to_screen(self) -> None:
        """Keep the window inside the screen it is on (a geometry saved on a larger monitor must not run off)."""
        clamp_to_screen(self)

    def _save_settings(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.sync()

    def recent_runs(self) -> list[str]:
        return self.state.recent_runs()

    def _rebuild_recent_menu(self) -> None:
        fill_recent_menu(self.menu_actions.recent_menu, self.state.recent_entries(),
                         lambda path: self.open_checkpoint(path, wait=False))

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

    # --- data, model and training docks ----------------------------------------------------------------------
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
        """A new dataset (the Data dock shows it): a model explored so far belonged to the old one; an error banner
        (e.g. an earlier load that failed) is cleared by this success."""
        if self.banner.level == "error":
            self.banner.hide()
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
        self.data_settings.set_test_split(config.test_fraction, config.test_count)

    def build_config(self) -> TrainConfig:
        """The run the docks describe (raises ConfigError with a clear cause)."""
        spec = self.data_settings.spec or self.dataset_spec
        form = self.model_settings.hparam_form
        base = self.preset_config
        fallback = self.state.resolved_fallback(spec)
        extra: dict[str, Any] = {}
        if base is not None:
            extra = {"preview_every_s": base.preview_every_s, "weight_decay": base.weight_decay,
                     "description": preset_description_for(base, form.family or "", spec)}
        extra["test_fraction"], extra["test_count"] = self.data_settings.test_split()
        out_dir = None
        if self.training_settings.writes_run_folder:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            out_dir = str(runs_root() / f"{stamp}-{form.family}")
        return TrainConfig(
            dataset=spec, family=form.family or "", hparams=form.changed_from_defaults(), out_dir=out_dir,
            fallback=fallback, probe_every_s=APP_PROBE_EVERY_S, **self.training_settings.settings(), **extra)

    # --- running ---------------------------------------------------------------------------------------------
    @property
    def is_training(self) -> bool:
        return self.run.is_training

    @property
    def worker(self) -> TrainingWorker | None:
        return self.run.worker

    @property
    def paused_event(self) -> Paused | None:
        return self.run.paused_event

    @property
    def finished_event(self) -> Finished | None:
        return self.run.finished_event

    @property
    def failed_event(self) -> Failed | None:
        return self.run.failed_event

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
        """Run an already built session (the Training tab comes to the front)."""
        self.run.begin(session, continuing)
        self.tabs.setCurrentWidget(self.training_panel)

    def toggle_pause(self) -> None:
        self.run.toggle_pause()

    def stop_training(self) -> None:
        """Ask the session to stop at the next step; the dashboard keeps what it showed."""
        self.run.stop()

    def set_live_value(self, name: str, value: float) -> None:
        """A live control moved: send it to the running session; the docks show what is in force either way."""
        self.run.set_value(name, value)
        self._configuring = True  # not re-entering the sliders
        try:
            if name == "lr":
                self.training_settings.lr_spin.setValue(value)
            elif name in self.model_settings.hparam_form.editors:
                self.model_settings.hparam_form.set_values({name: value})
        finally:
            self._configuring = False

    # --- checkpoints -----------------------------------------------------------------------------------------
    def open_checkpoint(self, path: str | Path, wait: bool = True) -> bool:
        """Load a checkpoint off the GUI thread: its model goes to the panels, its curves to the Training tab;
        Start continues it. `wait`: keep the event loop turning until it is shown; returns whether it opened."""
        if self.is_training or self.is_preparing:
            self.show_message("Stop the current run before opening a checkpoint.", "warning")
            return False
        if not self.model_files.ready_for_checkpoint(path):  # a user's model file runs only if the user says so
            return False
        job = self.state.open_checkpoint(path)
        self.status.showMessage(f"opening {path}…")
        return wait_for(job) if wait else True

    def _show_opened_checkpoint(self, opened: OpenedCheckpoint) -> None:
        """The state loaded a checkpoint (job thread): fill the docks, curves, previews; hand the model to panels."""
        loaded, path = opened.loaded, opened.path
        config: TrainConfig = loaded.config
        self.fill_from_config(config)
        self.model_settings.show_preset(opened.preset)  # "(custom)" unless the run's recipe is a preset's
        dataset = self.dataset if opened.dataset_view is not None or self.dataset_spec == config.dataset else None
        position = f"step {loaded.step:,} ({completed_epochs(loaded.epoch)})"
        drawn = self.training_panel.show_checkpoint(loaded, opened.recon_grid, opened.samples_grid,
                                                    unavailable_reason(dataset, loaded.model), position)
        self.source.set_static(loaded.model, dataset, opened.test_indices,
                               {"family": config.family, "dataset": config.dataset, "checkpoint": path,
                                "step": loaded.step, "meta": dict(loaded.meta or {})})
        self.status.show_checkpoint(path, f"step: {loaded.step:,}  ({completed_epochs(loaded.epoch)})")
        self.status.showMessage(f"opened {path} ({drawn} recorded steps)", 6000)
        self._update_actions()

    def request_checkpoint(self) -> None:
        """While training: the session writes a checkpoint into its run folder at the next step."""
        self.run.request_checkpoint()

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
        self.state.add_recent(str(written or path))
        self.status.showMessage(f"saved {written or path}", 6000)
        return True

    def new_run(self) -> None:
        """Forget a loaded checkpoint and the last run; the docks keep their settings."""
        if self.is_training:
            self.show_message("Stop the current run first.", "warning")
            return
        self.state.forget_run()
        self.training_panel.show_ready()
        self.source.clear()
        self.status.clear_run()
        self.banner.hide()
        self._update_actions()

    # --- export, messages, drag and drop, closing ------------------------------------------------------------
    def export_current(self, path: str | Path, background: bool = True) -> bool:
        """Export the current tab's figure; slow formats (GIFs) are encoded off the GUI thread when `background`."""
        panel = self.tabs.currentWidget()
        exporter = getattr(panel, "export_figure", None)
        if exporter is None:
            return False
        try:
            later = getattr(panel, "export_in_background", None)
            if background and later is not None and later(path):
                self.status.showMessage(f"exporting {path}…", 6000)
                return True
            written = exporter(path)
        except Exception as exc:
            self.show_message(f"Could not export to {path}: {exc}", "error")
            return False
        self.status.showMessage(f"exported {written or path}", 6000)
        return True

    def show_message(self, text: str, level: str = "info") -> None:
        """Non-modal: a banner above the tabs and the status bar; the window keeps working."""
        self.state.report(level, text)

    def _on_state_message(self, level: str, text: str) -> None:
        self.banner.show_message(text, level)
        self.status.show_note(text)

    def _on_busy(self, text: str) -> None:
        """What the job thread is doing, in the status bar."""
        self.status.show_busy(text)

    def show_quick_start(self) -> QWidget:
        from gui.quick_start import show_quick_start

        return show_quick_start(self)

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
        self.state.remember_folder("data", path)
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
        """Stop the exploration panels' inference threads."""
        self.tabs.shutdown()

    def shutdown_training(self, save: bool = False, timeout: float = 2.0) -> bool:
        """Stop the run and join its thread within `timeout`; optionally save the weights. True if joined."""
        if self.worker is None:
            return True
        joined = self.run.join(timeout)
        if not joined:
            self.show_message("The training thread did not stop in time; it will end at its next step.", "warning")
        if joined and save and self.session is not None:
            folder = RunFolder(self.run_dir or runs_root() / time.strftime("%Y%m%d-%H%M%S"))
            written = folder.checkpoint_path(self.session.step)
            if written.is_file():  # the stopped session already wrote it into its run folder: one copy, not two
                self.state.add_recent(str(written))
                self.status.showMessage(f"saved {written}", 6000)
            else:
                self.save_checkpoint_to(written)
        return joined

    def _update_actions(self) -> None:
        training = self.is_training
        busy = training or self.is_preparing
        can_start = not busy and self.model_settings.hparam_form.family is not None
        if not training:
            self.training_panel.set_state("preparing" if self.is_preparing else "idle", can_start=can_start)
        self.menu_actions.update(training=training, busy=busy, can_start=can_start, can_save=self.session is not None)
        for dock in (self.data_dock, self.model_dock, self.training_dock):
            dock.widget().setEnabled(not busy)
