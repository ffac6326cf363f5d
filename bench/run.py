"""Benchmark: cost per step, training cost, memory, gaps and start-up, ours beside the baseline.

Replays a recording (the harness's replay server, real-time clock, history already there)
and runs, one after the other on the same replayed window:

- ours: ``python -m collector run`` as a separate process, exactly as a user runs it;
- the baseline: ``bench/baseline.py``, the retired collector's way of working, with its
  default pyod model (pca) unless ``--baseline-model`` names another pyod one.

Both are measured from outside through /proc: CPU-seconds per prediction step (training
excluded; the mean for both, the median beside it; ours read from the threads' schedstat in
nanoseconds, the baseline's as it reports each step), CPU and wall seconds per training of all models, steady and peak RSS, time from
process start to first real prediction, and the longest gap between two collection steps
(trainings are scheduled inside the run so the gap covers them). The last line is
``cpu_per_step_ratio=<baseline/ours> rss_ratio=<ours/baseline> max_gap_s=<ours> first_prediction_s=<ours>``.

    python bench/run.py                       # 37 system charts, default models, 60 s each
    python bench/run.py --charts 300 --model hbos --baseline-model hbos --seconds 90
    python bench/run.py --quick               # 30 s each, for a smoke check
    python bench/run.py --versus-set level_features=false --versus-set flag_min_n=1 \
        --versus-set flag_window_n=1       # ours beside ours without a feature, instead of the baseline
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from collector.config import DEFAULTS  # noqa: E402
from collector.models import pyod_model  # noqa: E402
from collector.replay import Recording, ReplayClock, ReplayServer  # noqa: E402

TICKS = os.sysconf('SC_CLK_TCK')
PAGE = os.sysconf('SC_PAGE_SIZE')


def default_recording():
    shared = os.path.join(os.path.dirname(ROOT), 'shared', 'recordings', 'netdata-1.37-incidents-a')
    return shared if os.path.isdir(shared) else os.path.join(ROOT, 'demo', 'recording')


def pick_charts(rec, n):
    """The first ``n`` charts, system.* first (but uptime and entropy; a default config models
    these less idlejitter), then the rest."""
    names = sorted(rec.charts, key=lambda c: (not c.startswith('system.'), c))
    names = [c for c in names if c not in ('system.uptime', 'system.entropy')]
    return names[:n]


def exact_regex(charts):
    return '^(?:{})$'.format('|'.join(re.escape(c) for c in charts))


class ProcWatch:
    """Samples a process's CPU (self and waited-for children) and memory from /proc."""

    def __init__(self, pid, every=0.2):
        self.pid, self.every = pid, every
        self.precise = self._cpu_ns() > 0   # one unit for the whole run: schedstat, else ticks
        self.samples = []   # (monotonic, self cpu s, children cpu s, rss MiB, peak MiB, live children rss MiB)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _read(self):
        with open('/proc/{}/stat'.format(self.pid)) as f:
            fields = f.read().rsplit(')', 1)[1].split()
        utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
        rss = hwm = 0
        with open('/proc/{}/status'.format(self.pid)) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    rss = int(line.split()[1]) / 1024.0
                elif line.startswith('VmHWM:'):
                    hwm = int(line.split()[1]) / 1024.0
        kids = 0.0
        try:
            with open('/proc/{0}/task/{0}/children'.format(self.pid)) as f:
                for kid in f.read().split():
                    try:
                        with open('/proc/{}/statm'.format(kid)) as g:
                            kids += int(g.read().split()[1]) * PAGE / 2 ** 20
                    except OSError:
                        pass
        except OSError:
            pass
        cpu = self._cpu_ns() if self.precise else (utime + stime) / TICKS
        return (time.monotonic(), cpu, (cutime + cstime) / TICKS, rss, hwm, kids)

    def _cpu_ns(self):
        """CPU seconds of all the process's threads from schedstat (nanoseconds: /proc/PID/stat
        counts in 10 ms ticks, too coarse for a step of a few ms); 0 where unavailable."""
        total = 0
        try:
            for tid in os.listdir('/proc/{}/task'.format(self.pid)):
                try:
                    with open('/proc/{}/task/{}/schedstat'.format(self.pid, tid)) as f:
                        total += int(f.read().split()[0])
                except (OSError, ValueError, IndexError):
                    pass
        except OSError:
            return 0.0
        return total / 1e9

    def _run(self):
        while not self._stop.is_set():
            try:
                self.samples.append(self._read())
            except (OSError, ValueError, IndexError):
                break
            time.sleep(self.every)

    def stop(self):
        self._stop.set()
        self.thread.join(2)

    def cpu_between(self, t0, t1):
        a = min(self.samples, key=lambda s: abs(s[0] - t0))
        b = min(self.samples, key=lambda s: abs(s[0] - t1))
        return b[1] - a[1], b[0] - a[0]

    def rss_after(self, t0):
        vals = [s[3] for s in self.samples if s[0] >= t0]
        return statistics.median(vals) if vals else float('nan')

    def peak(self):
        return max((s[4] for s in self.samples), default=float('nan'))

    def peak_children(self):
        return max((s[5] for s in self.samples), default=0.0)


