"""What a restart keeps: the saved models that still fit loaded (at the start, and for charts
the agent lists only later), scored from the first step on the agent's stored rows; the flagged
spans written as they change and read back, left out of the next training again; the saved
files of charts gone pruned. Both carry the agent's machine GUID, read here, so that another
node's are not taken for this one's.

A part of ``engine.AnomalyDetector``: its own state is set up in ``_init_restore``,
the detector's it reads and sets.
"""
from . import persist, saved_models, timings
from .features import feature_blocks
from .netdata_api import NetdataError, split_key
from .problems import first_few, plural
from .timings import Due


def _chart_of(column):
    """The chart of a saved model's column, '' for one not in dim_key's form."""
    try:
        return split_key(column)[1]
    except ValueError:
        return ''


class Restore:
    """The job's saved state: models (saved by their training) read back and pruned, flagged spans written
    and read back."""

    def _init_restore(self):
        """The state of what is read back from models_dir, once per job."""
        self.prune_due = False       # saved models of gone charts to remove, once the agent lists all
        self.disk_checked = set()  # models whose saved file was looked for (once per job)
        self.agent = None      # the agent's machine GUID, once read (_read_agent)
        self.flagged_loaded = False   # the flagged steps saved before a restart, read once the agent is

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
            self.next_training, due = timings.NEVER, 'not retrained (train_every_n 0)'
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

    def _load_from_disk(self, charts, specs):
        """The saved models of ``specs`` that still fit; each spec is looked up once per job,
        so a chart the agent lists only later (after a restart) gets its saved model too."""
        collected = self._dimensions_collected(charts, specs)
        if collected is None:   # looked up again at the next chart list (and trained then, if still unknown)
            return {}, {}
        self.disk_checked.update(specs)
        loaded, metas, unused = saved_models.read_saved(
            self.models_dir, self.config, specs, collected,
            feature_blocks(self.config.lags_n, self.config.level_features), self.agent or None)
        for reason, ids in sorted(unused.items()):
            self.log.info('{} not used, retraining: {}: {}'.format(plural(len(ids), 'saved model'), reason,
                                                                  first_few(ids)))
        return loaded, metas

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

    def _add_loaded(self, loaded, report):
        """Score the loaded models from the next step on; the agent's newest time, if it answered."""
        try:
            tails, now, _ = self._recent_rows(loaded)
        except Exception as e:  # the loaded models start scoring once enough steps came in
            self.log.error('cannot read the stored rows of the saved models ({!r}): they score once enough steps '
                           'came in'.format(e))
            tails, now = {}, None
        self.models.update(loaded)
        report.added.extend(sorted(loaded))
        self._rebuild(tails)
        return now

    def _dimensions_collected(self, charts, specs):
        """Each chart's dimension names as the agent collects them (``saved_models.collected_dimensions``);
        None where the agent did not answer its values: the chart list alone leaves out hidden
        dimensions, and every model that has one (system.cpu's idle) would read as changed."""
        wanted = sorted(s.chart for s in specs.values() if s.chart is not None)
        try:
            body = self.apis[self.config.host].allmetrics(charts=wanted) if wanted else {}
        except NetdataError:
            return None
        return saved_models.collected_dimensions(charts, body, wanted)

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
            return timings.NEVER, trained_on
        self.history_seen = trained_on   # and the doubling goes on from there
        held = max(self.apis[self.config.host].listed_seconds.values(), default=0)
        if age is not None:
            held = min(held, trained_on + age)
        return max(0, int((2 * trained_on - held) // every)), trained_on

    def _prune_saved(self, specs, charts=()):
        """Remove the saved models of charts gone while the job was stopped (containers, process
        groups, disks), saved more than two training windows, two retrainings and a day ago:
        every file in use is newer. Only from a chart list read YOUNG_AGENT_SECONDS into the
        job: an agent starting lists its charts as its collectors start, and after a weekend
        off every file is over a day old. Not with train_every_n 0: a model trained once is
        never saved again (a running job removes a gone chart's itself)."""
        if self.clock() - self.created < timings.YOUNG_AGENT_SECONDS:
            return
        self.prune_due = False
        cfg = self.config
        older_than = (max(2 * cfg.train_n_secs, timings.PRUNE_SECONDS, 2 * cfg.train_every_n * cfg.update_every)
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
