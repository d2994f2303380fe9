"""What every evaluation of a trained model shares: the model → codes path the disentanglement scores use, the record
keys of the scores and the −ELBO numbers, the −ELBO numbers of a test set, and a traversal image.

The Evaluation tab, `sweep` runs and the benches (time_to_disentangle, metrics_speed) all score a model through these.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from . import explore
from .data import Dataset
from .evaluate import evaluate
from .models import ModelBase

SCORE_KEYS = ("beta_vae", "factor_vae", "mig", "dci_disentanglement", "dci_completeness", "dci_informativeness",
              "sap")
ELBO_KEYS = ("neg_elbo", "recon", "kl", "active_units", "iwae_nll")
TRAVERSAL_STEPS = 9
TRAVERSAL_MAX_DIMS = 10


def model_representation(model: ModelBase, dataset: Dataset,
                         batch: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """`represent(factors) → posterior means` for compute_metrics: render the factor rows, encode them (in batches
    of 1,024 images on a CPU, 8,192 on a GPU unless `batch` says)."""
    batch = batch or (1024 if model.device.type == "cpu" else 8192)
    if model.is_conditional:
        raise ValueError("disentanglement scores are not defined here for conditional models "
                         "(their encoder is given the label)")
    if model.latent_kind != "continuous":
        raise ValueError("disentanglement scores need a continuous code; this model's code is discrete")
    if not dataset.has_factors:
        raise ValueError(f"{dataset.name} has no ground-truth factors; the disentanglement scores need "
                         "dSprites or another dataset with factors")

    def represent(factors: np.ndarray) -> np.ndarray:
        return explore.encode_means(model, dataset.render_factors(factors), batch=batch)

    return represent


def elbo_numbers(model: ModelBase, dataset: Dataset, indices: torch.Tensor, iwae_k: int = 0) -> dict[str, Any]:
    """−ELBO (= recon + KL), recon, KL, active units, KL per dim and the IWAE-k NLL (engine.evaluate)."""
    result = evaluate(model, dataset, indices, iwae_k=iwae_k)
    out: dict[str, Any] = {k: float(result[k]) for k in ELBO_KEYS if result.get(k) is not None}
    if result.get("kl_per_dim") is not None:
        out["kl_per_dim"] = [round(float(v), 5) for v in result["kl_per_dim"]]
    return out


def traversal_image(model: ModelBase, dataset: Dataset, indices: torch.Tensor,
                    steps: int = TRAVERSAL_STEPS) -> np.ndarray | None:
    """Rows = latents by KL (largest first, at most 10), ±3 prior std around the first test image's code."""
    if model.latent_kind != "continuous" or model.is_conditional:
        return None
    stats = explore.latent_stats(model, dataset, indices, n=500)
    dims = [int(d) for d in stats.order[:TRAVERSAL_MAX_DIMS]]
    values = explore.traversal_values(stats, dims, steps)
    return explore.traversal_grid(model, stats.means[0], dims, values)
