import numpy as np
import pytest

import os
import re

from collector.metrics import (LASTING_ALARM_S, NODE_ALARM_CLEAR, NODE_ALARM_WARN, dataset_metrics, event_scores, f1,
                               point_adjust, recordings_summary, rising_edges, score_alarms, score_alarms_by_phase,
                               score_incidents, stock_alarms_up)


def test_rising_edges():
    assert rising_edges([1, 2, 3, 4, 5, 6], [1, 1, 0, 1, 0, 1]) == [1, 4, 6]
    assert rising_edges([], []) == []


def test_incident_detection_delay_and_false_flags():
    times = list(range(0, 400))
    incidents = [{'kind': 'cpu', 'start': 100, 'end': 150, 'expected_charts': ['system.cpu', 'system.load']},
                 {'kind': 'disk', 'start': 300, 'end': 320, 'expected_charts': ['disk.vda']}]
    cpu = np.zeros(400, dtype=int)
    cpu[103:110] = 1      # detects incident 1 after 3 s
    cpu[50] = 1           # a false flag before
    cpu[200:202] = 1      # inside the 60 s quiet window after incident 1: not false
    cpu[215] = 1          # after it: false
    disk = np.zeros(400, dtype=int)
    disk[331] = 1         # 11 s after the end: too late to detect, but in the quiet window
    other = np.zeros(400, dtype=int)
    other[120] = 1        # flags during the incident but is not an expected chart
    r = score_incidents(times, {'system.cpu': cpu, 'disk.vda': disk, 'apps.cpu': other}, incidents)
    first, second = r['incidents']
    assert first['detected'] and first['delay_s'] == 3 and first['charts_flagged'] == ['system.cpu']
    assert 'apps.cpu' in first['all_charts_flagged']
    assert not second['detected'] and second['delay_s'] is None
    # incident 1 lasts steps 100..150 (51 steps); system.cpu is up for 103..109
    assert first['flagged_share'] == round(7 / 51, 3) and second['flagged_share'] == 0.0
    assert r['detected'] == 1 and r['incidents_total'] == 2
    assert r['false_flag_events'] == 2
    assert r['false_flags_by_chart'] == {'system.cpu': 2}
    # quiet windows: [100, 210] and [300, 380] -> 400 - 111 - 81 = 208 clean seconds
    assert r['clean_hours'] == round(208 / 3600, 4)
    assert r['charts'] == 3
    # flags up outside the quiet windows: cpu at 50 and 215, of 3 charts x 208 clean steps
    assert r['clean_flagged_share'] == round(2 / (3 * 208), 5)


def test_a_flag_already_up_at_the_start_detects_with_zero_delay():
    times = list(range(10))
    flags = [0, 0, 1, 1, 1, 1, 0, 0, 0, 0]
    r = score_incidents(times, {'c': flags}, [{'start': 4, 'end': 6, 'expected_charts': ['c']}])
    assert r['incidents'][0]['delay_s'] == 0
    assert r['false_flag_events'] == 1


def test_an_incident_in_the_warm_up_is_neither_found_nor_missed():
    """Evaluated with a warm-up past an incident's start, the job never saw it (and may have
    trained on it): it was counted as missed and the recording's target as failed."""
    times = list(range(100, 400))   # the job's steps start at 100
    incidents = [{'kind': 'early', 'start': 50, 'end': 120, 'expected_charts': ['c']},
                 {'kind': 'late', 'start': 300, 'end': 320, 'expected_charts': ['c']}]
    c = np.zeros(300, dtype=int)
    c[110 - 100] = 1   # while the early incident goes on: no false flag
    c[302 - 100] = 1
    r = score_incidents(times, {'c': c}, incidents, scored_from=100)
    early, late = r['incidents']
    assert early['in_warmup'] and not early['detected'] and late['detected'] and late['delay_s'] == 2
    assert r['detected'] == 1 and r['incidents_total'] == 1 and r['false_flag_events'] == 0
    assert recordings_summary([r])['met']


