"""Calibration: cascade search on synthetic probabilities with known answers, cross-validated thresholds,
consistency with ``run_policy``, Pareto fronts, latency pairing, written policies, and ``fixres-edge calibrate``."""
from __future__ import annotations

import itertools
import json
import sys

import numpy as np
import pytest

pytest.importorskip("onnx")

from test_evaluate import color_image, color_model, make_folder, run_cli, wnid  # noqa: E402

from fixres_edge.calibrate import (  # noqa: E402
    DEFAULT_THRESHOLDS, Candidate, Scores, calibrate, calibration_scales, cascade_stops, cv_splits, enumerate_outcomes,
    fit_threshold, format_table, make_policy, measure_latency, pareto_front, search_policies,
)
from fixres_edge.evaluate import LabeledFolder, evaluate  # noqa: E402
from fixres_edge.policy import Scale, ScalePolicy, run_policy  # noqa: E402
from fixres_edge.runtime import top_k  # noqa: E402

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
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    logits = rng.normal(0, 1.5, (n, len(scales), classes))
    logits[np.arange(n), :, labels] += rng.normal(1.5, 1.0, (n, len(scales)))
    probs = np.exp(logits)
    probs /= probs.sum(axis=2, keepdims=True)
    return Scores(scales, labels, probs.astype(np.float32), model="random")


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


def test_scores_validation_and_margin():
    s = easy_hard_scores(easy=2, hard=1)
    assert s.confidence().tolist()[2] == pytest.approx([0.4, 0.6])
    assert s.confidence("margin")[2].tolist() == pytest.approx([0.1, 0.6 - 0.4 / 3])
    with pytest.raises(ValueError, match="unknown confidence"):
        s.confidence("entropy")
    with pytest.raises(ValueError, match="probs must be"):
        Scores((A,), [0], np.zeros((1, 2, 3)))
    with pytest.raises(ValueError, match="class indices"):
        Scores((A,), [5], np.zeros((1, 1, 3)))


def test_scores_round_trip(tmp_path):
    s = random_scores()
    back = Scores.load(s.save(tmp_path / "s.npz"))
    assert back.scales == s.scales and back.model == "random"
    np.testing.assert_array_equal(back.probs, s.probs)
    np.testing.assert_array_equal(back.labels, s.labels)
    np.save(tmp_path / "other.npy", np.zeros(3))
    np.savez(tmp_path / "other.npz", probs=np.zeros(3))
    with pytest.raises(ValueError, match="not a calibration scores file"):
        Scores.load(tmp_path / "other.npz")


# ---------------------------------------------------------------------------------------------
# The search: known answers
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

    class L:  # latency stand-in
        def __init__(self, cost):
            self.cost = cost

    policy = make_policy(result, {A: L(1.0), B: L(3.0)}, model="synthetic", device="test device", threads=1,
                         dataset="easy/hard")
    loaded = ScalePolicy.load(policy.save(tmp_path / "policy.json"))
    assert loaded == policy
    assert (loaded.mode, loaded.scales, loaded.threshold) == ("cascade", (A, B), pytest.approx(0.425))
    assert loaded.accuracy["top1"] == 1.0 and loaded.accuracy["n"] == 50 and loaded.device == "test device"
    assert loaded.latency_ms["relative_to_train"] == pytest.approx(1.6 / 3.0, abs=1e-4)
    table = format_table(result, result.pareto, scores.scales)
    assert any("<- chosen" in line for line in table)


# ---------------------------------------------------------------------------------------------
# With a (tiny) model
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return color_model(tmp_path_factory.mktemp("m") / "tiny.onnx")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("photos") / "d", per_class=6, wrong=2)


def test_measure_latency_pairs_against_the_reference(tiny):
    from fixres_edge.runtime import Classifier

    clf = Classifier(tiny, threads=1)
    latency = measure_latency(clf, [Scale(8), Scale(24)], reference=Scale(16), repeats=3, warmup=1)
    assert set(latency) == {Scale(8), Scale(16), Scale(24)}
    assert latency[Scale(16)].ratio == pytest.approx(1.0)
    assert all(v.cost > 0 and v.infer > 0 and v.repeats == 3 for v in latency.values())
    # Zoom levels of one size share their inference samples.
    zoom = measure_latency(clf, [Scale(16, 1.0), Scale(16, 0.75)], repeats=3, warmup=0)
    assert zoom[Scale(16, 1.0)].infer == zoom[Scale(16, 0.75)].infer
    with pytest.raises(ValueError, match="repeats"):
        measure_latency(clf, [Scale(8)], repeats=0)


