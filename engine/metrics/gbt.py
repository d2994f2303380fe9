"""scikit-learn's GradientBoostingClassifier (version 1.9, log-loss, depth-limited least-squares trees, no
subsampling) re-written in NumPy: each feature is sorted once and every threshold of every feature of a node is
scored with one cumulative sum, instead of a sort and a scalar sweep per feature and node.

The algorithm is the reference's, step for step (sklearn/ensemble/_gb.py, sklearn/tree/_splitter.pyx,
_partitioner.pyx, _criterion.pyx, _tree.pyx):
- X is cast to float32; classes are the sorted distinct labels; the initial raw prediction is the log of the clipped
  class prior (binary: its logit; multi-class: log(p / geometric mean of p)).
- Each stage fits one regression tree per class (one tree for two classes) to the negative gradient of the log loss
  (multi-class: one-hot − softmax; binary: y − expit), depth-first, best split per node over every feature:
  the proxy Σ_left²/n_left + Σ_right²/n_right is maximised over the positions between consecutive sorted values
  that differ by more than FEATURE_THRESHOLD (float32 arithmetic), the threshold is the midpoint of those two
  float32 values, a node is a leaf at the maximum depth, below two samples, with impurity ≤ machine epsilon, when
  every feature is constant on it, or when the best split's impurity improvement is below −epsilon.
- Ties between features are broken as the reference breaks them: the features are visited in the order of a
  Fisher-Yates draw from the tree's own xorshift generator (seeded by one `randint` of the ensemble's RandomState
  per tree) and the first visited feature with the best proxy wins.
- Rounding: where a choice could turn on it (a rival within 1e-9 of the best proxy's scale, an impurity or
  improvement near zero), the node is redone with sums in exactly the reference's order: its partition of the
  samples, its introsort's order of equal values (scikit-learn's own sort routine), its forward or backward
  criterion updates. Elsewhere any order gives the same decision.
- Leaf values are one Newton step: mean(−gradient)·(K−1)/K ÷ mean(p(1−p)) (binary: without (K−1)/K); raw
  predictions grow by learning_rate × leaf value.
- Importances: per tree Σ over splits of N·impurity − N_left·impurity_left − N_right·impurity_right, divided by
  the root's N; averaged over the trees with at least one split and normalised to sum 1.
Equality with the reference (importances and predictions) is tested in tests/engine/test_metrics_gbt.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.special import logit
from scipy.stats import gmean
from sklearn._loss.loss import HalfBinomialLoss, HalfMultinomialLoss

try:  # the reference's own sort (introsort), whose order of equal values decides how their residuals are summed
    from sklearn.utils._sorting import _py_simultaneous_sort as _reference_sort
except ImportError:  # another scikit-learn: equal values keep their sample order (results may then differ by rounding)
    _reference_sort = None

FEATURE_THRESHOLD = np.float32(1e-7)  # sklearn/tree/_partitioner.pxd: values closer than this are one value
EPSILON = np.finfo(np.float64).eps  # a node with impurity ≤ EPSILON is a leaf (sklearn/tree/_tree.pyx)
RAND_R_MAX = 2147483647  # sklearn/utils/_random.pxd
_FRAGILE = 1e-9  # a rival split or impurity this close (relative to its scale) could be decided by rounding
_SMALL_NODE = 4  # near-equal splits of a node this small are decided by trying every order of its sum (4! = 24)
_UINT32 = 0xFFFFFFFF


@dataclass
class BoostedTrees:
    """A fitted ensemble: per stage and tree, the features (−1: leaf) and thresholds of the 2^depth − 1 internal
    heap positions and the values of every heap position (children of h: 2h + 1 and 2h + 2)."""

    classes: np.ndarray
    init_raw: np.ndarray
    learning_rate: float
    features: np.ndarray
    thresholds: np.ndarray
    values: np.ndarray
    feature_importances_: np.ndarray

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Raw predictions (n × trees per stage), accumulated stage by stage as the reference does."""
        Xf = _as_float32(X)
        raw = np.tile(self.init_raw, (len(Xf), 1))
        rows = np.arange(len(Xf))
        depth = int(np.log2(self.features.shape[2] + 1))
        for stage in range(self.features.shape[0]):
            for t in range(self.features.shape[1]):
                node = np.zeros(len(Xf), dtype=np.int64)
                for _ in range(depth):
                    feature = self.features[stage, t, np.minimum(node, self.features.shape[2] - 1)]
                    internal = (node < self.features.shape[2]) & (feature >= 0)
                    right = Xf[rows, np.maximum(feature, 0)] > self.thresholds[stage, t, np.minimum(
                        node, self.features.shape[2] - 1)]
                    node = np.where(internal, 2 * node + 1 + right, node)
                raw[:, t] += self.learning_rate * self.values[stage, t, node]
        return raw

    def predict(self, X: np.ndarray) -> np.ndarray:
        raw = self.decision_function(X)
        if raw.shape[1] == 1:
            return self.classes[(raw[:, 0] >= 0).astype(int)]
        return self.classes[np.argmax(raw, axis=1)]


