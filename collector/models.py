"""The supported models: how each is built, fitted and handed back as a ``FittedModel``.

pyod is imported only inside the functions here, i.e. only in the training process, and
only the module of the model that is asked for; the default (mahalanobis) and ecod, copod
and hbos fit with numpy alone.
"""
import time
import warnings

import numpy as np

from .ports import (EcdfScorer, HbosScorer, IforestScorer, KnnScorer, LodaScorer, LofBaggingScorer,
                    ecdf_training_scores)
from .scoring import (BlockedScorer, EnsembleScorer, FittedModel, MahalanobisScorer, PcaScorer, PyodScorer,
                      squash_features)


# name -> (pyod module, class, extra kwargs); None for this project's own models
_REGISTRY = {
    'pca': ('pyod.models.pca', 'PCA', {}),
    'mahalanobis': (None, None, {}),   # this project's own (numpy): see _mahalanobis_scorer
    'hbos': ('pyod.models.hbos', 'HBOS', {}),
    'iforest': ('pyod.models.iforest', 'IForest', {'n_estimators': 50, 'behaviour': 'new', 'random_state': 0}),
    'cblof': ('pyod.models.cblof', 'CBLOF', {'n_clusters': 8, 'alpha': 0.75, 'beta': 3, 'random_state': 0}),
    'loda': ('pyod.models.loda', 'LODA', {}),
    'copod': ('pyod.models.copod', 'COPOD', {}),
    'ecod': ('pyod.models.ecod', 'ECOD', {}),
    'gmm': ('pyod.models.gmm', 'GMM', {'n_components': 2, 'random_state': 0}),
    'knn': ('pyod.models.knn', 'KNN', {'n_neighbors': 5}),
    'feature_bagging': ('pyod.models.feature_bagging', 'FeatureBagging', {'n_estimators': 5, 'random_state': 0}),
    # optional deep models (pip install .[deep]: CPU torch)
    'auto_encoder': ('pyod.models.auto_encoder', 'AutoEncoder',
                     {'epoch_num': 8, 'batch_size': 256, 'hidden_neuron_list': [32, 16], 'verbose': 0,
                      'random_state': 0}),
    'lstm': ('collector.deep', 'LstmDetector', {}),
}
MODEL_NAMES = tuple(_REGISTRY)
# models whose fitted form is numpy only (this project's mahalanobis, PcaScorer and the ports
# of collector.ports): the collection process scores them without pyod; mahalanobis, ecod,
# copod, hbos and loda do not even need pyod to fit
NUMPY_MODELS = ('pca', 'mahalanobis', 'hbos', 'iforest', 'knn', 'ecod', 'copod', 'feature_bagging', 'loda')
_FIT_WITHOUT_PYOD = ('mahalanobis', 'ecod', 'copod', 'hbos', 'loda')
# models fitted on the window's rows with far misreads pulled in (``outlier_bounds``): moments and ranges
_FIT_ON_CLIPPED = ('pca', 'mahalanobis', 'hbos', 'loda')
# models that need torch, which is not a dependency unless the [deep] extra is installed
DEEP_MODELS = ('auto_encoder', 'lstm')

# A model that fails to fit is retried as this one (simple, and it fits any non-constant data).
FALLBACK = 'hbos'
# fewer feature rows than this and a model is not worth fitting yet (its probabilities would
# move in steps of 1/30 or more)
MIN_TRAIN_ROWS = 30

# Distance-based models cost O(n^2) to fit and keep their training rows; cap their rows
# (and the deep ones, whose epochs cost time per row).
_MAX_ROWS = {'knn': 5000, 'feature_bagging': 5000, 'cblof': 20000, 'gmm': 20000, 'auto_encoder': 20000,
             'lstm': 20000}


def model_members(name):
    """The models a ``model`` setting names: one (``'mahalanobis'``) or an ensemble (``'mahalanobis+knn'``)."""
    return tuple(name.split('+'))


def valid_model(name):
    members = model_members(name)
    return len(set(members)) == len(members) and all(m in _REGISTRY for m in members)


def pyod_model(name):
    """Whether ``name`` is one pyod estimator (not this project's own model, not an ensemble)."""
    return _REGISTRY.get(name, (None,))[0] is not None


def numpy_only(name):
    """Whether every member of ``name`` scores with numpy alone (no pyod, scikit-learn, torch)."""
    return all(m in NUMPY_MODELS or m == 'constant' for m in model_members(name))


