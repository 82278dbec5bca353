"""``fixres-edge card``: write a model card into a copy of an ONNX model.

The card starts from the one the model already has (if any); ``--from CONFIG`` overrides it with
what a timm ``config.json`` or Hugging Face ``preprocessor_config.json`` says, and each
``--set KEY=VALUE`` overrides one field (``VALUE`` is JSON when it parses as JSON, else a string;
``null`` removes the field). The result goes through the checks the Classifier applies when it
reads a card (field types, layout against the input shape, sizes against a static input or the
stride, labels against the number of outputs) before anything is written. The input file is never
touched: the card goes into ``--out``, written to a temporary file and renamed into place.

Writing ONNX needs the ``onnx`` package (the ``card`` extra); reading the card back does not.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path

from fixres_edge.commands._model_options import usage_error

NAME = "card"
HELP = "write a model card (preprocessing, sizes, labels) into a copy of an ONNX model"
EXTRA = "card"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="ONNX model file (not modified)")
    parser.add_argument("--from", dest="from_config", metavar="CONFIG", default=None,
                        help="timm config.json or Hugging Face preprocessor_config.json to take the fields from")
    parser.add_argument("--set", dest="fields", action="append", metavar="KEY=VALUE", default=[],
                        help="set one card field (repeatable), e.g. --set train_size=240 --set interpolation=bicubic "
                             "--set 'mean=[0.5,0.5,0.5]'; VALUE null removes the field")
    parser.add_argument("--out", metavar="NEW.onnx", required=True, help="the model file to write (a copy with the card)")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    parser.add_argument("--json", action="store_true", help="print the written card as one JSON object")


def parse_field(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` -> (key, value): VALUE as JSON when it parses, else the string itself."""
    from fixres_edge.model import ModelCard

    key, sep, raw = text.partition("=")
    key = key.strip()
    valid = [f.name for f in dataclasses.fields(ModelCard) if f.name != "extra"]
    if not sep or not key:
        raise ValueError(f"--set {text!r}: expected KEY=VALUE")
    if key not in valid:
        raise ValueError(f"--set {key}: unknown card field; valid: {', '.join(valid)}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value


def build_card(current, config=None, fields=()):
    """The new card: ``current`` (a ModelCard), then the config's fields, then ``fields`` pairs."""
    from fixres_edge.model import ModelCard

    data = current.to_dict()
    if config is not None:
        data.update(config.card.to_dict())
    for key, value in fields:
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return ModelCard.from_dict(data)


def check_card(card, session, model_path: Path, out_path: Path) -> tuple[str, ...]:
    """What reading the card would check (``ValueError`` naming the field); returns the labels."""
    from fixres_edge.model import check_size, describe_session, resolve_labels

    _, model_input, output = describe_session(session, model_path, card=card)
    name = card.name or out_path.stem
    for size in (card.scales or ()) + ((card.train_size,) if card.train_size else ()):
        check_size(size, card, model_input, name)
    if card.num_classes is not None and output.num_classes is not None and card.num_classes != output.num_classes:
        raise ValueError(f"card field 'num_classes' is {card.num_classes} but the model has "
                         f"{output.num_classes} outputs")
    # A labels file is named relative to the model file: the one being written.
    return resolve_labels(card, out_path, output.num_classes)[0]


def write_card(model_path: Path, out_path: Path, card) -> None:
    """Copy ``model_path`` to ``out_path`` with ``card`` in its metadata (atomic rename)."""
    try:
        import onnx
    except ImportError:
        raise ImportError(f"writing a card needs the onnx package: pip install 'fixres-edge[{EXTRA}]'") from None
    from fixres_edge.model import CARD_KEY

    model = onnx.load(str(model_path))
    kept = [p for p in model.metadata_props if p.key != CARD_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key, entry.value = CARD_KEY, card.to_json()
    handle, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    os.close(handle)
    try:
        onnx.save(model, tmp)
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(args: argparse.Namespace) -> int:
    from fixres_edge.configs import load_config
    from fixres_edge.model import ConfigError, open_session, resolve_model_path

    model_path = resolve_model_path(args.model)
    out_path = Path(args.out)
    if out_path.resolve() == model_path.resolve() or (out_path.exists() and os.path.samefile(out_path, model_path)):
        raise usage_error(args, f"--out {args.out} is the input model; the card goes into a copy (give another path)")
    if out_path.is_dir():
        raise usage_error(args, f"--out {args.out} is a directory; give the new model's file name")
    if out_path.exists() and not args.force:
        raise usage_error(args, f"--out {args.out} exists; use --force to replace it")
    if not out_path.parent.is_dir():
        raise usage_error(args, f"--out {args.out}: folder {out_path.parent} does not exist")
    try:
        fields = [parse_field(text) for text in args.fields]
        config = None
        if args.from_config is not None:
            if not Path(args.from_config).is_file():
                raise ConfigError(f"--from {args.from_config}: not found")
            config = load_config(args.from_config)
        session = open_session(model_path, threads=1)
        from fixres_edge.model import describe_session

        current, _, _ = describe_session(session, model_path)
        card = build_card(current, config, fields)
        if card.is_empty:
            raise ValueError("the card would be empty: give --from CONFIG or --set KEY=VALUE")
        labels = check_card(card, session, model_path, out_path)
    except (ValueError, FileNotFoundError) as error:
        raise usage_error(args, str(error).splitlines()[0]) from None
    write_card(model_path, out_path, card)
    # Read it back the way the Classifier will.
    check, _, _ = describe_session(open_session(out_path, threads=1), out_path)
    if check != card:
        raise RuntimeError(f"{out_path}: the card read back differs from the one written")
    if args.json:
        print(json.dumps({"out": str(out_path), "card": card.to_dict(), "labels": len(labels)}))
    else:
        print(f"card written to {out_path} ({len(labels)} labels):", file=sys.stdout)
        for key, value in sorted(card.to_dict().items()):
            shown = f"[{len(value)} names]" if key == "labels" else (value if isinstance(value, str) else json.dumps(value))
            print(f"  {key:<14} {shown}")
    return 0
