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

# steps a job is given to train its first models (a training failing at each retry waits 30,
# 60, 120 steps between them): past these, the benchmark stops rather than waits for ever
TRAIN_STEPS = 300


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
            for _ in range(TRAIN_STEPS):
                if det.models:
                    break
                det.step()
                server.clock.advance(1)
                det.trainer.wait()
            if not det.models:
                sys.exit('{}: no model trained in {} steps of {} (see the errors above)'.format(
                    name, TRAIN_STEPS, rec.path))
            yield server, det
        finally:
            det.close()
