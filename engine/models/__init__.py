"""Every autoencoder family: one contract (base.py), one registry. A new family = one file + one import here."""

from . import vae  # noqa: F401  (registers the family)
from .base import (
    HyperParam,
    LatentCode,
    LossOutput,
    ModelBase,
    create_model,
    families,
    model_class,
    register,
)

__all__ = ["HyperParam", "LatentCode", "LossOutput", "ModelBase", "create_model", "families", "model_class",
           "register"]
