import numpy as np
import pytest

from collector.features import (absent_as_zero, carried_within, despiked_history, feature_blocks, feature_groups,
                                fill_missing, make_features, phases_every, rows_after_gaps, rows_at, rows_every,
                                rows_needed)


def test_hand_computed_features():
    x = np.array([[1.0, 10.0], [2.0, 20.0], [4.0, 40.0], [7.0, 70.0], [11.0, 110.0], [16.0, 160.0]])
    # diffs: [1,10] [2,20] [3,30] [4,40] [5,50]; smooth 2: [1.5,15] [2.5,25] [3.5,35] [4.5,45]
    # lag 1: rows [2.5,25,1.5,15] [3.5,35,2.5,25] [4.5,45,3.5,35]
    f = make_features(x, diffs_n=1, smooth_n=2, lags_n=1)
    assert f.tolist() == [[2.5, 25, 1.5, 15], [3.5, 35, 2.5, 25], [4.5, 45, 3.5, 35]]


def test_no_transform_is_identity():
    x = np.arange(12, dtype=float).reshape(6, 2)
    assert np.array_equal(make_features(x, 0, 0, 0), x)
    assert np.array_equal(make_features(x, 0, 1, 0), x)


def test_second_differences_and_lags_order():
    x = np.array([1.0, 4.0, 9.0, 16.0, 25.0])[:, None]
    # second differences of squares are all 2
    assert make_features(x, 2, 1, 0).ravel().tolist() == [2.0, 2.0, 2.0]
    y = np.arange(5, dtype=float)[:, None]
    # current value first, then lag 1, lag 2
    assert make_features(y, 0, 1, 2).tolist() == [[2, 1, 0], [3, 2, 1], [4, 3, 2]]


@pytest.mark.parametrize('diffs_n, smooth_n, lags_n', [(1, 3, 5), (0, 1, 0), (2, 5, 3), (1, 0, 10)])
def test_prediction_row_equals_training_row(diffs_n, smooth_n, lags_n):
    x = np.random.default_rng(0).normal(size=(200, 3)).cumsum(axis=0)
    train = make_features(x, diffs_n, smooth_n, lags_n)
    need = rows_needed(diffs_n, smooth_n, lags_n)
    assert train.shape == (200 - need + 1, 3 * (lags_n + 1))
    for end in (need, 57, 200):
        one = make_features(x[end - need:end], diffs_n, smooth_n, lags_n)
        assert one.shape[0] == 1
        assert np.allclose(one[0], train[end - need])


def test_too_few_rows_gives_empty_matrix():
    assert make_features(np.zeros((3, 2)), 1, 3, 5).shape == (0, 12)


def test_fill_missing():
    x = np.array([[np.nan, 1.0, np.nan], [2.0, np.nan, np.nan], [np.nan, 3.0, np.nan]])
    assert fill_missing(x).tolist() == [[2.0, 1.0, 0.0], [2.0, 1.0, 0.0], [2.0, 3.0, 0.0]]


def test_a_dimension_absent_while_its_chart_has_values_reads_zero():
    """An apps.plugin group whose processes ended is null while the chart's other groups have
    values: it reads 0, not its last reading held for good. A row with no value at all (the
    chart not collected) stays null, for fill_missing to carry the last row over it. Each
    chart of a layout is judged on its own columns."""
    nan = np.nan
    x = np.array([[5.0, 90.0, 1.0], [5.0, nan, 1.0], [nan, nan, nan], [6.0, nan, 1.0]])
    got = absent_as_zero(x)
    assert np.array_equal(got[[0, 1, 3]], [[5, 90, 1], [5, 0, 1], [6, 0, 1]])
    assert np.isnan(got[2]).all()
    assert fill_missing(got).tolist() == [[5, 90, 1], [5, 0, 1], [5, 0, 1], [6, 0, 1]]
    # two charts: columns 0-1 and 2-3, in the order (3, 2), (0, 1); the second chart not collected
    two = np.array([[1.0, nan, nan, nan]])
    out = absent_as_zero(two, np.array([3, 2, 0, 1]), np.array([0, 2]))
    assert out[0, :2].tolist() == [1.0, 0.0] and np.isnan(out[0, 2:]).all()
    assert np.isnan(x[1, 1])   # the input is left as it was


