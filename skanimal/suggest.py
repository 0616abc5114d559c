"""Pick the photos worth labelling next: uncertain, and different from each other.

Active learning by margin sampling with a diversity step. The model scores every photo of
an unlabelled pool; the ones with the smallest margin between their two most probable
classes are the candidates (the model hesitates there, so a label there teaches it most).
Among the candidates, greedy k-center selection on the features picks photos far apart
from each other, so ``n`` suggestions are not ``n`` near-copies of one confusing case.

With the classifier's novelty score (:mod:`skanimal.novelty`), photos unlike the photos the
model was trained on come first among the candidates, whatever their margin: the model
knows least there (a confident label on such a photo may be "none of these"), and a
label there, perhaps of a new class, teaches it most.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import pairwise_distances
from sklearn.preprocessing import normalize

from . import moves
from .datasets import collect_images
from .novelty import novelty_of
from .report import top_k_columns
from .scoring import score_images, split_pipeline

__all__ = ["SuggestResult", "suggest_images", "k_center_greedy", "COLUMNS"]

#: The columns of a suggestion row, in order.
COLUMNS = ["path", "margin", *top_k_columns(2), "unlike_training"]

#: Candidates considered per requested photo: the ``CANDIDATES_PER_PICK × n`` lowest margins.
CANDIDATES_PER_PICK = 4


@dataclass
class SuggestResult:
    """What :func:`suggest_images` chose.

    Attributes
    ----------
    rows : list of dict
        The suggestions, in the order they were picked: ``path`` (as collected from
        ``pool``), ``margin`` (top-1 minus top-2 probability), ``label_1``,
        ``probability_1``, ``label_2``, ``probability_2`` and, when the model has a novelty
        score, ``unlike_training`` (bool: the photo is unlike the training photos)
        (``COLUMNS``).
    copied : list of pathlib.Path
        Where ``into`` received them (empty without ``into``).
    unreadable : list of (str, str)
        Pool files that could not be read, with the error.
    """

    rows: list
    copied: list = field(default_factory=list)
    unreadable: list = field(default_factory=list)


def k_center_greedy(points, n, *, first=0):
    """Indices of ``n`` points, each the farthest from those already picked.

    The classic 2-approximation of the k-center problem: it covers the set with ``n``
    centres, so the picks are spread out and exact or near copies are not picked twice
    while farther points remain.

    Parameters
    ----------
    points : ndarray of shape (n_points, n_features)
    n : int
        How many to pick (at most ``n_points``).
    first : int, default=0
        Index of the first pick.

    Returns
    -------
    list of int
    """
    points = np.asarray(points)
    n = min(int(n), len(points))
    if n <= 0:
        return []
    picked = [int(first)]
    nearest = pairwise_distances(points, points[[first]]).ravel()
    while len(picked) < n:
        i = int(np.argmax(nearest))
        picked.append(i)
        nearest = np.minimum(nearest, pairwise_distances(points, points[[i]]).ravel())
    return picked


def suggest_images(model, pool, n, *, candidates=None, into=None, on_error="skip",
                   progress=False):
    """The ``n`` photos of ``pool`` worth labelling next.

    Parameters
    ----------
    model : Pipeline
        A fitted pipeline of features and a classifier.
    pool : path-like or sequence of path-like
        Unlabelled image files and folders (searched recursively).
    n : int
        Number of photos to suggest.
    candidates : int, optional
        Size of the uncertain candidate set the diverse picks come from; default
        ``CANDIDATES_PER_PICK * n``. ``n`` gives pure margin sampling. Photos unlike the
        training photos (with the model's novelty score) come first, then the smallest
        margins.
    into : path-like, optional
        Copy the suggestions into this folder (never overwriting; see
        :func:`skanimal.moves.transfer`), to label them there.
    on_error : {"skip", "fail"}, default="skip"
        Unreadable files are listed in ``unreadable``, or (``"fail"``) one error names
        them. ``"raise"`` is a deprecated alias of ``"fail"``.
    progress : bool, default=False
        Show a progress bar while scoring.

    Returns
    -------
    SuggestResult
    """
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}.")
    paths = collect_images(pool)
    scores = score_images(model, paths, features=True, on_error=on_error, progress=progress,
                          description="Scoring")
    if not scores.paths:
        return SuggestResult(rows=[], unreadable=scores.unreadable)
    order = np.argsort(-scores.proba, axis=1, kind="stable")
    rows_idx = np.arange(len(scores.paths))
    top1, top2 = order[:, 0], order[:, 1] if scores.proba.shape[1] > 1 else order[:, 0]
    margin = scores.proba[rows_idx, top1] - scores.proba[rows_idx, top2]
    novelty = novelty_of(split_pipeline(model)[1])
    unlike = None if novelty is None else novelty.is_novel(scores.features)
    n_candidates = min(len(margin), max(int(n), candidates or CANDIDATES_PER_PICK * int(n)))
    # Unlike the training photos first, then the smallest margins (lexsort: last key first).
    order = (np.argsort(margin, kind="stable") if unlike is None
             else np.lexsort((margin, ~unlike)))
    pool_idx = order[:n_candidates]
    # Cosine geometry: the direction of a feature vector says what is in the photo.
    points = normalize(scores.features[pool_idx])
    chosen = [int(pool_idx[i]) for i in k_center_greedy(points, n, first=0)]
    rows = [{
        "path": scores.paths[i],
        "margin": round(float(margin[i]), 6),
        "label_1": str(scores.classes[top1[i]]),
        "probability_1": round(float(scores.proba[i, top1[i]]), 6),
        "label_2": str(scores.classes[top2[i]]),
        "probability_2": round(float(scores.proba[i, top2[i]]), 6),
        **({} if unlike is None else {"unlike_training": bool(unlike[i])}),
    } for i in chosen]
    copied = []
    if into is not None:
        copied = moves.transfer([(row["path"], into) for row in rows], mode="copy")
    return SuggestResult(rows=rows, copied=copied, unreadable=scores.unreadable)
