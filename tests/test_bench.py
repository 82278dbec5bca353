"""Benchmark tooling: the timing harness, the baselines compute what fixres_edge computes,
``fixres-edge bench --quick --json`` on tiny settings, and ``bench/compare.py``.

No test here asserts on a duration: only on the shape and consistency of the reports.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from fixres_edge import benchmark as bm
from fixres_edge.preprocess import Preprocessor

REPO = Path(__file__).resolve().parents[1]
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth content plus noise: realistic enough for interpolation comparisons."""
    return bm.synthetic_frame(h, w, seed=seed)


def _levels(a: np.ndarray, b: np.ndarray, std=STD) -> tuple[float, float]:
    """Max and mean difference of two normalized tensors, in uint8 levels."""
    d = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)) * np.asarray(std)[:, None, None] * 255.0
    return float(d.max()), float(d.mean())


def _load_bench(name: str):
    """A module of bench/ (scripts of a clone, not part of the installed package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load_compare():
    return _load_bench("compare")


# ------------------------------------------------------------------------------------------------
# harness
@pytest.mark.aarch64
def test_interleaved_rotates_and_drops_warmup():
    order = []
    methods = {name: (lambda name=name: order.append(name)) for name in "abc"}
    times = bm.interleaved(methods, repeat=4, warmup=2)
    assert set(times) == {"a", "b", "c"}
    assert all(v.shape == (4,) and v.dtype == np.int64 and (v >= 0).all() for v in times.values())
    assert len(order) == 3 * 6
    rounds = [order[i:i + 3] for i in range(0, len(order), 3)]
    assert all(sorted(r) == ["a", "b", "c"] for r in rounds)
    starts = ["abc".index(r[0]) for r in rounds]
    assert all((b - a) % 3 == 1 for a, b in zip(starts, starts[1:]))  # each round starts one later


@pytest.mark.aarch64
@pytest.mark.parametrize("repeat, warmup", [(0, 1), (-1, 0), (2, -1), (True, 0), (1.5, 0)])
def test_interleaved_rejects_bad_counts(repeat, warmup):
    with pytest.raises(ValueError, match="repeat|warmup"):
        bm.interleaved({"a": lambda: None}, repeat=repeat, warmup=warmup)


@pytest.mark.aarch64
def test_stats_percentiles_and_throughput():
    s = bm.Stats.from_ns(np.arange(1, 101) * 1_000_000)  # 1..100 ms
    assert s.n == 100 and s.min_ms == 1.0
    assert s.p50_ms == pytest.approx(50.5)
    assert s.p90_ms == pytest.approx(90.1)
    assert s.p99_ms == pytest.approx(99.01)
    assert s.throughput_per_s == pytest.approx(1000 / 50.5)
    with pytest.raises(ValueError, match="no samples"):
        bm.Stats.from_ns([])


@pytest.mark.aarch64
def test_thread_settings_and_slug():
    assert bm.thread_settings([1, 2, 1]) == [1, 2]
    assert bm.thread_settings(None)[0] == 1
    with pytest.raises(ValueError, match="positive"):
        bm.thread_settings([0])
    slug = bm.machine_slug("Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz")
    assert slug.endswith("-intel-xeon-e5-2680-v4")
    assert bm.result_filename("preprocess").endswith(".preprocess.json")


@pytest.mark.aarch64
def test_replace_section_is_idempotent():
    report = _load_bench("report")
    text = "# Title\n\nintro\n"
    once = report.replace_section(text, "t", "| a |\n")
    twice = report.replace_section(once, "t", "| b |\n")
    assert "| a |" in once and "| b |" in twice and "| a |" not in twice
    assert twice.count("<!-- t:begin -->") == 1 and twice.startswith("# Title")


@pytest.mark.aarch64
def test_target_rows():
    report = _load_bench("report")
    targets = [report.target("ratio", 0.5, 0.6, "x"), report.target("size", 5000, 4096, "B"),
               report.target("missing", None, 1.0)]
    assert [t["met"] for t in targets] == [True, False, None]
    assert report.target_rows(targets) == [["ratio", "0.5 x", "<= 0.6 x", "met"],
                                           ["size", "5000 B", "<= 4096 B", "MISSED"],
                                           ["missing", "-", "<= 1", "n/a"]]


# ------------------------------------------------------------------------------------------------
# baselines compute the same tensor as fixres_edge (the benchmark compares like with like)
@pytest.mark.parametrize("shape", [(75, 100), (100, 75), (300, 400)])
def test_baselines_compute_the_same_tensor(shape):
    img = _photo(*shape)
    size = 32
    opencv = bm.OpenCVPipeline(size, 0.875, MEAN, STD)(img).copy()
    fixres_linear = Preprocessor(size=size, antialias=False, threads=1)(img)
    assert _levels(opencv, fixres_linear)[0] <= 1.0 + 1e-3
    if bm.blob_available():
        blob = bm.BlobPipeline(size, 0.875, MEAN, STD)(img)
        np.testing.assert_allclose(blob, opencv, atol=1e-5)
    pytest.importorskip("PIL")
    pil = bm.to_pil(img)
    pillow = bm.PillowPipeline(size, 0.875, MEAN, STD)(pil)
    box = bm.PillowBoxPipeline(size, 0.875, MEAN, STD)(pil)
    fixres = Preprocessor(size=size, threads=1)(img)
    assert pillow.shape == box.shape == fixres.shape == (1, 3, size, size)
    assert _levels(pillow, fixres)[0] <= 1.0 + 1e-3
    assert _levels(box, pillow)[0] <= 1.0 + 1e-3


def test_area_baseline_matches_fixres_area():
    import cv2

    img = _photo(200, 300)
    area = bm.OpenCVPipeline(32, 0.875, MEAN, STD, interpolation=cv2.INTER_AREA)(img)
    fixres = Preprocessor(size=32, interpolation="area", threads=1)(img)
    assert _levels(area, fixres)[0] <= 1.0 + 1e-3


@pytest.mark.parametrize("shape", [(374, 500), (48, 64)])
def test_bgr_to_nv12_matches_opencv(shape):
    import cv2

    img = _photo(*shape)
    nv12 = bm.bgr_to_nv12(img)
    assert nv12.shape == (shape[0] * 3 // 2, shape[1])
    via_nv12 = cv2.cvtColor(nv12, cv2.COLOR_YUV2BGR_NV12)
    via_i420 = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2YUV_I420), cv2.COLOR_YUV2BGR_I420)
    np.testing.assert_array_equal(via_nv12, via_i420)
    with pytest.raises(ValueError, match="even"):
        bm.bgr_to_nv12(img[:-1])


def test_synthetic_frame_is_deterministic_and_jpeg_round_trips():
    import cv2

    a, b = bm.synthetic_frame(30, 40, seed=3), bm.synthetic_frame(30, 40, seed=3)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (30, 40, 3) and a.dtype == np.uint8
    decoded = cv2.imdecode(np.frombuffer(bm.encode_jpeg(a), np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == a.shape


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM is Linux-only")
def test_child_process_peak_rss_is_its_own():
    # A child started from a process that holds 300 MB must not report the parent's peak
    # (getrusage's ru_maxrss would: Linux carries it across fork + exec).
    ballast = np.ones(300 << 20, np.uint8)
    code, peak, wall, out, _ = bm.run_module_measuring_rss("platform", [])
    assert code == 0 and wall > 0 and out.strip()
    assert 0 < peak < 200 < bm.peak_rss_mb()
    del ballast


# ------------------------------------------------------------------------------------------------
# fixres-edge bench
def _tiny_model(path: Path, num_classes: int = 5) -> Path:
    """NCHW float input (dynamic N, H, W) -> global average pool -> linear -> logits."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(0).standard_normal((3, num_classes)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["flat"]),
         helper.make_node("MatMul", ["flat", "w"], ["logits"])],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", num_classes])],
        initializer=[numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    card = {"name": "tiny", "train_size": 32, "crop_pct": 0.875, "mean": list(MEAN), "std": list(STD)}
    helper.set_model_props(model, {"fixres_edge.card": json.dumps(card)})
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def tiny_bench(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    d = tmp_path_factory.mktemp("bench")
    model = _tiny_model(d / "tiny.onnx")
    images = []
    for i, (h, w) in enumerate([(48, 64), (80, 60)]):
        path = d / f"frame{i}.jpg"
        path.write_bytes(bm.encode_jpeg(_photo(h, w, seed=i)))
        images.append(str(path))
    return d, model, images


def _bench_argv(model, images, *extra, skip=()):
    # One --skip: a second one would replace the first (argparse's nargs="+").
    return ["bench", *images, "--model", str(model), "--sizes", "32", "--threads", "1", "--repeat", "3",
            "--warmup", "1", "--quick", "--skip", "rss", "cold-start", "deployed", *skip, *extra]


def test_bench_quick_json(tiny_bench, capsys):
    from fixres_edge.cli import main

    d, model, images = tiny_bench
    out_file = d / "report.json"
    assert main(_bench_argv(model, images, "--json", "--out", str(out_file))) == 0
    report = json.loads(capsys.readouterr().out)
    saved = json.loads(out_file.read_text())
    assert saved["pipeline"] == report["pipeline"]
    assert report["kind"] == "bench" and report["schema"] == bm.SCHEMA
    for key in ("cpu", "arch", "cores", "os", "python", "numpy", "numba", "onnxruntime", "opencv"):
        assert report["environment"][key]
    assert len(report["pipeline"]) == 2  # 2 frames x 1 model x 1 size x 1 thread setting
    for row in report["pipeline"]:
        assert row["threads"] == 1 and row["size"] == 32 and row["model"] == "tiny"
        for stage in ("decode", "preprocess", "infer", "total"):
            st = row["stages"][stage]
            assert st["n"] == 3
            assert 0 <= st["p50_ms"] <= st["p90_ms"] <= st["p99_ms"]
            assert st["throughput_per_s"] > 0
        # The total is the wall time of the call: at least its stages.
        s = row["stages"]
        assert s["total"]["p99_ms"] >= min(s["decode"]["min_ms"] + s["preprocess"]["min_ms"] + s["infer"]["min_ms"], 0)
    assert len(report["baselines"]) == 2
    for b in report["baselines"]:
        assert {"decode_full", "fixres_edge", "opencv"} <= set(b["methods"])
        assert set(b["ratios"]) >= {"opencv"}
        assert all(r > 0 for r in b["ratios"].values())
    assert report["overhead"]["empty_call_p50_ns"] > 0
    assert 0 < report["overhead"]["fraction_of_fastest_preprocess_p50"] < 1
    assert report["peak_rss_mb"] > 0
    assert "cold_start" not in report and "classify_peak_rss_mb" not in report and "deployed" not in report


def test_bench_table_output(tiny_bench, capsys):
    from fixres_edge.cli import main

    _, model, images = tiny_bench
    assert main(_bench_argv(model, images[:1], skip=["baselines"])) == 0
    text = capsys.readouterr().out
    assert "pipeline" in text and "frame0.jpg 64x48" in text and "timing overhead" in text
    assert "preprocess alone" not in text  # baselines skipped
    assert "start-up" not in text and "deployed" not in text and "classify` process" not in text


@pytest.mark.slow
def test_bench_deployed_footprint(tiny_bench, capsys):
    # The deployed part runs the real `fixres-edge classify` and the baseline script, bundled model.
    from fixres_edge.cli import main
    from fixres_edge.commands.bench import QUICK_PROCESS_RUNS, format_report

    _, model, images = tiny_bench
    argv = ["bench", images[0], "--model", str(model), "--sizes", "32", "--threads", "1", "--repeat", "2",
            "--warmup", "0", "--quick", "--skip", "rss", "cold-start", "baselines", "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    d = report["deployed"]
    assert d["photo"] == Path(images[0]).name and d["runs"] == QUICK_PROCESS_RUNS[0] and d["threads"] == 1
    for name in ("fixres_edge", "baseline"):
        assert d["processes"][name]["n"] == d["runs"]
        assert d["processes"][name]["peak_rss_mb"]["median"] > 0
    assert d["ratio_fixres_to_baseline"]["wall_s"] > 0
    assert isinstance(d["first_frame"]["numba_imported"], bool)
    line = next(line for line in format_report(report).splitlines() if line.startswith("deployed"))
    assert "kernel path" in line and "hand-written ORT + OpenCV script" in line and "fixres_edge / script" in line


@pytest.mark.parametrize("bad, message", [(["--repeat", "0"], "--repeat"), (["--sizes", "0"], "--sizes")])
def test_bench_bad_arguments(tiny_bench, capsys, bad, message):
    from fixres_edge.cli import main

    _, model, images = tiny_bench
    assert main(_bench_argv(model, images[:1], *bad)) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------------------
# bench/compare.py
def _report(cpu: str, total: float, ratio: float) -> dict:
    stats = {"n": 3, "p50_ms": total, "p90_ms": total, "p99_ms": total, "mean_ms": total, "min_ms": total,
             "throughput_per_s": 1000 / total}
    return {
        "kind": "bench", "date": "2025-01-01 00:00:00",
        "environment": {"cpu": cpu, "cores_available": 4},
        "pipeline": [{"frame": "500x375", "model": "fp32", "size": 224, "threads": 4,
                      "stages": {s: stats for s in ("decode", "preprocess", "infer", "total")}}],
        "baselines": [{"frame": "500x375", "size": 224, "threads": 1, "methods": {"fixres_edge": stats},
                       "ratios": {"opencv": ratio}}],
        "cold_start": {"warm": {"process_s": 0.4}, "cold": {"process_s": 3.0}},
    }


@pytest.mark.aarch64
def test_compare_table(tmp_path, capsys):
    compare = _load_compare()
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(_report("Desktop", 10.0, 0.5)))
    b.write_text(json.dumps(_report("Cortex-A76", 25.0, 0.4)))
    assert compare.main([str(a), str(b)]) == 0
    table = capsys.readouterr().out
    lines = table.splitlines()
    assert lines[0].startswith("| bench | Desktop") and "Cortex-A76" in lines[0]
    total = next(line for line in lines if "thr all: total p50" in line)
    assert total.endswith("| 10.0 | 25.0 (2.50x) |")
    ratio = next(line for line in lines if "fixres_edge / opencv" in line)
    assert "0.400 (0.80x)" in ratio
    assert any("empty JIT cache" in line for line in lines)


@pytest.mark.aarch64
def test_compare_rejects_unknown_kind(tmp_path, capsys):
    compare = _load_compare()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"kind": "nope"}))
    assert compare.main([str(bad)]) == 1
    assert "unknown report kind" in capsys.readouterr().err


