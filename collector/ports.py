"""numpy ports of pyod detectors' scoring, so the collection process never imports pyod.

pyod's ECOD and COPOD recompute their empirical distributions over every training row on
each call, and HBOS, KNN and FeatureBagging (LOF) go through numba or scikit-learn's
neighbour searches: at hundreds of charts that is most of a step, and the imports alone are
~200 MiB. Each class here holds only what scoring needs and gives pyod's
``decision_function`` for one new row (checked against pyod in the tests); ``from_*``
builds one from a pyod estimator fitted in the training process (ECOD and COPOD need
no fitting beyond the tables, so they never import pyod at all).
"""
import numpy as np

# ECDF tables keep every training value up to this many rows per feature, and beyond it the
# TAIL lowest and highest exactly plus MIDDLE evenly spaced ranks in between (interpolated).
ECDF_TAIL = 64
ECDF_MIDDLE = 256
# rows of a batch scored at once by the distance-based ports (bounds their temporary memory)
_CHUNK = 64


def _knots_below(knots, x, side):
    """For every row of ``x`` (m x d) and feature: how many of that feature's sorted
    ``knots`` (d x K) are below it (``side='left'``: strictly, ``'right'``: or equal)."""
    m, d = x.shape
    if m * knots.size <= 1 << 18:
        xs = x[:, :, None]
        below = knots[None, :, :] < xs if side == 'left' else knots[None, :, :] <= xs
        return below.sum(axis=2)
    out = np.empty((m, d), dtype=np.intp)
    for j in range(d):
        out[:, j] = np.searchsorted(knots[j], x[:, j], side=side)
    return out


def knot_ranks(n, tail=ECDF_TAIL, middle=ECDF_MIDDLE):
    """0-based ranks of the sorted training values an ``EcdfTable`` keeps."""
    if n <= 2 * tail + middle:
        return np.arange(n)
    inner = np.linspace(tail, n - 1 - tail, middle + 2)[1:-1].round().astype(np.intp)
    return np.unique(np.concatenate([np.arange(tail), inner, np.arange(n - tail, n)]))


class EcdfTable:
    """Each feature's training distribution in bounded size: how many training values lie
    at or below / at or above a new value. Exact in the tails, where anomaly scores are
    decided, and linearly interpolated between kept ranks in the middle."""

    def __init__(self, Z):
        n = Z.shape[0]
        ranks = knot_ranks(n)
        self.n = n
        self.ranks = ranks.astype(np.float64)
        self.knots = np.ascontiguousarray(np.sort(Z, axis=0)[ranks].T)

    def _count(self, x, side):
        p = _knots_below(self.knots, x, side)     # knots below: 0..K
        k = self.ranks.size
        lo = np.clip(p - 1, 0, k - 1)
        hi = np.clip(p, 0, k - 1)
        rows = np.arange(self.knots.shape[0])[None, :]
        v_lo, v_hi = self.knots[rows, lo], self.knots[rows, hi]
        gap = self.ranks[hi] - self.ranks[lo] - 1.0
        with np.errstate(invalid='ignore', divide='ignore'):
            frac = np.where(v_hi > v_lo, (x - v_lo) / (v_hi - v_lo), 0.0)
        count = self.ranks[lo] + 1.0 + np.where(gap > 0, gap * np.clip(frac, 0.0, 1.0), 0.0)
        return np.where(p == 0, 0.0, np.where(p == k, float(self.n), count))

    def count_le(self, x):
        return self._count(x, 'right')

    def count_ge(self, x):
        return self.n - self._count(x, 'left')


def _moment_sign(m2_sum, m3_sum, mean, count):
    """Sign of the skewness from central power sums over ``count`` values; 0 where they
    do not vary (pyod reads scipy's NaN skewness of a constant feature as 0 too)."""
    flat = m2_sum <= (1e-12 * np.maximum(1.0, np.abs(mean))) ** 2 * count
    return np.where(flat, 0.0, np.sign(m3_sum))


def _skew_sign(n, s1, s2, s3, x, mean):
    """Sign of the (biased) skewness of the training values plus one new value ``x``, from
    the training's central power sums; 0 where the values do not vary."""
    q = x - mean
    big_n = n + 1.0
    t1, t2, t3 = s1 + q, s2 + q * q, s3 + q * q * q
    d = t1 / big_n                               # shift of the mean by the new value
    m2 = t2 - 2.0 * d * t1 + big_n * d * d
    m3 = t3 - 3.0 * d * t2 + 3.0 * d * d * t1 - big_n * d * d * d
    return _moment_sign(m2, m3, mean, big_n)


