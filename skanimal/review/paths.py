"""Which files the review page may serve: only image files inside the reviewed folder.

A request names a photo by its path relative to the folder, as the page got it from the
photo list. Anything else is refused before the file system is touched: absolute paths,
``..``, empty or hidden components (such as ``.skanimal``, the app's own state), backslashes
and NUL bytes. What is left is resolved to its real path (following symbolic links) and must
still lie inside the folder's real path, so a link pointing out of the folder is refused too.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from ..datasets import IMAGE_EXTENSIONS
from ..exceptions import SkanimalError

__all__ = ["PathRefused", "resolve_inside", "relative_name"]


class PathRefused(SkanimalError, ValueError):
    """A requested path is not an image file inside the reviewed folder."""


def resolve_inside(root, relative):
    """The real path of image file ``relative`` inside ``root``, or :class:`PathRefused`.

    Parameters
    ----------
    root : path-like
        The reviewed folder, as a real (resolved) absolute path.
    relative : str
        A ``/``-separated path relative to ``root``, already percent-decoded.

    Returns
    -------
    pathlib.Path
        The resolved file, a regular file with an image extension below ``root``.

    Raises
    ------
    PathRefused
        For anything else (the message says why, without echoing file contents).
    """
    root = os.fspath(root)
    if not relative or "\x00" in relative or "\\" in relative:
        raise PathRefused(f"refused path {relative!r}: empty, NUL byte or backslash")
    pure = PurePosixPath(relative)
    if pure.is_absolute() or ":" in pure.parts[0]:
        raise PathRefused(f"refused path {relative!r}: absolute paths are not served")
    parts = relative.split("/")
    if any(part in ("", ".", "..") or part.startswith(".") for part in parts):
        raise PathRefused(f"refused path {relative!r}: '..', empty or hidden components")
    real = os.path.realpath(os.path.join(root, *parts))
    if os.path.commonpath([real, root]) != root or real == root:
        raise PathRefused(f"refused path {relative!r}: it resolves outside the folder")
    if Path(real).suffix.lower() not in IMAGE_EXTENSIONS or not os.path.isfile(real):
        raise PathRefused(f"refused path {relative!r}: not an image file")
    return Path(real)


def relative_name(root, path):
    """``path`` relative to ``root`` as a ``/``-separated string (``path`` must be below it)."""
    return Path(os.path.relpath(os.path.abspath(path), root)).as_posix()
