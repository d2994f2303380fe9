"""engine.imaging.labelled_panels: the Training tab's one labelled figure (Pillow, no Qt)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.imaging import labelled_panels


def test_panels_are_placed_whole_in_columns_under_a_title():
    red = np.zeros((30, 40, 3), np.uint8)
    red[..., 0] = 255
    gray = np.full((20, 50), 128, np.uint8)
    blue = np.zeros((25, 10, 3), np.uint8)
    blue[..., 2] = 255
    figure = labelled_panels([("loss", red), ("KL × dim", gray), ("β", blue)], columns=2, title="run — step 5")
    assert figure.dtype == np.uint8 and figure.ndim == 3 and figure.shape[2] == 3
    assert ((figure == [255, 0, 0]).all(-1)).sum() == 30 * 40  # every panel pasted whole, nothing else that colour
    assert ((figure == [0, 0, 255]).all(-1)).sum() == 25 * 10
    assert ((figure == [128, 128, 128]).all(-1)).sum() >= 20 * 50
    red_rows = np.where((figure == [255, 0, 0]).all(-1).any(1))[0]
    blue_rows = np.where((figure == [0, 0, 255]).all(-1).any(1))[0]
    assert blue_rows.min() > red_rows.max()  # the third panel starts the second row
    assert (figure[0] == 255).all()  # a white margin


def test_bad_panels_are_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="at least one panel"):
        labelled_panels([])
    with pytest.raises(ValueError, match="uint8"):
        labelled_panels([("x", np.zeros((4, 4), np.float32))])
    with pytest.raises(ValueError, match="columns"):
        labelled_panels([("x", np.zeros((4, 4), np.uint8))], columns=0)
