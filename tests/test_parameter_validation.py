"""Bad parameters and arrays for the public API outside the Preprocessor constructor (which
test_preprocess_errors.py covers): decoding, camera YUV frames, Classifier, model cards, policies.

Every case must raise ValueError/TypeError (FileNotFoundError for missing files) with a one-line
message naming the bad value or parameter and, where there is a fixed set, the valid choices;
never a Numba typing error or an ONNX Runtime dump.
"""
from __future__ import annotations

import io

import numpy as np
import pytest

pytest.importorskip("onnx")

from tiny_images import jpeg_bytes  # noqa: E402
from tiny_models import classes_model, probe_model, typed_model  # noqa: E402

from fixres_edge.decode import image_size, load_image, reduction_factor  # noqa: E402
from fixres_edge.model import ModelCard, ModelInput  # noqa: E402
from fixres_edge.policy import Scale, ScalePolicy  # noqa: E402
from fixres_edge.preprocess import Preprocessor  # noqa: E402

NAN = float("nan")
MEAN = (0.5, 0.4, 0.3)
STD = (0.2, 0.25, 0.5)


def check(excinfo, *must):
    """One line, no internals, and each of ``must`` (a str, or a tuple meaning any of them) present."""
    message = str(excinfo.value)
    assert message.strip() and "\n" not in message.strip(), repr(message)
    low = message.lower()
    for banned in ("numba", "typingerror", "no implementation of function", "onnxruntime_pybind", "traceback"):
        assert banned not in low, message
    for words in must:
        options = (words,) if isinstance(words, str) else words
        assert any(o.lower() in low for o in options), f"{message!r} should mention one of {options}"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("params")
    return {
        "tiny": classes_model(d / "tiny.onnx", card={
            "name": "tiny", "train_size": 32, "crop_pct": 0.875, "size_stride": 8}),
        "probe_bgr": probe_model(d / "probe_bgr.onnx", card={
            "train_size": 16, "crop_pct": 1.0, "mean": MEAN, "std": STD, "channel_order": "BGR"}),
        "probe_rgb": probe_model(d / "probe_rgb.onnx", card={
            "train_size": 16, "crop_pct": 1.0, "mean": MEAN, "std": STD}),
        "no_layout": typed_model(d / "no_layout.onnx", ["N", 5, "H", "W"], 1),
    }


@pytest.fixture(scope="module")
def clf(models):
    from fixres_edge.runtime import Classifier

    return Classifier(models["tiny"], threads=1)


JPEG = jpeg_bytes(24, 32, seed=1)


# ------------------------------------------------------------------------------------------------
# Decoding
@pytest.mark.aarch64
@pytest.mark.parametrize("kwargs, words", [
    ({"min_short_side": 0}, ["min_short_side", "positive"]),
    ({"min_short_side": -1}, ["min_short_side", "positive"]),
    ({"min_short_side": 2.5}, ["min_short_side", "2.5"]),
    ({"min_short_side": NAN}, ["min_short_side", "nan"]),
    ({"min_short_side": True}, ["min_short_side", "True"]),
    ({"min_short_side": "64"}, ["min_short_side", "'64'"]),
    ({"max_pixels": 0}, ["max_pixels", "positive"]),
    ({"max_pixels": "9"}, ["max_pixels", "'9'"]),
    ({"max_pixels": 100}, ["32x24", "max_pixels=100"]),
])
def test_load_image_bad_arguments(kwargs, words):
    with pytest.raises((ValueError, TypeError)) as e:
        load_image(JPEG, **kwargs)
    check(e, *words)


class ReadsInt:
    def read(self):
        return 5


@pytest.mark.aarch64
@pytest.mark.parametrize("source, words", [
    (None, ["NoneType", "path", "bytes"]),
    (3, ["int", "path", "bytes"]),
    ([1, 2], ["list", "path"]),
    (np.zeros(10), ["float64", "1-D uint8"]),
    (np.zeros((4, 4), np.uint8), ["(4, 4)", "1-D uint8"]),
    (io.StringIO("abc"), ["text mode", "'rb'"]),
    (ReadsInt(), ["read() returned int", "bytes"]),
    ("", ["empty"]),
    ("photo\x00.jpg", ["NUL", "photo"]),
])
def test_load_image_bad_sources(source, words):
    with pytest.raises((ValueError, TypeError)) as e:
        load_image(source)
    check(e, *words)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_image(tmp_path / "nope.jpg")
    check(e, "nope.jpg")


