"""Registry of frozen ImageNet backbones from ``keras.applications``.

A backbone is described once (:class:`BackboneSpec`: constructor, its own
``preprocess_input``, default image size) and built lazily, once per process and
configuration (:func:`get_backbone`). Estimators keep only the *name* of a backbone in their
parameters, so clones share the built model and pickles never carry its weights. Weights
files (identity, lookup, advice, loading by content) are :mod:`skanimal.weights`' job.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .exceptions import WeightsUnavailableError
from .weights import (
    RANDOM_WEIGHTS_SEED,
    check_weights,
    count_weights,
    keras_loadable,
    mismatch_message,
    offline_weights_message,
    weights_identity,
)

__all__ = [
    "BackboneSpec", "Backbone", "BACKBONES", "available_backbones", "get_backbone",
    "imagenet_available", "resolve_image_size",
]


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one ``keras.applications`` backbone.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"vgg16"``.
    module : str
        Sub-module of ``keras.applications`` holding ``preprocess_input``.
    constructor : str
        Name of the model constructor in ``keras.applications``.
    default_size : tuple of int
        ``(height, width)`` the ImageNet weights were trained at.
    preprocessing : str
        Short name of the preprocessing convention, part of the cache fingerprint.
    min_size : int
        Smallest height/width Keras accepts for ``include_top=False``.
    n_weights : int or None
        Number of values in the ``include_top=False`` weights (Keras' ``count_params()``, the
        same at every image size): tells which backbone a weights file is for without
        building any model.
    """

    name: str
    module: str
    constructor: str
    default_size: tuple = (224, 224)
    preprocessing: str = "caffe"
    min_size: int = 32
    n_weights: int = None

    def keras_constructor(self) -> Callable:
        """Return the ``keras.applications`` constructor (imports Keras)."""
        import keras

        return getattr(keras.applications, self.constructor)

    def preprocess_input(self) -> Callable:
        """Return the backbone's own ``keras.applications.<module>.preprocess_input``."""
        import keras

        return getattr(keras.applications, self.module).preprocess_input


BACKBONES = {
    spec.name: spec
    for spec in [
        BackboneSpec("vgg16", "vgg16", "VGG16", preprocessing="caffe", n_weights=14_714_688),
        BackboneSpec("vgg19", "vgg19", "VGG19", preprocessing="caffe", n_weights=20_024_384),
        BackboneSpec("resnet50", "resnet50", "ResNet50", preprocessing="caffe",
                     n_weights=23_587_712),
        BackboneSpec("mobilenet_v2", "mobilenet_v2", "MobileNetV2", preprocessing="tf",
                     n_weights=2_257_984),
        BackboneSpec("efficientnet_b0", "efficientnet", "EfficientNetB0", preprocessing="none",
                     n_weights=4_049_571),
        BackboneSpec(
            "inception_v3", "inception_v3", "InceptionV3", (299, 299), preprocessing="tf",
            min_size=75, n_weights=21_802_784,
        ),
    ]
}


def available_backbones():
    """Names accepted by ``BottleneckFeatures(backbone=...)``.

    Returns
    -------
    list of str
    """
    return sorted(BACKBONES)


def get_spec(name) -> BackboneSpec:
    """Look up a backbone by name, with an error that lists the valid names."""
    if isinstance(name, BackboneSpec):
        return name
    try:
        return BACKBONES[str(name).lower()]
    except KeyError:
        raise ValueError(
            f"Unknown backbone={name!r}; choose one of {available_backbones()}."
        ) from None


def resolve_image_size(backbone, image_size):
    """The ``(height, width)`` a backbone's input gets for an ``image_size`` parameter.

    Parameters
    ----------
    backbone : str
        A registered backbone name.
    image_size : int, (int, int) or None
        None is the backbone's default size; an int is a square.

    Returns
    -------
    tuple of int

    Raises
    ------
    ValueError
        When it is not two sizes of at least the backbone's smallest input.
    """
    spec = get_spec(backbone)
    size = image_size if image_size is not None else spec.default_size
    if isinstance(size, (int, np.integer)):
        size = (size, size)
    try:
        size = tuple(int(s) for s in size)
    except (TypeError, ValueError):
        size = ()
    if len(size) != 2 or min(size) < spec.min_size:
        raise ValueError(
            f"image_size must be (height, width) with both ≥ {spec.min_size} for backbone "
            f"{spec.name!r}, got {image_size!r}."
        )
    return size


