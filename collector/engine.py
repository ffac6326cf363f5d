"""The detector's per-step loop: collect latest values, score every model, schedule training.

It knows nothing of charts or protocols: ``step()`` returns per-model probability and flag
and which models appeared or went away; the python.d service turns that into dimensions.
"""
import collections
import math
import re
import threading
import time
import warnings

import numpy as np

from . import persist
from .batch import BatchScorer, Layout
from .flags import FlagPolicy
from .features import absent_as_zero, feature_blocks, fill_missing, rows_at
from .netdata_api import PARALLEL_READS, ChartListing, NetdataApi, NetdataError, agent_now, dim_key, json_loads, split_key
from .training import NO_DATA, NO_VALUES, ModelSpec, TrainingRequest, charts_by_host, make_trainer

# steps between training attempts after a failed training (agent away, no data)
RETRY_STEPS = 30
# the next full training with train_every_n 0 (the retired collector's "never retrain"): after the first
NEVER = float('inf')
# an agent that started this recently, with a job this new, lists its charts as its collectors
# start: none in scope yet is not yet an error
YOUNG_AGENT_SECONDS = 120
# how often a job that young looks at its agent's chart list again while none is in scope
SCOPE_WAIT_SECONDS = 5
# saved models of charts no longer listed are removed once older than this (or two windows)
PRUNE_SECONDS = 86400
# seconds between looks at the chart list for charts that appeared (trained at once), went
# away, or still lack a model (one waiting for history); counted on the clock, so python.d's
# failure penalty cannot stretch it, and in steps, so a replay (many steps a second) keeps it
DISCOVER_SECONDS = 60
# how long a step waits for the chart list it asked for; a list slower than that (thousands
# of charts, a busy agent) is taken up by the first step after it came, and the steps between
# score as usual
LIST_WAIT_SECONDS = 0.2
# the agent's clock moving more than this many update_every in one step is a gap in collection
# (the agent or this job stopped, a child reconnected, the host slept): the rows before it are
# not the last few seconds, so the features start again from the agent's stored rows
GAP_STEPS = 5
# the agent's newest collection standing still this long (and as many steps) is a child whose
# stream stopped, or collection that did: its last values are not scored as new ones
STILL_SECONDS = 15
# the longest the step after a gap spends reading stored rows (an agent slow to send them):
# the charts not read by then score again once enough steps came in
REFILL_SECONDS = 5.0
# no flag rises in the rows read while the job's own training runs, for at most this many steps
# (a training that takes longer, a big window on a slow box, no longer hides what happens meanwhile)
OWN_TRAINING_MAX_STEPS = 60
# after a flag, the steps left out of the next training go on while the chart reads at least
# this probability (one normal step in ten does), through dips of up to EPISODE_GAP steps
EPISODE_RANK = 0.9
EPISODE_GAP = 2
# the flagged spans are written beside the models when a flag rises, and while one lasts at
# most this often (agent seconds): python.d.plugin is stopped by a signal, never by a close()
FLAGS_SAVE_SECONDS = 15


def _count(noun, ids):
    return noun if len(ids) == 1 else '{} {}s'.format(len(ids), noun)


def _listed(ids, n=5):
    """The first ``n`` ids, and how many more."""
    more = ' (+{} more)'.format(len(ids) - n) if len(ids) > n else ''
    return ', '.join(ids[:n]) + more


def _gist(reason):
    """A reason without its numbers: '6069 of 6069 values' and '6090 of 6090 values' say one thing."""
    return None if reason is None else re.sub(r'\d+(\.\d+)?', 'N', reason)


class _ProblemLog:
    """Logs a problem when it starts and when it clears, not on every step."""

    def __init__(self, logger):
        self.logger = logger
        self.active = {}

    def report(self, key, message):
        if self.active.get(key) != message:
            self.active[key] = message
            self.logger.error(message)

    def clear(self, key, message=None):
        if self.active.pop(key, None) is not None and message:
            self.logger.info(message)


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


