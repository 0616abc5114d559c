"""Turn image files (or arrays of images) into RGB ``uint8`` pixel arrays.

This module is deliberately light: it depends on Pillow and NumPy only, never on
TensorFlow, so that validating and decoding images is cheap to import and easy to test.

The pipeline used by the transformers is::

    images = check_images(X)                # list of path items, or a 4-D array
    batch = load_pixels(images, size)       # paths -> (n, height, width, 3) uint8
    batch = resize_array_batch(images, size)  # arrays -> (n, height, width, 3)

or, to read each file once when its bytes are also hashed (as the feature cache does)::

    data = read_item_bytes(item)            # a path's file, or what an ImageItem reads
    pixels = decode_item(item, data, size)

An item of ``X`` is a file path, a row of a pixel array, or an :class:`ImageItem`: an object
that turns the bytes of an image file into pixels itself (an augmented copy of a photo,
:class:`skanimal.AugmentedImage`, is one). This module knows items only through that
protocol, so it never imports the modules that define them.

Decoding rules (see :func:`decode_image`):

* only the first frame of animated GIF / WebP / APNG files is used;
* the EXIF orientation tag is honoured, so pixels come out upright;
* every Pillow mode is converted to RGB; anything with an alpha channel (RGBA, LA, PA,
  palette or grey/RGB images with a transparency key) is composited on **white**;
  16-bit grayscale (``I;16*`` and ``I``) is scaled to 8 bits (``round(v / 257)``), not
  clipped;
* images are stretched to the target ``(height, width)`` with Pillow's antialiased
  bilinear filter, like ``keras.utils.load_img(target_size=...)`` (no cropping, no
  letter-boxing);
* large JPEGs are decoded at a reduced scale (libjpeg DCT scaling via
  :meth:`PIL.Image.Image.draft`) when they are much bigger than the target, which makes
  a 12-megapixel photo about as cheap as a small one;
* Pillow's decompression-bomb protection stays on; every failure is reported as an
  :class:`~skanimal.exceptions.ImageLoadError` naming the file and its index in ``X``.

Pillow releases the GIL while decoding and resizing, so :func:`load_pixels` decodes on a
thread pool.
"""

from __future__ import annotations

import abc
import collections
import io
import os
import stat
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from skanimal.exceptions import ImageLoadError

__all__ = [
    "ImageItem",
    "check_images",
    "read_image_bytes",
    "read_item_bytes",
    "decode_image",
    "decode_thumbnail",
    "decode_item",
    "load_pixels",
    "resize_array_batch",
]

#: Resampling filter used for every resize.  Pillow's BILINEAR is a true antialiased
#: (triangle) filter when shrinking: its support grows with the reduction factor, so it
#: does not alias like Keras' default "nearest", its weights are non-negative (no
#: ringing/overshoot, no clipping needed for float data), and it is about twice as fast
#: as BICUBIC.
RESAMPLE = Image.Resampling.BILINEAR

#: Pillow first shrinks by an integer factor with a box filter while the image stays at
#: least ``REDUCING_GAP`` times bigger than the target, then applies :data:`RESAMPLE`.
#: Pillow documents 3.0 as indistinguishable from fair resampling; it is ~3x faster than
#: fair resampling when shrinking a 12-megapixel image to 224 x 224.
REDUCING_GAP = 3.0

# EXIF orientation -> transposition that makes the image upright (same table as
# PIL.ImageOps.exif_transpose).
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Orientations whose transposition swaps width and height.
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})

_ARRAY_SHAPE_HINT = "(n_images, height, width, 3)"


# --------------------------------------------------------------------------- helpers


def _where(path=None, index=None):
    """Describe an item of ``X`` for error messages: ``X[3] 'a.jpg'``."""
    parts = []
    if index is not None:
        parts.append(f"X[{index}]")
    if path is not None:
        parts.append(f"'{path}'")
    return " ".join(parts) if parts else "<image>"


def _validate_size(size):
    """Return ``size`` as a ``(height, width)`` tuple of positive Python ints."""
    try:
        height, width = size
    except (TypeError, ValueError):
        raise ValueError(
            f"size must be a (height, width) pair of positive integers, got {size!r}"
        ) from None
    for value in (height, width):
        if (
            isinstance(value, (bool, np.bool_))
            or not isinstance(value, (int, np.integer))
            or value < 1
        ):
            raise ValueError(
                f"size must be a (height, width) pair of positive integers, got {size!r}"
            )
    return int(height), int(width)


