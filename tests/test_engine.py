"""The per-step engine against a replayed agent: training, scoring, and bad days."""
import contextlib
import gzip
import json
import os
import re
import shutil
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from collector.config import parse_job_config
import collector.engine as engine
import collector.scope as scope
import collector.timings as timings
from collector.engine import AnomalyDetector
from collector.timings import Due
from collector.flagged_spans import FLAGS_SAVE_SECONDS
from collector.netdata_api import PARALLEL_READS, NetdataApi, NetdataError, json_loads
from collector.trainers import ThreadTrainer
from collector.training import RECURRING_EVENTS
from conftest import SECONDS, SPIKE, START, ListLogger, refuse_threads, write_recording


class SwitchableApi(NetdataApi):
    """The real client, plus a switch that makes the agent 'go away' or lose a chart."""
    down = False
    hidden = set()
    extra = {}   # chart -> dimension names listed beside its own, with a value now (none stored)
    ghosts = {}  # chart -> dimension names listed beside its own, never collected

    def charts(self):
        if self.down:
            raise NetdataError('cannot reach http://{}: ConnectionRefusedError'.format(self.host))
        return {c: d + self.extra.get(c, []) + self.ghosts.get(c, [])
                for c, d in super().charts().items() if c not in self.hidden}

    def allmetrics(self, timeout=None, charts=None):
        if self.down:
            raise NetdataError('cannot reach http://{}: ConnectionRefusedError'.format(self.host))
        SwitchableApi.asked_for = charts
        self.shown = {c: v for c, v in super().allmetrics(timeout, charts).items() if c not in self.hidden}
        for c, names in self.extra.items():
            if c in self.shown:
                dims = dict(self.shown[c]['dimensions'])
                dims.update({n: {'name': n, 'value': 1.0} for n in names})
                self.shown[c] = dict(self.shown[c], dimensions=dims)
        return self.shown

    def allmetrics_raw(self):
        return json.dumps(self.shown).encode()


def make_detector(replay, logger, api=None, **conf):
    """A job on ``replay`` trained in a thread, its agent read through ``api`` (a client class,
    SwitchableApi by default)."""
    raw = {'host': replay.host, 'train_n_secs': 600, 'train_every_n': 1000, 'update_every': 1}
    raw.update(conf)
    cfg = parse_job_config(raw)
    api = api or SwitchableApi
    det = AnomalyDetector(cfg, logger, trainer=ThreadTrainer(), api_factory=lambda c, h: api.from_config(c, h))
    det.list_wait = None   # each chart list is taken up by the step that asked for it, as in evaluate
    return det


def run_until_trained(det, replay, limit=200):
    det.start()
    for _ in range(limit):
        step = det.step()
        replay.clock.advance(1)
        if det.models:
            return step
        time.sleep(0.05)
    raise AssertionError('no model trained')


def test_trains_scores_every_chart_in_scope_and_flags_the_spike(replay, logger):
    det = make_detector(replay, logger)
    step = run_until_trained(det, replay)
    # system.uptime is excluded by default; apps.cpu is not in charts_regex
    assert sorted(step.added) == ['system.cpu', 'system.forks', 'system.load', 'system.ram']
    # seeded from the training window's tail: scores come on the very next step
    step = det.step()
    assert set(step.scores) == {'system.cpu', 'system.forks', 'system.load', 'system.ram'}
    # each step asks the agent only for the charts it models
    assert SwitchableApi.asked_for == {'system.cpu', 'system.forks', 'system.load', 'system.ram'}
    for p, flag in step.scores.values():
        assert 0.0 <= p <= 1.0 and flag in (0, 1)
    replay.clock.set(START + SPIKE[0] - 60)
    for _ in range(40):  # let the rows before the jump of the clock leave the features, and the
        det.step()       # charts it flagged settle (flag_rearm_n)
        replay.clock.advance(1)
    flags, probs = [], []
    for _ in range(30):
        s = det.step()
        replay.clock.advance(1)
        p, f = s.scores['system.cpu']
        probs.append(p), flags.append(f)
        if f and 'system.cpu' in s.drivers:
            drivers = s.drivers['system.cpu']
    assert max(flags[:19]) == 0
    # the spike is in the 'user' dimension: attribution says so
    # (idle moves with it, by construction of the synthetic chart: idle = 100 - user - system)
    top = {column.split('|')[1]: share for column, share in drivers[:2]}
    assert set(top) == {'user', 'idle'} and sum(top.values()) > 0.9
    assert max(flags[20:25]) == 1 and max(probs[20:25]) >= 0.99
    # the flagged steps go to the next training as times to leave out
    # (the last span; earlier ones come from the test's jump of the clock)
    first, last = det._exclusions()['system.cpu'][-1]
    assert START + SPIKE[0] <= first <= START + SPIKE[0] + 4 and last >= START + SPIKE[0] + 8
    assert logger.errors() == []
    det.close()


def test_flagged_steps_that_cannot_be_saved_are_said_once_and_tried_again_spaced_out(replay, logger, tmp_path,
                                                                                      monkeypatch):
    """A read-only models folder: each write's error names a new temporary file. It is said
    once while it lasts, and written again at most every FLAGS_SAVE_SECONDS or for a new span,
    not at every step (it was an error line a second for as long as a flag stood)."""
    tries = []

    def read_only(folder, flagged, host, agent=None):
        tries.append(replay.clock.now())
        raise OSError(30, 'Read-only file system', '{}/.anomalies-{}.tmp'.format(folder, len(tries)))
    monkeypatch.setattr(engine.persist, 'save_flagged', read_only)
    det = make_detector(replay, logger, models_dir=str(tmp_path))
    run_until_trained(det, replay)
    replay.clock.set(START + SPIKE[0] - 60)
    for _ in range(130):   # the clock's jump, the spike and after: flags stand for tens of steps
        det.step()
        replay.clock.advance(1)
    det.close()
    said = [m for _, m in logger.lines if 'cannot save the flagged steps' in m]
    assert len(said) == 1 and 'Read-only file system' in said[0] and '.tmp' not in said[0], said
    assert 2 <= len(tries) <= 130 // FLAGS_SAVE_SECONDS + 6, tries


class SlowTrainer(ThreadTrainer):
    """A training that is still running for ``steps`` more steps after it is done, as one that
    takes that many seconds on a real agent."""
    steps = 0

    def poll(self):
        if self._thread is not None and not self._thread.is_alive() and self.steps > 0:
            self.steps -= 1
            return None
        return super().poll()


def test_the_jobs_own_training_raises_no_flag_and_is_not_left_out_of_the_next(replay, logger):
    """The training process's CPU, forks and memory show in the rows read while it runs: an
    incident-sized excess there raises no flag and stays in the next training window, but one
    that outlasts the training and its features' reach is flagged then."""
    det, trainer, times, flags, probs = _spike_during_a_training(replay, logger, 12)
    assert det.trainings == 2 and not trainer.busy
    quiet_until = START + SPIKE[0] + 12 + det.need   # the rows read while it ran, and the features' reach
    first = times[flags.index(1)]
    assert quiet_until - 2 <= first <= quiet_until + 3, (first - START - SPIKE[0], det.need)
    # what the next training leaves out starts with the flag, not with the spike
    assert det._exclusions()['system.cpu'][-1][0] == first
    det.close()


@pytest.mark.parametrize('lead, latest', [(-2, 5), (-1, 12 + 11 + 5)])
def test_an_excess_that_began_before_a_training_is_flagged_through_it(replay, logger, lead, latest):
    """An incident that starts a process group retrains the charts it is new on (apps.*) within
    the minute: a chart that already read above the threshold before that training began is
    not the training's doing, and its flag rises through it, not after it and its features'
    reach (on a real agent a CPU pressure at 100 % was flagged 25 s late). Here the flag needs
    5 steps of 5 above the threshold, so that it has not risen yet when the training starts.
    Above the threshold at one step only, it is held as before: a blip that the training's own
    work would then carry on."""
    det, trainer, times, flags, probs = _spike_during_a_training(replay, logger, 12, lead=lead, flag_min_n=5,
                                                                 flag_window_n=5)
    assert det.trainings == 2 and ('system.cpu' in det.rising_before_training) == (lead == -2)
    first = times[flags.index(1)] - START - SPIKE[0]
    # (26 s, when it waited for the training and the features' reach)
    assert first <= latest and (lead == -2 or first > 12), (lead, first, det.need)
    det.close()


def test_a_long_training_hides_flags_for_a_bounded_time(replay, logger, monkeypatch):
    monkeypatch.setattr(timings, 'OWN_TRAINING_MAX_STEPS', 5)
    det, trainer, times, flags, probs = _spike_during_a_training(replay, logger, 30)
    first = times[flags.index(1)]
    assert first <= START + SPIKE[0] + 5 + 3, first - START - SPIKE[0]   # while the training still ran
    assert det.trainings == 2
    det.close()


def test_a_training_shorter_than_a_step_still_shows_in_the_rows_after_it(replay, logger):
    """A first training of a few charts ends within a second on an agent, but its CPU is in the
    next row all the same: no flag rises on it. A replay harness, which waits for each training
    on a stopped clock, says so, and a spike right after is flagged at once."""
    for on_agent in (True, False):
        det, trainer, times, flags, probs = _spike_during_a_training(replay, logger, 0, on_agent)
        first = times[flags.index(1)] - START - SPIKE[0]
        if on_agent:
            assert first >= det.need - 2, first
        else:
            assert first <= 3, first
        det.close()


def test_trainings_back_to_back_hold_every_step_between_them(replay, logger):
    """No flag rises while a training runs nor in the rows after it (its own work shows in
    them): a training that starts while the last one's rows are held holds on from them, where
    it left the two steps before its own start open (train_every_n 2: flags rose between)."""
    det = make_detector(replay, logger, train_every_n=2)
    run_until_trained(det, replay)
    open_steps = []
    for _ in range(40):
        det.step()
        det.trainer.wait()
        if det.steps not in det.own_rows:
            open_steps.append(det.steps)
        replay.clock.advance(1)
    assert det.trainings > 10 and open_steps == [], open_steps
    det.close()


class _OtherJobsTrainer:
    """Another job's trainer, in the process's registry, whose training has run for ``ran``
    seconds (None: none runs)."""
    ran = None
    _waiting = None   # (none of its own waits)

    @property
    def running(self):
        return self.ran is not None

    def running_for(self):
        return self.ran


@contextlib.contextmanager
def _beside_another_job(replay, logger):
    """A job trained and past its own training's rows, and another job's trainer: ``(det, other)``."""
    import collector.trainers as trainers
    det = make_detector(replay, logger)
    run_until_trained(det, replay)
    for _ in range(det.need + 2):
        det.step()
        replay.clock.advance(1)
    other = _OtherJobsTrainer()
    trainers._TRAINERS.add(other)
    try:
        yield det, other
    finally:
        trainers._TRAINERS.discard(other)
        det.close()


def test_a_training_held_up_by_another_jobs_says_whose_once(replay, logger):
    """Jobs in one process train one at a time: one whose agent sent its window slowly held
    every other job's training for minutes (146 s, up to its 900 s limit), and the others said
    nothing until their models came."""
    with _beside_another_job(replay, logger) as (det, other):
        other.ran, other.job = 40.0, 'slow'
        det.next_training = det.steps   # a full training due
        for _ in range(3):
            det.step()
            replay.clock.advance(1)
        assert det.trainer.waiting and not [m for _, m in logger.lines if 'waits for' in m]   # (asked just now)
        det.trainer._asked -= timings.TRAINING_WAIT_TOLD_SECONDS
        for _ in range(5):
            det.step()
            replay.clock.advance(1)
        told = [m for _, m in logger.lines if 'waits for' in m]
        assert len(told) == 1 and told[0].startswith("this job's training, asked for 30 s ago, waits for the training "
                                                     "of job 'slow', running for 40 s: the jobs of one process"), told
        other.ran = None   # it ended: this one starts
        det.step()
        det.trainer.wait(60)
        assert not det.trainer.waiting and det.trainer.poll() is not None
    from collector.trainers import make_trainer   # (each job's trainer has its name)
    trainer = make_trainer(parse_job_config({}, job_name='slow'))
    assert trainer.job == 'slow'
    trainer.close()


def test_another_jobs_training_holds_the_steps_it_shows_in_as_the_jobs_own_does(replay, logger):
    """Jobs in one process train one at a time: another job's training on the same node shows in
    the charts as the job's own does (trained together, before, each one's own hid the others').
    No flag rises in the rows it runs through and the job's need after, and not after
    OWN_TRAINING_MAX_STEPS, as for the job's own."""
    with _beside_another_job(replay, logger) as (det, other):
        assert det.steps + 1 not in det.own_rows
        other.ran = 1.0
        held = []
        for _ in range(5):
            det.step()
            replay.clock.advance(1)
            held.append(det.steps in det.own_rows)
        other.ran = None   # it ended
        after = []
        for _ in range(det.need + 3):
            det.step()
            replay.clock.advance(1)
            after.append(det.steps in det.own_rows)
        assert all(held) and after[:det.need] == [True] * det.need and not any(after[det.need + 1:]), (held, after)
        other.ran = float(timings.OWN_TRAINING_MAX_STEPS)   # one that has run that long hides no more
        det.step()
        replay.clock.advance(1)
        assert det.steps not in det.own_rows
        other.ran = 1.0   # nor one beside a job reading another machine's charts (a child, a remote agent)
        det.reads_this_machine = False
        det.step()
        replay.clock.advance(1)
        assert det.steps not in det.own_rows


def test_a_training_that_waited_for_another_jobs_is_held_from_its_own_start(replay, logger, monkeypatch):
    """A training asked for while another job's runs starts when that one ends: its own work
    shows in the rows from then on, and no flag rises on them, as when it starts at once (held
    from when it was asked for, it ran open once the wait had taken its OWN_TRAINING_MAX_STEPS)."""
    monkeypatch.setattr(timings, 'OWN_TRAINING_MAX_STEPS', 10)
    with _beside_another_job(replay, logger) as (det, other):
        other.ran = 0.0
        det.next_training = det.steps + 1   # a training asked for while the other job's runs
        for _ in range(timings.OWN_TRAINING_MAX_STEPS + det.need + 5):
            det.step()
            replay.clock.advance(1)
            other.ran += 1.0
        assert det.trainer.busy and not det.trainer.running
        time.sleep(1.5)   # (the wait is told once it takes a second or more)
        other.ran = None   # it ended: this job's training starts at its next step
        replay.data_delay = 0.3   # each window read takes that long: the training runs some steps
        open_steps, ran, started = [], 0, None
        try:
            while ran < 100 and (ran < 2 or det.trainer.busy):
                det.step()
                replay.clock.advance(1)
                ran += 1
                if det.trainer.running and started is None:
                    started = det.steps   # (its row was read before the training started)
                elif (det.trainer.running and det.steps not in det.own_rows
                      and det.steps < started + timings.OWN_TRAINING_MAX_STEPS):   # (held that long at most)
                    open_steps.append(det.steps)
                time.sleep(0.05)
        finally:
            replay.data_delay = 0
        assert det.trainings == 2 and started is not None and open_steps == [], open_steps
    # its time is told from its own start, and the wait beside it
    trained = [m for _, m in logger.lines if m.startswith('trained ')]
    took = re.search(r' in ([0-9.]+)s \(.*, after ([0-9]+)s waiting for another job\'s training$', trained[-1])
    assert took and float(took.group(1)) < 1.5 <= float(took.group(2)) + 0.5, trained


@pytest.mark.parametrize('conf, said', [
    ({'offset_n_secs': 100000}, 'in the window ending offset_n_secs (100000 s) back'),
    ({'initial_train_data_after': START - 9000, 'initial_train_data_before': START - 8000},
     'in the window initial_train_data_after/before ({} to {}; the rolling window of train_n_secs is tried '
     'next)'.format(START - 9000, START - 8000)),
])
def test_a_window_the_agent_does_not_hold_is_named_as_the_reason(replay, logger, conf, said):
    """A window the job's keys put before the agent's history read as charts the agent had
    no data for, with no word of the key that put it there."""
    det = make_detector(replay, logger, **conf)
    det.start()
    for _ in range(3):
        det.step()
        det.trainer.wait()
        replay.clock.advance(1)
    told = [m for m in logger.errors() if 'not trained' in m]
    assert told and said in told[0], logger.lines
    det.close()


def _first_models(det, replay, limit):
    """Start ``det`` and step it, each training waited for, until it has models or for ``limit``
    steps: how many it took."""
    det.start()
    steps = 0
    while not det.models and steps < limit:
        det.step()
        det.trainer.wait()
        replay.clock.advance(1)
        steps += 1
    return steps


def test_a_first_window_the_agent_does_not_hold_gives_way_to_the_rolling_window_at_once(replay, logger):
    """The error line says the rolling window of train_n_secs is tried next: it is, at the next
    step, not at the charts' retry a minute on (an incident begun meanwhile then trained as normal)."""
    det = make_detector(replay, logger, initial_train_data_after=START - 9000, initial_train_data_before=START - 8000)
    _first_models(det, replay, 10)
    assert det.models and any('tried next' in m for m in logger.errors()), logger.lines
    assert all(fm.info['window'][0] > START for fm in det.models.values())
    det.close()


def test_a_first_window_after_the_agents_now_is_said_not_to_be_read(logger, tmp_path):
    """The agent answers a window ahead of its clock with the rows it holds up to now: the
    models were trained, on another window than the one asked, without a word."""
    from collector.replay import Recording, ReplayClock, ReplayServer
    path = write_recording(str(tmp_path / 'rec'))
    with open(os.path.join(path, 'charts.json')) as f:
        body = json.load(f)
    for c in body['charts'].values():   # as an agent lists them: the seconds each holds
        c.update(first_entry=START, last_entry=START + SECONDS)
    with open(os.path.join(path, 'charts.json'), 'w') as f:
        json.dump(body, f)
    with ReplayServer(Recording(path), ReplayClock(START + 600, stepped=True)) as server:
        det = make_detector(server, logger, initial_train_data_after=START + 3600,
                            initial_train_data_before=START + 4200)
        det.start()
        for _ in range(3):
            det.step()
            det.trainer.wait()
            server.clock.advance(1)
        det.close()
    said = [m for level, m in logger.lines if level == 'WARNING' and 'initial_train_data_before' in m]
    assert said == ["initial_train_data_before ({}) is 3600 s after the agent's now ({}): the first training "
                    "reads what the agent holds up to now instead of that window".format(START + 4200, START + 600)], \
        logger.lines


def test_a_short_fixed_first_window_does_not_bring_the_next_full_training_forward(replay, logger):
    """A first window of 200 s chosen clean (initial_train_data_after/before) on an agent that
    holds 600: its length was read as a young agent's history, and the next full training came
    200 steps on (taking in whatever happened meanwhile), not at train_every_n."""
    det = make_detector(replay, logger, initial_train_data_after=START + 100, initial_train_data_before=START + 300)
    _first_models(det, replay, 50)
    assert det.models and all(fm.info['window'][1] <= START + 300 for fm in det.models.values())
    assert det.next_training - det.steps > 900, (det.next_training, det.steps)
    det.close()


@pytest.mark.parametrize('least', [300, 0])
def test_a_first_window_the_agent_holds_too_little_of_gives_way_to_the_rolling_window_at_once(replay, logger, least):
    """A first window the agent holds only its last seconds of: the charts do not wait there
    for train_min_n_secs (or what one fit needs) of history, a window fixed in the past never
    grows; they train on the rolling window at the next step, as the waiting line says."""
    det = make_detector(replay, logger, initial_train_data_after=START - 1000, initial_train_data_before=START + 20,
                        train_min_n_secs=least)
    steps = _first_models(det, replay, 400)
    assert any('waiting for' in m and 'the rolling window of train_n_secs is tried next' in m
               for _, m in logger.lines), logger.lines
    assert det.models and steps <= 3, (steps, logger.lines)
    assert all(fm.info['window'][1] > START + 600 for fm in det.models.values()), \
        [fm.info['window'] for fm in det.models.values()]
    det.close()


def _spike_during_a_training(replay, logger, seconds, on_agent=True, steps=40, lead=2, **conf):
    """A full training ``seconds`` long that starts ``lead`` s before the spike (after it, when
    negative); per step: time and flag."""
    cfg = parse_job_config(dict({'host': replay.host, 'train_n_secs': 600, 'train_every_n': 1000, 'update_every': 1},
                                **conf))
    trainer = SlowTrainer()
    det = AnomalyDetector(cfg, logger, trainer=trainer, api_factory=lambda c, h: SwitchableApi.from_config(c, h))
    det.trainings_take_agent_time = on_agent
    det.list_wait = None
    run_until_trained(det, replay)
    replay.clock.set(START + SPIKE[0] - 40 - lead)
    for _ in range(40):
        det.step()
        replay.clock.advance(1)
    det.next_training, trainer.steps = det.steps, seconds
    flags, times, probs = [], [], []
    for _ in range(steps):
        trainer.wait()
        s = det.step()
        times.append(replay.clock.now())
        replay.clock.advance(1)
        probs.append(s.scores['system.cpu'][0])
        flags.append(s.scores['system.cpu'][1])
    return det, trainer, times, flags, probs


def test_a_model_trained_on_its_flags_says_so_once_not_at_every_training(replay, logger):
    det = make_detector(replay, logger)
    run_until_trained(det, replay)
    now = replay.clock.now()
    for _ in range(3):
        det.flagged = {'system.cpu': [[now - 300 + 50 * k, now - 297 + 50 * k] for k in range(RECURRING_EVENTS)]}
        det.next_training = det.steps
        det.step()
        det.trainer.wait()
        det.step()
    said = [m for _, m in logger.lines if 'trained on all of it' in m]
    assert det.trainings == 4 and len(said) == 1, said
    assert said[0].startswith("model 'system.cpu': flagged 5 separate times in its training window")
    det.close()


def test_the_models_of_one_training_that_train_on_their_flags_are_told_in_one_line(replay, logger):
    """A retraining after a busy spell kept the flags of ten models: ten lines in the agent's
    log, one per model, said the same thing."""
    det = make_detector(replay, logger)
    run_until_trained(det, replay)
    now = replay.clock.now()
    spans = [[now - 300 + 50 * k, now - 297 + 50 * k] for k in range(RECURRING_EVENTS)]
    det.flagged = {'system.cpu': [list(sp) for sp in spans], 'system.load': [list(sp) for sp in spans]}
    det.next_training = det.steps
    det.step()
    det.trainer.wait()
    det.step()
    said = [m for _, m in logger.lines if 'trained on all of it' in m]
    assert said == ['2 models flagged again and again in their training window, trained on all of it (something '
                    'the node does again and again becomes ordinary): system.cpu (5 times), system.load (5 times)'], said
    logger.lines.clear()
    now = replay.clock.now()
    det.flagged = {'system.forks': [[now - 400, now - 100]], 'system.ram': [[now - 400, now - 100]]}
    det.next_training = det.steps
    det.step()
    det.trainer.wait()
    det.step()
    said = [m for _, m in logger.lines if 'trained on all of it' in m]
    assert len(said) == 1 and said[0].startswith('2 models flagged for over a quarter of their training window, '
                                                 'trained on all of it (a lasting change becomes the new normal): '
                                                 'system.forks ('), said
    det.close()


def test_a_flag_dated_hours_ahead_does_not_push_the_real_ones_out_of_the_next_training(replay, logger):
    """A flag raised while the agent's clock ran hours fast (a clock read as local time at
    boot, a VM restored), then set right: the spans kept for the next training are those of
    the training window by the clock now, not by the newest span, which dropped every real
    incident's span and let the next model learn it as normal."""
    det = make_detector(replay, logger)
    run_until_trained(det, replay)
    _steps(det, replay, 3)
    now = replay.clock.now()
    for t in range(int(now) + 5 * 3600, int(now) + 5 * 3600 + 10):
        det._remember_flag('system.ram', t)
    for t in range(int(now) - 120, int(now) - 100):
        det._remember_flag('system.cpu', t)
    spans = det._exclusions()
    assert spans['system.cpu'] == [(int(now) - 120, int(now) - 101)], spans
    det.close()


def test_flags_after_the_agents_clock_was_set_back_are_still_left_out_of_training(replay, logger):
    """Flagged steps are kept as spans of time; a flag after the agent's clock went back (an
    NTP step, a VM restored) starts a span of its own, where it used to stretch the last one
    backwards into a span that left nothing out, so both incidents trained the next model."""
    from collector.training import excluded_rows
    det = make_detector(replay, logger)
    for t in (1000, 1001, 1002, 400, 401):
        det._remember_flag('system.cpu', t)
    spans = det._exclusions()['system.cpu']
    assert excluded_rows([400, 401, 1000, 1002], spans, 0).all() and not excluded_rows([700], spans, 0).any()
    det.close()


def test_flags_again_at_times_already_left_out_after_the_clock_was_set_back_add_no_span(replay, logger):
    """The agent's clock set back over times whose flags are kept (a VM restored again and
    again, a replay that loops) and flagged again there: the times are left out already, so
    the spans (and their file) do not gain a copy of them at every pass."""
    det = make_detector(replay, logger)
    for _ in range(3):
        for t in list(range(1000, 1011)) + [400, 401]:
            det._remember_flag('system.cpu', t)
    assert det._exclusions()['system.cpu'] == [(1000, 1010), (400, 401)]
    det.close()


def test_a_model_that_cannot_score_is_told_once_and_again_if_its_next_model_cannot(replay, logger):
    """A scorer that raises costs only its model (the others score), is logged once while it
    lasts, and told again when the model trained after it fails too."""
    det = make_detector(replay, logger, model='hbos')
    run_until_trained(det, replay)

    def broken(X):
        raise RuntimeError('broken scorer')
    for _ in range(2):
        det.models['system.load'].scorer.decision_function = broken
        det._rebuild({})
        for _ in range(3):
            s = det.step()
            replay.clock.advance(1)
            assert {'system.cpu', 'system.forks', 'system.ram'} <= set(s.scores)
        det.next_training = det.steps    # retrain now: a new system.load model
        for _ in range(100):
            det.step()
            replay.clock.advance(1)
            det.trainer.wait()
            if det.models['system.load'].scorer.decision_function is not broken:
                break
    det.close()
    told = [m for m in logger.errors() if "model 'system.load' cannot score" in m]
    assert len(told) == 2 and 'RuntimeError: broken scorer' in told[0], logger.lines


