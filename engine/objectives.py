"""The math of the seeds: likelihoods, KL terms, penalties and bounds — each a small function.

Shapes: x and decoder outputs n×C×H×W; latent tensors n×D. Per-image values are summed over pixels / latent
dimensions; callers average over the batch, so numbers are nats per image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import rng
from .distributed import rand_like_batch, randn_like_batch  # per-sample noise: one rank's rows of the global batch's

LOG_2PI = math.log(2.0 * math.pi)


# --- likelihoods ------------------------------------------------------------------------------------
def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """−log p(x|z) = Σ_pixels BCE-with-logits(logits, x), per image (n,)."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def gaussian_nll(mean: torch.Tensor, x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """−log N(x; mean, σ²I) = Σ_pixels [(x−mean)²/(2σ²) + log σ + ½ log 2π], per image (n,)."""
    d = x[0].numel()
    sq = (x - mean).pow(2).flatten(1).sum(1)
    return sq / (2.0 * sigma * sigma) + d * (math.log(sigma) + 0.5 * LOG_2PI)


def reconstruction_nll(decoded: torch.Tensor, x: torch.Tensor, likelihood: str, sigma: float = 1.0) -> torch.Tensor:
    """Per-image negative log-likelihood under the family's likelihood ('bernoulli' or 'gaussian')."""
    if likelihood == "bernoulli":
        return bernoulli_nll(decoded, x)
    return gaussian_nll(decoded, x, sigma)


def bernoulli_entropy(x: torch.Tensor) -> torch.Tensor:
    """Σ_pixels H(Bernoulli(x)) per image: the floor of the Bernoulli NLL for grey-valued targets (n,)."""
    p = x.clamp(1e-7, 1 - 1e-7)
    h = -(p * p.log() + (1 - p) * (1 - p).log())
    return torch.where((x <= 0) | (x >= 1), torch.zeros_like(h), h).flatten(1).sum(1)


# --- Gaussian densities and KL ---------------------------------------------------------------------
def kl_diag_gaussian(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, diag σ²) ‖ N(0, I)) per dimension: ½(μ² + σ² − log σ² − 1), shape n×D."""
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0)


def linear_ramp(step: int | torch.Tensor, steps: int) -> float | torch.Tensor:
    """min(1, max(0, t)/N): a float for an int step, a 0-d tensor for a tensor step (no host sync, and one
    torch.compile graph / CUDA graph serves every step of a warm-up)."""
    if isinstance(step, torch.Tensor):
        return (step.float() / steps).clamp(0.0, 1.0)
    return min(1.0, max(0, step) / steps)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z = μ + σ ⊙ ε, ε ~ N(0, I)."""
    return mu + randn_like_batch(mu) * (0.5 * logvar).exp()


def log_normal_diag(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; μ, diag σ²) per element: −½[(z−μ)²/σ² + log σ² + log 2π] (broadcasting)."""
    return -0.5 * ((z - mu).pow(2) * (-logvar).exp() + logvar + LOG_2PI)


def log_standard_normal(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, 1) per element."""
    return -0.5 * (z.pow(2) + LOG_2PI)


def scale_tril_from(log_diag: torch.Tensor, offdiag: torch.Tensor) -> torch.Tensor:
    """L = L_mask ⊙ L' + diag(σ), σ = exp(log σ) > 0 (source 003, full-covariance posterior); n×D×D."""
    n, d = log_diag.shape
    rows, cols = torch.tril_indices(d, d, offset=-1, device=log_diag.device)
    lower = log_diag.new_zeros(n, d, d)
    lower[:, rows, cols] = offdiag
    return lower + torch.diag_embed(log_diag.exp())


