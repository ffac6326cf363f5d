"""The standalone python.d base and the protocol lines it writes."""
import io

import pytest

from collector import protocol
from collector.pythond import SimpleService, run_job
from collector.service import step_values


def test_protocol_lines():
    assert protocol.chart_line('anomalies.probability', '', 'Anomaly Probability', 'probability', 'anomalies',
                               'anomalies.probability', 'line', 60000, 1) == (
        "CHART anomalies.probability '' 'Anomaly Probability' 'probability' 'anomalies' "
        "'anomalies.probability' line 60000 1 '' 'python.d.plugin' 'anomalies'\n")
    assert protocol.dimension_line('system.cpu_prob', 'system.cpu_prob', 'absolute', 1, 100) == \
        "DIMENSION 'system.cpu_prob' 'system.cpu_prob' absolute 1 100 ''\n"
    assert protocol.begin_line('anomalies.anomaly') == 'BEGIN anomalies.anomaly\n'
    assert protocol.begin_line('anomalies.anomaly', 1000123) == 'BEGIN anomalies.anomaly 1000123\n'
    assert protocol.set_line('x_prob', 9999.7) == "SET 'x_prob' = 9999\n"
    assert protocol.end_line() == 'END\n'
    assert "'it\"s'" in protocol.dimension_line("it's", 'n')


def test_ids_and_names_from_an_agent_with_a_newline_stay_on_their_protocol_line():
    """A chart id or dimension name is data (a proxy or child could send anything): a control
    character in it must not end the line and start one that is not protocol."""
    from collector.service import anomaly_dim, driver_dim, prob_dim
    chart, dim = 'system.evil\nHELLO', 'x\r\nEVIL dim'
    job = make_job()
    job.charts['probability'].add_dimension([prob_dim(chart), prob_dim(chart), 'absolute', 1, 100])
    job.charts['anomaly'].add_dimension([anomaly_dim(chart), anomaly_dim(chart), 'absolute', 1, 1])
    dim_id, dim_name = driver_dim('system.net', 'h::system.net|' + dim)
    job.charts['anomaly'].add_dimension([dim_id, dim_name, 'absolute', 1, 1])
    job.values = [{prob_dim(chart): 5000, anomaly_dim(chart): 1, dim_id: 1}]
    assert job.update(0)
    lines = job.out.getvalue().splitlines()
    keywords = ('CHART', 'CLABEL', 'CLABEL_COMMIT', 'DIMENSION', 'BEGIN', 'SET', 'END')
    assert all(line.split(' ', 1)[0] in keywords for line in lines), lines
    assert "SET 'system.evil_HELLO_prob' = 5000" in lines and "SET 'system.net|x__EVIL dim' = 1" in lines
    assert protocol.chart_line('a\nb', 'n', 't\nx', 'u', 'f', 'c', 'line', 1, 1).count('\n') == 1
    assert protocol.begin_line('a\nb') == 'BEGIN a_b\n'


class Job(SimpleService):
    def __init__(self, configuration):
        super().__init__(configuration=configuration)
        self.order = ['probability', 'anomaly']
        self.definitions = {'probability': {'options': [None, 'P', 'probability', 'anomalies',
                                                        'anomalies.probability', 'line'], 'lines': []},
                            'anomaly': {'options': [None, 'A', 'count', 'anomalies', 'anomalies.anomaly',
                                                    'stacked'], 'lines': []}}
        self.values = []

    def get_data(self):
        return self.values.pop(0) if self.values else None


def make_job(**conf):
    job = Job(dict(job_name='anomalies', **conf))
    job.out, job.log_stream = io.StringIO(), io.StringIO()
    job.create()
    return job


def test_dimensions_follow_models_and_values_are_sent():
    job = make_job()
    job.charts['probability'].add_dimension(['a_prob', 'a_prob', 'absolute', 1, 100])
    job.charts['anomaly'].add_dimension(['a_anomaly', 'a_anomaly', 'absolute', 1, 1])
    job.values = [{'a_prob': 5000, 'a_anomaly': 1}]
    assert job.update(0)
    out = job.out.getvalue()
    assert out.index('CHART anomalies.probability') < out.index("DIMENSION 'a_prob'") < out.index(
        'BEGIN anomalies.probability') < out.index("SET 'a_prob' = 5000")
    assert "SET 'a_anomaly' = 1" in out
    # a second update does not re-declare the charts
    job.out.truncate(0), job.out.seek(0)
    job.values = [{'a_prob': 10, 'a_anomaly': 0}]
    job.update(1000000)
    assert 'CHART' not in job.out.getvalue() and 'BEGIN anomalies.probability 1000000' in job.out.getvalue()
    # removing a dimension re-declares the chart with it obsolete, then stops sending it
    job.out.truncate(0), job.out.seek(0)
    job.charts['probability'].del_dimension('a_prob', hide=False)
    job.charts['probability'].add_dimension(['b_prob', 'b_prob', 'absolute', 1, 100])
    job.values = [{'a_prob': 1, 'b_prob': 2, 'a_anomaly': 0}]
    job.update(1000000)
    out = job.out.getvalue()
    assert "DIMENSION 'a_prob' 'a_prob' absolute 1 100 'obsolete'" in out
    assert "SET 'a_prob'" not in out and "SET 'b_prob' = 2" in out


def test_duplicate_dimension_raises_like_python_d():
    job = make_job()
    job.charts['anomaly'].add_dimension(['x', 'x', 'absolute', 1, 1])
    try:
        job.charts['anomaly'].add_dimension(['x', 'x', 'absolute', 1, 1])
    except Exception as e:
        assert 'already' in str(e)
    else:
        raise AssertionError('duplicate dimension accepted')


def test_job_name_prefixes_chart_type():
    assert make_job().charts['probability'].full_id == 'anomalies.probability'
    job = Job({'job_name': 'edge'})
    assert job.chart_type == 'anomalies_edge'
    # a chart id is one word on the protocol line
    assert Job({'job_name': 'my job'}).chart_type == 'anomalies_my_job'


def test_a_job_name_with_runs_of_white_space_goes_by_python_ds_name(tmp_path):
    """python.d.plugin makes each run of white space in a job's name (the job's key or its
    'name') one '_': the same job run standalone has the same charts, label and models folder."""
    from collector.runner import Service
    job = Service(configuration={'job_name': 'my  job', 'models_dir': str(tmp_path)})
    assert job.job_name == 'my_job' and job.charts.type == 'anomalies_my_job'
    assert job.job_config.job_name == 'my_job'
    named = Service(configuration={'job_name': 'other', 'name': 'x \t y', 'models_dir': str(tmp_path)})
    assert named.charts.type == 'anomalies_x_y' and named.served_as == 'x_y'
    assert Job({'job_name': 'a\tb'}).charts.type == 'anomalies_a_b'


