"""``skanimal review`` in a real headless browser: relabel by click and by key, undo, retrain.

Chromium from the OS packages (``apt-get install chromium``) driven by Playwright for Python;
Playwright's own browser downloads are never used. Skips with the reason where either is
missing.
"""

import os
import re
import shutil
import threading

import pytest

pytest.importorskip("flask", reason="the review extra is not installed: "
                                    "pip install 'skanimal[review]'")
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="Playwright for Python is not installed")

from tests.test_review import CLASSES, copy_setup, model_dir  # noqa: E402,F401

CHROMIUM = os.environ.get("SKANIMAL_CHROMIUM") or shutil.which("chromium") \
    or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium from the OS packages "
                                                "(apt-get install chromium)"),
]


@pytest.fixture
def browser_page():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            yield page
        finally:
            browser.close()


@pytest.fixture
def served(model_dir, tmp_path, monkeypatch):  # noqa: F811 (the imported fixture)
    """A review server with a model, serving in a thread; ``(review, review_dir, models)``."""
    from skanimal import sorting
    from skanimal.review import start

    review_dir, model = copy_setup(model_dir, tmp_path)
    monkeypatch.setattr(sorting, "DEFAULT_MIN_CONFIDENCE", 0.0)  # _review empties on re-sort
    monkeypatch.setattr(sorting, "novelty_of", lambda model: None)  # whatever the photos look like
    review = start(review_dir, model=model)
    thread = threading.Thread(target=review.run, daemon=True)
    thread.start()
    yield review, review_dir, tmp_path
    review.close()
    thread.join(10)


def figure(page, path):
    return page.locator(f'figure.photo[data-path="{path}"]')


def test_relabel_by_click_and_key_undo_and_retrain(served, browser_page):
    review, root, models = served
    page = browser_page
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(review.url)
    page.wait_for_selector("figure.photo")
    assert page.url.endswith("/") and "token" not in page.url  # the key left the address bar
    sections = page.locator("#sections section").evaluate_all(
        "els => els.map(e => e.dataset.name)")
    assert sections == ["_review"] + CLASSES
    assert page.locator('figure.photo img[loading="lazy"]').count() == 20

    # By click: select a circle photo, click the "square" button.
    first = page.locator('section[data-name="circle"] figure.photo').first
    clicked = first.get_attribute("data-path")
    first.click()
    page.locator('#keys button[data-folder="square"]').click()
    name = clicked.split("/")[-1]
    figure(page, f"square/{name}").wait_for()
    assert (root / "square" / name).is_file() and not (root / clicked).exists()

    # By key: select a cross photo, press 4 (triangle), then 0 on another (none of these).
    keyed = page.locator('section[data-name="cross"] figure.photo').first
    keyed_path = keyed.get_attribute("data-path")
    keyed.click()
    page.keyboard.press("4")
    keyed_name = keyed_path.split("/")[-1]
    figure(page, f"triangle/{keyed_name}").wait_for()
    assert (root / "triangle" / keyed_name).is_file()

    # Arrow keys move the selection; u undoes the last move.
    page.keyboard.press("ArrowLeft")
    assert page.locator("figure.photo.selected").get_attribute("data-path") == \
        f"triangle/{keyed_name}"
    page.keyboard.press("u")
    figure(page, keyed_path).wait_for()
    assert (root / keyed_path).is_file() and not (root / "triangle" / keyed_name).exists()
    assert (root / "square" / name).is_file()  # the click's move stays

    # Retrain: progress shows, a new model beside the old one, _review sorted again.
    in_review = sorted(p.name for p in (root / "_review").iterdir())
    assert in_review
    page.locator("#retrain").click()
    sync_api.expect(page.locator("#status")).to_have_text(re.compile(r"^Retrain(ed|ing failed)"),
                                                          timeout=300_000)
    assert page.locator("#status").text_content().startswith("Retrained:")
    assert (models / "animals (1).joblib").is_file()
    assert not any((root / "_review").iterdir())
    assert page.locator('section[data-name="_review"] figure.photo').count() == 0
    assert (root / "square" / name).is_file()
    assert not errors, errors


