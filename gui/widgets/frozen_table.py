"""A sortable table whose first `frozen` columns stay put while the others scroll sideways, with copy and CSV.

Two QTableViews share one sortable model: the left one shows only the frozen columns, the right one the rest;
their vertical scrolling, row selection and sorting are one. `set_rows(columns, rows, colours)` fills it; numbers sort
as numbers. What the Compare tab's tables and the Sweep table use.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSortFilterProxyModel, Qt
from PySide6.QtGui import QColor, QGuiApplication, QKeySequence, QShortcut, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QAbstractItemView, QHBoxLayout, QHeaderView, QTableView, QWidget

SORT_ROLE = Qt.ItemDataRole.UserRole + 1


def cell_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


class FrozenTable(QWidget):
    """`frozen` leading columns that do not scroll; click a header to sort; Ctrl+C copies the selected rows."""

    def __init__(self, frozen: int = 1, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.frozen = frozen
        self.model = QStandardItemModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.columns: list[str] = []
        self.rows: list[list[Any]] = []
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self.left, self.right = QTableView(), QTableView()
        for view in (self.left, self.right):
            view.setModel(self.proxy)
            view.setSortingEnabled(True)
            view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
            view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
            view.verticalHeader().setDefaultSectionSize(22)
            view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
            view.setAlternatingRowColors(True)
        self.proxy.sort(-1)  # the rows in the order given until a header is clicked
        self.right.setSelectionModel(self.left.selectionModel())
        self.left.verticalHeader().hide()
        self.right.verticalHeader().hide()
        self.left.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.left.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.left.verticalScrollBar().valueChanged.connect(self.right.verticalScrollBar().setValue)
        self.right.verticalScrollBar().valueChanged.connect(self.left.verticalScrollBar().setValue)
        self.left.horizontalHeader().sortIndicatorChanged.connect(self._sorted)
        self.right.horizontalHeader().sortIndicatorChanged.connect(self._sorted)
        layout.addWidget(self.left)
        layout.addWidget(self.right, 1)
        copy = QShortcut(QKeySequence.StandardKey.Copy, self)
        copy.activated.connect(self.copy)

    def _sorted(self, column: int, order: Qt.SortOrder) -> None:
        for view in (self.left, self.right):
            header = view.horizontalHeader()
            header.blockSignals(True)
            header.setSortIndicator(column, order)
            header.blockSignals(False)

    def set_rows(self, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                 colours: Sequence[tuple[int, int, int] | None] | None = None, titles: dict[str, str] | None = None,
                 tooltips: Sequence[str] | None = None) -> None:
        """Fill the table (row i's first cell drawn in colours[i]); sorting is kept."""
        self.columns, self.rows = list(columns), [list(r) for r in rows]
        self.model.clear()
        self.model.setHorizontalHeaderLabels([(titles or {}).get(c, c) for c in self.columns])
        for i, row in enumerate(self.rows):
            items = []
            for j, value in enumerate(row):
                item = QStandardItem(cell_text(value))
                number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
                item.setData(number if number is not None else cell_text(value), SORT_ROLE)
                if j == 0 and colours is not None and colours[i] is not None:
                    item.setForeground(QColor(*colours[i]))
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                if j == 0 and tooltips is not None:
                    item.setToolTip(tooltips[i])
                items.append(item)
            self.model.appendRow(items)
        frozen = min(self.frozen, len(self.columns))
        for c in range(len(self.columns)):
            self.left.setColumnHidden(c, c >= frozen)
            self.right.setColumnHidden(c, c < frozen)
        self.left.resizeColumnsToContents()
        self.right.resizeColumnsToContents()
        width = sum(self.left.columnWidth(c) for c in range(frozen)) + 4
        self.left.setFixedWidth(min(width, 280))
        self.right.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)

    def set_thumbnail(self, row: int, image: Any, tooltip: str = "") -> None:
        """A small picture (uint8 H×W or H×W×3) before row `row`'s first cell (the row grows to fit it)."""
        import numpy as np
        from PySide6.QtGui import QImage, QPixmap

        array = np.ascontiguousarray(image)
        h, w = array.shape[:2]
        fmt = QImage.Format.Format_Grayscale8 if array.ndim == 2 else QImage.Format.Format_RGB888
        qimage = QImage(array.data, w, h, array.strides[0], fmt).copy()
        item = self.model.item(row, 0)
        if item is None:
            return
        item.setData(QPixmap.fromImage(qimage), Qt.ItemDataRole.DecorationRole)
        if tooltip:
            item.setToolTip(tooltip)
        self.left.setIconSize(qimage.size())
        for view in (self.left, self.right):
            view.verticalHeader().setDefaultSectionSize(max(22, h + 4))
        self.left.resizeColumnToContents(0)
        width = sum(self.left.columnWidth(c) for c in range(min(self.frozen, len(self.columns)))) + 4
        self.left.setFixedWidth(min(width, 360))

    def shown_rows(self) -> list[list[str]]:
        """The rows in their shown (sorted) order, as text."""
        return [[self.proxy.index(r, c).data() or "" for c in range(len(self.columns))]
                for r in range(self.proxy.rowCount())]

    def selected_rows(self) -> list[int]:
        """Source row numbers of the selected rows (in `rows` order)."""
        rows = {self.proxy.mapToSource(i).row() for i in self.left.selectionModel().selectedRows()}
        return sorted(rows)

    def copy(self) -> str:
        """The selected rows (all rows when none is selected), tab-separated with a header, to the clipboard."""
        chosen = set(self.selected_rows())
        shown = self.shown_rows()
        if chosen:
            order = [self.proxy.mapToSource(self.proxy.index(r, 0)).row() for r in range(self.proxy.rowCount())]
            shown = [row for row, source in zip(shown, order, strict=True) if source in chosen]
        text = "\n".join("\t".join(row) for row in [self.columns, *shown])
        QGuiApplication.clipboard().setText(text)
        return text

    def write_csv(self, path: str | Path) -> Path:
        from gui.panels.common import write_csv

        return write_csv(path, self.columns, [[cell_text(v) for v in row] for row in self.rows])