def test_the_steps_after_a_flag_while_its_chart_stays_unusual_are_left_out_of_training(replay, logger):
    """A CPU pinned for a minute is flagged as it starts, then reads 90-99 % while it lasts: those
    steps go with the flag's span to be left out of the next training (through a dip of up to
    two steps), until the chart reads ordinary; the job's own training rows never do."""
    import numpy as np
    from collector.training import excluded_rows
    det = make_detector(replay, logger)
    ids = ['system.cpu', 'system.load']
    ranks = {100: 0.999, 101: 0.999, 102: 0.95, 103: 0.93, 104: 0.5, 105: 0.97, 106: 0.6, 107: 0.4,
             108: 0.3, 109: 0.95, 110: 0.95}
    for t, r in sorted(ranks.items()):
        det._remember_episodes(ids, np.array([int(t <= 101), 0]), np.array([r, 0.999]), t, False)
    spans = det._exclusions()['system.cpu']
    assert excluded_rows(range(100, 106), spans, 0).all() and not excluded_rows(range(106, 111), spans, 0).any()
    assert 'system.load' not in det._exclusions()    # unusual, but never flagged
    for t in (200, 201, 202):
        det._remember_episodes(ids, np.array([int(t == 200), 0]), np.array([0.999, 0.5]), t, t > 200)
    assert excluded_rows([200], det._exclusions()['system.cpu'], 0).all()
    assert not excluded_rows([201, 202], det._exclusions()['system.cpu'], 0).any()
    det.close()


def test_flagged_steps_outlive_a_restart_and_stay_out_of_its_next_training(replay, logger):
    """python.d.plugin is stopped by a signal: the spans flagged before it are on disk, and the
    restarted job's first training (at once here: a setting changed) leaves them out too."""
    det = make_detector(replay, logger)
    run_until_trained(det, replay)
    replay.clock.set(START + SPIKE[0] - 60)
    for _ in range(120):
        det.step()
        replay.clock.advance(1)
    first, last = det._exclusions()['system.cpu'][-1]
    assert START + SPIKE[0] <= first <= START + SPIKE[0] + 4
    det.trainer.close()   # killed, not closed

    again = make_detector(replay, logger, lags_n=3)
    run_until_trained(again, replay)
    saved = again._exclusions()['system.cpu'][-1]
    assert saved[0] == first and last - 15 <= saved[1] <= last
    assert again.models['system.cpu'].info['excluded_rows'] >= saved[1] - saved[0]
    assert ('INFO', 'loaded the flagged steps of 1 model (left out of their next training): system.cpu') in logger.lines
    assert [m for level, m in logger.lines if level != 'INFO'] == []
    again.close()


def test_flags_are_not_kept_when_training_does_not_leave_them_out(replay, logger):
    det = make_detector(replay, logger, train_exclude_flagged=False)
    run_until_trained(det, replay)
    replay.clock.set(START + SPIKE[0] - 5)
    flagged = 0
    for _ in range(25):
        flagged += det.step().scores.get('system.cpu', (0, 0))[1]
        replay.clock.advance(1)
    assert flagged > 0 and det.flagged == {} and det._exclusions() == {}
    det.close()


def test_agent_going_away_is_logged_once_and_recovers(replay, logger):
    det = make_detector(replay, logger)
    run_until_trained(det, replay)
    SwitchableApi.down = True
    try:
        steps = [det.step() for _ in range(5)]
    finally:
        SwitchableApi.down = False
    assert not any(s.fresh for s in steps)
    said = [e for e in logger.errors() if 'cannot reach' in e]
    assert len(said) == 1 and said[0].endswith('(keeping the last values for a minute)'), said
    s = det.step()
    assert s.fresh and s.scores
    assert any('answers again' in m for _, m in logger.lines)
    det.close()


def test_an_outage_told_after_the_charts_emptied_does_not_say_they_keep_their_values(replay, logger):
    """The charts keep their last values for a minute, then stay empty: a line of an outage
    that began (or changed) after that no longer says they are kept."""
    det = make_detector(replay, logger)
    run_until_trained(det, replay)
    det.step()
    det.fresh_at -= timings.STALE_SECONDS   # the agent last answered a minute ago
    SwitchableApi.down = True
    try:
        det.step()
    finally:
        SwitchableApi.down = False
    said = [e for e in logger.errors() if 'cannot reach' in e]
    assert len(said) == 1 and 'keeping the last values' not in said[0], said
    det.close()


def test_an_agent_too_slow_for_the_step_or_the_timeout_is_told_which_key_to_change(replay, logger):
    """An agent that answers after the time allowed read as one that cannot be reached, with
    no word of the key that allows it: raising api_timeout did nothing for the step's read
    (a step waits at most 0.9 x update_every), and the chart list's timeout was never named."""
    det = make_detector(replay, logger, api_timeout=1)
    run_until_trained(det, replay)
    replay.allmetrics_delay = 1.2   # a step's read waits 0.9 s at update_every 1
    try:
        assert not any(det.step().fresh for _ in range(2))
    finally:
        replay.allmetrics_delay = 0
    said = [e for e in logger.errors() if 'allmetrics' in e]
    assert len(said) == 1 and '(no answer in 0.9 s): a step waits for the latest values 0.9 x update_every at ' \
        'most, so an agent slower to answer them needs a larger update_every' in said[0], said
    replay.charts_delay = 1.5   # over api_timeout
    try:
        det.next_discovery = Due(0, det.steps)
        det.step()
    finally:
        replay.charts_delay = 0
    said = [e for e in logger.errors() if 'cannot list charts' in e]
    assert len(said) == 1 and said[0].endswith('(no answer in 1 s): api_timeout, raise it for an agent this '
                                               'slow to list its charts'), said
    det.close()


class ListFailsApi(SwitchableApi):
    """An agent whose chart list fails (HTTP 500, as one still starting or restarting may
    answer) while ``failing`` is set; its values and data read as usual."""
    failing = False
    lists = 0

    def charts(self):
        ListFailsApi.lists += 1
        if self.failing:
            raise NetdataError('cannot list charts: http://{}/api/v1/charts answered HTTP 500'.format(self.host))
        return super().charts()


def test_a_chart_list_that_failed_at_start_is_asked_for_again_within_seconds(replay, logger, monkeypatch):
    """An agent that answered its chart list with an error for the job's first seconds: the
    job looked again only 30 steps on, charting nothing for half a minute after the agent was
    fine. It looks again 5 s after the first failure, backing off to 30 s while it goes on."""
    monkeypatch.setattr(ListFailsApi, 'failing', True)
    monkeypatch.setattr(ListFailsApi, 'lists', 0)
    det = make_detector(replay, logger, api=ListFailsApi)
    det.start()
    looks = []
    for i in range(80):
        before = ListFailsApi.lists
        det.step()
        replay.clock.advance(1)
        if ListFailsApi.lists > before:
            looks.append(i)
    # while it fails: 5, 10, 20, then 30 steps after the look before (the first, at the start)
    assert looks == [5, 15, 35, 65], looks
    assert not det.models
    said = [e for e in logger.errors() if 'cannot list charts' in e]
    assert len(said) == 1, said   # one line while it goes on
    det.close()
    # back after 8 s: trained by the second look, 5 + 10 steps in
    monkeypatch.setattr(ListFailsApi, 'failing', True)
    logger.lines.clear()
    det = make_detector(replay, logger, api=ListFailsApi)
    det.start()
    started = None
    for i in range(60):
        if i == 8:
            ListFailsApi.failing = False
        det.step()
        replay.clock.advance(1)
        if started is None and any(m.startswith('training ') for _, m in logger.lines):
            started = i
        if det.models:
            break
        time.sleep(0.05)
    assert det.models and started == 15, (started, logger.lines)
    det.close()


class TextClockApi(SwitchableApi):
    """An agent (or a proxy before it) whose answers give ``last_updated`` as text while ``text`` is set."""
    text = False

    def allmetrics(self, timeout=None, charts=None):
        body = super().allmetrics(timeout, charts)
        if self.text:
            body = {c: dict(v, last_updated='yesterday') for c, v in body.items()}
        return body


def test_answers_whose_times_are_text_are_scored_on_and_said_once(replay, logger, monkeypatch):
    """Every chart's last_updated as text: each step failed with "unsupported operand type(s)
    for -: 'int' and 'str'", a line a step naming nothing. The steps go on, timed one
    update_every after the last, with one line saying why, and one when the times are back."""
    monkeypatch.setattr(TextClockApi, 'text', False)
    det = make_detector(replay, logger, api=TextClockApi)
    run_until_trained(det, replay)
    for _ in range(3):
        det.step()
        replay.clock.advance(1)
    TextClockApi.text = True
    steps = []
    for _ in range(5):
        steps.append(det.step())
        replay.clock.advance(1)
    TextClockApi.text = False
    after = [det.step() for _ in range(2)]
    assert all(s.fresh and s.scores for s in steps + after)
    assert [s.at - steps[0].at for s in steps] == [0, 1, 2, 3, 4]
    assert not [e for e in logger.errors() if 'failed' in e], logger.errors()
    said = [e for e in logger.errors() if 'no time' in e]
    assert len(said) == 1 and "no chart's last_updated is a number" in said[0], said
    assert any("hold their time again" in m for _, m in logger.lines)
    det.close()


class LateApi(SwitchableApi):
    """An agent over a link that loses an answer now and then: a step's read that times out."""
    late = False

    def allmetrics(self, timeout=None, charts=None):
        if self.late:
            raise NetdataError('cannot reach http://{}/api/v1/allmetrics?format=json&filter=...: TimeoutError: timed '
                               'out (no answer in {:g} s)'.format(self.host, timeout), timed_out=timeout)
        return super().allmetrics(timeout, charts)


def test_an_agent_that_now_and_then_answers_too_late_is_told_once_not_at_every_answer_lost(replay, logger):
    """A remote agent over Wi-Fi loses an answer every few seconds: each one was an error line
    and an 'answers again' line, a thousand lines an hour into the agent's log on a small box's
    SD card, with the advice of the first lost among them. One line while it goes on, and one
    once it has answered for SLOW_CLEAR_SECONDS in a row, saying how many answers were lost."""
    det = AnomalyDetector(parse_job_config({'host': replay.host, 'train_n_secs': 600, 'train_every_n': 1000}),
                          logger, trainer=ThreadTrainer(), api_factory=lambda c, h: LateApi.from_config(c, h))
    det.list_wait = None
    run_until_trained(det, replay)
    start = len(logger.lines)
    try:
        for _ in range(6):
            LateApi.late = True
            assert not det.step().fresh
            replay.clock.advance(1)
            LateApi.late = False
            assert all(s.fresh and s.scores for s in _steps(det, replay, 4))
    finally:
        LateApi.late = False
    said = [(level, m) for level, m in logger.lines[start:] if replay.host in m]
    assert len(said) == 1 and said[0][0] == 'ERROR' and '(no answer in 0.9 s): a step waits' in said[0][1], said
    _steps(det, replay, timings.SLOW_CLEAR_SECONDS - 5)   # 59 answers in a row
    assert [m for _, m in logger.lines[start:] if 'answers again' in m] == []
    _steps(det, replay, 1)
    assert [(level, m) for level, m in logger.lines[start:] if 'answers again' in m] == [
        ('INFO', 'agent {} answers again (6 of its 86 reads since had no answer in time)'.format(replay.host))]
    # an agent that times out once, after that, is told again
    LateApi.late = True
    try:
        det.step()
    finally:
        LateApi.late = False
    assert sum(1 for _, m in logger.lines[start:] if '(no answer in 0.9 s)' in m) == 2
    det.close()


def test_answers_lost_now_and_then_bring_no_chart_list_read_each(replay, logger, monkeypatch):
    """A link losing one answer in five: each answer after a lost one read the chart list again
    (megabytes on a large agent) and asked whether the agent restarted, a dozen times a minute
    over the slow link it hurts most. A refused read (an agent that restarted) still does."""
    from collector import startup
    listed, uptimes = [], []

    class Counting(LateApi):
        def charts(self):
            listed.append(1)
            return super().charts()
    real = startup.uptime_reading
    monkeypatch.setattr(startup, 'uptime_reading', lambda *a, **k: (uptimes.append(1), real(*a, **k))[1])
    det = make_detector(replay, logger, api=Counting)
    run_until_trained(det, replay)
    listed.clear(), uptimes.clear()
    try:
        for i in range(50):
            Counting.late = i % 5 == 0
            det.step()
            replay.clock.advance(1)
    finally:
        Counting.late = False
    assert len(listed) <= 1 and not uptimes, (len(listed), len(uptimes))
    Counting.down = True   # refused: back, it is listed at once
    try:
        det.step()
        replay.clock.advance(1)
    finally:
        Counting.down = False
    for _ in range(3):
        det.step()
        replay.clock.advance(1)
        time.sleep(0.05)
    assert len(listed) >= 1 and uptimes, (len(listed), len(uptimes))
    det.close()


def test_a_step_read_cut_by_api_timeout_says_to_raise_it(replay, logger):
    """Where api_timeout is shorter than 0.9 x update_every (update_every 6 and more with the
    default 5 s), it is what cuts a step's read: the line named the key without a word of what
    to do with it."""
    det = make_detector(replay, logger, api_timeout=0.5)
    run_until_trained(det, replay)
    replay.allmetrics_delay = 0.8   # over api_timeout, under the step's 0.9 s
    try:
        assert not any(det.step().fresh for _ in range(2))
    finally:
        replay.allmetrics_delay = 0
    said = [e for e in logger.errors() if 'allmetrics' in e]
    assert len(said) == 1 and said[0].endswith('(no answer in 0.5 s): api_timeout, raise it for an agent this slow '
                                               'to answer (keeping the last values for a minute)'), said
    det.close()


def test_a_chart_left_out_of_one_listing_is_still_read_and_scored(replay, logger):
    """An agent lists some charts late (after a restart, a collector slow to start): a model
    is kept through one listing without its chart, and its chart is still asked for and scored
    meanwhile, with no error, since the agent serves it all along."""
    class LateListing(SwitchableApi):
        unlisted = set()

        def charts(self):
            return {c: d for c, d in super().charts().items() if c not in LateListing.unlisted}
    det = make_detector(replay, logger)
    det.apis = {h: LateListing.from_config(det.config, h) for h in det.hosts}
    run_until_trained(det, replay)
    _steps(det, replay, 5)
    LateListing.unlisted = {'system.ram'}
    det.next_discovery = Due(0, det.steps)
    first = _steps(det, replay, 1)
    LateListing.unlisted = set()
    steps = first + _steps(det, replay, 70)   # up to the next listing, which has it again
    assert 'system.ram' in det.models and all('system.ram' in s.scores for s in steps)
    assert not logger.errors(), logger.errors()
    det.close()


def test_a_slow_chart_list_does_not_hold_the_steps(replay, logger):
    """An agent with thousands of charts, or a busy one, takes seconds to list them: the steps
    go on scoring (on their own connection) while the list is read, and the first step after
    it came takes it up."""
    release = threading.Event()

    class SlowListing(SwitchableApi):
        slow = False

        def charts(self):   # and then without system.ram
            if not SlowListing.slow:
                return super().charts()
            release.wait(30)
            return {c: d for c, d in super().charts().items() if c != 'system.ram'}
    det = make_detector(replay, logger)
    det.apis = {h: SlowListing.from_config(det.config, h) for h in det.hosts}
    run_until_trained(det, replay)
    det.list_wait = timings.LIST_WAIT_SECONDS   # as a job on an agent waits
    SlowListing.slow = True
    try:
        det.next_discovery = Due(0, det.steps)
        steps = _steps(det, replay, 3)
        assert det.listing is not None and not det.listing.done.is_set()   # the list is still coming
        assert all(set(s.scores) == set(det.models) and s.fresh for s in steps)
        assert 'system.ram' not in det.unlisted
        release.set()
        det.listing.done.wait(10)
        _steps(det, replay, 1)
    finally:
        SlowListing.slow = False
        release.set()
    assert det.listing is None and det.unlisted == {'system.ram'}   # taken up: missing from one list
    assert not logger.errors(), logger.errors()
    det.close()


def test_no_thread_for_the_chart_list_reads_it_in_the_step(replay, logger, monkeypatch):
    """A process that may start no more threads (a cgroup's pids.max, ulimit -u) reads the
    list in the step, as it waits for it; it used to fail every step once a training was due."""
    det = make_detector(replay, logger, train_every_n=5)
    run_until_trained(det, replay)
    det.list_wait = timings.LIST_WAIT_SECONDS
    refuse_threads(monkeypatch, 'anomalies-chart-list')
    trainings = det.trainings
    for _ in range(20):
        step = det.step()
        replay.clock.advance(1)
        assert set(step.scores) == set(det.models)
        det.trainer.wait()
    assert det.trainings > trainings and not logger.errors(), logger.errors()
    det.close()


def test_one_chart_list_without_any_chart_in_scope_does_not_bring_a_full_training(replay, logger):
    """An agent restarting lists its charts a few at a time: a discovery that finds none in
    scope is waited out like any chart missing from one list, not answered with a training
    of every model (with train_every_n 0, never trained again, it retrained them all)."""
    class EmptyOnce(SwitchableApi):
        empty = False

        def charts(self):
            return {} if EmptyOnce.empty else super().charts()
    det = make_detector(replay, logger, train_every_n=0)
    det.apis = {h: EmptyOnce.from_config(det.config, h) for h in det.hosts}
    run_until_trained(det, replay)
    det.trainer.wait()
    trainings = det.trainings
    EmptyOnce.empty = True
    det.next_discovery = Due(0, det.steps)
    _steps(det, replay, 1)
    EmptyOnce.empty = False
    for _ in range(100):
        _steps(det, replay, 1)
        det.trainer.wait()
    assert det.trainings == trainings and len(det.models) == 4
    det.close()


def test_charts_that_came_and_went_are_not_remembered_for_the_life_of_the_job(replay, logger):
    """A node that starts and stops containers lists charts for minutes at a time: what the
    job keeps about each chart it looked up must go with the chart, or it grows for as long
    as the job runs."""
    class Containers(SwitchableApi):
        running = []

        def charts(self):
            return dict(super().charts(), **{'system.c{}'.format(k): ['a'] for k in Containers.running})
    det = make_detector(replay, logger)
    det.apis = {h: Containers.from_config(det.config, h) for h in det.hosts}
    run_until_trained(det, replay)
    for k in range(6):
        Containers.running = [k]
        det.next_discovery = Due(0, det.steps)
        _steps(det, replay, 1)
        det.trainer.wait()
    Containers.running = []
    det.next_discovery = Due(0, det.steps)
    _steps(det, replay, 1)
    assert set(det.disk_checked) <= set(det.specs) and len(det.models) == 4, det.disk_checked
    det.close()


def test_a_vanishing_chart_is_skipped_then_removed(replay, logger):
    det = make_detector(replay, logger, train_every_n=3)
    run_until_trained(det, replay)
    SwitchableApi.hidden = {'system.ram'}
    try:
        removed, scored = [], []
        for i in range(400):   # gone after two listings: trainings every 3 steps, however long they take
            s = det.step()
            replay.clock.advance(1)
            removed += s.removed
            scored.append('system.ram' in s.scores)
            if removed and i >= 40:
                break
            time.sleep(0.02)
    finally:
        SwitchableApi.hidden = set()
    assert removed == ['system.ram']
    assert not any(scored)
    # logged once at most as missing (a retrain may notice it is gone first), and its removal
    assert len([e for e in logger.errors() if 'system.ram' in e]) <= 1
    assert any("model 'system.ram' removed" in m for _, m in logger.lines)
    det.close()


def _steps_until_removed(det, replay):
    """Step ``det`` until a step removes models (their charts left the agent's list), at most
    400 steps; the models it removed."""
    for _ in range(400):
        removed = det.step().removed
        replay.clock.advance(1)
        if removed:
            return removed
        time.sleep(0.02)
    return []


def test_charts_gone_together_are_told_in_one_line(replay, logger):
    """Containers that stop take their charts along, a hundred at a time on a busy node: their
    models' removal is one line naming a few of them, not a line per model."""
    det = make_detector(replay, logger, train_every_n=3)
    run_until_trained(det, replay)
    gone = sorted(det.models)[:3]
    SwitchableApi.hidden = set(gone)
    try:
        removed = _steps_until_removed(det, replay)
    finally:
        SwitchableApi.hidden = set()
    assert sorted(removed) == gone
    told = [m for _, m in logger.lines if 'removed: ' in m and 'chart' in m]
    assert told == ['3 models removed: their charts are gone: ' + ', '.join(gone)], told
    det.close()


def test_gone_line_names_a_few_of_many():
    assert scope.gone_line(['disk.sdb']) == "model 'disk.sdb' removed: its chart is gone"
    many = ['cgroup_ct{}.cpu'.format(i) for i in range(100)]
    assert scope.gone_line(many) == ('100 models removed: their charts are gone: cgroup_ct0.cpu, cgroup_ct1.cpu, '
                                      'cgroup_ct2.cpu, cgroup_ct3.cpu, cgroup_ct4.cpu (+95 more)')


def test_a_flagged_chart_gone_for_a_while_comes_back_with_its_incident_left_out_of_training(replay, logger):
    """An incident that restarts a chart's collector takes the chart out of the agent's list
    for a while; it comes back with the incident in its history. Its new model must leave the
    flagged steps out, as any retraining does, not learn them as normal."""
    det = make_detector(replay, logger)
    run_until_trained(det, replay)
    replay.clock.set(START + SPIKE[0] - 5)
    for _ in range(30):
        det.step()
        replay.clock.advance(1)
    flagged = det._exclusions()['system.cpu']
    SwitchableApi.hidden = {'system.cpu'}
    try:
        removed = _steps_until_removed(det, replay)
    finally:
        SwitchableApi.hidden = set()
    assert removed == ['system.cpu']
    for _ in range(400):   # listed again: trained as a new chart
        det.step()
        replay.clock.advance(1)
        if 'system.cpu' in det.models:
            break
        time.sleep(0.02)
    assert det._exclusions()['system.cpu'][:len(flagged)] == flagged
    assert det.models['system.cpu'].info['excluded_rows'] >= flagged[0][1] - flagged[0][0]
    det.close()


def test_saved_models_loaded_once_a_late_agent_answers_keep_their_training_schedule(replay, logger):
    """A job that starts before its agent answers loads its saved models when it does: the
    next full training comes when the log says, counted from then, not from the job's start
    (which, a few minutes on, made it retrain every model at once)."""
    det = make_detector(replay, logger, train_every_n=300)
    run_until_trained(det, replay)
    det.close()
    again = make_detector(replay, logger, train_every_n=300)
    SwitchableApi.down = True
    try:
        again.start()
        for _ in range(150):
            again.step()
            replay.clock.advance(1)
    finally:
        SwitchableApi.down = False
    for _ in range(70):   # the next discovery finds the agent and loads the saved models
        again.step()
        replay.clock.advance(1)
        if again.models:
            break
    said = [m for _, m in logger.lines if m.startswith('loaded 4 saved models')]
    told = int(re.search(r'next full training in (\d+) steps', said[0]).group(1))
    # (the step that loaded them has been counted since)
    assert 0 < told < 300 and again.next_training == again.steps - 1 + told, (said, again.steps, again.next_training)
    again.close()


@pytest.mark.parametrize('train_every_n', [0, 1000])
def test_a_model_trained_once_for_good_survives_a_restart_that_misses_its_chart(replay, logger, train_every_n):
    """With train_every_n 0 a model is trained once and never saved again: a restart days later
    whose first chart list lacks its chart (listed late, a disk unplugged for now) must not
    delete it as a gone chart's; nor, at start, a retrained model's file as old (only a list
    read two minutes in removes a gone chart's files: the test above)."""
    det = make_detector(replay, logger, train_every_n=train_every_n)
    run_until_trained(det, replay)
    det.close()
    ram = os.path.join(det.models_dir, 'system.ram.json')
    meta = json.loads(open(ram).read())
    meta['saved_at'] -= 3 * 86400
    with open(ram, 'w') as f:
        json.dump(meta, f)
    SwitchableApi.hidden = {'system.ram'}
    try:
        again = make_detector(replay, logger, train_every_n=train_every_n)
        again.start()
        again.close()
    finally:
        SwitchableApi.hidden = set()
    assert os.path.exists(ram)
    if train_every_n == 0:   # and never: it is not saved again
        again = make_detector(replay, logger, train_every_n=0)
        again.start()
        again.created -= timings.YOUNG_AGENT_SECONDS
        again._prune_saved(again.discover({c: d for c, d in NetdataApi(replay.host).charts().items()
                                           if c != 'system.ram'}))
        again.close()
        assert os.path.exists(ram)


def test_a_chart_missing_from_one_chart_listing_keeps_its_model_and_saved_file(replay, logger, monkeypatch):
    """An agent just restarted lists some charts seconds after the others: a chart missing from
    one listing is skipped meanwhile, not removed, and its saved model stays on disk."""
    monkeypatch.setattr(timings, 'DISCOVER_SECONDS', 0.2)
    det = make_detector(replay, logger)
    run_until_trained(det, replay)
    saved = os.path.join(det.models_dir, 'system.ram.pkl')
    assert os.path.exists(saved)
    removed = []
    SwitchableApi.hidden = {'system.ram'}
    try:
        _steps_until(det, replay, lambda: 'system.ram' in det.unlisted)
    finally:
        SwitchableApi.hidden = set()
    _steps_until(det, replay, lambda: 'system.ram' not in det.unlisted)
    for _ in range(5):
        s = det.step()
        replay.clock.advance(1)
        removed += s.removed
    assert 'system.ram' in det.models and os.path.exists(saved) and not removed
    assert 'system.ram' in s.scores
    assert not any("'system.ram' removed" in m for _, m in logger.lines)
    det.close()


