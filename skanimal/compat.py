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
import random

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils import _safe_indexing
from sklearn.utils._param_validation import (
    HasMethods,
    InvalidParameterError,
    Options,
    StrOptions,
    validate_parameter_constraints,
)
from sklearn.utils._param_validation import Interval as _SklearnInterval
from sklearn.utils.metadata_routing import _routing_enabled
from sklearn.utils.validation import _check_sample_weight

__all__ = [
    "HasMethods",
    "Interval",
    "InvalidParameterError",
    "Options",
    "StrOptions",
    "check_sample_weight",
    "fit_context",
    "op_determinism_enabled",
    "pack_model",
    "PackedModel",
    "unpack_model",
    "optimizer_class",
    "route_params",
    "routing_enabled",
    "safe_indexing",
    "seeded",
    "unflatten_params",
    "validate_parameter_constraints",
]


# -- scikit-learn ------------------------------------------------------------------------------
class Interval(_SklearnInterval):
    """scikit-learn's ``Interval`` constraint, except that a ``bool`` is never a number.

    scikit-learn accepts ``True`` wherever an int is expected (``bool`` is an ``int``
    subclass); skanimal refuses it, so ``batch_size=True`` fails at ``fit`` naming the
    parameter instead of training with batches of one.
    """

    def is_satisfied_by(self, val):
        if isinstance(val, (bool, np.bool_)):
            return False
        return super().is_satisfied_by(val)


def fit_context(*, prefer_skip_nested_validation):
    """Decorate a ``fit`` method to validate ``_parameter_constraints`` once, on entry.

    scikit-learn's ``sklearn.base._fit_context``: it calls ``estimator._validate_params()``
    (skipped when scikit-learn's ``skip_parameter_validation`` is set, and for
    ``partial_fit`` on a fitted estimator), then runs ``fit``. Meta-estimators pass
    ``prefer_skip_nested_validation=False`` so that the estimators they wrap are validated.
    """
    return _fit_context(prefer_skip_nested_validation=prefer_skip_nested_validation)


def safe_indexing(X, indices):
    """Rows ``indices`` of ``X`` (array, DataFrame, list...): ``sklearn.utils._safe_indexing``."""
    return _safe_indexing(X, indices)


def check_sample_weight(sample_weight, X, **kwargs):
    """``sklearn.utils.validation._check_sample_weight``: validated per-sample weights."""
    return _check_sample_weight(sample_weight, X, **kwargs)


def routing_enabled():
    """Whether scikit-learn's metadata routing is on (``enable_metadata_routing``)."""
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
