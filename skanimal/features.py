"""``BottleneckFeatures``: image files or arrays → frozen-CNN "bottleneck" features.

Data flows one way: paths → bytes → pixels (:mod:`skanimal.images`) → backbone
(:mod:`skanimal.backbones`) → a 2-D float32 array. Features are kept in a content-addressed
disk cache (:mod:`skanimal.cache`), so each image goes through the CNN once, ever, whatever
clone, CV fold, grid point or process asks for it. This module is the estimator's public
surface; the engine that reads, caches and batches images is :mod:`skanimal.extraction`,
and weights files are :mod:`skanimal.weights`' job.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ._version import __version__
from .backbones import get_backbone, get_spec, resolve_image_size
from .cache import (
    FEATURE_FORMAT_VERSION,
    hash_array_row,
    resolve_cache_dir,
    reuse_feature_store,
)
from .compat import Interval, StrOptions, fit_context, validate_parameter_constraints
from .exceptions import IncompatibleModelError, WeightsUnavailableError
from .extraction import (
    SMALL_IMAGE_FRACTION,
    ChunkSettings,
    Extraction,
    Extractor,
    check_extraction_on_error,
    content_keys,
    decode_threads,
    extract_in_chunks,
    feature_fingerprint,
    hash_prefixes,
    item_key,
    known_prefixes,
    warn_small_images,
)
from .images import check_images, decode_item, read_item_bytes, resize_array_batch
from .weights import relocated_weights, resolve_moved_weights, weights_identity

__all__ = ["BottleneckFeatures", "Extraction", "SMALL_IMAGE_FRACTION"]

_POOLINGS = (None, "avg", "max")
_PRECISIONS = ("float32", "bfloat16", "int8")
_ENGINES = ("tensorflow", "openvino")


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
    engine : {"tensorflow", "openvino"}, default="tensorflow"
        What runs a float32 backbone. ``"openvino"`` converts it to OpenVINO at ``fit``
        (unquantized, preprocessing inside the graph) and keeps that network as the fitted
        model, so transform and predict need no TensorFlow (a first prediction 2-4× sooner;
        features agree with TensorFlow's to about 1e-5). ``"int8"`` always runs in OpenVINO;
        ``"bfloat16"`` only in TensorFlow (``engine="openvino"`` is refused).
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
    openvino_backbone_ : skanimal.openvino_engine.Int8Backbone
        Only with ``precision="int8"`` or ``engine="openvino"``: the network OpenVINO runs
        (IR bytes, quantized for int8), which pickles, saves and travels to ``n_jobs``
        workers with the estimator.
    quantized_backbone_ : skanimal.openvino_engine.Int8Backbone
        Only with ``precision="int8"``: the same object as ``openvino_backbone_``.
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
    # accepted as a number. backbone, weights and cache are checked by _check_params.
    _parameter_constraints = {
        "backbone": "no_validation",
        "weights": "no_validation",
        "image_size": [Interval(Integral, 1, None, closed="left"), "array-like", None],
        "pooling": [StrOptions({p for p in _POOLINGS if p}), None],
        "precision": [StrOptions(set(_PRECISIONS))],
        "engine": [StrOptions(set(_ENGINES))],
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
        engine="tensorflow",
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
        self.engine = engine
        self.batch_size = batch_size
        self.cache = cache
        self.n_jobs = n_jobs
        self.verbose = verbose

    # -- parameters --------------------------------------------------------------------------
    def _resolved_image_size(self):
        return resolve_image_size(self.backbone, self.image_size)

    def _check_params(self, *, constraints=True):
        """Validate the parameters: ``_parameter_constraints`` (unless ``fit_context`` just
        did), then what they cannot express (a registered backbone, a usable cache, an image
        size the backbone accepts). Returns the resolved image size."""
        if constraints:
            validate_parameter_constraints(self._parameter_constraints,
                                           self.get_params(deep=False),
                                           caller_name=type(self).__name__)
        get_spec(self.backbone)
        resolve_cache_dir(self.cache)
        if self.engine == "openvino" and self.precision == "bfloat16":
            raise ValueError("engine='openvino' runs float32 or int8 backbones, not "
                             "precision='bfloat16'; use engine='tensorflow' or "
                             "precision='float32'.")
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
        found = resolve_moved_weights(weights, recorded)
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
        return self.set_params(weights=relocated_weights(recorded, place))

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

    def _uses_openvino(self):
        return self.precision == "int8" or self.engine == "openvino"

    def _get_backbone(self):
        if self._uses_openvino():
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
        return feature_fingerprint(
            self.backbone,
            # A fitted transformer keys the cache with the weights it was fitted with, so
            # cached images need no weights file at all.
            weights=self._recorded_weights() or weights_identity(self.weights),
            image_size=self._resolved_image_size(),
            pooling=self.pooling,
            precision=self.precision,
            openvino=self._quantized_backbone() if self._uses_openvino() else None,
        )

    def _quantized_backbone(self):
        quantized = getattr(self, "openvino_backbone_", None)
        if quantized is None and self.precision == "int8":  # pickled before openvino_backbone_
            quantized = getattr(self, "quantized_backbone_", None)
        if quantized is not None and (quantized.recipe.get("conversion") == "float32") != (
                self.precision != "int8"):
            quantized = None  # fitted for the other precision
        if quantized is None and self.precision != "int8":
            raise ValueError(
                "engine='openvino' needs the OpenVINO network that fit converts; this "
                "estimator has none (was engine changed after fit?). Call fit again.")
        if quantized is None:
            raise ValueError(
                "precision='int8' needs the quantized backbone that fit(X) calibrates on X; "
                "this estimator has none (was precision changed after fit?). Call fit(X) again."
            )
        return quantized

    def _feature_store(self):
        self._store = reuse_feature_store(getattr(self, "_store", None), self.cache,
                                          self._fingerprint)
        return self._store

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
        self._check_params(constraints=False)  # fit_context checked the constraints
        if self.precision == "int8":
            return self._fit_int8(X)
        self.__dict__.pop("quantized_backbone_", None)
        self.__dict__.pop("openvino_backbone_", None)
        if self.engine == "openvino":
            return self._fit_openvino(X)
        keys = content_keys(check_images(X)) if X is not None else None
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
        self.training_hashes_ = hash_prefixes(extraction.content_keys)
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
            return item_key(images[i], read_item_bytes(images[i], index=i))

        def pixels_of(i):  # a calibration image is read again: fit keeps no bytes of all X
            if isinstance(images, np.ndarray):
                return resize_array_batch(images[i:i + 1], size)[0]
            data = read_item_bytes(images[i], index=i)
            return decode_item(images[i], data, size, index=i)

        with ThreadPoolExecutor(decode_threads(), thread_name_prefix="skanimal-decode") as pool:
            keys = list(pool.map(key, range(len(images))))
            sample = calibration_sample(keys)
            pixels = np.stack(list(pool.map(pixels_of, sample)))
        backbone = get_backbone(self.backbone, weights=self.weights, image_size=size,
                                pooling=self.pooling, precision="float32")
        self.quantized_backbone_ = quantize_backbone(backbone, pixels, [keys[i] for i in sample],
                                                   verbose=bool(self.verbose))
        self.openvino_backbone_ = self.quantized_backbone_
        self.weights_identity_ = weights_identity(self.weights)
        shape = self.quantized_backbone_.feature_shape
        store = self._feature_store()
        if store is not None:
            store.put_feature_shape(shape)
        return self._set_fitted(shape, training_keys=keys)

    def _fit_openvino(self, X):
        """Convert the float32 backbone to OpenVINO (see ``engine``)."""
        from .openvino_engine import convert_backbone, require_openvino

        require_openvino()  # before building anything
        keys = content_keys(check_images(X)) if X is not None else None
        backbone = get_backbone(self.backbone, weights=self.weights,
                                image_size=self._resolved_image_size(), pooling=self.pooling,
                                precision="float32")
        self.openvino_backbone_ = convert_backbone(backbone)
        self.weights_identity_ = weights_identity(self.weights)
        shape = self.openvino_backbone_.feature_shape
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
        features._check_params()
        return features._set_fitted(feature_shape, feature_format_version, versions,
                                    training_keys=training_hashes,
                                    weights_identity=weights_identity)

    def _set_fitted(self, feature_shape, feature_format_version=FEATURE_FORMAT_VERSION,
                    versions=None, training_keys=None, weights_identity=None):
        """Set the fitted attributes (``fit``, and :func:`skanimal.load` with saved values)."""
        if weights_identity is not None:
            self.weights_identity_ = weights_identity
        self.training_hashes_ = hash_prefixes(training_keys)
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
        # a parameter added since the model was saved takes its default (its behaviour then)
        state.setdefault("engine", "tensorflow")
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
        self._check_params()
        check_extraction_on_error(on_error)
        images = check_images(X)
        n_jobs = 1 if self.n_jobs is None else self.n_jobs
        extractor = self._extractor()
        if n_jobs != 1 and len(images) > self.batch_size:
            extraction = extract_in_chunks(images, n_jobs, self._chunk_settings, extractor,
                                           on_error=on_error, verbose=self.verbose)
        else:
            extraction = extractor.extract(images, 0, on_error=on_error)
        if extraction.small_images:
            warn_small_images(extraction.small_images, self._resolved_image_size(),
                              stacklevel=2)
        return extraction

    def _extractor(self):
        """The extraction engine with this transformer's settings, cache and backbone."""
        return Extractor(self._resolved_image_size(), self.batch_size, self._get_backbone,
                         store=self._feature_store(),
                         n_features=getattr(self, "n_features_out_", None),
                         verbose=self.verbose)

    def _chunk_settings(self):
        """What ``joblib`` workers need: plain values, the weights file already resolved
        (workers are unfitted: no relocation there) and the cache directory as an absolute
        path (they may not share this process's environment nor its working directory)."""
        directory = resolve_cache_dir(self.cache)
        int8 = self._uses_openvino()
        return ChunkSettings(
            image_size=self._resolved_image_size(),
            batch_size=self.batch_size,
            backbone_args={} if int8 else dict(
                name=self.backbone, weights=self._checked_weights(),
                image_size=self._resolved_image_size(), pooling=self.pooling,
                precision=self.precision),
            cache_dir=None if directory is None else os.path.abspath(directory),
            fingerprint=None if directory is None else self._fingerprint(),
            quantized=self._quantized_backbone() if int8 else None,
            n_features=getattr(self, "n_features_out_", None),
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
        return known_prefixes(content_keys, known)

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
