"""Reading files skanimal did not write itself, or that anyone could have changed since.

A ``.skanimal`` model comes from someone else; a sorted folder's journals, run records and
CSV files can be damaged by a crash, a full disk or a person with an editor. Whatever their
bytes, reading them must cost little and fail in one line. Every such read goes through this
module, which

* checks sizes before reading (the file's size, a zip archive's member count, directory
  size, each member's declared size, the total and the compression ratio), against limits
  the caller derives from what skanimal itself writes;
* reads through a capped stream, so a file that grows, or a zip member whose real size
  differs from its header, cannot get past the check: at most ``limit + 1`` bytes are
  ever taken;
* parses defensively (JSON nesting, CSV field sizes, text encoding) and raises one
  :class:`~skanimal.exceptions.DamagedFileError` (or the caller's ``error`` class) naming
  the file and the reason.

Zip members are never extracted by name: callers ask for the members they know, read into
memory or copied into a file whose name they choose.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import struct
import zipfile
import zlib

from .exceptions import DamagedFileError

__all__ = ["MiB", "read_bytes", "read_json", "parse_json", "read_csv", "CappedZip", "open_zip"]

MiB = 1 << 20

# Bytes read at a time from a member or file: memory stays at one chunk plus what is kept.
_CHUNK = MiB

# The end-of-central-directory record: 22 bytes, then a comment of up to 65,535 bytes; a
# zip64 locator (20 bytes) sits right before it.
_EOCD = struct.Struct("<4s4H2LH")
_EOCD64_LOCATOR = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")


def _size(n):
    return f"{n / MiB:,.1f} MB" if n >= MiB else f"{n:,} bytes"


def _refuse(error, path, reason):
    shown = path if isinstance(path, _Shown) else repr(os.fspath(path))
    return error(f"{shown} {reason}")


class _Shown(str):
    """How a file is named in messages, when not by its path (a member of another file)."""


def read_bytes(path, limit, *, what="file", error=DamagedFileError):
    """The bytes of ``path``, refused if it holds more than ``limit`` bytes.

    Parameters
    ----------
    path : path-like
    limit : int
        Most bytes accepted.
    what : str, default="file"
        What the file is, in the error message (``"journal"``...).
    error : type, default=DamagedFileError
        Exception class raised, with one line naming the file and the reason.

    Returns
    -------
    bytes
    """
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > limit:
                raise _refuse(error, path, f"is too large for a {what} ({_size(size)}; "
                                           f"skanimal writes at most {_size(limit)}).")
            data = handle.read(limit + 1)  # capped: the file may have grown since fstat
    except OSError as exc:
        raise _refuse(error, path, f"cannot be read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise _refuse(error, path, f"is too large for a {what} (it grew past "
                                   f"{_size(limit)} while being read).")
    return data


def _decode(data, path, what, error):
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _refuse(error, path, f"is not a readable {what} (not UTF-8 text at byte "
                                   f"{exc.start}).") from None


def parse_json(data, path, *, what="JSON file", error=DamagedFileError):
    """Parse JSON ``data`` (bytes) read from ``path``, with the module's one-line errors."""
    try:
        return json.loads(_decode(data, path, what, error))
    except ValueError as exc:  # JSONDecodeError, and integers of too many digits
        raise _refuse(error, path, f"is not a valid {what} (damaged or truncated: "
                                   f"{exc}).") from None
    except RecursionError:
        raise _refuse(error, path, f"is not a valid {what} (nested too deeply).") from None


def read_json(path, limit, *, what="JSON file", error=DamagedFileError):
    """The JSON value in ``path``, read under ``limit`` bytes; see :func:`read_bytes`."""
    return parse_json(read_bytes(path, limit, what=what, error=error), path, what=what,
                      error=error)


def read_csv(path, limit, *, required=(), what="CSV file", error=DamagedFileError):
    """The rows of a CSV file with a header, as dicts, read under ``limit`` bytes.

    Parameters
    ----------
    path : path-like
    limit : int
        Most bytes accepted.
    required : sequence of str
        Columns the header must have. Every row then has a string for each of them (a short
        row's missing fields read as ``""``).
    what, error
        As for :func:`read_bytes`.

    Returns
    -------
    list of dict
    """
    text = _decode(read_bytes(path, limit, what=what, error=error), path, what, error)
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), restval="")
        missing = [c for c in required if c not in (reader.fieldnames or ())]
        if missing:
            raise _refuse(error, path, f"is not a valid {what}: it lacks the column(s) "
                                       f"{', '.join(missing)}.")
        rows = []
        for row in reader:
            row.pop(None, None)  # fields beyond the header: not ours, dropped
            rows.append({key: value if isinstance(value, str) else ""
                         for key, value in row.items()})
        return rows
    except csv.Error as exc:  # e.g. a field larger than the csv module's limit
        raise _refuse(error, path, f"is not a valid {what} (line {reader.line_num}: "
                                   f"{exc}).") from None


# --------------------------------------------------------------------------------- zip


def _directory_size(handle, path, what, error):
    """``(members, directory bytes)`` from the archive's end records, read before
    :mod:`zipfile` parses (and holds in memory) its whole central directory."""
    size = handle.seek(0, os.SEEK_END)
    tail_size = min(size, _EOCD.size + 65535 + _EOCD64_LOCATOR.size)
    handle.seek(size - tail_size)
    tail = handle.read(tail_size)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _EOCD.size:
        raise _refuse(error, path, f"is not a {what} (not a zip archive, or a truncated "
                                   "one: it has no end record).")
    *_, members, directory, _, _ = _EOCD.unpack_from(tail, at)
    if members == 0xFFFF or directory == 0xFFFFFFFF:  # zip64: the real values are there
        locator = at - _EOCD64_LOCATOR.size
        if locator >= 0 and tail[locator:locator + 4] == b"PK\x06\x07":
            offset = _EOCD64_LOCATOR.unpack_from(tail, locator)[2]
            handle.seek(offset)
            record = handle.read(_EOCD64.size)
            if len(record) == _EOCD64.size and record[:4] == b"PK\x06\x06":
                fields = _EOCD64.unpack(record)
                members, directory = fields[7], fields[8]
    return members, directory


