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
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from collector import engine  # noqa: E402
from collector.config import parse_job_config  # noqa: E402
from collector.evaluate import default_warmup  # noqa: E402
from collector.replay import Recording, ReplayClock, ReplayServer  # noqa: E402
from collector.training import ThreadTrainer  # noqa: E402


def gap_step_seconds(server, delay, readers, repeats):
    """Seconds the step after a 90 s gap took, each of ``repeats`` times, and the models charted."""
    det = engine.AnomalyDetector(parse_job_config({'host': server.host, 'train_n_secs': 600, 'models_dir': None}),
                                 logging.getLogger('refill'), trainer=ThreadTrainer())
    det.start()
    while not det.models:
        det.step()
        server.clock.advance(1)
        det.trainer.wait()
    engine.PARALLEL_READS = readers
    took, charted = [], 0
    try:
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
    finally:
        det.close()
    return took, charted, len(det.models)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('recording')
    ap.add_argument('--delays', type=float, nargs='+', default=[0.0, 0.02, 0.1], help='seconds per data answer')
    ap.add_argument('--repeats', type=int, default=3)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rec = Recording(args.recording)
    parallel = engine.PARALLEL_READS
    print('{:>10}  {:>22}  {:>22}  {}'.format('delay_s', 'one at a time: step_s', '{} at a time: step_s'.format(
        parallel), 'models scored after the gap'))
    for delay in args.delays:
        row = []
        for readers in (1, parallel):
            clock = ReplayClock(rec.start + default_warmup(rec) - 300, stepped=True)
            with ReplayServer(rec, clock) as server:
                took, charted, models = gap_step_seconds(server, delay, readers, args.repeats)
            row.append((sorted(took)[len(took) // 2], charted, models))
        print('{:>10.3f}  {:>22.3f}  {:>22.3f}  {}/{} and {}/{}'.format(
            delay, row[0][0], row[1][0], row[0][1], row[0][2], row[1][1], row[1][2]))
    engine.PARALLEL_READS = parallel


if __name__ == '__main__':
    main()
