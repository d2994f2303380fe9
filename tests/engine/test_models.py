"""The model zoo: registry, backbones, per-family formulas, overfitting, sampling, validation, state."""

from __future__ import annotations

import pytest
import torch

from engine import objectives as obj
from engine.data import load_dataset
from engine.errors import ConfigError
from engine.models import create_model, families, model_class
from engine.models.backbones import BroadcastDecoder, ConvDecoder, ConvEncoder, MLPEncoder, resolve_backbone

EXPECTED_FAMILIES = ["ae", "dae", "sparse-ae", "k-sparse-ae", "contractive-ae", "vae", "beta-vae", "capacity-vae",
                     "fullcov-vae", "cvae", "iwae", "hvae", "vq-vae", "beta-tcvae", "factor-vae"]
SMALL = {"hidden": 32, "latent_dim": 4}


@pytest.fixture(scope="module")
def digits():
    ds = load_dataset("digits")
    return ds.images[:64].float() / 255.0, ds.labels[:64]


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


# --- registry and schema ----------------------------------------------------------------------------------
def test_registry_has_exactly_the_documented_families_in_order():
    assert list(families()) == EXPECTED_FAMILIES


@pytest.mark.parametrize("family", EXPECTED_FAMILIES)
def test_every_family_documents_its_formula_and_hyperparameters(family):
    cls = model_class(family)
    assert cls.formula and "\n" not in cls.formula and cls.title
    for hp in cls.all_hparams():
        assert hp.help and "\n" not in hp.help, hp.name
        assert hp.coerce(hp.default) == hp.default, hp.name


def test_weights_of_the_objective_are_live():
    live = {(f, h.name) for f, cls in families().items() for h in cls.all_hparams() if h.live}
    for pair in [("beta-vae", "beta"), ("capacity-vae", "c_max"), ("capacity-vae", "gamma"),
                 ("beta-tcvae", "beta"), ("factor-vae", "gamma"), ("sparse-ae", "beta"), ("vq-vae", "beta"),
                 ("contractive-ae", "lam")]:
        assert pair in live


# --- validation -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family, hparams, pattern", [
    ("beta-vae", {"beta": -1.0}, r"beta must be in \[0, "),
    ("vae", {"latent_dim": 0}, r"latent_dim must be in \[1, 512\]"),
    ("k-sparse-ae", {"latent_dim": 4, "k": 5}, r"k must be in \[1, latent_dim=4\]"),
    ("sparse-ae", {"rho": 0.0}, r"rho must be in \(0, 1\)"),
    ("sparse-ae", {"rho": 1.0}, r"rho must be in \(0, 1\)"),
    ("vae", {"backbone": "resnet"}, r"backbone must be one of auto, mlp, conv"),
    ("vae", {"bogus": 1}, r"unknown hyperparameter.*bogus"),
])
def test_invalid_hyperparameters_name_the_parameter_and_range(family, hparams, pattern):
    with pytest.raises(ConfigError, match=pattern):
        create_model(family, (1, 8, 8), **hparams)


def test_unknown_family_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown model family 'gan'.*beta-vae"):
        create_model("gan", (1, 8, 8))


def test_cvae_requires_labels(digits):
    with pytest.raises(ConfigError, match="labelled data"):
        create_model("cvae", (1, 8, 8))
    model = create_model("cvae", (1, 8, 8), num_classes=10, **SMALL)
    x, _ = digits
    with pytest.raises(ConfigError, match="needs labels y"):
        model.encode(x)
    with pytest.raises(ConfigError, match="needs labels y"):
        model.decode(torch.zeros(2, 4))
    with pytest.raises(ConfigError, match=r"\[0, 9\]"):
        model.decode(torch.zeros(2, 4), torch.tensor([0, 10]))


def test_set_hparam_only_for_live_parameters(digits):
    model = create_model("beta-vae", (1, 8, 8), **SMALL)
    model.set_hparam("beta", 2.5)
    assert model.live_values(0)["beta"] == 2.5
    with pytest.raises(ConfigError, match="cannot be changed during training"):
        model.set_hparam("latent_dim", 3)
    with pytest.raises(ConfigError, match="beta must be in"):
        model.set_hparam("beta", -1)


