"""Scale-out through joblib on a real Dask cluster (two local worker processes, no mocks).

``BottleneckFeatures(n_jobs=-1).transform`` and ``GridSearchCV(..., n_jobs=-1)`` inside
``joblib.parallel_config(backend="dask")`` must give the serial results, run on the workers,
build the backbone once per worker, limit TensorFlow's threads there, share the feature
cache, and report errors at the caller's index.
"""

import logging
import os
import sys

import numpy as np
import pytest

pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

from joblib import cpu_count, parallel_config  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_validate  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

import skanimal  # noqa: E402
from skanimal import (  # noqa: E402
    BottleneckFeatures,
    ImageLoadError,
    _parallel,  # noqa: E402
    cache_info,
    make_shapes,
)

SMALL = (32, 32)
#: 40 images in batches of 4: 10 batches, which chunk_bounds splits into 5 chunks of 8 on
#: two workers, so each worker gets several chunks.
BATCH = 4


def _install_build_counter():
    """In a worker: count real backbone builds (wraps, does not replace, backbones._build)."""
    import inspect

    import skanimal.backbones as backbones

    if getattr(backbones._build, "skanimal_builds", None) is not None:
        return
    original = backbones._build
    signature = inspect.signature(original)

    def counting_build(*args, **kwargs):
        arguments = signature.bind(*args, **kwargs).arguments
        counting_build.skanimal_builds.append((
            arguments["spec"].name, tuple(arguments["image_size"]),
            arguments.get("pooling"), arguments.get("precision", "float32"),
        ))
        return original(*args, **kwargs)

    counting_build.skanimal_builds = []
    backbones._build = counting_build


def _worker_state():
    """In a worker: what skanimal did there, the builds, and TensorFlow's thread pools."""
    import skanimal.backbones as backbones
    from skanimal import _parallel

    state = _parallel.worker_info()
    state["builds"] = list(getattr(backbones._build, "skanimal_builds", []))
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        state["tf_intra"] = tf.config.threading.get_intra_op_parallelism_threads()
        state["tf_inter"] = tf.config.threading.get_inter_op_parallelism_threads()
    state["cpu_count"] = cpu_count()
    return state


def _start_random_draws():
    """In a worker: a thread drawing from Python's global `random`, as Dask's own do."""
    import random
    import threading
    import time

    stop = threading.Event()

    def draw():
        while not stop.is_set():
            random.random()
            time.sleep(0.0005)

    threading.Thread(target=draw, daemon=True, name="skanimal-test-random").start()
    random._skanimal_test_stop = stop


def _stop_random_draws():
    import random

    stop = getattr(random, "_skanimal_test_stop", None)
    if stop is not None:
        stop.set()


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    client = Client(cluster)
    # This module's helpers travel by value, so the workers need not import the tests.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        client.run(_install_build_counter)
        yield client
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        client.close()
        cluster.close()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_shapes(tmp_path_factory.mktemp("dask-shapes"), n_per_class=10, image_size=32)


def _states(client):
    return client.run(_worker_state)


def _chunks(states):
    return sum(state["chunks"] for state in states.values())


def _features(**params):
    return BottleneckFeatures(weights=None, image_size=SMALL, batch_size=BATCH, **params)


# -- transform ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["paths", "array"])
@pytest.mark.slow
def test_transform_on_workers_matches_serial(client, data, kind):
    X = list(data.paths)
    if kind == "array":
        from PIL import Image

        X = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in X])
    serial = _features(cache=False).fit(X).transform(X)
    before = _states(client)
    main_chunks = _parallel.worker_info()["chunks"]

    with parallel_config(backend="dask"):
        distributed = _features(cache=False, n_jobs=-1).fit(X).transform(X)

    assert distributed.dtype == np.float32 and distributed.shape == serial.shape
    np.testing.assert_allclose(distributed, serial, rtol=0, atol=1e-6)
    after = _states(client)
    n_chunks = len(_parallel.chunk_bounds(len(X), BATCH, 2))
    assert n_chunks >= 3
    # Every chunk ran in a worker process, none in this one.
    assert _chunks(after) - _chunks(before) == n_chunks
    assert _parallel.worker_info()["chunks"] == main_chunks
    assert all(state["pid"] != os.getpid() for state in after.values())
    # One backbone build per worker and configuration, reused for all its chunks.
    for state in after.values():
        assert len(state["builds"]) == len(set(state["builds"])), state["builds"]
        assert state["builds"].count(("vgg16", SMALL, None, "float32")) <= 1


