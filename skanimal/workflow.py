"""The ``skanimal`` commands as Python functions: train, evaluate, predict, demo.

Each function does all of one command's work — load, split, extract, train, score, report,
save — and returns a small result object holding what the command prints; the command line
(``skanimal.cli``) only parses its arguments, calls one of these and prints the result.

>>> from skanimal import workflow
>>> result = workflow.train("photos/", "animals.joblib", log=print)   # doctest: +SKIP
>>> result.scores["test"]["accuracy"]                                 # doctest: +SKIP
0.95
>>> workflow.predict("animals.joblib", ["new_photo.jpg"]).top(1)      # doctest: +SKIP
[('new_photo.jpg', [('cat', 0.97)])]

Progress messages (what is being loaded, split, extracted, trained) go to the ``log``
callable, one line per call; ``log=None`` (the default) keeps a function silent. Data errors
(a missing folder, a file that is not a model, classes a model does not know) raise
:class:`~skanimal.SkanimalError` subclasses with a one-line message naming the file.

Only load model files you trust: joblib files can run code when loaded (see
:func:`skanimal.load` for the pickle-free format).
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .calibration import DEFAULT_MIN_CONFIDENCE
from .datasets import collect_images, load_image_csv, load_image_folder, split_what_fits
from .exceptions import ImageFolderError, ImageLoadError, IncompatibleModelError, SkanimalError
from .fileio import TMP_PREFIX, atomic_write, fsync_dir
from .inference import InferenceModel
from .moves import copy_number, free_names
from .report import (
    add_provenance,
    classification_text,
    compute_metrics,
    predict_with_proba,
    unknown_labels,
    write_report_files,
)
from .scoring import (
    ON_ERROR,
    check_on_error,
    score_images,
    split_pipeline,
    unreadable_error,
)

__all__ = [
    "ON_ERROR",
    "train",
    "evaluate",
    "predict",
    "demo",
    "load_model",
    "save_model",
    "save_model_beside",
    "TrainResult",
    "EvaluateResult",
    "PredictResult",
    "DemoResult",
]


# ---------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` did.

    Attributes
    ----------
    pipeline : Pipeline
        The fitted ``BottleneckFeatures`` → ``BottleneckClassifier`` pipeline, as saved.
    model_path : pathlib.Path
        The file the pipeline was saved to.
    model_bytes : int
        Its size.
    sizes : dict
        Number of images of each part: ``{"train": ..., "val": ..., "test": ...}``.
    scores : dict
        :func:`skanimal.report.classification_metrics`-style metrics of the ``"val"`` and
        ``"test"`` parts (a part of size 0 has no entry).
    timings : dict
        ``extract_s``, ``fit_s`` and ``total_s``, in seconds.
    test : Bunch
        The test part (``paths``, ``target``, ``target_names``).
    report_dir : pathlib.Path or None
        Where the test-set report was written, if asked for.
    skipped : list of (str, str)
        ``(path, reason)`` of each image left out because it could not be read
        (``on_error="skip"``).
    """

    pipeline: object
    model_path: Path
    model_bytes: int
    sizes: dict
    scores: dict
    timings: dict
    test: object
    report_dir: Path | None = None
    skipped: list = field(default_factory=list)


@dataclass(frozen=True)
class EvaluateResult:
    """What :func:`evaluate` measured.

    Attributes
    ----------
    metrics : dict
        :func:`skanimal.report.classification_metrics`' metrics (``accuracy``, ``log_loss``,
        ``per_class``...); with the provenance entries of ``metrics.json`` when a report
        was written.
    classification_report : str
        scikit-learn's per-class text report (:func:`skanimal.report.classification_text`).
    report_dir : pathlib.Path or None
        Where the report files were written, if asked for.
    skipped : list of (str, str)
        ``(path, reason)`` of each image left out because it could not be read.
    n_trained_on : int or None
        How many of the evaluated images the model was trained on (found by content), or
        None when the model does not record its training images.
    """

    metrics: dict
    classification_report: str
    report_dir: Path | None = None
    skipped: list = field(default_factory=list)
    n_trained_on: int | None = None


