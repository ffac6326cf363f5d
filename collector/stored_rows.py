"""The agent's last stored rows of some charts, laid on the job's step grid.

Read when models are loaded from disk, or after a gap in collection: the features need
``rows_needed`` rows, and waiting for that many steps would leave the charts unscored for
that long. The reads are I/O (``read_stored``); laying them on the grid is pure (``on_step_grid``).
"""
import math
import threading
import time

import numpy as np

from .features import rows_at
from .netdata_api import NetdataError, split_key
from .problems import plural

# what an odd answer for one chart raises while it is parsed: only that chart's models wait
ODD_ANSWER = (NetdataError, KeyError, TypeError, ValueError, IndexError, OverflowError)


def chart_rows(api, chart, need, every):
    """A chart's last stored rows, oldest first, as ``(times, values, labels)``, or None.

    Enough of them to cover ``need`` steps of ``every`` seconds back from now: a chart
    collected less often than the job steps (``system.load`` every 5 s, ``system.clock_*``
    every 10) is asked again over a window two of its own spacings longer."""
    window = (need + 2) * every
    for _ in range(3):
        labels, rows = api.data(chart, -window, points=0)
        if not rows:
            return None
        widths = {len(r) for r in rows}
        if widths != {len(labels) + 1}:
            raise ValueError('rows of {} values for a time and {}'.format(
                ' or '.join(map(str, sorted(widths))), plural(len(labels), 'dimension')))
        times = np.array([r[0] for r in rows], dtype=np.float64)
        values = np.array([[np.nan if v is None else v for v in r[1:]] for r in rows], dtype=np.float64)
        values[np.isinf(values)] = np.nan   # an Infinity is no reading, like null
        # the agent answers a gap in collection with rows of nothing on its time grid: no rows, as
        # a gap is read (the rows before it are not the seconds before the rows since)
        valued = ~np.isnan(values).all(axis=1) if values.shape[1] else np.ones(len(times), dtype=bool)
        if not valued.any():
            return None
        times, values = times[valued], values[valued]
        spacing = float(np.median(np.diff(times))) if times.size > 1 else float(window)
        longer = (need + 2) * every + 2 * int(math.ceil(spacing))
        if spacing <= every or times[0] <= times[-1] - (need + 1) * every - spacing or longer <= window:
            break   # covered, or a longer window would not hold more of its rows
        window = longer
    return times, values, labels


def read_stored(api_factory, config, wanted, need, parallel, seconds, odd=None):
    """``({(host, chart): (times, values, labels) or None}, charts not reached)`` for ``wanted``.

    Read ``parallel`` at a time, each reader over its own connection from ``api_factory``
    (one is not shared between threads): a remote agent that takes a tenth of a second an
    answer would otherwise hold the step for a tenth of a second per chart. None for a chart
    whose answer was odd (ragged rows, strings), and in ``odd``, a dict, ``{(host, chart): why}``.
    Charts not reached within ``seconds`` (an agent slow to answer them) are left out and
    counted: the step waits for them no longer. The deadline is the machine's monotonic
    clock, not the job's: it bounds real waiting."""
    deadline = time.monotonic() + seconds
    late = []

    def read(share):
        apis, out = {}, {}
        try:
            for i, (host, chart) in enumerate(share):
                if time.monotonic() > deadline:
                    late.append(len(share) - i)
                    break
                if host not in apis:
                    apis[host] = api_factory(config, host)
                try:
                    out[(host, chart)] = chart_rows(apis[host], chart, need, config.update_every)
                except ODD_ANSWER as e:
                    out[(host, chart)] = None
                    # (404: nothing stored yet, as on an agent seconds old; not an odd answer)
                    if odd is not None and getattr(e, 'status', None) != 404:
                        odd[(host, chart)] = '{}: {}'.format(e.__class__.__name__, e)
        finally:
            for api in apis.values():
                api.close()
        return out

    def read_into(share, box):
        """A share read in its own thread; what it raises is raised again in the step's."""
        try:
            box['got'] = read(share)
        except BaseException as e:
            box['error'] = e

    shares = [wanted[k::parallel] for k in range(min(parallel, len(wanted)))]
    started, own = [], shares[:1]   # the step's own thread reads a share too
    for share in shares[1:]:
        box = {}
        thread = threading.Thread(target=read_into, args=(share, box), name='anomalies-refill', daemon=True)
        try:
            thread.start()
            started.append((thread, box))
        except RuntimeError:   # no thread to be had (pids.max, ulimit -u): this share is read in the step
            own.append(share)
    got = read([c for share in own for c in share])
    for thread, box in started:
        thread.join()
        if 'error' in box:
            raise box['error']
        got.update(box['got'])
    return got, sum(late)


def charts_of(models):
    """The ``(host, chart)`` pairs the models' columns come from, each once, in order."""
    return list(dict.fromkeys(split_key(c)[:2] for fm in models.values() for c in fm.columns))


def on_step_grid(read, models, need, every):
    """The models' last rows as the steps would have read them: ``({model_id: (step times,
    rows)}, newest time)``, a few more rows than ``need``, for the caller to cut at its own step.

    Every chart is laid on one grid of step times that ends at the newest row of any of them,
    and each step takes a chart's newest row collected by then, as in training: a chart
    collected every 5 s repeats its rows up to the steps of now, rather than ending up to 4 s
    early, which a gap's refill would take for rows of before the gap. A model with a chart
    not in ``read`` (not read, or odd) is left out: it scores once enough steps came in."""
    read = {k: v for k, v in read.items() if v is not None}
    if not read:
        return {}, None
    newest = max(float(times[-1]) for times, _, _ in read.values())
    steps = newest - every * np.arange(need + 2)[::-1]
    on_grid = {}
    for key, (times, values, labels) in read.items():
        at, current = rows_at(times, steps, every)
        current |= steps >= times[-1]   # its newest row stands until now: read before the clock moved on
        stale = np.nonzero(~current)[0]
        first = int(stale[-1]) + 1 if stale.size else 0
        on_grid[key] = (first, {name: values[at, k] for k, name in enumerate(labels)})
    tails = {}
    for model_id, fm in models.items():
        first, parts = 0, []
        for c in fm.columns:
            host, chart, dim = split_key(c)
            got = on_grid.get((host, chart))
            if got is None or dim not in got[1]:
                break
            first = max(first, got[0])
            parts.append(got[1][dim])
        else:
            if parts and first < steps.size:
                tails[model_id] = (steps[first:], np.column_stack([p[first:] for p in parts]))
    return tails, newest
