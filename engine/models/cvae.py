"""Conditional VAE (Sohn et al.): one-hot y in encoder and decoder, q(z|x, y), p(x|z, y), prior N(0, I)."""

from __future__ import annotations

from .base import register
from .vae import VAE


@register
class CVAE(VAE):
    """encode(x, y) and decode(z, y) need labels; sample(n) without y cycles through the classes 0, 1, …"""

    family = "cvae"
    title = "Conditional VAE"
    formula = "−ELBO = −E_q(z|x,y)[log p(x|z, y)] + KL(q(z|x, y) ‖ N(0, I)),  y one-hot"
    is_conditional = True
    accepts_soft_labels = True  # decode(z, y) takes float n×K blends of one-hot labels
