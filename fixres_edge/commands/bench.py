"""``fixres-edge bench``: where each millisecond and megabyte goes on this board, against the usual pipelines.

For every frame (generated camera-like JPEGs, or the images given), size, thread setting and
model, one interleaved group times:

* the fixres_edge pipeline, ``Classifier.predict(jpeg_bytes)``: stages ``decode`` (DCT-reduced),
  ``preprocess``, ``infer`` as the Classifier reports them, and ``total`` (the wall time of the call);
* in the first model's group only, on the full-size decode, the preprocessing alone: fixres_edge,
  the best OpenCV pipeline, ``cv2.dnn.blobFromImageWithParams``, and Pillow torchvision-style
  (when installed, one thread setting only: Pillow has no threads), plus the full ``cv2.imdecode``
  those pipelines start from.

Then peak RSS (this process, and a fresh ``classify`` process per frame), start-up times
(cold and warm JIT cache), the deployed footprint (which kernel path is active; wall time and peak
RSS of a fresh ``fixres-edge classify PHOTO --threads 1`` next to a hand-written ONNX Runtime +
OpenCV script, see :mod:`fixres_edge.footprint`) and the environment. ``--json`` prints one
object; ``--out`` saves it.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from fixres_edge.benchmark import format_ms
from fixres_edge.commands._model_options import add_model_options, build_classifier
from fixres_edge.policy import variant_text

NAME = "bench"
HELP = "latency, memory and start-up report for this board (fixres_edge vs OpenCV / Pillow pipelines)"

QUICK_REPEAT, QUICK_WARMUP = 15, 2
FULL_REPEAT, FULL_WARMUP = 40, 3
SKIPPABLE = ("baselines", "rss", "cold-start", "deployed")
# Alternating classify / baseline processes of the deployed footprint: (measured, discarded) each.
QUICK_PROCESS_RUNS, FULL_PROCESS_RUNS = (3, 1), (7, 2)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="*", metavar="IMAGES",
                        help="image files to time (default: generated 500x375, 1920x1080 and 4056x3040 JPEGs)")
    parser.add_argument("--model", action="append", metavar="M", default=None,
                        help="ONNX model, 'fp32' or 'int8' (repeatable; default: the bundled fp32 and int8 models)")
    parser.add_argument("--sizes", type=int, nargs="+", metavar="S", default=None,
                        help="input sizes (default: 224)")
    parser.add_argument("--threads", type=int, nargs="+", metavar="T", default=None,
                        help="thread counts to measure (default: 1 and all cores)")
    parser.add_argument("--repeat", type=int, metavar="N", default=None,
                        help=f"timed rounds per group (default {FULL_REPEAT}; {QUICK_REPEAT} with --quick)")
    parser.add_argument("--warmup", type=int, metavar="W", default=None,
                        help=f"discarded rounds first (default {FULL_WARMUP}; {QUICK_WARMUP} with --quick)")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and start-up runs (about half a minute)")
    parser.add_argument("--skip", nargs="+", choices=SKIPPABLE, default=[], metavar="PART",
                        help=f"leave out parts: {', '.join(SKIPPABLE)}")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--out", metavar="FILE", default=None,
                        help="also write the JSON report to FILE (a directory: a per-machine file name in it)")
    add_model_options(parser)


def run(args: argparse.Namespace) -> int:
    report = collect(args)
    if args.out:
        from fixres_edge.benchmark import result_filename, save_json

        target = Path(args.out)
        if target.is_dir() or args.out.endswith(("/", os.sep)):
            target = target / result_filename()
        save_json(report, target)
        report["saved_to"] = str(target)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(format_report(report))
        if args.out:
            print(f"saved: {report['saved_to']}")
    return 0


# ---------------------------------------------------------------------------------------- frames
def _frames(paths: list[str]) -> list[dict]:
    """``[{label, source, data (encoded bytes), shape}]`` from files or generated JPEGs."""
    from fixres_edge.benchmark import DEFAULT_FRAMES, encode_jpeg, synthetic_frame
    from fixres_edge.decode import image_size

    frames = []
    if paths:
        for path in paths:
            data = Path(path).read_bytes()
            h, w = image_size(data)
            frames.append({"label": f"{Path(path).name} {w}x{h}", "source": os.path.basename(path),
                           "data": data, "shape": (h, w)})
        return frames
    for i, (h, w) in enumerate(DEFAULT_FRAMES):
        data = encode_jpeg(synthetic_frame(h, w, seed=i), quality=90)
        frames.append({"label": f"{w}x{h}", "source": "generated JPEG q90", "data": data, "shape": (h, w)})
    return frames


def _model_label(spec: str | None) -> str:
    return "fp32" if spec is None else variant_text(spec)


def _settings(args) -> dict:
    from fixres_edge.benchmark import thread_settings

    quick = bool(args.quick)
    repeat = args.repeat if args.repeat is not None else (QUICK_REPEAT if quick else FULL_REPEAT)
    warmup = args.warmup if args.warmup is not None else (QUICK_WARMUP if quick else FULL_WARMUP)
    if repeat < 1:
        raise ValueError(f"--repeat must be >= 1, got {repeat}")
    if warmup < 0:
        raise ValueError(f"--warmup must be >= 0, got {warmup}")
    sizes = list(dict.fromkeys(args.sizes or [getattr(args, "size", None) or 224]))
    if any(s < 1 for s in sizes):
        raise ValueError(f"--sizes must be positive, got {sizes}")
    models = list(dict.fromkeys(args.model or ["fp32", "int8"]))
    return {"quick": quick, "repeat": repeat, "warmup": warmup, "sizes": sizes, "models": models,
            "threads": thread_settings(args.threads), "skip": sorted(set(args.skip))}


# ---------------------------------------------------------------------------------------- measuring
def collect(args: argparse.Namespace) -> dict:
    """Run the whole benchmark and return the report (a JSON-ready dict)."""
    import cv2

    from fixres_edge import benchmark as bm
    started = time.perf_counter()
    settings = _settings(args)
    frames = _frames(list(args.images))
    env = bm.environment(settings["threads"])
    overhead_ns = bm.harness_overhead_ns()

    classifiers = {}
    for t in settings["threads"]:
        for spec in settings["models"]:
            clf = build_classifier(args, model=spec, threads=t)  # "fp32" names the bundled model (None: the default policy)
            for size in settings["sizes"]:
                clf.scale(size)  # refuse sizes the model cannot take, before any timing
            classifiers[(spec, t)] = clf
    first_clf = classifiers[(settings["models"][0], settings["threads"][0])]
    models = {spec: {"label": _model_label(spec), "file": classifiers[(spec, settings["threads"][0])].path.name}
              for spec in settings["models"]}

    pipeline_rows, baseline_rows = [], []
    pillow_threads = 1 if 1 in settings["threads"] else settings["threads"][0]
    with_baselines = "baselines" not in settings["skip"]
    for frame in frames:
        encoded = np.frombuffer(frame["data"], np.uint8)
        full = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
        pil = bm.to_pil(full) if (with_baselines and bm.pillow_available()) else None
        for size in settings["sizes"]:
            for t in settings["threads"]:
                rows = _measure_group(bm, frame, encoded, full, pil if t == pillow_threads else None, size, t,
                                      settings, classifiers, models, with_baselines)
                pipeline_rows.extend(rows[0])
                if rows[1] is not None:
                    baseline_rows.append(rows[1])
        del full, pil

    report = {
        "schema": bm.SCHEMA,
        "kind": "bench",
        "machine": bm.machine_slug(env["cpu"]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "environment": env,
        "settings": {**settings, "frames": [{"label": f["label"], "source": f["source"], "bytes": len(f["data"]),
                                             "shape": list(f["shape"])} for f in frames],
                     "models": models,
                     "card": {"crop_pct": first_clf.policy.scales[0].crop_pct,
                              "interpolation": first_clf.settings.interpolation,
                              "antialias": first_clf.settings.antialias}},
        "pipeline": pipeline_rows,
        "baselines": baseline_rows,
    }
    # The preprocess p50s timed through the harness; without baselines, the pipeline's stage.
    pre_p50 = [row["methods"]["fixres_edge"]["p50_ms"] for row in baseline_rows] or [
        row["stages"]["preprocess"]["p50_ms"] for row in pipeline_rows]
    report["overhead"] = {
        "empty_call_p50_ns": round(overhead_ns, 1),
        "fraction_of_fastest_preprocess_p50": round(overhead_ns / (min(pre_p50) * 1e6), 6) if pre_p50 else None,
    }
    report["peak_rss_mb"] = round(bm.peak_rss_mb(), 1)
    if "rss" not in settings["skip"]:
        report["classify_peak_rss_mb"] = _classify_rss(frames, settings)
    if "cold-start" not in settings["skip"]:
        report["cold_start"] = bm.cold_start(warm_runs=1 if settings["quick"] else 3, cold_runs=1)
    if "deployed" not in settings["skip"]:
        report["deployed"] = _deployed(list(args.images), frames[0], settings)
    report["environment"]["numba_threading_layer"] = bm.threading_layer()
    report["environment"]["load_average_end"] = env_load()
    report["environment"]["throttled"] = bm.throttled()
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    return report


def env_load():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _measure_group(bm, frame, encoded, full, pil, size, threads, settings, classifiers, models, with_baselines):
    """The groups of one (frame, size, threads): per model, its pipeline interleaved with the
    baselines (measured once, in the first model's group).

    Models get separate groups because two ONNX Runtime sessions interleaved call for call would
    each find the other's thread pool still spinning on the cores, which no single-model
    application sees.
    """
    from fixres_edge.decode import load_image

    clf0 = classifiers[(settings["models"][0], threads)]
    pre = clf0.preprocessor(size)
    _, info = load_image(frame["data"], min_short_side=pre.min_short_side, return_info=True)
    reduced = load_image(frame["data"], min_short_side=pre.min_short_side)
    rows, baseline_times, baseline_names = [], None, []
    for index, spec in enumerate(settings["models"]):
        clf = classifiers[(spec, threads)]
        clf.warmup([size])
        kept: list[dict] = []

        def pipeline(clf=clf, kept=kept, data=frame["data"]):
            kept.append(clf.predict(data, topk=5, size=size).timings_ms)

        methods = {"pipeline": pipeline}
        if with_baselines and index == 0:
            methods.update(_baseline_methods(bm, encoded, full, pil, pre, size))
            baseline_names = [name for name in methods if name != "pipeline"]
        with bm.opencv_threads(threads):
            times = bm.interleaved(methods, repeat=settings["repeat"], warmup=settings["warmup"])
        if index == 0 and baseline_names:
            baseline_times = {name: times[name] for name in baseline_names}
        kept = kept[settings["warmup"]:]
        stages = {stage: bm.Stats.from_ns([k[stage] * 1e6 for k in kept]).to_dict()
                  for stage in ("decode", "preprocess", "infer", "postprocess")}
        stages["total"] = bm.Stats.from_ns(times["pipeline"]).to_dict()
        # What preprocessing and post-processing add to inference, per call (decode apart).
        overhead = float(np.median([(k["preprocess"] + k["postprocess"]) / k["infer"] for k in kept])) * 100
        rows.append({"frame": frame["label"], "model": models[spec]["label"], "size": size, "threads": threads,
                     "reduction": info.reduction, "decoded_shape": list(reduced.shape[:2]), "stages": stages,
                     "pre_post_pct_of_infer": round(overhead, 3)})
    baseline = None
    if baseline_times is not None:
        stats = {name: bm.Stats.from_ns(ns).to_dict() for name, ns in baseline_times.items()}
        fixres = stats["fixres_edge"]["p50_ms"]
        ratios = {name: round(fixres / s["p50_ms"], 4)
                  for name, s in stats.items() if name not in ("fixres_edge", "decode_full")}
        # What the same model costs behind the usual pipeline: full decode + OpenCV + the same inference.
        usual = {row["model"]: round(stats["decode_full"]["p50_ms"] + stats["opencv"]["p50_ms"]
                                     + row["stages"]["infer"]["p50_ms"], 4) for row in rows}
        baseline = {"frame": frame["label"], "size": size, "threads": threads, "input_shape": list(full.shape[:2]),
                    "methods": stats, "ratios": ratios, "usual_pipeline_total_p50_ms": usual}
    return rows, baseline


def _baseline_methods(bm, encoded, full, pil, pre, size) -> dict:
    """Preprocessing of the full decode by fixres_edge and each baseline, plus the full decode itself."""
    c = pre.config
    out = np.empty(pre.out_shape(1), c.dtype)
    opencv = bm.OpenCVPipeline(size, c.crop_pct, c.mean, c.std)
    methods = {
        "decode_full": lambda: bm.decode_full(encoded),
        "fixres_edge": lambda: pre(full, out=out),
        "opencv": lambda: opencv(full),
    }
    if bm.blob_available():
        blob = bm.BlobPipeline(size, c.crop_pct, c.mean, c.std)
        methods["blob"] = lambda: blob(full)
    if pil is not None:
        pillow = bm.PillowPipeline(size, c.crop_pct, c.mean, c.std)
        methods["pillow"] = lambda: pillow(pil)
    return methods


def _classify_rss(frames: list[dict], settings: dict) -> dict:
    """Peak RSS (MiB) of a fresh ``fixres-edge classify FILE --threads 1`` per frame and model."""
    from fixres_edge.benchmark import run_module_measuring_rss

    models = settings["models"][:1] if settings["quick"] else settings["models"]
    result: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="fixres_edge-bench-") as tmp:
        for i, frame in enumerate(frames):
            path = Path(tmp) / f"frame{i}.jpg"
            path.write_bytes(frame["data"])
            row = result.setdefault(frame["label"], {})
            for spec in models:
                argv = ["classify", str(path), "--threads", "1", "--json", "--res", str(settings["sizes"][0])]
                if spec != "fp32":
                    argv += ["--model", spec]
                code, peak, _, _, err = run_module_measuring_rss("fixres_edge", argv)
                if code != 0:
                    tail = (err.strip().splitlines() or ["no output"])[-1]
                    raise RuntimeError(f"classify on {frame['label']} failed (exit {code}): {tail}")
                row[_model_label(spec)] = round(peak, 1)
    return result


def _deployed(paths: list[str], frame: dict, settings: dict) -> dict:
    """The deployed footprint (:func:`fixres_edge.footprint.deployed`) on the first image given,
    else the demo photo, else the first generated frame; plus the kernel path of a fresh process."""
    from fixres_edge import footprint

    runs, warmup = QUICK_PROCESS_RUNS if settings["quick"] else FULL_PROCESS_RUNS
    with tempfile.TemporaryDirectory(prefix="fixres_edge-bench-") as tmp:
        if paths:
            photo = Path(paths[0])
        else:
            try:
                from fixres_edge.commands.classify import demo_photo

                photo = demo_photo()
            except (RuntimeError, OSError):
                photo = Path(tmp) / "frame.jpg"
                photo.write_bytes(frame["data"])
        result = footprint.deployed(photo, runs=runs, warmup=warmup, threads=1)
    result["first_frame"] = footprint.first_frame()
    return result


# ---------------------------------------------------------------------------------------- output
_ms = format_ms


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    lines = ["  ".join(str(x).rjust(w) if i else str(x).ljust(w) for i, (x, w) in enumerate(zip(line, widths)))
             for line in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def format_report(report: dict) -> str:
    """The compact human-readable tables of a report."""
    env = report["environment"]
    s = report["settings"]
    out = [
        f"fixres-edge bench: {env['cpu']} ({env['arch']}, {env['cores_available']} cores"
        + (f", {env['board']}" if env.get("board") else "") + f"), {env['os']}",
        f"python {env['python']}, numpy {env['numpy']}, numba {env['numba']}, onnxruntime {env['onnxruntime']}, "
        f"opencv {env['opencv']}, pillow {env['pillow'] or '-'}; governor {env['cpu_governor'] or '-'}; "
        f"load {env['load_average']} -> {env.get('load_average_end')}",
        f"{s['repeat']} timed rounds (+{s['warmup']} warm-up) per group, methods interleaved; times in ms",
        "",
        "pipeline: Classifier.predict(jpeg bytes, topk=5) = reduced decode -> preprocess -> infer -> post "
        "(p50 per stage; pre+post as % of infer, median per call)",
    ]
    rows = []
    for r in report["pipeline"]:
        st = r["stages"]
        rows.append([r["frame"], r["model"], str(r["size"]), str(r["threads"]), f"1/{r['reduction']}",
                     _ms(st["decode"]["p50_ms"]), _ms(st["preprocess"]["p50_ms"]), _ms(st["infer"]["p50_ms"]),
                     _ms(st["postprocess"]["p50_ms"]), f"{r['pre_post_pct_of_infer']:.2f} %",
                     _ms(st["total"]["p50_ms"]), _ms(st["total"]["p90_ms"]), _ms(st["total"]["p99_ms"]),
                     f"{st['total']['throughput_per_s']:.1f}"])
    out += _table(["frame", "model", "size", "thr", "scale", "decode", "pre", "infer", "post", "pre+post",
                   "total", "p90", "p99", "fps"], rows)
    if report["baselines"]:
        out += ["", "preprocess alone on the full decode (same input for all): p50 ms (fixres_edge / baseline)"]
        rows = []
        names = [n for n in ("opencv", "blob", "pillow") if any(n in b["methods"] for b in report["baselines"])]
        for b in report["baselines"]:
            m = b["methods"]
            cells = [b["frame"], str(b["size"]), str(b["threads"]), _ms(m["decode_full"]["p50_ms"]),
                     _ms(m["fixres_edge"]["p50_ms"])]
            for n in names:
                cells.append(f"{_ms(m[n]['p50_ms'])} ({b['ratios'][n]:.2f}x)" if n in m else "-")
            usual = ", ".join(f"{k} {_ms(v)}" for k, v in b["usual_pipeline_total_p50_ms"].items())
            cells.append(usual)
            rows.append(cells)
        out += _table(["frame", "size", "thr", "full decode", "fixres_edge", *names,
                       "usual total (full decode+opencv+infer)"], rows)
    out.append("")
    mem = f"peak RSS of this process: {report['peak_rss_mb']:.0f} MB"
    if "classify_peak_rss_mb" in report:
        per = "; ".join(f"{frame}: " + ", ".join(f"{m} {v:.0f}" for m, v in models.items())
                        for frame, models in report["classify_peak_rss_mb"].items())
        mem += f"; fresh `classify` process peak RSS (MB): {per}"
    out.append(mem)
    if "cold_start" in report:
        cs = report["cold_start"]
        out.append(f"start-up (import + preprocess one frame, fresh process): warm JIT cache "
                   f"{cs['warm']['process_s']:.2f} s (import {cs['warm']['import_s']:.2f}, first call "
                   f"{cs['warm']['first_call_s']:.2f}); empty cache {cs['cold']['process_s']:.2f} s "
                   f"(first call {cs['cold']['first_call_s']:.2f})")
    if "deployed" in report:
        out.append(_deployed_line(report["deployed"]))
    ov = report["overhead"]
    frac = ov["fraction_of_fastest_preprocess_p50"]
    out.append(f"timing overhead: {ov['empty_call_p50_ns']:.0f} ns per call"
               + (f" = {frac * 100:.2f} % of the fastest preprocess p50" if frac is not None else "")
               + f"; bench took {report['elapsed_s']:.0f} s")
    return "\n".join(out)


def _deployed_line(d: dict) -> str:
    ff, p, r = d["first_frame"], d["processes"], d["ratio_fixres_to_baseline"]
    path = ff["kernel_backend"] or ("jit" if ff["numba_imported"] else "unknown")

    def cell(name: str) -> str:
        rss = p[name]["peak_rss_mb"]
        return f"{p[name]['wall_s']['median']:.2f} s, " + (f"{rss['median']:.0f} MB" if rss else "- MB")

    ratio = ", ".join(f"{r[k]:.2f}x {label}" for k, label in (("wall_s", "wall"), ("peak_rss_mb", "RSS")) if r[k])
    return (f"deployed, one photo per process ({d['photo']}, {d['threads']} thread, median of {d['runs']}): "
            f"kernel path {path} (numba {'imported' if ff['numba_imported'] else 'not imported'}); "
            f"`{d['commands']['fixres_edge']}` {cell('fixres_edge')}; hand-written ORT + OpenCV script "
            f"{cell('baseline')}; fixres_edge / script {ratio or '-'}")