def test_a_model_trained_as_its_chart_goes_is_neither_shown_nor_taken_down(replay, logger, monkeypatch):
    """A step whose training brought a model for a chart the listings no longer have lists it
    in neither ``added`` nor ``removed``, so the charts get no dimension left behind."""
    monkeypatch.setattr(timings, 'DISCOVER_SECONDS', 0.2)
    det = make_detector(replay, logger)
    run_until_trained(det, replay)
    SwitchableApi.hidden = {'system.ram'}
    try:
        _steps_until(det, replay, lambda: 'system.ram' in det.unlisted)
        step = det._pending
        step.added.append('system.ram')   # as if the training collected this step had brought it
        det.next_discovery = Due(0, 0)
        det._maybe_start_training(step, wait=None)
    finally:
        SwitchableApi.hidden = set()
    assert 'system.ram' not in det.models
    assert 'system.ram' not in step.added and 'system.ram' not in step.removed
    det.close()


def test_a_chart_listed_with_a_new_dimension_is_retrained_alone_and_once(replay, logger, monkeypatch):
    """A process group that starts, a new disk or interrupt: the agent lists a modelled chart
    with a dimension its model lacks. That chart is retrained alone at the next discovery,
    not left unseen until the next full training, and said once; a dimension listed but
    never collected does not bring a training at every discovery."""
    monkeypatch.setattr(timings, 'DISCOVER_SECONDS', 0.2)
    det = make_detector(replay, logger)
    run_until_trained(det, replay)
    before = det.trainings
    asked = []
    start = det.trainer.start
    monkeypatch.setattr(det.trainer, 'start', lambda request: (asked.append(request), start(request)))
    monkeypatch.setattr(SwitchableApi, 'extra', {'system.ram': ['shmem']})
    _steps_until(det, replay, lambda: det.trainings > before)
    # what it was retrained for goes with it: the rows since shmem first had a value are left out
    assert [r.new_dimensions for r in asked] == [{'system.ram': ('shmem',)}]
    assert [m for _, m in logger.lines if 'new dimension' in m] == ["model 'system.ram': new dimension shmem: "
                                                                    "retraining it"]
    assert any(m.startswith('training 1 model on') for _, m in logger.lines), logger.lines
    assert sorted(det.models) == ['system.cpu', 'system.forks', 'system.load', 'system.ram']
    trained = det.trainings
    for _ in range(20):   # several discoveries more
        det.step()
        replay.clock.advance(1)
        time.sleep(0.02)
    assert det.trainings == trained and sum('new dimension' in m for _, m in logger.lines) == 1
    det.close()


@pytest.mark.parametrize('failure', ['start', 'whole', 'its own'])
def test_a_retraining_for_a_new_dimension_that_failed_is_asked_for_again(replay, logger, monkeypatch, failure):
    """The retraining for a new dimension could not start (no memory for its process), failed
    whole (its process killed: the OOM killer takes the training first) or failed for that chart:
    it is asked for again, with the rows since the dimension came left out, where it was never
    asked for again (the dimension counted as seen) and a full training learnt those rows."""
    from collector import training
    from collector.training import TrainingResult
    monkeypatch.setattr(timings, 'DISCOVER_SECONDS', 0.2)
    monkeypatch.setattr(timings, 'RETRY_STEPS', 3)
    det = make_detector(replay, logger, train_every_n=0)
    run_until_trained(det, replay)
    asked = []
    start, real = det.trainer.start, training.run_training

    def failing_start(request):
        asked.append(dict(request.new_dimensions or {}))
        if len(asked) == 1 and failure == 'start':
            raise OSError(12, 'Cannot allocate memory')
        return start(request)

    def failing_run(request):
        if len(asked) == 1:
            if failure == 'whole':
                raise MemoryError('killed')
            result = TrainingResult()
            result.errors = {'system.ram': 'its training window could not be read (HTTP 500)'}
            return result
        return real(request)
    monkeypatch.setattr(det.trainer, 'start', failing_start)
    monkeypatch.setattr(training, 'run_training', failing_run)
    monkeypatch.setattr(SwitchableApi, 'extra', {'system.ram': ['shmem']})
    for _ in range(150):
        det.step()
        replay.clock.advance(1)
        time.sleep(0.01)
        if len(asked) >= 2 and not det.trainer.busy:
            break
    assert asked[:2] == [{'system.ram': ('shmem',)}] * 2, (asked, logger.lines)
    det.close()


class _ValuesMissedOnce(SwitchableApi):
    """An agent that misses the first answer of its values outside a step (a timeout)."""
    miss = [False]

    def allmetrics(self, timeout=None, charts=None):
        if self.miss[0] and timeout is None:   # (a step's read gives its own timeout)
            self.miss[0] = False
            raise NetdataError('timed out after 5 s reading http://{}/api/v1/allmetrics'.format(self.host))
        return super().allmetrics(timeout, charts)


def test_saved_models_load_where_the_agent_missed_one_answer_of_its_values_at_the_start(replay, logger,
                                                                                        monkeypatch, tmp_path):
    """The saved models are matched with the dimensions the agent collects (its values), as its
    chart list leaves hidden ones out (system.cpu's idle): one missed answer at the restart made
    the chart list stand in, and system.cpu's model was retrained as 'dimensions changed'."""
    monkeypatch.setattr(timings, 'DISCOVER_SECONDS', 0.2)
    models_dir = str(tmp_path / 'models')
    det = make_detector(replay, logger, api=_ValuesMissedOnce, models_dir=models_dir)
    run_until_trained(det, replay)
    det.close()
    logger.lines.clear()
    _ValuesMissedOnce.miss[0] = True
    det = make_detector(replay, logger, api=_ValuesMissedOnce, models_dir=models_dir)
    det.start()
    for _ in range(10):
        det.step()
        replay.clock.advance(1)
        time.sleep(0.02)
    assert not _ValuesMissedOnce.miss[0], 'the case needs an answer missed'
    assert not [m for _, m in logger.lines if 'not used' in m], logger.lines
    assert sorted(det.models) == ['system.cpu', 'system.forks', 'system.load', 'system.ram'] and det.trainings == 0
    det.close()


def test_a_dimension_listed_but_never_collected_brings_no_training_at_a_restart(replay, logger, monkeypatch,
                                                                                tmp_path):
    """A dimension the agent lists with no value (a process group that has not run since the
    agent started): the saved model, trained without it, loads at each restart of the job and
    is not retrained 'for a new dimension' within seconds, every time, for nothing."""
    monkeypatch.setattr(timings, 'DISCOVER_SECONDS', 0.2)
    monkeypatch.setattr(SwitchableApi, 'ghosts', {'system.ram': ['ghost']})
    models_dir = str(tmp_path / 'models')
    det = make_detector(replay, logger, models_dir=models_dir)
    run_until_trained(det, replay)
    det.close()
    for _ in range(2):
        logger.lines.clear()
        det = make_detector(replay, logger, models_dir=models_dir)
        det.start()
        for _ in range(20):   # several discoveries
            det.step()
            replay.clock.advance(1)
            time.sleep(0.02)
        assert 'system.ram' in det.models and det.trainings == 0, logger.lines
        assert not [m for _, m in logger.lines if 'new dimension' in m], logger.lines
        det.close()


def test_the_charts_a_new_dimension_appears_on_together_are_told_in_one_line(replay, logger, monkeypatch):
    """A process group that starts is a new dimension of every apps.* chart (17 of them on
    Debian's agent): one line for the models it retrains, and one for the seconds their
    training leaves out, not one line per model of each."""
    from collector import training
    monkeypatch.setattr(timings, 'DISCOVER_SECONDS', 0.2)
    det = make_detector(replay, logger)
    run_until_trained(det, replay)
    before = det.trainings
    appeared = replay.clock.now() - 40
    monkeypatch.setattr(training, 'since_new', lambda values, times, columns, new: float(appeared))
    monkeypatch.setattr(SwitchableApi, 'extra', {'system.ram': ['stress'], 'system.load': ['stress'],
                                                 'system.cpu': ['stress', 'httpd']})
    _steps_until(det, replay, lambda: det.trainings > before)
    told = [m for _, m in logger.lines if 'new dimension' in m and 'retraining' in m]
    assert told == ["model 'system.cpu': new dimensions httpd, stress: retraining it",
                    '2 models: new dimension stress: retraining them: system.load, system.ram'], told
    left = [m for _, m in logger.lines if 'since their new dimension' in m or 'since its new dimension' in m]
    seconds = det.models['system.ram'].info['window'][1] - appeared + 1
    assert left == ['3 models: their last {:.0f} s, since their new dimension first had a value, are left out of '
                    'their training: what they do now is news to them: system.cpu, system.load, system.ram'.format(
                        seconds)], left
    assert all(m in det._exclusions() for m in ('system.cpu', 'system.load', 'system.ram'))
    det.close()


def test_the_rows_a_new_dimension_brought_stay_out_of_the_next_full_training(replay, logger, monkeypatch):
    """The retrained model flags the new process group's incident only once it scores, often as
    the incident ends: the rows its training left out are kept with the flagged steps (and
    saved with them), so the next full training does not learn that incident either."""
    from collector import persist, training
    monkeypatch.setattr(timings, 'DISCOVER_SECONDS', 0.2)
    det = make_detector(replay, logger)
    run_until_trained(det, replay)
    before = det.trainings
    appeared = replay.clock.now() - 40
    monkeypatch.setattr(training, 'since_new', lambda values, times, columns, new: float(appeared))
    monkeypatch.setattr(SwitchableApi, 'extra', {'system.ram': ['shmem']})
    _steps_until(det, replay, lambda: det.trainings > before)
    info = det.models['system.ram'].info
    assert info['new_dimensions_since'] == appeared and info['excluded_rows'] == info['new_dimensions_rows'] > 30
    told = [m for _, m in logger.lines if m.startswith("model 'system.ram': its last")]
    assert told == ["model 'system.ram': its last {:.0f} s, since its new dimension first had a value, are left out "
                    "of its training: what it does now is news to the model".format(info['window'][1] - appeared + 1)]
    # through the rows read while it trained and the features' reach after: no flag rises there
    (first, last), = det._exclusions()['system.ram']
    assert first == appeared and last >= info['window'][1] + det.need
    det.step()
    assert persist.load_flagged(det.models_dir, det.config.host)[0]['system.ram'] == [[first, last]]
    det.close()


def test_a_chart_that_appears_gets_a_model_without_waiting_for_the_retrain(replay, logger, monkeypatch):
    monkeypatch.setattr(timings, 'DISCOVER_SECONDS', 0.5)
    SwitchableApi.hidden = {'system.ram'}
    try:
        det = make_detector(replay, logger)
        run_until_trained(det, replay)
        assert 'system.ram' not in det.models
    finally:
        SwitchableApi.hidden = set()
    added = []
    for _ in range(60):
        s = det.step()
        replay.clock.advance(1)
        added += s.added
        if 'system.ram' in s.scores:
            break
        time.sleep(0.05)
    assert added == ['system.ram']
    assert det.trainings == 2 and det.next_training > det.steps   # no full retrain was needed
    det.close()


def _steps_until(det, replay, done, limit=60):
    for _ in range(limit):
        det.step()
        replay.clock.advance(1)
        if done():
            return
        time.sleep(0.05)
    raise AssertionError('not reached in {} steps'.format(limit))


def test_saved_models_are_loaded_for_charts_listed_late_and_after_an_agent_down_at_start(replay, logger,
                                                                                         monkeypatch):
    """A restarted agent lists some charts only a while later, and a standalone job may start
    before its agent: their saved models are loaded then, not retrained from scratch."""
    monkeypatch.setattr(timings, 'DISCOVER_SECONDS', 0.5)
    first = make_detector(replay, logger)
    run_until_trained(first, replay)
    first.close()
    assert sorted(first.models) == ['system.cpu', 'system.forks', 'system.load', 'system.ram']

    SwitchableApi.hidden = {'system.ram'}
    try:
        late = make_detector(replay, logger)
        late.start()
        assert sorted(late.models) == ['system.cpu', 'system.forks', 'system.load']
        late.step()
    finally:
        SwitchableApi.hidden = set()
    _steps_until(late, replay, lambda: 'system.ram' in late.models)
    _steps_until(late, replay, lambda: 'system.ram' in late.step().scores)
    assert late.trainings == 0   # loaded, not trained
    assert any(re.match(r"loaded 1 saved model for charts that appeared \(oldest trained \d+ s ago\): system.ram$",
                        m) for _, m in logger.lines), logger.lines
    late.close()

    monkeypatch.setattr(timings, 'DISCOVER_SECONDS', 60)   # the minute's look, as on an agent
    SwitchableApi.down = True
    try:
        early = make_detector(replay, logger)
        early.start()
        early.step()
        assert not early.models
    finally:
        SwitchableApi.down = False
    # the step that finds it back asks for its chart list: loaded at the next, not at a minute's look
    _steps_until(early, replay, lambda: len(early.models) == 4, limit=3)
    assert early.trainings == 0 and not early.trainer.busy
    assert sum('loaded 4 saved models' in m for _, m in logger.lines) == 1
    early.close()


def test_one_charts_odd_recent_rows_do_not_hold_back_the_other_loaded_models(replay, logger, monkeypatch):
    """Loaded models are given their charts' last rows so they score at once; a chart whose
    rows come back ragged costs only its own model those rows, not every loaded model."""
    first = make_detector(replay, logger)
    run_until_trained(first, replay)
    first.close()
    original = SwitchableApi.data

    def ragged(self, chart, *args, **kwargs):
        labels, rows = original(self, chart, *args, **kwargs)
        return labels, ([r[:2] for r in rows] if chart == 'system.ram' else rows)
    monkeypatch.setattr(SwitchableApi, 'data', ragged)
    det = make_detector(replay, logger)
    det.start()
    assert len(det.models) == 4
    s = det.step()
    assert {'system.cpu', 'system.forks'} <= set(s.scores) and 'system.ram' not in s.scores
    det.close()


def test_custom_models_across_hosts_and_a_child_node_path(recording, replay, logger):
    from collector.replay import Recording, ReplayClock, ReplayServer
    rec = Recording(recording)
    with ReplayServer(rec, ReplayClock(rec.start + 600, stepped=True)) as other:
        child = '{}/host/child1'.format(replay.host)
        det = make_detector(replay, logger, host=child, charts_regex='system\\.load',
                            custom_models=[{'name': 'cpu_pair',
                                            'dimensions': 'system.cpu|user,{}::system.cpu|user'.format(other.host)}])
        step = run_until_trained(det, replay)
        assert sorted(step.added) == ['cpu_pair', 'system.load']
        assert det.models['cpu_pair'].columns == ['{}::system.cpu|user'.format(child),
                                                        '{}::system.cpu|user'.format(other.host)]
        s = det.step()
        assert set(s.scores) == {'cpu_pair', 'system.load'}
        det.close()


def test_a_second_agent_that_is_down_costs_only_its_own_model(replay, logger):
    """A custom model reading a child node that went offline: the local charts train and score,
    and the log names the model left untrained and the agent it reads."""
    det = make_detector(replay, logger, charts_regex='system\\.(cpu|load)',
                        custom_models=[{'name': 'child_cpu', 'dimensions': '127.0.0.1:9::system.cpu|user'}])
    step = run_until_trained(det, replay)
    assert sorted(step.added) == ['system.cpu', 'system.load']
    assert 'child_cpu' in det.untrained
    assert any('not trained' in m and '127.0.0.1:9' in m and 'child_cpu' in m for m in logger.errors()), logger.lines
    s = det.step()
    assert set(s.scores) == {'system.cpu', 'system.load'}
    det.close()


def test_a_model_that_cannot_train_is_retried_further_apart_and_said_once(replay, logger):
    """A custom model with a dimension the chart does not have: one error line, and retries at
    discoveries further and further apart (1, 2, 4 ... minutes), not a training every minute."""
    det = make_detector(replay, logger, charts_regex='system\\.load',
                        custom_models=[{'name': 'typo', 'dimensions': 'system.cpu|usr'}])
    run_until_trained(det, replay)
    first = det.trainings
    for _ in range(8 * 60):
        det.step()
        replay.clock.advance(1)
        if det.trainer.busy:
            det.trainer.wait(30)
    assert 'typo' not in det.models and 'typo' in det.untrained
    retries = det.trainings - first
    assert retries == 3      # 1, 2 and 4 minutes apart: at 1, 3 and 7 minutes (every minute it would be 8)
    said = [m for m in logger.errors() if 'typo' in m]
    # named as custom_models takes it (the job's own host left out), with the names to pick from
    assert len(said) == 1 and "no values of system.cpu|usr in the window: system.cpu's dimensions with " \
        "values, by name" in said[0] and 'user' in said[0] and '::' not in said[0], said
    assert not [m for _, m in logger.lines if 'new charts' in m]
    det.close()


def test_a_failure_that_differs_only_in_its_counts_is_not_told_again(replay, logger):
    """Each retry of a chart whose data overflows reads a few more rows: one error, not one per retry."""
    det = make_detector(replay, logger)

    class Result:
        models, waiting, min_history = {}, {}, 300

    for rows, other in ((6069, 1), (6090, 1), (6111, 2)):
        Result.errors = {'system.load': '{} of {} feature values are not finite'.format(rows, rows),
                         'system.cpu': 'the agent sent no data for this chart' if other == 1 else 'oops'}
        det._report_untrained(Result)
    told = [m for m in logger.errors() if 'not trained' in m]
    assert len([m for m in told if 'system.load' in m]) == 1 and len([m for m in told if 'system.cpu' in m]) == 2
    det.close()


def test_the_history_a_waiting_chart_is_said_to_have_is_its_own(replay, logger):
    """A chart that appears beside one already waiting is said to have its own seconds, not
    the other chart's (which read as the new chart's history)."""
    det = make_detector(replay, logger)

    class Result:
        models, errors, min_history = {}, {}, 120

    Result.waiting = {'system.old': 60}
    det._report_untrained(Result)
    Result.waiting = {'system.old': 70, 'system.new': 3}
    det._report_untrained(Result)
    Result.waiting = {'system.a': 10, 'system.b': 40, 'system.old': 80}
    det._report_untrained(Result)
    waits = [m for _, m in logger.lines if 'waiting for 120 s of history' in m]
    assert len(waits) == 3 and '; 60 s so far' in waits[0], waits
    assert '; 3 s so far' in waits[1] and waits[1].endswith('system.new'), waits
    assert '; 10-40 s so far' in waits[2], waits
    det.close()


def test_a_gap_in_collection_is_not_read_as_one_steps_change(replay, logger):
    """The job stopped for 90 s (agent away, host asleep): the rows from before the gap are not
    the last seconds, so the next steps score on the agent's stored rows, and no flag rises
    from the level the gap moved (the synthetic CPU's slow wave moves by 8 of its noise's
    deviations in 90 s)."""
    det = make_detector(replay, logger, charts_regex='system\\.cpu')
    run_until_trained(det, replay)
    for _ in range(20):
        det.step()
        replay.clock.advance(1)
    replay.clock.advance(90)
    after = []
    for _ in range(12):
        after.append(det.step())
        replay.clock.advance(1)
    assert [s.scores['system.cpu'][1] for s in after] == [0] * 12      # scored at once, and not flagged
    assert any(re.search(r'values moved 9\d s on in one step', m) for _, m in logger.lines), logger.lines
    det.close()


class RaggedRowsApi(SwitchableApi):
    """An agent (or a proxy before it) whose stored rows of ``system.load`` come ragged."""
    def data(self, chart, after, before=0, points=0, group=None, whole=None):
        labels, rows = super().data(chart, after, before, points, group, whole)
        if chart == 'system.load':
            rows = [r[:-1] if i % 3 == 0 else r for i, r in enumerate(rows)]
        return labels, rows


def test_the_rows_of_nothing_an_agent_answers_for_a_gap_are_no_rows():
    """The agent answers a gap in collection with rows of nulls on its time grid: kept, the
    features refilled after a gap of 5-12 s reached back over it into the rows before, carried
    forward over the nulls, and scored at once on a change that spans the gap."""
    from collector.stored_rows import chart_rows

    class Api:
        def data(self, chart, after, points=0):
            rows = [[t, None if 650 <= t < 658 else float(t)] for t in range(630, 671)]
            return ['user'], rows
    times, values, labels = chart_rows(Api(), 'system.cpu', 13, 1)
    assert labels == ['user'] and not np.isnan(values).any()
    assert list(times) == [t for t in range(630, 671) if not 650 <= t < 658]

    class Nothing:
        def data(self, chart, after, points=0):
            return ['user'], [[t, None] for t in range(630, 671)]
    assert chart_rows(Nothing(), 'system.cpu', 13, 1) is None


def test_stored_rows_that_cannot_be_read_after_a_gap_are_named(replay, logger):
    """After a gap the features start again from the agent's stored rows: a chart whose rows
    came odd was left to score again later without a word, so its chart stood still for
    several steps with nothing said why. Its line names the chart and what was wrong, and
    the other charts score at once."""
    det = make_detector(replay, logger, api=RaggedRowsApi, charts_regex='system\\.(cpu|load)')
    # (trained on the window read chart by chart with these rows: training says what it left out)
    run_until_trained(det, replay)
    assert sorted(det.models) == ['system.cpu', 'system.load']
    for _ in range(10):
        det.step()
        replay.clock.advance(1)
    replay.clock.advance(90)
    first = det.step()
    said = [e for e in logger.errors() if 'stored rows of' in e]
    assert said == ['the stored rows of system.load could not be read (ValueError: rows of 3 or 4 values for a '
                    'time and 3 dimensions): its model scores once enough steps came in'], logger.lines
    assert 'system.cpu' in first.scores and 'system.load' not in first.scores
    det.close()


class NothingStoredApi(SwitchableApi):
    """An agent that has stored nothing of ``system.load`` yet (seconds old, or restarted): 404."""
    def data(self, chart, after, before=0, points=0, group=None, whole=None):
        if chart == 'system.load':
            raise NetdataError('http://{}/api/v1/data?chart=system.load answered HTTP 404'.format(self.host),
                               status=404)
        return super().data(chart, after, before, points, group, whole)


def test_a_chart_with_nothing_stored_yet_after_a_gap_is_no_error(replay, logger):
    """A 404 for a chart's stored rows is an agent that has stored nothing of it yet (one that
    restarted during the gap): its model waits for new rows, without an error line."""
    det = make_detector(replay, logger, api=NothingStoredApi, charts_regex='system\\.(cpu|load)')
    run_until_trained(det, replay)
    for _ in range(10):
        det.step()
        replay.clock.advance(1)
    replay.clock.advance(90)
    first = det.step()
    assert 'system.cpu' in first.scores and 'system.load' not in first.scores
    assert not logger.errors(), logger.errors()


@pytest.mark.parametrize('phase', range(5))
def test_a_chart_collected_every_5_s_scores_at_once_after_a_gap_in_any_phase(replay, logger, phase):
    """system.load is collected every 5 s: in some phases of its collection the last few
    seconds' stored rows make too few steps' rows, and it would sit out the next 5 steps after
    a gap (or a restart with saved models) while the charts collected every second scored."""
    det = make_detector(replay, logger, charts_regex='system\\.(cpu|load)')
    run_until_trained(det, replay)
    for _ in range(12):
        det.step()
        replay.clock.advance(1)
    replay.clock.advance(90 + phase)
    assert set(det.step().scores) == {'system.cpu', 'system.load'}
    det.close()


def test_the_training_log_says_when_the_rows_were_sampled_down(replay, logger, monkeypatch):
    """``train_max_n`` fits a sample of the window: the log line counts the rows read and says
    that the models saw fewer, or a user reading 'on 590 rows' takes them all as learnt. So is
    a chart too wide to read over the whole window (here system.cpu's 3 listed dimensions; read
    alone, as wider than a batch)."""
    from collector import training
    monkeypatch.setattr(training, 'MAX_READ_VALUES', 3 * 400)
    monkeypatch.setattr(training, 'TRAIN_BATCH_DIMENSIONS', 2)
    det = make_detector(replay, logger, charts_regex='system\\.(cpu|ram)$', train_max_n=100)
    run_until_trained(det, replay)
    lines = [m for _, m in logger.lines if m.startswith('trained ')]
    assert re.match(r'trained 2 models on \d{3} rows \(2 of them on a sample of 100 rows: train_max_n, the '
                    r"model's own cap, or a wide chart's\) \(1 chart read over the newest 400 s only, too wide to "
                    r"read whole: system.cpu\) in", lines[0]), lines
    det.close()


def test_a_slow_refill_after_a_gap_is_not_read_as_another_gap(replay, logger, monkeypatch):
    """Reading the stored rows after a gap takes the agent's clock on (3 s a chart here): the
    step after the refill must not count that as a gap again, or the features would restart
    on every step for good."""
    det = make_detector(replay, logger, charts_regex='system\\.(cpu|ram|forks)')
    run_until_trained(det, replay)
    for _ in range(20):
        det.step()
        replay.clock.advance(1)
    read = SwitchableApi.data

    def slow(self, *args, **kwargs):
        replay.clock.advance(3)
        return read(self, *args, **kwargs)
    monkeypatch.setattr(SwitchableApi, 'data', slow)
    replay.clock.advance(90)
    for _ in range(10):
        det.step()
        replay.clock.advance(1)
    assert len([m for _, m in logger.lines if 'in one step' in m]) == 1
    det.close()


