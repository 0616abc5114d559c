"""Augmentation: ImageAugmentation, AugmentedImage items, the AugmentedClassifier meta-estimator."""

import os
import pickle
import subprocess
import sys
from dataclasses import FrozenInstanceError
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.base import BaseEstimator, ClassifierMixin, clone, is_classifier
from sklearn.model_selection import GridSearchCV, StratifiedKFold, check_cv
from sklearn.pipeline import make_pipeline

import skanimal.backbones
from skanimal import BottleneckClassifier, BottleneckFeatures, ImageLoadError, make_shapes
from skanimal.augmentation import AugmentedClassifier, AugmentedImage, ImageAugmentation
from skanimal.images import check_images, decode_image, read_image_bytes

from .conftest import SMALL
from .test_transforms import NO_CHANGE

ROOT = Path(__file__).resolve().parents[1]



@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """4 classes × 10 JPEGs of 32 px, sorted by class (as load_image_folder returns them)."""
    return make_shapes(tmp_path_factory.mktemp("aug-shapes"), n_per_class=10, image_size=32)


def pipeline(cache=True, **head):
    params = {"hidden_layer_sizes": (32,), "epochs": 10, "learning_rate": 1e-3,
              "random_state": 0}
    params.update(head)
    return make_pipeline(BottleneckFeatures(weights=None, image_size=SMALL, cache=cache),
                         BottleneckClassifier(**params))




class RecordingClassifier(ClassifierMixin, BaseEstimator):
    """Records what ``fit`` received; predicts the majority class."""

    def fit(self, X, y, sample_weight=None):
        self.X_ = X
        self.y_ = np.asarray(y)
        self.sample_weight_ = sample_weight
        self.classes_ = np.unique(self.y_)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


@pytest.fixture
def forward_passes(monkeypatch):
    """Number of images pushed through a backbone since the fixture was created."""
    seen = []
    original = skanimal.backbones.Backbone.features

    def spy(self, pixels):
        seen.append(len(pixels))
        return original(self, pixels)

    monkeypatch.setattr(skanimal.backbones.Backbone, "features", spy)
    return lambda: sum(seen)


# --------------------------------------------------------------------------- AugmentedImage


def test_augmented_items_are_frozen_picklable_and_accepted_by_check_images(data):
    item = AugmentedImage(Path(data.paths[0]), ImageAugmentation(), seed=np.int64(5))
    assert item.source == data.paths[0] and item.seed == 5 and type(item.seed) is int
    assert pickle.loads(pickle.dumps(item)) == item
    with pytest.raises(FrozenInstanceError):
        item.seed = 6
    checked = check_images([data.paths[1], item, Path(data.paths[2])])
    assert checked == [data.paths[1], item, data.paths[2]]
    assert checked[1] is item
    with pytest.raises(ValueError):
        AugmentedImage("", ImageAugmentation(), 0)
    with pytest.raises(TypeError):
        AugmentedImage(data.paths[0], {"rotation": 3}, 0)
    with pytest.raises(ValueError, match="seed"):
        AugmentedImage(data.paths[0], ImageAugmentation(), -1)


def test_augmented_item_decodes_its_source_then_augments(data):
    augment = ImageAugmentation(rotation=30)
    item = AugmentedImage(data.paths[3], augment, seed=8)
    decoded = decode_image(read_image_bytes(data.paths[3]), SMALL)
    np.testing.assert_array_equal(item.load(SMALL), augment.apply(decoded, 8))

    features = BottleneckFeatures(weights=None, image_size=SMALL, cache=False)
    identity_item = AugmentedImage(data.paths[3], ImageAugmentation(**NO_CHANGE), seed=8)
    out = features.fit_transform([data.paths[3], item, identity_item])
    assert out.shape == (3, features.n_features_out_)
    assert not np.allclose(out[0], out[1])
    np.testing.assert_allclose(out[0], out[2], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[1], features.transform(np.stack([item.load(SMALL)]))[0],
                               rtol=1e-5, atol=1e-6)


