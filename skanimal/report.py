"""Evaluation reports: metrics, training curves, confusion matrix and misclassified images.

Everything here works on a fitted skanimal pipeline
(``make_pipeline(BottleneckFeatures(...), BottleneckClassifier(...))``) and image paths, and
builds on scikit-learn's metrics and :class:`~sklearn.metrics.ConfusionMatrixDisplay`.

Plots are drawn on :class:`matplotlib.figure.Figure` objects created directly, never through
``pyplot``: they need no GUI, leave the user's matplotlib backend and pyplot's list of open
figures alone, and are freed like any other object. Save one with ``fig.savefig("x.png")``;
Jupyter displays a returned Figure inline.

>>> from skanimal.report import classification_metrics, write_report  # doctest: +SKIP
>>> classification_metrics(pipe, X_test, y_test)["accuracy"]          # doctest: +SKIP
0.95
>>> write_report(pipe, X_test, y_test, "report/")                     # doctest: +SKIP
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import os
import textwrap
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .fileio import atomic_write, to_jsonable

__all__ = [
    "plot_history",
    "plot_confusion_matrix",
    "plot_misclassified",
    "classification_metrics",
    "evaluate",
    "write_report",
    "predict_with_proba",
    "unknown_labels",
    "compute_metrics",
    "classification_text",
    "add_provenance",
    "write_report_files",
    "REPORT_FILES",
    "write_predictions",
    "top_k_columns",
]

#: Files :func:`write_report` writes in its directory.
REPORT_FILES = (
    "metrics.json",
    "classification_report.txt",
    "confusion_matrix.png",
    "training_curves.png",
    "misclassified.png",
    "predictions.csv",
)

#: Resolution of the PNG files written by :func:`write_report`.
REPORT_DPI = 100


# ---------------------------------------------------------------------------------- helpers


def _new_figure(figsize):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def _message_figure(message, figsize=(5, 3)):
    """A figure that only says ``message`` (e.g. nothing to plot)."""
    fig = _new_figure(figsize)
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=13, wrap=True,
            transform=ax.transAxes)
    ax.set_axis_off()
    return fig


def _final_estimator(estimator):
    """The estimator that holds ``classes_``/``history_``: unwrap searches and pipelines."""
    if hasattr(estimator, "best_estimator_"):
        estimator = estimator.best_estimator_
    steps = getattr(estimator, "steps", None)
    if steps:
        estimator = steps[-1][1]
    return estimator


def _history_dict(history):
    """Return the Keras-style history dict of a classifier, a pipeline or a mapping."""
    if isinstance(history, Mapping):
        return dict(history)
    estimator = _final_estimator(history)
    for attribute in ("history_", "history"):
        value = getattr(estimator, attribute, None)
        # Keras' History callback (``model.history``) keeps its dict in ``.history``.
        if value is not None and not isinstance(value, Mapping):
            value = getattr(value, "history", None)
        if isinstance(value, Mapping):
            return dict(value)
    from sklearn.exceptions import NotFittedError

    raise NotFittedError(
        f"{type(history).__name__} has no training history: pass a fitted "
        "BottleneckClassifier, a fitted pipeline ending in one, or a history dict such as "
        "{'loss': [...], 'accuracy': [...]}."
    )


def _accuracy_key(history):
    for key in ("accuracy", "acc", "categorical_accuracy", "sparse_categorical_accuracy"):
        if key in history:
            return key
    for key in history:
        if not key.startswith("val_") and "acc" in key:
            return key
    return None


def _as_curve(values, key):
    curve = np.asarray(list(values), dtype=float).ravel()
    if curve.size == 0:
        raise ValueError(f"history[{key!r}] is empty: the model was not trained.")
    return curve


def _check_lengths(**arrays):
    lengths = {name: len(values) for name, values in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"Inconsistent numbers of samples: {lengths}.")


def _save_figure(fig, path):
    """Write ``fig`` as a PNG file, atomically (:func:`skanimal.fileio.atomic_write`)."""
    with atomic_write(path) as handle:
        fig.savefig(handle, format="png", dpi=REPORT_DPI)


# ------------------------------------------------------------------------------------ plots


def plot_history(history, ax=None, *, title=None):
    """Plot the loss and accuracy of each training epoch.

    Parameters
    ----------
    history : BottleneckClassifier, Pipeline or dict
        A fitted :class:`~skanimal.BottleneckClassifier` (its ``history_``), a fitted pipeline
        or search ending in one, or a Keras-style history dict (``{"loss": [...],
        "accuracy": [...], "val_loss": [...], "val_accuracy": [...]}``). Validation curves
        are drawn when ``val_`` keys exist (``BottleneckClassifier(validation_split=...)``).
    ax : sequence of two matplotlib Axes, optional
        The (loss, accuracy) axes to draw on. By default a new figure with two panels.
    title : str, optional
        A title over both panels, e.g. to say that the curves come from training.

    Returns
    -------
    fig : matplotlib.figure.Figure

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``history`` is an estimator without a training history.
    """
    from matplotlib.ticker import MaxNLocator

    history = _history_dict(history)
    if "loss" not in history:
        raise ValueError(f"history has no 'loss' key; keys are {sorted(history)}.")
    panels = [("loss", "Loss (cross-entropy)")]
    accuracy = _accuracy_key(history)
    if accuracy is not None:
        panels.append((accuracy, "Accuracy"))

    if ax is None:
        fig = _new_figure((10, 4))
        axes = fig.subplots(1, 2)
    else:
        axes = list(np.ravel(np.asarray(ax, dtype=object)))
        if len(axes) != 2:
            raise ValueError(f"ax must be a pair of Axes (loss, accuracy), got {len(axes)}.")
        fig = axes[0].figure

    for axis, (key, title) in zip(axes, panels):
        train = _as_curve(history[key], key)
        many = len(train) > 40
        epochs = np.arange(1, len(train) + 1)
        axis.plot(epochs, train, marker=None if many else "o", label="training")
        if f"val_{key}" in history:
            val = _as_curve(history[f"val_{key}"], f"val_{key}")
            axis.plot(np.arange(1, len(val) + 1), val, marker=None if many else "o",
                      label="validation")
        axis.set_title(title)
        axis.set_xlabel("Epoch")
        axis.set_ylabel(title.split(" ")[0])
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        if key == accuracy:
            axis.set_ylim(-0.02, 1.02)
        axis.grid(True, alpha=0.3)
        axis.legend()
    if len(panels) < 2:
        axes[1].text(0.5, 0.5, "no accuracy recorded", ha="center", va="center",
                     transform=axes[1].transAxes)
        axes[1].set_axis_off()
    if title is not None:
        fig.suptitle(title)
    return fig


def plot_confusion_matrix(y_true, y_pred, labels=None, normalize=None, ax=None):
    """Plot a confusion matrix with :meth:`sklearn.metrics.ConfusionMatrixDisplay.from_predictions`.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        True and predicted class names.
    labels : array-like, optional
        Classes to show, in order (e.g. ``pipeline.classes_``); by default those present in
        ``y_true`` or ``y_pred``, sorted.
    normalize : {"true", "pred", "all"}, optional
        Normalise counts over the true classes (rows), predicted classes (columns) or all.
    ax : matplotlib Axes, optional
        Axes to draw on; by default a new figure sized for the number of classes.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    from sklearn.metrics import ConfusionMatrixDisplay
    from sklearn.utils.multiclass import unique_labels

    _check_lengths(y_true=y_true, y_pred=y_pred)
    shown = list(labels) if labels is not None else list(unique_labels(y_true, y_pred))
    if ax is None:
        side = min(20.0, max(5.0, 0.6 * len(shown) + 2.5))
        fig = _new_figure((side + 1.0, side))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    long_names = max((len(str(label)) for label in shown), default=0) > 8
    ConfusionMatrixDisplay.from_predictions(
        y_true, y_pred, labels=labels, normalize=normalize, ax=ax, cmap="Blues",
        xticks_rotation=45 if long_names or len(shown) > 6 else "horizontal",
    )
    title = "Confusion matrix"
    if normalize is not None:
        title += f" (normalized over {normalize})"
    ax.set_title(title)
    return fig


