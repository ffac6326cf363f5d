"""Properties of the numeric core and the output path on the worst data an agent sends.

Seeded random cases (numpy only): training windows with constant, copied and collinear
columns, values of 1e-300 and -0.0, counters that wrap or reset, float32 input; live rows
with gaps of every length, infinities, values of 1e300 and more. What a user relies on:
every model gives every step a finite probability in [0, 1] and a flag of 0 or 1, the batch
scorer gives what each model alone gives, nothing depends on the order of a chart's
dimensions, the same window trains the same model, and no SET line holds anything but an
integer.
"""
import re

import numpy as np
import pytest

from collector.batch import BatchScorer, Layout
from collector.features import absent_as_zero, feature_groups, fill_missing, make_features, rows_needed
from collector.flags import FlagPolicy, n_of_m
from collector.models import fit_model
from collector.pythond import Chart
from collector.service import PROB_SCALE, step_values

LAGS = 5
BLOCKS = (LAGS + 1, True)
NUMPY_FITTED = ['mahalanobis', 'pca', 'hbos', 'ecod', 'copod', 'loda', 'iforest', 'knn', 'mahalanobis+hbos']
NASTY = np.array([np.nan, np.inf, -np.inf, 1e300, -1e300, 1e-300, -0.0, 0.0, 1.7e308, 2.0 ** 64, 5e-324])


def feats(raw):
    return make_features(raw, 1, 3, LAGS, True)


