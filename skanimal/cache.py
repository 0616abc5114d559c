"""Content-addressed on-disk cache of CNN bottleneck features.

Running an image through a frozen ImageNet backbone is by far the most expensive step of
skanimal, and its result depends only on the image content and on the extraction
configuration. This module stores each feature vector on disk so that every image goes
through the CNN once, ever, across fits, estimators and processes.

Notes
-----
Addressing
    An entry is addressed by two hashes: a *fingerprint* of the extraction configuration
    (backbone, weights, image size, pooling, preprocessing, precision and
    :data:`FEATURE_FORMAT_VERSION`, see :func:`make_fingerprint`) and a *key* of the input
    content (:func:`hash_bytes` for encoded files, :func:`hash_array_row` for arrays).
    Changing anything that changes the features changes the fingerprint, so stale
    features are never served; they simply stop being found.

Layout ::

    <directory>/<fingerprint[:16]>/<key[:2]>/<key>.skfeat

    The two-character shard directory keeps directories small on file systems that slow
    down with many entries.

Entry format
    A 64-byte little-endian header followed by the raw ``<f4`` payload::

        offset  size  field
        0       8     magic b"SKANFEAT"
        8       2     entry format version (uint16, currently 1)
        10      1     dtype code (uint8, 1 = little-endian float32)
        11      1     reserved (0)
        12      4     reserved (0)
        16      8     number of values (uint64)
        24      8     payload length in bytes (uint64)
        32      32    blake2b-256 of (fingerprint, key, header[0:32], payload)

    The digest covers the full fingerprint and the key, so a file copied or renamed to
    another slot is rejected just like a damaged or truncated one. Any entry that fails
    validation is a miss; it is deleted on read and rewritten by the next ``put``.

Atomicity
    Entries (and the per-configuration ``feature_shape.json`` record) are written with
    ``skanimal.fileio.atomic_write``: a uniquely named temporary file (prefix
    ``.skanimal-tmp-``) in the entry's own directory is written, flushed, synced
    (``fsync``) and then moved (``os.replace``) over the final name. Readers only ever open
    final names, so they see either nothing, a previous complete entry, or the new complete
    entry, whatever happens to concurrent writers (threads or processes) and even if a
    writer is killed with SIGKILL. A killed writer leaves only a stale temporary file,
    which :func:`clear_cache` removes. The directory entry is not synced: a power cut can
    lose a recent entry, which is then simply computed again.

Failure policy
    The cache is an optimisation and must never break a fit. Any operating-system error
    that makes the directory unusable (permission denied, read-only or full file system,
    the path being a regular file, ...) disables that :class:`FeatureCache` instance with
    exactly one :class:`~skanimal.exceptions.CacheWarning`; afterwards reads and writes are
    no-ops and extraction simply runs without the cache. Programming errors (a malformed
    key, a 2-D feature array) still raise ``ValueError``.

This module deliberately does not import TensorFlow: it must stay cheap to import for
``cache_info`` / ``clear_cache`` and for worker processes.
"""

import hashlib
import json
import math
import os
import re
import struct
import sys
import threading
import time
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .exceptions import CacheWarning
from .fileio import TMP_PREFIX, atomic_write, to_jsonable

__all__ = [
    "ENV_VAR",
    "FEATURE_FORMAT_VERSION",
    "FeatureCache",
    "COMPILED_SUBDIR",
    "cache_info",
    "compiled_cache_dir",
    "clear_cache",
    "hash_array_row",
    "hash_bytes",
    "hash_file",
    "make_fingerprint",
    "resolve_cache_dir",
    "reuse_feature_store",
]

#: Version of the *meaning* of cached features. Bump it whenever extraction changes in a
#: way the other fingerprint fields do not capture; every old entry then becomes a miss.
FEATURE_FORMAT_VERSION = 1

#: Environment variable overriding the default cache directory (or disabling the cache).
ENV_VAR = "SKANIMAL_CACHE_DIR"

# Values of ENV_VAR that switch the cache off / explicitly select the default location.
_FALSY = frozenset({"0", "false", "off", "no", "none"})
_TRUTHY = frozenset({"1", "true", "on", "yes"})