# --- backbones ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 16, 16), (1, 28, 28), (3, 32, 32), (1, 64, 64), (1, 20, 36)])
def test_backbones_fit_every_image_size(shape):
    model = create_model("vae", shape, backbone="conv", hidden=64, latent_dim=3)
    x = torch.rand(2, *shape)
    assert model.decode(model.encode(x).z).shape == x.shape
    mlp_model = create_model("ae", shape, backbone="mlp", hidden=16, latent_dim=3)
    assert mlp_model.decode(mlp_model.encode(x).z).shape == x.shape


def test_auto_backbone_and_overrides():
    assert resolve_backbone((1, 8, 8), "auto") == "mlp"
    assert resolve_backbone((1, 28, 28), "auto") == "conv"
    assert resolve_backbone((1, 64, 64), "mlp") == "mlp"
    model = create_model("beta-vae", (1, 64, 64))
    assert isinstance(model.encoder, ConvEncoder) and isinstance(model.decoder, ConvDecoder)
    convs = [m for m in model.decoder.deconv if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(convs) == 4 and max(c.in_channels for c in convs) == 64  # cheap decoder: 64-64-32-32
    shallow = create_model("beta-vae", (1, 64, 64), conv_blocks=2, depth=1)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in shallow.encoder.conv) == 2
    assert isinstance(create_model("vae", (1, 8, 8)).encoder, MLPEncoder)
    with pytest.raises(ConfigError, match="conv_blocks"):
        create_model("vae", (1, 8, 8), backbone="conv", conv_blocks=5)


# --- overfitting: every family learns a fixed batch ------------------------------------------------------------
OVERFIT_OVERRIDES = {
    "capacity-vae": {"c_steps": 0, "c_max": 5.0, "gamma": 10.0},
    # β = 1 makes α·MI + β·TC + γ·dimKL the one-sample KL: the total is then a true −ELBO whose drop means learning
    "beta-tcvae": {"beta": 1.0, "dataset_size": 64},
    "factor-vae": {"gamma": 5.0},
}


@pytest.mark.parametrize("family", EXPECTED_FAMILIES)
def test_every_family_overfits_a_small_batch(family, digits):
    """Measure: training total minus the Bernoulli floor Σ H(x) (grey digits cannot reach 0 nats): it must halve."""
    x, y = digits
    floor = obj.bernoulli_entropy(x).mean().item()
    model = create_model(family, (1, 8, 8), num_classes=10, hidden=64, latent_dim=8,
                         **OVERFIT_OVERRIDES.get(family, {}))
    optimizer = torch.optim.Adam(model.main_parameters(), lr=3e-3)
    model.train()
    excess = []
    for step in range(300):
        out = model.loss(x, y, step)
        optimizer.zero_grad()
        out.total.backward()
        optimizer.step()
        model.after_step(x, y, step)
        excess.append(out.total.item() - floor)
    start, end = sum(excess[:5]) / 5, sum(excess[-10:]) / 10
    assert end <= 0.5 * start, f"{family}: excess loss {start:.2f} → {end:.2f}"


# --- shared contract --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", EXPECTED_FAMILIES)
def test_contract_terms_and_shapes(family, digits):
    x, y = digits
    model = create_model(family, (1, 8, 8), num_classes=10, **SMALL)
    out = model.loss(x[:8], y[:8], 3)
    assert out.total.requires_grad and out.total.dim() == 0
    assert "total" in out.terms and all(t.dim() == 0 and not t.requires_grad for t in out.terms.values())
    if model.is_variational:
        assert {"recon", "kl"} <= set(out.terms)
        assert out.kl_per_dim is not None and out.kl_per_dim.shape == (model.latent_dim,)
    model.eval()
    code = model.encode(x[:8], y[:8])
    assert code.mean.shape == (8, model.latent_dim)
    assert model.reconstruct(x[:8], y[:8]).shape == x[:8].shape
    if model.has_importance_weights:
        assert model.log_importance_weights(x[:8], y[:8], 3).shape == (8, 3)
    else:
        with pytest.raises(ConfigError):
            model.log_importance_weights(x[:8], y[:8], 3)


