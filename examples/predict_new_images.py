"""Predict new images: train, save with joblib, reload, and rank classes for unseen images.

Runs offline on small data sets it generates itself (coloured shapes, one folder per
class): it trains a pipeline on one set, saves it with :func:`joblib.dump`, loads it back
as a new user would, and predicts a second, freshly generated set of images, printing the
three most probable classes of each with their probabilities.

Only load joblib files you trust: unpickling runs code. To share a model with others, save
it with :func:`skanimal.save` instead (pickle-free; see the user guide's "Saving and
loading" page).

It uses the ImageNet weights when Keras has them (downloaded or cached) and falls back to
random weights (``weights=None``) when it cannot get them, and uses small images so that it
runs in well under a minute on a CPU; with real photos use ``BottleneckFeatures()``
(ImageNet weights, 224 px).

    python examples/predict_new_images.py [--workdir DIR] [--top-k K]
"""

import argparse
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np
from sklearn.pipeline import make_pipeline

from skanimal import (
    BottleneckClassifier,
    BottleneckFeatures,
    imagenet_available,
    make_shapes,
)

IMAGE_SIZE = (48, 48)  # small images keep this demo quick on a CPU; real photos use 224


def train_and_save(workdir):
    """Fit the pipeline on a generated training set and save it; returns the file."""
    data = make_shapes(workdir / "photos", n_per_class=30, image_size=IMAGE_SIZE[0])
    weights = "imagenet" if imagenet_available(image_size=IMAGE_SIZE) else None
    if weights is None:  # offline and nothing cached: random features do for this easy set
        print("Note: no ImageNet weights here (offline, none cached); using weights=None.")
    pipe = make_pipeline(
        BottleneckFeatures(weights=weights, image_size=IMAGE_SIZE),
        BottleneckClassifier(epochs=40, learning_rate=2e-3, random_state=0),
    )
    start = time.perf_counter()
    pipe.fit(data.paths, data.target)
    print(f"Trained on {len(data.paths)} images of {len(data.target_names)} classes in "
          f"{time.perf_counter() - start:.1f} s")
    model_path = workdir / "shapes.joblib"
    joblib.dump(pipe, model_path)
    print(f"Saved the fitted pipeline to {model_path} ({model_path.stat().st_size / 1e6:.1f} MB)")
    return model_path


def main(workdir, top_k=3):
    workdir = Path(workdir)
    model_path = train_and_save(workdir)

    # Later, maybe in another process: load the model and use it on images it has never seen.
    model = joblib.load(model_path)
    new = make_shapes(workdir / "new_photos", n_per_class=3, image_size=IMAGE_SIZE[0],
                      random_state=1)  # another seed: new shapes, positions and colours
    proba = model.predict_proba(new.paths)  # one row per image, columns in model.classes_
    classes = model.classes_
    k = min(top_k, len(classes))
    top = np.argsort(-proba, axis=1, kind="stable")[:, :k]

    print(f"\nTop-{k} predictions for {len(new.paths)} new images:")
    names = [Path(p).relative_to(workdir).as_posix() for p in new.paths]
    width = max(len(name) for name in names)
    for name, row, ranks in zip(names, proba, top):
        ranked = "   ".join(f"{classes[j]:<8} {row[j]:.3f}" for j in ranks)
        print(f"  {name:<{width}}  {ranked}")

    predicted = classes[top[:, 0]]  # the same as model.predict(new.paths)
    accuracy = float(np.mean(predicted == new.target))
    print(f"\nAccuracy on the new images: {accuracy:.3f} ({int(np.sum(predicted == new.target))}"
          f" of {len(new.paths)} correct)")
    return accuracy, proba


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", help="where to write the images and the model "
                        "(default: a temporary directory, deleted afterwards)")
    parser.add_argument("--top-k", type=int, default=3,
                        help="number of most probable classes to show per image (default: 3)")
    args = parser.parse_args()
    if args.workdir:
        main(args.workdir, args.top_k)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(tmp, args.top_k)
