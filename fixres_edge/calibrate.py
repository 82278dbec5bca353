"""Calibrate a FixRes scale policy: measure every scale once, then search policies on the saved scores.

The expensive part runs once: :func:`collect` decodes each labeled image once and runs every scale,
keeping the class probabilities (``N x S x C`` float32, e.g. 10 MB for 500 images, 5 scales and
1000 classes); :func:`measure_latency` times each scale on this device (medians over rounds on
one fixed input; every round runs all scales in a shuffled order, and each scale's cost is its
median ratio to the reference scale within a round, so load from other processes, which slows
whole rounds, barely moves the ratios). The search then costs no inference at all
(:func:`search_policies`):

* every single scale;
* every low -> high cascade of 2 and 3 scales, combining with ``"last"`` (the stopping scale
  answers) or ``"mean"`` (the mean over the scales run), over a grid of confidence thresholds
  (the top probability, or the top-1 minus top-2 margin);
* ensembles (probability means) of 2 and 3 scales.

Thresholds are chosen by 2-fold cross-validation, repeated over several random halvings: fit the
threshold on one half (the most accurate one whose expected cost on that half is within a budget),
score it on the other half, swap. The accuracy reported for a cascade is that held-out accuracy.
The threshold written into the policy is the one fitted on all images. A cascade appears once
per budget of a grid (multiples of the training size's cost), which traces its cost/accuracy
curve; the Pareto front is taken over those cross-validated points.

The chosen policy is the most accurate (cross-validated top-1) whose expected cost is within the
budget (default: the cost of the training size). Because choosing among many candidates is itself
a fit, :func:`search_policies` also reruns the whole choice on each half and scores it on the other
(``selection_cv``): the honest estimate of what the chosen policy will give on new images.
"""
from __future__ import annotations

import itertools
import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from fixres_edge.evaluate import Reader, label_ranks, wilson_interval
from fixres_edge.policy import CONFIDENCES as POLICY_CONFIDENCES
from fixres_edge.policy import (DEFAULT_CROP_PCT, DEFAULT_TRAIN_SIZE, Scale, ScalePolicy, cascade_confidence,
                                default_scales)

#: Confidence thresholds tried for cascades (escalate while the top probability is below).
DEFAULT_THRESHOLDS = tuple(round(0.025 * i, 3) for i in range(1, 39)) + (0.97, 0.99)
#: Budgets (multiples of the training size's cost) at which each cascade's threshold is fitted,
#: to draw its cost/accuracy curve; the chosen policy uses the one budget given.
BUDGET_GRID = (0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.5, 1.75, 2.0)
KINDS = ("single", "cascade", "ensemble")
#: Cascade confidence measures: top probability, or top-1 minus top-2 probability.
CONFIDENCES = POLICY_CONFIDENCES  # the measures a ScalePolicy can express
#: Fixed input for latency measurement: a typical photo size (content does not change ORT's cost).
LATENCY_IMAGE_SHAPE = (375, 500, 3)
SCORES_FORMAT = "fixres_edge.calibration_scores"


# ---------------------------------------------------------------------- scores
@dataclass(frozen=True, eq=False)
class Scores:
    """Probabilities of every image at every scale (the output of :func:`collect`).

    Attributes
    ----------
    scales : tuple of Scale
        S scales, in the order of the second axis of ``probs``.
    labels : ndarray
        (N,) int64 class indices.
    probs : ndarray
        (N, S, C) float32 class probabilities.
    names : tuple of str
        N image names.
    model : str or None
    """

    scales: tuple[Scale, ...]
    labels: np.ndarray
    probs: np.ndarray
    names: tuple[str, ...] = ()
    model: str | None = None

    def __post_init__(self):
        probs = np.asarray(self.probs, dtype=np.float32)
        labels = np.asarray(self.labels, dtype=np.int64)
        if probs.ndim != 3 or probs.shape[1] != len(self.scales):
            raise ValueError(f"probs must be (N, {len(self.scales)}, C), got shape {probs.shape}")
        if labels.shape != (probs.shape[0],):
            raise ValueError(f"labels must be ({probs.shape[0]},), got shape {labels.shape}")
        if labels.size and (labels.min() < 0 or labels.max() >= probs.shape[2]):
            raise ValueError(f"labels must be class indices in 0..{probs.shape[2] - 1}")
        object.__setattr__(self, "probs", probs)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "scales", tuple(Scale.coerce(s) for s in self.scales))
        object.__setattr__(self, "names", tuple(self.names))

    @property
    def n(self) -> int:
        return int(self.probs.shape[0])

    def ranks(self) -> np.ndarray:
        """(N, S) int64 rank of the true label at each scale (0 = top-1)."""
        return np.stack([label_ranks(self.probs[:, s], self.labels) for s in range(len(self.scales))], axis=1)

    def confidence(self, kind: str = "max") -> np.ndarray:
        """(N, S) float32 confidence at each scale: the top probability (``"max"``) or the gap
        between the two largest (``"margin"``)."""
        if kind not in CONFIDENCES:
            raise ValueError(f"unknown confidence {kind!r}; valid: {', '.join(CONFIDENCES)}")
        return cascade_confidence(self.probs, kind)

    def save(self, path: str | os.PathLike) -> Path:
        """Write an ``.npz`` (reload with :meth:`load` to search again without inference)."""
        path = Path(path)
        with open(path, "wb") as handle:
            np.savez_compressed(handle, probs=self.probs, labels=self.labels,
                                scales=np.array([[s.size, s.crop_pct] for s in self.scales], np.float64),
                                names=np.array(self.names, dtype=str),
                                meta=np.array(json.dumps({"format": SCORES_FORMAT, "model": self.model})))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Scores":
        with np.load(path, allow_pickle=False) as data:
            try:
                meta = json.loads(str(data["meta"]))
                scales = tuple(Scale(int(s), float(c)) for s, c in data["scales"])
                return cls(scales=scales, labels=data["labels"], probs=data["probs"],
                           names=tuple(str(n) for n in data["names"]), model=meta.get("model"))
            except KeyError as error:
                raise ValueError(f"{path} is not a calibration scores file (missing {error})") from None


