"""Benchmark: cost per step, training cost, memory, gaps and start-up, ours beside the baseline.

Replays a recording (the harness's replay server, real-time clock, history already there)
and runs, one after the other on the same replayed window:

- ours: ``python -m collector run`` as a separate process, exactly as a user runs it;
- the baseline: ``bench/baseline.py``, the retired collector's way of working, with its
  default pyod model (pca) unless ``--baseline-model`` names another pyod one.

Both are measured from outside through /proc: CPU-seconds per prediction step (training
excluded; the mean for both, the median beside it, and how many steps they are over; ours read
from the threads' schedstat in nanoseconds, the baseline's as it reports each step), CPU and
wall seconds per training of all models (ours both as the training logs it, inside
``run_training``, and as the whole training process used it, start-up and imports included),
steady and peak RSS, time from process start to first real prediction, and the longest gap
between two collection steps (trainings are scheduled inside the run so the gap covers them).
The last line is
``cpu_per_step_ratio=<baseline/ours> rss_ratio=<ours/baseline> max_gap_s=<ours> first_prediction_s=<ours>``.

    python bench/run.py                       # 37 system charts, default models, 60 s each
    python bench/run.py --charts 300 --model hbos --baseline-model hbos --seconds 90
    python bench/run.py --quick               # 30 s each, for a smoke check (few steps measured)
    python bench/run.py --model knn --check   # only validate the arguments and the recording
    python bench/run.py --versus-set level_features=false --versus-set flag_min_n=1 \
        --versus-set flag_window_n=1       # ours beside ours without a feature, instead of the baseline
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from common import run_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from collector.config import DEFAULTS, ConfigError, parse_job_config  # noqa: E402
from collector.config_file import load_config_file  # noqa: E402
from collector.models import pyod_model  # noqa: E402
from collector.replay import Recording, ReplayClock, ReplayServer  # noqa: E402

TICKS = os.sysconf('SC_CLK_TCK')
PAGE = os.sysconf('SC_PAGE_SIZE')
SHARED = os.path.join(os.path.dirname(ROOT), 'shared', 'recordings', 'netdata-1.37-incidents-a')
DEMO = os.path.join(ROOT, 'demo', 'recording')
MIN_STEPS = 10   # fewer prediction steps than this make a mean that moves with a single step


def default_recording():
    """The benchmark's recording in ../shared; else the demo's (39 charts, 37 to model), said on stderr, since
    its figures are not those of docs/performance.md."""
    if os.path.isdir(SHARED):
        return SHARED
    print('note: {} not found: using the demo recording ({})'.format(SHARED, DEMO), file=sys.stderr)
    return DEMO


def pick_charts(rec, n):
    """The first ``n`` charts, system.* first (but uptime and entropy; a default config models
    these less idlejitter), then the rest."""
    names = sorted(rec.charts, key=lambda c: (not c.startswith('system.'), c))
    names = [c for c in names if c not in ('system.uptime', 'system.entropy')]
    return names[:n]


def exact_regex(charts):
    return '^(?:{})$'.format('|'.join(re.escape(c) for c in charts))


def live_children(pid):
    """Pids of the process's children, zombies included, whichever of its threads started them."""
    kids = []
    for tid in os.listdir('/proc/{}/task'.format(pid)):
        try:
            with open('/proc/{}/task/{}/children'.format(pid, tid)) as f:
                kids += f.read().split()
        except OSError:
            pass
    return kids


def _has_schedstat(pid):
    """Whether the kernel keeps per-thread CPU time in nanoseconds (CONFIG_SCHED_INFO)."""
    try:
        with open('/proc/{}/schedstat'.format(pid)) as f:
            return len(f.read().split()) == 3
    except OSError:
        return False


class ProcWatch:
    """Samples a process's CPU (self and waited-for children) and memory from /proc."""

    def __init__(self, pid, every=0.2):
        self.pid, self.every = pid, every
        # one unit for the whole run: schedstat, else ticks; asked of the file, not of its figure,
        # which is 0 for a process not yet scheduled (a whole run in 10 ms ticks, by chance)
        self.precise = _has_schedstat(pid)
        # (monotonic, self cpu s, reaped children cpu s, rss MiB, peak MiB, live children rss MiB, live children)
        self.samples = []
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
        kids, live = 0.0, live_children(self.pid)
        for kid in live:
            try:
                with open('/proc/{}/statm'.format(kid)) as g:
                    kids += int(g.read().split()[1]) * PAGE / 2 ** 20
            except OSError:
                pass
        cpu = self._cpu_ns() if self.precise else (utime + stime) / TICKS
        return (time.monotonic(), cpu, (cutime + cstime) / TICKS, rss, hwm, kids, len(live))

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

    def children_cpu(self, ends):
        """Whole CPU-s of each child process, start-up included, for the children that ended
        one at a time (``ends``: their times): what the kernel adds to the parent's children CPU
        once it reaped them, between two samples with no child left."""
        out, last_t, last_cpu = [], None, 0.0
        for s in self.samples:
            if s[6]:
                continue
            if last_t is not None and s[2] > last_cpu and sum(1 for t in ends if last_t < t <= s[0]) == 1:
                out.append(s[2] - last_cpu)
            last_t, last_cpu = s[0], s[2]
        return out


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


