"""SAP (Kumar et al. 2018): a (latent, factor) predictability matrix; score = mean over factors of the
gap between the two most predictive latents."""

from __future__ import annotations

import numpy as np
from sklearn.svm import LinearSVC

from .core import Run


def top_two_gap(scores: np.ndarray) -> float:
    """Mean over factors (columns) of best − second-best latent score."""
    if scores.shape[0] < 2:
        return float(scores.max(axis=0).mean())
    top_two = np.sort(scores, axis=0)[-2:]
    return float((top_two[1] - top_two[0]).mean())


def continuous_score_matrix(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """D×K R² of a 1-D linear regression of factor k on latent j: Cov(z_j, v_k)² / (Var z_j · Var v_k);
    0 for a (near-)constant latent."""
    codes = np.asarray(codes, dtype=np.float64)
    factors = np.asarray(factors, dtype=np.float64)
    z = codes - codes.mean(axis=0)
    v = factors - factors.mean(axis=0)
    n = codes.shape[0]
    cov = z.T @ v / (n - 1)
    var_z = (z * z).sum(axis=0) / (n - 1)
    var_v = (v * v).sum(axis=0) / (n - 1)
    denominator = var_z[:, None] * var_v[None, :]
    valid = (var_z[:, None] > 1e-12) & (var_v[None, :] > 0)
    return np.divide(cov**2, denominator, out=np.zeros_like(cov), where=valid)


def discrete_score_matrix(train_codes: np.ndarray, train_factors: np.ndarray, test_codes: np.ndarray,
                          test_factors: np.ndarray, random_state: int, run: Run | None = None,
                          stage: str = "sap") -> np.ndarray:
    """D×K held-out accuracy of LinearSVC(C=0.01, class_weight='balanced') predicting factor k from
    latent j alone (the reference procedure for discrete factors)."""
    dims, num_factors = train_codes.shape[1], train_factors.shape[1]
    scores = np.zeros((dims, num_factors))
    for j in range(dims):
        for k in range(num_factors):
            classifier = LinearSVC(C=0.01, class_weight="balanced", random_state=random_state)
            classifier.fit(train_codes[:, j: j + 1], train_factors[:, k])
            scores[j, k] = np.mean(classifier.predict(test_codes[:, j: j + 1]) == test_factors[:, k])
        if run is not None:
            run.report(stage, (j + 1) / dims, "SAP (discrete): linear SVMs")
    return scores


def sap_score(train_codes: np.ndarray, train_factors: np.ndarray, test_codes: np.ndarray | None = None,
              test_factors: np.ndarray | None = None, discrete: bool = False, random_state: int = 0,
              run: Run | None = None, stage: str = "sap") -> float:
    """SAP score. continuous (default): R² on the training sample; discrete: held-out LinearSVC accuracy."""
    if not discrete:
        return top_two_gap(continuous_score_matrix(train_codes, train_factors))
    if test_codes is None or test_factors is None:
        raise ValueError("the discrete SAP variant needs a held-out test sample")
    return top_two_gap(discrete_score_matrix(train_codes, train_factors, test_codes, test_factors,
                                             random_state, run, stage))
