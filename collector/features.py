"""Feature vectors from raw chart values: the one pure function used by training and scoring.

Rows are time steps (oldest first), columns are dimensions. The transform is, in order:
``diffs_n`` differences, a trailing ``smooth_n`` moving average, then ``lags_n`` lags
appended column-wise (current values first, then lag 1, lag 2, ...). These see sudden
changes. With ``levels`` one more block follows: the smoothed values themselves (not
differenced), which see a level that moved and stayed (a CPU pinned at 100 %, memory
filled), something differences forget after ``lags_n`` steps. With ``despike`` a value
that held, left for one sample and came straight back is news for that one step only (see
``despiked_history``). A whole window in gives the same rows as each window of
``rows_needed`` rows alone, so scoring a recording at once equals scoring it step by step: bit
for bit without ``despike``, to rounding with it (the newest row is put back as read by an
addition, which rounds otherwise than the average it replaces: 1e-16 of the values' size).
"""
import numpy as np

# a chart whose last collection stands this far behind its agent's newest (or three of its
# intervals, if longer) is not being collected: a plugin that died, an agent that was down
STALE_CHART_SECONDS = 30

# raw rows before the oldest history row that ``despiked_history`` looks at
DESPIKE_CONTEXT = 2


def rows_needed(diffs_n, smooth_n, lags_n, despike=False):
    """Number of raw rows that produce exactly one feature row."""
    return 1 + diffs_n + max(smooth_n, 1) - 1 + lags_n + (DESPIKE_CONTEXT if despike else 0)


def despiked_history(raw):
    """``raw`` with every lone one-sample excursion taken out, but in the last row.

    A row is a blip when the value held for the two samples before it and came straight
    back after it (``0, 0, 1, 0``: a process caught blocked in one read of a one-second
    gauge); it is set to that value. The newest row has no next sample yet and stays as
    read, so a blip is seen on the step it arrives and forgotten on the next, where the
    smoothing and lags would otherwise spread it over ``rows_needed`` steps. A change that
    holds for two samples is not touched, and neither is a gauge that flips every sample
    (``1, 2, 1, 2``): its history stays as it was read, as in training.
    """
    y = raw.copy()
    if raw.shape[0] >= 4:
        held, at, after = raw[1:-2], raw[2:-1], raw[3:]
        blip = (raw[:-3] == held) & (held == after)
        y[2:-1] = np.where(blip, held, at)
    return y


def _moving_average(x, n):
    """Trailing mean of ``n`` rows, summed row by row in the same order for a whole window as
    for a step's few rows, so both give the same bits: a running sum over a 4-hour window
    of values near 1e15 would carry its rounding into every later mean (by hundreds, where
    the level's spread is tens)."""
    if n <= 1:
        return x
    rows = x.shape[0] - n + 1
    if rows <= 0:
        return x[:0]
    total = x[:rows].copy()
    for k in range(1, n):
        total += x[k:k + rows]
    return total / n


def make_features(values, diffs_n, smooth_n, lags_n, levels=False, despike=False):
    """Turn a (rows x dims) array into a (rows' x dims*blocks) feature matrix.

    ``blocks`` is ``lags_n + 1`` plus one when ``levels``. Returns an empty (0 x width)
    matrix when there are too few rows. NaN in the input should be filled by the caller;
    this function does no filling so it stays exact.

    With ``despike`` each feature row is built as a step would see it: its history from
    ``despiked_history`` (which needs ``DESPIKE_CONTEXT`` rows more, the two before the
    oldest) and its newest row as read.
    """
    raw = np.asarray(values, dtype=np.float64)
    if raw.ndim == 1:
        raw = raw[:, None]
    n_dims = raw.shape[1]
    width = n_dims * feature_blocks(lags_n, levels)
    if raw.shape[0] < rows_needed(diffs_n, smooth_n, lags_n, despike):
        return np.empty((0, width))
    if despike:
        history = despiked_history(raw)[DESPIKE_CONTEXT:]
        x = make_features(history, diffs_n, smooth_n, lags_n, levels)
        # every block is linear in the rows, and the newest row enters only the current
        # change block and the level block, each with weight 1 / smooth_n: put it back as read
        newest = (raw[DESPIKE_CONTEXT:] - history)[-x.shape[0]:] / max(smooth_n, 1)
        x[:, :n_dims] += newest
        if levels:
            x[:, -n_dims:] += newest
        return x
    x = np.diff(raw, n=diffs_n, axis=0) if diffs_n > 0 else raw
    x = _moving_average(x, smooth_n)
    if lags_n > 0:
        n = x.shape[0] - lags_n
        x = np.hstack([x[lags_n - k:lags_n - k + n] for k in range(lags_n + 1)])
    if levels:
        level = _moving_average(raw, smooth_n)[-x.shape[0]:]
        x = np.hstack([x, level])
    return x


