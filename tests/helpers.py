"""Helpers shared by the engine and GUI tests."""

from __future__ import annotations

import torch

from engine.data import load_dataset
from engine.models import create_model


def train_digits_model(family: str, steps: int = 40, **hp) -> torch.nn.Module:
    """A small model of `family` (latent 4, hidden 32) trained `steps` Adam steps on the 8×8 digits, in eval mode."""
    torch.manual_seed(0)
    ds = load_dataset("digits")
    model = create_model(family, ds.shape, ds.num_classes, latent_dim=4, hidden=32, depth=1, **hp)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = ds.images.float() / 255.0, ds.labels
    for step in range(steps):
        sl = slice((step * 128) % 1600, (step * 128) % 1600 + 128)
        out = model.loss(x[sl], y[sl] if model.is_conditional else None, step)
        opt.zero_grad()
        out.total.backward()
        opt.step()
    return model.eval()
