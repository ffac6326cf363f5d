"""The flag policy: N of the last M steps above the threshold, held while the probability stays high."""
import numpy as np
import pytest

from collector.flags import FlagPolicy, n_of_m


def test_n_of_m_ignores_lone_blips_and_follows_a_lasting_excess():
    above = [0, 1, 0, 0, 1, 1, 1, 0, 1, 0, 0, 0]
    assert n_of_m(above, 2, 3).tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0]
    assert n_of_m(above, 1, 1).tolist() == above    # the retired collector's flag
    assert n_of_m(above, 3, 3).tolist() == [0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]


def test_a_held_flag_stays_up_through_a_dip_and_drops_when_the_probability_does():
    above = [0, 1, 1, 0, 0, 1, 1, 0, 0, 0]
    high = [0, 1, 1, 1, 1, 1, 1, 1, 0, 1]    # probability still at or above the hold level
    # without the hold, one incident with a dip reads as two flags
    assert n_of_m(above, 2, 3).tolist() == [0, 0, 1, 1, 0, 0, 1, 1, 0, 0]
    assert n_of_m(above, 2, 3, high).tolist() == [0, 0, 1, 1, 1, 1, 1, 1, 0, 0]
    # a hold never raises a flag by itself
    assert n_of_m([0] * 5, 2, 3, [1] * 5).tolist() == [0] * 5
    assert n_of_m([], 2, 3, []).tolist() == []
    with pytest.raises(ValueError):
        n_of_m([1, 1], 2, 3, [1])


def rises(flags):
    return np.flatnonzero(np.diff(np.concatenate([[0], flags])) == 1).tolist()


def test_after_a_flag_the_chart_must_settle_before_it_flags_again():
    """An incident's aftermath (probability high, now and then above the threshold for a
    step or two) is not a new flag; once the probability is back to what normal data
    averages, one can rise."""
    incident, settled = [0.9999] * 20, [0.3] * 5
    aftermath = [0.95, 0.97, 0.9995, 0.9995, 0.9, 0.93, 0.96, 0.98] * 3
    p = np.array([0.4] * 10 + incident + [0.5] + aftermath + settled + [0.9999] * 5 + [0.2] * 10)
    above, hold = p > 0.999, p >= 0.99
    # without re-arming the aftermath raises three more flags
    assert rises(n_of_m(above, 2, 3, hold)) == [11, 34, 42, 50, 61]
    # with it: the incident (at its 2nd step), then the new excess after the settled steps
    assert rises(n_of_m(above, 2, 3, hold, p, rearm_n=5)) == [11, 61]
    with pytest.raises(ValueError):
        n_of_m([1, 1], 2, 3, None, None, rearm_n=5)


def test_an_unsettled_chart_still_flags_an_excess_that_lasts_or_after_the_cap():
    # high but not settled after the flag: a lasting excess flags at once (3 of the last 5
    # steps high), without waiting to re-arm
    p = np.array([0.9999] * 5 + [0.9] * 10 + [0.9999] * 10)
    assert rises(n_of_m(p > 0.999, 2, 3, p >= 0.99, p, rearm_n=5)) == [1, 17]
    # a short excess flags again only once REARM_CAP * rearm_n steps have passed
    short = [0.9999] * 2 + [0.5] * 3
    p = np.array([0.9999] * 5 + [0.9] * 30 + short + [0.9] * 70 + short)
    assert rises(n_of_m(p > 0.999, 2, 3, p >= 0.99, p, rearm_n=5)) == [1, 111]


