"""Netdata's native ML, as its documentation and defaults describe it, beside the default job.

Per dimension: the first difference, a moving average of 3, the last 6 of those as the feature
vector; k-means with 2 centres fitted on up to 1440 vectors sampled from the last 6 hours
(at least 15 minutes of samples, or no model); the anomaly score is the mean distance to the
two centres, min-max scaled over the training vectors (0-100, capped), and a dimension is
anomalous at a score of 99 or more, unless it was anomalous in 450 of its last 900 samples
(suppressed). Models are trained again every 3 hours; a recording is shorter than that, so each
dimension has one model, and the consensus of the kept models is that one model's bit.
Constant dimensions get no model. The node's anomaly rate is the share of anomalous dimensions,
and its stock alert warns when the rate, averaged over a minute, is above 1 %.

Written from that description (no native code is compiled into Debian's 1.37.1 agent). Two
readings for the recordings: a chart flagged while any of its dimensions is anomalous (what the
anomaly rate on each chart shows), and the node alert (counted as detecting an incident when it
rises within the incident's window). For the datasets: each row's score is the mean of its
dimensions' anomaly scores, its flag the node alert (more than 1 % of the dimensions anomalous).

    python bench/native_ml.py ../shared/recordings/* recordings/netdata-*
    python bench/native_ml.py --dataset ../shared/datasets/smd/machine-1-* ../shared/datasets/nab/*
"""
import argparse
import os
import sys

from common import run_main  # first: it checks this Python before numpy is imported
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from collector.config import parse_job_config  # noqa: E402
from collector.evaluate import default_warmup, evaluate_recording, load_dataset, score_dataset  # noqa: E402
from collector.features import absent_as_zero, fill_missing, make_features  # noqa: E402
from collector.metrics import dataset_metrics, recordings_summary, score_alarms, score_incidents  # noqa: E402
from collector.replay import Recording  # noqa: E402

LAGS = 5
SMOOTH = 3
MIN_SAMPLES = 900
MAX_SAMPLES = 21600
TRAIN_VECTORS = 1440
SCORE_THRESHOLD = 99.0
SUPPRESS_WINDOW, SUPPRESS_AT = 900, 450
NODE_RATE = 0.01
NODE_WINDOW_S = 60


def feature_vectors(x):
    """Rows of [s_t, s_t-1, ..., s_t-LAGS] for s the moving average (SMOOTH) of the first
    difference of ``x`` (the job's own change features, without levels); row k belongs to
    sample k + SMOOTH + LAGS of ``x``."""
    return make_features(np.asarray(x, dtype=np.float64), 1, SMOOTH, LAGS)


