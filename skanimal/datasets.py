"""Class-per-folder image data sets: finding image files, loading, splitting, and a
generated demo set.

A data set is a :class:`sklearn.utils.Bunch` with ``paths`` (image files), ``target``
(class name of each) and ``target_names`` (sorted class names), the shape every skanimal
estimator, split helper and CLI command expects.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

# scikit-learn is imported where a set is built or split, not here: collecting the files a
# command predicts must not cost its second of imports (skanimal.inference).
from .exceptions import ImageFolderError, LabelsFileError

#: Sub-folders of a class-per-folder set that are never classes: the photos thrown away on
#: the review page (``skanimal.folders.TRASH_FOLDER``, which this layer cannot import).
NOT_CLASS_FOLDERS = frozenset({"_trash"})

__all__ = ["IMAGE_EXTENSIONS", "ON_ERROR", "check_on_error", "find_images", "collect_images",
           "load_image_folder", "load_image_csv", "PATH_COLUMNS", "LABEL_COLUMNS",
           "train_val_test_split", "split_what_fits", "make_shapes"]

#: Extensions recognised as images, compared case-insensitively.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


#: What to do with an image that cannot be read, everywhere in skanimal: stop (``"fail"``,
#: with one error naming the unreadable images) or go on without it (``"skip"``).
ON_ERROR = ("fail", "skip")


def check_on_error(on_error):
    """``on_error`` checked against :data:`ON_ERROR`.

    Parameters
    ----------
    on_error : {"fail", "skip"}
        ``"raise"``, the former name of ``"fail"``, still works for one release, with a
        :class:`FutureWarning` (as scikit-learn deprecates a value).

    Returns
    -------
    str
        ``"fail"`` or ``"skip"``.

    Raises
    ------
    ValueError
        For any other value.
    """
    if isinstance(on_error, str) and on_error == "raise":
        warnings.warn("on_error='raise' is deprecated and will be removed in the next "
                      "release: use on_error='fail'.", FutureWarning, stacklevel=3)
        return "fail"
    if not isinstance(on_error, str) or on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    return on_error


def _is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()


def find_images(folder):
    """The image files below a folder, recursively, in a stable order.

    Image files are those with an extension of :data:`IMAGE_EXTENSIONS` (any case); hidden
    files and anything in a hidden folder are left out.

    Parameters
    ----------
    folder : path-like

    Returns
    -------
    list of str
        Sorted by their path relative to ``folder``; empty when there is none (or no such
        folder).
    """
    folder = Path(folder)
    files = sorted(
        (p for p in folder.rglob("*") if _is_image_file(p)
         and not any(part.startswith(".") for part in p.relative_to(folder).parts)),
        key=lambda p: p.relative_to(folder).as_posix(),
    )
    return [os.fspath(p) for p in files]


def collect_images(inputs, *, exclude=None):
    """Image files from files and folders named by a user: the one collector of every
    command that scores files (``predict``, ``sort``, ``suggest``).

    Parameters
    ----------
    inputs : path-like or sequence of path-like
        Files, used as given whatever their extension, and folders, searched by
        :func:`find_images` (hidden files and folders left out).
    exclude : path-like, optional
        A folder left out of the search of any input folder it lies in (an output folder
        inside a source, as ``skanimal sort`` has). An input inside ``exclude`` is searched
        as any other.

    Returns
    -------
    list of str
        Paths as the user gave them (a relative input gives relative paths), in the order
        of ``inputs``; a folder's files in :func:`find_images`' order.

    Raises
    ------
    ImageFolderError
        When an input does not exist or a folder holds no image file (outside
        ``exclude``): an empty folder is a mistake worth one line, not an empty result.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    excluded = None if exclude is None else os.path.abspath(os.fspath(exclude)) + os.sep
    paths = []
    for item in inputs:
        if os.path.isdir(item):
            found = find_images(item)
            if excluded is not None and excluded.startswith(os.path.abspath(item) + os.sep):
                found = [p for p in found if not os.path.abspath(p).startswith(excluded)]
            if not found:
                raise ImageFolderError(f"no image files in folder {os.fspath(item)!r} "
                                       f"(extensions: {', '.join(sorted(IMAGE_EXTENSIONS))})")
            paths.extend(found)
        elif os.path.exists(item):
            paths.append(os.fspath(item))
        else:
            raise ImageFolderError(f"{os.fspath(item)!r} does not exist")
    return paths