def window(kind, rows, dims, rng):
    """A training window (rows x dims) of one kind of trouble."""
    x = rng.normal(100, 5, (rows, dims))
    if kind == 'constant':
        x[:, 0] = 3.0
    elif kind == 'copies':
        x[:, 1:] = x[:, :1]
    elif kind == 'collinear':
        x[:, -1] = 2 * x[:, 0] - 3 * x[:, 1]
    elif kind == 'sparse':
        x = (rng.random((rows, dims)) < 0.01).astype(float)
    elif kind == 'tiny':
        x *= 1e-300
    elif kind == 'negative_zero':
        x[::2, 0], x[1::2, 0] = -0.0, 0.0
    elif kind == 'wrap':   # a 32-bit counter read as is, wrapping and reset to 0
        x[:, 0] = np.cumsum(rng.integers(0, 1 << 28, rows)) % 2 ** 32
        x[rows // 2:, 1] = 0.0
    elif kind == 'float32':
        x = x.astype(np.float32)
    elif kind == 'all_constant':
        x[:] = 7.0
    return x


def fit(model_id, raw, model, columns=None):
    dims = raw.shape[1]
    columns = columns or ['h::{}|d{}'.format(model_id, k) for k in range(dims)]
    return fit_model(model_id, columns, feats(raw), model=model, groups=feature_groups(['g'] * dims, LAGS, True),
                     blocks=BLOCKS)


def live_rows(raw, rng, share=0.3):
    """The window's last rows with nasty values, and gaps of 1 to all rows, put in."""
    rows = np.array(raw[-rows_needed(1, 3, LAGS):], dtype=np.float64)
    nasty = rng.random(rows.shape) < share
    rows[nasty] = rng.choice(NASTY, int(nasty.sum()))
    gap = int(rng.integers(0, rows.shape[0] + 1))
    rows[rows.shape[0] - gap:, int(rng.integers(0, rows.shape[1]))] = np.nan
    return rows


def as_read(rows):
    """The rows as the job reads them: an Infinity is no reading, then gaps filled."""
    rows = np.where(np.isinf(rows), np.nan, rows)
    return fill_missing(absent_as_zero(rows))


KINDS = ['normal', 'constant', 'copies', 'collinear', 'sparse', 'tiny', 'negative_zero', 'wrap', 'float32',
         'all_constant']


@pytest.mark.parametrize('model', NUMPY_FITTED)
def test_every_step_of_every_model_is_a_probability_and_a_flag_and_the_batch_agrees(model):
    rng = np.random.default_rng(NUMPY_FITTED.index(model))
    for case in range(12):
        kind = KINDS[case % len(KINDS)]
        dims = int(rng.integers(2, 6))
        raw = window(kind, int(rng.integers(40, 400)), dims, rng)
        fm = fit('c', raw, model)
        other = fit('o', window('normal', 200, 3, rng), 'mahalanobis')   # a second model in the batch
        models = {'c': fm, 'o': other}
        layout = Layout(models)
        batch = BatchScorer(models, layout, LAGS + 2)
        for _ in range(5):
            rows = as_read(live_rows(raw, rng))
            glob = np.zeros((rows.shape[0], len(layout)))
            glob[:, [layout.index[c] for c in fm.columns]] = rows
            with np.errstate(all='ignore'):
                ids, probs, rank, above, excess = batch.score(feats(glob)[-1])
                alone = fm.probability(fm.decision_function(feats(rows)[-1:]))[0]
            assert np.isfinite(probs).all() and ((probs >= 0) & (probs <= 1)).all(), (kind, probs)
            assert np.isfinite(rank).all() and set(np.unique(above)) <= {0, 1}
            assert not np.isnan(excess).any()
            # the same up to one quantile's grain (a score at a quantile may round either way)
            assert abs(probs[0] - alone) <= 1.0 / fm.points.size + 1e-12, (kind, probs[0], alone)


@pytest.mark.parametrize('model', ['mahalanobis', 'pca', 'hbos', 'ecod', 'copod', 'knn'])
def test_scores_do_not_depend_on_the_order_of_a_charts_dimensions(model):
    rng = np.random.default_rng(11)
    raw = rng.normal(size=(800, 5)) @ rng.normal(size=(5, 5)) + 50
    later = rng.normal(size=(200, 5)) @ rng.normal(size=(5, 5)) + 50
    later[100:110] += 8
    order = [3, 0, 4, 1, 2]
    cols = ['h::c|d{}'.format(k) for k in range(5)]
    fm = fit('c', raw, model, cols)
    shuffled = fit('c', raw[:, order], model, [cols[k] for k in order])
    s = fm.decision_function(feats(later))
    s_shuffled = shuffled.decision_function(feats(later[:, order]))
    np.testing.assert_allclose(s, s_shuffled, rtol=1e-9)
    assert fm.threshold == pytest.approx(shuffled.threshold, rel=1e-9)
    assert np.array_equal(fm.predict(feats(later)), shuffled.predict(feats(later[:, order])))


@pytest.mark.parametrize('model', NUMPY_FITTED)
def test_the_same_window_trains_the_same_model(model):
    rng = np.random.default_rng(5)
    raw = window('collinear', 500, 4, rng)
    later = feats(window('normal', 100, 4, rng))
    a, b = fit('c', raw, model), fit('c', raw, model)
    assert np.array_equal(a.decision_function(later), b.decision_function(later))
    assert a.threshold == b.threshold and np.array_equal(a.points, b.points)


def test_features_follow_the_columns_whatever_their_order_and_values():
    rng = np.random.default_rng(2)
    for _ in range(50):
        rows, dims = int(rng.integers(0, 25)), int(rng.integers(1, 7))
        raw = rng.normal(size=(rows, dims)) * 10.0 ** rng.integers(-300, 300, dims)
        raw[rng.random(raw.shape) < 0.3] = np.nan
        order = rng.permutation(dims)
        with np.errstate(all='ignore'):
            x = make_features(fill_missing(raw), 1, 3, 2, True, True)
            y = make_features(fill_missing(raw[:, order]), 1, 3, 2, True, True)
        blocks = x.shape[1] // dims
        np.testing.assert_array_equal(np.hstack([x[:, b * dims:(b + 1) * dims][:, order] for b in range(blocks)]), y)


def test_fill_missing_leaves_no_gap_and_keeps_every_value_read():
    rng = np.random.default_rng(3)
    for _ in range(100):
        raw = rng.choice(NASTY, (int(rng.integers(0, 30)), int(rng.integers(0, 5))))
        raw[rng.random(raw.shape) < 0.5] = 1.5
        out = fill_missing(raw)
        assert out.shape == raw.shape and not np.isnan(out).any()
        read = ~np.isnan(raw)
        assert np.array_equal(out[read], raw[read])


def test_the_policy_step_by_step_equals_the_series_with_odd_probabilities_and_excesses():
    rng = np.random.default_rng(4)
    odd = np.array([np.nan, np.inf, -np.inf, -1.0, 2.0, 0.99, 1.0, 0.0])
    for case in range(40):
        n = int(rng.integers(1, 150))
        above = (rng.random(n) < 0.3).astype(int)
        p = np.where(rng.random(n) < 0.3, rng.choice(odd, n), rng.random(n))
        # log excesses as scoring.log_excess gives them (at most log(1e300)), or none (NaN, -inf)
        e = np.where(rng.random(n) < 0.3, rng.choice([np.nan, -np.inf, np.log(1e300), -50.0], n), rng.normal(0, 3, n))
        p = np.clip(np.nan_to_num(p), 0.0, 1.0)   # as the batch scorer hands them over
        min_n, window_n = [(1, 1), (2, 3), (3, 4)][case % 3]
        rearm_n, lasting_n = [(0, 0), (5, 4), (30, 20)][case % 3]
        series = n_of_m(above, min_n, window_n, p >= 0.99, p, rearm_n, lasting_n, e)
        policy = FlagPolicy(min_n, window_n, rearm_n, lasting_n)
        policy.reindex(['m'])
        steps = [int(policy.update(above[k:k + 1], p[k:k + 1] >= 0.99, p[k:k + 1], e[k:k + 1])[0]) for k in range(n)]
        assert set(steps) <= {0, 1}
        assert steps == series.tolist()


SET = re.compile(r"^SET '[^']*' = -?[0-9]+$")


def test_no_set_line_holds_anything_but_an_integer_whatever_the_scores():
    rng = np.random.default_rng(6)
    chart = Chart('anomalies', 'probability', [None, 'p', 'percentage', 'anomalies', 'anomalies.probability', 'line'],
                  100, 1, 'anomalies')
    ids = ['system.m{}'.format(k) for k in range(20)]
    for model_id in ids:
        chart.add_dimension([model_id + '_prob', model_id + '_prob', 'absolute', 1, 100])
    chart.add_dimension(['average_prob', 'average_prob', 'absolute', 1, 100])
    for _ in range(50):
        p = np.where(rng.random(len(ids)) < 0.3, rng.choice(NASTY, len(ids)), rng.random(len(ids)))
        scores = {m: (float(v), int(rng.integers(0, 2))) for m, v in zip(ids, p)}
        data = step_values(scores, True)
        lines = [line for line in chart.update(data, 1000000).splitlines() if line.startswith('SET')]
        assert len(lines) == len(ids) + 1
        for line in lines:
            assert SET.match(line), line
            assert 0 <= int(line.rsplit(' ', 1)[1]) <= PROB_SCALE, line
