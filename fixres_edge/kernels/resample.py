"""Fused resample + color + normalize + layout kernels, one entry per family: ``interleaved``
(8-bit BGR, RGB, BGRA, RGBA, GRAY), ``pillow_order`` (antialiased bicubic, Pillow's pass order)
and ``yuv`` (camera NV12, NV21, I420, YUYV). One file, because Numba's cache only notices edits
to a kernel's own file and the families share the horizontal pass.

Each entry takes one pointer to its launch record (``fixres_edge.kernels.launch``: the planner
filled it, field by field), makes array views of what the record points to, and only loops: it
decides nothing about geometry. Entries are C functions (``numba.cfunc``), compiled just in time
or ahead of time into a native module (``fixres_edge._aot``), and called through ctypes, which
releases the GIL. They run on the calling thread.

Per output row the interleaved kernel does two passes:

1. vertical: the source rows under the row's filter window are blended into one float32 row,
   over the contiguous source bytes of the columns the crop needs (``x_lo .. x_hi``). Up to four
   taps are fused per pass so the row buffer is loaded and stored once per four taps.
2. horizontal: each output pixel gathers its taps from that row, picks the channels in output
   order, applies ``value * scale + bias`` (normalization, or identity for uint8 output) and
   writes NCHW or NHWC.

The most common case (a BGR photo to float32 NCHW with 2 to 4 taps per axis) runs output rows
in pairs (``_bgr_row_pairs``): the horizontal pass is bound by loads, so a pair loads each output
pixel's index and weights once for two rows, and each tap's three channels come in one 4-float
vector load, four output pixels at a time (``_simd.quad_pair``).

Source pixels are addressed as ``flat[base + row * row_stride + col * pixel_stride + ch * channel_stride]``
so any strided view (crops, padded camera rows, flipped or channel-reversed views) is read in
place. The common case (pixel-contiguous rows) takes a vectorizable path.
"""
from __future__ import annotations

import numpy as np

from fixres_edge._jit import entry, helper
from fixres_edge.kernels import launch
from fixres_edge.kernels._simd import intrinsics, quad_pair

try:
    from numba import carray
except ImportError:  # pragma: no cover - numba is a dependency; this keeps the module importable for docs
    carray = None

pointer, record_at = intrinsics()


