"""A training: which models to fit on which window (``TrainingRequest``), and ``run_training``,
which does it (the window read through netdata-pandas, features built, each model fitted with
its fallback, saved) and returns a ``TrainingResult``. Where it runs, a child process or a
thread, one job's at a time, is ``trainers``.
"""
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from .config import least_window_secs
from .features import (covered_seconds, feature_groups, fill_missing, phases_every, rows_after_gaps,
                       rows_with_every_chart)
from .models import MIN_TRAIN_ROWS
from .netdata_api import NO_ANSWER, split_key
from .training_window import unread_reason


# flagged more than this share of its window and a change is taken as the new normal:
# the model trains on all of it rather than flagging it forever
MAX_EXCLUDED_SHARE = 0.25
# flagged this many separate times in its window, or RECURRING_SPREAD[0] times over at least
# RECURRING_SPREAD[1] seconds (first to last), and what was flagged is something the node does
# again and again (a cron job every minute, every hour): the model trains on it rather than
# flagging it for ever. Four incidents minutes apart are not a routine: a short window retrained
# after them took them for one at three flags, and the next incident like them went unflagged
RECURRING_EVENTS = 5
RECURRING_SPREAD = (3, 3600)
# flags less than this many seconds apart are one event: an incident whose flag fell and rose
# again within it is not the node doing something again and again (a job every minute still is);
# one event lasts at most RECURRING_EVENT_SPAN seconds, so flags every few seconds for an hour
# are still many events
RECURRING_GAP = 30
RECURRING_EVENT_SPAN = 300
NO_DATA = 'the agent sent no data for this chart'
NO_VALUES = 'the agent sent no values for this chart in the training window'
# charts whose windows are read and fitted at a time. A window read costs several times its
# numbers while its JSON is parsed and joined (4 hours of 300 charts, 132 MB of numbers, took
# the training to 0.8-0.9 GiB read at once); a batch at a time keeps the peak that of one batch,
# however many charts the job models (bench/training_memory.py)
TRAIN_BATCH_CHARTS = 25
# ... and at most this many dimensions, as the chart list counts them (a chart wider than that
# alone): the window read grows with dimensions, not charts, and 25 of a large server's apps.*
# charts (150 process groups each) took a training's peak to 1.7 GiB
TRAIN_BATCH_DIMENSIONS = 200
# the most values (rows x dimensions, as listed) a chart's window is read in: a wider one's is
# read over its newest rows only. A window read costs several times its numbers (its JSON, the
# parsed numbers, the frame) and its features seven times them: 4 hours of one chart of 1000
# dimensions took a training past 5 GB, of 5000 past 12 GB (killed, and no chart got a model).
# 600 dimensions over the default 4 hours; 5000 over 29 minutes
MAX_READ_VALUES = 8640000


@dataclass
class ModelSpec:
    """One model: a chart (all of its dimensions) or a custom list of columns."""
    model_id: str
    host: str
    chart: Optional[str] = None
    columns: Optional[Tuple[str, ...]] = None


@dataclass
class TrainingRequest:
    config: object
    specs: List[ModelSpec]
    after: int
    before: int
    # model id -> [(first, last)] agent times its flag was up; those rows are left out
    exclude: Dict[str, List[Tuple[float, float]]] = field(default_factory=dict)
    # where to save the trained models (persist.resolve_dir), or None
    models_dir: Optional[str] = None
    # chart id -> seconds the agent had collected it when it listed it (NetdataApi.listed_seconds)
    listed_seconds: Dict[str, float] = field(default_factory=dict)
    # the agent's time when it listed them (NetdataApi.listed_at): a window relative to its clock
    # is fixed there, so every batch of charts reads the same rows; None: each batch's own now
    agent_now: Optional[float] = None
    # model id -> dimension names its chart lists now and its model lacks (a process group that
    # started): the rows since they first had a value are left out (``since_new``)
    new_dimensions: Dict[str, Tuple[str, ...]] = field(default_factory=dict)
    # the machine GUID of the agent the models are trained on, saved with them (None: not known)
    agent: Optional[str] = None
    # chart id -> how many dimensions the agent listed for it (NetdataApi.listed_dimensions)
    listed_dimensions: Dict[str, int] = field(default_factory=dict)
    # model id -> agent time its window starts at instead (a reboot changed its levels: the
    # rows before it are another node's)
    window_starts: Dict[str, float] = field(default_factory=dict)


