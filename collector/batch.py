"""Scoring every model in one step with a handful of vectorized numpy operations.

Per-model calls cost tens of microseconds of Python each, which at hundreds of charts is
most of a step. ``BatchScorer`` lays all models out side by side once (after each training)
and then scores them all at once from one global feature row: the gather of each model's
features, the standardization, the projections of pca and mahalanobis and the calibration
are each one numpy call over every model. Models without a vectorized form are scored one
by one. Results equal ``FittedModel.decision_function``/``probability``.
"""
import numpy as np

from .features import STALE_CHART_SECONDS
from .netdata_api import agent_clock, is_time, split_key
from .scoring import (ConstantScorer, MahalanobisScorer, PcaScorer, beyond, log_excess, lowered, squash_features,
                      tail_probability, worst_score)


class Layout:
    """All raw columns of all models: one index per (host, chart, dim)."""

    def __init__(self, models, every=None):
        self.every = every or {}   # (host, chart) -> its update_every, where listed
        self.stale = {}            # (host, chart) -> seconds behind, at the last row read
        self._oldest = None        # the oldest last_updated of the last row read
        self.columns = []
        self.index = {}
        for fm in models.values():
            for c in fm.columns:
                if c not in self.index:
                    self.index[c] = len(self.columns)
                    self.columns.append(c)
        # for building a row from allmetrics: host -> chart -> [(dim, column index)]
        self.by_host = {}
        for c, i in self.index.items():
            host, chart, dim = split_key(c)
            self.by_host.setdefault(host, {}).setdefault(chart, []).append((dim, i))
        # the columns of each (host, chart) together, for ``features.absent_as_zero``: a chart is
        # collected as a whole, so only a null beside its own values is a dimension gone (a
        # custom model's other chart, or another agent, having values says nothing of it)
        index, offsets = [], []
        for charts in self.by_host.values():
            for pairs in charts.values():
                offsets.append(len(index))
                index += [i for _, i in pairs]
        self.chart_index = np.array(index, dtype=np.intp)
        self.chart_offsets = np.array(offsets, dtype=np.intp)
        self._ids = {}  # host -> chart -> [(dimension id, column)], learnt from the answers
        self._fast = None   # what the flat pass of ``row`` reads, when the last answer was complete

    def __len__(self):
        return len(self.columns)

    def row(self, latest):
        """The newest raw values in column order (NaN where the agent gave none, and for an
        Infinity, which it may send: no reading either), and the newest ``last_updated`` among
        them (the agent's clock).

        ``latest`` is ``{host: raw allmetrics body}``; only the charts modeled are read, by
        dimension id, with the id of each dimension name learnt from the body when first seen.
        Usually one pass over a flat list of (chart, dimension id) pairs learnt the step before;
        when anything differs (a chart missing, dimensions changed, a malformed answer) the
        careful pass below reads what it can and learns again.
        """
        row, stamp = self._read(latest)
        row[np.isinf(row)] = np.nan
        self.stale = {}
        if self._oldest is not None and stamp - self._oldest > STALE_CHART_SECONDS:   # (most steps: not)
            self._leave_out_stale(latest, row)
        return row, stamp

    def _leave_out_stale(self, latest, row):
        """The columns of charts not collected now (``STALE_CHART_SECONDS``) as no values, each
        agent's charts against that agent's newest (two agents' clocks may differ)."""
        for host, charts in self.by_host.items():
            body = latest.get(host) or {}
            stamps = {chart: body[chart]['last_updated'] for chart in charts
                      if isinstance(body.get(chart), dict) and is_time(body[chart].get('last_updated'))}
            newest = agent_clock(list(stamps.values()))
            for chart, t in stamps.items():
                behind, every = newest - t, self.every.get((host, chart))
                # (a chart whose interval is not known, another agent's, is not judged: one
                # collected every minute would be taken for stalled half of the time)
                if every is not None and behind > max(STALE_CHART_SECONDS, 3 * every):
                    row[[i for _, i in charts[chart]]] = np.nan
                    self.stale[(host, chart)] = behind

    def _read(self, latest):
        fast = self._fast
        if fast is not None:
            try:
                vals, stamps = [], []
                for host, pairs, charts in fast[0]:
                    body = latest[host]
                    stamps += [body[chart]['last_updated'] for chart in charts]
                    vals += [body[chart]['dimensions'][dim_id]['value'] for chart, dim_id in pairs]
                row = np.full(len(self.columns), np.nan)
                row[fast[1]] = np.array(vals, dtype=np.float64)
                stamp = agent_clock(stamps)
                self._oldest = _oldest(stamps)
                if isinstance(stamp, (int, float)) and all(
                        len(latest[h][c]['dimensions']) == n for h, c, n in fast[2]):
                    return row, stamp
            except (TypeError, KeyError, ValueError, AttributeError, OverflowError):
                pass
        return self._careful_row(latest)

    def _careful_row(self, latest):
        idx, vals, stamps = [], [], []
        fast_hosts, fast_sizes, complete = [], [], True
        for host, charts in self.by_host.items():
            body = latest.get(host)
            if not body:
                complete = False
                continue
            ids = self._ids.setdefault(host, {})
            pairs, names = [], []
            for chart, dims in charts.items():
                c = body.get(chart)
                try:
                    t = c['last_updated']
                    answer = c['dimensions']
                    known = ids.get(chart)
                    # learn again when the chart's set of dimensions changed (in number, or
                    # a dimension replaced by another of the same name), and while one modelled
                    # is not in it: it may come back as another leaves, the number the same
                    if (known is None or known[0] != len(answer) or len(known[1]) < len(dims)
                            or any(i not in answer for i, _ in known[1])):
                        known = ids[chart] = (len(answer), self._learn(answer, dims))
                    if len(known[1]) < len(dims):
                        complete = False
                    for dim_id, col in known[1]:
                        d = answer.get(dim_id)
                        if d is not None:
                            value = d['value']   # first: a malformed entry must not shift the columns
                            idx.append(col)
                            vals.append(value)
                            pairs.append((chart, dim_id))
                        else:
                            complete = False
                    names.append(chart)
                    fast_sizes.append((host, chart, len(answer)))
                except (TypeError, KeyError, AttributeError):
                    complete = False
                    continue  # chart absent or malformed: its columns stay NaN
                stamps.append(t)
            fast_hosts.append((host, pairs, names))
        row = np.full(len(self.columns), np.nan)
        if idx:
            try:
                row[idx] = np.array(vals, dtype=np.float64)  # None becomes NaN
            except (TypeError, ValueError, OverflowError):
                complete = False
                for i, v in zip(idx, vals):
                    try:
                        row[i] = float(v)
                    except (TypeError, ValueError, OverflowError):
                        pass
        # next step: one flat pass, if this answer had every chart and dimension modeled
        self._fast = (fast_hosts, np.array(idx, dtype=np.intp), fast_sizes) if complete else None
        self._oldest = _oldest(stamps)
        return row, agent_clock(stamps)

    @staticmethod
    def _learn(answer, dims):
        """``[(dimension id, column)]`` for the dimension names we model, from one chart's answer."""
        by_name = {}
        for dim_id, d in answer.items():
            if isinstance(d, dict):
                by_name[d.get('name', dim_id)] = dim_id
        return [(by_name[name], col) for name, col in dims if name in by_name]


