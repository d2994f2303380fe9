"""engine.metrics.gbt against scikit-learn's GradientBoostingClassifier on the same inputs and seed: the same trees,
importances, raw predictions and labels, and DCI's D, C and I within 1e-6 of the reference's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.tree import DecisionTreeRegressor

from engine.metrics import completeness, disentanglement, gbt
from engine.metrics.dci import gbt_importance
from engine.metrics.gbt import _partition_like_reference, fit_boosted_trees

N = 200
STAGES = 40  # fewer boosting stages than DCI's 100 keep the per-tree comparison quick; DCI itself is compared below


def _heap_tree(tree, depth: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A fitted sklearn tree's split features and thresholds in heap order (children of h: 2h + 1, 2h + 2)."""
    features, thresholds = np.full(2**depth - 1, -1), np.zeros(2**depth - 1)

    def walk(node: int, h: int) -> None:
        if h >= len(features) or tree.children_left[node] == -1:
            return
        features[h], thresholds[h] = tree.feature[node], tree.threshold[node]
        walk(tree.children_left[node], 2 * h + 1)
        walk(tree.children_right[node], 2 * h + 2)

    walk(0, 0)
    return features, thresholds


def _codes(case: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    factors = np.column_stack([rng.integers(0, 4, N), rng.integers(0, 2, N), rng.integers(0, 3, N)])
    f = factors.astype(np.float64)
    codes = {
        "identity": f,
        "factor copied into two codes": np.column_stack([f[:, 0], f[:, 0], f[:, 1:]]),
        "every factor twice": np.column_stack([f, f]),
        "noisy factors": f + 0.4 * rng.normal(size=f.shape),
        "factors and noise codes": np.column_stack([f, rng.normal(size=(N, 2))]),
        "random codes with ties": rng.integers(0, 5, size=(N, 4)).astype(np.float64),
        "pure noise": rng.normal(size=(N, 3)),
    }[case]
    return codes, factors


CASES = ["identity", "factor copied into two codes", "every factor twice", "noisy factors",
         "factors and noise codes", "random codes with ties", "pure noise"]


@pytest.mark.parametrize("case", CASES)
def test_same_trees_importances_and_predictions_as_the_reference(case):
    """Every tree of every stage, the importances and the held-out predictions, multi-class and binary."""
    codes, factors = _codes(case, np.random.default_rng(CASES.index(case)))
    held_out, _ = _codes(case, np.random.default_rng(100 + CASES.index(case)))
    for k in (0, 1):  # four classes (four trees per stage), two classes (one tree per stage)
        reference = GradientBoostingClassifier(n_estimators=STAGES, random_state=7).fit(codes, factors[:, k])
        ours = fit_boosted_trees(codes, factors[:, k], 7, n_estimators=STAGES)
        assert ours.features.shape[:2] == reference.estimators_.shape
        for stage in range(reference.estimators_.shape[0]):
            for t in range(reference.estimators_.shape[1]):
                features, thresholds = _heap_tree(reference.estimators_[stage, t].tree_)
                assert np.array_equal(ours.features[stage, t], features), (case, k, stage, t)
                np.testing.assert_array_equal(ours.thresholds[stage, t], thresholds)
        np.testing.assert_allclose(ours.feature_importances_, reference.feature_importances_, rtol=0, atol=1e-12)
        np.testing.assert_allclose(ours.decision_function(held_out),
                                   reference.decision_function(held_out).reshape(len(held_out), -1),
                                   rtol=0, atol=1e-9)
        assert np.array_equal(ours.predict(held_out), reference.predict(held_out))


def test_dci_scores_equal_the_reference_within_1e_6():
    """D, C and informativeness of the default estimator against GradientBoostingClassifier itself, on codes with a
    copied factor (ties broken by the reference's random feature order) and noise codes."""
    rng = np.random.default_rng(5)
    factors = np.column_stack([rng.integers(0, 3, N), rng.integers(0, 4, N), rng.integers(0, 2, N)])
    test_factors = np.column_stack([rng.integers(0, 3, 200), rng.integers(0, 4, 200), rng.integers(0, 2, 200)])

    def represent(f: np.ndarray) -> np.ndarray:
        return np.column_stack([f[:, 0], f[:, 0], f[:, 1] + 0.3 * rng.normal(size=len(f)), f[:, 2],
                                rng.normal(size=len(f))])

    codes, test_codes = represent(factors), represent(test_factors)
    ours = gbt_importance(codes, factors, test_codes, test_factors, 11, estimator="exact")
    reference = gbt_importance(codes, factors, test_codes, test_factors, 11, estimator="sklearn")
    np.testing.assert_allclose(ours[0], reference[0], rtol=0, atol=1e-6)
    assert ours[1:] == pytest.approx(reference[1:], abs=1e-6)
    assert disentanglement(ours[0]) == pytest.approx(disentanglement(reference[0]), abs=1e-6)
    assert completeness(ours[0]) == pytest.approx(completeness(reference[0]), abs=1e-6)
    assert 0.2 < ours[0][0, 0] < 0.8, "the copied factor's importance is shared between its two codes"


def _partition_literally(order: np.ndarray, goes_left: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sklearn's partition_samples_final as written (two pointers, swap with the end)."""
    samples, i, end = list(order), 0, len(order)
    while i < end:
        if goes_left[samples[i]]:
            i += 1
        else:
            end -= 1
            samples[i], samples[end] = samples[end], samples[i]
    return np.array(samples[:i], dtype=np.int64), np.array(samples[i:], dtype=np.int64)


def test_partition_order_is_the_references():
    rng = np.random.default_rng(0)
    for _ in range(500):
        order = rng.permutation(60)[: rng.integers(1, 40)]
        goes_left = rng.random(60) < rng.random()
        for ours, literal in zip(_partition_like_reference(order, goes_left), _partition_literally(order, goes_left),
                                 strict=True):
            assert np.array_equal(ours, literal)


def test_stopping_early_and_bad_input():
    codes = np.random.default_rng(0).normal(size=(50, 2))
    labels = np.arange(50) % 3
    stopped = fit_boosted_trees(codes, labels, 0, on_stage=lambda stage: stage == 4)
    assert stopped.features.shape[0] == 5 and np.isclose(stopped.feature_importances_.sum(), 1.0)
    with pytest.raises(ValueError, match="single value"):
        fit_boosted_trees(codes, np.zeros(50), 0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        fit_boosted_trees(np.full((50, 2), np.nan), labels, 0)
    with pytest.raises(ValueError, match="rows"):
        fit_boosted_trees(codes, labels[:10], 0)
    with pytest.raises(ValueError, match="2-D"):
        fit_boosted_trees(codes[:, 0], labels, 0)


def test_near_ties_in_small_nodes_are_decided_as_the_reference_decides(monkeypatch):
    """Splits of 2–5 samples where several features give the same or the mirrored split (copied and permuted
    columns): the choice made without the reference's sample order (the same one-or-two-sample split: first
    visited feature; a node of ≤ 4 samples: every order of its sum tried) equals DecisionTreeRegressor's."""
    decided, exact_searches = [0], [0]
    small_node_choice = gbt._small_node_choice

    def counting_choice(*args):
        choice = small_node_choice(*args)
        decided[0] += choice is not None
        return choice

    search = gbt._TreeGrower._search

    def counting_search(self, node, r, visited, exact):
        exact_searches[0] += exact
        return search(self, node, r, visited, exact)

    monkeypatch.setattr(gbt, "_small_node_choice", counting_choice)
    monkeypatch.setattr(gbt._TreeGrower, "_search", counting_search)
    rng = np.random.default_rng(3)
    for trial in range(300):
        n = int(rng.integers(2, 6))
        base = rng.normal(size=n)
        columns = [base, base.copy(), rng.permutation(base), -base, rng.normal(size=n)]
        X = np.column_stack(columns).astype(np.float32)
        r = rng.choice([-0.3, 0.1, 0.7], size=n) if trial % 3 == 0 else rng.normal(size=n)
        seed = trial
        reference = DecisionTreeRegressor(max_depth=1, random_state=seed).fit(X, r).tree_
        features, thresholds, _, _ = gbt._TreeGrower(X, 1).grow(
            r, np.random.RandomState(seed).randint(0, gbt.RAND_R_MAX))
        expected = reference.feature[0] if reference.node_count > 1 else -1
        assert features[0] == expected, (trial, n)
        if expected >= 0:
            assert thresholds[0] == reference.threshold[0]
    assert decided[0] >= 100, "nodes of a few samples were decided by trying the orders of their sum"
    assert exact_searches[0] < 100, "most near-ties were decided without the exact search"


def test_compiled_split_scores_are_the_shifted_proxies_of_every_position():
    """_gbt_kernels.split_scores against the formula in NumPy: (Σ_left − n_left·Σ/n)²·n/(n_left·n_right), −1 where
    no threshold may follow, and each row's first maximum (equal proxies: the earliest position)."""
    from engine.metrics._gbt_kernels import split_scores

    rng = np.random.default_rng(5)
    count, F = 57, 4
    r = rng.normal(size=200)
    r[:100] = 0.25  # equal residuals give equal proxies at several positions
    samples = np.stack([rng.permutation(200)[:count] for _ in range(F)]).astype(np.int32)
    valid = rng.random((F, count - 1)) > 0.3
    total = r[samples[0]].sum()
    for use_valid in (False, True):
        out, position = np.empty((F, count - 1)), np.empty(F, dtype=np.int64)
        split_scores(samples, r, total, valid, use_valid, out, position)
        n_left = np.arange(1, count)
        left = np.cumsum(r[samples], axis=1)[:, :-1]
        expected = (left - n_left * total / count) ** 2 * count / (n_left * (count - n_left))
        if use_valid:
            expected = np.where(valid, expected, -1.0)
        np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(position, out.argmax(axis=1))
    flat = np.full(200, 0.5)  # every proxy 0: the first position of each row
    split_scores(samples, flat, flat[samples[0]].sum(), valid, False, out, position)
    assert (position == 0).all()


def test_compiled_partition_keeps_each_sides_sorted_order():
    """_gbt_kernels.partition_pairs equals a stable filter of every feature's pairs by the samples' side."""
    from engine.metrics._gbt_kernels import partition_pairs

    rng = np.random.default_rng(6)
    X = rng.normal(size=(300, 3)).astype(np.float32)
    order = np.argsort(X.T, axis=1, kind="stable")
    pairs = np.empty((3, 300), dtype=np.int64)
    gbt._pair_samples(pairs)[...] = order
    gbt._pair_values(pairs)[...] = np.take_along_axis(X.T, order, axis=1)
    goes_left = X[:, 1] <= 0.2
    n_left = int(goes_left.sum())
    left, right = np.empty((3, n_left), dtype=np.int64), np.empty((3, 300 - n_left), dtype=np.int64)
    partition_pairs(pairs, gbt._pair_samples(pairs), goes_left, left, right)
    for f in range(3):
        side = goes_left[order[f]]
        np.testing.assert_array_equal(left[f], pairs[f][side])
        np.testing.assert_array_equal(right[f], pairs[f][~side])
        assert (np.diff(gbt._pair_values(left)[f]) >= 0).all() and set(gbt._pair_samples(left)[f]) == set(
            np.flatnonzero(goes_left))


def test_numba_loads_at_the_first_fit_not_with_the_metrics_package():
    """The app imports engine.metrics at start (the Evaluation tab): the compiler must not come with it."""
    import subprocess
    import sys

    script = ("import sys, numpy as np; import engine.metrics; assert 'numba' not in sys.modules; "
              "from engine.metrics.gbt import fit_boosted_trees; assert 'numba' not in sys.modules; "
              "fit_boosted_trees(np.arange(8.0)[:, None], np.arange(8) % 2, 0, n_estimators=2); "
              "assert 'numba' in sys.modules; print('ok')")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=str(Path(__file__).resolve().parents[2]))
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
