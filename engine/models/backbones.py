"""Encoder/decoder networks that fit any image shape the data layer produces (8×8 … 64×64, 1 or 3 channels)."""

from __future__ import annotations

from torch import nn


def mlp(sizes: list[int], final_activation: bool = False) -> nn.Sequential:
    """Linear layers with ReLU between them (and after the last one if final_activation)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or final_activation:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """x (n×C×H×W) → features (n×hidden) through `depth` ReLU layers."""

    def __init__(self, shape: tuple[int, int, int], hidden: int, depth: int, extra_in: int = 0) -> None:
        super().__init__()
        c, h, w = shape
        self.out_features = hidden
        self.net = mlp([c * h * w + extra_in] + [hidden] * depth, final_activation=True)

    def forward(self, x, extra=None):
        flat = x.flatten(1)
        if extra is not None:
            import torch

            flat = torch.cat([flat, extra], 1)
        return self.net(flat)


class MLPDecoder(nn.Module):
    """z (n×D) → logits/means (n×C×H×W) through `depth` ReLU layers."""

    def __init__(self, shape: tuple[int, int, int], latent_dim: int, hidden: int, depth: int) -> None:
        super().__init__()
        self.shape = shape
        c, h, w = shape
        self.net = mlp([latent_dim] + [hidden] * depth + [c * h * w])

    def forward(self, z):
        return self.net(z).view(z.shape[0], *self.shape)