def why_no_values(entry, names):
    """What in a chart's allmetrics ``entry`` gives no value to the dimensions ``names``, in a
    few words for the log (None if nothing): a kind, never the value itself, so that a chart
    that keeps answering so is told once."""
    def kind(v):
        return {list: 'a list', str: 'text', dict: 'an object', bool: 'true or false'}.get(type(v), 'null' if v is None
                                                                                          else type(v).__name__)
    if not isinstance(entry, dict):
        return 'its entry in the answer is {}, not an object'.format(kind(entry))
    dims = entry.get('dimensions')
    if not isinstance(dims, dict):
        return "its entry has {}".format("no 'dimensions'" if dims is None else "'dimensions' as " + kind(dims))
    by_name = {(d.get('name', i) if isinstance(d, dict) else i): d for i, d in dims.items()}
    absent = [name for name in names if name not in by_name]
    for name in names:   # what the dimensions there hold first: a dimension gone alone reads as zero
        if name in absent:
            continue
        d = by_name[name]
        if not isinstance(d, dict) or 'value' not in d:
            return 'dimension {} has no value'.format(name)
        v = d['value']
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return "dimension {}'s value is {}".format(name, kind(v))
        if not is_time(v):   # (a finite number)
            return "dimension {}'s value is not finite".format(name)
    if absent:
        return '{} in its entry'.format('none of its dimensions is' if len(absent) == len(names) else
                                        'dimension {} is not'.format(absent[0]) if len(absent) == 1 else
                                        'dimensions {} are not'.format(', '.join(absent)))
    return None


