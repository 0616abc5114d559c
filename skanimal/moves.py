"""Journaled, crash-safe file transfers: copy, link or move photos into folders, and undo.

The promise: no photo is ever lost, overwritten or left half-written, whatever moment the
process is killed at.

* Names never clobber. A file is published under its final name with :func:`os.link`,
  which fails instead of replacing an existing file (copies are written to a temporary file
  first, synced, then linked). A name that is taken gets a suffix: ``cat.jpg`` becomes
  ``cat (1).jpg``. A destination that already holds the same bytes under the name (or one of
  its suffixed variants) is used as it is, so a transfer run twice duplicates nothing.
* Moves are journaled. Before any file moves, the whole plan (every source and its final
  name) is written and synced to the journal file. Each move is a hard link then an unlink
  of the source (the no-clobber equivalent of a rename); across file systems, a copy that is
  synced and linked into place before the source is unlinked. At every instant each photo
  exists complete at its source, its destination, or both.
* Recovery is by state. Calling :func:`transfer` again with the same journal (or
  :func:`resume`) looks at each planned file: source only → move it; both with the same
  bytes → the kill came between link and unlink, so remove the source; destination only →
  done. :func:`undo` reverses the same way, and is itself safe to kill and rerun.

Every file this module writes (journals, copies) goes through ``skanimal.fileio``.
"""

from __future__ import annotations

import contextlib
import errno
import filecmp
import itertools
import json
import os
import re
import secrets
from pathlib import Path

from . import fileio
from .exceptions import SkanimalError
from .untrusted import MiB, read_json

__all__ = ["MODES", "TransferError", "transfer", "resume", "undo", "pending", "free_names",
           "copy_number", "read_journal"]

#: Transfer modes accepted by :func:`transfer`.
MODES = ("copy", "link", "move")

JOURNAL_FORMAT = "skanimal-moves"
JOURNAL_VERSION = 1

# Journal states: "planned" (written before anything moves), "done", "undoing", "undone".
_RESUMABLE = "planned"
_UNDO_STATES = ("undoing", "undone")

# os.link failures that mean "no hard link possible here" rather than "name taken":
# another file system, or one without hard links (FAT, some network shares).
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.ENOSYS, errno.EACCES}
if hasattr(errno, "EOPNOTSUPP"):
    _NO_LINK.add(errno.EOPNOTSUPP)


class TransferError(SkanimalError, OSError):
    """A file could not be transferred or restored; the message names it.

    Files already handled stay consistent: a journaled transfer can be resumed or undone.
    """


