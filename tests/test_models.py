import pickle

import numpy as np
import pytest

from collector import models
from collector.models import DEEP_MODELS, MODEL_NAMES, deep_available, fit_model
from collector.scoring import FittedModel, empirical_probability, exponential_tail, minmax_probability, tail_threshold


def normal_data(rows=600, cols=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, cols))
    X[:, 2] = 3.0              # a constant column (system.cpu guest)
    X[:, 4] = 2 * X[:, 0] + 1  # a collinear one
    return X


NEEDS_TORCH = pytest.mark.skipif(not deep_available(), reason="torch is not installed (pip install '.[deep]')")


@pytest.mark.parametrize('name', [pytest.param(m, marks=NEEDS_TORCH) if m in DEEP_MODELS else m for m in MODEL_NAMES])
def test_every_model_trains_and_scores(name):
    X = normal_data()
    fm = fit_model('system.cpu', ['c'], X, model=name, contamination=0.01)
    assert fm.model_name == name, fm.info.get('fallback_from')
    normal = X[:50]
    outliers = normal * 1 + 8.0
    p_normal = fm.predict_proba(normal)[:, 1]
    p_out = fm.predict_proba(outliers)[:, 1]
    assert np.all(np.isfinite(p_normal)) and np.all((p_normal >= 0) & (p_normal <= 1))
    assert p_out.mean() > 0.95 > p_normal.mean()
    assert fm.predict(outliers).mean() > fm.predict(normal).mean() + 0.5
    # survives the trip from the training process
    again = pickle.loads(pickle.dumps(fm))
    assert np.allclose(again.decision_function(outliers), fm.decision_function(outliers))


def test_pca_port_equals_pyod():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 5)) @ rng.normal(size=(5, 5))
    scorer, scores, est = models._pca_scorer(X, 0.01)
    Y = rng.normal(size=(30, 5)) * 4
    assert np.allclose(scorer.decision_function(Y), est.decision_function(Y), rtol=1e-10, atol=1e-9)
    assert np.allclose(scorer.decision_function(X), scores)


def test_constant_and_collinear_columns_never_give_inf_or_a_dead_chart():
    # pyod PCA alone scores inf on every row here; the retired collector's charts sat at 0
    X = normal_data()
    fm = fit_model('m', ['c'], X, model='pca', contamination=0.001)
    s = fm.decision_function(np.vstack([X[:20], X[:20] + 5]))
    assert np.all(np.isfinite(s))
    p = fm.predict_proba(np.vstack([X[:200], X[:20] + 5]))[:, 1]
    assert p[:200].std() > 0.1      # it moves on normal data
    assert p[200:].min() > 0.9999   # and reads 100.00 % on clear outliers


def test_all_constant_chart_reads_zero_while_still_and_one_when_it_moves():
    # an error counter at 0 for the whole window, or a synced clock: its first move is news
    X = np.ones((300, 4)) * 7
    X[:, 2] = 0.0
    fm = fit_model('system.clock_status', list('abcd'), X, model='pca')
    assert fm.model_name == 'constant'
    assert fm.predict_proba(X[:5])[:, 1].tolist() == [0.0] * 5
    moved = X[:3].copy()
    moved[0, 2] = 0.01   # a pressure of 0.01 % where there was none
    moved[1, 0] = 8.0    # a count of 7 became 8
    moved[2, 0] = 7.0 + 1e-9   # rounding, not a move
    p = fm.predict_proba(moved)[:, 1]
    assert p.tolist() == [1.0, 1.0, 0.0]
    assert fm.predict(moved).tolist() == [1, 1, 0]
    assert [c for c, _ in fm.attribution(moved[0])] == ['c'] and fm.attribution(moved[1])[0][0] == 'a'


@pytest.mark.parametrize('model', ['mahalanobis', 'hbos', 'knn'])
def test_a_custom_model_watches_its_chart_that_never_moved_in_training(model):
    """A custom model of system.cpu|user and a failed-disk count at 0 all window: the count's
    chart is its own group with nothing moving, and was dropped from the model, so the disk
    failing was never flagged nor named. It is kept, and its first move is news, as for a
    chart model that never moved; the cpu's own wobble still flags at the usual rate."""
    from collector.features import feature_groups, make_features
    rng = np.random.default_rng(0)
    raw = np.column_stack([50 + rng.normal(size=2000).cumsum() * 0.1, np.zeros(2000)])
    X = make_features(raw, 1, 3, 5, True)
    fm = fit_model('disks_and_cpu', ['h::system.cpu|user', 'h::md.failed|failed'], X, model=model,
                   groups=feature_groups(['system.cpu', 'md.failed'], 5, True), blocks=(6, True))
    assert fm.kept.size == X.shape[1]
    later = np.column_stack([raw[-1, 0] + rng.normal(size=400).cumsum() * 0.1, np.zeros(400)])
    assert fm.predict(make_features(later, 1, 3, 5, True)).mean() < 0.02
    later[-5:, 1] = 1.0     # a disk fails and stays failed
    f = make_features(later, 1, 3, 5, True)
    assert fm.predict(f)[-5:].tolist() == [1] * 5
    assert fm.attribution(f[-5])[0][0] == 'h::md.failed|failed'


def test_a_still_chart_at_a_large_constant_ignores_rounding_and_sees_a_move():
    """A chart that sat at 1e12 (a byte total) with nothing but rounding in its last bits is a
    still chart: its rounding reads 0, as training read it, and a move of 0.1 % reads 1."""
    rng = np.random.default_rng(0)
    X = np.full((300, 2), 1e12) + rng.integers(-2, 3, (300, 2)) * np.spacing(1e12)
    fm = fit_model('disk.space', ['avail', 'used'], X)
    assert fm.model_name == 'constant'
    rounding = np.full((3, 2), 1e12) + np.array([[1.0], [-2.0], [3.0]]) * np.spacing(1e12)
    assert fm.predict_proba(rounding)[:, 1].tolist() == [0.0] * 3 and fm.predict(rounding).sum() == 0
    moved = np.array([[1e12 * 1.001, 1e12]])
    assert fm.predict_proba(moved)[0, 1] == 1.0 and fm.predict(moved)[0] == 1


