"""Serve a recorded Netdata API on loopback, at a clock that runs, races or is stepped.

A recording (see the recordings README) holds the agent's raw answers for a window. The
server answers ``/api/v1/info``, ``/api/v1/charts``, ``/api/v1/data`` and
``/api/v1/allmetrics?format=json`` as the agent would if its "now" were the replay clock:
data after "now" does not exist yet. ``POST /replay/step?seconds=N`` (or
``ReplayClock.advance``) moves a stepped clock.
"""
import gzip
import json
import math
import os
import socket
import sys
import threading
import time
from bisect import bisect_right
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import numpy as np

from .netdata_api import MAX_ROWS


class ReplayClock:
    """The replayed agent's "now": real time times ``speed`` from ``start``, or stepped."""

    def __init__(self, start, speed=1.0, stepped=False, wall=time.monotonic):
        self.start = float(start)
        self.speed = float(speed)
        self.stepped = stepped
        self.wall = wall
        self._t0 = wall()
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self):
        with self._lock:
            if self.stepped:
                return self.start + self._offset
            return self.start + (self.wall() - self._t0) * self.speed

    def advance(self, seconds):
        with self._lock:
            self._offset += float(seconds)

    def run_from(self, t):
        """Real time from ``t`` on, for a clock that stood still (stepped) until now: a test
        holds the agent's clock while a job's first training runs, however long it takes."""
        with self._lock:
            self.start, self._t0, self._offset, self.stepped = float(t), self.wall(), 0.0, False

    def set(self, t):
        with self._lock:
            if self.stepped:
                self._offset = float(t) - self.start
            else:
                self.start, self._t0 = float(t), self.wall()


class RecordingError(ValueError):
    """A recording folder whose own files (not a chart's data) cannot be used; names the file."""


def _read_json(folder, name, default=None):
    f = os.path.join(folder, name)
    if default is not None and not os.path.exists(f):
        return default
    try:
        with open(f) as fh:
            return json.load(fh)
    except (OSError, ValueError) as e:
        raise RecordingError('{}: {}'.format(f, e))


def check_labels(labels, f):
    """A labels.json body's incidents, checked; raises RecordingError naming the file."""
    incidents = labels.get('incidents') if isinstance(labels, dict) else None
    if not isinstance(incidents, list):
        raise RecordingError('{}: needs an "incidents" list'.format(f))
    for i, inc in enumerate(incidents):
        ok = isinstance(inc, dict) and all(isinstance(inc.get(k), (int, float)) and not isinstance(inc.get(k), bool)
                                           and math.isfinite(inc[k]) for k in ('start', 'end'))
        charts = inc.get('expected_charts') if ok else None
        kind = inc.get('kind') if ok else None
        # an incident with no chart to find it on would be scored as missed, without a word
        if (not ok or inc['end'] < inc['start'] or not isinstance(charts, list) or not charts
                or not all(isinstance(c, str) and c for c in charts) or not isinstance(kind, str) or not kind):
            raise RecordingError('{}: incident {} needs finite numeric "start" <= "end", a "kind" string and an '
                                 '"expected_charts" list of chart ids (at least one): {}'.format(
                                     f, i + 1, json.dumps(inc)[:200]))


def seconds_hint(t):
    """Said after a time that is most likely in milliseconds (labels and windows are unix seconds)."""
    from .config import MILLISECONDS_FROM
    return ' (in milliseconds? times are unix seconds)' if t >= MILLISECONDS_FROM else ''


def chart_file(folder, chart):
    """The data file of ``chart`` in the recording ``folder``, or None for an id that is no file
    name (a '/' in it, from an agent that sends such, or in a request to the replay, would name a
    file outside the folder)."""
    chart = str(chart)
    if not chart or '/' in chart or os.sep in chart or '\0' in chart:
        return None
    return os.path.join(folder, 'data', chart + '.json.gz')


