"""Formula tests for engine/objectives.py: each function against an independent reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, MultivariateNormal, Normal, kl_divergence

from engine import objectives as obj


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def test_bernoulli_nll_matches_bce_on_probabilities():
    logits, x = torch.randn(4, 1, 3, 3), torch.rand(4, 1, 3, 3)
    ref = F.binary_cross_entropy(torch.sigmoid(logits), x, reduction="none").flatten(1).sum(1)
    torch.testing.assert_close(obj.bernoulli_nll(logits, x), ref, atol=1e-5, rtol=1e-5)


def test_gaussian_nll_matches_normal_log_prob():
    mean, x = torch.randn(4, 2, 3, 3), torch.rand(4, 2, 3, 3)
    ref = -Normal(mean, 0.7).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(obj.gaussian_nll(mean, x, 0.7), ref, atol=1e-4, rtol=1e-5)


def test_bernoulli_entropy_is_the_nll_floor():
    x = torch.rand(3, 1, 4, 4)
    logits = torch.logit(x.clamp(1e-6, 1 - 1e-6))
    torch.testing.assert_close(obj.bernoulli_entropy(x), obj.bernoulli_nll(logits, x), atol=1e-3, rtol=1e-4)


def test_diag_kl_equals_torch_distributions():
    mu, logvar = torch.randn(8, 5), torch.randn(8, 5)
    ref = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(torch.zeros(5), torch.ones(5)))
    torch.testing.assert_close(obj.kl_diag_gaussian(mu, logvar), ref, atol=1e-5, rtol=1e-5)


def test_log_normal_diag_equals_normal_log_prob():
    z, mu, logvar = torch.randn(6, 4), torch.randn(6, 4), torch.randn(6, 4)
    torch.testing.assert_close(obj.log_normal_diag(z, mu, logvar), Normal(mu, (0.5 * logvar).exp()).log_prob(z),
                               atol=1e-5, rtol=1e-5)


def test_scale_tril_is_lower_triangular_with_positive_diagonal():
    d = 4
    tril = obj.scale_tril_from(torch.randn(3, d), torch.randn(3, d * (d - 1) // 2))
    assert torch.equal(tril, tril.tril())
    assert (tril.diagonal(dim1=-2, dim2=-1) > 0).all()


def test_fullcov_kl_and_log_density_equal_multivariate_normal():
    d = 4
    mu = torch.randn(5, d, dtype=torch.float64)
    tril = obj.scale_tril_from(0.3 * torch.randn(5, d, dtype=torch.float64),
                               torch.randn(5, d * (d - 1) // 2, dtype=torch.float64))
    q = MultivariateNormal(mu, scale_tril=tril)
    prior = MultivariateNormal(torch.zeros(d, dtype=torch.float64), torch.eye(d, dtype=torch.float64))
    torch.testing.assert_close(obj.kl_fullcov_gaussian(mu, tril), kl_divergence(q, prior), atol=1e-8, rtol=1e-8)
    z = q.sample((3,))  # 3×5×d
    torch.testing.assert_close(obj.log_normal_fullcov(z, mu, tril), q.log_prob(z), atol=1e-8, rtol=1e-8)


def test_sparsity_kl_equals_bernoulli_kl_closed_form():
    rho_hat = torch.tensor([0.01, 0.05, 0.3, 0.9], dtype=torch.float64)
    ref = kl_divergence(Bernoulli(probs=torch.full_like(rho_hat, 0.05)), Bernoulli(probs=rho_hat))
    torch.testing.assert_close(obj.sparsity_kl(0.05, rho_hat), ref, atol=1e-10, rtol=1e-10)
    assert obj.sparsity_kl(0.05, torch.tensor([0.05])).item() == pytest.approx(0.0, abs=1e-7)


def test_k_sparse_keeps_exactly_k_and_blocks_gradient_elsewhere():
    z = torch.randn(6, 10, requires_grad=True)
    out = obj.k_sparse(z, 3)
    assert ((out != 0).sum(1) == 3).all()
    kept = out != 0
    assert torch.equal(out[kept], z.detach()[kept])
    assert (z.detach()[kept].view(6, 3).min(1).values >= z.detach()[~kept].view(6, 7).max(1).values).all()
    out.pow(2).sum().backward()
    assert (z.grad[~kept] == 0).all() and (z.grad[kept] != 0).all()


def brute_jacobian_frobenius(fn, x):
    """‖∂fn(x_i)/∂x_i‖²_F per row, from torch.autograd.functional.jacobian one row at a time."""
    return torch.stack([torch.autograd.functional.jacobian(lambda v: fn(v.unsqueeze(0))[0], row).pow(2).sum()
                        for row in x])


def test_contractive_closed_form_for_sigmoid_layer_matches_autograd():
    layer = torch.nn.Linear(7, 4).double()
    x = torch.rand(5, 7, dtype=torch.float64)
    h = torch.sigmoid(layer(x))
    closed = obj.contractive_penalty_sigmoid(h, layer.weight)
    torch.testing.assert_close(closed, brute_jacobian_frobenius(lambda v: torch.sigmoid(layer(v)), x))


def test_exact_jacobian_penalty_matches_brute_force_on_deep_net():
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3), torch.nn.Sigmoid())
    net = net.double()
    x = torch.rand(4, 6, dtype=torch.float64, requires_grad=True)
    exact = obj.jacobian_frobenius_sq(net(x), x, probes=0)
    torch.testing.assert_close(exact, brute_jacobian_frobenius(net, x.detach()))
    exact.sum().backward()  # differentiable w.r.t. the parameters (create_graph)
    assert net[0].weight.grad is not None and net[0].weight.grad.abs().sum() > 0


def test_hutchinson_estimate_is_unbiased():
    net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Sigmoid()).double()
    x = torch.rand(3, 6, dtype=torch.float64, requires_grad=True)
    exact = obj.jacobian_frobenius_sq(net(x), x, probes=0).detach()
    estimate = obj.jacobian_frobenius_sq(net(x), x, probes=2000).detach()
    torch.testing.assert_close(estimate, exact, rtol=0.15, atol=0)


def test_corruptions():
    x = torch.full((2000, 1, 4, 4), 0.5)
    masked = obj.corrupt(x, "mask", 0.3)
    assert (masked == 0).float().mean().item() == pytest.approx(0.3, abs=0.01)
    sp = obj.corrupt(x, "salt-pepper", 0.2)
    changed = sp != 0.5
    assert changed.float().mean().item() == pytest.approx(0.2, abs=0.01)
    assert set(sp[changed].unique().tolist()) == {0.0, 1.0}
    noisy = obj.corrupt(x, "gaussian", 0.1)
    assert noisy.min() >= 0 and noisy.max() <= 1
    assert (noisy - x).std().item() == pytest.approx(0.1, rel=0.05)
    with pytest.raises(ValueError, match="corruption"):
        obj.corrupt(x, "blur", 0.1)


def test_iwae_bound_with_one_sample_is_the_log_weight():
    log_w = torch.randn(5, 1)
    torch.testing.assert_close(obj.iwae_bound(log_w), log_w[:, 0])
    big = torch.tensor([[1000.0, 1000.0]])
    assert obj.iwae_bound(big).item() == pytest.approx(1000.0)


def test_nearest_code_equals_brute_force():
    z_e, codebook = torch.randn(50, 3), torch.randn(7, 3)
    torch.testing.assert_close(obj.nearest_code(z_e, codebook), torch.cdist(z_e, codebook).argmin(1))


def test_vq_straight_through_and_stop_gradients():
    z_e = torch.randn(4, 2, 3, requires_grad=True)
    codebook = torch.randn(5, 3, requires_grad=True)
    z_q = codebook[obj.nearest_code(z_e.reshape(-1, 3), codebook).view(4, 2)]
    st = obj.straight_through(z_e, z_q)
    torch.testing.assert_close(st, z_q)
    (st * torch.arange(3.0)).sum().backward()
    torch.testing.assert_close(z_e.grad, torch.arange(3.0).expand(4, 2, 3))  # identity gradient to the encoder
    assert codebook.grad is None or codebook.grad.abs().sum() == 0
    z_e.grad = None
    codebook_loss, commitment = obj.vq_losses(z_e, z_q)
    codebook_loss.sum().backward(retain_graph=True)
    assert z_e.grad is None and codebook.grad.abs().sum() > 0  # ‖sg[z_e] − e‖² moves only the codebook
    codebook.grad = None
    commitment.sum().backward()
    assert z_e.grad.abs().sum() > 0 and codebook.grad is None  # ‖z_e − sg[e]‖² moves only the encoder
    torch.testing.assert_close(commitment, (z_e - z_q).pow(2).flatten(1).sum(1))


def mws_reference(z, mu, logvar, n_data):
    """Chen et al.'s minibatch-weighted sampling written out with explicit loops."""
    m, d = z.shape
    log_qz, log_prod = [], []
    for i in range(m):
        dens = [Normal(mu[j], (0.5 * logvar[j]).exp()).log_prob(z[i]) for j in range(m)]  # each d
        joint = torch.stack([v.sum() for v in dens])
        log_qz.append(torch.logsumexp(joint, 0) - math.log(n_data * m))
        per_dim = torch.stack(dens)  # m×d
        log_prod.append((torch.logsumexp(per_dim, 0) - math.log(n_data * m)).sum())
    return torch.stack(log_qz), torch.stack(log_prod)


