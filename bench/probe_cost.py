"""What the live disentanglement probe costs training: the same run with and without it, interleaved.

Each block trains a fresh TrainingSession of one configuration for `--seconds` of wall time (session construction
excluded) and counts optimiser steps; blocks alternate without / with the probe (`probe_every_s = --every`, the
app's 5 s by default), `--reps` times each. The probe scores MIG on PROBE_POINTS factor samples (engine/probe.py)
and stretches its cadence so that probing takes at most PROBE_MAX_SHARE of the wall time. Default configuration:
β-VAE on the position-only dSprites (`dsprites?shape=square&scale=5&orientation=0`), batch 64, the conv backbone
(the auto choice for 64×64; its encoder makes the probe dearest) — `--backbone mlp` for the MLP.

Prints per-block steps/s, probes and ms per probe, then `RESULT probe_throughput_ratio=<median with / median
without> probe_ms=<median> probes_per_block=<median>`. `--quick`: short blocks.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.config import TrainConfig  # noqa: E402
from engine.control import Control  # noqa: E402
from engine.data import load_dataset  # noqa: E402
from engine.events import DisentanglementProbe, StepMetrics  # noqa: E402
from engine.probe import PROBE_MAX_SHARE, PROBE_POINTS  # noqa: E402
from engine.training import TrainingSession  # noqa: E402

DATASET = "dsprites?shape=square&scale=5&orientation=0"


def block(config: TrainConfig, dataset, seconds: float) -> tuple[float, list[float]]:
    """Train for `seconds` of wall time: (steps per second, seconds of each probe)."""
    session = TrainingSession(config, dataset)
    control = Control()
    started = time.perf_counter()
    steps = 0
    probe_seconds: list[float] = []
    for event in session.run(control):
        if isinstance(event, StepMetrics):
            steps = event.step
            if time.perf_counter() - started >= seconds:
                control.stop()
        elif isinstance(event, DisentanglementProbe):
            probe_seconds.append(event.seconds)
    return steps / (time.perf_counter() - started), probe_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="wall time per block (default 60)")
    parser.add_argument("--reps", type=int, default=3, help="blocks per arm (default 3)")
    parser.add_argument("--every", type=float, default=5.0, help="probe_every_s of the probed arm (default 5)")
    parser.add_argument("--backbone", default="conv", choices=("conv", "mlp"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as the app on 2 cores)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="20 s blocks, 2 per arm")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.reps = 20.0, 2
    dataset = load_dataset(DATASET)
    config = TrainConfig(dataset=DATASET, family="beta-vae", batch_size=64, max_steps=10**9, threads=args.threads,
                         device=args.device, preview_every_s=0.5,
                         hparams={"backbone": args.backbone, "beta": 4.0, "latent_dim": 10})
    print(f"β-VAE ({args.backbone}) on {DATASET}, batch 64, {args.threads} threads, {args.device}; blocks of "
          f"{args.seconds:.0f} s; probe: {PROBE_POINTS:,} points every ≥ {args.every:g} s (≤ "
          f"{100 * PROBE_MAX_SHARE:.0f} % of the time)")
    rates: dict[str, list[float]] = {"without": [], "with": []}
    probe_ms: list[float] = []
    probes_per_block: list[int] = []
    for rep in range(args.reps):
        for arm in ("without", "with"):
            rate, probes = block(config.replace(probe_every_s=args.every if arm == "with" else 0.0), dataset,
                                 args.seconds)
            rates[arm].append(rate)
            if arm == "with":
                probe_ms.extend(1000 * s for s in probes)
                probes_per_block.append(len(probes))
            detail = (f", {len(probes)} probes of {1000 * statistics.median(probes):.0f} ms median"
                      if probes else "")
            print(f"rep {rep + 1} {arm:>7} probe: {rate:7.1f} steps/s{detail}", flush=True)
    ratio = statistics.median(rates["with"]) / statistics.median(rates["without"])
    median_ms = statistics.median(probe_ms) if probe_ms else float("nan")
    print(f"median steps/s: without {statistics.median(rates['without']):.1f}, with "
          f"{statistics.median(rates['with']):.1f}")
    print(f"RESULT probe_throughput_ratio={ratio:.3f} probe_ms={median_ms:.0f} "
          f"probes_per_block={statistics.median(probes_per_block):g}")


if __name__ == "__main__":
    main()