def _thumbnail_pixels(item, size):
    """RGB uint8 thumbnail of a path or an image array, or None when it can't be read."""
    from .exceptions import ImageLoadError
    from .images import decode_image, read_image_bytes

    try:
        if isinstance(item, np.ndarray):
            from PIL import Image

            pixels = np.clip(np.asarray(item, dtype=float), 0, 255).astype(np.uint8)
            image = Image.fromarray(np.ascontiguousarray(pixels)).convert("RGB")
            return np.asarray(image.resize((size[1], size[0])))
        return decode_image(read_image_bytes(item), size, path=os.fspath(item))
    except (ImageLoadError, OSError, ValueError, TypeError):
        return None


def _wrapped_name(item, width=18):
    """The file's whole name, wrapped onto lines of ``width`` characters (never cut)."""
    if isinstance(item, np.ndarray):
        return ""
    name = os.path.basename(os.fspath(item))
    return "\n".join(textwrap.wrap(name, width, break_long_words=True,
                                   break_on_hyphens=False)) or name


def plot_misclassified(paths, y_true, y_pred, max_images=25, thumbnail=96, *, proba=None):
    """A contact sheet of the wrongly predicted images, titled "true / predicted".

    With ``proba``, the most confident mistakes come first and each title gives the
    probability of the predicted class.

    Parameters
    ----------
    paths : sequence of path-like, or ndarray of shape (n, h, w, 3)
        The images, in the same order as ``y_true`` and ``y_pred``.
    y_true, y_pred : array-like of shape (n_samples,)
        True and predicted class names.
    max_images : int, default=25
        Show at most this many misclassified images: the most confident mistakes with
        ``proba``, else the first ones in the order of ``paths``.
    thumbnail : int or (height, width), default=96
        Thumbnail size in pixels. Images are stretched to it, as the network sees them.
    proba : ndarray of shape (n_samples, n_classes), optional
        Predicted probabilities; the confidence of each prediction is its row's maximum.

    Returns
    -------
    fig : matplotlib.figure.Figure
        With a clear "No misclassified images" message when every prediction is right.
    """
    if isinstance(paths, np.ndarray) and paths.ndim == 4:
        items = paths
    else:
        items = list(paths)
    y_true = np.asarray(y_true, dtype=object)
    y_pred = np.asarray(y_pred, dtype=object)
    _check_lengths(paths=items, y_true=y_true, y_pred=y_pred)
    if int(max_images) < 1:
        raise ValueError(f"max_images must be at least 1, got {max_images!r}.")
    if isinstance(thumbnail, (int, np.integer)):
        size = (int(thumbnail), int(thumbnail))
    else:
        size = tuple(int(s) for s in thumbnail)
    wrong = np.flatnonzero(y_true != y_pred)
    if wrong.size == 0:
        return _message_figure(f"No misclassified images\n({len(y_true)} of {len(y_true)} "
                               "predicted correctly)")
    confidence = None
    if proba is not None:
        proba = np.asarray(proba, dtype=float)
        _check_lengths(paths=items, proba=proba)
        confidence = proba.max(axis=1)
        wrong = wrong[np.argsort(-confidence[wrong], kind="stable")]

    shown = wrong[: int(max_images)]
    n_cols = min(len(shown), max(5, math.ceil(math.sqrt(len(shown)))))
    n_rows = math.ceil(len(shown) / n_cols)
    tile = max(1.8, size[1] / 55)
    # Room under each thumbnail for a file name of up to three wrapped lines.
    fig = _new_figure((max(4.0, n_cols * tile), max(3.0, n_rows * (tile * size[0] / size[1]
                                                                    + 1.1) + 0.6)))
    order = "most confident first" if confidence is not None else "in file order"
    more = f", first {len(shown)} shown" if len(shown) < wrong.size else ""
    fig.suptitle(f"Misclassified: {wrong.size} of {len(y_true)} images{more}, {order}\n"
                 "(true / predicted" + (" and its probability)" if confidence is not None
                                        else ")"))
    axes = np.atleast_1d(fig.subplots(n_rows, n_cols, squeeze=False)).ravel()
    for axis in axes[len(shown):]:
        axis.set_axis_off()
    for axis, index in zip(axes, shown):
        pixels = _thumbnail_pixels(items[index], size)
        if pixels is None:
            axis.imshow(np.full((*size, 3), 200, dtype=np.uint8))
            axis.text(0.5, 0.5, "unreadable", ha="center", va="center",
                      transform=axis.transAxes, fontsize=8)
        else:
            axis.imshow(pixels)
        caption = f"{y_true[index]} / {y_pred[index]}"
        if confidence is not None:
            caption += f" {confidence[index]:.0%}"
        axis.set_title(caption, fontsize=9, color="darkred")
        axis.set_xlabel(_wrapped_name(items[index]), fontsize=7)
        axis.set_xticks([])
        axis.set_yticks([])
    return fig


