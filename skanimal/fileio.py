"""Atomic file writing and JSON conversion: the one way skanimal writes a file.

Every file the product writes (cache entries, saved models, reports, journals) goes through
:func:`atomic_write`: the data goes to a temporary file in the destination's own directory,
is flushed and synced to disk (``fsync``), then renamed over the final name (``os.replace``,
atomic on POSIX and Windows), and the directory entry is synced too. A reader — or a process
killed at any moment — sees either the old file or the complete new one, never a half-written
file. Files get the normal permissions of a newly created file (``0o666`` less the umask),
unlike :func:`tempfile.mkstemp`'s ``0o600``.

Copies of photos are the one exception to the rename: :func:`copy_to_new` writes a new
temporary file (keeping the photo's permissions and dates) that the caller publishes with a
hard link, which, unlike a rename, never replaces a file already there
(:mod:`skanimal.moves`). A group of such copies can be synced at once
(:func:`sync_file_systems`) before any is published.

Temporary files are named ``.skanimal-tmp-<name>-<random>`` so that tools that clean up after
killed writers (for example :func:`skanimal.clear_cache`) can recognise them.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import math
import os
import secrets
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = ["TMP_PREFIX", "atomic_write", "write_bytes", "write_json", "to_jsonable", "fsync_dir",
           "new_folder", "copy_to_new", "sync_file_systems", "CAN_SYNC_FILE_SYSTEMS"]

#: Prefix of every temporary file written by :func:`atomic_write`.
TMP_PREFIX = ".skanimal-tmp-"

#: Whether :func:`sync_file_systems` can sync a group of files at once (Linux, where
#: ``sync`` waits until everything is on disk, and ``syncfs`` limits it to one file system).
CAN_SYNC_FILE_SYSTEMS = sys.platform.startswith("linux")


def fsync_dir(directory):
    """Sync a directory entry to disk, so a rename or unlink in it survives a power loss.

    A no-op where the platform cannot open directories (Windows).
    """
    try:
        fd = os.open(os.fspath(directory), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def new_folder(parent, prefix):
    """A new, uniquely named folder in ``parent`` with a new folder's normal permissions.

    Unlike :func:`tempfile.mkdtemp` (``0o700``) it gets ``0o777`` less the umask, so a folder
    built here and then renamed into place (an export) is readable by whoever may read its
    neighbours.

    Parameters
    ----------
    parent : path-like
    prefix : str
        Start of the folder's name; a random suffix follows.

    Returns
    -------
    pathlib.Path
    """
    for _ in range(100):
        folder = Path(parent) / f"{prefix}{secrets.token_hex(6)}"
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise FileExistsError(f"no free folder name starting with {prefix!r} in {str(parent)!r}")


@contextlib.contextmanager
def atomic_write(path, mode="wb", *, encoding=None, make_parents=True, sync_dir=True):
    """Open a temporary file that replaces ``path`` atomically when the block ends.

    Parameters
    ----------
    path : str or os.PathLike
        The final file name.
    mode : {"wb", "w"}, default="wb"
        Binary or text mode.
    encoding : str, optional
        Text encoding for ``mode="w"`` (UTF-8 when not given).
    make_parents : bool, default=True
        Create missing parent directories.
    sync_dir : bool, default=True
        Also sync the directory entry after the rename (skip only for files whose loss in a
        power cut is harmless, such as cache entries).

    Yields
    ------
    file object
        Write to it; on normal exit it is flushed, synced and renamed to ``path``. If the
        block raises, the temporary file is removed and ``path`` is left untouched.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write: mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{TMP_PREFIX}{path.name[:40]}-{os.getpid()}-{secrets.token_hex(6)}"
    # "x" (exclusive create) rather than mkstemp so the file gets umask permissions.
    xmode = "xb" if mode == "wb" else "x"
    kwargs = {} if mode == "wb" else {"encoding": encoding or "utf-8", "newline": ""}
    try:
        with open(tmp, xmode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())  # data on disk before the name points to it
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sync_dir:
        fsync_dir(path.parent)


