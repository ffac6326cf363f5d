"""How ``install.sh`` finds the agent it installs into (Debian's packages, Netdata's, its static build).

``--check`` says what it found without changing anything, so these run on fake agent trees.
The install itself, on the real agent and on a static build's tree, is run by tests/e2e/netdata.sh.
"""
import contextlib
import os
import pwd
import re
import shutil
import subprocess
import sys
import time

import pytest

from conftest import ROOT

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='install.sh runs as root')

# a Netdata static build's or own package's python.d.plugin: bash picks python3 from PATH
SHELL_LINE_PLUGIN = "#!/usr/bin/env bash\n'''':; exec \"$(command -v python3)\" \"$0\" \"$@\" # '''\n"
SYSTEMD_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'


def agent_tree(prefix, plugin_dirs=('usr/libexec/netdata/plugins.d',)):
    for sub in plugin_dirs:
        os.makedirs(os.path.join(prefix, sub))
        plugin = os.path.join(prefix, sub, 'python.d.plugin')
        with open(plugin, 'w') as f:
            f.write(SHELL_LINE_PLUGIN)
        os.chmod(plugin, 0o755)
    os.makedirs(os.path.join(prefix, 'etc/netdata'))


def check(*args):
    # port 1: no agent answers there, so only the files are looked at
    proc = subprocess.run(['bash', os.path.join(ROOT, 'install.sh'), '--check', '--port', '1'] + list(args),
                          capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout + proc.stderr


@contextlib.contextmanager
def agents_python_d_plugin(tmp_path, plugin, settle=0.3):
    """A python.d.plugin process (``sleep``, named as the plugin) that a process named netdata
    started, as the agent's is: install.sh tells it from one run by hand by that parent."""
    agent = str(tmp_path / 'netdata')
    shutil.copy('/bin/bash', agent)
    started = subprocess.Popen([agent, '-c', '(exec -a "$0 1" sleep 60) & wait', plugin])
    try:
        time.sleep(settle)
        yield started
    finally:
        subprocess.run(['pkill', '-P', str(started.pid)])
        started.kill()
        started.wait()


def systemd_python3():
    proc = subprocess.run(['bash', '-c', 'command -v python3'], env={'PATH': SYSTEMD_PATH},
                          capture_output=True, text=True)
    return proc.stdout.strip()


def test_a_static_build_is_found_under_its_prefix_with_the_python_its_plugin_runs(tmp_path):
    prefix = str(tmp_path / 'opt/netdata')
    agent_tree(prefix)
    rc, out = check('--prefix', prefix)
    assert rc == 1, out   # nothing installed yet
    plugin = prefix + '/usr/libexec/netdata/plugins.d/python.d.plugin'
    assert 'agent: {} (runs {}), config in {}/etc/netdata, data in {}/var/lib/netdata'.format(
        plugin, systemd_python3(), prefix, prefix) in out
    assert 'missing {}/etc/netdata/custom-plugins.d/python.d/anomalies.chart.py'.format(prefix) in out
    assert 'not enabled in {}/etc/netdata/python.d.conf'.format(prefix) in out



@pytest.mark.parametrize('text, said', [
    ('anomalies: yes\n', 'enabled in {}'),
    ("anomalies: true\n", 'enabled in {}'),
    ("anomalies: 'yes'\n", 'enabled in {}'),   # (python.d takes any text as yes)
    ('enabled: no\nanomalies: yes\n', "not enabled in {}: 'enabled: no' (line 1) turns python.d.plugin off: it runs no module"),
    ('anomalies: yes\nanomalies: no\n', "not enabled in {}: 'anomalies: no' (line 2) turns the module off"),
    ('anomalies:yes\ngo: 1\n', 'not enabled in {}: it is not valid YAML (line 2): python.d.plugin ignores it'),
    ('# anomalies: yes\n', 'not enabled in {}: it holds only comments: python.d.plugin 1.37 stops on such a file'),
    ('go: 1\n', "not enabled in {}: no 'anomalies: yes' in it"),
])
def test_check_reads_python_d_conf_as_python_d_does(tmp_path, text, said):
    """--check said 'enabled' for any line 'anomalies: yes' and 'not enabled' for any other: for
    python.d.plugin turned off ('enabled: no'), the module turned off further down, or a file it
    cannot read, whose 'no chart yet' it then put down to the training's wait; and not enabled
    for 'anomalies: true', which runs it."""
    if subprocess.run([systemd_python3(), '-c', 'import yaml'], capture_output=True).returncode:
        pytest.skip("the agent's python3 has no PyYAML: with nothing installed yet, --check reads the line as a grep")
    prefix = str(tmp_path / 'opt/netdata')
    agent_tree(prefix)
    conf = prefix + '/etc/netdata/python.d.conf'
    with open(conf, 'w') as f:
        f.write(text)
    rc, out = check('--prefix', prefix)
    assert any(line.startswith('install.sh: ' + said.format(conf)) for line in out.splitlines()), out
    if said.startswith('enabled'):
        assert 'not enabled' not in out, out


def test_a_plugins_dir_in_an_agents_usual_place_tells_the_other_folders(tmp_path):
    prefix = str(tmp_path / 'opt/netdata')
    agent_tree(prefix)
    rc, out = check('--plugins-dir', prefix + '/usr/libexec/netdata/plugins.d/')
    assert 'config in {}/etc/netdata, data in {}/var/lib/netdata'.format(prefix, prefix) in out
    # folders given are taken as they are
    rc, out = check('--plugins-dir', prefix + '/usr/libexec/netdata/plugins.d', '--lib-dir', str(tmp_path / 'data'))
    assert 'config in {}/etc/netdata, data in {}'.format(prefix, tmp_path / 'data') in out


def test_python_d_plugin_in_two_places_is_refused_naming_both(tmp_path):
    prefix = str(tmp_path)
    agent_tree(prefix, ('usr/lib/netdata/plugins.d', 'usr/libexec/netdata/plugins.d'))
    rc, out = check('--prefix', prefix)
    assert rc == 1
    assert ('error: python.d.plugin is in more than one place ({0}/usr/lib/netdata/plugins.d '
            '{0}/usr/libexec/netdata/plugins.d): pass --plugins-dir'.format(prefix)) in out
    rc, out = check('--prefix', prefix, '--plugins-dir', prefix + '/usr/lib/netdata/plugins.d')
    assert 'agent: {}/usr/lib/netdata/plugins.d/python.d.plugin'.format(prefix) in out


def test_no_agent_under_the_prefix_says_where_it_looked(tmp_path):
    rc, out = check('--prefix', str(tmp_path))
    assert rc == 1
    assert 'error: no python.d.plugin in {0}/usr/lib/netdata/plugins.d, {0}/usr/libexec/netdata/plugins.d:'.format(
        tmp_path) in out
    rc, out = check('--prefix', str(tmp_path / 'nowhere'))
    assert 'error: --prefix {} is not a folder'.format(tmp_path / 'nowhere') in out


def test_a_python_named_on_the_plugins_first_line_is_the_one_on_the_agents_path_not_roots(tmp_path):
    prefix = str(tmp_path / 'agent')
    agent_tree(prefix, ('usr/lib/netdata/plugins.d',))
    with open(prefix + '/usr/lib/netdata/plugins.d/python.d.plugin', 'w') as f:
        f.write('#!/usr/bin/env python3\n')
    shadow = tmp_path / 'bin'   # a python3 first on root's PATH only (pyenv, a venv) that the agent never runs
    shadow.mkdir()
    os.symlink(sys.executable, str(shadow / 'python3'))
    proc = subprocess.run(['bash', os.path.join(ROOT, 'install.sh'), '--check', '--port', '1', '--prefix', prefix],
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PATH='{}:{}'.format(shadow, os.environ['PATH'])))
    assert '(runs {}),'.format(systemd_python3()) in proc.stdout


