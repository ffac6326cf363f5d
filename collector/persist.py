"""Trained models kept on disk, so a restarted job predicts at once instead of retraining.

One pickle per model plus a small JSON metadata file (config hash, training window, rows,
score statistics, library versions, columns, checksum of the pickle). Files are written by
the training process, atomically. Loading checks everything that could make a saved model
wrong for the job as it runs now; anything off is a reason to retrain, never an error.
"""
import functools
import hashlib
import json
import math
import os
import pickle
import stat
import sys
import time

from .config import DEFAULTS
from .files import TEMP_PREFIX, write_atomically
from .protocol import bounded_id
from .models import numpy_only

# 3: hbos, knn, ecod, copod and feature_bagging pickle numpy ports, not pyod estimators
# 4: the calibration's exponential tail (FittedModel.tail)
# 5: loda pickles its numpy form (a format-4 loda is a pyod estimator, checked against versions)
# 6: with update_every above 1 a model learns single samples, not the agent's averages
# 7: mahalanobis on a wide chart (or a short window) takes its threshold from held-out scores
#    (a format-6 one's, from its rows' own, was under most later normal steps)
FORMAT = 7
# the settings a fitted model depends on; any change means it must be retrained (update_every
# sets the spacing of the rows its differences and lags were learnt on)
HASH_KEYS = ('model', 'diffs_n', 'smooth_n', 'lags_n', 'level_features', 'level_squash', 'contamination',
             'calibration', 'update_every')
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the flagged steps' file: '@' is never in a model's file name (safe_id), so no chart's is this
FLAGGED_FILE = '@flagged-steps.json'
FLAGGED_FORMAT = 1
# a model's file name is its id (safe_id) up to this many bytes; a longer one is cut and told
# apart by a hash of the whole (a name is at most 255 bytes, and the '.json' must fit as well)
STEM_MAX = 200
# a temporary file of a write older than this was cut off (a training is stopped after 900 s)
ORPHAN_SECONDS = 3600


DEFAULT_HOST = DEFAULTS['host']


JOB_DIR_BYTES = 120   # each part of a job's folder name: '<job>' and '@<host>'


def resolve_dir(setting, job_name, host=None):
    """Where a job's models live: ``None`` (not persisted) or ``<base>/<job>``.

    ``auto``: under the agent's lib dir when the agent runs the job (python.d.plugin has
    ``NETDATA_LIB_DIR`` set), else the folder standalone runs share (``standalone_dir``): there
    a job reading another agent than the default one keeps its models in ``<job>@<host>``
    (``run --host B`` must not replace the local agent's). A folder that is set is the user's
    to keep apart.
    """
    if setting is None:
        return None
    # a folder name is at most 255 bytes, and one of dots alone ('..') is another folder
    name = bounded_id(job_name or 'anomalies', JOB_DIR_BYTES)
    if not name.strip('.'):
        name = '_' + name
    if setting == 'auto':
        lib = os.environ.get('NETDATA_LIB_DIR')
        base = os.path.join(lib, 'anomalies-models') if lib else standalone_dir()
        if not lib and host and host != DEFAULT_HOST:
            name += '@' + bounded_id(host, JOB_DIR_BYTES)
    else:
        base = os.path.expanduser(setting)
    # (a relative folder is the plugin's own folder's, as the job starts: its trainings run elsewhere)
    return os.path.abspath(os.path.join(base, name))


def standalone_dir():
    """The project's ``models/`` in a checkout; from an installed package (the agent's venv,
    whose site-packages the user running it may not write, and must not fill) the user's cache,
    ``$XDG_CACHE_HOME/netdata-anomalies/models``, as other command-line tools keep theirs."""
    if os.path.isfile(os.path.join(_ROOT, 'anomalies.chart.py')):
        return os.path.join(_ROOT, 'models')
    cache = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(cache, 'netdata-anomalies', 'models')


def config_hash(config):
    values = {k: getattr(config, k) for k in HASH_KEYS}
    values['format'] = FORMAT
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def installed_versions():
    """The versions an import here loads: read beside the package that the import finds, not
    the first on sys.path (under python.d the module's venv comes first for its own packages,
    though it sits at the end of sys.path). Read once per process: what it has imported stays
    loaded whatever is installed since, and reading the packages' metadata for every model
    saved took more CPU than the training itself (25 ms a model)."""
    return dict(_versions_loaded())


