"""Latency of each candidate scale on this device, measured interleaved.

Every round runs all scales once, in a seeded shuffled order (:func:`fixres_edge.timing.interleaved`),
and a scale's cost is its median ratio to the reference scale within a round times the reference's
median: load from other processes slows whole rounds, so it barely moves the ratios.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Sequence

import numpy as np

from fixres_edge.board import describe_board
from fixres_edge.policy import Scale
from fixres_edge.timing import interleaved, paired_ratio

#: Fixed input for latency measurement: a typical photo size (content does not change ORT's cost).
LATENCY_IMAGE_SHAPE = (375, 500, 3)


@dataclass(frozen=True)
class Latency:
    """Time of one scale on this device, in ms, from :func:`measure_latency`.

    ``cost`` is what a policy is charged each time it runs the scale: preprocessing plus inference
    plus softmax. It is ``ratio`` times the reference scale's median cost, where ``ratio`` is the
    median over rounds of this scale's time divided by the reference's time in the same round:
    a paired estimate that load from other processes (which slows whole rounds) barely moves.
    ``infer`` and ``preprocess`` are plain medians; ``cost_q25`` / ``cost_q75`` the quartiles of
    this scale's own samples.
    """

    scale: Scale
    cost: float
    ratio: float
    infer: float
    preprocess: float
    cost_q25: float
    cost_q75: float
    repeats: int

    def to_dict(self) -> dict[str, Any]:
        return {"scale": str(self.scale), "cost": self.cost, "ratio": self.ratio, "infer": self.infer,
                "preprocess": self.preprocess, "cost_q25": self.cost_q25, "cost_q75": self.cost_q75,
                "repeats": self.repeats}


def _run(classifier, image: np.ndarray, scale: Scale, stages: list) -> None:
    stages.append(classifier.probabilities(image, scale)[1])


def measure_latency(classifier, scales: Sequence[Scale], *, reference: Scale | None = None, repeats: int = 40,
                    warmup: int = 3, image: np.ndarray | None = None, seed: int = 0) -> dict[Scale, Latency]:
    """Time each scale on one fixed image, interleaved: every round runs all scales in a shuffled order.

    Parameters
    ----------
    classifier : fixres_edge.runtime.Classifier
        Its thread count is the one measured (calibrate uses 1 by default).
    scales : sequence of Scale
    reference : Scale, optional
        The scale costs are paired against (default: the first of ``scales``); it is measured too.
    repeats : int
        Timed rounds; ``warmup`` untimed rounds come first.
    image : ndarray, optional
        BGR uint8 input; default a seeded random image of :data:`LATENCY_IMAGE_SHAPE`.
    seed : int
        Seeds the default image and the order of the scales in each round.

    Returns
    -------
    dict of Scale -> Latency
        One entry per scale (and the reference).

    Notes
    -----
    Inference time depends only on the input shape and the model variant, so scales of one size
    and variant (the zoom levels of a static-size model) share their inference samples: noise
    cannot make one zoom level look cheaper than another. Preprocessing is timed per scale.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    if image is None:
        image = np.random.default_rng(seed).integers(0, 256, LATENCY_IMAGE_SHAPE, dtype=np.uint8)
    scales = tuple(classifier.scale(s) for s in dict.fromkeys(scales))
    if not scales:
        raise ValueError("measure_latency needs at least one scale")
    reference = scales[0] if reference is None else classifier.scale(reference)
    if reference not in scales:
        scales += (reference,)
    # Each call also records the classifier's own stage timings, warm-up rounds included.
    stages: list[list[dict]] = [[] for _ in scales]
    calls = {str(s): partial(_run, classifier, image, s, stages[i]) for i, s in enumerate(scales)}
    samples = interleaved(calls, repeat=repeats, warmup=warmup, seed=seed)
    wall = np.stack([samples[str(s)] for s in scales], axis=1) / 1e6             # (repeats, S) ms
    kept = [column[-repeats:] for column in stages]
    infer = np.array([[t["infer"] for t in column] for column in kept]).T
    pre = np.array([[t["preprocess"] for t in column] for column in kept]).T
    rest = wall - pre                                   # inference + softmax + call overhead
    # Inference depends on the input size and the model that runs it: (variant, size) groups.
    groups = {(s.variant, s.size) for s in scales}
    columns = {g: [i for i, s in enumerate(scales) if (s.variant, s.size) == g] for g in groups}
    rest_by_size = {g: rest[:, cols].mean(axis=1) for g, cols in columns.items()}
    ref_index = scales.index(reference)
    ref_run = pre[:, ref_index] + rest_by_size[(reference.variant, reference.size)]
    ref_cost = float(np.median(ref_run))
    out = {}
    for i, scale in enumerate(scales):
        group = (scale.variant, scale.size)
        own = pre[:, i] + rest_by_size[group]           # this scale's preprocessing + its size's rest
        ratio = paired_ratio(own, ref_run)
        q25, q75 = np.percentile(own, [25, 75])
        out[scale] = Latency(scale, ratio * ref_cost, ratio, float(np.median(infer[:, columns[group]])),
                             float(np.median(pre[:, i])), float(q25), float(q75), repeats)
    return out


def device_description(threads: int | None) -> str:
    """Where the latency was measured: ``"<board>, onnxruntime X, T thread(s)"``, the board as
    :class:`fixres_edge.board.Board` writes it."""
    try:
        import onnxruntime

        ort = f"onnxruntime {onnxruntime.__version__}"
    except ImportError:  # pragma: no cover - a dependency
        ort = "onnxruntime ?"
    return f"{describe_board()}, {ort}, {threads or 'default'} thread(s)"
