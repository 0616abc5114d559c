"""ImageAugmentation: the pure image transformations of skanimal.transforms."""

import pickle
from dataclasses import FrozenInstanceError

import numpy as np
import pytest

from skanimal.transforms import ImageAugmentation, check_seed

NO_CHANGE = dict(rotation=0, horizontal_flip=False, vertical_flip=False, shift=0, zoom=0)


def asymmetric_image(height=24, width=32):
    """Red left part, blue right part, a green block at the top: no symmetry at all."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[:, : width // 3] = (255, 0, 0)
    pixels[:, width // 3:] = (0, 0, 255)
    pixels[: height // 4, width // 2:] = (0, 255, 0)
    return pixels


def test_apply_is_deterministic_per_seed_and_keeps_shape_and_dtype():
    pixels = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    before = pixels.copy()
    augment = ImageAugmentation(rotation=30, shift=0.2, zoom=0.2, shear=10, brightness=0.3)
    first = augment.apply(pixels, seed=11)
    assert first.shape == (24, 32, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, augment.apply(pixels, seed=11))
    np.testing.assert_array_equal(first, pickle.loads(pickle.dumps(augment)).apply(pixels, 11))
    np.testing.assert_array_equal(pixels, before)  # input untouched
    outputs = [augment.apply(pixels, seed).tobytes() for seed in range(10)]
    assert len(set(outputs)) == 10
    assert not np.array_equal(first, pixels)


def test_no_change_parameters_give_the_identity():
    pixels = asymmetric_image()
    identity = ImageAugmentation(**NO_CHANGE)
    assert identity.is_identity and not ImageAugmentation().is_identity
    for seed in range(5):
        out = identity.apply(pixels, seed)
        np.testing.assert_array_equal(out, pixels)
        assert not np.shares_memory(out, pixels)


@pytest.mark.parametrize("flag, flipped", [("horizontal_flip", lambda p: p[:, ::-1]),
                                           ("vertical_flip", lambda p: p[::-1])])
def test_flips_really_mirror(flag, flipped):
    pixels = asymmetric_image()
    augment = ImageAugmentation(**{**NO_CHANGE, flag: True})
    outputs = [augment.apply(pixels, seed) for seed in range(20)]
    n_flipped = sum(np.array_equal(out, flipped(pixels)) for out in outputs)
    n_same = sum(np.array_equal(out, pixels) for out in outputs)
    assert n_flipped + n_same == 20 and n_flipped > 0 and n_same > 0


def test_geometric_changes_move_content_and_fill_borders_by_reflection():
    # A uniform image stays uniform: exposed areas are reflected content, never black.
    colour = np.zeros((32, 32, 3), dtype=np.uint8) + np.array([200, 120, 40], dtype=np.uint8)
    wild = ImageAugmentation(rotation=45, shift=0.3, zoom=0.5, shear=20)
    for seed in range(10):
        np.testing.assert_array_equal(wild.apply(colour, seed), colour)
    # ...while a structured image really moves.
    pixels = asymmetric_image()
    for name, value in [("rotation", 30), ("shift", 0.3), ("zoom", 0.3), ("shear", 20)]:
        augment = ImageAugmentation(**{**NO_CHANGE, name: value})
        assert any(not np.array_equal(augment.apply(pixels, s), pixels) for s in range(3)), name
    brighter = ImageAugmentation(**NO_CHANGE, brightness=0.5)
    grey = np.full((8, 8, 3), 100, dtype=np.uint8)
    means = [brighter.apply(grey, s).mean() for s in range(6)]
    assert min(means) < 100 < max(means)


def test_parameters_are_validated_and_canonical():
    assert ImageAugmentation(rotation=15) == ImageAugmentation(rotation=15.0)
    assert hash(ImageAugmentation(rotation=15)) == hash(ImageAugmentation(rotation=15.0))
    assert ImageAugmentation(rotation=15).describe() == ImageAugmentation(rotation=15.0).describe()
    assert ImageAugmentation(zoom=0.2).describe() != ImageAugmentation().describe()
    assert "rotation=15.0" in ImageAugmentation().describe()
    with pytest.raises(FrozenInstanceError):
        ImageAugmentation().rotation = 3
    for bad in [{"rotation": -1}, {"shift": 1.0}, {"zoom": 1.5}, {"shear": 90},
                {"brightness": -0.1}]:
        with pytest.raises(ValueError, match=next(iter(bad))):
            ImageAugmentation(**bad)
    with pytest.raises(TypeError, match="horizontal_flip"):
        ImageAugmentation(horizontal_flip="yes")
    with pytest.raises(TypeError, match="rotation"):
        ImageAugmentation(rotation=float("nan"))
    with pytest.raises(ValueError, match="uint8"):
        ImageAugmentation().apply(np.zeros((8, 8, 3), dtype=np.float32), 0)
    with pytest.raises(TypeError, match="seed"):
        ImageAugmentation().apply(np.zeros((8, 8, 3), dtype=np.uint8), -0.5)


def test_seeds_are_checked_and_bool_is_not_an_integer():
    assert check_seed(np.int64(7)) == 7 and type(check_seed(np.int64(7))) is int
    for bad in [True, np.bool_(False), 1.0, "3", None]:
        with pytest.raises(TypeError, match="seed"):
            check_seed(bad)
    for bad in [-1, 2**63]:
        with pytest.raises(ValueError, match="seed"):
            check_seed(bad)
