"""``python -m collector run`` as a user runs it, against a local server that answers like Netdata."""
import io
import os
import re
import select
import signal
import time
import subprocess
import sys

import pytest

from collector.replay import Recording, ReplayClock, ReplayServer
from conftest import ROOT, SPIKE, START
from live_job import LiveJob

PROTOCOL_LINE = re.compile(
    r"^(CHART \S+ '[^']*' '[^']*' '[^']*' '[^']*' '[^']*' (line|area|stacked) \d+ \d+ '[^']*' '[^']*' '[^']*'"
    r"|CLABEL '[^']*' '[^']*' '?\d'?|CLABEL_COMMIT"
    r"|DIMENSION '[^']+' '[^']*' (absolute|incremental) -?\d+ \d+ '[^']*'"
    r"|BEGIN \S+( \d+)?|SET '[^']+' = -?\d+|END)$")


def parse(stdout):
    """Check every line is protocol and collect ``{chart: [(usec_since_last, {dim: value})]}``."""
    updates, current = {}, None
    for line in stdout.splitlines():
        assert PROTOCOL_LINE.match(line), 'not a protocol line: {!r}'.format(line)
        if line.startswith('BEGIN'):
            parts = line.split()
            current = (parts[1], int(parts[2]) if len(parts) > 2 else 0, {})
        elif line.startswith('SET'):
            m = re.match(r"SET '([^']+)' = (-?\d+)", line)
            current[2][m.group(1)] = int(m.group(2))
        elif line == 'END':
            updates.setdefault(current[0], []).append((current[1], current[2]))
    return updates


def run_collector(host, steps, config=None, timeout=120):
    cmd = [sys.executable, '-m', 'collector', 'run', '--host', host, '--steps', str(steps), '--update-every', '1']
    if config:
        cmd += ['--config', config]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def live_replay(recording):
    """The synthetic recording replayed in real time, from 20 s before its incident."""
    rec = Recording(recording)
    server = ReplayServer(rec, ReplayClock(START + SPIKE[0] - 8)).start()
    yield server
    server.stop()


def test_run_writes_both_charts_with_sane_values(recording, tmp_path):
    conf = tmp_path / 'anomalies.conf'
    conf.write_text("local:\n  charts_regex: 'system\\..*'\n  train_n_secs: 600\n")
    # the agent's clock stands 8 s before the incident until the first training is done (1 s
    # here, 10 under emulation), then runs on in real time
    clock = ReplayClock(START + SPIKE[0] - 8, stepped=True)
    server = ReplayServer(Recording(recording), clock).start()
    job = LiveJob(server.host, conf)
    try:
        job.wait_for('trained 4 models')
        clock.run_from(START + SPIKE[0] - 8)
        job.wait_charted('anomalies_local.probability', 18)   # 8 s before the incident, 10 in it
    finally:
        returncode = job.stop()
        server.stop()
    assert returncode == 0, job.stderr
    updates = parse(job.stdout)
    assert set(updates) == {'anomalies_local.probability', 'anomalies_local.anomaly', 'anomalies_local.rate',
                            'anomalies_local.flagged_for'}
    probs, flags, rates, lasting = (updates['anomalies_local.' + c][:18]
                                    for c in ('probability', 'anomaly', 'rate', 'flagged_for'))
    assert len(probs) == len(flags) == len(rates) == len(lasting) == 18
    models = {'system.cpu', 'system.ram', 'system.load', 'system.forks'}
    for _, values in probs:
        assert set(values) == {m + '_prob' for m in models} | {'average_prob'}
        assert all(0 <= v <= 10000 for v in values.values())
    for _, values in flags:
        assert set(values) == {m + '_anomaly' for m in models}
        assert all(v in (0, 1) for v in values.values())
    # the incident starts 8 s in: system.cpu goes to 100% and is flagged
    assert max(v['system.cpu_prob'] for _, v in probs[-4:]) == 10000
    assert max(v['system.cpu_anomaly'] for _, v in flags[-4:]) == 1
    # the node view: before the incident nothing is flagged, then one model of four is
    assert rates[0][1] == {'flagged': 0, 'flagged_avg': 0, 'flagged_1m': 0} and lasting[0][1] == {'longest': 0}
    assert max(v['flagged'] for _, v in rates[-4:]) >= 2500 and lasting[-1][1]['longest'] >= 1
    assert rates[-1][1]['flagged_1m'] >= 2500
    # and the log names the chart and the dimension that moved
    assert re.search(r"anomaly flagged on 'system.cpu' \(probability 100.0%\): (user|idle) \d+%", job.stderr), job.stderr
    assert 'first prediction' in job.stderr and 'Traceback' not in job.stderr


