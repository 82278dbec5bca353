"""``fixres-edge classify``: label photos with an ONNX classifier (the bundled one by default)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from fixres_edge.commands._model_options import add_model_options, build_classifier
from fixres_edge.commands._scale_column import SIZE_WIDTH, column_width, scale_cell, scale_title
from fixres_edge.constants import IMAGE_EXTENSIONS
from fixres_edge.errors import with_name

NAME = "classify"
HELP = "classify image files, directories, or globs (default: a demo photo), or a camera or video stream"
DEMO_PHOTO = "grace_hopper.jpg"
_GLOB_CHARS = set("*?[")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="image files, directories (their image files, sorted), or glob patterns; "
                             f"none: matplotlib's sample photo {DEMO_PHOTO}")
    parser.add_argument("--model", metavar="M", default=None,
                        help="ONNX model file, or 'int8' for the bundled int8 model (default: bundled fp32)")
    scale = parser.add_mutually_exclusive_group()
    add_model_options(parser, size_group=scale)
    scale.add_argument("--policy", metavar="FILE", default=None,
                       help="scale policy JSON (single size, cascade, or ensemble) from 'calibrate'")
    parser.add_argument("--topk", type=int, metavar="K", default=5, help="classes per image (default 5)")
    parser.add_argument("--threads", type=int, metavar="T", default=None,
                        help="threads for inference and preprocessing (default: all cores)")
    parser.add_argument("--full-decode", action="store_true",
                        help="decode JPEGs at full size (default: DCT-reduced as far as the size allows)")
    parser.add_argument("-r", "--recursive", action="store_true", help="also look in subdirectories")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    stream = parser.add_argument_group(
        "streams", "classify frames from a camera or a video file instead of image files; one line per "
                   "classified frame with the top-1 class and the rolling FPS and latency, then a summary; "
                   "stops at the end of the video, after --max-frames, or on Ctrl-C (exit code 130)")
    source = stream.add_mutually_exclusive_group()
    source.add_argument("--camera", type=int, metavar="N", default=None,
                        help="camera index (/dev/videoN on Linux), read with OpenCV")
    source.add_argument("--video", metavar="FILE", default=None,
                        help="video file (or stream URL) OpenCV can read")
    stream.add_argument("--every", type=int, metavar="K", default=None,
                        help="classify every K-th frame (default 1: all); the others are skipped undecoded")
    stream.add_argument("--max-frames", type=int, metavar="N", default=None,
                        help="stop after classifying N frames")
    stream.add_argument("--realtime", action="store_true",
                        help="--video only: read the file at its own frame rate, as a camera would deliver it")


def demo_photo() -> Path:
    """matplotlib's sample photo ``grace_hopper.jpg`` (matplotlib is part of the demo extra).

    Looked up in matplotlib's package folder without importing matplotlib: the import alone
    costs several times a whole classification. Other layouts ask matplotlib itself.
    """
    import importlib.util

    spec = importlib.util.find_spec("matplotlib")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / "mpl-data" / "sample_data" / DEMO_PHOTO
        if path.is_file():
            return path
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError("the demo photo comes with matplotlib: pip install fixres-edge[demo] "
                           "(or give an image path)") from None
    path = Path(matplotlib.get_data_path()) / "sample_data" / DEMO_PHOTO
    if not path.is_file():
        try:
            from matplotlib import cbook

            path = Path(cbook.get_sample_data(DEMO_PHOTO, asfileobj=False))
        except (ImportError, OSError, ValueError):
            pass
    if not path.is_file():
        raise FileNotFoundError(f"matplotlib's sample photo {DEMO_PHOTO} was not found (looked in {path.parent})")
    return path


def _is_image(path: Path) -> bool:
    # A dangling symlink with an image name is kept, so that it is reported rather than skipped.
    return path.suffix.lower() in IMAGE_EXTENSIONS and (path.is_file() or _dangling(path))


def _dangling(path: Path) -> bool:
    return path.is_symlink() and not path.exists()


def expand_paths(args: list[str], recursive: bool = False) -> list[tuple[str, str | None]]:
    """Expand PATH arguments into ``(path, error)`` items, in argument order.

    Files are kept as given (whatever their extension); a directory gives its image files sorted by
    name; a glob gives its matches sorted. An argument that yields nothing becomes one item with an
    error message, so the caller reports it like an unreadable file.
    """
    items: list[tuple[str, str | None]] = []
    for arg in args:
        path = Path(arg)
        if path.is_dir():
            found = path.rglob("*") if recursive else path.iterdir()
            files = sorted((p for p in found if _is_image(p)), key=lambda p: str(p))
            if not files:
                items.append((arg, f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in directory {arg}"))
            items.extend((str(p), f"{p}: broken symbolic link to {os.readlink(p)}" if _dangling(p) else None)
                         for p in files)
        elif path.exists():
            items.append((arg, None))
        elif _dangling(path):
            items.append((arg, f"{arg}: broken symbolic link to {os.readlink(arg)}"))
        elif _GLOB_CHARS & set(arg):
            import glob

            matches = sorted(m for m in glob.glob(arg, recursive=True) if os.path.isfile(m))
            if not matches:
                items.append((arg, f"no files match {arg}"))
            items.extend((m, None) for m in matches)
        else:
            items.append((arg, f"file not found: {arg}"))
    return items


def _table_header(path_width: int, label_width: int, scale_width: int = SIZE_WIDTH) -> str:
    return (f"{'path':<{path_width}}  {'rank':>4}  {'label':<{label_width}}  {'prob':>6}  "
            f"{scale_title(scale_width):>{scale_width}}  {'ms':>7}")


def _table_rows(prediction, path_width: int, label_width: int, shown_path: str | None = None,
                scale_width: int = SIZE_WIDTH) -> list[str]:
    # With variants (e.g. int8, then fp32 for uncertain photos) the scale cell says which one answered.
    scale = scale_cell(prediction)
    rows = []
    for rank, item in enumerate(prediction.top, start=1):
        first = rank == 1
        path = (shown_path or prediction.path) if first else ""
        cell = scale if first else ""
        ms = f"{prediction.timings_ms['total']:.1f}" if first else ""
        rows.append(f"{path:<{path_width}}  {rank:>4}  {item.label:<{label_width}}  {item.prob:>6.4f}  "
                    f"{cell:>{scale_width}}  {ms:>7}")
    return rows


def _json_record(prediction) -> dict:
    timings = {k: round(v, 3) for k, v in prediction.timings_ms.items()}
    record = {
        "path": prediction.path,
        "top": [{"index": t.index, "label": t.label, "prob": round(t.prob, 6)} for t in prediction.top],
        "size": prediction.size,
        "timings_ms": timings,
    }
    if len(prediction.scales) > 1 or len(prediction.per_scale) > 1:
        record["scales"] = [s.to_dict() for s in prediction.scales]
        record["per_scale"] = [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in p.items()}
                               for p in prediction.per_scale]
    return record


def _item_error(path: str, error: BaseException) -> str:
    """One line naming the file and the reason."""
    from fixres_edge.errors import one_line

    if isinstance(error, OSError) and error.strerror:
        # "[Errno 13] Permission denied: 'x.jpg'" -> "x.jpg: permission denied"
        return f"{error.filename if error.filename is not None else path}: {error.strerror.lower()}"
    return with_name(path, one_line(error))


def _check_stream_args(args: argparse.Namespace) -> bool:
    """True for a stream run; one-line errors for flags that do not fit together."""
    streaming = args.camera is not None or args.video is not None
    if streaming and args.paths:
        raise ValueError("give image paths or --camera/--video, not both")
    if not streaming:
        for flag, value in (("--every", args.every), ("--max-frames", args.max_frames)):
            if value is not None:
                raise ValueError(f"{flag} applies to streams only: add --camera N or --video FILE")
        if args.realtime:
            raise ValueError("--realtime applies to --video only")
        return False
    if args.camera is not None and args.camera < 0:
        raise ValueError(f"--camera must be a camera index >= 0, got {args.camera}")
    if args.realtime and args.video is None:
        raise ValueError("--realtime applies to --video only (a camera is real time already)")
    if args.every is not None and args.every < 1:
        raise ValueError(f"--every must be >= 1, got {args.every}")
    if args.max_frames is not None and args.max_frames < 1:
        raise ValueError(f"--max-frames must be >= 1, got {args.max_frames}")
    return True


def run_stream(args: argparse.Namespace, classifier) -> int:
    """``--camera N`` / ``--video FILE``: see :mod:`fixres_edge.stream`."""
    from fixres_edge.commands._stream_output import print_stream
    from fixres_edge.stream import StreamRun, StreamSource, open_capture

    source = StreamSource.camera(args.camera) if args.camera is not None else StreamSource.video(args.video)
    capture = open_capture(source)
    pace = None
    if args.realtime:
        import cv2

        fps = capture.get(cv2.CAP_PROP_FPS)
        pace = fps if fps and 0 < fps < 1000 else None
    run = StreamRun(classifier, capture, name=source.name, every=args.every or 1, max_frames=args.max_frames,
                    topk=args.topk, pace_fps=pace, is_camera=source.is_camera)
    return print_stream(run, json_lines=args.json, debug=bool(getattr(args, "debug", False)))


def run(args: argparse.Namespace) -> int:
    if args.topk < 1:
        raise ValueError(f"--topk must be >= 1, got {args.topk}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    streaming = _check_stream_args(args)
    if streaming:
        items = []
    else:
        items = expand_paths(args.paths, args.recursive) if args.paths else [(str(demo_photo()), None)]
    classifier = build_classifier(args, policy=args.policy, threads=args.threads,
                                  reduced_decode=not args.full_decode)
    # ORT's first-run setup would otherwise be billed to the first file; one photo (on-device
    # scripts call the CLI once per photo) is faster without the extra inference.
    if streaming or len(items) > 1:
        classifier.warmup()
    if streaming:
        return run_stream(args, classifier)
    from fixres_edge._native_logs import native_logs_silenced

    debug = bool(getattr(args, "debug", False))
    # Each bad file gets one line of ours; OpenCV's and the codecs' own lines would come beside it.
    with native_logs_silenced(not debug):
        return _classify_files(args, classifier, items, debug)


def _classify_files(args: argparse.Namespace, classifier, items: list[tuple[str, str | None]], debug: bool) -> int:
    from fixres_edge.errors import ITEM_ERRORS

    out = sys.stdout
    # The demo photo lives deep in site-packages: show its name only.
    shown = {items[0][0]: DEMO_PHOTO} if not args.paths else {}
    path_width = max([len(shown.get(p, p)) for p, _ in items] + [4])
    label_width = min(max((len(name) for name in classifier.labels), default=5), 32)
    scale_width = column_width(classifier.policy)
    header_done = False
    failed = 0
    for path, problem in items:
        prediction = None
        if problem is None:
            try:
                prediction = classifier.predict(path, topk=args.topk)
            except ITEM_ERRORS as error:
                if debug:
                    import traceback

                    traceback.print_exc(file=sys.stderr)
                problem = _item_error(path, error)
        if prediction is None:
            failed += 1
            if args.json:
                print(json.dumps({"path": path, "error": problem}), file=out, flush=True)
            else:
                print(f"fixres-edge classify: error: {with_name(path, problem)}", file=sys.stderr, flush=True)
            continue
        if args.json:
            print(json.dumps(_json_record(prediction)), file=out, flush=True)
            continue
        if not header_done:
            print(_table_header(path_width, label_width, scale_width), file=out)
            header_done = True
        print("\n".join(_table_rows(prediction, path_width, label_width, shown.get(path), scale_width)), file=out,
              flush=True)
    return 1 if failed else 0
