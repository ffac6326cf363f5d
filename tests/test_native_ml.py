"""The native ML baseline of bench/native_ml.py does what Netdata documents, so its figures
beside the job's mean something."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'bench'))
import native_ml  # noqa: E402


def test_feature_vector_is_the_smoothed_difference_and_its_five_lags():
    x = np.arange(20, dtype=float) ** 2            # differences 1, 3, 5, ...: smoothed 3, 5, 7, ...
    X = native_ml.feature_vectors(x)
    assert X.shape == (20 - 1 - 2 - 5, 6)
    assert X[0].tolist() == [13.0, 11.0, 9.0, 7.0, 5.0, 3.0]   # newest first


def test_a_far_sample_is_anomalous_normal_ones_are_not_and_constant_dimensions_get_no_model():
    rng = np.random.default_rng(3)
    train = rng.normal(10, 1, (1200, 2))
    train[:, 1] = 7.0                                  # constant: no model, never anomalous
    evals = rng.normal(10, 1, (300, 2))
    evals[:, 1] = 7.0
    evals[150, 0] = 60.0                               # a jump far beyond anything in training
    bits, scores = native_ml.chart_bits(train, evals)
    assert scores[150:153, 0].min() >= 99 and bits[150, 0] == 1
    assert bits[:140, 0].mean() < 0.05 and not bits[:, 1].any() and not scores[:, 1].any()
    # fewer than 15 minutes of samples: no model at all, unless asked for less
    assert not native_ml.chart_bits(train[:600], evals)[0].any()
    assert native_ml.chart_bits(train[:600], evals, min_samples=600)[0][150, 0] == 1


def test_a_dimension_anomalous_in_half_of_its_last_900_samples_is_suppressed():
    scores = np.full(2000, 100.0)
    bits = native_ml.anomaly_bits(scores)
    assert bits[:449].all() and not bits[449:].any()


def test_the_node_alert_needs_more_than_one_percent_over_a_minute():
    times = np.arange(300)
    rate = np.zeros(300)
    rate[100:105] = 0.05                               # 5 % for 5 s: 0.4 % over the minute
    rate[200:] = 0.02                                  # 2 % from then on
    alert = native_ml.node_alert(rate, times)
    assert not alert[:200].any() and alert[231:].all()
