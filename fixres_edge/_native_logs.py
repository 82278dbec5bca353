"""Keep the native libraries' own log lines off the user's stderr (command line only).

OpenCV logs through its own logger, and the codecs it links (libjpeg, libpng, libtiff) print
warnings such as "Corrupt JPEG data: premature end of data segment" straight to file
descriptor 2, where Python cannot catch them. The ``fixres-edge`` commands report every bad file
in one line of their own, so inside :func:`native_logs_silenced` OpenCV's log level is
``SILENT`` and file descriptor 2 points at the null device, while Python's ``sys.stderr`` keeps
writing to the real stderr. It changes process-wide state, so the library never calls it; the
commands do, except with ``--debug``.
"""
from __future__ import annotations

import io
import os
import sys
from contextlib import contextmanager

__all__ = ["native_logs_silenced"]


def _python_stderr_is_fd2() -> bool:
    try:
        return sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False  # replaced by a capturing object (pytest, an IDE): it does not use fd 2


@contextmanager
def native_logs_silenced(enabled: bool = True):
    """Inside the block, silence OpenCV's logger and the C libraries' writes to stderr.

    Parameters
    ----------
    enabled : bool, default True
        ``False`` leaves everything as it is (``--debug``: every library speaks).
    """
    if not enabled:
        yield
        return
    import cv2

    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    python_stderr = sys.stderr
    saved = None
    try:
        python_stderr.flush()
        saved = os.dup(2)
        if _python_stderr_is_fd2():
            # Python's own messages go on to the real stderr through a copy of its descriptor.
            sys.stderr = io.TextIOWrapper(os.fdopen(os.dup(saved), "wb", buffering=0),
                                          encoding=python_stderr.encoding, errors="backslashreplace",
                                          line_buffering=True)
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 2)
        finally:
            os.close(null)
    except OSError:
        pass  # no fd 2 to redirect (embedded interpreters): OpenCV's logger is silenced at least
    try:
        yield
    finally:
        if sys.stderr is not python_stderr:
            sys.stderr.flush()
            sys.stderr.close()
            sys.stderr = python_stderr
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)
        cv2.utils.logging.setLogLevel(level)
