"""Typed launch records: everything one kernel call reads, by name, in one C struct.

The planner (``fixres_edge.preprocess``, ``fixres_edge.yuv``) describes a call with a frozen
dataclass per kernel family (:class:`InterleavedLaunch`, :class:`PillowOrderLaunch`,
:class:`YuvLaunch`, :class:`PostprocessLaunch`): arrays and scalars with named fields. :func:`pack`
turns it into a one-element numpy structured array whose layout is derived from the dataclass
fields (an array becomes its address, an int an int64, a float a float32). Each kernel entry takes
one pointer to that struct, so the same machine code is called the same way whether it was
compiled just in time or ahead of time (``fixres_edge._aot``), through ctypes, which releases
the GIL. Per call only the source and output addresses change (:class:`PackedLaunch.run`).

Scratch memory and its padding are decided here and nowhere else (:func:`interleaved_scratch_floats`
and friends), and :func:`pack` checks every array against what the kernel will read.

This module needs only numpy: a deployed process that loads the ahead-of-time kernels never
imports numba.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass

import numpy as np

# The vector taps (``_simd.quad_pair``) load 4 floats at a pixel's first channel: the last pixel
# of a blended BGR row reads one float past the row, so every blended row has this much room after it.
VECTOR_TAIL_FLOATS = 1

# Field annotations -> struct member types. Arrays are passed by address; their shapes are the
# scalar fields the kernel builds its views from (``out_h``, ``taps_x``, ...).
_ARRAY = "np.ndarray"
_MEMBER_TYPES = {_ARRAY: np.int64, "int": np.int64, "bool": np.int64, "float": np.float32}


class Array(typing.NamedTuple):
    """What an array field must be: its dtype and, from the launch's own fields, its minimum size."""

    dtype: type
    size: typing.Callable[[typing.Any], int]


def _array(dtype: type, size: typing.Callable[[typing.Any], int]):
    """Declare an array field: passed to the kernel as its address, checked by :func:`pack`."""
    return dataclasses.field(metadata={"array": Array(dtype, size)})


@dataclass(frozen=True, eq=False, kw_only=True)
class OutputSpec:
    """Where and how a kernel writes one output item (shared by the preprocessing families).

    ``out`` is written by the kernel (``(3, out_h, out_w)`` NCHW or ``(out_h, out_w, 3)`` NHWC,
    float32 or uint8); normalization is ``value * scale + bias`` per output channel (RGB).
    """

    out_h: int
    out_w: int
    out_uint8: bool
    channels_last: bool
    direct: bool  # float32 NCHW: the horizontal pass writes the output rows themselves
    clamp: bool   # filters with negative lobes: clamp to the image of [0, 255]
    s0: float
    s1: float
    s2: float
    b0: float
    b1: float
    b2: float


@dataclass(frozen=True, eq=False, kw_only=True)
class ResampleSpec(OutputSpec):
    """The per-axis tables of a resampling kernel (``fixres_edge.tables.AxisTable``): output pixel
    ``j`` of a row reads ``taps_x`` source columns from ``x_start[j]`` with ``x_weights[j]`` (all
    within ``x_lo .. x_hi``), output row ``i`` ``taps_y`` source rows from ``y_start[i]``."""

    taps_y: int
    taps_x: int
    x_lo: int
    x_hi: int
    y_start: np.ndarray = _array(np.int64, lambda r: r.out_h)
    y_weights: np.ndarray = _array(np.float32, lambda r: r.out_h * r.taps_y)
    x_start: np.ndarray = _array(np.int64, lambda r: r.out_w)
    x_weights: np.ndarray = _array(np.float32, lambda r: r.out_w * r.taps_x)
    scratch_len: int


@dataclass(frozen=True, eq=False, kw_only=True)
class InterleavedLaunch(ResampleSpec):
    """``kernels.resample.interleaved``: 8-bit interleaved pixels (BGR, RGB, BGRA, RGBA, GRAY).

    Source pixel ``(row, col, ch)`` is byte ``source_offset + row * row_stride + col * pixel_stride +
    ch * channel_stride`` of the source; ``c0, c1, c2`` are the source channels of R, G, B.
    """

    source_offset: int
    row_stride: int
    pixel_stride: int
    channel_stride: int
    channels: int
    c0: int
    c1: int
    c2: int
    scratch: np.ndarray = _array(np.float32, lambda r: interleaved_scratch_floats(r.x_hi - r.x_lo, r.channels,
                                                                                 r.out_w))


@dataclass(frozen=True, eq=False, kw_only=True)
class PillowOrderLaunch(InterleavedLaunch):
    """``kernels.resample.pillow_order``: antialiased bicubic in Pillow's pass order.

    Adds the horizontal weights in Pillow's fixed point (``x_fixed``, int32) and a
    ring of horizontally resampled rows, one slot per vertical tap (``ring``, ``ring_ids``).
    """

    x_fixed: np.ndarray = _array(np.int32, lambda r: r.out_w * r.taps_x)
    row_bytes: np.ndarray = _array(np.uint8, lambda r: (r.x_hi - r.x_lo) * r.channels)
    ring: np.ndarray = _array(np.float32, lambda r: r.taps_y * 3 * r.out_w)
    ring_ids: np.ndarray = _array(np.int64, lambda r: r.taps_y)


