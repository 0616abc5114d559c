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
