"""Tests for fixres_edge.decode: header parsing, JPEG reduced decode, EXIF orientation, odd formats, bad files.

Every image is generated here (OpenCV, numpy, Pillow); nothing is read from the shared data folder.
"""
from __future__ import annotations

import io
import math
import os
import struct
import subprocess
import sys
import time
import tracemalloc
import zlib

import cv2
import numpy as np
import pytest

from fixres_edge import decode
from fixres_edge.decode import DEFAULT_MAX_PIXELS, DecodeInfo, image_size, load_image, reduction_factor

Image = pytest.importorskip("PIL.Image")
ImageOps = pytest.importorskip("PIL.ImageOps")


# ---------------------------------------------------------------------------------------------
# helpers


def smooth_image(h, w, seed=0):
    """(h, w, 3) uint8 BGR with low-frequency content (JPEG-friendly, so decoders agree closely)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, h // 16), max(2, w // 16), 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def marked_image(h, w):
    """Asymmetric test card: each quadrant its own color, so any flip or rotation is visible."""
    img = np.empty((h, w, 3), np.uint8)
    img[: h // 2, : w // 2] = (40, 40, 220)  # top-left red
    img[: h // 2, w // 2:] = (40, 200, 40)  # top-right green
    img[h // 2:, : w // 2] = (220, 40, 40)  # bottom-left blue
    img[h // 2:, w // 2:] = (200, 200, 200)  # bottom-right light gray
    return img


def jpeg_bytes(img, quality=95):
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def encode(img, ext):
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


def pil_bytes(img_bgr, fmt, **kwargs):
    buf = io.BytesIO()
    if img_bgr.ndim == 3:
        img_bgr = np.ascontiguousarray(img_bgr[..., ::-1])
    Image.fromarray(img_bgr).save(buf, fmt, **kwargs)
    return buf.getvalue()


def exif_app1(orientation, byteorder="MM"):
    """A JPEG APP1 segment holding a minimal Exif block with one Orientation (0x0112) entry."""
    e = ">" if byteorder == "MM" else "<"
    tiff = (byteorder.encode() + struct.pack(e + "HI", 42, 8) + struct.pack(e + "H", 1)
            + struct.pack(e + "HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(e + "I", 0))
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def with_exif(jpeg, orientation, byteorder="MM"):
    return jpeg[:2] + exif_app1(orientation, byteorder) + jpeg[2:]


def spec_orient(img, orientation):
    """EXIF 2.3 orientation applied with plain numpy indexing (independent of the module's cv2 calls)."""
    return {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
        8: lambda a: np.rot90(a, 1),
    }[orientation](img)


def pil_upright_bgr(data):
    """Pillow's decode with ImageOps.exif_transpose: what a photo viewer shows."""
    with Image.open(io.BytesIO(data)) as im:
        rgb = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    return np.ascontiguousarray(rgb[..., ::-1])


def png_chunk(ctype, payload):
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", zlib.crc32(ctype + payload))


def png_header_only(width, height):
    """A PNG whose IHDR (with a valid CRC) claims width x height, followed by IEND and no pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IEND", b"")


def mean_abs_diff(a, b):
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def one_line_error(excinfo):
    message = str(excinfo.value)
    assert "\n" not in message and message.strip() == message and message
    return message


# ---------------------------------------------------------------------------------------------
# reduction rule


@pytest.mark.aarch64
@pytest.mark.parametrize("h, w, s, expected", [
    (3040, 4056, 256, 8),   # Pi HQ camera photo to a 224 crop: 380 >= 256
    (3040, 4056, 381, 4),   # ceil(3040 / 8) = 380 < 381
    (375, 500, 256, 1),     # typical ImageNet photo: ceil(375 / 2) = 188 < 256, must fall back to 1
    (255, 4000, 256, 1),    # short side already below the need: never upsample, decode full
    (512, 700, 256, 2),     # exact boundary for d = 2
    (511, 700, 256, 2),     # ceil(511 / 2) = 256: libjpeg rounds up, so an odd size still qualifies
    (510, 700, 256, 1),     # ceil(510 / 2) = 255 < 256
    (2048, 2048, 256, 8),   # exact boundary for d = 8
    (2041, 3000, 256, 8),   # ceil(2041 / 8) = 256
    (2040, 3000, 256, 4),   # ceil(2040 / 8) = 255
    (1024, 1024, 256, 4),   # exact boundary for d = 4
    (1, 1, 1, 8),           # 1 pixel stays 1 pixel at any d
    (10, 10000, 2, 8),      # extreme aspect: the short side decides
    (10000, 10, 3, 4),      # ceil(10 / 8) = 2 < 3, ceil(10 / 4) = 3
    (1080, 1920, 256, 4),
])
def test_reduction_factor_table(h, w, s, expected):
    assert reduction_factor(h, w, s) == expected
    assert reduction_factor(w, h, s) == expected  # rotation does not change the short side


@pytest.mark.aarch64
def test_reduction_factor_matches_definition():
    rng = np.random.default_rng(3)
    for _ in range(500):
        h, w = (int(v) for v in rng.integers(1, 5000, 2))
        s = int(rng.integers(1, 1200))
        d = reduction_factor(h, w, s)
        ok = [f for f in (1, 2, 4, 8) if math.ceil(min(h, w) / f) >= s]
        assert d == (max(ok) if ok else 1)


@pytest.mark.aarch64
@pytest.mark.parametrize("args, error", [
    ((0, 10, 5), ValueError), ((10, -1, 5), ValueError), ((10, 10, 0), ValueError),
    ((10, 10, 2.5), TypeError), ((10, 10, True), TypeError), (("10", 10, 5), TypeError),
])
def test_reduction_factor_rejects_bad_values(args, error):
    with pytest.raises(error) as excinfo:
        reduction_factor(*args)
    one_line_error(excinfo)


def test_reduction_factor_accepts_numpy_ints():
    assert reduction_factor(np.int64(3040), np.int32(4056), np.uint16(256)) == 8


# ---------------------------------------------------------------------------------------------
# JPEG reduced decode


@pytest.mark.parametrize("h, w", [(256, 320), (257, 333), (75, 101), (9, 15)])
@pytest.mark.parametrize("d", [2, 4, 8])
def test_reduced_decode_sizes_are_rounded_up(h, w, d):
    data = jpeg_bytes(smooth_image(h, w, seed=h + w))
    s = math.ceil(min(h, w) / d)
    image, info = load_image(data, min_short_side=s, return_info=True)
    assert info.reduction == d
    assert image.shape == (math.ceil(h / d), math.ceil(w / d), 3)
    assert image.dtype == np.uint8 and image.flags.c_contiguous
    assert info.size == (h, w)


@pytest.mark.parametrize("d", [2, 4, 8])
def test_reduced_decode_close_to_full_decode_plus_area(d):
    h, w = 256, 320  # multiples of 8 * d: reduced and area-resized grids coincide
    data = jpeg_bytes(smooth_image(h, w, seed=1), quality=95)
    full = load_image(data)
    reduced = load_image(data, min_short_side=h // d)
    reference = cv2.resize(full, (w // d, h // d), interpolation=cv2.INTER_AREA)
    assert reduced.shape == reference.shape
    assert mean_abs_diff(reduced, reference) < 1.5
    assert np.abs(reduced.astype(int) - reference).max() <= 12


def test_no_min_short_side_decodes_full_size():
    data = jpeg_bytes(smooth_image(120, 160))
    image, info = load_image(data, return_info=True)
    assert image.shape == (120, 160, 3) and info.reduction == 1
    np.testing.assert_array_equal(image, cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))


def test_min_short_side_above_image_decodes_full_size():
    data = jpeg_bytes(smooth_image(100, 140))
    image, info = load_image(data, min_short_side=500, return_info=True)
    assert info.reduction == 1 and image.shape == (100, 140, 3)


def test_non_jpeg_ignores_min_short_side():
    img = smooth_image(64, 80)
    image, info = load_image(encode(img, ".png"), min_short_side=8, return_info=True)
    assert info.reduction == 1 and info.format == "PNG"
    np.testing.assert_array_equal(image, img)


# ---------------------------------------------------------------------------------------------
# sources


@pytest.mark.aarch64
def test_all_source_kinds_give_identical_images(tmp_path):
    data = jpeg_bytes(smooth_image(24, 40))
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    expected = load_image(data)
    with open(path, "rb") as f:
        from_file = load_image(f)
    sources = [str(path), path, bytearray(data), memoryview(data), io.BytesIO(data),
               np.fromfile(path, dtype=np.uint8), np.frombuffer(data, np.uint8)]
    for source in sources:
        np.testing.assert_array_equal(load_image(source), expected)
    np.testing.assert_array_equal(from_file, expected)
    # the reduced path too
    np.testing.assert_array_equal(load_image(path, min_short_side=6), load_image(io.BytesIO(data), min_short_side=6))


@pytest.mark.aarch64
def test_non_contiguous_memoryview_source():
    data = np.frombuffer(encode(smooth_image(10, 12), ".png"), np.uint8)
    doubled = np.repeat(data, 2)[::2]  # same bytes, stride 2
    assert not doubled.flags.c_contiguous
    np.testing.assert_array_equal(load_image(memoryview(doubled)), load_image(data))


@pytest.mark.aarch64
@pytest.mark.parametrize("source", [123, 4.5, None, ["a.jpg"]])
def test_bad_source_types(source):
    with pytest.raises(TypeError) as excinfo:
        load_image(source)
    assert "path" in one_line_error(excinfo)


@pytest.mark.aarch64
def test_decoded_array_is_refused_with_a_hint():
    with pytest.raises(TypeError) as excinfo:
        load_image(np.zeros((4, 4, 3), np.uint8))
    assert "(4, 4, 3)" in one_line_error(excinfo)


@pytest.mark.aarch64
def test_text_mode_file_is_refused(tmp_path):
    path = tmp_path / "x.jpg"
    path.write_bytes(b"hello")
    with open(path) as f, pytest.raises(TypeError) as excinfo:
        load_image(f)
    assert "text mode" in one_line_error(excinfo)


@pytest.mark.aarch64
@pytest.mark.parametrize("kwargs, error", [
    ({"min_short_side": 0}, ValueError), ({"min_short_side": 1.5}, TypeError),
    ({"max_pixels": 0}, ValueError), ({"max_pixels": True}, TypeError),
])
def test_bad_keyword_values(kwargs, error):
    with pytest.raises(error) as excinfo:
        load_image(encode(smooth_image(4, 4), ".png"), **kwargs)
    one_line_error(excinfo)


# ---------------------------------------------------------------------------------------------
# EXIF orientation


@pytest.fixture(scope="module")
def card_jpeg():
    # 48 x 80 (short side 48): min_short_side=20 selects d = 2
    return jpeg_bytes(marked_image(48, 80), quality=95)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("byteorder", ["MM", "II"])
def test_exif_orientation_full_decode_matches_viewer(card_jpeg, orientation, byteorder):
    data = with_exif(card_jpeg, orientation, byteorder)
    image, info = load_image(data, return_info=True)
    expected = pil_upright_bgr(data)
    assert image.shape == expected.shape
    assert mean_abs_diff(image, expected) < 1.5
    assert info.orientation == orientation and info.size == image.shape[:2]
    assert image_size(data) == image.shape[:2]
    # exact: the stored pixels with the EXIF transform applied
    np.testing.assert_array_equal(image, spec_orient(load_image(card_jpeg), orientation))
    assert image.flags.c_contiguous


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_reduced_decode(card_jpeg, orientation):
    data = with_exif(card_jpeg, orientation)
    image, info = load_image(data, min_short_side=20, return_info=True)
    assert info.reduction == 2
    upright_reduced = spec_orient(load_image(card_jpeg, min_short_side=20), orientation)
    np.testing.assert_array_equal(image, upright_reduced)
    # and it looks like the viewer's upright photo, area-downscaled
    viewer = pil_upright_bgr(data)
    reference = cv2.resize(viewer, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_AREA)
    assert mean_abs_diff(image, reference) < 4
    assert image.flags.c_contiguous


def test_exif_orientation_quadrants_read_as_expected(card_jpeg):
    # Orientation 6 (phone held upright, sensor landscape): stored top-left ends top-right.
    image = load_image(with_exif(card_jpeg, 6))
    h, w = image.shape[:2]
    assert (h, w) == (80, 48)
    top_right = image[: h // 4, 3 * w // 4:].reshape(-1, 3).mean(0)
    assert top_right[2] > 180 and top_right[0] < 80  # the red quadrant


def test_invalid_or_broken_exif_is_ignored(card_jpeg):
    upright = load_image(card_jpeg)
    np.testing.assert_array_equal(load_image(with_exif(card_jpeg, 0)), upright)
    np.testing.assert_array_equal(load_image(with_exif(card_jpeg, 9)), upright)
    broken = b"\xff\xe1" + struct.pack(">H", 12) + b"Exif\x00\x00XXXX"  # bad TIFF byte order
    np.testing.assert_array_equal(load_image(card_jpeg[:2] + broken + card_jpeg[2:]), upright)


@pytest.mark.parametrize("orientation", [2, 3, 6, 8])
@pytest.mark.parametrize("fmt, kwargs", [("PNG", {}), ("WEBP", {"lossless": True})])
def test_exif_orientation_png_webp(orientation, fmt, kwargs):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = pil_bytes(marked_image(20, 32), fmt, exif=exif.tobytes(), **kwargs)
    image, info = load_image(data, return_info=True)
    np.testing.assert_array_equal(image, pil_upright_bgr(data))  # lossless: exact
    assert info.orientation == orientation
    assert image_size(data) == image.shape[:2]


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_tiff_orientation(orientation):
    data = pil_bytes(marked_image(20, 32), "TIFF", tiffinfo={274: orientation})
    image = load_image(data)
    np.testing.assert_array_equal(image, pil_upright_bgr(data))
    assert image_size(data) == image.shape[:2]


# ---------------------------------------------------------------------------------------------
# formats


@pytest.mark.aarch64
def test_grayscale_becomes_three_channels():
    gray = smooth_image(20, 30)[..., 0].copy()
    png = load_image(encode(gray, ".png"))
    np.testing.assert_array_equal(png, np.repeat(gray[..., None], 3, axis=2))
    jpg = load_image(jpeg_bytes(gray))
    assert jpg.shape == (20, 30, 3)
    np.testing.assert_array_equal(jpg[..., 0], jpg[..., 1])
    np.testing.assert_array_equal(jpg[..., 0], jpg[..., 2])
    assert mean_abs_diff(jpg[..., 0], gray) < 2
    reduced = load_image(jpeg_bytes(gray), min_short_side=10)
    assert reduced.shape == (10, 15, 3)


@pytest.mark.aarch64
def test_rgba_png_drops_alpha():
    rng = np.random.default_rng(5)
    bgra = rng.integers(0, 256, (9, 13, 4), dtype=np.uint8)
    np.testing.assert_array_equal(load_image(encode(bgra, ".png")), bgra[..., :3])


def test_gray_alpha_and_palette_png():
    rng = np.random.default_rng(6)
    la = rng.integers(0, 256, (7, 11, 2), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(la).save(buf, "PNG")  # Pillow maps (h, w, 2) uint8 to mode LA
    image = load_image(buf.getvalue())
    np.testing.assert_array_equal(image, np.repeat(la[..., :1], 3, axis=2))
    rgb = rng.integers(0, 256, (7, 11, 3), dtype=np.uint8)
    palette = Image.fromarray(rgb).convert("P")
    buf = io.BytesIO()
    palette.save(buf, "PNG", transparency=0)
    expected = np.asarray(palette.convert("RGB"))[..., ::-1]
    np.testing.assert_array_equal(load_image(buf.getvalue()), expected)


@pytest.mark.aarch64
@pytest.mark.parametrize("ext", [".png", ".tiff"])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_16bit_scaled_by_rounding(ext, channels):
    rng = np.random.default_rng(channels)
    shape = (6, 9) if channels == 1 else (6, 9, channels)
    img16 = rng.integers(0, 65536, shape, dtype=np.uint16)
    img16.flat[:6] = [0, 128, 129, 385, 65407, 65535]  # rounding edges: 128/257 -> 0, 129/257 -> 1
    expected = ((img16.astype(np.uint32) + 128) // 257).astype(np.uint8)  # == round(x / 257)
    expected = np.repeat(expected[..., None], 3, axis=2) if channels == 1 else expected[..., :3]
    np.testing.assert_array_equal(load_image(encode(img16, ext)), expected)


def test_cmyk_jpeg():
    img = smooth_image(64, 96, seed=7)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img[..., ::-1])).convert("CMYK").save(buf, "JPEG", quality=95)
    data = buf.getvalue()
    reference = pil_upright_bgr(data)
    image, info = load_image(data, return_info=True)
    assert info.format == "JPEG" and image.shape == (64, 96, 3)
    assert mean_abs_diff(image, reference) < 3
    reduced = load_image(data, min_short_side=16)
    assert reduced.shape == (16, 24, 3)
    assert mean_abs_diff(reduced, cv2.resize(reference, (24, 16), interpolation=cv2.INTER_AREA)) < 3


def test_progressive_jpeg():
    img = smooth_image(120, 90, seed=8)
    data = pil_bytes(img, "JPEG", quality=90, progressive=True)
    assert b"\xff\xc2" in data  # SOF2 present: really progressive
    image = load_image(data)
    assert mean_abs_diff(image, pil_upright_bgr(data)) < 1.5
    assert mean_abs_diff(image, img) < 3
    reduced, info = load_image(data, min_short_side=24, return_info=True)  # ceil(90 / 4) = 23 < 24
    assert info.reduction == 2 and reduced.shape == (60, 45, 3)
    assert image_size(data) == (120, 90)


@pytest.mark.aarch64
@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_one_pixel_image(ext):
    img = np.full((1, 1, 3), (10, 120, 230), np.uint8)
    data = encode(img, ext)
    for s in (None, 1):
        image, info = load_image(data, min_short_side=s, return_info=True)
        assert image.shape == (1, 1, 3)
        assert np.abs(image.astype(int) - img).max() <= 6
    assert image_size(data) == (1, 1)


@pytest.mark.parametrize("h, w", [(10, 10000), (10000, 10)])
def test_extreme_aspect(h, w):
    img = smooth_image(h, w, seed=9)
    data = jpeg_bytes(img)
    image, info = load_image(data, min_short_side=2, return_info=True)
    assert info.reduction == 8 and image.shape == (math.ceil(h / 8), math.ceil(w / 8), 3)
    assert load_image(data, min_short_side=10).shape == (h, w, 3)
    np.testing.assert_array_equal(load_image(encode(img, ".png")), img)
    assert image_size(data) == (h, w)


@pytest.mark.parametrize("fmt, kwargs", [
    ("BMP", {}), ("GIF", {}), ("WEBP", {"lossless": True}), ("WEBP", {"quality": 90}), ("PPM", {}),
])
def test_other_formats(fmt, kwargs):
    img = smooth_image(21, 34, seed=10)
    data = pil_bytes(img, fmt, **kwargs)
    image, info = load_image(data, return_info=True)
    assert image.shape == (21, 34, 3) and image.dtype == np.uint8 and image.flags.c_contiguous
    assert info.format == {"WEBP": "WebP", "PPM": "other"}.get(fmt, fmt)
    if fmt in ("BMP", "PPM") or kwargs.get("lossless"):
        np.testing.assert_array_equal(image, img)
    assert image_size(data) == (21, 34)


def test_top_down_bmp():
    img = smooth_image(5, 7, seed=11)
    data = bytearray(encode(img, ".bmp"))
    # Rewrite as a top-down BMP: negative height and rows in reading order.
    struct.pack_into("<i", data, 22, -5)
    offset = struct.unpack_from("<I", data, 10)[0]
    row = (7 * 3 + 3) // 4 * 4
    rows = [bytes(data[offset + i * row: offset + (i + 1) * row]) for i in range(5)]
    data[offset: offset + 5 * row] = b"".join(reversed(rows))
    assert image_size(bytes(data)) == (5, 7)
    np.testing.assert_array_equal(load_image(bytes(data)), img)


# ---------------------------------------------------------------------------------------------
# pixel limit


@pytest.mark.aarch64
def test_huge_png_header_refused_before_allocation():
    data = png_header_only(60000, 60000)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError) as excinfo:
            load_image(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = one_line_error(excinfo)
    assert "60000x60000" in message and "max_pixels" in message
    assert peak < 1 << 20
    assert image_size(data) == (60000, 60000)  # the size query itself still answers


@pytest.mark.skipif("OPENCV_IO_MAX_IMAGE_PIXELS" in os.environ,
                    reason="relies on OpenCV's default 2**30-pixel limit to refuse without allocating")
def test_huge_png_header_without_our_limit_still_one_line():
    # OpenCV's own limit (2**30 pixels by default) refuses it; the error stays one line.
    with pytest.raises(ValueError) as excinfo:
        load_image(png_header_only(60000, 60000), max_pixels=None)
    one_line_error(excinfo)


@pytest.mark.aarch64
@pytest.mark.parametrize("ext", [".jpg", ".png", ".bmp", ".webp", ".tiff", ".ppm"])
def test_max_pixels_boundary(ext):
    data = encode(smooth_image(20, 30), ext)
    assert load_image(data, max_pixels=600).shape == (20, 30, 3)
    with pytest.raises(ValueError) as excinfo:
        load_image(data, max_pixels=599)
    assert "max_pixels=599" in one_line_error(excinfo)


def test_max_pixels_counts_stored_size_not_reduced_size():
    data = jpeg_bytes(smooth_image(64, 64))
    with pytest.raises(ValueError):
        load_image(data, min_short_side=8, max_pixels=64 * 64 - 1)


def test_default_max_pixels():
    assert 80_000_000 <= DEFAULT_MAX_PIXELS <= 100_000_000
    data = png_header_only(10000, 9001)  # 90.01 MP
    with pytest.raises(ValueError, match="exceeds max_pixels"):
        load_image(data)


def test_opencv_errors_become_one_line(monkeypatch):
    data = encode(smooth_image(8, 8), ".png")

    def limit(buf, flags):
        raise cv2.error("OpenCV(5.0.0) /src/loadsave.cpp:79: error: (-215:Assertion failed) "
                        "pixels <= CV_IO_MAX_IMAGE_PIXELS in function 'validateInputImageSize'\n")

    monkeypatch.setattr(cv2, "imdecode", limit)
    with pytest.raises(ValueError) as excinfo:
        load_image(data)
    assert "OPENCV_IO_MAX_IMAGE_PIXELS" in one_line_error(excinfo)

    def other(buf, flags):
        raise cv2.error("OpenCV(5.0.0) /src/x.cpp:1: error: (-2:Unspecified error) boom\nsecond line\n")

    monkeypatch.setattr(cv2, "imdecode", other)
    with pytest.raises(ValueError) as excinfo:
        load_image(data)
    assert "boom" in one_line_error(excinfo)


def test_opencv_pixel_limit_environment(tmp_path):
    # OpenCV reads OPENCV_IO_MAX_IMAGE_PIXELS once per process, hence the subprocess.
    path = tmp_path / "small.png"
    path.write_bytes(encode(smooth_image(20, 20), ".png"))
    code = ("import sys\nfrom fixres_edge.decode import load_image\n"
            "try:\n    load_image(sys.argv[1])\nexcept ValueError as e:\n    print(e)\n")
    env = dict(os.environ, OPENCV_IO_MAX_IMAGE_PIXELS="100")
    result = subprocess.run([sys.executable, "-c", code, str(path)], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and "OPENCV_IO_MAX_IMAGE_PIXELS" in lines[0] and "small.png" in lines[0]


# ---------------------------------------------------------------------------------------------
# bad files


@pytest.mark.aarch64
def test_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ValueError) as excinfo:
        load_image(path)
    message = one_line_error(excinfo)
    assert str(path) in message and "empty" in message
    with pytest.raises(ValueError, match="empty"):
        load_image(b"")
    with pytest.raises(ValueError, match="empty"):
        image_size(path)


@pytest.fixture(scope="module")
def photo_jpeg():
    return jpeg_bytes(smooth_image(200, 300, seed=12), quality=90)


@pytest.mark.parametrize("cut", [0.5, 0.9, -2, -10])
@pytest.mark.parametrize("progressive", [False, True])
def test_truncated_jpeg(tmp_path, photo_jpeg, cut, progressive):
    data = pil_bytes(smooth_image(200, 300, seed=12), "JPEG", progressive=True) if progressive else photo_jpeg
    end = int(len(data) * cut) if isinstance(cut, float) else len(data) + cut
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[:end])
    for s in (None, 50):
        with pytest.raises(ValueError) as excinfo:
            load_image(path, min_short_side=s)
        message = one_line_error(excinfo)
        assert "truncated JPEG" in message and str(path) in message


def test_truncated_jpeg_with_zero_padding(photo_jpeg):
    data = photo_jpeg[: len(photo_jpeg) // 2] + b"\x00" * 100_000
    with pytest.raises(ValueError, match="truncated JPEG"):
        load_image(data)


def test_truncated_inside_header(card_jpeg):
    data = with_exif(card_jpeg, 6)[:60]
    with pytest.raises(ValueError) as excinfo:
        load_image(data)
    assert "truncated JPEG header" in one_line_error(excinfo)
    with pytest.raises(ValueError, match="truncated JPEG header"):
        image_size(data)


def test_complete_jpeg_with_trailer_or_padding_is_accepted(photo_jpeg):
    expected = load_image(photo_jpeg)
    np.testing.assert_array_equal(load_image(photo_jpeg + b"\x00" * 70_000), expected)
    trailer = photo_jpeg + b"SEFH" + bytes(range(256)) * 300  # data appended after EOI by some phones
    np.testing.assert_array_equal(load_image(trailer), expected)
    np.testing.assert_array_equal(load_image(memoryview(trailer)), expected)


def demo_photo_jpeg():
    """matplotlib's sample photo (a real camera JPEG, baseline), or None without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return None
    path = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
    if not os.path.isfile(path):
        return None
    with open(path, "rb") as f:
        return f.read()


@pytest.mark.parametrize("source, cut", [
    ("photo", 0.3), ("photo", 0.5), ("photo", 0.8), ("photo", 0.99),
    # Progressive: cuts before the last scan (a cut inside it costs only the last refinement bit
    # of the lower blocks, and is not detected).
    ("progressive", 0.3), ("progressive", 0.5),
])
def test_truncated_jpeg_with_eoi_appended_is_refused(tmp_path, source, cut):
    # libjpeg decodes such a file with gray blocks (or, progressive, blurred) and only a warning.
    if source == "photo":
        data = demo_photo_jpeg()
        if data is None:
            pytest.skip("matplotlib's sample photo is not installed")
    else:
        data = pil_bytes(smooth_image(200, 300, seed=12), "JPEG", quality=90, progressive=True)
    good = load_image(data)  # the whole file decodes
    assert load_image(data, min_short_side=good.shape[0] // 4).shape[0] < good.shape[0]
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: int(len(data) * cut)] + b"\xff\xd9")
    for s in (None, 16):
        with pytest.raises(ValueError) as excinfo:
            load_image(path, min_short_side=s)
        message = one_line_error(excinfo)
        assert str(path) in message and "corrupt JPEG" in message and "end-of-image" in message


