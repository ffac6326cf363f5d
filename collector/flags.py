"""The anomaly flag a person sees: raised when a model was above its threshold in at least
``min_n`` of its last ``window_n`` steps, held while its probability stays high, and raised
again only once the chart has settled.

One step above the threshold happens on normal data at the rate ``contamination`` says;
requiring a few of the last steps turns those lone blips into nothing while a real
incident (which lasts) is still flagged within ``min_n`` steps. Once up, the flag stays up
while the probability is at least ``hold`` (a hysteresis): an incident whose score dips
for a moment below the threshold stays one flag, not several. ``min_n = window_n = 1``
without a hold, re-arming or lasting excess is the retired collector's behaviour (flag =
this step above the threshold).

After a flag clears, the chart is re-armed (may raise a new flag as above) once its
probability has averaged under ``REARM_MEAN`` over the last ``rearm_n`` steps, or
``REARM_CAP`` times that many steps after the flag cleared, whichever comes first. An
incident's aftermath (load averages and pressure coming down for minutes, a burst of
retransmits when it stops) keeps a chart's probability high, now and then above the
threshold for a few steps, without being a new incident; a model that has never seen its
node recover from anything flagged it again and again. Probabilities of normal data are
uniform, so they average 50 %: a chart that is back to its usual re-arms in about
``rearm_n`` steps. Until then a flag rises only for an excess that lasts: a probability of
at least ``HIGH`` in at least ``SUSTAINED`` of the last ``rearm_n`` steps (a level that moved
and stays moved is still flagged), or for a score far above anything the aftermath reaches:
``min_n`` of the last ``window_n`` steps at a log excess (below) of ``REARM_MARGIN`` or more,
the threshold's distance from the training median e^4, 55 times, over. A busy node's charts
can take minutes to settle after a flag; a new incident in that time is not waited for.
``rearm_n = 0``: a flag may rise at any step.

A lasting excess raises a flag by itself: a probability of at least ``HIGH`` in at least
``LASTING`` of the last ``lasting_n`` steps, or in at least ``LASTING_LONG`` of the last
``2 * lasting_n``, whether or not the threshold was crossed and whether or not the chart is
armed; like ``min_n`` of ``window_n``, it is a state of the recent steps, so the flag stays
up through a dip and for a while after the excess ends (up to a quarter of ``lasting_n``
steps, or two fifths of twice that). Normal data is above 99 % one step in a hundred; three
quarters of 20 steps is a level that moved by less than a threshold's worth and stayed moved
(a disk a little busier, a service a little slower), which one step's threshold never sees.
The longer the stretch, the less dense it needs to be: three fifths of 40 steps is an excess
that comes and goes around the 99 % line for longer, which normal data's rare high steps do
not add up to. ``lasting_n = 0``: off.

With re-arming on and the scores' ``excess`` given (as the job gives them), a step counts
towards ``min_n`` of ``window_n`` only when its score is above the threshold by a margin: a
log excess of at least ``RAISE_MARGIN`` (the score e^0.5, 1.65 times, as far above the
training median as the threshold). Scores that graze the threshold for two steps (a burst a
short training window had not seen, a counter ticking once) no longer raise a flag; an
incident passes the margin within a second or two of crossing. The hold, the lasting excess
and the threshold itself (``predict``, the share of normal steps above it) are unchanged.
With re-arming on, a flag that is down rises only at a step whose own probability is at least
``HIGH``, or which is above the threshold itself (a ``contamination`` over 1 % puts the
threshold under 99 %): when a chart settles or re-arms, the counts of its last steps may still
hold an excess that has ended, and a flag raised on them read "probability 0 %" to the user.

A flag that is up is released when its chart is plainly recovering (with re-arming on): its
score (``excess``: the logarithm of how far above the training median it is, in units of
the threshold's distance from it) has fallen ``RECOVERY_DROP`` (a factor e^2, about 7) from
its highest since the flag rose, and the medians of the last ``RECOVERY_WINDOWS`` runs of
``RECOVERY_W`` steps each fell by more than ``RECOVERY_STEP`` from the run before; or it has
fallen for twice as long, ``RECOVERY_LONG_WINDOWS`` runs in a row, and by at least
``RECOVERY_LONG_DROP`` (e^0.5): the longer a score keeps falling, the less it needs to have
fallen to be a decay (a load or pressure average whose noise held it just short of e^2). An
incident in progress keeps its score (a pinned CPU, a filled memory); its aftermath decays:
a pressure or load average still coming down from it stays above anything a quiet node's
training saw for a quarter of an hour, and held one flag up all that time (Netdata's
``anomalies_flag_lasting`` alarm critical after every disk stress). Until the chart has
settled (as for re-arming, but without the cap) no rule raises its flag again, unless its
score climbs ``RECOVERY_RISE`` above where it was released: a new excess on top of the decay;
or climbs ``RECOVERY_RISE`` above its lowest since the release to a far excess (a log excess of
``REARM_MARGIN``): a new incident after the decay has come down, on a chart not settled yet.
A retrained model's scores are on a new scale: a recovering chart's release level (and lowest)
is then taken again from its first score after.
"""
import numpy as np

