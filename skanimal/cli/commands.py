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
from ..backbones import available_backbones, get_spec
from .arguments import (
    HelpFormatter,
    UsageError,
    add_command,
    add_on_error_option,
    add_progress_option,
    add_weights_option,
    epochs,
    fraction_or_count,
    image_size,
    pooling,
    port,
    positive_float,
    positive_int,
    probability,
    progress_of,
    report_skipped,
    status_after_skipping,
    weights_choice,
)
from .console import PROG, console
from .errors import DATA_ERRORS, for_the_shell
from .output import format_bytes, write_audit, write_csv, write_json, write_records, write_table

__all__ = ["main", "build_parser", "COMMANDS"]


# -------------------------------------------------------------------------------- train


def _add_train(commands):
    train = add_command(
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
    add_progress_option(train)
    train.add_argument("data_dir", metavar="DATA_DIR", help="folder with one sub-folder of "
                       "images per class")
    train.add_argument("-o", "--output", metavar="MODEL", required=True,
                       help="file to save the fitted pipeline to (joblib)")
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
    add_on_error_option(train, "fail")


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
    print(f"Saved the model to {output} ({format_bytes(result.model_bytes)})")
    if report_dir is not None:
        print(f"Wrote the test-set report to {report_dir}")


def _run_train(args):
    from ..workflow import train

    _check_train_args(args)
    result = train(args.data_dir, args.output, val_size=args.val_size,
                   test_size=args.test_size, backbone=args.backbone, weights=args.weights,
                   image_size=args.image_size, pooling=args.pooling, head=args.head,
                   epochs=args.epochs,
                   batch_size=args.batch_size, learning_rate=args.learning_rate,
                   random_state=args.random_state, report_dir=args.report_dir,
                   cache=args.cache, progress=args.progress, on_error=args.on_error, log=print)
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
        description="Print the top-k classes and probabilities of each image. Folders are\n"
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
    if args.format == "json":
        write_json([{"path": path, "predictions": [{"label": label, "probability": round(p, 6)}
                                                   for label, p in ranked]}
                    for path, ranked in rows])
    elif args.format == "csv":
        columns = ["path"] + [f"{name}_{rank}" for rank in ranks
                              for name in ("label", "probability")]
        write_csv(columns, [
            {"path": path, **{f"{name}_{rank}": value
                              for rank, (label, p) in enumerate(ranked, 1)
                              for name, value in (("label", label), ("probability", f"{p:.6f}"))}}
            for path, ranked in rows])
    else:
        write_table(["PATH"] + [f"TOP {rank}" for rank in ranks],
                    [[path] + [f"{label} {p:.3f}" for label, p in ranked]
                     for path, ranked in rows])
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
    return 0


def _run_cache_clear(args):
    from ..cache import cache_info, clear_cache

    directory = cache_info(args.dir)["directory"]
    removed = clear_cache(args.dir)
    print(f"Removed {removed} cached feature vectors from {directory}")
    return 0


# ------------------------------------------------------------------ sort, suggest, audit


def _add_sort(commands):
    sort = add_command(
        commands, "sort", _run_sort,
        help="sort photos into class folders with a saved model; the unsure ones to review",
        usage="skanimal sort MODEL SOURCE... --into OUT [--min-confidence P] "
              "[--copy | --link | --move] [--weights PATH]\n       skanimal sort --undo OUT",
        description="Put each image of SOURCE (files, and folders searched recursively) into\n"
                    "OUT/<class>/ when the model is confident enough, else into OUT/_review/,\n"
                    "and write OUT/predictions.csv (source, destination, label_1,\n"
                    "probability_1, then the runner-up classes). Names that collide get a\n"
                    "suffix; nothing is ever overwritten; running the same sort again\n"
                    "duplicates nothing, and a photo a retrained model puts in another class\n"
                    "is moved there. --move is\n"
                    "journaled: killed and run again, it finishes with every photo exactly\n"
                    "once. --undo OUT puts moved photos back (and removes copies and links).\n\n"
                    "Only load model files you trust: joblib files can run code when loaded.",
        epilog="example: skanimal sort animals.joblib unsorted/ --into sorted/ --move",
    )
    add_progress_option(sort)
    add_on_error_option(sort, "skip")
    sort.add_argument("inputs", metavar="MODEL SOURCE", nargs="*",
                      help="a model saved by 'skanimal train' (or skanimal.save), then image "
                           "files and folders")
    sort.add_argument("--into", metavar="OUT", help="output folder")
    sort.add_argument("--min-confidence", type=probability, metavar="P",
                      help="top probability needed for a class folder (0-1); default: the "
                           "classifier's calibrated confidence_threshold_, else 0.9")
    how = sort.add_mutually_exclusive_group()
    for mode, text in (("copy", "copy the photos (default; sources untouched)"),
                       ("link", "hard-link them (symbolic links across file systems)"),
                       ("move", "move them (journaled, crash-safe)")):
        how.add_argument(f"--{mode}", dest="mode", action="store_const", const=mode,
                         help=text)
    how.add_argument("--undo", metavar="OUT", help="reverse every sort into OUT")
    sort.add_argument("--discard-later-moves", action="store_true",
                      help="with --undo: also put back photos moved on the review page since")
    sort.set_defaults(mode="copy")
    add_weights_option(sort)


def _check_sort_args(args):
    if args.undo is not None:
        if args.inputs or args.into or args.weights:
            raise UsageError("--undo OUT takes no MODEL, SOURCE, --into or --weights")
        return
    if len(args.inputs) < 2:
        raise UsageError("the following arguments are required: MODEL SOURCE...")
    if args.into is None:
        raise UsageError("the following arguments are required: --into OUT")


def _run_sort(args):
    from ..sorting import sort_images, undo_sort
    from ..workflow import load_model

    _check_sort_args(args)
    if args.undo is not None:
        undone = undo_sort(args.undo, discard_later_moves=args.discard_later_moves)
        if undone.later_moves_undone:
            print(f"Undid {undone.later_moves_undone} later move(s) within {args.undo} "
                  "(review-page corrections)")
        if undone.restored or not undone.removed:
            print(f"Restored {len(undone.restored)} photo(s) to where they came from")
        if undone.removed:
            print(f"Removed {undone.removed} copied or linked photo(s) from {args.undo}")
        return 0
    model_path, *sources = args.inputs
    model = load_model(model_path, weights=args.weights)
    result = sort_images(model, sources, args.into, min_confidence=args.min_confidence,
                         mode=args.mode, on_error=args.on_error,
                         progress=bool(args.progress))
    print(f"Threshold: {result.threshold:.4g} ({result.threshold_source})")

    def folders(counts):
        return ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))

    if result.resumed:
        print(f"Finished an interrupted sort first: its {result.resumed} photo(s) are in "
              f"{result.into}: {folders(result.resumed_counts)}")
    verb = {"copy": "Copied", "link": "Linked", "move": "Moved"}[args.mode]
    placed = {k: v for k, v in result.counts.items() if k != "unreadable"}
    print(f"{verb} {result.transferred} photo(s) into {result.into}"
          + (f"; {result.already_in_place} already there" if result.already_in_place else "")
          + (f". Sorted: {folders(placed)}" if placed else ""))
    if result.moved_by_other_run:
        print(f"{len(result.moved_by_other_run)} photo(s) were moved by another sort running "
              f"at the same time, first: " + ", ".join(
                  f"{source} -> {destination}"
                  for source, destination in result.moved_by_other_run[:5])
              + (" ..." if len(result.moved_by_other_run) > 5 else ""))
    if result.relocations:
        print(f"Moved {len(result.relocations)} photo(s) already in {result.into} to their "
              "new folder (no second copy)")
    print(f"Wrote {result.predictions}")
    return status_after_skipping(result.unreadable, "left in place")


