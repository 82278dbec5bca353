"""Softmax and top-k over one output vector, compiled.

Right after ONNX Runtime has run, the same numpy calls take 10x longer than warm (about 130 us
instead of 10 us for softmax + argpartition over 1000 classes: cold caches and numpy's per-call
overhead); one compiled pass takes about 20 us, which keeps post-processing a small fraction of
inference.
"""
from __future__ import annotations

import numpy as np

from fixres_edge._jit import serial_kernel


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

    Repeated selection, O(k n): for the handful of classes a prediction shows it beats sorting.
    """
    n = values.shape[0]
    k = indices.shape[0]
    for j in range(k):
        best = -1
        for i in range(n):
            taken = False
            for q in range(j):
                if indices[q] == i:
                    taken = True
                    break
            if taken:
                continue
            if best < 0 or values[i] > values[best]:
                best = i
        indices[j] = best


softmax_into = serial_kernel(_softmax_into)
top_k_into = serial_kernel(_top_k_into)
