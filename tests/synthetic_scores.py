"""Synthetic calibration scores with known answers, shared by the calibration tests (no model, no I/O)."""
from __future__ import annotations

import numpy as np

from fixres_edge.calibrate import Scores
from fixres_edge.policy import Scale

A, B = Scale(160), Scale(224)


def easy_hard_scores(easy: int = 40, hard: int = 10, classes: int = 4) -> Scores:
    """Scale A: confident (0.9) and right on easy images, unsure (0.4) and wrong on hard ones.
    Scale B: right everywhere (0.6). The right cascade A > B escalates exactly the hard images."""
    n = easy + hard
    labels = np.arange(n) % classes
    probs = np.zeros((n, 2, classes), np.float32)
    for i, y in enumerate(labels):
        if i < easy:
            probs[i, 0] = 0.1 / (classes - 1)
            probs[i, 0, y] = 0.9
        else:
            probs[i, 0] = 0.15
            probs[i, 0, (y + 1) % classes] = 0.4
            probs[i, 0, y] = 0.3
        probs[i, 1] = 0.4 / (classes - 1)
        probs[i, 1, y] = 0.6
    return Scores((A, B), labels, probs, tuple(f"img{i}" for i in range(n)), "synthetic")


def random_scores(n: int = 60, scales=(Scale(8), Scale(16), Scale(24)), classes: int = 6, seed: int = 0) -> Scores:
    """Softmax of seeded random logits with the true class raised by a random margin."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    logits = rng.normal(0, 1.5, (n, len(scales), classes))
    logits[np.arange(n), :, labels] += rng.normal(1.5, 1.0, (n, len(scales)))
    probs = np.exp(logits)
    probs /= probs.sum(axis=2, keepdims=True)
    return Scores(scales, labels, probs.astype(np.float32), model="random")
