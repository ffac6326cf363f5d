"""The published simple point-wise SMD baseline beside the default job, on the same machines.

A PCA reconstruction error per metric (10 components, fitted on the min-max scaled training
half), each metric's error standardized by its median and interquartile range, smoothed over
about ten rows and the largest metric taken: the form of the "simple baselines" evaluation of
Sarfraz et al., "Position: Quo Vadis, Unsupervised Time Series Anomaly Detection?" (ICML 2024),
which reports AUC-PR 0.515 and best F1 0.572 for it over all 28 SMD machines, point-wise. There
the errors are standardized on the evaluation half itself and smoothed over rows on both sides
(`transductive` here); a detector that runs live has only its training half and the rows so far
(`causal`: training-half statistics, a trailing mean of 5 rows). Written from that description.

    python bench/smd_reference.py ../shared/datasets/smd/machine-1-*
"""
import argparse
import os
import sys

from common import run_main  # first: it checks this Python before numpy is imported
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from collector.config import parse_job_config  # noqa: E402
from collector.evaluate import load_dataset, score_dataset  # noqa: E402
from collector.metrics import dataset_metrics  # noqa: E402


def reconstruction_errors(train, evals, components=10):
    """Per-row, per-metric absolute PCA reconstruction errors of both halves (min-max scaled on train)."""
    from sklearn.decomposition import PCA
    lo, hi = train.min(axis=0), train.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    tr, ev = (train - lo) / span, (evals - lo) / span
    pca = PCA(n_components=min(components, tr.shape[1]), svd_solver='full').fit(tr)
    return [np.abs(x - pca.inverse_transform(pca.transform(x))) for x in (tr, ev)]


def robust_z(errors, reference):
    q1, med, q3 = np.percentile(reference, [25, 50, 75], axis=0)
    return (errors - med) / (q3 - q1 + 1e-2)


def trailing_mean(x, n):
    c = np.cumsum(np.vstack([np.zeros((1, x.shape[1])), x]), axis=0)
    start = np.maximum(np.arange(len(x)) - n + 1, 0)
    return (c[1:] - c[start]) / (np.arange(len(x)) + 1 - start)[:, None]


def centred_mean(x, half=5):
    out = np.zeros_like(x)
    for i in range(half, len(x)):
        out[i] = x[i - half:i + half - 1].mean(axis=0)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('folders', nargs='+', help='SMD dataset folders (train.csv, eval.csv, eval_labels.csv)')
    args = p.parse_args()
    missing = [folder for folder in args.folders if not os.path.isfile(os.path.join(folder, 'train.csv'))]
    if missing:
        p.error('not a dataset folder (no train.csv): {}'.format(', '.join(missing)))
    config = parse_job_config({})
    rows = []
    print('{:<16} {:>24} {:>24} {:>24}'.format('AUC-PR / best F1', 'default job', 'PCA error, causal',
                                              'PCA error, transductive'))
    for folder in args.folders:
        train, _, evals, labels = load_dataset(folder)
        scores, flags, _, _ = score_dataset(folder, config)
        err_train, err_eval = reconstruction_errors(train, evals)
        causal = trailing_mean(robust_z(err_eval, err_train), 5).max(axis=1)
        transductive = centred_mean(robust_z(err_eval, err_eval)).max(axis=1)
        row = [dataset_metrics(s, flags, labels) for s in (scores, causal, transductive)]
        rows.append([(m['auc_pr'], m['best_f1']) for m in row])
        print('{:<16} '.format(os.path.basename(os.path.normpath(folder))[:16]) +
              ' '.join('{:>24}'.format('{:.3f} / {:.3f}'.format(*v)) for v in rows[-1]))
    mean = np.mean(np.array(rows), axis=0)
    print('{:<16} '.format('mean') + ' '.join('{:>24}'.format('{:.3f} / {:.3f}'.format(*v)) for v in mean))


if __name__ == '__main__':
    run_main(main)
