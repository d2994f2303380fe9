"""The training loop against an earlier commit's, interleaved in one process: is the step loop any slower?

`git archive REV engine` is unpacked as the package `engine_baseline` (the engine imports itself relatively), and
both sessions train the same model on the same data, alternating chunks of `--chunk` steps for `--rounds` rounds
(in ABBA order); other load on the machine then hits both alike. Prints steps/s (median and best of the rounds),
the after/before ratios and a RESULT line. Models: `tiny` (MLP 64-16-2 on the 8×8 digits, batch 32: the loop's
own overhead dominates) and `mnist` (the MNIST recipe 784-400-20, batch 128, on mnist-sample).
"""

from __future__ import annotations

import argparse
import importlib
import io
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = {
    "tiny": ("digits", 32, {"latent_dim": 2, "hidden": 16, "depth": 1, "backbone": "mlp"}),
    "mnist": ("mnist-sample", 128, {"latent_dim": 20, "hidden": 400, "depth": 1, "backbone": "mlp"}),
}


def baseline_package(rev: str, folder: Path) -> str:
    """Unpack `engine/` of commit `rev` into folder/engine_baseline; returns the package name."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "engine"], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    (folder / "engine").rename(folder / "engine_baseline")
    sys.path.insert(0, str(folder))
    return "engine_baseline"


def session(package: str, model: str, device: str):
    training = importlib.import_module(f"{package}.training")
    config_mod = importlib.import_module(f"{package}.config")
    data = importlib.import_module(f"{package}.data")
    spec, batch, hparams = MODELS[model]
    config = config_mod.TrainConfig(dataset=spec, family="vae", max_steps=10**7, batch_size=batch, test_fraction=0.0,
                                    seed=0, device=device, preview_every_s=3600.0, hparams=dict(hparams))
    s = training.TrainingSession(config, data.load_dataset(spec))
    return s, s.run()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="HEAD~1", help="the commit to compare with (default HEAD~1)")
    parser.add_argument("--model", choices=sorted(MODELS), default="tiny")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--chunk", type=int, default=200, help="steps per chunk")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 100-step chunks (make bench)")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.chunk = min(args.rounds, 2), min(args.chunk, 100)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        old = baseline_package(args.baseline, Path(tmp))
        runs = {"before": session(old, args.model, args.device), "after": session("engine", args.model, args.device)}
        rates: dict[str, list[float]] = {k: [] for k in runs}
        for round_ in range(args.rounds):
            order = list(runs.items()) if round_ % 2 == 0 else list(runs.items())[::-1]  # ABBA: no order bias
            for key, (s, events) in order:
                start, t0 = s.step, time.perf_counter()
                for event in events:
                    if s.step - start >= args.chunk and type(event).__name__ == "StepMetrics":
                        break
                rates[key].append((s.step - start) / (time.perf_counter() - t0))
        for _, events in runs.values():
            events.close()
    print(f"{args.model} model, {args.threads} thread(s), {args.device}, baseline {args.baseline}, "
          f"{args.rounds} rounds of {args.chunk} steps each, alternating")
    for key, values in rates.items():
        print(f"  {key:6}: median {statistics.median(values):8.1f} steps/s, best {max(values):8.1f}  "
              f"({', '.join(f'{v:.0f}' for v in values)})")
    median = statistics.median(rates["after"]) / statistics.median(rates["before"])
    best = max(rates["after"]) / max(rates["before"])
    print(f"RESULT model={args.model} after_vs_before_median={median:.3f} after_vs_before_best={best:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
