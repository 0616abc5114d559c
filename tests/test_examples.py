"""The example scripts run offline, end to end, and print/write what they promise.

Each example runs in its own process, as a user would run it, with ``--workdir`` in a
temporary directory and the default feature cache pointed at another one. They generate
their own images, fall back to random weights without network access, and take 15–40 s
each on 2 CPU cores. ``examples/augmentation.py`` is run by ``tests/test_augmentation.py``.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

pytestmark = pytest.mark.slow

#: A probability or accuracy as the examples print them: 0.917, 1.000
NUMBER = r"([01]\.\d+)"


def run_example(name, tmp_path, *args, timeout=240):
    """Run ``examples/<name>`` with ``--workdir``; return (stdout, workdir)."""
    workdir = tmp_path / "work"
    cache = tmp_path / "cache"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "SKANIMAL_CACHE_DIR": str(cache),
           "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--workdir", str(workdir), *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    assert result.returncode == 0, (
        f"{name} exited with {result.returncode}\n--- stdout\n{result.stdout[-3000:]}"
        f"\n--- stderr\n{result.stderr[-3000:]}")
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result.stdout, workdir


def accuracy(stdout, label):
    """The number in the one line ``<label> <number> ...`` of ``stdout``, in [0, 1]."""
    lines = [line for line in stdout.splitlines() if line.startswith(label)]
    assert len(lines) == 1, f"expected one {label!r} line in:\n{stdout}"
    match = re.match(re.escape(label) + r"\s*" + NUMBER + r"\b", lines[0])
    assert match, f"cannot parse {lines[0]!r}"
    value = float(match.group(1))
    assert 0.0 <= value <= 1.0
    return value


def check_png(path):
    from PIL import Image

    assert path.is_file() and path.stat().st_size > 0, path
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width >= 100 and image.height >= 100
        image.verify()


def test_quickstart(tmp_path):
    stdout, workdir = run_example("quickstart.py", tmp_path)
    value = accuracy(stdout, "Held-out accuracy:")
    assert value >= 0.5, stdout  # 4 easy classes: chance is 0.25
    assert (workdir / "shapes.joblib").is_file()
    assert len([line for line in stdout.splitlines() if ": predicted " in line]) == 3


def test_grid_search(tmp_path):
    stdout, workdir = run_example("grid_search.py", tmp_path)
    best = accuracy(stdout, "Best cross-validated accuracy:")
    assert 0.25 <= best <= 1.0
    accuracy(stdout, "Held-out accuracy:")
    assert "Fitted 13 pipelines (4 candidates x 3 folds + refit)" in stdout

    # The cv_results_ summary: one row per candidate, ranked by mean accuracy as scikit-learn
    # ranks (ties share the best rank: 1, 1, 3, 4).
    rows = re.findall(r"^\s+(\d)\s+" + NUMBER + r"\s+\(" + NUMBER + r"\)\s+\S+\s+\(.*\)$",
                      stdout, flags=re.MULTILINE)
    assert len(rows) == 4, stdout
    ranked = sorted((int(rank), float(mean)) for rank, mean, _ in rows)
    assert ranked[0][0] == 1, stdout
    for position, ((rank, mean), (previous_rank, previous_mean)) in enumerate(
            zip(ranked[1:], ranked), start=2):
        assert mean <= previous_mean, stdout  # better rank, no lower accuracy
        assert rank == position or (rank == previous_rank and mean == previous_mean), stdout

    # Each image's features were extracted (and cached) exactly once.
    match = re.search(r"(\d+) entries for (\d+) distinct images \(each extracted once", stdout)
    assert match, stdout
    assert int(match.group(1)) == int(match.group(2)) == 96
    from skanimal import cache_info

    assert cache_info(workdir / "feature-cache")["entries"] == 96


def test_report_and_plots(tmp_path):
    stdout, workdir = run_example("report_and_plots.py", tmp_path)
    value = accuracy(stdout, "Test accuracy:")
    assert "Generated 120 images of 4 classes; split into 72 train, 18 validation, 30 test" \
        in stdout
    assert re.search(r"validation accuracy " + NUMBER, stdout), stdout

    report = workdir / "report"
    from skanimal.report import REPORT_FILES

    for name in REPORT_FILES:
        assert f"  {name} " in stdout, f"{name} not listed in:\n{stdout}"
        assert (report / name).is_file(), name
    for name in ("confusion_matrix.png", "training_curves.png", "misclassified.png"):
        check_png(report / name)

    metrics = json.loads((report / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["accuracy"] == pytest.approx(value, abs=5e-4)
    assert metrics["n_samples"] == 30
    assert metrics["sizes"] == {"train": 72, "val": 18, "test": 30}
    assert sorted(metrics["classes"]) == ["circle", "cross", "square", "triangle"]
    text = (report / "classification_report.txt").read_text(encoding="utf-8")
    assert text.startswith("Accuracy: ")


def test_predict_new_images(tmp_path):
    stdout, workdir = run_example("predict_new_images.py", tmp_path)
    value = accuracy(stdout, "Accuracy on the new images:")
    assert value >= 0.5, stdout
    assert (workdir / "shapes.joblib").is_file()

    classes = {"circle", "cross", "square", "triangle"}
    rows = [line.split() for line in stdout.splitlines()
            if line.startswith("  new_photos/")]
    assert len(rows) == 12, stdout  # 3 new images per class
    for row in rows:
        path, ranked = row[0], row[1:]
        assert (workdir / path).is_file()
        assert len(ranked) == 6  # top 3: label, probability, label, probability, ...
        labels, probabilities = ranked[0::2], [float(p) for p in ranked[1::2]]
        assert set(labels) <= classes and len(set(labels)) == 3
        assert probabilities == sorted(probabilities, reverse=True)
        assert all(0.0 <= p <= 1.0 for p in probabilities)
        assert sum(probabilities) <= 1.0 + 2e-3
