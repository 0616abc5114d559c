"""Registry of frozen ImageNet backbones from ``keras.applications``.

A backbone is described once (:class:`BackboneSpec`: constructor, its own
``preprocess_input``, default image size) and built lazily, once per process and
configuration (:func:`get_backbone`). Estimators keep only the *name* of a backbone in their
parameters, so clones share the built model and pickles never carry its weights.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import io
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .cache import hash_file
from .exceptions import WeightsUnavailableError

__all__ = [
    "BackboneSpec", "Backbone", "BACKBONES", "available_backbones", "get_backbone",
    "imagenet_available", "backbone_for_weights_file", "find_weights_file", "keras_cache_dirs",
    "keras_models_dir",
    "offline_weights_message",
]

#: Seed of the deterministic initialisation used when ``weights=None``: features must be the
#: same in every process (cache, pickles, workers), which Keras' random init does not give.
RANDOM_WEIGHTS_SEED = 0


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


@functools.cache
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    # size and mtime are part of the lru key so an edited file is hashed again.
    return hash_file(path)


def weights_identity(weights) -> str:
    """A string that changes whenever the backbone's weights would.

    Parameters
    ----------
    weights : "imagenet", None or path-like
        The ``weights`` parameter.

    Returns
    -------
    str
        ``"imagenet"``, ``"random-<seed>"`` or ``"sha256:<digest of the file>"``.

    Raises
    ------
    ValueError
        If ``weights`` is none of these.
    WeightsUnavailableError
        If ``weights`` is a path to no readable file.
    """
    weights = _check_weights(weights)
    if weights is None:
        return f"random-{RANDOM_WEIGHTS_SEED}"
    if weights == "imagenet":
        return "imagenet"
    try:
        stat = os.stat(weights)
    except OSError as exc:  # removed since _check_weights looked
        raise WeightsUnavailableError(
            f"weights={weights!r} is neither 'imagenet', None, nor a readable weights file: "
            f"{exc}"
        ) from exc
    return "sha256:" + _file_sha256(os.path.abspath(weights), stat.st_size, stat.st_mtime_ns)


def _looks_like_imagenet(text):
    # "ImageNet", "image-net", "imagnet ": a name mistyped, not a path (no folder in it).
    if os.sep in text or (os.altsep and os.altsep in text):
        return False
    letters = "".join(c for c in text.lower() if c.isalnum())
    return difflib.SequenceMatcher(None, letters, "imagenet").ratio() >= 0.8


def _check_weights(weights):
    if weights is None or (isinstance(weights, str) and weights == "imagenet"):
        return weights
    if isinstance(weights, (str, os.PathLike)):
        path = os.fspath(weights)
        if not os.path.isfile(path):
            if isinstance(weights, str) and _looks_like_imagenet(path):
                raise WeightsUnavailableError(
                    f"weights={path!r}: no such file; did you mean 'imagenet'?"
                )
            raise WeightsUnavailableError(
                f"weights={path!r}: no such file. Pass 'imagenet', None, or the path of a "
                "Keras weights file (.h5 or .weights.h5)."
            )
        return path
    raise ValueError(
        f"weights must be 'imagenet', None or a path to a weights file, got {weights!r}."
    )


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


# -------------------------------------------------------------------- weights files


@functools.lru_cache(maxsize=64)
def _count_file_weights(path: str, size: int, mtime_ns: int):
    # size and mtime are part of the lru key so an edited file is read again.
    try:
        import h5py

        total = 0

        def add(_, item):
            nonlocal total
            if isinstance(item, h5py.Dataset):
                total += int(np.prod(item.shape))

        with h5py.File(path, "r") as file:
            file.visititems(add)
        return total
    except Exception:  # not HDF5 (a .keras zip, a JPEG...): nothing to tell from it
        return None


def _weights_in_file(path):
    """Number of values stored in an HDF5 weights file, or ``None`` if it is not one."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return _count_file_weights(os.path.abspath(path), stat.st_size, stat.st_mtime_ns)


