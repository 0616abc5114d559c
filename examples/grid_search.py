"""Grid search: tune the classifier head with GridSearchCV, extracting each image's features once.

Runs offline on a small data set it generates itself (coloured shapes, one folder per
class). ``GridSearchCV`` fits the whole pipeline
``make_pipeline(BottleneckFeatures(), BottleneckClassifier())`` for every combination of
the head's ``learning_rate`` and ``hidden_layer_sizes`` on every one of 3 folds, and once
more on all the data. Every one of those fits transforms images with the frozen CNN, but the
content-addressed feature cache means each image goes through the CNN only the first time:
the example checks with :func:`skanimal.cache_info` that the cache holds exactly one entry
per image afterwards.

It uses the ImageNet weights when Keras has them (downloaded or cached) and falls back to
random weights (``weights=None``) when it cannot get them, and uses small images so that it
runs in well under a minute on a CPU; with real photos use ``BottleneckFeatures()``
(ImageNet weights, 224 px).

    python examples/grid_search.py [--workdir DIR]
"""

import argparse
import logging
import tempfile
import time
from pathlib import Path

from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline

from skanimal import (
    BottleneckClassifier,
    BottleneckFeatures,
    cache_info,
    clear_cache,
    imagenet_available,
    make_shapes,
)

IMAGE_SIZE = (48, 48)  # small images keep this demo quick on a CPU; real photos use 224


def main(workdir):
    # Each fold builds a new Keras head, and TensorFlow warns about the retracing; harmless.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    workdir = Path(workdir)
    data = make_shapes(workdir / "photos", n_per_class=24, image_size=IMAGE_SIZE[0])
    X_train, X_test, y_train, y_test = train_test_split(
        data.paths, data.target, test_size=0.25, stratify=data.target, random_state=0)
    print(f"Generated {len(data.paths)} images of {len(data.target_names)} classes; "
          f"searching on {len(X_train)}, testing on {len(X_test)}")

    # A cache directory of this example's own, emptied first, so that its entry count
    # means something. Without cache=..., the default cache ($SKANIMAL_CACHE_DIR or the
    # per-user cache directory) is used, and shared by every skanimal run.
    cache_dir = workdir / "feature-cache"
    clear_cache(cache_dir)

    weights = "imagenet" if imagenet_available(image_size=IMAGE_SIZE) else None
    if weights is None:  # offline and nothing cached: random features do for this easy set
        print("Note: no ImageNet weights here (offline, none cached); using weights=None.")
    pipe = make_pipeline(
        BottleneckFeatures(weights=weights, image_size=IMAGE_SIZE,
                           cache=cache_dir),
        BottleneckClassifier(epochs=15, random_state=0),
    )
    grid = {
        "bottleneckclassifier__learning_rate": [1e-3, 3e-3],
        "bottleneckclassifier__hidden_layer_sizes": [(32,), (100, 50)],
    }
    search = GridSearchCV(pipe, grid, cv=3)  # stratified folds: the head is a classifier
    start = time.perf_counter()
    search.fit(X_train, y_train)
    elapsed = time.perf_counter() - start
    n_candidates = len(search.cv_results_["params"])
    n_fits = n_candidates * search.n_splits_ + 1  # + 1: the refit on all training images
    print(f"Fitted {n_fits} pipelines ({n_candidates} candidates x {search.n_splits_} folds "
          f"+ refit) in {elapsed:.1f} s")

    print()
    print("rank  mean accuracy  (std)    learning_rate  hidden_layer_sizes")
    results = search.cv_results_
    for i in sorted(range(n_candidates), key=lambda i: results["rank_test_score"][i]):
        params = results["params"][i]
        print(f"{results['rank_test_score'][i]:>4}  {results['mean_test_score'][i]:>13.3f}  "
              f"({results['std_test_score'][i]:.3f})  "
              f"{params['bottleneckclassifier__learning_rate']:>13g}  "
              f"{params['bottleneckclassifier__hidden_layer_sizes']}")
    print()
    print(f"Best parameters: {search.best_params_}")
    print(f"Best cross-validated accuracy: {search.best_score_:.3f}")

    accuracy = search.score(X_test, y_test)  # the refitted best pipeline
    print(f"Held-out accuracy: {accuracy:.3f} on {len(X_test)} images")

    # Every fit above transformed its images, yet the CNN saw each image only once.
    info = cache_info(cache_dir)
    n_images = len(X_train) + len(X_test)
    print(f"Feature cache {info['directory']}: {info['entries']} entries for {n_images} "
          f"distinct images ({'each extracted once' if info['entries'] == n_images else 'MISMATCH'}"
          f"; without the cache the CNN would have run {n_fits * len(X_train) + len(X_test)} "
          "times)")
    return search, info, n_images


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", help="where to write the images and the feature cache "
                        "(default: a temporary directory)")
    args = parser.parse_args()
    if args.workdir:
        main(args.workdir)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(tmp)
