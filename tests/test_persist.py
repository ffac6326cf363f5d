"""Saved models: written by training, used again after a restart, retrained when they no longer fit."""
import json
import os
import pickle
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from collector import persist
from collector.config import parse_job_config
from collector.models import fit_model
from collector.replay import Recording, ReplayClock, ReplayServer
from conftest import ROOT, START
from live_job import LiveJob

COLS = ['h::system.cpu|user', 'h::system.cpu|system']


def saved(tmp_path, model='pca', **conf):
    cfg = parse_job_config(dict({'model': model}, **conf))
    X = np.random.default_rng(0).normal(size=(500, 2))
    fm = fit_model('system.cpu', COLS, cfg.training_features(X), model=model, contamination=cfg.contamination,
                   blocks=(cfg.lags_n + 1, cfg.level_features), level_squash=cfg.squash)
    fm.info['window'] = (1.0, 500.0)
    persist.save(str(tmp_path), fm, cfg, 500.0)
    return fm, cfg


def test_standalone_runs_keep_each_agents_models_apart(tmp_path, monkeypatch):
    """Standalone runs share the project's models/: ``run --host B`` with the job that reads the
    local agent must not replace its models. Under the agent a job's folder is its name."""
    monkeypatch.delenv('NETDATA_LIB_DIR', raising=False)
    local = persist.resolve_dir('auto', 'anomalies', '127.0.0.1:19999')
    assert local == persist.resolve_dir('auto', 'anomalies') == os.path.join(ROOT, 'models', 'anomalies')
    assert persist.resolve_dir('auto', 'anomalies', 'parent:19999/host/child') == os.path.join(
        ROOT, 'models', 'anomalies@parent_19999_host_child')
    monkeypatch.setenv('NETDATA_LIB_DIR', str(tmp_path))
    assert persist.resolve_dir('auto', 'anomalies', '127.0.0.1:19970') == str(tmp_path / 'anomalies-models' / 'anomalies')
    assert persist.resolve_dir(str(tmp_path), 'edge', 'x:1') == str(tmp_path / 'edge')
    assert persist.resolve_dir(None, 'anomalies', 'x:1') is None
    # a job named '..' keeps its models in a folder of its own, not in the one above them all
    assert persist.resolve_dir(str(tmp_path), '..') == str(tmp_path / '_..')
    assert persist.resolve_dir(str(tmp_path), '.') == str(tmp_path / '_.')
    # a long job name on a child's path makes a folder name the disk takes (at most 255 bytes)
    monkeypatch.delenv('NETDATA_LIB_DIR')
    long = persist.resolve_dir('auto', 'j' * 150, 'parent:19999/host/' + 'c' * 150)
    assert len(os.path.basename(long).encode()) <= 255 and os.path.basename(long).startswith('j' * 100)
    assert long != persist.resolve_dir('auto', 'j' * 150, 'parent:19999/host/' + 'c' * 151)


def test_a_standalone_run_of_the_installed_package_keeps_its_models_in_the_users_cache(tmp_path, monkeypatch):
    """Installed (the agent's venv), the package sits in site-packages, which the user running
    ``python -m collector run`` may not write: its models go to the user's cache instead."""
    site = tmp_path / 'site-packages'
    (site / 'collector').mkdir(parents=True)
    monkeypatch.setattr(persist, '_ROOT', str(site))
    monkeypatch.delenv('NETDATA_LIB_DIR', raising=False)
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
    assert persist.resolve_dir('auto', 'anomalies') == str(tmp_path / 'cache' / 'netdata-anomalies' / 'models'
                                                           / 'anomalies')
    monkeypatch.delenv('XDG_CACHE_HOME')
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    assert persist.resolve_dir('auto', 'edge', 'other:19999') == str(
        tmp_path / 'home' / '.cache' / 'netdata-anomalies' / 'models' / 'edge@other_19999')
    monkeypatch.setenv('NETDATA_LIB_DIR', str(tmp_path / 'lib'))   # under the agent, as before
    assert persist.resolve_dir('auto', 'anomalies') == str(tmp_path / 'lib' / 'anomalies-models' / 'anomalies')


