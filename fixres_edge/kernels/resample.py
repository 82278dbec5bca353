"""Fused resample + color + normalize + layout kernels: interleaved 8-bit pixels (BGR, RGB, BGRA, RGBA,
GRAY) and camera YUV (NV12, NV21, I420, YUYV). One file, because Numba's cache only notices edits
to a kernel's own file and both kernels share the horizontal pass.

Kernels only loop over arrays that the planner prepared (``fixres_edge.tables``); it decides
nothing about geometry. Per output row it does two passes:

1. vertical: the source rows under the row's filter window are blended into one float32 row,
   over the contiguous source bytes of the columns the crop needs (``x_lo .. x_hi``). Up to four
   taps are fused per pass so the row buffer is loaded and stored once per four taps.
2. horizontal: each output pixel gathers its taps from that row, picks the channels in output
   order, applies ``value * scale + bias`` (normalization, or identity for uint8 output) and
   writes NCHW or NHWC.

The most common case (a BGR photo to float32 NCHW with 2 to 4 taps per axis) runs output rows
in pairs (``_bgr_row_pairs``): the horizontal pass is bound by loads, so a pair loads each output
pixel's index and weights once for two rows, and each tap's three channels come in one 4-float
vector load, four output pixels at a time (``_quad_pair``).

Memory besides the output: per chunk of output rows (``scratch``), one blended float32 row plus
three planar output rows, or two blended rows on the paired path; owned by the caller so that
nothing is allocated per call.

Source pixels are addressed as ``flat[base + row * row_stride + col * pixel_stride + ch * channel_stride]``
so any strided view (crops, padded camera rows, flipped or channel-reversed views) is read in
place. The common case (pixel-contiguous rows) takes a vectorizable path.
"""
from __future__ import annotations

import time

import numpy as np

from fixres_edge._jit import helper, jit_disabled, kernel, serial_kernel

try:  # numba.prange is plain range when the JIT is disabled; range keeps this file importable without numba
    from numba import prange
except ImportError:  # pragma: no cover
    prange = range


