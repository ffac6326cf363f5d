"""The Grafana dashboard and the Prometheus alert rules in docs/ ask only for the metrics the
collector exports, and the rules say what the stock health alarms say."""
import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

from collector.metrics import LASTING_ALARM_S, NODE_ALARM_CLEAR, NODE_ALARM_WARN
from collector.prometheus import HELP
from conftest import ROOT

PROMQL_WORDS = {'sum', 'by', 'topk', 'avg_over_time', 'max_over_time', 'increase', 'bool', 'and', 'on',
                'label_values', 'time', 'instance', 'chart', 'unless', 'or',
                'ALERTS'}   # Prometheus's own series of the alerts firing


def metric_names(expr):
    """The identifiers of a PromQL expression outside label matchers, ranges and strings."""
    bare = re.sub(r'\{[^}]*\}|\[[^\]]*\]|"[^"]*"|\b(?:on|ignoring|by)\s*\([^)]*\)', '', expr)
    return set(re.findall(r'[a-zA-Z_][a-zA-Z0-9_]*', bare)) - PROMQL_WORDS


def test_dashboard_is_valid_and_queries_exported_metrics():
    with open(os.path.join(ROOT, 'docs', 'grafana-anomalies.json')) as f:
        board = json.load(f)
    assert board['title'] and board['panels']
    # its nodes are those exporting anything: a job that has not scored yet exports only its
    # last update's time, and is the node the staleness panel is there for (listed from the
    # node gauges, it was in no panel, 'All' too)
    node = [v for v in board['templating']['list'] if v['name'] == 'instance'][0]
    assert node['query']['query'] == 'label_values(anomaly_last_update_timestamp_seconds, instance)'
    assert node['allValue'] == '.*'
    exprs = [t['expr'] for p in board['panels'] for t in p['targets']]
    exprs += [v['definition'] for v in board['templating']['list'] if v.get('definition')]
    used = set()
    for expr in exprs:
        names = metric_names(expr)   # every identifier is an exported metric or PromQL
        assert names and names <= set(HELP), (expr, names)
        used |= names
    assert used == set(HELP)   # every exported metric is shown somewhere
    for expr in exprs:   # two jobs on one node both export system.cpu: a join must tell them apart
        for labels in re.findall(r'\bon\s*\(([^)]*)\)', expr):
            assert 'anomalies_job' in labels, expr
    for p in board['panels']:   # and so must a legend
        for t in p['targets']:
            assert '{{anomalies_job}}' in t['legendFormat'] or re.search(r'\b(?:sum|count|max|min|avg) by \((?![^)]*anomalies_job)', t['expr']), t
    ids = [p['id'] for p in board['panels']]
    assert len(ids) == len(set(ids))
    for p in board['panels']:
        assert p['datasource']['uid'] == '${datasource}'


def health_crit(conf, template, clear=False):
    """The level an alarm goes critical at, or with ``clear`` the one it stays critical down to."""
    block = re.search(r'template: {}[\s\S]*?(?=\n\s*template:|\Z)'.format(template), conf).group(0)
    line = re.search(r'crit: .*', block).group(0)
    return float(re.search(r'\? \((\d+)\)' if clear else r'crit: \$this > (?:.*: \()?(\d+)', line).group(1))


def test_alert_rules_fire_where_the_health_alarms_warn_and_go_critical():
    with open(os.path.join(ROOT, 'docs', 'prometheus-alerts.yml')) as f:
        rules = [r for g in yaml.safe_load(f)['groups'] for r in g['rules']]
    with open(os.path.join(ROOT, 'health.d', 'anomalies.conf')) as f:
        conf = f.read()
    for rule in rules:
        assert metric_names(rule['expr']) <= set(HELP), rule['expr']
    levels = {(r['alert'], r['labels']['severity']): float(re.search(r' > ([\d.]+)', r['expr']).group(1))
              for r in rules}
    for rule in rules:   # a warning stands aside where its critical fires, at the critical's level
        above = re.search(r'\bunless\b[\s\S]*? > ([\d.]+)', rule['expr'])
        if rule['labels']['severity'] == 'warning' and rule['alert'] != 'AnomaliesNotUpdating':
            assert float(above.group(1)) == levels[(rule['alert'], 'critical')], rule['expr']
    assert levels[('AnomaliesNodeRate', 'warning')] == pytest.approx(NODE_ALARM_WARN / 100)
    assert levels[('AnomaliesNodeRate', 'critical')] == pytest.approx(health_crit(conf, 'anomalies_node_rate') / 100)
    assert levels[('AnomaliesFlagLasting', 'warning')] == LASTING_ALARM_S
    assert levels[('AnomaliesFlagLasting', 'critical')] == health_crit(conf, 'anomalies_flag_lasting')
    # once firing, the node rate's alerts hold down to where the alarm clears
    holds = {r['labels']['severity']: float(re.search(r'> ([\d.]+) and ignoring', r['expr']).group(1))
             for r in rules if r['alert'] == 'AnomaliesNodeRate'}
    assert holds['warning'] == pytest.approx(NODE_ALARM_CLEAR / 100)
    assert holds['critical'] == pytest.approx(health_crit(conf, 'anomalies_node_rate', clear=True) / 100)