def test_save_then_load_gives_the_same_model_and_metadata(tmp_path):
    fm, cfg = saved(tmp_path, level_squash=7)
    got, meta, reason = persist.load(str(tmp_path), 'system.cpu', cfg, list(reversed(COLS)))
    assert reason is None
    X = cfg.features(np.random.default_rng(2).normal(size=(30, 2)))
    assert np.array_equal(got.decision_function(X), fm.decision_function(X))
    assert got.knee is not None and np.array_equal(got.knee, fm.knee)   # the level block stays squashed
    assert meta['config_hash'] == persist.config_hash(cfg) and meta['window'] == [1.0, 500.0]
    assert meta['scores']['threshold'] == fm.threshold and meta['libraries']['numpy']
    assert sorted(os.listdir(tmp_path)) == ['system.cpu.json', 'system.cpu.pkl']   # no temporary files


def test_models_of_charts_long_gone_are_removed_and_nothing_else(tmp_path):
    """Charts that went away while the job was stopped (containers, process groups) left their
    files for good. A file of a chart not listed goes once older than the limit; a listed
    chart's, a recent one's and files not written as models stay."""
    fm, cfg = saved(tmp_path)
    for name in ('cgroup_gone.cpu', 'cgroup_new.cpu'):
        fm.name = name
        persist.save(str(tmp_path), fm, cfg, 500.0)
    meta_path = tmp_path / 'cgroup_gone.cpu.json'
    meta = json.loads(meta_path.read_text())
    meta['saved_at'] -= 3 * 86400
    meta_path.write_text(json.dumps(meta))
    (tmp_path / 'notes.json').write_text('{"hello": 1}')
    (tmp_path / 'copy.json').write_text(json.dumps(dict(meta, model_id='system.cpu', saved_at=0)))
    listed_old = tmp_path / 'system.cpu.json'
    meta = json.loads(listed_old.read_text())
    meta['saved_at'] -= 3 * 86400
    listed_old.write_text(json.dumps(meta))
    assert list(persist.prune(str(tmp_path), ['system.cpu'], 86400)) == ['cgroup_gone.cpu']
    # a file not named after its model (a copy of system.cpu's) takes nothing with it
    assert sorted(os.listdir(tmp_path)) == ['cgroup_new.cpu.json', 'cgroup_new.cpu.pkl', 'copy.json', 'notes.json',
                                            'system.cpu.json', 'system.cpu.pkl']
    assert persist.prune(str(tmp_path / 'none'), [], 0) == {}


def test_a_write_cut_off_long_ago_leaves_no_temporary_file_behind(tmp_path):
    """A training process killed while it saved (the agent restarted, a training over its time)
    leaves a temporary file that nothing else removes; a model's can be megabytes."""
    fm, cfg = saved(tmp_path)
    old, fresh = tmp_path / '.anomalies-abc123.tmp', tmp_path / '.anomalies-def456.tmp'
    for path in (old, fresh):
        path.write_bytes(b'x' * 1000)
    os.utime(old, (time.time() - 2 * 3600,) * 2)
    assert persist.prune(str(tmp_path), ['system.cpu'], 86400) == {}
    assert sorted(os.listdir(tmp_path)) == ['.anomalies-def456.tmp', 'system.cpu.json', 'system.cpu.pkl']
    # killed between the model's file and its metadata: the model's file alone, as old as a
    # gone chart's model, goes too; a recent one, or one of a chart in scope, stays
    for name, age in (('cgroup_gone.cpu', 2 * 86400), ('cgroup_new.cpu', 60), ('disk.sda', 2 * 86400)):
        (tmp_path / (name + '.pkl')).write_bytes(b'x' * 1000)
        os.utime(tmp_path / (name + '.pkl'), (time.time() - age,) * 2)
    assert persist.prune(str(tmp_path), ['system.cpu', 'disk.sda'], 86400) == {}
    assert sorted(os.listdir(tmp_path)) == ['.anomalies-def456.tmp', 'cgroup_new.cpu.pkl', 'disk.sda.pkl',
                                            'system.cpu.json', 'system.cpu.pkl']


