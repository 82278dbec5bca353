"""Video and camera streams: read frames with OpenCV, classify every K-th, report rolling FPS and latency.

The pieces are small so that each can be tested without hardware:

* :class:`StreamSource` names what to open (a camera index, or a video file or URL) and
  :func:`open_capture` opens it with ``cv2.VideoCapture``, turning every failure into one line.
* :class:`FrameReader` iterates over a capture: every ``every``-th frame is decoded and yielded,
  the others are only grabbed (no color conversion), up to ``max_frames`` classified frames. It
  works with anything that has ``grab()``, ``retrieve()`` and ``read()`` like a ``VideoCapture``.
* :class:`RollingStats` keeps the rolling FPS and latency over the last classified frames.
* :class:`StreamRun` ties them to a :class:`~fixres_edge.runtime.Classifier`: it yields one
  :class:`FrameResult` per classified frame and gives a :class:`StreamSummary` at the end (end of
  file, ``max_frames``, camera failure, or Ctrl-C). Printing them is the command's job
  (``fixres-edge classify --camera / --video``).

Latency is the time from having a frame to having its answer (preprocess + inference + top-k,
``Prediction.timings_ms["total"]``); reading the frame (waiting for the camera, or demuxing and
decoding a video) is reported apart as ``read_ms``. FPS counts classified frames per second of wall
time, so with ``every = K`` the camera delivers about K times as many.
"""
from __future__ import annotations

import glob
import math
import os
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

# Why a stream stopped (the summary's "stopped" field).
STOP_END = "end of stream"
STOP_MAX_FRAMES = "max frames"
STOP_INTERRUPTED = "interrupted"
STOP_CAMERA_FAILED = "camera stopped delivering frames"

# Frames classified per rolling FPS / latency figure.
DEFAULT_WINDOW = 30

# Channels of an OpenCV frame -> input_format (OpenCV delivers BGR; some backends gray or BGRA).
_FORMAT_BY_CHANNELS = {1: "GRAY", 3: "BGR", 4: "BGRA"}


