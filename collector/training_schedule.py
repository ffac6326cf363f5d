"""When the job trains and what: the full training every ``train_every_n`` steps, the charts
that appeared, failed or wait for history in between, a young agent's models trained again as
its history grows, and a training's result taken up (its models adopted, its failures told and
retried further and further apart). No flag rises on the rows a training shows in.

A part of ``engine.AnomalyDetector``: its own state is set up in ``_init_schedule``,
the detector's it reads and sets.
"""
import collections

from . import flagged_spans, memory, timings
from .hosts import on_this_machine
from .netdata_api import NetdataError
from .problems import count_of, first_few, gist, plural
from .timings import Due
from .trainers import training_elsewhere
from .training import NO_DATA, NO_VALUES, TrainingRequest


Retry = collections.namedtuple('Retry', 'tries step')   # failed trainings in a row, no retry before step
NO_RETRY = Retry(0, 0)


def _listed(said, how):
    """``{model id: value}`` as one line's list: 'system.cpu (40%), system.load (31%)'."""
    return first_few(['{} ({})'.format(m, how.format(v)) for m, v in sorted(said.items())])


def _seconds_of(history, ids):
    """The history of the models ``ids`` in one figure, or their range ('20-60'): those a
    line names, not another chart's that waits beside them."""
    low, high = min(history[m] for m in ids), max(history[m] for m in ids)
    return '{:.0f}'.format(high) if round(low) == round(high) else '{:.0f}-{:.0f}'.format(low, high)


