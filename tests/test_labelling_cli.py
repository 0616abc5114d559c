"""The sort, suggest and audit commands: thin layers over the functions, tested end to end."""

import csv
import io
import json
import shutil
from pathlib import Path

import joblib
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from skanimal import BottleneckFeatures, make_shapes
from skanimal.cli import main

from .conftest import SMALL


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-labelling")
    train = make_shapes(root / "train", n_per_class=8, image_size=40)
    model = make_pipeline(BottleneckFeatures(weights=None, image_size=SMALL, pooling="avg"),
                          LogisticRegression(max_iter=500))
    model.fit(train.paths, train.target)
    joblib.dump(model, root / "model.joblib")
    return root / "model.joblib"


@pytest.fixture
def pool(tmp_path):
    return make_shapes(tmp_path / "pool", n_per_class=4, image_size=40, random_state=5)


def test_sort_move_then_undo(model_file, pool, tmp_path, capsys):
    before = sorted(Path(p).read_bytes() for p in pool.paths)
    assert main(["sort", str(model_file), pool.root, "--into", str(tmp_path / "out"),
                 "--move", "--min-confidence", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "Threshold: 0.5 (given" in out and "Moved 16 photo(s)" in out
    assert not list(Path(pool.root).rglob("*.jpg"))
    rows = list(csv.DictReader(open(tmp_path / "out" / "predictions.csv")))
    assert len(rows) == 16 and rows[0]["source"]
    assert main(["sort", "--undo", str(tmp_path / "out")]) == 0
    assert "Restored 16 photo(s)" in capsys.readouterr().out
    assert sorted(Path(p).read_bytes() for p in pool.paths) == before


def test_sorting_review_again_moves_within_out(model_file, pool, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["sort", str(model_file), pool.root, "--into", str(out),
                 "--min-confidence", "1"]) == 0
    assert len(list((out / "_review").iterdir())) == 16
    capsys.readouterr()
    assert main(["sort", str(model_file), str(out / "_review"), "--into", str(out),
                 "--min-confidence", "0"]) == 0
    assert "Moved 16 photo(s) already in" in capsys.readouterr().out
    assert not list((out / "_review").iterdir())
    assert len([p for p in out.rglob("*.jpg") if ".skanimal" not in p.parts]) == 16
    assert len(list(csv.DictReader(open(out / "predictions.csv")))) == 16


def test_sort_says_which_threshold(model_file, pool, tmp_path, capsys):
    assert main(["sort", str(model_file), pool.root, "--into", str(tmp_path / "out")]) == 0
    assert "Threshold: 0.9 (this kind of classifier is not calibrated; using 0.9)" in \
        capsys.readouterr().out
    assert all(Path(p).exists() for p in pool.paths)  # --copy by default


@pytest.mark.parametrize("argv, message", [
    (["sort", "m.joblib", "--into", "o"], "MODEL SOURCE"),
    (["sort", "m.joblib", "src"], "--into"),
    (["sort", "--undo", "o", "m.joblib"], "takes no"),
    (["sort", "m.joblib", "src", "--into", "o", "--min-confidence", "2"], "between 0 and 1"),
    (["sort", "m.joblib", "src", "--into", "o", "--copy", "--move"], "not allowed"),
    (["audit", "d", "--model", "m", "--backbone", "vgg16"], "leave out"),
])
def test_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_data_errors_are_one_line(model_file, tmp_path, capsys):
    assert main(["sort", str(model_file), str(tmp_path / "nowhere"), "--into",
                 str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("skanimal: error:") and "nowhere" in err and "\n" not in err
    assert main(["sort", "--undo", str(tmp_path / "o")]) == 1
    assert "no sort to undo" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["predict", "{model}", "{empty}"],
                                     ["sort", "{model}", "{empty}", "--into", "{out}"],
                                     ["suggest", "{model}", "{empty}", "-n", "2"]])
def test_an_empty_folder_exits_1_naming_it(command, model_file, tmp_path, capsys):
    # One collector, one rule: 'sort' of an empty folder was silently nothing (exit 0).
    (tmp_path / "empty").mkdir()
    argv = [part.format(model=model_file, empty=tmp_path / "empty", out=tmp_path / "out")
            for part in command]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert "no image files in folder" in err and "empty" in err and "\n" not in err


def test_suggest_formats_and_into(model_file, pool, tmp_path, capsys):
    assert main(["suggest", str(model_file), pool.root, "-n", "3", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 3 and list(rows[0])[:2] == ["path", "margin"]
    assert main(["suggest", str(model_file), pool.root, "-n", "2", "--format", "json",
                 "--into", str(tmp_path / "label-me")]) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert [Path(r["path"]).name for r in rows] == \
        [p.name for p in sorted((tmp_path / "label-me").iterdir(),
                                key=lambda p: [Path(r["path"]).name for r in rows].index(p.name))]
    assert "Copied 2 photo(s)" in captured.err


def test_audit_json_and_csv(pool, tmp_path, capsys):
    root = Path(pool.root)
    shutil.copy(root / "circle" / "circle_000.jpg", root / "square" / "dup.jpg")
    argv = ["audit", str(root), "--weights", "none", "--image-size", "32", "--format"]
    assert main(argv + ["json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"suspects", "duplicates", "near_duplicates", "outliers",
                           "outlier_threshold", "unreadable"}
    assert {Path(r["path"]).name for r in report["duplicates"]} == {"circle_000.jpg", "dup.jpg"}
    assert all("path" in r for r in report["suspects"])
    assert all(r["distance"] > report["outlier_threshold"] for r in report["outliers"])
    assert main(argv + ["table"]) == 0
    table = capsys.readouterr().out
    n_images = sum(1 for p in root.rglob("*") if p.is_file())
    assert f"outliers: {len(report['outliers'])}\n" in table
    groups = len({r["group"] for r in report["duplicates"]})
    assert f"duplicates: {len(report['duplicates'])} photos in {groups} group(s)" in table
    assert f"near-duplicates: {len(report['near_duplicates'])} pair(s)" in table
    assert f"above {report['outlier_threshold']:.4f}, the upper fence of the {n_images} " in table
    assert main(argv + ["csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {r["finding"] for r in rows} >= {"duplicate"} and "path" in rows[0]


def test_unreadable_photos_are_listed_by_name_and_left_in_place(model_file, pool, tmp_path,
                                                                capsys):
    """Every bad file is named (not X[i]) at the end, the rest is sorted, and the status is 1;
    --on-error fail stops before anything is placed."""
    bad = [Path(pool.root) / "broken.jpg", Path(pool.root) / "circle" / "empty.jpg"]
    bad[0].write_text("not a jpeg")
    bad[1].write_bytes(b"")
    out = tmp_path / "out"
    assert main(["sort", str(model_file), pool.root, "--into", str(out), "--move",
                 "--min-confidence", "0.5"]) == 1
    captured = capsys.readouterr()
    assert "Moved 16 photo(s)" in captured.out
    assert "left in place 2 unreadable image(s)" in captured.err
    for path in bad:
        assert str(path) in captured.err and path.exists()
    assert "X[" not in captured.err

    assert main(["suggest", str(model_file), pool.root, "-n", "2"]) == 1
    err = capsys.readouterr().err
    assert "skipped 2 unreadable image(s)" in err and "X[" not in err

    assert main(["sort", str(model_file), pool.root, "--into", str(tmp_path / "strict"),
                 "--on-error", "fail"]) == 1
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "X[" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "strict" / "predictions.csv").exists()
