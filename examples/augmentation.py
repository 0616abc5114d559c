"""Data augmentation: train on rotated, flipped, shifted and zoomed copies of the images.

Runs offline on a small data set it generates itself (coloured shapes, one folder per
class) and fits the same pipeline twice, without and with augmentation, printing both
held-out accuracies. Augmentation happens in ``fit`` only: the test images are never
transformed. It uses random backbone weights (``weights=None``) and small images, so it
needs no download and runs in well under a minute on a CPU; with real photos use
``BottleneckFeatures()`` (ImageNet weights, 224 px).

    python examples/augmentation.py [--workdir DIR] [--n-copies N]
"""

import argparse
import tempfile
import time
from pathlib import Path

from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from skanimal import BottleneckClassifier, BottleneckFeatures, make_shapes
from skanimal.augmentation import AugmentedClassifier, ImageAugmentation


def make_model(cache_dir):
    """The plain pipeline: frozen CNN features, then a small Keras head."""
    return make_pipeline(
        BottleneckFeatures(weights=None, image_size=(48, 48), cache=cache_dir),
        BottleneckClassifier(hidden_layer_sizes=(64,), epochs=20, learning_rate=1e-3,
                             random_state=0),
    )


def main(workdir, n_copies=3):
    workdir = Path(workdir)
    data = make_shapes(workdir / "photos", n_per_class=16, image_size=48)
    # A deliberately small training set: where augmentation is meant to help.
    X_train, X_test, y_train, y_test = train_test_split(
        data.paths, data.target, test_size=0.5, stratify=data.target, random_state=0)
    print(f"Generated {len(data.paths)} images of {len(data.target_names)} classes; "
          f"training on {len(X_train)}, testing on {len(X_test)}")
    cache_dir = workdir / "feature-cache"

    start = time.perf_counter()
    plain = make_model(cache_dir).fit(X_train, y_train)
    plain_accuracy = plain.score(X_test, y_test)
    print(f"Without augmentation: trained on {len(X_train)} images in "
          f"{time.perf_counter() - start:.1f} s, held-out accuracy {plain_accuracy:.3f}")

    augmentation = ImageAugmentation(rotation=20, horizontal_flip=True, vertical_flip=True,
                                     shift=0.1, zoom=0.15)
    start = time.perf_counter()
    augmented = AugmentedClassifier(make_model(cache_dir), augmentation=augmentation,
                                    n_copies=n_copies, random_state=0).fit(X_train, y_train)
    augmented_accuracy = augmented.score(X_test, y_test)  # test images are not augmented
    print(f"With augmentation ({n_copies} copies per image): trained on "
          f"{augmented.n_training_samples_} images in {time.perf_counter() - start:.1f} s, "
          f"held-out accuracy {augmented_accuracy:.3f}")
    return plain_accuracy, augmented_accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", help="where to write the images and the feature cache "
                        "(default: a temporary directory)")
    parser.add_argument("--n-copies", type=int, default=3,
                        help="augmented copies per training image (default: 3)")
    args = parser.parse_args()
    if args.workdir:
        main(args.workdir, args.n_copies)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(tmp, args.n_copies)
