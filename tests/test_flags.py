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


@pytest.mark.parametrize('min_n, window_n', [(2, 3), (3, 5), (1, 1), (4, 4)])
@pytest.mark.parametrize('with_hold', [False, True])
def test_policy_step_by_step_equals_the_series_form(min_n, window_n, with_hold):
    rng = np.random.default_rng(min_n * 10 + window_n)
    above = (rng.random((200, 4)) < 0.3).astype(int)
    hold = rng.random((200, 4)) < 0.6 if with_hold else [None] * 200
    policy = FlagPolicy(min_n, window_n)
    policy.reindex(['a', 'b', 'c', 'd'])
    got = np.array([policy.update(row, h) for row, h in zip(above, hold)])
    for k in range(4):
        series_hold = hold[:, k] if with_hold else None
        assert got[:, k].tolist() == n_of_m(above[:, k], min_n, window_n, series_hold).tolist()


def test_reindex_keeps_the_history_of_models_that_stay():
    policy = FlagPolicy(2, 3)
    policy.reindex(['a', 'b'])
    policy.update([1, 1])
    policy.reindex(['c', 'b'])          # a retrained layout: a gone, c new
    assert policy.update([1, 1]).tolist() == [0, 1]
