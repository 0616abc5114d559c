"""Sort photos into class folders with a trained model; the unsure ones go to review.

``OUT/<class>/`` receives each photo whose top probability reaches the threshold and that
is like the photos the model was trained on (:mod:`skanimal.novelty`), ``OUT/_review/`` the
rest (photos of classes the model never saw among them), and ``OUT/predictions.csv``
records every decision and, in ``review_reason``, why a photo went to review. Files are
transferred by :func:`skanimal.moves.transfer`, journaled under ``OUT/.skanimal/``, so a
killed sort is finished by running it again and :func:`undo_sort` reverses it.

Sorting again into the same OUT (with a retrained model, say) never leaves two copies of a
photo: a photo already in OUT — named as a source (``OUT/_review``), or placed there by an
earlier sort of the same source (its row in ``predictions.csv``) — is moved within OUT to
its new folder, journaled, and keeps its row (and its original ``source``) in
``predictions.csv``. This is also how the review page's Retrain sorts ``_review`` again.
"""

from __future__ import annotations

import filecmp
import os
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import calibration, fileio, moves
from .datasets import collect_images
from .exceptions import (
    DamagedFileError,
    ImageFolderError,
    IncompatibleModelError,
    LaterMovesError,
    SkanimalError,
    UndoInterruptedError,
)
from .folders import (
    PREDICTIONS_FILE,
    REVIEW_FOLDER,
    STATE_FOLDER,
    TOP_K,
    TRASH_FOLDER,
    check_journal,
    journal_folder,
    read_sort_predictions,
    write_sort_predictions,
)
from .novelty import novelty_of
from .scoring import check_on_error, iter_scores, split_pipeline
from .untrusted import read_json

__all__ = ["DEFAULT_MIN_CONFIDENCE", "REVIEW_FOLDER", "SortResult", "UndoResult",
           "LaterMovesError", "sort_images", "undo_sort", "confidence_for", "default_threshold"]

#: The lowest threshold a sort uses unless ``min_confidence`` is given (see
#: :data:`skanimal.calibration.DEFAULT_MIN_CONFIDENCE`).
DEFAULT_MIN_CONFIDENCE = calibration.DEFAULT_MIN_CONFIDENCE

#: Suffix of the journal of a run's moves within OUT.
_WITHIN = "-within"
#: Keys of a row used while sorting, not written to predictions.csv.
_INTERNAL = ("folder", "current", "move_within", "placed")
#: Largest run record read back: the rows of one chunk, like its journal
#: (:data:`skanimal.moves.MAX_JOURNAL_BYTES`).
_MAX_RUN_BYTES = moves.MAX_JOURNAL_BYTES


@dataclass
class SortResult:
    """What :func:`sort_images` did.

    Attributes
    ----------
    rows : list of dict
        One per source, as written to ``predictions.csv``: ``source``, ``destination``,
        ``label_1``, ``probability_1`` (the most probable class and its probability),
        ``label_2``, ``probability_2``, ``label_3``, ``probability_3`` (runner-up classes)
        ``status`` (``"sorted"``, ``"review"`` or ``"unreadable"``, with ``error``) and
        ``review_reason`` (why a photo went to review: ``"low confidence"``, ``"unlike the
        training photos"`` or ``"both"``; empty otherwise); see
        :func:`skanimal.folders.prediction_columns`.
    counts : dict
        Number of photos per destination folder (class names and ``"_review"``), and
        ``"unreadable"``.
    threshold : float
        The confidence threshold used.
    threshold_source : str
        Where it came from, in words.
    into : pathlib.Path
        The output folder.
    predictions : pathlib.Path
        ``into / "predictions.csv"``.
    resumed : int
        Photos of an interrupted earlier run finished first.
    resumed_counts : dict
        Where those went: number per folder of ``into`` (class names and ``"_review"``).
    transferred : int
        Photos this run copied, linked or moved into ``into`` (not counting
        ``relocations``, nor photos already there).
    already_in_place : int
        Photos found already in their folder of ``into`` (by an earlier sort: the same
        bytes), left as they were.
    moved_by_other_run : list of (str, str)
        Sources another run moving from the same folder took first, and where that run put
        them (``""`` when its journal does not say).
    unreadable : list of (str, str)
        Files left in place, with the error naming each.
    relocations : list of (pathlib.Path, pathlib.Path)
        Photos already in ``into`` that were moved to another of its folders, as
        ``(old path, new path)``.
    journals : list of pathlib.Path
        The journals of this run's transfers, in the order they ran (empty when nothing had
        to move): :func:`skanimal.moves.undo` of each, last first, reverses the run.
    """

    rows: list
    counts: dict
    threshold: float
    threshold_source: str
    into: Path
    predictions: Path
    resumed: int = 0
    resumed_counts: dict = field(default_factory=dict)
    transferred: int = 0
    already_in_place: int = 0
    moved_by_other_run: list = field(default_factory=list)
    unreadable: list = field(default_factory=list)
    relocations: list = field(default_factory=list)
    journals: list = field(default_factory=list)


