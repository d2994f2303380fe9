"""Hyperparameter sweeps: a grid of training runs, each in its own folder, then evaluated and compared.

`plan_sweep(config, parse_grid("beta=1,2,4,8"), seeds=2, out_dir=...)` lists the runs (the Cartesian product of
the grid × seeds); `SweepRunner(runs, backend=...).run(control)` trains them and yields frozen events (progress of
each run, one record per finished run, the end). Backends: `LocalBackend()` one run after another in this process
(the default), `LocalBackend(parallel=K)` K at a time in spawned processes, `RayBackend(address)` every run a Ray
task; `run_job` is the one body all of them execute. Each record holds −ELBO = recon + KL (β = 1, whatever β
trained with), its two terms, active units, the IWAE-k NLL when the family has importance weights, the five
disentanglement scores (when the dataset has ground-truth factors) and the run's traversal image. `write_summary`
writes the comparison: summary.csv, summary.json and the rate–distortion plane (KL vs reconstruction) as a PNG.
Resumable: a run whose result.json is complete (same training config) is skipped when the sweep is run again.
The same `Control` as training: `stop()` ends the runs in flight at their next step and skips the rest.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import itertools
import json
import logging
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import explore
from .config import TrainConfig
from .control import Control
from .data import Dataset, DatasetError
from .errors import CheckpointError, ConfigError
from .evaluate import evaluate
from .events import Failed, Finished, StepMetrics, Warning_
from .imaging import save_png
from .metrics import DCI_ESTIMATORS, METRIC_NAMES, MetricsCancelled, MetricSizes, compute_metrics
from .models import ModelBase, model_class

TRAINING_GRID_KEYS = ("lr", "batch_size", "weight_decay", "epochs", "max_steps")
SCORE_KEYS = ("beta_vae", "factor_vae", "mig", "dci_disentanglement", "dci_completeness", "dci_informativeness",
              "sap")
ELBO_KEYS = ("neg_elbo", "recon", "kl", "active_units", "iwae_nll")
TRAVERSAL_STEPS = 9
TRAVERSAL_MAX_DIMS = 10
EVAL_MAX_IMAGES = 5000
_NOT_GRID = frozenset({"run", "plan", "seed", "status", "steps", "seconds", "folder", "traversal", "train_seconds",
                       "error", "mi_matrix", "factor_names", "kl_per_dim", "metric_sizes", "metric_seed",
                       "metric_seconds", *ELBO_KEYS, *SCORE_KEYS})  # record keys that are not grid parameters
_STAGE_SHARE = {"train": 0.75, "evaluate": 0.05, "metrics": 0.17, "traversal": 0.03}
RESULT_FILE = "result.json"  # a run's record; complete (status "completed") = skipped when the sweep is re-run
BACKENDS = ("local", "ray")
MAX_PARALLEL = 64
PROGRESS_INTERVAL_S = 0.25  # workers send at most 4 progress events per second and run
STOP_POLL_S = 0.5  # how often a Ray task asks whether the sweep was stopped


# --- planning ------------------------------------------------------------------------------------------
def _parse_value(text: str) -> int | float | str:
    text = text.strip()
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    try:
        value = float(text)
    except ValueError:
        return text
    if not math.isfinite(value):
        raise ConfigError(f"grid value {text!r} is not a finite number")
    return value


def parse_grid(text: str | list[str] | tuple[str, ...]) -> dict[str, list[Any]]:
    """`"beta=1,2,4,8"` → {"beta": [1, 2, 4, 8]}; several parameters: `"beta=1,4;latent_dim=6,10"` or a list."""
    parts = [text] if isinstance(text, str) else list(text)
    grid: dict[str, list[Any]] = {}
    for part in parts:
        for item in str(part).split(";"):
            item = item.strip()
            if not item:
                continue
            name, sep, values = item.partition("=")
            name = name.strip()
            if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ConfigError(f"grid entry {item!r}: expected NAME=V1,V2,… (e.g. beta=1,2,4,8)")
            parsed = [_parse_value(v) for v in values.split(",") if v.strip()]
            if not parsed:
                raise ConfigError(f"grid entry {item!r}: no values after '='")
            if name in grid:
                raise ConfigError(f"grid parameter {name!r} is given twice")
            if len(set(map(repr, parsed))) != len(parsed):
                raise ConfigError(f"grid entry {item!r}: a value is repeated")
            grid[name] = parsed
    if not grid:
        raise ConfigError("the grid is empty; give at least one NAME=V1,V2,… (e.g. beta=1,2,4,8)")
    return grid


def _format_value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def run_name(values: dict[str, Any], seed: int) -> str:
    """Folder name of a run: `beta=4_seed0` (file-system safe)."""
    parts = [f"{k}={_format_value(v)}" for k, v in values.items()] + [f"seed{seed}"]
    return re.sub(r"[^A-Za-z0-9=._+-]", "-", "_".join(parts))


@dataclass(frozen=True)
class SweepRun:
    """One planned run: the grid values it takes, its seed, its full config (out_dir = its folder, or None)."""

    index: int
    name: str
    values: dict[str, Any]
    seed: int
    config: TrainConfig = field(compare=False)

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={_format_value(v)}" for k, v in self.values.items())


def plan_sweep(base: TrainConfig, grid: dict[str, list[Any]], seeds: int = 1, out_dir: str | Path | None = None,
               max_steps: int | None = None) -> list[SweepRun]:
    """The runs of a sweep: every combination of the grid × `seeds` seeds (base.seed, base.seed + 1, …)."""
    if not isinstance(seeds, int) or isinstance(seeds, bool) or not 1 <= seeds <= 100:
        raise ConfigError(f"seeds must be an integer in [1, 100], got {seeds!r}")
    cls = model_class(base.family)
    hparam_names = {h.name for h in cls.all_hparams()}
    unknown = [k for k in grid if k not in hparam_names and k not in TRAINING_GRID_KEYS]
    if unknown:
        raise ConfigError(f"cannot sweep {', '.join(unknown)} for family {base.family!r}; sweepable: "
                          f"{', '.join(sorted(hparam_names) + list(TRAINING_GRID_KEYS))}")
    runs: list[SweepRun] = []
    combos = list(itertools.product(*grid.values()))
    for combo in combos:
        values = dict(zip(grid, combo, strict=True))
        hparams = dict(base.hparams)
        training: dict[str, Any] = {}
        for k, v in values.items():
            if k in TRAINING_GRID_KEYS:
                training[k] = float(v) if k in ("lr", "weight_decay") and isinstance(v, int) else v
            else:
                hparams[k] = v
        cls.validate_hparams(hparams)
        for s in range(seeds):
            seed = base.seed + s
            name = run_name(values, seed)
            folder = str(Path(out_dir) / name) if out_dir is not None else None
            changes: dict[str, Any] = {"hparams": hparams, "seed": seed, "out_dir": folder, **training}
            if max_steps is not None:
                changes["max_steps"] = int(max_steps)
            runs.append(SweepRun(len(runs), name, values, seed, base.replace(**changes)))
    return runs


# --- events ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepProgress:
    run_index: int
    runs: int
    stage: str  # train | evaluate | metrics | traversal
    fraction: float  # 0…1 of the whole sweep
    run_fraction: float  # 0…1 of this run
    message: str
    step: int = 0
    terms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RunDone:
    run_index: int
    record: dict[str, Any]
    traversal: np.ndarray | None = None  # uint8 grid (rows = latents by KL, largest first)


@dataclass(frozen=True)
class SweepWarning:
    message: str


@dataclass(frozen=True)
class SweepDone:
    records: tuple[dict[str, Any], ...]
    reason: str  # completed | stopped
    files: dict[str, str] = field(default_factory=dict)


SweepEvent = SweepProgress | RunDone | SweepWarning | SweepDone


# --- evaluation of one trained model ----------------------------------------------------------------------
def model_representation(model: ModelBase, dataset: Dataset,
                         batch: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """`represent(factors) → posterior means` for compute_metrics: render the factor rows, encode them (in batches
    of 1,024 images on a CPU, 8,192 on a GPU unless `batch` says)."""
    batch = batch or (1024 if model.device.type == "cpu" else 8192)
    if model.is_conditional:
        raise ValueError("disentanglement scores are not defined here for conditional models "
                         "(their encoder is given the label)")
    if model.latent_kind != "continuous":
        raise ValueError("disentanglement scores need a continuous code; this model's code is discrete")
    if not dataset.has_factors:
        raise ValueError(f"{dataset.name} has no ground-truth factors; the disentanglement scores need "
                         "dSprites or another dataset with factors")

    def represent(factors: np.ndarray) -> np.ndarray:
        return explore.encode_means(model, dataset.render_factors(factors), batch=batch)

    return represent


def elbo_numbers(model: ModelBase, dataset: Dataset, indices: torch.Tensor, iwae_k: int = 0) -> dict[str, Any]:
    """−ELBO (= recon + KL), recon, KL, active units, KL per dim and the IWAE-k NLL (engine.evaluate)."""
    result = evaluate(model, dataset, indices, iwae_k=iwae_k)
    out: dict[str, Any] = {k: float(result[k]) for k in ELBO_KEYS if result.get(k) is not None}
    if result.get("kl_per_dim") is not None:
        out["kl_per_dim"] = [round(float(v), 5) for v in result["kl_per_dim"]]
    return out


def traversal_image(model: ModelBase, dataset: Dataset, indices: torch.Tensor,
                    steps: int = TRAVERSAL_STEPS) -> np.ndarray | None:
    """Rows = latents by KL (largest first, at most 10), ±3 prior std around the first test image's code."""
    if model.latent_kind != "continuous" or model.is_conditional:
        return None
    stats = explore.latent_stats(model, dataset, indices, n=500)
    dims = [int(d) for d in stats.order[:TRAVERSAL_MAX_DIMS]]
    values = explore.traversal_values(stats, dims, steps)
    return explore.traversal_grid(model, stats.means[0], dims, values)


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
    from .training import TrainingSession

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
                record["traversal"] = str(save_png(traversal, Path(run.config.out_dir) / "traversal.png"))
        record["status"] = "completed"
    except (ConfigError, DatasetError, CheckpointError, OSError, RuntimeError, ValueError, TypeError) as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"
        yield SweepWarning(f"{run.name} failed: {record['error']}")
    record["seconds"] = round(time.perf_counter() - started, 1)
    if run.config.out_dir:
        _write_json_atomically(Path(run.config.out_dir) / RESULT_FILE, record)
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


