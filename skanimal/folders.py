"""The labelled-folder layout that ``skanimal sort`` writes and the review page reads.

A sorted folder ``OUT`` holds one sub-folder per class, :data:`REVIEW_FOLDER` for the photos
no class was confident enough for, :data:`PREDICTIONS_FILE` (one row per sorted photo, the
columns of :func:`prediction_columns`) and :data:`STATE_FOLDER`, skanimal's own state
(journals, run records, thumbnails). This module is the one place that knows those names and
the file's columns; :mod:`skanimal.sorting` writes the folder and the review page
(``skanimal.review``) reads and edits it.

It also holds :func:`file_key`, the identity of a file's current content that survives a
move within its file system, used to remember features and thumbnails of photos that are
moved between class folders.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from .datasets import IMAGE_EXTENSIONS
from .exceptions import DamagedFileError
from .fileio import atomic_write
from .report import top_k_columns
from .untrusted import MiB, read_csv

__all__ = ["REVIEW_FOLDER", "TRASH_FOLDER", "PREDICTIONS_FILE", "STATE_FOLDER", "TOP_K", "file_key",
           "journal_folder", "check_journal",
           "prediction_columns", "read_sort_predictions", "write_sort_predictions"]

#: Folder (inside OUT) of the photos the model is not confident about ("none of these").
REVIEW_FOLDER = "_review"

#: Folder (inside OUT) of the photos a person threw away on the review page: kept, never
#: deleted (an undo or a move brings them back), never a class, never trained on or sorted.
TRASH_FOLDER = "_trash"

#: File (inside OUT) listing every sorted photo.
PREDICTIONS_FILE = "predictions.csv"

#: skanimal's own state inside OUT: journals, run records, the review page's thumbnails.
STATE_FOLDER = ".skanimal"

#: Classes recorded per photo in predictions.csv (the most probable one and runners-up).
TOP_K = 3

#: Largest predictions.csv read back: a few million photos' rows.
MAX_PREDICTIONS_BYTES = 1024 * MiB

#: Column names of predictions.csv files written before the ``label_<i>``/``probability_<i>``
#: scheme, read as their new names.
_OLD_COLUMNS = {"label": "label_1", "confidence": "probability_1",
                "label_2": "label_2", "confidence_2": "probability_2",
                "label_3": "label_3", "confidence_3": "probability_3"}


def check_journal(folder, journal, record):
    """Refuse a journal of ``folder`` that names a file no sort into it, nor its review page,
    would have written there.

    A sorted folder may come from elsewhere (shared, downloaded, restored from a backup),
    and its journals with it; finishing or undoing one must not create, move or remove a
    file elsewhere on the disk. So every destination must lie inside ``folder`` (symbolic
    links resolved), and every source outside it must be an image file
    (:data:`skanimal.datasets.IMAGE_EXTENSIONS`): what a sort takes from its sources.

    Parameters
    ----------
    folder : path-like
        The sorted folder (OUT).
    journal : path-like
        The journal file, for the message.
    record : dict
        Its record, as ``skanimal.moves.read_journal`` returns it.

    Raises
    ------
    DamagedFileError
        Naming the journal and the first such file; check every journal before acting on
        any, and nothing is moved.
    """
    root = os.path.realpath(folder)

    def inside(path):
        return os.path.realpath(path).startswith(root + os.sep)

    for entry in record["entries"]:
        if not inside(entry["destination"]):
            path, why = entry["destination"], f"a destination outside {os.fspath(folder)!r}"
        elif (not inside(entry["source"])
              and os.path.splitext(entry["source"])[1].lower() not in IMAGE_EXTENSIONS):
            path, why = entry["source"], "a source that is not an image file"
        else:
            continue
        raise DamagedFileError(
            f"journal {os.fspath(journal)!r} names {path!r}, {why}: no sort nor review of "
            "this folder writes that (was the journal edited, or the folder copied from "
            "elsewhere?); nothing was moved.")


def journal_folder(folder):
    """Where the journals of the moves within a sorted folder are kept (sorts' and the
    review page's alike, so an undo of either sees both).

    Parameters
    ----------
    folder : path-like
        A sorted folder (OUT).

    Returns
    -------
    pathlib.Path
    """
    return Path(folder) / STATE_FOLDER / "journal"


def prediction_columns():
    """The columns of predictions.csv, in order.

    Returns
    -------
    list of str
        ``source`` (the photo as it was found), ``destination`` (where it is now),
        :func:`skanimal.report.top_k_columns` of :data:`TOP_K`, ``status``
        (``"sorted"``, ``"review"`` or ``"unreadable"`` as a sort writes it; after a person
        moved or accepted the photo on the review page ``"confirmed"`` — its label is then
        the folder ``destination`` names, while ``label_k``/``probability_k`` stay the
        model's — or ``"trashed"``), ``review_reason`` (why a sort sent a photo to review:
        ``"low confidence"``, ``"unlike the training photos"``, ``"both"``) and ``error``.
    """
    return ["source", "destination", *top_k_columns(TOP_K), "status", "review_reason",
            "error"]


def read_sort_predictions(folder, name=PREDICTIONS_FILE, *, required=("source", "destination")):
    """The rows of ``folder``'s predictions.csv, as dicts; none when it has no such file.

    Files written by earlier versions (``label``, ``confidence``, ``label_2``,
    ``confidence_2``...) are read under the current column names.

    Parameters
    ----------
    folder : path-like
        A sorted folder (OUT).
    name : str, default=PREDICTIONS_FILE
        The file's name in ``folder``.
    required : sequence of str, default=("source", "destination")
        Columns the file must have (a sort's own file has both).

    Returns
    -------
    list of dict
    """
    path = Path(folder) / name
    if not path.exists():
        return []
    # A folder's files may come from anyone (a shared folder): capped and parsed defensively.
    rows = read_csv(path, MAX_PREDICTIONS_BYTES, required=required, what="predictions file")
    if rows and "confidence" in rows[0] and "probability_1" not in rows[0]:
        rows = [{_OLD_COLUMNS.get(key, key): value for key, value in row.items()}
                for row in rows]
    return rows


def write_sort_predictions(folder, rows):
    """Write ``rows`` as ``folder``'s predictions.csv, atomically.

    Parameters
    ----------
    folder : path-like
        A sorted folder (OUT).
    rows : list of dict
        Keys of :func:`prediction_columns` (others are ignored, missing ones left empty).
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=prediction_columns(), extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_write(Path(folder) / PREDICTIONS_FILE, "w") as handle:
        handle.write(buffer.getvalue())


def file_key(path_or_stat):
    """``(st_dev, st_ino, st_size, st_mtime_ns)`` of a file: what it holds, wherever it is.

    A move within the file system keeps all four, so what was computed from a photo
    (features, a thumbnail) follows it between class folders; editing the file changes
    the key.

    Parameters
    ----------
    path_or_stat : path-like or os.stat_result

    Returns
    -------
    tuple of int
    """
    info = path_or_stat if isinstance(path_or_stat, os.stat_result) else os.stat(path_or_stat)
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
