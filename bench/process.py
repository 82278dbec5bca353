"""Whole-process benchmark: one photo per process, as on-device scripts call the CLI.

Alternating runs (the order rotating every round) of

* ``fixres-edge classify PHOTO --threads 1``, and
* ``bench/baseline_ort_opencv.py PHOTO --threads 1``: the hand-written ONNX Runtime + OpenCV
  script (same fp32 model, labels, geometry and normalization),

after discarded warm runs (warm page cache and kernel cache): wall time (``perf_counter`` from
spawn to exit) and peak RSS of each process, measured from a small launcher process
(``fixres_edge.footprint``). Medians, min/max, and the ratios fixres_edge / baseline. Then
"import + first preprocessed frame" in fresh processes (timed inside and as a whole process),
and with ``--empty-cache`` the first run after install (every kernel cache empty; slow).

    python bench/process.py                           # 7 runs each after 2 warm runs; saves JSON
    python bench/process.py --photo photo.jpg --runs 11 --empty-cache
    python bench/process.py --update-readme           # also refresh the table in bench/README.md
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from fixres_edge import benchmark as bm
from fixres_edge import footprint
from report import finish_script_report, markdown_table, target, target_rows

REPO = Path(__file__).resolve().parents[1]
BASELINE = Path(__file__).resolve().with_name("baseline_ort_opencv.py")
RESULTS = REPO / "bench" / "results"
README = REPO / "bench" / "README.md"

TARGETS = {  # issue 12's targets for the deployed process (warm caches)
    "wall_ratio": 1.15, "rss_ratio": 1.10, "first_frame_s": 0.10,
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photo", type=Path, default=None,
                   help="the photo (default: matplotlib's sample grace_hopper.jpg, as `fixres-edge classify`)")
    p.add_argument("--runs", type=int, default=7, help="measured runs of each command (default 7)")
    p.add_argument("--warmup", type=int, default=2, help="discarded runs of each command first (default 2)")
    p.add_argument("--threads", type=int, default=1, help="threads of both processes (default 1)")
    p.add_argument("--first-frame-runs", type=int, default=5,
                   help="import + first frame processes (default 5, after one discarded)")
    p.add_argument("--empty-cache", action="store_true",
                   help="also the first run after install: kernel caches pointed at an empty directory (slow)")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON file (default: bench/results/<machine>-<date>.process.json)")
    p.add_argument("--no-save", action="store_true")
    p.add_argument("--update-readme", action="store_true", help="refresh the process table in bench/README.md")
    p.add_argument("--note", default="", help="free text stored with the results (e.g. 'machine under load')")
    args = p.parse_args(argv)
    for name in ("runs", "first_frame_runs", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        p.error(f"--warmup must be >= 0, got {args.warmup}")
    return args


def default_photo() -> Path:
    from fixres_edge.commands.classify import demo_photo

    return demo_photo()


# ------------------------------------------------------------------------------------ output
def _range(stats: dict | None, fmt: str) -> str:
    if stats is None:
        return "-"
    return f"{stats['median']:{fmt}} ({stats['min']:{fmt}}-{stats['max']:{fmt}})"


def markdown(report: dict) -> str:
    d = report["deployed"]
    p, r = d["processes"], d["ratio_fixres_to_baseline"]
    ff = report["first_frame"]
    lines = [f"One photo per process ({d['photo']}), {d['threads']} thread{'s' if d['threads'] > 1 else ''}, "
             f"{d['runs']} alternating runs each after {d['warmup_runs']} warm runs; median (min-max). Kernel path: {ff['kernel_backend'] or 'not reported'}"
             f" (numba imported: {'yes' if ff['numba_imported'] else 'no'}). {report['machine']}, {report['date']}."
             + (f" {report['note']}" if report.get("note") else ""), ""]
    rows = [[f"`{d['commands'][name]}`", _range(p[name]["wall_s"], ".3f"), _range(p[name]["cpu_s"], ".3f"),
             _range(p[name]["peak_rss_mb"], ".0f")] for name in ("baseline", "fixres_edge")]
    rows.append(["fixres_edge / baseline"] + [f"{r[k]:.2f}x" if r[k] else "-" for k in ("wall_s", "cpu_s", "peak_rss_mb")])
    lines.append(markdown_table(["process", "wall s", "CPU s (user + sys)", "peak RSS MB"], rows))
    lines += ["", f"Import + first preprocessed 500x375 frame in a fresh process (median of {ff['n']}): "
                  f"{ff['import_and_first_frame_s']:.3f} s inside (import {ff['import_s']:.3f} s, first frame "
                  f"{ff['first_frame_s']:.3f} s), {ff['process_s']:.3f} s (CPU {ff['process_cpu_s']:.3f} s) and "
                  f"{ff['peak_rss_mb']:.0f} MB as a whole process."]
    if "empty_cache" in report:
        e = report["empty_cache"]
        lines += ["", f"First run after install (every kernel cache empty): `classify` {e['classify']['wall_s']:.2f} s, "
                      f"{e['classify']['peak_rss_mb']:.0f} MB; import + first frame "
                      f"{e['first_frame']['import_and_first_frame_s']:.2f} s inside, "
                      f"{e['first_frame']['process_s']:.2f} s as a process."]
    lines += ["", markdown_table(["target", "measured", "limit", ""], target_rows(report["targets"]))]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ main
def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    photo = args.photo or default_photo()
    if not photo.is_file():
        print(f"process.py: error: photo not found: {photo}", file=sys.stderr)
        return 1
    env = bm.environment([args.threads])
    baseline = [sys.executable, str(BASELINE), str(photo), "--threads", str(args.threads)]
    report = {
        "schema": bm.SCHEMA, "kind": "process", "machine": bm.machine_slug(env["cpu"]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "note": args.note, "environment": env,
        "deployed": footprint.deployed(photo, runs=args.runs, warmup=args.warmup, threads=args.threads,
                                       baseline=baseline),
        "first_frame": footprint.first_frames(runs=args.first_frame_runs),
    }
    if args.empty_cache:
        report["empty_cache"] = footprint.first_run_after_install(photo, threads=args.threads)
    ratio = report["deployed"]["ratio_fixres_to_baseline"]
    targets = [
        target("classify / baseline, process wall (median)", ratio["wall_s"], TARGETS["wall_ratio"], "x"),
        target("classify / baseline, process peak RSS (median)", ratio["peak_rss_mb"], TARGETS["rss_ratio"], "x"),
        target("import + first preprocessed frame, warm (inside the process)",
               report["first_frame"]["import_and_first_frame_s"], TARGETS["first_frame_s"], "s"),
    ]
    # The first run after install is reported, not held to a limit: issue 12 sets one (2x the warm
    # wall) only for an ahead-of-time module built at install, and `pip install` builds none (the
    # module belongs to the device's user cache: `fixres-edge warmup` builds it).
    finish_script_report(report, targets, started, "process", markdown, out=args.out, save=not args.no_save,
                         update_readme=args.update_readme, results_dir=RESULTS, readme=README, repo=REPO)
    return 0


if __name__ == "__main__":
    sys.exit(main())