def test_every_job_of_the_file_runs_side_by_side_each_step_written_whole(recording, tmp_path):
    """A file with several jobs (one per agent, or per set of charts) runs them all in one
    plugin, as python.d.plugin does; a job whose charts another job of the same name makes is
    named and left out, and one SIGTERM stops them all."""
    conf = tmp_path / 'anomalies.conf'
    conf.write_text("cpu:\n  charts_regex: 'system\\.cpu'\n  train_n_secs: 600\n"
                    "ram:\n  charts_regex: 'system\\.ram'\n  train_n_secs: 600\n"
                    "again:\n  name: cpu\n  charts_regex: 'system\\.load'\n")
    clock = ReplayClock(START + SPIKE[0] - 8, stepped=True)
    server = ReplayServer(Recording(recording), clock).start()
    job = LiveJob(server.host, conf)
    try:
        job.wait_for('trained 1 model on', count=2)
        clock.run_from(START + SPIKE[0] - 8)
        # 8 s before the incident, 10 in it (12 left 4, too few for a flag to rise on a loaded machine)
        job.wait_charted('anomalies_cpu.probability', 18)
        job.wait_charted('anomalies_ram.probability', 18)
        started = time.monotonic()
        returncode = job.stop()
        stopped_in = time.monotonic() - started
    finally:
        job.stop()
        server.stop()
    assert returncode == 0 and stopped_in < 30, (returncode, stopped_in, job.stderr)
    assert re.search(r"job again not run: its charts would be job cpu's", job.stderr), job.stderr
    assert 'running 2 jobs side by side: cpu, ram' in job.stderr and 'Traceback' not in job.stderr
    # each BEGIN .. END block holds its own chart's dimensions only: no job's step cut another's
    chart = None
    for line in job.stdout.splitlines():
        if line.startswith('BEGIN '):
            assert chart is None, 'a block begun inside another: {!r}'.format(line)
            chart = line.split()[1]
        elif line.startswith('SET '):
            dim = re.match(r"SET '([^']+)'", line).group(1)
            if chart.endswith('.probability'):
                assert dim in {'average_prob', ('system.cpu' if chart.startswith('anomalies_cpu') else 'system.ram')
                               + '_prob'}, (chart, dim)
        elif line == 'END':
            chart = None
    updates = parse(job.stdout)
    assert {'anomalies_cpu.probability', 'anomalies_ram.probability', 'anomalies_cpu.anomaly',
            'anomalies_ram.anomaly'} <= set(updates)
    assert not any(c.startswith('anomalies_again') for c in updates)
    # the incident in system.cpu is the cpu job's to flag; the ram job's own charts stay its own
    assert max(v['system.cpu_anomaly'] for _, v in updates['anomalies_cpu.anomaly']) == 1
    assert all(set(v) == {'system.ram_anomaly'} for _, v in updates['anomalies_ram.anomaly'])