@pytest.mark.parametrize("call, words", [
    (lambda: image_size(None), ["NoneType"]),
    (lambda: image_size(b""), ["empty"]),
    (lambda: reduction_factor(0, 10, 5), ["height", "positive"]),
    (lambda: reduction_factor(10, 10.5, 5), ["width", "10.5"]),
    (lambda: reduction_factor(10, 10, -5), ["min_short_side", "-5"]),
])
def test_decode_helpers(call, words):
    with pytest.raises((ValueError, TypeError)) as e:
        call()
    check(e, *words)


# ------------------------------------------------------------------------------------------------
# Camera YUV frames (the Preprocessor constructor and interleaved arrays are covered elsewhere)
@pytest.fixture(scope="module")
def pre():
    return Preprocessor(size=8, threads=1)


@pytest.mark.aarch64
@pytest.mark.parametrize("fmt, image, kwargs, words", [
    ("NV12", np.zeros((24, 16, 3), np.uint8), {}, ["NV12", "(24, 16, 3)", "(H * 3 // 2, W)"]),
    ("NV12", np.zeros((22, 16), np.uint8), {}, ["NV12", "(22, 16)", "even"]),  # H = 15
    ("NV21", np.zeros((24, 15), np.uint8), {}, ["NV21", "(24, 15)", "even"]),
    ("I420", np.zeros((0, 16), np.uint8), {}, ["I420", "(0, 16)"]),
    ("I420", np.zeros((24, 16), np.float32), {}, ["I420", "float32", "uint8"]),
    ("I420", np.zeros((24, 16), np.int16), {}, ["I420", "int16", "uint8"]),
    ("I420", np.zeros((24, 16), np.uint8), {"width": 0}, ["I420", "width=0"]),
    ("I420", np.zeros((24, 16), np.uint8), {"width": 18}, ["I420", "width=18", "width <= 16"]),
    ("I420", np.zeros((24, 16), np.uint8), {"width": 7}, ["I420", "width=7", "even"]),
    ("I420", np.zeros((24, 20), np.uint8)[:, :16], {}, ["I420", "width=W"]),
    ("YUYV", np.zeros((16, 15, 2), np.uint8), {}, ["YUYV", "(16, 15, 2)", "even W"]),
    ("YUYV", np.zeros((16, 16, 3), np.uint8), {}, ["YUYV", "(H, W, 2)"]),
    ("YUYV", [[0, 0]], {}, ["YUYV", "list"]),
])
def test_bad_yuv_frames(pre, fmt, image, kwargs, words):
    with pytest.raises((ValueError, TypeError)) as e:
        pre(image, input_format=fmt, **kwargs)
    check(e, *words)


# ------------------------------------------------------------------------------------------------
# Classifier construction
@pytest.mark.parametrize("kwargs, words", [
    ({"threads": 0}, ["threads", "0"]),
    ({"threads": "2"}, ["threads", "'2'"]),
    ({"threads": True}, ["threads", "True"]),
    ({"size": 30}, ["30", "multiple of 8", "valid"]),
    ({"size": "32"}, ["size", "'32'"]),
    ({"size": 0}, ["size", "0"]),
    ({"crop_pct": NAN}, ["crop_pct", "nan", "(0, 1]"]),
    ({"crop_pct": 1.5}, ["crop_pct", "1.5"]),
    ({"mean": (NAN, 0.5, 0.5)}, ["mean", "finite"]),
    ({"std": (0.2, 0.0, 0.2)}, ["std", "positive"]),
    ({"interpolation": "lanczos"}, ["lanczos", "bilinear", "bicubic"]),
    ({"crop": "left"}, ["left", "center"]),
    ({"reduced_decode": "no"}, ["reduced_decode", "'no'"]),
    ({"providers": "CPUExecutionProvider"}, ["providers", "list", "CPUExecutionProvider"]),
    ({"providers": []}, ["providers", "available"]),
    ({"providers": ["NoSuchExecutionProvider"]}, ["NoSuchExecutionProvider", "available", "CPUExecutionProvider"]),
    ({"providers": [5]}, ["providers", "5"]),
    ({"policy": 5}, ["policy", "int"]),
    ({"policy": ScalePolicy.single(30, 0.875)}, ["30", "multiple of 8"]),
])
def test_classifier_bad_arguments(models, kwargs, words):
    from fixres_edge.runtime import Classifier

    with pytest.raises((ValueError, TypeError)) as e:
        Classifier(models["tiny"], **kwargs)
    check(e, *words)


