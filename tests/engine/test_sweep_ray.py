"""The Ray backend on a local Ray instance (2 CPUs), started once for the module (start-up takes ~10 s here)."""

from __future__ import annotations

import pytest

from engine.control import Control
from engine.sweep import RayBackend, RunDone, SweepDone, SweepProgress, SweepRunner, parse_grid, plan_sweep
from tests.engine.test_sweep_scale import NUMBERS, tiny_config

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_instance():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_ray_sweep_gives_the_local_backends_rows(ray_instance, tmp_path):
    grid = parse_grid("beta=1,4")
    ray_runs = plan_sweep(tiny_config(), grid, seeds=1, out_dir=tmp_path / "ray", max_steps=8)
    backend = RayBackend(cpus_per_run=1)
    events = list(SweepRunner(ray_runs, out_dir=tmp_path / "ray", metrics=(), backend=backend).run())
    done = events[-1]
    assert isinstance(done, SweepDone) and done.reason == "completed"
    assert ray.is_initialized(), "an instance the backend found running is left running"
    assert sorted(e.run_index for e in events if isinstance(e, RunDone)) == [0, 1]
    assert {e.run_index for e in events if isinstance(e, SweepProgress)} == {0, 1}, "per-run progress from tasks"
    for name in ("summary.csv", "summary.json", "rate_distortion.png"):
        assert (tmp_path / "ray" / name).is_file()
    assert all((tmp_path / "ray" / run.name / "traversal.png").is_file() for run in ray_runs)

    local_runs = plan_sweep(tiny_config(), grid, seeds=1, out_dir=tmp_path / "local", max_steps=8)
    local = list(SweepRunner(local_runs, out_dir=tmp_path / "local", metrics=()).run())[-1]
    assert len(done.records) == len(local.records) == 2
    for a, b in zip(done.records, local.records, strict=True):
        for key in NUMBERS:
            if isinstance(b[key], float):
                assert a[key] == pytest.approx(b[key], rel=1e-6), key
            else:
                assert a[key] == b[key], key


@pytest.mark.slow
def test_stopping_a_ray_sweep_stops_the_runs_in_flight(ray_instance, tmp_path):
    runs = plan_sweep(tiny_config(), parse_grid("beta=1,2,4,8"), out_dir=tmp_path, max_steps=100_000)
    control = Control()
    events = []
    for event in SweepRunner(runs, out_dir=tmp_path, metrics=(), traversals=False,
                             backend=RayBackend()).run(control):
        events.append(event)
        if isinstance(event, SweepProgress) and event.step >= 5:
            control.stop()
    done = events[-1]
    assert isinstance(done, SweepDone) and done.reason == "stopped"
    assert done.records and all(r["status"] == "stopped" and r["steps"] < 100_000 for r in done.records)
    assert len(done.records) <= 2, "runs that had not started are not started after the stop"


@pytest.mark.slow
def test_a_ray_sweep_runs_no_more_runs_at_once_than_the_instance_has_cpus(ray_instance, tmp_path):
    """Four 1-CPU runs on 2 CPUs: never more than two at once (each run's span: its folder's config.toml, written as
    it starts, to its last checkpoint). A run task that blocked in `ray.get` to read the stop flag lent its CPU back
    to Ray, which started the queued runs beside it."""
    runs = plan_sweep(tiny_config(), parse_grid("beta=1,2,4,8"), out_dir=tmp_path, max_steps=3000)
    events = list(SweepRunner(runs, out_dir=tmp_path, metrics=(), traversals=False, backend=RayBackend()).run())
    assert isinstance(events[-1], SweepDone) and events[-1].reason == "completed"
    spans = [((tmp_path / run.name / "config.toml").stat().st_mtime_ns,
              (tmp_path / run.name / "checkpoints" / "last.safetensors").stat().st_mtime_ns) for run in runs]
    at_once = max(sum(start <= t < end for start, end in spans) for t, _ in spans)
    assert at_once <= 2, spans
