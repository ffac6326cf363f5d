"""Where a training runs, off the collection path: ``SubprocessTrainer`` (the default) in a
short-lived child process (``python -m collector.train_worker``), so pandas, scikit-learn and
pyod never load into the long-lived collector and a long fit cannot delay a collection step;
``ThreadTrainer`` in a thread of this process (the harnesses that replay a recording). Every
job of a process (python.d.plugin runs them all in one) trains one at a time.
"""
import contextlib
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
import weakref

import numpy as np

from . import BLAS_THREADS, training
from .training import LESS_MEMORY, TrainingResult


def _warm_up(result):
    """Make the models ready to score: pyod models import and JIT-compile on first use."""
    import warnings
    with warnings.catch_warnings(), np.errstate(all='ignore'):
        warnings.simplefilter('ignore')
        for fm in result.models.values():
            try:
                fm.warm_up()
            except Exception:
                pass  # scoring reports it, per model, if it keeps failing
    return result


# the trainers of this process's jobs (python.d.plugin runs every job of every module in one
# process): one training runs at a time, the others' wait for it. Jobs reading a parent's
# children start together and trained together: 4 jobs peaked at 480 MiB at once
_TRAINERS = weakref.WeakSet()
_LISTED = threading.Lock()   # a set must not change while another thread lists it (a job's start)


def _trainers():
    with _LISTED:
        return list(_TRAINERS)


_SLOT = threading.Lock()   # one look at a time picks and starts the next waiting training
# a waiting training whose job has not polled for this long (a job python.d stopped updating)
# keeps no other job's from its turn
GONE_WAITER_SECONDS = 120


class _OneAtATime:
    """A trainer whose training, asked for while another job's runs, starts when that one ends
    (at a ``poll``, or in ``wait``): to its job it is only a training that takes longer. Waiting
    trainings start in the order they were asked for, at the first look of any job once the slot
    is free: the job that steps most often would otherwise take every turn while trainings are
    asked for faster than they end, and waiting for the first one's own job to look would leave
    the slot idle for up to its update_every. Subclasses give ``_launch(request)`` and ``running``."""

    def __init__(self, job=None):
        self.job = job         # the name of the job it trains for (None: not known)
        self._waiting = None   # a request that waits for another job's training to end
        self._launch_failed = None   # why another job's look could not start it (told at its own)
        self._asked = 0.0      # time.monotonic() it was asked for
        self._looked = 0.0     # time.monotonic() its job last looked whether it may start
        self._started = 0.0    # time.monotonic() its last training started
        self.waited = 0.0      # seconds its last training waited for another job's to end
        with _LISTED:
            _TRAINERS.add(self)

    def start(self, request):
        self._waiting, self._launch_failed, self._asked = request, None, time.monotonic()
        self._start_when_free()

    @property
    def waiting(self):
        """Whether a training asked for waits for another job's to end."""
        return self._waiting is not None

    def _start_when_free(self):
        """Unless another job's training runs, start the first waiting one, whoever's; whether
        this one has started (at this look or another job's)."""
        with _SLOT:
            now = self._looked = time.monotonic()
            if self._waiting is None:
                return True
            if self._launch_failed is not None:
                failed, self._launch_failed = self._launch_failed, None
                raise failed
            if any(t.running for t in _trainers() if t is not self):
                return False
            return self._launch_oldest(now) is self

    def _launch_oldest(self, now):
        """With the slot held and free: start the training that has waited longest, this job's
        or another's still looking; the trainer started, or None."""
        # (a waiter whose job has stopped looking, one python.d stopped updating, has no turn)
        waiting = sorted((t for t in _trainers() if t._waiting is not None and t._launch_failed is None and
                          (t is self or now - t._looked < GONE_WAITER_SECONDS)), key=lambda t: t._asked)
        for first in waiting:
            if first is self:
                try:
                    self._launch_waiting()
                except BaseException:   # told to the caller: nothing waits or runs
                    self._waiting = None
                    raise
                return self
            try:
                first._launch_waiting()
                return first
            except Exception as e:   # e.g. no memory for its process: its job is told at its look
                first._launch_failed = e
        return None

    def _hand_over(self):
        """At a look of a job with nothing of its own waiting or running: another job's waiting
        training starts now that the slot is free, rather than at its own job's next look, up
        to its update_every away."""
        if self._waiting is not None or self.running:
            return
        with _SLOT:
            if not any(t.running for t in _trainers()):
                self._launch_oldest(time.monotonic())

    def _launch_waiting(self):
        # launched, then no longer waiting: a poll of its job's in between sees it waiting, and
        # waits for the slot's lock until its process, reader and result are all in place
        self.waited = time.monotonic() - self._asked
        self._launch(self._waiting)
        self._waiting = None

    def _started_waiting(self):
        """At a poll: None, or the result of a waiting training that could not be started."""
        try:
            self._start_when_free()
        except Exception as e:  # e.g. no memory or file descriptors for the training process
            self._waiting = None
            return TrainingResult(error='cannot start training: {!r}'.format(e))
        return None

    def waiting_for(self):
        """While its training waits: (seconds it has waited, the trainer whose training runs,
        None when none does), else None."""
        if self._waiting is None:
            return None
        running = [t for t in _trainers() if t is not self and t.running]
        return time.monotonic() - self._asked, (running[0] if running else None)

    def running_for(self):
        """Seconds its training has run, or None when none runs."""
        return time.monotonic() - self._started if self.running else None

    def _wait_to_start(self, until):
        """Start the waiting training once no other job's runs, by ``until`` (monotonic; None:
        however long); whether none waits."""
        while self._waiting is not None and not self._start_when_free():
            if until is not None and time.monotonic() >= until:
                return False
            time.sleep(0.05)
        return True


