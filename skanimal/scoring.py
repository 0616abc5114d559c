"""The one engine that runs a fitted model over image files, unreadable files set aside.

Every command and function that scores files with a fitted pipeline — ``predict``,
``evaluate``, ``sort``, ``suggest``, ``audit`` and the review page's Retrain — goes through
:func:`score_images` (or :func:`iter_scores`, chunk by chunk) and splits a pipeline into its
features step and its head with :func:`split_pipeline`. The files come from
:func:`skanimal.datasets.collect_images`, the one collector of what a user named.

A single corrupt or unreadable file must not stop a run (nor be silently dropped): files
are scored in chunks, and a file the features step cannot read is removed from its chunk
and recorded with its one-line error. With ``on_error="fail"`` those errors become one
error naming every unreadable file.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import numpy as np

from .datasets import ON_ERROR, check_on_error
from .exceptions import ImageLoadError, IncompatibleModelError, UnreadableImagesError
from .inference import InferenceModel

__all__ = ["ON_ERROR", "Scores", "check_on_error", "iter_scores", "join_pipeline",
           "score_images", "split_pipeline", "unreadable_error", "collect_sources"]

#: Images per chunk: a few backbone batches, so one bad file costs little to redo.
CHUNK_SIZE = 256

#: How many unreadable images a "fail" error names before it says how many more there are.
NAMED_ERRORS = 20


def unreadable_error(messages, total):
    """One :class:`~skanimal.exceptions.UnreadableImagesError` naming the unreadable images.

    Parameters
    ----------
    messages : list of str
        One line per unreadable image, naming its file.
    total : int
        How many images were to be read.

    Returns
    -------
    UnreadableImagesError
        Carries the files; the CLI words the way to go on without them.
    """
    return UnreadableImagesError(messages, total, named=NAMED_ERRORS)


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
        Features of the pipeline's features step, when asked for.
    unreadable : list of (str, str)
        Each file left out, with the error that names it.
    content_keys : list of str or None
        The content key of each readable image (the feature cache's key), when the features
        step is a :class:`~skanimal.BottleneckFeatures`.
    n_cached : int
        How many images' features came from the feature cache.
    """

    paths: list
    proba: np.ndarray | None
    classes: np.ndarray | None
    features: np.ndarray | None = None
    unreadable: list = field(default_factory=list)
    content_keys: list | None = None
    n_cached: int = 0


def split_pipeline(model):
    """The features step and the head of a fitted pipeline: the one place that splits one.

    Parameters
    ----------
    model : Pipeline or InferenceModel
        A fitted scikit-learn pipeline whose first step turns images into features (a
        :class:`~skanimal.BottleneckFeatures`) and whose last step has ``predict_proba``
        (a fitted search's ``best_estimator_`` is used), or a saved model loaded for
        prediction only (:class:`skanimal.inference.InferenceModel`).

    Returns
    -------
    features : transformer
        The first step.
    head : estimator
        What turns features into class probabilities: the last step, or for a longer
        pipeline (such as ``skanimal train --head logistic``'s StandardScaler +
        LogisticRegression) a :class:`~sklearn.pipeline.Pipeline` of the steps after the
        first. It has ``predict_proba`` and ``classes_``.

    Raises
    ------
    IncompatibleModelError
        When ``model`` is not such a pipeline.
    """
    if isinstance(model, InferenceModel):  # split already, and scikit-learn not imported
        return model.features, model.head
    from sklearn.pipeline import Pipeline

    model = getattr(model, "best_estimator_", model)
    if not isinstance(model, Pipeline) or len(model.steps) < 2:
        raise IncompatibleModelError(
            f"expected a fitted pipeline of features and a classifier (as saved by "
            f"'skanimal train'), got {type(model).__name__}.")
    last = model.steps[-1][1]
    if not hasattr(last, "predict_proba") or not hasattr(last, "classes_"):
        raise IncompatibleModelError(
            f"the pipeline's last step {type(last).__name__} is not a fitted classifier with "
            "predict_proba.")
    return model.steps[0][1], (last if len(model.steps) == 2 else model[1:])


def join_pipeline(model, head):
    """``model`` with its head replaced by ``head`` (the inverse of :func:`split_pipeline`).

    Parameters
    ----------
    model : Pipeline
        The pipeline :func:`split_pipeline` split; its step names are kept.
    head : estimator
        A new head, of the form :func:`split_pipeline` returned.

    Returns
    -------
    Pipeline
    """
    from sklearn.pipeline import Pipeline

    model = getattr(model, "best_estimator_", model)
    rest = [(model.steps[-1][0], head)] if len(model.steps) == 2 else head.steps
    return Pipeline([model.steps[0], *rest])