def _interleaved(address):
    """Interleaved 8-bit pixels -> one output item (see the module docstring for the passes)."""
    r = record_at(address)
    out_h = r.out_h
    out_w = r.out_w
    channels = r.channels
    flat, y_start, y_weights, x_start, x_weights, scratch, planar = _views(r)
    base = r.source_offset
    row_stride = r.row_stride
    x_lo = r.x_lo
    taps_y = r.taps_y
    span = (r.x_hi - x_lo) * channels
    contiguous_pixels = r.pixel_stride == channels and r.channel_stride == 1
    bgr = channels == 3 and r.c0 == 2 and r.c1 == 1 and r.c2 == 0
    s0, s1, s2, b0, b1, b2 = r.s0, r.s1, r.s2, r.b0, r.b1, r.b2
    direct = r.direct != 0
    row = scratch
    y = 0
    if direct and bgr and contiguous_pixels and 2 <= taps_y <= 4 and 2 <= r.taps_x <= 4 and out_w >= 4:
        # The most common case (a BGR photo to float32 NCHW, shrunk up to about 2.3x with
        # antialiasing or any amount without: 2 to 4 taps per axis) in pairs of output rows
        # with vector taps: about 1.7x faster over the whole kernel than the generic loops
        # below, which measured no gain from pairing alone.
        y = _bgr_row_pairs(row, scratch[span:], flat, base, row_stride, x_lo, span, y_start,
                           y_weights, x_start, x_weights, s0, s1, s2, b0, b1, b2, planar, out_h)
        if r.clamp:
            # Filters with negative lobes (bicubic without antialiasing) overshoot [0, 255].
            for i in range(y):
                _clamp_rows(planar[0, i], planar[1, i], planar[2, i], s0, s1, s2, b0, b1, b2)
    for y in range(y, out_h):
        first_row = base + y_start[y] * row_stride
        # ---- vertical pass: row[0:span] = sum_k w_k * source_row(y_start + k)[x_lo:x_hi]
        if contiguous_pixels:
            offset = first_row + x_lo * channels
            for k0 in range(0, taps_y, 4):
                _blend_rows(row, span, flat, offset + k0 * row_stride, row_stride, y_weights[y],
                            k0, min(4, taps_y - k0), k0 == 0)
        else:
            for x in range(x_lo, r.x_hi):
                for c in range(channels):
                    pixel = first_row + x * r.pixel_stride + c * r.channel_stride
                    acc = np.float32(0.0)
                    for k in range(taps_y):
                        acc += y_weights[y, k] * flat[pixel + k * row_stride]
                    row[(x - x_lo) * channels + c] = acc
        # ---- horizontal pass: taps gathered per output pixel, channels picked in RGB order,
        # normalization fused; float32 NCHW output is written in place.
        a0, a1, a2 = _output_rows(planar, scratch, direct, span, out_w, y)
        if bgr:
            # The common case (OpenCV's BGR to RGB) with literal offsets: once inlined, the
            # loads take immediate displacements (about 15 % faster than runtime offsets).
            _horizontal(row, x_start, x_lo, x_weights, np.uint64(3), np.uint64(2), np.uint64(1),
                        np.uint64(0), s0, s1, s2, b0, b1, b2, a0, a1, a2)
        else:
            _horizontal(row, x_start, x_lo, x_weights, np.uint64(channels), np.uint64(r.c0), np.uint64(r.c1),
                        np.uint64(r.c2), s0, s1, s2, b0, b1, b2, a0, a1, a2)
        if r.clamp and not r.out_uint8:
            _clamp_rows(a0, a1, a2, s0, s1, s2, b0, b1, b2)
        if not direct:
            _store(a0, a1, a2, r, y)


def _pillow_order(address):
    """Pillow's order for filters with negative lobes (antialiased bicubic): horizontal pass first.

    Pillow resamples horizontally first and stores that pass as 8-bit (rounded, clipped to
    0..255) before the vertical pass; with bicubic's overshoot the clipping changes results by up
    to 20 levels, so matching Pillow needs the same order. Each source row the vertical filter
    needs is resampled horizontally once into a small ring of rows (one slot per vertical tap)
    in Pillow's own fixed-point arithmetic (``x_fixed``: weights in units of 2**-22), so ties at
    .5 round as in Pillow, then the vertical taps blend the ring in float32.
    """
    r = record_at(address)
    out_h = r.out_h
    out_w = r.out_w
    channels = r.channels
    taps_y = r.taps_y
    flat, y_start, y_weights, x_start, _, row, planar = _views(r)
    x_fixed = carray(pointer(r.x_fixed, np.int32), (out_w, r.taps_x))
    row_bytes = carray(pointer(r.row_bytes, np.uint8), ((r.x_hi - r.x_lo) * channels,))
    width3 = 3 * out_w
    slots = carray(pointer(r.ring, np.float32), (taps_y * width3,))
    ids = carray(pointer(r.ring_ids, np.int64), (taps_y,))
    x_lo = r.x_lo
    span = (r.x_hi - x_lo) * channels
    contiguous_pixels = r.pixel_stride == channels and r.channel_stride == 1
    c0 = np.uint64(r.c0)
    c1 = np.uint64(r.c1)
    c2 = np.uint64(r.c2)
    nil = np.float32(0.0)
    direct = r.direct != 0
    for slot in range(taps_y):
        ids[slot] = -1
    for y in range(out_h):
        a0, a1, a2 = _output_rows(planar, row, direct, span, out_w, y)
        for k in range(taps_y):
            source_row = y_start[y] + k
            slot = source_row % taps_y
            resampled = slots[slot * width3:(slot + 1) * width3]
            if ids[slot] != source_row:
                # One source row's bytes (copied only when its pixels are not contiguous), then the
                # horizontal taps into three planar rows.
                first = r.source_offset + source_row * r.row_stride
                if contiguous_pixels:
                    src = flat[first + x_lo * channels:first + x_lo * channels + span]
                else:
                    src = row_bytes
                    for x in range(x_lo, r.x_hi):
                        for c in range(channels):
                            src[(x - x_lo) * channels + c] = flat[first + x * r.pixel_stride + c * r.channel_stride]
                _horizontal_fixed(src, x_start, x_lo, x_fixed, channels, c0, c1, c2, resampled, out_w)
                ids[slot] = source_row
            w = y_weights[y, k]
            if k == 0:
                for j in range(out_w):
                    a0[j] = w * resampled[j]
                    a1[j] = w * resampled[out_w + j]
                    a2[j] = w * resampled[2 * out_w + j]
            else:
                for j in range(out_w):
                    a0[j] += w * resampled[j]
                    a1[j] += w * resampled[out_w + j]
                    a2[j] += w * resampled[2 * out_w + j]
        if not r.out_uint8:
            s0, s1, s2, b0, b1, b2 = r.s0, r.s1, r.s2, r.b0, r.b1, r.b2
            for j in range(out_w):
                a0[j] = min(max(a0[j], nil), np.float32(255.0)) * s0 + b0
                a1[j] = min(max(a1[j], nil), np.float32(255.0)) * s1 + b1
                a2[j] = min(max(a2[j], nil), np.float32(255.0)) * s2 + b2
        if not direct:
            _store(a0, a1, a2, r, y)


