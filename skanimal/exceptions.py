"""Exceptions and warnings raised by skanimal.

Every error skanimal raises on bad input derives from :class:`SkanimalError` and from the
built-in exception a Python user would expect (``ValueError`` or ``OSError``), so both
``except skanimal.SkanimalError`` and ``except ValueError`` work.
"""


class SkanimalError(Exception):
    """Base class of every exception raised by skanimal."""


class ImageLoadError(SkanimalError, ValueError):
    """An image could not be read, decoded or converted.

    The message names the file (or array row) and its position in ``X``.

    Parameters
    ----------
    message : str
        What went wrong.
    path : str or None
        The offending file, when the input was a path.
    index : int or None
        Position of the offending item in ``X``.
    """

    def __init__(self, message, *, path=None, index=None):
        super().__init__(message)
        self.path = path
        self.index = index

    def __reduce__(self):
        # Keyword-only arguments are lost by the default pickling, and errors raised in
        # joblib/Dask workers travel back to the caller pickled.
        return (_rebuild_image_load_error, (type(self), str(self), self.path, self.index))

    def file_message(self):
        """The message without the item's position in ``X`` (``X[16]``), for people who
        named files rather than built ``X``, e.g. on the command line.

        Returns
        -------
        str
        """
        message = str(self)
        if self.path is not None and self.index is not None:
            message = message.replace(f"X[{self.index}] ", "", 1)
        return message


def _rebuild_image_load_error(cls, message, path, index):
    return cls(message, path=path, index=index)


class UnreadableImagesError(ImageLoadError):
    """Some of the images a workflow was given cannot be read, and it was told to stop.

    Carries the facts; ``describe()`` words them, naming the way to go on without those
    images (the Python parameter by default, a command-line option for the ``skanimal``
    command).

    Parameters
    ----------
    files : list of str
        One message per unreadable image, naming its file.
    total : int
        How many images there were in all.
    named : int, default=20
        How many of ``files`` the message lists before it says how many more there are.
    """

    def __init__(self, files, total, *, named=20):
        self.files = list(files)
        self.total = int(total)
        self.named = int(named)
        super().__init__(self.describe())

    def __reduce__(self):
        return (_rebuild_unreadable, (type(self), self.files, self.total, self.named))

    def describe(self, how_to_skip="on_error='skip'"):
        """The message, naming ``how_to_skip`` as the way to go on without the images.

        Parameters
        ----------
        how_to_skip : str, default="on_error='skip'"
            E.g. ``"--on-error skip"`` on the command line.

        Returns
        -------
        str
            One line.
        """
        shown = "; ".join(self.files[:self.named])
        more = (f"; and {len(self.files) - self.named} more"
                if len(self.files) > self.named else "")
        return (f"{len(self.files)} of {self.total} images cannot be read ({how_to_skip} "
                f"goes on without them): {shown}{more}")


def _rebuild_unreadable(cls, files, total, named):
    return cls(files, total, named=named)


class ImageFolderError(SkanimalError, ValueError):
    """A class-per-folder data set is missing, empty or badly laid out."""


class LabelsFileError(ImageFolderError):
    """Rows of a labels CSV file (:func:`skanimal.datasets.load_image_csv`) that cannot be
    used: a missing file, an empty label, one photo given two labels.

    Attributes
    ----------
    path : str
        The CSV file.
    problems : list of (int, str)
        ``(line number, what is wrong)`` of every bad row, in file order.
    """

    def __init__(self, message, path=None, problems=()):
        super().__init__(message)
        self.path = path
        self.problems = list(problems)

    def __reduce__(self):
        return type(self), (str(self), self.path, self.problems)


class WeightsUnavailableError(SkanimalError, OSError):
    """Backbone weights could not be downloaded or read.

    Parameters
    ----------
    message : str
        What went wrong and what to do.
    backbone : str or None
        The backbone whose ImageNet weights could not be downloaded (``None`` otherwise).
    download_error : str or None
        Why the download failed, e.g. ``"[Errno -2] Name or service not known"``; with
        ``backbone``, lets a caller word the advice its own way
        (:func:`skanimal.weights.offline_weights_message`).
    """

    def __init__(self, message, *, backbone=None, download_error=None):
        super().__init__(message)
        self.backbone = backbone
        self.download_error = download_error

    def __reduce__(self):
        # Keyword-only arguments are lost by the default pickling (joblib/Dask workers).
        return (_rebuild_weights_error,
                (type(self), str(self), self.backbone, self.download_error))


