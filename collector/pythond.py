"""A small python.d-compatible job base for running modules without Netdata's python.d.plugin.

It offers the part of the framework's ``SimpleService`` interface that modules use
(``configuration``, ``order``/``definitions``, ``charts`` with ``add_dimension`` and
``del_dimension``, ``check``/``get_data``, ``update_every``, ``debug``/``info``/
``warning``/``error``) and writes the external plugin protocol to a stream. Logs go to
stderr in python.d's line format.
"""
import io
import os
import sys
import time

from . import protocol

MODULE_NAME = 'anomalies'
# the program its log lines name, as python.d.plugin's name python.d: run as a plugins.d plugin beside
# the python.d module, the agent's log tells the two apart
LOG_NAME = 'anomalies.plugin'
CHART_CLEANUP = 10   # updates in a row without a value before a chart is declared obsolete (python.d's chart_cleanup)


class ChartError(Exception):
    pass


class OutputClosed(Exception):
    """The reader of the protocol went away (the agent stopped, a pipe closed), or the output
    cannot be written at all (a full disk): stop the job."""


class OutputFailed(OutputClosed):
    """stdout is there but refuses the charts (a file on a full disk): an error, not a reader
    that left."""


def _let_go_of(stream):
    """Point a stream whose reader went away at /dev/null: what a write left in its buffer
    would fail again as the interpreter flushes it at exit, and exit with status 120."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):   # not a file (a test's StringIO), or closed
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)


class Dimension:
    def __init__(self, params):
        params = list(params) + [None] * (6 - len(params))
        dim_id, name, algorithm, multiplier, divisor, hidden = params[:6]
        if not dim_id:
            raise ChartError('dimension without an id')
        self.id = dim_id
        self.name = name or dim_id
        self.algorithm = algorithm or 'absolute'
        self.multiplier = int(multiplier or 1)
        self.divisor = int(divisor or 1)
        self.hidden = bool(hidden)
        self.obsolete = False
        self.set_prefix = protocol.set_line(self.id, 0)[:-2]  # "SET 'id' = ", the per-step part

    def line(self):
        options = ' '.join(o for o, on in (('hidden', self.hidden), ('obsolete', self.obsolete)) if on)
        return protocol.dimension_line(self.id, self.name, self.algorithm, self.multiplier, self.divisor, options)


class Chart:
    def __init__(self, type_, chart_id, options, priority, update_every, job_name, cleanup=CHART_CLEANUP):
        name, title, units, family, context, chart_type = (list(options) + [None] * 6)[:6]
        self.type, self.id = type_, chart_id
        self.name, self.title, self.units = name, title, units
        self.family, self.context, self.chart_type = family, context, chart_type or 'line'
        self.priority, self.update_every, self.job_name = priority, update_every, job_name
        self.dimensions = []
        self._ids = set()
        self.retired = []   # dimensions to declare obsolete with the next definition
        self.push = True
        self.updated = False
        self.declared = False   # the agent has been sent this chart's definition
        self.idle = 0           # updates in a row without a value
        self.cleanup = cleanup  # ... before the chart is declared obsolete (0: never)

    @property
    def full_id(self):
        return '{}.{}'.format(self.type, self.id)

    def __contains__(self, dim_id):
        return dim_id in self._ids

    def __iter__(self):
        return iter(self.dimensions)

    def add_dimension(self, params):
        dim = Dimension(params)
        if dim.id in self:
            raise ChartError("'{}' already in '{}' dimensions".format(dim.id, self.full_id))
        self.dimensions.append(dim)
        self._ids.add(dim.id)
        self.push = True
        return dim

    def del_dimension(self, dim_id, hide=True):
        """Mark the dimension obsolete (re-declaring the chart) and stop sending it."""
        for d in self.dimensions:
            if d.id == dim_id:
                d.obsolete, d.hidden = True, d.hidden or hide
                self.retired.append(d)
                self.dimensions.remove(d)
                self._ids.discard(dim_id)
                self.push = True
                return

    def _chart_line(self, options=''):
        return protocol.chart_line(self.full_id, self.name or self.full_id, self.title, self.units, self.family,
                                   self.context, self.chart_type, self.priority, self.update_every,
                                   options=options, module=MODULE_NAME)

    @property
    def obsolete_now(self):
        """This update made the chart obsolete (chart_cleanup updates in a row without a value)."""
        return bool(self.cleanup) and self.idle == self.cleanup and self.declared

    def definition(self):
        self.declared = True
        lines = [self._chart_line(), protocol.clabel_lines({'_collect_job': self.job_name})]
        lines += [d.line() for d in self.retired]
        self.retired = []
        lines += [d.line() for d in self.dimensions]
        return ''.join(lines)

    def update(self, data, interval):
        get = data.get
        sets = [f'{d.set_prefix}{int(v)}\n' for d in self.dimensions if (v := get(d.id)) is not None]
        if not sets:
            self.updated = False
            self.idle += 1
            out = ''
            if self.retired and self.declared:   # dimensions taken away: tell the agent now
                out = self.definition()
                self.push = False
                if self.cleanup and self.idle > self.cleanup:   # made obsolete before: it stays so, not
                    out += self._chart_line('obsolete')       # back in the menu, empty, for good
                    self.push = True
            if self.obsolete_now:   # declared again when values return
                out += self._chart_line('obsolete')
                self.push = True
            return out
        self.idle = 0
        out = self.definition() if self.push else ''
        self.push = False
        out += protocol.begin_line(self.full_id, interval if self.updated else 0) + ''.join(sets) + protocol.end_line()
        self.updated = True
        return out


class Charts:
    def __init__(self, type_, priority, update_every, job_name, cleanup=CHART_CLEANUP):
        self.type, self.priority, self.update_every, self.job_name = type_, priority, update_every, job_name
        self.cleanup = cleanup
        self._charts = {}
        self._next_priority = priority   # as python.d's: one more for each chart added, gone or not

    def add_chart(self, params):
        chart_id, options = params[0], params[1:]
        if chart_id in self._charts:
            raise ChartError("chart '{}' already exists".format(chart_id))
        chart = Chart(self.type, chart_id, options, self._next_priority, self.update_every, self.job_name,
                      self.cleanup)
        self._next_priority += 1
        self._charts[chart_id] = chart
        return chart

    def __getitem__(self, chart_id):
        return self._charts[chart_id]

    def __delitem__(self, chart_id):
        del self._charts[chart_id]

    def __contains__(self, chart_id):
        return chart_id in self._charts

    def __iter__(self):
        return iter(self._charts.values())

    def __len__(self):
        return len(self._charts)


def _int_or(value, default):
    try:
        return int(value) or default
    except (TypeError, ValueError):
        return default


class SimpleService(object):
    """Stand-in for python.d's ``SimpleService`` when running outside python.d.plugin."""

    def __init__(self, configuration=None, name=''):
        self.configuration = dict(configuration or {})
        # python.d.plugin turns each run of white space in a job's name into one '_' before the
        # job sees it: its charts, its saved models' folder and its log lines go by that name
        self.job_name = protocol.pythond_name(self.configuration.pop('job_name', None)) or MODULE_NAME
        # a name that is not a string stays in the configuration, for the job's check to refuse
        # (python.d.plugin stops on one)
        name = self.configuration.pop('name') if isinstance(self.configuration.get('name'), str) else None
        override = protocol.pythond_name(name or self.configuration.pop('override_name', None))
        self.override_name = override   # as python.d's: the job's charts are named after it
        # a bad value is the job config's to report (the module validates it); start on the default
        self._update_every = _int_or(self.configuration.get('update_every'), 1)
        self.priority = _int_or(self.configuration.get('priority'), 60000)
        self.order, self.definitions = [], {}
        # a chart id is one word of the protocol: a job named 'my job' gets charts 'anomalies_my_job.*'
        label = protocol.safe_id(override or self.job_name)
        self.chart_type = MODULE_NAME if label == MODULE_NAME else '{}_{}'.format(MODULE_NAME, label)
        cleanup = self.configuration.get('chart_cleanup', CHART_CLEANUP)
        if not isinstance(cleanup, int) or isinstance(cleanup, bool) or cleanup < 0:
            cleanup = CHART_CLEANUP
        self.charts = Charts(self.chart_type, self.priority, self._update_every, self.job_name, cleanup)
        self.out = sys.stdout
        self.log_stream = sys.stderr

    @property
    def update_every(self):
        return self._update_every

    # --- logging, in python.d's line format (named LOG_NAME) ---
    def _log(self, level, msg):
        """A line that cannot be written (stderr closed, its pipe broken, a full disk) is lost, and
        the lines after it, never the job: the charts on stdout go on."""
        line = '{}: {} {}: {}[{}] : {}\n'.format(time.strftime('%Y-%m-%d %H:%M:%S'), LOG_NAME, level, MODULE_NAME,
                                                 self.job_name, ' '.join(str(m) for m in msg))
        try:
            self.log_stream.write(line)
            self.log_stream.flush()
        except OSError:   # a broken pipe, a full disk: what stays in its buffer would fail again at exit
            _let_go_of(self.log_stream)   # (status 120), so the log goes to /dev/null from here on
        except (AttributeError, ValueError):   # None, a closed file
            pass

    def debug(self, *msg):
        if getattr(self, 'debug_enabled', False):
            self._log('DEBUG', msg)

    def info(self, *msg):
        self._log('INFO', msg)

    def warning(self, *msg):
        self._log('WARNING', msg)

    def error(self, *msg):
        self._log('ERROR', msg)

    # --- job life cycle ---
    def check(self):
        return bool(self.get_data())

    def create(self):
        for chart_id in self.order:
            definition = self.definitions.get(chart_id)
            if not definition:
                continue
            chart = self.charts.add_chart([chart_id] + list(definition['options']))
            for line in definition.get('lines', []):
                chart.add_dimension(line)
        return len(self.charts) > 0

    def update(self, interval):
        data = self.get_data()
        out = ''
        if data and isinstance(data, dict):
            out = ''.join(chart.update(data, interval) for chart in self.charts)
            for chart in self.charts:
                if chart.obsolete_now:
                    self.info("chart '{}' was made obsolete: no values for {} updates".format(chart.full_id,
                                                                                           chart.cleanup))
        if out:
            self._write(out)
        elif _reader_gone(self.out):   # a step that writes nothing would never meet the broken pipe
            raise OutputClosed('stdout closed: its reader went away')
        return bool(data) and isinstance(data, dict) and any(chart.updated for chart in self.charts)

    def _write(self, text):
        if self.out is None:   # started with stdout closed
            raise OutputClosed('stdout is closed')
        try:
            self.out.write(text)
            self.out.flush()
        except (BrokenPipeError, ConnectionResetError) as e:
            _let_go_of(self.out)
            raise OutputClosed('stdout closed: {}'.format(e.__class__.__name__))
        except UnicodeEncodeError as e:   # a name the stream's encoding cannot hold (netdata reads UTF-8)
            raise OutputFailed('cannot write the charts to stdout in its encoding, {}: {}'.format(e.encoding, e))
        except ValueError as e:   # a closed file object
            raise OutputClosed('stdout closed: {}'.format(e))
        except OSError as e:   # a file on a full disk, an I/O error: the charts would go nowhere
            _let_go_of(self.out)
            raise OutputFailed('cannot write the charts to stdout: {}'.format(e.strerror or e))

    def get_data(self):
        raise NotImplementedError


