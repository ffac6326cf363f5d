"""The python.d job: configuration, charts and their dimensions, values per step.

``AnomaliesService`` is mixed into whichever ``SimpleService`` is present: Netdata's when
python.d.plugin loads ``anomalies.chart.py``, the project's own (``collector.pythond``)
when the job runs standalone. It only uses the part of the framework API both provide.
"""
import copy
import time

from .config import ConfigError, parse_job_config

PROB_SCALE = 10000   # probability 0..1 sent as hundredths of a percent (divisor 100)

ORDER = ['probability', 'anomaly']
CHARTS = {
    'probability': {
        'options': [None, 'Anomaly Probability', 'probability', 'anomalies', 'anomalies.probability', 'line'],
        'lines': [],
    },
    'anomaly': {
        'options': [None, 'Anomaly', 'count', 'anomalies', 'anomalies.anomaly', 'stacked'],
        'lines': [],
    },
}


def prob_dim(model_id):
    return '{}_prob'.format(model_id)


def anomaly_dim(model_id):
    return '{}_anomaly'.format(model_id)


def step_values(scores, include_average):
    """Chart values for one step: integers only, never NaN or inf (python.d int()s them)."""
    data, probs = {}, []
    for model_id, (p, flag) in scores.items():
        p = min(max(p, 0.0), 1.0) if p == p else 0.0
        probs.append(p)
        data[prob_dim(model_id)] = int(round(p * PROB_SCALE))
        data[anomaly_dim(model_id)] = 1 if flag else 0
    if include_average and probs:
        data['average_prob'] = int(round(sum(probs) / len(probs) * PROB_SCALE))
    return data


class AnomaliesService(object):
    """Per-chart ML anomaly detection job (see the module docstring)."""

    # how long to keep repeating the last values while the agent does not answer
    STALE_SECONDS = 60

    def __init__(self, configuration=None, name=None):
        super(AnomaliesService, self).__init__(configuration=configuration, name=name)
        self.order = list(ORDER)
        self.definitions = copy.deepcopy(CHARTS)
        self.job_config = None
        self.config_errors = []
        try:
            raw = dict(self.configuration)
            raw.setdefault('update_every', self.update_every)
            self.job_config = parse_job_config(raw, job_name=getattr(self, 'job_name', None))
        except ConfigError as e:
            self.config_errors = e.errors
        self.detector = None
        self.last_data = {}
        self.last_fresh = 0.0
        self.first_prediction_at = None
        self.started_at = time.monotonic()
        if self.job_config is not None and self.job_config.include_average_prob:
            self.definitions['probability']['lines'].append(['average_prob', 'average_prob', 'absolute', 1, 100])

    def check(self):
        if self.config_errors:
            for e in self.config_errors:
                self.error('configuration error, {}'.format(e))
            self.error('job not started: fix the configuration above')
            return False
        from .engine import AnomalyDetector
        try:
            self.detector = AnomalyDetector(self.job_config, self)
        except Exception as e:
            self.error('cannot start: {!r}'.format(e))
            return False
        cfg = self.job_config
        self.info('model={} charts_regex={!r} custom_models={} train_n_secs={} train_every_n={} lags_n={} '
                  'smooth_n={} diffs_n={} contamination={} calibration={}'.format(
                      cfg.model, cfg.charts_regex, len(cfg.custom_models), cfg.train_n_secs, cfg.train_every_n,
                      cfg.lags_n, cfg.smooth_n, cfg.diffs_n, cfg.contamination, cfg.calibration))
        self.detector.start()
        return True

    def _sync_dimensions(self, step):
        for model_id in step.removed:
            for chart, dim in (('probability', prob_dim(model_id)), ('anomaly', anomaly_dim(model_id))):
                if dim in self.charts[chart]:
                    self.charts[chart].del_dimension(dim, hide=False)
        for model_id in step.added:
            if prob_dim(model_id) not in self.charts['probability']:
                self.charts['probability'].add_dimension([prob_dim(model_id), prob_dim(model_id), 'absolute', 1, 100])
            if anomaly_dim(model_id) not in self.charts['anomaly']:
                self.charts['anomaly'].add_dimension([anomaly_dim(model_id), anomaly_dim(model_id), 'absolute', 1, 1])

    def get_data(self):
        if self.detector is None:
            return None
        try:
            step = self.detector.step()
        except Exception as e:  # a bug must not kill the job; log it and try again next step
            self.error('step failed: {!r}'.format(e))
            return self._stale()
        self._sync_dimensions(step)
        if not step.fresh:
            return self._stale()
        data = step_values(step.scores, self.job_config.include_average_prob)
        if not data:
            return None
        if self.first_prediction_at is None:
            self.first_prediction_at = time.monotonic()
            self.info('first prediction {:.1f}s after start'.format(self.first_prediction_at - self.started_at))
        self.last_data, self.last_fresh = data, time.monotonic()
        return data

    def _stale(self):
        if self.last_data and time.monotonic() - self.last_fresh < self.STALE_SECONDS:
            return dict(self.last_data)
        return None
