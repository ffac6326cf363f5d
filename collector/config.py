"""Job configuration: every key, its default and its validation, in one place.

The keys, meanings and defaults of the retired python.d ``anomalies`` collector are kept so
an existing ``anomalies.conf`` keeps working; the few keys added here are documented in
``anomalies.conf``. A job with any bad key is rejected as a whole (one log line per bad
key) so it never starts half-configured.
"""
import difflib
import fnmatch
import os
import re
from dataclasses import dataclass
from typing import Optional, Tuple, Union

from .hosts import valid_host
from .models import DEEP_MODELS, MIN_TRAIN_ROWS, MODEL_NAMES, deep_available, model_members, valid_model
from .protocol import pythond_name, safe_id

# Keys python.d.plugin itself puts into (or reads from) every job's configuration. Besides these
# it may add keys of its own beginning with '__' ('__is_stock' from Netdata 1.44 on): ignored.
FRAMEWORK_KEYS = {
    'name': None, 'job_name': None, 'override_name': None,
    'update_every': 1, 'priority': 60000, 'autodetection_retry': 0,
    'chart_cleanup': 10, 'penalty': False,   # anomalies.chart.py's own default
    'retries': None,   # older python.d's; 1.37 and later ignore it
}
MAX_UPDATE_EVERY = 86400   # a step a day; beyond that no training window holds two rows
MAX_PRIORITY = 2_000_000_000   # the job's charts are numbered on from it, under the agent's int (2 ** 31 - 1)
MAX_OFFSET_SECS = 30 * 86400   # a window ending more than 30 days back: most likely a value in milliseconds
MILLISECONDS_FROM = 10 ** 11   # unix seconds of the year 5138: a time this large is one in milliseconds
FRAMEWORK_INHERITED = ('update_every', 'priority', 'autodetection_retry', 'chart_cleanup', 'penalty')

# the charts of this module's jobs: 'anomalies.*', and 'anomalies_<job>.*' for other job names
OWN_CHARTS = re.compile(r'anomalies(_[^.]*)?\.')

DEFAULTS = {
    # where the data comes from
    'host': '127.0.0.1:19999',
    'protocol': 'http',
    'username': None,
    'password': None,
    'tls_verify': True,
    'api_timeout': 5.0,
    # what to model
    'charts_regex': r'system\..*',
    'charts_to_exclude': '*.uptime,system.entropy,system.idlejitter,netdata.*',
    'custom_models': None,
    'custom_models_normalize': False,
    # how to model it
    'model': 'mahalanobis',
    'train_max_n': 100000,
    'train_every_n': 1800,
    'train_n_secs': 14400,
    'train_min_n_secs': 300,
    'offset_n_secs': 0,
    'train_no_prediction_n': 10,
    'initial_train_data_after': 0,
    'initial_train_data_before': 0,
    'lags_n': 5,
    'smooth_n': 3,
    'diffs_n': 1,
    'level_features': True,
    'despike': True,
    'level_squash': 0,
    'contamination': 0.001,
    'flag_window_n': 3,
    'flag_min_n': 2,
    'flag_hold_probability': 0.99,
    'flag_rearm_n': 30,
    'flag_lasting_n': 20,
    'train_exclude_flagged': True,
    'calibration': 'empirical',
    # the retired collector's: it listed the agent's charts again at every step; here charts
    # that appear or go away are picked up within a minute whatever it says
    'reinitialize_at_every_step': False,
    'train_in_subprocess': True,
    'models_dir': 'auto',
    # what to chart
    'include_average_prob': True,
    'attribution_charts': False,
    # what to export
    'prometheus_textfile': None,
    'prometheus_port': None,
    'prometheus_address': '127.0.0.1',
}

CALIBRATIONS = ('empirical', 'tail', 'minmax')
PROTOCOLS = ('http', 'https')
_NONE_STRINGS = ('', 'none', 'None', 'null')
_BOOL_STRINGS = {'true': True, 'yes': True, 'on': True, 'false': False, 'no': False, 'off': False}
_CUSTOM_DIM = re.compile(r'^(?:(?P<host>[^:|,\s][^|,\s]*)::)?(?P<chart>[^|,\s:]+)\|(?P<dim>[^,]+)$')
_MODEL_NAME = re.compile(r'^[A-Za-z0-9_.\-]+$')
MODEL_NAME_MAX = 190   # its dimensions' ids ('<name>_anomaly') stay within the agent's 199 characters
# Netdata cuts a chart id at 199 characters and then disables the whole plugin at the chart's
# first update; python.d puts 'anomalies_<job>.' in front of the charts of a job not named
# 'anomalies', so a long job name takes room from every chart id
CHART_ID_MAX = 199
DRIVERS_ID_MAX = 100   # a drivers chart's id after 'drivers_' (a longer model id is cut, with a hash)
DRIVERS_ID_MIN = 40    # and at least this, where a long job name leaves less: 23 characters and the hash

class ConfigError(ValueError):
    """A job configuration that cannot run; ``errors`` holds one message per bad key."""

    def __init__(self, errors):
        self.errors = [_cut(str(e)) for e in errors]
        super().__init__('; '.join(self.errors))


ERROR_CHARS = 600


