"""Audit a labelled class-per-folder set: wrong labels, duplicates, near-duplicates.

* Suspect labels: every photo gets a class probability from a model that never saw it
  (out-of-fold predictions of a cross-validated linear classifier on the cached features).
  A photo whose own folder gets a low probability, while another class gets the highest, is
  listed, most suspicious first, with the suggested class.
* Exact duplicates: the same bytes (the feature cache's content hash) in more than one file,
  flagged when they are filed under different classes or split between train and test parts.
* Near-duplicates: pairs of different files whose features point the same way (cosine
  similarity above a threshold), such as resized or re-encoded copies.
* Outliers: photos unlike every other photo of their class — a stray of an animal that is
  none of the classes, a screenshot, a blank frame — which an out-of-fold classifier still
  files under some class. The score is the novelty score of :mod:`skanimal.novelty` taken
  leave one out (:func:`~skanimal.novelty.distance_to_own_class`: cosine distance to the
  nearest other photo of the class); a photo is listed when its distance is above the upper
  fence of all photos' distances (Q3 + ``outlier_fence`` × IQR, Tukey's rule). Chosen by
  measurement (``benchmarks/bench_labelling.py --outliers --draws 30``: animals-dev,
  MobileNetV2, 180 draws of one photo of a left-out class filed under a known one among 200
  clean photos): it lists 89 % of such strays (68 % when three come together) and 3.5 of
  the 200 clean photos; the distance to the nearest photo of *any* class lists 64 % at the
  same fence (strays of one kind end up near each other across folders), and a quantile
  rule lists 9 to 19 clean photos per 200.

A data set may be one class-per-folder tree, or parts (``train/``, ``val/``, ``test/``...)
each holding one; duplicates across parts leak test photos into training.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cache import hash_file
from .datasets import load_image_folder
from .exceptions import ImageFolderError
from .novelty import distance_to_own_class, upper_fence
from .scoring import check_on_error, score_images, split_pipeline

__all__ = ["AuditResult", "PART_NAMES", "OUTLIER_FENCE", "audit_folder"]

#: Sub-folder names that make a data set a set of parts rather than of classes.
PART_NAMES = frozenset({"train", "training", "val", "valid", "validation", "test", "testing"})

#: Default cosine similarity of features above which two files are near-duplicates.
NEAR_DUPLICATE_SIMILARITY = 0.97

#: Default multiple of the interquartile range above the third quartile (Tukey's fence) of
#: the photos' distances to their class beyond which a photo is an outlier.
OUTLIER_FENCE = 1.5


@dataclass
class AuditResult:
    """Findings of :func:`audit_folder`.

    Attributes
    ----------
    suspects : list of dict
        Photos whose label looks wrong, most suspicious first: ``path``, ``label`` (its
        folder), ``label_probability`` (out-of-fold probability of that label),
        ``suggested`` (the most probable class), ``suggested_probability``, ``part``.
    duplicates : list of dict
        One row per file of each group of identical files: ``group``, ``kind``
        (``"different classes"``, ``"train/test split"`` or ``"same class"``), ``path``,
        ``label``, ``part``.
    near_duplicates : list of dict
        Pairs, different classes first, then train/test splits, then same class, each most
        similar first: ``path``, ``other_path``, ``similarity``, ``kind``,
        ``label``, ``other_label``, ``part``, ``other_part``.
    n_images : int
        Photos audited.
    unreadable : list of (str, str)
        Files that could not be read, with the error.
    outliers : list of dict
        Photos unlike every other photo of their class, most unlike first: ``path``,
        ``label``, ``distance`` (cosine distance to the nearest other photo of the class),
        ``nearest`` (that photo), ``part``.
    outlier_threshold : float or None
        The distance above which a photo is an outlier (the upper fence of the
        ``n_images`` photos' distances); None when the check was not run.
    """

    suspects: list
    duplicates: list
    near_duplicates: list
    n_images: int
    unreadable: list = field(default_factory=list)
    outliers: list = field(default_factory=list)
    outlier_threshold: float | None = None


def audit_folder(data_dir, *, model=None, backbone="vgg16", weights="imagenet",
                 image_size=None, estimator=None, cv=5,
                 near_duplicate_similarity=NEAR_DUPLICATE_SIMILARITY,
                 outlier_fence=OUTLIER_FENCE, random_state=0, on_error="skip", progress=False):
    """Find wrongly labelled photos, duplicates and near-duplicates in a labelled set.

    Parameters
    ----------
    data_dir : path-like
        ``data_dir/<class>/...`` or ``data_dir/<part>/<class>/...`` with parts named like
        ``train``, ``val``, ``test`` (see ``PART_NAMES``).
    model : Pipeline, optional
        A fitted pipeline whose features step (:func:`skanimal.scoring.split_pipeline`) is
        used, so the audit sees what that model sees (and reuses its cached features).
    backbone, weights, image_size
        Without ``model``: the :class:`~skanimal.BottleneckFeatures` to use (global
        average pooling, so the cross-validation stays quick).
    estimator : classifier, optional
        Cross-validated on the features for the out-of-fold probabilities; default a
        standardised :class:`~sklearn.linear_model.LogisticRegression`.
    cv : int, default=5
        Folds (fewer when a class has fewer photos; at least 2 per class are needed).
    near_duplicate_similarity : float, default=0.97
        Cosine similarity of features at or above which two files are near-duplicates.
    outlier_fence : float or None, default=1.5
        A photo is an outlier when its distance to the nearest other photo of its class is
        above Q3 + ``outlier_fence`` × IQR of all photos' distances (larger lists fewer);
        None skips the check.
    random_state : int, default=0
        Seeds the folds.
    on_error : {"skip", "fail"}, default="skip"
        ``"skip"`` audits the readable photos and lists the others in ``unreadable``;
        ``"fail"`` raises one error naming every unreadable photo. ``"raise"`` is a
        deprecated alias of ``"fail"``.
    progress : bool, default=False
        Show a progress bar while extracting features.

    Returns
    -------
    AuditResult

    Raises
    ------
    ImageFolderError
        A missing or badly laid-out folder, or a class with fewer than two photos.
    """
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    on_error = check_on_error(on_error)
    # bool is an int to Python, not a fence to anyone: True would have meant 1.0.
    if outlier_fence is not None and not (isinstance(outlier_fence, (int, float))
                                          and not isinstance(outlier_fence, bool)
                                          and outlier_fence >= 0):
        raise ValueError(f"outlier_fence must be a number >= 0 or None, got {outlier_fence!r}.")
    paths, labels, parts = _load(data_dir)
    if model is not None:
        transform, _ = split_pipeline(model)
    else:
        from .features import BottleneckFeatures

        transform = BottleneckFeatures(backbone, weights=weights, image_size=image_size,
                                       pooling="avg").fit()
    scores = score_images(transform, paths, proba=False, features=True, on_error=on_error,
                          progress=progress, description="Extracting features")
    keep = np.isin(paths, scores.paths)
    paths, labels, parts = paths[keep], labels[keep], parts[keep]
    features = scores.features

    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        raise ImageFolderError(f"{os.fspath(data_dir)!r}: an audit needs at least two classes, "
                               f"found {classes.tolist()}.")
    if counts.min() < 2:
        raise ImageFolderError(
            f"{os.fspath(data_dir)!r}: class {classes[counts.argmin()]!r} has "
            f"{counts.min()} readable photo; an audit needs at least 2 per class.")
    folds = StratifiedKFold(n_splits=min(cv, int(counts.min())), shuffle=True,
                            random_state=random_state)
    estimator = estimator if estimator is not None else make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=2000))
    proba = cross_val_predict(clone(estimator), features, labels, cv=folds,
                              method="predict_proba")
    outliers, outlier_threshold = [], None
    if outlier_fence is not None:
        outliers, outlier_threshold = _outliers(paths, labels, parts, features, outlier_fence)
    return AuditResult(
        suspects=_suspects(paths, labels, parts, proba, classes),
        duplicates=_duplicates(paths, labels, parts),
        near_duplicates=_near_duplicates(paths, labels, parts, features,
                                         near_duplicate_similarity),
        n_images=len(paths),
        unreadable=scores.unreadable,
        outliers=outliers,
        outlier_threshold=outlier_threshold,
    )


def _load(data_dir):
    root = Path(data_dir)
    if root.is_dir():
        subfolders = [d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")]
    else:
        subfolders = []
    part_names = sorted(d for d in subfolders if d.lower() in PART_NAMES)
    if subfolders and len(part_names) == len(subfolders):
        sets = [(part, load_image_folder(root / part)) for part in part_names]
    else:
        sets = [("", load_image_folder(root))]
    paths = np.concatenate([np.asarray(data.paths, dtype=object) for _, data in sets])
    labels = np.concatenate([np.asarray(data.target, dtype=object) for _, data in sets])
    parts = np.concatenate([np.full(len(data.paths), part, dtype=object) for part, data in sets])
    return paths, labels, parts


def _suspects(paths, labels, parts, proba, classes):
    column = {label: j for j, label in enumerate(classes)}
    given = proba[np.arange(len(labels)), [column[label] for label in labels]]
    best = proba.argmax(axis=1)
    rows = [{
        "path": paths[i],
        "label": labels[i],
        "label_probability": round(float(given[i]), 6),
        "suggested": classes[best[i]],
        "suggested_probability": round(float(proba[i, best[i]]), 6),
        "part": parts[i],
    } for i in np.argsort(given, kind="stable") if classes[best[i]] != labels[i]]
    return rows


def _outliers(paths, labels, parts, features, fence):
    distance, nearest = distance_to_own_class(features, labels)
    threshold = upper_fence(distance, fence)
    rows = [{
        "path": paths[i],
        "label": labels[i],
        "distance": round(float(distance[i]), 6),
        "nearest": paths[nearest[i]],
        "part": parts[i],
    } for i in np.argsort(-distance, kind="stable") if distance[i] > threshold]
    return rows, threshold


def _kind(labels, parts):
    if len(set(labels)) > 1:
        return "different classes"
    if len(set(parts)) > 1:
        return "train/test split"
    return "same class"


_KIND_ORDER = {"different classes": 0, "train/test split": 1, "same class": 2}


def _duplicates(paths, labels, parts):
    groups = defaultdict(list)
    for i, path in enumerate(paths):
        groups[hash_file(path)].append(i)
    found = [members for members in groups.values() if len(members) > 1]
    found.sort(key=lambda m: (_KIND_ORDER[_kind(labels[m], parts[m])], paths[m[0]]))
    rows = []
    for number, members in enumerate(found, 1):
        kind = _kind(labels[members], parts[members])
        rows.extend({"group": number, "kind": kind, "path": paths[i], "label": labels[i],
                     "part": parts[i]} for i in members)
    return rows


def _near_duplicates(paths, labels, parts, features, similarity):
    from sklearn.neighbors import NearestNeighbors

    if len(paths) < 2:
        return []
    index = NearestNeighbors(radius=1.0 - similarity, metric="cosine").fit(features)
    distances, neighbours = index.radius_neighbors(features)
    digests = {}
    rows = []
    for i, (dist, near) in enumerate(zip(distances, neighbours)):
        for d, j in zip(dist, near):
            if j <= i:
                continue
            same_bytes = _digest(digests, paths, i) == _digest(digests, paths, j)
            if same_bytes:
                continue  # an exact duplicate, reported as such
            rows.append({
                "path": paths[i], "other_path": paths[j],
                "similarity": round(float(1.0 - d), 6),
                "kind": _kind(labels[[i, j]], parts[[i, j]]),
                "label": labels[i], "other_label": labels[j],
                "part": parts[i], "other_part": parts[j],
            })
    rows.sort(key=lambda r: (_KIND_ORDER[r["kind"]], -r["similarity"], r["path"]))
    return rows


def _digest(cache, paths, i):
    if i not in cache:
        cache[i] = hash_file(paths[i])
    return cache[i]
