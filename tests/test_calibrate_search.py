"""The policy search, pure and fast: synthetic scores with known answers, cross-validated thresholds
checked against a plain reimplementation, consistency with ``run_policy``, Pareto fronts, and the
written policy. No model, no timing, no files except the policy round trip."""
from __future__ import annotations

import numpy as np
import pytest

from synthetic_scores import A, B, easy_hard_scores, random_scores

from fixres_edge.calibrate import (
    DEFAULT_THRESHOLDS, Candidate, Scores, cascade_stops, cv_splits, enumerate_outcomes, fit_threshold, make_policy,
    pareto_front, search_policies,
)
from fixres_edge.policy import Scale, ScalePolicy, mean_probs, run_policy
from fixres_edge.prediction import top_k


# ---------------------------------------------------------------------------------------------
# Building blocks
@pytest.mark.aarch64
def test_cascade_stops_first_confident_stage():
    conf = np.array([[0.9, 0.1, 0.1], [0.3, 0.6, 0.2], [0.3, 0.2, 0.1]], np.float32)
    stops = cascade_stops(conf, [0.5, 0.95])
    assert stops.tolist() == [[0, 2], [1, 2], [2, 2]]
    # Compared in float32, like run_policy: a confidence equal to the threshold stops.
    assert cascade_stops(np.array([[0.4, 0.0]], np.float32), [0.4]).tolist() == [[0]]


@pytest.mark.aarch64
def test_fit_threshold_budget_and_ties():
    correct = np.array([[0, 1, 1, 1], [0, 0, 1, 1]], bool)
    cost = np.array([[1.0, 2.0, 3.0, 2.5], [1.0, 2.0, 3.0, 2.5]])
    assert fit_threshold(correct, cost, 10.0) == 3       # 2 and 3 tie on accuracy: the cheaper wins
    assert fit_threshold(correct, cost, 2.0) == 1
    assert fit_threshold(correct, cost, 0.5) is None


def test_cv_splits_are_disjoint_halves():
    splits = cv_splits(11, 3, seed=0)
    assert len(splits) == 6
    for fit, test in splits:
        assert len(fit) + len(test) == 11 and not set(fit) & set(test)
    again = cv_splits(11, 3, seed=0)  # seeded: the same halves every time
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(again, splits))
    with pytest.raises(ValueError, match="at least 2"):
        cv_splits(1, 1, 0)


def test_search_finds_the_cascade_with_known_answer():
    scores = easy_hard_scores()
    result = search_policies(scores, {A: 1.0, B: 3.0}, train_scale=B)
    c = result.chosen
    assert (c.kind, c.scales, c.combine) == ("cascade", (A, B), "last")
    assert c.threshold == pytest.approx(0.425)   # the lowest threshold that escalates the hard images
    assert c.top1 == c.top1_cv == 1.0
    assert c.cost_ms == pytest.approx(1.0 + 0.2 * 3.0) and c.escalated == pytest.approx(0.2)
    assert result.selection_cv["top1"] == 1.0
    assert result.best_single.scales == (B,)
    singles = {x.scales: x for x in result.candidates if x.kind == "single"}
    assert singles[(A,)].top1 == 0.8 and singles[(B,)].top1 == 1.0


def test_search_respects_the_budget():
    scores = easy_hard_scores()
    # 1.2 cannot pay for escalating the hard fifth (1.6): A alone (80 %) is the best within it.
    result = search_policies(scores, {A: 1.0, B: 3.0}, train_scale=B, budget_ms=1.2)
    assert result.chosen.kind == "single" and result.chosen.scales == (A,)
    assert all(c.cost_ms <= 1.2 + 1e-9 for c in [result.chosen])
    with pytest.raises(ValueError, match="below the cheapest scale"):
        search_policies(scores, {A: 1.0, B: 3.0}, train_scale=B, budget_ms=0.5)
    with pytest.raises(ValueError, match="no latency"):
        search_policies(scores, {A: 1.0}, train_scale=B)