def _cut(message):
    """A message at most ERROR_CHARS long: a value built by YAML aliases can print as megabytes."""
    if len(message) <= ERROR_CHARS:
        return message
    marker = ' ... ({} characters left out) ... '
    tail = ERROR_CHARS // 4
    head = ERROR_CHARS - tail - len(marker.format(len(message)))
    return message[:head] + marker.format(len(message) - head - tail) + message[-tail:]


VALUE_ITEMS_MAX = 100000


class _TooLarge:
    """Stands for a value of more than VALUE_ITEMS_MAX items in the checks: YAML aliases
    repeat a list in a list at every level, and one of nine levels printed whole in an error
    is gigabytes (the cut above comes after the printing)."""

    def __init__(self, value):
        self.kind = type(value).__name__

    def __repr__(self):
        return '<a {} of over {} items (YAML aliases repeat one list in another)>'.format(self.kind, VALUE_ITEMS_MAX)


def _too_large(value, most=VALUE_ITEMS_MAX):
    """Whether ``value`` holds more than ``most`` items, counted as printed (an alias's as often
    as it is repeated); stops counting there."""
    todo, seen = [value], 0
    while todo:
        v = todo.pop()
        seen += 1
        if seen > most:
            return True
        if isinstance(v, dict):
            todo.extend(v.keys())
            todo.extend(v.values())
        elif isinstance(v, (list, tuple, set)):
            todo.extend(v)
    return False


@dataclass(frozen=True)
class CustomModel:
    """A model over chosen dimensions, possibly across hosts: ``(host, chart, dim)`` triples."""
    name: str
    dimensions: Tuple[Tuple[str, str, str], ...]


@dataclass(frozen=True)
class JobConfig:
    host: str
    protocol: str
    username: Optional[str]
    password: Optional[str]
    tls_verify: Union[bool, str]
    api_timeout: float
    charts_regex: Optional[str]
    charts_to_exclude: Tuple[str, ...]
    custom_models: Tuple[CustomModel, ...]
    custom_models_normalize: bool
    model: str
    train_max_n: int
    train_every_n: int
    train_n_secs: int
    offset_n_secs: int
    train_no_prediction_n: int
    initial_train_data_after: int
    initial_train_data_before: int
    lags_n: int
    smooth_n: int
    diffs_n: int
    level_features: bool
    contamination: float
    flag_window_n: int
    flag_min_n: int
    train_exclude_flagged: bool
    calibration: str
    train_in_subprocess: bool
    include_average_prob: bool
    models_dir: Optional[str] = None
    flag_hold_probability: float = 0.99
    flag_rearm_n: int = 30
    flag_lasting_n: int = 20
    level_squash: float = 0.0
    despike: bool = True
    train_min_n_secs: int = 300
    attribution_charts: bool = False
    prometheus_textfile: Optional[str] = None
    prometheus_port: Optional[int] = None
    prometheus_address: str = '127.0.0.1'
    update_every: int = 1
    priority: int = 60000
    job_name: Optional[str] = None
    reinitialize_at_every_step: bool = False

    @property
    def flag_hold(self):
        """The probability a raised flag is held at, or None when it is not held."""
        return self.flag_hold_probability if self.flag_hold_probability < 1 else None

    @property
    def squash(self):
        """Standard deviations beyond which level features are squashed (``scoring.squash_features``), or None."""
        return self.level_squash if self.level_squash > 0 else None

    @property
    def rows_needed(self):
        """Raw rows a step needs to build its feature vector (see ``features.rows_needed``)."""
        from .features import rows_needed
        return rows_needed(self.diffs_n, self.smooth_n, self.lags_n, self.despike)

    @property
    def training_rows_needed(self):
        """Raw rows behind one training feature row (``training_features``)."""
        from .features import rows_needed
        return rows_needed(self.diffs_n, self.smooth_n, self.lags_n)

    def features(self, values):
        """The feature rows the steps see under this job's settings (see ``features.make_features``)."""
        from .features import make_features
        return make_features(values, self.diffs_n, self.smooth_n, self.lags_n, self.level_features, self.despike)

    def training_features(self, values):
        """The feature rows a model is fitted on: every sample as read, ``despike`` or not.

        A one-sample blip in the training window still teaches the model that its dimension
        moves; taking it out there too narrowed the scale of such dimensions (a process count
        whose history read 31 only in single seconds then flagged a lasting 31).
        """
        from .features import make_features
        return make_features(values, self.diffs_n, self.smooth_n, self.lags_n, self.level_features)

    def chart_matches(self, chart_id):
        return chart_in_scope(chart_id, self.charts_regex, self.charts_to_exclude)



# chart ids unlike each other: a pattern of charts_to_exclude that matches them all matches any
_ANY_IDS = ('system.cpu', 'a.b', 'Z9_-x.y.z', 'cgroup_c1.mem_usage', '1.-')


def chart_in_scope(chart_id, regex, exclude):
    """Whether ``charts_regex`` models the chart: never the charts of this module's jobs (its own
    output: a wide regex made every flag anywhere flag again on anomalies.anomaly), nor one in
    ``charts_to_exclude``, an id as listed or a shell-style pattern ('*.uptime': counters that
    only ever climb)."""
    if regex is None or OWN_CHARTS.match(chart_id) or chart_id in exclude or any(
            fnmatch.fnmatchcase(chart_id, c) for c in exclude):
        return False
    return re.match(regex, chart_id) is not None


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


