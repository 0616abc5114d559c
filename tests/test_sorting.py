"""sort_images / undo_sort: every photo once, in a class folder or in review, never lost."""

import copy
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from skanimal import BottleneckFeatures, IncompatibleModelError, make_shapes
from skanimal.sorting import (
    DEFAULT_MIN_CONFIDENCE,
    REVIEW_FOLDER,
    confidence_for,
    sort_images,
    undo_sort,
)

from .conftest import SMALL

KNOWN = ("circle", "square", "triangle")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A pipeline trained on three shape classes, and unseen photos of all four."""
    root = tmp_path_factory.mktemp("sortdata")
    train = make_shapes(root / "train", n_per_class=12, image_size=40, classes=KNOWN)
    new = make_shapes(root / "new", n_per_class=6, image_size=40, random_state=1)
    model = make_pipeline(BottleneckFeatures(weights=None, image_size=SMALL, pooling="avg"),
                          StandardScaler(), LogisticRegression(C=0.05, max_iter=500))
    model.fit(train.paths, train.target)
    return model, new


@pytest.fixture
def photos(trained, tmp_path):
    """A fresh copy of the unseen photos, truth keyed by file name."""
    _, new = trained
    shutil.copytree(new.root, tmp_path / "photos")
    truth = {Path(p).name: label for p, label in zip(new.paths, new.target)}
    return tmp_path / "photos", truth


def placed(out):
    """{file name: [folder, ...]} of every photo under ``out`` (the state folder left out)."""
    where = {}
    for path in Path(out).rglob("*.jpg"):
        if ".skanimal" not in path.parts:
            where.setdefault(path.name, []).append(path.parent.name)
    return where


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_copy_sort_puts_every_photo_once_and_records_it(trained, photos, tmp_path):
    model, _ = trained
    source, truth = photos
    before = {p: p.read_bytes() for p in source.rglob("*.jpg")}
    result = sort_images(model, source, tmp_path / "out", min_confidence=0.6)
    assert {p: p.read_bytes() for p in source.rglob("*.jpg")} == before  # sources untouched
    where = placed(tmp_path / "out")
    assert sorted(where) == sorted(truth) and all(len(v) == 1 for v in where.values())
    known = [name for name in truth if truth[name] in KNOWN]
    in_class = [name for name in known if where[name][0] != REVIEW_FOLDER]
    assert len(in_class) >= len(known) // 2
    assert all(where[name][0] == truth[name] for name in in_class)
    rows = read_csv(tmp_path / "out" / "predictions.csv")
    assert list(rows[0]) == ["source", "destination", "label_1", "probability_1", "label_2",
                             "probability_2", "label_3", "probability_3", "status", "review_reason",
                             "error"]
    assert len(rows) == len(truth) == len(result.rows)
    for row in rows:
        assert Path(row["destination"]).read_bytes() == Path(row["source"]).read_bytes()
        sure = float(row["probability_1"]) >= 0.6
        assert Path(row["destination"]).parent.name == (row["label_1"] if sure
                                                        else REVIEW_FOLDER)
        assert (float(row["probability_1"]) >= float(row["probability_2"])
                >= float(row["probability_3"]))
    assert sum(result.counts.values()) == len(truth)
    assert result.threshold == 0.6 and "given" in result.threshold_source


def test_unsure_photos_go_to_review(trained, photos, tmp_path):
    model, _ = trained
    source, truth = photos
    strict = sort_images(model, source, tmp_path / "strict", min_confidence=1.0)
    assert set(strict.counts) == {REVIEW_FOLDER}
    lax = sort_images(model, source, tmp_path / "lax", min_confidence=0.0)
    assert REVIEW_FOLDER not in lax.counts
    # An unknown class cannot land anywhere but in a known folder or review: with the model
    # unsure about it (its top probability below the known photos'), review takes it.
    proba = {Path(r["source"]).name: r["probability_1"] for r in lax.rows}
    unknown = [proba[n] for n in truth if truth[n] not in KNOWN]
    known = [proba[n] for n in truth if truth[n] in KNOWN]
    middle = float(np.median(known))
    result = sort_images(model, source, tmp_path / "mid", min_confidence=middle)
    where = placed(tmp_path / "mid")
    assert all(where[n][0] == REVIEW_FOLDER for n in truth
               if truth[n] not in KNOWN and proba[n] < middle)
    assert result.counts.get(REVIEW_FOLDER, 0) >= sum(p < middle for p in unknown)


def test_rerun_neither_duplicates_nor_overwrites(trained, photos, tmp_path):
    model, _ = trained
    source, truth = photos
    out = tmp_path / "out"
    first = sort_images(model, source, out, min_confidence=0.6)
    inodes = {p: p.stat().st_ino for p in out.rglob("*.jpg")}
    second = sort_images(model, source, out, min_confidence=0.6)
    assert {p: p.stat().st_ino for p in out.rglob("*.jpg")} == inodes
    assert [r["destination"] for r in second.rows] == [r["destination"] for r in first.rows]
    assert len(read_csv(out / "predictions.csv")) == len(truth)


def relabelled(model):
    """The same pipeline with its classes rotated: every photo's class changes."""
    head = copy.deepcopy(model.steps[-1][1])
    head.classes_ = np.roll(head.classes_, 1)
    return Pipeline(model.steps[:-1] + [(model.steps[-1][0], head)])


