"""Weights files: which backbone a file fits, misspelt names, offline errors, finding a file."""

import hashlib
import urllib.error
import warnings

import numpy as np
import pytest

from skanimal import BottleneckFeatures, WeightsUnavailableError
from skanimal.backbones import BACKBONES
from skanimal.exceptions import WeightsMovedError
from skanimal.weights import (
    backbone_for_weights_file,
    find_weights_file,
    keras_cache_dirs,
    weights_identity,
)

from .conftest import ANIMALS_DEV, SMALL

#: The shared, real MobileNetV2 weights (absent in a user's clone: tests skip).
MOBILENET_WEIGHTS = (ANIMALS_DEV.parents[1] / "weights"
                     / "mobilenet_v2_1.0_pretrained_notop.weights.h5")


@pytest.fixture(scope="module")
def mobilenet_weights():
    if not MOBILENET_WEIGHTS.is_file():
        pytest.skip(f"shared weights not available at {MOBILENET_WEIGHTS}")
    return str(MOBILENET_WEIGHTS)


@pytest.fixture(scope="module")
def tiny_weights_file(tmp_path_factory):
    """Weights of a two-layer model: a real Keras weights file that fits no backbone."""
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    path = tmp_path_factory.mktemp("tiny") / "tiny.weights.h5"
    model.save_weights(path)
    return path


# -- a weights file for another backbone -----------------------------------------------------


def test_weights_of_another_backbone_give_one_line_naming_the_one_they_fit(mobilenet_weights):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(WeightsUnavailableError) as info:
            BottleneckFeatures("vgg16", weights=mobilenet_weights, image_size=SMALL,
                               cache=False).fit()
    message = str(info.value)
    assert "\n" not in message and len(message) < 400, message
    assert "does not fit backbone 'vgg16'" in message
    assert "mobilenet_v2" in message  # the backbone the file fits
    assert "mobilenet_v2_1.0_pretrained_notop.weights.h5" in message
    assert [str(w.message) for w in caught] == []


def test_backbone_for_weights_file_reads_the_file_not_a_model(mobilenet_weights,
                                                             tiny_weights_file, tmp_path):
    assert backbone_for_weights_file(mobilenet_weights) == "mobilenet_v2"
    assert backbone_for_weights_file(tiny_weights_file) is None
    not_hdf5 = tmp_path / "notes.h5"
    not_hdf5.write_text("not an HDF5 file")
    assert backbone_for_weights_file(not_hdf5) is None


def test_a_file_that_fits_no_backbone_is_one_line_without_keras_layer_lists(tiny_weights_file):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(WeightsUnavailableError) as info:
            BottleneckFeatures("mobilenet_v2", weights=tiny_weights_file, image_size=SMALL,
                               cache=False).fit()
    message = str(info.value)
    assert "\n" not in message and len(message) < 400, message
    assert "does not fit backbone 'mobilenet_v2'" in message and "tiny.weights.h5" in message
    assert "seems to fit" not in message  # no registered backbone has 26 weights
    assert [str(w.message) for w in caught] == []


def test_the_right_weights_file_loads_quietly(mobilenet_weights):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        features = BottleneckFeatures("mobilenet_v2", weights=mobilenet_weights,
                                      image_size=SMALL, pooling="avg",
                                      cache=False).fit_transform(np.zeros((1, *SMALL, 3)))
    assert features.shape == (1, 1280)
    assert [str(w.message) for w in caught] == []


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_registered_weight_counts_match_keras(name):
    # The table backbone_for_weights_file compares with, checked against Keras itself.
    spec = BACKBONES[name]
    size = max(spec.min_size, 75)
    model = spec.keras_constructor()(include_top=False, weights=None, input_shape=(size, size, 3))
    assert spec.n_weights == model.count_params()


# -- a misspelt "imagenet" -------------------------------------------------------------------


@pytest.mark.parametrize("typo", ["imagnet", "ImageNet", "imagenet ", "image-net", "imagenett"])
def test_a_near_miss_of_imagenet_suggests_it(typo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WeightsUnavailableError, match="did you mean 'imagenet'"):
        BottleneckFeatures(weights=typo, image_size=SMALL, cache=False).fit()


def test_an_existing_file_named_like_imagenet_is_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "imagnet").write_bytes(b"some weights")
    assert weights_identity("imagnet") == "sha256:" + hashlib.sha256(b"some weights").hexdigest()


def test_an_unrelated_missing_path_gets_no_imagenet_suggestion(tmp_path):
    with pytest.raises(WeightsUnavailableError) as info:
        weights_identity(tmp_path / "vgg16_notop.h5")
    assert "did you mean" not in str(info.value)


# -- offline "imagenet" ----------------------------------------------------------------------


@pytest.fixture
def offline_keras(monkeypatch, tmp_path):
    """Keras with an empty home folder and a network that refuses every download."""
    import keras.src.backend.config as keras_config
    import keras.src.utils.file_utils as file_utils

    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path / "keras-home"))

    def refuse(url, *args, **kwargs):  # what urllib raises without a network
        raise urllib.error.URLError(OSError(-2, "Name or service not known"))

    monkeypatch.setattr(file_utils, "urlretrieve", refuse)
    return tmp_path / "keras-home"