# the keys that take any number, not only an integer
FLOAT_KEYS = ('api_timeout', 'contamination', 'flag_hold_probability', 'level_squash')
INT_KEYS = ('train_max_n', 'train_every_n', 'train_n_secs', 'train_min_n_secs', 'offset_n_secs',
            'train_no_prediction_n', 'initial_train_data_after', 'initial_train_data_before', 'lags_n', 'smooth_n',
            'diffs_n', 'flag_window_n', 'flag_min_n', 'flag_rearm_n', 'flag_lasting_n', 'prometheus_port')


_DECIMAL = re.compile(r'^\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*$', re.ASCII)
_INTEGER = re.compile(r'^\s*[-+]?\d+\s*$', re.ASCII)


def _quoted_number(v, integer=False):
    """A number written in quotes (``'0.001'``, ``'100'``), or in the exponent form that YAML 1.1
    (PyYAML, python.d's reader) leaves as text (``1e-3``), as the number it says: this module
    reads its own keys, so quotes cost nothing (python.d.plugin's keys stay strict: it compares
    them itself). A decimal for an integer key is left as text, to be refused."""
    if isinstance(v, str) and (_INTEGER if integer else _DECIMAL).match(v):
        return int(v) if integer else float(v)
    return v


def _none_string(v):
    return v is None or (isinstance(v, str) and v.strip() in _NONE_STRINGS)


def _check_int(raw, key, errors, minimum):
    v = raw[key]
    if not _is_int(v):
        errors.append("key '{}': expected an integer, got {!r}".format(key, v))
    elif v < minimum:
        errors.append("key '{}': must be >= {}, got {}".format(key, minimum, v))


def _as_bool(v):
    """A boolean quoted in YAML ('false', 'yes') as the boolean; anything else as it is."""
    if isinstance(v, str) and v.strip().lower() in _BOOL_STRINGS:
        return _BOOL_STRINGS[v.strip().lower()]
    return v


def _check_bool(raw, key, errors):
    raw[key] = _as_bool(raw[key])
    if not isinstance(raw[key], bool):
        errors.append("key '{}': expected true or false, got {!r}".format(key, raw[key]))


def _parse_custom_models(value, default_host, errors):
    if _none_string(value) or value == []:
        return ()
    if not isinstance(value, list):
        errors.append("key 'custom_models': expected a list of {{name, dimensions}} entries, got "
                      "{!r}".format(value))
        return ()
    models, seen = [], set()
    for i, entry in enumerate(value):
        where = "key 'custom_models' entry {}".format(i + 1)
        if not isinstance(entry, dict) or set(entry) - {'name', 'dimensions'}:
            errors.append('{}: expected exactly the keys name and dimensions, got {!r}'.format(where, entry))
            continue
        name, dims = entry.get('name'), entry.get('dimensions')
        if not isinstance(name, str) or not _MODEL_NAME.match(name):
            errors.append('{}: name must be letters, digits, _ . or -, got {!r}'.format(where, name))
            continue
        if len(name) > MODEL_NAME_MAX:
            errors.append('{}: name must be at most {} characters, got {}'.format(where, MODEL_NAME_MAX, len(name)))
            continue
        if name in seen:
            errors.append('{}: duplicate name {!r}'.format(where, name))
            continue
        seen.add(name)
        if isinstance(dims, str):
            dims = [d.strip() for d in dims.split(',') if d.strip()]
        if not isinstance(dims, list) or not dims:
            errors.append("{} ({}): dimensions must be 'chart|dim,chart|dim,...' or a list".format(where, name))
            continue
        parsed = []
        for d in dims:
            m = _CUSTOM_DIM.match(d.strip()) if isinstance(d, str) else None
            if not m:
                errors.append("{} ({}): bad dimension {!r}, expected 'chart|dim' or "
                              "'host::chart|dim'".format(where, name, d))
                parsed = None
                break
            if m.group('host') and not valid_host(m.group('host')):
                errors.append("{} ({}): bad host {!r} in {!r}, expected 'host:port' or 'parent:port/host/child' "
                              "without a scheme".format(where, name, m.group('host'), d))
                parsed = None
                break
            parsed.append((m.group('host').rstrip('/') if m.group('host') else default_host, m.group('chart'),
                           m.group('dim').strip()))
        if parsed:
            if len(set(parsed)) != len(parsed):
                errors.append('{} ({}): a dimension is listed twice'.format(where, name))
                continue
            models.append(CustomModel(name, tuple(parsed)))
    return tuple(models)


def least_window_secs(diffs_n, smooth_n, lags_n, update_every):
    """The shortest training window a model can be fitted on: the fit's minimum of feature rows
    plus the rows the features take before the first, at each of update_every's phases (the
    most rows a window gives: a chart collected every second, read at every phase of the job's
    steps, each phase losing the rows its features start from)."""
    from .features import rows_needed
    return MIN_TRAIN_ROWS + update_every * (rows_needed(diffs_n, smooth_n, lags_n) - 1)