def test_a_young_agent_waits_for_train_min_n_secs_of_history_then_trains(recording, logger):
    """Started 20 s after the agent: no model (so no flag) until the charts have 120 s of
    history; one log line says why, not one per retry; the charts are trained as soon as they
    have it, without waiting for the next full retrain."""
    from collector.replay import Recording, ReplayClock, ReplayServer
    rec = Recording(recording)
    with ReplayServer(rec, ReplayClock(rec.start + 20, stepped=True)) as server:
        det = make_detector(server, logger, train_min_n_secs=120)
        det.start()
        trained_at = None
        for _ in range(400):
            step = det.step()
            if det.models:
                trained_at = server.clock.now() - rec.start
                break
            assert not step.scores
            server.clock.advance(1)
            if det.trainer.busy:
                det.trainer.wait()
        assert trained_at is not None and 120 <= trained_at <= 120 + 60 + 5, trained_at
        assert not logger.errors()
        waits = [m for _, m in logger.lines if 'waiting for 120 s of history' in m]
        assert len(waits) == 1, waits
        assert 20 <= int(re.search(r'; (?:\d+-)?(\d+) s so far', waits[0]).group(1)) < 120, waits
        assert set(det.step().scores) == set(det.models)
        # the window held less than train_n_secs: the next training comes once the history has
        # doubled, not train_every_n (1000) steps later, and fits on the longer history
        first = det.models['system.cpu'].info['window']
        assert det.steps < det.next_training <= det.steps + trained_at + 5
        # (system.forks' 'late' dimension, listed once collected, is trained alone meanwhile)
        while det.models['system.cpu'].info['window'] == first and det.steps < 400:
            server.clock.advance(1)
            det.step()
            det.trainer.wait()
        second = det.models['system.cpu'].info['window']
        assert second[1] - second[0] >= 1.8 * (first[1] - first[0]), (first, second)
        det.close()


def test_charts_waiting_for_history_are_trained_again_once_they_may_have_it_not_every_minute(recording, logger):
    """Each training runs a process whose CPU and forks the node's charts show, so no chart's
    new flag may rise while it runs: charts still short of train_min_n_secs used to be trained
    again at every discovery, only to be told to wait, holding the flags of all the others a
    fifth of the time. They are tried again when the history the last training found would
    have grown enough."""
    from collector.replay import Recording, ReplayClock, ReplayServer
    rec = Recording(recording)
    with ReplayServer(rec, ReplayClock(rec.start + 20, stepped=True)) as server:
        det = make_detector(server, logger, train_min_n_secs=300)
        det.start()
        started = []
        for _ in range(500):
            busy = det.trainer.busy
            step = det.step()
            if det.trainer.busy and not busy:
                started.append(int(server.clock.now() - rec.start))
            if det.models:
                break
            assert not step.scores
            server.clock.advance(1)
            det.trainer.wait()
        assert det.models and 300 <= started[-1] <= 300 + 60 + 5, started
        assert len(started) <= 2, started   # every minute: 20, 80, 140, 200, 260 and 320
        det.close()


def test_first_models_trained_apart_are_refitted_once_the_history_has_doubled(recording, tmp_path, logger):
    """Charts waiting for history are tried again by their own history, so where one chart
    started later (or is collected every few seconds) the first models come from a training of
    some charts, not all: they must still be refitted once the history has doubled, not stand
    until train_every_n (a young agent's false flags rose by a third)."""
    from collector.replay import Recording, ReplayClock, ReplayServer
    late = str(tmp_path / 'late')
    shutil.copytree(recording, late)
    ram = os.path.join(late, 'data', 'system.ram.json.gz')
    with gzip.open(ram, 'rt') as f:
        body = json.load(f)
    body['data'] = [r for r in body['data'] if r[0] >= START + 100]   # system.ram collected from 100 s on
    with gzip.open(ram, 'wt') as f:
        json.dump(body, f)
    rec = Recording(late)
    with ReplayServer(rec, ReplayClock(rec.start + 20, stepped=True)) as server:
        det = make_detector(server, logger, train_min_n_secs=300)
        det.start()
        for _ in range(500):
            det.step()
            if det.models:
                break
            server.clock.advance(1)
            det.trainer.wait()
        assert det.models and 'system.ram' not in det.models and 'system.cpu' in det.models
        history = det.models['system.cpu'].info['window'][1] - det.models['system.cpu'].info['window'][0]
        assert det.steps < det.next_training <= det.steps + history + 5, (det.steps, det.next_training, history)
        det.close()


@pytest.mark.parametrize('first_entry', [START, START - 40000])
def test_saved_models_fitted_on_a_young_agents_minutes_are_refitted_as_its_history_doubles_after_a_restart(
        recording, logger, tmp_path, first_entry):
    """A job restarted in an agent's first minutes (to apply a config edit) loads the models
    fitted on those minutes: they must be refitted once the history has doubled, as without
    the restart, not stand until train_every_n (half an hour of a busy CPU's flags by default).
    A database agent back from a long gap lists each chart from before it (11 hours back, over
    a gap of five): the history held is still what the models were fitted on plus their age,
    where the chart list's hours had them all retrained at every restart."""
    from collector.replay import Recording, ReplayClock, ReplayServer
    dated = shutil.copytree(recording, str(tmp_path / 'dated'))
    with open(os.path.join(dated, 'charts.json')) as f:
        body = json.load(f)
    for c in body['charts'].values():   # as an agent lists them: the history each chart holds
        c.update(first_entry=first_entry, last_entry=START + SECONDS)
    with open(os.path.join(dated, 'charts.json'), 'w') as f:
        json.dump(body, f)
    models = str(tmp_path / 'models')
    with ReplayServer(Recording(dated), ReplayClock(START + 120, stepped=True)) as server:
        first = make_detector(server, logger, models_dir=models, train_min_n_secs=60)
        run_until_trained(first, server)
        first.close()
        window = first.models['system.cpu'].info['window']
        trained_on = window[1] - window[0] + 1
        assert trained_on < 200, window   # a young agent's models, not a whole train_n_secs
        server.clock.set(START + 150)
        again = make_detector(server, logger, models_dir=models, train_min_n_secs=60)
        again.start()
        assert 'system.cpu' in again.models and again.trainings == 0
        due = again.next_training - again.steps
        assert abs(due - (2 * trained_on - 150)) <= 3, (due, trained_on)
        said = [m for _, m in logger.lines if m.startswith('loaded ')]
        assert said and 'again once the agent holds twice that' in said[-1], said
        # a window a damaged or foreign metadata file does not give is no span: never an error
        assert again._regrow_loaded({'a': {'window': [None, None]}, 'b': {'window': 'x'}, 'c': {}}) == \
            (timings.NEVER, None)
        again.close()


def test_a_chart_whose_history_a_young_agent_failed_to_send_is_tried_again_at_the_next_look(
        recording, logger, monkeypatch):
    """A young agent may fail one read of a training (a timeout as its collectors start): that
    chart's history is then unknown, not nothing, so it is tried again a minute on, and trained
    with the others once they all have the history, not a whole train_min_n_secs later."""
    from collector import training, training_window
    from collector.replay import Recording, ReplayClock, ReplayServer
    monkeypatch.setattr(training, 'TRAIN_BATCH_CHARTS', 1)
    read, calls = training_window.fetch_training_frame, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise NetdataError('cannot reach the agent: timed out')
        return read(*args, **kwargs)
    monkeypatch.setattr(training_window, 'fetch_training_frame', flaky)
    rec = Recording(recording)
    with ReplayServer(rec, ReplayClock(rec.start + 200, stepped=True)) as server:
        det = make_detector(server, logger, train_min_n_secs=300)
        det.start()
        trained = {}
        for _ in range(500):
            det.step()
            for m in det.models:
                trained.setdefault(m, int(server.clock.now() - rec.start))
            if det.specs and len(trained) == len(det.specs):
                break
            server.clock.advance(1)
            det.trainer.wait()
        det.close()
    assert len(trained) == 4 and max(trained.values()) <= 300 + 65, trained


def _with_an_extra_chart(path, chart, dims, values_at, seconds=None, **listed):
    """The synthetic recording (``seconds`` long, default its usual length) plus ``chart``
    with ``dims``, whose values at offset ``i`` s are ``values_at(i)`` (a list, None for no
    value); ``listed``: more keys of its entry in the chart list (``first_entry``, ``last_entry``)."""
    from conftest import SECONDS, _chart
    seconds = seconds or SECONDS
    write_recording(path, seconds)
    with open(os.path.join(path, 'charts.json')) as f:
        charts = json.load(f)
    charts['charts'][chart] = dict(_chart(chart, dims), **listed)
    with open(os.path.join(path, 'charts.json'), 'w') as f:
        json.dump(charts, f)
    rows = [[START + i] + values_at(i) for i in range(seconds + 1)]
    with gzip.open(os.path.join(path, 'data', chart + '.json.gz'), 'wt') as f:
        json.dump({'labels': ['time'] + dims, 'data': rows[::-1]}, f)
    return path


def test_charts_collected_every_10_s_are_no_gap_at_each_collection(tmp_path, logger):
    """A job over charts that are all collected every 10 s (a collector at update_every 10)
    sees the agent's clock move 10 s at once each time they are: that is their pace, not a
    gap in collection, which would read their stored rows again and start the features and
    the flags' history afresh every 10 s. Its training, alone, takes each collection for no gap
    either: it left 80 % of the rows out as just after one, and kept only rows whose changes
    were 0, so every ordinary change flagged (22 flagged steps of 280 of plain noise)."""
    from collector.replay import Recording, ReplayClock, ReplayServer
    from conftest import SECONDS, _chart
    path = write_recording(str(tmp_path / 'rec'))
    with open(os.path.join(path, 'charts.json')) as f:
        charts = json.load(f)
    charts['charts']['system.slow'] = _chart('system.slow', ['a'], every=10)
    with open(os.path.join(path, 'charts.json'), 'w') as f:
        json.dump(charts, f)
    rng = np.random.default_rng(0)
    rows = [[START + i, float(50 + rng.normal(0, 5))] for i in range(0, SECONDS + 1, 10)]
    with gzip.open(os.path.join(path, 'data', 'system.slow.json.gz'), 'wt') as f:
        json.dump({'labels': ['time', 'a'], 'data': rows[::-1]}, f)
    rec = Recording(path)
    with ReplayServer(rec, ReplayClock(rec.start + 600, stepped=True)) as server:
        det = make_detector(server, logger, charts_regex='system\\.slow$', train_min_n_secs=120)
        run_until_trained(det, server)
        fm = det.models['system.slow']
        steps = _steps(det, server, 120)
        det.close()
    assert not [m for _, m in logger.lines if 'in one step' in m], logger.lines
    assert sum('system.slow' in s.scores for s in steps) >= 110
    assert fm.info['rows'] >= 0.9 * (fm.info['window'][1] - fm.info['window'][0]), fm.info
    assert not any(s.scores['system.slow'][1] for s in steps if 'system.slow' in s.scores)


def _with_a_late_chart(path, values_from, **listed):
    """'system.late', listed from the start but with values only from ``values_from`` s on (a
    chart that a young agent lists before its first collection)."""
    return _with_an_extra_chart(path, 'system.late', ['a', 'b'],
                                lambda i: [None, None] if i < values_from else [1.0 + (i % 7), 2.0], **listed)


def _step_until_trained(det, server, model_id, limit):
    """Step ``det`` a second at a time (each training waited for) until ``model_id`` has a model."""
    det.start()
    for _ in range(limit):
        det.step()
        if model_id in det.models:
            return
        server.clock.advance(1)
        det.trainer.wait()


def _with_a_chart_that_moves_once(path, moves_at, back_at):
    """'system.shm', at 0 segments / 0 bytes but for eight segments of 64 MiB from ``moves_at``
    s to ``back_at`` s (a program's System V memory)."""
    return _with_an_extra_chart(path, 'system.shm', ['segments', 'bytes'],
                                lambda i: [8.0, 512.0 * 2 ** 20] if moves_at <= i < back_at else [0.0, 0.0])


def test_a_chart_that_never_moved_in_its_window_is_flagged_when_it_moves(tmp_path, logger):
    """An error counter at 0 or no shared memory for the whole window has no spread to measure
    a move against; its first move is news all the same, flagged at once and told by its
    dimensions, and the chart reads nothing unusual while it stays still."""
    from collector.replay import Recording, ReplayClock, ReplayServer
    rec = Recording(_with_a_chart_that_moves_once(str(tmp_path / 'rec'), moves_at=700, back_at=730))
    with ReplayServer(rec, ReplayClock(rec.start + 600, stepped=True)) as server:
        det = make_detector(server, logger, train_n_secs=600)
        run_until_trained(det, server)
        assert det.models['system.shm'].model_name == 'constant'
        seen = {}
        while server.clock.now() <= rec.start + 740:
            det.trainer.wait()
            step = det.step()
            seen[int(server.clock.now()) - rec.start] = (step.scores['system.shm'], step.drivers.get('system.shm'))
            server.clock.advance(1)
        det.close()
    before = [p_f for t, (p_f, _) in seen.items() if t < 700]
    assert before and all(p == 0.0 and f == 0 for p, f in before)
    rose = min(t for t, ((p, f), _) in seen.items() if f)
    assert 700 <= rose <= 702 and seen[rose][0][0] == 1.0
    assert seen[rose][1] and {c.split('|')[1] for c, _ in seen[rose][1]} <= {'segments', 'bytes'}


def test_a_young_agents_charts_without_values_yet_wait_rather_than_fail(tmp_path, logger):
    """Seconds after an agent starts, some charts it lists have no values yet: they wait for
    history like the rest, with no error line, and are trained once they have it; on an agent
    with history, a chart that sends nothing is still an error."""
    from collector.replay import Recording, ReplayClock, ReplayServer
    rec = Recording(_with_a_late_chart(str(tmp_path / 'rec'), values_from=60))
    with ReplayServer(rec, ReplayClock(rec.start + 20, stepped=True)) as server:
        det = make_detector(server, logger, train_min_n_secs=120)
        _step_until_trained(det, server, 'system.late', 400)
        assert 'system.late' in det.models and 180 <= server.clock.now() - rec.start <= 180 + 65
        assert not logger.errors(), logger.errors()
        waits = [m for _, m in logger.lines if 'waiting for 120 s of history' in m]
        assert 'system.late' in waits[0] and 'system.cpu' in waits[0], waits
        det.close()

    old = ListLogger()
    rec = Recording(_with_a_late_chart(str(tmp_path / 'rec2'), values_from=10 ** 6))
    with ReplayServer(rec, ReplayClock(rec.start + 600, stepped=True)) as server:
        det = make_detector(server, old, train_min_n_secs=120)
        run_until_trained(det, server)
        det.trainer.wait()
        det.step()
        assert 'system.late' not in det.models
        assert any('not trained: the agent sent no' in m and 'system.late' in m for m in old.errors()), old.lines
        det.close()


@pytest.mark.parametrize('entries', [(645, 650), (None, None)], ids=['listed-5-s', 'not-collected-yet'])
def test_a_chart_listed_before_its_first_collection_waits_rather_than_fails(tmp_path, logger, entries):
    """On an agent with hours of history, a chart appears (a disk plugged in, a service
    started) and is listed before it has values: the chart list says it has been collected
    for seconds (or, as 1.37 lists a chart not collected yet, first and last entry 0), so it
    waits for history like a young agent's charts, with no error line, and is trained once
    it has it."""
    from collector.replay import Recording, ReplayClock, ReplayServer
    first, last = (START + e if e else 0 for e in entries)
    rec = Recording(_with_a_late_chart(str(tmp_path / 'rec'), values_from=650, first_entry=first, last_entry=last))
    with ReplayServer(rec, ReplayClock(rec.start + 600, stepped=True)) as server:
        det = make_detector(server, logger, train_min_n_secs=120)
        _step_until_trained(det, server, 'system.late', 300)
        det.close()
    assert 'system.late' in det.models and 650 + 120 <= server.clock.now() - rec.start <= 650 + 120 + 65
    assert not logger.errors(), logger.errors()
    assert any('system.late' in m and 'waiting for 120 s of history' in m for _, m in logger.lines), logger.lines


def test_a_chart_listed_but_never_collected_is_an_error_once_its_wait_is_plainly_over(tmp_path, logger):
    """A chart the agent keeps listing with no history that grows (created and never
    collected, or an agent that keeps no history) waits like a young chart at first; once it
    has waited twice as long as history would take, plus two discoveries, it is told as an
    error, and retried further and further apart instead of every minute."""
    from collector.replay import Recording, ReplayClock, ReplayServer
    rec = Recording(_with_a_late_chart(str(tmp_path / 'rec'), values_from=10 ** 6, first_entry=0, last_entry=0))
    with ReplayServer(rec, ReplayClock(rec.start + 600, stepped=True)) as server:
        det = make_detector(server, logger, train_min_n_secs=60)
        det.start()
        trainings_at = []
        for _ in range(900):
            det.step()
            server.clock.advance(1)
            if det.trainer.busy:
                trainings_at.append(det.steps)
                det.trainer.wait()
        det.close()
    assert 'system.late' not in det.models and 'system.cpu' in det.models
    told = [m for m in logger.errors() if 'system.late' in m]
    assert len(told) == 1 and 'the agent lists the chart but its history has not grown in 240 s' in told[0], told
    waits = [m for _, m in logger.lines if 'system.late' in m and 'waiting for 60 s of history' in m]
    assert len(waits) == 1, logger.lines
    # its tries come ever further apart from the first on (a minute, two, four, ...), not every minute
    gaps = [b - a for a, b in zip(trainings_at, trainings_at[1:])]
    assert 3 <= len(trainings_at) <= 5 and gaps == sorted(gaps) and gaps[-1] >= 240, trainings_at


def test_a_job_stepping_every_5_s_trains_on_the_samples_its_steps_read(tmp_path, logger):
    """Each step reads the agent's latest sample; trained on the agent's 5-second averages
    instead (less spread), the synthetic memory's normal steps read 1.00 and raised a flag at
    350 of 360 steps."""
    import numpy as np
    from collector.replay import Recording, ReplayClock, ReplayServer
    rec = Recording(write_recording(str(tmp_path / 'rec'), seconds=4000))
    with ReplayServer(rec, ReplayClock(rec.start + 2000, stepped=True)) as server:
        det = make_detector(server, logger, train_n_secs=1800, train_every_n=100000, update_every=5,
                            charts_regex='system\\.(cpu|ram)')
        det.start()
        for _ in range(100):
            if det.models:
                break
            det.trainer.wait()
            det.step()
            server.clock.advance(5)
        assert sorted(det.models) == ['system.cpu', 'system.ram']
        probs, flags = {}, {}
        for _ in range(240):   # 20 minutes of normal data
            for m, (p, f) in det.step().scores.items():
                probs.setdefault(m, []).append(p)
                flags.setdefault(m, []).append(f)
            server.clock.advance(5)
        det.close()
    assert sorted(probs) == ['system.cpu', 'system.ram']
    for m in probs:
        assert sum(flags[m]) == 0, (m, sum(flags[m]))
        assert np.mean(probs[m]) < 0.65, (m, np.mean(probs[m]))


def test_a_custom_models_agent_that_stops_answering_keeps_its_last_values(replay, logger, tmp_path):
    """A custom model over two agents: when one stops answering, its columns carry their last
    value as in training; read as 0 (one null among the model's values looked like a
    dimension gone) the model scored a drop to nothing and flagged 9 of 10 steps. The model
    is not scored on them, and scores again on the rows after the agent's return."""
    from collector.replay import Recording, ReplayClock, ReplayServer
    # another node, with noise of its own: served from the same recording, its column was the
    # local one's exact copy in training, and any step apart read as unusual as a step can be
    rec = Recording(write_recording(str(tmp_path / 'other'), seed=2))
    with ReplayServer(rec, ReplayClock(rec.start + 600, stepped=True)) as other:
        class TwoAgents(SwitchableApi):
            other_down = False

            def allmetrics(self, timeout=None, charts=None):
                if self.host == other.host and TwoAgents.other_down:
                    raise NetdataError('cannot reach http://{}: ConnectionRefusedError'.format(self.host))
                return super().allmetrics(timeout, charts)
        det = make_detector(replay, logger, charts_regex='system\\.load', custom_models=[
            {'name': 'cpu_pair', 'dimensions': 'system.cpu|user,{}::system.cpu|user'.format(other.host)}])
        det.apis = {h: TwoAgents.from_config(det.config, h) for h in det.hosts}
        run_until_trained(det, replay)

        def step():
            other.clock.set(replay.clock.now())
            s = det.step()
            replay.clock.advance(1)
            return s
        for _ in range(40):
            step()
        col = det.layout.index['{}::system.cpu|user'.format(other.host)]
        last = det.ring[-1, col]
        TwoAgents.other_down = True
        down = [step().scores for _ in range(10)]
        held = det.ring[-1, col]
        TwoAgents.other_down = False
        back = [step().scores for _ in range(det.need + 5)]
        det.close()
    assert last > 0 and held == last
    # made-up values are not scored: the model of an agent away (the rest moving, its column
    # still) read an outage as an anomaly, then the change across it as one step's
    assert all('cpu_pair' not in s and 'system.load' in s for s in down)
    assert 'cpu_pair' not in back[0] and 'cpu_pair' in back[-1]
    assert sum(s['cpu_pair'][1] for s in back if 'cpu_pair' in s) == 0


def test_the_agents_of_custom_models_are_read_side_by_side(replay, logger):
    """Custom models on two other nodes that stop answering by timing out (hosts powered off):
    read one after the other, each took its 0.9 x update_every, so a step took two and the
    healthy local charts' changes read two seconds as one. Read side by side, both reads wait
    together (each waits here for the other to have started), and the local agent answers."""
    import threading
    both = threading.Barrier(2, timeout=10)
    reached = []

    class Hanging(SwitchableApi):
        def allmetrics(self, timeout=None, charts=None):
            if self.host in ('127.0.0.1:8', '127.0.0.1:9'):
                both.wait()     # broken (and raising) when the other read is not under way meanwhile
                reached.append(self.host)
                raise NetdataError('cannot reach http://{}: timed out'.format(self.host), timed_out=timeout)
            return super().allmetrics(timeout, charts)
    det = make_detector(replay, logger, api=Hanging, charts_regex='system\\.load', custom_models=[
        {'name': 'far_a', 'dimensions': '127.0.0.1:8::system.cpu|user'},
        {'name': 'far_b', 'dimensions': '127.0.0.1:9::system.cpu|user'}])
    try:
        latest = det._fetch_latest()
    finally:
        det.close()
    assert sorted(reached) == ['127.0.0.1:8', '127.0.0.1:9']
    assert list(latest) == [replay.host] and det.unanswered == {'127.0.0.1:8', '127.0.0.1:9'}


class FailingTrainer(ThreadTrainer):
    """A trainer whose trainings fail as a whole while ``fail`` is set (a child killed for
    memory); ``started`` holds the detector's step at each start, once ``det`` is set."""
    fail, failed, det = False, False, None

    def __init__(self):
        super().__init__()
        self.started = []

    @property
    def busy(self):
        return self._thread is not None or self.failed

    def start(self, request):
        self.started.append(self.det.steps if self.det else None)
        if self.fail:
            self.failed = True
        else:
            super().start(request)

    def poll(self):
        from collector.training import TrainingResult
        if self.failed:
            self.failed = False
            return TrainingResult(error='training process exited with code -9 and no result')
        return super().poll()


def test_a_training_that_keeps_failing_is_tried_again_ever_further_apart(replay, logger):
    """A training that fails as a whole (the child killed for memory, an agent that lists its
    charts but cannot give their history) was started again every 30 steps for good: 20
    processes in 600 steps, and a third of the steps could raise no flag (a training's rows
    raise none). Now 30, 60, 120, ... steps apart, and a training that works starts it over."""
    det = make_detector(replay, logger, train_every_n=1800)
    det.trainer = FailingTrainer()
    run_until_trained(det, replay)
    det.trainer.fail = True
    det.next_training = det.steps   # a full training is due now, and fails
    started, muted = det.trainings, 0
    for _ in range(600):
        det.step()
        replay.clock.advance(1)
        muted += det.steps in det.own_rows
    assert det.trainings - started == 5, det.trainings - started   # at 0, 30, 90, 210 and 450 steps
    assert muted < 100, muted
    assert any('trying again in 240 steps' in m for m in logger.errors()), logger.errors()
    assert sorted(det.models) == ['system.cpu', 'system.forks', 'system.load', 'system.ram']   # still scoring
    det.trainer.fail = False
    det.next_training = det.steps
    det.step()
    det.trainer.wait()
    det.step()
    assert det.failed_trainings == 0 and any('training works again' in m for _, m in logger.lines)
    det.close()


def test_a_failed_training_says_the_wait_to_a_full_training_due_sooner(replay, logger):
    """train_every_n 20: a full training that fails is tried again at the next one due, within
    20 steps; the line said 'trying again in 30 steps'."""
    det = make_detector(replay, logger, train_every_n=20)
    det.trainer = FailingTrainer()
    run_until_trained(det, replay)
    det.trainer.fail = True
    det.next_training = det.steps
    starts = det.trainings
    for _ in range(25):
        det.step()
        replay.clock.advance(1)
    told = [int(m.split('trying again in ')[1].split()[0]) for m in logger.errors() if 'trying again in' in m]
    assert told and told[0] <= 20 and det.trainings - starts == 2, (told, det.trainings - starts)
    det.close()


@pytest.mark.parametrize('train_every_n', [1800, 0])
def test_a_first_training_that_fails_waits_as_long_as_it_says_before_the_next(replay, logger, monkeypatch,
                                                                               train_every_n):
    """The wait a failed training told held only for the next full training: the charts still
    without a model were trained again at the next look at the chart list, a second later
    ('trying again in 30 steps', then a new training process at once, for a box short of memory
    the opposite of backing off). With train_every_n 0 (train once) the wait never grew past
    30 steps, told once: a process every 30 s for good."""
    monkeypatch.setattr(timings, 'DISCOVER_SECONDS', 5)   # the chart list looked at often
    det = make_detector(replay, logger, train_every_n=train_every_n)
    det.trainer = FailingTrainer()
    det.trainer.fail, det.trainer.det = True, det
    det.start()
    for _ in range(200):
        det.step()
        replay.clock.advance(1)
    told = [int(m.split('trying again in ')[1].split()[0]) for m in logger.errors() if 'trying again in' in m]
    starts = det.trainer.started
    assert told[:2] == [30, 60] and len(starts) == 3, (told, starts)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert gaps[0] >= 30 and gaps[1] >= 60, starts
    assert not det.models
    det.close()


