"""The first window opens inside the screen's available area (issue 23 §1.1): maximised where 1280×800 plus a
title bar does not fit (a 1366×768 laptop), else 1280×800 centred; a saved geometry is restored as it was."""

from __future__ import annotations

from PySide6.QtCore import QRect
from PySide6.QtWidgets import QApplication, QMainWindow

import gui.placement as placement
from gui.main_window import MainWindow


def test_first_launch_with_fresh_settings_fits_the_available_area(qtbot, isolated_settings):
    assert not (isolated_settings / "settings.ini").exists()
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    QApplication.processEvents()
    available = window.screen().availableGeometry()
    assert available.contains(window.frameGeometry()), (window.frameGeometry(), available)
    assert window.isMaximized()  # the offscreen screen (800×800) has no room for 1280×800
    window.shutdown_training(save=False)


def test_a_laptop_screen_maximises_and_a_large_screen_centres(qtbot, monkeypatch):
    laptop = QRect(0, 28, 1366, 740)  # 1366×768 minus a 28 px top panel
    monkeypatch.setattr(placement, "available_geometry", lambda _window: laptop)
    small = QMainWindow()
    qtbot.addWidget(small)
    placement.place_first_window(small)
    assert small.isMaximized()

    large = QRect(0, 0, 1920, 1040)
    monkeypatch.setattr(placement, "available_geometry", lambda _window: large)
    big = QMainWindow()
    qtbot.addWidget(big)
    placement.place_first_window(big)
    assert not big.isMaximized() and (big.width(), big.height()) == placement.FIRST_SIZE
    assert big.x() == (1920 - 1280) // 2 and big.y() >= 0 and big.y() + 800 + 40 <= 1040


def test_a_saved_geometry_is_restored_not_replaced(qtbot, isolated_settings):
    first = MainWindow()
    qtbot.addWidget(first)
    first.setMinimumSize(0, 0)
    first.resize(640, 520)
    first.move(30, 40)
    first.settings.setValue("window/geometry", first.saveGeometry())
    first.settings.sync()
    first.shutdown_training(save=False)
    second = MainWindow()
    qtbot.addWidget(second)
    assert not second.isMaximized() and (second.width(), second.height()) == (640, 520)
    second.shutdown_training(save=False)
