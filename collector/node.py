"""The node-level view of one step: how many models are flagged, and for how long.

Feeds the ``anomalies.rate`` chart (share of models flagged now and its rolling average,
what Netdata calls the node anomaly rate) and ``anomalies.flagged_for`` (how long the
longest-running flag has been up), which the health alarms watch. Pure bookkeeping over
the per-step scores; no I/O.
"""
import collections


class NodeRate:
    def __init__(self, window_steps):
        self.recent = collections.deque(maxlen=max(1, int(window_steps)))
        self.since = {}   # model id -> time its flag went up

    def update(self, scores, now):
        """``scores``: ``{model_id: (probability, flag)}`` of this step; ``now``: seconds.

        Returns ``(rate, rolling_rate, longest_seconds, longest_model, raised)``: rates are
        shares 0..1 of the models scored this step, ``raised`` the models whose flag rose now.
        """
        flagged = {m for m, (_, f) in scores.items() if f}
        raised = sorted(flagged - set(self.since))
        for m in list(self.since):
            if m not in flagged:
                del self.since[m]
        for m in raised:
            self.since[m] = now
        rate = len(flagged) / len(scores) if scores else 0.0
        self.recent.append(rate)
        longest_model = min(self.since, key=lambda m: (self.since[m], m)) if self.since else None
        longest = now - self.since[longest_model] if longest_model is not None else 0.0
        return rate, sum(self.recent) / len(self.recent), longest, longest_model, raised
