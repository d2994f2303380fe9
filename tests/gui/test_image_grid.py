"""One image-grid implementation: GridView (ticks, clicks) and the titled ImageGrid built on it."""

from __future__ import annotations

import numpy as np
import pytest

from gui.widgets import GridView, ImageGrid


def test_image_grid_draws_through_its_grid_view(qtbot):
    grid = ImageGrid("Samples")
    qtbot.addWidget(grid)
    grid.show()
    image = (np.arange(40 * 60) % 256).astype(np.uint8).reshape(40, 60)
    grid.set_image(image)
    assert grid.updates == 1 and grid.view.updates == 1
    np.testing.assert_array_equal(grid.image(), image)
    assert grid.title_label.text() == "Samples" and grid.title_label.isVisible()
    grid.set_image(None)
    assert grid.image() is None
    grid.set_title("")
    assert not grid.title_label.isVisible()


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.float32), np.zeros((2, 4, 4, 1), np.uint8)])
def test_grids_reject_what_they_cannot_draw(qtbot, bad):
    view = GridView()
    qtbot.addWidget(view)
    with pytest.raises(ValueError, match="uint8"):
        view.set_grid(bad)
    assert view.image is None


def test_grid_view_clicks_in_pixel_coordinates(qtbot):
    view = GridView()
    qtbot.addWidget(view)
    view.set_grid(np.zeros((30, 50, 3), np.uint8), row_ticks=[(15.0, "z0")], col_ticks=[(25.0, "−3")])
    with qtbot.waitSignal(view.clicked) as blocker:
        view.click_pixel(49.5, 2.0)
    assert blocker.args == [49.5, 2.0]
    with qtbot.assertNotEmitted(view.clicked):
        view.click_pixel(50.0, 2.0)