def collect(classifier, reader: Reader, scales: Sequence[Scale], *,
            progress: Callable[[], None] | None = None) -> tuple[Scores, list[tuple[str, str]]]:
    """Run every scale on every image of ``reader`` (each image decoded once).

    Parameters
    ----------
    classifier : fixres_edge.runtime.Classifier
    reader : Reader
        Yields :class:`fixres_edge.evaluate.LabeledImage`.
    scales : sequence of Scale
    progress : callable, optional
        Called once per image.

    Returns
    -------
    (Scores, list of (name, error))
        Images that fail to decode or run are left out and listed.

    Notes
    -----
    A file is decoded once, at the largest short side any scale needs (JPEG DCT reduction as far as
    that allows), so every scale sees the same pixels; a policy run later decodes for its own scales
    only, which differs only for photos large enough to be reduced further.
    """
    from fixres_edge.decode import load_image
    from fixres_edge.runtime import ITEM_ERRORS, one_line

    scales = tuple(classifier.scale(s) for s in scales)
    if not scales:
        raise ValueError("calibration needs at least one scale")
    need = max(classifier.preprocessor(s).min_short_side for s in scales)
    num_classes = len(classifier.labels) or None
    rows: list[np.ndarray] = []
    labels: list[int] = []
    names: list[str] = []
    errors: list[tuple[str, str]] = []
    while (item := reader.get_next()) is not None:
        name = item.name or str(item.source)
        try:
            if num_classes is not None and not 0 <= item.label < num_classes:
                raise ValueError(f"label {item.label} is outside the model's 0..{num_classes - 1}")
            if isinstance(item.source, np.ndarray):
                image = item.source
            else:
                image = load_image(item.source, min_short_side=need if classifier.reduced_decode else None)
            rows.append(np.stack([classifier.probabilities(image, s)[0] for s in scales]))
        except ITEM_ERRORS as error:
            errors.append((name, one_line(error)))
        else:
            labels.append(int(item.label))
            names.append(name)
        if progress is not None:
            progress()
    if not rows:
        detail = f": {errors[0][0]}: {errors[0][1]}" if errors else ""
        raise ValueError(f"no image could be scored{detail}")
    return Scores(scales, np.array(labels), np.stack(rows), tuple(names), classifier.model.name), errors