def test_a_moderate_excess_that_lasts_raises_a_flag_without_crossing_the_threshold():
    # 99.5 %: above the 99 % level, never above the threshold (99.9 %)
    p = np.array([0.5] * 30 + [0.995] * 40 + [0.5] * 30)
    above, hold = p > 0.999, p >= 0.99
    assert not n_of_m(above, 2, 3, hold, p, rearm_n=30).any()
    for rearm_n in (0, 30):
        flags = n_of_m(above, 2, 3, hold, p, rearm_n=rearm_n, lasting_n=20)
        # up from the 15th step of the excess (3/4 of 20) until fewer than 24 of the last 40
        # steps were high (3/5 of 40), 16 steps after it ended
        assert np.flatnonzero(flags).tolist() == list(range(44, 86))
    # normal data is above 99 % one step in a hundred; even one in ten never lasts
    normal = np.where(np.arange(2000) % 10 == 0, 0.995, 0.5)
    assert not n_of_m(normal > 0.999, 2, 3, normal >= 0.99, normal, rearm_n=30, lasting_n=20).any()
    with pytest.raises(ValueError):
        n_of_m([1, 1], 2, 3, None, None, lasting_n=5)


def test_an_excess_that_comes_and_goes_for_longer_raises_a_flag():
    # 99.5 % two steps in three for a minute: never 15 of 20 (at most 14), but 24 of 40 from
    # the 35th step of the excess on (two fifths of 40 may be low)
    on = ([0.995, 0.995, 0.9] * 20)
    p = np.array([0.5] * 30 + on + [0.5] * 40)
    above, hold = p > 0.999, p >= 0.99
    for rearm_n in (0, 30):
        flags = n_of_m(above, 2, 3, hold, p, rearm_n=rearm_n, lasting_n=20)
        assert rises(flags) == [30 + 34], np.flatnonzero(flags)
        assert not flags[30 + 60 + 16:].any()
    # half the steps high is what an unsettled chart may do for a while: no flag
    half = np.array([0.5] * 30 + [0.995, 0.9] * 40 + [0.5] * 40)
    assert not n_of_m(half > 0.999, 2, 3, half >= 0.99, half, rearm_n=30, lasting_n=20).any()


def test_a_lasting_excess_flags_a_chart_that_waits_to_re_arm():
    # an incident, a short calm, then a moderate excess that lasts: the chart has not settled
    # (its mean probability is high), yet the lasting excess is a new flag
    p = np.array([0.9999] * 5 + [0.98] * 10 + [0.995] * 40 + [0.5] * 10)
    flags = n_of_m(p > 0.999, 2, 3, p >= 0.99, p, rearm_n=30, lasting_n=20)
    assert rises(flags) == [1, 29]
    assert rises(n_of_m(p > 0.999, 2, 3, p >= 0.99, p, rearm_n=30)) == [1]


def decaying_aftermath(pinned_n=60, decay_n=400):
    """An incident (a jump, then a level held for ``pinned_n`` steps) and its aftermath: a score
    coming down like a 300 s average (a pressure or load average), above anything training saw."""
    excess = np.concatenate([np.full(20, -3.0), [6.0] * 5, np.full(pinned_n, 4.0),
                             4.0 - np.arange(decay_n) * 2.0 / 300, np.full(100, -3.0)])
    p = np.where(excess > 0.5, 1.0, np.where(excess > -1.0, 0.995, 0.4))
    return excess, p


def test_a_flag_is_released_while_its_chart_recovers_but_not_while_the_incident_lasts():
    excess, p = decaying_aftermath()
    above, hold = excess > 0, p >= 0.99
    kept_up = n_of_m(above, 2, 3, hold, p, rearm_n=30)
    released = n_of_m(above, 2, 3, hold, p, rearm_n=30, excess=excess)
    incident = slice(21, 85)
    assert released[incident].all() and kept_up[incident].all()     # the held level stays flagged
    up_after = np.flatnonzero(kept_up[85:]).size
    assert up_after > 250       # without release: up for as long as the decay stays above the threshold
    assert np.flatnonzero(released[85:]).size < 60
    assert rises(released) == [21]      # no flag again while it comes down, nor when it has settled
    # once settled, the chart flags a new incident at once, however its score compares with
    # where it was released
    excess2 = np.concatenate([excess, np.full(30, 4.0), np.full(10, -3.0)])
    p2 = np.concatenate([p, np.ones(30), np.full(10, 0.4)])
    again = n_of_m(excess2 > 0, 2, 3, p2 >= 0.99, p2, rearm_n=30, excess=excess2)
    assert rises(again) == [21, len(excess) + 1]


