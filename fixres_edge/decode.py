"""Decode encoded images into BGR uint8 arrays sized for classification.

Three things set this apart from a plain ``cv2.imread``:

1. **Header first.** Width, height and EXIF orientation are read from the header bytes by small
   parsers (JPEG, PNG, WebP, BMP, GIF, TIFF: :mod:`fixres_edge._headers`) before anything is
   decoded, so an image above ``max_pixels`` (a decompression bomb, or just a huge scan) is
   refused before its pixels are allocated. Formats without a parser here (PNM, AVIF, JPEG 2000,
   ...) are decoded by OpenCV first and checked afterwards; OpenCV's own limit
   (``OPENCV_IO_MAX_IMAGE_PIXELS``, 2**30 pixels by default) still guards them.
2. **JPEG DCT-domain reduction.** A JPEG is decoded at 1/2, 1/4 or 1/8 size inside libjpeg
   (``cv2.IMREAD_REDUCED_COLOR_d``) when the caller says how large a short side it needs: for a
   12-megapixel photo going to a 224-pixel network this skips most of the inverse DCT and almost
   all of the memory.
3. **Orientation as a camera user expects.** For JPEG, PNG and WebP the EXIF orientation read by
   the parser here is applied after decoding (OpenCV is told to ignore it), so the full and the
   reduced paths, :func:`image_size` and :func:`load_image` always agree, whichever OpenCV
   version is installed. TIFF orientation is applied by OpenCV's TIFF reader itself.

Every decoded image is 3-channel BGR uint8: grayscale is replicated, alpha is dropped (not
composited), and 16-bit samples are mapped to 8 bits with ``round(x / 257)``.
"""
from __future__ import annotations

import operator
import os
from dataclasses import dataclass

import cv2
import numpy as np

from fixres_edge._headers import (HeaderError, jpeg_has_eoi, jpeg_scans_complete, jpeg_with_filler, parse_header_or_raise, png_chunks_fit,
                                  try_header)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "REDUCTION_FACTORS",
    "DecodeInfo",
    "image_size",
    "load_image",
    "reduction_factor",
]

#: Images above this many pixels are refused unless the caller raises ``max_pixels``
#: (90 MP: above any current phone or Pi camera sensor, far below what would exhaust a Pi's RAM).
DEFAULT_MAX_PIXELS = 90_000_000

#: JPEG DCT scaling factors OpenCV exposes (``IMREAD_REDUCED_COLOR_2/4/8``), smallest first.
REDUCTION_FACTORS = (1, 2, 4, 8)

_SUPPORTED = "JPEG, PNG, WebP, BMP, GIF, TIFF, and the other formats OpenCV reads (PNM, AVIF, JPEG 2000, ...)"

_REDUCED_FLAGS = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}

# Paths given to image_size() are read in two steps: this prefix holds the header of nearly every
# file; the rest is read only when the header does not fit in it (huge APP segments, TIFF IFDs
# stored at the end of the file).
_HEADER_PREFIX = 1 << 20


@dataclass(frozen=True)
class DecodeInfo:
    """How :func:`load_image` decoded an image.

    Attributes
    ----------
    format : str
        ``"JPEG"``, ``"PNG"``, ``"WebP"``, ``"BMP"``, ``"GIF"``, ``"TIFF"``, or ``"other"`` for
        formats decoded by OpenCV without a header parser here.
    size : tuple of int
        ``(h, w)`` of the full-resolution image after orientation.
    reduction : int
        JPEG DCT reduction factor used, one of :data:`REDUCTION_FACTORS` (1 = full decode).
    orientation : int
        EXIF orientation 1..8 found in the header and applied (1 = upright or unknown).
    """

    format: str
    size: tuple[int, int]
    reduction: int
    orientation: int


# ---------------------------------------------------------------------------------------------
# public API