def ours_config(host, charts, model, train_every, settings=(), models_dir='none'):
    """The job file ours runs with; ``settings`` (KEY=VALUE) come last and win. The models
    are saved (to a new folder each run, so none is loaded), as a job's are by default."""
    keys = {'host': "'{}'".format(host), 'charts_regex': "'{}'".format(exact_regex(charts)),
            'charts_to_exclude': "''", 'model': "'{}'".format(model), 'train_n_secs': '600',
            'train_every_n': str(train_every), 'models_dir': "'{}'".format(models_dir)}
    for pair in settings:
        key, _, value = pair.partition('=')
        keys[key.strip()] = value.strip()
    return 'anomalies:\n' + ''.join('  {}: {}\n'.format(k, v) for k, v in keys.items())


def config_errors(text):
    """What the collector refuses in a job file of ours, read as ``run --config`` reads it
    (before any run: a bad key found only after the first side ran wastes that run)."""
    with tempfile.NamedTemporaryFile('w', suffix='.conf') as conf:
        conf.write(text)
        conf.flush()
        try:
            parse_job_config(load_config_file(conf.name)['anomalies'], 'anomalies')
        except ConfigError as e:
            return e.errors
    return []


def failures(err):
    """Logged errors, and of each traceback the exception it ends with (its first line says nothing)."""
    lines = [line for _, line in err]
    out = [line for line in lines if ' ERROR' in line]
    for i, line in enumerate(lines):
        if line.startswith('Traceback'):
            out.append(next((x for x in lines[i + 1:] if x and not x.startswith(' ')), line))
    return out


def measure_ours(host, charts, model, seconds, train_every, settings=()):
    models = tempfile.mkdtemp(prefix='bench-models-')
    conf = tempfile.NamedTemporaryFile('w', suffix='.conf', delete=False)
    conf.write(ours_config(host, charts, model, train_every, settings, models_dir=models))
    conf.close()
    cmd = [sys.executable, '-m', 'collector', 'run', '--config', conf.name, '--steps', str(seconds),
           '--update-every', '1']
    try:
        started, watch, out, err, code = run_process(cmd, seconds)
    finally:
        os.unlink(conf.name)
        shutil.rmtree(models, ignore_errors=True)
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
    errors = failures(err)
    whole = [round(v, 2) for v in watch.children_cpu(done)]
    return {
        'name': 'ours', 'exit': code, 'steps': len(begins), 'cpu_steps': len(per_step),
        'cpu_per_step': statistics.mean(per_step) if per_step else float('nan'),
        'cpu_per_step_median': statistics.median(per_step) if per_step else float('nan'),
        'cpu_step_values': [round(v, 5) for v in per_step], 'cpu_step_at': step_at,
        'training_at': [round(t - started, 1) for t, line in err if 'trained ' in line or re.search(r': training \d+ models? on ', line)],
        'train_cpu_s': statistics.median([float(m.group(4)) for m in trainings]) if trainings else float('nan'),
        'train_cpu_values': [float(m.group(4)) for m in trainings],
        # what a training process used in all, its start and imports too (run_training's own
        # figure above starts after them)
        'train_proc_cpu_s': statistics.median(whole) if whole else float('nan'), 'train_proc_cpu_values': whole,
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
    pred_cpu = pred_cpu[3:] or pred_cpu
    errors = failures(err) or ([] if code == 0 else ['exited with code {}'.format(code)])
    train = statistics.median(train_cpu) if train_cpu else float('nan')
    return {
        'name': 'baseline', 'exit': code, 'steps': len(steps), 'cpu_steps': len(pred_cpu),
        # the mean, as for ours (whose CPU is read from /proc over many steps)
        'cpu_per_step': statistics.mean(pred_cpu) if pred_cpu else float('nan'),
        'cpu_per_step_median': statistics.median(pred_cpu) if pred_cpu else float('nan'),
        # it trains inside its collection step: no process to start, the step's CPU is all of it
        'train_cpu_s': train, 'train_proc_cpu_s': train,
        'train_wall_s': statistics.median(train_wall) if train_wall else float('nan'),
        'trainings': len(train_cpu), 'rss_mib': watch.rss_after(steady_from), 'peak_rss_mib': watch.peak(),
        'train_child_peak_mib': 0.0,
        'first_prediction_s': first[0] - started if first else float('nan'),
        'max_gap_s': max(gaps) if gaps else float('nan'), 'errors': errors[:3]}


ROWS = [('cpu_per_step', 'CPU-s per prediction step', '{:.4f}'),
        ('cpu_per_step_median', '  median step', '{:.4f}'), ('cpu_steps', '  steps in mean and median', '{}'),
        ('train_cpu_s', 'CPU-s per training, in run_training', '{:.2f}'),
        ('train_proc_cpu_s', 'CPU-s per training, whole process', '{:.2f}'),
        ('train_wall_s', 'wall-s per training (all models)', '{:.2f}'), ('trainings', 'trainings in the run', '{}'),
        ('rss_mib', 'steady RSS MiB', '{:.0f}'), ('peak_rss_mib', 'peak RSS MiB', '{:.0f}'),
        ('train_child_peak_mib', 'training process peak MiB', '{:.0f}'),
        ('first_prediction_s', 'first prediction after start s', '{:.1f}'),
        ('max_gap_s', 'longest gap between steps s', '{:.2f}'), ('steps', 'steps run', '{}')]
FEW = ('cpu_per_step', 'cpu_per_step_median', 'cpu_steps')   # marked when over too few steps


def cell(side, key, fmt):
    text = fmt.format(side.get(key, float('nan')))
    few = key in FEW and side.get('cpu_steps', MIN_STEPS) < MIN_STEPS
    return text + ('*' if few else ' ')


def table(ours, base, other='baseline'):
    lines = ['{:<36} {:>13} {:>13}'.format('', 'ours ', other + ' ')]
    for key, label, fmt in ROWS:
        lines.append('{:<36} {:>13} {:>13}'.format(label, cell(ours, key, fmt), cell(base, key, fmt)))
    if any(side.get('cpu_steps', MIN_STEPS) < MIN_STEPS for side in (ours, base)):
        lines.append('* over fewer than {} prediction steps: run longer (--seconds 60 or more)'.format(MIN_STEPS))
    if other == 'baseline' and base.get('trainings', 0) > 0:
        lines.append("(the baseline trains inside its collection step: both its training rows are that step's CPU)")
    return '\n'.join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--recording', help='default: ../shared/recordings/netdata-1.37-incidents-a beside the '
                   'checkout, else the demo recording (39 charts, 37 of them to model)')
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
    p.add_argument('--check', action='store_true', help='validate the arguments and the recording, run nothing')
    args = p.parse_args()
    if args.baseline_model is None:
        args.baseline_model = args.model if pyod_model(args.model) else 'pca'
    seconds = 30 if args.quick else args.seconds
    args.recording = args.recording or default_recording()
    rec, charts, warmup, train_every = checked(p, args, seconds)
    if args.check:
        return
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
                       'seconds': seconds, 'set': args.set, 'versus_set': args.versus_set, **results}, f, indent=1)
    ratio = base['cpu_per_step'] / ours['cpu_per_step'] if ours['cpu_per_step'] else float('nan')
    print('cpu_per_step_ratio={:.1f} rss_ratio={:.2f} max_gap_s={:.2f} first_prediction_s={:.1f}'.format(
        ratio, ours['rss_mib'] / base['rss_mib'], ours['max_gap_s'], ours['first_prediction_s']))
    failed = False
    for name, r in results.items():
        if r['cpu_steps'] == 0:
            failed = True
            print('error: {} measured no prediction step{}'.format(
                name, ': ' + r['errors'][0] if r['errors'] else ' (exit {})'.format(r['exit'])), file=sys.stderr)
        elif r['cpu_steps'] < MIN_STEPS:
            print('warning: {} CPU per step is over {} steps only (fewer than {}): run longer than {} s'.format(
                name, r['cpu_steps'], MIN_STEPS, seconds), file=sys.stderr)
    if failed:
        sys.exit(1)


