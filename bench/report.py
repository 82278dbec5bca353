"""Report plumbing shared by the ``bench/*.py`` scripts: Markdown tables, targets, the JSON
result file, and the generated sections of ``bench/README.md``.

Lives beside the scripts, not in the installed package: only a clone has a README to refresh.
The scripts import it as ``report`` (Python puts a script's own folder first on ``sys.path``).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from fixres_edge.benchmark import result_filename, save_json


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub Markdown table (first column left-aligned, the others right-aligned)."""
    lines = ["| " + " | ".join(str(h) for h in header) + " |",
             "|" + "|".join(":---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def replace_section(text: str, name: str, body: str) -> str:
    """Replace what lies between ``<!-- name:begin -->`` and ``<!-- name:end -->`` (appended if absent)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    if begin in text and end in text:
        head, _, rest = text.partition(begin)
        _, _, tail = rest.partition(end)
        return head + block + tail
    return text.rstrip() + "\n\n" + block + "\n"


def target(name: str, value: float | None, limit: float, unit: str = "", lower_is_better: bool = True) -> dict:
    """One benchmark target: ``met`` is None when the value could not be measured."""
    met = None if value is None else (value <= limit if lower_is_better else value >= limit)
    return {"name": name, "value": None if value is None else round(float(value), 4), "limit": limit,
            "unit": unit, "met": met}


def target_rows(targets: Sequence[dict]) -> list[list[str]]:
    """Rows ``[name, measured, limit, verdict]`` of :func:`target` results, for :func:`markdown_table`."""
    return [[t["name"], "-" if t["value"] is None else f"{t['value']:g} {t['unit']}".strip(),
             f"<= {t['limit']:g} {t['unit']}".strip(), {True: "met", False: "MISSED", None: "n/a"}[t["met"]]]
            for t in targets]


def finish_script_report(report: dict, targets: list, started: float, kind: str,
                         render: Callable[[dict], str], *, out: str | os.PathLike | None, save: bool,
                         update_readme: bool, results_dir: Path, readme: Path, repo: Path) -> None:
    """Common ending of the ``bench/*.py`` scripts: targets, load and time in the report; print
    ``render(report)`` (the script's Markdown); save the JSON; refresh the script's README section."""
    report["targets"] = targets
    try:
        report["environment"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        report["environment"]["load_average_end"] = None
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    text = render(report)
    print(text)
    if save:
        path = save_json(report, out or results_dir / result_filename(kind))
        print(f"saved {path.relative_to(repo) if path.is_relative_to(repo) else path}", file=sys.stderr)
    if update_readme:
        readme.write_text(replace_section(readme.read_text(encoding="utf-8") if readme.exists() else "",
                                          kind, text), encoding="utf-8")