# ---------------------------------------------------------------------------------- metrics


def predict_with_proba(estimator, X):
    """Class probabilities and predicted labels of a fitted classifier, in one pass.

    Parameters
    ----------
    estimator : fitted classifier
        Anything with ``predict_proba`` and ``classes_`` (a skanimal pipeline, its head).
    X : array-like
        What ``estimator`` predicts on: images for a pipeline, features for a head.

    Returns
    -------
    classes : ndarray of shape (n_classes,)
        ``estimator.classes_``, the column order of ``proba``.
    proba : ndarray of shape (n_samples, n_classes)
        ``estimator.predict_proba(X)``.
    y_pred : ndarray of shape (n_samples,)
        The most probable class of each sample (the ``argmax`` of ``proba``).
    """
    proba = np.asarray(estimator.predict_proba(X))
    classes = np.asarray(estimator.classes_)
    return classes, proba, classes[np.argmax(proba, axis=1)]


def unknown_labels(y_true, classes):
    """The labels of ``y_true`` that are not among ``classes``, sorted by their text.

    Labels are compared as they are, not as text: a model trained on ``0, 1`` does not know
    the folder names ``"0", "1"``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
    classes : array-like of shape (n_classes,)

    Returns
    -------
    list
        Empty when every label is known.
    """
    return sorted(set(np.asarray(y_true, dtype=object).tolist())
                  - set(np.asarray(classes).tolist()), key=str)


