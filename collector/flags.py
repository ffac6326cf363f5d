"""The anomaly flag a person sees: raised when a model was above its threshold in at least
``min_n`` of its last ``window_n`` steps, and held while its probability stays high.

One step above the threshold happens on normal data at the rate ``contamination`` says;
requiring a few of the last steps turns those lone blips into nothing while a real
incident (which lasts) is still flagged within ``min_n`` steps. Once up, the flag stays up
while the probability is at least ``hold`` (a hysteresis): an incident whose score dips
for a moment below the threshold stays one flag, not several. ``min_n = window_n = 1``
without a hold is the retired collector's behaviour (flag = this step above the threshold).
"""
import numpy as np


def n_of_m(above, min_n, window_n, hold=None):
    """Flags for a whole 0/1 series (oldest first): the pure form, used by evaluation.

    ``hold``: optional 0/1 series, where a raised flag may stay up.
    """
    a = np.asarray(above, dtype=np.int64)
    if min_n <= 1 and window_n <= 1:
        raised = a.copy()
    else:
        c = np.concatenate([[0], np.cumsum(a)])
        idx = np.arange(1, a.size + 1)
        counts = c[idx] - c[np.maximum(idx - window_n, 0)]
        raised = (counts >= min_n).astype(np.int64)
    if hold is None or a.size == 0:
        return raised
    hold = np.asarray(hold, dtype=bool)
    if hold.shape != a.shape:
        raise ValueError('hold has {} steps, above has {}'.format(hold.size, a.size))
    # a flag is up from a raised step through the held steps right after it: within each run
    # of steps that are raised or held, from its first raised step on
    keep = raised.astype(bool) | hold
    run_id = np.cumsum(np.concatenate([[True], keep[1:] != keep[:-1]]))
    first_raise = np.where(raised.astype(bool), np.arange(a.size), a.size)
    start = np.full(run_id[-1] + 1 if a.size else 1, a.size)
    np.minimum.at(start, run_id, first_raise)
    return (keep & (np.arange(a.size) >= start[run_id])).astype(np.int64)


class FlagPolicy:
    """``n_of_m`` step by step for many models at once, keyed by model id."""

    def __init__(self, min_n, window_n):
        self.min_n = min_n
        self.window_n = window_n
        self.ids = []
        self.history = np.zeros((window_n, 0), dtype=np.int8)
        self.up = np.zeros(0, dtype=bool)
        self.pos = 0

    def reindex(self, ids):
        """Follow a new model layout, keeping the history of models that stay."""
        old = {m: k for k, m in enumerate(self.ids)}
        history = np.zeros((self.window_n, len(ids)), dtype=np.int8)
        up = np.zeros(len(ids), dtype=bool)
        for k, m in enumerate(ids):
            if m in old:
                history[:, k] = self.history[:, old[m]]
                up[k] = self.up[old[m]]
        self.ids, self.history, self.up = list(ids), history, up

    def update(self, above, hold=None):
        """Record this step's 0/1 ``above`` (one per model, 0 for a model that did not score)
        and return the flags; ``hold``: where a flag that is up may stay up."""
        self.history[self.pos] = np.asarray(above, dtype=np.int8)
        self.pos = (self.pos + 1) % self.window_n
        flags = self.history.sum(axis=0) >= self.min_n
        if hold is not None:
            flags |= self.up & np.asarray(hold, dtype=bool)
        self.up = flags
        return flags.astype(int)