def transfer(moves, *, mode="copy", journal=None, on_file=None):
    """Copy, hard/sym-link or move files into folders, never overwriting, never losing one.

    Parameters
    ----------
    moves : iterable of (path-like, path-like)
        ``(source_file, destination_folder)`` pairs. Folders are created as needed.
    mode : {"copy", "link", "move"}, default="copy"
        ``"copy"`` leaves sources untouched (and keeps their modification times);
        ``"link"`` makes hard links (symbolic links across file systems); ``"move"``
        relocates the files.
    journal : path-like, optional
        Journal file, required for ``mode="move"``. The full plan is written and synced
        there before any file moves. If the file already exists, it must record this same
        transfer (same pairs, same mode): the transfer is then finished from where it
        stopped, so calling ``transfer`` again after a kill completes the job with every
        file exactly once, none partial.
    on_file : callable, optional
        Called with the final path of each file once it is in place, in order (a progress
        bar's hook).

    Returns
    -------
    list of pathlib.Path
        The final path of each source, in order. Names that collide get a suffix like
        ``"name (1).jpg"``; a source whose bytes are already present at the destination
        (under its name or a suffixed one) is not duplicated and that file is returned.

    Raises
    ------
    TransferError
        A source is missing, not a regular file or unreadable (checked for all sources
        before anything is touched), a destination is not a folder, the journal records
        another transfer, or a file operation fails (files already handled stay
        consistent and the journal can be resumed or undone).
    ValueError
        Bad ``mode``, or ``mode="move"`` without a journal.
    """
    if mode not in MODES:
        raise ValueError(f"transfer: mode must be one of {MODES}, got {mode!r}.")
    if mode == "move" and journal is None:
        raise ValueError("transfer: mode='move' needs a journal file (journal=...).")
    pairs = _check_pairs(moves)
    if journal is not None and os.path.lexists(journal):
        record = read_journal(journal)
        recorded = [(e["source"], e["folder"]) for e in record["entries"]]
        if record["mode"] != mode or recorded != pairs:
            raise TransferError(
                f"journal {os.fspath(journal)!r} records a different transfer "
                f"({record['mode']} of {len(recorded)} file(s)); use a new journal file."
            )
        if record["state"] in _UNDO_STATES:
            raise TransferError(f"journal {os.fspath(journal)!r} has been undone; "
                                "use a new journal file to transfer again.")
        return _run(record, journal, on_file)
    record = {
        "format": JOURNAL_FORMAT,
        "version": JOURNAL_VERSION,
        "mode": mode,
        "token": secrets.token_hex(6),
        "state": _RESUMABLE,
        "entries": _plan(pairs, mode),
    }
    if journal is not None:
        _check_journal_size(record, journal)
        fileio.write_json(journal, record, indent=None)
    return _run(record, journal, on_file)


def resume(journal):
    """Finish the transfer recorded in ``journal`` (after a crash or kill).

    Parameters
    ----------
    journal : path-like

    Returns
    -------
    list of pathlib.Path
        The final path of each source, in the journal's order.

    Raises
    ------
    TransferError
        The journal is unreadable, or it has been undone.
    """
    record = read_journal(journal)
    if record["state"] in _UNDO_STATES:
        raise TransferError(f"journal {os.fspath(journal)!r} has been undone; nothing to resume.")
    return _run(record, journal)


def undo(journal):
    """Put every file transferred under ``journal`` back where it came from.

    Moved files return to their source paths (crash-safe as well: kill it and run it again).
    Copies and links made by the transfer are removed when they still hold the source's
    bytes; files that were already at the destination before the transfer are kept. An
    interrupted transfer can be undone too: only what it did is reversed.

    Parameters
    ----------
    journal : path-like

    Returns
    -------
    list of pathlib.Path
        The restored path of each source, in the journal's order (a source name taken by a
        different file in the meantime gets a suffix instead of being overwritten).

    Raises
    ------
    TransferError
        The journal is unreadable, or a moved file is missing from both its places.
    """
    record = read_journal(journal)
    if record["state"] != "undone":
        record["state"] = "undoing"
        fileio.write_json(journal, record, indent=None)
    token = record["token"]
    restored = [_undo_entry(entry, record["mode"], token) for entry in reversed(record["entries"])]
    restored.reverse()
    _sync_and_clean({Path(e["source"]).parent for e in record["entries"]}, token)
    record["state"] = "undone"
    fileio.write_json(journal, record, indent=None)
    _clean_journal_leftovers(journal)
    return restored


