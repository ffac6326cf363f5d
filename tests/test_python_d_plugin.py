"""Netdata's own python.d.plugin (Debian's netdata-plugins-python) loads and runs the module unmodified."""
import os
import re
import subprocess
import sys

import pytest

from collector.replay import Recording, ReplayClock, ReplayServer
from conftest import ROOT, SPIKE, START
from test_integration import parse

PLUGIN = '/usr/lib/netdata/plugins.d/python.d.plugin'
STOCK_CONF = '/usr/lib/netdata/conf.d'

pytestmark = pytest.mark.skipif(not os.path.exists(PLUGIN), reason='netdata-plugins-python is not installed')


def _run_until(cmd, env, cwd, wanted, after, limit):
    """``(stdout, stderr)`` of ``cmd`` killed ``after`` s once ``wanted`` is in its stdout, or at ``limit`` s."""
    import threading
    import time
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines, errs, seen = [], [], threading.Event()
    def read(stream, into, watch):
        for line in stream:
            into.append(line)
            if watch and wanted in line:
                seen.set()
    readers = [threading.Thread(target=read, args=a, daemon=True) for a in ((proc.stdout, lines, True),
                                                                           (proc.stderr, errs, False))]
    for reader in readers:   # both pipes read as they fill: a full stderr would stop the plugin
        reader.start()
    deadline = time.monotonic() + limit
    if seen.wait(limit):
        time.sleep(min(after, max(0.0, deadline - time.monotonic())))
    proc.kill()
    proc.wait(10)
    for reader in readers:
        reader.join(10)
    return ''.join(lines), ''.join(errs)


def _plugin_dirs(tmp_path):
    """python.d.plugin's folders under ``tmp_path`` with this module enabled in them; its config folder."""
    plugins, conf = tmp_path / 'plugins' / 'python.d', tmp_path / 'conf'
    plugins.mkdir(parents=True)
    (conf / 'python.d').mkdir(parents=True)
    for d in ('lib', 'lock'):
        (tmp_path / d).mkdir()
    os.symlink(os.path.join(ROOT, 'anomalies.chart.py'), str(plugins / 'anomalies.chart.py'))
    (conf / 'python.d.conf').write_text('enabled: yes\ndefault_run: no\nanomalies: yes\n')
    return conf


def _plugin_env(tmp_path, conf):
    """python.d.plugin's environment for the folders ``_plugin_dirs`` made, as the agent sets it."""
    return dict(os.environ, NETDATA_USER_PLUGINS_DIRS=str(tmp_path / 'plugins'), NETDATA_USER_CONFIG_DIR=str(conf),
                NETDATA_STOCK_CONFIG_DIR=STOCK_CONF, NETDATA_LIB_DIR=str(tmp_path / 'lib'),
                NETDATA_LOCK_DIR=str(tmp_path / 'lock'), NETDATA_INTERNALS_MONITORING='NO')


def test_python_d_plugin_runs_the_module(recording, tmp_path):
    conf = _plugin_dirs(tmp_path)
    rec = Recording(recording)
    with ReplayServer(rec, ReplayClock(START + SPIKE[0] - 12)) as server:
        # a key uncommented above the one the job sets further down: YAML (and python.d) keep the last
        (conf / 'python.d' / 'anomalies.conf').write_text(
            "anomalies:\n  host: '{}'\n  train_n_secs: 3600\n  train_n_secs: 600\n  attribution_charts: true\n"
            "".format(server.host))
        env = _plugin_env(tmp_path, conf)
        # python.d.plugin runs until killed: until a few steps after system.cpu's flag (the
        # incident starts 12 s in and lasts a minute), so a slow machine's training still sees it
        out, err = _run_until(([sys.executable, PLUGIN, '1', 'anomalies']), env, str(tmp_path),
                              "SET 'system.cpu_anomaly' = 1", after=3, limit=60)
    assert 'check success' in err, err
    # said in the agent's log, as check-config says it
    assert "anomalies.conf: job anomalies: key 'train_n_secs' is given twice (lines 3 and 4): line 4's is used" in err, err
    updates = parse('\n'.join(line for line in out.splitlines() if line.strip()))
    probs = updates['anomalies.probability']
    flags = updates['anomalies.anomaly']
    assert any('system.cpu_prob' in v for _, v in probs)
    assert max(v.get('system.cpu_anomaly', 0) for _, v in flags) == 1
    # the node rate, and the optional per-model attribution charts, added at run time
    assert max(v['flagged'] for _, v in updates['anomalies.rate']) > 0
    drivers = updates['anomalies.drivers_system.cpu']
    last = drivers[-1][1]
    assert set(last) == {'system.cpu|user', 'system.cpu|system', 'system.cpu|guest', 'system.cpu|idle'}
    assert abs(sum(last.values()) - 10000) <= 4       # shares of 100 %, in hundredths
    during = max(drivers, key=lambda u: u[1]['system.cpu|user'])[1]
    assert during['system.cpu|user'] + during['system.cpu|idle'] > 9000   # the spike is in user (idle mirrors it)
    assert re.search(r"DIMENSION 'system.cpu\|user' 'user' absolute 1 100", out)
    assert 'Traceback' not in err



