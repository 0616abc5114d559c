"""Report and plots: train with a validation part, then write a test-set report folder.

Runs offline on a small data set it generates itself (coloured shapes, one folder per
class), split into stratified train, validation and test parts with
:func:`skanimal.train_val_test_split`. The pipeline trains on the train part while Keras
scores the validation part after every epoch (the head's ``validation_data``, as
``skanimal train`` does; without a validation part of your own, the head's
``validation_split`` holds out a stratified fraction of the training images instead), so
the training curves show both; :func:`skanimal.report.write_report` then evaluates the
test part and writes ``metrics.json``, ``classification_report.txt`` and three PNG plots
(confusion matrix, training curves, misclassified images).

It uses the ImageNet weights when Keras has them (downloaded or cached) and falls back to
random weights (``weights=None``) when it cannot get them, and uses small images so that it
runs in well under a minute on a CPU; with real photos use ``BottleneckFeatures()``
(ImageNet weights, 224 px).

    python examples/report_and_plots.py [--workdir DIR]
"""

import argparse
import tempfile
import time
from pathlib import Path

from sklearn.pipeline import make_pipeline

from skanimal import (
    BottleneckClassifier,
    BottleneckFeatures,
    imagenet_available,
    make_shapes,
    train_val_test_split,
)
from skanimal.report import write_report

IMAGE_SIZE = (48, 48)  # small images keep this demo quick on a CPU; real photos use 224


def main(workdir):
    workdir = Path(workdir)
    data = make_shapes(workdir / "photos", n_per_class=30, image_size=IMAGE_SIZE[0])
    train, val, test = train_val_test_split(data, val_size=0.15, test_size=0.25,
                                            random_state=0)
    sizes = {"train": len(train.paths), "val": len(val.paths), "test": len(test.paths)}
    print(f"Generated {len(data.paths)} images of {len(data.target_names)} classes; split "
          f"into {sizes['train']} train, {sizes['val']} validation, {sizes['test']} test")

    weights = "imagenet" if imagenet_available(image_size=IMAGE_SIZE) else None
    if weights is None:  # offline and nothing cached: random features do for this easy set
        print("Note: no ImageNet weights here (offline, none cached); using weights=None.")
    pipe = make_pipeline(
        BottleneckFeatures(weights=weights, image_size=IMAGE_SIZE),
        BottleneckClassifier(epochs=30, learning_rate=1e-3, random_state=0),
    )
    start = time.perf_counter()
    # The head is validated on features, not on image files: extract the validation part's
    # features with the pipeline's own (still unfitted) first step. They are cached, so this
    # costs nothing more. Without a validation part of its own, BottleneckClassifier(
    # validation_split=0.2) would hold out a stratified 20 % of the training images instead.
    val_features = pipe[0].fit(val.paths).transform(val.paths)
    pipe.fit(train.paths, train.target,
             bottleneckclassifier__validation_data=(val_features, val.target))
    fit_s = time.perf_counter() - start
    history = pipe[-1].history_
    print(f"Trained for {len(history['loss'])} epochs in {fit_s:.1f} s; last epoch: "
          f"training accuracy {history['accuracy'][-1]:.3f}, validation accuracy "
          f"{history['val_accuracy'][-1]:.3f}")

    report_dir = workdir / "report"
    metrics = write_report(pipe, test.paths, test.target, report_dir, sizes=sizes,
                           timings={"fit_s": round(fit_s, 3)})
    print(f"Test accuracy: {metrics['accuracy']:.3f} on {metrics['n_samples']} images "
          f"(log loss {metrics['log_loss']:.4f})")
    print(f"Wrote the report to {report_dir}:")
    for name in metrics["files"]:
        path = report_dir / name
        print(f"  {name:<27} {path.stat().st_size / 1e3:8.1f} kB")
    return metrics, report_dir


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", help="where to write the images and the report "
                        "(default: a temporary directory, deleted afterwards)")
    args = parser.parse_args()
    if args.workdir:
        main(args.workdir)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(tmp)
