"""The menu bar (File, Training, View, Help) and the file dialogs its actions open.

Every action is also a window-wide shortcut (Ctrl+R Start, Space pause, Ctrl+. stop, Ctrl+O/S/E, F1 …). The
actions call the window's public methods (`open_checkpoint`, `save_checkpoint_to`, `export_current`,
`start_training` …); the dialogs open in the folders AppState remembers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMenu, QMessageBox

from engine.run_folder import RunFolder, checkpoint_name
from gui.examples_menu import build_examples_menu
from gui.settings import APPLICATION

EXPORT_FILTER = "PNG image (*.png);;GIF animation (*.gif);;CSV (*.csv);;JSON (*.json)"


@dataclass
class MenuActions:
    """The actions whose enabled state follows the window's (training, busy, something to save)."""

    new_run: QAction
    open: QAction
    save: QAction
    export: QAction
    start: QAction
    pause: QAction
    stop: QAction
    quick_start: QAction
    recent_menu: QMenu

    def update(self, training: bool, busy: bool, can_start: bool, can_save: bool) -> None:
        """Start when idle with a family chosen; pause/stop while training; open/new when not busy."""
        self.start.setEnabled(can_start)
        self.pause.setEnabled(training)
        self.stop.setEnabled(training)
        self.open.setEnabled(not busy)
        self.new_run.setEnabled(not busy)
        self.save.setEnabled(can_save)
        self.save.setToolTip("" if can_save else "Nothing to save yet: start training or open a checkpoint")


def _action(window: Any, menu: QMenu, text: str, shortcut: Any, slot: Callable[..., Any]) -> QAction:
    action = QAction(text, window)
    if shortcut is not None:
        action.setShortcut(shortcut)
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    action.triggered.connect(slot)
    menu.addAction(action)
    window.addAction(action)
    return action


def build_menus(window: Any) -> MenuActions:
    """Fill the window's menu bar; the View menu toggles the docks."""
    bar = window.menuBar()
    file_menu = bar.addMenu("&File")
    new_run = _action(window, file_menu, "&New run", QKeySequence.StandardKey.New, window.new_run)
    open_ = _action(window, file_menu, "&Open checkpoint…", QKeySequence.StandardKey.Open,
                    lambda: open_checkpoint_dialog(window))
    _action(window, file_menu, "Open &model file…", QKeySequence("Ctrl+Shift+O"),
            lambda: open_model_file_dialog(window))
    save = _action(window, file_menu, "&Save checkpoint", QKeySequence.StandardKey.Save,
                   lambda: save_checkpoint_dialog(window))
    export = _action(window, file_menu, "&Export figure…", QKeySequence("Ctrl+E"), lambda: export_figure_dialog(window))
    recent_menu = QMenu("&Recent runs", window)
    recent_menu.setObjectName("recentMenu")
    file_menu.addMenu(recent_menu)
    file_menu.addMenu(build_examples_menu(window))
    compare = _action(window, file_menu, "&Compare with…", None, lambda: compare_dialog(window))
    compare.setObjectName("compareAction")
    compare.setStatusTip("Compare up to six checkpoints side by side in the Compare tab")
    file_menu.addSeparator()
    _action(window, file_menu, "&Quit", QKeySequence.StandardKey.Quit, window.close)
    train_menu = bar.addMenu("&Training")
    start = _action(window, train_menu, "&Start", QKeySequence("Ctrl+R"), window.start_training)
    pause = _action(window, train_menu, "&Pause / resume", QKeySequence(Qt.Key.Key_Space), window.toggle_pause)
    stop = _action(window, train_menu, "S&top", QKeySequence("Ctrl+."), window.stop_training)
    view_menu = bar.addMenu("&View")
    for dock in (window.data_dock, window.model_dock, window.training_dock):
        view_menu.addAction(dock.toggleViewAction())
    help_menu = bar.addMenu("&Help")
    quick_start = _action(window, help_menu, "&Quick start", QKeySequence.StandardKey.HelpContents,
                          window.show_quick_start)
    _action(window, help_menu, "&About", None, lambda: show_about(window))
    return MenuActions(new_run, open_, save, export, start, pause, stop, quick_start, recent_menu)


def fill_recent_menu(menu: QMenu, entries: list[tuple[str, str]], open_checkpoint: Callable[[str], Any]) -> None:
    """File → Recent runs: one entry per checkpoint, newest first: (path, text) — run, dataset, family, step,
    date (AppState.recent_entries); the full path is the entry's tooltip."""
    menu.clear()
    menu.setToolTipsVisible(True)
    if not entries:
        menu.addAction("(none yet)").setEnabled(False)
        return
    for path, text in entries:
        action = menu.addAction(text)
        action.setData(path)
        action.setToolTip(path)
        action.triggered.connect(lambda _checked=False, p=path: open_checkpoint(p))


def open_checkpoint_dialog(window: Any) -> None:
    path, _ = QFileDialog.getOpenFileName(window, "Open checkpoint", window.state.folder("checkpoints"),
                                          "Checkpoints (*.safetensors);;All files (*)")
    if path:
        window.state.remember_folder("checkpoints", path)
        window.open_checkpoint(path, wait=False)


def open_model_file_dialog(window: Any) -> None:
    """File → Open model file…: a Python file with a model class (docs/your-model.md); it runs once chosen."""
    path, _ = QFileDialog.getOpenFileName(window, "Open model file", window.state.folder("model_files"),
                                          "Python model files (*.py);;All files (*)")
    if path:
        window.state.remember_folder("model_files", path)
        window.model_files.open_model_file(path)


def compare_dialog(window: Any) -> None:
    """File → Compare with…: checkpoints to compare beside the model on screen (if any) in the Compare tab."""
    from gui.panels.compare import open_comparison

    paths, _ = QFileDialog.getOpenFileNames(window, "Compare with…", window.state.folder("checkpoints"),
                                            "Checkpoints (*.safetensors);;All files (*)")
    if not paths:
        return
    window.state.remember_folder("checkpoints", paths[0])
    current = window.source.info.get("checkpoint") if window.source.has_model else None
    open_comparison(window, ([str(current)] if current and str(current) not in paths else []) + list(paths))


def save_checkpoint_dialog(window: Any) -> None:
    """While training the session writes one at the next step; after a run, choose the file."""
    session = window.session
    if session is None:
        window.show_message("There is no run to save yet: start training or open a checkpoint.", "info")
        return
    if window.is_training:
        window.request_checkpoint()
        return
    folder = RunFolder(window.run_dir).checkpoints if window.run_dir else Path(window.state.folder("checkpoints"))
    default = str(folder / checkpoint_name(session.step))
    path, _ = QFileDialog.getSaveFileName(window, "Save checkpoint", default, "Checkpoints (*.safetensors)")
    if path:
        window.state.remember_folder("checkpoints", path)
        window.save_checkpoint_to(path)


def export_figure_dialog(window: Any) -> None:
    """Ctrl+E: the current tab's figure, in the one remembered export folder."""
    if getattr(window.tabs.currentWidget(), "export_figure", None) is None:
        window.show_message("This tab has nothing to export.", "info")
        return
    path, _ = QFileDialog.getSaveFileName(window, "Export figure", window.state.folder("export"), EXPORT_FILTER)
    if path:
        window.state.remember_folder("export", path)
        window.export_current(path)


def show_about(window: Any) -> None:
    box = QMessageBox(QMessageBox.Icon.Information, APPLICATION,
                      "Train autoencoders and VAEs on your own machine and watch the latent space form.",
                      QMessageBox.StandardButton.Ok, window)
    box.setModal(False)
    box.show()
