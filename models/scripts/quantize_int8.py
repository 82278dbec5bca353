"""Quantize the bundled EfficientNet-Lite0 to int8 and check it against the float32 model.

A thin wrapper around the product's own quantiser (``fixres_edge.quantize``, the code behind
``fixres-edge quantize``) with this repository's defaults: the bundled float32 model in, the
bundled int8 file out, calibrated at 224 on every 5th photo of the labeled ImageNet sample in
``../shared/data`` (relative to the repo root), compared on the other photos::

    python models/scripts/quantize_int8.py                 # writes models/efficientnet_lite0_int8.onnx
    python models/scripts/quantize_int8.py --method percentile --out /tmp/try.onnx

The model is written only when int8 top-1 is at most ``--max-drop`` points below float32 (unless
``--force``). Needs ``onnx`` (the ``quantize`` extra).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# The model files sit one folder up: the scripts live apart in models/scripts/ so that they are
# not installed with the package data.
MODELS = Path(__file__).resolve().parents[1]
REPO_ROOT = MODELS.parent
DEFAULT_MODEL = MODELS / "efficientnet_lite0.onnx"
DEFAULT_OUT = MODELS / "efficientnet_lite0_int8.onnx"
# ../shared relative to the repo root: photos are never part of the repository.
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"
METHODS = ("minmax", "entropy", "percentile")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="float32 ONNX model with a card")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="int8 ONNX model to write")
    parser.add_argument("--photos", type=Path, default=DEFAULT_DATA / "imagenet-sample-dev",
                        help="labeled photos (names start with the WordNet id); default ../shared/data/...")
    parser.add_argument("--classes", type=Path, default=DEFAULT_DATA / "imagenet-classes.tsv",
                        help="index/wnid/name table for the labels")
    parser.add_argument("--sizes", type=int, nargs="+", default=[224],
                        help="calibration and comparison sizes (calibrating at all four card sizes was not "
                             "better for this model)")
    parser.add_argument("--calib-every", type=int, default=5, help="calibrate on every N-th sorted photo")
    parser.add_argument("--method", choices=METHODS, default="minmax", help="calibration method")
    # The shipped file predates these two defaults of `fixres-edge quantize`: here they are opt-in,
    # so that the script's defaults rebuild the shipped file.
    parser.add_argument("--exclude-first-last", action="store_true",
                        help="keep the stem conv and the classifier in float32 (fixres-edge quantize's default)")
    parser.add_argument("--bias-correction", action="store_true",
                        help="correct the biases for the weights' rounding (fixres-edge quantize's default)")
    parser.add_argument("--max-drop", type=float, default=1.0, help="max top-1 drop (points) to keep the model")
    parser.add_argument("--force", action="store_true", help="write the model even if it fails --max-drop")
    parser.add_argument("--reps", type=int, default=200, help="interleaved latency rounds")
    args = parser.parse_args(argv)
    for path, flag in ((args.model, "--model"), (args.classes, "--classes")):
        if not path.is_file():
            parser.error(f"not found: {path} (pass {flag})")
    if not args.photos.is_dir():
        parser.error(f"photo folder not found: {args.photos} (pass --photos)")

    from fixres_edge.commands.quantize import report_text
    from fixres_edge.evaluate import LabeledFolder
    from fixres_edge.quantize import quantize_model

    folder = LabeledFolder(args.photos, classes=args.classes)
    report = quantize_model(args.model, args.out, folder.items, sizes=args.sizes, calib_every=args.calib_every,
                            method=args.method, exclude_first_last=args.exclude_first_last,
                            bias_correction=args.bias_correction, threads=1,
                            latency_repeats=args.reps, max_drop=None if args.force else args.max_drop)
    print(report_text(report))
    return 0 if report.written and not report.errors else 1


if __name__ == "__main__":
    sys.exit(main())
