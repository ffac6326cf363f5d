"""Talking to the Netdata REST API: the chart list, the latest values and a chart's stored rows.

Every call has a timeout and honours basic auth and TLS verification. The per-step path
(``allmetrics``) uses one kept-alive connection and the raw JSON. A training's window is read
in ``training_window`` (through netdata-pandas, with this client where that fails).
"""
import base64
import io
import json
import re
import socket
import ssl
import threading
import time
import weakref
from urllib.parse import quote

import numpy as np


# the most rows the agent answers one /api/v1/data query with (points=0 too): a longer window
# comes in grouped rows (three years: rows of 1095 s), the seconds before a chart's first value
# as empty rows
MAX_ROWS = 86400

try:  # several times faster on the per-step allmetrics body; optional
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover
    _fast_loads = json.loads


# a value as C's printf writes a number that is not finite (inf, -inf, nan, -nan), which newer
# agents' allmetrics prints as it is
_C_NON_FINITE = re.compile(rb'(?<=[:\[,])(\s*)(-?)(inf|nan)(?=\s*[,}\]])')


def _c_non_finite_as_literal(m):
    return m.group(1) + (b'NaN' if m.group(3) == b'nan' else m.group(2) + b'Infinity')


def json_loads(data):
    """JSON from an agent's answer. orjson refuses the NaN and Infinity literals that Python's
    reader takes, and neither takes a bare inf or nan, nor a name in another encoding than
    UTF-8 (Netdata 1.37 writes a name's bytes as they are; such a byte reads as U+FFFD): one
    chart's odd value or name must cost that chart, not the whole answer. An answer nested
    deeper than the reader goes is not JSON (ValueError), not a RecursionError."""
    try:
        return _fast_loads(data)
    except (ValueError, RecursionError):   # (RecursionError: Python's reader, where orjson is not installed)
        pass
    if not isinstance(data, str):
        data = bytes(data).decode('utf-8', 'replace')
    try:
        try:
            return json.loads(data)
        except ValueError:
            raw = data.encode()
            fixed = _C_NON_FINITE.sub(_c_non_finite_as_literal, raw)
            if fixed == raw:
                raise
            return json.loads(fixed)
    except RecursionError:
        raise ValueError('JSON nested too deep') from None


# longest chart filter sent in a URL (Netdata 1.37 took 8.5 KB in a test); longer asks for all
MAX_FILTER = 16000
# the statuses with which an agent, or a proxy before it, refuses a request line too long (Netdata's
# 'Received request is too big', nginx's 414 past its 8 KB buffers): the filter is then left out
URL_REFUSED = (400, 413, 414, 431)
# charts read at once, each over its own connection, when many are read from stored rows
PARALLEL_READS = 4
NO_ANSWER = 'no answer in'   # how a timed-out read is told, in messages that pass it on as text
# the chart list must come whole within this many api_timeouts (each of its reads within one)
LIST_TIMEOUTS = 6


# the agent's answer (HTTP 404) to a path under /host/<name>/ for a node it does not hold
UNKNOWN_NODE = b'does not maintain a database for host'
NODE_NOT_HELD = 'it holds no node'   # how such an answer is told (a job waits on it at a start: scope)

# the statuses with which an agent refuses a reader or asks it to wait, the words it answers
# them with (plain text), and what they mean: Netdata 2.x's are not the 1.37 ones (an address its
# [web] 'allow ... from' settings keep out gets 451 where 1.37 said 403; an anonymous reader of
# an agent that wants a signed-in one, as with bearer token protection on, 412; /api/v1/info is
# 503, with no words, while the agent starts)
REFUSALS = {
    403: ('You are not allowed to access this resource', "its [web] 'allow ... from' settings keep this address out"),
    412: ('You need to be authorized to access this resource',
          'it wants a signed-in reader, as Netdata 2.x does with bearer token protection on: this job sends '
          'basic auth (username/password) only'),
    451: ('You need to be authorized to access this resource',
          "Netdata 2.x: its [web] 'allow ... from' settings keep this address out"),
    503: ('', 'Netdata 2.x answers so while it starts: it should answer in a few seconds'),
}