def test_the_stock_alarms_replayed_warn_with_hysteresis_and_on_a_lasting_flag():
    """As the agent's health checks them: every 10 s, on the largest value since the last check,
    the status held until the next one."""
    times = list(range(100, 160))
    share = [0.0] * 60                  # % of models flagged in the last minute
    share[3] = 5.6                      # one step above 5 %: the check at 110 sees it
    share[4:20] = [4.0] * 16            # held above 3 %, then cleared by the check at 130 ...
    share[36:39] = [4.5] * 3            # ... and not raised again by 4.5 %
    longest = [0] * 60                  # s the longest flag has been up
    longest[45] = 31                    # over 30 s, once
    up = stock_alarms_up(times, share, longest)
    assert up == [0] * 10 + [1] * 20 + [0] * 20 + [1] * 10
    # the checks 3 s past each 10: the same warning comes as the value crosses
    early = stock_alarms_up(times, share, longest, phase=3)
    assert early[:4] == [0, 0, 0, 1] and early[32:34] == [1, 0] and early[40:] == [0] * 13 + [1] * 7
    r = score_alarms(times, up, [{'start': 102, 'end': 115, 'expected_charts': ['x']}])
    assert r['incidents'][0]['detected'] and r['incidents'][0]['delay_s'] == 8
    assert r['false_flag_events'] == 0      # 150: within the minute that follows the incident
    by_phase = score_alarms_by_phase(times, share, longest, [{'start': 102, 'end': 115, 'expected_charts': ['x']}])
    # found 1-10 s after onset as the checks fall: all ten phases in time, the median phase's delay 6 s
    assert by_phase['in_time_by_phase'] == [1] * 10 and by_phase['incidents'][0]['delay_s'] == 6
    summary = recordings_summary([dict(r, recording='a', alarms=by_phase)])   # the node's flags as the charts'
    assert summary['alarms'] == {'detected': 1, 'detected_in_time': 1, 'detected_in_time_range': [1, 1],
                                 'incidents_total': 1, 'median_delay_s': 6.0, 'false_alarms': 0,
                                 'false_alarms_per_hour': 0.0}


