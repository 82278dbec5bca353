"""Prepare the kernels ahead of the first frame: build the ahead-of-time module, or fill the JIT cache.

Numba compiles lazily and a cold first call costs seconds. ``warmup()`` pays that once, on the
device (compiled code is only valid for the CPU that made it), e.g. in a deployment step with
``fixres-edge warmup`` or at app start-up.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Warmup:
    """What :func:`warmup` did.

    Attributes
    ----------
    seconds : dict
        Seconds per step: ``"aot"`` (the ahead-of-time module) or ``"jit <kernel>"`` per kernel.
    backend : str
        The kernels later calls in this process run (``fixres_edge._jit.kernel_backend``).
    aot_error : str or None
        Why the ahead-of-time module could not be built (one line), when it was asked for.
    """

    seconds: dict = field(default_factory=dict)
    backend: str = ""
    aot_error: str | None = None


def warmup(aot: bool = True) -> Warmup:
    """Compile every kernel for this CPU.

    Parameters
    ----------
    aot : bool, default True
        Build the ahead-of-time module (``fixres_edge._aot``), which later processes load without
        importing numba. When it cannot be built (no C compiler, ...) the JIT cache is filled
        instead and ``aot_error`` says why. False: fill only the JIT cache.

    Returns
    -------
    Warmup
    """
    from fixres_edge import _aot, _jit

    seconds: dict[str, float] = {}
    error = None
    if aot and not _jit.jit_disabled():
        start = time.perf_counter()
        try:
            _aot.build()
        except _aot.BuildError as failure:
            error = str(failure)
        else:
            seconds["aot"] = time.perf_counter() - start
            _jit.reset_kernels()
            return Warmup(seconds, _jit.kernel_backend())
    for name, declared in _jit.entries().items():
        start = time.perf_counter()
        if not _jit.jit_disabled():
            declared.cfunc()
        seconds[f"jit {name}"] = time.perf_counter() - start
    return Warmup(seconds, _jit.kernel_backend(), error)


__all__ = ["Warmup", "warmup"]