def _describe_undecodable(data):
    """Explain why Pillow could not identify ``data`` as an image."""
    head = bytes(data[:512]).lstrip()
    lowered = head.lower()
    if lowered.startswith((b"<!doctype html", b"<html")) or b"<html" in lowered:
        return "the file is an HTML page, not an image (cannot identify image format)"
    if lowered.startswith(b"<?xml") or lowered.startswith(b"<svg") or b"<svg" in lowered:
        return (
            "the file is XML/SVG, which is not supported "
            "(cannot identify image format)"
        )
    text = head.decode("utf-8", errors="ignore")  # the cut may split a character
    if (
        text
        and len(text.encode("utf-8")) >= len(head) - 3
        and all(c.isprintable() or c in "\r\n\t\f" for c in text)
    ):
        return "the file contains text, not an image (cannot identify image format)"
    return "not a recognised image format (cannot identify image file)"


def _read_orientation(img):
    """EXIF orientation (1..8) of ``img``; 1 when absent or unreadable."""
    try:
        orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
        orientation = int(orientation)
    except Exception:  # corrupt EXIF must not make an otherwise fine image unreadable
        return 1
    return orientation if orientation in _ORIENTATION_TRANSPOSE else 1


def _sixteen_bit_to_l(img):
    """Scale 16-bit (or 32-bit integer) grayscale to an 8-bit ``L`` image."""
    values = np.asarray(img)
    values = np.clip(values.astype(np.int64, copy=False), 0, 65535)
    eight = ((values * 255 + 32767) // 65535).astype(np.uint8)  # round(v / 257)
    return Image.fromarray(eight)


def _float_to_l(img):
    """Map a 32-bit float grayscale image to ``L``.

    Data in ``[0, 1]`` is scaled by 255; anything else is taken to be on the 0-255
    scale and clipped.  NaN becomes 0.
    """
    values = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0)
    if values.size and values.min() >= 0.0 and values.max() <= 1.0:
        values = values * 255.0
    eight = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return Image.fromarray(eight)


def _has_alpha(img):
    """Whether ``img`` carries transparency (``Image.has_transparency_data`` needs
    Pillow >= 10.1)."""
    if img.mode in ("RGBA", "LA", "PA"):
        return True
    if "transparency" in img.info:
        return True
    palette = getattr(img, "palette", None)
    return img.mode == "P" and palette is not None and palette.mode == "RGBA"


def _normalise_mode(img):
    """Convert ``img`` to ``L``, ``RGB`` or ``RGBA`` (only when it has alpha)."""
    mode = img.mode
    if mode.startswith("I"):  # I;16, I;16B, I;16L, I;16N, I (16-bit PPM), ...
        return _sixteen_bit_to_l(img)
    if mode == "F":
        return _float_to_l(img)
    if mode in ("La", "RGBa"):  # premultiplied: un-premultiply first
        img = img.convert({"La": "LA", "RGBa": "RGBA"}[mode])
        mode = img.mode
    if _has_alpha(img):  # RGBA, LA, PA, P/L/RGB with a transparency key
        return img if mode == "RGBA" else img.convert("RGBA")
    if mode in ("L", "RGB"):
        return img
    if mode == "1":
        return img.convert("L")
    return img.convert("RGB")  # P, CMYK, YCbCr, LAB, HSV, RGBX, ...


def _to_rgb_array(img):
    """``L``/``RGB``/``RGBA`` image -> ``(h, w, 3)`` uint8 array, alpha on white."""
    if img.mode == "RGBA":
        rgba = np.asarray(img)
        alpha = rgba[..., 3:4].astype(np.uint16)
        rgb = rgba[..., :3].astype(np.uint16)
        # round((rgb * a + 255 * (255 - a)) / 255); fits in uint16 (<= 65152)
        out = (rgb * alpha + 255 * (255 - alpha) + 127) // 255
        return out.astype(np.uint8)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img)


# ------------------------------------------------------------------------- ImageItem