def test_a_chart_added_after_one_was_removed_gets_a_place_of_its_own():
    """A drivers chart retired (its container gone) and another added: each chart keeps its
    own priority, one more than the last added, as python.d's charts do."""
    job = make_job(priority=500)
    job.charts.add_chart(['drivers_a', None, 'a', 'percentage', 'drivers', 'anomalies.drivers', 'stacked'])
    job.charts.add_chart(['drivers_b', None, 'b', 'percentage', 'drivers', 'anomalies.drivers', 'stacked'])
    del job.charts['drivers_a']
    job.charts.add_chart(['drivers_c', None, 'c', 'percentage', 'drivers', 'anomalies.drivers', 'stacked'])
    assert [c.priority for c in job.charts] == [500, 501, 503, 504]


def test_run_job_steps_on_the_update_every_grid():
    job = make_job(update_every=2)
    job.check = lambda: True
    job.charts = job.charts  # already created
    job.create = lambda: True
    job.charts['anomaly'].add_dimension(['x', 'x', 'absolute', 1, 1])
    job.values = [{'x': 1}, {'x': 0}, {'x': 1}]
    now = [101.3]
    slept = []

    def sleep(s):
        slept.append(round(s, 3))
        now[0] += s
    assert run_job(job, steps=3, clock=lambda: now[0], sleep=sleep) == 3
    assert slept == [0.7, 2.0, 2.0]


def one_dimension_job(steps):
    """A started job whose anomaly chart has one dimension, with values for ``steps`` steps."""
    job = make_job()
    job.check, job.create = (lambda: True), (lambda: True)
    job.charts['anomaly'].add_dimension(['x', 'x', 'absolute', 1, 1])
    job.values = [{'x': 1}] * steps
    return job


class ClosedPipe(io.StringIO):
    def write(self, text):
        raise BrokenPipeError(32, 'Broken pipe')


@pytest.mark.parametrize('out', [ClosedPipe(), None], ids=['pipe closed', 'stdout closed'])
def test_a_job_stops_when_nobody_reads_its_charts(out):
    # a plugins.d plugin whose agent stopped (or `run | head -1`) must exit, not log every second
    job = one_dimension_job(5)
    job.out = out
    assert run_job(job, steps=5, clock=lambda: 0.0, sleep=lambda s: None) == 0
    assert len(job.values) == 4   # one step, then it stopped
    log = job.log_stream.getvalue()
    assert 'nobody reads the charts any more, stopping' in log and 'unhandled exception' not in log


class FullDisk(io.StringIO):
    def write(self, text):
        raise OSError(28, 'No space left on device')


def test_a_job_whose_stdout_refuses_writes_stops_with_an_error_naming_why():
    # stdout a file on a full disk: each step's charts were lost and logged for good
    job = one_dimension_job(5)
    job.out = FullDisk()
    assert run_job(job, steps=5, clock=lambda: 0.0, sleep=lambda s: None) == 0
    assert len(job.values) == 4   # one step, then it stopped
    log = job.log_stream.getvalue()
    assert 'ERROR' in log and 'cannot write the charts to stdout: No space left on device, stopping' in log
    assert 'unhandled exception' not in log


@pytest.mark.parametrize('log', [ClosedPipe(), FullDisk(), None], ids=['pipe broken', 'disk full', 'stderr closed'])
def test_a_log_that_cannot_be_written_costs_the_lines_not_the_charts(log):
    job = one_dimension_job(3)
    job.log_stream = log
    job.error('a line nobody will read')
    assert run_job(job, steps=3, clock=lambda: 0.0, sleep=lambda s: None) == 3
    assert job.out.getvalue().count('BEGIN ') == 3


def test_step_values_are_integers_and_never_nan():
    data = step_values({'a': (0.12345, 0), 'b': (float('nan'), 1), 'c': (1.7, 1), 'd': (-0.1, 0)}, True)
    assert data == {'a_prob': 1234, 'a_anomaly': 0, 'b_prob': 0, 'b_anomaly': 1, 'c_prob': 10000,
                    'c_anomaly': 1, 'd_prob': 0, 'd_anomaly': 0, 'average_prob': 2809}
    assert all(isinstance(v, int) for v in data.values())


class FakeStep:
    def __init__(self, scores, added=(), removed=(), fresh=True):
        self.scores, self.added, self.removed, self.fresh = scores, list(added), list(removed), fresh
        self.at = None
        self.drivers = {m: [('h::{}|used'.format(m), 0.9), ('h::{}|free'.format(m), 0.1)]
                        for m, (_, flag) in scores.items() if flag}


class FakeDetector:
    def __init__(self, steps):
        self.steps = steps

    def step(self):
        return self.steps.pop(0)


def test_service_adds_and_removes_dimensions_as_models_come_and_go():
    from collector.runner import Service
    svc = Service(configuration={'job_name': 'anomalies'})
    svc.out, svc.log_stream = io.StringIO(), io.StringIO()
    svc.create()
    svc.detector = FakeDetector([
        FakeStep({}, fresh=True),
        FakeStep({'system.cpu': (0.5, 0), 'system.ram': (0.999, 1)}, added=['system.cpu', 'system.ram']),
        FakeStep({'system.cpu': (0.25, 0)}, removed=['system.ram']),
        FakeStep({}, fresh=False),
    ])
    assert svc.get_data() is None          # nothing trained yet: no made-up values
    assert svc.get_data() == {'system.cpu_prob': 5000, 'system.cpu_anomaly': 0, 'system.ram_prob': 9990,
                              'system.ram_anomaly': 1, 'average_prob': 7495,
                              'flagged': 5000, 'flagged_avg': 5000, 'flagged_1m': 5000, 'longest': 0}
    assert "anomaly flagged on 'system.ram' (probability 99.9%): used 90%, free 10%" in svc.log_stream.getvalue()
    dims = [d.id for d in svc.charts['probability']]
    assert dims == ['average_prob', 'system.cpu_prob', 'system.ram_prob']
    after = {'system.cpu_prob': 2500, 'system.cpu_anomaly': 0, 'average_prob': 2500,
             'flagged': 0, 'flagged_avg': 2500, 'flagged_1m': 0, 'longest': 0}
    assert svc.get_data() == after
    assert [d.id for d in svc.charts['anomaly']] == ['system.cpu_anomaly']
    # the agent did not answer: the last values are kept for a while
    assert svc.get_data() == after


def test_service_with_a_bad_config_does_not_start():
    from collector.runner import Service
    svc = Service(configuration={'job_name': 'anomalies', 'model': 'nope', 'lags_n': -1, 'update_every': 'fast'})
    svc.log_stream = io.StringIO()
    assert svc.check() is False
    log = svc.log_stream.getvalue()
    assert "key 'model'" in log and "key 'lags_n'" in log and "key 'update_every'" in log and 'job not started' in log


def test_node_rate_counts_flags_and_how_long_the_oldest_has_been_up():
    from collector.node import NodeRate
    node = NodeRate(window_steps=3)
    assert node.update({'a': (0.1, 0), 'b': (0.2, 0)}, 100) == (0.0, 0.0, 0.0, 0.0, None, [])
    assert node.update({'a': (1.0, 1), 'b': (0.2, 0)}, 101) == (0.5, 0.25, 0.5, 0.0, 'a', ['a'])
    step = node.update({'a': (1.0, 1), 'b': (1.0, 1)}, 111)
    assert (step.rate, step.longest, step.longest_model, step.raised) == (1.0, 10.0, 'a', ['b'])
    assert step.rolling == pytest.approx(0.5)
    step = node.update({'a': (0.0, 0), 'b': (1.0, 1)}, 112)
    assert (step.longest, step.longest_model, step.raised) == (1.0, 'b', [])
    data = step_values({'a': (0.0, 0), 'b': (1.0, 1)}, False, step)
    assert data['flagged'] == 5000 and data['longest'] == 1 and isinstance(data['flagged_avg'], int)
    assert data['flagged_1m'] == 10000   # 'a' was flagged one step ago


