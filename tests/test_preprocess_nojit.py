"""The kernels run as plain Python with ``NUMBA_DISABLE_JIT=1`` and give the same results.

A small subset (tiny images, 20x15 -> 8) runs in one subprocess with the JIT disabled; the main
process computes the same cases compiled and compares. Plain Python has no FMA contraction, so
float32 values may differ in the last bits and a uint8 value on a .5 boundary may round the other
way: uint8 must match within 1 level (and almost always exactly), float32 within 1e-4.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytestmark = pytest.mark.aarch64

# name -> (image key, view, Preprocessor keyword arguments)
CASES = {
    "bilinear-aa-u8": ("noise", None, dict(interpolation="bilinear", dtype="uint8", layout="NHWC")),
    "bilinear-aa-f32-bgr": ("noise", None, dict(interpolation="bilinear", input_format="BGR")),
    "bicubic-aa-u8": ("mixed", None, dict(interpolation="bicubic", dtype="uint8")),
    "bilinear-noaa-u8": ("mixed", None, dict(interpolation="bilinear", antialias=False, dtype="uint8")),
    "bicubic-noaa-f32": ("noise", None, dict(interpolation="bicubic", antialias=False)),
    "nearest-u8": ("noise", None, dict(interpolation="nearest", dtype="uint8")),
    "area-u8": ("mixed", None, dict(interpolation="area", dtype="uint8")),
    "area-upscale-f32": ("small", None, dict(interpolation="area")),
    "bilinear-upscale-u8": ("small", None, dict(interpolation="bilinear", dtype="uint8", layout="NHWC")),
    "rgba-f32": ("rgba", None, dict(input_format="RGBA")),
    "gray-u8": ("gray", None, dict(input_format="GRAY", dtype="uint8")),
    "threads2-f32": ("noise", None, dict(threads=2)),
    "flipped-view-f32": ("noise", "flip_h", dict(interpolation="bicubic")),
    "channel-reversed-u8": ("noise", "channels", dict(dtype="uint8", input_format="BGR")),
    "nonsquare-f32": ("mixed", None, dict(size=(6, 10), crop_pct=0.9, interpolation="bilinear")),
    "float16": ("noise", None, dict(dtype="float16")),
}

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import numba
    from fixres_edge import Preprocessor

    assert numba.config.DISABLE_JIT, "the JIT is not disabled"
    work = sys.argv[1]
    images = dict(np.load(work + "/images.npz"))
    cases = json.load(open(work + "/cases.json"))
    results = {}
    errors = {}
    for name, (key, view, kw) in cases.items():
        image = images[key]
        if view == "flip_h":
            image = np.ascontiguousarray(image[:, ::-1])[:, ::-1]
        elif view == "channels":
            image = np.ascontiguousarray(image[..., ::-1])[..., ::-1]
        kw = dict({"size": 8}, **kw)
        if isinstance(kw["size"], list):
            kw["size"] = tuple(kw["size"])
        try:
            results[name] = Preprocessor(**kw)(image)
        except Exception as exc:  # reported per case by the test
            errors[name] = f"{type(exc).__name__}: {exc}"
    np.savez(work + "/results.npz", **results)
    json.dump(errors, open(work + "/errors.json", "w"))
""")


def _images():
    rng = np.random.default_rng(11)
    noise = rng.integers(0, 256, (20, 15, 3), dtype=np.uint8)
    yy, xx = np.indices((20, 15))
    mixed = np.stack([(xx * 17) % 256, ((yy + xx) % 2) * 255, rng.integers(0, 256, (20, 15))], -1).astype(np.uint8)
    return {
        "noise": noise,
        "mixed": mixed,
        "small": rng.integers(0, 256, (5, 7, 3), dtype=np.uint8),
        "rgba": rng.integers(0, 256, (20, 15, 4), dtype=np.uint8),
        "gray": rng.integers(0, 256, (20, 15), dtype=np.uint8),
    }


@pytest.fixture(scope="module")
def nojit(tmp_path_factory):
    """Results of every case computed in a subprocess with NUMBA_DISABLE_JIT=1."""
    work = tmp_path_factory.mktemp("nojit")
    np.savez(work / "images.npz", **_images())
    (work / "cases.json").write_text(json.dumps(CASES))
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(work)], env=env, cwd=work, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"no-JIT subprocess failed:\n{proc.stderr[-3000:]}"
    with np.load(work / "results.npz") as data:
        results = {k: data[k] for k in data.files}
    errors = json.loads((work / "errors.json").read_text())
    return results, errors


def _jit_result(name):
    from fixres_edge import Preprocessor

    key, view, kw = CASES[name]
    image = _images()[key]
    if view == "flip_h":
        image = np.ascontiguousarray(image[:, ::-1])[:, ::-1]
    elif view == "channels":
        image = np.ascontiguousarray(image[..., ::-1])[..., ::-1]
    return Preprocessor(**dict({"size": 8}, **kw))(image)


@pytest.mark.parametrize("name", list(CASES))
def test_nojit_matches_jit(name, nojit):
    results, errors = nojit
    assert name not in errors, f"without JIT: {errors.get(name)}"
    plain = results[name]
    compiled = _jit_result(name)
    assert plain.shape == compiled.shape and plain.dtype == compiled.dtype
    if compiled.dtype == np.uint8:
        diff = np.abs(plain.astype(np.int16) - compiled.astype(np.int16))
        assert diff.max() <= 1, f"max diff {diff.max()} levels"
        assert np.count_nonzero(diff) <= max(1, diff.size // 100), f"{np.count_nonzero(diff)} values differ"
    else:
        atol = 1e-4 if compiled.dtype == np.float32 else 2e-3
        np.testing.assert_allclose(plain.astype(np.float32), compiled.astype(np.float32), rtol=0, atol=atol)