def confidence_for(model, min_confidence=None):
    """The confidence threshold a sort with ``model`` uses, and what it rests on.

    Parameters
    ----------
    model : estimator
        A fitted pipeline (or classifier).
    min_confidence : float, optional
        An explicit threshold in [0, 1]; wins when given.

    Returns
    -------
    threshold : float
    source : str
        In the user's words: given; or calibrated, with the held-out photos it rests on and
        the precision they support ("on 180 held-out photos, the 170 this confident were at
        least 98.2 % right with 95 % confidence"); or why the floor is used instead ("too
        few held-out photos (6) to calibrate ...; using 0.9").
    """
    if min_confidence is not None:
        if not 0 <= min_confidence <= 1:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence!r}.")
        return float(min_confidence), "given"
    model = getattr(model, "best_estimator_", model)
    head = model.steps[-1][1] if hasattr(model, "steps") else model
    floor = DEFAULT_MIN_CONFIDENCE
    calibrated = getattr(head, "confidence_threshold_", None)
    basis = getattr(head, "confidence_basis_", None)
    if calibrated is not None:
        threshold = default_threshold(calibrated)
        said = (basis.describe() if basis is not None
                else "on held-out photos (how many was not recorded)")
        if threshold > calibrated:
            return threshold, (f"calibrated {calibrated:.4g} {said}; raised to the "
                               f"lowest threshold a sort uses, {floor:g}")
        return threshold, f"calibrated {said}"
    if basis is not None:
        why = basis.describe()
    elif hasattr(head, "confidence_threshold_"):
        why = "the model was trained without held-out photos to calibrate on"
    else:
        why = "this kind of classifier is not calibrated"
    return floor, f"{why}; using {floor:g}"


def default_threshold(calibrated):
    """The threshold a sort uses by default, given a calibrated one.

    Parameters
    ----------
    calibrated : float
        The smallest confidence at which held-out predictions were right often enough
        (:func:`skanimal.calibration.calibrate_confidence`).

    Returns
    -------
    float
        ``max(calibrated, DEFAULT_MIN_CONFIDENCE)``.
    """
    return max(float(calibrated), DEFAULT_MIN_CONFIDENCE)