def load_image_folder(root, *, on_error="fail"):
    """Load a class-per-folder image data set.

    ``root/<class name>/<image file>``: every sub-folder of ``root`` is a class and every file
    with an image extension (jpg, jpeg, png, bmp, gif, webp, tif, tiff — any case) below it,
    recursively, is one of its examples. Order is deterministic: classes sorted, files sorted.
    Hidden folders and ``_trash`` (photos thrown away on the review page) are not classes.

    Parameters
    ----------
    root : path-like
        Directory holding one sub-folder per class.
    on_error : {"fail", "skip"}, default="fail"
        What to do with files that cannot be decoded as images: ``"fail"`` leaves them in
        (the transformer raises when it meets them); ``"skip"`` opens every file now, drops
        the unreadable ones and warns once with their list. ``"raise"`` is a deprecated
        alias of ``"fail"``.

    Returns
    -------
    data : Bunch
        ``paths`` (ndarray of str), ``target`` (ndarray of class names), ``target_names``
        (list of str) and ``root`` (str).

    Raises
    ------
    ImageFolderError
        When ``root`` is missing or not a directory, has no class sub-folders, or holds no
        image at all.

    Warns
    -----
    UserWarning
        Naming the class sub-folders that hold no image (their classes are left out).
    """
    from sklearn.utils import Bunch

    on_error = check_on_error(on_error)
    root = Path(root).expanduser()
    if not root.exists():
        raise ImageFolderError(f"Image folder {str(root)!r} does not exist.")
    if not root.is_dir():
        raise ImageFolderError(f"Image folder {str(root)!r} is not a directory.")
    class_dirs = sorted(
        (d for d in root.iterdir()
         if d.is_dir() and not d.name.startswith(".") and d.name not in NOT_CLASS_FOLDERS),
        key=lambda d: d.name,
    )
    if not class_dirs:
        raise ImageFolderError(
            f"Image folder {str(root)!r} has no class sub-folders; expected "
            f"{str(root)}/<class name>/<image files>."
        )
    paths, target, empty = [], [], []
    for class_dir in class_dirs:
        files = find_images(class_dir)
        paths.extend(files)
        target.extend([class_dir.name] * len(files))
        if not files:
            empty.append(class_dir.name)
    if empty and paths:
        # Warn rather than fail: a class still being collected is common, but a classifier
        # that silently cannot predict a class is worse.
        warnings.warn(
            f"class folder(s) {empty} in {str(root)!r} hold no images; the classes are left out",
            UserWarning, stacklevel=2,
        )
    if not paths:
        raise ImageFolderError(
            f"Image folder {str(root)!r} holds no images (extensions: "
            f"{', '.join(sorted(IMAGE_EXTENSIONS))}) in its sub-folders "
            f"{[d.name for d in class_dirs]}."
        )
    paths = np.asarray(paths, dtype=object)
    target = np.asarray(target, dtype=object)
    if on_error == "skip":
        readable = np.array([_is_readable_image(p) for p in paths], dtype=bool)
        if not readable.all():
            skipped = paths[~readable].tolist()
            warnings.warn(
                f"Skipped {len(skipped)} unreadable image file(s): {skipped}", UserWarning,
                stacklevel=2,
            )
            paths, target = paths[readable], target[readable]
    target_names = sorted(set(target.tolist()))
    return Bunch(paths=paths, target=target, target_names=target_names, root=os.fspath(root))


#: Columns naming a labels CSV file's photo, the first one present used. ``destination``
#: comes before ``source`` so that a sort's own predictions.csv names each photo where it
#: lives now, not where it was found.
PATH_COLUMNS = ("path", "file", "filename", "destination", "source")

