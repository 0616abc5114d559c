"""audit_folder: planted wrong labels come out on top; duplicates and near-duplicates found."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skanimal import ImageFolderError
from skanimal.audit import audit_folder

from .conftest import ANIMALS_DEV

SHARED_WEIGHTS = ANIMALS_DEV.parents[1] / "weights" / "mobilenet_v2_1.0_pretrained_notop.weights.h5"
RANDOM = dict(weights=None, image_size=(48, 48))  # the shapes fixture's own size


@pytest.fixture
def shapes_copy(shapes, tmp_path):
    shutil.copytree(shapes.root, tmp_path / "data")
    return tmp_path / "data"


def plant(root, n, source="circle", target="square"):
    """Move ``n`` photos of one class into another's folder; returns their new paths."""
    planted = []
    for path in sorted((root / source).iterdir())[:n]:
        planted.append(root / target / f"planted_{path.name}")
        path.rename(planted[-1])
    return planted


def test_planted_wrong_labels_come_first(shapes_copy):
    planted = plant(shapes_copy, 3)
    result = audit_folder(shapes_copy, **RANDOM)
    assert result.n_images == 96
    top = result.suspects[:3]
    assert sorted(r["path"] for r in top) == sorted(str(p) for p in planted)
    assert all(r["label"] == "square" and r["suggested"] == "circle" for r in top)
    probabilities = [r["label_probability"] for r in result.suspects]
    assert probabilities == sorted(probabilities)
    assert len(result.suspects) <= 12  # the clean photos (93) are not flagged wholesale


def test_exact_duplicates_across_classes_and_parts(shapes, tmp_path):
    root = tmp_path / "data"
    for part, names in (("train", slice(0, 16)), ("test", slice(16, 24))):
        for label in ("circle", "square", "triangle", "cross"):
            (root / part / label).mkdir(parents=True)
            for path in sorted(Path(shapes.root, label).iterdir())[names]:
                shutil.copy(path, root / part / label / path.name)
    leaked = root / "train" / "circle" / "circle_000.jpg"
    shutil.copy(leaked, root / "test" / "circle" / "again.jpg")
    mislabelled = root / "train" / "square" / "square_001.jpg"
    shutil.copy(mislabelled, root / "train" / "cross" / "also_a_cross.jpg")
    result = audit_folder(root, **RANDOM)
    groups = {}
    for row in result.duplicates:
        groups.setdefault(row["group"], []).append(row)
    kinds = sorted((rows[0]["kind"], sorted(Path(r["path"]).name for r in rows))
                   for rows in groups.values())
    assert kinds == [("different classes", ["also_a_cross.jpg", "square_001.jpg"]),
                     ("train/test split", ["again.jpg", "circle_000.jpg"])]
    assert {r["part"] for r in groups[2]} == {"train", "test"}


def test_near_duplicates_are_found(shapes_copy):
    original = shapes_copy / "triangle" / "triangle_004.jpg"
    with Image.open(original) as image:
        image.resize((46, 46)).save(shapes_copy / "cross" / "resized.jpg", quality=85)
    result = audit_folder(shapes_copy, **RANDOM)
    pairs = [{Path(r["path"]).name, Path(r["other_path"]).name} for r in result.near_duplicates]
    assert {"triangle_004.jpg", "resized.jpg"} in pairs
    first = next(r for r in result.near_duplicates
                 if {Path(r["path"]).name, Path(r["other_path"]).name}
                 == {"triangle_004.jpg", "resized.jpg"})
    assert first["kind"] == "different classes" and first["similarity"] >= 0.97
    strict = audit_folder(shapes_copy, near_duplicate_similarity=0.999999, **RANDOM)
    assert len(strict.near_duplicates) < len(result.near_duplicates)


def test_bad_layouts_fail_in_one_line(tmp_path, shapes_copy):
    with pytest.raises(ImageFolderError, match="does not exist"):
        audit_folder(tmp_path / "nowhere", **RANDOM)
    for path in list((shapes_copy / "cross").iterdir())[1:]:
        path.unlink()
    with pytest.raises(ImageFolderError, match="'cross' has 1"):
        audit_folder(shapes_copy, **RANDOM)


@pytest.mark.slow
def test_planted_wrong_labels_in_real_photos(animals_dev, tmp_path):
    if not SHARED_WEIGHTS.exists():
        pytest.skip(f"shared weights not available at {SHARED_WEIGHTS}")
    root = tmp_path / "animals"
    for path, label in zip(animals_dev.paths, animals_dev.target):
        (root / label).mkdir(parents=True, exist_ok=True)
        (root / label / Path(path).name).symlink_to(path)
    # Spread over the class (not 4 near-identical shots of one subject, which, filed
    # together, would teach the cross-validated model their wrong label).
    planted, truth = [], {}
    for source, target in (("butterfly", "cat"), ("horse", "chicken")):
        for link in sorted((root / source).iterdir())[::13][:2]:
            planted.append(root / target / f"planted_{link.name}")
            truth[str(planted[-1])] = source
            link.rename(planted[-1])
    result = audit_folder(root, backbone="mobilenet_v2", weights=SHARED_WEIGHTS)
    top = result.suspects[:4]
    assert sorted(r["path"] for r in top) == sorted(map(str, planted))
    assert all(r["suggested"] == truth[r["path"]] for r in top)
    # The butterflies are unlike every cat: outliers of their folder too (the two horses
    # planted among the chickens stay just under the default fence).
    butterflies = {str(p) for p in planted if truth[str(p)] == "butterfly"}
    assert butterflies <= {r["path"] for r in result.outliers[:6]}
    assert len(result.outliers) <= 12  # of 240 photos


def stray(path, seed=0):
    """A photo that is none of the classes: coloured noise."""
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(path)
    return path


def test_a_photo_unlike_its_class_is_the_first_outlier(shapes_copy):
    planted = stray(shapes_copy / "square" / "noise.png")
    result = audit_folder(shapes_copy, **RANDOM)
    assert result.outliers[0]["path"] == str(planted)
    assert result.outliers[0]["label"] == "square"
    assert Path(result.outliers[0]["nearest"]).parent.name == "square"
    distances = [r["distance"] for r in result.outliers]
    assert distances == sorted(distances, reverse=True)
    assert min(distances) > result.outlier_threshold
    assert len(result.outliers) <= 10  # the 96 clean photos are not flagged wholesale
    assert audit_folder(shapes_copy, outlier_fence=None, **RANDOM).outliers == []
    for bad in (-1, True, "1.5"):
        with pytest.raises(ValueError, match="outlier_fence"):
            audit_folder(shapes_copy, outlier_fence=bad, **RANDOM)
