"""Anomaly metrics for Prometheus: a node-exporter textfile and/or a ``/metrics`` endpoint.

Both serve the same gauges, built by ``prometheus_client`` (imported only when one of the
two is configured): ``anomaly_probability{chart}`` (0..1), ``anomaly_flag{chart}`` (0/1),
``anomaly_rate`` (share of models flagged now), the two values the stock health alarms watch
(``anomaly_rate_1m``, ``anomaly_flag_longest_seconds``) and the longest flag of the last minute
(``anomaly_flag_longest_1m_seconds``), so a Prometheus alert rule can say what they say, the
counter ``anomaly_flagged_seconds_total{chart}`` (a 0/1 gauge scraped every 15 s misses most
flags of a few seconds; the counter's increase over any range shows each), and
``anomaly_last_update_timestamp_seconds`` (so an alert can tell values that
stopped changing from values that are fresh; until the job's first scores, the time it started,
and no node gauge: a job that never scores must not read as a quiet node). Every series
carries the job's name as ``anomalies_job``, so two jobs on one node do not collide. The
textfile is written to a temporary file beside it and renamed over it, so node-exporter never
reads half a file; a standalone run removes it as it stops, so node-exporter does not go on
serving its last values (python.d.plugin kills its jobs: there the alert rules' freshness
check does that).
"""
import collections
import contextlib
import os
import threading
import time

from .files import write_atomically

HELP = {
    'anomaly_probability': 'Anomaly probability of a model as charted (0..1): by default the share of its '
                           'training steps less unusual than now.',
    'anomaly_flag': 'Anomaly flag of a model (1 while flagged, after the flag policy).',
    'anomaly_rate': "Share of this node's anomaly models flagged now (0..1).",
    'anomaly_rate_1m': "Share of this node's anomaly models flagged at some step of the last minute (0..1): "
                       "what the health alarm anomalies_node_rate watches.",
    'anomaly_flag_longest_seconds': "How long the longest-running anomaly flag of this node has been up (seconds): "
                                    "what the health alarm anomalies_flag_lasting watches.",
    'anomaly_flag_longest_1m_seconds': "The longest an anomaly flag of this node had been up at some step of the "
                                       "last minute (seconds): anomaly_flag_longest_seconds as a scrape every 15 s "
                                       "cannot miss it, what the alert rule AnomaliesFlagLasting watches.",
    'anomaly_flagged_seconds_total': 'Seconds a model has been flagged since the job started: its increase over a '
                                     'range shows every flag in it, however short.',
    'anomaly_last_update_timestamp_seconds': 'When the values above were last updated (unix seconds); '
                                             'until the first, when the job started.',
}


# textfile path -> the job writing it: python.d runs every job in one process, and two jobs on
# one file would each overwrite the other's series at every step (and remove it as they stop)
_TEXTFILES = {}
_TEXTFILES_LOCK = threading.Lock()


def _claim_textfile(path, job):
    with _TEXTFILES_LOCK:
        holder = _TEXTFILES.setdefault(os.path.abspath(path), job)
    if holder != job:
        raise ValueError('prometheus_textfile {} is written by job {} already: give each job its own file'.format(
            path, holder))


def _release_textfile(path, job):
    with _TEXTFILES_LOCK:
        if _TEXTFILES.get(os.path.abspath(path)) == job:
            del _TEXTFILES[os.path.abspath(path)]


# how long a flag's age stays in anomaly_flag_longest_1m_seconds, as anomaly_rate_1m's window
RECENT_SECONDS = 60
# a model's flagged seconds are kept this long after its last score (a chart whose values are
# late for a while keeps its counter; one whose model was removed has it dropped)
FORGET_SECONDS = 600


def node_gauges(rate, rate_1m, longest, longest_1m):
    """The node-level gauges' values by name, as ``Exporter.update`` takes them."""
    return {'anomaly_rate': float(rate), 'anomaly_rate_1m': float(rate_1m),
            'anomaly_flag_longest_seconds': float(longest), 'anomaly_flag_longest_1m_seconds': float(longest_1m)}