def test_margin_cascade_found_when_top_probability_cannot_tell():
    # Every image's top probability at A is 0.5; only the gap to the second class tells the hard ones.
    n, classes = 40, 4
    labels = np.arange(n) % classes
    probs = np.zeros((n, 2, classes), np.float32)
    for i, y in enumerate(labels):
        hard = i % 4 == 0
        probs[i, 0] = 0.05 if hard else 0.2
        probs[i, 0, (y + 1) % classes if hard else y] = 0.5
        probs[i, 0, y if hard else (y + 1) % classes] = 0.4 if hard else 0.1
        probs[i, 0] /= probs[i, 0].sum()
        probs[i, 1] = 0.1
        probs[i, 1, y] = 0.7
    scores = Scores((A, B), labels, probs)
    only_max = search_policies(scores, {A: 1.0, B: 3.0}, train_scale=B, budget_ms=2.0, confidences=("max",))
    both = search_policies(scores, {A: 1.0, B: 3.0}, train_scale=B, budget_ms=2.0, confidences=("max", "margin"))
    assert only_max.chosen.top1_cv < 1.0
    assert both.chosen.confidence == "margin" and both.chosen.top1_cv == 1.0
    assert both.chosen.to_policy().confidence == "margin"


def test_cross_validation_matches_a_plain_reimplementation():
    scores = random_scores(n=50, scales=(A, B), seed=4)
    costs = {A: 1.0, B: 2.5}
    budget = 2.0
    result = search_policies(scores, costs, train_scale=B, budget_ms=budget, cv_repeats=3, seed=7,
                    budget_grid=(), combines=("last",), cascade_lengths=(2,), ensemble_sizes=())
    row = next(c for c in result.candidates if c.kind == "cascade")
    # Plain loops: fit the threshold on one half (best accuracy within the budget, cheaper on ties),
    # score it on the other.
    conf = scores.probs.max(axis=2)
    right = scores.probs.argmax(axis=2) == scores.labels[:, None]
    thresholds = DEFAULT_THRESHOLDS

    def outcome(i, t):
        first = conf[i, 0] >= np.float32(t)
        return (right[i, 0] if first else right[i, 1]), (costs[A] if first else costs[A] + costs[B])

    hits = spend = count = 0
    for fit, test in cv_splits(scores.n, 3, 7):
        best = None
        for g, t in enumerate(thresholds):
            acc = np.mean([outcome(i, t)[0] for i in fit])
            cost = np.mean([outcome(i, t)[1] for i in fit])
            if cost <= budget and (best is None or (-acc, cost, g) < best[0]):
                best = ((-acc, cost, g), t)
        for i in test:
            ok, c = outcome(i, best[1])
            hits += ok
            spend += c
            count += 1
    assert row.top1_cv == pytest.approx(hits / count)
    assert row.cost_cv_ms == pytest.approx(spend / count)


def test_cross_validated_accuracy_is_not_the_in_sample_optimum():
    # Confidence unrelated to correctness: any threshold that looks better in-sample is luck.
    rng = np.random.default_rng(11)
    n = 200
    labels = rng.integers(0, 3, n)
    probs = rng.dirichlet(np.ones(3), (n, 2)).astype(np.float32)
    scores = Scores((A, B), labels, probs)
    result = search_policies(scores, {A: 1.0, B: 1.0}, train_scale=A, budget_ms=1.6, budget_grid=())
    cascades = [c for c in result.candidates if c.kind == "cascade"]
    assert np.mean([c.top1 - c.top1_cv for c in cascades]) > 0


@pytest.mark.parametrize("combine", ["last", "mean"])
def test_outcomes_agree_with_run_policy(combine):
    scores = random_scores(n=40, seed=2)
    costs = {s: float(s.size) for s in scores.scales}
    outcomes = enumerate_outcomes(scores, costs, thresholds=(0.3, 0.6, 0.9), combines=(combine,))
    checked = 0
    for o in outcomes:
        thresholds = o.thresholds or (None,)
        for g, t in enumerate(thresholds):
            if o.kind == "cascade":
                policy = ScalePolicy(scales=o.scales, mode="cascade", threshold=t, combine=combine)
            elif o.kind == "ensemble":
                policy = ScalePolicy(scales=o.scales, mode="ensemble")
            else:
                policy = ScalePolicy(scales=o.scales, mode="single")
            for i in range(scores.n):
                run = run_policy(policy, lambda s: scores.probs[i, scores.scales.index(s)])
                order = top_k(run.probs, 5)
                assert o.correct1[i, g] == (order[0] == scores.labels[i])
                assert o.correct5[i, g] == (scores.labels[i] in order)
                assert o.cost[i, g] == pytest.approx(sum(costs[s] for s in run.scales_run))
                checked += 1
    assert checked == sum(len(o.thresholds or (None,)) for o in outcomes) * scores.n


