"""A row of controls that wraps onto a second line when the window is narrow (so every tab fits 1366×768)."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QWidget
from superqt import QFlowLayout


class ToolRow(QWidget):
    """A wrapping tool bar: `add(widget)`, `add_labeled("Steps", spin)` (label and control never split)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.flow = QFlowLayout(self)
        self.flow.setContentsMargins(0, 0, 0, 0)
        self.flow.setHorizontalSpacing(6)
        self.flow.setVerticalSpacing(4)
        policy = QSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)

    def add(self, *widgets: QWidget) -> QWidget:
        """Add widgets that stay together on one line; returns the widget holding them."""
        if len(widgets) == 1:
            self.flow.addWidget(widgets[0])
            return widgets[0]
        group = QWidget()
        layout = QHBoxLayout(group)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        for widget in widgets:
            layout.addWidget(widget)
        self.flow.addWidget(group)
        return group

    def add_labeled(self, text: str, widget: QWidget) -> QWidget:
        label = QLabel(text)
        label.setBuddy(widget)
        return self.add(label, widget)

    def minimum_width(self) -> int:
        """The widest single item: what the row needs when every item wraps onto its own line."""
        return self.flow.minimumSize().width()
