"""Scoring detections against labels: incidents in recordings, points in labeled datasets.

Pure functions over arrays and dicts; no I/O.
"""
import numpy as np

DETECT_AFTER_END = 10    # a flag up to this long after an incident's end still detects it
QUIET_AFTER_END = 60     # rising flags this long after an incident's end are not false alarms
# the recordings' targets: each incident flagged on an expected chart this soon after its onset,
# and at most this many false flag events per clean hour (all charts together)
TARGET_DELAY_S = 10
TARGET_FALSE_PER_HOUR = 2.0
# the stock health alarms' warnings (health.d/anomalies.conf), as the harness replays them
NODE_ALARM_WARN = 5.0    # anomalies_node_rate: % of the models flagged in the last minute above this
NODE_ALARM_CLEAR = 3.0   # ... and, once raised, until it is this low again
LASTING_ALARM_S = 30     # anomalies_flag_lasting: a flag up longer than this
ALARM_EVERY_S = 10       # both: checked this often, each on the largest value since the last check


def rising_edges(times, flags):
    """Times where a 0/1 series goes to 1 (a series that starts at 1 rises at its first time)."""
    flags = np.asarray(flags, dtype=int)
    if flags.size == 0:
        return []
    prev = np.concatenate([[0], flags[:-1]])
    return [times[i] for i in np.nonzero((flags == 1) & (prev == 0))[0]]


def _incident_found(inc, times, t_arr, edges, up_at, flags_by_model):
    """One incident of ``score_incidents``: the first flag on an expected chart from its start
    to ``DETECT_AFTER_END`` after its end (a flag already up at its start counts at the start),
    the share of its steps with one up, and every chart whose flag rose in that time."""
    start, end = inc['start'], inc['end']
    firsts = {}
    for m in inc.get('expected_charts', []):
        if m not in edges:
            continue
        hits = [t for t in edges[m] if start <= t <= end + DETECT_AFTER_END]
        step_at_start = next((t for t in times if t >= start), None)
        if step_at_start is not None and up_at[m].get(step_at_start) == 1 and step_at_start <= end:
            hits.append(step_at_start)
        if hits:
            firsts[m] = min(hits)
    first = min(firsts.values()) if firsts else None
    during = (t_arr >= start) & (t_arr <= end)
    expected = [np.asarray(flags_by_model[m], dtype=int)[during] for m in inc.get('expected_charts', [])
                if m in flags_by_model]
    share = float(np.max(expected, axis=0).mean()) if expected and during.any() else 0.0
    flagged_any = sorted(m for m, e in edges.items() if any(start <= t <= end + DETECT_AFTER_END for t in e))
    return {'kind': inc.get('kind', ''), 'start': start, 'end': end, 'detected': first is not None,
            'delay_s': (first - start) if first is not None else None,
            'charts_flagged': sorted(firsts), 'all_charts_flagged': flagged_any,
            'flagged_share': round(share, 3)}


def score_incidents(times, flags_by_model, incidents, scored_from=None):
    """Detection of labeled incidents and false flag events from per-model 0/1 flag series.

    ``times``: the step times (unix s, ascending); ``flags_by_model``: ``{model: [0/1 per
    step]}`` where a model is a chart id (or a custom model's name); ``incidents``: the
    ``labels.json`` incident dicts. Per incident, ``flagged_share``: the share of its steps
    with a flag up on one of its expected charts (a stress that stays flagged for its whole
    minute, or only at its onset). ``clean_flagged_share``: of every chart's steps outside
    the incident windows (each incident and the 60 s after it), the share with its flag up (a
    flag that lingers long after an incident is one event but many such steps). An incident
    that started before ``scored_from`` (in the warm-up: the job was not running, and may have
    trained on it) is listed with ``in_warmup`` and neither found nor missed; its window is
    still no clean time.
    """
    times = list(times)
    t_arr = np.asarray(times)
    edges = {m: rising_edges(times, f) for m, f in flags_by_model.items()}
    # a flag already up when an incident starts counts as detecting it at its start
    up_at = {m: dict(zip(times, np.asarray(f, dtype=int))) for m, f in flags_by_model.items()}
    out = []
    for inc in incidents:
        start, end = inc['start'], inc['end']
        if scored_from is not None and start < scored_from:
            out.append({'kind': inc.get('kind', ''), 'start': start, 'end': end, 'detected': False, 'delay_s': None,
                        'charts_flagged': [], 'all_charts_flagged': [], 'flagged_share': 0.0, 'in_warmup': True})
            continue
        out.append(_incident_found(inc, times, t_arr, edges, up_at, flags_by_model))

    def in_quiet_window(t):
        return any(inc['start'] <= t <= inc['end'] + QUIET_AFTER_END for inc in incidents)

    false_by_model = {m: sum(1 for t in e if not in_quiet_window(t)) for m, e in edges.items()}
    false_events = sum(false_by_model.values())
    clean = np.array([not in_quiet_window(t) for t in times], dtype=bool)
    step = (np.median(np.diff(times)) if len(times) > 1 else 1.0) if times else 0.0
    clean_hours = float(clean.sum()) * step / 3600.0
    # how long flags stay up where nothing is happening (most of it: lingering after an incident)
    up = [np.asarray(f, dtype=int)[clean] for f in flags_by_model.values()]
    clean_steps = sum(u.size for u in up)
    flagged_share = float(sum(u.sum() for u in up)) / clean_steps if clean_steps else None
    return {'incidents': out, 'detected': sum(1 for i in out if i['detected']),
            'incidents_total': sum(1 for i in out if not i.get('in_warmup')),
            'false_flag_events': int(false_events), 'clean_hours': round(clean_hours, 4),
            'clean_seconds': float(clean_hours * 3600.0),
            'false_flag_events_per_hour': round(false_events / clean_hours, 3) if clean_hours else None,
            'charts': len(flags_by_model),
            'clean_flagged_share': None if flagged_share is None else round(flagged_share, 5),
            'false_flags_by_chart': {m: n for m, n in sorted(false_by_model.items()) if n}}


