"""Anomaly-aware training: flagged steps do not teach the next model that they are normal."""
import pickle
import subprocess
import time

import numpy as np
import pytest

from collector.config import parse_job_config
from collector.flagged_spans import cut_at
from collector.training import ModelSpec, TrainingRequest, excluded_rows, recurring, run_training
from conftest import SPIKE, START, refuse_threads, with_dimensions


def test_excluded_rows_reach_past_a_span_by_the_feature_length():
    times = np.arange(100, 120)
    drop = excluded_rows(times, [(105, 107)], reach=3)
    assert np.nonzero(drop)[0].tolist() == list(range(5, 11))   # 105..110
    assert not excluded_rows(times, [], reach=3).any()


def test_a_span_running_on_past_an_agents_start_up_is_left_out_only_up_to_its_end():
    """A level the reboot changed is the new normal; a flag that rose before the reboot and
    ended, or after its start-up, is left out whole."""
    spans = [(10, 20), (95, 400), (500, 560)]
    assert cut_at(spans, 100) == [(10, 20), (95, 100), (500, 560)]
    assert cut_at(spans, 20) == spans   # one that ended with it, or rose after it
    assert cut_at(spans, 450) == spans


def _train(replay, exclude, **conf):
    replay.clock.set(START + 900)
    cfg = parse_job_config(dict({'host': replay.host, 'update_every': 1}, **conf))
    spec = ModelSpec('system.cpu', replay.host, chart='system.cpu')
    result = run_training(TrainingRequest(cfg, [spec], START + 300, START + 900, exclude))
    assert not result.error and not result.errors
    return result.models['system.cpu'], cfg


def test_a_flagged_incident_is_left_out_of_the_next_training(replay):
    spike = (START + SPIKE[0], START + SPIKE[1] - 1)
    naive, cfg = _train(replay, {})
    aware, _ = _train(replay, {'system.cpu': [spike]})
    assert naive.info['excluded_rows'] == 0
    # the spike's rows and the feature rows that still see it over their lags and smoothing
    assert aware.info['excluded_rows'] == (SPIKE[1] - SPIKE[0]) + cfg.training_rows_needed - 1
    # trained on the incident, the naive model's threshold sits far higher: a repeat goes unseen
    assert aware.threshold < naive.threshold / 5
    # a model flagged for most of its window takes that as the new normal
    most, _ = _train(replay, {'system.cpu': [(START + 300, START + 700)]})
    assert most.info['excluded_rows'] == 0 and most.info['flagged_share_kept'] > 0.25


def test_something_flagged_again_and_again_is_learned_not_left_out(replay):
    """A cron job that the first model had not seen is flagged each time it runs; left out
    every time, it would be flagged for ever. Five separate flags in the window: trained on.
    Four incidents a few minutes apart are still four incidents: left out."""
    runs = [(START + t, START + t + 4) for t in (340, 430, 520, 610, 700)]
    four, _ = _train(replay, {'system.cpu': runs[1:]})
    assert four.info['excluded_rows'] > 0 and 'flagged_events_kept' not in four.info
    five, _ = _train(replay, {'system.cpu': runs})
    assert five.info['excluded_rows'] == 0 and five.info['flagged_events_kept'] == 5
    # a flag from before the window is not one of its events
    older, _ = _train(replay, {'system.cpu': [(START + 100, START + 104)] + runs[1:]})
    assert older.info['excluded_rows'] > 0


def test_a_routine_shows_itself_often_or_over_hours():
    """A job every minute is learned at its fifth flag; one every hour (a 4-hour window holds four
    runs) at its third, two hours after the first. Three or four incidents within minutes are
    incidents, and flags that ended before the window are not in it."""
    minutely = [(60.0 * k, 60.0 * k + 4) for k in range(5)]
    assert recurring(minutely[:4], 0) == (4, False) and recurring(minutely, 0) == (5, True)
    hourly = [(3600.0 * k, 3600.0 * k + 30) for k in range(3)]
    assert recurring(hourly[:2], 0) == (2, False) and recurring(hourly, 0) == (3, True)
    close = [(600.0 * k, 600.0 * k + 60) for k in range(4)]   # four incidents in half an hour
    assert recurring(close, 0) == (4, False)
    assert recurring(hourly, 3600.0 + 31) == (1, False)
    assert recurring([], 0) == (0, False)


def test_a_flag_that_falls_and_rises_again_within_an_incident_is_one_event():
    """Four incidents five minutes apart, each flagged two or three times within its minute (the
    flag fell for a few seconds and rose again): four events, not a routine. Before, they
    counted as ten separate times, and the model trained on all four incidents."""
    spans = []
    for k in range(4):
        start = 300.0 * k
        spans += [(start, start + 12), (start + 30, start + 40)] + ([(start + 55, start + 60)] if k % 2 else [])
    assert recurring(spans, 0) == (4, False)
    # an event that began before the window and goes on in it is still one
    assert recurring([(0.0, 10.0), (20.0, 25.0)], 15.0) == (1, False)
    # but flags every 20 s for an hour are something the node does, not one long incident
    assert recurring([(t, t + 2.0) for t in range(0, 3600, 20)], 0) == (12, True)


