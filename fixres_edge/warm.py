"""Prepare the kernels ahead of the first frame: build the ahead-of-time module, or fill the JIT cache.

Numba compiles lazily and a cold first call costs seconds. ``warmup()`` pays that once, on the
device (compiled code is only valid for the CPU that made it), e.g. in a deployment step with
``fixres-edge warmup`` or at app start-up.
"""
from __future__ import annotations

import sys
import time


def warmup(aot: bool = True, verbose: bool = False) -> dict[str, float]:
    """Compile every kernel for this CPU.

    Parameters
    ----------
    aot : bool, default True
        Build the ahead-of-time module (``fixres_edge._aot``), which later processes load without
        importing numba. When it cannot be built (no C compiler, ...) the reason is printed on
        stderr and the JIT cache is filled instead. False: fill only the JIT cache.
    verbose : bool
        Print one line per step.

    Returns
    -------
    dict
        Seconds spent per step: ``"aot"`` or ``"jit <kernel>"`` entries.
    """
    from fixres_edge import _aot, _jit

    spent: dict[str, float] = {}
    if aot and not _jit.jit_disabled():
        start = time.perf_counter()
        try:
            path = _aot.build()
        except _aot.BuildError as error:
            print(f"fixres_edge: {error}", file=sys.stderr)
        else:
            spent["aot"] = time.perf_counter() - start
            _jit.reset_kernels()
            if verbose:
                print(f"{'ahead-of-time module':28s} {spent['aot']:8.1f} s  {path}")
            return spent
    for name, declared in _jit.entries().items():
        start = time.perf_counter()
        if not _jit.jit_disabled():
            declared.cfunc()
        spent[f"jit {name}"] = time.perf_counter() - start
        if verbose:
            print(f"{'jit ' + name:28s} {spent[f'jit {name}']:8.1f} s")
    return spent


__all__ = ["warmup"]
