"""Cyclic garbage collection on the GUI thread only.

Python's collector runs in whichever thread happens to allocate when a threshold is crossed. If that is the
training thread and the garbage holds a Qt widget, the widget is destroyed off the GUI thread: Qt deadlocks or
crashes (seen here: a QMenu destroyed from the training thread deadlocked against the GUI thread). So the
automatic collector is switched off and the same generational thresholds are checked from a GUI-thread timer.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer


class GuiThreadGarbageCollector(QObject):
    """Owns the collection schedule while it exists (create one per QApplication, on the GUI thread)."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = 500, freeze_after_ms: int = 15000) -> None:
        super().__init__(parent)
        self.thresholds = gc.get_threshold()
        gc.disable()
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.check)
        self.timer.start()
        self.starting = freeze_after_ms >= 0  # until start-up ends, young objects are frozen, not scanned
        if freeze_after_ms >= 0:
            QTimer.singleShot(freeze_after_ms, lambda: self.freeze(report=False) if self.starting else None)

    def freeze(self, report: bool = True) -> int:
        """Move everything alive after start-up (torch, Qt, the window) out of the collector's reach, so a full
        collection scans only what training and the panels made since: a 300 ms pause of the GUI thread in
        the soak run came from such a collection. Nothing is collected first: collecting the start-up heap (imports
        made ~10⁵ objects) stalled the GUI thread ~1 s a few seconds after every launch
        (bench/gui_responsiveness.py --actions); the little cyclic garbage of start-up stays frozen.
        Returns the number of objects frozen when `report` (counting walks them all: ~0.2 s, so the app does not)."""
        self.starting = False
        gc.freeze()
        return gc.get_freeze_count() if report else -1

    def check(self) -> int:
        """Collect the oldest generation whose count passed its threshold; returns the objects found."""
        counts = gc.get_count()
        if counts[0] <= self.thresholds[0]:
            return 0
        generation = 0
        if counts[1] > self.thresholds[1]:
            generation = 2 if counts[2] > self.thresholds[2] else 1
        if self.starting:
            # Start-up (imports, panels being built) makes ~10⁵ long-lived objects: even a young collection over
            # them stalled the GUI thread for up to a second. They are frozen instead (a constant-time move).
            gc.freeze()
            return 0
        return gc.collect(generation)


_installed: GuiThreadGarbageCollector | None = None


def startup_finished() -> None:
    """The window has built what it builds at start-up: freeze now rather than at the timer's fallback."""
    if _installed is not None and _installed.starting:
        _installed.freeze(report=False)


def install_gui_thread_gc(app: QObject, freeze_after_ms: int = 15000) -> GuiThreadGarbageCollector:
    """Idempotent: the collector lives as long as `app` (freeze_after_ms < 0: never freeze, as in the tests)."""
    global _installed
    if _installed is None:
        _installed = GuiThreadGarbageCollector(app, freeze_after_ms=freeze_after_ms)
    return _installed
