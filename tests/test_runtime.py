"""Classifier: what each kind of model input is fed, settings precedence, policies, batches, threads."""
from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("onnx")

from tiny_images import jpeg_bytes  # noqa: E402
from tiny_models import classes_model, probe_model, save_model  # noqa: E402

from fixres_edge.model import ModelCard, ModelInput  # noqa: E402
from fixres_edge.policy import Scale, ScalePolicy  # noqa: E402
from fixres_edge.preprocess import Preprocessor  # noqa: E402
from fixres_edge.constants import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from fixres_edge.prediction import Prediction, PredictionError, softmax, top_k  # noqa: E402
from fixres_edge.runtime import Classifier  # noqa: E402
from fixres_edge.settings import PreprocessingWarning, resolve_settings  # noqa: E402

MEAN = (0.5, 0.4, 0.3)
STD = (0.2, 0.25, 0.5)


def bgr_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def expected_nchw(bgr: np.ndarray, mean, std) -> np.ndarray:
    """(x / 255 - mean) / std in RGB channel order, (3, H, W) float64: what a float NCHW model must see."""
    rgb = bgr[..., ::-1].astype(np.float64) / 255.0
    return ((rgb - np.asarray(mean)) / np.asarray(std)).transpose(2, 0, 1)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny ONNX models of each input kind, built once per module."""
    d = tmp_path_factory.mktemp("models")
    labels = [f"label{i}" for i in range(10)]
    return {
        # NCHW float, dynamic size, with a card (stride 8, train 16, crop_pct 1.0).
        "probe_dynamic": probe_model(d / "probe_dynamic.onnx", card={
            "name": "probe", "train_size": 16, "crop_pct": 1.0, "mean": MEAN, "std": STD, "size_stride": 8}),
        # NCHW float, static 224, no card at all.
        "probe_static224": probe_model(d / "probe_static224.onnx", size=224, batch=1),
        # NHWC uint8, static 8, card only states crop_pct.
        "probe_nhwc_u8": probe_model(d / "probe_nhwc_u8.onnx", layout="NHWC", dtype="uint8", size=8, batch=1,
                                     card={"crop_pct": 1.0}),
        # A BGR-trained model: channel 0 must be blue, normalized with mean[0].
        "probe_bgr": probe_model(d / "probe_bgr.onnx", card={
            "train_size": 16, "crop_pct": 1.0, "mean": MEAN, "std": STD, "channel_order": "BGR"}),
        "classes": classes_model(d / "classes.onnx", card={
            "name": "tiny", "train_size": 32, "crop_pct": 0.9, "interpolation": "nearest", "antialias": False,
            "mean": MEAN, "std": STD, "size_stride": 8, "labels": labels, "scales": [24, 32, 40]}),
        "classes_plain": classes_model(d / "classes_plain.onnx", num_classes=7),
        "classes_nhwc_u8": classes_model(d / "classes_nhwc_u8.onnx", layout="NHWC", dtype="uint8", size=32,
                                         num_classes=5),
    }


# ------------------------------------------------------------------------------------------------
# What each input kind is fed
@pytest.mark.aarch64
def test_nchw_float_dynamic_feed_exact(models):
    clf = Classifier(models["probe_dynamic"], threads=1)
    assert clf.input.layout == "NCHW" and clf.input.dynamic_size and clf.policy.scales == (Scale(16, 1.0),)
    image = bgr_image(16, 16)
    raw, timings = clf.logits(image, 16)
    # crop_pct 1.0 at the image's own size: a plain copy, so the feed is known exactly.
    np.testing.assert_allclose(raw.reshape(3, 16, 16), expected_nchw(image, MEAN, STD), rtol=0, atol=2e-6)
    assert set(timings) == {"preprocess", "infer"}


def test_nchw_float_dynamic_other_size_matches_preprocessor(models):
    clf = Classifier(models["probe_dynamic"], threads=1)
    image = bgr_image(37, 53, seed=1)
    raw, _ = clf.logits(image, 24)
    ref = Preprocessor(size=24, crop_pct=1.0, mean=MEAN, std=STD, threads=1)(image)
    np.testing.assert_array_equal(raw, ref.reshape(-1))
    with pytest.raises(ValueError, match="size 20 is not a multiple of 8 for probe"):
        clf.logits(image, 20)


def test_nchw_float_static_224_uses_defaults(models):
    with pytest.warns(PreprocessingWarning, match="assumed crop_pct 0.875; ImageNet mean/std"):
        clf = Classifier(models["probe_static224"], threads=1)
    assert clf.input.static_size == 224 and clf.card.is_empty
    assert clf.policy.scales == (Scale(224, 0.875),)
    assert clf.settings.mean == IMAGENET_MEAN and clf.settings.std == IMAGENET_STD
    image = bgr_image(300, 400, seed=2)
    raw, _ = clf.logits(image, 224)
    np.testing.assert_array_equal(raw, Preprocessor(size=224, threads=1)(image).reshape(-1))
    # A 224 x 224 photo at crop_pct 1.0 is passed through: check the exact feed.
    with pytest.warns(PreprocessingWarning, match="assumed ImageNet mean/std"):
        exact = Classifier(models["probe_static224"], threads=1, crop_pct=1.0)
    square = bgr_image(224, 224, seed=3)
    np.testing.assert_allclose(exact.logits(square, 224)[0].reshape(3, 224, 224),
                               expected_nchw(square, IMAGENET_MEAN, IMAGENET_STD), atol=2e-6)


@pytest.mark.filterwarnings("ignore::fixres_edge.settings.PreprocessingWarning")  # card-less: warns, tested elsewhere
def test_static_model_refuses_other_sizes(models):
    with pytest.raises(ValueError, match="size 256 is not possible .* static size 224"):
        Classifier(models["probe_static224"], size=256)
    clf = Classifier(models["probe_static224"], threads=1)
    with pytest.raises(ValueError, match="static size 224"):
        clf.predict(bgr_image(240, 240), size=192)


def test_nhwc_uint8_static_feed_exact(models):
    clf = Classifier(models["probe_nhwc_u8"], threads=1)
    assert (clf.input.layout, clf.input.dtype, clf.input.static_size) == ("NHWC", "uint8", 8)
    image = bgr_image(8, 8, seed=4)
    raw, _ = clf.logits(image, 8)
    # uint8 models get resized RGB pixels, no normalization, channels last.
    np.testing.assert_array_equal(raw.reshape(8, 8, 3), image[..., ::-1].astype(np.float32))


def test_float16_input(tmp_path, float16_supported):
    if not float16_supported:
        pytest.skip("Preprocessor has no float16 output")
    path = probe_model(tmp_path / "half.onnx", dtype="float16", card={"train_size": 16, "crop_pct": 1.0})
    clf = Classifier(path, threads=1)
    assert clf.input.dtype == "float16"
    image = bgr_image(16, 16, seed=14)
    raw, _ = clf.logits(image, 16)
    expected = expected_nchw(image, IMAGENET_MEAN, IMAGENET_STD)
    np.testing.assert_allclose(raw.reshape(3, 16, 16), expected, atol=5e-3)


def test_bgr_channel_order_from_card(models):
    clf = Classifier(models["probe_bgr"], threads=1)
    image = bgr_image(16, 16, seed=5)
    raw, _ = clf.logits(image, 16)
    bgr = image.astype(np.float64) / 255.0
    expected = ((bgr - np.asarray(MEAN)) / np.asarray(STD)).transpose(2, 0, 1)
    np.testing.assert_allclose(raw.reshape(3, 16, 16), expected, atol=2e-6)
    # An RGB array given as such reaches the model as BGR too.
    raw_rgb, _ = clf.logits(np.ascontiguousarray(image[..., ::-1]), 16, input_format="RGB")
    np.testing.assert_array_equal(raw_rgb, raw)


# ------------------------------------------------------------------------------------------------
# Settings precedence: argument, then policy (scales), then card, then defaults
def test_card_settings_reach_the_preprocessor(models):
    clf = Classifier(models["classes"], threads=1)
    s = clf.settings
    assert (s.interpolation, s.antialias, s.mean, s.std) == ("nearest", False, MEAN, STD)
    assert clf.policy.scales == (Scale(32, 0.9),) and clf.policy.model == "tiny"
    cfg = clf.preprocessor(32).config
    assert (cfg.interpolation, cfg.antialias, cfg.crop_pct, cfg.size) == ("nearest", False, 0.9, (32, 32))
    assert s.origin == {"scales": "card", "interpolation": "card", "antialias": "card", "mean": "card",
                        "std": "card", "crop": "default"}


def test_explicit_arguments_override_card(models):
    clf = Classifier(models["classes"], threads=1, interpolation="bilinear", antialias=True,
                     mean=(0.1, 0.2, 0.3), std=(1.0, 1.0, 1.0), size=40)
    s = clf.settings
    assert (s.interpolation, s.antialias, s.mean, s.std) == ("bilinear", True, (0.1, 0.2, 0.3), (1.0, 1.0, 1.0))
    assert clf.policy.scales == (Scale(40, 0.9),)  # crop_pct still from the card
    assert s.origin["interpolation"] == "argument" and s.origin["scales"] == "argument"
    assert Classifier(models["classes"], crop_pct=0.75).policy.scales == (Scale(32, 0.75),)


def test_policy_then_argument(models, tmp_path):
    policy = ScalePolicy(model="tiny", scales=[(24, 0.9), (40, 0.9)], mode="cascade", threshold=0.8)
    clf = Classifier(models["classes"], policy=policy, threads=1)
    assert clf.policy is policy and clf.settings.origin["scales"] == "policy"
    path = policy.save(tmp_path / "p.json")
    assert Classifier(models["classes"], policy=str(path)).policy == policy
    # An explicit size wins over the policy: one scale.
    assert Classifier(models["classes"], policy=policy, size=32).policy.scales == (Scale(32, 0.9),)
    with pytest.raises(ValueError, match="size 30 is not a multiple of 8"):
        Classifier(models["classes"], policy=ScalePolicy.single(30, 0.9))
    with pytest.raises(TypeError, match="policy must be"):
        Classifier(models["classes"], policy={"mode": "single"})


@pytest.mark.aarch64
def test_resolver_defaults_without_card():
    model_input = ModelInput.from_onnx("x", ["N", 3, "H", "W"], "tensor(float)")
    s = resolve_settings(ModelCard(), model_input)
    assert s.policy.scales == (Scale(224, 0.875),) and s.policy.mode == "single"
    assert (s.interpolation, s.antialias, s.mean, s.std, s.crop) == ("bilinear", True, IMAGENET_MEAN,
                                                                     IMAGENET_STD, "center")
    assert set(s.origin.values()) == {"default"}
    static = ModelInput.from_onnx("x", [1, 160, 160, 3], "tensor(uint8)")
    s = resolve_settings(ModelCard(), static)
    assert s.policy.scales == (Scale(160, 0.875),) and s.origin["scales"] == "model input"
    assert (s.layout, s.dtype) == ("NHWC", "uint8")


def test_bad_preprocessing_argument(models):
    with pytest.raises(ValueError, match="interpolation"):
        Classifier(models["classes"], interpolation="lanczos9")
    with pytest.raises(ValueError, match="threads"):
        Classifier(models["classes"], threads=0)


# ------------------------------------------------------------------------------------------------
# predict
def test_predict_array(models):
    clf = Classifier(models["classes"], threads=1)
    image = bgr_image(48, 64, seed=6)
    p = clf.predict(image, topk=3)
    assert isinstance(p, Prediction) and p.ok and p.path is None and p.size == 32
    assert [t.label for t in p.top] == [f"label{t.index}" for t in p.top] and len(p.top) == 3
    probs = [t.prob for t in p.top]
    assert probs == sorted(probs, reverse=True)
    assert p.probs.dtype == np.float32 and p.probs.shape == (10,)
    assert p.probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert p.top[0].index == int(np.argmax(p.probs)) and p.label == p.top[0].label
    assert set(p.timings_ms) == {"decode", "preprocess", "infer", "postprocess", "total"}
    assert all(v >= 0 for v in p.timings_ms.values()) and p.timings_ms["decode"] == 0
    assert p.scales == (Scale(32, 0.9),) and p.per_scale[0]["size"] == 32
    probs_direct, _ = clf.probabilities(image, 32)
    np.testing.assert_array_equal(probs_direct, p.probs)
    assert len(clf.predict(image, topk=50).top) == 10
    with pytest.raises(ValueError, match="topk"):
        clf.predict(image, topk=0)
    with pytest.raises(TypeError, match="expected a path"):
        clf.predict(12345)


def test_predict_size_override_and_repeatability(models):
    clf = Classifier(models["classes"], threads=1)
    image = bgr_image(50, 70, seed=7)
    p40 = clf.predict(image, size=40)
    assert p40.size == 40 and p40.scales == (Scale(40, 0.9),)
    again = clf.predict(image, size=40)
    np.testing.assert_array_equal(again.probs, p40.probs)
    # Input buffers are allocated once per scale (per thread) and reused.
    buffer = clf._local.buffers[Scale(40, 0.9)]
    clf.predict(image, size=40)
    assert clf._local.buffers[Scale(40, 0.9)] is buffer


def test_predict_from_path_and_bytes(models, tmp_path):
    pytest.importorskip("fixres_edge.decode")
    clf = Classifier(models["classes"], threads=1)
    data = jpeg_bytes(60, 80, seed=8)
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    from_path = clf.predict(path)
    from_str = clf.predict(str(path))
    from_bytes = clf.predict(data)
    assert from_path.path == str(path) and from_bytes.path is None
    np.testing.assert_array_equal(from_path.probs, from_bytes.probs)
    np.testing.assert_array_equal(from_path.probs, from_str.probs)
    with open(path, "rb") as f:
        assert clf.predict(f).path == str(path)
    assert from_path.timings_ms["decode"] >= 0
    d = from_path.to_dict()
    assert d["path"] == str(path) and d["size"] == 32 and len(d["top"]) == 5


def test_plain_model_without_card(models):
    with pytest.warns(PreprocessingWarning, match="assumed size 224, crop_pct 0.875; ImageNet mean/std"):
        clf = Classifier(models["classes_plain"], threads=1)
    p = clf.predict(bgr_image(300, 260, seed=9), topk=2)
    assert p.size == 224 and p.top[0].label.startswith("class ")
    assert clf.labels == tuple(f"class {i}" for i in range(7))


def test_nhwc_uint8_classifier(models):
    clf = Classifier(models["classes_nhwc_u8"], threads=1)
    image = bgr_image(40, 48, seed=10)
    p = clf.predict(image)
    # Cross-check: the model's own arithmetic on the preprocessed uint8 pixels.
    pre = Preprocessor(size=32, crop_pct=0.875, layout="NHWC", dtype="uint8", threads=1)(image)
    raw = clf.session.run(None, {"image": pre})[0][0]
    np.testing.assert_allclose(p.probs, softmax(raw), rtol=1e-6)


# ------------------------------------------------------------------------------------------------
# Policies inside the Classifier
def test_cascade_escalates_and_stops(models):
    image = bgr_image(64, 64, seed=11)
    always = Classifier(models["classes"], threads=1, policy=ScalePolicy(
        scales=[(24, 0.9), (40, 0.9)], mode="cascade", threshold=1.0))
    p = always.predict(image)
    assert [s.size for s in p.scales] == [24, 40] and p.size == 40 and len(p.per_scale) == 2
    np.testing.assert_array_equal(p.probs, always.probabilities(image, 40)[0])
    assert p.timings_ms["infer"] == pytest.approx(sum(s["infer"] for s in p.per_scale))
    never = Classifier(models["classes"], threads=1, policy=ScalePolicy(
        scales=[(24, 0.9), (40, 0.9)], mode="cascade", threshold=0.01))
    q = never.predict(image)
    assert [s.size for s in q.scales] == [24] and q.size == 24
    mean = Classifier(models["classes"], threads=1, policy=ScalePolicy(
        scales=[(24, 0.9), (40, 0.9)], mode="cascade", threshold=1.0, combine="mean"))
    expected = (always.probabilities(image, 24)[0].astype(np.float64) + p.probs) / 2
    np.testing.assert_allclose(mean.predict(image).probs, expected, rtol=1e-6)


def test_ensemble_averages_scales(models):
    policy = ScalePolicy(scales=[(24, 0.9), (32, 0.9), (40, 0.9)], mode="ensemble")
    clf = Classifier(models["classes"], threads=1, policy=policy)
    image = bgr_image(70, 50, seed=12)
    p = clf.predict(image)
    singles = [clf.probabilities(image, s)[0] for s in policy.scales]
    np.testing.assert_allclose(p.probs, np.mean(singles, axis=0), rtol=1e-6)
    assert p.scales == policy.scales


@pytest.mark.filterwarnings("ignore::fixres_edge.settings.PreprocessingWarning")  # card-less: warns, tested elsewhere
def test_static_zoom_policy(models):
    policy = ScalePolicy(scales=[(224, 1.0), (224, 0.875), (224, 0.75)], mode="ensemble")
    clf = Classifier(models["probe_static224"], threads=1, policy=policy)
    p = clf.predict(bgr_image(240, 320, seed=13), topk=1)
    assert [s.crop_pct for s in p.scales] == [1.0, 0.875, 0.75] and p.size == 224


# ------------------------------------------------------------------------------------------------
# Batches, errors, threads
def test_predict_batch_keeps_going(models, tmp_path):
    pytest.importorskip("fixres_edge.decode")
    clf = Classifier(models["classes"], threads=1)
    good = tmp_path / "good.jpg"
    good.write_bytes(jpeg_bytes(40, 40))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"definitely not a jpeg")
    items = [good, bad, tmp_path / "missing.jpg", bgr_image(40, 40), np.zeros((4, 4), np.float32)]
    results = clf.predict_batch(items, topk=2)
    assert [r.ok for r in results] == [True, False, False, True, False]
    assert isinstance(results[1], PredictionError) and results[1].path == str(bad)
    assert "\n" not in results[1].error and results[2].kind == "FileNotFoundError"
    assert results[4].kind == "TypeError"
    assert results[1].to_dict() == {"path": str(bad), "error": results[1].error}


def test_threads_share_a_classifier(models):
    clf = Classifier(models["classes"], threads=1, policy=ScalePolicy(
        scales=[(24, 0.9), (40, 0.9)], mode="ensemble"))
    images = [bgr_image(30 + 7 * i, 60 - 3 * i, seed=20 + i) for i in range(8)]
    serial = [clf.predict(im).probs for im in images]
    results: dict[int, list] = {}
    errors = []

    def work(worker: int):
        try:
            results[worker] = [clf.predict(images[(i + worker) % 8]).probs for i in range(16)]
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for worker, outs in results.items():
        for i, probs in enumerate(outs):
            np.testing.assert_array_equal(probs, serial[(i + worker) % 8])


@pytest.mark.filterwarnings("ignore::fixres_edge.settings.PreprocessingWarning")  # card-less: warns, tested elsewhere
def test_probability_output_is_not_softmaxed_twice(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(3).standard_normal((3, 12)).astype(np.float32)
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 12])
    nodes = [helper.make_node("ReduceMean", ["image"], ["m"], axes=[2, 3], keepdims=0),
             helper.make_node("MatMul", ["m", "W"], ["z"]),
             helper.make_node("Softmax", ["z"], ["probs"], axis=1)]
    path = save_model(helper.make_graph(nodes, "sm", [x], [y], [numpy_helper.from_array(weights, "W")]),
                      tmp_path / "softmax.onnx")
    clf = Classifier(path, threads=1, size=32)
    image = bgr_image(40, 40, seed=30)
    raw, _ = clf.logits(image, 32)
    probs, _ = clf.probabilities(image, 32)
    np.testing.assert_allclose(probs, raw, rtol=1e-6)


# ------------------------------------------------------------------------------------------------
# Helpers
@pytest.mark.aarch64
def test_softmax_and_top_k():
    logits = np.array([1000.0, 999.0, -5.0, 1000.0], np.float32)
    p = softmax(logits)
    assert p.dtype == np.float32 and np.isfinite(p).all() and p.sum() == pytest.approx(1.0)
    assert p[0] == p[3] and p[0] > p[1] > p[2]
    assert top_k(p, 2) == [0, 3]  # ties: lower index first
    assert top_k(p, 10) == [0, 3, 1, 2]
    assert top_k(np.array([0.1, 0.5, 0.2, 0.2], np.float32), 3) == [1, 2, 3]


@pytest.mark.aarch64
@pytest.mark.parametrize("seed", range(20))
def test_top_k_equals_stable_sort(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    # Few distinct values: many ties, which must keep the lower index first.
    values = (rng.integers(0, 1 + n // 10, n) / 7.0).astype(np.float32)
    expected = sorted(range(n), key=lambda i: (-values[i], i))
    for k in (1, 2, 5, 8):
        assert top_k(values, k) == expected[:k]


# ------------------------------------------------------------------------------------------------
# The bundled model (skipped until its file exists)
@pytest.fixture(scope="module")
def grace_hopper(bundled_model):
    pytest.importorskip("matplotlib")
    pytest.importorskip("fixres_edge.decode")
    from fixres_edge.commands.classify import demo_photo

    return demo_photo()


def test_bundled_model_fixres_example(grace_hopper):
    clf = Classifier("fp32", threads=1, reduced_decode=False)  # fp32 at the training size
    assert clf.card.name == "efficientnet_lite0" and clf.policy.scales == (Scale(224, 0.875),)
    at224 = clf.predict(grace_hopper)
    at256 = clf.predict(grace_hopper, size=256)
    assert at224.label == "academic gown" and at224.size == 224
    assert at256.label == "military uniform" and at256.size == 256
    with pytest.raises(ValueError, match="size 250 is not a multiple of 32 for efficientnet_lite0; valid: 160"):
        clf.predict(grace_hopper, size=250)


def test_default_policy_gets_the_demo_photo_right(grace_hopper):
    # The shipped two-precision policy: int8 at 224 is unsure (tied top two), so it escalates.
    p = Classifier(threads=1).predict(grace_hopper)
    assert p.label == "military uniform" and p.size == 256 and p.scales[0] == Scale(224, 0.875, "int8")


def test_bundled_model_cascade(grace_hopper):
    policy = ScalePolicy(model="efficientnet_lite0", scales=[(192, 0.875), (256, 0.875)], mode="cascade",
                         threshold=0.7)
    p = Classifier(policy=policy, threads=1).predict(grace_hopper)
    # 192 is unsure about this photo (top probability well below 0.7): the cascade escalates to 256.
    assert [s.size for s in p.scales] == [192, 256] and p.label == "military uniform"
