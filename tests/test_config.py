import os
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from collector.config import ConfigError, parse_job_config
from collector.config_warnings import config_warnings
from collector.config_file import job_configs_from_file, load_config_file, pythond_file_notes
from conftest import ROOT


def check_config_output(conf, *options):
    r = subprocess.run([sys.executable, '-m', 'collector', 'check-config', *options, str(conf)], cwd=ROOT,
                       capture_output=True, text=True)
    return r.stdout + r.stderr


def errors_for(raw):
    with pytest.raises(ConfigError) as e:
        parse_job_config(raw)
    return e.value.errors


def test_defaults_match_the_retired_collector():
    cfg = parse_job_config({})
    # the model is the one exception: mahalanobis measured better (docs/evaluation.md); pca stays valid
    assert (cfg.host, cfg.protocol, cfg.model) == ('127.0.0.1:19999', 'http', 'mahalanobis')
    assert parse_job_config({'model': 'pca'}).model == 'pca'
    assert cfg.charts_regex == r'system\..*'
    # system.uptime and every other uptime chart, the agent's timer jitter, and the agent's own
    # charts (with a wider charts_regex)
    assert cfg.charts_to_exclude == ('*.uptime', 'system.entropy', 'system.idlejitter', 'netdata.*')
    assert (cfg.train_max_n, cfg.train_every_n, cfg.train_n_secs, cfg.offset_n_secs) == (100000, 1800, 14400, 0)
    assert (cfg.lags_n, cfg.smooth_n, cfg.diffs_n, cfg.contamination) == (5, 3, 1, 0.001)
    assert cfg.train_min_n_secs == 300   # Netdata's own ML waits 15 minutes; see docs/evaluation.md
    assert cfg.include_average_prob is True and cfg.tls_verify is True


def test_shipped_config_is_valid():
    jobs = load_config_file(os.path.join(ROOT, 'anomalies.conf'))
    assert list(jobs) == ['anomalies']
    cfg = parse_job_config(jobs['anomalies'], 'anomalies')
    assert cfg.model == parse_job_config({}).model


def test_an_original_style_config_keeps_working():
    raw = {'name': 'Anomalies', 'host': '127.0.0.1:19999', 'protocol': 'http', 'tls_verify': True,
           'charts_regex': 'None', 'charts_to_exclude': 'None', 'model': 'hbos', 'train_max_n': 100000,
           'train_every_n': 1800, 'train_n_secs': 14400, 'train_no_prediction_n': 10, 'offset_n_secs': 0,
           'lags_n': 5, 'smooth_n': 3, 'diffs_n': 1, 'contamination': 0.001, 'include_average_prob': True,
           'custom_models': [{'name': 'user_defined_model',
                              'dimensions': 'users.cpu|netdata,users.mem|netdata'},
                             {'name': 'across', 'dimensions': 'london:19999::system.cpu|user,system.cpu|system'}],
           'custom_models_normalize': False, 'update_every': 2, 'priority': 50, 'job_name': 'custom'}
    cfg = parse_job_config(raw)
    assert cfg.charts_regex is None and cfg.charts_to_exclude == ()
    assert cfg.custom_models[0].dimensions == (('127.0.0.1:19999', 'users.cpu', 'netdata'),
                                               ('127.0.0.1:19999', 'users.mem', 'netdata'))
    assert cfg.custom_models[1].dimensions[0] == ('london:19999', 'system.cpu', 'user')
    assert cfg.update_every == 2


def test_charts_to_exclude_takes_ids_and_patterns():
    """Every uptime chart, the agent's timer jitter and the agent's own charts are left out by
    default (with a wider charts_regex: apps, users, groups, netdata), and a list of plain ids
    keeps working as in the retired collector."""
    wide = parse_job_config({'charts_regex': '.*'})
    for chart in ('system.uptime', 'netdata.uptime', 'apps.uptime', 'groups.uptime', 'system.entropy',
                  'system.idlejitter', 'netdata.workers_busy_time_by_type_proc'):
        assert not wide.chart_matches(chart), chart
    assert wide.chart_matches('system.cpu') and wide.chart_matches('apps.cpu')
    assert wide.chart_matches('system.uptime_seconds')   # a pattern matches the whole id
    old = parse_job_config({'charts_regex': '.*', 'charts_to_exclude': 'system.uptime,disk.[x]'})
    assert not old.chart_matches('system.uptime') and old.chart_matches('netdata.uptime')
    assert not old.chart_matches('disk.[x]')   # an id as listed, brackets and all


@pytest.mark.parametrize('exclude', [None, 'None'])
def test_a_job_never_models_its_own_charts(exclude):
    """With a wide charts_regex the job modelled its own output: anomalies.anomaly, mostly 0 in
    training, flagged again with every flag anywhere (and so did another job's charts)."""
    cfg = parse_job_config(dict({'charts_regex': '.*'}, **({} if exclude is None else {'charts_to_exclude': exclude})))
    for chart in ('anomalies.anomaly', 'anomalies.probability', 'anomalies.rate', 'anomalies_ext.anomaly',
                  'anomalies_my_child.flagged_for'):
        assert not cfg.chart_matches(chart), chart
    assert cfg.chart_matches('anomaliesx.cpu') and cfg.chart_matches('system.anomalies')


def test_child_node_host_is_accepted():
    assert parse_job_config({'host': 'parent:19999/host/child'}).host == 'parent:19999/host/child'