@dataclass(frozen=True, eq=False, kw_only=True)
class YuvLaunch(ResampleSpec):
    """``kernels.resample.yuv``: camera YUV (NV12, NV21, I420, YUYV), converted inside the pass."""

    luma_base: int
    luma_row_stride: int
    luma_pixel_stride: int
    u_base: int
    v_base: int
    chroma_row_stride: int
    chroma_pixel_stride: int
    chroma_row_shift: int
    convert_lo: int
    convert_hi: int
    scratch: np.ndarray = _array(np.float32, lambda r: yuv_scratch_floats(r.x_hi - r.x_lo, r.out_w))
    rgb_ring: np.ndarray = _array(np.uint8, lambda r: r.taps_y * 3 * (r.convert_hi - r.convert_lo))
    ring_ids: np.ndarray = _array(np.int64, lambda r: r.taps_y)


@dataclass(frozen=True, eq=False, kw_only=True)
class PostprocessLaunch:
    """``kernels.postprocess.probabilities_top_k``: softmax (or a copy) then the top-k indices.

    The source is the model's raw output (float32, ``n``) and the output the probabilities (float32,
    ``n``), both bound per call.
    """

    n: int
    k: int
    apply_softmax: bool
    indices: np.ndarray = _array(np.int64, lambda r: r.k)


# ---------------------------------------------------------------------- scratch sizes
def interleaved_scratch_floats(span_pixels: int, channels: int, out_w: int) -> int:
    """Scratch of the interleaved and Pillow-order kernels, in float32s.

    One blended source row (``span_pixels * channels``) and then either a second blended row (the
    paired BGR path) or three planar output rows; every blended row keeps
    :data:`VECTOR_TAIL_FLOATS` of room after it for the vector taps.
    """
    span = span_pixels * channels
    return span + max(span, 3 * out_w) + VECTOR_TAIL_FLOATS


def yuv_scratch_floats(span_pixels: int, out_w: int) -> int:
    """Scratch of the YUV kernel: the planar blended row (3 planes), then three planar output rows."""
    return 3 * span_pixels + 3 * out_w


# ---------------------------------------------------------------------- packing
_DTYPES: dict[type, np.dtype] = {}


def record_dtype(cls: type) -> np.dtype:
    """The C struct of a launch class: the per-call addresses first, then its fields in order."""
    dtype = _DTYPES.get(cls)
    if dtype is None:
        members = [("source", np.int64), ("source_len", np.int64), ("out", np.int64)]
        for f in dataclasses.fields(cls):
            kind = _ARRAY if "array" in f.metadata else str(f.type)
            members.append((f.name, _MEMBER_TYPES[kind]))
        dtype = _DTYPES[cls] = np.dtype(members, align=True)
    return dtype


def pack(launch) -> "PackedLaunch":
    """Check ``launch``'s arrays against what the kernel reads and lay it out as its C struct.

    Raises
    ------
    AssertionError
        When an array has the wrong dtype, is not C-contiguous or is smaller than the kernel reads:
        a planner bug, never a user error.
    """
    cls = type(launch)
    record = np.zeros(1, record_dtype(cls))
    keep = []
    for f in dataclasses.fields(cls):
        value = getattr(launch, f.name)
        spec = f.metadata.get("array")
        if spec is not None:
            needed = spec.size(launch)
            # Raised, not asserted: ``python -O`` must not let a kernel read past a buffer.
            if not (value.dtype == spec.dtype and value.flags.c_contiguous and value.size >= needed):
                raise AssertionError(
                    f"{cls.__name__}.{f.name}: {value.dtype} {value.shape} (contiguous: "
                    f"{value.flags.c_contiguous}), the kernel reads {needed} of {np.dtype(spec.dtype)}")
            keep.append(value)
            value = value.ctypes.data
        record[f.name] = value
    return PackedLaunch(record, tuple(keep))


class PackedLaunch:
    """A launch record in C layout, plus the arrays it points to (kept alive with it).

    ``bind(source, out)`` writes the per-call addresses; ``address`` is what a kernel entry takes.
    """

    __slots__ = ("record", "keep", "address", "_words")

    def __init__(self, record: np.ndarray, keep: tuple):
        self.record = record
        self.keep = keep
        self.address = record.ctypes.data
        # The first three members (source, source_len, out) as int64s: one store each per call.
        self._words = record.view(np.int64)[:3]

    def bind(self, source: np.ndarray, out: np.ndarray) -> None:
        """Point the record at this call's source bytes and output item (both kept by the caller)."""
        words = self._words
        words[0] = source.__array_interface__["data"][0]
        words[1] = source.shape[0]
        words[2] = out.__array_interface__["data"][0]