def test_side_by_side_jobs_all_stop_when_the_agent_stops_reading_and_a_bounded_run_names_a_silent_one(
        live_replay, tmp_path):
    """One job whose agent never answers writes nothing: when the plugin's reader goes away,
    the job that writes finds out, and the plugin must end with it, not run on with the other.
    A bounded run in which one job charted nothing fails, naming that job (the other's models,
    saved by the first run, load at its start: it charts from its first steps however slow the
    machine is to train)."""
    conf = tmp_path / 'anomalies.conf'
    conf.write_text("up:\n  host: '{}'\n  train_n_secs: 600\n  models_dir: '{}'\n"
                    "down:\n  host: '127.0.0.1:9'\n  models_dir: none\n".format(live_replay.host, tmp_path / 'models'))
    cmd = [sys.executable, '-m', 'collector', 'run', '--config', str(conf), '--update-every', '1']
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        got, deadline = b'', time.monotonic() + 120
        while b'BEGIN anomalies_up.probability' not in got and time.monotonic() < deadline:
            if not select.select([proc.stdout], [], [], 1.0)[0]:
                continue
            chunk = proc.stdout.read1(4096)
            if not chunk:
                break
            got += chunk
        assert b'BEGIN anomalies_up.probability' in got
        proc.stdout.close()   # the agent stopped
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        err = proc.stderr.read().decode()
        proc.stderr.close()
    assert 'nobody reads the charts any more, stopping' in err, err
    r = subprocess.run(cmd + ['--steps', '6'], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and 'run: nothing charted in 6 steps by job down' in r.stderr, r.stderr
    assert 'saved models from' in r.stderr and 'BEGIN anomalies_up.probability' in r.stdout, r.stderr


def test_a_job_with_nothing_to_chart_stops_when_its_reader_goes_away():
    """An agent killed without a word (the OOM killer) leaves a job that writes nothing (no
    answer yet, its first training to come) running for good, an orphan holding its Prometheus
    port against the next plugin: the job sees the pipe's reader gone without writing."""
    cmd = [sys.executable, '-m', 'collector', 'run', '--host', '127.0.0.1:9', '--update-every', '1']
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, PYTHONUNBUFFERED='1'))
    try:
        deadline = time.monotonic() + 60
        seen = b''
        while b'cannot reach' not in seen and time.monotonic() < deadline:   # the job is stepping
            if select.select([proc.stderr], [], [], 1.0)[0]:
                seen += proc.stderr.read1(4096)
        proc.stdout.close()   # the agent is gone
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        err = seen + proc.stderr.read()
        proc.stderr.close()
    assert b'stdout closed: its reader went away: nobody reads the charts any more, stopping' in err, err


def test_the_charts_are_written_in_utf_8_whatever_the_locale(live_replay, tmp_path):
    """The agent reads UTF-8: a job named outside ASCII charts under a locale whose encoding
    cannot hold its name, where it stopped at once as if nobody read the charts."""
    conf = tmp_path / 'anomalies.conf'
    conf.write_text("'\u03a9mega':\n  host: '{}'\n  train_n_secs: 600\n  models_dir: none\n".format(live_replay.host),
                    encoding='utf-8')
    cmd = [sys.executable, '-m', 'collector', 'run', '--config', str(conf)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, PYTHONIOENCODING='latin-1'))
    got, deadline = b'', time.monotonic() + 120
    wanted = 'BEGIN anomalies_\u03a9mega.probability'.encode('utf-8')
    try:
        while wanted not in got and time.monotonic() < deadline and proc.poll() is None:
            if select.select([proc.stdout], [], [], 1.0)[0]:
                got += proc.stdout.read1(4096)
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert wanted in got + out, err.decode('utf-8', 'replace')[-2000:]


@pytest.mark.parametrize('stderr', ['/dev/full', 'closed'])
def test_a_log_that_cannot_be_written_does_not_stop_the_charts(live_replay, tmp_path, stderr):
    """stderr on a full disk, or closed (a service manager's odd set-up): the log lines are
    lost, the charts on stdout are not, and stdout carries nothing else."""
    conf = tmp_path / 'anomalies.conf'
    conf.write_text("anomalies:\n  host: '{}'\n  train_n_secs: 600\n  models_dir: none\n".format(live_replay.host))
    cmd = [sys.executable, '-m', 'collector', 'run', '--config', str(conf)]
    if stderr == 'closed':
        proc = subprocess.Popen(['sh', '-c', 'exec "$@" 2>&-', 'sh'] + cmd, cwd=ROOT, stdout=subprocess.PIPE)
    else:
        with open(stderr, 'w') as full:
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=full)
    got, deadline = b'', time.monotonic() + 120   # three charted steps, however long the first training takes
    try:
        while got.count(b'BEGIN anomalies.probability') < 3 and time.monotonic() < deadline:
            if select.select([proc.stdout], [], [], 1.0)[0]:
                chunk = proc.stdout.read1(4096)
                if not chunk:
                    break
                got += chunk
    finally:
        proc.terminate()
        got += proc.communicate(timeout=30)[0]
    assert proc.returncode == 0
    out = got.decode()
    assert out.count('BEGIN anomalies.probability') >= 3, out[-2000:]
    parse(out)   # every line a protocol line