def test_a_chart_is_carried_between_its_collections_but_not_over_a_gap():
    """Joined on one-second rows, a chart collected every 5 s repeats its last reading until
    its next, as the agent's current values do; a gap longer than 30 s (or three of its own
    intervals) is not collected, and stays null rather than read as that long of one value."""
    nan = np.nan
    t = np.arange(0.0, 200.0)
    five = np.where(t % 5 == 0, t, nan)                 # every 5 s
    five[(t > 50) & (t < 150)] = nan                    # the agent down 100 s
    one = np.where(t == 10, 7.0, nan)                   # one reading, then nothing
    minute = np.where(t % 60 == 0, t, nan)              # every 60 s: carried up to 180 s
    x = np.column_stack([five, one, minute])
    got = carried_within(x, t, np.array([0, 1, 2]), np.array([0, 1, 2]))
    assert got[:51, 0].tolist() == [float(v - v % 5) for v in range(51)]
    assert got[51:81, 0].tolist() == [50.0] * 30 and np.isnan(got[81:150, 0]).all()
    assert got[150:, 0].tolist() == [float(v - v % 5) for v in range(150, 200)]
    assert np.isnan(got[:10, 1]).all() and (got[10:41, 1] == 7.0).all() and np.isnan(got[41:, 1]).all()
    assert got[:, 2].tolist() == [float(v - v % 60) for v in range(200)]
    # dimensions of one chart are carried (or not) together, an absent one read as 0 first
    two = np.array([[1.0, 2.0], [nan, nan], [3.0, nan], [nan, nan]])
    assert carried_within(two, [0, 1, 2, 100]).tolist()[:3] == [[1, 2], [1, 2], [3, 0]]
    assert np.isnan(carried_within(two, [0, 1, 2, 100])[3]).all()
    assert np.isnan(x[1, 0])   # the input is left as it was


def test_level_block_is_the_smoothed_value_after_the_change_blocks():
    x = np.array([[1.0, 10.0], [2.0, 20.0], [4.0, 40.0], [7.0, 70.0], [11.0, 110.0], [16.0, 160.0]])
    f = make_features(x, diffs_n=1, smooth_n=2, lags_n=1, levels=True)
    # change blocks as in test_hand_computed_features, then the mean of the last 2 raw rows
    assert f.tolist() == [[2.5, 25, 1.5, 15, 5.5, 55], [3.5, 35, 2.5, 25, 9.0, 90], [4.5, 45, 3.5, 35, 13.5, 135]]
    assert feature_blocks(1, True) == 3 and feature_blocks(1, False) == 2


@pytest.mark.parametrize('diffs_n, smooth_n, lags_n', [(1, 3, 5), (0, 1, 0), (2, 5, 3), (1, 0, 10)])
def test_prediction_row_equals_training_row_with_levels(diffs_n, smooth_n, lags_n):
    x = np.random.default_rng(1).normal(size=(120, 2)).cumsum(axis=0)
    train = make_features(x, diffs_n, smooth_n, lags_n, levels=True)
    need = rows_needed(diffs_n, smooth_n, lags_n)
    assert train.shape == (120 - need + 1, 2 * (lags_n + 2))
    for end in (need, 77, 120):
        assert np.allclose(make_features(x[end - need:end], diffs_n, smooth_n, lags_n, levels=True)[0],
                           train[end - need])


def test_feature_groups_follow_the_columns_chart_in_every_block():
    groups = feature_groups(['cpu', 'cpu', 'ram'], lags_n=1, levels=True)
    assert groups.tolist() == [0, 0, 1] * 3


@pytest.mark.parametrize('diffs_n, smooth_n, lags_n, levels', [(1, 3, 5, True), (0, 1, 0, False), (2, 5, 3, True),
                                                               (1, 0, 10, True), (1, 1, 0, True), (0, 1, 1, False)])