def deep_available():
    """Whether torch and tqdm (pyod's deep models import it) can be imported, without importing them."""
    import importlib.util
    return all(importlib.util.find_spec(m) is not None for m in ('torch', 'tqdm'))


def build_estimator(name, contamination, blocks=None, rows=None):
    """A fresh pyod estimator for ``name`` (imports only that pyod module).

    ``blocks``: ``(change blocks, has level block)`` of the feature rows, for the sequence model.
    ``rows``: how many rows it is fitted on: pyod's deep models train on whole batches only
    (a window under one batch trained on nothing and failed), so a batch is at most that many.
    """
    import importlib
    if not pyod_model(name):
        raise ValueError('{!r} is not a pyod model'.format(name))
    module, cls, kwargs = _REGISTRY[name]
    kwargs = dict(kwargs)
    if name == 'lstm' and blocks:
        kwargs['change_blocks'], kwargs['has_level'] = int(blocks[0]), bool(blocks[1])
    if name == 'iforest':
        kwargs.pop('behaviour', None)
    if rows and 'batch_size' in kwargs:
        kwargs['batch_size'] = max(1, min(kwargs['batch_size'], int(rows)))
    return getattr(importlib.import_module(module), cls)(contamination=contamination, **kwargs)


def preload(name):
    """Import the pyod module of ``name`` (e.g. in a thread while training data downloads)."""
    import importlib
    for member in model_members(name):
        if member in _REGISTRY and member not in _FIT_WITHOUT_PYOD:
            importlib.import_module(_REGISTRY[member][0])


def _pca_scorer(Z, contamination):
    """Fit pyod PCA on already scaled ``Z`` (``fit_model`` scales it), on its numerical rank.

    pyod's own standardization is off: it would undo the scale floor and divide constant
    columns by zero. Components are limited to the rank so none has zero variance.
    """
    from pyod.models.pca import PCA
    eig = np.linalg.eigvalsh(np.cov(Z, rowvar=False)) if Z.shape[1] > 1 else np.array([Z.var()])
    rank = int((eig > max(eig.max(), 1e-12) * 1e-7).sum())
    rank = max(1, min(rank, Z.shape[0] - 1, Z.shape[1]))
    est = PCA(contamination=contamination, n_components=rank, standardization=False, random_state=0)
    est.fit(Z)
    w = np.asarray(est.selected_w_components_, dtype=np.float64)
    if not np.all(w > 0):
        raise FloatingPointError('PCA has components without variance')
    n = Z.shape[1]
    scorer = PcaScorer(np.zeros(n), np.ones(n), np.asarray(est.selected_components_), w)
    return scorer, np.asarray(est.decision_scores_, dtype=np.float64), est


# no direction's variance counts for less than this share of the mean variance
VARIANCE_FLOOR = 0.1


def ledoit_wolf_shrinkage(Z, S):
    """Ledoit and Wolf's (2004) optimal weight of the scaled identity in a shrunk covariance.

    ``Z`` is centred (rows are samples), ``S = Z.T Z / n``. The weight is the estimated
    spread of the single-row products ``z z^T`` around ``S`` over the spread of ``S`` around
    ``mu I`` (``mu`` its mean eigenvalue), capped at 1: little data or many features, more
    shrinkage; with plenty of rows it fades towards 0.
    """
    n, p = Z.shape
    mu = np.trace(S) / p
    d2 = (np.sum(S * S) - 2.0 * mu * np.trace(S) + p * mu * mu) / p
    if not d2 > 0:
        return 1.0
    # sum over rows of ||z z^T - S||_F^2 is sum ||z||^4 - n ||S||_F^2
    b2 = (np.sum(np.einsum('ij,ij->i', Z, Z) ** 2) / n - np.sum(S * S)) / (n * p)
    return float(min(max(b2, 0.0), d2) / d2)


# a chart of more features than this (about 150 dimensions and up at the default lags_n) has
# its default model fitted as blocks of its dimensions, each a covariance of its own: one over
# all of them takes memory and time with their square and cube (300 dimensions, 2100 features:
# a 35 MB matrix and its eigenvectors; 5000 dimensions, 35000: 10 GB, the training killed and
# every chart left without a model). A block keeps its dimensions' own correlations and their
# lags'; what it loses is those between blocks
MAHALANOBIS_BLOCK_FEATURES = 1024