def test_node_share_flagged_in_the_window_counts_charts_that_turned_unusual_one_after_another():
    # an incident that spreads: each chart is flagged for one step, never two at once, so the
    # share flagged now stays at a quarter while the share flagged in the window climbs
    from collector.node import NodeRate
    node = NodeRate(window_steps=4)
    models = ['a', 'b', 'c', 'd']
    shares = []
    for i, now in enumerate(models):
        step = node.update({m: (1.0 if m == now else 0.1, int(m == now)) for m in models}, 100 + i)
        assert step.rate == 0.25
        shares.append(step.recent)
    assert shares == [0.25, 0.5, 0.75, 1.0]
    # a flag older than the window no longer counts, and nor does a model no longer scored
    quiet = {m: (0.1, 0) for m in models}
    assert node.update(quiet, 104).recent == 0.75
    assert node.update({'c': (0.1, 0), 'd': (0.1, 0)}, 105).recent == 1.0
    assert node.update({'c': (0.1, 0), 'd': (0.1, 0)}, 106).recent == 0.5
    assert node.update({'c': (0.1, 0), 'd': (0.1, 0)}, 107).recent == 0.0


def test_the_node_shares_of_the_last_minute_forget_flags_from_before_a_gap():
    """flagged_1m (what anomalies_node_rate warns on above 5 %) and the rolling share are the last
    minute's: after ten minutes without a scored step (the agent away, a child's stream stopped)
    a flag from before the gap no longer counts, where it counted for another minute and raised
    the alarm again on an incident ten minutes old."""
    from collector.runner import Service
    models = list('abcdefghij')
    t = 2_000_000_000.0

    def at(step, when):
        step.at = when
        return step
    steps = [at(FakeStep({m: (0.1, 0) for m in models}, added=models), t)]
    steps += [at(FakeStep({m: ((0.999, 1) if m in 'ab' else (0.1, 0)) for m in models}), t + k) for k in range(1, 6)]
    steps += [FakeStep({}, fresh=False) for _ in range(600)]
    steps += [at(FakeStep({m: (0.1, 0) for m in models}), t + 606 + k) for k in range(3)]
    svc = Service(configuration={'job_name': 'anomalies', 'models_dir': 'none'})
    svc.out, svc.log_stream = io.StringIO(), io.StringIO()
    svc.create()
    svc.detector = FakeDetector(steps)
    svc._stale = lambda: None   # (its minute of last values is the wall clock's)
    out = [svc.get_data() for _ in range(len(steps))]
    assert (out[5]['flagged'], out[5]['flagged_1m']) == (2000, 2000)
    assert [(o['flagged'], o['flagged_1m'], o['flagged_avg']) for o in out[606:]] == [(0, 0, 0)] * 3


def test_a_slow_job_s_last_minute_shares_span_a_minute():
    """A job stepping every 40 s keeps the flag of its step before in flagged_1m (what
    anomalies_node_rate warns on): its window covers a minute or more, where 60 // 40 made it
    this step alone."""
    from collector.runner import Service
    models = list('abcd')
    steps = [FakeStep({m: (0.1, 0) for m in models}, added=models),
             FakeStep({m: ((0.999, 1) if m == 'a' else (0.1, 0)) for m in models}),
             FakeStep({m: (0.1, 0) for m in models}),
             FakeStep({m: (0.1, 0) for m in models})]
    for k, step in enumerate(steps):
        step.at = 2_000_000_000.0 + 40 * k
    svc = Service(configuration={'job_name': 'anomalies', 'models_dir': 'none', 'update_every': 40})
    svc.out, svc.log_stream = io.StringIO(), io.StringIO()
    svc.create()
    svc.detector = FakeDetector(steps)
    svc._stale = lambda: None
    out = [svc.get_data() for _ in range(len(steps))]
    assert [o['flagged_1m'] for o in out] == [0, 2500, 2500, 0]


def test_a_flag_left_unscored_for_a_step_stays_up_and_its_age_goes_on():
    """A flagged chart with no current value for one step (its collector late) is not scored
    then, while the flag policy keeps its flag: the node view keeps it too, so how long it has
    been up (what the 10-minute alarm watches) does not start again, and its flag is not
    raised (and logged) a second time; the agent's clock set back does not make that negative."""
    from collector.node import NodeRate
    node = NodeRate(window_steps=60)
    models = {'a': None, 'b': None}
    node.update({'a': (1.0, 1), 'b': (0.1, 0)}, 100, models)
    step = node.update({'b': (0.1, 0)}, 101, models)                  # 'a' not scored
    assert (step.rate, step.recent, step.longest, step.raised) == (0.5, 0.5, 1.0, [])
    step = node.update({'a': (1.0, 1), 'b': (0.1, 0)}, 102, models)
    assert (step.longest, step.longest_model, step.raised) == (2.0, 'a', [])
    step = node.update({'a': (1.0, 1), 'b': (0.1, 0)}, 102 - 3600, models)   # an NTP step back
    assert step.longest == 2.0
    step = node.update({'b': (0.1, 0)}, 104 - 3600, {'b': None})        # 'a' gone: its flag with it
    assert (step.rate, step.longest, step.longest_model) == (0.0, 0.0, None)
    # a chart that stays without values (a container stopped, its model not yet removed) loses
    # its flag after a few steps, as the flag policy's, instead of growing the alarm's age for good
    node.update({'a': (1.0, 1), 'b': (0.1, 0)}, 200, models)
    ages = [node.update({'b': (0.1, 0)}, 200 + k, models).longest for k in range(1, 8)]
    assert ages == [1.0, 2.0, 3.0, 0.0, 0.0, 0.0, 0.0], ages


def test_the_agents_clock_set_forward_does_not_age_a_flag_by_the_jump():
    """A small box without a real-time clock boots with an old time, which NTP steps forward
    hours or days later: a flag up across that step read as up for days, and the alarm on
    anomalies.flagged_for went critical. Its age goes on by what the steps since can have taken
    (``most``), as it does over a clock set back."""
    from collector.node import NodeRate
    node = NodeRate(window_steps=60)
    node.update({'a': (1.0, 1)}, 100, most=6)
    assert node.update({'a': (1.0, 1)}, 110, most=15).longest == 10.0   # within what the steps took: as it is
    step = node.update({'a': (1.0, 1)}, 110 + 172800, most=16)
    assert (step.longest, step.longest_model, step.raised) == (26.0, 'a', [])
    assert node.update({'a': (1.0, 1)}, 111 + 172800, most=6).longest == 27.0
    assert node.update({'a': (1.0, 1)}, 112 + 172800).longest == 28.0   # no limit given: agent time alone