from .scoring import EXCESS_FLOOR

REARM_MEAN = 0.5
REARM_CAP = 10
SUSTAINED = 0.5
HIGH = 0.99
LASTING = 0.75
LASTING_LONG = 0.6
RAISE_MARGIN = 0.5
REARM_MARGIN = 4.0
RECOVERY_W = 10
RECOVERY_WINDOWS = 3
RECOVERY_STEP = 0.03
RECOVERY_DROP = 2.0
RECOVERY_RISE = 1.0
RECOVERY_HISTORY = RECOVERY_W * (RECOVERY_WINDOWS + 1)
RECOVERY_LONG_WINDOWS = 7
RECOVERY_LONG_DROP = 0.5
RECOVERY_LONG_HISTORY = RECOVERY_W * (RECOVERY_LONG_WINDOWS + 1)


def _high_counts(probability, n):
    """At each step, how many of the last ``n`` steps had a probability of at least ``HIGH``."""
    c = np.concatenate([[0], np.cumsum(probability >= HIGH)])
    idx = np.arange(1, probability.size + 1)
    return c[idx] - c[np.maximum(idx - n, 0)]


def _lasts(high_count, high_count_long, lasting_n):
    """Where an excess lasts, from the counts of ``HIGH`` steps among the last ``lasting_n`` and
    ``2 * lasting_n``: ``LASTING`` of the first, or ``LASTING_LONG`` of the second."""
    return (high_count >= LASTING * lasting_n) | (high_count_long >= LASTING_LONG * 2 * lasting_n)


def finite_excess(excess):
    """Log excesses with NaN and -inf (no score) read as the floor of ``scoring.log_excess``."""
    e = np.asarray(excess, dtype=np.float64)
    return np.where(np.isnan(e) | (e < EXCESS_FLOOR), EXCESS_FLOOR, e)


