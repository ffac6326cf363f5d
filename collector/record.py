"""Record a live Netdata agent's API into a recording folder (format: see docs/recordings.md).

Bodies are stored exactly as the agent sent them (per-chart data gzipped), so a replay
answers what the agent answered.
"""
import datetime
import gzip
import json
import os
import re
import shutil
import sys
import time
import warnings
from urllib.parse import quote, urlsplit

from .netdata_api import MAX_ROWS, json_loads, port_hint, refusal


class RecordError(RuntimeError):
    pass


class _Lines:
    """The progress stream, knowing whether a progress line is open: what is written next
    (an error, a note) starts on a line of its own."""

    def __init__(self, stream):
        self.stream, self.open = stream, False
        try:   # redrawn in place on a terminal; a log file or a shared shell gets a line a tenth
            self.tty = stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False
        self.tenth = None

    def progress(self, text, done, total):
        if not self.tty:
            tenth = 10 * done // max(total, 1)
            if tenth != self.tenth:
                self.tenth = tenth
                self.write(text.rstrip() + '\n')
            return
        self.stream.write('\r' + text)
        self.stream.flush()
        self.open = True

    def write(self, text):
        self.stream.write(('\n' if self.open and not text.startswith('\n') else '') + text)
        self.open = not text.endswith('\n')

    def close(self):
        if self.open:
            self.write('\n')


def _progress(done, total, label, lines):
    width = 30
    filled = int(width * done / max(total, 1))
    lines.progress('[{}{}] {}/{} {}'.format('#' * filled, '.' * (width - filled), done, total, label[:40].ljust(40)),
                   done, total)


def _root_cause(e):
    """The innermost error a requests error wraps (``ConnectionRefusedError: [Errno 111]
    Connection refused``), as the job's own client says it, not the wrapper's name alone."""
    seen = set()
    while id(e) not in seen and (e.__cause__ or e.__context__) is not None:
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    reason = getattr(e, 'reason', None)   # urllib3 keeps the socket's error here
    if isinstance(reason, BaseException):
        e = reason
    return '{}: {}'.format(e.__class__.__name__, str(e)[:160]) if str(e) else e.__class__.__name__


def _get(session, url, timeout):
    import requests
    from urllib3.exceptions import InsecureRequestWarning
    try:
        # verify given with each request: the session's False alone gives way to a CA bundle the
        # environment names (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE); unchecked as asked, each request
        # would also have urllib3 warn so over the progress line
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', InsecureRequestWarning)
            r = session.get(url, timeout=timeout, verify=session.verify)
    except requests.RequestException as e:
        where = urlsplit(url)
        raise RecordError('cannot reach {}: {}{}'.format(url, _root_cause(e), port_hint(where.netloc, where.scheme)))
    if r.status_code != 200:
        raise RecordError('{} answered HTTP {}{}'.format(url, r.status_code, refusal(r.status_code, r.content)))
    return r.content


def _read_labels(path):
    """The incidents file to store beside the data, checked before anything is recorded."""
    from .replay import RecordingError, check_labels
    try:
        with open(path) as f:
            body = json.load(f)
        check_labels(body, path)
    except (OSError, ValueError) as e:   # RecordingError is a ValueError and names the file
        raise RecordError('--labels: {}'.format(e if isinstance(e, RecordingError) else '{}: {}'.format(path, e)))
    return body


def _prepare_out(out):
    """Create the empty folder to record into; never write into an existing recording. An empty
    name (an unset shell variable) would be the current folder, whatever it holds."""
    if not out.strip():
        raise RecordError('--out is empty: give the folder to record into')
    if os.path.exists(out) and not os.path.isdir(out):
        raise RecordError('--out {} is a file, not a folder'.format(out))
    if os.path.isdir(out) and os.listdir(out):
        raise RecordError('--out {} is not empty: record into a new folder (a recording is never '
                          'mixed into another)'.format(out))
    try:
        os.makedirs(os.path.join(out, 'data'), exist_ok=True)
    except OSError as e:
        raise RecordError('cannot create {}: {}'.format(out, e.strerror or e))


def _history_start(charts_body, charts):
    """The oldest second any of ``charts`` has in the agent (None when it does not say)."""
    firsts = [c.get('first_entry') for c in (charts_body['charts'].get(cid) for cid in charts)
              if isinstance(c, dict)]
    firsts = [int(f) for f in firsts if isinstance(f, (int, float)) and not isinstance(f, bool) and f > 0]
    return min(firsts) if firsts else None


