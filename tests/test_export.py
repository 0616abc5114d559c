"""``skanimal export``: one network, pixels in, probabilities out, in every format.

Every format is written and then run by its own runtime (TensorFlow, LiteRT, onnxruntime,
OpenVINO), and compared with skanimal's own ``predict_proba`` on the same images. The
tiny random-weights models check the wiring of every head, pooling and backbone (and the
ONNX export, the quick loop's format); the shared MobileNetV2 weights and animals-dev
photos check every format's agreement on real photos.
"""

import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skanimal
from skanimal import BottleneckClassifier, BottleneckFeatures, IncompatibleModelError
from skanimal.cli import main
from skanimal.exported_predict import load_network, load_photo
from skanimal.exporting import FORMATS, ExportError, build_network
from skanimal.images import decode_image

from .conftest import ANIMALS_DEV, MOBILENET_V2_WEIGHTS

#: Every runtime is run for real wherever the ``export`` and ``openvino`` extras are installed
#: (``pip install -e ".[dev]"``, CI's main job); CI's oldest-versions job installs neither.
pytestmark = pytest.mark.skipif(
    not all(importlib.util.find_spec(name) for name in
            ("onnxruntime", "tf2onnx", "onnx", "ai_edge_litert", "openvino")),
    reason='the export runtimes are not installed: pip install "skanimal[export,openvino]"')

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"format", "model", "classes", "input", "output"}
INPUT_KEYS = {"height", "width", "dtype", "layout", "color", "resize"}
TINY = 48


def _pixels(n, size=TINY, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _head(kind):
    if kind == "network":
        return [BottleneckClassifier(hidden_layer_sizes=(16,), epochs=3, random_state=0)]
    return [StandardScaler(), LogisticRegression(max_iter=300)]


def _fit(head="network", *, backbone="mobilenet_v2", pooling="avg", size=TINY, n_classes=3,
         **features):
    X = _pixels(4 * n_classes, size)
    y = np.array(["cat", "dog", "eel", "fox"][:n_classes] * 4)
    steps = [BottleneckFeatures(backbone, weights=None, image_size=size, pooling=pooling,
                                cache=False, **features), *_head(head)]
    return make_pipeline(*steps).fit(X, y), X


class _Fitted(dict):
    def __missing__(self, head):
        self[head] = _fit(head)
        return self[head]


@pytest.fixture(scope="module")
def tiny():
    """Each head on a 48-px random-weights MobileNetV2, fitted once, when first asked."""
    return _Fitted()


@pytest.fixture(scope="module")
def onnx_export(tiny, tmp_path_factory):
    """The network head exported to ONNX once: (folder, result)."""
    folder = tmp_path_factory.mktemp("onnx") / "out"
    return folder, skanimal.export(tiny["network"][0], folder, format="onnx")


def _check_folder(folder, pipeline, X, fmt):
    """The folder is a complete export whose network gives skanimal's probabilities."""
    info = json.loads((folder / "skanimal-export.json").read_text())
    assert KEYS <= set(info) and INPUT_KEYS <= set(info["input"])
    assert info["format"] == fmt and info["output"] == "probabilities"
    assert info["classes"] == pipeline.classes_.tolist()
    assert info["input"]["resize"] == "bilinear"
    assert (info["input"]["height"], info["input"]["width"]) == tuple(X.shape[1:3])
    assert (info["input"]["dtype"], info["input"]["layout"], info["input"]["color"]) == \
        ("uint8", "NHWC", "RGB")
    assert (folder / info["model"]).exists()
    assert (folder / "predict.py").read_text() == \
        (ROOT / "skanimal" / "exported_predict.py").read_text()
    run, _ = load_network(str(folder))
    got = run(X)
    assert got.shape == (len(X), len(info["classes"]))
    np.testing.assert_allclose(got, pipeline.predict_proba(X), atol=1e-4)
    return info


def test_onnx_export_gives_skanimals_probabilities(tiny, onnx_export):
    folder, result = onnx_export
    assert result.model_path == folder / "model.onnx" and result.max_difference <= 1e-3
    _check_folder(folder, *tiny["network"], "onnx")
    assert sorted(os.listdir(folder.parent)) == ["out"]  # nothing left beside it


def test_onnx_graph_has_the_pixels_as_its_one_input(onnx_export):
    import onnx

    graph = onnx.load(str(onnx_export[0] / "model.onnx")).graph
    assert len(graph.input) == 1
    dims = graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:]] == [TINY, TINY, 3]
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8