def stock_alarms_up(times, flagged_1m, longest, phase=0, every=ALARM_EVERY_S):
    """Per step, 1 while one of the stock alarms warns: ``flagged_1m`` is ``anomalies.rate``'s
    dimension of that name (percent), ``longest`` ``anomalies.flagged_for``'s (seconds), at
    ``times``. What a person is told, where the flags are what the dashboard shows.

    As the agent's health does: a check every ``every`` seconds (at the times that are
    ``phase`` past a multiple of it) of the largest value of the ``every`` seconds up to it,
    whose status holds until the next check. A warning so comes 0 to ``every`` - 1 seconds
    after the values cross, by when the checks fall.
    """
    times = np.asarray(times, dtype=float)
    share, lasting = np.asarray(flagged_1m, dtype=float), np.asarray(longest, dtype=float)
    out = np.zeros(times.size, dtype=int)
    if not times.size:
        return []
    node_up, up = False, False
    tick = phase + every * np.ceil((times[0] - phase) / every)
    while tick <= times[-1]:
        lo, hi = np.searchsorted(times, tick - every, 'right'), np.searchsorted(times, tick, 'right')
        if hi > lo:   # no value in the lookup: the status stays
            node_up = share[lo:hi].max() > (NODE_ALARM_CLEAR if node_up else NODE_ALARM_WARN)
            up = node_up or lasting[lo:hi].max() > LASTING_ALARM_S
        out[np.searchsorted(times, tick, 'left'):np.searchsorted(times, tick + every, 'left')] = int(up)
        tick += every
    return out.tolist()


def score_alarms(times, alarm_up, incidents, scored_from=None):
    """``score_incidents`` for the node as one chart: an incident is found when an alarm warns
    during it, and every warning outside incidents is a false alarm."""
    as_node = [dict(i, expected_charts=['node']) for i in incidents]
    return score_incidents(times, {'node': alarm_up}, as_node, scored_from)


