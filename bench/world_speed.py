"""What a batch of each factor world costs beside the training step of its recipe (target: batch ≤ 10 % of a step).

For every embedded factor world (dsprites, color-dsprites, noisy-dsprites, xyobject, shapes3d) in one process:
the median time of `images_at` for 128 random indices (the batch hook training, probe, metrics and panels call),
the median training step of the world's recipe (its `<world>-disentangle` preset, else dsprites-disentangle on the
world) at batch 128 — the step includes drawing its batch — and the memory the world holds (its parts, and the
process's resident-memory growth while loading it). Torch runs on `--threads` threads (default 1: the machine
is shared); quote `uptime` with the numbers.

Prints per world: RESULT <world>_batch_ms=<ms> step_ms=<ms> ratio=<batch/step> parts_mb=<MB> rss_mb=<MB>
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.data import load_dataset  # noqa: E402
from engine.events import Failed, StepMetrics  # noqa: E402
from engine.presets import load_preset  # noqa: E402
from engine.training import TrainingSession  # noqa: E402

WORLDS = ("dsprites", "color-dsprites", "noisy-dsprites", "xyobject", "shapes3d")
BATCH = 128


def rss_mb() -> float:
    """Resident memory of this process (Linux /proc), in MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


def recipe(world: str):
    try:
        config = load_preset(f"{world}-disentangle")
    except Exception:  # noqa: BLE001 — no preset of its own: the dSprites recipe on this world
        config = load_preset("dsprites-disentangle")
    return config.replace(dataset=world, fallback=[], batch_size=BATCH, max_steps=10**9, device="cpu",
                          metrics_every=1, preview_every_s=3600.0, test_fraction=0.001)


def batch_ms(dataset, reps: int) -> float:
    gen = torch.Generator().manual_seed(0)
    times = []
    for _ in range(reps + 2):
        idx = torch.randint(0, len(dataset), (BATCH,), generator=gen)
        start = time.perf_counter()
        dataset.images_at(idx)
        times.append(time.perf_counter() - start)
    return statistics.median(times[2:]) * 1000


def step_ms(dataset, world: str, steps: int, warmup: int) -> float:
    session = TrainingSession(recipe(world), dataset=dataset)
    stamps = []
    events = session.run()
    for event in events:
        if isinstance(event, Failed):
            raise RuntimeError(event.cause)
        if isinstance(event, StepMetrics):
            stamps.append(time.perf_counter())
            if len(stamps) > warmup + steps:
                break
    events.close()
    gaps = [b - a for a, b in zip(stamps[warmup:], stamps[warmup + 1:], strict=False)]
    return statistics.median(gaps) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--worlds", default=",".join(WORLDS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    reps, steps, warmup = (10, 4, 2) if args.quick else (50, 20, 5)
    failed = False
    loaded = {}
    for world in args.worlds.split(","):  # all loaded first: each RSS growth is that world's alone
        before = rss_mb()
        loaded[world] = load_dataset(world)
        loaded[world].images_at(torch.arange(BATCH))
        loaded[world] = (loaded[world], rss_mb() - before)
    for world, (dataset, grown) in loaded.items():
        parts = getattr(dataset, "parts_nbytes", None)
        if parts is None:
            parts = getattr(getattr(dataset, "bank", None), "nbytes", 0)
        b = batch_ms(dataset, reps)
        s = step_ms(dataset, world, steps, warmup)
        ratio = b / s
        failed |= ratio > 0.10 or max(parts / 1e6, grown) > 300
        print(f"{world}: batch of {BATCH} {b:.2f} ms, recipe step {s:.1f} ms ({100 * ratio:.1f} %); "
              f"parts {parts / 1e6:.1f} MB, RSS +{grown:.0f} MB", flush=True)
        print(f"RESULT {world.replace('-', '_')}_batch_ms={b:.2f} step_ms={s:.1f} ratio={ratio:.3f} "
              f"parts_mb={parts / 1e6:.1f} rss_mb={grown:.0f}", flush=True)
    print("targets (batch ≤ 10 % of a step, ≤ 300 MB per world): " + ("MISSED" if failed else "met"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
