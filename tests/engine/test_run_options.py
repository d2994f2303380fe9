"""The run options of issue 13: precision, compile mode, deterministic, metrics_every, device choice, and what
resuming says when a change breaks bit-exactness."""

from __future__ import annotations

import json

import pytest
import torch

from engine.checkpoint import load_checkpoint
from engine.cli import main
from engine.config import TrainConfig
from engine.device import local_rank, resolve_device
from engine.errors import ConfigError
from engine.events import Finished, StepMetrics
from engine.training import TrainingSession

TINY = ["--set", "latent_dim=3", "--set", "hidden=24", "--set", "depth=1", "--dataset", "digits", "--quiet"]


def test_new_options_round_trip_through_toml(tmp_path):
    config = TrainConfig(precision="bf16", compile=True, compile_mode="reduce-overhead", deterministic=True,
                         metrics_every=0, device="cuda:1")
    path = tmp_path / "run.toml"
    path.write_text(config.to_toml())
    loaded = TrainConfig.load(path)
    assert (loaded.precision, loaded.compile_mode, loaded.deterministic, loaded.device) == (
        "bf16", "reduce-overhead", True, "cuda:1")


@pytest.mark.parametrize("changes, message", [
    ({"precision": "fp16"}, "precision must be one of fp32, bf16"),
    ({"compile_mode": "fast"}, "compile_mode must be one of default, reduce-overhead, max-autotune"),
    ({"deterministic": "yes"}, "deterministic must be true or false"),
    ({"metrics_every": -1}, "metrics_every must be in [0, 1e+06]"),
])
def test_bad_options_are_clear_errors(changes, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("+", r"\+")):
        TrainConfig(**changes)


def test_metrics_every_auto_is_one_on_the_cpu():
    session = TrainingSession(TrainConfig(dataset="digits", family="ae", device="cpu", max_steps=3,
                                          hparams={"latent_dim": 2, "hidden": 16, "depth": 1}))
    assert session.metrics_every == 1
    assert [e.step for e in session.run() if isinstance(e, StepMetrics)] == [1, 2, 3]


def test_bf16_deterministic_run_via_the_cli(tmp_path, capsys):
    out = tmp_path / "bf16"
    status = main(["train", "--model", "vq-vae", *TINY, "--set", "positions=2", "--set", "codebook_size=8",
                   "--max-steps", "30", "--batch-size", "64", "--precision", "bf16", "--deterministic",
                   "--metrics-every", "7", "--device", "cpu", "--out", str(out)])
    assert status == 0, capsys.readouterr().err
    stored = TrainConfig.load(out / "config.toml")
    assert stored.precision == "bf16" and stored.deterministic and stored.metrics_every == 7
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "step"]
    assert steps == [7, 14, 21, 25, 28, 30]  # every 7 steps, and at the epoch end (25) and the last step
    loaded = load_checkpoint(out / "checkpoints" / "last.safetensors")
    assert all(t.dtype != torch.bfloat16 for t in loaded.model.state_dict().values())  # weights stay fp32
    torch.use_deterministic_algorithms(False)


def test_resume_says_when_a_change_breaks_exactness(tmp_path):
    config = TrainConfig(dataset="digits", family="vae", device="cpu", max_steps=4, out_dir=str(tmp_path / "run"),
                         hparams={"latent_dim": 2, "hidden": 16, "depth": 1})
    events = list(TrainingSession(config).run())
    assert isinstance(events[-1], Finished)
    checkpoint = tmp_path / "run" / "checkpoints" / "last.safetensors"
    same = TrainingSession.from_checkpoint(checkpoint, max_steps=6)
    assert not same.warnings
    changed = TrainingSession.from_checkpoint(checkpoint, max_steps=6, compile=True, precision="bf16")
    assert len(changed.warnings) == 1 and "not bit-exactly" in changed.warnings[0]
    assert "compile False → True" in changed.warnings[0] and "precision 'fp32' → 'bf16'" in changed.warnings[0]


def test_local_rank_picks_the_gpu_and_bad_values_are_errors(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert local_rank() == 3
    monkeypatch.setenv("LOCAL_RANK", "x")
    with pytest.raises(ConfigError, match="LOCAL_RANK"):
        local_rank()
    monkeypatch.delenv("LOCAL_RANK")
    assert local_rank() == 0
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ConfigError, match="no usable CUDA GPU"):
        resolve_device("cuda:1")
