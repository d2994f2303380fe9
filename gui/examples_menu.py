"""File → Examples: the shipped example models (resources/examples/manifest.json), each opened in one click.

`open_example` is also what the welcome card calls: it opens `example:NAME` like any checkpoint and shows the
panel that suits the model (Conditional for a conditional model, Latent map for a 2-D code, else Traversal).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QMenu

from engine.errors import CheckpointError
from engine.examples import Example, find_example, list_examples


def installed_examples() -> tuple[list[Example], str]:
    """(examples, "") or ([], why none can be listed) — a broken manifest is reported, never raised."""
    try:
        return list_examples(), ""
    except CheckpointError as exc:
        return [], str(exc)


def panel_for(model: Any) -> str:
    """objectName of the tab that shows this model best."""
    if getattr(model, "is_conditional", False):
        return "conditionalPanel"
    if getattr(model, "latent_kind", "") == "continuous" and getattr(model, "latent_dim", 0) == 2:
        return "latentMapPanel"
    return "traversalPanel"


def open_example(window: Any, name: str) -> bool:
    """Open the example's file in the window (so Recent runs can reopen it) and switch to its best panel; errors
    (unknown name, missing or damaged file) go to the window's message strip."""
    try:
        path = find_example(name).path
    except CheckpointError as exc:
        window.show_message(f"Could not open the example: {exc}", "error")
        return False
    if not window.open_checkpoint(path):
        return False
    panel = window.panels.get(panel_for(window.source.snapshot()))
    if panel is not None:
        window.tabs.setCurrentWidget(panel)
    window.statusBar().showMessage(f"opened the example model {name!r}", 8000)
    return True


def build_examples_menu(window: Any) -> QMenu:
    """The submenu, refilled each time it opens (a regenerated manifest shows up without a restart)."""
    menu = QMenu("E&xamples", window)
    menu.setObjectName("examplesMenu")
    menu.setToolTipsVisible(True)
    menu.aboutToShow.connect(lambda: fill_examples_menu(menu, window))
    fill_examples_menu(menu, window)
    return menu


def fill_examples_menu(menu: QMenu, window: Any) -> None:
    menu.clear()
    examples, problem = installed_examples()
    if not examples:
        action = menu.addAction(problem or "(no example models installed: run `make examples`)")
        action.setEnabled(False)
        return
    for example in examples:
        action = menu.addAction(f"{example.name}  —  {example.description}")
        action.setData(example.name)
        action.setStatusTip(example.description)
        action.setToolTip(f"{example.description}\nmade with: {example.command}")
        action.triggered.connect(lambda _checked=False, name=example.name: open_example(window, name))
