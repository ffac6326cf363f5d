"""The rows the models score on, laid out again when the models change: which rows of before
may stand, so new models score at once and no row of another time slips in."""
import numpy as np

from collector import ring


def test_the_latest_answers_fill_the_newest_rows_and_the_rest_is_unknown():
    rows, stamps = ring.refill(4, {'a': 0, 'b': 1}, [(10.0, np.array([1.0, 2.0])), (11.0, np.array([3.0, 4.0]))])
    assert np.isnan(rows[:2]).all() and np.isnan(stamps[:2]).all()
    assert rows[2:].tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert stamps[2:].tolist() == [10.0, 11.0]


def test_rows_of_the_previous_layout_stand_for_the_columns_both_have():
    # a model of 'c' joins the models of 'a' and 'b': 'a' and 'b' keep their rows, 'c' has none
    old_rows = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    old_stamps = np.array([7.0, 8.0, 9.0])
    index = {'c': 0, 'b': 1, 'a': 2}
    rows, stamps = ring.refill(3, index, [(9.0, np.array([5.0, 6.0, 7.0]))],
                               before=(old_rows, old_stamps, {'a': 0, 'b': 1}))
    # only the rows older than the newest answer: the row at 9 s is the answer's
    assert stamps.tolist() == [7.0, 8.0, 9.0]
    assert rows[:2, 2].tolist() == [1.0, 2.0] and rows[:2, 1].tolist() == [10.0, 20.0]
    assert np.isnan(rows[:2, 0]).all()
    assert rows[2].tolist() == [5.0, 6.0, 7.0]


def test_a_newly_trained_model_starts_from_its_training_rows_in_its_own_columns():
    index = {'a': 0, 'b': 1}
    tails = [(['b'], [5.0, 6.0, 7.0, 8.0], [[50.0], [60.0], [70.0], [80.0]])]
    rows, stamps = ring.refill(3, index, [(8.0, np.array([1.0, 81.0]))], tails=tails)
    assert rows[:, 1].tolist() == [60.0, 70.0, 81.0]   # the training row at 8 s is the answer's
    assert np.isnan(rows[:2, 0]).all()
    assert stamps.tolist() == [6.0, 7.0, 8.0]


def test_no_row_from_before_a_gap_is_kept():
    # the agent stopped between 9 s and 100 s: rows of before would read the gap's whole
    # change as one step's
    old = (np.array([[1.0], [2.0]]), np.array([8.0, 9.0]), {'a': 0})
    tails = [(['a'], [8.0, 9.0], [[1.0], [2.0]])]
    rows, stamps = ring.refill(3, {'a': 0}, [(100.0, np.array([3.0]))], before=old, tails=tails, since=95.0)
    assert np.isnan(rows[:2]).all() and np.isnan(stamps[:2]).all()
    assert rows[2].tolist() == [3.0]


def test_a_step_moves_the_rows_on_and_a_column_without_a_value_keeps_its_last():
    rows = np.array([[1.0, 2.0], [3.0, 4.0]])
    stamps = np.array([1.0, 2.0])
    ring.push(rows, stamps, np.array([5.0, np.nan]), 3.0)
    assert rows.tolist() == [[3.0, 4.0], [5.0, 4.0]]
    assert stamps.tolist() == [2.0, 3.0]