def test_gray_bottom_right_corner_is_not_mistaken_for_missing_data(monkeypatch):
    # A letterboxed photo whose bottom bar is exactly the gray libjpeg fills missing blocks with:
    # the second decode runs, finds the data complete, and the image is returned.
    img = smooth_image(64, 96, seed=15)
    img[40:] = 128
    data = jpeg_bytes(img, quality=90)
    probes = []
    real = decode.jpeg_with_filler
    monkeypatch.setattr(decode, "jpeg_with_filler", lambda *a: probes.append(1) or real(*a))
    image = load_image(data)
    assert probes and image.shape == (64, 96, 3) and np.all(image[-1, -1] == 128)
    assert mean_abs_diff(image, img) < 2
    # The same photo cut short with the marker appended is refused.
    with pytest.raises(ValueError, match="corrupt JPEG"):
        load_image(data[: len(data) // 2] + b"\xff\xd9")


@pytest.mark.parametrize("length", [0x7F000683, 0xFFFFFFFF, 5000])
def test_png_chunk_longer_than_the_file_is_refused_before_decoding(monkeypatch, length):
    # Found by the header fuzz test: OpenCV's PNG reader allocates a chunk's declared length
    # first, so a 2 kB file claiming a 2 GB IDAT cost 2 GB of memory and a second of CPU.
    data = bytearray(encode(smooth_image(24, 40), ".png"))
    struct.pack_into(">I", data, data.find(b"IDAT") - 4, length)
    monkeypatch.setattr(cv2, "imdecode", lambda *a: pytest.fail("OpenCV must not see this file"))
    with pytest.raises(ValueError) as excinfo:
        load_image(bytes(data))
    assert "IDAT" in one_line_error(excinfo) and "PNG" in str(excinfo.value)


def test_memoryview_with_many_stray_bytes_is_parsed_in_linear_time():
    # Found while fuzzing: stray bytes between JPEG markers made the parser copy the rest of a
    # memoryview (an np.fromfile array) at every gap, 3.7 s for this 1.2 MB input.
    data = np.frombuffer(b"\xff\xd8\xff\x01" + b"\x00\xff\x01" * 400_000, np.uint8)
    start = time.process_time()
    with pytest.raises(ValueError, match="truncated JPEG header"):
        load_image(data)
    assert time.process_time() - start < 1.0


@pytest.mark.parametrize("typ, value", [(1, bytes([40, 0, 0, 0])), (9, struct.pack("<i", 40))])
def test_tiff_size_in_any_integer_type_is_checked_before_decoding(monkeypatch, typ, value):
    # Found while fuzzing: libtiff reads a width stored as BYTE (or SLONG, ...); the parser read
    # only SHORT and LONG and let OpenCV decode such files before max_pixels was checked.
    data = bytearray(pil_bytes(marked_image(20, 40), "TIFF"))
    ifd = struct.unpack_from("<I", data, 4)[0]
    for i in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * i
        if struct.unpack_from("<H", data, entry)[0] == 256:  # ImageWidth
            struct.pack_into("<HI", data, entry + 2, typ, 1)
            data[entry + 8:entry + 12] = value
    assert image_size(bytes(data)) == (20, 40)
    monkeypatch.setattr(cv2, "imdecode", lambda *a: pytest.fail("decoded before the max_pixels check"))
    with pytest.raises(ValueError, match="max_pixels=100"):
        load_image(bytes(data), max_pixels=100)


def test_tiff_without_a_size_is_refused():
    data = bytearray(pil_bytes(marked_image(20, 40), "TIFF"))
    ifd = struct.unpack_from("<I", data, 4)[0]
    for i in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * i
        if struct.unpack_from("<H", data, entry)[0] == 257:  # ImageLength -> a private tag
            struct.pack_into("<H", data, entry, 65000)
    with pytest.raises(ValueError) as excinfo:
        load_image(bytes(data))
    assert "malformed TIFF header" in one_line_error(excinfo)


@pytest.mark.aarch64
@pytest.mark.parametrize("content", [
    np.random.default_rng(13).bytes(4096),
    b"This is a text file, not a photo.\n" * 20,
    b"BMW and other words that start like a bitmap file header, and more text\n",
])
def test_not_an_image(tmp_path, content):
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    with pytest.raises(ValueError) as excinfo:
        load_image(path)
    message = one_line_error(excinfo)
    assert str(path) in message and "not a decodable image" in message and "JPEG" in message
    with pytest.raises(ValueError, match="not a decodable image"):
        image_size(path)


@pytest.mark.aarch64
def test_jpeg_magic_with_garbage(tmp_path):
    rng = np.random.default_rng(14)
    path = tmp_path / "fake.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0" + rng.bytes(2000))
    with pytest.raises(ValueError) as excinfo:
        load_image(path)
    message = one_line_error(excinfo)
    assert str(path) in message and "JPEG" in message


def test_corrupt_png_data():
    data = bytearray(encode(smooth_image(16, 16), ".png"))
    idat = data.find(b"IDAT")
    data[idat + 4: idat + 40] = bytes(36)  # wreck the compressed stream (CRC no longer matches)
    with pytest.raises(ValueError) as excinfo:
        load_image(bytes(data))
    assert "PNG" in one_line_error(excinfo)


@pytest.mark.aarch64
def test_missing_file(tmp_path):
    path = tmp_path / "nope" / "missing.jpg"
    with pytest.raises(FileNotFoundError) as excinfo:
        load_image(path)
    assert str(path) in str(excinfo.value)
    with pytest.raises(FileNotFoundError):
        image_size(str(path))


@pytest.mark.aarch64
def test_file_object_name_in_errors(tmp_path):
    path = tmp_path / "named.png"
    path.write_bytes(b"not an image at all")
    with open(path, "rb") as f, pytest.raises(ValueError) as excinfo:
        load_image(f)
    assert str(path) in one_line_error(excinfo)
    with pytest.raises(ValueError) as excinfo:
        load_image(io.BytesIO(b"junk"))
    assert "<BytesIO>" in one_line_error(excinfo)
    with pytest.raises(ValueError) as excinfo:
        load_image(b"junk")
    assert "4 bytes" in one_line_error(excinfo)


def test_unprintable_file_name_stays_one_line(tmp_path):
    path = tmp_path / "bad\nname.jpg"
    path.write_bytes(b"")
    with pytest.raises(ValueError) as excinfo:
        load_image(path)
    one_line_error(excinfo)


# ---------------------------------------------------------------------------------------------
# image_size and DecodeInfo


def test_image_size_reads_past_the_prefix_when_needed(tmp_path, monkeypatch, card_jpeg):
    # A large APP segment pushes the Exif block and the frame header past a (shrunk) prefix.
    filler = b"\xff\xe2" + struct.pack(">H", 5002) + bytes(5000)
    data = card_jpeg[:2] + filler + exif_app1(6) + card_jpeg[2:]
    path = tmp_path / "big_header.jpg"
    path.write_bytes(data)
    monkeypatch.setattr(decode, "_HEADER_PREFIX", 40)  # cuts every header below
    assert image_size(path) == (80, 48)
    exif = Image.Exif()
    exif[0x0112] = 6
    files = {
        "o.tiff": pil_bytes(marked_image(20, 32), "TIFF", tiffinfo={274: 6}),
        "o.png": pil_bytes(marked_image(20, 32), "PNG", exif=exif.tobytes()),
        "o.webp": pil_bytes(marked_image(20, 32), "WEBP", lossless=True, exif=exif.tobytes()),  # EXIF chunk last
        "o.ppm": pil_bytes(marked_image(32, 20), "PPM"),  # no parser: decoded to learn its size
    }
    for file_name, content in files.items():
        path = tmp_path / file_name
        path.write_bytes(content)
        assert len(content) > 40
        assert image_size(path) == (32, 20), file_name
        assert load_image(path).shape == (32, 20, 3), file_name


def test_image_size_does_not_need_the_pixels(card_jpeg):
    # Everything after the first scan header may be missing.
    data = with_exif(card_jpeg, 5)
    sos = data.find(b"\xff\xda")
    assert image_size(data[: sos + 20]) == (80, 48)


def test_decode_info(card_jpeg):
    _, info = load_image(with_exif(card_jpeg, 8), min_short_side=20, return_info=True)
    assert info == DecodeInfo(format="JPEG", size=(80, 48), reduction=2, orientation=8)
    with pytest.raises(AttributeError):
        info.reduction = 1  # frozen


def test_public_names():
    import fixres_edge

    assert fixres_edge.load_image is load_image
    assert set(decode.__all__) >= {"load_image", "image_size", "reduction_factor", "DecodeInfo",
                                   "DEFAULT_MAX_PIXELS"}
