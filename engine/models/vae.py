"""VAE (Kingma & Welling): diagonal Gaussian posterior, N(0, I) prior, closed-form KL.

The base of every diagonal-Gaussian family (β-VAE, capacity VAE, CVAE, IWAE, β-TCVAE, FactorVAE): they
override `regularizer` (what replaces KL in the loss) and `live_values` (β, C… in force at a step).
"""

from __future__ import annotations

import torch
from torch import nn

from .. import objectives as obj
from .. import rng
from .base import LatentCode, LossOutput, register
from .common import EncoderDecoderModel


@register
class VAE(EncoderDecoderModel):
    family = "vae"
    title = "Variational autoencoder"
    formula = "−ELBO = −E_q[log p(x|z)] + KL(q(z|x) ‖ N(0, I)),  z = μ + σ⊙ε"
    is_variational = True
    can_sample = True
    has_importance_weights = True

    def __init__(self, shape, num_classes=0, **hparams):
        super().__init__(shape, num_classes, **hparams)
        self.to_mu = nn.Linear(self.encoder.out_features, self.latent_dim)
        self.to_logvar = nn.Linear(self.encoder.out_features, self.latent_dim)

    def posterior(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, log σ²) of q(z|x[, y]), each n×D."""
        h = self.features(x, y)
        return self.to_mu(h), self.to_logvar(h)

    def encode(self, x, y=None):
        mu, logvar = self.posterior(x, y)
        z = obj.reparameterize(mu, logvar) if self.training else mu
        return LatentCode(mu, z, logvar=logvar)

    def kl_weight(self, step: int) -> float:
        """Weight of KL in the loss at `step` (β for β-VAE)."""
        return 1.0

    def regularizer(self, kl: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor,
                    step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The term added to the reconstruction NLL (here weight·KL) and extra named terms to log."""
        return self.kl_weight(step) * kl, {}

    def loss(self, x, y=None, step=0):
        mu, logvar = self.posterior(x, y)
        z = obj.reparameterize(mu, logvar)
        recon = self.nll(self.decode(z, y), x).mean()
        kl_dims = obj.kl_diag_gaussian(mu, logvar).mean(0)
        kl = kl_dims.sum()
        reg, extra = self.regularizer(kl, mu, logvar, z, step)
        total = recon + reg
        terms = {"total": total.detach(), "recon": recon.detach(), "kl": kl.detach()}
        terms.update({name: value.detach() for name, value in extra.items()})
        return LossOutput(total, terms, kl_dims.detach())

    def log_weight_parts(self, x: torch.Tensor, y: torch.Tensor | None,
                         z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log p(x|z), log N(z; 0, I)) for samples z (n×k×D), each n×k."""
        n, k, d = z.shape
        y_rep = None if y is None else y.repeat_interleave(k)
        x_rep = x.repeat_interleave(k, 0)
        log_px = -self.nll(self.decode(z.reshape(n * k, d), y_rep), x_rep).view(n, k)
        return log_px, obj.log_standard_normal(z).sum(-1)

    def diag_samples(self, mu: torch.Tensor, logvar: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """k reparameterised samples per row, z = μ + σ⊙ε (n×k×D), and their log q(z|x) (n×k)."""
        eps = rng.randn(mu.shape[0], k, mu.shape[1], device=mu.device, dtype=mu.dtype)
        z = mu.unsqueeze(1) + (0.5 * logvar).exp().unsqueeze(1) * eps
        return z, obj.log_normal_diag(z, mu.unsqueeze(1), logvar.unsqueeze(1)).sum(-1)

    def log_importance_weights(self, x, y=None, k=1):
        mu, logvar = self.posterior(x, y)
        z, log_q = self.diag_samples(mu, logvar, k)
        log_px, log_pz = self.log_weight_parts(x, y, z)
        return log_px + log_pz - log_q

    def sample(self, n, y=None):
        y = self.default_labels(n) if y is None else y
        return self.decode_images(rng.randn(n, self.latent_dim, device=self.device), y)