def _write_json_atomically(path: Path, doc: Any) -> None:
    """Temp file + os.replace: a sweep killed while writing leaves no half result.json (resume retrains that run)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(_jsonable(doc), indent=2), encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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


# --- backends: where the runs execute ------------------------------------------------------------------------
class LocalBackend:
    """This machine: one run after another in this process (parallel=1, the default), or `parallel` runs at a time,
    each in its own spawned process (the engine seeds global RNGs and sets global thread counts, so runs are
    processes, not threads; each gets cores // parallel torch threads unless its config sets threads)."""

    name = "local"

    def __init__(self, parallel: int = 1) -> None:
        if not isinstance(parallel, int) or isinstance(parallel, bool) or not 1 <= parallel <= MAX_PARALLEL:
            raise ConfigError(f"--parallel must be an integer in [1, {MAX_PARALLEL}], got {parallel!r}")
        self.parallel = parallel

    def describe(self) -> str:
        return "one after another in this process" if self.parallel == 1 else \
            f"{self.parallel} at a time in local processes"

    def connect(self) -> None:
        """Nothing to connect to."""

    def close(self) -> None:
        """Nothing to release."""

    def execute(self, jobs: list[RunJob], control: Control, runner: SweepRunner) -> Iterator[SweepEvent]:
        if min(self.parallel, len(jobs)) <= 1:
            yield from self._in_process(jobs, control, runner)
        else:
            yield from self._in_processes(jobs, control)

    @staticmethod
    def _in_process(jobs: list[RunJob], control: Control, runner: SweepRunner) -> Iterator[SweepEvent]:
        def keep(dataset: Dataset) -> None:
            if runner.dataset is None:
                runner.dataset = dataset

        for job in jobs:
            if control.stopped:
                return
            for event in run_job(job, control, runner.dataset, runner.notify, keep):
                yield event
                if isinstance(event, RunDone) and event.record.get("status") == "stopped":
                    return

    def _in_processes(self, jobs: list[RunJob], control: Control) -> Iterator[SweepEvent]:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        workers = min(self.parallel, len(jobs))
        context = multiprocessing.get_context("spawn")
        events = context.Queue()
        stop = context.Event()
        threads = max(1, (os.cpu_count() or 1) // workers)
        from .models.user_file import user_sources

        with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init,
                                 initargs=(events, stop, threads, user_sources())) as pool:
            futures = {pool.submit(_worker_job, job): job for job in jobs}
            try:
                while futures:
                    if control.stopped and not stop.is_set():
                        stop.set()
                        for future in futures:
                            future.cancel()
                    yield from _drain_queue(events, 0.1)
                    for future in [f for f in futures if f.done()]:
                        job = futures.pop(future)
                        if future.cancelled():
                            continue
                        yield from _drain_queue(events, 0.0)
                        try:
                            outcome = future.result()
                        except BrokenProcessPool as exc:
                            outcome = (_crashed_record(job, f"its worker process died ({exc})"), None)
                        except Exception as exc:  # an unexpected error inside the worker: recorded, the sweep goes on
                            outcome = (_crashed_record(job, f"{type(exc).__name__}: {exc}"), None)
                        if outcome is not None:
                            yield RunDone(job.run.index, outcome[0], outcome[1])
            finally:
                stop.set()
                for future in futures:
                    future.cancel()
        events.close()


def _crashed_record(job: RunJob, error: str) -> dict[str, Any]:
    return {"run": job.run.name, **dict(job.run.values), "seed": job.run.seed, "folder": job.run.config.out_dir or "",
            "status": "failed", "plan": job.fingerprint, "error": error}


def _drain_queue(events: Any, timeout: float) -> Iterator[SweepEvent]:
    import queue

    try:
        yield events.get(timeout=timeout) if timeout > 0 else events.get_nowait()
    except queue.Empty:
        return
    while True:
        try:
            yield events.get_nowait()
        except queue.Empty:
            return


class _SharedStopControl(Control):
    """A worker's Control that also stops when the parent sets the shared stop event."""

    def __init__(self, shared_stop: Any) -> None:
        super().__init__()
        self._shared_stop = shared_stop

    @property
    def stopped(self) -> bool:
        return self._stop.is_set() or self._shared_stop.is_set()


_WORKER: dict[str, Any] = {}  # per worker process: the event queue, the stop event, datasets by spec


def _worker_init(events: Any, stop: Any, threads: int, model_files: tuple = ()) -> None:
    """Per worker process; `model_files`: the user's model files the parent process ran (models/user_file.py)."""
    _WORKER.update(events=events, stop=stop, datasets={})
    torch.set_num_threads(threads)
    from .models.user_file import rerun_sources

    rerun_sources(model_files)


def _worker_job(job: RunJob) -> tuple[dict[str, Any], np.ndarray | None] | None:
    """One run in a local worker process: events go to the parent's queue (progress at most 4 per second)."""
    control = _SharedStopControl(_WORKER["stop"])
    if control.stopped:
        return None
    events = _WORKER["events"]
    return _run_reporting(job, control, events.put, _WORKER["datasets"])


def _run_reporting(job: RunJob, control: Control, send: Callable[[SweepEvent], None],
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

    outcome: tuple[dict[str, Any], np.ndarray | None] = (_crashed_record(job, "the run ended without a result"), None)
    for event in run_job(job, control, datasets.get(job.run.config.dataset), report, keep):
        if isinstance(event, SweepProgress):
            report(event)
        elif isinstance(event, RunDone):
            outcome = (event.record, event.traversal)
        else:
            send(event)
    return outcome


class RayBackend:
    """Every run as a Ray task (`cpus_per_run` CPUs, `gpus_per_run` GPUs, fractions allowed): on a local Ray instance
    (address None and no RAY_ADDRESS), or on an existing cluster (`auto`, `host:port`, `ray://host:port`)."""

    name = "ray"

    def __init__(self, address: str | None = None, gpus_per_run: float = 0.0, cpus_per_run: float = 1.0,
                 num_cpus: int | None = None) -> None:
        """`num_cpus` caps a local instance this backend starts (None: every core)."""
        if not (isinstance(gpus_per_run, int | float) and math.isfinite(gpus_per_run) and 0 <= gpus_per_run <= 64):
            raise ConfigError(f"--gpus-per-run must be a number in [0, 64], got {gpus_per_run!r}")
        if not (isinstance(cpus_per_run, int | float) and math.isfinite(cpus_per_run) and 0 < cpus_per_run <= 256):
            raise ConfigError(f"--cpus-per-run must be a number in (0, 256], got {cpus_per_run!r}")
        self.address = address.strip() if isinstance(address, str) and address.strip() else None
        if self.address is not None:
            _check_address_syntax(self.address)
        self.gpus_per_run = float(gpus_per_run)
        self.cpus_per_run = float(cpus_per_run)
        self.num_cpus = num_cpus
        self._started_here = False

    def describe(self) -> str:
        where = self.address or os.environ.get("RAY_ADDRESS") or "a local Ray instance"
        return f"Ray ({where}; {self.cpus_per_run:g} CPU, {self.gpus_per_run:g} GPU per run)"

    def connect(self) -> None:
        """Import Ray and join (or start) the cluster: ConfigError with one clear line when either fails."""
        try:
            import ray
        except ImportError:
            raise ConfigError("the ray backend needs Ray, which is not installed here: pip install -e '.[cluster]' "
                              "(or pip install ray)") from None
        if ray.is_initialized():
            return
        address = self.address or os.environ.get("RAY_ADDRESS") or None
        if address is not None and address not in ("auto", "local"):
            _check_reachable(address)
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                   "logging_level": logging.WARNING}
        engine_dir = Path(__file__).resolve().parent
        if address is None or address == "local":  # the workers import this very engine, not another install's
            options["num_cpus"] = self.num_cpus
            path = os.pathsep.join(p for p in (str(engine_dir.parent), os.environ.get("PYTHONPATH", "")) if p)
            options["runtime_env"] = {"env_vars": {"PYTHONPATH": path}}
        else:
            options["runtime_env"] = {"py_modules": [str(engine_dir)]}  # ship this engine to the cluster's nodes
        try:
            ray.init(address=address, **options)
        except Exception as exc:  # Ray raises ConnectionError, RuntimeError or ValueError for a bad cluster
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"cannot connect to the Ray cluster at {address!r}: {first.rstrip('.')}. Start one with "
                              "`ray start --head` (see docs/scale-out.md)") from None
        self._started_here = True
        resources = ray.cluster_resources()
        if self.gpus_per_run > 0 and resources.get("GPU", 0.0) < self.gpus_per_run:
            self.close()
            raise ConfigError(f"the Ray cluster has {resources.get('GPU', 0.0):g} GPU(s); --gpus-per-run "
                              f"{self.gpus_per_run:g} can never be scheduled")
        if resources.get("CPU", 0.0) < self.cpus_per_run:
            self.close()
            raise ConfigError(f"the Ray cluster has {resources.get('CPU', 0.0):g} CPU(s); --cpus-per-run "
                              f"{self.cpus_per_run:g} can never be scheduled")

    def close(self) -> None:
        """Shut down the Ray connection (or local instance) this backend started; one it found running stays."""
        if self._started_here:
            import ray

            ray.shutdown()
            self._started_here = False

    def execute(self, jobs: list[RunJob], control: Control, runner: SweepRunner) -> Iterator[SweepEvent]:
        import ray

        try:
            yield from self._execute(jobs, control, {"num_cpus": self.cpus_per_run, "num_gpus": self.gpus_per_run})
        except ray.exceptions.RayError as exc:  # the cluster itself failed (a node or the channel actor died)
            raise RuntimeError(f"the Ray cluster failed: {_last_line(exc)}") from None

    @staticmethod
    def _execute(jobs: list[RunJob], control: Control, task_options: dict[str, float] | None = None
                 ) -> Iterator[SweepEvent]:
        import ray

        channel = ray.remote(num_cpus=0)(SweepChannel).remote()
        task = ray.remote(_ray_job).options(max_retries=0, **(task_options or {}))
        refs = {task.remote(job, channel): job for job in jobs}
        told = False
        try:
            while refs:
                if control.stopped and not told:
                    ray.get(channel.stop.remote())
                    told = True
                ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0.2)
                yield from ray.get(channel.drain.remote())
                for ref in ready:
                    job = refs.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # this run's task died: recorded, the sweep goes on
                        outcome = (_crashed_record(job, f"the Ray task failed: {_last_line(exc)}"), None)
                    if outcome is not None:
                        yield from ray.get(channel.drain.remote())
                        yield RunDone(job.run.index, outcome[0], outcome[1])
        finally:
            for ref in refs:
                ray.cancel(ref)
            with contextlib.suppress(ray.exceptions.RayError):
                ray.kill(channel)


