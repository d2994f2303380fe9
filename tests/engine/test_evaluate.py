"""Evaluation formulas: IWAE k=1 ≈ ELBO, NLL ≤ −ELBO, active units on a constructed model, AE errors, cancel."""

from __future__ import annotations

import pytest
import torch

from engine.config import TrainConfig
from engine.data import load_dataset
from engine.evaluate import EvaluationCancelled, evaluate
from engine.models import create_model
from engine.training import TrainingSession


@pytest.fixture(scope="module")
def trained():
    dataset = load_dataset("digits")
    cfg = TrainConfig(dataset="digits", family="vae", hparams={"latent_dim": 4, "hidden": 48, "depth": 1},
                      max_steps=150, batch_size=64, lr=3e-3, preview_every_s=60.0)
    session = TrainingSession(cfg, dataset)
    list(session.run())
    return session.model.eval(), dataset, session.test_indices


def test_iwae_k1_matches_the_elbo_and_more_samples_tighten_it(trained):
    model, dataset, test = trained
    one = evaluate(model, dataset, test, iwae_k=1, iwae_subset=len(test), seed=1)
    many = evaluate(model, dataset, test, iwae_k=64, iwae_subset=len(test), seed=1)
    assert one["images"] == one["iwae_images"] == len(test) == 180
    assert one["neg_elbo"] == pytest.approx(one["recon"] + one["kl"])
    assert one["iwae_nll"] == pytest.approx(one["neg_elbo"], rel=0.03)  # both estimate −ELBO
    assert many["iwae_nll"] < one["neg_elbo"] - 0.1  # IWAE-64 is a tighter bound
    assert len(one["kl_per_dim"]) == 4 and sum(one["kl_per_dim"]) == pytest.approx(one["kl"], rel=1e-5)
    assert evaluate(model, dataset, test, iwae_k=1, seed=1)["neg_elbo"] == one["neg_elbo"]  # seeded


def test_active_units_on_a_constructed_encoder(trained):
    _, dataset, test = trained
    torch.manual_seed(0)
    model = create_model("vae", (1, 8, 8), latent_dim=5, hidden=16, depth=1)
    with torch.no_grad():
        model.to_mu.weight[2:] = 0.0  # dims 2…4: E_q[z] is the same for every x → inactive
        model.to_mu.weight[:2] *= 50.0
    result = evaluate(model, dataset, test, iwae_k=0)
    assert result["active_units"] == 2 and result["iwae_nll"] is None and "k = 0" in result["iwae_note"]
    assert result["code_variance"][2] == pytest.approx(0.0, abs=1e-12) and result["code_variance"][0] > 0.01


def test_autoencoder_reconstruction_error(trained):
    _, dataset, test = trained
    model = create_model("ae", (1, 8, 8), latent_dim=3, hidden=16, depth=1, likelihood="gaussian").eval()
    result = evaluate(model, dataset, test[:50], iwae_k=10)
    x = dataset.images_at(test[:50]).float() / 255
    expected = (x - model.reconstruct(x).detach()).pow(2).flatten(1).sum(1).mean()
    assert result["sq_error"] == pytest.approx(float(expected), rel=1e-5)
    assert result["neg_elbo"] is None and result["active_units"] is None
    assert result["iwae_nll"] is None and "no tractable importance weights" in result["iwae_note"]


def test_progress_and_cancel(trained):
    model, dataset, test = trained
    seen = []
    evaluate(model, dataset, test[:40], iwae_k=5, iwae_subset=10, batch=16, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (50, 50) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    with pytest.raises(EvaluationCancelled):
        evaluate(model, dataset, test, cancel=lambda: True)
    assert not model.training