def copy_to_new(source, path, *, sync=True):
    """Copy the file ``source`` into the new file ``path``, synced to disk.

    The copy keeps the source's permissions and times (``shutil.copystat``). ``path``
    is created exclusively, so nothing is ever overwritten; its folder must exist. This is
    the first half of an atomic copy: the caller gives ``path`` a temporary name and then
    publishes it under the final one (as :mod:`skanimal.moves` does with a hard link, which
    never clobbers).

    Parameters
    ----------
    source, path : path-like
    sync : bool, default=True
        Sync the copy before returning. ``False`` leaves it to the caller, who syncs many
        copies at once with :func:`sync_file_systems` before publishing any.

    Raises
    ------
    FileExistsError
        ``path`` exists.
    OSError
        The copy failed; ``path`` is removed.
    """
    try:
        with open(source, "rb") as src, open(path, "xb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            shutil.copystat(source, path)  # photos keep their dates and their privacy
            if sync:
                os.fsync(dst.fileno())
    except FileExistsError:
        raise
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise


def sync_file_systems(paths):
    """Put everything written to the file systems holding ``paths`` on disk, in one go.

    After a group of files is written, one ``syncfs`` per file system costs about what one
    ``fsync`` does: a single journal commit, instead of one per file. Only where
    ``CAN_SYNC_FILE_SYSTEMS`` (Linux); elsewhere sync each file as it is written.

    Parameters
    ----------
    paths : iterable of path-like
        Files (their folders are what is looked at: a mount point inside a folder is
        another file system).

    Raises
    ------
    OSError
        The sync failed (for example an I/O error while writing back).
    """
    if not CAN_SYNC_FILE_SYSTEMS:
        raise OSError(f"sync_file_systems: not available on {sys.platform}")
    one_per_device = {}
    for folder in {os.path.dirname(os.path.abspath(path)) for path in paths}:
        one_per_device.setdefault(os.stat(folder).st_dev, folder)
    syncfs = _syncfs()
    if syncfs is None and one_per_device:  # a C library without syncfs: sync(2) does all
        os.sync()
        return
    for path in one_per_device.values():
        fd = os.open(path, os.O_RDONLY)
        try:
            if syncfs(fd) != 0:
                import ctypes

                error = ctypes.get_errno() or errno.EIO
                raise OSError(error, os.strerror(error), os.fspath(path))
        finally:
            os.close(fd)


@functools.cache
def _syncfs():
    # The os module has sync() but not syncfs(); the C library has had it since glibc 2.14.
    import ctypes

    try:
        function = ctypes.CDLL(None, use_errno=True).syncfs
    except (AttributeError, OSError):
        return None
    function.argtypes, function.restype = [ctypes.c_int], ctypes.c_int
    return function


def write_bytes(path, data, **kwargs):
    """Write ``data`` (bytes) to ``path`` atomically; see :func:`atomic_write`.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    with atomic_write(path, "wb", **kwargs) as f:
        f.write(data)
    return Path(path)


def write_json(path, value, *, indent=2, **kwargs):
    """Write ``value`` as JSON to ``path`` atomically, converted by :func:`to_jsonable`.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    text = json.dumps(to_jsonable(value), indent=indent, allow_nan=False) + "\n"
    with atomic_write(path, "w", **kwargs) as f:
        f.write(text)
    return Path(path)


def to_jsonable(value, *, nan=None):
    """Convert a value to plain JSON types, exactly or not at all.

    NumPy scalars and arrays become Python numbers and lists, tuples and sets become lists
    (sets sorted), mapping keys become strings, paths become strings. Non-finite floats
    become ``nan`` (``None`` by default, as JSON has no NaN).

    Parameters
    ----------
    value : object
        The value to convert.
    nan : object, default=None
        What NaN and infinities become.

    Returns
    -------
    object
        Built only of dict, list, str, int, float, bool and None.

    Raises
    ------
    TypeError
        For any other type: a silently lossy conversion (such as ``repr``) would let two
        different values look the same.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else nan
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, nan=nan) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return [to_jsonable(v, nan=nan) for v in sorted(value)]
    if isinstance(value, (list, tuple, np.ndarray)):
        return [to_jsonable(v, nan=nan) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(
        f"to_jsonable: value {value!r} of type {type(value).__name__} is not JSON-serialisable; "
        "use str, int, float, bool, None, or lists/tuples/dicts of them."
    )
