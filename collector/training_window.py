"""A training window read from the agent: ``fetch_training_frame`` gives one float frame of
'host::chart|dim' columns for ``{host: [charts]}``, each chart's rows between its collections
carried as the agent means them.

Through netdata-pandas' ``get_data``, only in the training process: what it prints is kept off
stdout (the plugin's protocol channel), it is given our TLS settings, and two jobs' reads take
turns patching it. Where it fails, drops charts it did not read in time, or does not import
(Python 3.13), the charts are read one by one with our own client (``netdata_api``).
"""
import contextlib
import functools
import threading
import time
import warnings

import numpy as np

from .features import carried_within
from .netdata_api import PARALLEL_READS, NetdataApi, NetdataError, is_time, ssl_context, split_key
from .problems import first_few

# a chart's training window must come whole within this many of its reads' timeouts (30 s at most):
# a wide chart's window is tens of MB, which a parent across a slow link sends over minutes
WINDOW_TIMEOUTS = 10
# charts netdata-pandas left out that take this long more to read one by one are named: the
# first models of every chart of the training waited for them
SLOW_READ_S = 5.0


# netdata-pandas is patched for each read (its ``print`` and ``asks.get`` are module globals):
# two jobs of one python.d.plugin (threads) reading at once take turns, or one's restore
# undid the other's patch and sent its error lines to stdout, the plugin's protocol channel
_NDP_PATCHED = threading.Lock()


@contextlib.contextmanager
def _asks_tls(tls_verify):
    """netdata-pandas calls ``asks.get`` without TLS options; give it ours for this call."""
    ctx = ssl_context(tls_verify)
    if ctx is None:
        yield
        return
    import netdata_pandas.data as ndp
    original = ndp.asks.get

    async def get_with_context(url, **kwargs):
        kwargs.setdefault('ssl_context', ctx)
        return await original(url, **kwargs)

    ndp.asks.get = get_with_context
    try:
        yield
    finally:
        ndp.asks.get = original


@contextlib.contextmanager
def _captured_prints(lines):
    """netdata-pandas prints its errors; send them to ``lines`` instead of stdout.

    Only that module's ``print`` is replaced (a module global shadows the builtin), so the
    plugin's own output from other threads is untouched.
    """
    import netdata_pandas.data as ndp

    def capture(*args, **kwargs):
        lines.append(' '.join(str(a) for a in args))
    ndp.print = capture
    try:
        yield
    finally:
        del ndp.print


def fetch_training_frame(host_charts, after, before, protocol='http', username=None, password=None,
                         tls_verify=True, timeout=60.0, points=0):
    """Training window for ``{host: [charts]}`` via netdata-pandas ``get_data``.

    Returns ``(frame, times, problems)``: the frame has 'host::chart|dim' columns, ``times``
    the unix second of each row, and ``problems`` the charts netdata-pandas could not read.
    Each host is asked on its own (netdata-pandas keeps the time index only for one host)
    and the hosts' rows are joined on time.
    """
    import pandas as pd
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # trio/anyio deprecation noise at import
            from netdata_pandas.data import get_data
    except Exception as e:  # Python 3.13+: the trio that netdata-pandas needs does not import
        return _fetch_directly(host_charts, after, before, protocol, username, password, tls_verify, timeout,
                               points, 'netdata-pandas unavailable ({}: {}), read the window directly'.format(
                                   e.__class__.__name__, e))
    printed = []
    kwargs = dict(after=int(after), before=int(before), points=int(points), user=username, pwd=password,
                  protocol=protocol, timeout=timeout, ffill=False, sort_cols=True,
                  numeric_only=False)   # its numeric_only drops a dimension for one odd value, without a word
    direct = functools.partial(_fetch_directly, after=after, before=before, protocol=protocol, username=username,
                               password=password, tls_verify=tls_verify, points=points)
    frames = []
    for host, charts in host_charts.items():
        frames.extend(_read_host(get_data, host, charts, kwargs, tls_verify, direct, printed))
    if not frames:
        raise NetdataError('no chart data could be read for training{}'.format(_problems_suffix(printed)))
    df = frames[0] if len(frames) == 1 else pd.concat(frames, axis=1, join='outer').sort_index()
    df = carried_forward(df)
    return df, np.asarray(df.index, dtype=np.float64), [line.strip() for line in printed if line.strip()]