def _last_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__


class SweepChannel:
    """A Ray actor between the driver and the run tasks: events up (drained by the driver), a stop flag down."""

    def __init__(self) -> None:
        self._events: list[SweepEvent] = []
        self._stopped = False

    def push(self, event: SweepEvent) -> None:
        self._events.append(event)

    def drain(self) -> list[SweepEvent]:
        events, self._events = self._events, []
        return events

    def stop(self) -> None:
        self._stopped = True

    def stopped(self) -> bool:
        return self._stopped


_RAY_DATASETS: dict[str, Dataset] = {}  # per Ray worker process (workers are reused across tasks)


def _ray_job(job: RunJob, channel: Any) -> tuple[dict[str, Any], np.ndarray | None] | None:
    """One run as a Ray task: events go to the channel; a watcher thread turns the channel's stop into a stop."""
    import threading

    import ray

    if ray.get(channel.stopped.remote()):
        return None
    control = Control()
    done = threading.Event()

    def watch() -> None:
        while not done.wait(STOP_POLL_S):
            if ray.get(channel.stopped.remote()):
                control.stop()
                return

    watcher = threading.Thread(target=watch, name="sweep-stop-watch", daemon=True)
    watcher.start()
    try:
        return _run_reporting(job, control, lambda event: channel.push.remote(event), _RAY_DATASETS)
    finally:
        done.set()
        watcher.join()


