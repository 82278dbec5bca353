"""Shared fixtures of the preprocessing tests: synthetic images, reference pipelines (oracles), parity log.

The oracles are the pipelines users compare against: torchvision's ``Resize(int(size / crop_pct))``
+ ``CenterCrop(size)`` geometry, with the pixels of Pillow (antialiased bilinear/bicubic, nearest)
or OpenCV (``INTER_LINEAR``, ``INTER_CUBIC``, ``INTER_AREA``, ``INTER_NEAREST_EXACT``). They resize
the whole image and then slice the crop, the slow and obvious way, so that they share nothing with
the fused kernels under test.

Test modules get everything through fixtures (``oracles``, ``images``, ``make_pre``, ``parity``)
rather than importing this file.
"""
from __future__ import annotations

import os
import types
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# Real photos, when the shared data set sits next to the repository; tests skip cleanly without it.
SHARED_PHOTOS = REPO_ROOT.parent / "shared" / "data" / "imagenet-sample-dev"

# Kernels: the tests run the JIT from a cache of their own, never an ahead-of-time module the
# developer built for daily use (tests that need one build it into a temporary folder). Keyed by
# the kernel sources' digest, the JIT cache stays valid across runs.
os.environ["FIXRES_EDGE_CACHE_DIR"] = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                                          / "fixres_edge-tests")