def _first_training_age(server, rec, det, limit=400):
    """The agent's age (s) when ``det`` first has a model; None if it never did within ``limit`` steps."""
    det.start()
    for _ in range(limit):
        det.step()
        if det.models:
            return server.clock.now() - rec.start
        server.clock.advance(det.config.update_every)
        if det.trainer.busy:
            det.trainer.wait()
    return None


@pytest.mark.parametrize('conf', [
    {'update_every': 2},                             # a young agent answers with its one-second rows
    {'charts_regex': 'system\\.load'},             # a chart collected every 5 s: a fifth of the rows
])
def test_the_history_a_chart_waits_for_is_time_not_rows(recording, logger, conf):
    from collector.replay import Recording, ReplayClock, ReplayServer
    rec = Recording(recording)
    with ReplayServer(rec, ReplayClock(rec.start + 20, stepped=True)) as server:
        det = make_detector(server, logger, train_min_n_secs=240, **conf)
        age = _first_training_age(server, rec, det)
        assert age is not None and 240 <= age <= 240 + 60 + 10, age
        assert not logger.errors()
        det.close()


def test_a_new_chart_on_a_young_agent_does_not_bring_the_full_training_forward(tmp_path, logger, monkeypatch):
    """The first full training (600 s of history, a 3600 s window) is brought forward to when
    the history has doubled; a chart that appears later with 100 s of its own is trained alone
    and leaves that schedule as it was (its short history says nothing of the agent's)."""
    from collector.replay import Recording, ReplayClock, ReplayServer
    path = write_recording(str(tmp_path / 'rec'))
    name = os.path.join(path, 'data', 'system.ram.json.gz')
    with gzip.open(name, 'rt') as f:
        body = json.load(f)
    body['data'] = [[r[0]] + ([None] * (len(r) - 1) if r[0] < START + 600 else r[1:]) for r in body['data']]
    with gzip.open(name, 'wt') as f:
        json.dump(body, f)
    monkeypatch.setattr(timings, 'DISCOVER_SECONDS', 0.5)
    rec = Recording(path)
    with ReplayServer(rec, ReplayClock(rec.start + 600, stepped=True)) as server:
        SwitchableApi.hidden = {'system.ram'}
        try:
            det = make_detector(server, logger, train_n_secs=3600, train_min_n_secs=60)
            run_until_trained(det, server)
            due = det.next_training
            assert det.steps < due <= det.steps + 700   # not train_every_n (1000) on
        finally:
            SwitchableApi.hidden = set()
        server.clock.advance(100)
        for _ in range(60):
            det.step()
            server.clock.advance(1)
            if 'system.ram' in det.models:
                break
            time.sleep(0.05)
        assert 'system.ram' in det.models and det.next_training == due
        window = det.models['system.ram'].info['window']
        assert window[1] - window[0] < 200   # it did train on its own short history
        det.close()


def test_too_little_history_without_a_minimum_waits_for_what_a_fit_needs(recording, logger):
    """train_min_n_secs 0 trains on what there is, but no fit takes fewer rows than its minimum
    and what the features take before the first: on an agent 20 s old the charts wait for that
    (one line, no error) and train once it is there, not a minute or more on after an error."""
    from collector.replay import Recording, ReplayClock, ReplayServer
    rec = Recording(recording)
    clock = ReplayClock(rec.start + 20, stepped=True)
    with ReplayServer(rec, clock) as server:
        det = make_detector(server, logger, train_min_n_secs=0)
        det.start()
        for _ in range(100):
            det.step()
            if det.trainings:
                break
            time.sleep(0.05)
        assert det.models == {} and not logger.errors(), logger.errors()
        need = 30 + det.config.training_rows_needed - 1
        assert any('waiting for {} s of history'.format(need) in m for _, m in logger.lines), logger.lines
        for _ in range(need + 60):   # the charts' own history tells when they are tried again
            clock.advance(1)
            det.step()
            det.trainer.wait()
        assert det.models and not logger.errors(), logger.errors()
        det.close()


