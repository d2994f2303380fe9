"""IWAE (Burda et al.): the k-sample importance-weighted bound log (1/k) Σ_i w_i as the training objective."""

from __future__ import annotations

from .. import objectives as obj
from .base import HyperParam, LossOutput, register
from .vae import VAE


@register
class IWAE(VAE):
    family = "iwae"
    title = "Importance-weighted autoencoder"
    formula = "L = −log (1/k) Σ_i p(x, z_i)/q(z_i|x),  z_i ~ q(z|x) i.i.d. (k = 1 gives the ELBO)"
    hparams_spec = (
        HyperParam("k", int, 5, 1, 256, "Number k of importance samples in log (1/k) Σ_i w_i."),
    )

    def loss(self, x, y=None, step=0):
        mu, logvar = self.posterior(x, y)
        z, log_q = self.diag_samples(mu, logvar, self.hparams["k"])
        log_px, log_pz = self.log_weight_parts(x, y, z)
        total = -obj.iwae_bound(log_px + log_pz - log_q).mean()
        kl_dims = obj.kl_diag_gaussian(mu, logvar).mean(0).detach()
        terms = {"total": total.detach(), "recon": -log_px.mean().detach(), "kl": kl_dims.sum()}
        return LossOutput(total, terms, kl_dims)
