"""The python.d job: configuration, charts and their dimensions, values per step.

``AnomaliesService`` is mixed into whichever ``SimpleService`` is present: Netdata's when
python.d.plugin loads ``anomalies.chart.py``, the project's own (``collector.pythond``)
when the job runs standalone. It only uses the part of the framework API both provide.
"""
import collections
import copy
import functools
import time

from . import timings
from .config import DRIVERS_ID_MAX, ConfigError, chart_type, drivers_id_max, parse_job_config, served_name
from .config_file import pythond_file_notes
from .config_warnings import config_warnings
from .hosts import node_read, node_title
from .netdata_api import split_key
from .node import NodeRate
from .pace import Pace
from .protocol import bounded_id, one_line, quotable
from .pythond import SimpleService as OwnSimpleService

PROB_SCALE = 10000   # probability 0..1 sent as hundredths of a percent (divisor 100)

ORDER = ['probability', 'anomaly', 'rate', 'flagged_for']
RATE_WINDOW_SECONDS = 60   # the node anomaly rate's rolling average, and the window of its share flagged
# steps of slack over the steps since the node view's last update: the agent's clock moving on
# further in that time was set forward, and does not age the flags (timings.GAP_STEPS is its gap)
CLOCK_SLACK_STEPS = 5
# get_data's answer when the job has no model left: data (so python.d counts the updates its charts
# go without a value) for no dimension of any of its charts (no dimension id holds a newline)
NO_VALUES = {'\n': 0}
CHARTS = {
    'probability': {
        'options': [None, 'Anomaly Probability', 'percentage', 'anomalies', 'anomalies.probability', 'line'],
        'lines': [],
    },
    'anomaly': {
        'options': [None, 'Anomaly', 'count', 'anomalies', 'anomalies.anomaly', 'stacked'],
        'lines': [],
    },
    'rate': {
        'options': [None, 'Node Anomaly Rate: share of models flagged', 'percentage', 'anomalies',
                    'anomalies.rate', 'line'],
        'lines': [['flagged', 'flagged', 'absolute', 1, 100], ['flagged_avg', 'flagged_avg', 'absolute', 1, 100],
                  ['flagged_1m', 'flagged_1m', 'absolute', 1, 100]],
    },
    'flagged_for': {
        'options': [None, 'Longest Running Anomaly Flag', 'seconds', 'anomalies', 'anomalies.flagged_for', 'line'],
        'lines': [['longest', 'longest', 'absolute', 1, 1]],
    },
}


def prob_dim(model_id):
    """The id (and name) of a model's dimension on the probability chart: python.d.plugin writes
    it inside single quotes as it is, so it has none of its own (``quotable``)."""
    return '{}_prob'.format(quotable(model_id))


def anomaly_dim(model_id):
    return '{}_anomaly'.format(quotable(model_id))


def drivers_chart(model_id, limit=DRIVERS_ID_MAX):
    """The id of a model's drivers chart: its own for each model (a custom model 'system_cpu'
    beside the chart system.cpu), and short enough for the agent: ``limit`` is what the job's
    name leaves of its 199 characters (``drivers_id_max``)."""
    return 'drivers_' + bounded_id(model_id, limit)


def driver_dim(model_id, column, with_node=False):
    """``(id, name)`` of a column's dimension on a drivers chart: ``chart|dim`` and ``dim`` for a
    chart's model; a custom model (whose columns come from other charts) prefixes its name,
    as dimension ids are global to a job. ``with_node``: the id keeps the column's node (a
    chart and dimension the model has from two nodes stay two)."""
    host, chart, dim = split_key(column)
    chart_dim = '{}|{}'.format(chart, dim)
    if with_node:
        chart_dim = '{}::{}'.format(host, chart_dim)
    elif chart == model_id:
        return quotable(chart_dim), quotable(dim)
    return quotable('{}|{}'.format(model_id, chart_dim)), quotable(chart_dim)


