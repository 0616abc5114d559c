"""The int8 engine: a backbone quantized with NNCF and run by OpenVINO.

``BottleneckFeatures(precision="int8")`` uses it. :func:`quantize_backbone` converts a built
float32 Keras backbone (``skanimal.backbones.Backbone``) to OpenVINO, with the backbone's
own ``preprocess_input`` moved inside the graph so it takes the ``uint8`` pixels as they come
from the decoder, and quantizes it with NNCF post-training quantization on calibration pixels.
The result, an :class:`Int8Backbone`, is the quantized model as OpenVINO IR bytes (XML +
weights): it pickles, saves and travels to worker processes as plain bytes, and each process
compiles it once (:func:`compiled_model`). Loading IR runs no code, so
:func:`skanimal.save` can store it in its pickle-free file.

OpenVINO and NNCF are an optional extra (``pip install "skanimal[openvino]"``); nothing here
imports them before an int8 model is built or run, and :func:`require_openvino` turns their
absence into one line saying what to install.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import tempfile
import threading
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "CALIBRATION_SIZE", "INSTALL_HINT", "Int8Backbone", "calibration_sample", "compiled_model",
    "convert_backbone",
    "engine_versions", "quantization_recipe", "quantize_backbone", "require_openvino",
    "to_openvino",
]

#: Most images ``fit`` calibrates on (NNCF's own default subset size). More barely moves the
#: activation ranges and costs fit time: each calibration image runs through the float model.
CALIBRATION_SIZE = 300

#: NNCF settings; part of every int8 model's recipe (and so of the cache fingerprint).
#: Full bias correction (not the "fast" one) keeps int8 features far closer to float32 ones:
#: on the shared MobileNetV2 weights the median cosine similarity goes from 0.94 to 0.98.
#: Activations are quantized per tensor: NNCF would otherwise quantize some of
#: EfficientNet's per channel, which OpenVINO's CPU plugin cannot run.
_NNCF_SETTINGS = {"preset": "performance", "fast_bias_correction": False, "target_device": "CPU",
                  "per_channel_activations": False}

#: Operations NNCF leaves unquantized run in float32: OpenVINO's CPU default on machines with
#: bfloat16 units is bfloat16, which would make int8 features depend on the machine.
_COMPILE_CONFIG = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}

INSTALL_HINT = (
    'precision="int8" runs the backbone through OpenVINO, quantized with NNCF, which are not '
    'installed here; install them with: pip install "skanimal[openvino]"'
)


def require_openvino(*, quantize=False):
    """Import OpenVINO (and NNCF when ``quantize``), or say in one line what to install.

    Parameters
    ----------
    quantize : bool, default=False
        Also import NNCF (needed to quantize, not to run a quantized model).

    Returns
    -------
    module
        The ``openvino`` module.

    Raises
    ------
    ImportError
        When a package is missing: the message names it and the ``pip install`` line.
    """
    try:
        import openvino

        if quantize:
            import nncf  # noqa: F401
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        raise ImportError(f"{INSTALL_HINT} (missing: {missing})") from exc
    return openvino


def engine_versions():
    """Versions of OpenVINO and NNCF installed here (``None`` where absent).

    Read from package metadata, so nothing is imported.

    Returns
    -------
    dict
    """
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in ("openvino", "nncf"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def calibration_sample(keys, size=CALIBRATION_SIZE):
    """Choose the calibration images among ``X``: at most ``size``, by content.

    The images whose content keys sort first are taken, one per distinct content: the choice
    is a fixed pseudo-random sample that does not depend on the order of ``X`` nor on
    duplicates, so fitting on the same images always calibrates on the same ones.

    Parameters
    ----------
    keys : sequence of str
        Content key of each image of ``X`` (see :mod:`skanimal.cache`).
    size : int, default=CALIBRATION_SIZE

    Returns
    -------
    list of int
        Indices into ``keys``, in key order.
    """
    first = {}
    for i, key in enumerate(keys):
        first.setdefault(key, i)
    return [first[key] for key in sorted(first)[:size]]


def quantization_recipe(calibration_keys):
    """Everything besides the float model that decides an int8 model, as plain JSON.

    Parameters
    ----------
    calibration_keys : sequence of str
        Content keys of the calibration images, in calibration order.

    Returns
    -------
    dict
        The NNCF settings, the OpenVINO/NNCF versions, and a SHA-256 digest of the keys.
    """
    digest = hashlib.sha256("\n".join(calibration_keys).encode("ascii")).hexdigest()
    return {"nncf": dict(_NNCF_SETTINGS), "versions": engine_versions(),
            "calibration": {"n_images": len(calibration_keys), "sha256": digest}}


@dataclass(frozen=True, eq=False)
class Int8Backbone:
    """A quantized backbone: OpenVINO IR (XML + weights) taking ``uint8`` RGB pixels.

    Duck-types ``skanimal.backbones.Backbone`` where ``BottleneckFeatures`` uses it
    (:meth:`features`, ``feature_shape``, :attr:`n_features`). Pickles as its bytes only;
    the compiled model is per process (:func:`compiled_model`).

    Parameters
    ----------
    xml : bytes
        The IR's model description.
    weights : bytes
        The IR's weights (the ``.bin`` file).
    feature_shape : tuple of int
        Shape of one image's output before flattening.
    recipe : dict
        How it was made (:func:`quantization_recipe`), for the record.
    """

    xml: bytes
    weights: bytes
    feature_shape: tuple
    recipe: dict = field(default_factory=dict)

    @functools.cached_property
    def digest(self):
        """SHA-256 of the IR: identifies the model's every weight and quantization range."""
        h = hashlib.sha256()
        h.update(len(self.xml).to_bytes(8, "little"))
        h.update(self.xml)
        h.update(self.weights)
        return h.hexdigest()

    def fingerprint(self):
        """What identifies this model's features, for the cache fingerprint (plain JSON).

        The SHA-256 of the weights file covers every weight and quantization range, so the
        calibration; the recipe adds the NNCF settings and versions; the installed OpenVINO
        version covers the runtime's int8 kernels. The XML is left out: OpenVINO names its
        nodes with a per-process counter, so the same model gets new names at each fit
        while its weights file is identical, and its features too.
        """
        return {"weights_sha256": self._weights_sha256, "recipe": self.recipe,
                "runtime": engine_versions()["openvino"]}

    @functools.cached_property
    def _weights_sha256(self):
        return hashlib.sha256(self.weights).hexdigest()

    @property
    def n_features(self):
        """Number of features per image once flattened."""
        return int(np.prod(self.feature_shape))

    def features(self, pixels):
        """Run the quantized network (preprocessing included) on a batch.

        Parameters
        ----------
        pixels : ndarray of shape (n, h, w, 3)
            RGB values in 0–255; ``uint8`` is passed without a copy, float values are
            rounded to the network's ``uint8`` input.

        Returns
        -------
        ndarray of shape (n, n_features), float32
        """
        pixels = np.asarray(pixels)
        if pixels.dtype != np.uint8:
            pixels = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
        pixels = np.ascontiguousarray(pixels)
        entry = compiled_model(self)
        with entry.lock:  # one infer request per compiled model; calls may come from threads
            # share_outputs=False (the default): the result is already a copy of the
            # request's buffer, which the next call overwrites.
            outputs = entry.request.infer({0: pixels}, share_inputs=True)
            result = np.asarray(outputs[0], dtype=np.float32)
        return result.reshape(len(pixels), -1)

    @property
    def file_stem(self):
        """``"int8_model"``, or ``"openvino_model"`` for an unquantized (float32) network."""
        return "openvino_model" if self.recipe.get("conversion") == "float32" else "int8_model"

    def files(self):
        """The IR as ``{file name: bytes}``, as :func:`skanimal.save` stores it."""
        return {f"{self.file_stem}.xml": self.xml, f"{self.file_stem}.bin": self.weights}

    @classmethod
    def from_files(cls, files, feature_shape, recipe=None):
        """Rebuild from :meth:`files` (e.g. read back by :func:`skanimal.load`).

        Raises
        ------
        KeyError
            When a file is missing.
        """
        recipe = dict(recipe or {})
        stem = "openvino_model" if recipe.get("conversion") == "float32" else "int8_model"
        return cls(bytes(files[f"{stem}.xml"]), bytes(files[f"{stem}.bin"]),
                   tuple(int(d) for d in feature_shape), recipe)