def reduction_factor(height: int, width: int, min_short_side: int) -> int:
    """Largest JPEG DCT reduction that keeps the short side at least ``min_short_side``.

    libjpeg rounds reduced sizes up, so the rule is: the largest ``d`` in ``(1, 2, 4, 8)`` with
    ``ceil(min(height, width) / d) >= min_short_side``. When even ``d = 1`` is too small the
    image is decoded at full size (``1``): decoding never upsamples.

    Parameters
    ----------
    height, width : int
        Stored image size in pixels (EXIF rotation does not change the short side).
    min_short_side : int
        Short side the consumer needs, e.g. ``Preprocessor.min_short_side``.

    Returns
    -------
    int
        One of 1, 2, 4, 8.
    """
    height = _positive_int(height, "height")
    width = _positive_int(width, "width")
    min_short_side = _positive_int(min_short_side, "min_short_side")
    short = min(height, width)
    for d in reversed(REDUCTION_FACTORS[1:]):
        if -(-short // d) >= min_short_side:
            return d
    return 1


def load_image(source, *, min_short_side: int | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS,
               return_info: bool = False):
    """Decode an image to BGR uint8, JPEGs at the smallest DCT scale that still covers ``min_short_side``.

    Parameters
    ----------
    source : str, os.PathLike, bytes, bytearray, memoryview, binary file object, or numpy.ndarray
        A path; encoded bytes; an object with ``read()`` returning bytes (read to its end); or a
        1-D uint8 array of encoded bytes (as ``np.fromfile`` gives). ``bytes`` are always image
        data, never a path.
    min_short_side : int, optional
        Short side (pixels) the caller will resize from. A JPEG is then decoded at
        ``1 / reduction_factor(h, w, min_short_side)`` of its size. ``None`` decodes at full size.
        Other formats are always decoded at full size.
    max_pixels : int or None, optional
        Refuse images with more than this many pixels (``h * w`` of the stored image, before any
        reduction). Checked from the header before decoding for JPEG, PNG, WebP, BMP, GIF and TIFF;
        after decoding for other formats. ``None`` disables the check (OpenCV's own limit stays).
    return_info : bool, optional
        Also return a :class:`DecodeInfo`.

    Returns
    -------
    image : numpy.ndarray
        ``(H, W, 3)`` uint8, BGR, C-contiguous, upright per the EXIF orientation. For a reduced
        JPEG ``H, W = ceil(h / d), ceil(w / d)`` of the oriented size.
    info : DecodeInfo
        Only when ``return_info`` is true.

    Raises
    ------
    FileNotFoundError
        ``source`` is a path that does not exist.
    ValueError
        Empty, truncated, corrupt or unrecognised data, or an image above ``max_pixels``;
        the one-line message names the file (or ``image data (N bytes)``).
    TypeError
        ``source`` is none of the accepted types, or a file object opened in text mode.

    Notes
    -----
    Grayscale images are replicated to three channels; alpha is dropped without compositing
    (transparent pixels keep whatever color they store); 16-bit PNG/TIFF samples become
    ``round(x / 257)`` (OpenCV alone would truncate PNG with ``x >> 8`` but round TIFF); other
    sample types (float TIFF, ...) use OpenCV's own 8-bit conversion. A JPEG without an
    end-of-image marker after its scan data is refused as truncated: libjpeg would otherwise fill
    the missing rows with gray, or OpenCV would fail without a reason. A JPEG whose compressed data
    ends early but is closed by an end-of-image marker (a cut file with the marker appended) is
    refused as corrupt too; libjpeg's own warning line ("Corrupt JPEG data: premature end of data
    segment") still reaches stderr from the library (the ``fixres-edge`` command silences it).
    Not detected: a progressive JPEG cut inside its last scan (only the last refinement bit of the
    lower blocks is missing), and damage inside the data that libjpeg conceals as gray blocks
    without running out of data.
    """
    if min_short_side is not None:
        min_short_side = _positive_int(min_short_side, "min_short_side")
    if max_pixels is not None:
        max_pixels = _positive_int(max_pixels, "max_pixels")
    data, name = _read_source(source)
    image, info = _decode(data, name, min_short_side, max_pixels)
    return (image, info) if return_info else image


def image_size(source) -> tuple[int, int]:
    """``(h, w)`` of an image after EXIF orientation, read from its header without decoding.

    Parameters
    ----------
    source
        As for :func:`load_image`. For a path only the first megabyte is read when the header
        fits in it.

    Returns
    -------
    tuple of int
        ``(h, w)`` of the image :func:`load_image` returns at full size.

    Notes
    -----
    JPEG, PNG, WebP, BMP, GIF and TIFF sizes come from the header. Other formats are decoded by
    OpenCV to learn their size (there is no header-only size query in OpenCV).
    """
    if isinstance(source, (str, os.PathLike)):
        path = _check_path(source)
        name = _label(path)
        with open(path, "rb") as f:
            data = f.read(_HEADER_PREFIX)
            rest = f.read() if len(data) == _HEADER_PREFIX else b""
            if rest:
                # Try the prefix first; re-read only when the header does not fit in it.
                header = try_header(data, complete=False)
                if header is not None:
                    return header.oriented_size
                data += rest
    else:
        data, name = _read_source(source)
    if len(data) == 0:
        raise ValueError(f"{name}: empty file (0 bytes), not an image")
    header = parse_header_or_raise(data, name)
    if header is not None:
        return header.oriented_size
    image = _imdecode(data, cv2.IMREAD_COLOR, name, "image")
    if image is None:
        raise _not_an_image(name)
    return int(image.shape[0]), int(image.shape[1])


# ---------------------------------------------------------------------------------------------
# sources


def _read_source(source):
    """Return ``(buffer, label)``; buffer is bytes, bytearray or a byte-format memoryview."""
    if isinstance(source, (str, os.PathLike)):
        path = _check_path(source)
        # One read of the whole file: imdecode works from memory, and the bytes also serve the
        # header parse and the truncation check (no second pass over the file).
        with open(path, "rb") as f:
            return f.read(), _label(path)
    if isinstance(source, (bytes, bytearray)):
        return source, f"image data ({len(source)} bytes)"
    if isinstance(source, memoryview):
        data = source.cast("B") if source.c_contiguous else memoryview(source.tobytes())
        return data, f"image data ({data.nbytes} bytes)"
    if isinstance(source, np.ndarray):
        if source.dtype != np.uint8 or source.ndim != 1:
            raise TypeError(
                f"an array source must be 1-D uint8 encoded bytes (as np.fromfile gives); got a "
                f"{source.dtype} array of shape {source.shape}; pass decoded images to the Preprocessor directly")
        data = memoryview(np.ascontiguousarray(source))
        return data, f"image data ({data.nbytes} bytes)"
    if callable(getattr(source, "read", None)):
        raw_name = getattr(source, "name", None)
        name = _label(os.fsdecode(raw_name)) if isinstance(raw_name, (str, bytes)) else f"<{type(source).__name__}>"
        data = source.read()
        if isinstance(data, str):
            raise TypeError(f"{name}: file object is open in text mode; open it with 'rb'")
        if isinstance(data, memoryview):
            data = data.cast("B") if data.c_contiguous else memoryview(data.tobytes())
        elif not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"{name}: read() returned {type(data).__name__}, expected bytes")
        return data, name
    raise TypeError(
        "image source must be a path (str or os.PathLike), bytes, bytearray, memoryview, a binary file "
        f"object or a 1-D uint8 numpy array; got {type(source).__name__}")


