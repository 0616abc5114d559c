"""The one scoring engine and its rules: one collector (empty folders, paths as given), one
pipeline split, one on_error vocabulary, one free-name scheme, one sorted-folder layout."""

import ast
import csv
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from skanimal import (
    BottleneckFeatures,
    ImageFolderError,
    folders,
    load_image_folder,
    make_shapes,
    moves,
    scoring,
    workflow,
)
from skanimal.datasets import check_on_error, collect_images
from skanimal.report import top_k_columns
from skanimal.sorting import sort_images

from .conftest import SMALL

PACKAGE = Path(__file__).resolve().parents[1] / "skanimal"


@pytest.fixture(scope="module")
def model_and_photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("scoring")
    data = make_shapes(root / "shapes", n_per_class=4, image_size=32,
                       classes=("circle", "square"))
    model = make_pipeline(BottleneckFeatures(weights=None, image_size=SMALL, pooling="avg"),
                          LogisticRegression(max_iter=200))
    model.fit(data.paths, data.target)
    return model, data


# ------------------------------------------------------------------------ the collector


def test_an_empty_folder_is_an_error_naming_it_for_predict_and_sort(model_and_photos,
                                                                     tmp_path):
    model, _ = model_and_photos
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not a photo")
    with pytest.raises(ImageFolderError, match="no image files in folder .*empty"):
        workflow.predict(model, [tmp_path / "empty"])
    with pytest.raises(ImageFolderError, match="no image files in folder .*empty"):
        sort_images(model, tmp_path / "empty", tmp_path / "out")
    assert not (tmp_path / "out" / folders.PREDICTIONS_FILE).exists()


def test_a_folder_a_move_sort_emptied_may_be_sorted_again(model_and_photos, tmp_path):
    # Running a killed 'sort --move' again finishes it, even when every photo had moved.
    import shutil

    model, data = model_and_photos
    shutil.copytree(data.root, tmp_path / "photos")
    first = sort_images(model, tmp_path / "photos", tmp_path / "out", mode="move")
    assert len(first.rows) == len(data.paths)
    again = sort_images(model, tmp_path / "photos", tmp_path / "out", mode="move")
    assert again.rows == [] and again.counts == {}
    (tmp_path / "other").mkdir()
    with pytest.raises(ImageFolderError, match="no image files in folder .*other"):
        sort_images(model, tmp_path / "other", tmp_path / "out", mode="move")


def test_an_output_folder_inside_the_source_is_left_out(tmp_path):
    make_shapes(tmp_path / "photos", n_per_class=1, image_size=16, classes=("circle",))
    make_shapes(tmp_path / "photos" / "out", n_per_class=1, image_size=16, classes=("square",))
    found = collect_images(tmp_path / "photos", exclude=tmp_path / "photos" / "out")
    assert [Path(p).name for p in found] == ["circle_000.jpg"]
    # a source inside the output folder is searched as any other
    assert len(collect_images(tmp_path / "photos" / "out", exclude=tmp_path / "photos")) == 1
    # a folder whose only images are in the output folder is empty
    make_shapes(tmp_path / "only" / "out", n_per_class=1, image_size=16, classes=("square",))
    with pytest.raises(ImageFolderError, match="no image files in folder .*only"):
        collect_images(tmp_path / "only", exclude=tmp_path / "only" / "out")


def test_paths_come_back_as_the_user_gave_them(model_and_photos, tmp_path, monkeypatch):
    model, data = model_and_photos
    monkeypatch.chdir(Path(data.root).parent)
    relative = os.path.relpath(data.root)
    collected = collect_images([relative])
    assert collected and all(not os.path.isabs(p) and p.startswith(relative)
                             for p in collected)
    result = workflow.predict(model, [relative])
    assert result.paths == collected
    assert scoring.score_images(model, collected).paths == collected


# ------------------------------------------------------------------------- the engine


def test_predict_and_evaluate_score_through_the_engine(model_and_photos, monkeypatch):
    model, data = model_and_photos
    calls = []
    engine = scoring.score_images

    def spy(*args, **kwargs):
        calls.append(len(args[1]))
        return engine(*args, **kwargs)

    monkeypatch.setattr(workflow, "score_images", spy)
    predicted = workflow.predict(model, list(data.paths))
    with pytest.warns(UserWarning, match="trained on 8 of the 8"):
        evaluated = workflow.evaluate(model, data.root)
    assert calls == [len(data.paths), len(data.paths)]
    np.testing.assert_allclose(predicted.proba, model.predict_proba(data.paths), rtol=1e-5)
    assert evaluated.metrics["accuracy"] == pytest.approx(model.score(data.paths, data.target))