#: Columns naming a labels CSV file's class, the first one present used: a sort's own
#: predictions.csv has no ``label`` or ``class`` column, and its ``label_1`` (the model's
#: most probable class) is used, on its ``"sorted"`` rows only.
LABEL_COLUMNS = ("label", "class", "label_1")

#: Largest labels CSV file read: millions of rows.
MAX_LABELS_BYTES = 1024 * 1024 * 1024

#: Bad rows named one per line in a ``LabelsFileError``, the rest counted.
_PROBLEMS_SHOWN = 20


def _pick_column(fieldnames, choices):
    by_name = {name.strip().lower(): name for name in fieldnames if name}
    for choice in choices:
        if choice in by_name:
            return by_name[choice]
    return None


def _problem_lines(problems):
    lines = [f"line {line}: {what}" for line, what in problems[:_PROBLEMS_SHOWN]]
    if len(problems) > _PROBLEMS_SHOWN:
        lines.append(f"... and {len(problems) - _PROBLEMS_SHOWN} more")
    return lines


def load_image_csv(path, *, root=None, on_error="fail"):
    """Load an image data set listed in a CSV file of photos and their classes.

    The file has a header; the photo's column is the first of ``PATH_COLUMNS``
    present (``path``, ``file``, ``filename``, then ``destination``, ``source``) and the
    class's the first of ``LABEL_COLUMNS`` (``label``, ``class``, then ``label_1``),
    names compared case-insensitively; other columns are ignored. Kaggle-style
    ``file,label`` files work as they are, and so does the ``predictions.csv`` that
    ``skanimal sort`` writes: its photos are read where they are now (``destination``),
    labelled with the model's class (``label_1``), and only its ``"sorted"`` rows are used
    (the ``_review`` photos' guesses were not confident, the unreadable ones have none).

    Parameters
    ----------
    path : path-like
        The CSV file (UTF-8; read size-capped, as every file skanimal did not write).
    root : path-like, optional
        Folder that relative photo paths are relative to; default: the CSV file's folder.
        Absolute paths are used as they are.
    on_error : {"fail", "skip"}, default="fail"
        Bad rows — a photo that does not exist, an empty path or label, one photo given two
        different labels — are all named in one ``LabelsFileError`` (``"fail"``), or
        left out with one warning naming them (``"skip"``, which also drops unreadable
        images, as :func:`load_image_folder` does). A photo listed twice with the same
        label is used once.

    Returns
    -------
    data : Bunch
        What :func:`load_image_folder` returns: ``paths`` (ndarray of str, in file order),
        ``target`` (ndarray of class names), ``target_names`` (sorted class names) and
        ``root`` (str, the folder relative paths were resolved against).

    Raises
    ------
    LabelsFileError
        Naming the line of every bad row (with ``on_error="fail"``), or when no row is
        left.
    ImageFolderError
        When the file or ``root`` does not exist, or the file lacks a photo or a label
        column.
    DamagedFileError
        When the file is not a readable CSV file or is too large.
    """
    from sklearn.utils import Bunch

    from .untrusted import read_csv

    on_error = check_on_error(on_error)
    path = Path(path).expanduser()
    if not path.is_file():
        raise ImageFolderError(f"labels file {os.fspath(path)!r} does not exist"
                               + (" (it is a folder)" if path.is_dir() else ""))
    root = path.parent if root is None else Path(root).expanduser()
    if not root.is_dir():
        raise ImageFolderError(f"photo folder {os.fspath(root)!r} does not exist")
    rows = read_csv(path, MAX_LABELS_BYTES, what="labels file")
    if not rows:
        raise LabelsFileError(f"labels file {os.fspath(path)!r} lists no photo",
                              os.fspath(path))
    fieldnames = list(rows[0])
    path_column = _pick_column(fieldnames, PATH_COLUMNS)
    label_column = _pick_column(fieldnames, LABEL_COLUMNS)
    if path_column is None or label_column is None:
        wanted = [("photo column", PATH_COLUMNS)] * (path_column is None) + \
                 [("label column", LABEL_COLUMNS)] * (label_column is None)
        raise ImageFolderError(
            f"labels file {os.fspath(path)!r} has no "
            + " and no ".join(f"{what} ({', '.join(names)})" for what, names in wanted)
            + f"; its columns are {fieldnames}")
    # A sort's predictions.csv labels with the model's guess (label_1; label in the files
    # of earlier versions, beside confidence): only its confidently sorted rows are labels.
    headers = {name.strip().lower() for name in fieldnames if name}
    guessed = label_column.strip().lower() == "label_1" or \
        {"destination", "confidence"} <= headers
    status_column = _pick_column(fieldnames, ("status",)) if guessed else None

    problems, first_line, labels, left_out = [], {}, {}, 0
    for number, row in enumerate(rows):
        line = number + 2  # the header is line 1
        if status_column is not None and row[status_column].strip() != "sorted":
            left_out += 1
            continue
        given, label = row[path_column].strip(), row[label_column].strip()
        if not given:
            problems.append((line, "no photo path"))
            continue
        photo = os.path.normpath(os.path.join(root, os.path.expanduser(given)))
        if not label:
            problems.append((line, f"{given!r} has an empty label"))
        elif photo in labels and labels[photo] != label:
            first = first_line[photo]
            problems.append((line, f"{given!r} is labelled {label!r} here but "
                                   f"{labels[photo]!r} on line {first[0]}"))
            if first[1]:  # in two classes: neither is trusted, the first row is bad too
                problems.append((first[0], f"{given!r} is labelled {labels[photo]!r} here "
                                           f"but {label!r} on line {line}"))
                first_line[photo] = (first[0], False)
        elif not os.path.isfile(photo):
            problems.append((line, f"{given!r} does not exist"
                                   + (" (it is a folder)" if os.path.isdir(photo) else "")))
        elif photo not in labels:
            labels[photo], first_line[photo] = label, (line, True)
    problems.sort()
    if problems and on_error == "fail":
        raise LabelsFileError(
            f"labels file {os.fspath(path)!r} has {len(problems)} bad row(s): "
            + "; ".join(_problem_lines(problems)), os.fspath(path), problems)
    if problems:
        warnings.warn(f"left out {len(problems)} bad row(s) of {os.fspath(path)!r}: "
                      + "; ".join(_problem_lines(problems)), UserWarning, stacklevel=2)
    if left_out:
        warnings.warn(f"left out {left_out} row(s) of {os.fspath(path)!r} whose status is "
                      "not 'sorted' (photos in review or unreadable: their class is an "
                      "unconfident guess, or none)", UserWarning, stacklevel=2)
    kept = [(photo, label) for photo, label in labels.items() if first_line[photo][1]]
    if not kept:
        raise LabelsFileError(f"labels file {os.fspath(path)!r} lists no usable photo",
                              os.fspath(path), problems)
    paths = np.asarray([photo for photo, _ in kept], dtype=object)
    target = np.asarray([label for _, label in kept], dtype=object)
    if on_error == "skip":
        readable = np.array([_is_readable_image(p) for p in paths], dtype=bool)
        if not readable.all():
            warnings.warn(f"Skipped {int((~readable).sum())} unreadable image file(s): "
                          f"{paths[~readable].tolist()}", UserWarning, stacklevel=2)
            paths, target = paths[readable], target[readable]
    return Bunch(paths=paths, target=target, target_names=sorted(set(target.tolist())),
                 root=os.fspath(root))


