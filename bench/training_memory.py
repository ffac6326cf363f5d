"""Peak memory of one training on the default 4-hour window, by number of charts.

A replay of a synthetic agent (``--charts`` charts of ``--dims`` one-second dimensions, a
random walk each, ``--seconds`` of history) is served by ``python -m collector replay`` in a
process of its own; a fresh process runs the job's training (``training.run_training``, the
default model) on all of its charts, reading the window a batch at a time as the job does
(``TRAIN_BATCH_CHARTS`` charts and ``TRAIN_BATCH_DIMENSIONS`` of their dimensions at most),
then ``TRAIN_BATCH_CHARTS`` charts at a time whatever their dimensions (as before), then every
chart at once (as before batches). With ``--wide``, one chart of each of ``--dims`` dimensions,
as the job fits it (in blocks of dimensions, its rows sampled, a chart too wide read over its
newest rows: ``models.MAHALANOBIS_BLOCK_FEATURES``, ``models.MAX_FIT_VALUES``,
``training.MAX_READ_VALUES``), then as before them (one covariance over the whole window).
Printed: the training process's peak RSS (``ru_maxrss``, imports included), wall and CPU seconds.

    python bench/training_memory.py                    # 300 charts x 4 dims, 4 h (~3 min)
    python bench/training_memory.py --charts 37 100 300
    python bench/training_memory.py --charts 25 --dims 100   # a large server's wide charts
    python bench/training_memory.py --wide --dims 300 1000   # one chart that wide (~15 min)
"""
import argparse
import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from common import run_main  # first: it checks this Python before numpy is imported
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START = 1700000000

CHILD = r'''
import json, resource, sys, time
sys.path.insert(0, {root!r})
from collector import models, training
from collector.config import parse_job_config
from collector.training import ModelSpec, TrainingRequest, run_training
host, charts, batch, dims, seconds = {host!r}, {charts!r}, {batch!r}, {dims!r}, {seconds!r}
training.TRAIN_BATCH_CHARTS = batch
if {before_wide!r}:   # one covariance over the whole window, as before blocks and caps
    models.MAHALANOBIS_BLOCK_FEATURES = models.MAX_FIT_VALUES = training.MAX_READ_VALUES = 10 ** 12
cfg = parse_job_config({{'host': host, 'charts_to_exclude': ''}})
specs = [ModelSpec(c, host, chart=c) for c in charts]
t, cpu = time.monotonic(), time.process_time()
result = run_training(TrainingRequest(cfg, specs, -seconds, 0, listed_dimensions={{c: dims for c in charts}} if dims else {{}}))
print(json.dumps({{'models': len(result.models), 'errors': len(result.errors) + bool(result.error),
                  'rows': result.rows, 'seconds': time.monotonic() - t, 'cpu': time.process_time() - cpu,
                  'peak_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
'''


