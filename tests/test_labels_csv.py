"""load_image_csv: labels from a CSV file (Kaggle-style ``file,label``, or a sort's own
predictions.csv), and ``skanimal train --labels``."""

import os
import warnings

import numpy as np
import pytest
from PIL import Image

from skanimal import ImageFolderError, load_image_csv, make_shapes
from skanimal.exceptions import LabelsFileError


def _write(path, colour=(255, 0, 0)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)


def _csv(path, text):
    path.write_text(text)
    return path


def test_same_bunch_as_the_folder_it_describes(tmp_path):
    data = make_shapes(tmp_path / "shapes", n_per_class=3, image_size=16,
                       classes=("square", "circle"))
    rows = ["file,label"] + [f"{os.path.relpath(p, tmp_path)},{t}"
                             for p, t in zip(data.paths[::-1], data.target[::-1])]
    listed = load_image_csv(_csv(tmp_path / "labels.csv", "\n".join(rows) + "\n"))
    assert type(listed) is type(data)
    assert sorted(listed.keys()) == sorted(data.keys())
    assert listed.target_names == data.target_names == ["circle", "square"]
    assert listed.root == os.fspath(tmp_path)
    pairs = sorted(zip(map(os.path.normpath, data.paths), data.target))
    assert sorted(zip(listed.paths, listed.target)) == pairs
    assert listed.paths.dtype == data.paths.dtype and listed.target.dtype == data.target.dtype
    assert list(listed.paths) == [p for p, _ in sorted(pairs, reverse=True)]  # file order


@pytest.mark.parametrize("header", ["path,label", "filename,class", "Source,Label",
                                    "file,class"])
def test_column_names(tmp_path, header):
    _write(tmp_path / "a.png")
    _write(tmp_path / "b.png")
    data = load_image_csv(_csv(tmp_path / "l.csv", f"{header}\na.png,cat\nb.png,dog\n"))
    assert list(data.target) == ["cat", "dog"]


def test_absolute_paths_and_another_root(tmp_path):
    _write(tmp_path / "photos" / "a.png")
    _write(tmp_path / "elsewhere" / "b.png")
    b = tmp_path / "elsewhere" / "b.png"
    (tmp_path / "meta").mkdir()
    csv = _csv(tmp_path / "meta" / "l.csv", f"file,label\na.png,cat\n{b},dog\n")
    data = load_image_csv(csv, root=tmp_path / "photos")
    assert list(data.paths) == [os.fspath(tmp_path / "photos" / "a.png"), os.fspath(b)]
    with pytest.raises(LabelsFileError, match="'a.png' does not exist"):
        load_image_csv(csv)  # relative to the CSV's own folder by default


def test_every_bad_row_in_one_error(tmp_path):
    for name in ("a", "b", "c"):
        _write(tmp_path / f"{name}.png")
    csv = _csv(tmp_path / "l.csv", "file,label\n"
               "a.png,cat\n"        # line 2: bad, a.png is also a dog on line 6
               "gone.png,cat\n"     # line 3: missing
               "b.png,\n"           # line 4: empty label
               "c.png,dog\n"        # line 5: fine
               "a.png,dog\n"        # line 6: bad
               ",dog\n"             # line 7: no path
               "c.png,dog\n")       # line 8: same label again, used once
    with pytest.raises(LabelsFileError) as caught:
        load_image_csv(csv)
    error = caught.value
    assert [line for line, _ in error.problems] == [2, 3, 4, 6, 7]
    message = str(error)
    assert "\n" not in message and "5 bad row(s)" in message
    for text in ("line 2: 'a.png' is labelled 'cat' here but 'dog' on line 6",
                 "line 3: 'gone.png' does not exist", "line 4: 'b.png' has an empty label",
                 "line 6: 'a.png' is labelled 'dog' here but 'cat' on line 2",
                 "line 7: no photo path"):
        assert text in message
    assert isinstance(error, ImageFolderError)

    with pytest.warns(UserWarning, match="left out 5 bad row"):
        data = load_image_csv(csv, on_error="skip")
    assert [os.path.basename(p) for p in data.paths] == ["c.png"]


def test_many_bad_rows_are_counted_past_the_limit(tmp_path):
    csv = _csv(tmp_path / "l.csv",
               "file,label\n" + "".join(f"m{i}.png,cat\n" for i in range(25)))
    with pytest.raises(LabelsFileError) as caught:
        load_image_csv(csv)
    assert len(caught.value.problems) == 25
    assert "line 21: 'm19.png'" in str(caught.value)
    assert "m20.png" not in str(caught.value) and "... and 5 more" in str(caught.value)


