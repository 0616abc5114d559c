"""precision="int8": the backbone quantized by NNCF and run by OpenVINO (the openvino extra).

Everything but the missing-extra checks needs ``pip install "skanimal[openvino]"`` and skips
cleanly without it; quantizing runs the float model over the calibration images, so those
tests are slow.
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
from sklearn.pipeline import make_pipeline

import skanimal
from skanimal import BottleneckClassifier, BottleneckFeatures, IncompatibleModelError

from .conftest import SMALL

HAVE_OPENVINO = all(importlib.util.find_spec(name) is not None for name in ("openvino", "nncf"))
needs_openvino = pytest.mark.skipif(
    not HAVE_OPENVINO, reason='OpenVINO/NNCF not installed (pip install "skanimal[openvino]")')
#: The shared pretrained MobileNetV2 weights, beside the checkout (absent in a user's clone).
MOBILENET_WEIGHTS = (Path(__file__).resolve().parents[1].parent / "shared" / "weights"
                     / "mobilenet_v2_1.0_pretrained_notop.weights.h5")


def int8_features(**params):
    return BottleneckFeatures(**{"weights": None, "image_size": SMALL, "pooling": "avg",
                                 "precision": "int8", "cache": False, **params})


def cosine(a, b):
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# ------------------------------------------------------------------ without the extra
@pytest.mark.parametrize("missing", ["openvino", "nncf"])
def test_missing_extra_is_one_line_saying_what_to_install(missing, shapes, monkeypatch):
    if missing == "nncf":  # the message names what is missing: openvino first, if it is
        pytest.importorskip("openvino", reason="the openvino extra is not installed")
    monkeypatch.setitem(sys.modules, missing, None)  # `import missing` now raises ImportError
    with pytest.raises(ImportError) as info:
        int8_features().fit(shapes.paths[:4])
    message = str(info.value)
    assert 'pip install "skanimal[openvino]"' in message
    assert missing in message and "\n" not in message


def test_int8_unknown_before_fit_and_after_a_precision_change(shapes):
    features = BottleneckFeatures(weights=None, image_size=SMALL, cache=False).fit()
    features.set_params(precision="int8")  # fitted as float32: no quantized model
    with pytest.raises(ValueError, match=r"fit\(X\)"):
        features.transform(shapes.paths[:2])


# ------------------------------------------------------------------ with the extra
@pytest.fixture(scope="module")
def fitted(shapes):
    """VGG16 (random weights) at 32 px, calibrated on 16 of the shapes."""
    return int8_features(batch_size=8).fit(shapes.paths[:16])


@needs_openvino
def test_fit_without_images_says_int8_calibrates_on_them():
    with pytest.raises(ValueError, match="calibrates"):
        int8_features().fit()


@needs_openvino
@pytest.mark.slow
def test_int8_features_track_float32_ones(fitted, shapes):
    int8 = fitted.transform(shapes.paths)
    float32 = BottleneckFeatures(weights=None, image_size=SMALL, pooling="avg",
                                 cache=False).fit().transform(shapes.paths)
    assert int8.shape == float32.shape and int8.dtype == np.float32
    assert not np.array_equal(int8, float32)  # really another engine
    assert cosine(int8, float32).min() > 0.99
    recipe = fitted.quantized_backbone_.recipe
    assert recipe["calibration"]["n_images"] == 16


@needs_openvino
@pytest.mark.slow
def test_pickle_and_clone(fitted, shapes):
    expected = fitted.transform(shapes.paths[:10])
    blob = pickle.dumps(fitted)
    assert len(blob) < 2 * len(fitted.quantized_backbone_.weights) + 100_000  # IR, no Keras
    np.testing.assert_array_equal(pickle.loads(blob).transform(shapes.paths[:10]), expected)
    twin = clone(fitted)
    assert twin.get_params() == fitted.get_params()
    assert not hasattr(twin, "quantized_backbone_")


@needs_openvino
@pytest.mark.slow
def test_same_images_in_any_order_give_the_same_model_and_cache(fitted, shapes, tmp_path):
    cache = tmp_path / "cache"
    paths = list(shapes.paths)
    first = int8_features(cache=cache).fit(paths[:16])
    again = int8_features(cache=cache).fit(paths[:16][::-1] + paths[:2])  # order, duplicates
    other = int8_features(cache=cache).fit(paths[16:32])
    assert first.quantized_backbone_.weights == fitted.quantized_backbone_.weights
    features = first.transform(shapes.paths[:8])
    # Same calibration content → same configuration: the second estimator reads the cache.
    assert again._feature_store().fingerprint == first._feature_store().fingerprint
    # Another calibration → other int8 features, kept apart.
    assert other._feature_store().fingerprint != first._feature_store().fingerprint
    assert not np.array_equal(other.transform(shapes.paths[:8]), features)
    np.testing.assert_array_equal(again.transform(shapes.paths[:8]), features)


@needs_openvino
@pytest.mark.slow
def test_worker_processes_use_the_fitted_int8_model(fitted, shapes):
    serial = fitted.transform(shapes.paths)
    parallel = clone(fitted).set_params(n_jobs=2)
    parallel.quantized_backbone_ = fitted.quantized_backbone_
    parallel.feature_shape_ = fitted.feature_shape_
    parallel.n_features_out_ = fitted.n_features_out_
    np.testing.assert_array_equal(parallel.transform(shapes.paths), serial)


@needs_openvino
@pytest.mark.slow
def test_save_load_keeps_the_quantized_backbone(shapes, tmp_path):
    pipe = make_pipeline(int8_features(), BottleneckClassifier(epochs=2, random_state=0))
    pipe.fit(shapes.paths, shapes.target)
    path = skanimal.save(pipe, tmp_path / "int8.skanimal")
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        assert {"head.keras", "int8_model.bin", "int8_model.xml", "skanimal.json"} <= names
        assert not any(name.startswith("openvino_model") for name in names)
        description = json.loads(zf.read("skanimal.json"))
    assert description["steps"][0]["params"]["precision"] == "int8"
    loaded = skanimal.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(shapes.paths),
                                  pipe.predict_proba(shapes.paths))

    damaged = tmp_path / "damaged.skanimal"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(damaged, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            dst.writestr(name, data[:-4] + b"\0\0\0\0" if name == "int8_model.bin" else data)
    with pytest.raises(IncompatibleModelError, match="checksum"):
        skanimal.load(damaged)


@needs_openvino
@pytest.mark.slow
@pytest.mark.parametrize("backbone", skanimal.available_backbones())
def test_every_backbone_quantizes(backbone, shapes):
    size = (75, 75) if backbone == "inception_v3" else SMALL
    features = int8_features(backbone=backbone, image_size=size, pooling=None)
    out = features.fit(shapes.paths[:4]).transform(shapes.paths[:3])
    reference = BottleneckFeatures(backbone, weights=None, image_size=size, cache=False).fit()
    assert out.shape == (3, reference.n_features_out_)
    assert np.isfinite(out).all()


@needs_openvino
@pytest.mark.slow
def test_int8_close_to_float32_on_real_photos(animals_dev):
    if not MOBILENET_WEIGHTS.is_file():
        pytest.skip(f"shared pretrained weights not available at {MOBILENET_WEIGHTS}")
    paths = np.asarray(animals_dev.paths)
    calibration, held_out = paths[0::4], paths[1::8]  # 60 to calibrate, 30 others to compare
    params = dict(weights=str(MOBILENET_WEIGHTS), pooling="avg", cache=False)
    int8 = BottleneckFeatures("mobilenet_v2", precision="int8", **params).fit(list(calibration))
    float32 = BottleneckFeatures("mobilenet_v2", **params).fit()
    similarity = cosine(int8.transform(list(held_out)), float32.transform(list(held_out)))
    assert np.median(similarity) > 0.97 and similarity.min() > 0.93


#: Loads a model in a fresh interpreter, predicts on image files, and reports whether
#: TensorFlow, Keras or SciKeras were imported.
_LOAD_AND_PREDICT = """
import json, sys
how, model, *paths = sys.argv[1:]
if how == "joblib":
    import joblib
    pipe = joblib.load(model)
