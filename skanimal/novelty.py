"""How unlike the training photos a photo is: "is this one of my classes at all".

A classifier's top probability is a weak signal for "none of these": it is spread over the
classes the model knows, so a leopard is a confident cat. The distance of a photo's
features to the features the head was trained on is not: :class:`FeatureNovelty` keeps
those (cosine-normalised) and scores a photo by the distance to its nearest training photo;
the threshold above which a photo counts as unlike the training photos is a quantile of the
same distance measured on the training photos themselves, each against the others (leave
one out), so it needs no photo of an unknown class. ``skanimal sort`` sends such photos to
``_review``. Chosen by measurement (``benchmarks/bench_labelling.py --open-set``: animals-dev,
one class left out in turn, 17 training photos per known class, MobileNetV2 features): the
nearest training photo (k=1) told unknown from known photos best (AUROC 0.970, against 0.963
for the cosine distance to class means, 0.960 energy, 0.959 max softmax, 0.955 kNN k=5 and
0.867 Mahalanobis with a LedoitWolf-shrunk shared covariance, which 85 photos in 1280
dimensions do not support), and its 0.9 quantile with sort's 0.9 confidence floor sent
95.8 % of the unknown photos to review while sorting 88.3 % of the known ones, 99.5 % right.

Pure NumPy and scikit-learn: it works on features, whatever extracted them.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_array, check_is_fitted

from .cosine import MAX_REFERENCE_VALUES, nearest_distance, unit_rows

__all__ = ["FeatureNovelty", "novelty_of", "distance_to_own_class", "upper_fence",
           "MAX_REFERENCE_VALUES"]

class FeatureNovelty(BaseEstimator):
    """Distance of features to the nearest training features, and a threshold on it.

    Parameters
    ----------
    n_neighbors : int, default=1
        The score is the cosine distance to the ``n_neighbors``-th nearest training sample.
    quantile : float, default=0.9
        ``threshold_`` is this quantile of the leave-one-out training scores: about
        ``1 - quantile`` of photos like the training photos score above it.
    max_samples : int, default=20000
        Training samples kept (a random subset beyond that), which bounds the size of the
        fitted object (``max_samples × n_features`` float32 values, and never more than
        :data:`skanimal.cosine.MAX_REFERENCE_VALUES`).
    random_state : int, default=0
        Seed of that subset.

    Attributes
    ----------
    reference_ : ndarray of shape (n_reference, n_features), float32
        The kept training features, normalised to unit length.
    train_scores_ : ndarray of shape (n_reference,)
        Leave-one-out score of each kept training sample.
    threshold_ : float
        Scores above it are "unlike the training photos".
    n_features_in_ : int
        Number of features seen during :meth:`fit`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 8)) + 5
    >>> novelty = FeatureNovelty().fit(X)
    >>> novelty.is_novel(np.vstack([X[:1], -X[:1]])).tolist()
    [False, True]
    """

    def __init__(self, n_neighbors=1, quantile=0.9, max_samples=20000, random_state=0):
        self.n_neighbors = n_neighbors
        self.quantile = quantile
        self.max_samples = max_samples
        self.random_state = random_state

    def fit(self, X, y=None):
        """Keep the training features and set ``threshold_`` from their leave-one-out scores.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, ...)
            The features the classifier is trained on (feature maps are flattened); more
            than ``n_neighbors`` rows.
        y : ignored

        Returns
        -------
        self : FeatureNovelty
        """
        X = _as_rows(X)
        if not 0 < self.quantile <= 1:
            raise ValueError(f"quantile must be in (0, 1], got {self.quantile!r}.")
        if len(X) <= self.n_neighbors:
            raise ValueError(f"FeatureNovelty needs more than n_neighbors={self.n_neighbors} "
                             f"training samples, got {len(X)}.")
        n_keep = min(self.max_samples, max(self.n_neighbors + 1,
                                           MAX_REFERENCE_VALUES // max(X.shape[1], 1)))
        if len(X) > n_keep:
            keep = np.random.default_rng(self.random_state).choice(
                len(X), n_keep, replace=False)
            X = X[np.sort(keep)]
        self.n_features_in_ = X.shape[1]
        self.reference_ = unit_rows(X)
        self.train_scores_ = nearest_distance(self.reference_, self.reference_,
                                              self.n_neighbors, leave_one_out=True)
        self.threshold_ = float(np.quantile(self.train_scores_, self.quantile))
        return self

    def novelty_score(self, X):
        """Cosine distance of each sample to its ``n_neighbors``-th nearest training sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
            In [0, 2]; higher is less like the training photos.
        """
        check_is_fitted(self, "reference_")
        X = _as_rows(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but FeatureNovelty was fitted "
                             f"on {self.n_features_in_}.")
        return nearest_distance(unit_rows(X), self.reference_, self.n_neighbors)

    def is_novel(self, X):
        """Whether each sample is unlike the training photos (score above ``threshold_``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of bool, shape (n_samples,)
        """
        return self.novelty_score(X) > self.threshold_

    def to_arrays(self):
        """The fitted state as named arrays (for :func:`skanimal.save`, without pickle)."""
        check_is_fitted(self, "reference_")
        return {"reference": self.reference_, "train_scores": self.train_scores_,
                "threshold": np.float64(self.threshold_)}

    @classmethod
    def from_arrays(cls, arrays, params):
        """Inverse of :meth:`to_arrays`, with the parameters of :meth:`get_params`."""
        novelty = cls(**params)
        novelty.reference_ = np.asarray(arrays["reference"], dtype=np.float32)
        novelty.train_scores_ = np.asarray(arrays["train_scores"], dtype=np.float64)
        novelty.threshold_ = float(arrays["threshold"])
        novelty.n_features_in_ = novelty.reference_.shape[1]
        return novelty


def _as_rows(X):
    """Features as a 2-D float32 array: maps without pooling are flattened (the head
    flattens them too)."""
    X = np.asarray(X, dtype=np.float32)
    if X.ndim > 2:
        X = X.reshape(len(X), -1)
    return check_array(X, dtype=np.float32)


def distance_to_own_class(X, labels):
    """Cosine distance of each sample to the nearest *other* sample with the same label.

    The novelty score of a labelled set, leave one out: a model's own
    :class:`FeatureNovelty` cannot judge the photos it was trained on (each is its own
    nearest training photo), so each photo is measured against the rest of its class.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or (n_samples, ...)
        Features (feature maps are flattened).
    labels : array-like of shape (n_samples,)
        Each label needs at least two samples.

    Returns
    -------
    distance : ndarray of shape (n_samples,)
        In [0, 2]; 0 for a sample with an identical twin in its class.
    nearest : ndarray of int, shape (n_samples,)
        Row of that nearest sample of the same label.

    Examples
    --------
    >>> X = [[1, 0], [1, 0.1], [0, 1], [1, 0.05]]
    >>> distance, nearest = distance_to_own_class(X, ["a", "a", "a", "b"])
    Traceback (most recent call last):
    ...
    ValueError: label 'b' has 1 sample; each label needs at least 2.
    >>> distance, nearest = distance_to_own_class(X[:3], ["a", "a", "a"])
    >>> nearest.tolist(), bool(distance[2] > distance[0])
    ([1, 0, 1], True)
    """
    X = unit_rows(_as_rows(X))
    labels = np.asarray(labels, dtype=object)
    if len(labels) != len(X):
        raise ValueError(f"{len(labels)} labels for {len(X)} samples.")
    distance = np.empty(len(X))
    nearest = np.empty(len(X), dtype=np.intp)
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        if len(rows) < 2:
            raise ValueError(f"label {label!r} has 1 sample; each label needs at least 2.")
        within = np.empty(len(rows), dtype=np.intp)
        distance[rows] = nearest_distance(X[rows], X[rows], 1, leave_one_out=True,
                                          nearest=within)
        nearest[rows] = rows[within]
    return distance, nearest


def upper_fence(scores, k=1.5):
    """Tukey's upper fence of scores: Q3 + ``k`` × (Q3 - Q1).

    Parameters
    ----------
    scores : array-like of shape (n_samples,)
    k : float, default=1.5
        Multiple of the interquartile range; 1.5 is Tukey's "outlier", 3 his "far out".

    Returns
    -------
    float

    Examples
    --------
    >>> upper_fence([1, 2, 3, 4, 5])
    7.0
    """
    q1, q3 = np.quantile(np.asarray(scores, dtype=np.float64), [0.25, 0.75])
    return float(q3 + k * (q3 - q1))


def novelty_of(head):
    """The fitted :class:`FeatureNovelty` of a classifier, or None.

    Parameters
    ----------
    head : estimator
        A fitted classifier (a pipeline's last step: see
        :func:`skanimal.scoring.split_pipeline`).

    Returns
    -------
    FeatureNovelty or None
        None for a classifier fitted without one (a logistic-regression head, a model
        saved by an older skanimal).
    """
    return getattr(head, "novelty_", None)
