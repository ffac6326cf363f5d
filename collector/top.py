"""``python -m collector top``: the charts of one node ranked by how anomalous they were in a window.

Reads back what the collector stored in the agent (the anomalies.probability and
anomalies.anomaly charts of every job, or of one), like an anomaly advisor for one node: which
charts were flagged, for how long, and how unusual they looked. A job charts on the agent it
runs on: for a child read by a job on its parent, the parent's charts of that job are read.
"""
import time

import numpy as np

from .config import chart_type
from .hosts import node_read, titled_node
from .netdata_api import MAX_ROWS, NetdataApi, NetdataError, is_time
from .protocol import quotable

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
    if not all(is_time(t) and t > 0 for t in (first, last)):   # (0: listed, never collected)
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


def job_label(chart_id):
    """The job whose chart ``chart_id`` is, as its charts' type names it: '' for the job named
    like the module (type 'anomalies'), '<job>' for another ('anomalies_<job>'). A job's name
    may hold dots ('10.0.0.5'), a chart's id after its type none."""
    kind = chart_id.rsplit('.', 1)[0]
    return kind[len('anomalies_'):] if kind.startswith('anomalies_') else ''


def job_shown(label):
    return label or 'anomalies'


def jobs_of(*charts):
    """``{job label: the node it reads through a parent, or None}`` of the jobs whose charts
    (``{chart id: its /api/v1/charts entry}``) these are, as their titles tell it."""
    jobs = {}
    for listed in charts:
        for cid, c in listed.items():
            label = job_label(cid)
            jobs[label] = jobs.get(label) or titled_node(c.get('title') if isinstance(c, dict) else None)
    return jobs


def _local(t):
    """A unix time as the window's first line says its times (this machine's local time)."""
    return time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(t)) if is_time(t) else repr(t)


def _of_jobs(charts, labels):
    return {cid: c for cid, c in charts.items() if job_label(cid) in labels}


def _series(api, charts, suffix, after, before, unread, now=None, group=None, grouped=None, prefixed=True):
    """``({model: values}, {model: seconds per row})`` over every job's chart in ``charts``
    (``{chart id: its /api/v1/charts entry}``). A job other than the default one
    ('anomalies_<job>.probability') names its models '<job>/<model>' (``prefixed``, so two jobs
    with a system.cpu model stay two rows). A chart the agent lists but does not serve (a job
    stopped long ago), or holds nothing of in the window, is left out, and told in ``unread``;
    the charts read in grouped rows are added to ``grouped``."""
    out, every = {}, {}
    for chart in sorted(charts):
        held = _held(charts[chart], after, before, now)
        if held is None:
            unread.append('{}: no values in the window (it holds {} to {})'.format(
                chart, *(_local(charts[chart].get(k)) for k in ('first_entry', 'last_entry'))))
            continue
        try:
            labels, rows = api.data(chart, held[0], held[1], points=held[2], group=group)
        except NetdataError as e:
            unread.append('{}: {}'.format(chart, e))
            continue
        if len(rows) > 1:
            seconds = max(1, int(round((rows[-1][0] - rows[0][0]) / (len(rows) - 1))))
        else:   # one row: as long as the chart's steps (a job stepping every 5 s, a window of 5 s)
            seconds = charts[chart].get('update_every')
            seconds = seconds if isinstance(seconds, int) and not isinstance(seconds, bool) and seconds > 0 else 1
        if held[2] and grouped is not None:
            grouped[chart] = seconds
        job = job_label(chart) if prefixed else ''
        for k, label in enumerate(labels):
            if label.endswith(suffix) and label != 'average_prob':
                model = label[:-len(suffix)]
                key = '{}/{}'.format(job, model) if job else model
                out[key], every[key] = [r[k + 1] if k + 1 < len(r) else None for r in rows], seconds
    return out, every


def _anomalies_charts(api):
    return api.charts_of_context(PROB_CONTEXT), api.charts_of_context(FLAG_CONTEXT)


def _listed(jobs):
    """'anomalies, child1 (node child1)': the jobs charting on an agent, and the node each reads."""
    return ', '.join('{}{}'.format(job_shown(j), ' (node {})'.format(n) if n else '')
                     for j, n in sorted(jobs.items())) or 'none'


def _job_label(job):
    """The label (``job_label``) of the charts of the job named ``job``, as python.d names them."""
    return job_label(chart_type(job) + '.')