class Exporter:
    """Holds the newest step's values; writes the textfile and answers scrapes from them."""

    def __init__(self, textfile=None, port=None, address='127.0.0.1', logger=None, job='anomalies'):
        from prometheus_client import CollectorRegistry
        self.textfile = textfile
        self.log = logger
        self.job = job or 'anomalies'
        if textfile:
            _claim_textfile(textfile, self.job)
        # (scores, node gauges, unix time): one tuple, swapped whole by update(), so a scrape
        # on the server's thread never pairs two steps' values; no node gauges before the first
        self.state = ({}, {}, {}, time.time())
        self.flagged_seconds = {}   # model id -> [seconds flagged, monotonic time last scored]
        self.longest_at = collections.deque()   # (monotonic time, longest flag's age) of the last minute
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self.write_error = None
        self.server = None
        self.serve_error = None   # the port could not be served: the textfile still is written
        if port:
            from prometheus_client import start_http_server
            try:
                result = start_http_server(port, addr=address, registry=self.registry)
                self.server = result[0] if isinstance(result, tuple) else None
            except OSError as e:  # the port is taken, or the address is not this host's
                if not textfile:
                    raise
                self.serve_error = e
            except BaseException:
                if textfile:
                    _release_textfile(textfile, self.job)
                raise
        self._write()   # a job that never scores shows as one that does not update

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily
        from prometheus_client.core import CounterMetricFamily
        scores, node, flagged, updated = self.state
        prob = GaugeMetricFamily('anomaly_probability', HELP['anomaly_probability'], labels=['anomalies_job', 'chart'])
        flag = GaugeMetricFamily('anomaly_flag', HELP['anomaly_flag'], labels=['anomalies_job', 'chart'])
        for model_id, (p, f) in sorted(scores.items()):
            prob.add_metric([self.job, model_id], p)
            flag.add_metric([self.job, model_id], f)
        yield prob
        yield flag
        if flagged:
            total = CounterMetricFamily('anomaly_flagged_seconds', HELP['anomaly_flagged_seconds_total'],
                                        labels=['anomalies_job', 'chart'])
            for model_id, seconds in sorted(flagged.items()):
                total.add_metric([self.job, model_id], seconds)
            yield total
        for name, value in node.items():
            gauge = GaugeMetricFamily(name, HELP[name], labels=['anomalies_job'])
            gauge.add_metric([self.job], value)
            yield gauge
        when = GaugeMetricFamily('anomaly_last_update_timestamp_seconds',
                                 HELP['anomaly_last_update_timestamp_seconds'], labels=['anomalies_job'])
        when.add_metric([self.job], updated)
        yield when

    def text(self):
        from prometheus_client import generate_latest
        return generate_latest(self.registry)

    def update(self, scores, rate, rate_1m, longest, seconds=1):
        """Take this step's ``{model_id: (probability, flag)}`` and node values; rewrite the textfile.

        ``rate``: share of models flagged now; ``rate_1m``: at some step of the last minute;
        ``longest``: seconds the longest-running flag has been up; ``seconds``: the step's
        length (update_every), which a flagged model adds to its flagged seconds.
        """
        now = time.monotonic()
        for model_id, (_, f) in scores.items():
            counted = self.flagged_seconds.setdefault(model_id, [0.0, now])
            counted[0] += seconds if f else 0
            counted[1] = now
        if len(self.flagged_seconds) > len(scores):   # (some model not scored now: most steps, none)
            for model_id in [m for m, (_, at) in self.flagged_seconds.items() if now - at > FORGET_SECONDS]:
                del self.flagged_seconds[model_id]
        self.longest_at.append((now, float(longest)))
        while now - self.longest_at[0][0] >= RECENT_SECONDS:
            self.longest_at.popleft()
        longest_1m = max(age for _, age in self.longest_at)
        flagged = {m: counted[0] for m, counted in self.flagged_seconds.items()}
        self.state = (dict(scores), node_gauges(rate, rate_1m, longest, longest_1m), flagged, time.time())
        self._write()

    def _write(self):
        if self.textfile:
            try:
                write_atomically(self.textfile, self.text())
                if self.write_error and self.log:
                    self.log.info('prometheus textfile {} written again'.format(self.textfile))
                self.write_error = None
            except OSError as e:
                message = 'cannot write prometheus textfile {}: {}'.format(self.textfile, e.strerror or e)
                if message != self.write_error and self.log:
                    self.log.error(message)
                self.write_error = message

    def close(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self.textfile:   # node-exporter would serve its last values for as long as it is there
            with contextlib.suppress(OSError):
                os.unlink(self.textfile)
            _release_textfile(self.textfile, self.job)