@dataclass(frozen=True)
class PredictResult:
    """What :func:`predict` found: class probabilities of each image.

    Attributes
    ----------
    paths : list of str
        The images, in the order of the inputs (folders expanded).
    classes : ndarray of shape (n_classes,)
        The model's classes, the column order of ``proba``.
    proba : ndarray of shape (n_images, n_classes)
        Predicted class probabilities.
    skipped : list of (str, str)
        ``(path, reason)`` of each image that could not be read, so has no row.
    novelty : ndarray of shape (n_images,) or None
        How unlike the training photos each image is (the model's
        :class:`skanimal.novelty.FeatureNovelty` score: cosine distance of its features to
        the nearest training photo's); None for a model without one.
    novelty_threshold : float or None
        Scores above it are "unlike the training photos" (``threshold_`` of that score).
    """

    paths: list
    classes: np.ndarray = field(repr=False)
    proba: np.ndarray = field(repr=False)
    skipped: list = field(default_factory=list)
    novelty: np.ndarray | None = field(default=None, repr=False)
    novelty_threshold: float | None = None

    @property
    def unlike_training(self):
        """ndarray of bool, shape (n_images,), or None: whether each image is unlike the
        photos the model was trained on (``skanimal sort`` sends such photos to review);
        None when the model has no novelty score."""
        if self.novelty is None:
            return None
        return np.asarray(self.novelty) > self.novelty_threshold

    @property
    def labels(self):
        """ndarray of shape (n_images,): the most probable class of each image."""
        return self.classes[np.argmax(self.proba, axis=1)]

    def top(self, k):
        """The ``k`` most probable classes of each image, best first.

        Parameters
        ----------
        k : int
            Capped at the number of classes. Ties keep the order of ``classes``.

        Returns
        -------
        list of (str, list of (label, float))
            ``(path, [(label, probability), ...])`` for each image.
        """
        k = min(int(k), len(self.classes))
        order = np.argsort(-self.proba, axis=1, kind="stable")[:, :k]
        return [(path, [(self.classes[j], float(self.proba[i, j])) for j in order[i]])
                for i, path in enumerate(self.paths)]


@dataclass(frozen=True)
class DemoResult:
    """What :func:`demo` did.

    Attributes
    ----------
    train : TrainResult
        The training run on the generated set.
    workdir : pathlib.Path or None
        The folder holding the images, model and report; None when it was temporary (and
        is deleted).
    weights : str or None
        The backbone weights used (``"imagenet"``, or None for random weights).
    sample : list of str
        A few test images predicted with the reloaded model.
    predicted : ndarray
        The reloaded model's predictions for ``sample``.
    same_predictions : bool
        Whether the reloaded model predicts ``sample`` as the trained one did.
    """

    train: TrainResult
    workdir: Path | None
    weights: str | None
    sample: list
    predicted: np.ndarray = field(repr=False)
    same_predictions: bool = True


# ---------------------------------------------------------------------------------- helpers


def _say(log, message):
    if log is not None:
        log(message)


def _class_counts(target):
    names, counts = np.unique(np.asarray(target, dtype=str), return_counts=True)
    return ", ".join(f"{name} {count}" for name, count in zip(names, counts))


def _load_data(data_dir, log, labels=None, on_error="fail"):
    if labels is None:
        data, source = load_image_folder(data_dir), data_dir
    else:
        # the rows left out are said through log, where there is one
        with warnings.catch_warnings(record=log is not None) as caught:
            warnings.simplefilter("always")
            data, source = load_image_csv(labels, root=data_dir, on_error=on_error), labels
        for warning in caught or ():
            message = str(warning.message)
            log(message[:1].upper() + message[1:])
    _say(log, f"Loaded {len(data.paths)} images of {len(data.target_names)} classes from "
              f"{source}: {_class_counts(data.target)}")
    return data


def _progress_callbacks(progress):
    """Keras callbacks drawing one bar over the head's training epochs (tqdm, on stderr),
    or none; given to the head for its fit only, so the saved model holds no bar."""
    if not progress:
        return None
    from tqdm.auto import tqdm

    from ._tfstartup import start_tensorflow

    start_tensorflow()  # tqdm.keras imports Keras: without TensorFlow's notices on stderr
    from tqdm.keras import TqdmCallback

    return [TqdmCallback(verbose=0, tqdm_class=tqdm, desc="Training the head")]


def _features_step(pipeline):
    if isinstance(pipeline, InferenceModel):
        return pipeline.features
    from .features import BottleneckFeatures

    for _, step in getattr(pipeline, "steps", []):
        if isinstance(step, BottleneckFeatures):
            return step
    return None


