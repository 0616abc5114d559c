"""The ``skanimal`` command: train, evaluate and use image classifiers from the shell.

::

    skanimal train photos/ -o animals.joblib --report-dir report/
    skanimal evaluate animals.joblib more_photos/
    skanimal predict animals.joblib new_photo.jpg holiday/ --top-k 3 --format csv
    skanimal demo
    skanimal cache info

Every command mirrors the Python API: ``train`` builds
``make_pipeline(BottleneckFeatures(...), BottleneckClassifier(...))`` from its options (same
names, same defaults) and saves it with :func:`joblib.dump`; ``evaluate`` and ``predict`` load
such a file. Exit status: 0 on success, 2 for usage errors, 1 for data errors (missing or
unreadable images or folders, unavailable weights, a file that is not a skanimal model), each
reported as one line ``skanimal: error: <cause>`` on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import re
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

from . import __version__
from .backbones import available_backbones, get_spec
from .exceptions import SkanimalError

__all__ = ["main", "build_parser"]

PROG = "skanimal"

#: Errors reported as one ``skanimal: error: ...`` line with exit status 1. ``OSError``
#: covers ``FileNotFoundError`` and ``PermissionError``; ``SkanimalError`` covers
#: ``ImageLoadError``, ``ImageFolderError``, ``WeightsUnavailableError`` and
#: ``IncompatibleModelError``.
DATA_ERRORS = (SkanimalError, OSError)

# C++ log lines TensorFlow/XLA write straight to file descriptor 2 at start-up, which
# TF_CPP_MIN_LOG_LEVEL does not silence in current releases.
_TF_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\)"
    r"|[IWE]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w./-]+:\d+\]"
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] "
    r"|To enable the following instructions:)"
)


# ------------------------------------------------------------------------------ quiet TF


class _TensorFlowLogFilter:
    """Filter TensorFlow's C++ log lines out of file descriptor 2 while a command runs.

    TensorFlow and XLA log from C++ straight to file descriptor 2 (start-up banners, CUDA
    probing, graph warnings), and current releases ignore ``TF_CPP_MIN_LOG_LEVEL`` for part
    of it. Inside this context, fd 2 is a pipe read by a thread that forwards everything else
    (Python warnings, progress bars, tracebacks) unchanged and as it comes. A no-op when
    ``sys.stderr`` has no file descriptor (e.g. under pytest's ``capsys``).
    """

    def __enter__(self):
        self._fd = None
        try:
            fd = sys.stderr.fileno()
            sys.stderr.flush()
            saved = os.dup(fd)
        except (AttributeError, OSError, ValueError):
            return self
        read_end, write_end = os.pipe()
        os.dup2(write_end, fd)
        os.close(write_end)
        self._fd, self._saved, self._read_end = fd, saved, read_end
        self._thread = threading.Thread(target=self._pump, name="skanimal-stderr",
                                        daemon=True)
        self._thread.start()
        return self

    def _write(self, data):
        while data:
            try:
                written = os.write(self._saved, data)
            except OSError:
                return
            data = data[written:]

    def _pump(self):
        pending = b""
        while True:
            try:
                chunk = os.read(self._read_end, 1 << 16)
            except OSError:
                chunk = b""
            pending += chunk
            keep = []
            start = 0
            for match in re.finditer(rb"[\r\n]", pending):
                segment = pending[start:match.end()]
                start = match.end()
                if not _TF_NOISE.match(segment.decode("utf-8", "replace")):
                    keep.append(segment)
            pending = pending[start:]
            # A partial line (a progress bar, a prompt) goes out at once unless it starts
            # like a log line (log lines arrive whole, in one write); at EOF, whatever is left.
            if pending and not _TF_NOISE.match(pending.decode("utf-8", "replace")):
                keep.append(pending)
                pending = b""
            elif not chunk:
                pending = b""
            self._write(b"".join(keep))
            if not chunk:
                return

    def __exit__(self, *exc_info):
        if self._fd is None:
            return False
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(self._saved, self._fd)  # closes the pipe's write end: the pump sees EOF
        self._thread.join(timeout=5)
        if not self._thread.is_alive():  # else a child process still holds the pipe: leave
            os.close(self._read_end)     # both descriptors to the (daemon) pump thread
            os.close(self._saved)
        return False


def _start_tensorflow():
    """Import TensorFlow and initialise its devices without their start-up chatter."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.config.list_physical_devices()  # device discovery (CUDA probing) happens here
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # pragma: no cover - absl comes with TensorFlow
        pass
    tf.get_logger().setLevel("ERROR")


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Print Python warnings as one ``skanimal: warning: ...`` line."""
    text = " ".join(str(message).split())
    print(f"{PROG}: warning: {text}", file=file or sys.stderr)


# ---------------------------------------------------------------------------- arguments


def _fraction_or_count(text):
    """``0.1`` (a fraction of all images, in [0, 1)) or ``10`` (a number of images)."""
    try:
        value = int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a fraction or a count, got {text!r}")
        if not 0 <= value < 1:
            raise argparse.ArgumentTypeError(f"a fraction must be in [0, 1), got {text}")
        return value
    if value < 0:
        raise argparse.ArgumentTypeError(f"a count must be >= 0, got {text}")
    return value


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _image_size(text):
    """``224`` (square) or ``HEIGHTxWIDTH``."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        size = ()
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) < 1:
        raise argparse.ArgumentTypeError(f"expected N or HEIGHTxWIDTH in pixels, got {text!r}")
    return size


