"""Tiny ONNX models and model config files for the tests (built with ``onnx.helper``).

Every builder writes a model file and returns its path. Models are tiny (a channel mean and a
3 x K matrix), so a test runs them in microseconds; what they compute is chosen so that tests
can tell what the model was fed:

* :func:`probe_model` returns its input flattened (the exact tensor the Classifier built);
* :func:`classes_model` returns K logits, ``channel means @ W`` with a fixed seeded ``W``;
* :func:`color_model` is a 3-class "which color is brightest" classifier for labeled folders
  (:mod:`tiny_images` makes the folders);
* :func:`conv_model` is a small convolutional 3-class network (strided, depthwise and pointwise
  convolutions, a Gemm head) whose weights quantise coarsely, for int8 and bias-correction tests;
* :func:`normalizing_model` takes uint8 pixels and normalizes inside the graph, as exported
  quantized or "pixels in" models do;
* :func:`two_input_model`, :func:`rank3_model`, :func:`typed_model`: inputs the Classifier must
  refuse with a one-line error.

Import from test modules (``from tiny_models import ...``), never from another test module;
needs the ``onnx`` package (test modules call ``pytest.importorskip("onnx")`` first).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tiny_images import COLORS

ELEMENT = {"float32": TensorProto.FLOAT, "uint8": TensorProto.UINT8, "float16": TensorProto.FLOAT16,
           "int32": TensorProto.INT32}
# The metadata key of the model card, written out here so that a change of the format shows.
CARD_KEY = "fixres_edge.card"
# The card of :func:`color_model`: 3 classes named after COLORS, trained at 16, scales 8/16/24.
COLOR_CARD = {"name": "tiny", "labels": list(COLORS), "train_size": 16, "crop_pct": 0.875, "mean": [0, 0, 0],
              "std": [1, 1, 1], "size_stride": 8, "scales": [8, 16, 24], "interpolation": "bilinear",
              "antialias": True, "num_classes": 3}


def input_shape(layout: str, size: int | None, batch="N") -> list:
    """ONNX input shape: static ``size`` or dynamic ``H``/``W``."""
    h = w = size if size is not None else None
    h, w = (h, w) if size is not None else ("H", "W")
    return [batch, 3, h, w] if layout == "NCHW" else [batch, h, w, 3]


def save_model(graph, path, card: dict | None = None, metadata: dict | None = None) -> Path:
    """Write ``graph`` as an opset-17 model with ``card`` (JSON under CARD_KEY) and other ``metadata``."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime the project supports
    props = dict(metadata or {})
    if card is not None:
        props[CARD_KEY] = json.dumps(card)
    if props:
        helper.set_model_props(model, props)
    onnx.checker.check_model(model)
    path = Path(path)
    path.write_bytes(model.SerializeToString())
    return path


def probe_model(path, layout: str = "NCHW", dtype: str = "float32", size: int | None = None,
                card: dict | None = None, batch=None) -> Path:
    """Output = the input, cast to float and flattened in its own layout: ``(N, 3 * H * W)``.

    ``batch`` is the batch dimension: 1 for a static ``size``, else dynamic ("N"), unless given.
    """
    if batch is None:
        batch = 1 if size is not None else "N"
    x = helper.make_tensor_value_info("image", ELEMENT[dtype], input_shape(layout, size, batch))
    y = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch, "K"])
    nodes = [helper.make_node("Cast", ["image"], ["as_float"], to=TensorProto.FLOAT),
             helper.make_node("Flatten", ["as_float"], ["scores"], axis=1)]
    return save_model(helper.make_graph(nodes, "probe", [x], [y]), path, card)


def class_weights(num_classes: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(3, num_classes)).astype(np.float32)