def _yuv(address):
    """Camera YUV (NV12, NV21, I420, YUYV) -> resampled, normalized RGB tensor.

    Each source row the vertical filter needs is converted to 8-bit RGB once (BT.601 limited
    range in OpenCV's fixed point, chroma repeated over 2 pixels as OpenCV does) into a small
    ring of planar rows (``rgb_ring``: one slot per vertical tap), then resampled. The result
    matches ``cv2.cvtColor`` followed by resampling, without a full-size RGB frame.
    """
    r = record_at(address)
    out_h = r.out_h
    out_w = r.out_w
    taps_y = r.taps_y
    flat, y_start, y_weights, x_start, x_weights, scratch, planar = _views(r)
    convert_lo = r.convert_lo
    # Ring slots and the blended row are planar (R, G, B planes): conversion loops then store
    # with unit stride, and the shared horizontal pass reads planes with step 1.
    width = r.convert_hi - convert_lo
    converted = 3 * width
    slots = carray(pointer(r.rgb_ring, np.uint8), (taps_y * converted,))
    ids = carray(pointer(r.ring_ids, np.int64), (taps_y,))
    x_lo = r.x_lo
    skip = x_lo - convert_lo
    plane = r.x_hi - x_lo
    span = 3 * plane
    s0, s1, s2, b0, b1, b2 = r.s0, r.s1, r.s2, r.b0, r.b1, r.b2
    direct = r.direct != 0
    row = scratch
    for slot in range(taps_y):
        ids[slot] = -1
    for y in range(out_h):
        for k in range(taps_y):
            source_row = y_start[y] + k
            slot = source_row % taps_y
            rgb = slots[slot * converted:(slot + 1) * converted]
            if ids[slot] != source_row:
                chroma_row = source_row >> r.chroma_row_shift
                chroma_offset = chroma_row * r.chroma_row_stride + (convert_lo >> 1) * r.chroma_pixel_stride
                _convert_yuv_row(rgb, width, flat,
                                 r.luma_base + source_row * r.luma_row_stride + convert_lo * r.luma_pixel_stride,
                                 r.luma_pixel_stride, r.u_base + chroma_offset, r.v_base + chroma_offset,
                                 r.chroma_pixel_stride)
                ids[slot] = source_row
            w = y_weights[y, k]
            for c in range(3):
                window = rgb[c * width + skip:c * width + skip + plane]
                target = row[c * plane:(c + 1) * plane]
                if k == 0:
                    for i in range(plane):
                        target[i] = w * window[i]
                else:
                    for i in range(plane):
                        target[i] += w * window[i]
        a0, a1, a2 = _output_rows(planar, scratch, direct, span, out_w, y)
        _horizontal(row, x_start, x_lo, x_weights, np.uint64(1), np.uint64(0), np.uint64(plane),
                    np.uint64(2 * plane), s0, s1, s2, b0, b1, b2, a0, a1, a2)
        if r.clamp and not r.out_uint8:
            _clamp_rows(a0, a1, a2, s0, s1, s2, b0, b1, b2)
        if not direct:
            _store(a0, a1, a2, r, y)


