"""The "is this one of my classes at all" score: what it measures, that it travels with the
model, and that sort uses it (predictions.csv's review_reason)."""

import csv
import re

import joblib
import numpy as np
import pytest
from sklearn.pipeline import make_pipeline

import skanimal
from skanimal import BottleneckClassifier, BottleneckFeatures, make_shapes
from skanimal.cli import main
from skanimal.novelty import FeatureNovelty, novelty_of
from skanimal.sorting import REVIEW_REASONS, sort_images

from .conftest import SMALL


def blobs(n, centre, rng, d=16):
    return rng.normal(size=(n, d)) + centre


def test_threshold_is_a_quantile_of_leave_one_out_training_scores():
    rng = np.random.default_rng(0)
    X = np.vstack([blobs(30, 4, rng), blobs(30, -4, rng)])
    novelty = FeatureNovelty(quantile=0.9).fit(X)
    # Leave one out: a training sample's own copy is never its nearest neighbour.
    assert novelty.train_scores_.min() > 0
    assert np.mean(novelty.train_scores_ > novelty.threshold_) <= 0.1
    np.testing.assert_allclose(novelty.novelty_score(X), 0, atol=1e-6)  # in use: itself
    far = blobs(20, np.tile([4, -4], 8), rng)  # another direction altogether
    assert novelty.is_novel(far).all()
    assert novelty.is_novel(blobs(200, 4, rng)).mean() < 0.25


@pytest.mark.parametrize("k", [1, 3])
def test_scores_are_scikit_learns_cosine_neighbours(k, monkeypatch):
    """The blockwise matrix product equals NearestNeighbors' cosine distance, also across
    block boundaries and when leaving each training sample out."""
    from sklearn.neighbors import NearestNeighbors

    from skanimal import cosine
    from skanimal import novelty as module

    monkeypatch.setattr(cosine, "BLOCK_VALUES", 7 * 40)  # blocks of 7 rows of 40 samples
    rng = np.random.default_rng(1)
    X, Q = rng.normal(size=(40, 6)), rng.normal(size=(25, 6))
    novelty = FeatureNovelty(n_neighbors=k).fit(X)
    index = NearestNeighbors(n_neighbors=k, metric="cosine").fit(X)
    np.testing.assert_allclose(novelty.train_scores_, index.kneighbors()[0][:, -1], atol=1e-6)
    np.testing.assert_allclose(novelty.novelty_score(Q), index.kneighbors(Q)[0][:, -1],
                               atol=1e-6)
    labels = np.repeat(["a", "b"], 20)
    distance, nearest = module.distance_to_own_class(X, labels)
    for label in ("a", "b"):
        rows = np.flatnonzero(labels == label)
        d, j = NearestNeighbors(n_neighbors=1, metric="cosine").fit(X[rows]).kneighbors()
        np.testing.assert_allclose(distance[rows], d[:, 0], atol=1e-6)
        np.testing.assert_array_equal(nearest[rows], rows[j[:, 0]])


def test_bad_input_fails_clearly():
    novelty = FeatureNovelty().fit(np.eye(4) + 1)
    with pytest.raises(ValueError, match="3 features, but FeatureNovelty was fitted on 4"):
        novelty.novelty_score(np.ones((2, 3)))
    with pytest.raises(ValueError, match="more than n_neighbors=1"):
        FeatureNovelty().fit(np.ones((1, 4)))
    with pytest.raises(ValueError, match="quantile"):
        FeatureNovelty(quantile=0).fit(np.eye(4))


def test_large_sets_keep_a_bounded_reference():
    X = np.random.default_rng(0).random((300, 8))
    assert FeatureNovelty(max_samples=50).fit(X).reference_.shape == (50, 8)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    shapes = make_shapes(tmp_path_factory.mktemp("novelty"), n_per_class=10, image_size=40)
    model = make_pipeline(BottleneckFeatures(weights=None, image_size=SMALL),
                          BottleneckClassifier(epochs=3, random_state=0))
    return model.fit(shapes.paths, shapes.target), shapes


def test_the_classifier_fits_it_on_its_training_features(fitted):
    model, shapes = fitted
    novelty = novelty_of(model[-1])
    features = model[0].transform(shapes.paths)
    np.testing.assert_allclose(novelty.novelty_score(features), 0, atol=1e-6)
    assert novelty.reference_.shape == (len(shapes.paths), features.shape[1])


