"""Unit tests of skanimal.images: validating X, reading, decoding and batching images."""

import ast
import io
import os
import pathlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image, ImageFile

from skanimal.exceptions import ImageLoadError, SkanimalError
from skanimal.images import (
    ImageItem,
    check_images,
    decode_image,
    decode_item,
    load_pixels,
    read_image_bytes,
    read_item_bytes,
    resize_array_batch,
)


def _png_bytes(color=(10, 200, 30), size=(16, 12), mode="RGB"):
    """PNG of a solid ``color``; ``size`` is Pillow's (width, height)."""
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, "PNG")
    return buf.getvalue()


def _write(path, color=(10, 200, 30), size=(16, 12), fmt="PNG"):
    Image.new("RGB", size, color).save(path, fmt)
    return str(path)


# ---------------------------------------------------------------------- check_images


class TestCheckImagesPaths:
    def test_list_of_str_returned_as_new_list(self):
        X = ["a.jpg", "b/c.png"]
        out = check_images(X)
        assert out == X
        assert out is not X
        assert all(type(p) is str for p in out)

    def test_tuple_and_pathlike(self, tmp_path):
        out = check_images((pathlib.Path("a.jpg"), tmp_path / "b.png"))
        assert out == ["a.jpg", str(tmp_path / "b.png")]
        assert all(type(p) is str for p in out)

    def test_generator_is_materialised(self):
        out = check_images(f"{i}.jpg" for i in range(3))
        assert out == ["0.jpg", "1.jpg", "2.jpg"]

    def test_numpy_object_and_str_arrays(self):
        assert check_images(np.array(["a.jpg", "b.jpg"], dtype=object)) == ["a.jpg", "b.jpg"]
        out = check_images(np.array(["a.jpg", "b.jpg"]))
        assert out == ["a.jpg", "b.jpg"]
        assert all(type(p) is str for p in out)

    def test_column_vector_of_paths(self):
        assert check_images(np.array([["a.jpg"], ["b.jpg"]], dtype=object)) == [
            "a.jpg",
            "b.jpg",
        ]

    def test_2d_array_of_paths_rejected(self):
        with pytest.raises(ImageLoadError, match="1-D array of image paths"):
            check_images(np.array([["a", "b"], ["c", "d"]], dtype=object))

    def test_pandas_series_and_one_column_frame(self):
        pd = pytest.importorskip("pandas")
        series = pd.Series(["a.jpg", "b.jpg"], index=[10, 20])
        assert check_images(series) == ["a.jpg", "b.jpg"]
        assert check_images(pd.DataFrame({"path": ["a.jpg", "b.jpg"]})) == ["a.jpg", "b.jpg"]
        with pytest.raises(ImageLoadError, match="2 columns"):
            check_images(pd.DataFrame({"a": ["x"], "b": ["y"]}))

    def test_pandas_missing_value_names_index(self):
        pd = pytest.importorskip("pandas")
        with pytest.raises(ImageLoadError, match=r"X\[1\].*missing value"):
            check_images(pd.Series(["a.jpg", np.nan, "c.jpg"], dtype=object))

    def test_duplicates_kept(self):
        assert check_images(["a.jpg", "a.jpg", "b.jpg"]) == ["a.jpg", "a.jpg", "b.jpg"]

    def test_none_item_names_index(self):
        with pytest.raises(ImageLoadError, match=r"X\[2\] is None") as info:
            check_images(["a.jpg", "b.jpg", None])
        assert info.value.index == 2
        assert isinstance(info.value, ValueError)
        assert isinstance(info.value, SkanimalError)

    @pytest.mark.parametrize("item", [3, 2.5, True, ["a.jpg"], {"a": 1}])
    def test_non_path_items_name_index(self, item):
        with pytest.raises(ImageLoadError, match=r"X\[1\] is .*expected an image file path"):
            check_images(["a.jpg", item])

    def test_bytes_item_rejected(self):
        with pytest.raises(ImageLoadError, match=r"X\[0\] is bytes"):
            check_images([b"a.jpg"])

    def test_empty_string_rejected(self):
        with pytest.raises(ImageLoadError, match=r"X\[1\] is an empty string"):
            check_images(["a.jpg", ""])

    @pytest.mark.parametrize("X", [[], (), np.array([], dtype=object)])
    def test_empty(self, X):
        with pytest.raises(ImageLoadError, match="X is empty"):
            check_images(X)

    def test_single_str(self):
        with pytest.raises(ImageLoadError, match="got a single str; wrap it in a list"):
            check_images("photos/cat.jpg")

    def test_single_pathlike(self):
        with pytest.raises(ImageLoadError, match="got a single path; wrap it in a list"):
            check_images(pathlib.Path("photos/cat.jpg"))

    @pytest.mark.parametrize("X", [None, 5, {"a.jpg", "b.jpg"}, {"a": "a.jpg"}])
    def test_not_a_sequence(self, X):
        with pytest.raises(ImageLoadError):
            check_images(X)

    def test_mixed_paths_and_arrays(self):
        with pytest.raises(ImageLoadError, match=r"X\[1\].*only paths or only arrays"):
            check_images([np.zeros((4, 4, 3), np.uint8), "a.jpg"])


