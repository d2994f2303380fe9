"""Mutual information between discretised latents and factors, and the MIG (Chen et al. 2018)."""

from __future__ import annotations

import numpy as np


def histogram_discretize(codes: np.ndarray, bins: int = 20) -> np.ndarray:
    """Per latent, the bin index (0…bins−1) among `bins` equal-width bins spanning its observed range
    (the same bins as np.histogram / np.digitize in the reference implementation)."""
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2:
        raise ValueError(f"codes must be n×D, got shape {codes.shape}")
    out = np.empty(codes.shape, dtype=np.int64)
    for j in range(codes.shape[1]):
        column = codes[:, j]
        edges = np.histogram_bin_edges(column, bins=bins)
        out[:, j] = np.searchsorted(edges[1:-1], column, side="right")
    return out


def _check_pairs(a: np.ndarray, b: np.ndarray) -> None:
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(f"need n×D and n×K arrays with the same n, got {a.shape} and {b.shape}")
    if a.shape[0] == 0:
        raise ValueError("need at least one sample")
    if (a < 0).any() or (b < 0).any():
        raise ValueError("discrete values must be non-negative class indices")


def discrete_mutual_info(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """D×K mutual information (nats) between every column of the discrete a (n×D) and b (n×K):
    I = Σ p(u,v) log p(u,v) / (p(u) p(v)), from joint counts (equals sklearn's mutual_info_score)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    _check_pairs(a, b)
    n, dims = a.shape
    a_values = int(a.max()) + 1
    result = np.empty((dims, b.shape[1]))
    offsets = np.arange(dims, dtype=np.int64) * a_values
    a_counts = np.bincount((a + offsets).ravel(), minlength=dims * a_values).reshape(dims, a_values)
    for k in range(b.shape[1]):
        column = b[:, k]
        b_values = int(column.max()) + 1
        keys = ((a + offsets) * b_values + column[:, None]).ravel()
        joint = np.bincount(keys, minlength=dims * a_values * b_values).reshape(dims, a_values, b_values)
        b_counts = np.bincount(column, minlength=b_values)
        expected = a_counts[:, :, None] * b_counts[None, None, :]
        nonzero = joint > 0
        terms = np.zeros(joint.shape)
        terms[nonzero] = joint[nonzero] * np.log(joint[nonzero] * n / expected[nonzero])
        result[:, k] = np.maximum(terms.sum(axis=(1, 2)) / n, 0.0)
    return result


def discrete_entropy(b: np.ndarray) -> np.ndarray:
    """Entropy (nats) of each column of the discrete b (n×K)."""
    b = np.asarray(b, dtype=np.int64)
    entropies = np.empty(b.shape[1])
    for k in range(b.shape[1]):
        p = np.bincount(b[:, k]) / b.shape[0]
        p = p[p > 0]
        entropies[k] = float(-(p * np.log(p)).sum())
    return entropies


def mutual_info_matrix(codes: np.ndarray, factors: np.ndarray, bins: int = 20) -> np.ndarray:
    """D×K normalised mutual information I(z_j; v_k) / H(v_k) ∈ [0, 1] with z_j histogram-discretised
    (the latent × factor heatmap); a factor that never varies in the sample gets a zero column."""
    mi = discrete_mutual_info(histogram_discretize(codes, bins), factors)
    entropy = discrete_entropy(factors)
    return np.divide(mi, entropy, out=np.zeros_like(mi), where=entropy > 0)


def mig_per_factor(normalised_mi: np.ndarray) -> np.ndarray:
    """For each factor, the gap between the largest and second-largest normalised MI over latents."""
    if normalised_mi.shape[0] < 2:
        return normalised_mi.max(axis=0)
    top_two = np.sort(normalised_mi, axis=0)[-2:]
    return top_two[1] - top_two[0]


def mig_score(codes: np.ndarray, factors: np.ndarray, bins: int = 20) -> float:
    """MIG = (1/K) Σ_k (I(z_(1); v_k) − I(z_(2); v_k)) / H(v_k)."""
    return float(mig_per_factor(mutual_info_matrix(codes, factors, bins)).mean())