def _positive(name: str, value, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer{' or None' if allow_none else ''}, got {value!r}")
    return int(value)


# ---------------------------------------------------------------------- sources
@dataclass(frozen=True)
class StreamSource:
    """What to open: ``StreamSource.camera(0)`` or ``StreamSource.video("clip.avi")``.

    Attributes
    ----------
    kind : {"camera", "video"}
    target : int or str
        Camera index (``/dev/video<N>`` on Linux) or a video file path or stream URL.
    """

    kind: str
    target: Any

    def __post_init__(self):
        if self.kind == "camera":
            if isinstance(self.target, bool) or not isinstance(self.target, (int, np.integer)) or self.target < 0:
                raise ValueError(f"camera index must be an integer >= 0, got {self.target!r}")
            object.__setattr__(self, "target", int(self.target))
        elif self.kind == "video":
            if not isinstance(self.target, (str, os.PathLike)) or not os.fspath(self.target):
                raise TypeError(f"video must be a file path or a stream URL, got {self.target!r}")
            object.__setattr__(self, "target", os.fspath(self.target))
        else:
            raise ValueError(f"unknown stream kind {self.kind!r}; valid: 'camera', 'video'")

    @classmethod
    def camera(cls, index: int) -> "StreamSource":
        return cls("camera", index)

    @classmethod
    def video(cls, path) -> "StreamSource":
        return cls("video", path)

    @property
    def is_camera(self) -> bool:
        return self.kind == "camera"

    @property
    def is_url(self) -> bool:
        return not self.is_camera and "://" in self.target

    @property
    def name(self) -> str:
        return f"camera {self.target}" if self.is_camera else self.target


def _camera_devices() -> list[str]:
    return sorted(glob.glob("/dev/video*")) if sys.platform.startswith("linux") else []


def open_capture(source: StreamSource):
    """Open ``source`` with ``cv2.VideoCapture``; raise a one-line error when it cannot be opened.

    OpenCV's own warnings (printed from C++ while it tries its backends) are silenced during the
    attempt, so a missing camera gives exactly one line.

    Returns
    -------
    cv2.VideoCapture
        Opened. Cameras get a one-frame buffer (where the backend allows it) so that a slow
        classifier sees the newest frame, not a stale queued one.

    Raises
    ------
    FileNotFoundError
        A video path that does not exist.
    ValueError
        A video OpenCV cannot read.
    RuntimeError
        A camera that cannot be opened (no such device, busy, or no permission).
    """
    import cv2

    if not isinstance(source, StreamSource):
        raise TypeError(f"source must be a StreamSource, got {type(source).__name__}")
    if not source.is_camera and not source.is_url:
        if not os.path.exists(source.target):
            raise FileNotFoundError(f"video file not found: {source.target}")
        if os.path.isdir(source.target):
            raise ValueError(f"{source.target} is a directory, not a video file")
    logging = cv2.utils.logging
    previous = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        capture = cv2.VideoCapture(source.target)
        opened = capture.isOpened()
    finally:
        logging.setLogLevel(previous)
    if not opened:
        capture.release()
        if source.is_camera:
            devices = _camera_devices()
            known = f"video devices here: {', '.join(devices)}" if devices else "no /dev/video* devices found"
            raise RuntimeError(f"cannot open camera {source.target}: no such device, busy, or no permission "
                               f"({known})")
        raise ValueError(f"cannot open video {source.target}: not a container/codec OpenCV's video "
                         f"backends can read")
    if source.is_camera:
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # ignored by backends without a queue
    return capture


# ---------------------------------------------------------------------- frames
@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded frame of a stream.

    Attributes
    ----------
    index : int
        0-based position in the stream (skipped frames count).
    image : ndarray
        uint8 ``(H, W, 3)`` BGR as OpenCV delivers it (``(H, W)`` or ``(H, W, 4)`` from some backends).
        The reader reuses this buffer for the next frame: copy it to keep it.
    read_ms : float
        Time spent reading this frame (and grabbing the skipped ones before it).
    """

    index: int
    image: np.ndarray
    read_ms: float

    @property
    def input_format(self) -> str:
        channels = 1 if self.image.ndim == 2 else self.image.shape[2]
        fmt = _FORMAT_BY_CHANNELS.get(channels)
        if fmt is None:
            raise ValueError(f"frame {self.index} has shape {self.image.shape}; expected (H, W), (H, W, 3) or "
                             f"(H, W, 4) uint8")
        return fmt


class FrameReader:
    """Iterate over the frames of a capture to classify.

    Parameters
    ----------
    capture
        A ``cv2.VideoCapture`` (or anything with ``grab()``, ``retrieve(image)``).
    every : int, default 1
        Yield every ``every``-th frame (frames 0, K, 2K, ...); the others are grabbed, not decoded.
    max_frames : int or None
        Stop after yielding this many frames.
    pace_fps : float or None
        Yield frame ``i`` no earlier than ``i / pace_fps`` seconds after the first one (play a video
        file at its own rate, as a camera would deliver it). None: as fast as frames can be read.
    is_camera : bool
        A camera that stops delivering frames has failed (``stop_reason`` says so); a file has ended.

    Attributes
    ----------
    frames_read : int
        Frames taken from the capture (grabbed or decoded).
    frames_yielded : int
    stop_reason : str or None
        Set when iteration ends: :data:`STOP_END`, :data:`STOP_MAX_FRAMES` or :data:`STOP_CAMERA_FAILED`.
    """

    def __init__(self, capture, *, every: int = 1, max_frames: int | None = None, pace_fps: float | None = None,
                 is_camera: bool = False):
        self.capture = capture
        self.every = _positive("every", every)
        self.max_frames = _positive("max_frames", max_frames, allow_none=True)
        if pace_fps is not None and (isinstance(pace_fps, bool) or not isinstance(pace_fps, (int, float))
                                     or not math.isfinite(pace_fps) or pace_fps <= 0):
            raise ValueError(f"pace_fps must be a positive finite number or None, got {pace_fps!r}")
        self.pace_fps = pace_fps
        self.is_camera = bool(is_camera)
        self.frames_read = 0
        self.frames_yielded = 0
        self.stop_reason: str | None = None

    def _ended(self) -> str:
        return STOP_CAMERA_FAILED if self.is_camera else STOP_END

    def __iter__(self) -> Iterator[Frame]:
        buffer = None
        start = None
        while True:
            if self.max_frames is not None and self.frames_yielded >= self.max_frames:
                self.stop_reason = STOP_MAX_FRAMES
                return
            t0 = time.perf_counter()
            # Skipped frames: grab only (the backend demuxes/decodes but skips color conversion).
            while self.frames_read % self.every:
                if not self.capture.grab():
                    self.stop_reason = self._ended()
                    return
                self.frames_read += 1
            index = self.frames_read
            if self.pace_fps is not None:
                if start is None:
                    start = t0 - index / self.pace_fps
                delay = start + index / self.pace_fps - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            ok = self.capture.grab()
            if ok:
                # Reuse the previous frame's memory (OpenCV reallocates only when the size changes).
                ok, image = self.capture.retrieve(buffer)
            if not ok or image is None or image.size == 0:
                self.stop_reason = self._ended()
                return
            self.frames_read += 1
            buffer = image
            read_ms = (time.perf_counter() - t0) * 1e3
            self.frames_yielded += 1
            yield Frame(index, image, read_ms)


# ---------------------------------------------------------------------- statistics
class RollingStats:
    """Rolling FPS and latency over the last ``window`` classified frames, plus run totals.

    ``add`` is called once per classified frame with its completion time (``time.perf_counter()``)
    and latency in ms.
    """

    def __init__(self, window: int = DEFAULT_WINDOW, start: float | None = None):
        self.window = _positive("window", window)
        self.start = time.perf_counter() if start is None else float(start)
        self._done = deque([self.start], maxlen=self.window + 1)
        self._latency = deque(maxlen=self.window)
        self.count = 0
        self.last = self.start
        # Latencies for the summary's percentiles: the last 100000 frames (about an hour at 30 fps),
        # so that a stream running for weeks keeps a bounded memory.
        self._all = deque(maxlen=100_000)

    def add(self, done: float, latency_ms: float) -> None:
        self._done.append(done)
        self._latency.append(latency_ms)
        self._all.append(latency_ms)
        self.count += 1
        self.last = done

    @property
    def fps(self) -> float:
        """Classified frames per second over the window (0.0 before the first frame)."""
        span = self._done[-1] - self._done[0]
        return (len(self._done) - 1) / span if span > 0 else 0.0

    @property
    def latency_ms(self) -> float:
        """Mean latency over the window (0.0 before the first frame)."""
        return sum(self._latency) / len(self._latency) if self._latency else 0.0

    def summary(self) -> dict[str, Any]:
        """Run totals: ``frames``, ``elapsed_s``, ``fps`` (whole run), and ``latency_ms`` (mean, p50,
        p90, max over the last 100000 frames)."""
        elapsed = self.last - self.start
        latencies = np.asarray(self._all, np.float64)
        if latencies.size:
            mean, p50, p90, worst = (float(latencies.mean()), *np.percentile(latencies, [50, 90]).tolist(),
                                     float(latencies.max()))
        else:
            mean = p50 = p90 = worst = 0.0
        return {
            "frames": self.count,
            "elapsed_s": round(elapsed, 3),
            "fps": round(self.count / elapsed, 2) if elapsed > 0 else 0.0,
            "latency_ms": {"mean": round(mean, 3), "p50": round(p50, 3), "p90": round(p90, 3),
                           "max": round(worst, 3)},
        }


# ---------------------------------------------------------------------- the loop
@dataclass(frozen=True, eq=False)
class FrameResult:
    """What one frame gave: a prediction, or the one-line reason it failed.

    Attributes
    ----------
    index : int
        The frame's 0-based position in the stream.
    read_ms : float
        Time spent reading it (see :class:`Frame`).
    prediction : fixres_edge.runtime.Prediction or None
        None when the frame failed.
    error : str or None
        One line, when the frame failed (``exception`` holds the exception itself).
    fps, latency_ms : float
        Rolling FPS and mean latency over the last classified frames, this one included.
    """

    index: int
    read_ms: float
    prediction: Any = None
    error: str | None = None
    exception: BaseException | None = None
    fps: float = 0.0
    latency_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.prediction is not None

    def to_dict(self) -> dict[str, Any]:
        """The JSON record: ``{"frame", "top": [{"index", "label", "prob"}, ...], "size", "latency_ms",
        "read_ms", "fps", "timings_ms"}``, or ``{"frame", "error"}`` for a failed frame."""
        if self.prediction is None:
            return {"frame": self.index, "error": self.error}
        p = self.prediction
        return {
            "frame": self.index,
            "top": [{"index": t.index, "label": t.label, "prob": round(t.prob, 6)} for t in p.top],
            "size": p.size,
            "latency_ms": round(p.timings_ms["total"], 3),
            "read_ms": round(self.read_ms, 3),
            "fps": round(self.fps, 2),
            "timings_ms": {k: round(v, 3) for k, v in p.timings_ms.items()},
        }


@dataclass(frozen=True)
class StreamSummary:
    """How a stream run went (:meth:`StreamRun.summary`).

    ``stopped`` is :data:`STOP_END`, :data:`STOP_MAX_FRAMES`, :data:`STOP_CAMERA_FAILED`,
    :data:`STOP_INTERRUPTED`, or None while the run has not ended. ``elapsed_s``, ``fps`` and
    ``latency_ms`` (mean, p50, p90, max) are those of :meth:`RollingStats.summary`.
    """

    source: str
    stopped: str | None
    frames_read: int
    frames_classified: int
    frames_failed: int
    every: int
    elapsed_s: float
    fps: float
    latency_ms: dict

    @property
    def failed(self) -> bool:
        """A frame could not be classified, or the camera stopped delivering frames."""
        return bool(self.frames_failed) or self.stopped == STOP_CAMERA_FAILED

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "stopped": self.stopped, "frames_read": self.frames_read,
                "frames_classified": self.frames_classified, "frames_failed": self.frames_failed,
                "every": self.every, "elapsed_s": self.elapsed_s, "fps": self.fps, "latency_ms": self.latency_ms}


class StreamRun:
    """Classify the frames of an open capture until it ends, ``max_frames``, or Ctrl-C.

    Iterating yields one :class:`FrameResult` per frame taken for classification (a failed frame
    too: the stream goes on); :meth:`summary` tells how the run went. Use it as a context manager:
    the capture is released on leaving the block, and a Ctrl-C inside the block (while a frame is
    read, classified, or handled by the caller) ends the run with ``stopped == "interrupted"``
    instead of propagating, so the summary can still be reported::

        with StreamRun(classifier, capture, name="camera 0") as run:
            for result in run:
                ...
        summary = run.summary()

    Parameters
    ----------
    classifier : fixres_edge.runtime.Classifier
    capture
        An opened ``cv2.VideoCapture`` (:func:`open_capture`), or anything :class:`FrameReader` reads.
    name : str
        The source's name, for the summary.
    every, max_frames, pace_fps, is_camera
        As :class:`FrameReader`.
    topk : int
        Classes per prediction.
    window : int
        Frames per rolling FPS / latency figure.
    """

    def __init__(self, classifier, capture, *, name: str, every: int = 1, max_frames: int | None = None,
                 topk: int = 5, pace_fps: float | None = None, is_camera: bool = False,
                 window: int = DEFAULT_WINDOW):
        self.classifier = classifier
        self.capture = capture
        self.name = name
        self.topk = _positive("topk", topk)
        self.reader = FrameReader(capture, every=every, max_frames=max_frames, pace_fps=pace_fps,
                                  is_camera=is_camera)
        self.stats = RollingStats(window)
        self.failed = 0
        self.stopped: str | None = None

    def __iter__(self) -> Iterator[FrameResult]:
        from fixres_edge.errors import ITEM_ERRORS, one_line

        try:
            for frame in self.reader:
                try:
                    prediction = self.classifier.predict(frame.image, topk=self.topk, input_format=frame.input_format)
                except ITEM_ERRORS as error:
                    self.failed += 1
                    yield FrameResult(frame.index, frame.read_ms, error=one_line(error), exception=error,
                                      fps=self.stats.fps, latency_ms=self.stats.latency_ms)
                    continue
                self.stats.add(time.perf_counter(), prediction.timings_ms["total"])
                yield FrameResult(frame.index, frame.read_ms, prediction, fps=self.stats.fps,
                                  latency_ms=self.stats.latency_ms)
            self.stopped = self.reader.stop_reason
        finally:
            self.capture.release()

    def __enter__(self) -> "StreamRun":
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        self.capture.release()
        if kind is not None and issubclass(kind, KeyboardInterrupt):
            self.stopped = STOP_INTERRUPTED
            return True
        return False

    def summary(self) -> StreamSummary:
        totals = self.stats.summary()
        return StreamSummary(source=self.name, stopped=self.stopped, frames_read=self.reader.frames_read,
                             frames_classified=self.stats.count, frames_failed=self.failed, every=self.reader.every,
                             elapsed_s=totals["elapsed_s"], fps=totals["fps"], latency_ms=totals["latency_ms"])