def test_a_flag_up_while_the_agents_clock_is_set_forward_keeps_its_age_on_the_chart():
    """The job's view of it: a flag up, the agent's clock stepped two days on, the features
    starting again for ten steps (no scores), the flag still up after: anomalies.flagged_for
    (what the 10-minute alarm reads) goes on from its age, not from two days."""
    from collector.runner import Service
    svc = Service(configuration={'job_name': 'anomalies'})
    svc.out, svc.log_stream = io.StringIO(), io.StringIO()
    svc.create()

    def at(step, t):
        step.at = t
        return step
    flagged = {'system.ram': (1.0, 1)}
    steps = [at(FakeStep(flagged, added=['system.ram']), 1000.0)]
    steps += [at(FakeStep(flagged), 1000.0 + k) for k in range(1, 5)]
    steps += [FakeStep({}, fresh=True) for _ in range(10)]
    steps += [at(FakeStep(flagged), 1015.0 + 172800 + k) for k in range(3)]
    svc.detector = FakeDetector(steps)
    data = [svc.get_data() for _ in range(len(steps))]
    longest = [d['longest'] for d in data if d]
    assert longest[:5] == [0, 1, 2, 3, 4], longest
    # the 11 steps since the last scored one, and a little slack (a step may come late)
    assert 4 + 11 <= longest[5] <= 4 + 11 + 10 and longest[6:] == [longest[5] + 1, longest[5] + 2], longest


def test_drivers_read_as_dimensions_or_chart_dimension_pairs():
    from collector.service import describe_drivers
    assert describe_drivers([('h::system.cpu|user', 0.81), ('h::system.cpu|system', 0.12)]) == 'user 81%, system 12%'
    assert describe_drivers([('h::system.cpu|user', 0.6), ('h::sensors.temp|cpu', 0.4)]) == \
        'system.cpu|user 60%, sensors.temp|cpu 40%'
    # a custom model over two charts whose three largest are of one: still named with their chart
    mixed = [('h::system.cpu|user', 0.8), ('h::system.cpu|system', 0.1), ('h::system.cpu|iowait', 0.06),
             ('h::system.ram|used', 0.04)]
    assert describe_drivers(mixed) == 'system.cpu|user 80%, system.cpu|system 10%, system.cpu|iowait 6%'
    # one chart of two nodes (a parent and its child): the node tells them apart
    assert describe_drivers([('p:19999::system.cpu|user', 0.6), ('p:19999/host/c::system.cpu|user', 0.4)]) == \
        'p:19999::system.cpu|user 60%, p:19999/host/c::system.cpu|user 40%'
    assert describe_drivers([]) == 'no dimension stands out'


def test_each_model_has_a_drivers_chart_of_its_own_that_the_agent_can_hold():
    """A custom model 'system_cpu' beside the chart system.cpu used to share its drivers chart
    (each zeroed the other's values), and a model id of 182 characters or more made a chart id
    the agent cut at 199 and then did not know by its full id: it dropped the plugin, and under
    python.d every module with it."""
    from collector.service import drivers_chart
    assert drivers_chart('system.cpu') == 'drivers_system.cpu' != drivers_chart('system_cpu')
    long_ids = ['tst.' + 'x' * 185 + 'a', 'tst.' + 'x' * 185 + 'b']
    charts = [drivers_chart(c) for c in long_ids]
    assert charts[0] != charts[1] and all(len('anomalies_some_job.' + c) <= 199 for c in charts)
    assert all(protocol.safe_id(c) == c for c in charts)


def test_a_driver_named_with_a_quote_reaches_python_d_whole():
    """python.d.plugin writes dimension ids and names inside single quotes as they are; a
    dimension of the agent's named "it's" was read as id 'it' and always 0."""
    from collector.service import driver_dim
    dim_id, name = driver_dim('tst.odd', "h::tst.odd|it's")
    assert "'" not in dim_id and "'" not in name and name == 'it"s'
    # the agent's line splitter keeps the character after a backslash in the word: one at the
    # end of a name took the closing quote with it, and every field after it shifted
    dim_id, name = driver_dim('tst.odd', 'h::tst.odd|C:\\')
    assert not dim_id.endswith('\\') and name == 'C:_'
    from collector import protocol
    line = protocol.dimension_line('a\\', 'b\\\\', 'absolute', 1, 100, '')
    assert line == "DIMENSION 'a_' 'b__' absolute 1 100 ''\n", line
    assert protocol.quotable('x\\y') == 'x\\y'   # (inside a word it keeps the next character, as it is)



def test_a_chart_id_with_a_quote_reaches_python_d_whole():
    """python.d.plugin writes dimension ids, names and titles inside single quotes as they are:
    a chart id "it's" (from a proxy, a hostile agent) split the SET and DIMENSION lines of its
    model in the middle of the id, and shifted every field of its drivers chart after the title."""
    from collector.runner import Service
    svc = Service(configuration={'job_name': 'anomalies', 'attribution_charts': True})
    svc.out, svc.log_stream = io.StringIO(), io.StringIO()
    svc.create()
    svc.detector = FakeDetector([FakeStep({"tst.it's": (0.999, 1)}, added=["tst.it's"])])
    data = svc.get_data()
    written = [x for c in svc.charts for x in [c.title] + [t for d in c for t in (d.id, d.name)]]
    assert "Anomaly Drivers of tst.it\"s" in written and 'tst.it"s_prob' in data and 'tst.it"s_anomaly' in data
    assert not any("'" in x for x in written + list(data)), written


def test_a_name_from_the_agent_cannot_start_a_log_line_of_its_own():
    """Chart ids and dimension names are the agent's (a proxy's, a streamed child's): a newline in
    one wrote a second line that read as python.d's own (an ERROR of another time and job), and
    an escape sequence reached the terminal of whoever tails the log."""
    from collector.runner import Service
    forged = '\n2030-01-01 00:00:00: python.d ERROR: anomalies[other] : FORGED'
    svc = Service(configuration={'job_name': 'anomalies'})
    svc.out, svc.log_stream = io.StringIO(), io.StringIO()
    svc.create()
    step = FakeStep({'tst.x' + forged: (0.999, 1)}, added=['tst.x' + forged])
    step.drivers = {'tst.x' + forged: [('h::tst.x{}|us\x1b[2Jer{}'.format(forged, forged), 1.0)]}
    svc.detector = FakeDetector([step])
    svc.get_data()
    svc.error('cannot load', repr(forged), forged)
    lines = svc.log_stream.getvalue().splitlines()
    assert len(lines) == 3 and not any(line.startswith('2030') for line in lines), lines   # (and 'first prediction')
    assert all(': anomalies.plugin ' in line and 'anomalies[anomalies] :' in line for line in lines), lines
    assert "anomaly flagged on 'tst.x_2030-01-01 00:00:00: python.d ERROR" in lines[0] and '\x1b' not in lines[0]