def sort_images(model, sources, into, *, min_confidence=None, mode="copy", on_error="skip",
                progress=False):
    """Put each image into ``into/<class>/`` when the model is confident, else ``_review``.

    Parameters
    ----------
    model : Pipeline
        A fitted pipeline of :class:`~skanimal.BottleneckFeatures` and a classifier.
    sources : path-like or sequence of path-like
        Image files and folders (searched recursively; hidden files and folders are left
        out, and so is ``into`` when it lies inside a source folder). A source inside
        ``into`` (such as ``into/_review``) is sorted again within ``into``.
    into : path-like
        Output folder (created if needed). Running the same sort into it again neither
        duplicates nor overwrites anything; a photo it already holds whose class changed
        is moved to its new folder.
    min_confidence : float, optional
        Top probability a photo needs to go into a class folder. By default the
        classifier's calibrated ``confidence_threshold_`` (right >= 98 % of the time on
        held-out data, with 95 % confidence), else :data:`DEFAULT_MIN_CONFIDENCE`; see
        :func:`confidence_for`. A photo unlike the classifier's training photos (its
        ``novelty_``, :class:`skanimal.novelty.FeatureNovelty`) goes to review however
        confident the model is.
    mode : {"copy", "link", "move"}, default="copy"
        How photos get there (:func:`skanimal.moves.transfer`); ``"copy"`` never modifies
        the sources. Every mode is journaled, so :func:`undo_sort` can reverse it. Photos
        already in ``into`` are always moved within it (a second copy would duplicate them).
    on_error : {"skip", "fail"}, default="skip"
        Unreadable files are left in place and listed (status ``"unreadable"``), or
        (``"fail"``) an error names the unreadable files of the first chunk that has any;
        the chunks before it are sorted. ``"raise"`` is a deprecated alias of ``"fail"``.
    progress : bool, default=False
        Show progress bars (tqdm, on stderr) while scoring and while placing the photos.

    Returns
    -------
    SortResult

    Raises
    ------
    ImageFolderError
        A source does not exist, a source folder holds no image, or ``into`` is not a
        folder.
    IncompatibleModelError
        The model is not a fitted pipeline, or a class name cannot be a folder name.
    SkanimalError
        An undo of ``into`` was interrupted (run :func:`undo_sort` again first).
    """
    if mode not in moves.MODES:
        raise ValueError(f"mode must be one of {moves.MODES}, got {mode!r}.")
    on_error = check_on_error(on_error)
    threshold, threshold_source = confidence_for(model, min_confidence)
    _, head = split_pipeline(model)
    novelty = novelty_of(head)
    classes = np.asarray(head.classes_)
    _check_folder_names(classes)
    into = Path(into).absolute()
    if into.exists() and not into.is_dir():
        raise ImageFolderError(f"output folder {os.fspath(into)!r} is not a folder.")
    resumed_rows = _finish_interrupted(into)
    previous = read_sort_predictions(into)
    # Absolute: predictions.csv is a record read back from any working directory.
    paths = [os.path.abspath(p) for p in _collect(sources, into, previous)]

    placed_before = _index(previous, into)
    run = _new_run_name()
    rows, unreadable, relocations, journals, tally = [], [], [], [], {}
    # The files of each scored chunk are transferred on a thread while the next chunk is
    # scored: the CNN, not the copying and syncing, sets the pace. One chunk at a time, in
    # order; after a failure the later chunks are not transferred, and the error is raised.
    failed = threading.Event()
    from tqdm.auto import tqdm

    placing_bar = tqdm(total=len(paths), unit="photo", desc="Placing", disable=not progress)
    with placing_bar, ThreadPoolExecutor(1, thread_name_prefix="skanimal-sort") as mover:
        placing = []
        try:
            for number, scores in enumerate(iter_scores(model, paths, on_error=on_error,
                                                        features=novelty is not None,
                                                        progress=progress,
                                                        description="Sorting")):
                chunk = _rows(scores, threshold, novelty)
                _locate(chunk, into, placed_before)
                rows.extend(chunk)
                unreadable.extend(scores.unreadable)
                placing.append(mover.submit(_place, chunk, into, mode,
                                            f"{run}-{number:05d}", failed, placing_bar))
                if failed.is_set():
                    break
        except BaseException:  # chunks not started yet are not transferred
            failed.set()
            raise
        for future in placing:
            moved, used, placed = future.result()
            relocations.extend(moved)
            journals.extend(used)
            for key, value in placed.items():
                tally[key] = tally.get(key, []) + value
    counts = {}
    for row in rows:
        key = row["status"] if row["status"] == "unreadable" else \
            Path(row["destination"]).parent.name
        counts[key] = counts.get(key, 0) + 1
    return SortResult(rows=rows, counts=counts, threshold=threshold,
                      threshold_source=threshold_source, into=into,
                      predictions=into / PREDICTIONS_FILE, resumed=len(resumed_rows),
                      resumed_counts=_folder_counts(resumed_rows),
                      transferred=len(tally.get("transferred", ())),
                      already_in_place=len(tally.get("already", ())),
                      moved_by_other_run=tally.get("other", []),
                      unreadable=unreadable, relocations=relocations, journals=journals)


def _folder_counts(rows):
    counts = {}
    for row in rows:
        if row.get("destination") and row.get("status") != "unreadable":
            key = Path(row["destination"]).parent.name
            counts[key] = counts.get(key, 0) + 1
    return counts