# --- on-disk entry format -------------------------------------------------------------
_MAGIC = b"SKANFEAT"
_ENTRY_VERSION = 1
_DTYPE_F4LE = 1
_HEAD = struct.Struct("<8sHBBIQQ")  # everything before the digest
_DIGEST_SIZE = 32
_HEADER_SIZE = _HEAD.size + _DIGEST_SIZE
assert _HEADER_SIZE == 64  # payload starts 64-byte aligned

_SUFFIX = ".skfeat"
# Per-configuration record of the feature shape, so a warm fit needs no backbone.
_SHAPE_FILE = "feature_shape.json"
_FP_DIR_LEN = 16

_KEY_RE = re.compile(r"[0-9a-f]{16,128}")
_FINGERPRINT_RE = re.compile(r"[0-9a-f]{16,128}")
_FP_DIR_RE = re.compile(rf"[0-9a-f]{{{_FP_DIR_LEN}}}")
_SHARD_RE = re.compile(r"[0-9a-f]{2}")
_ENTRY_RE = re.compile(r"([0-9a-f]{16,128})" + re.escape(_SUFFIX))

_CHUNK = 1 << 20  # streaming block size for hash_file

#: Subfolder of the feature cache where OpenVINO keeps compiled networks (see
#: :func:`compiled_cache_dir`). Not a 16-hex name, so the feature-entry walk never sees it.
COMPILED_SUBDIR = "openvino"
# OpenVINO names each compiled network ``<hash>.blob``; only such files are ever cleared.
_COMPILED_RE = re.compile(r"[0-9A-Za-z_-]{1,128}\.blob")


# --- configuration --------------------------------------------------------------------
def _default_cache_dir():
    # Imported lazily: platformdirs is only needed when the default location is used.
    import platformdirs

    return Path(platformdirs.user_cache_dir("skanimal")) / "features"


def reuse_feature_store(store, cache, fingerprint):
    """The :class:`FeatureCache` of ``cache`` for ``fingerprint``, ``store`` itself if it is
    that one already.

    An owner keeps the store it was given for its life, so an unusable directory warns once,
    not at every call, and makes a new one only when its settings change.

    Parameters
    ----------
    store : FeatureCache or None
        The store the owner holds.
    cache : bool, None, str or os.PathLike
        The owner's ``cache`` parameter (:func:`resolve_cache_dir`).
    fingerprint : callable
        Returns the fingerprint; called only when caching is on.

    Returns
    -------
    FeatureCache or None
        None when caching is off.
    """
    directory = resolve_cache_dir(cache)
    if directory is None:
        return None
    fingerprint = fingerprint()
    if store is None or (store.directory, store.fingerprint) != (directory, fingerprint):
        store = FeatureCache(directory, fingerprint)
    return store


def resolve_cache_dir(cache):
    """Turn the estimators' ``cache`` parameter into a directory.

    Parameters
    ----------
    cache : bool, None, str or os.PathLike
        ``True`` uses ``$SKANIMAL_CACHE_DIR`` when it is set and non-empty, else the
        per-user cache directory (``platformdirs.user_cache_dir("skanimal")/"features"``).
        Setting the variable to ``0``, ``false``, ``off``, ``no`` or ``none``
        (case-insensitive) disables the cache; ``1``, ``true``, ``on`` or ``yes`` selects
        the default location. ``False`` or ``None`` disables the cache. A path selects
        that directory (``~`` is expanded).

    Returns
    -------
    pathlib.Path or None
        The cache directory, or ``None`` when caching is disabled. The directory is not
        created here.

    Raises
    ------
    ValueError
        If ``cache`` is of any other type, or an empty string.
    """
    # Check bools first: bool is not a path, and numpy booleans should behave alike.
    if isinstance(cache, (bool, np.bool_)):
        if not cache:
            return None
        value = os.environ.get(ENV_VAR, "").strip()
        if not value or value.lower() in _TRUTHY:
            return _default_cache_dir()
        if value.lower() in _FALSY:
            return None
        return Path(value).expanduser()
    if cache is None:
        return None
    if isinstance(cache, (str, os.PathLike)):
        path = os.fspath(cache)
        if isinstance(path, str) and path.strip():
            return Path(path).expanduser()
    raise ValueError(
        "Invalid value for parameter `cache`: expected True, False, None or a "
        f"non-empty directory path (str or os.PathLike), got {cache!r} "
        f"of type {type(cache).__name__}."
    )


