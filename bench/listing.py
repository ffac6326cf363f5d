"""How long the steps take against an agent slow to list its charts.

Once a minute, and before each full training, the job reads the agent's chart list
(``/api/v1/charts``) for charts that appeared, went away or gained dimensions. An agent with
thousands of charts, or a busy Raspberry Pi, takes a second or more to answer it. Here a
recording is replayed with every chart list held back by each of the given delays, a job is
trained on its clean lead, and 150 steps (two looks at the list) are timed one by one: with the
step waiting for the list (as before), and with the list read in a thread of its own (the
job's way now, ``engine.LIST_WAIT_SECONDS``).

    python bench/listing.py ../shared/recordings/netdata-1.37-incidents-a --delays 0 0.5 2
"""
import argparse
import logging
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from collector import engine  # noqa: E402
from collector.config import parse_job_config  # noqa: E402
from collector.evaluate import default_warmup  # noqa: E402
from collector.replay import Recording, ReplayClock, ReplayServer  # noqa: E402
from collector.training import ThreadTrainer  # noqa: E402


def step_seconds(server, delay, wait, steps):
    """Seconds each of ``steps`` steps took with chart lists ``delay`` s slow, and the steps that scored."""
    det = engine.AnomalyDetector(parse_job_config({'host': server.host, 'train_n_secs': 600, 'models_dir': None}),
                                 logging.getLogger('listing'), trainer=ThreadTrainer())
    det.start()
    while not det.models:
        det.step()
        server.clock.advance(1)
        det.trainer.wait()
    det.list_wait = wait
    server.charts_delay = delay
    took, scored = [], 0
    try:
        for _ in range(steps):
            began = time.perf_counter()
            step = det.step()
            took.append(time.perf_counter() - began)
            scored += len(step.scores) == len(det.models)
            server.clock.advance(1)
            time.sleep(0.01)   # a step's pause, short: the lists still come in between steps
    finally:
        server.charts_delay = 0.0
        det.close()
    return took, scored


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('recording')
    ap.add_argument('--delays', type=float, nargs='+', default=[0.0, 0.5, 2.0], help='seconds per chart list')
    ap.add_argument('--steps', type=int, default=150)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rec = Recording(args.recording)
    print('{:>8}  {:>34}  {:>34}'.format('delay_s', 'in the step: longest / median s', 'in a thread: longest / median s'))
    for delay in args.delays:
        row = []
        for wait in (None, engine.LIST_WAIT_SECONDS):
            clock = ReplayClock(rec.start + default_warmup(rec) - 300, stepped=True)
            with ReplayServer(rec, clock) as server:
                took, scored = step_seconds(server, delay, wait, args.steps)
            row.append('{:.3f} / {:.4f} ({}/{} scored)'.format(max(took), sorted(took)[len(took) // 2],
                                                               scored, len(took)))
        print('{:>8.2f}  {:>34}  {:>34}'.format(delay, *row))


if __name__ == '__main__':
    main()