def test_the_export_folder_has_a_new_folders_permissions(onnx_export):
    # built in a temporary folder, then renamed into place: not tempfile's private 0o700
    umask = os.umask(0)
    os.umask(umask)
    assert onnx_export[0].stat().st_mode & 0o777 == 0o777 & ~umask


@pytest.mark.slow
def test_binary_logistic_head(tmp_path):
    pipeline, X = _fit("logistic", n_classes=2)
    skanimal.export(pipeline, tmp_path, format="onnx")
    _check_folder(tmp_path, pipeline, X, "onnx")


# Pooling is one layer after any backbone: every backbone with "avg", every pooling with
# MobileNetV2 (an inception_v3 network alone takes ~10 s to build and run).
@pytest.mark.parametrize(("backbone", "pooling"), [("mobilenet_v2", None)] + [
    pytest.param(backbone, pooling, marks=pytest.mark.slow)
    for backbone, pooling in [("mobilenet_v2", "max")] + [
        (backbone, "avg") for backbone in skanimal.available_backbones()]])
def test_every_backbone_and_pooling_makes_one_network(backbone, pooling):
    size = 75 if backbone == "inception_v3" else 32
    pipeline, X = _fit("logistic", backbone=backbone, pooling=pooling, size=size)
    network = build_network(pipeline)
    assert network.input.dtype == "uint8"
    np.testing.assert_allclose(np.asarray(network(X)), pipeline.predict_proba(X), atol=1e-4)


# The ONNX graph of caffe preprocessing (BGR, mean subtracted; VGG and ResNet): MobileNetV2's
# [-1, 1] scaling, which inception_v3 shares, is exported by every other test here.
@pytest.mark.slow
def test_caffe_preprocessing_exports_to_onnx(tmp_path):
    pipeline, X = _fit("network", backbone="vgg16", pooling=None, size=32)
    skanimal.export(pipeline, tmp_path, format="onnx")
    _check_folder(tmp_path, pipeline, X, "onnx")


@pytest.mark.slow
def test_bfloat16_model_exports_its_float32_network(tmp_path):
    pipeline, X = _fit("network", precision="bfloat16")
    result = skanimal.export(pipeline, tmp_path, format="onnx")
    assert result.description["precision"] == "float32"
    run, _ = load_network(str(tmp_path))
    # skanimal computed the features in bfloat16: close, not equal
    np.testing.assert_allclose(run(X), pipeline.predict_proba(X), atol=0.05)


# ----------------------------------------------------------------------- decoding


def _jpeg(pixels, **save):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90, **save)
    return buffer.getvalue()


def _hostile_images():
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, (300, 200, 3), dtype=np.uint8)
    photo[:100] = (250, 30, 30)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: shown 90° clockwise
    rgba = np.dstack([photo, rng.integers(0, 256, (300, 200), dtype=np.uint8)])
    palette = Image.fromarray(photo).convert("P", palette=Image.Palette.ADAPTIVE)
    palette.info["transparency"] = 3
    grey16 = Image.fromarray((rng.integers(0, 65536, (60, 90))).astype(np.uint16))
    big = rng.integers(0, 256, (1600, 2400, 3), dtype=np.uint8)
    images = {"rotated.jpg": _jpeg(photo, exif=exif), "big.jpg": _jpeg(big)}
    for name, img, fmt in [("rgba.png", Image.fromarray(rgba), "PNG"),
                           ("palette.png", palette, "PNG"),
                           ("grey16.png", grey16, "PNG"),
                           ("cmyk.jpg", Image.fromarray(photo).convert("CMYK"), "JPEG"),
                           ("la.png", Image.fromarray(rgba).convert("LA"), "PNG"),
                           ("one-bit.bmp", Image.fromarray(photo).convert("1"), "BMP"),
                           ("small.gif", Image.fromarray(photo[:20, :30]), "GIF")]:
        buffer = io.BytesIO()
        img.save(buffer, fmt)
        images[name] = buffer.getvalue()
    return images


@pytest.mark.parametrize("size", [(96, 96), (75, 120)])
def test_predict_script_decodes_photos_exactly_as_skanimal(tmp_path, size):
    for name, data in _hostile_images().items():
        (tmp_path / name).write_bytes(data)
        ours = load_photo(str(tmp_path / name), *size)
        assert ours.dtype == np.uint8 and ours.shape == (*size, 3)
        np.testing.assert_array_equal(ours, decode_image(data, size), err_msg=name)


def test_example_is_the_script_every_export_gets():
    assert (ROOT / "examples" / "predict_exported.py").read_text() == \
        (ROOT / "skanimal" / "exported_predict.py").read_text()