def test_tc_decomposition_matches_minibatch_weighted_sampling():
    mu, logvar = torch.randn(6, 3, dtype=torch.float64), 0.5 * torch.randn(6, 3, dtype=torch.float64)
    z = obj.reparameterize(mu, logvar)
    mi, tc, dim_kl = obj.tc_decomposition(z, mu, logvar, dataset_size=1000)
    log_qz, log_prod = mws_reference(z, mu, logvar, 1000)
    log_q_given_x = Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(1)
    log_pz = Normal(0.0, 1.0).log_prob(z).sum(1)
    torch.testing.assert_close(mi, log_q_given_x - log_qz)
    torch.testing.assert_close(tc, log_qz - log_prod)
    torch.testing.assert_close(dim_kl, log_prod - log_pz)
    torch.testing.assert_close(mi + tc + dim_kl, log_q_given_x - log_pz)  # the KL, split in three


def test_tc_is_zero_for_a_factorised_aggregate_posterior():
    """Every x with the same diagonal posterior and N = 1: q(z) = q(z|x) factorises, so MI = TC = 0."""
    mu = torch.randn(1, 4).expand(8, 4)
    logvar = torch.randn(1, 4).expand(8, 4)
    mi, tc, _ = obj.tc_decomposition(obj.reparameterize(mu, logvar), mu, logvar, dataset_size=1)
    torch.testing.assert_close(tc, torch.zeros(8), atol=1e-5, rtol=0)
    torch.testing.assert_close(mi, torch.zeros(8), atol=1e-5, rtol=0)


