"""The detector's per-step loop: collect latest values, score every model, schedule training.

It knows nothing of charts or protocols: ``step()`` returns a ``Step`` (per-model probability
and flag, the models that appeared or went away, what drives a flag that rose); the python.d
service turns that into dimensions. Beside the loop it keeps the job's state across restarts
(saved models, ``persist``; flagged spans, ``flagged_spans``) and refills the features from the
agent's stored rows after a gap (``stored_rows``).
"""
import collections
import time
import warnings

import numpy as np

from . import flagged_spans, memory, persist, ring, saved_models, stored_rows
from .batch import BatchScorer, Layout
from .config import chart_in_scope, on_this_machine
from .flagged_spans import FlagFile
from .flags import FlagPolicy
from .features import absent_as_zero, feature_blocks, fill_missing
from .netdata_api import (NODE_NOT_HELD, PARALLEL_READS, ChartListing, NetdataApi, NetdataError, agent_now, dim_key,
                          json_loads, split_key)
from .problems import ProblemLog, count_of, first_few, gist, plural
from .training import NO_DATA, NO_VALUES, ModelSpec, TrainingRequest, charts_by_host, make_trainer, training_elsewhere

# steps between training attempts after a failed training (agent away, no data)
RETRY_STEPS = 30
# the next full training with train_every_n 0 (the retired collector's "never retrain"): after the first
NEVER = float('inf')
# an agent that started this recently, with a job this new, lists its charts as its collectors
# start: none in scope yet is not yet an error
YOUNG_AGENT_SECONDS = 120
# how long a job started with saved models of a streamed child waits for its parent to list it
# (a restarted parent lists a child once it reconnects: 8-70 s on Debian's 1.37)
CHILD_BACK_SECONDS = 180
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
# values that stood still this long and move on again: the agent is asked whether it restarted
PAUSE_SECONDS = 3
# the longest the step after a gap spends reading stored rows (an agent slow to send them):
# the charts not read by then score again once enough steps came in
REFILL_SECONDS = 5.0
# an agent whose step reads timed out is told to answer again once it has answered for this many
# seconds of steps in a row: a link that loses an answer every few seconds (Wi-Fi to a remote
# agent, a busy small box) is one problem, told once and once over, not two lines a time (a
# thousand lines an hour into the agent's log, on a small box's SD card)
SLOW_CLEAR_SECONDS = 60
# no flag rises in the rows read while the job's own training runs, for at most this many steps
# (a training that takes longer, a big window on a slow box, no longer hides what happens meanwhile)
OWN_TRAINING_MAX_STEPS = 60
# an agent's first minute is its own start-up (collectors starting one by one, its database
# written, its clock synchronising): a job started with it (every restart) raises no flag on it
AGENT_START_SECONDS = 60
# a model still flagged this long (train_min_n_secs, at least) after the start-up of an agent its
# node booted with reads a level the reboot changed (the page cache emptied): it is retrained on
# the rows since only, and again each time they double, until a full training is due
REBOOT_RETRAIN_SECONDS = 60
# an agent that started within this long of its node's boot (system.uptime) started with it: a
# slow boot (fsck, cloud-init) starts it minutes in; a restart of the agent alone (an upgrade, or
# an incident that had the kernel kill it) changes no level the node keeps, and a flag up across
# it is left out of training as ever
BOOT_SECONDS = 900

def _chart_of(column):
    """The chart of a saved model's column, '' for one not in dim_key's form."""
    try:
        return split_key(column)[1]
    except ValueError:
        return ''


def _listed(said, how):
    """``{model id: value}`` as one line's list: 'system.cpu (40%), system.load (31%)'."""
    return first_few(['{} ({})'.format(m, how.format(v)) for m, v in sorted(said.items())])


def gone_line(gone):
    """The line that tells of models removed with their charts: 'model 'disk.sdb' removed: its
    chart is gone', or '100 models removed: their charts are gone: ... (+95 more)'."""
    if len(gone) == 1:
        return "model '{}' removed: its chart is gone".format(gone[0])
    return '{} removed: their charts are gone: {}'.format(plural(len(gone), 'model'), first_few(list(gone)))


Due = collections.namedtuple('Due', 'clock step')   # whichever comes first
Retry = collections.namedtuple('Retry', 'tries step')   # failed trainings in a row, no retry before step
NO_RETRY = Retry(0, 0)
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


def agent_uptime(api, chart='netdata.uptime'):
    """The seconds an agent has run, by its ``netdata.uptime`` (0 where it lists the chart but
    has not collected it yet: seconds old), or None when it does not tell (not listed, no answer);
    with ``chart`` 'system.uptime', the seconds its node has run since it booted."""
    try:
        _, rows = api.data(chart, after=-1)
    except Exception:
        return None
    values = [r[1] for r in rows if len(r) > 1]
    uptime = values[-1] if values else None
    if uptime is None:
        return 0.0
    if isinstance(uptime, bool) or not isinstance(uptime, (int, float)):
        return None
    return float(uptime)


