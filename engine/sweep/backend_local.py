"""The local backend: a sweep's runs on this machine, one after another in this process, or K at a time in spawned
worker processes that send their events back through a queue."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..control import Control
from ..data import Dataset
from ..errors import ConfigError
from .events import RunDone, SweepEvent
from .job import RunJob, crashed_record, run_job, run_reporting

if TYPE_CHECKING:
    from .runner import SweepRunner

MAX_PARALLEL = 64


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
        from ..models.user_file import user_sources

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
                            outcome = (crashed_record(job, f"its worker process died ({exc})"), None)
                        except Exception as exc:  # an unexpected error inside the worker: recorded, the sweep goes on
                            outcome = (crashed_record(job, f"{type(exc).__name__}: {exc}"), None)
                        if outcome is not None:
                            yield RunDone(job.run.index, outcome[0], outcome[1])
            finally:
                stop.set()
                for future in futures:
                    future.cancel()
        events.close()


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
    from ..models.user_file import rerun_sources

    rerun_sources(model_files)


def _worker_job(job: RunJob) -> tuple[dict[str, Any], np.ndarray | None] | None:
    """One run in a local worker process: events go to the parent's queue (progress at most 4 per second)."""
    control = _SharedStopControl(_WORKER["stop"])
    if control.stopped:
        return None
    events = _WORKER["events"]
    return run_reporting(job, control, events.put, _WORKER["datasets"])
