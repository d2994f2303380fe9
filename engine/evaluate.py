"""Test-set evaluation in nats per image: −ELBO (recon + KL), KL per dimension, active units, IWAE-k NLL.

- −ELBO = E_x[ −log p(x|z) + KL(q(z|x) ‖ p(z)) ], one reparameterised sample per image (the model's own loss terms).
- Active units (Burda et al. 2016): A_u = Cov_x( E_{q(u|x)}[u] ), unit u is active when A_u > 0.01.
- IWAE-k NLL: −log (1/k) Σ_i p(x, z_i)/q(z_i|x), z_i ~ q(z|x) (Burda et al. eq. 8), from the model's
  `log_importance_weights(x, y, k)` (n×k); it is ≥ −log p(x) on average and decreases towards it as k grows.
- Non-variational families: reconstruction error of the deterministic code, as NLL nats and squared error.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from . import objectives as obj

ACTIVE_UNIT_THRESHOLD = 0.01
DECODES_PER_CALL = 2048  # images × importance samples decoded per call (bounds memory)


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
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(seed)
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
    term_sums: dict[str, torch.Tensor] = {}
    kl_sum: torch.Tensor | None = None
    mean_sum = mean_sq_sum = None
    sq_error = torch.zeros((), dtype=torch.float64, device=device)
    det_nll = torch.zeros((), dtype=torch.float64, device=device)
    done = 0
    for x, y in _batches(dataset, idx, batch, device, model.is_conditional):
        _check_cancel(cancel)
        m = x.shape[0]
        code = model.encode(x, y)
        decoded = model.decode(code.mean, y)
        recon_img = model.to_image(decoded)
        sq_error += (x - recon_img).pow(2).flatten(1).sum(1).double().sum()
        det_nll += obj.reconstruction_nll(decoded, x, model.hparams["likelihood"],
                                          model.hparams["sigma"]).double().sum()
        means = code.mean.flatten(1).double()
        mean_sum = means.sum(0) if mean_sum is None else mean_sum + means.sum(0)
        mean_sq_sum = means.pow(2).sum(0) if mean_sq_sum is None else mean_sq_sum + means.pow(2).sum(0)
        out = model.loss(x, y, 0)
        terms = dict(out.terms)
        terms.setdefault("total", out.total)
        for k, v in terms.items():
            term_sums[k] = term_sums.get(k, 0.0) + v.detach().double() * m
        if out.kl_per_dim is not None:
            kl = out.kl_per_dim.detach().double() * m
            kl_sum = kl if kl_sum is None else kl_sum + kl
        done += m
        if progress is not None:
            progress(done, total_work)
    names = list(term_sums)
    term_means = dict(zip(names, torch.stack([term_sums[k] for k in names]).div(n).tolist(), strict=True))
    variance = (mean_sq_sum / n - (mean_sum / n).pow(2)).clamp_min(0.0)
    result: dict[str, Any] = {
        "family": model.family,
        "images": n,
        "terms": term_means,
        "recon_error_nats": float(det_nll) / n,  # −log p(x | decode(mean code)): deterministic reconstruction
        "sq_error": float(sq_error) / n,  # Σ_pixels (x − x̂)² per image, x̂ from the mean code
        "code_variance": variance.tolist(),
    }
    if model.is_variational:
        recon, kl = term_means.get("recon"), term_means.get("kl")
        result["recon"] = recon
        result["kl"] = kl
        result["neg_elbo"] = recon + kl if recon is not None and kl is not None else None
        result["kl_per_dim"] = kl_sum.div(n).tolist() if kl_sum is not None else None
        result["active_units"] = int((variance > ACTIVE_UNIT_THRESHOLD).sum())
    else:
        result["recon"] = result["recon_error_nats"]
        result["kl"] = result["neg_elbo"] = result["kl_per_dim"] = result["active_units"] = None
    result["active_threshold"] = ACTIVE_UNIT_THRESHOLD
    return result


def _iwae_pass(model, dataset, idx, k, device, progress, cancel, done_before, total_work) -> float:
    """Mean over images of −logmeanexp_i log w_i, with the k samples drawn in chunks that fit in memory."""
    k_chunk = min(k, DECODES_PER_CALL)
    per_call = max(1, DECODES_PER_CALL // k_chunk)
    nll_sum = 0.0
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
            chunks.append(log_w.double())
            remaining -= kk
        log_w = torch.cat(chunks, 1)
        nll_sum += float(-(torch.logsumexp(log_w, 1) - math.log(k)).sum())
        done += x.shape[0]
        if progress is not None:
            progress(done_before + done, total_work)
    return nll_sum / max(done, 1)
