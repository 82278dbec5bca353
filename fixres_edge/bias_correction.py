"""Bias correction for int8 weights: the mean shift that rounding a layer's weights causes, measured and removed.

Rounding a layer's weights to int8 changes its output by ``(W_q - W) x``. That error is not zero-mean:
per output channel it has the mean ``E[(W_q - W) x]``, and deep networks of small layers (depthwise
convolutions above all) pass these shifts on and add them up. Nagel et al., "Data-Free Quantization
Through Weight Equalization and Bias Correction" (ICCV 2019, section 4.2) correct it by subtracting the
expected shift from the layer's bias; Finkelstein et al., "Fighting Quantization Bias With Bias" (2019)
measure it on calibration data instead of deriving it from batch-norm statistics. This module does the
measured form:

1. :func:`weight_errors` reads, for every Conv/Gemm whose weights the int8 graph dequantises, the exact
   int8 weights ONNX Runtime wrote, and their difference from the float weights;
2. :func:`probe_model` adds to the float model, for each such layer, the same layer run with the weight
   error as its weights (its own strides, pads, groups) followed by a mean over all but the channel axis,
   so that one float inference gives every layer's shift on that image, padding included;
3. :func:`correct_biases` averages the shifts over the calibration photos and subtracts them from the
   int8 model's quantised biases (int32, at the bias scale ONNX Runtime chose).

The shift is measured on the float model's activations, i.e. layer by layer as if every earlier layer
were exact, as in the papers.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Prefix of the tensors the probe adds to the float model (never in a saved product model).
PROBE_PREFIX = "fixres_edge_bias_probe"


@dataclass(frozen=True)
class WeightError:
    """One layer whose int8 weights differ from its float weights.

    ``error`` is shaped as the probe uses it: the Conv weight layout ``(M, C/group, k...)``, or
    ``(K, N)`` for a Gemm (``x @ error``, alpha folded in). ``bias_scale`` divides the shift into the
    int8 graph's bias units (``beta``, and the dequantisation scale of an int32 bias).
    """

    node: str
    op_type: str
    input: str
    error: np.ndarray
    attributes: tuple
    bias: str
    bias_scale: np.ndarray | float


@dataclass(frozen=True)
class BiasCorrection:
    """What :func:`correct_biases` did: layers corrected, layers with int8 weights it could not
    correct (no per-channel bias, transposed Gemm input), inputs measured (photos x sizes), and the
    largest shift removed, in the units of the layer's float output."""

    corrected: int
    skipped: tuple[str, ...]
    inputs: int
    largest_shift: float

    def to_dict(self) -> dict[str, Any]:
        return {"corrected": self.corrected, "skipped": list(self.skipped), "inputs": self.inputs,
                "largest_shift": self.largest_shift}


def _initializers(graph) -> dict:
    return {init.name: init for init in graph.initializer}


def _producers(graph) -> dict:
    return {out: node for node in graph.node for out in node.output}


def _attribute(node, name: str, default):
    from onnx import helper

    for attr in node.attribute:
        if attr.name == name:
            return helper.get_attribute_value(attr)
    return default


def dequantized_initializer(tensor: str, graph, inits: dict, producers: dict):
    """``(values, dequantize node)`` when ``tensor`` is ``DequantizeLinear`` of initializers, else ``None``.

    ``values`` is float64: ``(q - zero_point) * scale``, per axis when the scale is a vector.
    """
    from onnx import numpy_helper

    node = producers.get(tensor)
    if node is None or node.op_type != "DequantizeLinear" or node.input[0] not in inits:
        return None
    if node.input[1] not in inits or (len(node.input) > 2 and node.input[2] and node.input[2] not in inits):
        return None
    q = numpy_helper.to_array(inits[node.input[0]]).astype(np.float64)
    scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float64)
    zero = (numpy_helper.to_array(inits[node.input[2]]).astype(np.float64)
            if len(node.input) > 2 and node.input[2] else np.zeros_like(scale))
    if scale.ndim == 1 and scale.size > 1:
        axis = _attribute(node, "axis", 1) % q.ndim
        shape = [1] * q.ndim
        shape[axis] = scale.size
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return (q - zero) * scale, node


