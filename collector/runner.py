"""Standalone run of the anomalies jobs: the python.d Service on the project's own base.

Protocol lines go to stdout (so this works as a plugins.d external plugin); logs and
anything a library prints go to stderr. Several jobs in one file run side by side, one
thread each, as python.d.plugin runs them.
"""
import io
import os
import sys
import threading
import time

from .config import ConfigError, served_name
from .config_file import load_config_file, note_job, pythond_skips
from .protocol import safe_id
from .pythond import SimpleService, run_job
from .service import AnomaliesService

STOP_WAIT = 10.0   # seconds a stopping run waits, in all, for the jobs to end their steps in progress


class Service(AnomaliesService, SimpleService):
    """The same job class python.d.plugin runs, on the standalone base."""


class SharedStream:
    """One stream that several jobs write to: each write goes out whole, so one job's
    BEGIN..END block (or log line) is never cut by another's."""

    def __init__(self, stream):
        self.stream = stream
        self._lock = threading.Lock()

    def write(self, text):
        with self._lock:
            return self.stream.write(text)

    def flush(self):
        with self._lock:
            self.stream.flush()

    def __getattr__(self, name):   # isatty, fileno, encoding ...: a library printing may ask
        return getattr(self.stream, name)


def _raw_for(jobs, job, host, update_every):
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


def _load(config_path, notes):
    return load_config_file(config_path, notes) if config_path else {'anomalies': {}}


def select_job(config_path, job=None, host=None, update_every=None, notes=None):
    """The raw configuration of one job from a python.d config file (or the defaults).

    ``update_every`` is a floor, as python.d.plugin's own argument is: the agent passes its
    interval to a plugin, and a job that asks for longer steps (a small box) keeps them.
    Without ``job`` the first.
    """
    jobs = _load(config_path, notes)
    if job is None:
        job = next(iter(jobs))
    if job not in jobs:
        raise ConfigError(["no job '{}' in {} (jobs: {})".format(
            job, config_path or 'the defaults (no --config)', ', '.join(jobs))])
    return _raw_for(jobs, job, host, update_every)


def select_jobs(config_path, job=None, host=None, update_every=None, notes=None):
    """The raw configurations of the jobs to run: ``job`` alone, or every job of the file.

    Only the first job of each name runs (its ``name`` key, else the job's; two names that make
    the same chart ids count as one): the others would write the same charts. ``notes`` names
    them. (python.d.plugin compares a name with the last job it started only, as text:
    ``check-config`` tells where it runs or skips other jobs than these.)
    """
    if job is not None:
        return [select_job(config_path, job, host, update_every, notes)]
    jobs = _load(config_path, notes)
    chosen, taken = [], {}
    pythond_skipped = pythond_skips(jobs)
    for name, raw in jobs.items():
        key = safe_id(served_name(name, raw))
        if key in taken:
            if notes is not None:
                notes.append("job {} not run: its charts would be job {}'s (give it its own name)".format(
                    name, taken[key]))
            continue
        taken[key] = name
        if name in pythond_skipped and notes is not None:   # run here, skipped there: the file works only here
            notes.append("job {}: python.d.plugin would not run it ('already served by another job': its name is "
                         "part of job {}'s, the job before it); give it a name of its own".format(
                             name, pythond_skipped[name]))
        chosen.append(_raw_for(jobs, name, host, update_every))
    return chosen


def _nothing_to_predict(detector):
    """Why a job that reached its agent cannot predict at all, or None while it may yet."""
    if detector is None:
        return None
    if not detector.specs:
        return 'no chart to model'
    failed = 'training' in detector.problems.active or set(detector.specs) <= set(detector.untrained)
    return 'no model could be trained' if failed and not detector.models else None


def _run_service(service, steps, stop=None):
    """One job's run: the number of steps that updated its charts or at least reached its
    agent (0: it never answered, or it has no chart the job models), -1 when it did not start."""
    updated = run_job(service, steps=steps, stop=stop)
    if getattr(service, 'output_failed', False):
        return -1   # a failure (said, and not the models'): a service manager restarts on it
    if updated == 0 and service.answered_steps:
        why = _nothing_to_predict(service.detector)
        if why:
            service.error('no prediction in {} steps: {} (see the errors above)'.format(service.answered_steps, why))
            return 0
        # a young agent, or a first training still running
        service.info('no prediction in {} steps: the models are still waiting for history or '
                     'training'.format(service.answered_steps))
    return updated if updated < 0 else max(updated, service.answered_steps)


def _close(service):
    if service.detector is not None:
        service.detector.close()
    if getattr(service, 'exporter', None) is not None:
        service.exporter.close()


def _run_side_by_side(services, steps, failed=None):
    """Each job in its own thread; the least of their results. Ctrl-C or SIGTERM (which reach
    this, the main thread) stop every job after its step in progress."""
    stop = threading.Event()
    results = [-1] * len(services)

    def work(i, service):
        try:
            results[i] = _run_service(service, steps, stop)
        except Exception as e:   # one job's failure must not take the others down
            service.error('job stopped: {!r}'.format(e))

    threads = [threading.Thread(target=work, args=(i, s), name='anomalies-' + s.job_name, daemon=True)
               for i, s in enumerate(services)]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.5)   # a timed join: the signal's KeyboardInterrupt gets through
    finally:
        stop.set()
        deadline = time.monotonic() + STOP_WAIT   # one wait for all: an agent stopping waits for its plugins
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
    if failed is not None:
        failed.extend(s.job_name for s, r in zip(services, results) if r <= 0)
    return min(results)


def run(config_path=None, job=None, host=None, update_every=None, steps=None, out=None, err=None, failed=None):
    """Run ``job`` (or every job of the file) standalone, protocol on ``out``; the least over
    the jobs of the steps that updated the charts or at least reached the agent (0: it never
    answered, or it has no chart the job models), -1 when a job did not start. ``failed``, a
    list, gets the names of the jobs that charted nothing, when several ran."""
    out = out or sys.stdout
    err = err or sys.stderr
    if getattr(out, 'encoding', 'utf-8').lower().replace('-', '') != 'utf8' and hasattr(out, 'reconfigure'):
        out.reconfigure(encoding='utf-8')   # what the agent reads, whatever the locale
    notes = []
    raws = select_jobs(config_path, job, host, update_every, notes)
    keys = [raw['job_name'] for raw in raws]   # as the file names them (the service takes python.d's name)
    several = len(raws) > 1
    if several:
        out, err = (SharedStream(out) if out is not None else None), SharedStream(err)
    services = []
    for raw in raws:
        service = Service(configuration=raw)
        service.out, service.log_stream = out, err
        services.append(service)
    by_key = dict(zip(keys, services))
    for line in notes:   # a job's own note in its own log lines, the file's in the first job's
        by_key.get(note_job(line, keys), services[0]).warning('{}: {}'.format(config_path, line))
    if several:
        services[0].info('running {} jobs side by side: {}'.format(len(services),
                                                                   ', '.join(s.job_name for s in services)))
    if out is None:   # started with stdout closed: the charts would go nowhere
        services[0].error('stdout is closed: nothing to write the charts to, job not started')
        return -1
    try:   # a pipe left non-blocking by whoever made it would cut protocol lines in two when full
        os.set_blocking(out.fileno(), True)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):   # not a file (a test's buffer)
        pass
    saved = sys.stdout
    sys.stdout = err  # nothing but protocol lines may reach the real stdout
    try:
        if several:
            return _run_side_by_side(services, steps, failed)
        return _run_service(services[0], steps)
    finally:
        sys.stdout = saved
        for service in services:
            _close(service)