def _as_float32(X: np.ndarray) -> np.ndarray:
    Xf = np.ascontiguousarray(X, dtype=np.float32)
    if Xf.ndim != 2:
        raise ValueError(f"X must be 2-D, got shape {Xf.shape}")
    if not np.isfinite(Xf).all():
        raise ValueError("X contains NaN or infinite values (after the cast to float32)")
    return Xf


def fit_boosted_trees(X: np.ndarray, y: np.ndarray, random_state: int, n_estimators: int = 100,
                      learning_rate: float = 0.1, max_depth: int = 3,
                      on_stage: Callable[[int], bool] | None = None) -> BoostedTrees:
    """The reference GradientBoostingClassifier(n_estimators, learning_rate, max_depth, random_state) fit.

    `on_stage(i)` is called after stage i; returning True stops the fit (the ensemble so far is returned)."""
    Xf = _as_float32(X)
    n, num_features = Xf.shape
    if len(y) != n:
        raise ValueError(f"X has {n} rows but y has {len(y)}")
    classes, encoded = np.unique(np.asarray(y), return_inverse=True)
    if len(classes) < 2:
        raise ValueError("y takes a single value; boosting needs at least two classes")
    num_classes = len(classes)
    num_trees = 1 if num_classes == 2 else num_classes
    eps = np.finfo(np.float64).eps
    prior = np.bincount(encoded, minlength=num_classes) / n
    if num_classes == 2:
        init_raw = np.array([logit(np.clip(prior[1], eps, 1 - eps))])
        targets = encoded.astype(np.float64)[:, None]
    else:
        p = np.clip(prior, eps, 1 - eps)
        init_raw = np.log(p / gmean(p))
        targets = (encoded[:, None] == np.arange(num_classes)).astype(np.float64)
    raw = np.tile(init_raw, (n, 1))
    encoded_float = encoded.astype(np.float64)
    loss = HalfBinomialLoss() if num_classes == 2 else HalfMultinomialLoss(n_classes=num_classes)
    rng = np.random.RandomState(random_state)
    grower = _TreeGrower(Xf, max_depth)
    internal, heap = 2**max_depth - 1, 2 ** (max_depth + 1) - 1
    features = np.full((n_estimators, num_trees, internal), -1, dtype=np.int64)
    thresholds = np.zeros((n_estimators, num_trees, internal))
    values = np.zeros((n_estimators, num_trees, heap))
    importance_sum = np.zeros(num_features)
    relevant_trees = 0
    stages = n_estimators
    for stage in range(n_estimators):
        neg_gradient = _negative_gradient(loss, raw, encoded_float)
        for t in range(num_trees):
            seed = rng.randint(0, RAND_R_MAX)  # one draw per tree, in the reference's order
            r = np.ascontiguousarray(neg_gradient[:, t])
            tree_features, tree_thresholds, leaf, importances = grower.grow(r, seed)
            update = _newton_leaf_values(leaf, r, targets[:, t], num_classes, heap)
            values[stage, t] = update
            raw[:, t] += learning_rate * update[leaf]
            features[stage, t], thresholds[stage, t] = tree_features, tree_thresholds
            if (tree_features >= 0).any():
                relevant_trees += 1
                importance_sum += importances
        if on_stage is not None and on_stage(stage):
            stages = stage + 1
            break
    if relevant_trees:
        mean = importance_sum / relevant_trees
        importances = mean / mean.sum()
    else:
        importances = np.zeros(num_features)
    return BoostedTrees(classes, init_raw, learning_rate, features[:stages], thresholds[:stages], values[:stages],
                        importances)


