"""Fitted models as the collection process sees them: numpy only, cheap to score.

Training (in ``models``) hands back a ``FittedModel`` that holds the column preprocessing, a
scorer and the calibration of scores into probabilities. The default model's scorer is this
project's own (``MahalanobisScorer``); for the pyod models where it is exact and cheap, the
scorer is a numpy port of the pyod model's ``decision_function`` (checked against pyod in the
tests; loda's keeps pyod's fit and mends its bin lookup), so the long-lived collection
process never imports pyod, scikit-learn or numba (``collector.ports``). Other models
(cblof, gmm, the deep ones) keep the pyod estimator.
"""
import numpy as np

from .ports import EcdfScorer, HbosScorer, IforestScorer, KnnScorer, LodaScorer, LofBaggingScorer

N_QUANTILES = 1001


class PcaScorer:
    """pyod ``PCA.decision_function``: sum of weighted distances to the selected components."""

    def __init__(self, mean, scale, components, weights):
        self.mean = mean
        self.scale = scale
        self.components = components
        self.weights = weights
        self._c_sq = np.einsum('ij,ij->i', components, components)

    def decision_function(self, X):
        Z = (X - self.mean) / self.scale
        d2 = np.einsum('ij,ij->i', Z, Z)[:, None] - 2.0 * Z @ self.components.T + self._c_sq[None, :]
        return (np.sqrt(np.maximum(d2, 0.0)) / self.weights).sum(axis=1)


class MahalanobisScorer:
    """A quadratic form on the eigenvectors of the training covariance: ``sum_j w_j (z . v_j)^2``.

    ``components`` are the eigenvectors (rows) over the ``moving`` features, ``inv_var``
    their weights (see ``models._mahalanobis_scorer``: one over the shrunk, floored variance,
    plus a constant). Features that never moved in training (``still``: a dimension that sat
    at 0) are their own eigenvectors, so they are kept as a diagonal with weight ``still_w``
    instead of widening the matrix: most of a sparse chart's features cost no matrix memory.
    """

    def __init__(self, moving, components, inv_var, still, still_w):
        self.moving = np.asarray(moving, dtype=np.intp)
        self.components = np.asarray(components, dtype=np.float64)
        self.inv_var = np.asarray(inv_var, dtype=np.float64)
        self.still = np.asarray(still, dtype=np.intp)
        self.still_w = float(still_w)

    def decision_function(self, X):
        X = np.asarray(X, dtype=np.float64)
        P = X[:, self.moving] @ self.components.T
        s = (P * P) @ self.inv_var
        if self.still.size:
            q = X[:, self.still]
            s = s + (q * q).sum(axis=1) * self.still_w
        return s


class BlockedScorer:
    """The sum of several ``MahalanobisScorer``, each over its own features (``blocks``: their
    indices): a wide chart's dimensions in groups, so that no covariance grows with the square
    of all of its features (``models.MAHALANOBIS_BLOCK_FEATURES``)."""

    def __init__(self, blocks, scorers):
        self.blocks = [np.asarray(b, dtype=np.intp) for b in blocks]
        self.scorers = list(scorers)

    @property
    def moving(self):
        return np.concatenate([b[s.moving] for b, s in zip(self.blocks, self.scorers)])

    def decision_function(self, X):
        X = np.asarray(X, dtype=np.float64)
        s = np.zeros(X.shape[0])
        for b, scorer in zip(self.blocks, self.scorers):
            s = s + scorer.decision_function(X[:, b])
        return s


class PyodScorer:
    """Any fitted pyod detector, used as is (imports pyod when unpickled)."""

    def __init__(self, estimator):
        self.estimator = estimator

    def decision_function(self, X):
        return np.asarray(self.estimator.decision_function(X), dtype=np.float64)


class EnsembleScorer:
    """The mean of several detectors' scores, each put on one scale first.

    A member's score is taken relative to its own training scores: 0 at their median, 1
    at their ``1 - contamination`` quantile, so no member dominates by units.
    """

    def __init__(self, members, centres, spans):
        self.members = list(members)
        self.centres = np.asarray(centres, dtype=np.float64)
        self.spans = np.asarray(spans, dtype=np.float64)

    def decision_function(self, X):
        parts = [(m.decision_function(X) - c) / s for m, c, s in zip(self.members, self.centres, self.spans)]
        return np.mean(parts, axis=0)


