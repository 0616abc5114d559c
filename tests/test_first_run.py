"""What a new user meets on a first run, through the workflow functions and the command line:
unreadable images, empty or tiny classes, moved weights, ImageNet offline."""

import re
import shutil
import subprocess
import sys
import urllib.error

import numpy as np
import pytest

from skanimal import ImageLoadError, load_image_folder, make_shapes, workflow
from skanimal._tfstartup import NoticeFilter
from skanimal.cli import main

SMALL = dict(weights=None, image_size=(32, 32))
BAD = ("zz_notes.jpg", "zz_empty.png")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A clean class-per-folder set (4 × 6 images) and a copy with two unreadable files."""
    root = tmp_path_factory.mktemp("first-run")
    make_shapes(root / "clean", n_per_class=6, image_size=32)
    shutil.copytree(root / "clean", root / "broken")
    (root / "broken" / "circle" / BAD[0]).write_text("not an image")
    (root / "broken" / "square" / BAD[1]).write_bytes(b"")
    return root / "clean", root / "broken"


@pytest.fixture(scope="module")
def model(photos, tmp_path_factory):
    """A model trained on every clean image."""
    clean, _ = photos
    output = tmp_path_factory.mktemp("model") / "shapes.joblib"
    workflow.train(clean, output, val_size=0, test_size=0, epochs=2, **SMALL)
    return output


def _names_both_bad_files(message):
    assert all(name in message for name in BAD), message
    assert "X[" not in message  # the files, not their positions in an X the user never saw


def test_train_fails_naming_every_unreadable_image_or_skips_them(photos, tmp_path):
    _, broken = photos
    with pytest.raises(ImageLoadError, match="2 of 26 images cannot be read") as info:
        workflow.train(broken, tmp_path / "m.joblib", val_size=0, test_size=0, epochs=1,
                       **SMALL)
    _names_both_bad_files(str(info.value))
    result = workflow.train(broken, tmp_path / "m.joblib", val_size=0, test_size=0, epochs=1,
                            on_error="skip", **SMALL)
    assert result.sizes == {"train": 24, "val": 0, "test": 0}
    assert sorted(p.rsplit("/", 1)[-1] for p, _ in result.skipped) == sorted(BAD)
    _names_both_bad_files(" ".join(reason for _, reason in result.skipped))


def test_evaluate_and_predict_skip_or_fail_and_evaluate_counts_training_images(model, photos):
    _, broken = photos
    with pytest.raises(ImageLoadError) as info:
        workflow.evaluate(model, broken)  # default: fail, naming every bad file
    _names_both_bad_files(str(info.value))
    with pytest.warns(UserWarning, match="trained on 24 of the 24 evaluated images"):
        evaluated = workflow.evaluate(model, broken, on_error="skip")
    assert evaluated.metrics["n_samples"] == 24 and len(evaluated.skipped) == 2
    assert evaluated.n_trained_on == 24

    predicted = workflow.predict(model, [broken])  # default: skip
    assert len(predicted.paths) == len(predicted.proba) == 24
    assert not any(p.endswith(BAD) for p in predicted.paths)
    _names_both_bad_files(" ".join(reason for _, reason in predicted.skipped))
    with pytest.raises(ImageLoadError):
        workflow.predict(model, [broken], on_error="fail")


def test_an_empty_class_folder_is_named_in_a_warning(photos, tmp_path):
    clean, _ = photos
    shutil.copytree(clean, tmp_path / "set")
    (tmp_path / "set" / "zebra").mkdir()
    with pytest.warns(UserWarning, match=r"\['zebra'\].*hold no images"):
        data = load_image_folder(tmp_path / "set")
    assert "zebra" not in data.target_names


def test_a_class_with_one_image_trains_on_everything_and_says_so(photos, tmp_path):
    # Formerly a split error; train now leaves out the parts such a class cannot fill.
    clean, _ = photos
    shutil.copytree(clean, tmp_path / "set")
    for extra in sorted((tmp_path / "set" / "cross").iterdir())[1:]:
        extra.unlink()
    lines = []
    result = workflow.train(tmp_path / "set", tmp_path / "m.joblib", epochs=1,
                            log=lines.append, **SMALL)
    assert result.sizes == {"train": 19, "val": 0, "test": 0}
    assert any("Left out the validation part" in line for line in lines)
    assert any("Left out the test part" in line for line in lines)


def test_a_warm_run_says_its_features_came_from_the_cache(photos, tmp_path):
    clean, _ = photos
    lines = []
    for _ in range(2):
        lines.clear()
        workflow.train(clean, tmp_path / "m.joblib", val_size=0, test_size=0, epochs=1,
                       cache=tmp_path / "cache", log=lines.append, **SMALL)
    assert any(re.fullmatch(r"Features of 24 images from the cache in \d+\.\d s", line)
               for line in lines), lines


def test_imagenet_offline_on_the_command_line_names_the_option(photos, tmp_path, monkeypatch,
                                                              capsys):
    import keras.src.backend.config as keras_config
    import keras.src.utils.file_utils as file_utils

    def refuse(url, *args, **kwargs):
        raise urllib.error.URLError(OSError(-2, "Name or service not known"))

    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path / "keras-home"))
    monkeypatch.setattr(file_utils, "urlretrieve", refuse)
    clean, _ = photos
    status = main(["train", str(clean), "-o", str(tmp_path / "m.joblib"), "--image-size", "32",
                   "--val-size", "0", "--test-size", "0", "--no-cache"])
    captured = capsys.readouterr()
    assert status == 1
    assert "Downloading" not in captured.out + captured.err
    error = [line for line in captured.err.splitlines() if line.startswith("skanimal: error")]
    assert len(error) == 1 and "--weights PATH" in error[0] and "--weights none" in error[0]
    assert "BottleneckFeatures(" not in error[0]


# ------------------------------------------------------------------- the command line


def _run(*args):
    result = subprocess.run([sys.executable, "-m", "skanimal", *map(str, args)],
                            capture_output=True, text=True, timeout=300)
    notices = NoticeFilter()
    result.lines = [line for line in result.stderr.splitlines() if not notices.is_notice(line)]
    return result


@pytest.mark.slow
def test_cli_predict_lists_unreadable_images_at_the_end_and_train_fails_on_them(model, photos,
                                                                               tmp_path):
    _, broken = photos
    predicted = _run("predict", model, broken, "--format", "csv")
    assert predicted.returncode == 1  # not every image got a prediction
    rows = predicted.stdout.splitlines()
    assert len(rows) == 1 + 24 and rows[0].startswith("path,")
    assert predicted.lines[0] == "skanimal: warning: skipped 2 unreadable image(s):"
    assert len(predicted.lines) == 3
    _names_both_bad_files("\n".join(predicted.lines))

    trained = _run("train", broken, "-o", tmp_path / "m.joblib", "--weights", "none",
                   "--image-size", "32", "--val-size", "0", "--test-size", "0")
    assert trained.returncode == 1 and len(trained.lines) == 1
    assert trained.lines[0].startswith("skanimal: error: 2 of 26 images cannot be read")
    _names_both_bad_files(trained.lines[0])
    assert "--on-error skip" in trained.lines[0]


@pytest.fixture(scope="module")
def mobilenet_model(photos, tmp_path_factory):
    """A model trained with a real (random) MobileNetV2 weights file, and that file."""
    import keras

    folder = tmp_path_factory.mktemp("weights-model")
    weights = folder / "weights" / "mobilenet.weights.h5"
    weights.parent.mkdir()
    keras.applications.MobileNetV2(include_top=False, weights=None,
                                   input_shape=(32, 32, 3)).save_weights(weights)
    clean, _ = photos
    output = folder / "shapes.joblib"
    workflow.train(clean, output, backbone="mobilenet_v2", weights=str(weights),
                   image_size=(32, 32), pooling="avg", val_size=0, test_size=0, epochs=1,
                   cache=False)
    return output, weights


def test_cli_predict_takes_the_weights_new_place(mobilenet_model, photos, tmp_path, capsys,
                                                 monkeypatch):
    model, weights = mobilenet_model
    clean, _ = photos
    image = str(next((clean / "circle").iterdir()))
    assert main(["predict", str(model), image, "--format", "csv"]) == 0
    expected = capsys.readouterr().out

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras-home"))
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(weights, moved / "any-name.h5")
    try:
        assert main(["predict", str(model), image]) == 1
        error = capsys.readouterr().err
        assert "no longer exists" in error and "--weights PATH" in error
        assert main(["predict", str(model), image, "--format", "csv", "--weights",
                     str(moved)]) == 0
        assert capsys.readouterr().out == expected
        assert main(["evaluate", str(model), str(clean), "--weights",
                     str(moved / "any-name.h5")]) == 0
        assert main(["predict", str(model), image, "--weights", __file__]) == 1
        assert "is not the weights file this model was made with" in capsys.readouterr().err
    finally:
        shutil.move(moved / "any-name.h5", weights)


def test_every_command_that_loads_a_model_takes_the_weights_new_place(
        mobilenet_model, photos, tmp_path, capsys, monkeypatch):
    # issue 22: sort, suggest, audit and review take --weights as predict and evaluate do
    model, weights = mobilenet_model
    clean, _ = photos
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras-home"))
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(weights, moved / "any-name.h5")
    try:
        assert main(["sort", str(model), str(clean), "--into", str(tmp_path / "a")]) == 1
        error = capsys.readouterr().err.strip()
        assert error.startswith("skanimal: error: weights file") and "\n" not in error
        assert "no longer exists" in error and "--weights PATH" in error
        assert "predict/evaluate" not in error and "relocate_weights" not in error
        assert not (tmp_path / "a").exists()

        assert main(["sort", str(model), str(clean), "--into", str(tmp_path / "a"),
                     "--weights", str(moved)]) == 0
        assert "Copied 24 photo(s)" in capsys.readouterr().out
        assert main(["suggest", str(model), str(clean), "-n", "3", "--format", "csv",
                     "--weights", str(moved / "any-name.h5")]) == 0
        assert len(capsys.readouterr().out.splitlines()) == 1 + 3
        assert main(["audit", str(clean), "--model", str(model), "--format", "csv"]) == 1
        assert "--weights PATH" in capsys.readouterr().err
        assert main(["audit", str(clean), "--model", str(model), "--format", "json",
                     "--weights", str(moved)]) == 0
        capsys.readouterr()
        assert main(["suggest", str(model), str(clean), "--weights", __file__]) == 1
        assert "is not the weights file this model was made with" in capsys.readouterr().err
    finally:
        shutil.move(moved / "any-name.h5", weights)


def test_review_takes_the_weights_new_place(mobilenet_model, photos, tmp_path, monkeypatch):
    pytest.importorskip("flask")
    from skanimal import review
    from skanimal.exceptions import WeightsMovedError

    model, weights = mobilenet_model
    clean, _ = photos
    folder = tmp_path / "sorted"
    shutil.copytree(clean, folder)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras-home"))
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(weights, moved / "any-name.h5")
    try:
        with pytest.raises(WeightsMovedError):
            review.start(folder, model=model)
        server = review.start(folder, model=model, weights=moved)
        server.close()
    finally:
        shutil.move(moved / "any-name.h5", weights)


def test_tiny_images_are_named_through_the_workflow(model, tmp_path):
    from PIL import Image

    from skanimal.exceptions import SmallImageWarning

    Image.new("RGB", (1, 1), "white").save(tmp_path / "dot.jpg")
    with pytest.warns(SmallImageWarning, match=r"dot\.jpg' \(1x1\)"):
        result = workflow.predict(model, [tmp_path / "dot.jpg"])
    assert np.isclose(result.proba.sum(), 1)


def test_the_command_line_names_files_not_positions_in_x():
    from skanimal.cli.errors import for_the_shell

    error = ImageLoadError("Cannot read image X[16] '/photos/cat.jpg': truncated",
                           path="/photos/cat.jpg", index=16)
    assert for_the_shell(error) == "Cannot read image '/photos/cat.jpg': truncated"
