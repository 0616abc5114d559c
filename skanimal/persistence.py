"""Save and load fitted pipelines without pickle.

``joblib.dump``/``joblib.load`` is the scikit-learn way to persist a pipeline, but loading a
pickle runs whatever code the file says: only load pickles you made yourself. For models
shared with others, :func:`save` writes a single ``.skanimal`` file (a zip archive) holding

* ``skanimal.json`` — a JSON description of the pipeline: the class and parameters of each
  step, the head's classes and input width, the training history, the versions of skanimal,
  Keras and scikit-learn that made it, and the feature format;
* ``head.keras`` — the trained head in Keras' native format, without the optimizer's state
  (which only resuming training would need; it would double the file);
* ``int8_model.xml`` and ``int8_model.bin`` — only for ``precision="int8"``: the quantized
  backbone as OpenVINO IR, which (unlike the float backbone) cannot be rebuilt from its
  name: it depends on the images ``fit`` calibrated on. Reading IR runs no code either;
* ``openvino_model.xml`` and ``openvino_model.bin`` — only for ``engine="openvino"``: the
  float32 backbone as OpenVINO converted it at ``fit``, so predicting needs no TensorFlow;
* ``weights.h5`` — with ``save(..., include_weights=True)`` only: the backbone's weights
  file, for sharing a model trained on weights the receiver does not have.

:func:`load` rebuilds the pipeline from those, with ``keras.saving.load_model(...,
safe_mode=True)``: nothing in the file is executed, and only skanimal's own estimators can be
named in it. The backbone is not stored: it is rebuilt from its name and weights, as after
``joblib.load``; a weights file is recorded by its content hash, so ``load(...,
weights=new_place)`` can point at it after a move, checked.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ._version import __version__
from .backbones import BACKBONES
from .cache import FEATURE_FORMAT_VERSION
from .calibration import ConfidenceBasis
from .compat import pack_model
from .cosine import MAX_REFERENCE_VALUES
from .exceptions import IncompatibleModelError, WeightsUnavailableError
from .fileio import atomic_write, to_jsonable
from .untrusted import MiB, open_zip, parse_json
from .weights import find_weights_file, keras_models_dir

__all__ = ["save", "load", "load_for_inference", "FILE_FORMAT", "FILE_FORMAT_VERSION"]

FILE_FORMAT = "skanimal-pipeline"
FILE_FORMAT_VERSION = 1
_DESCRIPTION = "skanimal.json"
_HEAD = "head.keras"
_WEIGHTS = "weights.h5"

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
    from sklearn.pipeline import Pipeline
    from sklearn.utils.validation import check_is_fitted

    from .augmentation import AugmentedClassifier
    from .classifier import BottleneckClassifier
    from .features import BottleneckFeatures

    if isinstance(pipeline, AugmentedClassifier):
        check_is_fitted(pipeline)
        pipeline = pipeline.estimator_  # augmentation only matters in fit
    expected = "a fitted Pipeline of exactly BottleneckFeatures → BottleneckClassifier"
    if not isinstance(pipeline, Pipeline):
        raise TypeError(f"skanimal.save stores {expected}, got a {type(pipeline).__name__}; "
                        "use joblib.dump for anything else.")
    for position, (name, step) in enumerate(pipeline.steps):
        wanted = (BottleneckFeatures, BottleneckClassifier)[position] if position < 2 else None
        if type(step) is not wanted:
            raise TypeError(f"skanimal.save stores {expected}; step {name!r} is a "
                            f"{type(step).__name__}: use joblib.dump for this pipeline.")
    if len(pipeline.steps) != 2:
        raise TypeError(f"skanimal.save stores {expected}; this pipeline has "
                        f"{len(pipeline.steps)} step(s): use joblib.dump for it.")
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


def _tuple_params(params):
    """Names of the parameters that are tuples: JSON has only lists, and :func:`load` gives
    back what was saved."""
    return sorted(name for name, value in params.items() if isinstance(value, tuple))


def _untuple(params, names):
    return {name: tuple(value) if name in names and isinstance(value, list) else value
            for name, value in params.items()}


def save(pipeline, path, *, include_weights=False):
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
    include_weights : bool, default=False
        Also store the backbone's weights file (when ``weights`` is a file, not
        ``"imagenet"`` or None), so that whoever receives the model needs nothing else.
        It adds the file's size (9 MB for MobileNetV2, 58 MB for VGG16); without it,
        the receiver passes their copy with ``load(..., weights=...)``.

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    TypeError
        For anything else than such a pipeline (naming the step that is not), or a
        parameter JSON cannot hold.
    """
    import keras
    import sklearn

    features_name, features, head_name, head = _steps(pipeline)
    history = {key: [float(v) for v in values] for key, values in head.history_.items()}
    classes = np.asarray(head.classes_)
    feature_params = {name: getattr(features, name) for name in _FEATURE_PARAMS}
    if getattr(features, "engine", "tensorflow") != "tensorflow":
        # Only when not the default: files of TensorFlow models stay readable by skanimal
        # versions without the parameter.
        feature_params["engine"] = features.engine
    head_params = {name: getattr(head, name) for name in _HEAD_PARAMS}
    weights_file = features.weights_file() if include_weights else None
    description = {
        "format": FILE_FORMAT,
        "format_version": FILE_FORMAT_VERSION,
        "feature_format_version": features.feature_format_version_,
        "versions": {"skanimal": __version__, "keras": keras.__version__,
                     "scikit-learn": sklearn.__version__},
        "steps": [
            {"name": features_name, "class": "BottleneckFeatures",
             "params": {name: to_jsonable(value) for name, value in feature_params.items()},
             "tuple_params": _tuple_params(feature_params),
             "feature_shape": list(features.feature_shape_),
             "weights_identity": getattr(features, "weights_identity_", None),
             "weights_included": weights_file is not None,
             "training_hashes": _hex_list(getattr(features, "training_hashes_", None))},
            {"name": head_name, "class": "BottleneckClassifier",
             "params": _head_params(head),
             "tuple_params": _tuple_params(head_params),
             "classes": classes.tolist(), "classes_dtype": classes.dtype.str,
             "n_features_in": int(head.n_features_in_), "history": history,
             "confidence_threshold": getattr(head, "confidence_threshold_", None),
             "confidence_basis": _basis_dict(head), "novelty": _novelty_spec(head)},
        ],
    }
    int8_files = {}
    if features.precision == "int8" or getattr(features, "engine", None) == "openvino":
        quantized = (getattr(features, "openvino_backbone_", None)
                     or features.quantized_backbone_)  # int8 pickled before the former
        int8_files = quantized.files()
        description["steps"][0][quantized.file_stem] = {
            "files": sorted(int8_files), "sha256": quantized.digest, "recipe": quantized.recipe}
    path = Path(path)
    head_bytes = pack_model(head.model_, optimizer_state=False)
    text = json.dumps(description, indent=2)
    # Never write a file load() would refuse (its limits: _read).
    for what, size, limit in (("description", len(text.encode()), _MAX_DESCRIPTION_BYTES),
                              ("head", len(head_bytes), _head_limit(description["steps"][1]))):
        if size > limit:
            raise ValueError(f"skanimal.save: this pipeline's {what} takes {size:,} bytes, more "
                             f"than a .skanimal file holds ({limit:,}); use joblib.dump.")
    with atomic_write(path) as handle, \
            zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(_DESCRIPTION, text)
        zf.writestr(_HEAD, head_bytes)
        for name, data in int8_files.items():
            zf.writestr(name, data)
        if getattr(head, "novelty_", None) is not None:
            zf.writestr(_NOVELTY, _novelty_bytes(head.novelty_))
        if weights_file is not None:
            zf.write(weights_file, _WEIGHTS)
    return path


