"""Batch scoring gives exactly what each model alone gives."""
import numpy as np
import pytest

from collector.batch import BatchScorer, Layout
from collector.features import feature_blocks, feature_groups, make_features
from collector.models import fit_model


LEVELS = True


def feats(x, levels=LEVELS):
    return make_features(x, 1, 3, 2, levels)


def build(model='pca', calibration='empirical', levels=LEVELS, squash=None, still=False):
    rng = np.random.default_rng(5)
    raw = {}
    models = {}
    specs = {'h::system.cpu': ['user', 'system', 'guest', 'idle'], 'h::system.ram': ['used', 'free'],
             'h::system.load': ['load1']}
    if still:   # a chart that never moved, between two that did
        specs = {'h::system.cpu': specs['h::system.cpu'], 'h::system.shm': ['segments', 'bytes'],
                 'h::system.ram': specs['h::system.ram'], 'h::system.load': specs['h::system.load']}
    for chart, dims in specs.items():
        cols = ['{}|{}'.format(chart, d) for d in dims]
        # the fitted tail needs 1001 training scores
        x = rng.normal(size=(1500 if calibration == 'tail' else 400, len(dims))).cumsum(axis=0)
        if 'guest' in dims:
            x[:, 2] = 0.0   # a constant dimension
        if 'segments' in dims:
            x[:] = [3.0, 0.0]   # scored by a quadratic form without a covariance
        for c, col in zip(cols, x.T):
            raw[c] = col
        m_id = chart.split('::')[1]
        models[m_id] = fit_model(m_id, cols, feats(x, levels), model=model, contamination=0.01,
                                 calibration=calibration, blocks=(3, levels), level_squash=squash)
    # a custom model sharing a column with a chart model
    cols = ['h::system.cpu|user', 'h::system.ram|used']
    x = np.column_stack([raw[c] for c in cols])
    models['pair'] = fit_model('pair', cols, feats(x, levels), model=model, contamination=0.01,
                               calibration=calibration, groups=feature_groups(['cpu', 'ram'], 2, levels),
                               blocks=(3, levels), level_squash=squash)
    return models, raw


@pytest.mark.parametrize('model, calibration, levels, squash', [
    ('pca', 'empirical', True, None), ('pca', 'minmax', True, None), ('hbos', 'empirical', True, None),
    ('pca', 'empirical', False, None), ('mahalanobis', 'empirical', True, None),
    ('pca/mahalanobis', 'empirical', True, None), ('mahalanobis', 'tail', True, None),
    # level features squashed (a low knee, so the perturbed windows below go past it)
    ('mahalanobis', 'empirical', True, 2.0), ('pca/mahalanobis', 'empirical', True, 2.0), ('hbos', 'empirical', True, 2.0),
    ('mahalanobis+knn', 'empirical', True, 2.0), ('mahalanobis', 'empirical', False, 2.0)])
def test_batch_equals_each_model(model, calibration, levels, squash):
    if '/' in model:   # pca and mahalanobis models side by side in one batch
        models, raw = build(model.split('/')[0], calibration, levels, squash, still=True)
        other, _ = build(model.split('/')[1], calibration, levels, squash, still=True)
        models.update({'m_' + k: fm for k, fm in other.items()})
    else:
        models, raw = build(model, calibration, levels, squash, still=True)
    moving = [fm for fm in models.values() if fm.model_name != 'constant']   # system.shm is still
    assert len(moving) == len(models) - (2 if '/' in model else 1)
    assert all((fm.knee is not None) == (squash is not None and levels) for fm in moving)
    layout = Layout(models)
    batch = BatchScorer(models, layout, feature_blocks(2, levels))
    assert all((fm.tail is not None) == (calibration == 'tail') for fm in moving)
    if model not in ('hbos', 'mahalanobis+knn'):   # these are scored by the vectorized path, not one by one
        assert batch.pca.size == len(models) and not batch.other
    rng = np.random.default_rng(9)
    for scale in (1.0, 5.0, 30.0):
        window = np.column_stack([raw[c][-6:] for c in layout.columns]) + rng.normal(size=(6, len(layout))) * scale
        features = feats(window, levels)[-1]
        ids, probs, rank, flags, excess = batch.score(features)
        for k, m_id in enumerate(ids):
            fm = models[m_id]
            own = np.column_stack([window[:, layout.index[c]] for c in fm.columns])
            x = feats(own, levels)
            assert batch.decision_function(features)[k] == pytest.approx(fm.decision_function(x)[0], rel=1e-9)
            assert probs[k] == pytest.approx(fm.predict_proba(x)[0, 1])
            assert rank[k] == pytest.approx(fm.rank_probability(fm.decision_function(x))[0])
            assert flags[k] == fm.predict(x)[0]
            assert excess[k] == pytest.approx(fm.excess(fm.decision_function(x))[0], rel=1e-9, abs=1e-9)