@pytest.mark.parametrize('raw, key', [
    ({'modle': 'pca'}, 'modle'),
    ({'model': 'nope'}, 'model'),
    ({'charts_regex': 'system\\.(cpu'}, 'charts_regex'),
    ({'charts_regex': 12}, 'charts_regex'),
    ({'charts_regex': '(a*)*b{99999999999}'}, 'charts_regex'),   # a count re cannot hold: OverflowError
    ({'charts_regex': '(' * 3000 + 'a' + ')' * 3000}, 'charts_regex'),   # nested too deep: RecursionError
    ({'offset_n_secs': 3600000}, 'offset_n_secs'),   # an hour in milliseconds: a window before any agent's history
    ({'train_n_secs': -60}, 'train_n_secs'),
    ({'offset_n_secs': -1}, 'offset_n_secs'),
    ({'train_min_n_secs': -5}, 'train_min_n_secs'),
    ({'train_min_n_secs': '5m'}, 'train_min_n_secs'),
    ({'train_every_n': -1}, 'train_every_n'),
    ({'train_max_n': '1000.5'}, 'train_max_n'),   # a quoted decimal for an integer
    ({'lags_n': '5.0'}, 'lags_n'),
    ({'train_max_n': 10}, 'train_max_n'),   # fewer rows than a model is fitted on at all
    ({'lags_n': 1.5}, 'lags_n'),
    ({'lags_n': 500}, 'lags_n'),
    ({'smooth_n': -3}, 'smooth_n'),
    ({'diffs_n': True}, 'diffs_n'),
    ({'contamination': 0}, 'contamination'),
    ({'contamination': 0.9}, 'contamination'),
    ({'contamination': 'low'}, 'contamination'),
    ({'protocol': 'ftp'}, 'protocol'),
    ({'host': 'http://127.0.0.1:19999'}, 'host'),
    ({'host': ''}, 'host'),
    ({'username': 'u'}, 'password'),
    ({'tls_verify': 3}, 'tls_verify'),
    ({'tls_verify': '/no/such/ca-bundle.pem'}, 'tls_verify'),
    ({'tls_verify': '/tmp'}, 'tls_verify'),   # a directory
    ({'include_average_prob': 'yes please'}, 'include_average_prob'),
    ({'calibration': 'sigmoid'}, 'calibration'),
    ({'api_timeout': 0}, 'api_timeout'),
    ({'initial_train_data_after': 200, 'initial_train_data_before': 100}, 'initial_train_data_before'),
    ({'custom_models': 'system.cpu|user'}, 'custom_models'),
    ({'custom_models': [{'name': 'x', 'dimensions': 'system.cpu'}]}, 'custom_models'),
    ({'custom_models': [{'name': 'x y', 'dimensions': 'system.cpu|user'}]}, 'custom_models'),
    ({'custom_models': [{'name': 'c' * 191, 'dimensions': 'system.cpu|user'}]}, 'custom_models'),
    ({'custom_models': [{'name': 'a', 'dimensions': 'system.cpu|user'},
                        {'name': 'a', 'dimensions': 'system.cpu|system'}]}, 'custom_models'),
    ({'charts_regex': 'None'}, 'charts_regex'),
    ({'charts_to_exclude': '*'}, 'charts_to_exclude'),   # nothing left to model, as with charts_regex none
    ({'charts_to_exclude': 'system.cpu, *.*'}, 'charts_to_exclude'),
    ({'custom_models': [{'name': 'average', 'dimensions': 'system.cpu|user'}]}, 'custom_models'),
    # one name, one model: a custom model named after a chart in scope is refused, not left out at run time
    ({'custom_models': [{'name': 'system.cpu', 'dimensions': 'system.cpu|user'}]}, 'custom_models'),
    ({'charts_regex': 'system\\.(cpu', 'custom_models': [{'name': 'system.cpu', 'dimensions': 'system.cpu|user'}]},
     'charts_regex'),
    ({'flag_window_n': 0}, 'flag_window_n'),   # told once, not again through flag_min_n's bound
    ({'update_every': 0}, 'update_every'),
    ({'update_every': 99999999999}, 'update_every'),
    ({'priority': 99999999999999999999999}, 'priority'),   # the agent reads a number of its own size
    ({'priority': -5}, 'priority'),
    # python.d.plugin reads these itself: wrong, it crashes or behaves otherwise than a standalone run
    ({'chart_cleanup': -1}, 'chart_cleanup'),
    ({'chart_cleanup': 'no'}, 'chart_cleanup'),
    ({'autodetection_retry': 'x'}, 'autodetection_retry'),
    ({'penalty': 'maybe'}, 'penalty'),
    ({'penalty': 'no'}, 'penalty'),   # python.d takes any text as true
    ({'retries': -1}, 'retries'),
    ({'name': None}, 'name'),   # python.d.plugin stops, every module with it
    ({'name': 123}, 'name'),
    # a port that is not one, a path the API is not under
    ({'host': '127.0.0.1:abc'}, 'host'),
    ({'host': '127.0.0.1:99999'}, 'host'),
    ({'host': '127.0.0.1:19999?x=1'}, 'host'),
    ({'host': '127.0.0.1:19999/api/v1'}, 'host'),
    ({'host': 'parent:19999/host/'}, 'host'),
    ({'custom_models': [{'name': 'x', 'dimensions': 'http://x:1::system.cpu|user'}]}, 'custom_models'),
    ({'custom_models': [{'name': 'x', 'dimensions': 'x:0::system.cpu|user'}]}, 'custom_models'),
    ({'model': 'knn+knn'}, 'model'),
    # too short a window for any model: a job that would never predict
    ({'train_n_secs': 37, 'train_min_n_secs': 0}, 'train_n_secs'),
    ({'train_n_secs': 60, 'smooth_n': 40}, 'train_n_secs'),
])
def test_each_bad_value_is_rejected_naming_its_key(raw, key):
    errors = errors_for(raw)
    assert len(errors) == 1, errors
    assert "'{}'".format(key) in errors[0]


def test_a_number_with_a_leading_zero_is_said_to_be_read_as_octal(tmp_path):
    """YAML (python.d's too) reads 010 as 8: the job runs on it, and the file's check says so."""
    conf = tmp_path / 'a.conf'
    conf.write_text("anomalies:\n  train_n_secs: 07200\n  lags_n: 010\n  smooth_n: 08\n  diffs_n: 0\n")
    notes = []
    jobs = load_config_file(str(conf), notes)
    assert (jobs['anomalies']['train_n_secs'], jobs['anomalies']['lags_n']) == (3712, 8)
    assert notes == ['line 2: 07200 is read as the octal number 3712 (its leading 0): write 7200 if 7200 is meant',
                     'line 3: 010 is read as the octal number 8 (its leading 0): write 10 if 10 is meant']


def test_the_names_python_d_sets_itself_are_not_taken_from_the_file(tmp_path):
    """python.d.plugin names a job's charts after its 'name' key and its key in the file,
    whatever 'override_name' or 'job_name' the file writes: a standalone run of the same file
    charts under the same names, and the file's values are said not to be used."""
    from collector.pythond import SimpleService
    notes = []
    jobs = job_configs_from_file({'local': {'override_name': 'foo', 'job_name': 'bar', 'model': 'hbos'}}, notes)
    assert jobs == {'local': {'model': 'hbos'}}
    assert [n.split(',')[0] for n in notes] == ["job local: key 'override_name' is python.d's own",
                                               "job local: key 'job_name' is python.d's own"]
    assert job_configs_from_file({'override_name': 'foo'}) == {'anomalies': {}}
    conf = tmp_path / 'a.conf'
    conf.write_text("local:\n  override_name: 'foo'\n")
    from collector.runner import select_job
    assert SimpleService(configuration=select_job(str(conf))).chart_type == 'anomalies_local'


def test_an_exclude_of_every_chart_is_fine_beside_custom_models():
    cfg = parse_job_config({'charts_to_exclude': '*', 'custom_models': [{'name': 'c', 'dimensions': 'system.cpu|user'}]})
    assert cfg.charts_to_exclude == ('*',) and [m.name for m in cfg.custom_models] == ['c']
    assert parse_job_config({'charts_to_exclude': '*.uptime, system.*, s*'}).charts_to_exclude


@pytest.mark.parametrize('regex', ['.*', 'system\\..*|'])
def test_a_custom_model_without_a_dot_never_clashes_with_a_chart(regex):
    """A chart's id is 'type.name': a custom model named 'cpu_temp' is no chart's, whatever
    charts_regex matches ('.*', or the retired collector's 'system\\..*|' that matches any text)."""
    cfg = parse_job_config({'charts_regex': regex,
                            'custom_models': [{'name': 'cpu_temp', 'dimensions': 'sensors.temp|cpu'}]})
    assert [m.name for m in cfg.custom_models] == ['cpu_temp']
    assert errors_for({'charts_regex': regex,
                       'custom_models': [{'name': 'system.cpu', 'dimensions': 'system.cpu|user'}]})


def test_numbers_in_exponent_form_that_yaml_reads_as_text_are_taken_as_numbers(tmp_path):
    """PyYAML (YAML 1.1, as python.d reads the file) reads 1e-3 and 5e0 as text; a user means the number."""
    conf = tmp_path / 'exp.conf'
    conf.write_text("local:\n  contamination: 1e-3\n  api_timeout: 1e1\n  level_squash: 5e0\n"
                    "  flag_hold_probability: 99e-2\n")
    raw = yaml.safe_load(conf.read_text())['local']
    assert isinstance(raw['contamination'], str)   # what the job is given
    cfg = parse_job_config(raw)
    assert (cfg.contamination, cfg.api_timeout, cfg.flag_hold_probability) == (0.001, 10.0, 0.99)
    assert cfg.squash == 5.0
    assert "'contamination'" in errors_for({'contamination': '1e-3x'})[0]
    assert "'contamination'" in errors_for({'contamination': '9e-1'})[0]   # a number, out of range