class ConstantScorer:
    """Scores nothing: models saved before still charts were watched (``models.still_scorer``
    now) load with it and read 0 until their next training."""

    def decision_function(self, X):
        return np.zeros(X.shape[0])


# scorers that need nothing but numpy (no imports or JIT to warm up)
NUMPY_SCORERS = (PcaScorer, MahalanobisScorer, BlockedScorer, ConstantScorer, EcdfScorer, HbosScorer,
                 IforestScorer, KnnScorer, LofBaggingScorer, LodaScorer)


# two scores this close are one: a live score is computed with other arithmetic than the training
# scores (one row instead of many, the batch scorer's sums), which moves its last bits
TIE_TOLERANCE = 1e-9


def lowered(scores):
    """``scores`` less the rounding they may carry: compared with this, a score equal to a
    training score up to ``TIE_TOLERANCE`` (relative, and absolute near 0) is not above it.

    A chart that sat still for most of the window scores its still rows as the training did;
    compared as is, rounding put such a row above a threshold tied with them and flagged an
    unchanged chart for as long as it stayed unchanged.
    """
    scores = np.asarray(scores, dtype=np.float64)
    return scores - TIE_TOLERANCE * (np.abs(scores) + 1.0)


def beyond(scores, values):
    """Where ``scores`` are above ``values`` by more than rounding."""
    return lowered(scores) > values


