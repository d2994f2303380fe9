"""Shared machinery of the disentanglement metrics: sizes, the factor-source contract, a cached
representation function, progress and cancellation."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np

Represent = Callable[[np.ndarray], np.ndarray]
ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]
DCI_ESTIMATORS = ("exact", "sklearn", "hist")  # DCI trees: equal to the reference (default), the reference itself,
# or histogram-based (approximate)


class MetricsCancelled(Exception):
    """Raised inside `compute_metrics` when the caller's `cancel()` returned True."""


class FactorSpecLike(Protocol):
    names: tuple[str, ...]
    sizes: tuple[int, ...]
    values: tuple[tuple[float, ...], ...]


class FactorSource(Protocol):
    """Anything with ground-truth factors that can be sampled uniformly (engine.data.Dataset for dSprites)."""

    factor_spec: FactorSpecLike

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray: ...


@dataclass(frozen=True)
class MetricSizes:
    """Sample sizes. Defaults are the common ones (disentanglement_lib): 10,000 train / 5,000 test points,
    batches of 64 for the BetaVAE and FactorVAE scores, 10,000 points for FactorVAE's global variances,
    20 histogram bins for MIG.

    BetaVAE/FactorVAE: a "point" is one feature vector / one vote, built from `batch_size` samples (BetaVAE
    uses pairs, so 2·batch_size representations per point). MIG, DCI and SAP share one sample of
    `train_points` (+ `test_points` for DCI and discrete SAP) factor draws; DCI may use only the first
    `dci_train_points` of them (None → all) because its gradient-boosted trees dominate the run time.
    `chunk_rows` bounds how many rows are handed to `represent` at once (memory, not statistics).
    `dci_estimator` picks DCI's gradient-boosted trees: "exact" (the default: engine.metrics.gbt, equal to
    scikit-learn's GradientBoostingClassifier, the reference estimator, and ~10× faster), "sklearn" (the reference
    itself) or "hist" (histogram-based, approximate: it misreads redundant and noisy codes); see
    metrics.dci.gbt_importance and docs/metrics.md. `dci_workers` caps the worker processes of the "exact" and
    "sklearn" fits (None: metrics.dci.dci_workers(), at most 2 and no more than torch's threads; 1: in-process).
    """

    train_points: int = 10_000
    test_points: int = 5_000
    batch_size: int = 64
    variance_points: int = 10_000
    mig_bins: int = 20
    dci_train_points: int | None = None
    chunk_rows: int = 8_192
    dci_estimator: str = DCI_ESTIMATORS[0]
    dci_workers: int | None = None

    def __post_init__(self) -> None:
        for name in ("train_points", "test_points", "variance_points", "chunk_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"MetricSizes.{name} must be ≥ 1, got {getattr(self, name)}")
        if self.train_points < 10 or self.test_points < 10:
            raise ValueError("MetricSizes needs at least 10 train and 10 test points")
        if self.batch_size < 2:
            raise ValueError(f"MetricSizes.batch_size must be ≥ 2 (variances need two samples), "
                             f"got {self.batch_size}")
        if self.mig_bins < 2:
            raise ValueError(f"MetricSizes.mig_bins must be ≥ 2, got {self.mig_bins}")
        if self.dci_estimator not in DCI_ESTIMATORS:
            raise ValueError(f"MetricSizes.dci_estimator must be one of {', '.join(DCI_ESTIMATORS)}, "
                             f"got {self.dci_estimator!r}")
        if self.dci_workers is not None and self.dci_workers < 1:
            raise ValueError(f"MetricSizes.dci_workers must be ≥ 1 or None, got {self.dci_workers}")
        if self.dci_train_points is not None and not 10 <= self.dci_train_points <= self.train_points:
            raise ValueError(f"MetricSizes.dci_train_points must be in [10, train_points], "
                             f"got {self.dci_train_points}")

    @classmethod
    def quick(cls) -> MetricSizes:
        """Small sizes for tests and GUI previews (scores are noisier; ranking usually holds)."""
        return cls(train_points=1_000, test_points=500, batch_size=32, variance_points=1_000)

    @classmethod
    def named(cls, name: str = "standard", **overrides) -> MetricSizes:
        """"standard" (the common sizes) or "quick", with the given fields replaced (None leaves a field as is)."""
        if name not in ("standard", "quick"):
            raise ValueError(f"metric sizes must be 'standard' or 'quick', got {name!r}")
        base = cls.quick() if name == "quick" else cls()
        return cls(**{**base.to_dict(), **{k: v for k, v in overrides.items() if v is not None}})

    @property
    def dci_train(self) -> int:
        return self.train_points if self.dci_train_points is None else self.dci_train_points

    def to_dict(self) -> dict:
        return asdict(self)


def varying_factors(source: FactorSource) -> list[int]:
    """Indices of factors with ≥ 2 values (a constant factor, e.g. dSprites' colour, carries nothing)."""
    spec = source.factor_spec
    if spec is None:
        raise ValueError("this dataset has no ground-truth factors; disentanglement metrics need them")
    if len(spec.sizes) != len(spec.names):
        raise ValueError(f"factor_spec has {len(spec.names)} names but {len(spec.sizes)} sizes")
    varying = [k for k, size in enumerate(spec.sizes) if int(size) >= 2]
    if not varying:
        raise ValueError("no factor takes two or more values; nothing to measure")
    return varying


class Run:
    """Progress over weighted stages and cooperative cancellation for one `compute_metrics` call."""

    def __init__(self, progress: ProgressFn | None, cancel: CancelFn | None, weights: dict[str, float]):
        self._progress = progress
        self._cancel = cancel
        total = sum(weights.values())
        self._start: dict[str, float] = {}
        self._span: dict[str, float] = {}
        acc = 0.0
        for name, weight in weights.items():
            self._start[name] = acc / total
            self._span[name] = weight / total
            acc += weight
        self._last = -1.0

    def check(self) -> None:
        if self._cancel is not None and self._cancel():
            raise MetricsCancelled("metric computation cancelled")

    def report(self, stage: str, fraction: float, message: str) -> None:
        """Report `fraction` ∈ [0, 1] of `stage`; also the place where cancellation is noticed."""
        self.check()
        if self._progress is None:
            return
        overall = self._start[stage] + self._span[stage] * min(max(fraction, 0.0), 1.0)
        if overall >= self._last:
            self._last = overall
            self._progress(overall, message)

    def done(self) -> None:
        if self._progress is not None:
            self._progress(1.0, "metrics done")


class CachedRepresent:
    """`represent` batched in chunks, validated, and memoised per distinct factor combination.

    The representation must be a deterministic function of the factors (posterior means are). For sources
    whose factor grid is small enough (dSprites: 737,280 combinations) every combination is represented
    once per call: the BetaVAE and FactorVAE scores draw ~2.9 million rows at the default sizes, which is
    about 725,000 distinct dSprites images.
    """

    MAX_GRID = 1 << 24
    MAX_CACHED_VALUES = 1 << 25

    def __init__(self, represent: Represent, sizes: tuple[int, ...], chunk_rows: int):
        self._represent = represent
        self._sizes = np.asarray(sizes, dtype=np.int64)
        self._chunk_rows = chunk_rows
        self._dim: int | None = None
        grid = math.prod(int(s) for s in sizes)
        self._enabled = grid <= self.MAX_GRID
        if self._enabled:
            self._radix = np.concatenate([np.cumprod(self._sizes[::-1])[::-1][1:], [1]]).astype(np.int64)
            self._slot = np.full(grid, -1, dtype=np.int64)
            self._codes = np.empty((0, 0))
            self._count = 0
        self.rows_represented = 0

    @property
    def dim(self) -> int:
        if self._dim is None:
            raise RuntimeError("the representation has not been evaluated yet")
        return self._dim

    def __call__(self, factors: np.ndarray) -> np.ndarray:
        """Codes (n×D float64) for factor rows (n×K int64)."""
        if not self._enabled:
            return self._batched(factors)
        keys = factors @ self._radix
        slots = self._slot[keys]
        missing = slots < 0
        if missing.any():
            new_keys, first = np.unique(keys[missing], return_index=True)
            new_codes = self._batched(factors[missing][first])
            if (self._count + len(new_keys)) * new_codes.shape[1] > self.MAX_CACHED_VALUES:
                out = np.empty((len(factors), new_codes.shape[1]))
                out[~missing] = self._codes[slots[~missing]]
                out[missing] = new_codes[np.searchsorted(new_keys, keys[missing])]
                return out
            self._append(new_keys, new_codes)
            slots = self._slot[keys]
        return self._codes[slots]

    def uncached(self, factors: np.ndarray) -> np.ndarray:
        """Codes without the memo (for independently drawn samples, where repeats are rare and a
        non-deterministic test representation must stay independent across draws)."""
        return self._batched(factors)

    def _append(self, keys: np.ndarray, codes: np.ndarray) -> None:
        needed = self._count + len(keys)
        if needed > len(self._codes):
            capacity = max(needed, min(2 * len(self._codes), len(self._slot)), min(1024, len(self._slot)))
            grown = np.empty((capacity, codes.shape[1]))
            if self._count:
                grown[: self._count] = self._codes[: self._count]
            self._codes = grown
        self._codes[self._count: needed] = codes
        self._slot[keys] = np.arange(self._count, needed)
        self._count = needed

    def _batched(self, factors: np.ndarray) -> np.ndarray:
        parts = [self._call(factors[i: i + self._chunk_rows]) for i in range(0, len(factors), self._chunk_rows)]
        return np.concatenate(parts) if parts else np.empty((0, self._dim or 0))

    def _call(self, factors: np.ndarray) -> np.ndarray:
        codes = np.asarray(self._represent(np.ascontiguousarray(factors, dtype=np.int64)), dtype=np.float64)
        if codes.ndim != 2 or codes.shape[0] != len(factors):
            raise ValueError(f"represent() must return an n×D array for n={len(factors)} factor rows, "
                             f"got shape {codes.shape}")
        if self._dim is None:
            if codes.shape[1] < 1:
                raise ValueError("represent() returned zero-width codes")
            self._dim = codes.shape[1]
        elif codes.shape[1] != self._dim:
            raise ValueError(f"represent() returned {codes.shape[1]} dimensions, earlier {self._dim}")
        if not np.isfinite(codes).all():
            raise ValueError("represent() returned NaN or infinite codes (has the model diverged?)")
        self.rows_represented += len(factors)
        return codes


def sample_factors(source: FactorSource, n: int, rng: np.random.Generator) -> np.ndarray:
    """`source.sample_factors` with its output checked: n×K int64 class indices inside the factor sizes."""
    factors = np.asarray(source.sample_factors(n, rng))
    sizes = np.asarray(source.factor_spec.sizes, dtype=np.int64)
    if factors.shape != (n, len(sizes)):
        raise ValueError(f"sample_factors({n}) must return shape {(n, len(sizes))}, got {factors.shape}")
    if not np.issubdtype(factors.dtype, np.integer):
        raise ValueError(f"sample_factors must return integer class indices, got {factors.dtype}")
    factors = factors.astype(np.int64, copy=False)
    if (factors < 0).any() or (factors >= sizes).any():
        raise ValueError("sample_factors returned an index outside its factor's size")
    return factors


def sklearn_seed(rng: np.random.Generator) -> int:
    """A 31-bit seed for a scikit-learn estimator, drawn from the metric's own generator."""
    return int(rng.integers(0, 2**31 - 1))


def points_per_chunk(rows_per_point: int, target_rows: int = 65_536) -> int:
    """How many batch-based points to sample at once so one chunk holds about `target_rows` factor rows."""
    return max(1, target_rows // rows_per_point)