def test_level_squash_reaches_the_models_a_job_trains(replay):
    plain, _ = _train(replay, {})
    squashed, cfg = _train(replay, {}, level_squash=7)
    assert plain.knee is None
    # the level block of system.cpu's dimensions, and nothing else, is squashed at 7
    n_cols = len(squashed.columns)
    level = squashed.kept >= (cfg.lags_n + 1) * n_cols
    assert level.any() and np.all(squashed.knee[level] == 7) and np.all(np.isinf(squashed.knee[~level]))


def test_an_agent_seconds_old_that_cannot_answer_for_its_charts_yet_is_waited_for(monkeypatch):
    """The first chart list of an agent started a second ago names charts it has collected
    for a second or not at all, and reading their window fails: those charts wait for
    history (no error line); the same failure for charts listed with history is an error."""
    from collector import netdata_api, training_window

    def nothing_yet(*args, **kwargs):
        raise netdata_api.NetdataError('no chart data could be read for training')
    monkeypatch.setattr(training_window, 'fetch_training_frame', nothing_yet)
    cfg = parse_job_config({'host': 'h:1', 'train_min_n_secs': 120})
    specs = [ModelSpec('system.idlejitter', 'h:1', chart='system.idlejitter')]
    young = run_training(TrainingRequest(cfg, specs, -1200, 0, listed_seconds={'system.idlejitter': 1}))
    assert not young.error and young.waiting == {'system.idlejitter': 0}
    old = run_training(TrainingRequest(cfg, specs, -1200, 0, listed_seconds={'system.idlejitter': 3600}))
    assert old.error == 'no chart data could be read for training' and not old.waiting
    unknown = run_training(TrainingRequest(cfg, specs, -1200, 0))   # an agent whose list gives no times
    assert unknown.error


def test_the_rows_a_training_reports_are_the_rows_with_values(monkeypatch):
    """A young Netdata agent answers a 1200 s window with a row for every second, null before
    its first collection: the log's 'trained N models on R rows' counts only rows with values."""
    import pandas as pd
    from collector import training_window
    t = np.arange(1000, 2200, dtype=float)
    values = np.where(t[:, None] >= 2000, np.random.default_rng(0).normal(10, 1, (t.size, 2)), np.nan)
    frame = pd.DataFrame(values, index=t, columns=['h:1::system.cpu|user', 'h:1::system.cpu|system'])
    monkeypatch.setattr(training_window, 'fetch_training_frame', lambda *a, **k: (frame, t, []))
    cfg = parse_job_config({'host': 'h:1', 'train_min_n_secs': 120})
    result = run_training(TrainingRequest(cfg, [ModelSpec('system.cpu', 'h:1', chart='system.cpu')], 1000, 2199))
    assert 'system.cpu' in result.models and result.rows == 200
    # stepping every 5 s, the model learns every phase: all 200 rows, not the 40 of one phase
    cfg = parse_job_config({'host': 'h:1', 'train_min_n_secs': 120, 'update_every': 5})
    result = run_training(TrainingRequest(cfg, [ModelSpec('system.cpu', 'h:1', chart='system.cpu')], 1000, 2199))
    assert result.rows == 200


def test_a_gap_in_collection_is_left_out_of_the_training_not_taught_as_one_value(monkeypatch):
    """The agent answers null over the hour it was down, and for a chart whose plugin died
    after one reading: neither is an hour (or minutes) of its last value. The model learns the
    rows with values, and a chart read once waits for history instead of a model of one value."""
    import pandas as pd
    from collector import training_window
    t = np.arange(1000, 5200, dtype=float)
    up = (t < 1240) | (t >= 5000)
    cpu = np.where(up[:, None], np.random.default_rng(0).normal(10, 1, (t.size, 2)), np.nan)
    once = np.where(t[:, None] == 1000, 5.0, np.full((t.size, 1), np.nan))
    raw = pd.DataFrame(np.hstack([cpu, once]), index=t,
                       columns=['h:1::system.cpu|user', 'h:1::system.cpu|system', 'h:1::sensors.fan|fan1'])
    frame = training_window.carried_forward(raw)
    monkeypatch.setattr(training_window, 'fetch_training_frame', lambda *a, **k: (frame, t, []))
    cfg = parse_job_config({'host': 'h:1', 'train_min_n_secs': 120})
    result = run_training(TrainingRequest(cfg, [ModelSpec('system.cpu', 'h:1', chart='system.cpu')], 1000, 5199))
    assert 'system.cpu' in result.models and result.rows == 440 + 30   # and the 30 s a reading stays current
    result = run_training(TrainingRequest(cfg, [ModelSpec('sensors.fan', 'h:1', chart='sensors.fan')], 1000, 5199))
    assert not result.models and 'sensors.fan' in result.waiting and not result.errors
    # up for 4 of the 70 minutes: it waits for train_min_n_secs of readings, not of window
    cfg = parse_job_config({'host': 'h:1', 'train_min_n_secs': 600})
    result = run_training(TrainingRequest(cfg, [ModelSpec('system.cpu', 'h:1', chart='system.cpu')], 1000, 5199))
    assert not result.models and 0 < result.waiting['system.cpu'] < 600, result.waiting


