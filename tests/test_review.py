"""``skanimal review``: the page's HTTP promises (Flask test client and a real server).

Every promise of issue 13 that HTTP can show: the URL first on stdout, loopback by default,
listing order and audit marks, cached thumbnails, journaled moves and undo, retraining that
never overwrites a model, and the security rules (files only from inside the folder, POST
with the session token, no foreign Origin or Host, GET changes nothing). The real-browser
test is in ``test_review_browser.py``.
"""

import csv
import hashlib
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytest.importorskip("flask", reason="the review extra is not installed: "
                                    "pip install 'skanimal[review]'")
pytest.importorskip("waitress", reason="the review extra is not installed")

from skanimal import make_shapes  # noqa: E402
from skanimal.review.app import TOKEN_HEADER, create_app  # noqa: E402
from skanimal.review.catalog import Catalog  # noqa: E402

CLASSES = ["circle", "cross", "square", "triangle"]


# --------------------------------------------------------------------------------- helpers


def make_review_dir(root, n_per_class=5):
    """A folder as ``skanimal sort`` leaves it: 4 class folders, ``_review`` holding the
    last photo of each class, ``predictions.csv`` and an ``audit.csv`` with one suspect."""
    root = Path(root)
    source = make_shapes(root / "made", n_per_class=n_per_class, image_size=40)
    sorted_dir = root / "sorted"
    rows = []
    for class_name in CLASSES:
        files = sorted(p for p in source.paths if Path(p).parent.name == class_name)
        for i, path in enumerate(files):
            folder = "_review" if i == len(files) - 1 else class_name
            destination = sorted_dir / folder / Path(path).name
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, destination)
            confidence = 0.3 if folder == "_review" else round(0.95 - 0.1 * i, 2)
            # Absolute and folder-relative destinations: both are matched.
            shown = destination if i % 2 else destination.relative_to(sorted_dir)
            rows.append({"source": path, "destination": os.fspath(shown),
                         "label": class_name, "confidence": confidence})
    with open(sorted_dir / "predictions.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["source", "destination", "label", "confidence"])
        writer.writeheader()
        writer.writerows(rows)
    with open(sorted_dir / "audit.csv", "w", newline="") as handle:
        handle.write("path,label,suggested,score\n")
        handle.write(f"{sorted_dir / 'circle' / 'circle_001.jpg'},circle,square,0.9\n")
    return sorted_dir


def tree(root):
    """Every file below ``root`` (but the app's own cache) with a hash of its bytes."""
    found = {}
    for path in Path(root).rglob("*"):
        if path.is_file() and ".skanimal" not in path.relative_to(root).parts:
            found[path.relative_to(root).as_posix()] = hashlib.sha256(
                path.read_bytes()).hexdigest()
    return found


def login(client, app):
    response = client.get(f"/?token={app.config['SKANIMAL_TOKEN']}")
    assert response.status_code == 303
    return app.config["SKANIMAL_TOKEN"]


def post(client, url, body=None, token=None, **headers):
    if token is not None:
        headers[TOKEN_HEADER] = token
    return client.post(url, json=body or {}, headers=headers)


@pytest.fixture
def review_dir(tmp_path):
    return make_review_dir(tmp_path)


@pytest.fixture
def review(review_dir):
    """``(app, client, token, catalog)`` for ``review_dir``, logged in, no model."""
    catalog = Catalog(review_dir)
    catalog.load_predictions()
    catalog.load_audit()
    app = create_app(catalog, None)
    client = app.test_client()
    token = login(client, app)
    return app, client, token, catalog


# ------------------------------------------------------------------------- the command


def test_missing_extra_is_one_clear_line(review_dir, monkeypatch, capsys):
    import importlib.util

    from skanimal.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "waitress" else real(name, *a))
    assert main(["review", os.fspath(review_dir), "--no-browser"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("skanimal: error:") and 'pip install "skanimal[review]"' in err[0]


@pytest.mark.slow
def test_command_prints_the_url_first_and_serves_it(review_dir):
    process = subprocess.Popen(
        [sys.executable, "-m", "skanimal", "review", os.fspath(review_dir), "--no-browser"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = process.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\?token=[\w-]{30,}", first), first
        url = urlsplit(first)
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        connection.request("GET", f"/?{url.query}")
        response = connection.getresponse()
        assert response.status == 303
        assert "HttpOnly" in response.getheader("Set-Cookie")
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_binds_loopback_by_default_and_warns_for_another_host(review_dir):
    from skanimal.review import start

    review = start(review_dir)
    try:
        assert review.server.effective_host == "127.0.0.1"
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\?token=.+", review.url)
        assert review.port > 0
    finally:
        review.close()
    with pytest.warns(UserWarning, match="anyone who can reach it"):
        review = start(review_dir, host="0.0.0.0")
    review.close()


def test_real_server_serves_then_stops(review_dir):
    from skanimal.review import start

    review = start(review_dir)
    thread = threading.Thread(target=review.run, daemon=True)
    thread.start()
    url = urlsplit(review.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    connection.request("GET", f"/?{url.query}")
    assert connection.getresponse().status == 303
    connection.close()
    review.close()
    thread.join(10)
    assert not thread.is_alive()


# ---------------------------------------------------------------------- what the page shows


def test_page_needs_the_printed_link(review_dir):
    app = create_app(Catalog(review_dir), None)
    client = app.test_client()
    assert client.get("/").status_code == 403
    assert client.get("/api/photos").status_code == 403
    assert client.get("/?token=wrong").status_code == 403
    response = client.get(f"/?token={app.config['SKANIMAL_TOKEN']}")
    assert response.status_code == 303 and response.headers["Location"] == "/"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    page = client.get("/")
    assert page.status_code == 200
    assert f'content="{app.config["SKANIMAL_TOKEN"]}"' in page.get_data(as_text=True)
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]


def test_listing_review_first_least_confident_first_and_suspects(review):
    app, client, token, catalog = review
    listing = client.get("/api/photos").get_json()
    assert [s["name"] for s in listing["sections"]] == ["_review"] + CLASSES
    assert listing["classes"] == CLASSES
    assert len(listing["sections"][0]["photos"]) == 4
    for section in listing["sections"][1:]:
        confidences = [p["confidence"] for p in section["photos"]]
        assert None not in confidences  # every row of predictions.csv was matched
        assert confidences == sorted(confidences) and len(set(confidences)) == 4
        assert section["photos"][0]["name"].endswith("_003.jpg")  # 0.65: least confident
    suspects = [p for s in listing["sections"] for p in s["photos"] if p["suspect"]]
    assert [(p["path"], p["suspect"]) for p in suspects] == [("circle/circle_001.jpg",
                                                              "square")]
    assert not listing["can_retrain"]


def test_the_review_reason_of_predictions_csv_reaches_the_page(review_dir):
    # As 'skanimal sort' writes it: why each _review photo is there, in its own column.
    reasons = {"circle": "low confidence", "cross": "unlike the training photos",
               "square": "both", "triangle": "low confidence"}
    with open(review_dir / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    with open(review_dir / "predictions.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["destination", "label_1", "probability_1",
                                         "review_reason"])
        writer.writeheader()
        for row in rows:
            in_review = "_review" in Path(row["destination"]).parts
            writer.writerow({"destination": row["destination"], "label_1": row["label"],
                             "probability_1": row["confidence"],
                             "review_reason": reasons[row["label"]] if in_review else ""})
    catalog = Catalog(review_dir)
    assert catalog.load_predictions() == len(rows)
    app = create_app(catalog, None)
    client = app.test_client()
    login(client, app)
    listing = client.get("/api/photos").get_json()
    shown = {p["path"]: p["review_reason"] for s in listing["sections"] for p in s["photos"]}
    assert {path: reason for path, reason in shown.items() if reason} == {
        f"_review/{name}_{4:03d}.jpg": reason for name, reason in reasons.items()}
    script = client.get("/static/review.js").get_data(as_text=True)
    assert "photo.review_reason" in script  # the page shows it


@pytest.mark.slow
def test_a_model_scores_the_review_reason_as_sort_decides_it(model_dir):
    import joblib
    import numpy as np

    from skanimal.review.paths import relative_name
    from skanimal.review.retrain import FeatureMemo, score_photos
    from skanimal.sorting import REVIEW_REASONS, confidence_for

    review_dir, model_path = model_dir
    model = joblib.load(model_path)
    catalog = Catalog(review_dir, list(model.classes_))
    novelty = model[-1].novelty_
    saved = novelty.threshold_
    paths = catalog.folder_paths()
    features = model[0].transform(paths)
    scores = novelty.novelty_score(features)
    try:  # a novelty threshold that splits the photos: both flags occur
        novelty.threshold_ = float(np.median(scores))
        score_photos(catalog, model, FeatureMemo())
    finally:
        novelty.threshold_ = saved
    threshold, _ = confidence_for(model)
    proba = model[-1].predict_proba(features)
    expected = {relative_name(review_dir, path): REVIEW_REASONS[row.max() < threshold, bool(far)]
                for path, row, far in zip(paths, proba, scores > np.median(scores))}
    app = create_app(catalog, None)
    client = app.test_client()
    login(client, app)
    listing = client.get("/api/photos").get_json()
    photos = [p for s in listing["sections"] for p in s["photos"]]
    assert any(p["review_reason"] in ("unlike the training photos", "both") for p in photos)
    for photo in photos:
        if photo["folder"] in ("_review", photo["predicted"]):
            assert photo["review_reason"] == (expected[photo["path"]] or None)
        else:  # put elsewhere by hand: the model's reason no longer applies
            assert photo["review_reason"] is None


def test_page_script_renders_lazily(review):
    app, client, token, catalog = review
    script = client.get("/static/review.js").get_data(as_text=True)
    assert 'img.loading = "lazy"' in script and "IntersectionObserver" in script


# ------------------------------------------------------------------------------ thumbnails


def test_thumbnails_are_made_once_cached_and_follow_moves(review, monkeypatch):
    from PIL import Image

    from skanimal.review import thumbs

    app, client, token, catalog = review
    thumbs_dir = catalog.state_dir / "thumbs"
    assert not thumbs_dir.exists()  # listing makes none: they are made when the page asks
    photo = client.get("/api/photos").get_json()["sections"][1]["photos"][0]
    response = client.get(photo["thumb"])
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    made = list(thumbs_dir.rglob("*.jpg"))
    assert len(made) == 1
    with Image.open(made[0]) as img:
        assert max(img.size) <= thumbs.THUMB_SIZE

    def fail(photo):
        raise AssertionError("thumbnail made twice")

    monkeypatch.setattr(thumbs, "_render", fail)
    assert client.get(photo["thumb"]).get_data() == response.get_data()
    moved = post(client, "/api/move", {"path": photo["path"], "folder": "cross"}, token)
    assert moved.status_code == 200
    again = client.get(f"/thumb/{moved.get_json()['to']}")
    assert again.status_code == 200 and again.get_data() == response.get_data()
    assert list(thumbs_dir.rglob("*.jpg")) == made


def test_undecodable_photo_has_no_thumbnail(review):
    app, client, token, catalog = review
    (catalog.root / "circle" / "broken.jpg").write_bytes(b"not a jpeg")
    assert client.get("/thumb/circle/broken.jpg").status_code == 404


# ------------------------------------------------------------------- files only from DIR


@pytest.fixture
def outside(tmp_path, review_dir):
    """A secret image outside the folder, and links from inside the folder to it."""
    secret_dir = tmp_path / "secret"
    secret_dir.mkdir()
    secret = secret_dir / "secret.jpg"
    secret.write_bytes((review_dir / "circle" / "circle_000.jpg").read_bytes() + b"SECRET")
    os.symlink(secret, review_dir / "circle" / "link.jpg")
    os.symlink(secret_dir, review_dir / "linked_dir")
    return secret


REFUSED = [
    "/photo/../secret/secret.jpg",
    "/photo/..%2Fsecret%2Fsecret.jpg",
    "/photo/circle%2F..%2F..%2Fsecret%2Fsecret.jpg",
    "/photo/%2e%2e/secret/secret.jpg",
    "/photo/%252e%252e%252fsecret%252fsecret.jpg",
    "/photo//{secret}",
    "/photo/%2F{secret_quoted}",
    "/photo/circle/link.jpg",
    "/photo/linked_dir/secret.jpg",
    "/photo/predictions.csv",
    "/photo/.skanimal/thumbs",
    "/photo/circle\\..\\..\\secret\\secret.jpg",
    "/thumb/../secret/secret.jpg",
    "/thumb/..%2Fsecret%2Fsecret.jpg",
    "/thumb/circle/link.jpg",
    "/thumb//{secret}",
]


def _refused_urls(secret):
    from urllib.parse import quote

    return [url.format(secret=secret, secret_quoted=quote(os.fspath(secret)[1:], safe=""))
            for url in REFUSED]


def test_only_files_inside_the_folder_are_served(review, outside):
    app, client, token, catalog = review
    assert client.get("/photo/circle/circle_000.jpg").status_code == 200
    for url in _refused_urls(outside):
        response = client.get(url)
        assert response.status_code in (403, 404), url
        assert b"SECRET" not in response.get_data(), url


def test_real_server_refuses_raw_paths(review_dir, outside):
    """Paths sent as raw bytes on the wire, without a client normalising them."""
    from skanimal.review import start

    review = start(review_dir)
    thread = threading.Thread(target=review.run, daemon=True)
    thread.start()
    try:
        url = urlsplit(review.url)
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        connection.request("GET", f"/?{url.query}")
        response = connection.getresponse()
        response.read()
        cookie = response.getheader("Set-Cookie").split(";")[0]
        connection.request("GET", "/photo/circle/circle_000.jpg", headers={"Cookie": cookie})
        response = connection.getresponse()
        assert response.status == 200 and response.read()
        for path in _refused_urls(outside):
            connection.request("GET", path, headers={"Cookie": cookie})
            response = connection.getresponse()
            body = response.read()
            assert response.status in (400, 403, 404), path
            assert b"SECRET" not in body, path
    finally:
        review.close()
        thread.join(10)


# --------------------------------------------------------------- POST, token, Origin, Host


def test_state_changes_need_post_token_json_and_own_origin(review):
    app, client, token, catalog = review
    before = tree(catalog.root)
    body = {"path": "circle/circle_000.jpg", "folder": "cross"}
    assert post(client, "/api/move", body).status_code == 403  # no token
    assert post(client, "/api/move", body, "wrong").status_code == 403
    assert post(client, "/api/move", body, token,
                Origin="http://evil.example").status_code == 403
    assert post(client, "/api/move", body, token,
                Origin="http://localhost:9").status_code == 403  # another port: another site
    form = client.post("/api/move", data=body, headers={TOKEN_HEADER: token})
    assert form.status_code == 415  # a plain HTML form cannot send JSON
    assert post(client, "/api/undo", {}, "wrong").status_code == 403
    assert post(client, "/api/retrain", {}, "wrong").status_code == 403
    assert tree(catalog.root) == before
    assert client.get("/api/move").status_code == 405
    response = post(client, "/api/move", body, token, Origin="http://localhost")
    assert response.status_code == 200
    assert (catalog.root / "cross" / "circle_000.jpg").is_file()


def test_foreign_host_header_is_refused(review):
    """A page whose domain resolves to 127.0.0.1 (DNS rebinding) sends its own Host."""
    app, client, token, catalog = review
    assert client.get("/api/photos", headers={"Host": "evil.example"}).status_code == 403
    assert client.get("/api/photos", headers={"Host": "localhost:8000"}).status_code == 200


def test_get_never_changes_anything(review):
    app, client, token, catalog = review
    before = tree(catalog.root)
    listing = client.get("/api/photos").get_json()
    urls = ["/", "/api/photos", "/api/retrain", "/api/move", "/api/undo",
            "/api/move?path=circle/circle_000.jpg&folder=cross", "/static/review.js"]
    urls += [p["thumb"] for s in listing["sections"] for p in s["photos"]]
    urls += [p["photo"] for s in listing["sections"] for p in s["photos"]]
    for url in urls:
        assert client.get(url).status_code in (200, 405), url
    assert tree(catalog.root) == before
    assert not (catalog.root / ".skanimal" / "journal").exists()


# ------------------------------------------------------------------------- moves and undo


def test_move_is_journaled_and_undone(review):
    app, client, token, catalog = review
    root = catalog.root
    original = (root / "circle" / "circle_000.jpg").read_bytes()
    response = post(client, "/api/move", {"path": "circle/circle_000.jpg", "folder": "square"},
                    token)
    assert response.get_json() == {"from": "circle/circle_000.jpg",
                                   "to": "square/circle_000.jpg", "folder": "square"}
    assert not (root / "circle" / "circle_000.jpg").exists()
    assert (root / "square" / "circle_000.jpg").read_bytes() == original
    [journal] = (root / ".skanimal" / "journal").glob("*.json")
    assert json.loads(journal.read_text())["state"] == "done"
    # "None of these": the review folder.
    response = post(client, "/api/move", {"path": "cross/cross_000.jpg", "folder": "_review"},
                    token)
    assert response.status_code == 200 and (root / "_review" / "cross_000.jpg").is_file()
    assert post(client, "/api/undo", {}, token).get_json()["restored"] == [
        {"from": "_review/cross_000.jpg", "to": "cross/cross_000.jpg", "folder": "cross"}]
    assert post(client, "/api/undo", {}, token).status_code == 200
    assert (root / "circle" / "circle_000.jpg").read_bytes() == original
    assert not (root / "square" / "circle_000.jpg").exists()
    assert post(client, "/api/undo", {}, token).status_code == 400  # nothing left to undo
    # The listing follows: the photo is back in its class, scores and all.
    listing = client.get("/api/photos").get_json()
    circle = {p["path"]: p for s in listing["sections"] for p in s["photos"]}
    assert circle["circle/circle_000.jpg"]["confidence"] == 0.95


def test_move_never_overwrites_a_namesake(review):
    app, client, token, catalog = review
    root = catalog.root
    other = (root / "cross" / "cross_000.jpg").read_bytes()
    (root / "square" / "cross_000.jpg").write_bytes(other[:-10] + b"different!")
    response = post(client, "/api/move", {"path": "cross/cross_000.jpg", "folder": "square"},
                    token)
    assert response.get_json()["to"] == "square/cross_000 (1).jpg"
    assert (root / "square" / "cross_000.jpg").read_bytes().endswith(b"different!")
    assert (root / "square" / "cross_000 (1).jpg").read_bytes() == other


@pytest.mark.parametrize("body", [
    {"path": "circle/circle_000.jpg", "folder": "dog"},          # not a class
    {"path": "circle/circle_000.jpg", "folder": "../elsewhere"},  # not a folder name
    {"path": "circle/nope.jpg", "folder": "cross"},              # no such photo
    {"path": "../secret.jpg", "folder": "cross"},
    {"path": "circle/circle_000.jpg"},
])
def test_bad_moves_are_refused(review, body):
    app, client, token, catalog = review
    before = tree(catalog.root)
    response = post(client, "/api/move", body, token)
    assert response.status_code == 400 and response.get_json()["error"]
    assert tree(catalog.root) == before


def test_interrupted_move_is_finished_at_start(review_dir):
    """A journal whose plan was written but whose files did not move (a kill right after
    the journal was synced) is completed when the review starts again."""
    from skanimal import moves

    source = review_dir / "circle" / "circle_000.jpg"
    journal = review_dir / ".skanimal" / "journal" / "0001.json"
    moves.transfer([(source, review_dir / "cross")], mode="move", journal=journal)
    record = json.loads(journal.read_text())
    os.replace(review_dir / "cross" / "circle_000.jpg", source)  # back to "not moved yet"
    record["state"] = "planned"
    journal.write_text(json.dumps(record))
    catalog = Catalog(review_dir)
    assert catalog.finish_interrupted() == 1
    assert (review_dir / "cross" / "circle_000.jpg").is_file() and not source.exists()


def test_retrain_without_model_says_how(review):
    app, client, token, catalog = review
    response = post(client, "/api/retrain", {}, token)
    assert response.status_code == 400 and "--model" in response.get_json()["error"]


# -------------------------------------------------------------------------------- retrain


def train_tiny_model(review_dir, path):
    """A small fitted pipeline on the class folders (random MobileNetV2 weights: wiring)."""
    import joblib
    from sklearn.pipeline import make_pipeline

    from skanimal import BottleneckClassifier, BottleneckFeatures, load_image_folder

    data = load_image_folder(review_dir)
    keep = data.target != "_review"
    pipe = make_pipeline(
        BottleneckFeatures("mobilenet_v2", weights=None, image_size=(32, 32), pooling="avg"),
        BottleneckClassifier(epochs=3, batch_size=8, learning_rate=1e-3, random_state=0))
    pipe.fit(data.paths[keep], data.target[keep])
    joblib.dump(pipe, path)
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("review-model")
    review_dir = make_review_dir(root)
    return review_dir, train_tiny_model(review_dir, root / "animals.joblib")


def copy_setup(model_dir, tmp_path):
    import shutil

    review_dir, model = model_dir
    shutil.copytree(review_dir, tmp_path / "sorted")
    shutil.copy(model, tmp_path / "animals.joblib")
    return tmp_path / "sorted", tmp_path / "animals.joblib"


def wait_for_retrain(client, timeout=300):
    deadline = time.monotonic() + timeout
    phases = []
    while time.monotonic() < deadline:
        status = client.get("/api/retrain").get_json()
        phases.append(status["phase"])
        if status["state"] != "running":
            return status, phases
        time.sleep(0.05)
    raise AssertionError(f"retraining did not finish in {timeout} s: {phases[-5:]}")


@pytest.mark.slow
def test_retrain_saves_beside_never_overwrites_and_resorts(model_dir, tmp_path, monkeypatch):
    import joblib

    from skanimal import sorting
    from skanimal.review import start

    review_dir, model = copy_setup(model_dir, tmp_path)
    (tmp_path / "animals (1).joblib").write_bytes(b"someone else's file")
    old_bytes = model.read_bytes()
    # Every photo of _review is then confident enough to leave it (the rule, not the
    # random-weights model's quality, is under test).
    monkeypatch.setattr(sorting, "DEFAULT_MIN_CONFIDENCE", 0.0)
    monkeypatch.setattr(sorting, "novelty_of", lambda model: None)  # nor unlike its photos
    review = start(review_dir, model=model)
    client = review.app.test_client()
    token = login(client, review.app)
    listing = client.get("/api/photos").get_json()
    assert listing["can_retrain"]
    assert all(p["confidence"] is not None for s in listing["sections"] for p in s["photos"])
    in_review = sorted(p.name for p in (review_dir / "_review").iterdir())
    assert len(in_review) == 4

    assert post(client, "/api/move", {"path": "circle/circle_000.jpg", "folder": "cross"},
                token).status_code == 200
    response = post(client, "/api/retrain", {}, token)
    assert response.status_code == 202
    assert post(client, "/api/retrain", {}, token).status_code in (202, 409)
    status, phases = wait_for_retrain(client)
    assert status["state"] == "done", status
    # Phases are sampled every 50 ms: re-sorting 4 photos can pass between two samples (its
    # outcome is checked below), training cannot; those seen come in the job's order.
    order = ["starting", "finding the training photos", "features", "training", "saving",
             "re-sorting", "scoring", "done"]
    seen = [p for i, p in enumerate(phases) if p and (i == 0 or p != phases[i - 1])]
    assert "training" in seen and seen == sorted(seen, key=order.index), seen
    assert status["model"] == "animals (2).joblib"
    assert model.read_bytes() == old_bytes
    assert (tmp_path / "animals (1).joblib").read_bytes() == b"someone else's file"
    new = joblib.load(tmp_path / "animals (2).joblib")
    head = new.steps[-1][1]
    assert head.get_params()["callbacks"] is None  # the progress callback was not saved
    assert list(head.classes_) == CLASSES
    # Trained on the corrected folders: the moved photo counted as a cross.
    assert new.predict([review_dir / "cross" / "circle_000.jpg"]).shape == (1,)
    # _review was sorted again, journaled: it is empty now, and undo brings it back.
    assert not any((review_dir / "_review").iterdir())
    moved_out = sorted(p.name for c in CLASSES for p in (review_dir / c).iterdir()
                       if p.name in in_review)
    assert moved_out == in_review
    # As 'skanimal sort' does: predictions.csv keeps one row per photo (the re-sorted ones
    # updated in place, the others kept).
    with open(review_dir / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 5 * len(CLASSES)
    resorted = [r for r in rows if Path(r["destination"]).name in in_review]
    assert len(resorted) == len(in_review)
    assert all(Path(r["destination"]).parent.name == r["label_1"] != "_review" and
               Path(r["destination"]).is_file() for r in resorted)
    restored = post(client, "/api/undo", {}, token).get_json()["restored"]
    assert len(restored) == 4
    assert sorted(p.name for p in (review_dir / "_review").iterdir()) == in_review
    # A second retrain goes on from the new model.
    assert post(client, "/api/retrain", {}, token).status_code == 202
    status, _ = wait_for_retrain(client)
    assert status["state"] == "done" and status["model"] == "animals (3).joblib"
    review.close()


def test_retrain_a_logistic_head(model_dir, tmp_path, monkeypatch):
    """A 'skanimal train --head logistic' model (StandardScaler + LogisticRegression after
    the features) retrains too, and keeps its steps."""
    import joblib
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skanimal import BottleneckFeatures, load_image_folder, sorting
    from skanimal.review import start

    review_dir, _ = copy_setup(model_dir, tmp_path)
    data = load_image_folder(review_dir)
    keep = data.target != "_review"
    pipe = make_pipeline(
        BottleneckFeatures("mobilenet_v2", weights=None, image_size=(32, 32), pooling="avg"),
        StandardScaler(), LogisticRegression(max_iter=500))
    pipe.fit(data.paths[keep], data.target[keep])
    model = tmp_path / "linear.joblib"
    joblib.dump(pipe, model)
    monkeypatch.setattr(sorting, "DEFAULT_MIN_CONFIDENCE", 0.0)
    review = start(review_dir, model=model)
    client = review.app.test_client()
    token = login(client, review.app)
    assert post(client, "/api/retrain", {}, token).status_code == 202
    status, _ = wait_for_retrain(client)
    assert status["state"] == "done" and status["model"] == "linear (1).joblib", status
    new = joblib.load(tmp_path / "linear (1).joblib")
    assert [type(step).__name__ for _, step in new.steps] == [
        "BottleneckFeatures", "StandardScaler", "LogisticRegression"]
    assert not any((review_dir / "_review").iterdir())
    review.close()


# ------------------------------------------------- many photos, accept, trash, lasting undo


def rows_by_name(root):
    """predictions.csv's rows by file name (old column names read as new ones)."""
    from skanimal.folders import read_sort_predictions

    return {Path(r["destination"]).name: {k: r.get(k, "") for k in (
        "source", "destination", "label_1", "probability_1", "status")}
        for r in read_sort_predictions(root)}


def test_many_photos_move_as_one_undoable_step(review):
    app, client, token, catalog = review
    root = catalog.root
    before = tree(root)
    rows_before = rows_by_name(root)
    paths = ["circle/circle_000.jpg", "circle/circle_001.jpg", "cross/cross_000.jpg"]
    moved = post(client, "/api/move", {"paths": paths, "folder": "square"}, token).get_json()
    assert [m["to"] for m in moved["moved"]] == [
        "square/circle_000.jpg", "square/circle_001.jpg", "square/cross_000.jpg"]
    assert all((root / m["to"]).is_file() and not (root / m["from"]).exists()
               for m in moved["moved"])
    assert len(list((root / ".skanimal" / "journal").glob("*.json"))) == 1  # one journal
    assert client.get("/api/history").get_json() == {"undo_steps": 1}
    undone = post(client, "/api/undo", {}, token).get_json()
    assert sorted(r["to"] for r in undone["restored"]) == sorted(paths)
    assert undone["undo_steps"] == 0
    assert tree(root) == before | {"predictions.csv": tree(root)["predictions.csv"]}
    assert rows_by_name(root) == rows_before  # its rows as they were


def test_enter_accepts_the_prediction_of_each_photo(review):
    app, client, token, catalog = review
    root = catalog.root
    # The _review photos' predictions (predictions.csv): their own classes.
    in_review = sorted(p.name for p in (root / "_review").iterdir())
    paths = [f"_review/{name}" for name in in_review] + ["circle/circle_000.jpg"]
    result = post(client, "/api/accept", {"paths": paths}, token).get_json()["moved"]
    assert {m["folder"] for m in result[:-1]} == set(CLASSES)
    for name in in_review:
        assert (root / name.split("_")[0] / name).is_file()
    assert result[-1] == {"from": "circle/circle_000.jpg", "to": "circle/circle_000.jpg",
                          "folder": "circle"}  # already there: confirmed in place
    rows = rows_by_name(root)
    assert all(rows[name]["status"] == "confirmed" for name in in_review + ["circle_000.jpg"])
    assert rows["circle_001.jpg"]["status"] in ("", "sorted")
    listing = {p["path"]: p for s in client.get("/api/photos").get_json()["sections"]
               for p in s["photos"]}
    assert listing["circle/circle_000.jpg"]["status"] == "confirmed"
    assert listing["circle/circle_001.jpg"]["status"] == "sorted"
    post(client, "/api/undo", {}, token)
    assert sorted(p.name for p in (root / "_review").iterdir()) == in_review


def test_a_move_rewrites_the_photos_row_in_predictions_csv(review):
    app, client, token, catalog = review
    root = catalog.root
    before = rows_by_name(root)["cross_001.jpg"]
    assert post(client, "/api/move", {"path": "cross/cross_001.jpg", "folder": "triangle"},
                token).status_code == 200
    row = rows_by_name(root)["cross_001.jpg"]
    assert row["destination"] == os.fspath(root / "triangle" / "cross_001.jpg")
    assert row["status"] == "confirmed"  # a person's label: the folder it names
    assert row["label_1"] == "cross" and row["source"] == before["source"]  # the model's
    post(client, "/api/undo", {}, token)
    row = rows_by_name(root)["cross_001.jpg"]
    assert Path(row["destination"]) == root / "cross" / "cross_001.jpg"
    assert row["status"] == before.get("status", "")


def test_delete_moves_to_trash_never_trained_on_and_restorable(review):
    app, client, token, catalog = review
    root = catalog.root
    data = (root / "square" / "square_000.jpg").read_bytes()
    moved = post(client, "/api/move", {"paths": ["square/square_000.jpg"], "folder": "_trash"},
                 token).get_json()["moved"]
    assert moved == [{"from": "square/square_000.jpg", "to": "_trash/square_000.jpg",
                      "folder": "_trash"}]
    assert (root / "_trash" / "square_000.jpg").read_bytes() == data  # kept, not deleted
    assert rows_by_name(root)["square_000.jpg"]["status"] == "trashed"
    # Not a class, not in the listing, not trained on, not loaded as a class.
    listing = client.get("/api/photos").get_json()
    assert "_trash" not in listing["classes"]
    assert all(p["folder"] != "_trash" for s in listing["sections"] for p in s["photos"])
    paths, labels = catalog.training_set()
    assert not any(Path(p).parent.name == "_trash" for p in paths)
    assert len(paths) == 15 and "_trash" not in set(labels)
    from skanimal import load_image_folder
    assert "_trash" not in load_image_folder(root).target_names
    post(client, "/api/undo", {}, token)
    assert (root / "square" / "square_000.jpg").read_bytes() == data


def test_undo_outlives_a_restart_more_than_50_steps(review_dir):
    """Each move a step, journaled: a new Catalog of the same folder (the command run
    again) undoes them all, newest first."""
    from skanimal.moves import transfer  # noqa: F401 (the journals are its)

    catalog = Catalog(review_dir)
    before = tree(review_dir)
    photo = "circle/circle_000.jpg"
    trail = []
    for i in range(56):
        folder = CLASSES[1 + i % 3]
        photo = catalog.move(photo, folder)["to"]
        trail.append(photo)
    assert catalog.undo_steps() == 56
    again = Catalog(review_dir)  # a restart
    assert again.undo_steps() == 56
    for expected in reversed(trail[:-1]):
        [back] = again.undo()
        assert back["to"] == expected
    [back] = again.undo()
    assert back["to"] == "circle/circle_000.jpg"
    assert again.undo_steps() == 0
    assert tree(review_dir).keys() == before.keys()
    assert all(tree(review_dir)[k] == v for k, v in before.items() if k != "predictions.csv")


def test_page_offers_the_advance_choice_and_the_keys(review):
    app, client, token, catalog = review
    html = client.get("/").get_data(as_text=True)
    assert 'id="advance" checked' in html and "advance after a move" in html
    assert 'id="confirmed-only"' in html
    script = client.get("/static/review.js").get_data(as_text=True)
    for key in ('"Enter"', '"Delete"', '"a"', "shiftKey", "ctrlKey"):
        assert key in script


def test_retrain_trains_on_each_source_and_says_so(model_dir, tmp_path, monkeypatch):
    """Retrain's training set: the photos labelled before (the --labelled folder, and photos
    of the reviewed folder the model was fitted on), those confirmed on the page, and, unless
    'confirmed only', those the model sorted; never _review or _trash. The status counts
    each, and names the threshold with its reason."""
    import joblib
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from skanimal import BottleneckFeatures, load_image_folder, sorting
    from skanimal.review import start

    review_dir, _ = copy_setup(model_dir, tmp_path)
    labelled = load_image_folder(make_shapes(tmp_path / "labelled", n_per_class=2,
                                             image_size=40, random_state=7).root)
    fitted_here = [review_dir / "circle" / "circle_000.jpg", review_dir / "cross" / "cross_000.jpg"]
    pipe = make_pipeline(
        BottleneckFeatures("mobilenet_v2", weights=None, image_size=(32, 32), pooling="avg"),
        LogisticRegression(max_iter=300))
    pipe.fit(list(labelled.paths) + fitted_here,
             list(labelled.target) + ["circle", "cross"])
    model = tmp_path / "linear.joblib"
    joblib.dump(pipe, model)
    monkeypatch.setattr(sorting, "DEFAULT_MIN_CONFIDENCE", 0.0)
    # nor unlike its photos (where sorting has a novelty score): _review empties on re-sort
    monkeypatch.setattr(sorting, "novelty_of", lambda model: None, raising=False)
    review = start(review_dir, model=model, labelled=tmp_path / "labelled")
    client = review.app.test_client()
    token = login(client, review.app)
    post(client, "/api/move", {"path": "square/square_001.jpg", "folder": "triangle"}, token)
    post(client, "/api/move", {"path": "square/square_002.jpg", "folder": "_trash"}, token)

    assert post(client, "/api/retrain", {"confirmed_only": True}, token).status_code == 202
    status, _ = wait_for_retrain(client)
    assert status["state"] == "done", status
    # 8 labelled + 2 fitted on; 1 confirmed; the model's 16 - 2 - 1 - 1 (trashed) left out.
    assert status["trained_on"] == {"labelled": 10, "confirmed": 1, "model": 0}
    assert "10 photos you labelled before, 1 you confirmed here, 0 the model sorted" \
        in status["message"]
    assert "12 the model sorted left out" in status["message"]
    threshold, why = sorting.confidence_for(joblib.load(tmp_path / "linear (1).joblib"))
    assert status["threshold"] == threshold and f"({why})" in status["message"]

    # The re-sort moved _review's 4 photos into class folders: sorted by the model.
    assert post(client, "/api/retrain", {}, token).status_code == 202
    status, _ = wait_for_retrain(client)
    assert status["trained_on"] == {"labelled": 10, "confirmed": 1, "model": 16}
    new = joblib.load(tmp_path / "linear (2).joblib")
    assert new.steps[-1][1].n_features_in_ == pipe.steps[-1][1].n_features_in_
    review.close()


def test_the_trash_folder_is_never_a_class():
    from skanimal.datasets import NOT_CLASS_FOLDERS
    from skanimal.folders import TRASH_FOLDER

    assert TRASH_FOLDER in NOT_CLASS_FOLDERS  # the layer below cannot import folders


def test_missing_labelled_photos_are_one_clear_error(review_dir, tmp_path):
    from skanimal.exceptions import ImageFolderError
    from skanimal.review import start

    with pytest.raises(ImageFolderError, match="nope.*no such folder or file"):
        start(review_dir, labelled=tmp_path / "nope")
