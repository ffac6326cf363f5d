"""The exported gauges carry the values the job charts, for alert rules outside Netdata."""
import time

from prometheus_client.parser import text_string_to_metric_families

from collector import prometheus
from collector.prometheus import Exporter


def test_the_textfile_carries_each_model_and_what_the_stock_alarms_watch(tmp_path):
    textfile = tmp_path / 'anomalies.prom'
    exporter = Exporter(str(textfile), job='edge')
    exporter.update({'system.cpu': (0.999, 1), 'system.ram': (0.4, 0)}, rate=0.5, rate_1m=1.0, longest=42.0)
    got = {}
    for family in text_string_to_metric_families(textfile.read_text()):
        for sample in family.samples:
            assert sample.labels['anomalies_job'] == 'edge'
            got[sample.name, sample.labels.get('chart')] = sample.value
    assert got[('anomaly_probability', 'system.cpu')] == 0.999 and got[('anomaly_flag', 'system.ram')] == 0
    assert got[('anomaly_rate', None)] == 0.5
    assert got[('anomaly_rate_1m', None)] == 1.0
    assert got[('anomaly_flag_longest_seconds', None)] == 42.0
    exporter.update({'system.cpu': (0.2, 0), 'system.ram': (0.3, 0)}, rate=0.0, rate_1m=0.0, longest=0.0)   # a quiet step
    text = textfile.read_text()
    assert 'anomaly_rate_1m{anomalies_job="edge"} 0.0' in text
    assert 'anomaly_flag_longest_seconds{anomalies_job="edge"} 0.0' in text


def _samples(text):
    return {(s.name, s.labels.get('chart')): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_a_job_that_has_not_scored_yet_shows_as_not_updating_rather_than_as_a_quiet_node(tmp_path):
    """Its agent never answered, or its models never trained: a node rate of 0 would read as
    'nothing unusual', and a textfile without the update time could not be alerted on."""
    textfile = tmp_path / 'anomalies.prom'
    before = time.time()
    exporter = Exporter(str(textfile), job='edge')
    got = _samples(textfile.read_text())
    assert set(got) == {('anomaly_last_update_timestamp_seconds', None)}
    assert before <= got[('anomaly_last_update_timestamp_seconds', None)] <= time.time()
    exporter.update({'system.cpu': (0.5, 0)}, rate=0.0, rate_1m=0.0, longest=0.0)
    assert ('anomaly_rate_1m', None) in _samples(textfile.read_text())


def test_a_stopped_job_takes_its_textfile_away(tmp_path):
    """node-exporter serves a textfile for as long as it is there: a flag up when the job
    stopped would stay up."""
    textfile = tmp_path / 'anomalies.prom'
    exporter = Exporter(str(textfile), job='edge')
    exporter.update({'system.cpu': (1.0, 1)}, rate=1.0, rate_1m=1.0, longest=700.0)
    assert textfile.exists()
    exporter.close()
    assert not textfile.exists()


def test_a_second_job_on_one_textfile_is_refused_not_mixed_in(tmp_path):
    """python.d runs every job in one process: two jobs writing one file would each replace the
    other's series at every step, and the first to stop would remove it under the other."""
    import pytest
    textfile = tmp_path / 'anomalies.prom'
    first = Exporter(str(textfile), job='local')
    with pytest.raises(ValueError, match='is written by job local already'):
        Exporter(str(tmp_path / '.' / 'anomalies.prom'), job='child')
    first.update({'system.cpu': (0.5, 0)}, rate=0.0, rate_1m=0.0, longest=0.0)
    assert 'anomalies_job="local"' in textfile.read_text() and 'child' not in textfile.read_text()
    first.close()
    second = Exporter(str(textfile), job='child')   # free once its writer stopped
    second.close()


def test_a_short_flag_between_two_scrapes_still_reads_in_what_prometheus_scrapes(tmp_path, monkeypatch):
    """Scraped every 15 s, a flag up for 5 s is most often read as 0 by anomaly_flag, and one
    up for 40 s as 14 and 29 s by anomaly_flag_longest_seconds, under the lasting alert's 30 s
    (Netdata's alarm, reading every second, warns). The counter of flagged seconds shows every
    flag, and the longest flag of the last minute holds its age for a minute."""
    clock = [1000.0]
    monkeypatch.setattr(prometheus.time, 'monotonic', lambda: clock[0])
    textfile = tmp_path / 'anomalies.prom'
    exporter = Exporter(str(textfile), job='edge')

    def step(cpu_flag, longest, seconds=1):
        exporter.update({'system.cpu': (0.999 if cpu_flag else 0.3, cpu_flag), 'system.ram': (0.3, 0)},
                        rate=0.5 * cpu_flag, rate_1m=0.5, longest=longest, seconds=seconds)
        clock[0] += seconds
    for age in range(40):
        step(1, float(age))
    for _ in range(5):
        step(0, 0.0)
    got = _samples(textfile.read_text())
    assert got[('anomaly_flag', 'system.cpu')] == 0 and got[('anomaly_flag_longest_seconds', None)] == 0
    assert got[('anomaly_flag_longest_1m_seconds', None)] == 39
    assert got[('anomaly_flagged_seconds_total', 'system.cpu')] == 40
    assert got[('anomaly_flagged_seconds_total', 'system.ram')] == 0   # there from the first step: increase() sees its first flag
    for _ in range(60):
        step(0, 0.0)
    got = _samples(textfile.read_text())
    assert got[('anomaly_flag_longest_1m_seconds', None)] == 0 and got[('anomaly_flagged_seconds_total', 'system.cpu')] == 40
    step(1, 0.0, seconds=5)   # a job stepping every 5 s: a flagged step is 5 s flagged
    assert _samples(textfile.read_text())[('anomaly_flagged_seconds_total', 'system.cpu')] == 45


def test_a_model_removed_leaves_the_counters_after_ten_minutes_not_at_once(tmp_path, monkeypatch):
    """A chart whose values are late for some steps keeps its counter (a counter that went away
    and came back would read as a reset); a model removed for good has its series dropped."""
    clock = [1000.0]
    monkeypatch.setattr(prometheus.time, 'monotonic', lambda: clock[0])
    exporter = Exporter(None, job='edge')
    exporter.update({'system.cpu': (1.0, 1), 'disk.sdb': (1.0, 1)}, rate=1.0, rate_1m=1.0, longest=0.0)
    for _ in range(599):
        clock[0] += 1
        exporter.update({'system.cpu': (0.2, 0)}, rate=0.0, rate_1m=0.0, longest=0.0)
    assert ('anomaly_flagged_seconds_total', 'disk.sdb') in _samples(exporter.text().decode())
    clock[0] += 2
    exporter.update({'system.cpu': (0.2, 0)}, rate=0.0, rate_1m=0.0, longest=0.0)
    got = _samples(exporter.text().decode())
    assert ('anomaly_flagged_seconds_total', 'disk.sdb') not in got and got[('anomaly_flagged_seconds_total', 'system.cpu')] == 1