def _no_charts(api, job, parent=None, child=None):
    """The error for an agent (``api``) with no anomalies charts (of ``job``, when given); for
    a child (``api`` on 'parent/host/child'), where the charts of a job on its ``parent``
    reading it are."""
    base = '{} has no anomalies charts{}'.format(
        api.base_url, ' of job {} (charts {}.*)'.format(job, chart_type(job)) if job else '')
    if parent is None:
        try:
            jobs = jobs_of(*_anomalies_charts(api)) if job else None
        except NetdataError:
            jobs = None
        if jobs:
            return NetdataError('{}: jobs charting there: {}'.format(base, _listed(jobs)))
        return NetdataError(base + ': is the anomalies collector running there?')
    try:
        jobs = jobs_of(*_anomalies_charts(parent))
        listed = 'jobs charting on {}: {}'.format(parent.host, _listed(jobs))
    except NetdataError as e:
        jobs, listed = {}, 'its charts not read: {}'.format(e)
    readers = sorted(job_shown(j) for j, n in jobs.items() if n == quotable(child))
    if readers:   # (not the job asked for)
        return NetdataError('{}; on {}, {} {} {} node {!r}: python -m collector top --host {}/host/{} --job {}'.format(
            base, parent.host, 'jobs' if len(readers) > 1 else 'job', ', '.join(readers),
            'read' if len(readers) > 1 else 'reads', child, parent.host, child, readers[0]))
    return NetdataError(
        "{}, and no {} on {} names node {!r} in its charts' titles. A job on a parent that reads a child (host: "
        "'{}/host/{}') charts on the parent, not on the child: python -m collector top --host {} --job {} "
        "({})".format(base, 'job {}'.format(job) if job else 'job', parent.host, child, parent.host, child,
                       parent.host, job or 'JOB', listed))


def top(api, after=-600, before=0, unread=None, job=None, parent=None, read=None):
    """Ranked rows (``rank``), the longest row in seconds (1: every step as charted) and the
    first second the anomalies charts hold (``_held_since``); the charts that could not be read
    are appended to ``unread``.

    ``job``: only that job's charts (its name as python.d runs it: its name key, else the
    job's). ``parent``: the agent holding ``api``'s node (``api`` on 'parent/host/child'):
    where the node has no anomalies charts (of ``job``), those of the jobs on the parent that
    read it (their titles say so) are ranked. ``read`` (a dict) is told what was read: 'api',
    the agent whose charts were; 'jobs', ``{job label: node}`` of the jobs ranked; 'one',
    whether the rows name models without their job."""
    unread = [] if unread is None else unread
    read = {} if read is None else read
    want = None if job is None else {_job_label(job)}
    prob_charts, flag_charts = _anomalies_charts(api)
    if want is not None:
        prob_charts, flag_charts = _of_jobs(prob_charts, want), _of_jobs(flag_charts, want)
    if not prob_charts and not flag_charts:
        child = node_read(api.host)
        if parent is None or child is None:
            raise _no_charts(api, job)
        probs, flags = _anomalies_charts(parent)
        reading = {j for j, n in jobs_of(probs, flags).items() if n == quotable(child) and (want is None or j in want)}
        if not reading:
            raise _no_charts(api, job, parent, child)
        api, prob_charts, flag_charts = parent, _of_jobs(probs, reading), _of_jobs(flags, reading)
    read['api'], read['jobs'] = api, jobs_of(prob_charts, flag_charts)
    read['one'] = one = want is not None or (api is parent and len(read['jobs']) == 1)
    api.charts()   # the agent's now: the time most of its charts were last collected
    now = api.listed_at
    if now and (after > 0) != (before > 0):   # a time beside seconds back from now: now is the agent's
        start, end = window(after, before, now)
        if start > end:
            raise NetdataError('the window (--after {} --before {}) is {} to {} on the agent\'s clock, which reads '
                               '{}: it ends before it starts'.format(after, before, _local(start), _local(end),
                                                                    _local(now)))
    grouped = {}
    probs, every = _series(api, prob_charts, '_prob', after, before, unread, now, grouped=grouped, prefixed=not one)
    flags, flag_every = _series(api, flag_charts, '_anomaly', after, before, unread, now, grouped=grouped,
                                prefixed=not one)
    maxima = None
    if any(c in grouped for c in prob_charts):   # grouped rows average a probability: ask for their highest too
        maxima, _ = _series(api, {c: prob_charts[c] for c in grouped if c in prob_charts}, '_prob', after, before,
                            [], now, group='max', prefixed=not one)
    every = dict(flag_every, **every)
    if not probs and not flags:
        if not unread:   # read, with no model's dimension: a job still waiting for history to train on
            raise NetdataError('the anomalies charts of {} ({}) have no model yet: a job charts a model once it has '
                               'trained it, on train_min_n_secs of history (300 s by default)'.format(
                                   api.base_url, ', '.join(sorted(set(prob_charts) | set(flag_charts)))))
        raise NetdataError('no anomalies chart of {} could be read: {}'.format(api.base_url, '; '.join(unread)))
    return (rank(probs, flags, every, maxima), max(grouped.values(), default=1),
            _held_since(prob_charts, flag_charts))