def test_fail_names_every_unreadable_file(model_and_photos, tmp_path):
    model, data = model_and_photos
    bad = [tmp_path / "a.jpg", tmp_path / "b.jpg"]
    for path in bad:
        path.write_bytes(b"<html>not a photo</html>")
    paths = [data.paths[0], *map(str, bad)]
    with pytest.raises(scoring.ImageLoadError, match=r"2 of 3 images.*a\.jpg.*b\.jpg"):
        scoring.score_images(model, paths, on_error="fail")
    skipped = scoring.score_images(model, paths, on_error="skip")
    assert skipped.paths == [data.paths[0]]
    assert [path for path, _ in skipped.unreadable] == [str(p) for p in bad]


# ------------------------------------------------------------------ one pipeline split


def test_split_pipeline_gives_the_features_step_and_the_head(model_and_photos):
    model, data = model_and_photos
    features, head = scoring.split_pipeline(model)
    assert features is model.steps[0][1] and head is model.steps[1][1]
    longer = make_pipeline(features, StandardScaler(), LogisticRegression())
    longer[1:].fit(features.transform(data.paths), data.target)
    features, head = scoring.split_pipeline(longer)
    assert isinstance(head, Pipeline) and head.steps == longer.steps[1:]
    joined = scoring.join_pipeline(longer, head)
    assert [name for name, _ in joined.steps] == [name for name, _ in longer.steps]
    np.testing.assert_allclose(joined.predict_proba(data.paths),
                               longer.predict_proba(data.paths))
    assert scoring.join_pipeline(model, model.steps[1][1]).steps == model.steps


def _slices_pipeline_steps(node):
    """Whether ``node`` takes part of a pipeline: ``x.steps[...]`` sliced, or indexed from
    the end or start to pick the head or the features (``steps[-1]``, ``steps[0]``,
    ``steps[1:]``)."""
    if not isinstance(node, ast.Subscript):
        return False
    value = node.value
    return isinstance(value, ast.Attribute) and value.attr == "steps" and (
        isinstance(node.slice, ast.Slice)
        or (isinstance(node.slice, ast.Constant) and node.slice.value in (0,))
        or (isinstance(node.slice, ast.UnaryOp) and isinstance(node.slice.operand, ast.Constant)))


#: Modules that read a pipeline's last step for one attribute, not to split it: the
#: classifier's calibrated threshold (sorting) and history/classes (report). persistence
#: owns the archive format, which names the two steps it saves.
NOT_A_SPLIT = {"sorting.py", "report.py", "persistence.py"}


def test_only_scoring_splits_a_pipeline_into_features_and_head():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and name != "scoring.py" and (
                    node.name.lstrip("_").startswith(("split_pipeline", "split_model",
                                                      "join_model", "join_pipeline"))):
                offenders.append(f"{name}:{node.lineno} defines {node.name}")
            if (name not in ("scoring.py", *NOT_A_SPLIT)
                    and _slices_pipeline_steps(node)):
                offenders.append(f"{name}:{node.lineno} slices a pipeline's steps")
    assert offenders == [], "use skanimal.scoring.split_pipeline: " + "; ".join(offenders)


# -------------------------------------------------------------------- one vocabulary