def port_hint(host, protocol='http'):
    """What to add to 'cannot reach' for a host given without a port ('myserver'), which HTTP
    reads as port 80 (443 with https), where an agent listens on 19999; else ''."""
    netloc = host.partition('/')[0]
    if re.search(r':\d*$', netloc.rpartition(']')[2]):
        return ''
    return ' (no port given, so {}: a Netdata agent listens on 19999, e.g. {}:19999)'.format(
        443 if protocol == 'https' else 80, netloc)


def refusal(status, body):
    """': <the agent's own words> (<what they mean>)' for an answer refusing a reader or asking it
    to wait (``REFUSALS``), '' for any other: a bare 451 or 412 tells a person nothing. A proxy's
    page (HTML) is not quoted, nor explained as the agent's."""
    known = REFUSALS.get(status)
    if known is None:
        return ''
    words, meaning = known
    text = bytes(body or b'')[:300].decode('utf-8', 'replace').strip()
    if '<' in text:
        return ''
    said = text.splitlines()[0][:120] if text else ''
    if said and (not words or words not in said):
        return ': {}'.format(said)   # someone else's words (a proxy's): as they are, not explained
    return ': {} ({})'.format(said, meaning) if said else ' ({})'.format(meaning)


class NetdataError(RuntimeError):
    """The agent could not be reached or gave an answer that cannot be used. ``reason`` says
    what went wrong without the address (one line for many charts that failed alike);
    ``status``: the HTTP status the agent answered with, if it answered; ``timed_out``: the
    seconds waited for an answer that did not come in time (the caller can say which key
    allows how long), else None."""

    def __init__(self, message, reason=None, status=None, timed_out=None):
        super().__init__(message)
        self.reason = reason or message
        self.status = status
        self.timed_out = timed_out


def dim_key(host, chart, dim):
    """Column name of one dimension, as netdata-pandas builds it with ``host_prefix``."""
    return '{}::{}|{}'.format(host, chart, dim)


# a chart's last_updated further than this ahead of most charts' is that chart's odd answer;
# far enough that a job whose charts mostly update every few minutes keeps its one fast chart's time
CLOCK_AHEAD_SECONDS = 900