def test_a_flag_never_rises_on_a_step_that_reads_ordinary():
    """A pressure average after an incident: above every training score for a minute while it
    comes down (its flag released as recovering), then back to nothing. When the chart settles,
    15 steps later, 24 of the last 40 steps still read above 99 %: that count alone raised a
    one-step flag at a probability of 0 (seen on a real agent: "anomaly flagged on
    'system.io_full_pressure' (probability 0.0%): no dimension stands out")."""
    excess = np.concatenate([np.full(40, -14.0), 6.0 - np.arange(62) * 0.09, np.full(40, -14.0)])
    p = np.where(excess > 0, 1.0, 0.0)
    for flags in (n_of_m(excess > 0, 2, 3, p >= 0.99, p, rearm_n=30, lasting_n=20, excess=excess),
                  _stepped(excess > 0, p >= 0.99, p, excess)):
        assert rises(flags) == [41]
        assert flags[41:70].all() and not flags[102:].any()     # up, released as it came down, then never again


def test_a_threshold_under_99_percent_raises_flags_with_re_arming_on():
    """contamination: 0.2 puts the threshold at 80 %: a stretch of steps at 90 %, above it by
    the margin, is flagged as the user asked, with re-arming on as with it off."""
    n = 60
    above, p, excess = np.r_[np.zeros(20), np.ones(n)], np.r_[np.full(20, 0.3), np.full(n, 0.9)], np.r_[
        np.full(20, -3.0), np.full(n, 1.0)]
    for rearm_n in (30, 0):
        series = n_of_m(above, 2, 3, p >= 0.8, p, rearm_n=rearm_n, lasting_n=20, excess=excess)
        assert rises(series) == [21] and series[21:].all()
    assert rises(_stepped(above, p >= 0.8, p, excess)) == [21]


def _stepped(above, hold, p, excess):
    policy = FlagPolicy(2, 3, 30, 20)
    policy.reindex(['a'])
    return np.array([policy.update([a], [h], [q], [e])[0] for a, h, q, e in zip(above, hold, p, excess)])


def test_each_flag_is_measured_from_its_own_peak():
    # a high first incident, then a second, lower one that eases off for its last 60 steps
    # (down by e^1, not e^2, from its own peak, and not falling for 80 steps): it stays flagged
    # to its end
    first = np.concatenate([np.full(20, -3.0), np.full(30, 8.0), np.full(100, -3.0)])
    second = np.concatenate([[5.5] * 25, np.linspace(5.5, 4.5, 60), np.full(30, -3.0)])
    excess = np.concatenate([first, second])
    p = np.where(excess > 0.5, 1.0, 0.4)
    flags = n_of_m(excess > 0, 2, 3, p >= 0.99, p, rearm_n=30, excess=excess)
    start = len(first)
    assert rises(flags) == [21, start + 1]
    assert flags[start + 1:start + 85].all()


def test_a_score_that_grazes_the_threshold_raises_no_flag():
    # five steps just above the threshold (log excess 0.1), then five well above it (0.6)
    excess = np.concatenate([np.full(40, -3.0), np.full(5, 0.1), np.full(40, -3.0), np.full(5, 0.6),
                             np.full(40, -3.0)])
    p = np.where(excess > 0, 0.9995, 0.4)
    above, hold = excess > 0, p >= 0.99
    flags = n_of_m(above, 2, 3, hold, p, rearm_n=30, excess=excess)
    assert rises(flags) == [86]                       # the second step of the clear excess
    # without the scores' excess, or without re-arming (the retired set-up), every crossing counts
    assert rises(n_of_m(above, 2, 3, hold, p, rearm_n=30)) == [41, 86]
    assert rises(n_of_m(above, 2, 3, hold, p, excess=excess)) == [41, 86]
    # step by step the same
    policy = FlagPolicy(2, 3, rearm_n=30)
    policy.reindex(['a'])
    got = [policy.update([int(x)], [h], [q], [e])[0] for x, h, q, e in zip(above, hold, p, excess)]
    assert got == flags.tolist()


