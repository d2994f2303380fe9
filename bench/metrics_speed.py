"""Time the full disentanglement-metric suite on dSprites for an MLP encoder (a β-VAE: 4096→256→10 means).

Uses a randomly initialised model from the registry (the scores are then near chance; the timing is what this
measures) and the engine's own representation path (engine.scoring.model_representation, as `eval --metrics`, sweeps
and the Evaluation tab use it): every factor row is rendered with dSprites' `render_factors`, encoded in batches,
and the posterior means go to compute_metrics.

    .venv/bin/python bench/metrics_speed.py                      # common sizes (10,000 / 5,000 points, batches of 64)
    .venv/bin/python bench/metrics_speed.py --quick              # MetricSizes.quick()
    .venv/bin/python bench/metrics_speed.py --dci-estimator hist   # DCI with the fast, approximate histogram trees
Last line: RESULT metrics_s=<seconds of compute_metrics>.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.data import load_dataset  # noqa: E402
from engine.metrics import DCI_ESTIMATORS, METRIC_NAMES, MetricSizes, compute_metrics  # noqa: E402
from engine.models import create_model  # noqa: E402
from engine.scoring import model_representation  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="MetricSizes.quick() instead of the common sizes")
    parser.add_argument("--dci-train", type=int, default=None, help="DCI training points (default: all)")
    parser.add_argument("--dci-estimator", choices=DCI_ESTIMATORS, default=DCI_ESTIMATORS[0],
                        help="DCI's boosted trees (default exact = GradientBoostingClassifier, one factor per core; "
                             "hist = histogram trees, approximate)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    dataset = load_dataset("dsprites")
    torch.manual_seed(args.seed)
    model = create_model("beta-vae", dataset.shape, backbone="mlp", hidden=256, depth=1, latent_dim=10).eval()
    engine_represent = model_representation(model, dataset)
    print(f"dsprites loaded in {time.perf_counter() - started:.1f} s; torch threads {torch.get_num_threads()}")

    represent_seconds = [0.0]

    def represent(factors: np.ndarray) -> np.ndarray:
        tick = time.perf_counter()
        codes = engine_represent(factors)
        represent_seconds[0] += time.perf_counter() - tick
        return codes

    sizes = MetricSizes.named("quick" if args.quick else "standard", dci_train_points=args.dci_train,
                              dci_estimator=args.dci_estimator)
    print(f"sizes: {sizes.to_dict()}")
    started = time.perf_counter()
    last_stage = [""]

    def progress(fraction: float, message: str) -> None:
        stage = message.split(":")[0]
        if stage != last_stage[0]:
            last_stage[0] = stage
            print(f"  {time.perf_counter() - started:7.1f} s  {fraction:4.0%}  {message}", file=sys.stderr)

    result = compute_metrics(represent, dataset, names=METRIC_NAMES, seed=args.seed, sizes=sizes,
                             progress=progress)
    total = time.perf_counter() - started

    keys = ("beta_vae", "factor_vae", "mig", "dci_disentanglement", "dci_completeness", "dci_informativeness",
            "sap")
    print("scores (random encoder, expect near chance): " + ", ".join(f"{k}={result[k]:.3f}" for k in keys))
    print("seconds per stage: " + ", ".join(f"{k}={v:.1f}" for k, v in result["seconds"].items()))
    print(f"rows represented: {result['rows_represented']:,} in {represent_seconds[0]:.1f} s "
          f"(render + encode)")
    print(f"RESULT metrics_s={total:.1f}")


if __name__ == "__main__":
    main()
