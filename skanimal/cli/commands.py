"""The ``skanimal`` command's sub-commands: a parser and a handler each.

See :mod:`skanimal.cli` for what the command does and how to add a sub-command.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from .._version import __version__
from ..backbones import available_backbones
from .arguments import (
    TRAIN_OPTIONS,
    HelpFormatter,
    UsageError,
    add_command,
    add_on_error_option,
    add_precision_option,
    add_progress_option,
    add_weights_option,
    check_train_args,
    epochs,
    fraction_or_count,
    image_size,
    pooling,
    positive_float,
    positive_int,
    progress_of,
    report_skipped,
    status_after_skipping,
    weights_choice,
)
from .console import PROG, console
from .errors import DATA_ERRORS, for_the_shell
from .labelling import COMMANDS as LABELLING_COMMANDS
from .output import format_bytes, write_csv, write_json, write_table

__all__ = ["main", "build_parser", "COMMANDS"]


# -------------------------------------------------------------------------------- train


def _add_train(commands):
    train = add_command(
        commands, "train", _run_train,
        help="train a classifier on a class-per-folder image set or a labels CSV; save it",
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
        epilog="examples:\n  skanimal train photos/ -o animals.joblib --report-dir report/\n"
               "  skanimal train --labels photos/labels.csv -o animals.joblib",
    )
    add_progress_option(train)
    train.add_argument("data_dir", metavar="DATA_DIR", nargs="?",
                       help="folder of one sub-folder per class (with --labels: where the "
                            "CSV file's relative paths start; default: the CSV file's folder)")
    train.add_argument("--labels", metavar="FILE.csv",
                       help="each image's class from this CSV file (path,label columns, or "
                            "a sort's predictions.csv), not its sub-folder")
    train.add_argument("-o", "--output", metavar="MODEL", required=True,
                       help="file to save the fitted pipeline to: joblib, or skanimal's "
                            "pickle-free format for a name ending in .skanimal (safe to "
                            "share; an int8 model predicts from it without scikit-learn)")
    train.add_argument("--val-size", type=fraction_or_count, default=0.1, metavar="SIZE",
                       help="validation part: a fraction of all images (0.1) or a number of "
                            "images (50); default: %(default)s")
    train.add_argument("--test-size", type=fraction_or_count, default=0.1, metavar="SIZE",
                       help="test part, like --val-size; default: %(default)s")
    train.add_argument("--backbone", choices=available_backbones(), default="vgg16",
                       help="frozen ImageNet CNN; default: %(default)s")
    train.add_argument("--weights", type=weights_choice, default="imagenet", metavar="WEIGHTS",
                       help="'imagenet' (downloaded once by Keras), 'none' (random, for tests) "
                            "or the path of a Keras 'notop' weights file (offline); "
                            "default: %(default)s")
    train.add_argument("--image-size", type=image_size, default=None, metavar="N",
                       help="resize images to N×N (or HEIGHTxWIDTH) pixels; default: the "
                            "backbone's own, 224 for vgg16")
    train.add_argument("--pooling", type=pooling, default="avg", metavar="{none,avg,max}",
                       help="'avg'/'max' pool the last feature map, 'none' flattens it; "
                            "default: %(default)s")
    # the choices are workflow.HEADS, spelt out: --help must not import the workflow
    train.add_argument("--head", choices=("network", "logistic"), default="network",
                       help="'network': the Keras head (BottleneckClassifier); 'logistic': "
                            "StandardScaler + LogisticRegression, the linear baseline; "
                            "default: %(default)s")
    train.add_argument("--epochs", type=epochs, default="auto", metavar="N",
                       help="training epochs of the network head, or 'auto' (at least 300 "
                            "gradient steps; early stopping from 1000 images); "
                            "default: %(default)s")
    train.add_argument("--batch-size", type=positive_int, default=50, metavar="N",
                       help="images per gradient update; default: %(default)s")
    train.add_argument("--learning-rate", type=positive_float, default=1e-3, metavar="RATE",
                       help="Adam learning rate of the network head; default: %(default)s")
    train.add_argument("--random-state", type=int, default=0, metavar="SEED",
                       help="seed of the split and of the head's training; "
                            "default: %(default)s")
    train.add_argument("--report-dir", metavar="DIR",
                       help="also write a test-set report here (metrics.json, "
                            "classification_report.txt, PNG plots)")
    train.add_argument("--no-cache", dest="cache", action="store_false",
                       help="do not read or write the feature cache")
    add_precision_option(train)
    add_on_error_option(train, "fail")


def _print_scores(name, metrics):
    print(f"{name:<11} accuracy {metrics['accuracy']:.3f}   loss {metrics['log_loss']:.4f}   "
          f"({metrics['n_samples']} images)")


def _print_trained(result, output, report_dir):
    for key, name in (("val", "Validation"), ("test", "Test")):
        if key in result.scores:
            _print_scores(name, result.scores[key])
    print(f"Saved the model to {output} ({format_bytes(result.model_bytes)})")
    if report_dir is not None:
        print(f"Wrote the test-set report to {report_dir}")


def _run_train(args):
    from ..workflow import train

    check_train_args(args)
    try:
        result = train(args.data_dir, args.output, log=print,
                       **{name: getattr(args, name) for name in TRAIN_OPTIONS})
    except ImportError as exc:  # OpenVINO missing: its install line, not a trace
        if args.precision != "int8":
            raise
        print(f"{PROG}: error: --precision int8: {exc}", file=sys.stderr)
        return 1
    _print_trained(result, args.output, args.report_dir)
    report_skipped(result.skipped)
    return 0


# ----------------------------------------------------------------------------- evaluate


def _add_evaluate(commands):
    evaluate = add_command(
        commands, "evaluate", _run_evaluate,
        help="score a saved model on a class-per-folder image set",
        description="Print the accuracy, log loss and per-class precision, recall and F1 of\n"
                    "a saved model on every image of DATA_DIR/<class>/<images>.\n\n"
                    "Only load model files you trust: joblib files can run code when loaded.",
        epilog="example: skanimal evaluate animals.joblib photos/test --report-dir report/",
    )
    add_progress_option(evaluate)
    evaluate.add_argument("model", metavar="MODEL", help="a model saved by 'skanimal train'")
    evaluate.add_argument("data_dir", metavar="DATA_DIR",
                          help="folder with one sub-folder of images per class")
    evaluate.add_argument("--report-dir", metavar="DIR",
                          help="also write metrics.json, predictions.csv, "
                               "classification_report.txt and plots")
    add_on_error_option(evaluate, "fail")
    add_weights_option(evaluate)


def _run_evaluate(args):
    from ..workflow import evaluate

    result = evaluate(args.model, args.data_dir, report_dir=args.report_dir,
                      progress=args.progress, on_error=args.on_error, weights=args.weights,
                      log=print)
    print(f"Accuracy: {result.metrics['accuracy']:.4f}")
    print(f"Log loss: {result.metrics['log_loss']:.4f}")
    print()
    print(result.classification_report)
    if args.report_dir is not None:
        print(f"Wrote the report to {args.report_dir}")
    report_skipped(result.skipped)
    return 0


# ------------------------------------------------------------------------------ predict


def _add_predict(commands):
    predict = add_command(
        commands, "predict", _run_predict,
        help="predict the class of images with a saved model",
        description="Print the top-k classes and probabilities of each image, and whether it\n"
                    "is unlike the photos the model was trained on (perhaps none of its\n"
                    "classes; 'skanimal sort' sends such photos to review). Folders are\n"
                    "searched recursively for image files (jpg, jpeg, png, bmp, gif, webp,\n"
                    "tif, tiff); files named explicitly are used whatever their extension.\n\n"
                    "Only load model files you trust: joblib files can run code when loaded.",
        epilog="example: skanimal predict animals.joblib photo.jpg holiday/ --format csv",
    )
    add_progress_option(predict)
    predict.add_argument("model", metavar="MODEL", help="a model saved by 'skanimal train'")
    predict.add_argument("inputs", metavar="IMAGE_OR_DIR", nargs="+",
                         help="image files and/or folders of images")
    predict.add_argument("--top-k", type=positive_int, default=3, metavar="K",
                         help="number of most probable classes to show per image; "
                              "default: %(default)s")
    predict.add_argument("--format", choices=("table", "csv", "json"), default="table",
                         help="output format; default: %(default)s")
    add_on_error_option(predict, "skip")
    add_weights_option(predict)


def _run_predict(args):
    from ..workflow import predict

    result = predict(args.model, args.inputs, progress=args.progress, on_error=args.on_error,
                     weights=args.weights)
    rows = result.top(args.top_k)
    ranks = range(1, min(args.top_k, len(result.classes)) + 1)
    # With the model's novelty score, each photo also says whether it is unlike the photos
    # the model was trained on: a confident label on such a photo may be "none of these".
    unlike = result.unlike_training
    flags = [None] * len(rows) if unlike is None else [bool(flag) for flag in unlike]
    if args.format == "json":
        write_json([{"path": path, "predictions": [{"label": label, "probability": round(p, 6)}
                                                   for label, p in ranked],
                     **({} if flag is None else {"unlike_training": flag})}
                    for (path, ranked), flag in zip(rows, flags)])
    elif args.format == "csv":
        columns = ["path"] + [f"{name}_{rank}" for rank in ranks
                              for name in ("label", "probability")]
        columns += [] if unlike is None else ["unlike_training"]
        write_csv(columns, [
            {"path": path, **{f"{name}_{rank}": value
                              for rank, (label, p) in enumerate(ranked, 1)
                              for name, value in (("label", label), ("probability", f"{p:.6f}"))},
             **({} if flag is None else {"unlike_training": str(flag).lower()})}
            for (path, ranked), flag in zip(rows, flags)])
    else:
        write_table(["PATH"] + [f"TOP {rank}" for rank in ranks]
                    + ([] if unlike is None else ["UNLIKE TRAINING"]),
                    [[path] + [f"{label} {p:.3f}" for label, p in ranked]
                     + ([] if flag is None else ["yes" if flag else "no"])
                     for (path, ranked), flag in zip(rows, flags)])
    sys.stdout.flush()
    return status_after_skipping(result.skipped)


# --------------------------------------------------------------------------------- demo


def _add_demo(commands):
    demo = add_command(
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
    from ..workflow import demo

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
    cache = add_command(
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
        action = add_command(actions, name, handler, help=summary, description=description)
        action.add_argument("--dir", metavar="DIR",
                            help="cache folder (default: the default cache)")


def _run_cache_info(args):
    from ..cache import cache_info

    info = cache_info(args.dir)
    print(f"Feature cache: {info['directory']}")
    print(f"Entries:       {info['entries']} feature vectors, "
          f"{format_bytes(info['bytes'])}")
    print(f"Settings:      {info['fingerprints']} extraction configuration(s)")
    if info.get("temp_files"):
        print(f"Leftovers:     {info['temp_files']} temporary file(s), "
              f"{format_bytes(info['temp_bytes'])}")
    if info.get("compiled_files"):
        print(f"Compiled:      {info['compiled_files']} OpenVINO network(s), "
              f"{format_bytes(info['compiled_bytes'])}")
    return 0


def _run_cache_clear(args):
    from ..cache import cache_info, clear_cache

    directory = cache_info(args.dir)["directory"]
    removed = clear_cache(args.dir)
    print(f"Removed {removed} cached feature vectors from {directory}")
    return 0


# ------------------------------------------------------------------------------- export


def _add_export(commands):
    from ..exporting import FORMATS

    export = add_command(
        commands, "export", _run_export,
        help="export a saved model as one network (photo pixels in, probabilities out)",
        description="Write the model as one network for another runtime into DIR, with\n"
                    "skanimal-export.json (classes, input size, how to decode photos) and\n"
                    "predict.py, which predicts photos with Pillow, NumPy and that runtime\n"
                    "only. tflite and onnx need pip install \"skanimal[export]\", openvino\n"
                    "needs \"skanimal[openvino]\".\n\n"
                    "Only load model files you trust: joblib files can run code when loaded.",
        epilog="example: skanimal export animals.joblib --into animals-onnx --format onnx",
    )
    export.add_argument("model", metavar="MODEL", help="a model saved by 'skanimal train'")
    export.add_argument("--into", required=True, metavar="DIR",
                        help="the export folder: new or empty (see --force)")
    export.add_argument("--format", required=True, choices=tuple(FORMATS),
                        help="keras (.keras), savedmodel (TensorFlow), tflite (LiteRT), onnx, "
                             "openvino (IR; int8 models keep their int8 network)")
    export.add_argument("--force", action="store_true",
                        help="export into a folder that is not empty, replacing a previous "
                             "export there (other files are left alone)")
    add_weights_option(export)


def _run_export(args):
    import warnings

    from ..exporting import export, require_runtime
    from ..workflow import load_model

    require_runtime(args.format)  # one line naming the extra, before the model is loaded
    model = load_model(args.model, weights=args.weights)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        result = export(model, args.into, format=args.format, force=args.force)
    for note in result.warnings:
        print(f"{PROG}: warning: {note}", file=sys.stderr)
    for other in caught:
        if str(other.message) not in result.warnings:
            warnings.showwarning(other.message, other.category, other.filename, other.lineno)
    print(f"Exported {args.format} network ({format_bytes(result.n_bytes)}) to "
          f"{result.model_path}; predict with: python {result.directory / 'predict.py'} "
          "PHOTO_OR_FOLDER")
    return 0


#: The sub-commands, in the order ``skanimal --help`` lists them: each builds its parser.
COMMANDS = (_add_train, _add_evaluate, _add_predict, _add_demo, *LABELLING_COMMANDS,
            _add_cache, _add_export)


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
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND",
                                     required=True)
    for add in COMMANDS:
        add(commands)
    return parser


# ---------------------------------------------------------------------------------- main


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
        args.progress = progress_of(args)  # before stderr becomes a pipe
    message = usage = None
    with console():
        try:
            status = int(args.handler(args) or 0)
        except UsageError as exc:
            usage, status = str(exc), 2
        except BrokenPipeError:  # e.g. `skanimal predict ... | head`
            with contextlib.suppress(OSError, ValueError, AttributeError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            status = 1
        except DATA_ERRORS as exc:
            message, status = f"error: {for_the_shell(exc)}", 1
        except KeyboardInterrupt:
            message, status = "interrupted", 130
    if usage is not None:
        args.command_parser.error(usage)  # prints the usage and exits with status 2
    if message is not None:
        print(f"{PROG}: {message}", file=sys.stderr)
    return status