def _check_address_syntax(address: str) -> None:
    if address in ("auto", "local"):
        return
    host_port = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = host_port.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--address {address!r} is not a Ray address: use auto, HOST:PORT (e.g. 10.0.0.1:6379) "
                          "or ray://HOST:10001")


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """A quick TCP connect, so a wrong address fails in seconds with a clear line (Ray itself retries for minutes)."""
    import socket

    _check_address_syntax(address)
    host, _, port = (address[len("ray://"):] if address.startswith("ray://") else address).rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot reach a Ray cluster at {address}: {exc.strerror or exc}. Start one with "
                          "`ray start --head` on that machine, or check the address and port (docs/scale-out.md)") \
            from None


# --- the runner --------------------------------------------------------------------------------------------
class SweepRunner:
    """Trains the planned runs on a backend (default: one after another here); `run(control)` yields SweepEvents.
    Resumable: runs whose result.json is complete (same settings) are skipped, the rest are (re)trained."""

    def __init__(self, runs: list[SweepRun], *, dataset: Dataset | None = None, out_dir: str | Path | None = None,
                 metrics: tuple[str, ...] = METRIC_NAMES, metric_sizes: MetricSizes | None = None,
                 metric_seed: int = 0, iwae_k: int = 0, traversals: bool = True,
                 listener: Callable[[SweepEvent], None] | None = None,
                 backend: LocalBackend | RayBackend | None = None) -> None:
        """`listener` (optional, called on the running thread) also receives the progress of the metric stage,
        which runs inside one call and so cannot be yielded. `backend`: LocalBackend() unless given."""
        if not runs:
            raise ConfigError("the sweep has no runs")
        self.runs = list(runs)
        self.dataset = dataset
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.metrics = tuple(metrics)
        self.metric_sizes = metric_sizes or MetricSizes()
        self.metric_seed = int(metric_seed)
        self.iwae_k = int(iwae_k)
        self.traversals = traversals
        self.listener = listener
        self.backend = backend or LocalBackend()
        self.records: list[dict[str, Any]] = []
        self._run_fractions: dict[int, float] = {}
        self._finished: set[int] = set()

    def jobs(self) -> list[RunJob]:
        return [RunJob(run, len(self.runs), self.metrics, self.metric_sizes, self.metric_seed, self.iwae_k,
                       self.traversals) for run in self.runs]

    def _overall(self, event: SweepProgress) -> SweepProgress | None:
        """The event with the sweep's fraction: the mean of every run's own fraction (runs may run in parallel);
        None for a late event of a run that is already done (workers' events may overtake their results)."""
        if event.run_index in self._finished:
            return None
        self._run_fractions[event.run_index] = event.run_fraction
        return replace(event, fraction=sum(self._run_fractions.values()) / len(self.runs))

    def notify(self, event: SweepProgress) -> None:
        """Progress from inside one call (the metric stage) to the listener."""
        overall = self._overall(event)
        if self.listener is not None and overall is not None:
            self.listener(overall)

    def run(self, control: Control | None = None) -> Iterator[SweepEvent]:
        control = control or Control()
        jobs = self.jobs()
        done = {job.run.index: record for job in jobs if (record := completed_record(job)) is not None}
        self.backend.connect()  # a missing Ray or a bad address fails here, before anything is written
        try:
            yield from self._run(control, jobs, done)
        finally:
            self.backend.close()

    def _run(self, control: Control, jobs: list[RunJob], done: dict[int, dict[str, Any]]) -> Iterator[SweepEvent]:
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._write_plan()
        records: dict[int, dict[str, Any]] = {}
        self._run_fractions, self._finished = {}, set()
        for index, record in done.items():
            records[index] = record
            self._run_fractions[index] = 1.0
            self._finished.add(index)
            yield SweepWarning(f"{record['run']}: already complete in {record.get('folder')}, skipped")
            yield RunDone(index, dict(record))
        pending = [job for job in jobs if job.run.index not in done]
        for job in pending:
            folder = job.run.config.out_dir
            if folder and self.out_dir is not None and Path(folder).parent == self.out_dir and Path(folder).is_dir():
                shutil.rmtree(folder)  # an incomplete run of this sweep (killed, failed or stopped): retrained
        reason = "completed"
        for event in self.backend.execute(pending, control, self):
            if isinstance(event, SweepProgress):
                event = self._overall(event)
                if event is None:
                    continue
            elif isinstance(event, RunDone):
                records[event.run_index] = event.record
                self._run_fractions[event.run_index] = 1.0
                self._finished.add(event.run_index)
                if event.record.get("status") == "stopped":
                    reason = "stopped"
            yield event
        if control.stopped:
            reason = "stopped"
        self.records = [records[i] for i in sorted(records)]
        files = write_summary(self.records, self.out_dir) if self.out_dir is not None and self.records else {}
        yield SweepDone(tuple(dict(r) for r in self.records), reason, files)

    def _write_plan(self) -> None:
        plan = [{"run": r.name, **r.values, "seed": r.seed, "folder": r.config.out_dir} for r in self.runs]
        doc = {"runs": plan, "metrics": list(self.metrics), "metric_sizes": self.metric_sizes.to_dict(),
               "metric_seed": self.metric_seed, "iwae_k": self.iwae_k, "backend": self.backend.describe(),
               "base_config": self.runs[0].config.replace(out_dir=None).to_toml()}
        _write_json_atomically(self.out_dir / "sweep.json", doc)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --- the comparison -----------------------------------------------------------------------------------------
