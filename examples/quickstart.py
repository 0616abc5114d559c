"""Quick start: a labelled photo folder → a trained, saved, reloaded image classifier.

Runs offline on a small data set it generates itself (coloured shapes, one folder per
class). It uses the ImageNet weights when Keras has them (downloaded or cached) and says
plainly when it has to fall back to random weights instead.

    python examples/quickstart.py [--workdir DIR]
"""

import argparse
import tempfile
import time
from pathlib import Path

import joblib
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from skanimal import (
    BottleneckClassifier,
    BottleneckFeatures,
    imagenet_available,
    load_image_folder,
    make_shapes,
)


def main(workdir):
    workdir = Path(workdir)
    make_shapes(workdir / "photos", n_per_class=40, image_size=64)
    data = load_image_folder(workdir / "photos")
    print(f"Loaded {len(data.paths)} images of {len(data.target_names)} classes: "
          f"{', '.join(data.target_names)}")

    X_train, X_test, y_train, y_test = train_test_split(
        data.paths, data.target, test_size=0.25, stratify=data.target, random_state=0)

    image_size = (64, 64)  # small images keep this demo quick on a CPU; real photos use 224
    weights = "imagenet" if imagenet_available(image_size=image_size) else None
    if weights is None:  # offline and nothing cached: random features do for this easy set
        print("Note: no ImageNet weights here (offline, none cached); using weights=None.")
    pipe = make_pipeline(
        BottleneckFeatures(weights=weights, image_size=image_size),
        BottleneckClassifier(epochs=30, learning_rate=1e-3, random_state=0),
    )
    start = time.perf_counter()
    pipe.fit(X_train, y_train)
    print(f"Trained on {len(X_train)} images in {time.perf_counter() - start:.1f} s")
    accuracy = pipe.score(X_test, y_test)
    print(f"Held-out accuracy: {accuracy:.3f} on {len(X_test)} images")

    model_path = workdir / "shapes.joblib"
    joblib.dump(pipe, model_path)
    reloaded = joblib.load(model_path)
    print(f"Saved to {model_path} ({model_path.stat().st_size / 1e6:.1f} MB) and reloaded")
    for path, label in zip(X_test[:3], reloaded.predict(X_test[:3])):
        print(f"  {Path(path).name}: predicted {label}")
    return accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", help="where to write the images and the model "
                        "(default: a temporary directory)")
    args = parser.parse_args()
    if args.workdir:
        main(args.workdir)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(tmp)
