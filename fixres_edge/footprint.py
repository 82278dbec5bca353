"""The deployed footprint: wall time and peak RSS of one-shot processes, next to a plain baseline.

On a device, scripts often call ``fixres-edge classify PHOTO`` once per photo, so the whole
process counts: interpreter start, imports, model load, kernels, one prediction, exit. This
module runs such processes and measures each one from outside, and carries the baseline it is
compared with: the dozen lines a user would write with ONNX Runtime and OpenCV alone
(:data:`BASELINE_SCRIPT`).

How a process is measured (:func:`measure`): a small stdlib-only *launcher* process starts the
command, times it with ``time.perf_counter`` from before the spawn to after the exit, and reads
its peak RSS from ``getrusage(RUSAGE_CHILDREN).ru_maxrss``. The launcher sits in between
because Linux carries the spawning process's own peak RSS into the child's ``ru_maxrss`` across
``vfork`` + ``exec``: measured from a big process (``fixres-edge bench`` with models loaded)
every child would look as big as its parent. The launcher's own peak (``VmHWM`` on Linux, about
10 MB) is the floor below which nothing can be measured; it is reported as ``launcher_rss_mb``.

Nothing here imports numpy, numba, OpenCV or ONNX Runtime: the measuring process stays small.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

#: The hand-written baseline, run as ``python -c BASELINE_SCRIPT PHOTO MODEL LABELS THREADS``.
#: An inline script rather than a module of this package, so that the baseline process never
#: imports fixres_edge (whose import would be billed to the baseline) and needs no file of its
#: own in the install; ``bench/baseline_ort_opencv.py`` is the same code as a standalone script.
#: torchvision geometry (short side to int(224 / 0.875), center crop 224) with OpenCV's
#: INTER_LINEAR, and the bundled model's TF-style normalization (x - 127) / 128.
BASELINE_SCRIPT = r"""
import sys
import cv2
import numpy as np
import onnxruntime as ort

photo, model, labels, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
options = ort.SessionOptions()
options.intra_op_num_threads = threads
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
names = open(labels, encoding="utf-8").read().splitlines()
image = cv2.imread(photo)
h, w = image.shape[:2]
short = int(224 / 0.875)
new_w, new_h = (int(short * w / h), short) if h <= w else (short, int(short * h / w))
image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
top, left = round((new_h - 224) / 2), round((new_w - 224) / 2)
blob = cv2.dnn.blobFromImage(image[top:top + 224, left:left + 224], 1 / 128, mean=(127, 127, 127), swapRB=True)
logits = session.run(None, {session.get_inputs()[0].name: blob})[0][0]
probs = np.exp(logits - logits.max())
probs /= probs.sum()
for i in np.argsort(probs)[::-1][:5]:
    print(f"{names[i]}\t{probs[i]:.4f}")
"""

#: A fresh process that imports fixres_edge and preprocesses one 500x375 frame; prints JSON with
#: the times measured inside (``import_s``, ``first_frame_s``) and the kernel path it ended on.
FIRST_FRAME_SCRIPT = r"""
import time
t0 = time.perf_counter()
import numpy as np
from fixres_edge import Preprocessor
t1 = time.perf_counter()
pre = Preprocessor(size=224, threads=1)
frame = np.random.default_rng(0).integers(0, 256, (375, 500, 3), dtype=np.uint8)
t2 = time.perf_counter()
pre(frame)
t3 = time.perf_counter()
import json, sys
from fixres_edge import _jit
backend = getattr(_jit, "kernel_backend", None)
print(json.dumps({"import_s": t1 - t0, "first_frame_s": t3 - t2, "import_and_first_frame_s": t1 - t0 + t3 - t2,
                  "kernel_backend": backend() if backend is not None else None,
                  "numba_imported": "numba" in sys.modules, "llvmlite_imported": "llvmlite" in sys.modules}))