def _reinitialise_deterministically(model, seed):
    """Overwrite random kernels with Glorot-uniform values from a fixed seed.

    Keras draws initial weights from a global generator, so ``weights=None`` would give
    different features in each process; this makes random features reproducible.
    """
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for attr in ("kernel", "depthwise_kernel", "pointwise_kernel"):
            variable = getattr(layer, attr, None)
            if variable is None or not hasattr(variable, "assign"):
                continue
            shape = tuple(variable.shape)
            receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
            fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            values = rng.uniform(-limit, limit, size=shape).astype(np.float32)
            variable.assign(values)


@dataclass
class Backbone:
    """A built, frozen backbone ready to turn pixels into features.

    Attributes
    ----------
    spec : BackboneSpec
    model : keras.Model
        The ``include_top=False`` model, pooled when asked.
    feature_shape : tuple of int
        Output shape of one image before flattening.
    """

    spec: BackboneSpec
    model: object
    feature_shape: tuple
    precision: str
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _forward: Callable = field(default=None, repr=False)

    @property
    def n_features(self) -> int:
        """Number of features per image once flattened."""
        return int(np.prod(self.feature_shape))

    def preprocess(self, pixels):
        """Apply the backbone's own ``preprocess_input`` to RGB pixels in 0–255.

        Parameters
        ----------
        pixels : ndarray of shape (n, h, w, 3)

        Returns
        -------
        ndarray of float32
        """
        batch = np.array(pixels, dtype=np.float32, copy=True)
        return np.asarray(self.spec.preprocess_input()(batch), dtype=np.float32)

    def _forward_function(self):
        with self._lock:
            if self._forward is None:
                import tensorflow as tf

                model = self.model
                # One traced graph for all batches; reduce_retracing covers a shorter last batch.
                self._forward = tf.function(
                    lambda x: model(x, training=False), reduce_retracing=True
                )
            return self._forward

    def features(self, pixels):
        """Run preprocessing and the frozen network on a batch.

        Parameters
        ----------
        pixels : ndarray of shape (n, h, w, 3)
            RGB values in 0–255.

        Returns
        -------
        ndarray of shape (n, n_features), float32
        """
        outputs = self._forward_function()(self.preprocess(pixels))
        return np.asarray(outputs, dtype=np.float32).reshape(len(pixels), -1)


_REGISTRY: dict = {}
_REGISTRY_LOCK = threading.Lock()


def _build(spec, weights, image_size, pooling, precision):
    from ._parallel import limit_tf_threads
    from ._tfstartup import download_notice_to_stderr, start_tensorflow

    start_tensorflow()  # without its C++ start-up notices on stderr
    limit_tf_threads()  # in a worker process, before this process's first TF op
    import keras

    weights_file = weights not in (None, "imagenet")
    if weights_file:
        # Known at once from the file's size, with no model built and no Keras noise. By
        # count, not by name: a spec of another name (a variant) can share the architecture.
        count = count_weights(weights)
        if count is not None and spec.n_weights and count != spec.n_weights:
            raise WeightsUnavailableError(mismatch_message(spec, weights))
    constructor = spec.keras_constructor()
    previous_policy = keras.config.dtype_policy()
    if precision == "bfloat16":
        keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        # A weights file that does not fit makes Keras warn once per layer before it fails.
        # Keras picks its loader by the file's suffix: it gets a name fitting the content.
        with warnings.catch_warnings(record=True) as keras_warnings, \
                download_notice_to_stderr(), \
                keras_loadable(weights) if weights_file else _no_alias(weights) as loadable:
            warnings.simplefilter("always")
            model = constructor(
                include_top=False,
                weights=loadable,
                input_shape=(*image_size, 3),
                pooling=pooling,
            )
    except Exception as exc:  # Keras raises a bare Exception for failed downloads.
        message = str(exc)
        if weights == "imagenet" and ("fetch failure" in message or "URL" in message):
            reason = message.split(" -- ")[-1]
            raise WeightsUnavailableError(
                offline_weights_message(spec.name, reason), backbone=spec.name,
                download_error=reason,
            ) from exc
        if weights_file:
            raise WeightsUnavailableError(mismatch_message(spec, weights, message)) from exc
        raise ValueError(
            f"Keras could not build backbone {spec.name!r} with image_size={tuple(image_size)}"
            f" and pooling={pooling!r}: {message}"
        ) from exc
    finally:
        keras.config.set_dtype_policy(previous_policy)
    if len(keras_warnings) > 3:  # loaded, but Keras had doubts: one warning, not one per layer
        first = " ".join(str(keras_warnings[0].message).split())
        warnings.warn(
            f"Keras gave {len(keras_warnings)} warnings while building backbone "
            f"{spec.name!r} with weights={weights!r}; the first: {first[:300]}",
            UserWarning, stacklevel=3,
        )
    else:
        for caught in keras_warnings:
            warnings.warn_explicit(caught.message, caught.category, caught.filename,
                                   caught.lineno)
    if weights is None:
        _reinitialise_deterministically(model, RANDOM_WEIGHTS_SEED)
    model.trainable = False
    feature_shape = tuple(int(d) for d in model.output_shape[1:])
    return Backbone(spec=spec, model=model, feature_shape=feature_shape, precision=precision)


