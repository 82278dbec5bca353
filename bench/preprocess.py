"""Preprocessing benchmark: fixres_edge against the OpenCV and Pillow pipelines, on real photos.

For every photo (``../shared/data/imagenet-sample-dev`` next to the repository when present,
else generated camera-like frames), at size R (224) and crop_pct 0.875, one interleaved group
per thread setting times:

* ``fixres_edge``: ``Preprocessor(threads=t)(img, out=buf)``, antialiased bilinear (Pillow's filter);
* ``fixres_edge_noaa``: the same with ``antialias=False`` (OpenCV INTER_LINEAR's filter);
* ``opencv``: the best OpenCV pipeline (resize + crop view + one strided float copy with the
  channel flip + in-place per-channel normalize), ``cv2.setNumThreads(t)``;
* ``blob``: resize + crop + ``cv2.dnn.blobFromImageWithParams``;
* one thread only (Pillow has no threads): ``pillow`` (torchvision-style: resize, crop,
  asarray, normalize) and ``pillow_box`` (``resize(box=...)`` computing only the crop).

Per photo each method's median over the rounds is kept; ratios are taken per photo and then
summarized by their median (and quartiles). Then memory (steady-state allocations, table
sizes) and start-up (fresh processes, warm and empty JIT cache).

    python bench/preprocess.py                   # all photos, save JSON under bench/results/
    python bench/preprocess.py --limit 50 --repeat 5 --no-save     # a quick look
    python bench/preprocess.py --update-readme   # also refresh the table in bench/README.md
"""
from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

from fixres_edge import benchmark as bm
from fixres_edge.preprocess import Preprocessor
from report import finish_script_report, markdown_table, target, target_rows

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PHOTOS = REPO.parent / "shared" / "data" / "imagenet-sample-dev"
RESULTS = REPO / "bench" / "results"
README = REPO / "bench" / "README.md"
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")

# Sizes of the generated stand-ins when no photos are around (typical web photos, both orientations).
GENERATED_SIZES = ((375, 500), (333, 500), (500, 375), (500, 500), (480, 640), (281, 500), (500, 333), (375, 500))

TARGETS = {  # the project's targets at R = 224 on the development machine
    "opencv_1t": 0.60, "pillow_1t": 0.08, "opencv_all": 0.35,
    "steady_heap_bytes": 4096, "tables_bytes": 16384, "warm_start_s": 0.5, "cold_start_s": 20.0,
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS, help="directory of photos (default: %(default)s)")
    p.add_argument("--limit", type=int, default=None, help="use N photos spread evenly over the sorted list")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--crop-pct", type=float, default=0.875)
    p.add_argument("--threads", type=int, nargs="+", default=None, help="default: 1 and all cores")
    p.add_argument("--repeat", type=int, default=15, help="timed rounds per photo (default 15)")
    p.add_argument("--warmup", type=int, default=2, help="discarded rounds per photo (default 2)")
    p.add_argument("--start-up-runs", type=int, default=5, help="warm start-up processes (default 5; cold: 2)")
    p.add_argument("--skip-start-up", action="store_true")
    p.add_argument("--out", type=Path, default=None, help="JSON file (default: bench/results/<machine>-<date>.preprocess.json)")
    p.add_argument("--no-save", action="store_true")
    p.add_argument("--update-readme", action="store_true", help="refresh the preprocess table in bench/README.md")
    p.add_argument("--note", default="", help="free text stored with the results (e.g. 'machine under load')")
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------ inputs
def load_photos(directory: Path, limit: int | None):
    """``(source description, list of (name, BGR uint8 loader))``: photos, or generated frames."""
    import cv2

    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES) if directory.is_dir() else []
    if files:
        if limit and limit < len(files):
            picks = np.linspace(0, len(files) - 1, limit).round().astype(int)
            files = [files[i] for i in dict.fromkeys(picks.tolist())]
        return f"{len(files)} photos from {directory.name}", [(f.name, lambda f=f: cv2.imread(str(f))) for f in files]
    n = limit or len(GENERATED_SIZES)
    items = [(f"generated {GENERATED_SIZES[i % len(GENERATED_SIZES)]}",
              lambda i=i: bm.synthetic_frame(*GENERATED_SIZES[i % len(GENERATED_SIZES)], seed=i)) for i in range(n)]
    return f"{n} generated frames (no photos at {directory})", items