def _tail_scores(u_l, u_r, sign, kind):
    u_skew = u_l * -np.sign(sign - 1.0) + u_r * np.sign(sign + 1.0)
    if kind == 'ecod':
        return np.maximum(u_skew, np.maximum(u_l, u_r)).sum(axis=1)
    return np.maximum(u_skew, (u_l + u_r) / 2.0).sum(axis=1)


class EcdfScorer:
    """pyod ``ECOD`` (``kind='ecod'``) or ``COPOD`` (``'copod'``): tail probabilities of each
    feature under its training distribution, summed as -log."""

    def __init__(self, Z, kind):
        Z = np.asarray(Z, dtype=np.float64)
        self.kind = kind
        self.table = EcdfTable(Z)
        self.mean = Z.mean(axis=0)
        c = Z - self.mean
        self.s1, self.s2, self.s3 = c.sum(axis=0), (c * c).sum(axis=0), (c * c * c).sum(axis=0)

    def decision_function(self, X):
        X = np.asarray(X, dtype=np.float64)
        big_n = self.table.n + 1.0
        u_l = -np.log((self.table.count_le(X) + 1.0) / big_n)
        u_r = -np.log((self.table.count_ge(X) + 1.0) / big_n)
        sign = _skew_sign(self.table.n, self.s1, self.s2, self.s3, X, self.mean)
        return _tail_scores(u_l, u_r, sign, self.kind)


def ecdf_training_scores(Z, kind):
    """The scores pyod's ``fit`` gives the training rows (each row's ECDF over the training
    alone, itself included), with a constant feature's skewness read as 0."""
    Z = np.asarray(Z, dtype=np.float64)
    n = Z.shape[0]
    S = np.sort(Z, axis=0)
    le = np.empty_like(Z)
    ge = np.empty_like(Z)
    for j in range(Z.shape[1]):
        le[:, j] = np.searchsorted(S[:, j], Z[:, j], side='right')
        ge[:, j] = n - np.searchsorted(S[:, j], Z[:, j], side='left')
    mean = Z.mean(axis=0)
    c = Z - mean
    sign = _moment_sign((c * c).sum(axis=0), (c * c * c).sum(axis=0), mean, n)[None, :]
    return _tail_scores(-np.log(le / n), -np.log(ge / n), sign, kind)


def constant_values(Z):
    """Each feature's one value where it was constant over the training rows ``Z``, else NaN;
    None when there are no rows."""
    Z = np.asarray(Z, dtype=np.float64)
    return np.where(np.ptp(Z, axis=0) == 0, Z[0], np.nan) if Z.shape[0] else None


def at_constant(X, constant):
    """``(still, same)``: the features constant in training (``constant_values``), and for each
    row of ``X`` whether each of them still holds its value (to rounding); None where none was."""
    if constant is None or np.isnan(constant).all():
        return None
    still = ~np.isnan(constant)
    return still, np.abs(X[:, still] - constant[still]) <= 1e-12 * np.maximum(1.0, np.abs(constant[still]))