def _newton_leaf_values(leaf: np.ndarray, neg_gradient: np.ndarray, target: np.ndarray, num_classes: int,
                        heap_size: int) -> np.ndarray:
    """One Newton step per leaf: mean(−g)·(K−1)/K ÷ mean(p(1−p)) with p = y + g (binary: no (K−1)/K); 0 where the
    hessian is below 1e-150 (sklearn's _safe_divide). Means are NumPy's (pairwise) sums over the leaf's samples in
    index order, as the reference's np.average forms them."""
    by_leaf = np.argsort(leaf.astype(np.int16), kind="stable")
    bounds = np.searchsorted(leaf[by_leaf], np.arange(heap_size + 1))
    grad = neg_gradient[by_leaf]
    prob = target[by_leaf] - grad
    hess = prob * (1 - prob)
    out = np.zeros(heap_size)
    for h in np.flatnonzero(np.diff(bounds)):
        lo, hi = bounds[h], bounds[h + 1]
        numerator = grad[lo:hi].sum() / (hi - lo)
        if num_classes > 2:
            numerator *= (num_classes - 1) / num_classes
        denominator = hess[lo:hi].sum() / (hi - lo)
        out[h] = 0.0 if abs(denominator) < 1e-150 else float(numerator) / float(denominator)
    return out


def _negative_gradient(loss: HalfBinomialLoss | HalfMultinomialLoss, raw: np.ndarray,
                       encoded: np.ndarray) -> np.ndarray:
    """−∂loss/∂raw (n × trees), from scikit-learn's own loss so that every residual is bit-identical."""
    if isinstance(loss, HalfBinomialLoss):
        return -loss.gradient(y_true=encoded, raw_prediction=raw[:, 0])[:, None]
    return -loss.gradient(y_true=encoded, raw_prediction=raw)