def _is_readable_image(path) -> bool:
    from .exceptions import ImageLoadError
    from .images import decode_image, read_image_bytes

    try:
        decode_image(read_image_bytes(path, index=0), (8, 8), path=path, index=0)
    except ImageLoadError:
        return False
    return True


def train_val_test_split(data, *, val_size=0.1, test_size=0.1, random_state=0):
    """Split a data set into stratified train, validation and test parts in one call.

    Parameters
    ----------
    data : Bunch
        As returned by :func:`load_image_folder` (``paths`` and ``target``).
    val_size, test_size : float or int
        Fractions of the whole set (or absolute counts) for validation and test; either may
        be 0.
    random_state : int, RandomState or None, default=0

    Returns
    -------
    train, val, test : Bunch
        Each with ``paths``, ``target`` and the shared ``target_names``.
    """
    from sklearn.utils import Bunch, check_random_state

    paths = np.asarray(data.paths, dtype=object)
    target = np.asarray(data.target, dtype=object)
    n = len(paths)
    n_val = val_size if isinstance(val_size, (int, np.integer)) else int(round(val_size * n))
    n_test = test_size if isinstance(test_size, (int, np.integer)) else int(round(test_size * n))
    if n_val < 0 or n_test < 0 or n_val + n_test >= n:
        raise ValueError(
            f"val_size={val_size!r} and test_size={test_size!r} leave no training images "
            f"out of {n}."
        )
    # here: sklearn.model_selection imports SciPy's statistics, which commands that only
    # read image folders do not need
    from sklearn.model_selection import train_test_split

    rng = check_random_state(random_state)
    indices = np.arange(n)

    n_classes = len(set(target.tolist()))

    def split(idx, size, name):
        if size == 0:
            return idx, idx[:0]
        if size < n_classes or len(idx) - size < n_classes:
            # scikit-learn's stratified split needs one image of every class on both sides
            raise ValueError(
                f"{name}: a part of {size} of {len(idx)} images cannot be stratified over "
                f"{n_classes} classes (each side needs at least {n_classes} images); "
                "skanimal.datasets.split_what_fits leaves a part out or enlarges it where the "
                "set is too small.")
        return train_test_split(idx, test_size=size, stratify=target[idx],
                                random_state=rng.randint(2**31 - 1))

    rest, test = split(indices, n_test, "test_size")
    train, val = split(rest, n_val, "val_size")
    names = list(getattr(data, "target_names", sorted(set(target.tolist()))))

    def part(idx):
        idx = np.sort(idx)
        return Bunch(paths=paths[idx], target=target[idx], target_names=names)

    return part(train), part(val), part(test)