def _views(r):
    """Array views of what a resampling record (``launch.ResampleSpec``) points to: the source bytes,
    the per-axis tables, the scratch row and the output as float32 planes (read only when direct)."""
    out_h = r.out_h
    out_w = r.out_w
    return (carray(pointer(r.source, np.uint8), (r.source_len,)),
            carray(pointer(r.y_start, np.int64), (out_h,)),
            carray(pointer(r.y_weights, np.float32), (out_h, r.taps_y)),
            carray(pointer(r.x_start, np.int64), (out_w,)),
            carray(pointer(r.x_weights, np.float32), (out_w, r.taps_x)),
            carray(pointer(r.scratch, np.float32), (r.scratch_len,)),
            carray(pointer(r.out, np.float32), (3, out_h, out_w)))


def _store(a0, a1, a2, r, y):
    """Round (uint8 output) and write output row ``y`` in the record's layout and dtype."""
    shape = (r.out_h, r.out_w, 3) if r.channels_last else (3, r.out_h, r.out_w)
    if r.out_uint8:
        _store_row(a0, a1, a2, True, r.channels_last != 0, carray(pointer(r.out, np.uint8), shape), y)
    else:
        _store_row(a0, a1, a2, False, r.channels_last != 0, carray(pointer(r.out, np.float32), shape), y)


def _bgr_row_pairs(row, row_next, flat, base, row_stride, x_lo, span, y_start, y_weights, x_start, x_weights,
                   s0, s1, s2, b0, b1, b2, planar, out_h):
    """Output rows two at a time: BGR source, 2 to 4 taps per axis, float32 NCHW output.

    Each pixel's index and weights are loaded once for two rows (the horizontal pass is bound by
    loads), and the channel offsets are literals (immediate displacements). Compiled as a function
    of its own: inlined into the kernel, the same loops measured about 8 % slower.
    Returns the first row not done (``out_h - 1`` when out_h is odd).
    """
    taps_y = y_weights.shape[1]
    y = 0
    while y + 1 < out_h:
        for k in range(2):
            # _blend_rows(target, ..., 0, taps_y, True) with the loops written out: calling it
            # here measured 2-3 % slower on 3-tap photos (77.5 vs 75 us per kernel call).
            target = row if k == 0 else row_next
            offset = base + y_start[y + k] * row_stride + x_lo * 3
            weights = y_weights[y + k]
            v0 = flat[offset:offset + span]
            v1 = flat[offset + row_stride:offset + row_stride + span]
            w0 = weights[0]
            w1 = weights[1]
            if taps_y == 2:
                for i in range(span):
                    target[i] = w0 * v0[i] + w1 * v1[i]
            elif taps_y == 3:
                v2 = flat[offset + 2 * row_stride:offset + 2 * row_stride + span]
                w2 = weights[2]
                for i in range(span):
                    target[i] = w0 * v0[i] + w1 * v1[i] + w2 * v2[i]
            else:
                v2 = flat[offset + 2 * row_stride:offset + 2 * row_stride + span]
                v3 = flat[offset + 3 * row_stride:offset + 3 * row_stride + span]
                w2 = weights[2]
                w3 = weights[3]
                for i in range(span):
                    target[i] = w0 * v0[i] + w1 * v1[i] + w2 * v2[i] + w3 * v3[i]
        _horizontal_bgr_pair(row, row_next, x_start, x_lo, x_weights, s0, s1, s2, b0, b1, b2,
                             planar[0, y], planar[1, y], planar[2, y],
                             planar[0, y + 1], planar[1, y + 1], planar[2, y + 1])
        y += 2
    return y