def feature_blocks(lags_n, levels):
    """How many blocks of one column per dimension a feature row has."""
    return lags_n + 1 + (1 if levels else 0)


def feature_groups(column_groups, lags_n, levels):
    """A group id per feature: all features of the columns of one group (one chart).

    Dimensions of one chart share their units, so their features can share a scale floor
    (see ``models.feature_scale``); ``column_groups`` names the group of each raw column.
    """
    names = {}
    ids = [names.setdefault(g, len(names)) for g in column_groups]
    return np.tile(np.asarray(ids, dtype=np.intp), feature_blocks(lags_n, levels))


def absent_as_zero(values, index=None, offsets=None):
    """Read as 0 a dimension that is null in a row where its chart has other values.

    Netdata collects a chart's dimensions together, so one null among values is a dimension
    the collector no longer reports: an apps.plugin group whose processes all ended (its
    files, memory and CPU are then 0). Carried forward, the group's last reading (a stress
    run's CPU) would stand for as long as the group stays away. Rows with no value at all
    (the chart not collected: a gap, a young agent's padding) stay null for ``fill_missing``.
    ``index``/``offsets``: the columns of each chart, concatenated, and where each starts
    (default: all columns are one chart). Returns a new 2-d array.
    """
    x = np.array(values, dtype=np.float64, copy=True)
    if x.ndim == 1:
        x = x[:, None]
    if index is None:
        index, offsets = np.arange(x.shape[1]), np.zeros(1 if x.shape[1] else 0, dtype=np.intp)
    if not len(index):
        return x
    part = x[:, index]
    missing = np.isnan(part)
    if not missing.any():
        return x
    some = np.logical_or.reduceat(~missing, offsets, axis=1)
    some = np.repeat(some, np.diff(np.append(offsets, len(index))), axis=1)
    part[missing & some] = 0.0
    x[:, index] = part
    return x


def carried_within(values, times, index=None, offsets=None, stale_seconds=STALE_CHART_SECONDS):
    """Each chart's rows without a value (``absent_as_zero`` first) carried from its last
    reading, but only while that reading is current: ``stale_seconds`` behind, or three of
    the chart's own intervals if longer, the rule by which a step takes a chart for stalled.

    Joined on one-second time, a chart collected every 5 s repeats its last value between its
    collections, as the agent's current values do. A gap in collection (the agent down for an
    hour, a plugin that died after one reading) stays null: its rows are then left out of the
    chart's training rather than taught as an hour of one value. ``index``/``offsets`` as
    ``absent_as_zero``'s. Returns a new 2-d array.
    """
    x = absent_as_zero(values, index, offsets)
    times = np.asarray(times, dtype=np.float64)
    if index is None:
        index, offsets = np.arange(x.shape[1]), np.zeros(1 if x.shape[1] else 0, dtype=np.intp)
    if not len(index) or not np.isnan(x).any():
        return x
    rows = np.arange(x.shape[0])
    ends = np.append(offsets[1:], len(index))
    for start, end in zip(offsets, ends):
        cols = np.asarray(index[start:end])
        has = ~np.isnan(x[:, cols]).all(axis=1)
        if has.all() or not has.any():
            continue
        read = times[has]
        spacing = float(np.median(np.diff(read))) if read.size > 1 else 0.0
        last = np.maximum.accumulate(np.where(has, rows, -1))
        carry = ~has & (last >= 0)
        carry[carry] = times[carry] - times[last[carry]] <= max(stale_seconds, 3.0 * spacing)
        if carry.any():
            x[np.ix_(carry, cols)] = x[np.ix_(last[carry], cols)]
    return x


def rows_with_every_chart(values, column_groups):
    """Which rows hold a value of every chart (a group of ``column_groups``, one per column).

    A custom model joins dimensions of several charts. Where one chart was not collected (its
    plugin down, longer than ``carried_within`` carries) and another was, filling the row
    would teach the model that chart's last value beside the other's changes: such rows are
    left out, as a single chart's gap is. With one chart: the rows with any value."""
    x = np.asarray(values, dtype=np.float64)
    has = ~np.isnan(x)
    rows = np.ones(x.shape[0], dtype=bool)
    ids = {}
    for i, g in enumerate(column_groups):
        ids.setdefault(g, []).append(i)
    for cols in ids.values():
        rows &= has[:, cols].any(axis=1)
    return rows


def covered_seconds(times):
    """The seconds of collection the rows at ``times`` stand for: their span without the gaps
    in it (a step longer than the rows' usual spacing counts as that spacing), so an agent that
    was down most of a window gives the minutes it was up, not the window."""
    times = np.asarray(times, dtype=np.float64)
    if times.size < 2:
        return 0.0
    steps = np.diff(times)
    return float(np.minimum(steps, np.median(steps)).sum())