def test_it_survives_joblib_and_skanimal_save(fitted, tmp_path):
    model, shapes = fitted
    probe = np.random.default_rng(1).random((5, novelty_of(model[-1]).n_features_in_)) * 3
    expected = novelty_of(model[-1]).novelty_score(probe)
    joblib.dump(model, tmp_path / "m.joblib")
    for loaded in (joblib.load(tmp_path / "m.joblib"),
                   skanimal.load(skanimal.save(model, tmp_path / "m.skanimal"))):
        restored = novelty_of(loaded[-1])
        assert restored is not novelty_of(model[-1])
        assert restored.threshold_ == novelty_of(model[-1]).threshold_
        np.testing.assert_allclose(restored.novelty_score(probe), expected, rtol=1e-6)


def test_predictions_say_why_a_photo_went_to_review(fitted, tmp_path):
    model, shapes = fitted
    head = model[-1]
    features = model[0].transform(shapes.paths)
    proba = head.predict_proba(features)
    saved = head.novelty_.threshold_
    pool = make_shapes(tmp_path / "pool", n_per_class=6, image_size=40, random_state=3)
    scores = head.novelty_.novelty_score(model[0].transform(pool.paths))
    threshold = float(np.median(proba.max(1)))
    try:  # a novelty threshold and a confidence that split the pool: every reason occurs
        head.novelty_.threshold_ = float(np.median(scores))
        result = sort_images(model, pool.root, tmp_path / "out", min_confidence=threshold)
    finally:
        head.novelty_.threshold_ = saved
    with open(tmp_path / "out" / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {row["review_reason"] for row in rows} == set(REVIEW_REASONS.values())
    unlike = dict(zip(pool.paths, scores > np.median(scores)))
    for row in rows:
        low = float(row["probability_1"]) < threshold
        assert row["review_reason"] == REVIEW_REASONS[low, bool(unlike[row["source"]])]
        assert (row["status"] == "review") == bool(row["review_reason"])
        assert ("/_review/" in row["destination"]) == bool(row["review_reason"])
    assert result.counts.get("_review") == sum(bool(r["review_reason"]) for r in rows)


def test_sort_says_what_the_threshold_rests_on_in_plain_words(tmp_path, capsys):
    """As a user meets it: skanimal train on a small set (a validation part of 8 photos),
    then skanimal sort; no internal name in anything it prints."""
    shapes = make_shapes(tmp_path / "photos", n_per_class=20, image_size=40)
    assert main(["train", shapes.root, "-o", str(tmp_path / "m.skanimal"), "--weights", "none",
                 "--image-size", "32", "--epochs", "2"]) == 0
    trained = capsys.readouterr().out
    assert ("Confidence threshold: too few held-out photos (8) to calibrate: 98 % right with "
            "95 % confidence needs at least 149; sorting uses 0.9") in trained
    assert main(["sort", str(tmp_path / "m.skanimal"), shapes.root,
                 "--into", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    n_val = int(re.search(r"too few held-out photos \((\d+)\) to calibrate", printed)[1])
    assert n_val == 8
    assert ("Threshold: 0.9 (too few held-out photos (8) to calibrate: 98 % right with 95 % "
            "confidence needs at least 149; using 0.9)") in printed
    for text in (trained, printed):  # no fitted attribute_ nor CONSTANT_NAME
        assert not re.search(r"\b[a-z]+(_[a-z]+)*_\b|\b[A-Z]+_[A-Z_]+\b", text), text


@pytest.mark.slow
def test_photos_of_an_unseen_class_are_told_apart_better_than_by_confidence(
        animals_dev, mobilenet_v2_weights):
    """Real photos (128 px): trained on 15 cats, elephants and chickens, shown dogs. A dog is
    often a confident cat, which max softmax cannot flag; its features are still unlike any
    training photo's."""
    paths, target = np.asarray(animals_dev.paths), np.asarray(animals_dev.target)
    known = np.isin(target, ["cat", "chicken", "elephant"])
    unseen = target == "dog"
    train = known & (np.arange(len(target)) % 40 < 15)  # 15 photos per known class
    test = (known & ~train) | unseen
    features = BottleneckFeatures("mobilenet_v2", weights=mobilenet_v2_weights,
                                  image_size=(128, 128)).fit(paths[train])
    F = features.transform(paths[train | test])
    F_train, F_test = F[train[train | test]], F[test[train | test]]
    head = BottleneckClassifier(random_state=0).fit(F_train, target[train])
    is_unseen = unseen[test]
    flagged = head.novelty_.is_novel(F_test)
    confident = head.predict_proba(F_test).max(1) >= 0.9
    # Max softmax cannot flag a confident photo; the novelty score flags most confident dogs.
    # Measured: 25 of 40 dogs confident, 88 % of them and 88 % of all dogs flagged, 3 % of
    # the known photos.
    assert (confident & is_unseen).sum() >= 5
    assert flagged[confident & is_unseen].mean() >= 0.6
    assert flagged[is_unseen].mean() >= 0.75 and flagged[~is_unseen].mean() <= 0.25