def _horizontal_bgr_pair(row, row_next, x_start, x_lo, x_weights, s0, s1, s2, b0, b1, b2, a0, a1, a2, d0, d1, d2):
    """Horizontal taps (2 to 4) of two blended BGR rows into two RGB output rows (at least 4 wide).

    Four output pixels at a time (``_quad_pair``): each tap of each pixel is one 4-float vector
    load (its B, G, R and one unused float) times the broadcast weight, so a pixel costs 3 loads
    instead of 9 scalar ones (the pass is bound by loads), and the four results are transposed so
    that each channel is normalized and stored as one 4-wide vector.
    """
    out_w = x_start.shape[0]
    taps = x_weights.shape[1]
    for q in range(0, out_w, 4):
        # The last group overlaps the one before when out_w is not a multiple of 4 (same values).
        j = min(q, out_w - 4)
        p0 = np.uint64((x_start[j] - x_lo) * 3)
        p1 = np.uint64((x_start[j + 1] - x_lo) * 3)
        p2 = np.uint64((x_start[j + 2] - x_lo) * 3)
        p3 = np.uint64((x_start[j + 3] - x_lo) * 3)
        at = np.uint64(j)
        if taps == 2:
            _quad_pair2(row, row_next, p0, p1, p2, p3, x_weights, at, s0, s1, s2, b0, b1, b2, a0, a1, a2, d0, d1, d2)
        elif taps == 3:
            _quad_pair3(row, row_next, p0, p1, p2, p3, x_weights, at, s0, s1, s2, b0, b1, b2, a0, a1, a2, d0, d1, d2)
        else:
            _quad_pair4(row, row_next, p0, p1, p2, p3, x_weights, at, s0, s1, s2, b0, b1, b2, a0, a1, a2, d0, d1, d2)