def test_minmax_calibration_of_a_still_chart_reads_zero_until_it_moves():
    """``calibration: minmax`` on a chart that never moved: every training score is the same,
    so the range is empty; an unchanged row reads 0 (not 1) and a move reads 1."""
    X = np.ones((300, 3)) * 5.0
    fm = fit_model('system.clock_status', list('abc'), X, calibration='minmax')
    assert fm.predict_proba(X[:5])[:, 1].tolist() == [0.0] * 5
    moved = X[:1].copy()
    moved[0, 1] = 6.0
    assert fm.predict_proba(moved)[0, 1] == 1.0


def test_the_log_excess_of_half_the_training_steps_is_the_floor():
    """The excess (what the flag policy reads to tell a decay) is measured from the training
    scores' median: half the training steps read as no excess at all."""
    from collector.scoring import EXCESS_FLOOR
    rng = np.random.default_rng(3)
    X = rng.normal(size=(5000, 3))
    fm = fit_model('m', list('abc'), X)
    s = fm.decision_function(X)
    assert abs(np.mean(fm.excess(s) == EXCESS_FLOOR) - 0.5) < 0.01
    assert fm.median == pytest.approx(np.median(s), rel=1e-2)


def test_a_value_near_floats_limit_is_named_as_the_driver():
    """1e308 in one dimension (an agent's odd value) overflows the squares of the shares: the
    flag's log line must still name the dimension, not say that none stands out."""
    rng = np.random.default_rng(3)
    fm = fit_model('m', list('abc'), rng.normal(size=(500, 3)))
    for value in (1e308, np.inf):
        row = np.array([0.1, value, -0.2])
        drivers = fm.attribution(row)
        assert drivers and drivers[0][0] == 'b' and drivers[0][1] > 0.99, drivers


def test_calibration_flags_share_matches_contamination():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(20000, 4))
    fm = fit_model('m', ['c'], X, model='hbos', contamination=0.01)
    fresh = rng.normal(size=(20000, 4))
    flagged = fm.predict(fresh).mean()
    assert 0.005 < flagged < 0.02
    p = fm.predict_proba(fresh)[:, 1]
    # probability means "more unusual than that share of training"
    assert abs((p > 0.9).mean() - 0.1) < 0.02


def test_tail_threshold_keeps_the_contamination_rate_on_normal_data():
    # at contamination 0.001 the threshold comes from the fitted tail, not the 99.9th percentile
    rng = np.random.default_rng(3)
    fm = fit_model('m', ['c'], rng.normal(size=(20000, 4)), model='mahalanobis', contamination=0.001,
                   calibration='tail')
    assert fm.tail is not None
    fresh = rng.normal(size=(100000, 4))
    assert 0.0004 < fm.predict(fresh).mean() < 0.0025
    p = fm.predict_proba(fresh)[:, 1]
    assert abs((p > 0.999).mean() - fm.predict(fresh).mean()) < 1e-4   # flag <=> probability above 1 - contamination


def test_tail_calibration_is_not_lifted_by_an_unflagged_incident_in_training():
    """calibration: tail. An incident in 0.3 % of the training window: the empirical 99.9th
    percentile (the default threshold) is that incident and a repeat goes unflagged; the tail
    fitted to the body still flags it."""
    rng = np.random.default_rng(5)
    train = rng.normal(size=(20000, 4))
    train[10000:10060] += 6.0
    fm = fit_model('m', ['c'], train, model='mahalanobis', contamination=0.001, calibration='tail')
    empirical = np.quantile(fm.decision_function(train), 0.999)
    assert fit_model('m', ['c'], train, model='mahalanobis', contamination=0.001).threshold == pytest.approx(empirical)
    repeat = rng.normal(size=(60, 4)) + 6.0
    s = fm.decision_function(repeat)
    assert (s > empirical).mean() < 0.5          # the empirical threshold would miss most of it
    assert fm.predict(repeat).mean() > 0.95      # the fitted one flags it
    # and a score just above that threshold reads above 1 - contamination, as the flag says
    just_above = fm.threshold * np.array([1.001, 1.05])
    assert fm.exceeds(just_above).all() and (fm.probability(just_above) > 0.999).all()
    assert fm.predict(rng.normal(size=(50000, 4))).mean() < 0.003


def test_exponential_tail_of_exponential_scores():
    s = np.random.default_rng(0).exponential(scale=2.0, size=200000)
    pts = np.quantile(s, np.linspace(0, 1, 1001))
    start, scale = exponential_tail(pts)
    assert abs(scale - 2.0) < 0.1 and abs(start - 2.0 * np.log(100)) < 0.2
    p = empirical_probability(np.array([start, start + scale * np.log(10), 1e6]), pts, (start, scale))
    assert np.allclose(p, [0.99, 0.999, 1.0], atol=1e-3)
    # tied body (a chart that seldom moves): no tail, the empirical distribution stays
    assert exponential_tail(np.r_[np.zeros(995), np.arange(1, 7.0)]) is None
    # too few training scores for a 99th percentile worth extrapolating from
    assert exponential_tail(np.quantile(s[:500], np.linspace(0, 1, 500))) is None


def test_bounded_scores_keep_a_reachable_threshold():
    # scores that end sooner than an exponential tail (iforest's are bounded): the tail would
    # put the threshold beyond every possible score; the empirical quantile is used instead
    s = np.random.default_rng(1).uniform(size=100000)
    pts = np.quantile(s, np.linspace(0, 1, 1001))
    tail = exponential_tail(pts)
    assert tail[0] + tail[1] * np.log(10) > 1.0
    t = tail_threshold(s, 0.001, tail)
    assert abs(t - 0.999) < 1e-3
    assert empirical_probability(np.array([0.9995]), pts, tail)[0] > 0.999


def test_probability_functions():
    pts = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    assert empirical_probability(np.array([-1.0, 0.0, 2.0, 4.0, 9.0]), pts).tolist() == [0.0, 0.0, 0.4, 0.8, 1.0]
    assert minmax_probability(np.array([0.0, 5.0, 10.0, 20.0]), 0.0, 10.0).tolist() == [0.0, 0.5, 1.0, 1.0]


