"""The ``skanimal`` command's console: what reaches stderr while a command runs.

Python warnings become one ``skanimal: warning: ...`` line each; the deprecation chatter
of TensorFlow, Keras, SciKeras and absl, and their Python loggers below ERROR, stay off;
TensorFlow's C++ notices are dropped from descriptor 2 by the one filter that knows them,
:func:`skanimal._tfstartup.filtered_stderr` (its list, :data:`skanimal._tfstartup.NOTICES`,
is the only one). ``TF_CPP_MIN_LOG_LEVEL`` is set by ``skanimal/__init__.py``, before
anything here runs.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings

from .._tfstartup import filtered_stderr

__all__ = ["PROG", "console", "show_warning"]

PROG = "skanimal"

#: Libraries whose deprecation and future warnings are theirs to fix, not the user's.
_QUIET_MODULES = ("tensorflow", "keras", "scikeras", "absl", "google")


def show_warning(message, category, filename, lineno, file=None, line=None):
    """Print a Python warning as one ``skanimal: warning: ...`` line (``warnings.showwarning``)."""
    text = " ".join(str(message).split())
    print(f"{PROG}: warning: {text}", file=file or sys.stderr)


def _quiet_python_loggers():
    # Without importing TensorFlow: a command that does not need it must not pay for it.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # pragma: no cover - absl comes with TensorFlow
        pass


@contextlib.contextmanager
def console():
    """While a command runs: warnings as one line each, TensorFlow's notices off stderr."""
    with warnings.catch_warnings(), filtered_stderr():
        warnings.showwarning = show_warning
        for module in _QUIET_MODULES:
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=module)
            warnings.filterwarnings("ignore", category=FutureWarning, module=module)
        _quiet_python_loggers()
        yield
