"""Bias correction of int8 weights (``fixres_edge.bias_correction``) on a small CNN.

The shift removed from each bias is the layer's weight rounding error applied to the layer's float
input, padding, stride and groups included: checked against numpy with the int8 weights rebuilt
independently (symmetric per-channel, max |w| / 127). Corrected, the int8 model's mean logits move
to the float model's; layers without a bias are listed, not touched; float biases are corrected too;
``quantize`` corrects by default, keeps the stem and classifier float32, and says so in the card
and the report.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from numpy.lib.stride_tricks import sliding_window_view  # noqa: E402
from onnx import numpy_helper  # noqa: E402
from tiny_images import make_folder  # noqa: E402
from tiny_models import conv_model  # noqa: E402

from fixres_edge.bias_correction import correct_biases, dequantized_initializer  # noqa: E402
from fixres_edge.evaluate import LabeledFolder  # noqa: E402
from fixres_edge.quantize import (  # noqa: E402
    QUANTIZATION_NOTE, first_and_last_compute_nodes, quantize_model, quantize_static_qdq,
)
from fixres_edge.runtime import Classifier  # noqa: E402

INPUTS = [np.random.default_rng(1).uniform(0, 1, (1, 3, 12, 12)).astype(np.float32) for _ in range(24)]


class Reader:
    def __init__(self, inputs=INPUTS):
        self.pending = list(inputs)

    def get_next(self):
        return {"image": self.pending.pop()} if self.pending else None


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bias")
    fp32 = conv_model(folder / "cnn.onnx")
    plain, corrected = folder / "plain.onnx", folder / "corrected.onnx"
    assert quantize_static_qdq(fp32, plain, Reader()) is None
    report = quantize_static_qdq(fp32, corrected, Reader(), correction_reader=Reader())
    return fp32, plain, corrected, report


def run(path, inputs=INPUTS, outputs=None) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [session.run(outputs, {"image": x}) for x in inputs]


def float_inputs(fp32) -> dict[str, np.ndarray]:
    """The float model's input to each layer, over INPUTS (stacked)."""
    model = onnx.load(str(fp32))
    for name in ("a_relu", "flat"):
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    runs = [session.run(["a_relu", "flat"], {"image": x}) for x in INPUTS]
    return {"stem": np.concatenate(INPUTS), "depthwise": np.concatenate([r[0] for r in runs]),
            "head": np.concatenate([r[1] for r in runs])}


def symmetric_int8(w: np.ndarray) -> np.ndarray:
    """Per-output-channel symmetric int8 rounding, written out independently of the code under test."""
    scale = np.abs(w.reshape(w.shape[0], -1)).max(axis=1) / 127
    shape = (-1,) + (1,) * (w.ndim - 1)
    return np.clip(np.round(w / scale.reshape(shape)), -127, 127) * scale.reshape(shape)


