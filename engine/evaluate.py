"""Test-set evaluation in nats per image: −ELBO (recon + KL), KL per dimension, active units, IWAE-k NLL.

- −ELBO = E_x[ −log p(x|z) + KL(q(z|x) ‖ p(z)) ], one reparameterised sample per image (the model's own loss terms).
- Active units (Burda et al. 2016): A_u = Cov_x( E_{q(u|x)}[u] ), unit u is active when A_u > 0.01.
- IWAE-k NLL: −log (1/k) Σ_i p(x, z_i)/q(z_i|x), z_i ~ q(z|x) (Burda et al. eq. 8), from the model's
  `log_importance_weights(x, y, k)` (n×k); it is ≥ −log p(x) on average and decreases towards it as k grows.
- Non-variational families: reconstruction error of the deterministic code, as NLL nats and squared error.

Device rules: sums are kept per batch in float32 on the model's device (MPS has no float64) and added up in
float64 on the CPU at the end (one transfer, no per-batch sync); random draws come from `engine.rng.private_rng`
(neither the global generators nor a training run's own streams are touched).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from . import objectives as obj
from .rng import private_rng

ACTIVE_UNIT_THRESHOLD = 0.01
DECODES_PER_CALL = 2048  # images × importance samples decoded per call on a CPU (bounds memory)
DECODES_PER_CALL_ACCELERATOR = 32768  # the same on a GPU, where bigger batches keep the device busy


def decodes_per_call(device: torch.device) -> int:
    """Images × importance samples decoded in one call on `device` (IWAE-k chunks)."""
    return DECODES_PER_CALL if torch.device(device).type == "cpu" else DECODES_PER_CALL_ACCELERATOR


def _sum64(parts: list[torch.Tensor]) -> np.ndarray:
    """Float32 per-batch partial sums (same shape) → their float64 total, added on the CPU."""
    return torch.stack(parts).cpu().numpy().astype(np.float64).sum(0)


class EvaluationCancelled(Exception):
    """Raised when `cancel()` returned True between batches."""


def evaluate(model, dataset, indices, iwae_k: int = 1000, iwae_subset: int = 500, batch: int = 256,
             progress: Callable[[int, int], None] | None = None, cancel: Callable[[], bool] | None = None,
             seed: int = 0) -> dict[str, Any]:
    """Evaluate `model` on `dataset[indices]`; `iwae_k` = 0 skips the NLL; progress(done, total) counts images."""
    idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
    n = int(idx.numel())
    if n == 0:
        raise ValueError("evaluate: no images to evaluate (the test split is empty)")
    iwae_possible = bool(getattr(model, "has_importance_weights", False))
    iwae_n = min(n, max(0, int(iwae_subset))) if iwae_k and iwae_possible else 0
    total_work = n + iwae_n
    device = model.device
    was_training = model.training
    model.eval()
    try:
        with private_rng(seed), torch.inference_mode():
            result = _elbo_pass(model, dataset, idx, batch, device, progress, cancel, total_work)
            result["iwae_k"] = int(iwae_k)
            result["iwae_images"] = iwae_n
            result["iwae_nll"] = None
            if not iwae_k:
                result["iwae_note"] = "skipped (k = 0)"
            elif not iwae_possible:
                result["iwae_note"] = (f"{model.family} has no tractable importance weights "
                                       "(not a variational family with a density)")
            else:
                result["iwae_nll"] = _iwae_pass(model, dataset, idx[:iwae_n], int(iwae_k), device, progress,
                                                cancel, n, total_work)
    finally:
        model.train(was_training)
    return result


def _batches(dataset, idx: torch.Tensor, batch: int, device: torch.device, conditional: bool):
    for start in range(0, len(idx), batch):
        chunk = idx[start:start + batch]
        x = dataset.images_at(chunk).to(device).float().div_(255.0)
        y = dataset.labels_at(chunk) if conditional else None
        yield x, (None if y is None else y.to(device))


def _check_cancel(cancel: Callable[[], bool] | None) -> None:
    if cancel is not None and cancel():
        raise EvaluationCancelled("evaluation cancelled")


def _elbo_pass(model, dataset, idx, batch, device, progress, cancel, total_work) -> dict[str, Any]:
    n = len(idx)
    term_parts: dict[str, list[torch.Tensor]] = {}
    kl_parts: list[torch.Tensor] = []
    mean_parts: list[torch.Tensor] = []
    mean_sq_parts: list[torch.Tensor] = []
    sq_error_parts: list[torch.Tensor] = []
    det_nll_parts: list[torch.Tensor] = []
    done = 0
    for x, y in _batches(dataset, idx, batch, device, model.is_conditional):
        _check_cancel(cancel)
        m = x.shape[0]
        code = model.encode(x, y)
        decoded = model.decode(code.mean, y)
        recon_img = model.to_image(decoded)
        sq_error_parts.append((x - recon_img).float().pow(2).sum())
        det_nll_parts.append(obj.reconstruction_nll(decoded, x, model.hparams["likelihood"],
                                                    model.hparams["sigma"]).float().sum())
        means = code.mean.flatten(1).float()
        mean_parts.append(means.sum(0))
        mean_sq_parts.append(means.pow(2).sum(0))
        out = model.loss(x, y, 0)
        terms = dict(out.terms)
        terms.setdefault("total", out.total)
        for k, v in terms.items():
            term_parts.setdefault(k, []).append(v.detach().float().reshape(()) * m)
        if out.kl_per_dim is not None:
            kl_parts.append(out.kl_per_dim.detach().float() * m)
        done += m
        if progress is not None:
            progress(done, total_work)
    term_means = {k: float(_sum64(parts)) / n for k, parts in term_parts.items()}
    mean = _sum64(mean_parts) / n
    variance = np.maximum(_sum64(mean_sq_parts) / n - mean**2, 0.0)
    result: dict[str, Any] = {
        "family": model.family,
        "images": n,
        "terms": term_means,
        "recon_error_nats": float(_sum64(det_nll_parts)) / n,  # −log p(x | decode(mean code)), deterministic
        "sq_error": float(_sum64(sq_error_parts)) / n,  # Σ_pixels (x − x̂)² per image, x̂ from the mean code
        "code_variance": variance.tolist(),
    }
    if model.is_variational:
        recon, kl = term_means.get("recon"), term_means.get("kl")
        result["recon"] = recon
        result["kl"] = kl
        result["neg_elbo"] = recon + kl if recon is not None and kl is not None else None
        result["kl_per_dim"] = (_sum64(kl_parts) / n).tolist() if kl_parts else None
        result["active_units"] = int((variance > ACTIVE_UNIT_THRESHOLD).sum())
    else:
        result["recon"] = result["recon_error_nats"]
        result["kl"] = result["neg_elbo"] = result["kl_per_dim"] = result["active_units"] = None
    result["active_threshold"] = ACTIVE_UNIT_THRESHOLD
    return result


def _iwae_pass(model, dataset, idx, k, device, progress, cancel, done_before, total_work) -> float:
    """Mean over images of −logmeanexp_i log w_i, with the k samples drawn in chunks that fit in memory."""
    budget = decodes_per_call(device)
    k_chunk = min(k, budget)
    per_call = max(1, budget // k_chunk)
    nll_parts: list[torch.Tensor] = []
    done = 0
    for x, y in _batches(dataset, idx, per_call, device, model.is_conditional):
        chunks = []
        remaining = k
        while remaining > 0:
            _check_cancel(cancel)
            kk = min(k_chunk, remaining)
            log_w = model.log_importance_weights(x, y, kk)
            if tuple(log_w.shape) != (x.shape[0], kk):
                raise ValueError(f"{model.family}.log_importance_weights returned shape {tuple(log_w.shape)}, "
                                 f"expected {(x.shape[0], kk)}")
            chunks.append(log_w.float())
            remaining -= kk
        log_w = torch.cat(chunks, 1)  # logsumexp subtracts the row maximum: float32 is accurate here
        nll_parts.append(-(torch.logsumexp(log_w, 1) - math.log(k)).sum())
        done += x.shape[0]
        if progress is not None:
            progress(done_before + done, total_work)
    return float(_sum64(nll_parts)) / max(done, 1) if nll_parts else 0.0
