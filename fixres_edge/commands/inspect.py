"""``fixres-edge inspect``: what a model takes and gives, its card, valid sizes, and default scales."""
from __future__ import annotations

import argparse
import json
import sys
import warnings

from fixres_edge.commands._model_options import (
    add_model_options, check_files, classifier_options, report_warnings, usage_error,
)

NAME = "inspect"
HELP = "show an ONNX model's inputs, outputs, model card, config file, valid sizes, and default scale set"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", default=None, metavar="MODEL",
                        help="ONNX model file, or 'int8' (default: the bundled fp32 model)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_model_options(parser, size_as="train_size")


def _io(values) -> list[dict]:
    return [{"name": v.name, "shape": list(v.shape), "type": v.type} for v in values]


def describe(model, **options) -> dict:
    """Everything ``inspect`` reports, as a JSON-ready dict (``usable`` False plus ``error`` for a model
    the Classifier would refuse).

    ``options`` are the Classifier's model description arguments (``config``, ``labels``,
    ``train_size``, ``crop_pct``, ``interpolation``, ``antialias``, ``mean``, ``std``); a bad config
    or labels file raises :class:`fixres_edge.model.ConfigError`. What would be assumed is warned
    (:class:`fixres_edge.settings.PreprocessingWarning`) and listed under ``assumed``.
    """
    from fixres_edge.model import ConfigError, describe_session, open_session, resolve_model_path, valid_sizes
    from fixres_edge.policy import default_scales
    from fixres_edge.settings import (
        PreprocessingWarning, assumed_message, assumed_preprocessing, describe_model, resolve_settings,
    )

    path = resolve_model_path(model)
    session = open_session(path, threads=1)
    info: dict = {"path": str(path), "bytes": path.stat().st_size,
                  "inputs": _io(session.get_inputs()), "outputs": _io(session.get_outputs())}
    try:
        onnx_card, model_input, output = describe_session(session, path)
        config, labels_arg = options.pop("config", None), options.pop("labels", None)
        card, origin, config, labels, labels_source = describe_model(
            onnx_card, path, output.num_classes, config=config, labels=labels_arg, **options)
        name = onnx_card.name or path.stem
        settings = resolve_settings(card, model_input, model_name=name, card_origin=origin)
    except ConfigError:
        raise
    except (ValueError, OSError) as error:
        info.update(usable=False, error=str(error).splitlines()[0])
        return info
    assumed = assumed_preprocessing(settings, model_input, origin)
    for note in (config.notes if config is not None else ()):
        warnings.warn(PreprocessingWarning(note), stacklevel=2)
    if assumed:
        warnings.warn(PreprocessingWarning(assumed_message(name, assumed)), stacklevel=2)
    info.update(
        usable=True,
        card=onnx_card.to_dict() or None,
        config=None if config is None else {"sources": list(config.sources),
                                            "paths": [str(p) for p in config.paths],
                                            "fields": config.card.to_dict(), "ignored": list(config.ignored),
                                            "notes": list(config.notes)},
        effective_card=card.to_dict(),
        card_origin=origin,
        assumed=list(assumed),
        image_input={"name": model_input.name, "layout": model_input.layout, "dtype": model_input.dtype,
                     "size": model_input.static_size or "dynamic",
                     "batch": model_input.batch or "dynamic"},
        num_classes=output.num_classes,
        labels={"count": len(labels), "first": list(labels[:3]), "source": labels_source},
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
    print(f"classes   {info['num_classes']} (labels: {info['labels']['count']} from {info['labels']['source']}, "
          f"e.g. {', '.join(info['labels']['first'])})", file=out)
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
    origins = ", ".join(f"{k} {v}" for k, v in pre["from"].items())
    print(f"from      {origins}", file=out)
    config = info["config"]
    if config is None:
        print("config    none", file=out)
    else:
        print(f"config    {', '.join(config['sources'])}: {', '.join(sorted(config['fields'])) or 'nothing'}"
              + (f" (ignored: {', '.join(config['ignored'])})" if config["ignored"] else ""), file=out)
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
    from fixres_edge.model import ConfigError

    check_files(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            info = describe(args.model, **classifier_options(args))
        except ConfigError as error:
            raise usage_error(args, str(error)) from None
    report_warnings(args, caught)
    if args.json:
        print(json.dumps(info), file=sys.stdout)
    else:
        _print_human(info, sys.stdout)
    return 0 if info["usable"] else 1