def summary_columns(records: list[dict[str, Any]]) -> list[str]:
    """CSV columns: run, the grid parameters, seed, status, steps, the ELBO numbers, the scores, seconds."""
    fixed = ["run", "seed", "status", "steps", *ELBO_KEYS, *SCORE_KEYS, "seconds", "folder"]
    grid_keys = [k for r in records for k in r if k not in _NOT_GRID]
    grid_keys = list(dict.fromkeys(grid_keys))
    present = [k for k in fixed if any(k in r for r in records)]
    return [present[0], *grid_keys, *present[1:]]


def write_summary(records: list[dict[str, Any]], out_dir: str | Path) -> dict[str, str]:
    """summary.csv, summary.json and rate_distortion.png in `out_dir`; returns their paths by kind."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    columns = summary_columns(records)
    csv_path = out_dir / "summary.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for r in records:
            writer.writerow([_csv_cell(r.get(c, "")) for c in columns])
    json_path = out_dir / "summary.json"
    json_path.write_text(json.dumps(_jsonable({"columns": columns, "runs": records}), indent=2), encoding="utf-8")
    files = {"csv": str(csv_path), "json": str(json_path)}
    points = rate_distortion_points(records)
    if points:
        files["png"] = str(save_png(rate_distortion_figure(points), out_dir / "rate_distortion.png"))
    return files


def _csv_cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else ""
    return value


def load_summary(path: str | Path) -> list[dict[str, Any]]:
    """The run records of a sweep folder's summary.json (or of the file itself)."""
    path = Path(path)
    if path.is_dir():
        path = path / "summary.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a sweep summary ({exc})") from None
    runs = doc.get("runs") if isinstance(doc, dict) else None
    if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
        raise ConfigError(f"{path}: not a sweep summary (no list of runs)")
    return runs


