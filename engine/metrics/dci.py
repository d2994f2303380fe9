"""DCI (Eastwood & Williams 2018): disentanglement, completeness and informativeness from an importance
matrix R (D codes × K factors) of per-factor gradient-boosted trees."""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import torch
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier

from .core import DCI_ESTIMATORS, Run
from .gbt import fit_boosted_trees

_EPS = 1e-11


def _normalised_entropy(p: np.ndarray, base: int, axis: int) -> np.ndarray:
    """Entropy with logarithm base `base` of the distributions p / Σp along `axis` (scipy's convention);
    zero when base is 1 (a single code or factor has nothing to spread over)."""
    if base < 2:
        return np.zeros(np.delete(p.shape, axis))
    p = p + _EPS
    p = p / p.sum(axis=axis, keepdims=True)
    return -(p * np.log(p)).sum(axis=axis) / np.log(base)


def disentanglement_per_code(importance: np.ndarray) -> np.ndarray:
    """D_i = 1 − H_K(P_i·), P_ij = R_ij / Σ_k R_ik (entropy in base K = number of factors)."""
    return 1.0 - _normalised_entropy(importance, base=importance.shape[1], axis=1)


def completeness_per_factor(importance: np.ndarray) -> np.ndarray:
    """C_j = 1 − H_D(P̃_·j), P̃_ij = R_ij / Σ_i R_ij (entropy in base D = number of codes)."""
    return 1.0 - _normalised_entropy(importance, base=importance.shape[0], axis=0)


def _check_importance(importance: np.ndarray) -> np.ndarray:
    importance = np.abs(np.asarray(importance, dtype=np.float64))
    if importance.ndim != 2 or importance.size == 0:
        raise ValueError(f"importance must be a non-empty D×K matrix, got shape {importance.shape}")
    return importance


def disentanglement(importance: np.ndarray) -> float:
    """D = Σ_i ρ_i D_i with code weights ρ_i = Σ_k R_ik / Σ R (uniform when R is all zero)."""
    importance = _check_importance(importance)
    per_code = disentanglement_per_code(importance)
    weights = importance if importance.sum() > 0 else np.ones_like(importance)
    code_weight = weights.sum(axis=1) / weights.sum()
    return float((per_code * code_weight).sum())


def completeness(importance: np.ndarray) -> float:
    """C = Σ_j ρ_j C_j with factor weights ρ_j = Σ_i R_ij / Σ R (uniform when R is all zero)."""
    importance = _check_importance(importance)
    per_factor = completeness_per_factor(importance)
    weights = importance if importance.sum() > 0 else np.ones_like(importance)
    factor_weight = weights.sum(axis=0) / weights.sum()
    return float((per_factor * factor_weight).sum())


def gbt_importance(train_codes: np.ndarray, train_factors: np.ndarray, test_codes: np.ndarray,
                   test_factors: np.ndarray, random_state: int, run: Run | None = None,
                   stage: str = "dci", estimator: str = DCI_ESTIMATORS[0],
                   workers: int | None = None) -> tuple[np.ndarray, float, float]:
    """(importance D×K, mean train accuracy, mean test accuracy) from one gradient-boosted classifier per factor.

    Every estimator boosts 100 depth-3 trees per class at learning rate 0.1 (scikit-learn's defaults, as in
    disentanglement_lib); each factor's importance column sums to 1.
    - "exact" (default): engine.metrics.gbt, scikit-learn 1.9's GradientBoostingClassifier re-written with presorted
      features; its trees, importances and predictions equal the reference's (tests/engine/test_metrics_gbt.py).
    - "sklearn": GradientBoostingClassifier itself (the reference, ~10× slower), importance = feature_importances_.
    - "hist": HistGradientBoostingClassifier on 255 quantile bins per code, importance = total split gain per
      code; NOT equivalent (docs/metrics.md): it gives a redundant copy of a code no importance (completeness 1
      where the reference falls below) and spreads more importance over noise (lower D and C).
    The "exact" and "sklearn" fits run one factor per worker process (`workers`, default `dci_workers()`), the
    factors with most trees first, when the fit is large enough to repay the workers' start (about a second
    each); results are identical to a sequential fit.
    """
    if estimator not in DCI_ESTIMATORS:
        raise ValueError(f"unknown DCI estimator {estimator!r}; choose from {', '.join(DCI_ESTIMATORS)}")
    num_factors = train_factors.shape[1]
    for k in range(num_factors):
        if len(np.unique(train_factors[:, k])) < 2:
            raise ValueError(f"factor {k} takes a single value in the DCI training sample; "
                             "use more training points")
    if estimator in ("exact", "sklearn"):
        models, columns = _fit_boosted_factors(train_codes, train_factors, random_state, run, stage, workers,
                                               reference=estimator == "sklearn")
    else:
        models, columns = [], []
        for k in range(num_factors):
            message = f"DCI: gradient-boosted trees for factor {k + 1}/{num_factors}"
            model = _fit_hist(train_codes, train_factors[:, k], random_state, run, stage, message, k, num_factors)
            models.append(model)
            columns.append(hist_gain_importance(model, train_codes.shape[1]))
    importance = np.stack(columns, axis=1)
    train_acc = [np.mean(m.predict(train_codes) == train_factors[:, k]) for k, m in enumerate(models)]
    test_acc = [np.mean(m.predict(test_codes) == test_factors[:, k]) for k, m in enumerate(models)]
    return importance, float(np.mean(train_acc)), float(np.mean(test_acc))