def training_elsewhere(trainer, seconds):
    """Whether another job's training has run in this process for less than ``seconds``."""
    ran = [t.running_for() for t in _trainers() if t is not trainer]
    return any(r is not None and r < seconds for r in ran)


class ThreadTrainer(_OneAtATime):
    """Runs ``run_training`` in a daemon thread."""

    def __init__(self, job=None):
        super().__init__(job)
        self._thread = None
        self._result = None

    @property
    def busy(self):
        return self._thread is not None or self._waiting is not None

    @property
    def running(self):
        return self._thread is not None and self._thread.is_alive()

    def _launch(self, request):
        def work():
            try:
                self._result = _warm_up(training.run_training(request))
            except Exception as e:  # never let a training bug kill the job
                self._result = TrainingResult(error='training crashed: {!r}'.format(e))
        self._result = None
        self._started = time.monotonic()
        self._thread = threading.Thread(target=work, name='anomalies-train', daemon=True)
        self._thread.start()

    def poll(self):
        if self._waiting is not None:
            return self._started_waiting()
        self._hand_over()
        if self._thread is None or self._thread.is_alive():
            return None
        self._thread = None
        return self._result

    def wait(self, timeout=None):
        """Block until the training is done, started first if it waits for another job's (its
        result stays for ``poll``)."""
        until = None if timeout is None else time.monotonic() + timeout
        if self._wait_to_start(until) and self._thread is not None:
            self._thread.join(None if until is None else max(0.0, until - time.monotonic()))

    def close(self):
        with _SLOT:   # (not started meanwhile by another job's look)
            self._waiting = None


# where this package is: the training process starts there, as '-m' puts its folder first on
# its path (started in a checkout, it imported the checkout's package, not this one)
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _child_env():
    """The child must import exactly what we can: hand it our sys.path, with the places our
    package and numpy came from first (under python.d they sit at its end, see anomalies.chart.py)."""
    env = dict(os.environ)
    ours = [os.path.dirname(os.path.dirname(os.path.abspath(m))) for m in (__file__, np.__file__)]
    paths = []
    for p in ours + sys.path:
        if p and os.path.isdir(p) and p not in paths:
            paths.append(p)
    env['PYTHONPATH'] = os.pathsep.join(paths)
    for name in BLAS_THREADS:
        env.setdefault(name, '1')
    return env


def _why_exited(code):
    """What a training process's exit code most likely means, and what to change: on a small
    box the usual end is memory (the kernel's out-of-memory killer, a ulimit or cgroup limit)."""
    if code == -signal.SIGKILL:
        return (' (killed: most likely by the kernel for memory, see dmesg, or by a cgroup\'s memory limit; '
                + LESS_MEMORY + ')')
    if isinstance(code, int) and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = 'signal {}'.format(-code)
        return ' ({}: a crash, as short of memory can end one; its own lines before this say more)'.format(name)
    if isinstance(code, int) and code > 0:
        if not os.path.isfile(os.path.join(PACKAGE_PARENT, 'collector', 'train_worker.py')):
            return (' (this job\'s package at {} is gone: the install was upgraded or removed since the agent '
                    'started the job; restart the agent)'.format(PACKAGE_PARENT))
        return ' (its own error lines before this one say why; MemoryError or "failed to map": ' + LESS_MEMORY + ')'
    return ''