def record(host, seconds, out, past=False, charts_regex=None, labels=None, description='', protocol='http',
           timeout=30.0, stream=sys.stderr, sleep=time.sleep, before=None, clock=time.time, auth=None,
           tls_verify=True):
    """Record ``seconds`` of ``host`` into ``out``; returns the list of charts that failed.
    ``auth``: ``(username, password)`` for an agent behind basic authentication (a proxy).

    Without ``past`` it waits while the window happens (live); with it, it takes the last
    ``seconds`` the agent already has, up to ``before`` (unix s) when given: the recording
    process's own start-up (a burst of interrupts, a few forks) then stays out of the window.
    Every argument is checked before the window is waited for, and ``out`` must be new or empty.
    """
    if seconds > MAX_ROWS:   # a longer window comes in grouped rows, which a replay would serve as steps
        raise RecordError('--seconds {}: at most {} (the agent answers a window in at most that many rows)'.format(
            seconds, MAX_ROWS))
    try:
        rx = re.compile(charts_regex) if charts_regex else None
    except re.error as e:
        raise RecordError('--charts-regex {!r}: {}'.format(charts_regex, e))
    labels_body = _read_labels(labels) if labels else None
    created = not os.path.exists(out)
    _prepare_out(out)
    lines = _Lines(stream)
    try:
        return _record(host, seconds, out, past, rx, labels_body, description, protocol, timeout, lines, sleep,
                       before, clock, auth, tls_verify)
    except BaseException:   # an error, Ctrl-C, SIGTERM: nothing half-made is left behind
        lines.close()
        if created:
            shutil.rmtree(out, ignore_errors=True)
        else:   # it was empty: empty again, so the same command can be run once more
            for name in os.listdir(out):
                path = os.path.join(out, name)
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.remove(path)
        raise


def _check_data(body):
    """Raise ValueError unless ``body`` is a ``/api/v1/data`` answer: labels from 'time' on,
    and rows of as many values (an agent busy or failing may answer 200 with something else)."""
    labels = body.get('labels') if isinstance(body, dict) else None
    rows = body.get('data') if isinstance(body, dict) else None
    if not isinstance(labels, list) or not labels or labels[0] != 'time' or not isinstance(rows, list):
        raise ValueError('not a data answer: {}'.format(json.dumps(body)[:80]))
    if any(not isinstance(r, list) or len(r) != len(labels) for r in rows):
        raise ValueError('rows of another width than its {} labels'.format(len(labels)))


def _chart_list(session, base, timeout, rx):
    """``(raw body, parsed body, chart ids)`` of the agent's chart list, narrowed to ``rx``."""
    charts_raw = _get(session, base + '/api/v1/charts', timeout)
    try:
        charts_body = json.loads(charts_raw)
        if not isinstance(charts_body['charts'], dict):
            raise TypeError('charts is not an object')
        charts = sorted(charts_body['charts'])
    except (ValueError, KeyError, TypeError):
        raise RecordError('{}/api/v1/charts did not answer like a Netdata agent'.format(base))
    listed = len(charts)
    if rx is not None:
        charts = [c for c in charts if rx.match(c)]
        charts_body['charts'] = {c: charts_body['charts'][c] for c in charts}
        charts_raw = json.dumps(charts_body, indent=1).encode()
    if not charts:
        raise RecordError('no charts to record: {}'.format(
            'none of the agent\'s {} charts matches --charts-regex {!r}'.format(listed, rx.pattern)
            if rx is not None and listed else 'the agent lists none'))
    return charts_raw, charts_body, charts


def _labels_inside(labels_body, start, end):
    """Refuse, before anything is recorded, labels that ``evaluate`` would refuse the recording for."""
    from .replay import seconds_hint
    for i, inc in enumerate((labels_body or {}).get('incidents', [])):
        if not start <= inc['start'] <= end:
            raise RecordError('--labels: incident {} starts at {}{}, outside the window to record ({}..{})'.format(
                i + 1, inc['start'], seconds_hint(inc['start']), start, end))


