"""How kernels are compiled, cached and found: the JIT cache, the ahead-of-time module, the fallback.

The ahead-of-time (AOT) module is built once per session into a temporary folder (it needs a C
compiler: the tests skip without one). Its output must equal the JIT's bit for bit; a process that
loads it must import neither numba nor llvmlite; a missing, corrupt, stale or foreign module must
fall back to the JIT with at most one notice and the same output.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from fixres_edge import _aot, _jit
from fixres_edge.kernels import launch

REPO = Path(__file__).resolve().parents[1]


def run_python(code: str, env_extra: dict[str, str | None], cwd: Path) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with the repository importable; ``None`` removes a variable."""
    env = {**os.environ, **env_extra}
    env = {k: v for k, v in env.items() if v is not None}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done


# ---------------------------------------------------------------------------------- JIT cache
def test_import_compiles_nothing(tmp_path):
    done = run_python("""
        import sys, json
        import fixres_edge
        from fixres_edge import Preprocessor
        pre = Preprocessor(size=8)
        print(json.dumps(sorted(m for m in ("numba", "llvmlite", "onnxruntime") if m in sys.modules)))
    """, {}, tmp_path)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_jit_cache_is_per_user_and_never_in_the_package(tmp_path):
    """With nothing set, Numba's cache goes under $XDG_CACHE_HOME/fixres_edge/jit/<source digest>."""
    done = run_python("""
        import json
        import numpy as np
        from fixres_edge import Preprocessor
        Preprocessor(size=4)(np.zeros((6, 8, 3), np.uint8))
        import numba
        print(json.dumps({"cache_dir": numba.core.config.CACHE_DIR}))
    """, {"XDG_CACHE_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path), "NUMBA_CACHE_DIR": None,
          "FIXRES_EDGE_CACHE_DIR": None}, tmp_path)
    cache_dir = Path(json.loads(done.stdout.strip().splitlines()[-1])["cache_dir"])
    assert cache_dir == tmp_path / "xdg" / "fixres_edge" / "jit" / _jit.kernel_source_digest()[:16]
    assert list(cache_dir.rglob("*.nbi")), f"no cache index written under {cache_dir}"
    package = REPO / "fixres_edge"
    assert not list(package.rglob("*.nbi")) and not list(package.rglob("*.nbc"))


def test_explicit_numba_cache_dir_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert _jit.jit_cache_dir() == tmp_path