def declining(history):
    """Whether each column of ``history`` (whole runs of ``RECOVERY_W`` steps, oldest first) fell
    steadily: every run has a median more than ``RECOVERY_STEP`` under the run before."""
    history = np.asarray(history, dtype=np.float64)
    runs = np.median(history.reshape(history.shape[0] // RECOVERY_W, RECOVERY_W, -1), axis=1)
    return np.all(runs[1:] < runs[:-1] - RECOVERY_STEP, axis=0)


def recovered(drop, history):
    """Whether a flag whose score is ``drop`` under its peak is released, per column of
    ``history`` (the last ``RECOVERY_LONG_HISTORY`` log excesses, oldest first; columns of
    ``drop`` match): fallen ``RECOVERY_DROP`` and falling for ``RECOVERY_HISTORY`` steps, or
    fallen ``RECOVERY_LONG_DROP`` and falling for all of them."""
    drop = np.asarray(drop, dtype=np.float64)
    return (((drop >= RECOVERY_DROP) & declining(history[-RECOVERY_HISTORY:]))
            | ((drop >= RECOVERY_LONG_DROP) & declining(history)))


def n_of_m(above, min_n, window_n, hold=None, probability=None, rearm_n=0, lasting_n=0, excess=None):
    """Flags for a whole 0/1 series (oldest first): the pure form, used by evaluation.

    ``hold``: optional 0/1 series, where a raised flag may stay up; ``probability``: the
    series of probabilities, needed for ``rearm_n > 0`` or ``lasting_n > 0``; ``excess``:
    the series of ``scoring.log_excess`` for the raising margin and for releasing a recovering
    chart (with ``rearm_n > 0``; None: neither).
    """
    a = np.asarray(above, dtype=np.int64)
    over = a > 0      # above the threshold itself, margin or not
    strong = np.zeros(a.size, dtype=bool)      # a far excess: counts while a chart waits to re-arm
    if rearm_n > 0 and excess is not None:
        excess = finite_excess(excess)
        if excess.shape != a.shape:
            raise ValueError('excess has {} steps, above has {}'.format(excess.size, a.size))
        strong = _enough_in_window(a * (excess >= REARM_MARGIN), min_n, window_n).astype(bool)
        a = a * (excess >= RAISE_MARGIN)
    raised = _enough_in_window(a, min_n, window_n)
    if hold is not None:
        hold = np.asarray(hold, dtype=bool)
        if hold.shape != a.shape:
            raise ValueError('hold has {} steps, above has {}'.format(hold.size, a.size))
    lasting = np.zeros(a.size, dtype=bool)
    if rearm_n > 0 or lasting_n > 0:
        if probability is None or np.shape(probability) != a.shape:
            raise ValueError('re-arming and lasting excesses need a probability for each of the {} '
                             'steps'.format(a.size))
        probability = np.nan_to_num(np.asarray(probability, dtype=np.float64))
        if lasting_n > 0:
            lasting = _lasts(_high_counts(probability, lasting_n), _high_counts(probability, 2 * lasting_n),
                             lasting_n)
    if rearm_n > 0:
        return _rearmed(raised.astype(bool), hold, probability, rearm_n, lasting, excess, strong,
                        over | (probability >= HIGH))
    raised = raised | lasting
    if hold is None or a.size == 0:
        return raised
    # a flag is up from a raised step through the held steps right after it: within each run
    # of steps that are raised or held, from its first raised step on
    keep = raised.astype(bool) | hold
    run_id = np.cumsum(np.concatenate([[True], keep[1:] != keep[:-1]]))
    first_raise = np.where(raised.astype(bool), np.arange(a.size), a.size)
    start = np.full(run_id[-1] + 1 if a.size else 1, a.size)
    np.minimum.at(start, run_id, first_raise)
    return (keep & (np.arange(a.size) >= start[run_id])).astype(np.int64)


def _enough_in_window(a, min_n, window_n):
    """1 where at least ``min_n`` of the last ``window_n`` steps of the 0/1 series ``a`` are 1."""
    if min_n <= 1 and window_n <= 1:
        return a.copy()
    c = np.concatenate([[0], np.cumsum(a)])
    idx = np.arange(1, a.size + 1)
    return (c[idx] - c[np.maximum(idx - window_n, 0)] >= min_n).astype(np.int64)


def _last_excesses(excess, k):
    """The ``RECOVERY_LONG_HISTORY`` log excesses up to step ``k`` as one column, NaN before the first."""
    first = k + 1 - RECOVERY_LONG_HISTORY
    out = excess[max(first, 0):k + 1, None]
    return np.vstack([np.full((-first, 1), np.nan), out]) if first < 0 else out


def _new_excess(e, released, lowest):
    """Where a recovering chart's log excess ``e`` is a new excess: ``RECOVERY_RISE`` above where
    its flag was released, or above its ``lowest`` since then to ``REARM_MARGIN`` or more."""
    return (e > released + RECOVERY_RISE) | ((e > lowest + RECOVERY_RISE) & (e >= REARM_MARGIN))


def _rearmed(raised, hold, probability, rearm_n, lasting, excess, strong, unusual):
    """The flag series with re-arming: a step at a time (the state is sequential)."""
    out = np.zeros(raised.size, dtype=np.int64)
    csum = np.concatenate([[0.0], np.cumsum(probability)])
    sustained = _high_counts(probability, rearm_n) >= SUSTAINED * rearm_n
    up, armed, since = False, True, 0
    recovering, peak, released, lowest = False, -np.inf, 0.0, 0.0
    for k in range(raised.size):
        settled = False
        if not up and (not armed or recovering):
            since += 0 if armed else 1
            mean = (csum[k + 1] - csum[k + 1 - rearm_n]) / rearm_n if since >= rearm_n else 1.0
            settled = mean < REARM_MEAN
            armed = armed or settled or since >= REARM_CAP * rearm_n
        now = (bool(raised[k]) and (up or armed or bool(sustained[k] or strong[k]))
               or (up and hold is not None and bool(hold[k])) or bool(lasting[k]))
        now = now and (up or bool(unusual[k]))    # a flag rises on an unusual step only
        if excess is not None:
            e = excess[k]
            lowest = min(lowest, e)
            recovering = recovering and not settled and not _new_excess(e, released, lowest)
            now = now and not recovering
            peak = max(peak, e) if up else e
            if (now and up and k >= RECOVERY_HISTORY - 1 and peak - e >= RECOVERY_LONG_DROP
                    and recovered([peak - e], _last_excesses(excess, k))[0]):
                now, recovering, released, lowest = False, True, e, e
        if up and not now:
            armed, since = False, 0
        up = now
        out[k] = now
    return out


class FlagPolicy:
    """``n_of_m`` step by step for many models at once, keyed by model id."""

    def __init__(self, min_n, window_n, rearm_n=0, lasting_n=0):
        self.min_n = min_n
        self.window_n = window_n
        self.rearm_n = rearm_n
        self.lasting_n = lasting_n
        self.ids = []
        # probability >= HIGH over the last 2 * lasting_n steps, and its count over the last
        # lasting_n and 2 * lasting_n of them
        self.high = np.zeros((max(2 * lasting_n, 1), 0), dtype=np.int8)
        self.high_count = np.zeros(0, dtype=np.int64)
        self.high_count_long = np.zeros(0, dtype=np.int64)
        self.lasting_pos = 0
        self.history = np.zeros((window_n, 0), dtype=np.int8)
        self.strong_history = np.zeros((window_n, 0), dtype=np.int8)     # the same, above REARM_MARGIN
        self.probs = np.zeros((max(rearm_n, 1), 0))
        self.recent = np.zeros((max(rearm_n, 1), 0), dtype=np.int8)     # probability >= HIGH, the same steps
        self.up = np.zeros(0, dtype=bool)
        self.armed = np.zeros(0, dtype=bool)
        self.since = np.zeros(0, dtype=np.int64)
        self.pos = 0
        self.step = 0
        # the last steps' log excess, by step % RECOVERY_LONG_HISTORY; NaN: not seen (a run with one is not falling)
        self.excess = np.zeros((RECOVERY_LONG_HISTORY, 0))
        self.peak = np.zeros(0)
        self.recovering = np.zeros(0, dtype=bool)
        self.released = np.zeros(0)
        self.lowest = np.zeros(0)      # the lowest log excess since the release

    def reindex(self, ids, retrained=()):
        """Follow a new model layout, keeping the state of models that stay (new ones are armed).

        ``retrained``: ids whose model is new though the id stays: their recent log excesses
        were on the old model's scale, so the runs that decide a release start again.
        """
        old = {m: k for k, m in enumerate(self.ids)}
        keep = [(k, old[m]) for k, m in enumerate(ids) if m in old]
        new, was = (np.array(x, dtype=np.intp) for x in zip(*keep)) if keep else (np.zeros(0, np.intp),) * 2
        n = len(ids)

        def carry(arr, fill):
            out = np.full(arr.shape[:-1] + (n,), fill, dtype=arr.dtype)
            out[..., new] = arr[..., was]
            return out
        self.history, self.probs, self.recent = carry(self.history, 0), carry(self.probs, 0.0), carry(self.recent, 0)
        self.strong_history = carry(self.strong_history, 0)
        self.up, self.armed, self.since = carry(self.up, False), carry(self.armed, True), carry(self.since, 0)
        self.high, self.high_count = carry(self.high, 0), carry(self.high_count, 0)
        self.high_count_long = carry(self.high_count_long, 0)
        self.excess, self.peak = carry(self.excess, np.nan), carry(self.peak, 0.0)
        self.recovering, self.released = carry(self.recovering, False), carry(self.released, 0.0)
        self.lowest = carry(self.lowest, 0.0)
        retrained = set(retrained)
        fresh = [k for k, m in enumerate(ids) if m in retrained]
        self.excess[:, fresh] = np.nan
        self.released[fresh] = self.lowest[fresh] = np.nan     # taken again from the next score
        self.ids = list(ids)

    def update(self, above, hold=None, probability=None, excess=None):
        """Record this step's 0/1 ``above`` (one per model, 0 for a model that did not score)
        and return the flags; ``hold``: where a flag that is up may stay up; ``probability``:
        this step's probabilities (for re-arming and lasting excesses; 0 for a model that did
        not score); ``excess``: this step's ``scoring.log_excess`` (for the raising margin and
        releasing a recovering chart, with re-arming; None: neither)."""
        above = np.asarray(above, dtype=np.int8)
        over = above > 0      # above the threshold itself, margin or not
        if self.rearm_n > 0 and excess is not None:
            excess = finite_excess(excess)
            self.strong_history[self.pos] = above * (excess >= REARM_MARGIN)
            above = above * (excess >= RAISE_MARGIN)
        self.history[self.pos] = above
        self.pos = (self.pos + 1) % self.window_n
        raised = self.history.sum(axis=0) >= self.min_n
        kept = self.up & np.asarray(hold, dtype=bool) if hold is not None else np.zeros_like(self.up)
        if self.rearm_n > 0 or self.lasting_n > 0:
            p = np.zeros(len(self.ids)) if probability is None else np.nan_to_num(np.asarray(probability, float))
        if self.lasting_n > 0:
            n, size = self.lasting_n, 2 * self.lasting_n
            row = self.lasting_pos % size
            high = p >= HIGH
            self.high_count += high - self.high[(self.lasting_pos - n) % size]    # the step leaving the last n
            self.high_count_long += high - self.high[row]                        # ... and the last 2n
            self.high[row] = high
            self.lasting_pos += 1
            kept = kept | _lasts(self.high_count, self.high_count_long, n)     # raised or kept up: lasting
        if self.rearm_n <= 0:
            flags = raised | kept
        else:
            self.probs[self.step % self.rearm_n] = p
            self.recent[self.step % self.rearm_n] = p >= HIGH
            self.step += 1
            waiting = ~self.up & ~self.armed
            flags = raised & (self.up | self.armed) | kept
            settled = np.zeros(len(self.ids), dtype=bool)
            if waiting.any() or self.recovering.any():   # only a chart whose flag cleared lately needs the sums
                self.since = np.where(waiting, self.since + 1, self.since)
                settled = ~self.up & (self.since >= self.rearm_n) & (self.probs.mean(axis=0) < REARM_MEAN)
                self.armed |= waiting & (settled | (self.since >= REARM_CAP * self.rearm_n))
                sustained = self.recent.sum(axis=0) >= SUSTAINED * self.rearm_n
                strong = self.strong_history.sum(axis=0) >= self.min_n if excess is not None else False
                flags = raised & (self.up | self.armed | sustained | strong) | kept
            flags &= self.up | over | (p >= HIGH)      # a flag rises on an unusual step only
            if excess is not None:
                flags = self._recovery(flags, excess, settled)
            cleared = self.up & ~flags
            self.armed &= ~cleared
            self.since = np.where(cleared, 0, self.since)
        self.up = flags
        return flags.astype(int)

    def held_down(self, shown):
        """The flags as the job showed them: one it kept down (in the rows of its own
        training) is down here too, so it rises later as any flag does, on an unusual step,
        not on whichever step the job stops keeping it down."""
        self.up &= np.asarray(shown, dtype=bool)

    def _recovery(self, flags, e, settled):
        """``flags`` less those of charts recovering (see the module's docstring); one step of ``n_of_m``'s."""
        row = (self.step - 1) % RECOVERY_LONG_HISTORY     # self.step already counts this step
        self.excess[row] = e
        self.released = np.where(np.isnan(self.released), e, self.released)
        self.lowest = np.fmin(self.lowest, e)
        self.recovering &= ~settled & ~_new_excess(e, self.released, self.lowest)
        flags = flags & ~self.recovering
        self.peak = np.where(self.up, np.maximum(self.peak, e), e)
        check = flags & self.up & (self.peak - e >= RECOVERY_LONG_DROP)
        if self.step >= RECOVERY_HISTORY and check.any():
            k = np.nonzero(check)[0]
            order = np.arange(row + 1, row + 1 + RECOVERY_LONG_HISTORY) % RECOVERY_LONG_HISTORY    # oldest first
            release = k[recovered((self.peak - e)[k], self.excess[np.ix_(order, k)])]
            flags[release] = False
            self.recovering[release] = True
            self.released[release] = self.lowest[release] = e[release]
        return flags