def _fit_features(features, paths, on_error):
    """``features.fit(paths)``; with ``on_error="skip"``, without the images it cannot read
    (int8 calibration decodes some of them; extraction then names every unreadable one)."""
    paths = list(paths)
    while True:
        try:
            return features.fit(paths)
        except ImageLoadError as exc:
            if on_error != "skip" or exc.index is None or not 0 <= exc.index < len(paths):
                raise
            del paths[exc.index]


def _check_known_classes(target, classes, data_dir):
    # The report's own test, so a mismatch is this one line rather than its ValueError later
    # (e.g. a model trained on integer labels, folders named "0", "1").
    unknown = unknown_labels(target, classes)
    if unknown:
        raise ImageFolderError(
            f"{data_dir} has classes the model was not trained on: {unknown} "
            f"(the model knows {np.asarray(classes).tolist()})"
        )


def _model_to_predict(model, weights=None):
    """:func:`_resolve_model`, except that a ``.skanimal`` file whose model predicts without
    scikit-learn and TensorFlow loads as an :class:`~skanimal.inference.InferenceModel`
    (:func:`skanimal.persistence.load_for_inference`): the same answers, a faster start."""
    if (weights is None and isinstance(model, (str, os.PathLike)) and Path(model).is_file()
            and _is_zip_archive(model)):
        from .persistence import load_for_inference

        light = load_for_inference(model)
        if light is not None:
            return light
    return _resolve_model(model, weights)


def _resolve_model(model, weights=None):
    if isinstance(model, (str, os.PathLike)):
        model = load_model(model)
    if weights is not None:  # the weights file's new place, checked by content
        _features_step(model).relocate_weights(weights)
    return model


def _say_extracted(log, n, cached, seconds):
    if n and cached == n:
        _say(log, f"Features of {n} images from the cache in {seconds:.1f} s")
    elif cached:
        _say(log, f"Extracted features of {n} images in {seconds:.1f} s "
                  f"({cached} from the cache, {n - cached} through the CNN)")
    else:
        _say(log, f"Extracted features of {n} images in {seconds:.1f} s")


def _extract(features, paths, on_error, log):
    """``features.extract`` with the workflow's error policy and a line about the cache
    (training: the features of every part at once, before there is a model to score)."""
    t0 = time.perf_counter()
    extraction = features.extract(paths, on_error="skip")
    seconds = time.perf_counter() - t0
    if extraction.errors and on_error == "fail":
        raise unreadable_error([e.file_message() for e in extraction.errors], len(paths))
    _say_extracted(log, len(extraction.kept), extraction.n_cached, seconds)
    return extraction, seconds


def _skipped(extraction):
    return [(error.path, error.file_message()) for error in extraction.errors]


def _score(pipeline, paths, on_error, progress, log=None, features=False):
    """:func:`skanimal.scoring.score_images` of ``paths``, saying how long the features took;
    an error when no image can be read."""
    if progress is not None:  # one bar for the whole run, not one per chunk
        _features_step(pipeline).set_params(verbose=0)
    t0 = time.perf_counter()
    scores = score_images(pipeline, paths, on_error=on_error, progress=bool(progress),
                          features=features, description="Predicting")
    _say_extracted(log, len(scores.paths), scores.n_cached, time.perf_counter() - t0)
    if not scores.paths:
        raise unreadable_error([message for _, message in scores.unreadable], len(paths))
    return scores


# ------------------------------------------------------------------------------ model files


def _is_zip_archive(path):
    # The start of the file, not zipfile.is_zipfile: that looks for a zip directory anywhere,
    # and a pickled Keras head embeds one.
    with open(path, "rb") as handle:
        return handle.read(4) == b"PK\x03\x04"


