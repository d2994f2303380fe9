"""Thread-safe control of a running session: pause/resume/stop and parameter changes applied between steps."""

from __future__ import annotations

import queue
import threading
from typing import Any


class Control:
    """Written by any thread (the GUI), read by the session between steps."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._changes: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.save_requested = threading.Event()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()  # wake a paused session so it can end

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def request_checkpoint(self) -> None:
        self.save_requested.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait_while_paused(self, timeout: float = 0.1) -> bool:
        """Block up to timeout while paused; True if the session may proceed."""
        return self._running.wait(timeout)

    def set(self, name: str, value: Any) -> None:
        """Queue a parameter change (beta, C_max, lr, or any live hyperparameter) for the next step."""
        self._changes.put((name, value))

    def drain(self) -> list[tuple[str, Any]]:
        """All queued changes, oldest first (called by the session between steps)."""
        out = []
        while True:
            try:
                out.append(self._changes.get_nowait())
            except queue.Empty:
                return out