@pytest.mark.parametrize("family", [f for f in EXPECTED_FAMILIES if model_class(f).can_sample])
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)])
def test_generative_families_sample_images_in_range(family, shape):
    model = create_model(family, shape, num_classes=10, hidden=32, latent_dim=4).eval()
    with torch.no_grad():
        images = model.sample(5)
    assert images.shape == (5, *shape)
    assert images.min() >= 0 and images.max() <= 1 and torch.isfinite(images).all()


def test_deterministic_families_refuse_to_sample():
    for family in ["ae", "dae", "sparse-ae", "k-sparse-ae", "contractive-ae"]:
        with pytest.raises(ConfigError, match="not generative"):
            create_model(family, (1, 8, 8), **SMALL).sample(2)


@pytest.mark.parametrize("family", EXPECTED_FAMILIES)
def test_state_dict_round_trip_restores_every_buffer_and_weight(family, digits):
    x, y = digits
    model = create_model(family, (1, 8, 8), num_classes=10, **SMALL)
    model.train()
    model.loss(x, y, 1)
    model.after_step(x, y, 1)
    clone = create_model(family, (1, 8, 8), num_classes=10, **SMALL)
    clone.load_state_dict(model.state_dict())
    model.eval(), clone.eval()
    torch.testing.assert_close(clone.reconstruct(x, y), model.reconstruct(x, y))
    if family == "vq-vae":
        assert {"code_usage", "prior_probs", "initialized"} <= set(model.state_dict())
        torch.testing.assert_close(clone.prior_probs, model.prior_probs)


# --- family formulas --------------------------------------------------------------------------------------------
def test_dae_loss_targets_the_clean_input(digits):
    x, _ = digits
    model = create_model("dae", (1, 8, 8), corruption="mask", noise_level=0.5, **SMALL).train()
    torch.manual_seed(5)
    loss = model.loss(x).total
    torch.manual_seed(5)
    corrupted = obj.corrupt(x, "mask", 0.5)
    expected = model.nll(model.decode(model.encode(corrupted).z), x).mean()
    torch.testing.assert_close(loss, expected)
    wrong_target = model.nll(model.decode(model.encode(corrupted).z), corrupted).mean()
    assert not torch.allclose(loss, wrong_target)
    model.eval()
    torch.testing.assert_close(model.encode(x).mean, model.encode(x).mean)  # no corruption outside training


def test_sparse_ae_penalty_is_the_kl_of_batch_mean_activations(digits):
    x, _ = digits
    model = create_model("sparse-ae", (1, 8, 8), beta=2.0, rho=0.1, **SMALL)
    out = model.loss(x)
    h = model.encode(x).mean
    assert (h > 0).all() and (h < 1).all()
    torch.testing.assert_close(out.terms["sparsity"], obj.sparsity_kl(0.1, h.mean(0)).sum().detach())
    torch.testing.assert_close(out.total.detach(), out.terms["recon"] + 2.0 * out.terms["sparsity"])


def test_k_sparse_code_and_gradient(digits):
    x, _ = digits
    model = create_model("k-sparse-ae", (1, 8, 8), hidden=32, latent_dim=6, k=2)
    pre = model.to_code(model.features(x))
    pre.retain_grad()
    code = model.activate(pre)
    assert ((code != 0).sum(1) == 2).all()
    model.nll(model.decode(code), x).mean().backward()
    assert (pre.grad[code == 0] == 0).all()


def test_contractive_penalty_matches_brute_force_jacobian(digits):
    x, _ = digits
    model = create_model("contractive-ae", (1, 8, 8), hidden=16, latent_dim=3).double()
    xs = x[:3].double()
    brute = torch.stack([torch.autograd.functional.jacobian(lambda v: model.code(v.unsqueeze(0))[0], row)
                         .pow(2).sum() for row in xs]).mean()
    torch.testing.assert_close(model.jacobian_penalty(xs), brute)
    torch.testing.assert_close(model.loss(xs).terms["contraction"], brute.detach())
    with torch.no_grad():
        torch.testing.assert_close(model.loss(xs).terms["contraction"], brute.detach())


