"""BetaVAE score (Higgins et al. 2017): which factor was shared by a pair of batches, read off linearly."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from .core import (
    CachedRepresent,
    FactorSource,
    MetricSizes,
    Run,
    points_per_chunk,
    sample_factors,
    sklearn_seed,
)


def beta_vae_features(cached: CachedRepresent, source: FactorSource, varying: list[int], points: int,
                      batch_size: int, rng: np.random.Generator, run: Run, stage: str,
                      progress_range: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(points×D features, points labels): feature = mean over the batch of |z(x₁) − z(x₂)|, where each
    pair (x₁, x₂) shares the value of the labelled factor and draws every other factor independently."""
    labels = rng.choice(np.asarray(varying), size=points)
    rows = 2 * batch_size
    per_chunk = points_per_chunk(rows)
    features: list[np.ndarray] = []
    lo, hi = progress_range
    for start in range(0, points, per_chunk):
        count = min(per_chunk, points - start)
        first = sample_factors(source, count * batch_size, rng)
        second = sample_factors(source, count * batch_size, rng)
        shared = np.repeat(labels[start: start + count], batch_size)
        picked = np.arange(count * batch_size)
        second[picked, shared] = first[picked, shared]
        codes = cached(np.concatenate([first, second]))
        half = count * batch_size
        diff = np.abs(codes[:half] - codes[half:]).reshape(count, batch_size, -1)
        features.append(diff.mean(axis=1))
        run.report(stage, lo + (hi - lo) * (start + count) / points, "BetaVAE score: sampling pairs")
    return np.concatenate(features), labels


def beta_vae_score(cached: CachedRepresent, source: FactorSource, varying: list[int], sizes: MetricSizes,
                   rng: np.random.Generator, run: Run, stage: str = "beta_vae") -> float:
    """Held-out accuracy of a logistic-regression classifier predicting the shared factor."""
    train_x, train_y = beta_vae_features(cached, source, varying, sizes.train_points, sizes.batch_size,
                                         rng, run, stage, (0.0, 0.6))
    test_x, test_y = beta_vae_features(cached, source, varying, sizes.test_points, sizes.batch_size,
                                       rng, run, stage, (0.6, 0.9))
    classifier = LogisticRegression(max_iter=1000, random_state=sklearn_seed(rng))
    classifier.fit(train_x, train_y)
    run.report(stage, 1.0, "BetaVAE score: classifier fitted")
    return float(np.mean(classifier.predict(test_x) == test_y))
