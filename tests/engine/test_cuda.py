"""GPU checks (marker `cuda`; skipped without a CUDA GPU). Run with `pytest -m cuda`, or all of bench/gpu_check.sh.

- every family trains a few steps under `torch.cuda.set_sync_debug_mode("error")` outside the metrics pulls (which
  are deferred: read one pull later from pinned memory); a conv model trains and resumes channels_last;
- a CUDA sweep of two runs completes and writes its summary (it used to die on a device tensor handed to numpy);
- the panels' inference (explore, evaluate) on a CUDA model and a CUDA dataset;
- a checkpoint goes CPU → CUDA → CPU and training resumes on each side; deterministic resume on CUDA is exact;
- the Interpolation panel's path and cross-fade on CUDA images; a second session beside a run leaves its losses;
- every family in bf16, and under each compile mode (`-k compiled_training`: minutes; gpu_check runs a few).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine import explore
from engine.checkpoint import load_checkpoint
from engine.config import TrainConfig
from engine.data import load_dataset
from engine.evaluate import evaluate
from engine.events import Finished, Preview, StepMetrics, Warning_
from engine.models import families
from engine.sweep import RunDone, SweepDone, SweepRunner, plan_sweep
from engine.training import TrainingSession

pytestmark = pytest.mark.cuda

TINY = {"backbone": "mlp", "latent_dim": 3, "hidden": 32, "depth": 1}
EXTRA = {"k-sparse-ae": {"k": 2}, "hvae": {"z1_dim": 3}, "iwae": {"k": 2},
         "vq-vae": {"positions": 2, "codebook_size": 8}, "factor-vae": {"disc_hidden": 16, "disc_layers": 1}}


def config(**changes) -> TrainConfig:
    base = TrainConfig(dataset="digits", family="vae", hparams=dict(TINY), max_steps=30, batch_size=64,
                       device="cuda", preview_every_s=3600.0, metrics_every=10)
    return base.replace(**changes)


def _fail_on_sync_inside_steps(session: TrainingSession) -> None:
    """Make every training step raise on a host↔device sync (pulls, between steps, may still sync)."""
    real_step = session._train_step

    def strict(order, stop_requested=False):
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            return real_step(order, stop_requested)
        finally:
            torch.cuda.set_sync_debug_mode("default")

    session._train_step = strict


@pytest.mark.parametrize("family", list(families()))
def test_every_family_trains_without_a_host_sync_between_pulls(family):
    session = TrainingSession(config(family=family, hparams={**TINY, **EXTRA.get(family, {})}), load_dataset("digits"))
    _fail_on_sync_inside_steps(session)
    events = list(session.run())
    assert isinstance(events[-1], Finished), events[-1]
    steps = [e.step for e in events if isinstance(e, StepMetrics)]
    assert steps[-1] == 30 and len(steps) <= 5 and session._puller.deferred


def test_a_conv_model_trains_channels_last_and_resumes(tmp_path):
    """memory_format auto on CUDA: conv weights, batches and Adam moments channels_last; no host sync in a step;
    the checkpoint (contiguous) resumes channels_last; the losses track a contiguous run's."""
    conv = {"backbone": "conv", "latent_dim": 4, "hidden": 64, "depth": 1}
    cfg = config(dataset="dsprites?subset=3000", family="beta-vae", hparams=conv, max_steps=40, metrics_every=10,
                 out_dir=str(tmp_path / "run"))
    session = TrainingSession(cfg)
    weights = [m.weight for m in session.model.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)]
    assert session.channels_last and weights and all(w.is_contiguous(memory_format=torch.channels_last)
                                                     for w in weights)
    _fail_on_sync_inside_steps(session)
    nhwc = [e.terms["total"] for e in session.run() if isinstance(e, StepMetrics)]
    assert len(nhwc) == 4 and all(np.isfinite(nhwc))
    assert all(session.optimizer.state[w]["exp_avg"].is_contiguous(memory_format=torch.channels_last) for w in weights)
    plain = [e.terms["total"] for e in TrainingSession(cfg.replace(memory_format="contiguous", out_dir=None)).run()
             if isinstance(e, StepMetrics)]
    assert nhwc == pytest.approx(plain, rel=5e-2)  # other cuDNN kernels (and autotuning): close, not equal
    resumed = TrainingSession.from_checkpoint(tmp_path / "run" / "checkpoints" / "last.safetensors", max_steps=60)
    assert resumed.channels_last
    assert all(resumed.optimizer.state[w]["exp_avg"].is_contiguous(memory_format=torch.channels_last)
               for w in (m.weight for m in resumed.model.modules() if isinstance(m, torch.nn.Conv2d)))
    events = list(resumed.run())
    assert isinstance(events[-1], Finished) and resumed.step == 60