def _horizontal(row, x_start, x_lo, x_weights, step, c0, c1, c2, s0, s1, s2, b0, b1, b2, a0, a1, a2):
    """a_c[j] = (sum_k w[j, k] * row[(x_start[j] - x_lo + k) * step + c_c]) * s_c + b_c for c = 0, 1, 2.

    Unsigned indices spare Numba's negative-index wraparound checks, and the common tap counts
    are unrolled: together about 2x faster than one generic loop.
    """
    out_w = x_start.shape[0]
    taps_x = x_weights.shape[1]
    channels = np.int64(step)
    if taps_x == 1:
        for j in range(out_w):
            p = np.uint64((x_start[j] - x_lo) * channels)
            w0 = x_weights[j, 0]
            a0[j] = (w0 * row[p + c0]) * s0 + b0
            a1[j] = (w0 * row[p + c1]) * s1 + b1
            a2[j] = (w0 * row[p + c2]) * s2 + b2
    elif taps_x == 2:
        for j in range(out_w):
            p = np.uint64((x_start[j] - x_lo) * channels)
            q = p + step
            w0 = x_weights[j, 0]
            w1 = x_weights[j, 1]
            a0[j] = (w0 * row[p + c0] + w1 * row[q + c0]) * s0 + b0
            a1[j] = (w0 * row[p + c1] + w1 * row[q + c1]) * s1 + b1
            a2[j] = (w0 * row[p + c2] + w1 * row[q + c2]) * s2 + b2
    elif taps_x == 3:
        for j in range(out_w):
            p = np.uint64((x_start[j] - x_lo) * channels)
            q = p + step
            r = q + step
            w0 = x_weights[j, 0]
            w1 = x_weights[j, 1]
            w2 = x_weights[j, 2]
            a0[j] = (w0 * row[p + c0] + w1 * row[q + c0] + w2 * row[r + c0]) * s0 + b0
            a1[j] = (w0 * row[p + c1] + w1 * row[q + c1] + w2 * row[r + c1]) * s1 + b1
            a2[j] = (w0 * row[p + c2] + w1 * row[q + c2] + w2 * row[r + c2]) * s2 + b2
    elif taps_x == 4:
        for j in range(out_w):
            p = np.uint64((x_start[j] - x_lo) * channels)
            q = p + step
            r = q + step
            t = r + step
            w0 = x_weights[j, 0]
            w1 = x_weights[j, 1]
            w2 = x_weights[j, 2]
            w3 = x_weights[j, 3]
            a0[j] = (w0 * row[p + c0] + w1 * row[q + c0] + w2 * row[r + c0] + w3 * row[t + c0]) * s0 + b0
            a1[j] = (w0 * row[p + c1] + w1 * row[q + c1] + w2 * row[r + c1] + w3 * row[t + c1]) * s1 + b1
            a2[j] = (w0 * row[p + c2] + w1 * row[q + c2] + w2 * row[r + c2] + w3 * row[t + c2]) * s2 + b2
    else:
        for j in range(out_w):
            p = np.uint64((x_start[j] - x_lo) * channels)
            v0 = np.float32(0.0)
            v1 = np.float32(0.0)
            v2 = np.float32(0.0)
            for k in range(taps_x):
                w = x_weights[j, k]
                v0 += w * row[p + c0]
                v1 += w * row[p + c1]
                v2 += w * row[p + c2]
                p += step
            a0[j] = v0 * s0 + b0
            a1[j] = v1 * s1 + b1
            a2[j] = v2 * s2 + b2


def _output_rows(planar, scratch_row, direct, span, out_w, y):
    """Where the three channels of output row ``y`` are accumulated.

    float32 NCHW output (``direct``): the output rows themselves. Otherwise three planar float32
    rows in the chunk's scratch after its blended source row (``span`` floats), which the store
    step rounds and/or interleaves into ``out``.
    """
    if direct:
        return planar[0, y], planar[1, y], planar[2, y]
    return (scratch_row[span:span + out_w], scratch_row[span + out_w:span + 2 * out_w],
            scratch_row[span + 2 * out_w:span + 3 * out_w])


def _store_row(a0, a1, a2, quantize, channels_last, out, y):
    n = a0.shape[0]
    if quantize:
        # Round half up and saturate, as Pillow and OpenCV do for 8-bit output.
        for j in range(n):
            a0[j] = min(max(a0[j] + np.float32(0.5), np.float32(0.0)), np.float32(255.0))
            a1[j] = min(max(a1[j] + np.float32(0.5), np.float32(0.0)), np.float32(255.0))
            a2[j] = min(max(a2[j] + np.float32(0.5), np.float32(0.0)), np.float32(255.0))
    if channels_last:
        for j in range(n):
            out[y, j, 0] = a0[j]
            out[y, j, 1] = a1[j]
            out[y, j, 2] = a2[j]
    else:
        o0 = out[0, y]
        o1 = out[1, y]
        o2 = out[2, y]
        for j in range(n):
            o0[j] = a0[j]
            o1[j] = a1[j]
            o2[j] = a2[j]