def test_layout_row_from_allmetrics():
    models, _ = build()
    layout = Layout(models)
    def chart(t, **dims):
        return {'last_updated': t, 'dimensions': {'id_' + k: {'name': k, 'value': v} for k, v in dims.items()}}
    latest = {'h': {'system.cpu': chart(5, user=1.0, system=2.0), 'system.ram': chart(7, used=3.0, free=4.0)}}
    row, stamp = layout.row(latest)
    assert stamp == 7
    assert row[layout.index['h::system.cpu|user']] == 1.0
    assert row[layout.index['h::system.ram|free']] == 4.0
    assert np.isnan(row[layout.index['h::system.load|load1']])
    batch = BatchScorer(models, layout, feature_blocks(2, LEVELS))
    assert dict(zip(batch.ids, batch.present(row))) == {'system.cpu': True, 'system.ram': True,
                                                        'system.load': False, 'pair': True}


def test_layout_row_reads_the_same_on_every_step_as_answers_change():
    models, _ = build()
    layout = Layout(models)
    def chart(t, **dims):
        return {'last_updated': t, 'dimensions': {'id_' + k: {'name': k, 'value': v} for k, v in dims.items()}}
    def body(t, **over):
        charts = {'system.cpu': chart(t, user=1.0 + t, system=2.0, guest=0.0, idle=3.0), 'system.ram': chart(t + 1, used=t, free=4.0),
                  'system.load': chart(t, load1=0.5, load5=0.25)}
        charts.update(over)
        return {'h': {k: v for k, v in charts.items() if v is not None}}
    def careful(latest):
        return Layout(models).row(latest)     # a fresh layout reads every answer the careful way
    steps = [body(1), body(2), body(3, **{'system.ram': chart(4, used=None, free=4.0)}),        # a null value
             body(4, **{'system.load': None}),                                               # a chart gone
             body(5), body(6, **{'system.cpu': chart(6, user='x', system=2.0, guest=0.0, idle=3.0)}),   # garbage
             body(7, **{'system.cpu': chart(7, user=1.0, guest=0.0, idle=3.0)}),                        # a dimension gone
             body(8), body(9),
             # a modelled dimension gone while another came, then back as that one leaves (a
             # process group that ended and one that started): as many dimensions each time,
             # and it read NaN until the chart's count changed
             body(10, **{'system.cpu': chart(10, user=1.0, steal=5.0, guest=0.0, idle=3.0)}),
             body(11), body(12)]
    for latest in steps:
        got, want = layout.row(latest), careful(latest)
        assert got[1] == want[1]
        assert np.array_equal(got[0], want[0], equal_nan=True)
    assert layout._fast is not None       # complete answers are read by the flat pass


def test_layout_row_tolerates_odd_answers():
    models, _ = build()
    layout = Layout(models)
    body = {'system.cpu': {'last_updated': 5, 'dimensions': {
                'u': {'name': 'user', 'value': None}, 's': {'name': 'system', 'value': '3.5'}, 'x': 7}},
            'system.ram': 'text', 'system.load': {'dimensions': []}}
    row, stamp = layout.row({'h': body})
    assert stamp == 5
    assert np.isnan(row[layout.index['h::system.cpu|user']])
    assert row[layout.index['h::system.cpu|system']] == 3.5
    assert np.isnan(row[layout.index['h::system.ram|used']]) and np.isnan(row[layout.index['h::system.load|load1']])
    # a dimension that shows up later is picked up
    body['system.cpu']['dimensions']['i'] = {'name': 'idle', 'value': 90}
    row, _ = layout.row({'h': body})
    assert row[layout.index['h::system.cpu|idle']] == 90
    # and one that comes back under another id, the chart's count unchanged
    del body['system.cpu']['dimensions']['i']
    body['system.cpu']['dimensions']['i2'] = {'name': 'idle', 'value': 80}
    row, _ = layout.row({'h': body})
    assert row[layout.index['h::system.cpu|idle']] == 80
    assert np.isnan(layout.row({})[0]).all()


