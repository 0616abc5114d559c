"""Data augmentation for skanimal: random rotations, flips, shifts, zooms, shears.

The reference article suggests enlarging a small training set with rotated, reflected,
shifted and distorted copies of its images. In scikit-learn a transformer must return as
many rows as it is given, so augmentation cannot be a pipeline step; it is a property of
*training* instead. This module offers it as a meta-estimator:

* :class:`ImageAugmentation` (defined in :mod:`skanimal.transforms`, with the pure image
  maths) — a small, frozen (hashable, picklable) description of the random
  transformations, whose :meth:`~ImageAugmentation.apply` turns one ``uint8`` image into
  one augmented image, deterministically for a given seed;
* :class:`AugmentedImage` — one augmented copy of one image file, an item that
  :class:`~skanimal.BottleneckFeatures` accepts in ``X`` next to plain paths. Its features
  are cached like any other image's, under a key made of the source file's content, the
  augmentation's parameters and the seed;
* :class:`AugmentedClassifier` — wraps a classifier (typically
  ``make_pipeline(BottleneckFeatures(), BottleneckClassifier())``); its ``fit`` adds
  ``n_copies`` augmented copies of every training image, its ``predict`` & co. never
  augment anything. It works in ``GridSearchCV`` (``n_copies`` and ``augmentation`` are
  ordinary parameters; the wrapped estimator's are ``estimator__<name>``).

Examples
--------
>>> from sklearn.pipeline import make_pipeline
>>> from skanimal import BottleneckFeatures, BottleneckClassifier
>>> from skanimal.augmentation import AugmentedClassifier, ImageAugmentation
>>> model = AugmentedClassifier(
...     make_pipeline(BottleneckFeatures(), BottleneckClassifier()),
...     augmentation=ImageAugmentation(rotation=20, zoom=0.15), n_copies=3, random_state=0)
>>> model.fit(paths, labels).predict(new_paths)                      # doctest: +SKIP

This module imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

import hashlib
import numbers
import os
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.utils import check_random_state
from sklearn.utils.metadata_routing import MetadataRouter, MethodMapping, process_routing
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d

from .cache import hash_array_row, hash_bytes
from .compat import (
    HasMethods,
    Interval,
    fit_context,
    routing_enabled,
)
from .exceptions import ImageLoadError
from .images import ImageItem, check_images, decode_image, read_image_bytes
from .transforms import AUGMENTATION_VERSION, ImageAugmentation, check_seed

# ImageAugmentation and AUGMENTATION_VERSION live in skanimal.transforms; they stay
# importable from here, where they were first documented.
__all__ = ["ImageAugmentation", "AugmentedImage", "AugmentedClassifier", "AUGMENTATION_VERSION"]


# ---------------------------------------------------------------------------- AugmentedImage


@dataclass(frozen=True)
class AugmentedImage(ImageItem):
    """One augmented copy of one image file: an item of ``X`` for ``BottleneckFeatures``.

    An :class:`~skanimal.images.ImageItem`: :class:`~skanimal.BottleneckFeatures` (and
    :func:`skanimal.images.check_images`) accept these next to plain paths, and
    :meth:`~skanimal.images.ImageItem.load` reads, decodes and augments one. The
    transformer decodes ``source`` at the backbone's input size and applies
    ``augmentation`` with ``seed``; the features are cached under a key made of the source
    file's *content*, :meth:`ImageAugmentation.describe` and ``seed``, so they are computed
    once, and a changed source file gets new features.

    Parameters
    ----------
    source : str or os.PathLike
        The image file (stored as ``str``).
    augmentation : ImageAugmentation
        The random transformations.
    seed : int
        Which transformation is drawn (non-negative, below ``2**63``).

    Examples
    --------
    >>> item = AugmentedImage("photos/cat/1.jpg", ImageAugmentation(), seed=3)
    >>> BottleneckFeatures().fit_transform(["photos/cat/1.jpg", item])  # doctest: +SKIP
    """

    source: str
    augmentation: ImageAugmentation
    seed: int

    def __post_init__(self):
        source = self.source
        if not isinstance(source, (str, os.PathLike)):
            raise TypeError(
                f"AugmentedImage: source must be an image file path (str or os.PathLike), "
                f"got {type(source).__name__}."
            )
        source = os.fspath(source)
        if isinstance(source, bytes):
            source = os.fsdecode(source)
        source = str(source)
        if not source or "\x00" in source:
            raise ValueError(f"AugmentedImage: invalid source path {source!r}.")
        object.__setattr__(self, "source", source)
        if not isinstance(self.augmentation, ImageAugmentation):
            raise TypeError(
                "AugmentedImage: augmentation must be an ImageAugmentation, got "
                f"{type(self.augmentation).__name__}."
            )
        object.__setattr__(self, "seed", check_seed(self.seed))

    def content_key(self, source_bytes):
        """Feature-cache key of this augmented image.

        Parameters
        ----------
        source_bytes : bytes-like
            The content of :attr:`source`.

        Returns
        -------
        str
            A 64-character hex digest of the source content, :meth:`ImageAugmentation.describe`
            and :attr:`seed` (domain-separated from plain files' and arrays' keys). For an
            identity augmentation it is the source's own key, since the pixels are the same.
        """
        if self.augmentation.is_identity:
            return hash_bytes(source_bytes)
        h = hashlib.sha256()
        h.update(b"skanimal.augmented\0")
        h.update(hashlib.sha256(source_bytes).digest())
        h.update(self.augmentation.describe().encode("ascii") + b"\0")
        h.update(str(self.seed).encode("ascii"))
        return h.hexdigest()

    def load_bytes(self, *, index=None):
        """Read the source image file.

        Parameters
        ----------
        index : int, optional
            Position of this item in ``X``, for error messages.

        Returns
        -------
        bytes
            The content of :attr:`source`.

        Raises
        ------
        ImageLoadError
            If the source cannot be read; names the source path and ``index``.
        """
        return read_image_bytes(self.source, index=index)

    def decode(self, data, size=None, *, index=None):
        """Decode the source's bytes (at ``size``) and augment the pixels.

        Parameters
        ----------
        data : bytes-like
            The content of :attr:`source`, as :meth:`load_bytes` returns it.
        size : tuple of int (height, width) or None, default=None
            Size the source is decoded at (see :func:`skanimal.images.decode_image`);
            None keeps its native size.
        index : int, optional
            Position of this item in ``X``, for error messages.

        Returns
        -------
        numpy.ndarray of shape (height, width, 3), dtype uint8

        Raises
        ------
        ImageLoadError
            If the source cannot be decoded; names the source path and ``index``.
        """
        pixels = decode_image(data, size, path=self.source, index=index)
        return self.augmentation.apply(pixels, self.seed)


# ----------------------------------------------------------------------- AugmentedClassifier


def _copy_seed(base, identity, copy):
    """Seed of augmented copy ``copy`` (1-based) of the image identified by ``identity``."""
    h = hashlib.blake2b(digest_size=8)
    h.update(f"skanimal.copy-seed\0{base}\0{copy}\0".encode("ascii"))
    h.update(identity.encode("utf-8", "surrogatepass"))
    return int.from_bytes(h.digest(), "little") >> 1  # < 2**63


def _estimator_has(attr):
    """``available_if`` check: the fitted (or, before fit, the given) estimator has ``attr``."""

    def check(self):
        if hasattr(self, "estimator_"):
            getattr(self.estimator_, attr)
        else:
            getattr(self.estimator, attr)
        return True

    return check


def _is_sample_weight(key):
    return key == "sample_weight" or key.endswith("__sample_weight")


class AugmentedClassifier(ClassifierMixin, MetaEstimatorMixin, BaseEstimator):
    """Train a classifier on its training images plus augmented copies of them.

    ``fit`` adds ``n_copies`` randomly transformed copies (:class:`ImageAugmentation`) of
    every training image to ``X``, repeats ``y`` accordingly and fits a clone of
    ``estimator`` on the result. ``predict``, ``predict_proba``, ``decision_function``
    and ``score`` pass ``X`` unchanged to the fitted estimator: test images are never
    augmented. It is an ordinary scikit-learn classifier, so it works in a ``Pipeline``,
    ``cross_val_score`` and ``GridSearchCV`` (stratified folds), and ``n_copies`` or
    ``augmentation`` can be searched like any other parameter.

    Parameters
    ----------
    estimator : classifier
        What is trained, typically ``make_pipeline(BottleneckFeatures(),
        BottleneckClassifier())``. With file paths as ``X`` it must accept
        :class:`AugmentedImage` items in ``X`` (``BottleneckFeatures`` does); with a
        4-D pixel array it gets a 4-D array, so any image classifier works.
    augmentation : ImageAugmentation or None, default=None
        The random transformations; None means ``ImageAugmentation()`` (rotation up to
        15°, horizontal flips, shifts and zooms up to 10 %).
    n_copies : int, default=2
        Augmented copies added per training image (``>= 0``); the estimator is trained on
        ``(n_copies + 1) * n_samples`` images. 0 fits the plain estimator.
    random_state : int, numpy.random.RandomState or None, default=None
        Chooses the transformations. An int makes them reproducible: an image gets the same
        copies in every fit, CV fold and grid point, so their features come from the cache
        after the first time. None draws new ones at every fit. It does not seed
        ``estimator``; set its own ``random_state`` for that.

    Attributes
    ----------
    estimator_ : estimator
        The clone of ``estimator`` fitted on the augmented training set.
    augmentation_ : ImageAugmentation
        The augmentation used.
    n_training_samples_ : int
        Number of images ``estimator_`` was trained on (originals plus copies).
    classes_ : ndarray of shape (n_classes,)
        The class labels (from ``estimator_``).

    See Also
    --------
    ImageAugmentation : The transformations and their ranges.
    AugmentedImage : The items standing for augmented copies of image files.

    Notes
    -----
    * ``X`` may be image paths (the copies are :class:`AugmentedImage` items: only
      paths, seeds and parameters travel, and their features are cached on disk by
      ``BottleneckFeatures`` like any image's) or a 4-D pixel array of shape
      ``(n, height, width, 3)`` (the copies are computed here, at the array's resolution,
      and appended as rows; float pixels are rounded to ``uint8`` for augmenting and cast
      back to the array's dtype).
    * The training set is ordered image by image: ``X[0]``, its copies, ``X[1]``, its
      copies, ... The head's ``validation_split`` draws a stratified sample of these rows,
      so a copy of a training image can land in the validation part and make the ``val_``
      curves optimistic. For honest validation curves, hold out unaugmented images and
      give their features to the head as ``validation_data``, as ``skanimal train`` does.
    * Each copy's seed derives from ``random_state``, the copy number and the image's path
      (for arrays, a hash of its ``uint8`` pixels), not from its position in ``X``: that
      is what makes copies identical across CV folds and their features reusable.
    * Fit parameters named ``sample_weight`` or ``<step>__sample_weight`` are repeated for
      the copies; other fit parameters are passed on unchanged. With scikit-learn's
      metadata routing enabled (``sklearn.set_config(enable_metadata_routing=True)``),
      ``fit`` and ``score`` route their metadata to ``estimator`` as requested with its
      ``set_fit_request`` / ``set_score_request``, and routed sample weights are repeated
      for the copies too.
    * An :class:`~skanimal.exceptions.ImageLoadError` raised while fitting names the index
      in the ``X`` given to ``fit`` (not in the augmented set).

    Examples
    --------
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn.pipeline import make_pipeline
    >>> from skanimal import BottleneckFeatures, BottleneckClassifier
    >>> model = AugmentedClassifier(
    ...     make_pipeline(BottleneckFeatures(), BottleneckClassifier()), random_state=0)
    >>> search = GridSearchCV(model, {"n_copies": [0, 2],
    ...     "estimator__bottleneckclassifier__learning_rate": [1e-4, 1e-3]}, cv=3)
    >>> search.fit(paths, labels)                                     # doctest: +SKIP
    """

    # Checked once per fit (see `fit_context`); `bool` is never accepted as a number.
    _parameter_constraints = {
        "estimator": [HasMethods(["fit", "predict"])],
        "augmentation": [ImageAugmentation, None],
        "n_copies": [Interval(numbers.Integral, 0, None, closed="left")],
        "random_state": [Interval(numbers.Integral, 0, 2**32 - 1, closed="both"),
                         np.random.RandomState, None],
    }

    def __init__(self, estimator, *, augmentation=None, n_copies=2, random_state=None):
        self.estimator = estimator
        self.augmentation = augmentation
        self.n_copies = n_copies
        self.random_state = random_state

    # -- parameters --------------------------------------------------------------------------
    def _checked_params(self):
        # validated by _parameter_constraints
        augmentation = ImageAugmentation() if self.augmentation is None else self.augmentation
        return augmentation, int(self.n_copies)

    # -- fitting -----------------------------------------------------------------------------
    @fit_context(prefer_skip_nested_validation=False)  # the wrapped estimator checks its own
    def fit(self, X, y, **fit_params):
        """Fit a clone of ``estimator`` on ``X``, ``y`` plus augmented copies.

        Parameters
        ----------
        X : sequence of path-like, pandas Series of paths, or ndarray of shape \
(n_samples, height, width, 3)
            Training images (see :func:`skanimal.images.check_images`).
        y : array-like of shape (n_samples,)
            Class labels.
        **fit_params : dict
            Passed to ``estimator.fit``; ``sample_weight`` / ``<step>__sample_weight``
            arrays are repeated for the copies.

        Returns
        -------
        self : AugmentedClassifier
            The fitted meta-estimator.

        Raises
        ------
        ImageLoadError
            For an unreadable image, naming its path and its index in ``X``.
        """
        augmentation, n_copies = self._checked_params()
        if routing_enabled():
            fit_params = process_routing(self, "fit", **fit_params).estimator.fit
        images = check_images(X)
        y = column_or_1d(y, warn=True)
        check_consistent_length(images, y)
        group = n_copies + 1
        if n_copies == 0:
            X_train, y_train = images, y
        else:
            base = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
            X_train = self._augment(images, augmentation, n_copies, base)
            y_train = np.repeat(y, group, axis=0)
            fit_params = {
                key: (np.repeat(np.asarray(value), group, axis=0)
                      if _is_sample_weight(key) and value is not None else value)
                for key, value in fit_params.items()
            }
        estimator = clone(self.estimator)
        try:
            estimator.fit(X_train, y_train, **fit_params)
        except ImageLoadError as exc:
            if n_copies == 0 or exc.index is None:
                raise
            raise _renumbered(exc, group) from exc
        self.estimator_ = estimator
        self.augmentation_ = augmentation
        self.n_training_samples_ = len(y_train)
        return self

    @staticmethod
    def _augment(images, augmentation, n_copies, base):
        """``images`` with ``n_copies`` augmented copies after each one."""
        group = n_copies + 1
        if not isinstance(images, np.ndarray):
            out = []
            for path in images:
                out.append(path)
                out.extend(AugmentedImage(path, augmentation, _copy_seed(base, path, k))
                           for k in range(1, group))
            return out
        out = np.empty((len(images) * group,) + images.shape[1:], dtype=images.dtype)
        out[::group] = images
        for i, row in enumerate(images):
            pixels = row if row.dtype == np.uint8 else np.rint(row).clip(0, 255).astype(np.uint8)
            identity = hash_array_row(pixels)  # of what is augmented: uint8 == float input
            for k in range(1, group):
                out[i * group + k] = augmentation.apply(pixels, _copy_seed(base, identity, k))
        return out

    # -- prediction: never augmented ---------------------------------------------------------
    def __sklearn_is_fitted__(self):
        return hasattr(self, "estimator_")

    @property
    def classes_(self):
        """The class labels of the fitted estimator."""
        check_is_fitted(self)
        return self.estimator_.classes_

    def predict(self, X):
        """Predict classes of ``X`` with the fitted estimator (no augmentation).

        Parameters
        ----------
        X : images
            As for :meth:`fit`.

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        return self.estimator_.predict(X)

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities of ``X`` from the fitted estimator (no augmentation).

        Parameters
        ----------
        X : images
            As for :meth:`fit`.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        return self.estimator_.predict_proba(X)

    @available_if(_estimator_has("predict_log_proba"))
    def predict_log_proba(self, X):
        """Log class probabilities of ``X`` from the fitted estimator (no augmentation).

        Parameters
        ----------
        X : images
            As for :meth:`fit`.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        return self.estimator_.predict_log_proba(X)

    @available_if(_estimator_has("decision_function"))
    def decision_function(self, X):
        """Decision function of the fitted estimator on ``X`` (no augmentation).

        Parameters
        ----------
        X : images
            As for :meth:`fit`.

        Returns
        -------
        ndarray
        """
        check_is_fitted(self)
        return self.estimator_.decision_function(X)

    def score(self, X, y, sample_weight=None):
        """The fitted estimator's score on ``X``, ``y`` (no augmentation).

        Parameters
        ----------
        X : images
            As for :meth:`fit`.
        y : array-like of shape (n_samples,)
            True labels.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        float
            Usually the accuracy.
        """
        check_is_fitted(self)
        kwargs = {} if sample_weight is None else {"sample_weight": sample_weight}
        if routing_enabled():
            kwargs = process_routing(self, "score", **kwargs).estimator.score
        return self.estimator_.score(X, y, **kwargs)

    def get_metadata_routing(self):
        """How ``fit`` and ``score`` route metadata to ``estimator``.

        See the "Metadata Routing" chapter of scikit-learn's user guide.

        Returns
        -------
        sklearn.utils.metadata_routing.MetadataRouter
        """
        return MetadataRouter(owner=type(self).__name__).add(
            estimator=self.estimator,
            method_mapping=MethodMapping()
            .add(caller="fit", callee="fit")
            .add(caller="score", callee="score"),
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Inputs are images (paths or a 4-D array), as for BottleneckFeatures.
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.input_tags.sparse = False
        tags.target_tags.required = True
        return tags


def _renumbered(exc, group):
    """``exc`` (about the augmented training set) re-addressed to the caller's ``X``."""
    source, copy = divmod(exc.index, group)
    message = str(exc).replace(f"X[{exc.index}]", f"X[{source}]", 1)
    if copy:
        message += f" (while loading augmented copy {copy} of X[{source}])"
    return type(exc)(message, path=exc.path, index=source)
