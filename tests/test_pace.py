"""Whether the job's steps keep up with update_every: told once, with what to change."""
import io
import time

from collector.pace import Pace


def test_a_late_step_now_and_then_says_nothing():
    pace = Pace(1, window=60, late=10, settled=300)
    told = [pace.add(2.1 if k % 10 == 0 else 0.05) for k in range(600)]   # 6 in any 60
    assert not any(told) and not pace.behind


def test_steps_that_do_not_keep_up_are_told_once_then_once_when_they_do_again():
    pace = Pace(1, window=60, late=10, settled=300)
    told = [pace.add(1.4 if k % 3 == 0 else 0.2) for k in range(300)]
    said = [(k, t) for k, t in enumerate(told) if t]
    assert len(said) == 1 and said[0][0] == 27 and pace.behind, said   # the 10th late step
    assert said[0][1] == ('steps take longer than update_every (1 s): 10 of the last 28 did (the slowest 1.4 s, the '
                          'median 0.20 s), and the charts miss the seconds they overran; a larger update_every, or '
                          'fewer charts in scope (charts_regex, charts_to_exclude), keeps up')
    told = [pace.add(0.3) for _ in range(300)]
    assert [t for t in told if t] == ['steps keep up with update_every (1 s) again: the last 300 were on time']
    assert not pace.behind and told.index(next(t for t in told if t)) == 297   # 2 on time already, then 298
    # and a job stepping every 5 s is late only past 5 s
    slow_box = Pace(5, window=60, late=10)
    assert not any(slow_box.add(4.5) for _ in range(100))


def test_the_job_warns_once_when_its_steps_take_longer_than_update_every():
    """A step longer than update_every costs the charts the seconds it overran, and python.d
    says nothing of it: the job says so once in its log (a small box with too many charts)."""
    from collector.runner import Service
    from test_pythond import FakeStep

    class SlowDetector:
        def step(self):
            time.sleep(0.004)
            return FakeStep({'system.cpu': (0.5, 0)}, added=['system.cpu'])
    svc = Service(configuration={'job_name': 'anomalies'})
    svc.out, svc.log_stream = io.StringIO(), io.StringIO()
    svc.create()
    svc.detector = SlowDetector()
    svc.pace = Pace(0.002, window=20, late=5)   # (steps of 4 ms against an update_every of 2 ms)
    for _ in range(30):
        assert svc.get_data()['system.cpu_prob'] == 5000
    lines = [line for line in svc.log_stream.getvalue().splitlines() if 'update_every' in line]
    assert len(lines) == 1 and 'WARNING' in lines[0] and 'steps take longer than update_every (0.002 s): 5 of the ' \
        'last 5 did' in lines[0], lines


def test_steps_that_waited_for_an_agent_that_did_not_answer_are_not_counted_as_slow():
    """A step that waited 0.9 x update_every for an agent that did not answer is that agent's
    outage, told by its own line; it was also told as too many charts for update_every, and the
    note that the steps keep up again came only 300 steps after the agent was back."""
    from collector.runner import Service
    from test_pythond import FakeStep

    class HungAgent:
        unanswered = set()

        def step(self):
            time.sleep(0.004)   # the read's wait
            return FakeStep({'system.cpu': (0.5, 0)}, added=['system.cpu'])
    svc = Service(configuration={'job_name': 'anomalies'})
    svc.out, svc.log_stream = io.StringIO(), io.StringIO()
    svc.create()
    svc.detector = HungAgent()
    svc.pace = Pace(0.002, window=20, late=5)
    HungAgent.unanswered = {'127.0.0.1:19999'}
    for _ in range(30):
        svc.get_data()
    assert 'update_every' not in svc.log_stream.getvalue() and not svc.pace.times
    HungAgent.unanswered = set()   # the agent answers, as slowly: the job's own steps are late
    for _ in range(30):
        svc.get_data()
    lines = [line for line in svc.log_stream.getvalue().splitlines() if 'update_every' in line]
    assert len(lines) == 1 and 'steps take longer than update_every' in lines[0], lines
