"""``python -m collector top``: the charts of one node ranked by how anomalous they were in a window.

Reads back what the collector stored in the agent (the anomalies.probability and
anomalies.anomaly charts of every job), like an anomaly advisor for one node: which charts
were flagged, for how long, and how unusual they looked.
"""
import time

import numpy as np

from .netdata_api import MAX_ROWS, NetdataApi, NetdataError, _is_time

PROB_CONTEXT, FLAG_CONTEXT = 'anomalies.probability', 'anomalies.anomaly'


def rank(probs, flags, every=1, maxima=None):
    """Rank models from per-model series over one window.

    ``probs``: ``{model: [probability 0..100 or None per row]}``, ``flags``: ``{model: [flag 0..1
    or None]}``, a row's flag being the share of its seconds flagged (0 or 1 for rows of one
    step); ``every``: seconds per row, one for all or ``{model: seconds}``; ``maxima``: the rows'
    highest probabilities where a row groups several steps. Ordered by flagged seconds, then
    mean probability.
    """
    rows = []
    for model in sorted(set(probs) | set(flags)):
        p = np.array([np.nan if v is None else v for v in probs.get(model, [])], dtype=float)
        f = np.clip(np.array([0 if v is None else v for v in flags.get(model, [])], dtype=float), 0.0, 1.0)
        top = np.array([np.nan if v is None else v for v in (maxima or {}).get(model, [])], dtype=float)
        top = top if np.isfinite(top).any() else p
        seconds = every.get(model, 1) if isinstance(every, dict) else every
        rows.append({'chart': model, 'flagged_s': int(round(float(f.sum()) * seconds)),
                     'flag_events': int(((f[1:] > 0) & (f[:-1] == 0)).sum() + (f[:1] > 0).sum()) if f.size else 0,
                     'mean_prob': float(np.nanmean(p)) if np.isfinite(p).any() else 0.0,
                     'max_prob': float(np.nanmax(top)) if np.isfinite(top).any() else 0.0})
    rows.sort(key=lambda r: (-r['flagged_s'], -r['mean_prob'], r['chart']))
    return rows


def window(after, before, now):
    """``(first, last)`` unix seconds of ``--after``/``--before``, both relative to ``now`` when
    not unix times, as the command's help and its window check read them: the agent's own reading
    (after relative to before) made ``--after -300 --before -200`` the 300 s before the last 200."""
    end = now + before if before <= 0 else before
    start = now + after + 1 if after <= 0 else after
    return int(start), int(end)


def _held(chart, after, before, now):
    """``(first, last, points)``: the window in unix seconds over what ``chart`` (its
    ``/api/v1/charts`` entry) holds, and the rows to ask for (0: every step), or None when it
    holds nothing there. The agent answers a window reaching before a chart's first value
    with empty rows, and at most ``MAX_ROWS`` of them: a window of three years gave one row of
    1095 s for the last minutes. A relative window ends at ``now``, the agent's (not at a
    stopped job's last second)."""
    first, last = chart.get('first_entry'), chart.get('last_entry')
    if not all(_is_time(t) and t > 0 for t in (first, last)):   # (0: listed, never collected)
        # an agent that does not say: asked as given, but it reads a relative after from before
        return (after - before if after <= 0 and before < 0 else after), before, 0
    start, end = window(after, before, now if now else last)
    start, end = max(start, first), min(end, last)
    if start > end:
        return None
    every = chart.get('update_every')
    every = every if isinstance(every, int) and not isinstance(every, bool) and every > 0 else 1
    rows = (end - start) // every + 1
    return int(start), int(end), 0 if rows <= MAX_ROWS else MAX_ROWS


def _series(api, charts, suffix, after, before, unread, now=None, group=None, grouped=None):
    """``({model: values}, {model: seconds per row})`` over every job's chart in ``charts``
    (``{chart id: its /api/v1/charts entry}``). A job other than the default one
    ('anomalies_<job>.probability') names its models '<job>/<model>', so two jobs with a
    system.cpu model stay two rows. A chart the agent lists but does not serve (a job stopped
    long ago), or holds nothing of in the window, is left out, and told in ``unread``; the
    charts read in grouped rows are added to ``grouped``."""
    out, every = {}, {}
    for chart in sorted(charts):
        held = _held(charts[chart], after, before, now)
        if held is None:
            unread.append('{}: no values in the window (it holds {}..{})'.format(
                chart, charts[chart].get('first_entry'), charts[chart].get('last_entry')))
            continue
        try:
            labels, rows = api.data(chart, held[0], held[1], points=held[2], group=group)
        except NetdataError as e:
            unread.append('{}: {}'.format(chart, e))
            continue
        seconds = max(1, int(round((rows[-1][0] - rows[0][0]) / (len(rows) - 1)))) if len(rows) > 1 else 1
        if held[2] and grouped is not None:
            grouped[chart] = seconds
        kind = chart.rsplit('.', 1)[0]   # the type: a job's name may hold dots ('10.0.0.5'), the id none
        job = kind[len('anomalies_'):] if kind.startswith('anomalies_') else ''
        for k, label in enumerate(labels):
            if label.endswith(suffix) and label != 'average_prob':
                model = label[:-len(suffix)]
                key = '{}/{}'.format(job, model) if job else model
                out[key], every[key] = [r[k + 1] if k + 1 < len(r) else None for r in rows], seconds
    return out, every


