"""Preprocessing with the ahead-of-time kernels against the JIT and the best OpenCV pipeline.

One thread (the Pi-class proxy: Preprocessor on the calling thread, OpenCV pinned to 1 thread),
photos of ``../shared/data/imagenet-sample-dev`` (or generated frames), 224x224 float32 NCHW,
the three methods interleaved per round so that drift hits all alike; medians per photo after
warm-up rounds, then the median over photos of each per-photo ratio. Needs the ahead-of-time
module (``fixres-edge warmup``). Writes ``bench/results/<machine>.kernel_paths.json``.

    python bench/kernel_paths.py [--limit 100] [--repeat 15]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from fixres_edge import Preprocessor
from fixres_edge import benchmark as bm
from fixres_edge._jit import backend_kernels, kernels_from

HERE = Path(__file__).resolve().parent
PHOTOS = HERE.parent.parent / "shared" / "data" / "imagenet-sample-dev"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", type=Path, default=PHOTOS)
    p.add_argument("--limit", type=int, default=100, help="photos (default 100, spread over the folder)")
    p.add_argument("--repeat", type=int, default=15, help="timed rounds per photo")
    p.add_argument("--warmup", type=int, default=3, help="discarded rounds per photo")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)

    import cv2

    files = sorted(f for f in args.photos.glob("*.JPEG")) if args.photos.is_dir() else []
    if files:
        picks = np.linspace(0, len(files) - 1, min(args.limit, len(files))).round().astype(int)
        images = [cv2.imread(str(files[i])) for i in dict.fromkeys(picks.tolist())]
        source = f"{len(images)} photos from {args.photos.name}"
    else:
        images = [bm.synthetic_frame(375, 500, seed=i) for i in range(args.limit)]
        source = f"{len(images)} generated 500x375 frames"
    pres = {}
    for backend in ("aot", "jit"):
        with kernels_from(backend_kernels(backend)):
            pres[backend] = Preprocessor(size=args.size)
            for image in images:
                pres[backend](image)  # binds every geometry to this backend's kernels
    opencv = bm.OpenCVPipeline(args.size)
    out = np.empty((1, 3, args.size, args.size), np.float32)
    per_photo: dict[str, list[float]] = {}
    with bm.opencv_threads(1):
        for image in images:
            methods = {"aot": lambda: pres["aot"](image, out=out), "jit": lambda: pres["jit"](image, out=out),
                       "opencv": lambda: opencv(image)}
            for name, ns in bm.interleaved(methods, repeat=args.repeat, warmup=args.warmup).items():
                per_photo.setdefault(name, []).append(float(np.median(ns)) / 1e3)
    us = {name: np.asarray(v) for name, v in per_photo.items()}
    ratios = {"aot_vs_jit": us["aot"] / us["jit"], "aot_vs_opencv": us["aot"] / us["opencv"],
              "jit_vs_opencv": us["jit"] / us["opencv"]}
    env = bm.environment([1])
    report = {
        "kind": "kernel_paths", "date": time.strftime("%Y-%m-%d %H:%M:%S"), "source": source,
        "size": args.size, "repeat": args.repeat, "environment": env,
        "median_us": {k: round(float(np.median(v)), 1) for k, v in us.items()},
        "ratio_median": {k: round(float(np.median(v)), 4) for k, v in ratios.items()},
        "ratio_p25_p75": {k: [round(float(np.percentile(v, q)), 4) for q in (25, 75)] for k, v in ratios.items()},
        "targets": {"aot_vs_jit <= 1.05": bool(np.median(ratios["aot_vs_jit"]) <= 1.05),
                    "aot_vs_opencv <= 0.45": bool(np.median(ratios["aot_vs_opencv"]) <= 0.45)},
    }
    out_path = args.out or HERE / "results" / f"{bm.machine_slug(env['cpu'])}.kernel_paths.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"{source}, {args.size}x{args.size} float32 NCHW, 1 thread, median of per-photo medians:")
    for name, value in report["median_us"].items():
        print(f"  {name:8s} {value:8.1f} us")
    for name, value in report["ratio_median"].items():
        lo, hi = report["ratio_p25_p75"][name]
        print(f"  {name:14s} {value:.3f} (p25-p75 {lo:.3f}-{hi:.3f})")
    print(f"saved {out_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