# ------------------------------------------------------------------------------------ timing
def measure(photos, size: int, crop_pct: float, threads: list[int], repeat: int, warmup: int) -> dict:
    """Per thread setting and method: per-photo medians (us); photos interleaved across settings."""
    fixres = {t: Preprocessor(size=size, crop_pct=crop_pct, threads=t) for t in threads}
    fixres_noaa = {t: Preprocessor(size=size, crop_pct=crop_pct, antialias=False, threads=t) for t in threads}
    opencv = bm.OpenCVPipeline(size, crop_pct)
    blob = bm.BlobPipeline(size, crop_pct) if bm.blob_available() else None
    pillow = bm.PillowPipeline(size, crop_pct) if bm.pillow_available() else None
    pillow_box = bm.PillowBoxPipeline(size, crop_pct) if bm.pillow_available() else None
    out = np.empty((1, 3, size, size), np.float32)
    single = 1 if 1 in threads else threads[0]
    per_photo: dict[int, dict[str, list[float]]] = {t: {} for t in threads}
    agreement = []
    for index, (name, load) in enumerate(photos):
        img = load()
        pil = bm.to_pil(img) if pillow is not None else None
        for t in threads:
            methods = {
                "fixres_edge": lambda p=fixres[t]: p(img, out=out),
                "fixres_edge_noaa": lambda p=fixres_noaa[t]: p(img, out=out),
                "opencv": lambda: opencv(img),
            }
            if blob is not None:
                methods["blob"] = lambda: blob(img)
            if pillow is not None and t == single:
                methods["pillow"] = lambda: pillow(pil)
                methods["pillow_box"] = lambda: pillow_box(pil)
            with bm.opencv_threads(t):
                times = bm.interleaved(methods, repeat=repeat, warmup=warmup)
            for method, ns in times.items():
                per_photo[t].setdefault(method, []).append(float(np.median(ns)) / 1e3)
        if pillow is not None and index < 20:
            # Sanity: the timed pipelines compute the same thing (in uint8 levels).
            a = fixres[single](img).astype(np.float64)
            b = np.asarray(pillow(pil), np.float64)
            levels = np.abs(a - b) * np.asarray(pillow.std)[:, None, None] * 255.0
            agreement.append((float(levels.max()), float(levels.mean())))
        if (index + 1) % 50 == 0:
            print(f"  {index + 1}/{len(photos)} photos", file=sys.stderr, flush=True)
    result = {"per_photo_us": {str(t): v for t, v in per_photo.items()}, "names": [name for name, _ in photos]}
    if agreement:
        result["fixres_vs_pillow_levels"] = {"max": round(max(a for a, _ in agreement), 3),
                                             "mean": round(float(np.mean([m for _, m in agreement])), 4),
                                             "photos": len(agreement)}
    return result


def summarize(per_photo_us: dict) -> dict:
    """Per setting: median us per method, and median (p25, p75) over photos of fixres_edge / method."""
    summary = {}
    for t, methods in per_photo_us.items():
        fixres = np.asarray(methods["fixres_edge"])
        rows = {}
        for name, values in methods.items():
            values = np.asarray(values)
            ratios = fixres / values
            rows[name] = {"median_us": round(float(np.median(values)), 2),
                          "ratio_median": round(float(np.median(ratios)), 4),
                          "ratio_p25": round(float(np.percentile(ratios, 25)), 4),
                          "ratio_p75": round(float(np.percentile(ratios, 75)), 4)}
        summary[t] = rows
    return summary


# ------------------------------------------------------------------------------------ memory