def test_attribution_charts_on_the_standalone_base():
    from collector.runner import Service
    from collector.service import driver_dim
    assert driver_dim('system.cpu', 'h::system.cpu|user') == ('system.cpu|user', 'user')
    assert driver_dim('cpu_temp', 'h::sensors.temp|cpu') == ('cpu_temp|sensors.temp|cpu', 'sensors.temp|cpu')
    svc = Service(configuration={'job_name': 'anomalies', 'attribution_charts': True})
    svc.out, svc.log_stream = io.StringIO(), io.StringIO()
    svc.create()
    step = FakeStep({'cpu_temp': (0.999, 1)}, added=['cpu_temp'])
    step.drivers = {'cpu_temp': [('h::sensors.temp|cpu', 0.75), ('h::system.cpu|user', 0.25)]}
    svc.detector = FakeDetector([step])
    data = svc.get_data()
    assert data['cpu_temp|sensors.temp|cpu'] == 7500 and data['cpu_temp|system.cpu|user'] == 2500
    svc.update(1)
    out = svc.out.getvalue()
    assert "CHART anomalies.drivers_cpu_temp 'anomalies.drivers_cpu_temp' 'Anomaly Drivers of cpu_temp' " \
           "'percentage' 'drivers' 'anomalies.drivers' stacked" in out
    assert "DIMENSION 'cpu_temp|sensors.temp|cpu' 'sensors.temp|cpu' absolute 1 100" in out
    assert "SET 'cpu_temp|sensors.temp|cpu' = 7500" in out



def test_a_job_reading_a_streamed_child_names_it_in_its_charts_and_flag_lines():
    """Its charts are the parent's (python.d runs there), and so are the alarms on them: the
    titles and the flag line say which node the models are of."""
    from collector.runner import Service
    out = {}
    for host in ('127.0.0.1:19999', 'parent:19999/host/child1'):
        svc = Service(configuration={'job_name': 'edge', 'host': host, 'attribution_charts': True})
        svc.out, svc.log_stream = io.StringIO(), io.StringIO()
        svc.create()
        svc.detector = FakeDetector([FakeStep({'system.cpu': (0.999, 1)}, added=['system.cpu'])])
        svc.update(1)
        out[host] = svc.out.getvalue(), svc.log_stream.getvalue()
    charts, log = out['parent:19999/host/child1']
    assert "'Anomaly Probability (node child1)'" in charts and "'Anomaly (node child1)'" in charts, charts
    assert "'Node Anomaly Rate: share of models flagged (node child1)'" in charts
    assert "'Anomaly Drivers of system.cpu (node child1)'" in charts
    assert "anomaly flagged on 'system.cpu' of child1 (probability 99.9%)" in log, log
    charts, log = out['127.0.0.1:19999']
    assert "'Anomaly Probability'" in charts and "'Anomaly Drivers of system.cpu'" in charts and 'child1' not in charts
    assert "anomaly flagged on 'system.cpu' (probability 99.9%)" in log, log


def test_a_long_job_names_drivers_charts_stay_within_the_agents_chart_ids():
    """python.d puts 'anomalies_<job>.' in front of a job's charts: with a job named after a
    child node of 100 characters, a model id of 100 made a drivers chart id of 219, which the
    agent cut at 199 and then did not know at its first update (it disables python.d.plugin)."""
    from collector.runner import Service
    job, model = 'child-' + 'n' * 94, 'cgroup_' + 'c' * 93
    svc = Service(configuration={'job_name': job, 'attribution_charts': True})
    svc.out, svc.log_stream = io.StringIO(), io.StringIO()
    assert svc.check()
    svc.create()
    step = FakeStep({model: (0.999, 1), 'system.cpu': (0.5, 0)}, added=[model, 'system.cpu'])
    step.drivers = {model: [('h::{}|user'.format(model), 1.0)], 'system.cpu': [('h::system.cpu|user', 1.0)]}
    svc.detector = FakeDetector([step])
    svc.get_data()
    svc.update(1)
    ids = [line.split()[1] for line in svc.out.getvalue().splitlines() if line.startswith('CHART ')]
    assert 'anomalies_{}.drivers_system.cpu'.format(job) in ids
    assert len(ids) == 6 and all(len(i) <= 199 for i in ids), ids


def test_a_job_name_too_long_for_any_chart_id_is_refused():
    """A name that leaves a chart id no room is a configuration error naming the fix, not a
    plugin the agent disables with every other module's jobs."""
    from collector.config import ConfigError, parse_job_config
    parse_job_config({'attribution_charts': True}, job_name='n' * 140)
    with pytest.raises(ConfigError) as e:
        parse_job_config({'attribution_charts': True}, job_name='n' * 141)
    assert e.value.errors == ["job name of 141 bytes: its attribution_charts' ids ('anomalies_<job>.drivers_"
                              "<model>') would pass the agent's 199 bytes, and the agent would disable "
                              "python.d.plugin: give the job a name (its 'name' key) of at most 140 (a letter "
                              "outside ASCII takes 2-4)"]
    parse_job_config({}, job_name='n' * 177)
    with pytest.raises(ConfigError) as e:
        parse_job_config({'name': 'n' * 178}, job_name='short')
    assert 'at most 177' in e.value.errors[0]
    # the agent's limit is of a C string: a letter outside ASCII counts for its bytes
    parse_job_config({'name': '\u0436' * 88}, job_name='short')
    with pytest.raises(ConfigError) as e:
        parse_job_config({'name': '\u0436' * 89}, job_name='short')
    assert e.value.errors[0].startswith('job name of 178 bytes')



def test_a_job_name_python_d_cannot_name_its_lock_file_after_is_refused():
    """python.d.plugin registers each job it starts in a lock file named after it
    ('anomalies_<name>.collector.lock'): with a '/' in the name, or one too long for a file name,
    that fails after the job's check, and python.d drops the job ('registration failed') while
    check-config said ok (its training and Prometheus port already started)."""
    from collector.config import ConfigError, parse_job_config
    for raw, job in (({}, 'web/1'), ({'name': 'a/b'}, 'web1'), ({'override_name': 'a/b'}, 'web1'),
                     ({'name': 'ж' * 116}, 'web1')):
        with pytest.raises(ConfigError) as e:
            parse_job_config(raw, job_name=job)
        assert any("python.d.plugin names the job's lock file after it" in line for line in e.value.errors), e.value.errors
    parse_job_config({'name': 'ж' * 88}, job_name='web1')   # 176 bytes: within the chart ids' 199 and the lock file's 255
    parse_job_config({'name': 'web.1'}, job_name='a b')


class _Models:
    """A detector's ``models`` as the service reads them: each model's columns."""
    def __init__(self, columns):
        self.models = {m: type('Fitted', (), {'columns': cols})() for m, cols in columns.items()}