class HbosScorer:
    """pyod ``HBOS`` (static bins): -sum of log2(density + alpha) of each feature's bin;
    a value outside the training range by more than ``tol`` of a bin width scores as the
    emptiest bin.

    One departure: a feature that was constant in training (a dimension that sat still, as
    a CPU's steal or an error counter does) scores its one full bin at its value and the
    emptiest bin anywhere else. pyod's bins put that value on an edge beside an empty bin, so
    the training rows and any later move score alike, and a quiet dimension that starts
    moving (news, as the other models read it) went unseen.
    """

    def __init__(self, edges, hist, alpha, tol, constant=None):
        self.edges = np.ascontiguousarray(np.asarray(edges, dtype=np.float64).T)   # d x (bins+1)
        self.log_density = np.ascontiguousarray(np.log2(np.asarray(hist, dtype=np.float64).T + alpha))
        self.floor = self.log_density.min(axis=1)
        self.first_width = self.edges[:, 1] - self.edges[:, 0]
        self.last_width = self.edges[:, -1] - self.edges[:, -2]
        self.tol = tol
        # per feature, its one training value where it had one, else NaN
        self.constant = None if constant is None else np.asarray(constant, dtype=np.float64)

    @classmethod
    def fit(cls, Z, n_bins=10, alpha=0.1, tol=0.5):
        """What pyod's ``HBOS(n_bins, alpha, tol).fit`` learns, without pyod (or its numba)."""
        Z = np.asarray(Z, dtype=np.float64)
        pairs = [np.histogram(Z[:, j], bins=n_bins, density=True) for j in range(Z.shape[1])]
        return cls(np.column_stack([e for _, e in pairs]), np.column_stack([h for h, _ in pairs]), alpha, tol,
                   constant_values(Z))

    def decision_function(self, X):
        X = np.asarray(X, dtype=np.float64)
        n_bins = self.log_density.shape[1]
        b = _knots_below(self.edges, X, 'left')       # np.digitize(..., right=True)
        rows = np.arange(self.edges.shape[0])[None, :]
        inside = self.log_density[rows, np.clip(b - 1, 0, n_bins - 1)]
        below = np.where(self.edges[:, 0] - X <= self.first_width * self.tol, self.log_density[:, 0], self.floor)
        above = np.where(X - self.edges[:, -1] <= self.last_width * self.tol, self.log_density[:, -1], self.floor)
        out = np.where(b == 0, below, np.where(b == n_bins + 1, above, inside))
        held = at_constant(X, getattr(self, 'constant', None))   # (absent from models saved before it)
        if held is not None:
            still, same = held
            out[:, still] = np.where(same, self.log_density[still].max(axis=1), self.floor[still])
        return -out.sum(axis=1)


def _sq_distances(X, train, train_sq, weights=None):
    """Squared euclidean distances from each row of ``X`` to every training row; with
    ``weights`` (d x e, one column of 0/1 feature weights per estimator): per estimator."""
    if weights is None:
        d2 = (X * X).sum(axis=1)[:, None] - 2.0 * X @ train.T + train_sq[None, :]
    else:
        m, d = X.shape
        e = weights.shape[1]
        xw = (X[:, :, None] * weights[None, :, :]).transpose(1, 0, 2).reshape(d, m * e)
        cross = (train @ xw).reshape(-1, m, e).transpose(1, 0, 2)      # m x n x e
        d2 = ((X * X) @ weights)[:, None, :] - 2.0 * cross + train_sq[None, :, :]
    return np.maximum(d2, 0.0)


def _exact_distances(X, train, idx, weights=None):
    """Euclidean distances from each row of ``X`` to the training rows ``idx`` (m x k), worked
    out from the differences: the expansion above, which picks them, loses the digits that
    tell a row equal to a training row (distance 0, as pyod reads it) from one a little off."""
    diff = X[:, None, :] - train[idx]
    sq = diff * diff
    return np.sqrt(sq.sum(axis=2) if weights is None else sq @ weights)


class KnnScorer:
    """pyod ``KNN``: distance to the k-th nearest training row (``largest``), or the mean or
    median of the k nearest."""

    def __init__(self, train, n_neighbors, method='largest'):
        self.train = np.ascontiguousarray(train, dtype=np.float64)
        self.train_sq = (self.train * self.train).sum(axis=1)
        self.k = int(min(n_neighbors, self.train.shape[0]))
        self.method = method

    @classmethod
    def from_pyod(cls, est, Z):
        return cls(Z, est.n_neighbors, est.method)

    def decision_function(self, X):
        X = np.asarray(X, dtype=np.float64)
        out = np.empty(X.shape[0])
        for start in range(0, X.shape[0], _CHUNK):
            rows = X[start:start + _CHUNK]
            d2 = _sq_distances(rows, self.train, self.train_sq)
            near = _exact_distances(rows, self.train, np.argpartition(d2, self.k - 1, axis=1)[:, :self.k])
            if self.method == 'largest':
                out[start:start + _CHUNK] = near.max(axis=1)
            elif self.method == 'median':
                out[start:start + _CHUNK] = np.median(near, axis=1)
            else:
                out[start:start + _CHUNK] = near.mean(axis=1)
        return out


