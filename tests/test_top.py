"""``python -m collector top`` ranks charts from what the collector stored in the agent."""
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from collector.replay import Recording, ReplayClock, ReplayServer
from collector.top import rank
from conftest import ROOT, START, _chart


def test_rank_orders_by_flagged_time_then_probability():
    rows = rank({'a': [10, 20, None], 'b': [90, 95, 99], 'c': [50, 50, 50]},
                {'a': [0, 0, 0], 'b': [0, 1, 1], 'c': [1, 0, 1]})
    assert [r['chart'] for r in rows] == ['b', 'c', 'a']
    assert (rows[0]['flagged_s'], rows[0]['flag_events'], rows[0]['max_prob']) == (2, 1, 99)
    assert rows[1]['flag_events'] == 2 and rows[2]['mean_prob'] == 15


def write_anomalies_recording(path, seconds=120):
    """The default job's charts, and a second job's ('child.lan', watching another node, named
    with a dot as a host is) whose system.cpu was flagged for 10 s where the default job's was
    flagged for 30."""
    os.makedirs(os.path.join(path, 'data'))
    charts = {'anomalies.probability': _chart('anomalies.probability', ['system.cpu_prob', 'system.ram_prob',
                                                                          'average_prob']),
              'anomalies.anomaly': _chart('anomalies.anomaly', ['system.cpu_anomaly', 'system.ram_anomaly']),
              'anomalies_child.lan.probability': _chart('anomalies_child.lan.probability', ['system.cpu_prob']),
              'anomalies_child.lan.anomaly': _chart('anomalies_child.lan.anomaly', ['system.cpu_anomaly'])}
    for cid in ('anomalies_child.lan.probability', 'anomalies_child.lan.anomaly'):
        charts[cid]['context'] = cid.replace('_child.lan', '')
    for c in charts.values():   # as the agent lists them: the replay moves the last entry to its now
        c.update(first_entry=START, last_entry=START + seconds)
    rows = {cid: [] for cid in charts}
    for i in range(seconds + 1):
        cpu = 1 if 60 <= i < 90 else 0
        ram = 1 if 100 <= i < 105 else 0
        child = 1 if 10 <= i < 20 else 0
        rows['anomalies.probability'].append([START + i, 100.0 if cpu else 20.0, 100.0 if ram else 40.0, 30.0])
        rows['anomalies.anomaly'].append([START + i, cpu, ram])
        rows['anomalies_child.lan.probability'].append([START + i, 100.0 if child else 10.0])
        rows['anomalies_child.lan.anomaly'].append([START + i, child])
    for cid, c in charts.items():
        with gzip.open(os.path.join(path, 'data', cid + '.json.gz'), 'wt') as f:
            json.dump({'labels': ['time'] + list(c['dimensions']), 'data': rows[cid][::-1]}, f)
    meta = {'start': START, 'end': START + seconds, 'update_every': 1, 'netdata_version': 'v1.37.1',
            'hostname': 'node', 'description': 'anomalies charts as the collector stores them'}
    for name, body in (('recording.json', meta), ('info.json', {'version': 'v1.37.1', 'mirrored_hosts': ['node']}),
                       ('charts.json', {'hostname': 'node', 'version': 'v1.37.1', 'update_every': 1,
                                        'charts': charts}), ('labels.json', {'incidents': []})):
        with open(os.path.join(path, name), 'w') as f:
            json.dump(body, f)
    return path


def test_a_window_of_one_row_counts_the_seconds_of_the_charts_step():
    """A job stepping every 5 s, read over its last 5 s: one row, which stood for 5 s of flag
    (it counted 1 s, where 10 s read 10)."""
    from collector import top

    class Api:
        def data(self, chart, after, before, points=0, group=None):
            return ['system.cpu_anomaly'], [[START + 100, 1]]
    charts = {'anomalies.anomaly': {'first_entry': START, 'last_entry': START + 100, 'update_every': 5}}
    values, every = top._series(Api(), charts, '_anomaly', -5, 0, [], now=START + 100)
    assert values == {'system.cpu': [1]} and every == {'system.cpu': 5}


