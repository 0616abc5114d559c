"""TensorFlow's output kept off the streams that are not its to use.

While TensorFlow loads and discovers its devices, and later as it runs, its C++ code writes
log lines straight to file descriptor 2: the oneDNN banner, "Could not find cuda drivers",
the CUDA probe that fails on a machine without a GPU. Current releases log them through
absl before ``absl::InitializeLog()`` is called, which ignores ``TF_CPP_MIN_LOG_LEVEL``
(``skanimal/__init__.py`` sets it to 2: no info, no warnings). For a user of a
scikit-learn API, and of the ``skanimal`` command, they are noise.

This module is the one place that knows them and the one mechanism that removes them:

- :data:`NOTICES`, the lines dropped (:func:`drop_notices`);
- :func:`filtered_stderr`, which points descriptor 2 at a pipe while it is active and
  forwards, as they come, every line but those: an unknown line, a real error, a Python
  warning, a progress bar or a traceback still reaches stderr unchanged. The ``skanimal``
  command runs inside it; :func:`start_tensorflow` uses it for ``import tensorflow`` in any
  other program;
- :func:`download_notice_to_stderr`, which keeps Keras' "Downloading data from" line off
  stdout (the stream that carries results).

:func:`start_tensorflow` neither creates TensorFlow's runtime nor sets any option, so
thread limits (:mod:`skanimal._parallel`) can still be applied afterwards.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import threading

__all__ = ["NOTICES", "start_tensorflow", "drop_notices", "NoticeFilter", "filtered_stderr",
           "download_notice_to_stderr"]


# The start of an absl (``I0000 00:00:17.5  123 file.cc:12] ``) or older TensorFlow
# (``2024-01-31 12:00:00.5: I tensorflow/core/file.cc:12] ``) log line of a given level.
def _log_line(level, source, text):
    return (rb"(?:%s\d{4} [\d:. ]+ |\d{4}-\d\d-\d\d [\d:.]+: %s )[\w./-]*?%s\.cc:\d+\] %s"
            % (level, level, source, text))


NOTICES = re.compile(b"|".join([
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to "
    rb"STDERR",
    # Info and warning lines of TensorFlow's C++ code: what TF_CPP_MIN_LOG_LEVEL=2 asks to
    # drop and current releases print anyway. Errors are kept.
    _log_line(b"[IW]", rb"\w+", rb""),
    rb"To enable the following instructions: .* rebuild TensorFlow with the appropriate "
    rb"compiler flags\.",
]))
"""TensorFlow's notices, matched at the start of a line. The failed CUDA probe is an error
line in form, and only dropped when TensorFlow said just before that this machine has no
CUDA driver (see :class:`NoticeFilter`)."""
_NO_DRIVER = re.compile(_log_line(b"I", rb"cudart_stub",
                                  rb"Could not find cuda drivers on your machine"))
_NO_DRIVER_PROBE = re.compile(_log_line(b"E", rb"cuda_\w+", rb"failed call to cuInit"))


class NoticeFilter:
    """Tells, line by line and in order, which lines of stderr are :data:`NOTICES`."""

    def __init__(self):
        self._no_driver = False

    def is_notice(self, line):
        """Whether ``line`` (bytes or str, one line) is a notice to drop.

        Parameters
        ----------
        line : bytes or str

        Returns
        -------
        bool
        """
        if isinstance(line, str):
            line = line.encode("utf-8", "replace")
        if _NO_DRIVER.match(line):
            self._no_driver = True
        return bool(NOTICES.match(line)
                    or (self._no_driver and _NO_DRIVER_PROBE.match(line)))


def drop_notices(data):
    """``data`` (bytes written to stderr) without TensorFlow's notices.

    Parameters
    ----------
    data : bytes

    Returns
    -------
    bytes
        Every other line, unchanged and in order.
    """
    notices = NoticeFilter()
    return b"".join(line for line in data.splitlines(keepends=True)
                    if not notices.is_notice(line))


# ------------------------------------------------------------------------- the mechanism

_ACTIVE_LOCK = threading.Lock()
_active = 0  # filters active in this process: only the outermost one filters


class _StderrPump:
    """Descriptor 2 to a pipe, read by a thread that forwards what is not a notice."""

    def __init__(self, saved, read_end):
        self._saved, self._read_end = saved, read_end
        self._notices = NoticeFilter()
        self.thread = threading.Thread(target=self._pump, name="skanimal-stderr",
                                       daemon=True)

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
                if not self._notices.is_notice(segment):
                    keep.append(segment)
            pending = pending[start:]
            # A partial line (a progress bar, a prompt) goes out at once unless it starts
            # like a notice (log lines arrive whole, in one write); at EOF, whatever is left.
            if pending and not NOTICES.match(pending):
                keep.append(pending)
                pending = b""
            elif not chunk:
                pending = b""
            self._write(b"".join(keep))
            if not chunk:
                return


def _flush_stderr():
    with contextlib.suppress(Exception):
        sys.stderr.flush()


@contextlib.contextmanager
def filtered_stderr():
    """Drop :data:`NOTICES` from descriptor 2 while the block runs; pass the rest at once.

    Nested uses (the ``skanimal`` command, then :func:`start_tensorflow` inside it) filter
    once. A no-op where the process has no descriptor 2.
    """
    global _active
    with _ACTIVE_LOCK:
        outermost = _active == 0
        _active += 1
    pump = None
    try:
        if outermost:
            try:
                _flush_stderr()
                saved = os.dup(2)
            except OSError:
                saved = None
            if saved is not None:
                read_end, write_end = os.pipe()
                os.dup2(write_end, 2)
                os.close(write_end)
                pump = _StderrPump(saved, read_end)
                pump.thread.start()
        yield
    finally:
        if pump is not None:
            _flush_stderr()
            os.dup2(pump._saved, 2)  # closes the pipe's write end: the pump sees EOF
            pump.thread.join(timeout=5)
            if not pump.thread.is_alive():  # else a child process still holds the pipe:
                os.close(pump._read_end)    # leave both descriptors to the (daemon) thread
                os.close(pump._saved)
        with _ACTIVE_LOCK:
            _active -= 1


class _HeldDownloadNotice(io.TextIOBase):
    """Stand-in for stdout while Keras may download weights.

    Keras prints ``Downloading data from <url>`` to stdout, the stream that carries the
    ``skanimal`` command's results, and offline that line comes just before the failure.
    The first line is held; once more output shows the download under way, it and the rest
    go to stderr.
    """

    def __init__(self, target):
        self._target = target
        self._held = ""
        self._live = False

    def writable(self):
        return True

    def write(self, text):
        if self._live:
            self._target.write(text)
        elif "\n" in self._held:  # a second write: the download is making progress
            self._live = True
            self._target.write(self._held + text)
            self._held = ""
        else:
            self._held += text
        return len(text)

    def flush(self):
        if self._live:
            self._target.flush()

    def release(self):
        if self._held:
            self._target.write(self._held)
            self._held = ""


@contextlib.contextmanager
def download_notice_to_stderr():
    """Send what Keras prints to stdout in the block (its download notice) to stderr.

    The first line is held until the block ends: written to stderr when the block succeeds,
    dropped when it fails (offline, the notice of a download that never happened).
    """
    notice = _HeldDownloadNotice(sys.stderr)
    with contextlib.redirect_stdout(notice):
        yield
    notice.release()


# ------------------------------------------------------------------------- start-up

_LOCK = threading.Lock()
_started = False


def start_tensorflow():
    """Import TensorFlow and discover its devices, once per process, without its notices.

    Errors (a broken installation) propagate as they would from ``import tensorflow``,
    and whatever else was written to stderr meanwhile still reaches it.
    """
    global _started
    if _started:
        return
    with _LOCK:
        if _started:
            return
        with filtered_stderr():
            import tensorflow as tf

            tf.config.list_physical_devices()  # CUDA probing happens here
        _started = True