@pytest.mark.parametrize("model, words", [
    (5, ["model", "int"]),
    ("no_layout", ["unknown model input layout", "NCHW or NHWC"]),
])
def test_classifier_bad_models(models, model, words):
    from fixres_edge.runtime import Classifier

    with pytest.raises((ValueError, TypeError)) as e:
        Classifier(models.get(model, model))
    check(e, *words)


def test_classifier_missing_files_name_them(models, tmp_path):
    from fixres_edge.runtime import Classifier

    with pytest.raises(FileNotFoundError) as e:
        Classifier(tmp_path / "absent.onnx")
    check(e, "absent.onnx")
    with pytest.raises(FileNotFoundError) as e:
        Classifier(models["tiny"], policy=tmp_path / "absent.json")
    check(e, "absent.json")
    text = tmp_path / "text.onnx"
    text.write_text("not a model")
    with pytest.raises(ValueError) as e:
        Classifier(text)
    check(e, "text.onnx", "not an ONNX model")


# ------------------------------------------------------------------------------------------------
# Classifier calls
IMAGE = np.random.default_rng(2).integers(0, 256, (20, 24, 3), dtype=np.uint8)


@pytest.mark.aarch64
@pytest.mark.parametrize("image, kwargs, words", [
    (IMAGE.astype(np.float64), {}, ["float64", "uint8"]),
    (IMAGE.astype(np.int16), {}, ["int16", "uint8"]),
    (IMAGE.astype(bool), {}, ["bool", "uint8"]),
    (IMAGE[:, :, :2], {}, ["(20, 24, 2)", "BGR"]),
    (IMAGE[None], {}, ["(1, 20, 24, 3)", "BGR"]),
    (IMAGE[:0], {}, ["empty", "(0, 24, 3)"]),
    (IMAGE, {"input_format": "GRAY"}, ["GRAY", "(20, 24, 3)"]),
    (IMAGE, {"input_format": "HSV"}, ["HSV", "BGR", "NV12"]),
    (IMAGE, {"input_format": 3}, ["input_format", "3"]),
    (None, {}, ["NoneType", "path"]),
    ([IMAGE], {}, ["list", "path"]),
    (IMAGE, {"topk": 0}, ["topk", "0"]),
    (IMAGE, {"topk": 2.0}, ["topk", "2.0"]),
    (IMAGE, {"topk": True}, ["topk", "True"]),
    (IMAGE, {"size": 31}, ["31", "multiple of 8", "valid"]),
    (IMAGE, {"size": -8}, ["size", "-8"]),
    (IMAGE, {"size": 32.0}, ["size", "32.0"]),
    (np.zeros((36, 31), np.uint8), {"input_format": "I420"}, ["I420", "(36, 31)"]),
    (np.zeros((36, 32), np.uint8), {"input_format": "I420", "width": 40}, ["I420", "width=40"]),
])
def test_predict_bad_inputs(clf, image, kwargs, words):
    with pytest.raises((ValueError, TypeError)) as e:
        clf.predict(image, **kwargs)
    check(e, *words)


@pytest.mark.parametrize("items, words", [
    ("photo.jpg", ["str", "list", "predict()"]),
    (b"\xff\xd8", ["bytes", "list"]),
    (5, ["int", "iterable"]),
    (IMAGE, ["ndarray", "list"]),
])
def test_predict_batch_bad_items(clf, items, words):
    with pytest.raises(TypeError) as e:
        clf.predict_batch(items)
    check(e, *words)