def test_offline_imagenet_prints_nothing_to_stdout_and_names_the_parameter(offline_keras,
                                                                          capsys):
    with pytest.raises(WeightsUnavailableError) as info:
        BottleneckFeatures(weights="imagenet", image_size=SMALL, cache=False).fit()
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Downloading data from" not in captured.err
    message = str(info.value)
    assert "BottleneckFeatures(weights='/path/to/" in message
    assert info.value.backbone == "vgg16" and info.value.download_error


def test_the_command_line_words_the_offline_advice_with_its_option(offline_keras):
    from skanimal.cli.errors import for_the_shell

    with pytest.raises(WeightsUnavailableError) as info:
        BottleneckFeatures(weights="imagenet", image_size=SMALL, cache=False).fit()
    assert "--weights" not in str(info.value)  # the library names its parameter
    cli = for_the_shell(info.value)
    assert "--weights PATH" in cli and "BottleneckFeatures(" not in cli
    assert "vgg16" in cli and "\n" not in cli


# -- finding a weights file by content -------------------------------------------------------


def _digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_find_weights_file_searches_files_and_folders(tmp_path):
    wanted, other = b"the weights we trained with", b"other weights"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "other.h5").write_bytes(other)
    (tmp_path / "b" / "renamed.weights.h5").write_bytes(wanted)
    found = find_weights_file(_digest(wanted), [tmp_path / "a", tmp_path / "b"],
                              search_keras_cache=False)
    assert found == str(tmp_path / "b" / "renamed.weights.h5")
    assert find_weights_file(_digest(wanted), [tmp_path / "b" / "renamed.weights.h5"],
                             search_keras_cache=False) == found
    assert find_weights_file(_digest(b"nothing like it"), [tmp_path / "a", tmp_path / "b"],
                             search_keras_cache=False) is None
    # A size hint skips files of another size without reading them.
    assert find_weights_file(_digest(wanted), [tmp_path / "b"], size=len(wanted) + 1,
                             search_keras_cache=False) is None
    # Missing places are no error: there is nothing to find there.
    assert find_weights_file(_digest(wanted), [tmp_path / "gone"],
                             search_keras_cache=False) is None


def test_find_weights_file_looks_in_keras_cache(tmp_path, monkeypatch):
    home = tmp_path / "keras-home"
    (home / "models").mkdir(parents=True)
    (home / "models" / "vgg16_notop.h5").write_bytes(b"cached by keras")
    monkeypatch.setenv("KERAS_HOME", str(home))
    assert str(home / "models") in keras_cache_dirs()
    assert find_weights_file(_digest(b"cached by keras")) == str(home / "models" / "vgg16_notop.h5")
    assert find_weights_file(_digest(b"cached by keras"), search_keras_cache=False) is None


# -- a model's weights file moved ------------------------------------------------------------


@pytest.fixture(scope="module")
def random_mobilenet(tmp_path_factory):
    """A real MobileNetV2 weights file (random values): 9 MB, written in a second."""
    import keras

    model = keras.applications.MobileNetV2(include_top=False, weights=None,
                                           input_shape=(*SMALL, 3))
    path = tmp_path_factory.mktemp("mobilenet") / "mobilenet_v2_random.weights.h5"
    model.save_weights(path)
    return path


def _pixels(seed, n=3):
    return np.random.default_rng(seed).integers(0, 256, (n, *SMALL, 3), dtype=np.uint8)


def _fitted_on_a_copy(random_mobilenet, tmp_path, cache=True):
    import shutil

    (tmp_path / "weights").mkdir()
    weights = tmp_path / "weights" / "mine.weights.h5"
    shutil.copy(random_mobilenet, weights)
    features = BottleneckFeatures("mobilenet_v2", weights=str(weights), image_size=SMALL,
                                  pooling="avg", cache=tmp_path / "cache" if cache else False)
    return features.fit(), weights