def compiled_cache_dir(directory=True):
    """Where OpenVINO keeps its compiled networks: ``<feature cache>/openvino``.

    Compiling an OpenVINO network takes longer than running it on one photo; OpenVINO's own
    model cache (keyed by the network, device and settings) turns a later compile into a
    file read. It lives inside the feature cache directory, so :func:`cache_info` counts it,
    :func:`clear_cache` removes it, and ``$SKANIMAL_CACHE_DIR=off`` disables it.

    Parameters
    ----------
    directory : bool, None, str or os.PathLike, default=True
        A ``cache`` value as :func:`resolve_cache_dir` takes it.

    Returns
    -------
    pathlib.Path or None
        ``None`` when caching is disabled.
    """
    base = resolve_cache_dir(directory)
    return None if base is None else base / COMPILED_SUBDIR


def _compiled_files(directory):
    """OpenVINO's compiled-network files in the feature cache ``directory``."""
    folder = os.path.join(directory, COMPILED_SUBDIR)
    return [entry for entry in _scandir(folder)
            if _COMPILED_RE.fullmatch(entry.name) and _is_file(entry)]


def make_fingerprint(**config):
    """Stable digest of a feature-extraction configuration.

    Parameters
    ----------
    **config
        Everything that influences the feature values, e.g. ``backbone``, ``weights``,
        ``image_size``, ``pooling``, ``preprocessing``, ``precision``. Values must be
        JSON-like (str, numbers, bool, None, lists, tuples, dicts); tuples are treated
        as lists. :data:`FEATURE_FORMAT_VERSION` is always included.

    Returns
    -------
    str
        64-character lowercase hex SHA-256 digest of the canonical JSON encoding (sorted
        keys, no whitespace). Identical configurations give identical fingerprints in
        every process and on every platform; different ones give different fingerprints.

    Raises
    ------
    TypeError
        If a value cannot be encoded canonically.
    ValueError
        If a value is a non-finite float.
    """
    payload = {"feature_format_version": FEATURE_FORMAT_VERSION, "config": config}
    text = json.dumps(
        # Exact conversions only (unknown types raise): a lossy one would let two different
        # configurations share a fingerprint. Non-finite floats stay NaN so that
        # allow_nan=False rejects them (NaN != NaN would make the "same" config unstable).
        to_jsonable(payload, nan=math.nan),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        allow_nan=False,
    )
    return hashlib.sha256(text.encode("ascii")).hexdigest()


# --- content keys ---------------------------------------------------------------------
def hash_bytes(data):
    """Content key of an encoded image (or any bytes).

    Parameters
    ----------
    data : bytes-like
        The raw file content.

    Returns
    -------
    str
        64-character lowercase hex SHA-256 digest. Equal to :func:`hash_file` of a file
        holding the same bytes.
    """
    return hashlib.sha256(data).hexdigest()


