"""One training run in the window: a session AppState has built goes to a `TrainingWorker`, whose signals (emitted on
the GUI thread) are relayed to the Training tab, the status bar and the `ModelSource` the exploration panels read;
when the thread ends, the run's weights become the fixed model the panels explore.

Reads from AppState: `dataset` (a session that loaded another dataset makes it current through `adopt_dataset`).
Changes in AppState: `session` and `run_dir` (set when a run begins), recent runs (a written checkpoint), and the
messages (`report`) for warnings, recoverable failures and pauses with a reason. `changed` tells the window to
refresh its actions (started, paused, resumed, stopped).
"""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QObject, Signal

from engine.errors import ConfigError
from engine.events import EpochSummary, Failed, Finished, Paused, Preview, Resumed, StepMetrics
from engine.models import model_class
from gui.model_source import ModelSource
from gui.panels.training import TrainingPanel
from gui.state import AppState
from gui.widgets.status_bar import StatusBar
from gui.worker import TrainingWorker

SOURCE_NOTIFY_INTERVAL_S = 0.5  # panels hear about newer live weights at most 2× a second


def completed_epochs(epochs: int) -> str:
    """Finished runs and checkpoints count *completed* epochs; the running bar shows the current one (1-based)."""
    return f"{epochs:,} epoch{'s' if epochs != 1 else ''} completed"


def _source_info(session: Any) -> dict[str, Any]:
    """What the exploration panels are told about a run's weights (live or final)."""
    config = session.config
    return {"family": config.family, "dataset": config.dataset, "run_dir": config.out_dir,
            "step": getattr(session, "step", 0)}


class RunControl(QObject):
    """`begin(session)`, `toggle_pause()`, `stop()`, `set_value()`, `join()`; the worker's last events are kept
    (`paused_event`, `finished_event`, `failed_event`) for whoever asks how the run ended."""

    changed = Signal()

    def __init__(self, state: AppState, training_panel: TrainingPanel, source: ModelSource, status: StatusBar,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state, self.panel, self.source, self.status = state, training_panel, source, status
        self.worker: TrainingWorker | None = None
        self.paused_event: Paused | None = None
        self.finished_event: Finished | None = None
        self.failed_event: Failed | None = None
        self._last_source_notify = 0.0

    @property
    def is_training(self) -> bool:
        return self.worker is not None and self.worker.is_running

    def begin(self, session: Any, continuing: bool = False) -> None:
        """Run a built session: reset the dashboard, wire a worker, publish the live weights to the panels."""
        config = session.config
        session.pause_on_error = True
        self.state.session = session
        self.state.run_dir = config.out_dir
        self.paused_event = self.finished_event = self.failed_event = None
        self.panel.reset(getattr(session, "total_steps", config.max_steps))
        if continuing and getattr(session, "history", None):
            self.panel.load_history(session.history)
        self.panel.set_probe_note(getattr(session, "probe_note", None))
        try:
            model_cls = model_class(config.family)
        except ConfigError:
            model_cls = None
        self.panel.configure_live_controls(model_cls, dict(getattr(session.model, "hparams", config.hparams)),
                                           config.lr)
        self.status.show_run(config.out_dir, str(session.device))
        if session.dataset is not None and session.dataset is not self.state.dataset:
            self.state.adopt_dataset(session.dataset, getattr(session, "dataset_spec", config.dataset))
        self.source.set_live(session.snapshot_model, session.dataset, session.test_indices, _source_info(session))
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
        worker.stopped.connect(self._on_stopped)
        self.worker = worker
        worker.start()
        self.panel.set_state("running")
        self.changed.emit()

    def toggle_pause(self) -> None:
        if not self.is_training:
            return
        assert self.worker is not None
        if self.worker.control.paused:
            self.worker.resume()
            self.paused_event = None
            self.panel.set_state("running")
        else:
            self.worker.pause()
            self.panel.set_state("paused")
        self.changed.emit()

    def stop(self) -> None:
        """Ask the session to stop at the next step; the dashboard keeps what it showed."""
        if not self.is_training:
            return
        assert self.worker is not None
        self.worker.control.stop()
        self.panel.set_state("stopping")
        self.changed.emit()

    def set_value(self, name: str, value: float) -> bool:
        """Send a live change to the running session (at its next step); False when nothing runs."""
        if not self.is_training:
            return False
        assert self.worker is not None
        self.worker.set_value(name, value)
        self.status.showMessage(f"{name} → {value:.4g} from the next step", 4000)
        return True

    def request_checkpoint(self) -> None:
        """While training: the session writes a checkpoint into its run folder at the next step."""
        if self.worker is not None:
            self.worker.request_checkpoint()
            self.status.showMessage("a checkpoint will be written at the next step", 4000)

    def join(self, timeout: float) -> bool:
        """Stop the run and wait for its thread up to `timeout` seconds; True if it ended (or none ran)."""
        return True if self.worker is None else self.worker.stop(timeout)

    # --- worker signals (all emitted on the GUI thread) ----------------------------------------------
    def _on_metrics(self, batch: list[StepMetrics]) -> None:
        self.panel.on_metrics(batch)
        last = batch[-1]
        self.status.show_step(last.step, last.epoch, last.samples_per_s)
        now = time.monotonic()
        if now - self._last_source_notify >= SOURCE_NOTIFY_INTERVAL_S:
            self._last_source_notify = now
            self.source.notify_step(last.step)

    def _on_epoch(self, summary: EpochSummary) -> None:
        self.panel.on_epoch(summary)

    def _on_preview(self, preview: Preview) -> None:
        self.panel.on_preview(preview)

    def _on_probes(self, probes: list[Any]) -> None:
        self.panel.on_probes(probes)
        self.source.set_probe(probes[-1])

    def _on_checkpoint_written(self, event: Any) -> None:
        self.state.add_recent(event.path)
        self.status.showMessage(f"checkpoint written: {event.path}", 6000)

    def _on_paused(self, event: Paused) -> None:
        self.paused_event = event
        self.panel.set_state("paused")
        self.source.notify_settled()
        if event.reason and event.reason != "paused by user":
            self.state.report("warning", f"Training paused at step {event.step}: {event.reason}")
        self.changed.emit()

    def _on_resumed(self, _event: Resumed) -> None:
        self.paused_event = None
        if self.panel.state == "paused":
            self.panel.set_state("running")
        self.changed.emit()

    def _on_warning(self, message: str) -> None:
        self.state.report("warning", message)

    def _on_failed(self, event: Failed) -> None:
        self.failed_event = event
        if event.recoverable:
            self.state.report("error", f"Step {event.step}: {event.cause} — training is paused; change a setting "
                                       "(e.g. lower the learning rate) and resume, or stop.")
            self.panel.set_state("paused")
        else:
            self.state.report("error", f"Training failed at step {event.step}: {event.cause}")

    def _on_finished(self, event: Finished) -> None:
        self.finished_event = event
        self.panel.set_finished_text(f"{event.reason} at step {event.step:,} ({completed_epochs(event.epoch)})")

    def _on_stopped(self) -> None:
        """The thread has ended: the run's weights become the fixed model the panels explore."""
        session, worker = self.state.session, self.worker
        self.worker = None
        if worker is not None:
            worker.deleteLater()
        self.panel.set_state("idle")
        if session is not None:
            try:
                model = session.snapshot_model()
            except Exception as exc:
                model = None
                self.state.report("error", f"Could not take the final weights: {exc}")
            if model is not None:
                self.source.set_static(model, session.dataset, session.test_indices, _source_info(session))
        self.changed.emit()
