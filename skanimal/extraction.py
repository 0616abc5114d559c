"""The feature-extraction engine behind :class:`~skanimal.BottleneckFeatures`.

Images in, an :class:`Extraction` out: each image file is read once on a decoding thread,
keyed by its content, looked up in the feature cache and decoded only on a miss; misses go
through the backbone in batches while the next batch decodes and the previous one is
written to the cache (:class:`Extractor`). :func:`extract_in_chunks` splits the same work
across ``joblib`` workers, each shipping only paths (or pixel rows) and plain settings
(:class:`ChunkSettings`). The estimator's public surface stays in :mod:`skanimal.features`.
"""

from __future__ import annotations

import collections
import functools
import os
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .backbones import get_spec
from .cache import FeatureCache, hash_array_row, hash_bytes, hash_file, make_fingerprint
from .exceptions import ImageLoadError, SmallImageWarning
from .images import (
    ImageItem,
    decode_item,
    read_item_bytes,
    resize_array_batch,
    stored_image_size,
)

__all__ = ["Extraction", "Extractor", "ChunkSettings", "extract_in_chunks", "content_keys",
           "item_key", "hash_prefixes", "decode_threads", "SMALL_IMAGE_FRACTION",
           "feature_fingerprint", "warn_small_images", "check_extraction_on_error"]

#: An image file is "far smaller" than the network's input when both its sides are below
#: this fraction of the input's: upscaled 8 times or more, it shows the CNN little but blur.
SMALL_IMAGE_FRACTION = 1 / 8

#: Threads writing cache entries; they mostly wait for fsync, so more than the cores.
_CACHE_WRITERS = 4


@dataclass
class Extraction:
    """What :meth:`BottleneckFeatures.extract` produced, besides the features.

    Attributes
    ----------
    features : ndarray of shape (n_kept, ``n_features_out_``), float32
        Features of the images that could be read, in the order of ``X``.
    kept : ndarray of int
        Position in ``X`` of each row of ``features``.
    errors : list of ImageLoadError
        The images that could not be read (``on_error="skip"``), in the order of ``X``;
        each names its file (``.path``) and position (``.index``).
    content_keys : list of str
        The content key (SHA-256 of the file's bytes, the feature cache's key) of each row.
    n_cached : int
        How many rows came from the feature cache rather than the CNN.
    small_images : list of (str, (int, int))
        Files far smaller than the network's input (``SMALL_IMAGE_FRACTION``) and their
        ``(width, height)``.
    """

    features: np.ndarray = field(repr=False)
    kept: np.ndarray = field(repr=False)
    errors: list = field(default_factory=list)
    content_keys: list = field(default_factory=list, repr=False)
    n_cached: int = 0
    small_images: list = field(default_factory=list)


def decode_threads():
    """Threads decoding images: decoding releases the GIL, and a few keep ahead of the CNN
    without starving it.

    Returns
    -------
    int
    """
    return max(2, min(8, os.cpu_count() or 2))


def _key_prefix(key):
    """The first 8 bytes of a hex content key as an int: compact, and collision-free in
    practice among the images of one data set."""
    return int(str(key)[:16], 16)


def hash_prefixes(keys):
    """Sorted unique 8-byte prefixes of content keys (a fitted ``training_hashes_``).

    Parameters
    ----------
    keys : sequence of str or None

    Returns
    -------
    ndarray of uint64 or None
    """
    if keys is None:
        return None
    return np.unique(np.array([_key_prefix(k) for k in keys], dtype=np.uint64))


def known_prefixes(keys, known):
    """Which content keys have a prefix among ``known`` (:func:`hash_prefixes`).

    Parameters
    ----------
    keys : sequence of str
    known : ndarray of uint64

    Returns
    -------
    ndarray of bool
    """
    prefixes = np.array([_key_prefix(k) for k in keys], dtype=np.uint64)
    return np.isin(prefixes, known)


def item_key(item, data):
    """Content key of an image item whose file holds ``data``.

    An :class:`~skanimal.images.ImageItem` keys itself (an augmented copy: source content,
    parameters and seed), so a changed source file gets new keys for its copies too.

    Parameters
    ----------
    item : path-like or ImageItem
    data : bytes

    Returns
    -------
    str
    """
    return item.content_key(data) if isinstance(item, ImageItem) else hash_bytes(data)