def charts_by_host(specs):
    """``{host: {chart ids}}`` that the models in ``specs`` read."""
    wanted = {}
    for spec in specs:
        if spec.chart is not None:
            wanted.setdefault(spec.host, set()).add(spec.chart)
        for col in spec.columns or ():
            host, chart, _ = split_key(col)
            wanted.setdefault(host, set()).add(chart)
    return wanted


@dataclass
class TrainingResult:
    models: Dict[str, object] = field(default_factory=dict)
    # per model: (timestamps, raw rows) of the window's last rows, to start scoring at once
    tails: Dict[str, Tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    errors: Dict[str, str] = field(default_factory=dict)
    # model id -> seconds of history its chart has, where that is under train_min_n_secs
    waiting: Dict[str, int] = field(default_factory=dict)
    min_history: int = 0   # the seconds of history a chart needed (train_min_n_secs, at most the window)
    history: int = 0       # the longest span of history any chart had, in seconds
    problems: List[str] = field(default_factory=list)
    save_error: Optional[str] = None
    error: Optional[str] = None
    rows: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0


def excluded_rows(times, spans, reach):
    """Which feature rows (at ``times``) saw a flagged step: inside a span or up to ``reach``
    seconds after it (a feature row reaches back over its lags and smoothing)."""
    times = np.asarray(times, dtype=np.float64)
    out = np.zeros(times.size, dtype=bool)
    for first, last in spans:
        out |= (times >= first) & (times <= last + reach)
    return out


def recurring(spans, since):
    """``(events, routine)``: how many of the flagged ``spans`` reach into a window starting at
    ``since``, and whether they are something the node does again and again (often, or over
    hours) rather than a few incidents."""
    events = []   # [first, last] of each event: spans less than RECURRING_GAP apart joined, up to a span
    for first, last in sorted(spans):
        if events and first - events[-1][1] < RECURRING_GAP and first - events[-1][0] < RECURRING_EVENT_SPAN:
            events[-1][1] = max(events[-1][1], last)
        else:
            events.append([first, last])
    firsts = [first for first, last in events if last >= since]
    spread = max(firsts) - min(firsts) if firsts else 0.0
    routine = len(firsts) >= RECURRING_EVENTS or (
        len(firsts) >= RECURRING_SPREAD[0] and spread >= RECURRING_SPREAD[1])
    return len(firsts), routine


def since_new(values, times, columns, new):
    """The time the ``new`` dimensions first had a value (not 0, as the job reads a dimension
    before it is collected), or None. A chart retrained for a dimension that just appeared (a
    process group that an incident started) would otherwise learn the incident's first minute
    as normal, and not flag the rest of it."""
    k = [i for i, c in enumerate(columns) if split_key(c)[2] in new]
    if not k or not len(times):
        return None
    moved = np.nonzero((values[:, k] != 0).any(axis=1))[0]
    return float(times[moved[0]]) if moved.size else None


def _across_gaps_left_out(X, times, reach, every):
    """``(feature rows, their times)`` without the rows whose features reach back over a gap in
    collection (``rows_after_gaps``)."""
    across = rows_after_gaps(times, reach, every)
    if not across.any():
        return X, times[reach - 1:]
    return X[~across], times[reach - 1:][~across]


def _columns_for(spec, columns):
    if spec.columns is not None:
        return [c for c in spec.columns]
    prefix = '{}::{}|'.format(spec.host, spec.chart)
    return [c for c in columns if c.startswith(prefix)]


def _listed_young(spec, request, min_history):
    """Whether a chart's model was asked for when the agent had collected the chart for less
    than ``min_history`` (by its chart list): a chart with no values yet is then young, not
    broken. Never a custom model, whose missing dimension is more likely a typo."""
    return spec.columns is None and request.listed_seconds.get(spec.chart, min_history) < min_history


def training_batches(specs, size=None, dimensions=None, most_dimensions=None):
    """The models in groups whose charts are read together: the charts' own models in chart
    order, ``size`` charts at a time or fewer where their ``dimensions`` (chart id -> count, as
    listed; a chart not listed counts one) would pass ``most_dimensions``, then the custom
    models, all in one group (each needs all its charts at once)."""
    size, most = size or TRAIN_BATCH_CHARTS, most_dimensions or TRAIN_BATCH_DIMENSIONS
    dimensions = dimensions or {}
    custom = [s for s in specs if s.columns is not None]
    own = sorted((s for s in specs if s.columns is None), key=lambda s: (s.host, s.chart or ''))
    batches, batch, held = [], [], 0
    for spec in own:
        n = dimensions.get(spec.chart, 1)
        if batch and (len(batch) >= size or held + n > most):
            batches.append(batch)
            batch, held = [], 0
        batch.append(spec)
        held += n
    return batches + ([batch] if batch else []) + ([custom] if custom else [])


def _cut_for_width(specs, listed_dimensions, listed_seconds, span):
    """The seconds a batch's window of ``span`` seconds is read over when it is one chart too
    wide to read whole (``MAX_READ_VALUES``) and has the history to fill more, else None. (A
    chart wider than ``TRAIN_BATCH_DIMENSIONS`` is read alone.) The window comes in the agent's
    own rows (``points=0``), a second apart whatever the job's ``update_every``."""
    if len(specs) != 1 or specs[0].columns is not None:
        return None
    dims = listed_dimensions.get(specs[0].chart) or 0
    seconds = MAX_READ_VALUES // dims if dims else 0
    has = listed_seconds.get(specs[0].chart, float('inf'))
    return seconds if 0 < seconds < min(span, has) else None


def _held_from(charts, listed_seconds, newest, every):
    """The oldest second worth asking for: the agent answers the seconds of a window before a
    chart's first value with empty rows (on an agent minutes old, thousands of them per chart
    per training); a little before the oldest history the chart list gave, or no limit where
    it did not give every chart's."""
    held = [listed_seconds.get(c) for c in charts]
    if not held or any(h is None for h in held):
        return -float('inf')
    return newest - int(max(held)) - 2 * every - 60   # (the list is a little older than the read)


def run_training(request):
    """Fetch the window and fit every requested model, a batch of charts at a time; one
    model's failure stays its own."""
    from .netdata_api import NetdataError
    from .training_window import fetch_training_frame
    cfg = request.config
    started, cpu_started = time.monotonic(), time.process_time()
    result = TrainingResult()
    # a model fitted on a few minutes flags whatever the node does next that those minutes did
    # not show (a backup, a log rotation): a chart waits for train_min_n_secs of history, and
    # at least what one fit needs (its minimum of feature rows and the rows the features take
    # before the first: with train_min_n_secs 0 or a long smooth_n, less was an error, retried
    # a minute or more on), at most 90 % of the window (the agent may send a row or two fewer
    # than the window spans)
    least = least_window_secs(cfg.diffs_n, cfg.smooth_n, cfg.lags_n, cfg.update_every)
    min_history = result.min_history = min(max(cfg.train_min_n_secs, least),
                                           int(0.9 * (request.before - request.after)))
    batches = training_batches(request.specs, dimensions=request.listed_dimensions)
    fixed = None   # the window on the agent's clock as it listed its charts: every batch the same rows
    if request.agent_now and (request.after <= 0 or request.before <= 0):
        newest = int(request.agent_now) + int(request.before)
        fixed = (newest - (request.before - request.after) + 1, newest)   # what the relative window holds
    unread = []
    for specs in batches:
        host_charts = {h: sorted(c) for h, c in charts_by_host(specs).items()}
        after, before, cut = _batch_window(request, specs, host_charts, fixed)
        try:
            df, times_index, problems = fetch_training_frame(
                host_charts, after, before, protocol=cfg.protocol,
                username=cfg.username, password=cfg.password, tls_verify=cfg.tls_verify,
                timeout=max(10.0, cfg.api_timeout * 6), points=0)   # single samples: see rows_every
        except NetdataError as e:
            why = str(e)
            if NO_ANSWER in why:   # (the reasons of many charts come joined as text)
                why += ' (the training waits that long for each read: 6 x api_timeout, raise it for an agent this slow)'
            unread.append((specs, why))
            continue
        result.problems += [p for p in problems if p not in result.problems]
        _fit_batch(request, specs, df, times_index, problems, result)
        del df
        for spec in specs if cut else ():
            if spec.model_id in result.models:
                result.models[spec.model_id].info['window_cut_for_width'] = cut
    if unread and len(unread) == len(batches):   # nothing could be read at all
        if all(_listed_young(spec, request, min_history) for spec in request.specs):
            result.waiting = {spec.model_id: 0 for spec in request.specs}   # an agent seconds old
        else:
            result.error = unread[0][1]
        return result
    _young_wait(request, result, unread, min_history)
    result.seconds = time.monotonic() - started
    result.cpu_seconds = time.process_time() - cpu_started
    return result


def _batch_window(request, specs, host_charts, fixed):
    """``(after, before, cut)``: the window one batch of charts is read for. On the agent's
    clock as it listed its charts (``fixed``) when the batch is all of the job's own host, from
    where the charts' history starts, and cut to ``cut`` seconds (else None) when the batch is
    one chart too wide to read whole."""
    cfg = request.config
    after, before = request.after, request.before
    if fixed and set(host_charts) == {cfg.host}:
        after, before = fixed
        after = max(after, _held_from(host_charts[cfg.host], request.listed_seconds, before, cfg.update_every))
    cut = _cut_for_width(specs, request.listed_dimensions, request.listed_seconds, before - after)
    if cut:
        after = max(after, before - cut)
    return after, before, cut


def _young_wait(request, result, unread, min_history):
    """A young agent (seconds old), or a chart it lists before its first collection (at the
    agent's start, or a disk just plugged in): no values yet is young, not broken, and the
    model waits. A custom model's missing dimension is still an error (most likely a typo),
    and so is a window that could not be read of a chart with history."""
    young_agent = 0 < result.history < min_history
    for specs, why in unread:
        for spec in specs:
            if (young_agent and spec.columns is None) or _listed_young(spec, request, min_history):
                result.waiting[spec.model_id] = 0
            else:
                result.errors[spec.model_id] = 'its training window could not be read ({})'.format(why)
    for spec in request.specs:
        if result.errors.get(spec.model_id) in (NO_DATA, NO_VALUES) and (
                (young_agent and spec.columns is None) or _listed_young(spec, request, min_history)):
            del result.errors[spec.model_id]
            result.waiting[spec.model_id] = 0


# what a training short of memory is told to change (here, in the training process, and by trainers)
LESS_MEMORY = 'a smaller train_n_secs or train_max_n, or fewer charts (charts_regex), needs less'


def _no_memory(cols, rows):
    """Why a model was not trained when its chart alone ran the training out of memory: the
    others still train; what it takes grows with its dimensions times the window's rows."""
    return ('out of memory for its {} dimensions over {} rows (a smaller train_n_secs needs less, or leave '
            'the chart out with charts_to_exclude)'.format(len(cols), rows))


def _custom_missing(missing, columns, own_host):
    """Why a custom model's dimensions are not in the window: a chart the agent sent nothing
    of, or a dimension its chart has no values of, most likely a name mistyped or given as the
    dimension's id (the data API names dimensions by name, as the dashboard shows them). Each
    named as custom_models takes it: 'chart|dim' on the job's own host."""
    host, chart, dim = split_key(missing[0])
    has = [split_key(c)[2] for c in columns if split_key(c)[:2] == (host, chart)]
    named = ', '.join('{1}|{2}'.format(*split_key(c)) if split_key(c)[0] == own_host else c for c in missing[:3])
    if not has:
        return 'the agent sent no data for {}'.format(named)
    return ("no values of {} in the window: {}'s dimensions with values, by name (as the dashboard shows "
            "them, not their ids): {}{}".format(named, chart, ', '.join(has[:10]),
                                                 ', ...' if len(has) > 10 else ''))


def _never_together(raw, columns, own_host):
    """Why a custom model has no row to learn though some of its charts have values: the
    charts with none in the window (a plugin down all along), or none read at one time."""
    charts = {}
    for k, c in enumerate(columns):
        host, chart, _ = split_key(c)
        charts.setdefault(chart if host == own_host else '{}::{}'.format(host, chart), []).append(k)
    silent = [name for name, ks in charts.items() if np.isnan(raw[:, ks]).all()]
    if silent:
        return 'the agent sent no values for {} in the training window'.format(', '.join(silent[:3]))
    return 'its charts ({}) have no values at the same time in the training window'.format(', '.join(charts))


def _fit_batch(request, specs, df, index, problems, result):
    """Fit the models of ``specs`` on their columns of the window ``df`` (rows at ``index``):
    each one's model, error or the history it waits for goes into ``result``."""
    all_columns = list(df.columns)
    for spec in specs:
        _fit_one(request, spec, df, index, all_columns, problems, result)


def _fit_one(request, spec, df, index, all_columns, problems, result):
    """One model: its window's rows, its features, the rows left out of them, the fit, the save."""
    from .models import fit_model
    cfg = request.config
    need, train_need = cfg.rows_needed, cfg.training_rows_needed
    window = _model_window(request, spec, df, index, all_columns, problems)
    if isinstance(window, str):
        result.errors[spec.model_id] = window
        return
    cols, charts, raw, times = window
    # the samples the steps will read, at each phase the steps may have (the newest first)
    phases = phases_every(times, cfg.update_every)
    # rows with values, every phase's (a young agent pads its window with nulls)
    result.rows = max(result.rows, sum(int(p.size) for p in phases))
    # the time the rows stand for, not their count (a chart collected every 5 s has a fifth
    # of the rows), nor the span of a window the agent was down for most of
    history = int(round(covered_seconds(times))) + cfg.update_every
    result.history = max(result.history, history)
    if history < result.min_history:
        result.waiting[spec.model_id] = history
        return
    try:   # a wide chart's features are columns x (lags_n + 2) x rows: its own to run out of memory
        raw, times, X, row_times, new_at = _feature_rows(cfg, raw, times, phases, cols,
                                                         request.new_dimensions.get(spec.model_id, ()))
    except MemoryError:
        result.errors[spec.model_id] = _no_memory(cols, raw.shape[0])
        return
    kept = _rows_kept(request, spec, row_times, times, new_at, result.min_history)
    n_excluded = int((~kept.keep).sum())
    # (rows whose features would reach back over a gap in its collection have none)
    n_across = sum(max(0, int(p.size) - train_need + 1) for p in phases) - X.shape[0]
    if n_excluded:
        X = X[kept.keep]
    if X.shape[0] < MIN_TRAIN_ROWS:   # told in rows read, not in feature rows (the features take train_need - 1)
        left_out = ['{} just after gaps in its collection'.format(n_across)] if n_across > 0 else []
        left_out += ['{} flagged'.format(n_excluded)] if n_excluded else []
        result.errors[spec.model_id] = 'only {} rows of history{}, need {}'.format(
            int(raw.shape[0]), ' (left out: {})'.format(', '.join(left_out)) if left_out else '',
            MIN_TRAIN_ROWS + train_need - 1)
        return
    try:
        groups = feature_groups(charts, cfg.lags_n, cfg.level_features)
        fm = fit_model(spec.model_id, cols, X, model=cfg.model, contamination=cfg.contamination,
                       calibration=cfg.calibration, max_rows=cfg.train_max_n, groups=groups,
                       blocks=(cfg.lags_n + 1, cfg.level_features), level_squash=cfg.squash)
    except MemoryError:
        result.errors[spec.model_id] = _no_memory(cols, X.shape[0])
        return
    except Exception as e:
        result.errors[spec.model_id] = 'fit failed: {}'.format(e)
        return
    _describe_fit(fm, times, n_excluded, kept, new_at)
    result.models[spec.model_id] = fm
    # copies: views would keep the chart's whole window alive until the training ends
    result.tails[spec.model_id] = (times[-need:].copy(), raw[-need:].copy())
    if request.models_dir:
        try:
            from .persist import save
            save(request.models_dir, fm, cfg, float(times[-1]), request.agent)
        except Exception as e:  # a full disk or a read-only dir must not cost the model
            result.save_error = result.save_error or 'cannot save models in {} (models_dir): {!r}'.format(
                request.models_dir, e)


def _feature_rows(cfg, raw, times, phases, cols, new_dimensions):
    """``(values, times, X, row_times, new_at)``: the window's values with gaps filled and its
    feature rows, of every phase the steps may read (``phases``, the newest first), whose
    values and times are those returned; ``new_at``: when the newest of ``new_dimensions`` began."""
    need = cfg.training_rows_needed
    filled = fill_missing(raw)
    new_at = since_new(filled, times, cols, new_dimensions)
    blocks = [_across_gaps_left_out(cfg.training_features(filled[p]), times[p], need, cfg.update_every)
              for p in phases]
    # one phase (update_every 1) is one block: a copy of it would double the fit's largest matrix
    X = blocks[0][0] if len(blocks) == 1 else np.vstack([b[0] for b in blocks])
    row_times = np.concatenate([b[1] for b in blocks])
    return filled[phases[0]], times[phases[0]], X, row_times, new_at


def _describe_fit(fm, times, n_excluded, kept, new_at):
    """What the model's info says of its window: its span, the rows left out and why, what was kept."""
    fm.info['window'] = (float(times[0]), float(times[-1]))
    fm.info['excluded_rows'] = n_excluded
    if kept.new_rows:
        fm.info['new_dimensions_since'], fm.info['new_dimensions_rows'] = new_at, kept.new_rows
    if kept.share > MAX_EXCLUDED_SHARE:
        fm.info['flagged_share_kept'] = round(kept.share, 3)
    elif kept.routine:
        fm.info['flagged_events_kept'] = kept.events


def _model_window(request, spec, df, index, all_columns, problems):
    """``(columns, their charts, values, times)``: a model's rows of the window, those where each
    of its charts was collected and that its window starts at; or why it has none, as text."""
    cfg = request.config
    cols = _columns_for(spec, all_columns)
    missing = [c for c in cols if c not in df.columns]
    if not cols or missing:
        host, chart = (spec.host, spec.chart) if not missing else split_key(missing[0])[:2]
        why = unread_reason(problems, host, chart)
        if why:   # the agent's answer failed: say how, not that it sent nothing
            return 'its training window could not be read ({})'.format(why)
        return _custom_missing(missing, all_columns, cfg.host) if spec.columns else NO_DATA
    twice = sorted({c for c in cols if cols.count(c) > 1})
    if twice:   # the API names a dimension by its name only: two of one name cannot be told apart
        return ('two dimensions of one name, {} (the agent\'s API tells a chart\'s dimensions apart by name '
                'only)'.format(', '.join(repr(split_key(c)[2]) for c in twice)))
    raw = df[cols].to_numpy(dtype=np.float64)
    raw = np.where(np.isinf(raw), np.nan, raw)   # an Infinity is no reading, as on each step
    charts = [split_key(c)[:2] for c in cols]   # the chart of each column (a custom model's, several)
    valid = rows_with_every_chart(raw, charts)
    if spec.model_id in request.window_starts:
        valid &= np.asarray(index, dtype=np.float64) >= request.window_starts[spec.model_id]
    if spec.columns and not valid.any() and not np.isnan(raw).all():
        return _never_together(raw, cols, cfg.host)
    if not valid.any():
        return NO_VALUES
    return cols, charts, raw[valid], index[valid]


@dataclass
class _Kept:
    """The feature rows a training keeps, and why the others were left out or kept."""
    keep: np.ndarray
    share: float = 0.0     # the share of the rows flagged before
    events: int = 0        # the flagged events in the window
    routine: bool = False  # flagged again and again: a routine, trained on
    new_rows: int = 0      # rows left out as a new dimension's first


def _rows_kept(request, spec, row_times, times, new_at, min_history):
    """Which feature rows a model trains on: not those flagged before (unless they are over a quarter
    of the window or a routine), nor those since a dimension appeared late in the window."""
    cfg = request.config
    kept = _Kept(keep=np.ones(row_times.shape[0], dtype=bool))
    spans = request.exclude.get(spec.model_id)
    if spans and row_times.shape[0]:
        drop = excluded_rows(row_times, spans, (cfg.training_rows_needed - 1) * cfg.update_every)
        kept.share = float(drop.mean())
        kept.events, kept.routine = recurring(spans, times[0])
        if kept.share <= MAX_EXCLUDED_SHARE and not kept.routine:
            kept.keep &= ~drop
    if new_at is not None and new_at - float(times[0]) >= min_history:
        # only a dimension that appeared late in the window, on a chart that had been there
        # a while (a young agent's apps.plugin finds its process groups one by one): one
        # there for most of the window is the chart's normal by now
        fresh = (row_times >= new_at) & kept.keep
        if fresh.sum() <= MAX_EXCLUDED_SHARE * row_times.shape[0]:
            kept.keep &= ~fresh
            kept.new_rows = int(fresh.sum())
    return kept