def calibration_points(train_scores):
    """Quantiles of the training scores: the empirical distribution, in bounded size."""
    s = np.asarray(train_scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return np.zeros(1)
    return np.quantile(s, np.linspace(0.0, 1.0, min(N_QUANTILES, s.size)))


# above this share of the training scores the tail is modelled, not counted
TAIL_START = 0.99
# ... from how fast the scores thin out between this quantile and TAIL_START
TAIL_FIT_FROM = 0.90


def exponential_tail(points):
    """``(start, scale)`` of an exponential tail beyond the 99th percentile of the training scores.

    For ``calibration: tail``. A window's most extreme scores may be an incident nobody
    flagged: the empirical 99.9th percentile is then that incident's score, and the threshold
    sits above anything like it.
    The body between the 90th and 99th percentiles thins out at a rate (``scale``: the rise
    per factor e of fewer rows) that the extremes do not change, so the tail is extrapolated
    from it: ``P(score > s) = 0.01 exp(-(s - start) / scale)`` (peaks over threshold with an
    exponential excess, the light-tailed case of extreme value theory, which fits sums of
    squares). ``None`` when those quantiles are tied (a chart that seldom moves) or there are
    too few scores to tell: the tail stays empirical. Not the default: the normal tails of
    Netdata's charts are heavier than exponential, and on a real agent's recordings the
    extrapolated threshold raised more false flags (docs/evaluation.md).
    """
    points = np.asarray(points, dtype=np.float64)
    if points.size < N_QUANTILES:
        return None     # under 1001 training scores the 99th percentile is a handful of rows
    lo, hi = np.interp([TAIL_FIT_FROM, TAIL_START], np.linspace(0.0, 1.0, points.size), points)
    scale = (hi - lo) / np.log((1.0 - TAIL_FIT_FROM) / (1.0 - TAIL_START))
    if not (np.isfinite(scale) and scale > 1e-9 * max(1.0, abs(hi))):
        return None
    return float(hi), float(scale)


def tail_threshold(train_scores, contamination, tail):
    """The score that normal data exceeds at the rate ``contamination``.

    The lower of the empirical quantile and the tail's: the tail's when the window's extremes
    are an incident, the empirical one when the scores end sooner than an exponential tail
    would (a model whose scores are bounded, like iforest's, must still be able to flag).
    """
    empirical = float(np.quantile(train_scores, 1.0 - contamination))
    if tail is None or contamination >= 1.0 - TAIL_START:
        return empirical
    start, scale = tail
    return min(empirical, start + scale * float(np.log((1.0 - TAIL_START) / max(contamination, 1e-12))))


def tail_probability(scores, start, scale):
    """``1 - P(score > s)`` under the fitted tail; arrays broadcast (one tail per model)."""
    with np.errstate(over='ignore'):
        return 1.0 - (1.0 - TAIL_START) * np.exp(-(scores - start) / scale)


def empirical_probability(scores, points, tail=None):
    """Share of training scores below each score: 0.99 means more unusual than 99% of training.

    Beyond the 99th percentile it is the larger of that share and ``tail``'s (from
    ``exponential_tail``): 0.999 is then at most the score that one normal step in 1000
    reaches by the tail, however the window's few most extreme steps lie, and a step above
    ``tail_threshold`` has a probability above ``1 - contamination`` (to the quantiles' grain).
    A score tied with many training scores (a constant chart) counts none of the ties, so
    an unchanged chart reads 0, not 1.
    """
    scores = np.asarray(scores, dtype=np.float64)
    p = np.searchsorted(points, lowered(scores), side='left') / float(points.size)
    p = np.where(beyond(scores, points[-1]), 1.0, p)
    if tail is not None:
        start, scale = tail
        p = np.where(scores > start, np.maximum(p, tail_probability(scores, start, scale)), p)
    return p


# the log excess of a score at or under the training median (or of no score at all)
EXCESS_FLOOR = float(np.log(1e-6))


def worst_score(top):
    """A score beyond ``top`` (the highest training score or the threshold), for a row the
    scorer cannot score (a value near float's limit): as unusual as can be. Above it whatever
    its sign: pyod's gmm scores a collinear chart's rows below 0."""
    return top + np.abs(top) + 1.0


def log_excess(scores, median, threshold):
    """How far each score is above the training median, in units of the threshold's distance
    from it, as a logarithm (0 at the threshold, floored at -14): the flag policy's measure of
    whether an excess is growing, holding or dying down, which the probability (capped at 1
    beyond the training's highest score) cannot tell. Arrays broadcast (one per model)."""
    median = np.asarray(median, dtype=np.float64)
    # a still chart's threshold is its median: the span is then rounding's size, as in ``lowered``
    span = np.maximum(np.asarray(threshold, dtype=np.float64) - median, TIE_TOLERANCE * (np.abs(median) + 1.0))
    with np.errstate(invalid='ignore', over='ignore'):
        ratio = (lowered(scores) - median) / span
    return np.log(np.clip(np.nan_to_num(ratio, nan=0.0), np.exp(EXCESS_FLOOR), 1e300))


def minmax_probability(scores, lo, hi):
    """The retired collector's (pyod's 'linear') probability: training score range mapped to 0..1."""
    if not hi > lo:
        return np.where(beyond(scores, hi), 1.0, 0.0)
    return np.clip((scores - lo) / (hi - lo), 0.0, 1.0)


def squash_features(Z, knee):
    """Standardized features beyond ``knee`` grow only with the logarithm of the excess.

    ``knee``: one value per feature (``inf``: left as it is), or None for no squashing.
    ``z`` becomes ``sign(z) * (knee + log(1 + |z| - knee))`` past the knee, so the order of
    values is kept (farther is still more unusual) but a level that drifted far from
    training adds tens to a quadratic score, not thousands that drown every other feature.
    """
    if knee is None:
        return Z
    with np.errstate(invalid='ignore'):   # an infinite feature minus an infinite knee
        excess = np.abs(Z) - knee
        return np.where(excess > 0, np.sign(Z) * (knee + np.log1p(np.maximum(excess, 0.0))), Z)


class FittedModel:
    """A trained model for one chart (or custom model): preprocessing, scorer, calibration.

    Follows pyod's interface: ``decision_function`` (raw score, larger is more unusual),
    ``predict_proba`` (n x 2, column 1 is the anomaly probability) and ``predict`` (0/1 at
    the contamination threshold).
    """

    tail = None     # (start, scale) of the fitted tail; None: empirical throughout
    knee = None     # per kept feature, where squash_features starts; None: nothing squashed

    def __init__(self, name, columns, kept, mean, scale, scorer, train_scores, contamination,
                 calibration='empirical', model_name='', info=None, knee=None):
        self.name = name
        self.knee = None if knee is None else np.asarray(knee, dtype=np.float64)
        self.columns = list(columns)
        self.kept = np.asarray(kept, dtype=np.intp)
        self.mean = np.asarray(mean, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self.scorer = scorer
        self.calibration = calibration
        self.model_name = model_name
        self.contamination = contamination
        self.info = dict(info or {})
        s = np.asarray(train_scores, dtype=np.float64)
        s = s[np.isfinite(s)]
        self.points = calibration_points(s)
        self.score_min = float(s.min()) if s.size else 0.0
        self.score_max = float(s.max()) if s.size else 0.0
        self.tail = exponential_tail(self.points) if calibration == 'tail' and s.size else None
        self.threshold = tail_threshold(s, contamination, self.tail) if s.size else 0.0

    def transform(self, X):
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[None, :]
        return (X[:, self.kept] - self.mean) / self.scale

    def standardized(self, X):
        """The rows as the scorer sees them: centred, scaled and (``level_squash``) squashed."""
        return squash_features(self.transform(X), self.knee)

    def decision_function(self, X):
        """Raw anomaly score; never NaN or inf (non-finite scores become the worst seen)."""
        Z = self.standardized(X)
        if Z.shape[1] == 0:
            return np.zeros(Z.shape[0])
        worst = worst_score(max(self.score_max, self.threshold))
        finite = np.isfinite(Z).all(axis=1)
        if finite.all():
            s = self.scorer.decision_function(Z)
        else:   # a value near float's limit: pyod's gmm and cblof refuse the row; it is the worst
            s = np.full(Z.shape[0], worst)
            if finite.any():
                s[finite] = self.scorer.decision_function(Z[finite])
        bad = ~np.isfinite(s)
        if bad.any():
            s = np.where(bad, worst, s)
        return s

    @property
    def median(self):
        """The training scores' median (to the quantiles' grain)."""
        return float(self.points[self.points.size // 2])

    def excess(self, scores):
        """``log_excess`` of ``scores`` against this model's training."""
        return log_excess(scores, self.median, self.threshold)

    def probability(self, scores):
        """The charted probability: ``rank_probability``, or with ``calibration: minmax`` the
        retired collector's scaling."""
        if self.calibration == 'minmax':
            return minmax_probability(scores, self.score_min, self.score_max)
        return self.rank_probability(scores)

    def rank_probability(self, scores):
        """How many training scores each score is above (with ``tail``, beyond them): what the
        flag policy reads whatever the charted calibration, as its rules count steps rarer than
        99 % of training, which a minmax probability of 0.99 is not (one spike in the window
        sets its top)."""
        return empirical_probability(scores, self.points, self.tail)

    def predict_proba(self, X):
        p = self.probability(self.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X):
        return self.exceeds(self.decision_function(X)).astype(int)

    def exceeds(self, scores):
        """Where scores are above the threshold (by more than rounding): the raw flag."""
        return beyond(scores, self.threshold)

    def attribution(self, x):
        """Which raw columns drive this feature vector's score: ``[(column, share)]``, largest first.

        A column's share is the sum of its features' squared standardized values (its change
        blocks and its level, squashed as the model scores them), over all features: how far
        from training each dimension is.
        Model-agnostic, so it reads the same for every model and ensemble.
        """
        with np.errstate(all='ignore'):
            z = np.abs(self.standardized(x)[0])
            n_cols = len(self.columns)
            if n_cols == 0 or z.size == 0:
                return []
            # scaled by the largest first, so values near float's limit (1e308) do not overflow
            # the squares; one beyond it (inf) drives the score alone
            top = z.max()
            w = np.isinf(z).astype(np.float64) if np.isinf(top) else (z / top) ** 2 if top > 0 else z
        per_col = np.bincount(self.kept % n_cols, weights=w, minlength=n_cols)
        total = per_col.sum()
        if not np.isfinite(total) or total <= 0:
            return []
        order = np.argsort(-per_col, kind='stable')
        return [(self.columns[i], float(per_col[i] / total)) for i in order if per_col[i] > 0]

    def warm_up(self):
        """Score once so imports and JIT compiles of the scorer happen now, off the collection path."""
        if self.kept.size and not isinstance(self.scorer, NUMPY_SCORERS):
            import sys
            if 'torch' in sys.modules:   # a deep model: score with one thread, as everything here
                sys.modules['torch'].set_num_threads(1)
            self.scorer.decision_function(np.zeros((1, self.kept.size)))
