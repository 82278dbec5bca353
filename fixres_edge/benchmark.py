"""Benchmark building blocks: an interleaved timing harness, the baselines, frames, and the JSON result file.

Used by ``fixres-edge bench`` and by the scripts under ``bench/``. Rules every measurement here
follows (and why):

* **Interleaved.** Every method runs once per round, in an order that rotates from round to
  round, so that a slow minute on a shared or throttling machine hurts all methods alike and no
  method always runs right after the same neighbour (caches, turbo state).
* **Warm-up excluded, medians reported.** The first rounds (JIT loading, first-touch page faults,
  Pillow's lazy imports) are dropped; p50 is the headline, p90/p99 show the tail.
* **Threads pinned.** fixres_edge gets ``Preprocessor(threads=n)``, OpenCV ``cv2.setNumThreads(n)``
  (restored afterwards), ONNX Runtime ``intra_op_num_threads=n``. Pillow is single-threaded.
* **Same work.** Every baseline produces what the fixres_edge kernel produces: the
  ``(1, 3, h, w)`` float32 RGB tensor ``(x / 255 - mean) / std`` of torchvision's
  ``Resize(int(size / crop_pct)) + CenterCrop(size)``, into a buffer preallocated once.
* **Overhead measured.** :func:`harness_overhead_ns` times an empty call through the same loop.

Nothing heavy happens at import: OpenCV, Pillow, numba and ONNX Runtime are imported when used.
"""
from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Sequence

import numpy as np

from fixres_edge import geometry
from fixres_edge.board import describe_board
from fixres_edge.constants import IMAGENET_MEAN, IMAGENET_STD
# The timing harness lives in fixres_edge.timing; re-exported for the bench/ scripts (bm.interleaved).
from fixres_edge.timing import Stats, harness_overhead_ns, interleaved  # noqa: F401

#: Frames ``fixres-edge bench`` generates when given no images: a web photo, a 1080p video
#: frame, and the Raspberry Pi HQ camera's full 12.3-megapixel still (``(height, width)``).
DEFAULT_FRAMES = ((375, 500), (1080, 1920), (3040, 4056))

SCHEMA = "fixres_edge.bench/1"


# ---------------------------------------------------------------------------------- harness
@contextmanager
def opencv_threads(n: int | None):
    """Run OpenCV on ``n`` threads inside the block (None: leave it as it is); restored afterwards."""
    import cv2

    previous = cv2.getNumThreads()
    if n is not None:
        cv2.setNumThreads(int(n))
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