@dataclass
class _Compiled:
    model: object
    request: object
    lock: threading.Lock


_COMPILED: dict = {}
_COMPILED_LOCK = threading.Lock()


def compiled_model(int8_backbone, *, num_threads=None):
    """The OpenVINO CPU model of ``int8_backbone``, compiled once per process.

    The compiled network is also kept on disk, in OpenVINO's own model cache
    (``skanimal.cache.compiled_cache_dir``: ``openvino/`` inside the feature cache
    directory that ``$SKANIMAL_CACHE_DIR`` selects; ``off`` disables it), so a new process
    reads it instead of compiling again. OpenVINO keys each file by the network, the device
    and the compile settings, so a different model or thread count never reuses one.

    Parameters
    ----------
    int8_backbone : Int8Backbone
    num_threads : int, optional
        Inference threads; by default OpenVINO uses every core, except in a joblib/Dask
        worker process, where it gets the same share of the cores as TensorFlow would
        (``skanimal._parallel.plan_tf_threads``).

    Returns
    -------
    object
        Holds ``model`` (``openvino.CompiledModel``), ``request`` and its ``lock``.
    """
    key = int8_backbone.digest
    with _COMPILED_LOCK:
        entry = _COMPILED.get(key)
        if entry is None:
            ov = require_openvino()
            if num_threads is None:
                from ._parallel import plan_tf_threads

                num_threads = plan_tf_threads()[0]
            config = dict(_COMPILE_CONFIG)
            if num_threads:
                config["INFERENCE_NUM_THREADS"] = int(num_threads)
            core = ov.Core()
            cache_dir = _compiled_cache_dir()
            if cache_dir is not None:
                config["CACHE_DIR"] = cache_dir
            model = core.read_model(
                int8_backbone.xml.decode("utf-8"),
                ov.Tensor(np.frombuffer(int8_backbone.weights, dtype=np.uint8)),
            )
            compiled = core.compile_model(model, "CPU", config)
            entry = _Compiled(compiled, compiled.create_infer_request(), threading.Lock())
            _COMPILED[key] = entry
    return entry


