"""Sweep scaling on this machine: the same 4-run β sweep (β-VAE on the 8×8 digits) three ways, in one process.

(a) the local backend, one run after another in this process (today's runner);
(b) the local backend with 2 parallel processes;
(c) the Ray backend on a local Ray instance with 2 CPUs (1 CPU per run), the instance started inside the timing.
Every run uses 1 torch thread (the config's `threads = 1`), so the ratios measure running runs side by side, not
torch's intra-op threading (on a shared 2-core machine 2 OpenMP threads per run collapse under load).

Each way trains into its own folder and writes the same summary; the bench checks the three summaries agree
on the steps and statuses. Prints wall seconds, the speed-ups b/a and c/a, and Ray's overhead per run:
(wall of c − Σ run seconds / 2) / runs, where a run's seconds are measured inside its task (training +
evaluation), i.e. what Ray adds per run for starting the instance, its workers and moving results.
The last line is machine-readable (RESULT …). `--quick` runs shorter runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.config import TrainConfig  # noqa: E402
from engine.sweep import LocalBackend, RayBackend, SweepDone, SweepRunner, plan_sweep  # noqa: E402

SLOTS = 2


def sweep_config(steps: int) -> TrainConfig:
    return TrainConfig(dataset="digits", family="beta-vae", batch_size=64, max_steps=steps, preview_every_s=3600.0,
                       threads=1, hparams={"latent_dim": 6, "backbone": "mlp", "hidden": 256, "depth": 2})


def timed_sweep(name: str, backend, steps: int, root: Path) -> tuple[float, SweepDone]:
    out = root / name
    runs = plan_sweep(sweep_config(steps), {"beta": [1.0, 2.0, 4.0, 8.0]}, out_dir=out)
    started = time.perf_counter()
    done = list(SweepRunner(runs, out_dir=out, metrics=(), traversals=False, backend=backend).run())[-1]
    wall = time.perf_counter() - started
    if not isinstance(done, SweepDone) or any(r.get("status") != "completed" for r in done.records):
        raise SystemExit(f"{name}: the sweep did not complete: {[r.get('error') for r in done.records]}")
    return wall, done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (a smoke test of the bench)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per run (default 600; quick 100)")
    args = parser.parse_args()
    steps = args.steps or (100 if args.quick else 600)
    try:
        import ray
    except ImportError:
        print("Ray is not installed (pip install -e '.[cluster]'); the bench needs it", file=sys.stderr)
        return 2
    print(f"4 runs × {steps} steps (β-VAE 64-256-256-6 on digits, batch 64, 1 torch thread per run), "
          f"{os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="sweep-scaling-") as tmp:
        root = Path(tmp)
        sequential, seq_done = timed_sweep("sequential", LocalBackend(1), steps, root)
        print(f"(a) local, one after another : {sequential:7.1f} s")
        parallel, par_done = timed_sweep("parallel", LocalBackend(SLOTS), steps, root)
        print(f"(b) local, {SLOTS} processes        : {parallel:7.1f} s")
        on_ray, ray_done = timed_sweep("ray", RayBackend(num_cpus=SLOTS, cpus_per_run=1), steps, root)
        print(f"(c) Ray, local instance, {SLOTS} CPUs: {on_ray:7.1f} s (instance start-up included)")
        assert not ray.is_initialized(), "the backend shuts down the instance it started"
    for done in (par_done, ray_done):
        assert [r["steps"] for r in done.records] == [r["steps"] for r in seq_done.records]
    runs = len(ray_done.records)
    run_seconds = sum(float(r["seconds"]) for r in ray_done.records)
    overhead = (on_ray - run_seconds / SLOTS) / runs
    print(f"run seconds inside Ray tasks: {run_seconds:.1f} (Σ over {runs} runs)")
    print(f"RESULT parallel_speedup={sequential / parallel:.2f} ray_speedup={sequential / on_ray:.2f} "
          f"ray_overhead_s_per_run={overhead:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
