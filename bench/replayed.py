"""A job trained on a replayed recording's clean lead, for the benchmarks that time its steps
against an agent slow to answer (``refill.py``, ``listing.py``)."""
import contextlib
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from collector import engine  # noqa: E402
from collector.config import parse_job_config  # noqa: E402
from collector.evaluate import default_warmup  # noqa: E402
from collector.replay import Recording, ReplayClock, ReplayServer  # noqa: E402
from collector.trainers import ThreadTrainer  # noqa: E402

# a job that failed this many trainings in a row (each retried 30, 60, 120 steps on) will not
# train here: the benchmark stops rather than waits for ever; nor does it wait past the steps
# after them (a job with no history yet waits train_min_n_secs and a chart list's look first)
TRAIN_FAILURES = 3
TRAIN_STEPS = 1200


def checked(parser, args, count):
    """The recording of ``args``, or the parser's error exit: before any training, a path that
    is no recording, a count (``--repeats``, ``--steps``) under 1 or a negative delay."""
    if getattr(args, count) < 1 or min(args.delays) < 0:
        parser.error('--{} must be at least 1 and --delays not negative'.format(count))
    try:
        return Recording(args.recording)
    except (OSError, ValueError) as e:
        parser.error('{} is no recording: {}'.format(args.recording, e))


@contextlib.contextmanager
def trained_job(rec, name):
    """``(server, detector)``: the recording replayed on a stepped clock 300 s before its
    default warm-up ends, and a job with a 600 s window trained there; closed on the way out."""
    clock = ReplayClock(rec.start + default_warmup(rec) - 300, stepped=True)
    with ReplayServer(rec, clock) as server:
        det = engine.AnomalyDetector(parse_job_config({'host': server.host, 'train_n_secs': 600, 'models_dir': None}),
                                     logging.getLogger(name), trainer=ThreadTrainer())
        try:
            det.start()
            for steps in range(TRAIN_STEPS):
                if det.models or det.failed_trainings >= TRAIN_FAILURES:
                    break
                det.step()
                server.clock.advance(1)
                det.trainer.wait()
            if not det.models:
                sys.exit('{}: no model trained in {} steps of {} (see the errors above)'.format(
                    name, steps, rec.path))
            yield server, det
        finally:
            det.close()
