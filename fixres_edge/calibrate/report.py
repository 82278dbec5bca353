"""Presentation of a calibration: the Pareto table as text, the whole report, and the optional plot.

Functions here return text (or write the PNG they are asked for); ``fixres-edge calibrate`` prints it.
matplotlib is imported only by :func:`plot_pareto`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from fixres_edge.calibrate.search import Candidate, SearchResult
from fixres_edge.evaluate import format_percent
from fixres_edge.policy import Scale, variant_text

if TYPE_CHECKING:
    from fixres_edge.calibrate import Calibration


def scales_text(scales: Sequence[Scale], kind: str, all_scales: Sequence[Scale]) -> str:
    """Compact scale list: sizes only when every scale shares one crop_pct, crop_pcts only when
    they share one size; each prefixed by its variant (``int8:256``) when the scales run several."""
    one_crop = len({s.crop_pct for s in all_scales}) == 1
    one_size = len({s.size for s in all_scales}) == 1
    several = len({s.variant for s in all_scales}) > 1

    def one(s: Scale) -> str:
        text = str(s.size) if one_crop else (f"{s.crop_pct:g}" if one_size else f"{s.size}@{s.crop_pct:g}")
        return f"{variant_text(s.variant)}:{text}" if several and s.variant is not None else text

    return {"cascade": ">", "ensemble": "+"}.get(kind, "").join(one(s) for s in scales)


def format_table(result: SearchResult, rows: Sequence[Candidate], all_scales: Sequence[Scale]) -> list[str]:
    """Text table: policy, scales, threshold, top-1 (CV), top-5 (CV), expected ms, relative cost."""
    one_size = len({s.size for s in all_scales}) == 1 and len(all_scales) > 1
    head = "crop_pcts" if one_size else "sizes"
    wide = any(c.confidence != "max" for c in rows)
    width = 24 if wide else 16
    col = max([18] + [len(scales_text(c.scales, c.kind, all_scales)) for c in rows])
    lines = [f"{'policy':<{width}} {head:<{col}} {'thr':>5} {'top-1 (CV)':>10} {'top-5':>6} {'esc.':>5} "
             f"{'exp. ms':>8} {'rel.':>6}"]
    for c in rows:
        name = c.kind
        if c.kind == "cascade":
            name += f" ({c.combine}" + (f", {c.confidence})" if c.confidence != "max" else ")")
        thr = f"{c.threshold:.3g}" if c.threshold is not None else "-"
        mark = "  <- chosen" if c is result.chosen else ""
        lines.append(f"{name:<{width}} {scales_text(c.scales, c.kind, all_scales):<{col}} {thr:>5} "
                     f"{100 * c.top1_cv:>9.1f}% {100 * c.top5_cv:>5.1f}% "
                     f"{(f'{100 * c.escalated:.0f}%' if c.kind == 'cascade' else '-'):>5} "
                     f"{c.cost_cv_ms:>8.2f} {c.cost_cv_ms / result.train_cost_ms:>5.2f}x{mark}")
    return lines


def plot_pareto(result: SearchResult, path: str | os.PathLike, title: str | None = None) -> Path:
    """Draw every candidate (single, cascade, ensemble marked apart), the Pareto front, the budget,
    and the chosen policy into a PNG.

    Raises
    ------
    RuntimeError
        When matplotlib is not installed (the ``plot`` extra).
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("--plot needs matplotlib: pip install 'fixres-edge[plot]'") from None
    ref = result.train_cost_ms
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    styles = {"single": ("o", "tab:blue"), "cascade": ("^", "tab:orange"), "ensemble": ("s", "tab:green")}
    for kind, (marker, color) in styles.items():
        pts = [c for c in result.candidates if c.kind == kind]
        if pts:
            ax.scatter([c.cost_cv_ms / ref for c in pts], [100 * c.top1_cv for c in pts], marker=marker,
                       color=color, alpha=0.35 if kind == "cascade" else 0.8, s=22, label=kind)
    front = result.pareto
    ax.step([c.cost_cv_ms / ref for c in front], [100 * c.top1_cv for c in front], where="post", color="black",
            linewidth=1, label="Pareto front")
    all_scales = sorted({s for c in result.candidates for s in c.scales})
    for c in result.candidates:
        if c.kind == "single":
            ax.annotate(scales_text(c.scales, c.kind, all_scales), (c.cost_cv_ms / ref, 100 * c.top1_cv),
                        textcoords="offset points", xytext=(4, -10), fontsize=8)
    ch = result.chosen
    ax.scatter([ch.cost_cv_ms / ref], [100 * ch.top1_cv], marker="*", s=180, color="red", zorder=5,
               label=f"chosen: {ch.label}" + (f" @ {ch.threshold:g}" if ch.threshold is not None else ""))
    ax.axvline(result.budget_ms / ref, color="red", linestyle=":", linewidth=1, label="budget")
    ax.set_xlabel(f"expected cost relative to {result.train_scale} ({ref:.2f} ms)")
    ax.set_ylabel(f"top-1 % (cross-validated, n={ch.n})")
    ax.set_title(title or "FixRes scale policies")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def report_text(calibration: "Calibration", *, show_all: bool = False, total_s: float | None = None,
                policy_path: str | None = None) -> str:
    """The human report of a calibration: what was measured, the table (the Pareto front, or every
    candidate with ``show_all``; the chosen policy always), the choice and the best single scale."""
    s = calibration.search
    scores, latency = calibration.scores, calibration.latency
    repeats = next(iter(latency.values())).repeats if latency else 0
    per_scale = ", ".join(f"{k} {v.cost:.2f}" for k, v in sorted(latency.items()))
    lines = [f"model {calibration.policy.model}, {scores.n} images, scales {', '.join(map(str, scores.scales))}",
             f"latency (ms per scale run; medians of {repeats} interleaved rounds, paired against "
             f"{s.train_scale}; {calibration.device}): {per_scale}",
             f"budget {s.budget_ms:.2f} ms = {s.budget_ms / s.train_cost_ms:.2f}x {s.train_scale}; "
             f"top-1 cross-validated ({s.cv}); {len(s.candidates)} candidates", ""]
    rows = sorted(s.candidates, key=lambda c: c.cost_cv_ms) if show_all else list(s.pareto)
    if s.chosen not in rows:
        rows = sorted([*rows, s.chosen], key=lambda c: c.cost_cv_ms)
    lines += format_table(s, rows, scores.scales) + [""]
    c, best = s.chosen, s.best_single
    lines.append(f"chosen   {c.label}" + (f", threshold {c.threshold:g}" if c.threshold is not None else "")
                 + f": top-1 {format_percent(c.top1_cv)} cross-validated ({format_percent(c.top1)} on all "
                 f"images), {c.cost_ms:.2f} ms = {c.cost_ms / s.train_cost_ms:.2f}x {s.train_scale}")
    if s.selection_cv.get("top1") is not None:
        lines.append(f"         the whole choice redone on each half and scored on the other: top-1 "
                     f"{format_percent(s.selection_cv['top1'])}")
    lines.append(f"best single {', '.join(map(str, best.scales))}: top-1 {format_percent(best.top1)}, "
                 f"{best.cost_ms / s.train_cost_ms:.2f}x")
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in calibration.seconds.items())
    lines.append(f"time     {total_s:.1f} s ({timing})" if total_s is not None else f"time     {timing}")
    lines.append(f"policy   written to {policy_path}" if policy_path else "policy   not written (use --out FILE)")
    return "\n".join(lines)