# a model whose components hold more numbers than this is scored by its own scorer (one product
# with its matrix) rather than laid out with the others: the layout repeats each feature's index
# once per component, a second copy of the matrix in indices, and a step gathers a third (a
# 600-dimension chart's model held 270 MiB here on top of its own 135, and 440 MiB at each step)
WIDE_FORM = 1 << 16


def _offsets(lengths):
    return np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.intp)


def _oldest(stamps):
    """The oldest of the charts' ``last_updated`` (None if none is a number)."""
    try:
        oldest = min(stamps) if stamps else None   # (numbers, as the agent sends them: one pass in C)
        if oldest is None or is_time(oldest):
            return oldest
    except TypeError:
        pass
    # text, which compares with text alone (every stamp a string: its min is one), or None
    return min((t for t in stamps if is_time(t)), default=None)


class BatchScorer:
    """Scores all ``models`` (``{id: FittedModel}``) from one global feature row."""

    def __init__(self, models, layout, blocks):
        self.ids = list(models)
        self.models = [models[m] for m in self.ids]
        n_cols = len(layout)
        width = blocks   # feature blocks per dimension (features.feature_blocks)
        # per model: where its kept features sit in the global feature row
        gathers, means, scales, knees, pca, other = [], [], [], [], [], []
        self.own = []   # per model: where its full feature vector sits in the global row
        self.failed = {}  # model id -> why its scorer raised (scored as nothing unusual meanwhile)
        self.raw_index, raw_lengths = [], []
        for k, fm in enumerate(self.models):
            cols = np.array([layout.index[c] for c in fm.columns], dtype=np.intp)
            self.raw_index.append(cols)
            raw_lengths.append(len(cols))
            # the model's own feature order: current dims, then lag 1 dims, ..., then levels
            own = np.concatenate([cols + lag * n_cols for lag in range(width)])
            self.own.append(own)
            kept = own[fm.kept]
            if isinstance(fm.scorer, (PcaScorer, MahalanobisScorer)) and fm.scorer.components.size <= WIDE_FORM:
                pca.append(k)
                gathers.append(kept)
                means.append(fm.mean)
                scales.append(fm.scale)
                knees.append(np.full(kept.size, np.inf) if fm.knee is None else fm.knee)
            elif not isinstance(fm.scorer, ConstantScorer) and fm.kept.size:
                other.append((k, kept))
        self.raw_all = np.concatenate(self.raw_index) if self.raw_index else np.zeros(0, dtype=np.intp)
        self.raw_offsets = _offsets(raw_lengths) if raw_lengths else np.zeros(0, dtype=np.intp)
        self.pca = np.array(pca, dtype=np.intp)
        self.other = other
        if pca:
            self._pack_pairs(pca, gathers, means, scales, knees)
        self._pack_calibration()

    def _pack_pairs(self, pca, gathers, means, scales, knees):
        """The PCA and Mahalanobis models' features, scalings and components laid out flat, so
        that one pass of numpy scores them all (``decision_function``)."""
        self.gather = np.concatenate(gathers)
        self.mean = np.concatenate(means)
        self.scale = np.concatenate(scales)
        knee = np.concatenate(knees)
        # only the squashed features (the level blocks) pay for the squashing
        self.squash_pos = np.nonzero(np.isfinite(knee))[0]
        self.squash_knee = knee[self.squash_pos]
        f_len = [len(g) for g in gathers]
        f_off = _offsets(f_len)
        self.f_off = f_off
        # every (model, component) pair: the features of Z it is compared with, and the
        # component; a pca pair scores distance / weight, a mahalanobis pair projection^2 *
        # weight (over its moving features; its still ones add a diagonal term)
        rep, comp, c_sq, w, squared, pair_model, pair_len, inner_mean, inner_scale = ([] for _ in range(9))
        still_pos, still_w, still_model = [], [], []
        for j, k in enumerate(pca):
            s = self.models[k].scorer
            n_comp = s.components.shape[0]
            if isinstance(s, MahalanobisScorer):
                span = f_off[j] + s.moving
                c_sq.append(np.zeros(n_comp))
                w.append(s.inv_var)
                squared.append(np.ones(n_comp, dtype=bool))
                inner_mean.append(np.zeros(f_len[j]))
                inner_scale.append(np.ones(f_len[j]))
                still_pos.append(f_off[j] + s.still)
                still_w.append(np.full(s.still.size, s.still_w))
                still_model.append(np.full(s.still.size, j))
            else:
                span = np.arange(f_off[j], f_off[j] + f_len[j])
                c_sq.append(s._c_sq)
                w.append(s.weights)
                squared.append(np.zeros(n_comp, dtype=bool))
                inner_mean.append(s.mean)
                inner_scale.append(s.scale)
            rep.append(np.tile(span, n_comp))
            comp.append(s.components.ravel())
            pair_model.append(np.full(n_comp, j))
            pair_len.append(np.full(n_comp, span.size))
        self.rep = np.concatenate(rep)
        self.comp = np.concatenate(comp)
        self.c_sq = np.concatenate(c_sq)
        self.w = np.concatenate(w)
        self.squared = np.concatenate(squared)
        self.any_distance = not self.squared.all()
        self.pair_model = np.concatenate(pair_model).astype(np.intp)   # a still chart's model has no pair
        pair_len = np.concatenate(pair_len)
        self.pair_off = _offsets(pair_len) if pair_len.size else np.zeros(0, dtype=np.intp)
        self.still_pos = np.concatenate(still_pos).astype(np.intp) if still_pos else np.zeros(0, dtype=np.intp)
        self.still_w = np.concatenate(still_w) if still_w else np.zeros(0)
        self.still_model = np.concatenate(still_model).astype(np.intp) if still_model else np.zeros(0, np.intp)
        self.inner_mean = np.concatenate(inner_mean)
        self.inner_scale = np.concatenate(inner_scale)

    def _pack_calibration(self):
        """Every model's calibration (its training scores, threshold, tail, min-max range),
        padded into one matrix and a few vectors."""
        q = max((fm.points.size for fm in self.models), default=1)
        self.points = np.full((len(self.models), q), np.inf)
        self.n_points = np.empty(len(self.models))
        for k, fm in enumerate(self.models):
            self.points[k, :fm.points.size] = fm.points
            self.n_points[k] = fm.points.size
        self.top = np.array([fm.points[-1] for fm in self.models]) if self.models else np.zeros(0)
        self.threshold = np.array([fm.threshold for fm in self.models])
        self.median = np.array([fm.median for fm in self.models])
        tails = [fm.tail or (np.inf, 1.0) for fm in self.models]
        self.tail_start = np.array([t[0] for t in tails])
        self.tail_scale = np.array([t[1] for t in tails])
        self.lo = np.array([fm.score_min for fm in self.models])
        self.hi = np.array([fm.score_max for fm in self.models])
        self.worst = worst_score(np.maximum(self.hi, self.threshold))
        self.minmax = np.array([fm.calibration == 'minmax' for fm in self.models])

    def present(self, row):
        """Which models have at least one current value in ``row`` (the newest raw row)."""
        if not self.models:
            return np.zeros(0, dtype=bool)
        have = ~np.isnan(row[self.raw_all])
        return np.logical_or.reduceat(have, self.raw_offsets)

    def decision_function(self, features):
        """Raw score of every model from the global feature row (1-d)."""
        scores = np.zeros(len(self.models))
        if self.pca.size:
            z = (features[self.gather] - self.mean) / self.scale
            if self.squash_pos.size:
                z[self.squash_pos] = squash_features(z[self.squash_pos], self.squash_knee)
            z = (z - self.inner_mean) / self.inner_scale
            dots = np.add.reduceat(z[self.rep] * self.comp, self.pair_off) if self.pair_off.size else np.zeros(0)
            dist = dots * dots * self.w
            if self.any_distance:
                z_sq = np.add.reduceat(z * z, self.f_off)
                d2 = z_sq[self.pair_model] - 2.0 * dots + self.c_sq
                dist = np.where(self.squared, dist, np.sqrt(np.maximum(d2, 0.0)) / self.w)
            per_model = np.bincount(self.pair_model, weights=dist, minlength=self.pca.size).astype(np.float64)
            if self.still_pos.size:
                q = z[self.still_pos]
                per_model += np.bincount(self.still_model, weights=q * q * self.still_w, minlength=self.pca.size)
            scores[self.pca] = per_model
        for k, kept in self.other:
            fm = self.models[k]
            z = squash_features((features[kept] - fm.mean) / fm.scale, fm.knee)
            if not np.isfinite(z).all():   # a value near float's limit: as unusual as can be, as the
                scores[k] = np.inf         # quadratic forms read it, not a fault of the model
                continue
            try:
                scores[k] = fm.scorer.decision_function(z[None, :])[0]
            except Exception as e:  # one broken model must not cost the others their scores
                scores[k] = self.lo[k]     # reads as nothing unusual, and is reported
                self.failed[self.ids[k]] = '{}: {}'.format(e.__class__.__name__, str(e)[:120])
        bad = ~np.isfinite(scores)
        if bad.any():
            scores[bad] = self.worst[bad]
        return scores

    def charted(self, scores, rank):
        """``FittedModel.probability`` for every model: the rank probabilities, or the minmax
        ones where a model is calibrated so."""
        if not self.minmax.any():
            return rank
        span = np.where(self.hi > self.lo, self.hi - self.lo, 1.0)
        mm = np.where(self.hi > self.lo, np.clip((scores - self.lo) / span, 0.0, 1.0),
                      beyond(scores, self.hi).astype(float))
        return np.where(self.minmax, mm, rank)

    def rank_probability(self, scores):
        """``FittedModel.rank_probability`` for every model."""
        below = (self.points < lowered(scores)[:, None]).sum(axis=1)
        top = beyond(scores, self.top)
        p = np.where(self.n_points < 2, top.astype(float), below / self.n_points)
        p = np.where(top, 1.0, p)
        in_tail = scores > self.tail_start
        if in_tail.any():
            p = np.where(in_tail, np.maximum(p, tail_probability(scores, self.tail_start, self.tail_scale)), p)
        return p

    def attribution(self, k, features):
        """``FittedModel.attribution`` of model ``k`` from the global feature row."""
        return self.models[k].attribution(features[self.own[k]])

    def score(self, features):
        """``(ids, charted probabilities, rank probabilities, flags, log excesses)`` for every model."""
        s = self.decision_function(features)
        excess = log_excess(s, self.median, self.threshold)
        rank = self.rank_probability(s)
        return self.ids, self.charted(s, rank), rank, beyond(s, self.threshold).astype(int), excess