class _Garbage(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        body = b'<html>not json</html>' if 'allmetrics' in self.path else b'{"charts": 5}'
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextlib.contextmanager
def serving(handler):
    """A throwaway HTTP server on loopback; yields its 'host:port'."""
    httpd = ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield '127.0.0.1:{}'.format(httpd.server_address[1])
    finally:
        httpd.shutdown()


class _Gate(BaseHTTPRequestHandler):
    """An agent behind a gate: answers every request with ``status``."""
    status = 301

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.send_response(self.status)
        if self.status == 301:
            self.send_header('Location', 'https://{}{}'.format(self.headers['Host'], self.path))
        self.send_header('Content-Length', '0')
        self.end_headers()


def test_a_redirect_to_https_and_a_sign_in_asked_for_say_what_to_set():
    """An agent whose [web] ssl is forced answers plain http with a redirect; a proxy asks for
    a sign-in with 401. Each says which key to set, not a bare status."""
    with serving(_Gate) as host:
        for status, auth, said in ((301, {}, "protocol 'https'"), (401, {}, 'set username and password'),
                                   (401, {'username': 'u', 'password': 'p'}, 'username and password were refused')):
            _Gate.status = status
            with pytest.raises(NetdataError) as e:
                NetdataApi(host, **auth).charts()
            assert 'answered HTTP {} ('.format(status) in str(e.value) and said in str(e.value), e.value


def test_malformed_answers_raise_clear_errors():
    with serving(_Garbage) as host:
        api = NetdataApi(host)
        with pytest.raises(NetdataError, match='not JSON'):
            api.allmetrics()
        with pytest.raises(NetdataError, match='no "charts" object'):
            api.charts()
    with pytest.raises(NetdataError, match='cannot reach'):
        NetdataApi('127.0.0.1:9', timeout=1).allmetrics()


class _Endless(BaseHTTPRequestHandler):
    """Answers without end (chunked, no length): what a hostile endpoint or a broken proxy may send."""
    protocol_version = 'HTTP/1.1'

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.send_response(200)
        if 'charts' in self.path:   # a length given, over the limit: refused before it is read
            body = b'[' * (2 * 1024 * 1024)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except OSError:
                pass
            return
        self.send_header('Transfer-Encoding', 'chunked')
        self.end_headers()
        chunk = b'[' * 65536
        try:
            for _ in range(64):   # 4 MiB, far over the limit the test sets
                self.wfile.write(b'%x\r\n%s\r\n' % (len(chunk), chunk))
            self.wfile.write(b'0\r\n\r\n')
        except OSError:   # the client stopped reading
            pass


def test_an_answer_over_the_size_limit_is_left_unread_and_said(monkeypatch):
    """Read to its end, an endless answer takes the box's memory; an answer under the limit
    (of any size an agent sends) is read whole."""
    import collector.netdata_api as netdata_api
    monkeypatch.setattr(netdata_api, 'MAX_ANSWER_BYTES', 1024 * 1024)
    with serving(_Endless) as host:
        for read in (NetdataApi(host).allmetrics, NetdataApi(host).charts):   # without a length, and with one
            with pytest.raises(NetdataError, match=r"answered over 1 MiB: not an agent's answer, left unread"):
                read()
    with serving(_Garbage) as host:   # a short answer: read, and refused for what it says
        with pytest.raises(NetdataError, match='not JSON'):
            NetdataApi(host).allmetrics()


class _Trickling(BaseHTTPRequestHandler):
    """Answers a byte at a time, each within any read's timeout: a broken proxy, or an agent
    starved of CPU. From its status line (path /headers...) or after its headers; the chart
    list short enough to come whole in 1.6 s, the latest values in 9 s."""
    protocol_version = 'HTTP/1.1'

    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.path.endswith('/api/v1/charts'):
            body = b'{"charts": {}}' + b' ' * 26
        elif '/api/v1/data' in self.path:   # (1.8 s)
            body = b'{"labels": ["time", "user"], "data": [[1000, 5]]}'
        else:
            body = b'{"system.cpu": {"dimensions": {}}}' + b' ' * 200
        head = b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n' % len(body)
        slow = head + body if self.path.startswith('/headers') else body
        try:
            if slow is body:
                self.wfile.write(head)
            for i in range(len(slow)):
                self.wfile.write(slow[i:i + 1])
                self.wfile.flush()
                time.sleep(0.04)
        except OSError:   # the client gave up
            pass


def test_an_answer_that_trickles_in_is_given_up_after_the_timeout_not_after_each_read(monkeypatch):
    """Every read of a byte comes within the timeout: timed per read, such an agent held each
    step for as long as it took to trickle its answer (here 9 s, for a timeout of 1 s). The
    chart list, read in a thread no step waits for, may take LIST_TIMEOUTS times as long: a
    large agent's list is megabytes."""
    import collector.netdata_api as netdata_api
    import collector.training_window as training_window
    monkeypatch.setattr(netdata_api, 'LIST_TIMEOUTS', 2)
    with serving(_Trickling) as host:
        for prefix in ('', '/headers'):
            api = NetdataApi(host + prefix, timeout=1.0)
            began = time.monotonic()
            with pytest.raises(NetdataError, match=r'cannot reach .*\(no answer in 1 s\)') as raised:
                api.allmetrics()
            assert time.monotonic() - began < 2.5 and raised.value.timed_out == 1.0
        assert NetdataApi(host, timeout=1.0).charts() == {}
        monkeypatch.setattr(netdata_api, 'LIST_TIMEOUTS', 1)
        with pytest.raises(NetdataError, match=r'cannot reach .*\(no answer in 1 s\)'):
            NetdataApi(host, timeout=1.0).charts()
        # one that does not come whole in LIST_TIMEOUTS x api_timeout is told so, not as one read's
        monkeypatch.setattr(netdata_api, 'LIST_TIMEOUTS', 2)
        began = time.monotonic()
        with pytest.raises(NetdataError, match=r'cannot reach .*: TimeoutError: timed out \(no answer in 2 s\)') as raised:
            NetdataApi(host + '/headers', timeout=1.0).charts()
        assert time.monotonic() - began < 3.0 and raised.value.timed_out == 2.0
        # a training's read of a chart's window (tens of MB for a wide chart, over a slow link)
        # may take WINDOW_TIMEOUTS of its reads' timeout to come whole
        with pytest.raises(NetdataError, match=r'\(no answer in 1 s\)'):
            NetdataApi(host, timeout=1.0).data('system.cpu', -10)
        df, _, problems = training_window._fetch_directly({host: ['system.cpu']}, -10, 0, 'http', None, None, True,
                                                          1.0, 0, 'netdata-pandas did not read it')
        assert df.to_numpy().tolist() == [[5.0]] and not problems, problems


def test_a_connection_dropped_unclosed_lets_go_of_its_socket_at_once(replay):
    """A NetdataApi let go of without close() (a one-off read of an agent's uptime) closes its
    connection as it goes, as before answers were read by a deadline: not at a garbage
    collection, minutes later, with a socket held open to the agent meanwhile."""
    import gc
    import weakref
    api = NetdataApi(replay.host)
    api.allmetrics()
    link = weakref.ref(api._links['main'])
    sock = weakref.ref(api._links['main'].conn.sock)
    gc.disable()
    try:
        del api
        assert link() is None and sock() is None
    finally:
        gc.enable()

def test_subprocess_trainer_returns_models_and_stops_a_hung_training(replay, monkeypatch):
    from collector.trainers import SubprocessTrainer
    from collector.training import ModelSpec, TrainingRequest
    cfg = parse_job_config({'host': replay.host, 'train_n_secs': 300})
    trainer = SubprocessTrainer()
    trainer.start(TrainingRequest(cfg, [ModelSpec('system.cpu', replay.host, chart='system.cpu')], -300, 0))
    assert trainer.busy
    trainer.wait(60)
    result = trainer.poll()
    assert result.error is None and list(result.models) == ['system.cpu']
    assert result.models['system.cpu'].columns[0].startswith(replay.host + '::system.cpu|')
    # an agent that never answers: the training is stopped, not waited on forever
    replay.data_delay = 30
    trainer = SubprocessTrainer(max_seconds=2)
    trainer.start(TrainingRequest(cfg, [ModelSpec('system.cpu', replay.host, chart='system.cpu')], -300, 0))
    deadline = time.monotonic() + 15
    result = None
    while result is None and time.monotonic() < deadline:
        result = trainer.poll()
        time.sleep(0.2)
    assert result is not None and 'stopped' in result.error
    assert not trainer.busy


def test_a_training_process_runs_this_package_whatever_folder_the_job_runs_in(replay, tmp_path, monkeypatch):
    """A debug run started in a checkout (docs/install.md) trained with the checkout's
    package, which '-m' put first on the training process's path; a relative models_dir is
    still the folder the job started in."""
    from collector import persist
    from collector.trainers import SubprocessTrainer
    from collector.training import ModelSpec, TrainingRequest
    other = tmp_path / 'checkout' / 'collector'
    other.mkdir(parents=True)
    (other / '__init__.py').write_text('')
    (other / 'train_worker.py').write_text('import sys\nsys.exit(3)\n')   # not this package's
    monkeypatch.chdir(tmp_path / 'checkout')
    models_dir = persist.resolve_dir('saved', 'anomalies')
    assert models_dir == str(tmp_path / 'checkout' / 'saved' / 'anomalies')
    cfg = parse_job_config({'host': replay.host, 'train_n_secs': 300})
    trainer = SubprocessTrainer()
    trainer.start(TrainingRequest(cfg, [ModelSpec('system.cpu', replay.host, chart='system.cpu')], -300, 0,
                                  models_dir=models_dir))
    trainer.wait(60)
    result = trainer.poll()
    assert result.error is None and list(result.models) == ['system.cpu'], result.error
    assert os.listdir(models_dir)


def test_a_training_process_whose_package_was_removed_says_to_restart_the_agent(tmp_path, monkeypatch):
    """An upgrade that removed the venv the agent's job was started from: every training
    process exits at its import, which read as memory running short."""
    from collector import trainers
    assert 'MemoryError' in trainers._why_exited(1)
    monkeypatch.setattr(trainers, 'PACKAGE_PARENT', str(tmp_path / 'gone'))
    assert trainers._why_exited(1) == (" (this job's package at {} is gone: the install was upgraded or removed "
                                       "since the agent started the job; restart the agent)".format(tmp_path / 'gone'))


def test_jobs_in_one_process_train_one_at_a_time_and_each_gets_its_models(replay):
    """python.d.plugin runs every job in one process, and jobs reading a parent's children
    start, and train, together: 4 jobs peaked at 480 MiB at once. A training asked for while
    another job's runs waits for it (its job sees a training that takes longer), in a thread
    as in a process, and the waiting ones start in the order they were asked for, at any job's
    look (the job that looked most often took every turn while trainings were asked for faster
    than they ended)."""
    from collector.trainers import SubprocessTrainer
    from collector.training import ModelSpec, TrainingRequest
    cfg = parse_job_config({'host': replay.host, 'train_n_secs': 300})
    request = TrainingRequest(cfg, [ModelSpec('system.cpu', replay.host, chart='system.cpu')], -300, 0)
    replay.data_delay = 1.5   # each training takes that long at least
    first, second, third = ThreadTrainer(), SubprocessTrainer(), SubprocessTrainer()
    try:
        first.start(request)
        second.start(request)
        third.start(request)
        assert first.running and second.busy and third.busy and not (second.running or third.running)
        assert second.poll() is None and third.poll() is None and not (second.running or third.running)
        first.wait(60)
        assert not first.running and first.poll().models
        # in the order they were asked for, whichever job looks first, the one whose training
        # ended too: its look starts the second's (the slot stood idle until a waiting job
        # looked, up to that job's update_every later)
        assert second.running and not second.waiting and not third.running
        assert third.poll() is None and not third.running and second.running and not second.waiting
        assert second.poll() is None and second.running and third.poll() is None and not third.running
        replay.data_delay = 0
        for trainer in (second, third):   # (wait starts a waiting one when it may)
            trainer.wait(60)
            result = trainer.poll()
            assert result is not None and result.error is None and list(result.models) == ['system.cpu']
            assert not trainer.busy
    finally:
        for trainer in (first, second, third):
            trainer.close()


def test_a_waiting_training_another_jobs_look_cannot_start_is_told_to_its_own_job(replay):
    """A waiting training is started at whichever job looks first once the slot is free; one
    whose process cannot be started there (no memory, no such python) is told as its own
    job's failed training, and the next in line starts."""
    from collector.trainers import SubprocessTrainer
    from collector.training import ModelSpec, TrainingRequest
    cfg = parse_job_config({'host': replay.host, 'train_n_secs': 300})
    request = TrainingRequest(cfg, [ModelSpec('system.cpu', replay.host, chart='system.cpu')], -300, 0)
    replay.data_delay = 1.0
    first, broken, third = ThreadTrainer(), SubprocessTrainer(python='/nonexistent/python'), ThreadTrainer()
    try:
        first.start(request)
        broken.start(request)
        third.start(request)
        first.wait(60)
        assert first.poll().models
        replay.data_delay = 0
        assert third.poll() is None and third.running   # (the broken one could not start: the next did)
        result = broken.poll()
        assert result is not None and 'cannot start training' in result.error and not broken.busy, result
        third.wait(60)
        assert list(third.poll().models) == ['system.cpu']
    finally:
        for trainer in (first, broken, third):
            trainer.close()


class _NeedsAuth(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        import base64
        ok = self.headers.get('Authorization') == 'Basic ' + base64.b64encode(b'netdata:secret').decode()
        body = b'{"charts": {}}' if ok else b'{}'
        self.send_response(200 if ok else 401)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_basic_auth_is_sent_and_a_refusal_is_clear():
    with serving(_NeedsAuth) as host:
        assert NetdataApi(host, username='netdata', password='secret').charts() == {}
        with pytest.raises(NetdataError, match='HTTP 401'):
            NetdataApi(host, username='netdata', password='wrong').charts()


class _Parent(BaseHTTPRequestHandler):
    """A parent that holds one child, 'child-1' (``held``): another name is answered as Netdata does.
    Its own netdata.uptime is ``uptime`` seconds (None: it does not chart it)."""
    held = 'child-1'
    uptime = None

    def log_message(self, *a):
        pass

    def do_GET(self):
        path = self.path[len('/netdata'):] if self.path.startswith('/netdata/') else self.path   # behind a proxy
        if path.startswith('/host/') and not path.startswith('/host/{}/'.format(self.held)):
            code, body = 404, b'This netdata does not maintain a database for host: ' + path.split('/')[2].encode()
        elif path.startswith('/api/v1/data?chart=netdata.uptime') and self.uptime is not None:
            code, body = 200, json.dumps({'labels': ['time', 'uptime'], 'data': [[1000, self.uptime]]}).encode()
        elif self.path.startswith('/nothing/'):
            code, body = 404, b'not found'
        else:
            code, body = 200, b'{"charts": {}}'
        self.send_response(code)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_a_child_node_the_parent_does_not_hold_is_named_as_such():
    """A job on 'parent:port/host/<child>' with a child name the parent does not know gets a 404
    whose page says why; the error says it too, not a bare 404."""
    with serving(_Parent) as host:
        assert NetdataApi(host + '/host/child-1').charts() == {}
        with pytest.raises(NetdataError) as e:
            NetdataApi(host + '/host/child-2').charts()
        assert str(e.value).endswith("/host/child-2/api/v1/charts answered HTTP 404: it holds no node 'child-2' (a "
                                     "child is named by its hostname or machine GUID, as the parent's /api/v1/info "
                                     "lists them in mirrored_hosts)"), e.value
        assert "no node 'child-2'" in e.value.reason and e.value.status == 404
        with pytest.raises(NetdataError) as e:   # a parent behind a reverse proxy's path: the node's name alone
            NetdataApi(host + '/netdata/host/child-2').charts()
        assert "it holds no node 'child-2' (" in str(e.value), e.value
        with pytest.raises(NetdataError) as e:   # a 404 of another kind stays as it was
            NetdataApi(host)._get_json('/nothing/here')
        assert str(e.value).endswith('/nothing/here answered HTTP 404'), e.value
        # the name answered before: the parent restarted, and the child has not reconnected yet
        child = NetdataApi(host + '/host/child-1')
        child.charts()
        _Parent.held = None
        try:
            with pytest.raises(NetdataError) as e:
                child.charts()
        finally:
            _Parent.held = 'child-1'
        assert str(e.value).endswith("answered HTTP 404: it holds no node 'child-1' now, as it did before: the child "
                                     "is not streaming to it (it stopped, or has not reconnected since one of them "
                                     "restarted)"), e.value


def test_a_child_named_outside_ascii_is_read_through_its_parent():
    """A child whose hostname is 'büro': its path goes in the request encoded, as a browser
    sends it. Sent as it was, the request failed before it left ('cannot reach'), and left the
    link mid-request, so every later one failed too."""
    with serving(_Parent) as host:
        _Parent.held = 'b%C3%BCro'
        try:
            api = NetdataApi(host + '/host/b\u00fcro')
            assert [api.charts() for _ in range(3)] == [{}] * 3
        finally:
            _Parent.held = 'child-1'


def test_a_job_started_with_its_parent_waits_for_a_child_it_modelled_before(tmp_path, logger):
    """python.d restarts with its parent, which lists a child only once the child reconnects
    (8-70 s on Debian's 1.37): a job with saved models of that child says it waits for it, once,
    rather than calling the child's name unknown; after CHILD_BACK_SECONDS it is an error."""
    now = [1000.0]
    models = tmp_path / 'models'
    with serving(_Parent) as host:
        _Parent.held = None
        try:
            def start(saved, name=''):
                job = models / (('with' if saved else 'without') + name)
                (job / 'job').mkdir(parents=True)
                if saved:
                    (job / 'job' / 'system.cpu.pkl').write_bytes(b'')
                cfg = parse_job_config({'host': host + '/host/child-1', 'models_dir': str(job), 'job_name': 'job'})
                det = AnomalyDetector(cfg, logger, trainer=ThreadTrainer(), clock=lambda: now[0])
                det.list_wait = None
                det.start()
                for _ in range(3):
                    det.step()
                    now[0] += 1
                return det

            det = start(saved=True)
            assert not logger.errors(), logger.errors()
            waits = [m for _, m in logger.lines if 'it lists a child once the child has reconnected' in m]
            assert len(waits) == 1 and "it holds no node 'child-1' (" in waits[0], logger.lines
            now[0] += timings.CHILD_BACK_SECONDS
            det.step()
            assert any("cannot list charts" in m and "no node 'child-1'" in m for m in logger.errors()), logger.lines
            # a child it modelled before: away (stopped, not reconnected), not a name it does not know
            assert all("a child is named by" not in m for m in logger.errors()), logger.errors()
            assert any("no node 'child-1' now, as it did before: the child is not streaming to it" in m
                       for m in logger.errors()), logger.errors()
            det.close()
            logger.lines.clear()
            det = start(saved=False)   # never modelled: a name it does not know, at once, in one line
            said = [m for m in logger.errors() if "no node 'child-1' (a child is named by" in m]
            assert len(said) == 1 and said[0].startswith('cannot list charts: '), logger.lines
            _Parent.held = 'child-1'   # the child connects: its values are read, and that is said
            det.step()
            assert any(m.startswith('agent ') and m.endswith('/host/child-1 answers again') for _, m in logger.lines), \
                logger.lines
            _Parent.held = None
            det.close()
            # never modelled, but the parent started 20 s ago (the first start after an install
            # restarted it): its children have not all reconnected yet
            for uptime, waits in ((20, True), (3600, False)):
                _Parent.uptime = uptime
                logger.lines.clear()
                det = start(saved=False, name=str(uptime))
                said = [m for _, m in logger.lines if 'it lists a child once the child has reconnected' in m]
                if waits:
                    assert not logger.errors() and len(said) == 1 and 'the parent started 20 s ago' in said[0], \
                        logger.lines
                    now[0] += timings.CHILD_BACK_SECONDS
                    det.step()
                assert any("no node 'child-1' (a child is named by" in m for m in logger.errors()), logger.lines
                det.close()
        finally:
            _Parent.held, _Parent.uptime = 'child-1', None


class _Refusing(BaseHTTPRequestHandler):
    """An agent that refuses this reader, as Netdata's web server does: 1.37 with 403, 2.x with
    451 (its [web] 'allow ... from' ACL) or 412 (an anonymous reader where a signed-in one is
    needed), /api/v1/info with an empty 503 while 2.x starts; or a proxy's own 403 page."""
    ANSWERS = {'/acl-1.37': (403, b'You are not allowed to access this resource.'),
               '/acl-2.x': (451, b'You need to be authorized to access this resource'),
               '/bearer': (412, b'You need to be authorized to access this resource'),
               '/starting': (503, b''),
               '/proxy': (403, b'<html><body>403 Forbidden</body></html>'),
               '/proxy-text': (403, b'Forbidden by policy\n'),
               '/broken': (500, b'You need to be authorized to access this resource')}

    def log_message(self, *a):
        pass

    def do_GET(self):
        code, body = self.ANSWERS[self.path.split('?')[0].split('/api/')[0]]
        self.send_response(code)
        self.send_header('Content-Type', 'text/plain')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _ShortUrls(BaseHTTPRequestHandler):
    """An agent behind a proxy that takes request lines of 8 KB at most (nginx's default buffers),
    or an agent of the same limit: a longer one is answered 414."""
    protocol_version = 'HTTP/1.1'
    asked = []

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.asked.append(self.path)
        code, body = (414, b'Request-URI Too Large') if len(self.path) > 8192 else (200, b'{"system.cpu": {}}')
        self.send_response(code)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_allmetrics_asks_for_every_chart_where_the_filter_makes_the_url_too_long():
    """500 network interfaces' charts make a 10 KB filter: an agent or proxy that refuses such
    a URL still answers without it, and the job must read that, not fail every step."""
    charts = frozenset('net_packets.veth{:04d}'.format(i) for i in range(500))
    _ShortUrls.asked = []
    with serving(_ShortUrls) as host:
        api = NetdataApi(host)
        assert api.allmetrics(charts=charts) == {'system.cpu': {}}
        assert api.allmetrics(charts=charts) == {'system.cpu': {}}
        api.close()
    assert [len(p) > 8192 for p in _ShortUrls.asked] == [True, False, False]   # refused once, then unfiltered
    assert '&filter=' not in _ShortUrls.asked[-1]


def test_an_agent_refusing_the_reader_is_said_in_its_words_and_what_they_mean():
    """Netdata 2.x refuses with statuses 1.37 never used (451, 412): a bare 'answered HTTP 451'
    sends a person to look it up; the agent's own words and their meaning are said."""
    told = {}
    with serving(_Refusing) as host:
        for path in _Refusing.ANSWERS:
            with pytest.raises(NetdataError) as e:
                NetdataApi(host + path).charts()
            told[path] = str(e.value).split(' answered ', 1)[1]
            assert e.value.status == _Refusing.ANSWERS[path][0]
    assert told['/acl-2.x'] == ("HTTP 451: You need to be authorized to access this resource (Netdata 2.x: its "
                                "[web] 'allow ... from' settings keep this address out)")
    assert told['/acl-1.37'] == ("HTTP 403: You are not allowed to access this resource. (its [web] 'allow ... from' "
                                 "settings keep this address out)")
    assert told['/bearer'].startswith('HTTP 412: You need to be authorized to access this resource (it wants a '
                                      'signed-in reader, as Netdata 2.x does with bearer token protection on')
    assert told['/starting'] == 'HTTP 503 (Netdata 2.x answers so while it starts: it should answer in a few seconds)'
    assert told['/proxy'] == 'HTTP 403'                            # a proxy's page: neither quoted nor explained
    assert told['/proxy-text'] == 'HTTP 403: Forbidden by policy'  # another's words: as they are
    assert told['/broken'] == 'HTTP 500'                           # other statuses as before


def _dated(path, own_charts=True):
    """The recording at ``path`` with its chart list dating each chart over the whole recording,
    as an agent's does (the history the job reads from the list), and listing one of the
    agent's own netdata.* charts, as an agent past its first seconds does (``own_charts``)."""
    from conftest import _chart
    with open(os.path.join(path, 'charts.json')) as f:
        body = json.load(f)
    with open(os.path.join(path, 'recording.json')) as f:
        meta = json.load(f)
    if own_charts:
        body['charts'].setdefault('netdata.server_cpu', _chart('netdata.server_cpu', ['user', 'system']))
    for c in body['charts'].values():
        c.update(first_entry=meta['start'], last_entry=meta['end'])
    with open(os.path.join(path, 'charts.json'), 'w') as f:
        json.dump(body, f)
    return path


def _empty_scope_said(path, age):
    """``(errors, waits)``: what a job whose charts_regex matches nothing logs of it in its first
    three steps, started ``age`` s into the recording at ``path``."""
    from collector.replay import Recording, ReplayClock, ReplayServer
    rec = Recording(str(path))
    server = ReplayServer(rec, ReplayClock(rec.start + age, stepped=True)).start()
    log = ListLogger()
    try:
        det = make_detector(server, log, charts_regex='nothing\\.here')
        det.start()
        for _ in range(3 + timings.SCOPE_WAIT_SECONDS):   # (an empty scope is looked at once more, seconds on)
            det.step()
        det.close()
    finally:
        server.stop()
    errors = [m for m in log.errors() if 'no charts match' in m]
    waits = [m for _, m in log.lines if 'no charts match' in m and ' yet: the agent ' in m]
    return errors, waits


def test_no_chart_in_scope_on_an_agent_seconds_old_is_a_wait_not_an_error(recording, tmp_path):
    """python.d starts the job with its agent, which lists its charts as its collectors start:
    an empty scope then is said once as a wait. On an agent with history it is an error."""
    dated = _dated(shutil.copytree(recording, str(tmp_path / 'dated')))
    for age, error in ((20, False), (600, True)):
        errors, waits = _empty_scope_said(dated, age)
        assert (len(errors), len(waits)) == ((1, 0) if error else (0, 1)), (errors, waits)
        assert all('the agent has collected for 20 s and lists its charts as its collectors start' in m
                   for m in waits), waits
        # the job runs on (python.d says 'check success' next): the line says what it does meanwhile
        assert all(e.endswith('charts that match are modelled when they appear') for e in errors), errors
    # an agent in its first seconds, with history kept, lists only some of its charts, none of its own
    # yet, and answers for its uptime with the last value its earlier run stored (not replayed here)
    starting = _dated(shutil.copytree(recording, str(tmp_path / 'starting')), own_charts=False)
    errors, waits = _empty_scope_said(starting, 600)
    assert not errors and len(waits) == 1 and waits[0].endswith(
        'yet: the agent is starting (it lists none of its own netdata.* charts yet), and lists its charts as its '
        'collectors start; looking again'), (errors, waits)


def test_no_chart_in_scope_on_an_agent_just_restarted_with_its_history_is_a_wait(recording, tmp_path):
    """An agent restarted keeps its history (dbengine) and lists its charts as its collectors
    start: a job started with it (no models saved, as a plugins.d plugin's first run) says the
    empty scope once as a wait, by the agent's own uptime; five minutes into its run, an error."""
    for restart, error in ((590, False), (300, True)):
        dated = _dated(_restarted_at(recording, tmp_path / str(restart), START + restart))   # 600 s of history
        errors, waits = _empty_scope_said(dated, 600)
        assert (len(errors), len(waits)) == ((1, 0) if error else (0, 1)), (errors, waits)
        assert all('the agent started 10 s ago' in m for m in waits), waits
    # in its next seconds it lists netdata.uptime, but a query of it matches no value yet
    dated = _dated(_restarted_at(recording, tmp_path / 'unanswered', START + 300))
    os.remove(os.path.join(dated, 'data', 'netdata.uptime.json.gz'))
    errors, waits = _empty_scope_said(dated, 600)
    assert not errors and len(waits) == 1 and 'the agent started 0 s ago' in waits[0], (errors, waits)


def test_a_first_chart_list_without_the_scope_is_looked_at_again_before_it_is_an_error(recording, tmp_path):
    """A job started with its agent (a plugins.d plugin's first run, no models saved) may read
    a chart list of the agent's first second, which lists few charts, none of its scope: it
    logged an ERROR there, then modelled the charts a minute later. It looks again seconds on."""
    from collector.replay import Recording, ReplayClock, ReplayServer
    rec = Recording(_dated(shutil.copytree(recording, str(tmp_path / 'dated'))))
    server = ReplayServer(rec, ReplayClock(rec.start + 600, stepped=True)).start()
    log = ListLogger()
    SwitchableApi.hidden = {'system.cpu', 'system.forks', 'system.load', 'system.ram'}
    try:
        det = make_detector(server, log)
        det.start()
        det.step()
        server.clock.advance(1)
        SwitchableApi.hidden = set()   # the collectors list theirs a second on
        for _ in range(30):
            det.step()
            server.clock.advance(1)
            if det.models:
                break
            time.sleep(0.05)
        # (within seconds: the next chart list would have come a discovery, 60 steps, on)
        assert sorted(det.models) == ['system.cpu', 'system.forks', 'system.load', 'system.ram'], log.lines
        assert not log.errors(), log.lines
        det.close()
    finally:
        SwitchableApi.hidden = set()
        server.stop()


def test_an_uptime_an_agent_stored_before_it_restarted_is_not_taken_for_its_uptime():
    """In its first seconds a restarted agent (1.37) answers for netdata.uptime with the value
    its earlier run stored last, a few seconds before its chart list's time (measured: the
    row of 3 s before, 81 s, then 'No metrics', null, 1, 2 ...)."""
    from collector.startup import agent_uptime

    class Agent:
        listed_every = {}

        def __init__(self, rows):
            self.rows = rows

        def data(self, chart, after):
            return ['uptime'], self.rows
    now = 1796639391
    assert agent_uptime(Agent([[now - 3, 81]]), now=now) == 0.0       # the earlier run's
    assert agent_uptime(Agent([[now - 1, 4000]]), now=now) == 4000.0  # this run's, a second behind the list
    assert agent_uptime(Agent([[now - 3, 81]])) == 81.0               # no time to judge it by
    assert agent_uptime(Agent([[now, None]]), now=now) == 0.0         # listed, not collected yet
    slow = Agent([[now - 6, 4000]])
    slow.listed_every = {'netdata.uptime': 5}                         # an agent collecting every 5 s
    assert agent_uptime(slow, now=now) == 4000.0


def test_a_chart_seconds_short_of_train_min_n_secs_is_trained_seconds_later_not_at_the_next_discovery(
        recording, logger):
    """A job started on an agent that holds a few seconds less than train_min_n_secs waited for
    the next chart listing, a minute on, while an incident begun meanwhile went into its first
    training window as normal."""
    from collector.replay import Recording, ReplayClock, ReplayServer
    rec = Recording(recording)
    server = ReplayServer(rec, ReplayClock(rec.start + 290, stepped=True)).start()
    try:
        det = make_detector(server, logger, train_min_n_secs=300)
        det.start()
        started = []   # the step each training started at
        for _ in range(150):
            det.step()
            if det.training_step not in started:
                started.append(det.training_step)
            det.trainer.wait(30)   # each training reads the history of the step that started it
            server.clock.advance(1)
            if len(det.models) == 4:
                break
        waits = [re.search(r'waiting for 300 s of history before training \(train_min_n_secs; (\d+)', m)
                 for _, m in logger.lines]
        least = min(int(w.group(1)) for w in waits if w)   # the history of the shortest chart, 285-290 s
        assert len(det.models) == 4 and least < 300, logger.lines
        # retried the step after it has 300 s (at the next discovery, 60 steps on, before)
        assert len(started) == 2 and started[1] - started[0] == 1 + 300 - least, (started, logger.lines)
        det.close()
    finally:
        server.stop()


def test_waiting_charts_due_within_a_discovery_are_retried_together_the_first_group_with_its_chart_listing(
        replay, logger):
    """Charts that will have their history at other steps are retried in groups (one training
    for those due within a discovery of the first of them, at the last), and a chart listing is
    taken at the first group's step rather than at the next discovery."""
    det = make_detector(replay, logger)
    every = det.discover_every
    det.training_step = det.steps = 0
    det._retry_when_grown({'a': 10, 'b': 20, 'c': every + 15, 'd': 2 * every + 19, 'e': 2 * every + 20})
    assert {m: r.step for m, r in det.retry_at.items()} == {
        'a': 20, 'b': 20, 'c': every + 15, 'd': 2 * every + 20, 'e': 2 * every + 20}
    assert det.next_discovery.step == 20
    det.close()


def test_a_scope_charts_to_exclude_empties_names_charts_to_exclude_not_the_regex(replay, logger):
    """charts_regex matches charts, charts_to_exclude takes them all out: the line names the
    exclusion and what it took, so the reader does not look for the fault in the regex."""
    det = make_detector(replay, logger, charts_regex=r'system\.(cpu|load)$', charts_to_exclude='system.*')
    det.start()
    for _ in range(3 + timings.SCOPE_WAIT_SECONDS):
        det.step()
    said = [m for _, m in logger.lines if 'no custom_models are set' in m]
    assert said and all(m.startswith("charts_to_exclude 'system.*' leaves none of the 2 charts charts_regex "
                                     "'system\\\\.(cpu|load)$' matches (system.cpu, system.load)") for m in said), said
    det.close()


def test_values_that_stand_still_are_not_scored_as_new_and_are_said_once(replay, logger):
    """A parent answers for a child whose stream stopped with the child's last values, for as
    long as it lasts: after STILL_SECONDS they stop being scored (the charts keep the last
    values for a minute, then go empty), said once, and again when values move on."""
    det = make_detector(replay, logger)
    run_until_trained(det, replay)
    for _ in range(5):
        assert det.step().fresh
        replay.clock.advance(1)
    now = [1000.0]
    det.clock = lambda: now[0]
    fresh = []
    for _ in range(30):   # the agent's clock stands still; the job's goes on
        now[0] += 1
        fresh.append(det.step().fresh)
    limit = timings.STILL_SECONDS
    assert all(fresh[:limit - 1]) and not any(fresh[limit + 1:]), fresh
    said = [m for m in logger.errors() if m.startswith('no new values from')]
    assert len(said) == 1 and 'a child whose stream to its parent stopped' in said[0], said
    # (the time its values stand at, as a person reads it, not the agent's epoch seconds)
    assert "last collection stands at {} UTC)".format(
        time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(replay.clock.now()))) in said[0], said
    replay.clock.advance(40)   # the child streams again
    now[0] += 1
    assert det.step().fresh
    assert any(m.startswith('values from {} move on again, after'.format(replay.host)) for _, m in logger.lines)
    det.close()

    # a custom model on another node: the collection intervals of its charts are not listed
    # here (a 30 s chart would read as standing still between its collections), so not judged
    other = replay.host.replace('127.0.0.1', 'localhost')
    across = make_detector(replay, logger, charts_regex='system\\.load',
                           custom_models=[{'name': 'far_cpu', 'dimensions': '{}::system.cpu|user'.format(other)}])
    run_until_trained(across, replay)
    across.clock = lambda: now[0]
    fresh = []
    for _ in range(30):
        now[0] += 1
        fresh.append(across.step().fresh)
    assert all(fresh), fresh
    across.close()


def test_saved_models_of_gone_charts_are_removed_only_once_the_agent_has_listed_all(replay, logger, tmp_path):
    """A chart gone while the job was stopped (days ago) takes its saved model with it, but
    only from a chart list read once the agent has listed all it will: after a weekend off
    every file is days old, and a restarted agent that lists none (or some) of its charts yet
    must not cost the job the models of the charts it lists in a moment."""
    models = str(tmp_path / 'models')
    first = make_detector(replay, logger, models_dir=models)
    run_until_trained(first, replay)
    first.close()
    job_dir = os.path.join(models, 'anomalies')
    for name in os.listdir(job_dir):   # all saved days ago, and one chart gone since
        if name.endswith('.json') and not name.startswith('@'):
            path = os.path.join(job_dir, name)
            meta = json.loads(open(path).read())
            meta['saved_at'] -= 3 * 86400
            open(path, 'w').write(json.dumps(meta))
            if name == 'system.cpu.json':
                # one chart gone, one the agent still lists that charts_regex no longer takes, and
                # a custom model taken out of custom_models (its columns are not all its own chart's)
                columns = meta['columns']
                for other in ('apps.gone', 'apps.cpu', 'cpu_pair'):
                    meta['model_id'] = other
                    meta['columns'] = columns if other == 'cpu_pair' else [
                        c.replace('::system.cpu|', '::{}|'.format(other)) for c in columns]
                    open(os.path.join(job_dir, other + '.json'), 'w').write(json.dumps(meta))
                    shutil.copy(os.path.join(job_dir, 'system.cpu.pkl'), os.path.join(job_dir, other + '.pkl'))
    now = [0.0]
    SwitchableApi.hidden = {c for c in NetdataApi(replay.host).charts() if c.startswith('system.')}
    try:
        again = make_detector(replay, logger, models_dir=models)
        again.clock = lambda: now[0]
        again.created = 0.0
        again.start()
        for _ in range(12):   # a minute of an agent listing none of the job's charts
            now[0] += 5
            again.step()
            replay.clock.advance(1)
    finally:
        SwitchableApi.hidden = set()
    assert 'system.cpu.pkl' in os.listdir(job_dir) and 'apps.gone.pkl' in os.listdir(job_dir)
    for _ in range(40):   # the charts are listed; two minutes into the job, the gone one's files go
        now[0] += 5
        again.step()
        replay.clock.advance(1)
        if 'apps.gone.pkl' not in os.listdir(job_dir):
            break
    assert 'apps.gone.pkl' not in os.listdir(job_dir) and 'system.cpu.pkl' in os.listdir(job_dir)
    assert sorted(again.models) == sorted(first.models) and again.trainings == 0
    assert [m for _, m in logger.lines if m == 'removed 1 saved model of charts the agent no longer lists: apps.gone']
    assert 'apps.cpu.pkl' not in os.listdir(job_dir)
    assert [m for _, m in logger.lines if m == 'removed 1 saved model of charts the job no longer models '
                                               '(charts_regex, charts_to_exclude): apps.cpu']
    assert 'cpu_pair.pkl' not in os.listdir(job_dir)
    assert [m for _, m in logger.lines if m == 'removed 1 saved custom model no longer in custom_models: cpu_pair']
    again.close()


def test_a_restarted_agent_that_lists_no_modelled_chart_yet_is_waited_for_and_the_saved_models_load_soon(
        replay, logger, tmp_path):
    """As a plugins.d plugin the job starts with its restarted agent, which kept its history
    (dbengine) but lists its charts only as its collectors start: a job with saved models
    says it waits (no ERROR), and loads them within seconds of their charts being listed,
    not at a retry half a minute on."""
    models = str(tmp_path / 'models')
    first = make_detector(replay, logger, models_dir=models)
    run_until_trained(first, replay)
    first.close()
    listed = set(NetdataApi(replay.host).charts())
    SwitchableApi.hidden = {c for c in listed if c.startswith('system.')}
    try:
        again = make_detector(replay, logger, models_dir=models)
        again.start()
        for _ in range(3):
            again.step()
            replay.clock.advance(1)
        assert not again.models
    finally:
        SwitchableApi.hidden = set()
    for n in range(1, 20):
        again.step()
        replay.clock.advance(1)
        if again.models:
            break
    assert sorted(again.models) == sorted(first.models) and again.trainings == 0
    assert n <= timings.SCOPE_WAIT_SECONDS + 1, n
    assert not [m for m in logger.errors() if 'no charts match' in m], logger.lines
    assert [m for _, m in logger.lines if 'lists none of the charts modelled before' in m]
    again.close()


class TamperedApi(SwitchableApi):
    """The real client, its allmetrics answer changed by ``tamper`` (a hostile or broken agent)."""
    tamper = None

    def allmetrics(self, timeout=None, charts=None):
        body = super().allmetrics(timeout, charts)
        if TamperedApi.tamper is not None:
            self.shown = body = TamperedApi.tamper(json.loads(json.dumps(body)))
        return body


@pytest.fixture
def tampered(replay, logger):
    det = AnomalyDetector(parse_job_config({'host': replay.host, 'train_n_secs': 600, 'train_every_n': 1000}),
                          logger, trainer=ThreadTrainer(), api_factory=lambda c, h: TamperedApi.from_config(c, h))
    det.list_wait = None
    det.start()
    while not det.models:   # trained at one agent time however slow the machine: the steps after it read
        det.step()          # the same rows everywhere (a natural excursion of the synthetic system.ram
        det.trainer.wait()  # came into a test's window on emulated ARM, and flagged)
    yield det
    TamperedApi.tamper = None
    det.close()


def _steps(det, replay, n):
    out = []
    for _ in range(n):
        out.append(det.step())
        replay.clock.advance(1)
    return out


def _set(chart, key, value):
    def tamper(body):
        body[chart][key] = value(body[chart][key]) if callable(value) else value
        return body
    return tamper


def test_answers_set_back_before_every_stored_row_say_when_the_models_score_again(tampered, replay, logger):
    """Answers whose time went back 10 minutes (a clock set back) while the stored rows the
    refill reads are all after it: the charts stood still for a dozen steps while the log
    said the features start again from the stored rows. It says when they score again."""
    _steps(tampered, replay, 5)

    def set_back(body):
        for entry in body.values():
            entry['last_updated'] -= 600
        return body
    TamperedApi.tamper = set_back
    steps = _steps(tampered, replay, tampered.need + 2)
    assert any("clock went back 599 s in one step" in m for _, m in logger.lines), logger.lines
    assert any(m == "no stored row comes before the agent's time now: the models score again once {} steps came "
               "in".format(tampered.need) for _, m in logger.lines), logger.lines
    assert not steps[0].scores and steps[-1].scores


def test_one_charts_last_updated_far_ahead_is_not_a_gap_for_every_chart(tampered, replay, logger):
    TamperedApi.tamper = _set('system.load', 'last_updated', lambda t: t + 10 ** 6)
    steps = _steps(tampered, replay, 8)
    TamperedApi.tamper = None
    steps += _steps(tampered, replay, 4)
    assert all(set(s.scores) == {'system.cpu', 'system.forks', 'system.load', 'system.ram'} for s in steps)
    assert not any('clock' in m for _, m in logger.lines), logger.lines


def test_a_chart_the_agent_answers_with_its_last_values_long_after_is_not_scored_on_them(tampered, replay, logger):
    """A plugin that died: Netdata 1.37 goes on listing its chart and answering its last values
    with its last collection's time. Scored on, the frozen values read as a quiet chart, then
    were trained in as normal, with no word; now it is skipped, said once, until it moves on.
    Back, its features start again from its rows since: the change across the stall read as one
    step's, and flagged."""
    frozen = {}

    def stalled(body):
        frozen.setdefault('cpu', body['system.cpu'])
        body['system.cpu'] = frozen['cpu']
        return body
    TamperedApi.tamper = stalled
    steps = _steps(tampered, replay, 90)
    TamperedApi.tamper = None
    after = _steps(tampered, replay, tampered.need + 1)
    assert all('system.cpu' in s.scores for s in steps[:25])   # a chart late for seconds is no stalled one
    assert not any('system.cpu' in s.scores for s in steps[-8:]) and 'system.cpu' in after[-1].scores
    # back, scored on rows of its own since, not on a change across the stall read as one step's
    assert not any(s.scores.get('system.cpu', (0, 0))[1] for s in after)
    said = [(level, m) for level, m in logger.lines if "'system.cpu'" in m]
    assert said[0][0] == 'WARNING' and said[0][1].startswith(
        "model 'system.cpu': its chart has not been collected for 3") and 'its collector stopped' in said[0][1], said
    assert said[1:] == [('INFO', "model 'system.cpu': values are back")], said
    assert not logger.errors()


def test_the_agents_clock_is_its_newest_chart_unless_that_one_is_far_ahead_of_the_rest():
    from collector.netdata_api import agent_clock
    t = 1_800_000_000
    assert agent_clock([t, t - 1, t + 10 ** 6]) == t
    # charts collected every 5 minutes lag the one collected every second: its time is the clock
    assert agent_clock([t, t - 299, t - 120, t - 280]) == t
    assert agent_clock([None, 'x', float('nan')]) == 0


def test_the_agents_clock_set_back_is_said_and_the_models_score_on(tampered, replay, logger):
    _steps(tampered, replay, 3)
    replay.clock.advance(-120)
    steps = _steps(tampered, replay, 12)
    assert any(re.search(r"clock went back 119 s in one step", m) for _, m in logger.lines), logger.lines
    assert steps[-1].scores and all(f == 0 for _, f in steps[-1].scores.values())


def test_an_answer_without_the_charts_is_one_line_and_keeps_the_agents_clock(tampered, replay, logger):
    TamperedApi.tamper = lambda body: {}
    empty = _steps(tampered, replay, 3)
    TamperedApi.tamper = None
    back = _steps(tampered, replay, 3)
    assert not any(s.scores for s in empty) and all(s.scores for s in back)
    said = [m for _, m in logger.lines if 'current values' in m]
    assert said == ["no current values for any of the 4 models' charts, skipping the step",
                    'current values are back'], logger.lines
    assert logger.errors() == ["no current values for any of the 4 models' charts, skipping the step"]
    assert not any('clock' in m or 'time' in m for _, m in logger.lines), logger.lines   # no wall clock mixed in


def test_an_infinity_in_one_chart_costs_that_chart_only(tampered, replay, logger):
    def inf_cpu(body):
        for d in body['system.cpu']['dimensions'].values():
            d['value'] = float('inf')
        return body
    TamperedApi.tamper = inf_cpu
    steps = _steps(tampered, replay, 3)
    assert all(set(s.scores) == {'system.forks', 'system.load', 'system.ram'} for s in steps)
    assert any("model 'system.cpu': no current values" in m for m in logger.errors()), logger.lines


def test_an_infinity_read_steps_ago_is_no_reading_when_the_models_are_laid_out_again(tampered, replay, logger):
    """The answers of the last steps are kept to refill the rows when the models change; an
    Infinity in them must read as the step read it (no reading), not come back as a value
    that makes its chart the most unusual there is when an unrelated chart goes away."""
    def inf_ram(body):
        for d in body['system.ram']['dimensions'].values():
            d['value'] = float('inf')
        return body
    _steps(tampered, replay, 30)
    TamperedApi.tamper = inf_ram
    _steps(tampered, replay, 2)
    TamperedApi.tamper = None
    SwitchableApi.hidden = {'system.forks'}
    try:
        steps = []
        while 'system.forks' in tampered.models:   # gone from two listings: its model is removed
            tampered.next_discovery = Due(0, tampered.steps)
            steps += _steps(tampered, replay, 1)
            assert len(steps) < 5
    finally:
        SwitchableApi.hidden = set()
    steps += _steps(tampered, replay, 12)
    ram = [s.scores['system.ram'] for s in steps if 'system.ram' in s.scores]
    assert len(ram) >= 12 and not any(flag for _, flag in ram), ram


class _NanValue(BaseHTTPRequestHandler):
    BODY = (b'{"system.cpu": {"last_updated": 5, "dimensions": {"user": {"name": "user", "value": NaN}}},'
            b' "system.ram": {"last_updated": 5, "dimensions": {"used": {"name": "used", "value": Infinity}}},'
            b' "system.load": {"last_updated": 5, "dimensions": {"load1": {"name": "load1", "value": 0.5}}}}')

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header('Content-Length', str(len(self.BODY)))
        self.end_headers()
        self.wfile.write(self.BODY)


def test_a_nan_literal_in_one_chart_leaves_the_rest_of_the_answer_readable():
    with serving(_NanValue) as host:
        body = NetdataApi(host).allmetrics()
    assert body['system.load']['dimensions']['load1']['value'] == 0.5
    assert body['system.ram']['dimensions']['used']['value'] == float('inf')


class _CNonFinite(_NanValue):
    """A value as C's printf writes an infinite or undefined number, which Netdata's allmetrics
    prints as it is: not JSON."""
    BODY = (b'{"system.cpu": {"last_updated": 5, "dimensions": {"user": {"name": "user", "value": -nan},'
            b' "inf": {"name": "inf", "value": 1}}},'
            b' "system.ram": {"last_updated": 5, "dimensions": {"used": {"name": "used", "value":inf }}},'
            b' "system.load": {"last_updated": 5, "dimensions": {"load1": {"name": "load1", "value": 0.5}}}}')


def test_a_bare_inf_or_nan_in_one_chart_leaves_the_rest_of_the_answer_readable():
    with serving(_CNonFinite) as host:
        api = NetdataApi(host)
        body = api.allmetrics()
    assert body['system.load']['dimensions']['load1']['value'] == 0.5
    assert body['system.ram']['dimensions']['used']['value'] == float('inf')
    assert body['system.cpu']['dimensions']['user']['value'] != body['system.cpu']['dimensions']['user']['value']   # nan
    assert body['system.cpu']['dimensions']['inf']['value'] == 1   # a name is a name
    assert json_loads(api.last_raw)['system.load']['dimensions']['load1']['value'] == 0.5



class _NotUtf8(_NanValue):
    """A dimension name in Latin-1 (Netdata 1.37 writes a name's bytes as they are): the rest of
    the answer is still UTF-8."""
    BODY = (b'{"system.cpu": {"last_updated": 5, "dimensions": {"user": {"name": "caf\xe9", "value": 1}}},'
            b' "system.load": {"last_updated": 5, "dimensions": {"load1": {"name": "load1", "value": 0.5}}}}')


def test_a_name_not_in_utf8_in_one_chart_leaves_the_rest_of_the_answer_readable():
    with serving(_NotUtf8) as host:
        body = NetdataApi(host).allmetrics()
    assert body['system.load']['dimensions']['load1']['value'] == 0.5
    assert body['system.cpu']['dimensions']['user'] == {'name': 'caf\ufffd', 'value': 1}


def test_an_answer_nested_deeper_than_the_reader_goes_is_not_json_rather_than_a_crash():
    # orjson stops at 1024 levels, Python's reader at its recursion limit (RecursionError, which
    # no caller takes for an unreadable answer: a training of every chart was lost to one)
    with pytest.raises(ValueError):
        json_loads(b'{"labels": ["time", "a"], "data": ' + b'[' * 100000 + b']' * 100000 + b'}')


class _NotText(_NanValue):
    """A chart id escaped in JSON as half of a UTF-16 pair: valid JSON, but no text to send back."""
    BODY = (b'{"charts": {"system.bad\\udcff": {"dimensions": {"a": {"name": "a"}}},'
            b' "system.load": {"dimensions": {"load1": {"name": "load1"}}}}}')


def test_a_chart_id_that_is_not_text_is_not_listed_so_the_steps_can_still_ask_for_the_others():
    with serving(_NotText) as host:
        api = NetdataApi(host)
        charts = api.charts()
        assert charts == {'system.load': ['load1']}
        api.allmetrics(charts=set(charts))   # the filter of the charts modelled: it is sent as UTF-8


class _LongId(_NanValue):
    BODY = (b'{"charts": {"system.' + b'x' * 10000 + b'": {"dimensions": {"a": {"name": "a"}}},'
            b' "system.' + b'y' * 193 + b'": {"dimensions": {"a": {"name": "a"}}}}}')


def test_a_chart_id_longer_than_any_the_agent_makes_is_not_listed():
    """Netdata cuts a chart id at 200 characters. A longer one (a proxy's, a hostile agent's)
    made its model's DIMENSION line longer than the 1024 bytes the agent reads as one line: it
    read the rest as a line of its own, no keyword, and stopped reading the plugin (under
    python.d.plugin, every module of it)."""
    with serving(_LongId) as host:
        assert list(NetdataApi(host).charts()) == ['system.' + 'y' * 193]

def _proxy(target, answer):
    """A proxy to ``target`` whose answers pass through ``answer(path, status, body)``, which
    gives back the ``(status, body)`` to send."""
    import urllib.error
    import urllib.request

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            try:
                with urllib.request.urlopen('http://{}{}'.format(target, self.path)) as r:
                    code, body = r.status, r.read()
            except urllib.error.HTTPError as e:
                code, body = e.code, e.read()
            code, body = answer(self.path, code, body)
            self.send_response(code)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)
    return Handler