def split_what_fits(data, val_size, test_size, random_state=0, log=None):
    """Stratified train/validation/test parts, as asked where the set allows it (the split
    ``skanimal train`` makes, through :func:`train_val_test_split`).

    A non-empty part gets at least one image per class (stratification needs it) when every
    class keeps at least two training images; otherwise the validation part is left out,
    then the test part. Each change is said through ``log``.

    Parameters
    ----------
    data : Bunch
        As returned by :func:`load_image_folder`.
    val_size, test_size : float or int
        Asked fractions of the whole set (or counts); see :func:`train_val_test_split`.
    random_state : int, RandomState or None, default=0
    log : callable, optional
        Called with one line of text for each part that is left out or enlarged.

    Returns
    -------
    train, val, test : Bunch

    Raises
    ------
    ImageFolderError
        When the asked sizes leave no training images.
    """
    def say(message):
        if log is not None:
            log(message)

    _, counts = np.unique(np.asarray(data.target, dtype=str), return_counts=True)
    n, n_classes, smallest = len(data.target), len(counts), int(counts.min())

    def count(size):
        return size if isinstance(size, (int, np.integer)) else int(round(size * n))

    asked = {"validation": count(val_size), "test": count(test_size)}
    if asked["validation"] + asked["test"] >= n:  # what was asked, not the set's size, is wrong
        raise ImageFolderError(f"cannot split {n} images into train/validation/test parts: "
                               f"val_size={val_size!r} and test_size={test_size!r} leave no "
                               "training images")
    # a stratified part holds at least one image per class
    sizes = {name: max(size, n_classes) if size else 0 for name, size in asked.items()}
    for name in ("validation", "test"):
        # each part takes about its share of the smallest class, and at least one image
        taken = sum(max(1, round(size * smallest / n)) for size in sizes.values() if size)
        if smallest - taken >= 2:
            break
        if sizes[name]:
            sizes[name] = 0
            say(f"Left out the {name} part: the smallest class has only {smallest} "
                "images, and each class keeps at least 2 for training"
                + (" (so no scores: evaluate the model on other photos with "
                   "'skanimal evaluate')" if name == "test" else ""))
    for name, size in sizes.items():
        if size and size != asked[name]:
            say(f"The {name} part gets one image per class ({size} images, not "
                f"{asked[name]}), the fewest a stratified split allows")
    try:
        return train_val_test_split(data, val_size=sizes["validation"],
                                    test_size=sizes["test"], random_state=random_state)
    except ValueError as exc:
        raise ImageFolderError(f"cannot split {n} images into train/validation/test parts: "
                               f"{exc}") from exc


