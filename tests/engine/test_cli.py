"""The CLI, run as the real `main.py` in a subprocess on the 8×8 digits (few steps)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from engine.checkpoint import load_checkpoint
from engine.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True,
                          cwd=ROOT, env=ENV, timeout=timeout)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "cvae"
    result = cli("train", "--model", "cvae", "--dataset", "digits", "--set", "latent_dim=2", "--set", "hidden=32",
                 "--max-steps", "30", "--batch-size", "64", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "completed at step 30" in result.stdout
    assert "epoch 1 (step 25)" in result.stderr
    return out


def test_train_writes_a_run_folder(run_dir):
    loaded = load_checkpoint(run_dir / "checkpoints" / "last.safetensors")
    assert loaded.step == 30 and loaded.config.family == "cvae" and loaded.meta["hparams"]["latent_dim"] == 2
    assert (run_dir / "config.toml").is_file() and (run_dir / "metrics.jsonl").is_file()
    assert (run_dir / "metrics.csv").read_text().splitlines()[0].startswith("step,epoch,")
    assert sorted(p.name for p in (run_dir / "previews").glob("*samples.png"))


def test_eval_table_and_json(run_dir):
    ckpt = str(run_dir / "checkpoints" / "last.safetensors")
    table = cli("eval", ckpt, "--iwae-k", "20")
    assert table.returncode == 0, table.stderr
    assert "−ELBO" in table.stdout and "NLL (IWAE-20)" in table.stdout and "active units" in table.stdout
    result = cli("eval", ckpt, "--iwae-k", "20", "--iwae-subset", "30", "--json")
    data = json.loads(result.stdout)
    assert data["family"] == "cvae" and data["images"] == 180 and data["iwae_images"] == 30
    assert data["iwae_nll"] < data["neg_elbo"] + 2.0 and len(data["kl_per_dim"]) == 2


def test_sample_traverse_interpolate(run_dir, tmp_path):
    ckpt = str(run_dir / "checkpoints" / "last.safetensors")
    assert cli("sample", ckpt, "--out", str(tmp_path / "s.png"), "--n", "12", "--label", "3", "--cols", "6"
               ).returncode == 0
    assert Image.open(tmp_path / "s.png").size == (6 * 9 + 1, 2 * 9 + 1)
    traverse = cli("traverse", ckpt, "--out", str(tmp_path / "t.gif"), "--steps", "5", "--dims", "1,0")
    assert traverse.returncode == 0, traverse.stderr
    gif = Image.open(tmp_path / "t.gif")
    assert gif.n_frames == 8  # 5 values forth and 3 back
    assert cli("interpolate", ckpt, "--out", str(tmp_path / "i.png"), "--from", "0", "--to", "3", "--steps", "7",
               "--mode", "slerp").returncode == 0
    assert Image.open(tmp_path / "i.png").size == (7 * 9 + 1, 10)


def in_process(capsys, *args: str) -> tuple[int, str, str]:
    """The same entry point without the subprocess start-up (listings and error paths)."""
    from engine.cli import main

    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_listings(capsys):
    code, out, _ = in_process(capsys, "models", "beta-vae")
    assert code == 0 and "beta" in out and "(live)" in out and "KL" in out
    code, out, _ = in_process(capsys, "models", "--json")
    assert {m["family"] for m in json.loads(out)} >= {"ae", "vae", "beta-vae", "vq-vae"}
    datasets = json.loads(in_process(capsys, "datasets", "--json")[1])
    assert any(d["name"] == "digits" and d["status"] == "embedded" for d in datasets)
    presets = in_process(capsys, "presets")[1]
    for name in ("mnist-vae", "dsprites-beta-vae", "dsprites-capacity-vae", "mnist-cvae", "digits-ae", "digits-dae",
                 "mnist-vq-vae"):
        assert name in presets
    code, out, _ = in_process(capsys, "presets", "--show", "mnist-vae")
    assert code == 0 and 'family = "vae"' in out and "latent_dim = 20" in out


def test_errors_are_one_line(tmp_path, capsys, run_dir):
    bad = tmp_path / "bad.toml"
    bad.write_text("[training]\nepochs = 'many'\n")
    assert "epochs must be int" in one_error_line(cli("train", "--config", str(bad), "--out", str(tmp_path / "r")))

    def error_of(*args: str) -> str:
        code, _, err = in_process(capsys, *args)
        lines = err.strip().splitlines()
        assert code != 0 and len(lines) == 1 and lines[0].startswith("error: "), err
        return lines[0]

    ckpt = str(run_dir / "checkpoints" / "last.safetensors")
    assert "not a Latent Explorer checkpoint" in error_of("eval", str(bad))
    assert "cannot open" in error_of("eval", str(tmp_path / "missing.safetensors"))
    assert "unknown hyperparameter 'beta' for vae" in error_of("train", "--model", "vae", "--dataset", "digits",
                                                               "--set", "beta=2", "--out", str(tmp_path / "r"))
    assert "latent_dim must be int" in error_of("train", "--model", "vae", "--dataset", "digits", "--set",
                                                "latent_dim=two", "--out", str(tmp_path / "r"))
    assert "unknown dataset 'nope'" in error_of("train", "--model", "vae", "--dataset", "nope", "--out",
                                                str(tmp_path / "r"))
    assert "unknown preset" in error_of("train", "--preset", "nope", "--out", str(tmp_path / "r"))
    assert "--model FAMILY and --dataset SPEC" in error_of("train", "--out", str(tmp_path / "r"))
    assert "factors" in error_of("eval", ckpt, "--metrics", "all")
    assert "--label must be in 0…9" in error_of("sample", ckpt, "--out", str(tmp_path / "x.png"), "--label", "12")
    assert ".png" in error_of("interpolate", ckpt, "--out", str(tmp_path / "x.jpg"))
    with pytest.raises(SystemExit):
        in_process(capsys, "train", "--preset", "digits-ae")
    assert capsys.readouterr().err.strip().startswith("error: the following arguments are required: --out")


def test_ctrl_c_stops_cleanly_and_saves(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "train", "--preset", "digits-ae",
                             "--max-steps", "1000000", "--quiet", "--out", str(out)], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        metrics = out / "metrics.jsonl"
        while not (metrics.is_file() and metrics.stat().st_size > 0):
            assert time.monotonic() < deadline and proc.poll() is None, "training did not start"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    assert "stopped at step" in stdout and "Traceback" not in stderr
    loaded = load_checkpoint(out / "checkpoints" / "last.safetensors")
    assert loaded.step > 0
    assert not list(out.glob("**/*.tmp"))


@pytest.mark.parametrize("command", [[], ["datasets"], ["models"], ["presets"], ["train"], ["eval"], ["sample"],
                                     ["traverse"], ["interpolate"]])
def test_help_everywhere(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_resume_continues_a_checkpoint(run_dir, tmp_path, capsys):
    out = tmp_path / "more"
    code, stdout, _ = in_process(capsys, "train", "--resume", str(run_dir / "checkpoints" / "last.safetensors"),
                                 "--max-steps", "36", "--quiet", "--out", str(out))
    assert code == 0 and "completed at step 36" in stdout
    assert load_checkpoint(out / "checkpoints" / "last.safetensors").step == 36
    code, _, err = in_process(capsys, "train", "--resume", str(run_dir / "checkpoints" / "last.safetensors"),
                              "--preset", "digits-ae", "--out", str(out))
    assert code == 2 and err.startswith("error: --resume continues a checkpoint")


def test_eval_with_disentanglement_metrics(tmp_path, capsys):
    from engine.config import TrainConfig
    from engine.training import TrainingSession

    config = TrainConfig(dataset="dsprites?subset=600", family="beta-vae", max_steps=3, batch_size=32,
                         hparams={"backbone": "mlp", "hidden": 16, "depth": 1, "latent_dim": 3},
                         out_dir=str(tmp_path / "run"))
    list(TrainingSession(config).run())
    ckpt = str(tmp_path / "run" / "checkpoints" / "last.safetensors")
    code, out, _ = in_process(capsys, "eval", ckpt, "--iwae-k", "0", "--metrics", "mig", "--json")
    result = json.loads(out)
    assert code == 0 and 0.0 <= result["metrics"]["mig"] <= 1.0 and result["iwae_nll"] is None
    code, out, _ = in_process(capsys, "eval", ckpt, "--iwae-k", "0", "--metrics", "mig")
    assert code == 0 and "mig " in out and "rows_represented" not in out
    code, out, _ = in_process(capsys, "eval", ckpt, "--iwae-k", "0", "--metrics", "mig", "--metric-sizes", "quick",
                              "--dci-estimator", "exact", "--json")
    sizes = json.loads(out)["metrics"]["sizes"]
    assert code == 0 and sizes["train_points"] == 1_000 and sizes["dci_estimator"] == "exact"
    code, out, err = in_process(capsys, "eval", ckpt, "--iwae-k", "0", "--metrics", "dci", "--dci-train", "5")
    assert code != 0 and out == "" and "dci_train_points" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("preset", "dataset"), [("dsprites-position", None),
                                                  ("dsprites-disentangle", "dsprites?subset=1500")])
def test_disentangling_presets_train_across_epoch_ends(preset, dataset, tmp_path, capsys):
    """The first-run presets (β-TCVAE, stratified TC, broadcast decoder) through epoch ends, previews, a checkpoint
    and an evaluation with MIG; their loss falls."""
    out = tmp_path / preset
    args = ["train", "--preset", preset, "--max-steps", "30", "--batch-size", "64", "--threads", "1", "--quiet",
            "--out", str(out)] + (["--dataset", dataset] if dataset else [])
    assert in_process(capsys, *args)[0] == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in rows if r["kind"] == "epoch"]
    steps = [r["terms"]["total"] for r in rows if r["kind"] == "step"]
    assert len(epochs) >= 2 and steps[-1] < steps[0]
    assert list((out / "previews").glob("*.png")) and (out / "checkpoints" / "last.safetensors").is_file()
    code, text, _ = in_process(capsys, "eval", str(out / "checkpoints" / "last.safetensors"), "--iwae-k", "0",
                               "--metrics", "mig", "--metric-sizes", "quick", "--json")
    assert code == 0 and 0.0 <= json.loads(text)["metrics"]["mig"] <= 1.0


def test_another_family_on_a_preset_keeps_the_preset_s_network_not_its_own_terms():
    """`--preset P --model F` trains F on P's network and likelihood; P's family terms (β, γ, the TC estimator)
    and its description do not carry over (γ means a weight in β-TCVAE and a capacity penalty in capacity-vae)."""
    from engine.cli import build_parser, train_config
    from engine.presets import load_preset

    preset = load_preset("noisy-dsprites-disentangle")
    args = build_parser("train").parse_args(["train", "--preset", "noisy-dsprites-disentangle", "--model",
                                             "capacity-vae", "--set", "c_max=10", "--out", "x"])
    config = train_config(args)
    assert config.family == "capacity-vae" and config.description == ""
    for name in ("latent_dim", "backbone", "hidden", "decoder", "broadcast_width", "likelihood", "sigma"):
        assert config.hparams[name] == preset.hparams[name], name
    assert config.hparams["c_max"] == 10
    assert "gamma" not in config.hparams and "beta" not in config.hparams and "estimator" not in config.hparams
    same = train_config(build_parser("train").parse_args(["train", "--preset", "noisy-dsprites-disentangle",
                                                          "--out", "x"]))
    assert same.hparams == preset.hparams and same.description == preset.description
