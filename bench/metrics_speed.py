"""Time the full disentanglement-metric suite on dSprites for an MLP encoder (a β-VAE: 4096→256→10 means).

Uses a randomly initialised model from the registry (the scores are then near chance; the timing is what this
measures) and the engine's own representation path (engine.scoring.model_representation, as `eval --metrics`, sweeps
and the Evaluation tab use it): every factor row is rendered with dSprites' `render_factors`, encoded in batches,
and the posterior means go to compute_metrics.

    .venv/bin/python bench/metrics_speed.py                      # common sizes (10,000 / 5,000 points, batches of 64)
    .venv/bin/python bench/metrics_speed.py --quick              # MetricSizes.quick()
    .venv/bin/python bench/metrics_speed.py --dci-estimator hist   # DCI with the fast, approximate histogram trees
    .venv/bin/python bench/metrics_speed.py --compare-points 0     # skip the side-by-side DCI comparison
    .venv/bin/python bench/metrics_speed.py --compare-previous 3f6fb17 --compare-points 10000
                                    # also DCI alone with engine/metrics as of that commit, side by side

After the suite, DCI alone is timed side by side on the same codes (the first --compare-points training points of
a fresh sample, default 2,000): the default "exact" estimator against scikit-learn's GradientBoostingClassifier
(the reference, "sklearn"), with the largest difference in importances and accuracies.
Last lines: RESULT metrics_s=<seconds of compute_metrics> and, unless skipped,
RESULT dci_points=<N> dci_exact_s=<s> dci_sklearn_s=<s> dci_speedup=<sklearn ÷ exact> dci_max_importance_diff=<x>
dci_max_accuracy_diff=<x>; with --compare-previous REV, before it:
RESULT dci_points=<N> dci_previous_s=<s> dci_current_s=<s> dci_vs_previous=<previous ÷ current>
dci_previous_max_importance_diff=<x> (engine/metrics at REV, extracted with `git archive` and imported as a separate
package, against this tree's, both with their default estimator, one factor at a time in this process — DCI's
worker processes would run this tree's code for both — on the same codes).
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.data import load_dataset  # noqa: E402
from engine.metrics import DCI_ESTIMATORS, METRIC_NAMES, MetricSizes, compute_metrics  # noqa: E402
from engine.metrics.core import varying_factors  # noqa: E402
from engine.metrics.dci import gbt_importance  # noqa: E402
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
    parser.add_argument("--compare-points", type=int, default=2_000, metavar="N",
                        help="time DCI alone on N points with the default estimator and with scikit-learn's "
                             "GradientBoostingClassifier, side by side (0: skip)")
    parser.add_argument("--compare-previous", metavar="REV", default=None,
                        help="time DCI alone (on --compare-points points) with engine/metrics as of git revision REV "
                             "and with this tree's, side by side")
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
    if args.compare_points and args.compare_previous:
        compare_previous_dci(dataset, engine_represent, args.compare_points, args.seed, args.compare_previous)
    if args.compare_points:
        compare_dci(dataset, engine_represent, args.compare_points, args.seed)


def dci_sample(dataset, represent, points: int, seed: int) -> tuple[np.ndarray, ...]:
    """(train codes, train factors, test codes, test factors): `points` training and 1,000 test points."""
    rng = np.random.default_rng([seed, 99])
    varying = varying_factors(dataset)
    train = dataset.sample_factors(points, rng)
    test = dataset.sample_factors(1_000, rng)
    return represent(train), train[:, varying], represent(test), test[:, varying]


def previous_metrics(revision: str, into: Path):
    """engine/metrics as of `revision`, imported as the package `previous_metrics` (it imports nothing else of the
    engine, so the copy runs on its own)."""
    root = Path(__file__).resolve().parents[1]
    archive = subprocess.run(["git", "-C", str(root), "archive", revision, "engine/metrics"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    package = into / "engine" / "metrics"
    spec = importlib.util.spec_from_file_location("previous_metrics", package / "__init__.py",
                                                  submodule_search_locations=[str(package)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["previous_metrics"] = module
    spec.loader.exec_module(module)
    return importlib.import_module("previous_metrics.dci")


def compare_previous_dci(dataset, represent, points: int, seed: int, revision: str) -> None:
    """DCI alone with the previous and the current engine/metrics on the same codes, one after the other."""
    sample = dci_sample(dataset, represent, points, seed)
    with tempfile.TemporaryDirectory() as folder:
        previous = previous_metrics(revision, Path(folder))
        runs = {}
        for name, fit in (("previous", previous.gbt_importance), ("current", gbt_importance)):
            # in this process: DCI's worker processes would run this tree's engine/metrics for both
            in_process = {"workers": 1} if "workers" in inspect.signature(fit).parameters else {}
            started = time.perf_counter()
            runs[name] = (fit(*sample, seed, **in_process)[0], time.perf_counter() - started)
    (imp_p, sec_p), (imp_c, sec_c) = runs["previous"], runs["current"]
    diff = float(np.abs(imp_p - imp_c).max())
    print(f"DCI alone on {points:,} points: engine/metrics at {revision} {sec_p:.1f} s, this tree {sec_c:.1f} s "
          f"({sec_p / sec_c:.2f}× faster); largest |Δ importance| {diff:.1e}")
    print(f"RESULT dci_points={points} dci_previous_s={sec_p:.2f} dci_current_s={sec_c:.2f} "
          f"dci_vs_previous={sec_p / sec_c:.2f} dci_previous_max_importance_diff={diff:.2e}")


def compare_dci(dataset, represent, points: int, seed: int) -> None:
    """DCI alone on `points` training / 1,000 test points: the default estimator and the reference, same codes."""
    train_codes, train, test_codes, test = dci_sample(dataset, represent, points, seed)
    runs = {}
    for estimator in ("exact", "sklearn"):
        started = time.perf_counter()
        runs[estimator] = (*gbt_importance(train_codes, train, test_codes, test, seed, estimator=estimator),
                           time.perf_counter() - started)
    (imp_a, train_a, test_a, sec_a), (imp_b, train_b, test_b, sec_b) = runs["exact"], runs["sklearn"]
    importance_diff = float(np.abs(imp_a - imp_b).max())
    accuracy_diff = max(abs(train_a - train_b), abs(test_a - test_b))
    print(f"DCI alone on {points:,} points: exact {sec_a:.1f} s, sklearn {sec_b:.1f} s ({sec_b / sec_a:.1f}× faster); "
          f"largest |Δ importance| {importance_diff:.1e}, |Δ accuracy| {accuracy_diff:.1e}")
    print(f"RESULT dci_points={points} dci_exact_s={sec_a:.2f} dci_sklearn_s={sec_b:.2f} "
          f"dci_speedup={sec_b / sec_a:.2f} dci_max_importance_diff={importance_diff:.2e} "
          f"dci_max_accuracy_diff={accuracy_diff:.2e}")


if __name__ == "__main__":
    main()