class SubprocessTrainer(_OneAtATime):
    """Runs ``run_training`` in ``python -m collector.train_worker``; results come back pickled.

    The child is niced so the collector and the agent keep priority on a busy box.
    """

    def __init__(self, python=None, nice=10, max_seconds=900, job=None):
        super().__init__(job)
        self.python = python or sys.executable
        self.nice = nice
        self.max_seconds = max_seconds  # a training that takes longer is killed and reported
        self._proc = None
        self._reader = None
        self._result = [None]
        self._ending = []   # trainings whose result came, reaped once they have exited

    @property
    def busy(self):
        return self._proc is not None or self._waiting is not None

    @property
    def running(self):
        """A training process runs that has not overrun ``max_seconds`` (one that has, of a job
        python.d dropped and no longer polls, holds up no other job's)."""
        return (self._proc is not None and self._reader is not None and self._reader.is_alive()
                and time.monotonic() - self._started < self.max_seconds)

    def start(self, request):
        # pickled now: a failure here leaves nothing running, and a waiting request is not
        # changed by its job meanwhile
        super().start(pickle.dumps(request, protocol=4))

    def _launch(self, data):
        self._started = time.monotonic()
        # no preexec_fn: it is unsafe in a threaded process such as python.d.plugin
        self._proc = subprocess.Popen([self.python, '-m', 'collector.train_worker', '--nice', str(self.nice),
                                       '--parent', str(os.getpid())],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=_child_env(),
                                      close_fds=True, cwd=PACKAGE_PARENT)
        proc = self._proc
        # this training's own result: a reader of one stopped for its time may still end after
        # the next training's, and must not write over it
        self._result = result = [None]

        def io_thread():
            # unpickling (and warming up) here keeps model imports off the collection path
            try:
                proc.stdin.write(struct.pack('>Q', len(data)) + data)
                proc.stdin.close()
                payload = proc.stdout.read()
                result[0] = _warm_up(pickle.loads(payload)) if payload else None
            except Exception as e:
                result[0] = e
        self._reader = threading.Thread(target=io_thread, name='anomalies-train-io', daemon=True)
        try:
            self._reader.start()
        except BaseException:   # no thread to be had (pids.max, ulimit -u): the child would wait for
            self._let_go(proc)  # a request that never comes, and the job for its result
            raise

    def _let_go(self, proc):
        """Kill ``proc``, reaped by a later ``poll`` (a process stuck in I/O, on a stalled SD
        card, can take its time to die, and a step must not wait for it)."""
        with contextlib.suppress(OSError):
            proc.kill()
        self._ending.append(proc)
        if proc is self._proc:
            self._proc = None

    def poll(self):
        self._ending = [p for p in self._ending if p.poll() is None]
        if self._waiting is not None:
            return self._started_waiting()
        self._hand_over()
        if self._proc is None:
            return None
        if self._reader.is_alive():
            if time.monotonic() - self._started < self.max_seconds:
                return None
            self._let_go(self._proc)
            return TrainingResult(error='training took longer than {}s and was stopped (a slow or busy box, or one '
                                         'short of memory: a smaller train_n_secs, or fewer charts (charts_regex), '
                                         'takes less)'.format(self.max_seconds))
        proc, self._proc = self._proc, None
        payload = self._result[0]
        if payload is None:   # its output closed with nothing in it: it has ended, its exit code says how
            try:
                code = proc.wait(0.2)
            except subprocess.TimeoutExpired:
                code = 'unknown (still exiting)'
                self._ending.append(proc)
            return TrainingResult(error='training process exited with code {} and no result{}'.format(
                code, _why_exited(code)))
        # not waited for here: a process still exiting must not hold up a step
        self._ending.append(proc)
        if isinstance(payload, Exception):
            return TrainingResult(error='training process sent an unreadable result: {!r}'.format(payload))
        return payload

    def wait(self, timeout=None):
        """Block until the running training is done, started first if it waits for another
        job's (its result stays for ``poll``)."""
        until = None if timeout is None else time.monotonic() + timeout
        if self._wait_to_start(until) and self._reader is not None and self._proc is not None:
            self._reader.join(None if until is None else max(0.0, until - time.monotonic()))

    def close(self):
        with _SLOT:   # (not started meanwhile by another job's look)
            self._waiting = None
            running = [self._proc] if self._proc is not None else []
        for proc in self._ending + running:
            with contextlib.suppress(OSError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):   # one stuck in I/O is left to init
                proc.wait(2.0)
        self._proc, self._ending = None, []


def make_trainer(config):
    job = config.job_name or 'anomalies'
    return SubprocessTrainer(job=job) if config.train_in_subprocess else ThreadTrainer(job)
