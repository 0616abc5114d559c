"""Score many image files with a fitted pipeline, setting unreadable files aside.

``sort``, ``suggest`` and ``audit`` each run a whole folder through a model. A single
corrupt or unreadable file must not stop the run (nor be silently dropped): files are
scored in chunks, and a file the features step cannot read is removed from its chunk,
recorded with its one-line error, and the chunk is scored again (its other images come
from the feature cache).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from . import datasets
from .exceptions import ImageFolderError, ImageLoadError, IncompatibleModelError

__all__ = ["Scores", "collect_sources", "iter_scores", "score_images", "split_pipeline"]

#: Images per chunk: a few backbone batches, so one bad file costs little to redo.
CHUNK_SIZE = 256


@dataclass
class Scores:
    """What :func:`score_images` found.

    Attributes
    ----------
    paths : list of str
        The readable images, in input order.
    proba : ndarray of shape (n_paths, n_classes) or None
        Class probabilities (None when only features were asked for).
    classes : ndarray of shape (n_classes,) or None
        Column labels of ``proba``.
    features : ndarray of shape (n_paths, n_features) or None
        Features of the pipeline's transform steps, when asked for.
    unreadable : list of (str, str)
        Each file left out, with the error that names it.
    """

    paths: list
    proba: np.ndarray | None
    classes: np.ndarray | None
    features: np.ndarray | None = None
    unreadable: list = field(default_factory=list)


def split_pipeline(model):
    """The transform steps and the final estimator of a fitted pipeline.

    Parameters
    ----------
    model : Pipeline
        A fitted scikit-learn pipeline whose last step has ``predict_proba`` (a fitted
        search's ``best_estimator_`` is used).

    Returns
    -------
    transform : Pipeline
        All steps but the last.
    head : estimator
        The last step.

    Raises
    ------
    IncompatibleModelError
        When ``model`` is not such a pipeline.
    """
    from sklearn.pipeline import Pipeline

    model = getattr(model, "best_estimator_", model)
    if not isinstance(model, Pipeline) or len(model.steps) < 2:
        raise IncompatibleModelError(
            f"expected a fitted pipeline of features and a classifier (as saved by "
            f"'skanimal train'), got {type(model).__name__}.")
    head = model.steps[-1][1]
    if not hasattr(head, "predict_proba") or not hasattr(head, "classes_"):
        raise IncompatibleModelError(
            f"the pipeline's last step {type(head).__name__} is not a fitted classifier with "
            "predict_proba.")
    return model[:-1], head


def iter_scores(model, paths, *, proba=True, features=False, on_error="skip",
                progress=False, description="Scoring"):
    """:func:`score_images` chunk by chunk: one :class:`Scores` per chunk of
    :data:`CHUNK_SIZE` paths, as soon as it is scored (one progress bar for all).

    Lets a caller work on a chunk (e.g. copy its files) while the next is scored. The
    parameters are :func:`score_images`'. A chunk whose every file is unreadable yields
    a :class:`Scores` with no paths.

    Yields
    ------
    Scores
    """
    from tqdm.auto import tqdm

    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}.")
    if proba:
        transform, head = split_pipeline(model)
    else:
        transform, head = model, None
    classes = np.asarray(head.classes_) if head is not None else None
    n_classes = len(classes) if classes is not None else 0
    paths = [str(p) for p in paths]
    with tqdm(total=len(paths), unit="img", desc=description, disable=not progress) as bar:
        for start in range(0, len(paths), CHUNK_SIZE):
            chunk, chunk_features, unreadable = _features_of(
                transform, paths[start:start + CHUNK_SIZE], on_error)
            bar.update(min(CHUNK_SIZE, len(paths) - start))
            yield Scores(
                paths=chunk,
                proba=None if head is None else (
                    np.asarray(head.predict_proba(chunk_features)) if chunk
                    else np.empty((0, n_classes))),
                classes=classes,
                features=None if not features else (
                    chunk_features if chunk else np.empty((0, 0), np.float32)),
                unreadable=unreadable,
            )


def _features_of(transform, chunk, on_error):
    """``(readable paths, their features, [(path, message)] of unreadable ones)``.

    The transformer's :meth:`~skanimal.BottleneckFeatures.extract` reads the chunk once and
    lists every unreadable file; a pipeline of other transformers gets a retry per bad file.
    """
    steps = [step for _, step in getattr(transform, "steps", [(None, transform)])]
    if hasattr(steps[0], "extract"):
        extraction = steps[0].extract(chunk, on_error=on_error)
        features = extraction.features
        if len(steps) > 1 and len(extraction.kept):
            features = transform[1:].transform(features)
        unreadable = [(chunk[exc.index], exc.file_message()) for exc in extraction.errors]
        return [chunk[i] for i in extraction.kept], np.asarray(features), unreadable
    unreadable = []
    while chunk:
        try:
            return chunk, np.asarray(transform.transform(chunk)), unreadable
        except ImageLoadError as exc:
            if on_error == "raise" or exc.index is None or exc.index >= len(chunk):
                raise
            unreadable.append((chunk[exc.index], exc.file_message()))
            chunk = chunk[:exc.index] + chunk[exc.index + 1:]
    return chunk, None, unreadable


def score_images(model, paths, *, proba=True, features=False, on_error="skip",
                 progress=False, description="Scoring"):
    """Features and class probabilities of many image files, chunk by chunk.

    Parameters
    ----------
    model : Pipeline or transformer
        A fitted pipeline (features steps then a classifier). With ``proba=False`` the
        transform steps alone (e.g. a fitted :class:`~skanimal.BottleneckFeatures`) do.
    paths : sequence of path-like
        Image files.
    proba : bool, default=True
        Compute class probabilities.
    features : bool, default=False
        Also return the features the classifier sees.
    on_error : {"skip", "raise"}, default="skip"
        ``"skip"`` sets unreadable files aside (listed in ``unreadable``); ``"raise"``
        re-raises the first :class:`~skanimal.ImageLoadError`.
    progress : bool, default=False
        Show a progress bar (on stderr).
    description : str, default="Scoring"
        The progress bar's label.

    Returns
    -------
    Scores
    """
    parts = list(iter_scores(model, paths, proba=proba, features=features,
                             on_error=on_error, progress=progress, description=description))
    if proba:
        _, head = split_pipeline(model)
        classes = np.asarray(head.classes_)
    else:
        classes = None
    kept = [p for part in parts if part.paths for p in part.paths]
    proba_parts = [part.proba for part in parts if part.paths and part.proba is not None]
    feature_parts = [part.features for part in parts if part.paths and part.features is not None]
    n_classes = len(classes) if classes is not None else 0
    return Scores(
        paths=kept,
        proba=(np.concatenate(proba_parts) if proba_parts else np.empty((0, n_classes)))
        if proba else None,
        classes=classes,
        features=(np.concatenate(feature_parts) if feature_parts else np.empty((0, 0),
                                                                             np.float32))
        if features else None,
        unreadable=[item for part in parts for item in part.unreadable],
    )


def collect_sources(sources, *, exclude=None):
    """Image files of the files and folders a user named (folders searched recursively).

    Parameters
    ----------
    sources : path-like or sequence of path-like
        Files (taken as given) and folders (searched with
        :func:`skanimal.datasets.find_images`: hidden files and folders left out).
    exclude : path-like, optional
        A folder left out of the search of any source folder it lies in (an output folder
        inside a source). A source inside ``exclude`` is searched as any other.

    Returns
    -------
    list of str
        Absolute paths, in the order of ``sources``; a folder's files sorted.

    Raises
    ------
    ImageFolderError
        When a source does not exist.
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    excluded = None if exclude is None else os.path.abspath(os.fspath(exclude))
    paths = []
    for item in sources:
        item = os.path.abspath(os.fspath(item))
        if os.path.isdir(item):
            found = [os.path.abspath(p) for p in datasets.find_images(item)]
            if excluded is not None and (excluded + os.sep).startswith(item + os.sep):
                found = [p for p in found if not p.startswith(excluded + os.sep)]
            paths.extend(found)
        elif os.path.isfile(item):
            paths.append(item)
        else:
            raise ImageFolderError(f"{item!r} does not exist.")
    return paths
