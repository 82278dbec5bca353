"""Antialiased bicubic: Pillow's pass order (what fixres_edge does) against the vertical-first order.

Measures, on the dev photos (or generated frames), what the faster order would cost: parity with
Pillow BICUBIC (uint8 levels) and top-1 of the bundled model with bicubic preprocessing (paired,
same photos), and what it would save (1 thread, interleaved, median of per-photo medians).

    python bench/bicubic_order.py [--limit 500]
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

from fixres_edge import Classifier, Preprocessor

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"


def pillow_reference(bgr: np.ndarray, size: int = 224, crop_pct: float = 0.875) -> np.ndarray:
    """torchvision's Resize(int(size / crop_pct), BICUBIC) + CenterCrop(size) with Pillow: (size, size, 3) RGB."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(bgr[..., ::-1]))
    w, h = image.size
    short = int(size / crop_pct)
    nw, nh = (short, int(short * h / w)) if w < h else (int(short * w / h), short)
    image = image.resize((nw, nh), Image.BICUBIC)
    left, top = int(round((nw - size) / 2.0)), int(round((nh - size) / 2.0))
    return np.asarray(image.crop((left, top, left + size, top + size)))


def with_order(pre: Preprocessor, pillow_order: bool) -> Preprocessor:
    pre._pillow_order = pillow_order  # the one switch between the two kernels (preprocess.py)
    return pre


def main(argv=None) -> int:
    import cv2

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, default=500)
    p.add_argument("--repeat", type=int, default=7)
    args = p.parse_args(argv)
    files = sorted((DATA / "imagenet-sample-dev").glob("*.JPEG"))[:args.limit]
    if not files:
        print("no photos in ../shared/data/imagenet-sample-dev", file=sys.stderr)
        return 2
    wnid_index = {row[1]: int(row[0]) for row in csv.reader(open(DATA / "imagenet-classes.tsv"), delimiter="\t")
                  if row and row[0].isdigit()}
    parity = {True: [], False: []}
    correct = {True: [], False: []}
    times = {True: [], False: [], "bilinear": []}
    classifiers = {}
    for order in (True, False):
        clf = Classifier(model="fp32", size=224, interpolation="bicubic")
        with_order(clf.preprocessor(clf.policy.scales[0]), order)
        classifiers[order] = clf
    u8 = {order: with_order(Preprocessor(224, interpolation="bicubic", dtype="uint8", layout="NHWC"), order)
          for order in (True, False)}
    f32 = {True: with_order(Preprocessor(224, interpolation="bicubic"), True),
           False: with_order(Preprocessor(224, interpolation="bicubic"), False), "bilinear": Preprocessor(224)}
    out = np.empty((1, 3, 224, 224), np.float32)
    for path in files:
        bgr = cv2.imread(str(path))
        reference = pillow_reference(bgr).astype(np.int16)
        label = wnid_index[path.name.split("_")[0]]
        for order in (True, False):
            parity[order].append(int(np.abs(u8[order](bgr)[0].astype(np.int16) - reference).max()))
            correct[order].append(classifiers[order].predict(str(path), topk=1).top[0].index == label)
        for pre in f32.values():
            pre(bgr, out=out)
        rounds = {key: [] for key in f32}
        for _ in range(args.repeat):
            for key, pre in f32.items():
                start = time.perf_counter_ns()
                pre(bgr, out=out)
                rounds[key].append(time.perf_counter_ns() - start)
        for key, values in rounds.items():
            times[key].append(np.median(values) / 1e3)
    a, b = np.array(correct[True]), np.array(correct[False])
    us = {k: float(np.median(v)) for k, v in times.items()}
    print(f"{len(files)} photos, 224, bundled fp32 model with bicubic preprocessing")
    print(f"  Pillow order:   top-1 {a.mean():.1%}, max level diff vs Pillow {max(parity[True])}, {us[True]:.0f} us")
    print(f"  vertical first: top-1 {b.mean():.1%}, max level diff vs Pillow {max(parity[False])}, {us[False]:.0f} us")
    print(f"  bilinear (for scale): {us['bilinear']:.0f} us; photos right only with Pillow order {int((a & ~b).sum())}, "
          f"only vertical first {int((~a & b).sum())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