def _read_host(get_data, host, charts, kwargs, tls_verify, direct, printed):
    """One host's frames for ``fetch_training_frame``: netdata-pandas' read, and what it failed on
    or dropped read again chart by chart (``direct``, ``_fetch_directly`` with the window and the
    agent's access bound); what could not be read is said in ``printed``."""
    before_host = len(printed)
    timeout = kwargs['timeout']
    try:
        with _NDP_PATCHED, _captured_prints(printed), _asks_tls(tls_verify), warnings.catch_warnings():
            warnings.simplefilter('ignore')
            df = get_data(hosts=[host], charts=list(charts), **kwargs)
    except ValueError:  # pandas: nothing to concatenate, i.e. no chart of this host answered
        df = None
    except Exception as e:  # one odd answer (a time twice) or an agent down costs only that host's charts:
        # they are read one by one, and what still fails is named (better than netdata-pandas' lines)
        del printed[before_host:]
        why = 'netdata-pandas failed on {} ({}: {}), read chart by chart'.format(host, e.__class__.__name__, e)
        try:
            df, _, problems = direct({host: charts}, timeout=timeout, why=why, say_why=True)
        except NetdataError as failed:
            printed.append('request to {} failed: {}: {}; {}'.format(host, e.__class__.__name__, e, failed))
            return []
        printed.extend(problems)
        return [df]
    frames = []
    # netdata-pandas drops, without a word, every chart not read within one time limit for
    # all of them (a slow agent, hundreds of charts of four hours): those are read one by one
    got = set() if df is None else {c.split('|', 1)[0] for c in df.columns}
    dropped = [c for c in charts if c not in got]
    if dropped:
        # what netdata-pandas printed of these charts is said again, better, by the direct read
        asked = tuple('chart={}&'.format(c) for c in dropped)
        printed[before_host:] = [line for line in printed[before_host:] if not any(a in line for a in asked)]
        why = 'netdata-pandas read {} of the {} charts asked of {}, read the other {} one by one'.format(
            len(charts) - len(dropped), len(charts), host, len(dropped))
        began = time.monotonic()
        frame, _, problems = direct({host: dropped}, timeout=max(float(timeout), 30.0), why=why, must_read=False,
                                    others_read=df is not None, say_why=df is None)
        took = time.monotonic() - began
        if took >= SLOW_READ_S and not any(why in line for line in problems):
            problems.append('{} ({}), which took {:.0f} s more: every model of this training waited for {}'.format(
                why, first_few(dropped), took, 'it' if len(dropped) == 1 else 'them'))
        printed.extend(problems)
        if frame is not None:
            frames.append(frame)
    if df is not None:
        frames.append(_host_frame(df, host, printed))
    return frames


def _host_frame(df, host, printed):
    """One host's frame as netdata-pandas read it, made ready to join the others': numbers
    only, no dimension without a value, no row without a time, columns named 'host::chart|dim'.
    What was left out is said in ``printed``."""
    import pandas as pd
    df, notes = numbers_only(df)
    printed.extend('training data from {}: {}'.format(host, note) for note in notes)
    df = without_empty_dimensions(df)
    times = pd.to_numeric(pd.Series(df.index), errors='coerce').to_numpy(dtype=np.float64)
    timed = np.isfinite(times)
    if not timed.all():   # sorted last and carried into every chart's rows, it would stop training
        n = int((~timed).sum())
        printed.append('{} row{} of {} without a time left out'.format(n, '' if n == 1 else 's', host))
        df = df[timed]
    df.columns = ['{}::{}'.format(host, c) for c in df.columns]
    return df