def test_minmax_calibration_option():
    X = normal_data()
    fm = fit_model('m', ['c'], X, model='hbos', calibration='minmax')
    s = fm.decision_function(X)
    p = fm.predict_proba(X)[:, 1]
    assert np.allclose(p, np.clip((s - s.min()) / (s.max() - s.min()), 0, 1))


def test_a_failing_model_falls_back_and_says_so(monkeypatch):
    real = models._fit_scorer

    def broken(name, X, contamination, *args):
        if name == 'iforest':
            raise ValueError('simulated failure')
        return real(name, X, contamination, *args)
    monkeypatch.setattr(models, '_fit_scorer', broken)
    fm = fit_model('m', ['c'], normal_data(), model='iforest')
    assert fm.model_name == 'hbos'
    assert 'simulated failure' in fm.info['fallback_from'][0]


def test_train_max_n_caps_rows():
    fm = fit_model('m', ['c'], normal_data(rows=3000), model='hbos', max_rows=500)
    assert fm.info['rows'] == 500 and fm.info['sampled_from'] == 3000
    assert 'sampled_from' not in fit_model('m', ['c'], normal_data(rows=400), model='hbos', max_rows=500).info


def test_features_that_overflow_are_named_as_such_not_as_a_model_failure():
    """Values near float64's limit overflow the differences and averages; the error said
    'no feature varies' (mahalanobis) and 'range [nan, nan]' (hbos)."""
    from collector.features import make_features
    huge = normal_data(rows=300) * 1e306 + 5e307
    with np.errstate(all='ignore'):
        X = make_features(huge, 1, 3, 5, True)
    with pytest.raises(ValueError, match='not finite.*beyond about 1e154'):
        fit_model('m', ['c'], X)
    fit_model('m', ['c'], make_features(normal_data(rows=300) * 1e6, 1, 3, 5, True))   # large but fine
    # one read of 1e300 in the window: its differences are finite, their squares are not
    once = normal_data(rows=300)
    once[100, 0] = 1e300
    with pytest.raises(ValueError, match='spread is not finite.*beyond about 1e154'):
        fit_model('m', ['c'], make_features(once, 1, 3, 5, True))


def test_nonfinite_scores_are_replaced():
    class Bad:
        def decision_function(self, Z):
            return np.array([np.inf, np.nan, 1.0])
    fm = FittedModel('m', ['a'], [0], [0.0], [1.0], Bad(), np.linspace(0, 2, 100), 0.01)
    s = fm.decision_function(np.zeros((3, 1)))
    assert np.all(np.isfinite(s)) and s[0] > fm.threshold
    # beyond every training score: as unusual as can be, not merely tied with the worst
    assert fm.probability(s[:2]).tolist() == [1.0, 1.0] and fm.exceeds(s[:2]).all()


def test_scale_floor_keeps_a_quiet_dimension_from_shouting():
    rng = np.random.default_rng(2)
    X = np.column_stack([rng.normal(0, 10, 3000), rng.normal(0, 10, 3000), rng.normal(0, 0.01, 3000),
                         np.zeros(3000)])
    kept, mean, scale = models.feature_scale(X, groups=[0, 0, 0, 0])
    # the barely moving and the constant dimension get the chart's median scale, not their own
    assert kept.tolist() == [0, 1, 2, 3]
    assert scale[2] == pytest.approx(np.median(X[:, :3].std(axis=0))) and scale[3] == scale[2]
    fm = fit_model('system.cpu', ['c'], X, model='pca', contamination=0.01, groups=[0, 0, 0, 0])
    wobble = X[:5].copy()
    wobble[:, 2] += 0.2          # 20 of its own deviations, 0.02 of the chart's
    assert fm.predict(wobble).sum() == 0
    moved = X[:5].copy()
    moved[:, 3] = 60.0           # a dimension that never moved now moves a lot
    assert fm.predict(moved).min() == 1
    # a group where nothing moves (a custom model's still chart) is kept, in thousandths of its
    # constant's size (at least 1); one that moves keeps its own scales
    kept, _, scale = models.feature_scale(np.column_stack([X[:, :2], np.full(3000, 5.0)]), groups=[0, 0, 1])
    assert kept.tolist() == [0, 1, 2] and scale[2] == pytest.approx(models.STILL_GROUP_UNIT * 5.0)
    assert scale[0] == pytest.approx(X[:, 0].std())


def test_a_level_that_moves_and_stays_is_still_flagged_with_level_features():
    from collector.features import make_features
    rng = np.random.default_rng(4)
    train = 50 + rng.normal(0, 1, (4000, 2))
    after = 50 + rng.normal(0, 1, (200, 2))
    after[50:, 0] += 30           # e.g. a CPU pinned from step 50 on
    for levels, flagged_late in ((True, True), (False, False)):
        fm = fit_model('m', ['a', 'b'], make_features(train, 1, 3, 5, levels), model='pca', contamination=0.001)
        late = fm.predict(make_features(np.vstack([train[-8:], after]), 1, 3, 5, levels))[8 + 100:]
        # differences see only the jump; the level block keeps seeing it
        assert (late.mean() > 0.9) == flagged_late


def test_squash_features_keeps_order_and_leaves_the_normal_range_alone():
    from collector.scoring import squash_features
    z = np.array([[-1000.0, -8.0, -7.0, 0.5, 6.9, 7.0, 8.0, 1000.0, np.nan]])
    knee = np.full(z.shape[1], 7.0)
    out = squash_features(z, knee)[0]
    assert out[2:6].tolist() == z[0, 2:6].tolist()
    assert out[6] == pytest.approx(7 + np.log(2)) and out[1] == -out[6]
    assert out[7] == pytest.approx(7 + np.log1p(993)) and out[0] == -out[7]
    assert np.all(np.diff(out[:8]) > 0) and np.isnan(out[8])
    assert squash_features(z, np.full(z.shape[1], np.inf))[0, :8].tolist() == z[0, :8].tolist()
    assert squash_features(z, None) is z


