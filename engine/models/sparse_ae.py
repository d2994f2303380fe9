"""Sparse autoencoder (Ng): sigmoid code units pushed towards a mean activation ρ by a KL penalty."""

from __future__ import annotations

import torch

from .. import objectives as obj
from .base import HyperParam, register
from .common import CodeAutoencoder


@register
class SparseAE(CodeAutoencoder):
    family = "sparse-ae"
    title = "Sparse autoencoder (KL sparsity)"
    formula = "L = −log p(x|f(h)) + β Σ_j KL(ρ ‖ ρ̂_j),  h = sigmoid(g(x)),  ρ̂_j = batch mean of h_j"
    hparams_spec = (
        HyperParam("beta", float, 1.0, 0.0, 1000.0, "Sparsity weight β in + β Σ_j KL(ρ ‖ ρ̂_j).", live=True),
        HyperParam("rho", float, 0.05, 0.0, 1.0, "Target mean activation ρ of each sigmoid code unit in KL(ρ ‖ ρ̂_j).",
                   low_inclusive=False, high_inclusive=False),
    )

    def activate(self, pre_code):
        return torch.sigmoid(pre_code)

    def penalties(self, x_in, z):
        rho_hat = z.mean(0)
        return {"sparsity": (self.live_value("beta"), obj.sparsity_kl(self.hparams["rho"], rho_hat).sum())}
