"""``python -m collector top`` ranks charts from what the collector stored in the agent."""
import gzip
import json
import os
import subprocess
import sys

import pytest

from collector.replay import Recording, ReplayClock, ReplayServer
from collector.top import rank
from conftest import ROOT, START, _chart


def test_rank_orders_by_flagged_time_then_probability():
    rows = rank({'a': [10, 20, None], 'b': [90, 95, 99], 'c': [50, 50, 50]},
                {'a': [0, 0, 0], 'b': [0, 1, 1], 'c': [1, 0, 1]})
    assert [r['chart'] for r in rows] == ['b', 'c', 'a']
    assert (rows[0]['flagged_s'], rows[0]['flag_events'], rows[0]['max_prob']) == (2, 1, 99)
    assert rows[1]['flag_events'] == 2 and rows[2]['mean_prob'] == 15


def write_anomalies_recording(path, seconds=120):
    """The default job's charts, and a second job's ('child.lan', watching another node, named
    with a dot as a host is) whose system.cpu was flagged for 10 s where the default job's was
    flagged for 30."""
    os.makedirs(os.path.join(path, 'data'))
    charts = {'anomalies.probability': _chart('anomalies.probability', ['system.cpu_prob', 'system.ram_prob',
                                                                          'average_prob']),
              'anomalies.anomaly': _chart('anomalies.anomaly', ['system.cpu_anomaly', 'system.ram_anomaly']),
              'anomalies_child.lan.probability': _chart('anomalies_child.lan.probability', ['system.cpu_prob']),
              'anomalies_child.lan.anomaly': _chart('anomalies_child.lan.anomaly', ['system.cpu_anomaly'])}
    for cid in ('anomalies_child.lan.probability', 'anomalies_child.lan.anomaly'):
        charts[cid]['context'] = cid.replace('_child.lan', '')
    rows = {cid: [] for cid in charts}
    for i in range(seconds + 1):
        cpu = 1 if 60 <= i < 90 else 0
        ram = 1 if 100 <= i < 105 else 0
        child = 1 if 10 <= i < 20 else 0
        rows['anomalies.probability'].append([START + i, 100.0 if cpu else 20.0, 100.0 if ram else 40.0, 30.0])
        rows['anomalies.anomaly'].append([START + i, cpu, ram])
        rows['anomalies_child.lan.probability'].append([START + i, 100.0 if child else 10.0])
        rows['anomalies_child.lan.anomaly'].append([START + i, child])
    for cid, c in charts.items():
        with gzip.open(os.path.join(path, 'data', cid + '.json.gz'), 'wt') as f:
            json.dump({'labels': ['time'] + list(c['dimensions']), 'data': rows[cid][::-1]}, f)
    meta = {'start': START, 'end': START + seconds, 'update_every': 1, 'netdata_version': 'v1.37.1',
            'hostname': 'node', 'description': 'anomalies charts as the collector stores them'}
    for name, body in (('recording.json', meta), ('info.json', {'version': 'v1.37.1', 'mirrored_hosts': ['node']}),
                       ('charts.json', {'hostname': 'node', 'version': 'v1.37.1', 'update_every': 1,
                                        'charts': charts}), ('labels.json', {'incidents': []})):
        with open(os.path.join(path, name), 'w') as f:
            json.dump(body, f)
    return path


def test_top_command_lists_the_flagged_charts_first(tmp_path):
    """And a job's chart that the agent lists but does not serve (it answers 404) is told,
    not a reason to rank nothing."""
    path = write_anomalies_recording(str(tmp_path / 'rec'))
    with open(os.path.join(path, 'charts.json')) as f:
        body = json.load(f)
    body['charts']['anomalies_gone.probability'] = dict(_chart('anomalies_gone.probability', ['system.cpu_prob']),
                                                        context='anomalies.probability')
    with open(os.path.join(path, 'charts.json'), 'w') as f:
        json.dump(body, f)
    rec = Recording(path)
    with ReplayServer(rec, ReplayClock(START + 120, stepped=True)) as server:
        r = subprocess.run([sys.executable, '-m', 'collector', 'top', '--host', server.host, '--after', '-120'],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert 'over the last 120 s' in lines[0]
    ranked = [line.split()[:4] for line in lines[2:5]]
    assert ranked == [['1', 'system.cpu', '30', '1'], ['2', 'child.lan/system.cpu', '10', '1'],
                      ['3', 'system.ram', '5', '1']]
    assert not any('average' in line for line in lines)
    assert lines[-1].startswith('not read: anomalies_gone.probability: ') and 'HTTP 404' in lines[-1], lines[-1]


def test_top_without_anomalies_charts_says_so(replay):
    r = subprocess.run([sys.executable, '-m', 'collector', 'top', '--host', replay.host],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and 'has no anomalies charts' in r.stderr


@pytest.mark.parametrize('window, told', [
    (['--after', '600'], '--after 600: give seconds relative to now'),
    (['--after', '-10', '--before', '-600'], 'the window ends before it starts'),
    (['--after', '99999999999999999999'], 'give seconds relative to now'),
    (['--host', 'http://127.0.0.1:19999'], 'without a scheme'),
])
def test_top_refuses_a_window_or_host_it_cannot_ask_for(window, told):
    r = subprocess.run([sys.executable, '-m', 'collector', 'top', '--host', '127.0.0.1:9'] + window,
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and told in r.stderr and 'Traceback' not in r.stderr, r.stderr
