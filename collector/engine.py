"""The detector's per-step loop: read the latest values, score every model, keep what was flagged.

It knows nothing of the charts it is drawn on or of protocols: ``step()`` returns a ``Step``
(per-model probability and flag, the models that appeared or went away, what drives a flag
that rose); the python.d service turns that into dimensions. The step is here: the agents'
answers read, a gap in collection told and the features refilled from the agent's stored rows
after it (``stored_rows``), stalled collection told, every model scored on its features, its
flagged steps kept for the next training. Its parts, each a module: which charts it models
(``scope``), when it trains and what (``training_schedule``), what a restart keeps
(``restore``: saved models, flagged spans), and an agent's start-up and its node's reboot
(``startup``). Its waits are in ``timings``.
"""
import collections
import concurrent.futures
import time
import warnings

import numpy as np

from . import flagged_spans, persist, ring, stored_rows, timings
from .batch import BatchScorer, Layout, why_no_values
from .flagged_spans import FlagFile
from .flags import FlagPolicy
from .features import absent_as_zero, feature_blocks, fill_missing
from .netdata_api import PARALLEL_READS, NetdataApi, NetdataError, agent_now, json_loads, split_key
from .problems import ProblemLog, first_few, plural
from .restore import Restore
from .scope import ChartScope
from .startup import StartUps
from .timings import Due
from .trainers import make_trainer
from .training_schedule import TrainingSchedule


MAX_READERS = 8   # agents read side by side at a step (custom models on more nodes wait their turn)
Moment = collections.namedtuple('Moment', 'step stamp')   # a step and the agent's time at it
Stood = collections.namedtuple('Stood', 'stamp clock step')   # the agent's newest time, when it was first seen


class Step:
    """What one collection step produced."""
    __slots__ = ('scores', 'added', 'removed', 'fresh', 'drivers', 'at')

    def __init__(self):
        self.scores = {}    # model_id -> (probability 0..1, flag 0/1)
        self.added = []     # model ids that got their first model this step
        self.removed = []   # model ids whose chart is gone
        self.fresh = False  # True when the agent answered this step
        self.drivers = {}   # model id whose flag rose -> [(column, share)], the dimensions driving it
        self.at = None      # the agent's time of the row scored (unix s): how long a flag is up is agent time


def _times_unreadable(latest):
    """Whether an answer without a time has charts whose ``last_updated`` is there but no number
    (text, a list), rather than no chart at all (an agent starting, a child reconnecting)."""
    return any(isinstance(c, dict) and c.get('last_updated') is not None
               for body in latest.values() if isinstance(body, dict) for c in body.values())


