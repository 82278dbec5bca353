"""Fuzz the container/EXIF header parsers and the decode entry point with mutated real files.

Every seed is a real, tiny file written here by OpenCV or Pillow (JPEG baseline and progressive,
PNG, WebP VP8/VP8L/VP8X, GIF, BMP, TIFF in both byte orders), several with an EXIF orientation
written by Pillow. Hypothesis mutates them: truncations (also with an end-of-image marker
appended), byte flips, huge/zero/negative sizes written over fields, EXIF IFD chains bent into
loops or out of range, spliced and repeated segments. For every input:

* ``_headers.parse_header`` returns a header or ``None``, or raises ``HeaderError``;
* ``load_image`` and ``image_size`` return a result or raise a one-line ``ValueError`` naming the
  data; no other exception;
* a decoded image stays within ``max_pixels`` and the traced allocations (tracemalloc peak) stay
  within a small multiple of it, and so does the peak resident memory of the process (which
  also sees the codecs' own C allocations; Linux only): nothing is allocated for the size a
  corrupt header claims;
* ``image_size`` agrees with the decoded size;
* each input costs under a second of CPU time.

A few hundred examples run by default; ``pytest --run-slow`` runs the 20,000-example search.
"""
from __future__ import annotations

import io
import math
import struct
import time
import tracemalloc
from functools import lru_cache

import cv2
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
Image = pytest.importorskip("PIL.Image")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fixres_edge import _headers  # noqa: E402
from fixres_edge.decode import image_size, load_image  # noqa: E402

MAX_PIXELS = 128 * 128
# Decoding legitimately allocates a few images' worth (the decoded array, a 16-bit intermediate,
# the oriented copy) plus copies of header bytes; a size claimed by a corrupt header is far above.
ALLOCATION_LIMIT = 24 * MAX_PIXELS + (1 << 18)
# Peak resident memory an input may add (the codecs' C buffers are invisible to tracemalloc).
RSS_LIMIT = 64 << 20
CPU_SECONDS = 1.0
DEFAULT_EXAMPLES = 300
SLOW_EXAMPLES = 20_000


# ---------------------------------------------------------------------------------------------
# seeds


def _picture(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _cv2(img: np.ndarray, ext: str, params=()) -> bytes:
    ok, buf = cv2.imencode(ext, img, list(params))
    assert ok
    return buf.tobytes()


def _pil(img_bgr: np.ndarray, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img_bgr[..., ::-1])).save(buf, fmt, **kwargs)
    return buf.getvalue()


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _big_endian_tiff(img_bgr: np.ndarray, orientation: int) -> bytes:
    """An uncompressed big-endian ("MM") RGB TIFF with an Orientation tag, written by hand."""
    h, w = img_bgr.shape[:2]
    pixels = np.ascontiguousarray(img_bgr[..., ::-1]).tobytes()
    entries = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 2),
               (273, 4, 1, 0), (274, 3, 1, orientation), (277, 3, 1, 3), (278, 3, 1, h),
               (279, 4, 1, len(pixels))]
    ifd_size = 2 + 12 * len(entries) + 4
    data_offset = 8 + ifd_size
    ifd = struct.pack(">H", len(entries))
    for tag, typ, count, value in entries:
        value = data_offset if tag == 273 else value
        packed = struct.pack(">HH", value, 0) if typ == 3 else struct.pack(">I", value)
        ifd += struct.pack(">HHI", tag, typ, count) + packed
    return b"MM\x00*" + struct.pack(">I", 8) + ifd + struct.pack(">I", 0) + pixels


