"""Confidence thresholds calibrated on held-out predictions, with the evidence they rest on.

A classifier's top probability is a score, not a promise: how often a "0.9" is right depends
on the model and the data. :func:`calibrate_confidence` reads it off held-out data instead:
the lowest top probability above which the predictions are right often enough — not on the
held-out photos alone, which would let 6 photos "show" 98 %, but with a one-sided
Clopper–Pearson lower bound on that precision. The result, a :class:`ConfidenceBasis`, says
how many held-out photos it rests on, so ``skanimal sort`` can say so too.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["ConfidenceBasis", "calibrate_confidence", "confidence_threshold",
           "precision_lower_bound", "DEFAULT_MIN_CONFIDENCE"]

#: The lowest threshold ``skanimal sort`` uses unless one is given: a calibrated threshold
#: only raises it. With the classifier's novelty score (photos unlike the training photos go
#: to review), 0.9 kept 99.5 % of the sorted known photos right on animals-dev from 17 photos
#: per class and sent 95.8 % of an unseen class to review (0.5: 99.2 % and 93.6 %;
#: ``benchmarks/bench_labelling.py --open-set``).
DEFAULT_MIN_CONFIDENCE = 0.9


@dataclass(frozen=True)
class ConfidenceBasis:
    """A calibrated confidence threshold and what it rests on.

    Attributes
    ----------
    threshold : float or None
        The smallest top probability whose kept held-out predictions are right at least
        ``precision`` of the time with ``confidence``; None when no threshold is supported.
    n_heldout : int
        Held-out photos the calibration saw.
    n_kept : int
        Those whose top probability reaches ``threshold`` (0 without one).
    n_right : int
        Those of the kept that were predicted right.
    lower_bound : float or None
        One-sided Clopper–Pearson lower bound on the precision of the kept predictions.
    precision : float
        The precision asked for.
    confidence : float
        The confidence level of the bound.
    """

    threshold: float | None
    n_heldout: int
    n_kept: int
    n_right: int
    lower_bound: float | None
    precision: float
    confidence: float

    @property
    def min_heldout(self):
        """Fewest held-out photos that can support the claim: all right, bound >= precision."""
        return min_photos(self.precision, self.confidence)

    def describe(self):
        """The basis in a user's words, e.g. "on 180 held-out photos, 174 kept, ...".

        Returns
        -------
        str
        """
        if self.threshold is None:
            if self.n_heldout < self.min_heldout:
                return (f"too few held-out photos ({self.n_heldout}) to calibrate: "
                        f"{_pct(self.precision)} right with {_pct(self.confidence)} "
                        f"confidence needs at least {self.min_heldout}")
            return (f"no confidence level was right at least {_pct(self.precision)} of the "
                    f"time with {_pct(self.confidence)} confidence on {self.n_heldout} "
                    "held-out photos")
        return (f"on {self.n_heldout} held-out photos, the {self.n_kept} this confident were "
                f"at least {_pct(self.lower_bound, floor=True)} right with "
                f"{_pct(self.confidence)} confidence ({self.n_right} of {self.n_kept} right)")

    def to_dict(self):
        """Plain values, for JSON (:func:`skanimal.save`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values):
        """Inverse of :meth:`to_dict`."""
        return cls(**{name: values[name] for name in cls.__dataclass_fields__})


def _pct(value, floor=False):
    percent = 100 * value
    if floor:  # a lower bound is never rounded up
        percent = math.floor(percent * 10) / 10
    return f"{percent:.3g} %"


def min_photos(precision, confidence):
    """Fewest predictions, all right, whose Clopper–Pearson lower bound reaches ``precision``.

    Parameters
    ----------
    precision : float
        In (0, 1).
    confidence : float
        In (0, 1).

    Returns
    -------
    int
        ``n`` such that ``(1 - confidence) ** (1 / n) >= precision``: 149 for 98 % at 95 %.
    """
    if precision >= 1:
        return math.inf
    return math.ceil(math.log(1 - confidence) / math.log(precision))


