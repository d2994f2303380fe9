"""engine.explore on tiny models trained for a few dozen steps on the 8×8 digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine import explore
from engine.data import load_dataset
from engine.errors import ConfigError
from engine.models import create_model
from tests.helpers import train_digits_model


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def vae():
    return train_digits_model("vae")


def test_sample_images_repeatable_and_in_range(vae):
    a = explore.sample_images(vae, 6, seed=3)
    b = explore.sample_images(vae, 6, seed=3)
    c = explore.sample_images(vae, 6, seed=4)
    assert a.shape == (6, 1, 8, 8)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0


def test_latent_stats_orders_by_kl_and_bounds_by_prior(vae, digits):
    stats = explore.latent_stats(vae, digits, torch.arange(300), n=200, radius=2.5)
    assert stats.means.shape == (200, 4)
    assert stats.kl_per_dim is not None and np.all(stats.kl_per_dim >= 0)
    assert np.all(np.diff(stats.kl_per_dim[stats.order]) <= 0)
    assert np.allclose(stats.low, -2.5) and np.allclose(stats.high, 2.5)
    # KL per dim agrees with the closed form on the same items
    x = digits.images_at(torch.arange(200)).float() / 255
    with torch.no_grad():
        code = vae.encode(x)
    expected = 0.5 * (code.mean ** 2 + code.logvar.exp() - code.logvar - 1).mean(0)
    assert np.allclose(stats.kl_per_dim, expected.numpy(), atol=1e-5)


def test_traversal_grid_rows_are_dims_and_only_that_dim_moves(vae):
    base = torch.zeros(4)
    values = np.linspace(-3, 3, 5)
    grid = explore.traversal_grid(vae, base, [2, 0], values, pad=1)
    assert grid.dtype == np.uint8 and grid.shape == (2 * 9 + 1, 5 * 9 + 1)
    imgs = explore.traversal_images(vae, base, [2, 0], values)
    z = torch.zeros(1, 4)
    z[0, 0] = 3.0
    assert torch.allclose(imgs[9], explore.decode_codes(vae, z)[0], atol=1e-6)
    frames = explore.traversal_frames(vae, base, [2, 0], values)
    assert len(frames) == 5 + 3 and frames[0].shape == (9 + 1, 2 * 9 + 1)
    assert np.array_equal(frames[1], frames[-1])


def test_interpolation_endpoints_are_reconstructions(vae, digits):
    xa, xb = digits.images_at(torch.tensor([0, 1, 5])), digits.images_at(torch.tensor([7, 8, 9]))
    for mode in ("lerp", "slerp"):
        path = explore.interpolate(vae, xa, xb, 6, mode=mode).view(3, 6, 1, 8, 8)
        rec_a = explore.reconstructions(vae, xa)
        rec_b = explore.reconstructions(vae, xb)
        assert torch.allclose(path[:, 0], rec_a, atol=1e-5)
        assert torch.allclose(path[:, -1], rec_b, atol=1e-5)
        assert not torch.allclose(path[:, 2], rec_a, atol=1e-3)
    fade = explore.crossfade(xa[0], xb[0], 3)
    assert torch.allclose(fade[1], (xa[0].float() + xb[0].float()) / 510)


def test_slerp_keeps_norm_between_equal_norm_codes():
    a, b = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    path = explore.lerp_path(a, b, 5, "slerp")[0]
    assert torch.allclose(path.norm(dim=1), torch.full((5,), 2.0), atol=1e-5)
    assert torch.allclose(explore.lerp_path(a, a, 3, "slerp")[0], a.expand(3, 2))


def test_embeddings_map_back_and_manifold_grid(vae, digits):
    means = explore.encode_means(vae, digits.images_at(torch.arange(100)), batch=32)
    assert means.shape == (100, 4)
    for method in ("pca", "dims"):
        emb = explore.embed(means, method)
        assert emb.coords.shape == (100, 2)
        back = emb.to_code(emb.coords[:3])
        assert np.allclose(emb.coords[:3], (back - emb.origin) @ emb.axes.T, atol=1e-4)
    grid = explore.manifold_grid(vae, explore.embed(means, "pca"), explore.plane_values(-1, 1, 4),
                                 explore.plane_values(-1, 1, 3))
    assert grid.shape == (3 * 8, 4 * 8)


def test_anomaly_scores_match_the_likelihood(vae, digits):
    imgs = digits.images_at(torch.arange(50))
    err = explore.reconstruction_errors(vae, imgs, batch=16)
    x = imgs.float() / 255
    with torch.no_grad():
        logits = vae.decode(vae.encode(x).mean)
    ref = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2, 3))
    assert np.allclose(err, ref.numpy(), rtol=1e-5)
    worst = explore.worst_indices(err, 5)
    assert list(worst) == list(np.argsort(-err)[:5])


def test_bad_inputs_raise_clear_errors(vae):
    with pytest.raises(ConfigError, match="latent_dim"):
        explore.traversal_grid(vae, torch.zeros(3), [0], [0.0, 1.0])
    with pytest.raises(ConfigError, match="dims"):
        explore.traversal_grid(vae, torch.zeros(4), [7], [0.0, 1.0])
    with pytest.raises(ConfigError, match="not conditional"):
        explore.conditional_grid(vae, 3)
    with pytest.raises(ConfigError, match="data shape"):
        explore.encode_means(vae, torch.zeros(2, 1, 5, 5, dtype=torch.uint8))


def test_deterministic_ae_bounds_are_data_percentiles(digits):
    ae = train_digits_model("ae", steps=20)
    stats = explore.latent_stats(ae, digits, torch.arange(400), n=400)
    assert stats.kl_per_dim is None
    assert np.allclose(stats.low, np.percentile(stats.means, 1, axis=0), atol=1e-5)
    assert np.allclose(stats.high, np.percentile(stats.means, 99, axis=0), atol=1e-5)
    assert np.all(np.diff(stats.variance[stats.order]) <= 0)


def test_conditional_grid_keeps_z_per_column_and_changes_with_class(digits):
    cvae = train_digits_model("cvae", steps=30)
    imgs = explore.conditional_images(cvae, 3, seed=1).view(10, 3, 1, 8, 8)
    z = explore.prior_codes(cvae, 3, seed=1)
    for c in (0, 7):
        assert torch.allclose(imgs[c], explore.decode_codes(cvae, z, c), atol=1e-6)
    assert not torch.allclose(imgs[0], imgs[7], atol=1e-3)
    x, y = digits.images_at(torch.tensor([3])), digits.labels_at(torch.tensor([3]))
    rows = explore.analogies(cvae, x, y)
    assert rows.shape == (10, 1, 8, 8)
    assert torch.allclose(rows[int(y)], explore.reconstructions(cvae, x, y)[0], atol=1e-6)


def test_vq_codebook_traversal_changes_only_the_chosen_position(digits):
    vq = train_digits_model("vq-vae", steps=20, positions=4, codebook_size=16)
    assert explore.code_positions(vq) == 4
    x = digits.images_at(torch.tensor([0]))
    imgs = explore.codebook_traversal(vq, x, position=2, k=5)
    assert imgs.shape == (5, 1, 8, 8)
    assert torch.allclose(imgs[0], explore.reconstructions(vq, x)[0], atol=1e-6)
    with pytest.raises(ConfigError, match="discrete"):
        explore.latent_stats(vq, digits, torch.arange(10))


def test_denoise_triplets_use_the_models_corruption(digits):
    dae = train_digits_model("dae", steps=20)
    noisy, denoised, clean = explore.denoise_triplets(dae, digits.images_at(torch.arange(6)))
    assert noisy.shape == denoised.shape == clean.shape == (6, 1, 8, 8)
    assert not torch.equal(noisy, clean)
    assert torch.allclose(denoised, explore.reconstructions(dae, noisy), atol=1e-6)


def test_cvae_interpolates_between_labels_with_soft_labels():
    import torch

    from engine.explore import interpolate

    torch.manual_seed(0)
    model = create_model("cvae", (1, 8, 8), num_classes=10, latent_dim=3).eval()
    x = torch.rand(1, 1, 8, 8)
    held = interpolate(model, x, x, 5, ya=torch.tensor([1]), yb=torch.tensor([7]))
    blended = interpolate(model, x, x, 5, ya=torch.tensor([1]), yb=torch.tensor([7]), blend_labels=True)
    assert torch.allclose(held[0], blended[0], atol=1e-6)  # t = 0: label 1 in both
    seven = torch.tensor([7])
    end_as_7 = model.decode_images(model.encode(x, seven).mean, seven)  # B is encoded with its own label
    assert torch.allclose(blended[-1], end_as_7[0], atol=1e-5)  # t = 1: decoded as label 7
    assert not torch.allclose(held[-1], blended[-1], atol=1e-4)
