"""Start the review app on a waitress server: what ``skanimal review`` runs."""

from __future__ import annotations

import ipaddress
import os
import sys
import threading
import warnings
import webbrowser

import waitress
from waitress import wasyncore

from ..exceptions import ImageFolderError
from ..workflow import load_model
from .app import LOOPBACK_NAMES, create_app
from .catalog import Catalog
from .retrain import FeatureMemo, Retrainer, check_model, score_photos

__all__ = ["ReviewServer", "start", "serve"]


def _is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_wildcard(host):
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


class ReviewServer:
    """A bound review server: ``url`` to open, :meth:`run` to serve, :meth:`close` to stop.

    Parameters
    ----------
    app : flask.Flask
    host : str
    port : int
    """

    def __init__(self, app, host, port):
        self.app = app
        self._map = {}  # waitress' socket map: closing everything in it ends run()
        self.server = waitress.create_server(app, map=self._map, host=host, port=port,
                                             threads=8, clear_untrusted_proxy_headers=True)
        self._lock = threading.Lock()
        self._running = self._closed = False

    @property
    def port(self):
        return int(self.server.effective_port)

    def run(self):
        """Serve until :meth:`close` is called (from any thread) or Ctrl-C."""
        with self._lock:
            if self._closed:
                return
            self._running = True
        try:
            self.server.run()  # returns on Ctrl-C too, after stopping its threads
        finally:
            with self._lock:
                self._running, closed, self._closed = False, self._closed, True
            if not closed:
                self._close_now()

    def close(self):
        """Stop serving: open connections are closed, running requests finish first."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            running = self._running
        if running:  # the serving thread owns the sockets: let it close them
            self.server.trigger.pull_trigger(self._close_now)
        else:
            self._close_now()

    def _close_now(self):
        self.server.task_dispatcher.shutdown()
        wasyncore.close_all(self._map)


def start(directory, *, model=None, host="127.0.0.1", port=0, log=None, weights=None,
          labelled=None):
    """Prepare the review of ``directory`` and bind its server (it serves on :meth:`run`).

    Parameters
    ----------
    directory : path-like
        The sorted (or any class-per-folder) folder.
    model : path-like, optional
        A saved model (joblib or ``.skanimal``): photos are scored with it, and Retrain
        fits its head again. Without it, scores come from ``directory/predictions.csv``.
    host : str, default="127.0.0.1"
        Interface to listen on. Anything but a loopback address warns: everyone who can
        reach it and gets the printed link can see and move the photos.
    port : int, default=0
        TCP port; 0 picks a free one.
    log : file, optional
        Where progress notes go (default ``sys.stderr``; stdout is kept for the URL).
    weights : path-like, optional
        The model's backbone weights file at its new place, checked by content.
    labelled : path-like, optional
        The class-per-folder set or labels CSV the model was trained from: Retrain trains
        on its photos again, with those confirmed on the page.

    Returns
    -------
    ReviewServer
    """
    log = log or sys.stderr
    pipeline = None
    if model is not None:
        pipeline = load_model(model, weights=weights)
        check_model(pipeline, model)  # one line now if it cannot be scored or retrained
    catalog = Catalog(directory, None if pipeline is None else list(pipeline.classes_))
    finished = catalog.finish_interrupted()
    if finished:
        print(f"Finished {finished} interrupted move(s) of an earlier session", file=log)
    memo = FeatureMemo()
    if pipeline is not None:
        n = len(catalog.folder_paths())
        print(f"Scoring {n} photos with {os.fspath(model)} ...", file=log, flush=True)
        score_photos(catalog, pipeline, memo)
    elif catalog.load_predictions():
        print("Confidences from predictions.csv", file=log)
    if catalog.load_audit():
        print("Audit suspects from audit.csv/audit.json", file=log)
    if labelled is not None and not os.path.exists(labelled):
        raise ImageFolderError(f"labelled photos {os.fspath(labelled)!r}: no such folder or "
                               "file")
    retrainer = (Retrainer(catalog, pipeline, model, memo, labelled=labelled)
                 if pipeline is not None else None)

    allowed = None if _is_wildcard(host) else LOOPBACK_NAMES | {host}
    if not _is_loopback(host):
        warnings.warn(f"serving on {host}, not only this computer: anyone who can reach it "
                      "and gets the link can see and move these photos", stacklevel=2)
    app = create_app(catalog, retrainer, allowed_hosts=allowed)
    review = ReviewServer(app, host, port)
    shown = "127.0.0.1" if _is_wildcard(host) or host == "localhost" else host
    if ":" in shown:
        shown = f"[{shown}]"
    review.url = f"http://{shown}:{review.port}/?token={app.config['SKANIMAL_TOKEN']}"
    return review


def serve(directory, *, model=None, host="127.0.0.1", port=0, open_browser=True, out=None,
          weights=None, labelled=None):
    """Start the review, print its URL as the first line of ``out`` (stdout), open the
    browser unless told not to, and serve until interrupted. Returns 0."""
    out = out or sys.stdout
    review = start(directory, model=model, host=host, port=port, weights=weights,
                   labelled=labelled)
    print(review.url, file=out, flush=True)
    print("Press Ctrl-C to stop.", file=sys.stderr, flush=True)
    if open_browser:
        webbrowser.open(review.url)
    review.run()
    return 0