@dataclass
class UndoResult:
    """What :func:`undo_sort` did.

    Attributes
    ----------
    restored : list of pathlib.Path
        Photos the sorts had moved, now back where they came from (each once).
    removed : int
        Copies and links the sorts had made, removed.
    later_moves_undone : int
        Moves made in ``into`` after a sort by hand (on the review page), undone with it.
    removed_folders : list of pathlib.Path
        Folders the sorts had created, removed once empty (with ``predictions.csv`` and
        skanimal's own state folder when nothing is left to undo).
    """

    restored: list = field(default_factory=list)
    removed: int = 0
    later_moves_undone: int = 0
    removed_folders: list = field(default_factory=list)


def undo_sort(into, *, discard_later_moves=False):
    """Reverse every sort into ``into``: moved photos go back, copies and links go away.

    Parameters
    ----------
    into : path-like
        The output folder of one or more :func:`sort_images` runs.
    discard_later_moves : bool, default=False
        Photos moved within ``into`` after a sort (corrections on the review page) are put
        back too, which discards those corrections: without this, :func:`undo_sort` refuses
        and says how many there are.

    Returns
    -------
    UndoResult

    Raises
    ------
    SkanimalError
        When ``into`` holds no sort to undo.
    LaterMovesError
        When later moves would be discarded and ``discard_later_moves`` is False.
    """
    into = Path(into).absolute()
    # Newest first: journal names start with their creation time (the review page's too).
    journals = sorted(_journal_dir(into).glob("*.json"), reverse=True)
    if not journals:
        raise SkanimalError(f"{os.fspath(into)!r} holds no sort to undo "
                            f"(no journal in {os.fspath(_journal_dir(into))!r}).")
    records = {journal: moves.read_journal(journal) for journal in journals}
    active = [j for j in journals if records[j]["state"] != "undone"]
    for journal in active:  # all of them before anything moves
        check_journal(into, journal, records[journal])
    # A sort's journals have a run record; the review page's have none: later moves.
    later = [j for j in active if not _run_file(j).exists()]
    n_later = sum(len(records[j]["entries"]) for j in later)
    if later and not discard_later_moves:
        raise LaterMovesError(os.fspath(into), n_later)
    result = UndoResult(later_moves_undone=n_later)
    before = {}
    for journal in active:
        if journal not in later and not journal.stem.endswith(_WITHIN):  # from outside OUT
            for entry in records[journal]["entries"]:
                before[entry["source"]] = (records[journal]["mode"], entry,
                                           os.path.lexists(entry["source"]),
                                           os.path.lexists(entry["destination"]))
    undone_sources, created, predictions_created = set(), [], False
    for journal in active:
        moves.undo(journal)
        run_file = _run_file(journal)
        if run_file.exists() and journal not in later:
            run = _read_run(run_file)
            undone_sources.update(r["source"] for r in run["rows"])
            created.extend(run["created"])
            predictions_created |= bool(run.get("created_predictions"))
    for source, (mode, entry, had_source, had_destination) in sorted(before.items()):
        if entry["existing"]:
            continue  # the bytes were there before the sort: kept, nothing to count
        if mode == "move" and not had_source and os.path.lexists(source):
            result.restored.append(Path(source))
        elif (mode != "move" and had_destination
              and not os.path.lexists(entry["destination"])):
            result.removed += 1
    _drop_predictions(into, undone_sources)
    result.removed_folders = _remove_created(into, created, predictions_created)
    return result


def _remove_created(into, created, predictions_created):
    """Remove what the undone sorts created and nothing else: their folders once empty,
    predictions.csv when they created it and no row is left, and skanimal's state folder
    when every journal in it is undone. Returns the folders removed."""
    predictions = into / PREDICTIONS_FILE
    if predictions_created and predictions.exists() and not read_sort_predictions(into):
        predictions.unlink()
    state = into / STATE_FOLDER
    if all(_journal_state(j) == "undone" for j in _journal_dir(into).glob("*.json")):
        for folder in (_journal_dir(into), state / "runs"):
            if folder.is_dir():
                for record in folder.glob("*.json"):
                    record.unlink()
        created = [os.fspath(_journal_dir(into)), os.fspath(state / "runs"), os.fspath(state),
                   *created]
    removed = []
    # Deepest first, so a folder emptied by removing its sub-folder goes too.
    for folder in sorted(set(created), key=lambda f: f.count(os.sep), reverse=True):
        path = Path(folder)
        if path != into and not _inside(path, into):
            continue  # a run record names only OUT and its folders
        try:
            path.rmdir()  # only if empty: never a file, never the user's
        except OSError:
            continue
        removed.append(path)
    return removed


