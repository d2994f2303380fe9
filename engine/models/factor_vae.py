"""FactorVAE (Kim & Mnih 2018): ELBO + γ·TC, TC estimated by the density-ratio trick with a discriminator
that tells codes z ~ q(z) from dimension-wise permuted codes ~ Π_d q(z_d); the discriminator has its own
Adam optimiser (lr 1e-4, betas 0.5/0.9) stepped in `after_step` on the batch's codes (those the loss sampled)
and their permutation. That optimiser is made at first use, on the device the model then lives on (fused on CPU
and CUDA), and `after_step` returns its numbers as tensors, so the step never waits on the device."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import distributed
from .. import objectives as obj
from .base import HyperParam, register
from .vae import VAE


def discriminator(latent_dim: int, hidden: int, layers: int) -> nn.Sequential:
    """MLP z → 2 logits (joint, permuted) with LeakyReLU(0.2)."""
    modules: list[nn.Module] = []
    width = latent_dim
    for _ in range(layers):
        modules += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
        width = hidden
    modules.append(nn.Linear(width, 2))
    return nn.Sequential(*modules)


@register
class FactorVAE(VAE):
    family = "factor-vae"
    title = "FactorVAE"
    formula = "L = −E_q[log p(x|z)] + KL(q(z|x) ‖ N(0, I)) + γ·E_q[log D(z)/(1 − D(z))]  (discriminator D)"
    hparams_spec = (
        HyperParam("gamma", float, 35.0, 0.0, 1000.0, "γ in + γ·TC, TC ≈ E[log D(z)/(1 − D(z))].", live=True),
        HyperParam("disc_hidden", int, 256, 8, 4096, "Units per hidden layer of the discriminator D(z)."),
        HyperParam("disc_layers", int, 3, 1, 8, "Hidden layers of the discriminator D(z)."),
        HyperParam("disc_lr", float, 1e-4, 0.0, 1.0, "Learning rate of D's own Adam optimiser (β₁ 0.5, β₂ 0.9).",
                   low_inclusive=False),
    )

    def __init__(self, shape, num_classes=0, **hparams):
        super().__init__(shape, num_classes, **hparams)
        self.init_objective_parts()

    def init_objective_parts(self):
        hp = self.hparams
        self.discriminator = discriminator(self.latent_dim, hp["disc_hidden"], hp["disc_layers"])
        self._disc_optimizer: torch.optim.Adam | None = None
        self._last_codes: torch.Tensor | None = None

    @property
    def disc_optimizer(self) -> torch.optim.Adam:
        """D's Adam, built on first use where the discriminator lives (fused on CPU/CUDA: one kernel per step)."""
        if self._disc_optimizer is None:
            params = list(self.discriminator.parameters())
            fused = params[0].device.type in ("cpu", "cuda") and all(p.dtype == torch.float32 for p in params)
            self._disc_optimizer = torch.optim.Adam(params, lr=self.hparams["disc_lr"], betas=(0.5, 0.9),
                                                    fused=fused or None)
        return self._disc_optimizer

    def main_parameters(self):
        return [p for name, p in self.named_parameters() if not name.startswith("discriminator.")]

    def auxiliary_optimizers(self):
        return {"discriminator": self.disc_optimizer}

    def regularizer(self, kl, mu, logvar, z, step):
        tc = obj.density_ratio_tc(self.discriminator(z)).mean()
        self._last_codes = z.detach() if self.training else None
        return kl + self.live_value("gamma") * tc, {"tc": tc}

    def discriminator_loss(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(cross-entropy, accuracy) of D on codes (class 0) and their dimension-wise permutation (class 1)."""
        z_perm = obj.permute_dims(z)
        logits = self.discriminator(torch.cat([z, z_perm]))
        target = torch.cat([torch.zeros(len(z), dtype=torch.long, device=z.device),
                            torch.ones(len(z), dtype=torch.long, device=z.device)])
        return F.cross_entropy(logits, target), (logits.argmax(1) == target).float().mean()

    def after_step(self, x, y, step):
        """One discriminator step on the codes the training loss just sampled (re-encoded if there are none)."""
        z, self._last_codes = self._last_codes, None
        if z is None or z.shape[0] != x.shape[0]:
            with torch.no_grad():
                mu, logvar = self.posterior(x, y)
                z = obj.reparameterize(mu, logvar)
        with torch.enable_grad():
            loss, accuracy = self.discriminator_loss(z.float())  # codes sampled under bf16 autocast: step in fp32
            self.disc_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            distributed.average_gradients(self.discriminator.parameters())  # data-parallel: mean over ranks
            self.disc_optimizer.step()
        return {"disc_loss": loss.detach(), "disc_accuracy": accuracy.detach()}

    def live_values(self, step):
        return {"gamma": self.hparams["gamma"]}
