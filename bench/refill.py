"""How long the step after a gap takes against an agent slow to answer its data API.

After a gap in collection (a suspend, the agent restarted, a network outage) and after a
restart with saved models, the job reads each modelled chart's last stored rows again inside
that step, so that every model scores at once. Here a recording is replayed with every
``/api/v1/data`` answer held back by each of the given delays (a parent across a network, a
busy Raspberry Pi), a job is trained on its clean lead, the replayed clock jumps 90 s, and the
step after the jump is timed: with the charts read one at a time (as before), and a few at a
time over separate connections (``netdata_api.PARALLEL_READS``, the job's way now).

    python bench/refill.py ../shared/recordings/netdata-1.37-incidents-a --delays 0 0.02 0.1
"""
import argparse
import logging
import time

from common import run_main  # first: it checks this Python before the collector is imported
from replayed import checked, engine, trained_job


def gap_step_seconds(rec, delay, readers, repeats):
    """Seconds the step after a 90 s gap took, each of ``repeats`` times, and the models charted."""
    took, charted = [], 0
    with trained_job(rec, 'refill') as (server, det):
        engine.PARALLEL_READS = readers
        for _ in range(repeats):
            for _ in range(15):
                det.step()
                server.clock.advance(1)
            server.clock.advance(90)
            server.data_delay = delay
            began = time.perf_counter()
            step = det.step()
            took.append(time.perf_counter() - began)
            server.data_delay = 0.0
            charted = len(step.scores)
            server.clock.advance(1)
        models = len(det.models)
    return took, charted, models


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('recording')
    ap.add_argument('--delays', type=float, nargs='+', default=[0.0, 0.02, 0.1], help='seconds per data answer')
    ap.add_argument('--repeats', type=int, default=3)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rec = checked(ap, args, 'repeats')
    parallel = engine.PARALLEL_READS
    print('{:>10}  {:>22}  {:>22}  {}'.format('delay_s', 'one at a time: step_s', '{} at a time: step_s'.format(
        parallel), 'models scored after the gap'))
    for delay in args.delays:
        row = []
        for readers in (1, parallel):
            took, charted, models = gap_step_seconds(rec, delay, readers, args.repeats)
            row.append((sorted(took)[len(took) // 2], charted, models))
        print('{:>10.3f}  {:>22.3f}  {:>22.3f}  {}/{} and {}/{}'.format(
            delay, row[0][0], row[1][0], row[0][1], row[0][2], row[1][1], row[1][2]))
    engine.PARALLEL_READS = parallel


if __name__ == '__main__':
    run_main(main)
