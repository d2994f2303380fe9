"""Disentanglement metrics against ground-truth factors: BetaVAE, FactorVAE, MIG, DCI and SAP scores.

The caller supplies `represent(factors) -> codes` (render the images for those factor indices, encode,
return posterior means) and a factor source (engine.data.Dataset with factors, e.g. dSprites).
"""

from .core import DCI_ESTIMATORS, FactorSource, MetricsCancelled, MetricSizes
from .dci import completeness, dci_scores, disentanglement, disentanglement_per_code
from .mig import discrete_mutual_info, histogram_discretize, mig_score, mutual_info_matrix
from .sap import sap_score
from .suite import EXTRA_METRIC_NAMES, GRID_METRICS, METRIC_NAMES, SAP_VARIANT, compute_metrics, grid_metric_notes

__all__ = [
    "DCI_ESTIMATORS",
    "EXTRA_METRIC_NAMES",
    "METRIC_NAMES",
    "SAP_VARIANT",
    "FactorSource",
    "GRID_METRICS",
    "MetricSizes",
    "MetricsCancelled",
    "completeness",
    "compute_metrics",
    "dci_scores",
    "discrete_mutual_info",
    "disentanglement",
    "disentanglement_per_code",
    "grid_metric_notes",
    "histogram_discretize",
    "mig_score",
    "mutual_info_matrix",
    "sap_score",
]