def test_check_finds_a_venv_without_the_jobs_packages_even_when_run_from_the_checkout(tmp_path):
    """A venv that has lost its packages (the system's Python upgraded under it, a failed pip)
    must not pass because ``python -c 'import collector'`` finds the checkout in the current
    folder, which is where the docs run ``--check`` from."""
    prefix = str(tmp_path / 'opt/netdata')
    agent_tree(prefix)
    empty = str(tmp_path / 'empty-venv')
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', empty], check=True, timeout=120)
    plugins = os.path.join(prefix, 'etc/netdata/custom-plugins.d/python.d')
    os.makedirs(plugins)
    with open(os.path.join(plugins, 'anomalies.venv'), 'w') as f:
        f.write(empty + '\n')
    proc = subprocess.run(['bash', os.path.join(ROOT, 'install.sh'), '--check', '--port', '1', '--prefix', prefix],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert 'the virtual environment {} named in {}/anomalies.venv cannot import'.format(empty, plugins) in out, out


def test_a_python_d_plugin_older_than_1_36_is_said_not_to_load_the_module(tmp_path):
    """Before Netdata 1.36 python.d.plugin loaded modules from its own python.d folder only: an
    install into custom-plugins.d/python.d would look done while the agent never runs it."""
    prefix = str(tmp_path / 'opt/netdata')
    agent_tree(prefix)
    plugin = prefix + '/usr/libexec/netdata/plugins.d/python.d.plugin'
    with open(plugin, 'a') as f:   # what a 1.35 python.d.plugin has: its own dirs, no user plugin dirs
        f.write("PLUGINS_DIR = os.path.abspath(os.getenv('NETDATA_PLUGINS_DIR'))\n"
                "pluginsd = os.path.join(PLUGINS_DIR, 'python.d', 'python_modules')\n")
    rc, out = check('--prefix', prefix)
    assert rc == 1 and 'this python.d.plugin is older than Netdata 1.36' in out, out
    with open(plugin, 'a') as f:   # 1.36 and later
        f.write("ENV_NETDATA_USER_PLUGINS_DIRS = 'NETDATA_USER_PLUGINS_DIRS'\n")
    rc, out = check('--prefix', prefix)
    assert 'older than Netdata 1.36' not in out, out


def _check_conf(prefix, conf, text):
    """--check of the agent under ``prefix`` once its anomalies.conf reads ``text``."""
    with open(conf, 'w') as f:
        f.write(text)
    return check('--prefix', prefix)


def test_check_says_when_the_jobs_read_another_agent_than_the_one_checked(tmp_path):
    """The shipped anomalies.conf reads 127.0.0.1:19999: on an agent listening elsewhere the job
    reads nothing, or another agent's charts, and --check's 'no chart yet' named a training wait."""
    prefix = str(tmp_path / 'opt/netdata')
    agent_tree(prefix)
    os.makedirs(prefix + '/etc/netdata/python.d')
    conf = prefix + '/etc/netdata/python.d/anomalies.conf'
    rc, out = _check_conf(prefix, conf, "# host: '127.0.0.1:7'\nanomalies:\n    host: '127.0.0.1:19999'   # the agent\n")
    assert "the jobs of {} read the agent at 127.0.0.1:19999, not this one (127.0.0.1:1)".format(conf) in out, out
    rc, out = _check_conf(prefix, conf, "anomalies:\n    host: 127.0.0.1:1\nparent:\n    host: 'parent:19999/host/child'\n")
    assert 'read the agent at' not in out, out


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason='needs the tests\' virtual environment as the module\'s')
def test_check_says_a_job_file_the_job_refuses_and_does_not_put_it_down_to_a_wait(tmp_path):
    """A job whose file is not valid YAML, or has a key the job refuses, never starts: --check
    said only 'no chart yet (the first training waits ... 5 minutes)', or OK while the agent
    still ran the job of the file as it was before the edit."""
    prefix = str(tmp_path / 'opt/netdata')
    agent_tree(prefix)
    plugins = os.path.join(prefix, 'etc/netdata/custom-plugins.d/python.d')
    os.makedirs(plugins)
    with open(os.path.join(plugins, 'anomalies.venv'), 'w') as f:
        f.write(sys.prefix + '\n')   # the tests' venv has the job's packages
    os.makedirs(prefix + '/etc/netdata/python.d')
    conf = prefix + '/etc/netdata/python.d/anomalies.conf'
    rc, out = _check_conf(prefix, conf, "anomalies:\n    host: '127.0.0.1:1'\n    lags_n: -1\nother:\n    host: '127.0.0.1:1'\n")
    assert rc == 1
    assert "error: {}: job anomalies: key 'lags_n': must be >= 0, got -1".format(conf) in out, out
    assert '{}: job other: ok'.format(conf) in out and 'error: {}: job other'.format(conf) not in out, out
    assert 'a job with an error above does not start' in out, out
    rc, out = _check_conf(prefix, conf, "anomalies:\n    host: '127.0.0.1:1'\n    lags_n: 3\n    lags_n: -1\n")   # a warning beside an error is said as a warning
    assert rc == 1 and "error: {}: job anomalies: key 'lags_n'".format(conf) in out, out
    assert "install.sh: {}: warning: job anomalies: key 'lags_n' is given twice".format(conf) in out, out
    rc, out = _check_conf(prefix, conf, "anomalies:\n    host: '127.0.0.1:1'\n\tlags_n: 5\n")
    assert 'error: {} is not valid YAML (line 3, column 1)'.format(conf) in out, out
    rc, out = _check_conf(prefix, conf, "anomalies:\n    host: '127.0.0.1:1'\n")
    assert '{}: job anomalies: ok'.format(conf) in out and 'does not start' not in out, out


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason='needs the tests\' virtual environment as the module\'s')
def test_check_of_an_older_installs_venv_does_not_call_its_check_config_an_error_in_the_file(tmp_path):
    """--check asks the installed venv's check-config for the netdata user's view (--user), which
    the check-config of an older install does not know (this checkout pulled, not installed yet,
    or a downgrade): its usage error was told as the file's, and the jobs said not to start."""
    prefix = str(tmp_path / 'opt/netdata')
    agent_tree(prefix)
    older = tmp_path / 'older-venv'
    (older / 'bin').mkdir(parents=True)
    # the venv's python as an older install's: its check-config refuses --user as argparse does
    (older / 'bin/python').write_text(
        '#!/bin/bash\nfor a; do [ "$a" = --user ] && { echo "usage: python -m collector [-h]" >&2; '
        'echo "python -m collector: error: unrecognized arguments: --user netdata" >&2; exit 2; }; done\n'
        'exec ' + sys.executable + ' "$@"\n')
    os.chmod(str(older / 'bin/python'), 0o755)
    plugins = os.path.join(prefix, 'etc/netdata/custom-plugins.d/python.d')
    os.makedirs(plugins)
    with open(os.path.join(plugins, 'anomalies.venv'), 'w') as f:
        f.write(str(older) + '\n')
    os.makedirs(prefix + '/etc/netdata/python.d')
    conf = prefix + '/etc/netdata/python.d/anomalies.conf'
    rc, out = _check_conf(prefix, conf, "anomalies:\n    host: '127.0.0.1:1'\n")
    assert '{}: job anomalies: ok'.format(conf) in out, out
    assert 'unrecognized arguments' not in out and 'does not start' not in out, out


def test_a_python_d_plugin_run_by_hand_is_not_taken_for_the_agents(tmp_path, replay):
    """The docs' debug run (python.d.plugin by hand, under timeout) has the plugin's path on its
    command line: --check took it for the agent's python.d.plugin and did not say that the
    agent's has exited, and the install told to kill it (and its timeout) with the agent's."""
    prefix = str(tmp_path / 'opt/netdata')
    agent_tree(prefix)
    plugin = prefix + '/usr/libexec/netdata/plugins.d/python.d.plugin'
    port = replay.host.rsplit(':', 1)[1]   # an agent that answers, with no anomalies chart
    by_hand = subprocess.Popen(['bash', '-c', 'exec -a "$0 anomalies debug trace nolock 1" sleep 60', plugin])
    # an agent's: a process named netdata started it
    agent = str(tmp_path / 'netdata')
    shutil.copy('/bin/bash', agent)
    started = None
    try:
        time.sleep(0.3)
        proc = subprocess.run(['bash', os.path.join(ROOT, 'install.sh'), '--check', '--port', port, '--prefix', prefix],
                              capture_output=True, text=True, timeout=60)
        out = proc.stdout + proc.stderr
        assert 'python.d.plugin is not running' in out, out
        started = subprocess.Popen([agent, '-c', '(exec -a "$0 1" sleep 60) & wait', plugin])
        time.sleep(0.3)
        proc = subprocess.run(['bash', os.path.join(ROOT, 'install.sh'), '--check', '--port', port, '--prefix', prefix],
                              capture_output=True, text=True, timeout=60)
        out = proc.stdout + proc.stderr
        assert 'python.d.plugin is not running' not in out, out
    finally:
        for p in (by_hand, started):
            if p is not None:
                subprocess.run(['pkill', '-P', str(p.pid)])
                p.kill()
                p.wait()


def test_check_says_the_agents_python_d_plugin_still_runs_the_version_it_loaded_before_the_install(tmp_path):
    """An upgrade over a running agent not run by systemd (a container, netdata -D) replaces the
    module, but the agent's python.d.plugin runs the one it loaded until it restarts: --check
    said OK from the old version's charts while the new one had never run."""
    prefix = str(tmp_path / 'opt/netdata')
    agent_tree(prefix)
    plugins = os.path.join(prefix, 'etc/netdata/custom-plugins.d/python.d')
    os.makedirs(plugins)
    module = os.path.join(plugins, 'anomalies.chart.py')
    plugin = prefix + '/usr/libexec/netdata/plugins.d/python.d.plugin'
    with agents_python_d_plugin(tmp_path, plugin, settle=2.5):
        open(module, 'w').close()   # installed after python.d.plugin started
        rc, out = check('--prefix', prefix)
        os.utime(module, (time.time() - 3600,) * 2)   # installed an hour before it started
        _, before = check('--prefix', prefix)
    assert rc == 1
    assert re.search(r"the agent's python\.d\.plugin started \d+ s ago, before {} was installed \(\d+ s ago\): "
                     r"it runs the version it loaded then; restart netdata\n".format(re.escape(module)), out), out
    assert 'before {} was installed'.format(module) not in before, before


