"""The exported gauges carry the values the job charts, for alert rules outside Netdata."""
from prometheus_client.parser import text_string_to_metric_families

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