def test_cascades_go_low_to_high_but_zoom_levels_in_any_order():
    dynamic = enumerate_outcomes(random_scores(), {Scale(8): 1, Scale(16): 2, Scale(24): 3}, combines=("last",))
    labels = {o.key for o in dynamic if o.kind == "cascade"}
    assert "cascade 8@0.875>24@0.875 (last)" in labels and "cascade 24@0.875>8@0.875 (last)" not in labels
    zoom = (Scale(16, 1.0), Scale(16, 0.875))
    static = enumerate_outcomes(random_scores(scales=zoom), {s: 1.0 for s in zoom}, combines=("last",))
    labels = {o.key for o in static if o.kind == "cascade"}
    assert labels == {"cascade 16@1>16@0.875 (last)", "cascade 16@0.875>16@1 (last)"}


def test_pareto_front():
    def cand(kind, cost, top1):
        return Candidate(kind, (A,), "last", None, None, top1, top1, cost, top1, top1, cost, 0.0, 10)

    pts = [cand("single", 1, 0.5), cand("cascade", 1.5, 0.7), cand("single", 2, 0.6), cand("ensemble", 3, 0.7),
           cand("single", 3, 0.8), cand("cascade", 0.5, 0.2)]
    front = pareto_front(pts)
    assert [(c.cost_cv_ms, c.top1_cv) for c in front] == [(0.5, 0.2), (1, 0.5), (1.5, 0.7), (3, 0.8)]


def test_policy_written_and_loadable(tmp_path):
    scores = easy_hard_scores()
    result = search_policies(scores, {A: 1.0, B: 3.0}, train_scale=B)

    policy = make_policy(result, {A: 1.0, B: 3.0}, model="synthetic", device="test device", threads=1,
                         dataset="easy/hard")
    loaded = ScalePolicy.load(policy.save(tmp_path / "policy.json"))
    assert loaded == policy
    assert (loaded.mode, loaded.scales, loaded.threshold) == ("cascade", (A, B), pytest.approx(0.425))
    assert loaded.accuracy["top1"] == 1.0 and loaded.accuracy["n"] == 50 and loaded.device == "test device"
    assert loaded.latency_ms["relative_to_train"] == pytest.approx(1.6 / 3.0, abs=1e-4)
    assert loaded.latency_ms["per_scale"] == {str(A): 1.0, str(B): 3.0}


@pytest.mark.aarch64
def test_mean_combine_uses_the_policy_arithmetic():
    # A cascade combining by "mean" is scored with the very mean run_policy computes: equal ranks
    # even where float32 rounding could tip a near tie.
    scores = random_scores(n=30, seed=5)
    costs = {s: 1.0 for s in scores.scales}
    outcomes = enumerate_outcomes(scores, costs, thresholds=(1.1,), combines=("mean",), cascade_lengths=(3,),
                                  ensemble_sizes=(3,))
    expected = mean_probs([scores.probs[:, i] for i in range(3)]).argmax(axis=1) == scores.labels
    for o in outcomes:
        if len(o.scales) == 3:  # the cascade never stops early at 1.1: it runs all three, like the ensemble
            np.testing.assert_array_equal(o.correct1[:, 0], expected)


@pytest.mark.aarch64
def test_search_needs_no_runtime():
    # The search is pure: importing it (or the package) loads neither ONNX Runtime, OpenCV, Numba
    # nor matplotlib, so saved scores can be searched anywhere.
    import subprocess
    import sys

    code = ("import sys, fixres_edge.calibrate, fixres_edge.calibrate.search; "
            "print(sorted(m for m in ('onnxruntime', 'cv2', 'numba', 'matplotlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
