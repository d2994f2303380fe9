"""Encoder/decoder networks that fit any image shape the data layer produces (8×8 … 64×64, 1 or 3 channels).

Every family builds its networks through `build_encoder` / `build_decoder`, so the backbone choice (MLP or
conv, depth, width) is one set of hyperparameters shared by the whole zoo. No batch-coupled layers
(BatchNorm): rows stay independent, which the contractive penalty and the IWAE weights rely on.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

CONV_MIN_SIZE = 28  # auto backbone: conv for images at least this large (both sides), MLP below


def he_init(layer: nn.Module) -> nn.Module:
    """He (Kaiming) initialisation for a layer followed by ReLU: keeps activation scale through depth, so codes
    start input-dependent (PyTorch's default shrinks them, and sigmoid codes then saturate early)."""
    nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")
    nn.init.zeros_(layer.bias)
    return layer


def mlp(sizes: list[int], final_activation: bool = False) -> nn.Sequential:
    """Linear layers with ReLU between them (and after the last one if final_activation)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if i < len(sizes) - 2 or final_activation:
            layers += [he_init(nn.Linear(a, b)), nn.ReLU()]
        else:
            layers.append(nn.Linear(a, b))
    return nn.Sequential(*layers)


def input_pool(pool: int) -> nn.Module:
    """k×k average pooling in front of an encoder (no parameters, so checkpoints keep their keys): i.i.d. pixel
    noise falls by a factor k while a shape larger than k pixels keeps its contrast."""
    return nn.AvgPool2d(pool) if pool > 1 else nn.Identity()


class MLPEncoder(nn.Module):
    """x (n×C×H×W) [→ k×k average pool] [+ extra n×E] → features (n×hidden) through `depth` ReLU layers."""

    def __init__(self, shape: tuple[int, int, int], hidden: int, depth: int, extra_in: int = 0,
                 pool: int = 1) -> None:
        super().__init__()
        c, h, w = shape
        self.out_features = hidden
        self.pool = input_pool(pool)
        self.net = mlp([c * (h // pool) * (w // pool) + extra_in] + [hidden] * depth, final_activation=True)

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        flat = self.pool(x).flatten(1)
        if extra is not None:
            flat = torch.cat([flat, extra], 1)
        return self.net(flat)


class MLPDecoder(nn.Module):
    """z (n×D) → logits/means (n×C×H×W) through `depth` ReLU layers."""

    def __init__(self, shape: tuple[int, int, int], latent_dim: int, hidden: int, depth: int) -> None:
        super().__init__()
        self.shape = tuple(shape)
        c, h, w = shape
        self.net = mlp([latent_dim] + [hidden] * depth + [c * h * w])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.shape)


def auto_conv_blocks(height: int, width: int) -> int:
    """Stride-2 blocks until the feature map is at most 4 pixels on its shorter side (64→4: 4 blocks)."""
    blocks = 0
    while min(height, width) > 4 and min(height, width) // 2 >= 2:
        height, width, blocks = height // 2, width // 2, blocks + 1
    return max(blocks, 1)


def conv_channels(base: int, blocks: int) -> list[int]:
    """Modest channel plan base, base, 2·base, 2·base, … (32-32-64-64 for the default width)."""
    return [base if i < 2 else 2 * base for i in range(blocks)]


def conv_feature_sizes(height: int, width: int, blocks: int) -> list[tuple[int, int]]:
    """Spatial size before each block and after the last one (Conv2d k4 s2 p1 maps s → ⌊s/2⌋)."""
    sizes = [(height, width)]
    for _ in range(blocks):
        height, width = height // 2, width // 2
        sizes.append((height, width))
    return sizes


class ConvEncoder(nn.Module):
    """x [→ k×k average pool] → `blocks` × (Conv2d 4×4 stride 2, ReLU) → flatten [+ extra] → `depth` ReLU layers
    of `hidden` units."""

    def __init__(self, shape: tuple[int, int, int], hidden: int, depth: int, blocks: int, base: int,
                 extra_in: int = 0, pool: int = 1) -> None:
        super().__init__()
        c, h, w = shape
        h, w = h // pool, w // pool
        self.pool = input_pool(pool)
        sizes = conv_feature_sizes(h, w, blocks)
        if min(sizes[-1]) < 1:
            raise ConfigError(f"conv_blocks must be in [0, {auto_conv_blocks(h, w) + 1}] for {h}×{w} images "
                              f"(0 = auto), got {blocks}")
        layers: list[nn.Module] = []
        in_ch = c
        for out_ch in conv_channels(base, blocks):
            layers += [he_init(nn.Conv2d(in_ch, out_ch, 4, 2, 1)), nn.ReLU()]
            in_ch = out_ch
        self.conv = nn.Sequential(*layers)
        self.out_features = hidden
        fh, fw = sizes[-1]
        self.fc = mlp([in_ch * fh * fw + extra_in] + [hidden] * depth, final_activation=True)

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        flat = self.conv(self.pool(x)).flatten(1)
        if extra is not None:
            flat = torch.cat([flat, extra], 1)
        return self.fc(flat)


class ConvDecoder(nn.Module):
    """z → `depth` ReLU layers → feature map → `blocks` × ConvTranspose2d 4×4 stride 2 → n×C×H×W logits/means.

    Output padding per block restores odd sizes exactly (28 → 14 → 7 → 3 is undone as 3 → 7 → 14 → 28).
    """

    def __init__(self, shape: tuple[int, int, int], latent_dim: int, hidden: int, depth: int, blocks: int,
                 base: int) -> None:
        super().__init__()
        c, h, w = shape
        sizes = conv_feature_sizes(h, w, blocks)
        channels = conv_channels(base, blocks)
        self.start_channels = channels[-1]
        self.start_size = sizes[-1]
        fh, fw = sizes[-1]
        self.fc = mlp([latent_dim] + [hidden] * depth + [channels[-1] * fh * fw], final_activation=True)
        layers: list[nn.Module] = []
        out_channels = [c] + channels[:-1]  # block i maps channels[i] → out_channels[i]
        for i in reversed(range(blocks)):
            (th, tw), (sh, sw) = sizes[i], sizes[i + 1]
            pad = (th - 2 * sh, tw - 2 * sw)
            deconv = nn.ConvTranspose2d(channels[i], out_channels[i], 4, 2, 1, output_padding=pad)
            layers += [he_init(deconv), nn.ReLU()] if i > 0 else [deconv]
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        fh, fw = self.start_size
        return self.deconv(self.fc(z).view(z.shape[0], self.start_channels, fh, fw))


class BroadcastDecoder(nn.Module):
    """Spatial broadcast decoder (Watters et al. 2019) as a per-pixel MLP: logit(pixel) = f([z, x, y]).

    z is tiled over an r×r grid with x/y coordinate channels and every pixel goes through the same
    `depth` ReLU layers of `width` units (1×1 convolutions), then the r×r logits are resized bilinearly to
    H×W. The first layer is split as W_z·z (once per image) + W_xy·(x, y) (once per pixel), so the tiled
    n×r²×(D+2) input is never built; the bilinear resize is two small matrix products U_h·L·U_wᵀ (the same
    numbers as F.interpolate, whose CPU backward pass cost more than the rest of the decoder). Position is a
    coordinate the decoder reads directly, which is what makes small objects' position easy to encode in one
    latent each.
    """

    def __init__(self, shape: tuple[int, int, int], latent_dim: int, width: int, depth: int,
                 resolution: int) -> None:
        super().__init__()
        c, h, w = shape
        self.shape = (c, h, w)
        self.grid = (h, w) if resolution <= 0 else (min(resolution, h), min(resolution, w))
        gh, gw = self.grid
        ys, xs = torch.meshgrid(torch.linspace(-1.0, 1.0, gh), torch.linspace(-1.0, 1.0, gw), indexing="ij")
        self.register_buffer("coords", torch.stack([xs, ys], -1).reshape(gh * gw, 2), persistent=False)
        self.register_buffer("resize_h", linear_resize_matrix(gh, h), persistent=False)
        self.register_buffer("resize_w", linear_resize_matrix(gw, w), persistent=False)
        self.from_z = he_init(nn.Linear(latent_dim, width))
        self.from_xy = he_init(nn.Linear(2, width))
        self.pixel_mlp = mlp([width] * depth + [c])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        n = z.shape[0]
        c, h, w = self.shape
        gh, gw = self.grid
        hidden = torch.relu(self.from_z(z).unsqueeze(1) + self.from_xy(self.coords).unsqueeze(0))  # n×P×width
        logits = self.pixel_mlp(hidden).transpose(1, 2).reshape(n, c, gh, gw)
        if (gh, gw) != (h, w):
            logits = self.resize_h @ logits @ self.resize_w.T
        return logits


def linear_resize_matrix(size_in: int, size_out: int) -> torch.Tensor:
    """size_out×size_in matrix of 1-D linear interpolation (align_corners=False), as F.interpolate resizes."""
    eye = torch.eye(size_in).unsqueeze(1)  # size_in signals of length size_in
    return F.interpolate(eye, size=size_out, mode="linear", align_corners=False).squeeze(1).T.contiguous()


def resolve_backbone(shape: tuple[int, int, int], choice: str) -> str:
    """'auto' → 'conv' for images ≥ 28×28, else 'mlp'; explicit choices pass through."""
    if choice != "auto":
        return choice
    return "conv" if min(shape[1], shape[2]) >= CONV_MIN_SIZE else "mlp"


def _conv_plan(shape: tuple[int, int, int], hp: dict[str, Any], pool: int = 1) -> tuple[int, int]:
    blocks = int(hp.get("conv_blocks", 0)) or auto_conv_blocks(shape[1] // pool, shape[2] // pool)
    return blocks, max(8, int(hp["hidden"]) // 8)


def encoder_pool(shape: tuple[int, int, int], hp: dict[str, Any]) -> int:
    """The `encoder_pool` factor k, checked against the image: k must divide both sides."""
    pool = int(hp.get("encoder_pool", 1))
    if shape[1] % pool or shape[2] % pool:
        raise ConfigError(f"encoder_pool must divide the image size {shape[1]}×{shape[2]}, got {pool}")
    return pool


def build_encoder(shape: tuple[int, int, int], hp: dict[str, Any], extra_in: int = 0) -> nn.Module:
    """The family's feature extractor: module(x, extra=None) → n×out_features (out_features = hidden)."""
    pool = encoder_pool(shape, hp)
    if resolve_backbone(shape, hp["backbone"]) == "conv":
        blocks, base = _conv_plan(shape, hp, pool)
        return ConvEncoder(shape, hp["hidden"], hp["depth"], blocks, base, extra_in, pool)
    return MLPEncoder(shape, hp["hidden"], hp["depth"], extra_in, pool)


def build_decoder(shape: tuple[int, int, int], hp: dict[str, Any], in_dim: int) -> nn.Module:
    """The family's decoder: module(z) → n×C×H×W logits (Bernoulli) or means (Gaussian)."""
    kind = hp.get("decoder", "same")
    if kind == "broadcast":
        return BroadcastDecoder(shape, in_dim, hp["broadcast_width"], hp["depth"], hp["broadcast_resolution"])
    if (resolve_backbone(shape, hp["backbone"]) if kind == "same" else kind) == "conv":
        blocks, base = _conv_plan(shape, hp)
        return ConvDecoder(shape, in_dim, hp["hidden"], hp["depth"], blocks, base)
    return MLPDecoder(shape, in_dim, hp["hidden"], hp["depth"])