def test_a_cuda_sweep_of_two_runs_writes_its_summary(tmp_path):
    out = tmp_path / "sweep"
    base = config(family="beta-vae", max_steps=20)
    runs = plan_sweep(base, {"beta": [1.0, 4.0]}, out_dir=out, max_steps=20)
    events = list(SweepRunner(runs, out_dir=out, metrics=(), iwae_k=5).run())
    done = events[-1]
    assert isinstance(done, SweepDone) and done.reason == "completed"
    assert [e.record["status"] for e in events if isinstance(e, RunDone)] == ["completed", "completed"]
    assert (out / "summary.csv").is_file() and all((out / r.name / "traversal.png").is_file() for r in runs)


@pytest.mark.parametrize("family", ["cvae", "vae", "dae", "vq-vae"])
def test_panel_inference_on_a_cuda_model(family):
    session = TrainingSession(config(family=family, hparams={**TINY, **EXTRA.get(family, {})}, max_steps=10),
                              load_dataset("digits"))
    list(session.run())
    model, dataset, indices = session.snapshot_model(), session.dataset, session.test_indices
    assert model.device.type == "cuda" and indices.device.type == "cuda"
    y = dataset.labels_at(indices[:16]) if model.is_conditional else None
    images = dataset.images_at(indices[:16])
    assert explore.reconstruction_errors(model, images, y).shape == (16,)
    assert explore.encode_means(model, images, y).shape[0] == 16
    result = evaluate(model, dataset, indices, iwae_k=8 if model.is_variational else 0, iwae_subset=16)
    assert np.isfinite(result["recon"])
    if model.can_sample:
        assert explore.sample_images(model, 4, 1 if model.is_conditional else None, seed=2).shape[0] == 4
    if model.latent_kind == "continuous":
        stats = explore.latent_stats(model, dataset, indices, n=64)
        grid = explore.traversal_grid(model, stats.means[0], stats.order[:2], explore.traversal_values(
            stats, stats.order[:2], 5), 1 if model.is_conditional else None)
        assert grid.dtype == np.uint8 and grid.flags.c_contiguous
    if explore.is_denoising(model):
        noisy, _, _ = explore.denoise_triplets(model, images, seed=1)
        assert noisy.device.type == "cuda"
    if model.latent_kind == "continuous":  # the Interpolation panel: its path and its pixel cross-fade baseline
        ya = y[:2] if y is not None else None
        path = explore.interpolate(model, images[:2], images[2:4], 5, ya=ya, yb=ya)
        fade = explore.crossfade(images[:2], images[2:4], 5)
        assert path.device.type == fade.device.type == "cuda" and path.shape == fade.shape


def test_a_second_session_beside_a_running_one_changes_none_of_its_losses_on_cuda():
    """On CUDA too: building and training another session with another seed leaves a run's losses as they were."""
    def run(beside: bool) -> list[float]:
        a = TrainingSession(config(family="dae", metrics_every=1, max_steps=8), load_dataset("digits")).run()
        losses, b = [], None
        for event in a:
            if isinstance(event, StepMetrics):
                losses.append(event.terms["total"])
                if beside and b is None:
                    b = TrainingSession(config(family="dae", seed=9, max_steps=8), load_dataset("digits")).run()
                if b is not None:
                    next(b, None)
        return losses

    assert run(beside=False) == run(beside=True)