class CappedZip:
    """A zip archive opened by :func:`open_zip`, whose members are read under caps.

    Attributes
    ----------
    path : str
    members : dict
        ``{name: zipfile.ZipInfo}`` of every member (a name listed twice is refused).
    """

    def __init__(self, zf, path, error):
        self._zf, self.path, self._error = zf, path, error
        self.members = {}
        for info in zf.infolist():
            if info.filename in self.members:
                raise _refuse(error, path, f"lists the member {info.filename!r} twice; "
                                           "which one is meant cannot be told.")
            self.members[info.filename] = info

    def _stream(self, name, limit):
        """Yield the chunks of member ``name``, refusing more than ``limit`` bytes."""
        info = self.members[name]
        if info.file_size > limit:
            raise _refuse(self._error, self.path,
                          f"holds a {name} of {_size(info.file_size)}, more than "
                          f"{_size(limit)}: not a file skanimal wrote.")
        taken = 0
        try:
            with self._zf.open(info) as member:
                while chunk := member.read(_CHUNK):
                    taken += len(chunk)
                    if taken > min(limit, info.file_size):
                        raise _refuse(self._error, self.path,
                                      f"is damaged: its {name} is larger than its header "
                                      "says.")
                    yield chunk
        except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError,
                RuntimeError, ValueError, zlib.error) as exc:
            if isinstance(exc, self._error):
                raise
            raise _refuse(self._error, self.path,
                          f"is damaged: its {name} cannot be read ({exc}).") from None
        if taken != info.file_size:
            raise _refuse(self._error, self.path, f"is damaged: its {name} is shorter than "
                                                  "its header says.")

    def read(self, name, limit):
        """The bytes of member ``name``, refused if it holds more than ``limit``."""
        return b"".join(self._stream(name, limit))

    def copy(self, name, limit, handle):
        """Write member ``name`` into the open binary file ``handle``, refused past
        ``limit`` bytes; returns the SHA-256 hex digest of the bytes written."""
        digest = hashlib.sha256()
        for chunk in self._stream(name, limit):
            digest.update(chunk)
            handle.write(chunk)
        return digest.hexdigest()


@contextlib.contextmanager
def open_zip(path, *, max_members, max_directory, max_total, limits=None, max_ratio=100.0,
             ratio_floor=MiB, what="archive", error=DamagedFileError, shown=None):
    """Open a zip archive after checking its directory; yields a :class:`CappedZip`.

    Parameters
    ----------
    path : path-like
    max_members : int
        Most members accepted (read from the end record, before :mod:`zipfile` builds its
        list of them).
    max_directory : int
        Most bytes of central directory accepted (the list of members' names and sizes).
    max_total : int
        Most bytes accepted for all members together, as their headers declare them.
    limits : dict, optional
        ``{name: most bytes}`` of the members the caller knows, checked first (a member
        is still read under the limit given to :meth:`CappedZip.read`).
    max_ratio : float, default=100
        Largest compression ratio (declared size / compressed size) accepted for a member,
        or for the whole archive, declaring more than ``ratio_floor`` bytes. Real data
        compresses far less; a zip bomb needs far more.
    ratio_floor : int, default=1 MiB
    what, error
        As for :func:`read_bytes`.
    shown : str, optional
        How messages name the file (default: its path), e.g. ``"'m.skanimal''s head.keras"``
        for an archive inside another.
    """
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise _refuse(error, path, f"cannot be read: {exc.strerror or exc}") from None
    if shown is not None:
        path = _Shown(shown)
    with handle:
        members, directory = _directory_size(handle, path, what, error)
        if members > max_members:
            raise _refuse(error, path, f"lists {members:,} members; a {what} has at most "
                                       f"{max_members}.")
        if directory > max_directory:
            raise _refuse(error, path, f"has a member list of {_size(directory)}; a {what}'s "
                                       f"is at most {_size(max_directory)}.")
        handle.seek(0)
        try:
            zf = zipfile.ZipFile(handle)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise _refuse(error, path, f"is not a {what} (a damaged zip archive: {exc}).") from None
        with zf:
            infos = zf.infolist()
            if len(infos) > max_members:
                raise _refuse(error, path, f"lists {len(infos):,} members; a {what} has at "
                                           f"most {max_members}.")
            for info in infos:
                limit = (limits or {}).get(info.filename)
                if limit is not None and info.file_size > limit:
                    raise _refuse(error, path,
                                  f"holds a {info.filename} of {_size(info.file_size)}, more "
                                  f"than {_size(limit)}: not a {what} skanimal wrote.")
            total = sum(info.file_size for info in infos)
            if total > max_total:
                raise _refuse(error, path, f"declares {_size(total)} of content; a {what} "
                                           f"holds at most {_size(max_total)}.")
            packed = sum(info.compress_size for info in infos)
            for name, size, compressed in ([(i.filename, i.file_size, i.compress_size)
                                            for i in infos] + [(None, total, packed)]):
                if size > ratio_floor and size > max_ratio * max(compressed, 1):
                    where = "as a whole" if name is None else f"in its {name}"
                    raise _refuse(error, path,
                                  f"is compressed {size / max(compressed, 1):,.0f} times "
                                  f"{where}; real data compresses less than {max_ratio:g} "
                                  "times (a zip bomb?).")
            yield CappedZip(zf, path, error)
