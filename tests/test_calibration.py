"""Calibrated confidence thresholds: a lower confidence bound, and the basis it states."""

import numpy as np
import pytest
from scipy.stats import binomtest

from skanimal.calibration import (
    ConfidenceBasis,
    calibrate_confidence,
    confidence_threshold,
    min_photos,
    precision_lower_bound,
)


def lower_bound(k, n, confidence):
    """Clopper–Pearson, one-sided: scipy's exact binomial test's interval."""
    return binomtest(k, n).proportion_ci(confidence_level=2 * confidence - 1,
                                         method="exact").low


def brute_force(proba, y_true, classes, precision, confidence):
    """The definition, tried at every candidate threshold."""
    proba, classes = np.asarray(proba), np.asarray(classes)
    top, right = proba.max(1), classes[proba.argmax(1)] == np.asarray(y_true)
    good = [t for t in np.unique(top) if right[top >= t].sum() and
            lower_bound(int(right[top >= t].sum()), int((top >= t).sum()), confidence)
            >= precision]
    return float(min(good)) if good else None


def test_bound_is_clopper_pearson():
    for k, n in ((1, 1), (5, 6), (120, 120), (149, 149), (170, 175)):
        assert precision_lower_bound(k, n, 0.95) == pytest.approx(lower_bound(k, n, 0.95))
    assert precision_lower_bound(0, 10) == 0
    assert min_photos(0.98, 0.95) == 149
    assert precision_lower_bound(149, 149) >= 0.98 > precision_lower_bound(148, 148)


@pytest.mark.slow
def test_definition_on_random_data():
    rng = np.random.default_rng(0)
    classes = np.array(["a", "b", "c"])
    for _trial in range(25):
        n = rng.integers(1, 300)
        proba = rng.dirichlet(np.ones(3) * rng.uniform(0.2, 3), size=n).round(2)  # ties
        noise = rng.uniform(0, 1, n) < rng.uniform(0, 0.2)
        y = np.where(noise, rng.choice(classes, n), classes[proba.argmax(1)])
        for precision in (0.5, 0.9, 0.98):
            assert confidence_threshold(proba, y, classes, precision=precision) == \
                brute_force(proba, y, classes, precision, 0.95)


def test_six_held_out_photos_support_nothing():
    """Six right predictions "show" 100 % as a point estimate; the bound says 60.6 %."""
    basis = calibrate_confidence([[0.9999, 0.0001]] * 6, ["a"] * 6, ["a", "b"])
    assert basis.threshold is None and basis.n_heldout == 6
    assert basis.describe() == ("too few held-out photos (6) to calibrate: 98 % right with "
                                "95 % confidence needs at least 149")


def test_enough_held_out_photos_give_a_threshold_and_say_on_what():
    rng = np.random.default_rng(1)
    top = np.concatenate([rng.uniform(0.97, 1.0, 170), rng.uniform(0.5, 0.8, 30)])
    proba = np.column_stack([top, 1 - top])
    y = np.array(["a"] * 170 + ["b"] * 30)  # every confident one right, every unsure one wrong
    basis = calibrate_confidence(proba, y, ["a", "b"])
    assert basis.threshold == pytest.approx(top[:170].min())
    assert (basis.n_heldout, basis.n_kept, basis.n_right) == (200, 170, 170)
    assert basis.lower_bound == pytest.approx(lower_bound(170, 170, 0.95))
    assert basis.describe() == ("on 200 held-out photos, the 170 this confident were at least "
                                "98.2 % right with 95 % confidence (170 of 170 right)")
    assert ConfidenceBasis.from_dict(basis.to_dict()) == basis


def test_120_held_out_photos_all_right_are_not_enough_for_98_percent():
    basis = calibrate_confidence([[0.97, 0.03]] * 120, ["a"] * 120, ["a", "b"])
    assert basis.threshold is None and "(120)" in basis.describe()
    assert calibrate_confidence([[0.97, 0.03]] * 120, ["a"] * 120, ["a", "b"],
                                precision=0.97).threshold == 0.97


def test_mistakes_raise_the_threshold_above_them():
    top = np.r_[np.linspace(0.999, 0.95, 160), 0.94, np.linspace(0.93, 0.6, 40)]
    proba = np.column_stack([top, 1 - top])
    y = ["a"] * 160 + ["b"] + ["a"] * 40
    assert confidence_threshold(proba, y, ["a", "b"]) == pytest.approx(0.95)


def test_none_and_bad_input():
    assert confidence_threshold(np.empty((0, 2)), [], ["a", "b"]) is None
    assert confidence_threshold([[0.6, 0.4]], ["b"], ["a", "b"]) is None
    with pytest.raises(ValueError, match="shape"):
        confidence_threshold([[0.6, 0.4]], ["a"], ["a", "b", "c"])
    with pytest.raises(ValueError, match="y_true"):
        confidence_threshold([[0.6, 0.4]], ["a", "b"], ["a", "b"])
    with pytest.raises(ValueError, match="precision"):
        confidence_threshold([[0.6, 0.4]], ["a"], ["a", "b"], precision=0)
    with pytest.raises(ValueError, match="confidence"):
        confidence_threshold([[0.6, 0.4]], ["a"], ["a", "b"], confidence=1)
