"""Per-axis resampling tables: which source pixels, with which weights, make each output pixel.

A table covers only the output pixels inside the crop window. Every output pixel ``j`` reads a
window of ``taps`` consecutive source pixels starting at ``start[j]`` with weights
``weights[j, :]`` (zero-padded), so kernels never branch on borders: the planner has already
folded out-of-range taps onto the edge pixels (OpenCV's replicate border) or renormalized them
(Pillow's convolution). Tables are built with vectorized numpy and cached per geometry.

The filters follow their reference implementations:

* antialiased ``bilinear``/``bicubic``: Pillow's convolution resampler (``Resample.c``): the filter
  support is widened by the downscale factor, weights are sampled at source pixel centers and
  normalized, bicubic uses a = -0.5.
* non-antialiased ``bilinear``/``bicubic``: OpenCV ``INTER_LINEAR``/``INTER_CUBIC`` (half-pixel
  centers, a = -0.75, replicated border).
* ``nearest``: Pillow ``NEAREST`` (= OpenCV ``INTER_NEAREST_EXACT``): source pixel
  ``floor((j + 0.5) * scale)``, with the scale accumulated the way Pillow does.
* ``area``: OpenCV ``INTER_AREA``: exact pixel-area averaging when shrinking; when enlarging,
  OpenCV's area-aware linear weights.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "area")

# Cached tables: each is a few KB (output length x taps float32), so a few hundred are well under
# a few MB. Bounded so that a stream of odd input sizes cannot grow memory without limit.
TABLE_CACHE_SIZE = 256

_PILLOW_ONE = float(1 << 22)  # Pillow's PRECISION_BITS = 32 - 8 - 2


@dataclass(frozen=True, eq=False)
class AxisTable:
    """Resampling table of one axis.

    Attributes
    ----------
    start : ndarray of int64, shape (out_len,)
        First source index read for each output pixel.
    weights : ndarray of float32, shape (out_len, taps)
        Weights of the ``taps`` consecutive source pixels from ``start``; rows sum to 1.
    lo, hi : int
        The source span ``[lo, hi)`` that any output pixel reads (the kernels read nothing else).
    """

    start: np.ndarray
    weights: np.ndarray
    lo: int
    hi: int

    @property
    def taps(self) -> int:
        return self.weights.shape[1]

    @cached_property
    def fixed_weights(self) -> np.ndarray:
        """The weights in Pillow's fixed point: int32 in units of 2**-22, as Pillow's 8-bit passes use
        them (255 times the sum of their magnitudes stays below 2**31 for every filter here)."""
        fixed = np.rint(self.weights.astype(np.float64) * _PILLOW_ONE).astype(np.int32)
        fixed.setflags(write=False)
        return fixed

    def reversed(self, in_len: int) -> "AxisTable":
        """The same table for the axis read back to front (a view with a negative stride)."""
        start = in_len - self.taps - self.start
        return AxisTable(start, np.ascontiguousarray(self.weights[:, ::-1]), in_len - self.hi, in_len - self.lo)


def _bicubic(x: np.ndarray, a: float) -> np.ndarray:
    x = np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def _triangle(x: np.ndarray) -> np.ndarray:
    return np.maximum(1.0 - np.abs(x), 0.0)


# Filters as data (Pillow's `struct filter {fn, support}`).
_PILLOW_FILTERS = {
    "bilinear": (_triangle, 1.0),
    "bicubic": (lambda x: _bicubic(x, -0.5), 2.0),
}


def _pack(index: np.ndarray, weight: np.ndarray, in_len: int) -> AxisTable:
    """Pack per-output (index, weight) pairs into consecutive windows.

    ``index`` and ``weight`` have shape (out_len, k). Indices outside ``[0, in_len)`` are clamped
    (replicated border), duplicate indices are merged, and each row becomes a window of ``taps``
    consecutive pixels that lies fully inside the image.
    """
    out_len = index.shape[0]
    index = np.clip(index, 0, in_len - 1)
    weight = np.where(weight == 0.0, 0.0, weight)
    used = weight != 0.0
    # Rows with all-zero weights cannot happen with the filters above, but keep windows valid.
    first = np.where(used.any(axis=1), np.where(used, index, in_len).min(axis=1), 0)
    last = np.where(used.any(axis=1), np.where(used, index, -1).max(axis=1), 0)
    taps = int(max((last - first).max() + 1, 1))
    taps = min(taps, in_len)
    start = np.minimum(first, in_len - taps).astype(np.int64)
    packed = np.zeros((out_len, taps), dtype=np.float64)
    rows = np.broadcast_to(np.arange(out_len)[:, None], index.shape)
    np.add.at(packed, (rows[used], (index - start[:, None])[used]), weight[used])
    lo = int(start.min())
    hi = int((start + taps).max())
    return AxisTable(start, packed.astype(np.float32), lo, hi)


def _pillow_table(in_len, resized_len, crop_start, out_len, name) -> AxisTable:
    fn, support = _PILLOW_FILTERS[name]
    scale = in_len / resized_len
    filterscale = max(scale, 1.0)
    support = support * filterscale
    j = np.arange(crop_start, crop_start + out_len, dtype=np.float64)
    center = (j + 0.5) * scale
    # C's (int) truncates toward zero; negatives are clamped to 0 right after, as Pillow does.
    xmin = np.maximum(np.trunc(center - support + 0.5), 0).astype(np.int64)
    xmax = np.minimum(np.trunc(center + support + 0.5), in_len).astype(np.int64)
    k = int((xmax - xmin).max())
    offsets = np.arange(k)
    index = xmin[:, None] + offsets[None, :]
    inside = offsets[None, :] < (xmax - xmin)[:, None]
    weight = np.where(inside, fn((index - center[:, None] + 0.5) / filterscale), 0.0)
    total = weight.sum(axis=1, keepdims=True)
    weight = weight / np.where(total == 0.0, 1.0, total)
    if name == "bicubic":
        # Pillow rounds coefficients to 22 fractional bits (half away from zero) and rounds the
        # 8-bit intermediate between its passes; with bicubic's overshoot, matching its
        # coefficients keeps ties at .5 resolving the same way.
        weight = np.sign(weight) * np.floor(np.abs(weight) * _PILLOW_ONE + 0.5) / _PILLOW_ONE
    return _pack(index, weight, in_len)


def _opencv_source_coord(crop_start, out_len, in_len, resized_len) -> np.ndarray:
    # OpenCV: fx = (float)((dx + 0.5) * scale_x - 0.5) with scale_x = 1 / (dsize / ssize).
    scale = 1.0 / (resized_len / in_len)
    dx = np.arange(crop_start, crop_start + out_len, dtype=np.float64)
    return ((dx + 0.5) * scale - 0.5).astype(np.float32).astype(np.float64)


def _opencv_linear_table(in_len, resized_len, crop_start, out_len) -> AxisTable:
    src = _opencv_source_coord(crop_start, out_len, in_len, resized_len)
    left = np.floor(src)
    frac = src - left
    left = left.astype(np.int64)
    # OpenCV pins coordinates before the first / after the last pixel center to that pixel.
    frac = np.where(left < 0, 0.0, frac)
    left = np.maximum(left, 0)
    frac = np.where(left >= in_len - 1, 0.0, frac)
    left = np.minimum(left, in_len - 1)
    index = np.stack([left, left + 1], axis=1)
    weight = np.stack([1.0 - frac, frac], axis=1)
    return _pack(index, weight, in_len)


def _opencv_cubic_table(in_len, resized_len, crop_start, out_len) -> AxisTable:
    src = _opencv_source_coord(crop_start, out_len, in_len, resized_len)
    left = np.floor(src)
    frac = src - left
    index = left.astype(np.int64)[:, None] + np.arange(-1, 3)[None, :]
    weight = _bicubic(frac[:, None] - np.arange(-1, 3)[None, :], -0.75)
    return _pack(index, weight, in_len)


def _pillow_nearest_table(in_len, resized_len, crop_start, out_len) -> AxisTable:
    # Pillow scales with an affine map whose source coordinate is accumulated in double,
    # x_j = scale * 0.5 + j * scale (summed step by step), and truncated.
    scale = in_len / resized_len
    steps = np.full(crop_start + out_len, scale, dtype=np.float64)
    steps[0] = scale * 0.5
    coord = np.add.accumulate(steps)[crop_start:]
    index = np.minimum(coord.astype(np.int64), in_len - 1)[:, None]
    return _pack(index, np.ones_like(index, dtype=np.float64), in_len)


def _opencv_area_table(in_len, resized_len, crop_start, out_len, shrinking: bool) -> AxisTable:
    scale = in_len / resized_len
    if not shrinking:
        # OpenCV's INTER_AREA when enlarging: linear taps whose fraction is the part of the
        # output pixel that falls past the source pixel boundary.
        inv_scale = resized_len / in_len
        dx = np.arange(crop_start, crop_start + out_len, dtype=np.float64)
        left = np.floor(dx * (1.0 / inv_scale)).astype(np.int64)
        frac = ((dx + 1) - (left + 1) * inv_scale).astype(np.float32).astype(np.float64)
        frac = np.where(frac <= 0, 0.0, frac - np.floor(frac))
        frac = np.where(left >= in_len - 1, 0.0, frac)
        left = np.minimum(left, in_len - 1)
        index = np.stack([left, left + 1], axis=1)
        weight = np.stack([1.0 - frac, frac], axis=1)
        return _pack(index, weight, in_len)
    # Shrinking: the exact overlap of each output cell [j*scale, (j+1)*scale) with source pixels.
    j = np.arange(crop_start, crop_start + out_len, dtype=np.float64)
    cell_lo = j * scale
    cell_hi = cell_lo + scale
    first = np.floor(cell_lo).astype(np.int64)
    k = int(math.ceil(scale)) + 1
    index = first[:, None] + np.arange(k)[None, :]
    overlap = np.minimum(index + 1, np.minimum(cell_hi, in_len)[:, None]) - np.maximum(index, cell_lo[:, None])
    overlap = np.where(index < in_len, np.maximum(overlap, 0.0), 0.0)
    # OpenCV ignores slivers under 1e-3 of a pixel and divides by the cell width inside the image.
    overlap = np.where(overlap > 1e-3, overlap, 0.0)
    weight = overlap / overlap.sum(axis=1, keepdims=True)
    return _pack(index, weight, in_len)


@lru_cache(maxsize=TABLE_CACHE_SIZE)
def axis_table(in_len: int, resized_len: int, crop_start: int, out_len: int,
               interpolation: str, antialias: bool, area_shrinking: bool = True) -> AxisTable:
    """Table for output pixels ``crop_start .. crop_start + out_len`` of a resize to ``resized_len``.

    Parameters
    ----------
    in_len : int
        Source length along this axis.
    resized_len : int
        Length of the (virtual) resized axis.
    crop_start, out_len : int
        The crop window on the resized axis.
    interpolation : {"bilinear", "bicubic", "nearest", "area"}
    antialias : bool
        Widen the filter when shrinking (Pillow). Only bilinear and bicubic use it.
    area_shrinking : bool
        For "area": whether the whole resize shrinks (OpenCV switches formulas on both axes at once).

    Returns
    -------
    AxisTable
        Cached; treat its arrays as read-only.
    """
    if in_len == resized_len:
        # No resampling on this axis: a one-tap copy (exact).
        index = np.arange(crop_start, crop_start + out_len, dtype=np.int64)[:, None]
        table = _pack(index, np.ones_like(index, dtype=np.float64), in_len)
    elif interpolation == "nearest":
        table = _pillow_nearest_table(in_len, resized_len, crop_start, out_len)
    elif interpolation == "area":
        table = _opencv_area_table(in_len, resized_len, crop_start, out_len, area_shrinking)
    elif antialias:
        table = _pillow_table(in_len, resized_len, crop_start, out_len, interpolation)
    elif interpolation == "bilinear":
        table = _opencv_linear_table(in_len, resized_len, crop_start, out_len)
    else:
        table = _opencv_cubic_table(in_len, resized_len, crop_start, out_len)
    table.start.setflags(write=False)
    table.weights.setflags(write=False)
    return table