def test_a_custom_model_learns_the_rows_where_every_chart_of_it_was_collected(monkeypatch):
    """A custom model of the CPU and a fan sensor whose plugin was down for an hour: the CPU's
    values of that hour beside the fan's last reading are no normal the model should learn.
    It trains on the rows where both were read (the fan's reading current for 30 s after it
    stopped), as a chart of its own would; before, on every row, the fan's value repeated."""
    import pandas as pd
    from collector import training_window
    t = np.arange(1000, 5200, dtype=float)
    cpu = np.random.default_rng(0).normal(10, 1, (t.size, 1))
    up = (t < 1240) | (t >= 5000)
    fan = np.where(up[:, None], np.random.default_rng(1).normal(3000, 50, (t.size, 1)), np.nan)
    raw = pd.DataFrame(np.hstack([cpu, fan]), index=t, columns=['h:1::system.cpu|user', 'h:1::sensors.fan|fan1'])
    frame = training_window.carried_forward(raw)
    monkeypatch.setattr(training_window, 'fetch_training_frame', lambda *a, **k: (frame, t, []))
    cfg = parse_job_config({'host': 'h:1', 'train_min_n_secs': 120})
    spec = ModelSpec('cpu_fan', 'h:1', columns=('h:1::system.cpu|user', 'h:1::sensors.fan|fan1'))
    result = run_training(TrainingRequest(cfg, [spec], 1000, 5199))
    assert 'cpu_fan' in result.models and result.rows == 440 + 30
    # a fan never read in the window: that is said, not that the model's charts sent nothing
    unread = training_window.carried_forward(raw.assign(**{'h:1::sensors.fan|fan1': np.nan}))
    monkeypatch.setattr(training_window, 'fetch_training_frame', lambda *a, **k: (unread, t, []))
    result = run_training(TrainingRequest(cfg, [spec], 1000, 5199))
    assert result.errors == {'cpu_fan': 'the agent sent no values for sensors.fan in the training window'}
    # the CPU's own model still learns all of its rows
    result = run_training(TrainingRequest(cfg, [ModelSpec('system.cpu', 'h:1', chart='system.cpu')], 1000, 5199))
    assert result.rows == t.size


def test_an_infinity_in_the_training_window_is_no_reading_as_it_is_on_each_step(monkeypatch):
    """The agent may store a value that is not finite (a division by zero in a collector): the
    steps read it as no reading, and so must the training, or one such second leaves the model
    a spread of infinity that reads every step as usual (or none at all)."""
    import pandas as pd
    from collector import training_window
    t = np.arange(1000, 1600, dtype=float)
    values = np.random.default_rng(0).normal(10, 1, (t.size, 2))
    values[300, 0] = np.inf
    frame = pd.DataFrame(values, index=t, columns=['h:1::system.cpu|user', 'h:1::system.cpu|system'])
    monkeypatch.setattr(training_window, 'fetch_training_frame', lambda *a, **k: (frame, t, []))
    cfg = parse_job_config({'host': 'h:1', 'train_min_n_secs': 120})
    result = run_training(TrainingRequest(cfg, [ModelSpec('system.cpu', 'h:1', chart='system.cpu')], 1000, 1599))
    fm = result.models['system.cpu']
    usual = np.random.default_rng(1).normal(10, 1, (20, 2))
    jump = usual + np.r_[np.zeros((19, 2)), [[30.0, 0.0]]]
    p = fm.predict_proba(cfg.features(np.vstack([usual, jump])))[:, 1]
    assert np.isfinite(p).all() and np.median(p[:10]) < 0.9 and p[-1] > 0.999, p