def pending(directory):
    """Journals in ``directory`` whose transfer or undo did not finish.

    Parameters
    ----------
    directory : path-like
        A folder of journal files (``*.json``); a missing folder has none.

    Returns
    -------
    list of (pathlib.Path, str)
        Each unfinished journal, sorted by name, with its state: ``"planned"`` (finish it
        with :func:`resume` or reverse it with :func:`undo`) or ``"undoing"`` (run
        :func:`undo` again).
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for path in sorted(directory.glob("*.json")):
        state = read_journal(path)["state"]
        if state in (_RESUMABLE, "undoing"):
            found.append((path, state))
    return found


# --- planning ----------------------------------------------------------------------------

def _check_pairs(moves):
    pairs = []
    for i, item in enumerate(moves):
        try:
            source, folder = item
        except (TypeError, ValueError):
            raise ValueError(f"transfer: moves[{i}] must be a (source_file, destination_folder) "
                             f"pair, got {item!r}.") from None
        pairs.append((os.path.abspath(os.fspath(source)), os.path.abspath(os.fspath(folder))))
    return pairs


def _plan(pairs, mode):
    """Check every source and choose every final name before anything is touched."""
    seen, folders = set(), set()
    for source, folder in pairs:
        if not os.path.isfile(source):
            what = "does not exist" if not os.path.lexists(source) else "is not a regular file"
            raise TransferError(f"cannot transfer {source!r}: it {what}.")
        if mode != "link" and not os.access(source, os.R_OK):
            raise TransferError(f"cannot transfer {source!r}: it is not readable "
                                "(permission denied); it was left in place.")
        if folder not in folders:
            if os.path.exists(folder) and not os.path.isdir(folder):
                raise TransferError(f"cannot transfer into {folder!r}: it is not a folder.")
            folders.add(folder)
        if mode == "move":
            if source in seen:
                raise TransferError(f"cannot move {source!r} twice in one transfer.")
            seen.add(source)
    claimed = {}  # destination -> source, for names taken earlier in this same plan
    entries = []
    for source, folder in pairs:
        destination, existing = _choose_name(Path(source), Path(folder), claimed)
        claimed.setdefault(os.fspath(destination), source)
        entries.append({"source": source, "folder": folder,
                        "destination": os.fspath(destination), "existing": existing})
    return entries


def free_names(name, start=0):
    """The names tried, in order, for a file that must never overwrite another.

    The one numbering scheme of skanimal, for photos and model files alike: ``name``, then
    ``"stem (1).ext"``, ``"stem (2).ext"``... as file managers and browsers number copies.
    A number in parentheses is never part of a camera's or a person's file name, unlike a
    trailing ``-2023``, so the original name stays readable in every copy's name.

    Parameters
    ----------
    name : str
        A file name (no folder).
    start : int, default=0
        The first candidate: 0 is ``name`` itself, ``k`` is ``"stem (k).ext"``.

    Yields
    ------
    str
    """
    stem, suffix = os.path.splitext(name)
    if start == 0:
        yield name
        start = 1
    for k in itertools.count(start):
        yield f"{stem} ({k}){suffix}"


def copy_number(name):
    """``(original name, k)`` of a name :func:`free_names` made; ``(name, 0)`` for others.

    >>> copy_number("animals (2).joblib")
    ('animals.joblib', 2)
    """
    stem, suffix = os.path.splitext(name)
    match = re.fullmatch(r"(.*) \((\d+)\)", stem)
    if match is None:
        return name, 0
    return match.group(1) + suffix, int(match.group(2))


def _choose_name(source, folder, claimed=None, *, name=None, start=0):
    """First free name for ``source`` in ``folder``, or a name already holding its bytes.

    Candidates are ``name`` (default: the source's own name), then ``"stem (1).ext"``,
    ``"stem (2).ext"``... from the ``start``-th. Returns ``(path, existing)``: ``existing``
    is True when the path already holds (or is planned to hold) the same bytes, so nothing
    needs to be written there.
    """
    claimed = claimed or {}
    for candidate_name in free_names(name or source.name, start):
        candidate = folder / candidate_name
        taken_by = claimed.get(os.fspath(candidate))
        if taken_by is not None:
            if _same_content(source, Path(taken_by)):
                return candidate, True
            continue
        if os.path.lexists(candidate):
            if _same_content(source, candidate):
                return candidate, True
            continue
        return candidate, False


def _next_start(path, name):
    """Index of the candidate after ``path`` in the :func:`free_names` of ``name``."""
    original, number = copy_number(os.path.basename(path))
    if os.path.basename(path) == name:
        return 1
    return number + 1 if number and original == name else 0


def _same_entry(a, b):
    """Whether two paths name the same directory entry (not merely the same inode)."""
    a, b = Path(a), Path(b)
    if a.name != b.name:
        return False
    try:
        return os.path.samefile(a.parent, b.parent)
    except OSError:
        return False


def _same_content(a, b):
    try:
        return os.path.samefile(a, b) or filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


# --- doing -------------------------------------------------------------------------------

def _run(record, journal, on_file=None):
    mode, token = record["mode"], record["token"]
    copies = _synced_copies(record["entries"], token) if mode == "copy" else {}
    try:
        return _run_entries(record, journal, on_file, copies)
    finally:
        _discard(copies.values())  # unpublished: a failure came first


def _run_entries(record, journal, on_file, copies):
    mode, token = record["mode"], record["token"]
    finals = []
    for number, entry in enumerate(record["entries"]):
        while True:
            try:
                _do_entry(entry, mode, token, copies.pop(number, None))
                break
            except FileExistsError:
                # The planned name was taken after planning: choose again and record the new
                # name before using it, so a resume knows where the file went.
                source = entry["source"]
                destination, entry["existing"] = _choose_name(
                    Path(source), Path(entry["folder"]),
                    start=_next_start(entry["destination"], os.path.basename(source)))
                entry["destination"] = os.fspath(destination)
                if journal is not None:
                    fileio.write_json(journal, record, indent=None)
        finals.append(Path(entry["destination"]))
        if on_file is not None:
            on_file(finals[-1])
    _sync_and_clean({Path(e["folder"]) for e in record["entries"]}
                    | {Path(e["source"]).parent for e in record["entries"]}, token)
    if record["state"] != "done":
        record["state"] = "done"
        if journal is not None:
            fileio.write_json(journal, record, indent=None)
    if journal is not None:
        _clean_journal_leftovers(journal)
    return finals


def _synced_copies(entries, token):
    """Copy the sources that ``entries`` will copy to temporary files, synced all at once.

    One sync for the whole group (:func:`fileio.sync_file_systems`) costs far less than one
    per file; where it is not available, nothing is prepared here and each copy is synced
    as it is made. Either way no final name ever points to bytes not yet on disk: these
    copies are published later, by :func:`_do_entry`. Returns ``{entry number: temporary
    path}``. A copy that fails ends the preparing: that entry and those after it are copied
    one by one, in order, so its error is raised after the files ahead of it are in place.
    """
    copies = {}
    if not fileio.CAN_SYNC_FILE_SYSTEMS:
        return copies
    for number, entry in enumerate(entries):
        source, destination = entry["source"], entry["destination"]
        # A free destination cannot be the source itself (_do_entry's first case).
        if entry["existing"] or os.path.lexists(destination):
            continue
        try:
            copies[number] = _copy_to_temporary(source, destination, token, sync=False)
        except OSError:
            break
    try:
        fileio.sync_file_systems(copies.values())
    except BaseException:
        _discard(copies.values())
        raise
    return copies


def _discard(temporaries):
    """Remove temporary copies; one already published by a rename is gone already."""
    for temporary in temporaries:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _do_entry(entry, mode, token, copy=None):
    """Bring one planned file to its final state; raises FileExistsError if its name is taken.

    ``copy`` is a synced temporary copy of the source (:func:`_synced_copies`) to publish
    instead of copying again.
    """
    source, destination = Path(entry["source"]), Path(entry["destination"])
    if _same_entry(source, destination):
        return  # already where it should be
    try:
        if entry["existing"]:
            # The same bytes were (or are planned to be) there before this transfer.
            if not os.path.lexists(source) and mode == "move":
                return  # done: the source was removed after checking
            if not _same_content(source, destination):
                raise FileExistsError(destination)  # changed since planning: choose again
            if mode == "move":
                os.unlink(source)
        elif mode == "copy":
            if not os.path.lexists(destination):
                _copy_new(source, destination, token, copy)
            elif not _same_content(source, destination):
                raise FileExistsError(destination)
        elif mode == "link":
            if not os.path.lexists(destination):
                _link_new(source, destination)
            elif not _same_content(source, destination):
                raise FileExistsError(destination)
        else:
            _move_step(source, destination, token)
    except FileExistsError:
        raise
    except OSError as exc:
        raise TransferError(f"cannot {mode} {os.fspath(source)!r} to "
                            f"{os.fspath(destination)!r}: {exc.strerror or exc}") from exc


def _move_step(source, destination, token):
    has_source, has_destination = os.path.lexists(source), os.path.lexists(destination)
    if has_source and has_destination:
        if not _same_content(source, destination):
            raise FileExistsError(destination)
        # Killed between publishing the destination and unlinking the source.
        os.unlink(source)
    elif has_source:
        _move_file(source, destination, token)
    elif not has_destination:
        raise TransferError(f"cannot move {os.fspath(source)!r}: it is gone, and it is not at "
                            f"{os.fspath(destination)!r} either (moved or deleted by someone "
                            "else?).")


def _move_file(source, destination, token):
    """Move without ever clobbering: link (or copy across file systems), sync, then unlink."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, destination, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise
        _copy_new(source, destination, token)
    fileio.fsync_dir(destination.parent)  # the new name is on disk before the old one goes
    os.unlink(source)


def _copy_new(source, destination, token, temporary=None):
    """Copy to a synced temporary file beside ``destination`` (or take ``temporary``, such a
    copy made already), then publish it there."""
    try:
        if temporary is None:
            temporary = _copy_to_temporary(source, destination, token)
        _publish(temporary, destination)
    finally:
        _discard([] if temporary is None else [temporary])


def _copy_to_temporary(source, destination, token, *, sync=True):
    folder = os.path.dirname(destination)
    os.makedirs(folder, exist_ok=True)
    temporary = os.path.join(folder, f"{fileio.TMP_PREFIX}{token}-{secrets.token_hex(4)}")
    fileio.copy_to_new(source, temporary, sync=sync)
    return temporary


def _publish(temporary, destination):
    try:
        os.link(temporary, destination)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise
        # No hard links on this file system: reserve the name exclusively, then replace our
        # own (empty) reservation. A kill in between leaves an empty file, never a clobber.
        os.close(os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        os.replace(temporary, destination)


def _link_new(source, destination):
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, destination)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise
        os.symlink(os.path.abspath(source), destination)


def _sync_and_clean(folders, token):
    """Sync touched folders and remove temporary files this transfer left when killed."""
    for folder in folders:
        if not folder.is_dir():
            continue
        for leftover in folder.glob(f"{fileio.TMP_PREFIX}*{token}*"):
            try:
                leftover.unlink()
            except OSError:
                pass
        fileio.fsync_dir(folder)


def _clean_journal_leftovers(journal):
    """Remove temporary copies of ``journal`` left by a writer killed mid-write.

    One journal belongs to one transfer, so any such leftover is from an earlier, killed run
    of this same transfer (file names made by :func:`skanimal.fileio.atomic_write`).
    """
    journal = Path(journal)
    for leftover in journal.parent.glob(f"{fileio.TMP_PREFIX}{journal.name[:40]}-*"):
        if f"-{os.getpid()}-" not in leftover.name:
            try:
                leftover.unlink()
            except OSError:
                pass


# --- undoing -----------------------------------------------------------------------------

def _undo_entry(entry, mode, token):
    source, destination = Path(entry["source"]), Path(entry["destination"])
    if _same_entry(source, destination):
        return source
    has_source, has_destination = os.path.lexists(source), os.path.lexists(destination)
    try:
        if mode != "move":
            # Remove the copy or link we made, if it is still ours (same bytes as the source).
            if (not entry["existing"] and has_source and has_destination
                    and _same_content(source, destination)):
                os.unlink(destination)
            return source
        if entry["existing"]:
            # The destination was there before: give the source back a copy, keep it.
            if not has_source:
                if not has_destination:
                    raise _gone(source, destination)
                return _restore(destination, source, token, keep=True)
            return source
        if has_destination:
            if has_source and _same_content(source, destination):
                os.unlink(destination)  # killed between link and unlink (moving or undoing)
                return source
            return _restore(destination, source, token, keep=False)
        if has_source:
            return source  # never moved
        raise _gone(source, destination)
    except TransferError:
        raise
    except OSError as exc:
        raise TransferError(f"cannot restore {os.fspath(source)!r} from "
                            f"{os.fspath(destination)!r}: {exc.strerror or exc}") from exc


def _restore(current, original, token, *, keep):
    """Put ``current`` back at ``original``, or at a suffixed name beside it if that is taken
    by a different file. ``keep`` copies instead of moving."""
    start = 0
    while True:
        target, existing = _choose_name(current, original.parent, name=original.name,
                                        start=start)
        try:
            if existing:  # restored there already (an earlier, interrupted undo)
                if not keep:
                    os.unlink(current)
            elif keep:
                _copy_new(current, target, token)
            else:
                _move_file(current, target, token)
            return target
        except FileExistsError:
            start = _next_start(target, original.name)


def _gone(source, destination):
    return TransferError(f"cannot restore {os.fspath(source)!r}: it is at neither its source "
                         f"nor {os.fspath(destination)!r}.")


#: Largest journal read back. A sort's journal covers one chunk of photos (a few hundred
#: entries of four paths: about 100 kB); 64 MiB is some 100,000 entries of long paths, and
#: transfer() refuses to plan a bigger one, so skanimal never writes what it would refuse.
MAX_JOURNAL_BYTES = 64 * MiB
_STATES = (_RESUMABLE, "done") + _UNDO_STATES
_ENTRY_KEYS = {"source": str, "folder": str, "destination": str, "existing": bool}


def _check_journal_size(record, journal):
    size = len(json.dumps(record).encode())
    if size > MAX_JOURNAL_BYTES:
        raise TransferError(f"cannot plan {len(record['entries']):,} transfers in one journal "
                            f"({os.fspath(journal)!r} would take {size:,} bytes, more than "
                            f"{MAX_JOURNAL_BYTES:,}); transfer them in smaller groups.")


def read_journal(journal):
    """The record of a journal, checked: size-capped and parsed defensively, since a crash,
    a full disk or an editor may have damaged it.

    Parameters
    ----------
    journal : path-like

    Returns
    -------
    dict
        ``format``, ``version``, ``mode``, ``token``, ``state`` and ``entries`` (each with
        ``source``, ``folder``, ``destination`` and ``existing``).

    Raises
    ------
    TransferError
        One line naming the journal and what is wrong with it.
    """
    record = read_json(journal, MAX_JOURNAL_BYTES, what="transfer journal", error=TransferError)
    name = repr(os.fspath(journal))
    if not isinstance(record, dict) or record.get("format") != JOURNAL_FORMAT:
        raise TransferError(f"{name} is not a skanimal transfer journal.")
    if record.get("version") != JOURNAL_VERSION:
        raise TransferError(f"journal {name} has version {record.get('version')!r}; this "
                            f"skanimal reads version {JOURNAL_VERSION}.")
    entries = record.get("entries")
    if (record.get("mode") not in MODES or record.get("state") not in _STATES
            or not isinstance(record.get("token"), str)
            or not re.fullmatch(r"[0-9a-f]{1,64}", record["token"])  # used in file patterns
            or not isinstance(entries, list)
            or not all(isinstance(e, dict) and all(isinstance(e.get(k), t)
                                                   for k, t in _ENTRY_KEYS.items())
                       for e in entries)):
        raise TransferError(f"journal {name} is damaged (a field is missing or of the wrong "
                            "type); the photos it lists are where the file system says.")
    return record


