"""Export a fitted skanimal model as one network: photo pixels in, class probabilities out.

:func:`export` writes a folder that runs without skanimal: the network in one of
:data:`FORMATS`, ``skanimal-export.json`` (classes, input size, how photos are decoded) and
``predict.py`` (a copy of :mod:`skanimal.exported_predict`). The network is built by
:func:`build_network` as one Keras model::

    uint8 RGB pixels (n, height, width, 3)
      -> the backbone's own preprocess_input (as Keras layers)
      -> the frozen backbone and its pooling (flattened when pooling=None)
      -> the head: BottleneckClassifier.model_ (its input scaling included), or a
         StandardScaler + LogisticRegression turned into Normalization + Dense(softmax)
      -> probabilities (n, n_classes), in the order of ``classes``

and converted from there. Decoding and resizing stay outside the network (the caller does
them with Pillow, as ``predict.py`` shows), because that is where exports usually go wrong.

Precision: the exported network computes in float32 from the model's weights. A model fitted
with ``precision="bfloat16"`` exports the same float32 network. A model fitted with
``precision="int8"`` exports, in the ``openvino`` format, its own quantized OpenVINO network
with the head appended; the other formats get the float32 network (with a warning), whose
answers agree with the int8 model's on most but not all photos.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._version import __version__
from .backbones import get_backbone, get_spec
from .exceptions import (
    ExportError,
    ExportFolderNotEmptyError,
    IncompatibleModelError,
)
from .fileio import new_folder
from .images import REDUCING_GAP, RESAMPLE

__all__ = ["FORMATS", "ExportError", "ExportResult", "build_network", "export", "require_runtime"]

#: The formats :func:`export` writes, and the name of the network inside the folder.
FORMATS = {
    "keras": "model.keras",
    "savedmodel": "saved_model",
    "tflite": "model.tflite",
    "onnx": "model.onnx",
    "openvino": "model.xml",
}

#: Modules each format needs to be written and run, and the extra that installs them.
_NEEDS = {
    "keras": ((), None),
    "savedmodel": ((), None),
    "tflite": (("ai_edge_litert",), "export"),
    "onnx": (("tf2onnx", "onnx", "onnxruntime"), "export"),
    "openvino": (("openvino",), "openvino"),
}

#: The file that describes an export.
DESCRIPTION = "skanimal-export.json"

#: Largest difference of a probability between the written network, run by its runtime,
#: and the Keras network it was converted from, on a few test images: conversions are exact
#: up to float32 rounding, so anything bigger is a broken conversion.
_TOLERANCE = 1e-3

_ONNX_OPSET = 17


@dataclass
class ExportResult:
    """What :func:`export` wrote.

    Attributes
    ----------
    directory : pathlib.Path
        The export folder.
    format : str
        One of :data:`FORMATS`.
    model_path : pathlib.Path
        The network's file (or folder, for ``savedmodel``) inside ``directory``.
    n_bytes : int
        Size of the network on disk (all its files).
    description : dict
        The content of ``skanimal-export.json``.
    max_difference : float
        Largest difference of a probability between the written network, run by its
        runtime, and the network it was converted from, on the test images of the check
        :func:`export` runs before it writes anything.
    warnings : list of str
        What the export could not keep (an int8 model exported as float32).
    """

    directory: Path
    format: str
    model_path: Path
    n_bytes: int
    description: dict = field(repr=False)
    max_difference: float = 0.0
    warnings: list = field(default_factory=list)


# ------------------------------------------------------------------------- the model


@dataclass
class _Parts:
    features: object
    head: list
    classes: np.ndarray


def _parts(model):
    """The fitted BottleneckFeatures, head steps and classes of a skanimal model."""
    from sklearn.pipeline import Pipeline
    from sklearn.utils.validation import check_is_fitted

    from .features import BottleneckFeatures

    model = getattr(model, "best_estimator_", model)  # a fitted GridSearchCV
    inner = getattr(model, "estimator_", None)  # AugmentedClassifier
    if not isinstance(model, Pipeline) and isinstance(inner, Pipeline):
        model = inner
    steps = ([step for _, step in model.steps if step not in (None, "passthrough")]
             if isinstance(model, Pipeline) else [])
    if len(steps) < 2 or not isinstance(steps[0], BottleneckFeatures):
        raise IncompatibleModelError(
            f"not a skanimal model: expected a pipeline of BottleneckFeatures and a classifier "
            f"(as 'skanimal train' saves), got {type(model).__name__}")
    try:
        check_is_fitted(model)
        check_is_fitted(steps[0], "n_features_out_")
    except Exception as exc:
        raise IncompatibleModelError("the model is not fitted; fit it before exporting") from exc
    return _Parts(steps[0], steps[1:], np.asarray(steps[-1].classes_))


def _preprocessing_layers(spec, image_size):
    """The backbone's ``preprocess_input`` as built-in Keras layers (loadable anywhere)."""
    import keras

    layers = [keras.layers.Rescaling(1.0, name="to_float")]  # uint8 -> float32, exactly
    if spec.preprocessing == "tf":  # [0, 255] -> [-1, 1]
        layers = [keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess_input")]
    elif spec.preprocessing == "caffe":  # RGB -> BGR, minus the ImageNet mean (BGR order)
        reverse = keras.layers.Conv2D(3, 1, name="preprocess_input")
        reverse.build((None, *image_size, 3))
        kernel = np.zeros((1, 1, 3, 3), dtype=np.float32)
        kernel[0, 0, [0, 1, 2], [2, 1, 0]] = 1.0
        reverse.set_weights([kernel, -np.array([103.939, 116.779, 123.68], np.float32)])
        reverse.trainable = False
        layers.append(reverse)
    elif spec.preprocessing != "none":
        raise ExportError(f"backbone {spec.name!r}: its preprocessing "
                          f"({spec.preprocessing!r}) cannot be exported yet")
    # Checked against the backbone's own preprocess_input, so a new backbone cannot slip by.
    pixels = np.random.default_rng(0).integers(0, 256, (2, *image_size, 3), dtype=np.uint8)
    ours = pixels
    for layer in layers:
        ours = layer(ours)
    theirs = spec.preprocess_input()(pixels.astype(np.float32))
    if not np.allclose(np.asarray(ours), np.asarray(theirs), atol=1e-4):
        raise ExportError(f"backbone {spec.name!r}: its preprocess_input is not the "
                          f"{spec.preprocessing!r} convention; it cannot be exported yet")
    return layers


def _head_layers(head, n_features, n_classes):
    """Keras layers (or models) computing the head's probabilities from the features."""
    import keras
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from .classifier import BottleneckClassifier

    *scalers, last = head
    layers = []
    for step in scalers:
        if not isinstance(step, StandardScaler):
            raise ExportError(f"cannot export a {type(step).__name__} step; the heads that "
                              "export are BottleneckClassifier and StandardScaler + "
                              "LogisticRegression")
        mean = step.mean_ if step.with_mean else np.zeros(n_features)
        scale = step.scale_ if step.with_std else np.ones(n_features)
        # (x - mean) / scale as StandardScaler computes it, for any scale: Normalization
        # would clamp a scale below Keras' epsilon.
        number = len(layers) // 2 + 1
        layers += [keras.layers.Rescaling(1.0, offset=(-np.asarray(mean, np.float32)).tolist(),
                                          name=f"scaler_{number}_centre"),
                   keras.layers.Rescaling((1 / np.asarray(scale, np.float64)).tolist(),
                                          name=f"scaler_{number}_scale")]
    if isinstance(last, BottleneckClassifier):
        network = last.model_
        if tuple(network.output_shape[1:]) != (n_classes,):
            raise ExportError(f"cannot export a BottleneckClassifier whose network has "
                              f"{network.output_shape[1:]} outputs for {n_classes} classes")
        return [*layers, network]
    if isinstance(last, LogisticRegression):
        coef = np.asarray(last.coef_, np.float64)
        intercept = np.asarray(last.intercept_, np.float64)
        if coef.shape[0] == 1:  # binary: P(class 1) = sigmoid(z) = softmax([0, z])[1]
            coef = np.vstack([np.zeros_like(coef), coef])
            intercept = np.concatenate([[0.0], intercept])
        dense = keras.layers.Dense(n_classes, activation="softmax", name="logistic_regression")
        dense.build((None, n_features))
        dense.set_weights([coef.T.astype(np.float32), intercept.astype(np.float32)])
        return [*layers, dense]
    raise ExportError(f"cannot export a {type(last).__name__} head; the heads that export are "
                      "BottleneckClassifier and StandardScaler + LogisticRegression")


def _float_backbone(features):
    weights = features.weights_file()  # a moved file, found again by its content
    if weights is None:
        weights = features.weights  # "imagenet" or None (random)
    return get_backbone(features.backbone, weights=weights, image_size=features.image_size_,
                        pooling=features.pooling, precision="float32")


def build_network(model):
    """The float32 network of a skanimal model, as one Keras model.

    Parameters
    ----------
    model : Pipeline
        A fitted pipeline of :class:`~skanimal.BottleneckFeatures` and a
        :class:`~skanimal.BottleneckClassifier` or a ``StandardScaler`` +
        ``LogisticRegression`` (``skanimal train --head logistic``); a fitted
        ``GridSearchCV`` of one, or an :class:`~skanimal.AugmentedClassifier` of one.

    Returns
    -------
    keras.Model
        Input: ``uint8`` RGB pixels of shape ``(n, height, width, 3)`` at the model's
        ``image_size_``, decoded and resized as skanimal does. Output: the probabilities,
        shape ``(n, n_classes)``, in the order of the classifier's ``classes_``.

    Raises
    ------
    IncompatibleModelError
        When ``model`` is not a fitted skanimal model.
    ExportError
        When its head or backbone preprocessing cannot be exported.
    """
    import keras

    parts = _parts(model)
    features = parts.features
    spec = get_spec(features.backbone)
    image_size = tuple(int(s) for s in features.image_size_)
    backbone = _float_backbone(features)
    inputs = keras.Input((*image_size, 3), dtype="uint8", name="pixels")
    x = inputs
    for layer in _preprocessing_layers(spec, image_size):
        x = layer(x)
    x = backbone.model(x, training=False)
    if len(backbone.feature_shape) > 1:  # pooling=None: the features are the flat map
        x = keras.layers.Flatten(name="flatten_features")(x)
    for layer in _head_layers(parts.head, features.n_features_out_, len(parts.classes)):
        x = layer(x)
    return keras.Model(inputs, x, name=f"skanimal_{spec.name}")


# ------------------------------------------------------------------------ converters


def _serving_function(network, image_size):
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, *image_size, 3], tf.uint8,
                                                 name="pixels")])
    def serve(pixels):
        return tf.identity(network(pixels, training=False), name="probabilities")

    return serve


