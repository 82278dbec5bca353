"""What a command imports before it answers: ``python -X importtime`` summarized over several runs.

Runs the command (default: ``fixres-edge classify PHOTO --threads 1``) ``--runs`` times with
``-X importtime``, sums each top-level package's self time per run (fixres_edge's own modules one
by one), and prints the medians as a Markdown table, largest first.

    python bench/importtime.py                          # the demo photo
    python bench/importtime.py --photo photo.jpg --runs 9 --json imports.json
    python bench/importtime.py -- --help                # any fixres_edge arguments after --
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path


def parse_importtime(stderr: str) -> dict[str, int]:
    """Self time in microseconds per imported module, from ``-X importtime`` output."""
    times: dict[str, int] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = (part.strip() for part in line[len("import time:"):].split("|"))
        times[name] = times.get(name, 0) + int(self_us)
    return times


def group(times: dict[str, int]) -> dict[str, int]:
    """Self times summed per top-level package; fixres_edge's modules stay apart."""
    out: dict[str, int] = defaultdict(int)
    for name, us in times.items():
        key = name if name.startswith("fixres_edge") else name.split(".")[0]
        out[key] += us
    return dict(out)


def measure(argv: list[str], runs: int) -> list[dict[str, int]]:
    results = []
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-X", "importtime", "-m", "fixres_edge", *argv],
                              capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"fixres_edge {' '.join(argv)} failed (exit {done.returncode}): {tail}")
        results.append(group(parse_importtime(done.stderr)))
    return results


def summarize(runs: list[dict[str, int]]) -> dict[str, float]:
    """Median milliseconds per group (0 in a run that did not import it), largest first."""
    names = set().union(*runs)
    medians = {name: statistics.median(r.get(name, 0) for r in runs) / 1000 for name in names}
    return dict(sorted(medians.items(), key=lambda kv: -kv[1]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photo", type=Path, default=None, help="default: the demo photo of `fixres-edge classify`")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--top", type=int, default=25, help="rows shown (default 25)")
    p.add_argument("--json", type=Path, default=None, help="also save the medians as JSON")
    p.add_argument("command", nargs="*", help="fixres_edge arguments (default: classify PHOTO --threads 1)")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error(f"--runs must be >= 1, got {args.runs}")
    if args.command:
        command = list(args.command)
    else:
        if args.photo is None:
            from fixres_edge.commands.classify import demo_photo

            args.photo = demo_photo()
        command = ["classify", str(args.photo), "--threads", "1"]
    medians = summarize(measure(command, args.runs))
    total = sum(medians.values())
    print(f"`python -X importtime -m fixres_edge {' '.join(Path(c).name if '/' in c else c for c in command)}`, "
          f"self time per package, median of {args.runs} runs: {total:.0f} ms in all\n")
    print("| module (fixres_edge) or package | ms |\n|:---|---:|")
    for name, ms in list(medians.items())[:args.top]:
        print(f"| {name} | {ms:.1f} |")
    if args.json:
        args.json.write_text(json.dumps({"command": command, "runs": args.runs, "median_self_ms": medians}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