def test_a_module_without_its_virtual_environment_says_to_run_install_again(tmp_path):
    """The venv removed, or python.d's python upgraded past it: python.d.plugin logs only the
    module's import error, so that error says what to do."""
    plugins, conf = tmp_path / 'plugins' / 'python.d', tmp_path / 'conf'
    plugins.mkdir(parents=True)
    (conf / 'python.d').mkdir(parents=True)
    for d in ('lib', 'lock'):
        (tmp_path / d).mkdir()
    (plugins / 'anomalies.chart.py').write_text(open(os.path.join(ROOT, 'anomalies.chart.py')).read())
    (plugins / 'anomalies.venv').write_text(str(tmp_path / 'gone-venv') + '\n')
    (conf / 'python.d.conf').write_text('enabled: yes\ndefault_run: no\nanomalies: yes\n')
    env = _plugin_env(tmp_path, conf)
    env.pop('NETDATA_ANOMALIES_VENV', None)
    python = '/usr/bin/python3'   # the agent's: it has neither the package nor its dependencies
    r = subprocess.run([python, PLUGIN, '1', 'anomalies'], env=env, capture_output=True, text=True, timeout=30,
                       cwd=str(tmp_path))
    said = [line for line in r.stderr.splitlines() if 'error on loading source' in line]
    assert said and 'run install.sh again' in said[0] and str(tmp_path / 'gone-venv') in said[0], r.stderr
    assert r.stdout.strip() in ('', 'DISABLE'), r.stdout   # nothing but the plugin's own protocol


FRAMEWORK = '/usr/lib/netdata/python.d/python_modules'   # python.d.plugin's own SimpleService


@pytest.mark.parametrize('key, value', [('priority', '1000'), ('chart_cleanup', '10'), ('chart_cleanup', -1),
                                        ('penalty', 'no'), ('update_every', 2.5)])
def test_a_key_python_d_takes_out_of_the_job_before_it_sees_it_is_still_checked(monkeypatch, caplog, key, value):
    """python.d.plugin pops priority and chart_cleanup out of a job's configuration for its
    charts: a quoted one passed the job's check, then failed its create() (the job dropped with
    a TypeError, after its training and Prometheus port had started) or every update (no chart,
    a TypeError each second). It pops penalty too: quoted, 'no' is text, which it takes as true,
    and the job's updates would slow down while its agent is away; and update_every, made an
    int (2.5 ran as 2). The job refuses each as check-config does, before starting anything."""
    monkeypatch.syspath_prepend(FRAMEWORK)
    from bases.FrameworkServices.SimpleService import SimpleService
    from collector.service import AnomaliesService

    class Service(AnomaliesService, SimpleService):
        pass
    def configuration(given):   # a job's, as python.d.plugin hands it over (its create_jobs)
        conf = dict(job_name='anomalies', override_name='', update_every=1, priority=60000, chart_cleanup=10,
                    penalty=False, autodetection_retry=0, host='127.0.0.1:1', models_dir='none')
        conf[key] = given
        return conf
    job = Service(configuration=configuration(value))
    assert key not in job.configuration   # (taken out by python.d's base)
    assert job.check() is False
    assert job.detector is None
    assert "configuration error, key '{}': expected {}".format(
        key, 'true or false, unquoted' if key == 'penalty' else 'an integer') in caplog.text, caplog.text
    fine = {'priority': 60000, 'penalty': False, 'update_every': 2}.get(key, 0)
    assert not Service(configuration=configuration(fine)).config_errors