def test_a_moved_weights_file_is_found_or_asked_for(random_mobilenet, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras-home"))
    features, weights = _fitted_on_a_copy(random_mobilenet, tmp_path)
    assert features.weights_identity_ == weights_identity(random_mobilenet)
    seen, unseen = _pixels(0), _pixels(1)
    expected_seen, expected_unseen = features.transform(seen), features.transform(unseen)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    weights.rename(elsewhere / "renamed.h5")
    # Cached images need no weights file: the cache is keyed by the recorded content.
    np.testing.assert_array_equal(features.transform(seen), expected_seen)
    features.set_params(cache=False)
    with pytest.raises(WeightsMovedError, match="no longer exists.*relocate_weights") as info:
        features.transform(unseen)
    assert "\n" not in str(info.value) and "--weights" not in str(info.value)
    # the facts the command line words its own way
    assert info.value.path == str(weights) and info.value.identity == features.weights_identity_
    assert str(weights.parent) in info.value.places

    features.relocate_weights(elsewhere)  # a folder: found by content, whatever its name
    assert features.weights == str(elsewhere / "renamed.h5")
    np.testing.assert_allclose(features.transform(unseen), expected_unseen, rtol=1e-5)


def test_a_renamed_weights_file_beside_the_old_path_is_used_with_a_warning(random_mobilenet,
                                                                          tmp_path):
    features, weights = _fitted_on_a_copy(random_mobilenet, tmp_path, cache=False)
    expected = features.transform(_pixels(2))
    weights.rename(weights.with_name("renamed.h5"))
    with pytest.warns(UserWarning, match="renamed.h5.*same content"):
        np.testing.assert_allclose(features.transform(_pixels(2)), expected, rtol=1e-5)


def test_a_weights_file_in_keras_cache_is_found(random_mobilenet, tmp_path, monkeypatch):
    features, weights = _fitted_on_a_copy(random_mobilenet, tmp_path, cache=False)
    (tmp_path / "keras" / "models").mkdir(parents=True)
    weights.rename(tmp_path / "keras" / "models" / "mobilenet_v2_notop.h5")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.warns(UserWarning, match="mobilenet_v2_notop.h5"):
        assert features.transform(_pixels(3)).shape == (3, 1280)


def test_relocating_to_other_weights_is_refused(random_mobilenet, tiny_weights_file, tmp_path):
    features, weights = _fitted_on_a_copy(random_mobilenet, tmp_path, cache=False)
    with pytest.raises(WeightsUnavailableError, match="is not the weights file this model"):
        features.relocate_weights(tiny_weights_file)
    with pytest.raises(WeightsUnavailableError, match="holds no file with the content"):
        features.relocate_weights(tiny_weights_file.parent)
    assert features.weights == str(weights)
    # Changing the file under the model is caught before it gives mismatched features.
    weights.write_bytes(tiny_weights_file.read_bytes())
    with pytest.raises(WeightsUnavailableError, match="not the weights this model was fitted"):
        features.transform(_pixels(4))


# -- a weights file is recognised by its content, not its name --------------------------------


def _features_with(path, pixels):
    return BottleneckFeatures("mobilenet_v2", weights=str(path), image_size=SMALL,
                              cache=False).fit().transform(pixels)


def test_the_shared_weights_renamed_weights_h5_load(mobilenet_v2_weights, tmp_path):
    import shutil

    from skanimal.weights import weights_layout

    renamed = tmp_path / "weights.h5"  # Keras would read it as a Keras 2 file by its name
    shutil.copy(mobilenet_v2_weights, renamed)
    assert weights_layout(renamed) == "keras3"
    pixels = _pixels(7, n=2)
    np.testing.assert_array_equal(_features_with(renamed, pixels),
                                  _features_with(mobilenet_v2_weights, pixels))


@pytest.fixture(scope="module")
def both_layouts(tmp_path_factory):
    """One random MobileNetV2 saved in Keras 3's layout and in Keras 2's, by content only."""
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    folder = tmp_path_factory.mktemp("layouts")
    model = keras.applications.MobileNetV2(include_top=False, weights=None,
                                           input_shape=(*SMALL, 3))
    keras3 = folder / "model.weights.h5"
    model.save_weights(keras3)
    legacy = folder / "legacy.h5"
    with h5py.File(legacy, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, model)
    return keras3, legacy


@pytest.mark.parametrize("layout, name", [
    ("keras3", "weights.h5"), ("keras3", "mnv2.bin"),
    ("legacy", "weights.weights.h5"), ("legacy", "mnv2"),
])
def test_either_layout_loads_under_any_name(both_layouts, tmp_path, layout, name):
    import shutil

    import h5py

    from skanimal.weights import weights_layout

    keras3, legacy = both_layouts
    source = keras3 if layout == "keras3" else legacy
    renamed = tmp_path / name
    shutil.copy(source, renamed)
    with h5py.File(renamed, "a") as file:  # content of its own: really loaded, not reused
        file.attrs["copy"] = name
    assert weights_layout(renamed) == layout
    pixels = _pixels(8, n=2)
    expected = _features_with(keras3, pixels)
    assert expected.std() > 0
    np.testing.assert_allclose(_features_with(renamed, pixels), expected, rtol=1e-5, atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no alias left behind


def test_a_file_that_is_no_weights_file_is_one_true_line(tmp_path):
    from skanimal.weights import weights_layout

    photo = tmp_path / "weights.h5"
    photo.write_bytes(b"\xff\xd8\xff\xe0 not weights at all")
    assert weights_layout(photo) is None
    with pytest.raises(WeightsUnavailableError) as info:
        BottleneckFeatures("mobilenet_v2", weights=str(photo), image_size=SMALL,
                           cache=False).fit()
    message = str(info.value)
    assert "\n" not in message and "is not a Keras weights file" in message
    assert str(photo) in message
