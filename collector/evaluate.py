"""Evaluate the detector on a recorded agent (through the real job class) or on labeled datasets."""
import io
import json
import os
import re
import sys

import numpy as np

from .metrics import (TARGET_DELAY_S, TARGET_FALSE_PER_HOUR, dataset_metrics, score_alarms_by_phase,
                      score_incidents)


class _Quiet:
    """A log stream that keeps lines for the caller instead of printing them."""

    def __init__(self):
        self.lines = []

    def write(self, s):
        self.lines.extend(x for x in s.splitlines() if x.strip())

    def flush(self):
        pass


def job_errors(run, n=3):
    """The job's first distinct error lines (a training that crashed, an agent not read), so a
    run that detected nothing says why."""
    seen = []
    for line in run.get('log', ()):
        if ' ERROR: ' in line:
            msg = line.split(' : ', 1)[-1]
            if msg not in seen:
                seen.append(msg)
    return seen[:n]


def why_nothing_modelled(run):
    """The job's errors or, without any, its last wait for history: a recording shorter than
    ``train_min_n_secs`` gives no model anything to train on, which is no error of the job's."""
    errors = job_errors(run)
    if errors:
        return errors
    waits = [line.split(' : ', 1)[-1] for line in run.get('log', ()) if 's of history before training' in line]
    if waits:
        return [waits[-1] + ' (the recording holds {} s; --set train_min_n_secs=N trains on less)'.format(
            run['recording'].end - run['recording'].start)]
    return []