def test_a_chart_with_two_dimensions_of_one_name_is_refused_by_name_and_the_others_train(recording, tmp_path):
    """Netdata lets two dimensions of a chart share a name (ipmi, snmp), and its data API tells
    them apart by name only: that chart is not modelled, with its reason, and nothing else is
    held back by it."""
    from collector.replay import Recording, ReplayClock, ReplayServer
    rec = Recording(with_dimensions(recording, str(tmp_path / 'rec'),
                                    {'system.ram': [('used', 'used'), ('cached', 'used')]}))
    with ReplayServer(rec, ReplayClock(START + 900, stepped=True)) as server:
        cfg = parse_job_config({'host': server.host, 'update_every': 1})
        specs = [ModelSpec(c, server.host, chart=c) for c in ('system.cpu', 'system.ram')]
        result = run_training(TrainingRequest(cfg, specs, START + 300, START + 900))
    assert set(result.models) == {'system.cpu'}
    assert result.errors == {'system.ram': "two dimensions of one name, 'used' (the agent's API tells a chart's "
                                           "dimensions apart by name only)"}


def test_a_chart_retrained_for_a_dimension_that_just_appeared_does_not_learn_what_brought_it(monkeypatch):
    """stress-ng starts: apps.plugin lists a new 'stress' group on apps.cpu, its CPU high from
    the first second, and the chart is retrained for it. Trained up to now, the model learnt
    that minute as normal and did not flag the rest of the incident; the rows since the new
    dimension first had a value are left out, and the incident reads as news."""
    import pandas as pd
    from collector import training_window
    t = np.arange(1000, 2200, dtype=float)
    other = np.random.default_rng(0).normal(10, 1, t.size)
    stress = np.where(t >= 2140, 80 + np.random.default_rng(1).normal(0, 5, t.size), 0.0)   # the last 60 s
    frame = pd.DataFrame({'h:1::apps.cpu|other': other, 'h:1::apps.cpu|stress': stress}, index=t)
    monkeypatch.setattr(training_window, 'fetch_training_frame', lambda *a, **k: (frame, t, []))
    cfg = parse_job_config({'host': 'h:1'})
    spec = ModelSpec('apps.cpu', 'h:1', chart='apps.cpu')
    naive = run_training(TrainingRequest(cfg, [spec], 1000, 2199)).models['apps.cpu']
    aware = run_training(TrainingRequest(cfg, [spec], 1000, 2199, new_dimensions={'apps.cpu': ('stress',)}))
    aware = aware.models['apps.cpu']
    assert 'new_dimensions_since' not in naive.info and naive.info['excluded_rows'] == 0
    assert aware.info['new_dimensions_since'] == 2140 and aware.info['new_dimensions_rows'] == 60
    assert aware.info['excluded_rows'] == 60
    incident = cfg.training_features(frame.to_numpy()[-30:])[-5:]
    assert (aware.predict(incident) == 1).all() and (naive.predict(incident) == 0).all()
    # a dimension there for most of the window (a model kept from before it appeared) is normal by now
    since = np.where(t >= 1300, stress[-1], 0.0)
    frame['h:1::apps.cpu|stress'] = since
    old = run_training(TrainingRequest(cfg, [spec], 1000, 2199, new_dimensions={'apps.cpu': ('stress',)}))
    assert old.models['apps.cpu'].info['excluded_rows'] == 0
    # nor one that appeared while the chart was young (apps.plugin finds its groups one by one)
    frame['h:1::apps.cpu|other'] = np.where(t >= 1900, other, np.nan)
    frame['h:1::apps.cpu|stress'] = np.where(t >= 1900, stress, np.nan)
    young = run_training(TrainingRequest(cfg, [spec], 1000, 2199, new_dimensions={'apps.cpu': ('stress',)}))
    assert young.models['apps.cpu'].info['excluded_rows'] == 0


def test_a_job_stepping_every_5_s_learns_from_every_phase_of_its_window(replay):
    """Its steps read one sample in five, at whichever second they fall: trained on one phase,
    a 10-minute window gave 120 rows and a threshold from the top few of them."""
    one, cfg1 = _train(replay, {})
    five, cfg5 = _train(replay, {}, update_every=5)
    window = one.info['rows'] + cfg1.training_rows_needed - 1      # the one-second rows fetched
    assert window > 590
    assert five.info['rows'] == window - 5 * (cfg5.training_rows_needed - 1)
    # a flagged incident is left out of every phase: its seconds and the rows that see it
    spike = (START + SPIKE[0], START + SPIKE[1] - 1)
    aware, _ = _train(replay, {'system.cpu': [spike]}, update_every=5)
    reach = (cfg5.training_rows_needed - 1) * 5
    assert aware.info['excluded_rows'] == (SPIKE[1] - SPIKE[0]) + reach
    assert aware.threshold < five.threshold / 2


