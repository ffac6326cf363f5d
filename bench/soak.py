"""Benchmark: a job's resident memory over many trainings, as shipped (the memory its threads
freed given back to the system after each training, ``collector/memory.py``) beside the same
job keeping it, in one run.

Each variant runs in a process of its own: the recording is replayed on a stepped clock as
fast as the job steps, looped with the clock set back at each loop, and the job (its training
in a child process, as a user's) retrains every ``--train-every`` steps on a ``--window``
second window. Its RSS is read from /proc every ``--every`` steps.

    python bench/soak.py                                   # the shared recording, 104 charts, 4 loops (~6 min)
    python bench/soak.py RECORDING --loops 2 --regex 'system\\..*'
"""
import argparse
import json
import logging
import os
import subprocess
import sys

from common import run_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SHARED = os.path.join(ROOT, '..', 'shared', 'recordings', 'netdata-1.37-incidents-a')
REGEX = r'system\..*|apps\..*|disk.*|mem\..*|ipv4\..*|net\..*'
VARIANTS = ('shipped', 'kept')


def rss_mib():
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) / 1024.0 for line in f if line.startswith('VmRSS'))


def soak(args):
    """One variant: print a JSON line of steps, trainings and RSS every ``args.every`` steps."""
    from collector import engine, memory
    from collector.config import parse_job_config
    from collector.replay import Recording, ReplayClock, ReplayServer
    if args.variant == 'kept':
        memory.give_back = lambda: False
    log = logging.getLogger('soak')
    log.addHandler(logging.NullHandler())
    log.propagate = False
    rec = Recording(args.recording)
    clock = ReplayClock(rec.start + args.offset, stepped=True)
    with ReplayServer(rec, clock) as server:
        cfg = parse_job_config({'host': server.host, 'charts_regex': args.regex, 'train_every_n': args.train_every,
                                'train_n_secs': args.window, 'models_dir': None})
        det = engine.AnomalyDetector(cfg, log)
        det.list_wait = None                   # each chart list taken up by the step that asked for it
        det.trainings_take_agent_time = False  # the stepped clock stands while a training runs
        steps = 0
        try:
            det.start()
            for _ in range(args.loops):
                clock.set(rec.start + args.offset)
                while clock.now() <= rec.end:
                    det.trainer.wait()
                    det.step()
                    clock.advance(1)
                    steps += 1
                    if steps % args.every == 0:
                        print(json.dumps({'step': steps, 'trainings': det.trainings, 'models': len(det.models),
                                          'rss': round(rss_mib(), 1)}), flush=True)
        finally:
            det.close()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('recording', nargs='?', default=SHARED)
    p.add_argument('--regex', default=REGEX, help='charts_regex (default: %(default)s)')
    p.add_argument('--loops', type=int, default=4)
    p.add_argument('--offset', type=int, default=600, help='seconds into the recording each loop starts')
    p.add_argument('--train-every', type=int, default=120, help='train_every_n')
    p.add_argument('--window', type=int, default=600, help='train_n_secs')
    p.add_argument('--every', type=int, default=500, help='steps between RSS readings')
    p.add_argument('--variant', choices=VARIANTS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.loops < 1 or args.every < 1 or args.train_every < 1:
        p.error('--loops, --every and --train-every must be at least 1')
    if not os.path.isfile(os.path.join(args.recording, 'recording.json')):
        p.error('{} is no recording (no recording.json)'.format(args.recording))
    if args.variant:
        return soak(args)
    runs = {}
    for variant in VARIANTS:
        cmd = [sys.executable, os.path.abspath(__file__), args.recording, '--variant', variant, '--regex', args.regex,
               '--loops', str(args.loops), '--offset', str(args.offset), '--train-every', str(args.train_every),
               '--window', str(args.window), '--every', str(args.every)]
        out = subprocess.run(cmd, stdout=subprocess.PIPE, check=True, universal_newlines=True).stdout
        runs[variant] = [json.loads(line) for line in out.splitlines() if line.startswith('{')]
    print('{:>7} {:>9} {:>7} {:>12} {:>12}'.format('step', 'trainings', 'models', 'RSS shipped', 'RSS kept'))
    for a, b in zip(*(runs[v] for v in VARIANTS)):
        print('{:>7} {:>9} {:>7} {:>12.1f} {:>12.1f}'.format(a['step'], a['trainings'], a['models'], a['rss'], b['rss']))
    last = [runs[v][-1] for v in VARIANTS if runs[v]]
    if len(last) == 2:
        print('rss_shipped_mib={} rss_kept_mib={} trainings={}'.format(last[0]['rss'], last[1]['rss'], last[0]['trainings']))


if __name__ == '__main__':
    run_main(main)