def backbone_for_weights_file(path):
    """The registered backbone a weights file seems to be for, read from the file alone.

    Compares the number of values the file holds with each backbone's
    ``include_top=False`` weights (``BackboneSpec.n_weights``); no model is built.

    Parameters
    ----------
    path : path-like
        A Keras weights file (``.weights.h5`` or legacy ``.h5``).

    Returns
    -------
    str or None
        A name from :func:`available_backbones`, or ``None`` when the file is not HDF5 or
        fits none of them.
    """
    count = _weights_in_file(os.fspath(path))
    for spec in BACKBONES.values():
        if count is not None and count == spec.n_weights:
            return spec.name
    return None


def _mismatch_message(spec, path, keras_message=None):
    """One line saying that weights file ``path`` does not fit backbone ``spec``."""
    count = _weights_in_file(path)
    fits = backbone_for_weights_file(path)
    if count is None:
        first_line = (keras_message or "").strip().splitlines()[0:1]
        detail = f": {first_line[0][:160]}" if first_line else ""
        return (f"weights file {path!r} is not a Keras weights file for backbone "
                f"{spec.name!r}{detail}")
    message = (f"weights file {path!r} does not fit backbone {spec.name!r} "
               f"(it holds {count:,} weights")
    if spec.n_weights:
        message += f"; {spec.name} without its top has {spec.n_weights:,}"
    message += ")"
    if fits is not None and fits != spec.name:
        message += f"; it seems to fit backbone {fits!r}"
    return message


def keras_models_dir():
    """The folder Keras downloads weights to: ``$KERAS_HOME/models``, by default
    ``~/.keras/models`` (``/tmp/.keras/models`` when the home folder is not writable).

    Returns
    -------
    str
        The folder, whether it exists yet or not.
    """
    home = os.environ.get("KERAS_HOME")
    if home is None:
        user_home = os.path.expanduser("~")
        home = os.path.join(user_home if os.access(user_home, os.W_OK) else "/tmp", ".keras")
    return os.path.join(os.path.expanduser(home), "models")


def keras_cache_dirs():
    """Existing folders where Keras keeps the weights it downloaded.

    ``$KERAS_HOME/models`` (default ``~/.keras/models``), and ``/tmp/.keras/models``, where
    Keras downloads to when its home folder is not writable.

    Returns
    -------
    list of str
    """
    candidates = [keras_models_dir(),
                  os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(),
                               ".keras", "models")]
    found = []
    for folder in candidates:
        if os.path.isdir(folder) and not any(os.path.samefile(folder, f) for f in found):
            found.append(folder)
    return found


def find_weights_file(identity, places=(), *, size=None, name=None, search_keras_cache=True):
    """Find a weights file by its content, e.g. after it was moved or renamed.

    Parameters
    ----------
    identity : str
        ``"sha256:<hex digest>"`` as given by ``weights_identity``, or the bare digest.
    places : iterable of path-like, default=()
        Files to check and folders to look into (not recursively), in this order.
    size : int, optional
        The file's size in bytes: files of another size are skipped without being read.
    name : str, optional
        The file's former base name: files of that name are checked first.
    search_keras_cache : bool, default=True
        Also look in Keras' own download folders (:func:`keras_cache_dirs`).

    Returns
    -------
    str or None
        The first file whose SHA-256 digest is ``identity``, or ``None``. Places that do not
        exist or cannot be read are skipped.
    """
    digest = str(identity).removeprefix("sha256:").lower()
    folders_and_files = [os.fspath(place) for place in places]
    if search_keras_cache:
        folders_and_files += keras_cache_dirs()
    candidates = []
    for place in folders_and_files:
        if os.path.isdir(place):
            try:
                entries = sorted(os.listdir(place))
            except OSError:
                continue
            candidates += [os.path.join(place, entry) for entry in entries]
        else:
            candidates.append(place)
    if name is not None:  # the likeliest first; sorted() is stable
        candidates = sorted(candidates, key=lambda path: os.path.basename(path) != name)
    for path in candidates:
        try:
            stat = os.stat(path)
        except OSError:
            continue
        if not os.path.isfile(path) or (size is not None and stat.st_size != size):
            continue
        try:
            if _file_sha256(os.path.abspath(path), stat.st_size, stat.st_mtime_ns) == digest:
                return path
        except OSError:
            continue
    return None


