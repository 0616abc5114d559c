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
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import moves
from ..datasets import load_image_folder
from ..exceptions import ImageFolderError, SkanimalError
from ..folders import (
    PREDICTIONS_FILE,
    REVIEW_FOLDER,
    STATE_FOLDER,
    file_key,
    journal_folder,
    read_sort_predictions,
)
from ..untrusted import MiB, read_csv, read_json
from .paths import PathRefused, relative_name, resolve_inside

__all__ = ["REVIEW_FOLDER", "STATE_FOLDER", "Catalog", "MoveRefused"]

#: Largest audit file read back (as for a sort's predictions.csv: a few million photos' rows).
_MAX_CSV_BYTES = 1024 * MiB


class MoveRefused(SkanimalError, ValueError):
    """A move or undo that cannot be done (unknown photo or class, nothing to undo)."""


@dataclass
class PhotoScore:
    """What a model said about one photo."""

    predicted: str
    confidence: float  # probability of ``predicted``
    proba: dict = field(default_factory=dict)  # class -> probability, when known


@dataclass
class Action:
    """One undoable change: its journals, in the order they ran, and the photos it moved
    (old, new relative paths, in the journals' order)."""

    journals: list
    moved: list


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
        self._undo = []      # Actions, most recent last
        self.scan()

    # ---------------------------------------------------------------------------- scanning

    def scan(self):
        """Read the folder again (after changes made elsewhere)."""
        try:
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

    @property
    def classes(self):
        """Class names in key order (without the review folder)."""
        with self._lock:
            folders = {folder for folder, _ in self._photos.values()}
        folders.discard(REVIEW_FOLDER)
        if self._given_classes is not None:
            return self._given_classes + sorted(folders - set(self._given_classes))
        folder_names = {p.name for p in self.root.iterdir()
                        if p.is_dir() and p.name != REVIEW_FOLDER and not p.name.startswith(".")}
        return sorted(folders | folder_names)

    def training_set(self):
        """``(paths, labels)`` of every photo in a class folder (the review folder left out)."""
        with self._lock:
            items = sorted((rel, folder) for rel, (folder, _) in self._photos.items()
                           if folder != REVIEW_FOLDER)
        return ([os.fspath(self.root / rel) for rel, _ in items],
                np.asarray([folder for _, folder in items], dtype=object))

    def folder_paths(self, folder=None):
        """Absolute paths of the photos in ``folder`` (every photo when None)."""
        with self._lock:
            return [os.fspath(self.root / rel) for rel, (f, _) in sorted(self._photos.items())
                    if folder is None or f == folder]

    # ------------------------------------------------------------------------------ scores

    def set_probabilities(self, paths, proba, classes):
        """Record a model's ``predict_proba`` rows for ``paths`` (absolute or relative)."""
        classes = [str(c) for c in classes]
        proba = np.asarray(proba, dtype=float)
        with self._lock:
            for path, row in zip(paths, proba):
                identity = self._identity_of(path)
                if identity is None:
                    continue
                best = int(np.argmax(row))
                self._scores[identity] = PhotoScore(classes[best], float(row[best]),
                                                dict(zip(classes, row.tolist())))

    def load_predictions(self, csv_path=None):
        """Read ``predictions.csv`` (``destination``, ``label_1``, ``probability_1``; older
        files' ``label``, ``confidence`` too); returns the number of rows matched to a
        photo. A missing file reads as none."""
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
                self._scores[identity] = PhotoScore(row["label_1"], confidence)
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
                    "version": _thumb_version(info),
                })
        sections = []
        for name, photos in by_folder.items():
            photos.sort(key=lambda p: (p["confidence"] is None, p["confidence"] or 0.0,
                                       p["path"]))
            sections.append({"name": name, "photos": photos})
        return {"classes": classes, "review_folder": REVIEW_FOLDER, "sections": sections}

    # ------------------------------------------------------------------------------ moves

    def _new_journal(self):
        self.journal_dir.mkdir(parents=True, exist_ok=True)
        return self.journal_dir / f"{time.time_ns():020d}-{secrets.token_hex(4)}.json"

    def move(self, relative, folder):
        """Move one photo into class folder ``folder`` (or the review folder), journaled.

        Returns
        -------
        dict
            ``{"from": old relative path, "to": new relative path, "folder": folder}``.
        """
        with self._lock:
            if (folder != REVIEW_FOLDER and folder not in self.classes) or "/" in folder \
                    or folder.startswith("."):
                raise MoveRefused(f"unknown class {folder!r}")
            try:
                resolve_inside(self.root, relative)
            except PathRefused as exc:
                raise MoveRefused(str(exc)) from None
            if relative not in self._photos:
                raise MoveRefused(f"{relative!r} is not a photo of this review")
            current, _ = self._photos[relative]
            if current == folder:
                return {"from": relative, "to": relative, "folder": folder}
            journal = self._new_journal()
            [final] = moves.transfer([(self.root / relative, self.root / folder)],
                                     mode="move", journal=journal)
            new = relative_name(self.root, final)
            del self._photos[relative]
            self._photos[new] = (folder, os.stat(final))
            self._undo.append(Action([journal], [(relative, new)]))
            return {"from": relative, "to": new, "folder": folder}

    def record(self, journals, moved):
        """Add a journaled multi-photo change (e.g. a re-sort: its journals in the order
        they ran) to the undo history and read the folder again."""
        with self._lock:
            self._undo.append(Action([Path(j) for j in journals], list(moved)))
            self.scan()

    def undo(self):
        """Undo the most recent move (or re-sort); returns ``[{"from", "to"}]`` per photo."""
        with self._lock:
            if not self._undo:
                raise MoveRefused("nothing to undo")
            action = self._undo.pop()
            restored = []
            for journal in reversed(action.journals):
                restored[:0] = moves.undo(journal)
            self.scan()
            back = []
            for (_, new), path in zip(action.moved, restored):
                back.append({"from": new, "to": relative_name(self.root, path),
                             "folder": relative_name(self.root, path).split("/", 1)[0]})
            return back

    @property
    def can_undo(self):
        with self._lock:
            return bool(self._undo)

    def finish_interrupted(self):
        """Finish (or finish undoing) moves a killed earlier session left half done; returns
        how many journals were completed."""
        done = 0
        for journal, state in moves.pending(self.journal_dir):
            if state == "planned":
                moves.resume(journal)
            else:
                moves.undo(journal)
            done += 1
        if done:
            self.scan()
        return done