def test_uninstall_removing_the_python_d_conf_it_made_says_only_what_it_did(tmp_path):
    """A python.d.conf the install made (with its zscores and pandas lines) goes whole: the lines
    are not looked for in it afterwards, which printed 'grep: ...: No such file or directory'."""
    prefix = str(tmp_path / 'opt/netdata')
    agent_tree(prefix)
    lib, pythond = prefix + '/var/lib/netdata', prefix + '/etc/netdata/python.d.conf'
    os.makedirs(lib)
    with open(pythond, 'w') as f:
        f.write('zscores: no\npandas: no\nanomalies: yes\n')
    made = subprocess.run(['sha256sum', pythond], capture_output=True, text=True).stdout.split()[0]
    with open(lib + '/anomalies-install.state', 'w') as f:
        f.write("config_dir_at={}/etc/netdata\nvenv={}/anomalies-venv\ncreated_pythond=1\npythond_sum={}\n"
                "quieted=$'zscores\\t# zscores: no\\npandas\\t# pandas: yes\\n'\n".format(prefix, lib, made))
    proc = subprocess.run(['bash', os.path.join(ROOT, 'install.sh'), '--uninstall', '--prefix', prefix, '--no-restart'],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'removed {} (the install created it)'.format(pythond) in proc.stdout
    assert not os.path.exists(pythond) and not os.path.exists(lib + '/anomalies-install.state')
    assert proc.stderr == '', proc.stderr


def test_a_second_uninstall_has_nothing_to_do_and_does_not_fail(tmp_path):
    """Automation that runs --uninstall twice (or on a node never installed) failed on the
    second: nothing installed is nothing to undo. A module in place without the install's
    record is still refused, by name."""
    prefix = str(tmp_path / 'opt/netdata')
    agent_tree(prefix)
    os.makedirs(prefix + '/var/lib/netdata')

    def uninstall():
        return subprocess.run(['bash', os.path.join(ROOT, 'install.sh'), '--uninstall', '--prefix', prefix,
                               '--no-restart'], capture_output=True, text=True, timeout=60)
    proc = uninstall()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'nothing to undo: no install record at {}-anomalies/install.state'.format(
        prefix) in proc.stdout, proc.stdout
    assert 'anomalies-models' not in proc.stdout, proc.stdout
    # the models a job the agent still ran saved after the first uninstall are named, not removed
    os.makedirs(prefix + '/var/lib/netdata/anomalies-models/anomalies')
    proc = uninstall()
    assert proc.returncode == 0 and ('{0}/anomalies-models holds models a job saved after the uninstall (the agent '
                                     'ran it until it restarted): remove it by hand'.format(
                                         prefix + '/var/lib/netdata')) in proc.stdout, proc.stdout
    assert os.path.isdir(prefix + '/var/lib/netdata/anomalies-models/anomalies')
    module = prefix + '/etc/netdata/custom-plugins.d/python.d/anomalies.chart.py'
    os.makedirs(os.path.dirname(module))
    open(module, 'w').close()
    proc = uninstall()
    assert proc.returncode == 1 and 'though {} is there'.format(module) in proc.stdout + proc.stderr, proc.stderr
    assert os.path.exists(module)


def test_uninstall_says_the_job_the_agent_still_runs_saves_its_models_again(tmp_path):
    """Until the agent restarts, its python.d.plugin runs the job it loaded, which writes its
    models folder again within a minute: the uninstall said only 'restart the agent to apply',
    and a later install's job took those files for its own."""
    prefix = str(tmp_path / 'opt/netdata')
    agent_tree(prefix)
    lib = prefix + '/var/lib/netdata'
    os.makedirs(lib + '/anomalies-models/anomalies')
    plugin = prefix + '/usr/libexec/netdata/plugins.d/python.d.plugin'

    def uninstall():
        with open(lib + '/anomalies-install.state', 'w') as f:
            f.write('config_dir_at={}/etc/netdata\nvenv={}/anomalies-venv\n'.format(prefix, lib))
        proc = subprocess.run(['bash', os.path.join(ROOT, 'install.sh'), '--uninstall', '--prefix', prefix,
                               '--no-restart'], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    out = uninstall()
    assert 'removed the saved models in {}/anomalies-models'.format(lib) in out and 'until then' not in out, out
    with agents_python_d_plugin(tmp_path, plugin):
        out = uninstall()
    assert ('until then the job it runs goes on, and saves its models in {}/anomalies-models again: remove that '
            'folder after the restart'.format(lib)) in out, out


def test_uninstall_removes_the_prometheus_textfiles_its_jobs_wrote(tmp_path):
    """python.d.plugin kills its jobs, so a job's textfile stays with its last values, and
    node-exporter served them (a flag up, AnomaliesNotUpdating firing) after the uninstall; a file
    of that name the jobs did not write is not theirs to remove."""
    prefix = str(tmp_path / 'opt/netdata')
    agent_tree(prefix)
    lib, conf = prefix + '/var/lib/netdata', prefix + '/etc/netdata/python.d/anomalies.conf'
    os.makedirs(lib)
    os.makedirs(os.path.dirname(conf))
    ours, other = str(tmp_path / 'ours.prom'), str(tmp_path / 'other.prom')
    with open(conf, 'w') as f:   # an edited file: kept
        f.write("prometheus_textfile: '{}'\nlocal:\n    host: '127.0.0.1:19999'\n"
                "child:\n    name: 'child'\n    prometheus_textfile: {}  # the child's\n"
                "# prometheus_textfile: '{}'\nhome:\n    prometheus_textfile: '~/home.prom'\n".format(
                    ours, other, str(tmp_path / 'commented.prom')))
    with open(ours, 'w') as f:
        f.write('anomaly_flag{anomalies_job="local",chart="system.ram"} 1.0\n'
                'anomaly_last_update_timestamp_seconds{anomalies_job="local"} 1.7e+09\n')
    with open(other, 'w') as f:
        f.write('node_textfile_something 1\n')
    with open(lib + '/anomalies-install.state', 'w') as f:
        f.write('config_dir_at={}/etc/netdata\nvenv={}/anomalies-venv\ninstalled_conf=1\n'.format(prefix, lib))
    proc = subprocess.run(['bash', os.path.join(ROOT, 'install.sh'), '--uninstall', '--prefix', prefix, '--no-restart'],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'removed the Prometheus textfile {} '.format(ours) in proc.stdout, proc.stdout
    assert not os.path.exists(ours) and os.path.exists(other) and os.path.exists(conf)
    # a path the job resolves itself (~, relative) is not guessed at here, but said
    assert 'left the Prometheus textfile ~/home.prom (' in proc.stdout, proc.stdout
    assert proc.stderr == '', proc.stderr


def test_the_install_record_is_read_as_data_never_run(tmp_path):
    """The record lies in the agent's lib dir, which the netdata user owns: a record it wrote
    (or put in place of root's) ran its commands as root at the next install, check or uninstall.
    Only assignments of the record's keys, as printf %q writes them, are taken."""
    prefix = str(tmp_path / 'opt/netdata')
    agent_tree(prefix)
    lib = prefix + '/var/lib/netdata'
    os.makedirs(lib)
    ran = tmp_path / 'ran'
    for planted in ('config_dir_at={}/etc/netdata\n$(touch {})\n'.format(prefix, ran),
                    'config_dir_at={}/etc/netdata;touch {}\n'.format(prefix, ran),
                    'venv=`touch {}`\n'.format(ran),
                    'PATH={}\n'.format(tmp_path)):
        with open(lib + '/anomalies-install.state', 'w') as f:
            f.write(planted)
        rc, out = check('--prefix', prefix)
        assert rc == 1
        assert 'the install record {}/anomalies-install.state holds lines no install writes'.format(lib) in out, out
        assert not ran.exists(), planted
    # what save_state writes (printf %q) is read back as it was
    value = "/a b/é/it's\n#~x:*?[]{}!$`;&|<>()\"\\"
    subprocess.run(['bash', '-c', 'printf "config_dir_at=%q\\nmade_dirs=%q\\nprevious_pythond=\'no\'\\n" "$1" "$2" > "$3"',
                    '_', prefix + '/etc/netdata', value, lib + '/anomalies-install.state'], check=True)
    proc = subprocess.run(['bash', '-c', 'eval "$(sed -n "/^record_keys=(/,/^}/p" "$1")"; read_record "$2" && '
                           'printf "%s|" "$config_dir_at" "$made_dirs" "$previous_pythond"',
                           '_', os.path.join(ROOT, 'install.sh'), lib + '/anomalies-install.state'],
                          capture_output=True, text=True)
    assert proc.stdout == '{}/etc/netdata|{}|no|'.format(prefix, value), proc.stdout + proc.stderr


def test_the_venv_is_built_in_a_folder_nobody_else_could_have_put_in_place(tmp_path):
    """The venv is built beside its place in the lib dir, which the netdata user owns: built at
    '<venv>.new.<pid>', removed and then made, a link put there in between (here, right after the
    removal) had it built in a folder of that user's, whose python this script then ran as root."""
    lib = tmp_path / 'lib'
    theirs = tmp_path / 'theirs'
    lib.mkdir()
    theirs.mkdir()
    fake = tmp_path / 'bin'
    fake.mkdir()
    # rm as the other user would race it: the moment a '.new.' path is removed, a link is there
    (fake / 'rm').write_text('#!/bin/bash\n/bin/rm "$@"\nfor a; do case "$a" in *.new.*) [ -e "$a" ] || '
                             'ln -s {} "$a" ;; esac; done\nexit 0\n'.format(theirs))
    # a python whose 'venv' and 'pip' only leave files
    (fake / 'py').write_text('#!/bin/bash\nif [ "$2" = venv ]; then d="${@: -1}"; mkdir -p "$d/bin"; '
                             'touch "$d/pyvenv.cfg"; cp "$0" "$d/bin/python"; fi\nexit 0\n')
    for f in ('rm', 'py'):
        os.chmod(str(fake / f), 0o755)
    target = str(lib / 'anomalies-venv')
    script = ('set -euo pipefail; here={root}; cleanup=(); trap \'/bin/rm -rf ${{cleanup[@]+"${{cleanup[@]}}"}}\' EXIT; '
              'eval "$(sed -n \'/^say()/p;/^die()/p;/^make_venv()/,/^}}/p\' {root}/install.sh)"; '
              'make_venv {fake}/py {target} pkg').format(root=ROOT, fake=fake, target=target)
    proc = subprocess.run(['bash', '-c', script], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PATH='{}:{}'.format(fake, os.environ['PATH'])))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert os.listdir(str(theirs)) == []
    assert os.path.isfile(target + '/pyvenv.cfg') and not os.path.islink(target)
    assert oct(os.stat(target).st_mode & 0o777) == '0o755'
    assert sorted(os.listdir(str(lib))) == ['anomalies-venv']


RETIRED_ALARMS = """# raise a warning alarm if an anomaly probability is consistently above 50%

 template: anomalies_anomaly_probabilities
       on: anomalies.probability
   lookup: average -2m foreach *
    every: 1m
     warn: $this > 50

 template: anomalies_anomaly_flags
       on: anomalies.anomaly
   lookup: sum -2m foreach *
    every: 1m
     warn: $this > 10
"""


def test_a_kept_health_file_with_the_retired_foreach_alarms_is_told(tmp_path):
    """A health.d/anomalies.conf an install keeps (the user's, often a copy of the retired
    collector's stock alarms) with `foreach` templates: Netdata 1.39 and later no longer make one
    alert per dimension of them, 2.x one on the sum of the chart's dimensions, which on this
    module's charts never clears. --check says so; the shipped file is no such one."""
    prefix = str(tmp_path / 'opt/netdata')
    agent_tree(prefix)
    health = os.path.join(prefix, 'etc/netdata/health.d')
    os.makedirs(health)
    with open(os.path.join(health, 'anomalies.conf'), 'w') as f:
        f.write(RETIRED_ALARMS)
    rc, out = check('--prefix', prefix)
    assert ("warning: {}/anomalies.conf has 'foreach' (line 5, 11), as the retired collector's alarms had: "
            "Netdata 1.39 and later".format(health)) in out, out
    assert 'replace the file with {}/health.d/anomalies.conf'.format(ROOT) in out
    with open(os.path.join(ROOT, 'health.d', 'anomalies.conf')) as f:
        shipped = f.read()
    with open(os.path.join(health, 'anomalies.conf'), 'w') as f:
        f.write(shipped)   # the shipped alarms name foreach in a comment only
    rc, out = check('--prefix', prefix)
    assert 'foreach' not in out, out


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason='needs the tests\' virtual environment as the module\'s')
@pytest.mark.parametrize('log', ['error.log', 'collector.log', 'journal', 'upgraded', 'upgraded-to-journal'])
def test_check_names_each_job_without_its_charts(tmp_path, log):
    """--check said OK when any job's anomalies.probability chart was there: a second job the
    agent never got going (reading a child the parent does not hold) passed. Each job python.d
    starts is looked for by its charts' type, and one without them named, with the last line
    the agent logged for it, or, while python.d.plugin is young, the training's wait. The line is
    found where the agent keeps python.d.plugin's: error.log up to Netdata 1.37, collector.log
    from 1.38, or the journal (read with journalctl) where systemd runs a 1.44 or later. An agent
    upgraded to 1.38 keeps the error.log of before, and one upgraded to a 1.44 under systemd its
    error.log or collector.log: their lines for the job are not the last. The journal is read
    once for all the jobs without charts, not once each."""
    from collector.replay import Recording, ReplayClock, ReplayServer
    from conftest import START
    from test_top import write_anomalies_recording
    prefix = str(tmp_path / 'opt/netdata')
    agent_tree(prefix)
    plugins = os.path.join(prefix, 'etc/netdata/custom-plugins.d/python.d')
    os.makedirs(plugins)
    open(os.path.join(plugins, 'anomalies.chart.py'), 'w').close()
    with open(os.path.join(plugins, 'anomalies.venv'), 'w') as f:
        f.write(sys.prefix + '\n')
    os.makedirs(prefix + '/etc/netdata/python.d')
    with open(prefix + '/etc/netdata/python.d.conf', 'w') as f:
        f.write('anomalies: yes\n')
    os.makedirs(prefix + '/var/log/netdata')
    bin_dir, env = tmp_path / 'bin', dict(os.environ)
    if log in ('journal', 'upgraded-to-journal'):   # what journalctl -u netdata prints of the lines python.d.plugin wrote to it
        log_path, stamp = str(tmp_path / 'journal.txt'), lambda t: time.strftime('%Y-%m-%dT%H:%M:%S+0000 h netdata[9]:', t)
        where = 'journalctl -u netdata'
        bin_dir.mkdir()
        (bin_dir / 'journalctl').write_text('#!/bin/sh\necho "$@" >> {0}.args\ncat {0}\n'.format(log_path))
        (bin_dir / 'journalctl').chmod(0o755)
        env['PATH'] = '{}:{}'.format(bin_dir, env['PATH'])
    else:
        log_path = where = prefix + '/var/log/netdata/' + ('collector.log' if log == 'upgraded' else log)
        stamp = lambda t: time.strftime('%Y-%m-%d %H:%M:%S:', t)
    if log.startswith('upgraded'):   # what the job logged while the agent was 1.37
        with open(prefix + '/var/log/netdata/error.log', 'w') as f:
            f.write("2023-06-01 00:00:00: python.d ERROR: anomalies[second] : cannot reach the agent\n")
    old = stamp(time.strptime('2024-01-01 00:00:00', '%Y-%m-%d %H:%M:%S'))
    with open(log_path, 'w') as f:
        f.write("{0} python.d ERROR: anomalies[second] : it holds no node 'child9'\n"
                "{0} python.d INFO: anomalies[second2] : another job's\n".format(old))
    conf = prefix + '/etc/netdata/python.d/anomalies.conf'
    rec = Recording(write_anomalies_recording(str(tmp_path / 'rec')))   # anomalies.* and anomalies_child.lan.*
    with ReplayServer(rec, ReplayClock(START + 120, stepped=True)) as server:
        port = server.host.rsplit(':', 1)[1]
        with open(conf, 'w') as f:
            f.write("anomalies:\n    host: '127.0.0.1:{0}'\nchild.lan:\n    host: '127.0.0.1:{0}/host/child.lan'\n"
                    "second:\n    name: 'child9'\n    host: '127.0.0.1:{0}/host/child9'\n"
                    "third:\n    name: 'child8'\n    host: '127.0.0.1:{0}/host/child8'\n".format(port))

        def run():
            proc = subprocess.run(['bash', os.path.join(ROOT, 'install.sh'), '--check', '--port', port,
                                   '--prefix', prefix], capture_output=True, text=True, timeout=120, env=env)
            return proc.returncode, proc.stdout + proc.stderr
        rc, out = run()
        plugin = prefix + '/usr/libexec/netdata/plugins.d/python.d.plugin'
        with agents_python_d_plugin(tmp_path, plugin):
            with open(log_path, 'a') as f:   # this python.d.plugin's
                f.write("{} python.d ERROR: anomalies[second] : still no node 'child9'\n".format(
                    stamp(time.localtime())))
            young_rc, young = run()
    assert rc == 1 and 'chart with context anomalies.probability exists' in out, out
    assert 'install.sh: job anomalies: chart anomalies.probability exists' in out, out
    assert 'install.sh: job child.lan: chart anomalies_child.lan.probability exists' in out, out
    assert ("install.sh: job second: no chart anomalies_child9.probability: the job did not start, or has no model "
            "(it reads no chart, or a node the agent does not hold); see the lines for anomalies[second] in "
            "{}, the last: {} python.d ERROR: anomalies[second] : it holds no node 'child9'\n".format(where, old)) in out, out
    assert 'install.sh: OK' not in out, out
    assert young_rc == 1 and ('job second: no chart anomalies_child9.probability yet: python.d.plugin started '
                              in young) and 'first training waits for train_min_n_secs (300 s)' in young, young
    # an error it logged is told, not one logged before this python.d.plugin started
    assert young.count('the last error it logged: ') == 1 and "anomalies[second] : still no node 'child9'\n" in young, young
    if log in ('journal', 'upgraded-to-journal'):   # asked for what this python.d.plugin logged, once it is running
        with open(log_path + '.args') as f:
            asked = f.read().splitlines()
        assert '--since' not in asked[0] and '-u netdata --since @' in asked[-1], asked
        assert len(asked) == 2, asked   # once a check, not once for each job without charts
    assert 'install.sh: job third: no chart anomalies_child8.probability: the job did not start' in out, out


def test_a_venv_of_another_program_the_record_names_is_neither_removed_nor_replaced(tmp_path):
    """The install record sits in the lib dir, which the netdata user writes: a record changed to
    name another program's venv had root remove it at --uninstall (any folder with a
    pyvenv.cfg), and replace it with this project's at the next install. Only a venv with this
    project installed is removed or replaced."""
    prefix = str(tmp_path / 'opt/netdata')
    agent_tree(prefix)
    lib = prefix + '/var/lib/netdata'
    os.makedirs(lib)
    theirs = tmp_path / 'opt/app/venv'
    (theirs / 'lib/python3.11/site-packages/requests-2.31.0.dist-info').mkdir(parents=True)
    (theirs / 'pyvenv.cfg').write_text('home = /usr/bin\n')
    state = lib + '/anomalies-install.state'
    with open(state, 'w') as f:
        f.write("config_dir_at={}/etc/netdata\nvenv={}\n".format(prefix, theirs))

    def run(*args):
        proc = subprocess.run(['bash', os.path.join(ROOT, 'install.sh'), '--prefix', prefix, '--no-restart'] +
                              list(args), capture_output=True, text=True, timeout=120)
        return proc.returncode, proc.stdout + proc.stderr
    rc, out = run('--uninstall')
    assert rc == 1 and 'error: {} is not a virtual environment with this project installed: left as it is'.format(
        theirs) in out, out
    assert (theirs / 'pyvenv.cfg').exists()
    rc, out = run()
    assert rc == 1 and ('{} is a virtual environment without this project installed: not replaced'.format(theirs)
                        in out), out
    assert (theirs / 'pyvenv.cfg').exists() and sorted(os.listdir(str(theirs / 'lib/python3.11/site-packages'))) == [
        'requests-2.31.0.dist-info']
    # this project's venv, as an install leaves it, is removed
    ours = tmp_path / 'ours'
    (ours / 'lib/python3.11/site-packages/netdata_anomalies-0.1.0.dist-info').mkdir(parents=True)
    (ours / 'pyvenv.cfg').write_text('home = /usr/bin\n')
    with open(state, 'w') as f:
        f.write("config_dir_at={}/etc/netdata\nvenv={}\n".format(prefix, ours))
    # a venv moved elsewhere, a link left in its place: neither removed nor replaced, and said so
    link = tmp_path / 'link'
    link.symlink_to(ours)
    with open(state, 'w') as f:
        f.write("config_dir_at={}/etc/netdata\nvenv={}\n".format(prefix, link))
    for args, said in ((('--uninstall',), 'left as it is'), ((), 'not replaced (give --venv the folder it points to')):
        rc, out = run(*args)
        assert rc == 1 and '{} is a symbolic link (to {}): {}'.format(link, ours, said) in out, out
        assert link.is_symlink() and (ours / 'pyvenv.cfg').exists()
    with open(state, 'w') as f:
        f.write("config_dir_at={}/etc/netdata\nvenv={}\n".format(prefix, ours))
    rc, out = run('--uninstall')
    assert rc == 0 and 'removed {}'.format(ours) in out and not ours.exists(), out


def test_a_venv_of_this_project_is_known_as_such_whatever_its_folder_is_called(tmp_path):
    """The venv's folder was read as a pattern: one named with brackets ('venv[2]') was taken for
    another program's, left at --uninstall and refused at the next install."""
    script = 'eval "$(sed -n \'/^ours_venv()/,/^}}/p\' {}/install.sh)"; ours_venv "$1" && echo ours || echo theirs'.format(ROOT)
    for name in ('venv[2]', 'my venv', 'v*'):
        d = tmp_path / name
        (d / 'lib/python3.11/site-packages/netdata_anomalies-0.1.0.dist-info').mkdir(parents=True)
        (d / 'pyvenv.cfg').write_text('home = /usr/bin\n')
        other = tmp_path / (name + '-other')
        (other / 'lib/python3.11/site-packages/requests-2.31.0.dist-info').mkdir(parents=True)
        (other / 'pyvenv.cfg').write_text('home = /usr/bin\n')
        said = [subprocess.run(['bash', '-c', script, 'x', str(v)], capture_output=True, text=True).stdout.strip()
                for v in (d, str(d) + '/', other)]
        assert said == ['ours', 'ours', 'theirs'], (name, said)


def root_only_says(path):
    """What install.sh's root_only prints of ``path``, or 'ok' when only root can change it."""
    script = 'eval "$(sed -n \'/^root_only()/,/^}}/p\' {}/install.sh)"; root_only "$1" && echo ok'.format(ROOT)
    return subprocess.run(['bash', '-c', script, 'x', str(path)], capture_output=True, text=True,
                          timeout=10).stdout.strip()


def test_only_a_folder_no_other_user_can_change_is_root_only(tmp_path):
    """root_only decides where the venv whose python the install runs as root may be: a folder
    another user owns, or can write without the sticky bit (which keeps root's files in /tmp
    root's), anywhere on the way from / is refused, and named."""
    theirs = tmp_path / 'theirs'
    (theirs / 'mine').mkdir(parents=True)
    shutil.chown(str(theirs), 'nobody')
    shared = tmp_path / 'shared'
    shared.mkdir()
    shared.chmod(0o777)
    group = tmp_path / 'group'
    group.mkdir()
    shutil.chown(str(group), group='nogroup')
    group.chmod(0o775)
    roots = tmp_path / 'roots'
    roots.mkdir()
    roots.chmod(0o775)   # group-writable, by root's group
    sticky = tmp_path / 'sticky'
    (sticky / 'mine').mkdir(parents=True)
    sticky.chmod(0o1777)
    assert root_only_says(theirs / 'mine' / 'venv') == '{} is owned by nobody'.format(theirs)
    assert root_only_says(shared / 'venv') == '{} can be written by every user'.format(shared)
    assert root_only_says(group / 'venv') == '{} can be written by the group nogroup'.format(group)
    assert root_only_says(roots / 'venv') == 'ok'
    assert root_only_says(sticky / 'mine' / 'venv') == 'ok'
    assert root_only_says(theirs / '..' / 'roots') == 'ok'   # '..' is the folder's parent, whoever owns the folder
    assert root_only_says('') == "'' is no folder's path"


def test_a_link_another_user_can_change_is_not_root_only(tmp_path):
    """root_only took the path realpath gave: a link in the netdata user's lib dir to a folder of
    root's passed, and the install built the venv (and ran its pip, as root) through that link,
    which that user could point at a folder of its own meanwhile; --check likewise. A link is
    taken as the system walks it: its own folder, and the link, must be root's."""
    roots = tmp_path / 'roots'
    (roots / 'venv').mkdir(parents=True)
    theirs = tmp_path / 'theirs'
    theirs.mkdir()
    (theirs / 'link').symlink_to(roots)
    shutil.chown(str(theirs), 'nobody')
    assert root_only_says(theirs / 'link' / 'venv') == '{} is owned by nobody'.format(theirs)
    # a link of root's, in a folder of root's, to a folder of root's (or through one to another user's)
    (tmp_path / 'to-roots').symlink_to('roots')
    (tmp_path / 'to-theirs').symlink_to(theirs / 'link')
    assert root_only_says(tmp_path / 'to-roots' / 'venv') == 'ok'
    assert root_only_says(tmp_path / 'to-theirs' / 'venv') == '{} is owned by nobody'.format(theirs)
    # in a sticky folder, another user's link is theirs to change
    sticky = tmp_path / 'sticky'
    sticky.mkdir()
    sticky.chmod(0o1777)
    (sticky / 'link').symlink_to(roots)
    os.chown(str(sticky / 'link'), pwd.getpwnam('nobody').pw_uid, -1, follow_symlinks=False)
    assert root_only_says(sticky / 'link' / 'venv') == '{} is a link owned by nobody'.format(sticky / 'link')
    assert root_only_says('relative/venv') == "'relative/venv' is no folder's path"


def test_check_does_not_run_as_root_a_venv_another_user_can_change(tmp_path):
    """An older version kept the venv in the agent's lib dir, the netdata user's: it could put a
    folder of its own in the venv's place, and --check (run as root) ran its python."""
    prefix = str(tmp_path / 'opt/netdata')
    agent_tree(prefix)
    lib = prefix + '/var/lib/netdata'
    os.makedirs(lib)
    ran = tmp_path / 'ran'
    venv = lib + '/anomalies-venv'
    os.makedirs(venv + '/bin')
    with open(venv + '/bin/python', 'w') as f:
        f.write('#!/bin/sh\necho "$@" >> {}\nexit 0\n'.format(ran))
    os.chmod(venv + '/bin/python', 0o755)
    shutil.chown(lib, 'nobody')
    plugins = prefix + '/etc/netdata/custom-plugins.d/python.d'
    os.makedirs(plugins)
    for name in ('anomalies.chart.py', 'anomalies.venv'):
        with open(os.path.join(plugins, name), 'w') as f:
            f.write(venv + '\n')
    with open(lib + '/anomalies-install.state', 'w') as f:
        f.write('config_dir_at={}/etc/netdata\nvenv={}\n'.format(prefix, venv))
    # a python without yaml: python.d.conf would be read with the venv's next
    no_yaml = tmp_path / 'no-yaml-python'
    no_yaml.write_text('#!/bin/sh\nexit 1\n')
    no_yaml.chmod(0o755)
    rc, out = check('--prefix', prefix, '--python', str(no_yaml))
    assert rc == 1 and ('the virtual environment {} named in {}/anomalies.venv is not run: {} is owned by nobody, '
                        'and --check runs it as root; run sudo ./install.sh again, which moves it to '
                        '{}-anomalies/venv'.format(venv, plugins, lib, prefix)) in out, out
    assert not ran.exists(), ran.read_text()


def test_an_install_keeps_its_venv_and_record_only_where_no_other_user_can_change_them(tmp_path):
    """The install runs the venv's python as root: a venv or record folder another user could
    replace is refused, by name, before anything is made."""
    prefix = str(tmp_path / 'opt/netdata')
    agent_tree(prefix)
    os.makedirs(prefix + '/var/lib/netdata')
    shutil.chown(prefix + '/var/lib/netdata', 'nobody')
    theirs = tmp_path / 'theirs'
    theirs.mkdir()
    shutil.chown(str(theirs), 'nobody')

    def install(*args):
        proc = subprocess.run(['bash', os.path.join(ROOT, 'install.sh'), '--prefix', prefix, '--no-restart'] +
                              list(args), capture_output=True, text=True, timeout=120)
        return proc.returncode, proc.stdout + proc.stderr
    tree = sorted(os.listdir(str(tmp_path)))
    rc, out = install('--venv', str(theirs / 'venv'))
    assert rc == 1 and ('the virtual environment cannot go in {0}/venv: {0} is owned by nobody, and the install '
                        'runs its python as root'.format(theirs)) in out, out
    assert os.listdir(str(theirs)) == [] and sorted(os.listdir(str(tmp_path / 'opt'))) == ['netdata']
    # the default place, beside the agent's tree (its var/ may be the netdata user's), when that is another user's
    shutil.chown(prefix + '/var', 'nobody')
    shutil.chown(prefix + '/var/lib', 'nobody')
    shutil.chown(str(tmp_path / 'opt'), 'nobody')
    rc, out = install()
    assert rc == 1 and ('cannot keep the install record and the venv in {0}/opt/netdata-anomalies: {0}/opt '
                        'is owned by nobody'.format(tmp_path)) in out, out
    assert sorted(os.listdir(str(tmp_path / 'opt'))) == ['netdata'] and sorted(os.listdir(str(tmp_path))) == tree


def test_a_link_the_netdata_user_changes_in_the_lib_dir_has_root_remove_nothing_of_anyone_else(tmp_path):
    """--uninstall (and an upgrade, the previous venv) removed the venv at the path the record named
    after looking at it: through a link in the lib dir, pointed at a folder of root's between the
    look and the removal (here by rm itself, as a racing netdata user would), root removed that
    folder. The netdata user's .cache made a link to another user's cache, or to any folder
    holding a netdata-anomalies, had that removed as 'the standalone runs' saved models'."""
    prefix = str(tmp_path / 'opt/netdata')
    agent_tree(prefix)
    lib = prefix + '/var/lib/netdata'
    fake = lib + '/fake/ssh'   # a venv of this project's, as the check sees it
    os.makedirs(fake + '/lib/python3.11/site-packages/netdata_anomalies-0.1.0.dist-info')
    open(fake + '/pyvenv.cfg', 'w').close()
    os.symlink(lib + '/fake', lib + '/L')
    precious = tmp_path / 'etc/ssh'
    precious.mkdir(parents=True)
    (precious / 'sshd_config').write_text('keep\n')
    others = tmp_path / 'home/alice/.cache/netdata-anomalies'
    (others / 'models').mkdir(parents=True)
    os.symlink(str(others.parent), lib + '/.cache')
    with open(lib + '/anomalies-install.state', 'w') as f:
        f.write('config_dir_at={}/etc/netdata\nvenv={}/L/ssh\n'.format(prefix, lib))
    fake_bin = tmp_path / 'bin'
    fake_bin.mkdir()
    (fake_bin / 'rm').write_text('#!/bin/bash\nfor a; do case "$a" in *ssh) ln -sfn {} {}/L ;; esac; done\n'
                                 'exec /bin/rm "$@"\n'.format(precious.parent, lib))
    (fake_bin / 'rm').chmod(0o755)
    proc = subprocess.run(['bash', os.path.join(ROOT, 'install.sh'), '--uninstall', '--prefix', prefix, '--no-restart'],
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PATH='{}:{}'.format(fake_bin, os.environ['PATH'])))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (precious / 'sshd_config').exists() and not os.path.exists(fake), proc.stdout
    assert (others / 'models').is_dir(), proc.stdout
    assert 'kept {0}/.cache/netdata-anomalies: {0}/.cache is a link (to {1}), not followed'.format(
        lib, others.parent) in proc.stdout, proc.stdout