def test_a_saved_model_in_a_folder_other_users_can_write_is_not_loaded(tmp_path):
    """A saved model is a pickle, which runs code as it loads: one in a folder every user can
    write (a models_dir under /tmp), or a file another user owns, is retrained instead, and the
    reason says so."""
    fm, cfg = saved(tmp_path)
    os.chmod(tmp_path, 0o777)
    got, _, reason = persist.load(str(tmp_path), 'system.cpu', cfg, COLS)
    assert got is None and reason.startswith('not loaded: {} is writable by every user'.format(tmp_path)), reason
    os.chmod(tmp_path, 0o755)
    assert persist.load(str(tmp_path), 'system.cpu', cfg, COLS)[0] is not None
    if os.geteuid() == 0:   # only root can give a file away
        os.chown(tmp_path / 'system.cpu.pkl', 65534, 65534)
        got, _, reason = persist.load(str(tmp_path), 'system.cpu', cfg, COLS)
        assert got is None and 'its file is owned by another user (uid 65534)' in reason, reason


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_a_folder_put_in_place_after_the_check_is_not_the_one_read(tmp_path, monkeypatch):
    """The folder and the model's file were checked by name, then read by name: whoever may rename
    in the folder above (under the agent the models folders are its group's to write) could put a
    folder of theirs in place in between, and its pickle ran as the job's user."""
    models = tmp_path / 'models'
    models.mkdir()
    fm, cfg = saved(models)
    marker = str(tmp_path / 'ran')
    theirs = tmp_path / 'theirs'
    theirs.mkdir()
    evil = pickle.dumps(_Payload(marker))
    (theirs / 'system.cpu.pkl').write_bytes(evil)
    meta = json.loads((models / 'system.cpu.json').read_text())
    meta['sha256'] = __import__('hashlib').sha256(evil).hexdigest()
    (theirs / 'system.cpu.json').write_text(json.dumps(meta))
    if os.geteuid() == 0:
        for p in (theirs, theirs / 'system.cpu.pkl', theirs / 'system.cpu.json'):
            os.chown(str(p), 65534, 65534)
    real_open = open

    def swapped(*args, **kwargs):   # the checks are done: the swap happens now
        if not (tmp_path / 'checked').exists():
            os.rename(str(models), str(tmp_path / 'checked'))
            os.rename(str(theirs), str(models))
        return real_open(*args, **kwargs)
    monkeypatch.setattr(persist, 'open', swapped, raising=False)
    got, _, reason = persist.load(str(models), 'system.cpu', cfg, COLS)
    assert not os.path.exists(marker)
    assert got is not None and got.columns == fm.columns, reason


def test_flagged_steps_are_saved_and_read_back_and_a_bad_file_is_only_a_reason(tmp_path):
    spans = {'system.cpu': [[100.0, 130.0], [400.0, 401.0]], 'disk.sda': [[5.0, 5.0]], 'system.ram': []}
    persist.save_flagged(str(tmp_path), spans)
    assert persist.load_flagged(str(tmp_path)) == ({'system.cpu': spans['system.cpu'], 'disk.sda': [[5.0, 5.0]]},
                                                   None)
    assert persist.prune(str(tmp_path), [], 0) == {}   # not a model's file: left alone
    path = tmp_path / persist.FLAGGED_FILE
    body = json.loads(path.read_text())
    body['spans'] = {'system.cpu': [[1, 2], [3, 'x'], [9, 8], [1, 2, 3], None, [float('nan'), 1]], 'x': 'y'}
    path.write_text(json.dumps(body))
    assert persist.load_flagged(str(tmp_path)) == ({'system.cpu': [[1.0, 2.0]]}, None)
    path.write_text('{"format": 1, "spans"')
    spans, reason = persist.load_flagged(str(tmp_path))
    assert spans == {} and reason.startswith('unreadable')
    assert persist.load_flagged(str(tmp_path / 'none')) == ({}, None)


