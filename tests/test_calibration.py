"""Calibrated confidence thresholds."""

import numpy as np
import pytest

from skanimal.calibration import confidence_threshold


def brute_force(proba, y_true, classes, precision):
    """The definition, tried at every candidate threshold."""
    proba, classes = np.asarray(proba), np.asarray(classes)
    top, right = proba.max(1), classes[proba.argmax(1)] == np.asarray(y_true)
    good = [t for t in np.unique(top) if right[top >= t].mean() >= precision - 1e-12]
    return float(min(good)) if good else None


def test_definition_on_random_data():
    rng = np.random.default_rng(0)
    classes = np.array(["a", "b", "c"])
    for _trial in range(40):
        n = rng.integers(1, 60)
        proba = rng.dirichlet(np.ones(3) * rng.uniform(0.2, 3), size=n).round(2)  # ties
        noise = rng.uniform(0, 1, n) < rng.uniform(0, 0.5)
        y = np.where(noise, rng.choice(classes, n), classes[proba.argmax(1)])
        for precision in (0.5, 0.9, 0.98, 1.0):
            assert confidence_threshold(proba, y, classes, precision=precision) == \
                brute_force(proba, y, classes, precision)


def test_mistakes_raise_the_threshold_above_them():
    classes = ["cat", "dog"]
    proba = [[0.99, 0.01], [0.95, 0.05], [0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.45, 0.55]]
    y = ["cat", "cat", "dog", "cat", "dog", "cat"]
    assert confidence_threshold(proba, y, classes, precision=1.0) == 0.95
    assert confidence_threshold(proba, y, classes, precision=0.75) == 0.7
    assert confidence_threshold(proba, y, classes, precision=0.5) == 0.55


def test_ties_are_kept_together():
    proba = [[0.9, 0.1], [0.9, 0.1], [0.6, 0.4]]
    assert confidence_threshold(proba, ["a", "b", "a"], ["a", "b"], precision=1.0) is None
    assert confidence_threshold(proba, ["a", "b", "a"], ["a", "b"], precision=0.6) == 0.6


def test_none_and_bad_input():
    assert confidence_threshold(np.empty((0, 2)), [], ["a", "b"]) is None
    assert confidence_threshold([[0.6, 0.4]], ["b"], ["a", "b"]) is None
    with pytest.raises(ValueError, match="shape"):
        confidence_threshold([[0.6, 0.4]], ["a"], ["a", "b", "c"])
    with pytest.raises(ValueError, match="y_true"):
        confidence_threshold([[0.6, 0.4]], ["a", "b"], ["a", "b"])
    with pytest.raises(ValueError, match="precision"):
        confidence_threshold([[0.6, 0.4]], ["a"], ["a", "b"], precision=0)
