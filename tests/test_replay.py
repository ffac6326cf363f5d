"""The replay server answers like the agent it recorded."""
import glob
import gzip
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from collector.replay import Recording, ReplayClock, ReplayServer, resolve_window
from conftest import SHARED, START, with_dimensions

SHARED_RECORDINGS = sorted(glob.glob(os.path.join(SHARED, 'recordings', '*', 'recording.json')))


def get(server, path, method='GET'):
    req = urllib.request.Request('http://{}{}'.format(server.host, path), method=method)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def data(server, chart, after, before, points=0, options=''):
    return get(server, '/api/v1/data?chart={}&after={}&before={}&points={}&format=json&group=average'
                       '&dimensions=*&options={}'.format(chart, after, before, points, options))


def recorded(path, chart):
    with gzip.open(os.path.join(path, 'data', chart + '.json.gz'), 'rt') as f:
        return json.load(f)


def test_full_window_equals_the_recorded_body(recording):
    rec = Recording(recording)
    with ReplayServer(rec, ReplayClock(rec.end, stepped=True)) as server:
        for chart in ('system.cpu', 'system.load', 'system.forks'):
            body = data(server, chart, rec.start, rec.end)
            assert body == recorded(recording, chart)


@pytest.mark.skipif(not SHARED_RECORDINGS, reason='../shared/recordings is not available')
def test_real_recording_bodies_round_trip():
    path = os.path.dirname(SHARED_RECORDINGS[0])
    rec = Recording(path)
    with ReplayServer(rec, ReplayClock(rec.end, stepped=True)) as server:
        for chart in ('system.cpu', 'system.load', 'apps.cpu', 'system.clock_sync_offset'):
            want = recorded(path, chart)
            got = data(server, chart, rec.start, rec.end)
            assert got['labels'] == want['labels']
            assert len(got['data']) == len(want['data'])
            assert [r[0] for r in got['data']] == [r[0] for r in want['data']]   # newest first
            assert got['data'][:50] == want['data'][:50]
        assert set(get(server, '/api/v1/charts')['charts']) == set(rec.charts)
        sample = json.load(open(os.path.join(path, 'allmetrics.sample.json')))
        now_body = get(server, '/api/v1/allmetrics?format=json')
        assert set(now_body) <= set(sample) | set(rec.charts)
        assert set(now_body['system.cpu']) == set(sample['system.cpu'])


def test_relative_windows_and_the_clock(replay):
    now = START + 600
    body = data(replay, 'system.cpu', -60, 0)
    times = [r[0] for r in body['data']]
    assert times == list(range(now, now - 60, -1))
    body = data(replay, 'system.cpu', -30, -10)
    assert [r[0] for r in body['data']] == list(range(now - 10, now - 40, -1))
    # nothing after the clock's now exists yet
    body = data(replay, 'system.cpu', now - 5, now + 100)
    assert body['data'][0][0] == now
    # flip gives oldest first; points averages into that many rows
    assert [r[0] for r in data(replay, 'system.cpu', -10, 0, options='flip')['data']] == list(range(now - 9, now + 1))
    assert len(data(replay, 'system.cpu', -60, 0, points=6)['data']) == 6
    # the stepped clock moves only when told, by the caller or over HTTP
    assert get(replay, '/api/v1/allmetrics?format=json')['system.cpu']['last_updated'] == now
    replay.clock.advance(5)
    assert get(replay, '/api/v1/allmetrics?format=json')['system.cpu']['last_updated'] == now + 5
    assert get(replay, '/replay/step?seconds=10', method='POST')['now'] == now + 15
    # a chart collected every 5 s reports its last collected second
    assert get(replay, '/api/v1/allmetrics?format=json')['system.load']['last_updated'] == now + 15


def test_resolve_window_as_the_agent_reads_after_and_before():
    now = START + 600
    assert resolve_window(-60, 0, now) == (now - 59, now)
    assert resolve_window(-10, -5, now) == (now - 14, now - 5)
    assert resolve_window(now - 100, now - 50, now) == (now - 100, now - 50)    # unix times
    assert resolve_window(5, 0, now) == (now - 4, now)          # within 3 years of 0: relative, either sign
    assert resolve_window(-5, 5, now) == (now - 9, now - 5)
    assert resolve_window(0, 0, now) == (now - 599, now)        # no after: the last 600 s
    assert resolve_window(now - 50, now - 100, now) == (now - 100, now - 50)    # backwards: swapped
    assert resolve_window(now - 5, now + 100, now) == (now - 105, now)          # into the future: shifted back


def test_unknown_chart_no_chart_and_no_dimension_matched_answer_as_the_agent_does(replay):
    for query, code in (('chart=no.such_chart&after=-10', 404), ('after=-10', 400),
                        ('chart=system.cpu&after=-10&dimensions=nothing_like_it', 404)):
        with pytest.raises(urllib.error.HTTPError) as e:
            get(replay, '/api/v1/data?' + query)
        assert e.value.code == code and e.value.headers['Content-Type'].startswith('text/plain')


def test_dimensions_are_picked_by_id_or_name_each_a_pattern(recording, tmp_path):
    # ids that are not their names; a name with a space and brackets: only '*' is a wildcard,
    # and only ',' and '|' separate
    path = with_dimensions(recording, str(tmp_path / 'rec'), {
        'system.ram': [('ram-used', 'used'), ('ram-cached', 'cached')],
        'system.forks': [('t1', 'temp [1]'), ('late', 'late')]})
    rec = Recording(path)
    with ReplayServer(rec, ReplayClock(rec.start + 600, stepped=True)) as server:
        def labels(chart, dims):
            return get(server, '/api/v1/data?chart={}&after=-5&dimensions={}'.format(chart, dims))['labels'][1:]
        assert labels('system.ram', 'ram-used') == ['used']               # by id
        assert labels('system.ram', 'cached') == ['cached']               # by name
        assert labels('system.ram', 'ram-*') == ['used', 'cached']
        assert labels('system.cpu', 'us*|idle') == ['user', 'idle']       # a hidden one when asked for
        assert labels('system.forks', 'temp%20[1]') == ['temp [1]']
        assert labels('system.forks', 'temp%20?1?,late') == ['late']        # '?' is no wildcard


def test_real_time_clock_runs_at_speed():
    fake = [100.0]
    clock = ReplayClock(5000, speed=10, wall=lambda: fake[0])
    fake[0] += 3
    assert clock.now() == 5030


def test_netdata_pandas_reads_the_replay(replay, capsys):
    from collector.training_window import fetch_training_frame
    df, times, problems = fetch_training_frame({replay.host: ['system.cpu', 'system.load', 'no.such']}, -120, 0)
    # an agent answers HTTP 404 for a chart it has nothing of: no data, not a failed read (an
    # agent seconds old lists charts it has not stored yet), and netdata-pandas' own error
    # print of it never reaches stdout
    assert not any('no.such' in p for p in problems) and not any('no.such' in c for c in df.columns)
    assert capsys.readouterr().out == ''
    assert len(df) == 120
    assert times[0] == START + 600 - 119 and times[-1] == START + 600   # unix seconds, oldest first
    assert '{}::system.cpu|user'.format(replay.host) in df.columns
    assert not df.iloc[5:].isna().any().any()   # system.load's 5 s rows are forward filled


def _ram_read_slowly(monkeypatch):
    """The replay's stored rows of system.ram answered 2 s late (netdata-pandas, asked with a
    1 s timeout, leaves the chart out); skips where netdata-pandas does not import."""
    import collector.replay as replay_mod
    try:
        import netdata_pandas.data  # noqa: F401
    except Exception:   # Python 3.13+: no trio that it can use, and every chart is read on its own anyway
        pytest.skip('netdata-pandas does not import here')
    body = replay_mod.data_body

    def slow(recording, chart, *a, **k):
        if chart == 'system.ram':
            time.sleep(2)
        return body(recording, chart, *a, **k)
    monkeypatch.setattr(replay_mod, 'data_body', slow)


def test_charts_netdata_pandas_drops_at_its_time_limit_are_read_one_by_one(replay, monkeypatch):
    """netdata-pandas gives every chart one time limit together and leaves out, without a word,
    those not read by then (hundreds of charts of four hours from a slow agent): the training
    said 'the agent sent no data' for them. They are read again on their own, and once they
    are, there is nothing to warn about."""
    from collector.training_window import fetch_training_frame
    _ram_read_slowly(monkeypatch)
    df, times, problems = fetch_training_frame({replay.host: ['system.cpu', 'system.ram']}, -120, 0, timeout=1)
    assert {c.split('::')[1].split('|')[0] for c in df.columns} == {'system.cpu', 'system.ram'}
    assert not df.iloc[5:].isna().any().any()
    assert problems == []   # every chart read: nothing for the log to warn about