else:
    import skanimal
    pipe = skanimal.load(model)
proba = pipe.predict_proba(paths)
print(json.dumps({"labels": pipe.predict(paths).tolist(), "proba": proba.tolist(),
                  "imported": sorted(m for m in ("tensorflow", "keras", "scikeras")
                                     if m in sys.modules)}))
"""


@needs_openvino
@pytest.mark.slow
def test_int8_model_loads_and_predicts_without_tensorflow(shapes, tmp_path):
    import os
    import subprocess

    import joblib

    pipe = make_pipeline(int8_features(), BottleneckClassifier(hidden_layer_sizes=(8,),
                                                               epochs=2, random_state=0))
    pipe.fit(shapes.paths, shapes.target)
    paths = [str(p) for p in shapes.paths[::12]]
    expected = pipe.predict_proba(paths)
    joblib.dump(pipe, tmp_path / "int8.joblib")
    skanimal.save(pipe, tmp_path / "int8.skanimal")
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    for how, model in (("joblib", "int8.joblib"), ("skanimal", "int8.skanimal")):
        done = subprocess.run([sys.executable, "-c", _LOAD_AND_PREDICT, how,
                               str(tmp_path / model), *paths],
                              capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["imported"] == [], f"{how}: imported {result['imported']}"
        assert result["labels"] == pipe.predict(paths).tolist()
        np.testing.assert_allclose(result["proba"], expected, rtol=0, atol=1e-6)


# ------------------------------------------------------------------ compiled-network cache
def tiny_ir(tmp_path):
    """An Int8Backbone-shaped IR made without TensorFlow: uint8 pixels -> mean colour * 2."""
    ov = pytest.importorskip("openvino", reason="the openvino extra is not installed")
    import openvino.opset13 as ops

    from skanimal.openvino_engine import Int8Backbone

    pixels = ops.parameter([-1, 4, 4, 3], ov.Type.u8, name="pixels")
    scaled = ops.multiply(ops.convert(pixels, "f32"), ops.constant(np.float32(2.0)))
    out = ops.reduce_mean(scaled, ops.constant(np.array([1, 2], dtype=np.int64)), False)
    ov.save_model(ov.Model([out], [pixels]), str(tmp_path / "m.xml"), compress_to_fp16=False)
    return Int8Backbone((tmp_path / "m.xml").read_bytes(), (tmp_path / "m.bin").read_bytes(),
                        (3,))


COMPILE_AND_RUN = """
import sys, numpy as np, pickle
from skanimal.openvino_engine import compiled_model
backbone = pickle.load(open(sys.argv[1], "rb"))
pixels = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
np.save(sys.argv[2], backbone.features(pixels))
"""


def test_compiled_network_is_cached_beside_the_features_and_cleared_with_them(tmp_path,
                                                                            monkeypatch):
    from skanimal.cache import cache_info, clear_cache

    backbone = tiny_ir(tmp_path)
    (tmp_path / "backbone.pkl").write_bytes(pickle.dumps(backbone))
    cache = tmp_path / "cache"
    env = {**os.environ, "SKANIMAL_CACHE_DIR": str(cache)}
    results = []
    for run in range(2):  # a fresh process each time: the second reads what the first wrote
        out = tmp_path / f"features{run}.npy"
        subprocess.run([sys.executable, "-c", COMPILE_AND_RUN, str(tmp_path / "backbone.pkl"),
                        str(out)], check=True, env=env)
        results.append(np.load(out))
        blobs = sorted((cache / "openvino").glob("*.blob"))
        if run == 0:
            first = [(b.name, b.stat().st_mtime_ns) for b in blobs]
            assert first, "the first compile wrote no compiled network"
    assert [(b.name, b.stat().st_mtime_ns) for b in blobs] == first  # read, not rewritten
    np.testing.assert_array_equal(results[0], results[1])
    expected = np.arange(96, dtype=np.float32).reshape(2, 16, 3).mean(axis=1) * 2
    np.testing.assert_allclose(results[0], expected, rtol=1e-6)

    info = cache_info(cache)
    assert info["compiled_files"] == len(first) and info["compiled_bytes"] > 0
    assert info["entries"] == 0  # compiled networks are not feature vectors
    (cache / "openvino" / "notes.txt").write_text("the user's")  # never touched
    assert clear_cache(cache) == 0
    assert not list((cache / "openvino").glob("*.blob"))
    assert (cache / "openvino" / "notes.txt").read_text() == "the user's"
    assert cache_info(cache)["compiled_files"] == 0


def test_compiled_network_cache_follows_the_off_switch(monkeypatch, tmp_path):
    from skanimal.cache import compiled_cache_dir

    monkeypatch.setenv("SKANIMAL_CACHE_DIR", "off")
    assert compiled_cache_dir() is None
    monkeypatch.setenv("SKANIMAL_CACHE_DIR", str(tmp_path))
    assert compiled_cache_dir() == tmp_path / "openvino"