def _add_suggest(commands):
    suggest = add_command(
        commands, "suggest", _run_suggest,
        help="pick the photos worth labelling next (uncertain and diverse)",
        description="Score every image of POOL (files and folders) with the model and list\n"
                    "the N worth labelling next: the smallest margins between the two most\n"
                    "probable classes, spread out in feature space (greedy k-center) so they\n"
                    "are not near-copies of one confusing case.\n\n"
                    "Only load model files you trust: joblib files can run code when loaded.",
        epilog="example: skanimal suggest animals.joblib unsorted/ -n 20 --into to-label/",
    )
    add_progress_option(suggest)
    add_on_error_option(suggest, "skip")
    suggest.add_argument("model", metavar="MODEL", help="a model saved by 'skanimal train'")
    suggest.add_argument("pool", metavar="POOL", nargs="+", help="unlabelled images/folders")
    suggest.add_argument("-n", type=positive_int, default=20, metavar="N",
                         help="number of photos; default: %(default)s")
    suggest.add_argument("--format", choices=("table", "csv", "json"), default="table",
                         help="output format; default: %(default)s")
    suggest.add_argument("--into", metavar="DIR",
                         help="also copy them into DIR (never overwriting)")
    add_weights_option(suggest)


def _run_suggest(args):
    from ..suggest import COLUMNS, suggest_images
    from ..workflow import load_model

    model = load_model(args.model, weights=args.weights)
    result = suggest_images(model, args.pool, args.n, into=args.into,
                            on_error=args.on_error, progress=bool(args.progress))
    write_records(result.rows, COLUMNS, args.format)
    if args.into is not None:
        print(f"Copied {len(result.copied)} photo(s) into {args.into}", file=sys.stderr)
    return status_after_skipping(result.unreadable)