def _check_known_labels(y_true, classes):
    unknown = unknown_labels(y_true, classes)
    if unknown:
        raise ValueError(
            f"y holds classes the model was not trained on: {unknown}; the model knows "
            f"{classes.tolist()}."
        )


def compute_metrics(y_true, y_pred, proba, classes):
    """The metrics of :func:`classification_metrics` from predictions already made.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        True and predicted class names.
    proba : ndarray of shape (n_samples, n_classes)
        Predicted probabilities, columns in the order of ``classes``.
    classes : ndarray of shape (n_classes,)
        The model's classes (``classes_``).

    Returns
    -------
    metrics : dict
        As :func:`classification_metrics` returns it.

    Raises
    ------
    ValueError
        If the lengths differ or ``y_true`` holds a class not in ``classes``.
    """
    from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, log_loss

    y_true = np.asarray(y_true, dtype=object)
    classes = np.asarray(classes)
    _check_lengths(y_true=y_true, y_pred=y_pred, proba=proba)
    _check_known_labels(y_true, classes)
    report = classification_report(y_true, y_pred, labels=classes, output_dict=True,
                                   zero_division=0)

    def row(entry):
        return {"precision": entry["precision"], "recall": entry["recall"],
                "f1": entry["f1-score"], "support": int(entry["support"])}

    metrics = {
        "n_samples": len(y_true),
        "classes": classes.tolist(),
        "accuracy": accuracy_score(y_true, y_pred),
        "log_loss": log_loss(y_true, proba, labels=classes),
        "per_class": {str(c): row(report[str(c)]) for c in classes},
        "macro_avg": row(report["macro avg"]),
        "weighted_avg": row(report["weighted avg"]),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=classes).tolist(),
    }
    return to_jsonable(metrics)


