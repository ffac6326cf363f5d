"""The flag policy: N of the last M steps above the threshold."""
import numpy as np
import pytest

from collector.flags import FlagPolicy, n_of_m


def test_n_of_m_ignores_lone_blips_and_follows_a_lasting_excess():
    above = [0, 1, 0, 0, 1, 1, 1, 0, 1, 0, 0, 0]
    assert n_of_m(above, 2, 3).tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0]
    assert n_of_m(above, 1, 1).tolist() == above    # the retired collector's flag
    assert n_of_m(above, 3, 3).tolist() == [0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]


@pytest.mark.parametrize('min_n, window_n', [(2, 3), (3, 5), (1, 1), (4, 4)])
def test_policy_step_by_step_equals_the_series_form(min_n, window_n):
    rng = np.random.default_rng(min_n * 10 + window_n)
    above = (rng.random((200, 4)) < 0.3).astype(int)
    policy = FlagPolicy(min_n, window_n)
    policy.reindex(['a', 'b', 'c', 'd'])
    got = np.array([policy.update(row) for row in above])
    for k in range(4):
        assert got[:, k].tolist() == n_of_m(above[:, k], min_n, window_n).tolist()


def test_reindex_keeps_the_history_of_models_that_stay():
    policy = FlagPolicy(2, 3)
    policy.reindex(['a', 'b'])
    policy.update([1, 1])
    policy.reindex(['c', 'b'])          # a retrained layout: a gone, c new
    assert policy.update([1, 1]).tolist() == [0, 1]