def offline_weights_message(backbone, download_error, *, cli=False):
    """What to do when the ImageNet weights of ``backbone`` cannot be downloaded.

    Parameters
    ----------
    backbone : str
        A name from :func:`available_backbones`.
    download_error : str
        Why the download failed.
    cli : bool, default=False
        Word the advice with the ``skanimal`` command's ``--weights`` option instead of the
        Python parameter.

    Returns
    -------
    str
        One line.
    """
    spec = get_spec(backbone)
    models = (keras_cache_dirs() or [os.path.join("~", ".keras", "models")])[0]
    if cli:
        pass_path, random = "--weights PATH (that file)", "--weights none"
    else:
        pass_path, random = "BottleneckFeatures(weights='/path/to/that_file.h5')", "weights=None"
    return (
        f"ImageNet weights for backbone {spec.name!r} could not be downloaded "
        f"({download_error}). To run offline, download the Keras 'notop' weights file once on "
        f"a machine with internet (e.g. {spec.constructor}(include_top=False, "
        f"weights='imagenet') caches it in ~/.keras/models/), copy it here and pass "
        f"{pass_path}, or put it in {models}/ under the same name; or use {random} for random "
        "(untrained) features."
    )


class _HeldDownloadNotice(io.TextIOBase):
    """Stand-in for stdout while Keras may download weights.

    Keras prints ``Downloading data from <url>`` to stdout, the stream that carries the
    ``skanimal`` command's results, and offline that line comes just before the failure.
    The first line is held; once more output shows the download under way, it and the rest
    go to stderr. :meth:`release` sends what is held to stderr after a successful build; a
    failed download drops it.
    """

    def __init__(self, target):
        self._target = target
        self._held = ""
        self._live = False

    def writable(self):
        return True

    def write(self, text):
        if self._live:
            self._target.write(text)
        elif "\n" in self._held:  # a second write: the download is making progress
            self._live = True
            self._target.write(self._held + text)
            self._held = ""
        else:
            self._held += text
        return len(text)

    def flush(self):
        if self._live:
            self._target.flush()

    def release(self):
        if self._held:
            self._target.write(self._held)
            self._held = ""


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
    from ._tfstartup import start_tensorflow

    start_tensorflow()  # without its C++ start-up notices on stderr
    limit_tf_threads()  # in a worker process, before this process's first TF op
    import keras

    weights_file = weights not in (None, "imagenet")
    if weights_file:
        # Known at once from the file's size, with no model built and no Keras noise. By
        # count, not by name: a spec of another name (a variant) can share the architecture.
        count = _weights_in_file(weights)
        if count is not None and spec.n_weights and count != spec.n_weights:
            raise WeightsUnavailableError(_mismatch_message(spec, weights))
    constructor = spec.keras_constructor()
    previous_policy = keras.config.dtype_policy()
    if precision == "bfloat16":
        keras.config.set_dtype_policy("mixed_bfloat16")
    download_notice = _HeldDownloadNotice(sys.stderr)
    try:
        # A weights file that does not fit makes Keras warn once per layer before it fails.
        with warnings.catch_warnings(record=True) as keras_warnings, \
                contextlib.redirect_stdout(download_notice):
            warnings.simplefilter("always")
            model = constructor(
                include_top=False,
                weights=weights,
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
            raise WeightsUnavailableError(_mismatch_message(spec, weights, message)) from exc
        raise ValueError(
            f"Keras could not build backbone {spec.name!r} with image_size={tuple(image_size)}"
            f" and pooling={pooling!r}: {message}"
        ) from exc
    finally:
        keras.config.set_dtype_policy(previous_policy)
    download_notice.release()
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
    weights = _check_weights(weights)
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
