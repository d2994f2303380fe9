"""channels_last for conv backbones (`memory_format`): the same numbers as contiguous, applied when asked (auto: on
CUDA only), one checkpoint format, and an exact resume (a fused Adam whose moments are strided unlike its parameter
computes a wrong update without complaint: the session converts them after loading)."""

from __future__ import annotations

import copy

import pytest
import safetensors.torch
import torch

from engine.checkpoint import load_checkpoint, read_checkpoint
from engine.cli import build_parser, train_config
from engine.config import TrainConfig
from engine.data import load_dataset
from engine.errors import ConfigError
from engine.events import Finished, Preview, StepMetrics
from engine.models import create_model, families
from engine.training import TrainingSession

CONV = {"backbone": "conv", "conv_blocks": 2, "latent_dim": 3, "hidden": 32, "depth": 1}  # 8×8 → 4×4 → 2×2
CL = torch.channels_last


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def config(**changes) -> TrainConfig:
    base = TrainConfig(dataset="digits", family="vae", hparams=dict(CONV), max_steps=6, batch_size=32, device="cpu",
                       preview_every_s=3600.0, memory_format="channels_last")
    return base.replace(**changes)


def conv_weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)]


def losses(session: TrainingSession) -> list[float]:
    events = list(session.run())
    assert isinstance(events[-1], Finished), events[-1]
    return [e.terms["total"] for e in events if isinstance(e, StepMetrics)]


