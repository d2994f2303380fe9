"""VAE (Kingma & Welling): diagonal Gaussian posterior, N(0, I) prior, closed-form KL."""

from __future__ import annotations

import torch
from torch import nn

from .. import objectives as obj
from .backbones import MLPDecoder, MLPEncoder
from .base import LatentCode, LossOutput, ModelBase, register


@register
class VAE(ModelBase):
    family = "vae"
    title = "Variational autoencoder"
    formula = "−ELBO = −E_q[log p(x|z)] + KL(q(z|x) ‖ N(0, I)),  z = μ + σ⊙ε"
    is_variational = True
    can_sample = True

    def __init__(self, shape, num_classes=0, **hparams):
        super().__init__(shape, num_classes, **hparams)
        hp = self.hparams
        self.encoder = MLPEncoder(self.data_shape, hp["hidden"], hp["depth"])
        self.to_mu = nn.Linear(self.encoder.out_features, hp["latent_dim"])
        self.to_logvar = nn.Linear(self.encoder.out_features, hp["latent_dim"])
        self.decoder = MLPDecoder(self.data_shape, hp["latent_dim"], hp["hidden"], hp["depth"])

    def encode(self, x, y=None):
        h = self.encoder(x)
        mu, logvar = self.to_mu(h), self.to_logvar(h)
        z = obj.reparameterize(mu, logvar) if self.training else mu
        return LatentCode(mu, z, logvar=logvar)

    def decode(self, z, y=None):
        return self.decoder(z)

    def kl_weight(self, step: int) -> float:
        return 1.0

    def loss(self, x, y=None, step=0):
        h = self.encoder(x)
        mu, logvar = self.to_mu(h), self.to_logvar(h)
        z = obj.reparameterize(mu, logvar)
        recon = obj.reconstruction_nll(self.decode(z), x, self.hparams["likelihood"], self.hparams["sigma"]).mean()
        kl_dims = obj.kl_diag_gaussian(mu, logvar).mean(0)
        kl = kl_dims.sum()
        total = recon + kl
        return LossOutput(total, {"total": total.detach(), "recon": recon.detach(), "kl": kl.detach()},
                          kl_dims.detach())

    def sample(self, n, y=None):
        device = next(self.parameters()).device
        return self.decode_images(torch.randn(n, self.latent_dim, device=device))