class TestCheckImagesArrays:
    def test_uint8_returned_unchanged(self):
        X = np.zeros((2, 5, 6, 3), np.uint8)
        assert check_images(X) is X

    @pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
    def test_float_kept(self, dtype):
        X = np.full((2, 5, 6, 3), 127.5, dtype)
        out = check_images(X)
        assert out.dtype == dtype
        np.testing.assert_array_equal(out, X)

    @pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
    def test_non_finite_names_row(self, bad):
        X = np.zeros((4, 3, 3, 3), np.float32)
        X[2, 1, 1, 0] = bad
        match = r"X\[2\] \(array row 2\).*NaN or infinity"
        with pytest.raises(ImageLoadError, match=match) as info:
            check_images(X)
        assert info.value.index == 2

    def test_integer_arrays_become_uint8(self):
        X = np.arange(2 * 4 * 4 * 3).reshape(2, 4, 4, 3)  # int64, 0..95
        out = check_images(X)
        assert out.dtype == np.uint8
        np.testing.assert_array_equal(out, X)

    def test_integer_out_of_range_names_row(self):
        X = np.zeros((3, 2, 2, 3), np.int32)
        X[1, 0, 0, 0] = 300
        with pytest.raises(ImageLoadError, match=r"X\[1\].*outside 0-255"):
            check_images(X)

    @pytest.mark.parametrize(
        "shape, hint",
        [
            ((5, 6, 3), "single image"),
            ((2, 5, 6), r"\(n_images, height, width, 3\)"),
            ((2, 5, 6, 4), "4 channels"),
            ((2, 5, 6, 1), "1 channels"),
            ((2, 3, 5, 6, 3), r"\(n_images, height, width, 3\)"),
        ],
    )
    def test_wrong_shape(self, shape, hint):
        with pytest.raises(ImageLoadError, match=hint):
            check_images(np.zeros(shape, np.uint8))

    def test_zero_images_or_pixels(self):
        with pytest.raises(ImageLoadError, match="X is empty"):
            check_images(np.zeros((0, 4, 4, 3), np.uint8))
        with pytest.raises(ImageLoadError, match="at least 1"):
            check_images(np.zeros((2, 0, 4, 3), np.uint8))

    @pytest.mark.parametrize("dtype", [bool, np.complex64])
    def test_bad_dtype(self, dtype):
        with pytest.raises(ImageLoadError, match="dtype"):
            check_images(np.zeros((1, 2, 2, 3), dtype))

    def test_list_of_arrays_stacked(self):
        images = [np.full((4, 5, 3), i, np.uint8) for i in range(3)]
        out = check_images(images)
        assert out.shape == (3, 4, 5, 3)
        assert out.dtype == np.uint8
        assert out[2, 0, 0, 0] == 2

    def test_list_of_arrays_shape_mismatch_names_index(self):
        images = [np.zeros((4, 5, 3), np.uint8)] * 2 + [np.zeros((5, 4, 3), np.uint8)]
        with pytest.raises(ImageLoadError, match=r"X\[2\].*same shape"):
            check_images(images)

    def test_list_of_arrays_bad_item_shape(self):
        with pytest.raises(ImageLoadError, match=r"X\[1\].*\(height, width, 3\)"):
            check_images([np.zeros((4, 5, 3), np.uint8), np.zeros((4, 5), np.uint8)])

    def test_list_of_float_arrays_with_nan(self):
        images = [np.zeros((2, 2, 3)), np.full((2, 2, 3), np.nan)]
        with pytest.raises(ImageLoadError, match=r"X\[1\]"):
            check_images(images)