def kmeans2(X, rng, iterations=1000):
    """Two centres by Lloyd's iterations from a k-means++ start."""
    first = X[rng.integers(len(X))]
    d2 = ((X - first) ** 2).sum(axis=1)
    second = X[rng.choice(len(X), p=d2 / d2.sum())] if d2.sum() > 0 else first
    centres = np.vstack([first, second])
    for _ in range(iterations):
        label = np.argmin(((X[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1)
        new = np.vstack([X[label == k].mean(axis=0) if (label == k).any() else centres[k] for k in range(2)])
        if np.allclose(new, centres):
            break
        centres = new
    return centres


def mean_distance(X, centres):
    return np.sqrt(((X[:, None, :] - centres[None]) ** 2).sum(axis=2)).mean(axis=1)


def fit_dimension(train, rng, min_samples=MIN_SAMPLES):
    """``(centres, lo, hi)`` from one dimension's training samples, or None (too few, or constant)."""
    train = np.asarray(train, dtype=np.float64)[-MAX_SAMPLES:]
    if train.size < max(min_samples, SMOOTH + LAGS + 2) or np.all(train == train[0]):
        return None
    X = feature_vectors(train)
    if len(X) > TRAIN_VECTORS:
        X = X[np.sort(rng.choice(len(X), TRAIN_VECTORS, replace=False))]
    centres = kmeans2(X, rng)
    dist = mean_distance(X, centres)
    return centres, float(dist.min()), float(dist.max())


def anomaly_scores(model, history, values):
    """Score (0-100) of each of ``values``, each with the samples before it (``history``: the
    training samples) for its difference, smoothing and lags."""
    centres, lo, hi = model
    x = np.concatenate([np.asarray(history, dtype=np.float64)[-(SMOOTH + LAGS):], values])
    X = feature_vectors(x)[-len(values):]
    if hi == lo:
        return np.zeros(len(values))
    return np.minimum(100.0, 100.0 * np.abs((mean_distance(X, centres) - lo) / (hi - lo)))


def anomaly_bits(scores):
    """Score at or above the threshold, unless anomalous in SUPPRESS_AT of the last SUPPRESS_WINDOW."""
    raw = (np.asarray(scores) >= SCORE_THRESHOLD).astype(int)
    c = np.concatenate([[0], np.cumsum(raw)])
    idx = np.arange(1, raw.size + 1)
    recent = c[idx] - c[np.maximum(idx - SUPPRESS_WINDOW, 0)]
    return raw * (recent < SUPPRESS_AT)


def chart_bits(train, evals, seed=0, min_samples=MIN_SAMPLES):
    """Per dimension (columns of the 2-d arrays) the anomaly bits of ``evals`` and their scores;
    an untrained dimension is never anomalous (score 0)."""
    rng = np.random.default_rng(seed)
    bits, scores = np.zeros(evals.shape, dtype=int), np.zeros(evals.shape)
    for j in range(train.shape[1]):
        model = fit_dimension(train[:, j], rng, min_samples)
        if model is not None:
            scores[:, j] = anomaly_scores(model, train[:, j], evals[:, j])
            bits[:, j] = anomaly_bits(scores[:, j])
    return bits, scores


def node_alert(rate, times, window_s=NODE_WINDOW_S):
    """The stock alert: the node's anomaly rate averaged over the last minute above 1 %."""
    times = np.asarray(times, dtype=np.float64)
    c = np.concatenate([[0.0], np.cumsum(rate)])
    start = np.searchsorted(times, times - window_s + 1e-9)
    idx = np.arange(1, len(rate) + 1)
    return ((c[idx] - c[start]) / (idx - start) > NODE_RATE).astype(int)


def run_recording(path, charts_regex=None, warmup=None, min_samples=MIN_SAMPLES):
    """Per-second flags of every chart (any dimension anomalous) and of the node alert."""
    rec = Recording(path)
    config = parse_job_config({} if charts_regex is None else {'charts_regex': charts_regex})
    warmup = default_warmup(rec) if warmup is None else warmup
    t0 = rec.start + warmup
    times = np.arange(t0, rec.end + 1)
    flags, dims_bits = {}, []
    for chart in sorted(rec.charts):
        rows = rec.chart_rows(chart) if config.chart_matches(chart) else None
        if rows is None:
            continue
        _, t, values = rows
        values = fill_missing(absent_as_zero(values))
        cut = np.searchsorted(t, t0)
        if cut == 0 or cut >= len(t):
            continue
        bits, _ = chart_bits(values[:cut], values[cut:], min_samples=min_samples)
        # each second reads the chart's newest sample (a chart collected every 5 s holds it)
        at = np.clip(np.searchsorted(t[cut:], times, side='right') - 1, 0, None)
        per_second = bits[at]
        flags[chart] = per_second.max(axis=1) if per_second.shape[1] else np.zeros(len(times), dtype=int)
        dims_bits.append(per_second)
    rate = np.hstack(dims_bits).mean(axis=1) if dims_bits else np.zeros(len(times))
    return rec, times, flags, node_alert(rate, times)


def recording_rows(paths, charts_regex=None, min_samples=MIN_SAMPLES):
    out = {'native ML, any dimension of a chart': [], 'native ML, node alert': [], 'default job': [],
           'default job, its stock alarms': []}
    for path in paths:
        rec, times, flags, node = run_recording(path, charts_regex, min_samples=min_samples)
        incidents = rec.labels.get('incidents', [])
        name = os.path.basename(os.path.normpath(path))
        out['native ML, any dimension of a chart'].append(dict(score_incidents(times, flags, incidents), recording=name))
        out['native ML, node alert'].append(dict(score_alarms(times, node, incidents), recording=name))
        overrides = {} if charts_regex is None else {'charts_regex': charts_regex}
        ours = evaluate_recording(path, overrides=overrides)[0]
        out['default job'].append(dict(ours, recording=name))
        out['default job, its stock alarms'].append(dict(ours['alarms'], recording=name))
    return out


def dataset_rows(folders):
    config = parse_job_config({})
    native, ours = [], []
    for folder in folders:
        train, _, evals, labels = load_dataset(folder)
        bits, scores = chart_bits(fill_missing(train), fill_missing(evals))
        flags = (bits.mean(axis=1) > NODE_RATE).astype(int)
        native.append(dataset_metrics(scores.mean(axis=1), flags, labels))
        s, f, _, _ = score_dataset(folder, config)
        ours.append(dataset_metrics(s, f, labels))
        print('  {:<28} native AUC-PR {:.3f} best F1 {:.3f} flag F1 {:.3f} | default {:.3f} {:.3f} {:.3f}'.format(
            os.path.basename(os.path.normpath(folder))[:28], native[-1]['auc_pr'], native[-1]['best_f1'],
            native[-1]['flag_f1'], ours[-1]['auc_pr'], ours[-1]['best_f1'], ours[-1]['flag_f1']), file=sys.stderr)
    return native, ours


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('paths', nargs='+', help='recordings, or dataset folders with --dataset')
    p.add_argument('--dataset', action='store_true', help='the paths are labeled dataset folders')
    p.add_argument('--charts-regex', help="charts to model in a recording (default: the job's, system.*)")
    p.add_argument('--min-samples', type=int, default=MIN_SAMPLES,
                   help='samples a dimension needs for a model (default 900, 15 minutes; a recording whose '
                        'lead is shorter gives native ML no model at all)')
    args = p.parse_args()
    if args.dataset:
        missing = [folder for folder in args.paths if not os.path.isdir(folder)]
        if missing:
            p.error('no such dataset folder: {}'.format(', '.join(missing)))
        groups = {}
        for folder in args.paths:
            groups.setdefault(os.path.basename(os.path.dirname(os.path.normpath(folder))), []).append(folder)
        keys = ['auc_roc', 'auc_pr', 'best_f1', 'flag_f1', 'flag_rate']
        print('{:<26}'.format('mean') + ''.join('{:>10}'.format(k) for k in keys))
        for group, folders in groups.items():
            native, ours = dataset_rows(folders)
            for name, rows in (('native ML', native), ('default job', ours)):
                print('{:<26}'.format('{} {}'.format(group, name)) +
                      ''.join('{:>10.3f}'.format(np.mean([r[k] for r in rows])) for k in keys))
        return
    # a path that is no recording (a typo, a glob that matched nothing) is an error, not a
    # verdict over none; a plain file a folder's glob takes in (a README) is passed over
    paths = [path for path in args.paths if not os.path.isfile(path)]
    missing = [path for path in paths if not os.path.exists(os.path.join(path, 'recording.json'))]
    if missing:
        p.error('not a recording (no recording.json): {}'.format(', '.join(missing)))
    if not paths:
        p.error('no recording among {}'.format(', '.join(args.paths)))
    unlabeled = [path for path in paths if not os.path.exists(os.path.join(path, 'labels.json'))]
    if unlabeled:   # as evaluate says it: its incidents, if any, count as false flags
        print('note: no labels.json, judged on false flags alone: {}'.format(', '.join(unlabeled)), file=sys.stderr)
    for how, results in recording_rows(paths, args.charts_regex, args.min_samples).items():
        s = recordings_summary(results)
        rate = s['false_flag_events_per_hour']
        print('{:<38} {:>2}/{:<2} within 10 s, {:>3} false flag events in {:.2f} h = {}/h'.format(
            how, s['detected_in_time'], s['incidents_total'], s['false_flag_events'], s['clean_hours'],
            '-' if rate is None else '{:.2f}'.format(rate)))
        print('    ' + ', '.join('{} {}/{}'.format(r['recording'].replace('netdata-1.37-', ''), r['in_time'],
                                                   r['incidents']) for r in s['per_recording']))


if __name__ == '__main__':
    run_main(main)