def write_recording(path, n_charts, dims, seconds, seed=0):
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(path, 'data'))
    end = START + seconds + 300
    charts = {}
    for i in range(n_charts):
        cid = 'system.c{:04d}'.format(i)
        names = ['d{}'.format(k) for k in range(dims)]
        charts[cid] = {'id': cid, 'name': cid, 'type': 'system', 'family': 'synthetic', 'context': 'system.synthetic',
                       'units': 'units', 'update_every': 1, 'first_entry': START, 'last_entry': end,
                       'dimensions': {n: {'name': n} for n in names}}
        n = end - START + 1
        values = 50 + np.cumsum(rng.normal(0, 0.1, (n, dims)), axis=0) + rng.normal(0, 1, (n, dims))
        rows = [[START + k] + [round(float(x), 3) for x in values[k]] for k in range(n - 1, -1, -1)]
        with gzip.open(os.path.join(path, 'data', cid + '.json.gz'), 'wt') as f:
            json.dump({'labels': ['time'] + names, 'data': rows}, f)
    with open(os.path.join(path, 'recording.json'), 'w') as f:
        json.dump({'start': START, 'end': end, 'update_every': 1, 'description': 'synthetic'}, f)
    with open(os.path.join(path, 'charts.json'), 'w') as f:
        json.dump({'hostname': 'synthetic', 'version': 'v1.37.1', 'update_every': 1, 'charts': charts}, f)
    return end


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def measure(n_charts, dims, seconds, wide=False):
    work = tempfile.mkdtemp(prefix='anomalies-bench-')
    server = None
    try:
        write_recording(os.path.join(work, 'rec'), n_charts, dims, seconds)
        port = free_port()
        server = subprocess.Popen([sys.executable, '-m', 'collector', 'replay', os.path.join(work, 'rec'),
                                   '--port', str(port), '--step-mode', '--start-offset', str(seconds + 290)],
                                  cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        host = '127.0.0.1:{}'.format(port)
        for _ in range(100):
            try:
                charts = sorted(json.load(urllib.request.urlopen('http://{}/api/v1/charts'.format(host)))['charts'])
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise SystemExit('the replay did not come up')
        for c in charts:   # the replay reads each chart's file once: not part of either figure
            urllib.request.urlopen('http://{}/api/v1/data?chart={}&after=-1&format=json'.format(host, c)).read()
        from collector.training import TRAIN_BATCH_CHARTS, TRAIN_BATCH_DIMENSIONS
        out = {}
        if wide:
            variants = (('blocks, sampled, cut', TRAIN_BATCH_CHARTS, dims, False),
                        ('one covariance (before)', TRAIN_BATCH_CHARTS, dims, True))
        else:
            variants = (('{} charts, {} dims'.format(TRAIN_BATCH_CHARTS, TRAIN_BATCH_DIMENSIONS),
                         TRAIN_BATCH_CHARTS, dims, False),
                        ('{} charts (before)'.format(TRAIN_BATCH_CHARTS), TRAIN_BATCH_CHARTS, 0, False),
                        ('all at once (before)', len(charts), 0, False))
        for name, batch, listed, before_wide in variants:
            code = CHILD.format(root=ROOT, host=host, charts=charts, batch=batch, dims=listed, seconds=seconds,
                                before_wide=before_wide)
            p = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT)
            if p.returncode:   # (killed for memory, as a chart of 5000 dimensions is before)
                out[name] = {'failed': 'exit {}: {}'.format(p.returncode, (p.stderr.strip().splitlines() or [''])[-1][:80])}
                continue
            out[name] = json.loads(p.stdout.strip().splitlines()[-1])
        return out
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--charts', type=int, nargs='+', default=[300])
    ap.add_argument('--dims', type=int, nargs='+', default=[4])
    ap.add_argument('--seconds', type=int, default=14400)
    ap.add_argument('--wide', action='store_true', help='one chart of each of --dims dimensions, fitted as the '
                                                         'job does and as before blocks and caps')
    args = ap.parse_args()
    if min(args.charts) < 1 or min(args.dims) < 1 or args.seconds < 1:
        ap.error('--charts, --dims and --seconds must be positive')
    print('{:>7} {:>6} {:<23} {:>7} {:>8} {:>8} {:>7} {:>10}'.format(
        'charts', 'dims', 'window read', 'models', 'wall s', 'cpu s', 'rows', 'peak MiB'))
    for n, dims in [(1, d) for d in args.dims] if args.wide else [(n, d) for n in args.charts for d in args.dims]:
        for name, r in measure(n, dims, args.seconds, args.wide).items():
            if 'failed' in r:
                print('{:>7} {:>6} {:<23} {}'.format(n, n * dims, name, r['failed']))
                continue
            print('{:>7} {:>6} {:<23} {:>7} {:>8.1f} {:>8.1f} {:>7} {:>10.0f}'.format(
                n, n * dims, name, r['models'], r['seconds'], r['cpu'], r['rows'], r['peak_mb']))


if __name__ == '__main__':
    run_main(main)