def _predict(pipeline, X):
    """``(classes, proba, y_pred)`` of ``pipeline`` on ``X``: image files go through the one
    scoring engine (:func:`skanimal.scoring.score_images`, every unreadable file named in
    one error), arrays and other inputs straight to ``predict_proba``."""
    from sklearn.pipeline import Pipeline

    from .scoring import score_images

    model = getattr(pipeline, "best_estimator_", pipeline)
    if (isinstance(model, Pipeline) and len(model.steps) >= 2 and len(X)
            and not (isinstance(X, np.ndarray) and X.dtype != object)
            and all(isinstance(x, (str, os.PathLike)) for x in X)):
        scores = score_images(model, X, on_error="fail")
        return scores.classes, scores.proba, scores.classes[np.argmax(scores.proba, axis=1)]
    return predict_with_proba(pipeline, X)


def classification_metrics(pipeline, X, y):
    """Compute the usual classification metrics of a fitted pipeline on images ``X``.

    Parameters
    ----------
    pipeline : fitted classifier
        A fitted skanimal pipeline (or any classifier with ``predict_proba`` and
        ``classes_``).
    X : sequence of path-like or ndarray of shape (n, h, w, 3)
        Images.
    y : array-like of shape (n_samples,)
        True class names; all must be among ``pipeline.classes_``.

    Returns
    -------
    metrics : dict
        Plain JSON-serialisable values:

        - ``accuracy`` (:func:`~sklearn.metrics.accuracy_score`);
        - ``log_loss`` (:func:`~sklearn.metrics.log_loss` of ``predict_proba`` with
          ``labels=pipeline.classes_``);
        - ``per_class``: ``{class: {"precision", "recall", "f1", "support"}}`` and
          ``macro_avg``/``weighted_avg`` in the same form (from
          :func:`~sklearn.metrics.classification_report`, ``zero_division=0``);
        - ``classes`` (list of class names, the row/column order of
          ``confusion_matrix``) and ``confusion_matrix`` (list of lists, rows are true
          classes);
        - ``n_samples``.

    Raises
    ------
    ValueError
        If ``y`` holds a class the model does not know.

    Notes
    -----
    Predicted labels are the ``argmax`` of ``predict_proba``, computed once for all metrics.
    Image files go through :func:`skanimal.scoring.score_images`, as every command's do.
    """
    classes, proba, y_pred = _predict(pipeline, X)
    return compute_metrics(y, y_pred, proba, classes)


def evaluate(pipeline, X, y):
    """Deprecated: :func:`classification_metrics` (``skanimal.workflow.evaluate`` is the
    ``skanimal evaluate`` command, which takes a folder). Will be removed in the next
    release."""
    warnings.warn("skanimal.report.evaluate is deprecated and will be removed in the next "
                  "release: use skanimal.report.classification_metrics.", FutureWarning,
                  stacklevel=2)
    return classification_metrics(pipeline, X, y)