def test_a_stdout_that_refuses_the_charts_stops_the_run_as_a_failure(live_replay, tmp_path):
    """stdout a file on a full disk: one error naming why, and a failing exit a service
    manager restarts on, not success after nothing was charted."""
    conf = tmp_path / 'anomalies.conf'
    conf.write_text("anomalies:\n  host: '{}'\n  train_n_secs: 600\n  models_dir: none\n".format(live_replay.host))
    with open('/dev/full', 'w') as full:   # (it stops at its first write, after the first training)
        r = subprocess.run([sys.executable, '-m', 'collector', 'run', '--config', str(conf), '--steps', '120'],
                           cwd=ROOT, stdout=full, stderr=subprocess.PIPE, text=True, timeout=180)
    assert r.returncode == 1, r.stderr
    said = [line for line in r.stderr.splitlines() if 'cannot write the charts to stdout' in line]
    assert len(said) == 1 and 'ERROR' in said[0] and 'No space left on device, stopping' in said[0], r.stderr
    assert 'unhandled exception' not in r.stderr and 'no prediction' not in r.stderr


def test_steps_are_not_delayed_while_training(live_replay, tmp_path):
    # every training waits 3 s on the agent's data API; collection must go on at 1 s
    live_replay.data_delay = 3.0
    conf = tmp_path / 'anomalies.conf'
    conf.write_text("anomalies:\n  train_n_secs: 600\n  train_every_n: 4\n")
    job = LiveJob(live_replay.host, conf)
    try:
        job.wait_for('trained 4 models', count=3)   # the first, and two while the charts were updated
        job.wait_charted('anomalies.probability', 10)
    finally:
        returncode = job.stop()
    assert returncode == 0, job.stderr
    # (and the job's log says what a training every 4 steps does to its flags)
    assert "WARNING: anomalies[anomalies] : key 'train_every_n': a training every 4 steps" in job.stderr, job.stderr
    probs = parse(job.stdout)['anomalies.probability']
    intervals = [usec / 1e6 for usec, _ in probs[1:]]
    assert len(probs) >= 9
    assert max(intervals) < 1.5, intervals


def test_bad_config_exits_nonzero_with_the_key(tmp_path):
    conf = tmp_path / 'anomalies.conf'
    conf.write_text("anomalies:\n  model: 'nope'\n")
    r = run_collector('127.0.0.1:9', 2, str(conf), timeout=30)
    assert r.returncode == 1
    assert r.stdout == ''
    assert "key 'model'" in r.stderr


def test_a_bounded_run_on_an_agent_too_young_to_train_on_is_not_a_failure(recording, tmp_path):
    """``run --steps N`` against an agent that answers but holds less history than a model
    needs: nothing to predict yet, which the log says, and exit 0 (1 is for an agent that
    never answered)."""
    server = ReplayServer(Recording(recording), ReplayClock(START + 30)).start()
    try:
        r = run_collector(server.host, 20, timeout=90)   # steps enough for an emulated machine's first training
    finally:
        server.stop()
    assert r.returncode == 0, r.stderr
    assert 'waiting for 300 s of history' in r.stderr and 'no prediction in 20 steps' in r.stderr, r.stderr


@pytest.mark.parametrize('scope, steps, why', [
    ("charts_regex: 'nothing\\.here'", 3, 'no chart to model'),
    # steps enough for a slow machine's training to fail (a training process under qemu's aarch64
    # took over 3 s to start)
    ("charts_regex: 'nothing'\n  custom_models:\n    - name: 'mine'\n      dimensions: 'gone|a,gone|b'",
     8, 'no model could be trained'),
])
def test_a_bounded_run_with_nothing_it_can_model_fails_and_says_why(live_replay, tmp_path, scope, steps, why):
    conf = tmp_path / 'anomalies.conf'
    conf.write_text("local:\n  models_dir: none\n  {}\n".format(scope))
    r = run_collector(live_replay.host, steps, str(conf), timeout=90)
    assert r.returncode == 1 and 'no prediction in {} steps: {}'.format(steps, why) in r.stderr, r.stderr
    assert 'nothing charted in {} steps'.format(steps) in r.stderr and 'still waiting' not in r.stderr


