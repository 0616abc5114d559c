"""Thumbnails of the reviewed photos, made once with Pillow and cached on disk.

A thumbnail is a JPEG of at most :data:`THUMB_SIZE` pixels on its longer side, decoded by
:func:`skanimal.images.decode_thumbnail` as the model sees the photo (upright, first frame,
transparency on white). It is stored under ``DIR/.skanimal/thumbs/`` with a name derived
from :func:`skanimal.folders.file_key` (device, inode, size, modification time): a move
inside the folder keeps all four, so moving a photo between class folders does not make its
thumbnail again, while a changed file gets a new one. Written atomically through
:mod:`skanimal.fileio`.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

from PIL import Image

from .. import fileio
from ..exceptions import ImageLoadError
from ..folders import file_key
from ..images import decode_thumbnail, read_image_bytes

__all__ = ["THUMB_SIZE", "thumbnail"]

#: Longer side of a thumbnail, in pixels (sharp on a high-density screen at ~160 CSS px).
THUMB_SIZE = 320
_FORMAT_VERSION = 2  # 2: decoded as the model sees the photo


def _cache_path(cache_dir, photo):
    dev, ino, size, mtime_ns = file_key(photo)
    key = hashlib.sha256(
        f"{_FORMAT_VERSION}:{THUMB_SIZE}:{dev}:{ino}:{size}:{mtime_ns}".encode()
    ).hexdigest()
    return Path(cache_dir) / key[:2] / f"{key}.jpg"


def _render(photo):
    path = os.fspath(photo)
    try:
        pixels = decode_thumbnail(read_image_bytes(path), THUMB_SIZE, path=path)
    except ImageLoadError as exc:
        raise ImageLoadError(f"cannot make a thumbnail of {path!r}: {exc}",
                             path=path) from exc
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=82)
    return out.getvalue()


def thumbnail(photo, cache_dir):
    """The cached thumbnail of ``photo``, made now if missing.

    Parameters
    ----------
    photo : path-like
        An image file.
    cache_dir : path-like
        Folder of cached thumbnails.

    Returns
    -------
    pathlib.Path
        The JPEG thumbnail file.

    Raises
    ------
    ImageLoadError
        When Pillow cannot decode the photo.
    """
    target = _cache_path(cache_dir, photo)
    if not target.is_file():
        # A lost thumbnail is remade, so no directory sync is needed.
        fileio.write_bytes(target, _render(photo), sync_dir=False)
    return target