def test_resort_with_a_changed_model_moves_the_earlier_copy(trained, photos, tmp_path):
    model, _ = trained
    source, truth = photos
    before = {p: p.read_bytes() for p in source.rglob("*.jpg")}
    out = tmp_path / "out"
    first = sort_images(model, source, out, min_confidence=0.0)
    second = sort_images(relabelled(model), source, out, min_confidence=0.0)
    where = placed(out)
    assert sorted(where) == sorted(truth) and all(len(v) == 1 for v in where.values())
    changed = [a for a, b in zip(first.rows, second.rows) if a["label_1"] != b["label_1"]]
    assert len(changed) == len(truth)  # rotated classes: every photo changed folder...
    assert len(second.relocations) == len(truth)  # ...by a move of its copy, not a new one
    for row in second.rows:
        assert Path(row["destination"]).parent.name == row["label_1"]
        assert Path(row["destination"]).read_bytes() == Path(row["source"]).read_bytes()
    rows = read_csv(out / "predictions.csv")
    assert sorted(r["destination"] for r in rows) == sorted(r["destination"]
                                                            for r in second.rows)
    assert {p: p.read_bytes() for p in source.rglob("*.jpg")} == before  # still a copy
    undo_sort(out)
    assert not out.exists()  # the sorts created it: the undo removes it, and nothing else
    assert {p: p.read_bytes() for p in source.rglob("*.jpg")} == before


def test_sorting_review_again_moves_within_out_and_keeps_the_rows(trained, photos, tmp_path):
    from skanimal import moves

    model, _ = trained
    source, truth = photos
    out = tmp_path / "out"
    sort_images(model, source, out, min_confidence=1.0)  # everything to review
    assert all(v == [REVIEW_FOLDER] for v in placed(out).values())
    again = sort_images(model, out / REVIEW_FOLDER, out, mode="move", min_confidence=0.0)
    assert not list((out / REVIEW_FOLDER).iterdir())
    where = placed(out)
    assert sorted(where) == sorted(truth) and all(len(v) == 1 for v in where.values())
    assert len(again.relocations) == len(truth) and len(again.journals) == 1
    # predictions.csv still has one row per original source, now pointing to its class.
    rows = read_csv(out / "predictions.csv")
    assert sorted(r["source"] for r in rows) == sorted(str(p) for p in source.rglob("*.jpg"))
    assert all(Path(r["destination"]).parent.name == r["label_1"] for r in rows)
    # The review page's undo of the re-sort; then undo_sort of the rest: nothing left.
    moves.undo(again.journals[0])
    assert all(v == [REVIEW_FOLDER] for v in placed(out).values())
    undo_sort(out)
    assert placed(out) == {}
    assert sorted(p.name for p in source.rglob("*.jpg")) == sorted(truth)