def test_cvae_decodes_differently_for_different_labels():
    model = create_model("cvae", (1, 8, 8), num_classes=10, **SMALL).eval()
    z = torch.randn(1, 4).expand(10, 4)
    images = model.decode_images(z, torch.arange(10))
    assert (images[1:] - images[:1]).abs().flatten(1).sum(1).min() > 1e-4


def test_iwae_with_one_sample_equals_the_elbo_estimate_under_the_same_noise(digits):
    x, _ = digits
    model = create_model("iwae", (1, 8, 8), k=1, **SMALL)
    torch.manual_seed(3)
    loss = model.loss(x[:16]).total
    torch.manual_seed(3)
    mu, logvar = model.posterior(x[:16])
    z = mu + (0.5 * logvar).exp() * torch.randn(16, 1, 4)[:, 0]
    elbo = (-model.nll(model.decode(z), x[:16]) + obj.log_standard_normal(z).sum(1)
            - obj.log_normal_diag(z, mu, logvar).sum(1))
    torch.testing.assert_close(loss, -elbo.mean())


@pytest.mark.parametrize("family", ["iwae", "hvae", "fullcov-vae"])
def test_importance_weighted_bound_does_not_decrease_in_k(family, digits):
    x, y = digits
    model = create_model(family, (1, 8, 8), num_classes=10, **SMALL).eval()
    with torch.no_grad():
        bounds = [obj.iwae_bound(model.log_importance_weights(x, y, k)).mean().item()
                  for k in (1, 10, 100)]
    assert bounds[0] <= bounds[1] + 0.05 and bounds[1] <= bounds[2] + 0.05, bounds
    assert bounds[2] > bounds[0]


def test_vae_importance_weights_average_to_the_elbo(digits):
    x, _ = digits
    model = create_model("vae", (1, 8, 8), **SMALL).eval()
    with torch.no_grad():
        log_w = model.log_importance_weights(x, None, 400)
        mu, logvar = model.posterior(x)
        kl = obj.kl_diag_gaussian(mu, logvar).sum(1)
        recon = -torch.stack([-model.nll(model.decode(obj.reparameterize(mu, logvar)), x) for _ in range(400)]).mean(0)
    assert log_w.mean().item() == pytest.approx(-(recon + kl).mean().item(), abs=0.3)


def test_capacity_follows_its_schedule(digits):
    x, _ = digits
    model = create_model("capacity-vae", (1, 8, 8), c_max=20.0, c_steps=100, gamma=3.0, **SMALL)
    assert [model.capacity(s) for s in (0, 25, 50, 100, 500)] == [0.0, 5.0, 10.0, 20.0, 20.0]
    out = model.loss(x, None, 50)
    assert model.live_values(50)["C"] == 10.0 and "C" not in out.terms  # the session adds live values on the host
    torch.testing.assert_close(model.capacity(torch.tensor(50)), torch.tensor(10.0))  # compile-friendly tensor step
    torch.testing.assert_close(out.total.detach(), out.terms["recon"] + 3.0 * (out.terms["kl"] - 10.0).abs())
    model.set_hparam("c_max", 40.0)
    assert model.capacity(50) == 20.0


def test_beta_warmup_schedule_and_weight(digits):
    x, _ = digits
    model = create_model("beta-vae", (1, 8, 8), beta=4.0, beta_start=1.0, warmup_steps=30, **SMALL)
    assert [model.kl_weight(s) for s in (0, 15, 30, 99)] == [1.0, 2.5, 4.0, 4.0]
    out = model.loss(x, None, 15)
    assert model.live_values(15)["beta"] == 2.5 and "beta" not in out.terms
    torch.testing.assert_close(model.kl_weight(torch.tensor(15)), torch.tensor(2.5))
    torch.testing.assert_close(out.total.detach(), out.terms["recon"] + 2.5 * out.terms["kl"])


