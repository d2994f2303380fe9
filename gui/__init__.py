"""Latent Explorer's desktop app (PySide6 + pyqtgraph); it only listens to the engine."""

from gui.refcounts import guard_singleton_refcounts

# PySide6 6.12 on Python 3.11 drops references to None/True/False it never took (see gui/refcounts.py): guard them
# before any Qt code in this package runs, whichever module a caller imports first.
guard_singleton_refcounts()
