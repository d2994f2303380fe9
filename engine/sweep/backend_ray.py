"""The Ray backend: every run of a sweep a Ray task, on a local Ray instance or an existing cluster; a channel actor
carries events up to the driver and the stop flag down to the tasks."""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..control import Control
from ..data import Dataset
from ..errors import ConfigError
from .events import RunDone, SweepEvent
from .job import RunJob, crashed_record, run_reporting

if TYPE_CHECKING:
    from .runner import SweepRunner

STOP_POLL_S = 0.5  # how often a Ray task asks whether the sweep was stopped


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
        engine_dir = Path(__file__).resolve().parents[1]  # engine/
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
                        outcome = (crashed_record(job, f"the Ray task failed: {_last_line(exc)}"), None)
                    if outcome is not None:
                        yield from ray.get(channel.drain.remote())
                        yield RunDone(job.run.index, outcome[0], outcome[1])
        finally:
            for ref in refs:
                ray.cancel(ref)
            with contextlib.suppress(ray.exceptions.RayError):
                ray.kill(channel)


def _asked_to_stop(channel: Any) -> bool:
    """The channel's stop flag, awaited as a Python future: a task blocked in `ray.get` lends its CPU back to Ray,
    which then starts queued runs beside it (4 runs at once on 2 CPUs), while a future's wait holds it."""
    return bool(channel.stopped.remote().future().result())


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

    if _asked_to_stop(channel):
        return None
    control = Control()
    done = threading.Event()

    def watch() -> None:
        while not done.wait(STOP_POLL_S):
            if _asked_to_stop(channel):
                control.stop()
                return

    watcher = threading.Thread(target=watch, name="sweep-stop-watch", daemon=True)
    watcher.start()
    try:
        return run_reporting(job, control, lambda event: channel.push.remote(event), _RAY_DATASETS)
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
