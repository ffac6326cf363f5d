"""Unlabeled background work for an evaluation recording: the "other work" a real server runs.

From now until ``--until`` (unix time), after a random pause of ``--pause`` seconds, one short
job of a random kind and length: a busy core (a Python loop), a compression (gzip of random
bytes), a file written and synced to disk then deleted, a burst of short-lived processes, or
a sleep-and-wake pattern (many short busy spells). Jobs are milder than the labeled incidents
and come back all through the recording, so a training window of ten minutes or more has seen
each kind; a detector that flags them after that raises false flags. The random seed makes a
run repeatable in its plan (not in the load's exact shape). Every job is printed to stderr as
``start end kind seconds``, for the recording's notes:

    python3 recordings/background.py --until $(( $(date +%s) + 1500 )) --seed 7 2> background.log
"""
import argparse
import os
import random
import subprocess
import sys
import tempfile
import time

KINDS = ('busy-core', 'gzip', 'write-sync', 'spawn', 'spells')


def busy(seconds):
    end = time.time() + seconds
    x = 0
    while time.time() < end:
        x += sum(i * i for i in range(2000))


def job(kind, seconds, tmp):
    if kind == 'busy-core':
        busy(seconds)
    elif kind == 'gzip':
        subprocess.run('head -c 2000000000 /dev/urandom | timeout {} gzip -1 > /dev/null'.format(seconds),
                       shell=True)
    elif kind == 'write-sync':
        path = os.path.join(tmp, 'bg.bin')
        end = time.time() + seconds
        while time.time() < end:
            subprocess.run(['dd', 'if=/dev/zero', 'of=' + path, 'bs=1M', 'count=64', 'conv=fdatasync'],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            os.remove(path)
            time.sleep(1)
    elif kind == 'spawn':
        end = time.time() + seconds
        while time.time() < end:
            for _ in range(20):
                subprocess.run(['true'])
            time.sleep(0.2)
    elif kind == 'spells':
        end = time.time() + seconds
        while time.time() < end:
            busy(0.3)
            time.sleep(0.7)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--until', type=float, required=True, help='unix time to stop at')
    p.add_argument('--seed', type=int, default=7)
    p.add_argument('--pause', type=float, nargs=2, default=(40, 150), help='seconds between jobs (min max)')
    p.add_argument('--length', type=float, nargs=2, default=(5, 40), help='seconds of a job (min max)')
    args = p.parse_args()
    rng = random.Random(args.seed)
    tmp = tempfile.mkdtemp(prefix='background')
    try:
        while True:
            time.sleep(max(0.0, min(rng.uniform(*args.pause), args.until - time.time())))
            if time.time() >= args.until:
                break
            kind, seconds = rng.choice(KINDS), round(rng.uniform(*args.length))
            seconds = max(1, min(seconds, int(args.until - time.time())))
            start = time.time()
            job(kind, seconds, tmp)
            print('{:.0f} {:.0f} {} {}'.format(start, time.time(), kind, seconds), file=sys.stderr, flush=True)
    finally:
        subprocess.run(['rm', '-rf', tmp])


if __name__ == '__main__':
    main()