def _rebuild_weights_error(cls, message, backbone, download_error):
    return cls(message, backbone=backbone, download_error=download_error)


class WeightsMovedError(WeightsUnavailableError):
    """A fitted model's weights file is gone, and no file with its content was found.

    Parameters
    ----------
    message : str
        What went wrong and what to do (in Python's words).
    path : str
        Where the weights file was when the model was fitted.
    identity : str
        ``"sha256:<digest>"`` of its content.
    places : list of str
        The folders searched for a file with that content.
    parameter : str, default="weights"
        The parameter that takes the file's new place; a caller words it its own way
        (:func:`skanimal.weights.moved_weights_message`).
    """

    def __init__(self, message, *, path, identity, places, parameter="weights"):
        super().__init__(message)
        self.path = path
        self.identity = identity
        self.places = list(places)
        self.parameter = parameter

    def __reduce__(self):
        return (_rebuild_moved_error, (type(self), str(self), self.path, self.identity,
                                       self.places, self.parameter))


def _rebuild_moved_error(cls, message, path, identity, places, parameter):
    return cls(message, path=path, identity=identity, places=places, parameter=parameter)


class IncompatibleModelError(SkanimalError, ValueError):
    """A saved model cannot be used safely with this version of skanimal."""


class CacheWarning(UserWarning):
    """The feature cache could not be used; extraction continues without it."""


class SmallImageWarning(UserWarning):
    """Images far smaller than the network's input: upscaled, their features say little."""


class DamagedFileError(SkanimalError, ValueError):
    """A file skanimal reads back (a journal, a run record, a CSV file) is damaged, too large,
    or not what it claims to be; the message names it and says why."""


class LaterMovesError(SkanimalError, ValueError):
    """Undoing a sort would also discard photo moves made after it (review-page corrections).

    Carries the facts; ``describe()`` words them, naming the way to go ahead.

    Parameters
    ----------
    folder : str
        The sorted folder.
    n_moves : int
        How many photo moves were made after the sort.
    """

    def __init__(self, folder, n_moves):
        self.folder = str(folder)
        self.n_moves = int(n_moves)
        super().__init__(self.describe())

    def __reduce__(self):
        return (type(self), (self.folder, self.n_moves))

    def describe(self, how_to_discard="undo_sort(folder, discard_later_moves=True)"):
        """The message, naming ``how_to_discard`` as the way to go ahead anyway."""
        return (f"{self.n_moves} photo move(s) in {self.folder!r} were made after the sort "
                "(on the review page); undoing the sort puts those photos back too, "
                "discarding the corrections. Undo them on the review page, or go ahead and "
                f"discard them ({how_to_discard}).")


class UndoInterruptedError(SkanimalError, ValueError):
    """An undo of a sorted folder was interrupted; it must finish before sorting into it.

    Parameters
    ----------
    folder : str
        The sorted folder.
    """

    def __init__(self, folder):
        self.folder = str(folder)
        super().__init__(self.describe())

    def __reduce__(self):
        return (type(self), (self.folder,))

    def describe(self, how_to_undo="undo_sort(folder)"):
        """The message, naming ``how_to_undo`` as the way to finish the undo."""
        return (f"an undo of {self.folder!r} was interrupted; run the undo again "
                f"({how_to_undo}) before sorting into it.")


class ExportError(SkanimalError, ValueError):
    """A model cannot be exported as asked: the folder, the format or its runtime."""


class ExportFolderNotEmptyError(ExportError):
    """The export folder holds files; ``describe()`` names the way to replace the export.

    Parameters
    ----------
    folder : str
    """

    def __init__(self, folder):
        self.folder = str(folder)
        super().__init__(self.describe())

    def __reduce__(self):
        return (type(self), (self.folder,))

    def describe(self, how_to_force="force=True"):
        """The message, naming ``how_to_force`` as the way to replace the export."""
        return (f"{self.folder!r} is not empty; choose a new or empty folder, or replace the "
                f"export in it ({how_to_force})")