def precision_lower_bound(n_right, n_total, confidence=0.95):
    """One-sided Clopper–Pearson lower bound on a proportion.

    Parameters
    ----------
    n_right : int or array-like of int
        Successes.
    n_total : int or array-like of int
        Trials (> 0).
    confidence : float, default=0.95
        Confidence level of the bound, in (0, 1).

    Returns
    -------
    float or ndarray
        The bound; 0 where ``n_right`` is 0.

    Examples
    --------
    >>> round(float(precision_lower_bound(149, 149)), 4)
    0.9801
    """
    n_right = np.asarray(n_right, dtype=float)
    n_total = np.asarray(n_total, dtype=float)
    from scipy.stats import beta  # a second to import: only where a bound is computed

    with np.errstate(invalid="ignore"):
        bound = beta.ppf(1 - confidence, n_right, n_total - n_right + 1)
    return np.where(n_right > 0, np.nan_to_num(bound), 0.0)


def calibrate_confidence(proba, y_true, classes, *, precision=0.98, confidence=0.95):
    """Smallest top probability whose kept held-out predictions are provably right enough.

    Among held-out samples whose top probability is at least ``t``, the predicted class is
    right at least ``precision`` of the time with ``confidence`` (one-sided Clopper–Pearson
    lower bound); the smallest such ``t`` is returned, with the counts it rests on. At 98 %
    and 95 % this needs at least 149 kept predictions, all right.

    Parameters
    ----------
    proba : array-like of shape (n_samples, n_classes)
        Predicted probabilities on held-out samples (never the training samples).
    y_true : array-like of shape (n_samples,)
        True labels of those samples.
    classes : array-like of shape (n_classes,)
        The label of each column of ``proba`` (a classifier's ``classes_``).
    precision : float, default=0.98
        Required fraction of right predictions among those kept, in (0, 1).
    confidence : float, default=0.95
        Confidence level of the lower bound, in (0, 1).

    Returns
    -------
    ConfidenceBasis

    Raises
    ------
    ValueError
        Shapes that do not match, or ``precision`` or ``confidence`` outside (0, 1).
    """
    proba = np.asarray(proba, dtype=float)
    y_true = np.asarray(y_true)
    classes = np.asarray(classes)
    for name, value in (("precision", precision), ("confidence", confidence)):
        if not 0 < value < 1:
            raise ValueError(f"calibrate_confidence: {name} must be in (0, 1), got {value!r}.")
    if proba.ndim != 2 or proba.shape[1] != len(classes):
        raise ValueError(f"calibrate_confidence: proba must have shape (n_samples, "
                         f"{len(classes)}) for {len(classes)} classes, got {proba.shape}.")
    if len(y_true) != len(proba):
        raise ValueError(f"calibrate_confidence: y_true has {len(y_true)} labels for "
                         f"{len(proba)} rows of proba.")
    none = ConfidenceBasis(None, len(proba), 0, 0, None, float(precision), float(confidence))
    if len(proba) == 0:
        return none
    top = proba.max(axis=1)
    right = classes[proba.argmax(axis=1)] == y_true
    order = np.argsort(-top, kind="stable")
    top, right = top[order], right[order]
    n_right = np.cumsum(right)
    n_kept = np.arange(1, len(right) + 1)
    bound = precision_lower_bound(n_right, n_kept, confidence)
    # A threshold t keeps every sample whose top probability is >= t: with ties, only the
    # last of equal values marks a valid cut.
    last_of_value = np.append(top[1:] != top[:-1], True)
    ok = np.flatnonzero(last_of_value & (bound >= precision))
    if not len(ok):
        return none
    cut = ok[-1]
    return ConfidenceBasis(float(top[cut]), len(proba), int(n_kept[cut]), int(n_right[cut]),
                           float(bound[cut]), float(precision), float(confidence))


def confidence_threshold(proba, y_true, classes, *, precision=0.98, confidence=0.95):
    """The threshold of :func:`calibrate_confidence`, or None.

    Parameters
    ----------
    proba, y_true, classes, precision, confidence
        See :func:`calibrate_confidence`.

    Returns
    -------
    float or None

    Examples
    --------
    >>> proba = [[0.95, 0.05]] * 150 + [[0.6, 0.4]] * 10
    >>> confidence_threshold(proba, ["a"] * 150 + ["b"] * 10, ["a", "b"])
    0.95
    """
    return calibrate_confidence(proba, y_true, classes, precision=precision,
                                confidence=confidence).threshold