def dci_workers() -> int:
    """Worker processes for the boosted-tree fits: at most 2, and no more than the cores this process may use or
    torch's intra-op threads (the budget the app or a sweep worker gave this process)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(2, cores, torch.get_num_threads()))


PARALLEL_MIN_WORK = 100_000  # training rows × trees per boosting round below which one process fits every factor


def _fit_boosted_factors(codes: np.ndarray, factors: np.ndarray, random_state: int, run: Run | None, stage: str,
                         workers: int | None, reference: bool) -> tuple[list, list[np.ndarray]]:
    """One boosted classifier per factor (engine.metrics.gbt, or GradientBoostingClassifier when `reference`).

    With more than one worker and enough work, the factors are fitted in spawned worker processes, the factors
    with most classes (most trees) first; otherwise one after another here. Progress is the share of trees built
    so far; cancellation stops every fit at its next boosting round."""
    num_factors = factors.shape[1]
    trees_per_round = [1 if c == 2 else c for c in (len(np.unique(factors[:, k])) for k in range(num_factors))]
    total_trees = 100 * sum(trees_per_round)
    order = sorted(range(num_factors), key=lambda k: -trees_per_round[k])
    count = max(1, min(workers or dci_workers(), num_factors))

    def report(done_rounds: list[int]) -> None:
        if run is not None:
            built = sum(r * t for r, t in zip(done_rounds, trees_per_round, strict=True))
            run.report(stage, built / total_trees,
                       f"DCI: gradient-boosted trees, {sum(r >= 100 for r in done_rounds)}/{num_factors} factors done")

    if count > 1 and len(codes) * sum(trees_per_round) >= PARALLEL_MIN_WORK:
        models = _fit_in_processes(codes, factors, random_state, reference, order, count, report)
    else:
        models = {}
        done_rounds = [0] * num_factors
        for k in order:
            def after_round(i: int, k: int = k) -> bool:
                done_rounds[k] = i + 1
                report(done_rounds)
                return False

            models[k] = _fit_factor(codes, factors[:, k], random_state, reference, after_round)
    fitted = [models[k] for k in range(num_factors)]
    return fitted, [np.abs(m.feature_importances_) for m in fitted]


def _fit_factor(codes: np.ndarray, labels: np.ndarray, random_state: int, reference: bool, after_round):
    """One factor's classifier; `after_round(i)` runs after boosting round i and returns True to stop."""
    if reference:
        model = GradientBoostingClassifier(random_state=random_state)
        return model.fit(codes, labels, monitor=lambda i, _model, _locals: after_round(i))
    return fit_boosted_trees(codes, labels, random_state, on_stage=after_round)


