"""engine="openvino": a float32 backbone converted to OpenVINO at fit, run without TensorFlow.

Needs OpenVINO (the openvino extra) and skips cleanly without it.
"""

import importlib.util
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import Pipeline, make_pipeline

import skanimal
from skanimal import BottleneckClassifier, BottleneckFeatures, IncompatibleModelError

from .conftest import SMALL
from .test_int8 import _LOAD_AND_PREDICT

needs_openvino = pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None,
    reason='OpenVINO not installed (pip install "skanimal[openvino]")')


def features(engine, **params):
    return BottleneckFeatures(**{"backbone": "mobilenet_v2", "weights": None,
                                 "image_size": SMALL, "pooling": "avg", "cache": False,
                                 "engine": engine, **params})


def relative_error(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


def test_bfloat16_on_openvino_is_refused_in_one_line():
    with pytest.raises(ValueError) as info:
        features("openvino", precision="bfloat16").fit()
    assert "engine='openvino'" in str(info.value) and "\n" not in str(info.value)


def test_unknown_engine_is_refused():
    with pytest.raises(ValueError, match="engine"):
        features("onnx").fit()


@needs_openvino
@pytest.mark.slow
def test_openvino_features_match_tensorflow_and_pickle(shapes, tmp_path):
    images = shapes.paths[:8]
    ov = features("openvino").fit()
    assert ov.openvino_backbone_.recipe["conversion"] == "float32"
    assert not hasattr(ov, "quantized_backbone_")
    got = ov.transform(images)
    expected = features("tensorflow").fit().transform(images)
    assert got.shape == expected.shape
    assert relative_error(got, expected) <= 1e-4
    again = pickle.loads(pickle.dumps(ov))
    np.testing.assert_array_equal(again.transform(images), got)
    assert not hasattr(clone(ov), "openvino_backbone_")

    # the cache keeps OpenVINO's features apart from TensorFlow's (and keyed by the IR)
    tf_fitted = features("tensorflow").fit()
    assert ov._fingerprint() != tf_fitted._fingerprint()
    assert ov.set_params(cache=tmp_path).transform(images[:2]).shape == (2, got.shape[1])
    assert (ov.transform(images[:2]) == got[:2]).all()  # read back from the cache


@needs_openvino
def test_engine_changed_after_fit_asks_for_fit_again(shapes):
    fitted = features("tensorflow").fit()
    fitted.set_params(engine="openvino")
    with pytest.raises(ValueError, match="fit again"):
        fitted.transform(shapes.paths[:2])


@needs_openvino
@pytest.mark.slow
def test_openvino_model_saves_loads_and_predicts_without_tensorflow(shapes, tmp_path):
    import joblib

    pipe = make_pipeline(features("openvino"),
                         BottleneckClassifier(hidden_layer_sizes=(8,), epochs=2, random_state=0))
    pipe.fit(shapes.paths, shapes.target)
    # the same head on TensorFlow's features: only the backbone's engine differs
    reference = Pipeline([("tf", features("tensorflow").fit()), ("head", pipe[1])])
    paths = [str(p) for p in shapes.paths[::12]]
    expected = pipe.predict_proba(paths)
    assert (reference.predict(paths) == pipe.predict(paths)).all()

    path = skanimal.save(pipe, tmp_path / "ov.skanimal")
    with zipfile.ZipFile(path) as zf:
        assert {"openvino_model.xml", "openvino_model.bin"} <= set(zf.namelist())
        assert json.loads(zf.read("skanimal.json"))["steps"][0]["params"]["engine"] == "openvino"
    joblib.dump(pipe, tmp_path / "ov.joblib")
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    for how, model in (("joblib", "ov.joblib"), ("skanimal", "ov.skanimal")):
        done = subprocess.run([sys.executable, "-c", _LOAD_AND_PREDICT, how,
                               str(tmp_path / model), *paths],
                              capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["imported"] == [], f"{how}: imported {result['imported']}"
        np.testing.assert_allclose(result["proba"], expected, atol=1e-6)

    damaged = tmp_path / "damaged.skanimal"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(damaged, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            dst.writestr(name, data[:-4] + b"\0\0\0\0" if name == "openvino_model.bin" else data)
    with pytest.raises(IncompatibleModelError, match="checksum"):
        skanimal.load(damaged)


@needs_openvino
@pytest.mark.slow
def test_openvino_agrees_with_tensorflow_on_real_photos(animals_dev, mobilenet_v2_weights):
    paths = list(np.asarray(animals_dev.paths)[::4])  # 60 photos
    params = dict(weights=str(mobilenet_v2_weights), pooling="avg", cache=False)
    ov = BottleneckFeatures("mobilenet_v2", engine="openvino", **params).fit()
    tf = BottleneckFeatures("mobilenet_v2", **params).fit()
    got, expected = ov.transform(paths), tf.transform(paths)
    assert relative_error(got, expected) <= 1e-4
    head = BottleneckClassifier(epochs=20, random_state=0).fit(
        expected, np.asarray(animals_dev.target)[::4])
    np.testing.assert_array_equal(head.predict(got), head.predict(expected))
