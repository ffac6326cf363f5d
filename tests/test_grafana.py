"""The Grafana dashboard in docs/ loads and asks only for the metrics the collector exports."""
import json
import os
import re

from collector.prometheus import HELP
from conftest import ROOT

PROMQL_WORDS = {'sum', 'by', 'topk', 'avg_over_time', 'max_over_time', 'and', 'on', 'label_values', 'time',
                'instance', 'chart'}


def test_dashboard_is_valid_and_queries_exported_metrics():
    with open(os.path.join(ROOT, 'docs', 'grafana-anomalies.json')) as f:
        board = json.load(f)
    assert board['title'] and board['panels']
    exprs = [t['expr'] for p in board['panels'] for t in p['targets']]
    exprs += [v['definition'] for v in board['templating']['list'] if v.get('definition')]
    used = set()
    for expr in exprs:
        # every identifier outside label matchers and strings is an exported metric or PromQL
        bare = re.sub(r'\{[^}]*\}|\[[^\]]*\]|"[^"]*"', '', expr)
        names = set(re.findall(r'[a-zA-Z_][a-zA-Z0-9_]*', bare)) - PROMQL_WORDS
        assert names and names <= set(HELP), (expr, names)
        used |= names
    assert used == set(HELP)   # every exported metric is shown somewhere
    ids = [p['id'] for p in board['panels']]
    assert len(ids) == len(set(ids))
    for p in board['panels']:
        assert p['datasource']['uid'] == '${datasource}'
