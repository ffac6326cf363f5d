"""What a valid job configuration does that its writer most likely did not mean.

Kept apart from validation (``config``): these keys are accepted, the job runs, and the
notes are said by ``check-config`` and logged as warnings when the job starts.
"""
import os
import re
import time

from .config import DEFAULTS, least_window_secs
from .files import may_write_into
from .hosts import host_parts, port_given
from .netdata_api import MAX_ROWS

# charts of 1.37 agents that only ever climb (seconds since a start), as charts_regex may take them
CLIMBING_CHARTS = ('system.uptime', 'netdata.uptime', 'apps.uptime', 'users.uptime', 'groups.uptime')
SHORT_RETRAIN_STEPS = 120   # train_every_n below it: trainings and the steps after them hold flags most of the time
WIDE_CONTAMINATION = 0.05
# a '|' that opens or closes the regex or a group, or follows another, and is not escaped: an
# alternative of nothing, which re.match finds at the start of every chart id where it is the
# whole regex's ('system\..*|', the retired collector's own example, modelled all of an agent's charts)
EMPTY_ALTERNATIVE = re.compile(r'^\||(?<!\\)\|$|(?<!\\)\|\||\(\||(?<!\\)\|\)')


def config_warnings(cfg, user=None):
    """What a valid configuration does that its writer most likely did not mean: one line per
    key, said by check-config and logged as a warning when the job starts (it still runs).
    ``user``: the user files are written as (the agent's, for check-config run by root)."""
    notes = []
    if cfg.squash is not None and not cfg.level_features:
        notes.append("key 'level_squash': {:g} does nothing with level_features false (it squashes the level "
                     "features)".format(cfg.level_squash))
    if cfg.diffs_n == 0 and cfg.level_features:
        notes.append("key 'diffs_n': 0 with level_features true feeds each smoothed value twice (the level block "
                     "is then the same columns as the first change block): level_features false says the same once")
    if cfg.contamination > WIDE_CONTAMINATION:
        notes.append("key 'contamination': {:g} puts the threshold where {:.1%} of normal steps reach it (the default "
                     "0.001: one in 1000)".format(cfg.contamination, cfg.contamination))
    if 0 < cfg.train_every_n < max(SHORT_RETRAIN_STEPS, 4 * cfg.rows_needed):
        # (at most the held steps apart, trainings hold every step: no flag rises at all)
        held = 'for good' if cfg.train_every_n <= cfg.rows_needed + 2 else 'much of the time'
        if cfg.train_every_n >= SHORT_RETRAIN_STEPS:   # trainings far enough apart: the features reach too far
            key = 'smooth_n' if cfg.smooth_n >= cfg.lags_n else 'lags_n'
            notes.append("key '{}': smooth_n {}, lags_n {} and diffs_n {} reach back {} steps, and no flag rises "
                         "while a training runs nor in the {} steps after it (its own work shows in them), so with "
                         "a training every {} steps flags are held down {} (a shorter {}, or a larger "
                         "train_every_n; 0: never retrain)".format(
                             key, cfg.smooth_n, cfg.lags_n, cfg.diffs_n, cfg.rows_needed, cfg.rows_needed,
                             cfg.train_every_n, held, key))
        else:
            notes.append("key 'train_every_n': a training every {} steps: no flag rises while a training runs nor "
                         "in the {} steps after it (its own work shows in them), so flags are held down {} (default "
                         "1800; 0: never retrain)".format(cfg.train_every_n, cfg.rows_needed, held))
    if cfg.train_n_secs > MAX_ROWS:
        notes.append("key 'train_n_secs': {} s is over a day: the agent answers a window of more than {} rows in "
                     "averaged rows, so charts collected every second are trained on averages of the seconds a "
                     "step reads".format(cfg.train_n_secs, MAX_ROWS))
    notes += _portless_host_notes(cfg)
    notes += _initial_window_notes(cfg)
    notes += _retired_key_notes(cfg)
    if cfg.charts_regex and EMPTY_ALTERNATIVE.search(cfg.charts_regex) and re.match(cfg.charts_regex, 'no.such'):
        notes.append("key 'charts_regex': {!r} has an empty alternative (a '|' at its start or end, or next to "
                     "another or to a bracket), which matches every chart: every chart of the agent is modelled "
                     "(drop that '|' to model only the others; '.*' says every chart plainly)".format(cfg.charts_regex))
    regex_like = [c for c in cfg.charts_to_exclude if set(c) & set('\\|^$()')]   # ('apps.*' is a shell pattern)
    if regex_like:
        notes.append("key 'charts_to_exclude': {!r} reads as a regular expression, but charts_to_exclude takes ids "
                     "and shell patterns ('system.*', '*.uptime'), joined by ',': it matches no chart as "
                     "meant".format(regex_like[0]))
    climbing = [c for c in CLIMBING_CHARTS if cfg.chart_matches(c)]
    if climbing:
        notes.append("key 'charts_to_exclude': it leaves {} in scope: a time since a start only climbs, past every "
                     "training window, so such a chart is flagged for good between trainings (the default "
                     "leaves out '*.uptime')".format(', '.join(climbing)))
    if cfg.models_dir not in (None, 'auto') and not os.path.isabs(os.path.expanduser(cfg.models_dir)):
        notes.append("key 'models_dir': {} is not an absolute path: models are saved relative to the folder the "
                     "plugin runs in ('auto' keeps them in the agent's lib dir)".format(cfg.models_dir))
    if cfg.prometheus_port is None and cfg.prometheus_address != DEFAULTS['prometheus_address']:
        notes.append("key 'prometheus_address': {} is where the /metrics port listens, and no prometheus_port is set: "
                     "nothing listens (set prometheus_port, e.g. 9591)".format(cfg.prometheus_address))
    if cfg.models_dir not in (None, 'auto'):
        folder = _nearest_existing(os.path.abspath(os.path.expanduser(cfg.models_dir)))
        if folder is not None and not may_write_into(folder, user):
            notes.append("key 'models_dir': {} is not writable by {}: trained models are not saved, and each start "
                         "trains again".format(folder, 'the user ' + user if user else
                                               'this user (' + _user_name() + ')'))
    if cfg.prometheus_textfile:
        if not os.path.isabs(cfg.prometheus_textfile):
            notes.append("key 'prometheus_textfile': {} is not an absolute path: it is written relative to the "
                         "folder the plugin runs in".format(cfg.prometheus_textfile))
        folder = os.path.dirname(os.path.abspath(cfg.prometheus_textfile))
        if not os.path.isdir(folder):
            notes.append("key 'prometheus_textfile': the folder {} does not exist: the file is written once it "
                         "does".format(folder))
        elif not may_write_into(folder, user):
            notes.append("key 'prometheus_textfile': the folder {} is not writable by {}: the file is not written "
                         "until it is".format(folder, 'the user ' + user if user else
                                              'this user (' + _user_name() + ')'))
    return notes