def test_level_squash_bounds_a_drifted_level_and_still_flags_it():
    from collector.features import make_features
    rng = np.random.default_rng(6)
    train = 50 + rng.normal(0, 1, (4000, 3))
    X = make_features(train, 1, 3, 5, True)
    plain = fit_model('m', ['a', 'b', 'c'], X, contamination=0.001, blocks=(6, True))
    squashed = fit_model('m', ['a', 'b', 'c'], X, contamination=0.001, blocks=(6, True), level_squash=7)
    # only the level block (the last 3 features) is squashed
    assert plain.knee is None and squashed.knee.tolist() == [np.inf] * 18 + [7.0] * 3
    assert fit_model('m', ['a', 'b', 'c'], X, blocks=(6, False), level_squash=7).knee is None
    # a dimension that drifted 200 deviations away and sits still there: no change, only a level
    drifted = train[-40:].copy()
    drifted[:, 0] += 200
    x = make_features(drifted, 1, 3, 5, True)[-1:]
    s_plain, s_squashed = plain.decision_function(x)[0], squashed.decision_function(x)[0]
    assert s_squashed < s_plain / 100                       # it no longer drowns every other feature
    assert squashed.predict(x)[0] == 1 and squashed.predict_proba(x)[0, 1] == 1.0   # still news
    # training that went past the knee itself is scored as the live rows are: squashed
    wild = train.copy()
    wild[1000:1010, 2] += 200   # 20 deviations of its own (inflated) spread
    Xw = make_features(wild, 1, 3, 5, True)
    fw = fit_model('m', ['a', 'b', 'c'], Xw, contamination=0.001, blocks=(6, True), level_squash=7)
    assert np.allclose(np.quantile(fw.decision_function(Xw), 0.999), fw.threshold, rtol=1e-9)
    # a spike small enough to leave the smoothed level inside the knee scores as before
    spike = train[-40:].copy()
    spike[-1, 1] += 10
    x = make_features(spike, 1, 3, 5, True)[-1:]
    assert squashed.decision_function(x)[0] == pytest.approx(plain.decision_function(x)[0], rel=1e-6)
    assert squashed.predict(x)[0] == 1


def test_an_ensemble_trains_scores_and_names_its_members():
    X = normal_data()
    fm = fit_model('m', ['c'], X, model='pca+hbos', contamination=0.01)
    assert fm.model_name == 'pca+hbos'
    outliers = X[:50] + 8.0
    assert fm.predict_proba(outliers)[:, 1].mean() > 0.95 > fm.predict_proba(X[:50])[:, 1].mean()
    assert 0.003 < fm.predict(normal_data(seed=1)).mean() < 0.03
    again = pickle.loads(pickle.dumps(fm))
    assert np.allclose(again.decision_function(outliers), fm.decision_function(outliers))


