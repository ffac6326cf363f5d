"""Shared fixtures: a small synthetic recording in the recorded-API format, and its replay."""
import gzip
import json
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SHARED = os.path.join(os.path.dirname(ROOT), 'shared')

START = 1_700_000_000
SECONDS = 900
SPIKE = (780, 840)  # offsets of an injected incident on system.cpu


def _chart(cid, dims, every=1, family='cpu', units='percentage'):
    return {'id': cid, 'name': cid, 'type': cid.split('.')[0], 'family': family, 'context': cid, 'title': cid,
            'units': units, 'update_every': every, 'chart_type': 'line',
            'dimensions': {d: {'name': d} for d in dims}}


def synthetic_series(seconds=SECONDS, seed=1):
    """Per chart: (dims, every, rows) with rows as (t, values) oldest first."""
    rng = np.random.default_rng(seed)
    t = np.arange(seconds + 1)
    user = 10 + 2 * np.sin(t / 30.0) + rng.normal(0, 0.5, t.size)
    system = 5 + rng.normal(0, 0.3, t.size)
    lo, hi = SPIKE
    user[lo:hi] += 70
    cpu = np.column_stack([user, system, np.zeros(t.size), 100 - user - system])
    ram = np.column_stack([4000 + rng.normal(0, 5, t.size), 2000 + rng.normal(0, 5, t.size)])
    load = np.column_stack([1 + 0.1 * np.sin(t / 60.0)] * 3)
    nulls = np.column_stack([rng.poisson(3, t.size).astype(float), rng.poisson(5, t.size).astype(float)])
    nulls[:200, 1] = np.nan  # a dimension that appeared later
    return {
        'system.cpu': (['user', 'system', 'guest', 'idle'], 1, cpu),
        'system.ram': (['used', 'cached'], 1, ram),
        'system.load': (['load1', 'load5', 'load15'], 5, load),
        'system.forks': (['started', 'late'], 1, nulls),
        'system.uptime': (['uptime'], 1, t[:, None].astype(float)),
        'apps.cpu': (['other'], 1, rng.normal(1, 0.1, (t.size, 1))),
    }


def write_recording(path, seconds=SECONDS, seed=1):
    os.makedirs(os.path.join(path, 'data'), exist_ok=True)
    series = synthetic_series(seconds, seed)
    # as a real agent: /api/v1/charts leaves out a hidden dimension (system.cpu's idle) that
    # /api/v1/data and allmetrics have
    charts = {cid: _chart(cid, [d for d in dims if (cid, d) != ('system.cpu', 'idle')], every)
              for cid, (dims, every, _) in series.items()}
    end = START + seconds
    with open(os.path.join(path, 'recording.json'), 'w') as f:
        json.dump({'start': START, 'end': end, 'update_every': 1, 'netdata_version': 'v1.37.1',
                   'hostname': 'synthetic', 'description': 'synthetic test recording'}, f)
    with open(os.path.join(path, 'charts.json'), 'w') as f:
        json.dump({'hostname': 'synthetic', 'version': 'v1.37.1', 'update_every': 1, 'charts': charts}, f)
    with open(os.path.join(path, 'info.json'), 'w') as f:
        json.dump({'version': 'v1.37.1', 'mirrored_hosts': ['synthetic']}, f)
    for cid, (dims, every, values) in series.items():
        rows = []
        for i in range(every if every > 1 else 0, seconds + 1, every):   # as the agent answers after=START
            rows.append([START + i] + [None if np.isnan(v) else round(float(v), 4) for v in values[i]])
        with gzip.open(os.path.join(path, 'data', cid + '.json.gz'), 'wt') as f:
            json.dump({'labels': ['time'] + dims, 'data': rows[::-1]}, f)
    with open(os.path.join(path, 'labels.json'), 'w') as f:
        json.dump({'incidents': [{'kind': 'cpu-spike', 'start': START + SPIKE[0], 'end': START + SPIKE[1],
                                  'expected_charts': ['system.cpu']}], 'notes': 'synthetic'}, f)
    return path


def with_dimensions(recording, path, dims_by_chart):
    """A copy of ``recording`` at ``path`` whose charts have other dimensions: ``{chart: [(id,
    name), ...]}`` in the data's column order, as an agent may list them (ids that are not
    their names, a name given twice)."""
    import shutil
    shutil.copytree(recording, path)
    with open(os.path.join(path, 'charts.json')) as f:
        charts = json.load(f)
    for chart, dims in dims_by_chart.items():
        data = os.path.join(path, 'data', chart + '.json.gz')
        with gzip.open(data, 'rt') as f:
            body = json.load(f)
        body['labels'] = ['time'] + [name for _, name in dims]
        with gzip.open(data, 'wt') as f:
            json.dump(body, f)
        charts['charts'][chart]['dimensions'] = {dim_id: {'name': name} for dim_id, name in dims}
    with open(os.path.join(path, 'charts.json'), 'w') as f:
        json.dump(charts, f)
    return path



def refuse_threads(monkeypatch, name):
    """No thread named ``name`` can start, as in a process at its limit (a cgroup's pids.max,
    ulimit -u); every other thread starts as usual."""
    import threading
    start = threading.Thread.start

    def refused(thread):
        if thread.name == name:
            raise RuntimeError("can't start new thread")
        return start(thread)
    monkeypatch.setattr(threading.Thread, 'start', refused)


@pytest.fixture(autouse=True)
def _models_dir(tmp_path, monkeypatch):
    """Saved models go where the agent would put them: here, a fresh dir per test."""
    monkeypatch.setenv('NETDATA_LIB_DIR', str(tmp_path / 'netdata-lib'))


@pytest.fixture(scope='session')
def recording(tmp_path_factory):
    return write_recording(str(tmp_path_factory.mktemp('rec')))


@pytest.fixture
def replay(recording):
    """A replay server whose clock stands 600 s into the synthetic recording, stepped."""
    from collector.replay import Recording, ReplayClock, ReplayServer
    rec = Recording(recording)
    clock = ReplayClock(rec.start + 600, stepped=True)
    server = ReplayServer(rec, clock).start()
    yield server
    server.stop()


class ListLogger:
    """Collects log lines like a python.d job's logger."""

    def __init__(self):
        self.lines = []

    def debug(self, *m):
        pass

    def info(self, *m):
        self.lines.append(('INFO', ' '.join(map(str, m))))

    def warning(self, *m):
        self.lines.append(('WARNING', ' '.join(map(str, m))))

    def error(self, *m):
        self.lines.append(('ERROR', ' '.join(map(str, m))))

    def errors(self):
        return [m for level, m in self.lines if level == 'ERROR']


@pytest.fixture
def logger():
    return ListLogger()
