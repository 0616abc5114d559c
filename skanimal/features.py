"""``BottleneckFeatures``: image files or arrays → frozen-CNN "bottleneck" features.

Data flows one way: paths → bytes → pixels (:mod:`skanimal.images`) → backbone
(:mod:`skanimal.backbones`) → a 2-D float32 array. Features are kept in a content-addressed
disk cache (:mod:`skanimal.cache`), so each image goes through the CNN once, ever, whatever
clone, CV fold, grid point or process asks for it.
"""

from __future__ import annotations

import collections
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from numbers import Integral

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ._version import __version__
from .backbones import find_weights_file, get_backbone, get_spec, keras_cache_dirs, weights_identity
from .cache import (
    FEATURE_FORMAT_VERSION,
    FeatureCache,
    hash_array_row,
    hash_bytes,
    hash_file,
    make_fingerprint,
    resolve_cache_dir,
)
from .compat import Interval, StrOptions, fit_context
from .exceptions import (
    ImageLoadError,
    IncompatibleModelError,
    SmallImageWarning,
    WeightsUnavailableError,
)
from .images import (
    ImageItem,
    check_images,
    decode_item,
    read_item_bytes,
    resize_array_batch,
    stored_image_size,
)

__all__ = ["BottleneckFeatures", "Extraction", "SMALL_IMAGE_FRACTION"]

#: An image file is "far smaller" than the network's input when both its sides are below
#: this fraction of the input's: upscaled 8 times or more, it shows the CNN little but blur.
SMALL_IMAGE_FRACTION = 1 / 8


@dataclass
class Extraction:
    """What :meth:`BottleneckFeatures.extract` produced, besides the features.

    Attributes
    ----------
    features : ndarray of shape (n_kept, ``n_features_out_``), float32
        Features of the images that could be read, in the order of ``X``.
    kept : ndarray of int
        Position in ``X`` of each row of ``features``.
    errors : list of ImageLoadError
        The images that could not be read (``on_error="skip"``), in the order of ``X``;
        each names its file (``.path``) and position (``.index``).
    content_keys : list of str
        The content key (SHA-256 of the file's bytes, the feature cache's key) of each row.
    n_cached : int
        How many rows came from the feature cache rather than the CNN.
    small_images : list of (str, (int, int))
        Files far smaller than the network's input (``SMALL_IMAGE_FRACTION``) and their
        ``(width, height)``.
    """

    features: np.ndarray = field(repr=False)
    kept: np.ndarray = field(repr=False)
    errors: list = field(default_factory=list)
    content_keys: list = field(default_factory=list, repr=False)
    n_cached: int = 0
    small_images: list = field(default_factory=list)


def _key_prefix(key):
    """The first 8 bytes of a hex content key as an int: compact, and collision-free in
    practice among the images of one data set."""
    return int(str(key)[:16], 16)

_POOLINGS = (None, "avg", "max")
_PRECISIONS = ("float32", "bfloat16", "int8")


#: Threads writing cache entries; they mostly wait for fsync, so more than the cores.
_CACHE_WRITERS = 4


def _decode_threads():
    # Decoding releases the GIL; a few threads keep ahead of the CNN without starving it.
    return max(2, min(8, os.cpu_count() or 2))


