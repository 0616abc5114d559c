"""Save and load fitted pipelines without pickle.

``joblib.dump``/``joblib.load`` is the scikit-learn way to persist a pipeline, but loading a
pickle runs whatever code the file says: only load pickles you made yourself. For models
shared with others, :func:`save` writes a single ``.skanimal`` file (a zip archive) holding

* ``skanimal.json`` — a JSON description of the pipeline: the class and parameters of each
  step, the head's classes and input width, the training history, the versions of skanimal,
  Keras and scikit-learn that made it, and the feature format;
* ``head.keras`` — the trained head in Keras' native format.

:func:`load` rebuilds the pipeline from those, with ``keras.saving.load_model(...,
safe_mode=True)``: nothing in the file is executed, and only skanimal's own estimators can be
named in it. The backbone is not stored: it is rebuilt from its name and weights, as after
``joblib.load``.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from ._version import __version__
from .cache import FEATURE_FORMAT_VERSION
from .exceptions import IncompatibleModelError
from .fileio import atomic_write, to_jsonable

__all__ = ["save", "load", "FILE_FORMAT", "FILE_FORMAT_VERSION"]

FILE_FORMAT = "skanimal-pipeline"
FILE_FORMAT_VERSION = 1
_DESCRIPTION = "skanimal.json"
_HEAD = "head.keras"

# Parameters of BottleneckFeatures stored in the description: all of them are plain values.
_FEATURE_PARAMS = ("backbone", "weights", "image_size", "pooling", "precision", "batch_size",
                   "cache", "n_jobs", "verbose")
# Parameters of BottleneckClassifier that can be stored as JSON; callables (a custom
# ``model``, callbacks, optimizer classes) cannot, and are not needed to predict.
_HEAD_PARAMS = ("hidden_layer_sizes", "dropout", "negative_slope", "learning_rate", "optimizer",
                "loss", "metrics", "epochs", "batch_size", "shuffle", "class_weight",
                "validation_split", "early_stopping", "n_iter_no_change", "scale_inputs",
                "random_state", "verbose", "warm_start")


def _steps(pipeline):
    from .augmentation import AugmentedClassifier
    from .classifier import BottleneckClassifier
    from .features import BottleneckFeatures

    if isinstance(pipeline, AugmentedClassifier):
        check_is_fitted(pipeline)
        pipeline = pipeline.estimator_  # augmentation only matters in fit
    kinds = [type(step) for _, step in getattr(pipeline, "steps", [])]
    if not isinstance(pipeline, Pipeline) or kinds != [BottleneckFeatures, BottleneckClassifier]:
        raise TypeError(
            "skanimal.save stores a fitted Pipeline of exactly BottleneckFeatures → "
            f"BottleneckClassifier, got {pipeline!r}. Use joblib.dump for other pipelines."
        )
    (features_name, features), (head_name, head) = pipeline.steps
    check_is_fitted(features)
    check_is_fitted(head)
    return features_name, features, head_name, head


def _head_params(head):
    params = {}
    for name in _HEAD_PARAMS:
        value = getattr(head, name)
        try:
            params[name] = to_jsonable(value)
        except TypeError:
            if name in ("optimizer", "loss", "metrics"):
                # Their effect is in the saved Keras model; the description needs no copy.
                continue
            raise TypeError(
                f"BottleneckClassifier parameter {name}={value!r} cannot be stored without "
                "pickle; use joblib.dump for this pipeline."
            ) from None
    return params


def save(pipeline, path):
    """Save a fitted skanimal pipeline in a pickle-free file.

    Parameters
    ----------
    pipeline : Pipeline or AugmentedClassifier
        A fitted ``make_pipeline(BottleneckFeatures(...), BottleneckClassifier(...))``
        (an :class:`~skanimal.AugmentedClassifier` is saved as its fitted pipeline).
    path : path-like
        File to write, conventionally ``*.skanimal``; missing parent folders are created.
        Written atomically (:func:`skanimal.fileio.atomic_write`: a temporary file, synced,
        then renamed, with normal permissions): a crash never leaves a half-written file
        under this name.

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    TypeError
        For anything else than such a pipeline, or a parameter JSON cannot hold.
    """
    import keras
    import sklearn

    features_name, features, head_name, head = _steps(pipeline)
    history = {key: [float(v) for v in values] for key, values in head.history_.items()}
    classes = np.asarray(head.classes_)
    description = {
        "format": FILE_FORMAT,
        "format_version": FILE_FORMAT_VERSION,
        "feature_format_version": features.feature_format_version_,
        "versions": {"skanimal": __version__, "keras": keras.__version__,
                     "scikit-learn": sklearn.__version__},
        "steps": [
            {"name": features_name, "class": "BottleneckFeatures",
             "params": {name: to_jsonable(getattr(features, name))
                        for name in _FEATURE_PARAMS},
             "feature_shape": list(features.feature_shape_)},
            {"name": head_name, "class": "BottleneckClassifier",
             "params": _head_params(head),
             "classes": classes.tolist(), "classes_dtype": classes.dtype.str,
             "n_features_in": int(head.n_features_in_), "history": history,
             "confidence_threshold": getattr(head, "confidence_threshold_", None)},
        ],
    }
    path = Path(path)
    # Keras writes its native format to a named ``.keras`` file: a scratch copy, outside
    # the destination folder, which only ever sees the finished archive.
    with tempfile.TemporaryDirectory(prefix="skanimal-save-") as tmp:
        head_file = Path(tmp) / _HEAD
        head.model_.save(head_file)
        with atomic_write(path) as handle, \
                zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(_DESCRIPTION, json.dumps(description, indent=2))
            zf.write(head_file, _HEAD)
    return path


def _read(path):
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if not {_DESCRIPTION, _HEAD} <= names:
                raise IncompatibleModelError(
                    f"{str(path)!r} is not a skanimal model file (it lacks {_DESCRIPTION} or "
                    f"{_HEAD}); was it written by joblib.dump? Then use joblib.load."
                )
            description = json.loads(zf.read(_DESCRIPTION).decode("utf-8"))
            head_bytes = zf.read(_HEAD)
    except (zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IncompatibleModelError(
            f"{str(path)!r} is not a skanimal model file: {exc}"
        ) from exc
    if not isinstance(description, dict) or description.get("format") != FILE_FORMAT:
        raise IncompatibleModelError(f"{str(path)!r} is not a skanimal model file.")
    made_with = description.get("versions", {}).get("skanimal", "an unknown version")
    if description.get("format_version") != FILE_FORMAT_VERSION:
        raise IncompatibleModelError(
            f"{str(path)!r} was written by skanimal {made_with} in file format "
            f"{description.get('format_version')!r}; this skanimal {__version__} reads format "
            f"{FILE_FORMAT_VERSION}."
        )
    if description.get("feature_format_version") != FEATURE_FORMAT_VERSION:
        raise IncompatibleModelError(
            f"{str(path)!r} was trained on image features of format "
            f"{description.get('feature_format_version')!r} (skanimal {made_with}); this "
            f"skanimal {__version__} computes format {FEATURE_FORMAT_VERSION}, so its head would "
            "predict garbage. Retrain the model."
        )
    return description, head_bytes


def _restore_head(spec, model):
    from .classifier import BottleneckClassifier

    classes = np.asarray(spec["classes"], dtype=np.dtype(spec["classes_dtype"]))
    head = BottleneckClassifier._from_trained_model(
        spec["params"], classes, int(spec["n_features_in"]), model, spec.get("history", {}))
    threshold = spec.get("confidence_threshold")
    head.confidence_threshold_ = None if threshold is None else float(threshold)
    return head


def load(path):
    """Load a pipeline written by :func:`save`, without unpickling anything.

    Parameters
    ----------
    path : path-like
        A file written by :func:`save`.

    Returns
    -------
    pipeline : Pipeline
        ``BottleneckFeatures`` → ``BottleneckClassifier``, fitted, ready to ``predict``.

    Raises
    ------
    IncompatibleModelError
        When the file is not a skanimal model, was written in another file format, or was
        trained on features this version of skanimal computes differently.
    """
    import keras

    from .features import BottleneckFeatures

    description, head_bytes = _read(path)
    try:
        features_spec, head_spec = description["steps"]
        if (features_spec["class"], head_spec["class"]) != ("BottleneckFeatures",
                                                           "BottleneckClassifier"):
            raise ValueError("unexpected step classes")
        features = BottleneckFeatures(**features_spec["params"])
        features._validate_params()
    except (KeyError, TypeError, ValueError) as exc:
        raise IncompatibleModelError(
            f"{str(path)!r} has an invalid pipeline description: {exc}"
        ) from exc
    # The backbone is rebuilt lazily on first transform, as after joblib.load.
    features._set_fitted(features_spec["feature_shape"], description["feature_format_version"],
                         description.get("versions", {}))
    with tempfile.TemporaryDirectory(prefix="skanimal-load-") as tmp:
        head_file = Path(tmp) / _HEAD
        head_file.write_bytes(head_bytes)
        try:
            model = keras.saving.load_model(head_file, safe_mode=True, compile=False)
        except Exception as exc:  # Keras raises many types for a bad or unsafe archive
            raise IncompatibleModelError(
                f"Keras could not load the head stored in {str(path)!r} with safe_mode=True: "
                f"{exc}"
            ) from exc
    head = _restore_head(head_spec, model)
    return Pipeline([(features_spec["name"], features), (head_spec["name"], head)])
