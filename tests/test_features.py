"""BottleneckFeatures: equality with direct Keras calls, parameters, errors, pickling."""

import builtins
import os
import pickle
from collections import Counter

import keras
import numpy as np
import pytest
from PIL import Image
from sklearn.base import clone

import skanimal.backbones
from skanimal import (
    AugmentedImage,
    BottleneckFeatures,
    ImageAugmentation,
    ImageLoadError,
    WeightsUnavailableError,
    imagenet_available,
)
from skanimal.backbones import BACKBONES, get_spec

from .conftest import SMALL


@pytest.fixture(scope="module")
def vgg16_weights_file(tmp_path_factory):
    """Weights of a randomly initialised VGG16 saved to a file: both sides load the same."""
    model = keras.applications.VGG16(include_top=False, weights=None, input_shape=(*SMALL, 3))
    path = tmp_path_factory.mktemp("weights") / "vgg16_small.weights.h5"
    model.save_weights(path)
    return path


@pytest.fixture(scope="module")
def pixels():
    return np.random.default_rng(0).integers(0, 256, size=(5, *SMALL, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def png_paths(tmp_path_factory, pixels):
    folder = tmp_path_factory.mktemp("pngs")
    paths = []
    for i, image in enumerate(pixels):
        path = folder / f"img_{i}.png"
        Image.fromarray(image).save(path)  # lossless: decoding gives back the same pixels
        paths.append(str(path))
    return paths


def _direct_keras(weights_file, pixels, pooling, backbone="vgg16"):
    spec = get_spec(backbone)
    model = spec.keras_constructor()(
        include_top=False, weights=str(weights_file), input_shape=pixels.shape[1:], pooling=pooling
    )
    batch = spec.preprocess_input()(pixels.astype("float32"))
    return model.predict(batch, verbose=0).reshape(len(pixels), -1)


@pytest.mark.parametrize("pooling", [None, "avg", "max"])
@pytest.mark.parametrize("source", ["paths", "array"])
def test_features_equal_direct_keras_vgg16(vgg16_weights_file, pixels, png_paths, pooling, source):
    expected = _direct_keras(vgg16_weights_file, pixels, pooling)
    transformer = BottleneckFeatures(
        weights=vgg16_weights_file, image_size=SMALL, pooling=pooling, cache=False
    )
    X = png_paths if source == "paths" else pixels
    features = transformer.fit_transform(X)
    assert features.dtype == np.float32
    assert features.shape == (len(pixels), 512)  # 1×1×512 at 32 px, pooled or flattened
    np.testing.assert_allclose(features, expected, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("backbone", [pytest.param("resnet50", marks=pytest.mark.slow),
                                      "mobilenet_v2",
                                      pytest.param("efficientnet_b0", marks=pytest.mark.slow)])
def test_other_backbones_equal_direct_keras(backbone, tmp_path, pixels):
    spec = get_spec(backbone)
    reference = spec.keras_constructor()(include_top=False, weights=None, input_shape=(*SMALL, 3))
    weights_file = tmp_path / f"{backbone}.weights.h5"
    reference.save_weights(weights_file)
    expected = _direct_keras(weights_file, pixels, "avg", backbone=backbone)
    features = BottleneckFeatures(
        backbone, weights=weights_file, image_size=SMALL, pooling="avg", cache=False
    ).fit_transform(pixels)
    np.testing.assert_allclose(features, expected, atol=1e-4, rtol=1e-4)


def test_default_is_vgg16_at_224_average_pooled_512():
    transformer = BottleneckFeatures(weights=None, cache=False).fit()
    assert transformer.feature_shape_ == (512,)
    assert transformer.n_features_out_ == 512
    names = transformer.get_feature_names_out()
    assert len(names) == 512 and names[0] == "bottleneckfeatures0"
    # the reference article's flattened map is one parameter away
    flattened = BottleneckFeatures(weights=None, cache=False, pooling=None).fit()
    assert flattened.feature_shape_ == (7, 7, 512) and flattened.n_features_out_ == 25088


def test_registry_offers_required_backbones():
    assert {"vgg16", "resnet50", "mobilenet_v2", "efficientnet_b0"} <= set(BACKBONES)
    for spec in BACKBONES.values():
        assert callable(spec.keras_constructor()) and callable(spec.preprocess_input())


def _forget_built_backbones(monkeypatch):
    """An empty backbone registry until the test ends, so the next use builds anew."""
    monkeypatch.setattr(skanimal.backbones, "_REGISTRY", {})


def test_random_weights_are_deterministic_but_not_constant(pixels, monkeypatch):
    transformer = BottleneckFeatures(weights=None, image_size=SMALL, cache=False)
    first = transformer.fit_transform(pixels)
    _forget_built_backbones(monkeypatch)  # force a rebuild: Keras' own random init would differ
    second = clone(transformer).fit_transform(pixels)
    np.testing.assert_array_equal(first, second)
    assert np.std(first) > 0


def test_clones_share_one_backbone_and_pickles_carry_no_weights(pixels):
    transformer = BottleneckFeatures(weights=None, image_size=SMALL, cache=False).fit(pixels)
    other = clone(transformer).fit(pixels)
    assert other._get_backbone() is transformer._get_backbone()
    payload = pickle.dumps(transformer)
    assert len(payload) < 5_000  # VGG16's weights are 58 MB
    restored = pickle.loads(payload)
    np.testing.assert_array_equal(restored.transform(pixels), transformer.transform(pixels))


def test_pandas_series_and_pathlike_inputs(png_paths):
    pd = pytest.importorskip("pandas")
    from pathlib import Path

    transformer = BottleneckFeatures(weights=None, image_size=SMALL, cache=False).fit()
    from_list = transformer.transform(png_paths)
    np.testing.assert_array_equal(transformer.transform(pd.Series(png_paths)), from_list)
    np.testing.assert_array_equal(transformer.transform([Path(p) for p in png_paths]), from_list)


def test_batch_size_does_not_change_features(png_paths):
    one = BottleneckFeatures(weights=None, image_size=SMALL, cache=False, batch_size=1)
    many = BottleneckFeatures(weights=None, image_size=SMALL, cache=False, batch_size=4)
    np.testing.assert_allclose(one.fit_transform(png_paths), many.fit_transform(png_paths),
                               atol=1e-4, rtol=1e-5)


def test_missing_file_error_names_file_and_index(png_paths, tmp_path):
    transformer = BottleneckFeatures(weights=None, image_size=SMALL, cache=False).fit()
    missing = str(tmp_path / "nope.jpg")
    with pytest.raises(ImageLoadError) as info:
        transformer.transform([png_paths[0], missing])
    assert "nope.jpg" in str(info.value) and "1" in str(info.value)
    assert info.value.index == 1


@pytest.mark.parametrize("cache", [False, True])
def test_non_image_and_directory_errors(tmp_path, png_paths, cache):
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    transformer = BottleneckFeatures(weights=None, image_size=SMALL, cache=cache).fit()
    with pytest.raises(ImageLoadError, match="notes.jpg") as info:
        transformer.transform([png_paths[0], png_paths[1], str(text)])
    assert info.value.index == 2
    with pytest.raises(ImageLoadError, match="directory") as info:
        transformer.transform([str(tmp_path)])
    assert info.value.index == 0


@pytest.mark.parametrize(
    "params, match",
    [
        ({"backbone": "alexnet"}, "backbone"),
        ({"pooling": "mean"}, "pooling"),
        ({"precision": "float16"}, "precision"),
        ({"batch_size": 0}, "batch_size"),
        ({"image_size": (8, 8)}, "image_size"),
        ({"cache": 3.5}, "cache"),
    ],
)
def test_bad_parameters_are_named(params, match):
    with pytest.raises(ValueError, match=match):
        BottleneckFeatures(weights=None, **params).fit()


@pytest.mark.parametrize("cache", [True, False], ids=["cache-on", "cache-off"])
def test_missing_weights_file_is_a_clear_error(tmp_path, cache):
    with pytest.raises(WeightsUnavailableError, match=r"no_such\.h5': no such file"):
        BottleneckFeatures(weights=tmp_path / "no_such.h5", image_size=SMALL, cache=cache).fit()


@pytest.mark.parametrize("cache", [True, False], ids=["cache-on", "cache-off"])
def test_weights_of_a_wrong_type_are_named(cache):
    # The cache fingerprint reads `weights` first when the cache is on: same error either way.
    with pytest.raises(ValueError, match="weights must be 'imagenet', None or a path"):
        BottleneckFeatures(weights=123, image_size=SMALL, cache=cache).fit()


def test_imagenet_download_failure_explains_offline_use(monkeypatch, tmp_path):
    # An empty Keras home guarantees nothing cached; this environment has no network.
    import keras.src.utils.file_utils as file_utils

    def refuse(*args, **kwargs):
        raise Exception("URL fetch failure on https://example.invalid/vgg16_notop.h5: None -- "
                        "[Errno -2] Name or service not known")

    monkeypatch.setattr(file_utils, "get_file", refuse)
    monkeypatch.setattr(keras.utils, "get_file", refuse)
    with pytest.raises(WeightsUnavailableError, match="offline|weights="):
        BottleneckFeatures(weights="imagenet", image_size=SMALL).fit()


def _keras_download(monkeypatch, fetch):
    """Route Keras' ImageNet download (and cache lookup) through ``fetch``."""
    import keras.src.utils.file_utils as file_utils

    monkeypatch.setattr(file_utils, "get_file", fetch)
    monkeypatch.setattr(keras.utils, "get_file", fetch)


def test_imagenet_available_is_false_offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise Exception("URL fetch failure on https://example.invalid/vgg16_notop.h5: None -- "
                        "[Errno -2] Name or service not known")

    _keras_download(monkeypatch, refuse)
    assert imagenet_available(image_size=SMALL) is False


def test_imagenet_available_builds_the_backbone_the_transformer_then_reuses(
        monkeypatch, vgg16_weights_file, pixels):
    from skanimal.backbones import get_backbone

    requested = []

    def serve_local_copy(fname, *args, **kwargs):  # what Keras does with a cached download
        requested.append(fname)
        return str(vgg16_weights_file)

    _keras_download(monkeypatch, serve_local_copy)
    # Until the test ends: later tests must not find an "imagenet" backbone of random weights.
    _forget_built_backbones(monkeypatch)
    assert imagenet_available(image_size=SMALL) is True
    assert len(requested) == 1 and "notop" in requested[0]
    built = get_backbone("vgg16", weights="imagenet", image_size=SMALL)
    features = BottleneckFeatures(image_size=SMALL, cache=False).fit_transform(pixels)
    assert len(requested) == 1  # neither call loaded the weights again
    expected = _direct_keras(vgg16_weights_file, pixels, "avg")
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4)
    assert get_backbone("vgg16", weights="imagenet", image_size=SMALL) is built


def test_bfloat16_precision_returns_float32_close_to_float32(pixels):
    exact = BottleneckFeatures(weights=None, image_size=SMALL, cache=False).fit_transform(pixels)
    fast = BottleneckFeatures(weights=None, image_size=SMALL, cache=False,
                              precision="bfloat16").fit_transform(pixels)
    assert fast.dtype == np.float32 and fast.shape == exact.shape
    assert not np.array_equal(fast, exact)  # really computed in another precision
    correlation = np.corrcoef(fast.ravel(), exact.ravel())[0, 1]
    assert correlation > 0.99


def test_fitted_transformer_records_versions_and_refuses_other_feature_formats(pixels):
    import keras
    import sklearn

    from skanimal import IncompatibleModelError, __version__
    from skanimal.cache import FEATURE_FORMAT_VERSION

    transformer = BottleneckFeatures(weights=None, image_size=SMALL, cache=False).fit()
    assert transformer.versions_ == {"skanimal": __version__, "keras": keras.__version__,
                                     "scikit-learn": sklearn.__version__}
    assert transformer.feature_format_version_ == FEATURE_FORMAT_VERSION
    pickle.loads(pickle.dumps(transformer))  # same format: loads
    transformer.feature_format_version_ = FEATURE_FORMAT_VERSION + 1
    with pytest.raises(IncompatibleModelError, match="format"):
        pickle.loads(pickle.dumps(transformer))


def test_image_size_is_a_fitted_attribute():
    default = BottleneckFeatures(weights=None, cache=False)
    assert not hasattr(default, "image_size_")
    assert default.fit().image_size_ == (224, 224)
    assert BottleneckFeatures("inception_v3", weights=None, cache=False).fit().image_size_ == (
        299, 299)
    square = BottleneckFeatures(weights=None, image_size=np.int64(40), cache=False).fit()
    assert square.image_size_ == (40, 40) and all(type(s) is int for s in square.image_size_)
    assert pickle.loads(pickle.dumps(square)).image_size_ == (40, 40)


def _count_opens(monkeypatch, paths):
    """Count how often each of ``paths`` is opened from now on (any mode)."""
    wanted = {os.path.abspath(p) for p in paths}
    opened = Counter()
    real_open = builtins.open

    def counting_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and os.path.abspath(file) in wanted:
            opened[os.path.abspath(file)] += 1
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    return opened


@pytest.mark.parametrize("cache", ["cold", "warm", "off"])
def test_a_transform_reads_each_image_file_once(png_paths, tmp_path, monkeypatch, cache):
    augment = ImageAugmentation(rotation=30)
    X = [*png_paths[:4], AugmentedImage(png_paths[4], augment, 1),
         AugmentedImage(png_paths[4], augment, 2), png_paths[0]]  # a duplicate path too
    transformer = BottleneckFeatures(weights=None, image_size=SMALL,
                                     cache=False if cache == "off" else tmp_path / "cache")
    reference = BottleneckFeatures(weights=None, image_size=SMALL, cache=False).fit_transform(X)
    if cache == "warm":
        transformer.fit_transform(X)
    transformer.fit()
    opened = _count_opens(monkeypatch, png_paths)
    features = transformer.transform(X)
    # One read per item of X (an augmented copy reads its source): hashed for the cache
    # key and, on a miss, decoded from the same bytes.
    assert opened == Counter(os.path.abspath(getattr(x, "source", x)) for x in X)
    np.testing.assert_allclose(features, reference, rtol=1e-5, atol=1e-6)


def test_cnn_batches_and_duplicates_with_a_cache(png_paths, tmp_path, monkeypatch):
    seen = []
    original = skanimal.backbones.Backbone.features
    monkeypatch.setattr(skanimal.backbones.Backbone, "features",
                        lambda self, pixels: seen.append(len(pixels)) or original(self, pixels))
    X = [png_paths[0], png_paths[1], png_paths[0], png_paths[2], png_paths[1], png_paths[3],
         png_paths[0]]
    transformer = BottleneckFeatures(weights=None, image_size=SMALL, batch_size=2,
                                     cache=tmp_path / "cache")
    features = transformer.fit_transform(X)
    assert seen == [2, 2]  # four distinct images, each through the CNN once
    reference = BottleneckFeatures(weights=None, image_size=SMALL, cache=False).fit_transform(X)
    np.testing.assert_allclose(features, reference, rtol=1e-5, atol=1e-6)
    seen.clear()
    more = [png_paths[4], png_paths[3], png_paths[4]]
    np.testing.assert_array_equal(transformer.transform(more)[[0, 2]],
                                  transformer.transform(more[:1])[[0, 0]])
    assert seen == [1]  # the new image once; the warm ones came from the cache


def test_a_model_pickled_before_a_parameter_existed_loads_with_its_default():
    import pickle

    features = BottleneckFeatures(weights=None, image_size=SMALL, cache=False).fit()
    state = features.__getstate__()
    del state["engine"]  # as pickled by a skanimal without the engine parameter
    restored = BottleneckFeatures.__new__(BottleneckFeatures)
    restored.__setstate__(state)
    assert restored.engine == "tensorflow"
    assert pickle.loads(pickle.dumps(restored)).get_params()["engine"] == "tensorflow"