def classes_model(path, layout: str = "NCHW", dtype: str = "float32", size: int | None = None,
                  num_classes: int = 10, card: dict | None = None, seed: int = 0, gain: float | None = None) -> Path:
    """Output = per-channel means of the input @ ``gain * class_weights(num_classes, seed)``: ``(N, K)``.

    The default ``gain`` keeps the logits in a range where softmax is neither flat nor one-hot:
    4 for normalized float input, 0.03 for pixel-valued (integer) input.
    """
    if gain is None:
        gain = 4.0 if dtype == "float32" else 0.03
    axes = [2, 3] if layout == "NCHW" else [1, 2]
    x = helper.make_tensor_value_info("image", ELEMENT[dtype], input_shape(layout, size))
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", num_classes])
    nodes = [helper.make_node("Cast", ["image"], ["as_float"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["as_float"], ["means"], axes=axes, keepdims=0),
             helper.make_node("MatMul", ["means", "W"], ["logits"])]
    weights = numpy_helper.from_array(class_weights(num_classes, seed) * np.float32(gain), "W")
    return save_model(helper.make_graph(nodes, "classes", [x], [y], [weights]), path, card)


def color_model(path, size: int | None = None, card: dict | None = COLOR_CARD, gain: float = 8.0,
                center_weight: bool = False) -> Path:
    """A 3-class classifier: logits = gain * mean RGB (in [0, 1]); the brightest channel wins.

    With ``center_weight`` (static size only) the central half of the image counts 4x, so zooming
    (crop_pct) changes the answer for images whose center and border differ.
    """
    dims = [1, 3, size, size] if size else ["N", 3, "H", "W"]
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, dims)
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [dims[0], 3])
    weights = [numpy_helper.from_array(np.eye(3, dtype=np.float32) * gain, "W")]
    nodes = []
    source = "image"
    if center_weight:
        if size is None:
            raise ValueError("center_weight needs a static size")
        mask = np.ones((1, 1, size, size), np.float32)
        q = size // 4
        mask[..., q:size - q, q:size - q] = 4.0
        mask *= mask.size / mask.sum()
        weights.append(numpy_helper.from_array(mask, "M"))
        nodes.append(helper.make_node("Mul", ["image", "M"], ["weighted"]))
        source = "weighted"
    nodes += [helper.make_node("ReduceMean", [source], ["means"], axes=[2, 3], keepdims=0),
              helper.make_node("MatMul", ["means", "W"], ["logits"])]
    return save_model(helper.make_graph(nodes, "color", [x], [y], weights), path, card)


def outlier_weights(rng, shape, outlier: float = 4.0) -> np.ndarray:
    """Gaussian weights with one large weight per output channel (axis 0): per-channel int8 then
    rounds the others coarsely, as in real depthwise layers."""
    w = rng.normal(0.0, 0.3, shape).astype(np.float32)
    flat = w.reshape(shape[0], -1)
    flat[np.arange(shape[0]), rng.integers(0, flat.shape[1], shape[0])] = outlier
    return w


def conv_model(path, card: dict | None = COLOR_CARD, seed: int = 0) -> Path:
    """A small CNN classifier with biases: Conv 3x3/2 (3->8) - Relu - depthwise Conv 3x3 - Relu -
    pointwise Conv 1x1 without bias - GlobalAveragePool - Flatten - Gemm (8->3, transB) - logits.

    Node names: ``stem``, ``depthwise``, ``pointwise`` (no bias), ``head``."""
    rng = np.random.default_rng(seed)
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])
    arrays = {"stem_w": outlier_weights(rng, (8, 3, 3, 3)), "stem_b": rng.normal(0, 0.1, 8),
              "dw_w": outlier_weights(rng, (8, 1, 3, 3)), "dw_b": rng.normal(0, 0.1, 8),
              "pw_w": outlier_weights(rng, (8, 8, 1, 1)),
              "head_w": outlier_weights(rng, (3, 8), outlier=2.0), "head_b": rng.normal(0, 0.1, 3)}
    weights = [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in arrays.items()]
    nodes = [helper.make_node("Conv", ["image", "stem_w", "stem_b"], ["a"], name="stem", kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["a"], ["a_relu"]),
             helper.make_node("Conv", ["a_relu", "dw_w", "dw_b"], ["b"], name="depthwise", kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1], group=8),
             helper.make_node("Relu", ["b"], ["b_relu"]),
             helper.make_node("Conv", ["b_relu", "pw_w"], ["c"], name="pointwise", kernel_shape=[1, 1]),
             helper.make_node("GlobalAveragePool", ["c"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("Gemm", ["flat", "head_w", "head_b"], ["logits"], name="head", transB=1)]
    return save_model(helper.make_graph(nodes, "conv", [x], [y], weights), path, card)


def normalizing_model(path, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), size: int | None = None,
                      num_classes: int = 10) -> Path:
    """NHWC uint8 pixels in; ``(x - 255 mean) / (255 std)`` inside the graph; then as :func:`classes_model`."""
    x = helper.make_tensor_value_info("pixels", TensorProto.UINT8, input_shape("NHWC", size))
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", num_classes])
    nodes = [helper.make_node("Cast", ["pixels"], ["as_float"], to=TensorProto.FLOAT),
             helper.make_node("Sub", ["as_float", "M"], ["centered"]),
             helper.make_node("Div", ["centered", "S"], ["normalized"]),
             helper.make_node("ReduceMean", ["normalized"], ["means"], axes=[1, 2], keepdims=0),
             helper.make_node("MatMul", ["means", "W"], ["logits"])]
    init = [numpy_helper.from_array(np.float32(255) * np.asarray(mean, np.float32), "M"),
            numpy_helper.from_array(np.float32(255) * np.asarray(std, np.float32), "S"),
            numpy_helper.from_array(class_weights(num_classes), "W")]
    return save_model(helper.make_graph(nodes, "normalizing", [x], [y], init), path)


