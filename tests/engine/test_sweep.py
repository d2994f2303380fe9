"""Sweeps: grid parsing, planning, the runner (digits and tiny dSprites, a few steps), summary files, the CLI."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from engine.config import TrainConfig
from engine.control import Control
from engine.data import load_dataset
from engine.errors import ConfigError
from engine.metrics import MetricSizes
from engine.sweep import (
    RunDone,
    SweepDone,
    SweepProgress,
    SweepRunner,
    load_summary,
    main,
    parse_grid,
    plan_sweep,
    rate_distortion_figure,
    rate_distortion_points,
)

TINY_HPARAMS = {"latent_dim": 3, "backbone": "mlp", "hidden": 16, "depth": 1}


def tiny_config(**changes) -> TrainConfig:
    base = TrainConfig(dataset="digits", family="beta-vae", hparams=dict(TINY_HPARAMS), max_steps=4, batch_size=32,
                       preview_every_s=60.0)
    return base.replace(**changes)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


# --- grid and plan ------------------------------------------------------------------------------------------
def test_parse_grid_values_and_several_parameters():
    assert parse_grid("beta=1,2,4,8") == {"beta": [1, 2, 4, 8]}
    grid = parse_grid(["beta=0.5, 4", "latent_dim=6;lr=1e-3"])
    assert grid == {"beta": [0.5, 4], "latent_dim": [6], "lr": [0.001]}
    assert parse_grid("likelihood=bernoulli,gaussian") == {"likelihood": ["bernoulli", "gaussian"]}


@pytest.mark.parametrize("text", ["beta", "beta=", "=1,2", "beta=1,1", "beta=1;beta=2", "", "beta=inf"])
def test_parse_grid_rejects_bad_input(text):
    with pytest.raises(ConfigError):
        parse_grid(text)


def test_plan_is_grid_product_times_seeds(tmp_path):
    runs = plan_sweep(tiny_config(seed=3), parse_grid("beta=1,4;latent_dim=2,5"), seeds=2, out_dir=tmp_path,
                      max_steps=7)
    assert len(runs) == 8
    assert [r.index for r in runs] == list(range(8))
    first = runs[0]
    assert first.name == "beta=1_latent_dim=2_seed3" and first.seed == 3 and runs[1].seed == 4
    assert first.config.hparams["beta"] == 1 and first.config.hparams["latent_dim"] == 2
    assert first.config.max_steps == 7 and first.config.out_dir == str(tmp_path / first.name)
    assert len({r.config.out_dir for r in runs}) == 8
    assert runs[-1].config.hparams == {**TINY_HPARAMS, "beta": 4, "latent_dim": 5}


def test_plan_rejects_unknown_parameters_and_bad_values():
    with pytest.raises(ConfigError, match="cannot sweep gamma"):
        plan_sweep(tiny_config(), {"gamma": [1.0]})
    with pytest.raises(ConfigError):
        plan_sweep(tiny_config(), {"beta": [-1.0]})
    with pytest.raises(ConfigError, match="seeds"):
        plan_sweep(tiny_config(), {"beta": [1.0]}, seeds=0)


# --- the runner ---------------------------------------------------------------------------------------------
def test_runner_trains_each_run_in_its_folder_and_writes_the_comparison(tmp_path, digits):
    out = tmp_path / "sweep"
    runs = plan_sweep(tiny_config(), parse_grid("beta=1,8"), out_dir=out, max_steps=6)
    events = list(SweepRunner(runs, dataset=digits, out_dir=out, metrics=()).run())
    done = events[-1]
    assert isinstance(done, SweepDone) and done.reason == "completed"
    assert [e.run_index for e in events if isinstance(e, RunDone)] == [0, 1]
    fractions = [e.fraction for e in events if isinstance(e, SweepProgress)]
    assert fractions == sorted(fractions) and 0.0 <= fractions[0] and fractions[-1] <= 1.0
    for record, run in zip(done.records, runs, strict=True):
        assert record["status"] == "completed" and record["steps"] == 6
        assert record["neg_elbo"] == pytest.approx(record["recon"] + record["kl"], rel=1e-6)
        assert 0 <= record["active_units"] <= 3
        folder = out / run.name
        assert (folder / "checkpoints" / "last.safetensors").is_file()
        assert (folder / "traversal.png").is_file()
        assert json.loads((folder / "result.json").read_text())["beta"] == run.values["beta"]
    with open(out / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [row["beta"] for row in rows] == ["1", "8"]
    assert float(rows[1]["kl"]) == pytest.approx(done.records[1]["kl"], rel=1e-5)
    assert (out / "rate_distortion.png").is_file()
    assert load_summary(out)[0]["run"] == runs[0].name


def test_runner_scores_a_factor_dataset(tmp_path):
    dsprites = load_dataset("dsprites?subset=3000")
    config = TrainConfig(dataset="dsprites", family="beta-vae", hparams=dict(TINY_HPARAMS), batch_size=32,
                         preview_every_s=60.0)
    runs = plan_sweep(config, {"beta": [4.0]}, max_steps=3)
    sizes = MetricSizes(train_points=200, test_points=100, batch_size=8, variance_points=200)
    seen: list[SweepProgress] = []
    # DCI is left out: its gradient-boosted trees (113 factor classes × 100 stages) take ~30 s even on 200 points
    runner = SweepRunner(runs, dataset=dsprites, metrics=("beta_vae", "factor_vae", "mig", "sap"), metric_sizes=sizes,
                         traversals=False, listener=seen.append)
    done = list(runner.run())[-1]
    record = done.records[0]
    assert "dci_disentanglement" not in record
    for key in ("beta_vae", "factor_vae", "mig", "sap"):
        assert 0.0 <= record[key] <= 1.0, key
    assert np.asarray(record["mi_matrix"]).shape == (3, 5)
    assert record["metric_sizes"]["train_points"] == 200
    assert seen and all(e.stage == "metrics" for e in seen) and seen[-1].run_fraction <= 1.0


def test_stop_ends_the_current_run_and_skips_the_rest(tmp_path, digits):
    runs = plan_sweep(tiny_config(), parse_grid("beta=1,2,4"), out_dir=tmp_path, max_steps=200)
    control = Control()
    events = []
    for event in SweepRunner(runs, dataset=digits, out_dir=tmp_path, metrics=()).run(control):
        events.append(event)
        if isinstance(event, SweepProgress) and event.step >= 3:
            control.stop()
    done = events[-1]
    assert isinstance(done, SweepDone) and done.reason == "stopped"
    assert len(done.records) == 1 and done.records[0]["status"] == "stopped"
    assert done.records[0]["steps"] < 200
    assert not (tmp_path / runs[1].name).exists()


def test_a_failing_run_is_recorded_and_the_sweep_goes_on(tmp_path, digits):
    runs = plan_sweep(tiny_config(), parse_grid("batch_size=32"), max_steps=2)
    broken = runs[0].config.replace(dataset="no-such-dataset")
    bad_run = type(runs[0])(0, "broken", {"beta": 1}, 0, broken)
    good_run = type(runs[0])(1, "good", {"beta": 1}, 0, runs[0].config)
    done = list(SweepRunner([bad_run, good_run], metrics=(), traversals=False).run())[-1]
    assert [r["status"] for r in done.records] == ["failed", "completed"]
    assert "no-such-dataset" in done.records[0]["error"]


# --- the figure and the CLI ------------------------------------------------------------------------------------
def test_rate_distortion_figure_draws_every_point():
    records = [{"run": "a", "beta": 1, "seed": 0, "kl": 20.0, "recon": 30.0},
               {"run": "b", "beta": 8, "seed": 0, "kl": 5.0, "recon": 60.0},
               {"run": "c", "beta": 4, "seed": 0, "status": "failed"}]
    points = rate_distortion_points(records)
    assert [p[2] for p in points] == ["β=1", "β=8"]
    image = rate_distortion_figure(points)
    assert image.dtype == np.uint8 and image.shape == (520, 720, 3) and image.flags.c_contiguous
    blue = (image[..., 2] > 150) & (image[..., 0] < 80)
    assert blue.sum() > 2 * 50  # two filled markers


def test_load_summary_rejects_other_files(tmp_path):
    (tmp_path / "x.json").write_text('{"a": 1}')
    with pytest.raises(ConfigError, match="not a sweep summary"):
        load_summary(tmp_path / "x.json")
    with pytest.raises(ConfigError):
        load_summary(tmp_path / "missing")


def test_cli_sweep_runs_and_reports_bad_input(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text(tiny_config().to_toml())
    out = tmp_path / "cli"
    code = main(["--config", str(config), "--grid", "beta=1,2", "--max-steps", "3", "--out", str(out),
                 "--metrics", "none", "--quiet"])
    assert code == 0
    assert len(load_summary(out)) == 2
    assert "summary.csv" in capsys.readouterr().out
    assert main(["--config", str(config), "--grid", "beta", "--out", str(out), "--quiet"]) == 2
    assert "expected NAME=V1,V2" in capsys.readouterr().err
    assert main(["--config", str(config), "--grid", "beta=1", "--out", str(out), "--metrics", "bogus"]) == 2


def test_sweep_is_a_subcommand_of_main_py(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    config = tmp_path / "run.toml"
    config.write_text(tiny_config().to_toml())
    out = tmp_path / "via-main"
    done = subprocess.run([sys.executable, str(root / "main.py"), "sweep", "--config", str(config), "--grid",
                           "beta=1,4", "--max-steps", "2", "--out", str(out), "--metrics", "none", "--quiet"],
                          capture_output=True, text=True, timeout=240, cwd=root)
    assert done.returncode == 0, done.stderr
    assert [r["beta"] for r in load_summary(out)] == [1, 4]
