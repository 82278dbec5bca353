"""Camera-frame benchmark: big JPEGs through reduced decode, memory of ``classify``, NV12 input, accuracy.

Four measurements, each against what people do today:

1. ``jpeg``: a 4056x3040 q90 JPEG with sensor-like noise (the Pi HQ camera's still; or
   ``--jpeg FILE``) to a 224 tensor, one thread: ``Preprocessor.load`` (DCT-reduced decode +
   fused preprocess) against full ``cv2.imdecode`` + ``cv2.resize(INTER_AREA)`` + crop + normalize.
   Interleaved rounds, per-round ratios, median.
2. ``rss``: peak RSS of a fresh ``fixres-edge classify`` process (one thread) on that photo and on
   a 500x375 one (also with ``--full-decode``), each the median of a few runs.
3. ``nv12``: camera NV12 frames through the fused YUV kernel against the BGR path on the same
   frame size (cost) and against ``cv2.cvtColor(COLOR_YUV2BGR_NV12)`` + BGR preprocessing
   (cost and uint8 parity, in levels, on generated frames and on photos).
4. ``top1``: top-1 of the bundled model on the dev photos with and without reduced decode, paired.

    python bench/frames.py                       # everything, JSON under bench/results/
    python bench/frames.py --parts jpeg nv12 --repeat 5 --no-save
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fixres_edge import benchmark as bm
from fixres_edge.preprocess import Preprocessor
from report import finish_script_report, markdown_table, target, target_rows

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PHOTOS = REPO.parent / "shared" / "data" / "imagenet-sample-dev"
CLASSES_TSV = REPO.parent / "shared" / "data" / "imagenet-classes.tsv"
RESULTS = REPO / "bench" / "results"
README = REPO / "bench" / "README.md"
PARTS = ("jpeg", "rss", "nv12", "top1")
BIG = (3040, 4056)
SMALL = (375, 500)
NV12_SIZES = ((480, 640), (720, 1280), (1080, 1920), (3040, 4056))

TARGETS = {"jpeg_ratio": 0.45, "rss_extra_mb": 12.0, "nv12_cost": 1.3, "nv12_max_levels": 3.0,
           "nv12_mean_levels": 0.6}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--jpeg", type=Path, default=None, help="a big camera JPEG to use instead of the generated one")
    p.add_argument("--repeat", type=int, default=15, help="timed rounds (default 15)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rss-runs", type=int, default=3, help="classify processes per case (default 3)")
    p.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    p.add_argument("--limit", type=int, default=None, help="photos for top-1 and parity (default: all / 50)")
    p.add_argument("--out", type=Path, default=None, help="JSON file (default: bench/results/<machine>-<date>.frames.json)")
    p.add_argument("--no-save", action="store_true")
    p.add_argument("--update-readme", action="store_true", help="refresh the frames table in bench/README.md")
    p.add_argument("--note", default="")
    return p.parse_args(argv)


def _photos(directory: Path, limit: int | None) -> list[Path]:
    if not directory.is_dir():
        return []
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if limit and limit < len(files):
        picks = np.linspace(0, len(files) - 1, limit).round().astype(int)
        files = [files[i] for i in dict.fromkeys(picks.tolist())]
    return files


def _paired(times: dict, a: str, b: str) -> dict:
    ratio = times[a] / times[b]
    return {"p50_ratio": round(float(np.median(times[a]) / np.median(times[b])), 4),
            "paired_ratio_median": round(float(np.median(ratio)), 4)}


# ------------------------------------------------------------------------------------ 1. big JPEG
def bench_jpeg(args, data: bytes) -> dict:
    import cv2

    pre = Preprocessor(size=args.size, threads=1)
    out = np.empty(pre.out_shape(1), np.float32)
    area = bm.OpenCVPipeline(args.size, interpolation=cv2.INTER_AREA)
    linear = bm.OpenCVPipeline(args.size)
    encoded = np.frombuffer(data, np.uint8)
    methods = {
        "fixres_edge load (reduced decode + fused)": lambda: pre.load(data, out=out),
        "opencv full decode + INTER_AREA": lambda: area(bm.decode_full(encoded)),
        "opencv full decode + INTER_LINEAR (aliases)": lambda: linear(bm.decode_full(encoded)),
        "full decode + fixres_edge": lambda: pre(bm.decode_full(encoded), out=out),
    }
    with bm.opencv_threads(1):
        times = bm.interleaved(methods, repeat=args.repeat, warmup=args.warmup)
    from fixres_edge.decode import load_image

    _, info = load_image(data, min_short_side=pre.min_short_side, return_info=True)
    keys = list(methods)
    return {
        "bytes": len(data), "size": list(info.size), "reduction": info.reduction,
        "stats": {k: bm.Stats.from_ns(v).to_dict() for k, v in times.items()},
        "ratio_vs_area": _paired(times, keys[0], keys[1]),
        "ratio_vs_linear": _paired(times, keys[0], keys[2]),
    }


# ------------------------------------------------------------------------------------ 2. RSS
def bench_rss(args, big: bytes, small: bytes) -> dict:
    results = {}
    with tempfile.TemporaryDirectory(prefix="fixres_edge-frames-") as tmp:
        paths = {"big": Path(tmp) / "big.jpg", "small": Path(tmp) / "small.jpg"}
        paths["big"].write_bytes(big)
        paths["small"].write_bytes(small)
        base = ["classify", "--threads", "1", "--json", "--res", str(args.size)]
        cases = {"small": base + [str(paths["small"])], "big": base + [str(paths["big"])],
                 "big --full-decode": base + ["--full-decode", str(paths["big"])]}
        runs: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(max(1, args.rss_runs)):  # interleaved, like the timings
            for name, argv in cases.items():
                code, peak, _, _, err = bm.run_module_measuring_rss("fixres_edge", argv)
                if code != 0:
                    raise RuntimeError(f"classify ({name}) failed: {err.strip().splitlines()[-1:]}")
                runs[name].append(peak)
    for name, values in runs.items():
        results[name] = {"median_mb": round(float(np.median(values)), 1), "runs_mb": [round(v, 1) for v in values]}
    results["big_minus_small_mb"] = round(results["big"]["median_mb"] - results["small"]["median_mb"], 1)
    results["full_decode_minus_small_mb"] = round(results["big --full-decode"]["median_mb"]
                                                  - results["small"]["median_mb"], 1)
    return results


# ------------------------------------------------------------------------------------ 3. NV12
def _levels(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return float(d.max()), float(d.mean())


def bench_nv12(args) -> dict:
    import cv2

    pre_bgr = Preprocessor(size=args.size, threads=1)
    pre_nv12 = Preprocessor(size=args.size, threads=1, input_format="NV12")
    out = np.empty(pre_bgr.out_shape(1), np.float32)
    cost = {}
    with bm.opencv_threads(1):
        for i, (h, w) in enumerate(NV12_SIZES):
            nv12 = bm.bgr_to_nv12(bm.synthetic_frame(h, w, seed=10 + i))
            bgr = cv2.cvtColor(nv12, cv2.COLOR_YUV2BGR_NV12)
            methods = {
                "nv12": lambda: pre_nv12(nv12, out=out),
                "bgr": lambda: pre_bgr(bgr, out=out),
                "cvtColor + bgr": lambda: pre_bgr(cv2.cvtColor(nv12, cv2.COLOR_YUV2BGR_NV12), out=out),
            }
            times = bm.interleaved(methods, repeat=args.repeat * 2, warmup=args.warmup)
            cost[f"{w}x{h}"] = {"p50_us": {k: round(float(np.median(v)) / 1e3, 1) for k, v in times.items()},
                                "nv12_vs_bgr": _paired(times, "nv12", "bgr"),
                                "nv12_vs_cvtcolor_then_bgr": _paired(times, "nv12", "cvtColor + bgr")}
    # Parity in uint8 levels: generated frames and photos (cropped to even sizes).
    u8_nv12 = Preprocessor(size=args.size, dtype="uint8", input_format="NV12")
    u8_bgr = Preprocessor(size=args.size, dtype="uint8")
    frames = [bm.synthetic_frame(h, w, seed=20 + i) for i, (h, w) in enumerate(NV12_SIZES[:3])]
    photos = _photos(args.photos, args.limit or 50)
    worst, means = 0.0, []
    for image in frames + [cv2.imread(str(p)) for p in photos]:
        h, w = image.shape[0] & ~1, image.shape[1] & ~1
        nv12 = bm.bgr_to_nv12(np.ascontiguousarray(image[:h, :w]))
        mx, mean = _levels(u8_nv12(nv12), u8_bgr(cv2.cvtColor(nv12, cv2.COLOR_YUV2BGR_NV12)))
        worst = max(worst, mx)
        means.append(mean)
    parity = {"images": len(frames) + len(photos), "max_levels": worst, "mean_levels": round(float(np.mean(means)), 4),
              "worst_image_mean_levels": round(float(np.max(means)), 4)}
    return {"cost": cost, "parity": parity}


# ------------------------------------------------------------------------------------ 4. top-1
def bench_top1(args) -> dict:
    from fixres_edge.decode import image_size, reduction_factor
    from fixres_edge.runtime import Classifier

    photos = _photos(args.photos, args.limit)
    if not photos or not CLASSES_TSV.is_file():
        return {"skipped": f"no photos at {args.photos} or no class list"}
    wnid_index = {}
    for line in CLASSES_TSV.read_text(encoding="utf-8").splitlines()[1:]:
        index, wnid, _ = line.split("\t", 2)
        wnid_index[wnid] = int(index)
    reduced = Classifier(size=args.size, reduced_decode=True)
    full = Classifier(size=args.size, reduced_decode=False)
    need = reduced.preprocessor(args.size).min_short_side
    rows = []
    for path in photos:
        truth = wnid_index.get(path.name.split("_", 1)[0])
        h, w = image_size(path)
        a = reduced.predict(path, topk=1)
        b = full.predict(path, topk=1)
        rows.append({"name": path.name, "size": [h, w], "reduction": reduction_factor(h, w, need) if
                     path.suffix.lower() in (".jpg", ".jpeg") else 1, "truth": truth,
                     "reduced": a.index, "full": b.index})
    n = len(rows)
    scored = [r for r in rows if r["truth"] is not None]
    changed = [r for r in rows if r["reduced"] != r["full"]]
    return {
        "photos": n, "size": args.size,
        "top1_reduced": round(100 * sum(r["reduced"] == r["truth"] for r in scored) / max(1, len(scored)), 2),
        "top1_full": round(100 * sum(r["full"] == r["truth"] for r in scored) / max(1, len(scored)), 2),
        "reduced_photos": sum(r["reduction"] > 1 for r in rows),
        "changed": len(changed),
        "changed_with_reduction_1": sum(r["reduction"] == 1 for r in changed),
        "only_reduced_right": sum(r["reduced"] == r["truth"] != r["full"] for r in scored),
        "only_full_right": sum(r["full"] == r["truth"] != r["reduced"] for r in scored),
        "changed_photos": [{k: r[k] for k in ("name", "size", "reduction", "truth", "reduced", "full")}
                           for r in changed],
    }


# ------------------------------------------------------------------------------------ report
def markdown(report: dict) -> str:
    lines = [f"Camera frames, {report['settings']['size']}x{report['settings']['size']}, one thread; "
             f"{report['machine']}, {report['date']}" + (f" ({report['note']})" if report.get("note") else "") + "."]
    if "jpeg" in report:
        j = report["jpeg"]
        rows = [[k, f"{v['p50_ms']:.1f}", f"{v['p90_ms']:.1f}"] for k, v in j["stats"].items()]
        lines += ["", f"{j['size'][1]}x{j['size'][0]} JPEG ({j['bytes'] / 1e6:.1f} MB, decoded at 1/{j['reduction']}) "
                  "to a normalized tensor, ms:", "", markdown_table(["pipeline", "p50", "p90"], rows)]
    if "nv12" in report:
        c = report["nv12"]["cost"]
        rows = [[k, f"{v['p50_us']['bgr']:.0f}", f"{v['p50_us']['nv12']:.0f}", f"{v['p50_us']['cvtColor + bgr']:.0f}",
                 f"{v['nv12_vs_bgr']['paired_ratio_median']:.2f}x",
                 f"{v['nv12_vs_cvtcolor_then_bgr']['paired_ratio_median']:.2f}x"] for k, v in c.items()]
        lines += ["", "NV12 camera frames (us, p50):", "",
                  markdown_table(["frame", "BGR", "NV12 fused", "cvtColor + BGR", "NV12 / BGR",
                                     "NV12 / (cvtColor + BGR)"], rows)]
    if "rss" in report:
        r = report["rss"]
        lines += ["", f"Peak RSS of a fresh `fixres-edge classify` (1 thread): 500x375 {r['small']['median_mb']:.0f} MB, "
                  f"4056x3040 {r['big']['median_mb']:.0f} MB (+{r['big_minus_small_mb']:.1f} MB), "
                  f"4056x3040 with --full-decode {r['big --full-decode']['median_mb']:.0f} MB "
                  f"(+{r['full_decode_minus_small_mb']:.1f} MB)."]
    if "top1" in report and "skipped" not in report["top1"]:
        t = report["top1"]
        lines += ["", f"Top-1 on {t['photos']} dev photos at {t['size']}: reduced decode {t['top1_reduced']:.1f} %, "
                  f"full decode {t['top1_full']:.1f} %; {t['reduced_photos']} photos are decoded reduced, "
                  f"{t['changed']} predictions change ({t['changed_with_reduction_1']} of them at full size), "
                  f"{t['only_reduced_right']} only right when reduced, {t['only_full_right']} only right at full size."]
    rows = target_rows(report["targets"])
    lines += ["", markdown_table(["target", "measured", "limit", ""], rows)]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    env = bm.environment([1])
    started = time.perf_counter()
    print(f"parts {args.parts}; load {env['load_average']}", file=sys.stderr)
    big = args.jpeg.read_bytes() if args.jpeg else bm.encode_jpeg(bm.synthetic_frame(*BIG, seed=0), 90)
    small = bm.encode_jpeg(bm.synthetic_frame(*SMALL, seed=1), 90)
    report = {"schema": bm.SCHEMA, "kind": "frames", "machine": bm.machine_slug(env["cpu"]),
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "note": args.note, "environment": env,
              "settings": {"size": args.size, "repeat": args.repeat, "warmup": args.warmup, "parts": args.parts,
                           "big_jpeg": str(args.jpeg.name) if args.jpeg else "generated 4056x3040 q90"}}
    targets = []
    if "jpeg" in args.parts:
        report["jpeg"] = bench_jpeg(args, big)
        targets.append(target("4056x3040 JPEG: reduced decode + fused / full imdecode + INTER_AREA (paired)",
                                 report["jpeg"]["ratio_vs_area"]["paired_ratio_median"], TARGETS["jpeg_ratio"], "x"))
    if "rss" in args.parts:
        report["rss"] = bench_rss(args, big, small)
        targets.append(target("classify peak RSS, 4056x3040 minus 500x375", report["rss"]["big_minus_small_mb"],
                                 TARGETS["rss_extra_mb"], "MB"))
    if "nv12" in args.parts:
        report["nv12"] = bench_nv12(args)
        worst_cost = max(v["nv12_vs_bgr"]["paired_ratio_median"] for v in report["nv12"]["cost"].values())
        targets += [
            target("NV12 cost / BGR cost, same frame (worst size)", worst_cost, TARGETS["nv12_cost"], "x"),
            target("NV12 vs cvtColor + BGR: max difference", report["nv12"]["parity"]["max_levels"],
                      TARGETS["nv12_max_levels"], "levels"),
            target("NV12 vs cvtColor + BGR: mean difference", report["nv12"]["parity"]["mean_levels"],
                      TARGETS["nv12_mean_levels"], "levels"),
        ]
    if "top1" in args.parts:
        report["top1"] = bench_top1(args)
    finish_script_report(report, targets, started, "frames", markdown, out=args.out,
                            save=not args.no_save, update_readme=args.update_readme, results_dir=RESULTS,
                            readme=README, repo=REPO)
    return 0


if __name__ == "__main__":
    sys.exit(main())
