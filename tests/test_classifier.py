"""BottleneckClassifier: the reference head, a true scikit-learn classifier, real behaviour."""

import pickle
import random

import joblib
import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.base import clone, is_classifier
from sklearn.exceptions import NotFittedError
from sklearn.metrics import accuracy_score, check_scoring, get_scorer
from sklearn.model_selection import (
    GridSearchCV,
    StratifiedKFold,
    check_cv,
    cross_val_score,
    cross_validate,
    train_test_split,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import get_tags

from skanimal.classifier import ARTICLE_SETTINGS, BottleneckClassifier

#: Small and quick: the default head is tested on its own in
#: test_default_head_architecture_and_schedule.
#: RMSprop: its first steps are ~3× larger than Adam's, so 3 one-batch epochs suffice.
FAST = {"hidden_layer_sizes": (8,), "epochs": 3, "learning_rate": 1e-2, "optimizer": "rmsprop",
        "random_state": 0}


def blobs(n_per_class=20, n_features=20, labels=("cat", "dog", "fox"), spread=3.0, seed=0):
    """Well separated Gaussian blobs: float32 X, labels sorted by class (like a folder scan)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, spread, size=(len(labels), n_features))
    X = np.vstack([rng.normal(c, 1.0, size=(n_per_class, n_features)) for c in centers])
    y = np.repeat(np.asarray(labels), n_per_class)
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def data():
    return blobs()


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return BottleneckClassifier(**FAST).fit(X, y)


# ---------------------------------------------------------------- the default head


class _BatchCounter(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batch_sizes = []

    def on_train_batch_end(self, batch, logs=None):
        self.batch_sizes.append(batch)


def _check_article_architecture(model, n_features, n_classes, *, scaled):
    kinds = [type(layer).__name__ for layer in model.layers if type(layer).__name__ != "InputLayer"]
    assert kinds == (["Normalization"] if scaled else []) + [
        "Flatten", "Dense", "LeakyReLU", "Dropout", "Dense", "LeakyReLU", "Dropout", "Dense"]
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [100, 50, n_classes]
    assert dense[-1].activation is keras.activations.softmax
    leaky = [layer for layer in model.layers if isinstance(layer, keras.layers.LeakyReLU)]
    assert [layer.negative_slope for layer in leaky] == pytest.approx([0.3, 0.3])
    drops = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert [layer.rate for layer in drops] == pytest.approx([0.5, 0.3])
    assert model.input_shape == (None, n_features)
    loss = model.loss
    assert getattr(loss, "__name__", loss) == "categorical_crossentropy"


def test_default_head_architecture_and_schedule(data):
    X, y = data  # 60 samples, 20 features, 3 classes
    counter = _BatchCounter()
    clf = BottleneckClassifier(random_state=0, callbacks=[counter]).fit(X, y)
    model = clf.model_
    assert isinstance(model, keras.Model)
    _check_article_architecture(model, 20, 3, scaled=True)
    # the input layer centres each feature and divides all by one scale (training statistics)
    scaling = model.get_layer("input_scaling")
    np.testing.assert_allclose(np.ravel(scaling.mean), X.mean(axis=0), rtol=1e-5, atol=1e-6)
    variance = np.ravel(scaling.variance)
    assert np.allclose(variance, variance[0])
    assert variance[0] == pytest.approx(np.mean(X.var(axis=0)), rel=1e-5)

    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(1e-3)
    # targets are one-hot encoded for categorical cross-entropy
    assert clf.target_encoder_.transform(y[:2]).shape == (2, 3)

    # epochs="auto" below 1000 samples: no early stopping, nothing held out, at least 300
    # steps of 50-sample batches: 60 samples → 2 batches per epoch → 150 epochs
    assert len(clf.history_["loss"]) == 150 and "val_loss" not in clf.history_
    assert len(counter.batch_sizes) == 150 * 2
    assert clf.confidence_threshold_ is None
    params = BottleneckClassifier().get_params()
    assert params["epochs"] == "auto" and params["batch_size"] == 50 and params["verbose"] == 0
    assert params["early_stopping"] == "auto" and params["validation_split"] is None


def test_article_settings_are_the_reference_articles(data):
    X, y = data
    assert dict(ARTICLE_SETTINGS) == {
        "hidden_layer_sizes": (100, 50), "dropout": (0.5, 0.3), "negative_slope": 0.3,
        "optimizer": "rmsprop", "learning_rate": 1e-4, "loss": "categorical_crossentropy",
        "epochs": 7, "batch_size": 50, "scale_inputs": False, "early_stopping": False}
    counter = _BatchCounter()
    clf = BottleneckClassifier(**ARTICLE_SETTINGS, random_state=0, callbacks=[counter]).fit(X, y)
    _check_article_architecture(clf.model_, 20, 3, scaled=False)
    assert isinstance(clf.model_.optimizer, keras.optimizers.RMSprop)
    assert float(clf.model_.optimizer.learning_rate.numpy()) == pytest.approx(1e-4)
    # 7 epochs of 50-sample batches: 60 samples → 2 batches per epoch
    assert len(clf.history_["loss"]) == 7 and len(counter.batch_sizes) == 7 * 2
    assert "val_loss" not in clf.history_


def test_auto_epochs_scale_with_the_set():
    clf = BottleneckClassifier()
    assert clf._auto_epochs(12, early=False) == 300        # one batch per epoch
    assert clf._auto_epochs(240, early=False) == 60        # 5 batches
    assert clf._auto_epochs(13_400, early=False) == 10     # 268 batches: 10 passes
    assert clf._auto_epochs(13_400, early=True) == 200     # an upper bound: stops early
    assert BottleneckClassifier(batch_size=-1)._auto_epochs(12, early=False) == 300


@pytest.mark.slow
def test_early_stopping_auto_on_a_large_set_restores_the_best_epoch():
    # 1000 samples: "auto" holds out a stratified 10 %, stops when val_loss stops falling,
    # keeps the best epoch's weights and calibrates a confidence threshold on the held-out part
    X, y = blobs(n_per_class=250, n_features=8, labels=("a", "b", "c", "d"), spread=0.7,
                 seed=1)
    clf = BottleneckClassifier(hidden_layer_sizes=(8,), n_iter_no_change=3,
                               random_state=0).fit(X, y)
    val_loss = clf.history_["val_loss"]
    assert 4 <= len(val_loss) < 200                       # stopped early
    best = int(np.argmin(val_loss))
    assert len(val_loss) - 1 - best >= 3 or len(val_loss) == 200
    assert len(clf.history_["loss"]) == len(val_loss)
    # the restored model's validation loss is the best epoch's, not the last one's
    _, X_val, _, y_val = train_test_split(X, y, test_size=0.1, stratify=y, random_state=0)
    restored = clf.model_.evaluate(X_val, clf.target_encoder_.transform(y_val), verbose=0)
    restored = restored[0] if isinstance(restored, list) else restored
    assert restored == pytest.approx(val_loss[best], rel=1e-3)
    assert clf.confidence_threshold_ is None or 0 < clf.confidence_threshold_ <= 1
    # below the threshold nothing is held out unless asked
    small = BottleneckClassifier(hidden_layer_sizes=(8,), epochs=2).fit(X[:999], y[:999])
    assert "val_loss" not in small.history_ and small.confidence_threshold_ is None


def test_early_stopping_true_needs_a_validation_part(data):
    X, y = data
    with pytest.raises(ValueError, match="early_stopping=True needs a validation part"):
        BottleneckClassifier(**FAST, early_stopping=True, validation_split=0.0).fit(X, y)
    clf = BottleneckClassifier(**{**FAST, "epochs": 4}, early_stopping=True,
                               validation_split=0.25).fit(X, y)
    assert len(clf.history_["val_loss"]) <= 4
    assert clf.confidence_threshold_ is None or 0 < clf.confidence_threshold_ <= 1


def test_binary_targets_with_the_default_categorical_loss():
    # plain SciKeras encodes binary targets as one 0/1 column, which a 2-unit softmax with
    # categorical cross-entropy cannot train on
    X, y = blobs(labels=("cat", "dog"))
    clf = BottleneckClassifier(**FAST).fit(X, y)
    assert clf.model_.output_shape == (None, 2)
    assert clf.predict_proba(X).shape == (40, 2)
    assert clf.score(X, y) >= 0.9


def test_one_float_dropout_and_deeper_or_empty_heads(data):
    X, y = data
    clf = BottleneckClassifier(hidden_layer_sizes=(6, 5, 4), dropout=0.2, epochs=1).fit(X, y)
    assert [layer.rate for layer in clf.model_.layers
            if isinstance(layer, keras.layers.Dropout)] == pytest.approx([0.2] * 3)
    # the default dropout (0.5, 0.3) serves a one-layer head: its first rate applies
    clf = BottleneckClassifier(hidden_layer_sizes=(6,), epochs=1).fit(X, y)
    assert [layer.rate for layer in clf.model_.layers
            if isinstance(layer, keras.layers.Dropout)] == pytest.approx([0.5])
    clf = BottleneckClassifier(hidden_layer_sizes=(), epochs=1).fit(X, y)
    assert [type(layer).__name__ for layer in clf.model_.layers] == [
        "InputLayer", "Normalization", "Flatten", "Dense"]


@pytest.mark.parametrize("name, cls", [("adam", keras.optimizers.Adam),
                                       ("sgd", keras.optimizers.SGD),
                                       (keras.optimizers.Adam, keras.optimizers.Adam)])
def test_optimizer_by_name_or_class_is_built_with_learning_rate(data, name, cls):
    X, y = data
    clf = BottleneckClassifier(hidden_layer_sizes=(4,), epochs=1, optimizer=name,
                               learning_rate=0.05).fit(X, y)
    assert type(clf.model_.optimizer) is cls
    assert float(clf.model_.optimizer.learning_rate.numpy()) == pytest.approx(0.05)


def test_routed_optimizer_parameters_and_optimizer_instances(data):
    X, y = data
    clf = BottleneckClassifier(hidden_layer_sizes=(4,), epochs=1, optimizer="sgd",
                               optimizer__momentum=0.9, optimizer__learning_rate=0.5)
    clf.fit(X, y)
    assert float(clf.model_.optimizer.momentum) == pytest.approx(0.9)
    # an explicit optimizer__learning_rate wins over learning_rate
    assert float(clf.model_.optimizer.learning_rate.numpy()) == pytest.approx(0.5)
    # an instance serves more than one fit (each model gets a copy)
    opt = keras.optimizers.Adam(learning_rate=0.02)
    clf = BottleneckClassifier(hidden_layer_sizes=(4,), epochs=1, optimizer=opt)
    clf.fit(X, y).fit(X, y)
    assert clf.model_.optimizer is not opt
    assert float(clf.model_.optimizer.learning_rate.numpy()) == pytest.approx(0.02)


# ---------------------------------------------------------------- a true classifier


def test_is_a_classifier_with_classifier_tags():
    clf = BottleneckClassifier()
    assert is_classifier(clf)
    tags = get_tags(clf)
    assert tags.estimator_type == "classifier"
    assert tags.classifier_tags is not None and tags.classifier_tags.multi_class
    assert tags.target_tags.required
    assert tags.regressor_tags is None
    assert is_classifier(make_pipeline(StandardScaler(), clf))
    y = np.repeat(["a", "b", "c"], 10)
    assert isinstance(check_cv(3, y, classifier=is_classifier(clf)), StratifiedKFold)


def _n_test_classes(estimator, X, y):
    """A 'scorer' that reports how many classes the test fold holds."""
    return len(np.unique(y))


@pytest.mark.slow
def test_grid_search_over_learning_rate_and_hidden_layer_sizes_stratifies(data):
    X, y = data  # sorted labels: unstratified KFold would leave one class out of each fold
    grid = {"learning_rate": [1e-3, 1e-2], "hidden_layer_sizes": [(4,), (6, 3)]}
    # run_eagerly: no tf.function tracing, which is most of the cost of a tiny fit
    search = GridSearchCV(BottleneckClassifier(epochs=2, random_state=0, run_eagerly=True),
                          grid, cv=3,
                          scoring={"accuracy": "accuracy", "classes": _n_test_classes},
                          refit="accuracy")
    search.fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    for k in range(3):
        assert np.all(search.cv_results_[f"split{k}_test_classes"] == 3)
    assert np.all(np.isfinite(search.cv_results_["mean_test_accuracy"]))
    assert search.best_params_ in search.cv_results_["params"]
    best = search.best_estimator_
    assert best.get_params()["hidden_layer_sizes"] == search.best_params_["hidden_layer_sizes"]
    assert best.predict(X).shape == (60,)


def test_cross_val_score_stratifies_and_scores_accuracy(data):
    X, y = data
    clf = BottleneckClassifier(**FAST, run_eagerly=True)
    result = cross_validate(clf, X, y, cv=3, return_indices=True)
    expected = []
    for train, test in StratifiedKFold(3).split(X, y):
        model = clone(clf).fit(X[train], y[train])
        expected.append(accuracy_score(y[test], model.predict(X[test])))
    for test, ref in zip(result["indices"]["test"], StratifiedKFold(3).split(X, y)):
        np.testing.assert_array_equal(test, ref[1])
    np.testing.assert_array_equal(result["test_score"], expected)
    np.testing.assert_array_equal(cross_val_score(clf, X, y, cv=3), expected)


def test_default_scorer_is_accuracy(fitted, data):
    X, y = data
    y_noisy = y.copy()
    y_noisy[::4] = "dog"  # so that the accuracy is not simply 1
    expected = accuracy_score(y_noisy, fitted.predict(X))
    assert expected < 1
    assert check_scoring(fitted)(fitted, X, y_noisy) == pytest.approx(expected)
    assert get_scorer("accuracy")(fitted, X, y_noisy) == pytest.approx(expected)
    assert fitted.score(X, y_noisy) == pytest.approx(expected)


# ---------------------------------------------------------------- behaviour


def test_string_labels_in_and_out(fitted, data):
    X, y = data
    np.testing.assert_array_equal(fitted.classes_, ["cat", "dog", "fox"])
    assert fitted.n_classes_ == 3 and fitted.n_features_in_ == 20
    predictions = fitted.predict(X)
    assert predictions.shape == (60,)
    assert predictions.dtype.kind in "UO"
    assert set(predictions) <= {"cat", "dog", "fox"}
    proba = fitted.predict_proba(X)
    assert proba.shape == (60, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(fitted.classes_[proba.argmax(axis=1)], predictions)


def test_integer_labels_keep_their_values():
    X, y = blobs(labels=(3, 7, 11))
    clf = BottleneckClassifier(**FAST).fit(X, list(y))
    np.testing.assert_array_equal(clf.classes_, [3, 7, 11])
    assert set(clf.predict(X)) <= {3, 7, 11}


def test_history_has_validation_keys_with_validation_split(data):
    X, y = data
    clf = BottleneckClassifier(**FAST, validation_split=0.25).fit(X, y)
    assert set(clf.history_) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 3 for v in clf.history_.values())
    plain = BottleneckClassifier(**FAST).fit(X, y)
    assert set(plain.history_) == {"loss", "accuracy"}


def test_validation_split_is_stratified_even_for_data_sorted_by_class(data, monkeypatch):
    # Keras' own validation_split takes the last rows: for data sorted by class folder that
    # is a single class, and val_accuracy measures nothing useful.
    X, y = data
    seen = {}
    original = BottleneckClassifier._train

    def spy(self, X, y, sample_weight, warm_start, epochs, initial_epoch, classes=None,
            validation_data=None, **kwargs):
        seen["train"], seen["val"] = np.asarray(y), np.asarray(validation_data[1])
        return original(self, X, y, sample_weight, warm_start, epochs, initial_epoch,
                        classes=classes, validation_data=validation_data, **kwargs)

    monkeypatch.setattr(BottleneckClassifier, "_train", spy)
    BottleneckClassifier(**FAST, validation_split=0.25).fit(X, y)
    val_classes, val_counts = np.unique(seen["val"], return_counts=True)
    assert list(val_classes) == ["cat", "dog", "fox"] and set(val_counts) == {5}
    assert len(seen["train"]) == 45


def test_validation_data_takes_original_labels(data):
    X, y = data
    X_val, y_val = blobs(n_per_class=5, seed=0)
    clf = BottleneckClassifier(**FAST).fit(X, y, validation_data=(X_val, y_val))
    assert len(clf.history_["val_accuracy"]) == 3
    with pytest.raises(ValueError, match="not among the classes"):
        clf.fit(X, y, validation_data=(X_val, np.full(15, "cow")))


def test_learns_well_separated_blobs():
    X, y = blobs(n_per_class=80, n_features=64, spread=1.0, seed=3)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y,
                                                        random_state=0)
    clf = BottleneckClassifier(hidden_layer_sizes=(32,), learning_rate=1e-3, epochs=10,
                               random_state=0).fit(X_train, y_train)
    assert clf.score(X_test, y_test) >= 0.9


def test_verbose_zero_prints_nothing(data, capsys):
    X, y = data
    BottleneckClassifier(**FAST, validation_split=0.2).fit(X, y).predict(X)
    assert capsys.readouterr().out == ""


# ---------------------------------------------------------------- randomness


def test_same_random_state_gives_identical_results(data):
    X, y = data
    params = {**FAST, "hidden_layer_sizes": (16, 8), "dropout": 0.3, "batch_size": 16}
    first = BottleneckClassifier(**params).fit(X, y)
    second = BottleneckClassifier(**params).fit(X, y)
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))
    np.testing.assert_array_equal(first.predict(X), second.predict(X))
    assert first.history_["loss"] == second.history_["loss"]
    other = BottleneckClassifier(**{**params, "random_state": 1}).fit(X, y)
    assert not np.allclose(first.predict_proba(X), other.predict_proba(X))


def test_random_state_instance_seeds_keras(data):
    X, y = data
    params = {**FAST, "epochs": 1}
    a = BottleneckClassifier(**{**params, "random_state": np.random.RandomState(0)}).fit(X, y)
    b = BottleneckClassifier(**{**params, "random_state": np.random.RandomState(0)}).fit(X, y)
    c = BottleneckClassifier(**{**params, "random_state": np.random.RandomState(1)}).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    # SciKeras 0.13 turns every RandomState into the seed 0
    assert not np.allclose(a.predict_proba(X), c.predict_proba(X))


def test_seeding_restores_global_random_state(data):
    X, y = data
    from skanimal.compat import op_determinism_enabled

    random.seed(123)
    np.random.seed(123)
    python_state, numpy_state = random.getstate(), np.random.get_state()
    determinism = op_determinism_enabled()
    BottleneckClassifier(**FAST).fit(X, y)
    assert random.getstate() == python_state
    after = np.random.get_state()
    assert after[0] == numpy_state[0] and np.array_equal(after[1], numpy_state[1])
    assert after[2:] == numpy_state[2:]
    # SciKeras' own seeding leaves op determinism on, which breaks later unseeded fits
    assert op_determinism_enabled() == determinism
    if not determinism:
        BottleneckClassifier(**{**FAST, "random_state": None}).fit(X, y)
        tf.random.uniform((1,))  # an unseeded random op still works


# ---------------------------------------------------------------- custom heads, saving


def _tiny_head(meta, compile_kwargs):
    model = keras.Sequential([
        keras.Input(shape=(meta["n_features_in_"],)),
        keras.layers.Dense(meta["n_classes_"], activation="softmax"),
    ])
    model.compile(**compile_kwargs)
    return model


def _uncompiled_head(meta, units):
    return keras.Sequential([
        keras.Input(shape=(meta["n_features_in_"],)),
        keras.layers.Dense(units, activation="relu"),
        keras.layers.Dense(meta["n_classes_"], activation="softmax"),
    ])


def _sparse_head(meta):
    model = _uncompiled_head(meta, 4)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def test_custom_model_callable(data):
    X, y = data
    clf = BottleneckClassifier(_tiny_head, epochs=2, random_state=0).fit(X, y)
    assert [type(layer).__name__ for layer in clf.model_.layers] == ["Dense"]
    assert clf.predict_proba(X).shape == (60, 3)
    # uncompiled: compiled with optimizer/loss/metrics; model__units reaches the callable
    clf = BottleneckClassifier(_uncompiled_head, model__units=5, epochs=2,
                               learning_rate=1e-2).fit(X, y)
    assert clf.model_.layers[0].units == 5
    assert isinstance(clf.model_.optimizer, keras.optimizers.Adam)  # the default optimizer
    assert float(clf.model_.optimizer.learning_rate.numpy()) == pytest.approx(1e-2)
    assert clone(clf).get_params()["model__units"] == 5
    # compiled with a sparse loss: the targets follow the compiled loss (class indices)
    clf = BottleneckClassifier(_sparse_head, epochs=2).fit(X, y)
    assert clf.target_encoder_.transform(y[:2]).shape == (2,)
    assert set(clf.predict(X)) <= set(y)


def test_custom_binary_model_with_one_sigmoid_unit():
    X, y = blobs(labels=("cat", "dog"))

    def sigmoid_head(meta):
        model = keras.Sequential([keras.Input(shape=(meta["n_features_in_"],)),
                                  keras.layers.Dense(1, activation="sigmoid")])
        model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
        return model

    clf = BottleneckClassifier(sigmoid_head, epochs=5, random_state=0).fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (40, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-6)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], clf.predict(X))
    assert clf.score(X, y) >= 0.9


def test_custom_model_with_wrong_output_width_is_a_clear_error(data):
    X, y = data

    def two_outputs(meta):
        return keras.Sequential([keras.Input(shape=(meta["n_features_in_"],)),
                                 keras.layers.Dense(2, activation="softmax")])

    with pytest.raises(ValueError, match="2 output units but there are 3 classes"):
        BottleneckClassifier(two_outputs, epochs=1).fit(X, y)
    with pytest.raises(TypeError, match="must return a keras.Model"):
        BottleneckClassifier(lambda meta: "not a model", epochs=1).fit(X, y)


def test_model_saved_with_keras_reloads_with_identical_predictions(fitted, data, tmp_path):
    X, _ = data
    path = tmp_path / "head.keras"
    fitted.model_.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_array_equal(reloaded.predict(X, verbose=0),
                                  fitted.model_.predict(X, verbose=0))
    # predict_proba runs the same weights in NumPy (skanimal.head_forward): not bit-identical
    np.testing.assert_allclose(reloaded.predict(X, verbose=0), fitted.predict_proba(X),
                               rtol=0, atol=1e-5)


def test_pickle_and_joblib_round_trip(fitted, data, tmp_path):
    X, _ = data
    expected = fitted.predict_proba(X)
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict_proba(X), expected)
    np.testing.assert_array_equal(restored.predict(X), fitted.predict(X))
    joblib.dump(fitted, tmp_path / "clf.joblib")
    restored = joblib.load(tmp_path / "clf.joblib")
    np.testing.assert_array_equal(restored.predict_proba(X), expected)
    assert restored.history_["loss"] == fitted.history_["loss"]


# ---------------------------------------------------------------- parameters


def test_get_params_set_params_clone():
    clf = BottleneckClassifier(hidden_layer_sizes=(10,), dropout=0.1, optimizer__rho=0.8)
    params = clf.get_params()
    for name in ("model", "hidden_layer_sizes", "dropout", "negative_slope", "learning_rate",
                 "optimizer", "loss", "metrics", "epochs", "batch_size", "class_weight",
                 "validation_split", "callbacks", "random_state", "verbose", "warm_start"):
        assert name in params
    assert params["optimizer__rho"] == 0.8
    assert clf.set_params(learning_rate=0.5, hidden_layer_sizes=(3, 2)) is clf
    assert clf.learning_rate == 0.5 and clf.hidden_layer_sizes == (3, 2)
    copy = clone(clf)
    assert copy is not clf and copy.get_params() == clf.get_params()
    with pytest.raises(ValueError, match="Invalid parameter"):
        clf.set_params(not_a_parameter=1)
    assert repr(BottleneckClassifier(epochs=3)) == "BottleneckClassifier(epochs=3)"


def test_clone_of_a_fitted_classifier_is_unfitted(fitted):
    copy = clone(fitted)
    assert not hasattr(copy, "model_")
    with pytest.raises(NotFittedError):
        copy.predict(np.zeros((2, 20), dtype=np.float32))


def test_class_weight_keyed_by_original_labels(data):
    X, y = data
    weights = {"cat": 3.0, "dog": 0.5}  # fox left out: weight 1
    by_class = BottleneckClassifier(**FAST, class_weight=weights).fit(X, y)
    sample_weight = np.array([weights.get(label, 1.0) for label in y])
    by_sample = BottleneckClassifier(**FAST).fit(X, y, sample_weight=sample_weight)
    np.testing.assert_array_equal(by_class.predict_proba(X), by_sample.predict_proba(X))
    unweighted = BottleneckClassifier(**FAST).fit(X, y)
    assert not np.allclose(unweighted.predict_proba(X), by_class.predict_proba(X))

    # class_weight multiplies sample_weight without modifying the caller's array
    ones = np.ones(len(y))
    both = BottleneckClassifier(**FAST, class_weight=weights).fit(X, y, sample_weight=ones)
    np.testing.assert_array_equal(ones, 1.0)
    np.testing.assert_array_equal(both.predict_proba(X), by_class.predict_proba(X))

    with pytest.raises(ValueError, match=r"class_weight has labels .*\['cow'\]"):
        BottleneckClassifier(**FAST, class_weight={"cow": 2.0}).fit(X, y)


def test_class_weight_balanced(data):
    X, y = data
    keep = np.r_[0:20, 20:25, 40:60]  # 20 cats, 5 dogs, 20 foxes
    X, y = X[keep], y[keep]
    balanced = BottleneckClassifier(**FAST, class_weight="balanced").fit(X, y)
    counts = {"cat": 20, "dog": 5, "fox": 20}
    sample_weight = np.array([len(y) / (3 * counts[label]) for label in y])
    by_sample = BottleneckClassifier(**FAST).fit(X, y, sample_weight=sample_weight)
    np.testing.assert_allclose(balanced.predict_proba(X), by_sample.predict_proba(X),
                               atol=1e-6)


def test_partial_fit_and_warm_start(data):
    X, y = data
    clf = BottleneckClassifier(**FAST)
    clf.partial_fit(X[:20], y[:20], classes=["cat", "dog", "fox"])  # only cats so far
    np.testing.assert_array_equal(clf.classes_, ["cat", "dog", "fox"])
    clf.partial_fit(X, y)
    assert len(clf.history_["loss"]) == 2
    with pytest.raises(ValueError, match="not among the classes"):
        clf.partial_fit(X[:2], ["cow", "cat"])
    model = clf.model_
    clf.set_params(warm_start=True).fit(X, y)
    assert clf.model_ is model  # trained further, not rebuilt
    clf.set_params(warm_start=False).fit(X, y)
    assert clf.model_ is not model


# ---------------------------------------------------------------- input errors


@pytest.mark.parametrize("X, y, error, match", [
    (np.zeros((10, 4)), np.repeat(["a", "b"], 5)[:9], ValueError,
     r"inconsistent numbers of samples: \[10, 9\]"),
    (np.zeros((10, 4)), np.full(10, "cat"), ValueError,
     r"needs at least 2 classes in y, but y contains only one class: \['cat'\]"),
    (np.zeros((0, 4)), np.array([]), ValueError, r"0 sample\(s\)"),
    (np.zeros((10, 0)), np.repeat(["a", "b"], 5), ValueError, r"0 feature\(s\)"),
    (np.r_[[[np.nan] * 4], np.zeros((9, 4))], np.repeat(["a", "b"], 5), ValueError,
     "Input X contains NaN"),
    (np.r_[[[np.inf] * 4], np.zeros((9, 4))], np.repeat(["a", "b"], 5), ValueError,
     "Input X contains infinity"),
    (np.zeros((10, 4)), np.linspace(0, 1, 10), ValueError, "Unknown label type"),
    (np.zeros((10, 4)), None, ValueError, "requires y to be passed"),
    (np.zeros(10), np.repeat(["a", "b"], 5), ValueError, "Expected 2D array"),
    (np.zeros((10, 4)), np.repeat(["a", "b"], 5).reshape(5, 2), ValueError, "1d array"),
])
def test_bad_training_input_is_a_clear_error(X, y, error, match):
    with pytest.raises(error, match=match):
        BottleneckClassifier(**FAST).fit(X, y)


def test_zero_sample_weight_leaving_one_class_is_a_clear_error():
    X, y = np.zeros((10, 4)), np.repeat(["a", "b"], 5)
    with pytest.raises(ValueError, match="at least 2 classes .*zero weight"):
        BottleneckClassifier(**FAST).fit(X, y, sample_weight=np.r_[np.ones(5), np.zeros(5)])
    # scikit-learn's message (1.9 wording, then 1.8's)
    with pytest.raises(ValueError, match="at least one non-zero|All sample weights are zero"):
        BottleneckClassifier(**FAST).fit(X, y, sample_weight=np.zeros(10))
    with pytest.raises(ValueError, match="All sample weights are zero"):
        BottleneckClassifier(**FAST, class_weight={"a": 0, "b": 0}).fit(X, y)


def test_bad_prediction_input_is_a_clear_error():
    X, y = blobs(n_features=20)
    clf = BottleneckClassifier(**FAST)
    with pytest.raises(NotFittedError):
        clf.predict(X)
    clf.fit(X, y)
    message = "X has 10 features, but BottleneckClassifier is expecting 20 features as input"
    for method in (clf.predict, clf.predict_proba):
        with pytest.raises(ValueError, match=message):
            method(X[:, :10])
    with pytest.raises(ValueError, match="Input X contains NaN"):
        clf.predict(np.full((2, 20), np.nan))
    with pytest.raises(ValueError, match="0 sample"):
        clf.predict(np.zeros((0, 20)))


@pytest.mark.parametrize("params, error, match", [
    ({"dropout": (0.5,), "hidden_layer_sizes": (4, 3)}, ValueError, "dropout has 1 rate"),
    ({"dropout": 1.0}, ValueError,
     r"'dropout' parameter of BottleneckClassifier must be a float in the range \[0.0, 1.0\)"),
    ({"dropout": (0.5, 1.0)}, ValueError, r"dropout rates must be in \[0, 1\)"),
    ({"dropout": "high"}, ValueError, r"'dropout' parameter .* or an array-like"),
    ({"dropout": ("high", 0.3)}, ValueError, r"dropout rates must be in \[0, 1\)"),
    ({"hidden_layer_sizes": (4, 0)}, ValueError, "hidden_layer_sizes must be a sequence of "
                                                 "positive integers"),
    ({"hidden_layer_sizes": "big"}, ValueError, "hidden_layer_sizes"),
    ({"negative_slope": -1}, ValueError, "negative_slope"),
    ({"learning_rate": 0}, ValueError,
     r"'learning_rate' parameter .* must be a float in the range \(0.0, inf\) or None"),
    ({"epochs": 0}, ValueError, r"'epochs' parameter .* must be an int in the range \[1, inf\)"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"validation_split": 1.0}, ValueError, "validation_split"),
    ({"class_weight": "heavy"}, ValueError, r"'class_weight' parameter .* must be"),
    ({"optimizer": 3}, TypeError, "optimizer must be"),
    ({"random_state": "seed"}, ValueError, "random_state"),
    ({"model": 3}, TypeError, "model must be None"),
    ({"hiden_layer_sizes": (3,)}, TypeError, r"unexpected parameter\(s\) \['hiden_layer_sizes'\]"),
])
def test_bad_parameters_fail_at_fit_naming_the_parameter(data, params, error, match):
    X, y = data
    clf = BottleneckClassifier(**params)  # __init__ only stores
    with pytest.raises(error, match=match):
        clf.fit(X, y)
    assert not hasattr(clf, "model_")


# scikit-learn's estimator checks run in tests/test_common.py, with every estimator's.
