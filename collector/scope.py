"""Which charts the job models: the agent's chart list read in the background, the models
it asks for (charts that match ``charts_regex``, and ``custom_models``), charts gone or grown a
dimension, and a starting agent or a child not listed yet told as the wait it is.

A part of ``engine.AnomalyDetector``: its own state is set up in ``_init_scope``,
the detector's it reads and sets.
"""
from . import persist, timings
from .config import chart_in_scope
from .netdata_api import NODE_NOT_HELD, ChartListing, NetdataError, dim_key, json_loads, split_key
from .problems import count_of, first_few, plural
from .startup import agent_uptime
from .timings import Due
from .training import ModelSpec, charts_by_host


def gone_line(gone):
    """The line that tells of models removed with their charts: 'model 'disk.sdb' removed: its
    chart is gone', or '100 models removed: their charts are gone: ... (+95 more)'."""
    if len(gone) == 1:
        return "model '{}' removed: its chart is gone".format(gone[0])
    return '{} removed: their charts are gone: {}'.format(plural(len(gone), 'model'), first_few(list(gone)))


class ChartScope:
    """The chart list and the models it asks for."""

    def _init_scope(self):
        """The state of the chart list and of the waits for it."""
        self.told_scope_wait = False   # a young agent with no chart in scope yet: said once
        self.scope_looked_again = False   # an empty scope in the job's first minutes: looked at once more
        self.told_child_wait = False   # a child its just restarted parent does not list yet: said once
        self.child_waited = False      # ... and waited for since the last answer
        self.child_modelled = None     # whether models_dir held models (of the child) at the wait
        self.parent_age = None         # the parent's uptime at the wait, where it told it (s)
        self.listing = None   # the chart list being read (ChartListing), until a step takes it up
        self.list_failures = 0   # chart lists that could not be read in a row
        self.unlisted = set()  # models whose chart the last chart listing did not have
        self.regrown = {}      # model id -> the dimensions listed when it was retrained for new ones

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

    def _listing_taken(self, wait):
        """The chart list asked for, once it came (within ``wait`` seconds), else None; one is
        asked for when a training or a discovery is due and no training runs."""
        if self.listing is None:
            full_due = self.steps >= self.next_training
            discovery_due = self.clock() >= self.next_discovery.clock or self.steps >= self.next_discovery.step
            if self.trainer.busy or not (full_due or discovery_due):
                return None
            self.next_discovery = Due(self.clock() + timings.DISCOVER_SECONDS, self.steps + self.discover_every)
            self.listing = ChartListing(self.apis[self.config.host], in_thread=wait is not None)
        if not self.listing.ready(wait):
            return None
        listing, self.listing = self.listing, None
        return listing

    def _valued_dimensions(self, host, charts):
        """``{chart: names of its dimensions with a value}`` in the newest allmetrics answer
        of ``host`` the job kept, or (at the job's start, before its first step) in one read
        now of ``charts``; None where it cannot tell."""
        raw = self.snapshots[-1][1].get(host) if self.snapshots else None
        if raw is None and host not in self.apis:
            return None
        try:
            body = json_loads(raw) if raw is not None else self.apis[host].allmetrics(charts=sorted(charts))
        except (ValueError, NetdataError):
            return None
        out = {}
        for chart, c in body.items() if isinstance(body, dict) else ():
            dims = c.get('dimensions') if isinstance(c, dict) else None
            if isinstance(dims, dict):
                out[chart] = {d.get('name', k) for k, d in dims.items()
                              if isinstance(d, dict) and d.get('value') is not None}
        return out

    def _node_not_held_told(self, e, key):
        """Whether ``e`` is a parent's answer that it holds no such child, and ``key``'s line has
        said it already: the chart list and the values fail alike, and one line tells it."""
        at = e.reason.find(NODE_NOT_HELD)
        return at >= 0 and self.problems.says(key, e.reason[at:])

    def _child_not_back_yet(self, e):
        """A parent lists a child only once it has reconnected, seconds to a minute after the
        parent (re)started, and python.d restarts with it: a job that saved models of its child,
        or whose parent started less than CHILD_BACK_SECONDS ago (the first start after an
        install), waits for it, said once, for CHILD_BACK_SECONDS after its start, rather than
        calling its name unknown. Whether it waits."""
        if (e.status != 404 or NODE_NOT_HELD not in e.reason
                or self.clock() - self.created >= timings.CHILD_BACK_SECONDS):
            return False
        if self.child_modelled is None:   # (once: the steps of the wait would each read the folder)
            self.child_modelled = bool(self.models_dir) and persist.has_models(self.models_dir)
            if self.child_modelled:   # held before: past the wait, told as a child away, not as a name unknown
                self.apis[self.config.host].answered = True
            else:
                parent = self.config.host.rsplit('/host/', 1)[0]
                self.parent_age = agent_uptime(self.api_factory(self.config, parent))
        young_parent = self.parent_age is not None and self.parent_age < timings.CHILD_BACK_SECONDS
        if not (self.child_modelled or young_parent):
            return False
        self.child_waited = True
        if not self.told_child_wait:
            self.told_child_wait = True
            since = ('the job modelled this child before (its saved models)' if self.child_modelled
                     else 'the parent started {:.0f} s ago'.format(self.parent_age))
            self.log.info('{} yet: it lists a child once the child has reconnected to it; {}, so it looks '
                          'again'.format(e, since))
        return True

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
        listed = self.apis[self.config.host].listed_seconds
        agent_age = max(listed.values(), default=0)
        restarted = bool(self.models_dir) and persist.has_models(self.models_dir)
        young = timings.YOUNG_AGENT_SECONDS
        why = ('the agent lists none of the charts modelled before (it is starting, and lists its charts as its '
               'collectors start)' if restarted else
               'the agent has collected for {:.0f} s and lists its charts as its collectors start'.format(agent_age))
        if agent_age >= young and not restarted and self.clock() - self.created < young:
            # an agent restarted keeps its history (dbengine) and lists its charts as its
            # collectors start (a job started with it, models saved or not): in its first
            # seconds it lists none of its own netdata.* charts, then its own uptime tells (not
            # the last its earlier run stored, which it answers with until it collects one)
            names = set(charts) | set(listed)
            if not any(c.startswith('netdata.') for c in names):
                agent_age = 0
                why = 'the agent is starting (it lists none of its own netdata.* charts yet), and lists its charts ' \
                      'as its collectors start'
            else:
                api = self.apis[self.config.host]
                uptime = agent_uptime(api, now=getattr(api, 'listed_at', None))
                if uptime is None and 'netdata.uptime' in names:   # listed, its query matching no value yet
                    uptime = 0.0
                if uptime is not None and uptime < young:
                    agent_age = uptime
                    why = 'the agent started {:.0f} s ago and lists its charts as its collectors start'.format(uptime)
        if (agent_age < young or restarted) and self.clock() - self.created < young:
            if not self.told_scope_wait:
                self.told_scope_wait = True
                self.log.info(said + ' yet: {}; looking again'.format(why))
            return True
        if not self.scope_looked_again and self.clock() - self.created < young:
            # a job started with its agent may read its first chart list, a few charts long, a
            # second before its collectors list theirs (whatever uptime it answers with then):
            # looked at once more, seconds on, before it is an error
            self.scope_looked_again = True
            return True
        self.problems.report('scope', said + ': nothing to model; the charts list is read again every {} s, and '
                                             'charts that match are modelled when they '
                                             'appear'.format(timings.DISCOVER_SECONDS))
        return False

    def _new_dimensions(self, charts, specs, tell):
        """Modelled charts the agent now lists with a dimension their model lacks (a process
        group that started, a new disk or interrupt), and those dimensions: each is retrained
        alone at once, rather than left unseen until the next full training, and said once.
        Once per set of listed dimensions, and only for dimensions with a value in the step's
        answer: one listed but never collected is not retrained for again and again, nor at each
        restart of the job (its saved model loads without it). The training leaves out the rows
        since they first had a value (``training.since_new``)."""
        grown = {}
        for model_id, fm in sorted(self.models.items()):
            spec = specs.get(model_id)
            if spec is None or spec.chart is None:
                continue
            listed = frozenset(charts.get(spec.chart, ()))
            new = sorted(listed - {split_key(c)[2] for c in fm.columns})
            # (a retraining that failed is asked for again once its retry is due)
            retry = self.retry_at.get(model_id)
            due = self.steps >= max(self.failed_until, retry.step if retry else 0)
            if new and self.regrown.get(model_id) != listed and due:
                grown[model_id] = (spec, listed, new)
        hosts = {spec.host for spec, _, _ in grown.values()}
        valued = {h: self._valued_dimensions(h, {spec.chart for spec, _, _ in grown.values() if spec.host == h})
                  for h in hosts}
        out, told = {}, {}
        for model_id, (spec, listed, new) in grown.items():
            if valued[spec.host] is not None:
                new = [d for d in new if d in valued[spec.host].get(spec.chart, ())]
            if new:
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
