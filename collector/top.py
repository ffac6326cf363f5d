"""``python -m collector top``: the charts of one node ranked by how anomalous they were in a window.

Reads back what the collector stored in the agent (the anomalies.probability and
anomalies.anomaly charts of every job), like an anomaly advisor for one node: which charts
were flagged, for how long, and how unusual they looked.
"""
import time

import numpy as np

from .netdata_api import NetdataApi, NetdataError

PROB_CONTEXT, FLAG_CONTEXT = 'anomalies.probability', 'anomalies.anomaly'


def rank(probs, flags, every=1):
    """Rank models from per-model series over one window.

    ``probs``: ``{model: [probability 0..100 or None per step]}``, ``flags``: ``{model: [0/1 or
    None]}``; ``every``: seconds per row, one for all or ``{model: seconds}``. Ordered by
    flagged seconds, then mean probability.
    """
    rows = []
    for model in sorted(set(probs) | set(flags)):
        p = np.array([np.nan if v is None else v for v in probs.get(model, [])], dtype=float)
        f = np.array([0 if v is None else v for v in flags.get(model, [])], dtype=float)
        flagged = int((f > 0).sum())
        seconds = every.get(model, 1) if isinstance(every, dict) else every
        rows.append({'chart': model, 'flagged_s': flagged * seconds,
                     'flag_events': int(((f[1:] > 0) & (f[:-1] == 0)).sum() + (f[:1] > 0).sum()) if f.size else 0,
                     'mean_prob': float(np.nanmean(p)) if np.isfinite(p).any() else 0.0,
                     'max_prob': float(np.nanmax(p)) if np.isfinite(p).any() else 0.0})
    rows.sort(key=lambda r: (-r['flagged_s'], -r['mean_prob'], r['chart']))
    return rows


def _series(api, context, suffix, after, before, unread):
    """``({model: values}, {model: seconds per row})`` over every job's chart of ``context``.
    A job other than the default one ('anomalies_<job>.probability') names its models
    '<job>/<model>', so two jobs with a system.cpu model stay two rows. A chart the agent lists
    but does not serve (a job stopped long ago) is left out, and told in ``unread``."""
    out, every = {}, {}
    for chart in api.charts_of_context(context):
        try:
            labels, rows = api.data(chart, after, before)
        except NetdataError as e:
            unread.append('{}: {}'.format(chart, e))
            continue
        seconds = max(1, int(round((rows[-1][0] - rows[0][0]) / (len(rows) - 1)))) if len(rows) > 1 else 1
        kind = chart.rsplit('.', 1)[0]   # the type: a job's name may hold dots ('10.0.0.5'), the id none
        job = kind[len('anomalies_'):] if kind.startswith('anomalies_') else ''
        for k, label in enumerate(labels):
            if label.endswith(suffix) and label != 'average_prob':
                model = label[:-len(suffix)]
                key = '{}/{}'.format(job, model) if job else model
                out[key], every[key] = [r[k + 1] if k + 1 < len(r) else None for r in rows], seconds
    return out, every


def top(api, after=-600, before=0, unread=None):
    """Ranked rows (``rank``); the charts that could not be read are appended to ``unread``."""
    unread = [] if unread is None else unread
    probs, every = _series(api, PROB_CONTEXT, '_prob', after, before, unread)
    flags, flag_every = _series(api, FLAG_CONTEXT, '_anomaly', after, before, unread)
    every = dict(flag_every, **every)
    if not probs and not flags:
        if unread:
            raise NetdataError('no anomalies chart of {} could be read: {}'.format(api.base_url, '; '.join(unread)))
        raise NetdataError('{} has no anomalies charts: is the anomalies collector running there?'.format(api.base_url))
    return rank(probs, flags, every)


def format_top(rows, limit=20, window=''):
    lines = ['most anomalous charts{}'.format(' ' + window if window else ''),
             '{:>4}  {:<40} {:>10} {:>7} {:>10} {:>9}'.format('rank', 'chart', 'flagged_s', 'events', 'mean_prob%',
                                                             'max_prob%')]
    for i, r in enumerate(rows[:limit], 1):
        lines.append('{:>4}  {:<40} {:>10} {:>7} {:>10.1f} {:>9.1f}'.format(
            i, r['chart'][:40], r['flagged_s'], r['flag_events'], r['mean_prob'], r['max_prob']))
    if len(rows) > limit:
        lines.append('      ... {} more'.format(len(rows) - limit))
    return '\n'.join(lines)


def run(host, after=-600, before=0, limit=20, protocol='http', username=None, password=None, tls_verify=True):
    api = NetdataApi(host, protocol, username, password, tls_verify, timeout=30.0)
    unread = []
    try:
        rows = top(api, after, before, unread)
    finally:
        api.close()
    when = 'over the last {} s'.format(-after) if after < 0 and before == 0 else 'from {} to {}'.format(
        time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(after)) if after > 0 else after,
        time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(before)) if before > 0 else before)
    report = format_top(rows, limit, 'on {} {}'.format(host, when))
    return report + ''.join('\nnot read: {}'.format(u) for u in unread)