def _record(host, seconds, out, past, rx, labels_body, description, protocol, timeout, stream, sleep, before,
            clock, auth, tls_verify):
    import requests
    base = '{}://{}'.format(protocol, host)
    session = requests.Session()
    session.auth, session.verify = auth, tls_verify
    info = _get(session, base + '/api/v1/info', timeout)
    try:   # checked now, not after a live window's wait
        version = json.loads(info).get('version', '')
    except (ValueError, AttributeError):
        raise RecordError('{}/api/v1/info did not answer like a Netdata agent'.format(base))
    charts_raw, charts_body, charts = _chart_list(session, base, timeout, rx)
    now = _agent_now(session, base, timeout)
    gone = []
    if past:
        start, end = _past_window(charts_body, charts, now, seconds, before, stream)
        _labels_inside(labels_body, start, end)
        sample = _get(session, base + '/api/v1/allmetrics?format=json', timeout)
    else:
        start = int(now)
        end = start + int(seconds)
        _labels_inside(labels_body, start, end)
        sample = _wait_for_window(session, base, timeout, now, start, end, out, stream, sleep, clock)
        # the list as the window ends, as with --past: charts the agent created during it
        # (a TCP chart at the first connection) are recorded too
        began = charts_body['charts']
        charts_raw, charts_body, charts = _chart_list(session, base, timeout, rx)
        # ... and those it stopped listing during it (a container stopped, an interface or disk
        # removed: the agent leaves an obsolete chart out of its list, and answers its data a
        # while yet): their history is the incident's as much as any
        gone = sorted(set(began) - set(charts))
        if gone:
            charts_body['charts'].update((c, began[c]) for c in gone)
            charts = sorted(charts_body['charts'])
            stream.write('record: {} left the agent\'s chart list during the window, recorded as well: {}\n'.format(
                '1 chart' if len(gone) == 1 else '{} charts'.format(len(gone)), ', '.join(gone[:5]) +
                (' (+{} more)'.format(len(gone) - 5) if len(gone) > 5 else '')))
    failed, first, last = _record_charts(session, base, timeout, charts, start, end, out, stream)
    stream.close()
    left = {c: int(last.get(c, start)) for c in gone if c not in failed}   # their last value: listed until then
    for chart, at in left.items():
        charts_body['charts'][chart] = dict(charts_body['charts'][chart], last_entry=at)
    if gone:
        charts_raw = json.dumps(charts_body, indent=1).encode()
    if past and len(failed) < len(charts):   # (every chart failed: each was told why)
        start = _valued_start(start, end, first, labels_body, stream)
    if failed:   # charts.json lists the recorded charts only, as the replay serves them
        for chart in failed:
            charts_body['charts'].pop(chart, None)
        charts_raw = json.dumps(charts_body, indent=1).encode()
    meta = {'start': start, 'end': end, 'update_every': charts_body.get('update_every', 1),
            'netdata_version': version, 'hostname': charts_body.get('hostname', ''),
            'recorded_at': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
            'description': description}
    if failed:
        meta['failed_charts'] = failed
    if left:
        meta['charts_left'] = left
    for name, body in (('info.json', info), ('charts.json', charts_raw), ('allmetrics.sample.json', sample)):
        with open(os.path.join(out, name), 'wb') as f:
            f.write(body)
    with open(os.path.join(out, 'recording.json'), 'w') as f:
        json.dump(meta, f, indent=1)
    if labels_body is not None:
        with open(os.path.join(out, 'labels.json'), 'w') as f:
            json.dump(labels_body, f, indent=1)
    return failed


def _past_window(charts_body, charts, now, seconds, before, stream):
    """``(start, end)`` of a window already held (``--past``): ending at ``before`` or the agent's
    newest whole second, starting no earlier than the oldest second the agent holds of ``charts``."""
    end = int(now) - 1 if before is None else min(int(before), int(now) - 1)
    if before is not None and int(before) > end:
        stream.write('record: --before {} is past the agent\'s newest second: the window ends at {}\n'.format(
            int(before), end))
    start = end - int(seconds)
    oldest = _history_start(charts_body, charts)
    if oldest is not None and end <= oldest:
        raise RecordError('nothing to record: the window ends at {}, before the agent\'s history '
                          'starts ({})'.format(end, oldest))
    if oldest is not None and start < oldest:
        stream.write('record: the agent holds {} s of these charts, not {}: recording {}..{}\n'.format(
            end - oldest, int(seconds), oldest, end))
        start = oldest
    return start, end


