"""The default head's NumPy forward pass gives the Keras model's answers (issue 23).

A fitted :class:`~skanimal.BottleneckClassifier` predicts with
:class:`skanimal.head_forward.DenseHead` (the Keras model's weights, in NumPy), so that a
loaded model predicts without TensorFlow. These tests fail if the two paths drift: same top-1
class, probabilities within 1e-5, on random features and on the real photos.
"""

import keras
import numpy as np
import pytest

from skanimal import BottleneckClassifier, BottleneckFeatures
from skanimal.compat import pack_model
from skanimal.head_forward import DenseHead

TOLERANCE = 1e-5


def assert_same_answers(clf, X):
    keras_proba = clf.model_.predict(X, verbose=0)
    numpy_proba = clf.predict_proba(X)
    # predict_proba is the NumPy pass, read from the live model or from its saved archive
    head = DenseHead.from_keras(clf.model_)
    np.testing.assert_array_equal(head.predict_proba(X), numpy_proba)
    np.testing.assert_array_equal(
        DenseHead.from_archive(pack_model(clf.model_, optimizer_state=False)).predict_proba(X),
        numpy_proba)
    assert numpy_proba.dtype == np.float32
    np.testing.assert_array_equal(keras_proba.argmax(axis=1), numpy_proba.argmax(axis=1))
    assert np.abs(keras_proba - numpy_proba).max() <= TOLERANCE


@pytest.mark.parametrize("params", [
    {},  # the reference head: input scaling, 2 hidden layers, dropout
    {"hidden_layer_sizes": ()},  # the logistic head
    {"scale_inputs": False, "hidden_layer_sizes": (16,), "negative_slope": 0.1, "dropout": 0},
], ids=["reference", "logistic", "unscaled"])
@pytest.mark.parametrize("n_classes", [2, 5])
def test_numpy_head_matches_keras_on_random_features(params, n_classes):
    rng = np.random.default_rng(n_classes)
    # non-negative, heavy-tailed and wide-ranging, like pooled ReLU features
    X = rng.gamma(0.5, 3.0, size=(120, 48)).astype(np.float32)
    y = np.arange(120) % n_classes
    clf = BottleneckClassifier(**{"epochs": 3, "learning_rate": 1e-2, "random_state": 0,
                                  **params}).fit(X, y)
    X_new = np.vstack([rng.gamma(0.5, 3.0, size=(200, 48)), rng.normal(0, 50, size=(20, 48))])
    assert_same_answers(clf, X_new.astype(np.float32))


def test_custom_model_predicts_with_keras():
    X = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    y = np.repeat(["a", "b"], 20)

    def tanh_head(meta, compile_kwargs):
        model = keras.Sequential([keras.Input((meta["n_features_in_"],)),
                                  keras.layers.Dense(4, activation="tanh"),
                                  keras.layers.Dense(meta["n_classes_"], activation="softmax")])
        model.compile(**compile_kwargs)
        return model

    clf = BottleneckClassifier(tanh_head, epochs=2, random_state=0).fit(X, y)
    assert DenseHead.from_keras(clf.model_) is None  # tanh: not a layer the pass knows
    np.testing.assert_array_equal(clf.predict_proba(X),
                                  clf.model_.predict(X, batch_size=clf.batch_size, verbose=0))


@pytest.mark.slow
def test_numpy_head_matches_keras_on_real_photos(animals_dev, mobilenet_v2_weights):
    paths = np.asarray(animals_dev.paths)
    target = np.asarray(animals_dev.target)
    keep = np.concatenate([np.flatnonzero(target == label)[:10] for label in np.unique(target)])
    features = BottleneckFeatures("mobilenet_v2", weights=mobilenet_v2_weights,
                                  image_size=(96, 96))
    X = features.fit_transform(paths[keep])  # cached by content for the next run
    train = np.arange(len(keep)) % 3 != 0
    clf = BottleneckClassifier(random_state=0).fit(X[train], target[keep][train])
    assert_same_answers(clf, X)
