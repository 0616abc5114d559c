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


class ImageFolderError(SkanimalError, ValueError):
    """A class-per-folder data set is missing, empty or badly laid out."""


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
        (:func:`skanimal.backbones.offline_weights_message`).
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


class IncompatibleModelError(SkanimalError, ValueError):
    """A saved model cannot be used safely with this version of skanimal."""


class CacheWarning(UserWarning):
    """The feature cache could not be used; extraction continues without it."""


class SmallImageWarning(UserWarning):
    """Images far smaller than the network's input: upscaled, their features say little."""


class DamagedFileError(SkanimalError, ValueError):
    """A file skanimal reads back (a journal, a run record, a CSV file) is damaged, too large,
    or not what it claims to be; the message names it and says why."""
