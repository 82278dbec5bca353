"""Errors that belong to one input, and how any error becomes one line of text.

A batch (``Classifier.predict_batch``, ``eval``, ``calibrate``, a video stream) goes on past an
input that fails with one of :data:`ITEM_ERRORS`; everything else (a bug, ``MemoryError``,
``KeyboardInterrupt``) stops it. What the user sees of an error is :func:`one_line` of it, so that
a message from OpenCV or ONNX Runtime spanning several lines never breaks a one-line-per-file log.
"""
from __future__ import annotations

#: Exceptions that concern one input (a bad file, frame or label), not the classifier or the run.
ITEM_ERRORS = (ValueError, TypeError, OSError, RuntimeError)


def one_line(error: BaseException) -> str:
    """The first non-blank line of ``str(error)``, stripped; the exception's type name when empty.

    Examples
    --------
    >>> one_line(ValueError("bad header\\n  at offset 12"))
    'bad header'
    >>> one_line(RuntimeError())
    'RuntimeError'
    """
    for line in str(error).splitlines():
        if line.strip():
            return line.strip()
    return type(error).__name__


def with_name(name: str, message: str) -> str:
    """``"<name>: <message>"``, or ``message`` alone when it already names the input.

    Decoders usually put the path into their message; this keeps it from appearing twice.

    Examples
    --------
    >>> with_name("a.jpg", "truncated JPEG header")
    'a.jpg: truncated JPEG header'
    >>> with_name("a.jpg", "a.jpg: file not found")
    'a.jpg: file not found'
    """
    return message if name in message else f"{name}: {message}"