def test_a_chart_slow_enough_to_hold_back_every_first_model_is_named(replay, monkeypatch):
    """One chart whose stored rows come seconds after the others' (netdata-pandas gives up on
    it, and its read on its own waits for it): every chart's first model waits for it, and
    nothing said which chart that was. The line names it and how long it took."""
    from collector import training_window
    _ram_read_slowly(monkeypatch)
    monkeypatch.setattr(training_window, 'SLOW_READ_S', 1.5)   # (the job's 5 s, shortened for the test)
    df, times, problems = training_window.fetch_training_frame({replay.host: ['system.cpu', 'system.ram']},
                                                               -120, 0, timeout=1)
    assert {c.split('::')[1].split('|')[0] for c in df.columns} == {'system.cpu', 'system.ram'}
    assert len(problems) == 1 and problems[0].startswith(
        'netdata-pandas read 1 of the 2 charts asked of {}, read the other 1 one by one (system.ram), which took '
        .format(replay.host)) and problems[0].endswith(' s more: every model of this training waited for it'), problems


def test_netdata_pandas_failing_is_said_even_when_every_chart_is_then_read(replay, monkeypatch):
    """netdata-pandas raising (a library update that no longer takes our patch, say) costs
    nothing, as every chart is then read on its own, but it is said: otherwise every training
    would read its charts one by one without a word why."""
    from collector.training_window import fetch_training_frame
    try:
        import netdata_pandas.data as ndp
    except Exception:   # Python 3.13+: no trio that it can use, and every chart is read on its own anyway
        pytest.skip('netdata-pandas does not import here')

    def broken(*a, **k):
        raise TypeError("get() got an unexpected keyword argument 'ssl_context'")
    monkeypatch.setattr(ndp, 'get_data', broken)
    df, times, problems = fetch_training_frame({replay.host: ['system.cpu', 'system.ram']}, -120, 0)
    assert {c.split('::')[1].split('|')[0] for c in df.columns} == {'system.cpu', 'system.ram'}
    assert problems == ["netdata-pandas failed on {} (TypeError: get() got an unexpected keyword argument "
                        "'ssl_context'), read chart by chart".format(replay.host)], problems


def test_a_host_down_in_a_training_read_is_told_without_repeating_the_logs_prefix(replay):
    """The job logs these lines as 'training data: ...': a custom model's other node, down,
    read 'training data: training data request to ... failed'."""
    from collector.training_window import fetch_training_frame
    try:
        import netdata_pandas.data  # noqa: F401
    except Exception:   # Python 3.13+: every chart is read on its own, and that path says it otherwise
        pytest.skip('netdata-pandas does not import here')
    down = '127.0.0.1:19849'   # nothing listens there
    df, times, problems = fetch_training_frame({replay.host: ['system.cpu'], down: ['system.cpu']}, -120, 0)
    assert {c.split('::')[0] for c in df.columns} == {replay.host}
    told = [p for p in problems if down in p]
    assert told and told[0].startswith('request to {} failed: '.format(down)), problems
    assert not any(p.startswith('training data') for p in problems), problems


def test_record_a_replayed_agent_round_trips(replay, tmp_path):
    """record --past from the replay: the new recording serves the same bodies."""
    import io
    from collector.record import RecordError, record
    out = str(tmp_path / 'rec')
    labels = tmp_path / 'labels.json'
    labels.write_text(json.dumps({'incidents': []}))
    stream = io.StringIO()
    failed = record(replay.host, 120, out, past=True, charts_regex=r'system\.(cpu|load)$', labels=str(labels),
                    stream=stream)
    assert failed == []
    assert '2/2' in stream.getvalue()     # the progress bar reached the end
    meta = json.load(open(os.path.join(out, 'recording.json')))
    assert meta['end'] - meta['start'] == 120 and meta['netdata_version'] == 'v1.37.1'
    assert sorted(json.load(open(os.path.join(out, 'charts.json')))['charts']) == ['system.cpu', 'system.load']
    assert os.path.exists(os.path.join(out, 'labels.json'))
    assert 'system.cpu' in json.load(open(os.path.join(out, 'allmetrics.sample.json')))
    again = Recording(out)
    with ReplayServer(again, ReplayClock(again.end, stepped=True)) as server2:
        assert data(server2, 'system.cpu', again.start, again.end) == data(replay, 'system.cpu', again.start, again.end)
    # why, as the job's own client says it (not the HTTP library's wrapper's name alone)
    with pytest.raises(RecordError, match='cannot reach .*: ConnectionRefusedError: .*Connection refused'):
        record('127.0.0.1:9', 10, str(tmp_path / 'x'), past=True, stream=io.StringIO())


def test_record_reads_an_agent_behind_basic_authentication(replay, tmp_path, monkeypatch):
    """An agent behind a proxy with basic authentication (as a job's username and password
    keys reach it): record takes --username, its password from the environment, not ps."""
    import base64
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from collector import cli

    class Proxy(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            if self.headers.get('Authorization') != 'Basic ' + base64.b64encode(b'netdata:secret').decode():
                self.send_response(401)
                self.send_header('Content-Length', '0')
                self.end_headers()
                return
            with urllib.request.urlopen('http://{}{}'.format(replay.host, self.path), timeout=10) as r:
                body = r.read()
            self.send_response(200)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)
    httpd = ThreadingHTTPServer(('127.0.0.1', 0), Proxy)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    host = '127.0.0.1:{}'.format(httpd.server_address[1])
    try:
        args = ['record', '--host', host, '--seconds', '60', '--past', '--charts-regex', r'system\.cpu$']
        assert cli.main(args + ['--out', str(tmp_path / 'refused')]) == 1   # (said: HTTP 401)
        monkeypatch.setenv(cli.PASSWORD_ENV, 'secret')
        assert cli.main(args + ['--out', str(tmp_path / 'rec'), '--username', 'netdata']) == 0
    finally:
        httpd.shutdown()
    assert not os.path.exists(str(tmp_path / 'refused'))
    assert sorted(json.load(open(str(tmp_path / 'rec' / 'charts.json')))['charts']) == ['system.cpu']