# ---------------------------------------------------------------------------------------------
# Hypothesis: reproducible, modest runs. Derandomized (examples derived from the test itself, no
# database written into the repository); no deadline because the first call of a new kernel
# signature compiles. HYPOTHESIS_PROFILE=thorough runs more examples.
try:
    from hypothesis import HealthCheck, settings

    _common = dict(deadline=None, derandomize=True, database=None, print_blob=True,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    settings.register_profile("fixres_edge", max_examples=25, **_common)
    settings.register_profile("thorough", max_examples=400, **_common)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fixres_edge"))
except ImportError:  # pragma: no cover - hypothesis is in the test extra
    pass


# ---------------------------------------------------------------------------------------------
# Synthetic images (RGB uint8, H x W x 3). Each kind stresses something different.
def _grid(h: int, w: int):
    y = (np.arange(h, dtype=np.float64)[:, None] + 0.5) / h
    x = (np.arange(w, dtype=np.float64)[None, :] + 0.5) / w
    return y, x


def _gradient(h, w, rng):
    # Smooth ramps in different directions per channel: interpolation must be close to exact.
    y, x = _grid(h, w)
    return np.stack([255 * x + 0 * y, 255 * y + 0 * x, 127.5 * (x + y)], axis=-1)


def _checker(h, w, rng, period=1):
    # Pixel-level checkerboard (period 1) = the highest frequency: aliases badly without antialias.
    yy, xx = np.indices((h, w))
    board = ((yy // period + xx // period) % 2).astype(np.float64)
    return np.stack([255 * board, 255 * (1 - board), 64 + 128 * board], axis=-1)


def _stripes(h, w, rng):
    # Thin diagonal sinusoidal stripes at a few frequencies (moire if the filter is too narrow).
    yy, xx = np.indices((h, w)).astype(np.float64)
    return np.stack([127.5 + 127.5 * np.sin((xx + yy) * f) for f in (2.3, 0.9, 0.31)], axis=-1)


def _noise(h, w, rng):
    return rng.integers(0, 256, (h, w, 3)).astype(np.float64)


def _blobs(h, w, rng):
    # Smooth random blobs: a coarse random field, bilinearly upsampled with numpy.
    gh, gw = 5, 6
    coarse = rng.uniform(0, 255, (gh, gw, 3))
    gy = np.clip((np.arange(h) + 0.5) / h * (gh - 1), 0, gh - 1)
    gx = np.clip((np.arange(w) + 0.5) / w * (gw - 1), 0, gw - 1)
    y0 = np.minimum(gy.astype(int), gh - 2) if gh > 1 else np.zeros(h, int)
    x0 = np.minimum(gx.astype(int), gw - 2) if gw > 1 else np.zeros(w, int)
    fy = (gy - y0)[:, None, None]
    fx = (gx - x0)[None, :, None]
    top = coarse[y0][:, x0] * (1 - fx) + coarse[y0][:, x0 + 1] * fx
    bottom = coarse[y0 + 1][:, x0] * (1 - fx) + coarse[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _mixed(h, w, rng):
    # Quadrants: gradient, pixel checkerboard, noise, blobs (a camera-like frame with hard parts).
    out = np.empty((h, w, 3), np.float64)
    hy, hx = h // 2, w // 2
    out[:hy, :hx] = _gradient(hy, hx, rng)
    out[:hy, hx:] = _checker(hy, w - hx, rng)
    out[hy:, :hx] = _noise(h - hy, hx, rng)
    out[hy:, hx:] = _blobs(h - hy, w - hx, rng)
    return out


KINDS = {
    "gradient": _gradient,
    "checker1": _checker,
    "checker3": lambda h, w, rng: _checker(h, w, rng, period=3),
    "stripes": _stripes,
    "noise": _noise,
    "blobs": _blobs,
    "mixed": _mixed,
}


@lru_cache(maxsize=64)
def _synthetic_cached(kind: str, h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.rint(KINDS[kind](h, w, rng)), 0, 255).astype(np.uint8)
    pixels.setflags(write=False)
    return pixels


def synthetic(kind: str, h: int, w: int, seed: int = 0) -> np.ndarray:
    """A fresh, writable RGB uint8 (h, w, 3) image of ``kind`` (see ``KINDS``)."""
    return _synthetic_cached(kind, h, w, seed).copy()


def parse_case(case: str) -> tuple[str, int, int]:
    """``"noise-375x500"`` -> ("noise", 375, 500): image kind, height, width."""
    kind, dims = case.rsplit("-", 1)
    h, w = dims.split("x")
    return kind, int(h), int(w)


def photo_paths(count: int = 5) -> list[Path]:
    """A few evenly spread real photos from the shared sample set, or [] when it is absent."""
    if not SHARED_PHOTOS.is_dir():
        return []
    files = sorted(p for p in SHARED_PHOTOS.iterdir() if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
    if not files:
        return []
    step = max(1, len(files) // count)
    return files[::step][:count]


@lru_cache(maxsize=8)
def _photo_bgr(path: str) -> np.ndarray:
    import cv2

    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot decode {path}")
    image.setflags(write=False)
    return image


# ---------------------------------------------------------------------------------------------
# Oracles
def oracle_geometry(h: int, w: int, size, crop_pct: float):
    """torchvision ``Resize(int(size / crop_pct))`` + ``CenterCrop(size)`` (extended to (h, w) sizes).

    Returns ``(resized_h, resized_w, top, left, out_h, out_w)``. Square sizes follow torchvision:
    short side -> S = int(size / crop_pct), long side -> int(S * long / short). For (h, w) sizes the
    image is scaled to cover (int(h / crop_pct), int(w / crop_pct)): the axis needing the larger
    scale gets its target exactly, the other int(target * other / that). The crop offset is
    int(round((n - size) / 2)) with Python's round (half to even), as torchvision's CenterCrop.
    """
    out_h, out_w = (size, size) if isinstance(size, int) else size
    th, tw = int(out_h / crop_pct), int(out_w / crop_pct)
    if out_h == out_w:
        s = th
        if h <= w:
            rh, rw = s, int(s * w / h)
        else:
            rh, rw = int(s * h / w), s
    elif th * w >= tw * h:  # th / h >= tw / w, compared exactly in integers
        rh, rw = th, int(th * w / h)
    else:
        rh, rw = int(tw * h / w), tw
    top = int(round((rh - out_h) / 2.0))
    left = int(round((rw - out_w) / 2.0))
    return rh, rw, top, left, out_h, out_w


def oracle_resize(rgb: np.ndarray, mode: str, rh: int, rw: int) -> np.ndarray:
    """Resize a whole RGB uint8 image to (rh, rw) with the reference library."""
    if mode.startswith("pil-"):
        from PIL import Image

        resample = {"pil-bilinear": Image.Resampling.BILINEAR, "pil-bicubic": Image.Resampling.BICUBIC,
                    "pil-nearest": Image.Resampling.NEAREST}[mode]
        return np.asarray(Image.fromarray(np.ascontiguousarray(rgb), "RGB").resize((rw, rh), resample))
    import cv2

    interpolation = {"cv2-linear": cv2.INTER_LINEAR, "cv2-cubic": cv2.INTER_CUBIC, "cv2-area": cv2.INTER_AREA,
                     "cv2-nearest-exact": cv2.INTER_NEAREST_EXACT}[mode]
    out = cv2.resize(np.ascontiguousarray(rgb), (rw, rh), interpolation=interpolation)
    return out.reshape(rh, rw, 3)


def oracle(rgb: np.ndarray, size, crop_pct: float, mode: str) -> np.ndarray:
    """The reference preprocessing: whole-image resize with ``mode``, then the center crop (uint8 HxWx3)."""
    rh, rw, top, left, oh, ow = oracle_geometry(rgb.shape[0], rgb.shape[1], size, crop_pct)
    return oracle_resize(rgb, mode, rh, rw)[top:top + oh, left:left + ow]


def level_diff(a: np.ndarray, b: np.ndarray) -> tuple[int, float]:
    """(max, mean) absolute difference in uint8 levels."""
    assert a.shape == b.shape, (a.shape, b.shape)
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return int(d.max()), float(d.mean())


# How each Preprocessor mode is checked: (interpolation, antialias) -> (oracle, max level, mean level).
# Non-antialiased bicubic: OpenCV computes uint8 INTER_CUBIC in fixed point, the kernels in float32;
# measured worst case 1 level (mean <= 0.04) on the images of test_preprocess_oracle.py.
MODE_SPECS = {
    ("bilinear", True): ("pil-bilinear", 1, 0.35),
    ("bicubic", True): ("pil-bicubic", 1, 0.35),
    ("bilinear", False): ("cv2-linear", 1, None),
    ("bicubic", False): ("cv2-cubic", 1, None),
    ("nearest", True): ("pil-nearest", 0, 0.0),
    ("nearest", False): ("pil-nearest", 0, 0.0),
    ("area", True): ("cv2-area", 1, None),
    ("area", False): ("cv2-area", 1, None),
}
ALL_MODES = list(MODE_SPECS)


def mode_id(mode) -> str:
    interpolation, antialias = mode
    return f"{interpolation}-{'aa' if antialias else 'noaa'}"


# ---------------------------------------------------------------------------------------------
# Parity log: the measured differences per mode, printed with ``pytest --parity``.
class ParityLog:
    def __init__(self):
        self.rows: list[tuple[str, str, str, int, float]] = []

    def record(self, mode: str, oracle_name: str, image: str, max_diff: int, mean_diff: float) -> None:
        self.rows.append((mode, oracle_name, image, max_diff, mean_diff))

    def table(self) -> list[str]:
        groups: dict[tuple[str, str], list] = {}
        for mode, oracle_name, image, mx, mean in self.rows:
            groups.setdefault((mode, oracle_name), []).append((image, mx, mean))
        lines = [f"{'mode':<14} {'oracle':<18} {'images':>6} {'max diff':>8} {'mean diff':>9} "
                 f"{'worst mean':>10}  worst image"]
        for (mode, oracle_name), rows in sorted(groups.items()):
            worst = max(rows, key=lambda r: (r[1], r[2]))
            mean_all = sum(r[2] for r in rows) / len(rows)
            lines.append(f"{mode:<14} {oracle_name:<18} {len(rows):>6} {worst[1]:>8} {mean_all:>9.4f} "
                         f"{max(r[2] for r in rows):>10.4f}  {worst[0]}")
        return lines


_PARITY = ParityLog()


def pytest_addoption(parser):
    parser.addoption("--parity", action="store_true", default=False,
                     help="print the measured level differences of the preprocessing oracle tests")
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run the tests marked slow (soak, long fuzz runs); skipped by default")


def pytest_ignore_collect(collection_path, config):
    # --doctest-modules (pyproject.toml) is for the package's docstrings. The helper modules here
    # (tiny_models.py, tiny_images.py, ...) are not collected: tiny_models needs onnx, which the
    # test modules that import it check for first (pytest.importorskip).
    if (collection_path.suffix == ".py" and collection_path.parent.resolve() == Path(__file__).resolve().parent
            and not collection_path.name.startswith(("test_", "conftest"))):
        return True
    return None


def pytest_collection_modifyitems(config, items):
    # `slow` tests run only when asked: with --run-slow, or when -m names the marker (-m slow).
    if config.getoption("--run-slow") or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow (or -m slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if config.getoption("--parity", default=False) and _PARITY.rows:
        terminalreporter.section("preprocessing parity (uint8 levels vs oracle)")
        for line in _PARITY.table():
            terminalreporter.write_line(line)


# ---------------------------------------------------------------------------------------------
# Fixtures
class _Namespace(types.SimpleNamespace):
    """A namespace of helpers with a short repr (Hypothesis prints fixture values on failure)."""

    def __init__(self, name: str, **members):
        super().__init__(**members)
        self._name = name

    def __repr__(self) -> str:
        return f"<{self._name}>"


@pytest.fixture(scope="session")
def oracles():
    """Reference pipelines and comparison helpers (a namespace of functions)."""
    return _Namespace("oracles", geometry=oracle_geometry, resize=oracle_resize, crop=oracle, diff=level_diff,
                                 MODE_SPECS=MODE_SPECS, ALL_MODES=ALL_MODES, mode_id=mode_id)


@pytest.fixture(scope="session")
def images():
    """Image factories: ``images.synthetic(kind, h, w, seed)``, ``images.case("noise-375x500")``."""
    def case(name: str, seed: int = 0) -> np.ndarray:
        kind, h, w = parse_case(name)
        return synthetic(kind, h, w, seed)

    return _Namespace("images", synthetic=synthetic, case=case, kinds=tuple(KINDS))


@pytest.fixture(scope="session")
def shared_photos():
    """A few real photos as BGR uint8 arrays (read-only); skips when ../shared is not there."""
    paths = photo_paths()
    if not paths:
        pytest.skip(f"shared photos not found next to the repository ({SHARED_PHOTOS.name})")
    return [(p.name, _photo_bgr(str(p))) for p in paths]


@pytest.fixture(scope="session")
def bundled_model():
    """Path of the bundled fp32 model; skips when it has not been built (a checkout without it)."""
    from fixres_edge.model import bundled_model_path

    try:
        return bundled_model_path()
    except FileNotFoundError:
        pytest.skip("bundled model not built")


@pytest.fixture(scope="session")
def make_pre():
    """``make_pre(**kw)``: a Preprocessor with test-friendly defaults (RGB in, NHWC uint8 out)."""
    from fixres_edge import Preprocessor

    def make_pre(**kw):
        kw.setdefault("input_format", "RGB")
        kw.setdefault("layout", "NHWC")
        kw.setdefault("dtype", "uint8")
        return Preprocessor(**kw)

    return make_pre


@pytest.fixture(scope="session")
def parity():
    return _PARITY


@pytest.fixture(scope="session")
def float16_supported():
    from fixres_edge import Preprocessor

    try:
        Preprocessor(dtype="float16")
    except ValueError:
        return False
    return True


def normalized(u8: np.ndarray, mean, std) -> np.ndarray:
    """``(x / 255 - mean) / std`` of an (..., 3) uint8 array, in float64."""
    return (u8.astype(np.float64) / 255.0 - np.asarray(mean)) / np.asarray(std)


def float_tolerance(std, levels: float = 1.0, eps: float = 1e-5) -> np.ndarray:
    """Per-channel tolerance of ``levels`` uint8 levels on the normalized scale, plus ``eps``."""
    return levels / (255.0 * np.asarray(std, np.float64)) + eps


@pytest.fixture(scope="session")
def norm():
    return _Namespace("norm", normalized=normalized, tolerance=float_tolerance)

