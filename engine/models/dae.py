"""Denoising autoencoder (Vincent et al.): encode a corrupted x̃ ~ M(x̃|x), reconstruct the clean x."""

from __future__ import annotations

from .. import objectives as obj
from .base import HyperParam, register
from .common import CodeAutoencoder


@register
class DAE(CodeAutoencoder):
    family = "dae"
    title = "Denoising autoencoder"
    formula = "L = −log p(x | f(g(x̃))),  x̃ ~ M(x̃|x): masking, Gaussian or salt-and-pepper; target the clean x"
    hparams_spec = (
        HyperParam("corruption", str, "mask", choices=("mask", "gaussian", "salt-pepper"),
                   help="M(x̃|x): mask zeroes a fraction of pixels, gaussian adds N(0, σ²), salt-pepper sets 0/1."),
        HyperParam("noise_level", float, 0.3, 0.0, 1.0,
                   "Fraction of pixels masked / set to 0 or 1, or σ of the Gaussian noise in x̃ ~ M(x̃|x).",
                   live=True),
    )

    def encoder_input(self, x):
        """Corruption only in training mode: evaluation and exploration see the clean input."""
        if not self.training:
            return x
        return obj.corrupt(x, self.hparams["corruption"], self.live_value("noise_level"))
