"""Panel inference off the GUI thread: one worker thread, newest request wins, results back on the GUI thread.

A panel calls `runner.submit(channel, job, on_result)`. `job()` runs on the worker thread (it may use a model
snapshot and torch freely; it must not touch widgets). A request replaces any request of the same channel that
has not started yet, and the result of a request that a newer one of its channel has superseded is dropped, so
dragging a slider never queues work. `on_result(value)` runs on the GUI thread: the worker emits a signal of the
runner, a QObject that lives on the GUI thread, connected to the runner's own bound method (see DESIGN.md on
PySide6 threads: lambdas connected to worker signals may run on the worker thread).
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal


@dataclass
class _Request:
    channel: str
    generation: int
    job: Callable[[], Any]
    on_result: Callable[[Any], None] | None
    on_error: Callable[[str], None] | None


class InferenceRunner(QObject):
    """Create on the GUI thread; call `shutdown()` (panels do so on close) before it goes away."""

    finished = Signal(object, object, object)  # request, result, error text (internal: worker → GUI thread)
    busy_changed = Signal(bool)
    failed = Signal(str)

    def __init__(self, name: str = "inference", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._name = name
        self._cond = threading.Condition()
        self._pending: dict[str, _Request] = {}
        self._latest: dict[str, int] = {}
        self._generation = 0
        self._stopping = False
        self._running = False
        self._busy = False
        self.last_ms: dict[str, float] = {}
        self.finished.connect(self._deliver)
        # Started at the first request: a panel that is never used (or whose constructor fails) owns no thread.
        self._thread = threading.Thread(target=self._loop, name=f"{name}-worker", daemon=False)

    # --- GUI thread ----------------------------------------------------------------------------------
    def submit(self, channel: str, job: Callable[[], Any], on_result: Callable[[Any], None] | None = None,
               on_error: Callable[[str], None] | None = None) -> int:
        """Queue `job` on `channel`, replacing a not-yet-started request of that channel; returns its generation."""
        with self._cond:
            if self._stopping:
                return -1
            self._generation += 1
            gen = self._generation
            self._latest[channel] = gen
            self._pending.pop(channel, None)
            self._pending[channel] = _Request(channel, gen, job, on_result, on_error)
            if self._thread.ident is None:
                self._thread.start()
            self._cond.notify()
        self._set_busy(True)
        return gen

    def cancel(self, channel: str) -> None:
        """Forget a pending request and drop the result of a running one on this channel."""
        with self._cond:
            self._pending.pop(channel, None)
            self._generation += 1
            self._latest[channel] = self._generation

    def cancel_all(self) -> None:
        """Forget every pending request and drop the results of running ones (a different model: none applies)."""
        with self._cond:
            self._pending.clear()
            self._generation += 1
            for channel in self._latest:
                self._latest[channel] = self._generation

    @property
    def is_busy(self) -> bool:
        """GUI-thread view: a request is pending, running, or its result is not yet delivered."""
        return self._busy

    def is_idle(self) -> bool:
        with self._cond:
            return not self._pending and not self._running

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop accepting work, drop what is pending and wait for the running job to end."""
        with self._cond:
            self._stopping = True
            self._pending.clear()
            self._cond.notify_all()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def is_shut_down(self) -> bool:
        return self._stopping and not self._thread.is_alive()

    def _deliver(self, request: _Request, result: Any, error: str | None) -> None:
        with self._cond:
            current = self._latest.get(request.channel) == request.generation and not self._stopping
        if current:
            if error is None:
                if request.on_result is not None:
                    request.on_result(result)
            elif request.on_error is not None:
                request.on_error(error)
            else:
                self.failed.emit(error)
        self._set_busy(not self.is_idle())

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busy_changed.emit(busy)

    # --- worker thread -----------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                channel = next(iter(self._pending))
                request = self._pending.pop(channel)
                self._running = True
            start = time.perf_counter()
            try:
                result, error = request.job(), None
            except Exception as exc:  # shown in the panel; the worker keeps serving
                result, error = None, f"{type(exc).__name__}: {exc}"
                if not str(exc):
                    error += "\n" + traceback.format_exc(limit=3)
            self.last_ms[channel] = (time.perf_counter() - start) * 1000.0
            with self._cond:
                self._running = False
                stopping = self._stopping
            if not stopping:
                self.finished.emit(request, result, error)