def test_user_cache_dir_follows_xdg_and_the_explicit_setting(tmp_path, monkeypatch):
    if sys.platform in ("darwin", "win32"):
        pytest.skip("XDG applies on Linux")
    monkeypatch.delenv("FIXRES_EDGE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert _jit.user_cache_dir() == tmp_path / "fixres_edge"
    monkeypatch.setenv("FIXRES_EDGE_CACHE_DIR", str(tmp_path / "mine"))
    assert _jit.user_cache_dir() == tmp_path / "mine"
    assert _aot.aot_dir() == tmp_path / "mine" / "aot"


def test_source_digest_covers_every_kernel_file():
    names = {p.name for p in _jit.kernel_sources()}
    assert {"resample.py", "postprocess.py", "launch.py", "_simd.py", "_jit.py"} <= names


def test_top_level_warmup_is_the_function_even_after_the_cli_imported_its_module():
    import fixres_edge
    import fixres_edge.commands.warmup  # noqa: F401  (imports the implementation module)
    from fixres_edge.warm import warmup

    assert fixres_edge.warmup is warmup


# ---------------------------------------------------------------------------------- launch records
def test_pack_rejects_what_the_kernel_would_read_past():
    """Scratch sizes are asserted in one place: a buffer one float short is a planner bug."""
    out_h, out_w, span = 4, 6, 10
    fields = dict(out_h=out_h, out_w=out_w, out_uint8=False, channels_last=False, direct=True, clamp=False,
                  s0=1.0, s1=1.0, s2=1.0, b0=0.0, b1=0.0, b2=0.0, source_offset=0, row_stride=30, pixel_stride=3,
                  channel_stride=1, channels=3, c0=2, c1=1, c2=0, taps_y=2, taps_x=2, x_lo=0, x_hi=span,
                  y_start=np.zeros(out_h, np.int64), y_weights=np.zeros((out_h, 2), np.float32),
                  x_start=np.zeros(out_w, np.int64), x_weights=np.zeros((out_w, 2), np.float32))
    need = launch.interleaved_scratch_floats(span, 3, out_w)
    assert need == 2 * 3 * span + launch.VECTOR_TAIL_FLOATS  # two blended rows and the vector taps' tail
    launch.pack(launch.InterleavedLaunch(**fields, scratch=np.zeros(need, np.float32), scratch_len=need))
    with pytest.raises(AssertionError, match="scratch"):
        launch.pack(launch.InterleavedLaunch(**fields, scratch=np.zeros(need - 1, np.float32), scratch_len=need))
    with pytest.raises(AssertionError, match="y_weights"):
        launch.pack(launch.InterleavedLaunch(**{**fields, "y_weights": np.zeros((out_h, 2), np.float64)},
                                             scratch=np.zeros(need, np.float32), scratch_len=need))
    with pytest.raises(TypeError):  # every field is named and required
        launch.InterleavedLaunch(out_h=1)


def test_record_layout_names_every_field():
    names = launch.record_dtype(launch.YuvLaunch).names
    assert names[:3] == ("source", "source_len", "out")
    assert {"chroma_row_shift", "rgb_ring", "ring_ids", "s0", "b2"} <= set(names)


# ---------------------------------------------------------------------------------- AOT module
@pytest.fixture(scope="session")
def aot_module(tmp_path_factory):
    """A freshly built ahead-of-time module (skips without a C compiler)."""
    if _jit.jit_disabled():
        pytest.skip("NUMBA_DISABLE_JIT=1")
    directory = tmp_path_factory.mktemp("aot")
    try:
        _aot.build(directory)
    except _aot.BuildError as error:
        if _aot.compiler() is None:
            pytest.skip(str(error))
        raise
    module = _aot.load(directory)
    assert module is not None
    return directory, module


def kernels_from(functions: dict):
    """Run the in-process kernels from ``functions`` (name -> ctypes function) inside the block."""
    return _jit.kernels_from({name: _jit._native_kernel(f) for name, f in functions.items()})


def jit_functions() -> dict:
    return {name: _jit._ENTRY_TYPE(declared.cfunc().address) for name, declared in _jit.entries().items()}


def _inputs():
    rng = np.random.default_rng(11)
    bgr = rng.integers(0, 256, (97, 131, 3), dtype=np.uint8)
    yield "BGR", bgr
    yield "BGR", bgr[3:90:2, ::-1]                                     # strided, flipped view
    yield "RGB", bgr[..., ::-1]                                        # channel-reversed view
    yield "BGRA", rng.integers(0, 256, (61, 77, 4), dtype=np.uint8)
    yield "RGBA", rng.integers(0, 256, (40, 33, 4), dtype=np.uint8)
    yield "GRAY", rng.integers(0, 256, (50, 71), dtype=np.uint8)
    yield "NV12", rng.integers(0, 256, (48 * 3 // 2, 70), dtype=np.uint8)
    yield "NV21", rng.integers(0, 256, (48 * 3 // 2, 70), dtype=np.uint8)
    yield "I420", rng.integers(0, 256, (60 * 3 // 2, 80), dtype=np.uint8)
    yield "YUYV", rng.integers(0, 256, (45, 62, 2), dtype=np.uint8)


def _outputs(float16: bool):
    from fixres_edge import Preprocessor

    results = {}
    for fmt, image in _inputs():
        for interpolation in ("bilinear", "bicubic", "nearest", "area"):
            for antialias in (True, False):
                for dtype in ("float32", "uint8") + (("float16",) if float16 else ()):
                    for layout in ("NCHW", "NHWC"):
                        # Odd and even output widths, both sides of the 4-pixel vector groups.
                        for size in ((23, 29), (24, 32)):
                            pre = Preprocessor(size=size, interpolation=interpolation, antialias=antialias,
                                               dtype=dtype, layout=layout, input_format=fmt)
                            key = (fmt, image.shape, image.strides, interpolation, antialias, dtype, layout, size)
                            results[key] = pre(image).copy()
    return results


def test_aot_output_equals_jit_exactly(aot_module, float16_supported):
    from fixres_edge.prediction import probabilities_top_k

    _, module = aot_module
    logits = np.random.default_rng(3).normal(size=1000).astype(np.float32)
    runs = {}
    for name, functions in (("jit", jit_functions()), ("aot", module.functions)):
        with kernels_from(functions):
            runs[name] = (_outputs(float16_supported), probabilities_top_k(logits, 5))
    (jit_out, jit_post), (aot_out, aot_post) = runs["jit"], runs["aot"]
    assert jit_out.keys() == aot_out.keys() and len(jit_out) > 500
    different = [key for key in jit_out if not np.array_equal(jit_out[key], aot_out[key])]
    assert not different, different[:5]
    np.testing.assert_array_equal(jit_post[0], aot_post[0])
    np.testing.assert_array_equal(jit_post[1], aot_post[1])


# ---------------------------------------------------------------------------------- deployed process
_DEPLOYED = """
    import json, sys
    import numpy as np, cv2
    from fixres_edge import Classifier
    from fixres_edge.cli import main
    from fixres_edge._jit import kernel_backend
    photo = sys.argv[1] if len(sys.argv) > 1 else "photo.jpg"
    rng = np.random.default_rng(0)
    cv2.imwrite(photo, cv2.GaussianBlur(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8), (0, 0), 3))
    prediction = Classifier().predict(photo)
    code = main(["classify", photo, "--json", "--threads", "1"])
    print(json.dumps({"top": [t.index for t in prediction.top], "probs": [t.prob for t in prediction.top],
                      "backend": kernel_backend(), "code": code,
                      "jit_modules": sorted(m for m in sys.modules if m.split(".")[0] in ("numba", "llvmlite"))}))
"""


def deployed(cache_dir: Path, cwd: Path) -> tuple[dict, str]:
    # The JIT fallback shares the session's warm JIT cache (a cold compile per case adds nothing).
    done = run_python(_DEPLOYED, {"FIXRES_EDGE_CACHE_DIR": str(cache_dir),
                                  "NUMBA_CACHE_DIR": str(_jit.jit_cache_dir())}, cwd)
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


@pytest.fixture(scope="module")
def deployed_cache(aot_module, tmp_path_factory, bundled_model):
    """A user cache folder holding the session's AOT module, as `fixres-edge warmup` leaves it."""
    directory, _ = aot_module
    cache = tmp_path_factory.mktemp("cache")
    shutil.copytree(directory, cache / "aot")
    return cache


def test_deployed_process_never_loads_the_jit(deployed_cache, tmp_path):
    result, stderr = deployed(deployed_cache, tmp_path)
    assert result["code"] == 0
    assert result["backend"].startswith("aot")
    assert result["jit_modules"] == [], result["jit_modules"]
    assert "fixres_edge:" not in stderr


def _corrupt(cache: Path) -> None:
    library = cache / "aot" / _aot.LIBRARY
    data = bytearray(library.read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = bytes(64)
    library.write_bytes(bytes(data))


def _edit_manifest(key: str, value: str):
    def edit(cache: Path) -> None:
        path = cache / "aot" / _aot.MANIFEST
        manifest = json.loads(path.read_text())
        manifest[key] = value
        path.write_text(json.dumps(manifest))
    return edit


@pytest.mark.parametrize("damage, notice", [
    (lambda cache: shutil.rmtree(cache / "aot"), None),
    (_corrupt, "corrupt"),
    (_edit_manifest("source_digest", "0" * 64), "other kernel source"),
    (_edit_manifest("cpu", "0" * 64), "another CPU"),
    (lambda cache: (cache / "aot" / _aot.MANIFEST).write_text("{not json"), "JSONDecodeError"),
], ids=["removed", "corrupt", "stale-source", "foreign-cpu", "bad-manifest"])
def test_unusable_module_falls_back_to_the_jit_with_one_notice(damage, notice, deployed_cache, tmp_path):
    reference, _ = deployed(deployed_cache, tmp_path)
    cache = tmp_path / "cache"
    shutil.copytree(deployed_cache, cache)
    damage(cache)
    result, stderr = deployed(cache, tmp_path)
    assert result["backend"] == "jit"
    assert "numba" in result["jit_modules"]
    assert result["top"] == reference["top"] and result["probs"] == reference["probs"]
    notices = [line for line in stderr.splitlines() if line.startswith("fixres_edge:")]
    if notice is None:
        assert notices == []
    else:
        assert len(notices) == 1 and notice in notices[0], stderr


# ---------------------------------------------------------------------------------- GIL
def _partial_outputs_seen(functions: dict, calls: int = 60) -> int:
    """How often a pure-Python thread saw the output *half written* during kernel calls.

    Before each call the output is filled with NaN; the kernel writes the first row of the red
    plane first and the last row of the blue plane last. Seeing the first written and the last
    not yet written is only possible while the kernel runs: if the call held the GIL, the
    watching thread could only look before or after it. (Timestamps around the call cannot tell:
    a thread that held the GIL hands it over right after the call, inside any window one measures.)
    """
    import threading

    from fixres_edge import Preprocessor

    big = np.random.default_rng(6).integers(0, 256, (1500, 2000, 3), dtype=np.uint8)
    pre = Preprocessor(size=1000, crop_pct=1.0)
    with kernels_from(functions):
        out = pre(big)  # the launch is prepared (and bound to these functions) here
    # Both ends read in one numpy call, which holds the GIL: two separate reads could straddle a
    # whole GIL-holding call and pair a value from before it with one from after.
    ends = np.array([0, out.size - 1])
    flat = out.reshape(-1)
    stop = threading.Event()
    seen = [0]

    def watch():
        while not stop.is_set():
            first, last = flat[ends]
            if not np.isnan(first) and np.isnan(last):
                seen[0] += 1

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(calls):
            out.fill(np.nan)
            pre(big, out=out)
            if seen[0]:
                break
    finally:
        stop.set()
        watcher.join()
    return seen[0]


@pytest.mark.parametrize("backend", ["jit", "aot"])
def test_kernels_release_the_gil(backend, aot_module):
    """Another Python thread runs *during* a kernel call: impossible if the GIL were held."""
    functions = jit_functions() if backend == "jit" else aot_module[1].functions
    assert _partial_outputs_seen(functions) > 0


def test_the_gil_check_fails_for_a_kernel_that_holds_the_gil(aot_module):
    """The same entry called the GIL-holding way (``ctypes.PYFUNCTYPE``) is never seen half done."""
    import ctypes

    holding = {name: ctypes.PYFUNCTYPE(None, ctypes.c_void_p)(ctypes.cast(f, ctypes.c_void_p).value)
               for name, f in aot_module[1].functions.items()}
    assert _partial_outputs_seen(holding, calls=10) == 0