# --- helpers -------------------------------------------------------------------------------

def _check_folder_names(classes):
    for label in classes:
        name = str(label)
        if (not name or name in (".", "..", REVIEW_FOLDER, TRASH_FOLDER) or name.startswith(".")
                or "/" in name or "\\" in name or "\0" in name):
            raise IncompatibleModelError(
                f"the model's class {name!r} cannot be used as a folder name in the output "
                f"(classes: {[str(c) for c in classes]}).")


def _collect(sources, into, previous):
    """:func:`skanimal.datasets.collect_images` of each source, ``into`` left out. A folder
    with no image left is an error, unless an earlier (maybe killed) move sort into
    ``into`` emptied it: running the same sort again then has nothing left to do."""
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    sorted_from = [row["source"] for row in previous if row.get("destination")]
    paths = []
    for source in sources:
        if os.path.isdir(source) and into.is_dir() and os.path.samefile(source, into):
            raise ImageFolderError(
                f"the output folder {os.fspath(into)!r} is also the folder to sort: sort into "
                "a new folder (one inside the photos' folder is fine).")
        try:
            paths.extend(collect_images([source], exclude=into))
        except ImageFolderError:
            folder = os.path.abspath(source) + os.sep
            if not (os.path.isdir(source) and any(s.startswith(folder) for s in sorted_from)):
                raise
    return paths


def _inside(path, folder):
    # Normalised: a path read back from predictions.csv may say "OUT/../elsewhere".
    return os.path.normpath(os.fspath(path)).startswith(os.fspath(folder) + os.sep)


def _same_file(a, b):
    """Whether ``b`` still holds ``a``'s photo: the same file, or a copy with the same size
    and modification time (copies keep it) or, failing that, the same bytes."""
    try:
        return filecmp.cmp(a, b, shallow=True)
    except OSError:
        return False


def _place(rows, into, mode, run, failed, bar=None):
    """Transfer the photos of one chunk's ``rows`` and record them in predictions.csv.

    Photos already in OUT move within it (first, so names they free are reused); the
    others are transferred in ``mode``. Each group has its own journal (``run``-within,
    ``run``); the rows are saved first (``runs/<run>.json``, with the folders and files this
    run is about to create, which an undo removes), so a resumed run can list them. Returns
    ``(relocations, journals, placed)``, ``placed`` listing the sources ``"transferred"``,
    found ``"already"`` in place, or taken by an ``"other"`` run first (with where it put
    them); does nothing once ``failed`` is set, and sets it when it raises. ``bar`` (a
    tqdm bar) counts each file placed, then the chunk's other rows.
    """
    if failed.is_set():
        return [], [], {}
    ticked = []

    def tick(_):
        ticked.append(1)
        bar.update()

    try:
        placed = {"already": [row["source"] for row in rows
                              if row["folder"] and row["destination"]]}
        within = [(row["current"], into / row["folder"]) for row in rows if row["move_within"]]
        pairs, placed["other"] = _claimed_elsewhere(into, rows)
        if within or pairs:
            created = [os.fspath(folder) for folder in
                       [into, *sorted({into / row["folder"] for row in rows if row["folder"]})]
                       if not folder.exists()]
            fileio.write_json(into / STATE_FOLDER / "runs" / f"{run}.json",
                              {"mode": mode, "rows": rows, "created": created,
                               "created_predictions": not (into / PREDICTIONS_FILE).exists()},
                              indent=None)
        journals = []
        for group, group_mode, journal in ((within, "move", f"{run}{_WITHIN}.json"),
                                           (pairs, mode, f"{run}.json")):
            if group:
                journals.append(_journal_dir(into) / journal)
                finals = moves.transfer(group, mode=group_mode, journal=journals[-1],
                                        on_file=None if bar is None else tick)
                _fill_destinations(rows, {source: final for (source, _), final
                                          in zip(group, finals)})
        if pairs:  # "existing": the same bytes were there already, nothing was written
            for entry in moves.read_journal(journals[-1])["entries"]:
                placed.setdefault("already" if entry["existing"] else "transferred",
                                  []).append(entry["source"])
        relocations = [(Path(row["current"]), Path(row["destination"])) for row in rows
                       if row["move_within"]]
        for row in rows:
            for key in _INTERNAL:
                row.pop(key, None)
        if rows:
            _update_predictions(into, rows)
        if bar is not None:  # rows not transferred (in place already, unreadable) count too
            bar.update(len(rows) - len(ticked))
        return relocations, journals, placed
    except BaseException:
        failed.set()
        raise


