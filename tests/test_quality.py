"""Accuracy with real pretrained weights: what the defaults promise, on real photos.

These tests use the shared MobileNetV2 weights and the animals-dev photos beside the
checkout (see ``tests/conftest.py``); they skip cleanly where those are absent. Features are
extracted once per configuration into the session's feature cache, so the cross-validation
folds only train heads. ``benchmarks/bench_quality.py`` measures the full learning curves.
"""

import dataclasses

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline

from skanimal import BottleneckFeatures
from skanimal.backbones import BackboneSpec, get_spec

pytestmark = pytest.mark.slow  # a cold extraction of 240 photos, then 5 head fits per test

CV = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)


@dataclasses.dataclass(frozen=True)
class RescaledSpec(BackboneSpec):
    """A backbone fed the reference article's ``1/255`` rescale instead of its own
    ``preprocess_input`` (MobileNetV2 expects pixels in [-1, 1])."""

    def preprocess_input(self):
        return lambda batch: batch / 255.0


def default_accuracy(features, dev):
    """5-fold cross-validated accuracy of ``features`` → ``BottleneckClassifier()``."""
    from skanimal import BottleneckClassifier

    pipeline = make_pipeline(features, BottleneckClassifier(random_state=0))
    return cross_val_score(pipeline, dev.paths, dev.target, cv=CV).mean()


@pytest.fixture(scope="module")
def right_preprocessing_accuracy(animals_dev, mobilenet_v2_weights):
    features = BottleneckFeatures("mobilenet_v2", weights=mobilenet_v2_weights)
    return default_accuracy(features, animals_dev)


def test_default_pipeline_reaches_90_percent_on_real_photos(right_preprocessing_accuracy):
    # make_pipeline(BottleneckFeatures(backbone, weights=W), BottleneckClassifier()), nothing
    # else set (the seed aside): 32 training photos per class and fold
    assert right_preprocessing_accuracy >= 0.90


def few_shot_accuracy(features, dev, *, per_class=2, draws=5):
    """Mean test accuracy of ``BottleneckClassifier()`` trained on ``per_class`` photos per
    class and tested on all the others, over ``draws`` seeded stratified draws."""
    from skanimal import BottleneckClassifier

    X, y = features.fit().transform(dev.paths), np.asarray(dev.target)
    scores = []
    for draw in range(draws):
        rng = np.random.default_rng([per_class, draw])
        train = np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False)
                                for c in np.unique(y)])
        test = np.setdiff1d(np.arange(len(y)), train)
        head = BottleneckClassifier(random_state=draw).fit(X[train], y[train])
        scores.append(head.score(X[test], y[test]))
    return float(np.mean(scores))


def test_wrong_preprocessing_measurably_loses_accuracy(animals_dev, mobilenet_v2_weights):
    # Equality with Keras cannot catch a preprocessing regression that both sides share;
    # accuracy on real photos can. The rescaled spec has its own name and preprocessing
    # label, so neither the built backbone nor the cached features are shared. Where the
    # features matter most, from 2 photos per class, the 1/255 rescale costs ~4 points
    # (measured 0.92 → 0.88 over these 5 draws; with 32 per class the head makes up for it:
    # 0.99 → 0.98).
    right = few_shot_accuracy(
        BottleneckFeatures("mobilenet_v2", weights=mobilenet_v2_weights), animals_dev)
    spec = RescaledSpec(**{**dataclasses.asdict(get_spec("mobilenet_v2")),
                           "name": "mobilenet_v2_rescaled", "preprocessing": "rescale-1/255"})
    wrong = few_shot_accuracy(BottleneckFeatures(spec, weights=mobilenet_v2_weights),
                              animals_dev)
    assert wrong <= right - 0.02, (wrong, right)