"""

_LAUNCHER = r"""
import json, subprocess, sys, time
try:
    import resource
except ImportError:
    resource = None
timeout = float(sys.argv[1])
t0 = time.perf_counter()
try:
    done = subprocess.run(sys.argv[2:], capture_output=True, text=True, timeout=timeout)
    code, out, err = done.returncode, done.stdout, done.stderr
except subprocess.TimeoutExpired as stop:
    code, out, err = -1, "", f"timed out after {timeout:g} s"
wall = time.perf_counter() - t0
peak = own = cpu = None
if resource is not None:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    unit = 1 << 20 if sys.platform == "darwin" else 1 << 10
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak, cpu = child.ru_maxrss / unit, child.ru_utime + child.ru_stime
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / unit
try:
    # The floor a child's ru_maxrss cannot go below is this process's own peak, VmHWM on Linux:
    # its ru_maxrss holds the peak of whoever started it.
    with open("/proc/self/status") as status:
        own = next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:"))
except (OSError, StopIteration, ValueError):
    pass
json.dump({"returncode": code, "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak, "launcher_rss_mb": own,
           "stdout": out, "stderr": err}, sys.stdout)
"""


@dataclass(frozen=True)
class ProcessRun:
    """One measured process.

    ``cpu_s`` is user + system CPU time (steadier than wall time on a loaded machine, but blind to
    waiting); it and ``peak_rss_mb`` are None where the OS has no ``getrusage`` (Windows).
    """

    returncode: int
    wall_s: float
    cpu_s: float | None
    peak_rss_mb: float | None
    launcher_rss_mb: float | None
    stdout: str
    stderr: str

    def check(self, what: str) -> "ProcessRun":
        """Itself, or ``RuntimeError`` naming ``what`` and the last line of stderr if it failed."""
        if self.returncode != 0:
            tail = (self.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"{what} failed (exit {self.returncode}): {tail}")
        return self


def measure(argv: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 600.0) -> ProcessRun:
    """Run ``argv`` in a fresh process; its wall time and peak RSS, measured from a small launcher.

    Parameters
    ----------
    argv : sequence of str
        The command (``argv[0]`` an executable path or a name on ``PATH``).
    env : mapping, optional
        The child's whole environment (default: :func:`deployed_env`).
    timeout : float
        Seconds before the child is killed (the run then has ``returncode == -1``).

    Returns
    -------
    ProcessRun
    """
    done = subprocess.run([sys.executable, "-c", _LAUNCHER, str(float(timeout)), *argv], capture_output=True,
                          text=True, env=dict(deployed_env() if env is None else env), timeout=timeout + 60)
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the measuring launcher failed (exit {done.returncode}): {tail}") from None
    return ProcessRun(**result)


# ---------------------------------------------------------------------------------------- commands
#: ``classify`` arguments that run what the baseline script runs: the bundled fp32 model at 224 (the
#: default policy may run the int8 model, which would compare two different models).
SAME_AS_BASELINE = ("--model", "fp32", "--size", "224")


def classify_command(photo: str | os.PathLike, threads: int = 1, extra: Sequence[str] = ()) -> list[str]:
    """``fixres-edge classify PHOTO --threads N``: the installed console script when it sits next
    to this interpreter (what users run), else ``python -m fixres_edge``."""
    script = Path(sys.executable).with_name("fixres-edge")
    launcher = [str(script)] if script.is_file() else [sys.executable, "-m", "fixres_edge"]
    return [*launcher, "classify", str(photo), "--threads", str(int(threads)), *extra]


def baseline_command(photo: str | os.PathLike, threads: int = 1, model: str | os.PathLike | None = None
                     ) -> list[str]:
    """The :data:`BASELINE_SCRIPT` process on ``photo`` with the bundled fp32 model (or ``model``
    and the bundled labels)."""
    from fixres_edge.model import bundled_model_path

    bundled = bundled_model_path()
    labels = bundled.with_name("imagenet_labels.txt")
    return [sys.executable, "-c", BASELINE_SCRIPT, str(photo), str(model or bundled), str(labels), str(int(threads))]


def first_frame_command() -> list[str]:
    """The :data:`FIRST_FRAME_SCRIPT` process."""
    return [sys.executable, "-c", FIRST_FRAME_SCRIPT]


def deployed_env() -> dict[str, str]:
    """This environment as a deployed process has it: bytecode caches on.

    ``pip install`` compiles every module to bytecode; a process started with
    ``PYTHONDONTWRITEBYTECODE`` set (as some CI and sandbox shells do) would instead compile the
    package from source on every start and bill that to the measurement.
    """
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def empty_cache_env(directory: str | os.PathLike) -> dict[str, str]:
    """:func:`deployed_env` with every kernel cache pointed into ``directory`` (empty: a first run
    after install): ``NUMBA_CACHE_DIR`` and ``XDG_CACHE_HOME`` (``FIXRES_EDGE_CACHE_DIR`` removed)."""
    directory = Path(directory)
    env = {k: v for k, v in deployed_env().items() if k != "FIXRES_EDGE_CACHE_DIR"}
    return dict(env, NUMBA_CACHE_DIR=str(directory / "numba"), XDG_CACHE_HOME=str(directory / "xdg"))


# ---------------------------------------------------------------------------------------- runs
def alternate(commands: Mapping[str, Sequence[str]], runs: int, warmup: int = 1,
              env: Mapping[str, str] | None = None, timeout: float = 600.0) -> dict[str, list[ProcessRun]]:
    """Run every command ``warmup + runs`` times, one of each per round, the order rotating from
    round to round (so neither always runs first, on a cache the other just warmed); the first
    ``warmup`` rounds are dropped.

    Returns
    -------
    dict of name -> list of ProcessRun (``runs`` each, in round order)

    Raises
    ------
    RuntimeError
        When a process exits with a non-zero code (one line naming the command).
    """
    for name, value in (("runs", runs), ("warmup", warmup)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "runs" else 0):
            raise ValueError(f"{name} must be an int >= {1 if name == 'runs' else 0}, got {value!r}")
    names = list(commands)
    kept: dict[str, list[ProcessRun]] = {name: [] for name in names}
    for r in range(-warmup, runs):
        for j in range(len(names)):
            name = names[(r + j) % len(names)]
            run = measure(commands[name], env=env, timeout=timeout).check(name)
            if r >= 0:
                kept[name].append(run)
    return kept


def summarize(runs: Sequence[ProcessRun]) -> dict:
    """Median, min and max of wall and CPU time (s) and peak RSS (MB) over runs, and their count."""
    walls = [r.wall_s for r in runs]
    cpu = [r.cpu_s for r in runs if r.cpu_s is not None]
    rss = [r.peak_rss_mb for r in runs if r.peak_rss_mb is not None]

    def stats(values: list[float], digits: int) -> dict | None:
        if not values:
            return None
        return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
                "max": round(max(values), digits)}

    return {"n": len(runs), "wall_s": stats(walls, 4), "cpu_s": stats(cpu, 4), "peak_rss_mb": stats(rss, 1)}


def ratios(summary: Mapping[str, dict], numerator: str, denominator: str) -> dict:
    """``numerator / denominator`` of the median wall time, CPU time and peak RSS."""
    out = {}
    for key in ("wall_s", "cpu_s", "peak_rss_mb"):
        a, b = summary[numerator][key], summary[denominator][key]
        out[key] = round(a["median"] / b["median"], 4) if a and b and b["median"] else None
    return out


def first_frame(env: Mapping[str, str] | None = None, timeout: float = 600.0) -> dict:
    """One :data:`FIRST_FRAME_SCRIPT` process: the times it measured inside, its whole wall time
    (``process_s``) and peak RSS, the kernel path."""
    run = measure(first_frame_command(), env=env, timeout=timeout).check("import + first frame")
    inner = json.loads(run.stdout.strip().splitlines()[-1])
    return {**{k: (round(v, 4) if isinstance(v, float) else v) for k, v in inner.items()},
            "process_s": round(run.wall_s, 4), "process_cpu_s": _s(run.cpu_s), "peak_rss_mb": _mb(run.peak_rss_mb)}


def first_frames(runs: int = 3, env: Mapping[str, str] | None = None) -> dict:
    """:func:`first_frame` ``runs`` times (after one discarded run that fills the caches); the
    median of every number, the kernel path of the last run, and ``n``."""
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise ValueError(f"runs must be an int >= 1, got {runs!r}")
    first_frame(env=env)
    measured = [first_frame(env=env) for _ in range(runs)]
    out = {key: (round(statistics.median(r[key] for r in measured), 4)
                 if isinstance(value, float) and not isinstance(value, bool) else value)
           for key, value in measured[-1].items()}
    return {**out, "n": runs}


def first_run_after_install(photo: str | os.PathLike, threads: int = 1, timeout: float = 900.0) -> dict:
    """``classify PHOTO`` and the first-frame process, each with every kernel cache empty (a new
    temporary directory each): what the first run after ``pip install`` costs."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="fixres_edge-empty-cache-") as empty:
        run = measure(classify_command(photo, threads, SAME_AS_BASELINE), env=empty_cache_env(empty),
                      timeout=timeout).check("classify")
        out["classify"] = {"wall_s": round(run.wall_s, 4), "cpu_s": _s(run.cpu_s), "peak_rss_mb": _mb(run.peak_rss_mb)}
    with tempfile.TemporaryDirectory(prefix="fixres_edge-empty-cache-") as empty:
        out["first_frame"] = first_frame(env=empty_cache_env(empty), timeout=timeout)
    return out


