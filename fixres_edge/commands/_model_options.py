"""The options that describe a model, shared by ``classify``, ``eval``, ``calibrate``, ``bench`` and ``inspect``.

``--size`` (alias ``--res``), ``--crop-pct``, ``--interpolation``, ``--antialias/--no-antialias``,
``--mean R G B``, ``--std R G B`` (in [0, 1] units, RGB order, as in timm), ``--labels FILE``,
``--config FILE`` / ``--no-config``. They map onto :class:`fixres_edge.runtime.Classifier`
arguments, so the precedence is the library's: argument, policy, card, config, defaults.

``--size`` is the size to run at for the commands that run one size (classify, eval, bench), and
the model's training size for those that describe or search around it (calibrate, inspect).

A model description that cannot be used (a bad config or labels file, a missing file) is a usage
error: one line on stderr and exit code 2. What the library had to assume is one warning line on
stderr.
"""
from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

# As fixres_edge.tables.INTERPOLATIONS (not imported: it pulls numpy into `--help`).
INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "area")
USAGE_ERROR = 2


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _crop_pct(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1], got {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def add_model_options(parser: argparse.ArgumentParser, *, size_as: str = "size", size_group=None) -> None:
    """Add the model description options to a subcommand's parser.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    size_as : {"size", "train_size"}
        What ``--size`` sets: the one size to run at, or the model's training size.
    size_group : argparse group, optional
        Where ``--size`` goes (e.g. a mutually exclusive group with ``--policy``).
    """
    if size_as not in ("size", "train_size"):
        raise ValueError(f"size_as must be 'size' or 'train_size', got {size_as!r}")
    group = parser.add_argument_group(
        "model description",
        "how the model was trained to see images; each option wins over the model card, which wins over "
        "a config file (default: config.json or preprocessor_config.json beside a model without a card)")
    size_help = ("input size to run at (default: the policy, or the model's training size)" if size_as == "size"
                 else "the model's training size: the reference cost and the center of the FixRes scale set "
                      "(default: from the card or config, else 224)")
    (size_group or group).add_argument("--size", "--res", dest="size", type=_positive_int, metavar="N", default=None,
                                       help=size_help)
    group.add_argument("--crop-pct", type=_crop_pct, metavar="P", default=None,
                       help="evaluation crop: resize the short side to int(size / P), center-crop size (timm's crop_pct)")
    group.add_argument("--interpolation", choices=INTERPOLATIONS, default=None, help="resize filter")
    group.add_argument("--antialias", action=argparse.BooleanOptionalAction, default=None,
                       help="widen the filter when downscaling, as Pillow and torchvision do")
    group.add_argument("--mean", type=_finite, nargs=3, metavar=("R", "G", "B"), default=None,
                       help="normalization mean in [0, 1] units, RGB order (timm's mean)")
    group.add_argument("--std", type=_finite, nargs=3, metavar=("R", "G", "B"), default=None,
                       help="normalization std in [0, 1] units, RGB order (timm's std)")
    group.add_argument("--labels", metavar="FILE", default=None, help="class names, one per line, in output order")
    config = group.add_mutually_exclusive_group()
    config.add_argument("--config", metavar="FILE", default=None,
                        help="timm config.json or Hugging Face preprocessor_config.json describing the model")
    config.add_argument("--no-config", action="store_true",
                        help="do not read the config files beside the model")
    parser.set_defaults(_size_as=size_as)


def classifier_options(args: argparse.Namespace) -> dict:
    """The ``Classifier`` keyword arguments the options give (only those stated)."""
    get = lambda name: getattr(args, name, None)  # noqa: E731 (namespaces built without the options)
    options = {
        get("_size_as") or "size": get("size"),
        "crop_pct": get("crop_pct"),
        "interpolation": get("interpolation"),
        "antialias": get("antialias"),
        "mean": tuple(get("mean")) if get("mean") is not None else None,
        "std": tuple(get("std")) if get("std") is not None else None,
        "labels": get("labels"),
        "config": False if get("no_config") else get("config"),
    }
    return {k: v for k, v in options.items() if v is not None}


def usage_error(args: argparse.Namespace, message: str) -> SystemExit:
    """Print ``fixres-edge CMD: error: message`` and return the SystemExit(2) to raise."""
    print(f"fixres-edge {getattr(args, 'command', None) or 'fixres-edge'}: error: {message}", file=sys.stderr)
    return SystemExit(USAGE_ERROR)


def check_files(args: argparse.Namespace) -> None:
    """``--config`` and ``--labels`` must name files (a usage error otherwise)."""
    for flag, value in (("--config", getattr(args, "config", None)), ("--labels", getattr(args, "labels", None))):
        if value is not None and not Path(value).is_file():
            what = "a directory, not a file" if Path(value).is_dir() else "not found"
            raise usage_error(args, f"{flag} {value}: {what}")


def report_warnings(args: argparse.Namespace, caught) -> None:
    """Print the library's :class:`PreprocessingWarning` s as one line each on stderr; re-issue others."""
    from fixres_edge.settings import PreprocessingWarning

    for w in caught:
        if issubclass(w.category, PreprocessingWarning):
            print(f"fixres-edge {args.command}: warning: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def build_classifier(args: argparse.Namespace, **kwargs):
    """A :class:`~fixres_edge.runtime.Classifier` from ``--model`` and the description options.

    ``kwargs`` are further Classifier arguments (``threads``, ``policy``, ...; ``model`` overrides
    ``--model``). A :class:`~fixres_edge.model.ConfigError` exits with code 2.
    """
    from fixres_edge.model import ConfigError
    from fixres_edge.runtime import Classifier

    check_files(args)
    options = {"model": getattr(args, "model", None), **classifier_options(args), **kwargs}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            classifier = Classifier(**options)
        except ConfigError as error:
            raise usage_error(args, str(error)) from None
    report_warnings(args, caught)
    return classifier
