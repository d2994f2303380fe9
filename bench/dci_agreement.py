"""DCI on constructed representations: the default estimator (engine/metrics/gbt.py) against the reference
GradientBoostingClassifier (called directly, one per factor) and the fast histogram estimator, side by side.

Four factors of six values, 1,000 training / 500 test points, seed 0. The cases: the factors themselves, one factor
copied into two codes (exactly, or each copy with noise σ = 0.1), every copy of every factor twice, the factors
with Gaussian noise σ = 0.5 and 1.5, the factors plus two noise codes, and pure noise.

    .venv/bin/python bench/dci_agreement.py            # the table and the RESULT line
    .venv/bin/python bench/dci_agreement.py --quick    # 400 training points, four cases
    .venv/bin/python bench/dci_agreement.py --parallel 2000  # also: the reference fitted one factor per core vs
                                                             # one after another, dSprites' factor sizes, N points
Last line: RESULT default_max_dD=<x> default_max_dC=<x> hist_max_dD=<x> hist_max_dC=<x> default_s=<s> hist_s=<s>
[parallel_speedup=<sequential s / parallel s>] (largest |difference| from the reference over the cases; seconds
summed over the cases).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.metrics import MetricSizes, completeness, disentanglement  # noqa: E402
from engine.metrics.dci import gbt_importance  # noqa: E402


def constructed(factors: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    f = factors.astype(np.float64)
    n = len(f)

    def noise(scale: float) -> np.ndarray:
        return scale * rng.normal(size=n)

    return {
        "factors (identity)": f,
        "factor 0 copied into two codes": np.column_stack([f[:, 0], f[:, 0], f[:, 1:]]),
        "factor 0 in two codes, each + noise 0.1": np.column_stack([f[:, 0] + noise(0.1), f[:, 0] + noise(0.1),
                                                                   f[:, 1:]]),
        "every factor in two codes": np.column_stack([f, f]),
        "factors + noise σ 0.5": f + 0.5 * rng.normal(size=f.shape),
        "factors + noise σ 1.5": f + 1.5 * rng.normal(size=f.shape),
        "factors + two noise codes": np.column_stack([f, rng.normal(size=(n, 2))]),
        "pure noise": rng.normal(size=f.shape),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="400 training points and four cases")
    parser.add_argument("--parallel", type=int, default=0, metavar="N",
                        help="also time the reference DCI on N points of noisy dSprites-sized factors, one factor per "
                             "core against one factor at a time (identical importances are checked)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    train_points = 400 if args.quick else 1_000
    train = rng.integers(0, 6, size=(train_points, 4))
    test = rng.integers(0, 6, size=(500, 4))
    train_cases = constructed(train, np.random.default_rng(1))
    test_cases = constructed(test, np.random.default_rng(2))
    names = list(train_cases)[:4] if args.quick else list(train_cases)
    default = MetricSizes().dci_estimator
    print(f"default DCI estimator: {default}; {train_points:,} training / 500 test points, 4 factors × 6 values")
    print(f"{'representation':42s} {'reference D / C':>16s} {'default D / C':>16s} {'hist D / C':>16s} "
          f"{'hist ΔD / ΔC':>14s}")
    worst = {"default": [0.0, 0.0], "hist": [0.0, 0.0]}
    seconds = {"default": 0.0, "hist": 0.0}
    for name in names:
        codes, test_codes = train_cases[name], test_cases[name]
        reference = np.stack([GradientBoostingClassifier(random_state=0).fit(codes, train[:, k]).feature_importances_
                              for k in range(train.shape[1])], axis=1)
        scores = {"reference": (disentanglement(reference), completeness(reference))}
        for label, estimator in (("default", default), ("hist", "hist")):
            started = time.perf_counter()
            importance, _, _ = gbt_importance(codes, train, test_codes, test, 0, estimator=estimator)
            seconds[label] += time.perf_counter() - started
            scores[label] = (disentanglement(importance), completeness(importance))
            for i in range(2):
                worst[label][i] = max(worst[label][i], abs(scores[label][i] - scores["reference"][i]))

        def pair(values: tuple[float, float]) -> str:
            return f"{values[0]:.3f} / {values[1]:.3f}"

        delta = (scores["hist"][0] - scores["reference"][0], scores["hist"][1] - scores["reference"][1])
        print(f"{name:42s} {pair(scores['reference']):>16s} {pair(scores['default']):>16s} "
              f"{pair(scores['hist']):>16s} {delta[0]:+.3f} / {delta[1]:+.3f}", flush=True)
    speedup = f" parallel_speedup={parallel_speedup(args.parallel):.2f}" if args.parallel else ""
    print(f"RESULT default_max_dD={worst['default'][0]:.3f} default_max_dC={worst['default'][1]:.3f} "
          f"hist_max_dD={worst['hist'][0]:.3f} hist_max_dC={worst['hist'][1]:.3f} "
          f"default_s={seconds['default']:.1f} hist_s={seconds['hist']:.1f}{speedup}")


def parallel_speedup(points: int) -> float:
    """Seconds of the reference DCI one factor at a time ÷ one factor per core (dSprites' sizes 3, 6, 40, 32, 32)."""
    from engine.metrics.dci import dci_workers

    rng = np.random.default_rng(3)
    factors = np.stack([rng.integers(0, size, points) for size in (3, 6, 40, 32, 32)], axis=1)
    codes = np.column_stack([factors / np.array([3, 6, 40, 32, 32]) + 0.05 * rng.normal(size=factors.shape),
                             rng.normal(size=(points, 5))])
    timings = {}
    for workers in (1, dci_workers()):
        started = time.perf_counter()
        importance, _, _ = gbt_importance(codes, factors, codes, factors, 0, estimator="exact", workers=workers)
        timings[workers] = (time.perf_counter() - started, importance)
    (one, first), (many, second) = timings[1], timings[dci_workers()]
    assert np.array_equal(first, second), "parallel and sequential importances differ"
    print(f"reference DCI on {points:,} points, 113 classes: one factor at a time {one:.1f} s, "
          f"{dci_workers()} at a time {many:.1f} s")
    return one / many


if __name__ == "__main__":
    main()