def _check_window_rows(cfg, update_every, errors):
    """A training window too short for any model would leave the job without a model for good."""
    keys = ('train_n_secs', 'diffs_n', 'smooth_n', 'lags_n')
    if not all(_is_int(cfg[k]) for k in keys) or not _is_int(update_every) or not 1 <= update_every <= MAX_UPDATE_EVERY:
        return
    if any(e.startswith("key '{}'".format(k)) for k in keys for e in errors):
        return
    least = least_window_secs(cfg['diffs_n'], cfg['smooth_n'], cfg['lags_n'], update_every)
    if cfg['train_n_secs'] < least:
        errors.append("key 'train_n_secs': a model needs {} feature rows, and diffs_n, smooth_n and lags_n take "
                      "{} rows before the first{}: at least {} s, got {}".format(
                          MIN_TRAIN_ROWS, (least - MIN_TRAIN_ROWS) // update_every,
                          ' at each of update_every {}\'s phases'.format(update_every) if update_every > 1 else '',
                          least, cfg['train_n_secs']))


def _check_initial_window(after, before, errors):
    """initial_train_data_after/before: a window of unix seconds. A value in milliseconds (a
    window thousands of years ahead) is refused; a window the agent may not hold is only warned
    of (``config_warnings``): it is read for the first training alone, and a job whose saved
    models load never reads it."""
    if not 0 < after < before:
        errors.append("key 'initial_train_data_before': with initial_train_data_after it must give a window "
                      "after < before (unix seconds), got {} and {}".format(after, before))
        return
    for key, value in (('initial_train_data_after', after), ('initial_train_data_before', before)):
        if value >= MILLISECONDS_FROM:
            errors.append("key '{}': expected unix seconds, got {} (milliseconds? that is the year {:.0f})".format(
                key, value, 1970 + value / (365.25 * 86400)))
            return


def _not_a_folder(path):
    """The file on ``path`` (the path itself, or a folder on the way to it that is a file)
    that would keep a directory from being made there, else None."""
    path = os.path.abspath(path)
    while True:
        if os.path.exists(path):
            return None if os.path.isdir(path) else path
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent


# python.d.plugin compares update_every itself: a value that is not a number stops it at start
_PYTHOND_STOPS = (" (python.d.plugin stops on a value that is not a number, with every module's jobs: write it "
                  "as a number, without quotes)")
# and takes autodetection_retry's remainder as it checks again a job it could not start: the job
# (service.check) is dropped instead
_PYTHOND_DROPS = " (python.d.plugin drops the job: write it as a number, without quotes)"


def _number(v):
    """What python.d.plugin can compare and divide by (a boolean too)."""
    return isinstance(v, (int, float))


def _plugins_own(key):
    return isinstance(key, str) and key.startswith('__')


