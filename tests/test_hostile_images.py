"""A corpus of awkward image files, generated at test time with Pillow.

Each file either loads correctly (shape, colour and orientation asserted) or raises an
``ImageLoadError`` (a ``ValueError``) whose message names the file and its index in X.
"""

import io
import os
import struct
import warnings
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, JpegImagePlugin

from skanimal.exceptions import ImageLoadError
from skanimal.images import check_images, decode_image, load_pixels, read_image_bytes

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)

# Upright test pattern: 4 quadrants, so that every flip/rotation is distinguishable.
QUADRANTS = {"top_left": RED, "top_right": GREEN, "bottom_left": BLUE, "bottom_right": WHITE}


def _quadrant_image(width, height):
    img = Image.new("RGB", (width, height))
    w2, h2 = width // 2, height // 2
    img.paste(RED, (0, 0, w2, h2))
    img.paste(GREEN, (w2, 0, width, h2))
    img.paste(BLUE, (0, h2, w2, height))
    img.paste(WHITE, (w2, h2, width, height))
    return img


def _assert_quadrants(pixels, atol=40):
    h, w, _ = pixels.shape
    probes = {
        "top_left": pixels[h // 4, w // 4],
        "top_right": pixels[h // 4, 3 * w // 4],
        "bottom_left": pixels[3 * h // 4, w // 4],
        "bottom_right": pixels[3 * h // 4, 3 * w // 4],
    }
    for name, colour in QUADRANTS.items():
        diff = np.abs(probes[name].astype(int) - colour).max()
        assert diff <= atol, f"{name} is {probes[name]}, expected {colour}"


def _assert_colour(pixels, colour, atol=2):
    assert np.abs(pixels.astype(int) - np.array(colour)).max() <= atol, pixels.reshape(-1, 3)[:4]


def _load_one(path, size=(32, 32), index=0):
    """Load through the public batch API, as the transformer does."""
    return load_pixels([path], size=size, start_index=index)[0]


def _expect_error(path, index=5, match=None):
    """Load [good, path] starting at index-1; assert a well-formed ImageLoadError."""
    good = path.parent / "good_neighbour.png"
    Image.new("RGB", (4, 4), RED).save(good)
    with pytest.raises(ImageLoadError) as info:
        load_pixels([str(good), str(path)], size=(16, 16), start_index=index - 1)
    err = info.value
    message = str(err)
    assert isinstance(err, ValueError)
    assert f"X[{index}]" in message
    assert str(path) in message
    assert err.index == index
    if match is not None:
        assert match.lower() in message.lower(), message
    return err


# --------------------------------------------------------------- files that must fail


def _jpeg_bytes(img, **kwargs):
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kwargs)
    return buf.getvalue()


def test_truncated_jpeg(tmp_path):
    rng = np.random.default_rng(0)
    data = _jpeg_bytes(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)))
    path = tmp_path / "truncated.jpg"
    path.write_bytes(data[: len(data) // 2])
    err = _expect_error(path, match="truncated")
    assert isinstance(err.__cause__, OSError)


def test_truncated_png(tmp_path):
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    path = tmp_path / "truncated.png"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    _expect_error(path)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    _expect_error(path, match="empty")


def test_text_file_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("these are my notes, not a photo\n", encoding="utf-8")
    _expect_error(path, match="text")


def test_html_saved_as_png(tmp_path):
    path = tmp_path / "page.png"
    path.write_text("<!DOCTYPE html>\n<html><body>404 Not Found</body></html>\n")
    _expect_error(path, match="HTML")


def test_random_binary_garbage(tmp_path):
    path = tmp_path / "garbage.gif"
    path.write_bytes(np.random.default_rng(3).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    _expect_error(path)


def test_missing_path(tmp_path):
    _expect_error(tmp_path / "no such file.jpg", match="does not exist")


def test_directory(tmp_path):
    directory = tmp_path / "a folder.jpg"
    directory.mkdir()
    _expect_error(directory, match="is a directory")


def test_broken_symlink(tmp_path):
    link = tmp_path / "dangling.jpg"
    try:
        os.symlink(tmp_path / "gone.jpg", link)
    except (OSError, NotImplementedError):
        pytest.skip("symlinks not supported here")
    _expect_error(link, match="broken symbolic link")


def test_none_in_list(tmp_path):
    good = tmp_path / "a.png"
    Image.new("RGB", (4, 4), RED).save(good)
    with pytest.raises(ImageLoadError, match=r"X\[1\] is None") as info:
        check_images([str(good), None])
    assert info.value.index == 1
    with pytest.raises(ImageLoadError, match=r"X\[1\] is None"):
        load_pixels([str(good), None], (8, 8))


def test_decompression_bomb(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    Image.new("RGB", (100, 100), RED).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 10000 > 2 * 1000: error
    err = _expect_error(path, match="decompression bomb")
    assert isinstance(err.__cause__, Image.DecompressionBombError)


def test_decompression_bomb_warning_range(tmp_path, monkeypatch):
    """Between the limit and twice it, Pillow warns; the image loads unless the warning
    is turned into an error, in which case it becomes an ImageLoadError."""
    data = io.BytesIO()
    Image.new("RGB", (100, 100), RED).save(data, "PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 6000)
    with pytest.warns(Image.DecompressionBombWarning):
        _assert_colour(decode_image(data.getvalue(), (8, 8)), RED)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(ImageLoadError, match=r"X\[4\] 'b\.png'.*decompression bomb"):
            decode_image(data.getvalue(), (8, 8), path="b.png", index=4)


def _png_with_claimed_size(width, height):
    """A tiny valid PNG whose IHDR claims a huge size."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1), RED).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = 8  # after the signature: length(4) type(4) data(13) crc(4)
    body = bytearray(data[ihdr + 8 : ihdr + 8 + 13])
    body[0:8] = struct.pack(">II", width, height)
    data[ihdr + 8 : ihdr + 8 + 13] = body
    data[ihdr + 21 : ihdr + 25] = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(body)))
    return bytes(data)


def test_header_claims_gigantic_size(tmp_path):
    """Real decompression-bomb limit, no monkeypatching, without a giant file."""
    path = tmp_path / "claims 100000x100000.png"
    path.write_bytes(_png_with_claimed_size(100_000, 100_000))
    _expect_error(path, match="decompression bomb")


# ------------------------------------------------------------ files that must load


def test_png_with_alpha_composited_on_white(tmp_path):
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 0)  # fully transparent red -> white
    rgba[0, 1] = (0, 0, 255, 255)  # opaque blue stays blue
    rgba[0, 2] = (0, 0, 0, 128)  # half-transparent black -> mid grey
    rgba[1, :] = (0, 255, 0, 0)  # transparent green -> white
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    out = _load_one(path, size=(2, 3))
    _assert_colour(out[0, 0], WHITE, atol=0)
    _assert_colour(out[0, 1], BLUE, atol=0)
    _assert_colour(out[0, 2], (127, 127, 127), atol=1)
    _assert_colour(out[1], WHITE, atol=0)


def test_transparent_image_resized_stays_white(tmp_path):
    """Resizing must not bleed the colour of fully transparent pixels."""
    rgba = np.zeros((50, 50, 4), np.uint8)
    rgba[..., 0] = 255  # transparent red everywhere ...
    rgba[10:40, 10:40] = (0, 0, 255, 255)  # ... except an opaque blue square
    path = tmp_path / "sprite.png"
    Image.fromarray(rgba, "RGBA").save(path)
    out = _load_one(path, size=(10, 10))
    _assert_colour(out[0, 0], WHITE, atol=0)
    _assert_colour(out[5, 5], BLUE, atol=0)
    red, green = out[..., 0].astype(int), out[..., 1].astype(int)
    assert (np.abs(red - green) <= 1).all(), "red leaked from transparent pixels"


def test_la_png_composited_on_white(tmp_path):
    la = np.zeros((1, 2, 2), np.uint8)
    la[0, 0] = (0, 0)  # transparent black -> white
    la[0, 1] = (60, 255)  # opaque grey
    path = tmp_path / "la.png"
    Image.fromarray(la, "LA").save(path)
    out = _load_one(path, size=(1, 2))
    _assert_colour(out[0, 0], WHITE, atol=0)
    _assert_colour(out[0, 1], (60, 60, 60), atol=0)


def test_palette_png_with_transparency(tmp_path):
    img = Image.new("P", (4, 2))
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)  # 0 = red, 1 = blue
    img.paste(1, (2, 0, 4, 2))
    path = tmp_path / "palette.png"
    img.save(path, transparency=0)  # red is transparent
    assert Image.open(path).mode == "P"
    out = _load_one(path, size=(2, 4))
    _assert_colour(out[:, :2], WHITE, atol=0)
    _assert_colour(out[:, 2:], BLUE, atol=0)


def test_palette_png_without_transparency(tmp_path):
    img = Image.new("P", (4, 2))
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    path = tmp_path / "palette_opaque.png"
    img.save(path)
    _assert_colour(_load_one(path, size=(2, 4)), RED, atol=0)


def test_grey_and_rgb_png_with_transparency_key(tmp_path):
    grey = tmp_path / "grey_key.png"
    Image.new("L", (2, 2), 10).save(grey, transparency=10)
    _assert_colour(_load_one(grey, size=(2, 2)), WHITE, atol=0)
    rgb = tmp_path / "rgb_key.png"
    Image.new("RGB", (2, 2), (1, 2, 3)).save(rgb, transparency=(1, 2, 3))
    _assert_colour(_load_one(rgb, size=(2, 2)), WHITE, atol=0)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_grayscale_scaled_not_clipped(tmp_path, fmt):
    values = np.array([[0, 257, 32768, 65535]], np.uint16)
    path = tmp_path / f"gray16.{fmt.lower()}"
    Image.fromarray(values).save(path, fmt)
    assert Image.open(path).mode.startswith("I;16")
    out = _load_one(path, size=(1, 4))
    assert (out == out[..., :1]).all(), "grey must stay grey"
    assert out[0, 0, 0] == 0
    assert out[0, 1, 0] == 1
    assert abs(int(out[0, 2, 0]) - 128) <= 1
    assert out[0, 3, 0] == 255


def test_16_bit_pgm_mode_i(tmp_path):
    """16-bit PGM opens as mode 'I' with 0..65535 values."""
    path = tmp_path / "gray16.pgm"
    Image.fromarray(np.array([[0, 32768, 65535]], np.uint16)).save(path)
    assert Image.open(path).mode == "I"
    out = _load_one(path, size=(1, 3))
    assert [out[0, 0, 0], out[0, 2, 0]] == [0, 255]
    assert abs(int(out[0, 1, 0]) - 128) <= 1


def test_float_tiff(tmp_path):
    path = tmp_path / "float.tiff"
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32)).save(path)
    assert Image.open(path).mode == "F"
    out = _load_one(path, size=(1, 3))
    assert list(out[0, :, 0]) == [0, 128, 255]


def test_bilevel_image(tmp_path):
    img = Image.new("1", (4, 2), 0)
    img.paste(1, (2, 0, 4, 2))
    path = tmp_path / "bilevel.png"
    img.save(path)
    out = _load_one(path, size=(2, 4))
    _assert_colour(out[:, :2], (0, 0, 0), atol=0)
    _assert_colour(out[:, 2:], WHITE, atol=0)


def test_cmyk_jpeg(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (32, 32), (0, 255, 255, 0)).save(path, quality=95)  # red
    assert Image.open(path).mode == "CMYK"
    _assert_colour(_load_one(path), RED, atol=8)


def test_cmyk_tiff(tmp_path):
    path = tmp_path / "cmyk.tiff"
    Image.new("CMYK", (8, 8), (255, 0, 255, 0)).save(path)  # green
    _assert_colour(_load_one(path, size=(4, 4)), GREEN, atol=0)


def test_progressive_jpeg(tmp_path):
    path = tmp_path / "progressive.jpg"
    _quadrant_image(400, 300).save(path, progressive=True, quality=95)
    assert Image.open(path).info.get("progressive")
    out = _load_one(path, size=(30, 40))
    assert out.shape == (30, 40, 3)
    _assert_quadrants(out)


def test_grayscale_jpeg(tmp_path):
    path = tmp_path / "grey.jpg"
    Image.new("L", (300, 200), 90).save(path)
    _assert_colour(_load_one(path, size=(10, 10)), (90, 90, 90), atol=2)


# The transposition exif_transpose applies for each orientation, and its inverse (used
# to write the "pre-rotated" file).
_TRANSPOSE = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_INVERSE = {
    Image.Transpose.ROTATE_270: Image.Transpose.ROTATE_90,
    Image.Transpose.ROTATE_90: Image.Transpose.ROTATE_270,
}


def _pre_rotated(upright, orientation):
    method = _TRANSPOSE[orientation]
    if method is None:
        return upright.copy()
    return upright.transpose(_INVERSE.get(method, method))


def _save_with_orientation(img, path, orientation, fmt="JPEG"):
    exif = Image.Exif()
    exif[0x0112] = orientation
    kwargs = {"quality": 95} if fmt == "JPEG" else {}
    img.save(path, fmt, exif=exif, **kwargs)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_exif_orientation(tmp_path, orientation, fmt):
    upright = _quadrant_image(80, 40)  # landscape, so a missed rotation changes the shape
    path = tmp_path / f"orientation{orientation}.{fmt.lower()}"
    _save_with_orientation(_pre_rotated(upright, orientation), path, orientation, fmt)
    stored = Image.open(path)
    assert stored.getexif()[0x0112] == orientation
    # Native size: the decoded image is upright and landscape.
    out = decode_image(path.read_bytes(), size=None, path=str(path), index=0)
    assert out.shape == (40, 80, 3)
    _assert_quadrants(out)
    # Resized to a non-square target.
    out = _load_one(path, size=(12, 30))
    assert out.shape == (12, 30, 3)
    _assert_quadrants(out)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_with_draft(tmp_path, monkeypatch, orientation):
    """Large rotated JPEG: draft size is requested in stored orientation and never
    goes below the target."""
    upright = _quadrant_image(1600, 800)
    path = tmp_path / f"big{orientation}.jpg"
    _save_with_orientation(_pre_rotated(upright, orientation), path, orientation)
    decoded_sizes = []
    original_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        result = original_draft(self, mode, size)
        decoded_sizes.append((size, self.size))
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    target = (60, 100)  # (height, width) of the upright result
    out = _load_one(path, size=target)
    assert out.shape == (60, 100, 3)
    _assert_quadrants(out)
    [(requested, decoded)] = decoded_sizes
    swapped = orientation >= 5
    assert requested == ((60, 100) if swapped else (100, 60))
    # DCT scaling happened (1/8 here) but the decoded image is still >= the target.
    assert decoded[0] >= requested[0] and decoded[1] >= requested[1]
    assert decoded[0] * decoded[1] < 1600 * 800 / 16


def _photo_like(width, height):
    """Smooth gradients plus sharp shapes: compresses fast, has real detail."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 128 + 100 * np.sin(x / 97.0) * np.cos(y / 131.0)
    g = 255 * x / width
    b = 255 * y / height
    pixels = np.stack([r, g, b], axis=-1)
    pixels[(x // 250 + y // 250) % 2 == 0] *= 0.6  # checkerboard of 250 px squares
    pixels[(x - width / 2) ** 2 + (y - height / 2) ** 2 < (height / 4) ** 2] = (250, 240, 20)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


@pytest.mark.parametrize("target", [(224, 224), (300, 200)])
def test_twelve_megapixel_jpeg_draft_no_visible_change(tmp_path, monkeypatch, target):
    path = tmp_path / "12mp.jpg"
    _photo_like(4000, 3000).save(path, quality=90)
    data = path.read_bytes()

    with Image.open(io.BytesIO(data)) as full:  # reference: full decode, fair resize
        full.load()
        assert full.size == (4000, 3000)
        reference = np.asarray(
            full.resize((target[1], target[0]), Image.Resampling.BILINEAR), dtype=np.int16
        )

    drafted = []
    original_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        result = original_draft(self, mode, size)
        drafted.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    out = decode_image(data, size=target, path=str(path), index=0)
    assert out.shape == (*target, 3)
    assert out.dtype == np.uint8
    assert drafted and drafted[0][0] < 4000, "draft did not reduce the decode size"
    assert drafted[0][0] >= target[1] and drafted[0][1] >= target[0]
    diff = np.abs(out.astype(np.int16) - reference)
    assert diff.mean() < 3, diff.mean()


def test_animated_gif_first_frame(tmp_path):
    path = tmp_path / "animated.gif"
    frames = [Image.new("RGB", (20, 20), c) for c in (RED, BLUE, GREEN)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(path).n_frames == 3
    _assert_colour(_load_one(path, size=(8, 8)), RED, atol=0)


def test_animated_webp_first_frame(tmp_path):
    path = tmp_path / "animated.webp"
    frames = [Image.new("RGB", (20, 20), c) for c in (BLUE, RED)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, lossless=True)
    assert Image.open(path).n_frames == 2
    _assert_colour(_load_one(path, size=(8, 8)), BLUE, atol=0)


def test_apng_first_frame(tmp_path):
    path = tmp_path / "animated.png"
    frames = [Image.new("RGB", (20, 20), c) for c in (GREEN, RED)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    assert Image.open(path).n_frames == 2
    _assert_colour(_load_one(path, size=(8, 8)), GREEN, atol=0)


def test_gif_with_transparency(tmp_path):
    img = Image.new("P", (4, 4), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.paste(1, (0, 0, 2, 4))
    path = tmp_path / "transparent.gif"
    img.save(path, transparency=0)
    out = _load_one(path, size=(4, 4))
    _assert_colour(out[:, :2], BLUE, atol=0)
    _assert_colour(out[:, 2:], WHITE, atol=0)


@pytest.mark.parametrize("lossless", [True, False])
def test_webp(tmp_path, lossless):
    path = tmp_path / "image.webp"
    _quadrant_image(64, 48).save(path, lossless=lossless, quality=95)
    out = _load_one(path, size=(24, 32))
    _assert_quadrants(out)


def test_webp_with_alpha(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255  # transparent red
    path = tmp_path / "alpha.webp"
    Image.fromarray(rgba, "RGBA").save(path, lossless=True)
    _assert_colour(_load_one(path, size=(8, 8)), WHITE, atol=0)


@pytest.mark.parametrize("compression", [None, "tiff_lzw", "tiff_deflate"])
def test_tiff(tmp_path, compression):
    path = tmp_path / "image.tiff"
    _quadrant_image(64, 48).save(path, compression=compression)
    _assert_quadrants(_load_one(path, size=(24, 32)), atol=0)


def test_multipage_tiff_first_page(tmp_path):
    path = tmp_path / "pages.tiff"
    pages = [Image.new("RGB", (8, 8), c) for c in (GREEN, RED)]
    pages[0].save(path, save_all=True, append_images=pages[1:])
    _assert_colour(_load_one(path, size=(4, 4)), GREEN, atol=0)


def test_bmp(tmp_path):
    path = tmp_path / "image.bmp"
    _quadrant_image(64, 48).save(path)
    _assert_quadrants(_load_one(path, size=(24, 32)), atol=0)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_one_by_one(tmp_path, fmt):
    path = tmp_path / f"pixel.{fmt.lower()}"
    Image.new("RGB", (1, 1), (12, 34, 56)).save(path, fmt, quality=100)
    out = _load_one(path, size=(224, 224))
    assert out.shape == (224, 224, 3)
    _assert_colour(out, (12, 34, 56), atol=3)
    assert (out == out[0, 0]).all()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_very_wide(tmp_path, fmt):
    img = Image.new("RGB", (10000, 10), RED)
    img.paste(BLUE, (5000, 0, 10000, 10))
    path = tmp_path / f"wide.{fmt.lower()}"
    img.save(path, fmt, quality=95)
    out = _load_one(path, size=(224, 224))
    assert out.shape == (224, 224, 3)
    _assert_colour(out[:, :100], RED, atol=10)
    _assert_colour(out[:, 124:], BLUE, atol=10)


def test_very_tall(tmp_path):
    path = tmp_path / "tall.png"
    Image.new("RGB", (3, 8000), GREEN).save(path)
    out = _load_one(path, size=(5, 224))
    assert out.shape == (5, 224, 3)
    _assert_colour(out, GREEN, atol=0)


def test_path_with_spaces_and_non_ascii(tmp_path):
    directory = tmp_path / "dossier été" / "chat noir ü 猫"
    directory.mkdir(parents=True)
    path = directory / "photo de vacances Ωmega.png"
    Image.new("RGB", (10, 10), BLUE).save(path)
    paths = check_images([path])
    assert paths == [str(path)]
    _assert_colour(load_pixels(paths, (4, 4))[0], BLUE, atol=0)
    # Errors name such paths intact too.
    missing = directory / "absent été.png"
    with pytest.raises(ImageLoadError, match="absent été.png"):
        load_pixels([missing], (4, 4))


def test_symlink_to_file(tmp_path):
    target = tmp_path / "real.png"
    Image.new("RGB", (10, 10), GREEN).save(target)
    link = tmp_path / "link.jpg"
    try:
        os.symlink(target, link)
    except (OSError, NotImplementedError):
        pytest.skip("symlinks not supported here")
    _assert_colour(_load_one(link, size=(4, 4)), GREEN, atol=0)


def test_duplicate_paths_give_identical_rows(tmp_path):
    path = tmp_path / "dup.jpg"
    _photo_like(200, 150).save(path)
    other = tmp_path / "other.png"
    Image.new("RGB", (5, 5), RED).save(other)
    paths = check_images([path, other, path, path])
    assert len(paths) == 4
    out = load_pixels(paths, (32, 32))
    np.testing.assert_array_equal(out[0], out[2])
    np.testing.assert_array_equal(out[0], out[3])
    _assert_colour(out[1], RED, atol=0)


def test_jpeg_with_trailing_garbage_loads(tmp_path):
    path = tmp_path / "trailing.jpg"
    path.write_bytes(_jpeg_bytes(Image.new("RGB", (16, 16), RED)) + b"\x00junk" * 50)
    _assert_colour(_load_one(path, size=(4, 4)), RED, atol=8)


def test_read_then_decode_directly(tmp_path):
    """The two-step API the transformer may use gives the same result as load_pixels."""
    path = tmp_path / "q.png"
    _quadrant_image(40, 30).save(path)
    data = read_image_bytes(path, index=0)
    np.testing.assert_array_equal(
        decode_image(data, (9, 11), path=str(path), index=0), _load_one(path, size=(9, 11))
    )


# ------------------------------------------------------------ property-based tests

# Formats that can store each mode (lossless ones first).
_FORMATS = {
    "L": ["PNG", "JPEG", "TIFF", "GIF", "BMP", "WEBP"],
    "LA": ["PNG", "TIFF"],
    "P": ["PNG", "GIF", "TIFF", "BMP"],
    "RGB": ["PNG", "JPEG", "TIFF", "WEBP", "BMP"],
    "RGBA": ["PNG", "TIFF", "WEBP"],
    "CMYK": ["JPEG", "TIFF"],
    "I;16": ["PNG", "TIFF"],
    "1": ["PNG", "TIFF", "BMP", "GIF"],
}


def _random_image(mode, width, height, seed):
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    if mode == "1":
        bits = rng.integers(0, 2, (height, width), dtype=np.uint8) * 255
        return Image.fromarray(bits).convert("1")
    if mode == "P":
        img = Image.fromarray(rng.integers(0, 16, (height, width), dtype=np.uint8), "L")
        img = img.convert("P")
        img.putpalette(rng.integers(0, 256, 768, dtype=np.uint8).tobytes())
        return img
    bands = len(Image.new(mode, (1, 1)).getbands())
    pixels = rng.integers(0, 256, (height, width, bands), dtype=np.uint8)
    return Image.frombytes(mode, (width, height), pixels.tobytes())


@st.composite
def _encoded_images(draw):
    mode = draw(st.sampled_from(sorted(_FORMATS)))
    fmt = draw(st.sampled_from(_FORMATS[mode]))
    width = draw(st.integers(1, 300))
    height = draw(st.integers(1, 300))
    seed = draw(st.integers(0, 2**32 - 1))
    img = _random_image(mode, width, height, seed)
    kwargs = {}
    if fmt in ("JPEG", "PNG") and draw(st.booleans()):
        exif = Image.Exif()
        exif[0x0112] = draw(st.integers(1, 8))
        kwargs["exif"] = exif
    if fmt == "JPEG":
        kwargs["progressive"] = draw(st.booleans())
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return mode, fmt, buf.getvalue()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    image=_encoded_images(),
    target=st.tuples(st.integers(1, 300), st.integers(1, 300)),
)
def test_decode_any_mode_any_size(image, target):
    mode, fmt, data = image
    out = decode_image(data, size=target, path=f"x.{fmt.lower()}", index=0)
    assert out.shape == (target[0], target[1], 3), (mode, fmt)
    assert out.dtype == np.uint8


@settings(max_examples=40, deadline=None)
@given(
    mode=st.sampled_from(["L", "RGB", "P", "RGBA", "I;16", "CMYK"]),
    width=st.integers(1, 120),
    height=st.integers(1, 120),
    target=st.tuples(st.integers(1, 120), st.integers(1, 120)),
    colour=st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)),
)
def test_solid_colour_survives_any_resize(mode, width, height, target, colour):
    """A solid image stays that colour (in its mode's terms) at every size."""
    rgb = Image.new("RGB", (width, height), colour)
    if mode == "P":
        img = rgb.convert("P", palette=Image.Palette.ADAPTIVE)
    elif mode not in ("I;16", "RGBA"):
        img = rgb.convert(mode)
    if mode == "RGBA":
        img = Image.new("RGBA", (width, height), (*colour, 255))
    if mode == "I;16":
        grey = rgb.convert("L").getpixel((0, 0))
        img = Image.fromarray(np.full((height, width), grey * 257, np.uint16))
    expected = np.asarray(img.convert("RGB"))[0, 0] if mode != "I;16" else (grey,) * 3
    buf = io.BytesIO()
    img.save(buf, "TIFF" if mode == "CMYK" else "PNG")
    out = decode_image(buf.getvalue(), size=target)
    assert out.shape == (*target, 3)
    assert np.abs(out.astype(int) - np.array(expected, dtype=int)).max() <= 1
