"""skanimal.workflow: the commands' work as Python functions, run in-process."""

import json
import os
import pickle
import re
import stat

import joblib
import numpy as np
import pytest

import skanimal
from skanimal import (
    ImageFolderError,
    ImageLoadError,
    IncompatibleModelError,
    load_image_folder,
    make_shapes,
    workflow,
)
from skanimal.datasets import find_images
from skanimal.fileio import TMP_PREFIX
from skanimal.report import REPORT_FILES, classification_metrics

SMALL = dict(weights=None, image_size=(32, 32))


def normal_mode():
    """The permissions of a newly created file under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("workflow") / "shapes"
    make_shapes(root, n_per_class=8, image_size=32)
    return root


@pytest.fixture(scope="module")
def trained(data_dir):
    lines = []
    output = data_dir.parent / "models" / "shapes.joblib"
    result = workflow.train(data_dir, output, val_size=0.25, test_size=0.25, epochs=10,
                            learning_rate=3e-3, report_dir=data_dir.parent / "report",
                            log=lines.append, **SMALL)
    return result, lines


def test_train_result_holds_what_the_command_prints(trained, data_dir):
    result, lines = trained
    assert result.sizes == {"train": 16, "val": 8, "test": 8}
    assert set(result.scores) == {"val", "test"}
    assert result.scores["test"]["n_samples"] == 8
    assert 0 <= result.scores["test"]["accuracy"] <= 1
    assert set(result.timings) == {"extract_s", "fit_s", "total_s"}
    assert list(result.test.paths) and set(result.test.target) <= set(result.pipeline.classes_)
    # the log narrates each step, in order, one line per call
    assert [line.split()[0] for line in lines] == ["Loaded", "Split", "Extracting",
                                                   "Extracted", "Trained", "Confidence"]
    assert "(32x32 px, weights=none, pooling=avg" in lines[2]


def test_train_saves_an_atomic_model_with_normal_permissions(trained):
    result, _ = trained
    assert result.model_path.is_file()
    assert result.model_bytes == result.model_path.stat().st_size
    assert mode(result.model_path) == normal_mode()  # not mkstemp's 0600
    assert not [p for p in result.model_path.parent.iterdir() if p.name.startswith(TMP_PREFIX)]
    assert result.pipeline[0].verbose == 0
    reloaded = workflow.load_model(result.model_path)
    sample = list(result.test.paths[:4])
    np.testing.assert_array_equal(reloaded.predict_proba(sample),
                                  result.pipeline.predict_proba(sample))


def test_train_report_agrees_with_the_scores(trained):
    result, _ = trained
    assert sorted(p.name for p in result.report_dir.iterdir()) == sorted(REPORT_FILES)
    metrics = json.loads((result.report_dir / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(result.scores["test"]["accuracy"])
    assert metrics["validation"]["log_loss"] == pytest.approx(result.scores["val"]["log_loss"])
    assert metrics["sizes"] == result.sizes
    for name in REPORT_FILES:
        assert mode(result.report_dir / name) == normal_mode()


def test_evaluate_matches_classification_metrics(trained, data_dir, tmp_path):
    result, _ = trained
    lines = []
    # The model was trained on the train part of these very images: evaluate says so.
    with pytest.warns(UserWarning, match=f"trained on {result.sizes['train']} of the 32"):
        evaluated = workflow.evaluate(result.model_path, data_dir, report_dir=tmp_path / "r",
                                      log=lines.append)
    assert evaluated.n_trained_on == evaluated.metrics["n_trained_on"] == result.sizes["train"]
    data = load_image_folder(data_dir)
    expected = classification_metrics(result.pipeline, data.paths, data.target)
    for key in ("accuracy", "log_loss"):
        assert evaluated.metrics[key] == pytest.approx(expected[key]), key
    for key in ("per_class", "confusion_matrix", "n_samples", "classes"):
        assert evaluated.metrics[key] == expected[key], key
    assert evaluated.metrics["sizes"] == {"evaluated": 32}
    assert "precision" in evaluated.classification_report
    assert lines[0] == (f"Loaded 32 images of 4 classes from {data_dir}: circle 8, cross 8, "
                        "square 8, triangle 8")
    assert re.fullmatch(r"Features of 32 images from the cache in \d+\.\d s", lines[1])
    assert len(lines) == 2
    assert evaluated.report_dir == tmp_path / "r"
    assert (tmp_path / "r" / "metrics.json").is_file()


def test_evaluate_accepts_a_pipeline_and_refuses_unknown_classes(trained, tmp_path):
    result, _ = trained
    other = tmp_path / "other"
    make_shapes(other, n_per_class=2, image_size=32, classes=("circle",))
    (other / "hexagon").mkdir()
    (other / "circle" / "circle_000.jpg").replace(other / "hexagon" / "h.jpg")
    with pytest.raises(ImageFolderError, match=r"not trained on: \['hexagon'\]"):
        workflow.evaluate(result.pipeline, other)


def test_predict_ranks_classes_like_predict_proba(trained, data_dir):
    result, _ = trained
    folder = data_dir / "square"
    single = data_dir / "cross" / "cross_000.jpg"
    predicted = workflow.predict(result.pipeline, [folder, single])
    assert predicted.paths == [*find_images(folder), str(single)]
    proba = result.pipeline.predict_proba(predicted.paths)
    np.testing.assert_allclose(predicted.proba, proba, rtol=1e-6)
    np.testing.assert_array_equal(predicted.labels, result.pipeline.predict(predicted.paths))
    rows = predicted.top(2)
    assert [path for path, _ in rows] == predicted.paths
    for (_, ranked), row in zip(rows, proba):
        best = np.argsort(-row, kind="stable")[:2]
        assert [label for label, _ in ranked] == list(result.pipeline.classes_[best])
        assert ranked[0][1] == pytest.approx(row.max(), rel=1e-6)
    assert len(predicted.top(99)[0][1]) == 4  # capped at the number of classes
    # each photo says how unlike the training photos it is: the head's own novelty score
    novelty = result.pipeline[-1].novelty_
    features = result.pipeline[0].transform(predicted.paths)
    np.testing.assert_allclose(predicted.novelty, novelty.novelty_score(features), atol=1e-6)
    assert predicted.novelty_threshold == novelty.threshold_
    np.testing.assert_array_equal(predicted.unlike_training, novelty.is_novel(features))
    # a single path is one input, not a sequence of characters
    assert workflow.predict(result.model_path, str(single)).paths == [str(single)]


def test_load_model_refuses_what_is_not_a_fitted_skanimal_pipeline(tmp_path):
    from sklearn.pipeline import make_pipeline

    from skanimal import BottleneckClassifier, BottleneckFeatures

    with pytest.raises(IncompatibleModelError, match="does not exist"):
        workflow.load_model(tmp_path / "missing.joblib")
    with pytest.raises(IncompatibleModelError, match="is a directory"):
        workflow.load_model(tmp_path)
    garbage = tmp_path / "garbage.joblib"
    garbage.write_bytes(b"not a pickle")
    with pytest.raises(IncompatibleModelError, match="not a skanimal model file") as raised:
        workflow.load_model(garbage)
    assert "Error" not in str(raised.value)  # pickle's own words mean nothing to a user
    from_elsewhere = tmp_path / "elsewhere.joblib"
    # A pickle of a class from a package not installed here: the package is named.
    from_elsewhere.write_bytes(pickle.dumps(0, protocol=2).replace(
        b"K\x00.", b"cnot_installed_pkg\nThing\n)\x81."))
    with pytest.raises(IncompatibleModelError, match="needs the module not_installed_pkg"):
        workflow.load_model(from_elsewhere)
    a_dict = tmp_path / "dict.joblib"
    joblib.dump({"just": "a dict"}, a_dict)
    with pytest.raises(IncompatibleModelError, match="found dict"):
        workflow.load_model(a_dict)
    unfitted = tmp_path / "unfitted.joblib"
    joblib.dump(make_pipeline(BottleneckFeatures(**SMALL), BottleneckClassifier()), unfitted)
    with pytest.raises(IncompatibleModelError, match="not fitted"):
        workflow.load_model(unfitted)


def test_save_model_replaces_atomically_or_not_at_all(tmp_path):
    path = tmp_path / "sub" / "model.joblib"
    old = os.umask(0o027)
    try:
        workflow.save_model({"version": 1}, path)
    finally:
        os.umask(old)
    assert mode(path) == 0o640  # the umask's permissions, not 0600
    assert joblib.load(path) == {"version": 1}
    with pytest.raises(pickle.PicklingError):
        workflow.save_model({"unpicklable": lambda: None}, path)
    assert joblib.load(path) == {"version": 1}  # the old file is intact
    assert os.listdir(path.parent) == ["model.joblib"]  # no temporary file left


def test_load_model_reads_skanimal_archives_too(trained, data_dir, tmp_path):
    from skanimal import save

    pipeline = trained[0].pipeline
    archive = save(pipeline, tmp_path / "shapes.skanimal")
    renamed = archive.rename(tmp_path / "shapes.model")  # told apart by content, not name
    loaded = workflow.load_model(renamed)
    paths = find_images(data_dir)[:6]
    np.testing.assert_allclose(loaded.predict_proba(paths), pipeline.predict_proba(paths),
                               atol=1e-5)
    not_ours = tmp_path / "other.zip"
    import zipfile

    with zipfile.ZipFile(not_ours, "w") as zf:
        zf.writestr("hello.txt", "hi")
    with pytest.raises(IncompatibleModelError, match="not a skanimal model file"):
        workflow.load_model(not_ours)


def test_save_model_beside_takes_the_next_free_name_and_never_overwrites(tmp_path):
    # The numbering of moves.free_names, as copied photos get: "name (k).ext".
    old = tmp_path / "animals.joblib"
    workflow.save_model({"version": 1}, old)
    (tmp_path / "animals (2).joblib").write_bytes(b"someone else's file")
    assert workflow.save_model_beside({"version": 2}, old) == tmp_path / "animals (1).joblib"
    new = workflow.save_model_beside({"version": 3}, tmp_path / "animals (1).joblib")
    assert new == tmp_path / "animals (3).joblib"  # animals (2) is taken
    assert joblib.load(old) == {"version": 1}
    assert (tmp_path / "animals (2).joblib").read_bytes() == b"someone else's file"
    assert joblib.load(new) == {"version": 3}
    assert mode(new) == normal_mode()
    assert sorted(os.listdir(tmp_path)) == ["animals (1).joblib", "animals (2).joblib",
                                            "animals (3).joblib", "animals.joblib"]
    # A name's own trailing number is not a copy number.
    dated = tmp_path / "model-2023.joblib"
    workflow.save_model({"version": 1}, dated)
    assert workflow.save_model_beside({}, dated) == tmp_path / "model-2023 (1).joblib"


@pytest.mark.parametrize("kwargs, match", [
    (dict(val_size=0.5, test_size=0.5), "cannot split 16 images"),
    (dict(val_size=4, test_size=0, report_dir="r"), "a report needs a test part"),
])
def test_train_data_errors_come_before_any_work(tmp_path, kwargs, match):
    data = tmp_path / "shapes"
    make_shapes(data, n_per_class=4, image_size=32)
    with pytest.raises(ImageFolderError, match=match):
        workflow.train(data, tmp_path / "m.joblib", **SMALL, **kwargs)
    assert not (tmp_path / "m.joblib").exists()


@pytest.mark.slow
def test_train_from_two_images_per_class_says_what_it_left_out(tmp_path):
    # too few images for a validation or a test part: train on all, say so, score nothing
    make_shapes(tmp_path / "tiny", n_per_class=2, image_size=32)
    lines = []
    result = workflow.train(tmp_path / "tiny", tmp_path / "m.joblib", log=lines.append,
                            **SMALL)
    assert result.sizes == {"train": 8, "val": 0, "test": 0} and result.scores == {}
    left_out = [line for line in lines if line.startswith("Left out")]
    assert len(left_out) == 2
    assert "validation part" in left_out[0] and "only 2 images" in left_out[0]
    assert "test part" in left_out[1] and "skanimal evaluate" in left_out[1]
    assert set(joblib.load(result.model_path).classes_) == {
        "circle", "cross", "square", "triangle"}


def test_train_from_five_images_per_class_keeps_one_per_class_in_each_part(tmp_path):
    # 10 % of 20 images is 2, fewer than the 4 classes: each part gets one image per class
    make_shapes(tmp_path / "few", n_per_class=5, image_size=32)
    lines = []
    result = workflow.train(tmp_path / "few", tmp_path / "m.joblib", log=lines.append,
                            epochs=2, **SMALL)
    assert result.sizes == {"train": 12, "val": 4, "test": 4}
    assert set(result.scores) == {"val", "test"}
    assert sum("one image per class (4 images, not 2)" in line for line in lines) == 2
    assert not any(line.startswith("Left out") for line in lines)


def test_train_with_a_logistic_head(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    make_shapes(tmp_path / "shapes", n_per_class=6, image_size=32)
    lines = []
    result = workflow.train(tmp_path / "shapes", tmp_path / "m.joblib", head="logistic",
                            log=lines.append, **SMALL)
    kinds = [type(step) for _, step in result.pipeline.steps]
    assert kinds[1:] == [StandardScaler, LogisticRegression]
    assert any(line.startswith("Trained a logistic-regression head") for line in lines)
    assert 0 <= result.scores["test"]["accuracy"] <= 1
    saved = joblib.load(result.model_path)
    paths = list(result.test.paths)
    assert list(saved.predict(paths)) == list(result.pipeline.predict(paths))
    with pytest.raises(ValueError, match="head must be one of"):
        workflow.train(tmp_path / "shapes", tmp_path / "n.joblib", head="forest", **SMALL)


def test_train_needs_two_classes(tmp_path):
    make_shapes(tmp_path / "one", n_per_class=3, image_size=32, classes=("circle",))
    with pytest.raises(ImageFolderError, match="only one class"):
        workflow.train(tmp_path / "one", tmp_path / "m.joblib", **SMALL)



# ------------------------------------------------------- labels CSV, precision, progress
def _labels_csv(data, path):
    """``data``'s photos and classes as a CSV file beside them, relative paths."""
    rows = ["file,label"] + [f"{os.path.relpath(p, path.parent)},{t}"
                             for p, t in zip(data.paths, data.target)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_train_from_a_labels_csv_is_train_from_its_folders(trained, data_dir, tmp_path):
    folder_result, _ = trained
    labels = _labels_csv(load_image_folder(data_dir), data_dir.parent / "labels.csv")
    lines = []
    result = workflow.train(None, tmp_path / "m.joblib", labels=labels, val_size=0.25,
                            test_size=0.25, epochs=10, learning_rate=3e-3,
                            log=lines.append, **SMALL)
    assert f"Loaded 32 images of 4 classes from {labels}" in lines[0]
    assert result.sizes == folder_result.sizes
    assert [os.path.normpath(p) for p in folder_result.test.paths] == list(result.test.paths)
    assert result.scores == folder_result.scores  # same split, features and seed
    np.testing.assert_array_equal(result.pipeline.classes_, folder_result.pipeline.classes_)


def test_train_labels_with_bad_rows(data_dir, tmp_path):
    data = load_image_folder(data_dir)
    labels = _labels_csv(data, data_dir.parent / "bad.csv")
    labels.write_text(labels.read_text() + "gone.jpg,circle\nshapes/circle/circle_000.jpg,\n")
    with pytest.raises(ImageFolderError, match=r"2 bad row\(s\): line 34: 'gone.jpg' "
                                               r"does not exist; line 35: .* empty label"):
        workflow.train(None, tmp_path / "m.joblib", labels=labels, **SMALL)
    assert not (tmp_path / "m.joblib").exists()
    lines = []
    result = workflow.train(None, tmp_path / "m.joblib", labels=labels, on_error="skip",
                            head="logistic", log=lines.append, **SMALL)
    assert lines[0].startswith(f"Left out 2 bad row(s) of {str(labels)!r}: line 34")
    assert sum(result.sizes.values()) == 32


def test_train_with_labels_relative_to_another_folder(data_dir, tmp_path):
    data = load_image_folder(data_dir)
    labels = tmp_path / "labels.csv"
    labels.write_text("path,class\n" + "".join(
        f"{os.path.relpath(p, data_dir)},{t}\n" for p, t in zip(data.paths, data.target)))
    result = workflow.train(data_dir, tmp_path / "m.joblib", labels=labels, head="logistic",
                            **SMALL)
    assert sum(result.sizes.values()) == 32


def test_bfloat16_is_kept_in_the_model_and_used_to_predict(data_dir, tmp_path):
    output = tmp_path / "bf16.joblib"
    workflow.train(data_dir, output, precision="bfloat16", head="logistic", test_size=0,
                   **SMALL)
    model = workflow.load_model(output)
    features = model.steps[0][1]
    assert features.precision == "bfloat16"
    paths = load_image_folder(data_dir).paths[:6]
    bf16 = features.transform(paths)
    f32 = features.set_params(precision="float32").transform(paths)
    assert not np.allclose(bf16, f32, rtol=0, atol=1e-6)  # really another arithmetic
    features.set_params(precision="bfloat16")
    predicted = workflow.predict(output, paths)  # loads the model itself
    np.testing.assert_allclose(predicted.proba, model.predict_proba(paths), rtol=1e-6)


def test_progress_bars_on_stderr_same_model(data_dir, tmp_path, capsys):
    quiet = workflow.train(data_dir, tmp_path / "quiet.joblib", epochs=4, test_size=0.25,
                           **SMALL)
    assert capsys.readouterr().err == ""  # off by default
    shown = workflow.train(data_dir, tmp_path / "bars.joblib", epochs=4, test_size=0.25,
                           progress=True, **SMALL)
    err = capsys.readouterr().err
    assert "Training the head" in err and "4/4" in err and "epoch" in err
    assert "Extracting features" in err
    assert shown.scores == quiet.scores
    head = shown.pipeline.steps[-1][1]
    assert head.callbacks is None  # the saved model holds no bar
    reloaded = joblib.load(tmp_path / "bars.joblib")
    paths = shown.test.paths
    np.testing.assert_allclose(reloaded.predict_proba(paths),
                               quiet.pipeline.predict_proba(paths), rtol=1e-6)


@pytest.mark.slow
def test_int8_train_to_a_skanimal_file_skips_an_unreadable_photo(tmp_path):
    """``-o NAME.skanimal`` writes the pickle-free file (which predict loads light), refusing a
    logistic head it cannot hold before any work; int8's fit decodes calibration photos (all
    of a small set): with on_error="skip" an unreadable one is left out there too, and named
    once, as for float32."""
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    from skanimal.inference import InferenceModel
    from skanimal.persistence import load_for_inference

    data = tmp_path / "shapes"
    make_shapes(data, n_per_class=6, image_size=32)
    broken = data / "circle" / "broken.jpg"
    broken.write_text("not a photo")
    output = tmp_path / "m.skanimal"
    with pytest.raises(IncompatibleModelError, match=r"m\.skanimal.*such as m\.joblib"):
        workflow.train(data, output, head="logistic", **SMALL)
    with pytest.raises(ImageLoadError, match="broken.jpg"):
        workflow.train(data, output, precision="int8", epochs=1, backbone="mobilenet_v2",
                       **SMALL)
    assert not output.exists()
    result = workflow.train(data, output, precision="int8", epochs=1, backbone="mobilenet_v2",
                            on_error="skip", val_size=0, test_size=0, **SMALL)
    assert [path for path, _ in result.skipped] == [str(broken)]
    assert result.model_path == output
    assert isinstance(load_for_inference(output), InferenceModel)
    assert skanimal.load(output)[-1].classes_.tolist() == sorted(
        p.name for p in data.iterdir() if p.is_dir())