def driver_dims(model_id, columns):
    """``{column: (id, name)}`` of a model's columns on its drivers chart."""
    keys = [split_key(c)[1:] for c in columns]
    seen = collections.Counter(keys)
    return {c: driver_dim(model_id, c, seen[k] > 1) for c, k in zip(columns, keys)}


@functools.lru_cache(maxsize=8192)
def _dims(model_id):
    return prob_dim(model_id), anomaly_dim(model_id)


def step_values(scores, include_average, node=None):
    """Chart values for one step: integers only, never NaN or inf (python.d int()s them).

    ``node``: the ``node.NodeStep`` of this step.
    """
    data, total = {}, 0.0
    for model_id, (p, flag) in scores.items():
        if not 0.0 <= p <= 1.0:
            p = min(max(p, 0.0), 1.0) if p == p else 0.0
        total += p
        prob, anomaly = _dims(model_id)
        data[prob] = int(round(p * PROB_SCALE))
        data[anomaly] = 1 if flag else 0
    if include_average and scores:
        data['average_prob'] = int(round(total / len(scores) * PROB_SCALE))
    if node is not None:
        data['flagged'] = int(round(node.rate * PROB_SCALE))
        data['flagged_avg'] = int(round(node.rolling * PROB_SCALE))
        data['flagged_1m'] = int(round(node.recent * PROB_SCALE))
        data['longest'] = int(node.longest)
    return data


def describe_drivers(drivers, top=3):
    """``user 81%, system 12%``: the dimensions driving a flag, for the log line; ``chart|dim``
    when the model's dimensions come from several charts (a custom model), ``node::chart|dim``
    from several nodes, decided over all of them, not only the few named."""
    keys = [split_key(column) for column, _ in drivers]
    charts, hosts = len({(h, c) for h, c, _ in keys}) > 1, len({h for h, _, _ in keys}) > 1
    parts = ['{} {:.0f}%'.format('{}::{}|{}'.format(h, c, d) if hosts else '{}|{}'.format(c, d) if charts else d,
                                 share * 100)
             for (h, c, d), (_, share) in zip(keys[:top], drivers)]
    return ', '.join(parts) or 'no dimension stands out'


def _each_on_one_line(msg):
    return tuple(one_line(m) for m in msg)


def _made_obsolete(chart):
    """Whether the framework declared ``chart`` obsolete (python.d's chart, else the standalone
    base's), or never declared it at all."""
    flags = getattr(chart, 'flags', None)
    if flags is not None:
        return flags.obsoleted or not flags.created
    return not chart.declared or bool(chart.cleanup) and chart.idle >= chart.cleanup