def _blend_rows(row, span, flat, offset, row_stride, weights, k0, n, init):
    """row[:span] (=|+=) sum over taps k0..k0+n-1 (n <= 4) of weight * source row, fused in one loop."""
    s0 = flat[offset:offset + span]
    w0 = weights[k0]
    if n == 1:
        if init:
            for i in range(span):
                row[i] = w0 * s0[i]
        else:
            for i in range(span):
                row[i] += w0 * s0[i]
        return
    s1 = flat[offset + row_stride:offset + row_stride + span]
    w1 = weights[k0 + 1]
    if n == 2:
        if init:
            for i in range(span):
                row[i] = w0 * s0[i] + w1 * s1[i]
        else:
            for i in range(span):
                row[i] += w0 * s0[i] + w1 * s1[i]
        return
    s2 = flat[offset + 2 * row_stride:offset + 2 * row_stride + span]
    w2 = weights[k0 + 2]
    if n == 3:
        if init:
            for i in range(span):
                row[i] = w0 * s0[i] + w1 * s1[i] + w2 * s2[i]
        else:
            for i in range(span):
                row[i] += w0 * s0[i] + w1 * s1[i] + w2 * s2[i]
        return
    s3 = flat[offset + 3 * row_stride:offset + 3 * row_stride + span]
    w3 = weights[k0 + 3]
    if init:
        for i in range(span):
            row[i] = w0 * s0[i] + w1 * s1[i] + w2 * s2[i] + w3 * s3[i]
    else:
        for i in range(span):
            row[i] += w0 * s0[i] + w1 * s1[i] + w2 * s2[i] + w3 * s3[i]


def _convert_yuv_row(rgb, width, flat, luma, luma_step, u, v, chroma_step):
    """Planar RGB (rgb[0:w], rgb[w:2w], rgb[2w:3w]) of ``width`` pixels from one YUV row, exactly as OpenCV.

    OpenCV's fixed point (BT.601 limited range, 20 fractional bits, round half up, saturate);
    pixel pairs share a chroma sample. NV12/NV21 and I420 go to loops with constant strides in
    functions of their own, which LLVM vectorizes (about 8x faster than a generic strided loop).
    """
    pairs = width >> 1
    r_out = rgb[0:width]
    g_out = rgb[width:2 * width]
    b_out = rgb[2 * width:3 * width]
    if luma_step == 1 and chroma_step == 2:  # NV12 / NV21: interleaved chroma
        _convert_semiplanar(r_out, g_out, b_out, flat[luma:luma + 2 * pairs], flat[u:u + 2 * pairs],
                            flat[v:v + 2 * pairs - 1])
    elif luma_step == 1 and chroma_step == 1:  # I420: planar chroma
        _convert_planar(r_out, g_out, b_out, flat[luma:luma + 2 * pairs], flat[u:u + pairs], flat[v:v + pairs])
    else:  # YUYV and any other strides
        for p in range(pairs):
            du = np.int32(flat[u + p * chroma_step]) - np.int32(128)
            dv = np.int32(flat[v + p * chroma_step]) - np.int32(128)
            for t in range(2):
                r, g, b = _yuv_to_rgb(flat[luma + (2 * p + t) * luma_step], du, dv)
                r_out[2 * p + t] = r
                g_out[2 * p + t] = g
                b_out[2 * p + t] = b


def _convert_semiplanar(r_out, g_out, b_out, ys, us, vs):
    for p in range(ys.shape[0] >> 1):
        du = np.int32(us[2 * p]) - np.int32(128)
        dv = np.int32(vs[2 * p]) - np.int32(128)
        for t in range(2):
            r, g, b = _yuv_to_rgb(ys[2 * p + t], du, dv)
            r_out[2 * p + t] = r
            g_out[2 * p + t] = g
            b_out[2 * p + t] = b


def _convert_planar(r_out, g_out, b_out, ys, us, vs):
    for p in range(ys.shape[0] >> 1):
        du = np.int32(us[p]) - np.int32(128)
        dv = np.int32(vs[p]) - np.int32(128)
        for t in range(2):
            r, g, b = _yuv_to_rgb(ys[2 * p + t], du, dv)
            r_out[2 * p + t] = r
            g_out[2 * p + t] = g
            b_out[2 * p + t] = b