@lru_cache(maxsize=1)
def seeds() -> dict[str, bytes]:
    img = _picture(24, 40, seed=1)
    gray = _picture(17, 23, seed=2)[..., 0].copy()
    return {
        "jpeg": _cv2(img, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 80]),
        "jpeg-gray": _cv2(gray, ".jpg"),
        "jpeg-restart": _cv2(img, ".jpg", [cv2.IMWRITE_JPEG_RST_INTERVAL, 2]),
        "jpeg-exif-progressive": _pil(img, "JPEG", quality=80, progressive=True, exif=_exif(6)),
        "png": _cv2(img, ".png"),
        "png-16bit": _cv2((_picture(9, 13, seed=3).astype(np.uint16) * 257), ".png"),
        "png-exif": _pil(img, "PNG", exif=_exif(3)),
        "webp-lossy": _pil(img, "WEBP", quality=60),
        "webp-lossless": _pil(img, "WEBP", lossless=True),
        "webp-exif": _pil(img, "WEBP", lossless=True, exif=_exif(8)),
        "gif": _pil(img, "GIF"),
        "bmp": _cv2(img, ".bmp"),
        "tiff-exif": _pil(img, "TIFF", tiffinfo={274: 5}),
        "tiff-mm": _big_endian_tiff(img, orientation=6),
    }


def _tiff_base(data: bytearray) -> int | None:
    """Start of the TIFF structure: the file itself, or the EXIF block inside it."""
    if bytes(data[:4]) in (b"II*\x00", b"MM\x00*"):
        return 0
    at = bytes(data).find(b"Exif\x00\x00")
    return None if at < 0 else at + 6


# ---------------------------------------------------------------------------------------------
# mutations: each takes Hypothesis' draw and the data, and returns the new data

SIZES = [0, 1, 2, 7, 8, 0x7F, 0xFF, 0x100, 0x3FFF, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0xFFFFFF, 0x7FFFFFFF,
         0x80000000, 0xFFFFFFFE, 0xFFFFFFFF]


def _truncate(draw, data):
    return data[:draw(st.integers(0, len(data)))]


def _truncate_with_eoi(draw, data):
    return data[:draw(st.integers(0, len(data)))] + b"\xff\xd9"


def _flip(draw, data):
    if not data:
        return data
    for _ in range(draw(st.integers(1, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return data


def _size_field(draw, data):
    """A huge, zero or negative (two's complement) integer over any 2 or 4 bytes of the header."""
    width = draw(st.sampled_from([2, 4]))
    if len(data) < width:
        return data
    pos = draw(st.integers(0, min(len(data), 600) - width))
    value = draw(st.sampled_from(SIZES) | st.integers(0, 0xFFFFFFFF)) & ((1 << (8 * width)) - 1)
    data[pos:pos + width] = value.to_bytes(width, draw(st.sampled_from(["big", "little"])))
    return data


def _ifd_chain(draw, data):
    """Bend the first IFD of a TIFF or EXIF block: offsets out of range or onto themselves,
    entry counts past the end, next-IFD pointers that loop, odd tag types and counts."""
    base = _tiff_base(data)
    if base is None or len(data) < base + 8:
        return _size_field(draw, data)
    e = "<" if bytes(data[base:base + 2]) == b"II" else ">"
    ifd = struct.unpack_from(e + "I", data, base + 4)[0]
    choice = draw(st.sampled_from(["offset", "count", "next", "entry"]))
    if choice == "offset":
        value = draw(st.sampled_from([0, 4, 8, ifd, len(data) - base, len(data) - base - 2, 0xFFFFFFFF])
                     | st.integers(0, 0xFFFFFFFF))
        struct.pack_into(e + "I", data, base + 4, value)
        return data
    at = base + ifd
    if at + 2 > len(data):
        return data
    count = struct.unpack_from(e + "H", data, at)[0]
    if choice == "count":
        # One entry more than there is (capped: a count of 0xFFFF cannot grow in its 16 bits).
        struct.pack_into(e + "H", data, at, draw(st.sampled_from([0, 1, min(count + 1, 0xFFFF), 0x7FFF, 0xFFFF])))
    elif choice == "next":
        next_at = at + 2 + 12 * count
        if next_at + 4 <= len(data):
            struct.pack_into(e + "I", data, next_at, draw(st.sampled_from([ifd, 8, 0, 0xFFFFFFFF])))
    elif count:
        entry = at + 2 + 12 * draw(st.integers(0, count - 1))
        if entry + 12 <= len(data):
            field = draw(st.sampled_from([(2, "H", [0, 1, 3, 4, 5, 7, 12, 0xFFFF]),  # type
                                          (4, "I", [0, 2, 0xFFFF, 0xFFFFFFFF]),  # count
                                          (8, "I", [0, 9, 0xFFFF, 0xFFFFFFFF, ifd])]))  # value/offset
            offset, fmt, values = field
            struct.pack_into(e + fmt, data, entry + offset, draw(st.sampled_from(values)))
    return data


def _splice(draw, data):
    """Repeat or move a slice (duplicate segments and chunks, data inside data)."""
    if len(data) < 2:
        return data
    a = draw(st.integers(0, len(data) - 1))
    b = draw(st.integers(a + 1, min(len(data), a + 200)))
    at = draw(st.integers(0, len(data)))
    return data[:at] + data[a:b] * draw(st.integers(1, 3)) + data[at:]


def _insert(draw, data):
    at = draw(st.integers(0, len(data)))
    return data[:at] + bytearray(draw(st.binary(min_size=1, max_size=16))) + data[at:]


MUTATIONS = [_truncate, _truncate_with_eoi, _flip, _size_field, _ifd_chain, _splice, _insert]


@st.composite
def mutated_files(draw):
    name = draw(st.sampled_from(sorted(seeds())))
    data = bytearray(seeds()[name])
    for mutation in draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=3)):
        data = mutation(draw, data)
    return name, bytes(data)


# ---------------------------------------------------------------------------------------------
# the checks


def _one_line(error: ValueError, size: int) -> None:
    message = str(error)
    assert message and "\n" not in message and message.strip() == message, repr(message)
    assert f"image data ({size} bytes)" in message, message


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"no {field} in /proc/self/status")


