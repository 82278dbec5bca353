"""The timing harness shared by ``fixres-edge bench``, the ``bench/`` scripts and calibration.

Rules every measurement follows (and why):

* **Interleaved.** Every method runs once per round, so that a slow minute on a shared or
  throttling machine hurts all methods alike. The order changes from round to round (rotated, or
  shuffled with a seed) so that no method always runs first or last.
* **Warm-up excluded.** The first rounds (JIT loading, first-touch page faults, lazy imports) are
  run and dropped.
* **Medians over repetitions** (:class:`Stats`); and where one method is compared with another,
  the median of their ratios within each round (:func:`paired_ratio`): load from other processes
  slows whole rounds, so it barely moves a ratio taken inside one.
* **Overhead measured.** :func:`harness_overhead_ns` times an empty call through the same loop.

Nothing here imports more than numpy.
"""
from __future__ import annotations

import gc
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np


@dataclass(frozen=True)
class Stats:
    """Summary of one method's timings (milliseconds).

    ``throughput_per_s`` is ``1000 / p50_ms``: calls per second on one stream.
    """

    n: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    throughput_per_s: float

    @classmethod
    def from_ns(cls, samples_ns) -> "Stats":
        """Summarize durations in nanoseconds (any 1-D sequence, at least one value)."""
        ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
        if ms.size == 0:
            raise ValueError("no samples to summarize")
        p50, p90, p99 = np.percentile(ms, (50, 90, 99))
        return cls(n=int(ms.size), p50_ms=float(p50), p90_ms=float(p90), p99_ms=float(p99),
                   mean_ms=float(ms.mean()), min_ms=float(ms.min()),
                   throughput_per_s=float(1000.0 / p50) if p50 > 0 else float("inf"))

    def to_dict(self, digits: int = 4) -> dict:
        return {k: (round(v, digits) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def _count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "positive" if minimum > 0 else "non-negative"
        raise ValueError(f"{name} must be a {kind} int, got {value!r}")
    return value


def interleaved(methods: Mapping[str, Callable[[], object]], repeat: int, warmup: int = 2, *,
                seed: int | None = None) -> dict[str, np.ndarray]:
    """Time every method ``repeat`` times, one call of each per round.

    Parameters
    ----------
    methods : mapping of name -> zero-argument callable
        The calls to time (bind inputs with closures or ``functools.partial``).
    repeat : int
        Rounds that are kept (>= 1).
    warmup : int
        Rounds run first and discarded (>= 0).
    seed : int, optional
        None: the order rotates by one method per round (each method takes every position equally
        often). An int: each round runs in an order shuffled by a generator seeded with it, so no
        method keeps the same neighbours either.

    Returns
    -------
    dict of name -> ndarray of int64, shape (repeat,)
        Wall time of each kept call in nanoseconds (``time.perf_counter_ns``), in round order:
        index ``r`` of every array belongs to the same round.

    Notes
    -----
    The garbage collector is paused while timing (as ``timeit`` does) so that a collection
    triggered by one method's garbage is not billed to another; it is re-enabled in ``finally``.
    """
    _count("repeat", repeat, 1)
    _count("warmup", warmup, 0)
    names = list(methods)
    calls = [methods[name] for name in names]
    k = len(calls)
    rng = None if seed is None else np.random.default_rng(seed)
    samples = np.zeros((k, repeat), dtype=np.int64)
    clock = time.perf_counter_ns
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(-warmup, repeat):
            order = [(r + j) % k for j in range(k)] if rng is None else rng.permutation(k).tolist()
            for i in order:
                fn = calls[i]
                t0 = clock()
                fn()
                t1 = clock()
                if r >= 0:
                    samples[i, r] = t1 - t0
    finally:
        if was_enabled:
            gc.enable()
    return {name: samples[i] for i, name in enumerate(names)}


def paired_ratio(samples, reference) -> float:
    """Median over rounds of ``samples[r] / reference[r]``: a cost relative to a method timed in
    the same rounds (both 1-D, same length, ``reference`` positive)."""
    a = np.asarray(samples, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"paired samples must be two 1-D arrays of one non-zero length, got shapes "
                         f"{a.shape} and {b.shape}")
    return float(np.median(a / b))


def _empty() -> None:
    return None


def harness_overhead_ns(repeat: int = 2000) -> float:
    """Median nanoseconds :func:`interleaved` adds to one call (an empty function timed in it)."""
    return float(np.median(interleaved({"empty": _empty}, repeat=repeat, warmup=10)["empty"]))


@contextmanager
def stopwatch(seconds: dict, key: str):
    """Add the wall seconds spent inside the block to ``seconds[key]`` (also when it raises)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - start