class AnomalyDetector:
    def __init__(self, config, logger, trainer=None, api_factory=NetdataApi.from_config, clock=time.monotonic):
        self.config = config
        self.log = logger
        self.problems = _ProblemLog(logger)
        self.trainer = trainer or make_trainer(config)
        self.api_factory = api_factory
        self.clock = clock
        self.created = clock()
        self.told_scope_wait = False   # a young agent with no chart in scope yet: said once
        self.need = config.rows_needed
        self.hosts = [config.host] + sorted({d[0] for m in config.custom_models for d in m.dimensions} - {config.host})
        self.apis = {h: api_factory(config, h) for h in self.hosts}
        self.models = {}
        self.specs = {}
        self.snapshots = collections.deque(maxlen=self.need)
        self.steps = 0
        self.next_training = 0
        self.failed_trainings = 0   # whole trainings failed in a row
        self.discover_every = max(1, int(DISCOVER_SECONDS // config.update_every))   # in steps
        self.next_discovery = (clock() + DISCOVER_SECONDS, self.discover_every)   # (clock, step)
        self.listing = None   # the chart list being read (ChartListing), until a step takes it up
        # a replay waits for each list on a stopped clock, as for each training (evaluate)
        self.list_wait = LIST_WAIT_SECONDS
        self.untrained = {}  # model id -> why its last training failed
        self.retry_at = {}   # model id -> (failed trainings in a row, step before which no discovery retries it)
        self.training_quiet = False  # the training in flight only retries models that failed before
        self.training_step = 0       # the step the training in flight started at
        self.gap = None              # (step, agent time) of the last gap in collection
        self.stood = None            # (agent time, clock, step) when the agent's newest collection last moved
        self.prune_due = False       # saved models of gone charts to remove, once the agent lists all
        self.waiting = set()  # models whose chart has less than train_min_n_secs of history
        self.waiting_since = {}  # model id -> (step, the chart's listed seconds) when its wait began
        self.training_all = False  # whether the training in flight fits every chart on the rolling window
        self.history_seen = None   # seconds of history the agent held at the last such training
        self.trainings = 0
        self.initial_done = False
        self.training_fixed = False   # whether the training in flight reads initial_train_data_after/before
        self.training_started = None
        self._pending = Step()  # changes made outside step() (start), reported by the next step
        self.missing = set()    # models whose dimensions had no value last step
        self.wanted = {}        # host -> charts to ask for each step (all until the first discovery)
        self.stamp_every = config.update_every   # seconds the agent's clock moves on in a step, at most
        self.models_dir = persist.resolve_dir(config.models_dir, config.job_name, config.host)
        self.flag_policy = FlagPolicy(config.flag_min_n, config.flag_window_n, config.flag_rearm_n,
                                      config.flag_lasting_n)
        self.flagged = {}       # model id -> [[first, last] agent time of flagged steps], for training
        self.unread = 0         # charts the last refill of stored rows did not reach in time
        self.was_flagged = set()  # models flagged last step (their flag's drivers are already told)
        self.flags_unsaved = None   # 'new' (a span began), 'grown', or None: what flagged lacks on disk
        self.flags_saved_at = 0.0   # agent time of the last write of flagged
        self.episodes = {}      # model id -> steps under EPISODE_RANK since its flag's episode last read unusual
        self.disk_checked = set()  # models whose saved file was looked for (once per job)
        self.unlisted = set()  # models whose chart the last chart listing did not have
        self.regrown = {}      # model id -> the dimensions listed when it was retrained for new ones
        self.own_rows = (0, 0)     # [first, end) rows whose features hold the job's own last training
        # a replay waits for each training on a stopped clock, so its rows never show one; on an
        # agent every training shows in the rows read from its start to `need` after its end
        self.trainings_take_agent_time = True
        self.kept_flagged = set()  # models whose last training kept their flagged steps (said once)
        self.layout = self.ring = self.ring_stamps = None   # laid out by _rebuild
        self._rebuild({})

    # ----- scope -------------------------------------------------------------------------
    def discover(self, charts=None):
        """Which models the configuration asks for, from the agent's chart list."""
        if charts is None:
            charts = self.apis[self.config.host].charts()
        specs = {}
        for chart in sorted(charts):
            if self.config.chart_matches(chart):
                specs[chart] = ModelSpec(chart, self.config.host, chart=chart)
        for m in self.config.custom_models:   # their names are no chart's in scope (config.py)
            specs[m.name] = ModelSpec(m.name, self.config.host,
                                      columns=tuple(dim_key(h, c, d) for h, c, d in m.dimensions))
        return specs

    # ----- training ----------------------------------------------------------------------
    @property
    def _first_window_fixed(self):
        """Whether the next training is the first one, on initial_train_data_after/before."""
        return not self.initial_done and self.config.initial_train_data_after > 0

    def _training_window(self):
        cfg = self.config
        if self._first_window_fixed:
            return cfg.initial_train_data_after, cfg.initial_train_data_before
        # relative to the agent's own clock, so a replayed or skewed agent works too
        before = -cfg.offset_n_secs if cfg.offset_n_secs else 0
        return before - cfg.train_n_secs, before

    def _maybe_start_training(self, step, wait=LIST_WAIT_SECONDS):
        """Retrain everything when due; in between, pick up charts that appeared or went away.

        Both start from a fresh chart list, read in the background: this step goes on
        without it if it takes longer than ``wait`` seconds (None: as long as it takes).
        """
        if self.listing is None:
            full_due = self.steps >= self.next_training
            discovery_due = self.clock() >= self.next_discovery[0] or self.steps >= self.next_discovery[1]
            if self.trainer.busy or not (full_due or discovery_due):
                return
            self.next_discovery = (self.clock() + DISCOVER_SECONDS, self.steps + self.discover_every)
            self.listing = ChartListing(self.apis[self.config.host], in_thread=wait is not None)
        if not self.listing.ready(wait):
            return
        listing, self.listing = self.listing, None
        full_due = self.steps >= self.next_training
        try:
            charts = listing.result()
            specs = self.discover(charts)
        except NetdataError as e:
            self.problems.report('charts', 'cannot list charts: {}'.format(e))
            if full_due:
                self.next_training = self.steps + RETRY_STEPS
            return
        self.problems.clear('charts')
        if self.models_dir and not self.disk_checked and not self.models:   # the agent did not answer at start
            self._start_from_disk(charts, step)
            if self.models:
                return   # the charts without a usable saved model train at the next step
        if self.models_dir and self.prune_due:
            try:
                self._prune_saved(specs)
            except Exception as e:  # a models dir that cannot be read: its files stay
                self.prune_due = False
                self.log.error('cannot remove old saved models from {} (models_dir): {!r}'.format(self.models_dir, e))
        # a chart missing from two listings in a row is gone: an agent just restarted lists some
        # of its charts only seconds later, and their saved models should not be deleted for it
        missing = set(self.models) - set(specs)
        gone, self.unlisted = sorted(missing & self.unlisted), missing
        for model_id in gone:
            del self.models[model_id]
            # its flagged spans stay (until no training window reaches them): a chart that an
            # incident took away for a while (its collector restarted) comes back with the
            # incident in its history, and its new model must not learn it as normal
            self.regrown.pop(model_id, None)
            if self.models_dir:
                persist.remove(self.models_dir, model_id)
            self.missing.discard(model_id)
            self.kept_flagged.discard(model_id)
            self.disk_checked.discard(model_id)
            for key in ('missing:', 'scorer:'):
                self.problems.active.pop(key + model_id, None)
            if model_id in step.added:   # trained and gone in one step: nothing was shown to take down
                step.added.remove(model_id)
            else:
                step.removed.append(model_id)
            self.log.info("model '{}' removed: its chart is gone".format(model_id))
        if gone:
            self._rebuild({})
        self.waiting &= set(specs)   # gone charts, with a model or still without one
        self.disk_checked &= set(specs)   # looked up again if they come back; charts that come and go stay few
        self.untrained = {m: why for m, why in self.untrained.items() if m in specs}
        self.retry_at = {m: at for m, at in self.retry_at.items() if m in specs}
        # a model kept through one listing without its chart is still read and scored: the
        # agent lists some charts late, but serves them all along
        held = [self.specs[m] for m in self.unlisted if m in self.specs and m in self.models]
        self.specs = specs
        self._ask_for(list(specs.values()) + held)
        if not specs:
            if self._no_charts_in_scope():   # an agent starting: looked at again in a few seconds
                self.next_discovery = (self.clock() + SCOPE_WAIT_SECONDS, self.steps + SCOPE_WAIT_SECONDS)
            if full_due:   # tried again soon; a discovery's empty list leaves the schedule alone
                self.next_training = self.steps + RETRY_STEPS
            return
        self.problems.clear('scope')
        new_dimensions = self._new_dimensions(charts, specs, tell=not full_due)
        if full_due:
            todo = list(specs.values())
            self.next_training = self.steps + self.config.train_every_n if self.config.train_every_n else NEVER
        else:
            # a chart that failed to train (a typo in a custom model, a chart with no values) is
            # retried at discoveries further and further apart, not every minute for good; one
            # that waits for history, once it may have it (``_report_untrained``)
            todo = [s for model_id, s in specs.items() if model_id not in self.models
                    and self.steps >= self.retry_at.get(model_id, (0, 0))[1]]
            todo = self._saved_for_new_charts(charts, todo, step)
            todo += [specs[m] for m in new_dimensions]
            if not todo:
                return
        # a training of every chart on the rolling window tells how much history the agent holds
        self.training_fixed = self._first_window_fixed
        self.training_all = not self.training_fixed and len(todo) == len(specs)
        after, before = self._training_window()
        try:
            api = self.apis[self.config.host]
            self.trainer.start(TrainingRequest(self.config, todo, after, before, self._exclusions(), self.models_dir,
                                               api.listed_seconds, api.listed_at, new_dimensions))
        except Exception as e:  # e.g. no memory or file descriptors for the training process
            self.problems.report('training', 'cannot start training: {!r}'.format(e))
            if full_due:   # (charts still without a model are tried again at each discovery)
                self.next_training = self.steps + RETRY_STEPS
            return
        self.training_started, self.training_step = self.clock(), self.steps
        # the row this step reads was collected before the process started; the next ones may not be
        # (a training that starts while the last one's rows are still held holds on from them)
        first = self.own_rows[0] if self.own_rows[0] <= self.steps + 2 <= self.own_rows[1] else self.steps + 2
        self.own_rows = (first, self.steps + 2 + OWN_TRAINING_MAX_STEPS)
        self.training_quiet = not full_due and all(s.model_id in self.waiting or s.model_id in self.untrained
                                                   for s in todo)
        if not self.training_quiet:
            self.log.info('training {} model{} on up to {} s of history{}'.format(
                len(todo), '' if len(todo) == 1 else 's', int(before - after),
                '' if full_due else ' (new charts or dimensions)'))

    def _ask_for(self, specs):
        """The charts each step asks for: those of ``specs``. A step's time is the newest
        collection among them, so where all are collected less often than the job steps (a
        collector at update_every 10) it moves on by that much at once, which is no gap."""
        self.wanted = charts_by_host(specs)
        listed = self.apis[self.config.host].listed_every
        every = [listed[c] for c in self.wanted.get(self.config.host, ()) if c in listed]
        self.stamp_every = max(self.config.update_every, min(every, default=self.config.update_every))

    def _no_charts_in_scope(self):
        """An error, but for a job started with its agent: said once as the wait it is. A job
        with saved models modelled charts before, so an agent that lists none of them is one
        (re)starting, whose collectors list their charts in the next seconds, however much
        history it kept (dbengine). Whether the job waits for its agent."""
        said = 'no charts match charts_regex {!r} and no custom_models are set'.format(self.config.charts_regex)
        agent_age = max(self.apis[self.config.host].listed_seconds.values(), default=0)
        restarted = bool(self.models_dir) and persist.has_models(self.models_dir)
        if (agent_age < YOUNG_AGENT_SECONDS or restarted) and self.clock() - self.created < YOUNG_AGENT_SECONDS:
            if not self.told_scope_wait:
                self.told_scope_wait = True
                self.log.info(said + ' yet: {}; looking again'.format(
                    'the agent lists none of the charts modelled before (it is starting, and lists its charts '
                    'as its collectors start)' if restarted else
                    'the agent has collected for {:.0f} s and lists its charts as its collectors start'.format(
                        agent_age)))
            return True
        self.problems.report('scope', said + ': nothing to model; the charts list is read again every {} s, and '
                                             'charts that match are modelled when they appear'.format(DISCOVER_SECONDS))
        return False

    def _new_dimensions(self, charts, specs, tell=True):
        """Modelled charts the agent now lists with a dimension their model lacks (a process
        group that started, a new disk or interrupt), and those dimensions: each is retrained
        alone at once, rather than left unseen until the next full training, and said once.
        Once per set of listed dimensions: one listed but never collected is not retrained for
        again and again. The training leaves out the rows since they first had a value
        (``training.since_new``)."""
        out = {}
        for model_id, fm in sorted(self.models.items()):
            spec = specs.get(model_id)
            if spec is None or spec.chart is None:
                continue
            listed = frozenset(charts.get(spec.chart, ()))
            new = sorted(listed - {split_key(c)[2] for c in fm.columns})
            if new and self.regrown.get(model_id) != listed:
                self.regrown[model_id] = listed
                if tell:
                    self.log.info("model '{}': new dimension{} {}: retraining it".format(
                        model_id, '' if len(new) == 1 else 's', ', '.join(new[:5]) + (' ...' if len(new) > 5 else '')))
                out[model_id] = tuple(new)
        return out

    def _saved_for_new_charts(self, charts, todo, step):
        """Load the saved models of charts the agent lists only now (it lists some a while
        after a restart); the rest of ``todo`` still needs training."""
        new = {s.model_id: s for s in todo if s.model_id not in self.disk_checked}
        if not new or not self.models_dir:
            return todo
        try:
            loaded, metas = self._load_from_disk(charts, new)
            if loaded:
                now = self._add_loaded(loaded, step)
                self.log.info('loaded {} saved model{} for charts that appeared (oldest trained {:.0f} s ago): '
                              '{}'.format(len(loaded), '' if len(loaded) == 1 else 's', self._age(metas, now),
                                          _listed(sorted(loaded))))
        except Exception as e:  # a broken models dir must never stop the job: train them instead
            self.log.error('cannot load saved models from {} (models_dir): {!r}'.format(self.models_dir, e))
            return todo
        return [s for s in todo if s.model_id not in loaded]

    def _collect_training(self, step):
        result = self.trainer.poll()
        if result is None:
            return
        took = self.clock() - self.training_started if self.training_started else 0.0
        self.trainings += 1
        # the training process's CPU, memory, forks and reads show in the rows read while it ran
        # (this step's too, however short it was), and in the features for `need` rows after
        self.own_rows = (self.own_rows[0], self.steps + 1 + self.need) if self.trainings_take_agent_time else (0, 0)
        if result.error:
            # retried ever further apart (30 steps, doubling up to train_every_n): a training that
            # keeps failing (killed for memory, an agent that lists charts but cannot give their
            # history) would otherwise start a process every 30 s for good, and each one's rows
            # raise no flag
            self.failed_trainings += 1
            delay = min(RETRY_STEPS * 2 ** min(self.failed_trainings - 1, 10),
                        max(RETRY_STEPS, self.config.train_every_n))
            self.problems.report('training', 'training failed: {} (trying again in {} steps)'.format(
                result.error, delay))
            if self.config.train_every_n or self.training_all:   # with 0, only a first training is tried again
                self.next_training = min(self.next_training, self.steps + delay)
            return
        self.failed_trainings = 0
        self.problems.clear('training', 'training works again')
        if result.save_error:
            self.problems.report('save', result.save_error)
        else:
            self.problems.clear('save', 'models are saved again')
        self.initial_done = True
        for line in result.problems[:5]:
            self.log.warning('training data: {}'.format(line))
        if len(result.problems) > 5:
            self.log.warning('training data: {} more like these'.format(len(result.problems) - 5))
        tails = {}
        first_models = not self.models   # the job's first: fitted on minutes, on a young agent
        for model_id, fm in result.models.items():
            if model_id not in self.specs:
                continue
            self._tell_flags_kept(model_id, fm.info)
            if 'new_dimensions_since' in fm.info:
                self._left_out_as_new(model_id, fm.info['new_dimensions_since'], fm.info['window'][1])
            for reason in fm.info.get('fallback_from', ()):
                self.log.warning("model '{}': {} failed ({}), using {}".format(
                    model_id, self.config.model, reason, fm.model_name))
            if model_id not in self.models:
                step.added.append(model_id)
            self.models[model_id] = fm
            self.problems.active.pop('scorer:' + model_id, None)   # the new model's trouble is told anew
            if model_id in result.tails:
                tails[model_id] = result.tails[model_id]
        if result.models:   # else nothing changed: the scoring keeps its rows
            self._rebuild(tails)
        new_reasons = self._report_untrained(result)
        # (the first models too when trained apart from a full training: charts waiting for
        # history are tried again by their own history, and charts collected every 2, 5 or 10 s
        # reach it at other steps; without it they stood until train_every_n, and a young
        # agent's false flags rose by a third)
        if result.models and (self.training_all or first_models):
            self._train_again_as_history_grows(result.history)
        if not result.models and (not result.errors or (self.training_quiet and not new_reasons)):
            return   # charts still wait for history, or a retry failed as before: said once already
        sampled = [fm.info['rows'] for fm in result.models.values() if 'sampled_from' in fm.info]
        self.log.info('trained {} model{} on {} rows{} in {:.1f}s ({:.1f} cpu-s){}'.format(
            len(result.models), '' if len(result.models) == 1 else 's', result.rows,
            ' ({} of them on a sample of {} rows: train_max_n, or the model\'s own cap)'.format(
                len(sampled), max(sampled)) if sampled else '',
            took, result.cpu_seconds, ', {} not trained'.format(len(result.errors)) if result.errors else ''))

    def _left_out_as_new(self, model_id, since, end):
        """The rows since a new dimension first had a value, left out of its chart's training,
        are left out of the next full training too, as flagged steps are, and so are the rows
        read until the retrained model may flag (its training and the features' reach after
        it, where no flag rises): it flagged such an incident 10-20 s after its training, and
        the rows in between were learned as normal."""
        self.log.info("model '{}': its last {:.0f} s, since its new dimension first had a value, are left out of "
                      "its training: what it does now is news to the model".format(model_id, end - since + 1))
        if self.config.train_exclude_flagged:
            now = self.snapshots[-1][0] if self.snapshots else end
            spans = self.flagged.setdefault(model_id, [])
            spans.append([since, max(end, now) + self.need * self.config.update_every])
            spans.sort()
            self.flags_unsaved = 'new'

    def _tell_flags_kept(self, model_id, info):
        """Say once, when it starts, that a model trains on its flagged steps (not at every
        training while they are in its window)."""
        kept = 'flagged_events_kept' in info or 'flagged_share_kept' in info
        if kept and model_id not in self.kept_flagged:
            if 'flagged_share_kept' in info:
                self.log.info("model '{}': flagged for {:.0%} of its training window, trained on all of it "
                              "(a lasting change becomes the new normal)".format(model_id, info['flagged_share_kept']))
            else:
                self.log.info("model '{}': flagged {} separate times in its training window, trained on all of it "
                              "(something the node does again and again becomes ordinary)".format(
                                  model_id, info['flagged_events_kept']))
        (self.kept_flagged.add if kept else self.kept_flagged.discard)(model_id)

    def _train_again_as_history_grows(self, history):
        """While the agent holds less than the window (a young agent), train again once its
        history has doubled (or train_every_n steps on, whichever is first), so the first models,
        fitted on minutes, do not stand for all of train_every_n. Not again on an agent whose
        history stopped growing (one that keeps less than train_n_secs)."""
        grew = self.history_seen is None or history >= 1.5 * self.history_seen
        self.history_seen = history
        if grew and history < 0.9 * self.config.train_n_secs and self.config.train_every_n:
            every = self.config.update_every
            self.next_training = min(self.next_training, self.steps + max(RETRY_STEPS, int(history // every)))

    def _report_untrained(self, result):
        """One log line per reason (listing the models), and only when a model's reason changes;
        one line when models start waiting for history, not one per retry. Whether any reason
        is new; a failed model's next retry is set further away each time."""
        self._stop_endless_waits(result)
        by_reason = {}
        for model_id, reason in sorted(result.errors.items()):
            if _gist(self.untrained.get(model_id)) != _gist(reason):   # not again for new counts alone
                by_reason.setdefault(reason, []).append(model_id)
            self.untrained[model_id] = reason
            self._back_off(model_id)
        for model_id in result.models:
            self.untrained.pop(model_id, None)
            self.retry_at.pop(model_id, None)
        listed = self.apis[self.config.host].listed_seconds
        for model_id, history in result.waiting.items():
            # tried again once it may have the history, not at every discovery before: each
            # training holds every chart's new flags while it runs. A history of 0 is one the
            # training could not tell (a failed read, no values yet): the chart list's, if any,
            # else at discoveries further and further apart, the first a minute on
            self.untrained.pop(model_id, None)
            spec = self.specs.get(model_id)
            if not history and spec is not None and spec.columns is None and spec.host == self.config.host:
                history = listed.get(spec.chart) or 0
            if history > 0:
                short = max(0, result.min_history - history)
                self.retry_at[model_id] = (0, self.training_step + max(self.discover_every,
                                                                       -(-int(short) // self.config.update_every)))
            else:
                self._back_off(model_id)
        for reason, ids in by_reason.items():
            self.log.error("{} not trained: {}{}: {}".format(_count('model', ids), reason, self._window_note(reason),
                                                              _listed(ids)))
        newly = sorted(set(result.waiting) - self.waiting)
        self.waiting = (self.waiting - set(result.models) - set(result.errors)) | set(result.waiting)
        fresh = [m for m in newly if m not in self.models]
        kept = [m for m in newly if m in self.models]
        so_far = max(result.waiting.values(), default=0)
        if fresh:
            self.log.info("{} waiting for {} s of history before training (train_min_n_secs; {} s so far{}): {}".format(
                _count('model', fresh), result.min_history, so_far, self._window_note(NO_DATA), _listed(fresh)))
        if kept:
            self.log.info("{} kept as loaded: the agent holds {} s of history, under train_min_n_secs ({} s): "
                          "{}".format(_count('model', kept), so_far, result.min_history, _listed(kept)))
        return bool(by_reason)

    def _window_note(self, reason):
        """Where the training window was, for a reason that says it held too little: a window the
        job's keys put elsewhere than the last train_n_secs (an offset beyond the agent's history,
        a first window the agent does not hold) reads as a chart without data otherwise."""
        if not (reason in (NO_DATA, NO_VALUES) or 'rows of history' in reason):
            return ''
        if self.training_fixed:
            return (' in the window initial_train_data_after/before ({} to {}; the rolling window of train_n_secs '
                    'is tried next)'.format(self.config.initial_train_data_after,
                                            self.config.initial_train_data_before))
        if self.config.offset_n_secs:
            return ' in the window ending offset_n_secs ({} s) back'.format(self.config.offset_n_secs)
        return ''

    def _back_off(self, model_id):
        """Try ``model_id`` again at discoveries further and further apart (one, two, four, ...
        up to 32 discoveries after this training)."""
        tries = self.retry_at.get(model_id, (0, 0))[0] + 1
        self.retry_at[model_id] = (tries, self.training_step + self.discover_every * 2 ** min(tries - 1, 5))

    def _stop_endless_waits(self, result):
        """A chart the agent lists without its history growing (never collected, an agent that
        keeps no history) is not young: after twice the wait it would need, plus two
        discoveries, it is an error like any chart without data, retried further and further apart."""
        listed = self.apis[self.config.host].listed_seconds
        limit = 2 * result.min_history + 2 * DISCOVER_SECONDS
        for model_id in list(result.waiting):
            chart = self.specs[model_id].chart if model_id in self.specs else model_id
            seen = listed.get(chart)
            since = self.waiting_since.get(model_id)
            if since is None or since[1] != seen:   # its history moved: a young chart, its wait starts now
                self.waiting_since[model_id] = (self.steps, seen)
            elif model_id not in self.models and (self.steps - since[0]) * self.config.update_every > limit:
                del result.waiting[model_id]
                result.errors[model_id] = 'the agent lists the chart but its history has not grown in {} s'.format(
                    limit)
        for model_id in set(self.waiting_since) - set(result.waiting) - set(result.errors):
            del self.waiting_since[model_id]

    def _rebuild(self, tails):
        """Lay all models out for batch scoring and refill the raw rows they need.

        The rows come from the allmetrics answers kept since before the training (all
        columns) and, where those are fewer than needed, from the rows the models had before
        (a model loaded from disk a few steps ago keeps the rows it was given) and the
        training window's last rows (``tails``: the newly trained models), so a new model
        scores on its first step and the others do not pause.
        """
        before = self.ring, self.ring_stamps, self.layout
        self.layout = Layout(self.models)
        self.batch = BatchScorer(self.models, self.layout,
                                 feature_blocks(self.config.lags_n, self.config.level_features))
        ring = np.full((self.need, len(self.layout)), np.nan)
        stamps = np.full(self.need, np.nan)   # the agent time of each row, to tell which rows may be kept
        rows = [self.layout.row({h: json_loads(b) for h, b in raw.items()})[0] for _, raw in self.snapshots]
        if rows:
            ring[self.need - len(rows):] = np.vstack(rows)
            stamps[self.need - len(rows):] = [t for t, _ in self.snapshots]
        room = self.need - len(rows)   # rows the kept answers do not fill
        oldest = self.snapshots[0][0] if self.snapshots else float('inf')
        # rows from before a gap in collection (a training's window that ended before it) are
        # not the seconds just before the rows kept since
        since_gap = self.gap[1] - (self.need + 2) * self.config.update_every if self.gap else -float('inf')
        if room > 0:
            old_ring, old_stamps, old_layout = before
            if old_ring is not None and old_stamps is not None:
                kept = (old_stamps < oldest) & (old_stamps >= since_gap)   # never rows of before a gap
                old_rows, old_times = old_ring[kept][-room:], old_stamps[kept][-room:]
                shared = [c for c in self.layout.columns if c in old_layout.index]
                if len(old_rows) and shared:
                    at = slice(room - len(old_rows), room)
                    ring[at, [self.layout.index[c] for c in shared]] = old_rows[:, [old_layout.index[c] for c in shared]]
                    stamps[at] = old_times
            for model_id, (times, raw) in tails.items():
                times = np.asarray(times, dtype=np.float64)
                keep = (times < oldest) & (times >= since_gap)
                raw, times = np.asarray(raw)[keep][-room:], times[keep][-room:]
                if len(raw):
                    cols = [self.layout.index[c] for c in self.models[model_id].columns]
                    ring[room - len(raw):room, cols] = raw
                    stamps[room - len(raw):room] = np.fmax(stamps[room - len(raw):room], times)
        self.ring_stamps = stamps
        ring = self.ring = absent_as_zero(ring, self.layout.chart_index, self.layout.chart_offsets)
        self.flag_policy.reindex(self.batch.ids, retrained=tails)
        # rows each model has had, to score only once its features are real
        have = ~np.isnan(ring[:, self.batch.raw_all]) if self.batch.raw_all.size else np.zeros((self.need, 0), bool)
        self.rows_seen = (np.logical_or.reduceat(have, self.batch.raw_offsets, axis=1).sum(axis=0)
                          if self.batch.ids else np.zeros(0, dtype=int))

    def _fetch_latest(self):
        latest = {}
        for host, api in self.apis.items():
            try:
                latest[host] = api.allmetrics(timeout=min(self.config.api_timeout, max(0.5, self.config.update_every * 0.9)),
                                              charts=self.wanted.get(host))
                if host == self.config.host and 'fetch:' + host in self.problems.active:
                    # back (an agent or a parent restarted): its chart list at once, so saved models
                    # load and charts train now, not at the next minute's look or retry
                    self.next_discovery = (self.clock(), self.steps)
                self.problems.clear('fetch:' + host, 'agent {} answers again'.format(host))
            except NetdataError as e:
                self.problems.report('fetch:' + host, '{} (keeping last values until it answers)'.format(e))
        return latest

    def start(self):
        """Load the saved models that still fit, and start training the rest now."""
        if self.models_dir:
            self._load_flagged()
            self._start_from_disk()
        self._maybe_start_training(self._pending, wait=None)   # check() tells what the job starts with

    def _load_flagged(self):
        """The spans flagged before a restart, so the next training leaves them out as well."""
        if not self.config.train_exclude_flagged:
            return
        try:
            spans, reason = persist.load_flagged(self.models_dir)
        except Exception as e:  # steers training only: never a reason not to start
            spans, reason = {}, repr(e)
        if reason:
            self.log.warning('the flagged steps saved in {} (models_dir) are not used: {}'.format(
                self.models_dir, reason))
        for model_id, saved in spans.items():
            self.flagged[model_id] = saved + self.flagged.get(model_id, [])
        if spans:
            self.log.info('loaded the flagged steps of {} model{} (left out of their next training): {}'.format(
                len(spans), '' if len(spans) == 1 else 's', _listed(sorted(spans))))

    def _save_flagged(self, now):
        """Write the flagged spans when a new one began, else while they grow every
        ``FLAGS_SAVE_SECONDS`` (``now`` is agent time); a write that fails is told and retried."""
        if not self.models_dir or not self.flags_unsaved:
            return
        if self.flags_unsaved != 'new' and 0 <= now - self.flags_saved_at < FLAGS_SAVE_SECONDS:
            return
        self.flags_saved_at = now
        self._exclusions()   # drops the spans no training window reaches any more (train_every_n 0 never trains)
        try:
            persist.save_flagged(self.models_dir, self.flagged)
        except Exception as e:
            # the reason without the temporary file's random name, so that the line is said once
            why = e.strerror if isinstance(e, OSError) and e.strerror else e
            self.problems.report('save-flags', 'cannot save the flagged steps in {} (models_dir): {} (a restarted '
                                               'job would train on them)'.format(self.models_dir, why))
            self.flags_unsaved = 'grown'   # tried again FLAGS_SAVE_SECONDS on, or when a new span begins
            return
        self.flags_unsaved = None
        self.problems.clear('save-flags', 'the flagged steps are saved again')

    def _start_from_disk(self, charts=None, step=None):
        try:
            self._load_saved(charts, step)
        except Exception as e:  # a broken models dir must never stop the job
            self.log.error('cannot load saved models from {} (models_dir): {!r}'.format(self.models_dir, e))

    def _load_saved(self, charts=None, step=None):
        """Load every saved model that still fits, on the first chart list the agent gives."""
        if charts is None:
            try:
                charts = self.apis[self.config.host].charts()
            except NetdataError:
                return  # the training path reports an unreachable agent, and loads them once it answers
        specs = self.discover(charts)
        self.prune_due = True   # once the agent has listed all it will (_prune_saved)
        loaded, metas = self._load_from_disk(charts, specs)
        if not loaded:
            return
        self.specs = specs
        self._ask_for(specs.values())
        now = self._add_loaded(loaded, step or self._pending)
        self.initial_done = True
        every = self.config.update_every
        age = self._age(metas, now)
        if self.config.train_every_n:
            due_in = max(0, int((self.config.train_every_n * every - age) // every))
            regrow_in, trained_on = self._regrow_loaded(metas)
            due = 'next full training in {} steps'.format(min(due_in, regrow_in))
            if regrow_in < due_in:
                due += ' (they were fitted on {:.0f} s of history: again {} the agent holds twice that)'.format(
                    trained_on, 'now that' if regrow_in == 0 else 'once')
            self.next_training = self.steps + min(due_in, regrow_in)   # the agent may have answered only later
        else:
            self.next_training, due = NEVER, 'not retrained (train_every_n 0)'
        self.next_discovery = (self.clock(), self.steps)  # train the charts without a usable saved model at once
        self.log.info('loaded {} saved models from {} (oldest trained {:.0f} s ago); {}'.format(
            len(loaded), self.models_dir, age, due))

    def _prune_saved(self, specs):
        """Remove the saved models of charts gone while the job was stopped (containers, process
        groups, disks), saved more than two training windows, two retrainings and a day ago:
        every file in use is newer. Only from a chart list read YOUNG_AGENT_SECONDS into the
        job: an agent starting lists its charts as its collectors start, and after a weekend
        off every file is over a day old. Not with train_every_n 0: a model trained once is
        never saved again (a running job removes a gone chart's itself)."""
        if self.clock() - self.created < YOUNG_AGENT_SECONDS:
            return
        self.prune_due = False
        cfg = self.config
        older_than = (max(2 * cfg.train_n_secs, PRUNE_SECONDS, 2 * cfg.train_every_n * cfg.update_every)
                      if cfg.train_every_n else float('inf'))
        old = persist.prune(self.models_dir, specs, older_than)
        if old:
            self.log.info('removed {} saved model{} of charts the agent no longer lists: {}'.format(
                len(old), '' if len(old) == 1 else 's', _listed(old)))

    def _regrow_loaded(self, metas):
        """Steps until loaded models fitted on a young agent's minutes are retrained as its
        history doubles, as they would have been had the job not restarted (a restart to apply
        a config edit kept them for all of train_every_n), and the history they were fitted on;
        never for models fitted on (nearly) the whole window."""
        every = self.config.update_every
        spans = []
        for meta in metas.values():
            w = meta.get('window')
            try:
                span = float(w[1]) - float(w[0]) + every
            except (TypeError, ValueError, IndexError, KeyError):   # a window the file does not give
                continue
            if math.isfinite(span):
                spans.append(span)
        trained_on = max(spans, default=None)
        if (trained_on is None or trained_on >= 0.9 * self.config.train_n_secs
                or self.config.initial_train_data_after > 0):   # (a fixed first window stands as chosen)
            return NEVER, trained_on
        self.history_seen = trained_on   # and the doubling goes on from there
        held = max(self.apis[self.config.host].listed_seconds.values(), default=0)
        return max(0, int((2 * trained_on - held) // every)), trained_on

    def _load_from_disk(self, charts, specs):
        """The saved models of ``specs`` that still fit; each spec is looked up once per job,
        so a chart the agent lists only later (after a restart) gets its saved model too."""
        self.disk_checked.update(specs)
        dims = self._dimensions_collected(charts, specs)
        versions = persist.installed_versions()
        loaded, metas, unused = {}, {}, {}
        for model_id, spec in specs.items():
            columns = (list(spec.columns) if spec.columns is not None
                       else [dim_key(spec.host, spec.chart, d) for d in dims.get(spec.chart, ())])
            try:
                fm, meta, reason = persist.load(self.models_dir, model_id, self.config, columns, versions,
                                                fewer_ok=spec.columns is None)
                if fm is not None:
                    fm.warm_up()   # imports and JIT now, and a model that cannot score is caught here
                    self._check_batch(model_id, fm)
            except Exception as e:  # whatever a foreign or broken file does: retrain that model
                fm, reason = None, 'cannot use it ({}: {})'.format(e.__class__.__name__, str(e)[:80])
            if fm is not None:
                loaded[model_id], metas[model_id] = fm, meta
            elif reason:
                unused.setdefault(reason, []).append(model_id)
        for reason, ids in sorted(unused.items()):
            self.log.info('{} saved model{} not used, retraining: {}: {}'.format(
                len(ids), '' if len(ids) == 1 else 's', reason, _listed(ids)))
        return loaded, metas

    def _check_batch(self, model_id, fm):
        """Lay ``fm`` out and score it alone, as ``_rebuild`` will with all: a file from another
        build that loads but lacks what the batch reads then costs only its own model."""
        layout, blocks = Layout({model_id: fm}), feature_blocks(self.config.lags_n, self.config.level_features)
        BatchScorer({model_id: fm}, layout, blocks).score(np.zeros(len(layout) * blocks))

    def _add_loaded(self, loaded, step):
        """Score the loaded models from the next step on; the agent's newest time, if it answered."""
        try:
            tails, now = self._recent_rows(loaded)
        except Exception:  # odd answers: the loaded models start scoring once enough steps came in
            tails, now = {}, None
        self.models.update(loaded)
        step.added.extend(sorted(loaded))
        self._rebuild(tails)
        return now

    def _age(self, metas, now):
        """Seconds since the oldest of these models' training window ended (trained_at is the
        end of the window, offset_n_secs before the training ran)."""
        oldest = min(float(m.get('trained_at') or 0) for m in metas.values()) + self.config.offset_n_secs
        return max(0.0, (now or time.time()) - oldest)

    def _dimensions_collected(self, charts, specs):
        """Each chart's dimension names as the agent collects them. /api/v1/charts leaves out
        hidden dimensions (system.cpu's idle) that its data, and so a trained model, has."""
        wanted = sorted(s.chart for s in specs.values() if s.chart is not None)
        try:
            body = self.apis[self.config.host].allmetrics(charts=wanted) if wanted else {}
        except NetdataError:
            return charts
        out = dict(charts)
        for chart in wanted:
            c = body.get(chart)
            found = c.get('dimensions') if isinstance(c, dict) else None
            if isinstance(found, dict) and found:
                out[chart] = [d.get('name', k) if isinstance(d, dict) else k for k, d in found.items()]
        return out

    def _recent_rows(self, models):
        """The last rows of the loaded models' charts as the steps would have read them, so
        they score from the first step.

        Every chart is laid on one grid of step times that ends at the newest row of any of
        them, and each step takes a chart's newest row collected by then, as in training: a
        chart collected every 5 s repeats its rows up to the steps of now, rather than ending
        up to 4 s early, which a gap's refill would take for rows of before the gap. Returns
        ``({model_id: (step times, rows)}, newest time)``, a few more rows than ``need``, for
        the caller to cut at its own step; charts that cannot be read are left out (their
        models start scoring once enough steps came in).
        """
        every = self.config.update_every
        wanted = list(dict.fromkeys(split_key(c)[:2] for fm in models.values() for c in fm.columns))
        read = {k: v for k, v in self._read_charts(wanted).items() if v is not None}
        if not read:
            return {}, None
        newest = max(float(times[-1]) for times, _, _ in read.values())
        steps = newest - every * np.arange(self.need + 2)[::-1]
        on_grid = {}
        for key, (times, values, labels) in read.items():
            at, current = rows_at(times, steps, every)
            current |= steps >= times[-1]   # its newest row stands until now: read before the clock moved on
            stale = np.nonzero(~current)[0]
            first = int(stale[-1]) + 1 if stale.size else 0
            on_grid[key] = (first, {name: values[at, k] for k, name in enumerate(labels)})
        tails = {}
        for model_id, fm in models.items():
            first, parts = 0, []
            for c in fm.columns:
                host, chart, dim = split_key(c)
                got = on_grid.get((host, chart))
                if got is None or dim not in got[1]:
                    break
                first = max(first, got[0])
                parts.append(got[1][dim])
            else:
                if parts and first < steps.size:
                    tails[model_id] = (steps[first:], np.column_stack([p[first:] for p in parts]))
        return tails, newest

    def _read_charts(self, wanted):
        """``{(host, chart): (times, values, labels) or None}`` for the ``_chart_rows`` of each.

        Read a few at a time, each reader over its own connection (one is not shared between
        threads): a remote agent that takes a tenth of a second an answer would otherwise hold
        the step for a tenth of a second per chart. None for a chart whose answer was odd
        (ragged rows, strings): only its models wait. Charts not reached within
        ``REFILL_SECONDS`` (an agent slow to answer them) are left out, and counted in
        ``self.unread``: the step waits for them no longer."""
        deadline = time.monotonic() + REFILL_SECONDS
        late = []

        def read(share):
            apis, out = {}, {}
            try:
                for i, (host, chart) in enumerate(share):
                    if time.monotonic() > deadline:
                        late.append(len(share) - i)
                        break
                    if host not in apis:
                        apis[host] = self.api_factory(self.config, host)
                    try:
                        out[(host, chart)] = self._chart_rows(apis[host], chart)
                    except (NetdataError, KeyError, TypeError, ValueError, IndexError, OverflowError):
                        out[(host, chart)] = None
            finally:
                for api in apis.values():
                    if hasattr(api, 'close'):
                        api.close()
            return out
        shares = [wanted[k::PARALLEL_READS] for k in range(min(PARALLEL_READS, len(wanted)))]
        started, own = [], shares[:1]   # the step's own thread reads a share too

        def read_into(share, box):
            try:
                box['got'] = read(share)
            except BaseException as e:   # raised again in the step's thread
                box['error'] = e
        for share in shares[1:]:
            box = {}
            thread = threading.Thread(target=read_into, args=(share, box), name='anomalies-refill', daemon=True)
            try:
                thread.start()
                started.append((thread, box))
            except RuntimeError:   # no thread to be had (pids.max, ulimit -u): this share is read in the step
                own.append(share)
        read_by = read([c for share in own for c in share])
        for thread, box in started:
            thread.join()
            if 'error' in box:
                raise box['error']
            read_by.update(box['got'])
        self.unread = sum(late)
        return read_by

    def _chart_rows(self, api, chart):
        """A chart's last stored rows, oldest first, as ``(times, values, labels)``, or None.

        Enough of them to cover ``need`` steps back from now: a chart collected less often than
        the job steps (``system.load`` every 5 s, ``system.clock_*`` every 10) is asked again
        over a window two of its own spacings longer."""
        every = self.config.update_every
        window = (self.need + 2) * every
        for _ in range(3):
            labels, rows = api.data(chart, -window, points=0)
            if not rows:
                return None
            times = np.array([r[0] for r in rows], dtype=np.float64)
            values = np.array([[np.nan if v is None else v for v in r[1:]] for r in rows], dtype=np.float64)
            if values.shape != (len(rows), len(labels)):
                return None
            values[np.isinf(values)] = np.nan   # an Infinity is no reading, like null
            spacing = float(np.median(np.diff(times))) if times.size > 1 else float(window)
            longer = (self.need + 2) * every + 2 * int(math.ceil(spacing))
            if spacing <= every or times[0] <= times[-1] - (self.need + 1) * every - spacing or longer <= window:
                break   # covered, or a longer window would not hold more of its rows
            window = longer
        return times, values, labels

    def step(self):
        """One collection step. Never raises for bad data; returns a ``Step``."""
        step, self._pending = self._pending, Step()
        self._collect_training(step)
        self._maybe_start_training(step, self.list_wait)
        self.steps += 1
        latest = self._fetch_latest()
        if not latest:
            return step
        row, stamp = self.layout.row(latest)
        # stamped with the agent's clock, the same clock as the training window's rows; an
        # answer without it (none of the charts) continues it, never mixes in this host's
        stamp = stamp or agent_now(latest.get(self.config.host))
        if stamp and set(self.wanted) <= {self.config.host} and self._standing_still(stamp):
            return step   # not fresh: the charts keep the last values for a while, as for an agent away
        step.fresh = True
        if not stamp:
            if not self.snapshots:
                return step
            stamp = self.snapshots[-1][0] + self.config.update_every
        # a jump either way (a suspend, the clock set back) makes the kept rows another
        # time's; not on the step after a refill: a slow one would read as another gap, for ever
        if (self.models and self.snapshots and abs(stamp - self.snapshots[-1][0]) > GAP_STEPS * self.stamp_every
                and not (self.gap and self.gap[0] == self.steps - 1)):
            self._after_a_gap(stamp - self.snapshots[-1][0], stamp)
        # kept as the bytes the agent sent: parsed bodies held for several steps would be
        # thousands of objects reaching the garbage collector's oldest generation each step
        self.snapshots.append((stamp, {h: raw for h in latest if (raw := self.apis[h].allmetrics_raw()) is not None}))
        step.at = stamp
        if self.models:
            with warnings.catch_warnings(), np.errstate(all='ignore'):
                warnings.simplefilter('ignore')
                try:
                    self._score(row, step, self.snapshots[-1][0])
                except Exception as e:  # a bug in scoring must not stop collection
                    self.problems.report('score', 'scoring failed: {!r}'.format(e))
        return step

    def _standing_still(self, stamp):
        """Whether the newest collection the agent answers has not moved for STILL_SECONDS (and
        as many steps): a parent goes on answering for a child whose stream stopped with its
        last values, which would be scored, and charted, as the same moment for as long as it
        lasts. Said once, and again when values move on. Only for a job whose charts are all
        its host's (custom models on other nodes have collection intervals not listed here)."""
        now = self.clock()
        if self.stood is None or stamp != self.stood[0]:
            if 'still' in self.problems.active:   # (said only once stood was set)
                self.problems.clear('still', 'values from {} move on again, after {:.0f} s'.format(
                    self.config.host, stamp - self.stood[0]))
            self.stood = (stamp, now, self.steps)
            return False
        limit = max(STILL_SECONDS, 3 * self.stamp_every)
        if now - self.stood[1] < limit or (self.steps - self.stood[2]) * self.config.update_every < limit:
            return False
        self.problems.report('still', 'no new values from {} for {} s (its charts\' last collection stands at '
                                      '{:.0f}): a child whose stream to its parent stopped, or an agent that stopped '
                                      'collecting; the charts keep their last values for a minute, then stay empty '
                                      'until values move on'.format(self.config.host, limit, stamp))
        return True

    def _after_a_gap(self, seconds, stamp):
        """Rows kept from before a gap would make the gap's whole change read as one step's
        (a false flag after every outage): refill the features from the agent's stored rows
        up to now, or score again once enough new rows came in."""
        if seconds > 0:
            self.log.info("the agent's clock moved {:.0f} s in one step: the features start again after the "
                          "gap".format(seconds))
        else:
            self.log.info("the agent's clock went back {:.0f} s in one step: the features start again "
                          "from its stored rows".format(-seconds))
        self.snapshots.clear()
        self.gap = (self.steps, stamp)
        self.unread = 0
        try:
            tails, _ = self._recent_rows(self.models)
        except Exception:  # odd answers: the models score again once enough steps came in
            tails = {}
        if self.unread:
            self.log.info('the agent took over {:g} s to send the stored rows after the gap: the models of {} '
                          'chart{} not read by then score again once enough steps came in'.format(
                              REFILL_SECONDS, self.unread, '' if self.unread == 1 else 's'))
        before = {}   # this step's row comes from allmetrics: the stored rows stop before it
        for model_id, (times, raw) in tails.items():
            times = np.asarray(times)
            before[model_id] = (times[times < stamp], np.asarray(raw)[times < stamp])
        self.ring_stamps = None   # the rows held are from before the gap: none of them is kept
        self._rebuild(before)

    def _score(self, row, step, stamp):
        batch = self.batch
        present = batch.present(row)
        missing = {batch.ids[k] for k in np.nonzero(~present)[0]}
        if len(missing) == len(batch.ids) > 1:   # the answer held none of the charts: one line, not one per model
            self.problems.report('missing:all', "no current values for any of the {} models' charts, skipping "
                                                "the step".format(len(missing)))
            missing = self.missing
        else:
            self.problems.clear('missing:all', 'current values are back')
        for model_id in sorted(missing - self.missing):
            self.problems.report('missing:' + model_id, "model '{}': no current values for its dimensions, "
                                                        "skipping it".format(model_id))
        for model_id in sorted(self.missing - missing):
            self.problems.clear('missing:' + model_id, "model '{}': values are back".format(model_id))
        self.missing = missing
        ring = self.ring
        row = absent_as_zero(row[None, :], self.layout.chart_index, self.layout.chart_offsets)[0]
        row = np.where(np.isnan(row), ring[-1], row)   # a chart without a value keeps its last row
        ring[:-1] = ring[1:]
        ring[-1] = row
        self.ring_stamps[:-1] = self.ring_stamps[1:]
        self.ring_stamps[-1] = stamp
        self.rows_seen = self.rows_seen + present
        filled = fill_missing(ring) if np.isnan(ring).any() else ring
        features = self.config.features(filled)[-1]
        ids, probs, rank, above, excess = batch.score(features)
        for model_id, why in batch.failed.items():
            self.problems.report('scorer:' + model_id, "model '{}' cannot score: {}; it is retrained at the "
                                                       "next training".format(model_id, why))
        scored = present & (self.rows_seen >= self.need)
        hold = None if self.config.flag_hold is None else (rank >= self.config.flag_hold) & scored
        flags = self.flag_policy.update(above & scored, hold, np.where(scored, rank, 0.0),
                                        np.where(scored, excess, -np.inf)) * scored
        if self.own_rows[0] <= self.steps < self.own_rows[1]:
            # the job's own training is no anomaly: no flag rises on it (one already up stays
            # up, and an excess that outlasts it rises after), and its rows stay in the next
            # training window rather than being left out as flagged, so it becomes ordinary
            flags = flags * np.isin(ids, list(self.was_flagged))
            self.flag_policy.held_down(flags)
        p_list, f_list = probs.tolist(), flags.tolist()
        step.scores.update((ids[k], (p_list[k], f_list[k])) for k in np.nonzero(scored)[0].tolist())
        if self.config.train_exclude_flagged:
            training_rows = self.own_rows[0] <= self.steps < self.own_rows[1]
            self._remember_episodes(ids, flags, np.where(scored, rank, 0.0), stamp, training_rows)
            self._save_flagged(stamp)
        # what drives each model: for the log line of a flag that rises now, or every model for
        # the attribution charts (a flag that stays up is not explained again every step)
        if self.config.attribution_charts:
            explain = scored
        else:
            explain = flags.astype(bool) & ~np.isin(ids, list(self.was_flagged))
        self.was_flagged = {ids[k] for k in np.nonzero(flags)[0]}
        for k in np.nonzero(explain)[0]:
            step.drivers[ids[k]] = batch.attribution(k, features)

    def _remember_episodes(self, ids, flags, rank, t, training_rows):
        """Keep each flag's whole episode for the next training to leave out: the flagged steps
        and the steps after them while the chart stays unusual (``EPISODE_RANK``, through dips
        of up to ``EPISODE_GAP`` steps). A CPU pinned for a minute is flagged as it starts and
        then reads 90-99 % while it lasts; trained on those steps, the next model took a pinned
        CPU for normal. Not through the job's own training."""
        flagged = np.nonzero(flags)[0].tolist()
        for k in flagged:
            self._remember_flag(ids[k], t)
            self.episodes[ids[k]] = 0
        if len(self.episodes) <= len(flagged):
            return
        now = set(ids[k] for k in flagged)
        where = {m: k for k, m in enumerate(ids)}
        for model_id in [m for m in self.episodes if m not in now]:
            k = where.get(model_id)
            if k is None or training_rows:
                del self.episodes[model_id]
            elif rank[k] >= EPISODE_RANK:
                self._remember_flag(model_id, t)
                self.episodes[model_id] = 0
            elif self.episodes[model_id] >= EPISODE_GAP:
                del self.episodes[model_id]
            else:
                self.episodes[model_id] += 1

    def _remember_flag(self, model_id, t):
        """Keep flagged times as intervals, so the next training can leave them out."""
        every = self.config.update_every
        spans = self.flagged.setdefault(model_id, [])
        if spans and spans[-1][0] <= t <= spans[-1][1]:
            return   # already left out (the rows a new dimension brought reach a little ahead)
        if spans and 0 <= t - spans[-1][1] <= (EPISODE_GAP + 1) * every:   # not after a clock set back
            spans[-1][1] = t
            self.flags_unsaved = self.flags_unsaved or 'grown'
        else:
            spans.append([t, t])
            self.flags_unsaved = 'new'

    def _exclusions(self):
        """Flagged intervals still inside a training window, per model (older ones are dropped)."""
        if not self.config.train_exclude_flagged:
            return {}
        newest = max((sp[1] for spans in self.flagged.values() for sp in spans), default=None)
        if newest is None:
            return {}
        # by the agent's clock now, where it is known: a span dated ahead of it (a flag raised
        # while the clock ran hours fast, then set right) would date every real span out
        now = self.snapshots[-1][0] if self.snapshots else (self.apis[self.config.host].listed_at or newest)
        oldest = now - self.config.offset_n_secs - self.config.train_n_secs - self.need * self.config.update_every
        out = {}
        for model_id, spans in list(self.flagged.items()):
            spans[:] = [sp for sp in spans if sp[1] >= oldest]
            if spans:
                out[model_id] = [tuple(sp) for sp in spans]
            else:
                del self.flagged[model_id]
        return out

    def close(self):
        if self.flags_unsaved:
            self.flags_unsaved = 'new'   # whatever the time since the last write
            self._save_flagged(self.flags_saved_at)
        self.trainer.close()
        for api in self.apis.values():
            api.close()