def test_on_error_raise_is_a_deprecated_name_of_fail(model_and_photos, tmp_path):
    model, data = model_and_photos
    with pytest.warns(FutureWarning, match="on_error='fail'"):
        assert check_on_error("raise") == "fail"
    with pytest.raises(ValueError, match="on_error must be one of"):
        check_on_error("ignore")
    with pytest.warns(FutureWarning, match="on_error='fail'"):
        load_image_folder(data.root, on_error="raise")
    bad = tmp_path / "photos" / "bad.jpg"
    bad.parent.mkdir()
    bad.write_bytes(b"not a photo")
    with pytest.warns(FutureWarning), pytest.raises(scoring.ImageLoadError, match="bad.jpg"):
        sort_images(model, bad.parent, tmp_path / "out", on_error="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_on_error("fail") == "fail" and check_on_error("skip") == "skip"


def test_every_ranked_class_csv_uses_label_i_probability_i(model_and_photos, tmp_path):
    model, data = model_and_photos
    sort_images(model, data.root, tmp_path / "out")
    with open(tmp_path / "out" / folders.PREDICTIONS_FILE, newline="") as handle:
        header = next(csv.reader(handle))
    assert header == ["source", "destination", *top_k_columns(3), "status", "review_reason",
                      "error"]
    assert top_k_columns(2) == ["label_1", "probability_1", "label_2",
                                        "probability_2"]


def test_predictions_csv_of_earlier_versions_still_reads(tmp_path):
    (tmp_path / folders.PREDICTIONS_FILE).write_text(
        "source,destination,label,confidence,label_2,confidence_2,label_3,confidence_3,"
        "status,error\n/a.jpg,/out/cat/a.jpg,cat,0.9,dog,0.07,fox,0.03,sorted,\n")
    [row] = folders.read_sort_predictions(tmp_path)
    assert row["label_1"] == "cat" and row["probability_1"] == "0.9"
    assert row["label_3"] == "fox" and row["probability_3"] == "0.03"
    folders.write_sort_predictions(tmp_path, [row])
    assert folders.read_sort_predictions(tmp_path) == [{**row, "review_reason": ""}]


# ----------------------------------------------------------------- one free-name scheme


def test_one_free_name_scheme_for_photos_and_models(tmp_path):
    names = moves.free_names("cat.jpg")
    assert [next(names) for _ in range(3)] == ["cat.jpg", "cat (1).jpg", "cat (2).jpg"]
    assert moves.copy_number("cat (12).jpg") == ("cat.jpg", 12)
    assert moves.copy_number("IMG-2023.jpg") == ("IMG-2023.jpg", 0)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "cat.jpg").write_bytes(b"one")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "cat.jpg").write_bytes(b"two")
    [copied] = moves.transfer([(tmp_path / "in" / "cat.jpg", tmp_path / "out")], mode="copy")
    model = tmp_path / "out" / "cat.joblib"
    workflow.save_model({}, model)
    # a photo and a model that collide get the same kind of name
    assert Path(copied).name == "cat (1).jpg"
    assert workflow.save_model_beside({}, model).name == "cat (1).joblib"


# ------------------------------------------------------------------- one folder layout


def test_review_and_sorting_share_the_layout_and_the_file_key(tmp_path):
    from skanimal import sorting
    from skanimal.review import catalog

    assert sorting.REVIEW_FOLDER is folders.REVIEW_FOLDER
    assert catalog.REVIEW_FOLDER is folders.REVIEW_FOLDER
    assert catalog.STATE_FOLDER is folders.STATE_FOLDER
    # The names are written once, in folders.py (a report folder's predictions.csv, a
    # different file, is report.py's).
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name in ("folders.py", "report.py"):
            continue
        constants = {node.value for node in ast.walk(ast.parse(path.read_text("utf-8")))
                     if isinstance(node, ast.Constant) and isinstance(node.value, str)}
        assert not constants & {"_review", "predictions.csv"}, path
    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"x")
    info = os.stat(photo)
    assert folders.file_key(photo) == folders.file_key(info) == (
        info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def test_thumbnails_show_what_the_model_sees(tmp_path):
    """A transparent photo's thumbnail is composited on white, as the model's pixels are."""
    from skanimal.images import decode_image
    from skanimal.review.thumbs import THUMB_SIZE, thumbnail

    pixels = np.zeros((40, 80, 4), np.uint8)
    pixels[:, :40] = (200, 0, 0, 255)  # opaque red on the left, transparent on the right
    photo = tmp_path / "clear.png"
    Image.fromarray(pixels, "RGBA").save(photo)
    with Image.open(thumbnail(photo, tmp_path / "thumbs")) as thumb:
        assert thumb.size == (80, 40) and max(thumb.size) <= THUMB_SIZE
        shown = np.asarray(thumb.convert("RGB"), dtype=int)
    seen = decode_image(photo.read_bytes(), (40, 80)).astype(int)
    assert np.abs(shown - seen).mean() < 4  # JPEG's error, not black against white
    assert shown[20, 70].min() > 240 and shown[20, 10, 0] > 180  # white where transparent
    big = tmp_path / "big.png"
    Image.new("RGB", (THUMB_SIZE * 3, THUMB_SIZE)).save(big)
    with Image.open(thumbnail(big, tmp_path / "thumbs")) as thumb:
        assert thumb.size == (THUMB_SIZE, round(THUMB_SIZE / 3))