class AnomalyDetector(ChartScope, TrainingSchedule, Restore, StartUps):
    """One job's models of one agent's charts: ``start()``, then ``step()`` once per
    update_every, then ``close()``.

    ``trainer`` fits models in the background (``trainers.make_trainer``: a process; the
    harnesses pass a thread), ``api_factory(config, host)`` makes an agent connection (the
    tests pass fakes), ``clock`` times discoveries and waits. The harnesses that replay a
    recording on a stopped clock set ``list_wait`` (None: each step waits for its chart list)
    and ``trainings_take_agent_time`` (False: no rows show a training).
    """

    def __init__(self, config, logger, trainer=None, api_factory=NetdataApi.from_config, clock=time.monotonic):
        self.config = config
        self.log = logger
        self.problems = ProblemLog(logger)
        self.trainer = trainer or make_trainer(config)
        self.api_factory = api_factory
        self.clock = clock
        self.created = clock()
        self.unanswered = set()        # hosts whose read failed at the last step
        self.outages = {}              # ... and since which step, and whether every failure was a timeout
        self.fresh_at = None           # time.monotonic() of the last step the agent answered
        self.slow = {}                 # host whose step read timed out -> [reads timed out, steps, answered in a row]
        self.need = config.rows_needed
        self.hosts = [config.host] + sorted({d[0] for m in config.custom_models for d in m.dimensions} - {config.host})
        self.apis = {h: api_factory(config, h) for h in self.hosts}
        self.readers = None            # the threads that read several agents' allmetrics side by side
        self.models = {}
        self.specs = {}
        self.snapshots = collections.deque(maxlen=self.need)
        self.steps = 0
        self.discover_every = max(1, int(timings.DISCOVER_SECONDS // config.update_every))   # in steps
        self.next_discovery = Due(clock() + timings.DISCOVER_SECONDS, self.discover_every)
        # a replay waits for each list on a stopped clock, as for each training (evaluate)
        self.list_wait = timings.LIST_WAIT_SECONDS
        self.gap = None              # Moment (step, agent time) of the last gap in collection
        self.stood = None            # Stood: when the agent's newest collection last moved
        self._pending = Step()  # changes made outside step() (start), reported by the next step
        self.missing = set()    # models whose dimensions had no value last step
        self.wanted = {}        # host -> charts to ask for each step (all until the first discovery)
        self.stamp_every = config.update_every   # seconds the agent's clock moves on in a step, at most
        self.models_dir = persist.resolve_dir(config.models_dir, config.job_name, config.host)
        self.flag_policy = FlagPolicy(config.flag_min_n, config.flag_window_n, config.flag_rearm_n,
                                      config.flag_lasting_n)
        self.flagged = {}       # model id -> [[first, last] agent time of flagged steps], for training
        self.was_flagged = set()  # models flagged last step (their flag's drivers are already told)
        self.flag_file = FlagFile(self.models_dir, self.problems, config.host)   # flagged, kept across restarts
        self.episodes = {}      # model id -> steps since its flag's episode last read unusual (flagged_spans)
        self.custom_charts = {}   # custom model id -> (its columns, [(host, chart)] they come from)
        self.custom_rows = (None, None, [])   # (batch, specs, [(row, spec)] of its custom models)
        self.above_ids = frozenset()   # models above the threshold at the last step scored
        self.above_before = frozenset()   # and at the step before it
        self.rising_before_training = frozenset()   # and those at the last training's start
        self.started = False          # start() called (by the job's create())
        self._init_scope()
        self._init_schedule(config)
        self._init_restore()
        self._init_start_ups()
        self.layout = self.ring = self.ring_stamps = None   # laid out by _rebuild
        self._rebuild({})

    def start(self):
        """Load the saved models that still fit, and start training the rest now."""
        self.started = True
        if self.models_dir:
            # (reads the agent's machine GUID once it lists its charts, then the flagged steps
            # saved: an agent that answers only later has them read then, checked against it)
            self._start_from_disk()
        self._hold_agent_start_up()
        self._maybe_start_training(self._pending, wait=None)   # check() tells what the job starts with

    def step(self):
        """One collection step. Never raises for bad data; returns a ``Step``."""
        report, self._pending = self._pending, Step()
        self._collect_training(report)
        self._maybe_start_training(report, self.list_wait)
        self._beside_other_trainings()
        self.steps += 1
        latest = self._fetch_latest()
        if not latest:
            return report
        row, stamp = self.layout.row(latest)
        # stamped with the agent's clock, the same clock as the training window's rows; an
        # answer without it (none of the charts) continues it, never mixes in this host's
        stamp = stamp or agent_now(latest.get(self.config.host))
        if stamp and set(self.wanted) <= {self.config.host} and self._standing_still(stamp):
            return report   # not fresh: the charts keep the last values for a while, as for an agent away
        report.fresh, self.fresh_at = True, time.monotonic()
        if not stamp:
            if _times_unreadable(latest):   # (not an answer without the charts: told as such)
                self.problems.report('clock', "the agent's answer holds no time (no chart's last_updated is a "
                                     "number): its values are taken as one update_every after the last")
            if not self.snapshots:
                return report
            stamp = self.snapshots[-1][0] + self.config.update_every
        elif 'clock' in self.problems:
            self.problems.clear('clock', "the agent's answers hold their time again")
        # a jump either way (a suspend, the clock set back) makes the kept rows another
        # time's; not on the step after a refill: a slow one would read as another gap, for ever
        if (self.models and self.snapshots and abs(stamp - self.snapshots[-1][0]) > timings.GAP_STEPS * self.stamp_every
                and not (self.gap and self.gap.step == self.steps - 1)):
            self._after_a_gap(stamp - self.snapshots[-1][0], stamp)
        # kept as the bytes the agent sent: parsed bodies held for several steps would be
        # thousands of objects reaching the garbage collector's oldest generation each step
        self.snapshots.append((stamp, {h: raw for h in latest if (raw := self.apis[h].allmetrics_raw()) is not None}))
        report.at = stamp
        if self.models:
            with warnings.catch_warnings(), np.errstate(all='ignore'):
                warnings.simplefilter('ignore')
                try:
                    self._score(row, report, self.snapshots[-1][0], latest)
                except Exception as e:  # a bug in scoring must not stop collection
                    self.problems.report('score', 'scoring failed: {!r}'.format(e))
            self._save_flagged(stamp)
        return report

    def _fetch_latest(self):
        """Each host's allmetrics answer for this step (hosts that did not answer are left
        out, and told once); an agent that answers again is listed at once."""
        latest = {}
        wait = min(self.config.api_timeout, max(0.5, self.config.update_every * 0.9))   # the step's own time, at most
        answers = self._read_allmetrics(wait)
        for host, api in self.apis.items():
            try:
                latest[host] = answers[host].result()
                back = self._back_from_outage(host)
                self.unanswered.discard(host)
                if host == self.config.host and (back or self.child_waited):
                    # back (an agent or a parent restarted, a child reconnected): its chart list at
                    # once, so saved models load and charts train now, not at the next minute's look;
                    # an agent that restarted meanwhile (a standalone job's) gets its start-up held
                    self.next_discovery = Due(self.clock(), self.steps)
                    self.child_waited = False
                    if self.models:
                        self._hold_agent_start_up()
                self._answered(host)
            except NetdataError as e:
                if host == self.config.host and self._child_not_back_yet(e):
                    continue
                self.unanswered.add(host)
                since, timeouts = self.outages.get(host, (self.steps, True))
                self.outages[host] = (since, timeouts and e.timed_out is not None)
                late = self.slow.pop(host, None)
                if e.timed_out:   # (told once, and again only once it has answered a while)
                    late = late or [0, 0, 0]
                    late[0], late[2] = late[0] + 1, 0
                    self.slow[host] = late
                slow = ('' if not e.timed_out else
                        ': a step waits for the latest values 0.9 x update_every at most, so an agent slower to '
                        'answer them needs a larger update_every' if wait < self.config.api_timeout
                        else ': api_timeout, raise it for an agent this slow to answer')
                # (a connection reset, then refused, as an agent stops: one outage, one line)
                outage = 'unreachable' if str(e).startswith('cannot reach') and not e.timed_out else None
                self.problems.report('fetch:' + host, '{}{}{}'.format(
                    e, slow, ' (keeping the last values for a minute)' if self._values_kept() else ''), kind=outage,
                    told=host == self.config.host and self._node_not_held_told(e, 'charts'))
        for late in self.slow.values():
            late[1] += 1
        return latest

    def _back_from_outage(self, host):
        """Whether ``host``, answering now, was away (refused, reset, not found: an agent or a
        parent restarted, a child reconnected) or silent for GAP_STEPS steps or more: its chart
        list is read at once, and a restart looked for. Not after a read or two that timed out
        (a lossy link): one chart list and uptime read for each would be a dozen a minute."""
        outage = self.outages.pop(host, None)
        return outage is not None and (not outage[1] or self.steps - outage[0] >= timings.GAP_STEPS)

    def _values_kept(self):
        """Whether the charts still show their last values (a job with no model yet has none;
        they stay empty once the agent has not answered for STALE_SECONDS)."""
        return bool(self.models) and self.fresh_at is not None and \
            time.monotonic() - self.fresh_at < timings.STALE_SECONDS

    def _answered(self, host):
        """``host`` answered this step: its trouble is over, and told so; where its reads timed
        out, once it has answered for SLOW_CLEAR_SECONDS of steps in a row."""
        late = self.slow.get(host)
        if late is not None:
            late[2] += 1
            if late[2] * self.config.update_every < timings.SLOW_CLEAR_SECONDS:
                return
            del self.slow[host]
            if late[0] > 1:
                self.problems.clear('fetch:' + host, 'agent {} answers again ({} of its {} reads since had no answer '
                                                     'in time)'.format(host, late[0], late[1] + 1))
        self.problems.clear('fetch:' + host, 'agent {} answers again'.format(host))

    def _standing_still(self, stamp):
        """Whether the newest collection the agent answers has not moved for STILL_SECONDS (and
        as many steps): a parent goes on answering for a child whose stream stopped with its
        last values, which would be scored, and charted, as the same moment for as long as it
        lasts. Said once, and again when values move on. Only for a job whose charts are all
        its host's (custom models on other nodes have collection intervals not listed here)."""
        now = self.clock()
        if self.stood is None or stamp != self.stood.stamp:
            if 'still' in self.problems:   # (said only once stood was set)
                self.problems.clear('still', 'values from {} move on again, after {:.0f} s'.format(
                    self.config.host, stamp - self.stood.stamp))
            # values that paused for seconds beyond their own pace (a step of update_every 5, a
            # chart collected every 5 s is no pause): a child that restarted (its parent answered
            # for it meanwhile), which no python.d restart tells this job of
            if (self.stood is not None and (self.steps - self.stood.step - 1) * self.config.update_every
                    >= max(timings.PAUSE_SECONDS, self.stamp_every)):
                self._hold_agent_start_up()
            self.stood = Stood(stamp, now, self.steps)
            return False
        limit = max(timings.STILL_SECONDS, 3 * self.stamp_every)
        if now - self.stood.clock < limit or (self.steps - self.stood.step) * self.config.update_every < limit:
            return False
        try:
            stands = time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(stamp))
        except (OverflowError, OSError, ValueError):   # (a time no calendar holds: as the agent gave it)
            stands = '{:g}'.format(stamp)
        self.problems.report('still', 'no new values from {} for {} s (its charts\' last collection stands at '
                                      '{}): a child whose stream to its parent stopped, or an agent that stopped '
                                      'collecting; the charts keep their last values for a minute, then stay empty '
                                      'until values move on'.format(self.config.host, limit, stands))
        return True

    def _after_a_gap(self, seconds, stamp):
        """Rows kept from before a gap would make the gap's whole change read as one step's
        (a false flag after every outage): refill the features from the agent's stored rows
        up to now, or score again once enough new rows came in."""
        if seconds > 0:
            self.log.info("the agent's values moved {:.0f} s on in one step (a gap in its collection, or in this "
                          "job's reads): the features start again after the gap".format(seconds))
        else:
            self.log.info("the agent's clock went back {:.0f} s in one step: the features start again "
                          "from its stored rows".format(-seconds))
        self.snapshots.clear()
        self.gap = Moment(self.steps, stamp)
        try:
            tails, _, unread = self._recent_rows(self.models)
        except Exception as e:  # the models score again once enough steps came in
            self.log.error('cannot read the stored rows after the gap ({!r}): the models score again once enough '
                           'steps came in'.format(e))
            tails, unread = {}, 0
        if unread:
            self.log.info('the agent took over {:g} s to send the stored rows after the gap: the models of {} '
                          'not read by then score again once enough steps came in'.format(
                              timings.REFILL_SECONDS, plural(unread, 'chart')))
        before = {}   # this step's row comes from allmetrics: the stored rows stop before it
        for model_id, (times, raw) in tails.items():
            times = np.asarray(times)
            before[model_id] = (times[times < stamp], np.asarray(raw)[times < stamp])
        if tails and not any(len(times) for times, _ in before.values()):
            # (stored rows all after the time the answers now give: a clock set back)
            self.log.info("no stored row comes before the agent's time now: the models score again once {} steps "
                          "came in".format(self.need))
        self.ring_stamps = None   # the rows held are from before the gap: none of them is kept
        self._rebuild(before)

    def _recent_rows(self, models):
        """The last rows of the models' charts as the steps would have read them, so they score
        from the first step (``stored_rows.on_step_grid``), the agent's newest time, and how many
        charts were not read within REFILL_SECONDS."""
        odd = {}
        read, unread = stored_rows.read_stored(self.api_factory, self.config, stored_rows.charts_of(models),
                                               self.need, PARALLEL_READS, timings.REFILL_SECONDS, odd)
        if odd:
            (host, chart), why = next(iter(odd.items()))
            self.log.error('the stored rows of {} could not be read ({}{}): {} once enough steps came '
                           'in'.format(first_few([c for _, c in odd]), '' if len(odd) == 1 else chart + ': ', why,
                                       'its model scores' if len(odd) == 1 else 'their models score'))
        return stored_rows.on_step_grid(read, models, self.need, self.config.update_every) + (unread,)

    def _rebuild(self, tails):
        """Lay all models out for batch scoring and refill the raw rows they need.

        Also reindexes the flag policy (``tails``' models were retrained: their flag history
        starts again) and counts the rows each model has had. The rows come from the last
        ``need`` allmetrics answers (all columns) and, where those are fewer than needed, from
        the rows the models had before (a model loaded from disk a few steps ago keeps the rows
        it was given) and the training window's last rows (``tails``: the newly trained models),
        so a new model scores on its first step and the others do not pause.
        """
        before = None if self.ring is None or self.ring_stamps is None else (
            self.ring, self.ring_stamps, self.layout.index)
        self.layout = Layout(self.models, every={(host, chart): e for host, api in self.apis.items()
                                                 for chart, e in api.listed_every.items()})
        self.batch = BatchScorer(self.models, self.layout,
                                 feature_blocks(self.config.lags_n, self.config.level_features))
        recent = [(t, self.layout.row({h: json_loads(b) for h, b in raw.items()})[0]) for t, raw in self.snapshots]
        # rows from before a gap in collection (a training's window that ended before it) are
        # not the seconds just before the rows kept since
        since_gap = self.gap.stamp - (self.need + 2) * self.config.update_every if self.gap else -float('inf')
        rows, stamps = ring.refill(
            self.need, self.layout.index, recent,
            before=before,
            tails=[(self.models[m].columns, times, raw) for m, (times, raw) in tails.items()], since=since_gap)
        self.ring_stamps = stamps
        self.ring = absent_as_zero(rows, self.layout.chart_index, self.layout.chart_offsets)
        self.flag_policy.reindex(self.batch.ids, retrained=tails)
        # rows each model has had, to score only once its features are real
        have = (~np.isnan(self.ring[:, self.batch.raw_all]) if self.batch.raw_all.size
                else np.zeros((self.need, 0), bool))
        self.rows_seen = (np.logical_or.reduceat(have, self.batch.raw_offsets, axis=1).sum(axis=0)
                          if self.batch.ids else np.zeros(0, dtype=int))
        self.away = np.zeros(len(self.batch.ids), dtype=int)   # steps in a row each model had no value

    def _score(self, row, report, stamp, answer=None):
        """Push ``row`` (agent time ``stamp``) into the ring, score every model on its
        features, and put their probabilities, flags and what drives a rising flag in
        ``report``; flagged steps are remembered for the next training. ``answer``: the
        agents' answers ``{host: {chart: ...}}`` the row was read from."""
        batch = self.batch
        present = batch.present(row)
        held = self.agent_start_rows
        start_up = bool(held) and held.start - 1 <= self.steps < held.stop
        # an agent seconds old lists charts before their first collection, and its charts' last
        # values are from before it restarted: what is still missing after its start-up (from the
        # step that found it restarted) is told then, not the start-up chart by chart
        self._tell_missing(present, answer, quiet=start_up)
        if answer and not start_up:   # (a custom model's chart collected only seconds into the start-up likewise)
            self._custom_charts_gone(present, answer)
        row = absent_as_zero(row[None, :], self.layout.chart_index, self.layout.chart_offsets)[0]
        if self.unanswered:   # a custom model's other agent unanswered: its values are the last it gave
            present = present & ~self._reads_unanswered(batch.ids)
        # a chart away for GAP_STEPS steps or more (its collector stalled, or it left the answer)
        # and back: its rows kept are from before, and the change across would read as one
        # step's (a false flag after each stall); it scores again once enough steps came in
        back = present & (self.away >= timings.GAP_STEPS)
        self.away = np.where(present, 0, self.away + 1)
        for k in np.nonzero(back)[0].tolist():
            self.ring[:, batch.raw_index[k]] = np.nan
            self.rows_seen[k] = 0
        ring.push(self.ring, self.ring_stamps, row, stamp)
        self.rows_seen = self.rows_seen + present
        filled = fill_missing(self.ring) if np.isnan(self.ring).any() else self.ring
        features = self.config.features(filled)[-1]
        ids, probs, rank, above, excess = batch.score(features)
        for model_id, why in batch.failed.items():
            self.problems.report('scorer:' + model_id, "model '{}' cannot score: {}; it is retrained at the "
                                                       "next training".format(model_id, why))
        scored = present & (self.rows_seen >= self.need)
        hold = None if self.config.flag_hold is None else (rank >= self.config.flag_hold) & scored
        flags = self.flag_policy.update(above & scored, hold, np.where(scored, rank, 0.0),
                                        np.where(scored, excess, -np.inf)) * scored
        starting, own = self.steps in self.agent_start_rows, self.steps in self.own_rows
        unusual = flags   # for training: the agent's start-up is left out where it read unusual
        if own or starting:
            # the job's own training, or the agent's start-up, is no anomaly: no flag rises on
            # it (one already up stays up, and an excess that outlasts it rises after; through
            # a training, so does one on a chart already above the threshold before it began);
            # the training's rows stay in the next training window rather than being left out
            # as flagged, so it becomes ordinary
            allowed = self.was_flagged if starting else self.was_flagged | self.rising_before_training
            flags = flags * np.isin(ids, list(allowed))
            self.flag_policy.held_down(flags)
            unusual = unusual if starting else flags
        if self.reboot_held and flags.any():
            flags = self._held_after_reboot(ids, flags, stamp)
        self.above_before, self.above_ids = self.above_ids, (
            frozenset(ids[k] for k in np.nonzero(above & scored)[0]) if above.any() else frozenset())
        p_list, f_list = probs.tolist(), flags.tolist()
        report.scores.update((ids[k], (p_list[k], f_list[k])) for k in np.nonzero(scored)[0].tolist())
        if self.config.train_exclude_flagged:
            self._remember_episodes(ids, unusual, np.where(scored, rank, 0.0), stamp, own and not starting)
        if self.start_up_pending and self.steps >= held.stop - 1:
            self._start_up_ended(stamp)
        if self.reboot_held:   # (released as their flag's episode ends)
            self.reboot_held &= set(self.episodes)
        # what drives each model: for the log line of a flag that rises now, or every model for
        # the attribution charts (a flag that stays up is not explained again every step)
        if self.config.attribution_charts:
            explain = scored
        else:
            explain = flags.astype(bool) & ~np.isin(ids, list(self.was_flagged))
        self.was_flagged = {ids[k] for k in np.nonzero(flags)[0]}
        for k in np.nonzero(explain)[0]:
            report.drivers[ids[k]] = batch.attribution(k, features)

    def _tell_missing(self, present, answer, quiet=False):
        """Log the models without current values this step (one line per kind, the charts that
        left the answer as a warning) and those whose values are back; ``quiet`` (through an
        agent's start-up): only those back."""
        batch = self.batch
        missing = {batch.ids[k] for k in np.nonzero(~present)[0]}
        if quiet:   # what was told missing and is back is said now; what is missing now, after the start-up
            if len(missing) < len(batch.ids):
                self.problems.clear('missing:all', 'current values are back')
            missing &= self.missing
        elif len(missing) == len(batch.ids) > 1:   # the answer held none of the charts: one line, not one per model
            self.problems.report('missing:all', "no current values for any of the {} models' charts, skipping "
                                                "the step".format(len(missing)))
            missing = self.missing
        else:
            self.problems.clear('missing:all', 'current values are back')
        left, unread = [], []   # charts that left the answer (a warning), and dimensions without values
        for model_id in sorted(missing - self.missing):
            spec = self.specs.get(model_id)
            key = 'missing:' + model_id
            behind = self.layout.stale.get((spec.host, spec.chart)) if spec is not None and spec.chart else None
            if behind is not None:
                # a plugin that died: the agent goes on listing its chart, with its last values
                left.append((key, "model '{}': its chart has not been collected for {:.0f} s (its collector stopped, "
                                  "or stalls), skipping it until it is".format(model_id, behind)))
            elif (spec is not None and spec.chart and answer
                  and spec.chart not in answer.get(spec.host, {spec.chart: 0})):
                # an interface deleted, a container or disk gone: the agent stopped collecting it
                left.append((key, "model '{}': its chart is no longer in the agent's answer (gone, or not collected "
                                  "now), skipping it; its model is removed once the agent no longer lists "
                                  "it".format(model_id)))
            elif spec is not None and spec.columns and answer and len(self._charts_gone(spec, answer)) == len(
                    self._custom_charts_of(spec)):
                # every chart of a custom model stopped (its charts' collector), the node answering
                left.append((key, "model '{}': {} no longer in the agent's answer (gone, or not collected now), "
                                  "skipping it until values are back".format(
                                      model_id, _charts_are(self._charts_gone(spec, answer)))))
            else:
                why = self._why_unread(spec, answer)
                unread.append((key, "model '{}': no current values for its dimensions{}, skipping it".format(
                    model_id, ' ({})'.format(why) if why else '')))
        # one line for the charts a step took away together, one for those that came back
        ids = lambda keys: first_few([k.split(':', 1)[1] for k in keys])
        self.problems.report_all(left, lambda keys: "{} models: their charts are no longer in the agent's answer "
                                                    "(gone, or not collected now), skipping them; a model is removed "
                                                    "once the agent no longer lists its chart: {}".format(
                                                        len(keys), ids(keys)), warning=True)
        self.problems.report_all(unread, lambda keys: "{} models: no current values for their dimensions, skipping "
                                                      "them: {}".format(len(keys), ids(keys)))
        self.problems.clear_all([('missing:' + m, "model '{}': values are back".format(m))
                                 for m in sorted(self.missing - missing)],
                                lambda keys: '{} models: values are back: {}'.format(len(keys), ids(keys)))
        self.missing = missing
        for model_id in missing:   # skipped, said as such: a chart gone before it is told anew
            self.problems.forget('gone:' + model_id)

    def _why_unread(self, spec, answer):
        """What in the answer left a chart model's dimensions without values (``why_no_values``)."""
        if spec is None or not spec.chart or not answer or spec.model_id not in self.models:
            return None
        names = [split_key(c)[2] for c in self.models[spec.model_id].columns]
        return why_no_values(answer.get(spec.host, {}).get(spec.chart), names)

    def _custom_charts_gone(self, present, answer):
        """A custom model scores on while one of its charts has left its agent's answer (a
        sensor's collector stopped, an interface deleted): the chart's last values stand in for
        it (a model that reads a node that does not answer is not scored, and that is told as the
        node's error); a chart gone from an agent that answers would be told nowhere. Said once
        per model, and when back."""
        for k, spec in self._custom_rows():
            if not present[k]:
                continue
            model_id = spec.model_id
            gone = self._charts_gone(spec, answer)
            if gone:
                self.problems.report('gone:' + model_id, "model '{}': {} no longer in the agent's answer (gone, or "
                                     "not collected now): {} last values stand in until {} back".format(
                                         model_id, _charts_are(gone), 'its' if len(gone) == 1 else 'their',
                                         'it is' if len(gone) == 1 else 'they are'), warning=True)
            else:
                self.problems.clear('gone:' + model_id, "model '{}': all its charts are back".format(model_id))

    def _custom_rows(self):
        """``[(row of the batch, spec)]`` of the custom models scored, kept while the models and
        the specs stay the same: the check of every step goes through no chart model's (a job
        of 2000 charts and no custom model spent half a millisecond a step on them)."""
        if self.custom_rows[0] is not self.batch or self.custom_rows[1] is not self.specs:
            specs = self.specs
            rows = [(k, specs[m]) for k, m in enumerate(self.batch.ids)
                    if m in specs and specs[m].chart is None and specs[m].columns]
            self.custom_rows = (self.batch, specs, rows)
        return self.custom_rows[2]

    def _custom_charts_of(self, spec):
        """``[(host, chart)]`` a custom model's columns come from."""
        charts = self.custom_charts.get(spec.model_id)
        if charts is None or charts[0] is not spec.columns:
            charts = (spec.columns, sorted({split_key(c)[:2] for c in spec.columns}))
            self.custom_charts[spec.model_id] = charts
        return charts[1]

    def _charts_gone(self, spec, answer):
        """The charts of a custom model that its agent, answering, left out of its answer (another
        node's as 'host::chart')."""
        return [chart if host == self.config.host else '{}::{}'.format(host, chart)
                for host, chart in self._custom_charts_of(spec) if host in answer and chart not in answer[host]]

    def _remember_episodes(self, ids, flags, rank, t, training_rows):
        """Keep each flag's whole episode for the next training to leave out
        (``flagged_spans.episode_steps``); not through the job's own training."""
        for model_id in flagged_spans.episode_steps(self.episodes, ids, flags, rank, training_rows):
            self._remember_flag(model_id, t)

    def _remember_flag(self, model_id, t):
        """Keep flagged times as intervals, so the next training can leave them out."""
        self.flag_file.changed(flagged_spans.remember(self.flagged, model_id, t, self.config.update_every))

    def _reads_unanswered(self, ids):
        """Which of the models ``ids`` read a host that did not answer this step: their columns
        from it hold its last values, and a model scored on them (the rest moving, those still)
        flagged the outage, then its whole change across it as one step's on its return."""
        return np.array([any(split_key(c)[0] in self.unanswered for c in self.models[m].columns) for m in ids],
                        dtype=bool)

    def _read_allmetrics(self, wait):
        """Each host's allmetrics read, as futures: side by side where custom models read other
        agents, so two of them that hang take one ``wait``, not two (the step stretched, and the
        healthy charts' changes read over two seconds as one's)."""
        def read(api, host):
            return api.allmetrics(timeout=wait, charts=self.wanted.get(host))
        if len(self.apis) == 1:
            (host, api), = self.apis.items()
            done = concurrent.futures.Future()
            try:
                done.set_result(read(api, host))
            except Exception as e:
                done.set_exception(e)
            return {host: done}
        if self.readers is None:
            self.readers = concurrent.futures.ThreadPoolExecutor(max_workers=min(len(self.apis), MAX_READERS),
                                                                 thread_name_prefix='anomalies-read')
        return {host: self.readers.submit(read, api, host) for host, api in self.apis.items()}

    def close(self):
        """Write what the flagged spans' file lacks, stop the trainer, close the connections."""
        if self.flag_file.unsaved:
            self.flag_file.changed(flagged_spans.NEW)   # whatever the time since the last write
            self._save_flagged(self.flag_file.saved_at)
        self.trainer.close()
        if self.readers is not None:
            self.readers.shutdown(wait=False)
        for api in self.apis.values():
            api.close()


def _charts_are(charts):
    """'chart a is' or 'charts a, b are'."""
    return 'chart {} is'.format(charts[0]) if len(charts) == 1 else 'charts {} are'.format(', '.join(charts))