def _layout_hint(key, value):
    """What an unknown key most likely is, when its value says it is a job written in the wrong
    place or layout rather than a misspelled option ('' otherwise)."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return ("it holds a list of '- ...' entries, go.d.plugin's layout: here a job is a name at the top level "
                "with its options indented under it, without '-'; ")
    if isinstance(value, dict):
        return "it holds options of its own: a job indented under another? Each job starts at the top level; "
    if key == 'anomalies' and isinstance(value, bool):
        return "'anomalies: {}' turns the module on or off in python.d.conf, not here; ".format(
            'yes' if value else 'no')
    return ''


def _kind(value):
    """What YAML made of a value, without the value ('a number', 'a list')."""
    if isinstance(value, bool):
        return 'true or false'
    if isinstance(value, (int, float)):
        return 'a number'
    if isinstance(value, (list, tuple)):
        return 'a list'
    if isinstance(value, dict):
        return 'a mapping'
    if isinstance(value, _TooLarge):
        return repr(value)
    return 'a {}'.format(type(value).__name__)


def parse_job_config(raw, job_name=None):
    """Validate a job's raw configuration (as python.d passes it) into a ``JobConfig``.

    Raises ``ConfigError`` naming every bad key; nothing is half-applied.
    """
    if not isinstance(raw, dict):
        raise ConfigError(['the job configuration must be a mapping, got {!r}'.format(raw)])
    raw = {k: _TooLarge(v) if isinstance(v, (dict, list)) and _too_large(v) else v for k, v in raw.items()}
    errors = _unknown_keys(raw)
    cfg = dict(DEFAULTS)
    cfg.update({k: v for k, v in raw.items() if k in DEFAULTS})
    for key in FLOAT_KEYS:   # (YAML 1.1 reads 1e-3, no dot or no sign after the e, as text)
        cfg[key] = _quoted_number(cfg[key])
    for key in INT_KEYS:
        cfg[key] = _quoted_number(cfg[key], integer=True)

    host, tls_verify, timeout = _connection(cfg, errors)
    regex, exclude, custom = _scope(cfg, host, errors)
    _check_model(cfg, errors)
    _check_windows(cfg, errors)
    _check_flags(cfg, errors)
    for key in ('include_average_prob', 'custom_models_normalize', 'train_in_subprocess', 'level_features',
                'despike', 'train_exclude_flagged', 'attribution_charts', 'reinitialize_at_every_step'):
        _check_bool(cfg, key, errors)
    models_dir, textfile, port, address = _outputs(cfg, errors)
    # (a custom model refused above is what leaves the job without charts: not said again as charts_regex's)
    if regex is None and not custom and not {'charts_regex', 'custom_models'} & {e.split("'")[1] for e in errors}:
        errors.append("key 'charts_regex': no charts in scope: set charts_regex or custom_models")
    every = [c for c in exclude if all(fnmatch.fnmatchcase(i, c) for i in _ANY_IDS)]
    if regex is not None and every and not custom and 'custom_models' not in {e.split("'")[1] for e in errors}:
        errors.append("key 'charts_to_exclude': {!r} excludes every chart, so the job has nothing to model: list "
                      "the charts to leave out, or set custom_models".format(every[0]))
    framework = _framework(raw, errors)
    _check_window_rows(cfg, framework['update_every'], errors)
    _check_chart_ids(raw, job_name, cfg['attribution_charts'] is True, errors)
    _check_lock_name(raw, job_name, errors)

    if errors:
        raise ConfigError(errors)
    return JobConfig(
        host=host, protocol=cfg['protocol'], username=cfg['username'], password=cfg['password'],
        tls_verify=tls_verify, api_timeout=float(timeout), charts_regex=regex,
        charts_to_exclude=exclude, custom_models=custom,
        custom_models_normalize=cfg['custom_models_normalize'], model=cfg['model'],
        train_max_n=cfg['train_max_n'], train_every_n=cfg['train_every_n'], train_n_secs=cfg['train_n_secs'],
        train_min_n_secs=cfg['train_min_n_secs'],
        offset_n_secs=cfg['offset_n_secs'], train_no_prediction_n=cfg['train_no_prediction_n'],
        initial_train_data_after=cfg['initial_train_data_after'],
        initial_train_data_before=cfg['initial_train_data_before'], lags_n=cfg['lags_n'],
        smooth_n=cfg['smooth_n'], diffs_n=cfg['diffs_n'], level_features=cfg['level_features'],
        despike=cfg['despike'], contamination=float(cfg['contamination']), flag_window_n=cfg['flag_window_n'],
        flag_min_n=cfg['flag_min_n'],
        train_exclude_flagged=cfg['train_exclude_flagged'],
        flag_hold_probability=float(cfg['flag_hold_probability']),
        flag_rearm_n=cfg['flag_rearm_n'], flag_lasting_n=cfg['flag_lasting_n'],
        level_squash=float(cfg['level_squash']), calibration=cfg['calibration'],
        train_in_subprocess=cfg['train_in_subprocess'],
        include_average_prob=cfg['include_average_prob'], attribution_charts=cfg['attribution_charts'],
        models_dir=models_dir, prometheus_textfile=textfile, prometheus_port=port,
        prometheus_address=address, update_every=framework['update_every'],
        priority=framework['priority'], job_name=job_name or raw.get('job_name'),
        reinitialize_at_every_step=cfg['reinitialize_at_every_step'],
    )


def _unknown_keys(raw):
    """An error for each key that is no option here nor python.d's, with the option most likely meant."""
    errors = []
    unknown = sorted((k for k in raw if k not in DEFAULTS and k not in FRAMEWORK_KEYS and not _plugins_own(k)),
                     key=str)
    for k in unknown:
        if isinstance(k, str):
            near = difflib.get_close_matches(k, list(DEFAULTS) + list(FRAMEWORK_KEYS), n=1, cutoff=0.75)
            errors.append("key '{}': unknown option ({}see anomalies.conf for the valid ones)".format(
                k, _layout_hint(k, raw[k]) or ("did you mean '{}'? ".format(near[0]) if near else '')))
        else:   # YAML reads a bare on/off/yes/no/1 as a boolean or a number
            errors.append("key {!r}: unknown option, read as a {} (a key written as on, off, yes, no or a "
                          "number: quote it, or see anomalies.conf for the valid ones)".format(k, type(k).__name__))
    return errors


def _connection(cfg, errors):
    """``(host, tls_verify, api_timeout)``: where and how the agent is read."""
    host = cfg['host']
    if not valid_host(host):
        errors.append("key 'host': expected 'host:port' or 'parent:port/host/child' without a scheme or "
                      "another path, and a port from 1 to 65535, got {!r}".format(host))
    else:
        host = host.strip().rstrip('/')
    if cfg['protocol'] not in PROTOCOLS:
        errors.append("key 'protocol': expected one of {}, got {!r}".format(', '.join(PROTOCOLS), cfg['protocol']))
    for key in ('username', 'password'):
        if cfg[key] is not None and not isinstance(cfg[key], str):
            # the value is not repeated: the job's log (or a check-config pasted in a report) would hold the password
            errors.append("key '{}': expected a string, got {} (quote it: YAML reads 0123 as the number 83, "
                          "yes as true)".format(key, _kind(cfg[key])))
    if (cfg['username'] is None) != (cfg['password'] is None):
        errors.append("key '{}': username and password must be given together".format(
            'password' if cfg['password'] is None else 'username'))
    tls_verify = _as_bool(cfg['tls_verify'])
    if isinstance(tls_verify, str):
        tls_verify = tls_verify.strip()
        if not (os.path.isfile(tls_verify) and os.access(tls_verify, os.R_OK)):
            errors.append("key 'tls_verify': the CA bundle {!r} is not a readable file (true, false or a "
                          "path)".format(tls_verify))
    elif not isinstance(tls_verify, bool):
        errors.append("key 'tls_verify': expected true, false or a CA bundle path, got {!r}".format(tls_verify))
    timeout = cfg['api_timeout']
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 300:
        errors.append("key 'api_timeout': expected seconds in (0, 300], got {!r}".format(timeout))
    return host, tls_verify, timeout