# ---------------------------------------------------------------------- latency
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

    Returns
    -------
    dict of Scale -> Latency
        One entry per scale (and the reference).

    Notes
    -----
    Inference time depends only on the input shape, so scales of one size (the zoom levels of a
    static-size model) share their inference samples: noise cannot make one zoom level look
    cheaper than another. Preprocessing is timed per scale.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    rng = np.random.default_rng(seed)
    if image is None:
        image = rng.integers(0, 256, LATENCY_IMAGE_SHAPE, dtype=np.uint8)
    scales = tuple(classifier.scale(s) for s in dict.fromkeys(scales))
    if not scales:
        raise ValueError("measure_latency needs at least one scale")
    reference = scales[0] if reference is None else classifier.scale(reference)
    if reference not in scales:
        scales += (reference,)
    wall = np.zeros((repeats, len(scales)))
    infer = np.zeros_like(wall)
    pre = np.zeros_like(wall)
    for round_ in range(warmup + repeats):
        for i in rng.permutation(len(scales)):
            start = time.perf_counter()
            _, timings = classifier.probabilities(image, scales[i])
            elapsed_ms = (time.perf_counter() - start) * 1e3
            if round_ >= warmup:
                r = round_ - warmup
                wall[r, i], infer[r, i], pre[r, i] = elapsed_ms, timings["infer"], timings["preprocess"]
    rest = wall - pre                                   # inference + softmax + call overhead
    sizes = sorted({s.size for s in scales})
    columns = {size: [i for i, s in enumerate(scales) if s.size == size] for size in sizes}
    rest_by_size = {size: rest[:, cols].mean(axis=1) for size, cols in columns.items()}
    ref_index = scales.index(reference)
    ref_run = pre[:, ref_index] + rest_by_size[reference.size]
    ref_cost = float(np.median(ref_run))
    out = {}
    for i, scale in enumerate(scales):
        own = pre[:, i] + rest_by_size[scale.size]      # this scale's preprocessing + its size's rest
        ratio = float(np.median(own / ref_run))         # paired within each round
        q25, q75 = np.percentile(own, [25, 75])
        out[scale] = Latency(scale, ratio * ref_cost, ratio, float(np.median(infer[:, columns[scale.size]])),
                             float(np.median(pre[:, i])), float(q25), float(q75), repeats)
    return out