def without_empty_dimensions(df):
    """``df`` without the dimensions that have no value in the whole window, on either way of
    reading it, as netdata-pandas' own numeric filter (not used: it drops a dimension for one
    odd value) left them out: a dimension that comes back is then modelled as a new one."""
    valued = df.notna().any(axis=0).to_numpy()
    return df if valued.all() else df.loc[:, valued]


def numbers_only(df):
    """``(df, notes)``: every column as float64, a value that is not a number (a string, a
    list, an integer too large for a float) read as the value before it in its column.

    One odd value in a 4-hour window must cost neither the dimension (netdata-pandas' own
    filter drops the column) nor the chart (a float frame refuses it); a null stays a null
    (``carried_forward`` reads it as the agent means it). ``notes`` name each column that
    held one. Columns are taken by position: two of one name are the caller's to refuse.
    """
    import numbers
    import pandas as pd
    notes, columns = [], []
    if not (df.dtypes == object).any():   # the usual window: no copy of it beside it
        return df.astype(np.float64), notes
    for k, name in enumerate(df.columns):
        raw = df.iloc[:, k].to_numpy()
        if raw.dtype != object:
            columns.append(raw.astype(np.float64))
            continue
        values, odd = np.full(len(raw), np.nan), np.zeros(len(raw), dtype=bool)
        for i, v in enumerate(raw):
            if v is None:
                continue
            try:
                if isinstance(v, bool) or not isinstance(v, numbers.Real):
                    raise TypeError(v)
                values[i] = float(v)
            except (TypeError, ValueError, OverflowError):
                odd[i] = True
        if odd.any():
            values = np.where(odd, pd.Series(values).ffill().to_numpy(), values)
            examples = ', '.join(repr(v)[:40] for v in raw[odd][:2])
            notes.append('{} value{} of {} not a number ({}), read as the value before'.format(
                int(odd.sum()), '' if odd.sum() == 1 else 's', name, examples))
        columns.append(values)
    if not columns:
        return df.astype(np.float64), notes
    return pd.DataFrame(np.column_stack(columns), index=df.index, columns=df.columns), notes


def carried_forward(df):
    """The training frame with each chart's absent dimensions read as 0 and its rows without
    a value carried from its last reading while that is current (``carried_within``): the rows
    of a chart collected every 5 s, joined on one-second time with the others, repeat its last
    value, as the agent's current values do between its collections; a gap stays null."""
    import pandas as pd
    cols = list(df.columns)
    if not cols:
        return df
    charts = {}
    for k, c in enumerate(cols):
        charts.setdefault(split_key(c)[:2], []).append(k)
    index = np.array([k for ks in charts.values() for k in ks], dtype=np.intp)
    offsets = np.cumsum([0] + [len(ks) for ks in charts.values()])[:-1].astype(np.intp)
    times = pd.to_numeric(pd.Series(df.index), errors='coerce').to_numpy(dtype=np.float64)
    values = carried_within(df.to_numpy(dtype=np.float64), times, index, offsets)
    return pd.DataFrame(values, index=df.index, columns=cols)


# a chart's window read answered HTTP 404: the agent has nothing stored for it (not a failed read)
_NOTHING_STORED = object()