class _TreeGrower:
    """Grows one regression tree at a time on fixed float32 inputs, depth first like the reference's builder.

    Every feature is sorted once; a node keeps, per feature, its samples in sorted order (split into the children by
    a stable partition), so every threshold of every feature of a node is scored at once with one cumulative sum.
    Sums are formed in the reference's order where it is known (a node's samples in the order the reference's
    partition leaves them; the left sums sequential from the node's first sorted sample), so that equal proxies
    of different features (e.g. a copied code) compare as they do in the reference."""

    def __init__(self, Xf: np.ndarray, max_depth: int):
        from ._gbt_kernels import partition_pairs, split_scores  # numba loads at the first fit, not at app start

        self._split_scores, self._partition_pairs = split_scores, partition_pairs
        self.XT = np.ascontiguousarray(Xf.T)
        F, n = self.XT.shape
        self.max_depth = max_depth
        order = np.argsort(self.XT, axis=1, kind="stable")
        if n >= 2**31:
            raise ValueError(f"at most 2**31 − 1 training points, got {n}")
        # (int32 sample index, float32 value) pairs in one 8-byte item, so a partition moves both with one copy
        self.root_pairs = np.empty((F, n), dtype=np.int64)
        _pair_samples(self.root_pairs)[...] = order
        _pair_values(self.root_pairs)[...] = np.take_along_axis(self.XT, order, axis=1)
        self.root_valid = _distinct_neighbours(_pair_values(self.root_pairs))
        self.root_ties = ~self.root_valid.all(axis=1)
        self.n_left = np.arange(1, n + 1, dtype=np.float64)
        # work buffers for the approximate search (a fresh array per node would be mapped page by page)
        self._samples = np.empty(F * n, dtype=np.int64)
        self._samples_of: _Node | None = None
        self._proxies = np.empty(F * n)
        self._positions = np.empty(F, dtype=np.int64)
        self._no_valid = np.ones((1, 1), dtype=bool)

    def _node_samples(self, node: _Node) -> np.ndarray:
        """The sample indices of `node.pairs` (F × count), contiguous: a gather through them is several times
        faster. Kept in one buffer for the node searched last (its partition reads them next)."""
        F, count = node.pairs.shape
        samples = self._samples[:F * count].reshape(F, count)
        if self._samples_of is not node:
            np.copyto(samples, _pair_samples(node.pairs))
            self._samples_of = node
        return samples

    def grow(self, r: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(features per internal heap node (−1: leaf), thresholds, each sample's leaf, unnormalised importances).

        A node is searched first with sums in an approximate order (equal values in sample order, the node's
        samples as the approximate parent left them). Only where the decision could turn on rounding (a second
        candidate within 1e-9 of the best proxy's scale, or an impurity near the leaf threshold) are the node and
        its ancestors redone in the reference's exact order (its introsort on equal values, its partition)."""
        F, n = self.XT.shape
        internal, heap_size = 2**self.max_depth - 1, 2 ** (self.max_depth + 1) - 1
        features = np.full(internal, -1, dtype=np.int64)
        thresholds = np.zeros(internal)
        node_n = np.zeros(heap_size)
        node_impurity = np.zeros(heap_size)
        leaf = np.zeros(n, dtype=np.int64)
        visit_order = _VisitOrder(F, seed)
        total, square = _sequential_sum(r), _sequential_sum(r * r)
        root = _Node(np.arange(n), self.root_pairs, self.root_valid, self.root_ties, 0, 0, 0, total,
                     square / n - (total / n) ** 2.0)
        root.exact = True
        stack = [root]
        while stack:
            node = stack.pop()
            count = len(node.members)
            if abs(node.impurity) < _FRAGILE and count >= 2 and node.depth < self.max_depth:
                self._make_exact(node, r)  # the leaf test below compares this impurity with machine epsilon
            node_n[node.heap], node_impurity[node.heap] = count, node.impurity
            if node.depth >= self.max_depth or count < 2 or node.impurity <= EPSILON:
                leaf[node.members] = node.heap
                continue
            values = _pair_values(node.pairs)
            is_constant = values[:, -1] <= values[:, 0].astype(np.float32) + FEATURE_THRESHOLD
            visited, node.sorted_features, n_total = visit_order.visit(node.n_known, is_constant)
            if not visited:
                leaf[node.members] = node.heap
                continue
            choice = self._search(node, r, visited, exact=False)
            if choice is not None and choice[2]:
                self._make_exact(node, r)
                choice = self._search(node, r, visited, exact=True)
            children = self._split(node, r, values, choice, n)
            if children is not None and abs(children[0]) < _FRAGILE and node.exact_last is None:
                self._make_exact(node, r)  # the improvement's sign below could be decided by rounding
                choice = self._search(node, r, visited, exact=True)
                children = self._split(node, r, values, choice, n)
            if children is None or children[0] + EPSILON < 0:  # no split, or one that worsens the impurity
                leaf[node.members] = node.heap
                continue
            features[node.heap], thresholds[node.heap] = choice[0], node.threshold
            node_impurity[node.heap] = node.impurity  # made exact above where it mattered
            children = children[2]
            left_members = children[1][0]
            pairs_by_side = {1: None, 2: None}
            if node.depth + 1 < self.max_depth:
                pairs_by_side[1] = np.empty((F, len(left_members)), dtype=np.int64)
                pairs_by_side[2] = np.empty((F, len(children[2][0])), dtype=np.int64)
                self._partition_pairs(node.pairs, _pair_samples(node.pairs), node.goes_left, pairs_by_side[1],
                                      pairs_by_side[2])
            tied = np.flatnonzero(node.ties)
            for side in (2, 1):
                members, total_c, impurity_c = children[side]
                pairs = pairs_by_side[side]
                valid_c = ties_c = None
                if pairs is not None and len(tied) == F:
                    valid_c = _distinct_neighbours(_pair_values(pairs))
                    ties_c = ~valid_c.all(axis=1)
                elif pairs is not None:  # a feature without equal neighbours in the node has none in its children
                    valid_c = np.ones((F, len(members) - 1), dtype=bool)
                    ties_c = np.zeros(F, dtype=bool)
                    if len(tied):
                        valid_c[tied] = _distinct_neighbours(_pair_values(pairs[tied]))
                        ties_c[tied] = ~valid_c[tied].all(axis=1)
                child = _Node(members, pairs, valid_c, ties_c, node.depth + 1, 2 * node.heap + side, n_total,
                              total_c, impurity_c)
                child.parent, child.side, child.exact = node, side, node.exact_last is not None
                stack.append(child)
        importances = _tree_importances(features[None], node_n[None], node_impurity[None], F)[0]
        return features, thresholds, leaf, importances

    def _search(self, node: _Node, r: np.ndarray, visited: list[int], exact: bool) -> tuple[int, int, bool] | None:
        """(feature, position of the last left sample, whether a rival is within rounding) of the best split, or
        None when no feature has an allowed threshold. `exact`: sums in the reference's order (the node's members
        must be exact); it also records the order the reference's search leaves the samples in."""
        if not exact:
            return self._search_approximately(node, r, visited)
        count = len(node.members)
        values = _pair_values(node.pairs)
        perm = _pair_samples(node.pairs)
        ordered_r = r[perm]  # (F, count): residuals in each feature's sorted order
        tied = np.flatnonzero(node.ties)
        if exact:
            # equal values: the reference's sort orders them its own way, which decides how their residuals are
            # summed and how the node's samples are ordered for the children
            duplicated = _mixed_ties(values, ordered_r, tied)
            sorted_by = self._reference_sorts(node.sorted_features, duplicated, perm, node.members)
            for f in duplicated & set(sorted_by):
                ordered_r[f] = r[sorted_by[f]]
            node.exact_last = sorted_by["last"]
        left = np.cumsum(ordered_r, axis=1)[:, :-1]  # sequential from the node's first sample, as the reference
        valid = node.valid
        for row in tied[_may_sum_from_end(valid[tied])]:
            _left_sums_with_ties(left[row], ordered_r[row], valid[row], node.total)
        n_left = self.n_left[:count - 1]
        proxy = left * left
        proxy /= n_left
        left -= node.total
        left *= left  # (total − left)², the right sums squared
        left /= count - n_left
        proxy += left
        proxy *= valid  # proxies are ≥ 0: an invalid position scores 0 and is checked below
        position = proxy.argmax(axis=1)
        rows = np.arange(len(proxy))
        for row in np.flatnonzero(~valid[rows, position]):
            masked = np.where(valid[row], proxy[row], -np.inf)
            position[row] = int(np.argmax(masked))
            proxy[row, position[row]] = masked[position[row]]
        visited = np.asarray(visited)
        best = proxy[visited, position[visited]]
        k = int(np.argmax(best))  # the first visited feature with the best proxy (strict > in visit order)
        if best[k] == -np.inf:
            return None
        f, p = int(visited[k]), int(position[visited[k]])
        runner_up = np.delete(best, k).max(initial=-np.inf)
        same_row = proxy[f].copy()
        same_row[p] = -np.inf
        runner_up = max(runner_up, same_row.max())
        scale = np.abs(ordered_r[0]).sum() ** 2 / count  # bounds every proxy
        return f, p, bool(runner_up >= best[k] - _FRAGILE * scale)

    def _search_approximately(self, node: _Node, r: np.ndarray, visited: list[int]) -> tuple[int, int, bool] | None:
        """`_search` with sums in any order: every proxy is shifted by the node's constant Σ²/n, which leaves its
        argmax and its gaps to rivals as they were, and is formed in one compiled pass per feature
        (_gbt_kernels.split_scores), Σ_left²/n_left + Σ_right²/n_right − Σ²/n = (Σ_left − n_left·Σ/n)² · n /
        (n_left·n_right); a rival within rounding of the best sends the node to the exact search (except the same
        split of one or two samples found in several features, decided here), so the order of sums is free."""
        F, count = node.pairs.shape
        left = self._proxies[:F * (count - 1)].reshape(F, count - 1)
        position = self._positions
        use_valid = bool(node.ties.any())  # proxies are ≥ 0: −1 marks a position no threshold may follow
        self._split_scores(_pair_samples(node.pairs), r, node.total, node.valid if use_valid else self._no_valid,
                           use_valid, left, position)
        visited = np.asarray(visited)
        best = left[visited, position[visited]]
        k = int(np.argmax(best))
        if best[k] < 0:
            return None
        f, p = int(visited[k]), int(position[visited[k]])
        bar = best[k] - _FRAGILE * np.abs(r[node.members]).sum() ** 2 / count  # Σ|r|²/n bounds every proxy
        near = visited[best >= bar]
        if len(near) == 1 and np.count_nonzero(left[f] >= bar) == 1:
            return f, p, False
        if np.count_nonzero(left[near] >= bar) > len(visited):  # many near-equal splits: no single split of a few
            return f, p, True
        rivals = [(int(g), int(q)) for g in near for q in np.flatnonzero(left[g] >= bar)]
        # Rivals that send the same one or two samples left (the same split, found in several features): the
        # reference sums them forward from the node's first sample, a + b = b + a, so their proxies are equal bit
        # for bit and the first visited of them wins (strict >). Other near-ties are left to the exact search.
        samples = self._node_samples(node)
        lefts = {frozenset(samples[g, :q + 1].tolist()) for g, q in rivals}
        if len(lefts) == 1 and all(q + 1 <= min(2, count - q - 1) for _, q in rivals):
            return (*rivals[0], False)  # `visited` is in visit order
        if count <= _SMALL_NODE and not node.ties[[g for g, _ in rivals]].any():
            decided = _small_node_choice(r, node.members, samples, rivals)
            if decided is not None:
                return (*decided, False)
        return f, p, True

    def _make_exact(self, node: _Node, r: np.ndarray) -> None:
        """Give `node` the reference's order of its samples (and the sums and impurity that follow from it)."""
        if node.exact:
            return
        parent = node.parent
        order = self._exact_last(parent, r)
        left_members, right_members = _partition_like_reference(order, parent.goes_left)
        node.members, node.total, node.impurity = self._children(r, parent, left_members, right_members)[node.side]
        node.exact = True

    def _exact_last(self, node: _Node, r: np.ndarray) -> np.ndarray:
        """The order in which the reference's split search leaves a node's samples."""
        if node.exact_last is None:
            self._make_exact(node, r)
            values = _pair_values(node.pairs)
            perm = _pair_samples(node.pairs)
            duplicated = _mixed_ties(values, r[perm], np.flatnonzero(node.ties))
            node.exact_last = self._reference_sorts(node.sorted_features, duplicated, perm, node.members)["last"]
        return node.exact_last

    def _reference_sorts(self, sorted_features: list[int], duplicated: set[int], perm: np.ndarray,
                         members: np.ndarray) -> dict:
        """The node's samples after each sort of the reference's split search (feature → order; "last" → the
        order the search leaves): a feature without equal values has one sorted order; for one with equal values
        the reference's own introsort is run on the order the previous sort left."""
        current = members
        out: dict = {}
        for f in sorted_features:
            if f in duplicated and _reference_sort is not None:
                values = np.ascontiguousarray(self.XT[f, current])
                current = np.array(current, dtype=np.intp)  # a copy: the sort works in place
                _reference_sort(values, current, len(current), use_three_way_partition=True)
            else:
                current = perm[f]
            out[f] = current
        out["last"] = current
        return out

    def _split(self, node: _Node, r: np.ndarray, values: np.ndarray, choice: tuple | None, n: int
               ) -> tuple[float, dict, dict] | None:
        """(the reference's impurity improvement, side → (members, total, impurity)) of the chosen split."""
        if choice is None:
            return None
        f, p, _ = choice
        node.threshold = float(values[f, p]) / 2.0 + float(values[f, p + 1]) / 2.0
        node.goes_left = self.XT[f] <= node.threshold
        if node.exact_last is not None:
            left_members, right_members = _partition_like_reference(node.exact_last, node.goes_left)
        else:  # any order will do: a child whose decision could turn on rounding is redone exactly (_make_exact)
            goes_left = node.goes_left[node.members]
            left_members, right_members = node.members[goes_left], node.members[~goes_left]
        children = self._children(r, node, left_members, right_members)
        count, n_l, n_r = len(node.members), len(left_members), len(right_members)
        improvement = (count / n) * (node.impurity - (n_r / count * children[2][2]) - (n_l / count * children[1][2]))
        return improvement, children[1], children  # (improvement, left child, both children)

    @staticmethod
    def _children(r: np.ndarray, node: _Node, left_members: np.ndarray, right_members: np.ndarray) -> dict:
        """side → (members, their total, the impurity the reference's children_impurity gives them). Sums are
        sequential in the members' order when the node is exact (the reference's arithmetic), NumPy's otherwise."""
        n_l, n_r = len(left_members), len(right_members)
        r_left, r_right = r[left_members], r[right_members]
        if node.exact_last is None:
            left_total, right_total = float(r_left.sum()), float(r_right.sum())
            square_left = float(r_left @ r_left)
            square_total = square_left + float(r_right @ r_right)
            criterion_left = left_total
        else:
            left_total, right_total = _sequential_sum(r_left), _sequential_sum(r_right)
            square_left = _sequential_sum(r_left * r_left)
            r_node = r[node.members]
            square_total = _sequential_sum(r_node * r_node)
            if n_l <= n_r:
                criterion_left = left_total
            else:  # the reference reaches the split from the end: total − r[end−1] − r[end−2] − …
                criterion_left = np.cumsum(np.concatenate([[node.total], -r_right[::-1]]))[-1]
        criterion_right = node.total - criterion_left
        impurity_left = square_left / n_l - (criterion_left / n_l) ** 2.0
        impurity_right = (square_total - square_left) / n_r - (criterion_right / n_r) ** 2.0
        return {1: (left_members, left_total, impurity_left), 2: (right_members, right_total, impurity_right)}


@dataclass
class _Node:
    members: np.ndarray  # sample indices in the reference's order for this node
    pairs: np.ndarray | None  # (F, count) (sample, value) pairs sorted by each feature; None: cannot split
    valid: np.ndarray | None  # (F, count − 1) whether a threshold may fall after each sorted position
    ties: np.ndarray | None  # (F,) whether a feature has tied values here (some position is not valid)
    depth: int
    heap: int
    n_known: int  # features known constant from the ancestors (the reference's n_constant_features)
    total: float
    impurity: float
    exact: bool = False  # members (hence total and impurity) in the reference's order
    parent: _Node | None = None
    side: int = 0  # 1 left child, 2 right child
    sorted_features: list[int] = field(default_factory=list)
    goes_left: np.ndarray | None = None  # (n,) the split, once chosen
    threshold: float = 0.0
    exact_last: np.ndarray | None = None  # the samples in the order the reference's split search leaves them


def _small_node_choice(r: np.ndarray, members: np.ndarray, samples: np.ndarray, rivals: list[tuple[int, int]]
                       ) -> tuple[int, int] | None:
    """The reference's choice among near-equal splits (feature, last left position) of a node of a few samples,
    in features without equal values there, or None when it depends on the node's sample order.

    In such a feature the reference's Σ_left is the forward sum of the residuals in the feature's sorted order
    (known here); its node sum Σ is formed in the node's sample order, which is not, so every order is tried:
    proxy = Σ_left²/n_left + (Σ − Σ_left)²/n_right, the first rival in visit order with the largest wins."""
    count = len(members)
    left_sums = []
    for g, q in rivals:
        total_left = 0.0
        for sample in samples[g, :q + 1]:
            total_left += float(r[sample])
        left_sums.append(total_left)
    winners = set()
    for order in itertools.permutations(members.tolist()):
        total = 0.0
        for sample in order:
            total += float(r[sample])
        best, choice = -np.inf, None
        for (g, q), total_left in zip(rivals, left_sums, strict=True):
            total_right = total - total_left
            proxy = total_left * total_left / (q + 1) + total_right * total_right / (count - q - 1)
            if proxy > best:
                best, choice = proxy, (g, q)
        winners.add(choice)
        if len(winners) > 1:
            return None
    return winners.pop()


def _pair_samples(pairs: np.ndarray) -> np.ndarray:
    """The int32 sample indices of (sample, value) pairs (a view)."""
    return pairs.view(np.int32).reshape(*pairs.shape, 2)[..., 0]


def _pair_values(pairs: np.ndarray) -> np.ndarray:
    """The float32 feature values of (sample, value) pairs (a view)."""
    return pairs.view(np.float32).reshape(*pairs.shape, 2)[..., 1]


def _sequential_sum(values: np.ndarray) -> float:
    """Σ in index order, one addition after another (the reference's loops; NumPy's sum is pairwise)."""
    return float(np.cumsum(values)[-1]) if len(values) else 0.0


def _mixed_ties(values: np.ndarray, ordered_r: np.ndarray, rows: np.ndarray) -> set[int]:
    """Features with equal values on samples whose residuals differ: only there does the order of equal values
    (the reference's introsort) change a sum."""
    return {int(f) for f in rows
            if ((values[f, 1:] == values[f, :-1]) & (ordered_r[f, 1:] != ordered_r[f, :-1])).any()}


def _distinct_neighbours(values: np.ndarray) -> np.ndarray:
    """Positions after which a threshold may fall: the next sorted value exceeds this one by more than
    FEATURE_THRESHOLD, in float32 as the reference compares them."""
    low = values[:, :-1].astype(np.float32)
    low += FEATURE_THRESHOLD
    return values[:, 1:] > low


def _may_sum_from_end(valid: np.ndarray) -> np.ndarray:
    """Rows where the reference's criterion may reach a position from the end (new_pos − pos > end − new_pos):
    that needs a run of R disallowed positions ending at j with R ≥ count − j − 2, so j in the right half, and
    either R ≥ 2 (two disallowed in a row) or j among the last two positions."""
    count = valid.shape[1] + 1
    window = ~valid[:, max(count // 2 - 2, 0):]
    return window[:, -2:].any(axis=1) | (window[:, 1:] & window[:, :-1]).any(axis=1)


def _left_sums_with_ties(left: np.ndarray, ordered_r: np.ndarray, valid: np.ndarray, total: float) -> None:
    """Correct, in place, the forward sums `left` of a feature with tied values to the reference's Σ_left: it moves
    from one allowed position to the next adding samples, or, when the next one is nearer the end, restarts from
    the node total and subtracts from the end (criterion.update)."""
    count = len(ordered_r)
    positions = np.flatnonzero(valid) + 1  # the reference's new_pos: first sample on the right
    if len(positions) == 0:
        return
    previous = np.concatenate([[0], positions[:-1]])
    reverse = (positions - previous) > (count - positions)
    if not reverse.any():
        return
    from_end = np.cumsum(np.concatenate([[total], -ordered_r[::-1]]))  # from_end[j]: total − last j samples
    first = int(np.argmax(reverse))  # up to here every step went forward: the plain cumulative sums stand
    at = int(positions[first - 1]) if first else 0
    current = left[at - 1] if at else 0.0
    for new_pos, backwards in zip(positions[first:], reverse[first:], strict=True):
        if backwards:
            current = from_end[count - new_pos]
        else:
            current = np.cumsum(np.concatenate([[current], ordered_r[at:new_pos]]))[-1]
        left[new_pos - 1] = current
        at = new_pos


def _partition_like_reference(order: np.ndarray, goes_left: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """partition_samples_final's result: a front pointer keeps left-goers; a right-goer swaps with the element
    before a back pointer that walks down from the end, which is examined next. So the examined elements are runs
    taken alternately from the front (up to and including a right-goer) and from the back (up to and including a
    left-goer) until the pointers meet; left-goers fill the left block in that order, right-goers the right block
    from its end."""
    count = len(order)
    left = goes_left[order]
    run_front = np.cumsum(~left) - ~left  # right-goers before each front element: its run
    back_left = left[::-1]
    run_back = np.cumsum(back_left) - back_left
    index = np.arange(count)
    front_keys = run_front * (2 * count) + index  # both increasing: merge them
    back_keys = run_back * (2 * count) + count + index
    merged = np.argsort(np.concatenate([front_keys, back_keys]), kind="stable")[:count]  # two sorted runs: linear
    stream = np.concatenate([order, order[::-1]])[merged]
    stream_left = goes_left[stream]
    return stream[stream_left], stream[~stream_left][::-1]


def _tree_importances(features: np.ndarray, node_n: np.ndarray, node_impurity: np.ndarray,
                      num_features: int) -> np.ndarray:
    """Σ over splits of N·imp − N_l·imp_l − N_r·imp_r per feature, ÷ the root's N (sklearn's
    compute_feature_importances(normalize=False)), for a batch of heap-ordered trees."""
    T, internal = features.shape
    out = np.zeros((T, num_features))
    h = np.arange(internal)
    gain = (node_n[:, h] * node_impurity[:, h] - node_n[:, 2 * h + 1] * node_impurity[:, 2 * h + 1]
            - node_n[:, 2 * h + 2] * node_impurity[:, 2 * h + 2])
    split = features >= 0
    rows = np.repeat(np.arange(T)[:, None], internal, axis=1)
    np.add.at(out, (rows[split], features[split]), gain[split])
    return out / node_n[:, :1]


def _rand_r(state: int) -> tuple[int, int]:
    """sklearn's our_rand_r (32-bit xorshift): (new state, value in [0, RAND_R_MAX])."""
    if state == 0:
        state = 1
    state ^= (state << 13) & _UINT32
    state ^= state >> 17
    state ^= (state << 5) & _UINT32
    return state, state % (RAND_R_MAX + 1)


class _VisitOrder:
    """The splitter's feature array and generator, carried from node to node in depth-first order."""

    def __init__(self, num_features: int, seed: int):
        self.features = list(range(num_features))
        self.constant_features = [0] * num_features
        self.state = seed

    def visit(self, n_known: int, is_constant: np.ndarray) -> tuple[list[int], list[int], int]:
        """(the non-constant features in the order node_split_best evaluates them, every feature it sorts in order,
        the node's constant count)."""
        features = self.features
        f_i = len(features)
        n_drawn = n_found = 0
        n_total = n_known
        visited, sorted_features = [], []
        while f_i > n_total:
            self.state, value = _rand_r(self.state)
            f_j = n_drawn + value % (f_i - n_found - n_drawn)
            if f_j < n_known:
                features[n_drawn], features[f_j] = features[f_j], features[n_drawn]
                n_drawn += 1
                continue
            f_j += n_found
            sorted_features.append(features[f_j])
            if is_constant[features[f_j]]:
                features[f_j], features[n_total] = features[n_total], features[f_j]
                n_found += 1
                n_total += 1
                continue
            f_i -= 1
            features[f_i], features[f_j] = features[f_j], features[f_i]
            visited.append(features[f_i])
        features[:n_known] = self.constant_features[:n_known]
        self.constant_features[n_known:n_total] = features[n_known:n_total]
        return visited, sorted_features, n_total