def test_uninstall_after_an_upgrade_stopped_before_its_record_leaves_no_venv(tmp_path):
    """An upgrade over an older install builds the venv in root's folder and removes the older one
    before it writes its record: stopped in between, the record (the older version's, in the lib
    dir) names the removed venv, and --uninstall left the new one and its folder behind."""
    prefix = str(tmp_path / 'opt/netdata')
    agent_tree(prefix)
    lib, own = prefix + '/var/lib/netdata', prefix + '-anomalies'
    os.makedirs(lib)
    os.makedirs(own + '/venv/lib/python3.11/site-packages/netdata_anomalies-0.1.0.dist-info')
    open(own + '/venv/pyvenv.cfg', 'w').close()
    with open(lib + '/anomalies-install.state', 'w') as f:
        f.write('config_dir_at={}/etc/netdata\nvenv={}/anomalies-venv\n'.format(prefix, lib))
    proc = subprocess.run(['bash', os.path.join(ROOT, 'install.sh'), '--uninstall', '--prefix', prefix, '--no-restart'],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'removed {}/venv'.format(own) in proc.stdout and not os.path.exists(own), proc.stdout
    assert os.listdir(lib) == [], os.listdir(lib)


def test_an_upgrade_does_not_remove_the_venv_it_built_as_the_previous_one(tmp_path):
    """The record's venv, a path through a link in the lib dir to the new venv's place (the
    netdata user's, in an older version's record), is not root's alone, so the upgrade builds the
    venv in root's folder; it then removed 'the previous virtual environment', the same folder
    under the other path: the install ended OK with the module naming a venv that is not there."""
    prefix = str(tmp_path / 'opt/netdata')
    agent_tree(prefix)
    lib, own = prefix + '/var/lib/netdata', prefix + '-anomalies'
    os.makedirs(lib)
    os.symlink(own, lib + '/L')
    shutil.chown(lib, 'nobody')
    with open(lib + '/anomalies-install.state', 'w') as f:
        f.write('config_dir_at={}/etc/netdata\nvenv={}/L/venv\n'.format(prefix, lib))
    # the agent's python, whose venv and pip only leave what an install looks for
    python = tmp_path / 'python3'
    python.write_text('#!/bin/bash\nif [ "$1 $2" = "-m venv" ]; then d="${{@: -1}}"; mkdir -p "$d/bin"; '
                      'touch "$d/pyvenv.cfg"; cp "$0" "$d/bin/python"; exit 0; fi\n'
                      'if [ "$1 $2 $3" = "-m pip install" ]; then [ "$4" = --quiet ] && [ "$5" = --upgrade ] || '
                      'mkdir -p "$(dirname "$0")/../lib/python3.11/site-packages/netdata_anomalies-0.1.0.dist-info"; '
                      'exit 0; fi\nexec {} "$@"\n'.format(systemd_python3()))
    python.chmod(0o755)
    proc = subprocess.run(['bash', os.path.join(ROOT, 'install.sh'), '--prefix', prefix, '--no-restart',
                           '--python', str(python)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'the virtual environment is now {}/venv, in place of {}/L/venv'.format(own, lib) in proc.stdout, proc.stdout
    assert 'removed the previous virtual environment' not in proc.stdout, proc.stdout
    assert os.path.isfile(own + '/venv/pyvenv.cfg'), proc.stdout
    with open(prefix + '/etc/netdata/custom-plugins.d/python.d/anomalies.venv') as f:
        assert f.read() == own + '/venv\n'


def planted_record_tree(tmp_path):
    """An agent tree with its lib dir, where an older version kept its record, and a folder of
    someone's a planted record may name: (prefix, lib dir, the record's path, that folder)."""
    prefix = str(tmp_path / 'opt/netdata')
    agent_tree(prefix)
    lib = prefix + '/var/lib/netdata'
    os.makedirs(lib)
    keep = tmp_path / 'keep'
    keep.mkdir()
    return prefix, lib, lib + '/anomalies-install.state', keep


def test_an_install_record_root_did_not_write_is_not_read(tmp_path):
    """An older version's record lies in the lib dir, where the netdata user may put any file:
    one of its own (naming folders for --uninstall to remove, a python.d.conf it 'created') was
    read, and an upgrade made it root's own. Every install writes the record as root, as one
    file: any other is refused, by name."""
    prefix, lib, state, keep = planted_record_tree(tmp_path)
    planted = tmp_path / 'planted.state'
    planted.write_text('config_dir_at={}/etc/netdata\nmade_dirs={}\n'.format(prefix, keep))

    def run(*args):
        proc = subprocess.run(['bash', os.path.join(ROOT, 'install.sh'), '--prefix', prefix, '--no-restart'] +
                              list(args), capture_output=True, text=True, timeout=60)
        return proc.returncode, proc.stdout + proc.stderr
    shutil.copy(str(planted), state)
    shutil.chown(state, 'nobody')
    for args in (('--uninstall',), ()):
        rc, out = run(*args)
        assert rc == 1 and ('the install record {} is not read: it is owned by nobody, and an install writes it as '
                            'root'.format(state)) in out, out
    os.remove(state)
    os.symlink(str(planted), state)
    rc, out = run('--uninstall')
    assert rc == 1 and 'the install record {} is not read: it is a link (to {})'.format(state, planted) in out, out
    os.remove(state)
    os.link(str(planted), state)
    rc, out = run('--uninstall')
    assert rc == 1 and 'the install record {} is not read: it has 2 hard links'.format(state) in out, out
    assert keep.is_dir() and not os.path.exists(prefix + '-anomalies')


def test_after_an_older_version_ran_over_this_ones_install_its_newer_record_is_the_one_read(tmp_path):
    """Installed, then an older version installed over it (its record and venv in the lib dir),
    then --uninstall with this version: root's own record, older, was read, and the older
    version's venv was left for good."""
    prefix = str(tmp_path / 'opt/netdata')
    agent_tree(prefix)
    lib, own = prefix + '/var/lib/netdata', prefix + '-anomalies'
    for venv in (own + '/venv', lib + '/anomalies-venv'):
        os.makedirs(venv + '/lib/python3.11/site-packages/netdata_anomalies-0.1.0.dist-info')
        open(venv + '/pyvenv.cfg', 'w').close()
    with open(own + '/install.state', 'w') as f:
        f.write('config_dir_at={}/etc/netdata\nvenv={}/venv\n'.format(prefix, own))
    os.utime(own + '/install.state', (time.time() - 3600,) * 2)
    with open(lib + '/anomalies-install.state', 'w') as f:
        f.write('config_dir_at={}/etc/netdata\nvenv={}/anomalies-venv\n'.format(prefix, lib))
    proc = subprocess.run(['bash', os.path.join(ROOT, 'install.sh'), '--uninstall', '--prefix', prefix, '--no-restart'],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'removed {}/anomalies-venv'.format(lib) in proc.stdout and 'removed {}/venv'.format(own) in proc.stdout, \
        proc.stdout
    assert os.listdir(lib) == [] and not os.path.exists(own), proc.stdout


def test_an_install_record_given_another_file_after_its_look_is_not_read(tmp_path):
    """The record was looked at by its name (root's, one file), then opened by that name again to
    be read: the netdata user, whose lib dir holds an older version's record, could give the name
    to a file of its own in between (here stat itself, as a racing rename would), and that file's
    folders, python.d.conf or config dir were taken as root's install. It is read from the file
    that was looked at."""
    prefix, lib, state, keep = planted_record_tree(tmp_path)
    with open(state, 'w') as f:   # an older version's, as root wrote it
        f.write('config_dir_at={}/etc/netdata\n'.format(prefix))
    mine = lib + '/.mine'
    with open(mine, 'w') as f:
        f.write('config_dir_at={}/etc/netdata\nmade_dirs={}\n'.format(prefix, keep))
    shutil.chown(mine, 'nobody')
    shutil.chown(lib, 'nobody')
    fake_bin = tmp_path / 'bin'
    fake_bin.mkdir()
    (fake_bin / 'stat').write_text('#!/bin/bash\n/usr/bin/stat "$@"; rc=$?\n'
                                   '[ -e {0} ] && mv -f {0} {1}\nexit $rc\n'.format(mine, state))
    (fake_bin / 'stat').chmod(0o755)
    proc = subprocess.run(['bash', os.path.join(ROOT, 'install.sh'), '--uninstall', '--prefix', prefix, '--no-restart'],
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PATH='{}:{}'.format(fake_bin, os.environ['PATH'])))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and ('the install record {} is not read: another file took its name as it was '
                                     'read'.format(state)) in out, out
    assert keep.is_dir(), out


def test_each_agent_keeps_its_venv_and_record_in_a_folder_of_its_own():
    """Agents with lib dirs side by side (--lib-dir /var/lib/netdata-a and -b) shared one folder
    beside them, and so one record: the second install went into the first agent."""
    script = 'eval "$(sed -n \'/^own_dir_of()/,/^}}/p\' {}/install.sh)"; for l; do own_dir_of "$l"; echo; done'.format(ROOT)
    libs = ['/var/lib/netdata', '/var/lib/netdata/', '/var/lib/netdata-a', '/var/lib/netdata-b',
            '/opt/netdata/var/lib/netdata', '/srv/agent2/lib']
    said = subprocess.run(['bash', '-c', script, 'x'] + libs, capture_output=True, text=True,
                          timeout=10).stdout.splitlines()
    assert said == ['/var/lib/netdata-anomalies', '/var/lib/netdata-anomalies', '/var/lib/netdata-a-anomalies',
                    '/var/lib/netdata-b-anomalies', '/opt/netdata-anomalies', '/srv/agent2/lib-anomalies'], said


def test_an_older_versions_install_over_this_ones_is_undone_as_the_first_install_found_things(tmp_path):
    """This version installed, then an older one over it, then --uninstall with this version: the
    older version's record (the newer) took this install's changes for what was there before
    ('anomalies: yes', the installed anomalies.conf as the admin's), and the uninstall left the
    module enabled and the files in place. Root's own record holds what the first install found;
    the older version's adds its venv."""
    prefix = str(tmp_path / 'opt/netdata')
    agent_tree(prefix)
    lib, own, etc = prefix + '/var/lib/netdata', prefix + '-anomalies', prefix + '/etc/netdata'
    for venv in (own + '/venv', lib + '/anomalies-venv'):
        os.makedirs(venv + '/lib/python3.11/site-packages/netdata_anomalies-0.1.0.dist-info')
        open(venv + '/pyvenv.cfg', 'w').close()
    os.makedirs(etc + '/python.d')
    shutil.copy(os.path.join(ROOT, 'anomalies.conf'), etc + '/python.d/anomalies.conf')
    with open(etc + '/python.d.conf', 'w') as f:
        f.write('example: no\nanomalies: yes\n')
    conf_sum = subprocess.run(['sha256sum', etc + '/python.d/anomalies.conf'], capture_output=True,
                              text=True).stdout.split()[0]
    with open(own + '/install.state', 'w') as f:
        f.write("config_dir_at={}\nvenv={}/venv\nhad_pythond_line=1\npythond_line=$'# anomalies: no'\n"
                "installed_conf=1\nwritten_conf_sum={}\n".format(etc, own, conf_sum))
    os.utime(own + '/install.state', (time.time() - 3600,) * 2)
    with open(lib + '/anomalies-install.state', 'w') as f:   # an older version's, over this install
        f.write("config_dir_at={}\nvenv={}/anomalies-venv\nhad_pythond_line=1\npythond_line=$'anomalies: yes'\n"
                .format(etc, lib))
    proc = subprocess.run(['bash', os.path.join(ROOT, 'install.sh'), '--uninstall', '--prefix', prefix, '--no-restart'],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(etc + '/python.d.conf') as f:
        assert f.read() == 'example: no\n# anomalies: no\n', proc.stdout
    assert not os.path.exists(etc + '/python.d/anomalies.conf'), proc.stdout
    assert not os.path.exists(lib + '/anomalies-venv') and not os.path.exists(own), proc.stdout


@pytest.mark.parametrize('edited', [True, False])
def test_uninstall_keeps_an_alarm_file_an_older_install_recorded_no_checksum_of(tmp_path, edited):
    """An install from before the record held the alarm file's checksum: an admin's edit of it
    was taken for ours, and uninstall deleted it. Only this version's own file is removed."""
    prefix = str(tmp_path / 'opt/netdata')
    agent_tree(prefix)
    own, etc = prefix + '-anomalies', prefix + '/etc/netdata'
    os.makedirs(own + '/venv/lib/python3.11/site-packages/netdata_anomalies-0.1.0.dist-info')
    open(own + '/venv/pyvenv.cfg', 'w').close()
    os.makedirs(etc + '/health.d')
    health = etc + '/health.d/anomalies.conf'
    shutil.copy(os.path.join(ROOT, 'health.d/anomalies.conf'), health)
    if edited:
        with open(health, 'a') as f:
            f.write('# my thresholds: keep\n')
    with open(etc + '/python.d.conf', 'w') as f:
        f.write('anomalies: yes\n')
    with open(own + '/install.state', 'w') as f:
        f.write("config_dir_at={}\nvenv={}/venv\nhad_pythond_line=0\ninstalled_health=1\n".format(etc, own))
    proc = subprocess.run(['bash', os.path.join(ROOT, 'install.sh'), '--uninstall', '--prefix', prefix, '--no-restart'],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert os.path.exists(health) == edited, proc.stdout
    if edited:
        assert 'kept {}: it differs from this version'.format(health) in proc.stdout, proc.stdout


def test_enabling_the_module_sets_the_anomalies_line_python_d_reads_of_several(tmp_path):
    """python.d.conf with 'anomalies: no' twice (an admin's own line appended): YAML, and so
    python.d.plugin, takes the last. The install set the first to yes and said it enabled a
    module that stayed off; it sets the last, and puts it back on uninstall."""
    import yaml
    conf = tmp_path / 'python.d.conf'
    conf.write_text('enabled: yes\nanomalies: no\nexample: no\n# local\nanomalies: no\n')
    functions = subprocess.run(['sed', '-n', '/^pythond_line()/,/^}/p;/^replace_pythond_line()/,/^}/p',
                                os.path.join(ROOT, 'install.sh')], capture_output=True, text=True).stdout
    script = functions + 'pythond_conf="$1"\nbefore="$(pythond_line)"\nreplace_pythond_line "anomalies: yes"\n' \
        'echo "$before"\n'
    proc = subprocess.run(['bash', '-c', script, 'bash', str(conf)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and proc.stdout == 'anomalies: no\n', proc.stdout + proc.stderr
    assert conf.read_text() == 'enabled: yes\nanomalies: no\nexample: no\n# local\nanomalies: yes\n'
    assert yaml.safe_load(conf.read_text())['anomalies'] is True
    undo = functions + 'pythond_conf="$1"\nreplace_pythond_line "anomalies: no"\n'
    subprocess.run(['bash', '-c', undo, 'bash', str(conf)], check=True, timeout=30)
    assert conf.read_text() == 'enabled: yes\nanomalies: no\nexample: no\n# local\nanomalies: no\n'


def test_uninstall_goes_through_a_lib_dir_the_admin_made_a_link(tmp_path):
    """/var/lib/netdata a link to a bigger disk: the standalone runs' models in its .cache were
    refused as taken through a link (the lib dir's path, as named, is not where its .cache is),
    and the uninstall failed, keeping its record."""
    prefix = str(tmp_path / 'opt/netdata')
    agent_tree(prefix)
    disk = tmp_path / 'disk/netdata'
    (disk / '.cache/netdata-anomalies/models').mkdir(parents=True)
    os.makedirs(prefix + '/var/lib')
    os.symlink(str(disk), prefix + '/var/lib/netdata')
    os.makedirs(prefix + '-anomalies')
    with open(prefix + '-anomalies/install.state', 'w') as f:
        f.write('config_dir_at={}/etc/netdata\nvenv={}-anomalies/venv\n'.format(prefix, prefix))
    proc = subprocess.run(['bash', os.path.join(ROOT, 'install.sh'), '--uninstall', '--prefix', prefix, '--no-restart'],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ("removed the standalone runs' saved models in {}/var/lib/netdata/.cache/netdata-anomalies".format(prefix)
            in proc.stdout), proc.stdout
    assert os.listdir(str(disk / '.cache')) == [] and not os.path.exists(prefix + '-anomalies'), proc.stdout


def _plugin_setup(tmp_path, pythond_conf, plugin_config=None):
    """A fake agent tree with the module installed, ``python.d.conf`` as given, and the jobs run
    as a plugins.d plugin as docs/install.md sets one up (of ``plugin_config``: default the
    module's anomalies.conf). Returns (prefix, the plugin's path, the module's anomalies.conf)."""
    prefix = str(tmp_path / 'opt/netdata')
    agent_tree(prefix)
    etc = prefix + '/etc/netdata'
    venv = str(tmp_path / 'venv')
    os.makedirs(venv + '/bin')
    with open(venv + '/bin/python', 'w') as f:
        f.write('#!/bin/sh\nexit 0\n')
    os.chmod(venv + '/bin/python', 0o755)
    os.makedirs(etc + '/custom-plugins.d/python.d')
    os.makedirs(etc + '/python.d')
    for name in ('anomalies.chart.py', 'anomalies.venv'):
        with open(etc + '/custom-plugins.d/python.d/' + name, 'w') as f:
            f.write(venv + '\n')
    conf = etc + '/python.d/anomalies.conf'
    with open(conf, 'w') as f:
        f.write('anomalies:\n  host: 127.0.0.1:19999\n')
    with open(etc + '/python.d.conf', 'w') as f:
        f.write(pythond_conf)
    plugin = etc + '/custom-plugins.d/anomalies.plugin'
    with open(plugin, 'w') as f:
        f.write('#!/bin/sh\nexec {}/bin/python -m collector run \\\n  --config {} --update-every "${{1:-1}}"\n'.format(
            venv, plugin_config or conf))
    os.chmod(plugin, 0o755)
    return prefix, plugin, conf


def test_check_takes_the_jobs_run_as_a_plugins_d_plugin_for_the_module_off_in_python_d_conf(tmp_path):
    """docs/install.md's plugins.d setup turns the module off in python.d.conf: --check said
    'not enabled' (a failure) of the setup it documents, and said nothing when both ran the
    jobs, each chart written twice."""
    # (where the agent's python3 has no PyYAML, --check reads the line as a grep, and tells no reason)
    has_yaml = not subprocess.run([systemd_python3(), '-c', 'import yaml'], capture_output=True).returncode
    off = ": 'anomalies: no' (line 1) turns the module off" if has_yaml else ''
    prefix, plugin, conf = _plugin_setup(tmp_path / 'off', 'anomalies: no\n')
    pythond = prefix + '/etc/netdata/python.d.conf'
    _, out = check('--prefix', prefix)
    assert ("not enabled in {}{}: the jobs of {} run as the plugins.d plugin {}\n".format(
        pythond, off, conf, plugin)) in out, out
    prefix, plugin, conf = _plugin_setup(tmp_path / 'both', 'anomalies: yes\n')
    _, out = check('--prefix', prefix)
    assert 'enabled in {}/etc/netdata/python.d.conf\n'.format(prefix) in out, out
    assert ('{} runs the jobs of {} too, as a plugins.d plugin: both write each of their charts (the agent logs '
            "'collected point is in the past'); set anomalies: no in".format(plugin, conf)) in out, out
    # a plugin of jobs of its own (another file, as the end-to-end test's) is no duplicate
    prefix, plugin, conf = _plugin_setup(tmp_path / 'own', 'anomalies: yes\n', str(tmp_path / 'own.conf'))
    _, out = check('--prefix', prefix)
    assert 'as a plugins.d plugin' not in out, out
    for own in (str(tmp_path / 'own.conf'), '{}/etc/netdata/python.d/anomalies.conf.local'):   # (not a prefix of it)
        prefix = str(tmp_path / 'own-off' / os.path.basename(own) / 'opt/netdata')
        _, plugin, conf = _plugin_setup(tmp_path / 'own-off' / os.path.basename(own), 'anomalies: no\n',
                                        own.format(prefix))
        _, out = check('--prefix', prefix)
        assert "not enabled in {}/etc/netdata/python.d.conf{}\n".format(prefix, off) in out, out


def test_check_says_an_anomalies_conf_edited_since_the_jobs_started_is_not_applied_yet(tmp_path):
    """python.d.plugin reads the job file at its start: an edit is applied at the agent's restart,
    and --check said OK of a file the jobs did not run with."""
    prefix, _, conf = _plugin_setup(tmp_path, 'anomalies: yes\n')
    plugin = prefix + '/usr/libexec/netdata/plugins.d/python.d.plugin'
    with agents_python_d_plugin(tmp_path, plugin, settle=2.5):
        with open(conf, 'a') as f:
            f.write('  train_min_n_secs: 120\n')   # edited after python.d.plugin started
        _, out = check('--prefix', prefix)
        os.utime(conf, (time.time() - 3600,) * 2)   # edited an hour before it started
        _, before = check('--prefix', prefix)
    assert re.search(r"warning: {} changed \d+ s ago, after the agent's python\.d\.plugin started \(\d+ s ago\): its "
                     r"jobs run with the file as it was; restart netdata to apply the change\n".format(re.escape(conf)),
                     out), out
    assert 'changed' not in before, before
    # the jobs run as a plugins.d plugin (the module off): the plugin's start is what counts, its
    # process found by the file it runs (not one of a file whose name only begins the same)
    prefix, plugin, conf = _plugin_setup(tmp_path / 'as-plugin', 'anomalies: no\n')
    for running, told in ((conf + '.local', False), (conf, True)):
        with agents_python_d_plugin(tmp_path, 'python -m collector run --config {} --update-every'.format(running),
                                    settle=2.5):
            os.utime(conf)   # edited after the plugin started
            _, out = check('--prefix', prefix)
        said = re.search(r"warning: {} changed \d+ s ago, after the agent's plugins\.d plugin {} started \(\d+ s "
                         r"ago\)".format(re.escape(conf), re.escape(plugin)), out)
        assert bool(said) == told, (running, out)
