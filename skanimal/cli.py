"""The ``skanimal`` command: train, evaluate and use image classifiers from the shell.

::

    skanimal train photos/ -o animals.joblib --report-dir report/
    skanimal evaluate animals.joblib more_photos/
    skanimal predict animals.joblib new_photo.jpg holiday/ --top-k 3 --format csv
    skanimal demo
    skanimal sort animals.joblib unsorted/ --into sorted/ --move
    skanimal suggest animals.joblib unsorted/ -n 20 --into to-label/
    skanimal audit photos/ --model animals.joblib
    skanimal review sorted/ --model animals.joblib
    skanimal cache info

A thin layer over :mod:`skanimal.workflow` and the labelling modules
(:mod:`skanimal.sorting`, :mod:`skanimal.suggest`, :mod:`skanimal.audit`) and the review
page (:mod:`skanimal.review`): each command
parses its arguments, calls one function (after :func:`skanimal.workflow.load_model` where it
takes a model file) and prints its result. ``train`` builds
``make_pipeline(BottleneckFeatures(...), BottleneckClassifier(...))`` from its options (same
names, same defaults) and saves it with :func:`joblib.dump`; ``evaluate`` and ``predict`` load
such a file. Exit status: 0 on success, 2 for usage errors, 1 for data errors (missing or
unreadable images or folders, unavailable weights, a file that is not a skanimal model), each
reported as one line ``skanimal: error: <cause>`` on stderr. ``--on-error skip`` goes on
without unreadable images and lists them on stderr at the end; ``predict`` does so by default
and then exits with status 1 (its output lacks those images).

Adding a command takes two functions: ``_add_<name>(commands)``, which builds its parser
with :func:`_command` (naming the handler), listed in ``COMMANDS``; and the handler
``_run_<name>(args)``, which calls a workflow function, prints, and returns the exit status
(raising :class:`UsageError` for an argument mistake argparse cannot see alone, or letting a
:class:`~skanimal.SkanimalError` or :class:`OSError` out for a data error).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import re
import sys
import threading
import warnings
from pathlib import Path

from . import __version__
from .backbones import available_backbones, get_spec
from .exceptions import SkanimalError

__all__ = ["main", "build_parser", "UsageError"]

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


def _quiet_tensorflow_loggers():
    """Keep TensorFlow's, Keras' and absl's Python log records below ERROR off stderr.

    Done before TensorFlow is imported, without importing it: the workflow imports it only
    when a command needs it (a missing folder is reported without that cost), and its C++
    lines are :class:`_TensorFlowLogFilter`'s job.
    """
    import logging

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # pragma: no cover - absl comes with TensorFlow
        pass


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
        value = None
    if value is None:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a fraction or a count, got {text!r}") from None
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
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _epochs(text):
    return "auto" if text.lower() == "auto" else _positive_int(text)


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
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


class UsageError(Exception):
    """An argument mistake argparse cannot see alone: a handler raises it, and
    :func:`main` reports it as argparse does (usage, message, exit status 2)."""


def _command(commands, name, handler, **kwargs):
    """Add the sub-command ``name`` whose handler is ``handler(args) -> int``."""
    parser = commands.add_parser(name, formatter_class=_Formatter, **kwargs)
    parser.set_defaults(handler=handler, command_parser=parser)
    return parser


def _add_progress_option(parser):
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None,
        help="show progress bars while extracting features; default: when stderr is a "
             "terminal",
    )


def _add_on_error_option(parser, default):
    other = "fail" if default == "skip" else "skip"
    why = {"skip": "the other images are still used",
           "fail": "a model or score made without some images should be your choice"}[default]
    parser.add_argument(
        "--on-error", choices=("fail", "skip"), default=default,
        help=f"images that cannot be read: 'fail' stops with one error naming every one of "
             f"them, 'skip' goes on without them and lists them on stderr at the end; "
             f"default: %(default)s ({why}; use '{other}' otherwise)",
    )


def _on_error(args):
    """The Python API's name for the CLI's --on-error choice."""
    return {"fail": "raise", "skip": "skip"}[args.on_error]


def _add_weights_option(parser):
    parser.add_argument(
        "--weights", metavar="PATH",
        help="the model's backbone weights file (or a folder holding it) at its new place, "
             "when it was moved since training; checked by content. Without it, a moved "
             "file is looked for beside its old place and in Keras' cache (~/.keras/models)",
    )


def _report_skipped(skipped, what="skipped"):
    """List the images a command went on without, on stderr, one per line."""
    if skipped:
        print(f"{PROG}: warning: {what} {len(skipped)} unreadable image(s):", file=sys.stderr)
        for _, reason in skipped:
            print(f"  {reason}", file=sys.stderr)


def _status_after_skipping(skipped, what="skipped"):
    """List the unreadable images (see :func:`_report_skipped`) and return the exit status
    of a command that answers for every image it was given: 0 only when none was skipped."""
    _report_skipped(skipped, what)
    return 1 if skipped else 0


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


# -------------------------------------------------------------------------------- train


def _add_train(commands):
    train = _command(
        commands, "train", _run_train,
        help="train a classifier on a class-per-folder image set and save it",
        description=(
            "Train BottleneckFeatures + BottleneckClassifier on DATA_DIR/<class>/<images>.\n\n"
            "The images are split into stratified train, validation and test parts\n"
            "(skanimal.train_val_test_split). Features of every image are extracted once\n"
            "(and cached); the head trains on the train part, with the validation part as\n"
            "Keras validation_data (validation curves in the report), and is then scored on\n"
            "the validation and test parts. The fitted pipeline is saved with joblib.\n\n"
            "Small sets work from 2 images per class: a part too big for the smallest class\n"
            "is left out (validation first, then test), and the command says so."
        ),
        epilog="example: skanimal train photos/ -o animals.joblib --report-dir report/",
    )
    _add_progress_option(train)
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
    train.add_argument("--pooling", type=_pooling, default="avg", metavar="{none,avg,max}",
                       help="'avg'/'max' pool the last feature map, 'none' flattens it; "
                            "default: %(default)s")
    # the choices are workflow.HEADS, spelt out: --help must not import the workflow
    train.add_argument("--head", choices=("network", "logistic"), default="network",
                       help="'network': the Keras head (BottleneckClassifier); 'logistic': "
                            "StandardScaler + LogisticRegression, the linear baseline; "
                            "default: %(default)s")
    train.add_argument("--epochs", type=_epochs, default="auto", metavar="N",
                       help="training epochs of the network head, or 'auto' (at least 300 "
                            "gradient steps; early stopping from 1000 images); "
                            "default: %(default)s")
    train.add_argument("--batch-size", type=_positive_int, default=50, metavar="N",
                       help="images per gradient update; default: %(default)s")
    train.add_argument("--learning-rate", type=_positive_float, default=1e-3, metavar="RATE",
                       help="Adam learning rate of the network head; default: %(default)s")
    train.add_argument("--random-state", type=int, default=0, metavar="SEED",
                       help="seed of the split and of the head's training; "
                            "default: %(default)s")
    train.add_argument("--report-dir", metavar="DIR",
                       help="also write a test-set report here (metrics.json, "
                            "classification_report.txt, PNG plots)")
    train.add_argument("--no-cache", dest="cache", action="store_false",
                       help="do not read or write the feature cache")
    _add_on_error_option(train, "fail")


def _check_train_args(args):
    spec = get_spec(args.backbone)
    if args.image_size is not None and min(args.image_size) < spec.min_size:
        raise UsageError(f"argument --image-size: {args.backbone} needs images of at least "
                         f"{spec.min_size}x{spec.min_size} pixels")
    if args.report_dir is not None and args.test_size == 0:
        raise UsageError("--report-dir needs a test part: use --test-size > 0")
    fractions = [size for size in (args.val_size, args.test_size) if isinstance(size, float)]
    if sum(fractions) >= 1:
        raise UsageError("--val-size and --test-size leave no images to train on")


def _print_scores(name, metrics):
    print(f"{name:<11} accuracy {metrics['accuracy']:.3f}   loss {metrics['log_loss']:.4f}   "
          f"({metrics['n_samples']} images)")


def _print_trained(result, output, report_dir):
    for key, name in (("val", "Validation"), ("test", "Test")):
        if key in result.scores:
            _print_scores(name, result.scores[key])
    print(f"Saved the model to {output} ({_format_bytes(result.model_bytes)})")
    if report_dir is not None:
        print(f"Wrote the test-set report to {report_dir}")


def _run_train(args):
    from .workflow import train

    _check_train_args(args)
    result = train(args.data_dir, args.output, val_size=args.val_size,
                   test_size=args.test_size, backbone=args.backbone, weights=args.weights,
                   image_size=args.image_size, pooling=args.pooling, head=args.head,
                   epochs=args.epochs,
                   batch_size=args.batch_size, learning_rate=args.learning_rate,
                   random_state=args.random_state, report_dir=args.report_dir,
                   cache=args.cache, progress=args.progress, on_error=args.on_error, log=print)
    _print_trained(result, args.output, args.report_dir)
    _report_skipped(result.skipped)
    return 0


# ----------------------------------------------------------------------------- evaluate


def _add_evaluate(commands):
    evaluate = _command(
        commands, "evaluate", _run_evaluate,
        help="score a saved model on a class-per-folder image set",
        description="Print the accuracy, log loss and per-class precision, recall and F1 of\n"
                    "a saved model on every image of DATA_DIR/<class>/<images>.\n\n"
                    "Only load model files you trust: joblib files can run code when loaded.",
        epilog="example: skanimal evaluate animals.joblib photos/test --report-dir report/",
    )
    _add_progress_option(evaluate)
    evaluate.add_argument("model", metavar="MODEL", help="a model saved by 'skanimal train'")
    evaluate.add_argument("data_dir", metavar="DATA_DIR",
                          help="folder with one sub-folder of images per class")
    evaluate.add_argument("--report-dir", metavar="DIR",
                          help="also write metrics.json, predictions.csv, "
                               "classification_report.txt and plots")
    _add_on_error_option(evaluate, "fail")
    _add_weights_option(evaluate)


def _run_evaluate(args):
    from .workflow import evaluate

    result = evaluate(args.model, args.data_dir, report_dir=args.report_dir,
                      progress=args.progress, on_error=args.on_error, weights=args.weights,
                      log=print)
    print(f"Accuracy: {result.metrics['accuracy']:.4f}")
    print(f"Log loss: {result.metrics['log_loss']:.4f}")
    print()
    print(result.classification_report)
    if args.report_dir is not None:
        print(f"Wrote the report to {args.report_dir}")
    _report_skipped(result.skipped)
    return 0


# ------------------------------------------------------------------------------ predict


def _add_predict(commands):
    predict = _command(
        commands, "predict", _run_predict,
        help="predict the class of images with a saved model",
        description="Print the top-k classes and probabilities of each image. Folders are\n"
                    "searched recursively for image files (jpg, jpeg, png, bmp, gif, webp,\n"
                    "tif, tiff); files named explicitly are used whatever their extension.\n\n"
                    "Only load model files you trust: joblib files can run code when loaded.",
        epilog="example: skanimal predict animals.joblib photo.jpg holiday/ --format csv",
    )
    _add_progress_option(predict)
    predict.add_argument("model", metavar="MODEL", help="a model saved by 'skanimal train'")
    predict.add_argument("inputs", metavar="IMAGE_OR_DIR", nargs="+",
                         help="image files and/or folders of images")
    predict.add_argument("--top-k", type=_positive_int, default=3, metavar="K",
                         help="number of most probable classes to show per image; "
                              "default: %(default)s")
    predict.add_argument("--format", choices=("table", "csv", "json"), default="table",
                         help="output format; default: %(default)s")
    _add_on_error_option(predict, "skip")
    _add_weights_option(predict)


def _run_predict(args):
    from .fileio import to_jsonable
    from .workflow import predict

    result = predict(args.model, args.inputs, progress=args.progress, on_error=args.on_error,
                     weights=args.weights)
    rows = result.top(args.top_k)
    k = min(args.top_k, len(result.classes))
    out = sys.stdout
    if args.format == "json":
        json.dump(to_jsonable([
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
    out.flush()
    return _status_after_skipping(result.skipped)


# --------------------------------------------------------------------------------- demo


def _add_demo(commands):
    demo = _command(
        commands, "demo", _run_demo,
        help="the quick start on a generated image set (offline, under a minute)",
        description="Generate a small class-per-folder set of coloured shapes, train on it,\n"
                    "print the held-out accuracy, then save, reload and use the model.\n"
                    "Uses the ImageNet weights when Keras has them and falls back to random\n"
                    "weights (fine for this easy set) when they cannot be downloaded.",
    )
    demo.add_argument("--workdir", metavar="DIR",
                      help="keep the images, the model and a report here (default: a "
                           "temporary folder, deleted afterwards)")


def _run_demo(args):
    from .workflow import demo

    result = demo(args.workdir or None, log=print)
    trained = result.train
    _print_trained(trained, trained.model_path, trained.report_dir)
    print(f"Held-out accuracy: {trained.scores['test']['accuracy']:.3f} on "
          f"{trained.sizes['test']} test images")
    print(f"Reloaded {trained.model_path.name}: "
          f"{'same' if result.same_predictions else 'DIFFERENT'} predictions as before saving")
    for path, label in zip(result.sample, result.predicted):
        print(f"  {Path(path).name}: predicted {label}")
    if result.workdir is not None:
        print("\nNext, try:\n"
              f"  skanimal predict {trained.model_path} {result.workdir / 'shapes' / 'circle'}"
              " --top-k 2\n"
              f"  skanimal evaluate {trained.model_path} {result.workdir / 'shapes'}")
    return 0 if result.same_predictions else 1


# -------------------------------------------------------------------------------- cache


def _add_cache(commands):
    cache = _command(
        commands, "cache", None,
        help="inspect or clear the feature cache",
        description="The feature cache keeps the CNN features of every image seen, keyed by\n"
                    "image content and extraction settings. Default location:\n"
                    "$SKANIMAL_CACHE_DIR, else the platform's user cache folder.",
    )
    actions = cache.add_subparsers(title="actions", dest="action", metavar="ACTION",
                                   required=True)
    for name, handler, summary, description in (
        ("info", _run_cache_info, "show the cache's location and size",
         "Show the cache's location and size."),
        ("clear", _run_cache_clear, "delete every cached feature vector",
         "Delete every cached feature vector (other files in the folder are left alone)."),
    ):
        action = _command(actions, name, handler, help=summary, description=description)
        action.add_argument("--dir", metavar="DIR",
                            help="cache folder (default: the default cache)")


def _run_cache_info(args):
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


def _run_cache_clear(args):
    from .cache import cache_info, clear_cache

    directory = cache_info(args.dir)["directory"]
    removed = clear_cache(args.dir)
    print(f"Removed {removed} cached feature vectors from {directory}")
    return 0


# ------------------------------------------------------------------ sort, suggest, audit


def _write_records(rows, columns, fmt, out=None):
    """Print records as an aligned table, CSV or JSON (a list of objects)."""
    from .fileio import to_jsonable

    out = out or sys.stdout
    if fmt == "json":
        json.dump(to_jsonable([{c: row.get(c, "") for c in columns} for row in rows]), out,
                  indent=2, ensure_ascii=False)
        out.write("\n")
    elif fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore",
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        table = [[c.upper() for c in columns]] + [[str(row.get(c, "")) for c in columns]
                                                  for row in rows]
        widths = [max(len(r[i]) for r in table) for i in range(len(columns))]
        for r in table:
            out.write("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() + "\n")


def _add_sort(commands):
    sort = _command(
        commands, "sort", _run_sort,
        help="sort photos into class folders with a saved model; the unsure ones to review",
        usage="skanimal sort MODEL SOURCE... --into OUT [--min-confidence P] "
              "[--copy | --link | --move]\n       skanimal sort --undo OUT",
        description="Put each image of SOURCE (files, and folders searched recursively) into\n"
                    "OUT/<class>/ when the model is confident enough, else into OUT/_review/,\n"
                    "and write OUT/predictions.csv (source, destination, label, confidence,\n"
                    "runner-up classes). Names that collide get a suffix; nothing is ever\n"
                    "overwritten; running the same sort again duplicates nothing, and a photo\n"
                    "a retrained model puts in another class is moved there. --move is\n"
                    "journaled: killed and run again, it finishes with every photo exactly\n"
                    "once. --undo OUT puts moved photos back (and removes copies and links).\n\n"
                    "Only load model files you trust: joblib files can run code when loaded.",
        epilog="example: skanimal sort animals.joblib unsorted/ --into sorted/ --move",
    )
    _add_progress_option(sort)
    _add_on_error_option(sort, "skip")
    sort.add_argument("inputs", metavar="MODEL SOURCE", nargs="*",
                      help="a model saved by 'skanimal train' (or skanimal.save), then image "
                           "files and folders")
    sort.add_argument("--into", metavar="OUT", help="output folder")
    sort.add_argument("--min-confidence", type=float, metavar="P",
                      help="top probability needed for a class folder (0-1); default: the "
                           "one calibrated on the model's held-out photos, at least 0.9")
    how = sort.add_mutually_exclusive_group()
    for mode, text in (("copy", "copy the photos (default; sources untouched)"),
                       ("link", "hard-link them (symbolic links across file systems)"),
                       ("move", "move them (journaled, crash-safe)")):
        how.add_argument(f"--{mode}", dest="mode", action="store_const", const=mode,
                         help=text)
    how.add_argument("--undo", metavar="OUT", help="reverse every sort into OUT")
    sort.set_defaults(mode="copy")


def _check_sort_args(args):
    if args.undo is not None:
        if args.inputs or args.into:
            raise UsageError("--undo OUT takes no MODEL, SOURCE or --into")
        return
    if len(args.inputs) < 2:
        raise UsageError("the following arguments are required: MODEL SOURCE...")
    if args.into is None:
        raise UsageError("the following arguments are required: --into OUT")
    if args.min_confidence is not None and not 0 <= args.min_confidence <= 1:
        raise UsageError(f"--min-confidence must be between 0 and 1, got {args.min_confidence}")


def _run_sort(args):
    from .sorting import sort_images, undo_sort
    from .workflow import load_model

    _check_sort_args(args)
    if args.undo is not None:
        restored = undo_sort(args.undo)
        print(f"Restored {len(restored)} photo(s) from {args.undo}")
        return 0
    model_path, *sources = args.inputs
    model = load_model(model_path)
    result = sort_images(model, sources, args.into, min_confidence=args.min_confidence,
                         mode=args.mode, on_error=_on_error(args), progress=bool(args.progress))
    print(f"Threshold: {result.threshold:.4g} ({result.threshold_source})")
    if result.resumed:
        print(f"Finished {result.resumed} photo(s) of an interrupted sort first")
    verb = {"copy": "Copied", "link": "Linked", "move": "Moved"}[args.mode]
    placed = {k: v for k, v in result.counts.items() if k != "unreadable"}
    print(f"{verb} {sum(placed.values())} photo(s) into {result.into}: "
          + ", ".join(f"{name} {n}" for name, n in sorted(placed.items())))
    if result.relocations:
        print(f"Moved {len(result.relocations)} photo(s) already in {result.into} to their "
              "new folder (no second copy)")
    print(f"Wrote {result.predictions}")
    return _status_after_skipping(result.unreadable, "left in place")


def _add_suggest(commands):
    suggest = _command(
        commands, "suggest", _run_suggest,
        help="pick the photos worth labelling next (uncertain and diverse)",
        description="Score every image of POOL (files and folders) with the model and list\n"
                    "the N worth labelling next: the smallest margins between the two most\n"
                    "probable classes, spread out in feature space (greedy k-center) so they\n"
                    "are not near-copies of one confusing case.\n\n"
                    "Only load model files you trust: joblib files can run code when loaded.",
        epilog="example: skanimal suggest animals.joblib unsorted/ -n 20 --into to-label/",
    )
    _add_progress_option(suggest)
    _add_on_error_option(suggest, "skip")
    suggest.add_argument("model", metavar="MODEL", help="a model saved by 'skanimal train'")
    suggest.add_argument("pool", metavar="POOL", nargs="+", help="unlabelled images/folders")
    suggest.add_argument("-n", type=_positive_int, default=20, metavar="N",
                         help="number of photos; default: %(default)s")
    suggest.add_argument("--format", choices=("table", "csv", "json"), default="table",
                         help="output format; default: %(default)s")
    suggest.add_argument("--into", metavar="DIR",
                         help="also copy them into DIR (never overwriting)")


def _run_suggest(args):
    from .suggest import suggest_images
    from .workflow import load_model

    model = load_model(args.model)
    result = suggest_images(model, args.pool, args.n, into=args.into,
                            on_error=_on_error(args), progress=bool(args.progress))
    _write_records(result.rows, ["path", "margin", "label", "confidence", "label_2",
                                 "confidence_2"], args.format)
    if args.into is not None:
        print(f"Copied {len(result.copied)} photo(s) into {args.into}", file=sys.stderr)
    return _status_after_skipping(result.unreadable)


_AUDIT_COLUMNS = ["finding", "path", "label", "label_probability", "suggested",
                  "suggested_probability", "group", "kind", "other_path", "other_label",
                  "similarity", "part", "other_part"]


def _add_audit(commands):
    audit = _command(
        commands, "audit", _run_audit,
        help="find wrong labels, duplicates and near-duplicates in a labelled image set",
        description="DATA_DIR/<class>/<images> (or DATA_DIR/<train|val|test>/<class>/...).\n"
                    "Suspects: photos whose folder gets a low out-of-fold probability from a\n"
                    "cross-validated classifier on the features, most suspicious first, with\n"
                    "the suggested class. Exact duplicates (same bytes) under different\n"
                    "classes or split between parts, and near-duplicates (similar features).",
        epilog="example: skanimal audit photos/ --backbone mobilenet_v2 --weights mnv2.h5",
    )
    _add_progress_option(audit)
    _add_on_error_option(audit, "skip")
    audit.add_argument("data_dir", metavar="DATA_DIR", help="class-per-folder image set")
    audit.add_argument("--model", metavar="MODEL",
                       help="use the features of this saved model (instead of --backbone, "
                            "--weights, --image-size)")
    audit.add_argument("--backbone", choices=available_backbones(),
                       help="without --model: backbone; default: vgg16")
    audit.add_argument("--weights", metavar="W",
                       help="without --model: 'imagenet', 'none' or a weights file; default: "
                            "imagenet")
    audit.add_argument("--image-size", type=_image_size, metavar="HxW",
                       help="without --model: image size, e.g. 224x224; default: the "
                            "backbone's own")
    audit.add_argument("--format", choices=("table", "csv", "json"), default="table",
                       help="output format; default: %(default)s")


def _print_audit(result, data_dir, fmt):
    sections = (("suspect", result.suspects), ("duplicate", result.duplicates),
                ("near_duplicate", result.near_duplicates))
    if fmt == "json":
        from .fileio import to_jsonable

        json.dump(to_jsonable({
            "suspects": result.suspects, "duplicates": result.duplicates,
            "near_duplicates": result.near_duplicates,
            "unreadable": [{"path": p, "error": e} for p, e in result.unreadable],
        }), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    elif fmt == "csv":
        _write_records([{"finding": name, **row} for name, rows in sections for row in rows],
                       _AUDIT_COLUMNS, "csv")
    else:
        print(f"Audited {result.n_images} photos of {data_dir}")
        columns = {
            "suspect": ["path", "label", "label_probability", "suggested",
                        "suggested_probability"],
            "duplicate": ["group", "kind", "path", "label", "part"],
            "near_duplicate": ["similarity", "kind", "path", "other_path", "label",
                               "other_label"],
        }
        for name, rows in sections:
            print(f"\n{name.replace('_', '-')}s: {len(rows)}")
            if rows:
                _write_records(rows, columns[name], "table")


def _run_audit(args):
    from .audit import audit_folder
    from .workflow import load_model

    features_given = (args.backbone, args.weights, args.image_size) != (None,) * 3
    if args.model is not None and features_given:
        raise UsageError("--model takes the features of the model; leave out --backbone, "
                         "--weights and --image-size")
    model = None if args.model is None else load_model(args.model)
    weights = "imagenet" if args.weights is None else _weights(args.weights)
    result = audit_folder(args.data_dir, model=model, backbone=args.backbone or "vgg16",
                          weights=weights, image_size=args.image_size,
                          on_error=_on_error(args), progress=bool(args.progress))
    _print_audit(result, args.data_dir, args.format)
    return _status_after_skipping(result.unreadable)


# ------------------------------------------------------------------------------- review


def _port(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port must be in 0..65535, got {text}")
    return value


def _add_review(commands):
    review = _command(
        commands, "review", _run_review,
        help="check sorted photos on a local web page: relabel with one key, retrain",
        description=(
            "Start a local web page showing the photos of DIR (a folder made by 'skanimal\n"
            "sort' or any class-per-folder set) by class, the _review folder first and the\n"
            "least confident photos first. Keys 1-9 move the selected photo to a class, 0 to\n"
            "_review, u undoes; moves are journaled like 'sort --move'. Retrain fits the\n"
            "model's head again on the corrected folders, saves it beside MODEL (never\n"
            "overwriting) and sorts _review again with it, as 'skanimal sort --move' does.\n\n"
            "The first line of output is the page's URL (with its session key). Needs\n"
            "pip install \"skanimal[review]\"."
        ),
        epilog="example: skanimal review sorted/ --model animals.joblib",
    )
    review.add_argument("directory", metavar="DIR", help="folder with one sub-folder per class")
    review.add_argument("--model", metavar="MODEL",
                        help="saved model (joblib or .skanimal): scores the photos and enables "
                             "Retrain (default: confidences from DIR/predictions.csv)")
    review.add_argument("--port", type=_port, default=0, metavar="N",
                        help="TCP port; default: a free one")
    review.add_argument("--host", default="127.0.0.1", metavar="H",
                        help="address to listen on; default: %(default)s (this computer "
                             "only). Any other address is reachable by others: a warning says so")
    review.add_argument("--no-browser", dest="browser", action="store_false",
                        help="do not open a web browser")


def _run_review(args):
    from .review import require_extra

    require_extra()  # one line naming the extra, before Flask is imported
    from .review import serve

    return serve(args.directory, model=args.model, host=args.host, port=args.port,
                 open_browser=args.browser)


#: The sub-commands, in the order ``skanimal --help`` lists them: each builds its parser.
COMMANDS = (_add_train, _add_evaluate, _add_predict, _add_demo, _add_sort, _add_suggest,
            _add_audit, _add_review, _add_cache)


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
    for add_command in COMMANDS:
        add_command(commands)
    return parser


# ---------------------------------------------------------------------------------- main


def _for_the_command_line(exc):
    """``exc``, or its advice reworded with this command's options."""
    from .exceptions import ImageLoadError, WeightsUnavailableError

    if isinstance(exc, WeightsUnavailableError) and exc.backbone and exc.download_error:
        from .backbones import offline_weights_message

        return offline_weights_message(exc.backbone, exc.download_error, cli=True)
    if isinstance(exc, ImageLoadError):
        return exc.file_message()  # the file named on the command line, not its X[i]
    return exc


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
        Exit status: 0 success, 1 data error (one line on stderr), 130 interrupted. Usage
        errors exit with status 2 through :mod:`argparse`.
    """
    args = build_parser().parse_args(argv)
    if hasattr(args, "progress"):
        args.progress = _progress(args)  # before stderr becomes a pipe
    message = usage = None
    with warnings.catch_warnings(), _TensorFlowLogFilter():
        warnings.showwarning = _show_warning
        for module in ("tensorflow", "keras", "scikeras", "absl", "google"):
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=module)
            warnings.filterwarnings("ignore", category=FutureWarning, module=module)
        _quiet_tensorflow_loggers()
        try:
            status = int(args.handler(args) or 0)
        except UsageError as exc:
            usage, status = str(exc), 2
        except BrokenPipeError:  # e.g. `skanimal predict ... | head`
            with contextlib.suppress(OSError, ValueError, AttributeError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            status = 1
        except DATA_ERRORS as exc:
            message, status = f"error: {_one_line(_for_the_command_line(exc))}", 1
        except KeyboardInterrupt:
            message, status = "interrupted", 130
    if usage is not None:
        args.command_parser.error(usage)  # prints the usage and exits with status 2
    if message is not None:
        print(f"{PROG}: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