def _reader(stream, sink):
    for line in iter(stream.readline, ''):
        sink.append((time.monotonic(), line.rstrip('\n')))


def run_process(cmd, seconds, env=None):
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    watch = ProcWatch(proc.pid)
    out, err = [], []
    threads = [threading.Thread(target=_reader, args=(proc.stdout, out), daemon=True),
               threading.Thread(target=_reader, args=(proc.stderr, err), daemon=True)]
    for t in threads:
        t.start()
    try:
        proc.wait(timeout=seconds + 120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    watch.stop()
    for t in threads:
        t.join(2)
    return started, watch, out, err, proc.returncode


def measure_ours(host, charts, model, seconds, train_every, settings=()):
    conf = tempfile.NamedTemporaryFile('w', suffix='.conf', delete=False)
    conf.write("anomalies:\n  host: '{}'\n  charts_regex: '{}'\n  charts_to_exclude: ''\n  model: '{}'\n"
               "  train_n_secs: 600\n  train_every_n: {}\n  models_dir: none\n".format(
                   host, exact_regex(charts), model, train_every))
    for pair in settings:
        key, _, value = pair.partition('=')
        conf.write('  {}: {}\n'.format(key.strip(), value.strip()))
    conf.close()
    cmd = [sys.executable, '-m', 'collector', 'run', '--config', conf.name, '--steps', str(seconds),
           '--update-every', '1']
    started, watch, out, err, code = run_process(cmd, seconds)
    os.unlink(conf.name)
    begins = [(t, line) for t, line in out if line.startswith('BEGIN ') and '.probability' in line]
    # the first BEGIN of the probability chart follows the first values: the first prediction
    first = begins[0][0] - started if begins else float('nan')
    gaps = [int(line.split()[2]) / 1e6 for _, line in begins if len(line.split()) > 2]
    trainings = [re.search(r'trained (\d+) models on (\d+) rows in ([\d.]+)s \(([\d.]+) cpu-s\)', line)
                 for _, line in err]
    trainings = [m for m in trainings if m]
    steady_from = begins[min(5, len(begins) - 1)][0] if begins else started
    # prediction steps only: leave out the steps around the end of each training, when the
    # collector takes in the new models (the fit itself runs in the child and is not counted)
    done = [t for t, line in err if 'trained ' in line]
    # and the steps that start one (the chart list is read and the training process started):
    # the baseline's training steps are left out of its prediction steps too
    starting = [t for t, line in err if re.search(r': training \d+ models? on ', line)]
    per_step, step_at = [], []
    steady = begins[:-2]      # the last steps share their time with the process ending
    for (a, _), (b, _) in zip(steady, steady[1:]):
        if a >= steady_from and not any(a - 2 <= d <= b + 1 for d in done) and \
                not any(a - 1 <= d <= b + 1 for d in starting):
            cpu, wall = watch.cpu_between(a, b)
            if cpu > 0 and wall > 0:     # (a thread that ended takes its CPU out of the sum)
                per_step.append(cpu / wall * (b - a))
                step_at.append(round(a - started, 1))
    errors = [line for _, line in err if ' ERROR' in line or 'Traceback' in line]
    return {
        'name': 'ours', 'exit': code, 'steps': len(begins),
        'cpu_per_step': statistics.mean(per_step) if per_step else float('nan'),
        'cpu_per_step_median': statistics.median(per_step) if per_step else float('nan'),
        'cpu_step_values': [round(v, 5) for v in per_step], 'cpu_step_at': step_at,
        'training_at': [round(t - started, 1) for t, line in err if 'trained ' in line or re.search(r': training \d+ models? on ', line)],
        'train_cpu_s': statistics.median([float(m.group(4)) for m in trainings]) if trainings else float('nan'),
        'train_wall_s': statistics.median([float(m.group(3)) for m in trainings]) if trainings else float('nan'),
        'trainings': len(trainings), 'rss_mib': watch.rss_after(steady_from), 'peak_rss_mib': watch.peak(),
        'train_child_peak_mib': watch.peak_children(), 'first_prediction_s': first,
        'max_gap_s': max(gaps) if gaps else float('nan'), 'errors': errors[:3]}


def measure_baseline(host, charts, model, seconds, train_every):
    cmd = [sys.executable, os.path.join(ROOT, 'bench', 'baseline.py'), '--host', host, '--charts-regex',
           exact_regex(charts), '--model', model, '--steps', str(seconds), '--train-every-n', str(train_every)]
    started, watch, out, err, code = run_process(cmd, seconds)
    steps = [line.split() for _, line in out if line.startswith('STEP ')]
    times = [float(s[1]) for s in steps]
    pred_cpu = [float(s[2]) for s in steps if s[3] == 'predict']
    train_cpu = [float(s[2]) for s in steps if s[3] == 'train']
    first = [float(line.split()[1]) for _, line in out if line.startswith('PRED ')]
    # wall time of a training step: the gap it opens
    gaps = [b - a for a, b in zip(times, times[1:])]
    train_wall = [b - a for (a, b), s in zip(zip(times, times[1:]), steps[1:]) if s[3] == 'train']
    steady_from = first[0] if first else started
    return {
        'name': 'baseline', 'exit': code, 'steps': len(steps),
        # the mean, as for ours (whose CPU is read from /proc over many steps)
        'cpu_per_step': statistics.mean(pred_cpu[3:] or pred_cpu) if pred_cpu else float('nan'),
        'cpu_per_step_median': statistics.median(pred_cpu[3:] or pred_cpu) if pred_cpu else float('nan'),
        'train_cpu_s': statistics.median(train_cpu) if train_cpu else float('nan'),
        'train_wall_s': statistics.median(train_wall) if train_wall else float('nan'),
        'trainings': len(train_cpu), 'rss_mib': watch.rss_after(steady_from), 'peak_rss_mib': watch.peak(),
        'train_child_peak_mib': 0.0,
        'first_prediction_s': first[0] - started if first else float('nan'),
        'max_gap_s': max(gaps) if gaps else float('nan'), 'errors': [line for _, line in err if 'Traceback' in line][:3]}


ROWS = [('cpu_per_step', 'CPU-s per prediction step', '{:.4f}'),
        ('cpu_per_step_median', '  median step', '{:.4f}'), ('train_cpu_s', 'CPU-s per training (all models)', '{:.2f}'),
        ('train_wall_s', 'wall-s per training (all models)', '{:.2f}'), ('trainings', 'trainings in the run', '{}'),
        ('rss_mib', 'steady RSS MiB', '{:.0f}'), ('peak_rss_mib', 'peak RSS MiB', '{:.0f}'),
        ('train_child_peak_mib', 'training process peak MiB', '{:.0f}'),
        ('first_prediction_s', 'first prediction after start s', '{:.1f}'),
        ('max_gap_s', 'longest gap between steps s', '{:.2f}'), ('steps', 'steps', '{}')]


def table(ours, base, other='baseline'):
    lines = ['{:<36} {:>12} {:>12}'.format('', 'ours', other)]
    for key, label, fmt in ROWS:
        lines.append('{:<36} {:>12} {:>12}'.format(label, fmt.format(ours[key]), fmt.format(base[key])))
    return '\n'.join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--recording', default=default_recording())
    p.add_argument('--charts', type=int, default=37)
    p.add_argument('--model', default=DEFAULTS['model'], help='ours (default: the default, %(default)s)')
    p.add_argument('--baseline-model', help="the baseline's pyod model (default: --model when the baseline "
                   "has it, else the retired collector's pca)")
    p.add_argument('--seconds', type=int, default=60, help='steps each process runs (default 60)')
    p.add_argument('--quick', action='store_true', help='30 s each')
    p.add_argument('--skip-baseline', action='store_true')
    p.add_argument('--json', help='write the figures here')
    p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE', help='a setting for ours (repeatable)')
    p.add_argument('--versus-set', action='append', default=[], metavar='KEY=VALUE',
                   help='compare with ours under these settings (repeatable) instead of the baseline')
    args = p.parse_args()
    if args.baseline_model is None:
        args.baseline_model = args.model if pyod_model(args.model) else 'pca'
    seconds = 30 if args.quick else args.seconds
    rec = Recording(args.recording)
    charts = pick_charts(rec, args.charts)
    warmup = min(600, (rec.end - rec.start) - seconds - 30)
    train_every = max(10, seconds // 3)
    print('recording {} ({} charts used of {}), model {}{}, {} s each, a training every {} steps'.format(
        os.path.basename(args.recording), len(charts), len(rec.charts), args.model,
        '' if args.versus_set or args.skip_baseline else ' (baseline {})'.format(args.baseline_model),
        seconds, train_every))
    print('machine: {} cores, {}, Python {}'.format(os.cpu_count(), os.uname().machine, sys.version.split()[0]))
    results = {}
    runs = [('ours', lambda *a: measure_ours(*a, args.model, seconds, train_every, settings=args.set))]
    if args.versus_set:
        runs.append(('baseline', lambda *a: measure_ours(*a, args.model, seconds, train_every,
                                                         settings=args.set + args.versus_set)))
    elif not args.skip_baseline:
        runs.append(('baseline', lambda *a: measure_baseline(*a, args.baseline_model, seconds, train_every)))
    for name, fn in runs:
        with ReplayServer(rec, ReplayClock(rec.start + warmup)) as server:
            results[name] = fn(server.host, charts)
        for e in results[name]['errors']:
            print('  {} logged: {}'.format(name, e))
    ours = results['ours']
    base = results.get('baseline') or {k: float('nan') for k, _, _ in ROWS}
    if args.versus_set:
        print('right column: ours with ' + ' '.join(args.versus_set))
    print(table(ours, base, 'versus' if args.versus_set else 'baseline'))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'charts': len(charts), 'model': args.model, 'baseline_model': args.baseline_model,
                       'seconds': seconds, **results}, f, indent=1)
    ratio = base['cpu_per_step'] / ours['cpu_per_step'] if ours['cpu_per_step'] else float('nan')
    print('cpu_per_step_ratio={:.1f} rss_ratio={:.2f} max_gap_s={:.2f} first_prediction_s={:.1f}'.format(
        ratio, ours['rss_mib'] / base['rss_mib'], ours['max_gap_s'], ours['first_prediction_s']))


if __name__ == '__main__':
    main()
