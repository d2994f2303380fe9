"""The live disentanglement probe: MIG and the latent × factor MI matrix of a training model, every few seconds.

The probe scores posterior means on one fixed factor sample, drawn once per session: PROBE_POINTS factor rows
from the dataset's factor grid with the generator `compute_metrics` uses for its shared sample (seed, stream 0),
so a probe's MIG is exactly `compute_metrics(…, names=["mig"], sizes=MetricSizes(train_points=PROBE_POINTS))`
on the same weights (tested). The sample is independent of the training stream (its own numpy generator) and
scoring runs with the global torch RNG forked, so a run with the probe trains bit-for-bit like one without.

Cadence: every `TrainConfig.probe_every_s` seconds of *training* time (pauses do not count), stretched when a
probe is slow so that probing takes at most PROBE_MAX_SHARE of the wall time (bench/probe_cost.py measures it).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from .events import DisentanglementProbe

# engine.metrics is imported inside the functions: its package pulls in scikit-learn (seconds at start-up), which the
# app and a session without a probe never need.

PROBE_POINTS = 2000  # factor rows scored per probe (MIG on 2,000 points, 20 bins)
PROBE_BINS = 20
PROBE_MAX_SHARE = 0.05  # a probe may take at most this share of the training wall time (cadence stretches)
PROBE_HISTORY_LIMIT = 1000  # probe records kept in a session's history (thinned by halving beyond this)
ENCODE_BATCH = 512


def unavailable_reason(dataset: Any, model: Any) -> str | None:
    """Why no live disentanglement can be measured for this model on this data (None: it can)."""
    if dataset is None or getattr(dataset, "factor_spec", None) is None:
        return "no disentanglement curve: this dataset has no ground-truth factors (dSprites has)"
    if not any(int(size) >= 2 for size in dataset.factor_spec.sizes):
        return "no disentanglement curve: no factor of this dataset takes two or more values"
    if getattr(model, "latent_kind", "continuous") != "continuous":
        return "no disentanglement curve: this model's code is discrete (MIG needs a continuous code)"
    if getattr(model, "is_conditional", False):
        return "no disentanglement curve: a conditional model's code depends on the label as well"
    return None


class FactorProbe:
    """A fixed factor sample of a dataset (rendered once) and the MI/MIG of a model's posterior means on it."""

    def __init__(self, dataset: Any, seed: int = 0, points: int = PROBE_POINTS, bins: int = PROBE_BINS) -> None:
        from .metrics.core import sample_factors, varying_factors

        varying = varying_factors(dataset)
        factors = sample_factors(dataset, int(points), np.random.default_rng([int(seed), 0]))
        self.images = dataset.render_factors(factors)  # uint8 n×C×H×W on the dataset's device
        self.factors = np.ascontiguousarray(factors[:, varying])
        self.factor_names = tuple(str(dataset.factor_spec.names[k]) for k in varying)
        self.points = int(points)
        self.bins = int(bins)

    def codes(self, model: Any) -> np.ndarray:
        """Posterior means (n×D float64) of the sample; the caller puts the model in eval/inference mode."""
        device = next((p.device for p in model.parameters()), self.images.device)
        parts = []
        for start in range(0, len(self.images), ENCODE_BATCH):
            x = self.images[start:start + ENCODE_BATCH].to(device).float().div_(255.0)
            parts.append(model.encode(x, None).mean.flatten(1).float().cpu())
        codes = torch.cat(parts).double().numpy()
        if not np.isfinite(codes).all():
            raise ValueError("the model's codes are NaN or infinite")
        return codes

    def measure(self, model: Any, step: int) -> DisentanglementProbe:
        """MIG and the D×K normalised MI matrix of `model` on the sample (engine.metrics' definitions)."""
        from .metrics.mig import mig_per_factor, mutual_info_matrix

        started = time.perf_counter()
        with torch.inference_mode():
            codes = self.codes(model)
        mi = mutual_info_matrix(codes, self.factors, self.bins)
        gaps = mig_per_factor(mi)
        return DisentanglementProbe(
            step=int(step), mig=float(gaps.mean()), mig_per_factor=tuple(float(g) for g in gaps),
            mi=tuple(tuple(float(v) for v in row) for row in mi), factor_names=self.factor_names,
            best_factor=tuple(int(k) for k in mi.argmax(axis=1)), points=self.points,
            seconds=time.perf_counter() - started)