def _scope(cfg, host, errors):
    """``(charts_regex, charts_to_exclude, custom_models)``: the charts the job models."""
    regex, valid_regex = cfg['charts_regex'], True
    if isinstance(regex, str):   # a YAML block ('|') ends it in a newline: no chart id has white space
        regex = cfg['charts_regex'] = regex.strip()
    if _none_string(regex):
        regex = None
    elif not isinstance(regex, str):
        errors.append("key 'charts_regex': expected a regular expression string, got {!r}".format(regex))
        regex = None
    else:
        try:
            re.compile(regex)
        except (re.error, OverflowError, RecursionError) as e:   # the last two: a count too large, nesting too deep
            shown = regex if len(regex) <= 120 else regex[:100] + '...'
            errors.append("key 'charts_regex': invalid regular expression {!r}: {}".format(shown, e))
            valid_regex = False
    exclude = cfg['charts_to_exclude']
    if _none_string(exclude):
        exclude = ()
    elif isinstance(exclude, str):
        exclude = tuple(c.strip() for c in exclude.split(',') if c.strip())
    elif isinstance(exclude, list) and all(isinstance(c, str) for c in exclude):
        exclude = tuple(c.strip() for c in exclude if c.strip())
    else:
        errors.append("key 'charts_to_exclude': expected 'chart,chart,...' (ids or patterns like '*.uptime'), "
                      "got {!r}".format(exclude))
        exclude = ()
    custom = _parse_custom_models(cfg['custom_models'], host, errors)
    if any(m.name == 'average' for m in custom):   # the models' dimensions are named after them
        errors.append("key 'custom_models': the name 'average' is taken by the average_prob dimension")
    # one name, one model: only a name with a dot can be a chart's id ('type.name')
    clash = [m.name for m in custom if valid_regex and '.' in m.name and chart_in_scope(m.name, regex, exclude)]
    if clash:
        errors.append("key 'custom_models': a custom model needs a name of its own, not the id of a chart that "
                      "charts_regex {!r} models: {}".format(regex, ', '.join(repr(n) for n in clash)))
    return regex, exclude, custom


def _check_model(cfg, errors):
    """The model, or the ensemble of models joined by '+' (written back without spaces)."""
    if isinstance(cfg['model'], str):   # 'mahalanobis + knn' is 'mahalanobis+knn'
        cfg['model'] = '+'.join(m.strip() for m in cfg['model'].split('+'))
    members = model_members(cfg['model']) if isinstance(cfg['model'], str) else ()
    if members and len(set(members)) < len(members) and valid_model('+'.join(sorted(set(members)))):
        errors.append("key 'model': an ensemble lists each model once, got {!r}".format(cfg['model']))
    elif not isinstance(cfg['model'], str) or not valid_model(cfg['model']):
        errors.append("key 'model': unknown model {!r}, expected one of {} or several joined by + (an "
                      "ensemble, e.g. 'mahalanobis+knn')".format(cfg['model'], ', '.join(MODEL_NAMES)))
    elif set(model_members(cfg['model'])) & set(DEEP_MODELS) and not deep_available():
        errors.append("key 'model': {!r} needs torch and tqdm, which are not both installed (pip install "
                      "'.[deep]', or torch from https://pytorch.org for the CPU, and tqdm)".format(cfg['model']))


def _check_windows(cfg, errors):
    """The counts of steps and seconds: the training's windows, the features' and the flags'."""
    for key, minimum in (('train_max_n', MIN_TRAIN_ROWS), ('train_every_n', 0), ('train_n_secs', 10),
                         ('train_min_n_secs', 0), ('offset_n_secs', 0),
                         ('train_no_prediction_n', 0), ('initial_train_data_after', 0),
                         ('initial_train_data_before', 0), ('lags_n', 0), ('smooth_n', 0), ('diffs_n', 0),
                         ('flag_window_n', 1), ('flag_min_n', 1), ('flag_rearm_n', 0),
                         ('flag_lasting_n', 0)):
        _check_int(cfg, key, errors, minimum)
    for key, limit in (('lags_n', 60), ('smooth_n', 600), ('diffs_n', 3), ('flag_window_n', 600),
                       ('flag_rearm_n', 3600), ('flag_lasting_n', 3600), ('offset_n_secs', MAX_OFFSET_SECS)):
        if _is_int(cfg[key]) and cfg[key] > limit:
            errors.append("key '{}': must be <= {}{}, got {}".format(
                key, limit, ' (30 days, in seconds)' if key == 'offset_n_secs' else '', cfg[key]))
    lasting = cfg['flag_lasting_n']
    if _is_int(lasting) and 0 < lasting < 4:
        # 3/4 of fewer than 4 steps is every step: one step at 99 % would flag (1 % of normal steps)
        errors.append("key 'flag_lasting_n': 0 (off) or at least 4, got {}".format(lasting))
    after, before = cfg['initial_train_data_after'], cfg['initial_train_data_before']
    if _is_int(after) and _is_int(before) and (after > 0 or before > 0):
        _check_initial_window(after, before, errors)
    # (a flag_window_n told as wrong above is not told again through flag_min_n)
    if _is_int(cfg['flag_min_n']) and _is_int(cfg['flag_window_n']) and 1 <= cfg['flag_window_n'] < cfg['flag_min_n']:
        errors.append("key 'flag_min_n': must be <= flag_window_n ({}), got {}".format(
            cfg['flag_window_n'], cfg['flag_min_n']))