def kl_fullcov_gaussian(mu: torch.Tensor, scale_tril: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, LLᵀ) ‖ N(0, I)) = ½(‖L‖²_F + ‖μ‖² − D − 2 Σ log L_ii), per image (n,)."""
    d = mu.shape[-1]
    log_det = scale_tril.diagonal(dim1=-2, dim2=-1).abs().log().sum(-1)
    return 0.5 * (scale_tril.pow(2).sum((-2, -1)) + mu.pow(2).sum(-1) - d) - log_det


def log_normal_fullcov(z: torch.Tensor, mu: torch.Tensor, scale_tril: torch.Tensor) -> torch.Tensor:
    """log N(z; μ, LLᵀ) = −½‖L⁻¹(z−μ)‖² − Σ log|L_ii| − D/2 log 2π, per sample (leading dims of z)."""
    diff = (z - mu).unsqueeze(-1)
    eps = torch.linalg.solve_triangular(scale_tril, diff, upper=False).squeeze(-1)
    log_det = scale_tril.diagonal(dim1=-2, dim2=-1).abs().log().sum(-1)
    return -0.5 * eps.pow(2).sum(-1) - log_det - 0.5 * mu.shape[-1] * LOG_2PI


# --- bounds -------------------------------------------------------------------------------------------
def log_mean_exp(values: torch.Tensor, dim: int) -> torch.Tensor:
    """log (1/k) Σ_i exp(v_i), numerically stable."""
    return torch.logsumexp(values, dim) - math.log(values.shape[dim])


def iwae_bound(log_weights: torch.Tensor) -> torch.Tensor:
    """IWAE-k bound per image: log (1/k) Σ_i w_i with log w_i = log p(x, z_i) − log q(z_i|x); input n×k."""
    return log_mean_exp(log_weights, 1)


# --- autoencoder penalties ----------------------------------------------------------------------------
def sparsity_kl(rho: float, rho_hat: torch.Tensor) -> torch.Tensor:
    """KL(ρ ‖ ρ̂_j) = ρ log(ρ/ρ̂_j) + (1−ρ) log((1−ρ)/(1−ρ̂_j)) per unit (source 001, sparse autoencoder)."""
    rho_hat = rho_hat.clamp(1e-6, 1 - 1e-6)
    return rho * (math.log(rho) - rho_hat.log()) + (1 - rho) * (math.log(1 - rho) - (1 - rho_hat).log())


def k_sparse(z: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest units of each row, zero the rest; gradient flows through the kept units only."""
    idx = z.topk(k, dim=1).indices
    mask = torch.zeros_like(z).scatter_(1, idx, 1.0)
    return z * mask


