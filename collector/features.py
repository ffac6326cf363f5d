"""Feature vectors from raw chart values: the one pure function used by training and scoring.

Rows are time steps (oldest first), columns are dimensions. The transform is, in order:
``diffs_n`` differences, a trailing ``smooth_n`` moving average, then ``lags_n`` lags
appended column-wise (current values first, then lag 1, lag 2, ...). Training feeds the
whole window; prediction feeds only the last ``rows_needed`` rows, and both give the same
vector for the same data.
"""
import numpy as np


def rows_needed(diffs_n, smooth_n, lags_n):
    """Number of raw rows that produce exactly one feature row."""
    return 1 + diffs_n + max(smooth_n, 1) - 1 + lags_n


def make_features(values, diffs_n, smooth_n, lags_n):
    """Turn a (rows x dims) array into a (rows' x dims*(lags_n+1)) feature matrix.

    Returns an empty (0 x width) matrix when there are too few rows. NaN in the input
    should be filled by the caller; this function does no filling so it stays exact.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    n_dims = x.shape[1]
    width = n_dims * (lags_n + 1)
    if x.shape[0] < rows_needed(diffs_n, smooth_n, lags_n):
        return np.empty((0, width))
    if diffs_n > 0:
        x = np.diff(x, n=diffs_n, axis=0)
    if smooth_n > 1:
        c = np.cumsum(x, axis=0)
        c = np.vstack([np.zeros((1, n_dims)), c])
        x = (c[smooth_n:] - c[:-smooth_n]) / smooth_n
    if lags_n > 0:
        n = x.shape[0] - lags_n
        x = np.hstack([x[lags_n - k:lags_n - k + n] for k in range(lags_n + 1)])
    return x


def fill_missing(values):
    """Forward-fill NaN down each column, then back-fill the leading gap, then zeros.

    Netdata answers null where it had no sample (a process group that did not exist yet,
    a chart created mid-window). Carrying the last value matches what the agent shows.
    """
    x = np.array(values, dtype=np.float64, copy=True)
    if x.ndim == 1:
        x = x[:, None]
    mask = np.isnan(x)
    if not mask.any():
        return x
    cols = np.arange(x.shape[1])
    idx = np.where(~mask, np.arange(x.shape[0])[:, None], 0)
    np.maximum.accumulate(idx, axis=0, out=idx)
    x = x[idx, cols]
    # what is still NaN lies before a column's first value: take that value (0 if none)
    first = x[np.argmax(~mask, axis=0), cols]
    first = np.where(np.isnan(first), 0.0, first)
    return np.where(np.isnan(x), first[None, :], x)