def content_keys(images):
    """Content keys of checked ``images`` without decoding them; files that cannot be read
    are left out (transform reports them).

    Parameters
    ----------
    images : list or ndarray
        As returned by :func:`skanimal.images.check_images`.

    Returns
    -------
    list of str
    """
    if isinstance(images, np.ndarray):
        return [hash_array_row(row) for row in images]
    keys = []
    for item in images:
        try:
            if isinstance(item, ImageItem):
                keys.append(item.content_key(item.load_bytes()))
            else:
                keys.append(hash_file(item))
        except (ImageLoadError, OSError):
            continue
    return keys


def feature_fingerprint(backbone, *, weights, image_size, pooling, precision, openvino=None):
    """The feature cache's fingerprint of an extraction configuration: the one definition,
    so :class:`~skanimal.BottleneckFeatures` and :mod:`skanimal.inference` share entries.

    Parameters
    ----------
    backbone : str
        A registered backbone name.
    weights : str
        The weights' identity (:func:`skanimal.weights.weights_identity`, or the
        ``sha256:`` one a fitted transformer recorded).
    image_size : tuple of int
    pooling : str or None
    precision : str
    openvino : Int8Backbone, optional
        The network OpenVINO runs (``precision="int8"``, or ``engine="openvino"``): its
        weights, recipe and runtime version are part of the fingerprint.

    Returns
    -------
    str
    """
    spec = get_spec(backbone)
    network = {}
    if openvino is not None:
        # The quantized weights and ranges (so the calibration), NNCF settings, versions.
        # engine="openvino" has its own key, so TensorFlow's entries keep their fingerprint.
        network = {"int8_model" if precision == "int8" else "openvino_model":
                   openvino.fingerprint()}
    return make_fingerprint(backbone=spec.name, weights=weights, image_size=image_size,
                            pooling=pooling, preprocessing=spec.preprocessing,
                            precision=precision, **network)