@pytest.mark.skipif(not shutil.which('openssl'), reason='openssl makes the test certificate')
def test_record_reads_an_https_agent_with_a_self_signed_certificate_when_told_to(tmp_path):
    """--no-tls-verify, as top's: requests took a CA bundle named in the environment
    (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE) over the session's verify=False, so the certificate
    was checked anyway, and each unchecked request printed urllib3's warning over the progress."""
    import ssl
    from conftest import ROOT
    from test_top import write_anomalies_recording
    cert, key = str(tmp_path / 'cert.pem'), str(tmp_path / 'key.pem')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=agent',
                    '-keyout', key, '-out', cert], check=True, capture_output=True)
    server = ReplayServer(Recording(write_anomalies_recording(str(tmp_path / 'rec'))),
                          ReplayClock(START + 120, stepped=True))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.httpd.socket = context.wrap_socket(server.httpd.socket, server_side=True)
    env = dict(os.environ, REQUESTS_CA_BUNDLE=ssl.get_default_verify_paths().openssl_cafile)
    env.pop('CURL_CA_BUNDLE', None)

    def record_cli(out, *more):
        return subprocess.run([sys.executable, '-m', 'collector', 'record', '--host', server.host, '--protocol', 'https',
                               '--seconds', '60', '--past', '--out', str(tmp_path / out)] + list(more),
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    with server:
        checked = record_cli('checked')
        unchecked = record_cli('unchecked', '--no-tls-verify')
    assert checked.returncode == 1 and 'certificate' in checked.stderr.lower(), checked.stderr
    assert unchecked.returncode == 0 and 'Warning' not in unchecked.stderr, unchecked.stderr
    assert os.path.isfile(str(tmp_path / 'unchecked' / 'recording.json'))


def test_record_past_before_ends_the_window_where_asked(replay, tmp_path):
    """``record --past --before T``: the window is the ``seconds`` up to T, not up to now, so the
    recording process starting up stays out of it; a T in the agent's future is capped at now."""
    import io
    from collector.record import record
    newest = START + 600
    for before, end in ((newest - 30, newest - 30), (newest + 1000, newest - 1)):
        out = str(tmp_path / 'rec{}'.format(before))
        told = io.StringIO()
        assert record(replay.host, 60, out, past=True, charts_regex=r'system\.cpu$', stream=told,
                      before=before) == []
        meta = json.load(open(os.path.join(out, 'recording.json')))
        assert (meta['start'], meta['end']) == (end - 60, end)
        rows = Recording(out).chart_rows('system.cpu')[1]
        assert rows[-1] == end
        # a window moved from where it was asked is said so
        assert ('past the agent\'s newest second: the window ends at {}'.format(end) in told.getvalue()) == (before > end)
    r = subprocess.run([sys.executable, '-m', 'collector', 'record', '--host', replay.host, '--seconds', '10',
                        '--out', str(tmp_path / 'live'), '--before', str(newest)], capture_output=True, text=True)
    assert r.returncode == 1 and '--before needs --past' in r.stderr and r.stdout == ''


def test_record_checks_its_arguments_before_the_window_and_never_mixes_recordings(replay, tmp_path):
    import io
    from collector.record import RecordError, record
    existing = tmp_path / 'existing'
    existing.mkdir()
    (existing / 'recording.json').write_text('{}')
    afile = tmp_path / 'afile'
    afile.write_text('x')
    bad_labels = tmp_path / 'bad.json'
    bad_labels.write_text('[1, 2]')
    live = dict(past=False, stream=io.StringIO(), sleep=lambda s: pytest.fail('waited for the window'))
    for kwargs, told in (
            (dict(out=str(existing)), 'is not empty'),
            (dict(out=str(afile)), 'is a file'),
            (dict(out=str(tmp_path / 'r1'), charts_regex='['), '--charts-regex'),
            (dict(out=str(tmp_path / 'r2'), labels=str(tmp_path / 'missing.json')), 'missing.json'),
            (dict(out=str(tmp_path / 'r3'), labels=str(bad_labels)), 'needs an "incidents" list'),
            (dict(out=str(tmp_path / 'r6'), seconds=86401), '--seconds 86401: at most 86400')):
        with pytest.raises(RecordError, match=told):
            record(replay.host, **dict(live, **dict(dict(seconds=3600), **kwargs)))
    assert sorted(os.listdir(existing)) == ['recording.json'] and afile.read_text() == 'x'
    assert not any((tmp_path / r).exists() for r in ('r1', 'r2', 'r3', 'r6'))   # nothing half-made left behind
    with pytest.raises(RecordError, match='cannot reach'):
        record('127.0.0.1:9', 10, str(tmp_path / 'r4'), past=True, stream=io.StringIO())
    assert not (tmp_path / 'r4').exists()
    # an empty folder given is left empty, so the same command works once the agent answers
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(RecordError, match='cannot reach'):
        record('127.0.0.1:9', 10, str(empty), past=True, stream=io.StringIO())
    assert os.listdir(empty) == []
    assert record(replay.host, 10, str(empty), past=True, charts_regex=r'system\.cpu$', stream=io.StringIO()) == []
    # labels that evaluate would refuse the recording for are refused before anything is recorded
    elsewhere = tmp_path / 'elsewhere.json'
    elsewhere.write_text(json.dumps({'incidents': [{'kind': 'cpu', 'start': START - 5000, 'end': START - 4900,
                                                    'expected_charts': ['system.cpu']}]}))
    with pytest.raises(RecordError, match='incident 1 starts at {}, outside the window'.format(START - 5000)):
        record(replay.host, 60, str(tmp_path / 'r5'), past=True, labels=str(elsewhere), stream=io.StringIO())
    assert not (tmp_path / 'r5').exists()


def test_a_chart_recorded_with_no_dimensions_is_served_as_its_times_not_a_dropped_connection(tmp_path):
    """A chart whose /api/v1/data answer has 'time' alone for labels failed every request for it
    (IndexError in the server, the connection dropped)."""
    from conftest import write_recording
    path = write_recording(str(tmp_path / 'rec'))
    with gzip.open(os.path.join(path, 'data', 'system.ram.json.gz'), 'wt') as f:
        json.dump({'labels': ['time'], 'data': [[START + i] for i in range(600, -1, -1)]}, f)
    with ReplayServer(Recording(path), ReplayClock(START + 600, stepped=True)) as server:
        body, beside = data(server, 'system.ram', -60, 0), data(server, 'system.cpu', -60, 0)
    assert body['labels'] == ['time'] and [r[:1] for r in beside['data']] == body['data'], body


def test_record_into_an_empty_out_is_refused_not_written_into_the_current_folder(replay, tmp_path, monkeypatch):
    """``--out "$DIR"`` with DIR unset: the recording must not land among (or over) the files
    of the folder the command was run from."""
    import io
    from collector.record import RecordError, record
    (tmp_path / 'recording.json').write_text('{"start": 1, "end": 2}')
    monkeypatch.chdir(tmp_path)
    for out in ('', ' '):
        with pytest.raises(RecordError, match='--out is empty'):
            record(replay.host, 10, out, past=True, stream=io.StringIO())
    assert os.listdir(tmp_path) == ['recording.json']
    assert (tmp_path / 'recording.json').read_text() == '{"start": 1, "end": 2}'


def test_record_in_process_leaves_the_callers_sigterm_as_it_was(tmp_path):
    import signal
    from collector import cli
    mine = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        assert cli.main(['record', '--host', '127.0.0.1:9', '--seconds', '5', '--past',
                         '--out', str(tmp_path / 'r')]) == 1
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, mine)


