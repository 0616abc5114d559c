"""The trainable head of a skanimal pipeline: :class:`BottleneckClassifier`.

:class:`BottleneckClassifier` is a scikit-learn classifier that trains a small Keras network
on the 2-D bottleneck features produced by :class:`skanimal.BottleneckFeatures`::

    make_pipeline(BottleneckFeatures(), BottleneckClassifier())

It trains through SciKeras (a ``KerasClassifier`` adapter in :mod:`skanimal.compat`, imported
with TensorFlow only when something trains), so everything SciKeras offers (a custom ``model``
callable, routed parameters such as ``optimizer__momentum`` or ``fit__shuffle``, callbacks,
``partial_fit``) keeps working; the fitted default head predicts in NumPy with the Keras
model's weights (:mod:`skanimal.head_forward`), so a loaded model predicts without
TensorFlow, and pickles hold no TensorFlow object. On top of SciKeras it

* builds the reference head by default (``Dense(100) → LeakyReLU(0.3) → Dropout(0.5) →
  Dense(50) → LeakyReLU(0.3) → Dropout(0.3) → Dense(n_classes, softmax)``, categorical
  cross-entropy), with the architecture exposed as plain parameters that
  :class:`~sklearn.model_selection.GridSearchCV` can tune, and trains it on a schedule that
  works from 2 to thousands of images per class: inputs centred and scaled inside the model,
  Adam with ``learning_rate=1e-3``, at least 300 gradient steps of 50-sample batches, and
  early stopping on a stratified validation part (best weights restored) from 1000 samples
  on. :data:`ARTICLE_SETTINGS` gives the reference article's exact training settings back;
* is a true classifier for scikit-learn >= 1.6 (``__sklearn_tags__``), so ``is_classifier`` is
  True, ``cv=3`` means stratified folds and the default score is accuracy;
* validates its input the scikit-learn way (:func:`sklearn.utils.validation.validate_data`),
  so bad input raises a clear ``ValueError`` / ``TypeError`` instead of a TensorFlow trace;
* accepts ``class_weight`` keyed by the original labels and fixes a few SciKeras bugs (see
  the notes in :class:`BottleneckClassifier`).

The network itself is built by :func:`skanimal.head.build_head`; what SciKeras and TensorFlow
keep private (seeding, optimizer routing) is reached through :mod:`skanimal.compat` only.
"""

import inspect
import math
from collections import defaultdict
from collections.abc import Mapping
from numbers import Integral, Real
from types import MappingProxyType

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import ClassifierTags, indexable
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from ._parallel import limit_tf_threads
from ._tfstartup import start_tensorflow
from .calibration import calibrate_confidence
from .compat import (
    Interval,
    Options,
    StrOptions,
    check_sample_weight,
    fit_context,
    pack_model,
    routed_keyword_names,
    safe_indexing,
    scikeras_trainer,
    unpack_model,
)
from .head import HeadTargetEncoder, build_head, input_scaling, layer_plan
from .head_forward import DenseHead
from .novelty import FeatureNovelty

__all__ = ["ARTICLE_SETTINGS", "BottleneckClassifier"]

#: The reference article's training settings (7 epochs of 50-sample batches, RMSprop at
#: ``1e-4``, raw features, no early stopping): ``BottleneckClassifier(**ARTICLE_SETTINGS)``,
#: after ``BottleneckFeatures(pooling=None)``, is the article's pipeline. Set for ~13,400
#: training images (~1,900 gradient steps); on a few hundred photos it under-trains the head.
ARTICLE_SETTINGS = MappingProxyType({
    "hidden_layer_sizes": (100, 50),
    "dropout": (0.5, 0.3),
    "negative_slope": 0.3,
    "optimizer": "rmsprop",
    "learning_rate": 1e-4,
    "loss": "categorical_crossentropy",
    "epochs": 7,
    "batch_size": 50,
    "scale_inputs": False,
    "early_stopping": False,
})

#: ``epochs="auto"`` without early stopping trains at least this many gradient steps...
MIN_STEPS = 300
#: ... and at least this many passes over the data (more steps for large sets).
MIN_EPOCHS = 10
#: ``epochs="auto"`` with early stopping: at most this many epochs.
MAX_EPOCHS = 200
#: ``early_stopping="auto"`` holds out a validation part from this many samples on.
EARLY_STOPPING_MIN_SAMPLES = 1000
#: Fraction held out for early stopping when ``validation_split`` is None.
EARLY_STOPPING_VALIDATION = 0.1
#: Precision the held-out ``confidence_threshold_`` is calibrated for.
CONFIDENCE_PRECISION = 0.98
#: Prefixes of routed parameters (``optimizer__momentum``...), as SciKeras routes them.
_ROUTING_PREFIXES = frozenset({"model", "fit", "compile", "predict", "optimizer", "loss",
                               "metrics", "callbacks"})