class BottleneckFeatures(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Turn images into features of a frozen ImageNet CNN ("bottleneck" features).

    Each image is decoded with Pillow (EXIF orientation applied, any mode converted to RGB,
    alpha composited on white), resized to ``image_size``, passed through the backbone's own
    Keras ``preprocess_input`` and the ``include_top=False`` network. Results are cached on
    disk by image content, so repeated fits, CV folds and later runs reuse them.

    Parameters
    ----------
    backbone : str, default="vgg16"
        A name from :func:`skanimal.available_backbones` (``"vgg16"``, ``"vgg19"``,
        ``"resnet50"``, ``"mobilenet_v2"``, ``"efficientnet_b0"``, ``"inception_v3"``).
    weights : "imagenet", None or path-like, default="imagenet"
        ``"imagenet"`` uses Keras' download (and cache) of the ImageNet weights. A path loads
        a Keras weights file offline (e.g. ``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5``).
        ``None`` uses a deterministic random initialisation (for tests and benchmarks).
    image_size : tuple of int, optional
        ``(height, width)`` images are resized to; defaults to the backbone's own
        (224×224 for VGG16).
    pooling : {"avg", "max", None}, default="avg"
        ``"avg"``/``"max"`` pool the last feature map globally (512 features for VGG16, 1280
        for MobileNetV2); ``None`` flattens it (7×7×512 = 25088 features for VGG16 at 224 px),
        as the reference article did. Average pooling learns more from few images (on
        animals-dev with MobileNetV2 and the default head, see the README's Quality section)
        and keeps features and cache small.
    precision : {"float32", "bfloat16", "int8"}, default="float32"
        ``"bfloat16"`` computes in mixed bfloat16 (faster on CPUs with AVX512-BF16/AMX).
        ``"int8"`` runs the backbone through OpenVINO, quantized by NNCF post-training
        quantization on (up to 300 of) the images given to ``fit`` (needs
        ``pip install "skanimal[openvino]"``; about 3-4× float32 on CPUs with
        AVX512-VNNI). Features are returned as float32 either way.
    batch_size : int, default=32
        Images per forward pass of the backbone.
    cache : bool or path-like, default=True
        ``True`` caches features in ``$SKANIMAL_CACHE_DIR`` or, when unset, the platform's
        user cache directory; a path uses that directory; ``False`` disables caching.
    n_jobs : int, optional
        Number of ``joblib`` workers ``transform`` splits ``X`` across (``None`` means 1,
        ``-1`` all). Inside ``joblib.parallel_config(backend="dask")`` they run on a cluster.
    verbose : int, default=0
        Show a progress bar while extracting when > 0.

    Attributes
    ----------
    image_size_ : tuple of int
        ``(height, width)`` images are resized to: ``image_size``, or the backbone's own
        size when it is None.
    feature_shape_ : tuple of int
        Shape of one image's backbone output before flattening.
    n_features_out_ : int
        Number of output features.
    quantized_backbone_ : skanimal.openvino_engine.Int8Backbone
        Only with ``precision="int8"``: the quantized network (OpenVINO IR bytes), which
        pickles, saves and travels to ``n_jobs`` workers with the estimator.
    weights_identity_ : str
        What the weights were when fitted: ``"imagenet"``, ``"random-0"`` or
        ``"sha256:<digest>"`` of the weights file. A fitted transformer whose weights file
        has moved finds it by this digest (beside the old path and in Keras' cache folder)
        or is told where it is with :meth:`relocate_weights`.
    training_hashes_ : ndarray of uint64 or None
        The first 8 bytes of the content key (SHA-256) of each image ``fit`` was given,
        sorted; None when ``fit`` got no images. :meth:`fitted_on` uses them to tell which
        images a model was trained on.

    See Also
    --------
    BottleneckClassifier : The Keras head that usually follows.

    Examples
    --------
    >>> from skanimal import BottleneckFeatures
    >>> features = BottleneckFeatures(weights=None, image_size=(32, 32), cache=False)
    >>> features.fit_transform(np.zeros((2, 32, 32, 3), dtype="uint8")).shape
    (2, 512)
    """

    # Checked once per fit (see `fit_context`) and before each transform; `bool` is never
    # accepted as a number. backbone, weights and cache are checked by _validate_params.
    _parameter_constraints = {
        "backbone": "no_validation",
        "weights": "no_validation",
        "image_size": [Interval(Integral, 1, None, closed="left"), "array-like", None],
        "pooling": [StrOptions({p for p in _POOLINGS if p}), None],
        "precision": [StrOptions(set(_PRECISIONS))],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "cache": "no_validation",
        "n_jobs": [Interval(Integral, None, None, closed="neither"), None],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        backbone="vgg16",
        *,
        weights="imagenet",
        image_size=None,
        pooling="avg",
        precision="float32",
        batch_size=32,
        cache=True,
        n_jobs=None,
        verbose=0,
    ):
        self.backbone = backbone
        self.weights = weights
        self.image_size = image_size
        self.pooling = pooling
        self.precision = precision
        self.batch_size = batch_size
        self.cache = cache
        self.n_jobs = n_jobs
        self.verbose = verbose

    # -- parameters --------------------------------------------------------------------------
    def _resolved_image_size(self):
        spec = get_spec(self.backbone)
        size = self.image_size if self.image_size is not None else spec.default_size
        if isinstance(size, (int, np.integer)):
            size = (size, size)
        try:
            size = tuple(int(s) for s in size)
        except (TypeError, ValueError):
            size = ()
        if len(size) != 2 or min(size) < spec.min_size:
            raise ValueError(
                f"image_size must be (height, width) with both ≥ {spec.min_size} for backbone "
                f"{spec.name!r}, got {self.image_size!r}."
            )
        return size

    def _validate_params(self):
        super()._validate_params()  # _parameter_constraints
        get_spec(self.backbone)
        resolve_cache_dir(self.cache)
        return self._resolved_image_size()

    def _recorded_weights(self):
        """The fitted ``sha256:`` identity of the weights file, or None."""
        recorded = getattr(self, "weights_identity_", None)
        return recorded if str(recorded).startswith("sha256:") else None

    def _weights_in_use(self):
        """The ``weights`` to build the backbone with.

        The parameter, except when it names a file that is gone and ``fit`` recorded its
        content: then a file with that content beside the old path or in Keras' cache
        folder (a moved or renamed weights file), or a one-line error saying how to point
        at the new place.
        """
        weights, recorded = self.weights, self._recorded_weights()
        if (recorded is None or weights is None or weights == "imagenet"
                or not isinstance(weights, (str, os.PathLike)) or os.path.isfile(weights)):
            return weights
        weights = os.fspath(weights)
        relocated = getattr(self, "_relocated", None)
        if relocated is not None and relocated[0] == (weights, recorded) \
                and os.path.isfile(relocated[1]):
            return relocated[1]
        folder = os.path.dirname(os.path.abspath(weights))
        found = find_weights_file(recorded, [folder], name=os.path.basename(weights))
        if found is None:
            places = ", ".join(repr(p) for p in [folder, *keras_cache_dirs()])
            raise WeightsUnavailableError(
                f"weights file {weights!r} no longer exists, and no file with its content "
                f"(sha256 {recorded[7:19]}…) is in {places}; pass its new place: "
                "--weights PATH (skanimal predict/evaluate), skanimal.load(..., weights=PATH) "
                "or BottleneckFeatures.relocate_weights(PATH)"
            )
        warnings.warn(f"weights file {weights!r} no longer exists; using {found!r}, which has "
                      "the same content", UserWarning, stacklevel=4)
        self._relocated = ((weights, recorded), found)
        return found

    def relocate_weights(self, place):
        """Point a fitted transformer at the new place of its weights file.

        Parameters
        ----------
        place : path-like
            The weights file itself, or a folder holding it (under any name).

        Returns
        -------
        self : BottleneckFeatures
            With ``weights`` set to the file found.

        Raises
        ------
        WeightsUnavailableError
            When ``place`` holds no file with the content ``fit`` saw
            (``weights_identity_``), e.g. the weights of another backbone or version.
        """
        check_is_fitted(self, "n_features_out_")
        recorded = self._recorded_weights()
        if recorded is None:
            raise WeightsUnavailableError(
                f"this model was fitted with weights={self.weights!r}, not a weights file; "
                "there is nothing to relocate"
            )
        place = os.fspath(place)
        if not os.path.exists(place):
            raise WeightsUnavailableError(f"weights={place!r}: no such file or folder")
        found = find_weights_file(recorded, [place], search_keras_cache=False)
        if found is None:
            what = (f"is not the weights file this model was made with (its sha256 is "
                    f"{weights_identity(place)[7:19]}…, the model's {recorded[7:19]}…)"
                    if os.path.isfile(place) else
                    f"holds no file with the content of the model's weights (sha256 "
                    f"{recorded[7:19]}…)")
            raise WeightsUnavailableError(f"weights {place!r} {what}")
        return self.set_params(weights=found)

    def _checked_weights(self):
        weights = self._weights_in_use()
        recorded = self._recorded_weights()
        if recorded is not None and weights_identity(weights) != recorded:
            raise WeightsUnavailableError(
                f"weights={weights!r} are not the weights this model was fitted with "
                f"(now {weights_identity(weights)[:19]}…, then {recorded[:19]}…): its features "
                "would not match the classifier; refit, or restore the file"
            )
        return weights

    def weights_file(self):
        """The weights file the backbone is built from, checked against the fitted content.

        Returns
        -------
        str or None
            The ``weights`` parameter, or the file with the recorded content found beside
            its old place or in Keras' cache folder after a move; None for ``"imagenet"``
            and random weights.

        Raises
        ------
        WeightsUnavailableError
            When the file is gone and not found, or its content is not what ``fit`` saw.
        """
        weights = self._checked_weights()
        if weights is None or (isinstance(weights, str) and weights == "imagenet"):
            return None
        return os.fspath(weights)

    def _get_backbone(self):
        if self.precision == "int8":
            return self._quantized_backbone()
        weights = self._checked_weights()
        return get_backbone(
            self.backbone,
            weights=weights,
            image_size=self._resolved_image_size(),
            pooling=self.pooling,
            precision=self.precision,
        )

    def _fingerprint(self):
        spec = get_spec(self.backbone)
        int8 = {}
        if self.precision == "int8":
            # The quantized weights and ranges (so the calibration), NNCF settings, versions.
            int8 = {"int8_model": self._quantized_backbone().fingerprint()}
        return make_fingerprint(
            backbone=spec.name,
            # A fitted transformer keys the cache with the weights it was fitted with, so
            # cached images need no weights file at all.
            weights=self._recorded_weights() or weights_identity(self.weights),
            image_size=self._resolved_image_size(),
            pooling=self.pooling,
            preprocessing=spec.preprocessing,
            precision=self.precision,
            **int8,
        )

    def _quantized_backbone(self):
        quantized = getattr(self, "quantized_backbone_", None)
        if quantized is None:
            raise ValueError(
                "precision='int8' needs the quantized backbone that fit(X) calibrates on X; "
                "this estimator has none (was precision changed after fit?). Call fit(X) again."
            )
        return quantized

    def _feature_store(self):
        directory = resolve_cache_dir(self.cache)
        if directory is None:
            return None
        fingerprint = self._fingerprint()
        store = getattr(self, "_store", None)
        # One store per configuration for the estimator's life, so an unusable directory
        # warns once, not at every fit and transform.
        if store is None or (store.directory, store.fingerprint) != (directory, fingerprint):
            store = self._store = FeatureCache(directory, fingerprint)
        return store

    # -- estimator API -----------------------------------------------------------------------
    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X=None, y=None):
        """Build (or reuse) the frozen backbone; only ``precision="int8"`` learns from ``X``.

        Parameters
        ----------
        X : sequence of path-like or ndarray of shape (n, h, w, 3), optional
            Images; their content keys are recorded (``training_hashes_``). With
            ``precision="int8"`` they are required: fit calibrates its quantization on (up
            to 300 of) them.
        y : ignored

        Returns
        -------
        self : BottleneckFeatures

        Raises
        ------
        WeightsUnavailableError
            When ImageNet weights cannot be downloaded, with how to run offline. (When the
            feature cache already holds this configuration, fit needs no backbone at all.)
        ImportError
            With ``precision="int8"`` when OpenVINO/NNCF are missing: what to install.

        Notes
        -----
        With ``precision="int8"``, fit quantizes the backbone, calibrating on up to 300 images
        of ``X`` (those whose content keys sort first: the same images give the same model,
        whatever their order), which is then required. Each distinct calibration gives
        different features, so the cache keeps them apart.
        """
        if self.precision == "int8":
            return self._fit_int8(X)
        self.__dict__.pop("quantized_backbone_", None)
        keys = _content_keys(check_images(X)) if X is not None else None
        self.weights_identity_ = weights_identity(self.weights)  # this fit's, not a former one
        # A cache that already holds this configuration knows the feature shape: a warm run
        # then never builds the backbone (nor imports TensorFlow).
        store = self._feature_store()
        shape = store.get_feature_shape() if store is not None else None
        if shape is None:
            shape = self._get_backbone().feature_shape
            if store is not None:
                store.put_feature_shape(shape)
        return self._set_fitted(shape, training_keys=keys)

    def fit_transform(self, X, y=None):
        """:meth:`fit`, then :meth:`transform`, reading each image once.

        Parameters
        ----------
        X : sequence of path-like or ndarray of shape (n, h, w, 3)
        y : ignored

        Returns
        -------
        ndarray of shape (n_images, ``n_features_out_``), float32
        """
        if self.precision == "int8":  # calibration needs the images themselves
            return self.fit(X).transform(X)
        self.fit()
        extraction = self.extract(X)
        self.training_hashes_ = _hash_prefixes(extraction.content_keys)
        return extraction.features

    def _fit_int8(self, X):
        """Quantize the backbone, calibrating on a sample of ``X`` (see :meth:`fit`)."""
        from .openvino_engine import calibration_sample, quantize_backbone, require_openvino

        require_openvino(quantize=True)  # before reading any image
        if X is None:
            raise ValueError(
                "precision='int8' calibrates the quantized backbone on the images fit gets: "
                "call fit(X) with (a sample of) the images you will transform."
            )
        images = check_images(X)
        size = self._resolved_image_size()

        def key(i):
            if isinstance(images, np.ndarray):
                return hash_array_row(images[i])
            return _item_key(images[i], read_item_bytes(images[i], index=i))

        def pixels_of(i):  # a calibration image is read again: fit keeps no bytes of all X
            if isinstance(images, np.ndarray):
                return resize_array_batch(images[i:i + 1], size)[0]
            data = read_item_bytes(images[i], index=i)
            return decode_item(images[i], data, size, index=i)

        with ThreadPoolExecutor(_decode_threads(), thread_name_prefix="skanimal-decode") as pool:
            keys = list(pool.map(key, range(len(images))))
            sample = calibration_sample(keys)
            pixels = np.stack(list(pool.map(pixels_of, sample)))
        backbone = get_backbone(self.backbone, weights=self.weights, image_size=size,
                                pooling=self.pooling, precision="float32")
        self.quantized_backbone_ = quantize_backbone(backbone, pixels, [keys[i] for i in sample],
                                                   verbose=bool(self.verbose))
        self.weights_identity_ = weights_identity(self.weights)
        shape = self.quantized_backbone_.feature_shape
        store = self._feature_store()
        if store is not None:
            store.put_feature_shape(shape)
        return self._set_fitted(shape, training_keys=keys)

    @classmethod
    def from_fitted_state(cls, params, feature_shape, *,
                          feature_format_version=FEATURE_FORMAT_VERSION, versions=None,
                          training_hashes=None, weights_identity=None):
        """A fitted transformer rebuilt from saved state, reading no image.

        What :func:`skanimal.load` uses: the parameters are validated as ``fit`` validates
        them, and the fitted attributes are set exactly as ``fit`` sets them. The backbone
        is built lazily on the first ``transform``, as after ``joblib.load``.

        Parameters
        ----------
        params : dict
            Constructor parameters.
        feature_shape : sequence of int
            ``feature_shape_`` of the fitted transformer.
        feature_format_version : int, optional
            The feature format the state was saved with.
        versions : dict, optional
            ``versions_`` of the fitted transformer (this installation's by default).
        training_hashes : sequence of str, optional
            Content keys (or their 16-hex-digit prefixes) of the images ``fit`` was given.
        weights_identity : str, optional
            ``weights_identity_`` of the fitted transformer.

        Returns
        -------
        BottleneckFeatures
            Fitted.

        Raises
        ------
        ValueError or TypeError
            When a parameter is invalid (an ``InvalidParameterError``, both at once).
        """
        features = cls(**params)
        features._validate_params()
        return features._set_fitted(feature_shape, feature_format_version, versions,
                                    training_keys=training_hashes,
                                    weights_identity=weights_identity)

    def _set_fitted(self, feature_shape, feature_format_version=FEATURE_FORMAT_VERSION,
                    versions=None, training_keys=None, weights_identity=None):
        """Set the fitted attributes (``fit``, and :func:`skanimal.load` with saved values)."""
        if weights_identity is not None:
            self.weights_identity_ = weights_identity
        self.training_hashes_ = _hash_prefixes(training_keys)
        self.image_size_ = self._resolved_image_size()
        self.feature_shape_ = tuple(feature_shape)
        self.n_features_out_ = int(np.prod(self.feature_shape_))
        # Recorded so a saved model made by another version can be checked when it is loaded.
        self.feature_format_version_ = feature_format_version
        self.versions_ = _library_versions() if versions is None else dict(versions)
        return self

    def __setstate__(self, state):
        saved_format = state.get("feature_format_version_", FEATURE_FORMAT_VERSION)
        if saved_format != FEATURE_FORMAT_VERSION:
            made_with = state.get("versions_", {}).get("skanimal", "an unknown version")
            raise IncompatibleModelError(
                f"This model was made with skanimal {made_with}, whose image features "
                f"(format {saved_format}) differ from this skanimal {__version__}'s (format "
                f"{FEATURE_FORMAT_VERSION}); its head would predict garbage. Retrain it, or "
                f"load it with skanimal {made_with}."
            )
        super().__setstate__(state)

    @property
    def _n_features_out(self):
        # Used by ClassNamePrefixFeaturesOutMixin.get_feature_names_out.
        return self.n_features_out_

    def transform(self, X):
        """Extract bottleneck features, from the cache where possible.

        Parameters
        ----------
        X : sequence of path-like, pandas Series of paths, or ndarray of shape (n, h, w, 3)
            Image files, or RGB pixel arrays in 0–255 (uint8 or float).

        Returns
        -------
        ndarray of shape (n_images, ``n_features_out_``), float32

        Raises
        ------
        ImageLoadError
            For a missing, unreadable or non-image file; names the file and its index in X.

        Warns
        -----
        SmallImageWarning
            Naming the image files far smaller than the network's input.
        """
        return self.extract(X).features

    def extract(self, X, *, on_error="raise"):
        """:meth:`transform`, with what happened on the way: unreadable images, cache hits.

        Parameters
        ----------
        X : sequence of path-like, pandas Series of paths, or ndarray of shape (n, h, w, 3)
            As for :meth:`transform`.
        on_error : {"raise", "skip"}, default="raise"
            ``"raise"`` stops at the first image that cannot be read; ``"skip"`` goes on
            without every such image and lists them in ``Extraction.errors``.

        Returns
        -------
        Extraction

        Raises
        ------
        ImageLoadError
            With ``on_error="raise"``, for a missing, unreadable or non-image file.
        """
        check_is_fitted(self, "n_features_out_")
        self._validate_params()
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}.")
        images = check_images(X)
        n_jobs = 1 if self.n_jobs is None else self.n_jobs
        if n_jobs != 1 and len(images) > self.batch_size:
            extraction = self._transform_parallel(images, n_jobs, on_error)
        else:
            extraction = self._transform_images(images, offset=0, on_error=on_error)
        if extraction.small_images:
            self._warn_small(extraction.small_images)
        return extraction

    def _warn_small(self, small_images):
        height, width = self._resolved_image_size()
        shown = ", ".join(f"{path!r} ({w}x{h})" for path, (w, h) in small_images[:5])
        more = f" and {len(small_images) - 5} more" if len(small_images) > 5 else ""
        warnings.warn(
            f"{len(small_images)} image file(s) far smaller than the network's {height}x{width} "
            f"input are upscaled, so their features say little: {shown}{more}",
            SmallImageWarning, stacklevel=3,
        )

    def fitted_on(self, content_keys):
        """Which images (by content key) were among those ``fit`` was given.

        Parameters
        ----------
        content_keys : sequence of str
            Content keys, e.g. ``Extraction.content_keys``.

        Returns
        -------
        ndarray of bool or None
            None when ``fit`` got no images (``training_hashes_`` is None).
        """
        check_is_fitted(self, "n_features_out_")
        known = getattr(self, "training_hashes_", None)
        if known is None:
            return None
        prefixes = np.array([_key_prefix(k) for k in content_keys], dtype=np.uint64)
        return np.isin(prefixes, known)

    def _transform_parallel(self, images, n_jobs, on_error="raise"):
        """Features of ``images`` computed in chunks by ``joblib.Parallel`` workers.

        Runs on whatever joblib backend is active (loky processes by default; a Dask, Ray or
        Spark cluster inside ``joblib.parallel_config(backend=...)``). Chunks are whole
        batches (so the backbone sees the same batches as in a serial run), about
        ``4 × workers`` of them, each shipping only paths (or pixel rows) and the
        estimator's parameters: every worker process builds the backbone once, from its
        name, and reuses it for all its chunks. The cache directory is resolved here, in
        the calling process, and passed to the workers as an explicit path.
        """
        from joblib import effective_n_jobs
        from tqdm.auto import tqdm

        from ._parallel import caller_tf_threads, chunk_bounds

        n_workers = effective_n_jobs(n_jobs)
        bounds = chunk_bounds(len(images), self.batch_size, n_workers)
        if n_workers == 1 or len(bounds) == 1:
            # joblib would run the chunks one by one in this process anyway.
            return self._transform_images(images, offset=0, on_error=on_error)
        tf_threads = caller_tf_threads()  # validated here, shipped to the workers
        directory = resolve_cache_dir(self.cache)
        params = {
            **self.get_params(),
            "weights": self._weights_in_use(),  # workers are unfitted: no relocation there
            "n_jobs": None,
            "verbose": 0,
            # Workers may not share this process's environment ($SKANIMAL_CACHE_DIR) nor
            # its working directory: they get the directory as an absolute path.
            "cache": False if directory is None else os.path.abspath(directory),
        }
        # An int8 model is fitted state, not a parameter: it travels with each task (a few
        # MB of IR bytes; each worker process compiles it once).
        quantized = self._quantized_backbone() if self.precision == "int8" else None
        tasks = (
            delayed(_transform_chunk)(params, images[start:stop], start, os.getpid(), tf_threads,
                                      quantized, on_error)
            for start, stop in bounds
        )
        # One task per chunk (chunks are coarse already); results come back in order.
        parallel = Parallel(n_jobs=n_jobs, batch_size=1, return_as="generator")
        parts = []
        with tqdm(total=len(images), unit="img", desc="Extracting features",
                  disable=not self.verbose) as progress:
            for (start, stop), part in zip(bounds, parallel(tasks)):
                parts.append(part)
                progress.update(stop - start)
        return Extraction(
            features=np.concatenate([part.features for part in parts]),
            kept=np.concatenate([part.kept for part in parts]),
            errors=[error for part in parts for error in part.errors],
            content_keys=[key for part in parts for key in part.content_keys],
            n_cached=sum(part.n_cached for part in parts),
            small_images=[item for part in parts for item in part.small_images],
        )

    def _transform_images(self, images, offset, on_error="raise"):
        """:class:`Extraction` of ``images`` (checked paths list or 4-D array); ``offset`` is
        where ``images`` starts in the caller's X, so errors and ``kept`` use its indices.

        Each image is read once: a decoding thread reads its bytes, keys the cache with
        them and, on a miss, decodes the same bytes (:func:`_prepare`). Only the pixels of
        misses are kept, and only for the images in flight, a bounded window that lets the
        next batch decode while the CNN runs on this one. Writer threads store batch k in the
        cache while the CNN runs on batch k+1: each entry waits for its fsync (~3 ms for a
        250 KB entry here), which at hundreds of images per second (int8) would otherwise
        stall the CNN, and is waited for in parallel.
        """
        n_images = len(images)
        size = self._resolved_image_size()
        store = self._feature_store()
        output = None
        backbone = None
        keys = [None] * n_images
        errors = []  # ImageLoadError of each image skipped (on_error="skip")
        small = []  # (path, (width, height)) of files far smaller than the input
        n_cached = 0
        done = {}  # content key -> row computed by the CNN: duplicates go through it once
        waiting = {}  # content key -> row, for the misses in `batch`
        batch = []  # (row, key, pixels) of misses waiting for the CNN
        copies = []  # (row, row it copies) for duplicates of images in `batch`
        writing = []  # the previous batch's cache writes

        from tqdm.auto import tqdm

        progress = tqdm(total=n_images, unit="img", desc="Extracting features",
                        disable=not self.verbose)

        def run_batch():
            nonlocal backbone, output, writing
            if backbone is None:
                backbone = self._get_backbone()
            features = backbone.features(np.stack([pixels for _, _, pixels in batch]))
            if output is None:
                output = np.empty((n_images, features.shape[1]), dtype=np.float32)
            rows = [row for row, _, _ in batch]
            output[rows] = features
            if store is not None:
                for future in writing:  # one batch in the writers at most: memory stays flat
                    future.result()
                entries = [(key, row) for (_, key, _), row in zip(batch, features)]
                writing = [writer.submit(store.put_many, entries[i::_CACHE_WRITERS])
                           for i in range(_CACHE_WRITERS)]
            for row, source in copies:
                output[row] = output[source]
            progress.update(len(batch) + len(copies))
            done.update(waiting)
            waiting.clear()
            batch.clear()
            copies.clear()

        threads = _decode_threads()
        # Look-ahead window: the next batch decodes while the CNN runs on this one.
        window = self.batch_size + 2 * threads
        with progress, ThreadPoolExecutor(threads, thread_name_prefix="skanimal-decode") as pool, \
                ThreadPoolExecutor(_CACHE_WRITERS, thread_name_prefix="skanimal-cache") as writer:
            pending = collections.deque()
            submitted = 0
            try:
                for row in range(n_images):
                    while submitted < n_images and len(pending) < window:
                        pending.append(pool.submit(_prepare, images, submitted, offset, size,
                                                   store))
                        submitted += 1
                    try:
                        key, cached, pixels, stored_size = pending.popleft().result()
                    except ImageLoadError as exc:
                        if on_error != "skip":
                            raise
                        errors.append(exc)
                        progress.update(1)
                        continue
                    keys[row] = key
                    if stored_size is not None and _far_smaller(stored_size, size):
                        small.append((os.fspath(images[row]), stored_size))
                    if cached is not None:
                        n_cached += 1
                        if output is None:
                            output = np.empty((n_images, cached.shape[0]), dtype=np.float32)
                        output[row] = cached
                        progress.update(1)
                    elif key is not None and key in done:
                        output[row] = output[done[key]]
                        progress.update(1)
                    elif key is not None and key in waiting:
                        copies.append((row, waiting[key]))
                    else:
                        if key is not None:
                            waiting[key] = row
                        batch.append((row, key, pixels))
                        if len(batch) == self.batch_size:
                            run_batch()
                if batch:
                    run_batch()
                for future in writing:
                    future.result()
            finally:
                for future in pending:
                    future.cancel()
        failed = {exc.index - offset for exc in errors}
        kept = np.array([row for row in range(n_images) if row not in failed], dtype=np.intp)
        if output is None:  # nothing could be read
            n_features = getattr(self, "n_features_out_", None)  # unfitted in a worker
            if n_features is None:
                n_features = self._get_backbone().n_features
            output = np.empty((n_images, n_features), dtype=np.float32)
        return Extraction(
            features=output[kept] if failed else output,
            kept=kept + offset,
            errors=errors,
            content_keys=[keys[row] for row in kept],
            n_cached=n_cached,
            small_images=small,
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Inputs are images (paths or 4-D arrays), not a 2-D feature matrix.
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        tags.non_deterministic = False
        return tags


def _library_versions():
    # Package metadata rather than `import keras`: a warm-cache fit must not load TensorFlow.
    from importlib.metadata import PackageNotFoundError, version

    def installed(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {"skanimal": __version__, "keras": installed("keras"),
            "scikit-learn": installed("scikit-learn")}


def _far_smaller(stored_size, size):
    width, height = stored_size
    return (width < size[1] * SMALL_IMAGE_FRACTION
            and height < size[0] * SMALL_IMAGE_FRACTION)


def _content_keys(images):
    """Content keys of checked ``images`` without decoding them; files that cannot be
    read are left out (transform reports them)."""
    if isinstance(images, np.ndarray):
        return [hash_array_row(row) for row in images]
    keys = []
    for item in images:
        try:
            if isinstance(item, ImageItem):
                keys.append(item.content_key(item.load_bytes()))
            else:
                keys.append(hash_file(item))
        except (ImageLoadError, OSError):
            continue
    return keys


def _hash_prefixes(keys):
    if keys is None:
        return None
    return np.unique(np.array([_key_prefix(k) for k in keys], dtype=np.uint64))


def _prepare(images, i, offset, size, store):
    """``(key, cached features, pixels, stored size)`` of ``images[i]``, reading its file
    once.

    Runs on a decoding thread. ``key`` is its content key; ``cached`` its features when
    the cache holds them, else None and ``pixels`` its decoded pixels; ``stored size`` the
    ``(width, height)`` a plain image file declares (None for arrays and image items). The
    encoded bytes do not outlive this call.
    """
    if isinstance(images, np.ndarray):
        key = hash_array_row(images[i])
        cached = store.get(key) if store is not None else None
        if cached is not None:
            return key, cached, None, None
        return key, None, resize_array_batch(images[i:i + 1], size)[0], None
    item, index = images[i], offset + i
    data = read_item_bytes(item, index=index)
    key = _item_key(item, data)
    stored_size = None if isinstance(item, ImageItem) else stored_image_size(data)
    if store is not None:
        cached = store.get(key)
        if cached is not None:
            return key, cached, None, stored_size
    return key, None, decode_item(item, data, size, index=index), stored_size


def _item_key(item, data):
    """Content key of an image item whose file holds ``data``."""
    # An ImageItem keys itself (an augmented copy: source content, parameters and seed), so
    # a changed source file gets new keys for its copies too.
    return item.content_key(data) if isinstance(item, ImageItem) else hash_bytes(data)


def _transform_chunk(params, images, offset, caller_pid=None, tf_threads=None, quantized=None,
                     on_error="raise"):
    """Worker-side transform of ``images``, which start at ``offset`` in the caller's X.

    Limits TensorFlow's threads first when this is a worker process (before TensorFlow
    starts here; see :mod:`skanimal._parallel`), then extracts through the process-wide
    backbone registry, so a worker builds the backbone once and reuses it for every chunk.
    """
    from ._parallel import limit_tf_threads, record_chunk

    limit_tf_threads(caller_pid=caller_pid, hint=tf_threads)
    transformer = BottleneckFeatures(**{**params, "n_jobs": None})
    if quantized is not None:
        transformer.quantized_backbone_ = quantized
    extraction = transformer._transform_images(images, offset, on_error=on_error)
    record_chunk(len(images))
    return extraction