def test_another_agents_flagged_steps_are_not_left_out_of_this_ones_training(tmp_path):
    """One models_dir set for two agents: the saved models say whose they are, and so do the
    flagged steps, whose times would otherwise cut rows out of the other agent's training."""
    persist.save_flagged(str(tmp_path), {'system.cpu': [[100.0, 130.0]]}, 'a:19999')
    assert persist.load_flagged(str(tmp_path), 'a:19999') == ({'system.cpu': [[100.0, 130.0]]}, None)
    assert persist.load_flagged(str(tmp_path), 'b:19999') == ({}, 'saved for another agent (a:19999)')
    path = tmp_path / persist.FLAGGED_FILE   # written before the file named its agent: taken
    body = json.loads(path.read_text())
    del body['host']
    path.write_text(json.dumps(body))
    assert persist.load_flagged(str(tmp_path), 'b:19999') == ({'system.cpu': [[100.0, 130.0]]}, None)
    # the agent names itself (its machine GUID): that decides, not how the job's host is written,
    # or an edit of 127.0.0.1 to localhost retrained every model at once on the incidents it had flagged
    persist.save_flagged(str(tmp_path), {'system.cpu': [[100.0, 130.0]]}, '127.0.0.1:19999', 'guid-a')
    assert persist.load_flagged(str(tmp_path), 'localhost:19999', 'guid-a') == ({'system.cpu': [[100.0, 130.0]]},
                                                                               None)
    assert persist.load_flagged(str(tmp_path), '127.0.0.1:19999', 'guid-b') == (
        {}, 'saved for another agent (machine GUID guid-a)')
    assert persist.load_flagged(str(tmp_path), 'localhost:19999') == ({}, 'saved for another agent (127.0.0.1:19999)')


def test_long_model_ids_are_saved_whole_and_each_file_says_whose_it_is(tmp_path):
    """Custom models are named by the user, chart ids by the agent (UTF-8 on newer ones), and a
    file name is at most 255 bytes: a long id is cut and hashed (its .pkl fitting where its
    .json did not used to leave an orphan each training). Two ids that make one file name
    ('a b', 'a/b') take turns in it, and each loads only its own."""
    cfg = parse_job_config({'model': 'pca'})
    X = np.random.default_rng(0).normal(size=(500, 2))
    ids = ['x' * 250, 'x' * 251, '\u00e9' * 130, 'a b', 'a/b']
    for k, model_id in enumerate(ids):
        fm = fit_model(model_id, COLS, cfg.training_features(X + k), model='pca', contamination=cfg.contamination,
                       blocks=(cfg.lags_n + 1, cfg.level_features))
        persist.save(str(tmp_path), fm, cfg, 500.0)
    assert len(list(tmp_path.glob('*.json'))) == 4 and all(len(p.name.encode()) < 255 for p in tmp_path.iterdir())
    assert persist.file_stem('system.cpu') == 'system.cpu' and persist.file_stem('a b') == 'a_b'   # as saved before
    for model_id in ids[:3] + ['a/b']:
        fm, meta, reason = persist.load(str(tmp_path), model_id, cfg, COLS)
        assert reason is None and fm.name == model_id and meta['model_id'] == model_id
    assert persist.load(str(tmp_path), 'a b', cfg, COLS)[2] == "its file holds the model of 'a/b'"
    assert persist.prune(str(tmp_path), ids, 0.0) == {}
    assert sorted(persist.prune(str(tmp_path), ids[:1], 0.0)) == sorted(ids[1:3] + ['a/b'])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(persist.file_stem(ids[0]) + e for e in ('.json', '.pkl'))


def test_a_model_saved_by_another_version_says_so_rather_than_a_configuration_change(tmp_path):
    _, cfg = saved(tmp_path)
    meta = json.loads((tmp_path / 'system.cpu.json').read_text())
    meta['format'] = persist.FORMAT - 1
    (tmp_path / 'system.cpu.json').write_text(json.dumps(meta))
    assert persist.load(str(tmp_path), 'system.cpu', cfg, COLS)[2] == \
        'saved by another version of this collector (file format {}, now {})'.format(persist.FORMAT - 1, persist.FORMAT)


def test_a_default_model_saved_before_held_out_thresholds_is_retrained_not_loaded(tmp_path):
    """Format 6 took a wide chart's mahalanobis threshold from its training rows' own scores,
    under most later normal steps (a 100-dimension chart on 15 minutes of history: 96 % of them
    flagged). A job upgraded over such a save loaded it, and flagged the chart until its next
    training: it is retrained at once, and the log says why."""
    _, cfg = saved(tmp_path, model='mahalanobis')
    meta = json.loads((tmp_path / 'system.cpu.json').read_text())
    meta['format'] = 6
    (tmp_path / 'system.cpu.json').write_text(json.dumps(meta))
    assert persist.load(str(tmp_path), 'system.cpu', cfg, COLS)[2] == \
        'saved by another version of this collector (file format 6, now {})'.format(persist.FORMAT)


