"""How long the steps take against an agent slow to list its charts.

Once a minute, and before each full training, the job reads the agent's chart list
(``/api/v1/charts``) for charts that appeared, went away or gained dimensions. An agent with
thousands of charts, or a busy Raspberry Pi, takes a second or more to answer it. Here a
recording is replayed with every chart list held back by each of the given delays, a job is
trained on its clean lead, and 150 steps (two looks at the list) are timed one by one: with the
step waiting for the list (as before), and with the list read in a thread of its own (the
job's way now, ``timings.LIST_WAIT_SECONDS``).

    python bench/listing.py ../shared/recordings/netdata-1.37-incidents-a --delays 0 0.5 2
"""
import argparse
import logging
import time

from common import run_main  # first: it checks this Python before the collector is imported
from replayed import checked, trained_job

from collector import timings  # noqa: E402


def step_seconds(rec, delay, wait, steps):
    """Seconds each of ``steps`` steps took with chart lists ``delay`` s slow, and the steps that scored."""
    took, scored = [], 0
    with trained_job(rec, 'listing') as (server, det):
        det.list_wait = wait
        server.charts_delay = delay
        for _ in range(steps):
            began = time.perf_counter()
            step = det.step()
            took.append(time.perf_counter() - began)
            scored += len(step.scores) == len(det.models)
            server.clock.advance(1)
            time.sleep(0.01)   # a step's pause, short: the lists still come in between steps
    return took, scored


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('recording')
    ap.add_argument('--delays', type=float, nargs='+', default=[0.0, 0.5, 2.0], help='seconds per chart list')
    ap.add_argument('--steps', type=int, default=150)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rec = checked(ap, args, 'steps')
    print('{:>8}  {:>34}  {:>34}'.format('delay_s', 'in the step: longest / median s', 'in a thread: longest / median s'))
    for delay in args.delays:
        row = []
        for wait in (None, timings.LIST_WAIT_SECONDS):
            took, scored = step_seconds(rec, delay, wait, args.steps)
            row.append('{:.3f} / {:.4f} ({}/{} scored)'.format(max(took), sorted(took)[len(took) // 2],
                                                               scored, len(took)))
        print('{:>8.2f}  {:>34}  {:>34}'.format(delay, *row))


if __name__ == '__main__':
    run_main(main)
