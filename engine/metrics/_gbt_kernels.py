"""Compiled inner loops of engine.metrics.gbt's tree grower (numba): one pass over a node's presorted
(sample, value) pairs instead of a gather, a cumulative sum and a handful of NumPy passes with temporaries.

They serve the approximate split search and the children's partition only; every decision that could turn on
rounding is still redone in the reference's order by gbt's exact path, so these loops may sum in any order.
A pair is one int64 holding the int32 sample index (low half) and the float32 value (high half), as gbt stores them.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def split_scores(samples: np.ndarray, r: np.ndarray, total: float, valid: np.ndarray, use_valid: bool,
                 out: np.ndarray, position: np.ndarray) -> None:
    """Fill out[f, j] with the shifted proxy of putting sorted positions 0…j of feature f on the left,
    (Σ_left − (j+1)·Σ/n)² · n / ((j+1)(n − j − 1)) (−1 where `valid` forbids a threshold after j), and
    position[f] with the first position of its row's maximum. `samples`: F × count int32 sample indices."""
    num_features, count = samples.shape
    mean = total / count
    for f in range(num_features):
        running = 0.0
        best = -np.inf
        best_at = 0
        for j in range(count - 1):
            running += r[samples[f, j]]
            n_left = j + 1.0
            gap = running - n_left * mean
            score = gap * gap * (count / (n_left * (count - n_left)))
            if use_valid and not valid[f, j]:
                score = -1.0
            out[f, j] = score
            if score > best:
                best = score
                best_at = j
        position[f] = best_at


@numba.njit(cache=True, nogil=True)
def partition_pairs(pairs: np.ndarray, samples: np.ndarray, goes_left: np.ndarray, left: np.ndarray,
                    right: np.ndarray) -> None:
    """Split every feature's sorted pairs (F × count) into the left-goers' and right-goers' pairs, each in
    sorted order (a stable partition by `goes_left[sample]`)."""
    num_features, count = pairs.shape
    for f in range(num_features):
        a = 0
        b = 0
        for j in range(count):
            if goes_left[samples[f, j]]:
                left[f, a] = pairs[f, j]
                a += 1
            else:
                right[f, b] = pairs[f, j]
                b += 1