def test_augmented_features_are_cached_and_keyed_by_source_content(data, tmp_path,
                                                                   forward_passes):
    source = tmp_path / "source.jpg"
    source.write_bytes(Path(data.paths[0]).read_bytes())
    augment = ImageAugmentation()
    items = [AugmentedImage(source, augment, seed) for seed in range(3)]
    X = [str(source), *items, items[0]]  # a duplicate goes through the CNN once
    features = BottleneckFeatures(weights=None, image_size=SMALL, cache=tmp_path / "cache")
    first = features.fit_transform(X)
    assert forward_passes() == 4
    np.testing.assert_array_equal(first[1], first[4])
    np.testing.assert_array_equal(clone(features).fit_transform(X), first)
    assert forward_passes() == 4  # every row, augmented ones included, came from the cache

    old_keys = [item.content_key(source.read_bytes()) for item in items]
    assert len(set(old_keys)) == 3
    assert AugmentedImage(source, ImageAugmentation(zoom=0.3), 0).content_key(
        source.read_bytes()) != old_keys[0]
    Image.open(data.paths[1]).save(source, format="JPEG")  # new content, same path
    assert all(item.content_key(source.read_bytes()) != key for item, key in zip(items, old_keys))
    second = features.transform(X)
    assert forward_passes() == 8  # the original and its 3 copies recomputed
    assert not np.allclose(second[1], first[1])


def test_a_missing_source_is_named_with_its_index(data, tmp_path):
    missing = str(tmp_path / "gone.jpg")
    X = [data.paths[0], data.paths[1], AugmentedImage(missing, ImageAugmentation(), 1)]
    for cache in (tmp_path / "cache", False):
        features = BottleneckFeatures(weights=None, image_size=SMALL, cache=cache).fit()
        with pytest.raises(ImageLoadError, match=r"X\[2\].*gone\.jpg") as info:
            features.transform(X)
        assert info.value.index == 2 and info.value.path == missing
    with pytest.raises(ImageLoadError, match=r"X\[1\].*gone\.jpg") as info:
        AugmentedImage(missing, ImageAugmentation(), 1).load(SMALL, index=1)
    assert info.value.index == 1

    # Through the meta-estimator the index is the one in the X given to fit.
    model = AugmentedClassifier(pipeline(cache=False), n_copies=2, random_state=0)
    X_fit = [data.paths[0], data.paths[10], missing, data.paths[20]]
    with pytest.raises(ImageLoadError, match=r"X\[2\].*gone\.jpg") as info:
        model.fit(X_fit, ["circle", "cross", "square", "triangle"])
    assert info.value.index == 2 and info.value.path == missing


# ----------------------------------------------------------------------- AugmentedClassifier


def test_fit_adds_copies_grouped_per_image_with_position_independent_seeds(data):
    X, y = list(data.paths[:8]), data.target[:8]
    model = AugmentedClassifier(RecordingClassifier(), n_copies=2, random_state=0)
    model.fit(X, y, sample_weight=np.arange(8.0))
    seen = model.estimator_.X_
    assert len(seen) == 24 and model.n_training_samples_ == 24
    assert seen[::3] == X
    for i, path in enumerate(X):
        copies = seen[3 * i + 1: 3 * i + 3]
        assert all(isinstance(c, AugmentedImage) and c.source == path for c in copies)
        assert copies[0].seed != copies[1].seed
        assert copies[0].augmentation == ImageAugmentation() == model.augmentation_
    np.testing.assert_array_equal(model.estimator_.y_, np.repeat(y, 3))
    np.testing.assert_array_equal(model.estimator_.sample_weight_, np.repeat(np.arange(8.0), 3))
    # Same random_state: an image gets the same copies whatever else is in X (CV folds).
    other = clone(model).fit(X[4:], y[4:]).estimator_.X_
    assert other == seen[12:]
    # Another random_state, or none: other copies.
    assert clone(model).set_params(random_state=1).fit(X, y).estimator_.X_ != seen
    assert clone(model).set_params(random_state=None).fit(X, y).estimator_.X_ != seen
    # No copies: the estimator sees X as given.
    assert clone(model).set_params(n_copies=0).fit(X, y).estimator_.X_ == X
    with pytest.raises(ValueError, match="n_copies"):
        clone(model).set_params(n_copies=-1).fit(X, y)
    with pytest.raises(TypeError, match="augmentation"):
        clone(model).set_params(augmentation="flip").fit(X, y)