def test_calibrate_end_to_end_and_eval_reproduces_it(tiny, folder, tmp_path):
    from fixres_edge.runtime import Classifier

    clf = Classifier(tiny, threads=1)
    reader = LabeledFolder(folder, num_classes=3)
    cal = calibrate(clf, reader, calibration_scales(clf), latency_repeats=3, cv_repeats=2, budget_rel=2.0)
    assert cal.scores.scales == (Scale(8), Scale(16), Scale(24)) and cal.scores.n == 18
    assert cal.policy.accuracy["n"] == 18 and cal.policy.model == "tiny"
    path = cal.policy.save(tmp_path / "p.json")
    # Evaluating the written policy gives the accuracy calibration measured on all images.
    result = evaluate(Classifier(tiny, policy=path, threads=1), LabeledFolder(folder, num_classes=3))
    assert result.summary()["top1"] == pytest.approx(cal.policy.accuracy["top1_in_sample"])
    data = cal.to_dict()
    assert {"pareto", "chosen", "latency_ms", "selection_cv", "best_single"} <= set(data)
    json.dumps(data)


def test_static_model_searches_zoom(tmp_path):
    from fixres_edge.runtime import Classifier

    card = {"name": "tiny-static", "labels": ["red", "green", "blue"], "train_size": 16, "crop_pct": 0.875,
            "mean": [0, 0, 0], "std": [1, 1, 1]}
    model = color_model(tmp_path / "static.onnx", size=16, card=card, center_weight=True)
    clf = Classifier(model, threads=1)
    scales = calibration_scales(clf)
    assert scales == (Scale(16, 1.0), Scale(16, 0.875), Scale(16, 0.75))
    assert calibration_scales(clf, crop_pcts=[0.9, 1.0]) == (Scale(16, 1.0), Scale(16, 0.9))
    with pytest.raises(ValueError, match="static size 16"):
        calibration_scales(clf, sizes=[24])
    root = tmp_path / "photos"
    root.mkdir()
    for k, (center, ring) in enumerate(itertools.product(["red", "green", "blue"], repeat=2)):
        cv2_write(root / f"{wnid(['red', 'green', 'blue'].index(center))}_{k:02d}.png",
                  color_image(center, 48, 64, seed=k, border=ring))
    (root / "classes.tsv").write_text("wnid\n" + "\n".join(wnid(i) for i in range(3)) + "\n")
    cal = calibrate(clf, LabeledFolder(root, num_classes=3), scales, latency_repeats=2, cv_repeats=2)
    singles = {c.scales[0].crop_pct: c.top1 for c in cal.search.candidates if c.kind == "single"}
    assert singles[0.75] >= singles[1.0]  # zooming in finds the (center) object
    assert cal.search.train_scale == Scale(16, 0.875)


def cv2_write(path, image):
    import cv2

    cv2.imwrite(str(path), image)


# ---------------------------------------------------------------------------------------------
# CLI
def test_cli_calibrate(tiny, folder, tmp_path, capsys):
    out_policy, plot, saved = tmp_path / "p.json", tmp_path / "pareto.png", tmp_path / "s.npz"
    code, out, err = run_cli(["calibrate", str(folder), "--model", str(tiny), "--sizes", "8", "16", "24",
                              "--repeats", "2", "--cv-repeats", "2", "--out", str(out_policy), "--plot", str(plot),
                              "--save-scores", str(saved)], capsys)
    assert code == 0, err
    assert "top-1 (CV)" in out and "<- chosen" in out and "policy   written to" in out
    assert ScalePolicy.load(out_policy).model == "tiny"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, err = run_cli(["calibrate", "--from-scores", str(saved), "--model", str(tiny), "--repeats", "2",
                              "--budget-rel", "1.5", "--json", "--all"], capsys)
    data = json.loads(out)
    assert code == 0 and data["n"] == 18 and data["budget_ms"] == pytest.approx(1.5 * data["train_cost_ms"])
    assert {"pareto", "chosen", "policy", "latency_ms", "seconds"} <= set(data)


def test_cli_calibrate_errors(tiny, folder, tmp_path, capsys, monkeypatch):
    code, _, err = run_cli(["calibrate", "--model", str(tiny)], capsys)
    assert code == 1 and "give a DIR" in err
    code, _, err = run_cli(["calibrate", str(folder), "--model", str(tiny), "--sizes", "12"], capsys)
    assert code == 1 and "not a multiple of 8" in err
    code, _, err = run_cli(["calibrate", str(folder), "--model", str(tiny), "--budget-ms", "0.000001",
                            "--repeats", "1", "--cv-repeats", "1", "--limit", "4"], capsys)
    assert code == 1 and "below the cheapest scale" in err and err.count("\n") == 1
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, _, err = run_cli(["calibrate", str(folder), "--model", str(tiny), "--plot", str(tmp_path / "x.png")],
                           capsys)
    assert code == 1 and "pip install 'fixres-edge[plot]'" in err and err.count("\n") == 1
