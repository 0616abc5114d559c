"""The one place that words errors for the shell.

Library errors carry facts (which file, which parameter, why a download failed); this maps
each to one line naming the ``skanimal`` command's options instead of Python's parameters.
"""

from __future__ import annotations

from ..exceptions import (
    ExportFolderNotEmptyError,
    ImageLoadError,
    LaterMovesError,
    SkanimalError,
    UndoInterruptedError,
    UnreadableImagesError,
    WeightsMovedError,
    WeightsUnavailableError,
)

__all__ = ["DATA_ERRORS", "for_the_shell"]

#: Errors reported as one ``skanimal: error: ...`` line with exit status 1. ``OSError``
#: covers ``FileNotFoundError`` and ``PermissionError``; ``SkanimalError`` covers
#: ``ImageLoadError``, ``ImageFolderError``, ``WeightsUnavailableError`` and
#: ``IncompatibleModelError``.
DATA_ERRORS = (SkanimalError, OSError)

#: The option of every command that takes a weights file's new place.
WEIGHTS_OPTION = "--weights PATH"


def _worded(exc):
    if isinstance(exc, LaterMovesError):
        return exc.describe(f"skanimal sort --undo {exc.folder} --discard-later-moves")
    if isinstance(exc, ExportFolderNotEmptyError):
        return exc.describe("--force")
    if isinstance(exc, UndoInterruptedError):
        return exc.describe(f"skanimal sort --undo {exc.folder}")
    if isinstance(exc, UnreadableImagesError):
        return exc.describe("--on-error skip")
    if isinstance(exc, ImageLoadError):
        return exc.file_message()  # the file named on the command line, not its X[i]
    if isinstance(exc, WeightsMovedError):
        from ..weights import moved_weights_message

        return moved_weights_message(exc.path, exc.identity, exc.places,
                                     how_to_pass=WEIGHTS_OPTION)
    if isinstance(exc, WeightsUnavailableError) and exc.backbone and exc.download_error:
        from ..weights import offline_weights_message

        return offline_weights_message(exc.backbone, exc.download_error,
                                       pass_path=f"{WEIGHTS_OPTION} (that file)",
                                       random="--weights none")
    if isinstance(exc, OSError) and not isinstance(exc, SkanimalError) and exc.strerror:
        return exc.strerror if exc.filename is None else f"{exc.filename}: {exc.strerror}"
    return str(exc) or type(exc).__name__


def for_the_shell(exc):
    """One line saying what went wrong, in the command line's words.

    Parameters
    ----------
    exc : Exception
        One of :data:`DATA_ERRORS`.

    Returns
    -------
    str
        Without the ``skanimal: error:`` prefix; no line breaks.
    """
    return " ".join(_worded(exc).split())