@functools.lru_cache(maxsize=1)
def _versions_loaded():
    from importlib import metadata, util
    out = {'python': '{}.{}'.format(*sys.version_info[:2])}
    for dist, module in (('numpy', 'numpy'), ('pyod', 'pyod'), ('scikit-learn', 'sklearn'), ('torch', 'torch')):
        try:
            spec = util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        out[dist] = None
        if spec is None or not spec.origin:
            continue
        site = os.path.dirname(os.path.dirname(spec.origin))
        want = dist.lower().replace('_', '-')
        for found in metadata.distributions(path=[site]):
            if (found.metadata['Name'] or '').lower().replace('_', '-') == want:
                out[dist] = found.version
                break
        else:
            try:   # an editable or otherwise unusual install: the first on sys.path
                out[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                pass
    return out


def file_stem(model_id):
    """The file name a model is saved under (without extension): ``safe_id`` of its id, cut
    and hashed when too long. Two ids only ``safe_id`` tells apart ('a b', 'a/b') share one;
    each file says whose it is, and ``load`` takes only its own."""
    return bounded_id(model_id, STEM_MAX)


def _paths(directory, model_id):
    base = os.path.join(directory, file_stem(model_id))
    return base + '.pkl', base + '.json'


def save(directory, fm, config, trained_at, agent=None):
    """Write ``fm`` (a ``FittedModel``) and its metadata; the pickle first, the metadata last.
    ``agent``: the machine GUID of the agent it was trained on, if known."""
    os.makedirs(directory, exist_ok=True)
    pkl, meta_path = _paths(directory, fm.name)
    data = pickle.dumps(fm, protocol=4)
    write_atomically(pkl, data, 0o640)
    meta = {
        'format': FORMAT, 'model_id': fm.name, 'agent': agent, 'model': fm.model_name,
        'config_hash': config_hash(config),
        'settings': {k: getattr(config, k) for k in HASH_KEYS}, 'columns': list(fm.columns),
        'window': list(fm.info.get('window', ())), 'trained_at': trained_at, 'saved_at': time.time(),
        'rows': fm.info.get('rows'), 'excluded_rows': fm.info.get('excluded_rows', 0),
        'scores': {'threshold': fm.threshold, 'min': fm.score_min, 'max': fm.score_max,
                   'quantiles': int(fm.points.size)},
        'libraries': installed_versions(), 'sha256': hashlib.sha256(data).hexdigest(),
    }
    write_atomically(meta_path, json.dumps(meta, indent=1).encode(), 0o640)


def _what_changed(saved, config):
    """`` (lags_n 5 -> 3)``: the saved settings that differ from the job's, so the log says which."""
    if not isinstance(saved, dict):
        return ''
    changed = ['{} {} -> {}'.format(k, saved[k], getattr(config, k)) for k in HASH_KEYS
               if k in saved and saved[k] != getattr(config, k)]
    return ' ({})'.format(', '.join(changed)) if changed else ''


def _others_may_have_written(st, what):
    """Why another user could have put the file of ``st`` (an ``os.stat`` result, taken of the open
    file: what is read) there: owned by someone else than this user or root, or writable by
    every user; else None. ``what`` names it. A saved model is a pickle, which runs code as it
    loads: one from a folder others write to (a models_dir under /tmp) is not loaded."""
    if st.st_uid not in (os.geteuid(), 0):
        return '{} is owned by another user (uid {})'.format(what, st.st_uid)
    if st.st_mode & stat.S_IWOTH:
        return '{} is writable by every user'.format(what)
    return None


def _why_unreadable(e):
    """Why a metadata file could not be read, in words that are the same for every file so
    broken (the job logs one line per reason: a power cut that truncated them all, or a folder
    a root run filled, must not write one line per chart with its path or byte offset)."""
    if isinstance(e, OSError):
        return e.strerror or e.__class__.__name__
    if isinstance(e, UnicodeDecodeError):
        return 'not text'
    if isinstance(e, json.JSONDecodeError):
        return 'not JSON, or cut short'
    return str(e)


def load(directory, model_id, config, columns, versions=None, fewer_ok=False, agent=None):
    """``(model, meta, None)`` or ``(None, None, reason)``; reason ``None`` when nothing was saved.
    ``fewer_ok``: a chart's model, whose dimensions are those the agent lists, not a list the
    config gives (a custom model's), where one more is the config's change. ``agent``: the
    machine GUID of the agent read now, if known: a model saved on another is not loaded, though
    its columns name the same address (every job reads its own node as 127.0.0.1:19999)."""
    pkl, meta_path = _paths(directory, model_id)
    if not os.path.exists(meta_path):
        return None, None, None
    # the folder and the model's file are checked as opened, and read through what was opened:
    # checked by name, either could be put in place between the check and the read by whoever
    # may rename in a folder above (the agent's models folders are its group's to write)
    try:
        folder = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        return None, None, 'metadata unreadable ({})'.format(_why_unreadable(e))
    model_file = unopened = None
    try:
        unsafe = _others_may_have_written(os.fstat(folder), directory)
        if not unsafe:
            try:
                model_file = os.open(os.path.basename(pkl), os.O_RDONLY | os.O_NOFOLLOW, dir_fd=folder)
            except OSError as e:
                unopened = e   # said below, once the metadata says the model is one to load
            else:
                unsafe = _others_may_have_written(os.fstat(model_file), 'its file')
        if unsafe:   # (one log line for all files)
            return None, None, ('not loaded: {} (a saved model runs code as it loads); keep models_dir where only '
                                'the job\'s user can write'.format(unsafe))
        return _load_checked(folder, model_file or unopened, meta_path, model_id, config, columns, versions,
                             fewer_ok, agent)
    finally:
        for fd in (model_file, folder):
            if fd is not None:
                os.close(fd)


def _load_checked(folder, model_file, meta_path, model_id, config, columns, versions, fewer_ok, agent):
    """``load`` with the folder (``folder``) and the model's file (``model_file``; the OSError
    of opening it where it could not be) open and checked."""
    try:
        with open(os.path.basename(meta_path), opener=lambda name, flags: os.open(
                name, flags | os.O_NOFOLLOW, dir_fd=folder)) as f:
            meta = json.load(f)
        if not isinstance(meta, dict):
            raise ValueError('not a JSON object')
    except (OSError, ValueError) as e:
        return None, None, 'metadata unreadable ({})'.format(_why_unreadable(e))
    if meta.get('model_id', model_id) != model_id:   # 'a b' and 'a/b' make one file name
        return None, None, 'its file holds the model of {!r}'.format(meta.get('model_id'))
    if agent and isinstance(meta.get('agent'), str) and meta['agent'] != agent:
        return None, None, ('saved for another agent (machine GUID {}; models_dir copied from another node, or '
                            'shared with its job)'.format(meta['agent']))
    if meta.get('format') != FORMAT:
        return None, None, 'saved by another version of this collector (file format {}, now {})'.format(
            meta.get('format'), FORMAT)
    if meta.get('config_hash') != config_hash(config):
        return None, None, 'configuration changed' + _what_changed(meta.get('settings'), config)
    saved_columns = meta.get('columns')
    if not isinstance(saved_columns, list) or not all(isinstance(c, str) for c in saved_columns):
        return None, None, 'metadata unreadable (columns)'
    trained_at = meta.get('trained_at')   # the model's age, and so when it is retrained, comes from it
    if isinstance(trained_at, bool) or not isinstance(trained_at, (int, float)) or not math.isfinite(trained_at):
        return None, None, 'metadata unreadable (trained_at)'
    # a chart's model with fewer is what a training makes of a dimension with no value in its
    # window (one the agent lists but never collected): the model is used, and a dimension that
    # has values by now is the job's to retrain for, as a running job does for a new one
    if sorted(saved_columns) != sorted(columns) and not (fewer_ok and set(saved_columns) < set(columns)):
        if sorted(c.partition('::')[2] for c in saved_columns) == sorted(c.partition('::')[2] for c in columns):
            if agent and meta.get('agent') == agent:   # its machine GUID: the job's host written another way
                return None, None, 'saved while the job read this agent as {} (host changed)'.format(
                    ', '.join(sorted({c.partition('::')[0] for c in saved_columns})))
            return None, None, 'saved for another agent'
        return None, None, 'dimensions changed'
    try:
        if isinstance(model_file, OSError):
            raise model_file
        with os.fdopen(os.dup(model_file), 'rb') as f:
            data = f.read()
    except OSError as e:
        return None, None, 'model file unreadable ({})'.format(e.strerror or e)
    if hashlib.sha256(data).hexdigest() != meta.get('sha256'):
        # most often not the disk: a save stopped (the job killed, the disk full) between the
        # model's file and its metadata leaves the new model beside the old one's metadata
        return None, None, 'model file does not match its metadata (a save cut short, or a damaged file)'
    if not numpy_only(str(meta.get('model'))):
        # pyod estimators pickle scikit-learn (or torch) objects: only the same versions read them back right
        now = versions or installed_versions()
        then = meta.get('libraries') or {}
        changed = [d for d in ('pyod', 'scikit-learn', 'torch') if then.get(d) != now.get(d)]
        if changed:
            return None, None, 'trained with other versions of {}'.format(', '.join(changed))
    try:
        fm = pickle.loads(data)
        if list(fm.columns) != list(meta['columns']):
            raise ValueError('columns differ from the metadata')
    except Exception as e:  # whatever unpickling throws: an incompatible or foreign file
        return None, None, 'cannot load ({}: {})'.format(e.__class__.__name__, str(e)[:80])
    return fm, meta, None


def remove(directory, model_id):
    for path in _paths(directory, model_id):
        try:
            os.unlink(path)
        except OSError:
            pass


def prune(directory, keep, older_than, now=None):
    """Remove the saved models not in ``keep`` (model ids) saved more than ``older_than``
    seconds ago; returns {model id: its columns} of those removed (the columns tell a custom
    model from a chart's). Charts that went away while the job was stopped (containers,
    process groups, disks) would otherwise leave their files for good; a recent file stays, as
    its chart may be listed again in a moment (an agent just restarted lists some charts late).
    Also removes the temporary files of writes cut off (a training process killed while it
    saved) an hour or more ago, and a model's file whose metadata was never written beside it
    (killed between the two), as old as a model's: nothing else would, and a model's can be
    megabytes.
    """
    now = time.time() if now is None else now
    keep = {file_stem(m) for m in keep}
    removed = {}
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    listed = set(names)
    for name in sorted(names):
        base, ext = os.path.splitext(name)
        lone = ext == '.pkl' and base not in keep and base + '.json' not in listed
        if (name.startswith(TEMP_PREFIX) and ext == '.tmp') or lone:
            path = os.path.join(directory, name)
            try:
                if now - os.stat(path, follow_symlinks=False).st_mtime > (older_than if lone else ORPHAN_SECONDS):
                    os.unlink(path)
            except OSError:
                pass
            continue
        if ext != '.json' or base in keep:
            continue
        path = os.path.join(directory, name)
        try:
            with open(path) as f:
                meta = json.load(f)
            saved_at, model_id = float(meta['saved_at']), str(meta['model_id'])
            columns = [str(c) for c in meta.get('columns') or ()]
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            continue   # not a model's metadata: not ours to remove
        if file_stem(model_id) != base:
            continue   # not written under its model's name (renamed, copied): left alone
        if now - saved_at > older_than:
            remove(directory, model_id)
            removed[model_id] = columns
    return removed


def has_models(directory):
    """Whether ``directory`` holds a saved model: the job had charts in scope before, so an
    agent that lists none of them now is one starting up, not a config that matches nothing."""
    try:
        return any(name.endswith('.pkl') and not name.startswith(TEMP_PREFIX) for name in os.listdir(directory))
    except OSError:
        return False


def save_flagged(directory, spans, host=None, agent=None):
    """Write the flagged spans (model id -> [[first, last] agent time]) of the agent ``host``
    beside the models: a restarted job's next training must leave out the incidents flagged
    before the restart too, or it learns them as normal."""
    os.makedirs(directory, exist_ok=True)
    body = {'format': FLAGGED_FORMAT, 'saved_at': time.time(), 'host': host, 'agent': agent,
            'spans': {m: [list(sp) for sp in s] for m, s in sorted(spans.items()) if s}}
    write_atomically(os.path.join(directory, FLAGGED_FILE), json.dumps(body).encode(), 0o640)


def load_flagged(directory, host=None, agent=None):
    """``(spans, None)`` or ``({}, reason)``: what ``save_flagged`` wrote for the agent ``host``
    (nothing saved is no reason; another agent's times would leave out rows of this one's
    training). Only well-formed spans are taken: this file steers training, never the job's start."""
    path = os.path.join(directory, FLAGGED_FILE)
    try:
        with open(path) as f:
            body = json.load(f)
    except FileNotFoundError:
        return {}, None
    except (OSError, ValueError) as e:
        return {}, 'unreadable ({})'.format(e)
    if not isinstance(body, dict) or body.get('format') != FLAGGED_FORMAT or not isinstance(body.get('spans'), dict):
        return {}, 'not a flagged-steps file of this version'
    saved_agent = body.get('agent') if isinstance(body.get('agent'), str) else None
    if agent and saved_agent:   # the agent's own name for itself: its host written another way is the same
        if saved_agent != agent:
            return {}, 'saved for another agent (machine GUID {})'.format(saved_agent)
    elif body.get('host') not in (None, host):   # (a file without one was written before files named it)
        return {}, 'saved for another agent ({})'.format(body.get('host'))
    out = {}
    for model_id, spans in body['spans'].items():
        if not isinstance(spans, list):
            continue
        good = []
        for sp in spans:
            try:
                first, last = (float(v) for v in sp)
            except (TypeError, ValueError):
                continue
            if math.isfinite(first) and math.isfinite(last) and first <= last:
                good.append([first, last])
        if good:
            out[model_id] = sorted(good)
    return out, None
