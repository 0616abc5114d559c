"""A ``.skanimal`` model loaded for prediction only (skanimal.inference, issue 23): the
pipeline's answers, its feature cache, and a start without scikit-learn or TensorFlow."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline

import skanimal
from skanimal import BottleneckClassifier, BottleneckFeatures
from skanimal.inference import InferenceModel
from skanimal.persistence import load_for_inference
from skanimal.workflow import predict

from .conftest import SMALL

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("openvino")


def assert_same_answers(light, pipe, paths):
    """Same features, probabilities (bit for bit: the same code runs) and novelty scores;
    the pipeline computes its own features, not reading what the light model cached."""
    features = light.features.transform(paths)
    cache = pipe[0].cache
    pipe[0].set_params(cache=False)
    try:
        np.testing.assert_array_equal(features, pipe[0].transform(paths))
    finally:
        pipe[0].set_params(cache=cache)
    # the rest from the cache the light model filled (the pipeline reads the same entries)
    np.testing.assert_array_equal(light.predict_proba(paths), pipe.predict_proba(paths))
    np.testing.assert_array_equal(light.predict(paths), pipe.predict(paths))
    np.testing.assert_array_equal(light.classes_, pipe[-1].classes_)
    np.testing.assert_array_equal(light.head.novelty_.novelty_score(features),
                                  pipe[-1].novelty_.novelty_score(features))
    assert light.head.novelty_.threshold_ == pipe[-1].novelty_.threshold_
    assert light.head.confidence_threshold_ == pipe[-1].confidence_threshold_
    return features


@pytest.fixture(scope="module")
def tiny_model(shapes, tmp_path_factory):
    """A float32 network run by OpenVINO: the light path of int8 models too, for a third of
    the fit (no calibration); int8 on real photos is the slow test below."""
    pipe = make_pipeline(
        BottleneckFeatures(weights=None, image_size=SMALL, pooling="avg", engine="openvino"),
        BottleneckClassifier(hidden_layer_sizes=(8,), epochs=2, random_state=0))
    pipe.fit(shapes.paths, shapes.target)
    path = tmp_path_factory.mktemp("inference") / "openvino.skanimal"
    skanimal.save(pipe, path)
    return pipe, path


def test_a_saved_openvino_model_predicts_as_its_pipeline(tiny_model, shapes, tmp_path, monkeypatch):
    monkeypatch.setenv("SKANIMAL_CACHE_DIR", str(tmp_path / "cache"))
    pipe, path = tiny_model
    light = load_for_inference(path)
    assert isinstance(light, InferenceModel)
    # One feature cache: what the light model extracted, the pipeline finds.
    assert light.features.extract(shapes.paths[::4]).n_cached == 0
    assert pipe[0].extract(shapes.paths[::4]).n_cached == len(shapes.paths[::4])
    assert_same_answers(light, pipe, shapes.paths[1::4])

    result = predict(path, shapes.paths[:6])  # the workflow takes this path for the file
    expected = predict(pipe, shapes.paths[:6])
    np.testing.assert_array_equal(result.proba, expected.proba)
    np.testing.assert_array_equal(result.novelty, expected.novelty)
    assert result.novelty_threshold == expected.novelty_threshold


def test_unreadable_photos_are_set_aside_as_by_the_pipeline(tiny_model, shapes, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a photo")
    paths = [shapes.paths[0], str(bad), shapes.paths[1]]
    result = predict(tiny_model[1], paths)
    assert result.paths == [shapes.paths[0], shapes.paths[1]]
    assert [path for path, _ in result.skipped] == [str(bad)]
    assert "bad.jpg" in result.skipped[0][1]


def test_models_that_need_tensorflow_are_not_loaded_light(shapes, tmp_path):
    pipe = make_pipeline(BottleneckFeatures(weights=None, image_size=SMALL, pooling="avg"),
                         BottleneckClassifier(hidden_layer_sizes=(4,), epochs=1,
                                              random_state=0))
    pipe.fit(shapes.paths[::6], shapes.target[::6])
    skanimal.save(pipe, tmp_path / "float.skanimal")
    assert load_for_inference(tmp_path / "float.skanimal") is None  # a TensorFlow backbone
    result = predict(tmp_path / "float.skanimal", shapes.paths[:2])  # loads it whole
    np.testing.assert_allclose(result.proba, pipe.predict_proba(shapes.paths[:2]), atol=1e-6)


def test_a_damaged_description_is_one_clear_error(tiny_model, tmp_path):
    import zipfile

    from skanimal.exceptions import IncompatibleModelError

    with zipfile.ZipFile(tiny_model[1]) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    description = json.loads(members["skanimal.json"])
    description["steps"][1]["classes"] = description["steps"][1]["classes"][:-1]
    members["skanimal.json"] = json.dumps(description).encode()
    damaged = tmp_path / "damaged.skanimal"
    with zipfile.ZipFile(damaged, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(IncompatibleModelError, match="damaged.skanimal.*classes are declared"):
        load_for_inference(damaged)


def test_skanimal_predict_of_a_saved_openvino_model_imports_no_sklearn(tiny_model, shapes):
    """What makes it start fast (benchmarks/bench_start.py): none of scikit-learn, SciPy,
    TensorFlow or Keras is imported, and the table is the pipeline's."""
    code = """
import contextlib, io, json, sys
from skanimal.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    status = main(["predict", *sys.argv[1:], "--format", "json"])
heavy = ("sklearn", "scipy", "tensorflow", "keras", "scikeras")
print(json.dumps({"status": status, "rows": json.loads(out.getvalue()),
                  "imported": sorted(m for m in heavy if m in sys.modules)}))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, "-c", code, str(tiny_model[1]), *shapes.paths[:3]],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == 0
    assert result["imported"] == []
    proba = tiny_model[0].predict_proba(shapes.paths[:3])
    classes = tiny_model[0][-1].classes_
    for row, p in zip(result["rows"], proba):
        top = row["predictions"][0]
        assert top["label"] == classes[np.argmax(p)]
        assert top["probability"] == pytest.approx(float(p.max()), abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["int8", "openvino"])
def test_real_photos_same_answers_and_the_keras_heads(kind, animals_dev, mobilenet_v2_weights,
                                                      tmp_path, monkeypatch):
    """Issue 23.2 on the light path: top-1 identical and |dp| <= 1e-5 against the Keras head,
    on the real photos; int8, and the float32 network in OpenVINO."""
    pytest.importorskip("nncf")
    monkeypatch.setenv("SKANIMAL_CACHE_DIR", str(tmp_path / "cache"))
    paths = np.asarray(animals_dev.paths)
    target = np.asarray(animals_dev.target)
    keep = np.concatenate([np.flatnonzero(target == c)[:5] for c in np.unique(target)])
    options = {"precision": "int8"} if kind == "int8" else {"engine": "openvino"}
    pipe = make_pipeline(
        BottleneckFeatures("mobilenet_v2", weights=mobilenet_v2_weights, image_size=(96, 96),
                           **options),
        BottleneckClassifier(random_state=0))
    pipe.fit(paths[keep], target[keep])
    skanimal.save(pipe, tmp_path / "model.skanimal")
    light = load_for_inference(tmp_path / "model.skanimal")
    features = assert_same_answers(light, pipe, paths)
    keras_proba = pipe[-1].model_.predict(features, verbose=0)
    proba = light.predict_proba(paths)
    np.testing.assert_array_equal(proba.argmax(axis=1), keras_proba.argmax(axis=1))
    assert np.abs(proba - keras_proba).max() <= 1e-5