def test_a_model_that_cannot_score_is_reported_and_costs_the_others_nothing():
    models, raw = build('hbos')
    layout = Layout(models)
    batch = BatchScorer(models, layout, feature_blocks(2, LEVELS))
    window = np.column_stack([raw[c][-6:] for c in layout.columns])
    features = feats(window)[-1]
    before = batch.decision_function(features)

    class Broken:
        def decision_function(self, X):
            raise ValueError('a pickle from another numpy')
    k = batch.ids.index('system.ram')
    models['system.ram'].scorer = Broken()
    after = batch.decision_function(features)
    assert after[k] == models['system.ram'].score_min
    assert np.array_equal(np.delete(after, k), np.delete(before, k))
    assert 'a pickle from another numpy' in batch.failed['system.ram']


@pytest.mark.parametrize('model', ['gmm', 'cblof', 'mahalanobis', 'pca'])
def test_a_value_near_floats_limit_scores_as_unusual_as_can_be_not_as_a_failed_model(model):
    """Values near float's limit (1.7e308 after -1.7e308): their difference overflows to
    infinity. Every model reads that as far beyond its threshold; pyod's gmm and cblof
    refused the row, which read as 0 % and was logged as the model's fault."""
    models, raw = build(model)
    layout = Layout(models)
    batch = BatchScorer(models, layout, feature_blocks(2, LEVELS))
    window = np.column_stack([raw[c][-6:] for c in layout.columns])
    window[-2:, layout.columns.index('h::system.ram|used')] = [-1.7e308, 1.7e308]
    with np.errstate(over='ignore', invalid='ignore'):
        scores = batch.decision_function(feats(window)[-1])
    k = batch.ids.index('system.ram')
    assert scores[k] > models['system.ram'].threshold
    assert not batch.failed
    # the same row through the model itself (evaluate --dataset's path), beside a usual one
    ram = np.column_stack([raw[c][-12:] for c in ('h::system.ram|used', 'h::system.ram|free')])
    usual = feats(ram)[-3]
    ram[-2:, 0] = [-1.7e308, 1.7e308]
    with np.errstate(over='ignore', invalid='ignore'):
        rows = feats(ram)[-3:]
        offline = models['system.ram'].decision_function(rows)
    assert np.array_equal(rows[0], usual) and not np.isfinite(rows[-1]).all()
    assert offline[-1] > models['system.ram'].threshold and np.isfinite(offline).all()
    assert offline[0] == pytest.approx(models['system.ram'].decision_function(usual[None, :])[0], rel=1e-9)   # as alone


def test_a_value_no_model_can_score_is_the_worst_even_where_training_scores_are_negative():
    """pyod's gmm scores minus a log-likelihood: on a chart whose dimensions are copies of each
    other (a pipe's in and out) every training score is below 0, and a row it cannot score (a
    value near float's limit) read as 0 %, the least unusual of all, where it is the worst."""
    import warnings
    rng = np.random.default_rng(1)
    x = rng.normal(100, 5, (600, 1))
    x = np.hstack([x, 2 * x])
    cols = ['h::c|in', 'h::c|out']
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        fm = fit_model('c', cols, feats(x), model='gmm', contamination=0.01, blocks=(3, LEVELS))
    assert fm.score_max < 0, 'the case needs training scores below 0'
    layout = Layout({'c': fm})
    batch = BatchScorer({'c': fm}, layout, feature_blocks(2, LEVELS))
    for value in (1e6, 1e200):
        rows = x[-12:].copy()
        rows[-1, 0] = value
        with np.errstate(over='ignore', invalid='ignore'):
            ids, probs, _, above, _ = batch.score(feats(rows)[-1])
            offline = fm.decision_function(feats(rows)[-1:])
        assert probs[0] == 1.0 and above[0], (value, probs, above)
        assert offline[0] > fm.threshold, (value, offline, fm.threshold)


