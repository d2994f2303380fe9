"""Python's cyclic GC must never destroy Qt objects from the training thread (gui/gc_guard.py)."""

from __future__ import annotations

import gc
import threading
import weakref

from PySide6.QtWidgets import QMenu, QWidget


class _Cycle:
    def __init__(self) -> None:
        self.me = self
        self.widget = QWidget()
        self.widget.menu = QMenu(self.widget)


def test_automatic_collection_is_off_and_the_gui_thread_collects(qtbot):
    assert not gc.isenabled(), "the GUI-thread collector must own the schedule"
    gc.collect()
    cycle = _Cycle()
    gone = weakref.ref(cycle)
    del cycle
    allocated_in_thread = []
    worker = threading.Thread(target=lambda: allocated_in_thread.extend([[i] for i in range(200_000)]))
    worker.start()
    worker.join()
    assert gone() is not None, "a collection ran outside the GUI thread"
    qtbot.waitUntil(lambda: gone() is None, timeout=5000)  # the timer's check() on the GUI thread


def test_freeze_moves_startup_objects_out_of_the_collectors_reach(qtbot):
    from gui.gc_guard import GuiThreadGarbageCollector

    collector = GuiThreadGarbageCollector(freeze_after_ms=-1)
    try:
        assert collector.freeze() > 10_000  # modules, torch, Qt wrappers: never scanned again
        cycle = _Cycle()
        gone = weakref.ref(cycle)
        del cycle
        gc.collect()
        assert gone() is None, "objects made after the freeze are still collected"
    finally:
        gc.unfreeze()
        collector.timer.stop()
        collector.deleteLater()
        gc.disable()
