"""Shared plumbing so each family stays one small file: backbone encoder/decoder, conditioning, the
deterministic-code autoencoder skeleton (AE, DAE, sparse, k-sparse, contractive)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import objectives as obj
from ..errors import ConfigError
from .backbones import build_decoder, build_encoder
from .base import LatentCode, LossOutput, ModelBase


class EncoderDecoderModel(ModelBase):
    """Backbone feature encoder (`self.encoder`) and decoder (`self.decoder`) built from the common
    hyperparameters; conditional families get one-hot y concatenated to both."""

    def __init__(self, shape: tuple[int, int, int], num_classes: int = 0, **hparams: Any) -> None:
        super().__init__(shape, num_classes, **hparams)
        cond = self.num_classes if self.is_conditional else 0
        self.encoder = build_encoder(self.data_shape, self.hparams, extra_in=cond)
        self.decoder = build_decoder(self.data_shape, self.hparams, self.decoder_input_dim() + cond)

    def decoder_input_dim(self) -> int:
        """Size of the vector the decoder reads (the latent code, before any label is appended)."""
        return self.latent_dim

    def condition(self, y: torch.Tensor | None) -> torch.Tensor | None:
        """One-hot labels for conditional families (None otherwise); missing labels are a clear error.

        Float n×K rows are taken as soft labels (blends of one-hot vectors, for interpolating between classes)."""
        if not self.is_conditional:
            return None
        if y is None:
            raise ConfigError(f"{self.family} needs labels y (class indices 0…{self.num_classes - 1}) "
                              "to encode and decode; use a labelled dataset")
        if y.is_floating_point() and y.dim() == 2:
            if y.shape[1] != self.num_classes:
                raise ConfigError(f"soft labels must have {self.num_classes} columns, got {tuple(y.shape)}")
            return y.to(device=self.device, dtype=self.encoder_dtype())
        y = y.to(device=self.device, dtype=torch.long)
        # A training session validates its dataset's labels once and sets `labels_checked`: on a GPU this check
        # would make every encode and decode wait for the device.
        if not self.labels_checked and y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            raise ConfigError(f"labels y must lie in [0, {self.num_classes - 1}] for {self.family}")
        return F.one_hot(y, self.num_classes).to(self.encoder_dtype())

    def encoder_dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def features(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.encoder(x, self.condition(y))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        cond = self.condition(y)
        return self.decoder(z if cond is None else torch.cat([z, cond], 1))

    def nll(self, decoded: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """−log p(x|z) per image under the chosen likelihood."""
        return obj.reconstruction_nll(decoded, x, self.hparams["likelihood"], self.hparams["sigma"])

    def default_labels(self, n: int) -> torch.Tensor | None:
        """Labels cycling through the classes (0, 1, …) for conditional sampling without explicit y."""
        if not self.is_conditional:
            return None
        return torch.arange(n, device=self.device) % self.num_classes


class CodeAutoencoder(EncoderDecoderModel):
    """Deterministic code z = g(x) (linear head on the backbone features, shaped by `activate`), decoder f(z);
    loss = −log p(x|f(g(x))) + Σ weight·penalty."""

    def __init__(self, shape: tuple[int, int, int], num_classes: int = 0, **hparams: Any) -> None:
        super().__init__(shape, num_classes, **hparams)
        self.to_code = nn.Linear(self.encoder.out_features, self.latent_dim)

    def activate(self, pre_code: torch.Tensor) -> torch.Tensor:
        """The code's nonlinearity (identity for a linear code)."""
        return pre_code

    def code(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.activate(self.to_code(self.features(x, y)))

    def encode(self, x, y=None):
        return LatentCode(self.code(x, y))

    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the encoder sees in training (the DAE corrupts it); the target stays the clean x."""
        return x

    def penalties(self, x_in: torch.Tensor, z: torch.Tensor) -> dict[str, tuple[float, torch.Tensor]]:
        """name → (weight, unweighted batch-mean penalty) added to the loss."""
        return {}

    def loss(self, x, y=None, step=0):
        x_in = self.encoder_input(x)
        z = self.code(x_in, y)
        recon = self.nll(self.decode(z, y), x).mean()
        total = recon
        terms = {"recon": recon.detach()}
        for name, (weight, value) in self.penalties(x_in, z).items():
            total = total + weight * value
            terms[name] = value.detach()
        terms["total"] = total.detach()
        return LossOutput(total, terms)
