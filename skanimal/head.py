"""The Keras head: the network :class:`~skanimal.BottleneckClassifier` trains, and its targets.

:func:`build_head` builds the reference transfer-learning head from plain numbers (a pure
function: same arguments, same untrained model). :class:`HeadTargetEncoder` maps class labels
to what a Keras head trains on (one-hot rows or class indices) and its outputs back to
labels; the classifier plugs it into SciKeras as its ``target_encoder``.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["HeadTargetEncoder", "build_head", "input_scaling", "layer_plan"]


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def layer_plan(hidden_layer_sizes, dropout):
    """The hidden layers of a head: a tuple of sizes and one dropout rate per layer.

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int
        Units of each hidden ``Dense`` layer (an int: one layer; ``()``: none).
    dropout : float or sequence of float
        One rate in [0, 1) for all layers, or at least one rate per layer (extra rates are
        ignored, so the default ``(0.5, 0.3)`` also serves one-layer heads).

    Returns
    -------
    sizes : tuple of int
    rates : tuple of float

    Raises
    ------
    ValueError
        Naming the parameter, for anything else.
    """
    sizes = (hidden_layer_sizes,) if _is_int(hidden_layer_sizes) else hidden_layer_sizes
    try:
        if isinstance(sizes, str):
            raise TypeError
        sizes = tuple(sizes)
    except TypeError:
        sizes = None
    if sizes is None or not all(_is_int(s) and s > 0 for s in sizes):
        raise ValueError(
            "hidden_layer_sizes must be a sequence of positive integers, "
            f"got {hidden_layer_sizes!r}"
        )
    sizes = tuple(int(s) for s in sizes)

    if _is_real(dropout):
        rates = (dropout,) * len(sizes)
    else:
        try:
            if isinstance(dropout, str):
                raise TypeError
            rates = tuple(dropout)
        except TypeError:
            raise ValueError(
                f"dropout must be a float or a sequence of floats, got {dropout!r}"
            ) from None
        if len(rates) < len(sizes):
            raise ValueError(
                f"dropout has {len(rates)} rate(s) but hidden_layer_sizes has {len(sizes)} "
                f"layers: give one float for all layers or at least one rate per layer "
                f"(dropout={dropout!r}, hidden_layer_sizes={hidden_layer_sizes!r})"
            )
        rates = rates[:len(sizes)]
    if not all(_is_real(r) and 0 <= r < 1 for r in rates):
        raise ValueError(f"dropout rates must be in [0, 1), got {dropout!r}")
    return sizes, tuple(float(r) for r in rates)


def input_scaling(X, *, chunk_rows=4096):
    """Per-feature means and one variance shared by all features, for the head's input layer.

    The head's first layer subtracts each feature's training mean and divides every feature
    by the same scale, the root mean square of the centred training features. Unlike a
    per-feature standardisation (scikit-learn's ``StandardScaler``) this keeps the relative
    sizes of the features, which carry what the backbone learnt: with a few images per class,
    a feature that is nearly constant over the training images would otherwise be divided by
    a tiny spread and turn into noise on new images (measured on animals-dev with 2 photos
    per class: 0.93 accuracy for a logistic regression after this scaling, 0.83 after
    ``StandardScaler``). It also puts every backbone's features on one scale, so one
    learning rate suits them all.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        The training features.
    chunk_rows : int, default=4096
        Rows summed at a time, so the memory used stays small for large sets.

    Returns
    -------
    mean : ndarray of shape (n_features,), float32
        Each feature's mean.
    variance : ndarray of shape (n_features,), float32
        The mean of the per-feature variances, repeated for every feature (1 when the
        features are all constant).
    """
    n = len(X)
    total = np.zeros(X.shape[1], dtype=np.float64)
    for start in range(0, n, chunk_rows):
        total += X[start:start + chunk_rows].sum(axis=0, dtype=np.float64)
    mean = total / n
    squares = 0.0
    for start in range(0, n, chunk_rows):
        centred = X[start:start + chunk_rows].astype(np.float64) - mean
        squares += float(np.einsum("ij,ij->", centred, centred))
    variance = squares / (n * X.shape[1])
    if not (np.isfinite(variance) and variance > 0):
        variance = 1.0
    return mean.astype(np.float32), np.full(X.shape[1], variance, dtype=np.float32)


def build_head(n_features, n_classes, *, hidden_layer_sizes=(100, 50), dropout=(0.5, 0.3),
               negative_slope=0.3, seed=None, compile_kwargs=None, input_mean=None,
               input_variance=None):
    """Build the reference transfer-learning head.

    ``Input(n_features) → [Normalization] → Flatten → [Dense(units) →
    LeakyReLU(negative_slope) → Dropout(rate)] per hidden layer → Dense(n_classes, softmax)``;
    a rate of 0 adds no ``Dropout`` layer.

    Parameters
    ----------
    n_features : int
        Width of the bottleneck features.
    n_classes : int
        Number of classes (softmax units).
    hidden_layer_sizes, dropout
        See :func:`layer_plan`.
    negative_slope : float, default=0.3
        Slope of each ``LeakyReLU``.
    seed : int or None, default=None
        Seeds every kernel initialiser and dropout layer explicitly (Keras would otherwise
        draw them from Python's global ``random``, which other threads, a Dask worker's say,
        may draw from concurrently). None leaves them unseeded.
    compile_kwargs : dict or None, default=None
        Arguments of ``keras.Model.compile`` (``optimizer``, ``loss``, ``metrics``...);
        None returns the model uncompiled.
    input_mean, input_variance : array-like of shape (n_features,) or None, default=None
        When given, the first layer is a ``keras.layers.Normalization`` with these fixed
        statistics (see :func:`input_scaling`), so the saved model scales its own input.

    Returns
    -------
    keras.Model
        The head, named ``"bottleneck_head"``.
    """
    import keras  # here, not at the top: predicting with a fitted head needs no Keras

    sizes, rates = layer_plan(hidden_layer_sizes, dropout)
    layers = keras.layers
    rng = np.random.RandomState(seed) if seed is not None else None

    def next_seed():
        return None if rng is None else int(rng.randint(np.iinfo(np.int32).max))

    def dense(units, **kwargs):
        return layers.Dense(
            units, kernel_initializer=keras.initializers.GlorotUniform(seed=next_seed()),
            **kwargs)

    inputs = keras.Input(shape=(n_features,), name="bottleneck_features")
    x = inputs
    if input_mean is not None:
        x = layers.Normalization(mean=input_mean, variance=input_variance,
                                 name="input_scaling")(x)
    x = layers.Flatten(name="flatten")(x)
    for i, (units, rate) in enumerate(zip(sizes, rates), start=1):
        x = dense(units, name=f"hidden_{i}")(x)
        x = layers.LeakyReLU(negative_slope=negative_slope, name=f"leaky_relu_{i}")(x)
        if rate > 0:
            x = layers.Dropout(rate, seed=next_seed(), name=f"dropout_{i}")(x)
    outputs = dense(n_classes, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs, name="bottleneck_head")
    if compile_kwargs is not None:
        model.compile(**compile_kwargs)
    return model


# -- targets ------------------------------------------------------------------------------------
_ONE_HOT_LOSSES = {"categoricalcrossentropy", "cce", "categoricalfocalcrossentropy"}
_INDEX_LOSSES = {"sparsecategoricalcrossentropy"}


def _loss_key(loss):
    """A loss's name, lower case without underscores ("" when it has none)."""
    if isinstance(loss, str):
        name = loss
    elif loss is None:
        name = ""
    else:  # a loss function has a __name__, a keras.losses.Loss instance its class's
        name = getattr(loss, "__name__", None) or type(loss).__name__
    return name.lower().replace("_", "")


class HeadTargetEncoder:
    """Map class labels to what a Keras head trains on, and its outputs back to labels.

    Unlike SciKeras' ``ClassifierLabelEncoder`` it one-hot encodes *binary* targets as well
    when the model's loss is categorical cross-entropy (SciKeras encodes them as a single
    0/1 column, which does not match a 2-unit softmax), and the encoding is chosen from the
    loss the model was actually compiled with (:meth:`choose_encoding`).

    Parameters
    ----------
    classes : array-like or None
        All classes, as declared to ``partial_fit``; None means ``np.unique(y)``.
    """

    def __init__(self, classes=None):
        self.classes = classes

    def fit(self, y):
        classes = np.unique(y) if self.classes is None else np.unique(np.asarray(self.classes))
        self.classes_ = classes
        self.n_classes_ = len(classes)
        self.one_hot_ = True
        return self

    def choose_encoding(self, loss, n_outputs):
        """One-hot or class-index targets for a model compiled with ``loss``.

        Categorical (focal) cross-entropy takes one-hot targets, sparse categorical
        cross-entropy takes class indices; for any other loss (binary cross-entropy, a custom
        function) the model's output width decides: one column per class means one-hot,
        anything else (e.g. one sigmoid unit) means class indices.
        """
        name = _loss_key(loss)
        if name in _ONE_HOT_LOSSES:
            self.one_hot_ = True
        elif name in _INDEX_LOSSES:
            self.one_hot_ = False
        else:
            self.one_hot_ = n_outputs == self.n_classes_ and n_outputs > 1
        return self

    def encode(self, y):
        """Indices of ``y`` in ``classes_``; ``ValueError`` naming unseen labels."""
        y = np.asarray(y)
        try:
            idx = np.clip(np.searchsorted(self.classes_, y), 0, self.n_classes_ - 1)
            unseen = np.asarray(self.classes_[idx] != y, dtype=bool)
        except TypeError:  # labels not comparable with the classes (e.g. int vs str)
            idx, unseen = None, np.ones(len(y), dtype=bool)
        if np.any(unseen):
            labels = np.unique(y[unseen]).tolist()
            raise ValueError(
                f"y contains labels that are not among the classes {self.classes_.tolist()}: "
                f"{labels}"
            )
        return idx

    def transform(self, y):
        """Targets for Keras: one-hot rows or class indices, in Keras' float type."""
        import keras  # training only

        idx = self.encode(y)
        floatx = np.dtype(keras.backend.floatx())
        if self.one_hot_:
            return np.eye(self.n_classes_, dtype=floatx)[idx]
        return idx.astype(floatx)

    def inverse_transform(self, y, return_proba=False):
        """Labels (or, with ``return_proba``, per-class probabilities) from model outputs."""
        proba = np.asarray(y)
        if proba.ndim == 1:
            proba = proba.reshape(-1, 1)
        if proba.shape[1] == 1 and self.n_classes_ == 2:
            # a single sigmoid unit (custom model): P(classes_[1])
            proba = np.hstack([1 - proba, proba])
        if return_proba:
            return proba
        return self.classes_[np.argmax(proba, axis=1)]

    def get_metadata(self):
        """SciKeras metadata, copied onto the classifier (``classes_``, ``n_classes_``...)."""
        return {
            "classes_": self.classes_,
            "n_classes_": self.n_classes_,
            "n_outputs_": 1,
            "n_outputs_expected_": 1,
        }