class ImageItem(metaclass=abc.ABCMeta):
    """An item of ``X`` that turns the bytes of an image file into pixels itself.

    :func:`check_images` accepts instances next to plain file paths, and
    :class:`~skanimal.BottleneckFeatures` reads each one exactly once per ``transform``:
    it calls :meth:`load_bytes`, keys the feature cache with :meth:`content_key` of those
    bytes and, on a miss, decodes the *same* bytes with :meth:`decode`. Subclasses
    implement these three methods; they should be immutable and picklable (they travel to
    worker processes), like :class:`skanimal.AugmentedImage`.
    """

    __slots__ = ()

    @abc.abstractmethod
    def load_bytes(self, *, index=None):
        """Read the encoded image file the pixels come from.

        Parameters
        ----------
        index : int, optional
            Position of this item in ``X``, for error messages.

        Returns
        -------
        bytes

        Raises
        ------
        ImageLoadError
            If the file cannot be read; names the path and ``index``.
        """

    @abc.abstractmethod
    def content_key(self, data):
        """Feature-cache key of this item, given the bytes :meth:`load_bytes` returned.

        Parameters
        ----------
        data : bytes-like
            The encoded file.

        Returns
        -------
        str
            A lowercase hex digest that changes whenever the pixels :meth:`decode` returns
            for ``data`` would (see :func:`skanimal.cache.hash_bytes`).
        """

    @abc.abstractmethod
    def decode(self, data, size=None, *, index=None):
        """Turn the bytes :meth:`load_bytes` returned into pixels.

        Parameters
        ----------
        data : bytes-like
            The encoded file.
        size : tuple of int (height, width) or None, default=None
            Output size (see :func:`decode_image`); None keeps the native size.
        index : int, optional
            Position of this item in ``X``, for error messages.

        Returns
        -------
        numpy.ndarray of shape (height, width, 3), dtype uint8

        Raises
        ------
        ImageLoadError
            If the data cannot be decoded; names the path and ``index``.
        """

    def load(self, size=None, *, index=None):
        """Read and decode this item: ``decode(load_bytes(), size)``.

        Parameters
        ----------
        size : tuple of int (height, width) or None, default=None
            Output size (see :func:`decode_image`); None keeps the native size.
        index : int, optional
            Position of this item in ``X``, for error messages.

        Returns
        -------
        numpy.ndarray of shape (height, width, 3), dtype uint8

        Raises
        ------
        ImageLoadError
            If the file cannot be read or decoded; names the path and ``index``.
        """
        return self.decode(self.load_bytes(index=index), size, index=index)


# ---------------------------------------------------------------------- check_images


def _bad_item_message(item, index):
    where = _where(index=index)
    if item is None:
        return f"{where} is None; expected an image file path"
    if isinstance(item, float) and item != item:
        return f"{where} is a missing value (NaN); expected an image file path"
    if isinstance(item, (bytes, bytearray, memoryview)):
        return (
            f"{where} is {type(item).__name__}; expected an image file path as str or "
            "os.PathLike (raw encoded image bytes are not accepted)"
        )
    if isinstance(item, np.ndarray):
        return (
            f"{where} is an array of shape {item.shape} but other items are file paths; "
            "X must contain only paths or only arrays"
        )
    return (
        f"{where} is {type(item).__name__} ({item!r:.60}); expected an image file path "
        "(str or os.PathLike)"
    )


def _check_path_item(item, index):
    """Return ``item`` as a ``str`` path (an :class:`ImageItem` unchanged), or raise
    ImageLoadError naming ``index``."""
    if isinstance(item, ImageItem):  # validated (and frozen) at construction
        return item
    if isinstance(item, (str, os.PathLike)):
        try:
            path = os.fspath(item)
        except TypeError as exc:
            raise ImageLoadError(
                f"{_where(index=index)} is not a valid path: {exc}", index=index
            ) from exc
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        path = str(path)  # np.str_ -> str
        if not path:
            raise ImageLoadError(
                f"{_where(index=index)} is an empty string; expected an image file path",
                index=index,
            )
        if "\x00" in path:
            raise ImageLoadError(
                f"{_where(index=index)} contains a NUL character; not a valid path",
                path=path,
                index=index,
            )
        return path
    raise ImageLoadError(_bad_item_message(item, index), index=index)


