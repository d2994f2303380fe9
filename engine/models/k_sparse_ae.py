"""k-sparse autoencoder (Makhzani & Frey): a linear code of which only the k largest units survive."""

from __future__ import annotations

from .. import objectives as obj
from ..errors import ConfigError
from .base import HyperParam, register
from .common import CodeAutoencoder


@register
class KSparseAE(CodeAutoencoder):
    family = "k-sparse-ae"
    title = "k-sparse autoencoder"
    formula = "L = −log p(x | f(top_k(Wx + b))),  all but the k largest code units set to 0 (gradient through the k)"
    hparams_spec = (
        HyperParam("k", int, 4, 1, 512, "Number k of code units kept by top_k(z) (k ≤ latent_dim)."),
    )

    @classmethod
    def check_hparams(cls, values):
        if values["k"] > values["latent_dim"]:
            raise ConfigError(f"k must be in [1, latent_dim={values['latent_dim']}], got {values['k']}")

    def activate(self, pre_code):
        return obj.k_sparse(pre_code, self.hparams["k"])