def _reader_gone(stream):
    """Whether nobody reads the pipe ``stream`` writes to any more (its agent died without a
    word): poll says so without writing, where python.d.plugin writes a blank line each second."""
    import select
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):   # not a file (a test's buffer)
        return False
    if not hasattr(select, 'poll'):
        return False
    poll = select.poll()
    poll.register(fd, 0)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poll.poll(0))


def run_job(service, steps=None, clock=time.time, sleep=time.sleep, stop=None):
    """Drive a job like python.d does: check, create, then update every ``update_every``.

    Steps are aligned to multiples of ``update_every`` on the wall clock. Returns the
    number of successful updates; ``steps`` bounds the run (None runs forever, or until the
    protocol's reader goes away, as a plugins.d plugin must when its agent stops, or until
    ``stop``, an event, is set: jobs run side by side stop together).
    """
    if stop is not None:
        sleep = stop.wait
    if not service.check():
        service.error('check() failed, job not started')
        return -1
    service.create()
    every = service.update_every
    done, last, ok = 0, None, 0
    while steps is None or done < steps:
        now = clock()
        sleep(max(0.0, every - (now % every)))
        if stop is not None and stop.is_set():
            break
        started = clock()
        interval = int((started - last) * 1e6) if last else 0
        try:
            if service.update(interval):
                ok += 1
                last = started
        except OutputFailed as e:
            service.error('{}, stopping'.format(e))
            service.output_failed = True
            if stop is not None:   # the jobs beside it write to the same stdout
                stop.set()
            break
        except OutputClosed as e:
            service.info('{}: nobody reads the charts any more, stopping'.format(e))
            if stop is not None:   # nor those of the jobs beside it: the plugin ends
                stop.set()
            break
        except Exception as e:  # python.d logs and carries on; so do we
            service.error('update() unhandled exception: {!r}'.format(e))
        done += 1
    return ok