def score_alarms_by_phase(times, flagged_1m, longest, incidents, scored_from=None):
    """``score_alarms`` of the stock alarms for each phase of their checks (where the checks
    fall is the agent's, not the incident's): the median phase, by the count found within
    ``TARGET_DELAY_S`` and then by the delays (the worse of the middle two), with every
    phase's count in ``in_time_by_phase``."""
    runs = [score_alarms(times, stock_alarms_up(times, flagged_1m, longest, phase=p), incidents, scored_from)
            for p in range(ALARM_EVERY_S)]
    counts = [found_in_time(r['incidents']) for r in runs]

    def late(run):
        return sum(i['delay_s'] for i in run['incidents'] if i['detected'] and i['delay_s'] is not None)
    order = sorted(range(len(runs)), key=lambda p: (counts[p], -late(runs[p]), p))
    chosen = order[(len(order) - 1) // 2]
    return dict(runs[chosen], phase=chosen, in_time_by_phase=counts)


def found_in_time(incidents):
    """How many of ``incidents`` (``score_incidents``'s) were found within ``TARGET_DELAY_S``."""
    return sum(1 for i in incidents if i['detected'] and i['delay_s'] is not None and i['delay_s'] <= TARGET_DELAY_S)


def recordings_summary(results):
    """Several recordings' ``score_incidents`` results as one verdict against the targets.

    An incident counts as found in time when it is detected with a delay of at most
    ``TARGET_DELAY_S``; false flag events and clean hours are added up over the recordings,
    so a short recording with one false flag does not decide the rate alone. A recording
    without clean time has no rate (``None``) and passes that half of the target.
    """
    def met(in_time, total, rate):
        return bool(in_time == total and (rate is None or rate <= TARGET_FALSE_PER_HOUR))

    per_recording = []
    for r in results:
        in_time = found_in_time(r['incidents'])
        per_recording.append({'recording': r.get('recording', ''), 'in_time': in_time,
                              'incidents': r['incidents_total'],
                              'met': met(in_time, r['incidents_total'], r['false_flag_events_per_hour'])})
    total = sum(r['incidents'] for r in per_recording)
    in_time = sum(r['in_time'] for r in per_recording)
    false_events = int(sum(r['false_flag_events'] for r in results))
    # unrounded where the result has it, so one recording's rate reads as in its own table
    hours = sum(r.get('clean_seconds', r['clean_hours'] * 3600.0) for r in results) / 3600.0
    rate = false_events / hours if hours else None
    out = {'recordings': len(results), 'incidents_total': total, 'detected_in_time': in_time,
           'false_flag_events': false_events, 'clean_hours': round(hours, 4),
           'false_flag_events_per_hour': None if rate is None else round(rate, 3),
           'met': met(in_time, total, rate), 'per_recording': per_recording}
    alarms = [r['alarms'] for r in results if 'alarms' in r]
    if alarms:
        delays = [i['delay_s'] for a in alarms for i in a['incidents'] if i['detected']]
        false_alarms = int(sum(a['false_flag_events'] for a in alarms))
        by_phase = [a['in_time_by_phase'] for a in alarms if 'in_time_by_phase' in a]
        out['alarms'] = {'detected': sum(a['detected'] for a in alarms),
                         'detected_in_time': sum(found_in_time(a['incidents']) for a in alarms),
                         # as early and as late as the checks can fall, each recording's own way
                         'detected_in_time_range': [sum(min(c) for c in by_phase), sum(max(c) for c in by_phase)]
                         if len(by_phase) == len(alarms) else None,
                         'incidents_total': sum(a['incidents_total'] for a in alarms),
                         'median_delay_s': float(np.median(delays)) if delays else None,
                         'false_alarms': false_alarms,
                         'false_alarms_per_hour': round(false_alarms / hours, 3) if hours else None}
    return out


# ----- labeled datasets (one score per row) ------------------------------------------------

def _segments(labels):
    labels = np.asarray(labels, dtype=int)
    d = np.diff(np.concatenate([[0], labels, [0]]))
    return list(zip(np.nonzero(d == 1)[0], np.nonzero(d == -1)[0]))


def f1(pred, labels):
    pred, labels = np.asarray(pred, dtype=bool), np.asarray(labels, dtype=bool)
    tp = np.sum(pred & labels)
    if tp == 0:
        return 0.0
    precision, recall = tp / pred.sum(), tp / labels.sum()
    return float(2 * precision * recall / (precision + recall))


def point_adjust(pred, labels):
    """The common (and flattering) adjustment: a hit anywhere in a segment counts the whole segment."""
    pred = np.asarray(pred, dtype=bool).copy()
    for a, b in _segments(labels):
        if pred[a:b].any():
            pred[a:b] = True
    return pred


def event_scores(pred, labels):
    """Event-wise recall (share of labeled segments hit) and precision (share of flag runs that hit one)."""
    segs = _segments(labels)
    runs = _segments(pred)
    labels = np.asarray(labels, dtype=bool)
    recall = np.mean([np.asarray(pred[a:b], dtype=bool).any() for a, b in segs]) if segs else 0.0
    precision = np.mean([labels[a:b].any() for a, b in runs]) if runs else 0.0
    return float(precision), float(recall)


def dataset_metrics(scores, flags, labels):
    """AUC-ROC, AUC-PR, best F1 (any threshold), F1 of the flags, point-adjusted and event-wise."""
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels, dtype=int)
    flags = np.asarray(flags, dtype=int)
    if labels.min() == labels.max():
        raise ValueError('labels must contain both classes')
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    f1s = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0)
    best = int(np.argmax(f1s[:-1])) if thresholds.size else 0
    best_threshold = float(thresholds[best]) if thresholds.size else float('nan')
    ev_p, ev_r = event_scores(flags, labels)
    return {'auc_roc': float(roc_auc_score(labels, scores)), 'auc_pr': float(average_precision_score(labels, scores)),
            'best_f1': float(f1s[best]), 'best_threshold': best_threshold,
            'best_flag_rate': float(np.mean(scores >= best_threshold)),
            'flag_f1': f1(flags, labels), 'flag_rate': float(flags.mean()),
            'pa_f1': f1(point_adjust(flags, labels), labels),
            'event_recall': ev_r, 'event_precision': ev_p}