def test_chunks_are_transferred_while_the_next_is_scored(trained, photos, tmp_path,
                                                         monkeypatch):
    from skanimal import moves, scoring

    model, _ = trained
    source, truth = photos
    monkeypatch.setattr(scoring, "CHUNK_SIZE", 5)
    result = sort_images(model, source, tmp_path / "out", mode="move", min_confidence=0.6)
    n_chunks = -(-len(truth) // 5)
    assert len(result.journals) == n_chunks  # one journal per chunk, in order
    assert result.journals == sorted(result.journals)
    where = placed(tmp_path / "out")
    assert sorted(where) == sorted(truth) and all(len(v) == 1 for v in where.values())
    assert len(read_csv(tmp_path / "out" / "predictions.csv")) == len(truth)
    undo_sort(tmp_path / "out")
    assert sorted(p.name for p in source.rglob("*.jpg")) == sorted(truth)

    # A failing transfer stops the later chunks and is raised; what was done can be undone.
    calls = []
    real = moves.transfer

    def failing(pairs, **kwargs):
        calls.append(len(pairs))
        if len(calls) == 2:
            raise moves.TransferError("disk full (simulated)")
        return real(pairs, **kwargs)

    monkeypatch.setattr(moves, "transfer", failing)
    with pytest.raises(moves.TransferError, match="simulated"):
        sort_images(model, source, tmp_path / "out2", mode="move", min_confidence=0.6)
    assert len(calls) == 2
    assert len([n for n, v in placed(tmp_path / "out2").items()]) == calls[0]
    monkeypatch.setattr(moves, "transfer", real)
    undo_sort(tmp_path / "out2")
    assert sorted(p.name for p in source.rglob("*.jpg")) == sorted(truth)


def test_collisions_get_a_suffix(trained, photos, tmp_path):
    model, _ = trained
    source, _ = photos
    out = tmp_path / "out"
    for folder in ("circle", "square", "triangle", REVIEW_FOLDER):
        (out / folder).mkdir(parents=True)
        for name in ("circle_000.jpg", "square_000.jpg", "cross_000.jpg", "triangle_000.jpg"):
            (out / folder / name).write_bytes(b"an older photo")
    result = sort_images(model, source, out, min_confidence=0.6)
    for folder in ("circle", "square", "triangle", REVIEW_FOLDER):
        for name in ("circle_000.jpg", "square_000.jpg", "cross_000.jpg", "triangle_000.jpg"):
            assert (out / folder / name).read_bytes() == b"an older photo"
    moved = {Path(r["source"]).name: Path(r["destination"]).name for r in result.rows}
    assert moved["circle_000.jpg"] == "circle_000 (1).jpg"
    assert moved["circle_001.jpg"] == "circle_001.jpg"


def test_move_then_undo(trained, photos, tmp_path):
    model, _ = trained
    source, truth = photos
    before = {p.relative_to(source): p.read_bytes() for p in source.rglob("*.jpg")}
    out = tmp_path / "out"
    sort_images(model, [source], out, mode="move", min_confidence=0.6)
    assert not list(source.rglob("*.jpg"))
    assert sorted(placed(out)) == sorted(truth)
    restored = undo_sort(out).restored
    assert len(restored) == len(truth)
    assert {p.relative_to(source): p.read_bytes() for p in source.rglob("*.jpg")} == before
    assert not out.exists()


def test_unreadable_files_stay_in_place(trained, photos, tmp_path):
    model, _ = trained
    source, truth = photos
    bad = source / "circle" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 this is not a JPEG")
    result = sort_images(model, source, tmp_path / "out", mode="move", min_confidence=0.6)
    assert bad.read_bytes() == b"\xff\xd8 this is not a JPEG"
    assert [p for p, _ in result.unreadable] == [os.fspath(bad)]
    assert "broken.jpg" in result.unreadable[0][1]
    assert result.counts["unreadable"] == 1
    row = [r for r in read_csv(tmp_path / "out" / "predictions.csv") if r["status"] == "unreadable"]
    assert row[0]["source"] == os.fspath(bad) and row[0]["destination"] == ""
    assert "broken.jpg" not in placed(tmp_path / "out")
    assert sorted(placed(tmp_path / "out")) == sorted(truth)


def test_an_output_inside_the_source_is_not_sorted_again(trained, photos):
    model, _ = trained
    source, truth = photos
    out = source / "sorted"
    sort_images(model, source, out, min_confidence=0.6)
    second = sort_images(model, source, out, min_confidence=0.6)
    assert len(second.rows) == len(truth)
    assert all(len(v) == 1 for k, v in placed(out).items())


def test_threshold_comes_from_the_calibrated_classifier(trained):
    from skanimal.calibration import calibrate_confidence

    model, _ = trained
    head = model.steps[-1][1]
    assert confidence_for(model) == (DEFAULT_MIN_CONFIDENCE,
                                     "this kind of classifier is not calibrated; using 0.9")
    head.confidence_threshold_ = None
    assert confidence_for(model)[1] == ("the model was trained without held-out photos to "
                                        "calibrate on; using 0.9")
    try:
        head.confidence_basis_ = calibrate_confidence([[0.9999, 0.0001]] * 6, ["a"] * 6,
                                                      ["a", "b"])
        assert confidence_for(model) == (0.9, (
            "too few held-out photos (6) to calibrate: 98 % right with 95 % confidence "
            "needs at least 149; using 0.9"))
        proba = [[0.97, 0.03]] * 160 + [[0.6, 0.4]] * 40
        head.confidence_basis_ = calibrate_confidence(proba, ["a"] * 160 + ["b"] * 40,
                                                      ["a", "b"])
        head.confidence_threshold_ = head.confidence_basis_.threshold
        assert confidence_for(model) == (0.97, (
            "calibrated on 200 held-out photos, the 160 this confident were at least 98.1 % "
            "right with 95 % confidence (160 of 160 right)"))
        assert confidence_for(model, 0.5) == (0.5, "given")
        # A calibrated threshold only raises the floor.
        head.confidence_threshold_ = 0.73
        threshold, source = confidence_for(model)
        assert threshold == DEFAULT_MIN_CONFIDENCE and source.startswith("calibrated 0.73 on")
        assert source.endswith("raised to the lowest threshold a sort uses, 0.9")
    finally:
        del head.confidence_threshold_, head.confidence_basis_
    with pytest.raises(ValueError, match="min_confidence"):
        confidence_for(model, 1.5)


def test_bad_model_and_sources_fail_in_one_line(trained, photos, tmp_path):
    model, _ = trained
    source, _ = photos
    with pytest.raises(IncompatibleModelError, match="pipeline"):
        sort_images(LogisticRegression(), source, tmp_path / "out")
    with pytest.raises(Exception, match="nowhere"):
        sort_images(model, tmp_path / "nowhere", tmp_path / "out")
    head = model.steps[-1][1]
    saved = head.classes_
    head.classes_ = np.array(["circle", REVIEW_FOLDER, "triangle"], dtype=object)
    try:
        with pytest.raises(IncompatibleModelError, match="folder name"):
            sort_images(model, source, tmp_path / "out")
    finally:
        head.classes_ = saved


CHILD = textwrap.dedent("""
    import sys, joblib
    from skanimal.sorting import sort_images
    model = joblib.load(sys.argv[1])
    result = sort_images(model, sys.argv[2], sys.argv[3], mode="move", min_confidence=0.6)
    print("sorted", len(result.rows), "resumed", result.resumed, flush=True)
""")


@pytest.mark.slow
def test_sigkill_of_a_moving_sort_then_rerun(trained, tmp_path):
    model, new = trained
    model_file = tmp_path / "model.joblib"
    joblib.dump(model, model_file)
    kills_mid_way = 0
    for trial in range(4):
        source = tmp_path / f"photos{trial}"
        # Many copies (distinct bytes) so the move phase lasts long enough to be hit.
        truth = {}
        for k in range(8):
            for path, label in zip(new.paths, new.target):
                name = f"{k}_{Path(path).name}"
                (source / label).mkdir(parents=True, exist_ok=True)
                (source / label / name).write_bytes(Path(path).read_bytes() + bytes([k]))
                truth[name] = (source / label / name).read_bytes()
        out = tmp_path / f"out{trial}"
        child = subprocess.Popen([sys.executable, "-c", CHILD, model_file, source, out],
                                 stdout=subprocess.PIPE, text=True)
        target = [1, 20, 80, 150][trial]
        while child.poll() is None and sum(1 for _ in placed(out)) < target:
            time.sleep(0.0005)
        child.send_signal(signal.SIGKILL)
        child.wait()
        left = len(list(source.rglob("*.jpg")))
        kills_mid_way += 0 < left < len(truth)
        rerun = subprocess.run([sys.executable, "-c", CHILD, model_file, source, out],
                               capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert not list(source.rglob("*.jpg"))
        where = placed(out)
        assert sorted(where) == sorted(truth) and all(len(v) == 1 for v in where.values())
        for path in out.rglob("*.jpg"):
            assert path.read_bytes() == truth[path.name]  # none partial
        rows = read_csv(out / "predictions.csv")
        assert sorted(Path(r["destination"]).name for r in rows) == sorted(truth)
        undo_sort(out)
        assert sorted(p.name for p in source.rglob("*.jpg")) == sorted(truth)
    assert kills_mid_way >= 2


# --- what sort and undo say, as a user runs them (issue 21.5, 22.3) ------------------------


def _cli(*argv):
    from skanimal.cli import main

    return main([os.fspath(a) for a in argv])


def _photos_in(out):
    return sorted(p for p in Path(out).rglob("*.jpg") if ".skanimal" not in p.parts)


def _folder_counts_said(line):
    """``{folder: n}`` from "...: circle 3, square 2" at the end of a printed line."""
    listed = line.rsplit(": ", 1)[1]
    return {name: int(n) for name, n in (item.rsplit(" ", 1) for item in listed.split(", "))}


def _line(out, start):
    [line] = [line for line in out.splitlines() if line.startswith(start)]
    return line


@pytest.fixture
def model_file(trained, tmp_path):
    model, _ = trained
    joblib.dump(model, tmp_path / "model.joblib")
    return tmp_path / "model.joblib"


def test_a_rerun_says_nothing_was_copied_and_undo_removes_only_what_it_made(
        model_file, photos, tmp_path, capsys):
    source, truth = photos
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")  # the user's: the undo must leave it
    assert _cli("sort", model_file, source, "--into", out, "--min-confidence", "0.6") == 0
    said = capsys.readouterr().out
    assert f"Copied {len(truth)} photo(s) into {out}. Sorted: " in said
    assert sum(_folder_counts_said(_line(said, "Copied")).values()) == len(_photos_in(out))

    assert _cli("sort", model_file, source, "--into", out, "--min-confidence", "0.6") == 0
    said = capsys.readouterr().out
    assert f"Copied 0 photo(s) into {out}; {len(truth)} already there" in said
    assert len(_photos_in(out)) == len(truth)  # true: nothing was copied

    assert _cli("sort", "--undo", out) == 0
    said = capsys.readouterr().out
    assert f"Removed {len(truth)} copied or linked photo(s) from {out}" in said
    assert sorted(os.listdir(out)) == ["notes.txt"]  # no class folder, csv or state left
    assert len(list(source.rglob("*.jpg"))) == len(truth)


def test_undo_warns_before_discarding_review_page_moves_and_counts_what_it_restored(
        model_file, photos, tmp_path, capsys):
    from skanimal import moves

    source, truth = photos
    before = {p: p.read_bytes() for p in source.rglob("*.jpg")}
    out = tmp_path / "out"
    assert _cli("sort", model_file, source, "--into", out, "--move",
                "--min-confidence", "0.0") == 0
    capsys.readouterr()
    # A correction on the review page: one photo moved to another class, journaled there.
    photo = _photos_in(out)[0]
    other = next(c for c in KNOWN if c != photo.parent.name)
    journal = out / ".skanimal" / "journal" / f"{time.time_ns():020d}-0123abcd.json"
    moves.transfer([(photo, out / other)], mode="move", journal=journal)
    on_disk = _photos_in(out)

    assert _cli("sort", "--undo", out) == 1
    said = capsys.readouterr()
    assert "1 photo move(s)" in said.err and "--discard-later-moves" in said.err
    assert _photos_in(out) == on_disk  # refused before touching anything

    assert _cli("sort", "--undo", out, "--discard-later-moves") == 0
    said = capsys.readouterr().out
    assert "Undid 1 later move(s)" in said
    assert f"Restored {len(truth)} photo(s) to where they came from" in said
    assert {p: p.read_bytes() for p in source.rglob("*.jpg")} == before
    assert not out.exists()


def test_a_sort_resumed_after_a_full_disk_says_what_it_finished_and_where(
        model_file, photos, tmp_path, capsys, monkeypatch):
    import errno

    source, truth = photos
    out = tmp_path / "out"
    real_link, calls = os.link, []

    def full_disk(*args, **kwargs):
        calls.append(args)
        if len(calls) == 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_link(*args, **kwargs)

    monkeypatch.setattr(os, "link", full_disk)
    assert _cli("sort", model_file, source, "--into", out, "--move",
                "--min-confidence", "0.6") == 1
    assert "No space left on device" in capsys.readouterr().err
    monkeypatch.setattr(os, "link", real_link)
    assert 0 < len(_photos_in(out)) < len(truth)

    assert _cli("sort", model_file, source, "--into", out, "--move",
                "--min-confidence", "0.6") == 0
    said = capsys.readouterr().out
    finished = _line(said, "Finished an interrupted sort first")
    assert f"its {len(truth)} photo(s) are in {out}: " in finished
    counts = _folder_counts_said(finished)
    assert counts == {folder: sum(p.parent.name == folder for p in _photos_in(out))
                      for folder in counts}
    assert sum(counts.values()) == len(_photos_in(out)) == len(truth)
    assert f"Moved 0 photo(s) into {out}\n" in said  # nothing left to move, no empty list
    assert not list(source.rglob("*.jpg"))


def test_the_sort_that_loses_a_race_says_another_run_moved_the_photos(
        trained, model_file, photos, tmp_path, capsys, monkeypatch):
    from skanimal import sorting

    model, _ = trained
    source, truth = photos
    out = tmp_path / "out"
    real = sorting.iter_scores

    def interleaved(*args, **kwargs):
        for number, scores in enumerate(real(*args, **kwargs)):
            if number == 0:  # the other run moves everything while this one scores
                monkeypatch.setattr(sorting, "iter_scores", real)
                sort_images(model, source, out, mode="move", min_confidence=0.6)
            yield scores

    monkeypatch.setattr(sorting, "iter_scores", interleaved)
    assert _cli("sort", model_file, source, "--into", out, "--move",
                "--min-confidence", "0.6") == 0
    said = capsys.readouterr()
    assert "does not exist" not in said.out + said.err
    assert f"{len(truth)} photo(s) were moved by another sort running at the same time" \
        in said.out
    assert f"Moved 0 photo(s) into {out}" in said.out
    assert len(_photos_in(out)) == len(truth)


def test_damaged_folder_files_are_named_in_one_line_and_no_photo_moves(
        model_file, photos, tmp_path, capsys):
    source, truth = photos
    out = tmp_path / "out"
    assert _cli("sort", model_file, source, "--into", out, "--move",
                "--min-confidence", "0.6") == 0
    capsys.readouterr()
    on_disk = _photos_in(out)
    [journal] = (out / ".skanimal" / "journal").glob("*.json")
    text = journal.read_text()
    journal.write_text(text[:len(text) // 2])  # a crash mid-write by another program
    assert _cli("sort", "--undo", out) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and repr(os.fspath(journal)) in err, err
    assert "damaged or truncated" in err
    assert _photos_in(out) == on_disk

    journal.write_text(text)
    (out / "predictions.csv").write_bytes(b"source,destination\n\xff\xfe\n")
    assert _cli("sort", model_file, source, "--into", out, "--min-confidence", "0.6") == 1
    err = capsys.readouterr().err.strip()
    assert "predictions.csv" in err and "not UTF-8" in err and len(err.splitlines()) == 1
    assert _photos_in(out) == on_disk


def test_sorting_a_folder_into_itself_is_one_clear_error(trained, photos, tmp_path):
    from skanimal.cli import main
    from skanimal.exceptions import ImageFolderError

    model, _ = trained
    folder, _ = photos
    before = sorted(p.name for p in folder.rglob("*"))
    with pytest.raises(ImageFolderError, match="is also the folder to sort"):
        sort_images(model, folder, folder, mode="move")
    joblib.dump(model, tmp_path / "m.joblib")
    assert main(["sort", str(tmp_path / "m.joblib"), str(folder), "--into", str(folder),
                 "--move"]) == 1
    assert sorted(p.name for p in folder.rglob("*")) == before  # nothing moved or written


# --- a sorted folder from elsewhere: its journals act only inside it -----------------------

def _plant_journal(into, entries, *, mode, state):
    """A journal as a shared or downloaded folder could hold it, written by hand."""
    journal = into / ".skanimal" / "journal" / "00000000000000000001-planted.json"
    journal.parent.mkdir(parents=True, exist_ok=True)
    journal.write_text(json.dumps({
        "format": "skanimal-moves", "version": 1, "mode": mode, "token": "0123456789ab",
        "state": state, "entries": [dict(entry, folder=os.path.dirname(entry["destination"]),
                                         existing=False) for entry in entries]}))
    return journal


def test_a_journal_from_elsewhere_creates_nothing_outside_the_folder(trained, tmp_path):
    from skanimal.exceptions import DamagedFileError
    from skanimal.review.catalog import Catalog

    into, home = tmp_path / "shared", tmp_path / "home"
    (into / "cat").mkdir(parents=True)
    (home / ".ssh").mkdir(parents=True)
    planted = into / "cat" / "authorized_keys"
    planted.write_bytes(b"ssh-ed25519 AAAA... attacker")
    # Undoing this "move" would put the planted file at a path it was never taken from.
    journal = _plant_journal(into, [{"source": os.fspath(home / ".ssh" / "authorized_keys"),
                                     "destination": os.fspath(planted)}],
                             mode="move", state="done")
    with pytest.raises(DamagedFileError, match="not an image file") as info:
        undo_sort(into)
    assert repr(os.fspath(journal)) in str(info.value) and "\n" not in str(info.value)
    assert not (home / ".ssh" / "authorized_keys").exists() and planted.exists()

    # Finishing this "copy" would write outside the folder, through a link inside it.
    os.symlink(home, into / "dog")
    _plant_journal(into, [{"source": os.fspath(into / "cat" / "x.jpg"),
                           "destination": os.fspath(into / "dog" / "autostart.jpg")}],
                   mode="copy", state="planned")
    (into / "cat" / "x.jpg").write_bytes(b"not a photo, but named like one")
    model, _ = trained
    for act in (lambda: sort_images(model, into / "cat", into),
                lambda: Catalog(into).finish_interrupted()):
        with pytest.raises(DamagedFileError, match="a destination outside"):
            act()
    assert not (home / "autostart.jpg").exists()
    assert sorted(p.name for p in home.rglob("*")) == [".ssh"]
