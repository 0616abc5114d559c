"""The photos of a reviewed folder: where each one is, what the model thinks of it, and
moving it to another class folder (journaled, undoable).

The folder is a class-per-folder set (as made by ``skanimal sort``): ``DIR/<class>/...`` and
``DIR/_review/...`` for the photos the model was unsure of. What is known about a photo
(the model's probabilities, an audit's suspicion) is kept by file identity (device and
inode), which a move inside the folder keeps, so it follows the photo wherever it is moved.

Sources of scores, in this order: the model given to the app (its ``predict_proba``, set with
:meth:`Catalog.set_probabilities`), else ``DIR/predictions.csv`` (``destination``,
``label_1``, ``probability_1``, as ``skanimal sort`` writes it; read with
:func:`skanimal.folders.read_sort_predictions`). The folder's layout (``_review``, the
state folder) is :mod:`skanimal.folders`'. Audit suspects come from
``DIR/audit.csv`` or ``DIR/audit.json`` when present (``skanimal audit DIR --format csv >
DIR/audit.csv``): the audit is cross-validation, too slow to run on every page load.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import moves
from ..datasets import load_image_folder
from ..exceptions import ImageFolderError, SkanimalError
from ..fileio import write_json
from ..folders import (
    PREDICTIONS_FILE,
    REVIEW_FOLDER,
    STATE_FOLDER,
    TRASH_FOLDER,
    check_journal,
    file_key,
    journal_folder,
    read_sort_predictions,
    write_sort_predictions,
)
from ..untrusted import MiB, read_csv, read_json
from .paths import PathRefused, relative_name, resolve_inside

__all__ = ["REVIEW_FOLDER", "STATE_FOLDER", "TRASH_FOLDER", "Catalog", "MoveRefused"]

#: Largest audit file read back (as for a sort's predictions.csv: a few million photos' rows).
_MAX_CSV_BYTES = 1024 * MiB

#: The ``status`` a photo's predictions.csv row gets when a person moves it to a folder
#: (any class folder: ``"confirmed"``).
_STATUS_OF = {REVIEW_FOLDER: "review", TRASH_FOLDER: "trashed"}

#: Journal names of one sort run (``<time>-sort-<id>-<chunk>``): undone together.
_SORT_RUN = re.compile(r"^(\d{20}-sort-[0-9a-f]+)")


class MoveRefused(SkanimalError, ValueError):
    """A move or undo that cannot be done (unknown photo or class, nothing to undo)."""


@dataclass
class PhotoScore:
    """What a model said about one photo."""

    predicted: str
    confidence: float  # probability of ``predicted``
    proba: dict = field(default_factory=dict)  # class -> probability, when known
    # why a sort sends (or sent) it to review: "low confidence", "unlike the training
    # photos", "both", or "" (skanimal.sorting.REVIEW_REASONS)
    reason: str = ""


def _identity(stat_result):
    return (stat_result.st_dev, stat_result.st_ino)


def _thumb_version(stat_result):
    return "-".join(f"{part:x}" for part in file_key(stat_result))


class Catalog:
    """The photos below ``root`` and what is known about them; thread-safe.

    Parameters
    ----------
    root : path-like
        The reviewed folder.
    classes : sequence of str, optional
        Class names in key order (keys 1-9); default: the model's, else the folder names.
    """

    def __init__(self, root, classes=None):
        root = Path(root).expanduser()
        if not root.is_dir():
            raise ImageFolderError(f"review folder {os.fspath(root)!r} does not exist or is "
                                   "not a folder")
        self.root = Path(os.path.realpath(root))
        self.state_dir = self.root / STATE_FOLDER
        self.journal_dir = journal_folder(self.root)
        self._lock = threading.RLock()
        self._given_classes = [str(c) for c in classes] if classes is not None else None
        self._scores = {}    # identity -> PhotoScore
        self._suspects = {}  # identity -> suggested class (str)
        self._status = {}    # identity -> predictions.csv status (sorted, confirmed...)
        self._journals = {}  # (name, file key) -> whether it is an undoable step
        self.scan()

    # ---------------------------------------------------------------------------- scanning

    def scan(self):
        """Read the folder again (after changes made elsewhere)."""
        try:
            with warnings.catch_warnings():  # empty class folders are fine here
                warnings.simplefilter("ignore", UserWarning)
                data = load_image_folder(self.root)
            paths, folders = data.paths, data.target
        except ImageFolderError:  # no class folders or no images yet: an empty review
            paths, folders = [], []
        photos = {}
        for path, folder in zip(paths, folders):
            try:
                info = os.stat(path)
            except OSError:
                continue
            photos[relative_name(self.root, path)] = (str(folder), info)
        with self._lock:
            self._photos = photos
            self._status = {}
            for row in read_sort_predictions(self.root, required=()):
                identity = self._identity_of(row.get("destination") or "")
                if identity is not None:  # a row without a status: a sort's older file
                    self._status[identity] = row.get("status") or "sorted"

    @property
    def classes(self):
        """Class names in key order (without the review folder)."""
        with self._lock:
            folders = {folder for folder, _ in self._photos.values()}
        folders.discard(REVIEW_FOLDER)
        if self._given_classes is not None:
            return self._given_classes + sorted(folders - set(self._given_classes))
        folder_names = {p.name for p in self.root.iterdir()
                        if p.is_dir() and p.name not in (REVIEW_FOLDER, TRASH_FOLDER)
                        and not p.name.startswith(".")}
        return sorted(folders | folder_names)

    def training_set(self):
        """``(paths, labels)`` of every photo in a class folder (the review and trash
        folders left out): a photo's label is the class folder it is in."""
        with self._lock:
            items = sorted((rel, folder) for rel, (folder, _) in self._photos.items()
                           if folder not in (REVIEW_FOLDER, TRASH_FOLDER))
        return ([os.fspath(self.root / rel) for rel, _ in items],
                np.asarray([folder for _, folder in items], dtype=object))

    def training_sources(self):
        """The photos in class folders by who labelled them: ``{"confirmed": [...],
        "model": [...], "folder": [...]}`` of ``(absolute path, class)``.

        ``confirmed``: a person moved or accepted it on this page (its predictions.csv row
        says ``confirmed``); ``model``: ``skanimal sort`` (or a re-sort) put it there and no
        one has checked it; ``folder``: no row in predictions.csv, so the folder it is in is
        the only label there is (a class-per-folder set a person made).
        """
        sources = {"confirmed": [], "model": [], "folder": []}
        with self._lock:
            for rel, (folder, info) in sorted(self._photos.items()):
                if folder in (REVIEW_FOLDER, TRASH_FOLDER):
                    continue
                status = self._status.get(_identity(info))
                kind = ("confirmed" if status == "confirmed" else
                        "folder" if status is None else "model")
                sources[kind].append((os.fspath(self.root / rel), folder))
        return sources

    def folder_paths(self, folder=None):
        """Absolute paths of the photos in ``folder`` (every photo when None)."""
        with self._lock:
            return [os.fspath(self.root / rel) for rel, (f, _) in sorted(self._photos.items())
                    if folder is None or f == folder]

    # ------------------------------------------------------------------------------ scores

    def set_probabilities(self, paths, proba, classes, reasons=None):
        """Record a model's ``predict_proba`` rows for ``paths`` (absolute or relative), and
        optionally why a sort would send each photo to review (``reasons``, one per path)."""
        classes = [str(c) for c in classes]
        proba = np.asarray(proba, dtype=float)
        reasons = [""] * len(proba) if reasons is None else list(reasons)
        with self._lock:
            for path, row, reason in zip(paths, proba, reasons):
                identity = self._identity_of(path)
                if identity is None:
                    continue
                best = int(np.argmax(row))
                self._scores[identity] = PhotoScore(classes[best], float(row[best]),
                                                dict(zip(classes, row.tolist())), reason)

    def load_predictions(self, csv_path=None):
        """Read ``predictions.csv`` (``destination``, ``label_1``, ``probability_1``,
        ``review_reason``; older files' ``label``, ``confidence`` too); returns the number of
        rows matched to a photo. A missing file reads as none."""
        csv_path = Path(csv_path) if csv_path else self.root / PREDICTIONS_FILE
        if not csv_path.is_file():
            return 0
        matched = 0
        for row in read_sort_predictions(csv_path.parent, csv_path.name, required=()):
            identity = self._identity_of(row.get("destination") or row.get("path") or "")
            try:
                confidence = float(row.get("probability_1", ""))
            except ValueError:
                continue
            if identity is None or not row.get("label_1") or not 0 <= confidence <= 1:
                continue
            with self._lock:
                self._scores[identity] = PhotoScore(row["label_1"], confidence,
                                                    reason=row.get("review_reason") or "")
            matched += 1
        return matched

    def load_audit(self):
        """Read ``audit.csv`` or ``audit.json`` in the folder (``path`` and the suggested
        class); returns the number of suspects matched to a photo."""
        rows = []
        if (self.root / "audit.json").is_file():
            loaded = read_json(self.root / "audit.json", _MAX_CSV_BYTES, what="audit file")
            rows = loaded.get("suspects", []) if isinstance(loaded, dict) else loaded
            rows = rows if isinstance(rows, list) else []
        elif (self.root / "audit.csv").is_file():
            rows = read_csv(self.root / "audit.csv", _MAX_CSV_BYTES, what="audit file")
        matched = 0
        for row in rows:
            if not isinstance(row, dict):
                continue
            suggested = next((row[key] for key in ("suggested", "suggested_label", "suggestion")
                              if row.get(key)), None)
            identity = self._identity_of(row.get("path") or "")
            if identity is not None and suggested:
                with self._lock:
                    self._suspects[identity] = str(suggested)
                matched += 1
        return matched

    def _identity_of(self, path):
        """The identity of the photo a path in a CSV names: as given (absolute, or relative
        to the folder or the working directory), else by its last two components
        (``class/name``), which survive the folder having been moved or renamed."""
        if not path:
            return None
        path = Path(path)
        candidates = [path] if path.is_absolute() else [self.root / path, Path.cwd() / path]
        for candidate in candidates:
            real = os.path.realpath(candidate)
            if os.path.commonpath([real, os.fspath(self.root)]) == os.fspath(self.root):
                entry = self._photos.get(relative_name(self.root, real))
                if entry is not None:
                    return _identity(entry[1])
        entry = self._photos.get("/".join(path.parts[-2:]))
        return None if entry is None else _identity(entry[1])

    # ---------------------------------------------------------------------------- listing

    def listing(self):
        """Sections of photos for the page: the review folder first, then each class in key
        order; inside each, least confident first (unscored photos last)."""
        with self._lock:
            classes = self.classes
            by_folder = {name: [] for name in [REVIEW_FOLDER] + classes}
            for rel, (folder, info) in self._photos.items():
                identity = _identity(info)
                scores = self._scores.get(identity)
                if scores is None:
                    confidence = None
                elif folder == REVIEW_FOLDER or folder == scores.predicted:
                    confidence = scores.confidence
                else:  # moved by hand since: the model's probability of the new class
                    confidence = scores.proba.get(folder)
                by_folder.setdefault(folder, []).append({
                    "path": rel,
                    "name": rel.rsplit("/", 1)[-1],
                    "folder": folder,
                    "predicted": None if scores is None else scores.predicted,
                    "confidence": confidence,
                    "suspect": self._suspects.get(identity),
                    # the model's reason to send it to review, while the photo is where the
                    # model put it (in _review, or in the class it predicts)
                    "review_reason": (scores.reason or None
                                      if scores is not None
                                      and folder in (REVIEW_FOLDER, scores.predicted)
                                      else None),
                    # who put it here: a person ("confirmed"), the model ("sorted" or
                    # "review"), or unknown (no row in predictions.csv)
                    "status": self._status.get(identity),
                    "version": _thumb_version(info),
                })
        sections = []
        for name, photos in by_folder.items():
            photos.sort(key=lambda p: (p["confidence"] is None, p["confidence"] or 0.0,
                                       p["path"]))
            sections.append({"name": name, "photos": photos})
        return {"classes": classes, "review_folder": REVIEW_FOLDER,
                "trash_folder": TRASH_FOLDER, "sections": sections}

    # ------------------------------------------------------------------------------ moves

    def _new_journal(self):
        self.journal_dir.mkdir(parents=True, exist_ok=True)
        return self.journal_dir / f"{time.time_ns():020d}-{secrets.token_hex(4)}.json"

    def _check_folder(self, folder):
        if not isinstance(folder, str) or "/" in folder or folder.startswith(".") or (
                folder not in (REVIEW_FOLDER, TRASH_FOLDER) and folder not in self.classes):
            raise MoveRefused(f"unknown class {folder!r}")

    def _check_photo(self, relative):
        try:
            resolve_inside(self.root, relative)
        except PathRefused as exc:
            raise MoveRefused(str(exc)) from None
        if relative not in self._photos:
            raise MoveRefused(f"{relative!r} is not a photo of this review")

    def move(self, relative, folder):
        """Move one photo into class folder ``folder`` (or the review or trash folder),
        journaled; its row in ``predictions.csv`` says where it is now.

        Returns
        -------
        dict
            ``{"from": old relative path, "to": new relative path, "folder": folder}``.
        """
        return self.move_many([(relative, folder)])["moved"][0]

    def accept(self, relatives):
        """Move each photo to the class the model predicts for it (a photo already there
        is confirmed where it is), as one undoable step. See :meth:`move_many`."""
        with self._lock:
            pairs = []
            for relative in relatives:
                self._check_photo(relative)
                scores = self._scores.get(_identity(self._photos[relative][1]))
                if scores is None:
                    raise MoveRefused(f"{relative!r} has no prediction to accept")
                pairs.append((relative, scores.predicted))
            return self.move_many(pairs)

    def move_many(self, pairs):
        """Move photos, each into its folder, as ONE journal: one undoable step.

        Parameters
        ----------
        pairs : sequence of (str, str)
            ``(relative path, folder)``: a class folder, the review folder or the trash
            folder. A photo already in its folder moves nothing; in a class folder it is
            marked confirmed (its row in ``predictions.csv``).

        Returns
        -------
        dict
            ``moved``: ``[{"from", "to", "folder"}]`` per photo, in order (``from == to``
            for those that stayed).
        """
        with self._lock:
            pairs = [(rel, folder) for rel, folder in pairs]
            if not pairs:
                raise MoveRefused("no photo selected")
            if len({rel for rel, _ in pairs}) != len(pairs):
                raise MoveRefused("a photo is named twice")
            for relative, folder in pairs:
                self._check_folder(folder)
                self._check_photo(relative)
            moving = [(rel, folder) for rel, folder in pairs
                      if self._photos[rel][0] != folder]
            finals = {}
            journal = None
            if moving:
                journal = self._new_journal()
                done = moves.transfer([(self.root / rel, self.root / folder)
                                       for rel, folder in moving], mode="move",
                                      journal=journal)
                for (rel, folder), final in zip(moving, done):
                    new = relative_name(self.root, final)
                    del self._photos[rel]
                    self._photos[new] = (folder, os.stat(final))
                    finals[rel] = new
            result = [{"from": rel, "to": finals.get(rel, rel), "folder": folder}
                      for rel, folder in pairs]
            self._rewrite_rows(result, journal)
            for item in result:  # out of the review (as a scan leaves them)
                if item["folder"] == TRASH_FOLDER:
                    self._photos.pop(item["to"], None)
            return {"moved": result}

    # ----------------------------------------------------------------- predictions.csv rows

    def _rows_record(self, journal):
        return self.state_dir / "review-rows" / (Path(journal).stem + ".json")

    def _row_index(self, rows):
        index = {}
        for i, row in enumerate(rows):
            destination = row.get("destination") or ""
            if destination:
                index[os.path.realpath(self.root / destination)] = i
        return index

    def _rewrite_rows(self, result, journal):
        """Rewrite the rows of ``result``'s photos in predictions.csv: ``destination`` where
        the photo is now, ``status`` what a person made of it (``confirmed`` in a class
        folder, ``review``, ``trashed``). The rows as they were are kept beside the journal
        so that undo puts them back."""
        rows = read_sort_predictions(self.root, required=())
        index = self._row_index(rows)
        before = []
        for item in result:
            old = os.fspath(self.root / item["from"])
            new = os.fspath(self.root / item["to"])
            status = _STATUS_OF.get(item["folder"], "confirmed")
            i = index.get(old)
            if i is None:
                rows.append({"source": old, "destination": new, "status": status})
                index[new] = len(rows) - 1
                before.append({"destination": new, "row": None})
            else:
                before.append({"destination": new, "row": dict(rows[i])})
                # A person's decision now: the model's reason for review no longer applies.
                rows[i] = {**rows[i], "destination": new, "status": status, "error": "",
                           "review_reason": ""}
                index[new] = index.pop(old)
            self._status[_identity(self._photos[item["to"]][1])] = status
        if journal is not None:
            write_json(self._rows_record(journal), {"rows": before})
        write_sort_predictions(self.root, rows)

    def _restore_rows(self, journals, restored):
        """Put back the predictions.csv rows :meth:`_rewrite_rows` kept for ``journals``."""
        saved = []
        for journal in journals:
            record = self._rows_record(journal)
            if record.is_file():
                loaded = read_json(record, _MAX_CSV_BYTES, what="review rows record")
                saved.extend(loaded.get("rows", []) if isinstance(loaded, dict) else [])
        if not saved or not (self.root / PREDICTIONS_FILE).is_file():
            return
        rows = read_sort_predictions(self.root, required=())
        index = self._row_index(rows)
        back = dict(restored)  # moved-to path -> restored path
        drop = set()
        for item in saved:
            if not isinstance(item, dict) or not isinstance(item.get("destination"), str):
                continue
            i = index.get(os.path.realpath(item["destination"]))
            if i is None:
                continue
            if item.get("row") is None:
                drop.add(i)
            elif isinstance(item["row"], dict):
                row = {str(k): str(v) for k, v in item["row"].items()}
                now = back.get(os.path.realpath(item["destination"]))
                if now is not None and row.get("destination") and os.path.realpath(
                        self.root / row["destination"]) != os.path.realpath(now):
                    row["destination"] = os.fspath(now)  # put back under a suffixed name
                rows[i] = row
        write_sort_predictions(self.root, [r for i, r in enumerate(rows) if i not in drop])

    # ------------------------------------------------------------------------------- undo

    def history(self):
        """The undoable steps, oldest first, rebuilt from the journals on disk: each is the
        list of journals of one page action (one journal) or one sort run (its journals),
        for moves within the folder that are done and not undone."""
        if not self.journal_dir.is_dir():
            return []
        groups = {}
        root = os.fspath(self.root) + os.sep
        for journal in sorted(self.journal_dir.glob("*.json")):
            if not self._undoable(journal, root):
                continue
            run = _SORT_RUN.match(journal.stem)
            groups.setdefault(run.group(1) if run else journal.stem, []).append(journal)
        return list(groups.values())

    def _undoable(self, journal, root):
        """Whether ``journal`` is a finished move within the folder; remembered by the
        journal file's identity (a journal changes only when it is undone)."""
        try:
            key = (journal.name, *file_key(journal))
        except OSError:
            return False
        known = self._journals.get(key)
        if known is None:
            try:
                record = moves.read_journal(journal)
            except SkanimalError:
                known = False
            else:
                known = bool(record["entries"]) and record["mode"] == "move" \
                    and record["state"] == "done" and all(
                        os.path.realpath(e[k]).startswith(root)
                        for e in record["entries"] for k in ("source", "destination"))
            self._journals[key] = known
        return known

    def record(self, journals, moved):
        """Read the folder again after a journaled change made elsewhere (e.g. a re-sort of
        the review folder): its journals are in the folder's history (:meth:`history`)."""
        with self._lock:
            self.scan()

    def undo(self):
        """Undo the most recent step (a move of one or many photos, or a re-sort), wherever
        it was made (this session or an earlier one); returns ``[{"from", "to",
        "folder"}]`` per photo."""
        with self._lock:
            steps = self.history()
            if not steps:
                raise MoveRefused("nothing to undo")
            journals = steps[-1]
            for journal in journals:
                check_journal(self.root, journal, moves.read_journal(journal))
            back = []
            pairs = []
            for journal in reversed(journals):
                entries = moves.read_journal(journal)["entries"]
                restored = moves.undo(journal)
                for entry, path in zip(entries, restored):
                    pairs.append((os.path.realpath(entry["destination"]), path))
                    back.append({"from": relative_name(self.root, entry["destination"]),
                                 "to": relative_name(self.root, path),
                                 "folder": relative_name(self.root, path).split("/", 1)[0]})
            self._restore_rows(journals, pairs)
            self.scan()
            return back

    @property
    def can_undo(self):
        with self._lock:
            return bool(self.history())

    def undo_steps(self):
        """How many steps :meth:`undo` can take back."""
        with self._lock:
            return len(self.history())

    def finish_interrupted(self):
        """Finish (or finish undoing) moves a killed earlier session left half done; returns
        how many journals were completed."""
        done = 0
        pending = moves.pending(self.journal_dir)
        for journal, _ in pending:  # all of them before anything moves
            check_journal(self.root, journal, moves.read_journal(journal))
        for journal, state in pending:
            if state == "planned":
                moves.resume(journal)
            else:
                moves.undo(journal)
            done += 1
        if done:
            self.scan()
        return done