def dimension_blocks(feature_columns, most=MAHALANOBIS_BLOCK_FEATURES):
    """Feature indices in groups of whole dimensions (``feature_columns``: the raw column of
    each feature), in the order of the columns, as even as they come and at most ``most``
    features each where no one dimension has more. One group when all fit in one."""
    feature_columns = np.asarray(feature_columns, dtype=np.intp)
    n = feature_columns.size
    groups = -(-n // most) if n else 1
    if groups <= 1:
        return [np.arange(n)]
    order = np.argsort(feature_columns, kind='stable')
    cols = feature_columns[order]
    starts = np.flatnonzero(np.r_[True, cols[1:] != cols[:-1]])
    ends = np.r_[starts[1:], n]
    target = n / groups
    blocks, current = [], []
    for a, b in zip(starts, ends):
        if current and (sum(e - s for s, e in current) + (b - a) > min(most, target * 1.05)):
            blocks.append(np.sort(np.concatenate([order[s:e] for s, e in current])))
            current = []
        current.append((a, b))
    blocks.append(np.sort(np.concatenate([order[s:e] for s, e in current])))
    return blocks


def _mahalanobis_scorer(Z, fit_on=None, feature_columns=None, mu=None):
    """``z' C^-1 z + |z|^2 / mu``: a Mahalanobis distance plus a plain one, as one quadratic form.

    ``C`` is the Ledoit-Wolf covariance of ``fit_on`` (default ``Z``; already centred and
    scaled by ``fit_model``), every variance floored at ``VARIANCE_FLOOR`` of the mean one,
    ``mu``; the scores are ``Z``'s.
    The first term sees correlations that break (used memory up without free going down);
    the second sees a large move along a direction that always varies (CPU from half to
    full), which the first weighs down. On the training rows the second averages the number
    of features and the first at most about the number of directions that vary, so neither
    swamps the other. Numpy only, and scored per step like pca: one projection on the
    eigenvectors. A wide chart's (``feature_columns``, the raw column of each feature) is
    the sum of one such form per block of its dimensions (``dimension_blocks``), each
    shrunk towards its own mean variance but floored, and its plain term weighed, by the
    chart's (``mu``): a block of idle dimensions (interrupt lines, process groups that did not
    run) would otherwise weigh a tick of one of them by its own tiny mean, or, with none
    moving, have no mean at all.
    """
    F = Z if fit_on is None else fit_on
    if feature_columns is not None and F.shape[1] > MAHALANOBIS_BLOCK_FEATURES:
        blocks = dimension_blocks(feature_columns, MAHALANOBIS_BLOCK_FEATURES)
        if len(blocks) > 1:
            chart_mu = float(np.einsum('ij,ij->', F, F)) / F.size
            if not chart_mu > 0:
                raise FloatingPointError('no feature varies')
            scorer = BlockedScorer(blocks, [
                _mahalanobis_scorer(np.ascontiguousarray(F[:, b]), mu=chart_mu)[0] for b in blocks])
            return scorer, scorer.decision_function(Z)
    n, p = F.shape
    S = F.T @ F / n
    delta = ledoit_wolf_shrinkage(F, S)
    own_mu = np.trace(S) / p
    mu = own_mu if mu is None else mu
    if not mu > 0:
        raise FloatingPointError('no feature varies')
    # features that never moved have no covariance with anything: their eigenvectors are
    # their own axes, with variance 0 before shrinkage, so they need no matrix
    varies = np.diag(S) > 1e-12 * mu
    moving, still = np.nonzero(varies)[0], np.nonzero(~varies)[0]
    w, V = np.linalg.eigh(S[np.ix_(moving, moving)])
    var = np.maximum((1.0 - delta) * np.maximum(w, 0.0) + delta * own_mu, VARIANCE_FLOOR * mu)
    still_w = 1.0 / max(delta * own_mu, VARIANCE_FLOOR * mu) + 1.0 / mu
    scorer = MahalanobisScorer(moving, V.T, 1.0 / var + 1.0 / mu, still, still_w)
    return scorer, scorer.decision_function(Z)


def _fit_scorer(name, X, contamination, blocks=None, fit_on=None, feature_columns=None):
    """``(scorer, training scores)`` of model ``name`` on scaled rows ``X``; the models whose
    fit a far misread distorts (``_FIT_ON_CLIPPED``: a covariance, histogram ranges) are fitted
    on ``fit_on`` (the rows ``pulled_in`` to ``outlier_bounds``) if given, and score ``X`` as read.
    ``feature_columns``: the raw column of each feature (for ``dimension_blocks``)."""
    members = model_members(name)
    if len(members) > 1:
        scorers, centres, spans, all_scores = [], [], [], []
        for member in members:
            sc, scores = _fit_scorer(member, X, contamination, blocks, fit_on, feature_columns)
            centre = float(np.median(scores))
            # a member whose training scores are nearly all tied must not dominate by a tiny span
            floor = max(1e-3 * float(np.std(scores)), 1e-6 * max(1.0, abs(centre)))
            spans.append(max(float(np.quantile(scores, 1.0 - contamination)) - centre, floor))
            scorers.append(sc)
            centres.append(centre)
            all_scores.append((scores - centre) / spans[-1])
        return EnsembleScorer(scorers, centres, spans), np.mean(all_scores, axis=0)
    if name == 'pca':
        if fit_on is None:
            return _pca_scorer(X, contamination)[:2]
        scorer = _pca_scorer(fit_on, contamination)[0]
        return scorer, scorer.decision_function(X)
    if name == 'mahalanobis':
        scorer, scores = _mahalanobis_scorer(X, fit_on, feature_columns)
        if scorer.moving.size < min(HELD_OUT_FROM * X.shape[0], HELD_OUT_FEATURES):
            return scorer, scores
        return scorer, _mahalanobis_held_out_scores(X, fit_on, scores, feature_columns)
    fit_rows = X if fit_on is None else fit_on
    if name == 'hbos':
        scorer = HbosScorer.fit(fit_rows)
        return scorer, scorer.decision_function(X)
    if name == 'loda':
        scorer = LodaScorer.fit(fit_rows)
        return scorer, _loda_held_out_scores(fit_rows, X, scorer.projections)
    if name in _FIT_WITHOUT_PYOD:
        return EcdfScorer(X, name), ecdf_training_scores(X, name)
    est = build_estimator(name, contamination, blocks, rows=X.shape[0])
    est.fit(X)
    scores = np.asarray(est.decision_scores_, dtype=np.float64)
    if name == 'iforest':
        return IforestScorer.from_pyod(est, X), scores
    if name == 'knn':
        return KnnScorer.from_pyod(est, X), scores
    if name == 'feature_bagging':
        return LofBaggingScorer.from_pyod(est, X), scores
    return PyodScorer(est), scores


# the default model's training scores are each row's distance under a fit without it once its
# moving features are at least this share of its rows (a wide chart, or a short window) ...
HELD_OUT_FROM = 0.15
# ... or at least this many, whatever the window: a chart of 60 dimensions or more (a large
# server's system.interrupts, apps.*, cgroups' per-core charts) over a window of 3000 to 14400
# rows read its normal rows as more unusual than its training rows were (AR noise of 60
# dimensions over 3000 rows: a median probability of 88 %, 5.3 % of the rows over a 0.1 %
# threshold; 120 over 14400: 76 %, 0.8 %), where the recordings' charts (84 features at most)
# are better off with their own scores over their short windows
HELD_OUT_FEATURES = 400
# ... from this many folds of stretches taken all through the window, each scored by the others
MAHALANOBIS_HELD_OUT_STRETCHES = 16
MAHALANOBIS_HELD_OUT_FOLDS = 4


def _mahalanobis_held_out_scores(X, fit_on, scores, feature_columns=None):
    """The default model's training scores for its calibration (its threshold, probabilities
    and median), each row scored by a fit that did not see it: ``MAHALANOBIS_HELD_OUT_FOLDS``
    folds of ``MAHALANOBIS_HELD_OUT_STRETCHES`` stretches, each fold scored by the covariance
    of the others (of ``fit_on`` if given). ``scores``, the rows' own, stand for a fold whose
    fit fails.

    A row's distance under a covariance fitted on it is bounded by how many rows there are:
    with many features against few rows every later normal row lies farther out than the
    training rows did, and the threshold taken from the rows' own scores was under nearly
    every step's (a 100-dimension chart on 15 minutes of history read 100 % and stayed
    flagged; 200 dimensions on an hour, 88 % of the steps flagged). Charts of a few
    dimensions over the default window are far from that and keep their own scores
    (``HELD_OUT_FROM``, ``HELD_OUT_FEATURES``): the recordings' widest, ``system.interrupts``,
    has 12 moving dimensions, 84 features against 740 rows.
    """
    F = X if fit_on is None else fit_on
    n = X.shape[0]
    stretch = max(1, -(-n // MAHALANOBIS_HELD_OUT_STRETCHES))
    fold = (np.arange(n) // stretch) % MAHALANOBIS_HELD_OUT_FOLDS
    out = np.array(scores, dtype=np.float64, copy=True)
    for k in range(MAHALANOBIS_HELD_OUT_FOLDS):
        rows = fold == k
        if not rows.any() or rows.all():
            continue
        try:
            scorer, _ = _mahalanobis_scorer(F[~rows], feature_columns=feature_columns)
        except FloatingPointError:   # nothing moves in the other folds
            continue
        held = scorer.decision_function(X[rows])
        out[rows] = np.where(np.isfinite(held), held, out[rows])
    return out


# loda's training scores: the window in this many stretches, every other one scored by the rest
LODA_HELD_OUT_STRETCHES = 16


def _loda_held_out_scores(fit_rows, X, projections):
    """loda's training scores for the threshold: every other of ``LODA_HELD_OUT_STRETCHES``
    stretches of the window (``X``) scored by the histograms of the others (of ``fit_rows``)
    along the same projections, and the other way round.

    A training row never falls outside a histogram built on it, so its own scores never
    show how often a later normal row lands beyond some projection's range and scores as
    an empty bin: the threshold taken from them put 1-3 % of new normal rows above it at
    ``contamination: 0.001``. Stretches taken from all through the window, rather than its
    two halves, each span what the other spans when the chart trends: scored by halves, a
    trending chart's threshold rose until a shift of 3 deviations was above it 18 steps in
    60 rather than 41."""
    n = X.shape[0]
    stretch = max(1, -(-n // LODA_HELD_OUT_STRETCHES))
    odd = (np.arange(n) // stretch) % 2 == 1
    out = np.empty(n)
    for rows in (odd, ~odd):
        out[rows] = LodaScorer.from_projections(fit_rows[~rows], projections).decision_function(X[rows])
    return out


def sampled_rows(rows, max_rows, seed=0):
    """Which of ``rows`` rows to keep when there are more than ``max_rows`` (random but
    reproducible, in time order); None: all of them."""
    if rows <= max_rows:
        return None
    return np.sort(np.random.default_rng(seed).choice(rows, size=max_rows, replace=False))


# the share of each feature's training values at either end that ``outlier_bounds`` measures past
OUTLIER_SHARE = 0.001
# how many values must lie beyond those quantiles for them to be a range, not its outliers
OUTLIER_MIN_BEYOND = 10
# how many times that range's width beyond it a value is a misread rather than a burst
OUTLIER_REACH = 10
# standard deviations from the mean below which no value can be that far
OUTLIER_SUSPECT = 8


def outlier_bounds(X, share=OUTLIER_SHARE):
    """``(features, low, high)``: the bounds ``pulled_in`` takes values in to, of the features
    that may need it (None where none does): ``OUTLIER_REACH`` times the distance between
    their ``share`` and ``1 - share`` quantiles beyond them.

    The centre, scale and covariance are second moments: one read of 1e9 bytes/s in a
    4-hour window of 1e6 (a counter misread) would set a dimension's scale 800 times its
    spread and hide every later move of it until that read leaves the window. Ten times
    past the range that all but the outermost 0.1 % fill, nothing normal reaches (some 70
    standard deviations of normal noise); only the moments are taken from the pulled-in
    rows, so such a read still scores as read. A feature whose range is one value (an
    error counter ticking a few times) is left as it is, so its ticks stay what training
    saw. A window of fewer than ``OUTLIER_MIN_BEYOND / share`` rows (10000, 2.8 hours of
    one-second steps) is left whole: there the quantiles are its few most extreme values
    themselves, a young agent's start-up among them.
    """
    if X.shape[0] * share < OUTLIER_MIN_BEYOND:
        return None
    # the quantiles cost twice the fit: only features with a value OUTLIER_SUSPECT standard
    # deviations out can have one that far beyond their range (the far value then dominates
    # the deviation, or the range does and the value is ten of it out)
    mean, std = X.mean(axis=0), X.std(axis=0)
    suspect = np.nonzero((X.max(axis=0) - mean > OUTLIER_SUSPECT * std) |
                         (mean - X.min(axis=0) > OUTLIER_SUSPECT * std))[0]
    if not suspect.size:
        return None
    part = X[:, suspect]
    lo, hi = np.quantile(part, [share, 1.0 - share], axis=0)
    reach = OUTLIER_REACH * (hi - lo)
    lo, hi = np.where(reach > 0, lo - reach, -np.inf), np.where(reach > 0, hi + reach, np.inf)
    if not ((part < lo) | (part > hi)).any():
        return None
    return suspect, lo, hi


def pulled_in(X, bounds):
    """``X`` with its values beyond ``bounds`` (``outlier_bounds``, of these rows or of more)
    pulled in to them: a copy, or ``X`` itself where none lies beyond."""
    if bounds is None:
        return X
    suspect, lo, hi = bounds
    part = X[:, suspect]
    if not ((part < lo) | (part > hi)).any():
        return X
    out = X.copy()
    out[:, suspect] = np.clip(part, lo, hi)
    return out


# a still group's unit, in its constants' size (at least 1): a move of a thousandth is one
# standard deviation of the moving features
STILL_GROUP_UNIT = 1e-3


def feature_scale(X, groups=None):
    """Per-feature centre and scale, and which features to keep.

    The scale is each feature's standard deviation, floored at the median deviation of its
    group (all features of one chart, whose dimensions share units; one floor for the change
    and level blocks together measured better on SMD than one per kind): a dimension
    that barely moved in training (``nice`` CPU, a quiet disk) would otherwise turn its
    first small wobble into a huge z-score. Features constant in training are kept when
    their group has a scale (a quiet dimension that starts moving is news); a group with
    nothing moving (a custom model's chart of an error counter at 0) is measured in
    ``STILL_GROUP_UNIT`` of its constants' size (at least 1): as with ``still_scale`` for a model
    with nothing moving anywhere, its first move is news, and a count of 1 reads far beyond
    the moving charts' wobble.
    """
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    moving = std > 1e-12 * np.maximum(1.0, np.abs(mean))
    if groups is None:
        groups = np.zeros(X.shape[1], dtype=np.intp)
    groups = np.asarray(groups, dtype=np.intp)
    floor = np.zeros(X.shape[1])
    for g in np.unique(groups):
        in_g = groups == g
        if (moving & in_g).any():
            floor[in_g] = np.median(std[moving & in_g])
        elif moving.any():
            floor[in_g] = STILL_GROUP_UNIT * np.maximum(np.abs(mean[in_g]), 1.0)
    scale = np.maximum(std, floor)
    kept = np.nonzero(moving | (floor > 0))[0]
    return kept, mean[kept], scale[kept]


def still_scale(X):
    """Centre and scale for a model none of whose features moved in training (an error
    counter at 0, no shared memory, a synced clock): every feature kept, centred on its
    constant and measured in units of that constant's size (at least 1), so any move is news
    however small its units, and a far one reads farther."""
    mean = X.mean(axis=0)
    return np.arange(X.shape[1]), mean, np.maximum(np.abs(mean), 1.0)


def still_scorer(n_features):
    """The squared distance from the constants: a Mahalanobis form with no moving feature
    (so the batch scorer scores it with the rest), 0 on every training row."""
    return MahalanobisScorer(np.zeros(0, dtype=np.intp), np.zeros((0, 0)), np.zeros(0),
                             np.arange(n_features), 1.0)


def level_knees(kept, n_features, blocks, level_squash):
    """Per kept feature, where ``squash_features`` starts: ``level_squash`` for the level block, inf elsewhere.

    None when nothing is squashed (no level block, or ``level_squash`` is None). Changes
    are left whole: a spike is news however large.
    """
    if level_squash is None or not blocks or not blocks[1]:
        return None
    first_level = blocks[0] * (n_features // (blocks[0] + 1))
    return np.where(np.asarray(kept) >= first_level, float(level_squash), np.inf)


# the most feature values (rows x features) a fit works on, its rows sampled down to it: each
# copy the fit makes (scaled, pulled in, held out) is one of this many (96 MB). The shared
# data's windows hold less (SMD's 38 dimensions over 28,000 rows: 7.4 M; a recording's widest
# chart: 1.2 M); 4 hours of a 300-dimension chart (30 M) took its training to 1.4 GB
MAX_FIT_VALUES = 12000000
# ... but never fewer rows than this, however wide the chart
MIN_FIT_ROWS = 1000


def _fit_or_fall_back(model, Z, contamination, blocks, fit_on, feature_columns):
    """``(scorer, training scores, model used, errors)``: ``model`` fitted, or ``FALLBACK`` where
    it raises or scores its own training rows as non-finite (any library failure: the chart is
    never lost to one); raises only when the fallback fails too."""
    used, errors = model, []
    while True:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                with np.errstate(all='ignore'):
                    scorer, scores = _fit_scorer(used, Z, contamination, blocks, fit_on, feature_columns)
            if not np.all(np.isfinite(scores)):
                raise FloatingPointError('non-finite training scores')
            return scorer, scores, used, errors
        except Exception as e:
            errors.append('{}: {}'.format(used, e))
            if used == FALLBACK:
                raise RuntimeError('all models failed: ' + '; '.join(errors))
            used = FALLBACK


def fit_model(model_id, columns, X, model='mahalanobis', contamination=0.001, calibration='empirical', max_rows=100000,
              groups=None, blocks=None, level_squash=None):
    """Fit ``model`` on feature matrix ``X`` and return a ``FittedModel``.

    Features are centred and scaled by ``feature_scale`` (``groups``: a group id per
    feature, e.g. from ``features.feature_groups``; default one group). ``blocks``:
    ``(change blocks, has level block)`` of the rows, for the sequence model and for
    ``level_squash`` (standard deviations beyond which the level features are squashed, see
    ``scoring.squash_features``; None: not squashed). A model whose
    fit raises or yields non-finite training scores falls back to ``FALLBACK`` and the result
    says so in ``info``.
    """
    X = np.asarray(X, dtype=np.float64)
    bad = int(np.count_nonzero(~np.isfinite(X)))
    if bad:   # never from an agent's JSON; data near float64's limit (1e308) overflows the sums
        raise ValueError('{} of {} feature values are not finite: the data holds infinities, or values so large '
                         '(near 1e308) that their differences and moving averages overflow'.format(bad, X.size))
    rows = X.shape[0]
    bounds = outlier_bounds(X)   # of the whole window: a subsample of 5000 rows (knn) is too few
    most = max(MIN_FIT_ROWS, MAX_FIT_VALUES // max(1, X.shape[1]))
    keep = sampled_rows(rows, min([max_rows, most] + [_MAX_ROWS.get(m, max_rows) for m in model_members(model)]))
    if keep is not None:
        X = X[keep]
    Xw = pulled_in(X, bounds)
    clipped = Xw is not X
    kept, mean, scale = feature_scale(Xw, groups)
    if not (np.isfinite(mean).all() and np.isfinite(scale).all()):
        raise ValueError("the features' mean or spread is not finite: the data holds values so large (beyond "
                         "about 1e154, one read is enough) that their squares or sums overflow")
    knee = level_knees(kept, X.shape[1], blocks, level_squash)
    Z = squash_features((X[:, kept] - mean) / scale, knee)
    fit_on = None
    if clipped and any(m in _FIT_ON_CLIPPED for m in model_members(model)):
        fit_on = squash_features((Xw[:, kept] - mean) / scale, knee)
    del Xw   # the window with a misread pulled in, a copy: what the fit needs of it is in fit_on
    # the raw column of each kept feature (features are laid out a block of columns at a time)
    feature_columns = kept % len(columns) if len(columns) and X.shape[1] % len(columns) == 0 else None
    started = time.monotonic()
    info = {'rows': int(X.shape[0]), 'features': int(X.shape[1]), 'kept_features': int(kept.size),
            'requested_model': model}
    if X.shape[0] < rows:
        info['sampled_from'] = int(rows)
    if kept.size == 0:
        (kept, mean, scale), knee = still_scale(X), None   # nothing to squash
        scorer, scores, used = still_scorer(kept.size), np.zeros(X.shape[0]), 'constant'
        info['kept_features'] = int(kept.size)
    else:
        scorer, scores, used, errors = _fit_or_fall_back(model, Z, contamination, blocks, fit_on, feature_columns)
        if errors:
            info['fallback_from'] = errors
    info['model'] = used
    info['fit_seconds'] = round(time.monotonic() - started, 4)
    return FittedModel(model_id, columns, kept, mean, scale, scorer, scores, contamination,
                       calibration=calibration, model_name=used, info=info, knee=knee)