def test_a_chart_waiting_to_re_arm_flags_a_new_excess_far_above_the_threshold_at_once():
    """After a flag, a chart whose probability has not settled yet (a busy node) raises no flag
    for a score a little above the threshold, but does for one far above it (log excess 4, the
    threshold's distance from the median 55 times over): a new incident right after an old one
    is not waited for."""
    excess = np.concatenate([np.full(20, -3.0), np.full(20, 6.0), np.full(40, -0.5), np.full(4, 2.5),
                             np.full(30, -0.5), np.full(6, 4.5), np.full(20, -3.0)])
    p = np.where(excess > 0, 0.9995, np.where(excess > -1, 0.8, 0.4))     # -0.5: unsettled, above 50 %
    above, hold = excess > 0, p >= 0.99
    flags = n_of_m(above, 2, 3, hold, p, rearm_n=30, excess=excess)
    assert rises(flags) == [21, 115]        # the first incident, then the far excess at its 2nd step
    policy = FlagPolicy(2, 3, rearm_n=30)
    policy.reindex(['a'])
    got = [policy.update([int(x)], [h], [q], [e])[0] for x, h, q, e in zip(above, hold, p, excess)]
    assert got == flags.tolist()


def test_a_slow_steady_decay_is_released_once_it_has_fallen_for_80_steps():
    # a held level, then a score coming down by 0.04 every 10 steps (a 900 s load average):
    # e^2 under its peak only after 500 steps; falling for 80 steps and e^0.5 under it after 125
    held, decay_n = 60, 400
    excess = np.concatenate([np.full(20, -3.0), np.full(held, 4.0), 4.0 - np.arange(decay_n) * 0.004,
                             np.full(50, -3.0)])
    p = np.where(excess > 0.5, 1.0, 0.4)
    flags = n_of_m(excess > 0, 2, 3, p >= 0.99, p, rearm_n=30, excess=excess)
    decay = 20 + held
    assert flags[21:decay].all()                      # the held level stays flagged
    up = np.flatnonzero(flags[decay:])
    assert 120 <= up.size <= 130, up.size             # released 125 steps into the decay
    assert rises(flags) == [21]
    # the same decay where every 50 steps a run of 10 sits a little higher: never 80 steps of
    # steady fall, so it is kept up until e^2 (after the data here ends)
    noisy = excess.copy()
    for j in range(decay + 40, decay + decay_n, 50):
        noisy[j:j + 10] += 0.1
    assert np.flatnonzero(n_of_m(noisy > 0, 2, 3, p >= 0.99, p, rearm_n=30, excess=noisy)[decay:]).size > 125


def test_a_new_excess_on_a_recovering_chart_flags_again():
    excess, p = decaying_aftermath()
    base = n_of_m(excess > 0, 2, 3, p >= 0.99, p, rearm_n=30, excess=excess)
    first_off = 21 + int(np.flatnonzero(base[21:] == 0)[0])
    excess[first_off + 100:first_off + 130] += 3.0      # a second incident on top of the decay
    p = np.where(excess > 0.5, 1.0, p)
    flags = n_of_m(excess > 0, 2, 3, p >= 0.99, p, rearm_n=30, excess=excess)
    assert rises(flags) == [21, first_off + 100]
    with pytest.raises(ValueError):
        n_of_m([1, 1], 2, 3, None, [1.0, 1.0], rearm_n=5, excess=[0.0])