def test_a_job_refused_with_an_autodetection_retry_that_is_no_number_does_not_stop_python_d(tmp_path):
    """python.d.plugin retries a job whose check fails every autodetection_retry seconds: one
    that is no number (quoted, '60') stopped the plugin a second later, with every module's jobs
    (int % str). The job is dropped instead, after its configuration errors are said. One
    retried every second (1) said the same three lines every second for good: its errors are
    said once, and the job is dropped when checked again."""
    conf = _plugin_dirs(tmp_path)
    (conf / 'python.d' / 'anomalies.conf').write_text(
        "other:\n  host: '127.0.0.1:1'\n  models_dir: none\nbad:\n  host: '127.0.0.1:1'\n  autodetection_retry: '60'\n"
        "typo:\n  host: '127.0.0.1:1'\n  autodetection_retry: 1\n  train_n_secs: -5\n")
    env = _plugin_env(tmp_path, conf)
    proc = subprocess.Popen([sys.executable, PLUGIN, '1', 'anomalies'], env=env, cwd=str(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=6)   # (it stopped within 2 s)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    else:
        raise AssertionError('python.d.plugin stopped (exit {}): {}'.format(proc.returncode, err))
    assert "anomalies[bad] : configuration error, key 'autodetection_retry'" in err, err
    assert 'anomalies[other] : check success' in err and 'Traceback' not in err, err
    assert err.count("anomalies[typo] : configuration error, key 'train_n_secs'") == 1, err
    assert err.count('dropped rather than checked again') == 2, err   # (bad's, and typo's at its second check)


def test_the_file_s_own_notes_are_said_once_when_its_first_job_fails_its_check(tmp_path):
    """What check-config says of the file as a whole (a top-level key that reaches no job) is
    said in the agent's log by the file's first job: once, also when that job's own keys fail
    its check."""
    conf = _plugin_dirs(tmp_path)
    (conf / 'python.d' / 'anomalies.conf').write_text(
        "model: knn\nfirst:\n  host: '127.0.0.1:1'\n  train_n_secs: -5\nsecond:\n  host: '127.0.0.1:1'\n"
        "  models_dir: none\n")
    env = _plugin_env(tmp_path, conf)
    _, err = _run_until([sys.executable, PLUGIN, '1', 'anomalies'], env, str(tmp_path), 'never', after=0, limit=5)
    assert "anomalies[first] : configuration error, key 'train_n_secs'" in err, err
    assert err.count("top-level key 'model' reaches no job") == 1, err


def test_a_job_another_python_d_serves_starts_nothing(tmp_path):
    """python.d.plugin drops a job whose lock another python.d process holds (the agent's, while
    a user runs ``python.d.plugin debug`` beside it) after the job's check(): the job must leave
    the port, the training and the models to the one that serves it."""
    import fcntl
    import socket
    conf = _plugin_dirs(tmp_path)
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    (conf / 'python.d' / 'anomalies.conf').write_text(
        "other:\n  host: '127.0.0.1:1'\n  models_dir: none\n"
        "held:\n  host: '127.0.0.1:1'\n  models_dir: '{}'\n  prometheus_port: {}\n".format(tmp_path / 'models', port))
    env = _plugin_env(tmp_path, conf)
    with open(str(tmp_path / 'lock' / 'anomalies_held.collector.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)   # as the python.d serving the job holds it
        proc = subprocess.Popen([sys.executable, PLUGIN, '1', 'anomalies'], env=env, cwd=str(tmp_path),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            import time
            time.sleep(5)
            assert proc.poll() is None   # (still serving the other job)
            with socket.socket() as s:   # the port is free for the python.d that serves the job
                s.bind(('127.0.0.1', port))
        finally:
            proc.kill()
            _, err = proc.communicate()
    assert 'anomalies[held] : already registered by another process' in err, err
    assert 'anomalies[other] : check success' in err and 'Traceback' not in err, err
    held = [line for line in err.splitlines() if 'anomalies[held]' in line]
    assert not any('prometheus' in line or 'training' in line or 'agent' in line for line in held), held
    assert not (tmp_path / 'models').exists()
