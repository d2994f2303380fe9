"""FactorVAE score (Kim & Mnih 2018): with one factor fixed, the latent of least normalised variance
votes for it; score = accuracy of the majority-vote classifier on held-out votes."""

from __future__ import annotations

import numpy as np

from .core import (
    CachedRepresent,
    FactorSource,
    MetricSizes,
    Run,
    points_per_chunk,
    sample_factors,
)

PRUNE_FRACTION = 0.05


def active_latents(global_std: np.ndarray, prune_fraction: float = PRUNE_FRACTION) -> np.ndarray:
    """Mask of latents whose global std is at least `prune_fraction` of the largest one (collapsed
    latents of a VAE have near-constant posterior means and would vote by noise)."""
    top = float(global_std.max()) if global_std.size else 0.0
    if top <= 0.0:
        return np.zeros(global_std.shape, dtype=bool)
    return global_std >= prune_fraction * top


def factor_vae_votes(cached: CachedRepresent, source: FactorSource, varying: list[int], points: int,
                     batch_size: int, global_var: np.ndarray, active: np.ndarray, rng: np.random.Generator,
                     run: Run, stage: str, progress_range: tuple[float, float]) -> np.ndarray:
    """K×D_active vote counts: votes[k, j] = how many batches with factor k fixed had latent j of least
    variance/global variance."""
    num_factors = len(source.factor_spec.sizes)
    active_index = np.flatnonzero(active)
    fixed = rng.choice(np.asarray(varying), size=points)
    per_chunk = points_per_chunk(batch_size)
    winners: list[np.ndarray] = []
    lo, hi = progress_range
    for start in range(0, points, per_chunk):
        count = min(per_chunk, points - start)
        factors = sample_factors(source, count * batch_size, rng).reshape(count, batch_size, -1)
        batch_fixed = fixed[start: start + count]
        picked = np.arange(count)
        factors[picked, :, batch_fixed] = factors[picked, 0, batch_fixed][:, None]
        codes = cached(factors.reshape(count * batch_size, -1)).reshape(count, batch_size, -1)
        local_var = codes[:, :, active_index].var(axis=1, ddof=1)
        winners.append(np.argmin(local_var / global_var[active_index], axis=1))
        run.report(stage, lo + (hi - lo) * (start + count) / points, "FactorVAE score: voting")
    flat = fixed * len(active_index) + np.concatenate(winners)
    return np.bincount(flat, minlength=num_factors * len(active_index)).reshape(num_factors, -1)


def majority_vote_accuracy(train_votes: np.ndarray, test_votes: np.ndarray) -> float:
    """Each latent is assigned its most-voted factor on the train votes; accuracy on the test votes."""
    assigned = np.argmax(train_votes, axis=0)
    correct = test_votes[assigned, np.arange(test_votes.shape[1])].sum()
    total = test_votes.sum()
    return float(correct / total) if total else 0.0


def factor_vae_score(cached: CachedRepresent, source: FactorSource, varying: list[int], sizes: MetricSizes,
                     rng: np.random.Generator, run: Run, stage: str = "factor_vae") -> float:
    """The FactorVAE score; 0 when every latent is (near-)constant."""
    codes = cached(sample_factors(source, sizes.variance_points, rng))
    global_var = codes.var(axis=0, ddof=1)
    active = active_latents(np.sqrt(global_var))
    run.report(stage, 0.05, "FactorVAE score: global variances")
    if not active.any():
        return 0.0
    train_votes = factor_vae_votes(cached, source, varying, sizes.train_points, sizes.batch_size, global_var,
                                   active, rng, run, stage, (0.05, 0.7))
    test_votes = factor_vae_votes(cached, source, varying, sizes.test_points, sizes.batch_size, global_var,
                                  active, rng, run, stage, (0.7, 1.0))
    return majority_vote_accuracy(train_votes, test_votes)
