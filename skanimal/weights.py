"""Backbone weights files: identity, lookup, relocation and advice.

A weights file is known by its content, never by its name or place: its identity is the
SHA-256 of its bytes (:func:`weights_identity`, recorded by a fitted
:class:`~skanimal.BottleneckFeatures`), a moved or renamed file is found again by that
digest (:func:`find_weights_file`, :func:`resolve_moved_weights`, :func:`relocated_weights`),
and Keras is handed the file under a name whose suffix matches the layout the file really
holds (:func:`weights_layout`, :func:`keras_loadable`), since Keras picks its loader by
suffix. When weights cannot be had, the messages here say what to do
(:func:`offline_weights_message`, :func:`mismatch_message`, :func:`moved_weights_message`),
with the way to pass a file given by the caller: Python's parameter by default, the
``skanimal`` command's option from the command line.

Building backbones is :mod:`skanimal.backbones`' job; this module reads its registry of
specs (what a weights file fits) only when it words advice.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import os
import shutil
import tempfile

import numpy as np

from .cache import hash_file
from .exceptions import WeightsMovedError, WeightsUnavailableError

__all__ = [
    "RANDOM_WEIGHTS_SEED", "weights_identity", "check_weights", "count_weights",
    "weights_layout", "keras_loadable", "backbone_for_weights_file", "mismatch_message",
    "keras_models_dir", "keras_cache_dirs", "find_weights_file", "resolve_moved_weights",
    "relocated_weights", "moved_weights_message", "offline_weights_message",
]

#: Seed of the deterministic initialisation used when ``weights=None``: features must be the
#: same in every process (cache, pickles, workers), which Keras' random init does not give.
RANDOM_WEIGHTS_SEED = 0


# ------------------------------------------------------------------------------ identity


@functools.cache
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    # size and mtime are part of the cache key so an edited file is hashed again.
    return hash_file(path)


def _sha256_of(path, stat):
    return _file_sha256(os.path.abspath(path), stat.st_size, stat.st_mtime_ns)


def weights_identity(weights) -> str:
    """A string that changes whenever the backbone's weights would.

    Parameters
    ----------
    weights : "imagenet", None or path-like
        The ``weights`` parameter.

    Returns
    -------
    str
        ``"imagenet"``, ``"random-<seed>"`` or ``"sha256:<digest of the file>"``.

    Raises
    ------
    ValueError
        If ``weights`` is none of these.
    WeightsUnavailableError
        If ``weights`` is a path to no readable file.
    """
    weights = check_weights(weights)
    if weights is None:
        return f"random-{RANDOM_WEIGHTS_SEED}"
    if weights == "imagenet":
        return "imagenet"
    try:
        stat = os.stat(weights)
    except OSError as exc:  # removed since check_weights looked
        raise WeightsUnavailableError(
            f"weights={weights!r} is neither 'imagenet', None, nor a readable weights file: "
            f"{exc}"
        ) from exc
    return "sha256:" + _sha256_of(weights, stat)


def _looks_like_imagenet(text):
    # "ImageNet", "image-net", "imagnet ": a name mistyped, not a path (no folder in it).
    if os.sep in text or (os.altsep and os.altsep in text):
        return False
    letters = "".join(c for c in text.lower() if c.isalnum())
    return difflib.SequenceMatcher(None, letters, "imagenet").ratio() >= 0.8


def check_weights(weights):
    """The ``weights`` parameter, checked: ``"imagenet"``, None, or an existing file's path.

    Parameters
    ----------
    weights : "imagenet", None or path-like

    Returns
    -------
    "imagenet", None or str

    Raises
    ------
    WeightsUnavailableError
        When a path names no file (asking "did you mean 'imagenet'?" for a near miss).
    ValueError
        For anything else.
    """
    if weights is None or (isinstance(weights, str) and weights == "imagenet"):
        return weights
    if isinstance(weights, (str, os.PathLike)):
        path = os.fspath(weights)
        if not os.path.isfile(path):
            if isinstance(weights, str) and _looks_like_imagenet(path):
                raise WeightsUnavailableError(
                    f"weights={path!r}: no such file; did you mean 'imagenet'?"
                )
            raise WeightsUnavailableError(
                f"weights={path!r}: no such file. Pass 'imagenet', None, or the path of a "
                "Keras weights file (.h5 or .weights.h5)."
            )
        return path
    raise ValueError(
        f"weights must be 'imagenet', None or a path to a weights file, got {weights!r}."
    )


# ------------------------------------------------------------------------------ content


@functools.lru_cache(maxsize=64)
def _read_layout(path: str, size: int, mtime_ns: int):
    # (number of stored values, layout), or (None, None) when the file is not HDF5.
    # size and mtime are part of the cache key so an edited file is read again.
    try:
        import h5py

        total = 0

        def add(_, item):
            nonlocal total
            if isinstance(item, h5py.Dataset):
                total += int(np.prod(item.shape))

        with h5py.File(path, "r") as file:
            file.visititems(add)
            if "layer_names" in file.attrs or "model_weights" in file:
                layout = "legacy"
            elif "layers" in file or "vars" in file:
                layout = "keras3"
            else:
                layout = None
        return total, layout
    except Exception:  # not HDF5 (a .keras zip, a JPEG...): nothing to tell from it
        return None, None


def _content_facts(path):
    try:
        stat = os.stat(path)
    except OSError:
        return None, None
    return _read_layout(os.path.abspath(path), stat.st_size, stat.st_mtime_ns)


def count_weights(path):
    """Number of values stored in an HDF5 weights file.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    int or None
        ``None`` when the file is not HDF5 (or cannot be read).
    """
    return _content_facts(os.fspath(path))[0]


def weights_layout(path):
    """Which Keras layout a weights file holds, read from its content (not its name).

    Parameters
    ----------
    path : path-like

    Returns
    -------
    {"keras3", "legacy"} or None
        ``"keras3"``: the HDF5 layout of Keras 3's ``save_weights`` (what Keras expects
        under a ``.weights.h5`` name); ``"legacy"``: Keras 2's HDF5 layout (a ``.h5``
        name); ``None``: neither (not HDF5, or another layout).
    """
    return _content_facts(os.fspath(path))[1]


#: The suffix Keras' ``load_weights`` needs to pick the loader of each layout.
_SUFFIXES = {"keras3": ".weights.h5", "legacy": ".h5"}


@contextlib.contextmanager
def keras_loadable(path):
    """``path`` under a name Keras loads with the right loader, for the time of a build.

    Keras chooses how to read a weights file by its suffix (``.weights.h5`` for its own
    layout, ``.h5`` for Keras 2's), so a file renamed by a user is refused although its
    content is right. This yields ``path`` itself when its name already fits its content,
    else a link (a copy where links are not allowed) under a fitting name in a temporary
    folder, removed afterwards.

    Parameters
    ----------
    path : str
        An existing weights file.

    Yields
    ------
    str
        A path to hand to Keras.
    """
    suffix = _SUFFIXES.get(weights_layout(path))
    name = os.path.basename(path)
    fits = suffix is None or (name.endswith(suffix) and not (
        suffix == ".h5" and name.endswith(".weights.h5")))
    if fits:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="skanimal-weights-") as folder:
        alias = os.path.join(folder, "weights" + suffix)
        try:
            os.symlink(os.path.abspath(path), alias)
        except OSError:  # e.g. Windows without the right to make links
            shutil.copyfile(path, alias)
        yield alias


# ------------------------------------------------------------------------------ advice


def backbone_for_weights_file(path):
    """The registered backbone a weights file seems to be for, read from the file alone.

    Compares the number of values the file holds with each backbone's
    ``include_top=False`` weights (``BackboneSpec.n_weights``); no model is built.

    Parameters
    ----------
    path : path-like
        A Keras weights file (Keras 3 or legacy layout, under any name).

    Returns
    -------
    str or None
        A name from :func:`skanimal.available_backbones`, or ``None`` when the file is not
        HDF5 or fits none of them.
    """
    from .backbones import BACKBONES  # the registry, read for advice only

    count = count_weights(path)
    for spec in BACKBONES.values():
        if count is not None and count == spec.n_weights:
            return spec.name
    return None


def mismatch_message(spec, path, keras_message=None):
    """One line saying that weights file ``path`` does not fit backbone ``spec``.

    Parameters
    ----------
    spec : skanimal.backbones.BackboneSpec
    path : str
    keras_message : str, optional
        Keras' own error, quoted (first line) when the file is not HDF5.

    Returns
    -------
    str
    """
    count = count_weights(path)
    if count is None:
        first_line = (keras_message or "").strip().splitlines()[0:1]
        detail = f": {first_line[0][:160]}" if first_line else ""
        return (f"weights file {path!r} is not a Keras weights file for backbone "
                f"{spec.name!r}{detail}")
    message = (f"weights file {path!r} does not fit backbone {spec.name!r} "
               f"(it holds {count:,} weights")
    if spec.n_weights:
        message += f"; {spec.name} without its top has {spec.n_weights:,}"
    message += ")"
    fits = backbone_for_weights_file(path)
    if fits is not None and fits != spec.name:
        message += f"; it seems to fit backbone {fits!r}"
    elif count == spec.n_weights and keras_message:
        first_line = keras_message.strip().splitlines()[0][:160]
        message = (f"weights file {path!r} holds as many weights as backbone {spec.name!r} "
                   f"needs, but Keras cannot load them: {first_line}")
    return message


def offline_weights_message(backbone, download_error, *,
                            pass_path="BottleneckFeatures(weights='/path/to/that_file.h5')",
                            random="weights=None"):
    """What to do when the ImageNet weights of ``backbone`` cannot be downloaded.

    Parameters
    ----------
    backbone : str
        A name from :func:`skanimal.available_backbones`.
    download_error : str
        Why the download failed.
    pass_path : str, optional
        How the caller passes a weights file (Python's parameter by default).
    random : str, optional
        How the caller asks for random weights.

    Returns
    -------
    str
        One line.
    """
    from .backbones import get_spec  # the registry, read for advice only

    spec = get_spec(backbone)
    models = (keras_cache_dirs() or [os.path.join("~", ".keras", "models")])[0]
    return (
        f"ImageNet weights for backbone {spec.name!r} could not be downloaded "
        f"({download_error}). To run offline, download the Keras 'notop' weights file once on "
        f"a machine with internet (e.g. {spec.constructor}(include_top=False, "
        f"weights='imagenet') caches it in ~/.keras/models/), copy it here and pass "
        f"{pass_path}, or put it in {models}/ under the same name; or use {random} for random "
        "(untrained) features."
    )


def moved_weights_message(path, identity, places, how_to_pass=(
        "skanimal.load(..., weights=PATH) or BottleneckFeatures.relocate_weights(PATH)")):
    """One line saying a fitted model's weights file is gone and how to point at it.

    Parameters
    ----------
    path : str
        Where the file was.
    identity : str
        ``"sha256:<digest>"`` of its content.
    places : list of str
        The folders searched.
    how_to_pass : str, optional
        How the caller passes the file's new place (Python's ways by default).

    Returns
    -------
    str
    """
    shown = ", ".join(repr(p) for p in places)
    return (f"weights file {path!r} no longer exists, and no file with its content "
            f"(sha256 {identity[7:19]}…) is in {shown}; pass its new place: {how_to_pass}")


# ------------------------------------------------------------------------------ lookup


def keras_models_dir():
    """The folder Keras downloads weights to: ``$KERAS_HOME/models``, by default
    ``~/.keras/models`` (``/tmp/.keras/models`` when the home folder is not writable).

    Returns
    -------
    str
        The folder, whether it exists yet or not.
    """
    home = os.environ.get("KERAS_HOME")
    if home is None:
        user_home = os.path.expanduser("~")
        home = os.path.join(user_home if os.access(user_home, os.W_OK) else "/tmp", ".keras")
    return os.path.join(os.path.expanduser(home), "models")


def keras_cache_dirs():
    """Existing folders where Keras keeps the weights it downloaded.

    ``$KERAS_HOME/models`` (default ``~/.keras/models``), and ``/tmp/.keras/models``, where
    Keras downloads to when its home folder is not writable.

    Returns
    -------
    list of str
    """
    candidates = [keras_models_dir(),
                  os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(),
                               ".keras", "models")]
    found = []
    for folder in candidates:
        if os.path.isdir(folder) and not any(os.path.samefile(folder, f) for f in found):
            found.append(folder)
    return found


def find_weights_file(identity, places=(), *, size=None, name=None, search_keras_cache=True):
    """Find a weights file by its content, e.g. after it was moved or renamed.

    Parameters
    ----------
    identity : str
        ``"sha256:<hex digest>"`` as given by :func:`weights_identity`, or the bare digest.
    places : iterable of path-like, default=()
        Files to check and folders to look into (not recursively), in this order.
    size : int, optional
        The file's size in bytes: files of another size are skipped without being read.
    name : str, optional
        The file's former base name: files of that name are checked first.
    search_keras_cache : bool, default=True
        Also look in Keras' own download folders (:func:`keras_cache_dirs`).

    Returns
    -------
    str or None
        The first file whose SHA-256 digest is ``identity``, or ``None``. Places that do not
        exist or cannot be read are skipped.
    """
    digest = str(identity).removeprefix("sha256:").lower()
    folders_and_files = [os.fspath(place) for place in places]
    if search_keras_cache:
        folders_and_files += keras_cache_dirs()
    candidates = []
    for place in folders_and_files:
        if os.path.isdir(place):
            try:
                entries = sorted(os.listdir(place))
            except OSError:
                continue
            candidates += [os.path.join(place, entry) for entry in entries]
        else:
            candidates.append(place)
    if name is not None:  # the likeliest first; sorted() is stable
        candidates = sorted(candidates, key=lambda path: os.path.basename(path) != name)
    for path in candidates:
        try:
            stat = os.stat(path)
        except OSError:
            continue
        if not os.path.isfile(path) or (size is not None and stat.st_size != size):
            continue
        try:
            if _sha256_of(path, stat) == digest:
                return path
        except OSError:
            continue
    return None


def resolve_moved_weights(weights, identity):
    """The file to use for a fitted model's ``weights`` parameter, which may have moved.

    Parameters
    ----------
    weights : str
        The path the model was fitted with; it no longer names a file.
    identity : str
        ``"sha256:<digest>"`` recorded at fit time.

    Returns
    -------
    str
        A file with that content beside the old path (under any name) or in Keras' cache
        folder.

    Raises
    ------
    WeightsMovedError
        When there is none; it names the places searched.
    """
    folder = os.path.dirname(os.path.abspath(weights))
    found = find_weights_file(identity, [folder], name=os.path.basename(weights))
    if found is None:
        places = [folder, *keras_cache_dirs()]
        raise WeightsMovedError(moved_weights_message(weights, identity, places),
                                path=weights, identity=identity, places=places)
    return found


def relocated_weights(identity, place):
    """The file at ``place`` (a file, or a folder holding it) whose content is ``identity``.

    Parameters
    ----------
    identity : str
        ``"sha256:<digest>"`` recorded at fit time.
    place : path-like

    Returns
    -------
    str

    Raises
    ------
    WeightsUnavailableError
        When ``place`` does not exist or holds no such file (e.g. the weights of another
        backbone or version).
    """
    place = os.fspath(place)
    if not os.path.exists(place):
        raise WeightsUnavailableError(f"weights={place!r}: no such file or folder")
    found = find_weights_file(identity, [place], search_keras_cache=False)
    if found is None:
        what = (f"is not the weights file this model was made with (its sha256 is "
                f"{weights_identity(place)[7:19]}…, the model's {identity[7:19]}…)"
                if os.path.isfile(place) else
                f"holds no file with the content of the model's weights (sha256 "
                f"{identity[7:19]}…)")
        raise WeightsUnavailableError(f"weights {place!r} {what}")
    return found
