"""An LSTM sequence autoencoder over the feature vector's lag blocks (optional: ``pip install .[deep]``).

The feature vector already is a short sequence: the change blocks are the current step and
``lags_n`` steps before it. The LSTM reads them oldest first (each step with the level block
beside it, when there is one) and a linear layer reconstructs the whole vector from its last
state; the score is the mean squared reconstruction error. It follows pyod's detector API
(``fit``, ``decision_function``, ``decision_scores_``), imports torch only when used, trains
on the CPU with one thread, and pickles with its weights.
"""
import numpy as np

try:  # the base class is pyod's when pyod is there (it always is where models are trained)
    from pyod.models.base import BaseDetector
except ImportError:  # pragma: no cover
    BaseDetector = object


_NET = []


def _net_class():
    """The torch module, defined on first use so importing this file does not import torch."""
    if not _NET:
        import torch

        class Net(torch.nn.Module):
            def __init__(self, width, hidden, out):
                super().__init__()
                self.lstm = torch.nn.LSTM(width, hidden, batch_first=True)
                self.head = torch.nn.Linear(hidden, out)

            def forward(self, x):
                _, (h, _) = self.lstm(x)
                return self.head(h[-1])
        Net.__module__, Net.__qualname__ = __name__, 'Net'
        _NET.append(Net)
    return _NET[0]


def __getattr__(name):
    # unpickling a fitted detector looks the class up here by name
    if name == 'Net':
        return _net_class()
    raise AttributeError(name)


def sequences(X, change_blocks, has_level):
    """``(n, steps, width)`` inputs, oldest step first, from feature rows laid out by ``features``."""
    X = np.asarray(X, dtype=np.float32)
    blocks = change_blocks + (1 if has_level else 0)
    if blocks < 1 or X.shape[1] % blocks:
        return X[:, None, :]          # not block-shaped: one step with everything
    d = X.shape[1] // blocks
    change = X[:, :change_blocks * d].reshape(len(X), change_blocks, d)[:, ::-1, :]
    if has_level:
        level = X[:, change_blocks * d:]
        change = np.concatenate([change, np.repeat(level[:, None, :], change_blocks, axis=1)], axis=2)
    # a copy: a reversed axis of length 1 keeps its negative stride through ascontiguousarray,
    # which torch refuses
    return np.array(change, order='C', copy=True)


class LstmDetector(BaseDetector):
    def __init__(self, contamination=0.001, change_blocks=1, has_level=False, hidden=16, epochs=8,
                 batch_size=256, learning_rate=3e-3, max_rows=20000, random_state=0):
        self.contamination = contamination
        self.change_blocks = change_blocks
        self.has_level = has_level
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.max_rows = max_rows
        self.random_state = random_state

    def _net(self, width, out):
        return _net_class()(width, self.hidden, out)

    def fit(self, X, y=None):
        import torch
        torch.set_num_threads(1)
        torch.manual_seed(self.random_state)
        X = np.asarray(X, dtype=np.float32)
        rng = np.random.default_rng(self.random_state)
        rows = X if len(X) <= self.max_rows else X[np.sort(rng.choice(len(X), self.max_rows, replace=False))]
        seq = torch.from_numpy(sequences(rows, self.change_blocks, self.has_level))
        target = torch.from_numpy(np.ascontiguousarray(rows))
        self.net_ = self._net(seq.shape[2], X.shape[1])
        opt = torch.optim.Adam(self.net_.parameters(), lr=self.learning_rate)
        for _ in range(self.epochs):
            order = torch.from_numpy(rng.permutation(len(rows)))
            for start in range(0, len(rows), self.batch_size):
                idx = order[start:start + self.batch_size]
                opt.zero_grad()
                loss = torch.mean((self.net_(seq[idx]) - target[idx]) ** 2)
                loss.backward()
                opt.step()
        self.net_.eval()
        self._set_n_classes(y)
        self.decision_scores_ = self.decision_function(X)
        self._process_decision_scores()
        return self

    def decision_function(self, X):
        import torch
        torch.set_num_threads(1)   # scoring runs in the collector: one thread, like everything there
        X = np.asarray(X, dtype=np.float32)
        with torch.no_grad():
            out = []
            for start in range(0, len(X), 4096):
                part = X[start:start + 4096]
                pred = self.net_(torch.from_numpy(sequences(part, self.change_blocks, self.has_level))).numpy()
                out.append(np.mean((pred - part) ** 2, axis=1))
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)
