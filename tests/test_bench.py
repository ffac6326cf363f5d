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
