"""`compute_metrics`: the five disentanglement scores of a representation against ground-truth factors."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .beta_vae import beta_vae_score
from .core import (
    CachedRepresent,
    CancelFn,
    FactorSource,
    MetricSizes,
    ProgressFn,
    Run,
    sample_factors,
    sklearn_seed,
    varying_factors,
)
from .dci import dci_scores
from .factor_vae import factor_vae_score
from .mig import mig_per_factor, mutual_info_matrix
from .sap import sap_score

METRIC_NAMES = ("beta_vae", "factor_vae", "mig", "dci", "sap")
EXTRA_METRIC_NAMES = ("sap_discrete",)
SAP_VARIANT = "continuous"

MetricDoneFn = Callable[[str, dict[str, Any]], None]

_STREAMS = {"shared_sample": 0, "beta_vae": 1, "factor_vae": 2, "dci": 3, "sap_discrete": 4}
_STAGE_WEIGHTS = {"shared_sample": 1.0, "beta_vae": 4.0, "factor_vae": 3.0, "mig": 0.2, "dci": 6.0,
                  "sap": 0.2, "sap_discrete": 2.0}


def _stream(seed: int, name: str) -> np.random.Generator:
    """An independent generator per metric, so a metric's value does not depend on which others ran."""
    return np.random.default_rng([seed, _STREAMS[name]])


def _check_names(names: Iterable[str]) -> tuple[str, ...]:
    if isinstance(names, str):
        names = (names,)
    chosen = tuple(dict.fromkeys(names))
    known = METRIC_NAMES + EXTRA_METRIC_NAMES
    unknown = [n for n in chosen if n not in known]
    if unknown or not chosen:
        raise ValueError(f"unknown metric name(s) {unknown or '(none given)'}; choose from {', '.join(known)}")
    return chosen


GRID_METRICS = ("beta_vae", "factor_vae")  # they render images for factor values they choose


def grid_metric_notes(source: FactorSource, names: Iterable[str] = METRIC_NAMES) -> dict[str, str]:
    """{metric: why it cannot run} for the scores that need images of chosen factor values, on a source whose images
    do not cover its full factor grid (a user's factors.csv over some of the combinations); {} otherwise."""
    note_of = getattr(source, "factor_grid_note", None)
    note = note_of() if callable(note_of) else None
    return {name: note for name in names if name in GRID_METRICS} if note else {}


def compute_metrics(represent: Callable[[np.ndarray], np.ndarray], source: FactorSource,
                    names: Iterable[str] = METRIC_NAMES, seed: int = 0, sizes: MetricSizes | None = None,
                    progress: ProgressFn | None = None, cancel: CancelFn | None = None,
                    on_metric: MetricDoneFn | None = None) -> dict:
    """Scores of `represent` (n×K factor indices → n×D codes, deterministic) on `source`'s factors.

    Returns a JSON-able dict: the requested scores (`beta_vae`, `factor_vae`, `mig`, `dci_disentanglement`,
    `dci_completeness`, `dci_informativeness`, `sap` [continuous variant], `sap_discrete` if asked),
    `mi_matrix` (D×K normalised MI, columns = `factor_names`), `dci_importance` and `dci_estimator` when DCI
    ran, `unavailable` ({name: reason}: BetaVAE/FactorVAE on a source without a full factor grid, skipped),
    `sizes`, `seed`, `sap_variant`, `num_latents`, `rows_represented` and `seconds` per metric.
    Raises MetricsCancelled when `cancel()` returns True; `progress(fraction, message)` reports progress;
    `on_metric(name, values)` is called (on this thread) as each metric finishes, with the keys it added to the
    result (DCI: its three scores, `dci_importance` and `dci_estimator`), so a caller can show it before the rest.
    """
    chosen = _check_names(names)
    unavailable = grid_metric_notes(source, chosen)
    chosen = tuple(name for name in chosen if name not in unavailable)
    if not chosen:
        raise ValueError(next(iter(unavailable.values())))
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    sizes = sizes or MetricSizes()
    varying = varying_factors(source)
    if len(varying) < 2 and ({"beta_vae", "factor_vae"} & set(chosen)):
        raise ValueError("the BetaVAE and FactorVAE scores need at least two varying factors")
    spec = source.factor_spec
    stages = ["shared_sample", *chosen]
    run = Run(progress, cancel, {name: _STAGE_WEIGHTS[name] for name in stages})
    run.check()
    cached = CachedRepresent(represent, tuple(int(s) for s in spec.sizes), sizes.chunk_rows)
    seconds: dict[str, float] = {}
    saved_state = np.random.get_state()
    np.random.seed(seed % 2**32)
    try:
        started = time.perf_counter()
        rng = _stream(seed, "shared_sample")
        train_factors = sample_factors(source, sizes.train_points, rng)
        test_factors = sample_factors(source, sizes.test_points, rng)
        train_codes = cached.uncached(train_factors)
        run.report("shared_sample", 0.7, "representing the shared sample")
        test_codes = cached.uncached(test_factors)
        train_factors, test_factors = train_factors[:, varying], test_factors[:, varying]
        mi = mutual_info_matrix(train_codes, train_factors, sizes.mig_bins)
        seconds["shared_sample"] = time.perf_counter() - started
        run.report("shared_sample", 1.0, "shared sample ready")

        result: dict = {}
        for name in chosen:
            started = time.perf_counter()
            keys_before = set(result)
            if name == "beta_vae":
                result["beta_vae"] = beta_vae_score(cached, source, varying, sizes, _stream(seed, name), run)
            elif name == "factor_vae":
                result["factor_vae"] = factor_vae_score(cached, source, varying, sizes, _stream(seed, name), run)
            elif name == "mig":
                result["mig"] = float(mig_per_factor(mi).mean())
            elif name == "dci":
                n = sizes.dci_train
                result.update(dci_scores(train_codes[:n], train_factors[:n], test_codes, test_factors,
                                         sklearn_seed(_stream(seed, name)), run, name, sizes.dci_estimator,
                                         sizes.dci_workers))
            elif name == "sap":
                result["sap"] = sap_score(train_codes, train_factors)
            elif name == "sap_discrete":
                result["sap_discrete"] = sap_score(train_codes, train_factors, test_codes, test_factors,
                                                   discrete=True, random_state=sklearn_seed(_stream(seed, name)),
                                                   run=run, stage=name)
            seconds[name] = time.perf_counter() - started
            run.report(name, 1.0, f"{name} done")
            if on_metric is not None:
                on_metric(name, {key: value for key, value in result.items() if key not in keys_before})
    finally:
        np.random.set_state(saved_state)
    run.done()
    if unavailable:
        result["unavailable"] = unavailable
    result.update({
        "mi_matrix": mi.tolist(),
        "factor_names": [str(spec.names[k]) for k in varying],
        "sizes": sizes.to_dict(),
        "seed": seed,
        "sap_variant": SAP_VARIANT,
        "num_latents": int(cached.dim),
        "rows_represented": int(cached.rows_represented),
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
    })
    return result
