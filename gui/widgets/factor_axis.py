"""A heatmap's factor axis: one tick per column, named in full when every name fits its column, else abbreviated
(`orientation` → `orient`, `ori`, then `or`; `posX` → `pX`) with the full names in the axis's tooltip. pyqtgraph axes
cannot rotate their labels, so at 1366×768 the names must get shorter instead of overlapping."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import pyqtgraph as pg
from PySide6.QtGui import QFontMetrics

ABBREVIATION_LENGTHS = (6, 3, 2)  # tried in turn after the full names (`sh sc or pX pY` at 1366 px)
LABEL_GAP_PX = 4


def abbreviate(name: str, length: int) -> str:
    """At most `length` characters: a one-word name is cut; a compound one (camelCase, snake_case) keeps the
    initials of its leading words and as much of its last word as fits (`posX` → `pX`, `floor_hue` → `fhue`)."""
    if len(name) <= length:
        return name
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", name) or [name]
    if len(words) == 1:
        return name[:length]
    initials = "".join(word[0] for word in words[:-1])[: length - 1]
    return initials + words[-1][: length - len(initials)]


class FactorAxis(pg.AxisItem):
    """`set_names(names)` labels columns 0…n−1 (ticks at k + 0.5); `labels` are the strings shown now."""

    def __init__(self, orientation: str = "bottom", **kwargs) -> None:
        super().__init__(orientation, **kwargs)
        self.setStyle(autoReduceTextSpace=False)  # an empty axis (no factors yet) must not shrink below its labels
        self.names: list[str] = []
        self.labels: list[str] = []

    def set_names(self, names: Sequence[str]) -> None:
        self.names = [str(name) for name in names]
        self.relabel()

    def column_px(self) -> float:
        """Pixels per column at the linked view's current range."""
        view = self.linkedView()
        if view is None or not self.names:
            return 0.0
        x0, x1 = view.viewRange()[0]
        return self.width() / (x1 - x0) if x1 > x0 else 0.0

    def label_px(self, label: str) -> int:
        font = self.style.get("tickFont") or self.font()
        return QFontMetrics(font).horizontalAdvance(label)

    def relabel(self) -> None:
        """The longest labels that fit their columns and stay distinct; if even the shortest do not fit, only
        every k-th column is labelled (the tooltip names them all)."""
        column = self.column_px()
        candidates = [self.names] + [[abbreviate(n, length) for n in self.names] for length in ABBREVIATION_LENGTHS]
        candidates = [c for c in candidates if len(set(c)) == len(c)] or [self.names]
        chosen = None
        for labels in candidates:
            if all(self.label_px(label) + LABEL_GAP_PX <= column for label in labels):
                chosen = list(labels)
                break
        if chosen is None:
            shortest = candidates[-1]
            widest = max((self.label_px(label) for label in shortest), default=0) + LABEL_GAP_PX
            every = max(2, math.ceil(widest / column)) if column > 0 else len(shortest)
            chosen = [label if k % every == 0 else "" for k, label in enumerate(shortest)]
        if chosen != self.labels or not self.names:
            self.labels = chosen
            self.setTicks([[(k + 0.5, label) for k, label in enumerate(chosen)]])  # no names: no ticks
        self.setToolTip("" if self.labels == self.names else "Factors, left to right: " + ", ".join(
            f"{label} = {name}" if label and label != name else name for label, name in zip(self.labels, self.names,
                                                                                            strict=True)))

    def resizeEvent(self, ev=None) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(ev)
        if getattr(self, "names", None):  # (pyqtgraph resizes the axis inside its own __init__)
            self.relabel()

    def linkedViewChanged(self, view, newRange=None) -> None:  # noqa: N802 (pyqtgraph override)
        super().linkedViewChanged(view, newRange)
        if getattr(self, "names", None):
            self.relabel()