def _claimed_elsewhere(into, rows):
    """The ``(source, folder)`` pairs of ``rows`` to transfer, less the sources that are
    gone because another run moving from the same folder took them first (its journal in
    ``into`` lists them): their rows get that run's destination. Returns ``(pairs,
    [(source, destination), ...])``."""
    todo = [row for row in rows
            if row["folder"] and not row["move_within"] and not row["destination"]]
    gone = {row["current"] for row in todo if not os.path.lexists(row["current"])}
    taken = {}
    if gone:
        for journal in sorted(_journal_dir(into).glob("*.json")):
            try:
                entries = moves.read_journal(journal)["entries"]
            except moves.TransferError:
                continue  # being written, or damaged: it cannot vouch for anything
            for entry in entries:
                if entry["source"] in gone and os.path.lexists(entry["destination"]):
                    taken[entry["source"]] = entry["destination"]
    for row in todo:
        if row["current"] in taken:
            row["destination"] = taken[row["current"]]
    return ([(row["current"], into / row["folder"]) for row in todo
             if row["current"] not in taken],
            sorted(taken.items()))


def _index(previous, into):
    """``(by_source, by_destination)`` of the rows of an earlier predictions.csv."""
    by_source = {row["source"]: row for row in previous}
    by_destination = {os.path.join(into, row["destination"]): row for row in previous
                      if row.get("destination")}  # relative ones: to OUT
    return by_source, by_destination


def _locate(rows, into, placed_before):
    """Find where each photo is now, and whether it is already in ``into``.

    ``placed_before`` is :func:`_index` of the rows of earlier sorts. Sets ``current``
    (the file to transfer), ``move_within`` (it is in ``into``, in another
    folder than its new one: move it there) and, for a photo already in its folder,
    ``destination`` (nothing to do). A photo in ``into`` keeps the ``source`` of the row
    that placed it there; a source that an earlier sort placed in ``into`` is found by that
    row, if its copy is still there unchanged.
    """
    by_source, by_destination = placed_before
    for row in rows:
        current = row["source"]
        if _inside(current, into):
            earlier = by_destination.get(current)
            if earlier is not None and earlier["source"]:
                row["source"] = earlier["source"]
        else:
            earlier = by_source.get(current)
            placed = earlier and earlier.get("destination")
            if placed and _inside(placed, into) and _same_file(current, placed):
                current = placed
        row["current"] = current
        inside = _inside(current, into)
        if not row["folder"]:  # unreadable: left where it is
            row["destination"] = current if inside else ""
            row["move_within"] = False
            continue
        if inside and os.path.dirname(current) == os.fspath(into / row["folder"]):
            row["destination"] = current  # already in its folder
        row["move_within"] = inside and not row["destination"]


#: ``review_reason`` of a photo sent to review, by (unsure, unlike the training photos).
REVIEW_REASONS = {(False, False): "", (True, False): "low confidence",
                  (False, True): "unlike the training photos", (True, True): "both"}


def _rows(scores, threshold, novelty=None):
    """One predictions.csv row per photo: a class folder when the model is confident
    (top probability >= ``threshold``) and, with a ``novelty`` (a fitted
    :class:`skanimal.novelty.FeatureNovelty`), the photo is like the training photos."""
    classes = scores.classes
    rows = []
    order = np.argsort(-scores.proba, axis=1, kind="stable")
    unlike = (novelty.is_novel(scores.features) if novelty is not None and scores.paths
              else np.zeros(len(scores.paths), bool))
    for i, path in enumerate(scores.paths):
        ranked = order[i]
        confidence = float(scores.proba[i, ranked[0]])
        reason = REVIEW_REASONS[confidence < threshold, bool(unlike[i])]
        sure = not reason
        label = str(classes[ranked[0]])
        row = {"source": path, "destination": ""}
        for k in range(TOP_K):
            j = ranked[k] if k < len(ranked) else None
            row[f"label_{k + 1}"] = "" if j is None else str(classes[j])
            row[f"probability_{k + 1}"] = "" if j is None else round(float(scores.proba[i, j]),
                                                                      6)
        row.update(status="sorted" if sure else "review", review_reason=reason, error="",
                   folder=label if sure else REVIEW_FOLDER)
        rows.append(row)
    for path, error in scores.unreadable:
        row = {"source": path, "destination": ""}
        for k in range(TOP_K):
            row[f"label_{k + 1}"] = row[f"probability_{k + 1}"] = ""
        row.update(status="unreadable", review_reason="", error=error, folder="")
        rows.append(row)
    return rows