def _weights(text):
    return None if text.lower() == "none" else text


def _pooling(text):
    value = text.lower()
    if value not in ("none", "avg", "max"):
        raise argparse.ArgumentTypeError(f"choose from none, avg, max (got {text!r})")
    return None if value == "none" else value


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keep the line breaks of descriptions and epilogs."""


def build_parser():
    """The :mod:`argparse` parser of the ``skanimal`` command.

    Returns
    -------
    argparse.ArgumentParser
    """
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Image classifiers by transfer learning: frozen ImageNet CNN features "
                    "plus a small Keras head, saved as a scikit-learn pipeline.",
        epilog="Run 'skanimal COMMAND --help' for the options of each command. "
               "Start with 'skanimal demo'.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND",
                                     required=True)

    progress = argparse.ArgumentParser(add_help=False)
    progress.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None,
        help="show progress bars while extracting features; default: when stderr is a "
             "terminal",
    )

    # -- train ------------------------------------------------------------------------------
    train = commands.add_parser(
        "train", parents=[progress], formatter_class=_Formatter,
        help="train a classifier on a class-per-folder image set and save it",
        description=(
            "Train BottleneckFeatures + BottleneckClassifier on DATA_DIR/<class>/<images>.\n\n"
            "The images are split into stratified train, validation and test parts\n"
            "(skanimal.train_val_test_split). Features of every image are extracted once\n"
            "(and cached); the head trains on the train part, with the validation part as\n"
            "Keras validation_data (validation curves in the report), and is then scored on\n"
            "the validation and test parts. The fitted pipeline is saved with joblib."
        ),
        epilog="example: skanimal train photos/ -o animals.joblib --report-dir report/",
    )
    train.add_argument("data_dir", metavar="DATA_DIR", help="folder with one sub-folder of "
                       "images per class")
    train.add_argument("-o", "--output", metavar="MODEL", required=True,
                       help="file to save the fitted pipeline to (joblib)")
    train.add_argument("--val-size", type=_fraction_or_count, default=0.1, metavar="SIZE",
                       help="validation part: a fraction of all images (0.1) or a number of "
                            "images (50); default: %(default)s")
    train.add_argument("--test-size", type=_fraction_or_count, default=0.1, metavar="SIZE",
                       help="test part, like --val-size; default: %(default)s")
    train.add_argument("--backbone", choices=available_backbones(), default="vgg16",
                       help="frozen ImageNet CNN; default: %(default)s")
    train.add_argument("--weights", type=_weights, default="imagenet", metavar="WEIGHTS",
                       help="'imagenet' (downloaded once by Keras), 'none' (random, for tests) "
                            "or the path of a Keras 'notop' weights file (offline); "
                            "default: %(default)s")
    train.add_argument("--image-size", type=_image_size, default=None, metavar="N",
                       help="resize images to N×N (or HEIGHTxWIDTH) pixels; default: the "
                            "backbone's own, 224 for vgg16")
    train.add_argument("--pooling", type=_pooling, default=None, metavar="{none,avg,max}",
                       help="'none' flattens the last feature map, 'avg'/'max' pool it; "
                            "default: none")
    train.add_argument("--epochs", type=_positive_int, default=7, metavar="N",
                       help="training epochs; default: %(default)s")
    train.add_argument("--batch-size", type=_positive_int, default=50, metavar="N",
                       help="images per gradient update; default: %(default)s")
    train.add_argument("--learning-rate", type=_positive_float, default=1e-4, metavar="RATE",
                       help="RMSprop learning rate; default: %(default)s")
    train.add_argument("--random-state", type=int, default=0, metavar="SEED",
                       help="seed of the split and of the head's training; "
                            "default: %(default)s")
    train.add_argument("--report-dir", metavar="DIR",
                       help="also write a test-set report here (metrics.json, "
                            "classification_report.txt, PNG plots)")
    train.add_argument("--no-cache", dest="cache", action="store_false",
                       help="do not read or write the feature cache")
    train.set_defaults(func=_cmd_train, check=_check_train_args, command_parser=train)

    # -- evaluate ---------------------------------------------------------------------------
    evaluate = commands.add_parser(
        "evaluate", parents=[progress], formatter_class=_Formatter,
        help="score a saved model on a class-per-folder image set",
        description="Print the accuracy, log loss and per-class precision, recall and F1 of\n"
                    "a saved model on every image of DATA_DIR/<class>/<images>.\n\n"
                    "Only load model files you trust: joblib files can run code when loaded.",
        epilog="example: skanimal evaluate animals.joblib photos/test --report-dir report/",
    )
    evaluate.add_argument("model", metavar="MODEL", help="a model saved by 'skanimal train'")
    evaluate.add_argument("data_dir", metavar="DATA_DIR",
                          help="folder with one sub-folder of images per class")
    evaluate.add_argument("--report-dir", metavar="DIR",
                          help="also write metrics.json, classification_report.txt and plots")
    evaluate.set_defaults(func=_cmd_evaluate)

    # -- predict ----------------------------------------------------------------------------
    predict = commands.add_parser(
        "predict", parents=[progress], formatter_class=_Formatter,
        help="predict the class of images with a saved model",
        description="Print the top-k classes and probabilities of each image. Folders are\n"
                    "searched recursively for image files (jpg, jpeg, png, bmp, gif, webp,\n"
                    "tif, tiff); files named explicitly are used whatever their extension.\n\n"
                    "Only load model files you trust: joblib files can run code when loaded.",
        epilog="example: skanimal predict animals.joblib photo.jpg holiday/ --format csv",
    )
    predict.add_argument("model", metavar="MODEL", help="a model saved by 'skanimal train'")
    predict.add_argument("inputs", metavar="IMAGE_OR_DIR", nargs="+",
                         help="image files and/or folders of images")
    predict.add_argument("--top-k", type=_positive_int, default=3, metavar="K",
                         help="number of most probable classes to show per image; "
                              "default: %(default)s")
    predict.add_argument("--format", choices=("table", "csv", "json"), default="table",
                         help="output format; default: %(default)s")
    predict.set_defaults(func=_cmd_predict)

    # -- demo -------------------------------------------------------------------------------
    demo = commands.add_parser(
        "demo", formatter_class=_Formatter,
        help="the quick start on a generated image set (offline, under a minute)",
        description="Generate a small class-per-folder set of coloured shapes, train on it,\n"
                    "print the held-out accuracy, then save, reload and use the model.\n"
                    "Uses the ImageNet weights when Keras has them and falls back to random\n"
                    "weights (fine for this easy set) when they cannot be downloaded.",
    )
    demo.add_argument("--workdir", metavar="DIR",
                      help="keep the images, the model and a report here (default: a "
                           "temporary folder, deleted afterwards)")
    demo.set_defaults(func=_cmd_demo)

    # -- cache ------------------------------------------------------------------------------
    cache = commands.add_parser(
        "cache", formatter_class=_Formatter,
        help="inspect or clear the feature cache",
        description="The feature cache keeps the CNN features of every image seen, keyed by\n"
                    "image content and extraction settings. Default location:\n"
                    "$SKANIMAL_CACHE_DIR, else the platform's user cache folder.",
    )
    cache_commands = cache.add_subparsers(title="actions", dest="action", metavar="ACTION",
                                          required=True)
    cache_dir = argparse.ArgumentParser(add_help=False)
    cache_dir.add_argument("--dir", metavar="DIR", help="cache folder (default: the default "
                           "cache)")
    info = cache_commands.add_parser("info", parents=[cache_dir], formatter_class=_Formatter,
                                     help="show the cache's location and size",
                                     description="Show the cache's location and size.")
    info.set_defaults(func=_cmd_cache_info)
    clear = cache_commands.add_parser("clear", parents=[cache_dir], formatter_class=_Formatter,
                                      help="delete every cached feature vector",
                                      description="Delete every cached feature vector (other "
                                                  "files in the folder are left alone).")
    clear.set_defaults(func=_cmd_cache_clear)
    _add_review_parser(commands)
    return parser


# ------------------------------------------------------------------------------- helpers


def _progress(args):
    if args.progress is not None:
        return int(bool(args.progress))
    try:
        return int(sys.stderr.isatty())
    except (AttributeError, ValueError):
        return 0


def _format_bytes(n):
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


def _class_counts(target):
    import numpy as np

    names, counts = np.unique(np.asarray(target, dtype=str), return_counts=True)
    return ", ".join(f"{name} {count}" for name, count in zip(names, counts))


def _load_data(data_dir):
    from .datasets import load_image_folder

    data = load_image_folder(data_dir)
    print(f"Loaded {len(data.paths)} images of {len(data.target_names)} classes from "
          f"{data_dir}: {_class_counts(data.target)}")
    return data


def _features_step(pipeline):
    from .features import BottleneckFeatures

    for _, step in getattr(pipeline, "steps", []):
        if isinstance(step, BottleneckFeatures):
            return step
    return None


def _load_model(path):
    """Load a saved skanimal pipeline, or raise a one-line data error."""
    path = Path(path)
    if not path.exists():
        raise SkanimalError(f"model file {str(path)!r} does not exist")
    if path.is_dir():
        raise SkanimalError(f"model file {str(path)!r} is a directory")
    _start_tensorflow()
    import joblib
    from sklearn.pipeline import Pipeline
    from sklearn.utils.validation import check_is_fitted

    try:
        model = joblib.load(path)
    except SkanimalError:
        raise
    except Exception as exc:  # pickle, EOF, KeyError, ImportError... all mean "not ours"
        raise SkanimalError(
            f"{str(path)!r} is not a skanimal model file ({type(exc).__name__}: {exc})"
        ) from exc
    model = getattr(model, "best_estimator_", model)  # a saved GridSearchCV works too
    if not (isinstance(model, Pipeline) and _features_step(model) is not None
            and hasattr(model, "predict_proba")):
        raise SkanimalError(
            f"{str(path)!r} is not a skanimal model: expected a pipeline of BottleneckFeatures "
            f"and a classifier (as saved by 'skanimal train'), found {type(model).__name__}"
        )
    try:
        check_is_fitted(model)
    except Exception as exc:
        raise SkanimalError(f"the model in {str(path)!r} is not fitted") from exc
    return model


def _save_model(pipeline, output):
    """joblib.dump to a temporary file beside ``output``, then rename (no half-written file)."""
    import joblib

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp",
                                         dir=output.parent)
    os.close(handle)
    try:
        joblib.dump(pipeline, temporary)
        os.replace(temporary, output)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return output.stat().st_size


def _check_known_classes(target, classes, data_dir):
    # The same test as the report's, so that a mismatch is this one-line error, not its
    # ValueError later (e.g. a model trained on integer labels, folders named "0", "1").
    import numpy as np

    from .report import _unknown_labels

    unknown = _unknown_labels(target, classes)
    if unknown:
        raise SkanimalError(
            f"{data_dir} has classes the model was not trained on: {unknown} "
            f"(the model knows {np.asarray(classes).tolist()})"
        )


def _print_scores(name, metrics):
    print(f"{name:<11} accuracy {metrics['accuracy']:.3f}   loss {metrics['log_loss']:.4f}   "
          f"({metrics['n_samples']} images)")


# ------------------------------------------------------------------------------ commands


def train(data_dir, output, *, val_size=0.1, test_size=0.1, backbone="vgg16",
          weights="imagenet", image_size=None, pooling=None, epochs=7, batch_size=50,
          learning_rate=1e-4, random_state=0, report_dir=None, cache=True, progress=0):
    """What ``skanimal train`` does, printing progress and scores to stdout.

    Parameters
    ----------
    data_dir : path-like
        Class-per-folder image set (:func:`skanimal.load_image_folder`).
    output : path-like
        Where to save the fitted pipeline (joblib).
    val_size, test_size : float or int
        Passed to :func:`skanimal.train_val_test_split`.
    backbone, weights, image_size, pooling, cache : see :class:`skanimal.BottleneckFeatures`
    epochs, batch_size, learning_rate, random_state : see :class:`skanimal.BottleneckClassifier`
        ``random_state`` also seeds the split.
    report_dir : path-like, optional
        Write the test-set report here (:func:`skanimal.report.write_report`'s files).
    progress : int, default=0
        ``BottleneckFeatures(verbose=...)``: 1 shows a progress bar.

    Returns
    -------
    dict
        ``pipeline`` (the fitted pipeline), ``test`` (the test part), ``sizes``, ``timings``
        and ``metrics`` (:func:`skanimal.report.evaluate`-style dicts for ``"val"`` and
        ``"test"``).
    """
    import numpy as np
    from sklearn.pipeline import make_pipeline

    from .classifier import BottleneckClassifier
    from .datasets import train_val_test_split
    from .features import BottleneckFeatures
    from .report import _complete_metrics, _compute_metrics, _predict, _write_report_files

    start = time.perf_counter()
    data = _load_data(data_dir)
    if len(data.target_names) < 2:
        raise SkanimalError(f"{data_dir} has only one class ({data.target_names[0]!r}); a "
                            "classifier needs at least two class sub-folders")
    try:
        parts = train_val_test_split(data, val_size=val_size, test_size=test_size,
                                     random_state=random_state)
    except ValueError as exc:
        raise SkanimalError(f"cannot split {len(data.paths)} images into train/validation/"
                            f"test parts: {exc}") from exc
    train_part, val_part, test_part = parts
    sizes = {"train": len(train_part.paths), "val": len(val_part.paths),
             "test": len(test_part.paths)}
    print(f"Split (stratified, random_state={random_state}): {sizes['train']} train, "
          f"{sizes['val']} validation, {sizes['test']} test")
    if report_dir is not None and not sizes["test"]:
        raise SkanimalError("a report needs a test part: use a test size > 0")

    _start_tensorflow()
    features = BottleneckFeatures(backbone, weights=weights, image_size=image_size,
                                  pooling=pooling, cache=cache, verbose=progress)
    features.fit()
    height, width = features._resolved_image_size()
    weights_name = "none" if weights is None else weights
    print(f"Extracting {backbone} features ({height}x{width} px, weights={weights_name}, "
          f"pooling={pooling or 'none'}, {features.n_features_out_} features per image)")
    t0 = time.perf_counter()
    everything = np.concatenate([train_part.paths, val_part.paths, test_part.paths])
    matrix = features.transform(everything)
    extract_s = time.perf_counter() - t0
    bounds = np.cumsum([0, sizes["train"], sizes["val"], sizes["test"]])
    F_train, F_val, F_test = (matrix[a:b] for a, b in zip(bounds[:-1], bounds[1:]))
    print(f"Extracted features of {len(everything)} images in {extract_s:.1f} s")

    head = BottleneckClassifier(epochs=epochs, batch_size=batch_size,
                                learning_rate=learning_rate, random_state=random_state)
    t0 = time.perf_counter()
    head.fit(F_train, train_part.target,
             validation_data=(F_val, val_part.target) if sizes["val"] else None)
    fit_s = time.perf_counter() - t0
    history = head.history_
    print(f"Trained the classifier head for {epochs} epochs in {fit_s:.1f} s "
          f"(last epoch: training loss {history['loss'][-1]:.4f}, accuracy "
          f"{history['accuracy'][-1]:.3f})")
    features.set_params(verbose=0)  # the saved model stays quiet in Python
    pipeline = make_pipeline(features, head)

    results = {}
    for key, name, F, part in (("val", "Validation", F_val, val_part),
                               ("test", "Test", F_test, test_part)):
        if len(part.paths):
            classes, proba, predicted = _predict(head, F)
            results[key] = (_compute_metrics(part.target, predicted, proba, classes), predicted)
            _print_scores(name, results[key][0])

    size = _save_model(pipeline, output)
    print(f"Saved the model to {output} ({_format_bytes(size)})")
    timings = {"extract_s": round(extract_s, 3), "fit_s": round(fit_s, 3),
               "total_s": round(time.perf_counter() - start, 3)}
    if report_dir is not None:
        metrics, predicted = results["test"]
        metrics = _complete_metrics(metrics, pipeline, sizes=sizes, timings=timings)
        if "val" in results:
            metrics["validation"] = {k: results["val"][0][k] for k in ("accuracy", "log_loss")}
        _write_report_files(report_dir, metrics, test_part.paths, test_part.target, predicted,
                            pipeline)
        print(f"Wrote the test-set report to {report_dir}")
    return {"pipeline": pipeline, "test": test_part, "sizes": sizes, "timings": timings,
            "metrics": {key: value[0] for key, value in results.items()}}


def _check_train_args(args, parser):
    """Usage errors argparse cannot see alone (they exit with status 2)."""
    spec = get_spec(args.backbone)
    if args.image_size is not None and min(args.image_size) < spec.min_size:
        parser.error(f"argument --image-size: {args.backbone} needs images of at least "
                     f"{spec.min_size}x{spec.min_size} pixels")
    if args.report_dir is not None and args.test_size == 0:
        parser.error("--report-dir needs a test part: use --test-size > 0")
    fractions = [size for size in (args.val_size, args.test_size) if isinstance(size, float)]
    if sum(fractions) >= 1:
        parser.error("--val-size and --test-size leave no images to train on")


def _cmd_train(args):
    train(args.data_dir, args.output, val_size=args.val_size, test_size=args.test_size,
          backbone=args.backbone, weights=args.weights, image_size=args.image_size,
          pooling=args.pooling, epochs=args.epochs, batch_size=args.batch_size,
          learning_rate=args.learning_rate, random_state=args.random_state,
          report_dir=args.report_dir, cache=args.cache, progress=_progress(args))
    return 0


def _cmd_evaluate(args):
    from .report import (
        _classification_text,
        _complete_metrics,
        _compute_metrics,
        _predict,
        _write_report_files,
    )

    pipeline = _load_model(args.model)
    data = _load_data(args.data_dir)
    _check_known_classes(data.target, pipeline.classes_, args.data_dir)
    _features_step(pipeline).set_params(verbose=_progress(args))
    classes, proba, predicted = _predict(pipeline, data.paths)
    metrics = _compute_metrics(data.target, predicted, proba, classes)
    print(f"Accuracy: {metrics['accuracy']:.4f}")
    print(f"Log loss: {metrics['log_loss']:.4f}")
    print()
    print(_classification_text(data.target, predicted, classes))
    if args.report_dir is not None:
        metrics = _complete_metrics(metrics, pipeline, sizes={"evaluated": len(data.paths)})
        _write_report_files(args.report_dir, metrics, data.paths, data.target, predicted,
                            pipeline)
        print(f"Wrote the report to {args.report_dir}")
    return 0


def _collect_images(inputs):
    """Files as given; folders searched recursively (sorted) for image extensions."""
    from .datasets import IMAGE_EXTENSIONS, _find_images

    paths = []
    for item in inputs:
        if os.path.isdir(item):
            found = _find_images(item)
            if not found:
                raise SkanimalError(f"no image files in folder {item!r} (extensions: "
                                    f"{', '.join(sorted(IMAGE_EXTENSIONS))})")
            paths.extend(found)
        elif os.path.exists(item):
            paths.append(item)
        else:
            raise SkanimalError(f"{item!r} does not exist")
    return paths


def _cmd_predict(args):
    import numpy as np

    from .report import _to_jsonable

    paths = _collect_images(args.inputs)
    pipeline = _load_model(args.model)
    _features_step(pipeline).set_params(verbose=_progress(args))
    proba = np.asarray(pipeline.predict_proba(paths))
    classes = np.asarray(pipeline.classes_)
    k = min(args.top_k, len(classes))
    top = np.argsort(-proba, axis=1, kind="stable")[:, :k]
    rows = [(path, [(classes[j], float(proba[i, j])) for j in top[i]])
            for i, path in enumerate(paths)]

    out = sys.stdout
    if args.format == "json":
        json.dump(_to_jsonable([
            {"path": path, "predictions": [{"label": label, "probability": round(p, 6)}
                                           for label, p in ranked]}
            for path, ranked in rows
        ]), out, indent=2, ensure_ascii=False)
        out.write("\n")
    elif args.format == "csv":
        writer = csv.writer(out, lineterminator="\n")
        header = ["path"]
        for rank in range(1, k + 1):
            header += [f"label_{rank}", f"probability_{rank}"]
        writer.writerow(header)
        for path, ranked in rows:
            writer.writerow([path] + [v for label, p in ranked for v in (label, f"{p:.6f}")])
    else:
        header = ["PATH"] + [f"TOP {rank}" for rank in range(1, k + 1)]
        table = [header] + [[path] + [f"{label} {p:.3f}" for label, p in ranked]
                            for path, ranked in rows]
        widths = [max(len(str(row[c])) for row in table) for c in range(len(header))]
        for row in table:
            out.write("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip()
                      + "\n")
    return 0


def _demo_weights(image_size):
    from .backbones import imagenet_available

    if imagenet_available(image_size=image_size):
        return "imagenet"
    print("Note: the ImageNet weights cannot be downloaded here and no copy is cached; "
          "using random weights (weights=None) instead, which is fine for this easy set.")
    return None


def _demo(workdir, keep):
    import numpy as np

    from .datasets import make_shapes

    workdir = Path(workdir)
    image_size = 64
    print(f"Generating a class-per-folder set of coloured shapes in {workdir / 'shapes'}")
    make_shapes(workdir / "shapes", n_per_class=40, image_size=image_size)
    _start_tensorflow()
    weights = _demo_weights((image_size, image_size))
    model_path = workdir / "shapes.joblib"
    result = train(workdir / "shapes", model_path, val_size=0.1, test_size=0.25,
                   weights=weights, image_size=(image_size, image_size), epochs=30,
                   learning_rate=1e-3, random_state=0,
                   report_dir=workdir / "report" if keep else None)
    accuracy = result["metrics"]["test"]["accuracy"]
    print(f"Held-out accuracy: {accuracy:.3f} on {result['sizes']['test']} test images")

    reloaded = _load_model(model_path)
    sample = list(result["test"].paths[:3])
    predicted = reloaded.predict(sample)
    same = np.array_equal(predicted, result["pipeline"].predict(sample))
    print(f"Reloaded {model_path.name}: {'same' if same else 'DIFFERENT'} predictions as "
          "before saving")
    for path, label in zip(sample, predicted):
        print(f"  {Path(path).name}: predicted {label}")
    if keep:
        print("\nNext, try:\n"
              f"  skanimal predict {model_path} {workdir / 'shapes' / 'circle'} --top-k 2\n"
              f"  skanimal evaluate {model_path} {workdir / 'shapes'}")
    return 0 if same else 1


def _cmd_demo(args):
    if args.workdir:
        return _demo(args.workdir, keep=True)
    with tempfile.TemporaryDirectory(prefix="skanimal-demo-") as workdir:
        return _demo(workdir, keep=False)


def _cmd_cache_info(args):
    from .cache import cache_info

    info = cache_info(args.dir)
    print(f"Feature cache: {info['directory']}")
    print(f"Entries:       {info['entries']} feature vectors, "
          f"{_format_bytes(info['bytes'])}")
    print(f"Settings:      {info['fingerprints']} extraction configuration(s)")
    if info.get("temp_files"):
        print(f"Leftovers:     {info['temp_files']} temporary file(s), "
              f"{_format_bytes(info['temp_bytes'])}")
    return 0


def _cmd_cache_clear(args):
    from .cache import cache_info, clear_cache

    directory = cache_info(args.dir)["directory"]
    removed = clear_cache(args.dir)
    print(f"Removed {removed} cached feature vectors from {directory}")
    return 0


# ------------------------------------------------------------------------------- review
# `skanimal review` (issue 13), one self-contained block: the app is skanimal.review.


def _port(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}")
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port must be in 0..65535, got {text}")
    return value


def _add_review_parser(commands):
    review = commands.add_parser(
        "review", formatter_class=_Formatter,
        help="check sorted photos on a local web page: relabel with one key, retrain",
        description=(
            "Start a local web page showing the photos of DIR (a folder made by 'skanimal\n"
            "sort' or any class-per-folder set) by class, the _review folder first and the\n"
            "least confident photos first. Keys 1-9 move the selected photo to a class, 0 to\n"
            "_review, u undoes; moves are journaled like 'sort --move'. Retrain fits the\n"
            "model's head again on the corrected folders and saves it beside MODEL.\n\n"
            "The first line of output is the page's URL (with its session key). Needs\n"
            "pip install \"skanimal[review]\"."
        ),
        epilog="example: skanimal review sorted/ --model animals.joblib",
    )
    review.add_argument("directory", metavar="DIR", help="folder with one sub-folder per class")
    review.add_argument("--model", metavar="MODEL",
                        help="saved model: scores the photos and enables Retrain (default: "
                             "confidences from DIR/predictions.csv)")
    review.add_argument("--port", type=_port, default=0, metavar="N",
                        help="TCP port; default: a free one")
    review.add_argument("--host", default="127.0.0.1", metavar="H",
                        help="address to listen on; default: %(default)s (this computer "
                             "only). Any other address is reachable by others: a warning says so")
    review.add_argument("--no-browser", dest="browser", action="store_false",
                        help="do not open a web browser")
    review.set_defaults(func=_cmd_review)


def _cmd_review(args):
    from .review import require_extra

    require_extra()
    from .review import serve

    if args.model is not None:
        _start_tensorflow()
    return serve(args.directory, model=args.model, host=args.host, port=args.port,
                 open_browser=args.browser)


# ---------------------------------------------------------------------------------- main


def _one_line(exc):
    if isinstance(exc, OSError) and not isinstance(exc, SkanimalError) and exc.strerror:
        text = exc.strerror
        if exc.filename is not None:
            text = f"{exc.filename}: {text}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def main(argv=None):
    """Run the ``skanimal`` command.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name; defaults to ``sys.argv[1:]``.

    Returns
    -------
    int
        Exit status: 0 success, 1 data error (one line on stderr). Usage errors exit with
        status 2 through :mod:`argparse`.
    """
    args = build_parser().parse_args(argv)
    if getattr(args, "check", None) is not None:
        args.check(args, args.command_parser)
    if hasattr(args, "progress"):
        args.progress = _progress(args)  # before stderr becomes a pipe
    message = None
    with warnings.catch_warnings(), _TensorFlowLogFilter():
        warnings.showwarning = _show_warning
        for module in ("tensorflow", "keras", "scikeras", "absl", "google"):
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=module)
            warnings.filterwarnings("ignore", category=FutureWarning, module=module)
        try:
            status = int(args.func(args) or 0)
        except BrokenPipeError:  # e.g. `skanimal predict ... | head`
            with contextlib.suppress(OSError, ValueError, AttributeError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            status = 1
        except DATA_ERRORS as exc:
            message, status = f"error: {_one_line(exc)}", 1
        except KeyboardInterrupt:
            message, status = "interrupted", 130
    if message is not None:
        print(f"{PROG}: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