class TrainingSchedule:
    """When to train and what, and a training's result taken up."""

    def _init_schedule(self, config):
        """The state of the trainings: due, in flight, failed, waiting for history."""
        self.next_training = 0   # the step a training of every chart is due at
        self.failed_trainings = 0   # whole trainings failed in a row
        self.failed_until = 0       # the step before which no discovery trains after a whole training failed
        self.untrained = {}  # model id -> why its last training failed
        self.retry_at = {}   # model id -> Retry: failed trainings in a row, step before which no discovery retries it
        self.training_quiet = False  # the training in flight only retries models that failed before
        self.training_step = 0       # the step the training in flight started at
        self.waiting = set()  # models whose chart has less than train_min_n_secs of history
        self.waiting_since = {}  # model id -> (step, the chart's listed seconds) when its wait began
        self.training_all = False  # whether the training in flight fits every chart on the rolling window
        self.training_new = set()  # the models it retrains for new dimensions (looked for again if it fails)
        self.history_seen = None   # seconds of history the agent held at the last such training
        self.trainings = 0   # trainings ended (for the tests and the harnesses)
        self.initial_done = False   # the first training (of initial_train_data_after/before) ended
        self.training_fixed = False   # whether the training in flight reads initial_train_data_after/before
        self.training_started = None   # the clock when the training in flight started
        self.own_rows = range(0)   # the steps whose features hold the job's own last training
        self.own_waits = False   # its training asked for waits for another job's to end (trainers._OneAtATime)
        self.wait_told = False   # that wait was told (once a training, after TRAINING_WAIT_TOLD_SECONDS)
        # a replay waits for each training on a stopped clock, so its rows never show one; on an
        # agent every training shows in the rows read from its start to `need` after its end
        self.trainings_take_agent_time = True
        # whether what runs here shows in the charts read: not those of a child read through a
        # parent, nor a remote agent's (another job's training is no work of theirs)
        self.reads_this_machine = on_this_machine(config.host)
        self.kept_flagged = set()  # models whose last training kept their flagged steps (said once)

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
                e, ': api_timeout, raise it for an agent this slow to list its charts' if e.timed_out else ''),
                told=self._node_not_held_told(e, 'fetch:' + self.config.host))
            self._retry_full_training_soon(full_due, self._list_retry_steps())
            return
        self.list_failures = 0
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
                wait = timings.SCOPE_WAIT_SECONDS
                self.next_discovery = Due(self.clock() + wait, self.steps + wait)
            self._retry_full_training_soon(full_due)   # a discovery's empty list leaves the schedule alone
            return
        self.problems.clear('scope')
        new_dimensions = self._new_dimensions(charts, specs, tell=not full_due)
        if full_due:
            todo = list(specs.values())
            self.next_training = self.steps + self.config.train_every_n if self.config.train_every_n else timings.NEVER
        else:
            todo = self._to_train_between(charts, specs, report, new_dimensions)
        if todo:
            self._start_trainer(todo, full_due, new_dimensions)

    def _retry_full_training_soon(self, full_due, steps=None):
        """A full training that could not start is tried again ``steps`` (RETRY_STEPS) on
        (charts still without a model are tried again at each discovery)."""
        if full_due:
            self.next_training = self.steps + (timings.RETRY_STEPS if steps is None else steps)

    def _list_retry_steps(self):
        """Steps to the next look at a chart list that could not be read: SCOPE_WAIT_SECONDS
        after the first failure, twice as long after each next one, RETRY_STEPS at most. An
        agent that failed once (starting, restarting, a lost answer) is not waited for as
        long as one that is away."""
        self.list_failures += 1
        seconds = timings.SCOPE_WAIT_SECONDS * 2 ** min(self.list_failures - 1, 10)
        return max(1, min(timings.RETRY_STEPS, int(seconds // self.config.update_every)))

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
            delay = self._retry_delay()
            self.problems.report('training', 'cannot start training: {!r}{}'.format(
                e, ' (trying again in {} steps)'.format(delay) if full_due else ''))
            self._retry_full_training_soon(full_due, delay)
            self._regrow_again(new_dimensions)
            return
        self.training_new = set(new_dimensions) & {s.model_id for s in todo}
        self.training_started, self.training_step = self.clock(), self.steps
        self.own_waits, self.wait_told = self.trainer.waiting, False
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
        self._hold_rows(first, first + timings.OWN_TRAINING_MAX_STEPS)

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
        elif self.own_waits and not self.wait_told:
            self._tell_long_wait()
        if not self.trainings_take_agent_time:
            return
        if not (self.reads_this_machine and
                training_elsewhere(self.trainer, timings.OWN_TRAINING_MAX_STEPS * self.config.update_every)):
            return
        self._hold_rows(self.steps + 1, self.steps + 2 + self.need)

    def _tell_long_wait(self):
        """Once a training, when it has waited TRAINING_WAIT_TOLD_SECONDS for another job's: for
        whose, and how long that one has run (a job whose agent sends its window slowly, a child
        on a bad link, holds up every other job's models, up to its trainer's max_seconds)."""
        waits = self.trainer.waiting_for()
        if waits is None or waits[0] < timings.TRAINING_WAIT_TOLD_SECONDS:
            return
        self.wait_told = True
        waited, other = waits
        job = getattr(other, 'job', None)
        ran = other.running_for() if other is not None else None
        whose = "another job's training" if job is None else "the training of job '{}'".format(job)
        running = '' if ran is None else ', running for {:.0f} s'.format(ran)
        self.log.info("this job's training, asked for {:.0f} s ago, waits for {}{}: the jobs of one process "
                      '(python.d.plugin) train one at a time'.format(waited, whose, running))

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
        self.own_rows = (range(self.own_rows.start, self.steps + 1 + self.need) if self.trainings_take_agent_time
                         else range(0))
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
        # (a fixed first window stands as chosen: its length says nothing of the agent's history)
        if result.models and (self.training_all or first_models) and not self.training_fixed:
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
        delay = self._retry_delay()
        # (the charts still without a model too: each discovery would otherwise train them at once)
        self.failed_until = self.steps + delay
        self._regrow_again(self.training_new)
        if self.config.train_every_n or self.training_all:   # with 0, only a first training is tried again
            self.next_training = min(self.next_training, self.steps + delay)
            delay = min(delay, self.next_training - self.steps)   # (a full training due sooner comes first)
        self.problems.report('training', 'training failed: {} (trying again in {} steps)'.format(error, delay))

    def _retry_delay(self):
        """Steps to the next try after another whole training failed (or could not start):
        RETRY_STEPS, doubling up to train_every_n (with 0, the default's)."""
        self.failed_trainings += 1
        cap = self.config.train_every_n or timings.RETRY_CAP_STEPS
        return min(timings.RETRY_STEPS * 2 ** min(self.failed_trainings - 1, 10), max(timings.RETRY_STEPS, cap))

    def _regrow_again(self, model_ids):
        """Models whose retraining for new dimensions did not happen (a training that failed or
        could not start, or failed for them): their new dimensions are looked for again at the
        chart lists once the retry is due, and retrained for then, the rows since they came left
        out, rather than never (``_new_dimensions`` asks once per set of listed dimensions)."""
        for model_id in model_ids:
            self.regrown.pop(model_id, None)

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
            self.next_training = min(self.next_training, self.steps + max(timings.RETRY_STEPS, int(history // every)))

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
        self._regrow_again(self.training_new & set(result.errors))
        for model_id in result.models:
            self.untrained.pop(model_id, None)
            self.retry_at.pop(model_id, None)
        listed = self.apis[self.config.host].listed_seconds
        dues = {}
        for model_id, history in result.waiting.items():
            # tried again once it may have the history, not at every discovery before: each
            # training holds every chart's new flags while it runs. A history of 0 is one the
            # training could not tell (a failed read, no values yet): the chart list's, if any,
            # else at discoveries further and further apart, the first a minute on
            self.untrained.pop(model_id, None)
            spec = self.specs.get(model_id)
            if not history and spec is not None and spec.columns is None and spec.host == self.config.host:
                history = listed.get(spec.chart) or 0
            if model_id in self.models:   # kept (a saved model): not retrained for its wait
                continue
            if history > 0:
                short = int(result.min_history - history)
                # (a step on: the agent's newest row may come a second late; a chart whose listed
                # history is enough already, one the training could not read, at the next discovery)
                dues[model_id] = self.training_step + (1 + -(-short // self.config.update_every) if short > 0
                                                       else self.discover_every)
            else:
                self._back_off(model_id)
        self._retry_when_grown(dues)
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

    def _retry_when_grown(self, dues):
        """Retry the models that wait for history at the step each will have it (``dues``),
        those due within a discovery of the first of them together at the last (one training,
        not one a step), the first of them with a chart listing taken then rather than at the
        next discovery: a chart seconds short of train_min_n_secs is trained seconds later, not
        a minute, while an incident begun meanwhile would go into its window. (The groups after
        it wait for the discoveries after: a listing at each group's step raised more false
        flags on young agents, 217 instead of 187 over the twelve recordings at --warmup 60.)"""
        ordered = sorted(dues.items(), key=lambda item: item[1])
        while ordered:
            group = [(m, due) for m, due in ordered if due <= ordered[0][1] + self.discover_every]
            for model_id, _ in group:
                self.retry_at[model_id] = Retry(0, group[-1][1])
            ordered = ordered[len(group):]
        soonest = self._soonest_retry()
        if soonest < self.next_discovery.step:
            self.next_discovery = Due(self.next_discovery.clock, soonest)

    def _soonest_retry(self):
        """The next step a model that waits for history is retried at (``_retry_when_grown``);
        else never."""
        return min((retry.step for m, retry in self.retry_at.items()
                    if retry.tries == 0 and retry.step > self.steps and m not in self.models), default=timings.NEVER)

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
        limit = 2 * result.min_history + 2 * timings.DISCOVER_SECONDS
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