#: Classes of the generated demo set: a shape drawn in its own colour family.
SHAPE_CLASSES = ("circle", "square", "triangle", "cross")


def make_shapes(root, *, n_per_class=30, image_size=64, classes=SHAPE_CLASSES,
                file_format="jpg", random_state=0):
    """Write a small class-per-folder data set of coloured shapes, for demos and tests.

    Each image shows one shape (circle, square, triangle or cross) of a random size and
    position, in a colour drawn around the class's own hue, on a noisy background. The set
    is easy for any backbone, even with random weights, and needs no download.

    Parameters
    ----------
    root : path-like
        Directory to create (``root/<class>/<class>_<i>.<ext>``).
    n_per_class : int, default=30
    image_size : int, default=64
        Side of the square images, in pixels.
    classes : sequence of str, default=SHAPE_CLASSES
        Any subset of ``SHAPE_CLASSES``.
    file_format : {"jpg", "png"}, default="jpg"
    random_state : int or None, default=0

    Returns
    -------
    data : Bunch
        The written set, as :func:`load_image_folder` returns it.
    """
    from PIL import Image, ImageDraw
    from sklearn.utils import check_random_state

    from .fileio import atomic_write

    unknown = set(classes) - set(SHAPE_CLASSES)
    if unknown:
        raise ValueError(f"classes must be among {SHAPE_CLASSES}, got unknown {sorted(unknown)}.")
    rng = check_random_state(random_state)
    root = Path(root)
    pil_format = Image.registered_extensions().get(f".{file_format}".lower())
    if pil_format is None:
        raise ValueError(f"file_format must be an image extension Pillow writes, such as "
                         f"'jpg' or 'png', got {file_format!r}.")
    hues = {name: i / len(SHAPE_CLASSES) for i, name in enumerate(SHAPE_CLASSES)}
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            background = rng.randint(0, 60, size=(image_size, image_size, 3)).astype(np.uint8)
            image = Image.fromarray(background)
            draw = ImageDraw.Draw(image)
            hue = (hues[name] + rng.uniform(-0.05, 0.05)) % 1.0
            rgb = _hsv_to_rgb(hue, rng.uniform(0.7, 1), rng.uniform(0.8, 1))
            colour = tuple(int(c) for c in rgb)
            half = rng.uniform(0.25, 0.4) * image_size
            cx, cy = rng.uniform(half, image_size - half, size=2)
            box = [cx - half, cy - half, cx + half, cy + half]
            if name == "circle":
                draw.ellipse(box, fill=colour)
            elif name == "square":
                draw.rectangle(box, fill=colour)
            elif name == "triangle":
                draw.polygon([(cx, cy - half), (cx - half, cy + half), (cx + half, cy + half)],
                             fill=colour)
            else:
                bar = half / 3
                draw.rectangle([cx - half, cy - bar, cx + half, cy + bar], fill=colour)
                draw.rectangle([cx - bar, cy - half, cx + bar, cy + half], fill=colour)
            # Regenerable test data: no directory sync per file.
            with atomic_write(root / name / f"{name}_{i:03d}.{file_format}",
                              sync_dir=False) as handle:
                image.save(handle, format=pil_format)
    return load_image_folder(root)


def _hsv_to_rgb(h, s, v):
    import colorsys

    return np.array(colorsys.hsv_to_rgb(h, s, v)) * 255
