"""Cosine distances between feature rows, in NumPy alone.

The novelty score (:mod:`skanimal.novelty`), the audit's outliers and the light predictor
(:mod:`skanimal.inference`) all measure how far a photo's features are from the nearest of
a set of reference features. This module is that measure and nothing else, importing
neither scikit-learn nor SciPy, so predicting with a saved model does not pay for them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["unit_rows", "nearest_distance", "BLOCK_VALUES", "MAX_REFERENCE_VALUES"]

#: Most feature values a reference set holds (32 Mi float32: 128 MiB), whatever
#: :class:`~skanimal.novelty.FeatureNovelty`'s ``max_samples``: wide features (VGG16's
#: 25,088 without pooling) keep fewer samples, so a saved model stays a size
#: :func:`skanimal.load` accepts.
MAX_REFERENCE_VALUES = 2 ** 25

#: Similarities computed at once (query rows × reference rows): 64 MiB of float32.
BLOCK_VALUES = 2 ** 24


def unit_rows(X):
    """Rows scaled to unit length (all-zero rows stay zero), as float32.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    ndarray of shape (n_samples, n_features), float32
    """
    X = np.asarray(X)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return (X / np.where(norms == 0, 1, norms)).astype(np.float32, copy=False)


def nearest_distance(queries, reference, k=1, *, leave_one_out=False, nearest=None):
    """Cosine distance of each unit row of ``queries`` to its ``k``-th nearest unit row of
    ``reference``.

    Brute force as a matrix product, :data:`BLOCK_VALUES` similarities at a time: what
    scikit-learn's brute-force cosine neighbours compute, without importing its neighbours
    module (SciPy's spatial and sparse code).

    Parameters
    ----------
    queries, reference : ndarray of shape (n, n_features), float32
        Rows of unit length (:func:`unit_rows`).
    k : int, default=1
        Which neighbour: 1 is the nearest.
    leave_one_out : bool, default=False
        ``queries`` is ``reference``, and a row is not its own neighbour.
    nearest : ndarray of int, shape (n_queries,), optional
        With ``k=1``, receives the row of ``reference`` nearest to each query.

    Returns
    -------
    ndarray of shape (n_queries,), float64
        In [0, 2].
    """
    if nearest is not None and k != 1:
        raise ValueError(f"nearest rows are found for k=1 only, not k={k}.")
    distance = np.empty(len(queries))
    step = max(1, BLOCK_VALUES // max(len(reference), 1))
    for start in range(0, len(queries), step):
        similarity = queries[start:start + step] @ reference.T
        if leave_one_out:
            rows = np.arange(len(similarity))
            similarity[rows, start + rows] = -np.inf
        if k == 1:
            best = similarity.argmax(axis=1)
            kth = similarity[np.arange(len(similarity)), best]
            if nearest is not None:
                nearest[start:start + step] = best
        else:
            kth = -np.partition(-similarity, k - 1, axis=1)[:, k - 1]
        distance[start:start + step] = np.clip(1.0 - kth.astype(np.float64), 0.0, 2.0)
    return distance