def test_a_custom_model_of_one_dimension_on_two_nodes_charts_both_of_its_drivers():
    """A custom model of system.cpu|user on two nodes: its drivers chart keeps one dimension
    per node (before, both had one id, which the framework refused, and that model and every
    model after it in the step lost their dimensions for good). A node given as an IPv6
    address is part of the id, not split inside it."""
    from collector.runner import Service
    from collector.service import driver_dim
    a, b = '[::1]:19999::system.cpu|user', '10.0.0.2:19999::system.cpu|user'
    assert driver_dim('system.cpu', '[::1]:19999::system.cpu|user') == ('system.cpu|user', 'user')
    svc = Service(configuration={'job_name': 'anomalies', 'attribution_charts': True})
    svc.out, svc.log_stream = io.StringIO(), io.StringIO()
    svc.create()
    step = FakeStep({'both': (0.999, 1), 'system.load': (0.2, 0)}, added=['both', 'system.load'])
    step.drivers = {'both': [(a, 0.75), (b, 0.25)]}
    svc.detector = FakeDetector([step])
    svc.detector.models = _Models({'both': [a, b], 'system.load': ['h::system.load|load1']}).models
    data = svc.get_data()
    assert data['both|[::1]:19999::system.cpu|user'] == 7500 and data['both|10.0.0.2:19999::system.cpu|user'] == 2500
    assert data['both_prob'] == 9990 and data['system.load_prob'] == 2000
    assert 'error' not in svc.log_stream.getvalue().lower(), svc.log_stream.getvalue()


def test_a_dimension_the_framework_refuses_costs_only_its_model(monkeypatch):
    """python.d's charts raise on a dimension they will not take: that model's trouble is
    logged, and the models after it in the step still get their dimensions and values."""
    from collector.pythond import ChartError
    from collector.runner import Service
    svc = Service(configuration={'job_name': 'anomalies'})
    svc.out, svc.log_stream = io.StringIO(), io.StringIO()
    svc.create()
    chart = svc.charts['probability']
    original = type(chart).add_dimension

    def refusing(self, dim):
        if dim[0] == 'apps.cpu_prob':
            raise ChartError('refused')
        return original(self, dim)
    monkeypatch.setattr(type(chart), 'add_dimension', refusing)
    svc.detector = FakeDetector([FakeStep({'apps.cpu': (0.5, 0), 'system.cpu': (0.2, 0)},
                                          added=['apps.cpu', 'system.cpu'])])
    data = svc.get_data()
    assert data['system.cpu_prob'] == 2000 and 'system.cpu_prob' in svc.charts['probability']
    assert "charts of model 'apps.cpu' not changed: ChartError('refused')" in svc.log_stream.getvalue()


def _drivers_through(svc, steps, dim):
    """``steps`` (each model's drivers on its dimension ``dim``) taken up by ``svc``, one update
    each: what each update wrote."""
    for s in steps:
        s.drivers = {m: [('h::{}|{}'.format(m, dim), 1.0)] for m in s.scores}
    svc.detector = FakeDetector(list(steps))
    outs = []
    for _ in steps:
        svc.out.truncate(0), svc.out.seek(0)
        svc.update(1000000)
        outs.append(svc.out.getvalue())
    return outs


@pytest.mark.parametrize('cleanup, obsolete_at', [(None, [10]), (3, [3]), (0, [])])
def test_a_gone_models_drivers_chart_is_retired_at_once_and_made_obsolete_after_chart_cleanup(cleanup, obsolete_at):
    """What python.d does with a chart left without values, the standalone base does too: its
    removed dimensions are declared obsolete on the next update, and after chart_cleanup
    updates without a value (10 unless set; 0: never) the chart itself, until values return."""
    from collector.runner import Service
    conf = {'job_name': 'anomalies', 'attribution_charts': True}
    if cleanup is not None:
        conf['chart_cleanup'] = cleanup
    svc = Service(configuration=conf)
    svc.out, svc.log_stream = io.StringIO(), io.StringIO()
    svc.create()
    both = {'system.cpu': (0.2, 0), 'system.ram': (0.3, 0)}
    steps = [FakeStep(both, added=['system.cpu', 'system.ram'])]
    steps += [FakeStep({'system.cpu': (0.2, 0)}, removed=['system.ram'] if i == 0 else ()) for i in range(12)]
    steps += [FakeStep(both, added=['system.ram'])]
    outs = _drivers_through(svc, steps, 'used')
    assert "DIMENSION 'system.ram|used' 'used' absolute 1 100 'obsolete'" in outs[1]   # at once
    obsolete = "CHART anomalies.drivers_system.ram 'anomalies.drivers_system.ram'"
    assert [i for i, o in enumerate(outs) if obsolete in o and "'obsolete'" in o.split(obsolete)[1].split('\n')[0]] \
        == obsolete_at
    assert ('drivers_system.ram' in svc.log_stream.getvalue()) == bool(obsolete_at)
    assert 'anomalies.drivers_system.cpu' not in ''.join(outs[1:]).replace('BEGIN anomalies.drivers_system.cpu', '')
    # values back: declared again, then updated
    assert outs[-1].index(obsolete) < outs[-1].index('BEGIN anomalies.drivers_system.ram')


def test_drivers_charts_follow_their_models_dimensions_and_go_with_the_models(monkeypatch):
    """With attribution_charts, a model retrained on other dimensions (process groups that come
    and go) has only those on its drivers chart, and the drivers charts of models removed for
    good (containers that came and went) are dropped once declared obsolete, not kept for the
    life of the job."""
    from collector.runner import Service

    class Model:
        def __init__(self, *dims):
            self.columns = ['h::apps.cpu|{}'.format(d) for d in dims]
    svc = Service(configuration={'job_name': 'anomalies', 'attribution_charts': True, 'chart_cleanup': 2})
    svc.out, svc.log_stream = io.StringIO(), io.StringIO()
    svc.create()
    det = FakeDetector([])
    det.models = {'apps.cpu': Model('g0', 'x')}
    svc.detector = det

    def run(step):
        det.steps.append(step)
        svc.update(1000000)
    for k in range(1, 6):   # retrained five times, each time with another group beside 'x'
        step = FakeStep({'apps.cpu': (1.0, 1)}, added=['apps.cpu'] if k == 1 else ())
        step.drivers = {'apps.cpu': [(c, 0.5) for c in det.models['apps.cpu'].columns]}
        run(step)
        det.models['apps.cpu'] = Model('g{}'.format(k), 'x')
    assert sorted(d.id for d in svc.charts['drivers_apps.cpu']) == ['apps.cpu|g4', 'apps.cpu|x']
    cpu = det.models['apps.cpu']
    # a container whose chart went without values long enough for its drivers chart to be made
    # obsolete, then its model removed: the chart must end obsolete on the agent, not declared
    # live again by the removal of its dimensions
    det.models['cgroup_old.cpu'] = Model('user')
    run(FakeStep({'apps.cpu': (0.1, 0), 'cgroup_old.cpu': (1.0, 1)}, added=['cgroup_old.cpu']))
    for _ in range(4):
        run(FakeStep({'apps.cpu': (0.1, 0)}))
    del det.models['cgroup_old.cpu']
    run(FakeStep({'apps.cpu': (0.1, 0)}, removed=['cgroup_old.cpu']))
    for _ in range(4):
        run(FakeStep({'apps.cpu': (0.1, 0)}))
    lines = [ln for ln in svc.out.getvalue().split('\n') if ln.startswith('CHART anomalies.drivers_cgroup_old.cpu ')]
    assert len(lines) == 2 and " 'obsolete' " in lines[-1] and 'drivers_cgroup_old.cpu' not in svc.charts, lines
    # a container scored with no flag never had its drivers chart sent: dropped with its model
    det.models['cgroup_quiet.cpu'] = Model('user')
    run(FakeStep({'apps.cpu': (0.1, 0), 'cgroup_quiet.cpu': (0.1, 0)}, added=['cgroup_quiet.cpu']))
    del det.models['cgroup_quiet.cpu']
    run(FakeStep({'apps.cpu': (0.1, 0)}, removed=['cgroup_quiet.cpu']))
    run(FakeStep({'apps.cpu': (0.1, 0)}))
    assert 'drivers_cgroup_quiet.cpu' not in svc.charts
    assert 'anomalies.drivers_cgroup_quiet.cpu' not in svc.out.getvalue()
    for k in range(30):     # 30 containers, each for 2 steps
        name = 'cgroup_c{}.cpu'.format(k)
        det.models = {'apps.cpu': cpu, name: Model('user')}
        run(FakeStep({'apps.cpu': (0.1, 0), name: (1.0, 1)}, added=[name]))
        del det.models[name]
        run(FakeStep({'apps.cpu': (0.1, 0)}, removed=[name]))
    for _ in range(3):
        run(FakeStep({'apps.cpu': (0.1, 0)}))
    # probability, anomaly, rate, flagged_for and apps.cpu's drivers
    assert len(svc.charts) == 5, [c.id for c in svc.charts]
    last = svc.out.getvalue().split("CHART anomalies.drivers_cgroup_c29.cpu")
    assert len(last) >= 3 and " 'obsolete' " in last[-1].split('\n')[0]   # declared, at last made obsolete


