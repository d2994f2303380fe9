"""Qt glue for `gui.state.AppState`'s job thread: `GuiPoster` delivers results on the GUI thread, `wait_for` keeps
the event loop turning while a script or test waits for a job (the window never freezes meanwhile)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEventLoop, QObject, Signal

from gui.state import Job


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
    """Keep the event loop turning until the job's result was delivered; returns whether it succeeded."""
    if not job.done.is_set():
        loop = QEventLoop()
        job.add_done_callback(lambda _job: loop.quit())
        if not job.done.is_set():
            loop.exec()
    return job.ok