def test_metadata_routing_repeats_requested_sample_weights_for_the_copies(data):
    import sklearn
    from sklearn.exceptions import UnsetMetadataPassedError

    X, y = list(data.paths[::5]), data.target[::5]  # 2 images of each of the 4 classes
    weights = np.arange(1.0, 9.0)
    with sklearn.config_context(enable_metadata_routing=True):
        requesting = RecordingClassifier().set_fit_request(sample_weight=True)
        model = AugmentedClassifier(requesting, n_copies=2, random_state=0)
        model.fit(X, y, sample_weight=weights)
        np.testing.assert_array_equal(model.estimator_.sample_weight_, np.repeat(weights, 3))
        # Not requested by the estimator: scikit-learn's own error, not a silent drop.
        with pytest.raises(UnsetMetadataPassedError, match="sample_weight"):
            AugmentedClassifier(RecordingClassifier(), random_state=0).fit(
                X, y, sample_weight=weights)
        # Through a CV search, each fold's weights reach the estimator, repeated.
        requesting.set_score_request(sample_weight=False)
        search = GridSearchCV(AugmentedClassifier(requesting, n_copies=1, random_state=0),
                              {"n_copies": [1]}, cv=2, refit=True)
        search.fit(X, y, sample_weight=weights)
        np.testing.assert_array_equal(search.best_estimator_.estimator_.sample_weight_,
                                      np.repeat(weights, 2))
        # score routes its weights the same way.
        scored = RecordingClassifier().set_fit_request(sample_weight=False)
        scored.set_score_request(sample_weight=True)
        fitted = AugmentedClassifier(scored, n_copies=0).fit(X, y)
        majority = np.asarray(y) == fitted.classes_[0]
        only_majority = majority.astype(float)
        assert fitted.score(X, y, sample_weight=only_majority) == 1.0
        assert fitted.score(X, y) == majority.mean() < 1.0


def test_augmentation_changes_training_but_never_predict(data, monkeypatch):
    X, y = data.paths, data.target
    plain = pipeline().fit(X, y)
    without = AugmentedClassifier(pipeline(), n_copies=0, random_state=0).fit(X, y)
    model = AugmentedClassifier(pipeline(), n_copies=2, random_state=0).fit(X, y)

    # The head was trained on three times as many rows.
    assert without.estimator_[-1].X_shape_[0] == len(X)
    assert model.estimator_[-1].X_shape_[0] == 3 * len(X) == model.n_training_samples_
    # n_copies=0 is the plain estimator; augmentation changes the fitted model.
    np.testing.assert_allclose(without.predict_proba(X), plain.predict_proba(X), atol=1e-6)
    assert not np.allclose(model.predict_proba(X), without.predict_proba(X), atol=1e-3)
    np.testing.assert_array_equal(model.classes_, plain.classes_)

    # Prediction never augments: no apply call, no augmented item reaches the features.
    def refuse(*args, **kwargs):
        raise AssertionError("augmentation used at prediction time")

    seen = []
    transform = BottleneckFeatures.transform

    def record(self, X_in):
        seen.append(list(X_in))
        return transform(self, X_in)

    monkeypatch.setattr(ImageAugmentation, "apply", refuse)
    monkeypatch.setattr(BottleneckFeatures, "transform", record)
    predictions = model.predict(X)
    np.testing.assert_array_equal(predictions, model.estimator_.predict(X))
    np.testing.assert_allclose(model.predict_proba(X), model.estimator_.predict_proba(X))
    assert model.score(X, y) == pytest.approx(np.mean(predictions == y))
    assert seen and all(batch == list(X) for batch in seen)


def test_second_fit_with_same_random_state_needs_no_cnn_work(data, tmp_path, forward_passes):
    X, y = data.paths[::2], data.target[::2]
    model = AugmentedClassifier(pipeline(cache=tmp_path / "cache", epochs=2), n_copies=2,
                                random_state=3)
    model.fit(X, y)
    assert forward_passes() == 3 * len(X)
    clone(model).fit(X, y)
    clone(model).fit(X[:10], y[:10])  # a CV-fold-like subset: same copies, all cached
    assert forward_passes() == 3 * len(X)


