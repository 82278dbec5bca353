"""The hand-written LLVM intrinsics the kernels use, each with a plain-Python twin for
``NUMBA_DISABLE_JIT=1``. Nothing here compiles at import: the intrinsics are made on first use
(:func:`intrinsics`).

* ``pointer(address, dtype)``: an int64 address as a typed pointer, for ``numba.carray`` views of
  the arrays a launch record points to (``fixres_edge.kernels.launch``).
* ``record_at(pointer)``: the launch record a kernel entry was called with.
* ``quad_pair(taps)``: four output pixels of two blended BGR rows in SIMD registers.
"""
from __future__ import annotations

import ctypes
import functools

import numpy as np

from fixres_edge._jit import jit_disabled


def _pointer_python(address, dtype):
    return ctypes.cast(int(address), ctypes.POINTER(np.ctypeslib.as_ctypes_type(np.dtype(dtype))))


def _record_at_python(records):
    return records[0]


def _make_pointer():
    from numba.core import types
    from numba.extending import intrinsic

    @intrinsic
    def pointer(typingctx, address, dtype):
        target = types.CPointer(dtype.dtype)

        def codegen(context, builder, sig, args):
            return builder.inttoptr(args[0], context.get_value_type(target))

        return target(types.int64, dtype), codegen

    return pointer


def _make_record_at():
    import numba

    @numba.njit(inline="always")
    def record_at(address):
        return numba.carray(address, 1)[0]

    return record_at


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


def _make_quad_pair(taps):
    """An intrinsic: four output pixels (``j .. j + 3``, source offsets ``p0 .. p3``) of two blended
    BGR rows, normalized and stored to the R, G and B planes of two output rows.

    Numba has no vector types and LLVM does not vectorize this gather on its own; written as LLVM
    vector operations (SSE/AVX on x86, NEON on ARM), each tap of a pixel is one unaligned 4-float
    load times the broadcast weight, and a 4x4 shuffle turns four (B, G, R, -) vectors into R, G
    and B vectors of four pixels. The fourth lane reads one float past a pixel's last channel:
    every blended row has room after it (``launch.VECTOR_TAIL_FLOATS``). Offsets and ``j`` are
    uint64; the output rows need ``j + 4 <= width``.
    """
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


@functools.lru_cache(maxsize=None)
def quad_pair(taps: int):
    """The ``quad_pair`` intrinsic for 2, 3 or 4 taps (plain Python when the JIT is disabled)."""
    return _quad_pair_python(taps) if jit_disabled() else _make_quad_pair(taps)


@functools.lru_cache(maxsize=None)
def intrinsics():
    """``(pointer, record_at)``: made on first use, so that importing this module compiles nothing."""
    if jit_disabled():
        return _pointer_python, _record_at_python
    return _make_pointer(), _make_record_at()
