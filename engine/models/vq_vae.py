"""VQ-VAE (van den Oord et al. 2017): P code positions, each snapped to the nearest of K codebook vectors
(K×D), straight-through gradient, codebook + commitment losses, and a prior over codes so it samples.

Representation: `encode(x).mean` is the quantised code flattened (n × P·D, so `latent_dim` = P·D and
exploration gets a vector), `extras["indices"]` the code indices (n×P). Decode from indices with
`decode_indices(idx)` (logits/means) or `decode_images(codes_from_indices(idx))` (images in [0, 1]).

Training state that lives in buffers (saved in checkpoints): `code_usage` (EMA of each code's share of the
assignments), `prior_probs` (P×K independent categorical per position, an EMA of the assignment frequencies,
updated in `after_step`; `fit_prior(indices)` sets it from a whole dataset) and `initialized` (the codebook
starts from encoder outputs of the first training batch). Dead codes: every `reset_every` steps, codes whose
usage share fell below 1/(10K) are moved onto random encoder outputs of the current batch.

No host syncs in training: whether the codebook is initialised is a Python flag (mirrored into the buffer, and read
back once when weights are loaded), and dead codes are replaced by a masked `torch.where` instead of `nonzero()`.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import distributed, rng
from .. import objectives as obj
from .base import HyperParam, LatentCode, LossOutput, register
from .common import EncoderDecoderModel

USAGE_DECAY = 0.99


@register
class VQVAE(EncoderDecoderModel):
    family = "vq-vae"
    title = "Vector-quantised VAE"
    formula = "L = −log p(x|z_q) + ‖sg[z_e] − e‖² + β‖z_e − sg[e]‖²,  z_q = nearest e_k to z_e, straight-through"
    latent_kind = "discrete"
    can_sample = True
    hparams_spec = (
        HyperParam("latent_dim", int, 8, 1, 512, "Dimension D of each codebook vector e_k (the code has P·D numbers)."),
        HyperParam("positions", int, 8, 1, 256, "Number P of code positions, each one of K codebook indices."),
        HyperParam("codebook_size", int, 64, 2, 4096, "Number K of codebook vectors e_1…e_K."),
        HyperParam("beta", float, 0.25, 0.0, 100.0, "Commitment weight β in + β‖z_e − sg[e]‖².", live=True),
        HyperParam("reset_every", int, 100, 0, 1_000_000,
                   "Steps between dead-code resets (codes used < 1/(10K) move to encoder outputs); 0 = never."),
    )

    def __init__(self, shape, num_classes=0, **hparams):
        super().__init__(shape, num_classes, **hparams)
        p, k, d = self.hparams["positions"], self.hparams["codebook_size"], self.hparams["latent_dim"]
        self.to_latent = nn.Linear(self.encoder.out_features, p * d)
        self.codebook = nn.Parameter(torch.empty(k, d).uniform_(-1.0 / k, 1.0 / k))
        self.register_buffer("code_usage", torch.full((k,), 1.0 / k))
        self.register_buffer("prior_probs", torch.full((p, k), 1.0 / k))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.uint8))
        self._initialized = False
        self._last_assignment: tuple[torch.Tensor, torch.Tensor] | None = None
        self.register_load_state_dict_post_hook(VQVAE._read_initialized_flag)

    @staticmethod
    def _read_initialized_flag(module: VQVAE, incompatible_keys) -> None:
        module._initialized = bool(module.initialized)

    @property
    def latent_dim(self) -> int:
        """Size of the flattened quantised code, P·D (`hparams['latent_dim']` is D)."""
        return int(self.hparams["positions"] * self.hparams["latent_dim"])

    @property
    def code_shape(self) -> tuple[int, int]:
        return int(self.hparams["positions"]), int(self.hparams["latent_dim"])

    # --- quantisation --------------------------------------------------------------------------------
    def encode_continuous(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """z_e(x): n×P×D before quantisation."""
        return self.to_latent(self.features(x, y)).view(x.shape[0], *self.code_shape)

    def quantize(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z_q n×P×D, indices n×P): nearest codebook vector at each position."""
        n, p, d = z_e.shape
        with torch.autocast(z_e.device.type, enabled=False):  # the nearest-code search in fp32 under bf16 autocast
            idx = obj.nearest_code(z_e.float().reshape(n * p, d), self.codebook.float()).view(n, p)
        return self.codebook[idx], idx

    def codes_from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Code indices n×P → flattened quantised code n×P·D (what `decode` reads)."""
        return self.codebook[indices.to(self.codebook.device).long()].flatten(1)

    def decode_indices(self, indices: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Code indices n×P → decoder output (logits/means); `to_image` turns it into [0, 1]."""
        return self.decode(self.codes_from_indices(indices), y)

    def encode(self, x, y=None):
        z_e = self.encode_continuous(x, y)
        z_q, idx = self.quantize(z_e)
        code = obj.straight_through(z_e, z_q).flatten(1)
        return LatentCode(code, code, extras={"indices": idx, "z_e": z_e.flatten(1)})

    def loss(self, x, y=None, step=0):
        z_e = self.encode_continuous(x, y)
        if self.training and not self._initialized:
            self.init_codebook(z_e.detach())
        z_q, idx = self.quantize(z_e)
        recon = self.nll(self.decode(obj.straight_through(z_e, z_q).flatten(1), y), x).mean()
        codebook_loss, commitment = (t.mean() for t in obj.vq_losses(z_e, z_q))
        total = recon + codebook_loss + self.live_value("beta") * commitment
        self._last_assignment = (idx.detach(), z_e.detach())
        # one_hot(…).sum rather than bincount: bincount on CUDA reads the maximum index back (a host sync) and has
        # no deterministic CUDA kernel
        counts = torch.nn.functional.one_hot(idx.flatten(), self.hparams["codebook_size"]).sum(0).float()
        share = counts / counts.sum()
        perplexity = torch.exp(-(share * share.clamp_min(1e-12).log()).sum())
        terms = {"total": total.detach(), "recon": recon.detach(), "codebook": codebook_loss.detach(),
                 "commitment": commitment.detach(), "perplexity": perplexity.detach()}
        return LossOutput(total, terms)

    def live_values(self, step):
        return {"beta": self.hparams["beta"]}

    # --- codebook maintenance and prior ----------------------------------------------------------------
    @torch.no_grad()
    def init_codebook(self, z_e: torch.Tensor) -> None:
        """Codebook ← random encoder outputs of a batch (avoids most codes starting dead)."""
        flat = z_e.reshape(-1, z_e.shape[-1])
        pick = rng.randint(flat.shape[0], (self.codebook.shape[0],), device=flat.device)
        self.codebook.copy_(flat[pick] + 1e-3 * rng.randn_like(self.codebook))
        distributed.broadcast_(self.codebook.data)  # data-parallel: rank 0's pick for every rank
        self.initialized.fill_(1)
        self._initialized = True

    @torch.no_grad()
    def fit_prior(self, indices: torch.Tensor, smoothing: float = 1.0) -> None:
        """Set the per-position categorical prior from code indices (N×P) of a dataset (+ Laplace smoothing)."""
        p, k = self.prior_probs.shape
        onehot = torch.nn.functional.one_hot(indices.to(self.prior_probs.device).long(), k).float()
        counts = onehot.sum(0) + smoothing
        self.prior_probs.copy_(counts / counts.sum(1, keepdim=True))

    @torch.no_grad()
    def after_step(self, x, y, step):
        if self._last_assignment is None:
            z_e = self.encode_continuous(x, y)
            idx = self.quantize(z_e)[1]
        else:
            idx, z_e = self._last_assignment
            self._last_assignment = None
        k = self.hparams["codebook_size"]
        onehot = torch.nn.functional.one_hot(idx, k).float()  # n×P×K
        frequencies = distributed.all_mean_(onehot.mean(0))  # data-parallel: the global batch's frequencies
        self.prior_probs.mul_(USAGE_DECAY).add_((1 - USAGE_DECAY) * frequencies)
        self.code_usage.mul_(USAGE_DECAY).add_((1 - USAGE_DECAY) * frequencies.mean(0))
        every = self.hparams["reset_every"]
        if not (every and step > 0 and step % every == 0):
            return {"dead_codes_reset": 0.0}
        dead = self.code_usage < 0.1 / k  # K mask, no nonzero(): the step never waits on the device
        flat = z_e.reshape(-1, z_e.shape[-1])
        pick = rng.randint(flat.shape[0], (k,), device=flat.device)
        fresh = flat[pick] + 1e-3 * rng.randn(k, flat.shape[1], device=flat.device, dtype=flat.dtype)
        self.codebook.copy_(torch.where(dead.unsqueeze(1), fresh, self.codebook))
        self.code_usage.copy_(torch.where(dead, torch.full_like(self.code_usage, 1.0 / k), self.code_usage))
        distributed.broadcast_(self.codebook.data)  # data-parallel: rank 0's replacements everywhere
        return {"dead_codes_reset": dead.sum().float()}

    def sample(self, n, y=None):
        """Indices drawn independently per position from the prior, then decoded."""
        idx = torch.multinomial(self.prior_probs, n, replacement=True).t()  # n×P
        return self.to_image(self.decode_indices(idx, y))