def test_predict_script_runs_with_the_runtime_alone(tiny, onnx_export, tmp_path):
    pipeline, X = tiny["network"]
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, pixels in enumerate(X[:3]):
        Image.fromarray(pixels).save(photos / f"{i}.png")
    (photos / "broken.jpg").write_bytes(b"not an image")
    # -I: no PYTHONPATH, no current folder: skanimal cannot be imported by the script
    done = subprocess.run([sys.executable, "-I", str(onnx_export[0] / "predict.py"),
                           str(photos), "--top-k", "2"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1, done.stderr  # one photo unreadable
    assert "broken.jpg" in done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "path,label_1,probability_1,label_2,probability_2"
    expected = pipeline.predict_proba(X[:3])
    for line, row in zip(lines[1:], expected):
        fields = line.split(",")
        assert fields[1] == pipeline.classes_[np.argmax(row)]
        assert float(fields[2]) == pytest.approx(row.max(), abs=1e-4)


# ---------------------------------------------------------------------- bad input


def test_unknown_format_is_one_line(tiny, tmp_path):
    with pytest.raises(ExportError, match="format='coreml' is not one of keras"):
        skanimal.export(tiny["network"][0], tmp_path / "out", format="coreml")


def test_not_a_skanimal_model(tmp_path):
    with pytest.raises(IncompatibleModelError, match="not a skanimal model"):
        skanimal.export(make_pipeline(StandardScaler(), LogisticRegression()), tmp_path / "o")
    unfitted = make_pipeline(BottleneckFeatures(weights=None), BottleneckClassifier())
    with pytest.raises(IncompatibleModelError, match="not fitted"):
        skanimal.export(unfitted, tmp_path / "o")
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_a_folder_that_is_not_empty_needs_force(tiny, tmp_path):
    pipeline, X = tiny["network"]
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="is not empty"):
        skanimal.export(pipeline, tmp_path, format="keras")
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]
    skanimal.export(pipeline, tmp_path, format="keras", force=True)
    # a second export replaces the first one's network, and leaves other files alone
    skanimal.export(pipeline, tmp_path, format="onnx", force=True)
    assert sorted(os.listdir(tmp_path)) == ["model.onnx", "notes.txt", "predict.py",
                                            "skanimal-export.json"]
    _check_folder(tmp_path, pipeline, X, "onnx")


def test_a_failed_export_leaves_nothing(tiny, tmp_path, monkeypatch):
    import skanimal.exporting as exporting

    def broken(network, path, image_size):
        Path(path).write_bytes(b"half a model")
        raise RuntimeError("converter crashed")

    monkeypatch.setitem(exporting._WRITERS, "onnx", broken)
    with pytest.raises(RuntimeError, match="converter crashed"):
        skanimal.export(tiny["network"][0], tmp_path / "out", format="onnx")
    assert os.listdir(tmp_path) == []


