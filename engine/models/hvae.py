"""Hierarchical VAE with two stochastic layers (the deep VAE of source 003):
q(z₁|x) q(z₂|z₁) for inference, p(z₂) = N(0, I), p(z₁|z₂), p(x|z₁) for generation.

The explored code is the top layer z₂: `encode(x).mean` = μ₂(μ₁(x)) and `decode(z₂)` goes through the mean of
p(z₁|z₂). In the loss KL(q(z₂|z₁) ‖ N(0, I)) is closed-form given z₁; the z₁ term log q(z₁|x) − log p(z₁|z₂)
is a one-sample estimate (z₂ depends on z₁, so no closed form applies).
"""

from __future__ import annotations

import torch
from torch import nn

from .. import objectives as obj
from .. import rng
from .backbones import mlp
from .base import HyperParam, LatentCode, LossOutput, register
from .common import EncoderDecoderModel


@register
class HVAE(EncoderDecoderModel):
    family = "hvae"
    title = "Hierarchical VAE (two stochastic layers)"
    formula = ("−ELBO = −E_q[log p(x|z₁) + log p(z₁|z₂) + log p(z₂) − log q(z₁|x) − log q(z₂|z₁)],  "
               "p(z₂) = N(0, I)")
    is_variational = True
    can_sample = True
    has_importance_weights = True
    hparams_spec = (
        HyperParam("z1_dim", int, 32, 1, 512, "Dimension of the lower stochastic layer z₁ (z₂ has latent_dim)."),
    )

    def __init__(self, shape, num_classes=0, **hparams):
        super().__init__(shape, num_classes, **hparams)
        hp = self.hparams
        d1, d2, width = hp["z1_dim"], self.latent_dim, hp["hidden"]
        self.to_z1 = nn.Linear(self.encoder.out_features, 2 * d1)
        self.q_z2 = mlp([d1, width, 2 * d2])
        self.p_z1 = mlp([d2, width, 2 * d1])

    def decoder_input_dim(self):
        return int(self.hparams["z1_dim"])

    @staticmethod
    def split(params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = params.chunk(2, dim=-1)
        return mu, logvar

    def q1(self, x, y=None):
        """(μ₁, log σ₁²) of q(z₁|x)."""
        return self.split(self.to_z1(self.features(x, y)))

    def encode(self, x, y=None):
        mu1, logvar1 = self.q1(x, y)
        mu2, logvar2 = self.split(self.q_z2(mu1))
        if not self.training:
            return LatentCode(mu2, mu2, logvar=logvar2, extras={"z1_mean": mu1})
        z1 = obj.reparameterize(mu1, logvar1)
        mu2_s, logvar2_s = self.split(self.q_z2(z1))
        return LatentCode(mu2, obj.reparameterize(mu2_s, logvar2_s), logvar=logvar2, extras={"z1_mean": mu1})

    def decode(self, z, y=None):
        """z₂ → mean of p(z₁|z₂) → decoder logits/means."""
        mu1, _ = self.split(self.p_z1(z))
        return self.decoder(mu1)

    def loss(self, x, y=None, step=0):
        mu1, logvar1 = self.q1(x, y)
        z1 = obj.reparameterize(mu1, logvar1)
        mu2, logvar2 = self.split(self.q_z2(z1))
        z2 = obj.reparameterize(mu2, logvar2)
        prior_mu1, prior_logvar1 = self.split(self.p_z1(z2))
        recon = self.nll(self.decoder(z1), x).mean()
        kl_z2_dims = obj.kl_diag_gaussian(mu2, logvar2).mean(0)
        kl_z1 = (obj.log_normal_diag(z1, mu1, logvar1) - obj.log_normal_diag(z1, prior_mu1, prior_logvar1)).sum(1)
        kl_z1, kl_z2 = kl_z1.mean(), kl_z2_dims.sum()
        total = recon + kl_z1 + kl_z2
        terms = {"total": total.detach(), "recon": recon.detach(), "kl": (kl_z1 + kl_z2).detach(),
                 "kl_z1": kl_z1.detach(), "kl_z2": kl_z2.detach()}
        return LossOutput(total, terms, kl_z2_dims.detach())

    def log_importance_weights(self, x, y=None, k=1):
        mu1, logvar1 = self.q1(x, y)
        n, d1 = mu1.shape
        z1 = mu1.unsqueeze(1) + (0.5 * logvar1).exp().unsqueeze(1) * rng.randn(n, k, d1, device=mu1.device)
        mu2, logvar2 = self.split(self.q_z2(z1))
        z2 = obj.reparameterize(mu2, logvar2)
        prior_mu1, prior_logvar1 = self.split(self.p_z1(z2))
        log_px = -self.nll(self.decoder(z1.reshape(n * k, d1)), x.repeat_interleave(k, 0)).view(n, k)
        log_p = log_px + obj.log_normal_diag(z1, prior_mu1, prior_logvar1).sum(-1) \
            + obj.log_standard_normal(z2).sum(-1)
        log_q = obj.log_normal_diag(z1, mu1.unsqueeze(1), logvar1.unsqueeze(1)).sum(-1) \
            + obj.log_normal_diag(z2, mu2, logvar2).sum(-1)
        return log_p - log_q

    def sample(self, n, y=None):
        """Ancestral sampling: z₂ ~ N(0, I), z₁ ~ p(z₁|z₂), image = mean of p(x|z₁)."""
        z2 = rng.randn(n, self.latent_dim, device=self.device)
        mu1, logvar1 = self.split(self.p_z1(z2))
        return self.to_image(self.decoder(obj.reparameterize(mu1, logvar1)))