def _fetch_directly(host_charts, after, before, protocol, username, password, tls_verify, timeout, points, why,
                    must_read=True, others_read=False, say_why=False):
    """The same window as ``get_data`` gives, read chart by chart (a few at a time) with our own client.

    With nothing read, raises ``NetdataError``, or with ``must_read=False`` returns ``(None, None, problems)``.
    ``others_read``: the host's other charts were read (these are the ones netdata-pandas left out).
    ``why`` is among the problems when something failed, or with ``say_why`` (netdata-pandas
    itself failed: worth a line even when every chart is then read).
    """
    from concurrent.futures import ThreadPoolExecutor
    import pandas as pd

    def one(task):
        host, chart = task
        api = NetdataApi(host, protocol, username, password, tls_verify, timeout=min(float(timeout), 30.0))
        try:
            return _chart_frame(api, host, chart, after, before, points)
        finally:
            api.close()

    tasks = [(h, c) for h, charts in host_charts.items() for c in charts]
    with ThreadPoolExecutor(max_workers=PARALLEL_READS) as pool:
        results = list(pool.map(one, tasks))
    frames = [f for f, _ in results if f is not None]
    failed = [p for _, p in results if p and p is not _NOTHING_STORED]
    not_stored = [t for t, (_, p) in zip(tasks, results) if p is _NOTHING_STORED]
    # why the charts were read one by one is said with what failed; with every chart read, or
    # some with nothing stored yet (an agent seconds old: they wait), nothing went wrong
    problems = [why] + failed if failed or say_why or not (frames or others_read) else []
    if not frames and not_stored and not others_read:   # every chart: a wrong address or proxy, not a young agent
        named = ', '.join('{}::{}'.format(h, c) for h, c in not_stored[:5])
        problems.append('{} of the {} charts asked answered HTTP 404 (nothing stored for them: {}{})'.format(
            len(not_stored), len(tasks), named, ', ...' if len(not_stored) > 5 else ''))
    if not frames and not must_read:
        return None, None, problems
    if not frames:
        raise NetdataError('no chart data could be read for training{}'.format(_problems_suffix(problems)))
    df = carried_forward(without_empty_dimensions(pd.concat(frames, axis=1, join='outer').sort_index()))
    df = df[sorted(df.columns)]
    return df, np.asarray(df.index, dtype=np.float64), problems


def _chart_frame(api, host, chart, after, before, points):
    """``(frame, problem)``: one chart's window read by ``api``, its columns 'host::chart|dim';
    ``problem`` says what was left out or why nothing was read (None: all of it read), and is
    ``_NOTHING_STORED`` for a chart the agent lists with nothing stored yet."""
    import pandas as pd
    try:
        labels, rows = api.data(chart, after, before, points, whole=WINDOW_TIMEOUTS * api.timeout)
        timed = [r for r in rows if is_time(r[0])]
        notes = []
        if len(timed) < len(rows):   # a row without a time cannot be joined with the other charts
            n = len(rows) - len(timed)
            notes.append('{} row{} without a time left out'.format(n, '' if n == 1 else 's'))
        values = [[np.nan if v is None else v for v in r[1:]] for r in timed]
        cols = ['{}::{}|{}'.format(host, chart, d) for d in labels]
        index = [float(r[0]) for r in timed]
        try:
            df = pd.DataFrame(values, index=index, columns=cols, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):   # a value that is not a number: found and named
            df, odd = numbers_only(pd.DataFrame(values, index=index, columns=cols, dtype=object))
            notes += [note.replace('{}::'.format(host), '', 1) for note in odd]
        twice = df.index.duplicated(keep='last')
        if twice.any():   # one time given twice cannot be joined with the other charts: the last stands
            n = int(twice.sum())
            notes.append('{} time{} given twice, the last row kept'.format(n, '' if n == 1 else 's'))
            df = df[~twice]
        if notes:
            return df, 'error found on data from: {}/api/v1/data?chart={} ({})'.format(
                api.base_url, chart, '; '.join(notes))
        return df, None
    except (NetdataError, KeyError, TypeError, IndexError, ValueError, OverflowError) as e:
        if getattr(e, 'status', None) == 404:   # a chart it lists with nothing stored yet (an agent seconds old)
            return None, _NOTHING_STORED
        why = e.reason if isinstance(e, NetdataError) else 'unreadable rows: {}: {}'.format(e.__class__.__name__, e)
        return None, 'error found on data from: {}/api/v1/data?chart={} ({})'.format(api.base_url, chart, why)


def unread_reason(problems, host, chart):
    """Why a chart's training window could not be read, from ``problems`` (None if unsaid)."""
    marker = '://{}/api/v1/data?chart={} ('.format(host, chart)
    for line in problems:
        at = line.find(marker)
        if at >= 0 and line.endswith(')'):
            return line[at + len(marker):-1]
    return None


def _problems_suffix(printed):
    lines = [line.strip() for line in printed if line.strip()]
    return '; ' + '; '.join(lines[:3]) if lines else ''