def _check_flags(cfg, errors):
    """The shares and probabilities a flag is raised and held by, and how scores become probabilities."""
    hold = cfg['flag_hold_probability']
    if isinstance(hold, bool) or not isinstance(hold, (int, float)) or not 0.5 <= hold <= 1:
        # a normal step's probability is as likely under 0.5 as over: below it a flag holds on
        # ordinary steps (at 0.05, for 20 of them on average)
        errors.append("key 'flag_hold_probability': expected a probability from 0.5 to 1 (1: no hold; below 0.5 a "
                      "flag would stay up on ordinary steps), got {!r}".format(hold))
    squash = cfg['level_squash']
    if isinstance(squash, bool) or not isinstance(squash, (int, float)) or not (squash == 0 or 2 <= squash <= 1000):
        # below 2 standard deviations it would squash normal variation itself
        errors.append("key 'level_squash': expected 0 (off) or a number of standard deviations from 2 to 1000, "
                      "got {!r}".format(squash))
    c = cfg['contamination']
    if isinstance(c, bool) or not isinstance(c, (int, float)) or not 0 < c <= 0.5:
        errors.append("key 'contamination': expected a share in (0, 0.5], got {!r}".format(c))
    if cfg['calibration'] not in CALIBRATIONS:
        errors.append("key 'calibration': expected one of {}, got {!r}".format(', '.join(CALIBRATIONS),
                                                                               cfg['calibration']))


def _outputs(cfg, errors):
    """``(models_dir, prometheus_textfile, prometheus_port, prometheus_address)``: where the job
    writes besides its charts."""
    models_dir = cfg['models_dir']
    if isinstance(models_dir, str):   # 'Auto', 'NONE': the words, not folders of that name where the plugin runs
        models_dir = models_dir.strip()
        models_dir = models_dir.lower() if models_dir.lower() in ('auto', 'none', 'null') else models_dir
    models_dir = None if _none_string(models_dir) else models_dir
    if models_dir is not None and not isinstance(models_dir, str):
        errors.append("key 'models_dir': expected 'auto', a directory, or 'none', got {!r}".format(models_dir))
    elif models_dir not in (None, 'auto'):
        blocked = _not_a_folder(os.path.expanduser(models_dir))
        if blocked:
            errors.append("key 'models_dir': {} is a file, not a directory (expected 'auto', a directory, or "
                          "'none')".format(blocked))
    textfile = None if _none_string(cfg['prometheus_textfile']) else cfg['prometheus_textfile']
    if textfile is not None and (not isinstance(textfile, str) or not textfile.endswith('.prom')):
        errors.append("key 'prometheus_textfile': expected a file path ending in .prom (node-exporter reads "
                      "only those), got {!r}".format(textfile))
    elif textfile is not None:
        textfile = os.path.expanduser(textfile)   # as models_dir's: '~/...' is the home, not a folder named ~
    port = None if _none_string(cfg['prometheus_port']) else cfg['prometheus_port']
    if port is not None and (not _is_int(port) or not 0 < port < 65536):
        errors.append("key 'prometheus_port': expected a TCP port 1-65535, got {!r}".format(port))
    address = cfg['prometheus_address']
    if isinstance(address, str):   # '[::]' as in a URL: the listener takes '::'
        address = address.strip()
        address = address[1:-1].strip() if address.startswith('[') and address.endswith(']') else address
    if not isinstance(address, str) or not address:
        errors.append("key 'prometheus_address': expected an address to listen on, got {!r}".format(
            cfg['prometheus_address']))
    elif not _listen_address(address):
        errors.append("key 'prometheus_address': expected an IP address or a host name to listen on (e.g. "
                      "127.0.0.1, 0.0.0.0, ::), got {!r}".format(cfg['prometheus_address']))
    return models_dir, textfile, port, address


_HOST_LABEL = re.compile(r'(?!-)[A-Za-z0-9-]{1,63}(?<!-)$')


def _listen_address(address):
    """Whether ``address`` is an IP address or a host name by its form (not looked up: a name
    that resolves only where the agent runs is still taken), so that a typo is told by
    check-config rather than by the job's log once it runs."""
    import ipaddress
    try:
        ipaddress.ip_address(address)
        return True
    except ValueError:
        pass
    name = address[:-1] if address.endswith('.') else address
    return 0 < len(name) <= 253 and all(_HOST_LABEL.match(label) for label in name.split('.'))


