"""Full-covariance VAE: q(z|x) = N(μ, LLᵀ), L lower-triangular with positive diagonal (source 003).

`kl_per_dim` reports the KL of each marginal q(z_d|x) = N(μ_d, Σ_dd) from N(0, 1); they sum to at most the
joint KL (the remainder is the posterior's correlation).
"""

from __future__ import annotations

import torch
from torch import nn

from .. import objectives as obj
from .. import rng
from ..distributed import randn_like_batch
from .base import LatentCode, LossOutput, register
from .vae import VAE


@register
class FullCovVAE(VAE):
    family = "fullcov-vae"
    title = "Full-covariance Gaussian VAE"
    formula = "−ELBO = −E_q[log p(x|z)] + ½(‖L‖²_F + ‖μ‖² − D − 2Σ log L_ii),  z = μ + Lε,  L = L_mask⊙L' + diag(σ)"

    def __init__(self, shape, num_classes=0, **hparams):
        super().__init__(shape, num_classes, **hparams)
        d = self.latent_dim
        self.to_offdiag = nn.Linear(self.encoder.out_features, d * (d - 1) // 2)
        nn.init.zeros_(self.to_offdiag.weight)
        nn.init.zeros_(self.to_offdiag.bias)

    def posterior_tril(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ n×D, L n×D×D) of q(z|x); `to_logvar` gives log σ² of the diagonal, σ = exp(½ log σ²)."""
        h = self.features(x, y)
        return self.to_mu(h), obj.scale_tril_from(0.5 * self.to_logvar(h), self.to_offdiag(h))

    def posterior(self, x, y=None):
        """(μ, log Σ_dd): the marginal variances, for code that only needs a diagonal view."""
        mu, tril = self.posterior_tril(x, y)
        return mu, tril.pow(2).sum(-1).log()

    def encode(self, x, y=None):
        mu, tril = self.posterior_tril(x, y)
        z = mu + (tril @ randn_like_batch(mu).unsqueeze(-1)).squeeze(-1) if self.training else mu
        return LatentCode(mu, z, logvar=tril.pow(2).sum(-1).log(), scale_tril=tril)

    def loss(self, x, y=None, step=0):
        mu, tril = self.posterior_tril(x, y)
        z = mu + (tril @ randn_like_batch(mu).unsqueeze(-1)).squeeze(-1)
        recon = self.nll(self.decode(z, y), x).mean()
        kl = obj.kl_fullcov_gaussian(mu, tril).mean()
        total = recon + kl
        marginal_kl = obj.kl_diag_gaussian(mu, tril.pow(2).sum(-1).log()).mean(0)
        return LossOutput(total, {"total": total.detach(), "recon": recon.detach(), "kl": kl.detach()},
                          marginal_kl.detach())

    def log_importance_weights(self, x, y=None, k=1):
        mu, tril = self.posterior_tril(x, y)
        eps = rng.randn(mu.shape[0], k, mu.shape[1], device=mu.device, dtype=mu.dtype)
        z = mu.unsqueeze(1) + (tril.unsqueeze(1) @ eps.unsqueeze(-1)).squeeze(-1)
        log_det = tril.diagonal(dim1=-2, dim2=-1).log().sum(-1, keepdim=True)
        log_q = obj.log_standard_normal(eps).sum(-1) - log_det
        log_px, log_pz = self.log_weight_parts(x, y, z)
        return log_px + log_pz - log_q