def test_a_plugins_interval_is_a_floor_under_each_jobs_own_update_every(tmp_path):
    """The agent starts a plugins.d plugin with its own interval (1): a small box's
    'update_every: 10' must still step every 10 s, as under python.d, whose argument is a
    floor too; a job without one takes the agent's."""
    from collector.runner import select_job
    conf = tmp_path / 'anomalies.conf'
    conf.write_text("slow:\n  update_every: 10\nfast:\n  update_every: 1\nplain:\n  lags_n: 3\n")
    assert select_job(str(conf), 'slow', update_every=1)['update_every'] == 10
    assert select_job(str(conf), 'fast', update_every=2)['update_every'] == 2
    assert select_job(str(conf), 'plain', update_every=3)['update_every'] == 3
    raw = select_job(str(conf))
    assert raw['job_name'] == 'slow' and raw['update_every'] == 10
    from collector.config import ConfigError
    with pytest.raises(ConfigError) as e:   # a job asked of the defaults: said as such, not 'in None'
        select_job(None, 'slow')
    assert e.value.errors == ["no job 'slow' in the defaults (no --config) (jobs: anomalies)"]


def test_a_run_without_a_job_takes_every_job_but_one_whose_name_another_has_taken(tmp_path):
    """python.d.plugin runs every job of the file, but only the first of each name (its 'name'
    key, else the job's, spaces as '_'): the others' charts would be the same charts."""
    from collector.runner import select_jobs
    conf = tmp_path / 'anomalies.conf'
    conf.write_text("local:\n  update_every: 10\nparent:\n  host: 'p:19999'\nsame:\n  name: local\n"
                    "'my job':\n  lags_n: 3\nmy_job:\n  lags_n: 4\n")
    notes = []
    raws = select_jobs(str(conf), update_every=2, notes=notes)
    assert [(r['job_name'], r['update_every']) for r in raws] == [('local', 10), ('parent', 2), ('my job', 2)]
    assert raws[1]['host'] == 'p:19999'
    assert notes == ["job same not run: its charts would be job local's (give it its own name)",
                     "job my_job not run: its charts would be job my job's (give it its own name)"]
    assert [r['job_name'] for r in select_jobs(str(conf), job='same', host='h:1')] == ['same']


def test_a_run_says_which_of_its_jobs_python_d_would_not_run(tmp_path):
    """python.d.plugin skips 'web1' after 'web10' (a name that is part of the last one's, as
    text): ``run`` ran both without a word, so a file tried standalone then lost a job under
    the agent."""
    from collector.runner import select_jobs
    conf = tmp_path / 'anomalies.conf'
    conf.write_text("web10:\n  lags_n: 3\nweb1:\n  lags_n: 4\ndb:\n  lags_n: 5\n")
    notes = []
    assert [r['job_name'] for r in select_jobs(str(conf), notes=notes)] == ['web10', 'web1', 'db']
    assert notes == ["job web1: python.d.plugin would not run it ('already served by another job': its name is part "
                     "of job web10's, the job before it); give it a name of its own"]


def test_a_job_whose_every_model_is_gone_lets_its_charts_be_made_obsolete():
    """A job whose charts all went (a container's, an interface deleted): once its last model is
    removed, its charts are left without values, so that after chart_cleanup updates they are
    declared obsolete, as a gone model's drivers chart is, not kept frozen at the last values
    (rate, average_prob) for the life of the job; they are declared again when a model comes back."""
    from collector.runner import Service
    svc = Service(configuration={'job_name': 'veth', 'chart_cleanup': 3})
    svc.out, svc.log_stream = io.StringIO(), io.StringIO()
    svc.create()
    det = FakeDetector([])
    det.models = {'net.rv0': object()}
    svc.detector = det

    def run(step):
        det.steps.append(step)
        svc.out.truncate(0), svc.out.seek(0)
        svc.update(1000000)
        return svc.out.getvalue()
    assert 'BEGIN anomalies_veth.rate' in run(FakeStep({'net.rv0': (0.5, 0)}, added=['net.rv0']))
    run(FakeStep({}, fresh=True))   # no values from its chart for a while
    del det.models['net.rv0']
    outs = [run(FakeStep({}, removed=['net.rv0'], fresh=False))]
    outs += [run(FakeStep({}, fresh=False)) for _ in range(5)]
    assert not any('BEGIN ' in o for o in outs), outs   # no last values repeated
    for chart in ('probability', 'anomaly', 'rate', 'flagged_for'):
        line = "CHART anomalies_veth.{0} 'anomalies_veth.{0}'".format(chart)
        assert any(line in o and "'obsolete'" in o.split(line)[1].split('\n')[0] for o in outs), (chart, outs)
    assert "chart 'anomalies_veth.rate' was made obsolete" in svc.log_stream.getvalue()
    det.models['net.rv0'] = object()
    back = run(FakeStep({'net.rv0': (0.25, 0)}, added=['net.rv0']))
    assert "CHART anomalies_veth.rate 'anomalies_veth.rate'" in back and 'BEGIN anomalies_veth.rate' in back
    assert "'obsolete'" not in back.split("CHART anomalies_veth.rate")[1].split('\n')[0]


