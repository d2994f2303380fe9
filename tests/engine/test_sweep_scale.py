"""Sweeps beyond one process: local parallel processes, resuming a killed sweep, clear errors for Ray problems.
(The Ray backend itself is tested in test_sweep_ray.py, with one Ray instance for the module.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.config import TrainConfig
from engine.errors import ConfigError
from engine.sweep import (
    LocalBackend,
    RayBackend,
    RunDone,
    SweepDone,
    SweepProgress,
    SweepRunner,
    SweepWarning,
    main,
    make_backend,
    parse_grid,
    plan_sweep,
)

ROOT = Path(__file__).resolve().parents[2]
TINY = {"latent_dim": 3, "backbone": "mlp", "hidden": 16, "depth": 1}
NUMBERS = ("run", "beta", "seed", "status", "steps", "neg_elbo", "recon", "kl", "active_units")


def tiny_config(**changes) -> TrainConfig:
    config = TrainConfig(dataset="digits", family="beta-vae", hparams=dict(TINY), batch_size=32, threads=1,
                         preview_every_s=60.0)
    return config.replace(**changes)


def rows(records) -> list[dict]:
    return [{k: r.get(k) for k in NUMBERS} for r in records]


def assert_same_rows(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(rows(a), rows(b), strict=True):
        for key in NUMBERS:
            if isinstance(x[key], float):
                assert x[key] == pytest.approx(y[key], rel=1e-6), key
            else:
                assert x[key] == y[key], key


@pytest.mark.slow
def test_local_parallel_sweep_runs_two_processes_with_the_sequential_results(tmp_path):
    grid = parse_grid("beta=1,4")
    parallel_runs = plan_sweep(tiny_config(), grid, out_dir=tmp_path / "parallel", max_steps=8)
    events = list(SweepRunner(parallel_runs, out_dir=tmp_path / "parallel", metrics=(), traversals=False,
                              backend=LocalBackend(parallel=2)).run())
    done = events[-1]
    assert isinstance(done, SweepDone) and done.reason == "completed"
    assert sorted(e.run_index for e in events if isinstance(e, RunDone)) == [0, 1]
    progress = [e for e in events if isinstance(e, SweepProgress)]
    assert {e.run_index for e in progress} == {0, 1} and all(0.0 <= e.fraction <= 1.0 for e in progress)
    assert [r["status"] for r in done.records] == ["completed", "completed"]
    assert (tmp_path / "parallel" / "summary.csv").is_file()
    sequential_runs = plan_sweep(tiny_config(), grid, out_dir=tmp_path / "sequential", max_steps=8)
    sequential = list(SweepRunner(sequential_runs, out_dir=tmp_path / "sequential", metrics=(),
                                  traversals=False).run())[-1]
    assert_same_rows(done.records, sequential.records)


@pytest.mark.slow
def test_a_killed_sweep_resumes_and_skips_its_completed_runs(tmp_path):
    out = tmp_path / "sweep"
    config = tmp_path / "base.toml"
    config.write_text(tiny_config().to_toml())
    args = [sys.executable, "main.py", "sweep", "--config", str(config), "--grid", "beta=1,2,4", "--max-steps", "400",
            "--metrics", "none", "--quiet", "--out", str(out)]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    first = out / "beta=1_seed0" / "result.json"
    second = out / "beta=2_seed0" / "metrics.jsonl"
    try:
        deadline = time.monotonic() + 120
        while not (first.is_file() and second.is_file()) and time.monotonic() < deadline:
            assert proc.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.2)
        assert first.is_file(), "the first run did not finish in time"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    kept = first.read_text()
    assert not (out / "beta=4_seed0" / "result.json").is_file() and not (out / "summary.csv").exists()

    runs = plan_sweep(tiny_config(), parse_grid("beta=1,2,4"), out_dir=out, max_steps=400)
    events = list(SweepRunner(runs, out_dir=out, metrics=(), traversals=False).run())
    skipped = [e.message for e in events if isinstance(e, SweepWarning) and "skipped" in e.message]
    assert len(skipped) == 1 and "beta=1_seed0" in skipped[0]
    started = {e.run_index for e in events if isinstance(e, SweepProgress) and e.stage == "train"}
    assert started == {1, 2}, "only the runs that were not complete are trained"
    assert first.read_text() == kept
    done = events[-1]
    assert [r["status"] for r in done.records] == ["completed"] * 3 and done.reason == "completed"
    steps = [json.loads(line)["step"] for line in second.read_text().splitlines() if '"kind": "step"' in line]
    assert steps == list(range(1, 401)), "the killed run was retrained from scratch, not appended to"
    assert len((out / "summary.csv").read_text().splitlines()) == 4


def test_a_completed_run_with_other_settings_is_never_overwritten(tmp_path):
    runs = plan_sweep(tiny_config(), {"beta": [1.0]}, out_dir=tmp_path, max_steps=2)
    list(SweepRunner(runs, out_dir=tmp_path, metrics=(), traversals=False).run())
    before = (tmp_path / runs[0].name / "result.json").read_text()
    other = plan_sweep(tiny_config(lr=0.01), {"beta": [1.0]}, out_dir=tmp_path, max_steps=2)
    with pytest.raises(ConfigError, match="other settings"):
        next(SweepRunner(other, out_dir=tmp_path, metrics=(), traversals=False).run())
    assert (tmp_path / runs[0].name / "result.json").read_text() == before


def test_missing_ray_is_one_clear_error_and_nothing_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` does where Ray is not installed
    runs = plan_sweep(tiny_config(), {"beta": [1.0]}, out_dir=tmp_path / "sweep", max_steps=2)
    with pytest.raises(ConfigError, match=r"pip install -e '\.\[cluster\]'"):
        next(SweepRunner(runs, out_dir=tmp_path / "sweep", metrics=(), backend=RayBackend()).run())
    assert not (tmp_path / "sweep").exists()
    config = tmp_path / "base.toml"
    config.write_text(tiny_config().to_toml())
    code = main(["--config", str(config), "--grid", "beta=1", "--max-steps", "2", "--metrics", "none", "--quiet",
                 "--backend", "ray", "--out", str(tmp_path / "cli")])
    assert code == 2
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        "error: the ray backend needs Ray, which is not installed here: pip install -e '.[cluster]' (or pip install "
        "ray)"]
    assert not (tmp_path / "cli").exists()


@pytest.mark.parametrize("address, message", [("not an address", "not a Ray address"),
                                              ("10.0.0.1", "not a Ray address"),
                                              ("127.0.0.1:1", "cannot reach a Ray cluster at 127.0.0.1:1")])
def test_a_bad_ray_address_is_a_clear_error_and_nothing_is_written(tmp_path, capsys, address, message):
    pytest.importorskip("ray")
    config = tmp_path / "base.toml"
    config.write_text(tiny_config().to_toml())
    code = main(["--config", str(config), "--grid", "beta=1", "--max-steps", "2", "--metrics", "none", "--quiet",
                 "--backend", "ray", "--address", address, "--out", str(tmp_path / "sweep")])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "sweep").exists()


def test_backend_options_that_do_not_fit_are_refused():
    assert isinstance(make_backend("local", parallel=3), LocalBackend)
    with pytest.raises(ConfigError, match="for --backend ray"):
        make_backend("local", address="auto")
    with pytest.raises(ConfigError, match="for --backend ray"):
        make_backend("local", gpus_per_run=0.5)
    with pytest.raises(ConfigError, match="--parallel is for the local backend"):
        make_backend("ray", parallel=2)
    with pytest.raises(ConfigError, match="--parallel must be"):
        LocalBackend(0)
    with pytest.raises(ConfigError, match="--gpus-per-run"):
        RayBackend(gpus_per_run=-1)
    with pytest.raises(ConfigError, match="--cpus-per-run"):
        RayBackend(cpus_per_run=0)
