"""Training session: events, controls, NaN guard, exact resume, run folder, snapshots (tiny models on digits)."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import torch

from engine.checkpoint import load_checkpoint
from engine.config import TrainConfig
from engine.control import Control
from engine.data import load_dataset
from engine.events import (
    CheckpointWritten,
    EpochSummary,
    Failed,
    Finished,
    Paused,
    Preview,
    Resumed,
    StepMetrics,
    Warning_,
)
from engine.run_folder import write_metrics_csv
from engine.training import TrainingSession

TINY = {"latent_dim": 3, "hidden": 24, "depth": 1}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def config(**changes) -> TrainConfig:
    base = TrainConfig(dataset="digits", family="vae", hparams=dict(TINY), max_steps=20, batch_size=64)
    return base.replace(**changes)


def totals(events) -> list[float]:
    return [e.terms["total"] for e in events if isinstance(e, StepMetrics)]


def test_events_of_a_short_run(digits):
    session = TrainingSession(config(max_steps=30, preview_every_s=60.0), digits)
    events = list(session.run())
    steps = [e for e in events if isinstance(e, StepMetrics)]
    assert [e.step for e in steps] == list(range(1, 31))
    assert {"total", "recon", "kl"} <= set(steps[0].terms)
    assert all(isinstance(v, float) for e in steps for v in e.terms.values())
    assert steps[-1].live["lr"] == pytest.approx(1e-3) and steps[-1].progress == pytest.approx(1.0)
    assert steps[-1].terms["total"] < steps[0].terms["total"]
    summaries = [e for e in events if isinstance(e, EpochSummary)]
    assert [s.epoch for s in summaries] == [1, 2]  # 25 steps per epoch (1617 // 64), then a partial epoch
    assert set(summaries[0].test) >= {"total", "recon", "kl"} and len(summaries[0].kl_per_dim) == 3
    previews = [e for e in events if isinstance(e, Preview)]
    assert previews, "epoch ends always produce a preview"
    for grid in (previews[-1].reconstructions, previews[-1].samples, previews[-1].traversal):
        assert grid.dtype == np.uint8 and grid.flags.c_contiguous and grid.ndim == 2
    assert previews[-1].traversal.shape[0] == 3 * 9 + 1  # three latent dims, 8×8 images with 1 px padding
    assert isinstance(events[-1], Finished) and events[-1].reason == "completed" and events[-1].step == 30
    assert not any(isinstance(e, Failed | Warning_) for e in events)
    assert session.step == 30 and session.epoch == 1
    assert [r["kind"] for r in session.history].count("epoch") == 2


def test_seeded_runs_repeat_exactly(digits):
    assert totals(TrainingSession(config(), digits).run()) == totals(TrainingSession(config(), digits).run())
    assert totals(TrainingSession(config(seed=1), digits).run()) != totals(TrainingSession(config(), digits).run())


def test_resume_is_exact(digits, tmp_path):
    cfg = config(max_steps=40, batch_size=100)  # 16 steps per epoch: the resume point (23) is mid-epoch 2
    straight = totals(TrainingSession(cfg, digits).run())
    first = TrainingSession(cfg.replace(max_steps=23), digits)
    before = totals(first.run())
    path = first.save_checkpoint(tmp_path / "mid.safetensors")
    resumed = TrainingSession.from_checkpoint(path, max_steps=40)
    assert resumed.step == 23 and resumed.epoch == 1
    after = totals(resumed.run())
    assert len(before) + len(after) == len(straight) == 40
    np.testing.assert_allclose(before + after, straight, rtol=1e-6, atol=1e-6)


def test_resume_refuses_changes_that_break_it(digits, tmp_path):
    session = TrainingSession(config(max_steps=2), digits)
    list(session.run())
    path = session.save_checkpoint(tmp_path / "a.safetensors")
    from engine.errors import ConfigError

    with pytest.raises(ConfigError, match="batch_size"):
        TrainingSession.from_checkpoint(path, batch_size=7)


def run_in_thread(session, control):
    events: list = []
    worker = threading.Thread(target=lambda: events.extend(session.run(control)), name="session")
    worker.start()
    return worker, events


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_pause_stops_steps_and_live_changes_are_echoed(digits):
    session = TrainingSession(config(family="beta-vae", max_steps=100_000, preview_every_s=60.0), digits)
    control = Control()
    worker, events = run_in_thread(session, control)
    try:
        wait_for(lambda: session.step >= 3)
        running_copy = session.snapshot_model()  # while the worker thread is stepping
        assert not running_copy.training and running_copy.hparams["beta"] == 4.0
        control.pause()
        wait_for(lambda: any(isinstance(e, Paused) for e in events))
        held = session.step
        time.sleep(0.3)
        assert session.step == held
        snapshot = session.snapshot_model()  # from another thread, while the session is paused
        assert not snapshot.training and not any(p.requires_grad for p in snapshot.parameters())
        for name, value in session.model.state_dict().items():
            torch.testing.assert_close(snapshot.state_dict()[name], value)
        control.request_checkpoint()  # saving works while paused
        wait_for(lambda: any(isinstance(e, Warning_) and "no run folder" in e.message for e in events))
        control.set("beta", 2.5)
        control.set("lr", 5e-4)
        control.set("latent_dim", 7)  # not live: a warning, training goes on
        control.resume()
        wait_for(lambda: session.step >= held + 3)
        control.stop()
    finally:
        control.stop()
        worker.join(10)
    kinds = [type(e) for e in events]
    assert Resumed in kinds and kinds.index(Resumed) > kinds.index(Paused)
    after = [e for e in events[kinds.index(Resumed):] if isinstance(e, StepMetrics)]
    assert after[0].step == held + 1
    assert after[0].live["beta"] == 2.5 and after[0].live["lr"] == 5e-4
    before = [e for e in events[:kinds.index(Paused)] if isinstance(e, StepMetrics)]
    assert before[-1].live["beta"] == 4.0
    assert any(isinstance(e, Warning_) and "latent_dim" in e.message for e in events)
    assert isinstance(events[-1], Finished) and events[-1].reason == "stopped"


def nan_at(session, bad_step: int, corrupt_weights: bool = False):
    """Make the loss non-finite once, at `bad_step` (optionally after poisoning a weight, as a bad update would)."""
    real_loss = session.model.loss
    seen = {"done": False}

    def loss(x, y=None, step=0):
        out = real_loss(x, y, step)
        if step == bad_step and not seen["done"]:
            seen["done"] = True
            if corrupt_weights:
                with torch.no_grad():
                    next(session.model.parameters()).view(-1)[0] = float("nan")
            out.total = out.total * float("nan")
        return out

    session.loss.fn = loss


def test_nan_loss_stops_a_headless_run_with_good_weights(digits, tmp_path):
    session = TrainingSession(config(max_steps=50, out_dir=str(tmp_path / "run")), digits)
    nan_at(session, 10, corrupt_weights=True)
    events = list(session.run())
    failed = [e for e in events if isinstance(e, Failed)]
    assert len(failed) == 1 and not failed[0].recoverable
    assert "nan" in failed[0].cause and "restored from step 0" in failed[0].cause
    assert not any(isinstance(e, Finished) for e in events)
    assert session.step == 10
    assert all(bool(torch.isfinite(p).all()) for p in session.model.parameters())
    written = [e for e in events if isinstance(e, CheckpointWritten)]
    loaded = load_checkpoint(written[-1].path)
    assert loaded.step == 10 and all(bool(torch.isfinite(t).all()) for t in loaded.model.state_dict().values())


def test_nan_loss_pauses_an_interactive_run(digits):
    session = TrainingSession(config(max_steps=30, preview_every_s=60.0), digits, pause_on_error=True)
    nan_at(session, 5)
    control = Control()
    worker, events = run_in_thread(session, control)
    try:
        wait_for(lambda: any(isinstance(e, Paused) for e in events))
        assert session.step == 5
        control.resume()
        wait_for(lambda: any(isinstance(e, Finished) for e in events))
    finally:
        control.stop()
        worker.join(10)
    failed = next(e for e in events if isinstance(e, Failed))
    paused = next(e for e in events if isinstance(e, Paused))
    assert failed.recoverable and "kept" in failed.cause and "non-finite" in paused.reason
    assert events[-1].reason == "completed" and session.step == 30


def test_run_folder(digits, tmp_path):
    out = tmp_path / "run"
    session = TrainingSession(config(max_steps=12, checkpoint_every_steps=5, out_dir=str(out)), digits)
    control = Control()
    control.request_checkpoint()
    events = list(session.run(control))
    written = [e.step for e in events if isinstance(e, CheckpointWritten)]
    assert written == [0, 5, 10, 12]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "last.safetensors", "step_0.safetensors", "step_10.safetensors", "step_12.safetensors", "step_5.safetensors"]
    stored = TrainConfig.load(out / "config.toml")
    assert stored.family == "vae" and stored.hparams["latent_dim"] == 3 and stored.max_steps == 12
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if r["kind"] == "step"] == list(range(1, 13))
    loaded = load_checkpoint(out / "checkpoints" / "last.safetensors")
    assert loaded.step == 12 and loaded.history == session.history
    csv_path = write_metrics_csv(loaded.history, tmp_path / "m.csv")
    rows = csv_path.read_text().splitlines()
    assert rows[0].split(",")[:3] == ["step", "epoch", "kl"] and len(rows) == 13
    assert not list(out.glob("**/*.tmp"))


def test_fallback_dataset_is_announced():
    cfg = config(dataset="no-such-dataset", fallback=["digits"], max_steps=1)
    session = TrainingSession(cfg)
    assert session.dataset.name == "digits" and "no-such-dataset" in session.warnings[0]
    first = next(iter(session.run()))
    assert isinstance(first, Warning_) and "digits" in first.message


def test_beta_tcvae_dataset_size_defaults_to_the_train_size(digits):
    session = TrainingSession(config(family="beta-tcvae", max_steps=1), digits)
    assert session.model.hparams["dataset_size"] == len(session.train_indices)


@pytest.mark.parametrize("family, extra", [("factor-vae", {"disc_hidden": 16, "disc_layers": 2}),
                                           ("vq-vae", {})])
def test_resume_is_exact_with_auxiliary_optimisers_and_codebooks(digits, tmp_path, family, extra):
    hparams = {"hidden": 24, "depth": 1, **extra}
    cfg = TrainConfig(dataset="digits", family=family, hparams=hparams, max_steps=24, batch_size=100,
                      preview_every_s=60.0)
    straight = totals(TrainingSession(cfg, digits).run())
    first = TrainingSession(cfg.replace(max_steps=17), digits)
    before = totals(first.run())
    resumed = TrainingSession.from_checkpoint(first.save_checkpoint(tmp_path / "c.safetensors"), max_steps=24)
    np.testing.assert_allclose(before + totals(resumed.run()), straight, rtol=1e-6, atol=1e-6)
