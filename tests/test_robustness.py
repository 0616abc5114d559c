"""Crashes, concurrency and bad estimator input at the level a user meets them."""

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline

from skanimal import BottleneckClassifier, BottleneckFeatures, CacheWarning, cache_info

from .conftest import SMALL

EXTRACT = textwrap.dedent("""
    import sys, numpy as np
    from skanimal import BottleneckFeatures
    cache, out, size, *paths = sys.argv[1:]
    features = BottleneckFeatures(weights=None, image_size=(int(size), int(size)), cache=cache,
                                  batch_size=4)
    np.save(out, features.fit_transform(paths))
""")


@pytest.fixture(scope="module")
def reference(shapes):
    """Features computed without any cache, the ground truth for every cached run."""
    return BottleneckFeatures(weights=None, image_size=SMALL, cache=False).fit_transform(
        shapes.paths)


def _extract_in_subprocess(cache, out, paths, size=SMALL[0]):
    return subprocess.Popen([sys.executable, "-c", EXTRACT, str(cache), str(out), str(size),
                             *paths])


@pytest.mark.slow
def test_two_processes_extracting_the_same_images_agree(shapes, reference, tmp_path):
    cache = tmp_path / "cache"
    procs = [_extract_in_subprocess(cache, tmp_path / f"out{i}.npy", shapes.paths)
             for i in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    first, second = (np.load(tmp_path / f"out{i}.npy") for i in range(2))
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, reference, atol=1e-5)
    assert cache_info(cache)["entries"] == len(set(shapes.paths))


@pytest.mark.slow
def test_extraction_killed_midway_leaves_a_cache_later_runs_can_trust(shapes, tmp_path):
    # 96 px makes the run long enough (about 10× the 32-px cost) to be killed in the middle.
    cache, size = tmp_path / "cache", 96
    proc = _extract_in_subprocess(cache, tmp_path / "never.npy", shapes.paths, size)
    deadline = time.monotonic() + 240
    while cache_info(cache)["entries"] < 8 and time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "never.npy").exists(), "the run ended before it could be killed"
    assert 0 < cache_info(cache)["entries"] < len(shapes.paths)
    features = BottleneckFeatures(weights=None, image_size=(size, size), cache=cache)
    reference = BottleneckFeatures(weights=None, image_size=(size, size), cache=False)
    np.testing.assert_allclose(features.fit_transform(shapes.paths),
                               reference.fit_transform(shapes.paths), atol=1e-4)


def test_unusable_cache_directory_extracts_anyway_with_one_warning(shapes, reference, tmp_path):
    not_a_directory = tmp_path / "cache-is-a-file"
    not_a_directory.write_text("occupied")
    transformer = BottleneckFeatures(weights=None, image_size=SMALL, cache=not_a_directory)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        features = transformer.fit_transform(shapes.paths)
    cache_warnings = [w for w in caught if issubclass(w.category, CacheWarning)]
    assert len(cache_warnings) == 1 and "cache-is-a-file" in str(cache_warnings[0].message)
    np.testing.assert_allclose(features, reference, atol=1e-5)
    assert not_a_directory.read_text() == "occupied"  # the user's file is untouched


def test_cached_features_equal_uncached_and_second_run_skips_the_cnn(shapes, reference,
                                                                     tmp_path, monkeypatch):
    from skanimal.backbones import Backbone

    transformer = BottleneckFeatures(weights=None, image_size=SMALL, cache=tmp_path / "c")
    np.testing.assert_allclose(transformer.fit_transform(shapes.paths), reference, atol=1e-5)
    calls = []
    original = Backbone.features
    monkeypatch.setattr(Backbone, "features",
                        lambda self, pixels: calls.append(len(pixels)) or original(self, pixels))
    np.testing.assert_array_equal(transformer.transform(shapes.paths[::-1]),
                                  transformer.transform(shapes.paths)[::-1])
    assert calls == []


@pytest.fixture(scope="module")
def pipe(shapes):
    return make_pipeline(BottleneckFeatures(weights=None, image_size=SMALL),
                         BottleneckClassifier(epochs=2, random_state=0)).fit(shapes.paths,
                                                                             shapes.target)


def test_mismatched_lengths_are_a_clear_error(shapes):
    pipe = make_pipeline(BottleneckFeatures(weights=None, image_size=SMALL),
                         BottleneckClassifier(epochs=1))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        pipe.fit(shapes.paths, shapes.target[:-1])


def test_single_class_is_a_clear_error(shapes):
    pipe = make_pipeline(BottleneckFeatures(weights=None, image_size=SMALL),
                         BottleneckClassifier(epochs=1))
    with pytest.raises(ValueError, match="at least 2 classes"):
        pipe.fit(shapes.paths[:5], np.full(5, "cat"))


def test_empty_input_is_a_clear_error(pipe):
    with pytest.raises(ValueError, match="empty"):
        pipe.predict([])


def test_changed_feature_width_at_predict_time_is_a_clear_error(pipe, shapes):
    pipe = pipe.__class__(pipe.steps)  # shallow: share the fitted steps
    from sklearn.base import clone

    wider = clone(pipe[0]).set_params(image_size=(64, 64)).fit()
    with pytest.raises(ValueError, match="2048 features, but BottleneckClassifier is expecting "
                                         "512"):
        pipe[-1].predict(wider.transform(shapes.paths[:2]))


def test_non_finite_features_are_a_clear_error(pipe):
    X = np.zeros((2, 512), dtype=np.float32)
    X[1, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        pipe[-1].predict(X)
    X[1, 3] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        pipe[-1].predict(X)


def test_unknown_parameters_are_named(pipe):
    with pytest.raises(ValueError, match="bogus"):
        pipe.set_params(bottleneckfeatures__bogus=1)
    with pytest.raises(TypeError, match="bogus"):
        BottleneckClassifier(bogus=1).fit(np.zeros((4, 3)), ["a", "b", "a", "b"])


def test_warm_cache_run_never_builds_the_backbone(shapes, reference, tmp_path, monkeypatch):
    import skanimal.features as features_module

    cache = tmp_path / "cache"
    BottleneckFeatures(weights=None, image_size=SMALL, cache=cache).fit_transform(shapes.paths)

    def refuse(*args, **kwargs):
        raise AssertionError("the backbone was built although every feature is cached")

    monkeypatch.setattr(features_module, "get_backbone", refuse)
    warm = BottleneckFeatures(weights=None, image_size=SMALL, cache=cache)
    np.testing.assert_allclose(warm.fit_transform(shapes.paths), reference, atol=1e-5)
    assert warm.feature_shape_ == (1, 1, 512) and warm.n_features_out_ == 512
    # Another configuration is not in the cache: it needs its backbone.
    with pytest.raises(AssertionError, match="backbone was built"):
        BottleneckFeatures(weights=None, image_size=(48, 48), cache=cache).fit()
