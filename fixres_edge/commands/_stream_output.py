"""``fixres-edge classify --camera N / --video FILE``: print a stream run and choose the exit code.

The library part (:class:`fixres_edge.stream.StreamRun`) yields results; this module prints one
line (or one JSON object) per classified frame, the summary, and the errors.
"""
from __future__ import annotations

import json
import sys
import traceback
from typing import TextIO

from fixres_edge.commands._scale_column import SIZE_WIDTH, column_width, scale_cell, scale_title

# As the shell reports a Ctrl-C'd program (128 + SIGINT), so that a script looping over videos stops too.
EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130

_PROGRAM = "fixres-edge classify"


def _header(label_width: int, scale_width: int = SIZE_WIDTH) -> str:
    return (f"{'frame':>7}  {'label':<{label_width}}  {'prob':>6}  {scale_title(scale_width):>{scale_width}}  "
            f"{'fps':>6}  {'latency ms':>10}")


def _row(result, label_width: int, scale_width: int = SIZE_WIDTH) -> str:
    best = result.prediction.top[0]
    return (f"{result.index:>7}  {best.label[:label_width]:<{label_width}}  {best.prob:>6.4f}  "
            f"{scale_cell(result.prediction):>{scale_width}}  {result.fps:>6.1f}  {result.latency_ms:>10.1f}")


def _summary_line(summary) -> str:
    lat = summary.latency_ms
    return (f"{summary.source}: {summary.stopped}; {summary.frames_classified} of {summary.frames_read} frames "
            f"classified in {summary.elapsed_s:.2f} s ({summary.fps:.1f} fps), latency mean {lat['mean']:.1f} ms, "
            f"p90 {lat['p90']:.1f} ms" + (f", {summary.frames_failed} failed" if summary.frames_failed else ""))


def exit_code(summary) -> int:
    """0 at the end of the stream or ``--max-frames``; 1 when a frame failed or a camera stopped;
    130 after Ctrl-C."""
    from fixres_edge.stream import STOP_INTERRUPTED

    if summary.stopped == STOP_INTERRUPTED:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if summary.failed else EXIT_OK


def print_stream(run, *, json_lines: bool = False, out: TextIO | None = None, err: TextIO | None = None,
                 debug: bool = False) -> int:
    """Print every result of ``run`` (a :class:`fixres_edge.stream.StreamRun`) as it comes, then the
    summary; return the exit code (:func:`exit_code`)."""
    from fixres_edge.stream import STOP_CAMERA_FAILED

    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    label_width = min(max((len(label) for label in run.classifier.labels), default=5), 32)
    scale_width = column_width(run.classifier.policy)
    header_done = False
    with run:
        for result in run:
            if not result.ok:
                if debug and result.exception is not None:
                    traceback.print_exception(result.exception, file=err)
                if json_lines:
                    print(json.dumps(result.to_dict()), file=out, flush=True)
                else:
                    print(f"{_PROGRAM}: error: {run.name} frame {result.index}: {result.error}", file=err, flush=True)
            elif json_lines:
                print(json.dumps(result.to_dict()), file=out, flush=True)
            else:
                if not header_done:
                    print(_header(label_width, scale_width), file=out)
                    header_done = True
                print(_row(result, label_width, scale_width), file=out, flush=True)
    summary = run.summary()
    if json_lines:
        print(json.dumps({"summary": summary.to_dict()}), file=out, flush=True)
    else:
        print(_summary_line(summary), file=out, flush=True)
    if summary.stopped == STOP_CAMERA_FAILED:
        detail = "delivered no frame" if summary.frames_read == 0 else f"stopped after {summary.frames_read} frames"
        print(f"{_PROGRAM}: error: {run.name} {detail}", file=err, flush=True)
    return exit_code(summary)