def test_top_command_lists_the_flagged_charts_first(tmp_path):
    """And a job's chart that the agent lists but does not serve (it answers 404) is told,
    not a reason to rank nothing."""
    path = write_anomalies_recording(str(tmp_path / 'rec'))
    with open(os.path.join(path, 'charts.json')) as f:
        body = json.load(f)
    body['charts']['anomalies_gone.probability'] = dict(_chart('anomalies_gone.probability', ['system.cpu_prob']),
                                                        context='anomalies.probability')
    with open(os.path.join(path, 'charts.json'), 'w') as f:
        json.dump(body, f)
    rec = Recording(path)
    with ReplayServer(rec, ReplayClock(START + 120, stepped=True)) as server:
        r = subprocess.run([sys.executable, '-m', 'collector', 'top', '--host', server.host, '--after', '-120'],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert 'over the last 120 s' in lines[0]
    ranked = [line.split()[:4] for line in lines[2:5]]
    assert ranked == [['1', 'system.cpu', '30', '1'], ['2', 'child.lan/system.cpu', '10', '1'],
                      ['3', 'system.ram', '5', '1']]
    assert not any('average' in line for line in lines)
    assert lines[-1].startswith('not read: anomalies_gone.probability: ') and 'HTTP 404' in lines[-1], lines[-1]


def _parent_of(server, titled=True):
    """``server`` (of ``write_anomalies_recording``) as a parent holding node 'child.lan',
    whose charts hold no anomalies chart: job child.lan on the parent reads it, and charts
    there (``titled``: its titles say so, as the job's do), beside the parent's own job."""
    from collector.replay import _Handler

    class Parent(_Handler):
        def do_GET(self):
            if self.path.startswith('/host/child.lan/api/v1/charts'):
                charts = {'system.cpu': dict(_chart('system.cpu', ['user']), first_entry=START, last_entry=START + 120)}
                return self._send(200, {'hostname': 'child.lan', 'charts': charts})
            if self.path.startswith('/host/'):
                return self._send(404, b'This netdata does not maintain a database for host: ' +
                                  self.path.split('/')[2].encode())
            return super().do_GET()
    server.httpd.RequestHandlerClass = Parent
    if titled:
        charts = server.recording.charts
        for cid, title in (('anomalies_child.lan.probability', 'Anomaly Probability'),
                           ('anomalies_child.lan.anomaly', 'Anomaly')):   # as the agent lists them
            charts[cid]['title'] = '{} (node child.lan) ({})'.format(title, cid)
    return server


def test_top_of_a_child_ranks_the_charts_of_the_job_on_its_parent_that_reads_it(tmp_path):
    """A job on a parent reading a child charts on the parent: `top --host parent/host/child`
    said 'has no anomalies charts', and `top --host parent` ranked that job's charts with the
    parent's own job's, with no way to ask for one job."""
    rec = Recording(write_anomalies_recording(str(tmp_path / 'rec')))
    with _parent_of(ReplayServer(rec, ReplayClock(START + 120, stepped=True))) as server:
        child = _top_cli(server, '--after', '-120', '--host', server.host + '/host/child.lan')
        parents = _top_cli(server, '--after', '-120')
        one = _top_cli(server, '--after', '-120', '--job', 'child.lan')
        own = _top_cli(server, '--after', '-120', '--job', 'anomalies')
        other = _top_cli(server, '--after', '-120', '--job', 'child9')
        asked = _top_cli(server, '--after', '-120', '--host', server.host + '/host/child.lan', '--job', 'anomalies')
    assert child.returncode == 0, child.stderr
    assert child.stdout.splitlines()[0] == ('most anomalous charts of job child.lan on {} (it reads node child.lan) '
                                            'over the last 120 s'.format(server.host)), child.stdout
    assert [r[:2] for r in _ranked(child.stdout)] == [['system.cpu', '10']]
    assert parents.returncode == 0 and [r[:2] for r in _ranked(parents.stdout)] == [
        ['system.cpu', '30'], ['child.lan/system.cpu', '10'], ['system.ram', '5']]
    assert parents.stdout.splitlines()[5].startswith(
        'jobs ranked together: anomalies, child.lan (node child.lan); the charts of a job other than anomalies are '
        'shown as job/chart: --job JOB'), parents.stdout
    assert one.returncode == 0 and one.stdout.splitlines()[0].startswith(
        'most anomalous charts of job child.lan on {} over'.format(server.host)), one.stdout
    assert [r[:2] for r in _ranked(one.stdout)] == [['system.cpu', '10']] and 'ranked together' not in one.stdout
    assert own.returncode == 0 and [r[:2] for r in _ranked(own.stdout)] == [['system.cpu', '30'], ['system.ram', '5']]
    assert other.returncode == 1 and other.stderr.strip().endswith(
        'has no anomalies charts of job child9 (charts anomalies_child9.*): jobs charting there: anomalies, '
        'child.lan (node child.lan)'), other.stderr
    assert asked.returncode == 1 and asked.stderr.strip().endswith(
        'job child.lan reads node \'child.lan\': python -m collector top --host {}/host/child.lan --job '
        'child.lan'.format(server.host)), asked.stderr


def test_top_of_a_child_says_where_the_charts_of_a_job_reading_it_are(tmp_path):
    """Charts whose titles do not name the node (an older job's) are not taken for the child's:
    the error says a job on the parent charts there, and how to rank one job's."""
    rec = Recording(write_anomalies_recording(str(tmp_path / 'rec')))
    with _parent_of(ReplayServer(rec, ReplayClock(START + 120, stepped=True)), titled=False) as server:
        r = _top_cli(server, '--host', server.host + '/host/child.lan')
    assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr
    assert ("top: http://{0}/host/child.lan has no anomalies charts, and no job on {0} names node 'child.lan' in its "
            "charts' titles. A job on a parent that reads a child (host: '{0}/host/child.lan') charts on the parent, "
            "not on the child: python -m collector top --host {0} --job JOB (jobs charting on {0}: anomalies, "
            "child.lan)".format(server.host)) in r.stderr, r.stderr


def test_top_without_anomalies_charts_says_so(replay):
    r = subprocess.run([sys.executable, '-m', 'collector', 'top', '--host', replay.host],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and 'has no anomalies charts' in r.stderr


@pytest.mark.parametrize('window, told', [
    (['--after', '600'], '--after 600: give seconds relative to now'),
    (['--after', '-10', '--before', '-600'], 'the window ends before it starts'),
    (['--after', '-60', '--before', '-60'], 'the window is empty'),
    (['--after', '1795364730', '--before', '1795364730'], 'the window is empty'),
    (['--after', '99999999999999999999'], 'give seconds relative to now'),
    (['--host', 'http://127.0.0.1:19999'], 'without a scheme'),
    (['--host', '127.0.0.1:99999'], 'with a port from 1 to 65535'),
])
def test_top_refuses_a_window_or_host_it_cannot_ask_for(window, told):
    r = subprocess.run([sys.executable, '-m', 'collector', 'top', '--host', '127.0.0.1:9'] + window,
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and told in r.stderr and 'Traceback' not in r.stderr, r.stderr


@pytest.mark.parametrize('host, protocol, hint', [
    ('127.0.0.1', 'http', '(no port given, so 80: a Netdata agent listens on 19999, e.g. 127.0.0.1:19999)'),
    ('[::1]', 'https', '(no port given, so 443: a Netdata agent listens on 19999, e.g. [::1]:19999)'),
    ('myserver/host/child', 'http', 'e.g. myserver:19999)'),
    ('127.0.0.1:19999', 'http', ''),
    ('[::1]:9', 'http', ''),
    ('parent:19999/host/child', 'http', ''),
])
def test_a_host_given_without_a_port_is_told_that_an_agent_listens_on_19999(host, protocol, hint):
    from collector.netdata_api import port_hint
    assert port_hint(host, protocol).endswith(hint) and bool(port_hint(host, protocol)) == bool(hint)


@pytest.mark.parametrize('command', [['top'], ['record', '--seconds', '10', '--past', '--out', 'never-made']])
def test_top_and_record_of_a_host_without_a_port_say_which_port_they_tried(command, tmp_path):
    """'--host myserver' reads port 80, where no agent listens: 'Connection refused' alone left
    the user to find that out."""
    r = subprocess.run([sys.executable, '-m', 'collector'] + command + ['--host', '127.0.0.1'],
                       cwd=str(tmp_path), env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and 'a Netdata agent listens on 19999, e.g. 127.0.0.1:19999' in r.stderr, r.stderr
    assert not (tmp_path / 'never-made').exists()


def _top_cli(server, *window):
    return subprocess.run([sys.executable, '-m', 'collector', 'top', '--host', server.host] + list(window),
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def _ranked(stdout):
    return [line.split()[1:6] for line in stdout.splitlines()[2:5]]


def test_top_over_a_window_longer_than_the_charts_reads_only_what_they_hold(tmp_path):
    """The agent answers a window reaching before a chart's first value with empty rows, and
    in at most 86400 of them: over three years, every chart read 1095 flagged seconds, or none.
    A window before the charts existed says so, rather than quoting the agent's 404."""
    rec = Recording(write_anomalies_recording(str(tmp_path / 'rec')))
    with ReplayServer(rec, ReplayClock(START + 120, stepped=True)) as server:
        short, years = _top_cli(server, '--after', '-121'), _top_cli(server, '--after', '-94608000')
        before = _top_cli(server, '--after', '-600', '--before', '-300')
    assert short.returncode == 0 and years.returncode == 0, (short.stderr, years.stderr)
    assert _ranked(years.stdout) == _ranked(short.stdout)
    assert [r[:3] + r[4:] for r in _ranked(years.stdout)] == [
        ['system.cpu', '30', '1', '100.0'], ['child.lan/system.cpu', '10', '1', '100.0'], ['system.ram', '5', '1', '100.0']]
    assert 'rows of' not in years.stdout
    assert years.stdout.splitlines()[0].endswith('over the last 94608000 s (the charts hold only its last 121 s)')
    assert short.stdout.splitlines()[0].endswith('over the last 121 s'), short.stdout
    assert before.returncode == 1 and 'no values in the window' in before.stderr, before.stderr
    # its times as the first line of a report says them, not unix seconds beside local dates
    assert re.search(r'no values in the window \(it holds \d{4}-\d\d-\d\d \d\d:\d\d:\d\d to \d{4}-', before.stderr), \
        before.stderr


def test_top_reads_a_window_of_a_time_and_seconds_back_on_the_agents_clock(tmp_path):
    """'--after T --before -100' ends 100 s before the agent's now, not this machine's: against
    an agent whose clock is behind (here the recording's, days behind), a window reversed on the
    agent's clock passed the check on this one's and failed with 'no values in the window'."""
    rec = Recording(write_anomalies_recording(str(tmp_path / 'rec')))
    with ReplayServer(rec, ReplayClock(START + 120, stepped=True)) as server:
        now = int(server.clock.now())
        fine = _top_cli(server, '--after', str(now - 110), '--before', '-10')
        reversed_ = _top_cli(server, '--after', str(now - 5), '--before', '-10')
    assert fine.returncode == 0 and fine.stdout.splitlines()[2].split()[1] == 'system.cpu', (fine.stdout, fine.stderr)
    assert reversed_.returncode == 1 and "on the agent's clock, which reads" in reversed_.stderr, reversed_.stderr
    assert 'no values in the window' not in reversed_.stderr


def test_top_in_grouped_rows_counts_each_rows_flagged_share_and_its_highest_probability(tmp_path, monkeypatch):
    from collector import top
    monkeypatch.setattr(top, 'MAX_ROWS', 30)   # as a window of more than a day is answered
    rec = Recording(write_anomalies_recording(str(tmp_path / 'rec')))
    with ReplayServer(rec, ReplayClock(START + 120, stepped=True)) as server:
        report = top.run(server.host, after=-121)
    lines = report.splitlines()
    rows = {line.split()[1]: line.split()[2:] for line in lines[2:5]}
    assert 25 <= int(rows['system.cpu'][0]) <= 35 and 8 <= int(rows['child.lan/system.cpu'][0]) <= 12
    assert 3 <= int(rows['system.ram'][0]) <= 7
    assert all(r[3] == '100.0' for r in rows.values())   # a row's highest, not its average
    assert lines[-1].startswith('rows of 5 s (the agent answers at most 30 rows)'), lines[-1]


def test_top_shows_long_chart_names_whole(tmp_path):
    """Cut at 40 characters, system.memory_full_pressure and ..._stall_time of a named job read the same."""
    rows = rank({'mychildnode1/system.memory_full_pressure_stall_time': [1], 'mychildnode1/system.memory_full_pressure': [2]},
                {})
    from collector.top import format_top
    shown = format_top(rows)
    assert 'mychildnode1/system.memory_full_pressure_stall_time ' in shown and len(set(shown.splitlines()[2:])) == 2


@pytest.mark.skipif(not shutil.which('openssl'), reason='openssl makes the test certificate')
def test_top_reads_an_https_agent_with_a_self_signed_certificate_when_told_to(tmp_path):
    import ssl
    cert, key = str(tmp_path / 'cert.pem'), str(tmp_path / 'key.pem')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=agent',
                    '-keyout', key, '-out', cert], check=True, capture_output=True)
    rec = Recording(write_anomalies_recording(str(tmp_path / 'rec')))
    server = ReplayServer(rec, ReplayClock(START + 120, stepped=True))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.httpd.socket = context.wrap_socket(server.httpd.socket, server_side=True)
    with server:
        checked = _top_cli(server, '--protocol', 'https')
        unchecked = _top_cli(server, '--protocol', 'https', '--no-tls-verify')
    assert checked.returncode == 1 and 'certificate' in checked.stderr.lower(), checked.stderr
    assert unchecked.returncode == 0 and _ranked(unchecked.stdout)[0][:2] == ['system.cpu', '30'], unchecked.stderr


def test_https_asked_of_an_agent_that_answers_plain_http_says_so(tmp_path):
    """`protocol: 'https'` against a plain agent fails in the TLS handshake, whose own words
    (WRONG_VERSION_NUMBER) do not say what to change."""
    rec = Recording(write_anomalies_recording(str(tmp_path / 'rec')))
    with ReplayServer(rec, ReplayClock(START + 120, stepped=True)) as server:
        r = _top_cli(server, '--protocol', 'https')
    assert r.returncode == 1 and "it answers plain http, not https: protocol 'http'" in r.stderr, r.stderr


def test_top_over_the_last_seconds_leaves_out_a_stopped_jobs_older_flags(tmp_path):
    """A job stopped long ago keeps its charts listed, their last entry then: 'the last 30 s'
    is the agent's last 30 s, not that job's."""
    path = write_anomalies_recording(str(tmp_path / 'rec'))
    with open(os.path.join(path, 'charts.json')) as f:
        body = json.load(f)
    for cid in ('anomalies_child.lan.probability', 'anomalies_child.lan.anomaly'):
        body['charts'][cid]['last_entry'] = START + 30   # its flag was up from 10 to 20 s
    for cid in ('system.cpu', 'system.ram', 'system.load', 'system.io', 'system.net'):   # the agent's own
        body['charts'][cid] = dict(_chart(cid, ['a']), first_entry=START, last_entry=START + 120)
    with open(os.path.join(path, 'charts.json'), 'w') as f:
        json.dump(body, f)
    with ReplayServer(Recording(path), ReplayClock(START + 120, stepped=True)) as server:
        r = _top_cli(server, '--after', '-40')
    assert r.returncode == 0, r.stderr
    assert _ranked(r.stdout)[0][:2] == ['system.cpu', '9']   # 81..89 of its 60..89
    assert 'child.lan/system.cpu' not in {row[0] for row in _ranked(r.stdout) if row[1] != '0'}


def test_top_reads_a_window_ending_in_the_past_as_its_help_says(tmp_path):
    """--after and --before both count back from now: '--after -50 --before -40' is 10 s (the
    agent's own reading, after from before, read 50 s and counted system.cpu's flag twice as
    long), and the first line names the window as times, to set beside the dashboard's."""
    rec = Recording(write_anomalies_recording(str(tmp_path / 'rec')))
    with ReplayServer(rec, ReplayClock(START + 120, stepped=True)) as server:
        r = _top_cli(server, '--after', '-50', '--before', '-40')
    assert r.returncode == 0, r.stderr
    assert _ranked(r.stdout)[0][:2] == ['system.cpu', '10'], r.stdout
    first = r.stdout.splitlines()[0]
    assert first.endswith('from {} to {}'.format(*(time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(START + t))
                                                   for t in (71, 80)))), first


def test_top_over_a_window_begun_before_the_charts_says_from_when_they_hold_values(tmp_path):
    """A window given as times that begins before the job charted anything reads only what the
    charts hold: the first line says from when, so the rows' few flagged seconds (or none) are
    not read as the whole window's, as the last-seconds window's note does."""
    rec = Recording(write_anomalies_recording(str(tmp_path / 'rec')))
    with ReplayServer(rec, ReplayClock(START + 120, stepped=True)) as server:
        early = _top_cli(server, '--after', str(START - 300), '--before', str(START + 100))
        inside = _top_cli(server, '--after', str(START + 10), '--before', str(START + 100))
    assert early.returncode == 0 and inside.returncode == 0, (early.stderr, inside.stderr)
    stamp = time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(START))
    assert early.stdout.splitlines()[0].endswith('(the charts hold values from {} on)'.format(stamp)), early.stdout
    assert 'hold values' not in inside.stdout.splitlines()[0], inside.stdout


def test_top_of_a_job_with_no_model_yet_says_so(tmp_path):
    """A job started minutes ago waits for history before its first model: its probability chart
    holds only average_prob. That is read, not a chart that could not be read (the error named no
    reason at all)."""
    path = write_anomalies_recording(str(tmp_path / 'rec'))
    with open(os.path.join(path, 'charts.json')) as f:
        body = json.load(f)
    body['charts'] = {'anomalies.probability': dict(_chart('anomalies.probability', ['average_prob']),
                                                    first_entry=START, last_entry=START + 120)}
    with open(os.path.join(path, 'charts.json'), 'w') as f:
        json.dump(body, f)
    with gzip.open(os.path.join(path, 'data', 'anomalies.probability.json.gz'), 'wt') as f:
        json.dump({'labels': ['time', 'average_prob'], 'data': [[START + i, 0.0] for i in range(120, -1, -1)]}, f)
    with ReplayServer(Recording(path), ReplayClock(START + 120, stepped=True)) as server:
        r = _top_cli(server, '--after', '-60')
    assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr
    assert '(anomalies.probability) have no model yet' in r.stderr and 'could be read' not in r.stderr, r.stderr


def test_the_password_can_be_kept_off_the_command_line(monkeypatch, capsys):
    """``top --password`` is in every user's ps while it runs: with --username alone the password
    comes from the environment; without it there, and no terminal to ask on, top says how."""
    import io
    from collector import cli, top
    asked = []
    monkeypatch.setattr(top, 'run', lambda *a, **k: asked.append(a[5:7]) or 'ranked')
    monkeypatch.setenv(cli.PASSWORD_ENV, 'hunter2')
    assert cli.main(['top', '--host', '127.0.0.1:9', '--username', 'u']) == 0
    assert asked == [('u', 'hunter2')]
    monkeypatch.delenv(cli.PASSWORD_ENV)
    monkeypatch.setattr(sys, 'stdin', io.StringIO())
    assert cli.main(['top', '--host', '127.0.0.1:9', '--username', 'u']) == 1
    assert 'top: --username needs its password: set {}'.format(cli.PASSWORD_ENV) in capsys.readouterr().err
    assert cli.main(['top', '--host', '127.0.0.1:9']) == 0 and asked[-1] == (None, None)
