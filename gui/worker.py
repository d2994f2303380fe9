"""The one bridge between a training session and the window (DESIGN.md, "The seam").

`session.run(control)` runs in a plain Python thread. That thread never touches Qt: it appends events to a
lock-protected mailbox. A QTimer owned by this object — which lives on the GUI thread — drains the mailbox
≤ 30 times a second and emits the signals *from the GUI thread*, so every connected slot (bound method,
lambda or partial alike) runs on the GUI thread and no cross-thread signal can land in the wrong one.

- Step metrics are batched: one `metrics(list[StepMetrics])` per tick, so ≤ 30 emits/s however fast training is.
- Previews are never queued: the mailbox keeps only the newest one; a preview that arrives while an older one
  is still waiting to be drawn replaces it (`previews_dropped` counts them).
- Controls go to the engine's thread-safe `Control`, read by the session between steps.
"""

from __future__ import annotations

import math
import sys
import threading
import time
import traceback
from collections import deque
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from engine.control import Control
from engine.events import (
    CheckpointWritten,
    DisentanglementProbe,
    EpochSummary,
    Failed,
    Finished,
    Paused,
    Preview,
    Resumed,
    StepMetrics,
    Warning_,
)

MAX_EMITS_PER_S = 30.0


class TrainingWorker(QObject):
    """Runs one session off the GUI thread; create it on the GUI thread, call `start()`, listen to the signals."""

    metrics = Signal(object)  # list[StepMetrics], oldest first
    epoch_ended = Signal(object)  # EpochSummary
    preview = Signal(object)  # Preview (only the newest)
    probes = Signal(object)  # list[DisentanglementProbe], oldest first (one emit per pump, like metrics)
    checkpoint_written = Signal(object)  # CheckpointWritten
    paused = Signal(object)  # Paused
    resumed = Signal(object)  # Resumed
    warning = Signal(str)
    failed = Signal(object)  # Failed
    finished = Signal(object)  # Finished
    stopped = Signal()  # the thread has ended and every event has been delivered

    def __init__(self, session: Any, control: Control | None = None, max_emits_per_s: float = MAX_EMITS_PER_S,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.control = control or Control()
        self._lock = threading.Lock()
        self._events: deque[Any] = deque()
        self._latest_preview: Preview | None = None
        self._thread: threading.Thread | None = None
        self._thread_done = threading.Event()
        self._stopped_emitted = False
        self.previews_dropped = 0
        self.metric_emits = 0
        self.last_step = 0
        self._timer = QTimer(self)
        self._timer.setInterval(max(1, math.ceil(1000.0 / max_emits_per_s)))  # never above the cap
        self._timer.timeout.connect(self.pump)

    # --- lifecycle (GUI thread) -----------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("this worker has already been started; make a new one per run")
        self._thread = threading.Thread(target=self._run, name="latent-explorer-training", daemon=False)
        self._thread.start()
        self._timer.start()

    @property
    def is_running(self) -> bool:
        """True until the thread has ended and the last events were delivered."""
        return self._thread is not None and not self._stopped_emitted

    @property
    def thread_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def pause(self) -> None:
        self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    def set_value(self, name: str, value: Any) -> None:
        """Change β, C_max, lr or another live hyperparameter at the next step."""
        self.control.set(name, value)

    def request_checkpoint(self) -> None:
        self.control.request_checkpoint()

    def stop(self, timeout: float = 2.0) -> bool:
        """Ask the session to stop, wait up to `timeout` s for the thread, deliver what is left; True if joined."""
        self.control.stop()
        joined = self.join(timeout)
        self.pump()
        return joined

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # --- the training thread (no Qt here) ---------------------------------------------------------
    def _run(self) -> None:
        step = 0
        try:
            for event in self.session.run(self.control):
                step = getattr(event, "step", step)
                self._post(event)
        except Exception as exc:  # the session failed outside its own guard: report, never crash the app
            traceback.print_exc(file=sys.stderr)
            self._post(Failed(step=step, cause=f"training stopped by an unexpected error: "
                                               f"{type(exc).__name__}: {exc}"))
        finally:
            self._thread_done.set()

    def _post(self, event: Any) -> None:
        with self._lock:
            if isinstance(event, Preview):
                if self._latest_preview is not None:
                    self.previews_dropped += 1
                self._latest_preview = event
            else:
                self._events.append(event)

    # --- delivery (GUI thread, timer) ------------------------------------------------------------
    def pump(self) -> None:
        """Drain the mailbox and emit: all metrics in one batch, then the other events in order, then the newest
        preview (so an epoch summary or the end of a run never arrives before the steps it follows)."""
        done = self._thread_done.is_set()
        with self._lock:
            events = list(self._events)
            self._events.clear()
            preview, self._latest_preview = self._latest_preview, None
        batch = [event for event in events if isinstance(event, StepMetrics)]
        if batch:  # one emit per pump, however many epochs it spans; the other events follow, in their order
            self._emit_metrics(batch)
        probes = [event for event in events if isinstance(event, DisentanglementProbe)]
        if probes:
            self.probes.emit(probes)
        for event in events:
            if not isinstance(event, StepMetrics | DisentanglementProbe):
                self._emit_event(event)
        if preview is not None:
            self.preview.emit(preview)
        if done and not self._stopped_emitted:
            self._timer.stop()
            self._stopped_emitted = True
            self.stopped.emit()

    def _emit_metrics(self, batch: list[StepMetrics]) -> None:
        self.last_step = batch[-1].step
        self.metric_emits += 1
        self.metrics.emit(batch)

    def _emit_event(self, event: Any) -> None:
        if isinstance(event, EpochSummary):
            self.epoch_ended.emit(event)
        elif isinstance(event, CheckpointWritten):
            self.checkpoint_written.emit(event)
        elif isinstance(event, Paused):
            self.paused.emit(event)
        elif isinstance(event, Resumed):
            self.resumed.emit(event)
        elif isinstance(event, Warning_):
            self.warning.emit(event.message)
        elif isinstance(event, Failed):
            self.failed.emit(event)
        elif isinstance(event, Finished):
            self.finished.emit(event)
        else:
            self.warning.emit(f"unknown event from the training session: {type(event).__name__}")


def wait_for_threads(deadline_s: float = 2.0) -> None:
    """Block briefly until no training thread is left (used at exit)."""
    end = time.monotonic() + deadline_s
    for thread in threading.enumerate():
        if thread.name == "latent-explorer-training":
            thread.join(max(0.0, end - time.monotonic()))