def contractive_penalty_sigmoid(h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Closed form for h = sigmoid(Wx + b): ‖J‖²_F = Σ_j (h_j(1−h_j))² Σ_i W_ji², per image (n,)."""
    return (h * (1 - h)).pow(2) @ weight.pow(2).sum(1)


def jacobian_frobenius_sq(code: torch.Tensor, x: torch.Tensor, probes: int = 0) -> torch.Tensor:
    """‖∂code/∂x‖²_F per image (n,), differentiable (create_graph).

    probes = 0: exact, one vector–Jacobian product per code unit (D backward passes);
    probes = m > 0: Hutchinson estimate (1/m) Σ ‖Jᵀv‖², v ~ N(0, I) in code space (unbiased, m passes).
    Rows of a batch are independent (no batch coupling in the encoders), so one pass serves all images.
    """
    n, d = code.shape
    directions = ([F.one_hot(torch.full((n,), j, device=code.device), d).to(code.dtype) for j in range(d)]
                  if probes == 0 else [rng.randn_like(code) for _ in range(probes)])
    total = code.new_zeros(n)
    for v in directions:
        (grad,) = torch.autograd.grad(code, x, grad_outputs=v, create_graph=True)
        total = total + grad.pow(2).flatten(1).sum(1)
    return total if probes == 0 else total / probes


# --- corruption (denoising autoencoder) -----------------------------------------------------------------
def corrupt(x: torch.Tensor, kind: str, level: float) -> torch.Tensor:
    """x̃ ~ M(x̃|x): 'mask' zeroes a fraction, 'gaussian' adds N(0, σ²) (clamped), 'salt-pepper' sets a
    fraction of pixels to 0 or 1 at random."""
    if kind == "mask":
        return x * (rand_like_batch(x) >= level).to(x.dtype)
    if kind == "gaussian":
        return (x + level * randn_like_batch(x)).clamp(0.0, 1.0)
    if kind == "salt-pepper":
        hit = rand_like_batch(x) < level
        salt = (rand_like_batch(x) < 0.5).to(x.dtype)
        return torch.where(hit, salt, x)
    raise ValueError(f"unknown corruption {kind!r}; use mask, gaussian or salt-pepper")


# --- VQ-VAE -----------------------------------------------------------------------------------------------
def nearest_code(z_e: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest codebook vector (squared Euclidean) for each row of z_e (m×D) → (m,)."""
    dist = z_e.pow(2).sum(1, keepdim=True) - 2.0 * z_e @ codebook.t() + codebook.pow(2).sum(1)
    return dist.argmin(1)


def straight_through(z_e: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
    """Forward value z_q, backward identity to z_e: z_e + sg[z_q − z_e]."""
    return z_e + (z_q - z_e).detach()


def vq_losses(z_e: torch.Tensor, z_q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(codebook ‖sg[z_e] − e‖², commitment ‖z_e − sg[e]‖²) per image, summed over positions and dims."""
    codebook = (z_e.detach() - z_q).pow(2).flatten(1).sum(1)
    commitment = (z_e - z_q.detach()).pow(2).flatten(1).sum(1)
    return codebook, commitment


# --- total correlation (β-TCVAE, FactorVAE) ------------------------------------------------------------
def tc_decomposition(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, dataset_size: int,
                     estimator: str = "mws") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(index-code MI, total correlation, dimension-wise KL) per image (Chen et al. 2018), with log q(z_i) ≈
    log Σ_j w_ij q(z_i|x_j) and likewise per dimension (weights from `tc_log_weights`).

    MI = log q(z|x) − log q(z), TC = log q(z) − Σ_d log q(z_d), dim-KL = Σ_d log q(z_d) − log p(z);
    their sum is the single-sample KL estimate log q(z|x) − log p(z).
    """
    log_w = tc_log_weights(z.shape[0], dataset_size, estimator, z.device, z.dtype)
    pairwise = log_normal_diag(z.unsqueeze(1), mu.unsqueeze(0), logvar.unsqueeze(0))  # M×M×D: log q(z_i,d|x_j)
    log_qz_given_x = log_normal_diag(z, mu, logvar).sum(1)
    log_qz = torch.logsumexp(pairwise.sum(2) + log_w, dim=1)
    log_prod_qzd = torch.logsumexp(pairwise + log_w.unsqueeze(-1), dim=1).sum(1)
    log_pz = log_standard_normal(z).sum(1)
    return log_qz_given_x - log_qz, log_qz - log_prod_qzd, log_prod_qzd - log_pz


def tc_log_weights(m: int, dataset_size: int, estimator: str, device: torch.device | str | None = None,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """M×M log-weights w_ij of the minibatch estimate q(z_i) ≈ Σ_j w_ij q(z_i|x_j) (Chen et al. 2018, appendix).

    mws (minibatch-weighted sampling): every w_ij = 1/(N·M). mss (minibatch-stratified sampling): the sample's
    own x_i weighs 1/N, one other (j = i+1 mod M) (N − M + 1)/(N·(M − 1)) and the remaining M − 2 weigh
    1/(M − 1) each; the weights of a row sum to 1, so with N ≫ M the other samples stand for the whole data
    set instead of being weighted down by N (mws's small-batch bias).
    """
    n = float(dataset_size)
    if estimator == "mws" or m < 2:
        return torch.full((m, m), -math.log(n * m), device=device, dtype=dtype)
    if estimator != "mss":
        raise ValueError(f"TC estimator must be 'mws' or 'mss', got {estimator!r}")
    if n < m:
        raise ValueError(f"the stratified TC estimate needs the data set size N ≥ the batch size M, got N={n:g}, M={m}")
    others = 1.0 / (m - 1)
    log_w = torch.full((m, m), math.log(others), device=device, dtype=dtype)
    rows = torch.arange(m, device=device)
    log_w[rows, (rows + 1) % m] = math.log((n - m + 1) / (n * (m - 1))) if n > m - 1 else -math.inf
    log_w[rows, rows] = -math.log(n)
    return log_w


def permute_dims(z: torch.Tensor) -> torch.Tensor:
    """Shuffle each latent dimension independently across the batch: samples of Π_d q(z_d) (Kim & Mnih)."""
    n, d = z.shape
    order = torch.argsort(rng.rand(n, d, device=z.device), dim=0)
    return z.gather(0, order)


def density_ratio_tc(logits: torch.Tensor) -> torch.Tensor:
    """TC ≈ log D(z)/(1 − D(z)) per image, D = softmax of the discriminator's (joint, product) logits."""
    return logits[:, 0] - logits[:, 1]