def test_predict_batch_keeps_going(clf):
    results = clf.predict_batch([IMAGE, None, IMAGE.astype(np.float32), b"", JPEG, np.zeros((0, 3, 3), np.uint8)])
    assert [r.ok for r in results] == [True, False, False, False, True, False]
    for r in results:
        if not r.ok:
            assert r.error and "\n" not in r.error
    # A 4-D uint8 array is a batch of images.
    assert [r.ok for r in clf.predict_batch(np.stack([IMAGE, IMAGE]))] == [True, True]


@pytest.mark.parametrize("method", ["probabilities", "logits"])
@pytest.mark.parametrize("scale, words", [(33, ["33", "multiple of 8"]), ("32", ["size", "'32'"]),
                                          (Scale(24, 0.875), None)])
def test_scale_arguments(clf, method, scale, words):
    call = getattr(clf, method)
    if words is None:
        values, timings = call(IMAGE, scale)
        assert values.shape == (10,) and set(timings) == {"preprocess", "infer"}
        return
    with pytest.raises((ValueError, TypeError)) as e:
        call(IMAGE, scale)
    check(e, *words)


def test_encoded_bytes_array_is_decoded(clf):
    # A 1-D uint8 array is encoded data (as np.fromfile gives), never an image.
    encoded = np.frombuffer(JPEG, np.uint8)
    assert clf.predict(encoded).top[0].index == clf.predict(JPEG).top[0].index


def test_decoded_files_ignore_input_format(clf):
    # Files always decode to BGR: a per-call input_format meant for arrays must not flip them.
    assert np.array_equal(clf.predict(JPEG, input_format="RGB").probs, clf.predict(JPEG).probs)


def test_lower_case_format_is_swapped_for_bgr_models(models):
    from fixres_edge.runtime import Classifier

    bgr_model = Classifier(models["probe_bgr"], threads=1)
    image = np.random.default_rng(5).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    upper, _ = bgr_model.logits(image, 16, "BGR")
    lower, _ = bgr_model.logits(image, 16, "bgr")
    np.testing.assert_array_equal(lower, upper)
    expected = ((image.astype(np.float64) / 255.0 - np.asarray(MEAN)) / np.asarray(STD)).transpose(2, 0, 1)
    np.testing.assert_allclose(upper.reshape(3, 16, 16), expected, atol=2e-6)


@pytest.mark.aarch64
@pytest.mark.parametrize("fmt", ["I420", "NV12"])
def test_yuv_frames_reach_bgr_models_as_bgr(models, fmt):
    """A BGR-trained model fed a camera frame sees B, G, R, each normalized with its own mean/std."""
    import cv2

    from fixres_edge.runtime import Classifier

    rng = np.random.default_rng(6)
    frame = rng.integers(16, 236, (24, 16), dtype=np.uint8)  # (16 * 3 // 2, 16): a 16x16 image
    code = {"I420": cv2.COLOR_YUV2BGR_I420, "NV12": cv2.COLOR_YUV2BGR_NV12}[fmt]
    bgr = cv2.cvtColor(frame, code)
    for name in ("probe_bgr", "probe_rgb"):
        model = Classifier(models[name], threads=1)
        from_yuv, _ = model.logits(frame, 16, fmt)
        from_bgr, _ = model.logits(bgr, 16, "BGR")
        # Same pixels within the YUV conversion's rounding (a level or two), in the model's order.
        levels = np.abs(from_yuv - from_bgr).reshape(3, -1) * 255 * np.asarray(STD)[:, None]
        assert levels.max() <= 2.01, (name, levels.max())


def test_padded_i420_rows_through_predict(clf):
    # picamera2 hands (H * 3 // 2, stride) arrays: predict(width=W) reads only the image.
    import cv2

    rng = np.random.default_rng(8)
    tight = rng.integers(16, 236, (36, 32), dtype=np.uint8)  # a 24x32 I420 frame
    y, u, v = tight[:24], tight[24:30].reshape(-1), tight[30:].reshape(-1)
    padded = np.zeros((36, 48), np.uint8)  # stride 48: Y rows of 48, chroma rows of 24
    padded[:24, :32] = y
    chroma = padded[24:].reshape(-1)  # 12 rows x 48 = 24 chroma rows of stride 24
    chroma_rows = chroma.reshape(24, 24)
    chroma_rows[:12, :16] = u.reshape(12, 16)
    chroma_rows[12:, :16] = v.reshape(12, 16)
    expected = clf.predict(cv2.cvtColor(tight, cv2.COLOR_YUV2BGR_I420))
    got = clf.predict(padded, input_format="I420", width=32)
    assert got.top[0].index == expected.top[0].index
    np.testing.assert_allclose(got.probs, expected.probs, atol=0.02)


