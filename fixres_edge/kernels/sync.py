"""Waiting without the GIL, for the band helpers of ``fixres_edge.workers``.

A helper waits for the next job by polling a shared counter between short sleeps instead of
sleeping on a lock: posting a job is then one store by the caller. Waking a thread that sleeps on
a lock costs the *caller* a system call, which on a 2-vCPU VM measured 15-32 us by itself, with
the woken thread arriving 50-66 us after the call (``threading.Event``; Numba's OpenMP launch
is the same). A 224x224 preprocess takes about 100 us, so such a wake-up can never pay off.
"""
from __future__ import annotations

import time

from fixres_edge._jit import jit_disabled, serial_kernel


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
        signature = types.void(types.int64)

        def codegen(context, builder, sig, args):
            int32 = ir.IntType(32)
            usleep = cgutils.get_or_insert_function(builder.module, ir.FunctionType(int32, [int32]), "usleep")
            builder.call(usleep, [builder.trunc(args[0], int32)])
            return context.get_dummy_value()

        return signature, codegen

    return sleep_us


_sleep_us = _make_sleep_us()


def _poll(posted, seen, period_us, polls):
    """Wait until ``posted[0] != seen``, checking it before each of ``polls`` sleeps of ``period_us``.

    Returns True when it changed, False when the polls ran out. ``usleep`` is an opaque call, so
    the compiler reloads ``posted[0]`` after each sleep. The caller reads the job it announces
    under the GIL, which orders that read after the poster's writes.
    """
    for _ in range(polls):
        if posted[0] != seen:
            return True
        _sleep_us(period_us)
    return posted[0] != seen


poll = serial_kernel(_poll)
