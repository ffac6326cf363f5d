"""The anomaly flag a person sees: raised when a model was above its threshold in at least
``min_n`` of its last ``window_n`` steps.

One step above the threshold happens on normal data at the rate ``contamination`` says;
requiring a few of the last steps turns those lone blips into nothing while a real
incident (which lasts) is still flagged within ``min_n`` steps. ``min_n = window_n = 1``
is the retired collector's behaviour (flag = this step above the threshold).
"""
import numpy as np


def n_of_m(above, min_n, window_n):
    """Flags for a whole 0/1 series (oldest first): the pure form, used by evaluation."""
    a = np.asarray(above, dtype=np.int64)
    if min_n <= 1 and window_n <= 1:
        return a.copy()
    c = np.concatenate([[0], np.cumsum(a)])
    idx = np.arange(1, a.size + 1)
    counts = c[idx] - c[np.maximum(idx - window_n, 0)]
    return (counts >= min_n).astype(np.int64)


class FlagPolicy:
    """``n_of_m`` step by step for many models at once, keyed by model id."""

    def __init__(self, min_n, window_n):
        self.min_n = min_n
        self.window_n = window_n
        self.ids = []
        self.history = np.zeros((window_n, 0), dtype=np.int8)
        self.pos = 0

    def reindex(self, ids):
        """Follow a new model layout, keeping the history of models that stay."""
        old = {m: k for k, m in enumerate(self.ids)}
        history = np.zeros((self.window_n, len(ids)), dtype=np.int8)
        for k, m in enumerate(ids):
            if m in old:
                history[:, k] = self.history[:, old[m]]
        self.ids, self.history = list(ids), history

    def update(self, above):
        """Record this step's 0/1 ``above`` (one per model, 0 for a model that did not score)
        and return the flags."""
        self.history[self.pos] = np.asarray(above, dtype=np.int8)
        self.pos = (self.pos + 1) % self.window_n
        return (self.history.sum(axis=0) >= self.min_n).astype(int)
