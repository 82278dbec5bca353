"""Calibrate a FixRes scale policy: measure every scale once, then search policies on the saved scores.

One module per capability:

* :mod:`~fixres_edge.calibrate.collect`: run the model over labeled photos at every candidate
  scale, once, and keep the probabilities (:class:`Scores`, savable);
* :mod:`~fixres_edge.calibrate.latency`: each scale's cost on this device, interleaved;
* :mod:`~fixres_edge.calibrate.search`: the pure search over single sizes, cascades and ensembles
  with cross-validated thresholds, and the chosen :class:`~fixres_edge.policy.ScalePolicy`;
* :mod:`~fixres_edge.calibrate.report`: the Pareto table, the text report, the optional plot.

:func:`calibrate` runs them in that order.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from fixres_edge.calibrate.collect import (SCORES_FORMAT, Scores, calibration_scales, collect, reference_scale,
                                          variant_scales)
from fixres_edge.calibrate.latency import LATENCY_IMAGE_SHAPE, Latency, device_description, measure_latency
from fixres_edge.calibrate.report import format_table, plot_pareto, report_text, scales_text
from fixres_edge.calibrate.search import (BUDGET_GRID, CONFIDENCES, DEFAULT_THRESHOLDS, KINDS, Candidate, Outcomes,
                                          SearchResult, candidate_label, cascade_stops, cv_splits, enumerate_outcomes,
                                          fit_threshold, make_policy, pareto_front, search_policies)
from fixres_edge.evaluate import Reader
from fixres_edge.policy import Scale, ScalePolicy
from fixres_edge.timing import stopwatch

__all__ = [
    "BUDGET_GRID", "CONFIDENCES", "Calibration", "Candidate", "DEFAULT_THRESHOLDS", "KINDS", "LATENCY_IMAGE_SHAPE",
    "Latency", "Outcomes", "SCORES_FORMAT", "Scores", "SearchResult", "calibrate", "calibration_scales",
    "candidate_label", "cascade_stops", "collect", "cv_splits", "device_description", "enumerate_outcomes",
    "fit_threshold", "format_table", "make_policy", "measure_latency", "pareto_front", "plot_pareto",
    "reference_scale", "report_text", "scales_text", "search_policies", "variant_scales",
]


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


def calibrate(classifier, reader: Reader | None, scales: Sequence[Scale] | None = None, *,
              budget_ms: float | None = None, budget_rel: float | None = None, latency_repeats: int = 40,
              cv_repeats: int = 5, seed: int = 0, scores: Scores | None = None,
              progress: Callable[[], None] | None = None, dataset: str | None = None, **search_options
              ) -> Calibration:
    """Collect scores (unless given), measure latency, search, and build the policy.

    ``budget_ms`` and ``budget_rel`` (a multiple of the training size's cost) are exclusive;
    neither means the training size's cost. ``search_options`` go to :func:`search_policies`.
    """
    if budget_ms is not None and budget_rel is not None:
        raise ValueError("give budget_ms or budget_rel, not both")
    if budget_rel is not None and not budget_rel > 0:
        raise ValueError(f"budget_rel must be positive, got {budget_rel!r}")
    seconds: dict[str, float] = {}
    errors: list[tuple[str, str]] = []
    if scores is None:
        if reader is None:
            raise ValueError("calibrate needs a reader or saved scores")
        with stopwatch(seconds, "collect"):
            scores, errors = collect(classifier, reader, scales or calibration_scales(classifier), progress=progress)
    elif scales is not None and tuple(scales) != scores.scales:
        raise ValueError(f"saved scores are for scales {', '.join(map(str, scores.scales))}, not "
                         f"{', '.join(map(str, scales))}")
    # The reference (and default budget) is the training size run by the first variant searched:
    # with ``fp32 int8`` that is fp32 at 224.
    reference = reference_scale(classifier, scores.scales[0].variant)
    with stopwatch(seconds, "latency"):
        latency = measure_latency(classifier, scores.scales, reference=reference, repeats=latency_repeats, seed=seed)
    costs = {s: v.cost for s, v in latency.items()}
    if budget_rel is not None:
        budget_ms = budget_rel * costs[reference]
    with stopwatch(seconds, "search"):
        result = search_policies(scores, costs, train_scale=reference, budget_ms=budget_ms, cv_repeats=cv_repeats,
                                 seed=seed, **search_options)
    device = device_description(classifier.threads)
    policy = make_policy(result, costs, model=classifier.model.name, device=device, threads=classifier.threads,
                         dataset=dataset)
    return Calibration(scores, latency, result, policy, tuple(errors), seconds, device)