def test_fullcov_vae_samples_through_its_cholesky_factor(digits):
    x, _ = digits
    model = create_model("fullcov-vae", (1, 8, 8), **SMALL).eval()
    with torch.no_grad():
        model.to_offdiag.bias.normal_()
        code = model.encode(x[:2])
    assert code.scale_tril.shape == (2, 4, 4) and torch.equal(code.scale_tril, code.scale_tril.tril())
    mu, tril = model.posterior_tril(x[:2])
    out = model.loss(x[:2])
    torch.testing.assert_close(out.terms["kl"], obj.kl_fullcov_gaussian(mu, tril).mean().detach())


def test_hvae_representation_is_the_top_layer(digits):
    x, _ = digits
    model = create_model("hvae", (1, 8, 8), z1_dim=6, **SMALL).eval()
    mu1, _ = model.q1(x[:4])
    mu2, _ = model.split(model.q_z2(mu1))
    torch.testing.assert_close(model.encode(x[:4]).mean, mu2)
    prior_mu1, _ = model.split(model.p_z1(mu2))
    torch.testing.assert_close(model.decode(mu2), model.decoder(prior_mu1))
    out = model.loss(x)
    torch.testing.assert_close(out.terms["kl"], out.terms["kl_z1"] + out.terms["kl_z2"])


def test_vq_vae_code_indices_gradients_and_prior(digits):
    x, _ = digits
    model = create_model("vq-vae", (1, 8, 8), hidden=32, latent_dim=3, positions=4, codebook_size=16)
    assert model.latent_kind == "discrete" and model.latent_dim == 12
    model.train()
    out = model.loss(x)
    assert bool(model.initialized)
    model.zero_grad()
    out.total.backward()
    assert model.encoder.net[0].weight.grad.abs().sum() > 0  # straight-through reaches the encoder
    assert model.codebook.grad.abs().sum() > 0
    model.zero_grad()  # the recon term alone must not move the codebook (straight-through bypasses it)
    z_e = model.encode_continuous(x)
    z_q, idx = model.quantize(z_e)
    model.nll(model.decode(obj.straight_through(z_e, z_q).flatten(1)), x).mean().backward()
    assert model.codebook.grad is None or model.codebook.grad.abs().sum() == 0
    model.eval()
    code = model.encode(x[:5])
    idx = code.extras["indices"]
    assert idx.shape == (5, 4) and idx.dtype == torch.long
    torch.testing.assert_close(code.mean, model.codes_from_indices(idx))
    torch.testing.assert_close(model.decode_indices(idx), model.decode(code.mean))
    before = model.prior_probs.clone()
    model.after_step(x, None, 1)
    assert not torch.equal(before, model.prior_probs)
    torch.testing.assert_close(model.prior_probs.sum(1), torch.ones(4))
    model.fit_prior(torch.zeros(10, 4, dtype=torch.long), smoothing=0.0)
    assert (model.prior_probs[:, 0] == 1).all()
    with torch.no_grad():
        torch.testing.assert_close(model.sample(3), model.to_image(model.decode_indices(torch.zeros(3, 4).long())))


def test_vq_vae_resets_dead_codes(digits):
    x, _ = digits
    model = create_model("vq-vae", (1, 8, 8), hidden=32, latent_dim=3, positions=4, codebook_size=16,
                         reset_every=10).train()
    model.loss(x)
    with torch.no_grad():
        model.codebook[5] = 1e6  # far from every encoder output: never chosen
        model.code_usage[5] = 0.0
    report = model.after_step(x, None, 10)
    assert report["dead_codes_reset"] >= 1
    assert model.codebook[5].abs().max() < 1e3


def test_vq_vae_initialised_flag_is_a_python_value_read_back_on_load(digits):
    x, _ = digits
    trained = create_model("vq-vae", (1, 8, 8), hidden=32, latent_dim=3, positions=4, codebook_size=16).train()
    trained.loss(x)
    assert trained._initialized and int(trained.initialized) == 1
    fresh = create_model("vq-vae", (1, 8, 8), hidden=32, latent_dim=3, positions=4, codebook_size=16).train()
    assert not fresh._initialized
    fresh.load_state_dict(trained.state_dict())
    assert fresh._initialized  # a loaded codebook is not re-initialised from the next batch
    book = fresh.codebook.detach().clone()
    fresh.loss(x)
    assert torch.equal(book, fresh.codebook.detach())