def point_label(record: dict[str, Any]) -> str:
    """`β=4` for a β sweep, else the grid values; the seed is added when it is not the only one."""
    parts = [("β" if k == "beta" else k) + f"={_format_value(v)}" for k, v in record.items() if k not in _NOT_GRID]
    return ", ".join(parts) or str(record.get("run", "?"))


def rate_distortion_points(records: list[dict[str, Any]]) -> list[tuple[float, float, str]]:
    """(KL = rate, recon = distortion, label) of every run that has both numbers."""
    points = []
    for r in records:
        kl, recon = r.get("kl"), r.get("recon")
        if isinstance(kl, int | float) and isinstance(recon, int | float) and math.isfinite(kl) and \
                math.isfinite(recon):
            seeds = {x.get("seed") for x in records}
            label = point_label(r) + (f" s{r.get('seed')}" if len(seeds) > 1 else "")
            points.append((float(kl), float(recon), label))
    return points


def rate_distortion_figure(points: list[tuple[float, float, str]], width: int = 720, height: int = 520) -> np.ndarray:
    """The rate–distortion plane as an RGB uint8 image (Pillow only: the engine draws without Qt)."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    try:
        font = ImageFont.truetype("DejaVuSans.ttf", 13)
        plain = False
    except OSError:  # no DejaVu on this system: Pillow's own font, and ASCII for β and ‖
        font = ImageFont.load_default()
        plain = True

    def text(s: str) -> str:
        return s.replace("β", "beta").replace("‖", "||") if plain else s
    left, right, top, bottom = 80, width - 30, 40, height - 60
    xs = np.array([p[0] for p in points])
    ys = np.array([p[1] for p in points])

    def padded(values: np.ndarray) -> tuple[float, float]:
        lo, hi = float(values.min()), float(values.max())
        span = hi - lo if hi > lo else max(abs(hi), 1.0)
        return lo - 0.12 * span, hi + 0.12 * span

    x0, x1 = padded(xs)
    y0, y1 = padded(ys)

    def to_px(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x0) / (x1 - x0) * (right - left), bottom - (y - y0) / (y1 - y0) * (bottom - top))

    draw.rectangle([left, top, right, bottom], outline="black")
    for tick in np.linspace(x0, x1, 6):
        px, _ = to_px(tick, y0)
        draw.line([px, bottom, px, bottom + 5], fill="black")
        draw.text((px - 15, bottom + 8), f"{tick:.3g}", fill="black", font=font)
    for tick in np.linspace(y0, y1, 6):
        _, py = to_px(x0, tick)
        draw.line([left - 5, py, left, py], fill="black")
        draw.text((8, py - 7), f"{tick:.4g}", fill="black", font=font)
    draw.text(((left + right) // 2 - 110, height - 28), text("rate: KL(q(z|x) ‖ p(z))  [nats]"), fill="black",
              font=font)
    draw.text((left, 12), "distortion: reconstruction NLL [nats]  vs  rate, one point per run", fill="black",
              font=font)
    order = np.argsort(xs)
    line = [to_px(xs[i], ys[i]) for i in order]
    if len(line) > 1:
        draw.line(line, fill=(170, 170, 220), width=1)
    for x, y, label in points:
        px, py = to_px(x, y)
        draw.ellipse([px - 5, py - 5, px + 5, py + 5], fill=(40, 90, 200), outline="black")
        draw.text((px + 8, py - 16), text(label), fill=(20, 20, 20), font=font)
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


# --- the CLI sub-command -------------------------------------------------------------------------------------
def add_sweep_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `sweep` on an argparse sub-parsers object (engine/cli.py calls this)."""
    parser = subparsers.add_parser(
        "sweep", help="train a grid of runs (here, in parallel processes, or on a Ray cluster) and compare them",
        description="Train one run per grid point (× seeds), each in its own folder under --out, then evaluate "
                    "each (−ELBO, recon, KL, active units, disentanglement scores) and write summary.csv, "
                    "summary.json and rate_distortion.png. Re-running the same command resumes: runs whose "
                    "result.json is complete are skipped.",
        epilog="examples:\n"
               "  main.py sweep --preset dsprites-beta-vae --grid beta=1,4,16 --seeds 3 --out sweeps/b\n"
               "  main.py sweep --preset dsprites-beta-vae --grid beta=1,4,16 --parallel 2 --out sweeps/b\n"
               "  main.py sweep --preset dsprites-beta-vae --grid beta=1,4,16 --backend ray --address auto "
               "--gpus-per-run 0.25 --out /shared/sweeps/b",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--preset", help="a preset name (resources/presets/NAME.toml)")
    source.add_argument("--config", help="a run config TOML file")
    parser.add_argument("--model-file", metavar="FILE.py[:CLASS]", dest="model_file",
                        help="sweep the model class in your own Python file (docs/your-model.md) instead of the "
                             "config's family")
    parser.add_argument("--grid", action="append", required=True,
                        help="NAME=V1,V2,… (repeat or separate with ';' for several parameters), e.g. beta=1,2,4,8")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per grid point (config seed, +1, …)")
    parser.add_argument("--max-steps", type=int, default=None, help="training steps per run (overrides the config)")
    parser.add_argument("--dataset", default=None, help="dataset spec overriding the config's")
    parser.add_argument("--out", required=True, help="sweep folder (one sub-folder per run)")
    parser.add_argument("--metrics", default="all",
                        help="'all', 'none' or a comma list of beta_vae,factor_vae,mig,dci,sap")
    add_metric_size_arguments(parser)
    parser.add_argument("--metric-seed", type=int, default=0)
    parser.add_argument("--iwae-k", type=int, default=0, help="importance samples for the IWAE-k NLL (0 = skip)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the config's)")
    parser.add_argument("--backend", choices=BACKENDS, default="local",
                        help="local (default): this machine; ray: every run a Ray task (pip install -e '.[cluster]')")
    parser.add_argument("--parallel", type=int, default=1, metavar="K",
                        help="local backend: K runs at a time, each in its own process (default 1: one after another)")
    parser.add_argument("--address", default=None, metavar="ADDR",
                        help="ray backend: a running cluster (auto, HOST:PORT or ray://HOST:10001); default: "
                             "$RAY_ADDRESS, else a new local Ray instance")
    parser.add_argument("--gpus-per-run", type=float, default=0.0, metavar="F",
                        help="ray backend: GPUs per run, fractions allowed (0.25 = four runs share a GPU)")
    parser.add_argument("--cpus-per-run", type=float, default=1.0, metavar="C", help="ray backend: CPUs per run")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=cli_sweep)
    return parser