class Recording:
    """A recording folder, with each chart's rows loaded on first use (oldest first).

    A chart whose data file cannot be read (truncated, not JSON, rows of the wrong shape) is
    served as not recorded, so one bad file costs that chart alone; the reason is written to
    ``log`` once and kept in ``unreadable``.
    """

    def __init__(self, path, log=None, labels_needed=True):
        self.path = path
        self.log = log if log is not None else sys.stderr
        self.unreadable = {}
        self.meta = _read_json(path, 'recording.json')
        self.charts_body = _read_json(path, 'charts.json')
        self.info_body = _read_json(path, 'info.json', {'version': 'replay'})
        try:
            self.labels = _read_json(path, 'labels.json', {'incidents': []})
            check_labels(self.labels, os.path.join(path, 'labels.json'))
        except RecordingError as e:
            if labels_needed:
                raise
            # (a replay serves the agent's answers: a typo in the labels is evaluate's to refuse)
            self.log.write('replay: {}; served without its labels\n'.format(e))
            self.labels = {'incidents': []}
        try:
            if any(isinstance(self.meta[k], bool) for k in ('start', 'end')):   # int(true) is 1: 1970
                raise TypeError('true or false is no time')
            self.start, self.end = int(self.meta['start']), int(self.meta['end'])
        except (KeyError, TypeError, ValueError) as e:
            raise RecordingError('{}: needs "start" and "end" in unix seconds ({}: {})'.format(
                os.path.join(path, 'recording.json'), type(e).__name__, e))
        if self.end <= self.start:
            raise RecordingError('{}: "end" ({}) must come after "start" ({})'.format(
                os.path.join(path, 'recording.json'), self.end, self.start))
        self.charts = self.charts_body.get('charts') if isinstance(self.charts_body, dict) else None
        if not isinstance(self.charts, dict):
            raise RecordingError('{}: needs a "charts" object, as /api/v1/charts sends'.format(
                os.path.join(path, 'charts.json')))
        self.charts = self._usable_charts(os.path.join(path, 'charts.json'))
        self._data = {}
        self._lock = threading.Lock()
        self.trim = 0   # seconds left out at the start (``cut``)

    def _usable_charts(self, f):
        """The listed charts an agent could have sent: each an object, its dimensions an object
        (a damaged entry is left out, named once, and costs that chart alone)."""
        usable = {}
        for cid, c in self.charts.items():
            if not isinstance(c, dict) or not isinstance(c.get('dimensions', {}), dict):
                self.log.write('replay: {}: chart {} is not an object with a "dimensions" object; left out\n'.format(
                    f, cid))
                continue
            usable[cid] = c
        self.log.flush()
        return usable

    def cut(self, seconds):
        """Leave out the first ``seconds``, as if the recording had begun that much later: the
        agent then holds no history before (a recording of an agent started with it reads as one
        of an agent started earlier, whose start-up is out of sight). Before anything is served."""
        seconds = int(seconds)
        if not 0 < seconds < self.end - self.start:
            raise RecordingError('{}: a trim of {} s leaves nothing of its {} s'.format(
                self.path, seconds, self.end - self.start))
        self.start += seconds
        self.trim = seconds
        for cid, c in self.charts.items():   # the chart list dates each chart's history as the agent would
            first = c.get('first_entry')
            if isinstance(first, (int, float)) and first < self.start:
                self.charts[cid] = dict(c, first_entry=self.start)
        self.charts_body = dict(self.charts_body, charts=self.charts)

    def chart_rows(self, chart):
        """``(labels, times ascending, values array)`` for a chart, or None if not recorded."""
        with self._lock:
            if chart not in self._data:
                self._data[chart] = self._load(chart)
            return self._data[chart]

    def _load(self, chart):
        f = chart_file(self.path, chart)
        if f is None or not os.path.exists(f):
            return None
        try:
            labels, times, values = read_chart_file(f)
        except Exception as e:   # any damage (zlib, JSON, shapes, numbers out of range) is this chart's alone
            self.unreadable[chart] = '{}: {}'.format(type(e).__name__, e)
            self.log.write('replay: cannot read {}: {}; the chart is served as not recorded\n'.format(
                f, self.unreadable[chart]))
            self.log.flush()
            return None
        if not self.trim:
            return labels, times, values
        kept = times >= self.start
        return labels, times[kept], values[kept]