def _check_path(source) -> str:
    """The path as str; ``ValueError`` naming it for paths no file can have (``open`` would say
    only "embedded null byte")."""
    path = os.fsdecode(os.fspath(source))
    if not path:
        raise ValueError("image path is empty")
    if "\x00" in path:
        raise ValueError(f"image path {path!r} contains a NUL byte")
    return path


def _label(name: str) -> str:
    # Keep error messages on one line whatever characters a file name holds.
    return name if name.isprintable() else repr(name)


# ---------------------------------------------------------------------------------------------
# decoding


def _decode(data, name: str, min_short_side: int | None, max_pixels: int | None):
    if len(data) == 0:
        raise ValueError(f"{name}: empty file (0 bytes), not an image")
    header = parse_header_or_raise(data, name)
    if header is None:
        return _decode_other(data, name, max_pixels)
    if max_pixels is not None and header.height * header.width > max_pixels:
        raise ValueError(
            f"{name}: {header.format} image of {header.width}x{header.height} pixels "
            f"({header.width * header.height / 1e6:.1f} megapixels) exceeds max_pixels={max_pixels}; "
            "pass a larger max_pixels (or None) to decode it")

    d = 1
    fmt = header.format
    if fmt == "JPEG":
        if not jpeg_has_eoi(data, header.scan_offset):
            raise ValueError(
                f"{name}: truncated JPEG (no end-of-image marker after the scan data; {len(data)} bytes)")
        if min_short_side is not None and header.dct:
            d = reduction_factor(header.height, header.width, min_short_side)
        # The parser's orientation is applied below: the same on full and reduced paths and on
        # any OpenCV version.
        flags = _REDUCED_FLAGS[d] | cv2.IMREAD_IGNORE_ORIENTATION
    elif fmt in ("PNG", "WebP"):
        if fmt == "PNG":
            try:
                png_chunks_fit(data)
            except HeaderError as exc:
                raise ValueError(f"{name}: truncated or corrupt PNG ({exc})") from None
        flags = cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH | cv2.IMREAD_IGNORE_ORIENTATION
    elif fmt == "TIFF":
        # libtiff orients TIFF pixels itself (the ignore flag has no effect on it in OpenCV 5).
        flags = cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH
    else:  # BMP, GIF: no orientation metadata, 8-bit only
        flags = cv2.IMREAD_COLOR
    image = _imdecode(data, flags, name, f"{fmt} {header.width}x{header.height}")
    if image is None:
        raise ValueError(f"{name}: corrupt or unsupported {fmt} data ({header.width}x{header.height}); "
                         "OpenCV could not decode it")
    if image.dtype != np.uint8 and image.dtype != np.uint16:
        # float/32-bit TIFF: let OpenCV choose the 8-bit mapping rather than guess a value range.
        image = _imdecode(data, flags & ~cv2.IMREAD_ANYDEPTH, name, f"{fmt} {header.width}x{header.height}")
        if image is None:
            raise ValueError(f"{name}: {fmt} sample format could not be converted to 8 bits by OpenCV")
    if fmt == "JPEG" and _jpeg_data_ends_early(data, header, flags, image):
        raise ValueError(
            f"{name}: corrupt JPEG ({header.width}x{header.height}): the compressed data ends before the "
            "image is complete (a truncated file with an end-of-image marker appended?)")
    image = _to_bgr8(image)
    if not header.oriented_by_decoder:
        image = _orient(image, header.orientation)
    info = DecodeInfo(fmt, header.oriented_size, d, header.orientation)
    return np.ascontiguousarray(image), info


