"""Streams: ``fixres-edge classify --video FILE / --camera N``, the pieces of ``fixres_edge.stream``
(which return results and never print), and the command's printing of them.

Videos are written in ``tmp_path`` with ``cv2.VideoWriter`` (MJPG in .avi, which every OpenCV
build can write and read back); cameras are faked, so no hardware is needed.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
cv2 = pytest.importorskip("cv2")

from tiny_models import classes_model  # noqa: E402

from fixres_edge.cli import main  # noqa: E402
from fixres_edge.commands._stream_output import exit_code, print_stream  # noqa: E402
from fixres_edge.stream import (  # noqa: E402
    STOP_CAMERA_FAILED, STOP_END, STOP_INTERRUPTED, STOP_MAX_FRAMES, FrameReader, RollingStats, StreamRun,
    StreamSource, StreamSummary, open_capture,
)

LABELS = [f"class {i}" for i in range(10)]
FRAMES = 24


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return classes_model(tmp_path_factory.mktemp("stream") / "tiny.onnx", card={
        "name": "tiny", "train_size": 32, "crop_pct": 0.875, "size_stride": 8, "labels": LABELS})


def write_video(path: Path, frames: int = FRAMES, size=(64, 48), fps: float = 10.0, seed: int = 0) -> Path:
    """A short MJPG video whose frames differ in color (so their predictions differ too)."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG video")
    rng = np.random.default_rng(seed)
    for _ in range(frames):
        color = rng.integers(0, 256, 3)
        frame = np.empty((h, w, 3), np.uint8)
        frame[:] = color
        frame[: h // 2, : w // 2] = 255 - color  # some structure, so MJPG keeps the colors apart
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    path = write_video(tmp_path_factory.mktemp("video") / "clip.avi")
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.grab():
        count += 1
    capture.release()
    if count != FRAMES:
        pytest.skip(f"this OpenCV build reads {count} of {FRAMES} frames back from MJPG")
    return path


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def split(records: list[dict]) -> tuple[list[dict], dict]:
    assert "summary" in records[-1] and all("summary" not in r for r in records[:-1])
    return records[:-1], records[-1]["summary"]


class FakeCapture:
    """A ``cv2.VideoCapture`` stand-in: ``frames`` then end (or a KeyboardInterrupt at ``interrupt_at``)."""

    def __init__(self, frames, interrupt_at: int | None = None):
        self.frames = list(frames)
        self.interrupt_at = interrupt_at
        self.position = 0
        self.retrieved = 0
        self.released = False

    def grab(self) -> bool:
        if self.interrupt_at is not None and self.position == self.interrupt_at:
            raise KeyboardInterrupt
        if self.position >= len(self.frames):
            return False
        self.position += 1
        return True

    def retrieve(self, image=None):
        self.retrieved += 1
        return True, self.frames[self.position - 1].copy()

    def release(self) -> None:
        self.released = True


def run_stream(classifier, capture, *, json_lines: bool = False, **kwargs) -> int:
    """The command's stream output over a fake capture: print every result, return the exit code."""
    return print_stream(StreamRun(classifier, capture, **kwargs), json_lines=json_lines)


def colored(n: int, shape=(24, 32, 3), seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.full(shape, rng.integers(0, 256), np.uint8) for _ in range(n)]


# ------------------------------------------------------------------------------------------------
# The CLI on a real video file
def test_video_json_lines_match_direct_predictions(tiny, video, capsys):
    code = main(["classify", "--video", str(video), "--model", str(tiny), "--json", "--max-frames", "5",
                 "--topk", "3", "--threads", "1"])
    out = capsys.readouterr()
    assert code == 0 and out.err == ""
    frames, summary = split(json_lines(out.out))
    assert [r["frame"] for r in frames] == [0, 1, 2, 3, 4]
    for r in frames:
        assert {"frame", "top", "size", "latency_ms", "read_ms", "fps", "timings_ms"} <= set(r)
        assert len(r["top"]) == 3 and r["size"] == 32 and r["latency_ms"] >= 0 and r["fps"] >= 0
        assert [t["label"] for t in r["top"]] == [LABELS[t["index"]] for t in r["top"]]
    assert summary["stopped"] == STOP_MAX_FRAMES and summary["frames_classified"] == 5
    assert summary["frames_read"] == 5 and summary["source"] == str(video)
    assert set(summary["latency_ms"]) == {"mean", "p50", "p90", "max"}
    # The same frames classified through the API give the same answers.
    from fixres_edge.runtime import Classifier

    clf = Classifier(tiny, threads=1)
    capture = cv2.VideoCapture(str(video))
    for r in frames:
        ok, frame = capture.read()
        assert ok
        expected = clf.predict(frame, topk=3)
        assert [t["index"] for t in r["top"]] == [t.index for t in expected.top]
        assert r["top"][0]["prob"] == pytest.approx(expected.top[0].prob, abs=1e-6)
    capture.release()


def test_every_k_and_end_of_file(tiny, video, capsys):
    code = main(["classify", "--video", str(video), "--model", str(tiny), "--json", "--every", "5"])
    frames, summary = split(json_lines(capsys.readouterr().out))
    assert code == 0
    assert [r["frame"] for r in frames] == [0, 5, 10, 15, 20]
    assert summary["stopped"] == STOP_END and summary["frames_read"] == FRAMES
    assert summary["frames_classified"] == 5 and summary["every"] == 5 and summary["frames_failed"] == 0


def test_every_with_max_frames(tiny, video, capsys):
    code = main(["classify", "--video", str(video), "--model", str(tiny), "--json", "--every", "3",
                 "--max-frames", "3"])
    frames, summary = split(json_lines(capsys.readouterr().out))
    assert code == 0 and [r["frame"] for r in frames] == [0, 3, 6]
    assert summary["stopped"] == STOP_MAX_FRAMES and summary["frames_read"] == 7


def test_human_output(tiny, video, capsys):
    code = main(["classify", "--video", str(video), "--model", str(tiny), "--max-frames", "4", "--every", "2"])
    out = capsys.readouterr()
    assert code == 0 and out.err == ""
    lines = out.out.splitlines()
    assert lines[0].split() == ["frame", "label", "prob", "size", "fps", "latency", "ms"]
    rows = lines[1:5]
    assert [int(row.split()[0]) for row in rows] == [0, 2, 4, 6]
    assert all(any(label in row for label in LABELS) for row in rows)
    assert len(lines) == 6 and lines[5].startswith(f"{video}: max frames; 4 of 7 frames classified")
    assert "fps" in lines[5] and "latency mean" in lines[5]


def test_human_output_names_the_variant_that_answered(tiny, video, tmp_path, capsys):
    from fixres_edge.policy import Scale, ScalePolicy

    (tmp_path / "other.onnx").write_bytes(tiny.read_bytes())
    scales = [Scale(24, 0.875), Scale(40, 0.875, str(tmp_path / "other.onnx"))]
    policy = ScalePolicy(model="tiny", scales=scales, mode="cascade", threshold=1.0).save(tmp_path / "p.json")
    code = main(["classify", "--video", str(video), "--model", str(tiny), "--policy", str(policy), "--max-frames", "2"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and lines[0].split() == ["frame", "label", "prob", "scale", "fps", "latency", "ms"]
    # The cascade never stops at 24 (threshold 1.0): every frame is answered by the file variant at 40.
    assert all("other 40" in row for row in lines[1:3])


def test_realtime_pacing_keeps_every_frame(tiny, tmp_path, capsys):
    # 200 fps: pacing must not drop or reorder frames (timing itself is not asserted).
    path = write_video(tmp_path / "fast.avi", frames=6, fps=200.0)
    code = main(["classify", "--video", str(path), "--model", str(tiny), "--json", "--realtime"])
    frames, summary = split(json_lines(capsys.readouterr().out))
    assert code == 0 and [r["frame"] for r in frames] == list(range(6)) and summary["stopped"] == STOP_END


# ------------------------------------------------------------------------------------------------
# One-line errors
@pytest.mark.aarch64
def test_missing_camera_is_one_line(tiny, capfd):
    code = main(["classify", "--camera", "99", "--model", str(tiny)])
    captured = capfd.readouterr()
    assert code == 1 and captured.out == ""
    # Exactly one line, also at the file-descriptor level (OpenCV's own warnings are silenced).
    assert captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith("fixres-edge classify: error: cannot open camera 99")
    assert "Traceback" not in captured.err


@pytest.mark.parametrize("name, content, message", [
    ("absent.avi", None, "video file not found"),
    ("notes.avi", b"not a video at all\n" * 10, "cannot open video"),
    ("empty.avi", b"", "cannot open video"),
])
def test_bad_video_is_one_line(tiny, tmp_path, capfd, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    code = main(["classify", "--video", str(path), "--model", str(tiny)])
    err = capfd.readouterr().err
    assert code == 1 and err.count("\n") == 1 and message in err and str(path) in err


@pytest.mark.aarch64
@pytest.mark.parametrize("args, message", [
    (["photo.jpg", "--video", "clip.avi"], "give image paths or --camera/--video, not both"),
    (["--every", "2"], "--every applies to streams only"),
    (["--max-frames", "2"], "--max-frames applies to streams only"),
    (["--realtime"], "--realtime applies to --video only"),
    (["--camera", "0", "--realtime"], "--realtime applies to --video only"),
    (["--camera", "-1"], "--camera must be a camera index >= 0, got -1"),
    (["--video", "clip.avi", "--every", "0"], "--every must be >= 1, got 0"),
    (["--video", "clip.avi", "--max-frames", "-3"], "--max-frames must be >= 1, got -3"),
])
def test_flag_errors(tiny, capsys, args, message):
    code = main(["classify", *args, "--model", str(tiny)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and message in err, err


@pytest.mark.aarch64
def test_camera_and_video_are_exclusive(tiny, capsys):
    with pytest.raises(SystemExit):
        main(["classify", "--camera", "0", "--video", "x.avi", "--model", str(tiny)])
    assert "not allowed with" in capsys.readouterr().err


@pytest.mark.aarch64
def test_open_capture_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="video file not found"):
        open_capture(StreamSource.video(tmp_path / "nope.avi"))
    with pytest.raises(ValueError, match="is a directory"):
        open_capture(StreamSource.video(tmp_path))
    with pytest.raises(TypeError, match="StreamSource"):
        open_capture(0)
    with pytest.raises(ValueError, match="camera index must be an integer >= 0"):
        StreamSource.camera(-2)
    with pytest.raises(ValueError, match="camera index must be an integer >= 0"):
        StreamSource.camera("0")
    with pytest.raises(TypeError, match="video must be a file path or a stream URL"):
        StreamSource.video(3)
    with pytest.raises(ValueError, match="unknown stream kind 'usb'"):
        StreamSource("usb", 0)
    assert StreamSource.video("rtsp://host/stream").is_url and StreamSource.camera(2).name == "camera 2"


# ------------------------------------------------------------------------------------------------
# Reader, statistics and the loop with fake captures
@pytest.mark.aarch64
def test_frame_reader_every_and_max():
    capture = FakeCapture(colored(10))
    reader = FrameReader(capture, every=3)
    assert [f.index for f in reader] == [0, 3, 6, 9]
    assert reader.stop_reason == STOP_END and reader.frames_read == 10
    assert capture.retrieved == 4  # skipped frames are grabbed, never decoded
    reader = FrameReader(FakeCapture(colored(10)), every=2, max_frames=3)
    assert [f.index for f in reader] == [0, 2, 4] and reader.stop_reason == STOP_MAX_FRAMES
    reader = FrameReader(FakeCapture(colored(2)), is_camera=True)
    assert len(list(reader)) == 2 and reader.stop_reason == STOP_CAMERA_FAILED


@pytest.mark.aarch64
@pytest.mark.parametrize("kwargs, message", [
    ({"every": 0}, "every must be a positive integer"),
    ({"every": 1.5}, "every must be a positive integer"),
    ({"max_frames": 0}, "max_frames must be a positive integer or None"),
    ({"pace_fps": float("nan")}, "pace_fps must be a positive finite number"),
    ({"pace_fps": -1.0}, "pace_fps must be a positive finite number"),
])
def test_frame_reader_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FrameReader(FakeCapture([]), **kwargs)


@pytest.mark.aarch64
def test_rolling_stats_window():
    stats = RollingStats(window=3, start=100.0)
    assert stats.fps == 0.0 and stats.latency_ms == 0.0
    for i, latency in enumerate([10.0, 20.0, 30.0, 40.0, 50.0], start=1):
        stats.add(100.0 + 0.5 * i, latency)  # one frame every 0.5 s
    assert stats.fps == pytest.approx(2.0)
    assert stats.latency_ms == pytest.approx(40.0)  # mean of the last three
    summary = stats.summary()
    assert summary["frames"] == 5 and summary["elapsed_s"] == pytest.approx(2.5)
    assert summary["fps"] == pytest.approx(2.0) and summary["latency_ms"]["max"] == 50.0
    assert summary["latency_ms"]["p50"] == 30.0 and summary["latency_ms"]["mean"] == 30.0
    with pytest.raises(ValueError, match="window must be a positive integer"):
        RollingStats(window=0)


@pytest.fixture(scope="module")
def tiny_classifier(tiny):
    from fixres_edge.runtime import Classifier

    return Classifier(tiny, threads=1)


@pytest.mark.aarch64
def test_ctrl_c_stops_cleanly(tiny_classifier, capsys):
    capture = FakeCapture(colored(10), interrupt_at=4)
    code = run_stream(tiny_classifier, capture, name="camera 0", json_lines=True, is_camera=True)
    out = capsys.readouterr()
    frames, summary = split(json_lines(out.out))
    assert code == 130 and capture.released and "Traceback" not in out.err
    assert [r["frame"] for r in frames] == [0, 1, 2, 3]
    assert summary["stopped"] == STOP_INTERRUPTED and summary["frames_classified"] == 4


@pytest.mark.aarch64
def test_camera_that_stops_is_an_error(tiny_classifier, capsys):
    capture = FakeCapture(colored(3))
    code = run_stream(tiny_classifier, capture, name="camera 1", is_camera=True)
    out = capsys.readouterr()
    assert code == 1 and capture.released
    assert out.err.strip() == "fixres-edge classify: error: camera 1 stopped after 3 frames"
    assert "camera stopped delivering frames; 3 of 3 frames classified" in out.out


@pytest.mark.aarch64
def test_gray_bgra_and_bad_frames(tiny_classifier, capsys):
    rng = np.random.default_rng(7)
    bgr = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    gray = bgr[:, :, 1].copy()
    bgra = np.dstack([bgr, np.full((24, 32), 255, np.uint8)])
    bad = np.zeros((24, 32, 2), np.uint8)
    capture = FakeCapture([gray, bgra, bad, bgr])
    code = run_stream(tiny_classifier, capture, name="cam", json_lines=True)
    frames, summary = split(json_lines(capsys.readouterr().out))
    assert code == 1 and summary["frames_failed"] == 1 and summary["frames_classified"] == 3
    assert [r["frame"] for r in frames] == [0, 1, 2, 3]
    assert set(frames[2]) == {"frame", "error"} and "shape (24, 32, 2)" in frames[2]["error"]
    gray_top = tiny_classifier.predict(gray, input_format="GRAY").top[0].index
    bgr_top = tiny_classifier.predict(bgr).top[0].index
    assert frames[0]["top"][0]["index"] == gray_top
    assert frames[1]["top"][0]["index"] == frames[3]["top"][0]["index"] == bgr_top  # alpha dropped


# ------------------------------------------------------------------------------------------------
# A real Ctrl-C: SIGINT to the console script while it plays a video in real time
@pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name == "nt", reason="POSIX signals")
def test_sigint_to_the_process(tiny, tmp_path):
    script = Path(sys.executable).with_name("fixres-edge")
    if not script.exists():
        pytest.skip("console script not installed (pip install -e .)")
    path = write_video(tmp_path / "long.avi", frames=60, fps=5.0)  # 12 s when paced
    env = dict(os.environ, PYTHONWARNINGS="error")
    # A shell's background job starts with SIGINT ignored, and Python then installs no Ctrl-C
    # handler: restore the default so the test does not depend on how the suite was started.
    process = subprocess.Popen([str(script), "classify", "--video", str(path), "--model", str(tiny), "--json",
                                "--realtime", "--threads", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        first = process.stdout.readline()  # the first frame is classified: the loop is running
        assert json.loads(first)["frame"] == 0
        process.send_signal(signal.SIGINT)
        rest, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, err
    frames, summary = split(json_lines(first + rest))
    assert summary["stopped"] == STOP_INTERRUPTED and summary["frames_classified"] == len(frames) < 60
    assert "Traceback" not in err


# ------------------------------------------------------------------------------------------------
# The library part returns results and prints nothing
@pytest.mark.aarch64
def test_stream_run_yields_results_and_a_summary_without_printing(tiny_classifier, capfd):
    rng = np.random.default_rng(3)
    good = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    bad = np.zeros((24, 32, 2), np.uint8)
    capture = FakeCapture([good, bad, good])
    with StreamRun(tiny_classifier, capture, name="cam", topk=2, window=2) as run:
        results = list(run)
    assert capfd.readouterr() == ("", "")
    assert capture.released and [r.index for r in results] == [0, 1, 2]
    assert [r.ok for r in results] == [True, False, True]
    assert "shape (24, 32, 2)" in results[1].error and isinstance(results[1].exception, ValueError)
    assert results[1].to_dict() == {"frame": 1, "error": results[1].error}
    record = results[2].to_dict()
    assert [t["index"] for t in record["top"]] == [t.index for t in tiny_classifier.predict(good, topk=2).top]
    assert record["latency_ms"] == round(results[2].prediction.timings_ms["total"], 3)
    summary = run.summary()
    assert isinstance(summary, StreamSummary) and summary.failed
    assert (summary.stopped, summary.frames_read, summary.frames_classified, summary.frames_failed) == (
        STOP_END, 3, 2, 1)
    assert list(summary.to_dict()) == ["source", "stopped", "frames_read", "frames_classified", "frames_failed",
                                       "every", "elapsed_s", "fps", "latency_ms"]
    assert exit_code(summary) == 1


@pytest.mark.aarch64
def test_ctrl_c_while_the_caller_handles_a_frame(tiny_classifier):
    capture = FakeCapture(colored(6))
    seen = []
    with StreamRun(tiny_classifier, capture, name="camera 0", is_camera=True) as run:
        for result in run:
            seen.append(result.index)
            if result.index == 2:
                raise KeyboardInterrupt  # Ctrl-C outside the library's own code
    summary = run.summary()
    assert seen == [0, 1, 2] and capture.released
    assert summary.stopped == STOP_INTERRUPTED and summary.frames_classified == 3 and exit_code(summary) == 130


@pytest.mark.aarch64
def test_other_exceptions_propagate_and_release_the_capture(tiny_classifier):
    capture = FakeCapture(colored(4))
    with pytest.raises(LookupError):
        with StreamRun(tiny_classifier, capture, name="cam") as run:
            for _ in run:
                raise LookupError("a bug in the caller")
    assert capture.released and run.summary().stopped is None


@pytest.mark.aarch64
def test_exit_codes():
    def summary(stopped, failed=0):
        return StreamSummary("cam", stopped, 5, 5 - failed, failed, 1, 1.0, 5.0, {})

    assert exit_code(summary(STOP_END)) == exit_code(summary(STOP_MAX_FRAMES)) == 0
    assert exit_code(summary(STOP_END, failed=1)) == 1
    assert exit_code(summary(STOP_CAMERA_FAILED)) == 1
    assert exit_code(summary(STOP_INTERRUPTED, failed=1)) == 130
