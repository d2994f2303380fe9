"""Example models in the real window: File → Examples, the first-run welcome card, every panel rendering each
shipped example, and a missing or damaged example reported in the window (which keeps running)."""

from __future__ import annotations

import json

import pytest
from PySide6.QtWidgets import QMenu

from engine.examples import DEFAULT_EXAMPLES_DIR, MANIFEST_NAME, list_examples
from gui.examples_menu import fill_examples_menu, open_example, panel_for
from gui.widgets.welcome import SEEN_KEY

SHIPPED = list_examples(DEFAULT_EXAMPLES_DIR)
EXPLORATION_PANELS = ("traversalPanel", "interpolationPanel", "latentMapPanel", "galleryPanel")


def examples_menu(window) -> QMenu:
    menu = window.findChild(QMenu, "examplesMenu")
    assert menu is not None
    fill_examples_menu(menu, window)  # what aboutToShow does
    return menu


def test_welcome_card_on_first_run_opens_an_example(main_window, qtbot):
    window = main_window
    card = window.welcome_card
    assert card is not None and card.isVisible()
    assert card.explore_button.text() == "Explore a trained model" and card.train_button.text() == "Train one yourself"
    names = [card.example_combo.itemData(i) for i in range(card.example_combo.count())]
    assert names == [e.name for e in SHIPPED]
    card.example_combo.setCurrentIndex(names.index("mnist-vae-2d"))
    card.explore_button.click()
    path = str(DEFAULT_EXAMPLES_DIR / "mnist-vae-2d.safetensors")
    qtbot.waitUntil(lambda: window.checkpoint_path == path, timeout=20_000)
    assert not card.isVisible() and window.settings.value(SEEN_KEY, False, type=bool)
    assert window.tabs.currentWidget() is window.panels["latentMapPanel"]
    assert window.source.has_model and window.source.info["checkpoint"] == path


def test_welcome_card_train_one_yourself_starts_training_and_is_not_shown_again(main_window, qtbot):
    from gui.main_window import MainWindow

    window = main_window
    window.welcome_card.train_button.click()
    qtbot.waitUntil(lambda: window.is_training or bool(window.messages), timeout=20_000)
    assert window.is_training, window.messages
    assert not window.welcome_card.isVisible()
    window.stop_training()
    qtbot.waitUntil(lambda: not window.is_training, timeout=30_000)
    again = MainWindow(settings=window.settings)
    qtbot.addWidget(again)
    assert again.welcome_card is None


def test_dismissed_welcome_card_stays_closed(main_window):
    main_window.welcome_card.close_button.click()
    assert not main_window.welcome_card.isVisible()
    assert main_window.settings.value(SEEN_KEY, False, type=bool)


def test_file_examples_lists_each_with_its_description_and_opens_it(main_window, qtbot):
    window = main_window
    actions = examples_menu(window).actions()
    assert [a.data() for a in actions] == [e.name for e in SHIPPED]
    for action, example in zip(actions, SHIPPED, strict=True):
        assert example.description in action.text() and action.statusTip() == example.description
        assert example.command in action.toolTip()
    next(a for a in actions if a.data() == "mnist-cvae").trigger()
    path = str(DEFAULT_EXAMPLES_DIR / "mnist-cvae.safetensors")
    qtbot.waitUntil(lambda: window.checkpoint_path == path, timeout=20_000)
    assert window.tabs.currentWidget() is window.panels["conditionalPanel"]
    assert not window.welcome_card.isVisible(), "a model on screen hides the welcome card"
    assert window.recent_runs()[0] == path, "Recent runs can reopen it"


@pytest.mark.parametrize("example", SHIPPED, ids=[e.name for e in SHIPPED])
def test_every_panel_renders_the_shipped_example(main_window, qtbot, tmp_path, example):
    window = main_window
    assert open_example(window, example.name), window.messages
    model = window.source.snapshot()
    assert window.tabs.currentWidget() is window.panels[panel_for(model)]
    names = EXPLORATION_PANELS + (("conditionalPanel",) if model.is_conditional else ())
    for name in names:
        window.tabs.setCurrentWidget(window.panels[name])
        panel = window.panels[name]
        out = tmp_path / f"{name}.png"

        def rendered(panel=panel, out=out) -> bool:
            try:
                panel.export_png(out)
            except ValueError:
                return False
            return out.is_file()

        qtbot.waitUntil(rendered, timeout=30_000)
    assert not [m for level, m in window.messages if level == "error"]