def _fill_destinations(rows, finals):
    """Set the ``destination`` of each row whose ``current`` file ``finals`` maps."""
    for row in rows:
        final = finals.get(row.get("current"))
        if final is not None:
            row["destination"] = os.fspath(final)


def _new_run_name():
    # Creation time first, as the review page names its journals: sorted names are in the
    # order things happened, which undo_sort reverses.
    return f"{time.time_ns():020d}-sort-{secrets.token_hex(3)}"


def _journal_dir(into):
    return journal_folder(into)


def _run_file(journal):
    """The rows file of the run a journal belongs to (its two journals share it)."""
    journal = Path(journal)
    run = journal.stem.removesuffix(_WITHIN)
    return journal.parent.parent / "runs" / f"{run}.json"


def _journal_destinations(journal):
    """``{source: destination}`` of a journal's entries."""
    return {entry["source"]: entry["destination"]
            for entry in moves.read_journal(journal)["entries"]}


def _read_run(path):
    """A run record (:func:`_place`), size-capped and checked: ``rows`` (each with a
    ``source`` string) and the ``created`` folders."""
    record = read_json(path, _MAX_RUN_BYTES, what="sort run record")
    rows = record.get("rows") if isinstance(record, dict) else None
    created = record.get("created", []) if isinstance(record, dict) else None
    if (not isinstance(rows, list) or not isinstance(created, list)
            or not all(isinstance(r, dict) and isinstance(r.get("source"), str) for r in rows)
            or not all(isinstance(c, str) for c in created)):
        raise DamagedFileError(f"{os.fspath(path)!r} is damaged (not a sort run record); the "
                               "photos it lists are where the file system says.")
    for row in rows:
        for key in ("destination", "status"):
            if not isinstance(row.get(key), str):
                row[key] = ""
    return record


def _journal_state(journal):
    return moves.read_journal(journal)["state"]


def _finish_interrupted(into):
    """Finish transfers a killed sort left; returns the rows of the photos they covered
    (with their destinations)."""
    finished = []
    pending = moves.pending(_journal_dir(into))
    for journal, _ in pending:  # all of them before anything moves
        check_journal(into, journal, moves.read_journal(journal))
    for journal, state in pending:
        if state != "planned":
            raise UndoInterruptedError(os.fspath(into))
        finals = moves.resume(journal)
        run_file = _run_file(journal)
        if not run_file.exists():  # another tool's journal (the review page's)
            finished.extend({"destination": os.fspath(f), "status": ""} for f in finals)
            continue
        rows = _read_run(run_file)["rows"]
        for done in sorted(run_file.parent.parent.glob(f"journal/{run_file.stem}*.json")):
            _fill_destinations(rows, _journal_destinations(done))
        for row in rows:
            for key in _INTERNAL:
                row.pop(key, None)
        done = [row for row in rows if row["destination"] or row["status"] == "unreadable"]
        _update_predictions(into, done)
        covered = {os.fspath(f) for f in finals}
        finished.extend(row for row in done if row["destination"] in covered)
    return finished


def _update_predictions(into, rows):
    """Merge ``rows`` into predictions.csv: a source's newest row replaces its older one."""
    new = {row["source"]: row for row in rows}
    merged = [new.pop(row["source"], row) for row in read_sort_predictions(into)]
    merged.extend(new.values())
    write_sort_predictions(into, merged)


def _drop_predictions(into, sources):
    if not (Path(into) / PREDICTIONS_FILE).exists():
        return
    write_sort_predictions(into, [r for r in read_sort_predictions(into)
                                  if r["source"] not in sources])