def _yuv_to_rgb(luma, du, dv):
    # Every constant typed int32: mixing in Python ints widens to int64 and blocks vectorization.
    zero = np.int32(0)
    top = np.int32(255)
    lum = max(np.int32(luma) - np.int32(16), zero) * np.int32(1220542) + np.int32(1 << 19)
    r = (lum + np.int32(1673527) * dv) >> np.int32(20)
    g = (lum + np.int32(-852492) * dv + np.int32(-409993) * du) >> np.int32(20)
    b = (lum + np.int32(2116026) * du) >> np.int32(20)
    return (np.uint8(min(max(r, zero), top)), np.uint8(min(max(g, zero), top)),
            np.uint8(min(max(b, zero), top)))


def _horizontal_fixed(src, x_start, x_lo, x_fixed, channels, c0, c1, c2, resampled, out_w):
    """Pillow's 8-bit horizontal pass, exactly: (2**21 + sum k * pixel) >> 22, clipped to 0..255.

    ``src`` holds the source row's bytes from column ``x_lo`` and ``x_fixed`` Pillow's int32
    weights; the sums are int32 as in Pillow (they cannot overflow: see ``tables.fixed_weights``)
    and the shift is Pillow's floor. ``resampled`` gets the three output channels as consecutive
    planar rows (float32, for the vertical pass).
    """
    taps = x_fixed.shape[1]
    half = np.int32(1 << 21)
    shift = np.int32(22)
    zero = np.int32(0)
    top = np.int32(255)
    step = np.uint64(channels)
    for j in range(out_w):
        at = np.uint64((x_start[j] - x_lo) * channels)
        a0 = half
        a1 = half
        a2 = half
        for k in range(taps):
            w = x_fixed[j, k]
            a0 += w * np.int32(src[at + c0])
            a1 += w * np.int32(src[at + c1])
            a2 += w * np.int32(src[at + c2])
            at += step
        resampled[j] = np.float32(min(max(a0 >> shift, zero), top))
        resampled[out_w + j] = np.float32(min(max(a1 >> shift, zero), top))
        resampled[2 * out_w + j] = np.float32(min(max(a2 >> shift, zero), top))


def _clamp_rows(a0, a1, a2, s0, s1, s2, b0, b1, b2):
    """Clamp normalized values to the image of [0, 255] (filters with negative lobes overshoot)."""
    top = np.float32(255.0)
    h0 = top * s0 + b0
    h1 = top * s1 + b1
    h2 = top * s2 + b2
    for j in range(a0.shape[0]):
        a0[j] = min(max(a0[j], b0), h0)
        a1[j] = min(max(a1[j], b1), h1)
        a2[j] = min(max(a2[j], b2), h2)


_store_row = helper(_store_row)
_output_rows = helper(_output_rows)
_horizontal = helper(_horizontal)
_blend_rows = helper(_blend_rows)
_yuv_to_rgb = helper(_yuv_to_rgb)
# Not inlined: compiled as functions of their own, their loops vectorize.
_convert_semiplanar = helper(_convert_semiplanar, inline=False)
_convert_planar = helper(_convert_planar, inline=False)
_convert_yuv_row = helper(_convert_yuv_row)
_bgr_row_pairs = helper(_bgr_row_pairs, inline=False)
_horizontal_bgr_pair = helper(_horizontal_bgr_pair)
_quad_pair2 = quad_pair(2)
_quad_pair3 = quad_pair(3)
_quad_pair4 = quad_pair(4)
_clamp_rows = helper(_clamp_rows)
_horizontal_fixed = helper(_horizontal_fixed)
_store = helper(_store)
_views = helper(_views)

# The entries, each with its launch record; their compile options are fixres_edge._jit.JIT_OPTIONS
# (boundscheck off, numpy error model, FMA contraction), and an entry states any it adds here.
interleaved = entry(_interleaved, launch.InterleavedLaunch)
pillow_order = entry(_pillow_order, launch.PillowOrderLaunch)
yuv = entry(_yuv, launch.YuvLaunch)