def all_cores() -> int:
    """CPUs this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def thread_settings(requested: Sequence[int] | None) -> list[int]:
    """``requested`` deduplicated in order, or ``[1, all cores]`` (just ``[1]`` on one core)."""
    values = list(requested) if requested else [1, all_cores()]
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"thread counts must be positive ints, got {value!r}")
    return list(dict.fromkeys(values))


# ---------------------------------------------------------------------------------- baselines
class _Target:
    """Shared set-up of the baselines: geometry cache, normalization constants, output buffer."""

    def __init__(self, size: int = 224, crop_pct: float = 0.875, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        self.size = (int(size), int(size))
        self.crop_pct = float(crop_pct)
        mean = np.asarray(mean, np.float64).reshape(-1)
        std = np.asarray(std, np.float64).reshape(-1)
        if mean.size == 1:
            mean = np.repeat(mean, 3)
        if std.size == 1:
            std = np.repeat(std, 3)
        self.mean = mean
        self.std = std
        # (x / 255 - mean) / std == x * scale + bias, per RGB channel.
        self.scale = (1.0 / (255.0 * std)).astype(np.float32)
        self.bias = (-mean / std).astype(np.float32)
        self.out = np.empty((1, 3, *self.size), np.float32)
        self._plans: dict[tuple[int, int], geometry.ResizeCrop] = {}

    def plan(self, h: int, w: int) -> geometry.ResizeCrop:
        g = self._plans.get((h, w))
        if g is None:
            g = self._plans[(h, w)] = geometry.plan_resize_crop(h, w, self.size, self.crop_pct)
        return g

    def _normalize_in_place(self, out: np.ndarray) -> None:
        # One multiply-add per channel plane: contiguous inner loops, no broadcasting over a
        # trailing axis of 3 (the slow part of the naive numpy pipeline).
        for c in range(3):
            plane = out[c]
            plane *= self.scale[c]
            plane += self.bias[c]


class OpenCVPipeline(_Target):
    """The best plain OpenCV + numpy pipeline.

    ``cv2.resize`` (into a reused buffer) to the full resized size, a crop view, one strided
    float32 copy that also flips BGR to RGB and transposes to CHW, then an in-place per-channel
    multiply-add. ``interpolation`` is an OpenCV flag (``cv2.INTER_LINEAR`` by default: not
    antialiased; ``cv2.INTER_AREA`` is OpenCV's usual choice for large downscales).

    Calling it with a BGR uint8 ``(H, W, 3)`` image returns ``(1, 3, h, w)`` float32 (its own buffer).
    """

    name = "opencv"

    def __init__(self, size: int = 224, crop_pct: float = 0.875, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 interpolation: int | None = None):
        super().__init__(size, crop_pct, mean, std)
        import cv2

        self._cv2 = cv2
        self.interpolation = cv2.INTER_LINEAR if interpolation is None else interpolation
        self._resized: dict[tuple[int, int], np.ndarray] = {}

    def resize_crop(self, image: np.ndarray) -> np.ndarray:
        """The resized BGR crop ``(h, w, 3)`` uint8 (a view into a reused buffer)."""
        g = self.plan(image.shape[0], image.shape[1])
        buf = self._resized.get((g.resized_h, g.resized_w))
        if buf is None:
            buf = self._resized[(g.resized_h, g.resized_w)] = np.empty((g.resized_h, g.resized_w, 3), np.uint8)
        self._cv2.resize(image, (g.resized_w, g.resized_h), dst=buf, interpolation=self.interpolation)
        return buf[g.top:g.top + g.out_h, g.left:g.left + g.out_w]

    def __call__(self, image: np.ndarray) -> np.ndarray:
        crop = self.resize_crop(image)
        out = self.out[0]
        np.copyto(out, crop[:, :, ::-1].transpose(2, 0, 1), casting="unsafe")
        self._normalize_in_place(out)
        return self.out


class BlobPipeline(OpenCVPipeline):
    """Resize + crop as :class:`OpenCVPipeline`, then ``cv2.dnn.blobFromImageWithParams``
    (channel swap, mean, per-channel scale and the NCHW layout in one OpenCV call).

    :func:`blob_available` tells whether the installed OpenCV has it (4.8+).
    """

    name = "blob"

    def __init__(self, size: int = 224, crop_pct: float = 0.875, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 interpolation: int | None = None):
        super().__init__(size, crop_pct, mean, std, interpolation)
        cv2 = self._cv2
        if not blob_available():
            raise RuntimeError(f"cv2.dnn.blobFromImageWithParams needs OpenCV >= 4.8, found {cv2.__version__}")
        params = cv2.dnn.Image2BlobParams()
        # blobFromImageWithParams computes (x - mean) * scalefactor, in 0-255 units; with
        # swapRB the values are given in the output (RGB) order.
        params.scalefactor = tuple(float(s) for s in self.scale) + (0.0,)
        params.mean = tuple(float(m) * 255.0 for m in self.mean) + (0.0,)
        params.size = (self.size[1], self.size[0])
        params.swapRB = True
        params.ddepth = cv2.CV_32F
        # OpenCV 5 moved the layout constants from cv2.dnn to cv2.
        layout = getattr(cv2, "DNN_LAYOUT_NCHW", None)
        params.datalayout = cv2.dnn.DNN_LAYOUT_NCHW if layout is None else layout
        self.params = params

    def __call__(self, image: np.ndarray) -> np.ndarray:
        crop = self.resize_crop(image)
        result = self._cv2.dnn.blobFromImageWithParams(crop, self.out, self.params)
        return result


def blob_available() -> bool:
    """True when OpenCV has ``cv2.dnn.blobFromImageWithParams``."""
    import cv2

    dnn = getattr(cv2, "dnn", None)
    return dnn is not None and hasattr(dnn, "blobFromImageWithParams") and hasattr(dnn, "Image2BlobParams")


def pillow_available() -> bool:
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        return False
    return True


class PillowPipeline(_Target):
    """torchvision's evaluation transform done with Pillow and numpy, as people write it.

    ``Image.resize`` to the full resized size (BILINEAR: antialiased), ``crop``, ``np.asarray``,
    ``/ 255``, ``- mean``, ``/ std`` on a CHW float array (allocating, like ``ToTensor`` +
    ``Normalize``). Input: an RGB ``PIL.Image`` (what a PIL decoder gives; converting a numpy
    frame to PIL is not timed). Returns ``(1, 3, h, w)`` float32.
    """

    name = "pillow"

    def __init__(self, size: int = 224, crop_pct: float = 0.875, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__(size, crop_pct, mean, std)
        from PIL import Image

        self._bilinear = Image.Resampling.BILINEAR
        self._mean = self.mean.astype(np.float32)[:, None, None]
        self._std = self.std.astype(np.float32)[:, None, None]

    def __call__(self, image) -> np.ndarray:
        w, h = image.size
        g = self.plan(h, w)
        resized = image.resize((g.resized_w, g.resized_h), self._bilinear)
        crop = resized.crop((g.left, g.top, g.left + g.out_w, g.top + g.out_h))
        x = np.asarray(crop).transpose(2, 0, 1).astype(np.float32) / 255.0
        x = (x - self._mean) / self._std
        return x[None]


class PillowBoxPipeline(_Target):
    """Pillow resampling only the crop window (``Image.resize(..., box=...)``), then the same
    strided copy + in-place normalization as :class:`OpenCVPipeline`: the fastest Pillow path.

    Input: an RGB ``PIL.Image``. Returns ``(1, 3, h, w)`` float32 (its own buffer).
    """

    name = "pillow_box"

    def __init__(self, size: int = 224, crop_pct: float = 0.875, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__(size, crop_pct, mean, std)
        from PIL import Image

        self._bilinear = Image.Resampling.BILINEAR
        self._boxes: dict[tuple[int, int], tuple[float, float, float, float]] = {}

    def box(self, h: int, w: int) -> tuple[float, float, float, float]:
        """The crop window in source pixel coordinates ``(x0, y0, x1, y1)``."""
        found = self._boxes.get((h, w))
        if found is None:
            g = self.plan(h, w)
            sx, sy = w / g.resized_w, h / g.resized_h
            found = (g.left * sx, g.top * sy, (g.left + g.out_w) * sx, (g.top + g.out_h) * sy)
            self._boxes[(h, w)] = found
        return found

    def __call__(self, image) -> np.ndarray:
        w, h = image.size
        crop = image.resize((self.size[1], self.size[0]), self._bilinear, box=self.box(h, w))
        out = self.out[0]
        np.copyto(out, np.asarray(crop).transpose(2, 0, 1), casting="unsafe")
        self._normalize_in_place(out)
        return self.out


def to_pil(image_bgr: np.ndarray):
    """An RGB ``PIL.Image`` of a BGR uint8 array (for the Pillow baselines; not timed)."""
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(image_bgr[:, :, ::-1]))


# ---------------------------------------------------------------------------------- frames
def synthetic_frame(height: int, width: int, seed: int = 0, noise: float = 5.0) -> np.ndarray:
    """A camera-like BGR uint8 frame ``(height, width, 3)``: a smooth scene, edges, and sensor noise.

    Smooth color fields (a coarse random grid upsampled bicubically), a few hard-edged shapes,
    then Gaussian noise of ``noise`` levels per channel (a sensor at moderate ISO). Noise matters:
    it decides how hard a JPEG is to decode, and flat synthetic frames decode unrealistically fast.
    """
    import cv2

    if height < 1 or width < 1:
        raise ValueError(f"frame size must be positive, got {height}x{width}")
    rng = np.random.default_rng(seed)
    coarse = rng.integers(30, 226, size=(6, 8, 3), dtype=np.uint8)
    scene = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(12):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
        radius = int(rng.integers(max(2, min(height, width) // 20), max(3, min(height, width) // 4)))
        if rng.random() < 0.5:
            cv2.circle(scene, (cx, cy), radius, color, thickness=-1, lineType=cv2.LINE_AA)
        else:
            cv2.rectangle(scene, (cx - radius, cy - radius // 2), (cx + radius, cy + radius // 2), color, -1)
    noisy = scene.astype(np.float32)
    noisy += rng.standard_normal(scene.shape, dtype=np.float32) * np.float32(noise)
    np.clip(noisy, 0, 255, out=noisy)
    return noisy.astype(np.uint8)


def encode_jpeg(image_bgr: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of a BGR uint8 image (baseline, 4:2:0, as cameras write)."""
    import cv2

    ok, data = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {image_bgr.shape} JPEG")
    return data.tobytes()


def decode_full(encoded: np.ndarray) -> np.ndarray:
    """The usual decode: ``cv2.imdecode`` at full size to BGR uint8 (the baselines start from it)."""
    import cv2

    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)


