"""The ``skanimal`` command, run for real in subprocesses on a generated image set.

TensorFlow makes each subprocess cost several seconds, so one ``train`` run (module fixture)
serves every test that needs a model, and cheap checks (``--help``, argument errors, the
table output) call :func:`skanimal.cli.main` in-process. Tests that run a subprocess or need
the trained model are marked ``slow``; the workflow under the commands is tested in-process
by ``test_workflow.py``.
"""

import csv
import importlib.util
import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest

from skanimal import cache_info, make_shapes
from skanimal._tfstartup import NoticeFilter
from skanimal.cli import main
from skanimal.report import REPORT_FILES

COMMON = ["--weights", "none", "--image-size", "32"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def env(workdir):
    environment = dict(os.environ)
    environment["SKANIMAL_CACHE_DIR"] = str(workdir / "cache")
    environment.pop("PYTHONWARNINGS", None)
    return environment


@pytest.fixture(scope="module")
def data_dir(workdir):
    make_shapes(workdir / "shapes", n_per_class=15, image_size=32)
    return workdir / "shapes"


def run(env, *args, entry_point=False, cwd=None):
    if entry_point:
        script = Path(sys.executable).parent / "skanimal"
        if not script.exists():
            pytest.skip(f"console script not installed at {script} (pip install -e .)")
        command = [str(script), *map(str, args)]
    else:
        command = [sys.executable, "-m", "skanimal", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300,
                          cwd=cwd)


def stderr_lines(result):
    """stderr without TensorFlow's start-up log lines (printed if `import skanimal` loads TF)."""
    notices = NoticeFilter()  # the one list of notices, skanimal._tfstartup's
    return [line for line in result.stderr.splitlines() if not notices.is_notice(line)]


def assert_one_line_error(result, *fragments):
    assert result.returncode == 1, result.stderr
    lines = stderr_lines(result)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("skanimal: error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def trained(env, workdir, data_dir):
    model = workdir / "models" / "shapes.joblib"
    report = workdir / "train-report"
    result = run(env, "train", data_dir, "-o", model, *COMMON, "--epochs", "3",
                 "--learning-rate", "1e-3", "--val-size", "0.2", "--test-size", "0.2",
                 "--report-dir", report)
    assert result.returncode == 0, result.stderr
    return {"result": result, "model": model, "report": report}


# -------------------------------------------------------------------------------- train


@pytest.mark.slow
def test_train_prints_scores_and_saves_model_and_report(trained, data_dir):
    out = trained["result"].stdout
    assert "Loaded 60 images of 4 classes" in out
    assert "36 train, 12 validation, 12 test" in out
    for part in ("Validation", "Test"):
        line = next(line for line in out.splitlines() if line.startswith(part))
        assert "accuracy" in line and "loss" in line
    assert f"Saved the model to {trained['model']}" in out
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(trained["model"].stat().st_mode) == 0o666 & ~umask  # not 0600

    pipe = joblib.load(trained["model"])
    assert [name for name, _ in pipe.steps] == ["bottleneckfeatures", "bottleneckclassifier"]
    assert pipe[0].verbose == 0 and pipe[0].image_size == (32, 32)
    assert pipe[-1].epochs == 3
    assert {"val_loss", "val_accuracy"} <= set(pipe[-1].history_)
    assert set(pipe.predict([str(next((data_dir / "circle").iterdir()))])) <= set(
        pipe.classes_)

    report = trained["report"]
    assert sorted(p.name for p in report.iterdir()) == sorted(REPORT_FILES)
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["sizes"] == {"train": 36, "val": 12, "test": 12}
    assert set(metrics["timings"]) >= {"extract_s", "fit_s", "total_s"}
    assert metrics["classes"] == ["circle", "cross", "square", "triangle"]
    test_line = next(line for line in out.splitlines() if line.startswith("Test"))
    assert f"accuracy {metrics['accuracy']:.3f}" in test_line
    assert set(metrics["validation"]) == {"accuracy", "log_loss"}


@pytest.mark.slow
def test_train_stderr_is_quiet(trained):
    stderr = trained["result"].stderr
    assert "Traceback" not in stderr
    # Nothing from TensorFlow, Keras or Python warnings, not even TensorFlow's start-up
    # logging: `import skanimal` does not import TensorFlow before the CLI takes control.
    notices = NoticeFilter()
    assert [line for line in stderr.splitlines() if notices.is_notice(line)] == [], stderr
    assert stderr.strip() == "", stderr


@pytest.mark.slow
def test_train_missing_data_dir_is_a_one_line_error(env, workdir):
    missing = workdir / "no-such-folder"
    result = run(env, "train", missing, "-o", workdir / "never.joblib", *COMMON)
    assert_one_line_error(result, str(missing))
    assert result.stdout == ""
    assert not (workdir / "never.joblib").exists()


def test_data_errors_before_any_work_are_one_line_in_process(tmp_path, capsys):
    missing = tmp_path / "no-such-folder"
    assert main(["train", str(missing), "-o", str(tmp_path / "m.joblib"), *COMMON]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("skanimal: error: ") and str(missing) in err
    assert main(["predict", str(tmp_path / "m.joblib"), str(missing)]) == 1
    assert capsys.readouterr().err == f"skanimal: error: {str(missing)!r} does not exist\n"
    assert main(["evaluate", str(tmp_path / "m.joblib"), str(missing)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("skanimal: error: model file ") and "does not exist" in err
    assert not (tmp_path / "m.joblib").exists()


# ----------------------------------------------------------------------------- evaluate


@pytest.mark.slow
def test_evaluate_prints_metrics_and_writes_report(env, trained, data_dir, workdir):
    report = workdir / "eval-report"
    result = run(env, "evaluate", trained["model"], data_dir, "--report-dir", report)
    assert result.returncode == 0, result.stderr
    assert "Accuracy:" in result.stdout and "Log loss:" in result.stdout
    for name in ("circle", "cross", "square", "triangle", "precision", "recall", "f1-score"):
        assert name in result.stdout
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["n_samples"] == 60
    assert f"Accuracy: {metrics['accuracy']:.4f}" in result.stdout
    assert sorted(p.name for p in report.iterdir()) == sorted(REPORT_FILES)


@pytest.mark.slow
def test_evaluate_unknown_class_and_bad_model_file(trained, data_dir, tmp_path, capsys):
    extra = tmp_path / "extra"
    make_shapes(extra, n_per_class=2, image_size=32, classes=("circle",))
    (extra / "hexagon").mkdir()
    (extra / "circle" / "circle_000.jpg").replace(extra / "hexagon" / "hexagon.jpg")
    assert main(["evaluate", str(trained["model"]), str(extra)]) == 1
    assert "hexagon" in capsys.readouterr().err

    not_a_model = tmp_path / "model.joblib"
    joblib.dump({"just": "a dict"}, not_a_model)
    assert main(["evaluate", str(not_a_model), str(extra)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("skanimal: error: ") and "not a skanimal model" in err
    assert err.count("\n") == 1


def test_evaluate_model_with_integer_classes_on_named_folders(data_dir, tmp_path, capsys):
    # Folders "circle", ... vs a model trained in Python on labels 0-3: a one-line error.
    import numpy as np
    from sklearn.pipeline import make_pipeline

    from skanimal import BottleneckClassifier, BottleneckFeatures, load_image_folder

    data = load_image_folder(data_dir)
    codes = np.unique(data.target, return_inverse=True)[1]
    pipe = make_pipeline(BottleneckFeatures(weights=None, image_size=(32, 32)),
                         BottleneckClassifier(epochs=1, hidden_layer_sizes=(8,)))
    model = tmp_path / "int-labels.joblib"
    joblib.dump(pipe.fit(data.paths, codes), model)
    assert main(["evaluate", str(model), str(data_dir)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("skanimal: error: ") and err.count("\n") == 1
    assert "not trained on: ['circle', 'cross', 'square', 'triangle']" in err
    assert "the model knows [0, 1, 2, 3]" in err


# ------------------------------------------------------------------------------ predict


@pytest.fixture(scope="module")
def new_images(workdir):
    """Images the cache has never seen (another seed), so predict must extract features."""
    make_shapes(workdir / "new", n_per_class=2, image_size=32, random_state=1)
    return workdir / "new"


@pytest.mark.slow
def test_predict_csv_from_folder_and_file(env, trained, new_images):
    single = new_images / "square" / "square_000.jpg"
    result = run(env, "predict", trained["model"], new_images / "circle", single,
                 "--top-k", "2", "--format", "csv", "--progress")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["path"] for row in rows] == [
        str(new_images / "circle" / "circle_000.jpg"),
        str(new_images / "circle" / "circle_001.jpg"),
        str(single),
    ]
    assert list(rows[0]) == ["path", "label_1", "probability_1", "label_2", "probability_2",
                             "unlike_training"]
    assert {row["unlike_training"] for row in rows} <= {"true", "false"}
    classes = {"circle", "cross", "square", "triangle"}
    for row in rows:
        assert {row["label_1"], row["label_2"]} <= classes
        assert 1 >= float(row["probability_1"]) >= float(row["probability_2"]) >= 0
    assert "Predicting:" in result.stderr  # --progress shows the bar


@pytest.mark.slow
def test_predict_json_matches_the_model(trained, new_images, capsys):
    assert main(["predict", str(trained["model"]), str(new_images), "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == 8
    pipe = joblib.load(trained["model"])
    paths = [record["path"] for record in records]
    proba = pipe.predict_proba(paths)
    for record, row in zip(records, proba):
        assert [p["label"] for p in record["predictions"]] == list(
            pipe.classes_[np.argsort(-row, kind="stable")[:3]])
        assert record["predictions"][0]["probability"] == pytest.approx(row.max(), abs=1e-5)
    unlike = pipe[-1].novelty_.is_novel(pipe[0].transform(paths))
    assert [record["unlike_training"] for record in records] == unlike.tolist()


@pytest.mark.slow
def test_predict_table_in_process(trained, new_images, capsys):
    image = new_images / "cross" / "cross_001.jpg"
    assert main(["predict", str(trained["model"]), str(image), "--top-k", "9"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["PATH", "TOP", "1", "TOP", "2", "TOP", "3", "TOP", "4",
                              "UNLIKE", "TRAINING"]
    assert row.startswith(str(image))
    assert len(row.split()) == 1 + 2 * 4 + 1  # top-k capped at the number of classes
    assert row.split()[-1] in {"yes", "no"}


@pytest.mark.slow
def test_predict_non_image_is_a_one_line_error(env, trained, workdir):
    text_file = workdir / "notes.txt"
    text_file.write_text("not an image\n")
    result = run(env, "predict", trained["model"], text_file)
    assert_one_line_error(result, str(text_file))
    assert result.stdout == ""


# --------------------------------------------------------------------------------- demo


@pytest.mark.slow
def test_demo_runs_offline_and_prints_accuracy(env, tmp_path):
    result = run(env, "demo", "--workdir", tmp_path)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines()
                if line.startswith("Held-out accuracy:"))
    assert 0 <= float(line.split()[2]) <= 1
    assert "same predictions as before saving" in result.stdout
    assert (tmp_path / "shapes.joblib").exists()
    assert (tmp_path / "report" / "metrics.json").exists()


# -------------------------------------------------------------------------------- cache


@pytest.mark.slow
def test_cache_info_and_clear(env, tmp_path, capsys):
    from skanimal import BottleneckFeatures

    BottleneckFeatures(weights=None, image_size=(32, 32), cache=tmp_path).fit_transform(
        np.zeros((2, 32, 32, 3), dtype=np.uint8) + np.arange(2)[:, None, None, None])
    assert cache_info(tmp_path)["entries"] == 2
    assert main(["cache", "info", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path) in out and "2 feature vectors" in out

    result = run(env, "cache", "clear", "--dir", tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"Removed 2 cached feature vectors from {tmp_path}" in result.stdout
    assert cache_info(tmp_path)["entries"] == 0


@pytest.mark.slow
def test_cache_info_defaults_to_skanimal_cache_dir(trained, workdir, monkeypatch, capsys):
    monkeypatch.setenv("SKANIMAL_CACHE_DIR", str(workdir / "cache"))
    assert main(["cache", "info"]) == 0
    entries = cache_info(workdir / "cache")["entries"]
    assert entries > 0
    assert f"{entries} feature vectors" in capsys.readouterr().out


# ---------------------------------------------------------------------- usage and help


@pytest.mark.slow
def test_usage_error_exits_2_with_the_console_script(env, data_dir):
    result = run(env, "train", data_dir, "--epochs", "0", entry_point=True)
    assert result.returncode == 2, result.stderr
    assert "usage: skanimal train" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("argv", [
    [], ["train"], ["evaluate"], ["predict"], ["demo"], ["cache"], ["cache", "info"],
    ["cache", "clear"],
])
def test_help_of_every_command(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {' '.join(['skanimal', *argv])}")


@pytest.mark.parametrize("argv", [
    [], ["bogus"], ["train", "data"], ["predict", "model.joblib"],
    ["predict", "m", "x.jpg", "--format", "xml"], ["train", "d", "-o", "m", "--val-size", "1.5"],
    ["train", "d", "-o", "m", "--pooling", "mean"], ["cache"],
    ["train", "d", "-o", "m", "--image-size", "16"],
    ["train", "d", "-o", "m", "--test-size", "0", "--report-dir", "r"],
])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "usage: skanimal" in capsys.readouterr().err


def test_train_from_two_photos_per_class_with_a_logistic_head(tmp_path, capsys):
    # issue 11: 5 per class used to fail with "cannot split 30 images"; 2 per class now
    # trains on everything and says what it did with the validation and test parts
    make_shapes(tmp_path / "tiny", n_per_class=2, image_size=32)
    model = tmp_path / "tiny.joblib"
    assert main(["train", str(tmp_path / "tiny"), "-o", str(model), *COMMON,
                 "--head", "logistic"]) == 0
    out = capsys.readouterr().out
    assert "Left out the validation part" in out and "Left out the test part" in out
    assert "Trained a logistic-regression head" in out and f"Saved the model to {model}" in out
    assert type(joblib.load(model)[-1]).__name__ == "LogisticRegression"


# ------------------------------------------------ train --labels, --precision, --progress
@pytest.fixture(scope="module")
def flat_photos(workdir):
    """Photos in one folder, classes only in labels.csv beside them (Kaggle's layout)."""
    data = make_shapes(workdir / "to-flatten", n_per_class=4, image_size=32)
    flat = workdir / "kaggle" / "images"
    flat.mkdir(parents=True)
    rows = ["file,label"]
    for number, (path, label) in enumerate(zip(data.paths, data.target)):
        name = f"img{number:03d}.jpg"
        os.link(path, flat / name)
        rows.append(f"images/{name},{label}")
    (workdir / "kaggle" / "labels.csv").write_text("\n".join(rows) + "\n")
    return workdir / "kaggle"


def test_train_labels_csv_the_users_steps(flat_photos, tmp_path, capsys):
    model = tmp_path / "m.joblib"
    assert main(["train", "--labels", str(flat_photos / "labels.csv"), "-o", str(model),
                 *COMMON, "--epochs", "2"]) == 0
    out, err = capsys.readouterr()
    assert "Loaded 16 images of 4 classes from" in out and "circle 4, cross 4" in out
    assert "Training the head" not in err  # not a terminal: no bar
    assert list(joblib.load(model).classes_) == ["circle", "cross", "square", "triangle"]
    # DATA_DIR with --labels: where the relative paths start
    (tmp_path / "meta").mkdir()
    labels = tmp_path / "meta" / "labels.csv"
    labels.write_text((flat_photos / "labels.csv").read_text().replace("images/", ""))
    assert main(["train", str(flat_photos / "images"), "--labels", str(labels), "-o",
                 str(model), *COMMON, "--head", "logistic"]) == 0
    assert "Loaded 16 images of 4 classes" in capsys.readouterr().out


def test_train_labels_bad_rows_are_one_line(flat_photos, tmp_path, capsys):
    labels = tmp_path / "labels.csv"
    labels.write_text("file,label\nimages/img000.jpg,circle\nimages/nope.jpg,cross\n"
                      "images/img000.jpg,square\n")
    assert main(["train", str(flat_photos), "--labels", str(labels), "-o",
                 str(tmp_path / "m.joblib"), *COMMON]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("skanimal: error: labels file")
    assert "3 bad row(s): line 2: " in err[0] and "line 3: 'images/nope.jpg' does not exist" \
        in err[0] and "line 4: 'images/img000.jpg' is labelled 'square' here" in err[0]
    with pytest.raises(SystemExit) as exit_info:  # neither DATA_DIR nor --labels
        main(["train", "-o", str(tmp_path / "m.joblib"), *COMMON])
    assert exit_info.value.code == 2
    assert "give DATA_DIR (one sub-folder per class) or --labels" in capsys.readouterr().err


def test_train_on_a_sorts_predictions_csv(flat_photos, tmp_path, capsys):
    model = tmp_path / "m.joblib"
    assert main(["train", "--labels", str(flat_photos / "labels.csv"), "-o", str(model),
                 *COMMON, "--head", "logistic"]) == 0
    assert main(["sort", str(model), str(flat_photos / "images"), "--into",
                 str(tmp_path / "out"), "--min-confidence", "0"]) == 0
    capsys.readouterr()
    again = tmp_path / "again.joblib"
    assert main(["train", "--labels", str(tmp_path / "out" / "predictions.csv"), "-o",
                 str(again), *COMMON, "--head", "logistic", "--val-size", "0",
                 "--test-size", "0"]) == 0
    out = capsys.readouterr().out
    assert "Loaded 16 images" in out  # every photo sorted, read where it is now
    pipe = joblib.load(again)
    sorted_photos = sorted((tmp_path / "out").glob("*/*.jpg"))
    assert len(sorted_photos) == 16
    np.testing.assert_array_equal(pipe.predict([str(p) for p in sorted_photos]),
                                  joblib.load(model).predict([str(p) for p in sorted_photos]))


def test_train_precision_bfloat16_predicts_through_it(flat_photos, tmp_path, capsys):
    model = tmp_path / "bf16.joblib"
    assert main(["train", "--labels", str(flat_photos / "labels.csv"), "-o", str(model),
                 *COMMON, "--head", "logistic", "--precision", "bfloat16"]) == 0
    assert "bfloat16" in capsys.readouterr().out
    pipe = joblib.load(model)
    assert pipe.steps[0][1].precision == "bfloat16"
    images = flat_photos / "images"
    assert main(["predict", str(model), str(images), "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    paths = [record["path"] for record in records]
    assert len(paths) == 16
    proba = pipe.predict_proba(paths)
    np.testing.assert_allclose([r["predictions"][0]["probability"] for r in records],
                               proba.max(axis=1), rtol=1e-5)
    float32 = pipe.steps[0][1].set_params(precision="float32").transform(paths)
    bfloat16 = pipe.steps[0][1].set_params(precision="bfloat16").transform(paths)
    assert not np.allclose(float32, bfloat16, rtol=0, atol=1e-6)  # the precision matters


def test_train_int8_without_openvino_is_one_line(flat_photos, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` now fails
    assert main(["train", "--labels", str(flat_photos / "labels.csv"), "-o",
                 str(tmp_path / "m.joblib"), *COMMON, "--precision", "int8"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(err) == 1
    assert err[0].startswith("skanimal: error: --precision int8:")
    assert 'pip install "skanimal[openvino]"' in err[0]
    assert not (tmp_path / "m.joblib").exists()


@pytest.mark.slow
@pytest.mark.skipif(any(importlib.util.find_spec(name) is None for name in ("openvino", "nncf")),
                    reason='OpenVINO/NNCF not installed (pip install "skanimal[openvino]")')
def test_train_int8_end_to_end(flat_photos, tmp_path, capsys):
    model = tmp_path / "int8.joblib"
    assert main(["train", "--labels", str(flat_photos / "labels.csv"), "-o", str(model),
                 *COMMON, "--head", "logistic", "--precision", "int8"]) == 0
    pipe = joblib.load(model)
    assert pipe.steps[0][1].precision == "int8"
    assert pipe.steps[0][1].quantized_backbone_ is not None
    capsys.readouterr()
    assert main(["sort", str(model), str(flat_photos / "images"), "--into",
                 str(tmp_path / "out"), "--min-confidence", "0"]) == 0
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "predictions.csv").read_text())))
    images = [row["destination"] for row in rows]
    assert len(rows) == 16 and all(os.path.exists(p) for p in images)
    assert [row["label_1"] for row in rows] == list(pipe.predict([r["source"] for r in rows]))


@pytest.mark.slow
def test_train_progress_draws_the_head_bar_on_stderr(flat_photos, tmp_path, capsys):
    labels = str(flat_photos / "labels.csv")
    assert main(["train", "--labels", labels, "-o", str(tmp_path / "a.joblib"), *COMMON,
                 "--epochs", "3", "--progress"]) == 0
    shown = capsys.readouterr()
    assert "Training the head" in shown.err and "3/3" in shown.err
    assert main(["train", "--labels", labels, "-o", str(tmp_path / "b.joblib"), *COMMON,
                 "--epochs", "3"]) == 0
    quiet = capsys.readouterr()
    assert "Training the head" not in quiet.err and "Extracting" not in quiet.err
    drop_times = [line for line in shown.out.splitlines() if " s" not in line]
    assert drop_times == [line.replace("b.joblib", "a.joblib")
                          for line in quiet.out.splitlines() if " s" not in line]


def test_sort_progress_draws_a_placing_bar_same_result(flat_photos, tmp_path, capsys):
    model = tmp_path / "m.joblib"
    assert main(["train", "--labels", str(flat_photos / "labels.csv"), "-o", str(model),
                 *COMMON, "--head", "logistic"]) == 0
    capsys.readouterr()
    outs = {}
    for flag in ("--progress", "--no-progress"):
        out = tmp_path / flag.strip("-")
        assert main(["sort", str(model), str(flat_photos / "images"), "--into", str(out),
                     "--min-confidence", "0", flag]) == 0
        err = capsys.readouterr().err
        assert ("Placing" in err and "16/16" in err) == (flag == "--progress")
        outs[flag] = sorted(p.relative_to(out).as_posix() for p in out.glob("*/*.jpg"))
    assert len(outs["--progress"]) == 16 and outs["--progress"] == outs["--no-progress"]
