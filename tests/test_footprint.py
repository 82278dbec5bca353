"""The deployed-footprint measurement (fixres_edge.footprint) and bench/process.py.

No test here asserts on a duration: only on what is measured, from where, and the report's shape.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fixres_edge import footprint

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    """A camera-like 500x375 JPEG (generated: no photo is copied into the project)."""
    from fixres_edge.benchmark import encode_jpeg, synthetic_frame

    path = tmp_path_factory.mktemp("footprint") / "photo.jpg"
    path.write_bytes(encode_jpeg(synthetic_frame(375, 500, seed=3)))
    return path


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent's peak leaks into ru_maxrss on Linux")
def test_measure_reports_the_childs_own_peak():
    # Linux carries the spawning process's peak into the child's ru_maxrss across vfork + exec:
    # measured straight from this 300+ MB process, a 60 MB child would look 300+ MB.
    ballast = np.ones(300 << 20, np.uint8)
    run = footprint.measure(_python("b = bytearray(60 << 20); print(len(b))"))
    assert run.returncode == 0 and run.stdout.strip() == str(60 << 20)
    assert run.wall_s > 0 and run.cpu_s >= 0
    assert 60 < run.peak_rss_mb < 200
    assert run.launcher_rss_mb < run.peak_rss_mb
    del ballast


def test_measure_failure_is_one_line():
    run = footprint.measure(_python("import sys; sys.stderr.write('first\\nthe reason\\n'); sys.exit(3)"))
    assert run.returncode == 3
    with pytest.raises(RuntimeError, match=r"^thing failed \(exit 3\): the reason$"):
        run.check("thing")


def test_alternate_rotates_and_drops_warmup(tmp_path):
    log = tmp_path / "order.txt"
    commands = {name: _python(f"open({str(log)!r}, 'a').write({name!r})") for name in ("a", "b")}
    runs = footprint.alternate(commands, runs=2, warmup=1)
    assert [len(runs["a"]), len(runs["b"])] == [2, 2]
    assert log.read_text() == "ba" + "ab" + "ba"  # the first round is the warm-up, then the order rotates
    summary = footprint.summarize(runs["a"])
    assert summary["n"] == 2 and summary["wall_s"]["min"] <= summary["wall_s"]["median"] <= summary["wall_s"]["max"]
    with pytest.raises(ValueError, match="runs"):
        footprint.alternate(commands, runs=0)


def test_empty_cache_env_points_every_cache_inside(tmp_path):
    env = footprint.empty_cache_env(tmp_path)
    for key in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME"):
        assert Path(env[key]).is_relative_to(tmp_path)


def test_baseline_inline_script_equals_the_bench_script(photo):
    # fixres-edge bench runs the baseline inline; bench/process.py runs bench/baseline_ort_opencv.py.
    inline = footprint.measure(footprint.baseline_command(photo)).check("inline baseline")
    script = footprint.measure([sys.executable, str(BENCH / "baseline_ort_opencv.py"), str(photo)]).check("script")
    lines = inline.stdout.strip().splitlines()
    assert len(lines) == 5 and all("\t" in line for line in lines)
    assert script.stdout == inline.stdout


def test_process_script_tiny_run(photo, tmp_path):
    out = tmp_path / "process.json"
    done = subprocess.run([sys.executable, str(BENCH / "process.py"), "--photo", str(photo), "--runs", "1",
                           "--warmup", "0", "--first-frame-runs", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["kind"] == "process" and report["machine"]
    deployed = report["deployed"]
    assert deployed["runs"] == 1 and deployed["warmup_runs"] == 0 and deployed["photo"] == photo.name
    assert set(deployed["processes"]) == {"fixres_edge", "baseline"}
    for name, summary in deployed["processes"].items():
        assert summary["n"] == 1
        for key in ("wall_s", "cpu_s", "peak_rss_mb"):
            assert summary[key]["min"] <= summary[key]["median"] <= summary[key]["max"]
        assert len(deployed["samples"][name]) == 1
    assert "classify" in deployed["commands"]["fixres_edge"]
    assert "baseline_ort_opencv.py" in deployed["commands"]["baseline"]
    assert set(deployed["ratio_fixres_to_baseline"]) == {"wall_s", "cpu_s", "peak_rss_mb"}
    ff = report["first_frame"]
    for key in ("import_s", "first_frame_s", "import_and_first_frame_s", "process_s", "peak_rss_mb"):
        assert ff[key] > 0
    assert ff["n"] == 1 and isinstance(ff["numba_imported"], bool) and "kernel_backend" in ff
    assert [t["unit"] for t in report["targets"]] == ["x", "x", "s"]
    assert "empty_cache" not in report
    assert "| process |" in done.stdout and "fixres_edge / baseline" in done.stdout