def read_chart_file(f):
    """``(labels, times ascending, values)`` from one recorded ``/api/v1/data`` body; raises if malformed."""
    with gzip.open(f, 'rt') as fh:
        body = json.load(fh)
    labels = body.get('labels') if isinstance(body, dict) else None
    rows = body.get('data', []) if isinstance(body, dict) else None
    if (not isinstance(labels, list) or not labels or labels[0] != 'time'
            or not all(isinstance(name, str) for name in labels) or not isinstance(rows, list)):
        # served as it is, it would fail every request for the chart, not just be absent
        raise ValueError('not a /api/v1/data body: needs "labels" (names, "time" first) and a "data" list')
    rows = sorted(rows, key=lambda r: r[0])
    labels = labels[1:]
    odd = next((r for r in rows if len(r) != len(labels) + 1), None)
    if odd is not None:
        raise ValueError('{} labels but a row of {} values'.format(len(labels), len(odd) - 1))
    times = np.array([r[0] for r in rows], dtype=np.int64)
    # (rows by labels, also with no rows, or no dimensions: a chart the agent lists with none)
    values = np.array([[math.nan if v is None else v for v in r[1:]] for r in rows],
                      dtype=np.float64).reshape(len(rows), len(labels))
    if np.isinf(values).any():   # (a number past 1e308) which no JSON client would read back
        raise ValueError('an infinite value, which the agent never sends')
    return labels, times, values


TIME_MAX = 2 ** 40   # beyond any unix second, and within what a window's row arithmetic holds


def _int(qs, key, default):
    """A query's number as the agent reads one: what is no number is the default, and one out of
    any range (``after=1e400``) is held at the range's end, answered, not a failed request."""
    try:
        value = float(qs.get(key, [default])[0])
    except (TypeError, ValueError):
        return default
    return default if math.isnan(value) else int(max(-TIME_MAX, min(TIME_MAX, value)))


RELATIVE_MAX = 3 * 365 * 86400   # after/before this close to 0 are relative, as the agent reads them
DEFAULT_AFTER = -600


def resolve_window(after, before, now):
    """Netdata's after/before as the agent reads them: a value within 3 years of 0 is relative
    (its sign ignored), ``before`` to now and ``after`` to ``before`` (``after=0``: the last 600 s);
    a window given backwards is swapped, and one reaching past now shifted back to end now."""
    if abs(before) <= RELATIVE_MAX:
        before = now - abs(before)
    if abs(after) <= RELATIVE_MAX:
        after = before - (abs(after) or -DEFAULT_AFTER) + 1
    if after > before:
        after, before = before, after
    if before > now:
        after, before = after - (before - now), now
    return after, before


