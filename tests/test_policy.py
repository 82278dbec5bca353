"""Scale policies: validation, JSON round trip, default scale sets, and the pure run_policy logic."""
from __future__ import annotations

import json

import numpy as np
import pytest

from fixres_edge.model import ModelCard
from fixres_edge.policy import (
    Scale, ScalePolicy, default_scales, round_to_stride, run_policy,
)

LITE0 = ModelCard(name="efficientnet_lite0", train_size=224, crop_pct=0.875, size_stride=32,
                  scales=(192, 224, 256, 288))


# ------------------------------------------------------------------------------------------------
# Scale
@pytest.mark.aarch64
def test_scale_basics():
    s = Scale(256, 0.875)
    assert s.resize == 292 and str(s) == "256@0.875"
    assert Scale.coerce((224, 1)) == Scale(224, 1.0)
    assert Scale.coerce({"size": 192, "crop_pct": 0.9}) == Scale(192, 0.9)
    assert Scale.coerce(s) is s
    assert Scale(np.int64(224), np.float32(0.875)).size.__class__ is int
    assert sorted([Scale(256), Scale(192), Scale(224, 0.9)]) == [Scale(192), Scale(224, 0.9), Scale(256)]


@pytest.mark.parametrize("args, match", [
    ((0, 0.875), "size"), ((224.0, 0.875), "size"), ((True, 0.875), "size"),
    ((224, 0.0), "crop_pct"), ((224, 1.2), "crop_pct"), ((224, "0.9"), "crop_pct"),
])
def test_scale_validation(args, match):
    with pytest.raises(ValueError, match=match):
        Scale(*args)


def test_scale_coerce_errors():
    with pytest.raises(ValueError, match="a scale must be"):
        Scale.coerce(224)
    with pytest.raises(ValueError, match="a scale must be"):
        Scale.coerce({"size": 224, "crop": 0.9})


# ------------------------------------------------------------------------------------------------
# ScalePolicy
def cascade(threshold=0.7, combine="last", sizes=(192, 256)):
    return ScalePolicy(model="efficientnet_lite0", scales=[(s, 0.875) for s in sizes], mode="cascade",
                       threshold=threshold, combine=combine, accuracy={"top1": 0.889, "n": 500},
                       latency_ms={"mean": 10.3, "relative_to_train_size": 1.07}, device="x86_64 2 cores",
                       notes="threshold by 2-fold cross-validation")


@pytest.mark.aarch64
def test_policy_json_round_trip(tmp_path):
    policy = cascade()
    path = policy.save(tmp_path / "policy.json")
    data = json.loads(path.read_text())
    # One-model policies stay version 1 (older readers keep reading them).
    assert data["version"] == 1 and data["format"] == "fixres_edge.scale_policy"
    assert data["scales"] == [{"size": 192, "crop_pct": 0.875}, {"size": 256, "crop_pct": 0.875}]
    loaded = ScalePolicy.load(path)
    assert loaded == policy
    assert loaded.scales[0] == Scale(192, 0.875) and loaded.accuracy["top1"] == 0.889
    assert ScalePolicy.from_dict(policy.to_dict()) == policy
    single = ScalePolicy.single(256, model="m")
    assert ScalePolicy.from_dict(json.loads(single.to_json())) == single
    assert single.mode == "single" and single.scales == (Scale(256, 0.875),) and single.max_size == 256


def test_policy_is_frozen_and_copies_dicts():
    accuracy = {"top1": 0.9}
    policy = ScalePolicy.single(224, accuracy=accuracy)
    accuracy["top1"] = 0.1
    assert policy.accuracy == {"top1": 0.9}
    with pytest.raises(AttributeError):
        policy.mode = "ensemble"  # type: ignore[misc]


@pytest.mark.parametrize("kwargs, match", [
    (dict(scales=[]), "at least one scale"),
    (dict(scales=[(224, 0.875)], mode="fast"), "mode 'fast' is not valid; valid: single, cascade, ensemble"),
    (dict(scales=[(224, 0.875), (256, 0.875)], mode="single"), "exactly one scale"),
    (dict(scales=[(224, 0.875)], mode="cascade", threshold=0.5), "at least two scales"),
    (dict(scales=[(224, 0.875)], mode="ensemble"), "at least two scales"),
    (dict(scales=[(192, 0.875), (256, 0.875)], mode="cascade"), "needs a threshold"),
    (dict(scales=[(192, 0.875), (256, 0.875)], mode="cascade", threshold=1.5), "threshold must be in"),
    (dict(scales=[(192, 0.875), (192, 0.875)], mode="ensemble"), "repeat"),
    (dict(scales=[(192, 0.875), (256, 0.875)], mode="ensemble", combine="max"), "combine 'max'"),
    (dict(scales=[(224, 0.875)], accuracy=[0.9]), "accuracy"),
    (dict(scales=[(224, 0.875)], latency_ms={"mean": object()}), "latency_ms"),
    (dict(scales="224"), "list of scales"),
])
def test_policy_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ScalePolicy(**kwargs)


@pytest.mark.parametrize("change, match", [
    ({"version": 99}, "version 99 is not supported"),
    ({"version": None}, "no 'version'"),
    ({"format": "something else"}, "not a scale policy"),
    ({"tau": 0.5}, "unknown scale policy key\\(s\\) tau; valid:"),
    ({"scales": [{"size": 250.5, "crop_pct": 0.875}, {"size": 256}]}, "scale size"),
])
def test_policy_from_dict_errors(change, match):
    data = cascade().to_dict()
    data.update(change)
    if change.get("version", 1) is None:
        del data["version"]
    with pytest.raises(ValueError, match=match):
        ScalePolicy.from_dict(data)


