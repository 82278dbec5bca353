"""The policy search: pure functions of saved scores and per-scale costs (no I/O, no inference).

Candidates (:func:`enumerate_outcomes`):

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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from fixres_edge.evaluate import label_ranks, wilson_interval
from fixres_edge.policy import CONFIDENCES as POLICY_CONFIDENCES
from fixres_edge.policy import Scale, ScalePolicy, mean_probs

if TYPE_CHECKING:
    from fixres_edge.calibrate.collect import Scores

#: Confidence thresholds tried for cascades (escalate while the top probability is below).
DEFAULT_THRESHOLDS = tuple(round(0.025 * i, 3) for i in range(1, 39)) + (0.97, 0.99)
#: Budgets (multiples of the training size's cost) at which each cascade's threshold is fitted,
#: to draw its cost/accuracy curve; the chosen policy uses the one budget given.
BUDGET_GRID = (0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.5, 1.75, 2.0)
KINDS = ("single", "cascade", "ensemble")
#: Cascade confidence measures: top probability, or top-1 minus top-2 probability.
CONFIDENCES = POLICY_CONFIDENCES  # the measures a ScalePolicy can express


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
            mean_cache[columns] = label_ranks(mean_probs([scores.probs[:, c] for c in columns]), scores.labels)
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


def search_policies(scores: Scores, costs: Mapping[Scale, float], *, train_scale: Scale,
                    budget_ms: float | None = None, thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
                    combines: Sequence[str] = ("last", "mean"), cascade_lengths: Sequence[int] = (2, 3),
                    ensemble_sizes: Sequence[int] = (2, 3), confidences: Sequence[str] | None = None,
                    cv_repeats: int = 5, seed: int = 0, budget_grid: Sequence[float] = BUDGET_GRID
                    ) -> SearchResult:
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


# ---------------------------------------------------------------------- the chosen policy
def make_policy(search_result: SearchResult, costs: Mapping[Scale, float], *, model: str | None,
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
                  "per_scale": {str(s): round(float(costs[s]), 4) for s in c.scales if s in costs},
                  "escalated": round(c.escalated, 4), "threads": threads}
    notes = (f"chosen by fixres-edge calibrate: most accurate (cross-validated top-1) policy within "
             f"{search_result.budget_ms:.3g} ms ({search_result.budget_ms / search_result.train_cost_ms:.2f}x "
             f"{search_result.train_scale})")
    return c.to_policy(model=model, accuracy=accuracy, latency_ms=latency_ms, device=device, notes=notes)