def conv_shift(x, error, stride: int, group: int) -> np.ndarray:
    """Per-channel mean of ``conv(x, error)`` with 'same' zero padding: the numpy oracle."""
    k = error.shape[2]
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (k // 2, k // 2), (k // 2, k // 2)))
    windows = sliding_window_view(padded, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    per_group_in, per_group_out = error.shape[1], error.shape[0] // group
    out = []
    for o in range(error.shape[0]):
        g = o // per_group_out
        out.append(np.einsum("nchwij,cij->nhw", windows[:, g * per_group_in:(g + 1) * per_group_in], error[o]).mean())
    return np.array(out)


def biases(path) -> dict[str, np.ndarray]:
    """Each layer's bias as the graph computes it (dequantised when int32), and its scale."""
    graph = onnx.load(str(path)).graph
    inits = {i.name: i for i in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    found = {}
    for node in graph.node:
        if node.op_type in ("Conv", "Gemm") and len(node.input) > 2:
            deq = dequantized_initializer(node.input[2], graph, inits, producers)
            found[node.name] = (deq[0] if deq is not None else numpy_helper.to_array(inits[node.input[2]]),
                                numpy_helper.to_array(inits[deq[1].input[1]]) if deq is not None else 0.0)
    return found


def expected_shifts(fp32) -> dict[str, np.ndarray]:
    """The numpy oracle: each layer's int8 weight error applied to its float input, mean per channel."""
    weights = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(fp32)).graph.initializer}
    inputs = float_inputs(fp32)
    head = inputs["head"].astype(np.float64) @ (symmetric_int8(weights["head_w"]) - weights["head_w"]).T
    return {"stem": conv_shift(inputs["stem"], symmetric_int8(weights["stem_w"]) - weights["stem_w"], 2, 1),
            "depthwise": conv_shift(inputs["depthwise"], symmetric_int8(weights["dw_w"]) - weights["dw_w"], 1, 8),
            "head": head.mean(axis=0)}


def test_each_bias_moves_by_the_measured_weight_error_shift(cnn):
    fp32, plain, corrected, report = cnn
    assert report.corrected == 3 and report.skipped == ("pointwise",) and report.inputs == len(INPUTS)
    expected = expected_shifts(fp32)
    before, after = biases(plain), biases(corrected)
    assert set(before) == set(after) == {"stem", "depthwise", "head"}
    for name, shift in expected.items():
        moved = after[name][0] - before[name][0]
        step = np.broadcast_to(after[name][1], shift.shape)
        assert np.abs(shift).max() > 50 * step.max(), name          # the shifts are far above rounding
        # Within one step of the int32 bias (its rounding, before and after), plus float32 accumulation.
        assert np.all(np.abs(moved + shift) <= step + 1e-5), (name, moved, -shift, step)


def test_corrected_int8_means_match_float(cnn):
    fp32, plain, corrected, _ = cnn
    reference = np.concatenate([r[0] for r in run(fp32)])
    error = {name: np.concatenate([r[0] for r in run(path)]) - reference
             for name, path in (("plain", plain), ("corrected", corrected))}
    # The systematic part of the error (its mean per class) is what the correction removes.
    assert np.abs(error["corrected"].mean(axis=0)).max() < 0.5 * np.abs(error["plain"].mean(axis=0)).max()


def test_float_biases_are_corrected_too(cnn, tmp_path):
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    fp32 = cnn[0]
    out = tmp_path / "float_bias.onnx"
    quantize_static(str(fp32), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    extra_options={"QuantizeBias": False})
    before = biases(out)
    assert all(isinstance(scale, float) for _, scale in before.values())   # the biases stayed float
    kept = tmp_path / "kept.onnx"
    shutil.copyfile(out, kept)
    report = correct_biases(fp32, out, Reader())
    after = biases(out)
    assert report.corrected == 3
    for name, shift in expected_shifts(fp32).items():   # float biases take the shift unrounded
        np.testing.assert_allclose(after[name][0] - before[name][0], -shift, atol=1e-5, rtol=0, err_msg=name)
    assert kept.read_bytes() != out.read_bytes()


def test_nothing_to_correct_leaves_the_model_as_it_is(tmp_path):
    from tiny_models import color_model

    fp32 = color_model(tmp_path / "color.onnx")   # one MatMul, no bias
    out = tmp_path / "color_int8.onnx"
    quantize_static_qdq(fp32, out, Reader([x[:, :, :8, :8] for x in INPUTS]))
    before = out.read_bytes()
    report = correct_biases(fp32, out, Reader([x[:, :, :8, :8] for x in INPUTS]))
    assert report.corrected == 0 and out.read_bytes() == before


def test_quantize_defaults_correct_and_keep_first_last_float_and_say_so(tmp_path):
    fp32 = conv_model(tmp_path / "cnn.onnx")
    photos = make_folder(tmp_path / "photos", per_class=4)
    items = LabeledFolder(photos, num_classes=3).items
    default = quantize_model(fp32, tmp_path / "a.onnx", items, calib_every=3, sizes=[16], latency_repeats=0)
    plain = quantize_model(fp32, tmp_path / "b.onnx", items, calib_every=3, sizes=[16], latency_repeats=0,
                           bias_correction=False, exclude_first_last=False)
    # stem and head stay float32; of the int8 layers, depthwise has a bias, pointwise has none.
    assert default.excluded == ("stem", "head") and plain.excluded == ()
    assert default.bias_correction.corrected == 1 and default.bias_correction.inputs == 4
    assert default.to_dict()["bias_correction"]["skipped"] == ["pointwise"]
    assert plain.bias_correction is None
    assert (Classifier(tmp_path / "a.onnx").card.extra["quantization"]
            == "int8 QDQ per-channel static, bias-corrected, stem and classifier float32")
    assert Classifier(tmp_path / "b.onnx").card.extra["quantization"] == QUANTIZATION_NOTE
    assert all(r.kl >= 0 for r in default.sizes + plain.sizes)


def test_first_and_last_stay_int8_in_models_of_fewer_than_three_layers(tmp_path):
    from tiny_models import color_model

    assert first_and_last_compute_nodes(onnx.load(str(conv_model(tmp_path / "c.onnx")))) == ["stem", "head"]
    assert first_and_last_compute_nodes(onnx.load(str(color_model(tmp_path / "m.onnx")))) == []