@pytest.mark.parametrize('model', ['mahalanobis', 'pca'])
def test_still_chart_does_not_flag_its_still_rows(model):
    """A chart at 0 for all of its window but a few start-up rows (system.ip on an idle node):
    its still rows are most of the training scores and tie the threshold. Scored live (other
    arithmetic than training's), they must read as nothing unusual, not flag for as long as
    the chart stays at 0."""
    x = np.zeros((3600, 2))
    x[12:14] = [[2.5e6, -2.5e6], [1.0e6, -0.9e6]]
    cols = ['h::system.ip|received', 'h::system.ip|sent']
    fm = fit_model('system.ip', cols, feats(x), model=model, contamination=0.001)
    models = {'system.ip': fm}
    layout = Layout(models)
    batch = BatchScorer(models, layout, feature_blocks(2, LEVELS))
    still = np.zeros((6, 2))
    ids, probs, _, flags, _ = batch.score(feats(still)[-1])
    assert flags.tolist() == [0] and probs[0] < 0.5
    assert fm.predict(feats(still)).tolist() == [0] and fm.predict_proba(feats(still))[:, 1].max() < 0.5
    # the start-up burst itself, seen again, is above the threshold
    burst = np.zeros((6, 2))
    burst[-1] = [2.5e6, -2.5e6]
    assert batch.score(feats(burst)[-1])[3].tolist() == [1]


def test_a_dimension_without_a_value_does_not_shift_other_charts_values():
    models, _ = build()
    layout = Layout(models)
    body = {'system.cpu': {'last_updated': 5, 'dimensions': {
                'u': {'name': 'user', 'value': 1.0}, 's': {'name': 'system'},   # no value
                'g': {'name': 'guest', 'value': 0.0}, 'i': {'name': 'idle', 'value': 'x'}}},  # one not a number
            'system.ram': {'last_updated': 5, 'dimensions': {
                'u': {'name': 'used', 'value': 4000.0}, 'f': {'name': 'free', 'value': 10.0}}}}
    row, _ = layout.row({'h': body})
    assert row[layout.index['h::system.ram|used']] == 4000.0
    assert row[layout.index['h::system.ram|free']] == 10.0
    assert np.isnan(row[layout.index['h::system.cpu|system']])
    # the chart's other columns hold what it sent for them, or nothing
    for dim, sent in (('user', 1.0), ('guest', 0.0), ('idle', None)):
        value = row[layout.index['h::system.cpu|' + dim]]
        assert np.isnan(value) or value == sent


def test_a_wide_model_is_scored_alone_as_it_scores_itself():
    """A quadratic form over thousands of features laid out with the others repeated each
    feature's index once per component: a 600-dimension chart's model held 270 MiB more in the
    batch than its own 135, gathered 440 MiB at each step and took 0.11 s of it."""
    rng = np.random.default_rng(8)
    dims = 80
    x = rng.normal(size=(400, dims)) * rng.uniform(0.1, 10, dims)
    wide = fit_model('system.interrupts', ['h::system.interrupts|{}'.format(k) for k in range(dims)], feats(x),
                     model='mahalanobis', blocks=(3, LEVELS))
    models, raw = build('mahalanobis')
    models['system.interrupts'] = wide
    for k in range(dims):
        raw['h::system.interrupts|{}'.format(k)] = x[:, k]
    assert wide.scorer.components.size > 100000
    layout = Layout(models)
    batch = BatchScorer(models, layout, feature_blocks(2, LEVELS))
    k = batch.ids.index('system.interrupts')
    assert [m for m, _ in batch.other] == [k] and k not in batch.pca
    assert batch.rep.size < wide.scorer.components.size     # no index per component of the wide one
    for scale in (1.0, 30.0, 1e300):
        window = np.column_stack([raw[c][-6:] for c in layout.columns]) + rng.normal(size=(6, len(layout))) * scale
        features = feats(window)[-1]
        with np.errstate(all='ignore'):
            ids, probs, rank, flags, excess = batch.score(features)
            own = np.column_stack([window[:, layout.index[c]] for c in wide.columns])
            alone = wide.decision_function(feats(own))[0]
            scores = batch.decision_function(features)
            p_alone = wide.predict_proba(feats(own))[0, 1]
        assert scores[k] == pytest.approx(alone, rel=1e-9)
        assert np.isfinite(probs).all() and probs[k] == pytest.approx(p_alone)
