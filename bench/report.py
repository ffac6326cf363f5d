"""Markdown tables of a ``bench/matrix.sh`` results folder (the tables of docs/performance.md).

    python bench/report.py bench/results
"""
import argparse
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from collector.config import DEFAULTS  # noqa: E402

MAIN = DEFAULTS['model']   # the headline table: the default model beside the baseline
MIN_STEPS = 10   # as bench/run.py: a CPU-per-step figure over fewer steps is marked
FEW_NOTE = '\n\n\\* over fewer than {} prediction steps: run longer'.format(MIN_STEPS)


def few(side):
    return side.get('cpu_steps', MIN_STEPS) < MIN_STEPS


def cell(side, key, fmt):
    """One side's figure, '-' where its run did not record it; a CPU-per-step figure marked when
    it is over too few steps (older results do not say how many: unmarked)."""
    value = side.get(key)
    if value is None:
        return '-'
    return fmt.format(value) + ('\\*' if key.startswith('cpu_') and few(side) else '')


def load(folder):
    """``{(model, charts): run}`` of the folder's ``run.py --json`` files; a run beside no
    baseline (``--skip-baseline``, or ours under ``--versus-set`` in that column) is left out,
    said on stderr."""
    runs = {}
    for path in sorted(glob.glob(os.path.join(folder, '*.json'))):
        with open(path) as f:
            d = json.load(f)
        if 'baseline' not in d or d.get('versus_set'):
            print('{}: left out, not beside the baseline ({})'.format(
                path, 'versus ' + ' '.join(d['versus_set']) if d.get('versus_set') else '--skip-baseline'),
                file=sys.stderr)
            continue
        runs[(d['model'], d['charts'])] = d
    return runs


def by_charts(runs):
    rows = [('CPU-s per prediction step (mean)', 'cpu_per_step', '{:.4f}'),
            ('CPU-s per prediction step (median)', 'cpu_per_step_median', '{:.4f}'),
            ('prediction steps in mean and median', 'cpu_steps', '{}'),
            ('CPU-s per training of all models (in run_training)', 'train_cpu_s', '{:.2f}'),
            ('CPU-s per training, whole training process', 'train_proc_cpu_s', '{:.2f}'),
            ('wall-s per training of all models', 'train_wall_s', '{:.2f}'),
            ('steady RSS MiB', 'rss_mib', '{:.0f}'), ('peak RSS MiB', 'peak_rss_mib', '{:.0f}'),
            ('training process peak MiB', 'train_child_peak_mib', '{:.0f}'),
            ('first prediction after start, s', 'first_prediction_s', '{:.1f}'),
            ('longest gap between steps, s', 'max_gap_s', '{:.2f}')]
    ns = sorted(n for m, n in runs if m == MAIN)
    head = '| | ' + ' | '.join('{} charts: ours | baseline'.format(n) for n in ns) + ' |'
    out = [head, '|---' * (1 + 2 * len(ns)) + '|']
    for label, key, fmt in rows:
        row = []
        for n in ns:
            d = runs[(MAIN, n)]
            row += [cell(d['ours'], key, fmt), cell(d['baseline'], key, fmt)]
        out.append('| {} | {} |'.format(label, ' | '.join(row)))
    ratios = []
    for n in ns:
        d = runs[(MAIN, n)]
        ratios += ['{:.0f}x'.format(d['baseline']['cpu_per_step'] / d['ours']['cpu_per_step']),
                   '{:.2f}'.format(d['ours']['rss_mib'] / d['baseline']['rss_mib'])]
    out.append('| ratio: baseline/ours CPU per step, ours/baseline RSS | {} |'.format(' | '.join(ratios)))
    marked = any(few(runs[(MAIN, n)][side]) for n in ns for side in ('ours', 'baseline'))
    return '\n'.join(out) + (FEW_NOTE if marked else '')


def by_model(runs, n):
    out = ['| model ({} charts) | CPU-s/step ours | baseline | ratio | '
           'RSS MiB ours | baseline | training CPU-s ours | baseline | first prediction s | longest gap s |'.format(n),
           '|---' * 10 + '|']
    marked = False
    for (m, size), d in sorted(runs.items(), key=lambda kv: (kv[0][0] != MAIN, kv[0][0])):
        if size != n:
            continue
        o, b = d['ours'], d['baseline']
        marked = marked or few(o) or few(b)
        out.append('| {} | {} | {} | {:.0f}x | {:.0f} | {:.0f} | {:.2f} | {:.2f} | {:.1f} | {:.2f} |'.format(
            m, cell(o, 'cpu_per_step', '{:.4f}'), cell(b, 'cpu_per_step', '{:.4f}'), b['cpu_per_step'] / o['cpu_per_step'], o['rss_mib'],
            b['rss_mib'], o['train_cpu_s'], b['train_cpu_s'], o['first_prediction_s'], o['max_gap_s']))
    return '\n'.join(out) + (FEW_NOTE if marked else '')


def main():
    ap = argparse.ArgumentParser(description='Markdown tables of a bench/matrix.sh results folder.')
    ap.add_argument('folder', nargs='?', default=os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results'),
                    help='the folder of *.json results (default bench/results)')
    args = ap.parse_args()
    if not os.path.isdir(args.folder):
        ap.error('{}: {} (give the folder of the results, as bench/matrix.sh wrote them)'.format(
            args.folder, 'a file, not a folder' if os.path.exists(args.folder) else 'no such folder'))
    runs = load(args.folder)
    if not runs:
        ap.error('no results (*.json beside the baseline) in {}: run bench/matrix.sh first'.format(args.folder))
    if any(m == MAIN for m, n in runs):
        print(by_charts(runs))
        print()
    for n in sorted({size for m, size in runs if m != MAIN}):
        print(by_model(runs, n))
        print()
    if (MAIN, 300) in runs and (MAIN, 37) in runs:
        print('\nours at 300 charts vs baseline at 37: {:.1f}x less CPU per step'.format(
            runs[(MAIN, 37)]['baseline']['cpu_per_step'] / runs[(MAIN, 300)]['ours']['cpu_per_step']))


if __name__ == '__main__':
    main()
