"""Per-scale latency: the accounting of ``measure_latency`` (pairing, warm-up dropped, zoom levels sharing
their inference samples) on a fake classifier with a fake clock, and one run on a tiny model.
Nothing here asserts on how long anything took."""
from __future__ import annotations

import types

import numpy as np
import pytest

from fixres_edge.calibrate import LATENCY_IMAGE_SHAPE, device_description, measure_latency
from fixres_edge.policy import Scale


class FakeClassifier:
    """``probabilities`` advances a fake nanosecond clock by the scale's cost times the round's load.

    Each call reports ``preprocess`` and ``infer`` ms like a Classifier; the first ``slow_calls``
    calls (the warm-up) take 100x as long, so keeping them would show.
    """

    # (preprocess ms, inference ms) per scale
    COSTS = {Scale(8): (1.0, 2.0), Scale(16): (2.0, 6.0), Scale(16, 0.75): (3.0, 6.0),
             Scale(16, variant="int8"): (2.0, 2.0)}

    def __init__(self, loads, slow_calls: int):
        self.now_ns = 0
        self.calls = []
        self.loads = loads
        self.slow_calls = slow_calls
        self.threads = 1

    def scale(self, s):
        return Scale.coerce(s)

    def clock(self) -> int:
        return self.now_ns

    def probabilities(self, image, scale):
        assert image.shape == LATENCY_IMAGE_SHAPE and image.dtype == np.uint8
        k = len(self.calls)
        self.calls.append(scale)
        pre, infer = self.COSTS[scale]
        factor = self.loads[k // 3 % len(self.loads)] * (100.0 if k < self.slow_calls else 1.0)
        self.now_ns += int(round((pre + infer) * factor * 1e6))
        return np.ones(3, np.float32) / 3, {"preprocess": pre * factor, "infer": infer * factor}


@pytest.mark.aarch64
def test_costs_are_paired_against_the_reference(monkeypatch):
    # Three scales per round; the load changes from round to round (another process), which a
    # paired ratio does not see.
    clf = FakeClassifier(loads=[1.0, 3.0, 1.5, 2.0], slow_calls=3 * 2)
    import fixres_edge.timing

    monkeypatch.setattr(fixres_edge.timing, "time", types.SimpleNamespace(perf_counter_ns=clf.clock))
    zoom = Scale(16, 0.75)
    latency = measure_latency(clf, [Scale(8), zoom], reference=Scale(16), repeats=8, warmup=2)
    assert set(latency) == {Scale(8), Scale(16), zoom}
    rounds = [clf.calls[i:i + 3] for i in range(0, len(clf.calls), 3)]
    assert len(rounds) == 10 and all(sorted(r) == sorted(latency) for r in rounds)  # interleaved
    ref = latency[Scale(16)]
    assert ref.ratio == pytest.approx(1.0) and ref.repeats == 8
    assert latency[Scale(8)].ratio == pytest.approx(3.0 / 8.0)
    # The zoom level shares its size's inference samples: it differs only by its preprocessing.
    assert latency[zoom].ratio == pytest.approx(9.0 / 8.0)
    assert latency[zoom].infer == ref.infer
    # Warm-up rounds are dropped: no 100x samples in the medians or quartiles.
    loads = np.array([1.0, 3.0, 1.5, 2.0] * 3)[2:10]
    assert ref.infer == pytest.approx(float(np.median(6.0 * loads)))
    assert latency[Scale(8)].preprocess == pytest.approx(float(np.median(1.0 * loads)))
    assert ref.cost == pytest.approx(float(np.median(8.0 * loads)))
    assert ref.cost_q75 < 100 * 8.0


def test_variants_of_one_size_keep_their_own_inference(monkeypatch):
    # fp32 and int8 at the same size run different models: their inference samples are not pooled.
    clf = FakeClassifier(loads=[1.0, 2.0], slow_calls=0)
    import fixres_edge.timing

    monkeypatch.setattr(fixres_edge.timing, "time", types.SimpleNamespace(perf_counter_ns=clf.clock))
    int8 = Scale(16, variant="int8")
    latency = measure_latency(clf, [Scale(8), int8], reference=Scale(16), repeats=6, warmup=1)
    assert latency[int8].ratio == pytest.approx(4.0 / 8.0)
    assert latency[int8].infer == pytest.approx(latency[Scale(16)].infer / 3.0)


def test_order_is_seeded(monkeypatch):
    import fixres_edge.timing

    orders = []
    for seed in (1, 1, 2):
        clf = FakeClassifier(loads=[1.0], slow_calls=0)
        monkeypatch.setattr(fixres_edge.timing, "time", types.SimpleNamespace(perf_counter_ns=clf.clock))
        measure_latency(clf, [Scale(8), Scale(16), Scale(16, 0.75)], repeats=6, warmup=0, seed=seed)
        orders.append(clf.calls)
    assert orders[0] == orders[1] and orders[0] != orders[2]


def test_bad_arguments():
    clf = FakeClassifier(loads=[1.0], slow_calls=0)
    with pytest.raises(ValueError, match="repeats must be a positive integer, got 0"):
        measure_latency(clf, [Scale(8)], repeats=0)
    with pytest.raises(ValueError, match="at least one scale"):
        measure_latency(clf, [])


def test_device_description_names_board_runtime_and_threads():
    text = device_description(2)
    assert "cores)" in text and "onnxruntime " in text and text.endswith("2 thread(s)")
    assert device_description(None).endswith("default thread(s)")


# ---------------------------------------------------------------------------------------------
# On a tiny model (real time; only the structure is checked)
def test_measure_latency_on_a_tiny_model(tmp_path):
    pytest.importorskip("onnx")
    from tiny_models import color_model

    from fixres_edge.runtime import Classifier

    clf = Classifier(color_model(tmp_path / "tiny.onnx"), threads=1)
    latency = measure_latency(clf, [Scale(8), Scale(24)], reference=Scale(16), repeats=3, warmup=1)
    assert set(latency) == {Scale(8), Scale(16), Scale(24)}
    assert latency[Scale(16)].ratio == pytest.approx(1.0)
    assert all(v.cost > 0 and v.infer > 0 and v.repeats == 3 for v in latency.values())
    zoom = measure_latency(clf, [Scale(16, 1.0), Scale(16, 0.75)], repeats=3, warmup=0)
    assert zoom[Scale(16, 1.0)].infer == zoom[Scale(16, 0.75)].infer