def add_metric_size_arguments(parser: argparse.ArgumentParser) -> None:
    """--metric-sizes, --dci-train and --dci-estimator (shared by `sweep` and `eval --metrics`)."""
    parser.add_argument("--metric-sizes", choices=("standard", "quick"), default="standard",
                        help="standard: 10,000 train / 5,000 test points, batches of 64; quick: 1,000 / 500 / 32")
    parser.add_argument("--dci-train", type=int, default=None, metavar="N",
                        help="training points for DCI's gradient-boosted trees (default: all train points)")
    parser.add_argument("--dci-estimator", choices=DCI_ESTIMATORS, default=DCI_ESTIMATORS[0],
                        help="DCI's boosted trees: exact (GradientBoostingClassifier, the reference estimator, "
                             "default; one factor per core) or hist (histogram-based, faster, approximate: misreads "
                             "redundant and noisy codes, see docs/metrics.md)")


def metric_sizes_from_args(args: argparse.Namespace) -> MetricSizes:
    """The MetricSizes that `add_metric_size_arguments`' options ask for (ValueError when out of range)."""
    return MetricSizes.named(args.metric_sizes, dci_train_points=args.dci_train, dci_estimator=args.dci_estimator)


def _base_config(args: argparse.Namespace) -> TrainConfig:
    if args.preset:
        try:
            from .presets import load_preset
        except ImportError:
            raise ConfigError("presets are not available in this build; use --config FILE.toml") from None
        return load_preset(args.preset)
    return TrainConfig.load(args.config)


