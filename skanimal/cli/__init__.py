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
and then exits with status 1 (its output lacks those images). Every command that loads a
model takes ``--weights PATH``: its backbone weights file at a new place, checked by content.

The package: :mod:`~skanimal.cli.commands` (a parser and a handler per sub-command),
:mod:`~skanimal.cli.arguments` (argument types and shared options),
:mod:`~skanimal.cli.console` (warnings and TensorFlow's notices while a command runs),
:mod:`~skanimal.cli.output` (the table, CSV and JSON writers) and
:mod:`~skanimal.cli.errors` (library errors worded with the command's options).

Adding a command takes two functions in :mod:`skanimal.cli.commands`:
``_add_<name>(commands)``, which builds its parser with
:func:`~skanimal.cli.arguments.add_command` (naming the handler), listed in ``COMMANDS``;
and the handler ``_run_<name>(args)``, which calls a workflow function, prints, and returns
the exit status (raising :class:`UsageError` for an argument mistake argparse cannot see
alone, or letting a :class:`~skanimal.SkanimalError` or :class:`OSError` out for a data
error).
"""

from .._deferred import defer_imports

defer_imports()  # before anything imports scikit-learn: see skanimal._deferred

from .arguments import UsageError  # noqa: E402
from .commands import build_parser, main  # noqa: E402

__all__ = ["main", "build_parser", "UsageError"]