class AnomaliesService(object):
    """Per-chart ML anomaly detection job (see the module docstring)."""

    def __init__(self, configuration=None, name=None):
        # python.d.plugin's base takes update_every out of the configuration as an int (2.5 runs
        # as 2): the value given, checked as check-config checks it
        given_every = configuration.get('update_every') if isinstance(configuration, dict) else None
        super(AnomaliesService, self).__init__(configuration=configuration, name=name)
        self.order = list(ORDER)
        self.definitions = copy.deepcopy(CHARTS)
        self.job_config = None
        self.config_errors = []
        self.told_config_errors = False   # (said at the first check)
        self.told_file_notes = False     # (the config file's notes, under python.d: said at the first check)
        try:
            raw = dict(self.configuration)
            raw.setdefault('update_every', self.update_every if given_every is None else given_every)
            # python.d.plugin's base takes these out of the job's configuration for its charts;
            # one it cannot use (quoted: '1000') fails the job's create() or its every update with
            # a TypeError, after this check: checked here too, as check-config checks them
            for key, attr in (('priority', 'priority'), ('chart_cleanup', 'cleanup')):
                if key not in raw and hasattr(getattr(self, 'charts', None), attr):
                    raw[key] = getattr(self.charts, attr)
            # and 'penalty' into its counters: quoted ('no') it is text, which python.d takes as true
            counters = getattr(self, '_runtime_counters', None)
            if 'penalty' not in raw and hasattr(counters, 'do_penalty'):
                raw['penalty'] = counters.do_penalty
            override = getattr(self, 'override_name', None)   # python.d takes the 'name' key out
            if isinstance(override, str) and override:
                raw.setdefault('override_name', override)
            self.job_config = parse_job_config(raw, job_name=getattr(self, 'job_name', None))
        except ConfigError as e:
            self.config_errors = e.errors
        # the name python.d charts the job under: its 'name' key, else the job's
        self.served_as = served_name(getattr(self, 'job_name', None) or 'anomalies',
                                     {'name': getattr(self, 'override_name', None)})
        self.drivers_limit = drivers_id_max(chart_type(self.served_as))
        self.detector = None
        self.last_data = {}
        self.last_fresh = 0.0
        self.first_prediction_at = None
        self.answered_steps = 0       # steps at which the agent answered (a model or not)
        self.started_at = time.monotonic()
        self.node = NodeRate(-(-RATE_WINDOW_SECONDS // max(1, self.update_every)))   # a minute or more
        self.node_steps = 0           # steps since the node view was last updated
        self.pace = Pace(max(1, self.update_every))   # whether the steps keep up with update_every
        self.exporter = None
        self.drivers_refused = set()  # models whose drivers chart the framework refused (told once)
        self.driver_ids = {}          # model id -> (its fitted model, its driver_dims)
        self.retiring = {}            # drivers chart of a removed model -> updates since
        if self.job_config is not None and self.job_config.include_average_prob:
            self.definitions['probability']['lines'].append(['average_prob', 'average_prob', 'absolute', 1, 100])
        # a job reading a child through its parent charts on the parent: its titles name the child
        self.reads = self.job_config.host if self.job_config is not None else None
        for chart in self.definitions.values():
            chart['options'][1] = node_title(chart['options'][1], self.reads)
        node = node_read(self.reads)
        self.of_node = ' of {}'.format(one_line(node)) if node else ''   # in its log lines

    # --- log lines: what names a chart, a dimension or the agent's GUID in them is the agent's
    # data (a proxy's, a streamed child's); a newline in it would start a line that reads as
    # python.d's own, an escape sequence reach the terminal of whoever tails the log ---
    def debug(self, *msg):
        super(AnomaliesService, self).debug(*_each_on_one_line(msg))

    def info(self, *msg):
        super(AnomaliesService, self).info(*_each_on_one_line(msg))

    def warning(self, *msg):
        super(AnomaliesService, self).warning(*_each_on_one_line(msg))

    def error(self, *msg):
        super(AnomaliesService, self).error(*_each_on_one_line(msg))

    def check(self):
        if not isinstance(self, OwnSimpleService) and not self.told_file_notes:
            # under python.d (the standalone runner tells these itself), whether the job's own
            # keys pass or not: the first job's check may fail on its own key
            self.told_file_notes = True
            path, notes = pythond_file_notes(job_name=getattr(self, 'job_name', None) or 'anomalies')
            for line in notes:
                self.warning('{}: {}'.format(path, line))
        if self.config_errors:
            under_pythond = not isinstance(self, OwnSimpleService)
            if self.told_config_errors and under_pythond:
                # python.d.plugin checks a job whose check failed again every autodetection_retry
                # seconds; its configuration, read once at its start, is what failed it: with 1,
                # the same lines every second for good. A check that raises has the job dropped
                raise ConfigError(['the configuration errors said when it was first checked stay until '
                                   'python.d.plugin restarts, so the job is dropped rather than checked again'])
            self.told_config_errors = True
            for e in self.config_errors:
                self.error('configuration error, {}'.format(e))
            self.error('job not started: fix the configuration above')
            retry = self.configuration.get('autodetection_retry', 0)
            if under_pythond and not isinstance(retry, (int, float)):
                # and it stops on an autodetection_retry that is no number (with every module's jobs)
                raise ConfigError(["key 'autodetection_retry': {!r} is no number, so the job is dropped rather than "
                                   "checked again".format(retry)])
            return False
        from .engine import AnomalyDetector
        try:
            self.detector = AnomalyDetector(self.job_config, self)
        except Exception as e:
            self.error('cannot start: {!r}'.format(e))
            return False
        cfg = self.job_config
        window = ''.join(' {}={}'.format(k, v) for k, v in (
            ('offset_n_secs', cfg.offset_n_secs), ('initial_train_data_after', cfg.initial_train_data_after),
            ('initial_train_data_before', cfg.initial_train_data_before)) if v)   # (said only when set)
        self.info('host={} model={} charts_regex={!r} custom_models={} update_every={} train_n_secs={} '
                  'train_min_n_secs={} '
                  'train_every_n={} train_max_n={}{} lags_n={} smooth_n={} diffs_n={} level_features={} despike={} '
                  'level_squash={:g} contamination={} calibration={} flag={}/{} hold={} rearm={} lasting={}'.format(
                      cfg.host, cfg.model, cfg.charts_regex, len(cfg.custom_models), cfg.update_every,
                      cfg.train_n_secs,
                      cfg.train_min_n_secs, cfg.train_every_n, cfg.train_max_n, window, cfg.lags_n, cfg.smooth_n,
                      cfg.diffs_n, cfg.level_features, cfg.despike, cfg.level_squash, cfg.contamination,
                      cfg.calibration, cfg.flag_min_n, cfg.flag_window_n, cfg.flag_hold_probability, cfg.flag_rearm_n,
                      cfg.flag_lasting_n))
        for line in config_warnings(cfg):
            self.warning(line)
        if not cfg.train_every_n:
            self.info('train_every_n 0: models are trained once (and charts that appear, when they do), never '
                      'retrained')
        return True

    def create(self):
        """The charts, then what the job starts: its training and its Prometheus export.
        python.d.plugin creates a job only once it holds the job's lock, and drops one another
        python.d process serves (a ``python.d.plugin debug`` run beside the agent's) after its
        check(): started there, they outlived the job."""
        made = super(AnomaliesService, self).create()
        if self.detector is not None and not self.detector.started:
            self.exporter = self._start_exporter(self.job_config)
            try:
                self.detector.start()
            except BaseException:   # python.d drops a job whose create() raises: nothing of it goes on
                if self.exporter is not None:
                    self.exporter.close()
                    self.exporter = None
                self.detector.close()
                raise
        return made

    def _start_exporter(self, cfg):
        """Prometheus textfile and/or port, when configured; a failure is logged, never fatal."""
        if not cfg.prometheus_textfile and not cfg.prometheus_port:
            return None
        # an IPv6 address in brackets, as in a URL
        host = '[{}]'.format(cfg.prometheus_address) if ':' in cfg.prometheus_address else cfg.prometheus_address
        url = 'http://{}:{}/metrics'.format(host, cfg.prometheus_port)
        try:
            from .prometheus import Exporter
            exporter = Exporter(cfg.prometheus_textfile, cfg.prometheus_port, cfg.prometheus_address, logger=self,
                                job=self.served_as)
        except OSError as e:  # the port is taken, or the address is not this host's: say which
            self.error('prometheus export disabled: cannot serve {} (prometheus_address, prometheus_port): '
                       '{!r}'.format(url, e))
            return None
        except Exception as e:  # no prometheus_client, a file another job writes ...
            self.error('prometheus export disabled: {}'.format(e if isinstance(e, ValueError) else repr(e)))
            return None
        if exporter.serve_error is not None:   # (only beside a textfile: without one the port's error is raised)
            e = exporter.serve_error
            self.error('prometheus /metrics on {}:{} disabled: {}; the textfile {}'.format(
                host, cfg.prometheus_port, getattr(e, 'strerror', None) or repr(e),
                'is written from the first step it can be (the error above)' if exporter.write_error else
                'is still written'))
        textfile = cfg.prometheus_textfile and 'textfile {}{}'.format(
            cfg.prometheus_textfile, ' (not written yet: the error above)' if exporter.write_error else '')
        where = [w for w in (textfile, cfg.prometheus_port and exporter.serve_error is None and url) if w]
        self.info('prometheus export: {}'.format(', '.join(where)))
        return exporter

    def _drivers_chart(self, model_id):
        """The optional per-model chart of what drives its score (created on first use)."""
        chart_id = drivers_chart(model_id, self.drivers_limit)
        if chart_id not in self.charts:
            title = node_title('Anomaly Drivers of {}'.format(quotable(model_id)), self.reads)
            chart = self.charts.add_chart([chart_id, None, title, 'percentage', 'drivers', 'anomalies.drivers',
                                           'stacked'])
            for dim, name in self._driver_dims(model_id).values():
                chart.add_dimension([dim, name, 'absolute', 1, 100])
        return self.charts[chart_id]

    def _driver_dims(self, model_id):
        """``driver_dims`` of the model now in use, worked out once per trained model. A model
        retrained on other dimensions (a process group gone, another come) takes the ones it
        no longer has off its drivers chart, which would otherwise list them, at 0, for good."""
        fm = getattr(self.detector, 'models', {}).get(model_id)
        known = self.driver_ids.get(model_id)
        if known is None or known[0] is not fm:
            dims = driver_dims(model_id, fm.columns if fm is not None else ())
            chart_id = drivers_chart(model_id, self.drivers_limit)
            if known is not None and fm is not None and chart_id in self.charts:
                keep = {dim for dim, _ in dims.values()}
                for dim in [d.id for d in self.charts[chart_id] if d.id not in keep]:
                    self.charts[chart_id].del_dimension(dim, hide=False)
            known = self.driver_ids[model_id] = (fm, dims)
        return known[1]

    def _drivers_values(self, step, data):
        """Each model's dimensions' share of its deviation from training, in hundredths of a
        percent. A model whose drivers chart the framework refused is told once and left out."""
        for model_id, drivers in step.drivers.items():
            if model_id in self.drivers_refused:
                continue
            try:
                chart = self._drivers_chart(model_id)
                for d in chart:
                    data[d.id] = 0
                dims = self._driver_dims(model_id)
                for column, share in drivers:
                    dim, name = dims.get(column) or driver_dim(model_id, column)
                    if dim not in chart:
                        chart.add_dimension([dim, name, 'absolute', 1, 100])
                    data[dim] = int(round(min(max(share, 0.0), 1.0) * PROB_SCALE))
            except Exception as e:
                self.drivers_refused.add(model_id)
                self.error("drivers chart of model '{}' left out: {!r}".format(model_id, e))

    def _sync_dimensions(self, step):
        """Models gone and new ones onto the charts; one model's chart trouble (the framework
        refusing a dimension) is logged and costs only that model's dimensions."""
        for model_id in step.removed:
            self._guarded(self._remove_dimensions, model_id)
        for model_id in step.added:
            self._guarded(self._add_dimensions, model_id)

    def _guarded(self, change, model_id):
        try:
            change(model_id)
        except Exception as e:
            self.error("charts of model '{}' not changed: {!r}".format(model_id, e))

    def _remove_dimensions(self, model_id):
        self.drivers_refused.discard(model_id)
        self.driver_ids.pop(model_id, None)
        chart_id = drivers_chart(model_id, self.drivers_limit)
        if chart_id in self.charts and _made_obsolete(self.charts[chart_id]):
            # declared obsolete already (its model went without values for chart_cleanup updates
            # before it was removed): taking its dimensions away would declare it live again, an
            # empty chart in the menu until made obsolete once more; the agent drops it as it is
            del self.charts[chart_id]
        elif chart_id in self.charts:
            chart = self.charts[chart_id]
            for dim in [d.id for d in chart]:
                chart.del_dimension(dim, hide=False)
            # taking the dimensions away declares the chart again: its cleanup counts from
            # here, even for one already made obsolete, so that it ends obsolete on the agent
            if callable(getattr(chart, 'refresh', None)):   # python.d's chart
                chart.refresh()
            else:
                chart.idle = 0
            self.retiring[chart_id] = 0
        for chart, dim in (('probability', prob_dim(model_id)), ('anomaly', anomaly_dim(model_id))):
            if dim in self.charts[chart]:
                self.charts[chart].del_dimension(dim, hide=False)

    def _forget_retired_charts(self):
        """Drop a removed model's drivers chart once the framework has declared it obsolete
        (after chart_cleanup updates without a value; with 0, never: then once its dimensions'
        removal has gone out), or at once if the agent never heard of it, so the charts of
        containers that came and went do not pile up. One that has dimensions again (its
        model came back) stays."""
        cleanup = getattr(self.charts, 'cleanup', None)
        for chart_id, updates in list(self.retiring.items()):
            chart = self.charts[chart_id] if chart_id in self.charts else None
            if chart is None or any(True for _ in chart):
                del self.retiring[chart_id]
                continue
            if _made_obsolete(chart) or (cleanup == 0 and updates >= 2):
                del self.charts[chart_id]
                del self.retiring[chart_id]
            else:
                self.retiring[chart_id] = updates + 1

    def _add_dimensions(self, model_id):
        if prob_dim(model_id) not in self.charts['probability']:
            self.charts['probability'].add_dimension([prob_dim(model_id), prob_dim(model_id), 'absolute', 1, 100])
        if anomaly_dim(model_id) not in self.charts['anomaly']:
            self.charts['anomaly'].add_dimension([anomaly_dim(model_id), anomaly_dim(model_id), 'absolute', 1, 1])
        if self.job_config.attribution_charts:
            self._drivers_chart(model_id)

    def get_data(self):
        started = time.monotonic()
        try:
            return self._step_data()
        finally:
            # (a job that could not start has no steps to speak of; one that waited for an agent
            # that did not answer is told as such, not as too many charts for update_every)
            if self.detector is not None and not getattr(self.detector, 'unanswered', None):
                told = self.pace.add(time.monotonic() - started)
                if told:
                    (self.warning if self.pace.behind else self.info)(told)

    def _step_data(self):
        if self.detector is None:
            return None
        self.node_steps += 1
        try:
            step = self.detector.step()
        except Exception as e:  # a bug must not kill the job; log it and try again next step
            self.error('step failed: {!r}'.format(e))
            return self._stale()
        self._forget_retired_charts()
        self._sync_dimensions(step)
        models = getattr(self.detector, 'models', None)
        if models is not None and not models and self.first_prediction_at is not None:
            # every model removed (the charts it modelled are no longer listed: a container's,
            # an interface deleted): values for none of the job's charts, so that the framework
            # declares them obsolete after chart_cleanup updates, as it does a gone model's drivers
            # chart, instead of keeping them frozen at their last values for the life of the job
            self.last_data = {}
            if self.exporter is not None:   # nor served to Prometheus at their last values
                self.exporter.update({}, 0.0, 0.0, 0.0)
            return dict(NO_VALUES)
        if not step.fresh:
            return self._stale()
        self.answered_steps += 1
        if not step.scores:
            return None
        node = self.node.update(step.scores, time.monotonic() if step.at is None else step.at,
                                getattr(self.detector, 'models', ()),
                                most=(self.node_steps + CLOCK_SLACK_STEPS) * max(1, self.update_every),
                                steps=self.node_steps)
        self.node_steps = 0
        for model_id in node.raised:
            self.info("anomaly flagged on '{}'{} (probability {:.1f}%): {}".format(
                model_id, self.of_node, step.scores[model_id][0] * 100,
                describe_drivers(step.drivers.get(model_id, []))))
        data = step_values(step.scores, self.job_config.include_average_prob, node)
        if self.job_config.attribution_charts:
            self._drivers_values(step, data)
        if self.exporter is not None:
            self.exporter.update(step.scores, node.rate, node.recent, node.longest, seconds=max(1, self.update_every))
        if self.first_prediction_at is None:
            self.first_prediction_at = time.monotonic()
            self.info('first prediction {:.1f}s after start'.format(self.first_prediction_at - self.started_at))
        self.last_data, self.last_fresh = data, time.monotonic()
        return data

    def _stale(self):
        if self.last_data and time.monotonic() - self.last_fresh < timings.STALE_SECONDS:
            return dict(self.last_data)
        return None