def test_what_no_longer_fits_is_a_reason_to_retrain(tmp_path):
    _, cfg = saved(tmp_path)
    load = persist.load
    assert load(str(tmp_path), 'system.cpu', cfg, COLS)[2] is None   # the same settings load
    assert load(str(tmp_path), 'system.ram', cfg, COLS) == (None, None, None)          # nothing saved
    assert load(str(tmp_path), 'system.cpu', parse_job_config({'model': 'pca', 'lags_n': 2}), COLS)[2] == \
        'configuration changed (lags_n 5 -> 2)'
    assert load(str(tmp_path), 'system.cpu', parse_job_config({'model': 'knn', 'contamination': 0.01}), COLS)[2] == \
        'configuration changed (model pca -> knn, contamination 0.001 -> 0.01)'
    assert load(str(tmp_path), 'system.cpu', cfg, COLS[:-1])[2] == 'dimensions changed'   # one went away
    # one more listed: a dimension the training found no value of (or one new since), which the
    # job retrains for when it has values; the model scores meanwhile
    more = COLS + ['h::system.cpu|nice']
    assert load(str(tmp_path), 'system.cpu', cfg, more, fewer_ok=True)[2] is None
    assert load(str(tmp_path), 'system.cpu', cfg, more)[2] == 'dimensions changed'   # a custom model's list grew
    assert load(str(tmp_path), 'system.cpu', cfg, COLS[:-1] + ['h::system.cpu|nice'], fewer_ok=True)[2] == \
        'dimensions changed'
    assert load(str(tmp_path), 'system.cpu', cfg, ['other:19999' + c[1:] for c in COLS])[2] == \
        'saved for another agent'
    # the same agent (its machine GUID) read at another address ('localhost:19999' for '127.0.0.1:19999')
    persist.save(str(tmp_path), persist.load(str(tmp_path), 'system.cpu', cfg, COLS)[0], cfg, 1.0, agent='guid-a')
    assert load(str(tmp_path), 'system.cpu', cfg, ['other:19999' + c[1:] for c in COLS], agent='guid-a')[2] == \
        'saved while the job read this agent as h (host changed)'
    assert load(str(tmp_path), 'system.cpu', cfg, ['other:19999' + c[1:] for c in COLS])[2] == \
        'saved for another agent'
    assert load(str(tmp_path), 'system.cpu', cfg, COLS, agent='guid-a')[2] is None
    assert load(str(tmp_path), 'system.cpu', parse_job_config({'model': 'pca', 'level_squash': 7}), COLS)[2] == \
        'configuration changed (level_squash 0.0 -> 7.0)'   # its levels were learnt whole
    pkl = tmp_path / 'system.cpu.pkl'
    pkl.write_bytes(pkl.read_bytes()[:-10] + b'0123456789')
    assert 'damaged' in load(str(tmp_path), 'system.cpu', cfg, COLS)[2]
    # a save cut off between the two files (the job killed, the disk full): the new model beside
    # the old metadata is said to be that first, not only a damaged file
    assert 'a save cut short' in load(str(tmp_path), 'system.cpu', cfg, COLS)[2]
    assert load(str(tmp_path), 'system.cpu', parse_job_config({'model': 'pca', 'update_every': 5}), COLS)[2] == \
        'configuration changed (update_every 1 -> 5)'   # its differences were learnt a second apart
    meta = json.loads((tmp_path / 'system.cpu.json').read_text())
    for key, odd in (('trained_at', 'yesterday'), ('trained_at', None), ('columns', 5)):
        # (a trained_at that is not a time stopped the report of every model loaded with it)
        (tmp_path / 'system.cpu.json').write_text(json.dumps(dict(meta, **{key: odd})))
        assert load(str(tmp_path), 'system.cpu', cfg, COLS)[2] == 'metadata unreadable ({})'.format(key)
    (tmp_path / 'system.cpu.json').write_text('{not json')
    assert 'metadata unreadable' in load(str(tmp_path), 'system.cpu', cfg, COLS)[2]


