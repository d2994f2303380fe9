"""The math of the seeds: likelihoods, KL terms, penalties and bounds — each a small function.

Shapes: x and decoder outputs n×C×H×W; latent tensors n×D. Per-image values are summed over pixels / latent
dimensions; callers average over the batch, so numbers are nats per image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """−log p(x|z) = Σ_pixels BCE-with-logits(logits, x), per image (n,)."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def gaussian_nll(mean: torch.Tensor, x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """−log N(x; mean, σ²I) = Σ_pixels [(x−mean)²/(2σ²) + log σ + ½ log 2π], per image (n,)."""
    d = x[0].numel()
    sq = (x - mean).pow(2).flatten(1).sum(1)
    return sq / (2.0 * sigma * sigma) + d * (math.log(sigma) + 0.5 * math.log(2.0 * math.pi))


def reconstruction_nll(decoded: torch.Tensor, x: torch.Tensor, likelihood: str, sigma: float = 1.0) -> torch.Tensor:
    """Per-image negative log-likelihood under the family's likelihood ('bernoulli' or 'gaussian')."""
    if likelihood == "bernoulli":
        return bernoulli_nll(decoded, x)
    return gaussian_nll(decoded, x, sigma)


def kl_diag_gaussian(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, diag σ²) ‖ N(0, I)) per dimension: ½(μ² + σ² − log σ² − 1), shape n×D."""
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z = μ + σ ⊙ ε, ε ~ N(0, I)."""
    return mu + torch.randn_like(mu) * (0.5 * logvar).exp()