def _fit_in_processes(codes: np.ndarray, factors: np.ndarray, random_state: int, reference: bool, order: list[int],
                      count: int, report) -> dict[int, object]:
    """The factors in `order` on `count` worker processes (engine/metrics/_worker.py), each taking the next factor
    when it finishes one. Plain subprocesses, not multiprocessing: a fork would copy the caller's Qt and torch
    threads mid-flight, and a spawn re-imports the caller's main module. One reader thread per worker turns its
    replies into queue items; this thread reports progress (where cancellation is noticed: report raises) and kills
    the workers on cancellation or error."""
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    replies: queue.Queue = queue.Queue()
    workers = [subprocess.Popen([sys.executable, "-m", "engine.metrics._worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, env=env) for _ in range(count)]
    readers = [threading.Thread(target=_read_replies, args=(worker, replies), daemon=True) for worker in workers]
    for reader in readers:
        reader.start()
    pending = list(order)
    busy: dict[int, subprocess.Popen] = {}
    done_rounds = [0] * factors.shape[1]
    models: dict[int, object] = {}

    def give(worker: subprocess.Popen) -> None:
        if pending:
            k = pending.pop(0)
            busy[k] = worker
            pickle.dump((k, codes, factors[:, k], random_state, reference), worker.stdin,
                        protocol=pickle.HIGHEST_PROTOCOL)
            worker.stdin.flush()

    try:
        for worker in workers:
            give(worker)
        while busy:
            try:
                kind, k, payload = replies.get(timeout=0.25)
            except queue.Empty:
                report(done_rounds)
                continue
            if kind == "round":
                done_rounds[k] = payload
            elif kind == "done":
                models[k] = payload
                give(busy.pop(k))
            elif kind == "error":
                raise RuntimeError(f"DCI worker failed on factor {k}:\n{payload}")
            else:  # a worker's pipe closed before it finished its factors
                raise RuntimeError(f"a DCI worker process exited unexpectedly (code {payload})")
            report(done_rounds)
    finally:
        for worker in workers:
            if busy or pending:
                worker.kill()
            with contextlib.suppress(OSError):
                worker.stdin.close()  # the end of its tasks: an idle worker exits
        for worker, reader in zip(workers, readers, strict=True):
            worker.wait()
            reader.join()
            worker.stdout.close()
    return models


def _read_replies(worker: subprocess.Popen, replies: queue.Queue) -> None:
    """Queue a worker's replies until its pipe closes; then ("exit", −1, its exit code)."""
    try:
        while True:
            replies.put(pickle.load(worker.stdout))
    except (EOFError, OSError, pickle.UnpicklingError):
        replies.put(("exit", -1, worker.wait()))


def _fit_hist(codes: np.ndarray, labels: np.ndarray, random_state: int, run: Run | None, stage: str,
              message: str, k: int, num_factors: int) -> HistGradientBoostingClassifier:
    """One fit per factor; progress and cancellation are checked between factors (the estimator has no per-round
    callback, and warm-started chunks re-bin the data and re-predict every earlier tree: twice the time)."""
    if run is not None:
        run.report(stage, k / num_factors, message)
    model = HistGradientBoostingClassifier(learning_rate=0.1, max_iter=100, max_depth=3, max_leaf_nodes=None,
                                           min_samples_leaf=1, l2_regularization=0.0, early_stopping=False,
                                           random_state=random_state)
    return model.fit(codes, labels)


def hist_gain_importance(model: HistGradientBoostingClassifier, num_features: int) -> np.ndarray:
    """Σ split gain per feature over every tree of a fitted HistGradientBoostingClassifier, normalised to sum 1
    (all zeros when no tree split)."""
    predictors = getattr(model, "_predictors", None)
    if predictors is None:
        raise RuntimeError("this scikit-learn's HistGradientBoostingClassifier does not expose its trees "
                           "(_predictors); use the 'exact' DCI estimator")
    gain = np.zeros(num_features)
    for trees in predictors:
        for tree in trees:
            nodes = tree.nodes
            split = nodes["is_leaf"] == 0
            np.add.at(gain, nodes["feature_idx"][split], np.maximum(nodes["gain"][split], 0.0))
    total = gain.sum()
    return gain / total if total > 0 else gain


def dci_scores(train_codes: np.ndarray, train_factors: np.ndarray, test_codes: np.ndarray,
               test_factors: np.ndarray, random_state: int, run: Run | None = None,
               stage: str = "dci", estimator: str = DCI_ESTIMATORS[0], workers: int | None = None
               ) -> dict[str, float]:
    """disentanglement, completeness, informativeness (= mean held-out accuracy) and the importance matrix."""
    importance, _, test_accuracy = gbt_importance(train_codes, train_factors, test_codes, test_factors,
                                                  random_state, run, stage, estimator, workers)
    return {
        "dci_disentanglement": disentanglement(importance),
        "dci_completeness": completeness(importance),
        "dci_informativeness": test_accuracy,
        "dci_importance": importance.tolist(),
        "dci_estimator": estimator,
    }
