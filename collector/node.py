"""The node-level view of one step: how many models are flagged, and for how long.

Feeds the ``anomalies.rate`` chart (share of models flagged now, its rolling average, what
Netdata calls the node anomaly rate, and the share flagged at some step of the window) and
``anomalies.flagged_for`` (how long the longest-running flag has been up), which the health
alarms watch. Pure bookkeeping over the per-step scores; no I/O.
"""
import collections

NodeStep = collections.namedtuple('NodeStep', 'rate rolling recent longest longest_model raised')
NodeStep.__doc__ = """One step of ``NodeRate.update``.

``rate``: share (0..1) of the models scored this step that are flagged now; ``rolling``: its
average over the window; ``recent``: share of them flagged at some step of the window (an
incident turns charts unusual one after another, each for a while: this counts them all);
``longest``: seconds the longest-running flag has been up, ``longest_model`` its model;
``raised``: the models whose flag rose this step."""


# steps a flagged model may go unscored and keep its flag in this view
HELD_UNSCORED = 3


class NodeRate:
    def __init__(self, window_steps):
        self.window = max(1, int(window_steps))
        self.rates = collections.deque()   # (step, the share flagged then) of the steps scored in the window
        self.step = 0
        self.last_flagged = {}   # model id -> the step it was last seen flagged
        self.since = {}   # model id -> time its flag went up
        self.unscored = {}   # flagged model id -> steps in a row it has not been scored
        self.last_now = None

    def update(self, scores, now, models=(), most=None, steps=1):
        """``scores``: ``{model_id: (probability, flag)}`` of this step; ``now``: seconds;
        ``models``: every model the job has. A flagged model left out of a step's scores (no
        current value from its chart: a collector late) keeps its flag for up to
        ``HELD_UNSCORED`` steps, so its flag is not raised (and logged) again when it is scored
        next, and how long it has been up goes on; a chart that stays without values (a
        container stopped, its model not removed yet) loses it then, as the flag policy's.
        ``most``: the most seconds that can have passed since the last update (None: no
        limit); a clock that moved on further was set forward (a small box without a
        real-time clock, stepped by NTP hours or days after its boot), and the flags' ages go
        on by ``most`` only, as they go on over a clock set back. ``steps``: the job's steps since
        the last update (those without scores: the agent away, values standing still), so that
        the last minute's figures are a minute's, not a flag from before a gap of ten."""
        self.step += max(1, int(steps))
        if self.last_now is not None:
            moved = now - self.last_now
            # set back: the flags' ages go on; set forward: by at most `most`
            shift = moved if moved < 0 else (moved - most if most is not None and moved > most else 0)
            for m in self.since:
                self.since[m] += shift
        self.last_now = now
        for m in list(self.unscored):
            if m in scores or m not in self.since:
                del self.unscored[m]
        for m in self.since:
            if m not in scores:
                self.unscored[m] = self.unscored.get(m, 0) + 1
        held = {m for m in models if m not in scores and 0 < self.unscored.get(m, 0) <= HELD_UNSCORED}
        flagged = {m for m, (_, f) in scores.items() if f} | held
        raised = sorted(flagged - set(self.since))
        for m in list(self.since):
            if m not in flagged:
                del self.since[m]
        for m in raised:
            self.since[m] = now
        for m in flagged:
            self.last_flagged[m] = self.step
        for m in [m for m, s in self.last_flagged.items() if self.step - s >= self.window]:
            del self.last_flagged[m]
        n = len(scores) + len(held)
        rate = len(flagged) / n if n else 0.0
        recent = sum(1 for m in list(scores) + list(held) if m in self.last_flagged) / n if n else 0.0
        self.rates.append((self.step, rate))
        while self.step - self.rates[0][0] >= self.window:
            self.rates.popleft()
        longest_model = min(self.since, key=lambda m: (self.since[m], m)) if self.since else None
        longest = now - self.since[longest_model] if longest_model is not None else 0.0
        return NodeStep(rate, sum(r for _, r in self.rates) / len(self.rates), recent, longest, longest_model, raised)
