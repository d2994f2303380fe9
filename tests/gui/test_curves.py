"""Loss curves keep a sticky view: the axes change in jumps, not at every redraw (each change re-renders ticks)."""

from __future__ import annotations

import numpy as np

from gui.widgets.curves import LossCurves, nice_ceiling


def test_nice_ceiling():
    assert [nice_ceiling(v) for v in (0.7, 1, 1.3, 3, 7, 12, 5000, 5001)] == [1, 1, 2, 5, 10, 20, 5000, 10000]


def test_view_follows_the_data_in_a_few_jumps(qtbot):
    curves = LossCurves()
    qtbot.addWidget(curves)
    curves.resize(600, 400)
    curves.show()
    ranges = []
    for start in range(0, 2000, 10):
        steps = np.arange(start + 1, start + 11, dtype=float)
        loss = 3000.0 * np.exp(-steps / 300.0) + 100.0
        curves.add_train(steps, {"total": loss, "recon": loss - 20.0})
        curves.redraw()
        ranges.append(tuple(map(tuple, curves.loss_plot.vb.viewRange())))
    (x0, x1), (y0, y1) = ranges[-1]
    assert x0 <= 0 and x1 >= 2000, "the last step is in view"
    assert 0.0 <= y0 <= 80.0 and y1 >= 3000 * np.exp(-1 / 300) + 100, "every point is in view, axis from 0"
    changes = sum(a != b for a, b in zip(ranges, ranges[1:], strict=False))
    assert changes <= 20, f"the view changed at {changes} of {len(ranges)} redraws"
