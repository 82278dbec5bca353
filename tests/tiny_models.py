"""Tiny ONNX classifiers and config files for the bring-your-own-model tests (built with ``onnx.helper``).

Every builder writes a model file and returns its path. Models are tiny (a channel mean and a
3 x K matrix), so a test runs them in microseconds; what they compute is chosen so that tests
can tell what the model was fed:

* :func:`probe_model` returns its input flattened (the exact tensor the Classifier built);
* :func:`classes_model` returns K logits, ``channel means @ W`` with a fixed seeded ``W``;
* :func:`normalizing_model` takes uint8 pixels and normalizes inside the graph, as exported
  quantized or "pixels in" models do.

Import from test modules (``from tiny_models import ...``); needs the ``onnx`` package.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

ELEMENT = {"float32": TensorProto.FLOAT, "uint8": TensorProto.UINT8, "float16": TensorProto.FLOAT16}
CARD_KEY = "fixres_edge.card"


def input_shape(layout: str, size: int | None, batch="N") -> list:
    """ONNX input shape: static ``size`` or dynamic ``H``/``W``."""
    h = w = size if size is not None else None
    h, w = (h, w) if size is not None else ("H", "W")
    return [batch, 3, h, w] if layout == "NCHW" else [batch, h, w, 3]


def save(graph, path: Path, card: dict | None = None) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime the project supports
    if card is not None:
        helper.set_model_props(model, {CARD_KEY: json.dumps(card)})
    path = Path(path)
    path.write_bytes(model.SerializeToString())
    return path


def probe_model(path, layout: str = "NCHW", dtype: str = "float32", size: int | None = None,
                card: dict | None = None) -> Path:
    """Output = the input, cast to float and flattened: ``(N, 3 * H * W)``."""
    batch = 1 if size is not None else "N"
    x = helper.make_tensor_value_info("image", ELEMENT[dtype], input_shape(layout, size, batch))
    y = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch, "K"])
    nodes = [helper.make_node("Cast", ["image"], ["as_float"], to=TensorProto.FLOAT),
             helper.make_node("Flatten", ["as_float"], ["scores"], axis=1)]
    return save(helper.make_graph(nodes, "probe", [x], [y]), path, card)


def class_weights(num_classes: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(3, num_classes)).astype(np.float32)


def classes_model(path, layout: str = "NCHW", dtype: str = "float32", size: int | None = None,
                  num_classes: int = 10, card: dict | None = None, seed: int = 0) -> Path:
    """Output = per-channel means of the input @ ``class_weights(num_classes, seed)``: ``(N, K)``."""
    axes = [2, 3] if layout == "NCHW" else [1, 2]
    x = helper.make_tensor_value_info("image", ELEMENT[dtype], input_shape(layout, size))
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", num_classes])
    nodes = [helper.make_node("Cast", ["image"], ["as_float"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["as_float"], ["means"], axes=axes, keepdims=0),
             helper.make_node("MatMul", ["means", "W"], ["logits"])]
    weights = numpy_helper.from_array(class_weights(num_classes, seed), "W")
    return save(helper.make_graph(nodes, "classes", [x], [y], [weights]), path, card)


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
    return save(helper.make_graph(nodes, "normalizing", [x], [y], init), path)


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