# ------------------------------------------------------------------ read_image_bytes


class TestReadImageBytes:
    def test_reads_file(self, tmp_path):
        path = tmp_path / "a.png"
        path.write_bytes(b"abc")
        assert read_image_bytes(path) == b"abc"
        assert read_image_bytes(str(path), index=4) == b"abc"

    def test_missing(self, tmp_path):
        path = tmp_path / "nope.jpg"
        match = r"X\[7\] '.*nope\.jpg': file does not exist"
        with pytest.raises(ImageLoadError, match=match) as info:
            read_image_bytes(str(path), index=7)
        assert info.value.path == str(path)
        assert info.value.index == 7
        assert isinstance(info.value.__cause__, FileNotFoundError)

    def test_directory(self, tmp_path):
        with pytest.raises(ImageLoadError, match="is a directory, not an image file"):
            read_image_bytes(tmp_path, index=0)

    def test_path_with_a_nul_byte(self):
        with pytest.raises(ImageLoadError, match=r"X\[2\] .*invalid path") as info:
            read_image_bytes("cat\x00.jpg", index=2)
        assert info.value.index == 2

    def test_none(self):
        with pytest.raises(ImageLoadError, match=r"X\[3\] is None"):
            read_image_bytes(None, index=3)

    def test_not_a_path(self):
        with pytest.raises(ImageLoadError, match=r"X\[3\] is int"):
            read_image_bytes(12, index=3)

    @pytest.mark.skipif(
        not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read anything"
    )
    def test_permission_denied(self, tmp_path):
        path = tmp_path / "secret.png"
        path.write_bytes(b"x")
        path.chmod(0)
        try:
            with pytest.raises(ImageLoadError, match="permission denied"):
                read_image_bytes(path, index=0)
        finally:
            path.chmod(0o600)

    @pytest.mark.parametrize(
        "error, reason",
        [
            (PermissionError(13, "Permission denied"), "permission denied"),
            (OSError(5, "Input/output error"), "Input/output error"),
        ],
    )
    def test_os_errors_while_opening(self, tmp_path, monkeypatch, error, reason):
        import skanimal.images as images

        path = tmp_path / "a.png"
        path.write_bytes(b"x")

        def failing_open(*args, **kwargs):
            raise error

        monkeypatch.setattr(images, "open", failing_open, raising=False)
        with pytest.raises(ImageLoadError, match=rf"X\[2\] '.*a\.png': {reason}") as info:
            read_image_bytes(path, index=2)
        assert info.value.__cause__ is error

    @pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
    def test_fifo_is_not_a_regular_file(self, tmp_path):
        fifo = tmp_path / "pipe.jpg"
        os.mkfifo(fifo)
        with pytest.raises(ImageLoadError, match="not a regular file"):
            read_image_bytes(fifo, index=0)


# ---------------------------------------------------------------------- decode_image