def test_policy_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        ScalePolicy.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    with pytest.raises(ValueError, match="bad.json is not valid JSON"):
        ScalePolicy.load(bad)
    bad.write_text(json.dumps({"version": 1, "scales": [], "mode": "single"}))
    with pytest.raises(ValueError, match="bad.json: a policy needs at least one scale"):
        ScalePolicy.load(bad)


# ------------------------------------------------------------------------------------------------
# Default scale sets
@pytest.mark.aarch64
def test_default_scales_dynamic_from_card():
    assert default_scales(LITE0, dynamic_size=True) == tuple(Scale(s, 0.875) for s in (192, 224, 256, 288))


def test_default_scales_fixres_rule_without_card_scales():
    card = ModelCard(train_size=224, crop_pct=0.9, size_stride=32)
    assert [s.size for s in default_scales(card, True)] == [192, 224, 256, 288]
    assert {s.crop_pct for s in default_scales(card, True)} == {0.9}
    assert [s.size for s in default_scales(ModelCard(train_size=256, size_stride=32), True)] == [224, 256, 288, 320]
    assert [s.size for s in default_scales(ModelCard(train_size=300, size_stride=4), True)] == [256, 300, 344, 384]
    assert [s.size for s in default_scales(None, True)] == [192, 224, 256, 288]
    assert round_to_stride(249.6, 32) == 256 and round_to_stride(5, 32) == 32


def test_default_scales_static_vary_crop_pct():
    scales = default_scales(ModelCard(train_size=224, crop_pct=0.875), dynamic_size=False, static_size=224)
    assert scales == (Scale(224, 1.0), Scale(224, 0.875), Scale(224, 0.75))
    with_card_crop = default_scales(ModelCard(crop_pct=0.95), dynamic_size=False, static_size=160)
    assert [s.crop_pct for s in with_card_crop] == [1.0, 0.95, 0.875, 0.75]
    assert {s.size for s in with_card_crop} == {160}


# ------------------------------------------------------------------------------------------------
# run_policy (pure logic)
def fake_infer(table):
    """infer(scale) returning table[size] (a probability vector), recording the calls."""
    calls = []

    def infer(scale):
        calls.append(scale.size)
        return np.asarray(table[scale.size], dtype=np.float32)

    return infer, calls


UNSURE = [0.4, 0.35, 0.25]
SURE = [0.1, 0.85, 0.05]
MID = [0.2, 0.2, 0.6]


@pytest.mark.aarch64
def test_run_single():
    infer, calls = fake_infer({224: SURE})
    result = run_policy(ScalePolicy.single(224), infer)
    assert calls == [224] and result.scales_run == (Scale(224),)
    np.testing.assert_allclose(result.probs, SURE)
    assert result.probs.dtype == np.float32 and result.answered_by == Scale(224)


@pytest.mark.aarch64
def test_cascade_stops_at_first_confident_scale():
    infer, calls = fake_infer({192: SURE, 256: UNSURE})
    result = run_policy(cascade(0.7), infer)
    assert calls == [192] and result.answered_by.size == 192
    np.testing.assert_allclose(result.probs, SURE)


def test_cascade_escalates_while_unsure():
    infer, calls = fake_infer({192: UNSURE, 256: MID})
    result = run_policy(cascade(0.7), infer)
    assert calls == [192, 256] and [s.size for s in result.scales_run] == [192, 256]
    np.testing.assert_allclose(result.probs, MID)
    assert len(result.per_scale_probs) == 2
    np.testing.assert_allclose(result.per_scale_probs[0], UNSURE)


def test_cascade_threshold_is_inclusive_and_stops_midway():
    infer, calls = fake_infer({160: UNSURE, 192: [0.7, 0.2, 0.1], 256: SURE})
    result = run_policy(cascade(0.7, sizes=(160, 192, 256)), infer)
    assert calls == [160, 192] and result.answered_by.size == 192


def test_cascade_combine_mean():
    infer, _ = fake_infer({192: UNSURE, 256: MID})
    result = run_policy(cascade(0.7, combine="mean"), infer)
    np.testing.assert_allclose(result.probs, (np.array(UNSURE) + np.array(MID)) / 2, rtol=1e-6)
    infer, _ = fake_infer({192: SURE, 256: MID})
    np.testing.assert_allclose(run_policy(cascade(0.7, combine="mean"), infer).probs, SURE)


def test_cascade_threshold_one_runs_everything():
    infer, calls = fake_infer({192: SURE, 256: MID})
    run_policy(cascade(1.0), infer)
    assert calls == [192, 256]


def test_ensemble_averages_all():
    policy = ScalePolicy(scales=[(224, 1.0), (224, 0.875), (224, 0.75)], mode="ensemble")
    table = {1.0: UNSURE, 0.875: SURE, 0.75: MID}
    seen = []

    def infer(scale):
        seen.append(scale)
        return np.asarray(table[scale.crop_pct], np.float32)

    result = run_policy(policy, infer)
    assert seen == list(policy.scales) and result.scales_run == policy.scales
    np.testing.assert_allclose(result.probs, np.mean([UNSURE, SURE, MID], axis=0), rtol=1e-6)
    assert result.probs.dtype == np.float32


def test_run_policy_type_error():
    with pytest.raises(TypeError, match="ScalePolicy"):
        run_policy({"mode": "single"}, lambda s: np.ones(1))
