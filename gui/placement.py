"""Where a window opens: the first launch inside the screen's available area, a restored geometry kept on screen."""

from __future__ import annotations

from typing import Any

FIRST_SIZE = (1280, 800)  # the first window's size where the screen has room; else it opens maximised


def available_geometry(window: Any) -> Any:
    """The available area (screen minus panels and docks) of the screen the window is on, or None off-screen."""
    from PySide6.QtWidgets import QApplication

    screen = window.screen() or QApplication.primaryScreen()
    return screen.availableGeometry() if screen is not None else None


def place_first_window(window: Any, size: tuple[int, int] = FIRST_SIZE) -> None:
    """First launch (no saved geometry): `size` centred in the available area when it fits with a title bar and
    frame to spare, else maximised — so no part of the window, status bar included, starts off-screen."""
    from PySide6.QtCore import Qt

    available = available_geometry(window)
    if available is None:
        window.resize(*size)
        return
    frame_allowance = 40  # title bar + frame, before the window manager has framed the window
    width, height = size
    if width + 16 > available.width() or height + frame_allowance > available.height():
        window.resize(min(width, available.width()), min(height, available.height() - frame_allowance))
        window.setWindowState(window.windowState() | Qt.WindowState.WindowMaximized)
        return
    window.resize(width, height)
    window.move(available.x() + (available.width() - width) // 2,
                available.y() + max(0, (available.height() - height - frame_allowance) // 2))


def clamp_to_screen(window: Any) -> None:
    """Keep a window inside the screen it is on (a geometry saved on a larger monitor must not run off)."""
    available = available_geometry(window)
    if available is None:
        return
    frame = window.frameGeometry()
    extra_w, extra_h = frame.width() - window.width(), frame.height() - window.height()
    width = min(window.width(), available.width() - extra_w)
    height = min(window.height(), available.height() - extra_h)
    if (width, height) != (window.width(), window.height()):
        window.resize(max(width, 200), max(height, 200))
    frame = window.frameGeometry()
    x = min(max(frame.x(), available.x()), available.right() + 1 - frame.width())
    y = min(max(frame.y(), available.y()), available.bottom() + 1 - frame.height())
    if (x, y) != (frame.x(), frame.y()):
        window.move(max(x, available.x()), max(y, available.y()))