class TestDecodeImage:
    def test_shape_dtype_and_colour(self):
        out = decode_image(_png_bytes((10, 200, 30), size=(16, 12)), size=(7, 9))
        assert out.shape == (7, 9, 3)
        assert out.dtype == np.uint8
        assert (np.abs(out.astype(int) - [10, 200, 30]) <= 1).all()

    def test_size_is_height_width(self):
        out = decode_image(_png_bytes(size=(40, 10)), size=(30, 20))
        assert out.shape == (30, 20, 3)

    def test_size_none_keeps_native_size(self):
        out = decode_image(_png_bytes(size=(16, 12)), size=None)
        assert out.shape == (12, 16, 3)

    def test_same_size_is_exact(self):
        rng = np.random.default_rng(0)
        pixels = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "PNG")
        np.testing.assert_array_equal(decode_image(buf.getvalue(), size=(12, 16)), pixels)

    def test_accepts_bytearray_and_memoryview(self):
        data = _png_bytes()
        assert decode_image(bytearray(data), (4, 4)).shape == (4, 4, 3)
        assert decode_image(memoryview(data), (4, 4)).shape == (4, 4, 3)

    @pytest.mark.parametrize("size", [(0, 5), (5, -1), (5,), "ab", (2.5, 3), (True, 4), 7])
    def test_bad_size(self, size):
        with pytest.raises(ValueError, match="size"):
            decode_image(_png_bytes(), size=size)

    def test_numpy_int_size(self):
        assert decode_image(_png_bytes(), size=(np.int64(5), np.int32(6))).shape == (5, 6, 3)

    def test_empty_data(self):
        with pytest.raises(ImageLoadError, match=r"X\[2\] 'a\.jpg': the file is empty"):
            decode_image(b"", path="a.jpg", index=2)

    def test_none_data(self):
        with pytest.raises(ImageLoadError, match="no data"):
            decode_image(None, path="a.jpg", index=2)

    def test_garbage_names_path_and_index_and_chains(self):
        match = r"^Cannot read image X\[3\] 'photos/cat/a\.jpg': "
        with pytest.raises(ImageLoadError, match=match) as info:
            decode_image(b"\x00\x01\x02garbage\xff" * 10, path="photos/cat/a.jpg", index=3)
        assert info.value.path == "photos/cat/a.jpg"
        assert info.value.index == 3
        assert info.value.__cause__ is not None

    def test_str_data_rejected(self):
        with pytest.raises(ImageLoadError, match="got a str"):
            decode_image("a.jpg", index=0)

    def test_binary_garbage_is_not_called_text(self):
        data = bytes(range(256)) * 4
        with pytest.raises(ImageLoadError, match="not a recognised image format"):
            decode_image(data, index=0)

    def test_utf8_text_cut_mid_character_is_text(self):
        data = ("é" * 255 + "ab").encode("utf-8")[1:600]  # starts and ends mid-character
        with pytest.raises(ImageLoadError, match="contains text"):
            decode_image(data, index=0)

    def test_message_without_path(self):
        with pytest.raises(ImageLoadError, match=r"X\[5\]"):
            decode_image(b"nope", index=5)

    def test_no_global_state_changed(self):
        before = (ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS)
        decode_image(_png_bytes(), (3, 3))
        with pytest.raises(ImageLoadError):
            decode_image(_png_bytes()[:40], (3, 3))
        assert (ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS) == before


# ------------------------------------------------------------------------ load_pixels


def _coloured_files(tmp_path, n):
    colours = [((i * 37) % 256, (i * 91) % 256, (255 - i * 13) % 256) for i in range(n)]
    paths = [
        _write(tmp_path / f"img{i}.png", c, size=(10 + i % 5, 8)) for i, c in enumerate(colours)
    ]
    return paths, np.array(colours)