def test_gmm_custom_model_sees_a_hot_cpu_that_is_not_busy():
    """The Raspberry Pi case: CPU temperature follows load; hot while idle is the anomaly,
    though neither dimension alone leaves its training range."""
    from collector.features import feature_groups, make_features
    rng = np.random.default_rng(11)
    n = 6000
    load = np.clip(np.repeat(rng.uniform(0, 100, n // 60), 60) + rng.normal(0, 2, n), 0, 100)
    temp = 40 + 0.3 * load + rng.normal(0, 0.5, n)          # 40 C idle .. 70 C busy
    train = np.column_stack([load, temp])
    groups = feature_groups(['system.cpu', 'sensors.temp'], 5, True)
    fm = fit_model('cpu_temp', ['h::system.cpu|user', 'h::sensors.temp|cpu'], make_features(train, 1, 3, 5, True),
                   model='gmm', contamination=0.001, groups=groups)
    assert fm.model_name == 'gmm'

    def steady(load_v, temp_v):
        x = np.column_stack([load_v + rng.normal(0, 2, 60), temp_v + rng.normal(0, 0.5, 60)])
        return fm.predict(make_features(x, 1, 3, 5, True))[-20:].mean()
    assert steady(90, 67) < 0.2         # busy and hot: normal
    assert steady(20, 46) < 0.2         # idle and cool: normal
    assert steady(20, 66) > 0.9         # idle but hot: the fan stopped
    drivers = fm.attribution(make_features(np.column_stack([np.full(20, 20.0), np.full(20, 66.0)]), 1, 3, 5, True)[-1])
    assert drivers[0][0] == 'h::sensors.temp|cpu'


@NEEDS_TORCH
def test_lstm_reads_the_lag_blocks_as_a_sequence():
    from collector.deep import sequences
    from collector.features import make_features
    # layout: cur, lag1, lag2 change blocks, then the level block; 2 dims
    row = np.array([[1, 10, 2, 20, 3, 30, 7, 70]], dtype=float)
    seq = sequences(row, 3, True)
    assert seq.shape == (1, 3, 4)
    assert seq[0].tolist() == [[3, 30, 7, 70], [2, 20, 7, 70], [1, 10, 7, 70]]   # oldest first, level beside
    # a rhythm the model learnt, and the same values out of order
    t = np.arange(6000)
    x = np.column_stack([np.sin(t / 3.0), np.cos(t / 3.0)]) + np.random.default_rng(0).normal(0, 0.05, (6000, 2))
    X = make_features(x, 0, 1, 5, True)
    fm = fit_model('m', ['a', 'b'], X, model='lstm', contamination=0.01, blocks=(6, True))
    assert fm.model_name == 'lstm', fm.info.get('fallback_from')
    normal = fm.predict(X[:500]).mean()
    shuffled = X[:500].copy()
    shuffled[:, :12] = shuffled[:, :12].reshape(500, 6, 2)[:, ::-1, :].reshape(500, 12)   # time reversed
    assert normal < 0.05 and fm.predict(shuffled).mean() > 0.5
    again = pickle.loads(pickle.dumps(fm))
    assert np.allclose(again.decision_function(shuffled), fm.decision_function(shuffled))


@NEEDS_TORCH
def test_lstm_without_lags_or_levels_scores_one_row_and_answers_pyod_s_api():
    """lags_n 0 and no level block: one step per sequence, reversed, kept a negative stride
    torch refused, so every step's scoring failed (after a fit that passed). pyod's
    predict_proba also needs the classes fit sets."""
    from collector.deep import LstmDetector
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 3))
    fm = fit_model('m', list('abc'), X, model='lstm', blocks=(1, False))
    assert fm.model_name == 'lstm', fm.info.get('fallback_from')
    far = np.array([[40.0, 0.0, 0.0]])
    assert fm.predict(np.ascontiguousarray(far))[0] == 1 and fm.predict(X[:1].copy(order='C'))[0] == 0
    est = LstmDetector(contamination=0.01, epochs=1).fit(X)
    p = est.predict_proba(far)
    assert p.shape == (1, 2) and 0.0 <= p[0, 1] <= 1.0


@NEEDS_TORCH
def test_auto_encoder_trains_on_a_window_under_one_batch():
    """pyod's deep models train on whole batches (256 rows): a window of 200 trained on nothing,
    failed, and fell back to hbos, an ensemble's mahalanobis with it."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    for name in ('auto_encoder', 'mahalanobis+auto_encoder'):
        fm = fit_model('m', list('abc'), X, model=name)
        assert fm.model_name == name, fm.info.get('fallback_from')


def test_deep_models_without_torch_are_a_config_error(monkeypatch):
    from collector import config
    monkeypatch.setattr(config, 'deep_available', lambda: False)
    with pytest.raises(config.ConfigError) as e:
        config.parse_job_config({'model': 'pca+lstm'})
    assert "needs torch" in str(e.value)


def test_ledoit_wolf_shrinkage_equals_scikit_learn():
    from sklearn.covariance import ledoit_wolf
    rng = np.random.default_rng(11)
    for n, p in [(40, 10), (500, 30), (20, 60), (5000, 4)]:
        Z = rng.normal(size=(n, p)) @ rng.normal(size=(p, p))
        Z -= Z.mean(axis=0)
        expected = ledoit_wolf(Z, assume_centered=True)[1]
        assert models.ledoit_wolf_shrinkage(Z, Z.T @ Z / n) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_mahalanobis_sees_a_broken_correlation_that_each_column_alone_calls_normal():
    # two dimensions that always move together (used and free memory): one moving without
    # the other is unusual although each value on its own is well inside its training range
    rng = np.random.default_rng(2)
    a = rng.normal(size=5000)
    X = np.column_stack([a, -a + 0.05 * rng.normal(size=5000), rng.normal(size=5000)])
    fm = fit_model('m', ['c'], X, model='mahalanobis', contamination=0.001)
    together, apart = np.array([[1.5, -1.5, 0.0]]), np.array([[1.5, 1.5, 0.0]])
    assert fm.predict_proba(together)[0, 1] < 0.9
    assert fm.predict_proba(apart)[0, 1] > 0.999 and fm.predict(apart)[0] == 1
    # a big move along the direction that always varies (CPU from half to full) is flagged too
    assert fm.predict(np.array([[6.0, -6.0, 0.0]]))[0] == 1
    # the weight of the direction that hardly varied is capped (VARIANCE_FLOOR): finite scores
    assert np.all(np.isfinite(fm.decision_function(np.array([[0.0, 0.0, 50.0], [1e3, 1e3, 0.0]]))))
    assert fm.scorer.inv_var.max() <= fm.scorer.inv_var.min() * (1.0 / models.VARIANCE_FLOOR + 1.0)


def test_mahalanobis_scores_the_shrunk_covariance_distance_plus_the_plain_one():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 5)) @ (np.eye(5) + 0.3 * rng.normal(size=(5, 5)))
    fm = fit_model('m', ['c'], X, model='mahalanobis')
    Z = fm.transform(X)
    S = Z.T @ Z / len(Z)
    delta = models.ledoit_wolf_shrinkage(Z, S)
    mu = np.trace(S) / 5
    C = (1 - delta) * S + delta * mu * np.eye(5)
    assert np.linalg.eigvalsh(C).min() > models.VARIANCE_FLOOR * mu   # no floor at work: the plain formula
    Y = rng.normal(size=(20, 5)) * 3
    Zy = fm.transform(Y)
    expected = np.einsum('ij,jk,ik->i', Zy, np.linalg.inv(C), Zy) + (Zy * Zy).sum(axis=1) / mu
    assert np.allclose(fm.decision_function(Y), expected, rtol=1e-9)


def test_mahalanobis_keeps_still_features_as_a_diagonal_equal_to_the_full_matrix():
    rng = np.random.default_rng(8)
    X = rng.normal(size=(400, 6)) @ (np.eye(6) + 0.5 * rng.normal(size=(6, 6)))
    X[:, [1, 4]] = 0.0     # two dimensions that sat at 0 (kept: their chart has a scale)
    fm = fit_model('m', ['c'], X, model='mahalanobis')
    assert sorted(fm.scorer.still.tolist()) == [1, 4] and fm.scorer.components.shape == (4, 4)
    Z = fm.transform(X)
    S = Z.T @ Z / len(Z)
    delta = models.ledoit_wolf_shrinkage(Z, S)
    mu = np.trace(S) / 6
    w, V = np.linalg.eigh(S)    # the full 6 x 6 decomposition, floored as the model does
    weight = 1.0 / np.maximum((1 - delta) * np.maximum(w, 0) + delta * mu, models.VARIANCE_FLOOR * mu) + 1.0 / mu
    Y = rng.normal(size=(30, 6)) * 2
    P = fm.transform(Y) @ V
    assert np.allclose(fm.decision_function(Y), (P * P) @ weight, rtol=1e-9)


def test_log_excess_reads_a_decay_whatever_the_probability_says():
    """The flag policy sees a score coming down even where the probability is stuck at 1."""
    from collector.scoring import log_excess
    median, threshold = 10.0, 110.0
    e = log_excess([110.0, 10.0 + 100.0 * np.e, 1e6, 1e5, 5.0, np.inf, np.nan], median, threshold)
    assert e[0] == pytest.approx(0.0, abs=1e-6) and e[1] == pytest.approx(1.0)   # at the threshold, e times as far
    assert e[2] > e[3] > 0                                                 # beyond training: still ordered
    assert e[4] == pytest.approx(np.log(1e-6)) and np.isfinite(e).all()    # at or under the median: floored
    # a still chart (threshold = median): no division by zero, and rounding is not an excess
    still = log_excess([1000.0, 1000.0 * (1 + 1e-12), 1001.0], 1000.0, 1000.0)
    assert still[0] == still[1] == pytest.approx(np.log(1e-6)) and still[2] > 10
    rng = np.random.default_rng(3)
    fm = fit_model('m', ['a', 'b'], rng.normal(size=(500, 2)))
    assert fm.excess(fm.threshold) == pytest.approx(0.0, abs=1e-6)


def test_despike_leaves_a_gauge_that_flips_every_second_as_trained():
    """A gauge that reads 1, 2, 1, 2 has no blips to take out: scored with ``despike`` its
    steps cross the threshold no more often than as read (were its history shifted by a
    sample, the change and lag blocks would disagree in a way training never showed)."""
    from collector.config import parse_job_config
    from collector.features import feature_groups
    rng = np.random.default_rng(8)

    def gauge(n):
        return np.column_stack([np.arange(n) % 2 + 1.0, np.round(rng.normal(50, 3, n))])

    cfg, off = parse_job_config({}), parse_job_config({'despike': False})
    train, later = gauge(6000), gauge(8000)
    fm = fit_model('m', [], cfg.training_features(train), model=cfg.model, contamination=cfg.contamination,
                   groups=feature_groups([0, 1], cfg.lags_n, cfg.level_features),
                   blocks=(cfg.lags_n + 1, cfg.level_features))
    shares = [fm.exceeds(fm.decision_function(c.features(np.vstack([train[-(c.rows_needed - 1):], later])))).mean()
              for c in (cfg, off)]
    assert shares[0] <= max(2 * shares[1], 0.002), shares


@pytest.mark.parametrize('model', ['mahalanobis', 'pca', 'mahalanobis+knn', 'loda'])
def test_one_misread_in_a_four_hour_window_does_not_hide_a_later_move(model):
    """A bytes/s chart at 1e6 with 1e4 of noise, one read of its 4-hour window at 1e9 (a
    counter misread): a move of 30 times its noise is still above the threshold, as in the
    same window without the misread."""
    from collector.config import parse_job_config
    from collector.features import feature_groups
    cfg = parse_job_config({})
    n = 14400
    x = 1e6 + np.random.default_rng(9).normal(size=(n + 100, 3)) * 1e4
    x[n + 40:, 0] += 3e5
    groups = feature_groups([('h', 'net.eth0')] * 3, cfg.lags_n, cfg.level_features)
    for misread in (None, 1e9, 1.8e13):
        y = x.copy()
        if misread:
            y[5000, 0] = misread
        fm = fit_model('net.eth0', ['received', 'sent', 'errors'], cfg.training_features(y[:n]), model=model,
                       groups=groups, blocks=(cfg.lags_n + 1, cfg.level_features))
        scores = fm.decision_function(cfg.features(y[n - cfg.rows_needed + 1:]))
        assert fm.exceeds(scores[40:]).all(), misread
        assert fm.exceeds(scores[:40]).sum() <= 1, misread


def _pulled_in(X):
    """The rows the moment models are fitted on (``models._fit_scorer``'s ``fit_on``)."""
    return models.pulled_in(X, models.outlier_bounds(X))


def test_far_misreads_are_pulled_in_only_where_they_lie_far_beyond_a_long_windows_range():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(20000, 3))
    X[:, 2] = 0.0
    X[[7, 9, 11], 2] = 1.0           # an error counter that ticked three times
    X[100, 0] = 1e9                  # one misread
    W = _pulled_in(X)
    assert W[100, 0] < 100 and np.array_equal(np.delete(W[:, 0], 100), np.delete(X[:, 0], 100))
    assert np.array_equal(W[:, 1:], X[:, 1:])
    short = X[:9000]                 # 2.5 hours of one-second steps: its extremes are its range
    assert _pulled_in(short) is short


def test_loda_puts_about_contamination_of_later_normal_rows_above_its_threshold():
    """loda's training rows never fall outside its histograms, later normal rows often do:
    a threshold taken from its own rows' scores put 1-2 % of new normal rows above it at
    ``contamination: 0.001``."""
    from collector.config import parse_job_config
    cfg = parse_job_config({'model': 'loda'})
    rng = np.random.default_rng(10)
    x, e = np.zeros((10000, 4)), rng.normal(size=(10000, 4))
    for t in range(1, 10000):
        x[t] = 0.7 * x[t - 1] + e[t]
    fm = fit_model('system.x', list('abcd'), cfg.training_features(x[:4000]), model='loda')
    later = fm.decision_function(cfg.features(x[4000 - cfg.rows_needed + 1:]))
    assert fm.model_name == 'loda' and fm.exceeds(later).mean() < 0.003
    assert 0.002 < (fm.rank_probability(later) >= 0.99).mean() < 0.02
    # a chart that trends through its window: a later shift of 3 deviations is above the
    # threshold most of the time (the window's halves scored by each other: 18 steps in 60)
    t = np.arange(3900)
    y = np.column_stack([0.002 * t + rng.normal(0, 1, t.size), rng.normal(0, 1, t.size)])
    y[3700:3760, 1] += 3
    fm = fit_model('system.y', list('ab'), cfg.training_features(y[:3600]), model='loda')
    later = fm.decision_function(cfg.features(y[3600 - cfg.rows_needed + 1:]))
    assert fm.exceeds(later[100:160]).sum() >= 30 and fm.exceeds(later[:100]).sum() <= 1


def test_the_drivers_of_a_flag_are_weighed_as_the_squashed_model_scores_them():
    """With ``level_squash`` a level far from training counts for a few deviations in the
    score; the dimension named as the driver is the one that weighs most there (a jump
    now), not the far level the score hardly feels."""
    from collector.config import parse_job_config
    from collector.features import feature_groups
    cfg = parse_job_config({'level_squash': 3})
    x = np.random.default_rng(5).normal(size=(3000, 2))
    fm = fit_model('system.x', ['h::system.x|far', 'h::system.x|jump'], cfg.training_features(x),
                   groups=feature_groups([('h', 'system.x')] * 2, cfg.lags_n, True),
                   blocks=(cfg.lags_n + 1, True), level_squash=cfg.squash)
    now = x[-cfg.rows_needed:].copy()
    now[:, 0] += 1000          # a level long moved: its changes are over
    now[-1, 1] += 40           # a jump in this step
    drivers = fm.attribution(cfg.features(now))
    assert drivers[0][0] == 'h::system.x|jump', drivers


def test_far_misreads_are_pulled_in_the_same_whichever_features_are_looked_at():
    """Only features with a value far from their mean are looked at closely (the quantiles
    cost more than the fit); heavy tails, bursts and misreads come out as if every feature were."""
    rng = np.random.default_rng(0)
    for X in (rng.standard_cauchy(size=(12000, 4)), rng.pareto(1.5, size=(12000, 4)),
              (rng.random((12000, 4)) < 0.0005) * rng.exponential(1e6, (12000, 4)) + rng.normal(size=(12000, 4))):
        X[[10, 20], [1, 3]] = [1e9, -1e7]
        lo, hi = np.quantile(X, [0.001, 0.999], axis=0)
        reach = 10 * (hi - lo)
        assert np.array_equal(_pulled_in(X), np.clip(X, lo - reach, hi + reach))


@pytest.mark.parametrize('model', ['hbos', 'iforest'])
def test_hbos_and_iforest_flag_a_dimension_that_sat_still_all_window_when_it_moves(model):
    """A chart's quiet dimension (system.cpu's steal at 0 for the whole window) that starts
    moving is news to every model, hbos too: it is also what a model whose fit fails falls
    back to. An isolation forest splits on no feature that was constant in training, and
    never flagged it."""
    from collector.config import parse_job_config
    from collector.features import feature_groups
    cfg = parse_job_config({})
    rng = np.random.default_rng(3)
    raw = np.column_stack([np.clip(rng.normal(20, 3, 3000), 0, 100), np.zeros(3000)])
    groups = feature_groups([('h', 'system.cpu')] * 2, cfg.lags_n, cfg.level_features)
    fm = fit_model('system.cpu', ['h::system.cpu|user', 'h::system.cpu|steal'], cfg.training_features(raw),
                   model=model, groups=groups, blocks=(cfg.lags_n + 1, cfg.level_features))
    assert fm.model_name == model
    live = raw[-cfg.rows_needed:].copy()
    assert fm.predict(cfg.features(live)[-1:])[0] == 0
    live[-3:, 1] = 40.0
    assert fm.predict(cfg.features(live)[-1:])[0] == 1
    live[-cfg.rows_needed:, 1] = 40.0   # and held there
    assert fm.predict(cfg.features(live)[-1:])[0] == 1


def test_a_chart_of_sixty_dimensions_reads_later_normal_steps_as_ordinary_over_a_longer_window():
    """A large server's wide chart (system.interrupts of 60 lines, an apps.* chart) whose
    features are under 15 % of its rows: fitted on its rows and scored on them, the threshold
    sat under 5 % of later normal steps and their median read 88 %; from 400 features the
    rows are scored by fits that did not see them, as a wider chart's are."""
    from collector.config import parse_job_config
    from collector.features import feature_groups
    cfg = parse_job_config({})
    rng = np.random.default_rng(0)
    rows, dims = 3000, 60
    noise = rng.normal(0, 1, (rows + 2000, dims))
    x = np.zeros_like(noise)
    for t in range(1, len(x)):   # each line's rate wanders (AR(1)) around its level
        x[t] = 0.9 * x[t - 1] + noise[t]
    x += 50
    X = cfg.training_features(x[:rows])
    assert X.shape[1] < 0.15 * X.shape[0]
    fm = fit_model('system.interrupts', ['h::system.interrupts|{}'.format(k) for k in range(dims)], X,
                   groups=feature_groups([0] * dims, cfg.lags_n, cfg.level_features),
                   blocks=(cfg.lags_n + 1, cfg.level_features))
    later = fm.decision_function(cfg.features(x[rows:]))
    assert np.median(fm.rank_probability(later)) < 0.65 and fm.exceeds(later).mean() < 0.005


@pytest.mark.parametrize('rows, dims', [(300, 50), (900, 100), (3600, 200)])
def test_a_wide_chart_on_a_short_window_flags_about_contamination_of_later_normal_steps(rows, dims):
    """Many features against few rows: each training row's own distance under a covariance
    fitted on it is bounded by the rows, a later normal row's is not. Taken from the rows' own
    scores, the threshold was under 79 %, 71 % and 47 % of these later normal steps, and the
    charts were flagged at 93 %, 96 % and 78 % of them."""
    from collector.config import parse_job_config
    from collector.flags import n_of_m
    cfg = parse_job_config({})
    rng = np.random.default_rng(3)
    scale = rng.uniform(0.1, 100, dims)
    x = np.abs(rng.normal(0, 1, (rows + 1000, dims)) * scale + 3 * scale)
    fm = fit_model('system.interrupts', ['h::system.interrupts|{}'.format(k) for k in range(dims)],
                   cfg.training_features(x[:rows]), blocks=(cfg.lags_n + 1, cfg.level_features))
    later = fm.decision_function(cfg.features(x[rows - cfg.rows_needed + 1:]))
    rank = fm.rank_probability(later)
    flags = n_of_m(fm.exceeds(later), 2, 3, rank >= 0.99, rank, 30, 20, fm.excess(later))
    assert fm.model_name == 'mahalanobis'
    assert fm.exceeds(later).mean() < 0.02 and (rank >= 0.99).mean() < 0.05
    assert flags.mean() < 0.01
    # and a chart of a few dimensions over the default window keeps its rows' own scores
    small = rng.normal(size=(3000, 4))
    X = cfg.training_features(small)
    fm = fit_model('system.cpu', list('abcd'), X)
    assert np.array_equal(np.sort(fm.decision_function(X)), np.sort(fm.scorer.decision_function(fm.standardized(X))))
    assert fm.points[-1] == pytest.approx(fm.decision_function(X).max())


def test_a_wide_charts_covariance_is_fitted_in_blocks_of_whole_dimensions():
    """One covariance over all of a 5000-dimension chart's 35,000 features is 10 GB (the
    training was killed, and no chart got a model); in blocks of at most 1024 features each
    dimension's features (its changes, lags and level) stay together, so its own lags' and its
    block's correlations are still seen."""
    from collector.models import MAHALANOBIS_BLOCK_FEATURES, dimension_blocks
    dims, width = 300, 7
    columns = np.tile(np.arange(dims), width)   # the features' layout: a block of columns at a time
    blocks = dimension_blocks(columns)
    assert len(blocks) == 3 and max(b.size for b in blocks) <= MAHALANOBIS_BLOCK_FEATURES
    assert np.array_equal(np.sort(np.concatenate(blocks)), np.arange(columns.size))
    owners = [set(columns[b]) for b in blocks]
    assert all(not (a & b) for i, a in enumerate(owners) for b in owners[i + 1:])   # whole dimensions each
    assert [len(dimension_blocks(np.tile(np.arange(d), width))) for d in (10, 146, 147)] == [1, 1, 2]
    # (features left out as constant leave a dimension fewer: still whole)
    assert all(set(columns[b]) for b in dimension_blocks(columns[columns % 5 != 0]))


def test_a_wide_chart_fitted_in_blocks_reads_normal_steps_as_ordinary_and_flags_one_line_that_moves(monkeypatch):
    """As well as one covariance over all of its features would, or better."""
    import collector.models as models
    from collector.config import parse_job_config
    from collector.scoring import BlockedScorer, MahalanobisScorer
    cfg = parse_job_config({})
    rng = np.random.default_rng(4)
    rows, dims = 3000, 200
    x = rng.normal(0, 1, (rows + 600, dims)) + 50
    X = cfg.training_features(x[:rows])
    columns = ['h::apps.cpu|{}'.format(k) for k in range(dims)]
    fm = fit_model('apps.cpu', columns, X, blocks=(cfg.lags_n + 1, cfg.level_features))
    monkeypatch.setattr(models, 'MAHALANOBIS_BLOCK_FEATURES', 100000)
    whole = fit_model('apps.cpu', columns, X, blocks=(cfg.lags_n + 1, cfg.level_features))
    assert isinstance(fm.scorer, BlockedScorer) and fm.model_name == 'mahalanobis'
    assert isinstance(whole.scorer, MahalanobisScorer)
    later = x[rows - cfg.rows_needed + 1:].copy()
    assert fm.exceeds(fm.decision_function(cfg.features(later))).mean() < 0.01
    for k in (3, 150):   # a process group in the first block, one in the last
        flagged = []
        for shift in (8, 12):   # standard deviations
            moved = later.copy()
            moved[-300:, k] += shift
            flagged.append([m.exceeds(m.decision_function(cfg.features(moved)))[-300:].mean() for m in (fm, whole)])
        assert flagged[0][0] >= flagged[0][1] - 0.05 and flagged[1][0] > 0.95, flagged


def test_a_wide_chart_with_a_block_of_idle_dimensions_keeps_its_model_and_its_scale(monkeypatch):
    """A run of idle dimensions (interrupt lines, process groups that did not run) fills a block
    of its own: with none moving, the whole chart fell back to hbos ('no feature varies'); with
    one line ticking now and then, that block's own tiny mean variance weighed its next tick
    ten times over the threshold, where one covariance over the chart reads it as ordinary."""
    import collector.models as models
    from collector.config import parse_job_config
    from collector.scoring import BlockedScorer
    monkeypatch.setattr(models, 'MAHALANOBIS_BLOCK_FEATURES', 140)   # blocks of 20 dimensions
    cfg = parse_job_config({})
    rng = np.random.default_rng(6)
    rows, dims = 2000, 60
    x = np.full((rows + 200, dims), 0.0)
    x[:, :20] = rng.normal(0, 100, (rows + 200, 20)).cumsum(axis=0) * 0.01 + rng.normal(0, 100, (rows + 200, 20))
    x[:, 40:] = rng.normal(0, 100, (rows + 200, 20))
    columns = ['h::system.interrupts|{}'.format(k) for k in range(dims)]
    blocks = (cfg.lags_n + 1, cfg.level_features)
    idle = fit_model('system.interrupts', columns, cfg.training_features(x[:rows]), blocks=blocks)
    assert idle.model_name == 'mahalanobis' and isinstance(idle.scorer, BlockedScorer), idle.info
    ticking = x.copy()
    ticking[rng.random(rows + 200) < 0.01, 25] = 1.0   # one idle line ticks now and then
    fm = fit_model('system.interrupts', columns, cfg.training_features(ticking[:rows]), blocks=blocks)
    later = ticking[rows - cfg.rows_needed + 1:].copy()
    later[-3:-1, 25] = 1.0   # a tick of it, two steps long
    scores = fm.decision_function(cfg.features(later))
    assert not fm.exceeds(scores[-2:]).any(), (scores[-2:], fm.threshold)
    assert fm.exceeds(fm.decision_function(cfg.features(later + np.r_[[0.0] * 25, [500.0], [0.0] * 34])))[-1]


def test_a_wide_charts_window_is_sampled_to_the_values_a_fit_may_hold(monkeypatch):
    """Each copy a fit makes is rows x features: a 300-dimension chart's 4 hours took its
    training to 1.4 GB. Its rows are sampled down; a narrow chart's window is fitted whole."""
    import collector.models as models
    monkeypatch.setattr(models, 'MAX_FIT_VALUES', 200000)
    rng = np.random.default_rng(2)
    wide = fit_model('w', ['h::w|{}'.format(k) for k in range(50)], rng.normal(size=(8000, 50)))
    assert wide.info['rows'] == 4000 and wide.info['sampled_from'] == 8000
    narrow = fit_model('n', ['h::n|{}'.format(k) for k in range(20)], rng.normal(size=(8000, 20)))
    assert narrow.info['rows'] == 8000 and 'sampled_from' not in narrow.info
    monkeypatch.setattr(models, 'MAX_FIT_VALUES', 10)   # however wide: at least MIN_FIT_ROWS
    assert fit_model('w', ['h::w|0'], rng.normal(size=(1500, 50))).info['rows'] == models.MIN_FIT_ROWS
