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
    # Each process extracts what the other has not cached yet, so an image may meet the CNN in a
    # batch of another size: the same features up to float32 rounding, never a different image's.
    np.testing.assert_allclose(first, second, rtol=1e-5, atol=1e-6)
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

    wider = clone(pipe[0]).set_params(image_size=(64, 64), pooling=None).fit()  # 2×2×512
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
    assert warm.feature_shape_ == (512,) and warm.n_features_out_ == 512  # avg-pooled
    # Another configuration is not in the cache: it needs its backbone.
    with pytest.raises(AssertionError, match="backbone was built"):
        BottleneckFeatures(weights=None, image_size=(48, 48), cache=cache).fit()


# TensorFlow's C++ start-up notices (and the CUDA probe of a machine without a driver).
TF_STARTUP_NOISE = ("absl::InitializeLog", "oneDNN custom operations", "cudart_stub",
                    "Could not find cuda drivers", "failed call to cuInit",
                    "cpu_feature_guard", "To enable the following instructions")

PYTHON_API_RUN = textwrap.dedent("""
    import os, sys
    print("before-import", file=sys.stderr, flush=True)
    from sklearn.pipeline import make_pipeline
    import skanimal
    from skanimal import BottleneckClassifier, BottleneckFeatures, make_shapes
    data = make_shapes(sys.argv[1], n_per_class=4, image_size=32)
    features = BottleneckFeatures(weights=None, image_size=(32, 32), pooling="avg",
                                  cache=sys.argv[2])
    pipe = make_pipeline(features, BottleneckClassifier(epochs=1, random_state=0))
    pipe.fit(data.paths, data.target)
    assert features.transform(data.paths).shape == (16, 512)
    pipe.predict(data.paths)
    os.write(2, b"after-run\\n")
""")


@pytest.mark.slow
def test_python_api_run_shows_no_tensorflow_startup_lines(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP_")}
    result = subprocess.run(
        [sys.executable, "-c", PYTHON_API_RUN, str(tmp_path / "data"), str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    # stderr itself still works, before and after TensorFlow started...
    assert lines[0] == "before-import" and "after-run" in lines
    # ...but TensorFlow's start-up notices are gone.
    assert not [line for line in lines if any(noise in line for noise in TF_STARTUP_NOISE)]


def test_only_known_startup_notices_are_dropped():
    from skanimal._tfstartup import drop_notices

    notices = (
        b"WARNING: All log messages before absl::InitializeLog() is called are written to "
        b"STDERR\n"
        b"I0000 00:00:1795944902.197088   16397 port.cc:153] oneDNN custom operations are on. "
        b"You may see slightly different numerical results.\n"
        b"2024-01-31 12:00:00.123456: I tensorflow/core/util/port.cc:113] oneDNN custom "
        b"operations are on. To turn them off, set TF_ENABLE_ONEDNN_OPTS=0.\n"
    )
    no_driver = (b"I0000 00:00:1795944902.197525   16397 cudart_stub.cc:31] Could not find "
                 b"cuda drivers on your machine, GPU will not be used.\n")
    probe = (b"E0000 00:00:1795944913.468036   16397 cuda_platform.cc:52] failed call to "
             b"cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\n")
    real = (b"E0000 00:00:1795944913.5   16397 op_kernel.cc:1857] OP_REQUIRES failed\n"
            b"Traceback (most recent call last):\n"
            b"progress 50%\r")
    assert drop_notices(notices + real) == real
    # The failed CUDA probe is noise only where TensorFlow found no CUDA driver.
    assert drop_notices(no_driver + probe + real) == real
    assert drop_notices(probe + real) == probe + real
