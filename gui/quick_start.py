"""Help → Quick start: what to do first and what to watch, in one page (non-modal).

The page is generated from the code each time it opens, so it cannot go stale: the default preset's name and
description (engine.presets), the preset list, the shipped examples (resources/examples/manifest.json), the tabs
(gui/panel_tabs.PANEL_TABS) and the keyboard shortcuts of the window's actual QActions.
"""

from __future__ import annotations

from html import escape
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QMenu, QTextBrowser, QVBoxLayout, QWidget


def menu_shortcuts(window: Any) -> list[tuple[str, str, str]]:
    """(menu, action, shortcut as shown to the user) of every menu action that has a shortcut, in menu order."""
    rows: list[tuple[str, str, str]] = []
    for menu in window.menuBar().findChildren(QMenu, options=Qt.FindChildOption.FindDirectChildrenOnly):
        title = menu.title().replace("&", "")
        for action in menu.actions():
            keys = action.shortcut()
            if keys.isEmpty() or action.menu() is not None:
                continue
            shown = keys.toString(QKeySequence.SequenceFormat.NativeText) or keys.toString()
            rows.append((title, action.text().replace("&", "").rstrip("…"), shown))
    return rows


def _default_preset() -> tuple[str, str, str]:
    """(name, description, one-line summary of its model) of the first-run default preset; empty when missing."""
    try:
        from engine.presets import DEFAULT_PRESET, list_presets, load_preset

        config = load_preset(DEFAULT_PRESET)
    except Exception:  # a build without presets: the page says what Start trains in general terms
        return "", "", ""
    description = dict(list_presets()).get(DEFAULT_PRESET, "")
    hp = config.hparams
    parts = [config.family] + [f"{'β' if k == 'beta' else k} = {hp[k]:g}" for k in ("beta", "latent_dim")
                               if isinstance(hp.get(k), int | float)]
    return DEFAULT_PRESET, description, f"{parts[0]} ({', '.join(parts[1:])}) on {config.dataset}" \
        if len(parts) > 1 else f"{parts[0]} on {config.dataset}"


def _presets() -> list[tuple[str, str]]:
    try:
        from engine.presets import list_presets

        return list_presets()
    except Exception:
        return []


def _examples() -> list[tuple[str, str]]:
    try:
        from engine.examples import list_examples

        return [(e.name, e.description) for e in list_examples()]
    except Exception:  # no manifest in this build: the section is left out
        return []


def _tab_titles() -> list[str]:
    from gui.panel_tabs import PANEL_TABS

    return ["Training", *(row[2] for row in PANEL_TABS)]


def quick_start_html(window: Any) -> str:
    """The Quick start page for `window` (its menus give the shortcuts)."""
    name, description, model = _default_preset()
    shortcuts = menu_shortcuts(window)
    start_keys = next((keys for _, action, keys in shortcuts if action == "Start"), "")
    tabs = _tab_titles()
    out = ["<h3>Quick start</h3><ol>"]
    default = (f"The default preset is <b>{escape(name)}</b>: {escape(model)} — {escape(description)}."
               if name else "The Model dock shows what Start will train.")
    out.append(f"<li><b>Press Start</b>{f' ({escape(start_keys)})' if start_keys else ''}. {default} dSprites are "
               "white shapes whose shape, scale, orientation and position are known, so the app can measure "
               "which latent learned which factor.</li>")
    out.append("<li><b>Watch the Training tab.</b> The loss falls; <i>recon</i> (how badly images are reconstructed) "
               "and <i>kl</i> (how much information the code carries) trade against each other. The <b>KL per "
               "latent dimension</b> bars show which dimensions are used (grey ones collapsed to the prior). The "
               "<b>MIG curve</b> and the <b>latent × factor mutual-information heatmap</b> beside it are a live "
               "probe every few seconds: a heatmap with one bright cell per factor column is a disentangled "
               "code.</li>")
    out.append("<li><b>Change β while it trains</b> (“Change while training”): raise it and the KL bars shrink and the "
               "reconstructions blur; lower it and detail returns.</li>")
    out.append(f"<li><b>Explore</b> in the tabs ({escape(', '.join(tabs[1:]))}). Traversal changes one latent per row "
               "(largest KL first); Evaluation computes −ELBO, the five disentanglement scores and the heatmap on "
               "a test set.</li></ol>")
    examples = _examples()
    if examples:
        out.append("<h4>Trained examples</h4><p>File → Examples opens a model trained in advance, to explore at once:"
                   "</p><ul>" + "".join(f"<li><b>{escape(n)}</b>: {escape(d)}</li>" for n, d in examples) + "</ul>")
    presets = _presets()
    if presets:
        out.append("<h4>Presets</h4><p>The Model dock's preset list fills every setting:</p><ul>"
                   + "".join(f"<li><b>{escape(n)}</b>{' (default)' if n == name else ''}: {escape(d)}</li>"
                             for n, d in presets) + "</ul>")
    compare = [t for t in tabs if "compar" in t.lower()]
    out.append("<h4>Sweeps and comparing models</h4><p>Evaluation → Sweep trains a grid of runs (e.g. "
               "<code>beta=1,4,16</code>) and compares them in a table and on the rate–distortion plane; "
               "<code>main.py sweep</code> does the same from a terminal, also on a Ray cluster."
               + (f" The {escape(compare[0])} tab sets several models side by side." if compare else "")
               + " File → Recent runs reopens any earlier run.</p>")
    out.append("<h4>Your own data</h4><p>In the Data dock, <i>Open folder…</i> takes a folder of PNG/JPEG images "
               "(sub-folders become labels; <code>?size=32</code> resizes) and <i>Open file…</i> a "
               "<code>.npy</code>/<code>.npz</code> array (<code>images</code>/<code>x</code>, optional "
               "<code>labels</code>/<code>y</code>); dropping a file or folder on the window does the same. Data "
               "without ground-truth factors trains and explores like any other; the MIG probe and the "
               "disentanglement scores need factors (the dSprites family).</p>")
    if shortcuts:
        out.append("<h4>Keyboard shortcuts</h4><table cellspacing='2'>"
                   + "".join(f"<tr><td><b>{escape(keys)}</b></td><td>{escape(menu)} → {escape(action)}</td></tr>"
                             for menu, action, keys in shortcuts) + "</table>")
    out.append("<p>Ctrl+E exports the current tab's figure; right-click a Training-tab plot to export it alone. Every "
               "hyperparameter's tooltip gives the formula it enters. More: docs/app.md and docs/panels.md.</p>")
    return "\n".join(out)


def show_quick_start(parent: QWidget) -> QDialog:
    """Open the quick start beside the window (non-modal: the app keeps working)."""
    dialog = QDialog(parent)
    dialog.setObjectName("quickStart")
    dialog.setWindowTitle("Quick start")
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    layout = QVBoxLayout(dialog)
    text = QTextBrowser()
    text.setHtml(quick_start_html(parent))
    text.setOpenExternalLinks(False)
    layout.addWidget(text)
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dialog.close)
    layout.addWidget(buttons)
    dialog.resize(600, 560)
    dialog.setModal(False)
    dialog.show()
    return dialog