def test_pyod_models_are_not_trusted_across_other_versions(tmp_path):
    _, cfg = saved(tmp_path, model='gmm')
    now = persist.installed_versions()
    assert persist.load(str(tmp_path), 'system.cpu', cfg, COLS, now)[2] is None
    other = dict(now, **{'scikit-learn': '0.0.1'})
    assert persist.load(str(tmp_path), 'system.cpu', cfg, COLS, other)[2] == \
        'trained with other versions of scikit-learn'


def test_numpy_ported_models_survive_a_library_upgrade(tmp_path):
    _, cfg = saved(tmp_path, model='hbos')
    other = dict(persist.installed_versions(), **{'scikit-learn': '0.0.1', 'pyod': '0.0.1'})
    fm, _, reason = persist.load(str(tmp_path), 'system.cpu', cfg, COLS, other)
    assert reason is None and fm.model_name == 'hbos'


def run(host, conf, steps):
    return subprocess.run([sys.executable, '-m', 'collector', 'run', '--host', host, '--config', str(conf),
                           '--steps', str(steps), '--update-every', '1'],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def run_until_trained(host, conf, charted=0):
    """A job run until its training is done (seconds here, a minute under qemu's aarch64) and
    it has charted ``charted`` steps, then stopped as an agent stops it."""
    job = LiveJob(host, conf)
    try:
        job.wait_for(r'trained \d+ models?|training failed')
        job.wait_charted('anomalies.probability', charted)
    finally:
        job.stop()
    return job


def test_a_restarted_job_predicts_at_once_with_its_saved_models(recording, tmp_path):
    models = tmp_path / 'models'
    conf = tmp_path / 'anomalies.conf'
    conf.write_text("anomalies:\n  train_n_secs: 300\n  train_every_n: 3600\n  models_dir: '{}'\n".format(models))
    server = ReplayServer(Recording(recording), ReplayClock(START + 400)).start()
    try:
        first = run_until_trained(server.host, conf)
        assert first.returncode == 0, first.stderr
        assert 'trained 4 models' in first.stderr
        job_dir = str(models / 'anomalies')
        files = sorted(f for f in os.listdir(job_dir) if f != persist.FLAGGED_FILE)   # (a flag may rise)
        assert files == sorted('system.{}.{}'.format(c, e) for c in ('cpu', 'ram', 'load', 'forks')
                               for e in ('json', 'pkl'))
        meta = json.loads(open(os.path.join(job_dir, 'system.cpu.json')).read())
        assert meta['rows'] > 250 and meta['model'] == 'mahalanobis' and meta['window'][1] - meta['window'][0] >= 250

        second = run(server.host, conf, 4)   # the restart: same job, same agent
        assert second.returncode == 0, second.stderr
        assert sorted(f for f in os.listdir(job_dir) if f != persist.FLAGGED_FILE) == files
        assert re.search(r'loaded 4 saved models from \S+ \(oldest trained \d+ s ago\); next full training in '
                         r'\d+ steps', second.stderr), second.stderr
        assert not re.search(r'trained \d+ models?', second.stderr)   # nothing was retrained
        # no training: unpickle, warm up, read the last rows, and all four models chart from the
        # first step on, once a step
        steps = second.stdout.split('BEGIN anomalies.probability')[1:]
        assert len(steps) >= 3 and all(all("SET 'system.{}_prob'".format(c) in s for c in ('cpu', 'ram', 'load', 'forks'))
                                       for s in steps), second.stdout

        # a setting the models depend on changed: they are retrained, and say why
        conf.write_text(conf.read_text() + "  lags_n: 3\n")
        third = run_until_trained(server.host, conf)
        assert 'saved models not used, retraining: configuration changed (lags_n 5 -> 3)' in third.stderr
        assert 'trained 4 models' in third.stderr
        assert json.loads(open(os.path.join(job_dir, 'system.cpu.json')).read())['settings']['lags_n'] == 3
    finally:
        server.stop()


def test_a_saved_model_that_loads_but_cannot_score_costs_only_its_own_chart(recording, tmp_path):
    """A file of another build can pass its checksum and unpickle, yet lack what scoring reads:
    that one model is retrained, and the others score from the first step as usual."""
    import hashlib
    models = tmp_path / 'models'
    conf = tmp_path / 'anomalies.conf'
    conf.write_text("anomalies:\n  train_n_secs: 300\n  train_every_n: 3600\n  models_dir: '{}'\n".format(models))
    server = ReplayServer(Recording(recording), ReplayClock(START + 400)).start()
    try:
        assert run_until_trained(server.host, conf).returncode == 0
        job_dir = str(models / 'anomalies')
        pkl, meta_path = (Path(job_dir, 'system.ram.' + ext) for ext in ('pkl', 'json'))
        fm = pickle.loads(pkl.read_bytes())
        del fm.threshold
        data = pickle.dumps(fm, protocol=4)
        pkl.write_bytes(data)
        meta = json.loads(meta_path.read_text())
        meta['sha256'] = hashlib.sha256(data).hexdigest()
        meta_path.write_text(json.dumps(meta))
        second = run_until_trained(server.host, conf, charted=1)
        assert second.returncode == 0, second.stderr
        assert re.search(r"1 saved model not used, retraining: cannot use it \(AttributeError.*: system.ram",
                         second.stderr), second.stderr
        assert 'loaded 3 saved models' in second.stderr
        assert 'cannot load saved models' not in second.stderr and 'scoring failed' not in second.stderr
        assert 'trained 1 model' in second.stderr
        first_step = second.stdout.split('END')[0]
        assert "SET 'system.cpu_prob'" in first_step, second.stdout[:2000]
    finally:
        server.stop()


def test_saved_models_are_kept_while_a_wiped_agent_has_too_little_history(recording, tmp_path):
    """An agent restarted with its history gone (memory mode ram) and a full training due: every
    chart has under train_min_n_secs, so the saved models keep scoring rather than being
    dropped or refitted on seconds, and the log says so once."""
    models = tmp_path / 'models'
    conf = tmp_path / 'anomalies.conf'
    conf.write_text("anomalies:\n  train_n_secs: 300\n  train_every_n: 3600\n  models_dir: '{}'\n".format(models))
    server = ReplayServer(Recording(recording), ReplayClock(START + 400)).start()
    try:
        assert 'trained 4 models' in run_until_trained(server.host, conf).stderr
        # the same agent back with 200 s of history (70 s under train_min_n_secs: room for a slow
        # machine's training to start before the running clock gives it enough), and a training due at once
        conf.write_text(conf.read_text().replace('train_every_n: 3600', 'train_every_n: 3'))
        server.clock.set(START + 200)
        young = LiveJob(server.host, conf)
        try:
            young.wait_for(r'models kept: |trained \d+ models?|training failed')
            young.wait_charted('anomalies.probability', 8)
        finally:
            young.stop()
    finally:
        server.stop()
    assert young.returncode == 0, young.stderr
    assert 'loaded 4 saved models' in young.stderr
    assert re.search(r'4 models kept: the agent holds \d+(-\d+)? s of history, under train_min_n_secs '
                     r'\(270 s\)', young.stderr), young.stderr
    assert 'waiting for' not in young.stderr and not re.search(r'trained \d+ models?', young.stderr)
    steps = young.stdout.split('BEGIN anomalies.probability')[1:]
    assert len(steps) >= 8 and all("SET 'system.cpu_prob'" in s for s in steps)   # scored at every step


def test_an_unwritable_models_dir_is_logged_and_the_job_goes_on(recording, tmp_path):
    """A folder no one can make (as root too: /proc takes no new folders; a file on the path is
    refused by the configuration already), named as the key that put it there."""
    conf = tmp_path / 'anomalies.conf'
    conf.write_text("anomalies:\n  train_n_secs: 300\n  models_dir: '/proc/anomalies-models'\n")
    server = ReplayServer(Recording(recording), ReplayClock(START + 400)).start()
    try:
        r = run_until_trained(server.host, conf, charted=1)
    finally:
        server.stop()
    assert r.returncode == 0
    assert 'cannot save models in /proc/anomalies-models/anomalies (models_dir):' in r.stderr, r.stderr
    assert 'trained 4 models' in r.stderr
    assert "SET 'system.cpu_prob'" in r.stdout


def test_metadata_broken_alike_gives_one_reason_for_every_model(tmp_path):
    """The job logs one line per reason: files truncated at different lengths (a power cut),
    or unreadable (a folder a root run filled), must give one reason, not one per chart with
    its path or offset in it."""
    _, cfg = saved(tmp_path)
    meta = (tmp_path / 'system.cpu.json').read_text()
    reasons = set()
    for cut in (0, 7, 120, len(meta) // 2):
        (tmp_path / 'system.cpu.json').write_text(meta[:cut])
        reasons.add(persist.load(str(tmp_path), 'system.cpu', cfg, COLS)[2])
    assert len(reasons) == 1 and 'char' not in reasons.pop()
    (tmp_path / 'system.cpu.json').write_bytes(b'\xbd\xff' + meta.encode())
    assert persist.load(str(tmp_path), 'system.cpu', cfg, COLS)[2] == 'metadata unreadable (not text)'
    (tmp_path / 'system.cpu.json').unlink()
    (tmp_path / 'system.cpu.json').mkdir()
    assert persist.load(str(tmp_path), 'system.cpu', cfg, COLS)[2] == 'metadata unreadable (Is a directory)'


def test_another_nodes_models_and_flagged_steps_are_not_taken_for_this_ones(tmp_path):
    """Every job reads its own agent as 127.0.0.1:19999: a models_dir copied or restored on
    another node, or shared by the jobs of two, names the same columns. The agent's machine
    GUID tells them apart; a file saved without one, or an agent that gives none, loads as before."""
    cfg = parse_job_config({'model': 'pca'})
    X = np.random.default_rng(0).normal(size=(500, 2))
    fm = fit_model('system.cpu', COLS, cfg.training_features(X), model='pca', contamination=cfg.contamination,
                   blocks=(cfg.lags_n + 1, cfg.level_features))
    persist.save(str(tmp_path), fm, cfg, 500.0, agent='guid-a')
    assert persist.load(str(tmp_path), 'system.cpu', cfg, COLS, agent='guid-a')[2] is None
    assert persist.load(str(tmp_path), 'system.cpu', cfg, COLS)[2] is None
    reason = persist.load(str(tmp_path), 'system.cpu', cfg, COLS, agent='guid-b')[2]
    assert reason.startswith('saved for another agent (machine GUID guid-a')
    persist.save(str(tmp_path), fm, cfg, 500.0)
    assert persist.load(str(tmp_path), 'system.cpu', cfg, COLS, agent='guid-b')[2] is None
    persist.save_flagged(str(tmp_path), {'system.cpu': [[1.0, 2.0]]}, 'h', agent='guid-a')
    assert persist.load_flagged(str(tmp_path), 'h', 'guid-a') == ({'system.cpu': [[1.0, 2.0]]}, None)
    assert persist.load_flagged(str(tmp_path), 'h', 'guid-b') == ({}, 'saved for another agent (machine GUID guid-a)')


def test_a_link_put_in_place_of_a_temporary_file_does_not_get_its_mode(tmp_path, monkeypatch):
    """The temporary file's mode was set by its name once written: in a folder its group may
    write (the agent's models folders), a link put at that name made the file it names (a key of
    the agent's, 0600) readable to the group."""
    from collector import files
    secret = tmp_path / 'secret.pem'
    secret.write_text('key')
    os.chmod(str(secret), 0o600)
    real_fdopen = os.fdopen

    def raced(fd, *args, **kwargs):
        f = real_fdopen(fd, *args, **kwargs)
        for name in os.listdir(str(tmp_path / 'models')):
            if name.startswith(files.TEMP_PREFIX):
                os.unlink(str(tmp_path / 'models' / name))
                os.symlink(str(secret), str(tmp_path / 'models' / name))
        return f
    (tmp_path / 'models').mkdir()
    monkeypatch.setattr(files.os, 'fdopen', raced)
    files.write_atomically(str(tmp_path / 'models' / 'x.json'), b'{}', 0o640)
    assert oct(os.stat(str(secret)).st_mode & 0o777) == '0o600'
