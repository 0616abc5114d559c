"""The one place where skanimal uses other libraries' private APIs.

Everything here reaches into a module or name that its library does not promise to keep:
SciKeras' ``scikeras._utils``, TensorFlow's ``tensorflow.python``, Keras' ``keras.src`` and
scikit-learn's underscore names. The rest of skanimal imports these through this module only
(``tests/test_architecture.py`` fails otherwise), so an upgrade that breaks one of them
breaks here, in one screen of code. pyproject pins SciKeras below its next minor version for
the same reason.

What is here, and why:

* :func:`seeded` — seeding for the classifier's fits. SciKeras' own
  ``tensorflow_random_state`` leaves TensorFlow op determinism on for the rest of the
  process; undoing that needs TensorFlow's private config, and a fresh Keras seed generator
  needs Keras' private global state.
* :func:`op_determinism_enabled` — for tests and diagnostics of the above.
* :func:`pack_model`, :class:`PackedModel`, :func:`unpack_model` — a Keras model as the
  in-memory ``.keras`` archive SciKeras pickles (Keras' ``saving_lib``, which reads and writes
  file objects), optionally without the optimizer's state.
* :func:`optimizer_class`, :func:`route_params`, :func:`unflatten_params` — SciKeras' parsing
  of ``optimizer__<name>`` routed parameters, so the classifier builds optimizers exactly
  as SciKeras does.
* :func:`keras_archive_layers` — the layers and weights of a ``.keras`` archive read with
  ``zipfile``/``json``/``h5py``, so that a saved model predicts without importing Keras;
  the names its weights are stored under follow Keras' private saving code.
* :func:`scikeras_trainer` — the SciKeras ``KerasClassifier`` that trains
  :class:`~skanimal.BottleneckClassifier`'s model: every SciKeras private method skanimal
  overrides or calls is in it, each with its reason (``tests/test_architecture.py`` fails
  on a private override anywhere else). :func:`routed_keyword_names`: SciKeras' lists of
  ``Model.fit``/``compile``/``predict`` keywords.
* :func:`safe_indexing`, :func:`check_sample_weight`, :func:`routing_enabled` —
  scikit-learn helpers that are underscore-named but used by its whole ecosystem.
* Parameter validation: scikit-learn's ``_parameter_constraints`` machinery
  (:func:`fit_context`, :class:`Interval`, :class:`StrOptions`, :class:`Options`,
  :class:`HasMethods`, :func:`validate_parameter_constraints`,
  :class:`InvalidParameterError`), with one change: :class:`Interval` never accepts a
  ``bool`` as a number (``batch_size=True`` is an error, not a batch of 1).
"""

from __future__ import annotations

import contextlib
import functools
import random
from collections import defaultdict

import numpy as np

#: scikit-learn's parameter-validation names and skanimal's Interval, provided on first use
#: (see __getattr__).
_PARAMETER_VALIDATION = ("HasMethods", "Interval", "InvalidParameterError", "Options",
                         "StrOptions", "validate_parameter_constraints")

__all__ = [
    "check_sample_weight",
    "fit_context",
    "keras_archive_layers",
    "op_determinism_enabled",
    "pack_model",
    "PackedModel",
    "unpack_model",
    "optimizer_class",
    "route_params",
    "routed_keyword_names",
    "routing_enabled",
    "scikeras_trainer",
    "safe_indexing",
    "seeded",
    "unflatten_params",
    *_PARAMETER_VALIDATION,
]


# -- scikit-learn ------------------------------------------------------------------------------
# Imported on first use: reading a saved head (keras_archive_layers, below) is all a light
# prediction needs from this module, and importing scikit-learn costs it a second or more.