@pytest.mark.aarch64
def test_compare_process_reports(tmp_path, capsys):
    compare = _load_bench("compare")

    def report(cpu: str, classify_s: float) -> dict:
        stats = lambda v: {"median": v, "min": v, "max": v}  # noqa: E731
        processes = {"fixres_edge": {"n": 7, "wall_s": stats(classify_s), "cpu_s": stats(classify_s),
                                     "peak_rss_mb": stats(130.0)},
                     "baseline": {"n": 7, "wall_s": stats(0.2), "cpu_s": stats(0.2), "peak_rss_mb": stats(120.0)}}
        return {"kind": "process", "date": "2026-12-01 00:00:00", "environment": {"cpu": cpu, "cores_available": 4},
                "deployed": {"processes": processes,
                             "ratio_fixres_to_baseline": {"wall_s": classify_s / 0.2, "cpu_s": classify_s / 0.2,
                                                          "peak_rss_mb": 130 / 120}},
                "first_frame": {"import_and_first_frame_s": 0.05, "process_s": 0.2}}

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(report("Desktop", 0.22)))
    b.write_text(json.dumps(report("Cortex-A76", 0.44)))
    assert compare.main([str(a), str(b)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| process | Desktop")
    wall = next(line for line in lines if "classify: wall median" in line)
    assert wall.endswith("| 0.220 | 0.440 (2.00x) |")
    assert any("classify / baseline script: peak RSS" in line for line in lines)
