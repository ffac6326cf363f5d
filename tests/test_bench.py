"""The benchmark scripts refuse what would waste a run, and their report reads only runs beside
the baseline."""
import argparse
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'bench'))
import report  # noqa: E402
import run  # noqa: E402


def run_args(**kw):
    args = dict(charts=3, model='mahalanobis', baseline_model='pca', set=[], versus_set=[], json=None,
                recording=os.path.join(ROOT, 'demo', 'recording'))
    args.update(kw)
    return argparse.Namespace(**args)


def test_run_refuses_a_json_path_in_no_folder_before_any_run(tmp_path, capsys):
    with pytest.raises(SystemExit):
        run.checked(argparse.ArgumentParser(), run_args(json=str(tmp_path / 'results' / 'x.json')), 60)
    assert 'no such folder' in capsys.readouterr().err
    rec, charts, _, _ = run.checked(argparse.ArgumentParser(), run_args(json=str(tmp_path / 'x.json')), 60)
    assert len(charts) == 3


def test_report_leaves_out_runs_beside_no_baseline(tmp_path, capsys):
    side = {'cpu_per_step': 0.002, 'rss_mib': 45.0}
    runs = {'mahalanobis-37': {'baseline': dict(side, cpu_per_step=0.1)},
            'skipped': {},
            'versus': {'versus_set': ['level_features=false'], 'baseline': side}}
    for name, d in runs.items():
        with open(str(tmp_path / (name + '.json')), 'w') as f:
            json.dump(dict(d, model='mahalanobis' if name != 'skipped' else 'pca', charts=37 if name != 'versus' else 100,
                           ours=side), f)
    assert list(report.load(str(tmp_path))) == [('mahalanobis', 37)]
    err = capsys.readouterr().err
    assert 'skipped.json: left out' in err and 'versus level_features=false' in err


@pytest.mark.parametrize('argv', [
    ['refill.py', '/nonexistent'], ['refill.py', 'demo/recording', '--repeats', '0'],
    ['refill.py', 'demo/recording', '--delays', '0', '-0.1'], ['listing.py', '/nonexistent'],
    ['listing.py', 'demo/recording', '--steps', '0'], ['update_every.py', '/nonexistent'],
    ['update_every.py', 'recordings/netdata-1.37-long-a', '--every', '0'],
    ['smd_reference.py', '/nonexistent'], ['training_memory.py', '--charts', '37', '0'],
    ['training_memory.py', '--dims', '0'], ['soak.py', '/nonexistent'], ['soak.py', 'demo/recording', '--loops', '0'],
    ['jobs_training.py', '/nonexistent'], ['jobs_training.py', '--jobs', '0'],
])
def test_scripts_refuse_a_bad_argument_before_any_work(argv, monkeypatch, capsys):
    """A path that is no recording or dataset, a count under 1, a negative delay: the parser's
    error exit (2) naming it, not a traceback after a training (or a row of 0/36 scored)."""
    import importlib
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, 'argv', argv)
    module = importlib.import_module(argv[0][:-3])
    for work in ('parse_job_config', 'trained_job', 'measure', 'soak'):   # what any work starts with fails otherwise
        monkeypatch.setattr(module, work, None, raising=False)
    with pytest.raises(SystemExit) as e:
        module.main()
    assert e.value.code == 2 and 'error:' in capsys.readouterr().err


def test_a_python_without_the_projects_libraries_is_told_which_venv_to_use(monkeypatch):
    """Started with a system python3 (no pandas), a benchmark's training failed at each retry
    and refill.py then waited for a model for ever, at full CPU: one line instead, before any work."""
    import common
    monkeypatch.setattr(sys, 'argv', ['bench/refill.py'])
    with pytest.raises(SystemExit) as e:
        common.require(('numpy', 'no_such_module_here'))
    assert "refill.py: this Python ({}) has no no_such_module_here: run it with the project's venv, ".format(
        sys.executable) in str(e.value.code) and str(e.value.code).endswith(
            '.venv/bin/python bench/refill.py (./install.sh --dev makes it)')
    common.require()   # this venv has them all


def test_ctrl_c_stops_a_benchmark_in_one_line(monkeypatch, capsys):
    import common
    monkeypatch.setattr(sys, 'argv', ['bench/soak.py'])

    def interrupted():
        raise KeyboardInterrupt
    with pytest.raises(SystemExit) as e:
        common.run_main(interrupted)
    assert e.value.code == 130 and capsys.readouterr().err == '\nsoak.py: interrupted\n'
    with pytest.raises(SystemExit) as e:
        common.run_main(lambda: 3)
    assert e.value.code == 3


def test_a_job_that_never_trains_stops_the_benchmark_with_a_line(monkeypatch):
    """A training that fails at every retry (here: no chart data at all) must not keep the
    benchmark stepping for ever."""
    import replayed
    from collector import training_window
    from collector.netdata_api import NetdataError

    def unreadable(*a, **k):
        raise NetdataError('no chart data could be read for training')
    monkeypatch.setattr(training_window, 'fetch_training_frame', unreadable)
    monkeypatch.setattr(replayed, 'TRAIN_FAILURES', 2)   # (the second is 30 steps after the first)
    rec = replayed.Recording(os.path.join(ROOT, 'recordings', 'netdata-1.37-long-a'))
    with pytest.raises(SystemExit) as e:
        with replayed.trained_job(rec, 'refill'):
            pass
    assert str(e.value.code).startswith('refill: no model trained in 3') and 'see the errors above' in \
        str(e.value.code)


def test_a_benchmarks_job_on_the_demo_recording_trains(monkeypatch):
    """The demo's lead is 5 minutes: a job there starts with no history, and waits for
    train_min_n_secs and a look at the chart list; a benchmark must wait that long too."""
    import replayed
    rec = replayed.Recording(os.path.join(ROOT, 'demo', 'recording'))
    with replayed.trained_job(rec, 'refill') as (server, det):
        assert det.models
