"""Argument types and options shared by the ``skanimal`` command's sub-commands."""

from __future__ import annotations

import argparse
import sys

from .console import PROG

__all__ = [
    "UsageError", "HelpFormatter", "add_command", "fraction_or_count", "positive_int",
    "epochs", "positive_float", "image_size", "weights_choice", "probability", "port",
    "pooling", "add_progress_option", "add_on_error_option", "add_precision_option",
    "add_weights_option", "TRAIN_OPTIONS", "check_train_args", "report_skipped",
    "status_after_skipping",
    "progress_of",
]


def fraction_or_count(text):
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


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def epochs(text):
    return "auto" if text.lower() == "auto" else positive_int(text)


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def image_size(text):
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


def weights_choice(text):
    """``none`` (random weights, for tests) or the text itself (``imagenet`` or a path)."""
    return None if text.lower() == "none" else text


def probability(text):
    """A number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def port(text):
    """A TCP port number, 0 for any free one."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port must be in 0..65535, got {text}")
    return value


def pooling(text):
    value = text.lower()
    if value not in ("none", "avg", "max"):
        raise argparse.ArgumentTypeError(f"choose from none, avg, max (got {text!r})")
    return None if value == "none" else value


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keep the line breaks of descriptions and epilogs."""


class UsageError(Exception):
    """An argument mistake argparse cannot see alone: a handler raises it, and
    :func:`main` reports it as argparse does (usage, message, exit status 2)."""


def add_command(commands, name, handler, **kwargs):
    """Add the sub-command ``name`` whose handler is ``handler(args) -> int``."""
    parser = commands.add_parser(name, formatter_class=HelpFormatter, **kwargs)
    parser.set_defaults(handler=handler, command_parser=parser)
    return parser


def add_progress_option(parser):
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None,
        help="show progress bars (extracting features, training the head, placing photos); "
             "default: when stderr is a terminal",
    )


def add_precision_option(parser):
    # the choices are BottleneckFeatures' precisions, spelt out: --help imports no model
    parser.add_argument(
        "--precision", choices=("float32", "bfloat16", "int8"), default="float32",
        help="arithmetic of the backbone, kept in the model (predict, sort and review use "
             "it): 'bfloat16' (faster on CPUs with AVX512-BF16/AMX, slower elsewhere), "
             "'int8' quantized through OpenVINO (pip install 'skanimal[openvino]'); "
             "default: %(default)s",
    )


def add_on_error_option(parser, default):
    other = "fail" if default == "skip" else "skip"
    why = {"skip": "the other images are still used",
           "fail": "a model or score made without some images should be your choice"}[default]
    parser.add_argument(
        "--on-error", choices=("fail", "skip"), default=default,
        help=f"images that cannot be read: 'fail' stops with one error naming every one of "
             f"them, 'skip' goes on without them and lists them on stderr at the end; "
             f"default: %(default)s ({why}; use '{other}' otherwise)",
    )


def add_weights_option(parser, dest="weights"):
    """``--weights PATH``: the model's weights file at its new place (every command that
    loads a model takes it)."""
    parser.add_argument(
        "--weights", metavar="PATH", dest=dest,
        help="the model's backbone weights file (or a folder holding it) at its new place, "
             "when it was moved since training; checked by content. Without it, a moved "
             "file is looked for beside its old place and in Keras' cache (~/.keras/models)",
    )


def report_skipped(skipped, what="skipped"):
    """List the images a command went on without, on stderr, one per line."""
    if skipped:
        print(f"{PROG}: warning: {what} {len(skipped)} unreadable image(s):", file=sys.stderr)
        for _, reason in skipped:
            print(f"  {reason}", file=sys.stderr)


def status_after_skipping(skipped, what="skipped"):
    """List the unreadable images (see :func:`report_skipped`) and return the exit status
    of a command that answers for every image it was given: 0 only when none was skipped."""
    report_skipped(skipped, what)
    return 1 if skipped else 0


def progress_of(args):
    if args.progress is not None:
        return int(bool(args.progress))
    try:
        return int(sys.stderr.isatty())
    except (AttributeError, ValueError):
        return 0


#: ``skanimal train``'s options that are :func:`skanimal.workflow.train`'s keywords as they are.
TRAIN_OPTIONS = ("val_size", "test_size", "backbone", "weights", "image_size", "pooling", "head",
                 "epochs", "batch_size", "learning_rate", "random_state", "report_dir", "cache",
                 "progress", "on_error", "labels", "precision")


def check_train_args(args):
    """What argparse cannot check alone in ``skanimal train``'s arguments (UsageError)."""
    if args.data_dir is None and args.labels is None:
        raise UsageError("give DATA_DIR (one sub-folder per class) or --labels FILE.csv")
    from ..backbones import get_spec

    spec = get_spec(args.backbone)
    if args.image_size is not None and min(args.image_size) < spec.min_size:
        raise UsageError(f"argument --image-size: {args.backbone} needs images of at least "
                         f"{spec.min_size}x{spec.min_size} pixels")
    if args.report_dir is not None and args.test_size == 0:
        raise UsageError("--report-dir needs a test part: use --test-size > 0")
    fractions = [size for size in (args.val_size, args.test_size) if isinstance(size, float)]
    if sum(fractions) >= 1:
        raise UsageError("--val-size and --test-size leave no images to train on")
