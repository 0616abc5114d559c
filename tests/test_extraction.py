"""BottleneckFeatures.extract: unreadable images skipped and listed, cache hits counted,
tiny images named, the images fit saw recognised."""

import warnings

import numpy as np
import pytest
from PIL import Image

from skanimal import BottleneckFeatures, ImageLoadError
from skanimal.exceptions import SmallImageWarning

from .conftest import SMALL


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Four good 48-px PNGs, a file that is not an image and a truncated JPEG."""
    folder = tmp_path_factory.mktemp("extract")
    rng = np.random.default_rng(0)
    good = []
    for i in range(4):
        path = folder / f"good_{i}.png"
        Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(path)
        good.append(str(path))
    not_image = folder / "notes.jpg"
    not_image.write_text("not a picture")
    truncated = folder / "truncated.jpg"
    Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(folder / "full.jpg")
    truncated.write_bytes((folder / "full.jpg").read_bytes()[:200])
    return good, [str(not_image), str(truncated)]


def _features(cache):
    return BottleneckFeatures(weights=None, image_size=SMALL, cache=cache).fit()


def test_skip_lists_every_unreadable_image_and_keeps_the_rest(images, tmp_path):
    good, bad = images
    X = [good[0], bad[0], good[1], good[2], bad[1], good[3]]
    features = _features(tmp_path / "cache")
    extraction = features.extract(X, on_error="skip")
    assert extraction.kept.tolist() == [0, 2, 3, 5]
    assert [(e.path, e.index) for e in extraction.errors] == [(bad[0], 1), (bad[1], 4)]
    np.testing.assert_allclose(extraction.features, features.transform(good), rtol=1e-5)
    # The CLI's wording names the file, not its position in X.
    message = extraction.errors[0].file_message()
    assert bad[0] in message and "X[1]" not in message and "X[1]" in str(extraction.errors[0])
    with pytest.raises(ImageLoadError, match="notes.jpg"):
        features.extract(X)  # on_error="raise", as transform


def test_extract_counts_cache_hits_and_gives_content_keys(images, tmp_path):
    good, _ = images
    features = _features(tmp_path / "cache")
    cold = features.extract(good)
    warm = features.extract(good + good[:1])
    assert (cold.n_cached, warm.n_cached) == (0, 5)
    assert warm.content_keys[0] == warm.content_keys[4] == cold.content_keys[0]
    assert len(set(cold.content_keys)) == 4
    assert _features(False).extract(good).n_cached == 0  # no cache, no hits, same keys
    assert _features(False).extract(good).content_keys == cold.content_keys


def test_images_far_smaller_than_the_input_are_named(tmp_path):
    tiny = tmp_path / "tiny.jpg"
    Image.new("RGB", (1, 1), "red").save(tiny)
    fine = tmp_path / "fine.jpg"
    Image.new("RGB", (30, 30), "red").save(fine)
    features = BottleneckFeatures(weights=None, image_size=(64, 64), cache=tmp_path / "c").fit()
    for _ in range(2):  # cold, then from the cache: the warning does not depend on it
        with pytest.warns(SmallImageWarning, match=r"1 image file.*64x64.*tiny\.jpg' \(1x1\)"):
            features.transform([str(tiny), str(fine)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", SmallImageWarning)
        features.transform([str(fine)])


def test_fit_records_the_training_images_and_fitted_on_recognises_them(images, tmp_path):
    good, _ = images
    train = good[:3]
    by_fit = _features(tmp_path / "c").fit(train)
    by_fit_transform = BottleneckFeatures(weights=None, image_size=SMALL, cache=False)
    by_fit_transform.fit_transform(train)
    keys = by_fit.extract(good).content_keys
    for features in (by_fit, by_fit_transform):
        assert features.training_hashes_.dtype == np.uint64
        assert len(features.training_hashes_) == 3
        assert features.fitted_on(keys).tolist() == [True, True, True, False]
    assert _features(False).fitted_on(keys) is None  # fit() without images knows none