def test_many_charts_are_read_a_batch_at_a_time_on_one_window_and_a_failed_read_costs_its_batch(monkeypatch):
    """A window's JSON, parsed, costs several times its numbers: 300 charts read at once took
    a 4-hour training to 0.8 GiB. Read a batch at a time, every model still sees the same rows."""
    import pandas as pd
    from collector import netdata_api, training, training_window
    t = np.arange(1000, 2200, dtype=float)
    calls = []

    def fetch(host_charts, after, before, **kwargs):
        charts = [c for cs in host_charts.values() for c in cs]
        calls.append((len(charts), after, before))
        if 'system.c055' in charts:
            raise netdata_api.NetdataError('h:1 answered HTTP 500')
        rng = np.random.default_rng(len(calls))
        cols = ['h:1::{}|{}'.format(c, d) for c in charts for d in ('a', 'b')]
        return pd.DataFrame(rng.normal(10, 1, (t.size, len(cols))), index=t, columns=cols), t, []
    monkeypatch.setattr(training_window, 'fetch_training_frame', fetch)
    cfg = parse_job_config({'host': 'h:1', 'train_min_n_secs': 120})
    charts = ['system.c{:03d}'.format(i) for i in range(2 * training.TRAIN_BATCH_CHARTS + 10)]
    specs = [ModelSpec(c, 'h:1', chart=c) for c in charts]
    specs.append(ModelSpec('custom', 'h:1', columns=('h:1::system.c000|a', 'h:1::system.c070|b')))
    request = TrainingRequest(cfg, specs, -1200, 0, listed_seconds={c: 3600 for c in charts}, agent_now=2199)
    result = run_training(request)
    assert max(n for n, _, _ in calls) <= training.TRAIN_BATCH_CHARTS and len(calls) == 4
    # the window relative to the agent's clock fixed where it listed its charts: the rows the
    # relative window holds, for every batch; the custom model's two charts last
    assert all(c[1:] == (1000, 2199) for c in calls) and calls[-1][0] == 2
    k = 55 // training.TRAIN_BATCH_CHARTS   # system.c055's batch
    failed = set(charts[k * training.TRAIN_BATCH_CHARTS:(k + 1) * training.TRAIN_BATCH_CHARTS])
    assert set(result.errors) == failed and not result.error
    assert result.errors['system.c055'] == 'its training window could not be read (h:1 answered HTTP 500)'
    assert set(result.models) == set(charts) - failed | {'custom'}


def test_wide_charts_are_read_in_smaller_batches_than_narrow_ones():
    """The window read grows with dimensions: 25 of a large server's apps.* charts of 150
    process groups each, read at once, took a training's peak to 1.7 GiB. A batch holds up to 25
    charts and TRAIN_BATCH_DIMENSIONS of their listed dimensions; one wider than that is read
    alone, and a chart not listed counts one."""
    from collector import training
    from collector.training import training_batches
    wide = ['apps.c{:02d}'.format(i) for i in range(4)]
    narrow = ['system.c{:02d}'.format(i) for i in range(60)]
    specs = [ModelSpec(c, 'h:1', chart=c) for c in wide + narrow]
    dims = dict({c: 150 for c in wide}, **{c: 4 for c in narrow[:50]})   # the last 10 not listed
    batches = training_batches(specs, dimensions=dims)
    assert [[s.chart for s in b] for b in batches[:3]] == [[c] for c in wide[:3]]
    assert [len(b) for b in batches[3:]] == [13, 25, 23]   # the last wide one beside 12 narrow: 198
    assert all(sum(dims.get(s.chart, 1) for s in b) <= training.TRAIN_BATCH_DIMENSIONS for b in batches)
    # as before where the chart list gave no counts
    assert [len(b) for b in training_batches(specs)] == [25, 25, 14]