def _jsonable_or_repr(value):
    """:func:`~skanimal.fileio.to_jsonable`, with ``repr`` for the parts it refuses: a model
    description only informs a reader, and a callback object must not stop a report."""
    try:
        return to_jsonable(value)
    except TypeError:
        if isinstance(value, Mapping):
            return {str(k): _jsonable_or_repr(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [_jsonable_or_repr(v) for v in value]
        return repr(value)


def _describe_model(pipeline):
    """Name and parameters of each step, for metrics.json."""
    estimator = getattr(pipeline, "best_estimator_", pipeline)
    steps = getattr(estimator, "steps", None) or [(type(estimator).__name__.lower(), estimator)]
    description = {}
    for name, step in steps:
        params = {}
        if hasattr(step, "get_params"):
            params = {key: value for key, value in step.get_params(deep=False).items()
                      if value is None or isinstance(value, (str, int, float, bool, tuple,
                                                             list, os.PathLike))}
        description[name] = {"class": type(step).__name__, "params": params}
    return _jsonable_or_repr(description)


def classification_text(y_true, y_pred, classes):
    """scikit-learn's per-class text report, as ``skanimal evaluate`` prints it.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        True and predicted class names.
    classes : array-like of shape (n_classes,)
        The rows of the report, in order.

    Returns
    -------
    str
        :func:`~sklearn.metrics.classification_report` with 3 digits (``zero_division=0``).
    """
    from sklearn.metrics import classification_report

    return classification_report(np.asarray(y_true, dtype=object), y_pred, labels=classes,
                                 digits=3, zero_division=0)


def top_k_columns(k):
    """The column names of ``k`` ranked classes, as every skanimal CSV names them.

    Parameters
    ----------
    k : int

    Returns
    -------
    list of str
        ``["label_1", "probability_1", ..., "label_<k>", "probability_<k>"]``: the most
        probable class first.
    """
    return [name for rank in range(1, int(k) + 1)
            for name in (f"label_{rank}", f"probability_{rank}")]


def write_predictions(path, X, y_true, proba, classes, *, top_k=3, alternatives="deprecated"):
    """Write one CSV row per image: what it is, whether the model got it right, its ranked
    classes.

    Columns: ``path``, ``true``, ``correct`` (whether ``label_1`` is ``true``), then
    ``label_<i>`` and ``probability_<i>`` for the ``top_k`` most probable classes, best
    first (:func:`top_k_columns`, the scheme of every CSV skanimal
    writes). Written atomically (:func:`skanimal.fileio.atomic_write`).

    Parameters
    ----------
    path : path-like
        The CSV file to write.
    X : sequence of path-like or ndarray of shape (n, h, w, 3)
        The images (array rows are named ``row <i>``).
    y_true : array-like of shape (n_samples,)
        Their true class names.
    proba : ndarray of shape (n_samples, n_classes)
        Predicted probabilities, columns in the order of ``classes``.
    classes : array-like of shape (n_classes,)
    top_k : int, default=3
        How many ranked classes to list (fewer when there are fewer classes).
    alternatives : int
        Deprecated: the number of runner-up classes, ``top_k - 1``. Will be removed in the
        next release.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    if alternatives != "deprecated":
        warnings.warn("write_predictions(alternatives=n) is deprecated and will be removed in "
                      "the next release: use top_k=n + 1.", FutureWarning, stacklevel=2)
        top_k = int(alternatives) + 1
    proba = np.asarray(proba, dtype=float)
    classes = np.asarray(classes)
    y_true = np.asarray(y_true, dtype=object)
    _check_lengths(X=X, y_true=y_true, proba=proba)
    k = max(1, min(int(top_k), len(classes)))
    order = np.argsort(-proba, axis=1, kind="stable")
    with atomic_write(path, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["path", "true", "correct", *top_k_columns(k)])
        for i, ranked in enumerate(order):
            item = X[i]
            name = f"row {i}" if isinstance(item, np.ndarray) else os.fspath(item)
            row = [name, y_true[i], str(bool(classes[ranked[0]] == y_true[i])).lower()]
            for j in ranked[:k]:
                row += [classes[j], f"{proba[i, j]:.6f}"]
            writer.writerow(row)
    return Path(path)


def write_report_files(report_dir, metrics, X, y_true, y_pred, history_source, *, proba=None,
                       history_is_training=False):
    """Write the files of :func:`write_report` from metrics and predictions already made.

    Every file is written atomically (:func:`skanimal.fileio.atomic_write`);
    ``metrics.json`` last.

    Parameters
    ----------
    report_dir : path-like
        Directory to write to (created if needed); existing report files are overwritten.
    metrics : dict
        :func:`add_provenance`'s dict (written as ``metrics.json``).
    X : sequence of path-like or ndarray of shape (n, h, w, 3)
        The evaluated images (for ``misclassified.png``).
    y_true, y_pred : array-like of shape (n_samples,)
        Their true and predicted class names.
    history_source : estimator or dict
        What :func:`plot_history` draws (a note when it has no history).
    proba : ndarray of shape (n_samples, n_classes), optional
        Predicted probabilities (columns in the order of ``metrics["classes"]``): for
        ``predictions.csv`` and to show the most confident mistakes first.
    history_is_training : bool, default=False
        Title the curves as the model's training history, for a report on other images
        than it was trained and validated on (``skanimal evaluate``).

    Returns
    -------
    pathlib.Path
        ``report_dir``.
    """
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    classes = metrics["classes"]
    text = classification_text(y_true, y_pred, classes)
    with atomic_write(report_dir / "classification_report.txt", "w") as handle:
        handle.write(f"Accuracy: {metrics['accuracy']:.4f}\n"
                     f"Log loss: {metrics['log_loss']:.4f}\n"
                     f"Images:   {metrics['n_samples']}\n\n{text}")

    _save_figure(plot_confusion_matrix(y_true, y_pred, labels=classes),
                 report_dir / "confusion_matrix.png")
    title = ("Training history of this model: recorded while it was trained, not measured "
             "on the evaluated images" if history_is_training else None)
    try:
        fig = plot_history(history_source, title=title)
    except ValueError:  # NotFittedError included: nothing to draw
        fig = _message_figure("No training history available\n"
                              f"({type(_final_estimator(history_source)).__name__} "
                              "has no history_)")
    _save_figure(fig, report_dir / "training_curves.png")
    _save_figure(plot_misclassified(X, y_true, y_pred, proba=proba),
                 report_dir / "misclassified.png")
    if proba is None:  # the probabilities are not known here: compute them no more
        proba = np.asarray([[float(label == c) for c in classes] for label in y_pred])
    write_predictions(report_dir / "predictions.csv", X, y_true, proba, classes)

    # ensure_ascii=False keeps class names readable; fileio.write_json would escape them.
    text = json.dumps(to_jsonable(metrics), indent=2, ensure_ascii=False, allow_nan=False)
    with atomic_write(report_dir / "metrics.json", "w") as handle:
        handle.write(text + "\n")
    return report_dir


def write_report(pipeline, X_test, y_test, report_dir, *, sizes=None, timings=None):
    """Evaluate a fitted pipeline on held-out images and write a report directory.

    Files written in ``report_dir`` (created if needed), each atomically:

    - ``metrics.json``: everything :func:`classification_metrics` returns, plus ``sizes``,
      ``timings``, ``model`` (each step's class and simple parameters),
      ``skanimal_version``, ``created`` (UTC, ISO 8601) and ``files``;
    - ``classification_report.txt``: accuracy, log loss and scikit-learn's
      :func:`~sklearn.metrics.classification_report`;
    - ``confusion_matrix.png``: :func:`plot_confusion_matrix` over ``pipeline.classes_``;
    - ``training_curves.png``: :func:`plot_history` of the classifier (a short note when the
      model has no training history);
    - ``misclassified.png``: :func:`plot_misclassified`.

    Parameters
    ----------
    pipeline : fitted classifier
        A fitted skanimal pipeline.
    X_test : sequence of path-like or ndarray of shape (n, h, w, 3)
        Held-out images.
    y_test : array-like of shape (n_samples,)
        Their true class names.
    report_dir : path-like
        Directory to write to; existing report files are overwritten.
    sizes : dict, optional
        Data set sizes to record, e.g. ``{"train": 800, "val": 100, "test": 100}``;
        defaults to ``{"test": len(y_test)}``.
    timings : dict, optional
        Durations in seconds to record, e.g. ``{"extract_s": 12.3, "fit_s": 4.5}``.

    Returns
    -------
    metrics : dict
        The content of ``metrics.json``.
    """
    classes, proba, y_pred = _predict(pipeline, X_test)
    metrics = compute_metrics(y_test, y_pred, proba, classes)
    metrics = add_provenance(metrics, pipeline, sizes=sizes, timings=timings)
    write_report_files(report_dir, metrics, X_test, y_test, y_pred, pipeline, proba=proba)
    return metrics


def add_provenance(metrics, pipeline, *, sizes=None, timings=None):
    """:func:`classification_metrics`' metrics plus the provenance entries of ``metrics.json``.

    Parameters
    ----------
    metrics : dict
        As :func:`classification_metrics` or :func:`compute_metrics` return it.
    pipeline : estimator
        The evaluated model (its steps and simple parameters are recorded).
    sizes : dict, optional
        Data set sizes; defaults to ``{"test": metrics["n_samples"]}``.
    timings : dict, optional
        Durations in seconds.

    Returns
    -------
    dict
        A new dict: ``skanimal_version``, ``created`` (UTC, ISO 8601), the metrics,
        ``sizes``, ``timings``, ``model`` and ``files`` (``REPORT_FILES``).
    """
    from ._version import __version__

    return to_jsonable({
        "skanimal_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **metrics,
        "sizes": dict(sizes) if sizes is not None else {"test": metrics["n_samples"]},
        "timings": dict(timings or {}),
        "model": _describe_model(pipeline),
        "files": list(REPORT_FILES),
    })
