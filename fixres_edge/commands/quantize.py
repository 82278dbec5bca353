"""``fixres-edge quantize``: an int8 copy of a float32 classifier, calibrated through its own preprocessing."""
from __future__ import annotations

import argparse
import json
import sys

from fixres_edge.commands._model_options import add_model_options, build_classifier, classifier_options

NAME = "quantize"
HELP = ("int8 copy of a float32 ONNX classifier (ONNX Runtime static quantisation, QDQ, per-channel), "
        "calibrated on labeled photos through the model's own preprocessing; compares top-1 and latency")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="float32 ONNX classifier (never modified)")
    parser.add_argument("directory", metavar="DIR",
                        help="labeled images (files named <wnid>_*.JPEG, or DIR/<wnid>/... folders): every "
                             "--calib-every-th calibrates, the rest measure top-1")
    parser.add_argument("--out", metavar="FILE", required=True, help="the int8 model to write (.onnx)")
    parser.add_argument("--classes", metavar="FILE", default=None,
                        help="class table (TSV with a 'wnid' column), as for 'eval'")
    parser.add_argument("--sizes", type=int, nargs="+", metavar="N", default=None,
                        help="sizes to calibrate and compare at (default: the model's FixRes scale set)")
    parser.add_argument("--calib-every", type=int, metavar="K", default=5,
                        help="every K-th photo of the sorted folder calibrates (default 5)")
    parser.add_argument("--limit", type=int, metavar="N", default=None,
                        help="use N images, evenly spaced over the sorted list")
    parser.add_argument("--method", choices=("minmax", "entropy", "percentile"), default="minmax",
                        help="calibration method (default minmax)")
    parser.add_argument("--exclude-first-last", action=argparse.BooleanOptionalAction, default=True,
                        help="keep the stem convolution and the classifier in float32 (default; "
                             "--no-exclude-first-last quantises them too)")
    parser.add_argument("--no-bias-correction", dest="bias_correction", action="store_false",
                        help="keep ONNX Runtime's biases as they are (default: correct each layer's bias for "
                             "the mean shift its int8 weights cause, measured on the calibration photos)")
    parser.add_argument("--max-drop", type=float, metavar="P", default=None,
                        help="do not write the model if int8 top-1 falls more than P points below float32 at "
                             "any size")
    parser.add_argument("--threads", type=int, metavar="T", default=1,
                        help="inference threads for the comparison and its latency (default 1)")
    parser.add_argument("--repeats", type=int, metavar="K", default=30,
                        help="interleaved timing rounds per model and size (default 30; 0: no latency)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_model_options(parser, size_as="train_size")


def report_text(report) -> str:
    """The human report: the split, one row per size (held-out top-1 of both, paired changes,
    latency and its ratio), and where the model went."""
    lines = [f"model    {report.model} -> {report.out}",
             f"photos   {report.calibration} calibrate ({report.method}, at "
             f"{', '.join(map(str, report.calibration_scales or report.scales))}), {report.held_out} held out"
             + (f"; kept in float32: {', '.join(report.excluded)}" if report.excluded else ""),
             f"bias     {_bias_text(report.bias_correction)}",
             f"device   {report.device}", "",
             f"{'scale':<10} {'fp32 top-1':>10} {'int8 top-1':>10} {'diff':>6} {'changed':>8} {'KL':>7} "
             f"{'fp32 ms':>8} {'int8 ms':>8} {'ratio':>6}"]
    one_crop = len({r.scale.crop_pct for r in report.sizes}) == 1
    for r in report.sizes:
        name = str(r.scale.size) if one_crop else f"{r.scale.size}@{r.scale.crop_pct:g}"
        ms = (f"{r.ms_fp32:>8.2f} {r.ms_int8:>8.2f} {r.ratio:>5.2f}x" if r.ratio is not None
              else f"{'-':>8} {'-':>8} {'-':>6}")
        lines.append(f"{name:<10} {100 * r.top1_fp32:>9.1f}% {100 * r.top1_int8:>9.1f}% "
                     f"{100 * (r.top1_int8 - r.top1_fp32):>+6.1f} {r.changed:>8} {r.kl:>7.4f} {ms}")
    lines.append("")
    lines.append("KL: mean divergence of int8's class probabilities from fp32's (nats; lower is closer)")
    lines.append("changed: photos whose top-1 class differs (int8 right where fp32 wrong / the reverse: "
                 + ", ".join(f"{r.scale}: {r.int8_only_right}/{r.fp32_only_right}" for r in report.sizes)
                 + ")")
    if report.written:
        lines.append(f"wrote    {report.out}")
    else:
        lines.append("not written: int8 top-1 fell by more than --max-drop at some size")
    return "\n".join(lines)


def _bias_text(correction) -> str:
    if correction is None:
        return "not corrected (--no-bias-correction)"
    text = (f"corrected in {correction.corrected} layers, measured on the calibration photos "
            f"({correction.inputs} inputs: photos x sizes)")
    if correction.skipped:
        text += f"; {len(correction.skipped)} layers without a per-channel bias left as they are"
    return text


def run(args: argparse.Namespace) -> int:
    from fixres_edge.errors import with_name
    from fixres_edge.evaluate import LabeledFolder, progress_bar
    from fixres_edge.quantize import quantize_model, require_onnx, split_calibration

    for flag, value, low in (("--calib-every", args.calib_every, 2), ("--threads", args.threads, 1),
                             ("--limit", args.limit, 1), ("--repeats", args.repeats, 0)):
        if value is not None and value < low:
            raise ValueError(f"{flag} must be >= {low}, got {value}")
    require_onnx()  # before any work: the missing extra is the first thing to say
    preprocessing = classifier_options(args)
    # A one-line error for a non-classifier or a bad description, before any work.
    probe = build_classifier(args, threads=args.threads)
    folder = LabeledFolder(args.directory, classes=args.classes, labels=probe.labels,
                           num_classes=len(probe.labels) or None, limit=args.limit)
    del probe
    # Calibration photos are read twice with bias correction: for the ranges, then for the shifts.
    calibrating = split_calibration(len(folder), args.calib_every)[0].size if args.bias_correction else 0
    bar = progress_bar(len(folder) + calibrating, "quantize")
    try:
        report = quantize_model(args.model, args.out, folder.items, sizes=args.sizes, calib_every=args.calib_every,
                                method=args.method, exclude_first_last=args.exclude_first_last,
                                bias_correction=args.bias_correction,
                                threads=args.threads, latency_repeats=args.repeats, max_drop=args.max_drop,
                                progress=bar.update, **preprocessing)
    finally:
        bar.close()
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(report_text(report))
    for name, message in report.errors:
        print(f"fixres-edge quantize: error: {with_name(name, message)}", file=sys.stderr)
    return 1 if report.errors or not report.written else 0