@pytest.mark.skipif(shutil.which('promtool') is None, reason='promtool (Debian: prometheus) not installed')
def test_alert_rules_pass_their_promtool_unit_tests():
    """Each alert fires at its level and not before, with the summary a person reads."""
    result = subprocess.run(['promtool', 'test', 'rules', 'prometheus-alerts.test.yml'],
                            cwd=os.path.join(ROOT, 'tests'), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def promtool_passes(tmp_path, tests):
    """Run promtool's unit tests ``tests`` (its YAML as a dict) and fail with what it said."""
    path = tmp_path / 'board.test.yml'
    path.write_text(yaml.safe_dump(tests))
    result = subprocess.run(['promtool', 'test', 'rules', str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def panel_expr(title):
    """The query of the dashboard's panel ``title``, over every node (``$instance`` as All)."""
    with open(os.path.join(ROOT, 'docs', 'grafana-anomalies.json')) as f:
        board = json.load(f)
    (expr,) = [t['expr'] for p in board['panels'] if p['title'] == title for t in p['targets']]
    return expr.replace('$instance', '.*')


@pytest.mark.skipif(shutil.which('promtool') is None, reason='promtool (Debian: prometheus) not installed')
def test_the_seconds_since_the_last_update_go_on_growing_once_the_job_stopped(tmp_path):
    """A job whose /metrics port stopped (or whose textfile a standalone run removed) takes its
    series away: the stat, which shows the last value of its query, must read the time since the
    last update, not what it read while the job ran (a few seconds, green)."""
    expr = panel_expr('Seconds since the collector last updated')
    tests = {'evaluation_interval': '15s', 'rule_files': [], 'tests': [{
        'interval': '15s',
        'input_series': [{'series': 'anomaly_last_update_timestamp_seconds{instance="n:9591", anomalies_job="anomalies"}',
                          'values': '0+15x20 stale'}],   # updated every scrape for 5 minutes, then gone
        'promql_expr_test': [
            {'expr': expr, 'eval_time': '4m', 'exp_samples': [
                {'labels': '{instance="n:9591", anomalies_job="anomalies"}', 'value': 0}]},
            {'expr': expr, 'eval_time': '10m', 'exp_samples': [
                {'labels': '{instance="n:9591", anomalies_job="anomalies"}', 'value': 300}]},
        ]}]}
    promtool_passes(tmp_path, tests)


@pytest.mark.skipif(shutil.which('promtool') is None, reason='promtool (Debian: prometheus) not installed')
def test_the_charts_flagged_now_are_counted_per_job_not_added_across_a_nodes_jobs(tmp_path):
    """Two jobs exporting through one node-exporter (the node's own and a streamed child's) are
    one instance: the child's flagged charts are not the node's."""
    expr = panel_expr('Charts flagged now')
    series = 'anomaly_flag{{instance="n:9100", anomalies_job="{}", chart="{}"}}'
    tests = {'evaluation_interval': '15s', 'rule_files': [], 'tests': [{
        'interval': '15s',
        'input_series': [{'series': series.format('anomalies', 'system.cpu'), 'values': '1x4'},
                         {'series': series.format('anomalies', 'system.ram'), 'values': '0x4'},
                         {'series': series.format('child', 'system.cpu'), 'values': '1x4'},
                         {'series': series.format('child', 'system.load'), 'values': '1x4'}],
        'promql_expr_test': [{'expr': expr, 'eval_time': '30s', 'exp_samples': [
            {'labels': '{instance="n:9100", anomalies_job="anomalies"}', 'value': 1},
            {'labels': '{instance="n:9100", anomalies_job="child"}', 'value': 2}]}]}]}
    promtool_passes(tmp_path, tests)


@pytest.mark.skipif(shutil.which('promtool') is None, reason='promtool (Debian: prometheus) not installed')
def test_a_flag_of_seconds_between_two_scrapes_shows_in_the_flag_timeline(tmp_path):
    """anomaly_flag scraped every 15 s reads 0 before and after a 5 s flag: the timeline reads
    the counter of flagged seconds instead, and shows only the charts flagged in its range."""
    expr = panel_expr('Anomaly flags').replace('$__rate_interval', '1m').replace('$__range', '1h')
    series = 'anomaly_flagged_seconds_total{{instance="n:9100", anomalies_job="anomalies", chart="{}"}}'
    labels = '{{instance="n:9100", anomalies_job="anomalies", chart="{}"}}'
    tests = {'evaluation_interval': '15s', 'rule_files': [], 'tests': [{
        'interval': '15s',
        'input_series': [{'series': series.format('system.cpu'), 'values': '0 0 0 5x12'},   # flagged 5 s at 30-45 s
                         {'series': series.format('system.ram'), 'values': '0x14'}],
        'promql_expr_test': [
            {'expr': expr, 'eval_time': '1m', 'exp_samples': [{'labels': labels.format('system.cpu'), 'value': 1}]},
            {'expr': expr, 'eval_time': '3m', 'exp_samples': [{'labels': labels.format('system.cpu'), 'value': 0}]}]}]}
    promtool_passes(tmp_path, tests)