def format_top(rows, limit=20, window='', grain=1, note=''):
    width = max([40] + [len(r['chart']) for r in rows[:limit]])
    lines = ['most anomalous charts{}'.format(' ' + window if window else ''),
             '{:>4}  {:<{w}} {:>10} {:>7} {:>10} {:>9}'.format('rank', 'chart', 'flagged_s', 'events', 'mean_prob%',
                                                              'max_prob%', w=width)]
    for i, r in enumerate(rows[:limit], 1):
        lines.append('{:>4}  {:<{w}} {:>10} {:>7} {:>10.1f} {:>9.1f}'.format(
            i, r['chart'], r['flagged_s'], r['flag_events'], r['mean_prob'], r['max_prob'], w=width))
    if len(rows) > limit:
        lines.append('      ... {} more'.format(len(rows) - limit))
    if note:
        lines.append(note)
    if grain > 1:
        lines.append('rows of {} s (the agent answers at most {} rows): flagged seconds from each row\'s flagged '
                     'share, events counted at that grain'.format(grain, MAX_ROWS))
    return '\n'.join(lines)


def _held_since(*charts):
    """The first second any of the anomalies ``charts`` (their /api/v1/charts entries) holds
    (None when none says), so a window longer than the job has run is not reported as if it had
    all been watched."""
    firsts = [c.get('first_entry') for listed in charts for c in listed.values()]
    firsts = [t for t in firsts if is_time(t) and t > 0]
    return min(firsts) if firsts else None


def _whose(read, host):
    """What the first line says was read: 'on HOST', or which job's charts on which agent."""
    api, jobs = read['api'], read['jobs']
    if not read['one'] and api.host == host:
        return 'on {}'.format(host)
    names = ', '.join(job_shown(j) for j in sorted(jobs))
    nodes = sorted({n for n in jobs.values() if n})
    if api.host == host:
        return 'of job {} on {}'.format(names, host)
    return 'of job{} {} on {} ({} node {})'.format('s' if len(jobs) > 1 else '', names, api.host,
                                                  'they read' if len(jobs) > 1 else 'it reads', ', '.join(nodes))


def _together(read):
    """A line telling that the charts of several jobs are ranked in one list, or ''."""
    if read['one'] or len(read['jobs']) < 2:
        return ''
    return ('jobs ranked together: {}; the charts of a job other than anomalies are shown as job/chart: --job JOB '
            'ranks one job\'s'.format(_listed(read['jobs'])))


def run(host, after=-600, before=0, limit=20, protocol='http', username=None, password=None, tls_verify=True,
        job=None):
    api = NetdataApi(host, protocol, username, password, tls_verify, timeout=30.0)
    # a child ('parent:19999/host/child'): the jobs reading it on its parent chart there
    parent = NetdataApi(host.partition('/')[0], protocol, username, password, tls_verify,
                        timeout=30.0) if node_read(host) else None
    unread, read = [], {}
    try:
        rows, grain, since = top(api, after, before, unread, job, parent, read)
    finally:
        for agent in (api, parent):
            if agent is not None:
                agent.close()
    listed_at = read['api'].listed_at
    if after < 0 and before == 0:
        when = 'over the last {} s'.format(-after)
        now = listed_at or time.time()
        if since is not None and now + after + 1 < since:   # a young job: say what the rows cover
            when += ' (the charts hold only its last {} s)'.format(max(0, int(now - since + 1)))
    else:   # as times, to set beside the dashboard's
        start, end = window(after, before, listed_at or time.time())
        when = 'from {} to {}'.format(_local(start), _local(end))
        if since is not None and start < since:   # a window begun before the job: not all of it watched
            when += ' (the charts hold values from {} on)'.format(_local(since))
    report = format_top(rows, limit, '{} {}'.format(_whose(read, host), when), grain, _together(read))
    return report + ''.join('\nnot read: {}'.format(u) for u in unread)
