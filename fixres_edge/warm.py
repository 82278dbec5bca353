"""Compile (or load from the cache) every kernel signature the library uses, ahead of the first frame.

Numba compiles lazily; a cold first call costs seconds per signature. ``warmup()`` pays that once,
on the device (a cache is only valid for the CPU model that wrote it), e.g. at app start-up or in a
deployment step with ``fixres-edge warmup``.
"""
from __future__ import annotations

import time

import numpy as np

from fixres_edge.preprocess import DTYPES, INTERLEAVED_FORMATS, LAYOUTS, YUV_FORMATS, Preprocessor


def _samples():
    """(input format, interpolation, image): one per distinct kernel signature family."""
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    yield "BGR", "bilinear", bgr
    # Antialiased bicubic runs Pillow's horizontal-first kernel.
    yield "BGR", "bicubic", bgr
    yield "BGRA", "bilinear", rng.integers(0, 256, (12, 16, 4), dtype=np.uint8)
    yield "GRAY", "bilinear", rng.integers(0, 256, (12, 16), dtype=np.uint8)
    yield "NV12", "bilinear", rng.integers(0, 256, (18, 16), dtype=np.uint8)


def warmup(threads: tuple[int | None, ...] = (1, None), dtypes=DTYPES, layouts=LAYOUTS,
           verbose: bool = False) -> dict[str, float]:
    """Compile every kernel signature for the given thread settings, dtypes and layouts.

    Parameters
    ----------
    threads : int, None, or a tuple of them
        Thread settings to prepare: 1 compiles the serial kernels, None (or > 1) the parallel ones.
    dtypes, layouts : str or sequences of str
        Output dtypes and layouts to prepare (default: all).
    verbose : bool
        Print one line per signature.

    Returns
    -------
    dict
        Seconds spent per (format, dtype, layout, threads) key, as strings.
    """
    if threads is None or isinstance(threads, int):
        threads = (threads,)
    if isinstance(dtypes, str):
        dtypes = (dtypes,)
    if isinstance(layouts, str):
        layouts = (layouts,)
    for t in threads:
        if t is not None and (isinstance(t, bool) or not isinstance(t, int) or t < 1):
            raise ValueError(f"threads must be None or positive ints, got {t!r}")
    spent: dict[str, float] = {}
    for fmt, interpolation, image in _samples():
        for dtype in dtypes:
            for layout in layouts:
                for thread_setting in threads:
                    # A size that needs every code path: shrink with 2+ taps on both axes.
                    pre = Preprocessor(size=4, crop_pct=0.875, interpolation=interpolation, input_format=fmt,
                                       dtype=dtype, layout=layout, threads=thread_setting)
                    start = time.perf_counter()
                    pre(image)
                    key = f"{fmt}/{interpolation}/{dtype}/{layout}/threads={thread_setting}"
                    spent[key] = time.perf_counter() - start
                    if verbose:
                        print(f"{key:40s} {spent[key] * 1000:8.1f} ms")
    if any(t != 1 for t in threads):
        # The band helpers' wait loop (fixres_edge.workers), compiled in the first helper otherwise.
        from fixres_edge.kernels.resample import poll

        start = time.perf_counter()
        poll(np.zeros(2, np.int64), 0, np.zeros(4, np.int64))
        spent["band helpers"] = time.perf_counter() - start
        if verbose:
            print(f"{'band helpers':40s} {spent['band helpers'] * 1000:8.1f} ms")
    # Post-processing kernels (softmax, top-k) used by Classifier.
    from fixres_edge.runtime import softmax, top_k

    start = time.perf_counter()
    top_k(softmax(np.linspace(-1.0, 1.0, 10, dtype=np.float32)), 3)
    spent["postprocess"] = time.perf_counter() - start
    if verbose:
        print(f"{'postprocess':40s} {spent['postprocess'] * 1000:8.1f} ms")
    return spent


__all__ = ["warmup", "INTERLEAVED_FORMATS", "YUV_FORMATS"]
