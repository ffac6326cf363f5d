"""The benchmark scripts refuse what would waste a run."""
import argparse
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'bench'))
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

