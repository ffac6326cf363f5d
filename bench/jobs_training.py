"""Benchmark: several jobs in one process (as python.d.plugin runs them, e.g. a parent's
children, a job each) training one at a time, as shipped, beside all at once (as before), in
one run.

Each variant is a standalone ``run`` of ``--jobs`` jobs, all reading one replayed recording
from ``--offset`` seconds in (their first trainings start together), for ``--steps`` steps.
Their training processes are looked at every 0.1 s: how many ran at once, their resident
memory together at its largest, and when the last job's first models came.

    python bench/jobs_training.py                     # demo/recording, 4 jobs (~1 min)
    python bench/jobs_training.py RECORDING --jobs 8 --offset 1200
"""
import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

from common import run_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, 'demo', 'recording')
# the job's run, with the other jobs' trainings never seen as running (as before they waited)
ALL_AT_ONCE = ('import collector.trainers as t\n'
               't._TRAINERS = type("Unseen", (), {"add": lambda s, x: None, "__iter__": lambda s: iter(())})()\n'
               'import sys\nfrom collector.cli import main\nsys.exit(main(sys.argv[1:]))\n')
ONE_AT_A_TIME = 'import sys\nfrom collector.cli import main\nsys.exit(main(sys.argv[1:]))\n'


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def training_processes(parent):
    """PIDs and RSS (KiB) of ``parent``'s training processes."""
    out = subprocess.run(['ps', '-o', 'pid=,rss=,args=', '--ppid', str(parent)], capture_output=True,
                         text=True).stdout
    return [int(line.split()[1]) for line in out.splitlines() if 'collector.train_worker' in line]


def measure(code, recording, jobs, offset, steps):
    port = free_port()
    replay = subprocess.Popen([sys.executable, '-m', 'collector', 'replay', recording, '--port', str(port),
                               '--start-offset', str(offset)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory() as work:
        conf = os.path.join(work, 'jobs.conf')
        with open(conf, 'w') as f:
            for k in range(jobs):
                f.write("job{}:\n  host: '127.0.0.1:{}'\n  models_dir: none\n  update_every: 1\n".format(k, port))
        time.sleep(3)
        began = time.monotonic()
        err = open(os.path.join(work, 'err'), 'w+')
        run = subprocess.Popen([sys.executable, '-c', code, 'run', '--config', conf, '--steps', str(steps)],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
        most, peak, all_trained = 0, 0, None
        while run.poll() is None:
            rss = training_processes(run.pid)
            most, peak = max(most, len(rss)), max(peak, sum(rss))
            if all_trained is None and len(set(job for job, _ in trained_lines(err.name))) >= jobs:
                all_trained = time.monotonic() - began
            time.sleep(0.1)
        replay.terminate()
        replay.wait()
        err.close()
        trained = trained_lines(err.name)
    return {'most': most, 'peak_mib': peak / 1024.0, 'trained': len(trained), 'seconds': time.monotonic() - began,
            'all_trained': all_trained}


def trained_lines(log):
    """``(job, line)`` of each 'trained N models' line in the run's log so far (a job may train
    twice, as charts appear, before another trains once)."""
    with open(log) as f:
        found = [(re.search(r'\[([^\]]*)\] : trained \d+ model', line), line) for line in f]
    return [(m.group(1), line) for m, line in found if m]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('recording', nargs='?', default=DEMO)
    ap.add_argument('--jobs', type=int, default=4)
    ap.add_argument('--offset', type=int, default=400, help='seconds into the recording the replay starts at')
    ap.add_argument('--steps', type=int, default=40)
    args = ap.parse_args()
    if args.jobs < 1 or args.steps < 1 or args.offset < 0:
        ap.error('--jobs and --steps must be positive, --offset not negative')
    if not os.path.isfile(os.path.join(args.recording, 'recording.json')):
        ap.error('{}: not a recording (no recording.json)'.format(args.recording))
    print('{:<24} {:>5} {:>24} {:>22} {:>10} {:>26}'.format('variant', 'jobs', 'trainings at once (most)',
                                                              'their peak RSS (MiB)', 'trainings',
                                                              'every job trained after (s)'))
    for name, code in (('one at a time (shipped)', ONE_AT_A_TIME), ('all at once (before)', ALL_AT_ONCE)):
        r = measure(code, args.recording, args.jobs, args.offset, args.steps)
        print('{:<24} {:>5} {:>24} {:>22.0f} {:>10} {:>26}'.format(
            name, args.jobs, r['most'], r['peak_mib'], r['trained'],
            '-' if r['all_trained'] is None else '{:.1f}'.format(r['all_trained'])))


if __name__ == '__main__':
    run_main(main)