def memory(size: int, threads: list[int]) -> dict:
    """Steady-state heap use (tracemalloc) and table sizes.

    tracemalloc sees numpy buffers and Python objects. A steady-state call's transient peak is
    measured for a small and a large input and output: if it does not grow with them, what it
    holds is call bookkeeping (argument tuples), not image or row buffers.
    """
    rng = np.random.default_rng(1)
    cases = {"500x375 -> {s}": ((375, 500), size), "4056x3040 -> {s}": ((3040, 4056), size),
             "500x375 -> {s2}": ((375, 500), 2 * size)}
    steady = {}
    for t in threads:
        for label, ((h, w), out_size) in cases.items():
            img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            pre = Preprocessor(size=out_size, threads=t)
            out = pre(img)
            pre(img, out=out)
            tracemalloc.start()
            try:
                # A few traced calls first: values the calls replace are then traced on both
                # sides of the comparison.
                for _ in range(10):
                    pre(img, out=out)
                base = tracemalloc.get_traced_memory()[0]
                tracemalloc.reset_peak()
                for _ in range(100):
                    pre(img, out=out)
                current, peak = tracemalloc.get_traced_memory()
                tracemalloc.reset_peak()
                base_alloc = tracemalloc.get_traced_memory()[0]
                pre(img)  # without out=: the output itself is the only allocation
                alloc_peak = tracemalloc.get_traced_memory()[1] - base_alloc
            finally:
                tracemalloc.stop()
            steady[f"{t}t " + label.format(s=size, s2=2 * size)] = {
                "peak_delta_bytes": int(peak - base), "retained_bytes": int(current - base),
                "call_without_out_peak_bytes": int(alloc_peak), "output_bytes": int(out.nbytes)}
    tables = {}
    for h, w in ((375, 500), (1080, 1920), (3040, 4056)):
        pre = Preprocessor(size=size, threads=1)
        pre(np.zeros((h, w, 3), np.uint8))
        plan = pre.plan(h, w)
        table = sum(a.nbytes for a in (plan.y.start, plan.y.weights, plan.x.start, plan.x.weights))
        work = sum(b.nbytes for b in pre._local.__dict__.get("workspace", {}).values())
        tables[f"{w}x{h}"] = {"table_bytes": int(table), "taps_y": plan.y.taps, "taps_x": plan.x.taps,
                              "workspace_bytes": int(work)}
    return {"steady_state": steady, "tables": tables}


