"""A 200-image folder against dSprites, side by side in one process: does a small set train as fast per sample?

A new user's first own-data run: 200 PNG circles (64×64, generated into a temporary folder), the default VAE,
batch 128, a run folder, previews every 0.5 s — the app's settings. On 200 images every epoch is one step, so any
per-epoch work paid per step shows here. Both sessions train the same model (same family, hyperparameters, batch)
in alternating chunks of `--chunk` steps (ABAB…, so other load on the machine hits both alike); samples/s counts
only the time spent inside each session's chunks. Prints each rate, the ratio and the number of preview PNGs the
small run's folder holds (and all its files), then `RESULT small_vs_dsprites=<ratio> png_files=<n>`.
The target (issue 21): ratio ≥ 0.8, and 2,000 steps of the small run write ≤ 50 files (the default, non-quick run).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.config import TrainConfig  # noqa: E402
from engine.data import load_dataset  # noqa: E402
from engine.training import TrainingSession  # noqa: E402


def write_circles(folder: Path, count: int = 200, size: int = 64, seed: int = 0) -> Path:
    """`count` grayscale PNGs of one white disc each (random centre and radius)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image = Image.new("L", (size, size), 0)
        r = rng.uniform(6, 16)
        cx, cy = rng.uniform(r, size - r, size=2)
        ImageDraw.Draw(image).ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
        image.save(folder / f"circle_{i:03d}.png")
    return folder


class Runner:
    """A session driven chunk by chunk: `advance(n)` runs n more steps and returns the seconds they took."""

    def __init__(self, spec: str, out_dir: Path, args: argparse.Namespace) -> None:
        config = TrainConfig(dataset=spec, family="vae", max_steps=10**7, batch_size=args.batch, test_fraction=0.02,
                             seed=0, device="cpu", threads=args.threads, preview_every_s=0.5, out_dir=str(out_dir),
                             hparams={"latent_dim": 10})
        self.session = TrainingSession(config, load_dataset(spec))
        self.events = self.session.run()
        self.seconds = 0.0
        self.steps = 0

    def advance(self, steps: int) -> None:
        target = self.session.step + steps
        started = time.perf_counter()
        while self.session.step < target:
            next(self.events)
        self.seconds += time.perf_counter() - started
        self.steps += steps

    def rate(self) -> float:
        return self.steps * self.session.batch_size / self.seconds

    def close(self) -> None:
        self.events.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="80 steps each (chunks of 20) instead of 2,000")
    parser.add_argument("--steps", type=int, default=None, help="steps per session (default 2000; --quick 80)")
    parser.add_argument("--chunk", type=int, default=None, help="steps per alternation (default 100; --quick 20)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dsprites", default="dsprites?subset=20000", help="the large set to compare with")
    args = parser.parse_args()
    steps = args.steps or (80 if args.quick else 2000)
    chunk = args.chunk or (20 if args.quick else 100)
    with tempfile.TemporaryDirectory(prefix="small-data-") as tmp:
        tmp_path = Path(tmp)
        folder = write_circles(tmp_path / "circles")
        small = Runner(str(folder), tmp_path / "run-small", args)
        large = Runner(args.dsprites, tmp_path / "run-dsprites", args)
        print(f"small: {small.session.info()}")
        print(f"large: {large.session.info()}")
        small.advance(5)  # warm-up (first use of each op), not counted
        large.advance(5)
        small.seconds = large.seconds = 0.0
        small.steps = large.steps = 0
        done = 0
        while done < steps:
            n = min(chunk, steps - done)
            small.advance(n)
            large.advance(n)
            done += n
        small.close()
        large.close()
        run_folder = tmp_path / "run-small"
        files = [p for p in run_folder.rglob("*") if p.is_file()]
        pngs = [p for p in files if p.suffix == ".png"]
        ratio = small.rate() / large.rate()
        print(f"200-image folder: {small.rate():,.0f} samples/s over {small.steps + 5} steps")
        print(f"{args.dsprites}: {large.rate():,.0f} samples/s over {large.steps + 5} steps")
        print(f"small run folder after {small.session.step} steps: {len(files)} files, {len(pngs)} preview PNGs")
        print(f"RESULT small_vs_dsprites={ratio:.3f} png_files={len(pngs)} run_files={len(files)} "
              f"steps={small.session.step}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