def checked(parser, args, seconds):
    """``(recording, charts, warm-up s, train_every)`` for the arguments, or the parser's error
    exit naming what is wrong: before any run, so that nothing is measured in vain."""
    if args.charts < 1 or seconds < 1:
        parser.error('--charts and --seconds must be positive')
    if args.json and not os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
        parser.error('--json {}: no such folder (the figures are written after the runs)'.format(args.json))
    if not pyod_model(args.baseline_model):
        parser.error("--baseline-model {}: the baseline runs pyod's models only".format(args.baseline_model))
    train_every = max(10, seconds // 3)
    sides = [('--model and --set', args.set)]
    if args.versus_set:
        sides.append(('--model, --set and --versus-set', args.set + args.versus_set))
    for flags, settings in sides:
        errors = config_errors(ours_config('127.0.0.1:19999', ['system.cpu'], args.model, train_every, settings))
        if errors:
            parser.error('the job ours would run ({}) is refused: {}'.format(flags, '; '.join(errors)))
    try:
        rec = Recording(args.recording)
    except (OSError, ValueError) as e:
        parser.error('{} is no recording: {}'.format(args.recording, e))
    charts = pick_charts(rec, args.charts)
    if len(charts) < args.charts:
        parser.error('{} has only {} charts to model, not {}: the benchmark recording is {} (the '
                     'benchmark data, ../shared/recordings beside the checkout){}'.format(
                         args.recording, len(charts), args.charts, SHARED,
                         '' if os.path.isdir(SHARED) else ', not found here'))
    warmup = min(600, (rec.end - rec.start) - seconds - 30)
    if warmup < 0:
        parser.error('{} is {:.0f} s long: too short for {} s runs'.format(args.recording, rec.end - rec.start, seconds))
    return rec, charts, warmup, train_every


if __name__ == '__main__':
    run_main(main)