def _reset_peak_rss() -> int | None:
    """Reset the process's peak RSS (Linux ``clear_refs``) and return the current RSS; None elsewhere."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_bytes("VmRSS")
    except OSError:
        return None


def check_input(data: bytes, min_short_side: int | None, as_memoryview: bool) -> None:
    rss_before = _reset_peak_rss()
    start = time.process_time()
    for complete in (True, False):
        try:
            header = _headers.parse_header(data, complete)
        except _headers.HeaderError as error:
            assert str(error) and "\n" not in str(error)
        else:
            assert header is None or isinstance(header, _headers.Header)

    source = memoryview(data) if as_memoryview else data
    tracemalloc.start()
    try:
        image, info = load_image(source, min_short_side=min_short_side, max_pixels=MAX_PIXELS, return_info=True)
    except ValueError as error:
        _one_line(error, len(data))
        image = info = None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak <= ALLOCATION_LIMIT + 4 * len(data), f"traced allocation peak {peak} bytes"

    try:
        size = image_size(source)
    except ValueError as error:
        _one_line(error, len(data))
        size = None
    if image is not None:
        h, w = info.size
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert h * w <= MAX_PIXELS
        d = info.reduction
        assert image.shape[:2] == (math.ceil(h / d), math.ceil(w / d)), (image.shape, info)
        if size is not None:
            assert size == (h, w), (size, info)
    cpu = time.process_time() - start
    if rss_before is not None:
        grown = _status_bytes("VmHWM") - rss_before
        assert grown <= RSS_LIMIT, f"peak resident memory grew by {grown >> 20} MB"
    assert cpu < CPU_SECONDS, f"{cpu:.2f} s of CPU time for one {len(data)}-byte input"


inputs = st.tuples(mutated_files(), st.sampled_from([None, None, 4, 12]), st.booleans())


def test_seeds_decode():
    # The seeds themselves are valid: each decodes, with the orientation Pillow wrote.
    expected = {"jpeg-exif-progressive": 6, "png-exif": 3, "webp-exif": 8, "tiff-exif": 5, "tiff-mm": 6}
    for name, data in seeds().items():
        image, info = load_image(data, return_info=True)
        assert info.orientation == expected.get(name, 1), name
        assert image_size(data) == info.size == image.shape[:2], name
        check_input(data, None, False)


@settings(max_examples=DEFAULT_EXAMPLES)
@given(inputs)
def test_mutated_headers(case):
    (name, data), min_short_side, as_memoryview = case
    check_input(data, min_short_side, as_memoryview)


@pytest.mark.slow
@settings(max_examples=SLOW_EXAMPLES)
@given(inputs)
def test_mutated_headers_long_run(case):
    (name, data), min_short_side, as_memoryview = case
    check_input(data, min_short_side, as_memoryview)