class LofBaggingScorer:
    """pyod ``FeatureBagging`` of LOF detectors (its default), averaged: for each random
    feature subset, the new row's local outlier factor among the training rows."""

    def __init__(self, train, weights, k_distance, lrd, n_neighbors):
        self.train = np.ascontiguousarray(train, dtype=np.float64)      # n x d
        self.weights = np.asarray(weights, dtype=np.float64)            # d x e
        self.train_sq = (self.train * self.train) @ self.weights        # n x e
        self.k_distance = np.asarray(k_distance, dtype=np.float64)      # n x e
        self.lrd = np.asarray(lrd, dtype=np.float64)                    # n x e
        self.k = np.asarray(n_neighbors, dtype=np.intp)                 # e

    @classmethod
    def from_pyod(cls, est, Z):
        d = Z.shape[1]
        weights = np.stack([np.bincount(np.asarray(f, dtype=np.intp), minlength=d)
                            for f in est.estimators_features_], axis=1)
        lofs = [e.detector_ for e in est.estimators_]
        k = [lof.n_neighbors_ for lof in lofs]
        k_distance = np.stack([lof._distances_fit_X_[:, lof.n_neighbors_ - 1] for lof in lofs], axis=1)
        lrd = np.stack([lof._lrd for lof in lofs], axis=1)
        return cls(Z, weights, k_distance, lrd, k)

    def decision_function(self, X):
        X = np.asarray(X, dtype=np.float64)
        out = np.empty(X.shape[0])
        for start in range(0, X.shape[0], _CHUNK):
            rows = X[start:start + _CHUNK]
            d2 = _sq_distances(rows, self.train, self.train_sq, self.weights)  # m x n x e
            lof = np.zeros(d2.shape[0])
            for e, k in enumerate(self.k):
                idx = np.argpartition(d2[:, :, e], k - 1, axis=1)[:, :k]
                dist = _exact_distances(rows, self.train, idx, self.weights[:, e])
                reach = np.maximum(dist, self.k_distance[idx, e])
                lrd_x = 1.0 / (reach.mean(axis=1) + 1e-10)
                lof += self.lrd[idx, e].mean(axis=1) / lrd_x
            out[start:start + _CHUNK] = lof / len(self.k)
        return out