def check_extraction_on_error(on_error):
    """``on_error`` of an ``extract`` call, checked: ``"raise"`` or ``"skip"``.

    Raises
    ------
    ValueError
        Naming the value given.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}.")
    return on_error


def warn_small_images(small_images, image_size, stacklevel=2):
    """One :class:`~skanimal.exceptions.SmallImageWarning` naming the image files far
    smaller than the network's input (``Extraction.small_images``); ``stacklevel`` as
    ``warnings.warn`` would take it in the caller (2: the caller's caller's line)."""
    height, width = image_size
    shown = ", ".join(f"{path!r} ({w}x{h})" for path, (w, h) in small_images[:5])
    more = f" and {len(small_images) - 5} more" if len(small_images) > 5 else ""
    warnings.warn(
        f"{len(small_images)} image file(s) far smaller than the network's {height}x{width} "
        f"input are upscaled, so their features say little: {shown}{more}",
        SmallImageWarning, stacklevel=stacklevel + 1,
    )


def _far_smaller(stored_size, size):
    width, height = stored_size
    return (width < size[1] * SMALL_IMAGE_FRACTION
            and height < size[0] * SMALL_IMAGE_FRACTION)


def _prepare(images, i, offset, size, store):
    """``(key, cached features, pixels, stored size)`` of ``images[i]``, reading its file
    once.

    Runs on a decoding thread. ``key`` is its content key; ``cached`` its features when
    the cache holds them, else None and ``pixels`` its decoded pixels; ``stored size`` the
    ``(width, height)`` a plain image file declares (None for arrays and image items). The
    encoded bytes do not outlive this call.
    """
    if isinstance(images, np.ndarray):
        key = hash_array_row(images[i])
        cached = store.get(key) if store is not None else None
        if cached is not None:
            return key, cached, None, None
        return key, None, resize_array_batch(images[i:i + 1], size)[0], None
    item, index = images[i], offset + i
    data = read_item_bytes(item, index=index)
    key = item_key(item, data)
    stored_size = None if isinstance(item, ImageItem) else stored_image_size(data)
    if store is not None:
        cached = store.get(key)
        if cached is not None:
            return key, cached, None, stored_size
    return key, None, decode_item(item, data, size, index=index), stored_size


@dataclass
class Extractor:
    """Features of images, from the cache where possible, the backbone otherwise.

    Parameters
    ----------
    image_size : tuple of int
        ``(height, width)`` images are resized to.
    batch_size : int
        Images per forward pass.
    backbone : callable
        Returns the backbone (anything with ``features(pixels)`` and ``n_features``);
        called on the first cache miss only, so a warm cache needs no network.
    store : FeatureCache or None
    n_features : int or None
        Features per image when known (a fitted transformer): spares building the backbone
        when no image could be read.
    verbose : int
        Show a progress bar when > 0.
    """

    image_size: tuple
    batch_size: int
    backbone: Callable
    store: FeatureCache | None = None
    n_features: int | None = None
    verbose: int = 0

    def extract(self, images, offset=0, on_error="raise"):
        """:class:`Extraction` of ``images`` (checked paths list or 4-D array).

        ``offset`` is where ``images`` starts in the caller's X, so errors and ``kept`` use
        its indices.

        Each image is read once: a decoding thread reads its bytes, keys the cache with
        them and, on a miss, decodes the same bytes. Only the pixels of misses are kept,
        and only for the images in flight, a bounded window that lets the next batch decode
        while the CNN runs on this one. Writer threads store batch k in the cache while the
        CNN runs on batch k+1: each entry waits for its fsync (~3 ms for a 250 KB entry
        here), which at hundreds of images per second (int8) would otherwise stall the CNN,
        and is waited for in parallel.
        """
        from tqdm.auto import tqdm

        n_images = len(images)
        size, store = self.image_size, self.store
        output = None
        backbone = None
        keys = [None] * n_images
        errors = []  # ImageLoadError of each image skipped (on_error="skip")
        small = []  # (path, (width, height)) of files far smaller than the input
        n_cached = 0
        done = {}  # content key -> row computed by the CNN: duplicates go through it once
        waiting = {}  # content key -> row, for the misses in `batch`
        batch = []  # (row, key, pixels) of misses waiting for the CNN
        copies = []  # (row, row it copies) for duplicates of images in `batch`
        writing = []  # the previous batch's cache writes

        progress = tqdm(total=n_images, unit="img", desc="Extracting features",
                        disable=not self.verbose)

        def run_batch():
            nonlocal backbone, output, writing
            if backbone is None:
                backbone = self.backbone()
            features = backbone.features(np.stack([pixels for _, _, pixels in batch]))
            if output is None:
                output = np.empty((n_images, features.shape[1]), dtype=np.float32)
            rows = [row for row, _, _ in batch]
            output[rows] = features
            if store is not None:
                for future in writing:  # one batch in the writers at most: memory stays flat
                    future.result()
                entries = [(key, row) for (_, key, _), row in zip(batch, features)]
                writing = [writer.submit(store.put_many, entries[i::_CACHE_WRITERS])
                           for i in range(_CACHE_WRITERS)]
            for row, source in copies:
                output[row] = output[source]
            progress.update(len(batch) + len(copies))
            done.update(waiting)
            waiting.clear()
            batch.clear()
            copies.clear()

        threads = decode_threads()
        # Look-ahead window: the next batch decodes while the CNN runs on this one.
        window = self.batch_size + 2 * threads
        with progress, ThreadPoolExecutor(threads, thread_name_prefix="skanimal-decode") as pool, \
                ThreadPoolExecutor(_CACHE_WRITERS, thread_name_prefix="skanimal-cache") as writer:
            pending = collections.deque()
            submitted = 0
            try:
                for row in range(n_images):
                    while submitted < n_images and len(pending) < window:
                        pending.append(pool.submit(_prepare, images, submitted, offset, size,
                                                   store))
                        submitted += 1
                    try:
                        key, cached, pixels, stored_size = pending.popleft().result()
                    except ImageLoadError as exc:
                        if on_error != "skip":
                            raise
                        errors.append(exc)
                        progress.update(1)
                        continue
                    keys[row] = key
                    if stored_size is not None and _far_smaller(stored_size, size):
                        small.append((os.fspath(images[row]), stored_size))
                    if cached is not None:
                        n_cached += 1
                        if output is None:
                            output = np.empty((n_images, cached.shape[0]), dtype=np.float32)
                        output[row] = cached
                        progress.update(1)
                    elif key is not None and key in done:
                        output[row] = output[done[key]]
                        progress.update(1)
                    elif key is not None and key in waiting:
                        copies.append((row, waiting[key]))
                    else:
                        if key is not None:
                            waiting[key] = row
                        batch.append((row, key, pixels))
                        if len(batch) == self.batch_size:
                            run_batch()
                if batch:
                    run_batch()
                for future in writing:
                    future.result()
            finally:
                for future in pending:
                    future.cancel()
        failed = {exc.index - offset for exc in errors}
        kept = np.array([row for row in range(n_images) if row not in failed], dtype=np.intp)
        if output is None:  # nothing could be read
            n_features = self.n_features
            if n_features is None:
                n_features = self.backbone().n_features
            output = np.empty((n_images, n_features), dtype=np.float32)
        return Extraction(
            features=output[kept] if failed else output,
            kept=kept + offset,
            errors=errors,
            content_keys=[keys[row] for row in kept],
            n_cached=n_cached,
            small_images=small,
        )


@dataclass
class ChunkSettings:
    """What a worker needs to extract a chunk: plain, picklable values, no estimator.

    Parameters
    ----------
    image_size : tuple of int
    batch_size : int
    backbone_args : dict
        Keyword arguments of :func:`skanimal.backbones.get_backbone` (name, resolved
        weights, image size, pooling, precision); unused with ``quantized``.
    cache_dir : str or None
        The cache directory as an absolute path (workers may not share the caller's
        environment nor its working directory).
    fingerprint : str or None
        The cache fingerprint of the configuration.
    quantized : object, optional
        An int8 backbone (fitted state, a few MB of IR bytes; each worker compiles it once).
    n_features : int or None
    """

    image_size: tuple
    batch_size: int
    backbone_args: dict
    cache_dir: str | None = None
    fingerprint: str | None = None
    quantized: object = None
    n_features: int | None = None

    def extractor(self):
        """The :class:`Extractor` these settings describe, in this (worker) process."""
        if self.quantized is not None:
            quantized = self.quantized
            backbone = lambda: quantized  # noqa: E731
        else:
            from .backbones import get_backbone

            backbone = functools.partial(get_backbone, **self.backbone_args)
        store = (None if self.cache_dir is None
                 else FeatureCache(self.cache_dir, self.fingerprint))
        return Extractor(self.image_size, self.batch_size, backbone, store=store,
                         n_features=self.n_features)


def _extract_chunk(settings, images, offset, caller_pid=None, tf_threads=None,
                   on_error="raise"):
    """Worker-side extraction of ``images``, which start at ``offset`` in the caller's X.

    Limits TensorFlow's threads first when this is a worker process (before TensorFlow
    starts here; see :mod:`skanimal._parallel`), then extracts through the process-wide
    backbone registry, so a worker builds the backbone once and reuses it for every chunk.
    """
    from ._parallel import limit_tf_threads, record_chunk

    limit_tf_threads(caller_pid=caller_pid, hint=tf_threads)
    extraction = settings.extractor().extract(images, offset, on_error=on_error)
    record_chunk(len(images))
    return extraction


def extract_in_chunks(images, n_jobs, settings, serial, *, on_error="raise", verbose=0):
    """Features of ``images`` computed in chunks by ``joblib.Parallel`` workers.

    Runs on whatever joblib backend is active (loky processes by default; a Dask, Ray or
    Spark cluster inside ``joblib.parallel_config(backend=...)``). Chunks are whole batches
    (so the backbone sees the same batches as in a serial run), about ``4 × workers`` of
    them, each shipping only paths (or pixel rows) and ``settings``: every worker process
    builds the backbone once and reuses it for all its chunks.

    Parameters
    ----------
    images : list or ndarray
        Checked images.
    n_jobs : int
    settings : callable
        Returns the :class:`ChunkSettings` (called only when the work is really split).
    serial : Extractor
        Used instead when joblib would run the chunks one by one in this process anyway.
    on_error : {"raise", "skip"}
    verbose : int

    Returns
    -------
    Extraction
    """
    from joblib import Parallel, delayed, effective_n_jobs
    from tqdm.auto import tqdm

    from ._parallel import caller_tf_threads, chunk_bounds

    n_workers = effective_n_jobs(n_jobs)
    bounds = chunk_bounds(len(images), serial.batch_size, n_workers)
    if n_workers == 1 or len(bounds) == 1:
        return serial.extract(images, 0, on_error=on_error)
    tf_threads = caller_tf_threads()  # validated here, shipped to the workers
    chunk_settings = settings()
    tasks = (
        delayed(_extract_chunk)(chunk_settings, images[start:stop], start, os.getpid(),
                                tf_threads, on_error)
        for start, stop in bounds
    )
    # One task per chunk (chunks are coarse already); results come back in order.
    parallel = Parallel(n_jobs=n_jobs, batch_size=1, return_as="generator")
    parts = []
    with tqdm(total=len(images), unit="img", desc="Extracting features",
              disable=not verbose) as progress:
        for (start, stop), part in zip(bounds, parallel(tasks)):
            parts.append(part)
            progress.update(stop - start)
    return Extraction(
        features=np.concatenate([part.features for part in parts]),
        kept=np.concatenate([part.kept for part in parts]),
        errors=[error for part in parts for error in part.errors],
        content_keys=[key for part in parts for key in part.content_keys],
        n_cached=sum(part.n_cached for part in parts),
        small_images=[item for part in parts for item in part.small_images],
    )
