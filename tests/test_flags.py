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


@pytest.mark.parametrize('min_n, window_n', [(2, 3), (3, 5), (1, 1), (4, 4)])
@pytest.mark.parametrize('with_hold', [False, True])
@pytest.mark.parametrize('rearm_n', [0, 4])
def test_policy_step_by_step_equals_the_series_form(min_n, window_n, with_hold, rearm_n):
    rng = np.random.default_rng(min_n * 10 + window_n)
    p = rng.random((400, 4)) ** 0.3
    above = (p > 0.8).astype(int)
    hold = p > 0.6 if with_hold else [None] * 400
    policy = FlagPolicy(min_n, window_n, rearm_n)
    policy.reindex(['a', 'b', 'c', 'd'])
    got = np.array([policy.update(row, h, q) for row, h, q in zip(above, hold, p)])
    for k in range(4):
        series_hold = hold[:, k] if with_hold else None
        assert got[:, k].tolist() == n_of_m(above[:, k], min_n, window_n, series_hold, p[:, k], rearm_n).tolist()


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