def test_skip_drops_unreadable_images(tmp_path):
    _write(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"not an image")
    csv = _csv(tmp_path / "l.csv", "file,label\na.png,cat\nb.png,dog\n")
    assert len(load_image_csv(csv).paths) == 2  # "fail": the transformer raises later
    with pytest.warns(UserWarning, match="Skipped 1 unreadable"):
        data = load_image_csv(csv, on_error="skip")
    assert list(data.target) == ["cat"]


@pytest.mark.parametrize("text, match", [
    ("name,label\na.png,cat\n", r"no photo column \(path, file"),
    ("file,kind\na.png,cat\n", r"no label column \(label, class"),
    ("file,label\n", "lists no photo"),
])
def test_bad_files(tmp_path, text, match):
    _write(tmp_path / "a.png")
    with pytest.raises(ImageFolderError, match=match):
        load_image_csv(_csv(tmp_path / "l.csv", text))


def test_missing_file_and_root(tmp_path):
    with pytest.raises(ImageFolderError, match="does not exist"):
        load_image_csv(tmp_path / "nope.csv")
    csv = _csv(tmp_path / "l.csv", "file,label\n")
    with pytest.raises(ImageFolderError, match="photo folder .* does not exist"):
        load_image_csv(csv, root=tmp_path / "nope")
    with pytest.raises(ValueError, match="on_error"):
        load_image_csv(csv, on_error="ignore")


def test_a_sorts_predictions_csv(tmp_path):
    """Where the photo is now (destination), the model's class (label_1), sorted rows only."""
    out = tmp_path / "out"
    _write(out / "cat" / "a.png")
    _write(out / "dog" / "b.png")
    _write(out / "_review" / "c.png")
    _csv(out / "predictions.csv",
         "source,destination,label_1,probability_1,label_2,probability_2,status,error\n"
         f"/gone/a.png,{out}/cat/a.png,cat,0.99,dog,0.01,sorted,\n"
         f"/gone/b.png,{out}/dog/b.png,dog,0.98,cat,0.02,sorted,\n"
         f"/gone/c.png,{out}/_review/c.png,cat,0.51,dog,0.49,review,\n"
         "/gone/d.png,,,,,,unreadable,cannot decode\n")
    with pytest.warns(UserWarning, match="left out 2 row.s. of .* not .sorted."):
        data = load_image_csv(out / "predictions.csv")
    assert list(data.target) == ["cat", "dog"]
    assert list(data.paths) == [os.fspath(out / "cat" / "a.png"), os.fspath(out / "dog" / "b.png")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a plain file,label CSV warns of nothing
        _csv(tmp_path / "plain.csv", f"file,label\n{out}/cat/a.png,cat\n")
        assert load_image_csv(tmp_path / "plain.csv").target_names == ["cat"]


def test_labels_from_a_real_sort(tmp_path):
    """The predictions.csv `skanimal sort` writes trains a model, the same photos."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from skanimal import BottleneckFeatures
    from skanimal.sorting import sort_images

    data = make_shapes(tmp_path / "shapes", n_per_class=4, image_size=32,
                       classes=("circle", "square"))
    model = make_pipeline(BottleneckFeatures("mobilenet_v2", weights=None, image_size=32),
                          LogisticRegression(max_iter=500)).fit(data.paths, data.target)
    result = sort_images(model, tmp_path / "shapes", tmp_path / "out", min_confidence=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        listed = load_image_csv(result.predictions)
    sorted_rows = [r for r in result.rows if r["status"] == "sorted"]
    assert len(listed.paths) == len(sorted_rows) == 8
    assert sorted(listed.paths) == sorted(os.path.normpath(r["destination"])
                                          for r in sorted_rows)
    assert all(os.path.basename(os.path.dirname(p)) == t
               for p, t in zip(listed.paths, listed.target))
    np.testing.assert_array_equal(
        np.sort(listed.target), np.sort(model.predict(data.paths)))


def test_an_earlier_versions_predictions_csv(tmp_path):
    """label/confidence columns (before label_1/probability_1): still the model's guess."""
    _write(tmp_path / "cat" / "a.png")
    _write(tmp_path / "_review" / "b.png")
    _csv(tmp_path / "predictions.csv", "source,destination,label,confidence,status\n"
         f"/x/a.png,{tmp_path}/cat/a.png,cat,0.99,sorted\n"
         f"/x/b.png,{tmp_path}/_review/b.png,dog,0.40,review\n")
    with pytest.warns(UserWarning, match="left out 1 row.s. of .* not .sorted."):
        data = load_image_csv(tmp_path / "predictions.csv")
    assert list(data.target) == ["cat"]