def _framework(raw, errors):
    """python.d's own keys the job relies on, with python.d's defaults: python.d.plugin reads
    several itself, before the module sees them, so they are told here for check-config and
    standalone runs, which would otherwise differ from python.d without a word."""
    framework = {k: raw.get(k, v) for k, v in FRAMEWORK_KEYS.items()}
    if not _is_int(framework['update_every']) or not 1 <= framework['update_every'] <= MAX_UPDATE_EVERY:
        errors.append("key 'update_every': expected an integer from 1 to {} (seconds between steps), got "
                      "{!r}{}".format(MAX_UPDATE_EVERY, framework['update_every'],
                                      _PYTHOND_STOPS if not _number(framework['update_every']) else ''))
    if not _is_int(framework['priority']) or not 1 <= framework['priority'] <= MAX_PRIORITY:
        # the agent reads it as a number of its own size: a larger one is not the order asked for
        errors.append("key 'priority': expected an integer from 1 to {} (the charts' place in the dashboard), "
                      "got {!r}".format(MAX_PRIORITY, framework['priority']))
    for key in ('chart_cleanup', 'autodetection_retry', 'retries'):
        v = framework[key]
        if (v is not None or key != 'retries') and (not _is_int(v) or v < 0):   # retries: none by default
            errors.append("key '{}': expected an integer >= 0, got {!r}{}".format(
                key, v, _PYTHOND_DROPS if key == 'autodetection_retry' and not _number(v) else ''))
    if not isinstance(framework['penalty'], bool):
        errors.append("key 'penalty': expected true or false, unquoted (python.d takes any text as true), got "
                      "{!r}".format(framework['penalty']))
    if 'name' in raw and not isinstance(raw['name'], str):
        errors.append("key 'name': expected a job name in quotes, got {!r} (python.d.plugin stops on it, with "
                      "every module's jobs)".format(raw['name']))
    return framework


def chart_type(job_name, override=None):
    """The type python.d gives a job's charts (the part of their ids before the dot):
    'anomalies' for the job of that name, else 'anomalies_<name>'."""
    name = served_name(job_name or 'anomalies', {'name': override})
    label = safe_id(name)
    return 'anomalies' if label == 'anomalies' else 'anomalies_' + label


def drivers_id_max(chart_type_):
    """The longest id after 'drivers_' that keeps a drivers chart's id within the agent's limit."""
    return min(DRIVERS_ID_MAX, CHART_ID_MAX - _id_bytes(chart_type_) - len('.drivers_'))


def _id_bytes(text):
    """The length of an id as the agent limits it: in bytes (a C string), not characters."""
    return len(text.encode('utf-8', 'surrogatepass'))


def _check_chart_ids(raw, job_name, attribution, errors):
    """A job name that leaves the job's chart ids (with ``attribution_charts``, its drivers
    charts') no room within the agent's limit: refused, as the agent would disable
    python.d.plugin, with every other module's jobs, at the first update of such a chart."""
    override = raw.get('name') or raw.get('override_name')
    job_name = job_name or raw.get('job_name')
    if not all(n is None or isinstance(n, str) for n in (override, job_name)):
        return   # (a name that is not text is refused on its own)
    kind = chart_type(job_name, override)
    most = CHART_ID_MAX - len('anomalies_')
    if _id_bytes(kind) + len('.flagged_for') > CHART_ID_MAX:
        most -= len('.flagged_for')
        what = "its charts' ids ('anomalies_<job>.flagged_for')"
    elif attribution and drivers_id_max(kind) < DRIVERS_ID_MIN:
        most -= len('.drivers_') + DRIVERS_ID_MIN
        what = "its attribution_charts' ids ('anomalies_<job>.drivers_<model>')"
    else:
        return
    errors.append("job name of {} bytes: {} would pass the agent's {} bytes, and the agent would "
                  "disable python.d.plugin: give the job a name (its 'name' key) of at most {} (a letter "
                  "outside ASCII takes 2-4)".format(_id_bytes(kind) - len('anomalies_'), what, CHART_ID_MAX, most))


LOCK_FILE = '{}.collector.lock'   # python.d.plugin's lock of a job it starts, in the agent's lock dir
FILE_NAME_MAX = 255   # bytes


def _check_lock_name(raw, job_name, errors):
    """A job name python.d.plugin cannot name the lock file it registers the job in after
    ('anomalies_<name>.collector.lock'): refused, as python.d would drop the job after its
    check ('registration failed'), its training and Prometheus port already started."""
    override = raw.get('name') or raw.get('override_name')
    job_name = job_name or raw.get('job_name')
    if not all(n is None or isinstance(n, str) for n in (override, job_name)):
        return   # (a name that is not text is refused on its own)
    name = served_name(job_name or 'anomalies', {'name': override})
    lock = LOCK_FILE.format('anomalies' if name == 'anomalies' else 'anomalies_' + name)
    if '/' in name:
        errors.append("job name {!r}: python.d.plugin names the job's lock file after it, and a file name holds no "
                      "'/': python.d would not run the job; give it a name (its 'name' key) without one".format(name))
    elif len(lock.encode()) > FILE_NAME_MAX:
        errors.append("job name of {} bytes: python.d.plugin names the job's lock file after it ({}), and a file "
                      "name is at most {} bytes: python.d would not run the job; give it a shorter name (its 'name' "
                      "key)".format(len(name.encode()), LOCK_FILE.format('anomalies_<name>'), FILE_NAME_MAX))


def served_name(job_name, raw):
    """The name python.d runs a job under (its ``name`` key, else the job's)."""
    name = raw.get('name') if isinstance(raw.get('name'), str) and raw.get('name') else job_name
    return pythond_name(name)