def _resample_interleaved(flat, base, row_stride, pixel_stride, channel_stride, channels,
                          y_start, y_weights, x_start, x_weights, x_lo, x_hi,
                          channel_map, scale, bias, quantize, clamp, channels_last,
                          out, planar, direct, work, ticket, n_bands, scratch_row, wait_for_helpers,
                          posted, schedule):
    """One thread's share of a call: all rows when ``n_bands == 1``, else bands taken from ``work``.

    Several threads (the caller and ``fixres_edge.workers`` helpers) run this on the same
    arguments, each with its own ``scratch_row``. They take bands of rows from the ticketed
    counter ``work`` (see ``_claim_band``), so a thread that comes late finds less work left and
    never delays the call; a helper holding an old ticket takes nothing. The caller
    (``wait_for_helpers``) returns only when every taken band is written.

    A helper then waits for the next job (``_poll`` with ``posted`` and ``schedule``) before
    returning whether one is running: returning to Python takes the GIL, and a helper holding it
    just when the caller returns made the caller sleep on the GIL (20 us on the test VM, a
    quarter of the call). A helper that returns for a running job finds its caller inside the
    kernel, without the GIL.
    """
    out_h = y_start.shape[0]
    alone = n_bands == 1
    band = 0 if alone else _claim_band(work, ticket, n_bands)
    # One call site for the band (it is inlined, and a second copy doubled the cold compile).
    while band >= 0:
        _interleaved_band(flat, base, row_stride, pixel_stride, channel_stride, channels, y_start, y_weights,
                          x_start, x_weights, x_lo, x_hi, channel_map, scale, bias, quantize, clamp,
                          channels_last, out, planar, direct, scratch_row, band * out_h // n_bands,
                          (band + 1) * out_h // n_bands)
        if alone:
            return False
        _atomic_add(work, 1, 1)  # release: the band's rows are written before it counts as done
        band = _claim_band(work, ticket, n_bands)
    if wait_for_helpers:
        # At most one band per helper is still being written: a short spin, no sleep.
        while _atomic_load(work, 1) < n_bands:
            pass
        return False
    return _poll(posted, ticket, schedule)


def _poll(posted, seen, schedule):
    """Wait for a running job other than ``seen``: True when one is, False when the polls ran out.

    ``posted`` is ``[ticket announced, ticket finished]`` (written by the caller before and after
    its call); ``schedule`` is ``[fast period us, fast polls, slow period us, slow polls]``: the
    flag is checked before each sleep. The band helpers wait for jobs with this instead of
    sleeping on a lock: announcing a job is then one store by the caller, while waking a thread
    that sleeps on a lock costs the caller a system call (15-32 us on the 2-vCPU test VM, with
    the woken thread arriving 50-66 us after the call; Numba's OpenMP launch is the same), about
    a whole 224 preprocess. A job that finished before it was noticed is skipped here, without
    the GIL. The acquire loads order the helper's later reads after the announcement.
    """
    for phase in range(2):
        period = schedule[2 * phase]
        for _ in range(schedule[2 * phase + 1]):
            announced = _atomic_load(posted, 0)
            if announced != seen:
                if _atomic_load(posted, 1) != announced:
                    return True
                seen = announced  # it ended before this helper looked: nothing to join
            _sleep_us(period)
    return False


def _poll_kernel(posted, seen, schedule):
    """``_poll`` as a kernel of its own: what an idle band helper runs, without the GIL."""
    return _poll(posted, seen, schedule)


def _claim_band(work, ticket, n_bands):
    """Take the next band of the job ``ticket``: its index, or -1 when none is left.

    ``work[0]`` holds ``ticket << 32 | next band`` (the caller sets it before announcing the job);
    a compare-and-swap takes a band only while the ticket still matches, so a helper that picks up
    a job after it finished (and the counter was reset for the next one) never writes anything.
    """
    while True:
        current = _atomic_load(work, 0)
        band = current & 0xFFFFFFFF
        if (current >> 32) != ticket or band >= n_bands:
            return -1
        if _compare_exchange(work, 0, current, current + 1):
            return band


def _interleaved_band(flat, base, row_stride, pixel_stride, channel_stride, channels, y_start, y_weights,
                      x_start, x_weights, x_lo, x_hi, channel_map, scale, bias, quantize, clamp, channels_last,
                      out, planar, direct, scratch_row, y_begin, y_end):
    """Output rows ``y_begin .. y_end`` of ``_resample_interleaved``, with one thread's scratch row.

    (At most 30 arguments: CPython passes more as a tuple, which Numba cannot inline.)
    """
    out_w = x_start.shape[0]
    taps_y = y_weights.shape[1]
    span = (x_hi - x_lo) * channels
    contiguous_pixels = pixel_stride == channels and channel_stride == 1
    c0 = np.uint64(channel_map[0])
    c1 = np.uint64(channel_map[1])
    c2 = np.uint64(channel_map[2])
    step = np.uint64(channels)
    bgr = channels == 3 and channel_map[0] == 2 and channel_map[1] == 1 and channel_map[2] == 0
    s0 = scale[0]
    s1 = scale[1]
    s2 = scale[2]
    b0 = bias[0]
    b1 = bias[1]
    b2 = bias[2]
    row = scratch_row
    y = y_begin
    if direct and bgr and contiguous_pixels and 2 <= taps_y <= 4 and 2 <= x_weights.shape[1] <= 4 \
            and out_w >= 4:
        # The most common case (a BGR photo to float32 NCHW, shrunk up to about 2.3x with
        # antialiasing or any amount without: 2 to 4 taps per axis) in pairs of output rows
        # with vector taps: about 1.7x faster over the whole kernel than the generic loops
        # below, which measured no gain from pairing alone.
        y = _bgr_row_pairs(row, scratch_row[span:], flat, base, row_stride, x_lo, span, y_start,
                           y_weights, x_start, x_weights, s0, s1, s2, b0, b1, b2, planar, y_begin, y_end)
    for y in range(y, y_end):
        first_row = base + y_start[y] * row_stride
        # ---- vertical pass: row[0:span] = sum_k w_k * source_row(y_start + k)[x_lo:x_hi]
        if contiguous_pixels:
            offset = first_row + x_lo * channels
            for k0 in range(0, taps_y, 4):
                _blend_rows(row, span, flat, offset + k0 * row_stride, row_stride, y_weights[y],
                            k0, min(4, taps_y - k0), k0 == 0)
        else:
            for x in range(x_lo, x_hi):
                for c in range(channels):
                    pixel = first_row + x * pixel_stride + c * channel_stride
                    acc = np.float32(0.0)
                    for k in range(taps_y):
                        acc += y_weights[y, k] * flat[pixel + k * row_stride]
                    row[(x - x_lo) * channels + c] = acc
        # ---- horizontal pass: taps gathered per output pixel, channels picked in RGB order,
        # normalization fused; float32 NCHW output is written in place.
        a0, a1, a2 = _output_rows(planar, scratch_row, direct, span, out_w, y)
        if bgr:
            # The common case (OpenCV's BGR to RGB) with literal offsets: once inlined, the
            # loads take immediate displacements (about 15 % faster than runtime offsets).
            _horizontal(row, x_start, x_lo, x_weights, np.uint64(3), np.uint64(2), np.uint64(1),
                        np.uint64(0), s0, s1, s2, b0, b1, b2, a0, a1, a2)
        else:
            _horizontal(row, x_start, x_lo, x_weights, step, c0, c1, c2, s0, s1, s2, b0, b1, b2, a0, a1, a2)
        if clamp and not quantize:
            _clamp_rows(a0, a1, a2, s0, s1, s2, b0, b1, b2)
        if not direct:
            # ---- rounding (uint8) and the layout write, vectorizable
            _store_row(a0, a1, a2, quantize, channels_last, out, y)


def _bgr_row_pairs(row, row_next, flat, base, row_stride, x_lo, span, y_start, y_weights, x_start, x_weights,
                   s0, s1, s2, b0, b1, b2, planar, y_begin, y_end):
    """Output rows ``y_begin ..`` two at a time: BGR source, 2 to 4 taps per axis, float32 NCHW output.

    Each pixel's index and weights are loaded once for two rows (the horizontal pass is bound by
    loads), and the channel offsets are literals (immediate displacements). Compiled as a function
    of its own: inlined into the kernel, the same loops measured about 8 % slower.
    Returns the first row not done (``y_end - 1`` when the band has an odd number of rows).
    """
    taps_y = y_weights.shape[1]
    y = y_begin
    while y + 1 < y_end:
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


def _atomic_load_python(array, index):
    return array[index]


def _atomic_add_python(array, index, value):
    old = array[index]
    array[index] = old + value
    return old


def _compare_exchange_python(array, index, expected, desired):
    if array[index] != expected:
        return False
    array[index] = desired
    return True


def _make_atomics():
    """Intrinsics over one int64 array element (Numba has no atomics of its own):
    ``_atomic_load(array, i)`` (acquire), ``_atomic_add(array, i, v) -> old`` (acquire-release) and
    ``_compare_exchange(array, i, expected, desired) -> bool`` (acquire-release).
    Plain Python under ``NUMBA_DISABLE_JIT=1`` (one thread then)."""
    if jit_disabled():
        return _atomic_load_python, _atomic_add_python, _compare_exchange_python
    from llvmlite import ir
    from numba.core import types
    from numba.extending import intrinsic

    def element(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        return builder.gep(data, [args[1]])

    @intrinsic
    def atomic_load(typingctx, array, index):
        def codegen(context, builder, sig, args):
            return builder.load_atomic(element(context, builder, sig, args), "acquire", 8)

        return types.int64(array, types.intp), codegen

    @intrinsic
    def atomic_add(typingctx, array, index, value):
        def codegen(context, builder, sig, args):
            return builder.atomic_rmw("add", element(context, builder, sig, args), args[2], "acq_rel")

        return types.int64(array, types.intp, types.int64), codegen

    @intrinsic
    def compare_exchange(typingctx, array, index, expected, desired):
        def codegen(context, builder, sig, args):
            pair = builder.cmpxchg(element(context, builder, sig, args), args[2], args[3], "acq_rel", "acquire")
            return builder.extract_value(pair, 1)

        return types.boolean(array, types.intp, types.int64, types.int64), codegen

    return atomic_load, atomic_add, compare_exchange


def _make_sleep_us():
    """An intrinsic ``(microseconds) -> None``: libc ``usleep``, callable from compiled code.

    A plain external symbol rather than a ctypes function pointer: Numba refuses to cache code
    that embeds a pointer (it differs per process), while a symbol is resolved at load time.
    """
    if jit_disabled():
        return lambda microseconds: time.sleep(microseconds / 1e6)
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    @intrinsic
    def sleep_us(typingctx, microseconds):
        def codegen(context, builder, sig, args):
            int32 = ir.IntType(32)
            usleep = cgutils.get_or_insert_function(builder.module, ir.FunctionType(int32, [int32]), "usleep")
            builder.call(usleep, [builder.trunc(args[0], int32)])
            return context.get_dummy_value()

        return types.void(types.int64), codegen

    return sleep_us


def _quad_pair_python(taps):
    """``_quad_pair(taps)`` as plain Python, for ``NUMBA_DISABLE_JIT=1``."""
    def quad_pair(row, row_next, p0, p1, p2, p3, weights, j, s0, s1, s2, b0, b1, b2, a0, a1, a2, d0, d1, d2):
        j = int(j)  # (numpy 1.x turns uint64 + int into a float)
        for source, red_out, green_out, blue_out in ((row, a0, a1, a2), (row_next, d0, d1, d2)):
            for q, p in enumerate((int(p0), int(p1), int(p2), int(p3))):
                bgr = [np.float32(0.0)] * 3
                for k in range(taps):
                    for c in range(3):
                        bgr[c] += weights[j + q, k] * source[p + 3 * k + c]
                red_out[j + q] = bgr[2] * s0 + b0
                green_out[j + q] = bgr[1] * s1 + b1
                blue_out[j + q] = bgr[0] * s2 + b2
    return quad_pair


def _quad_pair(taps):
    """An intrinsic: four output pixels (``j .. j + 3``, source offsets ``p0 .. p3``) of two blended
    BGR rows, normalized and stored to the R, G and B planes of two output rows.

    Numba has no vector types and LLVM does not vectorize this gather on its own; written as LLVM
    vector operations (SSE/AVX on x86, NEON on ARM), each tap of a pixel is one unaligned 4-float
    load times the broadcast weight, and a 4x4 shuffle turns four (B, G, R, -) vectors into R, G
    and B vectors of four pixels. The fourth lane reads one float past a pixel's last channel:
    callers' rows always have room after them (the scratch row continues). Offsets and ``j`` are
    uint64; the output rows need ``j + 4 <= width``.
    """
    if jit_disabled():
        return _quad_pair_python(taps)
    from llvmlite import ir
    from numba.core import types
    from numba.extending import intrinsic

    @intrinsic
    def quad_pair(typingctx, row, row_next, p0, p1, p2, p3, weights, j, s0, s1, s2, b0, b1, b2,
                  a0, a1, a2, d0, d1, d2):
        signature = types.void(row, row_next, p0, p1, p2, p3, weights, j, s0, s1, s2, b0, b1, b2,
                               a0, a1, a2, d0, d1, d2)

        def codegen(context, builder, sig, args):
            def data(index):
                return context.make_array(sig.args[index])(context, builder, args[index]).data

            i32 = ir.IntType(32)
            i64 = ir.IntType(64)
            vector = ir.VectorType(ir.FloatType(), 4)

            def lanes(*order):
                return ir.Constant(ir.VectorType(i32, 4), list(order))

            def splat(value):
                one = builder.insert_element(ir.Constant(vector, ir.Undefined), value, ir.Constant(i32, 0))
                return builder.shuffle_vector(one, one, lanes(0, 0, 0, 0))

            def fma(x, y, z):
                # "contract" lets LLVM fuse where the CPU has FMA (as the kernels' fastmath does).
                product = builder.fmul(x, y, flags=("contract",))
                return product if z is None else builder.fadd(z, product, flags=("contract",))

            table, j_value = data(6), args[7]
            scales = [splat(v) for v in args[8:11]]
            biases = [splat(v) for v in args[11:14]]
            weights = [[splat(builder.load(builder.gep(table, [builder.add(
                builder.mul(builder.add(j_value, ir.Constant(i64, q)), ir.Constant(i64, taps)),
                ir.Constant(i64, k))], inbounds=True), align=4)) for k in range(taps)] for q in range(4)]
            for source, outputs in ((data(0), (14, 15, 16)), (data(1), (17, 18, 19))):
                pixels = []
                for q in range(4):
                    total = None
                    for k in range(taps):
                        address = builder.gep(source, [builder.add(args[2 + q], ir.Constant(i64, 3 * k))],
                                              inbounds=True)
                        loaded = builder.load(builder.bitcast(address, vector.as_pointer()), align=4)
                        total = fma(loaded, weights[q][k], total)
                    pixels.append(total)  # (B, G, R, -) of pixel j + q
                low = builder.shuffle_vector(pixels[0], pixels[1], lanes(0, 4, 1, 5))    # B0 B1 G0 G1
                high = builder.shuffle_vector(pixels[2], pixels[3], lanes(0, 4, 1, 5))   # B2 B3 G2 G3
                reds = builder.shuffle_vector(
                    builder.shuffle_vector(pixels[0], pixels[1], lanes(2, 6, 3, 7)),       # R0 R1 - -
                    builder.shuffle_vector(pixels[2], pixels[3], lanes(2, 6, 3, 7)), lanes(0, 1, 4, 5))
                greens = builder.shuffle_vector(low, high, lanes(2, 3, 6, 7))
                blues = builder.shuffle_vector(low, high, lanes(0, 1, 4, 5))
                for channel, values in enumerate((reds, greens, blues)):
                    normalized = fma(values, scales[channel], biases[channel])
                    address = builder.gep(data(outputs[channel]), [j_value], inbounds=True)
                    builder.store(normalized, builder.bitcast(address, vector.as_pointer()), align=4)
            return context.get_dummy_value()

        return signature, codegen

    return quad_pair


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


def _band(chunk, n_chunks, out_h):
    """Output rows [begin, end) of one chunk: contiguous bands, sizes differing by at most one."""
    return chunk * out_h // n_chunks, (chunk + 1) * out_h // n_chunks


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


def _resample_yuv(flat, luma_base, luma_row_stride, luma_pixel_stride,
                  u_base, v_base, chroma_row_stride, chroma_pixel_stride, chroma_row_shift,
                  y_start, y_weights, x_start, x_weights, x_lo, x_hi, convert_lo, convert_hi,
                  rgb_rows, rgb_row_ids, scale, bias, quantize, clamp, channels_last,
                  out, planar, direct, scratch, n_chunks):
    """Camera YUV (NV12, NV21, I420, YUYV) -> resampled, normalized RGB tensor.

    Each source row the vertical filter needs is converted to 8-bit RGB once (BT.601 limited
    range in OpenCV's fixed point, chroma repeated over 2 pixels as OpenCV does) into a small
    ring of planar rows (``rgb_rows``: one slot per vertical tap), then resampled. The result matches ``cv2.cvtColor`` followed by resampling,
    without a full-size RGB frame.
    """
    out_h = y_start.shape[0]
    out_w = x_start.shape[0]
    taps_y = y_weights.shape[1]
    ring = rgb_row_ids.shape[1]
    # Ring slots and the blended row are planar (R, G, B planes): conversion loops then store
    # with unit stride, and the shared horizontal pass reads planes with step 1.
    width = convert_hi - convert_lo
    converted = 3 * width
    skip = x_lo - convert_lo
    plane = x_hi - x_lo
    span = 3 * plane
    s0 = scale[0]
    s1 = scale[1]
    s2 = scale[2]
    b0 = bias[0]
    b1 = bias[1]
    b2 = bias[2]
    for chunk in prange(n_chunks):
        row = scratch[chunk]
        slots = rgb_rows[chunk]
        ids = rgb_row_ids[chunk]
        for slot in range(ring):
            ids[slot] = -1
        y_begin, y_end = _band(chunk, n_chunks, out_h)
        for y in range(y_begin, y_end):
            for k in range(taps_y):
                source_row = y_start[y] + k
                slot = source_row % ring
                rgb = slots[slot * converted:(slot + 1) * converted]
                if ids[slot] != source_row:
                    chroma_row = source_row >> chroma_row_shift
                    _convert_yuv_row(rgb, width, flat,
                                     luma_base + source_row * luma_row_stride + convert_lo * luma_pixel_stride,
                                     luma_pixel_stride,
                                     u_base + chroma_row * chroma_row_stride + (convert_lo >> 1) * chroma_pixel_stride,
                                     v_base + chroma_row * chroma_row_stride + (convert_lo >> 1) * chroma_pixel_stride,
                                     chroma_pixel_stride)
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
            a0, a1, a2 = _output_rows(planar, scratch[chunk], direct, span, out_w, y)
            _horizontal(row, x_start, x_lo, x_weights, np.uint64(1), np.uint64(0), np.uint64(plane),
                        np.uint64(2 * plane), s0, s1, s2, b0, b1, b2, a0, a1, a2)
            if clamp and not quantize:
                _clamp_rows(a0, a1, a2, s0, s1, s2, b0, b1, b2)
            if not direct:
                _store_row(a0, a1, a2, quantize, channels_last, out, y)


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


def _resample_interleaved_hfirst(flat, base, row_stride, pixel_stride, channel_stride, channels,
                                 y_start, y_weights, x_start, x_fixed, x_lo, x_hi,
                                 channel_map, ring_rows, ring_row_ids, scale, bias, quantize, clamp,
                                 channels_last, out, planar, direct, scratch, n_chunks):
    """Pillow's order for filters with negative lobes (antialiased bicubic): horizontal pass first.

    Pillow resamples horizontally first and stores that pass as 8-bit (rounded, clipped to
    0..255) before the vertical pass; with bicubic's overshoot the clipping changes results by up
    to 20 levels, so matching Pillow needs the same order. Each source row the vertical filter
    needs is resampled horizontally once into a small ring of rows (one slot per vertical tap)
    in Pillow's own fixed-point arithmetic (``x_fixed``: weights in units of 2**-22), so ties at
    .5 round as in Pillow, then the vertical taps blend the ring in float32.
    """
    out_h = y_start.shape[0]
    out_w = x_start.shape[0]
    taps_y = y_weights.shape[1]
    ring = ring_row_ids.shape[1]
    span = (x_hi - x_lo) * channels
    contiguous_pixels = pixel_stride == channels and channel_stride == 1
    c0 = np.uint64(channel_map[0])
    c1 = np.uint64(channel_map[1])
    c2 = np.uint64(channel_map[2])
    nil = np.float32(0.0)
    width3 = 3 * out_w
    for chunk in prange(n_chunks):
        row = scratch[chunk]
        slots = ring_rows[chunk]
        ids = ring_row_ids[chunk]
        for slot in range(ring):
            ids[slot] = -1
        y_begin, y_end = _band(chunk, n_chunks, out_h)
        for y in range(y_begin, y_end):
            a0, a1, a2 = _output_rows(planar, scratch[chunk], direct, span, out_w, y)
            for k in range(taps_y):
                source_row = y_start[y] + k
                slot = source_row % ring
                resampled = slots[slot * width3:(slot + 1) * width3]
                if ids[slot] != source_row:
                    # One source row, as float, then the horizontal taps into three planar rows.
                    first = base + source_row * row_stride
                    if contiguous_pixels:
                        src = flat[first + x_lo * channels:first + x_lo * channels + span]
                        for i in range(span):
                            row[i] = src[i]
                    else:
                        for x in range(x_lo, x_hi):
                            for c in range(channels):
                                row[(x - x_lo) * channels + c] = flat[first + x * pixel_stride + c * channel_stride]
                    _horizontal_fixed(row, x_start, x_lo, x_fixed, channels, c0, c1, c2, resampled, out_w)
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
            if quantize:
                _store_row(a0, a1, a2, quantize, channels_last, out, y)
            else:
                s0 = scale[0]
                s1 = scale[1]
                s2 = scale[2]
                b0 = bias[0]
                b1 = bias[1]
                b2 = bias[2]
                for j in range(out_w):
                    a0[j] = min(max(a0[j], nil), np.float32(255.0)) * s0 + b0
                    a1[j] = min(max(a1[j], nil), np.float32(255.0)) * s1 + b1
                    a2[j] = min(max(a2[j], nil), np.float32(255.0)) * s2 + b2
                if not direct:
                    _store_row(a0, a1, a2, quantize, channels_last, out, y)


def _horizontal_fixed(row, x_start, x_lo, x_fixed, channels, c0, c1, c2, resampled, out_w):
    """Pillow's 8-bit horizontal pass, exactly: (2**21 + sum k * pixel) >> 22, clipped to 0..255.

    ``row`` holds integer pixel values (as float32) and ``x_fixed`` integer weights (as float64):
    every product and sum is an integer below 2**53, so float64 arithmetic is exact and the
    shift is a multiplication by 2**-22 and a floor, with no int conversions in the loop.
    ``resampled`` gets the three output channels as consecutive planar rows.
    """
    taps = x_fixed.shape[1]
    half = np.float64(1 << 21)
    unit = np.float64(1.0) / np.float64(1 << 22)
    zero = np.float64(0.0)
    top = np.float64(255.0)
    step = np.uint64(channels)
    for j in range(out_w):
        at = np.uint64((x_start[j] - x_lo) * channels)
        a0 = half
        a1 = half
        a2 = half
        for k in range(taps):
            w = x_fixed[j, k]
            a0 += w * np.float64(row[at + c0])
            a1 += w * np.float64(row[at + c1])
            a2 += w * np.float64(row[at + c2])
            at += step
        resampled[j] = min(max(np.floor(a0 * unit), zero), top)
        resampled[out_w + j] = min(max(np.floor(a1 * unit), zero), top)
        resampled[2 * out_w + j] = min(max(np.floor(a2 * unit), zero), top)


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
_band = helper(_band)
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
_quad_pair2 = _quad_pair(2)
_quad_pair3 = _quad_pair(3)
_quad_pair4 = _quad_pair(4)
_atomic_load, _atomic_add, _compare_exchange = _make_atomics()
_claim_band = helper(_claim_band)
_sleep_us = _make_sleep_us()
_poll = helper(_poll)
_interleaved_band = helper(_interleaved_band)
_clamp_rows = helper(_clamp_rows)
_horizontal_fixed = helper(_horizontal_fixed)
resample_interleaved = serial_kernel(_resample_interleaved)
poll = serial_kernel(_poll_kernel)
resample_yuv = kernel(_resample_yuv)
resample_interleaved_hfirst = kernel(_resample_interleaved_hfirst)
