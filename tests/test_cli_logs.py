"""``fixres-edge classify`` keeps OpenCV's and the codecs' own log lines off stderr: a bad file
gets exactly one line of ours; ``--debug`` lets every library speak. Run in a subprocess,
because libjpeg writes to file descriptor 2 directly."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("onnx")

from tiny_images import jpeg_bytes  # noqa: E402
from tiny_models import classes_model  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("logs")
    model = classes_model(d / "tiny.onnx", card={"name": "tiny", "train_size": 32, "size_stride": 8})
    good = jpeg_bytes(120, 160, seed=3)
    (d / "good.jpg").write_bytes(good)
    # Cut in the middle and closed with an end-of-image marker: libjpeg prints "Corrupt JPEG
    # data: premature end of data segment" while decoding it.
    (d / "bad.jpg").write_bytes(good[: len(good) // 2] + b"\xff\xd9")
    # A PNG whose data is wrecked: libpng and OpenCV's logger both complain.
    import cv2

    ok, png = cv2.imencode(".png", np.random.default_rng(4).integers(0, 256, (40, 40, 3), dtype=np.uint8))
    broken = bytearray(png.tobytes())
    at = broken.find(b"IDAT")
    broken[at + 4:at + 40] = bytes(36)
    (d / "broken.png").write_bytes(bytes(broken))
    return d, model


def classify(folder, model, *extra):
    env = dict(os.environ, PYTHONWARNINGS="error")
    env.pop("OPENCV_LOG_LEVEL", None)
    args = [sys.executable, "-m", "fixres_edge", *extra, "classify", str(folder / "bad.jpg"),
            str(folder / "broken.png"), str(folder / "good.jpg"), "--model", str(model), "--threads", "1"]
    return subprocess.run(args, capture_output=True, text=True, timeout=300, env=env, cwd=folder)


def test_one_error_line_per_bad_file_and_nothing_else(files):
    folder, model = files
    run = classify(folder, model)
    assert run.returncode == 1, run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 2, run.stderr
    assert "bad.jpg" in lines[0] and "corrupt JPEG" in lines[0]
    assert "broken.png" in lines[1]
    assert all(line.startswith("fixres-edge classify: error: ") for line in lines)
    rows = run.stdout.splitlines()
    assert rows[0].split()[0] == "path" and any("good.jpg" in row for row in rows[1:])
    assert not any("bad.jpg" in row or "broken.png" in row for row in rows)


def test_debug_keeps_the_libraries_verbose(files):
    folder, model = files
    run = classify(folder, model, "--debug")
    assert run.returncode == 1
    assert "Corrupt JPEG data" in run.stderr  # libjpeg's own line
    assert "Traceback" in run.stderr and "good.jpg" in run.stdout