def _compiled_cache_dir():
    """The compiled-network folder as a string, created; None when disabled or unusable."""
    from .cache import compiled_cache_dir

    try:
        folder = compiled_cache_dir()
        if folder is None:
            return None
        folder.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError):  # a read-only or odd cache location: compile every time
        return None
    return os.fspath(folder)


def to_openvino(backbone, *, purpose):
    """The float model of ``backbone`` as an (uncompiled) ``openvino.Model``.

    Its input is the ``uint8`` RGB pixels (any batch size); the backbone's own
    ``preprocess_input`` runs inside the graph.

    Parameters
    ----------
    backbone : skanimal.backbones.Backbone
    purpose : str
        What the conversion is for (``"precision='int8'"``), named when it fails.

    Returns
    -------
    openvino.Model

    Raises
    ------
    ValueError
        When OpenVINO cannot convert this backbone (one line, naming it and ``purpose``).
    """
    ov = require_openvino()
    import tensorflow as tf

    model = backbone.model
    preprocess = backbone.spec.preprocess_input()

    @tf.function
    def forward(pixels):
        return model(preprocess(tf.cast(pixels, tf.float32)), training=False)

    height, width = (int(d) for d in model.input_shape[1:3])
    signature = tf.TensorSpec([None, height, width, 3], tf.uint8)
    try:
        return ov.convert_model(forward.get_concrete_function(signature))
    except Exception as exc:  # the converter raises its own types for unsupported ops
        raise ValueError(
            f"OpenVINO cannot convert backbone {backbone.spec.name!r} for {purpose}: {exc}"
        ) from exc


