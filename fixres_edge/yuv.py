"""Camera YUV frames: validate the buffer, locate the planes, plan luma and chroma tables.

Layouts (``H`` x ``W`` image, ``S`` = row stride in bytes, ``S >= W``):

* NV12 / NV21: a ``(H * 3 // 2, W)`` array; rows ``0..H`` are Y, then ``H / 2`` rows of interleaved
  UV (NV12) or VU (NV21) at the same stride.
* I420 (YUV420 planar, what picamera2's "YUV420" gives): Y rows at stride ``S``, then the U plane
  and the V plane, each ``H / 2`` rows of ``W / 2`` bytes at stride ``S / 2``. With padded rows,
  pass the whole ``(H * 3 // 2, S)`` buffer and ``width=W``.
* YUYV (YUY2, 4:2:2 packed): a ``(H, W, 2)`` array ``Y0 U Y1 V ...``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class YuvPlanes:
    """Where the planes of one frame sit inside one flat byte view."""

    flat: np.ndarray
    height: int
    width: int
    luma_base: int
    luma_row_stride: int
    luma_pixel_stride: int
    u_base: int
    v_base: int
    chroma_row_stride: int
    chroma_pixel_stride: int
    chroma_height: int
    chroma_width: int


def _flat_view(image: np.ndarray, extent: int) -> np.ndarray:
    """A 1-D byte view of ``extent`` bytes from the array's first byte (no copy)."""
    return np.lib.stride_tricks.as_strided(image, shape=(extent,), strides=(1,), writeable=False)


def locate_planes(image, fmt: str, width: int | None = None) -> YuvPlanes:
    """Validate a YUV frame and describe its planes.

    Raises
    ------
    TypeError, ValueError
        With the expected shape for ``fmt`` when the array does not fit it.
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy uint8 array for input_format {fmt!r}, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"image dtype must be uint8 for input_format {fmt!r}, got {image.dtype}")
    if fmt == "YUYV":
        if width is not None:
            raise ValueError("width= is for planar YUV frames (NV12, NV21, I420); a YUYV array's width is its own")
        if image.ndim != 3 or image.shape[2] != 2 or image.shape[1] % 2 or 0 in image.shape:
            raise ValueError(f"input_format 'YUYV' expects an (H, W, 2) array with even W, got shape {image.shape}")
        if image.strides[2] != 1 or image.strides[1] != 2 or image.strides[0] <= 0:
            raise ValueError("input_format 'YUYV' needs rows of contiguous pixels (a row-padded view is fine)")
        h, w = image.shape[:2]
        stride = image.strides[0]
        extent = (h - 1) * stride + 2 * w
        return YuvPlanes(_flat_view(image, extent), h, w, 0, stride, 2, 1, 3, stride, 4, h, w // 2)
    expected = f"an (H * 3 // 2, W) array with even H and W for input_format {fmt!r}"
    if image.ndim != 2 or image.shape[0] % 3 or 0 in image.shape:
        raise ValueError(f"expected {expected}, got shape {image.shape}")
    if image.strides[1] != 1 or image.strides[0] <= 0:
        raise ValueError(f"input_format {fmt!r} needs rows of contiguous bytes (a row-padded view is fine)")
    h = image.shape[0] * 2 // 3
    if width is not None and (isinstance(width, bool) or not isinstance(width, (int, np.integer))):
        raise TypeError(f"width must be an int (the image width in pixels), got {width!r}")
    w = image.shape[1] if width is None else int(width)
    if h % 2 or w % 2 or not 0 < w <= image.shape[1]:
        raise ValueError(f"expected {expected} (width <= {image.shape[1]}), got shape {image.shape}"
                         + ("" if width is None else f" and width={width}"))
    stride = image.strides[0]
    available = (image.shape[0] - 1) * stride + image.shape[1]
    if fmt in ("NV12", "NV21"):
        chroma = h * stride
        u_base, v_base = (chroma, chroma + 1) if fmt == "NV12" else (chroma + 1, chroma)
        return YuvPlanes(_flat_view(image, available), h, w, 0, stride, 1, u_base, v_base, stride, 2, h // 2, w // 2)
    # I420: chroma planes at half the luma stride.
    if stride % 2:
        raise ValueError(f"input_format 'I420' needs an even row stride, got {stride}")
    half = stride // 2
    u_base = h * stride
    v_base = u_base + (h // 2) * half
    needed = v_base + (h // 2 - 1) * half + w // 2
    if needed > available:
        raise ValueError("I420 frame with padded rows: pass the whole (H * 3 // 2, stride) buffer and width=W "
                         "instead of a column slice")
    return YuvPlanes(_flat_view(image, available), h, w, 0, stride, 1, u_base, v_base, half, 1, h // 2, w // 2)


def run_yuv(pre, image, out: np.ndarray, fmt: str, width: int | None = None) -> None:
    """Preprocess one YUV frame into ``out`` (one item of the batch) with ``pre``'s configuration.

    Frames of one camera stream share their layout, so the launch is prepared once per layout
    (``Preprocessor.cached_launch``) and a frame costs the validation and the kernel.
    """
    planes = locate_planes(image, fmt, width)
    layout = tuple(getattr(planes, f.name) for f in dataclasses.fields(planes) if f.name != "flat")
    launch = pre.cached_launch((fmt, layout), lambda: _prepare(pre, planes))
    launch.run(planes.flat, out)


def _prepare(pre, planes: YuvPlanes):
    """The launch of the YUV kernel for ``planes``' layout (one thread's scratch)."""
    from fixres_edge.kernels import launch

    plan = pre.plan(planes.height, planes.width)
    g = plan.geometry
    # Rows are converted from an even column so that pixel pairs share their chroma sample.
    convert_lo = plan.x.lo & ~1
    convert_hi = min((plan.x.hi + 1) & ~1, planes.width)
    taps_y = plan.y.taps
    scratch = pre.workspace("rows", launch.yuv_scratch_floats(plan.x.hi - plan.x.lo, g.out_w), np.float32)
    record = launch.YuvLaunch(
        **pre.resample_fields(plan, scratch),
        luma_base=planes.luma_base, luma_row_stride=planes.luma_row_stride,
        luma_pixel_stride=planes.luma_pixel_stride, u_base=planes.u_base, v_base=planes.v_base,
        chroma_row_stride=planes.chroma_row_stride, chroma_pixel_stride=planes.chroma_pixel_stride,
        # 4:2:0 chroma rows are shared by two luma rows; 4:2:2 (YUYV) has one per row.
        chroma_row_shift=1 if planes.chroma_height * 2 == planes.height else 0,
        convert_lo=convert_lo, convert_hi=convert_hi,
        # One ring slot of converted RGB rows per vertical tap.
        rgb_ring=pre.workspace("yuv_rgb_ring", taps_y * 3 * (convert_hi - convert_lo), np.uint8),
        ring_ids=pre.workspace("ring_ids", taps_y, np.int64))
    return pre.bind("yuv", record)
