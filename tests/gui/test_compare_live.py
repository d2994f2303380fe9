"""The Compare tab follows the running session (issue 19 §2): its entry's curves grow and its views re-render with
newer weights while the run trains and the tab shows; when the run stops the entry keeps the last weights under the
run's name, and a later run never rewrites it."""

from __future__ import annotations

import numpy as np
import torch

from gui.panels.compare import VIEWS
from tests.gui.test_main_window import start, use_tiny_setup


def curve_points(panel, key: str) -> int:
    item = panel.curve_items.get(key)
    return 0 if item is None or item.xData is None else len(item.xData)


def test_the_running_session_is_compared_live_and_kept_when_it_stops(main_window, qtbot):
    window = main_window
    use_tiny_setup(window, qtbot)
    start(window, qtbot)
    qtbot.waitUntil(lambda: window.source.is_live and window.session.step > 20, timeout=20_000)
    session = window.session
    tabs = window.tabs
    if "comparePanel" in getattr(tabs, "pending", {}):
        tabs._build_panel("comparePanel")
    panel = window.panels["comparePanel"]
    panel.live_timer.setInterval(300)  # the app waits LIVE_REFRESH_MS between refreshes; the mechanism is the same
    tabs.setCurrentWidget(panel)
    assert panel.add_current()
    qtbot.waitUntil(lambda: panel.keys == ["live"] and "curves" in panel.results and panel.is_idle, timeout=20_000)
    assert panel.live_key == "live" and panel.comparison.label("live").endswith("(live)")
    assert not panel.add_current() and "already compared" in panel.status.text()
    first = panel.comparison.entry("live")
    points = curve_points(panel, "live")
    assert points > 0
    qtbot.waitUntil(lambda: panel.comparison.entry("live").step > first.step and curve_points(panel, "live") > points,
                    timeout=10_000)

    panel.views.setCurrentIndex([name for name, _ in VIEWS].index("traversals"))
    qtbot.waitUntil(lambda: panel.traversal_grids.get("live") is not None and
                    panel.traversal_grids["live"].view.image is not None and panel.is_idle, timeout=20_000)
    shown = np.array(panel.traversal_grids["live"].view.image, copy=True)
    shown_step = panel.comparison.entry("live").step
    qtbot.waitUntil(lambda: panel.comparison.entry("live").step > shown_step and panel.is_idle and
                    not np.array_equal(panel.traversal_grids["live"].view.image, shown), timeout=10_000)

    tabs.setCurrentWidget(window.training_panel)  # hidden: no snapshot competes with training, one is owed
    hidden = panel.comparison.entry("live")
    qtbot.waitUntil(lambda: panel._live_due, timeout=10_000)
    assert panel.comparison.entry("live") is hidden and panel.is_idle
    tabs.setCurrentWidget(panel)  # shown again: it catches up at once
    qtbot.waitUntil(lambda: panel.comparison.entry("live").step > hidden.step, timeout=10_000)

    window.stop_training()
    qtbot.waitUntil(lambda: not window.is_training and panel.live_key is None and panel.is_idle and
                    panel.comparison.entry("live").tag != "live", timeout=10_000)
    kept = panel.comparison.entry("live")
    assert kept.tag == "last run" and panel.comparison.label("live").endswith("(last run)")
    assert kept.step == session.step and panel.chips["live"].edit.text().endswith("(last run)")
    final = session.snapshot_model().state_dict()
    assert all(torch.equal(final[name], value) for name, value in kept.model.state_dict().items())

    start(window, qtbot)  # a new run: the kept entry is not rewritten by it
    assert window.session is not session
    qtbot.waitUntil(lambda: window.session.step > 40, timeout=20_000)
    qtbot.wait(100)
    assert panel.comparison.entry("live") is kept and not panel.live_timer.isActive()
    window.stop_training()
    qtbot.waitUntil(lambda: not window.is_training and panel.is_idle, timeout=10_000)
    assert panel.comparison.entry("live") is kept