def top(api, after=-600, before=0, unread=None):
    """Ranked rows (``rank``), the longest row in seconds (1: every step as charted) and the
    first second the anomalies charts hold (``_held_since``); the charts that could not be read
    are appended to ``unread``."""
    unread = [] if unread is None else unread
    prob_charts, flag_charts = api.charts_of_context(PROB_CONTEXT), api.charts_of_context(FLAG_CONTEXT)
    if not prob_charts and not flag_charts:
        raise NetdataError('{} has no anomalies charts: is the anomalies collector running there?'.format(api.base_url))
    api.charts()   # the agent's now: the time most of its charts were last collected
    now = api.listed_at
    grouped = {}
    probs, every = _series(api, prob_charts, '_prob', after, before, unread, now, grouped=grouped)
    flags, flag_every = _series(api, flag_charts, '_anomaly', after, before, unread, now, grouped=grouped)
    maxima = None
    if any(c in grouped for c in prob_charts):   # grouped rows average a probability: ask for their highest too
        maxima, _ = _series(api, {c: prob_charts[c] for c in grouped if c in prob_charts}, '_prob', after, before,
                            [], now, group='max')
    every = dict(flag_every, **every)
    if not probs and not flags:
        raise NetdataError('no anomalies chart of {} could be read: {}'.format(api.base_url, '; '.join(unread)))
    return (rank(probs, flags, every, maxima), max(grouped.values(), default=1),
            _held_since(prob_charts, flag_charts))


def format_top(rows, limit=20, window='', grain=1):
    width = max([40] + [len(r['chart']) for r in rows[:limit]])
    lines = ['most anomalous charts{}'.format(' ' + window if window else ''),
             '{:>4}  {:<{w}} {:>10} {:>7} {:>10} {:>9}'.format('rank', 'chart', 'flagged_s', 'events', 'mean_prob%',
                                                              'max_prob%', w=width)]
    for i, r in enumerate(rows[:limit], 1):
        lines.append('{:>4}  {:<{w}} {:>10} {:>7} {:>10.1f} {:>9.1f}'.format(
            i, r['chart'], r['flagged_s'], r['flag_events'], r['mean_prob'], r['max_prob'], w=width))
    if len(rows) > limit:
        lines.append('      ... {} more'.format(len(rows) - limit))
    if grain > 1:
        lines.append('rows of {} s (the agent answers at most {} rows): flagged seconds from each row\'s flagged '
                     'share, events counted at that grain'.format(grain, MAX_ROWS))
    return '\n'.join(lines)


def _held_since(*charts):
    """The first second any of the anomalies ``charts`` (their /api/v1/charts entries) holds
    (None when none says), so a window longer than the job has run is not reported as if it had
    all been watched."""
    firsts = [c.get('first_entry') for listed in charts for c in listed.values()]
    firsts = [t for t in firsts if _is_time(t) and t > 0]
    return min(firsts) if firsts else None


def run(host, after=-600, before=0, limit=20, protocol='http', username=None, password=None, tls_verify=True):
    api = NetdataApi(host, protocol, username, password, tls_verify, timeout=30.0)
    unread = []
    try:
        rows, grain, since = top(api, after, before, unread)
    finally:
        api.close()
    if after < 0 and before == 0:
        when = 'over the last {} s'.format(-after)
        now = api.listed_at or time.time()
        if since is not None and now + after + 1 < since:   # a young job: say what the rows cover
            when += ' (the charts hold only its last {} s)'.format(max(0, int(now - since + 1)))
    else:   # as times, to set beside the dashboard's
        start, end = window(after, before, api.listed_at or time.time())
        when = 'from {} to {}'.format(*(time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(t)) for t in (start, end)))
    report = format_top(rows, limit, 'on {} {}'.format(host, when), grain)
    return report + ''.join('\nnot read: {}'.format(u) for u in unread)