def hash_file(path):
    """Content key of a file, read in blocks so large files need little memory.

    Parameters
    ----------
    path : str or os.PathLike
        File to hash.

    Returns
    -------
    str
        Same value as ``hash_bytes(open(path, "rb").read())``.

    Raises
    ------
    OSError
        If the file cannot be read.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(_CHUNK)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def hash_array_row(a):
    """Content key of an image given as an array.

    Parameters
    ----------
    a : array-like
        One image (e.g. ``X[i]`` of an ``(n, height, width, channels)`` array).

    Returns
    -------
    str
        64-character lowercase hex SHA-256 digest of the dtype, the shape and the
        C-ordered bytes. The memory layout does not matter (a Fortran-ordered copy or a
        strided view hash the same), but the dtype and shape do: ``uint8`` and ``int8``
        images with the same bytes are different images.

    Raises
    ------
    ValueError
        If the array has an object dtype (its bytes are pointers, not content).
    """
    a = np.asarray(a)
    if a.dtype.hasobject:
        raise ValueError("hash_array_row: cannot hash an array of dtype object.")
    h = hashlib.sha256()
    # Domain-separated, unambiguous header: an array never collides with raw file bytes
    # and (dtype, shape) pairs cannot be confused with each other.
    h.update(b"skanimal.ndarray\0")
    h.update(a.dtype.str.encode("ascii") + b"\0")
    h.update(json.dumps(list(a.shape)).encode("ascii") + b"\0")
    h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


# --- entry encoding -------------------------------------------------------------------
def _digest(fingerprint, key, head, payload):
    h = hashlib.blake2b(digest_size=_DIGEST_SIZE)
    h.update(fingerprint.encode("ascii") + b"\0" + key.encode("ascii") + b"\0")
    h.update(head)
    h.update(payload)
    return h.digest()


def _check_key(key):
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        raise ValueError(
            f"Invalid cache key {key!r}: expected a lowercase hex digest such as "
            "returned by hash_bytes, hash_file or hash_array_row."
        )
    return key


def _as_features(features):
    arr = np.asarray(features)
    if arr.ndim != 1:
        raise ValueError(f"Cached features must be 1-D, got an array of shape {arr.shape}.")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"Cached features must be numeric, got dtype {arr.dtype}.")
    # Fixed little-endian float32 on disk so caches are portable between machines.
    return np.ascontiguousarray(arr, dtype="<f4")


class FeatureCache:
    """On-disk store of 1-D float32 feature vectors for one extraction configuration.

    Parameters
    ----------
    directory : str or os.PathLike
        Root cache directory (see :func:`resolve_cache_dir`). Created on first write.
    fingerprint : str
        Hex digest from :func:`make_fingerprint`. Entries of other fingerprints in the
        same directory are invisible to this instance.

    Notes
    -----
    Safe to share between threads, and between processes using the same directory.
    Operating-system errors never propagate: the first one disables the instance with a
    single :class:`~skanimal.exceptions.CacheWarning`, after which :meth:`get` returns
    ``None`` and :meth:`put` does nothing. Instances can be pickled.

    Examples
    --------
    >>> fp = make_fingerprint(backbone="vgg16", image_size=(224, 224))
    >>> store = FeatureCache(tmp_dir, fp)  # doctest: +SKIP
    >>> key = hash_bytes(b"...jpeg bytes...")
    >>> store.put(key, np.zeros(512, dtype=np.float32))  # doctest: +SKIP
    >>> store.get(key).shape  # doctest: +SKIP
    (512,)
    """

    def __init__(self, directory, fingerprint):
        if not isinstance(fingerprint, str) or not _FINGERPRINT_RE.fullmatch(fingerprint):
            raise ValueError(
                f"Invalid fingerprint {fingerprint!r}: expected a lowercase hex digest "
                "from make_fingerprint."
            )
        self.directory = Path(os.fspath(directory)).expanduser()
        self.fingerprint = fingerprint
        self._root = self.directory / fingerprint[:_FP_DIR_LEN]
        self._lock = threading.Lock()
        self._disabled_reason = None
        self._made_dirs = set()  # shard directories known to exist (saves a syscall)

    # Locks cannot be pickled; an estimator holding a cache must still be picklable.
    def __getstate__(self):
        return {"directory": self.directory, "fingerprint": self.fingerprint}

    def __setstate__(self, state):
        self.__init__(state["directory"], state["fingerprint"])

    def __repr__(self):
        state = "" if self.enabled else ", disabled"
        return (
            f"FeatureCache({str(self.directory)!r}, "
            f"fingerprint={self.fingerprint[:_FP_DIR_LEN]!r}...{state})"
        )

    @property
    def enabled(self):
        """Whether the cache is in use.

        Returns
        -------
        bool
            ``False`` once an operating-system error has disabled this instance.
        """
        return self._disabled_reason is None

    def entry_path(self, key):
        """Path of the file that holds (or would hold) ``key``.

        Parameters
        ----------
        key : str
            Content key.

        Returns
        -------
        pathlib.Path
            ``<directory>/<fingerprint[:16]>/<key[:2]>/<key>.skfeat``.

        Raises
        ------
        ValueError
            If ``key`` is not a hex digest.
        """
        _check_key(key)
        return self._root / key[:2] / (key + _SUFFIX)

    def _disable(self, exc):
        with self._lock:
            if self._disabled_reason is not None:
                return  # exactly one warning per instance
            reason = f"{type(exc).__name__}: {exc}"
            self._disabled_reason = reason
        warnings.warn(
            f"skanimal feature cache disabled for this run: cannot use directory "
            f"{str(self.directory)!r} ({reason}). Features will be computed without "
            f"the cache; set cache=False or {ENV_VAR} to choose another behaviour.",
            CacheWarning,
            stacklevel=3,
        )

    def get_feature_shape(self):
        """Shape of one image's features in this configuration, if a run recorded it.

        Returns
        -------
        tuple of int or None
        """
        if not self.enabled:
            return None
        try:
            record = json.loads((self._root / _SHAPE_FILE).read_text("utf-8"))
            if record["fingerprint"] != self.fingerprint:
                return None
            return tuple(int(d) for d in record["feature_shape"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # missing or damaged: the caller builds the backbone instead

    def put_feature_shape(self, shape):
        """Record the shape of one image's features in this configuration (atomically).

        Parameters
        ----------
        shape : tuple of int
        """
        if not self.enabled:
            return
        record = {"fingerprint": self.fingerprint, "feature_shape": [int(d) for d in shape]}
        self._store(self._root / _SHAPE_FILE, json.dumps(record).encode("ascii"))

    # --- reading ----------------------------------------------------------------------
    def get(self, key):
        """Cached features for ``key``.

        Parameters
        ----------
        key : str
            Content key (from :func:`hash_bytes`, :func:`hash_file` or
            :func:`hash_array_row`).

        Returns
        -------
        numpy.ndarray or None
            A new, writable 1-D ``float32`` array bit-identical to what was stored, or
            ``None`` on a miss, an invalid entry, or a disabled cache.

        Raises
        ------
        ValueError
            If ``key`` is not a hex digest.
        """
        path = self.entry_path(key)
        if not self.enabled:
            return None
        try:
            return self._read(path, key)
        except (FileNotFoundError, IsADirectoryError):
            return None  # plain miss
        except OSError as exc:
            # Permission denied, path component is a file, I/O error...: the directory
            # is unusable, stop trying.
            self._disable(exc)
            return None

    def _read(self, path, key):
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            header = f.read(_HEADER_SIZE)
            valid = len(header) == _HEADER_SIZE
            if valid:
                head = header[: _HEAD.size]
                magic, version, dtype_code, _, _, count, nbytes = _HEAD.unpack(head)
                valid = (
                    magic == _MAGIC
                    and version == _ENTRY_VERSION
                    and dtype_code == _DTYPE_F4LE
                    and nbytes == count * 4
                    # Compare with the real size before reading, so a corrupted length
                    # field can never make us allocate a huge buffer.
                    and size == _HEADER_SIZE + nbytes
                )
            if valid:
                payload = f.read(nbytes)
                valid = len(payload) == nbytes and _digest(
                    self.fingerprint, key, head, payload
                ) == header[_HEAD.size :]
        if not valid:
            self._discard(path)
            return None
        # astype copies: the result is native-endian, writable and owns its memory.
        return np.frombuffer(payload, dtype="<f4").astype(np.float32)

    @staticmethod
    def _discard(path):
        # Best effort. If a concurrent writer has just replaced the bad file with a good
        # one we may delete the good one: that costs one recomputation, never a wrong read.
        try:
            os.unlink(path)
        except OSError:
            pass

    def get_many(self, keys):
        """Cached features for several keys.

        Parameters
        ----------
        keys : iterable of str
            Content keys.

        Returns
        -------
        list of (numpy.ndarray or None)
            One item per key, in order; see :meth:`get`.
        """
        return [self.get(key) for key in keys]

    # --- writing ----------------------------------------------------------------------
    def put(self, key, features):
        """Store features for ``key`` (atomically replacing any previous entry).

        Parameters
        ----------
        key : str
            Content key.
        features : array-like of shape (n_features,)
            Feature vector; stored as float32.

        Raises
        ------
        ValueError
            If ``key`` is not a hex digest or ``features`` is not a 1-D numeric array.
            Operating-system errors are never raised (see the class notes).
        """
        path = self.entry_path(key)
        arr = _as_features(features)
        if not self.enabled:
            return
        payload = memoryview(arr).cast("B")
        head = _HEAD.pack(_MAGIC, _ENTRY_VERSION, _DTYPE_F4LE, 0, 0, arr.size, payload.nbytes)
        self._store(path, head + _digest(self.fingerprint, key, head, payload), payload)

    def _store(self, path, *chunks):
        """Write ``chunks`` to ``path`` atomically; an OS error disables the instance."""
        # A concurrent clear_cache() may delete our directory or temp file between two
        # steps: retry a couple of times before calling the directory broken.
        for attempt in range(3):
            try:
                self._write(path, chunks)
                return
            except FileNotFoundError as exc:
                self._made_dirs.discard(path.parent)
                if attempt == 2:
                    self._disable(exc)
            except OSError as exc:
                self._disable(exc)
                return

    def _write(self, path, chunks):
        parent = path.parent
        if parent not in self._made_dirs:
            os.makedirs(parent, exist_ok=True)
            self._made_dirs.add(parent)
        # On Windows os.replace fails while another process has the target open (a
        # concurrent reader). What this instance writes is determined by the path (entries
        # are content-addressed), so after a few tries it is fine to give up: an
        # equivalent file is already there.
        for delay in (0.005, 0.02, 0.05, 0.1, None):
            try:
                # No directory fsync: losing a recent entry in a power cut costs only a
                # recomputation, and syncing every entry would slow extraction down.
                with atomic_write(path, "wb", make_parents=False, sync_dir=False) as f:
                    for chunk in chunks:
                        f.write(chunk)
                return
            except PermissionError:
                if sys.platform != "win32" or not path.exists():
                    raise
                if delay is not None:
                    time.sleep(delay)

    def put_many(self, mapping):
        """Store several entries.

        Parameters
        ----------
        mapping : mapping or iterable of (key, features) pairs
            Entries to store; see :meth:`put`.
        """
        items = mapping.items() if isinstance(mapping, Mapping) else mapping
        for key, features in items:
            self.put(key, features)  # validates its arguments even when disabled


# --- maintenance ----------------------------------------------------------------------
def _maintenance_dir(directory):
    if directory is None:
        # Inspect/clear the location a default estimator would use; if the environment
        # disables caching, fall back to the per-user default so old entries can still be
        # found and removed.
        directory = resolve_cache_dir(True) or _default_cache_dir()
    return Path(os.fspath(directory)).expanduser()


def _scandir(path):
    try:
        with os.scandir(path) as it:
            return list(it)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _is_dir(entry):
    try:
        # Never follow symlinks: a link could point into user data.
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _is_file(entry):
    try:
        return entry.is_file(follow_symlinks=False)
    except OSError:
        return False


def _walk(directory):
    """Yield ``(fp_dir, shard_dir, kind, dir_entry)`` for recognised cache files.

    ``kind`` is ``"entry"``, ``"shape"`` or ``"tmp"`` (a killed writer's temporary file,
    in a shard directory or, for the shape record, in the configuration directory). Only
    files whose whole path looks like the cache layout are yielded; anything else in the
    directory is the user's business.
    """
    for fp_entry in _scandir(directory):
        if not (_FP_DIR_RE.fullmatch(fp_entry.name) and _is_dir(fp_entry)):
            continue
        for shard_entry in _scandir(fp_entry.path):
            if shard_entry.name == _SHAPE_FILE:
                if _is_file(shard_entry):
                    yield fp_entry.path, fp_entry.path, "shape", shard_entry
                continue
            if shard_entry.name.startswith(TMP_PREFIX):
                if _is_file(shard_entry):
                    yield fp_entry.path, fp_entry.path, "tmp", shard_entry
                continue
            if not (_SHARD_RE.fullmatch(shard_entry.name) and _is_dir(shard_entry)):
                continue
            for file_entry in _scandir(shard_entry.path):
                name = file_entry.name
                if not _is_file(file_entry):
                    continue
                m = _ENTRY_RE.fullmatch(name)
                if m and m.group(1)[:2] == shard_entry.name:
                    yield fp_entry.path, shard_entry.path, "entry", file_entry
                elif name.startswith(TMP_PREFIX):
                    yield fp_entry.path, shard_entry.path, "tmp", file_entry


def cache_info(directory=None):
    """Summarise a feature cache directory.

    Parameters
    ----------
    directory : str, os.PathLike or None
        Cache directory; ``None`` means the default one (``resolve_cache_dir(True)``,
        or the per-user default location when ``$SKANIMAL_CACHE_DIR`` disables caching).

    Returns
    -------
    dict
        ``directory`` (str), ``entries`` (int, number of cached feature vectors),
        ``bytes`` (int, their total size on disk), ``fingerprints`` (int, number of
        extraction configurations with at least one entry), ``temp_files`` and
        ``temp_bytes`` (int, leftovers of interrupted writers), ``compiled_files`` and
        ``compiled_bytes`` (int, OpenVINO's compiled networks, see
        :func:`compiled_cache_dir`). A missing directory reports zeros.
    """
    path = _maintenance_dir(directory)
    info = {
        "directory": str(path),
        "entries": 0,
        "bytes": 0,
        "fingerprints": 0,
        "temp_files": 0,
        "temp_bytes": 0,
        "compiled_files": 0,
        "compiled_bytes": 0,
    }
    fingerprints = set()
    for fp_dir, _, kind, entry in _walk(path):
        if kind == "shape":
            continue
        try:
            size = entry.stat(follow_symlinks=False).st_size
        except OSError:
            continue  # removed concurrently
        if kind == "entry":
            info["entries"] += 1
            info["bytes"] += size
            fingerprints.add(fp_dir)
        else:
            info["temp_files"] += 1
            info["temp_bytes"] += size
    info["fingerprints"] = len(fingerprints)
    for entry in _compiled_files(path):
        try:
            info["compiled_bytes"] += entry.stat(follow_symlinks=False).st_size
        except OSError:
            continue
        info["compiled_files"] += 1
    return info


def clear_cache(directory=None):
    """Delete every cached feature vector (and leftover temporary files).

    Only files laid out like cache entries (``<16 hex>/<2 hex>/<hex key>.skfeat``), the
    configurations' ``<16 hex>/feature_shape.json`` records and temporary files left by
    killed writers (``.skanimal-tmp-*`` in those directories), and OpenVINO's compiled
    networks (``openvino/*.blob``, see :func:`compiled_cache_dir`) are deleted, and then only
    directories that became empty; other files in the directory, including files inside
    cache subdirectories, are left alone.

    Parameters
    ----------
    directory : str, os.PathLike or None
        Cache directory; ``None`` means the default one (see :func:`cache_info`).

    Returns
    -------
    int
        Number of entries removed (temporary files and compiled networks are not counted).

    Notes
    -----
    Safe to call while other processes use the cache: their in-flight writes are lost
    (a later run recomputes them) but they neither fail nor see corrupt data.
    """
    path = _maintenance_dir(directory)
    removed = 0
    dirs = set()
    for fp_dir, shard_dir, kind, entry in list(_walk(path)):
        try:
            os.unlink(entry.path)
        except FileNotFoundError:
            continue
        except OSError:
            continue  # e.g. permission denied: leave it, report what was removed
        dirs.add(shard_dir)
        dirs.add(fp_dir)
        removed += kind == "entry"
    for entry in _compiled_files(path):
        try:
            os.unlink(entry.path)
        except OSError:
            continue
        dirs.add(os.path.join(path, COMPILED_SUBDIR))
    # Deepest first; rmdir only ever removes empty directories, so user files survive.
    for d in sorted(dirs, key=len, reverse=True):
        try:
            os.rmdir(d)
        except OSError:
            pass
    return removed