# ------------------------------------------------------------------------------------ report
def markdown(report: dict) -> str:
    s = report["summary"]
    lines = [f"Preprocessing to {report['settings']['size']}x{report['settings']['size']} float32 NCHW, "
             f"{report['settings']['source']}; {report['settings']['repeat']} rounds per photo, median per photo, "
             f"then median over photos. {report['machine']}, {report['date']}"
             + (f" ({report['note']})" if report.get("note") else "") + "."]
    names = {"fixres_edge": "fixres_edge (antialiased bilinear)", "fixres_edge_noaa": "fixres_edge (antialias=False)",
             "opencv": "OpenCV best (resize + strided copy + in-place normalize)",
             "blob": "OpenCV resize + blobFromImageWithParams", "pillow": "Pillow torchvision-style",
             "pillow_box": "Pillow resize(box=...) + fast normalize"}
    threads = list(s)
    header = ["method"] + [f"{t} thread{'s' if t != '1' else ''}: us" for t in threads] + \
             [f"fixres_edge / method ({t}t)" for t in threads]
    rows = []
    for method, label in names.items():
        cells = [label]
        for t in threads:
            cells.append(f"{s[t][method]['median_us']:.0f}" if method in s[t] else "-")
        for t in threads:
            r = s[t].get(method)
            cells.append("-" if r is None or method == "fixres_edge" else
                         f"{r['ratio_median']:.3f} ({r['ratio_p25']:.3f}-{r['ratio_p75']:.3f})")
        rows.append(cells)
    lines += ["", markdown_table(header, rows), ""]
    rows = target_rows(report["targets"])
    lines += [markdown_table(["target", "measured", "limit", ""], rows), ""]
    mem = report["memory"]
    peaks = [m["peak_delta_bytes"] for m in mem["steady_state"].values()]
    lines.append(f"Memory: steady-state calls with out= allocate {min(peaks)}-{max(peaks)} B of transient heap "
                 f"whatever the input and output size ({len(peaks)} cases: call bookkeeping, no buffers), retain "
                 f"{max(m['retained_bytes'] for m in mem['steady_state'].values())} B (the kernels take one "
                 f"prepared launch record and allocate nothing); tables per geometry: " + ", ".join(
        f"{k} {v['table_bytes'] / 1024:.1f} KB (+{v['workspace_bytes'] / 1024:.1f} KB row buffer)"
        for k, v in mem["tables"].items()) + ".")
    if "start_up" in report:
        su = report["start_up"]
        lines.append(f"Start-up (fresh process: import + one 500x375 frame): warm JIT cache {su['warm']['process_s']:.2f} s "
                     f"(import {su['warm']['import_s']:.2f} s, first call {su['warm']['first_call_s']:.2f} s); "
                     f"empty cache {su['cold']['process_s']:.1f} s.")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    threads = bm.thread_settings(args.threads)
    source, photos = load_photos(args.photos, args.limit)
    env = bm.environment(threads)
    print(f"{source}; threads {threads}; load {env['load_average']}", file=sys.stderr)
    started = time.perf_counter()
    timing = measure(photos, args.size, args.crop_pct, threads, args.repeat, args.warmup)
    summary = summarize(timing["per_photo_us"])
    report = {
        "schema": bm.SCHEMA, "kind": "preprocess", "machine": bm.machine_slug(env["cpu"]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "note": args.note, "environment": env,
        "settings": {"size": args.size, "crop_pct": args.crop_pct, "threads": threads, "repeat": args.repeat,
                     "warmup": args.warmup, "source": source, "photos": len(photos)},
        "harness_overhead_ns": bm.harness_overhead_ns(),
        "summary": {str(k): v for k, v in summary.items()},
        "agreement": timing.get("fixres_vs_pillow_levels"),
        "per_photo_us": {"names": timing["names"],
                         **{t: {m: [round(v, 1) for v in values] for m, values in methods.items()}
                            for t, methods in timing["per_photo_us"].items()}},
        "memory": memory(args.size, threads),
    }
    if not args.skip_start_up:
        report["start_up"] = bm.cold_start(warm_runs=args.start_up_runs, cold_runs=2)
    single, most = str(1 if 1 in threads else threads[0]), str(max(threads))
    s = report["summary"]
    mem = report["memory"]
    targets = [
        target("fixres_edge / OpenCV best, 1 thread", s[single]["opencv"]["ratio_median"], TARGETS["opencv_1t"], "x"),
        target("fixres_edge / Pillow torchvision-style, 1 thread",
                  s[single]["pillow"]["ratio_median"] if "pillow" in s[single] else None, TARGETS["pillow_1t"], "x"),
    ]
    if most != single:
        targets.append(target(f"fixres_edge / OpenCV best, {most} threads each",
                                 s[most]["opencv"]["ratio_median"], TARGETS["opencv_all"], "x"))
        targets.append(target(f"fixres_edge {most} threads / OpenCV best 1 thread (informative)",
                                 s[most]["fixres_edge"]["median_us"] / s[single]["opencv"]["median_us"],
                                 TARGETS["opencv_all"], "x"))
    targets.append(target("steady-state transient heap per call with out= (tracemalloc peak, any size)",
                             max(m["peak_delta_bytes"] for m in mem["steady_state"].values()),
                             TARGETS["steady_heap_bytes"], "B"))
    targets.append(target("heap retained after 100 steady calls",
                             max(m["retained_bytes"] for m in mem["steady_state"].values()), 0, "B"))
    targets.append(target("tables per geometry (500x375 -> 224)", mem["tables"]["500x375"]["table_bytes"],
                             TARGETS["tables_bytes"], "B"))
    if "start_up" in report:
        targets.append(target("start-up, warm JIT cache (process wall)", report["start_up"]["warm"]["process_s"],
                                 TARGETS["warm_start_s"], "s"))
        targets.append(target("start-up, empty JIT cache (process wall)", report["start_up"]["cold"]["process_s"],
                                 TARGETS["cold_start_s"], "s"))
    finish_script_report(report, targets, started, "preprocess", markdown, out=args.out,
                            save=not args.no_save, update_readme=args.update_readme, results_dir=RESULTS,
                            readme=README, repo=REPO)
    return 0


if __name__ == "__main__":
    sys.exit(main())