class ProbeSchedule:
    """When the next probe is due, on a training clock (seconds that exclude pauses)."""

    def __init__(self, every_s: float, max_share: float = PROBE_MAX_SHARE) -> None:
        self.every_s = float(every_s)
        self.max_share = float(max_share)
        self.next_at: float | None = None  # None: the first probe is due at once (the untrained baseline)

    def due(self, clock: float) -> bool:
        return self.next_at is None or clock >= self.next_at

    def done(self, clock: float, cost_s: float) -> None:
        """A probe that took `cost_s` ended at `clock`: the next one waits long enough to keep the share."""
        gap = max(self.every_s, cost_s * (1.0 - self.max_share) / self.max_share)
        self.next_at = clock + gap


def probe_record(probe: DisentanglementProbe) -> dict[str, Any]:
    """The history/metrics.jsonl record of a probe (JSON-able; the MI rounded to 4 decimals)."""
    return {"kind": "probe", "step": probe.step, "mig": round(probe.mig, 6),
            "mig_per_factor": [round(v, 6) for v in probe.mig_per_factor],
            "mi": [[round(v, 4) for v in row] for row in probe.mi], "factor_names": list(probe.factor_names),
            "points": probe.points, "seconds": round(probe.seconds, 4)}


def probe_from_record(record: Mapping[str, Any]) -> DisentanglementProbe | None:
    """A probe event rebuilt from a history record (None if the record is not a well-formed probe)."""
    try:
        if record.get("kind") != "probe":
            return None
        mi = tuple(tuple(float(v) for v in row) for row in record["mi"])
        names = tuple(str(n) for n in record["factor_names"])
        if not mi or any(len(row) != len(names) for row in mi):
            return None
        return DisentanglementProbe(
            step=int(record["step"]), mig=float(record["mig"]),
            mig_per_factor=tuple(float(v) for v in record.get("mig_per_factor", ())), mi=mi, factor_names=names,
            best_factor=tuple(int(np.argmax(row)) for row in mi), points=int(record.get("points", 0)),
            seconds=float(record.get("seconds", 0.0)))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def probes_in_history(history: Iterable[Any]) -> list[DisentanglementProbe]:
    """Every well-formed probe record of a session/checkpoint history, in order."""
    out = []
    for record in history or ():
        if isinstance(record, Mapping):
            probe = probe_from_record(record)
            if probe is not None:
                out.append(probe)
    return out


def thin_probe_records(history: list[dict[str, Any]], limit: int = PROBE_HISTORY_LIMIT) -> list[dict[str, Any]]:
    """Drop every other probe record (the newest always stays) once there are more than `limit`."""
    positions = [i for i, r in enumerate(history) if r.get("kind") == "probe"]
    if len(positions) <= limit:
        return history
    drop = set(positions[-2::-2])
    return [r for i, r in enumerate(history) if i not in drop]


def factor_labels(probe: DisentanglementProbe | None, dims: Iterable[int]) -> list[str]:
    """Per dim, 'posX 0.62' (its best-matching factor and normalised MI), '' when unknown."""
    out = []
    for d in dims:
        if probe is None or not 0 <= int(d) < len(probe.mi):
            out.append("")
            continue
        row = probe.mi[int(d)]
        k = int(np.argmax(row))
        out.append(f"{probe.factor_names[k]} {row[k]:.2f}")
    return out