def test_beta_tcvae_weights_the_total_correlation(digits):
    x, _ = digits
    model = create_model("beta-tcvae", (1, 8, 8), alpha=1.0, beta=5.0, gamma=2.0, dataset_size=1000, **SMALL)
    out = model.loss(x)
    t = out.terms
    torch.testing.assert_close(out.total.detach(), t["recon"] + t["mi"] + 5.0 * t["tc"] + 2.0 * t["dim_kl"])
    unit = create_model("beta-tcvae", (1, 8, 8), beta=1.0, dataset_size=1000, **SMALL)
    unit.load_state_dict(model.state_dict())
    torch.manual_seed(7)
    total = unit.loss(x).total
    torch.manual_seed(7)
    mu, logvar = unit.posterior(x)
    z = obj.reparameterize(mu, logvar)
    kl_estimate = (obj.log_normal_diag(z, mu, logvar) - obj.log_standard_normal(z)).sum(1).mean()
    torch.testing.assert_close(total, unit.nll(unit.decode(z), x).mean() + kl_estimate)


def test_factor_vae_discriminator_detects_total_correlation():
    model = create_model("factor-vae", (1, 8, 8), disc_lr=2e-3, disc_hidden=64, **SMALL)
    assert not any(p is q for p in model.main_parameters() for q in model.discriminator.parameters())
    assert set(model.auxiliary_optimizers()) == {"discriminator"}
    u = torch.randn(256, 2)
    correlated = torch.cat([u, u], 1)  # z₃ = z₁, z₄ = z₂: large total correlation
    for _ in range(100):
        loss, _ = model.discriminator_loss(correlated)
        model.disc_optimizer.zero_grad()
        loss.backward()
        model.disc_optimizer.step()
    with torch.no_grad():
        tc_correlated = obj.density_ratio_tc(model.discriminator(correlated)).mean().item()
        tc_independent = obj.density_ratio_tc(model.discriminator(torch.randn(256, 4))).mean().item()
    assert tc_correlated > 1.0 and tc_independent < tc_correlated - 1.0


