"""The pictures of docs/datasets.md "Embedded worlds": one labelled strip per factor of each world (the factor
stepped through its values, the others fixed), written to docs/screenshots/world_<name>.png."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.data import load_dataset  # noqa: E402
from engine.data.worlds import factor_strips  # noqa: E402
from engine.imaging import labelled_grid, save_png  # noqa: E402

WORLDS = ("dsprites", "color-dsprites", "noisy-dsprites", "xyobject", "shapes3d")
PER_STRIP = 8


def main() -> int:
    for name in WORLDS:
        images, names = factor_strips(load_dataset(name), PER_STRIP)
        cells = images.numpy().reshape(len(names), PER_STRIP, *images.shape[1:])
        cells = cells[:, :, 0] if cells.shape[2] == 1 else cells.transpose(0, 1, 3, 4, 2)
        figure = labelled_grid(cells, list(names), [str(c + 1) for c in range(PER_STRIP)],
                               axis_title="value (evenly spaced over the factor's range)", cell_size=48)
        print(save_png(figure, ROOT / "docs" / "screenshots" / f"world_{name}.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
