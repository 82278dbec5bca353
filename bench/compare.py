"""One Markdown table across machines from benchmark JSON reports.

    python bench/compare.py bench/results/x86_64-*.json pi5.json pi4.json

Reports of the same kind (``fixres-edge bench --out``, ``bench/preprocess.py``,
``bench/frames.py``, ``bench/process.py``) become one table: a row per measurement, a column per report (machine and
date), each cell the value and, after the first column, its ratio to the first column's value.
Thread settings are shown as ``1`` and ``all`` (all cores of that machine), so a 2-core and a
4-core board line up. Reports of different kinds give one table per kind.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fixres_edge.benchmark import format_ms


def _threads(value: int, env: dict) -> str:
    if value == 1:
        return "1"
    return "all" if value == env.get("cores_available") else str(value)


def _bench_rows(report: dict) -> dict[str, tuple[float, str]]:
    env = report.get("environment", {})
    rows: dict[str, tuple[float, str]] = {}
    for r in report.get("pipeline", []):
        key = f"{r['frame']} {r['model']} {r['size']} thr {_threads(r['threads'], env)}"
        for stage in ("decode", "preprocess", "infer", "total"):
            rows[f"pipeline {key}: {stage} p50"] = (r["stages"][stage]["p50_ms"], "ms")
    for b in report.get("baselines", []):
        key = f"{b['frame']} {b['size']} thr {_threads(b['threads'], env)}"
        rows[f"preprocess {key}: fixres_edge p50"] = (b["methods"]["fixres_edge"]["p50_ms"], "ms")
        for name, ratio in b.get("ratios", {}).items():
            rows[f"preprocess {key}: fixres_edge / {name}"] = (ratio, "x")
    for frame, models in report.get("classify_peak_rss_mb", {}).items():
        for model, mb in models.items():
            rows[f"classify peak RSS {frame} {model}"] = (mb, "MB")
    if "peak_rss_mb" in report:
        rows["bench process peak RSS"] = (report["peak_rss_mb"], "MB")
    cs = report.get("cold_start")
    if cs:
        rows["start-up, warm JIT cache (process)"] = (cs["warm"]["process_s"], "s")
        rows["start-up, empty JIT cache (process)"] = (cs["cold"]["process_s"], "s")
    if "deployed" in report:
        rows.update(_deployed_rows(report["deployed"]))
    return rows


def _deployed_rows(d: dict) -> dict[str, tuple[float, str]]:
    """One photo per process: classify and the baseline script (``fixres_edge.footprint.deployed``)."""
    rows: dict[str, tuple[float, str]] = {}
    for name, label in (("fixres_edge", "classify"), ("baseline", "baseline script")):
        p = d["processes"][name]
        for key, what, unit in (("wall_s", "wall", "s"), ("cpu_s", "CPU", "s"), ("peak_rss_mb", "peak RSS", "MB")):
            if p.get(key):
                rows[f"one photo per process, {label}: {what} median"] = (p[key]["median"], unit)
    for key, what in (("wall_s", "wall"), ("cpu_s", "CPU"), ("peak_rss_mb", "peak RSS")):
        if d["ratio_fixres_to_baseline"].get(key):
            rows[f"one photo per process, classify / baseline script: {what}"] = (d["ratio_fixres_to_baseline"][key], "x")
    return rows


def _process_rows(report: dict) -> dict[str, tuple[float, str]]:
    rows = _deployed_rows(report["deployed"])
    ff = report.get("first_frame")
    if ff:
        rows["import + first frame (inside the process)"] = (ff["import_and_first_frame_s"], "s")
        rows["import + first frame (whole process)"] = (ff["process_s"], "s")
    e = report.get("empty_cache")
    if e:
        rows["first classify after install (empty caches)"] = (e["classify"]["wall_s"], "s")
    return rows


def _preprocess_rows(report: dict) -> dict[str, tuple[float, str]]:
    env = report.get("environment", {})
    rows: dict[str, tuple[float, str]] = {}
    for t, methods in report.get("summary", {}).items():
        label = _threads(int(t), env)
        for name, m in methods.items():
            rows[f"thr {label}: {name} median"] = (m["median_us"], "us")
        for name, m in methods.items():
            if name != "fixres_edge":
                rows[f"thr {label}: fixres_edge / {name}"] = (m["ratio_median"], "x")
    su = report.get("start_up")
    if su:
        rows["start-up, warm JIT cache (process)"] = (su["warm"]["process_s"], "s")
        rows["start-up, empty JIT cache (process)"] = (su["cold"]["process_s"], "s")
    return rows


def _frames_rows(report: dict) -> dict[str, tuple[float, str]]:
    rows: dict[str, tuple[float, str]] = {}
    j = report.get("jpeg")
    if j:
        for name, s in j["stats"].items():
            rows[f"big JPEG: {name} p50"] = (s["p50_ms"], "ms")
        rows["big JPEG: fixres_edge / INTER_AREA pipeline"] = (j["ratio_vs_area"]["paired_ratio_median"], "x")
    r = report.get("rss")
    if r:
        rows["classify peak RSS 500x375"] = (r["small"]["median_mb"], "MB")
        rows["classify peak RSS 4056x3040"] = (r["big"]["median_mb"], "MB")
        rows["classify peak RSS 4056x3040 --full-decode"] = (r["big --full-decode"]["median_mb"], "MB")
    n = report.get("nv12")
    if n:
        for frame, c in n["cost"].items():
            rows[f"NV12 {frame}: fused p50"] = (c["p50_us"]["nv12"], "us")
            rows[f"NV12 {frame}: NV12 / BGR"] = (c["nv12_vs_bgr"]["paired_ratio_median"], "x")
    t = report.get("top1")
    if t and "skipped" not in t:
        rows["top-1 reduced decode"] = (t["top1_reduced"], "%")
        rows["top-1 full decode"] = (t["top1_full"], "%")
    return rows


ROWS = {"bench": _bench_rows, "preprocess": _preprocess_rows, "frames": _frames_rows, "process": _process_rows}


_fmt = format_ms


def column_label(report: dict, path: Path) -> str:
    env = report.get("environment", {})
    cpu = env.get("board") or env.get("cpu") or report.get("machine") or path.stem
    date = str(report.get("date", ""))[:16]
    return f"{cpu}, {env.get('cores_available', '?')} cores ({date})" if date else cpu


def compare(reports: list[tuple[Path, dict]]) -> str:
    """Markdown tables (one per report kind) with a column per report."""
    by_kind: dict[str, list[tuple[Path, dict]]] = {}
    for path, report in reports:
        kind = report.get("kind")
        if kind not in ROWS:
            raise ValueError(f"{path}: unknown report kind {kind!r}; valid: {', '.join(map(repr, ROWS))}")
        by_kind.setdefault(kind, []).append((path, report))
    out = []
    for kind, group in by_kind.items():
        columns = [ROWS[kind](report) for _, report in group]
        labels: list[str] = []
        for rows in columns:
            labels.extend(k for k in rows if k not in labels)
        header = [kind] + [column_label(report, path) for path, report in group]
        lines = ["| " + " | ".join(header) + " |", "|:---" + "|---:" * len(group) + "|"]
        for label in labels:
            first = columns[0].get(label)
            unit = next(rows[label][1] for rows in columns if label in rows)
            cells = [f"{label} ({unit})"]
            for i, rows in enumerate(columns):
                cell = rows.get(label)
                if cell is None:
                    cells.append("-")
                elif i == 0 or first is None or not first[0]:
                    cells.append(_fmt(cell[0]))
                else:
                    cells.append(f"{_fmt(cell[0])} ({cell[0] / first[0]:.2f}x)")
            lines.append("| " + " | ".join(cells) + " |")
        out.append("\n".join(lines))
    return "\n\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", type=Path, help="JSON reports; the first is the reference column")
    args = parser.parse_args(argv)
    reports = []
    for path in args.reports:
        try:
            reports.append((path, json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError) as error:
            print(f"compare.py: error: {path}: {error}", file=sys.stderr)
            return 1
    try:
        print(compare(reports))
    except ValueError as error:
        print(f"compare.py: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