def default_warmup(recording):
    """The clean lead before the first labeled incident, in whole minutes. A trimmed recording's
    job starts when the whole one's would: with ``trim`` seconds less history, at least a minute."""
    trim = recording.trim
    start = recording.start - trim
    incidents = recording.labels.get('incidents', [])
    if not incidents:
        return max(60, min(600, (recording.end - start) // 2 // 60 * 60) - trim)
    lead = min(i['start'] for i in incidents) - start
    return max(60, lead // 60 * 60 - trim)


def run_on_recording(path, config_path=None, job=None, warmup=None, overrides=None, progress=None, trim=0):
    """Run the python.d job over a replayed recording; returns per-step times, probabilities and flags.

    The replay clock stands at ``start + warmup`` when the job starts, so the job finds that
    much history in the "agent", as it would after running that long. Each step moves the
    clock one ``update_every``; a training in flight is waited for, as if it were instant
    on the agent's clock.
    """
    from .replay import ReplayClock, ReplayServer
    from .runner import Service, select_job
    fixed = sorted(set(overrides or ()) & {'host', 'models_dir', 'prometheus_textfile', 'prometheus_port'})
    if fixed:
        raise ValueError('--set {}: not for a replay (the harness serves the recording itself, never saves '
                         'its models and exports nothing)'.format(', '.join(fixed)))
    rec = check_recording(path, warmup, trim)
    warmup = default_warmup(rec) if warmup is None else int(warmup)
    clock = ReplayClock(rec.start + warmup, stepped=True)
    logs = _Quiet()
    with ReplayServer(rec, clock) as server:
        raw = select_job(config_path, job, host=server.host)
        raw['models_dir'] = None   # a replay's models must not be saved, nor saved ones used
        # nor its flags exported: with the live job's config they would overwrite its textfile,
        # under its job's label and with a fresh timestamp, and the alert rules would read them
        raw['prometheus_textfile'] = raw['prometheus_port'] = None
        raw.update(overrides or {})
        service = Service(configuration=raw)
        service.out, service.log_stream = io.StringIO(), logs
        if not service.check():   # the job's own lines, without their time and job prefix
            said = [re.sub(r'^.*?\] : ', '', line) for line in logs.lines[-5:]]
            raise RuntimeError('the job did not start: ' + '; '.join(
                line for line in said if not line.startswith('job not started')))
        service.detector.trainings_take_agent_time = False   # each one is waited for below
        service.detector.list_wait = None                    # and each chart list
        service.create()
        every = service.update_every
        times, probs, flags, node = [], {}, {}, {'flagged_1m': [], 'longest': []}
        try:
            while clock.now() <= rec.end:
                service.detector.trainer.wait()
                data = service.get_data() or {}
                t = int(clock.now())
                times.append(t)
                n = len(times)
                for key, value in data.items():
                    if key.endswith('_prob') and key != 'average_prob':
                        probs.setdefault(key[:-5], [np.nan] * (n - 1)).append(value / 10000.0)
                    elif key.endswith('_anomaly'):
                        flags.setdefault(key[:-8], [0] * (n - 1)).append(int(value))
                # the node view the health alarms watch: a share in percent, and seconds
                node['flagged_1m'].append(data.get('flagged_1m', 0) / 100.0)
                node['longest'].append(data.get('longest', 0))
                for series, pad in ((probs, np.nan), (flags, 0)):
                    for v in series.values():
                        if len(v) < n:
                            v.append(pad)
                if progress and n % 100 == 0:
                    progress(t - rec.start, rec.end - rec.start)
                clock.advance(every)
        finally:
            service.detector.close()
            if service.exporter is not None:
                service.exporter.close()
    return {'recording': rec, 'warmup': warmup, 'times': times, 'probs': probs, 'flags': flags, 'node': node,
            'log': logs.lines}


def check_recording(path, warmup=None, trim=0):
    """Read a recording's own files and check that it can be evaluated, before any replay:
    its labels inside its window (after ``trim``, see ``replay.Recording.cut``), and the warm-up
    leaving time to evaluate. Raises RecordingError naming the file."""
    from .replay import Recording, RecordingError, seconds_hint
    rec = Recording(path)   # (which checks its start and end)
    start = rec.start
    if trim:
        rec.cut(trim)
    length = rec.end - rec.start
    for i, inc in enumerate(rec.labels.get('incidents', [])):
        if start <= inc['start'] < rec.start:
            raise RecordingError('{}: a trim of {} s cuts off incident {} (it starts {} s in)'.format(
                path, trim, i + 1, inc['start'] - start))
        if not rec.start <= inc['start'] <= rec.end:
            raise RecordingError('{}: incident {} starts at {}{}, outside the recording ({}..{})'.format(
                os.path.join(path, 'labels.json'), i + 1, inc['start'], seconds_hint(inc['start']), rec.start,
                rec.end))
    _check_window_holds_data(rec, path)
    used = default_warmup(rec) if warmup is None else warmup
    if not 0 <= used < length:
        raise RecordingError('{}: a warm-up of {} s leaves nothing to evaluate in its {} s'.format(path, used, length))
    return rec


WINDOW_SLACK_S = 600   # how far the window may reach past the rows it was recorded with
WINDOW_SAMPLE_CHARTS = 10


def _check_window_holds_data(rec, path):
    """Refuse a ``recording.json`` window that its data does not fill (a start and end edited by
    hand, or in milliseconds): the job would step through it second by second, for hours, with
    nothing to read. Judged on a few charts' rows, not every chart's."""
    from .replay import RecordingError
    spans = []
    for chart in sorted(rec.charts)[:WINDOW_SAMPLE_CHARTS]:
        loaded = rec.chart_rows(chart)
        if loaded is not None and len(loaded[1]):
            spans.append((int(loaded[1][0]), int(loaded[1][-1]), chart))
    if not spans:
        return   # (each unreadable chart is told as it is served)
    oldest, newest = min(s[0] for s in spans), max(s[1] for s in spans)
    chart = next(s[2] for s in spans if s[1] == newest)
    if rec.end - newest > WINDOW_SLACK_S or oldest - rec.start > WINDOW_SLACK_S:
        raise RecordingError('{}: the window {}..{} is not its data\'s ({} charts read, data/{}.json.gz among them, '
                             'hold {}..{}): "start" and "end" are the unix seconds the data was recorded for'.format(
                                 os.path.join(path, 'recording.json'), rec.start, rec.end, len(spans), chart, oldest,
                                 newest))


def evaluate_recording(path, config_path=None, job=None, warmup=None, overrides=None, progress=None, trim=0):
    run = run_on_recording(path, config_path, job, warmup, overrides, progress, trim)
    rec = run['recording']
    if not run['probs'] and not run['flags']:
        errors = why_nothing_modelled(run)
        raise RuntimeError('{}: the job modelled none of its {} charts{}'.format(
            path, len(rec.charts), ': ' + '; '.join(errors) if errors else ''))
    incidents = rec.labels.get('incidents', [])
    result = score_incidents(run['times'], run['flags'], incidents, scored_from=rec.start + run['warmup'])
    result['alarms'] = score_alarms_by_phase(run['times'], run['node']['flagged_1m'], run['node']['longest'],
                                             incidents, scored_from=rec.start + run['warmup'])
    result.update({'recording': os.path.basename(os.path.normpath(path)), 'warmup_s': run['warmup'],
                   'trim_s': rec.trim, 'evaluated_from': rec.start + run['warmup'], 'evaluated_to': rec.end})
    for inc, scored in zip(incidents, result['incidents']):
        expected = inc.get('expected_charts', [])
        if expected and not any(c in run['flags'] for c in expected):   # it cannot be detected: said, not a silent miss
            scored['expected_not_modelled'] = [c for c in expected if c not in rec.charts]   # (typos, most likely)
            scored['expected_out_of_scope'] = [c for c in expected if c in rec.charts]   # (charts_regex)
        elif expected and not scored.get('in_warmup') and _unscored_at(run, inc):
            scored['no_model_at_onset'] = True   # a recording with too little quiet time before it
    return result, run


def _unscored_at(run, inc):
    """Whether none of the incident's expected charts had a model scoring at its first step."""
    at = int(np.searchsorted(np.asarray(run['times']), inc['start']))
    return at < len(run['times']) and all(
        c not in run['probs'] or np.isnan(run['probs'][c][at]) for c in inc['expected_charts'])


def _per_hour(rate):
    """' = 1.5/h', or nothing when no clean time was evaluated (every step in an incident's window)."""
    return '' if rate is None else ' = {}/h'.format(rate)


def format_recording_table(result):
    trim = result.get('trim_s', 0)
    lines = ['recording {}: {} charts, {}warmup {}s, evaluated {}..{}'.format(
        result['recording'], result['charts'], 'first {}s left out, '.format(trim) if trim else '',
        result['warmup_s'], result['evaluated_from'], result['evaluated_to'])]
    if result['incidents']:
        lines.append('{:<24} {:>8} {:>6} {:>9} {:>7} {:>8}  {}'.format(
            'incident', 'start+s', 'dur_s', 'detected', 'delay_s', 'flagged%', 'expected charts flagged'))
    base = result['evaluated_from'] - result['warmup_s'] - trim   # start+s from the recording's own start
    for inc in result['incidents']:
        lines.append('{:<24} {:>8} {:>6} {:>9} {:>7} {:>8.0f}  {}'.format(
            inc['kind'][:24], inc['start'] - base, inc['end'] - inc['start'],
            'warm-up' if inc.get('in_warmup') else 'yes' if inc['detected'] else 'NO',
            '-' if inc['delay_s'] is None else inc['delay_s'], 100 * inc.get('flagged_share', 0.0),
            ', '.join(inc['charts_flagged']) or '-'))
    for i, inc in enumerate(result['incidents']):
        if 'expected_not_modelled' in inc:
            absent = inc['expected_not_modelled']
            unmodelled = inc.get('expected_out_of_scope', [])
            why = ['not in the recording: {}'.format(', '.join(absent))] if absent else []
            if unmodelled:   # recorded: the job's scope left them out (e.g. disk.vda beside charts_regex system\..*)
                why.append('recorded but not modelled, outside charts_regex or in charts_to_exclude: {}'.format(
                    ', '.join(unmodelled)))
            lines.append('incident {} ({}): the job models none of its expected charts{}'.format(
                i + 1, inc['kind'], ' ({})'.format('; '.join(why)) if why else ''))
        if inc.get('no_model_at_onset'):
            lines.append('incident {} ({}): no model of its expected charts scored yet at its onset: a chart is '
                         'first trained once the agent holds train_min_n_secs of its history (300 s by default), so '
                         'a recording needs more quiet time than that before its first incident'.format(
                             i + 1, inc['kind']))
    early = sum(1 for inc in result['incidents'] if inc.get('in_warmup'))
    if early:
        lines.append('{} incident{} in the warm-up, before the job started: not scored'.format(
            early, '' if early == 1 else 's'))
    if result['incidents_total'] or early:
        lines.append('detected {}/{}; false flag events outside incidents: {} in {:.2f} h{}'.format(
            result['detected'], result['incidents_total'], result['false_flag_events'], result['clean_hours'],
            _per_hour(result['false_flag_events_per_hour'])))
    else:   # a recording of one's own agent, without labels.json: the quiet side only
        lines.append('no labeled incidents, so every flag counts as false: {} false flag '
                     'event{} in {:.2f} h{}'.format(result['false_flag_events'],
                                                    '' if result['false_flag_events'] == 1 else 's',
                                                    result['clean_hours'],
                                                    _per_hour(result['false_flag_events_per_hour'])))
    alarms = result.get('alarms')
    if alarms and (alarms['incidents_total'] or alarms['false_flag_events']):
        delays = [str(i['delay_s']) for i in alarms['incidents'] if i['detected']]
        by_phase = alarms.get('in_time_by_phase') or [0]
        found = 'raised for {}/{} incidents{}{}; '.format(
            alarms['detected'], alarms['incidents_total'], ', after ' + ', '.join(delays) + ' s' if delays else '',
            ' ({}-{} within {} s by where the 10 s checks fall)'.format(min(by_phase), max(by_phase), TARGET_DELAY_S)
            if min(by_phase) != max(by_phase) else '')
        lines.append('stock alarms (anomalies_node_rate, anomalies_flag_lasting): {}{} false alarm{} in {:.2f} '
                     'h'.format(found if alarms['incidents_total'] else '', alarms['false_flag_events'],
                                '' if alarms['false_flag_events'] == 1 else 's', alarms['clean_hours']))
    if result.get('clean_flagged_share') is not None:
        lines.append('flags up in {:.2f} % of the chart-steps outside incidents and the minute after '
                     'each'.format(100 * result['clean_flagged_share']))
    if result.get('false_flags_by_chart'):
        top = sorted(result['false_flags_by_chart'].items(), key=lambda kv: -kv[1])[:8]
        lines.append('false flags by chart: ' + ', '.join('{} {}'.format(m, n) for m, n in top))
    return '\n'.join(lines)


def format_summary(summary):
    """The targets' verdict over the recordings evaluated together (one line each, then the total)."""
    lines = []
    if summary['recordings'] > 1:
        for r in summary['per_recording']:
            lines.append('  {:<36} {}/{} within {} s{}'.format(r['recording'][:36], r['in_time'], r['incidents'],
                                                             TARGET_DELAY_S, '' if r['met'] else '  (target missed)'))
    rate = summary['false_flag_events_per_hour']
    events = '{} false flag event{}'.format(summary['false_flag_events'],
                                            '' if summary['false_flag_events'] == 1 else 's')
    events += (' (no clean time to rate them)' if rate is None else
               ' in {:.2f} clean h = {:g}/h'.format(summary['clean_hours'], rate))
    verdict = 'met' if summary['met'] else 'NOT met'
    if not summary['incidents_total']:
        lines.append('{} recording{} without labeled incidents: {}; target (at most {:g}/h): {}'.format(
            summary['recordings'], '' if summary['recordings'] == 1 else 's', events, TARGET_FALSE_PER_HOUR, verdict))
        return '\n'.join(lines)
    lines.append('{} recording{}: {}/{} incidents flagged on an expected chart within {} s of onset; {}; targets '
                 '(all within {} s, at most {:g}/h): {}'.format(
                     summary['recordings'], '' if summary['recordings'] == 1 else 's', summary['detected_in_time'],
                     summary['incidents_total'], TARGET_DELAY_S, events, TARGET_DELAY_S, TARGET_FALSE_PER_HOUR,
                     verdict))
    alarms = summary.get('alarms')
    if alarms and summary['recordings'] > 1:
        spread = alarms.get('detected_in_time_range')
        lines.append('stock alarms: raised for {}/{} incidents ({} within {} s{}){}; {} false alarm{}{}'.format(
            alarms['detected'], alarms['incidents_total'], alarms['detected_in_time'], TARGET_DELAY_S,
            ', {}-{} by where their 10 s checks fall'.format(*spread) if spread and spread[0] != spread[1] else '',
            '' if alarms['median_delay_s'] is None else ', median {:g} s after onset'.format(alarms['median_delay_s']),
            alarms['false_alarms'], '' if alarms['false_alarms'] == 1 else 's',
            '' if alarms['false_alarms_per_hour'] is None else ' ({:g}/h)'.format(alarms['false_alarms_per_hour'])))
    return '\n'.join(lines)


def is_recording(path):
    return os.path.isfile(os.path.join(path, 'recording.json'))


def is_dataset(path):
    return all(os.path.isfile(os.path.join(path, name)) for name in DATASET_FILES)


def dataset_files_missing(path):
    """The files a folder that holds some of a dataset's lacks (a mistyped name), else []."""
    held = [os.path.isfile(os.path.join(path, n)) for n in DATASET_FILES + ('train_labels.csv',)]
    return [n for n, h in zip(DATASET_FILES, held) if not h] if any(held) else []


def plotted_charts(run, result, limit=10):
    """The charts a recording's plot draws, at most ``limit``: those that detected an incident
    first (a memory stress found on system.ram alone is shown on it, however many charts went
    to 100 % with a CPU stress), then the other flagged or expected charts by their highest
    probability, ties by name."""
    rec = run['recording']
    expected = {c for inc in rec.labels.get('incidents', []) for c in inc.get('expected_charts', [])}
    flagged = {m for m, f in run['flags'].items() if max(f, default=0)}
    detecting = {c for inc in result.get('incidents', []) for c in inc.get('charts_flagged', [])}

    def peak(m):
        p = np.asarray(run['probs'][m], dtype=float)
        return float(np.nanmax(p)) if np.isfinite(p).any() else 0.0
    return sorted((expected | flagged | detecting) & set(run['probs']),
                  key=lambda m: (m not in detecting, -peak(m), m))[:limit]


def minutes_in(rec, t):
    """Minutes from the recording's own start to ``t``, as the table's start+s counts them: a
    ``--trim`` (``Recording.cut``) moves neither."""
    return (t - (rec.start - rec.trim)) / 60.0


def plot_recording(run, result, out):
    """Probabilities of the charts that matter (flagged or expected), incidents shaded."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rec = run['recording']
    t = minutes_in(rec, np.asarray(run['times']))
    chosen = plotted_charts(run, result)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(14, 7), sharex=True, gridspec_kw={'height_ratios': [3, 1]})
    for m in chosen:
        ax1.plot(t, np.asarray(run['probs'][m]) * 100, lw=1, label=m)
    n_flagged = np.sum([np.asarray(f) for f in run['flags'].values()], axis=0) if run['flags'] else np.zeros(len(t))
    ax2.step(t, n_flagged, where='post', color='crimson')
    for inc in rec.labels.get('incidents', []):
        for ax in (ax1, ax2):
            ax.axvspan(minutes_in(rec, inc['start']), minutes_in(rec, inc['end']), color='orange', alpha=0.2)
        ax1.text(minutes_in(rec, inc['start']), 102, inc.get('kind', ''), fontsize=8)
    ax1.set_ylabel('anomaly probability %')
    ax1.set_ylim(0, 110)
    ax1.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.01, 1.0))   # beside: the incidents' names show
    ax2.set_ylabel('charts flagged')
    ax2.set_xlabel('minutes since recording start{} (incidents shaded)'.format(
        ', the first {} s trimmed'.format(rec.trim) if rec.trim else ''))
    ax1.set_title('{}: detected {}/{}, {} false flag events'.format(
        result['recording'], result['detected'], result['incidents_total'], result['false_flag_events']))
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


# ----- labeled datasets ------------------------------------------------------------------

class DatasetError(ValueError):
    """A dataset folder file that cannot be used; the message names the file and the line."""


class OneClassLabels(DatasetError):
    """A dataset whose evaluation part is labeled all normal or all anomalous: sound files, but
    nothing to measure a ranking against (``evaluate`` leaves it out, and says so)."""


DATASET_FILES = ('train.csv', 'eval.csv', 'eval_labels.csv')   # (and train_labels.csv, optional)


def _read_rows(path, empty_columns=False):
    """Comma-separated numbers, one row per line; an empty cell (a gap) reads as NaN. A column
    without a value on any line is refused unless ``empty_columns`` (the evaluation rows, whose
    gaps carry the training rows' last value forward)."""
    rows, width = [], None
    try:   # (a byte-order mark, as a spreadsheet saves CSV, is no part of the first number)
        with open(path, encoding='utf-8-sig') as fh:
            lines = fh.read().splitlines()
    except UnicodeDecodeError as e:
        raise DatasetError('{}: not text (byte {} is not UTF-8): comma-separated numbers expected'.format(
            path, e.start))
    while lines and not lines[-1].strip():   # a trailing newline or two is no row
        lines.pop()
    for n, line in enumerate(lines, 1):
        cells = line.strip().split(',')   # a blank line is one empty cell: a gap in a one-column file
        if width is None:
            width = len(cells)
        elif len(cells) != width:
            raise DatasetError('{}: line {} has {} columns, the lines before it {}'.format(path, n, len(cells), width))
        try:
            rows.append([float(c) if c.strip() else np.nan for c in cells])
        except ValueError:
            raise DatasetError('{}: line {}: not a number in {!r}'.format(path, n, line.strip()[:80]))
    if not rows:
        raise DatasetError('{}: no rows'.format(path))
    values = np.array(rows, dtype=np.float64)
    if np.isinf(values).any():
        n = int(np.argwhere(np.isinf(values))[0][0]) + 1
        raise DatasetError('{}: line {}: an infinite value (a gap is an empty cell)'.format(path, n))
    empty = np.flatnonzero(np.isnan(values).all(axis=0))
    if empty.size and not empty_columns:
        raise DatasetError('{}: column {} has no value on any line'.format(path, int(empty[0]) + 1))
    return values


def _read_labels(path, rows):
    values = _read_rows(path)
    if values.shape[1] != 1:
        raise DatasetError('{}: one 0 or 1 per line expected, {} columns found'.format(path, values.shape[1]))
    bad = np.flatnonzero(~np.isin(values[:, 0], (0, 1)))
    if bad.size:
        raise DatasetError('{}: line {}: one 0 or 1 per line expected, got {}'.format(
            path, int(bad[0]) + 1,
            'an empty line' if np.isnan(values[bad[0], 0]) else '{:g}'.format(values[bad[0], 0])))
    if len(values) != rows:
        raise DatasetError('{}: {} labels for {} rows'.format(path, len(values), rows))
    return values[:, 0].astype(int)


def load_dataset(folder):
    """``(train, train_labels, eval, eval_labels)`` of a dataset folder, checked; train labels default to 0."""
    def path(name):
        return os.path.join(folder, name)
    train, evals = _read_rows(path('train.csv')), _read_rows(path('eval.csv'), empty_columns=True)
    if train.shape[1] != evals.shape[1]:
        raise DatasetError('{}: {} columns, train.csv {}'.format(path('eval.csv'), evals.shape[1], train.shape[1]))
    train_labels = (_read_labels(path('train_labels.csv'), len(train)) if os.path.exists(path('train_labels.csv'))
                    else np.zeros(len(train), dtype=int))
    labels = _read_labels(path('eval_labels.csv'), len(evals))
    if labels.min() == labels.max():   # no precision or recall to measure
        raise OneClassLabels('{}: every line is {}: the scores are measured against both labeled anomalies (1) '
                             'and normal rows (0), so it needs at least one of each'.format(path('eval_labels.csv'),
                                                                                          labels[0]))
    return train, train_labels, evals, labels


def score_dataset(folder, config):
    """Train on ``train.csv`` (labeled rows left out) and score every row of ``eval.csv``.

    The flags are the ones a user would see: above the threshold, then the job's flag policy.
    """
    from .features import feature_groups, fill_missing
    from .flags import n_of_m
    from .models import MIN_TRAIN_ROWS, fit_model
    train, train_labels, evals, labels = load_dataset(folder)
    train = fill_missing(train)
    X = config.training_features(train)
    need, train_need = config.rows_needed, config.training_rows_needed
    if len(train_labels) == len(train) and train_labels.any():
        # anomaly-aware training: a feature row that saw a labeled row does not teach "normal"
        seen = np.convolve(train_labels, np.ones(train_need, dtype=int))[train_need - 1:len(train_labels)]
        X = X[seen == 0]
    if len(X) < MIN_TRAIN_ROWS:
        raise DatasetError('{}: {} training rows left after the features and labeled rows, at least {} '
                           'needed'.format(os.path.join(folder, 'train.csv'), len(X), MIN_TRAIN_ROWS))
    groups = feature_groups([0] * train.shape[1], config.lags_n, config.level_features)
    fm = fit_model(os.path.basename(folder), [], X, model=config.model, contamination=config.contamination,
                   calibration=config.calibration, max_rows=config.train_max_n, groups=groups,
                   blocks=(config.lags_n + 1, config.level_features), level_squash=config.squash)
    # the evaluation rows continue the training rows: a gap at their start carries the last
    # training value forward, as a live job would, never a later value back
    rows = fill_missing(np.vstack([train, evals]))[len(train) - (need - 1):]
    scores = fm.decision_function(config.features(rows))
    probs = fm.rank_probability(scores)
    hold = None if config.flag_hold is None else probs >= config.flag_hold
    flags = n_of_m(fm.exceeds(scores), config.flag_min_n, config.flag_window_n, hold, probs, config.flag_rearm_n,
                   config.flag_lasting_n, fm.excess(scores))
    return scores, flags, labels, fm


def evaluate_datasets(folders, config, seed=0):
    rows, randoms = [], []
    rng = np.random.default_rng(seed)
    for folder in folders:
        try:
            scores, flags, labels, fm = score_dataset(folder, config)
            m = dataset_metrics(scores, flags, labels)
        except DatasetError:
            raise    # names its file
        except ValueError as e:
            raise DatasetError('{}: {}'.format(folder, e))
        m['name'] = os.path.basename(os.path.normpath(folder))
        m['model'] = fm.model_name
        rows.append(m)
        rs = rng.random(len(labels))
        random_flags = np.zeros(len(rs), dtype=bool)   # as many rows as the job flagged, none if none
        random_flags[np.argsort(rs)[len(rs) - int(round(m['flag_rate'] * len(rs))):]] = True
        r = dataset_metrics(rs, random_flags, labels)
        r['name'] = m['name']
        randoms.append(r)
    keys = ['auc_roc', 'auc_pr', 'best_f1', 'flag_f1', 'flag_rate', 'pa_f1', 'event_recall', 'event_precision',
            'best_flag_rate']
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    random_mean = {k: float(np.mean([r[k] for r in randoms])) for k in keys}
    return {'model': config.model, 'datasets': rows, 'mean': mean, 'random': randoms, 'random_mean': random_mean}


def format_dataset_table(result):
    cols = ['auc_roc', 'auc_pr', 'best_f1', 'flag_f1', 'flag_rate', 'pa_f1', 'event_recall', 'event_precision',
            'best_flag_rate']
    head = '{:<22}'.format('dataset ({})'.format(result['model'])) + ''.join('{:>16}'.format(c) for c in cols)
    lines = [head]
    for r in result['datasets']:
        lines.append('{:<22}'.format(r['name'][:22]) + ''.join('{:>16.3f}'.format(r[c]) for c in cols))
    lines.append('{:<22}'.format('mean') + ''.join('{:>16.3f}'.format(result['mean'][c]) for c in cols))
    lines.append('{:<22}'.format('random scores (mean)') +
                 ''.join('{:>16.3f}'.format(result['random_mean'][c]) for c in cols))
    return '\n'.join(lines)


def write_json(obj, path):
    def default(o):
        if isinstance(o, (np.integer,)):
            return int(o)
        if isinstance(o, (np.floating,)):
            return float(o)
        if isinstance(o, np.bool_):
            return bool(o)
        raise TypeError(repr(o))
    with open(path, 'w') as f:
        json.dump(obj, f, indent=1, default=default)


def print_progress(done, total):
    sys.stderr.write('\r  replayed {}/{} s'.format(done, total))
    sys.stderr.flush()