def test_a_chart_too_wide_to_read_whole_is_read_over_its_newest_rows_and_the_others_over_the_window(monkeypatch):
    """A window read costs several times its numbers, and its features seven times them: 4
    hours of one 5000-dimension chart took the training past 12 GB, killed with every chart's
    model. A chart wider than MAX_READ_VALUES allows over the window is read over its newest
    rows; the others as before."""
    import pandas as pd
    from collector import training, training_window
    monkeypatch.setattr(training, 'MAX_READ_VALUES', 60000)
    calls = {}

    def fetch(host_charts, after, before, **kwargs):
        charts = [c for cs in host_charts.values() for c in cs]
        calls[tuple(charts)] = (after, before)
        t = np.arange(after, before + 1, dtype=float)
        cols = ['h:1::{}|d{}'.format(c, k) for c in charts for k in range(2)]
        return pd.DataFrame(np.random.default_rng(0).normal(10, 1, (t.size, len(cols))), index=t, columns=cols), t, []
    monkeypatch.setattr(training_window, 'fetch_training_frame', fetch)
    cfg = parse_job_config({'host': 'h:1', 'train_min_n_secs': 120})
    specs = [ModelSpec(c, 'h:1', chart=c) for c in ('apps.cpu', 'system.cpu', 'system.ram')]
    listed = {'apps.cpu': 300, 'system.cpu': 4, 'system.ram': 2}   # (the chart list's counts)
    result = run_training(TrainingRequest(cfg, specs, -1200, 0, listed_seconds={c: 3600 for c in listed},
                                          agent_now=2199, listed_dimensions=listed))
    assert calls == {('apps.cpu',): (1999, 2199), ('system.cpu', 'system.ram'): (1000, 2199)}
    assert set(result.models) == set(listed) and not result.errors
    assert result.models['apps.cpu'].info['window_cut_for_width'] == 60000 // 300
    assert result.models['apps.cpu'].info['window'][0] >= 1999 > result.models['system.cpu'].info['window'][0]
    assert 'window_cut_for_width' not in result.models['system.cpu'].info
    # a chart within the limit, not listed, or without the history to fill more, is read whole
    for dims, history in (({'apps.cpu': 50}, {}), ({}, {}), ({'apps.cpu': 300}, {'apps.cpu': 150})):
        assert training._cut_for_width(specs[:1], dims, history, 1200) is None
    # a job stepping every 5 s reads the same one-second rows (points=0): the same cut, not 5 times the values
    cfg5 = parse_job_config({'host': 'h:1', 'train_min_n_secs': 120, 'update_every': 5})
    calls.clear()
    run_training(TrainingRequest(cfg5, specs[:1], -1200, 0, listed_seconds={'apps.cpu': 3600}, agent_now=2199,
                                 listed_dimensions=listed))
    assert calls == {('apps.cpu',): (1999, 2199)}, calls


def test_a_training_process_still_exiting_after_its_result_does_not_hold_up_a_step(tmp_path):
    """The result is read as soon as the training writes it; the process's own exit (an
    interpreter with pandas and scikit-learn loaded, niced on a busy box: seconds) is reaped
    on later steps, not waited for in the step that collects the result."""
    import stat
    import sys
    from collector.trainers import SubprocessTrainer
    fake = tmp_path / 'python'
    fake.write_text('#!/bin/sh\nexec "{}" -c "{}"\n'.format(sys.executable, '; '.join([
        'import sys, pickle, time', 'sys.stdin.buffer.read()',
        'from collector.training import TrainingResult',
        "sys.stdout.buffer.write(pickle.dumps(TrainingResult(error='done'), protocol=4))",
        'sys.stdout.flush()', 'import os', 'os.close(1)', 'time.sleep(60)'])))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    trainer = SubprocessTrainer(python=str(fake))
    try:
        trainer.start({'a': 'request'})
        trainer.wait(30)
        proc = trainer._proc
        result = trainer.poll()
        assert result is not None and result.error == 'done' and not trainer.busy
        assert proc.poll() is None   # still sleeping: the step did not wait for its exit
    finally:
        trainer.close()
    assert proc.poll() is not None   # and the job's end does not leave it behind


def _sleeping_python(tmp_path):
    """A stand-in for the training's interpreter that reads nothing and never answers."""
    import stat
    import sys
    fake = tmp_path / 'python'
    fake.write_text('#!/bin/sh\nexec "{}" -c "import time; time.sleep(60)"\n'.format(sys.executable))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return str(fake)


def test_a_training_whose_reader_thread_cannot_start_leaves_the_job_free(tmp_path, monkeypatch):
    """The process started, but no thread is to be had for its request and result (pids.max,
    ulimit -u): the start fails, the process is killed, and the next steps neither wait for it
    (they did, for good: the child waited for a request that never came) nor see a training."""
    from collector.trainers import SubprocessTrainer
    refuse_threads(monkeypatch, 'anomalies-train-io')
    trainer = SubprocessTrainer(python=_sleeping_python(tmp_path))
    with pytest.raises(RuntimeError, match="can't start new thread"):
        trainer.start({'a': 'request'})
    proc = trainer._ending[0]
    assert not trainer.busy and trainer.poll() is None
    assert proc.wait(10) is not None   # killed
    trainer.close()