def test_a_new_incident_after_a_decay_came_down_flags_before_the_chart_settles():
    """A first incident's aftermath decays from far above the threshold and is released; the
    chart comes down under the threshold without settling (a busy node, probabilities around
    80 %); a new incident then reads a log excess of 5, under where the first was released:
    it is flagged within a few steps, in both forms, where it waited for the chart to settle."""
    excess = np.concatenate([np.full(40, -3.0), np.full(20, 7.0), np.linspace(7.0, 1.0, 80),
                             np.full(100, -0.5), np.full(60, 5.0), np.full(40, -3.0)])
    p = np.where(excess > 0, 1.0, np.where(excess > -1, 0.8, 0.4))
    flags = n_of_m(excess > 0, 2, 3, p >= 0.99, p, rearm_n=30, lasting_n=20, excess=excess)
    assert rises(flags) == [41, 241] and flags[241:300].all()
    policy = FlagPolicy(2, 3, 30, 20)
    policy.reindex(['a'])
    stepped = [policy.update([int(e > 0)], [q >= 0.99], [q], [e])[0] for e, q in zip(excess, p)]
    assert stepped == flags.tolist()


def test_a_recovering_chart_retrained_is_released_again_on_its_new_scale():
    """A chart released as recovering, retrained while its aftermath goes on: the new model's
    scores of the same aftermath sit higher than the old model's release level, which is no
    new excess. The release level is taken again from the new model's first score, so no flag
    rises; where the old model's level stood, the aftermath flagged again at once."""
    excess, p = decaying_aftermath()
    base = _stepped_rearm_only(excess, p)
    released = 21 + int(np.flatnonzero(base[21:] == 0)[0])
    policy = FlagPolicy(2, 3, rearm_n=30)
    policy.reindex(['a'])
    flags = [policy.update([int(e > 0)], [q >= 0.99], [q], [e])[0] for e, q in zip(excess[:released + 10], p)]
    policy.reindex(['a'], retrained=['a'])
    later = excess[released + 10:released + 200] + 1.5      # the new model's scale
    flags += [policy.update([int(e > 0)], [1], [1.0], [e])[0] for e in later]
    assert rises(np.array(flags)) == [21]


@pytest.mark.parametrize('min_n, window_n', [(2, 3), (3, 5), (1, 1), (4, 4)])
@pytest.mark.parametrize('with_hold', [False, True])
@pytest.mark.parametrize('rearm_n, lasting_n', [(0, 0), (4, 0), (0, 4), (4, 4)])
@pytest.mark.parametrize('with_excess', [False, True])
def test_policy_step_by_step_equals_the_series_form(min_n, window_n, with_hold, rearm_n, lasting_n, with_excess):
    rng = np.random.default_rng(min_n * 10 + window_n)
    u = rng.random((400, 4))
    # with a lasting excess: probabilities often above 99 % (40 %), so 3 of 4 steps happen
    p = u ** (0.02 if lasting_n else 0.3)
    above = (u ** 0.3 > 0.8).astype(int)
    hold = p > 0.6 if with_hold else [None] * 400
    excess = None
    if with_excess:
        # scores that decay in long stretches (and so get released) with noise and new excesses
        excess = np.log(np.maximum(rng.random((400, 4)) * 0.2 + np.exp(-(np.arange(400) % 150) / 15.0)[:, None] * 500,
                                   1e-6))
        above = (excess > 0).astype(int) | above
    policy = FlagPolicy(min_n, window_n, rearm_n, lasting_n)
    policy.reindex(['a', 'b', 'c', 'd'])
    got = np.array([policy.update(row, h, q, None if excess is None else excess[i])
                    for i, (row, h, q) in enumerate(zip(above, hold, p))])
    released = 0
    for k in range(4):
        series_hold = hold[:, k] if with_hold else None
        series_excess = None if excess is None else excess[:, k]
        want = n_of_m(above[:, k], min_n, window_n, series_hold, p[:, k], rearm_n, lasting_n, series_excess)
        assert got[:, k].tolist() == want.tolist()
        if excess is not None and rearm_n:
            kept_up = n_of_m(above[:, k], min_n, window_n, series_hold, p[:, k], rearm_n, lasting_n)
            released += int((kept_up > want).sum())
    assert released or not (with_excess and rearm_n)    # the release happened, so both forms were compared on it