def load_model(path, *, weights=None):
    """Load a pipeline saved by :func:`train` (or ``joblib.dump``, or :func:`skanimal.save`),
    checking what it is.

    Parameters
    ----------
    path : path-like
        A joblib file holding a fitted pipeline of :class:`~skanimal.BottleneckFeatures`
        and a classifier (a saved ``GridSearchCV`` of one works too), or a ``.skanimal``
        archive written by :func:`skanimal.save` (recognised by its content, a zip archive,
        whatever its name; loaded without unpickling). Only load joblib files you trust:
        unpickling can run code.
    weights : path-like, optional
        The model's backbone weights file at its new place (the file, or a folder holding
        it), checked by content; see :meth:`skanimal.BottleneckFeatures.relocate_weights`.

    Returns
    -------
    Pipeline
        The fitted pipeline (a search's ``best_estimator_``).

    Raises
    ------
    IncompatibleModelError
        When the file is missing, is a folder, cannot be unpickled, holds something else
        than a fitted skanimal pipeline, or was made with incompatible features.
    """
    path = Path(path)
    if not path.exists():
        raise IncompatibleModelError(f"model file {str(path)!r} does not exist")
    if path.is_dir():
        raise IncompatibleModelError(f"model file {str(path)!r} is a directory")
    import joblib
    from sklearn.pipeline import Pipeline
    from sklearn.utils.validation import check_is_fitted

    try:
        if _is_zip_archive(path):  # skanimal.save's archive; a pickle never starts so
            from .persistence import load

            model = load(path)
        else:
            model = joblib.load(path)
    except SkanimalError:
        raise
    except ImportError as exc:  # a pickle of objects from a package not installed here
        raise IncompatibleModelError(
            f"{str(path)!r} cannot be loaded: it needs the module {exc.name or exc}, which is "
            f"not installed") from exc
    except Exception as exc:  # pickle, EOF, KeyError... all mean "not ours"; their words
        # ("Memo value not found at index 101", "KeyError: 35") say nothing to a user
        raise IncompatibleModelError(
            f"{str(path)!r} is not a skanimal model file (neither a model saved by joblib "
            f"nor one saved by skanimal.save)") from exc
    model = getattr(model, "best_estimator_", model)  # a saved GridSearchCV works too
    if not (isinstance(model, Pipeline) and _features_step(model) is not None
            and hasattr(model, "predict_proba")):
        raise IncompatibleModelError(
            f"{str(path)!r} is not a skanimal model: expected a pipeline of BottleneckFeatures "
            f"and a classifier (as saved by 'skanimal train'), found {type(model).__name__}"
        )
    try:
        check_is_fitted(model)
    except Exception as exc:
        raise IncompatibleModelError(f"the model in {str(path)!r} is not fitted") from exc
    if weights is not None:  # the weights file's new place, checked by content
        _features_step(model).relocate_weights(weights)
    return model