EDGE_ROWS_S = 10   # leading seconds without a value that a --past window keeps


def _valued_start(start, end, first, labels_body, stream):
    """A ``--past`` window's start moved past the seconds no chart has a value in (an agent that
    restarted keeps the earlier run's history, and first_entry is of that), so that recording.json
    claims no more than was recorded; never past a labeled incident's start."""
    if first is None:
        stream.write('record: no recorded chart has a value in {}..{}\n'.format(start, end))
        return start
    labeled = [inc['start'] for inc in (labels_body or {}).get('incidents', [])]
    # (a row or two without values is the edge of the agent's rows, not a gap)
    cut = int(min([first] + labeled)) if int(first) >= start + EDGE_ROWS_S else start
    if cut > start:
        stream.write('record: no recorded chart has a value in the window\'s first {} s (a gap in the agent\'s '
                     'history, as after its restart): recording {}..{}\n'.format(cut - start, cut, end))
    return cut


def _wait_for_window(session, base, timeout, now, start, end, out, stream, sleep, clock):
    """Wait, with progress, until the agent has collected a live window's last second; returns the
    allmetrics sample taken past its middle."""
    seconds = end - start
    # the window's times, for the labels.json of what is done during it (the agent's clock)
    stream.write('record: recording {}..{} (unix seconds, the agent\'s clock) into {}\n'.format(start, end, out))
    sample = None
    ahead = now - clock()   # the window is on the agent's clock, which may differ from ours
    while clock() + ahead < end + 1:
        left = end + 1 - (clock() + ahead)
        _progress(int(seconds - max(left, 0)), int(seconds), 'waiting for the window to pass', stream)
        if sample is None and left < seconds / 2:
            sample = _get(session, base + '/api/v1/allmetrics?format=json', timeout)
        sleep(min(1.0, max(left, 0.01)))
    stream.close()
    if sample is None:
        sample = _get(session, base + '/api/v1/allmetrics?format=json', timeout)
    return sample


def _agent_now(session, base, timeout):
    """The agent's own clock: the newest second it has collected (this machine's where it tells none)."""
    try:
        # (json_loads: a value that is not finite comes as C prints it, a bare inf, from many an agent)
        latest = json_loads(_get(session, base + '/api/v1/allmetrics?format=json', timeout))
        stamps = [c.get('last_updated') for c in latest.values() if isinstance(c, dict)]
        return max((s for s in stamps if isinstance(s, (int, float)) and not isinstance(s, bool)
                    and 0 < s < 1e11), default=0) or time.time()
    except (ValueError, KeyError, TypeError, AttributeError):
        raise RecordError('{}/api/v1/allmetrics did not answer like a Netdata agent'.format(base))


def _record_charts(session, base, timeout, charts, start, end, out, stream):
    """Each chart's window into its own gzipped file; ``(the charts that failed, each told on
    ``stream``, the oldest second any recorded chart has a value at, {chart: the newest second
    it has one at})``."""
    from .replay import chart_file
    failed, first, last = [], None, {}
    for i, chart in enumerate(charts):
        _progress(i, len(charts), chart, stream)
        url = ('{}/api/v1/data?chart={}&after={}&before={}&points=0&format=json&group=average'
               '&dimensions=*&options=').format(base, quote(chart, safe=''), start, end)
        path = chart_file(out, chart)
        if path is None:   # written as it is, it would land outside --out
            failed.append(chart)
            stream.write('chart {!r} failed: its id is no file name (a \'/\' in it): not recorded\n'.format(chart))
            continue
        try:
            body = _get(session, url, timeout)
            parsed = json.loads(body)
            _check_data(parsed)
        except (RecordError, ValueError) as e:
            failed.append(chart)
            stream.write('chart {} failed: {}\n'.format(chart, e))
            continue
        with gzip.open(path, 'wb') as f:
            f.write(body)
        times = _valued_times(parsed)
        if times:
            first = min(times) if first is None else min(first, min(times))
            last[chart] = max(times)
    _progress(len(charts), len(charts), 'done', stream)
    return failed, first, last


def _valued_times(body):
    """The times of a data answer's rows with a value."""
    return [r[0] for r in body['data'] if any(v is not None for v in r[1:])
            and isinstance(r[0], (int, float)) and not isinstance(r[0], bool)]