def _hex_list(prefixes):
    return None if prefixes is None else [f"{int(p):016x}" for p in prefixes]


# --- limits of what load() reads: a .skanimal file may come from anyone ------------------
# Every size below is derived from what save() writes, so a real model always fits.

def _weights_file_limit(n_values):
    """Largest file holding ``n_values`` float32 weights: 4 bytes each, plus the HDF5 (or
    OpenVINO IR) bookkeeping, measured at 4.6 % for MobileNetV2's 9,449,296-byte file of
    2,257,984 values (of the registered backbones, the one with the most layers per weight);
    a quarter more and 1 MiB bound it for any of them."""
    return int(n_values * 4 * 1.25) + MiB


#: The largest registered backbone's weights file (ResNet50's 23.6 M values: 119 MB; Keras'
#: own ResNet50 file is 94.8 MB, its VGG19 one 80.1 MB): an embedded weights
#: file or an int8 IR's weights is bounded by its backbone's; a head larger than the largest
#: backbone is no head skanimal trains (save() refuses to write one).
_MAX_BACKBONE_BYTES = _weights_file_limit(max(spec.n_weights for spec in BACKBONES.values()))
#: The description grows with the training set (its content keys: 26 bytes a photo) and the
#: history (about 20 bytes an epoch and metric): 16 MiB is 600,000 training photos.
_MAX_DESCRIPTION_BYTES = 16 * MiB
#: The int8 IR's graph (XML text: a few kB a layer; the registered backbones have at most
#: a few hundred layers, and quantization adds about as many).
_MAX_IR_XML_BYTES = 16 * MiB
#: save() writes at most five members; the rest of the room is for members skanimal does
#: not know (ignored: see _read), whose names are short.
_MAX_MEMBERS = 64
_MAX_DIRECTORY_BYTES = _MAX_MEMBERS * 1024
#: Each member's limit before the description is read; the head's and the weights' are
#: then narrowed to what the described head and backbone can weigh.
#: The novelty score's training features (skanimal.novelty): at most MAX_REFERENCE_VALUES
#: float32 values, plus a score per sample and the .npz bookkeeping.
_NOVELTY = "novelty.npz"
_MAX_NOVELTY_BYTES = _weights_file_limit(MAX_REFERENCE_VALUES * 3 // 2)
_MEMBER_LIMITS = {_DESCRIPTION: _MAX_DESCRIPTION_BYTES, _HEAD: _MAX_BACKBONE_BYTES,
                  _WEIGHTS: _MAX_BACKBONE_BYTES, "int8_model.xml": _MAX_IR_XML_BYTES,
                  "int8_model.bin": _MAX_BACKBONE_BYTES, "openvino_model.xml": _MAX_IR_XML_BYTES,
                  "openvino_model.bin": _MAX_BACKBONE_BYTES, _NOVELTY: _MAX_NOVELTY_BYTES}
_MAX_TOTAL_BYTES = (_MAX_DESCRIPTION_BYTES + _MAX_IR_XML_BYTES + 3 * _MAX_BACKBONE_BYTES
                    + _MAX_NOVELTY_BYTES)


def _novelty_limit(spec):
    """Largest ``novelty.npz`` of the description's head: its kept training features (at
    most ``max_samples`` rows of ``n_features_in`` float32) and their scores."""
    try:
        params = spec["novelty"]["params"]
        rows = min(int(params["max_samples"]),
                   MAX_REFERENCE_VALUES // max(int(spec["n_features_in"]), 1) + 1)
        values = rows * (int(spec["n_features_in"]) + 2)
    except (AttributeError, KeyError, TypeError, ValueError, OverflowError):
        return _MAX_NOVELTY_BYTES
    return min(_weights_file_limit(values), _MAX_NOVELTY_BYTES)


def _head_limit(spec):
    """Largest ``head.keras`` the description's head can take: its weights (Dense kernels and
    biases, the input scaling's mean and variance) as float32, plus bookkeeping, as for a
    weights file; never more than the largest backbone's weights."""
    try:
        sizes = spec["params"].get("hidden_layer_sizes") or ()
        sizes = [int(sizes)] if isinstance(sizes, (int, float)) else [int(n) for n in sizes]
        widths = [int(spec["n_features_in"]), *sizes, len(spec["classes"])]
        if min(widths) < 1:
            raise ValueError
    except (AttributeError, KeyError, TypeError, ValueError, OverflowError):
        return _MAX_BACKBONE_BYTES  # the description is checked, and refused, later
    values = 3 * widths[0] + sum((a + 1) * b for a, b in zip(widths, widths[1:]))
    return min(_weights_file_limit(values), _MAX_BACKBONE_BYTES)


def _backbone_limit(spec):
    """Largest weights file (or int8 IR weights) of the description's backbone."""
    try:
        backbone = BACKBONES[str(spec["params"]["backbone"]).lower()]
    except (KeyError, TypeError, AttributeError):
        return _MAX_BACKBONE_BYTES
    return _weights_file_limit(backbone.n_weights)


def _steps_of(description):
    steps = description.get("steps") if isinstance(description, dict) else None
    if isinstance(steps, list) and len(steps) == 2 and all(isinstance(s, dict) for s in steps):
        return steps
    return {}, {}


def _read(path, folder, *, want_weights):
    """Check ``path``'s archive and read what load() needs: the description, the head
    (copied to ``folder``), the int8 IR, and the embedded weights when ``want_weights``
    (copied to ``folder``, named by the SHA-256 recomputed from its bytes).

    Members skanimal does not know are ignored: never read, never written anywhere; they
    count against the member and size limits, so they cost nothing to skip. (Refusing them
    would buy nothing more, and lets a file with, say, a README added still load.)
    """
    path = Path(path)
    with open_zip(path, max_members=_MAX_MEMBERS, max_directory=_MAX_DIRECTORY_BYTES,
                  max_total=_MAX_TOTAL_BYTES, limits=_MEMBER_LIMITS,
                  what="skanimal model file", error=IncompatibleModelError) as archive:
        if not {_DESCRIPTION, _HEAD} <= set(archive.members):
            raise IncompatibleModelError(
                f"{str(path)!r} is not a skanimal model file (it lacks {_DESCRIPTION} or "
                f"{_HEAD}); was it written by joblib.dump? Then use joblib.load."
            )
        description = parse_json(archive.read(_DESCRIPTION, _MAX_DESCRIPTION_BYTES), path,
                                  what="skanimal model description",
                                  error=IncompatibleModelError)
        _check_description(path, description)
        features_spec, head_spec = _steps_of(description)
        head_file = Path(folder) / _HEAD
        with open(head_file, "xb") as handle:
            archive.copy(_HEAD, _head_limit(head_spec), handle)
        # The one IR the description names (int8's, or engine="openvino"'s float32 one).
        stem = "openvino_model" if "openvino_model" in features_spec else "int8_model"
        ir_limits = {f"{stem}.xml": _MAX_IR_XML_BYTES,
                     f"{stem}.bin": _backbone_limit(features_spec)}
        int8_files = {name: archive.read(name, limit) for name, limit in ir_limits.items()
                      if name in archive.members}
        weights_file = None
        if want_weights and _WEIGHTS in archive.members:
            staged = Path(folder) / _WEIGHTS
            with open(staged, "xb") as handle:
                digest = archive.copy(_WEIGHTS, _backbone_limit(features_spec), handle)
            weights_file = Path(folder) / f"skanimal-{digest[:16]}.weights.h5"
            staged.rename(weights_file)
        novelty_bytes = (archive.read(_NOVELTY, _novelty_limit(head_spec))
                         if _NOVELTY in archive.members else None)
    # head.keras is itself a zip, which Keras reads without limits: check it the same way.
    with open_zip(head_file, max_members=16, max_directory=16 * 1024,
                  max_total=_head_limit(head_spec), what="Keras head",
                  error=IncompatibleModelError, shown=f"{str(path)!r}: its {_HEAD}"):
        pass
    return description, head_file, int8_files, weights_file, novelty_bytes


def _check_description(path, description):
    if not isinstance(description, dict) or description.get("format") != FILE_FORMAT:
        raise IncompatibleModelError(f"{str(path)!r} is not a skanimal model file.")
    versions = description.get("versions")
    made_with = (versions.get("skanimal", "an unknown version") if isinstance(versions, dict)
                 else "an unknown version")
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


def _restore_head(path, spec, head_bytes):
    """The fitted head of ``spec`` and the ``head.keras`` bytes: the default head predicts in
    NumPy, read from the archive without Keras (so an int8 model loads and predicts without
    TensorFlow); any other head is loaded by Keras, in safe mode."""
    from .classifier import BottleneckClassifier

    classes = np.asarray(spec["classes"], dtype=np.dtype(spec["classes_dtype"]))
    params = _untuple(spec["params"], spec.get("tuple_params", ()))
    arguments = dict(classes=classes, n_features_in=int(spec["n_features_in"]), params=params,
                     history=spec.get("history", {}))
    try:
        head = BottleneckClassifier.from_saved_model(head_bytes, **arguments)
    except (KeyError, TypeError, ValueError, OSError, zipfile.BadZipFile) as exc:
        raise IncompatibleModelError(
            f"the head stored in {str(path)!r} cannot be read: {exc}"
        ) from exc
    if head is None:  # not the default head: Keras loads it
        import keras

        with tempfile.TemporaryDirectory(prefix="skanimal-load-") as tmp:
            head_file = Path(tmp) / _HEAD
            head_file.write_bytes(head_bytes)
            try:
                model = keras.saving.load_model(head_file, safe_mode=True, compile=False)
            except Exception as exc:  # Keras raises many types for a bad or unsafe archive
                raise IncompatibleModelError(
                    f"Keras could not load the head stored in {str(path)!r} with "
                    f"safe_mode=True: {exc}"
                ) from exc
        head = BottleneckClassifier.from_trained_model(model, **arguments)
    threshold = spec.get("confidence_threshold")
    head.confidence_threshold_ = None if threshold is None else float(threshold)
    basis = spec.get("confidence_basis")
    head.confidence_basis_ = None if basis is None else ConfidenceBasis.from_dict(basis)
    return head




def _basis_dict(head):
    basis = getattr(head, "confidence_basis_", None)
    return None if basis is None else basis.to_dict()


def _novelty_spec(head):
    novelty = getattr(head, "novelty_", None)
    return None if novelty is None else {"params": novelty.get_params(), "file": _NOVELTY}


def _novelty_bytes(novelty):
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **novelty.to_arrays())
    return buffer.getvalue()


def _novelty_arrays(path, spec, data):
    """The novelty score's arrays (``FeatureNovelty.to_arrays``) and parameters from the
    archive's (size-capped) member ``data``, or None for a model saved without one."""
    import io

    info = spec.get("novelty")
    if info is None:
        return None
    if data is None:
        raise IncompatibleModelError(f"{str(path)!r} describes a novelty score but lacks "
                                     f"{_NOVELTY}.")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            loaded = {name: arrays[name] for name in ("reference", "train_scores", "threshold")}
        return loaded, dict(info["params"])
    except (KeyError, TypeError, ValueError, OSError, zipfile.BadZipFile) as exc:
        raise IncompatibleModelError(
            f"{str(path)!r} has an invalid novelty score ({_NOVELTY}): {exc}") from exc


def _restore_novelty(path, spec, data):
    """The head's :class:`~skanimal.novelty.FeatureNovelty` (see :func:`_novelty_arrays`)."""
    from .novelty import FeatureNovelty

    saved = _novelty_arrays(path, spec, data)
    if saved is None:
        return None
    try:
        return FeatureNovelty.from_arrays(*saved)
    except (TypeError, ValueError) as exc:
        raise IncompatibleModelError(
            f"{str(path)!r} has an invalid novelty score ({_NOVELTY}): {exc}") from exc


def _restore_int8(path, spec, files, stem="int8_model"):
    from .openvino_engine import Int8Backbone

    what = "an int8 model without its quantized" if stem == "int8_model" else (
        "an engine='openvino' model without its OpenVINO")
    try:
        info = spec[stem]
        quantized = Int8Backbone.from_files(files, spec["feature_shape"], info.get("recipe"))
        if quantized.file_stem != stem:
            raise ValueError(f"its recipe is not a {stem} one")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise IncompatibleModelError(
            f"{str(path)!r} is {what} backbone ({stem}.xml/.bin): {exc}"
        ) from exc
    if quantized.digest != info.get("sha256"):
        raise IncompatibleModelError(
            f"{str(path)!r}: the stored OpenVINO backbone ({stem}.xml/.bin) does not match "
            "its checksum; the file is damaged."
        )
    return quantized


def _unpack_weights(path, features, identity, staged):
    """Use the embedded weights (``staged``: a copy named by the SHA-256 of its bytes): a file
    with their content already here, else a copy in Keras' models folder (where skanimal
    looks for moved weights files too), under that name."""
    try:
        features.weights_file()  # where it was saved from, or found by content
        return
    except WeightsUnavailableError:
        pass
    digest = staged.name.removeprefix("skanimal-").removesuffix(".weights.h5")
    if not str(identity).removeprefix("sha256:").startswith(digest):
        raise IncompatibleModelError(
            f"{str(path)!r}: the embedded weights file does not match the checksum recorded "
            "with the model; the file is damaged."
        )
    found = find_weights_file(identity)
    if found is None:
        found = os.path.join(keras_models_dir(), staged.name)
        with open(staged, "rb") as source, atomic_write(found) as handle:
            shutil.copyfileobj(source, handle, MiB)
    features.relocate_weights(found)


def load(path, *, weights=None):
    """Load a pipeline written by :func:`save`, without unpickling anything.

    Parameters
    ----------
    path : path-like
        A file written by :func:`save`.
    weights : path-like, optional
        The backbone's weights file at its new place (the file, or a folder holding it),
        checked by content (:meth:`~skanimal.BottleneckFeatures.relocate_weights`). Not
        needed when the file is still where it was when saved, was moved beside that place
        or into Keras' cache folder, or is in the model file (``include_weights=True``; it
        is then copied into Keras' models folder, ``~/.keras/models``, once).

    Returns
    -------
    pipeline : Pipeline
        ``BottleneckFeatures`` → ``BottleneckClassifier``, fitted, ready to ``predict``.

    Raises
    ------
    IncompatibleModelError
        When the file is not a skanimal model, was written in another file format, or was
        trained on features this version of skanimal computes differently.
    WeightsUnavailableError
        When ``weights`` is not the weights file the model was made with.
    """
    with tempfile.TemporaryDirectory(prefix="skanimal-load-") as tmp:
        # The archive is checked and read before scikit-learn or Keras is even imported: a
        # refused file costs well under a second.
        description, head_file, int8_files, weights_file, novelty_bytes = _read(
            path, tmp, want_weights=weights is None)
        from sklearn.pipeline import Pipeline

        from .features import BottleneckFeatures

        try:
            features_spec, head_spec = description["steps"]
            if (features_spec["class"], head_spec["class"]) != ("BottleneckFeatures",
                                                               "BottleneckClassifier"):
                raise ValueError("unexpected step classes")
            # The backbone is rebuilt lazily on first transform, as after joblib.load.
            features = BottleneckFeatures.from_fitted_state(
                _untuple(features_spec["params"], features_spec.get("tuple_params", ())),
                features_spec["feature_shape"],
                feature_format_version=description["feature_format_version"],
                versions=description.get("versions", {}),
                training_hashes=features_spec.get("training_hashes"),
                weights_identity=features_spec.get("weights_identity"))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise IncompatibleModelError(
                f"{str(path)!r} has an invalid pipeline description: {exc}"
            ) from exc
        if features.precision == "int8":
            features.quantized_backbone_ = _restore_int8(path, features_spec, int8_files)
            features.openvino_backbone_ = features.quantized_backbone_
        elif features.engine == "openvino":
            features.openvino_backbone_ = _restore_int8(path, features_spec, int8_files,
                                                        "openvino_model")
        identity = features_spec.get("weights_identity")
        if weights is not None:
            features.relocate_weights(weights)
        elif weights_file is not None and str(identity).startswith("sha256:"):
            _unpack_weights(path, features, identity, weights_file)
        # checked and size-capped by _read; the default head is read without Keras
        head_bytes = Path(head_file).read_bytes()
    head = _restore_head(path, head_spec, head_bytes)
    head.novelty_ = _restore_novelty(path, head_spec, novelty_bytes)
    return Pipeline([(features_spec["name"], features), (head_spec["name"], head)])


def load_for_inference(path):
    """Load a file written by :func:`save` for prediction only, importing neither
    scikit-learn nor TensorFlow, when its model allows it.

    The model must run its backbone in OpenVINO (``precision="int8"``, or
    ``engine="openvino"``) and have a dense head (the default one), which NumPy computes
    with the saved weights: the :class:`~skanimal.inference.InferenceModel` it returns
    gives the pipeline's own features, probabilities and novelty scores (it runs the same
    code), and shares its feature cache. ``skanimal predict`` uses it for such files.

    Parameters
    ----------
    path : path-like
        A file written by :func:`save`.

    Returns
    -------
    InferenceModel or None
        None when the model needs TensorFlow (a TensorFlow backbone, another head) or the
        backbone's weights file; then use :func:`skanimal.load`.

    Raises
    ------
    IncompatibleModelError
        As :func:`skanimal.load`.
    """
    from .backbones import resolve_image_size
    from .extraction import feature_fingerprint
    from .head_forward import DenseHead
    from .inference import InferenceFeatures, InferenceHead, InferenceModel, NearestReference
    from .weights import weights_identity

    with tempfile.TemporaryDirectory(prefix="skanimal-load-") as tmp:
        description, head_file, ir_files, _, novelty_bytes = _read(path, tmp,
                                                                   want_weights=False)
        head_bytes = Path(head_file).read_bytes()
    try:
        features_spec, head_spec = description["steps"]
        params = _untuple(features_spec["params"], features_spec.get("tuple_params", ()))
        precision, engine = params["precision"], params.get("engine", "tensorflow")
        if precision != "int8" and engine != "openvino":
            return None  # the backbone runs in TensorFlow
        stem = "int8_model" if precision == "int8" else "openvino_model"
        forward = DenseHead.from_archive(head_bytes)
        if forward is None:
            return None  # a head NumPy does not compute: Keras loads it
        classes = np.asarray(head_spec["classes"], dtype=np.dtype(head_spec["classes_dtype"]))
        if classes.ndim != 1:
            raise ValueError(f"classes of shape {classes.shape}")
        network = _restore_int8(path, features_spec, ir_files, stem)
        if int(head_spec["n_features_in"]) != network.n_features:
            raise ValueError(f"the head was fitted on {head_spec['n_features_in']} features, "
                             f"but the backbone gives {network.n_features}")
        forward.check_widths(network.n_features, len(classes))
        recorded = features_spec.get("weights_identity")
        image_size = resolve_image_size(params["backbone"], params["image_size"])
        fingerprint = feature_fingerprint(
            params["backbone"],
            weights=(recorded if str(recorded).startswith("sha256:")
                     else weights_identity(params["weights"])),
            image_size=image_size, pooling=params["pooling"], precision=precision,
            openvino=network)
        batch_size = int(params["batch_size"])
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}")
        features = InferenceFeatures(network, image_size, batch_size, params["cache"],
                                     fingerprint, verbose=int(params.get("verbose") or 0))
        novelty = _novelty_arrays(path, head_spec, novelty_bytes)
        if novelty is not None:
            arrays, novelty_params = novelty
            novelty = NearestReference(np.asarray(arrays["reference"], dtype=np.float32),
                                       int(novelty_params.get("n_neighbors", 1)),
                                       float(arrays["threshold"]))
            if novelty.reference.ndim != 2 or novelty.reference.shape[1] != network.n_features:
                raise ValueError(f"a novelty reference of shape {novelty.reference.shape}")
        threshold = head_spec.get("confidence_threshold")
    except (AttributeError, KeyError, TypeError, ValueError, zipfile.BadZipFile) as exc:
        raise IncompatibleModelError(
            f"{str(path)!r} has an invalid pipeline description: {exc}") from exc
    except WeightsUnavailableError:
        return None  # keyed by a weights file no longer here: load() says what to do
    head = InferenceHead(classes, forward, novelty,
                         None if threshold is None else float(threshold))
    return InferenceModel(features, head)