def data_body(recording, chart, after, before, now, points=0, group='average', dims=None, options=''):
    """The body of ``/api/v1/data`` for one chart, newest row first as the agent sends it.

    Asked for no ``dimensions``, the agent leaves out the hidden ones (system.cpu's idle): those
    its chart listing does not show.
    """
    loaded = recording.chart_rows(chart)
    if loaded is None:
        return None
    labels, times, values = loaded
    listed = (recording.charts or {}).get(chart)
    listed = listed.get('dimensions') if isinstance(listed, dict) else None
    if dims is None and isinstance(listed, dict) and listed:
        shown = {d.get('name', k) if isinstance(d, dict) else k for k, d in listed.items()}
        keep = [i for i, l in enumerate(labels) if l in shown]
        labels, values = [labels[i] for i in keep], values[:, keep]
    after, before = resolve_window(after, before, now)
    entry = (recording.charts or {}).get(chart)
    every = entry.get('update_every') if isinstance(entry, dict) else None
    every = every if isinstance(every, int) and not isinstance(every, bool) and every > 0 else 1
    first = after if every == 1 else after + 1   # the agent's first row: a 5 s chart's after after
    mask = (times >= first) & (times <= before)
    t, v = times[mask], values[mask]
    # the seconds of a window before a chart's first value: empty rows on its grid
    lead = int((t[0] - first) // every) if t.size and times[0] == t[0] and first < t[0] else 0
    if dims and dims != '*':
        # ids or names, each a simple pattern, ',' or '|' between them
        match = simple_pattern(dims, separators=',|')
        ids = {}
        if isinstance(listed, dict):
            ids = {(d.get('name', k) if isinstance(d, dict) else k): k for k, d in listed.items()}
        keep = [i for i, l in enumerate(labels) if match(l) or match(ids.get(l, l))]
        if not keep:
            return NO_MATCH
        labels, v = [labels[i] for i in keep], v[:, keep]
    opts = set(o for o in options.replace('|', ',').split(',') if o)
    wanted = points if points and points > 0 else MAX_ROWS   # the agent answers at most MAX_ROWS rows
    if lead + len(t) > wanted:
        t, v = _grouped(t, v, lead, every, -(-(lead + len(t)) // wanted), group)
    elif lead:
        t = np.concatenate([t[0] - every * np.arange(lead, 0, -1), t])
        v = np.vstack([np.full((lead, v.shape[1]), np.nan), v])
    if 'abs' in opts or 'absolute' in opts:
        v = np.abs(v)
    if 'flip' in opts:
        order = range(len(t))
    else:
        order = range(len(t) - 1, -1, -1)
    data = [[int(t[i])] + [None if math.isnan(x) else _num(x) for x in v[i]] for i in order]
    return {'labels': ['time'] + labels, 'data': data}


NO_MATCH = 'no-match'   # data_body's answer when no dimension matched: the agent's 404


def _grouped(t, v, lead, every, size, group):
    """Rows of ``size`` steps from the newest back, each at its newest step's time, over ``lead``
    empty steps before ``t`` (``every`` seconds apart) and the rows ``t``, ``v``: the empty steps
    are never laid out, so a window of years costs what its rows do."""
    n = lead + len(t)
    ends = np.arange(n - 1, -1, -size)[::-1]   # virtual index of each group's newest step
    times = np.where(ends < lead, t[0] - every * (lead - ends), t[np.clip(ends - lead, 0, None)]) if len(t) else \
        np.zeros(0)
    out = np.full((ends.size, v.shape[1]), np.nan)
    agg = np.nanmax if group == 'max' else (np.nanmin if group == 'min' else np.nanmean)
    for k in np.nonzero(ends >= lead)[0]:   # only groups holding a recorded row can hold a value
        rows = v[max(ends[k] - size + 1 - lead, 0):ends[k] - lead + 1]
        if not np.isnan(rows).all():
            with np.errstate(all='ignore'):
                out[k] = agg(rows, axis=0)
    return times.astype(np.int64), out


def _num(x):
    return int(x) if float(x).is_integer() else float(x)


def simple_pattern(text, separators=None):
    """Netdata's simple pattern: globs split on ``separators`` (white space by default) where
    only ``*`` is a wildcard, ``!`` negates, the first match decides."""
    import re
    parts = text.split() if separators is None else re.split('[{}]'.format(re.escape(separators)), text)
    rules = []
    for p in (p.strip() for p in parts):
        positive = not p.startswith('!')
        p = p if positive else p[1:]
        if p:
            rules.append((re.compile('.*'.join(re.escape(piece) for piece in p.split('*')) + r'\Z', re.S), positive))

    def match(name):
        for rx, positive in rules:
            if rx.match(name):
                return positive
        return False
    return match


# a chart the agent stopped listing during the recording (made obsolete: a container stopped,
# an interface removed; ``record`` names them in recording.json's "charts_left" with their last
# value's time, and records their data all the same) is not listed from this many of its
# update_every (at least LISTED_AFTER_LAST_S seconds) after that time on
LISTED_AFTER_LAST_N = 3
LISTED_AFTER_LAST_S = 10


def charts_body_at(recording, now):
    """``/api/v1/charts`` as the agent answered at ``now``: a chart it created later (first
    collected after ``now``: TCP charts that appear with the first connection) is not listed yet,
    nor one it had stopped listing by then, and a listed chart's last entry is no later than
    ``now``, so the seconds it has been collected grow with the clock as they do on the agent."""
    charts = {}
    left = recording.meta.get('charts_left') if isinstance(recording.meta, dict) else None
    left = left if isinstance(left, dict) else {}
    for cid, c in recording.charts.items():
        first = c.get('first_entry') if isinstance(c, dict) else None
        last = c.get('last_entry') if isinstance(c, dict) else None
        if isinstance(first, (int, float)) and first > now:
            continue
        gone_at = left.get(cid)
        if isinstance(gone_at, (int, float)) and not isinstance(gone_at, bool):
            every = c.get('update_every') if isinstance(c, dict) else None
            every = every if isinstance(every, (int, float)) and every > 0 else 1
            if now > gone_at + max(LISTED_AFTER_LAST_S, LISTED_AFTER_LAST_N * every):
                continue
        if isinstance(last, (int, float)) and last > now:
            c = dict(c, last_entry=int(now))
        charts[cid] = c
    return dict(recording.charts_body, charts=charts)


# how many rows back ``allmetrics`` looks past rows with no value at all for a chart's last
# collected one (a minute of one-second rows)
LAST_COLLECTED_ROWS = 60


def allmetrics_body(recording, now, pattern=None):
    """``/api/v1/allmetrics?format=json``: each chart's latest row at or before ``now`` that has a
    value. A recording taken up to the agent's newest second ends, for a chart collected every
    5 s, with a row the agent had not collected yet (all null); the agent's own answer is the
    last value it collected. A chart the agent created later is not in it yet, as it is not
    in the chart list (``charts_body_at``)."""
    out = {}
    match = simple_pattern(pattern) if pattern else None
    for cid, c in recording.charts.items():
        if match is not None and not match(cid):
            continue
        first = c.get('first_entry') if isinstance(c, dict) else None
        if isinstance(first, (int, float)) and first > now:
            continue
        loaded = recording.chart_rows(cid)
        if loaded is None:
            continue
        labels, times, values = loaded
        i = last = bisect_right(times, int(now)) - 1
        while i >= 0 and last - i < LAST_COLLECTED_ROWS and np.isnan(values[i]).all():
            i -= 1
        if i < 0 or np.isnan(values[i]).all():
            i = last
        if i < 0:
            continue
        by_name = {d.get('name', k): k for k, d in c.get('dimensions', {}).items()}
        dims = {}
        for j, name in enumerate(labels):
            x = values[i, j]
            dims[by_name.get(name, name)] = {'name': name, 'value': None if math.isnan(x) else float(x)}
        out[cid] = {'name': c.get('name', cid), 'family': c.get('family', ''), 'context': c.get('context', ''),
                    'units': c.get('units', ''), 'last_updated': int(times[i]), 'dimensions': dims}
    return out


class _Handler(BaseHTTPRequestHandler):
    server_version = 'NetData Embedded HTTP Server (replay)'
    protocol_version = 'HTTP/1.1'   # connections are kept alive, as the agent's are
    disable_nagle_algorithm = True  # headers and body go out at once, no delayed-ACK stall
    timeout = 120                   # an idle kept-alive connection is closed after this

    def log_message(self, *args):  # keep stderr for real problems
        pass

    def _send(self, code, body):
        """A JSON answer, or a bytes one as plain text (the agent's errors are)."""
        text = isinstance(body, bytes)
        raw = body if text else json.dumps(body, separators=(',', ':')).encode()
        try:
            self.send_response(code)
            self.send_header('Content-Type', 'text/plain; charset=utf-8' if text else 'application/json')
            self.send_header('Content-Length', str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout); the agent does not complain either

    def do_GET(self):
        rec, clock = self.server.recording, self.server.clock
        url = urlparse(self.path)
        qs = parse_qs(url.query, keep_blank_values=True)
        now = int(clock.now())   # the agent's now is its last whole second: after=-N is N rows
        path = url.path
        if '/host/' in path and not path.startswith('/api/'):
            path = '/api/' + path.split('/api/', 1)[-1]
        if path == '/api/v1/info':
            return self._send(200, rec.info_body)
        if path == '/api/v1/charts':
            if self.server.charts_delay:
                time.sleep(self.server.charts_delay)
            return self._send(200, charts_body_at(rec, now))
        if path == '/api/v1/allmetrics':
            if self.server.allmetrics_delay:
                time.sleep(self.server.allmetrics_delay)
            return self._send(200, allmetrics_body(rec, now, qs.get('filter', [''])[0]))
        if path == '/api/v1/data':
            if self.server.data_delay:
                time.sleep(self.server.data_delay)
            chart = qs.get('chart', [''])[0]
            if not chart:
                return self._send(400, b'No chart or context is given.')
            body = data_body(rec, chart, _int(qs, 'after', -600), _int(qs, 'before', 0), now,
                             points=_int(qs, 'points', 0), group=qs.get('group', ['average'])[0],
                             dims=qs.get('dimensions', [''])[0] or None, options=qs.get('options', [''])[0])
            if body is None or body == NO_MATCH:   # as Netdata 1.37 answers both
                return self._send(404, b'No metrics where matched to query.')
            return self._send(200, body)
        if path == '/replay/now':
            return self._send(200, {'now': now})
        return self._send(404, b'not found')

    def do_POST(self):
        url = urlparse(self.path)
        if url.path == '/replay/step':
            text = parse_qs(url.query).get('seconds', ['1'])[0]
            try:
                seconds = float(text)
            except ValueError:
                seconds = float('nan')
            if not math.isfinite(seconds) or seconds < 0:
                return self._send(400, b'seconds must be a number >= 0, got ' + text.encode()[:40])
            self.server.clock.advance(seconds)
            return self._send(200, {'now': self.server.clock.now()})
        return self._send(404, b'not found')


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256   # netdata-pandas asks for every chart at once

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.connections = set()
        self.lock = threading.Lock()

    def process_request(self, request, client_address):
        with self.lock:        # known before its thread runs, so a stop right now still drops it
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        """A client that went away (a job stopped, ``curl | head``) is no error of the replay's:
        no traceback for it on the replay's stderr."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def close_connections(self):
        """Drop every kept-alive connection, as an agent that stops does."""
        with self.lock:
            for sock in list(self.connections):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def _stall(name, doc):
    """A server setting the request handler reads (``httpd.<name>``), in seconds."""
    return property(lambda self: getattr(self.httpd, name),
                    lambda self, seconds: setattr(self.httpd, name, float(seconds)), doc=doc)


class ReplayServer:
    """The replay HTTP server in a background thread; ``host`` is 'address:port'."""

    data_delay = _stall('data_delay', 'seconds to stall each /api/v1/data answer (a slow agent)')
    charts_delay = _stall('charts_delay', 'and each /api/v1/charts answer (thousands of charts, a busy agent)')
    allmetrics_delay = _stall('allmetrics_delay', "and each step's latest values (an agent slower than a step)")

    def __init__(self, recording, clock, port=0, address='127.0.0.1'):
        self.recording = recording if isinstance(recording, Recording) else Recording(recording)
        self.clock = clock
        self.httpd = _Server((address, port), _Handler)
        self.httpd.recording, self.httpd.clock = self.recording, clock
        self.httpd.data_delay = self.httpd.charts_delay = self.httpd.allmetrics_delay = 0.0
        self.thread = threading.Thread(target=self.httpd.serve_forever, name='replay-http', daemon=True)

    @property
    def host(self):
        address, port = self.httpd.server_address[:2]
        return '{}:{}'.format(address, port)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.close_connections()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
