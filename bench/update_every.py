"""What a model of the agent's averages does to a job that steps every few seconds.

A job with ``update_every: N`` reads one sample per chart each step. Each one-second
``system.*`` chart of a recording is modelled (default features and model) on the first 60 %
of the recording's clean lead three times: on the agent's N-second averages (what the job
learnt first), on one sample every N seconds (what its steps read, ``features.rows_every``;
what it learnt next) and on every phase of such samples (the steps may fall on any second of
N, ``features.phases_every``; what it learns now). Each is scored every N seconds over the
rest of the lead, which is clean; the figures are the chart-steps above each model's
threshold.

    python bench/update_every.py ../shared/recordings/netdata-* recordings/netdata-1.37-long-*
"""
import argparse
import glob
import gzip
import json
import os
import sys

from common import run_main  # first: it checks this Python before numpy is imported
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from collector.config import parse_job_config  # noqa: E402
from collector.features import feature_groups, phases_every, rows_every  # noqa: E402
from collector.models import fit_model  # noqa: E402

SKIPPED = ('system.uptime', 'system.entropy', 'system.idlejitter')


def chart_rows(path):
    """``(times, values, dimension names)`` of a recorded chart, oldest first, nulls as 0."""
    with gzip.open(path, 'rt') as f:
        body = json.load(f)
    rows = np.array([[np.nan if v is None else v for v in r] for r in body['data'][::-1]], dtype=np.float64)
    return rows[:, 0], np.nan_to_num(rows[:, 1:]), body['labels'][1:]


def exceedances(recording, every, cfg):
    """``{'averages' | 'samples' | 'phases': (above, steps)}`` over the recording's charts."""
    with open(os.path.join(recording, 'recording.json')) as f:
        meta = json.load(f)
    with open(os.path.join(recording, 'labels.json')) as f:
        first = min(i['start'] for i in json.load(f)['incidents'])
    split = meta['start'] + int(0.6 * (first - meta['start']))
    out = {'averages': [0, 0], 'samples': [0, 0], 'phases': [0, 0]}
    for path in sorted(glob.glob(os.path.join(recording, 'data', 'system.*.json.gz'))):
        chart = os.path.basename(path)[:-len('.json.gz')]
        times, values, dims = chart_rows(path)
        if chart in SKIPPED or len(times) < 0.9 * (meta['end'] - meta['start']):
            continue   # one-second charts only: a slower chart has no N-second averages to compare
        train = values[times < split]
        n = train.shape[0] // every * every
        averaged = train[train.shape[0] - n:].reshape(-1, every, train.shape[1]).mean(axis=1)
        sampled = train[rows_every(times[times < split], every)]
        phases = phases_every(times[times < split], every)
        clean = (times >= split) & (times < first)
        X = cfg.features(values[clean][rows_every(times[clean], every)])
        groups = feature_groups([chart] * len(dims), cfg.lags_n, cfg.level_features)
        learnt = {'averages': cfg.training_features(averaged), 'samples': cfg.training_features(sampled),
                  'phases': np.vstack([cfg.training_features(train[p]) for p in phases])}
        for name, features in learnt.items():
            fm = fit_model(chart, dims, features, model=cfg.model,
                           contamination=cfg.contamination, groups=groups,
                           blocks=(cfg.lags_n + 1, cfg.level_features))
            out[name][0] += int(fm.exceeds(fm.decision_function(X)).sum())
            out[name][1] += X.shape[0]
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('recordings', nargs='+')
    p.add_argument('--every', type=int, default=5, help='update_every of the job (default 5)')
    args = p.parse_args()
    if args.every < 1:
        p.error('--every must be positive')
    missing = [rec for rec in args.recordings if not os.path.isfile(os.path.join(rec, 'labels.json'))]
    if missing:
        p.error('not a labeled recording (no labels.json): {}'.format(', '.join(missing)))
    cfg = parse_job_config({})
    row = '{:<28} {:>22} {:>22} {:>22}'
    print(row.format('recording', 'learnt averages', 'learnt samples', 'learnt every phase'))
    for rec in args.recordings:
        got = exceedances(rec, args.every, cfg)
        print(row.format(os.path.basename(rec.rstrip('/')), *(
            '{} of {} steps'.format(*got[k]) for k in ('averages', 'samples', 'phases'))))


if __name__ == '__main__':
    run_main(main)