def test_where_the_alarm_checks_fall_decides_whether_a_short_warning_comes_in_time():
    times = list(range(0, 40))
    share = [0.0] * 40
    share[9:12] = [6.0] * 3   # up 9-11 s, for an incident from 0 s
    by_phase = score_alarms_by_phase(times, share, [0] * 40, [{'start': 0, 'end': 30, 'expected_charts': ['x']}])
    # a check at 9 or 10 s warns in time; at 11-18 s it warns 11-18 s after onset: late
    assert by_phase['in_time_by_phase'] == [1, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert by_phase['incidents'][0]['delay_s'] > 10
    summary = recordings_summary([dict(by_phase, recording='a', alarms=by_phase)])
    assert summary['alarms']['detected_in_time_range'] == [0, 1] and summary['alarms']['detected_in_time'] == 0


def test_the_alarm_summary_counts_late_warnings_as_found_but_not_in_time():
    times = list(range(100, 160))
    late = [0] * 60
    late[35:40] = [1] * 5   # warns 25 s after an incident begun at 110 and still going
    on_time = [0] * 60
    on_time[12:14] = [1] * 2
    incident = [{'start': 110, 'end': 140, 'expected_charts': ['x']}]
    results = [dict(score_alarms(times, up, incident), recording=name, alarms=score_alarms(times, up, incident))
               for name, up in (('late', late), ('on-time', on_time))]
    alarms = recordings_summary(results)['alarms']
    assert (alarms['detected'], alarms['detected_in_time'], alarms['median_delay_s']) == (2, 1, 13.5)
    # the median, not the mean: one late warning does not make the typical one late
    sooner = [0] * 60
    sooner[13:15] = [1] * 2
    results.append(dict(score_alarms(times, sooner, incident), recording='sooner',
                        alarms=score_alarms(times, sooner, incident)))
    assert recordings_summary(results)['alarms']['median_delay_s'] == 3.0


def test_the_replayed_alarms_are_the_shipped_health_config():
    conf = open(os.path.join(os.path.dirname(__file__), '..', 'health.d', 'anomalies.conf')).read()
    blocks = {m.group(1): m.group(0) for m in re.finditer(r'template: (\S+)[\s\S]*?(?=\n\s*template:|\Z)', conf)}
    rate, lasting = blocks['anomalies_node_rate'], blocks['anomalies_flag_lasting']
    assert re.search(r'on: anomalies\.rate\n', rate) and re.search(r'lookup: .* of flagged_1m\n', rate)
    warn = re.search(r'warn: .*\? \((\d+)\) : \((\d+)\)', rate)
    assert (float(warn.group(1)), float(warn.group(2))) == (NODE_ALARM_CLEAR, NODE_ALARM_WARN)
    assert re.search(r'on: anomalies\.flagged_for\n', lasting) and re.search(r'lookup: .* of longest\n', lasting)
    assert float(re.search(r'warn: \$this > (\d+)', lasting).group(1)) == LASTING_ALARM_S


def test_point_metrics_by_hand():
    labels = np.array([0, 0, 1, 1, 1, 0, 0, 1, 1, 0])
    pred = np.array([0, 1, 0, 1, 0, 0, 0, 0, 0, 0])
    # tp 1, precision 1/2, recall 1/5 -> f1 = 2/7
    assert f1(pred, labels) == pytest.approx(2 / 7)
    adjusted = point_adjust(pred, labels)
    assert adjusted.tolist() == [0, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    # two flag runs, one hits a segment; two segments, one hit
    assert event_scores(pred, labels) == (0.5, 0.5)


def test_dataset_metrics_perfect_and_random():
    labels = np.zeros(1000, dtype=int)
    labels[400:420] = 1
    perfect = labels.astype(float)
    m = dataset_metrics(perfect, labels, labels)
    assert m['auc_roc'] == 1.0 and m['auc_pr'] == 1.0 and m['best_f1'] == 1.0 and m['flag_f1'] == 1.0
    rnd = np.random.default_rng(0).random(1000)
    m = dataset_metrics(rnd, rnd > 0.99, labels)
    assert 0.35 < m['auc_roc'] < 0.65 and m['auc_pr'] < 0.1
    with pytest.raises(ValueError):
        dataset_metrics(rnd, rnd > 0.5, np.zeros(1000))


def _recording_result(name, delays, false_events, clean_hours):
    incidents = [{'kind': 'k', 'detected': d is not None, 'delay_s': d} for d in delays]
    return {'recording': name, 'incidents': incidents, 'incidents_total': len(incidents),
            'detected': sum(d is not None for d in delays), 'false_flag_events': false_events,
            'clean_hours': clean_hours,
            'false_flag_events_per_hour': round(false_events / clean_hours, 3) if clean_hours else None}


def test_recordings_summary_pools_false_flags_and_counts_late_detections_as_missed():
    a = _recording_result('a', [3, 10], 1, 0.05)      # alone 20/h
    b = _recording_result('b', [0, 2, 1], 0, 0.95)
    s = recordings_summary([a, b])
    # over 1 clean hour in all, one false flag: within the 2 per hour
    assert s['false_flag_events'] == 1 and s['false_flag_events_per_hour'] == 1.0
    assert s['detected_in_time'] == s['incidents_total'] == 5 and s['met']
    assert [r['met'] for r in s['per_recording']] == [False, True]
    late = _recording_result('c', [11, None], 0, 1.0)  # detected 11 s after onset, and one missed
    s = recordings_summary([b, late])
    assert s['detected_in_time'] == 3 and s['incidents_total'] == 5 and not s['met']
    # the target is at most 2 false flag events per clean hour: exactly 2 meets it
    assert recordings_summary([_recording_result('g', [1], 2, 1.0)])['met']
    noisy = _recording_result('d', [1], 5, 1.0)
    assert not recordings_summary([noisy])['met']
    assert recordings_summary([_recording_result('e', [1], 0, 0.0)])['false_flag_events_per_hour'] is None
    # the pooled rate comes from the unrounded clean time where the result has it, as its own table
    exact = dict(_recording_result('f', [1], 15, 0.1933), clean_seconds=696.0)
    assert recordings_summary([exact])['false_flag_events_per_hour'] == round(15 / (696.0 / 3600), 3)


def test_the_stock_alarms_warn_only_above_their_levels_as_the_agent_does():
    """The shipped alarms warn at ``$this > 5`` and ``$this > 30``: one model in 20 flagged
    (exactly 5 %) or a flag up for exactly 30 s is not yet a warning; a little more is."""
    times = list(range(100, 151))
    assert stock_alarms_up(times, [NODE_ALARM_WARN] * 51, [LASTING_ALARM_S] * 51) == [0] * 51
    share, longest = [0.0] * 51, [0] * 51
    share[12] = NODE_ALARM_WARN + 0.1      # seen by the check at 120
    longest[35] = LASTING_ALARM_S + 1      # seen by the check at 140
    assert stock_alarms_up(times, share, longest) == [0] * 20 + [1] * 10 + [0] * 10 + [1] * 10 + [0]


def test_an_incident_is_detected_by_a_flag_up_to_ten_seconds_after_its_end_and_each_chart_counts():
    """A flag rising 10 s after an incident's end still detects it (``DETECT_AFTER_END``);
    the share of an incident flagged counts a step once whichever expected chart is up."""
    incident = [{'start': 100, 'end': 120, 'expected_charts': ['system.load', 'system.cpu']}]
    times = list(range(0, 200))
    late = np.zeros(200, dtype=int)
    late[130] = 1
    r = score_incidents(times, {'system.load': late}, incident)
    assert r['incidents'][0]['detected'] and r['incidents'][0]['delay_s'] == 30
    load, cpu = np.zeros(200, dtype=int), np.zeros(200, dtype=int)
    load[100:111] = 1      # the first half of the incident
    cpu[110:121] = 1       # and the second, on the other expected chart
    r = score_incidents(times, {'system.load': load, 'system.cpu': cpu}, incident)
    assert r['incidents'][0]['flagged_share'] == 1.0


def test_the_retired_probability_alarm_is_not_offered_for_the_default_calibration():
    """The retired anomalies_anomaly_probabilities warns on a 2-minute average above 50: with the
    default calibration an ordinary step's probability is its rank in the training window, 50
    on average, so the install docs must not tell to copy it as they tell of the flags' one."""
    from collector.models import fit_model
    rng = np.random.default_rng(0)
    retired_level = 50
    ordinary = fit_model('c', list('abcd'), rng.normal(size=(3000, 4))).predict_proba(rng.normal(size=(3000, 4)))
    assert ordinary[:, 1].mean() * 100 == pytest.approx(retired_level, abs=2)
    minmax = fit_model('c', list('abcd'), rng.normal(size=(3000, 4)), calibration='minmax')
    assert minmax.predict_proba(rng.normal(size=(3000, 4)))[:, 1].mean() * 100 < retired_level / 2
    with open(os.path.join(os.path.dirname(__file__), '..', 'docs', 'install.md')) as f:
        health = f.read().split('## Health alarms')[1].split('\n## ')[0]
    health = ' '.join(health.split())
    assert not re.search(r'[Tt]hey still work on this module', health)
    said = re.search(r'`anomalies_anomaly_probabilities`[^.]*does not\s+carry over[^`]*?half the\s+charts', health)
    assert said and 'calibration: minmax' in health
