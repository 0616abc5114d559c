"""Shared fixtures: an isolated feature cache, small generated image sets, the dev photos."""

import os
from pathlib import Path

import pytest

#: Real photos for development, beside the project checkout (absent in a user's clone).
ANIMALS_DEV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "animals-dev"
#: Real pretrained MobileNetV2 weights (no top), a stand-in for ImageNet's; see its SOURCES.md.
MOBILENET_V2_WEIGHTS = (Path(__file__).resolve().parents[1].parent / "shared" / "weights"
                        / "mobilenet_v2_1.0_pretrained_notop.weights.h5")

#: Small images keep VGG16 cheap: 32×32 is the smallest size Keras accepts.
SMALL = (32, 32)


@pytest.fixture(autouse=True, scope="session")
def isolated_cache(tmp_path_factory):
    """Point the default feature cache at a fresh directory for the whole test session."""
    directory = tmp_path_factory.mktemp("skanimal-cache")
    previous = os.environ.get("SKANIMAL_CACHE_DIR")
    os.environ["SKANIMAL_CACHE_DIR"] = str(directory)
    yield directory
    if previous is None:
        os.environ.pop("SKANIMAL_CACHE_DIR", None)
    else:
        os.environ["SKANIMAL_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def shapes(tmp_path_factory):
    """A generated, clearly separable class-per-folder set: 4 classes × 24 JPEGs of 48 px."""
    from skanimal import make_shapes

    return make_shapes(tmp_path_factory.mktemp("shapes"), n_per_class=24, image_size=48)


@pytest.fixture(scope="session")
def split(shapes):
    """``shapes`` split 3:1, stratified: ``(X_train, X_test, y_train, y_test)``."""
    from sklearn.model_selection import train_test_split

    return train_test_split(shapes.paths, shapes.target, test_size=0.25,
                            stratify=shapes.target, random_state=0)


@pytest.fixture(scope="session")
def animals_dev():
    """The shared real-photo set, or a clean skip where it is absent."""
    if not ANIMALS_DEV.is_dir():
        pytest.skip(f"real photos not available at {ANIMALS_DEV}")
    from skanimal import load_image_folder

    return load_image_folder(ANIMALS_DEV)


@pytest.fixture(scope="session")
def mobilenet_v2_weights():
    """Path of the shared pretrained MobileNetV2 weights, or a clean skip where absent."""
    if not MOBILENET_V2_WEIGHTS.is_file():
        pytest.skip(f"pretrained weights not available at {MOBILENET_V2_WEIGHTS}")
    return str(MOBILENET_V2_WEIGHTS)