def _write_keras(network, path, image_size):
    network.save(path)


def _write_savedmodel(network, path, image_size):
    with contextlib.redirect_stdout(io.StringIO()):  # Keras prints the endpoints it made
        network.export(str(path), format="tf_saved_model", verbose=False)


def _write_tflite(network, path, image_size):
    import tensorflow as tf

    # From a SavedModel, whose variables the converter freezes into constants; from a
    # concrete function it keeps them as variables, which the interpreter reads as NaN.
    with tempfile.TemporaryDirectory(prefix="savedmodel-", dir=Path(path).parent) as folder:
        _write_savedmodel(network, folder, image_size)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        Path(path).write_bytes(converter.convert())


def _write_onnx(network, path, image_size):
    import onnx
    import tensorflow as tf
    import tf2onnx

    serve = _serving_function(network, image_size)
    concrete = serve.get_concrete_function()
    # tf2onnx freezes the captured variables but turns captured constant tensors (the
    # head's Normalization statistics) into graph inputs: put their values back as
    # initializers, so the pixels are the one input.
    constants = {inner.name: outer.numpy()
                 for outer, inner in zip(concrete.captured_inputs, concrete.graph.internal_captures)
                 if outer.dtype != tf.resource}
    with contextlib.redirect_stdout(io.StringIO()):
        proto, _ = tf2onnx.convert.from_function(serve, input_signature=serve.input_signature,
                                                 opset=_ONNX_OPSET)
    graph = proto.graph
    used = {name for node in graph.node for name in node.input}
    for value in list(graph.input)[1:]:
        if value.name not in constants:
            raise ExportError(f"the ONNX graph has an input {value.name!r} besides the pixels")
        if value.name in used:
            graph.initializer.append(onnx.numpy_helper.from_array(constants[value.name],
                                                                  value.name))
        graph.input.remove(value)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def _name_io(ov_model):
    ov_model.inputs[0].get_tensor().set_names({"pixels"})
    ov_model.outputs[0].get_tensor().set_names({"probabilities"})
    return ov_model