# ------------------------------------------------------------------------------------------------
# Model cards and inputs
@pytest.mark.aarch64
@pytest.mark.parametrize("fields, words", [
    ({"mean": [NAN, 0.5, 0.5]}, ["mean", "finite"]),
    ({"std": [float("inf"), 1.0, 1.0]}, ["std", "finite"]),
    ({"std": [0.5, 0.0, 0.5]}, ["std", "positive"]),
    ({"mean": [0.5, 0.5]}, ["mean", "3 values"]),
    ({"crop_pct": NAN}, ["crop_pct", "(0, 1]"]),
    ({"scales": [224.7, 256]}, ["scales", "integer", "224.7"]),
    ({"scales": [-1]}, ["scales", "positive"]),
    ({"scales": "224"}, ["scales", "list"]),
    ({"layout": "CHW"}, ["layout", "CHW", "NCHW, NHWC"]),
    ({"channel_order": "BRG"}, ["channel_order", "RGB, BGR"]),
    ({"output": "scores"}, ["output", "logits, probabilities"]),
    ({"train_size": True}, ["train_size", "True"]),
    ({"labels": "abc"}, ["labels", "list"]),
])
def test_bad_model_cards(fields, words):
    with pytest.raises(ValueError) as e:
        ModelCard(**fields)
    check(e, *words)


@pytest.mark.aarch64
@pytest.mark.parametrize("shape, element, words", [
    ([1, 5, 5, 5], "tensor(float)", ["unknown model input layout", "NCHW or NHWC"]),
    ([1, 3, 3, 3], "tensor(float)", ["unknown model input layout"]),
    (["N", "C", "H", "W"], "tensor(float)", ["unknown model input layout"]),
    ([1, 3, 8], "tensor(float)", ["3-D", "4-D"]),
    ([1, 3, 8, 8], "tensor(double)", ["tensor(double)", "tensor(float)", "tensor(uint8)"]),
])
def test_unusable_model_inputs(shape, element, words):
    with pytest.raises(ValueError) as e:
        ModelInput.from_onnx("x", shape, element)
    check(e, *words)


# ------------------------------------------------------------------------------------------------
# Scales and policies
@pytest.mark.aarch64
@pytest.mark.parametrize("call, words", [
    (lambda: Scale(224, NAN), ["crop_pct", "nan", "(0, 1]"]),
    (lambda: Scale(0, 0.875), ["size", "0"]),
    (lambda: Scale(224.5, 0.875), ["size", "224.5"]),
    (lambda: Scale("224", 0.875), ["size", "'224'"]),
    (lambda: ScalePolicy(model="m", scales=[(224, 0.875), (256, 0.875)], mode="cascade", threshold=NAN),
     ["threshold", "nan", "(0, 1]"]),
    (lambda: ScalePolicy(model="m", scales=[(224, 0.875), (256, 0.875)], mode="cascade", threshold=2),
     ["threshold", "2"]),
    (lambda: ScalePolicy(model="m", scales=[(224, 0.875)], mode="fastest"), ["fastest", "single, cascade, ensemble"]),
    (lambda: ScalePolicy(model="m", scales=[(224, 0.875), (256, 0.875)], mode="ensemble", combine="max"),
     ["max", "last, mean"]),
    (lambda: ScalePolicy(model="m", scales=[]), ["at least one scale"]),
    (lambda: ScalePolicy(model="m", scales=None), ["scales", "None"]),
    (lambda: ScalePolicy(model="m", scales=[224]), ["224", "(size, crop_pct)"]),
])
def test_bad_scales_and_policies(call, words):
    with pytest.raises((ValueError, TypeError)) as e:
        call()
    check(e, *words)


def test_bad_policy_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError) as e:
        ScalePolicy.load(bad)
    check(e, "bad.json", "not valid JSON")
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(ValueError) as e:
        ScalePolicy.load(listed)
    check(e, "list.json", "JSON object")