def __getattr__(name):
    """scikit-learn's parameter-validation names, and :class:`Interval`, on first use."""
    if name == "Interval":
        return _interval_class()
    if name in _PARAMETER_VALIDATION:
        from sklearn.utils import _param_validation

        return getattr(_param_validation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _interval_class():
    from sklearn.utils._param_validation import Interval as SklearnInterval

    class Interval(SklearnInterval):
        """scikit-learn's ``Interval`` constraint, except that a ``bool`` is never a number.

        scikit-learn accepts ``True`` wherever an int is expected (``bool`` is an ``int``
        subclass); skanimal refuses it, so ``batch_size=True`` fails at ``fit`` naming the
        parameter instead of training with batches of one.
        """

        def is_satisfied_by(self, val):
            if isinstance(val, (bool, np.bool_)):
                return False
            return super().is_satisfied_by(val)

    Interval.__module__, Interval.__qualname__ = __name__, "Interval"
    return Interval


def fit_context(*, prefer_skip_nested_validation):
    """Decorate a ``fit`` method to validate ``_parameter_constraints`` once, on entry.

    scikit-learn's ``sklearn.base._fit_context``: it calls ``estimator._validate_params()``
    (skipped when scikit-learn's ``skip_parameter_validation`` is set, and for
    ``partial_fit`` on a fitted estimator), then runs ``fit``. Meta-estimators pass
    ``prefer_skip_nested_validation=False`` so that the estimators they wrap are validated.
    """
    from sklearn.base import _fit_context

    return _fit_context(prefer_skip_nested_validation=prefer_skip_nested_validation)


def safe_indexing(X, indices):
    """Rows ``indices`` of ``X`` (array, DataFrame, list...): ``sklearn.utils._safe_indexing``."""
    from sklearn.utils import _safe_indexing

    return _safe_indexing(X, indices)


def check_sample_weight(sample_weight, X, **kwargs):
    """``sklearn.utils.validation._check_sample_weight``: validated per-sample weights."""
    from sklearn.utils.validation import _check_sample_weight

    return _check_sample_weight(sample_weight, X, **kwargs)


def routing_enabled():
    """Whether scikit-learn's metadata routing is on (``enable_metadata_routing``)."""
    from sklearn.utils.metadata_routing import _routing_enabled

    return _routing_enabled()


# -- SciKeras ----------------------------------------------------------------------------------
# Imported on use: SciKeras imports TensorFlow, and the parameter validation above must not
# (a warm-cache BottleneckFeatures.fit never loads TensorFlow).
def optimizer_class(name):
    """The Keras optimizer class SciKeras resolves ``name`` (e.g. ``"rmsprop"``) to."""
    from scikeras._utils import get_optimizer_class

    return get_optimizer_class(name)


def route_params(params, destination, pass_filter, strict=False):
    """SciKeras' routing: the ``<destination>__<name>`` entries of ``params``, unprefixed."""
    from scikeras import _utils

    return _utils.route_params(params, destination=destination, pass_filter=pass_filter,
                               strict=strict)


def unflatten_params(items, params):
    """SciKeras' instantiation of a class (or nested classes) ``items`` with ``params``."""
    from scikeras import _utils

    return _utils.unflatten_params(items=items, params=params)


# -- TensorFlow and Keras ----------------------------------------------------------------------
def op_determinism_enabled():
    """Whether TensorFlow op determinism is on in this process."""
    from tensorflow.python.framework import config as tf_config

    return tf_config.is_op_determinism_enabled()


def _keras_global_state():
    try:
        from keras.src.backend.common import global_state
    except ImportError:  # pragma: no cover - private module moved
        return None
    if not (hasattr(global_state, "get_global_attribute")
            and hasattr(global_state, "set_global_attribute")):
        return None  # pragma: no cover
    return global_state


@contextlib.contextmanager
def seeded(seed):
    """Seed Python, NumPy, TensorFlow and Keras and make TF ops deterministic; undo on exit.

    Replaces ``scikeras.utils.random_state.tensorflow_random_state``, which sets
    ``TF_DETERMINISTIC_OPS=1`` *before* asking TensorFlow whether op determinism is on:
    TensorFlow then reads the variable, answers True, and SciKeras never switches
    determinism off again, so every later unseeded fit in the process fails with "Random ops
    require a seed to be set when determinism is enabled".

    Parameters
    ----------
    seed : int
        The seed, in ``[0, 2**32)``.
    """
    import tensorflow as tf
    from tensorflow.python.eager import context
    from tensorflow.python.framework import config as tf_config

    python_state = random.getstate()
    numpy_state = np.random.get_state()
    tf_seed = context.global_seed()
    determinism_was_on = tf_config.is_op_determinism_enabled()
    keras_state = _keras_global_state()
    keras_generator = keras_state.get_global_attribute("global_seed_generator") \
        if keras_state is not None else None
    try:
        random.seed(seed)
        np.random.seed(seed)
        tf.random.set_seed(seed)
        if keras_state is not None:
            # unseeded keras.random ops draw from this generator: start a fresh one,
            # created from the seeded Python RNG on first use
            keras_state.set_global_attribute("global_seed_generator", None)
        tf_config.enable_op_determinism()
        yield
    finally:
        if not determinism_was_on:
            tf_config.disable_op_determinism()
        if keras_state is not None:
            keras_state.set_global_attribute("global_seed_generator", keras_generator)
        tf.random.set_seed(tf_seed)
        np.random.set_state(numpy_state)
        random.setstate(python_state)


@contextlib.contextmanager
def _fresh_optimizer(model):
    """Within: ``model`` has an unbuilt optimizer of the same configuration (no slot
    variables to save), then its own again."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        yield
        return
    model.optimizer = type(optimizer).from_config(optimizer.get_config())
    try:
        yield
    finally:
        model.optimizer = optimizer


def pack_model(model, *, optimizer_state=True):
    """``model`` as the bytes of a Keras ``.keras`` archive, as SciKeras pickles models.

    Parameters
    ----------
    model : keras.Model
    optimizer_state : bool, default=True
        Keep the optimizer's variables (its moving averages: two values per weight for
        Adam, one for RMSprop), which only resuming training needs; without them the
        archive is a half to a third of the size, and a model loaded from it predicts the
        same.

    Returns
    -------
    bytes
    """
    import io

    from keras.src.saving import saving_lib

    buffer = io.BytesIO()
    with contextlib.nullcontext() if optimizer_state else _fresh_optimizer(model):
        saving_lib.save_model(model, buffer)
    return buffer.getvalue()


def unpack_model(data):
    """The Keras model of :func:`pack_model`'s bytes, compiled.

    An archive saved without optimizer state makes Keras warn that it skipped the
    optimizer's variables; that is expected here and not shown.
    """
    import io
    import warnings

    from keras.src.saving import saving_lib

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        return saving_lib.load_model(io.BytesIO(data), compile=True)


class PackedModel:
    """Bytes of :func:`pack_model` that unpickle as the Keras model itself."""

    def __init__(self, data):
        self.data = data

    def __reduce__(self):
        return (unpack_model, (self.data,))


# -- the SciKeras training adapter --------------------------------------------------------------
def scikeras_trainer(params, *, default_model, target_encoder):
    """A SciKeras ``KerasClassifier`` that trains a :class:`~skanimal.BottleneckClassifier`'s
    Keras model: the classifier composes it (it is no SciKeras subclass itself, so that a
    fitted one loads and predicts without TensorFlow) and reaches SciKeras through it only.

    Parameters
    ----------
    params : dict
        The classifier's ``get_params(deep=False)``: every SciKeras parameter and routed
        ``optimizer__``/``model__``/``callbacks__``/``fit__``/``predict__`` parameter.
    default_model : callable
        ``default_model(compile_kwargs, meta)``: the model when ``params["model"]`` is None.
    target_encoder : object
        Unfitted target encoder (``fit``, ``transform``, ``inverse_transform``,
        ``get_metadata``, ``choose_encoding``).

    Returns
    -------
    KerasClassifier
        With the public methods ``train``, ``adopt`` and ``predict_proba``.
    """
    trainer = _trainer_class()(**params)
    trainer._default_model = default_model
    trainer._target_encoder = target_encoder
    return trainer


def routed_keyword_names():
    """Names SciKeras routes to ``Model.fit``/``compile``/``predict`` (e.g. ``run_eagerly``)
    when given without a prefix: ``BaseWrapper._fit_kwargs`` and its siblings."""
    from scikeras.wrappers import BaseWrapper

    return (set(BaseWrapper._fit_kwargs) | set(BaseWrapper._compile_kwargs)
            | set(BaseWrapper._predict_kwargs))


_TRAINER_CLASS = []


def _trainer_class():
    """Define the adapter class on first use (defining it imports SciKeras, so TensorFlow).

    Every SciKeras private method it overrides or calls, and why:

    * ``_validate_data`` (override): returns its input. The classifier validates ``X``/``y``
      the scikit-learn way (its own messages) before anything reaches SciKeras, whose own
      checks would word the same errors differently.
    * ``_check_model_param`` (override): ``model=None`` means skanimal's default head (SciKeras
      would refuse None); a ``keras.Model`` is used as is; a bad value is one ``TypeError``.
    * ``_build_keras_model`` (override, and call): builds under :func:`seeded` (SciKeras'
      ``tensorflow_random_state`` leaves op determinism on, see :func:`seeded`) and refuses a
      callable that returns something other than a ``keras.Model``.
    * ``_get_compile_kwargs`` (override): an optimizer *instance* is copied for each model (one
      instance can serve one model only); a name or class gets ``learning_rate`` unless an
      ``optimizer__learning_rate`` is routed.
    * ``_check_model_compatibility`` (override, and call): also refuses a model whose output
      width is not the number of classes, naming both, instead of a TensorFlow shape error.
    * ``_fit_keras_model`` (override, and call): batches from a ``tf.data`` pipeline (Keras
      converts arrays anew every epoch: 25 s instead of 3 s for 300 one-batch epochs),
      shuffled with the seed, early stopping added as a callback; SciKeras then runs
      ``Model.fit`` with its routed ``fit__`` arguments and keeps ``history_``.
    * ``_initialize_callbacks``, ``_ensure_compiled_model`` (calls): SciKeras'
      resolution of ``callbacks``/``callbacks__`` and compilation of an uncompiled model with
      ``optimizer``/``loss``/``metrics``.
    * ``_fit_callbacks`` (attribute): the callbacks of one fit, extended with early stopping.
    * ``target_encoder`` (public hook): skanimal's encoder, which one-hot encodes binary
      targets for a 2-unit softmax.
    """
    if _TRAINER_CLASS:
        return _TRAINER_CLASS[0]
    import keras
    import tensorflow as tf
    from scikeras.wrappers import KerasClassifier

    class SciKerasTrainer(KerasClassifier):
        def __init__(self, **params):
            vars(self).update(params)

        # the deprecated SciKeras alias of `model`, and parameters SciKeras reads that the
        # classifier does not have
        build_fn = None
        validation_batch_size = None
        run_eagerly = False

        @property
        def target_encoder(self):
            return self._target_encoder

        def _validate_data(self, X=None, y=None, reset=False, y_numeric=False):
            return X, y

        def _check_model_param(self):
            model = self.model
            if model is None:
                return self._default_model
            if isinstance(model, keras.Model):
                return lambda: model
            if callable(model):
                return model
            raise TypeError(
                "model must be None (the default head), a callable that returns a "
                f"keras.Model, or a keras.Model, got {model!r}"
            )

        def _seed_context(self):
            seed = getattr(self, "_seed", None)
            return contextlib.nullcontext() if seed is None else seeded(seed)

        def _build_keras_model(self):
            with self._seed_context():
                model = super()._build_keras_model()
            if not isinstance(model, keras.Model):
                raise TypeError(
                    f"The model callable must return a keras.Model, got {type(model).__name__}"
                )
            return model

        def _get_compile_kwargs(self):
            compile_kwargs = super()._get_compile_kwargs()
            opt = self.optimizer
            if isinstance(opt, keras.optimizers.Optimizer):
                compile_kwargs["optimizer"] = type(opt).from_config(opt.get_config())
                return compile_kwargs
            opt_class = optimizer_class(opt) if isinstance(opt, str) else opt
            opt_params = route_params(self.get_params(), destination="optimizer",
                                      pass_filter=set(), strict=True)
            if self.learning_rate is not None:
                opt_params.setdefault("learning_rate", self.learning_rate)
            compile_kwargs["optimizer"] = unflatten_params(items=opt_class, params=opt_params)
            return compile_kwargs

        def n_model_outputs(self):
            outputs = getattr(self.model_, "outputs", None)
            return outputs[0].shape[-1] if outputs else None

        def _check_model_compatibility(self, y):
            super()._check_model_compatibility(y)
            n_out = self.n_model_outputs()
            binary_sigmoid = n_out == 1 and self.n_classes_ == 2
            if n_out is not None and n_out != self.n_classes_ and not binary_sigmoid:
                raise ValueError(
                    f"The Keras model has {n_out} output units but there are "
                    f"{self.n_classes_} classes {self.classes_.tolist()}: build the last "
                    "layer from meta['n_classes_']"
                )

        def _fit_keras_model(self, X, y, sample_weight, warm_start, epochs, initial_epoch,
                             early_stopping=False, batch_size=32, **kwargs):
            shuffle = kwargs.pop("shuffle", getattr(self, "fit__shuffle", self.shuffle))
            columns = (X, y) if sample_weight is None else (X, y, sample_weight)
            with self._seed_context():
                data = tf.data.Dataset.from_tensor_slices(columns)
                if shuffle:
                    data = data.shuffle(len(X), seed=getattr(self, "_seed", None),
                                        reshuffle_each_iteration=True)
                data = data.batch(batch_size).prefetch(2)
                validation = kwargs.pop("validation_data", None)
                if validation is not None:
                    kwargs["validation_data"] = tf.data.Dataset.from_tensor_slices(
                        tuple(validation)).batch(batch_size)
                saved_callbacks = self._fit_callbacks
                if early_stopping:
                    self._fit_callbacks = [*saved_callbacks, keras.callbacks.EarlyStopping(
                        monitor="val_loss", patience=self.n_iter_no_change,
                        restore_best_weights=True)]
                try:
                    super()._fit_keras_model(data, None, sample_weight=None,
                                             warm_start=warm_start, epochs=epochs,
                                             initial_epoch=initial_epoch, batch_size=None,
                                             shuffle=False, validation_split=0.0, **kwargs)
                finally:
                    self._fit_callbacks = saved_callbacks

        # -- the adapter's public surface, used by the classifier ------------------------
        def start(self, y, meta, *, classes=None, seed=None):
            """Fit the target encoder, set ``meta`` and build a new model."""
            self._random_state = None  # seeding is done by `seeded`, not SciKeras
            self._seed = seed
            encoder = self.target_encoder
            encoder.classes = classes
            self.target_encoder_ = encoder.fit(y)
            vars(self).update(meta)
            vars(self).update(self.target_encoder_.get_metadata())
            self.feature_encoder_ = self.feature_encoder.fit(
                np.zeros((1, meta["n_features_in_"]), dtype=np.float32))
            self.model_ = self._build_keras_model()
            self._initialize_callbacks()
            return self

        def adopt(self, model, target_encoder, meta, history):
            """Take over a trained ``model`` and its fitted state (no training)."""
            self._random_state = None
            self._seed = None
            self.target_encoder_ = target_encoder
            vars(self).update(meta)
            vars(self).update(target_encoder.get_metadata())
            self.feature_encoder_ = self.feature_encoder.fit(
                np.zeros((1, meta["n_features_in_"]), dtype=np.float32))
            self.model_ = model
            self.history_ = defaultdict(list, history)
            self._initialize_callbacks()
            return self

        def train(self, X, y, *, sample_weight, epochs, initial_epoch, batch_size,
                  validation_data=None, early_stopping=False, **kwargs):
            """Compile if needed, encode the targets for the compiled loss, run ``Model.fit``.

            ``validation_data`` holds validated features and original labels; the history
            is appended to when ``initial_epoch`` > 0.
            """
            self._ensure_compiled_model()
            self.target_encoder_.choose_encoding(self.model_.loss, self.n_model_outputs())
            y = self.target_encoder_.transform(y)
            self._check_model_compatibility(y)
            if validation_data is not None:
                encoded = (validation_data[0],
                           self.target_encoder_.transform(validation_data[1]))
                if len(validation_data) == 3 and validation_data[2] is not None:
                    encoded = encoded + (validation_data[2],)
                kwargs["validation_data"] = encoded
            self._fit_keras_model(X, y, sample_weight=sample_weight, warm_start=True,
                                  epochs=epochs, initial_epoch=initial_epoch,
                                  early_stopping=early_stopping, batch_size=batch_size,
                                  **kwargs)
            return self

    _TRAINER_CLASS.append(SciKerasTrainer)
    return SciKerasTrainer


# -- Keras' .keras archive, read without Keras --------------------------------------------------
def _snake_case(name):
    """``keras.src.utils.naming.to_snake_case``: the name an archive stores a layer under."""
    import re

    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def keras_archive_layers(data):
    """The layers of a sequential or functional model in a ``.keras`` archive, without Keras.

    The archive's ``config.json`` lists the layers in ``model.layers`` order; its
    ``model.weights.h5`` holds each layer's variables under ``layers/<class name in snake
    case>[_<k>]/vars/<i>``, the ``k``-th layer of that class numbered from 1 (Keras'
    private ``saving_lib._save_container_state`` naming, hence here).

    Parameters
    ----------
    data : bytes
        The archive (:func:`pack_model`'s bytes or a ``.keras`` file's content).

    Returns
    -------
    input_shape : list
        The model's input shape, batch axis included (``[None, n_features]``).
    layers : list of (str, dict, list of ndarray)
        Each layer's class name, config and variables, in order.
    """
    import io
    import json
    import zipfile

    import h5py

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        config = json.loads(archive.read("config.json"))
        weights = archive.read("model.weights.h5")
    model_config = config["config"]
    layer_configs = model_config["layers"]
    input_shape = layer_configs[0]["config"].get("batch_shape")  # the InputLayer's
    used = {}
    layers = []
    with h5py.File(io.BytesIO(weights), "r") as store:
        for layer in layer_configs:
            base = _snake_case(layer["class_name"])
            if base in used:
                used[base] += 1
                name = f"{base}_{used[base]}"
            else:
                used[base] = 0
                name = base
            group = store.get(f"layers/{name}/vars")
            variables = ([] if group is None else
                         [np.asarray(group[key]) for key in sorted(group, key=int)])
            layers.append((layer["class_name"], layer["config"], variables))
    return input_shape, layers