def test_checkpoint_round_trip_cpu_cuda_cpu(tmp_path):
    out = tmp_path / "run"
    list(TrainingSession(config(device="cpu", max_steps=10, out_dir=str(out)), load_dataset("digits")).run())
    on_gpu = TrainingSession.from_checkpoint(out / "checkpoints" / "last.safetensors", device="cuda", max_steps=20)
    assert any("device" in w for w in on_gpu.warnings)
    assert all(s["step"].device.type == "cuda" for s in on_gpu.optimizer.state.values())  # fused: on the device
    events = list(on_gpu.run())
    assert isinstance(events[-1], Finished) and on_gpu.step == 20
    loaded = load_checkpoint(out / "checkpoints" / "last.safetensors", "cpu")
    assert loaded.step == 20 and all(t.device.type == "cpu" for t in loaded.model.state_dict().values())
    back = TrainingSession.from_checkpoint(out / "checkpoints" / "last.safetensors", device="cpu", max_steps=25)
    assert isinstance(list(back.run())[-1], Finished) and back.step == 25
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])  # one JSON record per line


def test_deterministic_resume_on_cuda_is_exact(tmp_path):
    def losses(session):
        return [e.terms["total"] for e in session.run() if isinstance(e, StepMetrics)]

    cfg = config(max_steps=40, metrics_every=1, deterministic=True)
    whole = losses(TrainingSession(cfg, load_dataset("digits")))
    first = TrainingSession(cfg.replace(max_steps=20, out_dir=str(tmp_path / "a")), load_dataset("digits"))
    part = losses(first)
    rest = losses(TrainingSession.from_checkpoint(tmp_path / "a" / "checkpoints" / "last.safetensors", max_steps=40))
    torch.use_deterministic_algorithms(False)
    assert part + rest == whole


def _trains_with_previews(session: TrainingSession) -> list:
    """Run to the end: no warning (a failed compile or turned-off previews say so), finite losses, a preview."""
    events = list(session.run())
    assert isinstance(events[-1], Finished), events[-1]
    assert not [e for e in events if isinstance(e, Warning_)], [e.message for e in events if isinstance(e, Warning_)]
    assert all(np.isfinite(e.terms["total"]) for e in events if isinstance(e, StepMetrics))
    assert [e for e in events if isinstance(e, Preview)], "previews turned off"
    kl = session.last_kl_per_latent
    assert kl is None or bool(torch.isfinite(kl).all())
    return events


@pytest.mark.parametrize("family", list(families()))
def test_bf16_training_on_cuda(family):
    session = TrainingSession(config(family=family, hparams={**TINY, **EXTRA.get(family, {})}, precision="bf16",
                                     preview_every_s=0.05), load_dataset("digits"))
    events = _trains_with_previews(session)
    assert session.step == 30 and session.device.type == "cuda"
    assert sum(isinstance(e, StepMetrics) for e in events) >= 3, "a metrics pull every 10 of the 30 steps"
    assert all(p.dtype == torch.float32 for p in session.model.parameters()), "bf16 autocast keeps float32 weights"


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


@pytest.mark.parametrize("mode", COMPILE_MODES)
@pytest.mark.parametrize("family", list(families()))
def test_compiled_training_on_cuda(family, mode):
    """Every family under every compile mode (the graphing modes mark steps and clone the KL kept past a step):
    ~5–30 s of compiling each, so bench/gpu_check.sh runs a few of them; `pytest -m cuda -k compiled_training`
    runs them all."""
    session = TrainingSession(config(family=family, hparams={**TINY, **EXTRA.get(family, {})}, compile=True,
                                     compile_mode=mode, preview_every_s=0.05), load_dataset("digits"))
    assert session.loss.cuda_graphs == (mode != "default")
    _trains_with_previews(session)
