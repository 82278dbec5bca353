"""Broken and odd image files, through the API (load_image, Preprocessor.load, Classifier) and the CLI.

Broken files get one error naming the file and the reason; legal but odd files get a result; a
batch answers every file, keeps going after failures, and exits 1 when any failed.
"""
from __future__ import annotations

import builtins
import errno
import io
import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("onnx")

from tiny_models import classes_model  # noqa: E402

import fixres_edge.decode as decode  # noqa: E402
from fixres_edge.cli import main  # noqa: E402
from fixres_edge.commands.classify import expand_paths  # noqa: E402
from fixres_edge.decode import image_size, load_image  # noqa: E402
from fixres_edge.preprocess import Preprocessor  # noqa: E402

LABELS = [f"kind {i}" for i in range(10)]


def base_image(h: int = 60, w: int = 80, seed: int = 0) -> np.ndarray:
    """A smooth BGR image (JPEG-friendly, so lossy round trips stay close)."""
    coarse = np.random.default_rng(seed).integers(0, 256, (3, 4, 3)).astype(np.uint8)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)


def encode(ext: str, image: np.ndarray, params=()) -> bytes:
    ok, data = cv2.imencode(ext, image, list(params))
    assert ok
    return data.tobytes()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def bomb_png(width: int = 60000, height: int = 60000) -> bytes:
    """A valid PNG signature and IHDR claiming width x height RGB, with a few bytes of image data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + png_chunk(b"IEND", b""))


def pillow_jpeg(image_bgr: np.ndarray, mode: str, **save) -> bytes | None:
    try:
        from PIL import Image
    except ImportError:
        return None
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image_bgr[:, :, ::-1])).convert(mode).save(buffer, "JPEG", **save)
    return buffer.getvalue()


# name -> (bytes, substring the error must contain)
def broken_files() -> dict[str, tuple[bytes, str]]:
    jpeg = encode(".jpg", base_image())
    png = encode(".png", base_image())
    rng = np.random.default_rng(3)
    return {
        "empty.jpg": (b"", "empty file"),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "truncated JPEG"),
        "header_only.jpg": (jpeg[:150], "truncated JPEG header"),
        "random.jpg": (rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(), "not a decodable image"),
        "text.jpg": (b"just some notes, not a photo\n" * 20, "not a decodable image"),
        "text.png": (b"hello", "not a decodable image"),
        "truncated.png": (png[: len(png) // 3], "PNG"),
        "bomb.png": (bomb_png(), "exceeds max_pixels"),
    }


# name -> (bytes, expected decoded BGR image or None, tolerance in levels: the max difference for
# lossless files (0: exact), the mean difference for JPEGs (which also must equal OpenCV's own decode))
def odd_files() -> dict[str, tuple[bytes, np.ndarray | None, int]]:
    image = base_image()
    gray = image[:, :, 1].copy()
    files = {
        "one.png": (encode(".png", image[:1, :1]), image[:1, :1], 0),
        "one.jpg": (encode(".jpg", image[:1, :1], [cv2.IMWRITE_JPEG_QUALITY, 100]), image[:1, :1], 2),
        "gray.png": (encode(".png", gray), np.dstack([gray] * 3), 0),
        "gray.jpg": (encode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, 95]), np.dstack([gray] * 3), 2),
        "rgba.png": (encode(".png", np.dstack([image, np.full(gray.shape, 7, np.uint8)])), image, 0),
        "rgb16.png": (encode(".png", image.astype(np.uint16) * 257), image, 0),
        "gray16.png": (encode(".png", gray.astype(np.uint16) * 257), np.dstack([gray] * 3), 0),
        "progressive.jpg": (encode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1, cv2.IMWRITE_JPEG_QUALITY, 95]),
                            image, 2),
        "wide.png": (encode(".png", np.full((10, 10000, 3), (10, 200, 90), np.uint8)), None, 0),
        "tall.jpg": (encode(".jpg", np.full((10000, 10, 3), (200, 30, 60), np.uint8)), None, 0),
        "photo.bmp": (encode(".bmp", image), image, 0),
        "photo.webp": (encode(".webp", image, [cv2.IMWRITE_WEBP_QUALITY, 101]), image, 0),
    }
    cmyk = pillow_jpeg(image, "CMYK", quality=95)
    if cmyk is not None:
        files["cmyk.jpg"] = (cmyk, image, 2)
        files["cmyk_progressive.jpg"] = (pillow_jpeg(image, "CMYK", quality=95, progressive=True), image, 2)
    return files


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return classes_model(tmp_path_factory.mktemp("bad_files") / "tiny.onnx", card={
        "name": "tiny", "train_size": 32, "crop_pct": 0.875, "size_stride": 8, "labels": LABELS})


@pytest.fixture(scope="module")
def classifier(tiny):
    from fixres_edge.runtime import Classifier

    return Classifier(tiny, threads=1)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("files")
    for name, (data, _) in broken_files().items():
        (folder / name).write_bytes(data)
    for name, (data, _, _) in odd_files().items():
        (folder / name).write_bytes(data)
    return folder


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------------
# API: broken files
@pytest.mark.aarch64
@pytest.mark.parametrize("name", sorted(broken_files()))
def test_broken_file_errors_name_file_and_reason(files, name):
    reason = broken_files()[name][1]
    path = files / name
    for call in (lambda: load_image(path), lambda: load_image(path, min_short_side=32),
                 lambda: Preprocessor(size=16, threads=1).load(path)):
        with pytest.raises(ValueError) as info:
            call()
        message = str(info.value)
        assert "\n" not in message and str(path) in message and reason in message, message
    # From memory the message names the data instead of a file.
    with pytest.raises(ValueError, match=r"image data \(\d+ bytes\)"):
        load_image(path.read_bytes())
    with open(path, "rb") as f, pytest.raises(ValueError, match=reason):
        load_image(f)


@pytest.mark.aarch64
def test_bomb_is_refused_from_its_header(files, monkeypatch):
    path = files / "bomb.png"
    assert path.stat().st_size < 200
    assert image_size(path) == (60000, 60000)  # the header is read, nothing is decoded

    def no_decoding(*args, **kwargs):
        raise AssertionError("the decoder must not run for an image above max_pixels")

    monkeypatch.setattr(cv2, "imdecode", no_decoding)
    monkeypatch.setattr(cv2, "imread", no_decoding)
    with pytest.raises(ValueError, match=r"PNG image of 60000x60000 pixels \(3600\.0 megapixels\) exceeds max_pixels"):
        load_image(path)
    # A caller who raises the limit gets past the check and only then reaches the decoder.
    with pytest.raises(AssertionError, match="decoder must not run"):
        load_image(path, max_pixels=None)


@pytest.mark.aarch64
def test_broken_files_through_classifier(classifier, files):
    for name, (_, reason) in broken_files().items():
        with pytest.raises(ValueError, match=reason):
            classifier.predict(files / name)


# ------------------------------------------------------------------------------------------------
# API: legal but odd files
@pytest.mark.aarch64
@pytest.mark.parametrize("name", sorted(odd_files()))
def test_odd_files_decode(files, name):
    data, expected, tolerance = odd_files()[name]
    image = load_image(files / name)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and image.flags.c_contiguous
    if expected is not None:
        assert image.shape == expected.shape
        diff = np.abs(image.astype(np.int16) - expected.astype(np.int16))
        if name.endswith(".jpg"):
            reference = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            np.testing.assert_array_equal(image, reference)
            assert float(diff.mean()) <= tolerance, (name, float(diff.mean()))
        else:
            assert int(diff.max()) <= tolerance, (name, int(diff.max()))
    out = Preprocessor(size=16, threads=1).load(files / name)
    assert out.shape == (1, 3, 16, 16) and np.isfinite(out).all()


@pytest.mark.aarch64
def test_extreme_aspect_sizes(files):
    assert load_image(files / "wide.png").shape == (10, 10000, 3)
    assert load_image(files / "tall.jpg", min_short_side=64).shape == (10000, 10, 3)  # no reduction below 10
    # A flat color stays that color through the 1000x upscale of the short side.
    out = Preprocessor(size=16, threads=1, dtype="uint8", layout="NHWC").load(files / "wide.png")
    assert (out[0] == np.array([90, 200, 10], np.uint8)).all()  # RGB of BGR (10, 200, 90)


def test_predict_batch_answers_every_file(classifier, files):
    names = sorted(list(broken_files()) + list(odd_files()))
    results = classifier.predict_batch([files / n for n in names], topk=2)
    assert [Path(r.path).name for r in results] == names
    for name, result in zip(names, results):
        if name in broken_files():
            assert not result.ok and broken_files()[name][1] in result.error and "\n" not in result.error
        else:
            assert result.ok, (name, getattr(result, "error", None))
            alone = classifier.predict(files / name, topk=2)
            assert [t.index for t in result.top] == [t.index for t in alone.top]
            np.testing.assert_array_equal(result.probs, alone.probs)


# ------------------------------------------------------------------------------------------------
# CLI: a directory of everything
def unreadable_extras(folder: Path) -> dict[str, str]:
    """Add entries that cannot be read; name -> expected reason. Skips what this system cannot make."""
    extras = {}
    try:
        os.symlink(folder / "gone-forever.jpg", folder / "zz_dangling.jpg")
        extras["zz_dangling.jpg"] = "broken symbolic link"
    except (OSError, NotImplementedError):
        pass
    locked = folder / "zz_locked.jpg"
    locked.write_bytes(encode(".jpg", base_image()))
    locked.chmod(0)
    if not os.access(locked, os.R_OK):  # root (as in CI containers) reads it anyway
        extras["zz_locked.jpg"] = "permission denied"
    (folder / "zz_folder.jpg").mkdir()  # a directory named like an image is not a file: not listed
    return extras


@pytest.fixture()
def everything(files, tmp_path) -> tuple[Path, dict[str, str]]:
    folder = tmp_path / "everything"
    folder.mkdir()
    for path in files.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "readme.txt").write_text("not an image name: skipped")
    extras = unreadable_extras(folder)
    yield folder, extras
    (folder / "zz_locked.jpg").chmod(0o600)


def test_cli_directory_json(tiny, classifier, everything, capfd):
    folder, extras = everything
    code = main(["classify", str(folder), "--model", str(tiny), "--json", "--topk", "2", "--threads", "1"])
    out = capfd.readouterr()
    assert code == 1 and out.err == "", out.err  # errors are records; nothing leaks on stderr
    records = json_lines(out.out)
    expected_names = sorted(set(broken_files()) | set(odd_files()) | {"zz_locked.jpg"} | set(extras))
    assert [Path(r["path"]).name for r in records] == expected_names  # every file answered, in order
    by_name = {Path(r["path"]).name: r for r in records}
    for name, (_, reason) in broken_files().items():
        assert set(by_name[name]) == {"path", "error"} and reason in by_name[name]["error"]
    for name, reason in extras.items():
        assert set(by_name[name]) == {"path", "error"} and reason in by_name[name]["error"], by_name[name]
    for record in records:
        if "error" in record:
            assert "\n" not in record["error"] and record["error"]
    # Every good file's result is present and equals the API's answer.
    good = sorted(set(odd_files()) | ({"zz_locked.jpg"} - set(extras)))
    for name in good:
        record = by_name[name]
        assert "top" in record, record
        expected = classifier.predict(folder / name, topk=2)
        assert [t["index"] for t in record["top"]] == [t.index for t in expected.top]
    assert len(good) + len(broken_files()) + len(extras) == len(records)


def test_cli_directory_human(tiny, everything, capfd):
    folder, extras = everything
    code = main(["classify", str(folder), "--model", str(tiny), "--topk", "1", "--threads", "1"])
    out = capfd.readouterr()
    assert code == 1 and "Traceback" not in out.err
    err_lines = out.err.splitlines()
    failed = sorted(set(broken_files()) | set(extras))
    # One line per failed file (at the file-descriptor level: no OpenCV or libjpeg chatter), naming it.
    assert len(err_lines) == len(failed), out.err
    for line, name in zip(err_lines, failed):
        assert line.startswith("fixres-edge classify: error: ") and str(folder / name) in line
    rows = out.out.splitlines()[1:]
    good = sorted(set(odd_files()) | ({"zz_locked.jpg"} - set(extras)))
    assert [Path(row.split()[0]).name for row in rows] == good


def test_cli_debug_shows_tracebacks(tiny, files, capsys):
    code = main(["classify", str(files / "empty.jpg"), "--model", str(tiny), "--debug"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" in err and "empty file" in err


@pytest.mark.aarch64
def test_permission_denied_is_one_line_even_as_root(tiny, files, capsys, monkeypatch):
    # chmod does not stop root: simulate the kernel's answer at the decoder's open() instead.
    locked = str(files / "photo.bmp")

    def guarded_open(path, *args, **kwargs):
        if os.fspath(path) == locked:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), locked)
        return builtins.open(path, *args, **kwargs)

    monkeypatch.setattr(decode, "open", guarded_open, raising=False)
    code = main(["classify", locked, str(files / "one.png"), "--model", str(tiny), "--json"])
    first, second = json_lines(capsys.readouterr().out)
    assert code == 1
    assert first == {"path": locked, "error": f"{locked}: permission denied"}
    assert "top" in second


@pytest.mark.aarch64
def test_directory_listing_skips_special_entries(tmp_path):
    folder = tmp_path / "listing"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"x")
    (folder / "b.gif").write_bytes(b"x")
    (folder / "dir.jpg").mkdir()
    names = {Path(p).name: error for p, error in expand_paths([str(folder)])}
    if hasattr(os, "mkfifo"):
        os.mkfifo(folder / "pipe.jpg")  # opening it would block: never listed
        names = {Path(p).name: error for p, error in expand_paths([str(folder)])}
    assert names == {"a.jpg": None, "b.gif": None}
    try:
        os.symlink(folder / "missing.png", folder / "link.png")
    except (OSError, NotImplementedError):
        return
    listed = dict((Path(p).name, error) for p, error in expand_paths([str(folder)]))
    assert "broken symbolic link" in listed["link.png"]
    (_, error), = expand_paths([str(folder / "link.png")])
    assert error.endswith(f"broken symbolic link to {folder / 'missing.png'}")