def _average_path_length(n):
    """Expected path length of an unsuccessful search in a binary tree of ``n`` points (the
    isolation forest's normaliser)."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    two = n == 2
    big = n > 2
    out[two] = 1.0
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


class IforestScorer:
    """pyod ``IForest``: all trees flattened into one node table and walked for every tree
    at once, a level per numpy step.

    One departure, as ``HbosScorer``'s: a feature that was constant in training (a dimension
    that sat still) is split on by no tree, so its move would be seen by none; a row where one
    leaves its value scores as unusual as a row can (1, plus the offset)."""

    def __init__(self, feature, threshold, left, right, leaf_value, roots, levels, denominator, offset,
                 constant=None):
        self.feature, self.threshold = feature, threshold
        self.left, self.right = left, right
        self.leaf_value, self.roots = leaf_value, roots
        self.levels, self.denominator, self.offset = int(levels), float(denominator), float(offset)
        self.constant = constant

    @classmethod
    def from_pyod(cls, est, X=None):
        """From the fitted ``est``; ``X``: its training rows, whose constant features are kept."""
        forest = est.detector_
        n_in = forest.n_features_in_
        feature, threshold, left, right, value, roots = [], [], [], [], [], []
        base, levels = 0, 0
        for tree, features in zip(forest.estimators_, forest.estimators_features_):
            t = tree.tree_
            leaf = t.children_left < 0
            f = np.where(leaf, 0, t.feature).astype(np.intp)
            if len(features) != n_in:          # the tree saw a subset of the columns
                f = np.asarray(features, dtype=np.intp)[f]
            nodes = np.arange(t.node_count)
            depth = np.ones(t.node_count)          # nodes on the path from the root, root = 1
            inner = nodes[~leaf]
            while True:                            # one pass per level settles the next one
                now = depth[inner] + 1.0
                if np.array_equal(depth[t.children_left[inner]], now) and \
                        np.array_equal(depth[t.children_right[inner]], now):
                    break
                depth[t.children_left[inner]] = now
                depth[t.children_right[inner]] = now
            levels = max(levels, int(depth.max()))
            feature.append(f)
            threshold.append(np.where(leaf, np.inf, t.threshold))
            left.append(np.where(leaf, nodes, t.children_left) + base)
            right.append(np.where(leaf, nodes, t.children_right) + base)
            value.append(np.where(leaf, depth + _average_path_length(t.n_node_samples) - 1.0, 0.0))
            roots.append(base)
            base += t.node_count
        denominator = len(forest.estimators_) * _average_path_length([forest.max_samples_])[0]
        constant = None if X is None else constant_values(X)
        if constant is not None and np.isnan(constant).all():
            constant = None
        return cls(np.concatenate(feature), np.concatenate(threshold), np.concatenate(left), np.concatenate(right),
                   np.concatenate(value), np.array(roots, dtype=np.intp), levels, denominator, forest.offset_,
                   constant)

    def decision_function(self, X):
        X = np.asarray(X, dtype=np.float64)
        held = at_constant(X, getattr(self, 'constant', None))   # (absent from models saved before it)
        moved = None if held is None else ~held[1].all(axis=1)
        # the trees compare in float32, as scikit-learn's do
        X = X.astype(np.float32).astype(np.float64)
        rows = np.arange(X.shape[0])[:, None]
        nodes = np.broadcast_to(self.roots, (X.shape[0], self.roots.size))
        for _ in range(self.levels - 1):
            go_left = X[rows, self.feature[nodes]] <= self.threshold[nodes]
            nodes = np.where(go_left, self.left[nodes], self.right[nodes])
        depth = self.leaf_value[nodes].sum(axis=1)
        score = 2.0 ** (-depth / self.denominator) if self.denominator > 0 else np.ones(X.shape[0])
        if moved is not None:
            score = np.where(moved, 1.0, score)
        return score + self.offset


class LodaScorer:
    """LODA (Pevny 2016), as pyod fits it (static bins): random sparse projections of the
    features, a histogram of the training rows along each; the score is minus the mean log
    density of the bins a row falls in. Unlike pyod's ``decision_function``, which looks
    bins up one to the right and scores a row beyond the training range like the edge bin,
    a row outside a projection's range gets the density of an empty bin, so a value far from
    anything seen in training scores high."""

    def __init__(self, projections, limits, hist, empty):
        self.projections = np.ascontiguousarray(np.asarray(projections, dtype=np.float64))   # cuts x d
        limits = np.asarray(limits, dtype=np.float64)                                          # cuts x (bins+1)
        self.inner = np.ascontiguousarray(limits[:, 1:-1])
        # a row projected alone rounds otherwise than the training rows projected together: the
        # range's edges get a few ulps of slack, or a training row read live falls just outside
        slack = 1e-12 * np.maximum(np.abs(limits[:, 0]), np.abs(limits[:, -1])) + 1e-300
        self.low, self.high = limits[:, 0] - slack, limits[:, -1] + slack
        self.log_hist = np.log(np.asarray(hist, dtype=np.float64))
        self.log_empty = np.log(np.asarray(empty, dtype=np.float64))           # per projection

    @classmethod
    def from_projections(cls, Z, projections, n_bins=10):
        """The histograms of ``Z`` along given projections (pyod's ``fit`` after its draw)."""
        P = np.asarray(Z, dtype=np.float64) @ np.asarray(projections, dtype=np.float64).T
        hist = np.empty((P.shape[1], n_bins))
        limits = np.empty((P.shape[1], n_bins + 1))
        for i in range(P.shape[1]):
            h, limits[i] = np.histogram(P[:, i], bins=n_bins)
            hist[i] = h + 1e-12                        # pyod's floor: an empty bin has a density
        total = hist.sum(axis=1, keepdims=True)
        return cls(projections, limits, hist / total, 1e-12 / total[:, 0])

    @classmethod
    def fit(cls, Z, n_bins=10, n_cuts=100, seed=0):
        """What pyod's ``LODA(n_bins, n_random_cuts).fit`` learns, drawn from a seeded
        generator (the same data gives the same model) and without pyod."""
        d = np.asarray(Z).shape[1]
        rng = np.random.default_rng(seed)
        projections = rng.standard_normal((n_cuts, d))
        n_zero = d - int(np.sqrt(d))
        for i in range(n_cuts):
            projections[i, rng.permutation(d)[:n_zero]] = 0.0
        return cls.from_projections(Z, projections, n_bins)

    def decision_function(self, X):
        P = np.asarray(X, dtype=np.float64) @ self.projections.T            # m x cuts
        bins = _knots_below(self.inner, P, 'right')                          # np.histogram's bins
        cuts = np.arange(self.inner.shape[0])[None, :]
        log_density = np.where((P < self.low) | (P > self.high), self.log_empty, self.log_hist[cuts, bins])
        return -log_density.mean(axis=1)
