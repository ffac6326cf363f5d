"""Which saved models a (re)started job can use, and what they say of when to train again.

``persist`` reads and writes one model's file; this is the job's view of many: each model
that loads and can score is used, any other is retrained, with one log line per reason.
"""
import math
import time

import numpy as np

from . import persist
from .batch import BatchScorer, Layout
from .netdata_api import dim_key


def check_alone(model_id, fm, blocks):
    """Lay ``fm`` out and score it alone, as the batch will with all: a file from another
    build that loads but lacks what the batch reads then costs only its own model."""
    layout = Layout({model_id: fm})
    BatchScorer({model_id: fm}, layout, blocks).score(np.zeros(len(layout) * blocks))


def read_saved(models_dir, config, specs, dimensions, blocks, agent=None):
    """``(loaded, metas, unused)`` for ``specs``: the models that still fit the configuration
    and the chart's ``dimensions`` (``{chart: names}``), their metadata, and ``{reason: [model
    ids]}`` of the others. Whatever a foreign or broken file does costs only its model."""
    versions = persist.installed_versions()
    loaded, metas, unused = {}, {}, {}
    for model_id, spec in specs.items():
        columns = (list(spec.columns) if spec.columns is not None
                   else [dim_key(spec.host, spec.chart, d) for d in dimensions.get(spec.chart, ())])
        try:
            fm, meta, reason = persist.load(models_dir, model_id, config, columns, versions,
                                            fewer_ok=spec.columns is None, agent=agent)
            if fm is not None:
                fm.warm_up()   # imports and JIT now, and a model that cannot score is caught here
                check_alone(model_id, fm, blocks)
        except Exception as e:
            fm, reason = None, 'cannot use it ({}: {})'.format(e.__class__.__name__, str(e)[:80])
        if fm is not None:
            loaded[model_id], metas[model_id] = fm, meta
        elif reason:
            unused.setdefault(reason, []).append(model_id)
    return loaded, metas, unused


def collected_dimensions(charts, allmetrics, wanted):
    """``charts`` (``{chart: dimension names}`` from /api/v1/charts) with the names of the
    ``wanted`` charts as the agent collects them (``allmetrics``): the chart list leaves out
    hidden dimensions (system.cpu's idle) that its data, and so a trained model, has."""
    out = dict(charts)
    for chart in wanted:
        c = allmetrics.get(chart)
        found = c.get('dimensions') if isinstance(c, dict) else None
        if isinstance(found, dict) and found:
            out[chart] = [d.get('name', k) if isinstance(d, dict) else k for k, d in found.items()]
    return out


def age(metas, now, offset_n_secs):
    """Seconds since the oldest of these models' training window ended (trained_at is the end
    of the window, offset_n_secs before the training ran); ``now`` is the agent's, if known."""
    oldest = min(float(m['trained_at']) for m in metas.values()) + offset_n_secs
    return max(0.0, (now or time.time()) - oldest)


def fitted_on(metas, every):
    """The longest history (seconds) these models were fitted on, None where no file says."""
    spans = []
    for meta in metas.values():
        w = meta.get('window')
        try:
            span = float(w[1]) - float(w[0]) + every
        except (TypeError, ValueError, IndexError, KeyError):   # a window the file does not give
            continue
        if math.isfinite(span):
            spans.append(span)
    return max(spans, default=None)