def test_despiked_prediction_row_equals_training_row(diffs_n, smooth_n, lags_n, levels):
    # integer counts with one-sample blips and lasting steps, where despiking changes rows
    rng = np.random.default_rng(3)
    x = np.round(rng.normal(size=(150, 3)).cumsum(axis=0) / 3)
    x[rng.integers(2, 148, 20), 1] += 5
    train = make_features(x, diffs_n, smooth_n, lags_n, levels, despike=True)
    need = rows_needed(diffs_n, smooth_n, lags_n, despike=True)
    assert need == rows_needed(diffs_n, smooth_n, lags_n) + 2
    assert train.shape[0] == 150 - need + 1
    if need > 3:  # a feature row with history: despiking changes it (with none it cannot)
        assert not np.allclose(train, make_features(x, diffs_n, smooth_n, lags_n, levels)[2:])
    for end in (need, 61, 150):
        one = make_features(x[end - need:end], diffs_n, smooth_n, lags_n, levels, despike=True)
        assert one.shape[0] == 1
        assert np.allclose(one[0], train[end - need])


def test_a_one_sample_blip_is_seen_on_one_step_and_a_held_step_on_every_step():
    flat = np.zeros((40, 1))
    blip = flat.copy()
    blip[20] = 1.0
    held = flat.copy()
    held[20:] = 1.0

    def steps_seen(x, despike):
        f = make_features(x, 1, 3, 5, levels=True, despike=despike)
        return np.flatnonzero(np.abs(f).max(axis=1) > 0).size

    # without despiking the smoothing and lags carry one sample into 9 rows
    assert steps_seen(blip, despike=False) == 9
    assert steps_seen(blip, despike=True) == 1
    # a level that holds is seen from the step it arrives, as before
    assert steps_seen(held, despike=True) == steps_seen(held[2:], despike=False)
    f = make_features(held, 1, 3, 5, levels=True, despike=True)
    need = rows_needed(1, 3, 5, despike=True)
    assert np.abs(f[20 - need + 1]).max() > 0 and np.abs(f[20 - need]).max() == 0


def test_despiked_history_keeps_the_newest_row_and_what_holds():
    x = np.array([[0.0], [0.0], [3.0], [0.0], [2.0], [2.0], [0.0], [0.0], [5.0]])
    assert despiked_history(x).ravel().tolist() == [0, 0, 0, 0, 2, 2, 0, 0, 5]
    # a blip needs the value held for two samples before it: of two blips 2 s apart the
    # second is kept, and a gauge that flips every second keeps its history as read
    pair = np.array([[0.0], [0.0], [5.0], [0.0], [5.0], [0.0], [0.0]])
    assert despiked_history(pair).ravel().tolist() == [0, 0, 0, 0, 5, 0, 0]
    flapping = (np.arange(12) % 2 + 1.0)[:, None]
    assert np.array_equal(despiked_history(flapping), flapping)


def test_rows_every_takes_the_sample_each_step_reads():
    t = np.arange(100, 112, dtype=float)            # one-second rows
    assert list(rows_every(t, 1)) == list(range(12))
    assert list(t[rows_every(t, 5)]) == [101, 106, 111]   # back from the newest, 5 s apart
    slow = np.array([100, 105, 110, 115], dtype=float)   # a chart collected every 5 s, steps every 2 s
    assert list(slow[rows_every(slow, 2)]) == [100, 100, 105, 105, 105, 110, 110, 115]
    # stepped every second, as the job reads it, trained alone or beside one-second charts
    assert list(slow[rows_every(slow, 1)]) == [100] * 5 + [105] * 5 + [110] * 5 + [115]
    # a gap in collection: its steps read nothing, and the rows around it stay
    gap = np.array([100, 101, 102, 160, 161], dtype=float)
    assert list(gap[rows_every(gap, 1)]) == [100, 101, 102, 160, 161]
    assert list(gap[rows_every(gap, 2)]) == [101, 102, 161]   # steps at 101, 103 (reads 102), 105-159 in the gap, 161
    assert rows_every(np.array([]), 5).size == 0 and list(rows_every(np.array([7.0]), 5)) == [0]


