"""The window's tabs: the Training tab, then one tab per exploration panel (`PANEL_TABS`).

Each exploration panel reads the window's `ModelSource` (live weights while training, the fixed model otherwise).
With `defer`, the tabs first show placeholders: once the window has painted, the panels' modules (numpy,
scikit-learn …) are imported on a background thread and the panels are built on the GUI thread one per timer tick
(or at once when their tab is opened) — what `python main.py` does to start fast. A panel whose module is missing
or broken becomes a placeholder that says why; the window keeps running.
"""

from __future__ import annotations

import importlib
import threading
import traceback

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QLabel, QTabWidget, QVBoxLayout, QWidget

from gui.model_source import ModelSource

PANEL_IMPORT_DELAY_MS = 300
PANEL_BUILD_TICK_MS = 50

# (module, class, tab title, objectName) of the exploration panels.
PANEL_TABS: tuple[tuple[str, str, str, str], ...] = (
    ("gui.panels.traversal", "TraversalPanel", "Traversal", "traversalPanel"),
    ("gui.panels.interpolation", "InterpolationPanel", "Interpolation", "interpolationPanel"),
    ("gui.panels.conditional", "ConditionalPanel", "Conditional", "conditionalPanel"),
    ("gui.panels.latent_map", "LatentMapPanel", "Latent map", "latentMapPanel"),
    ("gui.panels.gallery", "GalleryPanel", "Galleries", "galleryPanel"),
    ("gui.panels.evaluation", "EvaluationPanel", "Evaluation", "evaluationPanel"),
    ("gui.panels.compare", "ComparePanel", "Compare", "comparePanel"),
)


def placeholder(title: str, text: str) -> QWidget:
    """A tab body that only says something (loading, or why the panel is not there)."""
    widget = QWidget()
    layout = QVBoxLayout(widget)
    label = QLabel(f"<h3>{title}</h3><p>{text}</p>")
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setWordWrap(True)
    layout.addWidget(label)
    return widget


class PanelTabs(QTabWidget):
    """`panels` maps each tab's objectName to its widget; `pending` holds the deferred ones not built yet."""

    def __init__(self, training_panel: QWidget, source: ModelSource, defer: bool = False,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("panelTabs")
        self.setDocumentMode(True)
        self.source = source
        self.addTab(training_panel, "Training")
        self.panels: dict[str, QWidget] = {"trainingPanel": training_panel}
        self.pending: dict[str, tuple[str, str, str]] = {}
        for module_name, class_name, title, object_name in PANEL_TABS:
            if defer:
                widget = placeholder(title, "Loading…")
                self.pending[object_name] = (module_name, class_name, title)
            else:
                widget = self._make_panel(module_name, class_name, title)
            widget.setObjectName(object_name)
            self.addTab(widget, title)
            self.panels[object_name] = widget
        self._imports_done = threading.Event()
        self._build_timer = QTimer(self)
        self._build_timer.setInterval(PANEL_BUILD_TICK_MS)
        self._build_timer.timeout.connect(self._build_next_pending)
        if self.pending:
            QTimer.singleShot(PANEL_IMPORT_DELAY_MS, self._start_imports)
            self.currentChanged.connect(self._tab_shown)

    def _start_imports(self) -> None:
        """After the window has painted: the imports hold the GIL much of the time, so they wait for it."""
        if self.pending:
            threading.Thread(target=self._import_modules, name="panel-imports").start()
            self._build_timer.start()

    def _import_modules(self) -> None:
        """Background thread: import the panels' modules only (no Qt objects are made here)."""
        for module_name, _, _ in list(self.pending.values()):
            try:
                importlib.import_module(module_name)
            except Exception:  # reported when the panel is built on the GUI thread
                pass
        self._imports_done.set()

    def _build_next_pending(self) -> None:
        """One panel per timer tick, so the event loop turns between them (each costs tens of ms)."""
        if self._imports_done.is_set():
            if self.pending:
                self._build_panel(next(iter(self.pending)))
            if not self.pending:
                self._build_timer.stop()
                from gui.gc_guard import startup_finished

                startup_finished()  # start-up objects leave the collector's reach (see gui/gc_guard.py)

    def _tab_shown(self, index: int) -> None:
        object_name = self.widget(index).objectName() if index >= 0 else ""
        if object_name in self.pending:
            self._build_panel(object_name)

    def _build_panel(self, object_name: str) -> None:
        """Replace a deferred tab's placeholder with its panel."""
        entry = self.pending.pop(object_name, None)
        if entry is None:
            return
        module_name, class_name, title = entry
        widget = self._make_panel(module_name, class_name, title)
        widget.setObjectName(object_name)
        old = self.panels[object_name]
        index = self.indexOf(old)
        current = self.currentIndex()
        self.blockSignals(True)
        self.removeTab(index)
        self.insertTab(index, widget, title)
        self.setCurrentIndex(current)
        self.blockSignals(False)
        old.deleteLater()
        self.panels[object_name] = widget

    def _make_panel(self, module_name: str, class_name: str, title: str) -> QWidget:
        """The exploration panel if its module is installed, else a placeholder saying why."""
        try:
            module = importlib.import_module(module_name)
            panel = getattr(module, class_name)(self.source)
            sync = getattr(panel, "sync_with_source", None)
            if callable(sync):
                sync()  # the source may have changed before this panel existed
            return panel
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                return placeholder(title, f"could not load this panel: {exc}")
            return placeholder(title, "This panel is not part of this build yet.")
        except Exception as exc:  # a broken panel must not take the window down
            traceback.print_exc()
            return placeholder(title, f"could not load this panel: {type(exc).__name__}: {exc}")

    def shutdown(self) -> None:
        """Stop building deferred panels and stop every panel's inference thread (`shutdown()` where offered)."""
        self._build_timer.stop()
        self.pending.clear()
        for panel in self.panels.values():
            shutdown = getattr(panel, "shutdown", None)
            if callable(shutdown):
                try:
                    shutdown()
                except Exception:
                    traceback.print_exc()
