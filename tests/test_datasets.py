"""load_image_folder, train_val_test_split and the generated shapes set."""

import numpy as np
import pytest
from PIL import Image

from skanimal import ImageFolderError, load_image_folder, make_shapes, train_val_test_split
from skanimal.datasets import collect_images, find_images


def _write(path, colour=(255, 0, 0)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)


def test_class_per_folder_sorted_and_case_insensitive(tmp_path):
    _write(tmp_path / "dog" / "b.JPG")
    _write(tmp_path / "dog" / "a.png")
    _write(tmp_path / "cat" / "z.Jpeg")
    _write(tmp_path / "cat" / "sub" / "y.webp")
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    data = load_image_folder(tmp_path)
    assert data.target_names == ["cat", "dog"]
    assert [p.split("/")[-1] for p in data.paths] == ["y.webp", "z.Jpeg", "a.png", "b.JPG"]
    assert list(data.target) == ["cat", "cat", "dog", "dog"]


@pytest.mark.parametrize("layout, match", [
    ("missing", "does not exist"),
    ("file", "not a directory"),
    ("empty", "no class sub-folders"),
    ("no-images", "no images"),
])
def test_bad_folders_raise_clear_errors(tmp_path, layout, match):
    root = tmp_path / "data"
    if layout == "file":
        root.write_text("x")
    elif layout == "empty":
        root.mkdir()
    elif layout == "no-images":
        (root / "cat").mkdir(parents=True)
        (root / "cat" / "readme.txt").write_text("x")
    with pytest.raises(ImageFolderError, match=match):
        load_image_folder(root)


def test_on_error_skip_drops_unreadable_and_keeps_alignment(tmp_path):
    _write(tmp_path / "cat" / "ok.png")
    (tmp_path / "cat" / "broken.jpg").write_text("html")
    _write(tmp_path / "dog" / "ok.png", (0, 0, 255))
    assert len(load_image_folder(tmp_path).paths) == 3
    with pytest.warns(UserWarning, match="broken.jpg"):
        data = load_image_folder(tmp_path, on_error="skip")
    assert [p.split("/")[-2:] for p in data.paths] == [["cat", "ok.png"], ["dog", "ok.png"]]
    assert list(data.target) == ["cat", "dog"]


def test_train_val_test_split_is_stratified_and_disjoint(tmp_path):
    data = make_shapes(tmp_path, n_per_class=20, image_size=16)
    train, val, test = train_val_test_split(data, val_size=0.1, test_size=0.2, random_state=0)
    assert (len(train.paths), len(val.paths), len(test.paths)) == (56, 8, 16)
    assert not set(train.paths) & set(val.paths) | set(train.paths) & set(test.paths)
    for part in (train, val, test):
        _, counts = np.unique(part.target, return_counts=True)
        assert counts.max() - counts.min() <= 1  # each class equally represented
    with pytest.raises(ValueError, match="no training"):
        train_val_test_split(data, val_size=0.5, test_size=0.5)


def test_make_shapes_writes_loadable_balanced_set(tmp_path):
    data = make_shapes(tmp_path, n_per_class=3, image_size=20, classes=("circle", "cross"))
    assert data.target_names == ["circle", "cross"]
    assert len(data.paths) == 6
    with Image.open(data.paths[0]) as image:
        assert image.size == (20, 20)


def test_find_images_is_recursive_sorted_and_skips_hidden(tmp_path):
    _write(tmp_path / "b.png")
    _write(tmp_path / "a" / "z.JPG")
    _write(tmp_path / ".hidden" / "x.png")
    _write(tmp_path / ".dot.png")
    (tmp_path / "notes.txt").write_text("x")
    assert find_images(tmp_path) == [str(tmp_path / "a" / "z.JPG"), str(tmp_path / "b.png")]
    assert find_images(tmp_path / "missing") == []


def test_collect_images_keeps_input_order_and_names_the_bad_input(tmp_path):
    _write(tmp_path / "folder" / "b.png")
    _write(tmp_path / "folder" / "a.png")
    odd = tmp_path / "photo.data"  # named explicitly: used whatever its extension
    odd.write_bytes(b"x")
    assert collect_images([odd, tmp_path / "folder"]) == [
        str(odd), str(tmp_path / "folder" / "a.png"), str(tmp_path / "folder" / "b.png")]
    assert collect_images(str(odd)) == [str(odd)]
    with pytest.raises(ImageFolderError, match=r"'.*nowhere' does not exist"):
        collect_images([odd, tmp_path / "nowhere"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageFolderError, match="no image files in folder .*empty"):
        collect_images([tmp_path / "empty"])


def test_make_shapes_writes_whole_files_with_normal_permissions(tmp_path):
    import os
    import stat

    from skanimal.fileio import TMP_PREFIX

    umask = os.umask(0o022)
    try:
        data = make_shapes(tmp_path, n_per_class=2, image_size=16, classes=("square",),
                           file_format="png")
    finally:
        os.umask(umask)
    assert [p.rsplit("/", 1)[-1] for p in data.paths] == ["square_000.png", "square_001.png"]
    for path in data.paths:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
        with Image.open(path) as image:
            assert image.format == "PNG"
    assert not [p for p in (tmp_path / "square").iterdir() if p.name.startswith(TMP_PREFIX)]
    with pytest.raises(ValueError, match="file_format"):
        make_shapes(tmp_path, n_per_class=1, file_format="nope")


def test_a_split_too_small_to_stratify_names_the_part_not_scikit_learns_internals(shapes):
    from skanimal import train_val_test_split

    # 4 classes: a test part of 2 images cannot hold one of each
    with pytest.raises(ValueError, match=r"test_size: a part of 2 of .* 4 classes"):
        train_val_test_split(shapes, val_size=0.25, test_size=2)
