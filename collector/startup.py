"""An agent's start-up and its node's reboot: no flag rises on an agent's first minute (a job
started with it, or an agent that restarted under a running job), and the levels a reboot
changed (the page cache emptied, the services restarted) are trained on the rows since it,
not flagged for an hour.

A part of ``engine.AnomalyDetector``: its own state is set up in ``_init_start_ups``,
the detector's it reads and sets.
"""
import numpy as np

from . import flagged_spans, timings
from .netdata_api import is_time
from .problems import first_few, plural


def agent_uptime(api, chart='netdata.uptime', now=None):
    """The seconds an agent has run, by its ``netdata.uptime`` (0 where it lists the chart but
    has not collected it yet: seconds old), or None when it does not tell (not listed, no answer);
    with ``chart`` 'system.uptime', the seconds its node has run since it booted. Given the
    agent's time ``now`` (its chart list's), a value stored seconds before it is an earlier
    run's: an agent restarted answers with it until it collects its own, 0 too."""
    return uptime_reading(api, chart, now)[0]


def uptime_reading(api, chart='netdata.uptime', now=None):
    """``(agent_uptime's value, the agent time of the row it read, None when it has none)``."""
    try:
        _, rows = api.data(chart, after=-1)
    except Exception:
        return None, None
    rows = [r for r in rows if len(r) > 1]
    uptime = rows[-1][1] if rows else None
    at = rows[-1][0] if rows and is_time(rows[-1][0]) else None
    if uptime is None:
        return 0.0, at
    every = (getattr(api, 'listed_every', None) or {}).get(chart, 1)
    if now is not None and at is not None and at < now - 1 - every:
        return 0.0, at
    if isinstance(uptime, bool) or not isinstance(uptime, (int, float)):
        return None, None
    return float(uptime), at


class StartUps:
    """An agent's start-up held, and a reboot's changed levels retrained."""

    def _init_start_ups(self):
        """The state of the start-ups held and of the reboots retrained for."""
        self.agent_start_rows = range(0)   # the steps whose features hold the agent's start-up
        self.start_up_pending = False   # a start-up held whose end is not reached yet
        self.uptime_read = None   # (the agent's uptime, the agent time of its row) when it was last read
        self.reboot_end = None   # agent time the last start-up after a reboot ended
        self.reboot_retrain_at = None   # agent time the models flagged since the last one are retrained
        self.reboot_changed = set()   # the models that retraining was for (for its log line)
        self.reboot_models = {}   # model id -> agent time its training window starts at (a reboot changed it)
        self.reboot_held = set()   # models flagged since a reboot's start-up, shown once retrained for it
        self.reboot_hold_until = None   # agent time their hold ends whatever happens (a training that fails)

    def _hold_agent_start_up(self):
        """A job started within its agent's first AGENT_START_SECONDS (python.d.plugin starts
        with the agent: every restart) shows no flag on the agent's start-up, read from its
        ``netdata.uptime``; what would have been flagged is still left out of training. Asked
        again when the agent answers after an outage or its values move on after a pause (a
        streamed child, or a standalone job's agent, restarting under a running job). An agent
        that lists no such chart (a recording without it) is not held."""
        (uptime, at), last = uptime_reading(self.apis[self.config.host]), self.uptime_read
        # not grown through the pause: the run before's last value, which a parent answers for a
        # child that restarted until the child's own first one comes (1.37 does), stamped now (3 s:
        # each reading may be a second behind its row, and the rows a second apart)
        restarted = (uptime is not None and at is not None and last is not None
                     and uptime >= timings.AGENT_START_SECONDS and uptime < last[0] + (at - last[1]) - 3)
        if restarted:
            uptime = 0.0
        if uptime is not None and at is not None:
            self.uptime_read = (uptime, at)
        if uptime is None or not 0 <= uptime < timings.AGENT_START_SECONDS:
            return
        steps = int(np.ceil((timings.AGENT_START_SECONDS - uptime) / self.config.update_every))
        end = self.steps + 1 + steps + self.need   # (steps count from 1)
        if self.start_up_pending and self.agent_start_rows.start <= self.steps + 1:
            # the start-up held already, told again (an outage's end and the values moving on):
            # held from where it began, and said once
            self.agent_start_rows = range(self.agent_start_rows.start, max(end, self.agent_start_rows.stop))
            return
        self.agent_start_rows = range(self.steps + 1, end)
        self.start_up_pending = True
        self.log.info('{}: no flag rises on its start-up until it has run {} s'.format(
            'the agent restarted (its uptime did not grow through the pause)' if restarted else
            'the agent started {:.0f} s ago'.format(uptime), timings.AGENT_START_SECONDS))

    def _start_up_ended(self, stamp):
        """The agent's start-up held ends at agent time ``stamp``: where its node booted with it
        (system.uptime), a flag up from it on is a level the reboot changed (``_changed_by_reboot``)."""
        self.start_up_pending = False
        api = self.apis[self.config.host]
        node, agent = agent_uptime(api, 'system.uptime'), agent_uptime(api)
        if not node or agent is None or node > agent + timings.BOOT_SECONDS:   # (0: not collected, not told)
            return
        self.reboot_end = stamp
        if self.config.train_every_n:
            self.reboot_retrain_at = stamp + max(self.config.train_min_n_secs, timings.REBOOT_RETRAIN_SECONDS)
            # the start-up's hold goes on for the models flagged through it, until retrained for the
            # reboot: the node alarms warned at every reboot for the minutes until then
            self.reboot_held = set(self.episodes)
            self.reboot_hold_until = self.reboot_retrain_at + (
                timings.DISCOVER_SECONDS + timings.OWN_TRAINING_MAX_STEPS) * self.config.update_every

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
            ids = sorted(m for m, start in self.reboot_models.items()
                         if start == end and m in specs and m in self.models)
        else:
            still = now - (flagged_spans.EPISODE_GAP + 2) * every   # a span that reaches this is up
            ids = sorted(m for m, spans in self.flagged.items() if m in specs and m in self.models
                         and any(first <= end < last and last >= still for first, last in spans))
            self.reboot_models.update((m, end) for m in ids)
            why = ('since the node rebooted (its agent\'s start-up ended {:.0f} s ago): {} the reboot changed (the '
                   'page cache emptied, the services restarted)').format(
                       since, 'a level' if len(ids) == 1 else 'levels')
            if len(ids) == 1:
                self.log.info("model '{}': flagged {}, retraining it on the rows since".format(ids[0], why))
            elif ids:
                self.log.info("{} flagged {}, retraining them on the rows since: {}".format(
                    plural(len(ids), 'model'), why, first_few(ids)))
        again = end + 2 * since
        self.reboot_retrain_at = again if ids and (again - now) < self.config.train_every_n * every else None
        self.reboot_changed = set(ids)
        return ids

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