def bgr_to_nv12(image_bgr: np.ndarray) -> np.ndarray:
    """NV12 ``(H * 3 // 2, W)`` uint8 of an even-sized BGR image (OpenCV's BT.601 limited range)."""
    import cv2

    h, w = image_bgr.shape[:2]
    if h % 2 or w % 2:
        raise ValueError(f"NV12 needs an even height and width, got {h}x{w}")
    i420 = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2YUV_I420)
    nv12 = np.empty_like(i420)
    nv12[:h] = i420[:h]
    # The chroma planes need not start on a row boundary (h / 2 odd): address them flat.
    flat, quarter = i420.reshape(-1), (h // 2) * (w // 2)
    u = flat[h * w:h * w + quarter].reshape(h // 2, w // 2)
    v = flat[h * w + quarter:].reshape(h // 2, w // 2)
    uv = nv12[h:].reshape(h // 2, w // 2, 2)
    uv[:, :, 0] = u
    uv[:, :, 1] = v
    return nv12


# ---------------------------------------------------------------------------------- memory
def _vm_hwm_bytes() -> int | None:
    """Peak RSS of this process's current address space (Linux ``VmHWM``), or None."""
    text = _read("/proc/self/status")
    for line in (text or "").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB.

    Linux: ``VmHWM`` of the current address space. ``getrusage``'s ``ru_maxrss`` is not used
    there because the kernel carries the parent's peak into a child across fork/vfork + exec, so
    a child started from a big process would report the parent's size. Elsewhere ``ru_maxrss``.
    """
    hwm = _vm_hwm_bytes()
    if hwm is not None:
        return hwm / (1 << 20)
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # macOS reports bytes, the other BSDs KiB.
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024.0


_RSS_WRAPPER = r"""
import os, runpy, sys
from fixres_edge.benchmark import peak_rss_mb
module, sys.argv = sys.argv[1], sys.argv[1:]
code = 0
try:
    runpy.run_module(module, run_name="__main__", alter_sys=True)
except SystemExit as stop:
    code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
finally:
    with open(os.environ["FIXRES_EDGE_RSS_FILE"], "w") as f:
        f.write(repr(peak_rss_mb()))
sys.exit(code)
"""


def run_module_measuring_rss(module: str, args: Sequence[str], timeout: float = 600.0
                             ) -> tuple[int, float, float, str, str]:
    """Run ``python -m module args`` in a fresh process; return
    ``(exit code, peak RSS MiB of that process, wall seconds, stdout, stderr)``.

    The child reports its own peak (:func:`peak_rss_mb`) when it finishes.
    """
    with tempfile.TemporaryDirectory(prefix="fixres_edge-rss-") as tmp:
        report = os.path.join(tmp, "peak")
        env = dict(os.environ, FIXRES_EDGE_RSS_FILE=report)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", _RSS_WRAPPER, module, *args], env=env, capture_output=True,
                              text=True, timeout=timeout)
        wall = time.perf_counter() - start
        try:
            peak = float(Path(report).read_text())
        except (OSError, ValueError):
            peak = float("nan")
    return done.returncode, peak, wall, done.stdout, done.stderr


# ---------------------------------------------------------------------------------- start-up
def start_up(cache_dir: str | None = None) -> dict:
    """One fresh process that imports fixres_edge and preprocesses one 500x375 frame (1 thread).

    Parameters
    ----------
    cache_dir : str, optional
        A new empty directory for every kernel cache of the child (``footprint.empty_cache_env``):
        a cold start, where the kernels the call needs are compiled. None keeps the normal caches.

    Returns
    -------
    dict
        ``process_s`` (wall time of the whole process, interpreter start-up included),
        ``import_s`` (numpy + fixres_edge imports), ``first_call_s`` (the first ``pre(frame)``,
        which loads the ahead-of-time kernels, or imports numba and loads or compiles the kernel).
    """
    from fixres_edge import footprint

    measured = footprint.first_frame(env=None if cache_dir is None else footprint.empty_cache_env(cache_dir))
    return {"process_s": measured["process_s"], "import_s": measured["import_s"],
            "first_call_s": measured["first_frame_s"]}


def cold_start(warm_runs: int = 3, cold_runs: int = 1) -> dict:
    """Start-up costs: ``cold`` (empty JIT cache in a temporary directory) and ``warm`` (the
    normal cache, filled first), each the median of its runs; fields as :func:`start_up`."""
    start_up()  # make sure the normal cache holds the kernel
    warm = [start_up() for _ in range(max(1, warm_runs))]
    cold = []
    for _ in range(max(1, cold_runs)):
        with tempfile.TemporaryDirectory(prefix="fixres_edge-cold-") as empty:
            cold.append(start_up(cache_dir=empty))

    def median(runs: list[dict]) -> dict:
        return {key: round(float(np.median([r[key] for r in runs])), 4) for key in runs[0]}

    return {"warm": median(warm), "cold": median(cold), "warm_runs": len(warm), "cold_runs": len(cold)}


# ---------------------------------------------------------------------------------- environment
def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace").replace("\x00", "").strip()
    except OSError:
        return None


def cpu_model() -> str:
    """The CPU's name (see :func:`fixres_edge.board.describe_board`)."""
    return describe_board().cpu


def board_model() -> str | None:
    """The board's name (e.g. "Raspberry Pi 5 Model B Rev 1.0"), if the system gives one."""
    return describe_board().model


def machine_slug(cpu: str | None = None) -> str:
    """``<arch>-<cpu>`` in lowercase with dashes, e.g. ``x86_64-intel-xeon-processor``, for file names."""
    cpu = cpu_model() if cpu is None else cpu
    cpu = re.sub(r"\((r|tm|c)\)", "", cpu, flags=re.IGNORECASE)
    cpu = re.sub(r"\bcpu\b|@.*$", "", cpu, flags=re.IGNORECASE)
    slug = re.sub(r"[^a-z0-9]+", "-", cpu.lower()).strip("-") or "unknown"
    return f"{platform.machine().lower() or 'unknown'}-{slug}"


def result_filename(kind: str | None = None, when: date | None = None) -> str:
    """``<arch>-<cpu>-<YYYY-MM-DD>[.<kind>].json``: one result file per machine, day and script."""
    when = when or date.today()
    suffix = f".{kind}" if kind else ""
    return f"{machine_slug()}-{when.isoformat()}{suffix}.json"


def _version(module_name: str) -> str | None:
    try:
        module = __import__(module_name)
    except ImportError:
        return None
    return getattr(module, "__version__", None)


def environment(threads: Sequence[int] | None = None) -> dict:
    """What the numbers depend on: CPU, cores, OS, versions, thread and frequency settings."""
    import cv2

    from fixres_edge._jit import configure_numba

    numba = configure_numba()
    governor = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    max_khz = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_max_freq")
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = None
    from fixres_edge import __version__

    return {
        "cpu": cpu_model(),
        "board": board_model(),
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "cores_available": all_cores(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "fixres_edge": __version__,
        "numpy": np.__version__,
        "numba": numba.__version__,
        "onnxruntime": ort_version,
        "opencv": cv2.__version__,
        "pillow": _version("PIL"),
        "threads_measured": list(threads) if threads else None,
        "numba_num_threads": numba.config.NUMBA_NUM_THREADS,
        "numba_threading_layer": threading_layer(),
        "opencv_default_threads": cv2.getNumThreads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "cpu_governor": governor,
        "cpu_max_mhz": round(int(max_khz) / 1000) if max_khz and max_khz.isdigit() else None,
        "load_average": load,
    }


def threading_layer() -> str:
    """Numba's threading layer in use ("omp", "tbb", "workqueue"), or the configured one before any
    parallel kernel has run."""
    from fixres_edge._jit import configure_numba

    numba = configure_numba()
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel region has run yet
        return f"{numba.config.THREADING_LAYER} (not started)"


def throttled() -> str | None:
    """``vcgencmd get_throttled`` on a Raspberry Pi (``throttled=0x0`` is clean), else None."""
    try:
        done = subprocess.run(["vcgencmd", "get_throttled"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def save_json(report: dict, path: str | os.PathLike) -> Path:
    """Write ``report`` as indented JSON (parent directories created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------- reporting
def format_ms(value: float | None) -> str:
    """A time (or any positive figure) with 3 significant digits at most, "-" for None."""
    if value is None:
        return "-"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"
