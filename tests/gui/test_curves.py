"""Loss curves keep a sticky view (the axes change in jumps, not at every redraw: each change re-renders ticks) and
bounded memory (a long run is thinned evenly)."""

from __future__ import annotations

import numpy as np

from gui.widgets.curves import ROBUST_SKIP_FRACTION, LossCurves, _Series, nice_ceiling


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
    first_kept = 2000 * ROBUST_SKIP_FRACTION + 1
    assert 0.0 <= y0 <= 80.0 and y1 >= 3000 * np.exp(-first_kept / 300) + 100, \
        "every point after the first steps is in view, axis from 0"
    changes = sum(a != b for a, b in zip(ranges, ranges[1:], strict=False))
    assert changes <= 20, f"the view changed at {changes} of {len(ranges)} redraws"


def test_series_is_thinned_evenly_and_bounded():
    series = _Series(limit=100)
    for start in range(0, 10_000, 37):  # uneven batch sizes, as the worker delivers them
        steps = np.arange(start, min(start + 37, 10_000), dtype=float)
        series.extend(steps, 2.0 * steps)
        assert series.n <= 100 and series._x.size <= 100
    assert series.seen == 10_000 and series.stride == 128
    np.testing.assert_array_equal(series.x, np.arange(0, 10_000, 128, dtype=float))
    np.testing.assert_array_equal(series.y, 2.0 * series.x)
    assert series.x[-1] > 10_000 - series.stride, "the curve reaches the last stride of the run"


def test_series_below_the_limit_keeps_every_point():
    series = _Series(limit=1000)
    series.extend(np.arange(600.0), np.arange(600.0))
    series.extend(np.arange(600.0, 1000.0), np.arange(600.0, 1000.0))
    assert series.stride == 1
    np.testing.assert_array_equal(series.x, np.arange(1000.0))


def test_one_batch_larger_than_the_limit():
    series = _Series(limit=10)
    series.extend(np.arange(95.0), np.zeros(95))
    assert series.stride == 16 and series.n <= 10
    np.testing.assert_array_equal(series.x, np.arange(0.0, 95.0, 16.0))


def test_curve_memory_stays_bounded_on_a_long_run(qtbot):
    curves = LossCurves()
    qtbot.addWidget(curves)
    for start in range(0, 200_000, 500):
        steps = np.arange(start, start + 500, dtype=float)
        curves.add_train(steps, {"total": 100.0 + 0.0 * steps, "kl": 5.0 + 0.0 * steps})
        curves.add_live(steps, {"beta": np.where(steps < 1000, 1.0, 4.0)})
    curves.redraw()
    assert curves.point_count() <= 2 * 20_000
    steps, betas = curves.live_series("beta")
    assert steps.size <= 20_000 and betas[0] == 1.0 and betas[-1] == 4.0
    assert steps[-1] >= 200_000 - 16, "the curve reaches the end of the run"


def test_loss_and_live_plots_share_aligned_step_axes(qtbot):
    curves = LossCurves()
    qtbot.addWidget(curves)
    curves.resize(700, 500)
    curves.show()
    steps = np.arange(1.0, 3001.0)
    curves.add_train(steps, {"total": 500.0 + 0.0 * steps})
    curves.add_live(steps, {"beta": np.minimum(4.0, steps / 500.0), "lr": np.full(steps.size, 1e-3)})
    curves.redraw()
    qtbot.wait(50)
    upper = curves.loss_plot.vb.sceneBoundingRect()
    lower = curves.live_plot.vb.sceneBoundingRect()
    assert abs(upper.left() - lower.left()) < 1.0 and abs(upper.right() - lower.right()) < 1.0
    assert curves.loss_plot.vb.viewRange()[0] == curves.live_plot.vb.viewRange()[0]


def test_the_step_0_spike_does_not_set_the_linear_range(qtbot):
    curves = LossCurves()
    qtbot.addWidget(curves)
    curves.resize(600, 400)
    curves.show()
    steps = np.arange(1, 401, dtype=float)
    loss = 100.0 + 10.0 * np.cos(steps / 20.0)
    loss[:3] = [5000.0, 2000.0, 800.0]  # the untrained model's first steps
    curves.add_train(steps, {"total": loss})
    curves.redraw()
    (_, _), (y0, y1) = curves.loss_plot.vb.viewRange()
    assert 110.0 <= y1 < 200.0 and y0 >= 0.0, (y0, y1)  # the later variation fills the plot
    curves.set_log_scale(True)
    curves.redraw()
    (_, _), (_, log_top) = curves.loss_plot.vb.viewRange()
    assert log_top >= np.log10(5000.0), "in log scale every point stays in view"


def test_the_loss_legend_is_off_the_curves(qtbot):
    curves = LossCurves()
    qtbot.addWidget(curves)
    curves.resize(600, 400)
    curves.show()
    steps = np.arange(1, 101, dtype=float)
    curves.add_train(steps, {"total": 1000.0 / steps, "recon": 900.0 / steps, "kl": 10.0 + 0 * steps})
    curves.set_log_scale(True)
    curves.redraw()
    qtbot.wait(50)
    legend = curves.loss_legend.sceneBoundingRect()
    view = curves.loss_plot.vb.sceneBoundingRect()
    assert [label.text for _, label in curves.loss_legend.items] == ["total", "recon", "kl"]
    assert not legend.intersects(view), (legend, view)
