"""The raw rows every model scores on: the last ``need`` steps of each column, with the agent
time of each row. Pure numpy, no I/O: the engine reads the agent and hands the rows here.

The rows are laid out again whenever the models change (a training, saved models loaded, a
gap in collection); ``refill`` decides which rows of before may stand in the new layout so a
new model scores on its first step and the others do not pause.
"""
import numpy as np


def refill(need, index, recent=(), before=None, tails=(), since=-np.inf):
    """``(rows, stamps)``: ``need`` rows of ``len(index)`` columns (NaN where nothing is known)
    and the agent time of each row, newest last.

    ``recent``: ``(stamp, row)`` of the latest answers, already in this layout, oldest first;
    they fill the newest rows. The rows above them come, for the columns they share, from
    ``before`` (``(rows, stamps, index)`` of the previous layout: a model loaded from disk a few
    steps ago keeps the rows it was given), then from ``tails`` (``(columns, times, raw)``: a
    newly trained model's last training rows, in its own columns). Only rows older than the
    oldest of ``recent`` are taken, and none from before ``since`` (rows of before a gap in
    collection are not the seconds just before the rows kept since).
    """
    rows = np.full((need, len(index)), np.nan)
    stamps = np.full(need, np.nan)
    recent = list(recent)[-need:] if need else []
    if recent:
        rows[need - len(recent):] = np.vstack([r for _, r in recent])
        stamps[need - len(recent):] = [t for t, _ in recent]
    room = need - len(recent)   # rows the latest answers do not fill
    if room <= 0:
        return rows, stamps
    oldest = recent[0][0] if recent else np.inf
    if before is not None:
        old_rows, old_stamps, old_index = before
        kept = (old_stamps < oldest) & (old_stamps >= since)
        old_rows, old_times = old_rows[kept][-room:], old_stamps[kept][-room:]
        shared = [c for c in index if c in old_index]
        if len(old_rows) and shared:
            at = slice(room - len(old_rows), room)
            rows[at, [index[c] for c in shared]] = old_rows[:, [old_index[c] for c in shared]]
            stamps[at] = old_times
    for columns, times, raw in tails:
        times = np.asarray(times, dtype=np.float64)
        keep = (times < oldest) & (times >= since)
        raw, times = np.asarray(raw)[keep][-room:], times[keep][-room:]
        if len(raw):
            at = slice(room - len(raw), room)
            rows[at, [index[c] for c in columns]] = raw
            stamps[at] = np.fmax(stamps[at], times)
    return rows, stamps


def push(rows, stamps, row, stamp):
    """Move ``rows`` and ``stamps`` on one step in place: ``row`` (agent time ``stamp``) becomes
    the newest; a column without a value (NaN) keeps its last row's."""
    row = np.where(np.isnan(row), rows[-1], row)
    rows[:-1] = rows[1:]
    rows[-1] = row
    stamps[:-1] = stamps[1:]
    stamps[-1] = stamp