@pytest.mark.slow
def test_tf_threads_limited_in_workers(client, data):
    with parallel_config(backend="dask"):
        _features(cache=False, n_jobs=-1).fit(data.paths).transform(data.paths)
    states = [s for s in _states(client).values() if s["chunks"]]
    assert states
    for state in states:
        # 2 Dask workers on this host share its cores.
        k = max(1, state["cpu_count"] // 2)
        assert state["tf_threads"] == (k, 1), state
        assert state["tf_intra"] == k and state["tf_inter"] == 1
        assert "Dask workers on this host" in state["tf_threads_source"]
    # This (the calling) process was never reconfigured.
    assert _parallel.worker_info()["tf_threads"] is None


@pytest.mark.slow
def test_error_from_late_chunk_names_callers_index(client, data, tmp_path):
    X = list(data.paths)
    missing = str(tmp_path / "gone.jpg")
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"this is not a JPEG")
    late = _parallel.chunk_bounds(len(X), BATCH, 2)[-1][0] + 1  # inside the last chunk
    assert late > len(X) // 2

    for bad, cache in [(missing, False), (str(corrupt), str(tmp_path / "cache"))]:
        X_bad = list(X)
        X_bad[late] = bad
        with parallel_config(backend="dask"):
            with pytest.raises(ImageLoadError) as info:
                _features(cache=cache, n_jobs=-1).fit().transform(X_bad)
        assert info.value.index == late
        assert f"X[{late}]" in str(info.value)
        assert bad in str(info.value)


@pytest.mark.slow
def test_feature_cache_shared_with_workers(client, data, tmp_path, monkeypatch):
    X = list(data.paths)
    shared = tmp_path / "shared-cache"
    expected = _features(cache=False).fit(X).transform(X)
    before = _chunks(_states(client))

    with parallel_config(backend="dask"):
        first = _features(cache=str(shared), n_jobs=-1).fit(X).transform(X)
    assert cache_info(shared)["entries"] == len(X)  # written by the workers
    assert _chunks(_states(client)) > before
    np.testing.assert_allclose(first, expected, rtol=0, atol=1e-6)
    # This process reads what the workers wrote: bit-identical.
    np.testing.assert_array_equal(_features(cache=str(shared)).fit(X).transform(X), first)

    # cache=True is resolved in the calling process, whose $SKANIMAL_CACHE_DIR the already
    # running workers never saw: they still write where the caller would.
    from_env = tmp_path / "from-env"
    monkeypatch.setenv("SKANIMAL_CACHE_DIR", str(from_env))
    with parallel_config(backend="dask"):
        again = _features(cache=True, n_jobs=-1).fit(X).transform(X)
    assert cache_info(from_env)["entries"] == len(X)
    np.testing.assert_array_equal(again, first)


# -- model selection ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def classifier_cls():
    cls = getattr(skanimal, "BottleneckClassifier", None)
    if cls is None:
        pytest.skip("skanimal.BottleneckClassifier is not available")
    return cls


def _pipeline(classifier_cls, cache):
    # pooling="avg" is a configuration no other test builds, so worker-side fits show up
    # as backbone builds in the workers.
    return make_pipeline(
        BottleneckFeatures(weights=None, image_size=SMALL, pooling="avg", cache=cache),
        classifier_cls(hidden_layer_sizes=(16,), epochs=3, batch_size=8, random_state=0),
    )