def weight_errors(float_proto, int8_proto) -> tuple[list[WeightError], list[str]]:
    """The layers of ``int8_proto`` (a QDQ model quantised from ``float_proto``; nodes keep their names)
    whose weights are dequantised int8, with their weight error; and the names of those that cannot be
    corrected (no bias, transposed Gemm input, float model without that node)."""
    from onnx import numpy_helper

    graph = int8_proto.graph
    inits, producers = _initializers(graph), _producers(graph)
    float_inits = _initializers(float_proto.graph)
    float_nodes = {node.name: node for node in float_proto.graph.node if node.name}
    layers, skipped = [], []
    for node in graph.node:
        if node.op_type not in ("Conv", "Gemm") or len(node.input) < 2:
            continue
        weights = dequantized_initializer(node.input[1], graph, inits, producers)
        if weights is None:
            continue                                             # float weights: nothing to correct
        quantized = weights[0]
        source = float_nodes.get(node.name)
        bias = node.input[2] if len(node.input) > 2 else ""
        if (source is None or source.op_type != node.op_type or source.input[1] not in float_inits or not bias
                or (node.op_type == "Gemm" and _attribute(node, "transA", 0))):
            skipped.append(node.name)
            continue
        float_weights = numpy_helper.to_array(float_inits[source.input[1]]).astype(np.float64)
        if float_weights.shape != quantized.shape:
            skipped.append(node.name)
            continue
        error = quantized - float_weights
        if node.op_type == "Gemm":
            error = (error.T if _attribute(node, "transB", 0) else error) * _attribute(node, "alpha", 1.0)
            divisor = float(_attribute(node, "beta", 1.0))
        else:
            divisor = 1.0
        quantized_bias = dequantized_initializer(bias, graph, inits, producers)
        if quantized_bias is not None:
            dq = quantized_bias[1]
            scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float64)
            bias_tensor, bias_scale = dq.input[0], scale * divisor
        elif bias in inits:
            bias_tensor, bias_scale = bias, divisor
        else:
            skipped.append(node.name)
            continue
        channels = error.shape[0 if node.op_type == "Conv" else 1]
        if int(np.prod(inits[bias_tensor].dims)) != channels:
            skipped.append(node.name)                            # a broadcast bias cannot take per-channel shifts
            continue
        layers.append(WeightError(node=node.name, op_type=node.op_type, input=source.input[0],
                                  error=error.astype(np.float32), attributes=tuple(source.attribute),
                                  bias=bias_tensor, bias_scale=bias_scale))
    return layers, skipped


def probe_model(float_proto, layers: list[WeightError]):
    """A copy of ``float_proto`` with one extra output per layer: the per-channel mean of the layer's
    weight error applied to the layer's input, shape ``(channels,)``."""
    import onnx
    from onnx import helper, numpy_helper

    probe = onnx.ModelProto()
    probe.CopyFrom(float_proto)
    graph = probe.graph
    opset = next((o.version for o in probe.opset_import if o.domain in ("", "ai.onnx")), 13)
    for i, layer in enumerate(layers):
        weight, applied, mean = (f"{PROBE_PREFIX}_{i}_{part}" for part in ("weight", "applied", "mean"))
        graph.initializer.append(numpy_helper.from_array(layer.error, weight))
        if layer.op_type == "Conv":
            conv = helper.make_node("Conv", [layer.input, weight], [applied])
            conv.attribute.extend(layer.attributes)
            graph.node.append(conv)
            axes = [0] + list(range(2, layer.error.ndim))
        else:
            graph.node.append(helper.make_node("MatMul", [layer.input, weight], [applied]))
            axes = [0]
        if opset >= 18:
            axes_name = f"{PROBE_PREFIX}_{i}_axes"
            graph.initializer.append(numpy_helper.from_array(np.asarray(axes, np.int64), axes_name))
            graph.node.append(helper.make_node("ReduceMean", [applied, axes_name], [mean], keepdims=0))
        else:
            graph.node.append(helper.make_node("ReduceMean", [applied], [mean], axes=axes, keepdims=0))
        graph.output.append(helper.make_tensor_value_info(mean, onnx.TensorProto.FLOAT, None))
    return probe


def correct_biases(float_path: str | Path, int8_path: str | Path, reader, *, threads: int | None = 1
                   ) -> BiasCorrection:
    """Measure every int8 layer's weight-error shift on ``reader``'s inputs through the float model and
    subtract it from the int8 model's biases; ``int8_path`` is rewritten in place.

    Parameters
    ----------
    float_path : str or PathLike
        The float model ``int8_path`` was quantised from (same node names).
    int8_path : str or PathLike
        A QDQ model (weights as ``DequantizeLinear`` of int8 initializers).
    reader : object with ``get_next()``
        ONNX Runtime's calibration reader protocol: input dicts, then ``None``.
    threads : int or None
        ONNX Runtime intra-op threads for the probe.

    Returns
    -------
    BiasCorrection
    """
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    float_proto, int8_proto = onnx.load(str(float_path)), onnx.load(str(int8_path))
    layers, skipped = weight_errors(float_proto, int8_proto)
    if not layers:
        return BiasCorrection(0, tuple(skipped), 0, 0.0)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    # Serialised rather than saved: the probe is as large as the model and never needs a file.
    session = ort.InferenceSession(probe_model(float_proto, layers).SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    names = [f"{PROBE_PREFIX}_{i}_mean" for i in range(len(layers))]
    totals = [np.zeros(layer.error.shape[0 if layer.op_type == "Conv" else 1]) for layer in layers]
    inputs = 0
    while (feed := reader.get_next()) is not None:
        for total, shift in zip(totals, session.run(names, feed)):
            total += shift.reshape(-1)
        inputs += 1
    if not inputs:
        return BiasCorrection(0, tuple(skipped), 0, 0.0)
    inits = _initializers(int8_proto.graph)
    largest = 0.0
    for layer, total in zip(layers, totals):
        shift = total / inputs
        largest = max(largest, float(np.abs(shift).max()))
        tensor = inits[layer.bias]
        bias = numpy_helper.to_array(tensor)
        corrected = bias.reshape(-1).astype(np.float64) - shift / np.reshape(layer.bias_scale, -1)
        if np.issubdtype(bias.dtype, np.integer):
            info = np.iinfo(bias.dtype)
            corrected = np.clip(np.rint(corrected), info.min, info.max)
        tensor.CopyFrom(numpy_helper.from_array(corrected.astype(bias.dtype).reshape(bias.shape), layer.bias))
    onnx.save(int8_proto, str(int8_path))
    return BiasCorrection(len(layers), tuple(skipped), inputs, largest)
