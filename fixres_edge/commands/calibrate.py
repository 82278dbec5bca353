"""``fixres-edge calibrate``: choose a FixRes scale policy (single size, cascade, or ensemble) on labeled photos."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from fixres_edge.commands._model_options import add_model_options, build_classifier

NAME = "calibrate"
HELP = ("run every scale over labeled photos, measure each scale's latency, and pick the most accurate "
        "policy (single, cascade, ensemble) within a time budget; prints the Pareto table")


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", metavar="DIR", nargs="?", default=None,
                        help="labeled images: files named <wnid>_*.JPEG, or DIR/<wnid>/... folders "
                             "(optional with --from-scores)")
    parser.add_argument("--sizes", type=int, nargs="+", metavar="N", default=None,
                        help="input sizes to try (default: the model's FixRes scale set; a static-size model "
                             "has only its own size)")
    parser.add_argument("--crop-pcts", type=float, nargs="+", metavar="P", default=None,
                        help="crop fractions to try at each size (default: the card's crop_pct; a static-size "
                             "model: 1.0 0.875 0.75)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--budget-ms", type=_positive_float, metavar="X", default=None,
                        help="most a policy may cost per image on average, in ms on this device "
                             "(default: the cost of the training size)")
    budget.add_argument("--budget-rel", type=_positive_float, metavar="R", default=None,
                        help="budget as a multiple of the training size's cost (e.g. 1.1)")
    parser.add_argument("--out", metavar="FILE", default=None, help="write the chosen policy (JSON)")
    parser.add_argument("--plot", metavar="PNG", default=None,
                        help="draw the accuracy/cost plot (needs matplotlib: the 'plot' extra)")
    models = parser.add_mutually_exclusive_group()
    models.add_argument("--model", metavar="M", default=None,
                        help="ONNX model file, or 'int8' for the bundled int8 model (default: bundled fp32)")
    models.add_argument("--models", metavar="M", nargs="+", default=None,
                        help="search precision and size together: model variants of one network, e.g. "
                             "'fp32 int8' (the bundled model) or ONNX files (the first is the reference; "
                             "the policy names each scale's variant, files relative to --out)")
    parser.add_argument("--classes", metavar="FILE", default=None,
                        help="class table (TSV with a 'wnid' column), as for 'eval'")
    parser.add_argument("--threads", type=int, metavar="T", default=1,
                        help="threads for inference and preprocessing (default 1: latency is measured with it)")
    parser.add_argument("--limit", type=int, metavar="N", default=None,
                        help="use N images, evenly spaced over the sorted list")
    parser.add_argument("--crop", choices=("center", "smart"), default=None,
                        help="crop window: center (default) or smart")
    parser.add_argument("--confidence", nargs="+", choices=("max", "margin"), default=None,
                        help="cascade confidence: top probability (max) and/or top-1 minus top-2 (margin) "
                             "(default: what the policy format supports)")
    parser.add_argument("--repeats", type=int, metavar="K", default=40,
                        help="timed rounds (every scale once, interleaved) for the latency medians (default 40)")
    parser.add_argument("--cv-repeats", type=int, metavar="K", default=5,
                        help="random halvings for the 2-fold cross-validation (default 5)")
    parser.add_argument("--save-scores", metavar="NPZ", default=None,
                        help="save every image's probabilities at every scale (search again with --from-scores)")
    parser.add_argument("--from-scores", metavar="NPZ", default=None,
                        help="search saved scores instead of running the photos (latency is measured again)")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip measuring the peak RSS of the chosen policy and of the training size "
                             "(a fresh process each, every variant's session open)")
    parser.add_argument("--all", action="store_true", help="print every candidate, not just the Pareto front")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_model_options(parser, size_as="train_size")


def run(args: argparse.Namespace) -> int:
    from fixres_edge.calibrate import Scores, calibrate, calibration_scales, plot_pareto, report_text, variant_scales
    from fixres_edge.errors import with_name
    from fixres_edge.evaluate import LabeledFolder, progress_bar

    for flag, value in (("--threads", args.threads), ("--limit", args.limit), ("--repeats", args.repeats),
                        ("--cv-repeats", args.cv_repeats)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    if args.directory is None and args.from_scores is None:
        raise ValueError("give a DIR of labeled images (or --from-scores NPZ)")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise RuntimeError("--plot needs matplotlib: pip install 'fixres-edge[plot]'") from None
    if args.models:
        classifier = build_classifier(args, model=args.models[0], threads=args.threads, crop=args.crop)
        scales = variant_scales(calibration_scales(classifier, args.sizes, args.crop_pcts), args.models)
    else:
        model = args.model or "fp32"  # not the default policy's model: the one named (or fp32)
        classifier = build_classifier(args, model=model, threads=args.threads, crop=args.crop)
        scales = calibration_scales(classifier, args.sizes, args.crop_pcts)
    classifier.warmup(scales)
    scores = reader = None
    dataset = None
    if args.from_scores:
        scores = Scores.load(args.from_scores)
        if scores.model and scores.model != classifier.model.name:
            raise ValueError(f"{args.from_scores} holds scores of model {scores.model}, not {classifier.model.name}")
        if args.sizes is None and args.crop_pcts is None and args.models is None:
            scales = scores.scales
    else:
        reader = LabeledFolder(args.directory, classes=args.classes, labels=classifier.labels,
                               num_classes=len(classifier.labels) or None, limit=args.limit)
        dataset = f"{Path(args.directory).name} ({len(reader)} images)"
    bar = progress_bar(len(reader) if reader is not None else None, "calibrate")
    start = time.perf_counter()
    try:
        result = calibrate(classifier, reader, scales, budget_ms=args.budget_ms, budget_rel=args.budget_rel,
                           latency_repeats=args.repeats, cv_repeats=args.cv_repeats, scores=scores,
                           progress=bar.update, dataset=dataset, confidences=args.confidence)
    finally:
        bar.close()
    memory = {}
    if not args.no_memory:
        from fixres_edge.calibrate.memory import policy_peak_rss
        from fixres_edge.policy import ScalePolicy

        ref = result.search.train_scale
        for name, policy in ((str(ref), ScalePolicy.single(ref.size, ref.crop_pct, variant=ref.variant)),
                             ("chosen", result.policy)):
            memory[name] = policy_peak_rss(policy, classifier.path, threads=args.threads)
    total_s = time.perf_counter() - start
    if args.save_scores:
        result.scores.save(args.save_scores)
    if args.out:
        result.policy.save(args.out)
    if args.plot:
        plot_pareto(result.search, args.plot, title=f"{classifier.model.name}: FixRes scale policies "
                                                    f"(n={result.scores.n}, {classifier.threads or 'default'} "
                                                    f"thread(s))")
    if args.json:
        data = result.to_dict()
        data["seconds"]["total"] = total_s
        data["policy_file"] = args.out
        data["peak_rss_mb"] = memory
        print(json.dumps(data))
    else:
        print(report_text(result, show_all=args.all, total_s=total_s, policy_path=args.out))
        if memory:
            chosen, ref = memory.get("chosen"), memory.get(str(result.search.train_scale))
            print(f"memory   peak RSS of a process running every scale once (every variant open): chosen "
                  f"{chosen:.0f} MB, single {result.search.train_scale} {ref:.0f} MB" if chosen and ref else
                  "memory   peak RSS not reported on this OS")
    for name, message in result.errors:
        print(f"fixres-edge calibrate: error: {with_name(name, message)}", file=sys.stderr)
    return 1 if result.errors else 0