def _first_failing_row(arr, value_ok):
    """Index of the first image of ``arr`` with a value for which ``value_ok`` is False,
    or None.  Checked in chunks of ~16 M values so that the boolean masks stay small."""
    chunk = max(1, (1 << 24) // max(1, arr[0].size))
    for start in range(0, arr.shape[0], chunk):
        ok = value_ok(arr[start : start + chunk]).all(axis=(1, 2, 3))
        if not ok.all():
            return start + int(np.argmin(ok))
    return None


def _check_numeric_array(arr):
    """Validate a 4-D numeric image array; return it as uint8 or float."""
    if arr.ndim != 4 or arr.shape[-1] != 3:
        if arr.ndim == 3 and arr.shape[-1] == 3:
            extra = (
                "; this looks like a single image, add a batch axis with "
                "X[np.newaxis] or pass [image]"
            )
        elif arr.ndim == 4:
            extra = f"; got {arr.shape[-1]} channels, convert to RGB first"
        else:
            extra = ""
        raise ImageLoadError(
            f"X must be an array of shape {_ARRAY_SHAPE_HINT} of RGB images, got an "
            f"array of shape {arr.shape}{extra}"
        )
    if arr.shape[0] == 0:
        raise ImageLoadError("X is empty: expected at least one image")
    if arr.shape[1] == 0 or arr.shape[2] == 0:
        raise ImageLoadError(
            f"X has images of size {arr.shape[1]}x{arr.shape[2]}; height and width must "
            f"be at least 1 (expected shape {_ARRAY_SHAPE_HINT})"
        )
    kind = arr.dtype.kind
    if arr.dtype == np.uint8:
        return arr
    if kind == "f":
        row = _first_failing_row(arr, np.isfinite)
        if row is not None:
            raise ImageLoadError(
                f"{_where(index=row)} (array row {row}) contains NaN or infinity; "
                "pixel values must be finite (0-255 scale)",
                index=row,
            )
        return arr
    if kind in "iu":
        row = _first_failing_row(arr, lambda block: (block >= 0) & (block <= 255))
        if row is not None:
            raise ImageLoadError(
                f"{_where(index=row)} (array row {row}) has {arr.dtype} values outside "
                "0-255; pass uint8 pixels, or floats on the 0-255 scale",
                index=row,
            )
        return arr.astype(np.uint8)
    raise ImageLoadError(
        f"X has dtype {arr.dtype}; expected an array of shape {_ARRAY_SHAPE_HINT} with "
        "uint8 or float (0-255 scale) pixels"
    )


def _stack_arrays(items):
    """Stack a list of 3-D ``(h, w, 3)`` arrays, naming the first bad item."""
    first = None
    for index, item in enumerate(items):
        if not isinstance(item, np.ndarray):
            if isinstance(item, (str, os.PathLike)):
                msg = (
                    f"{_where(index=index)} is a path but other items are arrays; "
                    "X must contain only paths or only arrays"
                )
            else:
                msg = (
                    f"{_where(index=index)} is {type(item).__name__}; expected an array "
                    "of shape (height, width, 3) like the other items"
                )
            raise ImageLoadError(msg, index=index)
        if item.ndim != 3 or item.shape[-1] != 3:
            raise ImageLoadError(
                f"{_where(index=index)} (array row {index}) has shape {item.shape}; "
                "each image must have shape (height, width, 3)",
                index=index,
            )
        if first is None:
            first = item.shape
        elif item.shape != first:
            raise ImageLoadError(
                f"{_where(index=index)} (array row {index}) has shape {item.shape} but "
                f"X[0] has shape {first}; all images in an array list must have the "
                "same shape (or pass file paths, which are resized)",
                index=index,
            )
    return np.stack(items)


def check_images(X):
    """Validate the images given to a skanimal estimator.

    Parameters
    ----------
    X : sequence of str or os.PathLike, pandas Series or one-column DataFrame of \
paths, 1-D array of paths, iterator of paths, ndarray or list of ndarrays
        Either image file paths (possibly mixed with :class:`ImageItem` items such as
        :class:`~skanimal.AugmentedImage`), or pixels: a numeric
        array of shape ``(n_images, height, width, 3)`` (``uint8``, integers in
        0-255, or floats on the 0-255 scale, as in Keras) or a list of
        ``(height, width, 3)`` arrays of identical shape.

    Returns
    -------
    images : list of str or numpy.ndarray
        The paths as a new ``list`` of ``str`` (as given, not made absolute;
        duplicates kept; ``ImageItem`` items kept as they are), or a 4-D array
        of dtype ``uint8`` (integer input) or the input float dtype.

    Raises
    ------
    ImageLoadError
        If ``X`` is empty, a single path, of the wrong shape or dtype, contains
        NaN/infinite pixels, or an item is not a path (``None``, a number, ...).  The
        message names the offending index.  ``ImageLoadError`` is a ``ValueError``.
    """
    if X is None:
        raise ImageLoadError(
            "X is None; expected a sequence of image paths or an array of shape "
            f"{_ARRAY_SHAPE_HINT}"
        )
    if isinstance(X, (str, bytes, os.PathLike)):
        kind = type(X).__name__ if isinstance(X, (str, bytes)) else "path"
        raise ImageLoadError(
            f"X must be a sequence of image paths, got a single {kind}; wrap it in a "
            f"list: [{X!r}]"
        )
    if isinstance(X, np.ndarray):
        if X.dtype.kind in "OUS":
            if X.ndim == 2 and X.shape[1] == 1:
                X = X[:, 0]
            if X.ndim != 1:
                raise ImageLoadError(
                    f"X is a {X.ndim}-D array of shape {X.shape} holding "
                    f"{X.dtype} items; expected a 1-D array of image paths"
                )
            items = X.tolist()
        else:
            return _check_numeric_array(X)
    elif hasattr(X, "columns") and hasattr(X, "iloc"):  # pandas DataFrame
        if X.shape[1] != 1:
            raise ImageLoadError(
                f"X is a DataFrame with {X.shape[1]} columns; expected a single column "
                "of image paths (select it, e.g. df['path'])"
            )
        items = X.iloc[:, 0].tolist()
    elif isinstance(X, (set, frozenset, Mapping)):
        raise ImageLoadError(
            f"X is a {type(X).__name__}, which has no reliable order; pass a list of "
            "image paths"
        )
    elif hasattr(X, "tolist") and hasattr(X, "dtype"):  # pandas Series, Index, ...
        items = X.tolist()
    else:
        try:
            items = list(X)
        except TypeError:
            raise ImageLoadError(
                f"X must be a sequence of image paths or an array of shape "
                f"{_ARRAY_SHAPE_HINT}, got {type(X).__name__}"
            ) from None

    if len(items) == 0:
        raise ImageLoadError("X is empty: expected at least one image")
    if any(isinstance(item, np.ndarray) for item in items):
        return _check_numeric_array(_stack_arrays(items))
    return [_check_path_item(item, index) for index, item in enumerate(items)]


# ------------------------------------------------------------------ read and decode


def read_image_bytes(path, index=None):
    """Read the raw bytes of an image file.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.  Symbolic links are followed.
    index : int, optional
        Position of ``path`` in ``X``, used in error messages.

    Returns
    -------
    data : bytes
        The file's content.

    Raises
    ------
    ImageLoadError
        If ``path`` is ``None``, does not exist, is a directory or not a regular file,
        or cannot be read (permissions, I/O error).  The message names the path and
        ``index``.
    """
    if path is None:
        raise ImageLoadError(
            f"{_where(index=index)} is None; expected an image file path", index=index
        )
    try:
        fspath = os.fspath(path)
    except TypeError:
        raise ImageLoadError(_bad_item_message(path, index), index=index) from None
    if isinstance(fspath, bytes):
        fspath = os.fsdecode(fspath)
    where = _where(fspath, index)
    try:
        info = os.stat(fspath)
    except (OSError, ValueError) as exc:
        raise _read_error(exc, fspath, where, index) from exc
    # Checked before opening: reading a FIFO or a device would block or never end.
    if not stat.S_ISREG(info.st_mode):
        reason = _IS_A_DIRECTORY if stat.S_ISDIR(info.st_mode) else "it is not a regular file"
        raise ImageLoadError(f"Cannot read image {where}: {reason}", path=fspath, index=index)
    try:
        with open(fspath, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise _read_error(exc, fspath, where, index) from exc


_IS_A_DIRECTORY = "it is a directory, not an image file"


def _read_error(exc, fspath, where, index):
    """The ImageLoadError that says why ``fspath`` could not be read (``exc``)."""
    if isinstance(exc, FileNotFoundError):
        reason = (
            "it is a broken symbolic link (its target does not exist)"
            if os.path.islink(fspath)
            else "file does not exist"
        )
    elif isinstance(exc, IsADirectoryError):  # made a directory since the stat
        reason = _IS_A_DIRECTORY
    elif isinstance(exc, PermissionError):
        reason = "permission denied"
    elif isinstance(exc, ValueError):  # e.g. an embedded NUL byte
        reason = f"invalid path ({exc})"
    else:
        reason = exc.strerror or str(exc) or type(exc).__name__
    return ImageLoadError(f"Cannot read image {where}: {reason}", path=fspath, index=index)


def decode_image(data, size=(224, 224), *, path=None, index=None):
    """Decode an encoded image into an upright RGB ``uint8`` array.

    Parameters
    ----------
    data : bytes or bytes-like
        The encoded file (JPEG, PNG, GIF, WebP, TIFF, BMP, ... anything Pillow reads).
        Only the first frame of animated files is used.
    size : tuple of int (height, width) or None, default=(224, 224)
        Output size.  The image is stretched to it (no cropping), like
        ``keras.utils.load_img(target_size=size)``.  ``None`` keeps the native size
        (after EXIF orientation).
    path : str, optional
        The file the bytes came from, for error messages.
    index : int, optional
        Position of the image in ``X``, for error messages.

    Returns
    -------
    pixels : numpy.ndarray of shape (height, width, 3) and dtype uint8

    Raises
    ------
    ImageLoadError
        If the data is empty, not an image, truncated or corrupt, or exceeds Pillow's
        decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``).  The message names
        ``path`` and ``index`` and the original exception is chained.

    Notes
    -----
    JPEGs much larger than ``size`` are decoded at 1/2, 1/4 or 1/8 scale with
    :meth:`PIL.Image.Image.draft`; Pillow picks the largest reduction that keeps the
    decoded image at least as big as the target, so quality is unaffected.  The EXIF
    orientation is read first so that the draft size is requested in the file's stored
    orientation, and the transposition is applied after resizing (it commutes with the
    resize and is then cheaper).  Transparent images are composited on white.
    16-bit grayscale is mapped to 8 bits with ``round(v / 257)``.
    """
    where = _where(path, index)
    target = _validate_size(size) if size is not None else None
    if data is None:
        raise ImageLoadError(
            f"Cannot read image {where}: no data (None)", path=path, index=index
        )
    if isinstance(data, str):
        raise ImageLoadError(
            f"Cannot read image {where}: expected the encoded bytes, got a str (read "
            "the file first with read_image_bytes)",
            path=path,
            index=index,
        )
    try:
        n_bytes = len(data)
    except TypeError:
        raise ImageLoadError(
            f"Cannot read image {where}: expected bytes, got {type(data).__name__}",
            path=path,
            index=index,
        ) from None
    if n_bytes == 0:
        raise ImageLoadError(
            f"Cannot read image {where}: the file is empty (0 bytes)",
            path=path,
            index=index,
        )

    try:
        with Image.open(io.BytesIO(data)) as img:
            orientation = _read_orientation(img)
            swap = orientation in _SWAPPING_ORIENTATIONS
            stored_size = None
            if target is not None:
                height, width = target
                # Pillow sizes are (width, height), in the file's stored orientation.
                stored_size = (height, width) if swap else (width, height)
                img.draft("RGB", stored_size)  # JPEG only; no-op for other formats
            img.load()
            out = _normalise_mode(img)
            if stored_size is not None and out.size != stored_size:
                out = out.resize(stored_size, RESAMPLE, reducing_gap=REDUCING_GAP)
            method = _ORIENTATION_TRANSPOSE.get(orientation)
            if method is not None:
                out = out.transpose(method)
            pixels = _to_rgb_array(out)
    except ImageLoadError:
        raise
    except MemoryError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(
            f"Cannot read image {where}: {exc} Refusing to decode it (raise "
            "PIL.Image.MAX_IMAGE_PIXELS if the file is trusted)",
            path=path,
            index=index,
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageLoadError(
            f"Cannot read image {where}: {_describe_undecodable(data)}",
            path=path,
            index=index,
        ) from exc
    except Exception as exc:
        reason = str(exc) or type(exc).__name__
        raise ImageLoadError(
            f"Cannot read image {where}: {reason}", path=path, index=index
        ) from exc
    return pixels


def decode_thumbnail(data, max_side, *, path=None):
    """Decode an image as the model sees it, shrunk to at most ``max_side`` pixels.

    The pixels of :func:`decode_image` (upright, first frame, transparency on white,
    16-bit grey scaled) with the image's own aspect ratio kept: what a person reviewing a
    photo should see is what the model was shown.

    Parameters
    ----------
    data : bytes
        The encoded file.
    max_side : int
        Longest side of the result, in pixels; smaller images keep their size.
    path : str, optional
        The file the bytes came from, for error messages.

    Returns
    -------
    pixels : numpy.ndarray of shape (height, width, 3) and dtype uint8

    Raises
    ------
    ImageLoadError
        As :func:`decode_image`.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if _read_orientation(img) in _SWAPPING_ORIENTATIONS:
                width, height = height, width  # the upright sides
    except Exception:  # let the decoder say why, in its words
        return decode_image(data, None, path=path)
    scale = min(1.0, max_side / max(width, height, 1))
    return decode_image(data, (max(1, round(height * scale)), max(1, round(width * scale))),
                        path=path)


def stored_image_size(data):
    """``(width, height)`` an encoded image declares in its header, or None.

    Only the header is parsed (no pixels are decoded), so this is cheap enough to run on
    every image, cached or not.

    Parameters
    ----------
    data : bytes
        The encoded file.

    Returns
    -------
    tuple of int or None
        None when Pillow cannot identify the data.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            return tuple(int(s) for s in img.size)
    except Exception:  # the decoder reports unreadable files, with the reason
        return None


# ---------------------------------------------------------------------- batches


def read_item_bytes(item, index=None):
    """Read the encoded bytes an item of ``X`` gets its pixels from.

    Parameters
    ----------
    item : str, os.PathLike or ImageItem
        A file path (read with :func:`read_image_bytes`) or an :class:`ImageItem`
        (its :meth:`~ImageItem.load_bytes`).
    index : int, optional
        Position of ``item`` in ``X``, used in error messages.

    Returns
    -------
    data : bytes

    Raises
    ------
    ImageLoadError
        If the file cannot be read; the message names the path and ``index``.
    """
    if isinstance(item, ImageItem):
        return item.load_bytes(index=index)
    return read_image_bytes(item, index=index)


def decode_item(item, data, size=(224, 224), *, index=None):
    """Pixels of an item of ``X`` from the bytes :func:`read_item_bytes` returned for it.

    Together with :func:`read_item_bytes` this reads each file once even when its bytes
    are also needed for something else (such as a cache key).

    Parameters
    ----------
    item : str, os.PathLike or ImageItem
        The item the bytes belong to (a path names the file in error messages; an
        :class:`ImageItem` decodes them itself).
    data : bytes-like
        The encoded file.
    size : tuple of int (height, width) or None, default=(224, 224)
        Output size (see :func:`decode_image`).
    index : int, optional
        Position of ``item`` in ``X``, used in error messages.

    Returns
    -------
    pixels : numpy.ndarray of shape (height, width, 3) and dtype uint8

    Raises
    ------
    ImageLoadError
        If the data cannot be decoded; the message names the path and ``index``.
    """
    if isinstance(item, ImageItem):
        return item.decode(data, size, index=index)
    return decode_image(data, size, path=os.fsdecode(os.fspath(item)), index=index)


def _load_one(item, size, index):
    """Read and decode one item (runs on a worker thread)."""
    return decode_item(item, read_item_bytes(item, index=index), size, index=index)


def _default_workers():
    return min(32, (os.cpu_count() or 1) + 4)


def load_pixels(paths, size=(224, 224), *, start_index=0, indices=None, executor=None):
    """Read and decode image files in parallel into one ``uint8`` batch.

    Parameters
    ----------
    paths : sequence of str, os.PathLike or ImageItem
        The files, e.g. as returned by :func:`check_images`.  :class:`ImageItem` items
        (such as :class:`~skanimal.AugmentedImage`) decode themselves.
    size : tuple of int (height, width), default=(224, 224)
        Size every image is resized to.
    start_index : int, default=0
        Index of ``paths[0]`` in ``X``; error messages report
        ``start_index + i`` so that they point into the caller's full ``X`` when
        ``paths`` is a chunk of it.
    indices : sequence of int, optional
        The index in ``X`` of each item of ``paths``, for error messages, when ``paths``
        is not a contiguous run of ``X``; overrides ``start_index``.
    executor : concurrent.futures.Executor, optional
        Executor to run the reads/decodes on (it is not shut down).  A thread pool is
        best: Pillow releases the GIL while decoding and resizing.  When ``None``, a
        private :class:`~concurrent.futures.ThreadPoolExecutor` is used for the call.

    Returns
    -------
    pixels : numpy.ndarray of shape (len(paths), height, width, 3) and dtype uint8
        In the order of ``paths``.

    Raises
    ------
    ImageLoadError
        For the first failing item in ``paths`` order; the message names its path and
        index in ``X``.  Pending work is cancelled.
    """
    paths = list(paths)
    height, width = _validate_size(size)
    target = (height, width)
    n = len(paths)
    if indices is None:
        indices = range(int(start_index), int(start_index) + n)
    elif len(indices) != n:
        raise ValueError(f"indices has {len(indices)} entries for {n} paths; they must match")
    out = np.empty((n, height, width, 3), dtype=np.uint8)
    if n == 0:
        return out
    own_executor = executor is None
    if own_executor and n == 1:
        out[0] = _load_one(paths[0], target, indices[0])
        return out
    if own_executor:
        executor = ThreadPoolExecutor(
            max_workers=min(n, _default_workers()), thread_name_prefix="skanimal-images"
        )
    workers = getattr(executor, "_max_workers", None) or os.cpu_count() or 1
    # Bounded look-ahead: keeps memory flat for huge inputs and little work to cancel.
    window = max(2 * workers, 8)
    pending = collections.deque()
    next_i = 0
    try:
        while next_i < n and len(pending) < window:
            pending.append(executor.submit(_load_one, paths[next_i], target, indices[next_i]))
            next_i += 1
        for i in range(n):
            future = pending.popleft()
            out[i] = future.result()
            if next_i < n:
                pending.append(
                    executor.submit(_load_one, paths[next_i], target, indices[next_i])
                )
                next_i += 1
    finally:
        for future in pending:
            future.cancel()
        if own_executor:
            executor.shutdown(wait=True, cancel_futures=True)
    return out


def resize_array_batch(array_batch, size):
    """Resize a batch of RGB images given as an array.

    Parameters
    ----------
    array_batch : numpy.ndarray of shape (n_images, height, width, 3)
        ``uint8`` or float pixels (float on the 0-255 scale), e.g. as returned by
        :func:`check_images`.
    size : tuple of int (height, width)
        Target size.  Images are stretched to it with the same filter as files.

    Returns
    -------
    resized : numpy.ndarray of shape (n_images, size[0], size[1], 3)
        Same dtype as the input.  When the size already matches, ``array_batch``
        itself is returned (no copy).

    Raises
    ------
    ImageLoadError
        If ``array_batch`` is not a 4-D RGB array of a supported dtype.
    """
    arr = np.asarray(array_batch)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ImageLoadError(
            f"expected an array of shape {_ARRAY_SHAPE_HINT}, got shape {arr.shape}"
        )
    height, width = _validate_size(size)
    if arr.shape[1:3] == (height, width):
        return arr
    if arr.shape[1] == 0 or arr.shape[2] == 0:
        raise ImageLoadError(f"cannot resize images of size {arr.shape[1]}x{arr.shape[2]}")
    n = arr.shape[0]
    out = np.empty((n, height, width, 3), dtype=arr.dtype)
    if arr.dtype == np.uint8:
        for i in range(n):
            img = Image.fromarray(np.ascontiguousarray(arr[i]))
            out[i] = np.asarray(
                img.resize((width, height), RESAMPLE, reducing_gap=REDUCING_GAP)
            )
    elif arr.dtype.kind == "f":
        for i in range(n):
            for c in range(3):
                channel = np.ascontiguousarray(arr[i, :, :, c], dtype=np.float32)
                img = Image.fromarray(channel)
                out[i, :, :, c] = np.asarray(
                    img.resize((width, height), RESAMPLE, reducing_gap=REDUCING_GAP)
                )
    else:
        raise ImageLoadError(
            f"cannot resize an image array of dtype {arr.dtype}; expected uint8 or float"
        )
    return out