def _add_audit(commands):
    audit = add_command(
        commands, "audit", _run_audit,
        help="find wrong labels, duplicates and near-duplicates in a labelled image set",
        description="DATA_DIR/<class>/<images> (or DATA_DIR/<train|val|test>/<class>/...).\n"
                    "Suspects: photos whose folder gets a low out-of-fold probability from a\n"
                    "cross-validated classifier on the features, most suspicious first, with\n"
                    "the suggested class. Exact duplicates (same bytes) under different\n"
                    "classes or split between parts, and near-duplicates (similar features).",
        epilog="example: skanimal audit photos/ --backbone mobilenet_v2 --weights mnv2.h5",
    )
    add_progress_option(audit)
    add_on_error_option(audit, "skip")
    audit.add_argument("data_dir", metavar="DATA_DIR", help="class-per-folder image set")
    audit.add_argument("--model", metavar="MODEL",
                       help="use the features of this saved model (instead of --backbone, "
                            "--image-size; --weights is then its weights file's new place)")
    audit.add_argument("--backbone", choices=available_backbones(),
                       help="without --model: backbone; default: vgg16")
    audit.add_argument("--weights", metavar="W",
                       help="without --model: 'imagenet', 'none' or a weights file; default: "
                            "imagenet. With --model: the model's weights file (or a folder "
                            "holding it) at its new place, when it was moved since training; "
                            "checked by content")
    audit.add_argument("--image-size", type=image_size, metavar="HxW",
                       help="without --model: image size, e.g. 224x224; default: the "
                            "backbone's own")
    audit.add_argument("--format", choices=("table", "csv", "json"), default="table",
                       help="output format; default: %(default)s")


def _run_audit(args):
    from ..audit import audit_folder
    from ..workflow import load_model

    if args.model is not None:
        if (args.backbone, args.image_size) != (None, None):
            raise UsageError("--model takes the features of the model; leave out --backbone "
                             "and --image-size")
        model, weights = load_model(args.model, weights=args.weights), "imagenet"
    else:
        model = None
        weights = "imagenet" if args.weights is None else weights_choice(args.weights)
    result = audit_folder(args.data_dir, model=model, backbone=args.backbone or "vgg16",
                          weights=weights, image_size=args.image_size,
                          on_error=args.on_error, progress=bool(args.progress))
    write_audit(result, args.data_dir, args.format)
    return status_after_skipping(result.unreadable)


# ------------------------------------------------------------------------------- review


def _add_review(commands):
    review = add_command(
        commands, "review", _run_review,
        help="check sorted photos on a local web page: relabel with one key, retrain",
        description=(
            "Start a local web page showing the photos of DIR (a folder made by 'skanimal\n"
            "sort' or any class-per-folder set) by class, the _review folder first and the\n"
            "least confident photos first. Enter accepts the prediction of the selected\n"
            "photos, keys 1-9 move them to a class, 0 to _review, Delete to _trash, u undoes\n"
            "step by step (also after a restart); moves are journaled like 'sort --move'.\n"
            "Retrain fits the model's head again on the photos labelled and confirmed (and\n"
            "those the model sorted, unless told not to), saves it beside MODEL (never\n"
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
    review.add_argument("--port", type=port, default=0, metavar="N",
                        help="TCP port; default: a free one")
    review.add_argument("--host", default="127.0.0.1", metavar="H",
                        help="address to listen on; default: %(default)s (this computer "
                             "only). Any other address is reachable by others: a warning says so")
    review.add_argument("--no-browser", dest="browser", action="store_false",
                        help="do not open a web browser")
    review.add_argument("--labelled", metavar="PHOTOS",
                        help="the labelled photos MODEL was trained from (class-per-folder "
                             "set or labels CSV): Retrain trains on them again")
    add_weights_option(review)


def _run_review(args):
    from ..review import serve  # says which extra to install, before Flask is imported

    if args.weights is not None and args.model is None:
        raise UsageError("--weights is the weights file of --model MODEL: give both")
    return serve(args.directory, model=args.model, host=args.host, port=args.port,
                 open_browser=args.browser, weights=args.weights, labelled=args.labelled)


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

