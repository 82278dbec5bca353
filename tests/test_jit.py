"""The JIT policy: lazy compilation, the cache directory fallback, serial/parallel builds."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fixres_edge import _jit

REPO = Path(__file__).resolve().parents[1]


def _run(code: str, env_extra: dict[str, str | None], tmp_path: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(env_extra)
    env = {k: v for k, v in env.items() if v is not None}  # None removes a variable
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_compiles_nothing(tmp_path):
    out = _run("""
        import sys, json
        import fixres_edge
        from fixres_edge import Preprocessor
        pre = Preprocessor(size=8)
        print(json.dumps({"numba": "numba" in sys.modules, "onnxruntime": "onnxruntime" in sys.modules}))
    """, {}, tmp_path)
    assert json.loads(out.strip().splitlines()[-1]) == {"numba": False, "onnxruntime": False}


def test_read_only_package_dir_falls_back_to_user_cache(tmp_path):
    # Tests run as root in CI, where chmod cannot make a directory unwritable: the package
    # directory is reported unwritable instead, which is the condition the fallback acts on.
    cache_home = tmp_path / "xdg"
    out = _run("""
        import json
        import numpy as np
        import fixres_edge._jit as jit
        package = str(jit._PACKAGE_DIR)
        real = jit._writable
        jit._writable = lambda d: False if str(d).startswith(package) else real(d)
        from fixres_edge import Preprocessor
        Preprocessor(size=4, threads=1)(np.zeros((6, 8, 3), np.uint8))
        import numba
        print(json.dumps({"cache_dir": numba.core.config.CACHE_DIR}))
    """, {"XDG_CACHE_HOME": str(cache_home), "HOME": str(tmp_path)}, tmp_path)
    cache_dir = Path(json.loads(out.strip().splitlines()[-1])["cache_dir"])
    assert cache_dir == cache_home / "fixres_edge" / "numba"
    cached = list(cache_dir.rglob("*.nbi"))
    assert cached, f"no cache index written under {cache_dir}"


def test_explicit_numba_cache_dir_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert _jit.choose_cache_dir() is None


def test_user_cache_dir_follows_xdg(tmp_path, monkeypatch):
    if sys.platform in ("darwin", "win32"):
        pytest.skip("XDG applies on Linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert _jit.user_cache_dir() == tmp_path / "fixres_edge" / "numba"


def test_serial_and_parallel_builds_have_distinct_cache_names():
    from fixres_edge.kernels.resample import resample_yuv

    serial = resample_yuv.serial._fn
    parallel = resample_yuv.parallel._fn
    assert serial.__qualname__ != parallel.__qualname__
    assert serial.__code__ is parallel.__code__  # one source


def test_every_kernel_releases_the_gil():
    from fixres_edge.kernels import resample

    for name in ("resample_yuv", "resample_interleaved_hfirst"):
        pair = getattr(resample, name)
        assert pair.serial.dispatcher.targetoptions.get("nogil") is True
        assert pair.parallel.dispatcher.targetoptions.get("nogil") is True
    # Run by the caller and by band helpers; the helpers poll without the GIL.
    for single in (resample.resample_interleaved, resample.poll):
        assert single.dispatcher.targetoptions.get("nogil") is True


def test_thread_count_is_restored():
    numba = _jit.configure_numba()
    before = numba.get_num_threads()
    with _jit.thread_count(1):
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == before


@pytest.mark.aarch64
def test_warmup_compiles_requested_signatures():
    from fixres_edge.warm import warmup

    spent = warmup(threads=1, dtypes="uint8", layouts="NHWC")
    assert len(spent) == 6  # BGR bilinear and bicubic, BGRA, GRAY, NV12, postprocess
    assert all(t >= 0 for t in spent.values())
    with pytest.raises(ValueError, match="threads"):
        warmup(threads=(0,))


def test_top_level_warmup_is_the_function_even_after_the_cli_imported_its_module():
    import fixres_edge
    import fixres_edge.commands.warmup  # noqa: F401  (imports the implementation module)
    from fixres_edge.warm import warmup

    assert fixres_edge.warmup is warmup
    assert callable(fixres_edge.warmup)


def test_openmp_spins_briefly_unless_the_user_chose(tmp_path):
    code = """
        import os
        from fixres_edge._jit import configure_numba
        configure_numba()
        print(os.environ.get("GOMP_SPINCOUNT"))
    """
    unset = {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": None}
    assert _run(code, unset, tmp_path).strip() == _jit.GOMP_SPINCOUNT
    assert _run(code, {**unset, "GOMP_SPINCOUNT": "5"}, tmp_path).strip() == "5"
    assert _run(code, {**unset, "OMP_WAIT_POLICY": "ACTIVE"}, tmp_path).strip() == "None"