def _script(tmp_path, name, text):
    import stat
    path = tmp_path / name
    path.write_text('#!/bin/sh\n' + text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_a_training_killed_outright_is_told_as_memory_and_what_needs_less(tmp_path):
    """The kernel's out-of-memory killer (or a cgroup's limit) ends a training with SIGKILL:
    'exited with code -9' alone left a small box's owner to guess, and the charts untrained."""
    from collector.trainers import SubprocessTrainer
    trainer = SubprocessTrainer(python=_script(tmp_path, 'killed', 'cat > /dev/null; kill -9 $$\n'))
    try:
        trainer.start({'a': 'request'})
        trainer.wait(30)
        error = trainer.poll().error
    finally:
        trainer.close()
    assert error.startswith('training process exited with code -9 and no result (killed: most likely by the '
                            'kernel for memory'), error
    assert 'a smaller train_n_secs or train_max_n, or fewer charts (charts_regex), needs less' in error


def test_a_training_past_its_time_is_stopped_without_waiting_for_its_end(tmp_path):
    """A training killed for its time may take long to die (stuck in I/O on a stalled SD card):
    the step says it was stopped and goes on; the process is reaped on later steps."""
    from collector.trainers import SubprocessTrainer
    trainer = SubprocessTrainer(python=_sleeping_python(tmp_path), max_seconds=0.3)
    try:
        trainer.start({'a': 'request'})
        stuck = trainer._proc
        stuck.kill = lambda: None   # as a process that does not die at once
        assert trainer.poll() is None and trainer.busy
        time.sleep(0.4)
        result = trainer.poll()
        assert result.error.startswith('training took longer than 0.3s and was stopped (a slow or busy box') and not trainer.busy
        assert stuck.poll() is None   # not waited for
    finally:
        subprocess.Popen.kill(stuck)
        trainer.close()
    assert stuck.poll() is not None


def test_a_stopped_trainings_output_closing_late_does_not_stand_for_the_next_result(tmp_path):
    """Killed for its time, a training's output may close only later (here a process of its
    own holds it 3 s): its reader then ends after the next training has answered, and wrote
    over that result ('exited with no result' instead)."""
    from collector.trainers import SubprocessTrainer
    from collector.training import TrainingResult
    slow = _script(tmp_path, 'slow', '(sleep 3) &\nexec sleep 60\n')
    answer = tmp_path / 'answer.pkl'
    answer.write_bytes(pickle.dumps(TrainingResult(error='the second'), protocol=4))
    good = _script(tmp_path, 'good', 'cat > /dev/null; sleep 1; cat {}\n'.format(answer))
    trainer = SubprocessTrainer(python=slow, max_seconds=0.3)
    try:
        trainer.start({'a': 'request'})
        time.sleep(0.4)
        assert 'was stopped' in trainer.poll().error
        stopped = time.monotonic()
        trainer.python = good
        trainer.start({'a': 'request'})
        trainer.wait(30)
        time.sleep(max(0.0, 3.5 - (time.monotonic() - stopped)))   # the first one's output has closed since
        assert trainer.poll().error == 'the second'
    finally:
        trainer.close()


def test_a_young_agents_training_asks_only_for_the_history_it_lists():
    """The agent answers a window's seconds before a chart's first value with empty rows: on
    an agent minutes old, a 4-hour window was thousands of empty rows per chart per training."""
    from collector.training import _held_from
    assert _held_from(['system.cpu', 'system.ram'], {'system.cpu': 100, 'system.ram': 300.5}, 10000, 1) == \
        10000 - 300 - 2 - 60
    # a chart the list did not give (listed later, another host's): the whole window
    assert _held_from(['system.cpu', 'disk.sdb'], {'system.cpu': 100}, 10000, 1) == -float('inf')


def test_a_chart_too_wide_for_memory_costs_its_own_model_not_the_training(monkeypatch):
    """On a small box one wide chart (an apps.* chart of 150 process groups over 4 hours: 14400
    rows of 1050 features) can run the training out of memory while its features are built:
    that chart is not trained, saying why, and every other chart still is."""
    import pandas as pd
    from collector import features, training_window
    t = np.arange(1000, 1600, dtype=float)
    rng = np.random.default_rng(0)
    cols = ['h:1::system.cpu|user', 'h:1::system.cpu|system'] + ['h:1::apps.cpu|g{}'.format(i) for i in range(150)]
    frame = pd.DataFrame(rng.normal(10, 1, (t.size, len(cols))), index=t, columns=cols)
    monkeypatch.setattr(training_window, 'fetch_training_frame', lambda *a, **k: (frame, t, []))
    make_features = features.make_features

    def short_of_memory(values, *a, **k):
        if values.shape[1] > 100:
            raise MemoryError('Unable to allocate 115. MiB for an array with shape (14392, 1050)')
        return make_features(values, *a, **k)
    monkeypatch.setattr(features, 'make_features', short_of_memory)
    cfg = parse_job_config({'host': 'h:1', 'train_min_n_secs': 120, 'charts_to_exclude': ''})
    specs = [ModelSpec('apps.cpu', 'h:1', chart='apps.cpu'), ModelSpec('system.cpu', 'h:1', chart='system.cpu')]
    result = run_training(TrainingRequest(cfg, specs, 1000, 1599))
    assert not result.error and list(result.models) == ['system.cpu']
    assert result.errors['apps.cpu'].startswith('out of memory for its 150 dimensions over 600 rows'), result.errors


def test_a_wide_charts_training_holds_few_copies_of_its_features(monkeypatch):
    """What one chart's training takes grows with its dimensions times the window's rows (an
    apps.* chart of 150 process groups over 4 hours: 115 MiB a copy of its features, the
    training at 850 MiB): the features are not copied for the one phase of update_every 1,
    and the window with a misread pulled in is let go once the fit has its scaled form."""
    import tracemalloc
    import pandas as pd
    from collector import training_window
    t = np.arange(1000, 11000, dtype=float)
    dims = 30
    values = np.abs(np.random.default_rng(0).normal(10, 1, (t.size, dims)))
    values[5000, 3] = 1e7   # a misread: the fit is on the window with it pulled in (a copy)
    frame = pd.DataFrame(values, index=t, columns=['h:1::apps.cpu|g{}'.format(i) for i in range(dims)])
    monkeypatch.setattr(training_window, 'fetch_training_frame', lambda *a, **k: (frame, t, []))
    cfg = parse_job_config({'host': 'h:1', 'charts_to_exclude': ''})
    features = t.size * dims * 7 * 8   # bytes of one copy of the feature matrix
    tracemalloc.start()
    try:
        result = run_training(TrainingRequest(cfg, [ModelSpec('apps.cpu', 'h:1', chart='apps.cpu')], 1000, 10999))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert 'apps.cpu' in result.models
    assert peak < 4.8 * features, peak / features   # 5.35 before, 4.35 now


def test_a_chart_with_less_history_than_one_fit_needs_waits_for_it_rather_than_failing(replay):
    """train_min_n_secs 0 (train on what there is) on an agent 20 s old, or a smooth_n longer
    than train_min_n_secs: a chart whose history is short of what its features and the fit's
    minimum of rows take waits for that much, as for train_min_n_secs, and is tried again when
    it may have it; it was an error ('only 21 rows of history, need 38'), tried a minute on."""
    replay.clock.set(START + 20)
    spec = ModelSpec('system.cpu', replay.host, chart='system.cpu')
    for conf in ({'train_min_n_secs': 0}, {'train_min_n_secs': 10, 'smooth_n': 30}):
        cfg = parse_job_config(dict({'host': replay.host}, **conf))
        least = 30 + cfg.training_rows_needed - 1
        result = run_training(TrainingRequest(cfg, [spec], -14400, 0))
        assert not result.error and not result.errors
        assert 0 < result.waiting['system.cpu'] < least and result.min_history == least
    replay.clock.set(START + 60)   # enough for the defaults' 38
    result = run_training(TrainingRequest(parse_job_config({'host': replay.host, 'train_min_n_secs': 0}), [spec],
                                          -14400, 0))
    assert 'system.cpu' in result.models and not result.waiting


def test_the_history_one_fit_needs_is_the_shortest_window_and_the_docs_say_it():
    """What a chart waits for under train_min_n_secs 0 is the shortest training window the
    configuration check takes (one helper for both), and features.md's figures are its."""
    import os
    import re
    from collector.config import least_window_secs
    docs = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'docs', 'features.md')).read()
    said = re.search(r'\((\d+) s with the defaults, (\d+) s with `smooth_n: 600`\)', docs)
    assert said, 'features.md no longer gives the figures'
    defaults, smooth = parse_job_config({}), parse_job_config({'smooth_n': 600, 'train_n_secs': 3600})
    assert [int(said.group(1)), int(said.group(2))] == [
        least_window_secs(c.diffs_n, c.smooth_n, c.lags_n, c.update_every) for c in (defaults, smooth)]


def test_a_window_too_short_once_its_gaps_are_left_out_says_so():
    """A young agent's chart read 51 rows, enough for the 38 a fit needs, but its features
    start again after each gap in its collection: 'only 51 rows of history, need 38' said
    nothing of where the rest went."""
    import pandas as pd
    from collector.training import TrainingResult, _fit_one
    cfg = parse_job_config({'train_min_n_secs': 0})
    times = np.concatenate([np.arange(0, 20), np.arange(100, 120)]).astype(float)   # 40 rows, a gap
    df = pd.DataFrame({'h:1::system.load|load1': np.random.default_rng(0).normal(1, 0.1, times.size)},
                      index=times)
    spec = ModelSpec('system.load', 'h:1', chart='system.load')
    result = TrainingResult(min_history=30 + cfg.training_rows_needed - 1)
    _fit_one(TrainingRequest(cfg, [spec], 0, 120), spec, df, times, list(df.columns), {}, result)
    gapped = cfg.training_rows_needed - 1   # the rows whose features would reach back over it
    assert result.errors == {'system.load': 'only 40 rows of history (left out: {} just after gaps in its '
                                            'collection), need {}'.format(gapped, result.min_history)}, result
