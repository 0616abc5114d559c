"""The trained head's forward pass in NumPy: predicting without TensorFlow.

A fitted :class:`~skanimal.BottleneckClassifier` with the default head keeps a
:class:`DenseHead` — the Keras model's exact weights as float32 arrays and the layer sequence
they belong to — and predicts through it, so a model whose backbone runs in OpenVINO loads and
predicts without importing TensorFlow or Keras (TensorFlow alone takes seconds to import).
``tests/test_head_forward.py`` checks that it agrees with the Keras model (top-1 identical,
probabilities within 1e-5) on random features and on real photos.

Inference-time semantics of each layer, as Keras computes them in float32:

* ``Normalization`` (the input scaling): ``(x - mean) / max(sqrt(variance), epsilon)``;
* ``Flatten`` on 2-D features, ``Dropout`` at inference: identity;
* ``Dense``: ``x @ kernel + bias``, then its activation (linear or softmax);
* ``LeakyReLU``: ``x`` where ``x >= 0``, else ``negative_slope * x``;
* softmax over the last axis, computed after subtracting each row's maximum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DenseHead"]

#: Keras' fuzz factor (``keras.backend.epsilon()``), the floor of the scaling's divisor.
_EPSILON = 1e-7


@dataclass(frozen=True)
class DenseHead:
    """A dense head as NumPy arrays: input scaling, then a sequence of layers.

    Parameters
    ----------
    layers : tuple
        ``("scale", mean, divisor)``, ``("dense", kernel, bias, activation)`` with
        activation ``"linear"`` or ``"softmax"``, or ``("leaky_relu", negative_slope)``, in
        order; arrays are float32.
    """

    layers: tuple

    @classmethod
    def from_keras(cls, model):
        """The head of a ``keras.Model``, or None when a layer is not one this pass knows.

        Reads each layer's public ``get_config()`` and ``get_weights()``; nothing is imported
        here (the model comes from the caller).
        """
        layers = [(type(layer).__name__, layer.get_config(), layer.get_weights())
                  for layer in model.layers]
        return cls.from_layers(list(model.input_shape), layers)

    @classmethod
    def from_archive(cls, data):
        """The head stored in a ``.keras`` archive's bytes, read without Keras, or None."""
        from .compat import keras_archive_layers

        return cls.from_layers(*keras_archive_layers(data))

    @classmethod
    def from_layers(cls, input_shape, layers):
        """The head of ``layers`` (class name, config, variables), or None when one of them
        is not an input, Normalization, Flatten, Dense, LeakyReLU or Dropout layer, or the
        last is not a softmax ``Dense``."""
        if input_shape is None or len(input_shape) != 2:
            return None
        steps = []
        for kind, config, variables in layers:
            if kind in ("InputLayer", "Flatten", "Dropout"):
                continue
            if kind == "Normalization":
                if config.get("invert") or config.get("axis") not in (-1, (-1,), [-1]):
                    return None
                if config.get("mean") is not None:  # given as constants: in the config
                    mean, variance = config["mean"], config["variance"]
                elif len(variables) >= 2:  # adapted: variables mean, variance, count
                    mean, variance = variables[:2]
                else:
                    return None
                mean = np.asarray(mean, dtype=np.float32).ravel()
                variance = np.asarray(variance, dtype=np.float32).ravel()
                divisor = np.maximum(np.sqrt(variance), np.float32(_EPSILON))
                steps.append(("scale", mean, divisor.astype(np.float32)))
            elif kind == "Dense":
                activation = config.get("activation")
                if activation not in ("linear", "softmax") or not config.get("use_bias", True) \
                        or len(variables) != 2:
                    return None
                kernel, bias = variables
                steps.append(("dense", np.asarray(kernel, np.float32),
                              np.asarray(bias, np.float32), activation))
            elif kind == "LeakyReLU":
                steps.append(("leaky_relu", np.float32(config["negative_slope"])))
            else:
                return None
        if not steps or steps[-1][0] != "dense" or steps[-1][3] != "softmax":
            return None
        return cls(tuple(steps))

    @property
    def n_features(self):
        """Width of the input rows."""
        first = self.layers[0]
        return len(first[1]) if first[0] == "scale" else first[1].shape[0]

    @property
    def n_classes(self):
        """Width of the output rows."""
        return self.layers[-1][1].shape[1]

    def check_widths(self, n_features, n_classes):
        """Raise ValueError unless the head takes ``n_features`` and gives ``n_classes``.

        A saved file's parts are checked against each other before any prediction, so a
        damaged or mismatched file fails in one line instead of giving wrong answers.
        """
        if (self.n_features, self.n_classes) != (n_features, n_classes):
            raise ValueError(
                f"the head takes {self.n_features} features and gives {self.n_classes} "
                f"probabilities, but {n_features} features and {n_classes} classes are "
                "declared")

    def predict_proba(self, X):
        """Softmax outputs for rows ``X`` (float32, shape ``(n_samples, n_classes)``)."""
        x = np.asarray(X, dtype=np.float32)
        for step in self.layers:
            if step[0] == "scale":
                x = (x - step[1]) / step[2]
            elif step[0] == "dense":
                x = x @ step[1] + step[2]
                if step[3] == "softmax":
                    x = np.exp(x - x.max(axis=-1, keepdims=True))
                    x = x / x.sum(axis=-1, keepdims=True)
            else:
                x = np.where(x >= 0, x, step[1] * x)
        return x.astype(np.float32, copy=False)