def test_policy_equals_the_series_form_across_a_new_layout_and_steps_without_a_score():
    rng = np.random.default_rng(5)
    n = 400
    excess = np.log(np.maximum(rng.random((n, 3)) * 0.2 + np.exp(-(np.arange(n) % 130) / 12.0)[:, None] * 400, 1e-6))
    excess[rng.random((n, 3)) < 0.02] = np.nan         # odd values read as the floor in both forms
    p = np.clip(rng.random((n, 3)) ** 0.2 + (excess > 0), 0, 1)
    above = (excess > 0).astype(int)
    scored = rng.random((n, 3)) > 0.03                 # the engine's steps without a score
    above, p = above * scored, np.where(scored, p, 0.0)
    excess = np.where(scored, excess, -np.inf)
    policy = FlagPolicy(2, 3, rearm_n=10, lasting_n=20)
    policy.reindex(['a', 'b'])
    got = {'a': [], 'b': [], 'c': []}
    for i in range(n):
        if i == 150:
            policy.reindex(['b', 'c'])                 # a gone, c new, b stays
        ids = policy.ids
        cols = [{'a': 0, 'b': 1, 'c': 2}[m] for m in ids]
        flags = policy.update(above[i, cols], p[i, cols] >= 0.99, p[i, cols], excess[i, cols])
        for m, f in zip(ids, flags):
            got[m].append(int(f))
    for m, k, first in (('a', 0, 0), ('b', 1, 0), ('c', 2, 150)):
        end = first + len(got[m])
        want = n_of_m(above[first:end, k], 2, 3, p[first:end, k] >= 0.99, p[first:end, k], 10, 20,
                      excess[first:end, k])
        assert got[m] == want.tolist(), m


def test_a_retrained_model_measures_its_fall_on_its_own_scale():
    excess, p = decaying_aftermath()
    def first_release(retrain_at=None):
        policy = FlagPolicy(2, 3, rearm_n=30)
        policy.reindex(['a'])
        for i in range(len(excess)):
            if i == retrain_at:
                policy.reindex(['a'], retrained=['a'])
            f = policy.update([int(excess[i] > 0)], [p[i] >= 0.99], [p[i]], [excess[i]])[0]
            if i > 30 and not f:
                return i
    plain = first_release()
    # retrained just before: the runs start again, on 40 steps of the new model's scores
    assert first_release(retrain_at=plain - 5) == plain - 5 + 39


def test_reindex_keeps_the_history_of_models_that_stay():
    policy = FlagPolicy(2, 3)
    policy.reindex(['a', 'b'])
    policy.update([1, 1])
    policy.reindex(['c', 'b'])          # a retrained layout: a gone, c new
    assert policy.update([1, 1]).tolist() == [0, 1]


def test_reindex_keeps_a_model_waiting_to_re_arm():
    policy = FlagPolicy(1, 1, rearm_n=5)
    policy.reindex(['a', 'b'])
    assert policy.update([1, 1], None, [1.0, 1.0]).tolist() == [1, 1]
    assert policy.update([0, 0], None, [0.9, 0.9]).tolist() == [0, 0]     # both flags clear
    policy.reindex(['b', 'c'])          # b stays (still waiting to re-arm), c is new (armed)
    assert policy.update([1, 1], None, [1.0, 1.0]).tolist() == [0, 1]


