"""Issue 23 §1: help that matches the app, plots that explain themselves, one checkpoint per save, labelled exports."""

from __future__ import annotations

from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QTextBrowser

from engine.presets import DEFAULT_PRESET, list_presets
from gui.quick_start import menu_shortcuts


def test_quick_start_names_the_default_preset_and_the_real_shortcuts(main_window):
    window = main_window
    dialog = window.show_quick_start()
    text = dialog.findChild(QTextBrowser).toPlainText()
    dialog.close()
    assert DEFAULT_PRESET in text and dict(list_presets())[DEFAULT_PRESET][:40] in text
    assert "β-VAE (β = 4" not in text  # the old, hand-written default
    for name, _ in list_presets():
        assert name in text
    shortcuts = menu_shortcuts(window)
    shown = {keys for _, _, keys in shortcuts}
    native = QKeySequence.SequenceFormat.NativeText
    for keys in ("Ctrl+R", "Space", "Ctrl+."):  # what Training → Start / Pause / Stop carry today
        assert QKeySequence(keys).toString(native) in shown
    for menu, action, keys in shortcuts:
        assert f"{menu} → {action}" in text and keys in text
    for topic in ("MIG curve", "heatmap", "Sweep", "Examples", "Your own data", "factors.csv"):
        assert topic in text, topic