def _write_openvino(network, path, image_size):
    import openvino as ov

    model = ov.convert_model(_serving_function(network, image_size).get_concrete_function())
    ov.save_model(_name_io(model), str(path), compress_to_fp16=False)


def _int8_openvino(parts, path):
    """The int8 model's own quantized OpenVINO network with the head appended."""
    import keras
    import openvino as ov
    import openvino.opset13 as ops
    import tensorflow as tf

    features = parts.features
    quantized = features.quantized_backbone_
    n_features = features.n_features_out_
    head_in = keras.Input((n_features,), name="features")
    x = head_in
    for layer in _head_layers(parts.head, n_features, len(parts.classes)):
        x = layer(x)
    head = keras.Model(head_in, x)

    @tf.function(input_signature=[tf.TensorSpec([None, n_features], tf.float32)])
    def head_function(values):
        return head(values, training=False)

    head_model = ov.convert_model(head_function.get_concrete_function())
    core = ov.Core()
    backbone = core.read_model(quantized.xml.decode("utf-8"),
                               ov.Tensor(np.frombuffer(quantized.weights, dtype=np.uint8)))
    # What feeds the backbone's Result (model.outputs are the Results' own ports).
    features_out = backbone.get_results()[0].input_value(0)
    flat = ops.reshape(features_out, ops.constant(np.array([0, -1], np.int64)),
                       special_zero=True)
    head_model.get_parameters()[0].output(0).replace(flat.output(0))
    merged = ov.Model(head_model.get_results(), backbone.get_parameters(), "skanimal_int8")
    ov.save_model(_name_io(merged), str(path), compress_to_fp16=False)
    return head


