"""Model card, bundled model lookup, labels, and the reading of ONNX model inputs (bad models included).

The tiny ONNX models come from tiny_models.py.
"""
from __future__ import annotations

import json

import pytest

pytest.importorskip("onnx")
from onnx import TensorProto  # noqa: E402
from tiny_models import classes_model, rank3_model, two_input_model, typed_model  # noqa: E402

from fixres_edge.model import (  # noqa: E402
    CARD_KEY, ModelCard, ModelInput, bundled_model_path, check_size, load_labels, load_model,
    resolve_model_path, valid_sizes,
)

LITE0_CARD = {
    "name": "efficientnet_lite0", "source": "test", "license": "Apache-2.0", "train_size": 224,
    "crop_pct": 0.875, "interpolation": "bilinear", "antialias": True, "mean": [127 / 255] * 3,
    "std": [128 / 255] * 3, "layout": "NCHW", "channel_order": "RGB", "size_stride": 32,
    "scales": [192, 224, 256, 288], "num_classes": 1000, "labels_file": "imagenet_labels.txt",
}


# ------------------------------------------------------------------------------------------------
# ModelCard
@pytest.mark.aarch64
def test_card_round_trip_through_onnx_metadata():
    card = ModelCard.from_dict(LITE0_CARD)
    assert card.train_size == 224 and card.size_stride == 32
    assert card.mean == pytest.approx((127 / 255,) * 3) and isinstance(card.mean, tuple)
    assert card.scales == (192, 224, 256, 288)
    again = ModelCard.from_onnx_metadata({CARD_KEY: card.to_json(), "other": "x"})
    assert again == card
    assert json.loads(card.to_json()) == LITE0_CARD


@pytest.mark.aarch64
def test_card_defaults_and_unknown_keys():
    empty = ModelCard.from_onnx_metadata({})
    assert empty.is_empty and empty.train_size is None and empty.layout is None
    assert ModelCard.from_onnx_metadata(None) == ModelCard()
    card = ModelCard.from_dict({"name": "m", "future_field": [1, 2]})
    assert card.extra == {"future_field": [1, 2]}
    assert json.loads(card.to_json()) == {"name": "m", "future_field": [1, 2]}
    assert ModelCard(layout="nhwc").layout == "NHWC"


@pytest.mark.parametrize("bad, match", [
    ({"train_size": 0}, "train_size"),
    ({"crop_pct": 1.5}, "crop_pct"),
    ({"mean": [0.5, 0.5]}, "mean"),
    ({"std": [0.5, 0.0, 0.5]}, "std"),
    ({"layout": "CHW"}, "layout.*valid: NCHW, NHWC"),
    ({"channel_order": "GBR"}, "channel_order"),
    ({"size_stride": 2.5}, "size_stride"),
    ({"antialias": "yes"}, "antialias"),
    ({"output": "softmax"}, "output.*logits, probabilities"),
])
def test_card_validation_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        ModelCard.from_dict(bad)


def test_card_bad_json():
    with pytest.raises(ValueError, match="not valid JSON"):
        ModelCard.from_onnx_metadata({CARD_KEY: "{not json"})
    with pytest.raises(ValueError, match="JSON object"):
        ModelCard.from_onnx_metadata({CARD_KEY: "[1, 2]"})


# ------------------------------------------------------------------------------------------------
# Labels
def test_labels_file_then_card_then_generated(tmp_path):
    model = tmp_path / "m.onnx"
    (tmp_path / "names.txt").write_text("cat\ndog\nbird\n\n", encoding="utf-8")
    assert load_labels(ModelCard(labels_file="names.txt", labels=("x", "y", "z")), model) == ("cat", "dog", "bird")
    assert load_labels(ModelCard(labels=("x", "y")), model) == ("x", "y")
    assert load_labels(ModelCard(), model, num_classes=3) == ("class 0", "class 1", "class 2")
    assert load_labels(ModelCard(num_classes=2), model) == ("class 0", "class 1")
    assert load_labels(ModelCard(), model) == ()
    with pytest.raises(ValueError, match="3 labels but the model has 4 classes"):
        load_labels(ModelCard(labels_file="names.txt"), model, num_classes=4)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        load_labels(ModelCard(labels_file="missing.txt"), model)


# ------------------------------------------------------------------------------------------------
# ModelInput
@pytest.mark.aarch64
@pytest.mark.parametrize("shape, element, card, expected", [
    (["batch", 3, "height", "width"], "tensor(float)", None, ("NCHW", "float32", None, None)),
    ([1, 3, 224, 224], "tensor(float)", None, ("NCHW", "float32", 224, 1)),
    ([1, 224, 224, 3], "tensor(uint8)", None, ("NHWC", "uint8", 224, 1)),
    (["N", "H", "W", 3], "tensor(float16)", None, ("NHWC", "float16", None, None)),
    # Dims 1 and 3 both 3 (a 3x3 image?) or both unknown: the card decides.
    ([1, 3, 3, 3], "tensor(float)", ModelCard(layout="NHWC"), ("NHWC", "float32", 3, 1)),
    (["N", "C", "H", "W"], "tensor(float)", ModelCard(layout="NCHW"), ("NCHW", "float32", None, None)),
])
def test_model_input_kinds(shape, element, card, expected):
    info = ModelInput.from_onnx("x", shape, element, card)
    assert (info.layout, info.dtype, info.static_size, info.batch) == expected
    assert info.dynamic_size == (expected[2] is None)


