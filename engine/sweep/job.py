"""One run of a sweep — train, evaluate, score — as the one body every backend executes (`run_job`), its picklable
description (`RunJob`), and its record in the run folder's result.json (written at the end, read back to resume)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..control import Control
from ..data import Dataset, DatasetError
from ..errors import CheckpointError, ConfigError
from ..events import Failed, Finished, StepMetrics, Warning_
from ..metrics import MetricsCancelled, MetricSizes, compute_metrics
from ..models import ModelBase
from ..run_folder import RunFolder
from ..scoring import SCORE_KEYS, elbo_numbers, model_representation, traversal_image
from .events import RunDone, SweepEvent, SweepProgress, SweepWarning
from .planning import SweepRun
from .summary import jsonable

EVAL_MAX_IMAGES = 5000
_STAGE_SHARE = {"train": 0.75, "evaluate": 0.05, "metrics": 0.17, "traversal": 0.03}
RESULT_FILE = "result.json"  # a run's record; complete (status "completed") = skipped when the sweep is re-run
PROGRESS_INTERVAL_S = 0.25  # workers send at most 4 progress events per second and run
# --- one run: train, evaluate, score (in this process or in a worker) ---------------------------------------
@dataclass(frozen=True)
class RunJob:
    """Everything needed to train, evaluate and score one run: picklable, so a worker process or a Ray task
    can take it."""

    run: SweepRun
    runs: int  # runs in the sweep (for messages and fractions)
    metrics: tuple[str, ...]
    metric_sizes: MetricSizes
    metric_seed: int
    iwae_k: int
    traversals: bool

    @property
    def fingerprint(self) -> str:
        """What makes two runs the same trained model: the run config (not threads, device or folder). Evaluation
        settings are left out, so changing --metrics never discards trained runs (re-score them with `eval`)."""
        config = self.run.config.replace(threads=0, device="auto", out_dir=None).to_toml()
        return hashlib.sha256(config.encode()).hexdigest()[:16]


def run_fraction(stage: str, within: float) -> float:
    """How far one run is (0…1) when `within` of `stage` is done (training 75 %, metrics 17 %, …)."""
    stages = list(_STAGE_SHARE)
    before = sum(_STAGE_SHARE[k] for k in stages[:stages.index(stage)])
    return min(1.0, before + _STAGE_SHARE[stage] * min(max(within, 0.0), 1.0))


def _job_progress(job: RunJob, stage: str, within: float, message: str, step: int = 0,
                  terms: dict[str, float] | None = None) -> SweepProgress:
    own = run_fraction(stage, within)
    return SweepProgress(job.run.index, job.runs, stage, (job.run.index + own) / job.runs, own, message, step,
                         dict(terms or {}))


def run_job(job: RunJob, control: Control, dataset: Dataset | None = None,
            listener: Callable[[SweepProgress], None] | None = None,
            keep_dataset: Callable[[Dataset], None] | None = None) -> Iterator[SweepProgress | SweepWarning | RunDone]:
    """Train, evaluate and score one run; the last event is its RunDone (also written to its result.json).
    `listener` gets the metric stage's progress; `keep_dataset` the loaded dataset (reused by later runs)."""
    from ..training import TrainingSession

    run, total = job.run, job.runs
    started = time.perf_counter()
    record: dict[str, Any] = {"run": run.name, **dict(run.values), "seed": run.seed, "folder": run.config.out_dir or "",
                              "status": "failed", "plan": job.fingerprint}
    yield _job_progress(job, "train", 0.0, f"run {run.index + 1}/{total} ({run.label}): starting")
    traversal = None
    try:
        session = TrainingSession(run.config, dataset)
        for message in session.warnings:
            yield SweepWarning(f"{run.name}: {message}")
        if keep_dataset is not None:
            keep_dataset(session.dataset)
        finished: Finished | None = None
        for event in session.run(control):
            if isinstance(event, StepMetrics):
                yield _job_progress(job, "train", event.progress, f"run {run.index + 1}/{total} ({run.label}): step "
                                    f"{event.step:,}/{session.total_steps:,}", event.step, event.terms)
            elif isinstance(event, Warning_):
                yield SweepWarning(f"{run.name}: {event.message}")
            elif isinstance(event, Failed):
                raise RuntimeError(event.cause)
            elif isinstance(event, Finished):
                finished = event
        record["steps"] = session.step
        record["train_seconds"] = round(time.perf_counter() - started, 1)
        if finished is None or finished.reason != "completed":
            record["status"] = "stopped"
            yield RunDone(run.index, dict(record))
            return
        model = session.model.eval()
        indices = session.test_indices[:EVAL_MAX_IMAGES].cpu()  # indices reach numpy in explore: CPU tensors only
        yield _job_progress(job, "evaluate", 0.0, f"{run.name}: −ELBO and KL on {len(indices):,} test images")
        record.update(elbo_numbers(model, session.dataset, indices, job.iwae_k))
        if job.metrics and session.dataset.has_factors:
            record.update(_scores(job, model, session.dataset, control, listener))
            if control.stopped:
                record["status"] = "stopped"
                yield RunDone(run.index, dict(record))
                return
            yield _job_progress(job, "metrics", 1.0, f"{run.name}: scores done")
        if job.traversals:
            traversal = traversal_image(model, session.dataset, indices)
            if traversal is not None and run.config.out_dir:
                record["traversal"] = str(RunFolder(run.config.out_dir).write_png("traversal.png", traversal))
        record["status"] = "completed"
    except (ConfigError, DatasetError, CheckpointError, OSError, RuntimeError, ValueError, TypeError) as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"
        yield SweepWarning(f"{run.name} failed: {record['error']}")
    record["seconds"] = round(time.perf_counter() - started, 1)
    if run.config.out_dir:  # a sweep killed while writing leaves no half result.json (resume retrains that run)
        RunFolder(run.config.out_dir).write_json(RESULT_FILE, jsonable(record))
    yield RunDone(run.index, dict(record), traversal)