def _failing_data(target, chart, status=500):
    """A proxy to ``target`` whose /api/v1/data answers HTTP ``status`` for ``chart``."""
    def answer(path, code, body):
        if path.startswith('/api/v1/data') and 'chart={}&'.format(chart) in path:
            return status, b'oops'
        return code, body
    return _proxy(target, answer)


def _odd_rows(target, edits):
    """A proxy to ``target`` whose /api/v1/data answer for each chart in ``edits`` has its
    rows passed through that chart's function."""
    def answer(path, code, body):
        for chart, edit in edits.items():
            if path.startswith('/api/v1/data') and 'chart={}&'.format(chart) in path and code == 200:
                answer = json.loads(body)
                answer['data'] = edit(answer['data'])
                return code, json.dumps(answer).encode()
        return code, body
    return _proxy(target, answer)


def _times_broken(rows):
    rows[len(rows) // 3][0] = 'x'
    rows[len(rows) // 2][0] = None
    return rows


def _value_too_large(rows):
    rows[len(rows) // 2][1] = 10 ** 400   # a JSON number no float holds
    return rows


def _value_a_string(rows):
    rows[len(rows) // 2][1] = 'abc'
    return rows


@pytest.mark.parametrize('reader', ['netdata-pandas', 'direct'])
def test_rows_without_a_time_or_with_a_value_that_is_not_a_number_cost_only_those(replay, logger, reader,
                                                                                  monkeypatch):
    """An agent's window answer with a row whose time is not a number, a value too large for
    a float or a string: the rows without a time are left out, the odd values are read as the
    value before, each said in the log with its chart, and every chart trains on all its
    dimensions. Before, a row without a time stopped every model's training at every retry,
    an odd value cost its chart (read directly) or, silently, its dimension (netdata-pandas)."""
    if reader == 'direct':   # as on Python 3.13, where netdata-pandas' trio does not import
        monkeypatch.setitem(sys.modules, 'netdata_pandas.data', None)
    edits = {'system.load': _times_broken, 'system.ram': _value_too_large, 'system.cpu': _value_a_string}
    with serving(_odd_rows(replay.host, edits)) as host:
        det = make_detector(replay, logger, host=host)
        run_until_trained(det, replay)
        det.close()
    assert set(det.models) == {'system.cpu', 'system.forks', 'system.load', 'system.ram'}, logger.lines
    first = {}   # the edited dimension: the first of each chart's data answer
    for chart in ('system.cpu', 'system.ram'):
        labels = NetdataApi(replay.host).data(chart, -10, 0, 0)[0]
        first[chart] = labels[0]
        assert sorted(c.split('|', 1)[1] for c in det.models[chart].columns) == sorted(labels)
    said = [m for _, m in logger.lines if 'training data' in m]
    assert any('2 rows without a time left out' in m and 'system.load' in m for m in said), logger.lines
    first_ram, first_cpu = first['system.ram'], first['system.cpu']
    assert any('1 value of system.ram|{} not a number (1000'.format(first_ram) in m for m in said), logger.lines
    assert any("1 value of system.cpu|{} not a number ('abc'), read as the value before".format(first_cpu) in m
               for m in said), logger.lines


def test_a_current_value_no_float_holds_costs_nothing_else(replay, logger):
    """allmetrics with a value too large for a float (a JSON number of 400 digits): that value
    is read as missing, and every chart scores, step after step. Before, every step failed."""
    def answer(path, code, body):
        if path.startswith('/api/v1/allmetrics'):
            body = json.loads(body)
            body['system.ram']['dimensions']['used']['value'] = 10 ** 400
            return code, json.dumps(body).encode()
        return code, body
    with serving(_proxy(replay.host, answer)) as host:
        det = make_detector(replay, logger, host=host)
        run_until_trained(det, replay)
        steps = []
        for _ in range(3):
            steps.append(det.step())
            replay.clock.advance(1)
        det.close()
    assert all({'system.cpu', 'system.forks', 'system.load'} <= set(s.scores) for s in steps), \
        [sorted(s.scores) for s in steps]


def test_two_jobs_reading_their_windows_at_once_write_nothing_to_stdout(replay, capfd):
    """Two jobs of one python.d.plugin (threads) train at once: one agent answers a chart's
    window slowly and not as JSON, and netdata-pandas prints that; its line is the job's
    problem to log, never stdout, even when the other job's read ends first."""
    import time as _time
    from collector.training_window import fetch_training_frame

    def slow_and_broken(path, code, body):
        if path.startswith('/api/v1/data') and 'chart=system.load&' in path:
            _time.sleep(1.0)
            return 200, b'oops not json'
        return code, body
    results = {}

    def job(name, host, charts, wait):
        _time.sleep(wait)
        results[name] = fetch_training_frame({host: charts}, -600, 0)[2]
    with serving(_proxy(replay.host, slow_and_broken)) as slow:
        threads = [threading.Thread(target=job, args=('slow', slow, ['system.cpu', 'system.load'], 0)),
                   threading.Thread(target=job, args=('quick', replay.host, ['system.cpu'], 0.2))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert capfd.readouterr().out == ''
    assert any('chart=system.load' in p for p in results['slow']), results


def test_a_training_window_the_agent_fails_to_send_is_logged_with_its_reason(replay, logger):
    with serving(_failing_data(replay.host, 'system.load')) as host:
        det = make_detector(replay, logger, host=host)
        run_until_trained(det, replay)
        det.close()
    assert 'system.load' in det.untrained and 'system.cpu' in det.models
    told = [m for m in logger.errors() if 'not trained' in m]
    assert told == ['model not trained: its training window could not be read ({} answered HTTP 500): '
                    'system.load'.format(host)], logger.lines
    assert any('chart=system.load (' in m and 'HTTP 500' in m for _, m in logger.lines if 'training data' in m)


def test_a_young_agent_that_answers_404_for_a_chart_it_lists_has_that_chart_wait(tmp_path, logger):
    """Seconds after its first start, an agent lists charts it answers HTTP 404 for on its data
    API (nothing stored yet): they wait for history like charts without values, with no error;
    on an agent with history, the 404 still costs the chart its model, said plainly."""
    from collector.replay import Recording, ReplayClock, ReplayServer
    rec = Recording(_with_a_late_chart(str(tmp_path / 'rec'), values_from=60))
    with ReplayServer(rec, ReplayClock(rec.start + 20, stepped=True)) as server:
        with serving(_failing_data(server.host, 'system.late', 404)) as host:
            det = make_detector(server, logger, host=host, train_min_n_secs=120)
            det.start()
            for _ in range(30):
                det.step()
                server.clock.advance(1)
                det.trainer.wait()
            det.close()
    assert not logger.errors(), logger.errors()
    assert not [m for _, m in logger.lines if 'training data' in m], logger.lines   # nothing went wrong
    assert any('waiting for 120 s of history' in m and 'system.late' in m for _, m in logger.lines), logger.lines

    old = ListLogger()
    rec = Recording(_with_a_late_chart(str(tmp_path / 'rec2'), values_from=0))
    with ReplayServer(rec, ReplayClock(rec.start + 600, stepped=True)) as server:
        with serving(_failing_data(server.host, 'system.late', 404)) as host:
            det = make_detector(server, old, host=host)
            run_until_trained(det, server)
            det.close()
    assert 'system.late' in det.untrained and 'system.cpu' in det.models
    assert any('not trained: the agent sent no data' in m and 'system.late' in m for m in old.errors()), old.lines


class _NothingStored(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        self.send_response(404)
        self.send_header('Content-Length', '9')
        self.end_headers()
        self.wfile.write(b'not found')


def test_a_window_read_that_every_chart_answers_404_to_says_so():
    """One chart answering 404 is one without data yet; all of them, a wrong address or proxy:
    the error names the 404s and their charts (a custom model's typo: the chart the agent does
    not have) rather than only that nothing could be read."""
    from collector.training_window import fetch_training_frame
    with serving(_NothingStored) as host:
        with pytest.raises(NetdataError, match='2 of the 2 charts asked answered HTTP 404') as e:
            fetch_training_frame({host: ['system.cpu', 'system.nosuchchart']}, -60, 0)
    assert 'nothing stored for them: {0}::system.cpu, {0}::system.nosuchchart)'.format(host) in str(e.value)


def _with_a_spike_in_training_then_a_shift(path, spike, shift, at):
    """'system.net', one dimension at 100 with unit noise, but for one read ``spike`` higher
    at 100 s (a blip) and a level ``shift`` higher for 60 s from ``at`` s."""
    import numpy as np
    noise = np.random.default_rng(3).normal(0, 1, at + 101)
    return _with_an_extra_chart(path, 'system.net', ['received'], lambda i: [
        round(100.0 + noise[i] + (spike if i == 100 else 0.0) + (shift if at <= i < at + 60 else 0.0), 4)],
        seconds=at + 100)


def test_the_flags_are_the_same_whatever_the_charted_calibration(tmp_path, logger):
    """With ``calibration: minmax`` the charted probability is the retired collector's
    scaling, where one blip in the training window sets 100 % and a shift rarer than all the
    rest reads 20 %; the flags are the default calibration's, as their rules count steps
    rarer than 99 % of the training."""
    from collector.replay import Recording, ReplayClock, ReplayServer
    at = 2500
    rec = Recording(_with_a_spike_in_training_then_a_shift(str(tmp_path / 'rec'), spike=60.0, shift=12.0, at=at))
    seen = {}
    for calibration in ('empirical', 'minmax'):
        with ReplayServer(rec, ReplayClock(rec.start + at - 60, stepped=True)) as server:
            det = make_detector(server, logger, train_n_secs=at - 60, calibration=calibration)
            det.start()
            for _ in range(10):   # trained at the same agent time however slow the machine
                det.step()
                det.trainer.wait()
                if det.models:
                    break
            while server.clock.now() <= rec.start + at + 60:
                det.trainer.wait()
                step = det.step()
                seen.setdefault(calibration, {})[int(server.clock.now()) - rec.start] = step.scores['system.net']
                server.clock.advance(1)
            det.close()
    minmax = seen['minmax']
    assert max(p for t, (p, _) in minmax.items() if t >= at) < 0.5      # the blip set its top
    flagged = sorted(t for t, (_, f) in minmax.items() if f)
    assert flagged and at <= flagged[0] <= at + 20 and all(t >= at for t in flagged)
    both = sorted(set(minmax) & set(seen['empirical']))
    assert len(both) > 100 and [minmax[t][1] for t in both] == [seen['empirical'][t][1] for t in both]


@pytest.mark.parametrize('seconds', [58, 60])
def test_a_flag_held_down_through_the_jobs_own_training_rises_after_it_only_on_an_unusual_step(replay, logger,
                                                                                                seconds):
    """An excess that ends just as the rows of the job's own training leave the features: the
    flag rules still held it, but nobody saw it up, so it does not appear then, on a step
    that reads nothing unusual (it read 67.5 % on a real agent)."""
    det, trainer, times, flags, probs = _spike_during_a_training(replay, logger, seconds, steps=100)
    det.close()
    assert max(probs[-20:]) < 0.99 and not any(flags[-20:])     # the chart read as usual at the end
    rose = [p for k, (f, p) in enumerate(zip(flags, probs)) if f and not (k and flags[k - 1])]
    assert all(p >= 0.99 for p in rose), rose


def test_train_every_n_0_trains_once_and_never_again_as_the_retired_collector_did(replay, logger):
    """Its stock config says: set train_every_n 0 and the models are not retrained after the first."""
    det = make_detector(replay, logger, train_every_n=0)
    run_until_trained(det, replay)
    for _ in range(60):
        det.step()
        replay.clock.advance(1)
        time.sleep(0.01)
    assert det.trainings == 1 and not det.trainer.busy and len(det.models) == 4
    det.close()
    again = make_detector(replay, logger, train_every_n=0)   # the saved models, loaded
    again.start()
    for _ in range(40):
        again.step()
        replay.clock.advance(1)
    assert again.trainings == 0 and not again.trainer.busy and len(again.models) == 4
    assert any(m.endswith('not retrained (train_every_n 0)') for _, m in logger.lines), logger.lines
    again.close()


def test_a_refill_from_an_agent_slow_to_send_stored_rows_gives_up_in_time_and_says_so(replay, logger, monkeypatch):
    """An agent that answers each stored-rows read slowly (or not at all) must not hold the
    step after a gap for all its charts: what is not read by REFILL_SECONDS scores again once
    enough steps came in."""
    from collector import engine
    det = make_detector(replay, logger, charts_regex='system\\.(cpu|ram|forks|load)$')
    run_until_trained(det, replay)
    for _ in range(12):
        det.step()
        replay.clock.advance(1)
    read = SwitchableApi.data

    def slow(self, *args, **kwargs):
        time.sleep(1.0)
        return read(self, *args, **kwargs)
    monkeypatch.setattr(SwitchableApi, 'data', slow)
    monkeypatch.setattr(engine, 'PARALLEL_READS', 1)
    monkeypatch.setattr(timings, 'REFILL_SECONDS', 1.5)
    replay.clock.advance(90)
    started = time.monotonic()
    step = det.step()
    took = time.monotonic() - started
    assert took < 3.5 and len(step.scores) == 2, (took, step.scores)
    assert any('took over 1.5 s to send the stored rows after the gap: the models of 2 charts not read by then'
               in m for _, m in logger.lines)
    for _ in range(det.need + 1):
        replay.clock.advance(1)
        step = det.step()
    assert set(step.scores) == set(det.models) and len(det.models) == 4
    det.close()


def test_a_refill_with_fewer_threads_to_be_had_reads_the_rest_in_the_step(replay, logger, monkeypatch):
    """A process near its limit of threads (a cgroup's pids.max, ulimit -u) may start one
    more reader and not the next: every chart is still read after a gap, and once."""
    det = make_detector(replay, logger, charts_regex='system\\.(cpu|ram|forks|load)$')
    run_until_trained(det, replay)
    _steps(det, replay, 12)
    start, read = threading.Thread.start, SwitchableApi.data
    started, reads = [], []

    def one_more_thread(thread):
        if thread.name == 'anomalies-refill':
            if started:
                raise RuntimeError("can't start new thread")
            started.append(thread)
        return start(thread)

    def counted(self, chart, *args, **kwargs):   # (system.load, collected every 5 s, is asked twice)
        reads.append((chart, threading.get_ident()))
        return read(self, chart, *args, **kwargs)
    monkeypatch.setattr(threading.Thread, 'start', one_more_thread)
    monkeypatch.setattr(SwitchableApi, 'data', counted)
    replay.clock.advance(90)
    step = det.step()
    readers = {}
    for chart, reader in reads:
        readers.setdefault(chart, set()).add(reader)
    assert len(started) == 1 and len(readers) == 4 and all(len(r) == 1 for r in readers.values()), reads
    assert len({r for rs in readers.values() for r in rs}) == 2   # the one thread started, and the step's
    assert set(step.scores) == set(det.models) and len(det.models) == 4
    assert not logger.errors(), logger.errors()
    det.close()


def test_a_refill_reads_several_charts_at_once_each_over_its_own_connection(replay, logger, monkeypatch):
    """After a gap every chart's stored rows are read again, inside the step: from an agent
    that takes its time over each answer (a parent across a network), one at a time would
    hold that step for the sum of them all."""
    import threading
    det = make_detector(replay, logger, charts_regex='system\\.(cpu|ram|forks|load)$')
    run_until_trained(det, replay)
    for _ in range(12):
        det.step()
        replay.clock.advance(1)
    read, lock = SwitchableApi.data, threading.Lock()
    busy, seen = [0, 0], []

    def slow(self, *args, **kwargs):
        with lock:
            busy[0] += 1
            busy[1] = max(busy)
            seen.append(id(self))
        try:
            time.sleep(0.5)
            return read(self, *args, **kwargs)
        finally:
            with lock:
                busy[0] -= 1
    monkeypatch.setattr(SwitchableApi, 'data', slow)
    replay.clock.advance(90)
    step = det.step()
    assert set(step.scores) == set(det.models) and len(det.models) == 4
    assert 2 <= busy[1] <= PARALLEL_READS
    assert len(set(seen)) >= 2 and id(det.apis[det.config.host]) not in seen
    det.close()


def _restarted_at(recording, tmp_path, restart, stale=0):
    """A copy of the synthetic recording whose agent restarted at ``restart`` (netdata.uptime),
    its first ``stale`` seconds answered with the run before's last uptime (a 1.37 parent's
    answer for a child that restarted, until the child's own first value comes)."""
    import gzip
    import shutil

    from conftest import _chart
    path = str(tmp_path / 'restarted')
    shutil.copytree(recording, path)
    with open(os.path.join(path, 'charts.json')) as f:
        charts = json.load(f)
    charts['charts']['netdata.uptime'] = _chart('netdata.uptime', ['uptime'], units='seconds')
    with open(os.path.join(path, 'charts.json'), 'w') as f:
        json.dump(charts, f)
    rows = [[t, t - restart if t >= restart + stale else min(t, restart - 1) - START + 5000]
            for t in range(START, START + 901)]
    with gzip.open(os.path.join(path, 'data', 'netdata.uptime.json.gz'), 'wt') as f:
        json.dump({'labels': ['time', 'uptime'], 'data': rows[::-1]}, f)
    # the agent alone restarted: its node has been up for hours (a reboot is _rebooted_at's)
    rows = [[t, t - START + 9000] for t in range(START, START + 901)]
    with gzip.open(os.path.join(path, 'data', 'system.uptime.json.gz'), 'wt') as f:
        json.dump({'labels': ['time', 'uptime'], 'data': rows[::-1]}, f)
    return path


@pytest.mark.parametrize('every', [1, 5])
def test_no_flag_rises_on_the_agents_own_start_up_but_an_excess_that_outlasts_it_does(recording, tmp_path, logger,
                                                                                      every):
    """python.d.plugin starts with its agent: after every restart the job's first steps read
    the agent's start-up (disk writes, its clock synchronising), which raised flags on a third
    of the charts and the node alarm. Within the agent's first minute (netdata.uptime) no flag
    rises; what read unusual is still left out of training, and an excess that lasts beyond
    that minute is flagged. A job stepping every 5 s too: each of its steps read as values
    that had paused, which started the hold again from the next step, so no step was ever
    held (and the agent's uptime was read, and the hold told, at every step)."""
    from collector import startup
    from collector.replay import Recording, ReplayClock, ReplayServer
    restart = START + SPIKE[0] - 20   # the agent restarted 20 s before the spike began
    path = _restarted_at(recording, tmp_path, restart)
    server = ReplayServer(Recording(path), ReplayClock(restart + 5, stepped=True)).start()
    try:
        det = make_detector(server, logger, update_every=every)
        run_until_trained(det, server)
        assert any(m == 'the agent started 5 s ago: no flag rises on its start-up until it has run 60 s'
                   for _, m in logger.lines), logger.lines
        reads, real = [], startup.uptime_reading
        startup.uptime_reading = lambda *a, **k: (reads.append(1), real(*a, **k))[1]
        shown = {}
        try:
            while server.clock.now() < START + SPIKE[1]:
                step = det.step()
                shown[server.clock.now()] = step.scores.get('system.cpu', (0, 0))[1]
                server.clock.advance(every)
        finally:
            startup.uptime_reading = real
        assert sum("no flag rises on its start-up" in m for _, m in logger.lines) == 1 and len(reads) <= 3
        held = [t for t in shown if det.need * every + 60 > t - restart]
        assert held and not any(shown[t] for t in held)   # the spike began in the agent's first minute
        # and outlasted it (at 5 s a step, the features of 13 steps reach back over the start-up
        # until the spike has ended)
        assert every > 1 or any(shown[t] for t in shown if t not in held)
        assert det.flagged.get('system.cpu')   # its unusual rows stay out of the next training
        det.close()
    finally:
        server.stop()


@pytest.mark.parametrize('stale', [0, 6])
def test_an_agent_that_restarts_under_a_running_job_has_its_start_up_held_too(recording, tmp_path, logger, stale):
    """A streamed child restarting (its parent answers for it, its values pause), or the agent of
    a standalone job: no python.d restart tells the job, whose steps read the start-up (a child's
    clock_status flagged 11 s after each restart). Values that pause, or an agent that answers
    again, have the agent's uptime read, and its first minute is held as at a job's start. A 1.37
    parent answers the child's uptime of the run before for a second or so after values move on,
    stamped now (6): the job took that for an agent up for minutes, and a dozen charts flagged."""
    from collector.replay import Recording, ReplayClock, ReplayServer
    restart = START + SPIKE[0] - 20
    path = _restarted_at(recording, tmp_path, restart, stale)
    server = ReplayServer(Recording(path), ReplayClock(START + 500, stepped=True)).start()

    class Pausing(SwitchableApi):
        frozen = None

        def allmetrics(self, timeout=None, charts=None):
            if Pausing.frozen is not None:
                return Pausing.frozen
            return super().allmetrics(timeout, charts)
    try:
        det = AnomalyDetector(parse_job_config({'host': server.host, 'train_n_secs': 600, 'train_every_n': 1000}),
                              logger, trainer=ThreadTrainer(), api_factory=lambda c, h: Pausing.from_config(c, h))
        det.list_wait = None
        run_until_trained(det, server)
        assert not any('no flag rises on its start-up' in m for _, m in logger.lines)
        shown = {}
        while server.clock.now() < START + SPIKE[1]:
            now = server.clock.now()
            if restart - 2 <= now < restart + 4:   # the agent restarting: the parent repeats its last values
                Pausing.frozen = Pausing.frozen or det.apis[det.config.host].shown
            else:
                Pausing.frozen = None
            step = det.step()
            shown[now] = step.scores.get('system.cpu', (0, 0))[1]
            server.clock.advance(1)
        told = [m for _, m in logger.lines if 'no flag rises on its start-up' in m]
        assert len(told) == 1 and told[0].startswith(
            'the agent restarted (its uptime did not grow through the pause)' if stale else 'the agent started '), told
        held = [t for t in shown if restart + 4 <= t < restart + 60]
        assert held and not any(shown[t] for t in held)   # the spike began in the agent's first minute
        assert any(shown[t] for t in shown if t >= restart + 60 + det.need)   # and outlasted it
        det.close()
    finally:
        Pausing.frozen = None
        server.stop()


class _Restarting(SwitchableApi):
    """An agent restarting: ``frozen``, the answer its parent repeats meanwhile; ``absent``, the
    charts left out of its answers (collected only seconds into its start-up, or not again)."""
    frozen, absent = None, ()

    def allmetrics(self, timeout=None, charts=None):
        if _Restarting.frozen is not None:
            return _Restarting.frozen
        body = super().allmetrics(timeout, charts)
        return {c: v for c, v in body.items() if c not in _Restarting.absent}


def _lines_through_a_restart(det, server, logger, restart, late, gone):
    """Step ``det`` to 90 s after its agent's ``restart`` (the values paused from 2 s before it
    to 4 s after), the charts ``late`` collected from 10 s after it and ``gone`` not again; the
    lines logged meanwhile."""
    said = len(logger.lines)
    try:
        while server.clock.now() < restart + 90:
            now = server.clock.now()
            if restart - 2 <= now < restart + 4:
                _Restarting.frozen = _Restarting.frozen or det.apis[det.config.host].shown
            else:
                _Restarting.frozen = None
            _Restarting.absent = () if now < restart else tuple(late) + tuple(gone) if now < restart + 10 else tuple(gone)
            det.step()
            server.clock.advance(1)
    finally:
        _Restarting.frozen, _Restarting.absent = None, ()
    return [m for _, m in logger.lines[said:]]


@contextlib.contextmanager
def _job_of_an_agent_that_restarts(recording, tmp_path, logger, **conf):
    """A job trained on the synthetic recording, read through ``_Restarting``, whose agent
    restarts 20 s before the spike: ``(detector, replay server, the restart's time)``."""
    from collector.replay import Recording, ReplayClock, ReplayServer
    restart = START + SPIKE[0] - 20
    path = _restarted_at(recording, tmp_path, restart)
    server = ReplayServer(Recording(path), ReplayClock(START + 500, stepped=True)).start()
    try:
        det = AnomalyDetector(parse_job_config(dict({'host': server.host, 'train_n_secs': 600, 'train_every_n': 1000},
                                                    **conf)),
                              logger, trainer=ThreadTrainer(), api_factory=lambda c, h: _Restarting.from_config(c, h))
        det.list_wait = None
        run_until_trained(det, server)
        yield det, server, restart
        det.close()
    finally:
        _Restarting.frozen, _Restarting.absent = None, ()
        server.stop()


def test_charts_an_agent_collects_only_seconds_after_its_restart_are_not_told_one_by_one(recording, tmp_path, logger):
    """A child restarting lists its charts before their first collection: the job's next steps
    logged errors and warnings for one model after another (no current values, a chart not
    collected for minutes), and that they were back, right after saying the agent had just
    started. Through its start-up they are not told; one still missing after it is."""
    with _job_of_an_agent_that_restarts(recording, tmp_path, logger) as (det, server, restart):
        lines = _lines_through_a_restart(det, server, logger, restart, late=['system.cpu'], gone=['system.forks'])
    assert any(m.startswith('the agent started ') for m in lines), lines
    told = [m for m in lines if 'no current values' in m or 'no longer in the agent' in m or 'are back' in m
            or 'values are back' in m]
    assert told and all('system.forks' in m and 'system.cpu' not in m for m in told), told


def test_a_chart_told_missing_before_its_agents_restart_is_told_back_through_the_start_up(recording, tmp_path,
                                                                                         logger):
    """Quiet about what is missing through an agent's start-up, but not about what came back:
    a chart told missing before the restart, collected again 10 s into it, was told back only
    once the start-up hold ended, a minute late."""
    with _job_of_an_agent_that_restarts(recording, tmp_path, logger) as (det, server, restart):
        said, told = len(logger.lines), []
        while server.clock.now() < restart + 90:
            now = server.clock.now()
            _Restarting.absent = ('system.forks',) if restart - 15 <= now < restart + 10 else ()
            if restart - 2 <= now < restart + 4:   # the agent restarting: the parent repeats its last values
                _Restarting.frozen = _Restarting.frozen or {c: v for c, v in det.apis[det.config.host].shown.items()
                                                            if c != 'system.forks'}
            else:
                _Restarting.frozen = None
            det.step()
            told += [(now - restart, m) for _, m in logger.lines[said:]]
            said = len(logger.lines)
            server.clock.advance(1)
    assert [t for t, m in told if 'system.forks' in m and 'back' not in m and t < 0], told
    back = [t for t, m in told if 'values are back' in m and 'system.forks' in m]
    assert back and 10 <= back[0] < 15, told


def test_a_custom_models_chart_collected_seconds_after_its_agents_restart_is_not_told_either(recording, tmp_path,
                                                                                            logger):
    """A custom model's chart that the restarted agent collects only seconds into its start-up
    was told as gone from its answer, then as back, through the start-up the chart models keep
    quiet on; one still gone after it is told then."""
    custom = [{'name': 'cpu_forks', 'dimensions': 'system.cpu|user,system.forks|started'},
              {'name': 'cpu_ram', 'dimensions': 'system.cpu|user,system.ram|used'}]
    with _job_of_an_agent_that_restarts(recording, tmp_path, logger, custom_models=custom) as (det, server, restart):
        while server.clock.now() < restart - 5:
            det.step()
            server.clock.advance(1)
        assert {'cpu_forks', 'cpu_ram'} <= set(det.models), sorted(det.models)
        lines = _lines_through_a_restart(det, server, logger, restart, late=['system.forks'], gone=['system.ram'])
    assert any(m.startswith('the agent started ') for m in lines), lines
    assert not [m for m in lines if 'cpu_forks' in m], lines
    assert [m for m in lines if "model 'cpu_ram': chart system.ram is no longer in the agent's answer" in m], lines


@pytest.mark.parametrize('discover_seconds', [60, 0.5])   # the minute's look, as on an agent; a look at every step
def test_saved_models_loaded_once_a_late_agent_answers_hold_its_start_up(recording, tmp_path, logger, monkeypatch,
                                                                         discover_seconds):
    """A job started while its agent was away (its parent restarted while the child was down, a
    standalone job started before its agent) loads its saved models once the agent answers, and
    they score at once: an agent that has just started has its first minute held then, as at a
    job's start (a child booted after its parent flagged its own start-up)."""
    from collector.replay import Recording, ReplayClock, ReplayServer
    monkeypatch.setattr(timings, 'DISCOVER_SECONDS', discover_seconds)
    restart = START + SPIKE[0] - 20
    path = _restarted_at(recording, tmp_path, restart)
    server = ReplayServer(Recording(path), ReplayClock(START + 500, stepped=True)).start()
    models = str(tmp_path / 'models')
    read = SwitchableApi.data

    def away(self, *args, **kwargs):   # the agent's uptime cannot be read while it is away either
        if SwitchableApi.down:
            raise NetdataError('cannot reach http://{}: ConnectionRefusedError'.format(self.host))
        return read(self, *args, **kwargs)
    monkeypatch.setattr(SwitchableApi, 'data', away)
    try:
        first = make_detector(server, logger, models_dir=models)
        run_until_trained(first, server)
        first.close()
        server.clock.set(restart + 5)
        logger.lines.clear()
        late = make_detector(server, logger, models_dir=models)
        _start_with_the_agent_down(late, server)
        _steps_until(late, server, lambda: bool(late.models))
        assert late.trainings == 0   # loaded, not trained
        assert sum(m.startswith('the agent started ') and 'no flag rises on its start-up' in m
                   for _, m in logger.lines) == 1, logger.lines
        assert len(late.agent_start_rows) > 0
        late.close()
    finally:
        server.stop()


def _rebooted_at(path, reboot, seconds, node=True):
    """A synthetic recording of ``seconds`` at ``path`` whose node rebooted at ``reboot`` (with
    ``node`` False, whose agent alone restarted then): its agent's netdata.uptime starts again
    there, and system.ram's page cache is 1500 MiB smaller from then on."""
    from conftest import _chart
    write_recording(path, seconds=seconds)
    with open(os.path.join(path, 'charts.json')) as f:
        charts = json.load(f)
    charts['charts']['netdata.uptime'] = _chart('netdata.uptime', ['uptime'], units='seconds')
    with open(os.path.join(path, 'charts.json'), 'w') as f:
        json.dump(charts, f)

    def rewrite(chart, change):
        name = os.path.join(path, 'data', chart + '.json.gz')
        with gzip.open(name, 'rt') as f:
            body = json.load(f)
        body['data'] = [change(row) for row in body['data']]
        with gzip.open(name, 'wt') as f:
            json.dump(body, f)
    rewrite('system.ram', lambda r: [r[0], r[1], r[2] - 1500] if r[0] >= reboot else r)
    rows = [[t, t - reboot if t >= reboot else t - START + 5000] for t in range(START, START + seconds + 1)]
    with gzip.open(os.path.join(path, 'data', 'netdata.uptime.json.gz'), 'wt') as f:
        json.dump({'labels': ['time', 'uptime'], 'data': rows[::-1]}, f)
    # (a node up for hours before, and 20 s before its agent after a reboot)
    rewrite('system.uptime', lambda r: [r[0], r[0] - reboot + 20 if node and r[0] >= reboot else r[1] + 9000])
    return path


@pytest.mark.parametrize('node', [True, False])
def test_a_level_a_reboot_changed_is_learned_minutes_after_it_not_at_the_next_full_training(tmp_path, logger, node):
    """A reboot empties the page cache: against the window before it, system.ram read the new
    level as an incident, flagged (the node alarm critical) until a full training held a
    quarter of its window of it, 60 to 90 minutes with the defaults, as its flagged rows were
    left out. A model flagged since the start-up of an agent that booted with its node
    (system.uptime) is retrained on the rows since only, train_min_n_secs after it and again as
    they double, its flag held down until then; a flag that rises after the start-up (the CPU
    spike) is shown and not retrained for. Across a restart of the agent alone (an upgrade, or
    an incident that had it killed), a flag stays up, and out of training, as ever."""
    from collector.replay import Recording, ReplayClock, ReplayServer
    reboot = START + 600
    path = _rebooted_at(str(tmp_path / 'rebooted'), reboot, 1300, node)
    server = ReplayServer(Recording(path), ReplayClock(START + 560, stepped=True)).start()
    try:
        det = AnomalyDetector(parse_job_config({'host': server.host, 'train_n_secs': 500, 'train_every_n': 3000,
                                                'train_min_n_secs': 300}),
                              logger, trainer=ThreadTrainer(), api_factory=lambda c, h: _Restarting.from_config(c, h))
        det.list_wait = None
        run_until_trained(det, server)
        flags, retrained = {}, None
        while server.clock.now() < START + 1300:
            now = server.clock.now()
            # the node rebooting: its agent does not answer, and is told by its uptime once it does
            SwitchableApi.down = reboot - 40 <= now < reboot + 4
            step = det.step()
            flags[now - reboot] = {m: f for m, (p, f) in step.scores.items()}
            retrained = retrained or (det.trainings > 1 and now - reboot)
            server.clock.advance(1)
            if det.trainer.busy:
                time.sleep(0.05)
    finally:
        SwitchableApi.down = False
        server.stop()
    after = 60 + det.need + 300 + timings.DISCOVER_SECONDS + 30   # the start-up, train_min_n_secs, a look, the training
    spike = [t for t in flags if START + SPIKE[0] <= reboot + t < START + SPIKE[1]]
    assert spike[0] > 60 + det.need and any(flags[t].get('system.cpu') for t in spike)   # shown, after a reboot too
    told = [m for _, m in logger.lines if 'flagged since the node rebooted' in m]
    if not node:
        assert any(f.get('system.ram') for t, f in flags.items() if 60 + det.need < t < after)   # the new level
        late = [f.get('system.ram', 0) for t, f in flags.items() if t >= after]
        assert sum(late) > 0.9 * len(late), (sum(late), len(late))
        assert not told and det.trainings == 1
        return
    assert 60 + det.need + 300 < retrained < after   # the start-up, train_min_n_secs, a look, the training
    assert not any(f.get('system.ram') for t, f in flags.items() if 0 < t < retrained)   # held until then
    late = [f.get('system.ram', 0) for t, f in flags.items() if t >= retrained]
    assert sum(late) < 0.1 * len(late), (sum(late), len(late))   # then learned (a young model's rare excess)
    assert any(first <= reboot + 60 <= last for first, last in det.flagged['system.ram'])   # (read unusual)
    assert len(told) == 1 and told[0].startswith("model 'system.ram': flagged since the node rebooted (its agent's "
                                                 "start-up ended "), [m for _, m in logger.lines]
    again = [m for _, m in logger.lines if m.startswith('training ')][1:]
    assert again and all(m == 'training 1 model on up to 500 s of history (levels a reboot changed)'
                         for m in again), again   # system.ram's alone
    first, _ = det.models['system.ram'].info['window']
    assert first >= reboot + 60 and det.models['system.cpu'].info['window'][0] < reboot   # its window: since the reboot
    det.close()


def test_a_job_started_on_an_agent_running_for_long_holds_no_flag(replay, logger):
    """The hold is the agent's start-up only: on an agent that has run for long (or one that
    lists no netdata.uptime) the job's first steps are scored as any."""
    det = make_detector(replay, logger)
    run_until_trained(det, replay)
    assert not any('no flag rises on its start-up' in m for _, m in logger.lines)
    assert len(det.agent_start_rows) == 0
    det.close()


def _start_with_the_agent_down(det, replay, steps=3):
    """Start ``det`` and step it while its agent does not answer; it answers from then on."""
    SwitchableApi.down = True
    try:
        det.start()
        for _ in range(steps):
            det.step()
            replay.clock.advance(1)
            time.sleep(0.2)
    finally:
        SwitchableApi.down = False


def test_a_job_whose_agent_answers_late_trains_every_model_once_not_again_seconds_later(replay, logger,
                                                                                        monkeypatch):
    """An agent that comes up after the job: the training of every chart when it answers is
    the job's full training, so the full training that could not start before it is not run
    again a few steps later on the same window."""
    monkeypatch.setattr(timings, 'DISCOVER_SECONDS', 0.5)
    det = make_detector(replay, logger, models_dir='none')
    _start_with_the_agent_down(det, replay)
    _steps_until(det, replay, lambda: bool(det.models))
    for _ in range(timings.RETRY_STEPS + 5):
        det.step()
        replay.clock.advance(1)
    trainings = [m for _, m in logger.lines if m.startswith('training ')]
    assert len(trainings) == 1, trainings
    assert det.next_training > det.steps + timings.RETRY_STEPS
    det.close()


def test_a_chart_the_agent_stops_collecting_is_a_warning_not_an_error(tampered, replay, logger):
    """An interface deleted or a container gone leaves its chart out of the agent's answer: a
    thing a healthy node does, told as a warning (the model goes once the chart list lacks it),
    where a chart answered with values that cannot be read is an error."""
    def no_cpu(body):
        body.pop('system.cpu', None)
        return body
    TamperedApi.tamper = no_cpu
    steps = _steps(tampered, replay, 3)
    assert all(set(s.scores) == {'system.forks', 'system.load', 'system.ram'} for s in steps)
    said = [(level, m) for level, m in logger.lines if m.startswith("model 'system.cpu'")]
    assert said == [('WARNING', "model 'system.cpu': its chart is no longer in the agent's answer (gone, or not "
                                "collected now), skipping it; its model is removed once the agent no longer lists "
                                "it")], logger.lines


def _load_entry(change):
    def tamper(body):
        body['system.load'] = change(body['system.load'])
        return body
    return tamper


def _load_values(value):
    def change(entry):
        for d in entry['dimensions'].values():
            d['value'] = value
        return entry
    return change


def test_why_a_charts_entry_holds_no_values_names_what_the_dimensions_there_hold():
    from collector.batch import why_no_values
    entry = {'dimensions': {'a': {'name': 'a', 'value': None}, 'c': {'name': 'c', 'value': 1.0}}}
    assert why_no_values(entry, ['b', 'a', 'c']) == "dimension a's value is null"   # not b's absence
    assert why_no_values(entry, ['b', 'c']) == 'dimension b is not in its entry'
    assert why_no_values(entry, ['b', 'd', 'c']) == 'dimensions b, d are not in its entry'
    assert why_no_values(entry, ['c']) is None
    assert why_no_values({'dimensions': {'x': {'name': 'a', 'value': float('nan')}}}, ['a']) == \
        "dimension a's value is not finite"
    assert why_no_values({'dimensions': {'a': {'name': 'a'}}}, ['a']) == 'dimension a has no value'
    assert why_no_values(None, ['a']) == 'its entry in the answer is null, not an object'


@pytest.mark.parametrize('change, why', [
    (lambda e: [e], 'its entry in the answer is a list, not an object'),
    (lambda e: 'load', 'its entry in the answer is text, not an object'),
    (lambda e: {k: v for k, v in e.items() if k != 'dimensions'}, "its entry has no 'dimensions'"),
    (lambda e: dict(e, dimensions=list(e['dimensions'].values())), "its entry has 'dimensions' as a list"),
    (_load_values('abc'), "dimension load1's value is text"),
    (_load_values([1.0]), "dimension load1's value is a list"),
    (lambda e: dict(e, dimensions={}), 'none of its dimensions is in its entry'),
])
def test_a_chart_answered_in_a_form_that_holds_no_values_is_told_what_is_wrong(tampered, replay, logger, change,
                                                                               why):
    """A chart's entry in allmetrics that holds no values (a broken agent, a proxy before it):
    the line said only 'no current values', whatever was wrong. It says what, once, and the
    other charts score on."""
    TamperedApi.tamper = _load_entry(change)
    steps = _steps(tampered, replay, 3)
    assert all(set(s.scores) == {'system.cpu', 'system.forks', 'system.ram'} for s in steps)
    said = [m for m in logger.errors() if m.startswith("model 'system.load'")]
    assert said == ["model 'system.load': no current values for its dimensions ({}), skipping it".format(why)], said


def test_charts_that_leave_and_come_back_together_are_told_in_one_line_each_way(tampered, replay, logger):
    """A parent's child reconnecting, or a collector restarting, takes dozens of charts out of
    the answer and brings them back seconds later: one line each way, not one per model."""
    def fewer(body):
        for chart in ('system.cpu', 'system.load'):
            body.pop(chart, None)
        for dim in body['system.ram']['dimensions'].values():
            dim['value'] = None
        return body
    TamperedApi.tamper = fewer
    _steps(tampered, replay, 3)
    TamperedApi.tamper = None
    _steps(tampered, replay, 2)
    said = [(level, m) for level, m in logger.lines if 'model' in m and 'training' not in m and 'trained' not in m]
    assert said == [
        ('WARNING', "2 models: their charts are no longer in the agent's answer (gone, or not collected now), "
                    "skipping them; a model is removed once the agent no longer lists its chart: system.cpu, "
                    "system.load"),
        ('ERROR', "model 'system.ram': no current values for its dimensions (dimension cached's value is null), "
                  "skipping it"),
        ('INFO', '3 models: values are back: system.cpu, system.load, system.ram')], said


def test_an_agent_that_resets_then_refuses_connections_is_one_outage_told_once(tampered, replay, logger):
    """An agent stopping resets the connection a step read on, then refuses the next ones: one
    outage, one error line (and one when it answers again)."""
    def reset(body):
        raise NetdataError('cannot reach http://{}: ConnectionResetError: [Errno 104] Connection reset by '
                           'peer'.format(replay.host))

    def refused(body):
        raise NetdataError('cannot reach http://{}: ConnectionRefusedError: [Errno 111] Connection '
                           'refused'.format(replay.host))
    for tamper in (reset, refused, refused):
        TamperedApi.tamper = tamper
        _steps(tampered, replay, 1)
    TamperedApi.tamper = None
    _steps(tampered, replay, 1)
    said = [(level, m) for level, m in logger.lines if replay.host in m and 'training' not in m]
    assert [level for level, _ in said] == ['ERROR', 'INFO'] and 'ConnectionResetError' in said[0][1], said


def _custom_model_losing(replay, logger, charts_regex, gone, steps_gone):
    """A job with the custom model cpu_load over system.cpu and system.load, trained, then
    stepped ``steps_gone`` times with the charts ``gone`` left out of the agent's answer and
    twice with them back: the steps, and what the job said of cpu_load."""
    det = AnomalyDetector(parse_job_config({
        'host': replay.host, 'train_n_secs': 600, 'train_every_n': 1000, 'charts_regex': charts_regex,
        'custom_models': [{'name': 'cpu_load', 'dimensions': 'system.cpu|user,system.load|load1'}]}),
        logger, trainer=ThreadTrainer(), api_factory=lambda c, h: TamperedApi.from_config(c, h))
    det.list_wait = None
    try:
        run_until_trained(det, replay)
        TamperedApi.tamper = lambda body: {c: v for c, v in body.items() if c not in gone}
        steps = _steps(det, replay, steps_gone)
        TamperedApi.tamper = None
        steps += _steps(det, replay, 2)
    finally:
        TamperedApi.tamper = None
        det.close()
    return steps, [(level, m) for level, m in logger.lines if m.startswith("model 'cpu_load'")]


def test_a_custom_model_one_of_whose_charts_leaves_the_answer_says_so(replay, logger):
    """A custom model over two charts scores on when one of them stops being collected (a
    sensor's collector stopped), that chart's last values standing in for it: said once, as a
    warning naming the chart, and again when it is back; a chart model would say it too."""
    steps, said = _custom_model_losing(replay, logger, 'none', {'system.load'}, 4)
    assert all('cpu_load' in s.scores for s in steps)   # still scored, on the chart that answers
    assert said == [('WARNING', "model 'cpu_load': chart system.load is no longer in the agent's answer (gone, or "
                                "not collected now): its last values stand in until it is back"),
                    ('INFO', "model 'cpu_load': all its charts are back")], logger.lines


class _CountedSpecs(dict):
    """The specs of a job, each look-up at one counted."""
    looked = 0

    def _count(self):
        _CountedSpecs.looked += 1

    def get(self, *a):
        self._count()
        return super().get(*a)

    def __getitem__(self, key):
        self._count()
        return super().__getitem__(key)

    def __contains__(self, key):
        self._count()
        return super().__contains__(key)


def test_the_check_of_custom_models_charts_at_each_step_goes_through_no_chart_models(replay, logger):
    """The charts of every custom model are checked at each step: a job of many charts (2000 on
    a parent) does not look at each of its chart models for it every step, only when its
    models or specs change."""
    det = make_detector(replay, logger, charts_regex='system\\..*',
                        custom_models=[{'name': 'cpu_load', 'dimensions': 'system.cpu|user,system.load|load1'}])
    try:
        run_until_trained(det, replay)
        assert 'cpu_load' in det.models and len(det.models) > 3
        det.specs = _CountedSpecs(det.specs)
        _steps(det, replay, 1)   # the new specs: each looked at once
        _CountedSpecs.looked = 0
        steps = _steps(det, replay, 5)
        assert all('cpu_load' in s.scores for s in steps)
        assert _CountedSpecs.looked == 0, _CountedSpecs.looked
    finally:
        det.close()


def test_a_custom_model_whose_charts_all_leave_the_answer_is_a_warning_as_a_chart_models_is(replay, logger):
    """Every chart of a custom model gone from an agent that answers (their collector stopped)
    is told as a chart model's chart gone is, a warning naming them, not an error."""
    steps, said = _custom_model_losing(replay, logger, 'system\\.ram', {'system.cpu', 'system.load'}, 3)
    assert ['cpu_load' in s.scores for s in steps] == [False, False, False, True, True]
    assert said == [('WARNING', "model 'cpu_load': charts system.cpu, system.load are no longer in the agent's "
                                "answer (gone, or not collected now), skipping it until values are back"),
                    ('INFO', "model 'cpu_load': values are back")], logger.lines


def test_the_flagged_steps_of_another_node_are_not_taken_when_the_agent_answers_late(replay, logger, tmp_path,
                                                                                    monkeypatch):
    """The flagged steps saved beside the models name the agent's machine GUID, as the models
    do: with an agent that answers only after the job started they were read before the GUID
    was, and another node's were taken (and saved again as this one's) while its models were
    refused."""
    monkeypatch.setattr(timings, 'DISCOVER_SECONDS', 0.5)
    guid = ['guid-a']
    monkeypatch.setattr(NetdataApi, 'agent_id', lambda self: guid[0])
    models = str(tmp_path / 'models')
    first = make_detector(replay, logger, models_dir=models)
    run_until_trained(first, replay)
    first.close()
    now = replay.clock.now()
    engine.persist.save_flagged(first.models_dir, {'system.cpu': [[now - 100, now - 50]]}, first.config.host,
                                'guid-a')
    guid[0] = 'guid-b'   # the folder, copied to another node
    late = make_detector(replay, logger, models_dir=models)
    _start_with_the_agent_down(late, replay)
    _steps_until(late, replay, lambda: late.trainings > 0)
    assert late.agent == 'guid-b' and 'system.cpu' not in late.flagged, late.flagged
    assert [m for _, m in logger.lines if m.endswith('are not used: saved for another agent (machine GUID guid-a)')]
    late.close()


def test_memory_is_given_back_once_per_training_taken_up(replay, logger, monkeypatch):
    """After a training, not at every step: a trim walks every arena of the C library."""
    from collector import memory
    calls = []
    monkeypatch.setattr(memory, 'give_back', lambda: calls.append(1) or True)
    det = make_detector(replay, logger)
    run_until_trained(det, replay)
    assert len(calls) == det.trainings == 1
    for _ in range(20):
        det.step()
        replay.clock.advance(1)
    assert len(calls) == det.trainings == 1
    det.close()


def test_an_agent_down_before_any_model_keeps_no_values_and_says_none(replay, logger):
    """Only a job with models charts last values while its agent is away; one down from its
    start has none to keep."""
    det = make_detector(replay, logger)
    _start_with_the_agent_down(det, replay)
    said = [e for e in logger.errors() if 'cannot reach' in e]
    assert said and not [e for e in said if 'keeping last values' in e], said
    det.close()