def test_a_job_whose_every_model_is_gone_no_longer_exports_their_last_values(tmp_path):
    """Nor are the gone charts served to Prometheus at their last values (a flag up, a node rate
    of 100 %) for the life of the job: the textfile then holds no chart and a quiet node."""
    from collector.runner import Service
    textfile = tmp_path / 'anomalies.prom'
    svc = Service(configuration={'job_name': 'veth'})
    svc.out, svc.log_stream = io.StringIO(), io.StringIO()
    svc.create()
    from collector.prometheus import Exporter
    svc.exporter = Exporter(str(textfile), job='veth')   # as check() starts it
    det = FakeDetector([])
    det.models = {'net.rv0': object()}
    svc.detector = det
    det.steps.append(FakeStep({'net.rv0': (1.0, 1)}, added=['net.rv0']))
    svc.update(1000000)
    assert 'anomaly_flag{anomalies_job="veth",chart="net.rv0"} 1.0' in textfile.read_text()
    del det.models['net.rv0']
    det.steps.append(FakeStep({}, removed=['net.rv0'], fresh=False))
    svc.update(1000000)
    text = textfile.read_text()
    assert [line for line in text.splitlines() if 'chart="net.rv0"' in line] == [
        'anomaly_flagged_seconds_total{anomalies_job="veth",chart="net.rv0"} 1.0'], text   # a counter: it stays a while
    assert 'anomaly_rate{anomalies_job="veth"} 0.0' in text and 'anomaly_flag_longest_seconds{anomalies_job="veth"} 0.0' in text
    svc.exporter.close()


def test_a_job_not_charted_yet_leaves_its_charts_alone_while_it_has_no_model():
    """Before its first prediction (models waiting for history), a job has nothing to take down:
    no chart is declared, obsolete or not, and nothing is logged of them."""
    from collector.runner import Service
    svc = Service(configuration={'job_name': 'anomalies', 'chart_cleanup': 2})
    svc.out, svc.log_stream = io.StringIO(), io.StringIO()
    svc.create()
    det = FakeDetector([FakeStep({}, fresh=False) for _ in range(5)])
    det.models = {}
    svc.detector = det
    for _ in range(5):
        assert not svc.update(1000000)
    assert svc.out.getvalue() == '' and 'obsolete' not in svc.log_stream.getvalue()


def test_a_drivers_chart_made_obsolete_before_its_model_is_removed_is_not_declared_again():
    """A model whose chart went without values (an interface deleted) has its drivers chart made
    obsolete after chart_cleanup updates; when its model is removed a minute or two later, that
    chart stays obsolete: not declared live again, empty, for chart_cleanup more updates (an empty
    chart back in the menu, and a second 'made obsolete' line in the log)."""
    from collector.runner import Service
    svc = Service(configuration={'job_name': 'anomalies', 'attribution_charts': True, 'chart_cleanup': 3})
    svc.out, svc.log_stream = io.StringIO(), io.StringIO()
    svc.create()
    both = {'system.cpu': (0.2, 0), 'net.rv0': (0.3, 0)}
    steps = [FakeStep(both, added=list(both))]
    steps += [FakeStep({'system.cpu': (0.2, 0)}) for _ in range(5)]                  # net.rv0 without values
    steps += [FakeStep({'system.cpu': (0.2, 0)}, removed=['net.rv0'] if i == 0 else ()) for i in range(6)]
    outs = _drivers_through(svc, steps, 'sent')
    line = "CHART anomalies.drivers_net.rv0 "
    declared = [(i, o.split(line)[1].split('\n')[0]) for i, o in enumerate(outs) if line in o]
    assert [i for i, _ in declared] == [0, 3] and "'obsolete'" in declared[-1][1], declared
    assert svc.log_stream.getvalue().count("chart 'anomalies.drivers_net.rv0' was made obsolete") == 1
    assert 'drivers_net.rv0' not in svc.charts and 'net.rv0_prob' not in svc.charts['probability']


def test_a_chart_made_obsolete_stays_so_when_a_dimension_it_never_showed_is_taken_away():
    """Every model gone, the charts were made obsolete after chart_cleanup updates; a model
    then trained and removed again before it scored (a container that died meanwhile) took its
    dimension away, and the definition that tells the agent so declared the chart live again,
    empty, in the menu for the rest of the job's life."""
    from collector.pythond import Chart
    chart = Chart('anomalies', 'probability', ['probability', 'Anomaly Probability', 'percentage', 'probability',
                                               'anomalies.probability', 'line'], 60000, 1, 'anomalies', cleanup=3)
    chart.add_dimension(['a.x_prob', 'a.x', 'absolute', 1, 100])
    out = [chart.update({'a.x_prob': 20}, 1000000)]
    chart.del_dimension('a.x_prob')
    out += [chart.update({}, 1000000) for _ in range(5)]
    assert "'obsolete'" in out[3].splitlines()[-1], out          # after 3 updates without a value
    chart.add_dimension(['b.y_prob', 'b.y', 'absolute', 1, 100])
    out = [chart.update({}, 1000000)]
    chart.del_dimension('b.y_prob')
    out += [chart.update({}, 1000000) for _ in range(5)]
    said = ''.join(out)
    chart_lines = [line for line in said.splitlines() if line.startswith('CHART ')]
    assert chart_lines and chart_lines[-1].endswith("'obsolete' 'python.d.plugin' 'anomalies'"), said
    chart.add_dimension(['c.z_prob', 'c.z', 'absolute', 1, 100])
    back = chart.update({'c.z_prob': 50}, 1000000)   # values again: declared live, with its dimension
    assert back.startswith('CHART ') and "'obsolete'" not in back.splitlines()[0] and 'c.z_prob' in back, back


def test_the_charts_of_a_job_reading_a_child_through_its_parent_name_the_child():
    """Such a job charts on the agent it runs on, the parent, beside the parent's own job: its
    titles say which node they are about, for the dashboard and for `top --host parent/host/child`."""
    from collector.runner import Service
    out = {}
    for host in ('parent:19999/host/child1', '127.0.0.1:19999'):
        svc = Service(configuration={'job_name': 'child1', 'host': host, 'attribution_charts': True})
        svc.out, svc.log_stream = io.StringIO(), io.StringIO()
        svc.create()
        step = FakeStep({'system.cpu': (0.999, 1)}, added=['system.cpu'])
        step.drivers = {'system.cpu': [('h::system.cpu|user', 1.0)]}
        svc.detector = FakeDetector([step])
        svc.get_data()
        svc.update(1)
        out[host] = {line.split()[1]: line.split("'")[3] for line in svc.out.getvalue().splitlines()
                     if line.startswith('CHART ')}
    assert out['parent:19999/host/child1'] == {
        'anomalies_child1.probability': 'Anomaly Probability (node child1)',
        'anomalies_child1.anomaly': 'Anomaly (node child1)',
        'anomalies_child1.rate': 'Node Anomaly Rate: share of models flagged (node child1)',
        'anomalies_child1.flagged_for': 'Longest Running Anomaly Flag (node child1)',
        'anomalies_child1.drivers_system.cpu': 'Anomaly Drivers of system.cpu (node child1)'}
    assert out['127.0.0.1:19999']['anomalies_child1.probability'] == 'Anomaly Probability'
    from collector.hosts import titled_node
    assert [titled_node(t) for t in ('Anomaly Probability (node child1)', 'Anomaly Probability', None,
                                     # as /api/v1/charts lists them
                                     'Anomaly Probability (node child1) (anomalies_child1.probability)',
                                     'Anomaly Probability (anomalies.probability)')] == [
        'child1', None, None, 'child1', None]