def test_record_stopped_or_failing_midway_keeps_nothing_half_made(replay, tmp_path, monkeypatch):
    """Ctrl-C, SIGTERM or a full disk while the charts are read: no folder without its
    recording.json is left (replay and evaluate would refuse it), and one line says so."""
    import io
    from collector import record as rec_mod
    real = rec_mod._get
    for stop in (KeyboardInterrupt, OSError(28, 'No space left on device')):
        reads = []

        def stopping(session, url, timeout):
            if 'api/v1/data' in url:
                reads.append(url)
                if len(reads) == 3:
                    raise stop
            return real(session, url, timeout)
        monkeypatch.setattr(rec_mod, '_get', stopping)
        out = tmp_path / 'rec'
        shown = io.StringIO()
        with pytest.raises(type(stop) if isinstance(stop, OSError) else stop):
            rec_mod.record(replay.host, 60, str(out), past=True, charts_regex=r'system\.', stream=shown)
        assert not out.exists() and len(reads) == 3
        assert shown.getvalue().endswith('\n')   # what is printed next starts a line of its own
    monkeypatch.setattr(rec_mod, '_get', real)
    # the command: one line, no traceback, for SIGINT and SIGTERM alike, while waiting for a live window
    import signal
    import time
    for sig in (signal.SIGINT, signal.SIGTERM):
        out = tmp_path / 'live{}'.format(int(sig))
        # (a shell's background job starts with SIGINT ignored, as CI's does: the default, as at a terminal)
        p = subprocess.Popen([sys.executable, '-m', 'collector', 'record', '--host', replay.host, '--seconds', '600',
                              '--out', str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.time() + 60
        while not (out / 'data').exists() and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        p.send_signal(sig)
        stdout, stderr = p.communicate(timeout=60)
        assert p.returncode == 130 and 'record: stopped; nothing was kept' in stderr, stderr
        assert 'Traceback' not in stderr and stdout == '' and not out.exists()



def test_record_takes_no_more_than_the_agent_holds(recording, tmp_path):
    """A window reaching before the agent's history (its charts' first_entry, as a real agent
    lists them) records what the agent has and says so, not a recording.json claiming more."""
    import io
    import shutil
    from collector.record import RecordError, record
    agent = str(tmp_path / 'agent')
    shutil.copytree(recording, agent)
    body = json.load(open(os.path.join(agent, 'charts.json')))
    for c in body['charts'].values():
        c['first_entry'], c['last_entry'] = START + 100, START + 900
    json.dump(body, open(os.path.join(agent, 'charts.json'), 'w'))
    rec = Recording(agent)
    with ReplayServer(rec, ReplayClock(START + 600, stepped=True)) as server:
        stream = io.StringIO()
        out = str(tmp_path / 'long')
        assert record(server.host, 86400, out, past=True, charts_regex=r'system\.cpu$', stream=stream) == []
        meta = json.load(open(os.path.join(out, 'recording.json')))
        assert (meta['start'], meta['end']) == (START + 100, START + 599)
        assert 'the agent holds 499 s of these charts, not 86400' in stream.getvalue()
        assert Recording(out).chart_rows('system.cpu')[1][0] == START + 100
        with pytest.raises(RecordError, match="before the agent's history starts"):
            record(server.host, 10, str(tmp_path / 'early'), past=True, before=START + 50, stream=io.StringIO())


def test_a_past_window_begun_in_a_gap_of_the_agents_history_starts_at_its_first_value(recording, tmp_path):
    """An agent restarted keeps the earlier run's history, so first_entry is of that run: a
    --past window reaching back into the gap between the runs holds nulls only there, and
    recording.json starts at the first value (never after a labeled incident's start)."""
    import io
    from collector.record import record
    agent = str(tmp_path / 'agent')
    shutil.copytree(recording, agent)
    body = recorded(agent, 'system.cpu')
    body['data'] = [[r[0]] + ([None] * (len(r) - 1) if r[0] < START + 200 else r[1:]) for r in body['data']]
    with gzip.open(os.path.join(agent, 'data', 'system.cpu.json.gz'), 'wt') as f:
        json.dump(body, f)
    labels = tmp_path / 'labels.json'
    labels.write_text(json.dumps({'incidents': [{'kind': 'cpu', 'start': START + 150, 'end': START + 210,
                                                 'expected_charts': ['system.cpu']}]}))
    with ReplayServer(Recording(agent), ReplayClock(START + 600, stepped=True)) as server:
        for out, more, want in (('plain', {}, START + 200), ('labeled', {'labels': str(labels)}, START + 150)):
            stream = io.StringIO()
            assert record(server.host, 500, str(tmp_path / out), past=True, charts_regex=r'system\.cpu$',
                          stream=stream, **more) == []
            meta = json.load(open(str(tmp_path / out / 'recording.json')))
            assert (meta['start'], meta['end']) == (want, START + 599), out
            assert "no recorded chart has a value in the window's first {} s".format(want - START - 99) in \
                stream.getvalue(), stream.getvalue()
        # a window that holds values from its start, or from a few seconds in (the edge of the
        # agent's rows), is not moved, and says nothing of it
        for out, seconds in (('whole', 300), ('edge', 404)):
            stream = io.StringIO()
            assert record(server.host, seconds, str(tmp_path / out), past=True, charts_regex=r'system\.cpu$',
                          stream=stream) == []
            assert json.load(open(str(tmp_path / out / 'recording.json')))['start'] == START + 599 - seconds
            assert 'no recorded chart has a value' not in stream.getvalue()


def test_a_live_recording_waits_on_the_agents_clock(replay, tmp_path):
    """The window is the agent's [now, now + seconds]: an agent whose clock is behind ours (a
    replay, a remote host) is waited for until it has collected all of it."""
    import io
    from collector.record import record
    agent_now = START + 600
    ours = [float(agent_now + 5000)]   # our clock is far ahead of the agent's

    def sleep(s):
        replay_clock.advance(s)
        ours[0] += s
    replay_clock = replay.clock
    out = str(tmp_path / 'live')
    record(replay.host, 20, out, charts_regex=r'system\.cpu$', stream=io.StringIO(), sleep=sleep,
           clock=lambda: ours[0])
    meta = json.load(open(os.path.join(out, 'recording.json')))
    assert meta['end'] - meta['start'] == 20
    assert ours[0] - (agent_now + 5000) >= 20   # it waited the window out


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize('terminal', [False, True])
def test_a_live_recording_says_its_window_and_draws_its_bar_in_place_only_on_a_terminal(replay, tmp_path, terminal):
    """The labels of what a user does during a live window need the window's times, said as it
    begins; the progress bar redrawn every second filled a log file with 1,231 frames, and
    overwrote the prompt of the shell that starts the incidents beside it."""
    from collector.record import record

    def sleep(s):
        replay.clock.advance(s)
        ours[0] += s
    ours = [float(START + 600)]
    told = _Terminal() if terminal else io.StringIO()
    out = str(tmp_path / 'live')
    record(replay.host, 120, out, charts_regex=r'system\.', stream=told, sleep=sleep, clock=lambda: ours[0])
    meta = json.load(open(os.path.join(out, 'recording.json')))
    text = told.getvalue()
    assert 'record: recording {}..{} '.format(meta['start'], meta['end']) in text, text
    if terminal:
        assert text.count('\r') > 100, text   # redrawn each second of the wait and for each chart
    else:
        lines = text.splitlines()
        assert '\r' not in text and 10 <= len(lines) <= 25, lines   # a line a tenth, waiting and reading
        assert lines[-1].startswith('[') and 'done' in lines[-1], lines


def test_record_with_a_charts_regex_that_matches_nothing_says_how_many_charts_it_did_not_match(replay, tmp_path):
    from collector.record import RecordError, record
    with pytest.raises(RecordError, match=r"none of the agent's \d+ charts matches --charts-regex 'nomatch'"):
        record(replay.host, 10, str(tmp_path / 'r'), past=True, charts_regex='nomatch', stream=io.StringIO())
    assert not (tmp_path / 'r').exists()


def test_a_live_recording_keeps_a_chart_the_agent_created_during_the_window(tmp_path):
    """The chart list was read before the window: a chart created during it (a TCP chart at the
    first connection) was neither listed nor recorded."""
    import io
    from collector.record import record
    from conftest import write_recording
    path = write_recording(str(tmp_path / 'rec'))
    with open(os.path.join(path, 'charts.json')) as f:
        body = json.load(f)
    for c in body['charts'].values():
        c['first_entry'] = START
    body['charts']['apps.cpu']['first_entry'] = START + 610
    with open(os.path.join(path, 'charts.json'), 'w') as f:
        json.dump(body, f)
    with ReplayServer(Recording(path), ReplayClock(START + 600, stepped=True)) as server:
        ours = [0.0]

        def sleep(s):
            server.clock.advance(s)
            ours[0] += s
        # not created yet: in neither the chart list nor the values (they held it, all null, as of now)
        assert 'apps.cpu' not in get(server, '/api/v1/charts')['charts']
        assert 'apps.cpu' not in get(server, '/api/v1/allmetrics?format=json')
        out = str(tmp_path / 'live')
        assert record(server.host, 20, out, charts_regex=r'(system\.cpu|apps\.cpu)$', stream=io.StringIO(),
                      sleep=sleep, clock=lambda: ours[0]) == []
    with open(os.path.join(out, 'charts.json')) as f:
        assert sorted(json.load(f)['charts']) == ['apps.cpu', 'system.cpu']
    assert sorted(os.listdir(os.path.join(out, 'data'))) == ['apps.cpu.json.gz', 'system.cpu.json.gz']


def test_a_live_recording_keeps_a_chart_the_agent_stopped_listing_during_the_window(tmp_path):
    """A chart the agent lists as the window begins and no longer as it ends (a container
    stopped, an interface removed: the agent leaves an obsolete chart out of its list, and
    answers its data a while yet) was left out of the recording without a word, and with it
    what the incident did to it. It is recorded, named, and its replay lists it until then."""
    import io
    from collector.record import record
    from conftest import write_recording
    path = write_recording(str(tmp_path / 'rec'))
    with open(os.path.join(path, 'recording.json')) as f:
        meta = json.load(f)
    meta['charts_left'] = {'system.load': START + 605}   # the agent, served: it stops listing it then
    with open(os.path.join(path, 'recording.json'), 'w') as f:
        json.dump(meta, f)
    said = io.StringIO()
    with ReplayServer(Recording(path), ReplayClock(START + 600, stepped=True)) as server:
        ours = [0.0]

        def sleep(s):
            server.clock.advance(s)
            ours[0] += s
        assert 'system.load' in get(server, '/api/v1/charts')['charts']
        out = str(tmp_path / 'live')
        assert record(server.host, 30, out, charts_regex=r'system\.(cpu|load)$', stream=said, sleep=sleep,
                      clock=lambda: ours[0]) == []
        assert 'system.load' not in get(server, '/api/v1/charts')['charts']
    assert "record: 1 chart left the agent's chart list during the window, recorded as well: system.load" in \
        said.getvalue(), said.getvalue()
    assert sorted(os.listdir(os.path.join(out, 'data'))) == ['system.cpu.json.gz', 'system.load.json.gz']
    recorded_meta = json.load(open(os.path.join(out, 'recording.json')))
    last = recorded_meta['charts_left']['system.load']
    assert recorded_meta['start'] < last <= recorded_meta['end']
    rec = Recording(out)
    with ReplayServer(rec, ReplayClock(last, stepped=True)) as server:
        assert 'system.load' in get(server, '/api/v1/charts')['charts']
        server.clock.advance(60)
        assert 'system.load' not in get(server, '/api/v1/charts')['charts']
        assert 'system.cpu' in get(server, '/api/v1/charts')['charts']


def test_replay_refuses_settings_that_serve_nothing_and_a_busy_port_in_one_line(recording, replay):
    def replay_cli(*extra):
        return subprocess.run([sys.executable, '-m', 'collector', 'replay', recording] + list(extra),
                              capture_output=True, text=True, timeout=60)
    busy = replay.host.rsplit(':', 1)[1]
    for extra, told in ((['--port', busy], 'cannot listen on 127.0.0.1:{}'.format(busy)),
                        (['--start-offset', '5000'], '--start-offset must be 0 to 899'),
                        (['--speed', '0'], 'must be a number above 0'),
                        (['--speed', 'nan'], 'must be a number above 0'),
                        (['--port', '70000'], 'must be 0 to 65535')):
        r = replay_cli(*extra)
        assert r.returncode != 0 and told in r.stderr and 'Traceback' not in r.stderr, (extra, r.stderr)


def test_a_window_before_a_charts_first_value_is_answered_as_the_agent_does(recording, monkeypatch):
    """Empty rows for the seconds before it (on the chart's grid: a 5 s chart's first row is the
    first whose span lies in the window), and no more than 86400 rows, grouped beyond that, as
    a Netdata 1.37 agent answered (its first rows for after=-86400 were nulls from then on)."""
    from collector import replay as replay_mod
    rec = Recording(recording)   # system.load collected every 5 s, its first row 5 s in
    with ReplayServer(rec, ReplayClock(rec.start + 300, stepped=True)) as server:
        cpu = data(server, 'system.cpu', rec.start - 60, rec.start + 9, options='flip')['data']
        load = data(server, 'system.load', rec.start - 60, rec.start + 9, options='flip')['data']
        assert [r[0] for r in cpu] == list(range(rec.start - 60, rec.start + 10))
        assert all(v is None for r in cpu[:60] for v in r[1:]) and all(v is not None for v in cpu[60][1:])
        assert [r[0] for r in load] == list(range(rec.start - 55, rec.start + 10, 5))
        assert all(v is None for r in load[:12] for v in r[1:]) and load[12][1] is not None   # +5: its first
        # a 5 s chart's first row is the first after the window's start (a Netdata 1.37 agent:
        # after=...000 gave ...005 first, after=...004 too, after=...005 gave ...010)
        for after, first in ((0, 5), (4, 5), (5, 10)):
            body = data(server, 'system.load', rec.start + 10 + after, rec.start + 60, options='flip')['data']
            assert body[0][0] == rec.start + 10 + first, (after, body[0])
        # three years: 86400 rows of 1095 s, the newest holding the recording, never laid out whole
        years = data(server, 'system.cpu', -94608000, 0)['data']
        assert len(years) == 86400 and years[0][0] == rec.start + 300 and years[1][0] == rec.start + 300 - 1095
        assert years[0][1] is not None and all(v is None for v in years[1][1:])
        monkeypatch.setattr(replay_mod, 'MAX_ROWS', 100)
        grouped = data(server, 'system.cpu', -300, 0)['data']
        assert len(grouped) == 100 and grouped[0][0] == rec.start + 300


@pytest.mark.parametrize('argv, told', [
    (['record', '--seconds', 'abc', '--out', 'x'], "argument --seconds: must be a whole number, got 'abc'"),
    (['replay', 'x', '--port', '20o0'], "argument --port: must be a whole number, got '20o0'"),
    (['replay', 'x', '--speed', 'fast'], "argument --speed: must be a number above 0, got 'fast'"),
    (['evaluate', 'x', '--warmup', '1.5'], "argument --warmup: must be a whole number, got '1.5'"),
])
def test_a_mistyped_number_is_told_in_the_options_words(argv, told, capsys):
    """Not argparse's "invalid _positive_int value", which names a function of the code."""
    from collector import cli
    with pytest.raises(SystemExit):
        cli.main(argv)
    err = capsys.readouterr().err
    assert told in err and 'invalid _' not in err, err


def test_replay_says_when_the_recording_ends_and_exits_0(recording):
    """A job beside it then reads a dead port: the replay's own log says why."""
    r = subprocess.run([sys.executable, '-m', 'collector', 'replay', recording, '--port', '0',
                        '--start-offset', '897', '--speed', '2'], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and 'replay: the recording ended' in r.stderr, r.stderr


def test_a_mistyped_recording_folder_is_said_as_evaluate_says_it(tmp_path, capsys):
    """Not the recording.json inside it that the replay would have read first."""
    from collector import cli
    for command in ('replay', 'evaluate'):
        assert cli.main([command, str(tmp_path / 'nope')]) == 1
        err = capsys.readouterr().err
        assert 'no such f' in err and str(tmp_path / 'nope') in err and 'recording.json' not in err, err


def test_replay_step_takes_only_a_number_of_seconds(replay):
    before = get(replay, '/replay/now')['now']
    for bad in ('abc', 'nan', '-5'):
        with pytest.raises(urllib.error.HTTPError) as e:
            get(replay, '/replay/step?seconds=' + bad, method='POST')
        assert e.value.code == 400
    assert get(replay, '/replay/now')['now'] == before
    assert get(replay, '/replay/step?seconds=2', method='POST')['now'] == before + 2
    assert data(replay, 'system.cpu', -10, 0)['data']   # the clock still serves


def test_a_damaged_chart_entry_costs_that_chart_alone(recording, tmp_path):
    import io
    import shutil
    damaged = str(tmp_path / 'damaged')
    shutil.copytree(recording, damaged)
    body = json.load(open(os.path.join(damaged, 'charts.json')))
    body['charts']['system.load']['dimensions'] = []
    body['charts']['system.ram'] = 'system.ram'
    json.dump(body, open(os.path.join(damaged, 'charts.json'), 'w'))
    log = io.StringIO()
    rec = Recording(damaged, log=log)
    assert 'chart system.load is not an object' in log.getvalue() and 'chart system.ram' in log.getvalue()
    with ReplayServer(rec, ReplayClock(START + 600, stepped=True)) as server:
        served = get(server, '/api/v1/allmetrics?format=json')
        assert 'system.cpu' in served and 'system.load' not in served and 'system.ram' not in served
        assert 'system.ram' not in get(server, '/api/v1/charts')['charts']


def test_a_data_file_of_another_shape_costs_that_chart_alone(recording, tmp_path):
    """A body that reads as JSON but is no /api/v1/data answer (its labels not a list of names)
    or holds a number past 1e308: that chart answers as not recorded, not every request for it
    with a dropped connection."""
    import io
    import shutil
    damaged = str(tmp_path / 'damaged')
    shutil.copytree(recording, damaged)
    with gzip.open(os.path.join(damaged, 'data', 'system.load.json.gz'), 'wt') as f:
        f.write('{"labels": "time", "data": []}')
    with gzip.open(os.path.join(damaged, 'data', 'system.ram.json.gz'), 'wt') as f:
        f.write('{"labels": ["time", "used"], "data": [[%d, 1e999]]}' % (START + 10))
    log = io.StringIO()
    with ReplayServer(Recording(damaged, log=log), ReplayClock(START + 600, stepped=True)) as server:
        for chart in ('system.load', 'system.ram'):
            with pytest.raises(urllib.error.HTTPError) as e:
                data(server, chart, -60, 0)
            assert e.value.code == 404
        assert data(server, 'system.cpu', -60, 0)['data']
        served = get(server, '/api/v1/allmetrics?format=json')
        assert 'system.cpu' in served and 'system.load' not in served and 'system.ram' not in served
    assert 'system.load.json.gz: ValueError: not a /api/v1/data body' in log.getvalue(), log.getvalue()
    assert 'system.ram.json.gz: ValueError: an infinite value' in log.getvalue(), log.getvalue()


def test_a_number_out_of_any_range_in_a_query_is_answered(replay):
    """``after=1e400`` and the like: answered as the agent answers (a window held at the range's
    end), not a request dropped with a traceback on the replay's stderr."""
    for after in ('1e400', '-inf', '-99999999999999999999', '99999999999999999999'):
        assert 'labels' in data(replay, 'system.cpu', after, 0)
    assert 'labels' in data(replay, 'system.cpu', -60, 0, points='1e400')
    assert data(replay, 'system.cpu', 'nan', 0)['data'] == data(replay, 'system.cpu', -600, 0)['data']


def test_a_client_that_resets_its_connection_leaves_no_traceback(replay, capfd):
    """A job stopped mid-read or ``curl ... | head`` resets its kept-alive connection: the replay
    goes on serving and says nothing of it."""
    import socket
    import struct
    host, port = replay.host.rsplit(':', 1)
    for _ in range(3):
        sock = socket.create_connection((host, int(port)))
        sock.sendall(b'GET /api/v1/data?chart=system.cpu&after=-600 HTTP/1.1\r\nHost: x\r\n\r\n')
        sock.recv(100)   # part of the answer read, the rest left unread: the close is a reset
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        sock.close()
    time.sleep(0.5)
    assert data(replay, 'system.cpu', -10, 0)['data']
    assert 'Traceback' not in capfd.readouterr().err


def test_record_keeps_going_when_a_chart_fails(replay, tmp_path, monkeypatch):
    import io
    from collector import record as rec_mod
    real = rec_mod._get

    def flaky(session, url, timeout):
        if 'chart=system.load' in url:
            raise rec_mod.RecordError('{} answered HTTP 500'.format(url))
        if 'chart=system.ram' in url:   # a busy agent's 200 that is no data
            return b'{"error": "busy"}'
        return real(session, url, timeout)
    monkeypatch.setattr(rec_mod, '_get', flaky)
    out = str(tmp_path / 'rec')
    failed = rec_mod.record(replay.host, 60, out, past=True, charts_regex=r'system\.', stream=io.StringIO())
    assert failed == ['system.load', 'system.ram']
    assert json.load(open(os.path.join(out, 'recording.json')))['failed_charts'] == ['system.load', 'system.ram']
    assert os.path.exists(os.path.join(out, 'data', 'system.cpu.json.gz'))
    # the chart list holds the charts recorded, as the replay then serves them
    listed = json.load(open(os.path.join(out, 'charts.json')))['charts']
    assert 'system.cpu' in listed and 'system.load' not in listed and 'system.ram' not in listed


@pytest.mark.parametrize('failed, told', [
    (['system.ram'], 'record: 1 chart failed and was left out: system.ram'),
    (['c{}'.format(i) for i in range(12)], 'record: 12 charts failed and were left out: c0, c1, c2, c3, c4, c5, c6, '
                                           'c7, c8, c9 (+2 more)')])
def test_record_tells_how_many_charts_failed(failed, told, tmp_path, monkeypatch, capsys):
    """'1 charts failed', and a list cut at ten without a word of the rest."""
    import argparse
    from collector import cli, record as rec_mod
    monkeypatch.setattr(rec_mod, 'record', lambda *a, **k: failed)
    args = argparse.Namespace(host='127.0.0.1:9', seconds=60, out=str(tmp_path / 'rec'), past=True, charts_regex=None,
                              labels=None, description=None, protocol='http', before=None, username=None,
                              password=None, no_tls_verify=False)
    assert cli._record_command(args) == 0
    assert capsys.readouterr().err.splitlines()[0] == told


def test_record_refuses_an_agent_whose_info_is_not_json_before_any_window(replay, tmp_path, monkeypatch):
    import io
    from collector import record as rec_mod
    real = rec_mod._get
    asked = []

    def html_info(session, url, timeout):
        asked.append(url)
        return b'<html>proxy error</html>' if url.endswith('/api/v1/info') else real(session, url, timeout)
    monkeypatch.setattr(rec_mod, '_get', html_info)
    with pytest.raises(rec_mod.RecordError, match='api/v1/info did not answer like a Netdata agent'):
        rec_mod.record(replay.host, 60, str(tmp_path / 'rec'), past=True, stream=io.StringIO())
    assert len(asked) == 1 and not os.path.exists(str(tmp_path / 'rec'))


@pytest.mark.parametrize('path, body', [
    ('/api/v1/charts', b'{"charts": ["system.cpu", "system.load"]}'),
    ('/api/v1/allmetrics', b'{"system.cpu": {"last_updated": "soon"}}')])
def test_record_refuses_an_agent_that_answers_something_else_in_one_line(replay, tmp_path, monkeypatch, path, body):
    import io
    from collector import record as rec_mod
    real = rec_mod._get
    monkeypatch.setattr(rec_mod, '_get', lambda s, url, t: body if path in url else real(s, url, t))
    if 'allmetrics' in path:   # a time that is not a number is not the agent's time; no time at all: ours
        out = str(tmp_path / 'rec')
        assert rec_mod.record(replay.host, 5, out, charts_regex=r'system\.cpu$', past=True,
                              stream=io.StringIO(), clock=lambda: START + 600) == []
        return
    with pytest.raises(rec_mod.RecordError, match='{} did not answer like a Netdata agent'.format(path)):
        rec_mod.record(replay.host, 60, str(tmp_path / 'rec'), past=True, stream=io.StringIO())
    assert not os.path.exists(str(tmp_path / 'rec'))


def test_record_reads_an_allmetrics_answer_with_a_value_that_is_not_finite(replay, tmp_path, monkeypatch):
    """Netdata prints a dimension's last value of +-inf in allmetrics as C does, a bare inf (1.37
    and 2.x before its newest releases, which print null): one such value among hundreds of
    charts is still an agent's answer, recorded as it came."""
    import io
    from collector import record as rec_mod
    import requests
    real = rec_mod._get
    body = real(requests.Session(), 'http://{}/api/v1/allmetrics?format=json'.format(replay.host), 10)
    body = re.sub(rb'("guest":\{"name":"guest","value":)[^}]*', rb'\1 inf', body)
    body = re.sub(rb'("system":\{"name":"system","value":)[^}]*', rb'\1 -inf', body, count=1)
    assert b' inf' in body and b' -inf' in body
    monkeypatch.setattr(rec_mod, '_get', lambda s, url, t: body if 'allmetrics' in url else real(s, url, t))
    out = str(tmp_path / 'rec')
    assert rec_mod.record(replay.host, 30, out, charts_regex=r'system\.cpu$', past=True, stream=io.StringIO()) == []
    with open(os.path.join(out, 'allmetrics.sample.json'), 'rb') as f:
        assert f.read() == body


def test_record_says_what_a_2x_agent_refusing_it_means(replay, tmp_path, monkeypatch):
    """Netdata 2.x answers /api/v1/info with 503 while it starts, and 451 to an address its [web]
    'allow ... from' settings keep out: said with what it means, not as a bare status."""
    import io
    import requests
    from collector import record as rec_mod

    class Answer:
        def __init__(self, status, content):
            self.status_code, self.content = status, content

    class Session:
        answer = None

        def get(self, url, timeout, verify=True):
            return self.answer
    for status, content, meaning in ((503, b'', 'while it starts'),
                                     (451, b'You need to be authorized to access this resource', "'allow ... from'")):
        Session.answer = Answer(status, content)
        monkeypatch.setattr(requests, 'Session', Session)
        with pytest.raises(rec_mod.RecordError) as e:
            rec_mod.record(replay.host, 30, str(tmp_path / str(status)), past=True, stream=io.StringIO())
        assert '/api/v1/info answered HTTP {}'.format(status) in str(e.value) and meaning in str(e.value), e.value


def test_allmetrics_filter_like_the_agent(replay):
    body = get(replay, '/api/v1/allmetrics?format=json&filter=system.cpu%20system.load')
    assert sorted(body) == ['system.cpu', 'system.load']
    body = get(replay, '/api/v1/allmetrics?format=json&filter=!system.cpu%20system.*')
    assert 'system.cpu' not in body and 'system.ram' in body and 'apps.cpu' not in body


def test_a_window_read_leaves_out_hidden_dimensions_unless_asked_like_the_agent(replay):
    # as Netdata 1.37.1 answers: system.cpu's idle, hidden, only with a dimensions pattern
    plain = get(replay, '/api/v1/data?chart=system.cpu&after=-5&format=json')
    everything = get(replay, '/api/v1/data?chart=system.cpu&after=-5&format=json&dimensions=*')
    listed = get(replay, '/api/v1/charts')['charts']['system.cpu']['dimensions']
    assert plain['labels'][1:] == [d['name'] for d in listed.values()]
    assert everything['labels'][1:] == plain['labels'][1:] + ['idle']
    assert len(everything['data'][0]) == len(plain['data'][0]) + 1


def test_direct_window_read_equals_netdata_pandas(replay):
    """Where netdata-pandas cannot run (Python 3.13+), the window is read directly, the same way."""
    from collector.training_window import _fetch_directly, fetch_training_frame
    charts = {replay.host: ['system.cpu', 'system.load', 'no.such']}
    direct, times, problems = _fetch_directly(charts, -120, 0, 'http', None, None, True, 10, 0, 'why')
    assert problems == [] and not any('no.such' in c for c in direct.columns)   # HTTP 404: no data yet, no failure
    assert times[0] == START + 600 - 119 and len(direct) == 120
    # a hidden dimension is read too: each step's allmetrics has it
    assert '{}::system.cpu|idle'.format(replay.host) in direct.columns
    try:
        import netdata_pandas.data  # noqa: F401
    except Exception:
        return  # nothing to compare with here
    df, times2, _ = fetch_training_frame(charts, -120, 0)
    assert list(df.columns) == list(direct.columns)
    assert np.allclose(df.to_numpy(), direct.to_numpy(), equal_nan=True) and np.array_equal(times, times2)


PROJECT_RECORDINGS = sorted(glob.glob(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                   'recordings', '*', 'recording.json')))


@pytest.mark.parametrize('meta', PROJECT_RECORDINGS, ids=lambda p: os.path.basename(os.path.dirname(p)))
def test_shipped_recordings_serve_every_incident_and_its_expected_charts(meta):
    """``python -m collector evaluate recordings/...`` needs each incident inside the recording,
    after the history a model needs (``train_min_n_secs``), with at least one of its expected
    charts recorded there."""
    rec = Recording(os.path.dirname(meta))
    incidents = rec.labels['incidents']
    assert len(incidents) >= 5
    for inc in incidents:
        assert rec.start + 300 < inc['start'] < inc['end'] < rec.end
        charts = [c for c in inc['expected_charts'] if rec.chart_rows(c) is not None]
        assert charts, inc['kind']
        _, times, values = rec.chart_rows(charts[0])
        assert times[0] <= inc['start'] and times[-1] >= inc['end'] and np.isfinite(values).any()


@pytest.mark.parametrize('name, body, told', [
    ('recording.json', '{"start": 1}', 'needs "start" and "end"'),
    ('recording.json', '{"start": true, "end": 1700000900}', 'needs "start" and "end"'),   # not 1970
    ('charts.json', '{"charts": ', 'charts.json: Expecting value'),
    ('labels.json', '{"incidents": [{"start": 5, "kind": "cpu"}]}', 'incident 1 needs finite numeric'),
    ('labels.json', '{"incidents": [{"start": 5, "end": 9, "expected_charts": [["system.cpu"]]}]}',
     'incident 1 needs finite numeric'),
    # an end that never comes would count the rest of the recording as incident, no time as clean
    ('labels.json', '{"incidents": [{"start": 1700000700, "end": Infinity}]}', 'incident 1 needs finite numeric'),
    ('labels.json', '{"incidents": [{"start": 1700000700, "end": NaN}]}', 'incident 1 needs finite numeric'),
    # with no chart to be found on, or no kind, an incident would only be scored as missed
    ('labels.json', '{"incidents": [{"start": 1700000700, "end": 1700000760, "kind": "cpu"}]}',
     'incident 1 needs finite numeric'),
    ('labels.json', '{"incidents": [{"start": 1700000700, "end": 1700000760, "expected_charts": ["system.cpu"]}]}',
     'incident 1 needs finite numeric'),
    ('labels.json', '{"incidents": [{"start": 1700000700, "end": 1700000760, "kind": "cpu", "expected_charts": []}]}',
     'incident 1 needs finite numeric'),
])
def test_a_recording_whose_own_files_are_broken_is_refused_naming_the_file(recording, tmp_path, name, body, told):
    import shutil
    broken = str(tmp_path / 'broken')
    shutil.copytree(recording, broken)
    with open(os.path.join(broken, name), 'w') as f:
        f.write(body)
    # a replay serves the agent's answers, which its labels do not change: it says what is wrong and serves
    quick = ['--port', '0', '--start-offset', '897', '--speed', '2']
    for command in (['evaluate', broken, '--quiet'], ['replay', broken] + quick):
        r = subprocess.run([sys.executable, '-m', 'collector'] + command, capture_output=True, text=True,
                           timeout=60, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        assert told in r.stderr and name in r.stderr and 'Traceback' not in r.stderr, r.stderr
        if command[0] == 'replay' and name == 'labels.json':
            assert r.returncode == 0 and 'served without its labels' in r.stderr and 'replaying' in r.stderr
            assert 'replay: the recording ended' in r.stderr, r.stderr
        else:
            assert r.returncode == 1 and r.stdout == '', (command, r.stdout)


def test_allmetrics_gives_the_last_collected_value_when_the_recording_ends_before_a_collection(tmp_path):
    """A recording taken up to the agent's newest second ends, for a chart collected every 5 s,
    with a row the agent had not collected yet (all null). The agent itself would answer with
    the last value it collected, so the job does not read the chart as gone at the last step."""
    from conftest import write_recording
    path = write_recording(str(tmp_path / 'rec'))
    f = os.path.join(path, 'data', 'system.load.json.gz')
    body = recorded(path, 'system.load')
    end = body['data'][0][0]
    body['data'].insert(0, [end + 5, None, None, None])      # newest first
    with gzip.open(f, 'wt') as fh:
        json.dump(body, fh)
    rec = Recording(path)
    with ReplayServer(rec, ReplayClock(end + 5, stepped=True)) as server:
        load = get(server, '/api/v1/allmetrics?format=json')['system.load']
        assert load['last_updated'] == end
        assert [d['value'] for d in load['dimensions'].values()] == body['data'][1][1:]
        # the stored rows are served as recorded, the null row included
        assert data(server, 'system.load', end, end + 5)['data'][0] == [end + 5, None, None, None]


def test_training_window_reads_a_dimension_gone_from_its_chart_as_zero(tmp_path):
    """A group whose processes ended is null in the agent's rows while its chart's other
    dimensions have values: the training window reads it as 0 (not its last value carried on),
    on both ways of reading the window, and a chart collected every 5 s still repeats its last
    value between collections. One with no value in the whole window stays out on both: read
    directly it was a column of zeros, a model of a group that never ran, whose first value when
    it came back was scored as a still dimension moving, not trained as a new one."""
    from collector.training_window import _fetch_directly, fetch_training_frame
    from conftest import write_recording
    path = write_recording(str(tmp_path / 'rec'))
    f = os.path.join(path, 'data', 'system.cpu.json.gz')
    body = recorded(path, 'system.cpu')
    guest = body['labels'].index('guest')
    system = body['labels'].index('system')
    for row in body['data']:
        if row[0] > START + 550:
            row[guest] = None
        elif row[0] > START + 500:
            row[guest] = 40.0        # busy until it ended
        if row[0] > START + 400:
            row[system] = None       # gone before the window
    with gzip.open(f, 'wt') as fh:
        json.dump(body, fh)
    rec = Recording(path)
    with ReplayServer(rec, ReplayClock(rec.start + 600, stepped=True)) as server:
        charts = {server.host: ['system.cpu', 'system.load']}
        # netdata-pandas where it runs (the window read directly where it cannot), and directly
        frames = [fetch_training_frame(charts, -120, 0)[0],
                  _fetch_directly(charts, -120, 0, 'http', None, None, True, 10, 0, 'why')[0]]
        for df in frames:
            col = df['{}::system.cpu|guest'.format(server.host)]
            assert (col[col.index <= START + 550].iloc[-1], col[col.index > START + 550].max()) == (40.0, 0.0)
            load = df['{}::system.load|load1'.format(server.host)]
            assert not load.iloc[5:].isna().any() and load.iloc[5:].nunique() < len(load) // 4
            assert '{}::system.cpu|system'.format(server.host) not in df.columns
        assert list(frames[0].columns) == list(frames[1].columns)


def test_a_time_given_twice_in_one_charts_window_costs_no_chart(tmp_path):
    """The agent answered one chart's window with a row repeated: netdata-pandas cannot join
    it with the other charts, so that host is read chart by chart, the repeated time is kept
    once, and every chart trains, with the problem named."""
    from collector.training_window import fetch_training_frame
    from conftest import write_recording
    path = write_recording(str(tmp_path / 'rec'))
    body = recorded(path, 'system.ram')
    k = len(body['data']) - 300
    body['data'].insert(k, list(body['data'][k]))
    with gzip.open(os.path.join(path, 'data', 'system.ram.json.gz'), 'wt') as fh:
        json.dump(body, fh)
    rec = Recording(path)
    with ReplayServer(rec, ReplayClock(rec.start + 600, stepped=True)) as server:
        df, times, problems = fetch_training_frame({server.host: ['system.cpu', 'system.ram']}, -600, 0)
    assert len(set(times)) == len(times) >= 590
    assert {c.split('::')[1].split('|')[0] for c in df.columns} == {'system.cpu', 'system.ram'}
    assert not df.iloc[5:].isna().any().any()
    assert any('system.ram (1 time given twice, the last row kept)' in p for p in problems), problems


def test_the_chart_list_is_the_agents_at_the_replay_clock(tmp_path):
    """A chart the agent created during the recording (TCP charts appear with the first
    connection) is not listed before then, and a listed chart's last entry follows the clock,
    so the job sees how long each chart has been collected as it would on the agent."""
    from conftest import write_recording
    path = write_recording(str(tmp_path / 'rec'))
    with open(os.path.join(path, 'charts.json')) as f:
        body = json.load(f)
    end = START + 900
    for cid, c in body['charts'].items():
        c['first_entry'], c['last_entry'] = START, end
    body['charts']['apps.cpu']['first_entry'] = START + 700
    with open(os.path.join(path, 'charts.json'), 'w') as f:
        json.dump(body, f)
    rec = Recording(path)
    with ReplayServer(rec, ReplayClock(START + 600, stepped=True)) as server:
        listed = get(server, '/api/v1/charts')['charts']
        assert 'apps.cpu' not in listed and listed['system.cpu']['last_entry'] == START + 600
        server.clock.advance(200)
        listed = get(server, '/api/v1/charts')['charts']
        assert listed['apps.cpu']['first_entry'] == START + 700 and listed['system.cpu']['last_entry'] == START + 800


def test_a_trimmed_recording_is_served_as_if_it_had_begun_later(tmp_path):
    """``cut`` leaves a recording's first seconds out everywhere the agent shows its history: no
    value before the new start in any window (the agent's empty rows there), and each chart's
    first entry there."""
    from collector.replay import RecordingError
    from conftest import write_recording
    path = write_recording(str(tmp_path / 'rec'))
    with open(os.path.join(path, 'charts.json')) as f:
        body = json.load(f)
    for c in body['charts'].values():
        c['first_entry'], c['last_entry'] = START, START + 900
    body['charts']['apps.cpu']['first_entry'] = START + 700   # a chart created later keeps its own
    with open(os.path.join(path, 'charts.json'), 'w') as f:
        json.dump(body, f)
    rec = Recording(path)
    rec.cut(120)
    assert rec.start == START + 120
    with ReplayServer(rec, ReplayClock(START + 600, stepped=True)) as server:
        data = get(server, '/api/v1/data?chart=system.cpu&after={}&before={}&options=flip'.format(START, START + 600))
        times = [row[0] for row in data['data'] if any(v is not None for v in row[1:])]
        assert min(times) == START + 120 and max(times) == START + 600
        assert [row[0] for row in data['data'] if row[0] < START + 120] == list(range(START, START + 120))
        listed = get(server, '/api/v1/charts')['charts']
        assert listed['system.cpu']['first_entry'] == START + 120
        server.clock.advance(200)
        assert get(server, '/api/v1/charts')['charts']['apps.cpu']['first_entry'] == START + 700
    with pytest.raises(RecordingError, match='leaves nothing'):
        Recording(path).cut(900)


def test_the_agents_time_is_read_from_its_chart_list_as_most_charts_give_it(recording, tmp_path):
    """A training's window is fixed on the agent's clock where it listed its charts (every
    batch of charts then reads the same rows): the median last entry, which a chart stopped
    long ago does not move; not told when most charts give no time."""
    import shutil
    from collector.netdata_api import NetdataApi
    with ReplayServer(Recording(recording), ReplayClock(START + 600, stepped=True)) as server:
        api = NetdataApi(server.host)
        api.charts()
        assert api.listed_at is None   # the synthetic recording's list gives no entries
    path = str(tmp_path / 'rec')
    shutil.copytree(recording, path)
    with open(os.path.join(path, 'charts.json')) as f:
        body = json.load(f)
    ids = sorted(body['charts'])
    for cid in ids:
        body['charts'][cid].update(first_entry=START, last_entry=START + 10 ** 6)   # the replay clamps to its clock
    body['charts'][ids[0]]['last_entry'] = START + 100   # stopped long ago
    with open(os.path.join(path, 'charts.json'), 'w') as f:
        json.dump(body, f)
    with ReplayServer(Recording(path), ReplayClock(START + 600, stepped=True)) as server:
        api = NetdataApi(server.host)
        api.charts()
        assert api.listed_at == START + 600


def test_a_window_of_numbers_only_is_not_copied_beside_itself():
    """numbers_only on the usual float window holds no second copy of it (a copy per column
    and a stacked one raised a 4-hour training's peak by 10-16 MiB at 37 charts)."""
    import tracemalloc
    import pandas as pd
    from collector.training_window import numbers_only
    df = pd.DataFrame(np.random.default_rng(0).normal(size=(14400, 40)), columns=['c{}|d'.format(i) for i in range(40)])
    tracemalloc.start()
    try:
        out, notes = numbers_only(df)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1.5 * df.to_numpy().nbytes and not notes
    assert np.array_equal(out.to_numpy(), df.to_numpy()) and (out.dtypes == np.float64).all()


def test_values_that_are_not_numbers_are_read_as_the_value_before_each_column_by_position():
    """numbers_only: strings, lists and integers no float holds become the value before them
    and are named; nulls stay nulls; two columns of one name are each their own column."""
    import pandas as pd
    from collector.training_window import numbers_only
    df = pd.DataFrame([[1, 'x', None, 5.0], [2, 3, None, 6.0], ['oops', 10 ** 400, None, 7.0], [4, 5, None, None]],
                      columns=['c|a', 'c|b', 'c|a', 'c|d'], index=[1.0, 2.0, 3.0, 4.0])
    out, notes = numbers_only(df)
    assert list(out.columns) == ['c|a', 'c|b', 'c|a', 'c|d'] and (out.dtypes == np.float64).all()
    values = out.to_numpy()
    assert values[:, 0].tolist() == [1.0, 2.0, 2.0, 4.0]
    assert np.isnan(values[0, 1]) and values[1:, 1].tolist() == [3.0, 3.0, 5.0]
    assert np.isnan(values[:, 2]).all() and np.isnan(values[3, 3])
    assert notes == ["1 value of c|a not a number ('oops'), read as the value before",
                     "2 values of c|b not a number ('x', 1000000000000000000000000000000000000000), read as the "
                     "value before"]


def test_a_chart_id_with_a_slash_names_no_file_outside_the_recording(recording, tmp_path):
    """A chart id comes from the agent recorded, or from a request to the replay: '../x' or
    '/x' made ``record`` write outside --out (an absolute one anywhere the user may write), and
    the replay serve any '.json.gz' file it could read."""
    import io
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs, urlparse
    from collector.record import record
    assert Recording(recording).chart_rows('../data/system.cpu') is None
    assert Recording(recording).chart_rows('system.cpu') is not None
    now = int(time.time())
    hostile = ['system.cpu', '../../escaped', str(tmp_path / 'absolute')]

    class Agent(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            url = urlparse(self.path)
            if url.path == '/api/v1/info':
                body = {'version': 'v1.37.1'}
            elif url.path == '/api/v1/charts':
                body = {'charts': {c: {'dimensions': {'a': {'name': 'a'}}, 'first_entry': now - 100,
                                       'last_entry': now} for c in hostile}}
            elif url.path == '/api/v1/allmetrics':
                body = {c: {'last_updated': now, 'dimensions': {'a': {'name': 'a', 'value': 1}}} for c in hostile}
            else:
                assert parse_qs(url.query)['chart'][0] in hostile
                body = {'labels': ['time', 'a'], 'data': [[now - i, 1.0] for i in range(1, 40)]}
            raw = json.dumps(body).encode()
            self.send_response(200)
            self.send_header('Content-Length', str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    server = ThreadingHTTPServer(('127.0.0.1', 0), Agent)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    out, stream = tmp_path / 'a' / 'b' / 'out', io.StringIO()
    try:
        failed = record('127.0.0.1:{}'.format(server.server_address[1]), 30, str(out), past=True, stream=stream)
    finally:
        server.shutdown()
        server.server_close()
    assert failed == hostile[1:]
    assert "chart '../../escaped' failed: its id is no file name" in stream.getvalue()
    assert os.listdir(str(out / 'data')) == ['system.cpu.json.gz']
    assert sorted(os.listdir(str(tmp_path))) == ['a'] and os.listdir(str(tmp_path / 'a')) == ['b']


class _Agent2x:
    """The replay's answers as Netdata 2.x lays them out (src/web/api/v1/api_v1_allmetrics.c,
    formatters/json/json.c, formatters/charts2json.c + rrdset2json.c): allmetrics one key per line
    with tabs and values as '%0.7f' (null for NaN, a bare inf where 2.x before its newest releases
    prints one); /api/v1/data's rows one per line, null for an empty value; /api/v1/charts'
    chart entries with 2.x's fields (green/red null, alarms with their duration, functions)."""

    @staticmethod
    def handler():
        from collector import replay as rp

        def number(v):
            if v is None or v != v:
                return 'null'
            return ('-inf' if v < 0 else 'inf') if v in (float('inf'), float('-inf')) else '%0.7f' % v

        def chart_text(cid, c):
            dims = ','.join('\n\t\t\t"%s": {\n\t\t\t\t"name": "%s",\n\t\t\t\t"value": %s\n\t\t\t}'
                            % (did, d['name'], number(d['value'])) for did, d in c['dimensions'].items())
            head = '\n\t"%s": {\n\t\t"name":"%s",\n\t\t"family":"%s",\n\t\t"context":"%s",\n\t\t"units":"%s",\n' % (
                cid, c['name'], c['family'], c['context'], c['units'])
            return head + '\t\t"last_updated": %d,\n\t\t"dimensions": {%s\n\t\t}\n\t}' % (c['last_updated'], dims)

        class Handler(rp._Handler):
            def _send(self, code, body):
                path = self.path.split('?')[0]
                if code != 200 or isinstance(body, bytes):
                    return super()._send(code, body)
                if path.endswith('/allmetrics'):
                    if 'system.cpu' in body:
                        body['system.cpu']['dimensions']['guest']['value'] = float('inf')
                    raw = '{' + ','.join(chart_text(cid, c) for cid, c in body.items()) + '\n}'
                elif path.endswith('/data'):
                    raw = '{\n        "labels":[%s],\n        "data":[\n%s\n        ]\n    }' % (
                        ','.join('"%s"' % label for label in body['labels']),
                        ',\n'.join('            [' + ','.join('null' if v is None else str(v) for v in row) + ']'
                                   for row in body['data']))
                elif path.endswith('/charts'):
                    for c in body['charts'].values():
                        c.update({'chart_variables': {}, 'green': None, 'red': None, 'functions': {},
                                  'alarms': {'10min_cpu_usage': {'id': '10min_cpu_usage', 'status': 'CLEAR',
                                                                 'units': '%', 'duration': 60}},
                                  'chart_labels': {'_collect_plugin': 'proc.plugin'}})
                    raw = json.dumps(body, indent=4)
                else:
                    raw = json.dumps(dict(body, version='v2.6.0', **{'cloud-enabled': True, 'ml-info': {}}), indent=4)
                raw = raw.encode()
                self.send_response(code)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
        return Handler


def test_the_job_reads_a_2x_agent_as_it_reads_1_37(recording):
    """Netdata 2.x still serves every /api/v1 answer the job reads (web_api_v1.c), in its own
    layout. Its /api/v1/data takes dimensions=X as the pattern '|X' (api_v1_data.c), so '*'
    still brings the hidden dimensions (system.cpu's idle) that each step's allmetrics has."""
    from collector.netdata_api import NetdataApi
    from collector.training_window import fetch_training_frame
    rec = Recording(recording)
    with ReplayServer(rec, ReplayClock(START + 600, stepped=True)) as plain, \
            ReplayServer(rec, ReplayClock(START + 600, stepped=True)) as new:
        new.httpd.RequestHandlerClass = _Agent2x.handler()
        old_api, new_api = NetdataApi(plain.host), NetdataApi(new.host)
        assert new_api.charts() == old_api.charts() and new_api.listed_every == old_api.listed_every
        assert new_api.agent_id() == old_api.agent_id()
        latest = new_api.allmetrics(charts=['system.cpu', 'system.load'])
        assert sorted(latest) == ['system.cpu', 'system.load']
        assert latest['system.cpu']['dimensions']['guest']['value'] == float('inf')   # a bare inf, read
        assert latest['system.cpu']['dimensions']['idle']['value'] == \
            old_api.allmetrics()['system.cpu']['dimensions']['idle']['value']
        assert new_api.data('system.cpu', -60) == old_api.data('system.cpu', -60)
        frames = [fetch_training_frame({api.host: ['system.cpu', 'system.load']}, -300, 0)
                  for api in (old_api, new_api)]
    (old_df, old_times, old_problems), (new_df, new_times, new_problems) = frames
    assert new_problems == old_problems == []
    assert [c.split('::', 1)[1] for c in new_df.columns] == [c.split('::', 1)[1] for c in old_df.columns]
    assert any(c.endswith('system.cpu|idle') for c in new_df.columns)
    assert np.array_equal(new_times, old_times) and np.allclose(new_df.to_numpy(), old_df.to_numpy(), equal_nan=True)
