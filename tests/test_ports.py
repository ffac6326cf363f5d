"""The numpy ports score exactly as the pyod detectors they replace, without importing pyod."""
import pickle
import subprocess
import sys

import numpy as np
import pytest

from collector.models import fit_model
from collector.ports import (EcdfScorer, HbosScorer, IforestScorer, KnnScorer, LodaScorer, LofBaggingScorer,
                             ecdf_training_scores)


def data(rows, seed=1):
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.normal(size=rows), rng.exponential(size=rows), -rng.exponential(size=rows),
                            rng.integers(0, 4, rows).astype(float),   # ties
                            np.zeros(rows)])                          # constant in training


def queries(Z, seed=2):
    rng = np.random.default_rng(seed)
    return np.vstack([rng.normal(size=(20, Z.shape[1])) * 3, Z[:5], Z.max(axis=0) + 1, Z.min(axis=0) - 1])


def one_by_one(f, Q):
    """pyod's ECOD/COPOD score a batch against training plus the batch: score rows singly,
    as the collector does each step."""
    return np.array([f(q[None, :])[0] for q in Q])


@pytest.mark.parametrize('kind', ['ecod', 'copod'])
def test_ecdf_ports_equal_pyod(kind):
    from pyod.models.copod import COPOD
    from pyod.models.ecod import ECOD
    Z = data(300)
    est = {'ecod': ECOD, 'copod': COPOD}[kind](contamination=0.01).fit(Z)
    port = EcdfScorer(Z, kind)
    Q = queries(Z)
    assert np.allclose(one_by_one(port.decision_function, Q), one_by_one(est.decision_function, Q), atol=1e-9)
    assert np.allclose(port.decision_function(Q), one_by_one(port.decision_function, Q))
    assert np.allclose(ecdf_training_scores(Z, kind), est.decision_scores_, atol=1e-9)


@pytest.mark.parametrize('kind', ['ecod', 'copod'])
def test_ecdf_ports_stay_close_to_pyod_on_long_windows_in_bounded_memory(kind):
    from pyod.models.copod import COPOD
    from pyod.models.ecod import ECOD
    Z = data(6000)
    est = {'ecod': ECOD, 'copod': COPOD}[kind](contamination=0.01).fit(Z)
    port = EcdfScorer(Z, kind)
    assert port.table.knots.shape[1] < 400          # not 6000 values per feature
    Q = queries(Z)
    ref = one_by_one(est.decision_function, Q)
    got = port.decision_function(Q)
    assert np.abs(got - ref).max() < 0.05 * np.abs(ref).mean()
    # the extremes, where flags are decided, are exact
    assert np.allclose(got[-2:], ref[-2:], atol=1e-9)


def test_hbos_port_equals_pyod():
    from pyod.models.hbos import HBOS
    Z = data(500)[:, :4]   # (the constant column: below)
    est = HBOS(contamination=0.01).fit(Z)
    Q = queries(Z)
    port = HbosScorer.fit(Z)
    assert np.array_equal(port.decision_function(Q), est.decision_function(Q))
    assert np.allclose(port.decision_function(Z), est.decision_scores_)


def test_hbos_reads_a_dimension_that_sat_still_in_training_moving_as_news():
    """pyod's bins put a constant training value on an edge beside an empty bin, so the
    training rows and a move away score alike: a CPU's steal, at 0 all window, then at 40 %,
    went unseen by hbos (the models' fallback too). The port scores the value's full bin
    there and the emptiest bin anywhere else; the other features as pyod does."""
    from pyod.models.hbos import HBOS
    Z = data(500)
    moved = Z[:5].copy()
    moved[:, 4] = 40.0
    port, est = HbosScorer.fit(Z), HBOS(contamination=0.01).fit(Z)
    assert np.array_equal(est.decision_function(moved), est.decision_function(Z[:5]))   # pyod: the same
    gap = port.log_density[4].max() - port.floor[4]
    assert gap > 0 and np.allclose(port.decision_function(moved) - port.decision_function(Z[:5]), gap)
    # on the moving features, still pyod's scores: the constant feature adds one value to all rows
    shift = est.decision_function(Z[:5]) - port.decision_function(Z[:5])
    assert np.allclose(shift, shift[0])


def test_loda_learns_pyods_histograms_and_scores_by_their_bins():
    from pyod.models.loda import LODA
    Z = data(500)
    np.random.seed(5)   # pyod draws the projections from numpy's global generator
    est = LODA(contamination=0.01).fit(Z)
    port = LodaScorer.from_projections(Z, est.projections_, est.n_bins)
    assert np.allclose(np.exp(port.log_hist), est.histograms_, rtol=1e-12, atol=0)
    # a row inside the training range on every projection (a mean of training rows): minus the
    # mean log density of the bin it falls in
    q = Z[:50].mean(axis=0)
    want = []
    for proj, edges, hist in zip(est.projections_, est.limits_, est.histograms_):
        counts, _ = np.histogram([proj @ q], bins=edges)
        want.append(-np.log(hist[counts.argmax()]))
    assert np.isclose(port.decision_function(q[None, :])[0], np.mean(want), rtol=1e-12)