def save_model(pipeline, path):
    """Save a pipeline atomically: a ``.skanimal`` name with :func:`skanimal.save`, any
    other with :func:`joblib.dump`.

    Written through :func:`skanimal.fileio.atomic_write`: a temporary file beside ``path``,
    synced, then renamed, with normal permissions; missing parent folders are created.

    Parameters
    ----------
    pipeline : estimator
        What to save (any picklable object; for a ``.skanimal`` name, a fitted
        ``BottleneckFeatures`` → ``BottleneckClassifier`` pipeline).
    path : path-like
        Destination file.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    if Path(path).suffix == ".skanimal":
        from .persistence import save

        return save(pipeline, path)
    import joblib

    with atomic_write(path) as handle:
        joblib.dump(pipeline, handle)
    return Path(path)


def _publish_new(temporary, destination):
    """Give ``temporary`` the name ``destination`` unless that name exists (never replacing)."""
    try:
        os.link(temporary, destination)
    except FileExistsError:
        raise
    except OSError:  # no hard links here (FAT, some shares): reserve the name exclusively
        os.close(os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        os.replace(temporary, destination)


def save_model_beside(pipeline, path):
    """Save a pipeline beside ``path`` under the next free numbered name, never overwriting.

    ``animals.joblib`` → ``animals (1).joblib`` → ``animals (2).joblib``... (the first name
    no file has; :func:`skanimal.moves.free_names`, the numbering of copied photos too). A
    ``.skanimal`` name is written with :func:`skanimal.save`, any other with
    :func:`save_model`. The file is written completely under a temporary name first and
    then linked to its final name, which fails rather than replace a file created there in
    the meantime (the next name is tried then).

    Parameters
    ----------
    pipeline : Pipeline
        The fitted pipeline to save.
    path : path-like
        The existing model file the new one goes beside (left untouched).

    Returns
    -------
    pathlib.Path
        The new file.
    """
    path = Path(path)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f"{TMP_PREFIX}save-") as tmp:
        temporary = Path(tmp) / path.name
        save_model(pipeline, temporary)
        original, number = copy_number(path.name)
        for name in free_names(original, start=number + 1):
            candidate = path.with_name(name)
            try:
                _publish_new(temporary, candidate)
            except FileExistsError:
                continue
            fsync_dir(path.parent)
            return candidate


# -------------------------------------------------------------------------------- workflows


def train(data_dir, output, *, val_size=0.1, test_size=0.1, backbone="vgg16",
          weights="imagenet", image_size=None, pooling="avg", head="network", epochs="auto",
          batch_size=50, learning_rate=1e-3, random_state=0, report_dir=None, cache=True,
          progress=False, on_error="fail", log=None, labels=None, precision="float32"):
    """Train a classifier on a class-per-folder image set (or the photos a labels CSV file
    lists) and save it (``skanimal train``).

    The images are split into stratified train, validation and test parts
    (:func:`skanimal.train_val_test_split`); the features of every image are extracted once
    (and cached); the head trains on the train part with the validation part as Keras
    ``validation_data`` (which also calibrates its ``confidence_threshold_``), and is scored
    on the validation and test parts. The fitted ``make_pipeline(BottleneckFeatures(...),
    head)`` is saved with :func:`save_model`.

    A set too small for the parts asked for is not an error: each part gets at least one
    image per class when the smallest class can spare it and every class keeps two training
    images; otherwise the validation part, then the test part, is left out, and ``log`` says
    so (from 2 images per class the head trains on all of them, and is not scored).

    Parameters
    ----------
    data_dir : path-like or None
        Class-per-folder image set (:func:`skanimal.load_image_folder`); with ``labels``,
        the folder the CSV file's relative paths are relative to (None: the CSV file's
        folder).
    output : path-like
        Where to save the fitted pipeline (:func:`save_model`: joblib, or
        :func:`skanimal.save` for a name ending in ``.skanimal``, which holds the network
        head only).
    val_size, test_size : float or int, default=0.1
        Passed to :func:`skanimal.train_val_test_split`; 0 leaves a part out.
    backbone, weights, image_size, pooling, cache, precision
        See :class:`skanimal.BottleneckFeatures`. ``precision`` is kept in the saved model:
        whatever scores with it (``predict``, ``sort``, the review page) computes its
        features the same way. ``"int8"`` calibrates on the training part and needs
        OpenVINO (``pip install "skanimal[openvino]"``).
    head : {"network", "logistic"}, default="network"
        ``"network"``: :class:`skanimal.BottleneckClassifier`; ``"logistic"``:
        ``StandardScaler`` + ``LogisticRegression``, the linear baseline (Create ML's default
        kind of head), which ignores ``epochs``, ``batch_size`` and ``learning_rate``.
    epochs, batch_size, learning_rate, random_state
        See :class:`skanimal.BottleneckClassifier`; ``random_state`` also seeds the split.
    report_dir : path-like, optional
        Also write the test-set report there (:func:`skanimal.report.write_report`'s
        files); needs a test part.
    progress : bool, default=False
        Show progress bars (tqdm, on stderr) while extracting features and while the
        network head trains (the saved model stays quiet).
    on_error : {"fail", "skip"}, default="fail"
        Images that cannot be read: ``"fail"`` raises one error naming every one of them
        (a model trained without some of its images should be a choice); ``"skip"``
        trains without them and lists them in ``TrainResult.skipped``. With ``labels``,
        also the labels file's bad rows (:func:`skanimal.load_image_csv`): ``"skip"``
        trains without them, and ``log`` names them.
    log : callable, optional
        Called with one line of text at each step (e.g. ``print``).
    labels : path-like, optional
        A CSV file of photos and their classes (:func:`skanimal.load_image_csv`: Kaggle's
        ``file,label``, or the ``predictions.csv`` of ``skanimal sort``), used instead of
        the class sub-folders of ``data_dir``.

    Returns
    -------
    TrainResult

    Raises
    ------
    SkanimalError
        For a missing or badly laid out folder, a single class, sizes that leave a part
        empty or no training images, unreadable images or unavailable weights.
    """
    from sklearn.pipeline import make_pipeline

    from .features import BottleneckFeatures

    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    if Path(output).suffix == ".skanimal" and head != "network":
        raise IncompatibleModelError(
            f"{str(output)!r}: a .skanimal file holds the network head only; save the "
            f"{head} head under another name, such as {Path(output).stem}.joblib")
    on_error = check_on_error(on_error)
    start = time.perf_counter()
    if data_dir is None and labels is None:
        raise ValueError("train needs data_dir, labels or both")
    data = _load_data(data_dir, log, labels, on_error)
    if len(data.target_names) < 2:
        raise ImageFolderError(f"{data_dir if labels is None else labels} has only one class "
                               f"({data.target_names[0]!r}); a classifier needs at least two "
                               + ("class sub-folders" if labels is None else "labels"))
    train_part, val_part, test_part = split_what_fits(data, val_size, test_size,
                                                       random_state, log)
    sizes = {"train": len(train_part.paths), "val": len(val_part.paths),
             "test": len(test_part.paths)}
    _say(log, f"Split (stratified, random_state={random_state}): {sizes['train']} train, "
              f"{sizes['val']} validation, {sizes['test']} test")
    if report_dir is not None and not sizes["test"]:
        raise ImageFolderError("a report needs a test part: " + (
            "this set is too small for one (see above)" if test_size else "use a test size > 0"))

    features = BottleneckFeatures(backbone, weights=weights, image_size=image_size,
                                  pooling=pooling, cache=cache, verbose=int(bool(progress)),
                                  precision=precision)
    # fit records the training images' content hashes: evaluate can then tell how many of
    # the images it scores the model has already seen.
    _fit_features(features, train_part.paths, on_error)
    height, width = features.image_size_
    weights_name = "none" if weights is None else weights
    _say(log, f"Extracting {backbone} features ({height}x{width} px, weights={weights_name}, "
              f"pooling={pooling or 'none'}, {features.n_features_out_} features per image"
              + (f", {precision}" if precision != "float32" else "") + ")")
    everything = np.concatenate([train_part.paths, val_part.paths, test_part.paths])
    extraction, extract_s = _extract(features, everything, on_error, log)
    bounds = np.cumsum([0, sizes["train"], sizes["val"], sizes["test"]])
    part_of_row = np.searchsorted(bounds, extraction.kept, side="right") - 1
    kept_parts, matrices = [], []
    for number, part in enumerate((train_part, val_part, test_part)):
        rows = part_of_row == number
        local = extraction.kept[rows] - bounds[number]
        kept_parts.append(type(part)(**{**part, "paths": part.paths[local],
                                        "target": part.target[local]}))
        matrices.append(extraction.features[rows])
    train_part, val_part, test_part = kept_parts
    F_train, F_val, F_test = matrices
    skipped = _skipped(extraction)
    if skipped:
        sizes = {"train": len(train_part.paths), "val": len(val_part.paths),
                 "test": len(test_part.paths)}
        if not sizes["train"]:
            raise unreadable_error([e.file_message() for e in extraction.errors],
                                   len(everything))

    t0 = time.perf_counter()
    if head == "logistic":
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        head_model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
        head_model.fit(F_train, train_part.target)
        _say(log, f"Trained a logistic-regression head (StandardScaler + LogisticRegression) "
                  f"in {time.perf_counter() - t0:.1f} s")
        steps = [features, *(step for _, step in head_model.steps)]
    else:
        from .classifier import BottleneckClassifier

        head_model = BottleneckClassifier(epochs=epochs, batch_size=batch_size,
                                          learning_rate=learning_rate,
                                          random_state=random_state,
                                          callbacks=_progress_callbacks(progress))
        try:
            head_model.fit(F_train, train_part.target,
                           validation_data=(F_val, val_part.target) if sizes["val"] else None)
        finally:
            head_model.set_params(callbacks=None)  # the saved model holds no bar
        history = head_model.history_
        _say(log, f"Trained the classifier head for {len(history['loss'])} epochs in "
                  f"{time.perf_counter() - t0:.1f} s (last epoch: training loss "
                  f"{history['loss'][-1]:.4f}, accuracy {history['accuracy'][-1]:.3f})")
        if head_model.confidence_basis_ is not None:  # what sort's threshold will rest on
            basis = head_model.confidence_basis_
            floor = DEFAULT_MIN_CONFIDENCE
            _say(log, "Confidence threshold: " + (
                f"{max(basis.threshold, floor):.4g}, calibrated {basis.describe()}"
                + (f" (raised to {floor}, the lowest a sort uses)"
                   if basis.threshold < floor else "")
                if basis.threshold is not None
                else f"{basis.describe()}; sorting uses {floor}"))
        steps = [features, head_model]
    fit_s = time.perf_counter() - t0
    features.set_params(verbose=0)  # the saved model stays quiet in Python
    pipeline = make_pipeline(*steps)

    scores, test_predicted, test_proba = {}, None, None
    for key, F, part in (("val", F_val, val_part), ("test", F_test, test_part)):
        if len(part.paths):
            classes, proba, predicted = predict_with_proba(head_model, F)
            scores[key] = compute_metrics(part.target, predicted, proba, classes)
            if key == "test":
                test_predicted, test_proba = predicted, proba

    model_path = save_model(pipeline, output)
    model_bytes = model_path.stat().st_size
    timings = {"extract_s": round(extract_s, 3), "fit_s": round(fit_s, 3),
               "total_s": round(time.perf_counter() - start, 3)}
    if report_dir is not None:
        metrics = add_provenance(scores["test"], pipeline, sizes=sizes, timings=timings)
        if "val" in scores:
            metrics["validation"] = {k: scores["val"][k] for k in ("accuracy", "log_loss")}
        write_report_files(report_dir, metrics, test_part.paths, test_part.target,
                           test_predicted, pipeline, proba=test_proba)
        report_dir = Path(report_dir)
    return TrainResult(pipeline=pipeline, model_path=model_path, model_bytes=model_bytes,
                       sizes=sizes, scores=scores, timings=timings, test=test_part,
                       report_dir=report_dir, skipped=skipped)


#: The heads ``train`` offers (``skanimal train --head``).
HEADS = ("network", "logistic")


def evaluate(model, data_dir, *, report_dir=None, progress=None, on_error="fail", weights=None,
             log=None):
    """Score a saved model on every image of a class-per-folder set (``skanimal evaluate``).

    Parameters
    ----------
    model : path-like or fitted Pipeline
        A file saved by :func:`train` (loaded with :func:`load_model`), or a fitted
        skanimal pipeline.
    data_dir : path-like
        Class-per-folder image set; it may not hold classes the model does not know.
    report_dir : path-like, optional
        Also write the report files of :func:`skanimal.report.write_report` there.
    progress : bool, optional
        Show a progress bar while extracting features; None leaves the model's setting.
    on_error : {"fail", "skip"}, default="fail"
        Images that cannot be read: ``"fail"`` raises one error naming every one of them (a
        score on part of the set should be a choice); ``"skip"`` scores the others and
        lists them in ``EvaluateResult.skipped``.
    weights : path-like, optional
        The model's backbone weights file at its new place (the file, or a folder holding
        it), checked by content; see :meth:`skanimal.BottleneckFeatures.relocate_weights`.
    log : callable, optional
        Called with one line of text at each step (e.g. ``print``).

    Returns
    -------
    EvaluateResult

    Warns
    -----
    UserWarning
        When the model was trained on some of the evaluated images (found by content), as
        the score then overstates its accuracy on new images.

    Raises
    ------
    SkanimalError
        For a file that is not a skanimal model, a missing or badly laid out folder,
        classes the model does not know, or unreadable images.
    """
    on_error = check_on_error(on_error)
    pipeline = _resolve_model(model, weights)
    data = _load_data(data_dir, log)
    _check_known_classes(data.target, pipeline.classes_, data_dir)
    scores = _score(pipeline, data.paths, on_error, progress, log)
    row_of = {path: i for i, path in enumerate(data.paths)}
    kept = np.array([row_of[path] for path in scores.paths], dtype=int)
    paths, target, skipped = data.paths[kept], data.target[kept], scores.unreadable
    classes, proba = scores.classes, scores.proba
    predicted = classes[np.argmax(proba, axis=1)]
    n_trained_on = None
    features = _features_step(pipeline)
    if scores.content_keys is not None and features is not None:
        seen = features.fitted_on(scores.content_keys)
        n_trained_on = None if seen is None else int(seen.sum())
    if n_trained_on:
        warnings.warn(
            f"the model was trained on {n_trained_on} of the {len(paths)} evaluated images "
            "(same file content): the score overstates its accuracy on new images",
            UserWarning, stacklevel=2,
        )
    metrics = compute_metrics(target, predicted, proba, classes)
    metrics["n_trained_on"] = n_trained_on
    text = classification_text(target, predicted, classes)
    if report_dir is not None:
        metrics = add_provenance(metrics, pipeline, sizes={"evaluated": len(paths)})
        write_report_files(report_dir, metrics, paths, target, predicted, pipeline,
                           proba=proba, history_is_training=True)
        report_dir = Path(report_dir)
    return EvaluateResult(metrics=metrics, classification_report=text, report_dir=report_dir,
                          skipped=skipped, n_trained_on=n_trained_on)


def predict(model, inputs, *, progress=None, on_error="skip", weights=None):
    """Class probabilities of images with a saved model (``skanimal predict``).

    Parameters
    ----------
    model : path-like or fitted Pipeline
        A file saved by :func:`train` (loaded with :func:`load_model`), or a fitted
        skanimal pipeline. A ``.skanimal`` file whose backbone runs in OpenVINO and whose
        head is the default one loads without scikit-learn or TensorFlow
        (:func:`skanimal.persistence.load_for_inference`; same answers, a faster start).
    inputs : path-like or sequence of path-like
        Image files (used whatever their extension) and folders (searched recursively, see
        :func:`skanimal.datasets.collect_images`).
    progress : bool, optional
        Show a progress bar while extracting features; None leaves the model's setting.
    on_error : {"skip", "fail"}, default="skip"
        Images that cannot be read: ``"skip"`` predicts the others and lists them in
        ``PredictResult.skipped`` (one bad file among many should not hide the rest);
        ``"fail"`` raises one error naming every one of them.
    weights : path-like, optional
        The model's backbone weights file at its new place (the file, or a folder holding
        it), checked by content; see :meth:`skanimal.BottleneckFeatures.relocate_weights`.

    Returns
    -------
    PredictResult
        Use :meth:`PredictResult.top` for the most probable classes of each image.

    Raises
    ------
    SkanimalError
        For a missing input, a folder without images, a file that is not a skanimal model
        or an unreadable image.
    """
    on_error = check_on_error(on_error)
    paths = collect_images(inputs)  # before loading the model: a typo fails fast
    pipeline = _model_to_predict(model, weights)
    head = split_pipeline(pipeline)[1]
    if isinstance(pipeline, InferenceModel):
        novelty = head.novelty_
    else:
        from .novelty import novelty_of

        novelty = novelty_of(head)
    scores = _score(pipeline, paths, on_error, progress, features=novelty is not None)
    return PredictResult(paths=scores.paths, classes=scores.classes, proba=scores.proba,
                         skipped=scores.unreadable,
                         novelty=(None if novelty is None
                                  else novelty.novelty_score(scores.features)),
                         novelty_threshold=None if novelty is None else novelty.threshold_)


def _demo_weights(image_size, log):
    from .backbones import imagenet_available

    if imagenet_available(image_size=image_size):
        return "imagenet"
    _say(log, "Note: the ImageNet weights cannot be downloaded here and no copy is cached; "
              "using random weights (weights=None) instead, which is fine for this easy set.")
    return None


def demo(workdir=None, *, log=None):
    """The quick start on a generated image set, offline (``skanimal demo``).

    Generates a class-per-folder set of coloured shapes (:func:`skanimal.make_shapes`),
    trains on it with :func:`train`, then reloads the saved model and predicts a few test
    images with it. Uses the ImageNet weights when Keras has them and random weights (fine
    for this easy set) when they cannot be downloaded.

    Parameters
    ----------
    workdir : path-like, optional
        Keep the images (``shapes/``), the model (``shapes.joblib``) and a report
        (``report/``) here; by default a temporary folder, deleted afterwards (no report).
    log : callable, optional
        Called with one line of text at each step (e.g. ``print``).

    Returns
    -------
    DemoResult
    """
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="skanimal-demo-") as temporary:
            return _demo(Path(temporary), keep=False, log=log)
    return _demo(Path(workdir), keep=True, log=log)


def _demo(workdir, *, keep, log):
    from .datasets import make_shapes

    image_size = 64
    _say(log, f"Generating a class-per-folder set of coloured shapes in {workdir / 'shapes'}")
    make_shapes(workdir / "shapes", n_per_class=40, image_size=image_size)
    weights = _demo_weights((image_size, image_size), log)
    model_path = workdir / "shapes.joblib"
    trained = train(workdir / "shapes", model_path, val_size=0.1, test_size=0.25,
                    weights=weights, image_size=(image_size, image_size), epochs=30,
                    learning_rate=1e-3, random_state=0,
                    report_dir=workdir / "report" if keep else None, log=log)
    sample = list(trained.test.paths[:3])
    predicted = load_model(model_path).predict(sample)
    same = bool(np.array_equal(predicted, trained.pipeline.predict(sample)))
    return DemoResult(train=trained, workdir=workdir if keep else None, weights=weights,
                      sample=sample, predicted=predicted, same_predictions=same)