def _metric_names(text: str) -> tuple[str, ...]:
    text = text.strip().lower()
    if text == "all":
        return METRIC_NAMES
    if text in ("none", ""):
        return ()
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in METRIC_NAMES]
    if unknown:
        raise ConfigError(f"unknown metric(s) {', '.join(unknown)}; choose from all, none, {', '.join(METRIC_NAMES)}")
    return names


def make_backend(name: str = "local", parallel: int = 1, address: str | None = None, gpus_per_run: float = 0.0,
                 cpus_per_run: float = 1.0) -> LocalBackend | RayBackend:
    """The backend the `sweep` options (or the app's Sweep tab) ask for; ConfigError for options that do not fit."""
    if name == "local":
        if address or gpus_per_run or cpus_per_run != 1.0:
            raise ConfigError("--address, --gpus-per-run and --cpus-per-run are for --backend ray")
        return LocalBackend(parallel)
    if name == "ray":
        if parallel != 1:
            raise ConfigError("--parallel is for the local backend; on Ray, --cpus-per-run/--gpus-per-run decide "
                              "how many runs share the machines")
        return RayBackend(address, gpus_per_run, cpus_per_run)
    raise ConfigError(f"unknown sweep backend {name!r}; choose {' or '.join(BACKENDS)}")


def cli_sweep(args: argparse.Namespace) -> int:
    """`sweep`: plan, run with a progress bar (Ctrl-C stops after the current step), print the comparison."""
    try:
        base = _base_config(args)
        changes: dict[str, Any] = {}
        if args.dataset:
            changes.update(dataset=args.dataset, fallback=[])
        if args.threads is not None:
            changes["threads"] = args.threads
        if getattr(args, "model_file", None):
            from .models.user_file import load_model_file

            family = load_model_file(args.model_file).family
            if family != base.family:
                changes.update(family=family, hparams={})
        if changes:
            base = base.replace(**changes)
        runs = plan_sweep(base, parse_grid(args.grid), args.seeds, args.out, args.max_steps)
        names = _metric_names(args.metrics)
        sizes = metric_sizes_from_args(args)
        backend = make_backend(args.backend, args.parallel, args.address, args.gpus_per_run, args.cpus_per_run)
        runner = SweepRunner(runs, out_dir=args.out, metrics=names, metric_sizes=sizes, metric_seed=args.metric_seed,
                             iwae_k=args.iwae_k, backend=backend)
    except (ConfigError, DatasetError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"sweep: {len(runs)} run(s) of {base.family} on {base.dataset} ({backend.describe()}) → {args.out}",
          file=sys.stderr)
    control = Control()
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=1000, unit="‰", file=sys.stderr, dynamic_ncols=True, mininterval=0.5)
    done: SweepDone | None = None

    def show(event: SweepProgress) -> None:
        bar.set_description(event.message[:60], refresh=False)
        bar.update(max(0, int(event.fraction * 1000) - bar.n))

    if bar is not None:
        runner.listener = show
    try:
        for event in runner.run(control):
            if isinstance(event, SweepProgress) and bar is not None:
                show(event)
            elif isinstance(event, SweepWarning):
                (bar.write if bar is not None else print)(f"warning: {event.message}")
            elif isinstance(event, RunDone):
                line = _record_line(event.record)
                (bar.write if bar is not None else print)(line)
            elif isinstance(event, SweepDone):
                done = event
    except (ConfigError, RuntimeError) as exc:  # no Ray, a bad cluster address, another sweep's run, a dead cluster
        if bar is not None:
            bar.close()
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    except KeyboardInterrupt:
        control.stop()
        print("interrupted: the sweep stops (finished runs are kept; the same command resumes)", file=sys.stderr)
        return 130
    finally:
        if bar is not None:
            bar.close()
    if done is None:
        return 1
    for kind, path in done.files.items():
        print(f"{kind}: {path}")
    failed = [r for r in done.records if r.get("status") == "failed"]
    return 1 if failed or done.reason != "completed" else 0


def _record_line(record: dict[str, Any]) -> str:
    numbers = [f"{k}={record[k]:.4g}" for k in (*ELBO_KEYS, *SCORE_KEYS) if isinstance(record.get(k), float)]
    return f"{record['run']}: {record.get('status')}  " + "  ".join(numbers) + \
        (f"  ({record['error']})" if record.get("error") else "")


def main(argv: list[str] | None = None) -> int:
    """`python -m engine.sweep …` (the same as `python main.py sweep …`)."""
    parser = argparse.ArgumentParser(prog="python -m engine.sweep")
    sub = parser.add_subparsers(dest="command", required=True)
    add_sweep_parser(sub)
    args = parser.parse_args(["sweep", *(sys.argv[1:] if argv is None else argv)])
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
