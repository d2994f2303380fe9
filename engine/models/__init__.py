# ruff: noqa: I001  (import order = registration order = the order `families()` lists)
"""Every autoencoder family: one contract (base.py), one registry. A new family = one file + one import here.

Registration order (the order `families()` lists them) follows the literature: deterministic autoencoders,
then the variational families, then the disentangling ones.
"""

from . import (  # noqa: F401  (each import registers its family)
    ae,
    dae,
    sparse_ae,
    k_sparse_ae,
    contractive_ae,
    vae,
    beta_vae,
    capacity_vae,
    fullcov_vae,
    cvae,
    iwae,
    hvae,
    vq_vae,
    beta_tcvae,
    factor_vae,
)
from .base import (
    COMMON_HPARAMS,
    HyperParam,
    LatentCode,
    LossOutput,
    ModelBase,
    create_model,
    families,
    model_class,
    register,
)

__all__ = ["COMMON_HPARAMS", "HyperParam", "LatentCode", "LossOutput", "ModelBase", "create_model", "families",
           "model_class", "register"]
