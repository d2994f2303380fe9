"""Plain autoencoder: x̂ = f(g(x)), loss = −log p(x|x̂) (BCE on logits or ‖x − x̂‖²/2σ²), a linear code."""

from __future__ import annotations

from .base import register
from .common import CodeAutoencoder


@register
class AE(CodeAutoencoder):
    family = "ae"
    title = "Autoencoder"
    formula = "L = −log p(x | f(g(x)))  (BCE on logits, or ‖x − f(g(x))‖²/2σ²)"