class TestLoadPixels:
    def test_order_preserved(self, tmp_path):
        paths, colours = _coloured_files(tmp_path, 40)
        out = load_pixels(paths, size=(6, 5))
        assert out.shape == (40, 6, 5, 3)
        assert out.dtype == np.uint8
        np.testing.assert_allclose(out[:, 3, 2, :], colours, atol=1)

    def test_matches_sequential_decode(self, tmp_path):
        paths, _ = _coloured_files(tmp_path, 12)
        expected = np.stack([decode_image(read_image_bytes(p), (9, 7)) for p in paths])
        np.testing.assert_array_equal(load_pixels(paths, (9, 7)), expected)

    def test_single_and_empty(self, tmp_path):
        paths, colours = _coloured_files(tmp_path, 1)
        assert load_pixels(paths, (4, 4)).shape == (1, 4, 4, 3)
        empty = load_pixels([], (4, 5))
        assert empty.shape == (0, 4, 5, 3)
        assert empty.dtype == np.uint8

    def test_pathlike(self, tmp_path):
        paths, _ = _coloured_files(tmp_path, 3)
        assert load_pixels([pathlib.Path(p) for p in paths], (4, 4)).shape == (3, 4, 4, 3)

    def test_given_executor_used_and_not_shut_down(self, tmp_path):
        paths, colours = _coloured_files(tmp_path, 30)
        with ThreadPoolExecutor(max_workers=2) as pool:
            out = load_pixels(paths, (5, 5), executor=pool)
            np.testing.assert_allclose(out[:, 2, 2, :], colours, atol=1)
            assert pool.submit(lambda: 42).result() == 42

    def test_error_names_absolute_index(self, tmp_path):
        paths, _ = _coloured_files(tmp_path, 3)
        paths[1] = str(tmp_path / "missing.jpg")
        match = r"X\[101\] '.*missing\.jpg': file does not exist"
        with pytest.raises(ImageLoadError, match=match) as info:
            load_pixels(paths, (4, 4), start_index=100)
        assert info.value.index == 101

    def test_error_names_the_index_given_for_each_item(self, tmp_path):
        paths, _ = _coloured_files(tmp_path, 3)
        paths[2] = str(tmp_path / "missing.jpg")
        with pytest.raises(ImageLoadError, match=r"X\[42\] '.*missing\.jpg'") as info:
            load_pixels(paths, (4, 4), indices=[5, 17, 42])
        assert info.value.index == 42
        with pytest.raises(ValueError, match="indices has 2 entries for 3 paths"):
            load_pixels(paths, (4, 4), indices=[5, 17])

    def test_items_that_load_themselves(self, tmp_path):
        from skanimal import AugmentedImage, ImageAugmentation

        paths, colours = _coloured_files(tmp_path, 4)
        # Solid colours: brightness is the change that shows on them.
        augmented = AugmentedImage(paths[1], ImageAugmentation(brightness=0.5), seed=3)
        out = load_pixels([paths[0], augmented, paths[2]], (6, 5))
        np.testing.assert_array_equal(out[1], augmented.load((6, 5)))
        assert not np.array_equal(out[1], load_pixels([paths[1]], (6, 5))[0])
        np.testing.assert_array_equal(out[[0, 2]], load_pixels([paths[0], paths[2]], (6, 5)))

    def test_lowest_failing_index_wins(self, tmp_path):
        paths, _ = _coloured_files(tmp_path, 30)
        bad = tmp_path / "bad.png"
        bad.write_bytes(b"not an image")
        for i in (7, 20, 25):
            paths[i] = str(bad)
        paths[29] = str(tmp_path / "missing.png")
        for executor in (None, ThreadPoolExecutor(max_workers=4)):
            with pytest.raises(ImageLoadError) as info:
                load_pixels(paths, (4, 4), executor=executor)
            assert info.value.index == 7
            assert "X[7]" in str(info.value)
            if executor is not None:
                executor.shutdown()

    def test_none_path(self, tmp_path):
        paths, _ = _coloured_files(tmp_path, 2)
        with pytest.raises(ImageLoadError, match=r"X\[1\] is None"):
            load_pixels([paths[0], None], (4, 4))

    def test_bad_size(self, tmp_path):
        with pytest.raises(ValueError, match="size"):
            load_pixels(["a.png"], size=(0, 3))


# ---------------------------------------------------------------- resize_array_batch


