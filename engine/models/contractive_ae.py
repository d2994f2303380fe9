"""Contractive autoencoder (Rifai et al.): penalise the Frobenius norm of the code's Jacobian w.r.t. the input.

The encoder is deep (backbone + sigmoid code layer), so the single-layer closed form
Σ_j (h_j(1−h_j))² Σ_i W_ji² (`objectives.contractive_penalty_sigmoid`) does not apply to it; the penalty is
computed by autograd: exactly with one vector–Jacobian product per code unit (jacobian_probes = 0), or as a
Hutchinson estimate (1/m) Σ ‖Jᵀv‖², v ~ N(0, I), with m = jacobian_probes passes (cheaper for wide codes).
"""

from __future__ import annotations

import torch

from .. import objectives as obj
from .base import HyperParam, register
from .common import CodeAutoencoder


@register
class ContractiveAE(CodeAutoencoder):
    family = "contractive-ae"
    title = "Contractive autoencoder"
    formula = "L = −log p(x|f(h)) + λ ‖∂h/∂x‖²_F,  h = sigmoid(g(x))  (exact autograd Jacobian or Hutchinson)"
    hparams_spec = (
        HyperParam("lam", float, 0.1, 0.0, 1000.0, "Contraction weight λ in + λ ‖∂h/∂x‖²_F.", live=True),
        HyperParam("jacobian_probes", int, 0, 0, 64,
                   "0 = exact ‖J‖²_F (one backward pass per code unit); m > 0 = Hutchinson (1/m)Σ‖Jᵀv‖², v~N(0,I)."),
    )

    def activate(self, pre_code):
        return torch.sigmoid(pre_code)

    def encoder_input(self, x):
        return x.detach().clone().requires_grad_(True)

    def jacobian_penalty(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Batch mean of ‖∂h/∂x‖²_F, always with a graph: works under torch.no_grad and torch.inference_mode
        (evaluation, epoch-end test scores), where autograd is off and the input is an inference tensor."""
        with torch.inference_mode(False), torch.enable_grad():
            x_in = x.detach().clone().requires_grad_(True)
            return obj.jacobian_frobenius_sq(self.code(x_in, y), x_in, self.hparams["jacobian_probes"]).mean()

    def penalties(self, x_in, z):
        if z.requires_grad and x_in.requires_grad:
            value = obj.jacobian_frobenius_sq(z, x_in, self.hparams["jacobian_probes"]).mean()
        else:
            value = self.jacobian_penalty(x_in).detach()
        return {"contraction": (self.live_value("lam"), value)}