def rows_every(times, every, lag=0):
    """Indices of the rows a job stepping every ``every`` seconds reads, oldest first: at each
    step time (``every`` s apart, back from the newest row) the newest row collected by then.

    Each step reads the agent's latest sample, not an average, so a model is trained on the
    same: the agent's ``every``-second averages have less spread than single samples, and
    normal steps read as unusual against them (``bench/update_every.py``: 82 clean steps of
    1000 above the threshold against 7). A chart collected less often than the steps (every
    5 s, stepped every second) repeats its rows, as the steps do, whether or not it is trained
    beside faster charts. A step in a gap in collection (nothing for longer than the chart's
    own spacing) reads nothing and is left out, as the job refills its rows after a gap.
    ``lag``: the steps end that many seconds before the newest row (``phases_every``).
    """
    times = np.asarray(times, dtype=np.float64)
    spacing = float(np.median(np.diff(times))) if times.size > 1 else 0.0
    if times.size == 0 or (every <= 1 and spacing <= 1 and not lag):
        return np.arange(times.size)
    n = int((times[-1] - lag - times[0]) // every) + 1
    if n <= 0:
        return np.zeros(0, dtype=np.intp)
    at, current = rows_at(times, times[-1] - lag - every * np.arange(n)[::-1], every)
    return at[current]


def rows_at(times, steps, every):
    """``(index, current)`` for each step time: the row the step reads (the newest collected by
    then, times oldest first), and whether it is still current, collected less than the
    chart's own spacing (or ``every``) before the step. A step before the first row, or in a gap
    in collection, reads nothing current."""
    times = np.asarray(times, dtype=np.float64)
    steps = np.asarray(steps, dtype=np.float64)
    spacing = float(np.median(np.diff(times))) if times.size > 1 else 0.0
    idx = np.searchsorted(times, steps, side='right') - 1
    at = np.maximum(idx, 0)
    return at, (idx >= 0) & (steps - times[at] < max(every, spacing))


# a step this many times longer than the rows' spacing (or update_every) is a gap in collection:
# the agent down (a restart, a reboot), not a sample missed (the job's own steps: timings.GAP_STEPS)
GAP_SPACINGS = 5


def rows_after_gaps(times, reach, every):
    """Which feature rows (one per row of ``times`` from ``reach - 1`` on, as the features are
    built) reach back over a gap in collection: their differences and lags would span it, and a
    reboot that emptied the page cache taught the model a 12 GB change in one second, with
    which a 3 GB memory stress later read as ordinary. The job's steps start their features
    again after a gap; a training leaves these rows out alike. The rows' usual spacing is that
    of the chart's collections: a chart collected every 10 s, stepped every second, repeats
    each row ten times (``rows_every``), and its next collection is no gap."""
    times = np.asarray(times, dtype=np.float64)
    n = times.size - reach + 1
    if n <= 0:
        return np.zeros(0, dtype=bool)
    steps = np.diff(times)
    moved = steps[steps > 0]
    spacing = max(float(np.median(moved)) if moved.size else 1.0, float(every))
    gaps = np.nonzero(steps > GAP_SPACINGS * spacing)[0] + 1   # the first row after each gap
    out = np.zeros(n, dtype=bool)
    for g in gaps.tolist():   # feature row j reads rows j .. j + reach - 1
        out[max(0, g - reach + 1):min(n, g)] = True
    return out


def phases_every(times, every):
    """``rows_every`` for each phase a job's steps may have against the agent's clock: steps
    ending 0, 1, .. ``every - 1`` seconds before the newest row (a chart collected every few
    seconds has fewer distinct phases). The newest phase comes first.

    Every phase is a series of what such steps read, so a model of a job stepping every 5 s
    learns from all five instead of one: five times the rows, the same spread, and a threshold
    (the 99.9th percentile of the training scores) taken from 14400 rows of a 4-hour window
    rather than 2880.
    """
    times = np.asarray(times, dtype=np.float64)
    spacing = float(np.median(np.diff(times))) if times.size > 1 else 1.0
    out, seen = [], set()
    for lag in range(0, max(1, int(every)), max(1, int(round(spacing)))):
        sel = rows_every(times, every, lag)
        key = sel.tobytes()
        if sel.size and key not in seen:
            seen.add(key)
            out.append(sel)
    return out


def fill_missing(values):
    """Forward-fill NaN down each column, then back-fill the leading gap, then zeros.

    Netdata answers null where it had no sample (a chart created mid-window, a gap in
    collection); carrying the last value keeps the gap from reading as a change. The job reads
    a chart's absent dimensions as 0 before this (``absent_as_zero``).
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