def iter_scores(model, paths, *, proba=True, features=False, on_error="skip",
                progress=False, description="Scoring"):
    """:func:`score_images` chunk by chunk: one :class:`Scores` per chunk of
    ``CHUNK_SIZE`` paths, as soon as it is scored (one progress bar for all).

    Lets a caller work on a chunk (e.g. copy its files) while the next is scored. The
    parameters are :func:`score_images`'; with ``on_error="fail"`` the error names the
    unreadable files of the first chunk that has any. A chunk whose every file is
    unreadable yields a :class:`Scores` with no paths.

    Yields
    ------
    Scores
    """
    from tqdm.auto import tqdm

    on_error = check_on_error(on_error)
    if proba:
        transform, head = split_pipeline(model)
    else:  # the features step alone, or a pipeline's
        transform, head = (model.features if isinstance(model, InferenceModel)
                           else getattr(model, "steps", [(None, model)])[0][1]), None
    classes = np.asarray(head.classes_) if head is not None else None
    n_classes = len(classes) if classes is not None else 0
    paths = [os.fspath(p) for p in paths]
    with tqdm(total=len(paths), unit="img", desc=description, disable=not progress) as bar:
        for start in range(0, len(paths), CHUNK_SIZE):
            chunk = paths[start:start + CHUNK_SIZE]
            part = _features_of(transform, chunk)
            bar.update(len(chunk))
            if part.unreadable and on_error == "fail":  # of the images read so far
                raise unreadable_error([message for _, message in part.unreadable],
                                       start + len(chunk))
            part.classes = classes
            if head is not None:
                part.proba = (np.asarray(head.predict_proba(part.features)) if part.paths
                              else np.empty((0, n_classes)))
            if not features:
                part.features = None
            elif not part.paths:
                part.features = np.empty((0, 0), np.float32)
            yield part


def _features_of(transform, chunk):
    """:class:`Scores` of ``chunk`` with its features (no probabilities yet).

    A transformer with :meth:`~skanimal.BottleneckFeatures.extract` reads the chunk once and
    lists every unreadable file; any other gets a retry per bad file.
    """
    if hasattr(transform, "extract"):
        extraction = transform.extract(chunk, on_error="skip")
        return Scores(paths=[chunk[i] for i in extraction.kept], proba=None, classes=None,
                      features=np.asarray(extraction.features),
                      unreadable=[(chunk[exc.index], exc.file_message())
                                  for exc in extraction.errors],
                      content_keys=list(extraction.content_keys),
                      n_cached=int(extraction.n_cached))
    unreadable = []
    while chunk:
        try:
            return Scores(paths=chunk, proba=None, classes=None,
                          features=np.asarray(transform.transform(chunk)),
                          unreadable=unreadable)
        except ImageLoadError as exc:
            if exc.index is None or exc.index >= len(chunk):
                raise
            unreadable.append((chunk[exc.index], exc.file_message()))
            chunk = chunk[:exc.index] + chunk[exc.index + 1:]
    return Scores(paths=[], proba=None, classes=None, unreadable=unreadable)


def score_images(model, paths, *, proba=True, features=False, on_error="skip",
                 progress=False, description="Scoring"):
    """Features and class probabilities of many image files, chunk by chunk.

    Parameters
    ----------
    model : Pipeline or transformer
        A fitted pipeline (a features step, then a head; see :func:`split_pipeline`). With
        ``proba=False`` a features step alone (e.g. a fitted
        :class:`~skanimal.BottleneckFeatures`) does.
    paths : sequence of path-like
        Image files, as :func:`skanimal.datasets.collect_images` lists them.
    proba : bool, default=True
        Compute class probabilities.
    features : bool, default=False
        Also return the features the head sees first (the features step's output).
    on_error : {"skip", "fail"}, default="skip"
        ``"skip"`` sets unreadable files aside (listed in ``unreadable``); ``"fail"`` reads
        every file, then raises one :class:`~skanimal.ImageLoadError` naming each unreadable
        one. ``"raise"`` is a deprecated alias of ``"fail"``.
    progress : bool, default=False
        Show a progress bar (on stderr).
    description : str, default="Scoring"
        The progress bar's label.

    Returns
    -------
    Scores
        ``paths`` holds the readable files as given (a relative path stays relative).

    Raises
    ------
    ImageLoadError
        With ``on_error="fail"``, when an image cannot be read.
    """
    on_error = check_on_error(on_error)
    paths = [os.fspath(p) for p in paths]
    parts = list(iter_scores(model, paths, proba=proba, features=features, on_error="skip",
                             progress=progress, description=description))
    unreadable = [item for part in parts for item in part.unreadable]
    if unreadable and on_error == "fail":
        raise unreadable_error([message for _, message in unreadable], len(paths))
    classes = np.asarray(split_pipeline(model)[1].classes_) if proba else None
    scored = [part for part in parts if part.paths]
    n_classes = len(classes) if classes is not None else 0
    keys = [part.content_keys for part in scored]
    return Scores(
        paths=[p for part in scored for p in part.paths],
        proba=(np.concatenate([part.proba for part in scored]) if scored
               else np.empty((0, n_classes))) if proba else None,
        classes=classes,
        features=(np.concatenate([part.features for part in scored]) if scored
                  else np.empty((0, 0), np.float32)) if features else None,
        unreadable=unreadable,
        content_keys=None if any(k is None for k in keys) else [k for ks in keys for k in ks],
        n_cached=sum(part.n_cached for part in scored),
    )


def collect_sources(sources, *, exclude=None):
    """Deprecated: use :func:`skanimal.datasets.collect_images` (the one collector).

    Returns what it returns, made absolute, as this function did. Will be removed in the
    next release.
    """
    from .datasets import collect_images

    warnings.warn("skanimal.scoring.collect_sources is deprecated and will be removed in the "
                  "next release: use skanimal.datasets.collect_images.", FutureWarning,
                  stacklevel=2)
    return [os.path.abspath(p) for p in collect_images(sources, exclude=exclude)]