def test_permute_dims_shuffles_each_dimension_independently():
    z = torch.arange(200.0).view(100, 2) * torch.tensor([1.0, -1.0])
    perm = obj.permute_dims(z)
    for d in range(2):
        assert torch.equal(perm[:, d].sort().values, z[:, d].sort().values)
    assert not torch.equal(perm[:, 0].abs().argsort(), perm[:, 1].abs().argsort())


def test_density_ratio_tc_is_log_odds_of_the_discriminator():
    logits = torch.randn(5, 2)
    p_joint = logits.softmax(1)[:, 0]
    torch.testing.assert_close(obj.density_ratio_tc(logits), (p_joint / (1 - p_joint)).log(), atol=1e-5, rtol=1e-5)


def mss_reference(z, mu, logvar, n):
    """Chen et al.'s stratified estimate, one sample at a time: own x_i weighs 1/N, x_{i+1} (N − M + 1)/(N(M − 1)),
    every other x_j 1/(M − 1)."""
    m, d = z.shape
    log_qz, log_prod = torch.zeros(m, dtype=z.dtype), torch.zeros(m, dtype=z.dtype)
    for i in range(m):
        weights = torch.full((m,), 1.0 / (m - 1), dtype=z.dtype)
        weights[(i + 1) % m] = (n - m + 1) / (n * (m - 1))
        weights[i] = 1.0 / n
        dens = Normal(mu, (0.5 * logvar).exp()).log_prob(z[i].expand(m, d)).exp()  # m×d: q(z_i,d | x_j)
        log_qz[i] = (weights * dens.prod(1)).sum().log()
        log_prod[i] = (weights.unsqueeze(1) * dens).sum(0).log().sum()
    return log_qz, log_prod


def test_stratified_tc_estimate_matches_a_hand_loop():
    mu, logvar = torch.randn(12, 3) * 0.7, torch.randn(12, 3) * 0.3
    z = obj.reparameterize(mu, logvar)
    mi, tc, dim_kl = obj.tc_decomposition(z.double(), mu.double(), logvar.double(), 500, estimator="mss")
    log_qz, log_prod = mss_reference(z.double(), mu.double(), logvar.double(), 500)
    log_q_given_x = Normal(mu.double(), (0.5 * logvar.double()).exp()).log_prob(z.double()).sum(1)
    torch.testing.assert_close(mi, log_q_given_x - log_qz)
    torch.testing.assert_close(tc, log_qz - log_prod)
    torch.testing.assert_close(mi + tc + dim_kl, log_q_given_x - Normal(0.0, 1.0).log_prob(z.double()).sum(1),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("m", [3, 64])
def test_tc_weights_of_each_row_sum_to_one_for_mss_and_to_one_over_n_for_mws(m):
    mss = obj.tc_log_weights(m, 1000, "mss")
    torch.testing.assert_close(mss.logsumexp(1), torch.zeros(m), atol=1e-6, rtol=0)
    torch.testing.assert_close(obj.tc_log_weights(m, 1000, "mws").logsumexp(1), torch.full((m,), -math.log(1000)))


@pytest.mark.parametrize("dims", [2, 4])
def test_stratified_estimate_has_no_small_batch_bias_where_weighted_sampling_has(dims):
    """Independent latents of a large data set (N = 100,000, narrow posteriors around N(0, I) means): the true TC is
    ≈ 0. With a batch of 256, mws weighs the other samples by 1/(N·M) and reports tens of nats; mss stays near 0."""
    mu = torch.randn(256, dims)
    logvar = torch.full((256, dims), math.log(0.01))
    z = obj.reparameterize(mu, logvar)
    _, tc_mss, _ = obj.tc_decomposition(z, mu, logvar, 100_000, estimator="mss")
    _, tc_mws, _ = obj.tc_decomposition(z, mu, logvar, 100_000, estimator="mws")
    assert abs(tc_mss.mean().item()) < 2.0
    assert tc_mws.mean().item() > 10.0


def test_tc_estimator_errors_are_clear():
    with pytest.raises(ValueError, match="'mws' or 'mss'"):
        obj.tc_log_weights(8, 100, "exact")
    with pytest.raises(ValueError, match="N ≥ the batch size"):
        obj.tc_log_weights(8, 4, "mss")