def test_loda_fits_the_same_model_twice_and_flags_rows_beyond_training():
    Z = data(500)
    a, b = LodaScorer.fit(Z), LodaScorer.fit(Z)
    Q = queries(Z)
    assert np.array_equal(a.decision_function(Q), b.decision_function(Q))
    # as pyod draws them: about sqrt(d) non-zero weights per projection
    assert (np.count_nonzero(a.projections, axis=1) == int(np.sqrt(Z.shape[1]))).all()
    train = a.decision_function(Z)
    assert a.decision_function(np.full((1, Z.shape[1]), 9.0))[0] > train.max()
    assert a.decision_function((Z.min(axis=0) - 5)[None, :])[0] > train.max()


def test_loda_scores_a_training_row_read_alone_as_in_its_training():
    """A row projected alone rounds otherwise than inside the training matrix: the ramp's last
    row, at a projection's edge, read as beyond the range (an empty bin) live."""
    from collector.features import feature_groups, make_features
    X = make_features(np.arange(200, dtype=float)[:, None] * np.ones((1, 2)), 1, 3, 5, True, True)
    fm = fit_model('m', ['h::c|d0', 'h::c|d1'], X, model='loda', groups=feature_groups(['c'] * 2, 5, True),
                   blocks=(6, True))
    assert fm.decision_function(X[-1:])[0] == pytest.approx(fm.decision_function(X)[-1])


def test_knn_port_equals_pyod():
    from pyod.models.knn import KNN
    Z = data(500)
    est = KNN(contamination=0.01, n_neighbors=5).fit(Z)
    port = KnnScorer.from_pyod(est, Z)
    Q = queries(Z)
    assert np.allclose(port.decision_function(Q), est.decision_function(Q), atol=1e-7)


def test_feature_bagging_port_equals_pyod():
    from pyod.models.feature_bagging import FeatureBagging
    Z = data(400) + np.random.default_rng(5).normal(size=(400, 5)) * 1e-3   # no tied distances
    est = FeatureBagging(contamination=0.01, n_estimators=5, random_state=0).fit(Z)
    port = LofBaggingScorer.from_pyod(est, Z)
    Q = np.vstack([queries(Z), Z[:150]])          # more than one chunk
    assert np.allclose(port.decision_function(Q), est.decision_function(Q), rtol=1e-7, atol=1e-7)


def test_a_row_equal_to_a_steady_charts_usual_row_is_at_distance_0_from_it():
    """A chart that sits still almost all its window: its usual row, live, must score as its
    training copies do (distance 0, a local outlier factor of 1), not a rounding error above
    them, which would rank it above 99 % of training at every step and flag it."""
    from pyod.models.feature_bagging import FeatureBagging
    from collector.features import make_features
    rng = np.random.default_rng(10)
    base = np.round(rng.random(8) * 100, 1)
    raw = np.tile(base, (3000, 1))
    for j in range(8):                             # each dimension away once, for 5 s
        start = rng.integers(0, 2900)
        raw[start:start + 5, j] += np.round(rng.random() * 500, 1)
    Z = make_features(raw, 1, 3, 5, True)
    idle = make_features(np.tile(base, (12, 1)), 1, 3, 5, True, True)[-1:]
    assert (Z == idle).all(axis=1).mean() > 0.95
    assert KnnScorer(Z, 5).decision_function(idle)[0] == 0.0
    est = FeatureBagging(contamination=0.01, n_estimators=3, random_state=0).fit(Z)
    assert LofBaggingScorer.from_pyod(est, Z).decision_function(idle)[0] == pytest.approx(1.0)


@pytest.mark.parametrize('max_features', [1.0, 0.6])
def test_iforest_port_equals_pyod(max_features):
    from pyod.models.iforest import IForest
    Z = data(800)
    est = IForest(contamination=0.01, n_estimators=30, max_features=max_features, random_state=0).fit(Z)
    port = IforestScorer.from_pyod(est)
    Q = queries(Z)
    assert np.allclose(port.decision_function(Q), est.decision_function(Q), rtol=0, atol=1e-12)
    assert np.allclose(port.decision_function(Z), est.decision_scores_, rtol=0, atol=1e-12)


@pytest.mark.parametrize('name', ['mahalanobis', 'hbos', 'iforest', 'knn', 'ecod', 'copod', 'feature_bagging', 'loda'])
def test_the_collection_process_scores_ported_models_without_pyod(name, tmp_path):
    Z = data(400)
    fm = fit_model('system.cpu', ['a', 'b', 'c', 'd', 'e'], Z, model=name, contamination=0.01)
    assert fm.model_name == name
    path = tmp_path / 'fm.pkl'
    path.write_bytes(pickle.dumps(fm))
    code = ('import pickle, sys, numpy as np\n'
            'fm = pickle.load(open(sys.argv[1], "rb"))\n'
            'flag = fm.predict(np.full((1, 5), 9.0))[0]\n'
            'heavy = [m for m in ("pyod", "sklearn", "numba", "scipy") if m in sys.modules]\n'
            'print(flag, fm.predict_proba(np.full((1, 5), 9.0))[0, 1] > 0.99, heavy)\n')
    out = subprocess.run([sys.executable, '-c', code, str(path)], capture_output=True, text=True, check=True).stdout
    assert out.strip() == '1 True []'
