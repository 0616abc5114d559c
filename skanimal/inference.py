"""Predicting with a saved model in NumPy, Pillow and OpenVINO alone.

A model whose backbone runs in OpenVINO (``precision="int8"``, or ``engine="openvino"``)
and whose head is a dense network (computed in NumPy: ``skanimal.head_forward``) predicts
without TensorFlow; but as a scikit-learn ``Pipeline`` it still imports scikit-learn (and
SciPy), which here costs more than everything else a one-photo prediction does
(``benchmarks/bench_start.py``). A ``.skanimal`` file (:func:`skanimal.save`) holds plain
JSON, the OpenVINO network and the head's weights, so
:func:`skanimal.persistence.load_for_inference` reads it into an :class:`InferenceModel`:
the pipeline's own extraction engine, feature cache, network, NumPy head and novelty
score, so the same numbers (``tests/test_inference.py``), importing neither library.
``skanimal predict`` takes this path whenever the file allows it. A joblib file cannot:
unpickling a ``Pipeline`` imports scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .cache import FeatureCache, reuse_feature_store
from .cosine import nearest_distance, unit_rows
from .extraction import Extractor, check_extraction_on_error, warn_small_images
from .images import check_images

__all__ = ["InferenceModel", "InferenceFeatures", "InferenceHead", "NearestReference"]


def _rows(X, n_features, what):
    """Features as 2-D float32 rows of the expected width (feature maps are flattened)."""
    X = np.asarray(X, dtype=np.float32)
    X = X.reshape(len(X), -1)
    if X.shape[1] != n_features:
        raise ValueError(f"X has {X.shape[1]} features, but {what} takes {n_features}.")
    return X


@dataclass
class InferenceFeatures:
    """A saved :class:`~skanimal.BottleneckFeatures`' ``extract`` and ``transform``.

    Parameters
    ----------
    network : Int8Backbone
        The OpenVINO network (:class:`skanimal.openvino_engine.Int8Backbone`), its
        preprocessing included.
    image_size : tuple of int
        ``(height, width)`` images are resized to.
    batch_size : int
    cache : bool, str or path-like
        The transformer's ``cache`` parameter.
    fingerprint : str
        The feature cache's fingerprint (``skanimal.extraction.feature_fingerprint``), the
        transformer's own, so both read and write the same entries.
    verbose : int, default=0
        Show a progress bar when > 0.
    """

    network: object
    image_size: tuple
    batch_size: int
    cache: object
    fingerprint: str
    verbose: int = 0
    _store: FeatureCache | None = field(default=None, init=False, repr=False)

    @property
    def n_features_out_(self):
        """Features per image."""
        return self.network.n_features

    def set_params(self, *, verbose):
        """Set ``verbose`` (the only setting that may change after loading)."""
        self.verbose = verbose
        return self

    def extract(self, X, *, on_error="raise"):
        """As :meth:`skanimal.BottleneckFeatures.extract`.

        Parameters
        ----------
        X : sequence of path-like, or ndarray of shape (n, h, w, 3)
        on_error : {"raise", "skip"}, default="raise"

        Returns
        -------
        Extraction
        """
        check_extraction_on_error(on_error)
        extractor = Extractor(self.image_size, self.batch_size, lambda: self.network,
                              store=self._feature_store(), n_features=self.n_features_out_,
                              verbose=self.verbose)
        extraction = extractor.extract(check_images(X), 0, on_error=on_error)
        if extraction.small_images:
            warn_small_images(extraction.small_images, self.image_size)
        return extraction

    def transform(self, X):
        """Features of images: ``extract(X).features``."""
        return self.extract(X).features

    def _feature_store(self):
        self._store = reuse_feature_store(self._store, self.cache, lambda: self.fingerprint)
        return self._store


@dataclass(frozen=True)
class NearestReference:
    """A saved :class:`~skanimal.novelty.FeatureNovelty`'s score and threshold.

    Parameters
    ----------
    reference : ndarray of shape (n_reference, n_features), float32
        The kept training features, of unit length.
    n_neighbors : int
    threshold_ : float
    """

    reference: np.ndarray
    n_neighbors: int
    threshold_: float

    def novelty_score(self, X):
        """As :meth:`skanimal.novelty.FeatureNovelty.novelty_score`."""
        X = _rows(X, self.reference.shape[1], "the novelty score")
        return nearest_distance(unit_rows(X), self.reference, self.n_neighbors)

    def is_novel(self, X):
        """As :meth:`skanimal.novelty.FeatureNovelty.is_novel`."""
        return self.novelty_score(X) > self.threshold_


@dataclass(frozen=True)
class InferenceHead:
    """A saved :class:`~skanimal.BottleneckClassifier`'s ``predict_proba`` and ``predict``.

    Parameters
    ----------
    classes_ : ndarray of shape (n_classes,)
    forward : DenseHead
        The head's weights and layers (``skanimal.head_forward.DenseHead``).
    novelty_ : NearestReference or None
    confidence_threshold_ : float or None
    """

    classes_: np.ndarray
    forward: object
    novelty_: NearestReference | None = None
    confidence_threshold_: float | None = None

    def predict_proba(self, X):
        """Class probabilities, in the order of ``classes_`` (float32)."""
        return self.forward.predict_proba(_rows(X, self.forward.n_features, "the head"))

    def predict(self, X):
        """The most probable class of each row."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


@dataclass(frozen=True)
class InferenceModel:
    """A saved model's predictions without scikit-learn or TensorFlow.

    Made by :func:`skanimal.persistence.load_for_inference`; every skanimal function that
    scores files with a fitted pipeline takes it too (``split_pipeline`` gives its
    ``features`` and ``head``).

    Parameters
    ----------
    features : InferenceFeatures
    head : InferenceHead

    Examples
    --------
    >>> from skanimal.persistence import load_for_inference
    >>> model = load_for_inference("animals.skanimal")  # doctest: +SKIP
    >>> model.predict(["photo.jpg"])  # doctest: +SKIP
    array(['cat'], dtype=object)
    """

    features: InferenceFeatures
    head: InferenceHead

    @property
    def classes_(self):
        """Column labels of :meth:`predict_proba`."""
        return self.head.classes_

    def predict_proba(self, X):
        """Class probabilities of images (paths or pixel arrays), as the pipeline's."""
        return self.head.predict_proba(self.features.transform(X))

    def predict(self, X):
        """The most probable class of each image, as the pipeline's ``predict``."""
        return self.head.predict(self.features.transform(X))