def _jpeg_data_ends_early(data, header, flags: int, image: np.ndarray) -> bool:
    """True when libjpeg ran out of compressed data before the last block.

    libjpeg then fills the missing blocks with zero coefficients (flat gray, 128 in every channel,
    down to the bottom-right corner; in a progressive file the missing scans leave the image
    blurred) and only prints "Corrupt JPEG data: premature end of data segment" on stderr. The
    cheap signs are a gray bottom-right pixel or an incomplete progressive scan script; the
    proof is a second decode with filler inserted before the end-of-image marker, which differs
    only when the decoder wanted more data (a complete image skips the filler). Photos with a
    sign pay the second decode; others pay nothing.
    """
    gray_corner = image.dtype == np.uint8 and bool(np.all(image[-1, -1] == 128))
    if not gray_corner and jpeg_scans_complete(data, header):
        return False
    probe = jpeg_with_filler(data, header.scan_offset)
    if probe is None:
        return False
    try:
        again = cv2.imdecode(np.frombuffer(probe, np.uint8), flags)
    except cv2.error:
        return True  # the filler was read as image data, and broke the decoder
    return again is None or again.shape != image.shape or not np.array_equal(again, image)


def _decode_other(data, name: str, max_pixels: int | None):
    # No header parser for this format: OpenCV decodes (with its own orientation handling and
    # its own pixel limit), and max_pixels can only be checked afterwards.
    image = _imdecode(data, cv2.IMREAD_COLOR, name, "image")
    if image is None:
        raise _not_an_image(name)
    h, w = int(image.shape[0]), int(image.shape[1])
    if max_pixels is not None and h * w > max_pixels:
        raise ValueError(f"{name}: image of {w}x{h} pixels ({w * h / 1e6:.1f} megapixels) exceeds "
                         f"max_pixels={max_pixels}; pass a larger max_pixels (or None) to decode it")
    return np.ascontiguousarray(_to_bgr8(image)), DecodeInfo("other", (h, w), 1, 1)


