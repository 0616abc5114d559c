"""``skanimal review``: a local web page to check sorted photos, fix labels and retrain.

Needs the ``review`` extra (Flask and waitress): ``pip install "skanimal[review]"``.

>>> from skanimal.review import serve
>>> serve("sorted/", model="animals.joblib")                       # doctest: +SKIP

The page lists the photos of a class-per-folder set (as ``skanimal sort`` makes it) by class,
the ``_review`` folder first and the least confident photos first. A key or a click moves a
photo to another class folder through :func:`skanimal.moves.transfer` (journaled, crash-safe;
journals in ``DIR/.skanimal/journal/``), ``u`` undoes it through :func:`skanimal.moves.undo`,
and Retrain fits the model's head again on the corrected folders, saves it beside the old
model and sorts ``_review`` again.
"""

from __future__ import annotations

import importlib.util

from ..exceptions import SkanimalError

__all__ = ["EXTRA_MISSING", "require_extra", "serve", "start"]

EXTRA_MISSING = ("the review page needs Flask and waitress, which are not installed: "
                 "pip install \"skanimal[review]\"")


def require_extra():
    """Raise one clear :class:`~skanimal.SkanimalError` when the ``review`` extra is missing."""
    if any(importlib.util.find_spec(name) is None for name in ("flask", "waitress")):
        raise SkanimalError(EXTRA_MISSING)


def start(directory, **kwargs):
    """Prepare a review server without serving yet; see :func:`skanimal.review.server.start`."""
    require_extra()
    from .server import start as _start

    return _start(directory, **kwargs)


def serve(directory, **kwargs):
    """Run the review page until interrupted; see :func:`skanimal.review.server.serve`."""
    require_extra()
    from .server import serve as _serve

    return _serve(directory, **kwargs)
