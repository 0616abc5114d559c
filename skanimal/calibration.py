"""Confidence thresholds calibrated on held-out predictions.

A classifier's top probability is a score, not a promise: how often a "0.9" is right depends
on the model and the data. :func:`confidence_threshold` reads it off held-out data instead:
the lowest top probability above which the predictions are right often enough. ``skanimal
sort`` uses it to decide which photos go straight into a class folder and which go to review.
"""

from __future__ import annotations

import numpy as np

__all__ = ["confidence_threshold"]


def confidence_threshold(proba, y_true, classes, *, precision=0.98):
    """Smallest top-class probability that keeps the confident predictions right enough.

    Among held-out samples whose top probability is at least ``t``, the predicted class is
    right at least ``precision`` of the time; the smallest such ``t`` is returned.

    Parameters
    ----------
    proba : array-like of shape (n_samples, n_classes)
        Predicted probabilities on held-out samples (never the training samples).
    y_true : array-like of shape (n_samples,)
        True labels of those samples.
    classes : array-like of shape (n_classes,)
        The label of each column of ``proba`` (a classifier's ``classes_``).
    precision : float, default=0.98
        Required fraction of right predictions among those kept, in (0, 1].

    Returns
    -------
    float or None
        The threshold (one of the top probabilities in ``proba``), or None when no
        threshold reaches ``precision`` (or there are no samples).

    Raises
    ------
    ValueError
        Shapes that do not match, or ``precision`` outside (0, 1].

    Examples
    --------
    >>> proba = [[0.95, 0.05], [0.9, 0.1], [0.4, 0.6], [0.7, 0.3]]
    >>> confidence_threshold(proba, ["a", "a", "a", "a"], ["a", "b"], precision=1.0)
    0.7
    """
    proba = np.asarray(proba, dtype=float)
    y_true = np.asarray(y_true)
    classes = np.asarray(classes)
    if not 0 < precision <= 1:
        raise ValueError(f"confidence_threshold: precision must be in (0, 1], got {precision!r}.")
    if proba.ndim != 2 or proba.shape[1] != len(classes):
        raise ValueError(f"confidence_threshold: proba must have shape (n_samples, {len(classes)}) "
                         f"for {len(classes)} classes, got {proba.shape}.")
    if len(y_true) != len(proba):
        raise ValueError(f"confidence_threshold: y_true has {len(y_true)} labels for "
                         f"{len(proba)} rows of proba.")
    if len(proba) == 0:
        return None
    top = proba.max(axis=1)
    right = classes[proba.argmax(axis=1)] == y_true
    order = np.argsort(-top, kind="stable")
    top, right = top[order], right[order]
    kept_precision = np.cumsum(right) / np.arange(1, len(right) + 1)
    # A threshold t keeps every sample whose top probability is >= t: with ties, only the
    # last of equal values marks a valid cut.
    last_of_value = np.append(top[1:] != top[:-1], True)
    ok = last_of_value & (kept_precision >= precision - 1e-12)  # 49/50 vs 0.98
    if not ok.any():
        return None
    return float(top[np.flatnonzero(ok)[-1]])