# ----------------------------------------------------- a scripted review of 200 photos


def make_pile(root, n_per_class=50):
    """200 photos in ``_review`` with predictions.csv: most predicted right, 10 wrong (to
    relabel), 5 to throw away; empty class folders. Returns ``(root, truth, plan)``:
    ``truth[name]`` the folder each photo must end in, ``plan[name]`` the script's action."""
    import csv
    from pathlib import Path

    from skanimal import make_shapes

    made = make_shapes(root / "made", n_per_class=n_per_class, image_size=24)
    review = root / "sorted"
    (review / "_review").mkdir(parents=True)
    for name in CLASSES:
        (review / name).mkdir()
    truth, plan, rows = {}, {}, []
    for i, path in enumerate(sorted(made.paths, key=lambda p: Path(p).name)):
        path = Path(path)
        true = path.parent.name
        target = review / "_review" / path.name
        path.rename(target)
        predicted = true
        if i % 20 == 3:  # 10 wrong predictions: a person relabels them
            predicted = CLASSES[(CLASSES.index(true) + 1) % len(CLASSES)]
            plan[path.name] = "relabel"
        elif i % 40 == 7:  # 5 photos to throw away
            plan[path.name] = "trash"
        else:
            plan[path.name] = "accept"
        truth[path.name] = "_trash" if plan[path.name] == "trash" else true
        rows.append({"source": path, "destination": target, "label_1": predicted,
                     "probability_1": 0.5 + (i % 10) / 25, "status": "review"})
    with open(review / "predictions.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return review, truth, plan


def serve_pile(root):
    from skanimal.review import start

    review = start(root)
    thread = threading.Thread(target=review.run, daemon=True)
    thread.start()
    return review, thread


def check_on_disk(root, truth, originals):
    """Every photo once, in the folder it must be in, with its bytes."""
    found = {p.name: p for p in root.rglob("*.jpg") if ".skanimal" not in p.parts}
    assert sorted(found) == sorted(truth)
    for name, folder in truth.items():
        assert found[name].parent.name == folder, name
        assert found[name].read_bytes() == originals[name], name


def scroll_all(page):
    """Scroll to the end until every thumbnail is rendered (the page adds them as you
    scroll)."""
    count = -1
    while page.locator("figure.photo").count() != count:
        count = page.locator("figure.photo").count()
        page.mouse.wheel(0, 100_000)
        page.wait_for_timeout(200)
    page.mouse.wheel(0, -100_000)


def key_for(folder):
    return "Delete" if folder == "_trash" else str(CLASSES.index(folder) + 1)


def test_scripted_review_of_200_photos_selection_vs_one_key_per_photo(tmp_path, browser_page):
    import time

    page = browser_page
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    results = {}

    # --- with the selection keys: relabels and trash first, then a, Enter for the rest
    root, truth, plan = make_pile(tmp_path / "selection")
    originals = {p.name: p.read_bytes() for p in (root / "_review").iterdir()}
    review, thread = serve_pile(root)
    try:
        page.goto(review.url)
        page.wait_for_selector("figure.photo")
        assert page.locator("#advance").is_checked()  # the default: advance after a move
        started = time.perf_counter()
        scroll_all(page)
        for name, action in sorted(plan.items()):
            if action == "accept":
                continue
            page.locator(f'figure.photo[data-path="_review/{name}"]').click()
            page.keyboard.press(key_for(truth[name]))
            page.locator(f'figure.photo[data-path="{truth[name]}/{name}"]').wait_for()
        # The newest step back with u, then done again (undo selects what it put back).
        last = max(n for n, a in plan.items() if a != "accept")
        page.keyboard.press("u")
        page.locator(f'figure.photo[data-path="_review/{last}"]').wait_for()
        assert (root / "_review" / last).is_file()
        page.keyboard.press(key_for(truth[last]))
        page.locator(f'figure.photo[data-path="{truth[last]}/{last}"]').wait_for()
        # Every photo still in _review: a, then Enter accepts each one's prediction.
        page.keyboard.press("a")
        n_accept = sum(a == "accept" for a in plan.values())
        sync_api.expect(page.locator("#selection")).to_have_text(f"{n_accept} photos selected")
        page.keyboard.press("Enter")
        sync_api.expect(page.locator("#status")).to_contain_text(f"Accepted {n_accept} photos")
        elapsed = time.perf_counter() - started
        check_on_disk(root, truth, originals)
        # Undo takes the whole accept back in one step, then a second u the last trash.
        page.keyboard.press("u")
        sync_api.expect(page.locator("#status")).to_contain_text(f"{n_accept} photos put back")
        assert len(list((root / "_review").iterdir())) == n_accept
        page.keyboard.press("u")
        page.locator(f'figure.photo[data-path="_review/{last}"]').wait_for()
        assert len(list((root / "_review").iterdir())) == n_accept + 1
        results["selection"] = elapsed
    finally:
        review.close()
        thread.join(10)

    # --- one key per photo, in page order (the selection advances after each move)
    root, truth, plan = make_pile(tmp_path / "one-key")
    originals = {p.name: p.read_bytes() for p in (root / "_review").iterdir()}
    review, thread = serve_pile(root)
    try:
        page.goto(review.url)
        page.wait_for_selector("figure.photo")
        page.locator("figure.photo").first.click()
        started = time.perf_counter()
        for _ in range(len(truth)):
            name = page.locator("figure.photo.selected").get_attribute("data-path").split("/")[-1]
            page.keyboard.press(key_for(truth[name]))
            page.locator(f'figure.photo[data-path="{truth[name]}/{name}"]').wait_for()
        elapsed = time.perf_counter() - started
        check_on_disk(root, truth, originals)
        results["one key"] = elapsed
    finally:
        review.close()
        thread.join(10)

    n = len(truth)
    for how, seconds in results.items():
        print(f"\n{how}: {n} photos in {seconds:.1f} s = {n / seconds * 60:,.0f} photos/minute")
    assert not errors, errors


def test_advance_choice_and_undo_through_every_move(tmp_path, browser_page):
    """Issue 22.6: with 'advance after a move' off, a second key relabels the same photo;
    with it on (the default), the next one. u steps back through every move, newest
    first."""
    page = browser_page
    root, truth, plan = make_pile(tmp_path, n_per_class=3)
    review, thread = serve_pile(root)
    try:
        page.goto(review.url)
        page.wait_for_selector("figure.photo")
        first, second = page.locator("figure.photo").evaluate_all(
            "els => els.slice(0, 2).map(e => e.dataset.path.split('/')[1])")
        page.locator("#advance").uncheck()
        page.locator(f'figure.photo[data-path="_review/{first}"]').click()
        page.keyboard.press("1")
        page.locator(f'figure.photo[data-path="circle/{first}"]').wait_for()
        assert page.locator("figure.photo.selected").get_attribute("data-path") == \
            f"circle/{first}"  # it stayed
        page.keyboard.press("2")  # relabels the same photo
        page.locator(f'figure.photo[data-path="cross/{first}"]').wait_for()
        page.locator("#advance").check()
        page.keyboard.press("3")
        page.locator(f'figure.photo[data-path="square/{first}"]').wait_for()
        assert page.locator("figure.photo.selected").get_attribute("data-path") == \
            f"_review/{second}"  # advanced
        page.keyboard.press("4")
        page.locator(f'figure.photo[data-path="triangle/{second}"]').wait_for()
        assert (root / "triangle" / second).is_file() and (root / "square" / first).is_file()
        for where in (f"_review/{second}", f"cross/{first}", f"circle/{first}",
                      f"_review/{first}"):
            page.keyboard.press("u")
            page.locator(f'figure.photo[data-path="{where}"]').wait_for()
            assert (root / where).is_file()
        assert page.locator("#undo").is_disabled()
        assert sorted(p.name for p in (root / "_review").iterdir()) == sorted(truth)
    finally:
        review.close()
        thread.join(10)
