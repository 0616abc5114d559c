"""The review web app (Flask): the page, the photo list, thumbnails, moves, undo, retrain.

Security, since it serves and moves files on the user's disk:

* A per-session token (:func:`secrets.token_urlsafe`) is the key to everything. The URL the
  command prints carries it once (``/?token=...``); the app answers with an ``HttpOnly``,
  ``SameSite=Strict`` cookie and a redirect that drops it from the address bar. Every other
  request needs that cookie (another local user or a page on the web cannot read photos).
* Every state-changing request is a ``POST`` with a JSON body and the token in the
  ``X-Skanimal-Token`` header, which the page reads from its own HTML. A request whose
  ``Origin`` is not this server is refused. ``GET`` never changes anything (thumbnails are a
  cache).
* The ``Host`` header must name the address the server listens on (``127.0.0.1``,
  ``localhost``): a web page whose domain is made to resolve to 127.0.0.1 ("DNS rebinding")
  sends its own domain and is refused.
* Files are served only from inside the reviewed folder (:func:`.paths.resolve_inside`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from urllib.parse import quote, urlsplit

from flask import Flask, abort, jsonify, redirect, render_template, request, send_file

from ..exceptions import ImageLoadError, SkanimalError
from .catalog import MoveRefused
from .paths import PathRefused, resolve_inside
from .thumbs import thumbnail

__all__ = ["create_app", "LOOPBACK_NAMES"]

#: Host names that always reach a server bound to the loopback interface.
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})

TOKEN_HEADER = "X-Skanimal-Token"


def _same(a, b):
    return a is not None and b is not None and hmac.compare_digest(a.encode(), b.encode())


def create_app(catalog, retrainer, *, token=None, allowed_hosts=LOOPBACK_NAMES):
    """The Flask app reviewing ``catalog``.

    Parameters
    ----------
    catalog : skanimal.review.catalog.Catalog
    retrainer : skanimal.review.retrain.Retrainer or None
        None when no model was given (retraining then answers with a message).
    token : str, optional
        The session token; a new random one by default (``app.config["SKANIMAL_TOKEN"]``).
    allowed_hosts : collection of str or None
        Host names accepted in the ``Host`` header; None accepts any (a server bound to
        all interfaces, which the command warns about).

    Returns
    -------
    flask.Flask
    """
    token = token or secrets.token_urlsafe(32)
    cookie_name = "skanimal-review-" + hashlib.sha256(token.encode()).hexdigest()[:12]
    app = Flask(__name__)
    app.url_map.merge_slashes = False  # "//etc/passwd" is refused, not redirected
    app.config.update(SKANIMAL_TOKEN=token, SKANIMAL_ALLOWED_HOSTS=allowed_hosts,
                      MAX_CONTENT_LENGTH=64 * 1024)
    thumbs_dir = catalog.state_dir / "thumbs"

    def busy():
        return retrainer is not None and retrainer.running

    # ------------------------------------------------------------------------ protections

    @app.before_request
    def check_request():
        hosts = app.config["SKANIMAL_ALLOWED_HOSTS"]
        hostname = urlsplit("//" + (request.headers.get("Host") or "")).hostname
        if hosts is not None and hostname not in hosts:
            abort(403, "unknown Host")
        if request.endpoint == "static":
            return None
        if request.endpoint == "index" and _same(request.args.get("token"), token):
            return None  # the printed link: sets the cookie
        if not _same(request.cookies.get(cookie_name), token):
            abort(403, "open the link printed by 'skanimal review'")
        if request.method != "GET":
            origin = request.headers.get("Origin")
            if origin is not None and origin != f"{request.scheme}://{request.host}":
                abort(403, "foreign Origin")
            if not _same(request.headers.get(TOKEN_HEADER), token):
                abort(403, "missing or wrong session token")
            if not request.is_json:
                abort(415, "expected a JSON body")
        return None

    @app.after_request
    def harden(response):
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        return response

    @app.errorhandler(403)
    @app.errorhandler(404)
    @app.errorhandler(405)
    @app.errorhandler(409)
    @app.errorhandler(413)
    @app.errorhandler(415)
    def error(exc):
        return jsonify(error=exc.description), exc.code

    # ----------------------------------------------------------------------------- pages

    @app.get("/")
    def index():
        if "token" in request.args:
            response = redirect("/", code=303)
            response.set_cookie(cookie_name, token, httponly=True, samesite="Strict")
            return response
        return render_template("index.html", token=token, folder=os.fspath(catalog.root))

    @app.get("/api/photos")
    def photos():
        listing = catalog.listing()
        for section in listing["sections"]:
            for photo in section["photos"]:
                photo["thumb"] = f"/thumb/{quote(photo['path'])}?v={photo.pop('version')}"
                photo["photo"] = f"/photo/{quote(photo['path'])}"
        listing.update(can_undo=catalog.can_undo, undo_steps=catalog.undo_steps(),
                       can_retrain=retrainer is not None and retrainer.available,
                       retrain=None if retrainer is None else retrainer.status())
        return jsonify(listing)

    @app.get("/api/history")
    def history():
        return jsonify(undo_steps=catalog.undo_steps())

    @app.get("/thumb/<path:relative>")
    def thumb(relative):
        try:
            photo = resolve_inside(catalog.root, relative)
            path = thumbnail(photo, thumbs_dir)
        except PathRefused:
            abort(404, "no such photo")
        except ImageLoadError:
            abort(404, "this photo cannot be decoded")
        # The page asks with ?v=<file identity>: a changed file gets another URL.
        return send_file(path, mimetype="image/jpeg", max_age=86400 * 365)

    @app.get("/photo/<path:relative>")
    def photo(relative):
        try:
            path = resolve_inside(catalog.root, relative)
        except PathRefused:
            abort(404, "no such photo")
        return send_file(path, max_age=0)

    # ------------------------------------------------------------------------- changes

    def change(action):
        """Run a catalog change: 409 while retraining, 400 for a refused one."""
        if busy():
            abort(409, "retraining: moves and undo wait until it is done")
        try:
            result = action()
        except MoveRefused as exc:
            return jsonify(error=str(exc)), 400
        except (SkanimalError, OSError) as exc:
            return jsonify(error=str(exc)), 409
        return jsonify(result)

    def paths_of(body):
        paths = body.get("paths")
        if not isinstance(paths, list) or not paths or \
                not all(isinstance(p, str) for p in paths):
            return None
        return paths

    @app.post("/api/move")
    def move():
        """``{"path", "folder"}`` moves one photo (answers ``{"from", "to", "folder"}``);
        ``{"paths": [...], "folder"}`` moves many as one undoable step (answers
        ``{"moved": [...]}``)."""
        body = request.get_json(silent=True) or {}
        folder = body.get("folder")
        if isinstance(body.get("path"), str) and isinstance(folder, str):
            return change(lambda: catalog.move(body["path"], folder))
        paths = paths_of(body)
        if paths is None or not isinstance(folder, str):
            return jsonify(error="expected {\"path\": ..., \"folder\": ...} or "
                                 "{\"paths\": [...], \"folder\": ...}"), 400
        return change(lambda: catalog.move_many([(path, folder) for path in paths]))

    @app.post("/api/accept")
    def accept():
        """``{"paths": [...]}``: each photo to the class the model predicts, one step."""
        paths = paths_of(request.get_json(silent=True) or {})
        if paths is None:
            return jsonify(error="expected {\"paths\": [...]}"), 400
        return change(lambda: catalog.accept(paths))

    @app.post("/api/undo")
    def undo():
        def run():
            restored = catalog.undo()
            return {"restored": restored, "undo_steps": catalog.undo_steps()}
        return change(run)

    @app.post("/api/retrain")
    def retrain():
        if retrainer is None or not retrainer.available:
            return jsonify(error="start 'skanimal review' with --model MODEL to retrain"), 400
        body = request.get_json(silent=True) or {}
        if not retrainer.start(confirmed_only=body.get("confirmed_only") is True):
            abort(409, "already retraining")
        return jsonify(retrainer.status()), 202

    @app.get("/api/retrain")
    def retrain_status():
        return jsonify(None if retrainer is None else retrainer.status())

    return app