@pytest.mark.slow
def test_grid_search_on_workers_matches_serial(client, data, classifier_cls, tmp_path):
    X, y = np.asarray(data.paths), np.asarray(data.target)
    pipe = _pipeline(classifier_cls, str(tmp_path / "cache"))
    grid = {"bottleneckclassifier__learning_rate": [1e-3, 1e-2]}
    cv = StratifiedKFold(n_splits=2, shuffle=True, random_state=0)

    # The serial search gets a cache of its own: a warm cache would spare the workers
    # their backbone builds, which are the evidence below that the fits ran there.
    serial_pipe = clone(pipe).set_params(bottleneckfeatures__cache=str(tmp_path / "serial"))
    serial = GridSearchCV(serial_pipe, grid, cv=cv).fit(X, y)
    # A Dask worker's event loop draws from Python's global `random` (dask.sizeof samples
    # big collections) while a task runs; do that steadily, so reproducibility cannot
    # depend on the timing of those draws.
    client.run(_start_random_draws)
    try:
        with parallel_config(backend="dask"):
            distributed = GridSearchCV(clone(pipe), grid, cv=cv, n_jobs=-1).fit(X, y)
    finally:
        client.run(_stop_random_draws)

    for key in ["mean_test_score", "split0_test_score", "split1_test_score"]:
        np.testing.assert_array_equal(distributed.cv_results_[key], serial.cv_results_[key])
    assert distributed.best_params_ == serial.best_params_
    # The fits ran in the workers: they built the pooled backbone there.
    pooled = ("vgg16", SMALL, "avg", "float32")
    built = [state["builds"].count(pooled) for state in _states(client).values()]
    assert sum(built) >= 1 and max(built) == 1


@pytest.mark.slow
def test_pipelines_fitted_on_workers_come_back_usable(client, data, classifier_cls, tmp_path):
    X, y = np.asarray(data.paths), np.asarray(data.target)
    cv = list(StratifiedKFold(n_splits=2, shuffle=True, random_state=1).split(X, y))
    pipe = _pipeline(classifier_cls, str(tmp_path / "cache"))
    with parallel_config(backend="dask"):
        result = cross_validate(pipe, X, y, cv=cv, n_jobs=-1, return_estimator=True)
    for estimator, (_, test), score in zip(result["estimator"], cv, result["test_score"]):
        # Unpickled here from a worker, the fitted pipeline predicts in this process.
        predictions = estimator.predict(X[test])
        assert set(predictions) <= set(y)
        assert estimator.score(X[test], y[test]) == pytest.approx(score)


# -- pure helpers (no cluster) --------------------------------------------------------------
def test_chunk_bounds_are_whole_batches():
    for n, batch, workers in [(40, 4, 2), (1000, 32, 3), (33, 32, 8), (5, 2, 16), (10_000, 8, 1)]:
        bounds = _parallel.chunk_bounds(n, batch, workers)
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a < b for a, b in bounds)
        assert all(b == c for (_, b), (c, _) in zip(bounds, bounds[1:]))
        assert all(a % batch == 0 for a, _ in bounds)
        assert all(b - a <= batch * _parallel.MAX_BATCHES_PER_CHUNK for a, b in bounds)
        assert len(bounds) <= max(1, workers * _parallel.CHUNKS_PER_WORKER) or (
            max(b - a for a, b in bounds) == batch * _parallel.MAX_BATCHES_PER_CHUNK
        )


def test_tf_threads_plan_and_override(monkeypatch):
    monkeypatch.delenv(_parallel.ENV_TF_THREADS, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    me, other = os.getpid(), os.getpid() + 1
    # The calling process is left alone unless SKANIMAL_TF_THREADS asks.
    assert _parallel.plan_tf_threads(caller_pid=me)[0] is None
    # A worker process (here: a different caller pid) follows the override, then the hint,
    # then OMP_NUM_THREADS as joblib's loky backend sets it.
    assert _parallel.plan_tf_threads(caller_pid=other)[0] is None
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert _parallel.plan_tf_threads(caller_pid=other)[:2] == (3, 1)
    assert _parallel.plan_tf_threads(caller_pid=other, hint=5)[:2] == (5, 1)
    monkeypatch.setenv(_parallel.ENV_TF_THREADS, "2")
    intra, inter, source = _parallel.plan_tf_threads(caller_pid=other, hint=5)
    assert (intra, inter) == (2, 1) and _parallel.ENV_TF_THREADS in source
    # An explicit SKANIMAL_TF_THREADS is honoured in any process.
    assert _parallel.plan_tf_threads(caller_pid=me)[:2] == (2, 1)
    assert _parallel.caller_tf_threads() == 2
    monkeypatch.setenv(_parallel.ENV_TF_THREADS, "zero")
    with pytest.raises(ValueError, match=_parallel.ENV_TF_THREADS):
        _parallel.caller_tf_threads()