def test_unreachable_agent_writes_nothing_but_protocol(tmp_path):
    r = run_collector('127.0.0.1:9', 3, timeout=60)
    parse(r.stdout)
    assert r.returncode == 1 and 'nothing charted in 3 steps' in r.stderr
    assert 'cannot reach' in r.stderr
    assert r.stderr.count('cannot reach http://127.0.0.1:9/api/v1/allmetrics') == 1


def _stat(pid):
    """``(state, parent pid)`` of a process, or None when it is gone."""
    try:
        with open('/proc/{}/stat'.format(pid)) as f:
            fields = f.read().rsplit(')', 1)[1].split()
        return fields[0], int(fields[1])
    except (OSError, IndexError, ValueError):
        return None


def _live_children(pid):
    stats = {int(e): _stat(e) for e in os.listdir('/proc') if e.isdigit()}
    return [k for k, st in stats.items() if st and st[0] != 'Z' and st[1] == pid]


def _run_into_a_training(replay, **popen):
    """``collector run`` started on ``replay`` and caught in its first training (which waits
    on the agent's data API): the process and its training's pid."""
    replay.data_delay = 30.0
    cmd = [sys.executable, '-m', 'collector', 'run', '--host', replay.host, '--update-every', '1']
    proc = subprocess.Popen(cmd, cwd=ROOT, **popen)
    for _ in range(100):
        time.sleep(0.1)
        kids = _live_children(proc.pid)
        if kids:
            return proc, kids
    proc.kill()
    raise AssertionError('no training process started')


@pytest.mark.skipif(not os.path.isdir('/proc'), reason='reads processes from /proc')
@pytest.mark.parametrize('sig, said, not_said', [(signal.SIGTERM, 'run: SIGTERM, stopping', 'Ctrl-C'),
                                                 (signal.SIGINT, 'run: stopped (Ctrl-C)', 'SIGTERM')])