def deployed(photo: str | os.PathLike, runs: int = 7, warmup: int = 1, threads: int = 1,
             baseline: Sequence[str] | None = None, classify_args: Sequence[str] = SAME_AS_BASELINE) -> dict:
    """``fixres-edge classify PHOTO --threads N`` (with ``classify_args``) against the baseline,
    alternating (:func:`alternate`); a JSON-ready dict.

    ``baseline`` is the baseline's command (default: :func:`baseline_command`).
    """
    commands = {"fixres_edge": classify_command(photo, threads, classify_args),
                "baseline": list(baseline) if baseline is not None else baseline_command(photo, threads)}
    measured = alternate(commands, runs=runs, warmup=warmup)
    summary = {name: summarize(values) for name, values in measured.items()}
    launcher = [r.launcher_rss_mb for values in measured.values() for r in values if r.launcher_rss_mb is not None]
    return {
        "photo": Path(photo).name,
        "threads": threads,
        "runs": runs,
        "warmup_runs": warmup,
        "commands": {name: _shown(argv) for name, argv in commands.items()},
        "processes": summary,
        "ratio_fixres_to_baseline": ratios(summary, "fixres_edge", "baseline"),
        "samples": {name: [{"wall_s": round(r.wall_s, 4), "cpu_s": _s(r.cpu_s), "peak_rss_mb": _mb(r.peak_rss_mb)}
                             for r in values]
                    for name, values in measured.items()},
        "launcher_rss_mb": round(max(launcher), 1) if launcher else None,
    }


def _shown(argv: Sequence[str]) -> str:
    """A command as a person would type it (the inline baseline script abbreviated)."""
    parts = []
    for i, arg in enumerate(argv):
        if i and argv[i - 1] == "-c":
            parts.append("<baseline script>" if arg is BASELINE_SCRIPT else "<script>")
        elif os.sep in arg:
            parts.append(Path(arg).name)
        else:
            parts.append(arg)
    return " ".join(parts)



def _mb(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _s(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