def quantize_backbone(backbone, calibration_pixels, calibration_keys, *, verbose=False):
    """Quantize a float32 Keras backbone to int8 with NNCF.

    Parameters
    ----------
    backbone : skanimal.backbones.Backbone
        Built with ``precision="float32"``.
    calibration_pixels : ndarray of shape (n, h, w, 3), uint8
        The calibration images, decoded and resized like every input.
    calibration_keys : sequence of str
        Their content keys (recorded in the recipe).
    verbose : bool, default=False
        Show NNCF's progress bars (it prints them on standard output).

    Returns
    -------
    Int8Backbone

    Raises
    ------
    ImportError
        When OpenVINO or NNCF is not installed (one line: what to install).
    ValueError
        When OpenVINO cannot convert or NNCF cannot quantize this backbone.
    """
    ov = require_openvino(quantize=True)
    import nncf
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        QuantizationParameters,
    )

    float_model = to_openvino(backbone, purpose="precision='int8'")
    pixels = np.ascontiguousarray(calibration_pixels, dtype=np.uint8)
    # One image per calibration item: NNCF's statistics are per sample.
    dataset = nncf.Dataset([pixels[i:i + 1] for i in range(len(pixels))])
    try:
        quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
        with quiet:
            quantized = nncf.quantize(
                float_model, dataset, subset_size=len(pixels),
                preset=nncf.QuantizationPreset.PERFORMANCE,
                fast_bias_correction=_NNCF_SETTINGS["fast_bias_correction"],
                target_device=nncf.TargetDevice.CPU,
                advanced_parameters=AdvancedQuantizationParameters(
                    activations_quantization_params=QuantizationParameters(
                        per_channel=_NNCF_SETTINGS["per_channel_activations"])),
            )
    except Exception as exc:
        raise ValueError(
            f"NNCF could not quantize backbone {backbone.spec.name!r} to int8: {exc}"
        ) from exc
    xml, weights = _ir_bytes(ov, quantized)
    return Int8Backbone(xml, weights, tuple(backbone.feature_shape),
                        quantization_recipe(list(calibration_keys)))


def convert_backbone(backbone):
    """Convert a float32 Keras backbone to OpenVINO, unquantized (``engine="openvino"``).

    Parameters
    ----------
    backbone : skanimal.backbones.Backbone
        Built with ``precision="float32"``.

    Returns
    -------
    Int8Backbone
        Despite the class name, float32 weights: its recipe says ``"conversion":
        "float32"`` (and the OpenVINO version), and it saves as ``openvino_model.xml/.bin``.

    Raises
    ------
    ImportError
        When OpenVINO is not installed (one line: what to install).
    ValueError
        When OpenVINO cannot convert this backbone.
    """
    ov = require_openvino()
    model = to_openvino(backbone, purpose="engine='openvino'")
    xml, weights = _ir_bytes(ov, model)
    recipe = {"conversion": "float32", "versions": {"openvino": engine_versions()["openvino"]}}
    return Int8Backbone(xml, weights, tuple(backbone.feature_shape), recipe)


def _ir_bytes(ov, model):
    """An ``openvino.Model`` as IR bytes ``(xml, weights)``, weights kept in float32."""
    # IR is a pair of files; a private temporary directory turns it into bytes.
    with tempfile.TemporaryDirectory(prefix="skanimal-ir-") as tmp:
        xml_path = os.path.join(tmp, "model.xml")
        ov.save_model(model, xml_path, compress_to_fp16=False)
        with open(xml_path, "rb") as handle:
            xml = handle.read()
        with open(os.path.join(tmp, "model.bin"), "rb") as handle:
            weights = handle.read()
    return xml, weights