def test_reindex_keeps_the_count_of_a_lasting_excess():
    policy = FlagPolicy(2, 3, lasting_n=4)
    policy.reindex(['a', 'b'])
    for _ in range(2):
        assert policy.update([0, 0], None, [0.995, 0.995]).tolist() == [0, 0]
    policy.reindex(['c', 'b'])          # b has 2 high steps behind it, c none
    assert policy.update([0, 0], None, [0.995, 0.995]).tolist() == [0, 1]


def test_a_decay_with_lone_higher_reads_is_still_released():
    """A load average coming down after an incident, one read in seven a little higher (a
    burst of retransmits, a busy second): each run of 10 steps is judged by its median, so
    the lone reads do not hide the decay and the flag is released as without them."""
    excess, _ = decaying_aftermath()
    excess[85:485:7] += 1.0
    p = np.where(excess > 0.5, 1.0, np.where(excess > -1.0, 0.995, 0.4))
    flags = n_of_m(excess > 0, 2, 3, p >= 0.99, p, rearm_n=30, excess=excess)
    assert flags[21:85].all()
    assert np.flatnonzero(flags[85:]).size < 60
    assert rises(flags) == [21]
    assert flags.tolist() == _stepped_rearm_only(excess, p).tolist()


def _stepped_rearm_only(excess, p):
    policy = FlagPolicy(2, 3, rearm_n=30)
    policy.reindex(['a'])
    return np.array([policy.update([int(e > 0)], [q >= 0.99], [q], [e])[0] for e, q in zip(excess, p)])


def test_a_recovering_chart_that_ticks_up_a_little_raises_no_new_flag():
    """After its flag is released, a decay that rises for a moment by less than ``RECOVERY_RISE``
    (e^1) is still the same aftermath: no new flag, while a rise of more is (see
    test_a_new_excess_on_a_recovering_chart_flags_again)."""
    excess, p = decaying_aftermath()
    base = n_of_m(excess > 0, 2, 3, p >= 0.99, p, rearm_n=30, excess=excess)
    released = 21 + int(np.flatnonzero(base[21:] == 0)[0])
    excess[released + 20:released + 30] += 0.5
    p = np.where(excess > 0.5, 1.0, p)
    flags = n_of_m(excess > 0, 2, 3, p >= 0.99, p, rearm_n=30, excess=excess)
    assert rises(flags) == [21]
    assert rises(_stepped_rearm_only(excess, p)) == [21]


def test_a_level_that_holds_while_easing_by_a_hair_stays_flagged():
    """An incident that jumps, then holds its level (a pinned CPU) while its score eases by
    0.01 every 10 steps: the score is e^2 under its first peak, but its runs do not fall by
    ``RECOVERY_STEP``, so it is an incident in progress, not a decay, and stays flagged."""
    excess = np.concatenate([np.full(20, -3.0), np.full(5, 6.0), 4.0 - np.arange(200) * 0.001, np.full(30, -3.0)])
    p = np.where(excess > 0.5, 1.0, 0.4)
    flags = n_of_m(excess > 0, 2, 3, p >= 0.99, p, rearm_n=30, excess=excess)
    assert rises(flags) == [21] and flags[21:225].all()
    assert _stepped_rearm_only(excess, p).tolist() == flags.tolist()


def test_a_probability_of_exactly_99_percent_counts_towards_a_lasting_excess():
    """The lasting excess counts steps at a probability of at least 99 %: a model trained on
    a few hundred rows reads exactly 0.99 (99 of 100), and a level that sits there lasts."""
    p = np.array([0.5] * 30 + [0.99] * 40 + [0.5] * 30)
    for rearm_n in (0, 30):
        flags = n_of_m(p > 0.999, 2, 3, p >= 0.99, p, rearm_n=rearm_n, lasting_n=20)
        assert rises(flags) == [44]
    policy = FlagPolicy(2, 3, 30, 20)
    policy.reindex(['a'])
    assert rises(np.array([policy.update([0], [q >= 0.99], [q])[0] for q in p])) == [44]
