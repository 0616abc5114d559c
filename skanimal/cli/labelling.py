"""The labelling sub-commands — sort, suggest, audit, review: a parser and a handler each.

:mod:`skanimal.cli.commands` lists them after the model commands.
"""

from __future__ import annotations

import sys

from ..backbones import available_backbones
from .arguments import (
    UsageError,
    add_command,
    add_on_error_option,
    add_progress_option,
    add_weights_option,
    image_size,
    port,
    positive_int,
    probability,
    status_after_skipping,
    weights_choice,
)
from .output import write_audit, write_records

__all__ = ["COMMANDS"]


# ------------------------------------------------------------------ sort, suggest, audit


def _add_sort(commands):
    sort = add_command(
        commands, "sort", _run_sort,
        help="sort photos into class folders with a saved model; the unsure ones to review",
        usage="skanimal sort MODEL SOURCE... --into OUT [--min-confidence P] "
              "[--copy | --link | --move] [--weights PATH]\n"
              "                     [--on-error {fail,skip}] [--progress | --no-progress]\n"
              "       skanimal sort --undo OUT [--discard-later-moves]",
        description="Put each image of SOURCE (files, and folders searched recursively) into\n"
                    "OUT/<class>/ when the model is confident enough, else into OUT/_review/,\n"
                    "and write OUT/predictions.csv (source, destination, label_1,\n"
                    "probability_1, the runner-up classes, status, review_reason: why a photo\n"
                    "went to _review, error). Names that collide get a\n"
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


#: The labelling sub-commands, in the order ``skanimal --help`` lists them.
COMMANDS = (_add_sort, _add_suggest, _add_audit, _add_review)
