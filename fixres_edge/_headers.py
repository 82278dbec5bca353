"""Container and EXIF header parsing: size, orientation and JPEG layout from the first bytes.

Pure Python over ``bytes``, ``bytearray`` or a byte-format ``memoryview``; nothing here decodes
pixels or imports OpenCV. :mod:`fixres_edge.decode` calls it before decoding, so that an image
above ``max_pixels`` is refused before its pixels are allocated and the EXIF orientation is
applied the same way on every path.

Formats: JPEG (SOF size, Exif APP1 orientation, the first scan's offset), PNG (IHDR, eXIf before
the first IDAT), WebP (VP8, VP8L, VP8X + EXIF chunk), BMP, GIF, TIFF (first IFD).

Errors
------
The parsers raise only :class:`HeaderError` (a ``ValueError``), with a short reason and
``truncated`` set when the data stops inside a structure; :func:`parse_header_or_raise` turns it
into a one-line ``ValueError`` naming the file. Malformed EXIF blocks are never errors: a photo
with a broken orientation tag is shown upright, as image viewers do. Any other exception escaping
from here is a bug (``tests/test_header_fuzz.py`` checks this on mutated real headers).
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass

__all__ = ["Header", "HeaderError", "find_bytes", "jpeg_has_eoi", "parse_header", "parse_header_or_raise",
           "jpeg_scans_complete", "jpeg_with_filler", "png_chunks_fit", "sniff", "try_header"]

# JPEG start-of-frame markers: SOF0-3, 5-7, 9-11, 13-15 (0xC4 DHT, 0xC8 JPG and 0xCC DAC are not frames).
_JPEG_SOF = frozenset((0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF))
# Lossless processes have no DCT, so libjpeg cannot scale them while decoding.
_JPEG_LOSSLESS = frozenset((0xC3, 0xC7, 0xCB, 0xCF))
_JPEG_PROGRESSIVE = frozenset((0xC2, 0xC6, 0xCA, 0xCE))
# Markers that stand alone (no length field): TEM and RST0-7.
_JPEG_STANDALONE = frozenset((0x01, *range(0xD0, 0xD8)))

_TAG_WIDTH, _TAG_HEIGHT, _TAG_ORIENTATION = 256, 257, 274
# TIFF field type -> struct code: BYTE, SHORT, LONG, SBYTE, SSHORT, SLONG.
_TIFF_INTEGER_TYPES = {1: "B", 3: "H", 4: "I", 6: "b", 8: "h", 9: "i"}
_BMP_DIB_SIZES = frozenset((12, 16, 40, 52, 56, 64, 108, 124))
_UNBOUNDED = 1 << 62  # "the structure may extend past the bytes at hand"
_PNG_MAX_CHUNK = (1 << 31) - 1  # the PNG spec's limit on a chunk length


@dataclass(frozen=True)
class Header:
    """What the header says: format, stored size, orientation, and for JPEG the scan layout."""

    format: str
    height: int  # as stored, before orientation
    width: int
    orientation: int = 1
    oriented_by_decoder: bool = False  # TIFF: libtiff/OpenCV orient the pixels themselves
    scan_offset: int = -1  # JPEG: first byte after the first SOS segment
    dct: bool = True  # JPEG: False for the lossless processes
    scan_start: int = -1  # JPEG: offset of the first SOS marker
    progressive: bool = False  # JPEG: a progressive process (several scans refine the image)
    components: tuple = ()  # JPEG: component ids of the frame

    @property
    def oriented_size(self) -> tuple[int, int]:
        # Orientations 5-8 include a transpose, which swaps the axes.
        if self.orientation >= 5:
            return self.width, self.height
        return self.height, self.width


class HeaderError(ValueError):
    """The header is recognisably one format but unusable; ``truncated`` when it stops early."""

    def __init__(self, reason: str, truncated: bool = False):
        super().__init__(reason)
        self.truncated = truncated


def parse_header_or_raise(data, name: str) -> Header | None:
    """:func:`parse_header` of a whole file; a ``HeaderError`` becomes a one-line ``ValueError``
    naming ``name`` ("truncated" or "malformed", the format, the reason)."""
    try:
        return parse_header(data)
    except HeaderError as exc:
        fmt = sniff(data)
        kind = "truncated" if exc.truncated else "malformed"
        raise ValueError(f"{name}: {kind} {fmt} header ({exc})") from None


def try_header(data, complete: bool) -> Header | None:
    """:func:`parse_header`, with ``None`` instead of a ``HeaderError``."""
    try:
        return parse_header(data, complete)
    except HeaderError:
        return None


def sniff(data) -> str | None:
    """The format named by the magic bytes, or ``None`` for formats without a parser here."""
    head = bytes(data[:12])
    if head[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if head[:2] == b"BM":
        return "BMP"
    return None


def parse_header(data, complete: bool = True) -> Header | None:
    """Header of ``data``; ``complete=False`` when ``data`` is only the first part of a file.

    With a prefix, running out of bytes anywhere (also while looking for EXIF metadata) raises a
    truncated ``HeaderError`` so that the caller reads the rest. With the whole file, missing
    metadata just means "upright", and only missing mandatory fields are errors.
    """
    fmt = sniff(data)
    if fmt is None:
        return None
    return _PARSERS[fmt](data, complete)


class _Incomplete(Exception):
    """A metadata structure continues past the end of the bytes available."""


def _tiff_orientation(data, base: int, end: int, complete: bool) -> int:
    try:
        return _ifd0_tags(data, base, end, (_TAG_ORIENTATION,)).get(_TAG_ORIENTATION, 1)
    except _Incomplete:
        if complete:
            return 1  # cut-off Exif block in a whole file: ignore it, as viewers do
        raise HeaderError("data ends inside the Exif block", truncated=True) from None


def _need(data, end: int, what: str) -> None:
    if end > len(data):
        raise HeaderError(f"data ends inside the {what}", truncated=True)


def _parse_jpeg(data, complete: bool) -> Header:
    n = len(data)
    pos = 2
    orientation = None
    frame = None
    while True:
        _need(data, pos + 2, "marker sequence before the image data")
        if data[pos] != 0xFF:
            # libjpeg skips stray bytes between segments with a warning; do the same.
            nxt = find_bytes(data, b"\xff", pos)
            pos = n if nxt < 0 else nxt
            continue
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        pos += 2
        if marker in _JPEG_STANDALONE:
            continue
        if marker == 0xD9:
            raise HeaderError("end-of-image marker before any image data")
        if marker == 0xD8:
            raise HeaderError("second start-of-image marker")
        _need(data, pos + 2, "segment length")
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2:
            raise HeaderError(f"segment 0xFF{marker:02X} has length {length}")
        end = pos + length
        _need(data, end, f"segment 0xFF{marker:02X}")
        if marker == 0xE1 and orientation is None and bytes(data[pos + 2:pos + 8]) == b"Exif\x00\x00":
            # First Exif APP1 only, as libjpeg-based readers do; XMP APP1 has another signature.
            orientation = _tiff_orientation(data, pos + 8, end, complete)
        elif marker in _JPEG_SOF and frame is None:
            if length < 8:
                raise HeaderError("start-of-frame segment too short")
            _, height, width, count = struct.unpack_from(">BHHB", data, pos + 2)
            if width == 0 or height == 0:
                # height 0 means "defined later by a DNL marker", which OpenCV does not support.
                raise HeaderError(f"frame size {width}x{height}")
            # Component ids: 3 bytes per component from pos + 8 (only what the segment holds).
            ids = tuple(data[i] for i in range(pos + 8, min(end, pos + 8 + 3 * count), 3))
            frame = (height, width, marker not in _JPEG_LOSSLESS, marker in _JPEG_PROGRESSIVE, ids)
        elif marker == 0xDA:
            if frame is None:
                raise HeaderError("scan before the frame header")
            height, width, dct, progressive, ids = frame
            return Header("JPEG", height, width, _valid_orientation(orientation), scan_offset=end, dct=dct,
                          scan_start=pos - 2, progressive=progressive, components=ids)
        pos = end


def _parse_png(data, complete: bool) -> Header:
    _need(data, 24, "IHDR chunk")
    length, ctype = struct.unpack_from(">I4s", data, 8)
    if ctype != b"IHDR" or length != 13:
        raise HeaderError("first chunk is not IHDR")
    width, height = struct.unpack_from(">II", data, 16)
    if width == 0 or height == 0:
        raise HeaderError(f"image size {width}x{height}")
    # eXIf is looked for before the first IDAT only, where the PNG spec puts it (libpng and
    # OpenCV read it there too); chunks are skipped by their lengths, not scanned.
    orientation = 1
    pos = 8
    n = len(data)
    while True:
        if pos + 8 > n:
            if not complete:
                raise HeaderError("data ends before the first IDAT chunk", truncated=True)
            break  # whole file without IDAT: OpenCV will report it
        length, ctype = struct.unpack_from(">I4s", data, pos)
        if ctype in (b"IDAT", b"IEND"):
            break
        if ctype == b"eXIf":
            start = pos + 8
            if bytes(data[start:start + 6]) == b"Exif\x00\x00":  # some writers keep the JPEG prefix
                start += 6
            orientation = _tiff_orientation(data, start, pos + 8 + length, complete)
            break
        pos += 12 + length
    return Header("PNG", height, width, _valid_orientation(orientation))


def _parse_webp(data, complete: bool) -> Header:
    _need(data, 20, "first chunk header")
    fourcc = bytes(data[12:16])
    p = 20  # first chunk payload
    if fourcc == b"VP8 ":
        _need(data, p + 10, "VP8 frame header")
        if bytes(data[p + 3:p + 6]) != b"\x9d\x01\x2a":
            raise HeaderError("VP8 start code missing")
        w, h = struct.unpack_from("<HH", data, p + 6)
        width, height = w & 0x3FFF, h & 0x3FFF
        orientation = 1
    elif fourcc == b"VP8L":
        _need(data, p + 5, "VP8L header")
        if data[p] != 0x2F:
            raise HeaderError("VP8L signature missing")
        (bits,) = struct.unpack_from("<I", data, p + 1)
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        orientation = 1
    elif fourcc == b"VP8X":
        _need(data, p + 10, "VP8X header")
        flags = data[p]
        width = int.from_bytes(bytes(data[p + 4:p + 7]), "little") + 1
        height = int.from_bytes(bytes(data[p + 7:p + 10]), "little") + 1
        orientation = _webp_exif_orientation(data, complete) if flags & 0x08 else 1
    else:
        raise HeaderError(f"unknown first chunk {fourcc!r}")
    if width == 0 or height == 0:
        raise HeaderError(f"image size {width}x{height}")
    return Header("WebP", height, width, _valid_orientation(orientation))


def _webp_exif_orientation(data, complete: bool) -> int:
    # The EXIF chunk usually comes after the image data; chunks are skipped by their sizes.
    n = len(data)
    pos = 12
    while pos + 8 <= n:
        fourcc = bytes(data[pos:pos + 4])
        (size,) = struct.unpack_from("<I", data, pos + 4)
        if fourcc == b"EXIF":
            start = pos + 8
            if bytes(data[start:start + 6]) == b"Exif\x00\x00":
                start += 6
            return _tiff_orientation(data, start, pos + 8 + size, complete)
        pos += 8 + size + (size & 1)  # chunks are padded to even sizes
    if not complete:
        raise HeaderError("data ends before the EXIF chunk", truncated=True)
    return 1


def _parse_bmp(data, complete: bool) -> Header | None:
    _need(data, 26, "DIB header")
    (dib,) = struct.unpack_from("<I", data, 14)
    if dib not in _BMP_DIB_SIZES:
        return None  # "BM" followed by something else (e.g. a text file): let OpenCV judge
    if dib == 12:  # OS/2 BITMAPCOREHEADER: 16-bit unsigned sizes
        width, height = struct.unpack_from("<HH", data, 18)
    else:
        width, height = struct.unpack_from("<ii", data, 18)
        height = abs(height)  # negative height = rows stored top-down
    if width <= 0 or height == 0:
        raise HeaderError(f"image size {width}x{height}")
    return Header("BMP", height, width)


def _parse_gif(data, complete: bool) -> Header:
    _need(data, 10, "logical screen descriptor")
    width, height = struct.unpack_from("<HH", data, 6)
    if width == 0 or height == 0:
        raise HeaderError(f"image size {width}x{height}")
    return Header("GIF", height, width)


def _parse_tiff(data, complete: bool) -> Header | None:
    # The first IFD may sit anywhere in the file (often at its end), so a prefix may not reach it.
    try:
        tags = _ifd0_tags(data, 0, len(data) if complete else _UNBOUNDED,
                          (_TAG_WIDTH, _TAG_HEIGHT, _TAG_ORIENTATION))
    except _Incomplete:
        raise HeaderError("data ends before the first IFD", truncated=True) from None
    if _TAG_WIDTH not in tags or _TAG_HEIGHT not in tags:
        # libtiff refuses a first IFD without both; were it decoded anyway, max_pixels could only
        # be checked after the allocation.
        raise HeaderError("no image width and height in the first IFD")
    width, height = tags[_TAG_WIDTH], tags[_TAG_HEIGHT]
    if width == 0 or height == 0:
        raise HeaderError(f"image size {width}x{height}")
    orientation = _valid_orientation(tags.get(_TAG_ORIENTATION, 1))
    return Header("TIFF", height, width, orientation, oriented_by_decoder=True)


_PARSERS = {"JPEG": _parse_jpeg, "PNG": _parse_png, "WebP": _parse_webp, "BMP": _parse_bmp,
            "GIF": _parse_gif, "TIFF": _parse_tiff}


def _ifd0_tags(data, base: int, end: int, wanted) -> dict:
    """Single-valued SHORT/LONG tags of the first IFD of a TIFF structure at ``data[base:end]``.

    Used for TIFF files and for EXIF blocks (which are TIFF structures). Malformed input (offsets
    past ``end``) gives what was found so far: a broken EXIF block should not make a decodable
    photo unreadable. Raises ``_Incomplete`` when the structure is within ``end`` but the bytes
    stop first (``end`` may lie beyond ``len(data)`` when only a prefix of the file is at hand).
    """
    n = len(data)

    def have(stop: int) -> bool:
        if stop > end:
            return False
        if stop > n:
            raise _Incomplete
        return True

    if not have(base + 8):
        return {}
    order = bytes(data[base:base + 2])
    if order == b"II":
        e = "<"
    elif order == b"MM":
        e = ">"
    else:
        return {}
    magic, ifd = struct.unpack_from(e + "HI", data, base + 2)
    pos = base + ifd
    if magic != 42 or ifd < 8 or not have(pos + 2):
        return {}
    (count,) = struct.unpack_from(e + "H", data, pos)
    found = {}
    for i in range(count):
        q = pos + 2 + 12 * i
        if not have(q + 12):
            break
        tag, typ, cnt = struct.unpack_from(e + "HHI", data, q)
        if tag in wanted and cnt == 1 and tag not in found and typ in _TIFF_INTEGER_TYPES:
            # Left-justified in the 4-byte value field. libtiff reads sizes stored in any of
            # these types (negative values are errors to it), so they are all read here too.
            value = struct.unpack_from(e + _TIFF_INTEGER_TYPES[typ], data, q + 8)[0]
            if value >= 0:
                found[tag] = value
    return found


def _valid_orientation(value) -> int:
    # Out-of-range values are treated as upright, as image viewers do.
    return value if isinstance(value, int) and 1 <= value <= 8 else 1

def jpeg_has_eoi(data, scan_offset: int) -> bool:
    """True when an EOI marker follows the first scan (complete file, maybe with a trailer)."""
    n = len(data)
    # Fast path: the file ends with EOI, possibly followed by zero padding (memory cards, some
    # uploaders). Only the tail is copied.
    tail = bytes(data[max(scan_offset, n - 65536):]).rstrip(b"\x00")
    if tail.endswith(b"\xff\xd9"):
        return True
    # Slow path: data appended after EOI (camera trailers). Inside entropy-coded data 0xFF is
    # always followed by 0x00 or RSTn, so the first FF D9 after the scan header is the real EOI.
    return find_bytes(data, b"\xff\xd9", scan_offset) != -1


def find_bytes(data, sub: bytes, start: int) -> int:
    """``data.find(sub, start)`` for bytes, bytearray and memoryview alike."""
    if isinstance(data, (bytes, bytearray)):
        return data.find(sub, start)
    # A memoryview has no find(); a regular expression searches it in place. (Copying its tail
    # instead made the marker walk quadratic: a 1 MB array of stray bytes took seconds.)
    match = re.compile(re.escape(sub)).search(data, start)
    return -1 if match is None else match.start()



# Start-of-scan markers: 0xFF 0xDA never occurs inside entropy-coded data (an 0xFF there is
# followed by 0x00 or a restart marker).
_JPEG_SOS = re.compile(b"\xff\xda")


def jpeg_scans_complete(data, header: Header) -> bool:
    """True unless a progressive JPEG's scans leave some coefficient short of full precision.

    A progressive file cut short and closed with an end-of-image marker loses its last scans:
    libjpeg then shows a blurred or gray image with only a warning on stderr. A complete scan
    script brings every coefficient (0..63) of every frame component to point transform 0.
    Sequential JPEGs have nothing to check here and give True.
    """
    if not header.progressive:
        return True
    exact = {c: set() for c in header.components}
    eoi = find_bytes(data, b"\xff\xd9", header.scan_offset)
    end = len(data) if eoi < 0 else eoi
    for match in _JPEG_SOS.finditer(data, header.scan_start, end):
        p = match.end()
        if p + 3 > end:
            break
        (length,) = struct.unpack_from(">H", data, p)
        count = data[p + 2]
        if length != 6 + 2 * count or p + length > end:
            continue  # not a scan header after all (bytes inside a table segment)
        ss, se, approx = data[p + 3 + 2 * count], data[p + 4 + 2 * count], data[p + 5 + 2 * count]
        if approx & 0x0F == 0 and ss <= se <= 63:
            for i in range(count):
                done = exact.get(data[p + 3 + 2 * i])
                if done is not None:
                    done.update(range(ss, se + 1))
    return all(len(done) == 64 for done in exact.values())


# Entropy-coded filler for jpeg_with_filler: no 0xFF byte (that would start a marker), and no
# long runs, so that a decoder that consumes it produces visibly different blocks.
_JPEG_FILLER = bytes(range(1, 255)) * 8


def jpeg_with_filler(data, scan_offset: int) -> bytes | None:
    """A copy of a JPEG with filler bytes inserted just before its end-of-image marker.

    A decoder that finished every block before the marker skips the filler and decodes the copy
    exactly as the original; one whose compressed data ran out early reads the filler as image
    data. Comparing the two decodes tells a complete JPEG from a truncated one with an EOI
    appended (which libjpeg decodes with gray blocks and only a warning on stderr). ``None``
    when there is no end-of-image marker after the scan.
    """
    eoi = find_bytes(data, b"\xff\xd9", scan_offset)
    if eoi < 0:
        return None
    return b"".join((bytes(data[:eoi]), _JPEG_FILLER, bytes(data[eoi:])))


def png_chunks_fit(data) -> None:
    """Raise ``HeaderError`` when a PNG chunk's declared length runs past the end of ``data``.

    OpenCV's PNG reader allocates a buffer of a chunk's declared length before reading it, so a
    2 kB file whose IDAT claims 2 GB would cost 2 GB of memory: the whole chunk list is checked
    (a few operations per chunk) before decoding.
    """
    n = len(data)
    pos = 8
    while pos + 8 <= n:
        length, ctype = struct.unpack_from(">I4s", data, pos)
        if length > _PNG_MAX_CHUNK or pos + 12 + length > n:
            raise HeaderError(f"chunk {ctype!r} of {length} bytes at offset {pos} runs past the end of the "
                              f"data ({n} bytes)", truncated=True)
        if ctype == b"IEND":
            return
        pos += 12 + length
