"""Anomaly metrics for Prometheus: a node-exporter textfile and/or a ``/metrics`` endpoint.

Both serve the same gauges, built by ``prometheus_client`` (imported only when one of the
two is configured): ``anomaly_probability{chart}`` (0..1), ``anomaly_flag{chart}`` (0/1),
``anomaly_rate`` (share of models flagged now) and ``anomaly_last_update_timestamp_seconds``
(so an alert can tell values that stopped changing from values that are fresh). Every series
carries the job's name as ``anomalies_job``, so two jobs on one node do not collide. The
textfile is written to a temporary file beside it and renamed over it, so node-exporter never
reads half a file.
"""
import time

from .files import write_atomically

HELP = {
    'anomaly_probability': 'Anomaly probability of a model as charted (0..1): by default the share of its '
                           'training steps less unusual than now.',
    'anomaly_flag': 'Anomaly flag of a model (1 while flagged, after the flag policy).',
    'anomaly_rate': "Share of this node's anomaly models flagged now (0..1).",
    'anomaly_last_update_timestamp_seconds': 'When the values above were last updated (unix seconds).',
}


class Exporter:
    """Holds the newest step's values; writes the textfile and answers scrapes from them."""

    def __init__(self, textfile=None, port=None, address='127.0.0.1', logger=None, job='anomalies'):
        from prometheus_client import CollectorRegistry
        self.textfile = textfile
        self.log = logger
        self.job = job or 'anomalies'
        self.scores, self.rate, self.updated = {}, 0.0, None
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

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily
        prob = GaugeMetricFamily('anomaly_probability', HELP['anomaly_probability'], labels=['anomalies_job', 'chart'])
        flag = GaugeMetricFamily('anomaly_flag', HELP['anomaly_flag'], labels=['anomalies_job', 'chart'])
        for model_id, (p, f) in sorted(self.scores.items()):
            prob.add_metric([self.job, model_id], p)
            flag.add_metric([self.job, model_id], f)
        yield prob
        yield flag
        rate = GaugeMetricFamily('anomaly_rate', HELP['anomaly_rate'], labels=['anomalies_job'])
        rate.add_metric([self.job], self.rate)
        yield rate
        if self.updated is not None:
            when = GaugeMetricFamily('anomaly_last_update_timestamp_seconds',
                                     HELP['anomaly_last_update_timestamp_seconds'], labels=['anomalies_job'])
            when.add_metric([self.job], self.updated)
            yield when

    def text(self):
        from prometheus_client import generate_latest
        return generate_latest(self.registry)

    def update(self, scores, rate):
        """Take this step's ``{model_id: (probability, flag)}`` and node rate; rewrite the textfile."""
        self.scores, self.rate, self.updated = dict(scores), float(rate), time.time()
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