@pytest.mark.slow
def test_grid_search_over_n_copies_is_stratified(data, monkeypatch):
    model = AugmentedClassifier(pipeline(epochs=3), random_state=0)
    assert is_classifier(model)
    assert isinstance(check_cv(3, data.target, classifier=is_classifier(model)), StratifiedKFold)
    classes_per_fit = []
    fit = BottleneckClassifier.fit

    def record(self, X, y, *args, **kwargs):
        classes_per_fit.append((len(y), len(np.unique(y))))
        return fit(self, X, y, *args, **kwargs)

    monkeypatch.setattr(BottleneckClassifier, "fit", record)
    grid = {"n_copies": [0, 1], "estimator__bottleneckclassifier__learning_rate": [1e-3]}
    # data.paths are sorted by class: unstratified 3-fold training sets would lack a class.
    search = GridSearchCV(model, grid, cv=3).fit(data.paths, data.target)
    assert len(search.cv_results_["params"]) == 2
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert all(n_classes == 4 for _, n_classes in classes_per_fit)
    sizes = sorted({n for n, _ in classes_per_fit})
    assert sizes[:2] == [26, 27] and 2 * 26 in sizes  # 2/3 of 40, and twice that with a copy
    assert search.best_estimator_.predict(data.paths[:3]).shape == (3,)


def test_parameters_clone_and_tags(data):
    model = AugmentedClassifier(pipeline(), augmentation=ImageAugmentation(zoom=0.2),
                                n_copies=3, random_state=7)
    params = model.get_params()
    assert params["n_copies"] == 3 and params["random_state"] == 7
    assert params["augmentation"] == ImageAugmentation(zoom=0.2)
    assert params["estimator__bottleneckclassifier__learning_rate"] == 1e-3
    model.set_params(n_copies=1, estimator__bottleneckclassifier__epochs=2,
                     augmentation=ImageAugmentation(rotation=5))
    assert model.estimator[-1].epochs == 2 and model.n_copies == 1
    copy = clone(model)
    assert copy.get_params(deep=False)["augmentation"] == ImageAugmentation(rotation=5)
    assert not hasattr(copy, "estimator_") and copy.estimator is not model.estimator
    assert hasattr(model, "predict_proba") and not hasattr(model, "decision_function")
    with pytest.raises(AttributeError):
        _ = model.classes_  # not fitted
    assert "AugmentedClassifier" in repr(model)


def test_pixel_arrays_are_augmented_row_by_row(data):
    X = np.stack([decode_image(read_image_bytes(p), SMALL) for p in data.paths])
    model = AugmentedClassifier(pipeline(epochs=3), n_copies=1, random_state=0)
    model.fit(X, data.target)
    assert model.estimator_[-1].X_shape_[0] == 2 * len(X)
    assert model.predict(X).shape == (len(X),)
    recorder = AugmentedClassifier(RecordingClassifier(), n_copies=2, random_state=0)
    for pixels in (X, X.astype(np.float32)):
        seen = recorder.fit(pixels, data.target).estimator_.X_
        assert seen.shape == (3 * len(X), *X.shape[1:]) and seen.dtype == pixels.dtype
        np.testing.assert_array_equal(seen[::3], pixels)
        assert not np.array_equal(seen[1::3], pixels)
        np.testing.assert_array_equal(  # the same copies for uint8 and float input
            seen[1::3], recorder.fit(X, data.target).estimator_.X_[1::3])


@pytest.mark.slow
def test_example_runs_offline_and_prints_both_accuracies(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "augmentation.py"), "--workdir", str(tmp_path),
         "--n-copies", "2"],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if "held-out accuracy" in line]
    assert len(lines) == 2, result.stdout
    assert lines[0].startswith("Without augmentation") and lines[1].startswith("With augmentation")
    for line in lines:
        assert 0.0 <= float(line.rsplit(" ", 1)[1]) <= 1.0
