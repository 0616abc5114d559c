"""Start TensorFlow without its C++ start-up notices on stderr.

While TensorFlow loads and discovers its devices, its C++ code writes notices straight to
file descriptor 2: the oneDNN banner, "Could not find cuda drivers", the CUDA probe that
fails on a machine without a GPU. Current releases log them through absl before
``absl::InitializeLog()`` is called, which ignores ``TF_CPP_MIN_LOG_LEVEL`` (that variable,
set by ``skanimal/__init__.py``, still silences the rest). For a user of a scikit-learn
API they are noise.

:func:`start_tensorflow` imports TensorFlow and discovers its devices with descriptor 2
pointing to a temporary file, then writes back everything except the known notices in
:data:`NOTICES`: an unknown line, a real error, or another thread's output in the
meantime still reaches stderr, unchanged (only later). It neither creates TensorFlow's
runtime nor sets any option, so thread limits (:mod:`skanimal._parallel`) can still be
applied afterwards.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading

__all__ = ["NOTICES", "start_tensorflow", "drop_notices"]

# The start of an absl (``I0000 00:00:17.5  123 file.cc:12] ``) or older TensorFlow
# (``2024-01-31 12:00:00.5: I tensorflow/core/file.cc:12] ``) log line of a given level.
def _log_line(level, source, text):
    return (rb"(?:%s\d{4} [\d:. ]+ |\d{4}-\d\d-\d\d [\d:.]+: %s )[\w./-]*?%s\.cc:\d+\] %s"
            % (level, level, source, text))


NOTICES = re.compile(b"|".join([
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to "
    rb"STDERR",
    _log_line(b"I", rb"port", rb"oneDNN custom operations are on\."),
    _log_line(b"I", rb"cudart_stub", rb"Could not find cuda drivers on your machine"),
    _log_line(b"I", rb"cpu_feature_guard", rb"This TensorFlow binary is optimized"),
    rb"To enable the following instructions: .* rebuild TensorFlow with the appropriate "
    rb"compiler flags\.",
]))
"""TensorFlow's start-up notices, matched at the start of a line. The failed CUDA probe is
an error line in form, and only dropped when TensorFlow said just before that this machine
has no CUDA driver (see :func:`drop_notices`)."""
_NO_DRIVER = re.compile(_log_line(b"I", rb"cudart_stub",
                                  rb"Could not find cuda drivers on your machine"))
_NO_DRIVER_PROBE = re.compile(_log_line(b"E", rb"cuda_\w+", rb"failed call to cuInit"))

_LOCK = threading.Lock()
_started = False


def drop_notices(data):
    """``data`` (bytes written to stderr) without TensorFlow's start-up notices.

    Parameters
    ----------
    data : bytes

    Returns
    -------
    bytes
        Every other line, unchanged and in order.
    """
    lines = data.splitlines(keepends=True)
    no_driver = any(_NO_DRIVER.match(line) for line in lines)
    return b"".join(
        line for line in lines
        if not (NOTICES.match(line) or (no_driver and _NO_DRIVER_PROBE.match(line)))
    )


def _flush_stderr():
    with contextlib.suppress(Exception):
        sys.stderr.flush()


@contextlib.contextmanager
def _notices_filtered():
    """Send descriptor 2 to a temporary file; write back what :func:`drop_notices` keeps."""
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2: nothing to filter
        yield
        return
    try:
        capture = tempfile.TemporaryFile()
    except OSError:
        os.close(saved)
        yield
        return
    _flush_stderr()
    os.dup2(capture.fileno(), 2)
    try:
        yield
    finally:
        _flush_stderr()
        os.dup2(saved, 2)
        os.close(saved)
        with capture:
            capture.seek(0)
            kept = drop_notices(capture.read())
        while kept:
            try:
                kept = kept[os.write(2, kept):]
            except OSError:
                break


def start_tensorflow():
    """Import TensorFlow and discover its devices, once per process, without its notices.

    Errors (a broken installation) propagate as they would from ``import tensorflow``,
    and whatever else was written to stderr meanwhile is written back.
    """
    global _started
    if _started:
        return
    with _LOCK:
        if _started:
            return
        with _notices_filtered():
            import tensorflow as tf

            tf.config.list_physical_devices()  # CUDA probing happens here
        _started = True