def test_a_stop_during_a_training_stops_the_training_too_and_says_so_once(live_replay, sig, said, not_said):
    """An agent stops its plugins with SIGTERM, in a training as likely as not: the training
    process goes too (it held the plugin's stderr open, and would print a traceback), and
    nothing but a log line is written. Ctrl-C at a terminal, as someone trying the job by hand
    stops it, says so too (a silent exit reads like a crash or a hang)."""
    proc, kids = _run_into_a_training(live_replay, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        time.sleep(1.0)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert err.count(said) == 1 and 'Traceback' not in err and not_said not in err, err
    parse(out)
    assert all(_stat(k) is None or _stat(k)[0] == 'Z' for k in kids)


def test_a_sigterm_that_comes_while_the_job_writes_its_log_still_stops_it(monkeypatch, capfd):
    """The signal lands inside the job's own write to stderr (its log is busy under load): the
    handler must not write through the same buffer, whose reentrant call would raise a
    RuntimeError that one step swallows, and the job would run on past its agent's SIGTERM."""
    from collector import cli

    class BusyStderr(io.StringIO):
        busy = False

        def write(self, text):
            if self.busy:
                raise RuntimeError('reentrant call inside stderr')
            self.busy = True
            try:
                cli._on_sigterm(signal.SIGTERM, None)   # the signal arrives mid-write
                return super().write(text)
            finally:
                self.busy = False

    monkeypatch.setattr(sys, 'stderr', BusyStderr())
    with pytest.raises(KeyboardInterrupt):
        sys.stderr.write('a log line\n')
    assert 'run: SIGTERM, stopping' in capfd.readouterr().err


def test_a_stop_that_hangs_after_sigterm_still_ends_the_process():
    """The interrupt a SIGTERM raises can land inside a library's locked section, and the stop
    then hang on that lock (seen once in 3.9's shutdown): the run exits on its own anyway."""
    # the interrupt is caught wherever it lands after "ready" (under emulation it came before
    # the loop's own try), and the stop then hangs
    probe = ('import time\nfrom collector import cli\ncli.STOP_GRACE_S = 1\ncli._stop_on_sigterm()\n'
             'try:\n    print("ready", flush=True)\n    while True:\n        time.sleep(10)\n'
             'except KeyboardInterrupt:\n    pass\n'
             'while True:\n    time.sleep(10)\n')
    proc = subprocess.Popen([sys.executable, '-c', probe], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == 'ready\n'
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert 'run: SIGTERM, stopping' in err and 'still stopping 1 s after SIGTERM, exiting now' in err


@pytest.mark.skipif(not os.path.isdir('/proc'), reason='reads processes from /proc')
def test_a_training_stops_itself_when_its_job_is_killed_outright(live_replay, tmp_path):
    """SIGKILL leaves no cleanup to run (nor does python.d.plugin ending with its agent): the
    training process notices its job is gone and ends instead of training on."""
    proc, kids = _run_into_a_training(live_replay, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc.kill()
    proc.wait()
    for _ in range(50):
        if all(_stat(k) is None or _stat(k)[0] == 'Z' for k in kids):
            break
        time.sleep(0.1)
    else:
        raise AssertionError('the training outlived its job by 5 s')


def test_a_training_whose_job_died_before_it_started_ends_at_once():
    """A job killed in the instant after it started a training leaves the training to
    another parent before it can note its own: it ends rather than wait for its request."""
    with subprocess.Popen([sys.executable, '-m', 'collector.train_worker', '--parent', str(2 ** 22 + 7)], cwd=ROOT,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        try:
            assert proc.wait(timeout=20) == 0
        finally:
            proc.kill()
        assert proc.stdout.read() == b'' and proc.stderr.read() == b''


@pytest.mark.skipif(not os.path.exists('/proc/self/oom_score_adj'), reason='no oom_score_adj (not Linux)')
@pytest.mark.parametrize('before, after', [(0, 500), (800, 800)])
def test_a_training_is_the_first_the_kernel_takes_when_memory_runs_out(before, after):
    """On a small box short of memory the kernel's OOM killer took whichever was largest: the
    agent itself, or the job, rather than the training, whose loss costs a retry. The training
    process raises its own oom_score_adj (never lowers one set higher)."""
    cmd = 'echo {} > /proc/self/oom_score_adj && exec "$0" -m collector.train_worker --parent {}'.format(
        before, os.getpid())
    with subprocess.Popen(['sh', '-c', cmd, sys.executable], cwd=ROOT, stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        try:
            for _ in range(200):   # (it waits for its request meanwhile)
                with open('/proc/{}/oom_score_adj'.format(proc.pid)) as f, \
                        open('/proc/{}/cmdline'.format(proc.pid), 'rb') as g:
                    score, cmdline = int(f.read()), g.read()
                if score == after and b'collector.train_worker' in cmdline:
                    break
                time.sleep(0.05)
            assert score == after
        finally:
            proc.kill()


def first_data(service, replay, limit=100):
    """Step the job on the replay's clock until it charts something (the first training done)."""
    for _ in range(limit):
        service.detector.trainer.wait()
        data = service.get_data()
        replay.clock.advance(1)
        if data:
            return data
    raise AssertionError('the job charted nothing in {} steps'.format(limit))


def test_prometheus_textfile_and_port_serve_the_same_parsable_gauges(replay, tmp_path):
    """Both serve one set of gauges, labeled with the name the job's charts have (its 'name'
    key, as python.d names the charts anomalies_edge.*), not the job's key."""
    import socket
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    from collector.runner import Service
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    (tmp_path / 'textfiles').mkdir()
    textfile = tmp_path / 'textfiles' / 'anomalies.prom'
    service = Service(configuration={'job_name': 'local', 'name': 'edge', 'host': replay.host, 'train_n_secs': 300,
                                     'update_every': 1,
                                     'prometheus_textfile': str(textfile), 'prometheus_port': port})
    service.out, service.log_stream = io.StringIO(), io.StringIO()
    assert service.check(), service.log_stream.getvalue()
    service.create()
    try:
        data = first_data(service, replay)
        def families(text):
            out = {}
            for f in text_string_to_metric_families(text):
                assert all(s.labels['anomalies_job'] == 'edge' for s in f.samples)
                out[f.name] = {s.labels.get('chart'): s.value for s in f.samples}
            return out
        from_file = families(textfile.read_text())
        scraped = families(urllib.request.urlopen('http://127.0.0.1:{}/metrics'.format(port), timeout=5)
                           .read().decode())
        charts = {'system.cpu', 'system.ram', 'system.load', 'system.forks'}
        for got in (from_file, scraped):
            assert set(got['anomaly_probability']) == charts and set(got['anomaly_flag']) == charts
            assert got['anomaly_rate'] == {None: data['flagged'] / 10000.0}
            assert got['anomaly_rate_1m'] == {None: data['flagged_1m'] / 10000.0}
            assert got['anomaly_flag_longest_seconds'] == {None: pytest.approx(data['longest'], abs=1)}
            assert abs(got['anomaly_last_update_timestamp_seconds'][None] - time.time()) < 60
            for chart in charts:
                assert got['anomaly_probability'][chart] == pytest.approx(data[chart + '_prob'] / 10000.0, abs=1e-4)
                assert got['anomaly_flag'][chart] == data[chart + '_anomaly']
        assert [p.name for p in textfile.parent.iterdir()] == ['anomalies.prom']   # no temporary files left
    finally:
        service.detector.close()
        service.exporter.close()


def test_a_create_that_fails_leaves_nothing_of_the_job_running(replay, tmp_path):
    """python.d.plugin drops a job whose create() raises (and frees its lock for another python.d
    to serve it): its Prometheus port, textfile and training must not outlive it."""
    import socket

    from collector.runner import Service
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    textfile = tmp_path / 'anomalies.prom'
    service = Service(configuration={'job_name': 'anomalies', 'host': replay.host, 'train_n_secs': 300,
                                     'prometheus_textfile': str(textfile), 'prometheus_port': port})
    service.out, service.log_stream = io.StringIO(), io.StringIO()
    assert service.check(), service.log_stream.getvalue()

    def broken():   # a failure after the training started
        raise RuntimeError('broken')
    service.detector._hold_own_training = broken
    with pytest.raises(RuntimeError):
        service.create()
    assert 'prometheus export: ' in service.log_stream.getvalue()   # (it had started)
    with socket.socket() as s:
        s.bind(('127.0.0.1', port))
    assert not textfile.exists() and not service.detector.trainer.busy


def test_a_taken_prometheus_port_leaves_the_textfile_written(replay, tmp_path):
    import socket

    from collector.runner import Service
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        textfile = tmp_path / 'anomalies.prom'
        service = Service(configuration={'job_name': 'anomalies', 'host': replay.host, 'train_n_secs': 300,
                                         'prometheus_textfile': str(textfile), 'prometheus_port': port})
        service.out, service.log_stream = io.StringIO(), io.StringIO()
        assert service.check(), service.log_stream.getvalue()
        service.create()   # (what starts the exporter)
    try:
        log = service.log_stream.getvalue()
        assert ("prometheus /metrics on 127.0.0.1:{} disabled: Address already in use; the textfile is still "
                "written".format(port)) in log, log
        first_data(service, replay)
        assert 'anomaly_probability{' in textfile.read_text()
    finally:
        service.detector.close()
        service.exporter.close()
    # a textfile that cannot be written yet (its folder not made): the line does not say it is
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen(1)
        unwritten = tmp_path / 'not-yet' / 'anomalies.prom'
        service = Service(configuration={'job_name': 'anomalies', 'host': replay.host, 'train_n_secs': 300,
                                         'prometheus_textfile': str(unwritten),
                                         'prometheus_port': taken.getsockname()[1]})
        service.out, service.log_stream = io.StringIO(), io.StringIO()
        assert service.check(), service.log_stream.getvalue()
        service.create()
    try:
        log = service.log_stream.getvalue()
        assert 'cannot write prometheus textfile {}'.format(unwritten) in log, log
        assert ('disabled: Address already in use; the textfile is written from the first step it can be (the error '
                'above)') in log and 'still written' not in log, log
    finally:
        service.detector.close()
        service.exporter.close()



def test_a_taken_prometheus_port_is_named_in_the_error_and_the_job_goes_on(replay):
    """Without a textfile, a port that cannot be served was logged as a bare
    OSError(98, 'Address already in use'), naming neither the port nor the address."""
    import socket

    from collector.runner import Service
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        service = Service(configuration={'job_name': 'anomalies', 'host': replay.host, 'train_n_secs': 300,
                                         'prometheus_port': port})
        service.out, service.log_stream = io.StringIO(), io.StringIO()
        assert service.check(), service.log_stream.getvalue()
        service.create()   # (what starts the exporter)
    try:
        log = service.log_stream.getvalue()
        assert 'prometheus export disabled: cannot serve http://127.0.0.1:{}/metrics '.format(port) in log, log
        assert first_data(service, replay)
    finally:
        service.detector.close()


def test_loading_the_module_leaves_other_modules_imports_alone(tmp_path):
    """python.d.plugin runs every module in one process: loading this one must not make the
    modules loaded after it import the venv's urllib3 or requests (Netdata's stock modules use
    their own), while everything else the venv has comes from it, whatever sits earlier on
    sys.path (numpy, pandas and scikit-learn must match each other)."""
    site = tmp_path / 'venv' / 'lib' / 'python{}.{}'.format(*sys.version_info[:2]) / 'site-packages'
    for name in ('urllib3', 'prometheus_client', 'pandas', 'sklearn'):
        (site / name).mkdir(parents=True)
        (site / name / '__init__.py').write_text('FROM_VENV = True\n')
    # the saved models' library versions are the venv's, not those of a copy earlier on sys.path
    (site / 'scikit_learn-9.9.9.dist-info').mkdir()
    (site / 'scikit_learn-9.9.9.dist-info' / 'METADATA').write_text('Metadata-Version: 2.1\nName: scikit-learn\n'
                                                                     'Version: 9.9.9\n')
    plugins = tmp_path / 'plugins'
    plugins.mkdir()
    os.symlink(os.path.join(ROOT, 'anomalies.chart.py'), str(plugins / 'anomalies.chart.py'))
    (plugins / 'anomalies.venv').write_text(str(tmp_path / 'venv'))
    probe = ("import importlib.util, sys\n"
             "spec = importlib.util.spec_from_file_location('anomalies_chart', sys.argv[1])\n"
             "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
             "import urllib3, prometheus_client, pandas\n"
             "from collector.persist import installed_versions\n"
             "print(hasattr(urllib3, 'FROM_VENV'), hasattr(prometheus_client, 'FROM_VENV'),\n"
             "      hasattr(pandas, 'FROM_VENV'), installed_versions()['scikit-learn'])\n")
    env = {k: v for k, v in os.environ.items() if k != 'NETDATA_ANOMALIES_VENV'}
    r = subprocess.run([sys.executable, '-c', probe, str(plugins / 'anomalies.chart.py')], env=env,
                       capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ['False', 'True', 'True', '9.9.9']


def test_the_start_line_names_the_keys_that_set_what_is_read(replay):
    """update_every, train_max_n and a window put elsewhere (offset_n_secs, a first window) are
    what a user looks for in the log to see an edit taken: the line named neither."""
    from collector.runner import Service
    service = Service(configuration={'job_name': 'anomalies', 'host': replay.host, 'update_every': 2,
                                     'train_max_n': 5000, 'offset_n_secs': 60, 'models_dir': None})
    service.out, service.log_stream = io.StringIO(), io.StringIO()
    assert service.check(), service.log_stream.getvalue()
    try:
        line = next(line for line in service.log_stream.getvalue().splitlines() if 'charts_regex=' in line)
        assert ' update_every=2 ' in line and ' train_max_n=5000 offset_n_secs=60 ' in line, line
        assert 'initial_train_data' not in line   # (not set: not said)
    finally:
        service.detector.close()
