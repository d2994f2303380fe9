"""The runner: `SweepRunner(runs, backend=...).run(control)` skips runs already complete, trains the rest on a
backend, yields their events and writes the summary at the end; `make_backend` builds the backend options ask for."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..control import Control
from ..data import Dataset
from ..errors import ConfigError
from ..metrics import METRIC_NAMES, MetricSizes
from .backend_local import LocalBackend
from .backend_ray import RayBackend
from .events import RunDone, SweepDone, SweepEvent, SweepProgress, SweepWarning
from .job import RunJob, completed_record
from .planning import SweepRun
from .summary import write_json_atomically, write_summary

BACKENDS = ("local", "ray")


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
        write_json_atomically(self.out_dir / "sweep.json", doc)


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