def test_missing_runtime_names_the_extra(tiny, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    with pytest.raises(ExportError, match=r'onnxruntime.*pip install "skanimal\[export\]"'):
        skanimal.export(tiny["network"][0], tmp_path / "out", format="onnx")
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(ExportError, match=r'pip install "skanimal\[openvino\]"'):
        skanimal.export(tiny["network"][0], tmp_path / "out", format="openvino")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------- CLI


@pytest.mark.slow
def test_cli_exports_a_saved_model(tiny, tmp_path, capsys):
    pipeline, X = tiny["logistic"]
    joblib.dump(pipeline, tmp_path / "model.joblib")
    out = tmp_path / "exported"
    assert main(["export", str(tmp_path / "model.joblib"), "--into", str(out),
                 "--format", "onnx"]) == 0
    assert "Exported onnx network" in capsys.readouterr().out
    _check_folder(out, pipeline, X, "onnx")
    # again, without --force: refused in one line
    assert main(["export", str(tmp_path / "model.joblib"), "--into", str(out),
                 "--format", "onnx"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("skanimal: error:") and "--force" in err and "\n" not in err
    (tmp_path / "junk.joblib").write_bytes(b"junk")
    assert main(["export", str(tmp_path / "junk.joblib"), "--into", str(tmp_path / "x"),
                 "--format", "onnx"]) == 1
    err = capsys.readouterr().err.strip()
    assert "is not a skanimal model" in err and "\n" not in err
    with pytest.raises(SystemExit) as exit_:
        main(["export", str(tmp_path / "model.joblib"), "--into", str(out), "--format", "pb"])
    assert exit_.value.code == 2


# ------------------------------------------------------------- real photos, real weights


def _agreement(run, pipeline, paths, size):
    """Top-1 agreement and median |Δp| of skanimal's top class, exported vs skanimal."""
    ours = pipeline.predict_proba(paths)
    pixels = np.stack([load_photo(p, *size) for p in paths])
    theirs = np.concatenate([run(pixels[i:i + 16]) for i in range(0, len(pixels), 16)])
    top = ours.argmax(axis=1)
    rows = np.arange(len(top))
    return (float(np.mean(theirs.argmax(axis=1) == top)),
            float(np.median(np.abs(theirs[rows, top] - ours[rows, top]))))


@pytest.fixture(scope="module")
def real(animals_dev, mobilenet_v2_weights):
    """MobileNetV2 with the shared weights at 96 px, both heads fitted on 36 photos, and
    48 other photos to predict."""
    rng = np.random.default_rng(0)
    order = rng.permutation(len(animals_dev.paths))
    train, test = order[:36], order[36:84]
    X, y = np.asarray(animals_dev.paths), np.asarray(animals_dev.target)
    models = {}
    for head in ("network", "logistic"):
        steps = [BottleneckFeatures("mobilenet_v2", weights=mobilenet_v2_weights,
                                    image_size=96), *_head(head)]
        models[head] = make_pipeline(*steps).fit(X[train], y[train])
    return models, list(X[test])


#: Each format with one head, each head with several formats: the network is built once per
#: head, then converted per format (each export takes 10-30 s of CPU).
FORMAT_HEADS = {"keras": "logistic", "savedmodel": "network", "tflite": "logistic",
                "onnx": "network", "openvino": "logistic"}


def test_every_format_is_tested():
    assert set(FORMAT_HEADS) == set(FORMATS)
    assert set(FORMAT_HEADS.values()) == {"network", "logistic"}


@pytest.mark.slow
@pytest.mark.skipif(ANIMALS_DEV.is_dir() and MOBILENET_V2_WEIGHTS.is_file(),
                    reason="every format is exported on real photos below")
@pytest.mark.parametrize(("fmt", "head"), list(FORMAT_HEADS.items()))
def test_every_format_gives_skanimals_probabilities(tiny, tmp_path, fmt, head):
    """Without ``../shared``, every format still runs: on the tiny random-weights models."""
    pipeline, X = tiny[head]
    result = skanimal.export(pipeline, tmp_path / "out", format=fmt)
    assert result.model_path == tmp_path / "out" / FORMATS[fmt]
    assert result.n_bytes > 100_000 and result.max_difference <= 1e-3
    _check_folder(tmp_path / "out", pipeline, X, fmt)


@pytest.mark.slow
@pytest.mark.parametrize(("fmt", "head"), list(FORMAT_HEADS.items()))
def test_real_photos_agree_with_skanimal_predict(real, tmp_path, fmt, head):
    models, paths = real
    result = skanimal.export(models[head], tmp_path / "out", format=fmt)
    assert result.model_path == tmp_path / "out" / FORMATS[fmt]
    assert result.n_bytes > 100_000 and result.max_difference <= 1e-3
    assert sorted(os.listdir(tmp_path)) == ["out"]  # nothing left beside it
    info = _check_folder(tmp_path / "out", models[head],
                         np.stack([load_photo(p, 96, 96) for p in paths[:8]]), fmt)
    run, _ = load_network(str(tmp_path / "out"))
    top1, median = _agreement(run, models[head], paths, (info["input"]["height"],
                                                         info["input"]["width"]))
    assert top1 >= 0.995 and median <= 1e-3, (top1, median)


@pytest.mark.slow
def test_int8_model_exports_its_int8_network_to_openvino(real, tmp_path):
    models, paths = real
    float_model = models["network"]
    int8 = make_pipeline(
        BottleneckFeatures("mobilenet_v2", weights=float_model[0].weights, image_size=96,
                           precision="int8"),
        float_model[-1])  # the same head, now fed int8 features
    int8[0].fit(paths)
    result = skanimal.export(int8, tmp_path / "ov", format="openvino")
    assert result.description["precision"] == "int8"
    run, _ = load_network(str(tmp_path / "ov"))
    top1, median = _agreement(run, int8, paths, (96, 96))
    assert top1 >= 0.995 and median <= 1e-3, (top1, median)
    with pytest.warns(UserWarning, match="float32 network"):
        result = skanimal.export(int8, tmp_path / "onnx", format="onnx")
    assert result.description["precision"] == "float32"
    run, _ = load_network(str(tmp_path / "onnx"))
    top1, _ = _agreement(run, int8, paths, (96, 96))
    # int8 vs float32 features under a head trained on float32 ones, at 96 px: 85 % measured
    # (chance: 17 %); the benchmark reports the figure at 128 px with the int8 model's head
    assert top1 >= 0.75, top1