_WRITERS = {"keras": _write_keras, "savedmodel": _write_savedmodel, "tflite": _write_tflite,
            "onnx": _write_onnx, "openvino": _write_openvino}


# -------------------------------------------------------------------------- the folder


def require_runtime(format):
    """Check that the converter and runtime of ``format`` are installed.

    Parameters
    ----------
    format : str
        One of :data:`FORMATS`.

    Raises
    ------
    ExportError
        Naming the format, what is missing and the extra that installs it (one line).
    """
    if format not in FORMATS:
        raise ExportError(f"format={format!r} is not one of {', '.join(FORMATS)}")
    modules, extra = _NEEDS[format]
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ExportError(
            f"format {format!r} needs {', '.join(missing)}, which is not installed; install "
            f'it with: pip install "skanimal[{extra}]"')


def _check_directory(directory, force):
    if directory.exists() and not directory.is_dir():
        raise ExportError(f"{str(directory)!r} exists and is not a folder")
    if directory.is_dir() and any(directory.iterdir()) and not force:
        raise ExportFolderNotEmptyError(directory)


def _size(path):
    path = Path(path)
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    if path.suffix == ".xml":  # OpenVINO IR: the description and the weights
        return path.stat().st_size + path.with_suffix(".bin").stat().st_size
    return path.stat().st_size


