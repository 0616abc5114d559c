"""Retrain from the review page: fit the head again on the corrected class folders.

The backbone is frozen, so a model is its fitted :class:`~skanimal.BottleneckFeatures`
step plus a head. Retraining keeps the features step as it is and fits a clone of the head
on the features of the photos now in the class folders. Those features come from the
feature cache (no CNN work for photos seen before) and, within one review session, from
memory (:class:`FeatureMemo`: a photo moved between folders keeps its inode, size and
modification time, so it is not even read again). The new model is saved beside the old one
under the next free name (``animals.joblib`` → ``animals (1).joblib`` → ``animals
(2).joblib``; never overwriting: :func:`skanimal.workflow.save_model_beside`), then the
``_review`` folder is sorted again with it by :func:`skanimal.sorting.sort_images`.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from pathlib import Path

import numpy as np
from sklearn.base import clone

from .. import datasets
from ..cache import hash_file
from ..exceptions import IncompatibleModelError, SkanimalError
from ..folders import REVIEW_FOLDER, file_key
from ..novelty import novelty_of
from ..scoring import join_pipeline, score_images, split_pipeline
from ..sorting import REVIEW_REASONS, confidence_for, sort_images
from ..workflow import save_model_beside
from .paths import relative_name

__all__ = ["FeatureMemo", "Retrainer", "resort_review", "score_photos",
           "check_model", "training_photos", "labelled_photos", "SOURCE_WORDS"]

# ----------------------------------------------------------------------------- model files


def check_model(model, path="the model"):
    """``model`` split by :func:`skanimal.scoring.split_pipeline` into its features step and
    head, or one line naming ``path`` when the review page cannot score or retrain it."""
    try:
        features, head = split_pipeline(model)
    except IncompatibleModelError:
        features = None
    if not hasattr(features, "extract"):
        raise IncompatibleModelError(
            f"{os.fspath(path)!r} is not a pipeline of BottleneckFeatures and a classifier "
            "(as 'skanimal train' saves): the review page cannot score or retrain it")
    return features, head


# -------------------------------------------------------------------------------- features


class FeatureMemo:
    """Features of photos already seen in this session, by file identity.

    The key is :func:`skanimal.folders.file_key`: moving a photo inside the folder keeps it,
    editing the file changes it. Photos not in memory go through the features
    step (and its on-disk cache) in chunks, so progress can be reported.
    """

    def __init__(self, chunk_size=64):
        self.chunk_size = chunk_size
        self._features = None
        self._rows = {}
        self._lock = threading.Lock()

    def transform(self, features, paths, progress=None):
        """Feature rows of ``paths`` from ``features`` (a fitted BottleneckFeatures).

        ``progress(done, total)`` is called after each chunk.
        """
        with self._lock:
            if features is not self._features:
                self._features, self._rows = features, {}
        keys = [file_key(path) for path in paths]
        missing = [i for i, key in enumerate(keys) if key not in self._rows]
        total = len(paths)
        done = total - len(missing)
        if progress:
            progress(done, total)
        for start in range(0, len(missing), self.chunk_size):
            chunk = missing[start:start + self.chunk_size]
            rows = score_images(features, [paths[i] for i in chunk], proba=False,
                                features=True, on_error="fail").features
            with self._lock:
                for i, row in zip(chunk, rows):
                    self._rows[keys[i]] = row
            done += len(chunk)
            if progress:
                progress(done, total)
        with self._lock:
            return np.stack([self._rows[key] for key in keys]) if keys else None


def _epoch_progress_class():
    # Keras (and so TensorFlow) is imported only when Retrain trains: the page's scoring of an
    # int8 model runs without it.
    import keras

    class EpochProgress(keras.callbacks.Callback):
        """A Keras callback that reports each finished epoch to ``report(epoch_number)``.

        It pickles (with the model it is part of) as a callback that does nothing, so a saved
        model never holds the review app.
        """

        def __init__(self, report=None):
            super().__init__()
            self.report = report

        def on_epoch_end(self, epoch, logs=None):
            if self.report is not None:
                self.report(epoch + 1)

        def __reduce__(self):
            return (_epoch_progress, ())

    EpochProgress.__module__ = __name__
    return EpochProgress


def _epoch_progress(report=None):
    return __getattr__("EpochProgress")(report)


def __getattr__(name):
    # ``EpochProgress`` is defined on first use (it subclasses a Keras class).
    if name == "EpochProgress":
        globals()[name] = _epoch_progress_class()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _fit_head(head, F, y, on_epoch):
    """Fit a clone of ``head`` on ``(F, y)``, reporting epochs; returns the fitted clone."""
    head = clone(head)
    if "callbacks" not in head.get_params(deep=False):  # not a Keras head: no epochs
        return head.fit(F, y)
    callbacks = head.get_params().get("callbacks")
    head.set_params(callbacks=list(callbacks or []) + [_epoch_progress(on_epoch)])
    try:
        head.fit(F, y)
    finally:
        head.set_params(callbacks=callbacks)
    return head


def score_photos(catalog, model, memo, progress=None):
    """Record ``model``'s probabilities for every photo of ``catalog`` (features from
    ``memo``), and why ``skanimal sort`` would send each to review, as sort decides it
    (its confidence threshold, the head's novelty score); ``progress(done, total)``
    follows the feature extraction."""
    features, head = check_model(model)
    paths = catalog.folder_paths()
    F = memo.transform(features, paths, progress)
    if F is not None:
        proba = np.asarray(head.predict_proba(F))
        threshold, _ = confidence_for(model)
        novelty = novelty_of(head)
        unlike = novelty.is_novel(F) if novelty is not None else np.zeros(len(F), bool)
        reasons = [REVIEW_REASONS[bool(row.max() < threshold), bool(flag)]
                   for row, flag in zip(proba, unlike)]
        catalog.set_probabilities(paths, proba, head.classes_, reasons)


# --------------------------------------------------------------------------- training set

#: How the status names each source of training photos.
SOURCE_WORDS = {"labelled": "you labelled before", "confirmed": "you confirmed here",
                "model": "the model sorted"}


def labelled_photos(labelled):
    """``[(path, label)]`` of the labelled photos a model was trained from: a class-per-folder
    set (label = its class folder, as ``skanimal train`` reads it) or a labels CSV (as
    ``skanimal train --labels`` reads it, with ``skanimal.load_image_csv``)."""
    if labelled is None:
        return []
    labelled = Path(labelled)
    if labelled.is_file() and labelled.suffix.lower() == ".csv":
        data = datasets.load_image_csv(labelled)
    else:
        data = datasets.load_image_folder(labelled)
    return [(os.path.abspath(p), str(t)) for p, t in zip(data.paths, data.target)]


def _fitted_on(features, paths):
    """Which of ``paths`` the features step was fitted on (content keys), or all False
    when the model did not record them."""
    if getattr(features, "training_hashes_", None) is None or not paths:
        return np.zeros(len(paths), dtype=bool)
    keys = []
    for path in paths:
        try:
            keys.append(hash_file(path))
        except OSError:
            keys.append("0" * 64)
    return np.asarray(features.fitted_on(keys), dtype=bool)


def training_photos(catalog, features, labelled=None, *, confirmed_only=False):
    """What Retrain trains on, by source.

    * ``labelled``: the photos a person labelled before: those of ``labelled`` (the
      folder or CSV the model was trained from, when the review was given it), and the
      photos in the reviewed folder's class folders that the model was fitted on (its
      ``training_hashes_``) or that no sort put there (no row in predictions.csv);
    * ``confirmed``: photos a person moved or accepted on the page;
    * ``model``: photos ``skanimal sort`` put in a class folder, unchecked; left out with
      ``confirmed_only``.

    A photo's label is the class folder it is in (or, from a CSV, its ``label``), as
    ``skanimal train`` reads labels. ``_review`` and ``_trash`` are never trained on.

    Returns
    -------
    dict
        Source -> list of ``(path, label)``, in the order above; a photo is counted once.
    """
    found = catalog.training_sources()
    in_folder = found["model"]
    seen = _fitted_on(features, [path for path, _ in in_folder])
    sources = {
        "labelled": labelled_photos(labelled) + found["folder"]
        + [item for item, known in zip(in_folder, seen) if known],
        "confirmed": found["confirmed"],
        "model": [item for item, known in zip(in_folder, seen) if not known],
    }
    if confirmed_only:
        sources["model"] = []
    taken = set()
    for kind, items in sources.items():
        unique = []
        for path, label in items:
            real = os.path.realpath(path)
            if real not in taken:
                taken.add(real)
                unique.append((path, label))
        sources[kind] = unique
    return sources


def describe_sources(sources, left_out=0):
    """``"12 photos you labelled before, 3 you confirmed here, 40 the model sorted"``."""
    parts = [f"{len(items)} {'photos ' if i == 0 else ''}{SOURCE_WORDS[kind]}"
             for i, (kind, items) in enumerate(sources.items())]
    text = ", ".join(parts)
    if left_out:
        text += f" ({left_out} the model sorted left out: confirmed photos only)"
    return text


# ------------------------------------------------------------------------------- re-sort


def resort_review(model, catalog):
    """Sort the photos of the review folder again with ``model``, as ``skanimal sort
    --move`` does (:func:`skanimal.sorting.sort_images` into the reviewed folder): the
    confident ones move to their class folders, journaled, and ``predictions.csv`` keeps one
    row per photo. Returns ``(journals, [(old, new) relative paths])``.
    """
    if not catalog.folder_paths(REVIEW_FOLDER):
        return [], []
    result = sort_images(model, catalog.root / REVIEW_FOLDER, catalog.root, mode="move")
    return result.journals, [(relative_name(catalog.root, old), relative_name(catalog.root, new))
                             for old, new in result.relocations]


# -------------------------------------------------------------------------------- the job


class Retrainer:
    """Runs one retraining at a time in a background thread and reports its progress.

    Parameters
    ----------
    catalog : Catalog
    model : Pipeline or None
        The current model (BottleneckFeatures + head); None disables retraining.
    model_path : path-like or None
        Its file; new models are saved beside it.
    memo : FeatureMemo
    labelled : path-like, optional
        The class-per-folder set or labels CSV the model was trained from: its photos are
        trained on again (see :func:`training_photos`).
    """

    def __init__(self, catalog, model, model_path, memo, labelled=None):
        self.catalog = catalog
        self.labelled = labelled
        self.model = model
        self.model_path = None if model_path is None else Path(model_path)
        self.memo = memo
        self.confirmed_only = False
        self._lock = threading.Lock()
        self._thread = None
        self._status = {"state": "idle", "phase": "", "done": 0, "total": 0, "message": "",
                        "model": None if model_path is None else Path(model_path).name}

    @property
    def available(self):
        return self.model is not None and self.model_path is not None

    @property
    def running(self):
        with self._lock:
            return self._status["state"] == "running"

    def status(self):
        with self._lock:
            return dict(self._status)

    def _set(self, **changes):
        with self._lock:
            self._status.update(changes)

    def start(self, confirmed_only=False):
        """Start retraining (without the photos the model sorted itself when
        ``confirmed_only``); False when one is already running."""
        with self._lock:
            if self._status["state"] == "running":
                return False
            self.confirmed_only = bool(confirmed_only)
            self._status.update(state="running", phase="starting", done=0, total=0,
                                message="", started=time.time())
            self._thread = threading.Thread(target=self._run, name="skanimal-retrain",
                                            daemon=True)
            self._thread.start()
            return True

    def join(self, timeout=None):
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self):
        try:
            message = self._retrain()
            self._set(state="done", phase="done", message=message)
        except Exception as exc:  # reported on the page as one line, never a crash
            if not isinstance(exc, (SkanimalError, ValueError, OSError)):
                traceback.print_exc()
            self._set(state="failed", phase="failed",
                      message=" ".join(f"{type(exc).__name__}: {exc}".split()))

    def _retrain(self):
        features, head = check_model(self.model, self.model_path)
        self._set(phase="finding the training photos", done=0, total=0)
        sources = training_photos(self.catalog, features, self.labelled)
        left_out = 0
        if self.confirmed_only:
            left_out, sources["model"] = len(sources["model"]), []
        items = [item for group in sources.values() for item in group]
        paths = [path for path, _ in items]
        labels = np.asarray([label for _, label in items], dtype=object)
        if len(set(labels)) < 2:
            raise SkanimalError("retraining needs labelled photos of at least two classes "
                                f"(found {describe_sources(sources, left_out)})")

        self._set(phase="features", done=0, total=len(paths))
        F = self.memo.transform(features, paths,
                                lambda done, total: self._set(done=done, total=total))

        epochs = head.get_params(deep=False).get("epochs")  # an int, "auto" or none
        self._set(phase="training", done=0, total=epochs if isinstance(epochs, int) else 0)
        t0 = time.perf_counter()
        new_head = _fit_head(head, F, labels, lambda epoch: self._set(done=epoch))
        fit_s = time.perf_counter() - t0
        new_model = join_pipeline(self.model, new_head)

        self._set(phase="saving", done=0, total=1)
        saved = save_model_beside(new_model, self.model_path)
        self.model, self.model_path = new_model, saved

        self._set(phase="re-sorting", done=0, total=1)
        journals, moved = resort_review(new_model, self.catalog)
        if journals:
            self.catalog.record(journals, moved)

        self._set(phase="scoring", done=0, total=0)
        score_photos(self.catalog, new_model, self.memo,
                     lambda done, total: self._set(done=done, total=total))
        threshold, why = confidence_for(new_model)
        counts = {kind: len(group) for kind, group in sources.items()}
        self._set(model=saved.name, trained_on=counts, threshold=threshold,
                  threshold_reason=why)
        return (f"trained on {describe_sources(sources, left_out)} in {fit_s:.1f} s, "
                f"saved {saved.name}; threshold {threshold:.4g} ({why}); "
                f"moved {len(moved)} photo(s) out of {REVIEW_FOLDER}")
