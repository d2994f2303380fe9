"""Write a folder of your own images with ground-truth factors: 32×32 PNGs of a shape at a position and size, and a
factors.csv naming each file's shape (a label), x, y and size (numbers). docs/datasets.md, "Your own data", trains on
it. Usage: python docs/examples/make_shapes_folder.py OUT_FOLDER [--keep 0.8]  (--keep < 1 leaves combinations out:
a partial grid, as real data is)."""

from __future__ import annotations

import argparse
import csv
import itertools
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("disc", "square", "triangle")
POSITIONS = (8, 12, 16, 20, 24)
SIZES = (3, 4.5, 6)


def draw(shape: str, x: float, y: float, size: float, px: int = 32) -> Image.Image:
    image = Image.new("L", (px, px), 0)
    pen = ImageDraw.Draw(image)
    box = (x - size, y - size, x + size, y + size)
    if shape == "disc":
        pen.ellipse(box, fill=255)
    elif shape == "square":
        pen.rectangle(box, fill=255)
    else:
        pen.polygon([(x, y - size), (x - size, y + size), (x + size, y + size)], fill=255)
    return image


def write_folder(out: Path, keep: float = 1.0, seed: int = 0) -> int:
    """Every (shape, x, y, size) combination (225) as a PNG, or a random `keep` share of them; returns the count."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i, (shape, x, y, size) in enumerate(itertools.product(SHAPES, POSITIONS, POSITIONS, SIZES)):
        if keep < 1.0 and rng.random() > keep:
            continue
        name = f"{i:04d}.png"
        draw(shape, x, y, size).save(out / name)
        rows.append([name, shape, x, y, size])
    with open(out / "factors.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "shape", "x", "y", "size"])
        writer.writerows(rows)
    return len(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--keep", type=float, default=1.0, help="share of the combinations to write (default all)")
    args = parser.parse_args()
    print(f"wrote {write_folder(args.out, args.keep)} images and factors.csv to {args.out}")