def _scores(job: RunJob, model: ModelBase, dataset: Dataset, control: Control,
            listener: Callable[[SweepProgress], None] | None) -> dict[str, Any]:
    """The disentanglement scores (and the MI matrix) of one run; progress goes to the listener."""

    def progress(fraction: float, message: str) -> None:
        if listener is not None:
            listener(_job_progress(job, "metrics", fraction, f"{job.run.name}: {message}"))

    try:
        result = compute_metrics(model_representation(model, dataset), dataset, job.metrics, job.metric_seed,
                                 job.metric_sizes, progress, lambda: control.stopped)
    except MetricsCancelled:
        return {}
    out = {k: float(result[k]) for k in SCORE_KEYS if k in result}
    out["mi_matrix"] = result["mi_matrix"]
    out["factor_names"] = result["factor_names"]
    out["metric_sizes"] = result["sizes"]
    out["metric_seed"] = result["seed"]
    out["metric_seconds"] = round(sum(result["seconds"].values()), 1)
    return out


def completed_record(job: RunJob) -> dict[str, Any] | None:
    """The record in the run folder's result.json when that run is complete with the same settings, else None.
    A complete run of the same name trained with other settings is a ConfigError (it is never overwritten)."""
    if not job.run.config.out_dir:
        return None
    path = Path(job.run.config.out_dir) / RESULT_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(record, dict) or record.get("status") != "completed" or record.get("run") != job.run.name:
        return None
    if record.get("plan") != job.fingerprint:
        raise ConfigError(f"{path.parent} already holds a completed run {job.run.name!r} trained with other settings; "
                          "use another sweep folder (or delete that run folder to retrain it)")
    return record


def crashed_record(job: RunJob, error: str) -> dict[str, Any]:
    return {"run": job.run.name, **dict(job.run.values), "seed": job.run.seed, "folder": job.run.config.out_dir or "",
            "status": "failed", "plan": job.fingerprint, "error": error}


def run_reporting(job: RunJob, control: Control, send: Callable[[SweepEvent], None],
                   datasets: dict[str, Dataset]) -> tuple[dict[str, Any], np.ndarray | None]:
    """`run_job` in a worker: warnings and (throttled) progress are sent, the RunDone is returned."""
    last = {"at": 0.0, "stage": ""}

    def report(event: SweepProgress) -> None:
        now = time.monotonic()
        if now - last["at"] >= PROGRESS_INTERVAL_S or event.stage != last["stage"]:
            last.update(at=now, stage=event.stage)
            send(event)

    def keep(dataset: Dataset) -> None:
        datasets.setdefault(job.run.config.dataset, dataset)

    outcome: tuple[dict[str, Any], np.ndarray | None] = (crashed_record(job, "the run ended without a result"), None)
    for event in run_job(job, control, datasets.get(job.run.config.dataset), report, keep):
        if isinstance(event, SweepProgress):
            report(event)
        elif isinstance(event, RunDone):
            outcome = (event.record, event.traversal)
        else:
            send(event)
    return outcome