def test_rows_at_tells_which_row_each_step_reads_and_whether_it_is_current():
    slow = np.array([100, 105, 110], dtype=float)   # collected every 5 s, stepped every second
    at, current = rows_at(slow, [99, 100, 104, 105, 114, 115], 1)
    assert list(at) == [0, 0, 0, 1, 2, 2]
    # before the first row nothing; the newest row is current until its next one is due (115)
    assert list(current) == [False, True, True, True, True, False]


def test_a_job_stepping_every_few_seconds_learns_every_phase_its_steps_may_have():
    t = np.arange(100, 112, dtype=float)
    phases = [list(t[p]) for p in phases_every(t, 5)]
    assert phases == [[101, 106, 111], [100, 105, 110], [104, 109], [103, 108], [102, 107]]
    assert sorted(x for p in phases for x in p) == list(t)        # every row once
    assert [list(p) for p in phases_every(t, 1)] == [list(range(12))]
    slow = np.arange(100, 160, 5, dtype=float)   # a chart collected every 5 s: one phase
    assert [list(slow[p]) for p in phases_every(slow, 5)] == [list(slow)]
    two = np.arange(100, 120, 2, dtype=float)    # every 2 s, stepped every 4 s: two
    assert [list(two[p]) for p in phases_every(two, 4)] == [list(two[1::2]), list(two[0::2])]


@pytest.mark.parametrize('despike', [False, True])
def test_a_four_hour_window_of_values_near_1e15_gives_the_rows_each_step_sees(despike):
    """A byte counter's rate near 1e15 wobbling by 100: the training window's rows are the
    rows the steps build from their few samples, and a dimension that held one value has one
    level, so a model is the same wherever the values sit."""
    rng = np.random.default_rng(0)
    x = np.column_stack([1.2345678e15 + rng.normal(0, 100, 14400), np.full(14400, 9.87654321e14)])
    whole = make_features(x, 1, 3, 5, levels=True, despike=despike)
    need = rows_needed(1, 3, 5, despike)
    steps = np.vstack([make_features(x[i - need:i], 1, 3, 5, True, despike)[-1] for i in range(12400, 14401)])
    assert np.array_equal(whole[-steps.shape[0]:], steps)
    assert np.unique(whole[:, -1]).size == 1


def test_feature_rows_that_reach_back_over_a_gap_in_collection_are_told():
    """The agent down for 48 s (a reboot): the feature rows whose differences and lags span the
    gap read the whole change across it as one step; the rows of a missed sample or two do not."""
    times = np.concatenate([np.arange(100, 120), np.arange(168, 190)]).astype(float)   # rows 0-19, then 20-41
    across = rows_after_gaps(times, reach=4, every=1)
    assert across.size == times.size - 3            # one per feature row (from row 3 on)
    assert np.nonzero(across)[0].tolist() == [17, 18, 19]   # feature rows ending at rows 20-22
    missed = np.delete(np.arange(100, 140, dtype=float), [10, 11])   # two samples missed
    assert not rows_after_gaps(missed, reach=4, every=1).any()
    slow = np.arange(100, 300, 5, dtype=float)   # a chart collected every 5 s has no gap between its rows
    assert not rows_after_gaps(slow, reach=4, every=1).any()
    assert rows_after_gaps(times[:2], reach=4, every=1).size == 0
    # a chart collected every 10 s, trained alone and stepped every second: each row repeats ten
    # times, and its next collection is no gap (it left 80 % of the rows out, and every row kept
    # had its differences at 0); a minute without a collection still is one
    for every in (6, 10, 60):
        rows = np.arange(0, 7200, every, dtype=float)
        stepped = rows[phases_every(rows, 1)[0]]
        assert not rows_after_gaps(stepped, reach=9, every=1).any(), every
    rows = np.concatenate([np.arange(0, 3600, 10), np.arange(3700, 7200, 10)]).astype(float)
    across = rows_after_gaps(rows[phases_every(rows, 1)[0]], reach=9, every=1)
    assert 0 < across.sum() <= 20, across.sum()
