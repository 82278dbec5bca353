"""``fixres-edge inspect``: what a model takes and gives, its card, valid sizes, and default scales."""
from __future__ import annotations

import argparse
import json
import sys

NAME = "inspect"
HELP = "show an ONNX model's inputs, outputs, model card, valid sizes, and default scale set"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", default=None, metavar="MODEL",
                        help="ONNX model file, or 'int8' (default: the bundled fp32 model)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _io(values) -> list[dict]:
    return [{"name": v.name, "shape": list(v.shape), "type": v.type} for v in values]


def describe(model) -> dict:
    """Everything ``inspect`` reports, as a JSON-ready dict (``usable`` False plus ``error`` for a model
    the Classifier would refuse)."""
    from fixres_edge.model import describe_session, load_labels, open_session, resolve_model_path, valid_sizes
    from fixres_edge.policy import default_scales
    from fixres_edge.runtime import resolve_settings

    path = resolve_model_path(model)
    session = open_session(path, threads=1)
    info: dict = {"path": str(path), "bytes": path.stat().st_size,
                  "inputs": _io(session.get_inputs()), "outputs": _io(session.get_outputs())}
    try:
        card, model_input, output = describe_session(session, path)
        labels = load_labels(card, path, output.num_classes)
        settings = resolve_settings(card, model_input, model_name=card.name or path.stem)
    except (ValueError, OSError) as error:
        info.update(usable=False, error=str(error).splitlines()[0])
        return info
    info.update(
        usable=True,
        card=card.to_dict() or None,
        image_input={"name": model_input.name, "layout": model_input.layout, "dtype": model_input.dtype,
                     "size": model_input.static_size or "dynamic",
                     "batch": model_input.batch or "dynamic"},
        num_classes=output.num_classes,
        labels={"count": len(labels), "first": list(labels[:3])},
        valid_sizes=list(valid_sizes(card, model_input)),
        size_stride=card.size_stride,
        default_scales=[s.to_dict() for s in default_scales(card, model_input.dynamic_size,
                                                            model_input.static_size)],
        preprocessing={"scale": settings.policy.scales[0].to_dict(), "interpolation": settings.interpolation,
                       "antialias": settings.antialias, "mean": list(settings.mean), "std": list(settings.std),
                       "channel_order": settings.channel_order, "from": settings.origin},
    )
    return info


def _print_human(info: dict, out) -> None:
    print(f"model     {info['path']} ({info['bytes'] / 1e6:.1f} MB)", file=out)
    for kind in ("inputs", "outputs"):
        for v in info[kind]:
            print(f"{kind[:-1]:<9} {v['name']}  {v['shape']}  {v['type']}", file=out)
    if not info["usable"]:
        print(f"unusable  {info['error']}", file=out)
        return
    image = info["image_input"]
    print(f"image     {image['layout']} {image['dtype']}, size {image['size']}, batch {image['batch']}", file=out)
    print(f"classes   {info['num_classes']} (labels: {info['labels']['count']}, e.g. "
          f"{', '.join(info['labels']['first'])})", file=out)
    sizes = ", ".join(map(str, info["valid_sizes"]))
    if image["size"] != "dynamic":
        print(f"sizes     {sizes} (static)", file=out)
    elif info["size_stride"]:
        print(f"sizes     {sizes} (multiples of {info['size_stride']})", file=out)
    else:
        print(f"sizes     any (the card states no size_stride); e.g. {sizes}", file=out)
    scales = ", ".join(f"{s['size']}@{s['crop_pct']:g}" for s in info["default_scales"])
    print(f"scales    {scales}  (default scale set: size@crop_pct)", file=out)
    pre = info["preprocessing"]
    print(f"default   {pre['scale']['size']}@{pre['scale']['crop_pct']:g}, {pre['interpolation']}"
          f"{' antialias' if pre['antialias'] else ''}, mean {[round(m, 4) for m in pre['mean']]}, "
          f"std {[round(s, 4) for s in pre['std']]}, {pre['channel_order']}", file=out)
    card = info["card"]
    if card is None:
        print("card      none (preprocessing from arguments or defaults)", file=out)
    else:
        print("card", file=out)
        for key in sorted(card):
            value = card[key]
            if key == "labels" and isinstance(value, list):
                value = f"[{len(value)} names]"
            print(f"  {key:<14} {json.dumps(value) if not isinstance(value, str) else value}", file=out)


def run(args: argparse.Namespace) -> int:
    info = describe(args.model)
    if args.json:
        print(json.dumps(info), file=sys.stdout)
    else:
        _print_human(info, sys.stdout)
    return 0 if info["usable"] else 1
