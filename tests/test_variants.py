"""Scales that name a model variant: JSON, ordering, files relative to the policy, sessions opened
once and lazily, the shipped default policy, and ``calibrate --models`` on tiny models."""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

pytest.importorskip("onnx")

from cli_runner import run_cli  # noqa: E402
from tiny_images import color_image, make_folder  # noqa: E402
from tiny_models import color_model  # noqa: E402

from fixres_edge.calibrate import Scores, calibrate, calibration_scales, measure_latency, variant_scales  # noqa: E402
from fixres_edge.evaluate import LabeledFolder  # noqa: E402
from fixres_edge.policy import Scale, ScalePolicy  # noqa: E402
from fixres_edge.runtime import Classifier, default_policy  # noqa: E402


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Two variants of one 3-class network: 'sharp' (confident) and 'soft' (gain 1: unsure)."""
    d = tmp_path_factory.mktemp("variants")
    return {"dir": d, "sharp": color_model(d / "sharp.onnx", gain=8.0), "soft": color_model(d / "soft.onnx", gain=1.0)}


# ------------------------------------------------------------------------------------------------
# Scale.variant
@pytest.mark.aarch64
def test_scale_variant_json_order_and_text():
    s = Scale(224, 0.875, "int8")
    assert str(s) == "int8:224@0.875" and s.geometry == Scale(224, 0.875) and s != Scale(224, 0.875)
    assert Scale.coerce({"size": 224, "crop_pct": 0.875, "variant": "int8"}) == s
    assert Scale.coerce((224, 0.875, "fp32")) == Scale(224, 0.875, "fp32")
    assert s.to_dict() == {"size": 224, "crop_pct": 0.875, "variant": "int8"}
    assert Scale(224).to_dict() == {"size": 224, "crop_pct": 0.875}  # one-model policies look as before
    # No variant sorts first; then by name; mixed lists sort without a TypeError.
    assert sorted([Scale(224, variant="int8"), Scale(256), Scale(224, variant="fp32"), Scale(224)]) == [
        Scale(224), Scale(224, variant="fp32"), Scale(224, variant="int8"), Scale(256)]
    assert Scale(224, variant="model_int8.onnx").variant == "model_int8.onnx"


@pytest.mark.parametrize("variant", ["int4", "model", 8, "fp16"])
def test_bad_variant_is_one_line_error_with_choices(variant):
    with pytest.raises(ValueError, match="valid: fp32, int8, or an ONNX file") as info:
        Scale(224, 0.875, variant)
    assert "\n" not in str(info.value)


def test_policy_with_variants_round_trips_as_version_2(tmp_path):
    policy = ScalePolicy(model="m", scales=[(224, 0.875, "int8"), (256, 0.875, "fp32")], mode="cascade",
                         threshold=0.1, confidence="margin")
    path = policy.save(tmp_path / "p.json")
    data = json.loads(path.read_text())
    assert data["version"] == 2 and data["scales"][0]["variant"] == "int8"
    loaded = ScalePolicy.load(path)
    assert loaded == policy and loaded.variants == ("int8", "fp32") and loaded.base_dir == str(tmp_path.resolve())


def test_variant_files_are_saved_relative_to_the_policy(pair, tmp_path, monkeypatch):
    monkeypatch.chdir(pair["dir"])
    policy = ScalePolicy(scales=[(16, 0.875, "sharp.onnx"), (24, 0.875, "soft.onnx")], mode="cascade",
                         threshold=0.9)
    out = tmp_path / "policies" / "p.json"
    out.parent.mkdir()
    policy.save(out)
    saved = [s["variant"] for s in json.loads(out.read_text())["scales"]]
    expected = os.path.relpath(pair["dir"] / "sharp.onnx", out.parent)
    assert saved[0] == expected.replace(os.sep, "/") and saved[0] != "sharp.onnx"
    # Loaded from anywhere, the variants resolve against the policy's folder.
    monkeypatch.chdir(tmp_path)
    clf = Classifier(policy=out, threads=1)
    assert clf.path.resolve() == (pair["dir"] / "sharp.onnx").resolve()


def test_missing_variant_file_fails_at_construction(pair, tmp_path):
    policy = ScalePolicy(scales=[(16, 0.875, "absent.onnx")], mode="single").save(tmp_path / "p.json")
    with pytest.raises(FileNotFoundError, match="model variant file not found: .*absent.onnx .*policy's folder"):
        Classifier(pair["sharp"], policy=policy)


# ------------------------------------------------------------------------------------------------
# Sessions: once, lazily
def cascade(pair, threshold):
    return ScalePolicy(scales=[(16, 0.875, str(pair["soft"])), (24, 0.875, str(pair["sharp"]))], mode="cascade",
                       threshold=threshold)


def test_escalation_only_variant_opens_on_first_escalation(pair):
    image = color_image("red", mix=0.3, other="green")
    # The soft model is never sure of 0.99: every image escalates to the sharp one.
    clf = Classifier(policy=cascade(pair, 0.99), threads=1)
    assert clf.path == pair["soft"] and clf.open_models == (pair["soft"],)
    p = clf.predict(image)
    assert [s.variant for s in p.scales] == [str(pair["soft"]), str(pair["sharp"])]
    assert [m.name for m in clf.open_models] == ["soft.onnx", "sharp.onnx"]
    assert p.per_scale[1]["variant"] == str(pair["sharp"])
    session = clf.variant_model(str(pair["sharp"])).session
    clf.predict(image)
    assert clf.variant_model(str(pair["sharp"])).session is session  # opened once
    # The answer is the sharp model's own: variants really run different files.
    sharp = Classifier(pair["sharp"], size=24, threads=1).predict(image)
    np.testing.assert_allclose(p.probs, sharp.probs, rtol=1e-6)
    assert p.prob > clf.predict(image, size=16).prob  # size= runs the classifier's own (soft) model


def test_confident_images_never_open_the_escalation_variant_but_warmup_does(pair):
    clf = Classifier(policy=cascade(pair, 0.05), threads=1)
    clf.predict(color_image("blue"))
    assert clf.open_models == (pair["soft"],)
    clf.warmup()
    assert set(clf.open_models) == {pair["soft"], pair["sharp"]}


def test_variant_naming_the_base_file_shares_its_session(pair):
    policy = ScalePolicy(scales=[(16, 0.875, None), (24, 0.875, str(pair["sharp"]))], mode="ensemble")
    clf = Classifier(pair["sharp"], policy=policy, threads=1)
    clf.warmup()
    assert clf.open_models == (pair["sharp"],)


def test_mismatched_variant_is_a_one_line_error(pair, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    nhwc = tmp_path / "nhwc.onnx"
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", "H", "W", 3])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])
    model = helper.make_model(helper.make_graph([helper.make_node("ReduceMean", ["image"], ["logits"], axes=[1, 2],
                                                                  keepdims=0)], "nhwc", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(nhwc))
    policy = ScalePolicy(scales=[(16, 0.875, None), (24, 0.875, str(nhwc))], mode="ensemble")
    clf = Classifier(pair["sharp"], policy=policy, threads=1)
    with pytest.raises(ValueError, match="does not match sharp.onnx: input layout NHWC vs NCHW") as info:
        clf.warmup()
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------------------------
# calibrate --models
def test_latency_is_measured_per_variant_and_size(pair):
    clf = Classifier(pair["sharp"], threads=1)
    scales = variant_scales([Scale(16), Scale(24)], [str(pair["sharp"]), str(pair["soft"])])
    assert [str(s.size) + os.path.basename(s.variant) for s in scales] == [
        "16sharp.onnx", "24sharp.onnx", "16soft.onnx", "24soft.onnx"]
    latency = measure_latency(clf, scales, reference=scales[1], repeats=3, warmup=1)
    assert set(latency) == set(scales) and latency[scales[1]].ratio == pytest.approx(1.0)


def test_calibrate_models_searches_both_and_writes_a_runnable_policy(pair, tmp_path, monkeypatch, capsys):
    folder = make_folder(tmp_path / "photos", per_class=4)
    out = tmp_path / "out" / "policy.json"
    out.parent.mkdir()
    monkeypatch.chdir(pair["dir"])
    code, text, err = run_cli(["calibrate", str(folder), "--models", "sharp.onnx", "soft.onnx", "--sizes", "16", "24",
                               "--repeats", "2", "--cv-repeats", "1", "--out", str(out), "--json"], capsys)
    assert code == 0, err
    data = json.loads(text)
    # Peak RSS of the chosen policy (both sessions open) is reported next to the reference's.
    memory = data["peak_rss_mb"]
    assert set(memory) == {"chosen", data["train_scale"]}
    if sys.platform.startswith("linux"):
        assert all(isinstance(v, float) and v > 0 for v in memory.values())
    assert data["scales"] == ["sharp.onnx:16@0.875", "sharp.onnx:24@0.875", "soft.onnx:16@0.875",
                              "soft.onnx:24@0.875"]
    assert data["train_scale"] == "sharp.onnx:16@0.875" or data["train_scale"].startswith("sharp.onnx:")
    policy = ScalePolicy.load(out)
    assert all(s.variant is not None and s.variant.startswith("../") for s in policy.scales)
    monkeypatch.chdir(tmp_path)
    clf = Classifier(policy=out, threads=1)
    assert clf.predict(color_image("green")).label == "green"


def test_scores_keep_their_variants(tmp_path):
    scores = Scores(scales=(Scale(16, variant="int8"), Scale(16)), labels=np.array([0, 1]),
                    probs=np.full((2, 2, 3), 1 / 3, np.float32), names=("a", "b"), model="m")
    loaded = Scores.load(scores.save(tmp_path / "s.npz"))
    assert loaded.scales == scores.scales


def test_calibrate_reference_is_the_first_variant(pair, tmp_path):
    folder = make_folder(tmp_path / "photos", per_class=3)
    clf = Classifier(pair["sharp"], threads=1)
    scales = variant_scales(calibration_scales(clf, [16, 24]), [str(pair["soft"]), str(pair["sharp"])])
    cal = calibrate(clf, LabeledFolder(folder, num_classes=3), scales, latency_repeats=2, cv_repeats=1)
    assert cal.search.train_scale.variant == str(pair["soft"])


# ------------------------------------------------------------------------------------------------
# The bundled model's default
def test_default_is_the_shipped_policy_and_old_behaviour_stays_one_flag_away(bundled_model):
    shipped = default_policy()
    assert shipped is not None and shipped.variants[0] == "int8"
    clf = Classifier(threads=1)
    assert clf.policy == shipped and clf.path.name == "efficientnet_lite0_int8.onnx"
    assert [p.name for p in clf.open_models] == ["efficientnet_lite0_int8.onnx"]  # fp32 only on escalation
    for old in (Classifier("fp32", threads=1), Classifier(size=224, threads=1), Classifier("fp32", size=224)):
        assert old.policy.scales == (Scale(224, 0.875),) and old.path.name == "efficientnet_lite0.onnx"
    assert Classifier("int8", threads=1).policy.scales == (Scale(224, 0.875),)
    assert Classifier(policy="calibrated", threads=1).policy == shipped