class BottleneckClassifier(ClassifierMixin, BaseEstimator):
    """A Keras classification head on CNN bottleneck features, as a scikit-learn classifier.

    Trained by SciKeras (composed, not subclassed); its default model is the reference
    transfer-learning head: ``Flatten → [Dense(units) → LeakyReLU → Dropout] per hidden
    layer → Dense(n_classes, softmax)``, compiled with ``optimizer(learning_rate)``, ``loss`` and
    ``metrics``. Put it after :class:`skanimal.BottleneckFeatures` in a pipeline.

    Parameters
    ----------
    model : None, callable or keras.Model, default=None
        None builds the default head from the parameters below. Otherwise, exactly as in
        SciKeras: a callable returning a compiled or uncompiled :class:`keras.Model`. It may
        take ``meta`` (fit metadata: ``n_features_in_``, ``n_classes_``, ``classes_``,
        ``X_shape_``, ...), ``compile_kwargs`` (``optimizer``, ``loss``, ``metrics`` ready for
        ``Model.compile``) and/or ``params`` (``get_params()``), plus any ``model__<name>``
        parameter. An uncompiled model is compiled with ``optimizer``, ``loss`` and
        ``metrics``. A ``keras.Model`` instance is used as is (not copied). The model must
        output ``n_classes_`` probabilities (or one sigmoid unit for two classes).
    hidden_layer_sizes : sequence of int, default=(100, 50)
        Units of each hidden ``Dense`` layer of the default head; ``()`` gives a softmax
        regression. An int means one hidden layer.
    dropout : float or sequence of float, default=(0.5, 0.3)
        Dropout rate after each hidden layer, in [0, 1): one float for all layers, or a
        sequence whose first ``len(hidden_layer_sizes)`` rates apply in order (fewer rates
        than layers is an error; extra rates are ignored, so the default gives 0.5 to a
        one-layer head). A rate of 0 adds no ``Dropout`` layer.
    negative_slope : float, default=0.3
        Slope of the ``LeakyReLU`` activation of each hidden layer (>= 0; 0 is a ReLU).
    learning_rate : float or None, default=1e-3
        Learning rate the optimizer is built with when ``optimizer`` is a name or a class
        (an ``optimizer__learning_rate`` parameter takes precedence); None keeps the
        optimizer's own default. Ignored for an optimizer instance.
    optimizer : str, keras optimizer class or instance, default="adam"
        ``"rmsprop"``, ``"adam"``, ``"sgd"`` or any name Keras knows, a
        ``keras.optimizers.Optimizer`` subclass (built with ``learning_rate`` and any
        ``optimizer__<name>`` parameters) or an instance (a fresh copy of it is used at each
        fit).
    loss : str or keras loss, default="categorical_crossentropy"
        Training loss. Targets are one-hot encoded for categorical cross-entropy and given as
        class indices otherwise (e.g. ``"sparse_categorical_crossentropy"``).
    metrics : str, list or None, default="accuracy"
        Keras metrics recorded per epoch in ``history_``.
    epochs : int or "auto", default="auto"
        Number of passes over the training data in :meth:`fit`. ``"auto"``: with early
        stopping, at most 200 (training stops after ``n_iter_no_change`` epochs without a
        lower validation loss); without, enough passes for at least 300 gradient steps and
        at least 10 passes (so 12 training images get 300 passes of one batch, 13,400 get
        10 passes of 268 batches).
    batch_size : int or None, default=50
        Samples per gradient update, also used by ``predict``; ``-1`` means the whole set.
    shuffle : bool, default=True
        Shuffle the training data before each epoch.
    class_weight : dict, "balanced" or None, default=None
        Weights keyed by the original class labels (e.g. ``{"cat": 2.0, "dog": 1.0}``;
        classes left out weigh 1) or ``"balanced"`` (``n_samples / (n_classes *
        np.bincount(y))``). Applied as per-sample weights, multiplied with ``sample_weight``.
    validation_split : float or None, default=None
        Fraction of the training data held out, stratified by class (not Keras' last rows,
        which would be a single class for data sorted by folder), for early stopping and to
        compute ``val_loss``, ``val_<metric>`` in ``history_`` and ``confidence_threshold_``.
        The head trains on the rest. None: 0.1 when early stopping is on, else nothing is
        held out.
    early_stopping : bool or "auto", default="auto"
        Stop training when the validation loss has not improved for ``n_iter_no_change``
        epochs, and restore the weights of the best epoch. ``"auto"`` turns it on from 1000
        training samples (a validation part of 100 or more); a smaller part would be too noisy
        to steer training or calibrate ``confidence_threshold_``, and every held-out photo
        counts when there are few (the fixed ``epochs="auto"`` schedule needs none).
    n_iter_no_change : int, default=10
        Patience of early stopping, in epochs.
    scale_inputs : bool, default=True
        Make the first layer of the default head a ``keras.layers.Normalization`` that
        centres each feature on its training mean and divides all features by one scale
        (:func:`skanimal.head.input_scaling`), so that one learning rate suits every
        backbone. Ignored with a custom ``model``.
    callbacks : list of keras.callbacks.Callback or None, default=None
        Keras callbacks used in ``fit`` and ``predict``.
    random_state : int, numpy.random.RandomState or None, default=None
        Seed for weight initialisation, dropout masks and shuffling. An int makes two fits on
        the same data give identical predictions (on CPU; see Notes).
    verbose : int, default=0
        Keras verbosity for ``fit`` and ``predict``; 0 prints nothing.
    warm_start : bool, default=False
        If True, :meth:`fit` continues training the current model instead of building a new
        one, and pickles (``joblib.dump``) keep the optimizer's state so that a loaded copy
        resumes training where it stopped. If False, pickles leave that state out: Adam
        keeps two values per weight of the head (a third of the file) and predicting does
        not use them.
    **kwargs
        SciKeras routed parameters (``fit__<name>``, ``predict__<name>``,
        ``compile__<name>``, ``optimizer__<name>``, ``loss__<name>``, ``metrics__<name>``,
        ``callbacks__<name>``, ``model__<name>``), other keywords of ``Model.fit``,
        ``Model.compile`` or ``Model.predict`` (e.g. ``run_eagerly=True``), or, with a custom
        ``model`` callable, extra parameters passed to it by name.

    Attributes
    ----------
    model_ : keras.Model
        The fitted Keras model; ``clf.model_.save("head.keras")`` stores it for Keras. After
        unpickling or :func:`skanimal.load` it is rebuilt from the saved archive on first
        use (importing TensorFlow); ``predict`` of the default head never needs it.
    confidence_threshold_ : float or None
        When ``fit`` held out a validation part (or got ``validation_data``): the smallest
        top-class probability at which the predictions on it were right at least 98 % of
        the time with 95 % confidence (:func:`skanimal.calibration.calibrate_confidence`);
        None otherwise, or when no probability reached that (it needs at least 149 held-out
        photos).
    confidence_basis_ : skanimal.calibration.ConfidenceBasis or None
        What ``confidence_threshold_`` rests on (held-out photos, the bound), or None when
        ``fit`` held nothing out.
    novelty_ : skanimal.novelty.FeatureNovelty
        How unlike the training features (those the head trained on) a sample is, with
        the threshold ``skanimal sort`` sends photos to review above; set by ``fit``.
    history_ : dict of str to list of float
        Per-epoch training history: ``"loss"``, ``"accuracy"`` (one key per metric) and, with a
        validation split or validation data, ``"val_loss"`` and ``"val_accuracy"``.
    classes_ : ndarray of shape (n_classes,)
        The class labels, sorted, with the dtype of ``y``.
    n_classes_ : int
        Number of classes.
    n_features_in_ : int
        Number of features seen during :meth:`fit`.
    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        Column names, when ``X`` was a DataFrame with string column names.
    target_type_ : str
        ``"binary"`` or ``"multiclass"``.
    X_shape_ : tuple of int
        Shape of the training ``X`` (SciKeras metadata, available to a ``model`` callable).

    See Also
    --------
    skanimal.BottleneckFeatures : The feature extractor this classifier follows.
    scikeras.wrappers.KerasClassifier : The wrapper that trains the model.

    Notes
    -----
    Differences from a plain SciKeras ``KerasClassifier`` (scikeras 0.13):

    * ``__sklearn_tags__`` declares a classifier (SciKeras only has the pre-1.6 ``_more_tags``,
      so scikit-learn >= 1.6 treats it as a plain estimator and cross-validates with
      unstratified ``KFold``).
    * Input is validated with :func:`sklearn.utils.validation.validate_data`: ``X`` must be a
      finite 2-D numeric array (cast to float32); ``y`` must be 1-D class labels of at least two
      classes.
    * Binary targets work with the default categorical cross-entropy.
    * ``sample_weight`` is not modified in place when ``class_weight`` is set.
    * A ``numpy.random.RandomState`` ``random_state`` really seeds Keras (SciKeras draws
      ``randint(low=1)``, which is always 0).

    * Seeding no longer leaves TensorFlow op determinism switched on for the rest of the
      process (SciKeras' ``tensorflow_random_state`` does, after which any unseeded fit fails).

    With an int ``random_state``, model building and ``Model.fit`` run with Python's
    ``random``, NumPy's global generator, TensorFlow's global seed and a fresh Keras global
    seed generator seeded, and with TensorFlow op determinism enabled; all of these are
    restored afterwards (TensorFlow's op-seed counter is reset by ``tf.random.set_seed``).
    Predictions are reproducible across fits on the same machine and TensorFlow build.

    Examples
    --------
    >>> import numpy as np
    >>> from skanimal import BottleneckClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(-2, 1, (40, 16)), rng.normal(2, 1, (40, 16))])
    >>> y = np.array(["cat"] * 40 + ["dog"] * 40)
    >>> clf = BottleneckClassifier(hidden_layer_sizes=(16,), learning_rate=1e-2,
    ...                            epochs=10, random_state=0).fit(X, y)
    >>> clf.classes_
    array(['cat', 'dog'], dtype='<U3')
    >>> clf.predict(X[[0, -1]])
    array(['cat', 'dog'], dtype='<U3')
    >>> clf.predict_proba(X[:3]).shape
    (3, 2)
    >>> sorted(clf.history_)
    ['accuracy', 'loss']
    """

    def __init__(
        self,
        model=None,
        *,
        hidden_layer_sizes=(100, 50),
        dropout=(0.5, 0.3),
        negative_slope=0.3,
        learning_rate=1e-3,
        optimizer="adam",
        loss="categorical_crossentropy",
        metrics="accuracy",
        epochs="auto",
        batch_size=50,
        shuffle=True,
        class_weight=None,
        validation_split=None,
        early_stopping="auto",
        n_iter_no_change=10,
        scale_inputs=True,
        callbacks=None,
        random_state=None,
        verbose=0,
        warm_start=False,
        **kwargs,
    ):
        # keyword arguments are parameters too (SciKeras' routed parameters): get_params
        # returns every public attribute stored here
        self.model = model
        self.hidden_layer_sizes = hidden_layer_sizes
        self.dropout = dropout
        self.negative_slope = negative_slope
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.loss = loss
        self.metrics = metrics
        self.epochs = epochs
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.class_weight = class_weight
        self.validation_split = validation_split
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change
        self.scale_inputs = scale_inputs
        self.callbacks = callbacks
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        vars(self).update(kwargs)

    # Checked once per fit (see `fit_context`); `bool` is never accepted as a number.
    # "no_validation": Keras, the SciKeras adapter or `_check_params` below check these.
    _parameter_constraints = {
        "model": "no_validation",
        "hidden_layer_sizes": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "dropout": [Interval(Real, 0, 1, closed="left"), "array-like"],
        "negative_slope": [Interval(Real, 0, np.inf, closed="left")],
        "learning_rate": [Interval(Real, 0, np.inf, closed="neither"), None],
        "optimizer": "no_validation",
        "loss": "no_validation",
        "metrics": "no_validation",
        "epochs": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "batch_size": [Interval(Integral, 1, None, closed="left"), Options(Integral, {-1}),
                       None],
        "shuffle": ["boolean"],
        "class_weight": [Mapping, StrOptions({"balanced"}), None],
        "validation_split": [Interval(Real, 0, 1, closed="left"), None],
        "early_stopping": ["boolean", StrOptions({"auto"})],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "scale_inputs": ["boolean"],
        "callbacks": "no_validation",
        "random_state": [Interval(Integral, 0, 2**32 - 1, closed="both"),
                         np.random.RandomState, None],
        "verbose": ["verbose", StrOptions({"auto"})],
        "warm_start": ["boolean"],
    }

    # ------------------------------------------------------------------ scikit-learn API

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags = ClassifierTags(poor_score=True, multi_class=True, multi_label=False)
        tags.target_tags.required = True
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = False
        tags.input_tags.two_d_array = True
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        tags.input_tags.string = False
        tags.non_deterministic = False
        return tags

    def __sklearn_is_fitted__(self):
        state = vars(self)
        return "_trainer" in state or "_packed_model" in state

    def get_params(self, deep=True):
        """Get the parameters of this classifier, routed ones (``optimizer__rho``...) included.

        Parameters
        ----------
        deep : bool, default=True
            Also return the parameters of parameters that are estimators.

        Returns
        -------
        params : dict
        """
        # SciKeras' rule: every public attribute __init__ stored (keyword arguments too)
        params = {name: value for name, value in vars(self).items()
                  if not name.startswith("_") and not name.endswith("_")}
        if deep:
            for name, value in list(params.items()):
                if hasattr(value, "get_params") and not isinstance(value, type):
                    params.update((f"{name}__{key}", val)
                                  for key, val in value.get_params().items())
        return params

    def set_params(self, **params):
        """Set parameters; routed ones (``optimizer__momentum``, ``fit__shuffle``...) too.

        Parameters
        ----------
        **params : dict
            Parameters.

        Returns
        -------
        self : BottleneckClassifier
        """
        plain = {}
        for name, value in params.items():
            if name.partition("__")[0] in _ROUTING_PREFIXES and "__" in name:
                setattr(self, name, value)
            else:
                plain[name] = value
        if plain:
            super().set_params(**plain)
        return self

    def __getstate__(self):
        # No TensorFlow object is pickled: the Keras model travels as the bytes of a .keras
        # archive (unpacked only when `model_` is used), the default head's arrays as NumPy.
        state = dict(super().__getstate__())
        trainer = state.pop("_trainer", None)
        if trainer is not None:  # optimizer state only for warm_start; see warm_start
            state["_packed_model"] = pack_model(trainer.model_,
                                                optimizer_state=bool(self.warm_start))
        if "_packed_model" in state:  # the archive holds the weights: not stored twice
            state.pop("_forward", None)
        return state

    def __setstate__(self, state):
        model = state.pop("model_", None)  # a pickle of skanimal <= this change: Keras model
        super().__setstate__(state)
        if model is not None:
            self._forward = DenseHead.from_keras(model) if self.model is None else None
            self._adopt(model)
        elif "_packed_model" in state and "_forward" not in state:
            # the NumPy head, read from the archive's arrays without Keras
            self._forward = (DenseHead.from_archive(self._packed_model)
                             if self.model is None else None)

    @property
    def model_(self):
        """The fitted Keras model (unpacked, importing TensorFlow, on first use after loading)."""
        if not self.__sklearn_is_fitted__():
            raise AttributeError(f"{type(self).__name__!r} object has no attribute 'model_'")
        return self._keras_trainer().model_

    @property
    def current_epoch(self):
        """Epochs trained so far (``len(history_["loss"])``)."""
        history = getattr(self, "history_", None)
        return len(history["loss"]) if history else 0

    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, *, validation_data=None, **kwargs):
        """Build the head (unless ``warm_start``) and train it on ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Bottleneck features; cast to float32.
        y : array-like of shape (n_samples,)
            Class labels (strings or integers), at least two classes.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights, multiplied with the ``class_weight`` weights. Samples of
            weight 0 are dropped.
        validation_data : tuple (X_val, y_val) or (X_val, y_val, sample_weight_val), default=None
            Held-out features and *original* labels evaluated after each epoch
            (``val_loss``, ``val_accuracy`` in ``history_``), used for early stopping and
            ``confidence_threshold_``. Overrides ``validation_split``.
        **kwargs : dict
            Other keyword arguments of ``keras.Model.fit`` (SciKeras behaviour; prefer
            ``fit__<name>`` parameters).

        Returns
        -------
        self : BottleneckClassifier
            The fitted classifier.
        """
        self._check_params()
        # y=None or a y of the wrong length fail in _train's validation, with its messages
        early = self._early_stopping_on(len(y) if hasattr(y, "__len__") else 0)
        split = self.validation_split
        if split is None:
            split = EARLY_STOPPING_VALIDATION if early else 0.0
        if validation_data is None and split > 0:
            X, y, sample_weight, validation_data = self._hold_out_validation(
                X, y, sample_weight, split)
        if early and validation_data is None:
            raise ValueError(
                "early_stopping=True needs a validation part: set validation_split > 0 (or "
                "None) or pass validation_data"
            )
        epochs = kwargs.get("epochs", getattr(self, "fit__epochs", self.epochs))
        if epochs == "auto":
            epochs = self._auto_epochs(len(y) if hasattr(y, "__len__") else 0, early)
        kwargs["epochs"] = epochs
        kwargs["initial_epoch"] = kwargs.get("initial_epoch", 0)
        self._train(X, y, sample_weight=sample_weight, warm_start=self.warm_start,
                    validation_data=validation_data, early_stopping=early, **kwargs)
        self.confidence_threshold_ = self.confidence_basis_ = None
        if validation_data is not None:
            X_val, y_val = validation_data[:2]
            self.confidence_basis_ = calibrate_confidence(
                self.predict_proba(X_val), column_or_1d(y_val), self.classes_,
                precision=CONFIDENCE_PRECISION)
            self.confidence_threshold_ = self.confidence_basis_.threshold
        self.novelty_ = FeatureNovelty().fit(X)
        return self

    def _early_stopping_on(self, n_samples):
        """Whether this fit stops early: ``early_stopping``, or "auto" and a large set."""
        if self.early_stopping == "auto":
            return n_samples >= EARLY_STOPPING_MIN_SAMPLES
        return bool(self.early_stopping)

    def _auto_epochs(self, n_train, early):
        """``epochs="auto"``: the epoch budget for ``n_train`` training samples."""
        if early:
            return MAX_EPOCHS
        batch = self.batch_size
        if batch is None:
            batch = 32  # Keras' default
        elif batch == -1:
            batch = n_train
        steps_per_epoch = max(1, math.ceil(n_train / batch))
        return max(MIN_EPOCHS, math.ceil(MIN_STEPS / steps_per_epoch))

    def _hold_out_validation(self, X, y, sample_weight, fraction):
        """Split off ``fraction`` of the data, stratified by class.

        Keras would take the *last* rows before shuffling: with samples ordered by class
        folder (as ``load_image_folder`` returns them) that is a single class.
        """
        # here, not at the top: sklearn.model_selection imports SciPy's statistics, which
        # loading and predicting do not need (issue 23)
        from sklearn.model_selection import train_test_split

        X, y = indexable(X, y)
        y_array = column_or_1d(y, warn=True)
        indices = np.arange(len(y_array))
        seed = _seed_of(self.random_state)
        try:
            train, val = train_test_split(indices, test_size=fraction,
                                          stratify=y_array, random_state=seed)
        except ValueError:  # a class too small to appear on both sides: split unstratified
            train, val = train_test_split(indices, test_size=fraction, random_state=seed)
        train, val = np.sort(train), np.sort(val)
        validation = (safe_indexing(X, val), y_array[val])
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight)
            validation = validation + (sample_weight[val],)
            sample_weight = sample_weight[train]
        return safe_indexing(X, train), y_array[train], sample_weight, validation

    @fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None, **kwargs):
        """Train for a single epoch, keeping the current model and history.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Bottleneck features.
        y : array-like of shape (n_samples,)
            Class labels.
        classes : array-like of shape (n_classes,), default=None
            All classes that will ever appear, needed on the first call when ``y`` does not
            show them all; ``np.unique(y)`` otherwise.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights.
        **kwargs : dict
            Other keyword arguments of ``keras.Model.fit``.

        Returns
        -------
        self : BottleneckClassifier
            The updated classifier.
        """
        for name in ("epochs", "initial_epoch"):
            if name in kwargs:
                raise TypeError(
                    f"Invalid argument `{name}` to `partial_fit`: it always trains one epoch "
                    "from the current epoch"
                )
        fitted = self.__sklearn_is_fitted__()
        if not fitted:
            self._check_params()
        if classes is not None and fitted:
            classes = np.unique(np.asarray(classes))
            if not np.array_equal(classes, self.classes_):
                raise ValueError(
                    f"`classes={classes.tolist()}` is not the same as on the first call to "
                    f"partial_fit: {self.classes_.tolist()}"
                )
        self._train(X, y, sample_weight=sample_weight, warm_start=True, epochs=1,
                    initial_epoch=self.current_epoch, classes=classes, **kwargs)
        if not hasattr(self, "confidence_threshold_"):
            self.confidence_threshold_ = self.confidence_basis_ = None
        return self

    def predict(self, X, **kwargs):
        """Predict the class label of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Bottleneck features, with as many columns as seen in :meth:`fit`.
        **kwargs : dict
            Other keyword arguments of ``keras.Model.predict`` (they make it predict with
            Keras).

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Labels from ``classes_`` (same dtype).
        """
        proba = self.predict_proba(X, **kwargs)
        return self.classes_[np.argmax(proba, axis=1)]

    def predict_proba(self, X, **kwargs):
        """Class probabilities of each sample.

        The default head computes them in NumPy with the Keras model's weights (no
        TensorFlow); a custom ``model``, or keyword arguments, predict with Keras.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Bottleneck features, with as many columns as seen in :meth:`fit`.
        **kwargs : dict
            Other keyword arguments of ``keras.Model.predict``.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes), float32
            Probabilities in the order of ``classes_``; rows sum to 1.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float32, ensure_min_features=1)
        forward = vars(self).get("_forward")
        if forward is not None and not kwargs:
            return forward.predict_proba(X)
        return self._keras_trainer().predict_proba(X, **kwargs)

    def score(self, X, y, sample_weight=None):
        """Mean accuracy on ``(X, y)``, the default score of scikit-learn classifiers.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Bottleneck features.
        y : array-like of shape (n_samples,)
            True labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        score : float
            ``accuracy_score(y, self.predict(X), sample_weight=sample_weight)``.
        """
        from sklearn.metrics import accuracy_score  # see _hold_out_validation

        return float(accuracy_score(y, self.predict(X), sample_weight=sample_weight))

    @classmethod
    def from_trained_model(cls, model, classes, n_features_in, *, params=None, history=None):
        """A fitted classifier around an already trained Keras head, without training.

        What :func:`skanimal.load` uses: the fitted attributes are set exactly as ``fit``
        sets them, so ``predict``/``predict_proba`` check their input and decode labels as
        after ``fit``.

        Parameters
        ----------
        model : keras.Model
            The trained head: ``n_features_in`` inputs, one softmax output per class.
        classes : array-like of shape (n_classes,)
            The labels, in the order of the model's outputs.
        n_features_in : int
            Width of the feature rows the model takes.
        params : dict, optional
            Constructor parameters (defaults otherwise).
        history : dict, optional
            ``history_`` to restore (training curves).

        Returns
        -------
        BottleneckClassifier
            Fitted.
        """
        head = cls._fitted_shell(classes, n_features_in, params=params, history=history)
        head._forward = DenseHead.from_keras(model) if head.model is None else None
        head._adopt(model)
        head.target_encoder_.choose_encoding(getattr(model, "loss", None) or head.loss,
                                             head._trainer.n_model_outputs())
        return head

    @classmethod
    def from_saved_model(cls, data, classes, n_features_in, *, params=None, history=None):
        """A fitted classifier around a trained default head saved as a ``.keras`` archive.

        The head's weights are read from the archive without Keras and predict in NumPy;
        ``model_`` unpacks the archive into a Keras model (importing TensorFlow) when used.

        Parameters
        ----------
        data : bytes
            The ``.keras`` archive of the trained head.
        classes, n_features_in, params, history
            As for :meth:`from_trained_model`.

        Returns
        -------
        BottleneckClassifier or None
            Fitted; None when ``params`` name a custom ``model`` or the archive holds another
            network than the default head (load it with Keras and use
            :meth:`from_trained_model`).

        Raises
        ------
        ValueError
            When the head's input width is not ``n_features_in`` or its output width not
            the number of classes.
        """
        head = cls._fitted_shell(classes, n_features_in, params=params, history=history)
        forward = DenseHead.from_archive(data) if head.model is None else None
        if forward is None:
            return None
        forward.check_widths(head.n_features_in_, head.n_classes_)
        head._forward = forward
        head._packed_model = data
        return head

    @classmethod
    def _fitted_shell(cls, classes, n_features_in, *, params=None, history=None):
        """A classifier with the fitted attributes of ``classes`` and ``n_features_in``
        (no model yet)."""
        classes = np.asarray(classes)
        head = cls(**(params or {}))
        X_stub = np.zeros((len(classes), int(n_features_in)), dtype=np.float32)
        # Validation on one row per class sets n_features_in_ and the dtype attributes
        # exactly as fit does, so predict checks its input against the saved width.
        head._validated(X_stub, classes, reset=True, dtype=np.float32)
        encoder = HeadTargetEncoder().fit(classes)
        head.target_encoder_ = encoder
        vars(head).update(encoder.get_metadata())
        head.history_ = defaultdict(list, {} if history is None else history)
        return head

    # ------------------------------------------------------------------ training

    def _check_params(self):
        """What ``_parameter_constraints`` cannot say: layer counts, optimizer kind, model
        kind, misspelt parameters. Called at the start of each fit."""
        start_tensorflow()  # fitting imports TensorFlow: without its C++ notices on stderr
        import keras

        layer_plan(self.hidden_layer_sizes, self.dropout)  # each size and rate, and their counts
        opt = self.optimizer
        if not (isinstance(opt, (str, keras.optimizers.Optimizer))
                or (inspect.isclass(opt) and issubclass(opt, keras.optimizers.Optimizer))):
            raise TypeError(
                "optimizer must be a name such as 'rmsprop', 'adam' or 'sgd', a "
                f"keras.optimizers.Optimizer subclass or instance, got {opt!r}"
            )
        if not (self.model is None or callable(self.model)):
            raise TypeError(
                "model must be None (the default head), a callable that returns a "
                f"keras.Model, or a keras.Model, got {self.model!r}"
            )
        if self.model is None:
            known = routed_keyword_names() | {"class_weight"}
            params = self.get_params(deep=False)
            defaults = inspect.signature(type(self).__init__).parameters
            unknown = sorted(k for k in params
                             if "__" not in k and k not in known and k not in defaults)
            if unknown:
                raise TypeError(
                    f"{type(self).__name__} got unexpected parameter(s) {unknown}. Routed "
                    "parameters need a prefix such as fit__, compile__, optimizer__ or "
                    "model__ (the last only with a custom `model`)."
                )

    def _train(self, X, y, sample_weight, warm_start, epochs, initial_epoch, classes=None,
               validation_data=None, early_stopping=False, **kwargs):
        start_tensorflow()  # training imports TensorFlow; predicting does not
        import keras

        floatx = np.dtype(keras.backend.floatx())
        reinitialize = not ((self.warm_start or warm_start) and self.__sklearn_is_fitted__())
        X, y = self._validated(X, y, reset=reinitialize, dtype=floatx)
        if reinitialize:
            all_classes = np.unique(y) if classes is None else np.unique(np.asarray(classes))
            if classes is not None:
                missing = np.setdiff1d(np.unique(y), all_classes)
                if missing.size:
                    raise ValueError(
                        f"y contains labels that are not in `classes`: {missing.tolist()}"
                    )
        else:
            all_classes = self.classes_
            self.target_encoder_.encode(y)  # unseen labels → ValueError
        sample_weight = self._sample_weight(X, y, sample_weight, all_classes, floatx)
        if sample_weight is not None:
            keep = sample_weight != 0
            if not keep.any():
                raise ValueError(
                    "All sample weights are zero: there is nothing to train on."
                )
            if not keep.all():
                X, y, sample_weight = X[keep], y[keep], sample_weight[keep]
        if reinitialize and classes is None:
            present = np.unique(y)
            if present.size < 2:
                trimmed = (" (after dropping samples of zero weight)"
                           if sample_weight is not None else "")
                raise ValueError(
                    f"{type(self).__name__} needs at least 2 classes in y{trimmed}, but y "
                    f"contains only one class: {present.tolist()}"
                )
        if validation_data is not None:
            validation_data = self._checked_validation_data(validation_data, floatx)
        limit_tf_threads()  # in a worker process, before this process's first TF op
        if reinitialize:
            trainer = self._new_trainer(X, y, classes)
        else:
            trainer = self._keras_trainer()
        batch_size = self._fit_batch_size(len(X), kwargs)
        trainer.train(X, y, sample_weight=sample_weight, epochs=epochs,
                      initial_epoch=initial_epoch, batch_size=batch_size,
                      validation_data=validation_data, early_stopping=early_stopping, **kwargs)
        self.history_ = trainer.history_
        vars(self).pop("_packed_model", None)  # the trainer holds the current model
        self._trainer = trainer
        self._forward = DenseHead.from_keras(trainer.model_) if self.model is None else None

    def _new_trainer(self, X, y, classes):
        """A SciKeras adapter around a new model for ``(X, y)``; copies its fitted
        attributes (``classes_``, ``target_encoder_``...) onto the classifier."""
        seed = _seed_of(self.random_state)
        # the default head scales its input with statistics of these training features
        mean, variance = (input_scaling(X) if self.scale_inputs and self.model is None
                          else (None, None))
        trainer = scikeras_trainer(self.get_params(deep=False),
                                   default_model=self._default_head(mean, variance, seed),
                                   target_encoder=HeadTargetEncoder())
        trainer.start(y, self._meta(), classes=classes, seed=seed)
        self.target_encoder_ = trainer.target_encoder_
        vars(self).update(trainer.target_encoder_.get_metadata())
        return trainer

    def _default_head(self, mean, variance, seed):
        """The build function of the default head, as SciKeras calls a ``model`` callable."""
        def build(compile_kwargs, meta):
            return build_head(meta["n_features_in_"], meta["n_classes_"],
                              hidden_layer_sizes=self.hidden_layer_sizes, dropout=self.dropout,
                              negative_slope=self.negative_slope, seed=seed,
                              compile_kwargs=compile_kwargs, input_mean=mean,
                              input_variance=variance)
        return build

    def _meta(self):
        """Fitted attributes of the input that a ``model`` callable receives in ``meta``."""
        names = ("n_features_in_", "feature_names_in_", "X_shape_", "X_dtype_", "y_dtype_",
                 "y_ndim_", "target_type_")
        return {name: getattr(self, name) for name in names if hasattr(self, name)}

    def _keras_trainer(self):
        """The SciKeras adapter holding the fitted Keras model: the one that trained it, or,
        after unpickling, one around the model unpacked from its saved bytes."""
        trainer = vars(self).get("_trainer")
        if trainer is None:
            model = unpack_model(self._packed_model)
            self._adopt(model)
        return self._trainer

    def _adopt(self, model):
        trainer = scikeras_trainer(self.get_params(deep=False), default_model=None,
                                   target_encoder=self.target_encoder_)
        trainer.adopt(model, self.target_encoder_, self._meta(), getattr(self, "history_", {}))
        self.history_ = trainer.history_
        self._trainer = trainer

    def _fit_batch_size(self, n_samples, kwargs):
        """Samples per gradient step: ``batch_size`` (a ``fit__batch_size`` or keyword
        argument first), -1 meaning all, None Keras' 32."""
        batch = kwargs.pop("batch_size", getattr(self, "fit__batch_size", self.batch_size))
        if batch is None:
            return 32
        if batch == -1:
            return max(1, n_samples)
        return int(batch)

    def _checked_validation_data(self, validation_data, floatx):
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError(
                "validation_data must be a tuple (X_val, y_val) or (X_val, y_val, sample_weight)"
            )
        X_val, y_val = validation_data[:2]
        X_val = validate_data(self, X_val, reset=False, dtype=floatx, ensure_min_features=1)
        y_val = column_or_1d(y_val, warn=True)
        if len(y_val) != len(X_val):
            raise ValueError(
                f"validation_data has {len(X_val)} samples in X but {len(y_val)} in y"
            )
        checked = (X_val, y_val)
        if len(validation_data) == 3 and validation_data[2] is not None:
            checked = checked + (check_sample_weight(validation_data[2], X_val, dtype=floatx),)
        return checked

    # ------------------------------------------------------------------ validation

    def _validated(self, X, y, *, reset, dtype):
        """scikit-learn validation of ``X`` and ``y`` (class labels)."""
        if X is None:
            return None, column_or_1d(y, warn=True)
        X, y = validate_data(self, X, y, reset=reset, dtype=dtype, ensure_min_features=1,
                             y_numeric=False)
        check_classification_targets(y)
        target_type = type_of_target(y)
        if target_type not in ("binary", "multiclass"):
            raise ValueError(
                f"Unknown label type: {target_type!r}. {type(self).__name__} needs 1-D class "
                "labels"
            )
        if reset:
            self.X_shape_ = X.shape
            self.X_dtype_ = X.dtype
            self.y_dtype_ = y.dtype
            self.y_ndim_ = y.ndim
            self.target_type_ = target_type
        return X, y

    def _sample_weight(self, X, y, sample_weight, classes, floatx):
        """Combine ``sample_weight`` and ``class_weight`` (a new array), or None."""
        if sample_weight is None and self.class_weight is None:
            return None
        weight = check_sample_weight(sample_weight, X, dtype=np.float64, copy=True)
        if isinstance(self.class_weight, Mapping):
            unknown = [k for k in self.class_weight if not np.any(classes == k)]
            if unknown:
                raise ValueError(
                    f"class_weight has labels that are not classes of y: {unknown}; "
                    f"the classes are {classes.tolist()}"
                )
            per_class = np.ones(len(classes))
            for label, w in self.class_weight.items():
                if isinstance(w, (bool, np.bool_)) or not (isinstance(w, Real) and w >= 0
                                                             and np.isfinite(w)):
                    raise ValueError(f"class_weight[{label!r}] must be a number >= 0, got {w!r}")
                per_class[np.flatnonzero(classes == label)] = w
            idx = np.searchsorted(classes, y)
            weight *= per_class[idx]
        elif self.class_weight == "balanced":
            weight *= compute_sample_weight("balanced", y)
        return weight.astype(floatx)


def _seed_of(random_state):
    """The int seed of ``random_state`` (None stays None)."""
    if isinstance(random_state, np.random.RandomState):
        # draw from a copy: the same RandomState gives the same seed at every fit
        copy = np.random.RandomState()
        copy.set_state(random_state.get_state())
        return int(copy.randint(np.iinfo(np.int32).max))
    return None if random_state is None else int(random_state)  # checked by the constraints