class TestResizeArrayBatch:
    def test_uint8(self):
        y, x = np.mgrid[0:20, 0:30]
        smooth = np.stack([x * 8, y * 12, x * 4 + y * 5], axis=-1)
        X = np.stack([smooth, 255 - smooth, smooth // 2]).astype(np.uint8)
        out = resize_array_batch(X, (10, 15))
        assert out.shape == (3, 10, 15, 3)
        assert out.dtype == np.uint8
        # Shrinking a smooth image by 2 ~ averaging 2x2 blocks (borders aside).
        blocks = X.reshape(3, 10, 2, 15, 2, 3).mean(axis=(2, 4))
        assert np.abs(out - blocks)[:, 1:-1, 1:-1].max() <= 1

    @pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
    def test_float_dtype_kept(self, dtype):
        X = np.full((2, 8, 8, 3), 200.25, dtype)
        X[1] = 3.5
        out = resize_array_batch(X, (3, 17))
        assert out.shape == (2, 3, 17, 3)
        assert out.dtype == dtype
        np.testing.assert_allclose(out[0], 200.25, atol=1e-2)
        np.testing.assert_allclose(out[1], 3.5, atol=1e-2)

    def test_float_channels_independent(self):
        X = np.zeros((1, 6, 6, 3), np.float32)
        X[..., 0], X[..., 1], X[..., 2] = 10.0, 100.0, 250.0
        out = resize_array_batch(X, (4, 9))
        np.testing.assert_allclose(out[0, 2, 4], [10.0, 100.0, 250.0], atol=1e-3)

    def test_noop_when_size_matches(self):
        X = np.zeros((2, 8, 9, 3), np.uint8)
        assert resize_array_batch(X, (8, 9)) is X

    def test_upscale_matches_file_path(self):
        """Arrays and files go through the same filter."""
        rng = np.random.default_rng(2)
        pixels = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "PNG")
        np.testing.assert_array_equal(
            resize_array_batch(pixels[np.newaxis], (30, 20))[0],
            decode_image(buf.getvalue(), (30, 20)),
        )

    @pytest.mark.parametrize("shape", [(8, 9, 3), (2, 8, 9), (2, 8, 9, 4)])
    def test_bad_shape(self, shape):
        with pytest.raises(ImageLoadError, match=r"\(n_images, height, width, 3\)"):
            resize_array_batch(np.zeros(shape, np.uint8), (4, 4))

    def test_bad_dtype(self):
        with pytest.raises(ImageLoadError, match="dtype"):
            resize_array_batch(np.zeros((1, 8, 9, 3), np.int64), (4, 4))


def test_module_does_not_import_tensorflow():
    """images.py must stay light: Pillow and NumPy only."""
    import skanimal.images as module

    tree = ast.parse(pathlib.Path(module.__file__).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"tensorflow", "keras", "torch", "pandas"}


def _package_imports(module):
    """Names of the skanimal modules ``module`` imports, anywhere in its source."""
    tree = ast.parse(pathlib.Path(module.__file__).read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            found.add(node.module or "")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("skanimal"):
            found.add(node.module.removeprefix("skanimal").lstrip("."))
        elif isinstance(node, ast.Import):
            found.update(alias.name.removeprefix("skanimal.") for alias in node.names
                         if alias.name.startswith("skanimal"))
    return found


def test_images_and_transforms_stand_below_augmentation():
    """No import cycle: images knows items only through ImageItem; transforms is pure maths
    that uses nothing of skanimal but the shared parameter validation (compat)."""
    import skanimal.images
    import skanimal.transforms

    assert _package_imports(skanimal.images) == {"exceptions"}
    assert _package_imports(skanimal.transforms) == {"compat"}


# ------------------------------------------------------------------------ ImageItem


class _GreyItem(ImageItem):
    """An image file seen in grey: a minimal ImageItem made outside skanimal."""

    def __init__(self, path):
        self.path = path

    def load_bytes(self, *, index=None):
        return read_image_bytes(self.path, index=index)

    def content_key(self, data):
        return "ab" * 32

    def decode(self, data, size=None, *, index=None):
        grey = decode_image(data, size, path=self.path, index=index).mean(axis=2)
        return np.repeat(grey.round().astype(np.uint8)[..., np.newaxis], 3, axis=2)


class TestImageItem:
    def test_items_are_kept_and_load_themselves_from_their_bytes(self, tmp_path):
        paths, _ = _coloured_files(tmp_path, 3)
        item = _GreyItem(paths[1])
        checked = check_images([paths[0], item, paths[2]])
        assert checked[1] is item and checked[::2] == [paths[0], paths[2]]
        out = load_pixels(checked, (6, 5))
        np.testing.assert_array_equal(out[1], item.load((6, 5)))
        assert np.all(out[1] == out[1][..., :1])  # grey: the item decoded itself
        data = read_item_bytes(item)
        assert data == pathlib.Path(paths[1]).read_bytes()
        np.testing.assert_array_equal(decode_item(item, data, (6, 5)), out[1])
        np.testing.assert_array_equal(decode_item(paths[0], read_item_bytes(paths[0]), (6, 5)),
                                      out[0])

    def test_errors_name_the_index(self, tmp_path):
        item = _GreyItem(str(tmp_path / "gone.png"))
        with pytest.raises(ImageLoadError, match=r"X\[4\].*gone\.png"):
            read_item_bytes(item, index=4)
        with pytest.raises(ImageLoadError, match=r"X\[1\].*gone\.png"):
            load_pixels([_write(tmp_path / "a.png"), item], (4, 4))

    def test_the_protocol_is_abstract(self):
        class Incomplete(ImageItem):
            def load_bytes(self, *, index=None):
                return b""

        with pytest.raises(TypeError):
            Incomplete()
        with pytest.raises(ImageLoadError, match=r"X\[0\] is object"):
            check_images([object()])