def test_a_quoted_number_is_the_number_it_says():
    """'0.001' read as text was refused as 'expected a share in (0, 0.5], got '0.001'', which
    reads as a contradiction; the module reads its own keys, so a quoted number is taken."""
    cfg = parse_job_config({'contamination': '0.001', 'api_timeout': ' 2.5 ', 'lags_n': '7', 'train_n_secs': '3600',
                            'prometheus_port': '9591', 'flag_hold_probability': '.98'})
    assert (cfg.contamination, cfg.api_timeout, cfg.lags_n, cfg.train_n_secs, cfg.prometheus_port,
            cfg.flag_hold) == (0.001, 2.5, 7, 3600, 9591, 0.98)
    assert type(cfg.lags_n) is int and type(cfg.prometheus_port) is int
    assert "'contamination'" in errors_for({'contamination': '0.001%'})[0]
    assert "'contamination'" in errors_for({'contamination': '0.9'})[0]   # a number, out of range


def test_a_misspelled_key_is_told_the_key_it_resembles():
    errors = errors_for({'train_every': 100, 'contaminaton': 0.01, 'banana': 1})
    assert "key 'banana': unknown option (see anomalies.conf" in errors[0]
    assert "key 'contaminaton': unknown option (did you mean 'contamination'?" in errors[1]
    assert "key 'train_every': unknown option (did you mean 'train_every_n'?" in errors[2]


def test_a_first_training_window_in_milliseconds_is_refused():
    """initial_train_data_after/before in milliseconds passed check-config and trained on
    'up to 300000 s of history' (the window read as thousands of years ahead)."""
    errors = errors_for({'initial_train_data_after': 1795374175000, 'initial_train_data_before': 1795374475000})
    assert len(errors) == 1 and "key 'initial_train_data_after': expected unix seconds" in errors[0]
    assert 'milliseconds? that is the year 58862' in errors[0]
    errors = errors_for({'initial_train_data_after': 0, 'initial_train_data_before': 1795374475000})
    assert len(errors) == 1 and 'after < before' in errors[0], errors   # said once, the order first


def test_a_first_training_window_the_agent_may_not_hold_is_warned_of_not_refused():
    """It is read for the first training alone (never once saved models load), so a job that ran
    with it keeps running: too short, over a day or ahead of the clock (which may be wrong: a
    Pi without a real-time clock before its time is set) is a warning."""
    now = int(time.time())
    for after, before, said in ((now - 600, now - 590, 'a window of 11 s, where a model needs at least 38 s'),
                                (now - 200000, now - 100000, 'over a day'),
                                (now + 100 * 86400, now + 100 * 86400 + 600, 'days ahead of this machine')):
        cfg = parse_job_config({'initial_train_data_after': after, 'initial_train_data_before': before})
        notes = config_warnings(cfg)
        assert len(notes) == 1 and said in notes[0] and "'initial_train_data_" in notes[0], notes
    assert config_warnings(parse_job_config({'initial_train_data_after': now - 3600,
                                             'initial_train_data_before': now - 600})) == []


def test_a_training_window_over_a_day_is_warned_of():
    """The agent answers a window over 86400 rows in averaged rows: of charts collected every
    second, a model fitted on averages would score single seconds (collected every 5 s, the
    same window is 34560 rows: it runs, warned of)."""
    assert config_warnings(parse_job_config({'train_n_secs': 86400})) == []
    notes = config_warnings(parse_job_config({'train_n_secs': 172800, 'update_every': 5}))
    assert len(notes) == 1 and "key 'train_n_secs': 172800 s is over a day" in notes[0]


def test_no_differences_beside_the_level_features_are_warned_of():
    """diffs_n 0 makes the first change block the smoothed values, which the level block is too:
    each value counts twice in the model, where level_features false gives it once."""
    notes = config_warnings(parse_job_config({'diffs_n': 0}))
    assert len(notes) == 1 and notes[0].startswith("key 'diffs_n': 0 with level_features true"), notes
    assert config_warnings(parse_job_config({'diffs_n': 0, 'level_features': False})) == []
    assert config_warnings(parse_job_config({'diffs_n': 2})) == []


def test_a_models_dir_on_a_file_is_refused(tmp_path):
    f = tmp_path / 'file'
    f.write_text('x')
    for where in (f, f / 'below' / 'deeper'):
        errors = errors_for({'models_dir': str(where)})
        assert errors == ["key 'models_dir': {} is a file, not a directory (expected 'auto', a directory, or "
                          "'none')".format(f)]
    assert parse_job_config({'models_dir': str(tmp_path / 'new' / 'folder')}).models_dir == str(
        tmp_path / 'new' / 'folder')


def test_models_dir_takes_auto_and_none_in_any_case_and_a_relative_folder_is_warned_of():
    """'Auto' or 'NONE' is the setting, not a folder of that name made wherever the plugin runs
    (python.d.plugin's working directory); a relative folder is said to be relative to it."""
    for word, want in (('Auto', 'auto'), (' AUTO ', 'auto'), ('NONE', None), ('Null', None)):
        cfg = parse_job_config({'models_dir': word})
        assert cfg.models_dir == want and config_warnings(cfg) == [], word
    notes = config_warnings(parse_job_config({'models_dir': 'mymodels'}))
    assert len(notes) == 1 and notes[0].startswith("key 'models_dir': mymodels is not an absolute path"), notes
    assert config_warnings(parse_job_config({'models_dir': '~/models'})) == []


def test_an_agent_named_without_a_port_is_warned_of_with_the_port_it_is_read_on():
    """'host: localhost' reads port 80, where no agent listens by default: the job then fails to
    connect, and the warning says which port it tried and the form with the agent's own."""
    notes = config_warnings(parse_job_config({'host': 'localhost'}))
    assert notes == ["key 'host': localhost names no port, so the agent is read on port 80, http's (an agent "
                     "listens on 19999 by default: localhost:19999)"]
    notes = config_warnings(parse_job_config({'host': 'parent/host/child', 'protocol': 'https'}))
    assert len(notes) == 1 and 'port 443' in notes[0] and notes[0].endswith('parent:19999/host/child)'), notes
    notes = config_warnings(parse_job_config({'custom_models': [
        {'name': 'pair', 'dimensions': 'other::system.cpu|user,system.cpu|system'}]}))
    assert len(notes) == 1 and notes[0].startswith("key 'custom_models': other names no port"), notes
    for host in ('localhost:19999', '[::1]:19999', 'parent:19999/host/child', 'proxy:443/'):
        assert config_warnings(parse_job_config({'host': host})) == [], host