def two_input_model(path) -> Path:
    """Two float inputs ``image`` and ``mask`` (N, 3, 8, 8), output their sum."""
    a = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 8, 8])
    b = helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["N", 3, 8, 8])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Add", ["image", "mask"], ["out"])], "two", [a, b], [y])
    return save_model(graph, path)


def rank3_model(path) -> Path:
    """A 3-D input (N, 3, 64): not an image."""
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 64])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 192])
    graph = helper.make_graph([helper.make_node("Flatten", ["image"], ["out"], axis=1)], "r3", [x], [y])
    return save_model(graph, path)


def typed_model(path, shape, element: int) -> Path:
    """An input of any ``shape`` and ONNX element type (``TensorProto`` value), output flattened as float."""
    x = helper.make_tensor_value_info("image", element, shape)
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", "K"])
    nodes = [helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("Flatten", ["f"], ["out"], axis=1)]
    return save_model(helper.make_graph(nodes, "typed", [x], [y]), path)


# ------------------------------------------------------------------------------------------------
# Config files as timm and Hugging Face publish them
def timm_config(train: int = 240, *, test: int | None = None, crop_pct: float = 0.9, mean=(0.5, 0.5, 0.5),
                std=(0.5, 0.5, 0.5), interpolation: str = "bicubic", num_classes: int = 10,
                label_names: list[str] | None = None, **pretrained) -> dict:
    """A timm ``config.json`` (``pretrained_cfg`` nested, as on the Hugging Face hub)."""
    cfg = {"tag": "test", "custom_load": False, "input_size": [3, train, train], "fixed_input_size": False,
           "interpolation": interpolation, "crop_pct": crop_pct, "crop_mode": "center", "mean": list(mean),
           "std": list(std), "num_classes": num_classes, "pool_size": [7, 7], "first_conv": "conv_stem",
           "classifier": "classifier"}
    if test is not None:
        cfg.update(test_input_size=[3, test, test], test_crop_pct=1.0)
    cfg.update(pretrained)
    data = {"architecture": "tiny", "num_classes": num_classes, "num_features": 3, "pretrained_cfg": cfg}
    if label_names is not None:
        data["label_names"] = label_names
    return data


def hf_processor_config(shortest_edge: int = 256, crop: int = 224, mean=(0.485, 0.456, 0.406),
                        std=(0.229, 0.224, 0.225), resample: int = 3, **extra) -> dict:
    """A Hugging Face ``preprocessor_config.json`` (resize the short side, center crop)."""
    data = {"crop_size": {"height": crop, "width": crop}, "do_center_crop": True, "do_normalize": True,
            "do_rescale": True, "do_resize": True, "image_mean": list(mean), "image_processor_type": "TinyProcessor",
            "image_std": list(std), "resample": resample, "rescale_factor": 1 / 255,
            "size": {"shortest_edge": shortest_edge}}
    data.update(extra)
    return data


def write_json(path, data) -> Path:
    path = Path(path)
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


def write_labels(path, names) -> Path:
    path = Path(path)
    path.write_text("".join(f"{n}\n" for n in names), encoding="utf-8")
    return path