class AnomalyDetector:
    """One job's models of one agent's charts: ``start()``, then ``step()`` once per
    update_every, then ``close()``.

    ``trainer`` fits models in the background (``training.make_trainer``: a process; the
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
        self.told_scope_wait = False   # a young agent with no chart in scope yet: said once
        self.told_child_wait = False   # a child its just restarted parent does not list yet: said once
        self.child_waited = False      # ... and waited for since the last answer
        self.unanswered = set()        # hosts whose read failed at the last step
        self.slow = {}                 # host whose step read timed out -> [reads timed out, steps, answered in a row]
        self.child_modelled = None     # whether models_dir held models (of the child) at the wait
        self.parent_age = None         # the parent's uptime at the wait, where it told it (s)
        self.need = config.rows_needed
        self.hosts = [config.host] + sorted({d[0] for m in config.custom_models for d in m.dimensions} - {config.host})
        self.apis = {h: api_factory(config, h) for h in self.hosts}
        self.models = {}
        self.specs = {}
        self.snapshots = collections.deque(maxlen=self.need)
        self.steps = 0
        self.next_training = 0
        self.failed_trainings = 0   # whole trainings failed in a row
        self.failed_until = 0       # the step before which no discovery trains after a whole training failed
        self.discover_every = max(1, int(DISCOVER_SECONDS // config.update_every))   # in steps
        self.next_discovery = Due(clock() + DISCOVER_SECONDS, self.discover_every)
        self.listing = None   # the chart list being read (ChartListing), until a step takes it up
        # a replay waits for each list on a stopped clock, as for each training (evaluate)
        self.list_wait = LIST_WAIT_SECONDS
        self.untrained = {}  # model id -> why its last training failed
        self.retry_at = {}   # model id -> Retry: failed trainings in a row, step before which no discovery retries it
        self.training_quiet = False  # the training in flight only retries models that failed before
        self.training_step = 0       # the step the training in flight started at
        self.gap = None              # Moment (step, agent time) of the last gap in collection
        self.stood = None            # Stood: when the agent's newest collection last moved
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
        self.was_flagged = set()  # models flagged last step (their flag's drivers are already told)
        self.flag_file = FlagFile(self.models_dir, self.problems, config.host)   # flagged, kept across restarts
        self.episodes = {}      # model id -> steps since its flag's episode last read unusual (flagged_spans)
        self.disk_checked = set()  # models whose saved file was looked for (once per job)
        self.agent = None      # the agent's machine GUID, once read (_read_agent)
        self.flagged_loaded = False   # the flagged steps saved before a restart, read once the agent is
        self.unlisted = set()  # models whose chart the last chart listing did not have
        self.regrown = {}      # model id -> the dimensions listed when it was retrained for new ones
        self.custom_charts = {}   # custom model id -> (its columns, [(host, chart)] they come from)
        self.custom_rows = (None, None, [])   # (batch, specs, [(row, spec)] of its custom models)
        self.own_rows = range(0)   # the steps whose features hold the job's own last training
        self.own_waits = False   # its training asked for waits for another job's to end (training._OneAtATime)
        self.above_ids = frozenset()   # models above the threshold at the last step scored
        self.above_before = frozenset()   # and at the step before it
        self.rising_before_training = frozenset()   # and those at the last training's start
        self.agent_start_rows = range(0)   # the steps whose features hold the agent's start-up
        self.start_up_pending = False   # a start-up held whose end is not reached yet
        self.reboot_end = None   # agent time the last start-up after a reboot ended
        self.reboot_retrain_at = None   # agent time the models flagged since the last one are retrained
        self.reboot_changed = set()   # the models that retraining was for (for its log line)
        self.reboot_models = {}   # model id -> agent time its training window starts at (a reboot changed it)
        self.reboot_held = set()   # models flagged since a reboot's start-up, shown once retrained for it
        self.reboot_hold_until = None   # agent time their hold ends whatever happens (a training that fails)
        # a replay waits for each training on a stopped clock, so its rows never show one; on an
        # agent every training shows in the rows read from its start to `need` after its end
        self.trainings_take_agent_time = True
        self.started = False          # start() called (by the job's create())
        # whether what runs here shows in the charts read: not those of a child read through a
        # parent, nor a remote agent's (another job's training is no work of theirs)
        self.reads_this_machine = on_this_machine(config.host)
        self.kept_flagged = set()  # models whose last training kept their flagged steps (said once)
        self.layout = self.ring = self.ring_stamps = None   # laid out by _rebuild
        self._rebuild({})

    # ----- scope -------------------------------------------------------------------------
    def discover(self, charts):
        """Which models the configuration asks for, from the agent's chart list."""
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
        """``(after, before)`` of the next training: unix seconds for initial_train_data_after/
        before, else seconds relative to the agent's now (negative), as its API takes them."""
        cfg = self.config
        if self._first_window_fixed:
            return cfg.initial_train_data_after, cfg.initial_train_data_before
        # relative to the agent's own clock, so a replayed or skewed agent works too
        before = -cfg.offset_n_secs if cfg.offset_n_secs else 0
        return before - cfg.train_n_secs, before

    def _maybe_start_training(self, report, wait):
        """Retrain everything when due; in between, pick up charts that appeared (their saved
        models, else a training), forget those gone (and their saved files), retry those that
        failed, and retrain charts listed with a new dimension.

        All start from a fresh chart list, read in the background: this step goes on without
        it if it takes longer than ``wait`` seconds (None: as long as it takes). ``report`` is
        the ``Step`` that tells of models added or removed.
        """
        listing = self._listing_taken(wait)
        if listing is None:
            return
        full_due = self.steps >= self.next_training
        try:
            charts = listing.result()
            specs = self.discover(charts)
        except NetdataError as e:
            if self._child_not_back_yet(e):
                return
            self.problems.report('charts', 'cannot list charts: {}{}'.format(
                e, ': api_timeout, raise it for an agent this slow to list its charts' if e.timed_out else ''))
            self._retry_full_training_soon(full_due)
            return
        self.problems.clear('charts')
        if self.models_dir and not self.disk_checked and not self.models:   # the agent did not answer at start
            self._start_from_disk(charts, report)
            if self.models:
                # they score at once: an agent that has just started (a child booted after its parent)
                # has its start-up held, as at a job's start (this step's read does it, if it is back)
                if self.config.host not in self.unanswered and not self.child_waited:
                    self._hold_agent_start_up()
                return   # the charts without a usable saved model train at the next step
        if self.models_dir and self.prune_due:
            try:
                self._prune_saved(specs, charts)
            except Exception as e:  # a models dir that cannot be read: its files stay
                self.prune_due = False
                self.log.error('cannot remove old saved models from {} (models_dir): {!r}'.format(self.models_dir, e))
        self._forget_gone(specs, report)
        if not specs:
            if self._no_charts_in_scope(charts):   # an agent starting: looked at again in a few seconds
                self.next_discovery = Due(self.clock() + SCOPE_WAIT_SECONDS, self.steps + SCOPE_WAIT_SECONDS)
            self._retry_full_training_soon(full_due)   # a discovery's empty list leaves the schedule alone
            return
        self.problems.clear('scope')
        new_dimensions = self._new_dimensions(charts, specs, tell=not full_due)
        if full_due:
            todo = list(specs.values())
            self.next_training = self.steps + self.config.train_every_n if self.config.train_every_n else NEVER
        else:
            todo = self._to_train_between(charts, specs, report, new_dimensions)
        if todo:
            self._start_trainer(todo, full_due, new_dimensions)

    def _listing_taken(self, wait):
        """The chart list asked for, once it came (within ``wait`` seconds), else None; one is
        asked for when a training or a discovery is due and no training runs."""
        if self.listing is None:
            full_due = self.steps >= self.next_training
            discovery_due = self.clock() >= self.next_discovery.clock or self.steps >= self.next_discovery.step
            if self.trainer.busy or not (full_due or discovery_due):
                return None
            self.next_discovery = Due(self.clock() + DISCOVER_SECONDS, self.steps + self.discover_every)
            self.listing = ChartListing(self.apis[self.config.host], in_thread=wait is not None)
        if not self.listing.ready(wait):
            return None
        listing, self.listing = self.listing, None
        return listing

    def _child_not_back_yet(self, e):
        """A parent lists a child only once it has reconnected, seconds to a minute after the
        parent (re)started, and python.d restarts with it: a job that saved models of its child,
        or whose parent started less than CHILD_BACK_SECONDS ago (the first start after an
        install), waits for it, said once, for CHILD_BACK_SECONDS after its start, rather than
        calling its name unknown. Whether it waits."""
        if e.status != 404 or NODE_NOT_HELD not in e.reason or self.clock() - self.created >= CHILD_BACK_SECONDS:
            return False
        if self.child_modelled is None:   # (once: the steps of the wait would each read the folder)
            self.child_modelled = bool(self.models_dir) and persist.has_models(self.models_dir)
            if self.child_modelled:   # held before: past the wait, told as a child away, not as a name unknown
                self.apis[self.config.host].answered = True
            else:
                parent = self.config.host.rsplit('/host/', 1)[0]
                self.parent_age = agent_uptime(self.api_factory(self.config, parent))
        young_parent = self.parent_age is not None and self.parent_age < CHILD_BACK_SECONDS
        if not (self.child_modelled or young_parent):
            return False
        self.child_waited = True
        if not self.told_child_wait:
            self.told_child_wait = True
            self.log.info('{} yet: it lists a child once the child has reconnected to it; {}, so it looks '
                          'again'.format(e, 'the job modelled this child before (its saved models)' if self.child_modelled
                                         else 'the parent started {:.0f} s ago'.format(self.parent_age)))
        return True

    def _retry_full_training_soon(self, full_due):
        """A full training that could not start is tried again RETRY_STEPS on (charts still
        without a model are tried again at each discovery)."""
        if full_due:
            self.next_training = self.steps + RETRY_STEPS

    def _forget_gone(self, specs, report):
        """Drop the models of charts missing from two listings in a row, and their saved files
        (an agent just restarted lists some of its charts only seconds later: their saved models
        are not deleted for it); ``specs`` becomes the scope."""
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
            self.custom_charts.pop(model_id, None)
            for key in ('missing:', 'scorer:', 'gone:'):
                self.problems.forget(key + model_id)
            if model_id in report.added:   # trained and gone in one step: nothing was shown to take down
                report.added.remove(model_id)
            else:
                report.removed.append(model_id)
        if gone:   # (containers that come and go: one line for the hundred charts they take along)
            self.log.info(gone_line(gone))
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

    def _to_train_between(self, charts, specs, report, new_dimensions):
        """What a discovery trains: charts without a model whose retry is due (after their
        saved models, if any, are loaded) and charts listed with new dimensions. A chart that
        failed to train (a typo in a custom model, a chart with no values) is retried at
        discoveries further and further apart, not every minute for good; one that waits for
        history, once it may have it (``_report_untrained``)."""
        if self.steps < self.failed_until:   # a training that failed whole is tried again when it said
            return []
        todo = [s for model_id, s in specs.items() if model_id not in self.models
                and self.steps >= self.retry_at.get(model_id, NO_RETRY).step]
        todo = self._saved_for_new_charts(charts, todo, report)
        todo += [specs[m] for m in new_dimensions]
        return todo + [specs[m] for m in self._changed_by_reboot(specs) if specs[m] not in todo]

    def _changed_by_reboot(self, specs):
        """The models flagged since the start-up of an agent that booted with its node ended,
        once they have been for REBOOT_RETRAIN_SECONDS (train_min_n_secs, if longer): a reboot
        empties the page cache and restarts the services, and the window before it reads the
        new levels as an incident, flagged (the node alarm critical) until a full training held
        a quarter of its window of them, 60 to 90 minutes with the defaults. Their windows
        start at the start-up's end from then on (``reboot_models``): trained on both nodes,
        the one before and the one after, a model took a 3 GB memory stress after the reboot
        for ordinary beside the 12 GB the page cache had lost. They are fitted on minutes, so
        trained again each time that time has doubled, until a full training is due."""
        at, every = self.reboot_retrain_at, self.config.update_every
        if at is None or not self.snapshots or self.snapshots[-1][0] < at:
            return []
        now, end = self.snapshots[-1][0], self.reboot_end
        since = now - end
        if any(start == end for start in self.reboot_models.values()):   # the same reboot: its history doubled
            ids = sorted(m for m, start in self.reboot_models.items() if start == end and m in specs and m in self.models)
        else:
            still = now - (flagged_spans.EPISODE_GAP + 2) * every   # a span that reaches this is up
            ids = sorted(m for m, spans in self.flagged.items() if m in specs and m in self.models
                         and any(first <= end < last and last >= still for first, last in spans))
            self.reboot_models.update((m, end) for m in ids)
            why = ('since the node rebooted (its agent\'s start-up ended {:.0f} s ago): {} the reboot changed (the '
                   'page cache emptied, the services restarted)').format(since, 'a level' if len(ids) == 1 else 'levels')
            if len(ids) == 1:
                self.log.info("model '{}': flagged {}, retraining it on the rows since".format(ids[0], why))
            elif ids:
                self.log.info("{} flagged {}, retraining them on the rows since: {}".format(
                    plural(len(ids), 'model'), why, first_few(ids)))
        again = end + 2 * since
        self.reboot_retrain_at = again if ids and (again - now) < self.config.train_every_n * every else None
        self.reboot_changed = set(ids)
        return ids

    def _start_trainer(self, todo, full_due, new_dimensions):
        """Start training ``todo`` in the background; no flag rises on the rows it shows in."""
        # a training of every chart on the rolling window tells how much history the agent holds
        self.training_fixed = self._first_window_fixed
        self.training_all = not self.training_fixed and len(todo) == len(self.specs)
        after, before = self._training_window()
        api = self.apis[self.config.host]
        now = self.snapshots[-1][0] if self.snapshots else api.listed_at   # the agent's clock, where known
        if self.training_fixed and now and before > now:
            # the agent answers such a window with rows it holds up to its now: not the window asked
            self.log.warning('initial_train_data_before ({}) is {:.0f} s after the agent\'s now ({:.0f}): the first '
                             'training reads what the agent holds up to now instead of that window'.format(
                                 before, before - now, now))
        try:
            self.trainer.start(TrainingRequest(self.config, todo, after, before, self._exclusions(), self.models_dir,
                                               api.listed_seconds, api.listed_at, new_dimensions,
                                               self._read_agent(), api.listed_dimensions, dict(self.reboot_models)))
        except Exception as e:  # e.g. no memory or file descriptors for the training process
            self.problems.report('training', 'cannot start training: {!r}'.format(e))
            self._retry_full_training_soon(full_due)
            return
        self.training_started, self.training_step = self.clock(), self.steps
        self.own_waits = self.trainer.waiting
        self._hold_own_training()
        self.training_quiet = not full_due and all(s.model_id in self.waiting or s.model_id in self.untrained
                                                   for s in todo)
        if not self.training_quiet:
            self.log.info('training {} on up to {} s of history{}'.format(
                plural(len(todo), 'model'), int(before - after),
                '' if full_due else " (levels a reboot changed)" if all(
                    s.model_id in self.reboot_changed for s in todo) else ' (new charts or dimensions)'))

    def _hold_own_training(self, first=None):
        """No flag rises on the rows of the job's own training, from row ``first`` (None: the
        next step's), for OWN_TRAINING_MAX_STEPS at most."""
        # the row this step reads was collected before the process started; the next ones may not be
        first = self.steps + 2 if first is None else first
        self._hold_rows(first, first + OWN_TRAINING_MAX_STEPS)

    def _hold_rows(self, first, stop):
        """No flag rises on rows ``first`` to ``stop`` (a training's, here); a hold still running
        at ``first`` is carried on from its own start."""
        held = self.own_rows.start <= first <= self.own_rows.stop
        if not held:
            # what already read above the threshold before the process started is not its doing:
            # an incident that starts a process group retrains the charts it is new on, and
            # those charts' flags must not wait for that training (above at the two steps before
            # it: a one-step blip would leave the chart open to the training's own work)
            self.rising_before_training = self.above_ids & self.above_before
        self.own_rows = range(self.own_rows.start if held else first, max(self.own_rows.stop if held else 0, stop))

    def _ask_for(self, specs):
        """The charts each step asks for: those of ``specs``. A step's time is the newest
        collection among them, so where all are collected less often than the job steps (a
        collector at update_every 10) it moves on by that much at once, which is no gap."""
        self.wanted = charts_by_host(specs)
        listed = self.apis[self.config.host].listed_every
        every = [listed[c] for c in self.wanted.get(self.config.host, ()) if c in listed]
        self.stamp_every = max(self.config.update_every, min(every, default=self.config.update_every))

    def _no_charts_in_scope(self, charts=None):
        """An error, but for a job started with its agent: said once as the wait it is. A job
        with saved models modelled charts before, so an agent that lists none of them is one
        (re)starting, whose collectors list their charts in the next seconds, however much
        history it kept (dbengine). Whether the job waits for its agent."""
        said = 'no charts match charts_regex {!r} and no custom_models are set'.format(self.config.charts_regex)
        # the charts the regex matches that charts_to_exclude takes out: else the line sends the reader to the regex
        cfg, charts = self.config, charts or ()
        excluded = sorted(c for c in charts if chart_in_scope(c, cfg.charts_regex, ()) and not cfg.chart_matches(c))
        if excluded:
            said = ('charts_to_exclude {!r} leaves none of the {} charts charts_regex {!r} matches ({}) and no '
                    'custom_models are set'.format(','.join(cfg.charts_to_exclude), len(excluded), cfg.charts_regex,
                                                   first_few(excluded, 3)))
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

    def _new_dimensions(self, charts, specs, tell):
        """Modelled charts the agent now lists with a dimension their model lacks (a process
        group that started, a new disk or interrupt), and those dimensions: each is retrained
        alone at once, rather than left unseen until the next full training, and said once.
        Once per set of listed dimensions: one listed but never collected is not retrained for
        again and again. The training leaves out the rows since they first had a value
        (``training.since_new``)."""
        out, told = {}, {}
        for model_id, fm in sorted(self.models.items()):
            spec = specs.get(model_id)
            if spec is None or spec.chart is None:
                continue
            listed = frozenset(charts.get(spec.chart, ()))
            new = sorted(listed - {split_key(c)[2] for c in fm.columns})
            if new and self.regrown.get(model_id) != listed:
                self.regrown[model_id] = listed
                told.setdefault(tuple(new), []).append(model_id)
                out[model_id] = tuple(new)
        # one line per set of new dimensions: a process group that starts is new on every
        # apps.* chart at once (17 of them), one line each said the same thing 17 times
        for new, ids in told.items() if tell else ():
            what = '{} {}'.format('dimension' if len(new) == 1 else 'dimensions', first_few(list(new)))
            if len(ids) == 1:
                self.log.info("model '{}': new {}: retraining it".format(ids[0], what))
            else:
                self.log.info("{}: new {}: retraining them: {}".format(count_of('model', ids), what, first_few(ids)))
        return out

    def _saved_for_new_charts(self, charts, todo, report):
        """Load the saved models of charts the agent lists only now (it lists some a while
        after a restart); the rest of ``todo`` still needs training."""
        new = {s.model_id: s for s in todo if s.model_id not in self.disk_checked}
        if not new or not self.models_dir:
            return todo
        try:
            loaded, metas = self._load_from_disk(charts, new)
            if loaded:
                now = self._add_loaded(loaded, report)
                self.log.info('loaded {} for charts that appeared (oldest trained {:.0f} s ago): {}'.format(
                    plural(len(loaded), 'saved model'), saved_models.age(metas, now, self.config.offset_n_secs),
                    first_few(sorted(loaded))))
        except Exception as e:  # a broken models dir must never stop the job: train them instead
            self.log.error('cannot load saved models from {} (models_dir): {!r}'.format(self.models_dir, e))
            return todo
        return [s for s in todo if s.model_id not in loaded]

    def _collect_training(self, report):
        """Take up a training that ended: its models score from this step on (``report``
        tells of those added), its failures are told and retried, and the next training is
        set sooner while a young agent's history grows."""
        result = self.trainer.poll()
        if result is None:
            return
        self.own_waits = False
        # (from its start: one asked for while another job's ran waited for it first)
        waited = getattr(self.trainer, 'waited', 0.0)
        took = max(0.0, self.clock() - self.training_started - waited) if self.training_started else 0.0
        self.trainings += 1   # (how many trainings ended: for the tests and the harnesses)
        # the training process's CPU, memory, forks and reads show in the rows read while it ran
        # (this step's too, however short it was), and in the features for `need` rows after
        self.own_rows = range(self.own_rows.start, self.steps + 1 + self.need) if self.trainings_take_agent_time else range(0)
        if result.error:
            self._training_failed(result.error)
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
        first_models = not self.models   # the job's first: fitted on minutes, on a young agent
        if first_models and self.training_all and result.models and self.config.train_every_n:
            # every chart trained at a discovery (an agent that answered only after the job
            # started): that was the full training its start could not run, not one to repeat
            # RETRY_STEPS on over the same window
            self.next_training = max(self.next_training, self.training_step + self.config.train_every_n)
        self._adopt(result, report)
        memory.give_back()   # what the models replaced and the thread that read them held
        new_reasons = self._report_untrained(result)
        if self.training_fixed:
            self._rolling_window_next(result)
        # (the first models too when trained apart from a full training: charts waiting for
        # history are tried again by their own history, and charts collected every 2, 5 or 10 s
        # reach it at other steps; without it they stood until train_every_n, and a young
        # agent's false flags rose by a third)
        if result.models and (self.training_all or first_models):
            self._train_again_as_history_grows(result.history)
        if not result.models and (not result.errors or (self.training_quiet and not new_reasons)):
            return   # charts still wait for history, or a retry failed as before: said once already
        sampled = [fm.info['rows'] for fm in result.models.values() if 'sampled_from' in fm.info]
        cut = [(fm.info['window_cut_for_width'], m) for m, fm in result.models.items()
               if 'window_cut_for_width' in fm.info]
        self.log.info('trained {} on {} rows{}{} in {:.1f}s ({:.1f} cpu-s){}{}'.format(
            plural(len(result.models), 'model'), result.rows,
            ' ({} of them on a sample of {} rows: train_max_n, the model\'s own cap, or a wide chart\'s)'.format(
                len(sampled), max(sampled)) if sampled else '',
            ' ({} read over the newest {} s only, too wide to read whole: {})'.format(
                plural(len(cut), 'chart'), min(cut)[0], first_few(sorted(m for _, m in cut))) if cut else '',
            took, result.cpu_seconds, ', {} not trained'.format(len(result.errors)) if result.errors else '',
            ", after {:.0f}s waiting for another job's training".format(waited) if waited >= 1 else ''))

    def _training_failed(self, error):
        """A whole training failed: retried ever further apart (30 steps, doubling up to
        train_every_n). One that keeps failing (killed for memory, an agent that lists charts
        but cannot give their history) would otherwise start a process every 30 s for good,
        and each one's rows raise no flag."""
        self.failed_trainings += 1
        delay = min(RETRY_STEPS * 2 ** min(self.failed_trainings - 1, 10),
                    max(RETRY_STEPS, self.config.train_every_n))
        self.problems.report('training', 'training failed: {} (trying again in {} steps)'.format(error, delay))
        # (the charts still without a model too: each discovery would otherwise train them at once)
        self.failed_until = self.steps + delay
        if self.config.train_every_n or self.training_all:   # with 0, only a first training is tried again
            self.next_training = min(self.next_training, self.steps + delay)

    def _adopt(self, result, report):
        """The trained models of charts still in scope replace their old ones, and score from
        their training window's last rows on (``_rebuild``)."""
        tails = {}
        adopted = {m: fm for m, fm in result.models.items() if m in self.specs}
        self._tell_flags_kept({m: fm.info for m, fm in adopted.items()})
        left_out = {}   # seconds left out -> the models
        for model_id, fm in sorted(adopted.items()):
            if 'new_dimensions_since' in fm.info:
                seconds = self._left_out_as_new(model_id, fm.info['new_dimensions_since'], fm.info['window'][1])
                left_out.setdefault(seconds, []).append(model_id)
        for seconds, ids in sorted(left_out.items()):
            if len(ids) == 1:
                self.log.info("model '{}': its last {:.0f} s, since its new dimension first had a value, are left "
                              "out of its training: what it does now is news to the model".format(ids[0], seconds))
            else:
                self.log.info("{}: their last {:.0f} s, since their new dimension first had a value, are left out "
                              "of their training: what they do now is news to them: {}".format(
                                  plural(len(ids), 'model'), seconds, first_few(ids)))
        self.reboot_held -= set(adopted)   # (what they show from now on is theirs)
        for model_id, fm in adopted.items():
            for reason in fm.info.get('fallback_from', ()):
                self.log.warning("model '{}': {} failed ({}), using {}".format(
                    model_id, self.config.model, reason, fm.model_name))
            if model_id not in self.models:
                report.added.append(model_id)
            self.models[model_id] = fm
            self.problems.forget('scorer:' + model_id)   # the new model's trouble is told anew
            if model_id in result.tails:
                tails[model_id] = result.tails[model_id]
        if result.models:   # else nothing changed: the scoring keeps its rows
            self._rebuild(tails)

    def _left_out_as_new(self, model_id, since, end):
        """The rows since a new dimension first had a value, left out of its chart's training,
        are left out of the next full training too, as flagged steps are, and so are the rows
        read until the retrained model may flag (its training and the features' reach after
        it, where no flag rises): it flagged such an incident 10-20 s after its training, and
        the rows in between were learned as normal. The seconds left out of its training, for
        the log (``_adopt`` tells the models of one training in one line)."""
        if self.config.train_exclude_flagged:
            now = self.snapshots[-1][0] if self.snapshots else end
            spans = self.flagged.setdefault(model_id, [])
            spans.append([since, max(end, now) + self.need * self.config.update_every])
            spans.sort()
            self.flag_file.changed(flagged_spans.NEW)
        return round(end - since + 1)

    def _tell_flags_kept(self, infos):
        """Say once, when it starts, that a model trains on its flagged steps (not at every
        training while they are in its window); one line for all the models of a training
        that start to, not one each."""
        lasting, routine = {}, {}   # model id -> share of its window flagged / separate flags
        for model_id, info in infos.items():
            kept = 'flagged_events_kept' in info or 'flagged_share_kept' in info
            if kept and model_id not in self.kept_flagged:
                if 'flagged_share_kept' in info:
                    lasting[model_id] = info['flagged_share_kept']
                else:
                    routine[model_id] = info['flagged_events_kept']
            (self.kept_flagged.add if kept else self.kept_flagged.discard)(model_id)
        new_normal = 'a lasting change becomes the new normal'
        ordinary = 'something the node does again and again becomes ordinary'
        if len(lasting) == 1:
            self.log.info("model '{}': flagged for {:.0%} of its training window, trained on all of it ({})".format(
                *next(iter(lasting.items())), new_normal))
        elif lasting:
            self.log.info('{} flagged for over a quarter of their training window, trained on all of it ({}): '
                          '{}'.format(plural(len(lasting), 'model'), new_normal, _listed(lasting, '{:.0%}')))
        if len(routine) == 1:
            self.log.info("model '{}': flagged {} separate times in its training window, trained on all of it "
                          "({})".format(*next(iter(routine.items())), ordinary))
        elif routine:
            self.log.info('{} flagged again and again in their training window, trained on all of it ({}): {}'.format(
                plural(len(routine), 'model'), ordinary, _listed(routine, '{} times')))

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
            if gist(self.untrained.get(model_id)) != gist(reason):   # not again for new counts alone
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
                self.retry_at[model_id] = Retry(0, self.training_step + max(self.discover_every,
                                                                       -(-int(short) // self.config.update_every)))
            else:
                self._back_off(model_id)
        for reason, ids in by_reason.items():
            self.log.error("{} not trained: {}{}: {}".format(count_of('model', ids), reason, self._window_note(reason),
                                                              first_few(ids)))
        newly = sorted(set(result.waiting) - self.waiting)
        self.waiting = (self.waiting - set(result.models) - set(result.errors)) | set(result.waiting)
        fresh = [m for m in newly if m not in self.models]
        kept = [m for m in newly if m in self.models]
        if fresh:
            self.log.info("{} waiting for {} s of history before training (train_min_n_secs; {} s so far{}): {}".format(
                count_of('model', fresh), result.min_history, _seconds_of(result.waiting, fresh),
                self._window_note(NO_DATA), first_few(fresh)))
        if kept:
            self.log.info("{} kept: the agent holds {} s of history, under train_min_n_secs ({} s): "
                          "{}".format(count_of('model', kept), _seconds_of(result.waiting, kept), result.min_history,
                                      first_few(kept)))
        return bool(by_reason)

    def _rolling_window_next(self, result):
        """The charts the first window (initial_train_data_after/before) held too little of train
        on the rolling window at the next step, as their error line says: at their retry, a
        discovery or more on, an incident begun meanwhile was in that window, learned as normal.
        So do those that window held less than train_min_n_secs of: a fixed window does not
        grow, and their wait (train_min_n_secs on) is what the rolling window holds already."""
        short = [m for m, why in result.errors.items() if self._window_note(why)] + sorted(result.waiting)
        for model_id in short:
            self.retry_at[model_id] = Retry(self.retry_at.get(model_id, NO_RETRY).tries, self.steps)
        if short:
            self.next_discovery = Due(self.clock(), self.steps)

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
        tries = self.retry_at.get(model_id, NO_RETRY).tries + 1
        self.retry_at[model_id] = Retry(tries, self.training_step + self.discover_every * 2 ** min(tries - 1, 5))

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

        Also reindexes the flag policy (``tails``' models were retrained: their flag history
        starts again) and counts the rows each model has had. The rows come from the last
        ``need`` allmetrics answers (all columns) and, where those are fewer than needed, from the rows the models had before
        (a model loaded from disk a few steps ago keeps the rows it was given) and the
        training window's last rows (``tails``: the newly trained models), so a new model
        scores on its first step and the others do not pause.
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
        have = ~np.isnan(self.ring[:, self.batch.raw_all]) if self.batch.raw_all.size else np.zeros((self.need, 0), bool)
        self.rows_seen = (np.logical_or.reduceat(have, self.batch.raw_offsets, axis=1).sum(axis=0)
                          if self.batch.ids else np.zeros(0, dtype=int))

    def _fetch_latest(self):
        """Each host's allmetrics answer for this step (hosts that did not answer are left
        out, and told once); an agent that answers again is listed at once."""
        latest = {}
        wait = min(self.config.api_timeout, max(0.5, self.config.update_every * 0.9))   # the step's own time, at most
        for host, api in self.apis.items():
            try:
                latest[host] = api.allmetrics(timeout=wait, charts=self.wanted.get(host))
                back = host in self.unanswered
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
                late = self.slow.pop(host, None)
                if e.timed_out:   # (told once, and again only once it has answered a while)
                    late = late or [0, 0, 0]
                    late[0], late[2] = late[0] + 1, 0
                    self.slow[host] = late
                slow = ('' if not e.timed_out else ': a step waits for the latest values 0.9 x update_every at most, '
                        'so an agent slower to answer them needs a larger update_every' if wait < self.config.api_timeout
                        else ': api_timeout, raise it for an agent this slow to answer')
                # (a connection reset, then refused, as an agent stops: one outage, one line)
                outage = 'unreachable' if str(e).startswith('cannot reach') and not e.timed_out else None
                self.problems.report('fetch:' + host, '{}{}{}'.format(   # (a job with no model yet has no values)
                    e, slow, ' (keeping the last values for a minute)' if self.models else ''), kind=outage)
        for late in self.slow.values():
            late[1] += 1
        return latest

    def _answered(self, host):
        """``host`` answered this step: its trouble is over, and told so; where its reads timed
        out, once it has answered for SLOW_CLEAR_SECONDS of steps in a row."""
        late = self.slow.get(host)
        if late is not None:
            late[2] += 1
            if late[2] * self.config.update_every < SLOW_CLEAR_SECONDS:
                return
            del self.slow[host]
            if late[0] > 1:
                self.problems.clear('fetch:' + host, 'agent {} answers again ({} of its {} reads since had no answer '
                                                     'in time)'.format(host, late[0], late[1] + 1))
        self.problems.clear('fetch:' + host, 'agent {} answers again'.format(host))

    def start(self):
        """Load the saved models that still fit, and start training the rest now."""
        self.started = True
        if self.models_dir:
            # (reads the agent's machine GUID once it lists its charts, then the flagged steps
            # saved: an agent that answers only later has them read then, checked against it)
            self._start_from_disk()
        self._hold_agent_start_up()
        self._maybe_start_training(self._pending, wait=None)   # check() tells what the job starts with

    def _hold_agent_start_up(self):
        """A job started within its agent's first AGENT_START_SECONDS (python.d.plugin starts
        with the agent: every restart) shows no flag on the agent's start-up, read from its
        ``netdata.uptime``; what would have been flagged is still left out of training. Asked
        again when the agent answers after an outage or its values move on after a pause (a
        streamed child, or a standalone job's agent, restarting under a running job). An agent
        that lists no such chart (a recording without it) is not held."""
        uptime = agent_uptime(self.apis[self.config.host])
        if uptime is None or not 0 <= uptime < AGENT_START_SECONDS:
            return
        steps = int(np.ceil((AGENT_START_SECONDS - uptime) / self.config.update_every))
        self.agent_start_rows = range(self.steps + 1, self.steps + 1 + steps + self.need)   # (steps count from 1)
        self.start_up_pending = True
        self.log.info('the agent started {:.0f} s ago: no flag rises on its start-up until it has run {} s'.format(
            uptime, AGENT_START_SECONDS))

    def _load_flagged(self):
        """The spans flagged before a restart, so the next training leaves them out as well;
        once, after the agent's machine GUID is read (another node's are not taken)."""
        if not self.config.train_exclude_flagged or self.flagged_loaded:
            return
        self.flagged_loaded = True
        spans, reason = self.flag_file.load()
        if reason:
            self.log.warning('the flagged steps saved in {} (models_dir) are not used: {}'.format(
                self.models_dir, reason))
        for model_id, saved in spans.items():
            self.flagged[model_id] = saved + self.flagged.get(model_id, [])
        if spans:
            self.log.info('loaded the flagged steps of {} (left out of their next training): {}'.format(
                plural(len(spans), 'model'), first_few(sorted(spans))))

    def _save_flagged(self, now):
        """Write the flagged spans when due at agent time ``now`` (``FlagFile``), without those
        no training window reaches any more (train_every_n 0 never trains, and never drops them)."""
        if self.flag_file.due(now):
            self._exclusions()
            self.flag_file.write(self.flagged, now)

    def _start_from_disk(self, charts=None, report=None):
        """``_load_saved``, whose failure (a broken models dir) costs the saved models only."""
        try:
            self._load_saved(charts, report)
        except Exception as e:  # a broken models dir must never stop the job
            self.log.error('cannot load saved models from {} (models_dir): {!r}'.format(self.models_dir, e))

    def _load_saved(self, charts=None, report=None):
        """Load every saved model that still fits, on the first chart list the agent gives."""
        if charts is None:
            try:
                charts = self.apis[self.config.host].charts()
            except NetdataError:
                return  # the training path reports an unreachable agent, and loads them once it answers
        specs = self.discover(charts)
        self._read_agent()   # (the agent may answer only now)
        self._load_flagged()
        self.prune_due = True   # once the agent has listed all it will (_prune_saved)
        loaded, metas = self._load_from_disk(charts, specs)
        if not loaded:
            return
        self.specs = specs
        self._ask_for(specs.values())
        now = self._add_loaded(loaded, report or self._pending)
        self.initial_done = True
        every = self.config.update_every
        age = saved_models.age(metas, now, self.config.offset_n_secs)
        if self.config.train_every_n:
            due_in = max(0, int((self.config.train_every_n * every - age) // every))
            regrow_in, trained_on = self._regrow_loaded(metas, age)
            due = 'next full training in {} steps'.format(min(due_in, regrow_in))
            if regrow_in < due_in:
                due += ' (they were fitted on {:.0f} s of history: again {} the agent holds twice that)'.format(
                    trained_on, 'now that' if regrow_in == 0 else 'once')
            self.next_training = self.steps + min(due_in, regrow_in)   # the agent may have answered only later
        else:
            self.next_training, due = NEVER, 'not retrained (train_every_n 0)'
        self.next_discovery = Due(self.clock(), self.steps)  # train the charts without a usable saved model at once
        self.log.info('loaded {} from {} (oldest trained {:.0f} s ago); {}'.format(
            plural(len(loaded), 'saved model'), self.models_dir, age, due))

    def _read_agent(self):
        """The agent's machine GUID, read once it answers: the saved models and flagged steps
        carry it, so that another node's (a models_dir copied or restored there, or shared with
        its job, which reads its own agent as 127.0.0.1:19999 too) are not taken for this one's.
        None while unknown (an agent that does not answer, or gives none): nothing is checked."""
        if self.agent is None and self.models_dir:
            try:
                self.agent = self.apis[self.config.host].agent_id() or ''   # ('': it answered without one)
            except Exception:   # no answer now: read again when the saved models are, or at a training
                self.agent = None
            self.flag_file.agent = self.agent or None
        return self.agent or None

    def _prune_saved(self, specs, charts=()):
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
        # a custom model taken out of custom_models, and a chart the agent still lists that went
        # out of the job's scope (charts_regex or charts_to_exclude changed since it was saved):
        # said so, not taken for charts gone
        custom = [m for m, columns in old.items() if columns and not all(_chart_of(c) == m for c in columns)]
        out_of_scope = [m for m in old if m in charts and m not in custom]
        gone = [m for m in old if m not in charts and m not in custom]
        if custom:
            self.log.info('removed {} no longer in custom_models: {}'.format(
                plural(len(custom), 'saved custom model'), first_few(custom)))
        if out_of_scope:
            self.log.info('removed {} of charts the job no longer models (charts_regex, charts_to_exclude): {}'.format(
                plural(len(out_of_scope), 'saved model'), first_few(out_of_scope)))
        if gone:
            self.log.info('removed {} of charts the agent no longer lists: {}'.format(
                plural(len(gone), 'saved model'), first_few(gone)))

    def _regrow_loaded(self, metas, age=None):
        """Steps until loaded models fitted on a young agent's minutes are retrained as its
        history doubles, as they would have been had the job not restarted (a restart to apply
        a config edit kept them for all of train_every_n), and the history they were fitted on;
        never for models fitted on (nearly) the whole window. The history held now is at most
        what they were fitted on plus the ``age`` of the oldest: the chart list's first entry
        reaches back over any gap (a database agent that was down for hours lists the history
        it kept from before), which retrained models seconds old at every restart."""
        every = self.config.update_every
        trained_on = saved_models.fitted_on(metas, every)
        if (trained_on is None or trained_on >= 0.9 * self.config.train_n_secs
                or self.config.initial_train_data_after > 0):   # (a fixed first window stands as chosen)
            return NEVER, trained_on
        self.history_seen = trained_on   # and the doubling goes on from there
        held = max(self.apis[self.config.host].listed_seconds.values(), default=0)
        if age is not None:
            held = min(held, trained_on + age)
        return max(0, int((2 * trained_on - held) // every)), trained_on

    def _load_from_disk(self, charts, specs):
        """The saved models of ``specs`` that still fit; each spec is looked up once per job,
        so a chart the agent lists only later (after a restart) gets its saved model too."""
        self.disk_checked.update(specs)
        loaded, metas, unused = saved_models.read_saved(
            self.models_dir, self.config, specs, self._dimensions_collected(charts, specs),
            feature_blocks(self.config.lags_n, self.config.level_features), self.agent or None)
        for reason, ids in sorted(unused.items()):
            self.log.info('{} not used, retraining: {}: {}'.format(plural(len(ids), 'saved model'), reason,
                                                                  first_few(ids)))
        return loaded, metas

    def _add_loaded(self, loaded, report):
        """Score the loaded models from the next step on; the agent's newest time, if it answered."""
        try:
            tails, now, _ = self._recent_rows(loaded)
        except Exception:  # odd answers: the loaded models start scoring once enough steps came in
            tails, now = {}, None
        self.models.update(loaded)
        report.added.extend(sorted(loaded))
        self._rebuild(tails)
        return now

    def _dimensions_collected(self, charts, specs):
        """Each chart's dimension names as the agent collects them (``saved_models.collected_dimensions``)."""
        wanted = sorted(s.chart for s in specs.values() if s.chart is not None)
        try:
            body = self.apis[self.config.host].allmetrics(charts=wanted) if wanted else {}
        except NetdataError:
            return charts
        return saved_models.collected_dimensions(charts, body, wanted)

    def _recent_rows(self, models):
        """The last rows of the models' charts as the steps would have read them, so they score
        from the first step (``stored_rows.on_step_grid``), the agent's newest time, and how many
        charts were not read within REFILL_SECONDS."""
        read, unread = stored_rows.read_stored(self.api_factory, self.config, stored_rows.charts_of(models),
                                               self.need, PARALLEL_READS, REFILL_SECONDS)
        return stored_rows.on_step_grid(read, models, self.need, self.config.update_every) + (unread,)

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
        report.fresh = True
        if not stamp:
            if not self.snapshots:
                return report
            stamp = self.snapshots[-1][0] + self.config.update_every
        # a jump either way (a suspend, the clock set back) makes the kept rows another
        # time's; not on the step after a refill: a slow one would read as another gap, for ever
        if (self.models and self.snapshots and abs(stamp - self.snapshots[-1][0]) > GAP_STEPS * self.stamp_every
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

    def _beside_other_trainings(self):
        """Another job's training runs in this process (python.d.plugin runs every job in one,
        and they train one at a time): on the node it shows in the charts as the job's own
        does, and no flag rises on the rows it shows in either (trained together, as before,
        each job's own training hid the others'). For OWN_TRAINING_MAX_STEPS at most, as the
        job's own; not for a job reading another machine's charts (a child through its parent,
        a remote agent), where it never shows."""
        if self.own_waits and not self.trainer.waiting:
            # the job's own training, which waited for another job's, started at this step's
            # poll or at another job's look since the last step: held from here, the row this
            # step read too (held from when it was asked for, it ran open once the wait had
            # taken OWN_TRAINING_MAX_STEPS)
            self.own_waits = False
            if self.trainings_take_agent_time:
                self._hold_own_training(first=self.steps + 1)
        if not self.trainings_take_agent_time:
            return
        if not (self.reads_this_machine and
                training_elsewhere(self.trainer, OWN_TRAINING_MAX_STEPS * self.config.update_every)):
            return
        self._hold_rows(self.steps + 1, self.steps + 2 + self.need)

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
            if self.stood is not None and (self.steps - self.stood.step) * self.config.update_every >= PAUSE_SECONDS:
                # values that paused for seconds: a child that restarted (its parent answered
                # for it meanwhile), which no python.d restart tells this job of
                self._hold_agent_start_up()
            self.stood = Stood(stamp, now, self.steps)
            return False
        limit = max(STILL_SECONDS, 3 * self.stamp_every)
        if now - self.stood.clock < limit or (self.steps - self.stood.step) * self.config.update_every < limit:
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
        self.gap = Moment(self.steps, stamp)
        try:
            tails, _, unread = self._recent_rows(self.models)
        except Exception:  # odd answers: the models score again once enough steps came in
            tails, unread = {}, 0
        if unread:
            self.log.info('the agent took over {:g} s to send the stored rows after the gap: the models of {} '
                          'not read by then score again once enough steps came in'.format(
                              REFILL_SECONDS, plural(unread, 'chart')))
        before = {}   # this step's row comes from allmetrics: the stored rows stop before it
        for model_id, (times, raw) in tails.items():
            times = np.asarray(times)
            before[model_id] = (times[times < stamp], np.asarray(raw)[times < stamp])
        self.ring_stamps = None   # the rows held are from before the gap: none of them is kept
        self._rebuild(before)

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
            elif spec is not None and spec.chart and answer and spec.chart not in answer.get(spec.host, {spec.chart: 0}):
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
                unread.append((key, "model '{}': no current values for its dimensions, skipping it".format(model_id)))
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

    def _custom_charts_gone(self, present, answer):
        """A custom model scores on while one of its charts has left its agent's answer (a
        sensor's collector stopped, an interface deleted): the chart's last values stand in for
        it, as for a node that does not answer, which is told as that node's error; a chart gone
        from an agent that answers would be told nowhere. Said once per model, and when back."""
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
            charts = self.custom_charts[spec.model_id] = (spec.columns, sorted({split_key(c)[:2] for c in spec.columns}))
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

    def _start_up_ended(self, stamp):
        """The agent's start-up held ends at agent time ``stamp``: where its node booted with it
        (system.uptime), a flag up from it on is a level the reboot changed (``_changed_by_reboot``)."""
        self.start_up_pending = False
        api = self.apis[self.config.host]
        node, agent = agent_uptime(api, 'system.uptime'), agent_uptime(api)
        if not node or agent is None or node > agent + BOOT_SECONDS:   # (0: not collected, not told)
            return
        self.reboot_end = stamp
        if self.config.train_every_n:
            self.reboot_retrain_at = stamp + max(self.config.train_min_n_secs, REBOOT_RETRAIN_SECONDS)
            # the start-up's hold goes on for the models flagged through it, until retrained for the
            # reboot: the node alarms warned at every reboot for the minutes until then
            self.reboot_held = set(self.episodes)
            self.reboot_hold_until = self.reboot_retrain_at + (DISCOVER_SECONDS + OWN_TRAINING_MAX_STEPS) * (
                self.config.update_every)

    def _held_after_reboot(self, ids, flags, stamp):
        """``flags`` without those of the models flagged since a reboot's start-up (``reboot_held``),
        until their retraining for it is taken up (``_adopt``), their flag's episode ends, or
        ``reboot_hold_until``: a level the reboot changed is learned minutes on, and shown only
        if it is still unusual then."""
        if self.reboot_hold_until is None or stamp >= self.reboot_hold_until:
            self.reboot_held = set()
            return flags
        flags = flags * ~np.isin(ids, list(self.reboot_held))
        self.flag_policy.held_down(flags)
        return flags

    def _remember_flag(self, model_id, t):
        """Keep flagged times as intervals, so the next training can leave them out."""
        self.flag_file.changed(flagged_spans.remember(self.flagged, model_id, t, self.config.update_every))

    def _exclusions(self):
        """Flagged intervals still inside a training window, per model (older ones are dropped)."""
        if not self.config.train_exclude_flagged or not self.flagged:
            return {}
        newest = max((sp[1] for spans in self.flagged.values() for sp in spans), default=None)
        if newest is None:
            return {}
        # by the agent's clock now, where it is known: a span dated ahead of it (a flag raised
        # while the clock ran hours fast, then set right) would date every real span out
        now = self.snapshots[-1][0] if self.snapshots else (self.apis[self.config.host].listed_at or newest)
        oldest = now - self.config.offset_n_secs - self.config.train_n_secs - self.need * self.config.update_every
        spans = flagged_spans.in_reach(self.flagged, oldest)
        # a window all after the reboot is any model's; till then, the rows since it are the
        # model's new normal, not an incident its flag since has to leave out
        self.reboot_models = {m: t for m, t in self.reboot_models.items() if t >= oldest}
        for model_id, start in self.reboot_models.items():
            if model_id in spans:
                spans[model_id] = flagged_spans.cut_at(spans[model_id], start)
        return spans

    def close(self):
        """Write what the flagged spans' file lacks, stop the trainer, close the connections."""
        if self.flag_file.unsaved:
            self.flag_file.changed(flagged_spans.NEW)   # whatever the time since the last write
            self._save_flagged(self.flag_file.saved_at)
        self.trainer.close()
        for api in self.apis.values():
            api.close()


def _charts_are(charts):
    """'chart a is' or 'charts a, b are'."""
    return 'chart {} is'.format(charts[0]) if len(charts) == 1 else 'charts {} are'.format(', '.join(charts))


def _seconds_of(history, ids):
    """The history of the models ``ids`` in one figure, or their range ('20-60'): those a
    line names, not another chart's that waits beside them."""
    low, high = min(history[m] for m in ids), max(history[m] for m in ids)
    return '{:.0f}'.format(high) if round(low) == round(high) else '{:.0f}-{:.0f}'.format(low, high)
