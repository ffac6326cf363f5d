"""Standalone run of an anomalies job: the python.d Service on the project's own base.

Protocol lines go to stdout (so this works as a plugins.d external plugin); logs and
anything a library prints go to stderr.
"""
import sys

from .config import ConfigError, load_config_file
from .pythond import SimpleService, run_job
from .service import AnomaliesService


class Service(AnomaliesService, SimpleService):
    """The same job class python.d.plugin runs, on the standalone base."""


def select_job(config_path, job=None, host=None, update_every=None, notes=None):
    """The raw configuration of one job from a python.d config file (or the defaults).

    ``update_every`` is a floor, as python.d.plugin's own argument is: the agent passes its
    interval to a plugin, and a job that asks for longer steps (a small box) keeps them.
    Without ``job`` the first runs; ``notes`` then names the others, which need a run each.
    """
    jobs = load_config_file(config_path, notes) if config_path else {'anomalies': {}}
    if job is None:
        job = next(iter(jobs))
        if len(jobs) > 1 and notes is not None:
            others = [name for name in jobs if name != job]
            notes.append("{} jobs in it: running '{}', the first; not running {} (one run per job: "
                         "--job NAME)".format(len(jobs), job, ', '.join(others)))
    if job not in jobs:
        raise ConfigError(["no job '{}' in {} (jobs: {})".format(job, config_path, ', '.join(jobs))])
    raw = dict(jobs[job])
    raw['job_name'] = job
    if host:
        raw['host'] = host
    if update_every:
        own = raw.get('update_every')
        number = isinstance(own, (int, float)) and not isinstance(own, bool) and own == own
        # a job's own value that is no number is kept for the configuration's check to refuse
        if own is None or (number and own < update_every):
            raw['update_every'] = update_every
    return raw


def _nothing_to_predict(detector):
    """Why a job that reached its agent cannot predict at all, or None while it may yet."""
    if detector is None:
        return None
    if not detector.specs:
        return 'no chart to model'
    failed = 'training' in detector.problems.active or set(detector.specs) <= set(detector.untrained)
    return 'no model could be trained' if failed and not detector.models else None


def run(config_path=None, job=None, host=None, update_every=None, steps=None, out=None, err=None):
    """Run one job standalone, protocol on ``out``; the number of steps that updated the charts
    or at least reached the agent (0: it never answered, or it has no chart the job models),
    -1 when the job did not start."""
    out = out or sys.stdout
    err = err or sys.stderr
    notes = []
    raw = select_job(config_path, job, host, update_every, notes)
    service = Service(configuration=raw)
    service.out, service.log_stream = out, err
    for line in notes:
        service.warning('{}: {}'.format(config_path, line))
    if out is None:   # started with stdout closed: the charts would go nowhere
        service.error('stdout is closed: nothing to write the charts to, job not started')
        return -1
    saved = sys.stdout
    sys.stdout = err  # nothing but protocol lines may reach the real stdout
    try:
        updated = run_job(service, steps=steps)
        if updated == 0 and service.answered_steps:
            why = _nothing_to_predict(service.detector)
            if why:
                service.error('no prediction in {} steps: {} (see the errors above)'.format(service.answered_steps, why))
                return 0
            # a young agent, or a first training still running
            service.info('no prediction in {} steps: the models are still waiting for history or '
                         'training'.format(service.answered_steps))
        return updated if updated < 0 else max(updated, service.answered_steps)
    finally:
        sys.stdout = saved
        if service.detector is not None:
            service.detector.close()
        if getattr(service, 'exporter', None) is not None:
            service.exporter.close()