@pytest.mark.parametrize("shape, element, card, match", [
    (["N", "C", "H", "W"], "tensor(float)", None, "unknown model input layout"),
    ([1, 3, 3, 3], "tensor(float)", None, "unknown model input layout"),
    (["N", 3, 224], "tensor(float)", None, "3-D"),
    ([1, 3, 224, 224], "tensor(int32)", None, "element type tensor\\(int32\\); supported"),
    ([1, 3, 224, 224], "tensor(float)", ModelCard(layout="NHWC"), "model card says layout NHWC"),
    ([1, 1, 224, 224], "tensor(float)", ModelCard(layout="NCHW"), "1 channels"),
    ([1, 3, 224, 320], "tensor(float)", None, "non-square"),
    ([1, 3, 224, "W"], "tensor(float)", None, "half-static"),
    ([8, 3, 224, 224], "tensor(float)", None, "fixed batch of 8"),
])
def test_model_input_errors(shape, element, card, match):
    with pytest.raises(ValueError, match=match):
        ModelInput.from_onnx("x", shape, element, card)


@pytest.mark.aarch64
def test_check_size_and_valid_sizes():
    card = ModelCard.from_dict(LITE0_CARD)
    dynamic = ModelInput.from_onnx("x", ["N", 3, "H", "W"], "tensor(float)", card)
    assert valid_sizes(card, dynamic) == (160, 192, 224, 256, 288, 320)
    assert check_size(256, card, dynamic) == 256
    with pytest.raises(ValueError) as info:
        check_size(250, card, dynamic)
    message = str(info.value)
    assert message.startswith("size 250 is not a multiple of 32 for efficientnet_lite0; valid: 160, 192, 224, 256, "
                              "288, 320")
    assert "\n" not in message
    static = ModelInput.from_onnx("x", [1, 3, 224, 224], "tensor(float)")
    assert check_size(224, ModelCard(), static) == 224
    with pytest.raises(ValueError, match="static size 224; valid: 224"):
        check_size(256, ModelCard(), static)
    assert check_size(250, ModelCard(), dynamic) == 250  # no stride stated: any size


# ------------------------------------------------------------------------------------------------
# Loading files (bad models give one-line errors)
def test_load_model_reads_everything(tmp_path):
    card = dict(LITE0_CARD, labels_file=None, num_classes=10, labels=[f"n{i}" for i in range(10)])
    card.pop("labels_file")
    path = classes_model(tmp_path / "tiny.onnx", card=card)
    loaded = load_model(path, threads=1)
    assert loaded.input.name == "image" and loaded.input.layout == "NCHW" and loaded.input.dynamic_size
    assert loaded.output.name == "logits" and loaded.output.num_classes == 10
    assert loaded.labels[3] == "n3" and loaded.name == "efficientnet_lite0"


def test_load_model_without_card(tmp_path):
    loaded = load_model(classes_model(tmp_path / "plain.onnx", num_classes=4), threads=1)
    assert loaded.card.is_empty and loaded.name == "plain"
    assert loaded.labels == ("class 0", "class 1", "class 2", "class 3")


def test_missing_model_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="model file not found"):
        load_model(tmp_path / "nope.onnx")


def test_not_an_onnx_file(tmp_path):
    bad = tmp_path / "garbage.onnx"
    bad.write_bytes(b"this is not a protobuf \x00\xff" * 10)
    with pytest.raises(ValueError, match="not an ONNX model") as info:
        load_model(bad)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="directory"):
        load_model(tmp_path)


def test_two_inputs(tmp_path):
    with pytest.raises(ValueError, match="2 required inputs \\(image .*mask .*exactly one image input"):
        load_model(two_input_model(tmp_path / "two.onnx"))


def test_rank3_input(tmp_path):
    with pytest.raises(ValueError, match="input 'image' has shape \\[N, 3, 64\\] \\(3-D\\)"):
        load_model(rank3_model(tmp_path / "r3.onnx"))


def test_unsupported_element_type(tmp_path):
    with pytest.raises(ValueError, match="tensor\\(int32\\)"):
        load_model(typed_model(tmp_path / "i32.onnx", ["N", 3, 8, 8], TensorProto.INT32))


def test_bad_card_in_model(tmp_path):
    with pytest.raises(ValueError, match="crop_pct"):
        load_model(classes_model(tmp_path / "badcard.onnx", card={"crop_pct": 2}))


# ------------------------------------------------------------------------------------------------
# Bundled model
def test_model_argument_resolution(tmp_path):
    with pytest.raises(TypeError, match="model must be"):
        resolve_model_path(3)
    path = classes_model(tmp_path / "m.onnx")
    assert resolve_model_path(str(path)) == path


def test_bundled_model_card_and_labels():
    try:
        path = bundled_model_path()
    except FileNotFoundError:
        pytest.skip("bundled model not built yet")
    assert path.name == "efficientnet_lite0.onnx" and path.parent.name == "models"
    assert resolve_model_path(None) == path
    loaded = load_model(None, threads=1)
    card = loaded.card
    assert card.train_size == 224 and card.size_stride == 32 and card.crop_pct == 0.875
    assert card.mean == pytest.approx((127 / 255,) * 3) and card.std == pytest.approx((128 / 255,) * 3)
    assert loaded.input.layout == "NCHW" and loaded.input.dynamic_size and loaded.input.dtype == "float32"
    assert len(loaded.labels) == 1000 and loaded.labels[0] == "tench"


def test_bundled_int8_lookup():
    try:
        path = bundled_model_path(int8=True)
    except FileNotFoundError as error:
        assert "efficientnet_lite0_int8.onnx" in str(error)
        pytest.skip("bundled int8 model not built yet")
    assert resolve_model_path("int8") == path