def device_description(threads: int | None) -> str:
    """``"x86_64 <cpu model> (N cores), onnxruntime X, T thread(s)"``."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import onnxruntime

        ort = f"onnxruntime {onnxruntime.__version__}"
    except ImportError:  # pragma: no cover - a dependency
        ort = "onnxruntime ?"
    parts = [platform.machine(), cpu, f"({os.cpu_count()} cores),"]
    return " ".join(p for p in parts if p) + f" {ort}, {threads or 'default'} thread(s)"


# ---------------------------------------------------------------------- candidates
@dataclass(frozen=True)
class Outcomes:
    """Per-image results of one candidate policy for each of ``G`` thresholds (G = 1 without).

    ``correct1`` / ``correct5``: (N, G) bool; ``cost``: (N, G) float64 ms; ``stages``: (N, G) int
    number of scales run.
    """

    kind: str
    scales: tuple[Scale, ...]
    combine: str
    thresholds: tuple[float, ...] | None
    correct1: np.ndarray
    correct5: np.ndarray
    cost: np.ndarray
    stages: np.ndarray
    confidence: str = "max"

    @property
    def key(self) -> str:
        return candidate_label(self.kind, self.scales, self.combine, self.confidence)


def _mean_probs(probs: np.ndarray, columns: Sequence[int]) -> np.ndarray:
    # The same arithmetic as run_policy: float64 mean over the scales, then float32.
    return np.mean(np.stack([probs[:, c].astype(np.float64) for c in columns]), axis=0).astype(np.float32)


def cascade_stops(confidence: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """Index of the scale each image stops at, per threshold.

    Parameters
    ----------
    confidence : ndarray
        (N, k) top probability at each stage (float32, compared in float32 like ``run_policy``).
    thresholds : sequence of float
        G thresholds.

    Returns
    -------
    ndarray
        (N, G) int64: the first stage whose confidence is >= the threshold, else the last (k - 1).
    """
    confidence = np.asarray(confidence)
    k = confidence.shape[1]
    t = np.asarray(thresholds, dtype=confidence.dtype)
    if k == 1:
        return np.zeros((confidence.shape[0], t.size), np.int64)
    passes = confidence[:, :k - 1, None] >= t[None, None, :]           # (N, k-1, G)
    return np.where(passes.any(axis=1), passes.argmax(axis=1), k - 1).astype(np.int64)


def candidate_label(kind: str, scales: Sequence[Scale], combine: str = "last", confidence: str = "max") -> str:
    sep = {"cascade": ">", "ensemble": "+"}.get(kind, "")
    text = sep.join(map(str, scales))
    if kind != "cascade":
        return f"{kind} {text}"
    return f"{kind} {text} ({combine}" + (f", {confidence})" if confidence != "max" else ")")


def enumerate_outcomes(scores: Scores, costs: Mapping[Scale, float], *,
                       thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
                       combines: Sequence[str] = ("last", "mean"), cascade_lengths: Sequence[int] = (2, 3),
                       ensemble_sizes: Sequence[int] = (2, 3), confidences: Sequence[str] = ("max",)
                       ) -> list[Outcomes]:
    """Per-image outcomes of every single scale, cascade and ensemble (see the module docstring).

    Cascades run scales in order of non-decreasing size (low -> high); scales of equal size (the
    zoom levels of a static-size model) may come in any order. Each cascade is tried with every
    confidence measure of ``confidences`` (see :data:`CONFIDENCES`).
    """
    for kind in confidences:
        if kind not in CONFIDENCES:
            raise ValueError(f"unknown confidence {kind!r}; valid: {', '.join(CONFIDENCES)}")
    for combine in combines:
        if combine not in ("last", "mean"):
            raise ValueError(f"unknown combine {combine!r}; valid: last, mean")
    scales = scores.scales
    missing = [str(s) for s in scales if s not in costs]
    if missing:
        raise ValueError(f"no latency for scale(s) {', '.join(missing)}")
    ranks = scores.ranks()
    confs = {kind: scores.confidence(kind) for kind in confidences}
    n = scores.n
    cost = np.array([costs[s] for s in scales], dtype=np.float64)
    out: list[Outcomes] = []
    ones = np.ones((n, 1), np.int64)
    for i, scale in enumerate(scales):
        out.append(Outcomes("single", (scale,), "last", None, ranks[:, i:i + 1] == 0, ranks[:, i:i + 1] < 5,
                            np.full((n, 1), cost[i]), ones))
    mean_cache: dict[tuple[int, ...], np.ndarray] = {}

    def mean_ranks(columns: tuple[int, ...]) -> np.ndarray:
        if columns not in mean_cache:
            mean_cache[columns] = label_ranks(_mean_probs(scores.probs, columns), scores.labels)
        return mean_cache[columns]

    t = tuple(float(x) for x in thresholds)
    for length in cascade_lengths:
        for order in itertools.permutations(range(len(scales)), length):
            sizes = [scales[i].size for i in order]
            if any(a > b for a, b in zip(sizes, sizes[1:])):
                continue
            cum = np.cumsum(cost[list(order)])
            for kind, conf in confs.items():
                stops = cascade_stops(conf[:, list(order)], t)
                for combine in combines:
                    if combine == "last":
                        stage_ranks = ranks[:, list(order)]
                    else:
                        stage_ranks = np.stack([ranks[:, order[0]]] + [mean_ranks(tuple(order[:j + 1]))
                                                                       for j in range(1, length)], axis=1)
                    answer = np.take_along_axis(stage_ranks, stops, axis=1)
                    out.append(Outcomes("cascade", tuple(scales[i] for i in order), combine, t, answer == 0,
                                        answer < 5, cum[stops], stops + 1, kind))
    for size in ensemble_sizes:
        for combo in itertools.combinations(range(len(scales)), size):
            r = mean_ranks(combo)[:, None]
            out.append(Outcomes("ensemble", tuple(scales[i] for i in combo), "mean", None, r == 0, r < 5,
                                np.full((n, 1), cost[list(combo)].sum()), np.full((n, 1), size, np.int64)))
    return out


def fit_threshold(correct: np.ndarray, cost: np.ndarray, budget: float) -> int | None:
    """Column (threshold) with the highest mean of ``correct`` among those whose mean ``cost`` is
    within ``budget``; ties go to the cheaper, then the first. ``None`` when nothing fits.

    ``correct`` and ``cost`` are (N, G) over the fitting images.
    """
    acc = correct.mean(axis=0)
    spend = cost.mean(axis=0)
    feasible = np.flatnonzero(spend <= budget * (1 + 1e-9))
    if feasible.size == 0:
        return None
    order = np.lexsort((feasible, spend[feasible], -acc[feasible]))
    return int(feasible[order[0]])


def cv_splits(n: int, repeats: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Repeated 2-fold splits: for each of ``repeats`` random halvings, (fit, test) both ways."""
    if n < 2:
        raise ValueError(f"cross-validation needs at least 2 images, got {n}")
    rng = np.random.default_rng(seed)
    splits = []
    for _ in range(repeats):
        perm = rng.permutation(n)
        a, b = np.sort(perm[: n // 2]), np.sort(perm[n // 2:])
        splits += [(a, b), (b, a)]
    return splits


# ---------------------------------------------------------------------- search
@dataclass(frozen=True)
class Candidate:
    """One scored policy (a row of the table).

    ``top1`` / ``top5`` / ``cost_ms`` are measured on all images at ``threshold``;
    ``top1_cv`` / ``top5_cv`` / ``cost_cv_ms`` are held-out (cross-validated) values: for a cascade,
    each half's threshold fitted on the other half at ``budget_ms``; for singles and ensembles
    (nothing fitted) the plain values. ``escalated``: fraction of images that ran more than one scale.
    """

    kind: str
    scales: tuple[Scale, ...]
    combine: str
    threshold: float | None
    budget_ms: float | None
    top1: float
    top5: float
    cost_ms: float
    top1_cv: float
    top5_cv: float
    cost_cv_ms: float
    escalated: float
    n: int
    confidence: str = "max"

    @property
    def label(self) -> str:
        return candidate_label(self.kind, self.scales, self.combine, self.confidence)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "scales": [s.to_dict() for s in self.scales], "combine": self.combine,
                "threshold": self.threshold, "budget_ms": self.budget_ms, "top1": self.top1, "top5": self.top5,
                "cost_ms": self.cost_ms, "top1_cv": self.top1_cv, "top5_cv": self.top5_cv,
                "cost_cv_ms": self.cost_cv_ms, "escalated": self.escalated, "n": self.n,
                "confidence": self.confidence, "label": self.label}

    def to_policy(self, **fields) -> ScalePolicy:
        if self.kind == "single":
            return ScalePolicy(scales=self.scales, mode="single", **fields)
        if self.kind == "ensemble":
            return ScalePolicy(scales=self.scales, mode="ensemble", combine="mean", **fields)
        return ScalePolicy(scales=self.scales, mode="cascade", threshold=self.threshold, combine=self.combine,
                           confidence=self.confidence, **fields)


@dataclass(frozen=True)
class SearchResult:
    """Output of :func:`search_policies`."""

    candidates: tuple[Candidate, ...]
    pareto: tuple[Candidate, ...]
    chosen: Candidate
    budget_ms: float
    train_scale: Scale
    train_cost_ms: float
    selection_cv: dict
    cv: str

    def relative(self, cost_ms: float) -> float:
        return cost_ms / self.train_cost_ms

    @property
    def best_single(self) -> Candidate:
        return max((c for c in self.candidates if c.kind == "single"), key=lambda c: (c.top1, -c.cost_ms))


def _rank_key(c: Candidate):
    return (-c.top1_cv, c.cost_cv_ms, KINDS.index(c.kind), -c.top5_cv)


def pareto_front(candidates: Iterable[Candidate], tolerance: float = 0.01) -> tuple[Candidate, ...]:
    """Candidates no other beats on cross-validated top-1 at a cost within ``tolerance`` (relative)
    of theirs, cheapest first.

    The tolerance keeps timing noise (a zoom level whose preprocessing is 0.3 % cheaper) from putting
    a less accurate policy on the front. Among equally accurate candidates the cheapest stays.
    """
    pool = sorted(candidates, key=lambda c: (c.cost_cv_ms, -c.top1_cv, KINDS.index(c.kind)))
    if not pool:
        return ()
    cost = np.array([c.cost_cv_ms for c in pool])
    top1 = np.array([c.top1_cv for c in pool])
    front = []
    for i, c in enumerate(pool):
        near = cost <= cost[i] * (1 + tolerance)
        if (top1[near] > top1[i]).any():
            continue
        if (top1[:i] >= top1[i]).any():  # as accurate and (sorted) no more expensive
            continue
        front.append(c)
    return tuple(front)


def search_policies(scores: Scores, costs: Mapping[Scale, float], *, train_scale: Scale, budget_ms: float | None = None,
           thresholds: Sequence[float] = DEFAULT_THRESHOLDS, combines: Sequence[str] = ("last", "mean"),
           cascade_lengths: Sequence[int] = (2, 3), ensemble_sizes: Sequence[int] = (2, 3),
           confidences: Sequence[str] | None = None, cv_repeats: int = 5, seed: int = 0,
           budget_grid: Sequence[float] = BUDGET_GRID) -> SearchResult:
    """Score every candidate policy and choose one (see the module docstring).

    Parameters
    ----------
    scores : Scores
    costs : mapping of Scale -> float
        Cost (ms) of running each scale; must include ``train_scale``.
    train_scale : Scale
        The reference: the default budget is its cost, and relative costs are against it.
    budget_ms : float, optional
        The most a chosen policy may cost per image on average (default: ``costs[train_scale]``).
    confidences : sequence of str, optional
        Cascade confidence measures to try (default: those :class:`ScalePolicy` can express).
    cv_repeats : int
        Random halvings for the repeated 2-fold cross-validation (seeded by ``seed``).

    Returns
    -------
    SearchResult
    """
    if train_scale not in costs:
        raise ValueError(f"no latency for the reference scale {train_scale}")
    if isinstance(cv_repeats, bool) or not isinstance(cv_repeats, int) or cv_repeats < 1:
        raise ValueError(f"cv_repeats must be a positive integer, got {cv_repeats!r}")
    train_cost = float(costs[train_scale])
    budget = train_cost if budget_ms is None else float(budget_ms)
    if not budget > 0:
        raise ValueError(f"budget must be positive, got {budget_ms!r} ms")
    outcomes = enumerate_outcomes(scores, costs, thresholds=thresholds, combines=combines,
                                  cascade_lengths=cascade_lengths, ensemble_sizes=ensemble_sizes,
                                  confidences=CONFIDENCES if confidences is None else confidences)
    splits = cv_splits(scores.n, cv_repeats, seed)
    budgets = sorted({round(train_cost * b, 9) for b in budget_grid} | {budget})
    candidates: list[Candidate] = []
    for o in outcomes:
        if o.thresholds is None:
            c1, c5, cost = float(o.correct1.mean()), float(o.correct5.mean()), float(o.cost.mean())
            candidates.append(Candidate(o.kind, o.scales, o.combine, None, None, c1, c5, cost, c1, c5, cost,
                                        float((o.stages > 1).mean()), scores.n))
            continue
        # One row per fitted threshold: when several budgets give the same threshold, the largest
        # one wins (its cross-validation is the least constrained), never crossing the main budget
        # (a row fitted above it may not be chosen).
        seen = set()
        for b in sorted(budgets, key=lambda x: (x <= budget * (1 + 1e-9), x), reverse=True):
            g = fit_threshold(o.correct1, o.cost, b)
            key = (b <= budget * (1 + 1e-9), g)
            if g is None or key in seen:
                continue
            held = _held_out(o, splits, b)
            if held is None:
                continue
            seen.add(key)
            candidates.append(Candidate(
                o.kind, o.scales, o.combine, o.thresholds[g], b, float(o.correct1[:, g].mean()),
                float(o.correct5[:, g].mean()), float(o.cost[:, g].mean()), *held,
                float((o.stages[:, g] > 1).mean()), scores.n, o.confidence))
    within = [c for c in candidates if (c.budget_ms if c.kind == "cascade" else c.cost_ms) <= budget * (1 + 1e-9)]
    if not within:
        cheapest = min(costs[s] for s in scores.scales)
        raise ValueError(f"budget {budget:.3g} ms is below the cheapest scale ({cheapest:.3g} ms); raise the budget")
    chosen = min(within, key=_rank_key)
    return SearchResult(tuple(candidates), pareto_front(candidates), chosen, budget, train_scale, train_cost,
                        _selection_cv(outcomes, splits, budget), f"2-fold x{cv_repeats}")


def _held_out(o: Outcomes, splits, budget: float) -> tuple[float, float, float] | None:
    hits1 = hits5 = spend = count = 0.0
    for fit, test in splits:
        g = fit_threshold(o.correct1[fit], o.cost[fit], budget)
        if g is None:
            return None
        hits1 += o.correct1[test, g].sum()
        hits5 += o.correct5[test, g].sum()
        spend += o.cost[test, g].sum()
        count += test.size
    return hits1 / count, hits5 / count, spend / count


def _selection_cv(outcomes: Sequence[Outcomes], splits, budget: float) -> dict:
    """The whole choice (every candidate, every threshold) made on one half, scored on the other."""
    hits1 = spend = count = 0.0
    picks: dict[str, int] = {}
    for fit, test in splits:
        best = None
        for o in outcomes:
            g = fit_threshold(o.correct1[fit], o.cost[fit], budget)
            if g is None:
                continue
            key = (-float(o.correct1[fit, g].mean()), float(o.cost[fit, g].mean()), KINDS.index(o.kind))
            if best is None or key < best[0]:
                best = (key, o, g)
        if best is None:
            continue
        _, o, g = best
        hits1 += o.correct1[test, g].sum()
        spend += o.cost[test, g].sum()
        count += test.size
        label = o.key + (f" @ {o.thresholds[g]:g}" if o.thresholds else "")
        picks[label] = picks.get(label, 0) + 1
    if not count:
        return {"top1": None, "cost_ms": None, "picks": {}}
    return {"top1": hits1 / count, "cost_ms": spend / count,
            "picks": dict(sorted(picks.items(), key=lambda kv: -kv[1]))}


# ---------------------------------------------------------------------- the whole run
def calibration_scales(classifier, sizes: Sequence[int] | None = None,
                       crop_pcts: Sequence[float] | None = None) -> tuple[Scale, ...]:
    """The scale grid to calibrate: ``sizes`` x ``crop_pcts``, defaulting to the model's FixRes set
    (:func:`fixres_edge.policy.default_scales`): sizes at the card's crop_pct for a dynamic-size
    model, crop_pcts at the fixed size for a static one."""
    card, model_input = classifier.card, classifier.input
    defaults = default_scales(card, model_input.dynamic_size, model_input.static_size)
    sizes = sorted(set(sizes)) if sizes else sorted({s.size for s in defaults})
    if crop_pcts:
        crops = sorted(set(float(c) for c in crop_pcts), reverse=True)
    elif model_input.dynamic_size:
        crops = [card.crop_pct or DEFAULT_CROP_PCT]
    else:
        crops = sorted({s.crop_pct for s in defaults}, reverse=True)
    return tuple(classifier.scale(Scale(size, crop)) for size in sizes for crop in crops)


def reference_scale(classifier) -> Scale:
    """The training size (or the static size) at the card's crop_pct: the cost a policy is compared to."""
    card, model_input = classifier.card, classifier.input
    size = model_input.static_size or card.train_size or DEFAULT_TRAIN_SIZE
    return classifier.scale(Scale(size, card.crop_pct or DEFAULT_CROP_PCT))


@dataclass(frozen=True)
class Calibration:
    """Everything one calibration produced."""

    scores: Scores
    latency: dict
    search: SearchResult
    policy: ScalePolicy
    errors: tuple = ()
    seconds: dict = field(default_factory=dict)
    device: str = ""

    def to_dict(self) -> dict[str, Any]:
        s = self.search
        return {
            "n": self.scores.n, "model": self.scores.model, "scales": [str(x) for x in self.scores.scales],
            "device": self.device, "cv": s.cv,
            "latency_ms": {str(k): v.to_dict() for k, v in self.latency.items()},
            "train_scale": str(s.train_scale), "train_cost_ms": s.train_cost_ms, "budget_ms": s.budget_ms,
            "best_single": s.best_single.to_dict(), "chosen": s.chosen.to_dict(), "selection_cv": s.selection_cv,
            "pareto": [c.to_dict() for c in s.pareto], "candidates": len(s.candidates),
            "policy": self.policy.to_dict(), "errors": [list(e) for e in self.errors], "seconds": self.seconds,
        }


def make_policy(search_result: SearchResult, latency: Mapping[Scale, Latency], *, model: str | None,
                device: str, threads: int | None, dataset: str | None = None) -> ScalePolicy:
    """The chosen candidate as a :class:`ScalePolicy`, with what it measured."""
    c = search_result.chosen
    n = c.n
    accuracy = {"top1": round(c.top1_cv, 6), "top5": round(c.top5_cv, 6), "top1_in_sample": round(c.top1, 6),
                "top5_in_sample": round(c.top5, 6),
                "top1_ci95": [round(x, 6) for x in wilson_interval(round(c.top1 * n), n)],
                "top1_selection_cv": (None if search_result.selection_cv.get("top1") is None
                                      else round(search_result.selection_cv["top1"], 6)),
                "n": n, "cv": search_result.cv}
    if dataset:
        accuracy["dataset"] = dataset
    latency_ms = {"expected": round(c.cost_ms, 4), "expected_cv": round(c.cost_cv_ms, 4),
                  "relative_to_train": round(c.cost_ms / search_result.train_cost_ms, 4),
                  "train_scale": str(search_result.train_scale),
                  "train_cost": round(search_result.train_cost_ms, 4), "budget": round(search_result.budget_ms, 4),
                  "per_scale": {str(s): round(latency[s].cost, 4) for s in c.scales if s in latency},
                  "escalated": round(c.escalated, 4), "threads": threads}
    notes = (f"chosen by fixres-edge calibrate: most accurate (cross-validated top-1) policy within "
             f"{search_result.budget_ms:.3g} ms ({search_result.budget_ms / search_result.train_cost_ms:.2f}x "
             f"{search_result.train_scale})")
    return c.to_policy(model=model, accuracy=accuracy, latency_ms=latency_ms, device=device, notes=notes)


def calibrate(classifier, reader: Reader | None, scales: Sequence[Scale] | None = None, *,
              budget_ms: float | None = None, budget_rel: float | None = None, latency_repeats: int = 40,
              cv_repeats: int = 5, seed: int = 0, scores: Scores | None = None,
              progress: Callable[[], None] | None = None, dataset: str | None = None, **search_options
              ) -> Calibration:
    """Collect scores (unless given), measure latency, search, and build the policy.

    ``budget_ms`` and ``budget_rel`` (a multiple of the training size's cost) are exclusive;
    neither means the training size's cost.
    """
    if budget_ms is not None and budget_rel is not None:
        raise ValueError("give budget_ms or budget_rel, not both")
    seconds: dict[str, float] = {}
    errors: list = []
    start = time.perf_counter()
    if scores is None:
        if reader is None:
            raise ValueError("calibrate needs a reader or saved scores")
        scores, errors = collect(classifier, reader, scales or calibration_scales(classifier), progress=progress)
        seconds["collect"] = time.perf_counter() - start
    elif scales is not None and tuple(scales) != scores.scales:
        raise ValueError(f"saved scores are for scales {', '.join(map(str, scores.scales))}, not "
                         f"{', '.join(map(str, scales))}")
    reference = reference_scale(classifier)
    start = time.perf_counter()
    latency = measure_latency(classifier, scores.scales, reference=reference, repeats=latency_repeats, seed=seed)
    seconds["latency"] = time.perf_counter() - start
    costs = {s: v.cost for s, v in latency.items()}
    if budget_rel is not None:
        if not budget_rel > 0:
            raise ValueError(f"budget_rel must be positive, got {budget_rel!r}")
        budget_ms = budget_rel * costs[reference]
    start = time.perf_counter()
    result = search_policies(scores, costs, train_scale=reference, budget_ms=budget_ms, cv_repeats=cv_repeats, seed=seed,
                    **search_options)
    seconds["search"] = time.perf_counter() - start
    device = device_description(classifier.threads)
    policy = make_policy(result, latency, model=classifier.model.name, device=device, threads=classifier.threads,
                         dataset=dataset)
    return Calibration(scores, latency, result, policy, tuple(errors), seconds, device)


# ---------------------------------------------------------------------- reporting
def scales_text(scales: Sequence[Scale], kind: str, all_scales: Sequence[Scale]) -> str:
    """Compact scale list: sizes only when every scale shares one crop_pct, crop_pcts only when
    they share one size."""
    one_crop = len({s.crop_pct for s in all_scales}) == 1
    one_size = len({s.size for s in all_scales}) == 1
    parts = [str(s.size) if one_crop else (f"{s.crop_pct:g}" if one_size else str(s)) for s in scales]
    return {"cascade": ">", "ensemble": "+"}.get(kind, "").join(parts)


def format_table(result: SearchResult, rows: Sequence[Candidate], all_scales: Sequence[Scale]) -> list[str]:
    """Text table: policy, scales, threshold, top-1 (CV), top-5 (CV), expected ms, relative cost."""
    one_size = len({s.size for s in all_scales}) == 1 and len(all_scales) > 1
    head = "crop_pcts" if one_size else "sizes"
    wide = any(c.confidence != "max" for c in rows)
    width = 24 if wide else 16
    lines = [f"{'policy':<{width}} {head:<18} {'thr':>5} {'top-1 (CV)':>10} {'top-5':>6} {'esc.':>5} "
             f"{'exp. ms':>8} {'rel.':>6}"]
    for c in rows:
        name = c.kind
        if c.kind == "cascade":
            name += f" ({c.combine}" + (f", {c.confidence})" if c.confidence != "max" else ")")
        thr = f"{c.threshold:.3g}" if c.threshold is not None else "-"
        mark = "  <- chosen" if c is result.chosen else ""
        lines.append(f"{name:<{width}} {scales_text(c.scales, c.kind, all_scales):<18} {thr:>5} "
                     f"{100 * c.top1_cv:>9.1f}% {100 * c.top5_cv:>5.1f}% "
                     f"{(f'{100 * c.escalated:.0f}%' if c.kind == 'cascade' else '-'):>5} "
                     f"{c.cost_cv_ms:>8.2f} {c.cost_cv_ms / result.train_cost_ms:>5.2f}x{mark}")
    return lines


def plot_pareto(result: SearchResult, path: str | os.PathLike, title: str | None = None) -> Path:
    """Draw every candidate (single, cascade, ensemble marked apart), the Pareto front, the budget,
    and the chosen policy into a PNG.

    Raises
    ------
    RuntimeError
        When matplotlib is not installed (the ``plot`` extra).
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("--plot needs matplotlib: pip install 'fixres-edge[plot]'") from None
    ref = result.train_cost_ms
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    styles = {"single": ("o", "tab:blue"), "cascade": ("^", "tab:orange"), "ensemble": ("s", "tab:green")}
    for kind, (marker, color) in styles.items():
        pts = [c for c in result.candidates if c.kind == kind]
        if pts:
            ax.scatter([c.cost_cv_ms / ref for c in pts], [100 * c.top1_cv for c in pts], marker=marker,
                       color=color, alpha=0.35 if kind == "cascade" else 0.8, s=22, label=kind)
    front = result.pareto
    ax.step([c.cost_cv_ms / ref for c in front], [100 * c.top1_cv for c in front], where="post", color="black",
            linewidth=1, label="Pareto front")
    all_scales = sorted({s for c in result.candidates for s in c.scales})
    for c in result.candidates:
        if c.kind == "single":
            ax.annotate(scales_text(c.scales, c.kind, all_scales), (c.cost_cv_ms / ref, 100 * c.top1_cv),
                        textcoords="offset points", xytext=(4, -10), fontsize=8)
    ch = result.chosen
    ax.scatter([ch.cost_cv_ms / ref], [100 * ch.top1_cv], marker="*", s=180, color="red", zorder=5,
               label=f"chosen: {ch.label}" + (f" @ {ch.threshold:g}" if ch.threshold is not None else ""))
    ax.axvline(result.budget_ms / ref, color="red", linestyle=":", linewidth=1, label="budget")
    ax.set_xlabel(f"expected cost relative to {result.train_scale} ({ref:.2f} ms)")
    ax.set_ylabel(f"top-1 % (cross-validated, n={ch.n})")
    ax.set_title(title or "FixRes scale policies")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