def test_a_missing_example_is_reported_in_the_window(main_window, qtbot, tmp_path, monkeypatch):
    folder = tmp_path / "examples"
    folder.mkdir()
    entry = {"name": "lost", "description": "a model whose file is gone", "file": "lost.safetensors",
             "command": "python main.py train …", "eval_command": "python main.py eval example:lost --json",
             "seed": 0, "steps": 1, "wall_s": 1.0, "machine": "test", "scores": {}}
    (folder / MANIFEST_NAME).write_text(json.dumps({"examples": [entry]}), encoding="utf-8")
    monkeypatch.setenv("LATENT_EXPLORER_EXAMPLES", str(folder))
    window = main_window
    actions = examples_menu(window).actions()
    assert [a.data() for a in actions] == ["lost"]
    actions[0].trigger()
    level, text = window.messages[-1]
    assert level == "error" and "lost.safetensors" in text and "cannot open" in text
    assert window.checkpoint_path is None and window.isVisible()
    (folder / "lost.safetensors").write_bytes(b"\x00" * 64)  # damaged
    actions[0].trigger()
    level, text = window.messages[-1]
    assert level == "error" and "not a Latent Explorer checkpoint" in text and window.checkpoint_path is None
    assert not open_example(window, "nosuch")
    level, text = window.messages[-1]
    assert level == "error" and "no such example model; shipped: lost" in text
    (folder / MANIFEST_NAME).write_text("{broken", encoding="utf-8")
    actions = examples_menu(window).actions()
    assert len(actions) == 1 and not actions[0].isEnabled() and "manifest" in actions[0].text()


def test_a_tab_built_after_the_example_opened_shows_it(qtbot):
    """`python main.py` builds its tabs after start-up: one built when a model is already loaded must show it."""
    from engine.checkpoint import load_checkpoint
    from engine.data import load_dataset
    from gui.model_source import ModelSource
    from gui.panels.traversal import TraversalPanel

    loaded = load_checkpoint("example:mnist-vae-2d")
    dataset = load_dataset(loaded.dataset_spec)
    _, test = dataset.split(loaded.config.test_fraction, loaded.config.seed)
    source = ModelSource()
    source.set_static(loaded.model, dataset, test, {"step": loaded.step})
    panel = TraversalPanel(source)
    qtbot.addWidget(panel)
    try:
        panel.resize(900, 600)
        panel.show()
        qtbot.waitUntil(lambda: panel.grid is not None, timeout=20_000)
        assert panel.stack.currentWidget() is panel.content
    finally:
        panel.shutdown()


def test_an_example_names_its_preset_and_its_file_fits_the_status_bar(main_window, qtbot):
    """The Model dock names the preset a checkpoint was trained from (not "(custom)"), a new run builds on that
    preset, and the status bar's checkpoint name is cut in the middle to its width, whole in the tooltip."""
    window = main_window
    assert open_example(window, "dsprites-vae"), window.messages
    assert window.model_settings.preset_combo.currentData() == "dsprites-vae"
    assert window.preset_config is not None and window.preset_config.family == "vae"
    assert open_example(window, "mnist-vae-2d"), window.messages  # 2 latents: no preset has this recipe
    assert window.model_settings.preset_combo.currentText() == "(custom)"
    label = window.status.run_label
    path = str(DEFAULT_EXAMPLES_DIR / "mnist-vae-2d.safetensors")
    assert label.toolTip() == path
    assert label.fontMetrics().horizontalAdvance(label.text()) <= label.maximumWidth()
    window.status.show_checkpoint("/runs/" + "a-very-long-run-name-" * 6 + "step_6000.safetensors", "step: 1")
    text = label.text()
    assert "…" in text and text.startswith("checkpoint: ") and text.endswith(".safetensors")
    assert label.fontMetrics().horizontalAdvance(text) <= label.maximumWidth()