def _nearest_existing(path):
    """``path``, or the nearest folder above it that exists (where its folders would be made); None
    where a file stands in the way (the configuration's check refuses that)."""
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent
    return path if os.path.isdir(path) else None


def _portless_host_notes(cfg):
    """An agent named without a port is read on the protocol's port (80 or 443): right behind a
    proxy, but most likely a 19999 left out."""
    hosts = [('host', cfg.host)] + sorted({('custom_models', h) for m in cfg.custom_models
                                          for h, _, _ in m.dimensions if h != cfg.host})
    port = 443 if cfg.protocol == 'https' else 80
    notes = []
    for key, host in hosts:
        if not port_given(host):
            where, path = host_parts(host)
            notes.append("key '{}': {} names no port, so the agent is read on port {}, {}'s (an agent listens on "
                         "19999 by default: {}:19999{})".format(key, host, port, cfg.protocol, where,
                                                                 '/' + path if path else ''))
    return notes


def _user_name():
    """The user this process runs as, by name where it has one (the agent's is 'netdata')."""
    try:
        import pwd
        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return 'uid {}'.format(os.geteuid())


def _retired_key_notes(cfg):
    """The retired collector's keys that are taken and change nothing, when a kept config
    asks for something of them (their defaults, as its stock file has them, say nothing)."""
    notes = []
    if cfg.reinitialize_at_every_step:
        notes.append("key 'reinitialize_at_every_step': true changes nothing here: charts that appear or go away are "
                     "picked up within a minute, and models retrained every train_every_n steps")
    if cfg.train_no_prediction_n != DEFAULTS['train_no_prediction_n']:
        notes.append("key 'train_no_prediction_n': {} changes nothing here: prediction never pauses for a training, "
                     "and no flag rises while a training runs nor in the {} steps after it".format(
                         cfg.train_no_prediction_n, cfg.rows_needed))
    if cfg.custom_models_normalize:
        notes.append("key 'custom_models_normalize': true changes nothing here: every model's features are scaled "
                     "per column already, so dimensions of different units weigh the same")
    return notes


def _initial_window_notes(cfg):
    """A first training window the agent most likely does not hold, or holds in too few rows:
    that training then fits no model, and the charts train on the rolling window after it."""
    after, before = cfg.initial_train_data_after, cfg.initial_train_data_before
    if not after:
        return []
    notes, seconds = [], before - after + 1
    least = least_window_secs(cfg.diffs_n, cfg.smooth_n, cfg.lags_n, cfg.update_every)
    if seconds < least:
        notes.append("key 'initial_train_data_before': a window of {} s, where a model needs at least {} s (the "
                     "features' rows and the fit's minimum)".format(seconds, least))
    elif seconds > MAX_ROWS:
        notes.append("key 'initial_train_data_before': a window of {} s is over a day: the agent answers it in "
                     "averaged rows".format(seconds))
    if after > time.time() + 86400:   # (by this machine's clock, which may be wrong: not refused)
        notes.append("key 'initial_train_data_after': {} is {:.0f} days ahead of this machine's clock: an agent "
                     "holds no such window".format(after, (after - time.time()) / 86400))
    return notes
