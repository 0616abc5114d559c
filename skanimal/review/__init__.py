"""``skanimal review``: a local web page to check sorted photos, fix labels and retrain.

Needs the ``review`` extra (Flask and waitress): ``pip install "skanimal[review]"``.

>>> from skanimal.review import serve
>>> serve("sorted/", model="animals.joblib")                       # doctest: +SKIP

The page lists the photos of a class-per-folder set (as ``skanimal sort`` makes it) by class,
the ``_review`` folder first and the least confident photos first. A key or a click moves a
photo (or many selected ones, as one step) to another class folder through
:func:`skanimal.moves.transfer` (journaled, crash-safe; journals in
``DIR/.skanimal/journal/``), ``u`` undoes steps through :func:`skanimal.moves.undo` (the
history is rebuilt from those journals, so it outlives the session), and Retrain fits the
model's head again on the photos people labelled and confirmed (and, optionally, those the
model sorted), saves it beside the old model and sorts ``_review`` again.
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


def start(directory, *, model=None, host="127.0.0.1", port=0, weights=None, labelled=None):
    """Prepare the review of a folder and bind its server, without serving yet.

    Parameters
    ----------
    directory : path-like
        A folder made by ``skanimal sort`` or any class-per-folder set.
    model : path-like, optional
        A saved model (joblib, or ``.skanimal``): it scores the photos, and Retrain fits its
        head again. Without it, scores come from ``directory/predictions.csv``.
    host : str, default="127.0.0.1"
        Address to listen on. Any address but a loopback one warns (``UserWarning``).
    port : int, default=0
        TCP port; 0 picks a free one.
    weights : path-like, optional
        The model's backbone weights file at its new place, checked by content (see
        :func:`skanimal.workflow.load_model`).
    labelled : path-like, optional
        The class-per-folder set (or labels CSV) the model was trained from: Retrain
        trains on those photos again, besides the ones confirmed on the page.

    Returns
    -------
    ReviewServer
        ``.url`` (with the session key), ``.port``, ``.run()`` (serve until ``.close()`` is
        called from any thread, or Ctrl-C) and ``.close()``.

    Raises
    ------
    SkanimalError
        When the ``review`` extra is missing, the folder does not exist or the model file is
        not a skanimal model.
    """
    require_extra()
    from . import server

    return server.start(directory, model=model, host=host, port=port, weights=weights,
                        labelled=labelled)


def serve(directory, *, model=None, host="127.0.0.1", port=0, open_browser=True,
          weights=None, labelled=None):
    """Run the review page until interrupted: what ``skanimal review`` does.

    Prints the page's URL as the first line of standard output, then opens it in the web
    browser unless ``open_browser`` is false, then serves until Ctrl-C.

    Parameters
    ----------
    directory, model, host, port
        As for :func:`start`.
    open_browser : bool, default=True
        Open the page with Python's ``webbrowser`` module.
    weights, labelled : path-like, optional
        As for :func:`start`.

    Returns
    -------
    int
        0.
    """
    require_extra()
    from . import server

    return server.serve(directory, model=model, host=host, port=port,
                        open_browser=open_browser, weights=weights, labelled=labelled)