def agent_clock(stamps):
    """The agent's clock from its charts' ``last_updated``: the newest, but for one far ahead
    of the others' (taken for the time, it would read as a gap for every chart); 0 if none."""
    s = [t for t in stamps if isinstance(t, (int, float)) and t == t]
    if not s:
        return 0
    if max(s) - min(s) <= CLOCK_AHEAD_SECONDS:   # every step but an odd one: no sort on the per-step path
        return max(s)
    s.sort()
    median = s[len(s) // 2]
    if s[-1] - median <= CLOCK_AHEAD_SECONDS:
        return s[-1]
    return max(t for t in s if t - median <= CLOCK_AHEAD_SECONDS)


def is_time(t):
    """Whether ``t`` is a row's time as the agent gives it: a finite number of seconds."""
    if isinstance(t, bool) or not isinstance(t, (int, float)):
        return False
    try:
        return np.isfinite(float(t))
    except OverflowError:
        return False


# the longest chart id an agent makes ('type.id'; Netdata cuts a longer one): one longer is a
# proxy's or a hostile agent's, and its model's dimension lines would be longer than the 1024
# bytes the agent reads a plugin's line in
LONGEST_CHART_ID = 200


def _is_text(name):
    """Whether ``name`` can be sent back in a URL: JSON may escape half of a UTF-16 pair
    (``"\\udcff"``), which is no text; a chart id such as that, asked for in the steps' filter,
    failed every step (the chart itself could never be read)."""
    try:
        name.encode('utf-8')
    except UnicodeEncodeError:
        return False
    return True


def agent_now(body):
    """The agent's clock in an allmetrics body (``agent_clock`` of its charts; 0 if none)."""
    return agent_clock(c.get('last_updated') for c in (body or {}).values() if isinstance(c, dict))


def split_key(column):
    """``(host, chart, dim)`` of a column name; the host may hold '::' (IPv6), a chart id never does."""
    left, dim = column.split('|', 1)
    host, chart = left.rsplit('::', 1)
    return host, chart, dim


# an answer longer than this is no agent's (the largest, a 4-hour window of a wide chart, is
# tens of MiB): read on, a proxy's or a hostile endpoint's would take a small box's memory
MAX_ANSWER_BYTES = 256 * 1024 * 1024


READ_PART_BYTES = 1024 * 1024   # an answer without a length is read in parts of this size


class AnswerTooLarge(Exception):
    pass


def _read_capped(response):
    """The body of ``response``, or None when it is longer than MAX_ANSWER_BYTES (left unread). In
    parts without a length: Python 3.9's ``read(n)`` sets aside n bytes before it reads any."""
    if response.length is not None:
        return None if response.length > MAX_ANSWER_BYTES else response.read()
    parts, size = [], 0
    while True:
        part = response.read(READ_PART_BYTES)
        if not part:
            return b''.join(parts)
        size += len(part)
        if size > MAX_ANSWER_BYTES:
            return None
        parts.append(part)


class _NotWhole(socket.timeout):
    """An answer that did not come whole within ``seconds``, however fast each part came."""

    def __init__(self, seconds):
        super().__init__('timed out')
        self.seconds = seconds


class _ReadsByDeadline(io.RawIOBase):
    """A socket's reads (``raw``, its reader), each given at most what is left of its
    request's time (``whole`` seconds, from ``deadline - whole`` on) rather than the read
    timeout afresh: an agent or proxy that answers a few bytes at a time would otherwise hold
    a step for the timeout once per read, without end."""

    def __init__(self, raw, sock, deadline, whole, per_read):
        self.raw, self.sock, self.deadline, self.whole, self.per_read = raw, sock, deadline, whole, per_read

    def readable(self):
        return True

    def readinto(self, buffer):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _NotWhole(self.whole)
        self.sock.settimeout(min(left, self.per_read))
        try:
            return self.raw.readinto(buffer)
        except socket.timeout:
            if left < self.per_read < self.whole:   # the answer's time ran out, not a read's: told as the answer's
                raise _NotWhole(self.whole) from None
            raise

    def close(self):
        if not self.closed:
            self.raw.close()   # (it holds the socket open past the connection's close, as http.client's own)
        super().close()


class _KeepAlive:
    """One persistent HTTP(S) connection to one agent: the cheapest way to GET every second.

    Reconnects once when a kept-alive connection turns out stale; never retries a timeout. An
    answer's headers and body must come within the timeout, whatever pace they come at.
    """

    def __init__(self, protocol, netloc, tls_verify, headers):
        self.protocol, self.netloc, self.headers = protocol, netloc, headers
        self.context = ssl_context(tls_verify) or ssl.create_default_context() if protocol == 'https' else None
        self.conn = None
        # by when (time.monotonic()) the answer being read must have come whole, its seconds,
        # and each read's timeout
        self.deadline, self.whole, self.per_read = 0.0, 0.0, 0.0
        self._responses = None

    def _response_class(self):
        import http.client
        # (not the link itself: the link holds the class, and a cycle would keep the link's socket
        # open, once it is dropped unclosed, until a garbage collection)
        link = weakref.ref(self)

        class ResponseByDeadline(http.client.HTTPResponse):
            def __init__(self, sock, *args, **kwargs):
                super().__init__(sock, *args, **kwargs)
                at = link()
                self.fp = io.BufferedReader(_ReadsByDeadline(self.fp.detach(), sock, at.deadline, at.whole,
                                                             at.per_read))
        return ResponseByDeadline

    def get(self, path, timeout, whole=None):
        """``(status, body)``; each read within ``timeout`` seconds, all of it within ``whole``
        (default the same)."""
        import http.client
        self.whole, self.per_read = whole or timeout, timeout
        self.deadline = time.monotonic() + self.whole
        for attempt in (0, 1):
            fresh = self.conn is None
            if fresh:
                if self.protocol == 'https':
                    self.conn = http.client.HTTPSConnection(self.netloc, timeout=timeout, context=self.context)
                else:
                    self.conn = http.client.HTTPConnection(self.netloc, timeout=timeout)
                if self._responses is None:
                    self._responses = self._response_class()
                self.conn.response_class = self._responses
            conn = self.conn
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
            try:
                conn.request('GET', path, headers=self.headers)
                r = conn.getresponse()
                data = _read_capped(r)
                if data is None:
                    self.close()   # the rest unread: the connection cannot carry another request
                    raise AnswerTooLarge('answered over {} MiB'.format(MAX_ANSWER_BYTES // (1024 * 1024)))
            except (http.client.HTTPException, OSError) as e:
                self.close()
                stale = isinstance(e, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError))
                if fresh or not stale or attempt:
                    raise
                continue
            except BaseException:   # whatever else stopped the request midway: the link cannot carry another
                self.close()
                raise
            if r.will_close:
                self.close()
            return r.status, data

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# what a TLS handshake reads when the agent answers in plain http (OpenSSL 1.1 to 3.x)
PLAIN_HTTP_REASONS = {'WRONG_VERSION_NUMBER', 'RECORD_LAYER_FAILURE', 'PACKET_LENGTH_TOO_LONG', 'HTTP_REQUEST'}


class NetdataApi:
    def __init__(self, host, protocol='http', username=None, password=None, tls_verify=True, timeout=5.0):
        self.host = host
        self.protocol = protocol
        self.auth = (username, password) if username is not None else None
        self.tls_verify = tls_verify
        self.timeout = timeout
        # one kept-alive connection per use: the chart list is read in a thread of its own
        # (ChartListing) while each step reads allmetrics on the main one
        self._links = {}
        self._filter = (None, '')  # (charts, query part) of the last allmetrics filter
        self.last_raw = None       # bytes of the last allmetrics answer
        self.listed_seconds = {}   # chart id -> seconds it had been collected, from the last chart list
        self.listed_dimensions = {}   # chart id -> how many dimensions it had, from the same list
        self.listed_every = {}     # chart id -> its update_every, from the last chart list
        self.listed_at = None      # the agent's time at the last chart list (see charts)
        self.answered = False      # whether it has answered a request (a child its parent held)

    @classmethod
    def from_config(cls, config, host=None):
        return cls(host or config.host, config.protocol, config.username, config.password,
                   config.tls_verify, config.api_timeout)

    @property
    def base_url(self):
        return '{}://{}'.format(self.protocol, self.host)

    def _get_json(self, path, timeout=None, keep_raw=False, link='main', whole=None):
        # host may carry a path: 'parent:19999/host/child'
        netloc, _, prefix = self.host.partition('/')
        url = self.base_url + path
        shown = url.split('&filter=')[0] + '&filter=...' if '&filter=' in url else url  # for log lines
        try:
            http = self._links.get(link)
            if http is None:   # in the try: a CA bundle that cannot be read is an error like any other
                headers = {'Accept-Encoding': 'identity'}
                if self.auth:
                    token = base64.b64encode('{}:{}'.format(*self.auth).encode()).decode()
                    headers['Authorization'] = 'Basic ' + token
                http = self._links[link] = _KeepAlive(self.protocol, netloc, self.tls_verify, headers)
            # (a child's name outside ASCII, 'parent/host/büro', goes in the request line encoded)
            status, data = http.get(('/' + quote(prefix, safe='/%') if prefix else '') + path,
                                    timeout or self.timeout, whole)
        except AnswerTooLarge as e:
            raise NetdataError('{} {}: not an agent\'s answer, left unread'.format(shown, e),
                               '{} {}: not an agent\'s answer, left unread'.format(self.host, e))
        except Exception as e:  # socket, TLS and HTTP errors alike: the agent could not be read
            why = '{}: {}'.format('TimeoutError' if isinstance(e, _NotWhole) else e.__class__.__name__, str(e)[:160])
            waited = None
            if isinstance(e, (TimeoutError, socket.timeout)):
                waited = e.seconds if isinstance(e, _NotWhole) else timeout or self.timeout
            if waited:
                why += ' ({} {:g} s)'.format(NO_ANSWER, waited)
            elif isinstance(e, ssl.SSLError) and getattr(e, 'reason', None) in PLAIN_HTTP_REASONS:
                why += " (it answers plain http, not https: protocol 'http')"
            why += port_hint(self.host, self.protocol)
            raise NetdataError('cannot reach {}: {}'.format(shown, why), 'cannot reach {}: {}'.format(self.host, why),
                               timed_out=waited)
        if status != 200:
            why = ''
            if status == 404 and prefix and UNKNOWN_NODE in bytes(data or b'')[:200]:
                # a parent asked for a node it does not hold: a child's name mistyped, or one
                # that has not streamed to it (Netdata's own answer says so, in a page no log shows)
                child = ('/' + prefix).rsplit('/host/', 1)[-1]
                if self.answered:   # the name was right: a parent just restarted lists a child once it reconnects
                    why = (": {} {!r} now, as it did before: the child is not streaming to it (it stopped, or "
                           "has not reconnected since one of them restarted)".format(NODE_NOT_HELD, child))
                else:
                    why = (": {} {!r} (a child is named by its hostname or machine GUID, as the parent's "
                           "/api/v1/info lists them in mirrored_hosts)".format(NODE_NOT_HELD, child))
            elif status in (301, 302, 307, 308) and self.protocol == 'http':
                why = " (a redirect: it serves https only, as an agent with [web] ssl forced or a proxy does: " \
                      "protocol 'https')"
            elif status == 401:
                why = (' (its username and password were refused)' if self.auth else
                       ' (it asks for a sign-in, as a proxy in front of an agent does: set username and password)')
            else:
                why = refusal(status, data)
            raise NetdataError('{} answered HTTP {}{}'.format(shown, status, why),
                               '{} answered HTTP {}{}'.format(self.host, status, why), status)
        try:
            body = json_loads(data)
        except ValueError:
            raise NetdataError('{} answered with something that is not JSON'.format(shown),
                               '{} answered with something that is not JSON'.format(self.host))
        self.answered = True
        if keep_raw:
            self.last_raw = data
        return body

    def agent_id(self):
        """The agent's machine GUID (``uid`` of /api/v1/info), or None where it gives none."""
        body = self._get_json('/api/v1/info')
        uid = body.get('uid') if isinstance(body, dict) else None
        return uid if isinstance(uid, str) and uid else None

    def charts(self):
        """``{chart_id: [dimension names]}`` of the charts the agent has now. On a connection
        of its own, so that it may be read from another thread while the steps go on. An id
        that is no text, or longer than any the agent makes, is left out: no agent's chart."""
        # (in a thread of its own, no step waits for it: the list of an agent of thousands of
        # charts, megabytes, may take longer than api_timeout over a slow link)
        body = self._get_json('/api/v1/charts', link='list', whole=LIST_TIMEOUTS * self.timeout)
        charts = body.get('charts') if isinstance(body, dict) else None
        if not isinstance(charts, dict):
            raise NetdataError('{}/api/v1/charts has no "charts" object'.format(self.base_url))
        out, seconds, lasts, every = {}, {}, [], {}
        for cid, c in charts.items():
            dims = c.get('dimensions') if isinstance(c, dict) else None
            if isinstance(dims, dict) and _is_text(cid) and len(cid) <= LONGEST_CHART_ID:
                out[cid] = [d.get('name', k) if isinstance(d, dict) else k for k, d in dims.items()]
                e = c.get('update_every')
                if isinstance(e, int) and not isinstance(e, bool) and e > 0:
                    every[cid] = e
                first, last = c.get('first_entry'), c.get('last_entry')
                if is_time(first) and is_time(last):
                    seconds[cid] = last - first   # 0 - 0 for a chart not collected yet
                    if last > 0:
                        lasts.append(float(last))
        self.listed_seconds, self.listed_every = seconds, every
        self.listed_dimensions = {cid: len(dims) for cid, dims in out.items()}
        # the agent's time: most charts were collected within their last second or few (the
        # median, so that a chart stopped long ago or dated ahead is not taken for it); not
        # told when most charts give no time
        self.listed_at = float(np.median(lasts)) if 2 * len(lasts) > len(out) else None
        return out

    def charts_of_context(self, context):
        """``{chart id: its /api/v1/charts entry}`` of the charts whose context is ``context``
        (e.g. every job's anomalies.probability)."""
        body = self._get_json('/api/v1/charts')
        charts = body.get('charts') if isinstance(body, dict) else None
        if not isinstance(charts, dict):
            raise NetdataError('{}/api/v1/charts has no "charts" object'.format(self.base_url))
        return {cid: c for cid, c in charts.items() if isinstance(c, dict) and c.get('context') == context}

    def data(self, chart, after, before=0, points=0, group=None, whole=None):
        """One chart's stored values: ``(dimension names, [[time, values...], ...])`` oldest first.

        Every dimension, hidden ones too (system.cpu's idle): the agent leaves them out unless
        asked, while allmetrics, and so each step, has them. ``whole``: the seconds the answer
        may take to come whole (default the timeout, as each of its reads).
        """
        path = ('/api/v1/data?chart={}&after={}&before={}&points={}&format=json&options=flip&dimensions=*'
                .format(quote(chart, safe=''), int(after), int(before), int(points)))
        if group:   # how grouped rows are made ('max'); the agent's default is the average
            path += '&group=' + group
        body = self._get_json(path, whole=whole)
        try:
            return list(body['labels'][1:]), [list(r) for r in body['data']]
        except (KeyError, TypeError):
            raise NetdataError('{}/api/v1/data for {} has no labels/data'.format(self.base_url, chart),
                               'the answer of {} has no labels/data'.format(self.host))

    def allmetrics(self, timeout=None, charts=None):
        """Latest values: the raw body, ``{chart_id: {'last_updated', 'dimensions': {id: {'name', 'value'}}}}``.

        With ``charts``, only those are asked for (the agent's ``filter``, a simple
        pattern), which makes the answer a fraction of the whole. It is left unparsed (see
        ``batch.Layout.row``) so a step only touches the charts it models.
        """
        if charts != self._filter[0]:
            pattern = quote(' '.join(sorted(charts)), safe='') if charts else ''
            self._filter = (charts, '&filter=' + pattern if pattern and len(pattern) < MAX_FILTER else '')
        try:
            body = self._get_json('/api/v1/allmetrics?format=json' + self._filter[1], timeout, keep_raw=True)
        except NetdataError as e:
            if not self._filter[1] or e.status not in URL_REFUSED:
                raise
            # a URL longer than the agent or its proxy takes: every chart, as for a filter over MAX_FILTER
            self._filter = (charts, '')
            body = self._get_json('/api/v1/allmetrics?format=json', timeout, keep_raw=True)
        if not isinstance(body, dict):
            raise NetdataError('{}/api/v1/allmetrics is not a JSON object'.format(self.base_url))
        return body

    def allmetrics_raw(self):
        """The bytes of the last allmetrics answer (``json_loads`` reads them again): one
        object to keep instead of thousands of dicts."""
        return self.last_raw

    def close(self):
        for link in list(self._links):
            http = self._links.pop(link, None)
            if http is not None:
                http.close()


class ChartListing:
    """One read of an agent's chart list in a thread of its own. An agent with thousands of
    charts, or a busy one, takes a second or more to list them, and the step that asked
    must not wait for it: the job takes the list up at the first step after it came.

    ``result()`` returns what ``charts()`` returned, or raises what it raised.
    """

    def __init__(self, api, in_thread=True):
        self.done = threading.Event()
        self._charts = self._error = None
        if in_thread:
            try:
                threading.Thread(target=self._read, args=(api,), name='anomalies-chart-list', daemon=True).start()
                return
            except RuntimeError:   # no thread to be had (pids.max, ulimit -u): read it here, as it is waited for
                pass
        self._read(api)

    def _read(self, api):
        try:
            self._charts = api.charts()
        except BaseException as e:   # raised again in the job's thread, which knows what to tell
            self._error = e
        finally:
            self.done.set()

    def ready(self, wait=None):
        """Whether the list came, waiting up to ``wait`` seconds for it (None: until it does)."""
        return self.done.wait(wait)

    def result(self):
        if self._error is not None:
            raise self._error
        return self._charts


def ssl_context(tls_verify):
    """The TLS context ``tls_verify`` asks for (False: no check; a path: that CA bundle), None for
    the default one."""
    if tls_verify is False:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if isinstance(tls_verify, str):
        return ssl.create_default_context(cafile=tls_verify)
    return None