def test_settings_that_do_nothing_or_much_more_than_meant_are_warned_of(tmp_path):
    assert config_warnings(parse_job_config({})) == []
    cfg = parse_job_config({'level_squash': 7, 'level_features': False, 'contamination': 0.2, 'train_every_n': 10,
                            'prometheus_textfile': str(tmp_path / 'none' / 'a.prom')})
    notes = config_warnings(cfg)
    assert [n.split("'")[1] for n in notes] == ['level_squash', 'contamination', 'train_every_n',
                                                'prometheus_textfile']
    assert '20.0% of normal steps' in notes[1] and 'held down for good' in notes[2] and 'does not exist' in notes[3]
    # trainings closer than the steps their own work is held for hold flags down for good, however many
    # steps apart (smooth_n 130: 138 steps held), and a path relative to wherever the plugin runs is said
    notes = config_warnings(parse_job_config({'train_every_n': 120, 'smooth_n': 130, 'train_n_secs': 3600,
                                              'prometheus_textfile': 'a.prom'}))
    assert len(notes) == 2 and 'held down for good' in notes[0] and 'not an absolute path' in notes[1], notes
    assert config_warnings(parse_job_config({'train_every_n': 600, 'smooth_n': 130, 'train_n_secs': 3600})) == []
    # trainings as far apart as the default, but features that reach back 608 steps: the note names
    # what to change, not train_every_n at its default
    notes = config_warnings(parse_job_config({'smooth_n': 600}))
    assert len(notes) == 1 and notes[0].startswith("key 'smooth_n': smooth_n 600, lags_n 5 and diffs_n 1 reach "
                                                   "back 608 steps") and 'every 1800 steps' in notes[0], notes
    assert config_warnings(parse_job_config({'lags_n': 60, 'train_every_n': 200}))[0].startswith("key 'lags_n'")
    assert parse_job_config({'prometheus_textfile': '~/a.prom'}).prometheus_textfile == os.path.expanduser('~/a.prom')
    assert "'lags_n'" in errors_for({'lags_n': '\u0665'})[0]   # an Arabic-Indic five is no digit of YAML's
    conf = tmp_path / 'w.conf'
    conf.write_text('local:\n  contamination: 0.2\n')
    r = subprocess.run([sys.executable, '-m', 'collector', 'check-config', str(conf)], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0 and "job local: warning: key 'contamination'" in r.stderr, r.stderr


def test_the_retired_keys_that_change_nothing_are_said_to_when_asked_for_something(tmp_path):
    """A kept config of the retired collector: its stock values say nothing, a value that asks
    for something those keys no longer do is told, by check-config as by the job at its start."""
    stock = {'train_no_prediction_n': 10, 'custom_models_normalize': False, 'reinitialize_at_every_step': False}
    assert config_warnings(parse_job_config(stock)) == []
    notes = config_warnings(parse_job_config({'train_no_prediction_n': 30, 'custom_models_normalize': True,
                                              'reinitialize_at_every_step': True}))
    assert sorted(n.split("'")[1] for n in notes) == ['custom_models_normalize', 'reinitialize_at_every_step',
                                                      'train_no_prediction_n'], notes
    assert all('changes nothing' in n for n in notes), notes
    conf = tmp_path / 'old.conf'
    conf.write_text("local:\n  name: ''\n  model: 'pca'\n  custom_models_normalize: true\n")
    r = subprocess.run([sys.executable, '-m', 'collector', 'check-config', str(conf)], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0 and "job local: warning: key 'custom_models_normalize': true changes nothing" in r.stderr, \
        r.stderr


@pytest.mark.parametrize('key, said', [('update_every', 'python.d.plugin stops'),
                                       ('autodetection_retry', 'python.d.plugin drops the job')])
def test_a_quoted_number_python_d_plugin_stops_on_is_said_to_stop_it(key, said):
    """python.d.plugin compares update_every itself: quoted, it stops with every module's jobs, so
    the error says so (a negative number it survives). It divides by autodetection_retry as it
    checks a refused job again: that job is dropped instead (service.check)."""
    quoted, negative = errors_for({key: '5'}), errors_for({key: -1})
    assert len(quoted) == 1 and "'{}'".format(key) in quoted[0] and said in quoted[0]
    assert len(negative) == 1 and said not in negative[0]


def test_tls_verify_takes_a_quoted_boolean_or_a_readable_ca_bundle(tmp_path):
    bundle = tmp_path / 'ca.pem'
    bundle.write_text('-----BEGIN CERTIFICATE-----\n')
    for raw, want in (('false', False), (' No ', False), ('true', True), (False, False), (str(bundle), str(bundle)),
                      (' {} '.format(bundle), str(bundle))):
        cfg = parse_job_config({'tls_verify': raw})
        assert cfg.tls_verify == want and type(cfg.tls_verify) is type(want), raw


def test_a_quoted_boolean_is_taken_as_the_boolean():
    cfg = parse_job_config({'level_features': 'false', 'despike': 'No', 'include_average_prob': 'yes'})
    assert cfg.level_features is False and cfg.despike is False and cfg.include_average_prob is True


def test_a_custom_model_may_take_the_name_of_a_chart_out_of_scope():
    for raw in ({'charts_to_exclude': 'system.cpu'}, {'charts_regex': 'system\\.ram'}, {'charts_regex': 'None'}):
        raw['custom_models'] = [{'name': 'system.cpu', 'dimensions': 'system.cpu|user'}]
        assert [m.name for m in parse_job_config(raw).custom_models] == ['system.cpu']


def test_all_bad_keys_are_reported_together():
    errors = errors_for({'model': 'nope', 'lags_n': -1, 'bogus': 1})
    assert len(errors) == 3


def test_a_custom_model_job_with_a_bad_entry_is_told_of_that_entry_alone():
    """A job of custom models only (charts_regex 'none', as the Raspberry Pi example) whose
    entry is refused has no charts in scope because of it: charts_regex is not blamed too."""
    for entry in ({'name': 'cpu temp', 'dimensions': 'system.cpu|user'}, {'name': 'cpu_temp'},
                  {'name': 'cpu_temp', 'dimensions': 'system.cpu.user'}, 'system.cpu|user'):
        errors = errors_for({'charts_regex': 'none', 'custom_models': [entry]})
        assert len(errors) == 1 and errors[0].startswith("key 'custom_models' entry 1"), errors
    assert errors_for({'charts_regex': 'none'}) == [
        "key 'charts_regex': no charts in scope: set charts_regex or custom_models"]


def test_an_empty_job_beside_others_is_told_as_no_job_and_deep_nesting_as_bad_yaml(tmp_path):
    """'local2:' with nothing under it, beside a job, is no job python.d runs: said so, not as
    a key to indent under a job. A file nested thousands deep is refused as YAML, not a traceback."""
    notes = []
    assert job_configs_from_file({'anomalies': {'lags_n': 3}, 'local2': None}, notes) == {'anomalies': {'lags_n': 3}}
    assert notes == ["'local2:' has nothing under it, so it is no job: python.d does not run it; indent at least "
                     "one option under it"]
    notes = []
    job_configs_from_file({'anomalies': {}, 'model': 'knn'}, notes)
    assert notes[0].startswith("top-level key 'model' reaches no job")
    conf = tmp_path / 'deep.conf'
    conf.write_text('a: ' + '[' * 5000 + ']' * 5000 + '\n')
    with pytest.raises(ConfigError) as e:
        load_config_file(str(conf))
    assert e.value.errors == ['{} is not valid YAML: nested too deep to read'.format(conf)]


def test_a_regex_written_as_a_yaml_block_still_matches_and_one_in_the_exclude_list_is_warned_of(tmp_path):
    """charts_regex: | (a YAML block) ends in a newline that matched no chart id; a regular
    expression in charts_to_exclude (which takes shell patterns) excluded nothing, unsaid."""
    conf = tmp_path / 'a.conf'
    conf.write_text("anomalies:\n  charts_regex: |\n    system\\..*\n  charts_to_exclude: 'system\\.cpu,*.uptime'\n")
    cfg = parse_job_config(load_config_file(str(conf))['anomalies'])
    assert cfg.charts_regex == 'system\\..*' and cfg.chart_matches('system.ram')
    notes = config_warnings(cfg)
    assert len(notes) == 1 and notes[0].startswith("key 'charts_to_exclude': 'system\\\\.cpu' reads as a regular "
                                                   "expression"), notes
    assert config_warnings(parse_job_config({'charts_to_exclude': '*.uptime, system.io*, apps.*'})) == []


def test_a_job_written_in_the_wrong_layout_or_place_is_told_so(tmp_path):
    """Jobs as go.d.plugin lists them, a job indented under another, or the module's switch from
    python.d.conf: each is told as what it is, not as a misspelled option only."""
    cases = {"jobs:\n  - name: local\n    host: '10.0.0.5:19999'\n": ('jobs', "go.d.plugin's layout"),
             "anomalies:\n  lags_n: 3\n  other:\n    lags_n: 4\n": ('other', 'a job indented under another'),
             "anomalies: yes\n": ('anomalies', 'in python.d.conf, not here')}
    for text, (key, said) in cases.items():
        conf = tmp_path / 'a.conf'
        conf.write_text(text)
        (name, raw), = load_config_file(str(conf)).items()
        errors = errors_for(raw)
        assert len(errors) == 1 and errors[0].startswith("key '{}': unknown option".format(key)), errors
        assert said in errors[0], errors
    assert 'did you mean' in errors_for({'train_n_sec': 600})[0]


def test_keys_yaml_reads_as_booleans_and_files_not_utf8_are_named_not_a_traceback(tmp_path):
    errors = errors_for({'on': 1, True: 1, 'bogus': 2})
    assert len(errors) == 3 and any(e.startswith("key True: unknown option, read as a bool") for e in errors)
    latin = tmp_path / 'latin1.conf'
    latin.write_bytes("local:\n  host: 'caf\u00e9:19999'\n".encode('latin-1'))
    with pytest.raises(ConfigError) as e:
        load_config_file(str(latin))
    assert 'not UTF-8 text (byte 0xe9 on line 2)' in str(e.value)
    r = subprocess.run([sys.executable, '-m', 'collector', 'check-config', str(latin)], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 1 and 'Traceback' not in r.stderr and 'not UTF-8' in r.stderr


def test_python_d_job_layout():
    data = {'update_every': 3, 'priority': 10, 'local': {'model': 'hbos'}, 'other': {'update_every': 1}}
    jobs = job_configs_from_file(data)
    assert jobs == {'local': {'update_every': 3, 'priority': 10, 'model': 'hbos'},
                    'other': {'update_every': 1, 'priority': 10}}
    assert job_configs_from_file({'model': 'hbos'}) == {'anomalies': {'model': 'hbos'}}
    # python.d.plugin stops on a job name that is not a string: refused, naming it
    for name in (1, True, None):
        with pytest.raises(ConfigError, match='quote it'):
            job_configs_from_file({name: {'model': 'hbos'}, 'local': {}})
    # an empty file (or only comments) is one job with every default, as python.d runs it
    notes = []
    assert job_configs_from_file(None, notes) == {'anomalies': {}} and 'every default' in notes[0]
    # a job with nothing under it is no job to python.d either: an option of the one job, said
    notes = []
    assert job_configs_from_file({'local': None}, notes) == {'anomalies': {'local': None}}
    assert notes == ["'local:' has nothing under it, so it is no job: python.d runs the file as one job with "
                     "'local' as an option; indent at least one option under it"]


def test_check_config_command(tmp_path):
    good, bad, broken = tmp_path / 'good.conf', tmp_path / 'bad.conf', tmp_path / 'broken.conf'
    good.write_text("local:\n  model: 'hbos'\n")
    bad.write_text("local:\n  model: 'nope'\n  lags_n: -2\n")
    broken.write_text("local:\n  model: [\n")
    run = lambda f: subprocess.run([sys.executable, '-m', 'collector', 'check-config', str(f)], cwd=ROOT,
                                   capture_output=True, text=True)
    r = run(good)
    assert r.returncode == 0 and 'ok' in r.stdout
    r = run(bad)
    assert r.returncode == 1
    assert "'model'" in r.stderr and "'lags_n'" in r.stderr
    r = run(broken)
    assert r.returncode == 1 and 'not valid YAML (line 3, column 1)' in r.stderr
    # the YAML an edit breaks most: the line says what to write instead
    for text, hint in (("local:\n  charts_to_exclude: *.uptime\n", "quote it, as in '*.uptime'"),
                       ("local:\n  charts_to_exclude: *uptime\n", "quote it, as in '*.uptime'"),
                       ("local:\n\tlags_n: 3\n", 'YAML takes no tab: indent with spaces'),
                       ("local:\n  lags_n: 3\t# three\n", 'YAML takes no tab'),
                       ("local:\n  charts_regex: %sys\n", "a value beginning with '%' must be quoted"),
                       ("local:\n  host: a lags_n: 3\n", "a value holding ': ' must be quoted")):
        broken.write_text(text)
        r = run(broken)
        assert r.returncode == 1 and 'not valid YAML' in r.stderr and hint in r.stderr, (text, r.stderr)
    assert r.stderr.count(str(broken)) == 1
    # a job key written at the top level (not indented) reaches no job: said, not silently dropped
    stray = tmp_path / 'stray.conf'
    stray.write_text("update_every: 2\nmodel: 'knn'\nlocal:\n  lags_n: 3\n")
    r = run(stray)
    assert r.returncode == 0 and "top-level key 'model' reaches no job" in r.stderr
    assert 'update_every' not in r.stderr.split('reaches no job')[0]
    # a job named on/yes/true or 1 is a YAML boolean or number: python.d.plugin stops on it, every module
    named_on = tmp_path / 'on.conf'
    named_on.write_text("on:\n  lags_n: 3\n'off':\n  lags_n: 2\n2:\n  lags_n: 2\n")
    r = run(named_on)
    assert r.returncode == 1 and 'ok' not in r.stdout
    assert "job True: YAML reads this job's name as bool" in r.stderr and "job 2: YAML reads this job's name as int" \
        in r.stderr and r.stderr.count('quote it') == 2
    # two jobs exporting to one file or one port would overwrite or refuse each other
    shared = tmp_path / 'shared.conf'
    shared.write_text("a:\n  prometheus_textfile: '/tmp/x.prom'\n  prometheus_port: 9591\n"
                      "b:\n  prometheus_textfile: '/tmp/x.prom'\n  prometheus_port: 9592\n"
                      "c:\n  prometheus_port: 9591\n  prometheus_address: '0.0.0.0'\n"
                      "d:\n  prometheus_port: 9600\ne:\n  prometheus_port: 9600\n"
                      "f:\n  prometheus_port: 9601\ng:\n  prometheus_port: 9601\n  prometheus_address: '10.0.0.1'\n"
                      "h:\n  prometheus_port: 9602\ni:\n  prometheus_port: 9602\n  prometheus_address: 'localhost'\n")
    r = run(shared)
    assert r.returncode == 1, r.stderr
    assert "jobs a, b: key 'prometheus_textfile': each job needs its own, they share /tmp/x.prom" in r.stderr
    assert "jobs d, e: key 'prometheus_port': each job needs its own, they share port 9600" in r.stderr
    # every address (0.0.0.0) takes the port on 127.0.0.1 too; two addresses of their own do not clash
    assert "jobs a, c: key 'prometheus_port': each job needs its own, they share port 9591" in r.stderr
    # localhost is 127.0.0.1 (the default address) by another name
    assert "jobs h, i: key 'prometheus_port': each job needs its own, they share port 9602" in r.stderr
    assert r.stderr.count('prometheus_port') == 3


def test_localhost_and_127_0_0_1_on_one_port_clash_without_a_resolver(monkeypatch):
    """A system without /etc/hosts (a chroot, a minimal container) does not resolve 'localhost';
    it is the loopback all the same (RFC 6761)."""
    import socket
    from collector.cli import _clashing_listeners

    def no_resolver(*a, **k):
        raise socket.gaierror(-2, 'Name or service not known')
    monkeypatch.setattr(socket, 'getaddrinfo', no_resolver)
    assert _clashing_listeners([('a', '127.0.0.1'), ('b', 'localhost')]) == ['a', 'b']
    assert _clashing_listeners([('a', '10.0.0.1'), ('b', 'localhost')]) == []


def test_a_prometheus_address_written_as_in_a_url_is_one_the_exporter_can_listen_on():
    """'[::]' is how an address with a port is written; the listener wants '::' (it failed at
    start with 'Name or service not known' where check-config had said ok)."""
    assert parse_job_config({'prometheus_address': ' [::] '}).prometheus_address == '::'
    assert parse_job_config({'prometheus_address': '[::1]'}).prometheus_address == '::1'
    assert parse_job_config({'prometheus_address': '127.0.0.1 '}).prometheus_address == '127.0.0.1'
    with pytest.raises(ValueError, match="prometheus_address"):
        parse_job_config({'prometheus_address': '[ ]'})


@pytest.mark.parametrize('address', ['not an address', 'host_name', '-metrics', 'a..b', '10.0.0.1:9591', 'x' * 64])
def test_a_prometheus_address_that_is_no_address_is_refused_by_check_config(address):
    """It passed check-config as ok, and the job logged 'prometheus export disabled: cannot
    serve http://not an address:...' only once it ran."""
    with pytest.raises(ValueError, match="key 'prometheus_address': expected an IP address or a host name"):
        parse_job_config({'prometheus_address': address, 'prometheus_port': 9591})


@pytest.mark.parametrize('address', ['0.0.0.0', '::', 'fe80::1', 'localhost', 'metrics.example.com.', 'node-7'])
def test_addresses_and_host_names_to_listen_on_are_taken(address):
    assert parse_job_config({'prometheus_address': address, 'prometheus_port': 9591}).prometheus_address == address


def test_a_prometheus_address_without_a_port_is_warned_of():
    """Set alone, it does nothing: the address is the /metrics listener's, and no port is set."""
    said = [n for n in config_warnings(parse_job_config({'prometheus_address': '0.0.0.0'})) if 'prometheus' in n]
    assert said == ["key 'prometheus_address': 0.0.0.0 is where the /metrics port listens, and no prometheus_port "
                    "is set: nothing listens (set prometheus_port, e.g. 9591)"]
    assert not [n for n in config_warnings(parse_job_config({'prometheus_address': '0.0.0.0',
                                                            'prometheus_port': 9591})) if 'prometheus' in n]
    assert not [n for n in config_warnings(parse_job_config({})) if 'prometheus' in n]


def test_ipv6_hosts_in_custom_models():
    from collector.netdata_api import dim_key, split_key
    cfg = parse_job_config({'host': '[::1]:19999', 'custom_models': [
        {'name': 'v6', 'dimensions': '[::1]:19999::system.cpu|user,system.ram|used'}]})
    assert cfg.custom_models[0].dimensions == (('[::1]:19999', 'system.cpu', 'user'),
                                               ('[::1]:19999', 'system.ram', 'used'))
    assert split_key(dim_key('[::1]:19999', 'system.cpu', 'a|b')) == ('[::1]:19999', 'system.cpu', 'a|b')


def test_detection_keys_defaults_and_checks():
    cfg = parse_job_config({})
    assert (cfg.level_features, cfg.flag_min_n, cfg.flag_window_n, cfg.train_exclude_flagged) == (True, 2, 3, True)
    assert cfg.flag_hold == 0.99 and parse_job_config({'flag_hold_probability': 1}).flag_hold is None
    for bad in (1.5, 0, -0.1, 'high', True, 0.05, 0.49):   # (below 0.5 a flag holds on ordinary steps)
        assert any("key 'flag_hold_probability'" in e for e in errors_for({'flag_hold_probability': bad})), bad
    assert parse_job_config({'flag_hold_probability': 0.5}).flag_hold == 0.5
    assert parse_job_config({}).flag_rearm_n == 30 and parse_job_config({'flag_rearm_n': 0}).flag_rearm_n == 0
    for bad in (-1, 3601, 'abc', True, 2.5):
        assert any("key 'flag_rearm_n'" in e for e in errors_for({'flag_rearm_n': bad})), bad
    assert parse_job_config({}).flag_lasting_n == 20 and parse_job_config({'flag_lasting_n': 0}).flag_lasting_n == 0
    for bad in (-1, 1, 3, 3601, 'abc', True, 2.5):
        assert any("key 'flag_lasting_n'" in e for e in errors_for({'flag_lasting_n': bad})), bad
    assert parse_job_config({}).squash is None and parse_job_config({'level_squash': 7}).squash == 7
    assert parse_job_config({'level_squash': 12.5}).squash == 12.5
    for bad in (-1, 1, 1.9, 1001, 'abc', True, None):
        assert any("key 'level_squash'" in e for e in errors_for({'level_squash': bad})), bad
    assert parse_job_config({'model': 'pca+knn'}).model == 'pca+knn'
    errors = errors_for({'flag_min_n': 4, 'flag_window_n': 3, 'level_features': 'maybe', 'despike': 1})
    assert any("'flag_min_n': must be <= flag_window_n (3), got 4" in e for e in errors)
    assert any("'level_features'" in e for e in errors)
    assert any("key 'despike'" in e for e in errors)
    off = parse_job_config({'despike': False})
    assert parse_job_config({}).despike and not off.despike
    assert parse_job_config({}).rows_needed == off.rows_needed + 2
    # a model is fitted on the samples as read either way
    assert parse_job_config({}).training_rows_needed == off.training_rows_needed == off.rows_needed
    x = np.zeros((30, 1))
    x[10] = 1.0
    assert np.array_equal(parse_job_config({}).training_features(x), off.features(x))
    for bad in ('pca+pca', 'pca+nope', '+pca', 7):
        assert any("key 'model'" in e for e in errors_for({'model': bad})), bad


def test_a_job_configuration_as_newer_python_d_plugins_pass_it_is_accepted():
    # python.d.plugin from Netdata 1.44 on adds '__is_stock' to every job's configuration
    raw = {'job_name': 'anomalies', 'override_name': '', 'update_every': 1, 'priority': 60000,
           'autodetection_retry': 0, 'chart_cleanup': 10, 'penalty': True, '__is_stock': False, 'model': 'hbos'}
    assert parse_job_config(raw).model == 'hbos'
    assert errors_for({'is_stock': False}) == ["key 'is_stock': unknown option (see anomalies.conf for the valid ones)"]


def test_the_retired_collectors_keys_and_python_d_job_keys_are_taken():
    """An old config keeps working: train_every_n 0 (never retrain, its stock config says so),
    reinitialize_at_every_step, and python.d's own job keys such as retries."""
    cfg = parse_job_config({'train_every_n': 0, 'reinitialize_at_every_step': True, 'retries': 60,
                            'chart_cleanup': 0, 'autodetection_retry': 30, 'penalty': True, 'name': 'local'})
    assert cfg.train_every_n == 0 and cfg.reinitialize_at_every_step is True
    assert parse_job_config({'model': ' mahalanobis + knn '}).model == 'mahalanobis+knn'
    assert parse_job_config({'custom_models': []}).custom_models == ()
    for host in ('127.0.0.1:19999', 'netdata.example.com', '[::1]:19999', 'parent:19999/host/child-1', 'h:19999/'):
        parse_job_config({'host': host})
    # the shortest window that trains (30 feature rows and the 8 the default features start from),
    # and at update_every 5 every phase of a per-second chart starts its features again
    parse_job_config({'train_n_secs': 38})
    assert "at least 70 s" in errors_for({'train_n_secs': 69, 'update_every': 5})[0]
    parse_job_config({'train_n_secs': 70, 'update_every': 5})


def test_check_config_says_what_python_d_runs(tmp_path):
    """Two jobs python.d would run under one name (only the first runs), and a file with no
    job at all (python.d runs one with every default)."""
    run = lambda f: subprocess.run([sys.executable, '-m', 'collector', 'check-config', str(f)], cwd=ROOT,
                                   capture_output=True, text=True)
    same = tmp_path / 'same.conf'
    same.write_text("a:\n  name: 'x y'\nb:\n  name: 'x_y'\nanomalies:\n  lags_n: 3\nc:\n  name: 'anomalies'\n")
    r = run(same)
    assert r.returncode == 1
    assert "job b: python.d does not run it ('already served by another job'): the same name as job a's" in r.stderr
    assert "job c: python.d does not run it ('already served by another job'): the same name as job anomalies's" \
        in r.stderr
    empty = tmp_path / 'empty.conf'
    empty.write_text("# every job commented out\n# local:\n#   lags_n: 3\n")
    r = run(empty)
    assert r.returncode == 0 and 'job anomalies: ok' in r.stdout and 'every default' in r.stderr


def test_check_config_refuses_jobs_whose_names_are_written_alike(tmp_path):
    """python.d runs jobs 'a:b' and 'a_b' as two, but the agent writes a chart id's other
    characters as '_': both wrote the charts anomalies_a_b.*, and saved their models in one
    folder, each job's training replacing the other's."""
    conf = tmp_path / 'anomalies.conf'
    conf.write_text("a:b:\n  lags_n: 3\na_b:\n  lags_n: 3\nc.d:\n  lags_n: 3\n")
    r = subprocess.run([sys.executable, '-m', 'collector', 'check-config', str(conf)], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "jobs run as 'a:b', 'a_b': their charts are all anomalies_a_b.*" in r.stderr, r.stderr
    assert 'c.d' not in r.stderr and 'job c.d: ok' in r.stdout, r.stderr


def test_check_config_tells_the_jobs_python_d_skips_or_runs_twice(tmp_path):
    """python.d.plugin (1.37) keeps only the name of the job it started last and skips a job
    whose name is part of that one, as text: 'web1' below 'web10' is not run, and two jobs of
    one name with another between them both run, writing the same charts."""
    from collector.config_file import pythond_skips
    jobs = {'web10': {}, 'web1': {}, 'one': {'name': 'x'}, 'two': {}, 'three': {'name': 'x'}}
    assert pythond_skips(jobs) == {'web1': 'web10'}
    # a job whose check fails does not start: the name kept is the one before it
    assert pythond_skips({'a': {}, 'broken': {}, 'a2': {'name': 'a'}}, failing={'broken'}) == {'a2': 'a'}
    conf = tmp_path / 'anomalies.conf'
    conf.write_text(''.join('{}:\n  {}\n'.format(j, 'name: {}'.format(r['name']) if r else 'lags_n: 3')
                            for j, r in jobs.items()))
    r = subprocess.run([sys.executable, '-m', 'collector', 'check-config', str(conf)], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert ("job web1: python.d does not run it ('already served by another job'): a name that is part of job "
            "web10's") in r.stderr, r.stderr
    assert "jobs one, three: python.d runs each of them as 'x'" in r.stderr and 'same charts' in r.stderr
    # a job of that name whose check fails does not run: it writes no chart of the other's
    conf.write_text("a:\n  name: x\n  lags_n: -1\nb:\n  name: y\nc:\n  name: x\n")
    r = subprocess.run([sys.executable, '-m', 'collector', 'check-config', str(conf)], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 1 and "job a: key 'lags_n'" in r.stderr, r.stderr
    assert 'python.d runs each of them' not in r.stderr, r.stderr


def test_a_key_given_twice_is_said_and_the_last_one_used(tmp_path):
    """An option uncommented in edit-config while the same key is set further down: YAML (and
    python.d) silently keep the last; the file's check says which line wins."""
    conf = tmp_path / 'twice.conf'
    conf.write_text("local:\n  lags_n: 3\n  model: 'knn'\n  lags_n: 4\n")
    notes = []
    jobs = load_config_file(str(conf), notes)
    assert jobs['local']['lags_n'] == 4
    assert notes == ["job local: key 'lags_n' is given twice (lines 2 and 4): line 4's is used"]


def test_a_key_given_twice_in_a_file_of_several_jobs_is_said_by_its_own_job_only(tmp_path, monkeypatch):
    """python.d hands each job its keys and every job of the file reads the file's notes: each
    is said once, by the job it is about (the file's own, by its first job), and names it."""
    conf = tmp_path / 'python.d' / 'anomalies.conf'
    conf.parent.mkdir()
    conf.write_text("update_every: 1\nupdate_every: 2\nj1:\n  lags_n: 3\n'my  job':\n  lags_n: 1\n  model: knn\n"
                    "  lags_n: 2\nj1:\n  lags_n: 4\nj3:\n  smooth_n: 2\n")
    notes = []
    load_config_file(str(conf), notes)
    assert notes == ["key 'update_every' is given twice (lines 1 and 2): line 2's is used",
                     "key 'j1' is given twice (lines 3 and 9): line 9's is used",
                     "job my  job: key 'lags_n' is given twice (lines 6 and 8): line 8's is used"], notes
    env = {'NETDATA_USER_CONFIG_DIR': str(tmp_path)}
    assert pythond_file_notes(env, 'j1')[1] == notes[:2]
    assert pythond_file_notes(env, 'my_job')[1] == [notes[2]]
    assert pythond_file_notes(env, 'j3')[1] == []
    assert pythond_file_notes(env)[1] == notes


def test_a_yaml_merge_key_is_refused_as_python_d_refuses_the_whole_file(tmp_path):
    """python.d.plugin builds each mapping from plain pairs: a '<<: *defaults' makes it drop the
    file with one log line and run none of its jobs, so the file's check must not call it ok."""
    conf = tmp_path / 'merge.conf'
    conf.write_text("defaults: &d\n  lags_n: 2\nlocal:\n  <<: *d\n  model: 'knn'\n")
    with pytest.raises(ConfigError, match=r"line 4: '<<:' \(a YAML merge key\) cannot be used"):
        load_config_file(str(conf))


def test_only_the_framework_keys_python_d_passes_down_reach_the_jobs(tmp_path):
    """python.d gives every job the file's top-level update_every, priority, autodetection_retry,
    chart_cleanup and penalty, and nothing else: a top-level 'name' would otherwise make every
    job 'shared' here, while python.d runs them under their own names."""
    conf = tmp_path / 'name.conf'
    conf.write_text("name: shared\nupdate_every: 2\nlocal:\n  lags_n: 3\nchild:\n  host: '10.0.0.2:19999'\n")
    notes = []
    jobs = load_config_file(str(conf), notes)
    assert jobs == {'local': {'update_every': 2, 'lags_n': 3}, 'child': {'update_every': 2, 'host': '10.0.0.2:19999'}}
    assert any("top-level key 'name' reaches no job" in n for n in notes), notes


def test_a_value_built_by_yaml_aliases_is_shown_cut_not_as_megabytes():
    text = ('a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n'
            'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n'
            'anomalies:\n  charts_regex: *d\n  contamination: 2\n')
    raw = job_configs_from_file(yaml.safe_load(text))['anomalies']
    errors = errors_for(raw)
    regex = [e for e in errors if "'charts_regex'" in e]
    assert len(regex) == 1 and len(regex[0]) <= 600
    assert regex[0].startswith("key 'charts_regex': expected a regular expression string, got [[[['x'")
    assert 'characters left out' in regex[0] and regex[0].endswith("'x']]]]")
    # a short message is left whole
    assert "key 'contamination': expected a share in (0, 0.5], got 2" in errors


def test_a_value_yaml_aliases_make_billions_of_items_is_not_printed_to_be_cut():
    """Nine levels of nine aliases are 387 million items: printed whole for the error (before
    it is cut) they took gigabytes, and the check (or python.d.plugin's job) died for memory."""
    text = 'a0: &a0 [x, x, x, x, x, x, x, x, x]\n' + ''.join(
        'a{}: &a{} [{}]\n'.format(i, i, ', '.join(['*a{}'.format(i - 1)] * 9)) for i in range(1, 9))
    text += 'anomalies:\n  charts_regex: *a8\n  custom_models: *a8\n'
    raw = job_configs_from_file(yaml.safe_load(text))['anomalies']
    started = time.monotonic()
    errors = errors_for(raw)
    assert time.monotonic() - started < 5
    assert "key 'charts_regex': expected a regular expression string, got <a list of over 100000 items" in errors[0]
    assert any(e.startswith("key 'custom_models'") and 'over 100000 items' in e for e in errors), errors


@pytest.mark.parametrize('value', [73519842, ['s3cr3t'], {'s3cr3t': None}, 1.5])
def test_a_password_that_is_not_a_string_is_refused_without_its_value(value):
    """A password YAML reads as a number (digits unquoted) or a list was written whole into the
    job's error line, which the agent's log keeps (and check-config prints)."""
    with pytest.raises(ConfigError) as e:
        parse_job_config({'username': 'admin', 'password': value})
    text = str(e.value) + ' '.join(e.value.errors)
    assert "key 'password': expected a string, got " in text
    assert 's3cr3t' not in text and '73519842' not in text and '1.5' not in text, text


def test_a_scope_that_takes_an_uptime_chart_is_warned_of():
    """system.uptime only climbs: modelled, it is flagged once the models are older than the
    window they were fitted on (the retired collector's configs set charts_to_exclude whole)."""
    notes = config_warnings(parse_job_config({'charts_to_exclude': 'None'}))
    assert len(notes) == 1 and 'system.uptime' in notes[0] and "'*.uptime'" in notes[0], notes
    notes = config_warnings(parse_job_config({'charts_regex': r'system\..*|netdata\.uptime',
                                              'charts_to_exclude': 'system.entropy'}))
    assert 'leaves system.uptime, netdata.uptime in scope' in notes[0]
    assert config_warnings(parse_job_config({'charts_to_exclude': 'system.uptime,system.entropy'})) == []
    assert config_warnings(parse_job_config({'charts_regex': r'system\.cpu', 'charts_to_exclude': 'None'})) == []


@pytest.mark.parametrize('regex', [r'system\..*|', r'|system\..*', r'system\.cpu||system\.ram', r'(system\..*|)'])
def test_a_scope_with_an_empty_alternative_that_takes_every_chart_is_warned_of(regex):
    """'system\..*|' (the retired collector's own example) matches every chart at its start:
    the job modelled 182 charts where 36 were meant, without a word."""
    cfg = parse_job_config({'charts_regex': regex})
    assert cfg.chart_matches('apps.cpu') and cfg.chart_matches('disk.sda')
    notes = [n for n in config_warnings(cfg) if n.startswith("key 'charts_regex'")]
    assert len(notes) == 1 and 'empty alternative' in notes[0] and 'every chart' in notes[0], notes


@pytest.mark.parametrize('regex', [r'system\..*', r'.*', r'system\.(cpu|ram)', r'system\.cpu|mem\..*', r'a\|',
                                   r'(system|)\..*'])
def test_a_scope_without_an_empty_alternative_is_not_warned_of(regex):
    assert not [n for n in config_warnings(parse_job_config({'charts_regex': regex}))
                if n.startswith("key 'charts_regex'")]


def test_a_textfile_folder_this_user_cannot_write_is_warned_of(tmp_path, monkeypatch):
    """install.sh --check runs check-config as the agent's user, so a node-exporter folder only
    root may write is said before the job starts and never writes its file."""
    folder = tmp_path / 'textfile'
    folder.mkdir()
    cfg = parse_job_config({'prometheus_textfile': str(folder / 'anomalies.prom')})
    assert config_warnings(cfg) == []
    real_access = os.access
    monkeypatch.setattr(os, 'access', lambda p, mode: False if str(p) == str(folder) else real_access(p, mode))
    notes = config_warnings(cfg)
    assert len(notes) == 1 and notes[0].startswith(
        "key 'prometheus_textfile': the folder {} is not writable by this user (".format(folder)), notes


@pytest.mark.skipif(os.geteuid() != 0, reason='needs a folder owned by another user than the one checked')
def test_check_config_as_root_says_what_the_agents_user_may_not_write(tmp_path):
    """Root may write anywhere: install.sh --check asks for the agent's user by name."""
    import pwd
    user = pwd.getpwuid(65534).pw_name   # nobody: neither the folder's owner nor in its group
    folder = tmp_path / 'textfile'
    folder.mkdir(mode=0o755)
    conf = tmp_path / 'a.conf'
    conf.write_text("anomalies:\n  prometheus_textfile: '{}/anomalies.prom'\n".format(folder))
    said = check_config_output(conf, '--user', user)
    assert "key 'prometheus_textfile': the folder {} is not writable by the user {}".format(folder, user) in said
    assert 'not writable' not in check_config_output(conf)   # root's own check
    folder.chmod(0o777)
    assert 'not writable' not in check_config_output(conf, '--user', user)
    assert 'no such user here' in check_config_output(conf, '--user', 'no-such-user-x')
    # the models' folder too: the trainings cannot save there (made below a folder the user may write)
    folder.chmod(0o755)
    conf.write_text("anomalies:\n  models_dir: '{}/models/more'\n".format(folder))
    assert "key 'models_dir': {} is not writable by the user {}".format(folder, user) in check_config_output(
        conf, '--user', user)
    folder.chmod(0o777)
    assert 'not writable' not in check_config_output(conf, '--user', user)


@pytest.mark.skipif(os.geteuid() != 0, reason='needs chown')
def test_check_config_as_root_answers_for_a_folder_whose_group_has_no_name(tmp_path):
    """A textfile folder mounted from a container or NFS has a gid this machine has no name
    for: install.sh --check gets a verdict on it, not a traceback that reads as a broken config."""
    import grp
    import pwd
    user = pwd.getpwuid(65534).pw_name
    gid = next(g for g in range(54321, 60000) if g not in {e.gr_gid for e in grp.getgrall()})
    folder = tmp_path / 'textfile'
    folder.mkdir()
    os.chown(folder, 54321, gid)
    folder.chmod(0o775)
    conf = tmp_path / 'a.conf'
    conf.write_text("anomalies:\n  prometheus_textfile: '{}/anomalies.prom'\n".format(folder))
    said = check_config_output(conf, '--user', user)
    assert 'Traceback' not in said and 'KeyError' not in said, said
    assert "key 'prometheus_textfile': the folder {} is not writable by the user {}".format(folder, user) in said
    folder.chmod(0o777)
    assert 'not writable' not in check_config_output(conf, '--user', user)


def test_a_job_reads_this_machine_only_through_a_loopback_address_or_its_name():
    """Another job's training, here, shows in the charts of an agent on this machine only."""
    from collector.hosts import on_this_machine
    here = ['127.0.0.1:19999', 'localhost:19999', '[::1]:19999', 'LOCALHOST', '127.0.1.1', 'box:19999', 'box.']
    elsewhere = ['10.0.0.5:19999', 'parent:19999', '127.0.0.1:19999/host/child', 'localhost/host/child', '', None,
                 '[fe80::1]:19999']
    assert [h for h in here if not on_this_machine(h, hostname='box')] == []
    assert [h for h in elsewhere if on_this_machine(h, hostname='box')] == []