def _test_pixels(image_size, n=4):
    """A few images for the conversion check: flat colours and noise."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (n, *image_size, 3), dtype=np.uint8)
    pixels[0] = 255
    pixels[1] = np.array([200, 120, 40], np.uint8)
    return pixels


def _check_written(folder, reference, pixels):
    """Run the written network as ``predict.py`` does; its largest difference to
    ``reference``, or an ExportError when it is not a faithful conversion."""
    from .exported_predict import load_network

    run, info = load_network(str(folder))
    got = np.asarray(run(pixels), dtype=np.float64)
    if got.shape != reference.shape:
        raise ExportError(f"the {info['format']} network gives outputs of shape {got.shape}, "
                          f"not {reference.shape}; nothing was written")
    difference = float(np.max(np.abs(got - reference)))
    if not difference <= _TOLERANCE:
        raise ExportError(f"the {info['format']} network's probabilities differ from the "
                          f"model's by up to {difference:.2g} on test images; nothing was "
                          "written")
    return difference


def _move_into(source, directory):
    """Move the export built in ``source`` into ``directory``; the previous export's files
    are replaced, other files in ``directory`` are left alone."""
    if not directory.exists():
        os.rename(source, directory)
        return
    old = []
    try:
        with open(directory / DESCRIPTION, encoding="utf-8") as handle:
            old.append(str(json.load(handle)["model"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    trash = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old-", dir=directory.parent))
    try:
        names = set(os.listdir(source)) | {name for name in old if "/" not in name}
        if "model.xml" in names:
            names.add("model.bin")
        for name in sorted(names):
            if (directory / name).exists() or (directory / name).is_symlink():
                os.rename(directory / name, trash / name)
        for name in sorted(os.listdir(source)):
            os.rename(source / name, directory / name)
    finally:
        shutil.rmtree(trash, ignore_errors=True)
        shutil.rmtree(source, ignore_errors=True)


def export(model, directory, format="onnx", *, force=False):
    """Export a fitted skanimal model to a folder that runs it without skanimal.

    The folder holds the network (``FORMATS[format]``: photo pixels in, probabilities
    out, see :func:`build_network`), ``skanimal-export.json`` describing its input and
    classes, and ``predict.py``, which predicts a folder of photos with Pillow, NumPy and
    the format's runtime only. The export is built beside ``directory``, checked by running
    it with its runtime on test images against the model's own network, and only then
    moved into place: a failed export leaves nothing behind.

    Parameters
    ----------
    model : Pipeline
        A fitted skanimal pipeline (see :func:`build_network`).
    directory : path-like
        The export folder: new, or empty unless ``force``.
    format : {"keras", "savedmodel", "tflite", "onnx", "openvino"}, default="onnx"
        ``keras``: a ``.keras`` file (Keras 3); ``savedmodel``: a TensorFlow SavedModel
        folder (signature ``serving_default``); ``tflite``: a float32 LiteRT (TFLite)
        flatbuffer; ``onnx``: ONNX (opset 17); ``openvino``: OpenVINO IR (``.xml`` +
        ``.bin``).
    force : bool, default=False
        Export into a folder that is not empty: the files of the export (and those of a
        previous export there) are replaced, other files are left alone.

    Returns
    -------
    ExportResult

    Raises
    ------
    IncompatibleModelError
        When ``model`` is not a fitted skanimal model.
    ExportError
        When the format is unknown, its converter or runtime is not installed (the message
        names the extra to install), the folder is not empty (without ``force``), or the
        model cannot be exported in it.

    Notes
    -----
    Models fitted with ``precision="int8"`` export their quantized OpenVINO network in the
    ``openvino`` format; the other formats get the float32 network, with a warning.
    ``precision="bfloat16"`` models export the float32 network.

    Examples
    --------
    >>> import skanimal
    >>> skanimal.export(pipeline, "animals-onnx", format="onnx")  # doctest: +SKIP
    ExportResult(directory=PosixPath('animals-onnx'), format='onnx', ...)
    """
    require_runtime(format)
    directory = Path(directory)
    _check_directory(directory, force)
    parts = _parts(model)
    features = parts.features
    spec = get_spec(features.backbone)
    image_size = tuple(int(s) for s in features.image_size_)
    notes = []
    int8 = features.precision == "int8"
    if int8 and format != "openvino":
        notes.append(f"the model computes its features in int8 (OpenVINO); the {format} "
                     "export runs the float32 network, whose top class differs on a few "
                     "photos; export to openvino to keep int8")
        warnings.warn(notes[-1], UserWarning, stacklevel=2)
    directory.parent.mkdir(parents=True, exist_ok=True)
    building = new_folder(directory.parent, f".{directory.name}.export-")
    try:
        pixels = _test_pixels(image_size)
        model_path = building / FORMATS[format]
        if int8 and format == "openvino":
            head = _int8_openvino(parts, model_path)
            reference = np.asarray(head(features.quantized_backbone_.features(pixels),
                                        training=False))
        else:
            network = build_network(model)
            _WRITERS[format](network, model_path, image_size)
            reference = np.asarray(network(pixels, training=False))
        description = {
            "format": format,
            "model": FORMATS[format],
            "classes": np.asarray(parts.classes).tolist(),
            "input": {"height": image_size[0], "width": image_size[1], "dtype": "uint8",
                      "layout": "NHWC", "color": "RGB", "resize": RESAMPLE.name.lower(),
                      "reducing_gap": REDUCING_GAP, "exif_orientation": True,
                      "transparency": "white"},
            "output": "probabilities",
            "backbone": spec.name,
            "pooling": features.pooling,
            "precision": "int8" if int8 and format == "openvino" else "float32",
            "skanimal_version": __version__,
        }
        with open(building / DESCRIPTION, "w", encoding="utf-8") as handle:
            json.dump(description, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
        shutil.copyfile(Path(__file__).with_name("exported_predict.py"), building / "predict.py")
        difference = _check_written(building, np.asarray(reference, np.float64), pixels)
        n_bytes = _size(model_path)
        _move_into(building, directory)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return ExportResult(directory=directory, format=format,
                        model_path=directory / FORMATS[format], n_bytes=n_bytes,
                        description=description, max_difference=difference, warnings=notes)