@contextlib.contextmanager
def _no_alias(weights):
    yield weights


def get_backbone(name="vgg16", *, weights="imagenet", image_size=None, pooling="avg",
                 precision="float32") -> Backbone:
    """Build a frozen backbone, or return the one this process already built.

    Parameters
    ----------
    name : str, default="vgg16"
        A name from :func:`available_backbones`.
    weights : "imagenet", None or path-like, default="imagenet"
        ``"imagenet"`` downloads (or reuses Keras' cached copy of) the ImageNet weights; a
        path loads a weights file offline; ``None`` gives a deterministic random init.
    image_size : tuple of int, optional
        ``(height, width)``; defaults to the backbone's own size.
    pooling : {"avg", "max", None}, default="avg"
        Global pooling of the last feature map, or ``None`` to keep (and flatten) it; the
        default is :class:`~skanimal.BottleneckFeatures`' own.
    precision : {"float32", "bfloat16"}
        Compute precision; ``"bfloat16"`` uses Keras' ``mixed_bfloat16`` policy.

    Returns
    -------
    Backbone

    Raises
    ------
    WeightsUnavailableError
        When the weights cannot be downloaded or read; the message says how to run offline.
    """
    spec = get_spec(name)
    weights = check_weights(weights)
    image_size = tuple(int(s) for s in (image_size or spec.default_size))
    key = (spec.name, weights_identity(weights), image_size, pooling, precision)
    with _REGISTRY_LOCK:
        backbone = _REGISTRY.get(key)
        if backbone is None:
            backbone = _build(spec, weights, image_size, pooling, precision)
            _REGISTRY[key] = backbone
    return backbone


def imagenet_available(backbone="vgg16", *, image_size=None):
    """Whether the ImageNet weights of ``backbone`` can be had here (downloaded or cached).

    Tries to build the backbone with ``weights="imagenet"``. On success the built model is
    kept, so a :class:`~skanimal.BottleneckFeatures` with the same backbone and
    ``image_size`` reuses it instead of loading the weights again.

    Parameters
    ----------
    backbone : str, default="vgg16"
        A name from :func:`available_backbones`.
    image_size : tuple of int, optional
        ``(height, width)`` the backbone will be used at; defaults to its own size.

    Returns
    -------
    bool
        ``False`` when Keras can neither download the weights nor find its cached copy
        (e.g. offline); any other error propagates.

    Examples
    --------
    >>> from skanimal import BottleneckFeatures, imagenet_available
    >>> weights = "imagenet" if imagenet_available() else None  # doctest: +SKIP
    >>> features = BottleneckFeatures(weights=weights)          # doctest: +SKIP
    """
    try:
        get_backbone(backbone, weights="imagenet", image_size=image_size)
    except WeightsUnavailableError:
        return False
    return True