def test_factor_vae_after_step_trains_only_the_discriminator(digits):
    x, _ = digits
    model = create_model("factor-vae", (1, 8, 8), **SMALL)
    encoder_before = [p.detach().clone() for p in model.main_parameters()]
    disc_before = [p.detach().clone() for p in model.discriminator.parameters()]
    report = model.after_step(x, None, 0)
    assert {"disc_loss", "disc_accuracy"} <= set(report)
    assert all(torch.equal(a, b) for a, b in zip(encoder_before, model.main_parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(disc_before, model.discriminator.parameters(), strict=True))
    out = model.loss(x)
    torch.testing.assert_close(out.total.detach(), out.terms["recon"] + out.terms["kl"] + 35.0 * out.terms["tc"])


# --- spatial broadcast decoder -----------------------------------------------------------------------------
@pytest.mark.parametrize(("shape", "resolution"), [((1, 64, 64), 16), ((1, 64, 64), 0), ((3, 28, 28), 32),
                                                   ((1, 8, 8), 4), ((1, 20, 36), 16)])
def test_broadcast_decoder_fits_every_image_size(shape, resolution):
    model = create_model("beta-vae", shape, backbone="mlp", hidden=32, latent_dim=3, decoder="broadcast",
                         broadcast_width=8, broadcast_resolution=resolution)
    assert isinstance(model.decoder, BroadcastDecoder)
    x = torch.rand(2, *shape)
    assert model.decode(model.encode(x).z).shape == x.shape
    assert "decoder.coords" not in model.state_dict()  # coordinates are rebuilt, not stored in checkpoints


def test_broadcast_decoder_reads_position_from_its_coordinate_channels():
    """With z fixed, the logit field differs between pixels only through (x, y): a decoder whose coordinate
    weights are zero paints a constant image, one that weighs x paints a left-right ramp."""
    dec = BroadcastDecoder((1, 8, 8), latent_dim=2, width=4, depth=1, resolution=0)
    with torch.no_grad():
        dec.from_xy.weight.zero_()
        flat = dec(torch.randn(1, 2))
        assert torch.allclose(flat, flat.flatten()[0].expand_as(flat))
        dec.from_xy.weight.copy_(torch.tensor([[1.0, 0.0]] * 4))
        dec.from_xy.bias.fill_(2.0)
        dec.from_z.weight.zero_()
        dec.from_z.bias.zero_()
        dec.pixel_mlp[0].weight.fill_(1.0)
        dec.pixel_mlp[0].bias.zero_()
        ramp = dec(torch.zeros(1, 2))[0, 0]
    assert torch.allclose(ramp[0], ramp[7]) and (ramp[:, 1:] > ramp[:, :-1]).all()


def test_mixed_decoder_choices_build_the_named_network():
    conv_dec = create_model("vae", (1, 28, 28), backbone="mlp", decoder="conv", hidden=64, latent_dim=3)
    assert isinstance(conv_dec.encoder, MLPEncoder) and isinstance(conv_dec.decoder, ConvDecoder)
    with pytest.raises(ConfigError, match="decoder must be one of"):
        create_model("vae", (1, 8, 8), decoder="transformer")


def test_broadcast_resize_equals_bilinear_interpolation():
    from engine.models.backbones import linear_resize_matrix

    low = torch.randn(3, 1, 16, 12)
    expected = torch.nn.functional.interpolate(low, size=(64, 40), mode="bilinear", align_corners=False)
    resized = linear_resize_matrix(16, 64) @ low @ linear_resize_matrix(12, 40).T
    torch.testing.assert_close(resized, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", list(families()))
def test_applies_when_names_a_choice_of_another_hparam(family):
    """HyperParam.applies_when (what the Model dock uses to hide a row) points at a real choice of the family."""
    params = {p.name: p for p in model_class(family).all_hparams()}
    for param in params.values():
        if param.applies_when:
            controller, value = param.applies_when
            assert controller in params and controller != param.name
            assert params[controller].choices and value in params[controller].choices


# --- encoder input pooling -----------------------------------------------------------------------------------
@pytest.mark.parametrize("backbone", ["mlp", "conv"])
def test_encoder_pool_feeds_the_encoder_the_k_by_k_block_means(backbone):
    """encoder_pool = k: the encoder equals the same network built for the (H/k)×(W/k) image, fed the mean of
    each k×k block — checked with the weights copied from one to the other."""
    pooled = create_model("vae", (3, 32, 32), backbone=backbone, hidden=32, latent_dim=3, encoder_pool=4)
    small = create_model("vae", (3, 8, 8), backbone=backbone, hidden=32, latent_dim=3)
    small.encoder.load_state_dict(pooled.encoder.state_dict())
    x = torch.rand(5, 3, 32, 32)
    blocks = x.view(5, 3, 8, 4, 8, 4).mean((3, 5))
    torch.testing.assert_close(pooled.encoder(x), small.encoder(blocks), atol=1e-5, rtol=1e-5)
    assert pooled.decode(pooled.encode(x).z).shape == x.shape  # the decoder still paints the full image


def test_encoder_pool_keeps_checkpoint_keys_and_refuses_a_factor_that_does_not_divide_the_image():
    plain = create_model("vae", (1, 28, 28), backbone="mlp", hidden=16, latent_dim=2)
    pooled_by_one = create_model("vae", (1, 28, 28), backbone="mlp", hidden=16, latent_dim=2, encoder_pool=1)
    assert plain.state_dict().keys() == pooled_by_one.state_dict().keys()
    assert create_model("vae", (1, 28, 28), backbone="mlp", hidden=16, latent_dim=2,
                        encoder_pool=2).state_dict().keys() == plain.state_dict().keys()
    with pytest.raises(ConfigError, match="encoder_pool must divide the image size 28×28, got 3"):
        create_model("vae", (1, 28, 28), backbone="mlp", hidden=16, latent_dim=2, encoder_pool=3)
