"""The user's workflow end to end: folder → pipeline → search → joblib → new process."""

import subprocess
import sys
import textwrap

import joblib
import numpy as np
import pytest
from sklearn.base import is_classifier
from sklearn.model_selection import GridSearchCV, StratifiedKFold, check_cv, train_test_split
from sklearn.pipeline import make_pipeline

from skanimal import BottleneckClassifier, BottleneckFeatures

from .conftest import SMALL


def small_pipeline(**head):
    params = {"epochs": 30, "learning_rate": 1e-3, "random_state": 0}
    params.update(head)
    return make_pipeline(
        BottleneckFeatures(weights=None, image_size=SMALL),
        BottleneckClassifier(**params),
    )


@pytest.fixture(scope="module")
def fitted(split):
    X_train, _, y_train, _ = split
    return small_pipeline().fit(X_train, y_train)


def test_pipeline_learns_separable_generated_images(fitted, split):
    _, X_test, _, y_test = split
    assert fitted.score(X_test, y_test) >= 0.9


def test_pipeline_predict_and_predict_proba(fitted, split, shapes):
    _, X_test, _, _ = split
    predictions = fitted.predict(X_test)
    assert set(predictions) <= set(shapes.target_names)
    proba = fitted.predict_proba(X_test)
    assert proba.shape == (len(X_test), len(shapes.target_names))
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(fitted.classes_[proba.argmax(axis=1)], predictions)


def test_pipeline_is_a_classifier_and_search_stratifies(shapes):
    pipe = small_pipeline()
    assert is_classifier(pipe)
    assert isinstance(check_cv(3, shapes.target, classifier=is_classifier(pipe)), StratifiedKFold)


@pytest.mark.slow
def test_grid_search_over_two_parameters(split):
    X_train, X_test, y_train, _ = split
    grid = {"bottleneckclassifier__learning_rate": [1e-4, 1e-3],
            "bottleneckclassifier__hidden_layer_sizes": [(16,), (100, 50)]}
    search = GridSearchCV(small_pipeline(epochs=5), grid, cv=3).fit(X_train, y_train)
    assert len(search.cv_results_["params"]) == 4
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_params_ in search.cv_results_["params"]
    assert len(search.best_estimator_.predict(X_test)) == len(X_test)


@pytest.mark.slow
def test_joblib_round_trip_in_a_new_process(fitted, split, tmp_path):
    _, X_test, _, _ = split
    model_path = tmp_path / "animals.joblib"
    joblib.dump(fitted, model_path)
    # No backbone weights inside: VGG16 is 58 MB; this head at 32 px is ~0.2 MB.
    assert model_path.stat().st_size < 2_000_000
    paths_file = tmp_path / "paths.txt"
    paths_file.write_text("\n".join(X_test))
    out = tmp_path / "proba.npy"
    script = textwrap.dedent(f"""
        import joblib, numpy as np
        pipe = joblib.load({str(model_path)!r})
        paths = open({str(paths_file)!r}).read().splitlines()
        np.save({str(out)!r}, pipe.predict_proba(paths))
    """)
    # cache=False in the child: the backbone really runs again in a fresh process.
    env_code = "import os; os.environ['SKANIMAL_CACHE_DIR'] = 'off'\n"
    subprocess.run([sys.executable, "-c", env_code + script], check=True, timeout=300)
    # another process computes the features with its own TensorFlow threads: equal up to
    # float32 rounding, the same classes
    expected = fitted.predict_proba(X_test)
    np.testing.assert_allclose(np.load(out), expected, rtol=1e-5, atol=1e-6)
    assert (np.load(out).argmax(1) == expected.argmax(1)).all()


@pytest.mark.slow
def test_real_photos_end_to_end(animals_dev):
    assert len(animals_dev.target_names) >= 2 and len(animals_dev.paths) >= 20
    X_train, X_test, y_train, y_test = train_test_split(
        animals_dev.paths, animals_dev.target, test_size=0.25, stratify=animals_dev.target,
        random_state=0)
    pipe = make_pipeline(
        BottleneckFeatures(weights=None, image_size=(64, 64), pooling="avg"),
        BottleneckClassifier(epochs=3, random_state=0),
    ).fit(X_train, y_train)
    predictions = pipe.predict(X_test)
    assert len(predictions) == len(X_test)
    assert set(predictions) <= set(animals_dev.target_names)
    assert list(pipe.classes_) == sorted(animals_dev.target_names)
