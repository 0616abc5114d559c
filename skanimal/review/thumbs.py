"""Thumbnails of the reviewed photos, made once with Pillow and cached on disk.

A thumbnail is a JPEG of at most :data:`THUMB_SIZE` pixels on its longer side, upright (EXIF
orientation applied). It is stored under ``DIR/.skanimal/thumbs/`` with a name derived from
the photo's device, inode, size and modification time: a move inside the folder keeps all
four, so moving a photo between class folders does not make its thumbnail again, while a
changed file gets a new one. Written atomically through :mod:`skanimal.fileio`.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

from PIL import Image, ImageOps

from .. import fileio
from ..exceptions import ImageLoadError

__all__ = ["THUMB_SIZE", "thumbnail"]

#: Longer side of a thumbnail, in pixels (sharp on a high-density screen at ~160 CSS px).
THUMB_SIZE = 320
_FORMAT_VERSION = 1


def _cache_path(cache_dir, photo):
    info = os.stat(photo)
    key = hashlib.sha256(
        f"{_FORMAT_VERSION}:{THUMB_SIZE}:{info.st_dev}:{info.st_ino}:{info.st_size}:"
        f"{info.st_mtime_ns}".encode()
    ).hexdigest()
    return Path(cache_dir) / key[:2] / f"{key}.jpg"


def _render(photo):
    try:
        with Image.open(photo) as img:
            # JPEG: let the decoder scale down by 1/2..1/8 while decoding (much faster
            # than decoding 12 MP and resizing).
            img.draft("RGB", (THUMB_SIZE, THUMB_SIZE))
            img = ImageOps.exif_transpose(img)
            img.thumbnail((THUMB_SIZE, THUMB_SIZE))
            if img.mode != "RGB":
                img = img.convert("RGB")
            out = io.BytesIO()
            img.save(out, "JPEG", quality=82)
            return out.getvalue()
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageLoadError(f"cannot make a thumbnail of {os.fspath(photo)!r}: {exc}",
                             path=os.fspath(photo)) from exc


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
