"""Softmax and top-k over one output vector, compiled (one entry: ``probabilities_top_k``).

Right after ONNX Runtime has run, the same numpy calls take 10x longer than warm (about 130 us
instead of 10 us for softmax + argpartition over 1000 classes: cold caches and numpy's per-call
overhead); one compiled call (softmax and top-k together) keeps post-processing a small
fraction of inference.
"""
from __future__ import annotations

import numpy as np

from fixres_edge._jit import entry, helper
from fixres_edge.kernels import launch
from fixres_edge.kernels._simd import intrinsics

try:
    from numba import carray
except ImportError:  # pragma: no cover
    carray = None

pointer, record_at = intrinsics()


def _softmax_into(logits, probs):
    """probs[:] = softmax(logits), max subtracted first, sums in float64."""
    n = logits.shape[0]
    top = logits[0]
    for i in range(n):
        if logits[i] > top:
            top = logits[i]
    total = 0.0
    for i in range(n):
        e = np.exp(np.float64(logits[i]) - np.float64(top))
        probs[i] = e
        total += e
    scale = 1.0 / total
    for i in range(n):
        probs[i] = np.float64(probs[i]) * scale


def _top_k_into(values, indices):
    """indices[:] = positions of the largest values, largest first; ties: lower index first.

    One pass keeping the best k sorted (insertion): after the first few classes almost every
    value loses to the current k-th best at one comparison, so it costs about one read per
    class (repeated selection, O(k^2 n), took about 15 us for the top 5 of 1000).
    """
    n = values.shape[0]
    k = indices.shape[0]
    count = 0
    for i in range(n):
        v = values[i]
        if count == k:
            # Strictly greater: on a tie the lower index, seen first, keeps its place.
            if not v > values[indices[k - 1]]:
                continue
            pos = k - 1
        else:
            pos = count
            count += 1
        while pos > 0 and v > values[indices[pos - 1]]:
            indices[pos] = indices[pos - 1]
            pos -= 1
        indices[pos] = i


def _probabilities_top_k(address):
    """probs[:] = softmax(source) (or a copy when the model already outputs probabilities),
    then indices[:] = top-k of probs: one call after inference instead of several."""
    r = record_at(address)
    raw = carray(pointer(r.source, np.float32), (r.n,))
    probs = carray(pointer(r.out, np.float32), (r.n,))
    indices = carray(pointer(r.indices, np.int64), (r.k,))
    if r.apply_softmax:
        _softmax_into(raw, probs)
    else:
        for i in range(r.n):
            probs[i] = raw[i]
    if r.k > 0:
        _top_k_into(probs, indices)


_softmax_into = helper(_softmax_into)
_top_k_into = helper(_top_k_into)
probabilities_top_k = entry(_probabilities_top_k, launch.PostprocessLaunch)
