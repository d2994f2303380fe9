"""The left-hand docks, one file each: Data (`data.py`), Model (`model.py`), Training settings (`training.py`).

Each is a plain QWidget that says in its module docstring what it reads from `gui.state.AppState` and what it
changes; `add_dock` puts one into the window inside a scroll area (the docks scroll on a 768-px-high screen).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QFrame, QMainWindow, QScrollArea, QWidget

DOCK_MIN_WIDTH = 320


def add_dock(window: QMainWindow, title: str, name: str, body: QWidget) -> QDockWidget:
    """A movable, closable dock on the left holding `body` in a frameless scroll area."""
    dock = QDockWidget(title, window)
    dock.setObjectName(name)
    dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                     | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                     | QDockWidget.DockWidgetFeature.DockWidgetClosable)
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setWidget(body)
    dock.setWidget(scroll)
    dock.setMinimumWidth(DOCK_MIN_WIDTH)
    window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
    return dock
