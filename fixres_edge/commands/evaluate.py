"""``fixres-edge eval``: top-1 / top-5 accuracy of a classifier (and its scale policy) on a labeled folder."""
from __future__ import annotations

import argparse
import json
import sys

from fixres_edge.commands._model_options import add_model_options, build_classifier

NAME = "eval"
HELP = "accuracy (top-1, top-5 with 95-percent intervals) and timings on a folder of labeled images"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", metavar="DIR",
                        help="labeled images: files named <wnid>_*.JPEG, or DIR/<wnid>/... folders")
    scale = parser.add_mutually_exclusive_group()
    add_model_options(parser, size_group=scale)
    scale.add_argument("--policy", metavar="FILE", default=None,
                       help="scale policy JSON (single, cascade, or ensemble) from 'calibrate'")
    parser.add_argument("--model", metavar="M", default=None,
                        help="ONNX model file, or 'int8' for the bundled int8 model (default: bundled fp32)")
    parser.add_argument("--classes", metavar="FILE", default=None,
                        help="class table: TSV with a 'wnid' column (and 'index'), or one wnid per line "
                             "(default: imagenet-classes.tsv or classes.tsv in DIR or its parent, else the "
                             "class names in the file names)")
    parser.add_argument("--limit", type=int, metavar="N", default=None,
                        help="evaluate N images, evenly spaced over the sorted list")
    parser.add_argument("--threads", type=int, metavar="T", default=None,
                        help="threads for inference and preprocessing (default: all cores)")
    parser.add_argument("--crop", choices=("center", "smart"), default=None,
                        help="crop window: center (default) or smart (shifted toward the most edges)")
    parser.add_argument("--full-decode", action="store_true",
                        help="decode JPEGs at full size (default: DCT-reduced as far as the size allows)")
    parser.add_argument("--save-predictions", metavar="FILE", default=None,
                        help="write one JSON line per image (name, label, top-5, answered scale, ms)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def describe_policy(policy) -> str:
    scales = " > ".join(map(str, policy.scales)) if policy.mode == "cascade" else " + ".join(
        map(str, policy.scales))
    text = f"{policy.mode} {scales}"
    if policy.mode == "cascade":
        text += f" (threshold {policy.threshold:g} on the {'top-2 margin' if policy.confidence == 'margin' else 'top probability'}, combine {policy.combine})"
    return text


def run(args: argparse.Namespace) -> int:
    from fixres_edge.evaluate import LabeledFolder, evaluate, format_percent, progress_bar
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    classifier = build_classifier(args, policy=args.policy, threads=args.threads, crop=args.crop,
                                  reduced_decode=not args.full_decode)
    folder = LabeledFolder(args.directory, classes=args.classes, labels=classifier.labels,
                           num_classes=len(classifier.labels) or None, limit=args.limit)
    # Kernel compilation and ORT's first-run setup would otherwise be billed to the first image.
    classifier.warmup()
    bar = progress_bar(len(folder), "eval")
    out_file = open(args.save_predictions, "w", encoding="utf-8") if args.save_predictions else None

    def record(item, outcome) -> None:
        if out_file is None:
            return
        if isinstance(outcome, BaseException):
            row = {"name": item.name, "label": item.label, "error": str(outcome).splitlines()[0]}
        else:
            row = {"name": item.name, "label": item.label, "top5": [t.index for t in outcome.top[:5]],
                   "probs": [round(t.prob, 6) for t in outcome.top[:5]],
                   "scales": [str(s) for s in outcome.scales],
                   "ms": {k: round(v, 3) for k, v in outcome.timings_ms.items()}}
        out_file.write(json.dumps(row) + "\n")

    try:
        result = evaluate(classifier, folder, progress=bar.update, on_result=record)
    finally:
        bar.close()
        if out_file is not None:
            out_file.close()
    summary = result.summary()
    policy = classifier.policy
    summary.update(model=classifier.model.name, policy=policy.to_dict(), threads=args.threads,
                   crop=classifier.settings.crop, labels_source=folder.labels_source,
                   images_found=folder.total, unlabeled=len(folder.skipped))
    if args.json:
        print(json.dumps(summary))
    else:
        n = summary["n"]
        print(f"model    {classifier.model.name}  ({describe_policy(policy)}, crop {classifier.settings.crop}, "
              f"threads {args.threads or 'default'})")
        print(f"images   {n}" + (f" of {folder.total}" if n != folder.total else "")
              + f"  (labels: {folder.labels_source})")
        print(f"top-1    {format_percent(summary['top1'], summary['top1_ci95'])}  (95 % Wilson interval)")
        print(f"top-5    {format_percent(summary['top5'], summary['top5_ci95'])}")
        if n:
            print(f"mean ms  infer {summary['infer_ms_mean']:.2f}  preprocess {summary['preprocess_ms_mean']:.2f}  "
                  f"decode {summary['decode_ms_mean']:.2f}  total {summary['total_ms_mean']:.2f}")
            answered = ", ".join(f"{scale} {count} ({100 * count / n:.1f} %)"
                                 for scale, count in summary["answered"].items())
            print(f"answered {answered}")
    from fixres_edge.errors import with_name

    for name, message in result.errors:
        print(f"fixres-edge eval: error: {with_name(name, message)}", file=sys.stderr)
    if folder.skipped:
        print(f"fixres-edge eval: note: {len(folder.skipped)} image file(s) without a WordNet id were skipped "
              f"(e.g. {folder.skipped[0]})", file=sys.stderr)
    return 1 if result.errors else 0