def _not_an_image(name: str) -> ValueError:
    return ValueError(f"{name}: not a decodable image (unknown format; supported: {_SUPPORTED})")


def _imdecode(data, flags: int, name: str, what: str):
    try:
        return cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as exc:
        message = str(exc)
        if "CV_IO_MAX_IMAGE_PIXELS" in message:
            raise ValueError(
                f"{name}: {what} is above OpenCV's decode limit (environment variable "
                "OPENCV_IO_MAX_IMAGE_PIXELS, default 2**30 pixels)") from exc
        raise ValueError(f"{name}: OpenCV could not decode {what} ({_cv_reason(message)})") from exc


def _cv_reason(message: str) -> str:
    # "OpenCV(5.0.0) /path/loadsave.cpp:79: error: (-215:Assertion failed) cond in function 'f'\n"
    reason = message.split(" error: ", 1)[-1]
    return " ".join(reason.split()) or "no reason given"


def _to_bgr8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint16:
        # round(x / 257) maps 0..65535 exactly onto 0..255 (65535 / 257 = 255); x / 257 never
        # lands on .5, so the rounding mode does not matter.
        image = cv2.convertScaleAbs(image, alpha=1.0 / 257.0)
    # IMREAD_COLOR already gives 3 channels; kept for decoders that ignore the flag.
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image = image[:, :, :3]
    elif image.shape[2] == 1:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return image


# EXIF orientation -> transform that makes the stored pixels upright (EXIF 2.3, tag 0x0112).
_ORIENT = {
    2: lambda im: cv2.flip(im, 1),  # mirrored left-right
    3: lambda im: cv2.rotate(im, cv2.ROTATE_180),
    4: lambda im: cv2.flip(im, 0),  # mirrored top-bottom
    5: lambda im: cv2.transpose(im),  # mirror along the main diagonal
    6: lambda im: cv2.rotate(im, cv2.ROTATE_90_CLOCKWISE),
    7: lambda im: cv2.rotate(cv2.transpose(im), cv2.ROTATE_180),  # mirror along the anti-diagonal
    8: lambda im: cv2.rotate(im, cv2.ROTATE_90_COUNTERCLOCKWISE),
}


def _orient(image: np.ndarray, orientation: int) -> np.ndarray:
    transform = _ORIENT.get(orientation)
    return image if transform is None else transform(image)


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a positive int; got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be a positive int; got {type(value).__name__} {value!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be a positive int; got {value}")
    return value