@pytest.mark.parametrize("family", ["vae", "dae", "iwae", "beta-tcvae"])
def test_outputs_and_gradients_match_contiguous(family, digits):
    torch.manual_seed(0)
    hparams = {**CONV, **({"k": 2} if family == "iwae" else {})}
    plain = create_model(family, digits.shape, **hparams)
    nhwc = copy.deepcopy(plain).to(memory_format=CL)
    assert all(w.is_contiguous(memory_format=CL) for w in conv_weights(nhwc))
    assert any(not w.is_contiguous() for w in conv_weights(nhwc))  # (1-channel weights are both layouts at once)
    x = digits.images[:48].float().div(255.0)
    results = []
    for model, batch in ((plain, x), (nhwc, x.contiguous(memory_format=CL))):
        torch.manual_seed(1)  # the same reparameterisation noise
        out = model.loss(batch, None, 0)
        model.zero_grad()
        out.total.backward()
        results.append((out.total.detach(), model.reconstruct(batch).detach(),
                        {n: p.grad.clone() for n, p in model.named_parameters()}))
    (loss_a, recon_a, grads_a), (loss_b, recon_b, grads_b) = results
    torch.testing.assert_close(loss_b, loss_a, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(recon_b.contiguous(), recon_a, rtol=1e-5, atol=1e-6)
    for name, grad in grads_a.items():
        torch.testing.assert_close(grads_b[name].contiguous(), grad, rtol=1e-4, atol=1e-5, msg=name)


EXTRA = {"k-sparse-ae": {"k": 2}, "hvae": {"z1_dim": 3}, "iwae": {"k": 2},
         "vq-vae": {"positions": 2, "codebook_size": 8}, "factor-vae": {"disc_hidden": 16, "disc_layers": 1}}


@pytest.mark.slow
@pytest.mark.parametrize("family", list(families()))
def test_every_family_trains_channels_last_like_contiguous(family, digits):
    """No family reshapes a conv tensor in a way NHWC strides break (a `.view` would raise): the same losses, a
    preview, in both layouts."""
    runs = {}
    for layout in ("contiguous", "channels_last"):
        session = TrainingSession(config(family=family, hparams={**CONV, **EXTRA.get(family, {})}, max_steps=4,
                                         memory_format=layout), digits)
        events = list(session.run())
        assert isinstance(events[-1], Finished), events[-1]
        assert any(isinstance(e, Preview) for e in events) and session.channels_last == (layout == "channels_last")
        runs[layout] = [e.terms["total"] for e in events if isinstance(e, StepMetrics)]
    assert runs["channels_last"] == pytest.approx(runs["contiguous"], rel=1e-4)


def test_the_session_applies_the_option_to_weights_batches_and_adam(digits):
    session = TrainingSession(config(), digits)
    assert session.channels_last and conv_weights(session.model)
    assert all(w.is_contiguous(memory_format=CL) for w in conv_weights(session.model))
    assert any(not w.is_contiguous() for w in conv_weights(session.model))
    assert session._images(session.train_indices[:5]).is_contiguous(memory_format=CL)
    losses(session)
    for w in conv_weights(session.model):
        state = session.optimizer.state[w]
        assert w.grad is None or w.grad.is_contiguous(memory_format=CL)
        assert state["exp_avg"].is_contiguous(memory_format=CL) and state["exp_avg_sq"].is_contiguous(memory_format=CL)
    assert not any(w.is_contiguous(memory_format=CL) and not w.is_contiguous()
                   for w in conv_weights(session.snapshot_model())), "snapshots for the panels stay contiguous"


def test_training_matches_contiguous_within_float_tolerance(digits):
    nhwc = losses(TrainingSession(config(max_steps=8), digits))
    plain = losses(TrainingSession(config(max_steps=8, memory_format="contiguous"), digits))
    assert len(nhwc) == len(plain) == 8
    assert nhwc == pytest.approx(plain, rel=1e-4)


def test_auto_is_contiguous_on_the_cpu_and_mlp_models_are_left_alone(digits):
    auto = TrainingSession(config(memory_format="auto"), digits)
    assert not auto.channels_last
    assert not any(w.is_contiguous(memory_format=CL) and not w.is_contiguous() for w in conv_weights(auto.model))
    mlp = TrainingSession(config(hparams={**CONV, "backbone": "mlp"}), digits)
    assert not mlp.channels_last and any("has none" in w for w in mlp.warnings)


def test_checkpoint_is_contiguous_and_resume_is_exact(digits, tmp_path):
    whole = losses(TrainingSession(config(max_steps=12), digits))
    first = TrainingSession(config(max_steps=6, out_dir=str(tmp_path / "run")), digits)
    part = losses(first)
    path = tmp_path / "run" / "checkpoints" / "last.safetensors"
    raw = safetensors.torch.load_file(str(path))
    assert raw and all(t.is_contiguous() for t in raw.values())  # safetensors refuses other strides: one format
    meta, _ = read_checkpoint(path)
    loaded = load_checkpoint(path)
    for name, value in first.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], value), name
    resumed = TrainingSession.from_checkpoint(path, max_steps=12)
    assert resumed.channels_last and not resumed.warnings
    assert all(resumed.optimizer.state[w]["exp_avg"].is_contiguous(memory_format=CL)
               for w in conv_weights(resumed.model))
    assert part + losses(resumed) == whole


def test_a_contiguous_checkpoint_resumes_channels_last_with_a_warning(digits, tmp_path):
    list(TrainingSession(config(max_steps=4, memory_format="contiguous", out_dir=str(tmp_path / "run")),
                         digits).run())
    path = tmp_path / "run" / "checkpoints" / "last.safetensors"
    resumed = TrainingSession.from_checkpoint(path, max_steps=8, memory_format="channels_last")
    assert resumed.channels_last and any("memory_format 'contiguous' → 'channels_last'" in w for w in resumed.warnings)
    assert len(losses(resumed)) == 4


def test_option_from_the_cli_and_bad_values():
    args = build_parser("train").parse_args(["train", "--model", "vae", "--dataset", "digits", "--out", "x",
                                             "--memory-format", "channels_last"])
    assert train_config(args).memory_format == "channels_last"
    assert TrainConfig().memory_format == "auto"
    with pytest.raises(ConfigError, match="memory_format must be one of auto, channels_last, contiguous"):
        TrainConfig(memory_format="nhwc")
